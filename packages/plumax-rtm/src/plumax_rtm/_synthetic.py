"""Synthetic overpasses: any column forward model seen by an imaging spectrometer.

* :func:`ch4_instrument_model` — the Beer-Lambert model on the shipped mag1c-derived
  effective CH4 absorption (:func:`~plumax_rtm.load_mag1c_table`) and an instrument's
  nominal band set: the pair ``(rtm, srf)`` that simulation and retrieval share;
* :func:`ch4_measured_model` — the same model with a file's own band centres and
  widths (the measured spectral response of a real granule) at its sun and view angles;
* :func:`simulate_radiance_cube` — ``compose(model, RadianceOperator)`` evaluated at
  given parameters (one compiled call) plus one draw of the operator's
  :class:`~plumax_rtm.NoiseModel`: a noisy radiance cube as
  :class:`plumax_core.Observations` (kind ``"radiance"``, dims ``("y", "x", "band")``,
  per-element ``sigma``, pixel coordinates of the column), with the noise-free column.

``model`` is any :class:`plumax_core.AbstractForwardModel` returning a column image
(``column_ppm_m`` or ``column_mol_m2`` on dims ``("y", "x")``): a transport tier, a
pixel-averaged one, an emulator.
"""

from __future__ import annotations

from collections.abc import Mapping

import equinox as eqx
import jax
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from plumax_core import AbstractForwardModel, MetField, Observations, compose

from ._absorption import load_mag1c_table
from ._forward import BeerLambertRTM
from ._instruments import SpectralResponse
from ._operator import RadianceOperator

__all__ = [
    "SimulatedRadiance",
    "ch4_instrument_model",
    "ch4_measured_model",
    "simulate_radiance_cube",
]


def ch4_instrument_model(
    instrument: str,
    wavelength_range: tuple[float, float],
    *,
    sza_deg: float,
    n_poly: int = 2,
    band_range: tuple[float, float] | None = None,
) -> tuple[BeerLambertRTM, SpectralResponse]:
    """The Beer-Lambert CH4 model and an instrument's response on its fine grid.

    Args:
        instrument: a band set of :func:`~plumax_rtm.instrument_bands` (e.g. ``"EMIT"``).
        wavelength_range: ``(min, max)`` of the fine absorption grid, nm (a subset of
            the shipped mag1c-derived table).
        sza_deg: solar zenith angle, degrees.
        n_poly: Legendre reflectance coefficients of the surface model.
        band_range: keep the bands whose centre lies in ``(min, max)`` nm; None keeps
            those inside the fine grid (:meth:`~plumax_rtm.SpectralResponse.for_instrument`).

    Returns:
        ``(rtm, srf)``: :class:`~plumax_rtm.BeerLambertRTM` and
        :class:`~plumax_rtm.SpectralResponse`.

    Raises:
        ValueError: an unknown instrument, a range outside the table, or no band inside
            it (from the constructors).
    """
    lo, hi = (float(v) for v in wavelength_range)
    table = load_mag1c_table().subset(lo, hi)
    rtm = BeerLambertRTM.from_absorbers({"CH4": table}, sza_deg=sza_deg, n_poly=n_poly)
    if band_range is None:
        srf = SpectralResponse.for_instrument(instrument, rtm.wavelength)
    else:
        srf = SpectralResponse.for_instrument(
            instrument, rtm.wavelength, wl_min=band_range[0], wl_max=band_range[1]
        )
    return rtm, srf


def ch4_measured_model(
    centers,
    fwhm,
    wavelength_range: tuple[float, float],
    *,
    sza_deg: float,
    vza_deg: float = 0.0,
    n_poly: int = 2,
) -> tuple[BeerLambertRTM, SpectralResponse, np.ndarray]:
    """The Beer-Lambert CH4 model with a granule's measured band centres and FWHM.

    The fine grid is the shipped mag1c-derived effective absorption over
    ``wavelength_range`` (nm); the response is Gaussian with the file's own centres and
    full widths (:meth:`~plumax_rtm.SpectralResponse.gaussian`), for the bands whose
    centre ± 1 FWHM lies inside the fine grid; the two-way air-mass factor uses the
    scene's solar and view zenith angles.

    Args:
        centers, fwhm: ``(m,)`` band centres and full widths at half maximum, nm.
        wavelength_range: ``(min, max)`` of the fine absorption grid, nm.
        sza_deg, vza_deg: solar and view zenith angles, degrees, in ``[0, 90)``.
        n_poly: Legendre reflectance coefficients of the surface model.

    Returns:
        ``(rtm, srf, bands)``: :class:`~plumax_rtm.BeerLambertRTM`,
        :class:`~plumax_rtm.SpectralResponse` and the ``(k,)`` indices of the bands used.

    Raises:
        ValueError: mismatched or non-positive widths, angles outside ``[0, 90)``, or no
            band inside the fine grid, naming the argument.
    """
    c = np.asarray(centers, np.float64)
    f = np.asarray(fwhm, np.float64)
    if c.ndim != 1 or f.shape != c.shape:
        raise ValueError(f"`centers` {c.shape} and `fwhm` {f.shape} must be equal 1-D arrays")
    if not (np.all(np.isfinite(f)) and np.all(f > 0)):
        raise ValueError("`fwhm` must be finite and > 0 nm")
    for name, a in (("sza_deg", sza_deg), ("vza_deg", vza_deg)):
        if not (np.isfinite(a) and 0.0 <= a < 90.0):
            raise ValueError(f"`{name}` must be in [0, 90) degrees, got {a}")
    lo, hi = (float(v) for v in wavelength_range)
    table = load_mag1c_table().subset(lo, hi)
    rtm = BeerLambertRTM.from_absorbers(
        {"CH4": table}, sza_deg=float(sza_deg), vza_deg=float(vza_deg), n_poly=n_poly
    )
    wl = np.asarray(rtm.wavelength, np.float64)
    bands = np.nonzero((c - f >= wl.min()) & (c + f <= wl.max()))[0]
    if bands.size == 0:
        raise ValueError(
            f"no band (centre ± FWHM) lies inside `wavelength_range` {wavelength_range} nm"
        )
    return rtm, SpectralResponse.gaussian(wl, c[bands], f[bands]), bands


class SimulatedRadiance(eqx.Module):
    """The result of :func:`simulate_radiance_cube`.

    Attributes:
        radiance: at-sensor radiance, ``(ny, nx, m)`` in µW cm⁻² sr⁻¹ nm⁻¹ (kind
            ``"radiance"``, dims ``("y", "x", "band")``), noisy unless no key was given;
            ``sigma`` the noise model's 1-sigma of the noise-free radiance; coordinates
            ``y``, ``x`` (m, of the column) and ``band`` (nm, the band centres).
        column: the model's noise-free column image (``(ny, nx)``, e.g. ppm·m).
    """

    radiance: Observations
    column: Observations


def simulate_radiance_cube(
    model: AbstractForwardModel,
    params: Mapping[str, Array],
    met: MetField,
    operator: RadianceOperator,
    *,
    key: PRNGKeyArray | None,
) -> SimulatedRadiance:
    """Radiance of ``model``'s column seen through ``operator``, plus instrument noise.

    The column ``model(params, met)`` (eager), the radiance
    ``compose(model, operator)(params, met)`` under one ``jax.jit``, then
    ``operator.noise.sample(radiance, key=key)`` (``L + σ(L) ε``). Deterministic given
    ``key``.

    Args:
        model: a forward model returning a column image on dims ``("y", "x")``.
        params: its parameters (physical units, e.g. ``Q`` in kg/s).
        met: the met.
        operator: the :class:`~plumax_rtm.RadianceOperator` (albedo, instrument); its
            ``noise`` model is required unless ``key`` is None.
        key: PRNG key of the noise; None gives the noise-free radiance (still carrying
            ``sigma`` when the operator has a noise model).

    Raises:
        TypeError: ``model`` or ``operator`` of the wrong type.
        ValueError: a column that is not an image on ``("y", "x")``, or a ``key``
            without a noise model.
    """
    if not isinstance(operator, RadianceOperator):
        raise TypeError(f"`operator` must be a RadianceOperator, got {type(operator).__name__}")
    if key is not None and operator.noise is None:
        raise ValueError("`operator.noise` is None: give the RadianceOperator a NoiseModel")
    column = model(params, met)
    if column.dims != ("y", "x"):
        raise ValueError(
            f"`model` must return a column image on dims ('y', 'x'), got {column.dims}"
        )
    composed = compose(model, operator)
    clean = jax.jit(lambda p: composed(p, met))(params)
    values = clean.values if key is None else operator.noise.sample(clean.values, key=key)
    coords = {k: column.coords[k] for k in ("y", "x") if k in column.coords}
    radiance = Observations(
        values,
        kind="radiance",
        sigma=clean.sigma,
        dims=("y", "x", "band"),
        coords={**coords, "band": clean.coords["band"]},
        instrument=clean.instrument,
    )
    return SimulatedRadiance(radiance, column)
