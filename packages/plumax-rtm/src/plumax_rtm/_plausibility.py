"""Plausibility of radiance cubes and methane enhancements: what no real scene can hold.

Every rule raises a ``ValueError`` that names the variable, says what was found and what
is needed. Checks run eagerly on concrete arrays (NumPy), before any filter or fit.

**Radiance** (:func:`check_radiance`; at-sensor spectral radiance ``(..., m)``, any
units). A pixel is *valid* when all its bands are finite.

1. *Bands*: ``m >= MIN_BANDS`` = 2. The matched-filter target is ``t = μ ⊙ k`` (mean
   radiance times unit absorption); on one band ``t ∝ μ``, the direction along which a
   brighter or darker surface moves a pixel, so absorption cannot be told from albedo.
   For the same reason the target must not be flat across the bands
   (:func:`check_target`).
2. *Non-negative*: radiance is a non-negative physical quantity. With a noise estimate
   ``σ`` a measured value may dip below zero by noise only: values below
   ``-NOISE_MARGIN_SIGMA · σ`` (10σ; a Gaussian tail of 8e-24) are impossible; without
   ``σ`` every negative value is. A negated cube fails here.
3. *Positive background*: every band's mean over valid pixels is ``> 0``; otherwise the
   target ``μ ⊙ k`` vanishes (an all-zero or dark cube) and no enhancement is defined.
4. *Spatial variance*: every band varies across the valid pixels (its range exceeds 8
   units of round-off of the band mean). A spatially uniform cube has a
   zero background covariance: the filter has nothing to whiten and divides by zero.

**Background pixels** (:func:`min_background_pixels`, :func:`check_background_pixels`).
The classic filter estimates the ``m x m`` covariance from the ``n`` valid background
pixels; the sample covariance has ``n - 1`` degrees of freedom and is singular unless
``n - 1 >= m``, so it needs ``n >= m + 1`` (more valid pixels than bands). Ledoit-Wolf
shrinkage is well conditioned for any ``n >= 2`` (Ledoit & Wolf 2004, J. Multivar.
Anal. 88, 365, Thm 1); the low-rank model needs the ``rank`` leading eigenvectors of
the sample covariance, so ``n >= min(rank, m) + 1``.

**Enhancements** (:func:`check_enhancement`; an enhancement above the background, of a
known ``kind``). A true enhancement lies between two physical bounds:

* below by minus the whole background: a scene cannot hold less than no methane, so
  ``ΔΩ >= -Ω_bg``. For a column in ppm·m (mixing ratio × path at STP, the convention
  of the matched filter, :data:`MOL_M2_PER_PPM_M`) ``Ω_bg = X_bg · H`` with
  ``H = p_s / (M_air g n_STP)`` the air column's height at STP density; with
  ``X_bg = 2.0 ppm`` (above the 2024 global mean, 1.93 ppm, NOAA GML) and
  ``p_s = 1085 hPa`` (above the highest sea-level pressure on record), ``H = 8561 m``
  and the bound is about -17 100 ppm·m;
* above by a column of pure methane, ``10⁶ ppm · H`` (about 8.6e9 ppm·m).

A measured value may leave these bounds by its noise: values farther than
``NOISE_MARGIN_SIGMA`` = 10 σ beyond them are impossible. Column kinds in mol m-2 and
kg m-2 use the same bounds converted; ``xch4_ppb`` uses ``[-X_bg, 10⁹ ppb]`` and
``concentration_ppm`` ``[-X_bg, 10⁶ ppm]``. Other kinds get the finiteness rule only.
Negative values within the bounds are allowed: a noisy retrieval scatters around zero.
"""

from __future__ import annotations

import numpy as np

from plumax_core.units import (
    AIR_MOLAR_DENSITY_STP,
    G0,
    KG_M2_PER_PPM_M,
    M_AIR,
    MOL_M2_PER_PPM_M,
)

#: Fewest spectral bands a matched filter can use (absorption vs brightness).
MIN_BANDS = 2
#: How many noise standard deviations a measured value may fall beyond a physical bound.
NOISE_MARGIN_SIGMA = 10.0
#: Upper bound of the background CH4 mole fraction, ppm (global mean 2024: 1.93 ppm).
BACKGROUND_CH4_PPM = 2.0
_P_SURFACE_MAX = 108500.0  # Pa, above the sea-level record (1084.8 hPa)
#: Height (m) of the air column at STP density: ppm·m per ppm of column mole fraction.
AIR_COLUMN_STP_M = _P_SURFACE_MAX / (M_AIR * G0) / AIR_MOLAR_DENSITY_STP

_COLUMN_PPM_M = (-BACKGROUND_CH4_PPM * AIR_COLUMN_STP_M, 1e6 * AIR_COLUMN_STP_M)
#: Physical bounds ``(lower, upper)`` of a true enhancement, per observation kind.
ENHANCEMENT_BOUNDS: dict[str, tuple[float, float]] = {
    "column_ppm_m": _COLUMN_PPM_M,
    "column_mol_m2": tuple(b * MOL_M2_PER_PPM_M for b in _COLUMN_PPM_M),
    "column_kg_m2": tuple(b * KG_M2_PER_PPM_M for b in _COLUMN_PPM_M),
    "xch4_ppb": (-1e3 * BACKGROUND_CH4_PPM, 1e9),
    "concentration_ppm": (-BACKGROUND_CH4_PPM, 1e6),
}
_UNITS = {
    "column_ppm_m": "ppm m",
    "column_mol_m2": "mol m-2",
    "column_kg_m2": "kg m-2",
    "xch4_ppb": "ppb",
    "concentration_ppm": "ppm",
}


def _band_label(b: int, wavelengths) -> str:
    if wavelengths is None:
        return f"band {b}"
    return f"band {b} ({float(np.asarray(wavelengths)[b]):.1f} nm)"


def check_radiance(radiance, *, sigma=None, wavelengths=None, name: str = "radiance") -> np.ndarray:
    """Check a radiance cube against rules 1-4 of the module docstring.

    Args:
        radiance: ``(..., m)`` at-sensor radiance (any units); pixels with a non-finite
            band are invalid and left out of rules 2-4.
        sigma: optional 1-sigma noise, broadcastable to ``radiance`` (same units).
        wavelengths: optional ``(m,)`` band centres, nm (only to name bands).
        name: the variable named in errors.

    Returns:
        ``(...)`` bool: the valid (all-finite) pixels.

    Raises:
        ValueError: naming ``name``: fewer than 2 dims or ``MIN_BANDS`` bands, no valid
            pixel, a value below ``-10 σ`` (below 0 without ``sigma``), a band whose mean
            is ``<= 0``, or a band that does not vary across the valid pixels.
    """
    x = np.asarray(radiance)
    if x.ndim < 2:
        raise ValueError(f"`{name}` must be (..., band), got shape {x.shape}")
    m = x.shape[-1]
    if m < MIN_BANDS:
        raise ValueError(
            f"`{name}` has {m} spectral band(s); a matched filter needs at least {MIN_BANDS}: "
            "on one band methane absorption cannot be told from a darker surface"
        )
    flat = x.reshape(-1, m)
    valid = np.all(np.isfinite(flat), axis=-1)
    n = int(valid.sum())
    if n == 0:
        raise ValueError(f"`{name}` has no pixel with all-finite values ({valid.size} pixels)")
    good = flat if n == valid.size else flat[valid]
    if sigma is None:
        worst = good < 0
        rule = "at-sensor radiance is >= 0"
    else:
        s = np.broadcast_to(np.asarray(sigma), x.shape).reshape(-1, m)
        s = s if n == valid.size else s[valid]
        worst = good < -NOISE_MARGIN_SIGMA * np.where(np.isfinite(s), s, 0.0)
        rule = f"at-sensor radiance is >= 0 within {NOISE_MARGIN_SIGMA:g} sigma of its noise"
    if np.any(worst):
        i, b = np.unravel_index(int(np.argmin(np.where(worst, good, np.inf))), good.shape)
        raise ValueError(
            f"`{name}` holds {int(worst.sum())} impossible negative value(s) in "
            f"{int(worst.any(axis=1).sum())} of {n} valid pixels (lowest {good[i, b]:.4g} in "
            f"{_band_label(b, wavelengths)}): {rule} (a negated or offset cube?)"
        )
    mean = good.mean(axis=0, dtype=np.float64)
    dark = np.nonzero(~(mean > 0))[0]
    if dark.size:
        raise ValueError(
            f"`{name}` has {dark.size} of {m} bands whose mean over the valid pixels is <= 0 "
            f"(e.g. {_band_label(int(dark[0]), wavelengths)}: {mean[dark[0]]:.4g}): an "
            "all-zero or dark cube carries no absorption signal (the matched-filter "
            "target is mean radiance x unit absorption)"
        )
    eps = np.finfo(x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64).eps
    spread = np.ptp(good, axis=0).astype(np.float64)
    flat_bands = np.nonzero(~(spread > 8 * eps * np.abs(mean)))[0]
    if flat_bands.size:
        what = "every band" if flat_bands.size == m else f"{flat_bands.size} of {m} bands"
        raise ValueError(
            f"`{name}` does not vary across its {n} valid pixels in {what} (e.g. "
            f"{_band_label(int(flat_bands[0]), wavelengths)}): spatially uniform radiance "
            "leaves no background covariance to estimate"
        )
    return valid.reshape(x.shape[:-1])


def check_target(target, *, name: str = "target") -> None:
    """The unit absorption spectrum must vary across the bands (rule 1): a flat ``k``
    makes the target ``μ ⊙ k`` parallel to the mean radiance, i.e. to a brightness
    change. Raises ``ValueError`` naming ``name`` for a non-finite or flat ``k``."""
    k = np.asarray(target, np.float64)
    if not np.all(np.isfinite(k)):
        raise ValueError(f"`{name}` (unit absorption spectrum) must be finite")
    if not np.ptp(k) > 1e-6 * np.max(np.abs(k), initial=0.0):
        raise ValueError(
            f"`{name}` (unit absorption spectrum) is the same in all {k.size} bands: the "
            "filter cannot tell methane from a brightness change; include bands with "
            "different CH4 absorption"
        )


def min_background_pixels(n_bands: int, covariance: str = "classic", rank: int = 10) -> int:
    """Fewest valid background pixels for the matched filter's covariance (module
    docstring): ``m + 1`` (classic), 2 (shrinkage), ``min(rank, m) + 1`` (lowrank)."""
    if covariance == "classic":
        return int(n_bands) + 1
    if covariance == "shrinkage":
        return 2
    if covariance == "lowrank":
        return min(int(rank), int(n_bands)) + 1
    raise ValueError(f"unknown `covariance` {covariance!r}")


def check_background_pixels(
    n_background: int,
    n_bands: int,
    *,
    covariance: str = "classic",
    rank: int = 10,
    n_pixels: int | None = None,
    n_excluded: int = 0,
    n_invalid: int = 0,
    name: str = "radiance",
) -> None:
    """Raise ``ValueError`` naming ``name`` when fewer than
    :func:`min_background_pixels` valid background pixels remain, saying how many do.

    Args:
        n_background: valid pixels left for the background statistics.
        n_bands: ``m``.
        n_pixels, n_excluded, n_invalid: the scene's pixel count, those left out as
            plume and those with non-finite radiance (for the message).
    """
    need = min_background_pixels(n_bands, covariance, rank)
    if n_background >= need:
        return
    total = "" if n_pixels is None else f" of {n_pixels}"
    why = []
    if n_excluded:
        why.append(f"{n_excluded} excluded as plume")
    if n_invalid:
        why.append(f"{n_invalid} non-finite")
    rule = {
        "classic": f"more valid pixels than bands to estimate the {n_bands}x{n_bands} covariance",
        "shrinkage": "at least 2 valid pixels for a variance",
        "lowrank": f"more valid pixels than the covariance rank ({min(rank, n_bands)})",
    }[covariance]
    raise ValueError(
        f"`{name}`: only {n_background}{total} pixels remain valid for the background"
        + (f" ({', '.join(why)})" if why else "")
        + f"; the {covariance} matched filter needs {rule}: at least {need}"
    )


def check_enhancement(values, *, kind: str, sigma=None, mask=None, name: str = "values") -> None:
    """Reject impossible enhancements (module docstring) naming ``name``.

    Args:
        values: any shape, in the units of ``kind``.
        kind: a ``plumax_core`` observation kind; those in :data:`ENHANCEMENT_BOUNDS`
            are bounded, every kind must be finite where valid.
        sigma: optional 1-sigma error broadcastable to ``values`` (the noise margin).
        mask: optional bool, True where valid (masked values are not checked).

    Raises:
        ValueError: a non-finite valid value, or one more than 10 sigma beyond the
            kind's physical bounds, with the count, the worst value and its index.
    """
    v = np.asarray(values, np.float64)
    valid = np.ones(v.shape, bool) if mask is None else np.broadcast_to(np.asarray(mask), v.shape)
    bad = valid & ~np.isfinite(v)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"`{name}` holds {int(bad.sum())} NaN or infinite value(s) at valid positions "
            f"(first at index {idx}); mask them or remove them"
        )
    if kind not in ENHANCEMENT_BOUNDS:
        return
    lo, hi = ENHANCEMENT_BOUNDS[kind]
    s = np.zeros(v.shape) if sigma is None else np.asarray(sigma, np.float64)
    s = np.where(np.isfinite(s), np.broadcast_to(s, v.shape), 0.0)
    below = valid & (v < lo - NOISE_MARGIN_SIGMA * s)
    above = valid & (v > hi + NOISE_MARGIN_SIGMA * s)
    units = _UNITS[kind]
    for hit, bound, word, what in (
        (below, lo, "below", "minus the whole background methane"),
        (above, hi, "above", "a column of pure methane"),
    ):
        if hit.any():
            vals = np.where(hit, v, np.nan)
            j = np.nanargmin(vals) if word == "below" else np.nanargmax(vals)
            idx = tuple(int(i) for i in np.unravel_index(int(j), v.shape))
            raise ValueError(
                f"`{name}` holds {int(hit.sum())} impossible {kind} value(s) {word} "
                f"{bound:.4g} {units} ({what}; {NOISE_MARGIN_SIGMA:g} sigma of noise "
                f"allowed), e.g. {v[idx]:.4g} at index {idx}: wrong units or sign, or "
                "corrupt data?"
            )
