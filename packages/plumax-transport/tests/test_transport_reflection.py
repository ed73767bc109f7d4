"""Vertical reflection: normalisation, closed forms, limits and the truncation bound."""

import math

import numpy as np
import pytest
from scipy import integrate, special

from plumax_transport import reflection_error_bound, vertical_density, vertical_fraction


def ref_images(z, H, s, L, N=60):
    """Independent NumPy reference: the image sum with 2N+1 pairs (float64)."""
    n = np.arange(-N, N + 1)[:, None]
    z = np.asarray(z, float)[None]
    g = np.exp(-0.5 * ((z - H - 2 * n * L) / s) ** 2) + np.exp(
        -0.5 * ((z + H - 2 * n * L) / s) ** 2
    )
    return g.sum(0) / (math.sqrt(2 * math.pi) * s)


@pytest.mark.parametrize("r", [0.05, 0.3, 0.69, 0.71, 1.5, 5.0])
@pytest.mark.parametrize("method", ["hybrid", "images"])
def test_density_normalised_and_matches_reference(r, method, x64):
    L, H = 800.0, 120.0
    s = r * L
    z = np.linspace(0, L, 2001)
    v = np.asarray(vertical_density(z, H, s, L, n_images=3, method=method))
    ref = ref_images(z, H, s, L)
    bound = reflection_error_bound(s, L, n_images=3, method=method) / (math.sqrt(2 * math.pi) * s)
    assert np.max(np.abs(v - ref)) <= bound + 1e-15
    if method == "hybrid":
        assert np.max(np.abs(v - ref)) <= 1e-13 * np.max(ref)
        assert integrate.simpson(v, x=z) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("N", [0, 1, 2])
def test_error_bound_holds_for_few_images(N, x64):
    L, H = 500.0, 400.0
    for r in [0.2, 0.5, 1.0, 2.0]:
        s = r * L
        z = np.linspace(0, L, 401)
        v = np.asarray(vertical_density(z, H, s, L, n_images=N, method="images"))
        err = np.max(np.abs(v - ref_images(z, H, s, L))) * math.sqrt(2 * math.pi) * s
        assert err <= reflection_error_bound(s, L, n_images=N, method="images") + 1e-14


def test_no_lid_normalised_and_h0_collapses(x64):
    s = 40.0
    zz = np.linspace(0.0, 25.0 + 12 * s, 20001)
    val = integrate.simpson(np.asarray(vertical_density(zz, 25.0, s, None)), x=zz)
    assert val == pytest.approx(1.0, rel=1e-8)
    z = np.linspace(0, 200, 11)
    two = 2 * np.exp(-0.5 * (z / s) ** 2) / (math.sqrt(2 * math.pi) * s)
    np.testing.assert_allclose(np.asarray(vertical_density(z, 0.0, s, None)), two, rtol=1e-12)
    np.testing.assert_allclose(
        np.asarray(vertical_density(z, 0.0, s, 300.0)), ref_images(z, 0.0, s, 300.0), rtol=1e-10
    )


def test_infinite_lid_removes_images(x64):
    z = np.linspace(0, 500, 11)
    a = vertical_density(z, 30.0, 60.0, 1e9)
    b = vertical_density(z, 30.0, 60.0, None)
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12)


@pytest.mark.parametrize("method,N", [("hybrid", 3), ("images", 40)])
def test_well_mixed_limit(method, N, x64):
    L = 600.0
    z = np.linspace(0, L, 7)
    for r, tol in [(3.0, 1e-6), (10.0, 1e-12)]:
        v = np.asarray(vertical_density(z, 50.0, r * L, L, n_images=N, method=method))
        np.testing.assert_allclose(v, 1.0 / L, rtol=tol)


@pytest.mark.parametrize("r", [0.1, 0.6, 0.8, 3.0])
def test_fraction_closed_form(r, x64):
    L, H = 700.0, 80.0
    s = r * L
    for zt in [50.0, 300.0, 699.0]:
        zz = np.linspace(0.0, zt, 4001)
        num = integrate.simpson(np.asarray(vertical_density(zz, H, s, L)), x=zz)
        assert float(vertical_fraction(zt, H, s, L)) == pytest.approx(num, abs=1e-9)
    assert float(vertical_fraction(L, H, s, L)) == pytest.approx(1.0, abs=1e-12)
    assert float(vertical_fraction(5 * L, H, s, L)) == pytest.approx(1.0, abs=1e-12)
    # no lid: Gaussian CDF form
    zt = 100.0
    ref = 0.5 * (
        special.erf((zt - H) / (math.sqrt(2) * s)) + special.erf((zt + H) / (math.sqrt(2) * s))
    )
    assert float(vertical_fraction(zt, H, s, None)) == pytest.approx(ref, rel=1e-12)


def test_bad_method():
    with pytest.raises(ValueError, match="method"):
        vertical_density(1.0, 1.0, 1.0, 10.0, method="fft")
