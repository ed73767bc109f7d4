"""Typed reference values checked against published ones; fast LBL path vs dense path."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import plumax_rtm as pr
from plumax_rtm._atmosphere import _AFGL
from plumax_rtm._instruments import _REGULAR

R0_KM = 6356.766  # US Standard Atmosphere 1976 effective Earth radius for geopotential
G0M_OVER_R = 9.80665 * 0.0289644 / 8.31432  # K/m, the 1976 constants (R* = 8.31432)


def us76(z_km):
    """US Standard Atmosphere 1976 below 11 km geopotential, from its lapse rate:
    T = 288.15 - 6.5 H,  p = 1013.25 (T/288.15)^(g0 M/(R L)),  H = r0 z/(r0 + z)."""
    h = R0_KM * np.asarray(z_km, float) / (R0_KM + np.asarray(z_km, float))
    t = 288.15 - 6.5 * h
    p = 1013.25 * (t / 288.15) ** (G0M_OVER_R / 6.5e-3)
    return t, p


def test_us76_key_published_values():
    t, p = us76([0.0, 10.0])
    np.testing.assert_allclose(t, [288.15, 223.25], atol=0.01)
    np.testing.assert_allclose(p, [1013.25, 264.99], atol=0.01)


def _half_unit_4_digits(v):
    return 0.5 * 10.0 ** (np.floor(np.log10(np.abs(v))) - 3)


def test_afgl_us_standard_is_us76_rounded_to_4_digits():
    p_tab, t_tab, _ = (np.asarray(a, float) for a in _AFGL["us_standard"])
    t, p = us76(np.arange(11.0))
    assert np.all(np.abs(t_tab - t) <= _half_unit_4_digits(t) + 1e-6), t_tab - t
    assert np.all(np.abs(p_tab - p) <= _half_unit_4_digits(p) + 1e-6), p_tab - p


@pytest.mark.parametrize(
    "name,level,p_mb,t_k,h2o",
    [
        # Anderson et al. (1986) Tables 1a-f/2a-d as transcribed in pyrtlib's climatology.
        ("us_standard", 1, 898.8, 281.7, 6071.0),
        ("tropical", 2, 805.0, 287.7, 15340.0),
        ("midlatitude_summer", 5, 554.0, 267.2, 2225.0),
        ("midlatitude_winter", 4, 608.1, 255.7, 1280.0),
        ("midlatitude_winter", 9, 299.3, 225.7, 55.66),
        ("midlatitude_winter", 10, 256.8, 219.7, 29.60),
    ],
)
def test_afgl_spot_values(name, level, p_mb, t_k, h2o):
    p, t, h = (np.asarray(a, float) for a in _AFGL[name])
    assert (p[level], t[level], h[level]) == (p_mb, t_k, h2o)


def test_prisma_band_count_matches_eoportal():
    assert _REGULAR["PRISMA"][2] == 173  # eoPortal: 173 NIR/SWIR channels, 920-2505 nm
    assert _REGULAR["PRISMA"][:2] == (920.0, 2505.0)


def _lines(n=40, seed=0):
    rng = np.random.default_rng(seed)
    nu = np.sort(rng.uniform(4384.0, 4386.0, n))
    return pr.LineList(
        molecule=np.full(n, 6),
        isotopologue=np.ones(n, int),
        nu=nu,
        sw=10.0 ** rng.uniform(-23, -20, n),
        gamma_air=rng.uniform(0.04, 0.07, n),
        gamma_self=rng.uniform(0.06, 0.09, n),
        elower=rng.uniform(0, 1000, n),
        n_air=rng.uniform(0.6, 0.8, n),
        delta_air=rng.uniform(-0.01, 0.0, n),
        mass=np.full(n, 16.0313),
    )


@pytest.mark.parametrize("p,T", [(101325.0, 296.0), (2e4, 220.0), (500.0, 250.0)])
def test_windowed_cross_section_matches_dense(x64, p, T):
    lines = _lines()
    grid = jnp.asarray(np.arange(4383.5, 4386.5, 0.002))
    fast = np.asarray(pr.cross_section(lines, grid, p, T))
    dense = np.asarray(pr.cross_section(lines, grid, p, T, core=0))
    m = dense > 1e-6 * dense.max()
    assert np.max(np.abs(fast[m] - dense[m]) / dense[m]) < 1e-6
    g = jax.grad(lambda p, T: pr.cross_section(lines, grid, p, T).sum(), (0, 1))(p, T)
    gd = jax.grad(lambda p, T: pr.cross_section(lines, grid, p, T, core=0).sum(), (0, 1))(p, T)
    np.testing.assert_allclose(g, gd, rtol=1e-6)


def test_windowed_cross_section_refuses_too_narrow_window(x64):
    lines = _lines(5)
    grid = jnp.asarray(np.arange(4383.5, 4386.5, 0.002))
    with pytest.raises(ValueError, match="max_temperature"):
        pr.cross_section(lines, grid, 1e5, 500.0)
    # Traced T above the bound the window was sized for: NaN, never a silent error.
    out = jax.jit(lambda t: pr.cross_section(lines, grid, 1e5, t, max_temperature=200.0))(400.0)
    assert np.all(np.isnan(np.asarray(out)))
