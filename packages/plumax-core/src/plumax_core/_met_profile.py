r"""Surface-layer wind profile and stability: Obukhov length, Pasquill class.

Plain NumPy (these functions run once, at the met readers, outside ``jit``). Every
function takes scalars or arrays (broadcast together) and returns float64 arrays.

**Obukhov length** (Obukhov 1946; Stull 1988, *An Introduction to Boundary Layer
Meteorology*, section 5.7), from the friction velocity ``u*`` and the *upward* surface
sensible heat flux ``H`` (W m-2):

$$ L = -\frac{\rho\, c_p\, T\, u_*^3}{\kappa\, g\, H}, \qquad \rho = \frac{p}{R_d T}, $$

with ``kappa`` = 0.4, ``g`` = 9.80665 m s-2, ``c_p`` = 1004.7 J kg-1 K-1 and ``R_d`` =
287.05 J kg-1 K-1 (dry air; the humidity correction of the density, < 1 %, is left out).
An upward flux (a heated surface) gives ``L < 0`` (unstable); ``H = 0`` gives
``L = +inf`` (neutral). The sign conventions of the products differ: ECMWF fluxes are
positive *downwards* ("The ECMWF convention for all flux fields is that downward is
positive", ECMWF Data FAQ, http://www.ecmwf.int/products/data/archive/data_faq.html,
and the parameter-database comment "The flux sign convention is positive downwards" for
the surface sensible heat flux), so ERA5 ``ishf`` enters as ``H = -ishf``; WRF ``HFX``
is upward positive and enters as is.

**Wind profile.** Monin-Obukhov similarity (Stull 1988, section 9.7):

$$ u(z) = \frac{u_*}{\kappa}\Big[\ln\frac{z}{z_0} - \psi_m\big(\tfrac{z}{L}\big)
    + \psi_m\big(\tfrac{z_0}{L}\big)\Big], $$

so the wind at ``z`` from the wind at the reference height ``z_r`` (10 m) is the ratio
of two brackets (``u*`` cancels). The integrated stability function is the
Businger-Dyer form: for ``zeta = z/L < 0`` (Paulson 1970, *J. Appl. Meteor.* 9,
857-861, with Dyer 1974's ``gamma = 16``), ``x = (1 - 16 zeta)^{1/4}``,

$$ \psi_m = 2\ln\frac{1+x}{2} + \ln\frac{1+x^2}{2} - 2\arctan x + \frac{\pi}{2}; $$

for ``0 <= zeta <= 1`` (Dyer 1974, *Boundary-Layer Meteorol.* 7, 363-372,
``phi_m = 1 + 5 zeta``), ``psi_m = -5 zeta``. Beyond ``zeta = 1`` the log-linear law is
outside the range it was fitted on and :func:`wind_at_height` refuses the height. With
``L`` unknown (or infinite) the profile is the neutral log law
``u(z) = u(z_r) ln(z/z0) / ln(z_r/z0)`` (Stull 1988, section 9.7). Equation and
section numbers of Stull (1988) are quoted from memory, not re-checked here.

**Pasquill class from (L, z0)** (Golder 1972, *Boundary-Layer Meteorol.* 3, 47-58, as
fitted in Seinfeld & Pandis 2006, *Atmospheric Chemistry and Physics*, 2nd ed.,
eq. 16.83 p. 751: each class's line in Golder's nomogram is
``1/L = a + b log10(z0)``, with ``(a, b)`` = A (-0.096, 0.029), B (-0.037, 0.029),
C (-0.002, 0.018), D (0, 0), E (0.004, -0.018), F (0.035, -0.036)). The class is the
line nearest in ``1/L``: the class boundaries are the midpoints between consecutive
lines. The lines keep their A-F order only for ``z0`` below 1.29 m (line C crosses D
there), so :func:`golder_class` refuses ``z0 > 1 m``.

**Pasquill class without fluxes** (US EPA 2000, *Meteorological Monitoring Guidance
for Regulatory Modeling Applications*, EPA-454/R-99-005, section 6.4): by day (sun
above the horizon) the solar-radiation/delta-T (SRDT) method of Bowen et al. (1983),
whose daytime key uses the 10 m wind speed and the global solar radiation ``R``:

================  ========  ============  ============  =======
wind (m/s)        R >= 925  675 <= R <925  175 <= R <675  R < 175
================  ========  ============  ============  =======
< 2               A         A             B             D
2 - 3             A         B             C             D
3 - 5             B         B             C             D
5 - 6             C         C             D             D
>= 6              C         D             D             D
================  ========  ============  ============  =======

By night the SRDT key needs a vertical temperature difference that reanalyses do not
provide, so the night classes follow Turner's (1964) net-radiation index as given in the
same guidance: index -2 for total cloud cover <= 4/10, -1 above, with wind in knots:

=============  ===  ===  ===  ===  ===  ===  ===  ===  =====
wind (knots)   0-1  2-3  4-5  6    7    8-9  10   11   >= 12
=============  ===  ===  ===  ===  ===  ===  ===  ===  =====
index -1       F    F    E    E    D    D    D    D    D
index -2       G    G    F    F    E    E    E    D    D
=============  ===  ===  ===  ===  ===  ===  ===  ===  =====

Turner's class G (extremely stable) has no index in :class:`plumax_core.MetField`
(A-F): it is reported as F, stated here and nowhere hidden. Not confirmed against the
EPA document itself (no copy was at hand): the table numbers in EPA-454/R-99-005 and
the exact row boundaries of the Turner key; both tables are as widely reproduced.

**Sun elevation** (NOAA Global Monitoring Division, "General Solar Position
Calculations", after Spencer 1971): fractional year ``gamma``, declination and equation
of time from Spencer's Fourier series, hour angle from the true solar time.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._units import DAY, G0, HOUR, R_DRY_AIR as _R_DRY_AIR

__all__ = [
    "CP_DRY_AIR",
    "GRAVITY",
    "R_DRY_AIR",
    "VON_KARMAN",
    "golder_class",
    "insolation_class",
    "obukhov_length",
    "psi_m",
    "sun_elevation",
    "wind_at_height",
]

#: von Karman constant.
VON_KARMAN = 0.4
#: Standard gravity, m s-2.
GRAVITY = G0
#: Specific heat of dry air at constant pressure, J kg-1 K-1.
CP_DRY_AIR = 1004.7
#: Gas constant of dry air, J kg-1 K-1.
R_DRY_AIR = _R_DRY_AIR
#: Reference height of the surface wind (u10), m.
REFERENCE_HEIGHT = 10.0
#: Largest roughness length for which Golder's fitted lines keep their class order, m.
GOLDER_MAX_Z0 = 1.0

# Seinfeld & Pandis (2006) eq. 16.83: 1/L = a + b log10(z0), classes A..F.
_GOLDER_A = np.array([-0.096, -0.037, -0.002, 0.0, 0.004, 0.035])
_GOLDER_B = np.array([0.029, 0.029, 0.018, 0.0, -0.018, -0.036])

# SRDT daytime key (EPA-454/R-99-005, Bowen et al. 1983): rows wind < 2, 2-3, 3-5, 5-6,
# >= 6 m/s; columns R >= 925, 675-925, 175-675, < 175 W m-2; 0..5 = A..F.
_SRDT_WIND = np.array([2.0, 3.0, 5.0, 6.0])
_SRDT_RAD = np.array([175.0, 675.0, 925.0])  # ascending; column = 3 - searchsorted
_SRDT_DAY = np.array(
    [
        [0, 0, 1, 3],
        [0, 1, 2, 3],
        [1, 1, 2, 3],
        [2, 2, 3, 3],
        [2, 3, 3, 3],
    ]
)
# Turner (1964) night rows, wind in knots: 0-1, 2-3, 4-5, 6, 7, 8-9, 10, 11, >= 12.
_KNOT = 1852.0 / HOUR  # m/s
_TURNER_KNOTS = np.array([2.0, 4.0, 6.0, 7.0, 8.0, 10.0, 11.0, 12.0])
_TURNER_NIGHT = {  # 6 = G, reported as F (5)
    -1: np.array([5, 5, 4, 4, 3, 3, 3, 3, 3]),
    -2: np.array([6, 6, 5, 5, 4, 4, 4, 3, 3]),
}


def _f64(name: str, x: Any) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if np.any(np.isnan(arr)):
        raise ValueError(f"`{name}` has NaN values")
    return arr


def psi_m(zeta: Any) -> np.ndarray:
    """Integrated stability function for momentum ``psi_m(zeta)``, ``zeta = z/L``.

    Paulson (1970) with Dyer's (1974) ``gamma = 16`` for ``zeta < 0``; ``-5 zeta`` for
    ``zeta >= 0`` (Dyer 1974). ``zeta = 0`` (and ``L = inf``) gives 0. No range check
    here (see :func:`wind_at_height`).
    """
    zeta = _f64("zeta", zeta)
    out = -5.0 * zeta
    neg = zeta < 0
    if np.any(neg):
        x = (1.0 - 16.0 * zeta[neg]) ** 0.25
        out = np.array(out, copy=True)
        out[neg] = (
            2.0 * np.log((1.0 + x) / 2.0)
            + np.log((1.0 + x * x) / 2.0)
            - 2.0 * np.arctan(x)
            + math.pi / 2.0
        )
    return out


def wind_at_height(
    u_ref: Any,
    height: Any,
    z0: Any,
    obukhov_length: Any = None,
    *,
    reference_height: float = REFERENCE_HEIGHT,
) -> np.ndarray:
    """Wind (same units as ``u_ref``) at ``height`` from the wind at ``reference_height``.

    Monin-Obukhov similarity with the Businger-Dyer functions (:func:`psi_m`) when
    ``obukhov_length`` (m) is given; the neutral log law when it is None or infinite.
    Works for speeds and for each wind component alike (the profile only rescales).

    Args:
        u_ref: wind at ``reference_height``, any shape.
        height: target height above ground, m (> z0).
        z0: roughness length, m (> 0, < height and < reference_height).
        obukhov_length: Obukhov length, m (non-zero; ``inf`` is neutral) or None.
        reference_height: height of ``u_ref``, m (default 10).

    Raises:
        ValueError: naming ``height`` or ``z0`` when a height is not above ``z0``, or
            naming ``height``/``obukhov_length`` when a stable ``z/L`` exceeds 1 (the
            range of Dyer's log-linear law).
    """
    u_ref = _f64("u_ref", u_ref)
    z = _f64("height", height)
    z0 = _f64("z0", z0)
    if np.any(z0 <= 0):
        raise ValueError(f"`z0` must be > 0 m, got {z0[z0 <= 0].ravel()[0]}")
    if np.any(z <= z0):
        raise ValueError(f"`height` must be above the roughness length z0; got {z} m, z0 {z0} m")
    if np.any(reference_height <= z0):
        raise ValueError(
            f"`z0` must be below the reference height {reference_height} m, got {z0.max()} m"
        )
    num = np.log(z / z0)
    den = np.log(reference_height / z0)
    if obukhov_length is not None:
        L = _f64("obukhov_length", obukhov_length)
        if np.any(L == 0):
            raise ValueError("`obukhov_length` must be non-zero (inf for neutral)")
        zmax = np.maximum(z, reference_height)
        zeta_max = np.broadcast_to(zmax / L, np.broadcast_shapes(zmax.shape, L.shape))
        if np.any(zeta_max > 1.0):
            raise ValueError(
                f"`height` {float(np.max(zmax))} m is above the stable surface layer: "
                f"z/L = {float(np.max(zeta_max)):.3g} > 1 for `obukhov_length` "
                f"{float(np.min(np.where(L > 0, L, np.inf))):.3g} m, outside the range of "
                "Dyer's (1974) log-linear profile; use a lower height or pressure-level winds"
            )
        psi0 = psi_m(z0 / L)
        num = num - psi_m(z / L) + psi0
        den = den - psi_m(reference_height / L) + psi0
    return u_ref * num / den


def obukhov_length(ustar: Any, heat_flux_up: Any, temperature: Any, pressure: Any) -> np.ndarray:
    """Obukhov length ``L = -rho c_p T u*^3 / (kappa g H)``, m (module docstring).

    Args:
        ustar: friction velocity, m s-1 (>= 0).
        heat_flux_up: surface sensible heat flux, W m-2, **positive upward** (ERA5's
            ``ishf`` is downward positive: pass ``-ishf``).
        temperature: near-surface air temperature, K (> 0).
        pressure: surface pressure, Pa (> 0).

    Returns:
        ``L`` in m: negative for an upward flux (unstable), positive for a downward one
        (stable), ``+inf`` for zero flux (neutral).

    Raises:
        ValueError: NaN inputs, a negative ``ustar``, non-positive temperature/pressure.
    """
    ustar = _f64("ustar", ustar)
    h = _f64("heat_flux_up", heat_flux_up)
    t = _f64("temperature", temperature)
    p = _f64("pressure", pressure)
    if np.any(ustar < 0):
        raise ValueError("`ustar` (friction velocity) must be >= 0 m s-1")
    if np.any(t <= 0) or np.any(p <= 0):
        raise ValueError("`temperature` (K) and `pressure` (Pa) must be > 0")
    if np.any((ustar == 0) & (h != 0)):
        raise ValueError(
            "`ustar` is 0 m s-1 with a non-zero `heat_flux_up`: L = 0 (free convection), "
            "outside the similarity profile; pass `stability=` to give the class"
        )
    rho = p / (R_DRY_AIR * t)
    num = -rho * CP_DRY_AIR * t * ustar**3
    with np.errstate(divide="ignore", invalid="ignore"):
        L = num / (VON_KARMAN * GRAVITY * h)
    return np.where(h == 0, np.inf, L)  # H = 0: neutral, L = +inf


def golder_class(obukhov_length: Any, z0: Any) -> np.ndarray:
    """Pasquill class index 0-5 (A-F) from ``L`` (m) and ``z0`` (m), Golder (1972).

    The class whose line ``1/L = a + b log10(z0)`` (Seinfeld & Pandis 2006, eq. 16.83)
    is nearest to the given ``1/L``.

    Raises:
        ValueError: NaN input, ``z0 <= 0`` or ``z0 > 1 m`` (beyond it the fitted lines
            no longer keep the A-F order).
    """
    L = _f64("obukhov_length", obukhov_length)
    z0 = _f64("z0", z0)
    if np.any(z0 <= 0):
        raise ValueError("`z0` must be > 0 m")
    if np.any(z0 > GOLDER_MAX_Z0):
        raise ValueError(
            f"`z0` = {float(z0.max()):g} m is beyond {GOLDER_MAX_Z0} m, where Golder's (1972) "
            "class lines (Seinfeld & Pandis 2006 eq. 16.83) lose their order; pass "
            "`stability=` to give the class"
        )
    if np.any(L == 0):
        raise ValueError("`obukhov_length` must be non-zero (inf for neutral)")
    inv_l = 1.0 / L  # 1/inf = 0: neutral
    lines = _GOLDER_A + _GOLDER_B * np.log10(z0)[..., None]  # (..., 6)
    bounds = 0.5 * (lines[..., 1:] + lines[..., :-1])  # (..., 5), ascending
    inv_l, bounds = np.broadcast_arrays(inv_l[..., None], bounds)
    return np.sum(inv_l > bounds, axis=-1).astype(np.int32)


def sun_elevation(seconds_utc: Any, lon: Any, lat: Any) -> np.ndarray:
    """Solar elevation angle, degrees, at ``seconds_utc`` (s since 1970-01-01 UTC) and
    ``lon``/``lat`` (degrees); NOAA "General Solar Position Calculations" (Spencer 1971).
    Accuracy about 0.1 degree, ample for a day/night and insolation test.
    """
    t = _f64("time", seconds_utc)
    lon = _f64("lon", lon)
    lat = _f64("lat", lat)
    day = np.floor(t / DAY)
    sec_of_day = t - day * DAY
    dt = np.datetime64("1970-01-01", "D") + day.astype("int64").astype("timedelta64[D]")
    year_start = dt.astype("datetime64[Y]").astype("datetime64[D]")
    doy = (dt - year_start).astype(np.float64) + 1.0
    year = dt.astype("datetime64[Y]").astype(np.int64) + 1970
    ndays = np.where((year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0)), 366.0, 365.0)
    hour = sec_of_day / HOUR
    g = 2.0 * math.pi / ndays * (doy - 1.0 + (hour - 12.0) / 24.0)
    eqtime = 229.18 * (
        0.000075
        + 0.001868 * np.cos(g)
        - 0.032077 * np.sin(g)
        - 0.014615 * np.cos(2 * g)
        - 0.040849 * np.sin(2 * g)
    )
    decl = (
        0.006918
        - 0.399912 * np.cos(g)
        + 0.070257 * np.sin(g)
        - 0.006758 * np.cos(2 * g)
        + 0.000907 * np.sin(2 * g)
        - 0.002697 * np.cos(3 * g)
        + 0.00148 * np.sin(3 * g)
    )
    true_solar_min = hour * 60.0 + eqtime + 4.0 * lon
    hour_angle = np.deg2rad(true_solar_min / 4.0 - 180.0)
    phi = np.deg2rad(lat)
    cos_zen = np.sin(phi) * np.sin(decl) + np.cos(phi) * np.cos(decl) * np.cos(hour_angle)
    return 90.0 - np.rad2deg(np.arccos(np.clip(cos_zen, -1.0, 1.0)))


def insolation_class(
    wind_speed: Any,
    solar_radiation: Any,
    cloud_cover: Any,
    sun_elevation_deg: Any,
) -> np.ndarray:
    """Pasquill class index 0-5 (A-F) without fluxes (EPA-454/R-99-005; module docstring).

    Day (sun elevation > 0): SRDT key from the 10 m wind speed and the global solar
    radiation. Night: Turner's net-radiation index from the total cloud cover (-2 for
    cover <= 0.4, -1 above) and the wind speed in knots; Turner's G is reported as F.

    Args:
        wind_speed: 10 m wind speed, m s-1 (>= 0).
        solar_radiation: global (surface solar radiation downwards), W m-2 (>= 0); only
            read by day, NaN allowed by night.
        cloud_cover: total cloud cover fraction 0-1; only read by night, NaN allowed by day.
        sun_elevation_deg: solar elevation, degrees.

    Raises:
        ValueError: a negative wind speed or radiation, a cloud cover outside [0, 1], or
            a NaN where the value is needed.
    """
    s, r, c, e = np.broadcast_arrays(
        _f64("wind_speed", wind_speed),
        np.asarray(solar_radiation, np.float64),
        np.asarray(cloud_cover, np.float64),
        _f64("sun_elevation", sun_elevation_deg),
    )
    if np.any(s < 0):
        raise ValueError("`wind_speed` must be >= 0 m s-1")
    day = e > 0.0
    if np.any(day & ~np.isfinite(r)):
        raise ValueError("`solar_radiation` (W m-2) is needed by day and has NaN/inf values")
    if np.any(day & (r < 0)):
        raise ValueError("`solar_radiation` must be >= 0 W m-2")
    night = ~day
    if np.any(night & ~np.isfinite(c)):
        raise ValueError("`cloud_cover` (0-1) is needed by night and has NaN/inf values")
    if np.any(night & ((c < 0) | (c > 1))):
        raise ValueError("`cloud_cover` must be a fraction in [0, 1]")
    row = np.searchsorted(_SRDT_WIND, s, side="right")
    col = 3 - np.searchsorted(_SRDT_RAD, np.where(day, r, 0.0), side="right")
    day_class = _SRDT_DAY[row, col]
    knots = s / _KNOT
    nrow = np.searchsorted(_TURNER_KNOTS, knots, side="right")
    idx = np.where(np.where(night, c, 0.0) <= 0.4, -2, -1)
    night_class = np.where(idx == -2, _TURNER_NIGHT[-2][nrow], _TURNER_NIGHT[-1][nrow])
    night_class = np.minimum(night_class, 5)  # Turner's G -> F (documented)
    return np.where(day, day_class, night_class).astype(np.int32)
