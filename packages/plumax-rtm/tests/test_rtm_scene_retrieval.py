"""The scene-retrieval recipe and its error model (plumax_rtm.retrieve_scene & co.).

Independent references: the cross-sectional flux of a steady plume column is ``Q`` for
any wind direction (mass conservation: ``U ∫ΔΩ dn = Q``); a lognormal posterior times a
lognormal gain is lognormal with the widths added in quadrature; the noise inflation of
Gaussian residuals of known spread is that spread; an albedo model's draws have its
mean and standard deviation.
"""

import math

import jax.numpy as jnp
import jax.random as jr
import lineax as lx
import numpy as np
import pytest

import plumax_rtm as pr
from plumax_core import (
    AbstractForwardModel,
    MetField,
    Observations,
    Param,
    ParamSpec,
    compose,
    linalg,
)

PIXEL = 60.0  # m (EMIT)
N = 41  # pixels per side; the source sits on the centre pixel
Q = 4.0  # kg/s
U = 5.0  # m/s


class _AnalyticPlume(AbstractForwardModel):
    """A steady plume column (ppm·m) for any wind direction, point-sampled at the pixel
    centres: ``Ω = Q/(√(2π) σ U) exp(-n²/2σ²)`` downwind (``s > 0``) with
    ``σ = 60 m + 0.2 s`` (wider than a pixel, so pixel sums are integrals);
    ``∫ Ω dn = Q/U`` exactly at every ``s > 0``."""

    x: jnp.ndarray
    y: jnp.ndarray

    @property
    def param_spec(self):
        return ParamSpec(
            (Param("Q", units="kg/s", lower=0.0, log=True), Param("x0", units="m"),
             Param("y0", units="m"))
        )  # fmt: skip

    def __call__(self, params, met):
        u = jnp.reshape(met.u, -1)[0]
        v = jnp.reshape(met.v, -1)[0]
        speed = jnp.hypot(u, v)
        dx = self.x[None, :] - params["x0"]
        dy = self.y[:, None] - params["y0"]
        s = (dx * u + dy * v) / speed
        n = (-dx * v + dy * u) / speed
        sig = 60.0 + 0.2 * jnp.maximum(s, 0.0)
        om = params["Q"] / (math.sqrt(2 * math.pi) * sig * speed) * jnp.exp(-0.5 * (n / sig) ** 2)
        col = jnp.where(s > 0, om, 0.0) / pr.KG_M2_PER_PPM_M
        return Observations(
            col, kind="column_ppm_m", dims=("y", "x"), coords={"y": self.y, "x": self.x}
        )


AXIS = (np.arange(N) - N // 2) * PIXEL
PLUME = _AnalyticPlume(jnp.asarray(AXIS), jnp.asarray(AXIS))
PARAMS = {"Q": jnp.asarray(Q), "x0": jnp.asarray(0.0), "y0": jnp.asarray(0.0)}
SRC = (N // 2, N // 2)


def _column(direction: float) -> np.ndarray:
    met = MetField.uniform(U, direction, stability="D")
    return np.asarray(PLUME(PARAMS, met).values, np.float64)


# ------------------------------------------------------------------ wind geometry


def test_downwind_unit_is_exact_for_cardinal_winds():
    assert pr.downwind_unit(270.0) == (0.0, 1.0)  # westerly: towards +x (columns)
    assert pr.downwind_unit(180.0) == (1.0, 0.0)  # southerly: towards +y (rows)
    assert pr.downwind_unit(0.0) == pr.downwind_unit(360.0) == (-1.0, 0.0)
    assert pr.downwind_unit(90.0 + 0.5 * pr.CARDINAL_TOLERANCE_DEG) == (0.0, -1.0)
    r, c = pr.downwind_unit(225.0)  # from the south-west: towards north-east
    assert r == pytest.approx(math.sqrt(0.5)) and c == pytest.approx(math.sqrt(0.5))
    with pytest.raises(ValueError, match="wind_direction"):
        pr.downwind_unit(float("nan"))


def test_most_upwind_pixel_follows_the_wind():
    mask = np.zeros((5, 6), bool)
    mask[1, 2] = mask[3, 1] = mask[3, 4] = mask[4, 3] = True
    assert pr.most_upwind_pixel(mask, 270.0) == (3, 1)  # leftmost
    assert pr.most_upwind_pixel(mask, 90.0) == (3, 4)  # rightmost
    assert pr.most_upwind_pixel(mask, 180.0) == (1, 2)  # lowest row (south)
    assert pr.most_upwind_pixel(mask, 0.0) == (4, 3)  # highest row (north)
    assert pr.most_upwind_pixel(np.zeros((3, 3), bool), 270.0) is None
    with pytest.raises(ValueError, match="mask"):
        pr.most_upwind_pixel(np.zeros(3, bool), 270.0)


# ------------------------------------------------------------------ CSF, any wind


@pytest.mark.parametrize("direction", [270.0, 0.0, 90.0, 180.0, 225.0, 300.0, 10.0])
def test_csf_recovers_q_for_any_wind_direction(direction):
    """Mass conservation: every transect carries Q, whatever the wind direction."""
    f = pr.csf_flux_downwind(_column(direction), PIXEL, U, direction, SRC, wind_std=0.0)
    assert f is not None and f.method == "CSF"
    assert len(f.details["transect_fluxes"]) == 6
    assert f.rate == pytest.approx(Q, rel=0.05), direction


def test_csf_of_cardinal_winds_is_exactly_rotation_invariant():
    """The westerly scene turned to each cardinal wind (on a square grid with the source
    on the centre pixel): no resampling, the same transects, the same flux."""
    e = _column(270.0)
    turned = {270.0: e, 90.0: e[:, ::-1], 180.0: e.T, 0.0: e.T[::-1, :]}
    rates = [
        pr.csf_flux_downwind(img, PIXEL, U, d, SRC, enhancement_std=25.0).rate
        for d, img in turned.items()
    ]
    np.testing.assert_allclose(rates, rates[0], rtol=1e-12)


def test_csf_westerly_is_the_axis_aligned_csf():
    """For a westerly wind the transects are the columns of the image: csf_flux itself."""
    col = _column(270.0)
    got = pr.csf_flux_downwind(col, PIXEL, U, 270.0, SRC, wind_std=0.5, enhancement_std=30.0)
    want = pr.csf_flux(
        col, PIXEL, U, SRC, distances_px=(3, 6, 9, 12, 15, 18), halfwidth_px=N // 3,
        wind_std=0.5, enhancement_std=30.0,
    )  # fmt: skip
    assert got.rate == want.rate and got.uncertainty == want.uncertainty


def test_csf_without_room_downwind_is_none_and_bad_input_raises():
    col = _column(270.0)
    assert pr.csf_flux_downwind(col, PIXEL, U, 270.0, (20, N - 4)) is None
    with pytest.raises(ValueError, match="source_pixel"):
        pr.csf_flux_downwind(col, PIXEL, U, 270.0, (N, 0))
    with pytest.raises(ValueError, match="wind_speed"):
        pr.csf_flux_downwind(col, PIXEL, 0.0, 270.0, SRC)
    with pytest.raises(ValueError, match="max_transects"):
        pr.csf_flux_downwind(col, PIXEL, U, 270.0, SRC, max_transects=1)


# ------------------------------------------------------------------ error models


def test_residual_scale_is_the_spread_of_the_standardised_residual(getkey):
    u = np.full(4000, 20.0)
    bg = np.ones(4000, bool)
    wide = 1.5 * u * np.asarray(jr.normal(getkey(), (4000,)))
    assert pr.residual_scale(wide, u, bg) == pytest.approx(1.5, rel=0.05)
    narrow = 0.5 * u * np.asarray(jr.normal(getkey(), (4000,)))
    assert pr.residual_scale(narrow, u, bg) == 1.0  # never shrinks the filter's error
    with pytest.raises(ValueError, match="at least 2"):
        pr.residual_scale(wide, u, np.zeros(4000, bool))
    with pytest.raises(ValueError, match="shape"):
        pr.residual_scale(wide, u[:10], bg)


def test_gaussian_albedo_has_its_mean_spread_and_floor(getkey):
    model = pr.GaussianAlbedo()
    a = model.sample((200, 200), key=getkey())
    assert a.shape == (200, 200) and a.min() >= 0.05
    assert float(a.mean()) == pytest.approx(0.25, abs=0.002)
    assert float(a.std()) == pytest.approx(0.08, rel=0.03)  # clipping 0.6 % of draws
    k = getkey()
    np.testing.assert_array_equal(model.sample((3, 4), key=k), model.sample((3, 4), key=k))
    for bad in ({"mean": 0.0}, {"std": -0.1}, {"floor": 0.5}, {"mean": float("nan")}):
        with pytest.raises(ValueError, match="albedo"):
            pr.GaussianAlbedo(**bad)


def test_oe_check_prior():
    mean, std = pr.oe_check_prior(3, 0.3)
    np.testing.assert_allclose(mean, [0.0, 1.0, 0.3, 0.0, 0.0])
    np.testing.assert_allclose(std, [1e5, 0.3, 1.0, 0.5, 0.5])
    with pytest.raises(ValueError, match="n_poly"):
        pr.oe_check_prior(0)


def test_plume_exclusion_covers_the_detection_and_its_dilation(getkey):
    img = 20.0 * np.asarray(jr.normal(getkey(), (30, 30)), np.float64)
    img[10:14, 10:20] += 500.0
    ex0 = pr.plume_exclusion(img, dilation=0)
    ex2 = pr.plume_exclusion(img, dilation=2)
    assert ex0[10:14, 10:20].all() and ex0.sum() < 60
    # two 4-connected dilations: two pixels around the block along rows and columns
    assert ex2[8:16, 10:20].all() and ex2[10:14, 8:22].all()
    assert (ex2 | ex0).sum() == ex2.sum() and not ex2[7, 15] and not ex2[15, 21]
    with pytest.raises(ValueError, match="dilation"):
        pr.plume_exclusion(img, dilation=-1)


# ------------------------------------------------------------------ the recipe


@pytest.fixture(scope="module")
def instrument():
    return pr.ch4_instrument_model("EMIT", (2100.0, 2450.0), sza_deg=30.0, n_poly=2)


def _scene(instrument, direction, *, key=3):
    rtm, srf = instrument
    met = MetField.uniform(U, direction, stability="D")
    albedo = pr.GaussianAlbedo().sample((N, N), key=jr.key(key))
    op = pr.RadianceOperator(
        rtm, srf, albedo=jnp.asarray(albedo), noise=pr.NoiseModel(snr=300.0), instrument="EMIT"
    )
    sim = pr.simulate_radiance_cube(PLUME, PARAMS, met, op, key=jr.key(key + 1))
    return sim, met, albedo, op


def test_simulated_radiance_is_the_composed_model_plus_its_noise(instrument):
    sim, met, _, op = _scene(instrument, 270.0)
    rad = sim.radiance
    assert rad.kind == "radiance" and rad.dims == ("y", "x", "band") and rad.shape[:2] == (N, N)
    np.testing.assert_array_equal(rad.coords["x"], AXIS.astype(np.float32))
    np.testing.assert_array_equal(rad.coords["band"], instrument[1].centers)
    clean = pr.simulate_radiance_cube(PLUME, PARAMS, met, op, key=None).radiance
    np.testing.assert_allclose(clean.values, compose(PLUME, op)(PARAMS, met).values, rtol=1e-5)
    z = np.asarray((rad.values - clean.values) / rad.sigma)
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1.0) < 0.01
    np.testing.assert_array_equal(sim.column.values, PLUME(PARAMS, met).values)
    with pytest.raises(ValueError, match="noise"):
        pr.simulate_radiance_cube(
            PLUME, PARAMS, met, pr.RadianceOperator(*instrument), key=jr.key(0)
        )


@pytest.mark.parametrize("direction", [270.0, 225.0])
def test_retrieve_scene_recovers_the_plume_and_q(instrument, direction):
    rtm, srf = instrument
    sim, met, albedo, _ = _scene(instrument, direction)
    ret = pr.retrieve_scene(sim.radiance, met, rtm=rtm, srf=srf, albedo=albedo, max_oe_pixels=8)
    assert ret.pixel_size == pytest.approx(PIXEL) and ret.residual_scale >= 1.0
    assert ret.mask.sum() >= 20 and ret.warnings == []
    # the most upwind detection lies just downwind of the true source
    ur, uc = pr.downwind_unit(direction)
    ds = (ret.source_pixel[0] - SRC[0]) * ur + (ret.source_pixel[1] - SRC[1]) * uc
    assert 0 <= ds <= 4, ret.source_pixel
    truth = np.asarray(sim.column.values)
    sel = ret.valid & (truth > 200) & (truth < 1000)
    slope = np.sum(ret.enhancement[sel] * truth[sel]) / np.sum(truth[sel] ** 2)
    assert 0.85 < slope < 1.15
    # CSF is mass conservation (any wind direction); IME's U_eff is an empirical
    # calibration (Varon et al. 2021, 20-m pixels), not a closed form: only present here
    assert ret.csf is not None and abs(ret.csf.rate - Q) < 2 * ret.csf.uncertainty, ret.csf.rate
    assert ret.ime is not None and ret.ime.rate > 0 and ret.ime.details["n_pixels"] >= 20
    assert ret.oe is not None and ret.oe.n == 8 and 0.8 < ret.oe.mean_ratio_oe_mf < 1.2
    # the map as Observations: one carrier for the inversion
    obs = ret.observations()
    assert obs.kind == "column_ppm_m" and obs.dims == ("y", "x")
    np.testing.assert_array_equal(obs.coords["x"], sim.radiance.coords["x"])
    np.testing.assert_allclose(obs.values, np.where(ret.valid, ret.enhancement, 0), rtol=1e-6)
    em = ret.error_model
    assert em.variance_factor >= 1.0 and np.allclose(em.sigma, ret.sigma)
    if em.correlated:  # the covariance as a Kronecker operator over the valid map
        assert ret.valid.all() and obs.sigma is None and isinstance(obs.noise, linalg.Kronecker)
        np.testing.assert_allclose(lx.diagonal(obs.noise), ret.sigma.ravel() ** 2, rtol=1e-5)
    else:
        np.testing.assert_array_equal(obs.mask, ret.valid)
        np.testing.assert_allclose(obs.sigma, np.where(ret.valid, ret.sigma, 1), rtol=1e-6)
    assert len(em.gain_injections) == 8 and all(0.8 < g < 1.2 for g in em.gain_injections)
    s = ret.summary()
    assert s["CSF"]["units"] == "kg/s" and s["CSF"]["median"] == ret.csf.rate
    assert s["CSF"]["hi"] == pytest.approx(ret.csf.rate + 1.645 * ret.csf.uncertainty)
    assert s["OE"] == ret.oe.to_dict() and s["mask_pixels"] == int(ret.mask.sum())


def test_retrieve_scene_without_a_plume_warns(instrument):
    """No component as large as ``min_pixels``: no mask, no flux, no OE, one warning."""
    rtm, srf = instrument
    sim, met, albedo, _ = _scene(instrument, 270.0)
    ret = pr.retrieve_scene(sim.radiance, met, rtm=rtm, srf=srf, min_pixels=N * N)
    assert not ret.mask.any() and ret.source_pixel is None
    assert ret.ime is None and ret.csf is None and ret.oe is None
    assert len(ret.warnings) == 1 and "no plume detected" in ret.warnings[0]
    assert ret.summary()["IME"] is None


def test_retrieve_scene_rejects_bad_input(instrument):
    rtm, srf = instrument
    sim, met, _, _ = _scene(instrument, 270.0)
    rad = sim.radiance
    kw = {"rtm": rtm, "srf": srf}
    with pytest.raises(TypeError, match="Observations"):
        pr.retrieve_scene(np.asarray(rad.values), met, **kw)
    with pytest.raises(ValueError, match="kind 'radiance'"):
        pr.retrieve_scene(sim.column, met, **kw)
    no_x = Observations(rad.values, kind="radiance", coords={"y": rad.coords["y"]})
    with pytest.raises(ValueError, match="coordinate 'x'"):
        pr.retrieve_scene(no_x, met, **kw)
    oblong = rad.replace(coords={**rad.coords, "y": rad.coords["y"] * 2.0})
    with pytest.raises(ValueError, match="square"):
        pr.retrieve_scene(oblong, met, **kw)
    with pytest.raises(ValueError, match="false_alarm_rate"):
        pr.retrieve_scene(rad, met, false_alarm_rate=0.7, **kw)
    with pytest.raises(ValueError, match="negative value"):
        pr.retrieve_scene(rad.replace(values=-rad.values), met, **kw)
