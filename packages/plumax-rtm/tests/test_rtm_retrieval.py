"""Synthetic EMIT-like scene: matched filters, saturation, OE, masking and flux."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

import plumax_rtm as pr

PIXEL = 60.0  # m (EMIT)
Q_TRUE = 4.0  # kg/s (a super-emitter, so the scene spans linear to saturated)
U = 5.0  # m/s along +x
SRC = (20, 4)  # (iy, ix)


def gaussian_plume_column(ny, nx, q, u, pixel, src):
    """Analytic vertically integrated Gaussian plume (ppm·m), wind along +x.

    ``Ω(x, y) = Q / (√(2π) σ_y(x) U) exp(-y² / 2σ_y²)`` with Briggs (1973) open-country
    class-D ``σ_y = 0.08 x (1 + 1e-4 x)^{-1/2}`` (x in m).
    """
    iy, ix = np.indices((ny, nx), dtype=float)
    x = (ix - src[1]) * pixel
    y = (iy - src[0]) * pixel
    xs = np.maximum(x, pixel / 2)
    sy = np.maximum(0.08 * xs / np.sqrt(1 + 1e-4 * xs), pixel / 2)
    om = q / (np.sqrt(2 * np.pi) * sy * u) * np.exp(-(y**2) / (2 * sy**2))
    return np.where(x > 0, om, 0.0) / pr.KG_M2_PER_PPM_M


@pytest.fixture(scope="module")
def scene():
    table = pr.load_mag1c_table().subset(2150.0, 2450.0)
    rtm = pr.BeerLambertRTM.from_absorbers({"CH4": table}, sza_deg=30.0, n_poly=2)
    srf = pr.SpectralResponse.for_instrument("EMIT", rtm.wavelength)
    ny, nx = 40, 36
    truth = gaussian_plume_column(ny, nx, Q_TRUE, U, PIXEL, SRC)
    rng = np.random.default_rng(0)
    albedo = 0.25 + 0.08 * rng.standard_normal((ny, nx))
    albedo = np.clip(albedo, 0.05, None)
    slope = 0.03 * rng.standard_normal((ny, nx))
    coeffs = np.stack([albedo, slope * albedo], -1)
    clean = jax.jit(jax.vmap(jax.vmap(lambda dx, c: srf(rtm(dx, 1.0, c)))))(
        jnp.asarray(truth, jnp.float32), jnp.asarray(coeffs, jnp.float32)
    )
    noise = pr.NoiseModel(snr=300.0)
    sigma = noise.sigma(clean)
    rad = noise.sample(clean, key=jax.random.key(1))
    target = pr.target_spectrum(rtm, srf)
    return dict(rtm=rtm, srf=srf, truth=truth, rad=rad, sigma=sigma, target=target)


def _slope(est, truth, sel):
    return float(np.sum(est[sel] * truth[sel]) / np.sum(truth[sel] ** 2))


def test_target_spectrum_is_jvp(scene):
    rtm, srf = scene["rtm"], scene["srf"]
    h = 10.0
    fd = (jnp.log(srf(rtm(h))) - jnp.log(srf(rtm(-h)))) / (2 * h)
    np.testing.assert_allclose(scene["target"], fd, rtol=0, atol=1e-2 * float(jnp.abs(fd).max()))
    assert float(scene["target"].min()) < 0


def _plume_exclusion(scene):
    """First pass, then a dilated detection mask to keep the plume out of C."""
    from scipy import ndimage

    a = np.asarray(pr.matched_filter(scene["rad"], scene["target"]).enhancement)
    m = pr.plume_mask(a, pr.far_threshold(a, 0.02), min_pixels=3)
    return ndimage.binary_dilation(m, iterations=2)


@pytest.fixture(scope="module")
def exclusion(scene):
    return _plume_exclusion(scene)


@pytest.mark.parametrize("cov", pr.COVARIANCES)
def test_matched_filter_linear_slope(scene, exclusion, cov):
    res = pr.matched_filter(
        scene["rad"], scene["target"], covariance=cov, rank=8, exclude=exclusion
    )
    a, t = np.asarray(res.enhancement), scene["truth"]
    sel = (t > 200) & (t < 1000)
    s = _slope(a, t, sel)
    assert 0.9 < s < 1.1, (cov, s)
    bg = t < 1.0
    assert abs(np.median(a[bg])) < 2 * float(res.uncertainty.mean())


@pytest.mark.slow
def test_columnwise_albedo_sparse(scene, exclusion):
    t = scene["truth"]
    sel = (t > 200) & (t < 1000)
    col = pr.matched_filter(scene["rad"], scene["target"], columnwise=True, exclude=exclusion)
    # 40 pixels per column for 38 bands: noisy statistics, so only correlation is checked.
    c = np.asarray(col.enhancement)
    assert np.corrcoef(c[t > 200], t[t > 200])[0, 1] > 0.8
    alb = pr.matched_filter(
        scene["rad"], scene["target"], albedo_correction=True, exclude=exclusion
    )
    assert 0.9 < _slope(np.asarray(alb.enhancement), t, sel) < 1.1
    # Non-negativity clips noise from below: a known positive bias at low signal.
    sp0 = pr.sparse_matched_filter(scene["rad"], scene["target"], n_iter=5)
    assert 0.9 < _slope(np.asarray(sp0.enhancement), t, sel) < 1.4
    sp = pr.sparse_matched_filter(scene["rad"], scene["target"], n_iter=5, l1=5.0)
    assert np.nanmin(np.asarray(sp.enhancement)) >= 0.0
    assert np.mean(np.asarray(sp.enhancement)[t < 1] == 0) > 0.5  # sparse background


def test_saturation_bias_reported_and_oe_removes_it(scene, exclusion):
    rtm, srf, t = scene["rtm"], scene["srf"], scene["truth"]
    res = pr.matched_filter(scene["rad"], scene["target"], exclude=exclusion)
    a = np.asarray(res.enhancement)
    high = t > 4000
    assert high.sum() >= 3
    mf_bias = float(np.mean(a[high] / t[high]) - 1)
    assert mf_bias < -0.1  # known saturation bias of the linear filter
    grid = np.linspace(0, 40000, 81)
    curve = pr.saturation_curve(rtm, srf, scene["target"], grid)
    # The Beer-Lambert curve predicts the bias seen in the scene.
    pred = np.interp(t[high], grid, np.asarray(curve)) / t[high] - 1
    assert abs(float(np.mean(pred)) - mf_bias) < 0.15
    iy, ix = np.nonzero(high)
    oe = pr.optimal_estimation(
        rtm,
        srf,
        scene["rad"][iy, ix],
        scene["sigma"][iy, ix],
        prior_mean=jnp.array([0.0, 1.0, 0.25, 0.0]),
        prior_std=jnp.array([1e5, 0.3, 1.0, 0.5]),
    )
    oe_bias = float(np.mean(np.asarray(oe.enhancement) / t[high]) - 1)
    assert abs(oe_bias) < 0.5 * abs(mf_bias), (oe_bias, mf_bias)
    assert bool(np.all(oe.converged))
    assert np.all(np.asarray(oe.dfs) > 1.0)
    post = pr.oe_posterior(oe, 0, rtm=rtm)
    assert post.mean.shape == (4,) and post.provenance["converged"] is True
    assert 0 < float(post.std()[0]) < 0.2 * float(post.mean[0])
    print(f"MF bias {mf_bias:+.3f}, OE bias {oe_bias:+.3f}")


def test_mask_and_flux_recover_q(scene, exclusion):
    res = pr.matched_filter(scene["rad"], scene["target"], exclude=exclusion)
    grid = np.linspace(0, 60000, 121)
    curve = pr.saturation_curve(scene["rtm"], scene["srf"], scene["target"], grid)
    a = pr.desaturate(np.asarray(res.enhancement), grid, curve)
    sig = float(res.uncertainty.mean())
    thr = pr.far_threshold(a, 0.01)
    mask = pr.plume_mask(a, thr, min_pixels=5, source_pixel=SRC)
    assert mask.sum() >= 10 and mask[SRC[0], SRC[1] + 2]
    ime = pr.ime_flux(a, mask, PIXEL, U, u10_std=0.5, enhancement_std=sig)
    csf = pr.csf_flux(
        a, PIXEL, U, SRC, distances_px=(8, 12, 16, 20, 24), wind_std=0.5, enhancement_std=sig
    )
    print(f"IME {ime.rate:.3f}±{ime.uncertainty:.3f}, CSF {csf.rate:.3f}±{csf.uncertainty:.3f}")
    assert abs(ime.rate - Q_TRUE) <= ime.uncertainty
    assert abs(csf.rate - Q_TRUE) <= csf.uncertainty
    with pytest.raises(ValueError, match="mask"):
        pr.ime_flux(a, np.zeros_like(mask), PIXEL, U)
    with pytest.raises(ValueError, match="u10"):
        pr.effective_wind(-1.0)


def test_bad_input_masking_and_errors(scene):
    rad = np.array(scene["rad"])
    rad[0, 0, 3] = np.nan
    rad[1, 2, :] = np.inf
    res = pr.matched_filter(rad, scene["target"])
    assert res.n_masked == 2
    assert np.isnan(res.enhancement[0, 0]) and np.isfinite(res.enhancement[5, 5])
    with pytest.raises(ValueError, match="bands"):
        pr.matched_filter(rad[..., :-1], scene["target"])
    wl = np.asarray(scene["srf"].centers)
    with pytest.raises(ValueError, match="ascending"):
        pr.matched_filter(rad, scene["target"], wavelengths=wl[::-1])
    with pytest.raises(ValueError, match="covariance"):
        pr.matched_filter(rad, scene["target"], covariance="robust")
    with pytest.raises(ValueError, match="bands"):
        pr.optimal_estimation(scene["rtm"], scene["srf"], rad[0, :, :-1], 1.0)


def test_scene_xarray_dask_matches_in_memory(scene):
    rad = np.asarray(scene["rad"])
    da = xr.DataArray(
        rad, dims=("y", "x", "band"), coords={"band": np.asarray(scene["srf"].centers)}
    )
    eager = pr.scene_matched_filter(da, scene["target"])
    lazy = pr.scene_matched_filter(da.chunk({"y": 10, "x": 12}), scene["target"])
    np.testing.assert_allclose(lazy.compute().values, eager.values, rtol=1e-4, atol=1e-2)
    ref = pr.matched_filter(rad, scene["target"]).enhancement
    np.testing.assert_allclose(eager.values, ref, rtol=0, atol=0.02 * float(np.abs(ref).max()))
    assert eager.attrs["units"] == "ppm m"
    with pytest.raises(ValueError, match="dims"):
        pr.scene_matched_filter(da.transpose("band", "y", "x"), scene["target"])
