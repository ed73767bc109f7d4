"""GaussianPlume: conservation, limits, closed forms, gradients, contract and bad input."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

from plumax_core import MetField
from plumax_core.testing import check_forward_model
from plumax_transport import (
    M_CH4,
    BriggsPlumeRise,
    ColumnAverage,
    ColumnImage,
    GaussianPlume,
    PointReceptors,
    air_molar_density,
    sigma_y,
    sigma_z,
)

P0 = {"Q": 0.05, "x0": 0.0, "y0": 0.0, "H": 5.0}


def met_w(speed=4.0, cls="D", pblh=600.0, direction=270.0):
    """Wind from the west: the plume travels along +x."""
    return MetField.uniform(speed, direction, stability=cls, pblh=pblh)


def cross_section(x, cls, lid, pblh=600.0, ny=241, nz=241):
    sy = float(sigma_y(x, cls))
    sz = float(sigma_z(x, cls))
    y = np.linspace(-7 * sy, 7 * sy, ny)
    ztop = pblh if lid else P0["H"] + 8 * sz
    z = np.linspace(0.0, ztop, nz)
    Y, Z = np.meshgrid(y, z, indexing="ij")
    geo = PointReceptors(np.full(Y.size, x), Y.ravel(), Z.ravel(), units="kg_m3")
    return y, z, geo


@pytest.mark.parametrize("cls", list("ABCDEF"))
@pytest.mark.parametrize("lid", [True, False])
def test_mass_flux_equals_Q(cls, lid, x64):
    """∬ c u dy dz over a downwind cross-section equals Q (to 1%), by quadrature."""
    for x in (300.0, 3000.0, 30000.0):
        y, z, geo = cross_section(x, cls, lid)
        model = GaussianPlume(geo, lid=lid)
        met = met_w(cls=cls)
        _, u, _ = model.effective_height_and_speed(jnp.asarray(P0["H"]), met)
        c = np.asarray(model(P0, met).values).reshape(y.size, z.size)
        flux = integrate.simpson(integrate.simpson(c * float(u), x=z, axis=1), x=y)
        assert flux == pytest.approx(P0["Q"], rel=1e-2), (cls, lid, x)


def test_well_mixed_limit_far_downwind(x64):
    """σz/L = 0.9, 1.8, 3 (class B): the reflected sum tends to Q/(u L sqrt(2π) σy)."""
    L = 400.0
    xs = np.array([3e3, 6e3, 1e4])
    for method, N in (("hybrid", 3), ("images", 30)):
        geo = PointReceptors(xs, 0.0, 1.5, units="kg_m3")
        m = GaussianPlume(geo, method=method, n_images=N)
        c = np.asarray(m(P0, met_w(cls="B", pblh=L)).values)
        wm = P0["Q"] / (4.0 * L * math.sqrt(2 * math.pi) * np.asarray(sigma_y(xs, "B")))
        rel = np.abs(c / wm - 1.0)
        assert rel[-1] < 1e-6 and np.all(np.diff(rel) <= 1e-12)


def test_ground_source_closed_form(x64):
    """H = 0: the two ground images coincide: c = Q/(π u σy σz) e^{-y²/2σy²} e^{-z²/2σz²}."""
    x, y, z = 800.0, np.array([0.0, 20.0, 50.0]), 3.0
    geo = PointReceptors(np.full(3, x), y, z, units="kg_m3")
    c = np.asarray(GaussianPlume(geo, lid=False)(dict(P0, H=0.0), met_w()).values)
    sy, sz = float(sigma_y(x, "D")), float(sigma_z(x, "D"))
    ref = P0["Q"] / (math.pi * 4.0 * sy * sz) * np.exp(-(y**2) / (2 * sy**2) - z**2 / (2 * sz**2))
    np.testing.assert_allclose(c, ref, rtol=1e-12)


def test_infinite_lid_equals_no_lid(x64):
    geo = PointReceptors(np.array([200.0, 2000.0, 20000.0]), 10.0, 2.0)
    a = GaussianPlume(geo)(P0, met_w(pblh=1e8)).values
    b = GaussianPlume(geo, lid=False)(P0, met_w(pblh=1e8)).values
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12)


def test_column_closed_form_matches_quadrature_and_units(x64):
    x = 1500.0
    y, z, geo = cross_section(x, "C", True, ny=5, nz=801)
    met = met_w(cls="C")
    c = np.asarray(GaussianPlume(geo)(P0, met).values).reshape(5, 801)
    col_q = integrate.simpson(c, x=z, axis=1)  # kg/m2 by z-quadrature
    img = GaussianPlume(ColumnImage(np.array([x]), y, units="kg_m2"))
    col = np.asarray(img(P0, met).values)[:, 0]
    np.testing.assert_allclose(col, col_q, rtol=1e-6)
    n_air = float(air_molar_density(288.15, 101325.0))
    mol = np.asarray(GaussianPlume(ColumnImage(np.array([x]), y, units="mol_m2"))(P0, met).values)
    ppmm = np.asarray(GaussianPlume(ColumnImage(np.array([x]), y, units="ppm_m"))(P0, met).values)
    np.testing.assert_allclose(mol[:, 0], col / M_CH4, rtol=1e-12)
    np.testing.assert_allclose(ppmm[:, 0], col / M_CH4 / n_air * 1e6, rtol=1e-12)
    # column average over a height above the lid: 1000 * ppm m / h (ppb)
    avg = GaussianPlume(ColumnAverage(np.array([x]), y, column_height=2000.0))(P0, met).values
    np.testing.assert_allclose(np.asarray(avg)[:, 0], 1e3 * ppmm[:, 0] / 2000.0, rtol=1e-12)
    # whole-atmosphere XCH4: moles over the dry-air column p/(g M_air)
    xch4 = GaussianPlume(ColumnAverage(np.array([x]), y))(P0, met).values
    air = 101325.0 / (9.80665 * 28.9644e-3)
    np.testing.assert_allclose(np.asarray(xch4)[:, 0], mol[:, 0] / air * 1e9, rtol=1e-12)
    # point ppm vs kg/m3
    ppm = GaussianPlume(PointReceptors(np.array([x]), 0.0, 2.0))(P0, met).values
    kg = GaussianPlume(PointReceptors(np.array([x]), 0.0, 2.0, units="kg_m3"))(P0, met).values
    np.testing.assert_allclose(np.asarray(ppm), np.asarray(kg) / M_CH4 / n_air * 1e6, rtol=1e-12)


def test_partial_column_matches_quadrature(x64):
    x = 3000.0
    y, z, geo = cross_section(x, "D", True, ny=3, nz=801)
    met = met_w(cls="D")
    c = np.asarray(GaussianPlume(geo)(dict(P0, H=60.0), met).values).reshape(3, 801)
    zt = 150.0
    keep = z <= zt + 1e-9
    ref = integrate.simpson(c[:, keep], x=z[keep], axis=1)
    part = GaussianPlume(ColumnImage(np.array([x]), y, units="kg_m2", z_top=zt))
    zz = np.linspace(0, zt, 801)
    del zz
    np.testing.assert_allclose(np.asarray(part(dict(P0, H=60.0), met).values)[:, 0], ref, rtol=2e-3)


def test_wind_direction_rotation():
    geo = PointReceptors(
        np.array([0.0, 0.0, 500.0, -500.0]), np.array([-500.0, 500.0, 0.0, 0.0]), 1.0
    )
    m = GaussianPlume(geo, check_upwind=True)
    c = np.asarray(m(P0, met_w(direction=0.0)).values)  # from the north: blows south
    assert c[0] > 0 and c[1] == 0 and c[2] < 1e-20 * c[0] and c[3] < 1e-20 * c[0]
    c = np.asarray(m(P0, met_w(direction=90.0)).values)  # from the east: blows west
    assert c[3] > 0 and c[2] == 0


def test_plume_rise_briggs_hand_values(x64):
    rise = BriggsPlumeRise(10.0, 1.0, 400.0)
    Fb = 9.80665 * 10 * 1 * (400 - 288.15) / 400  # 27.42 m4/s3
    assert float(rise(5.0, 3, 288.15)) == pytest.approx(21.425 * Fb**0.75 / 5.0, rel=1e-10)
    assert float(rise(5.0, 3, 288.15)) == pytest.approx(51.34, rel=1e-3)  # hand computed
    s = 9.80665 / 288.15 * 0.035
    assert float(rise(5.0, 5, 288.15)) == pytest.approx(2.6 * (Fb / (5 * s)) ** (1 / 3), rel=1e-10)
    assert float(rise(5.0, 5, 288.15)) == pytest.approx(43.24, rel=1e-3)
    big = BriggsPlumeRise(20.0, 2.5, 450.0)  # F_b >= 55: 3/5 law
    Fb2 = 9.80665 * 20 * 2.5**2 * (450 - 288.15) / 450
    assert float(big(6.0, 2, 288.15)) == pytest.approx(38.71 * Fb2**0.6 / 6.0, rel=1e-10)
    jet = BriggsPlumeRise(15.0, 0.1, 288.15)  # cold jet: momentum rise 3 d w / u
    assert float(jet(5.0, 3, 288.15)) == pytest.approx(3 * 0.2 * 15 / 5, rel=1e-10)
    assert float(BriggsPlumeRise(0.0, 0.5, 288.15)(5.0, 3, 288.15)) == 0.0
    g = jax.grad(lambda u: rise(u, 3, 288.15))(5.0)
    assert np.isfinite(float(g))
    with pytest.raises(ValueError, match="radius"):
        BriggsPlumeRise(1.0, 0.0, 300.0)


GRID = (np.linspace(100.0, 1500.0, 6), np.linspace(-200.0, 250.0, 5))


def _fd_check(model, params, speed, direction, pblh=700.0, cls="C"):
    names = ["Q", "x0", "y0", "H", "speed", "direction"]

    @jax.jit
    def f(v):
        p = dict(zip(names[:4], v[:4], strict=True))
        met = MetField.uniform(v[4], v[5], stability=cls, pblh=pblh)
        return model(p, met).values.ravel()

    v0 = jnp.array([params["Q"], params["x0"], params["y0"], params["H"], speed, direction])
    J = np.asarray(jax.jit(jax.jacrev(f))(v0))
    steps = np.array([1e-4 * params["Q"], 1e-2, 1e-2, 1e-2, 1e-4, 1e-3])
    for i, h in enumerate(steps):
        e = np.zeros(6)
        e[i] = h
        fd = (np.asarray(f(v0 + e)) - np.asarray(f(v0 - e))) / (2 * h)
        scale = np.max(np.abs(fd)) + 1e-300
        np.testing.assert_allclose(J[:, i], fd, rtol=1e-5, atol=1e-7 * scale, err_msg=names[i])
        if names[i] != "H":
            assert np.max(np.abs(J[:, i])) > 0, names[i]
    return J


def test_grad_column_image_matches_fd(x64):
    params = {"Q": 0.08, "x0": -40.0, "y0": 15.0, "H": 30.0}
    J = _fd_check(GaussianPlume(ColumnImage(*GRID)), params, 4.5, 255.0)
    assert np.max(np.abs(J[:, 3])) > 0  # H enters through the wind profile u(H)


@pytest.mark.slow
def test_grad_other_geometries_match_fd(x64):
    params = {"Q": 0.08, "x0": -40.0, "y0": 15.0, "H": 30.0}
    rise = BriggsPlumeRise(8.0, 0.5, 380.0)
    _fd_check(
        GaussianPlume(ColumnAverage(*GRID, column_height=120.0), plume_rise=rise),
        params,
        4.5,
        255.0,
    )
    pts = PointReceptors(np.array([300.0, 900.0, 1200.0]), np.array([10.0, -30.0, 80.0]), 2.0)
    _fd_check(GaussianPlume(pts, method="images"), params, 3.0, 265.0, cls="E")


@pytest.mark.parametrize(
    "geo",
    [
        ColumnImage(*GRID),
        pytest.param(ColumnAverage(*GRID), marks=pytest.mark.slow),
        PointReceptors(np.array([300.0, 900.0]), 0.0, 2.0),
    ],
    ids=["column", "average", "points"],
)
def test_forward_model_contract(geo):
    batch = {
        "Q": jnp.array([0.01, 0.1, 1.0]),
        "x0": jnp.array([0.0, -50.0, 30.0]),
        "y0": jnp.array([0.0, 20.0, -10.0]),
        "H": jnp.array([0.0, 5.0, 40.0]),
    }
    obs = check_forward_model(GaussianPlume(geo), batch, met_w(), rtol=1e-4, atol=1e-6)
    assert obs.kind == geo.kind


def test_jit_vmap_grad_finite_at_source_and_upwind():
    geo = ColumnImage(np.linspace(-100.0, 100.0, 21), np.linspace(-100.0, 100.0, 21))
    m = GaussianPlume(geo)
    met = met_w()

    @jax.jit
    def loss(p):
        return jnp.sum(m(p, met).values)

    g = jax.grad(loss)({k: jnp.asarray(v) for k, v in P0.items()})
    assert all(bool(jnp.isfinite(v)) for v in g.values())


def test_bad_input_raises():
    geo = PointReceptors(np.array([500.0]), 0.0, 1.0)
    m = GaussianPlume(geo)
    with pytest.raises(ValueError, match="speed"):
        m(P0, met_w(speed=0.0))
    with pytest.raises(ValueError, match="speed"):
        m(P0, met_w(speed=0.3))  # below the documented 0.5 m/s floor
    with pytest.raises(ValueError, match="speed"):
        MetField.uniform(-2.0, 270.0)
    with pytest.raises(ValueError, match="NaN"):
        m(dict(P0, Q=float("nan")), met_w())
    with pytest.raises(ValueError, match="x0"):
        m(dict(P0, x0=float("nan")), met_w())
    with pytest.raises(ValueError, match="upwind"):
        m(P0, met_w(direction=90.0))
    with pytest.raises(ValueError, match="stability"):
        met_w(cls="G")
    with pytest.raises(ValueError, match="stability"):
        m(P0, MetField.uniform(4.0, 270.0, stability=None))
    with pytest.raises(ValueError, match="lid|pblh"):
        m(dict(P0, H=900.0), met_w(pblh=600.0))
    with pytest.raises(ValueError, match="terrain"):
        GaussianPlume(geo, terrain="forest")
    with pytest.raises(Exception, match="NaN|support"):
        jax.jit(lambda p: m(p, met_w()).values)(dict(P0, Q=jnp.nan)).block_until_ready()
    with pytest.raises(Exception, match="speed"):
        jax.jit(lambda s: m(P0, MetField.uniform(s, 270.0, stability="D")).values)(
            0.1
        ).block_until_ready()


def test_stability_from_obukhov():
    geo = PointReceptors(np.array([500.0]), 0.0, 1.0)
    a = GaussianPlume(geo)(P0, MetField.uniform(4.0, 270.0, stability="F")).values
    metL = MetField.uniform(4.0, 270.0, stability=None, obukhov_length=15.0, z0=0.1)
    b = GaussianPlume(geo)(P0, metL).values
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)


def test_non_strict_mode_returns_nan_under_tracing_instead_of_raising():
    geo = ColumnImage(*GRID)
    met = MetField.uniform(4.0, 270.0, stability="C")
    bad = {"Q": jnp.asarray(jnp.nan), "x0": 0.0, "y0": 0.0, "H": 5.0}
    good = {"Q": jnp.asarray(0.1), "x0": 0.0, "y0": 0.0, "H": 5.0}
    lenient = jax.jit(lambda p: GaussianPlume(geo, strict=False)(p, met).values)
    assert bool(jnp.all(jnp.isnan(lenient(bad))))
    strict_values = jax.jit(lambda p: GaussianPlume(geo)(p, met).values)(good)
    np.testing.assert_array_equal(lenient(good), strict_values)
    with pytest.raises(Exception, match="support"):  # strict (default) still raises
        jax.jit(lambda p: GaussianPlume(geo)(p, met).values)(bad).block_until_ready()
    with pytest.raises(ValueError, match="NaN"):  # eager calls always raise
        GaussianPlume(geo, strict=False)(bad, met)
