"""Surface-layer profile and stability (plumax_core._met_profile) against closed forms and
published tables.

Sources: Dyer (1974), Boundary-Layer Meteorol. 7, 363-372 (phi_m = (1 - 16 z/L)^-1/4
unstable, 1 + 5 z/L stable); Paulson (1970), J. Appl. Meteor. 9, 857-861 (psi_m);
Stull (1988), An Introduction to Boundary Layer Meteorology (log law, Obukhov length);
Golder (1972) as fitted in Seinfeld & Pandis (2006), Atmospheric Chemistry and Physics,
2nd ed., eq. 16.83 p. 751 (1/L = a + b log10 z0 per class); US EPA (2000),
EPA-454/R-99-005, section 6.4 (SRDT and Turner keys); NOAA "General Solar Position
Calculations" (sun elevation). Varon et al. (2018), AMT 11, 5673 for the wind-error
context of default_wind_uncertainty.
"""

import math

import numpy as np
import pytest

from plumax_core import default_wind_uncertainty
from plumax_core._geo import seconds_since_epoch
from plumax_core._met_profile import (
    CP_DRY_AIR,
    GRAVITY,
    R_DRY_AIR,
    VON_KARMAN,
    golder_class,
    insolation_class,
    obukhov_length,
    psi_m,
    sun_elevation,
    wind_at_height,
)

# Seinfeld & Pandis (2006) eq. 16.83 coefficients (a, b), classes A..F
GOLDER = [(-0.096, 0.029), (-0.037, 0.029), (-0.002, 0.018), (0.0, 0.0), (0.004, -0.018),
          (0.035, -0.036)]  # fmt: skip


def test_neutral_log_law_closed_form():
    for z, z0 in [(50.0, 0.1), (2.0, 0.03), (80.0, 0.0002)]:
        expected = 5.0 * math.log(z / z0) / math.log(10.0 / z0)
        assert float(wind_at_height(5.0, z, z0)) == pytest.approx(expected, rel=1e-12)
    assert float(wind_at_height(4.0, 10.0, 0.1)) == pytest.approx(4.0)


def test_monin_obukhov_tends_to_neutral():
    neutral = wind_at_height(6.0, 60.0, 0.05)
    for L in (np.inf, 1e12, -1e12):
        np.testing.assert_allclose(wind_at_height(6.0, 60.0, 0.05, L), neutral, rtol=1e-9)
    # stable flow shears more, unstable less, than neutral above the reference height
    assert wind_at_height(6.0, 60.0, 0.05, 100.0) > neutral > wind_at_height(6.0, 60.0, 0.05, -20.0)


def test_psi_m_against_dyer_phi():
    # psi_m(zeta) = integral_0^zeta (1 - phi_m(x)) / x dx, so d psi_m / d zeta = (1 - phi_m)/zeta
    def phi(z):
        return np.where(z < 0, np.abs(1.0 - 16.0 * z) ** -0.25, 1.0 + 5.0 * z)

    zeta = np.array([-5.0, -1.0, -0.3, -0.02, 0.02, 0.4, 0.9])
    h = 1e-6
    deriv = (psi_m(zeta + h) - psi_m(zeta - h)) / (2 * h)
    np.testing.assert_allclose(deriv, (1.0 - phi(zeta)) / zeta, rtol=1e-6)
    np.testing.assert_allclose(psi_m(np.array([0.3, 1.0])), [-1.5, -5.0])
    assert float(psi_m(0.0)) == 0.0
    # Paulson closed form at zeta = -1: x = 17**0.25
    x = 17.0**0.25
    paulson = 2 * math.log((1 + x) / 2) + math.log((1 + x * x) / 2) - 2 * math.atan(x) + math.pi / 2
    assert float(psi_m(-1.0)) == pytest.approx(paulson, rel=1e-12)


def test_stable_profile_beyond_dyer_range_is_refused():
    with pytest.raises(ValueError, match="height"):
        wind_at_height(5.0, 50.0, 0.1, 20.0)


@pytest.mark.parametrize("z0", [0.001, 0.01, 0.1, 0.5])
def test_golder_classes_on_the_published_lines(z0):
    # a point on each class's line (Seinfeld & Pandis eq. 16.83) is in that class
    for k, (a, b) in enumerate(GOLDER):
        inv_l = a + b * math.log10(z0)
        L = math.inf if inv_l == 0 else 1.0 / inv_l
        assert int(golder_class(L, z0)) == k, (k, z0, L)


def test_golder_classes_read_off_for_z0_01m():
    # z0 = 0.1 m: lines at 1/L = -0.125 (A), -0.066 (B), -0.020 (C), 0 (D), 0.022 (E), 0.071 (F)
    L = np.array([-5.0, -12.0, -40.0, -500.0, np.inf, 500.0, 40.0, 20.0, 5.0])
    np.testing.assert_array_equal(golder_class(L, 0.1), [0, 1, 2, 3, 3, 3, 4, 5, 5])
    with pytest.raises(ValueError, match="z0"):
        golder_class(-10.0, 2.0)


def test_obukhov_length_sign_and_value():
    ustar, t, p = 0.4, 300.0, 90000.0
    L_up = float(obukhov_length(ustar, 200.0, t, p))  # heated surface: upward flux
    rho = p / (R_DRY_AIR * t)
    assert L_up == pytest.approx(-rho * CP_DRY_AIR * t * ustar**3 / (VON_KARMAN * GRAVITY * 200.0))
    assert L_up < 0  # unstable
    assert float(obukhov_length(ustar, -30.0, t, p)) > 0  # cooling surface: stable
    assert float(obukhov_length(ustar, 0.0, t, p)) == math.inf
    with pytest.raises(ValueError, match="ustar"):
        obukhov_length(-0.1, 10.0, t, p)


def test_insolation_classes_from_epa_keys():
    day = 45.0
    # SRDT daytime key: (wind m/s, radiation W m-2) -> class
    cases = [(1.0, 1000.0, 0), (1.0, 500.0, 1), (2.5, 700.0, 1), (4.0, 500.0, 2), (5.5, 950.0, 2),
             (7.0, 800.0, 3), (1.0, 100.0, 3)]  # fmt: skip
    for s, r, k in cases:
        assert int(insolation_class(s, r, np.nan, day)) == k, (s, r)
    # Turner night: clear (<= 0.4) and calm -> G reported as F; cloudy 3 m/s (5.8 kt) -> E
    assert int(insolation_class(0.5, np.nan, 0.2, -10.0)) == 5
    assert int(insolation_class(3.0, np.nan, 0.8, -10.0)) == 4
    assert int(insolation_class(8.0, np.nan, 0.1, -10.0)) == 3  # 15.6 kt -> D
    with pytest.raises(ValueError, match="cloud_cover"):
        insolation_class(3.0, np.nan, np.nan, -10.0)


def test_sun_elevation():
    # June solstice, local noon on the Tropic of Cancer: the sun is near the zenith
    t = seconds_since_epoch("2024-06-20T12:00:00")
    assert float(sun_elevation(t, 0.0, 23.44)) > 89.0
    # local midnight: elevation = lat + decl - 90 = -43.1 degrees
    assert float(sun_elevation(t, 180.0, 23.44)) == pytest.approx(-43.1, abs=0.5)
    # equinox noon at 50N: elevation ~ 40 degrees
    t = seconds_since_epoch("2024-03-20T12:00:00")
    assert float(sun_elevation(t, 0.0, 50.0)) == pytest.approx(40.0, abs=1.0)


def test_default_wind_uncertainty():
    s, d = default_wind_uncertainty("ERA5 single levels era5.nc")
    assert s == pytest.approx(math.log(1.5)) and d == 30.0
    assert default_wind_uncertainty("wrf wrfout_d01") == (pytest.approx(math.log(1.3)), 20.0)
    assert default_wind_uncertainty("user") == (0.0, 0.0)
    with pytest.raises(ValueError, match="known sources"):
        default_wind_uncertainty("GEOS-FP")
