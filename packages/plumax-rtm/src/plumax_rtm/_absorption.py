"""Absorption sources behind one interface: where optical depth comes from.

The forward model only asks an :class:`AbstractAbsorption` for a cross-section on its
wavelength grid at a layer's pressure and temperature. Three sources implement it:

* :class:`LineByLineAbsorption` — Voigt line-by-line from a HITRAN :class:`LineList`;
* :class:`LUTAbsorption` — a precomputed (p, T, ν) table (:class:`CrossSectionLUT`);
* :class:`EffectiveAbsorption` — an effective absorption per ppm·m per channel, e.g. the
  shipped table derived from mag1c's MODTRAN LUT (:func:`load_mag1c_table`).
"""

import abc
import importlib.resources

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from equinox import AbstractVar
from jaxtyping import Array, ArrayLike, Float

# Column units are defined once, in plumax_core.units (ppm·m at STP: 273.15 K, 101325 Pa):
# MOLEC_CM2_PER_PPM_M = 1e-6 · p/(k T) · 100 cm, MOL_M2_PER_PPM_M = 1e-6 · p/(R T) · 1 m.
# plumax_rtm re-exports both under these names.
from plumax_core.units import (
    MOL_M2_PER_PPM_M as MOL_M2_PER_PPM_M,
    MOLEC_CM2_PER_PPM_M as MOLEC_CM2_PER_PPM_M,
)

from ._hitran import LineList
from ._lut import CrossSectionLUT
from ._spectroscopy import core_points, cross_section, partition_ratio


class AbstractAbsorption(eqx.Module):
    """A source of absorption cross-sections for one gas.

    Attributes:
        wavelength: ``(n,)`` channel / grid wavelengths, nm, strictly ascending.
        species: gas name, e.g. ``"CH4"``.

    Contract: ``cross_section(p, T)`` is ``(n,)``, finite, >= 0, in cm²/molecule on
    ``wavelength``, for the one-way vertical path; jit/grad-safe in ``p`` and ``T``.
    The one-way optical depth of a column ``N`` (molecules cm⁻²) is ``σ N``.
    """

    wavelength: AbstractVar[Float[Array, " n"]]
    species: AbstractVar[str]

    @abc.abstractmethod
    def cross_section(
        self, pressure: Float[ArrayLike, ""], temperature: Float[ArrayLike, ""]
    ) -> Float[Array, " n"]:
        """Cross-section at pressure (Pa) and temperature (K), cm²/molecule."""

    def optical_depth(self, column, pressure, temperature) -> Float[Array, " n"]:
        """One-way optical depth ``σ(p, T) · column`` for a column in molecules cm⁻²."""
        return self.cross_section(pressure, temperature) * column

    def __check_init__(self):
        wl = np.asarray(self.wavelength)
        if wl.ndim != 1 or wl.size < 2 or np.any(np.diff(wl) <= 0):
            raise ValueError("`wavelength` must be 1-D and strictly ascending (nm)")


def _to_wavelength(nu: np.ndarray) -> np.ndarray:
    return 1e7 / nu[::-1]


class LineByLineAbsorption(AbstractAbsorption):
    """Voigt line-by-line cross-sections (:func:`plumax_rtm.cross_section`).

    Attributes:
        lines: one molecule's HITRAN lines.
        wavenumber: ``(n,)`` ascending grid, cm⁻¹ (``wavelength = 1e7/wavenumber``, reversed).
        wavelength: derived, nm ascending.
        species: gas name.
        wing_hw, wing_cm: line-wing cutoff (static).
        core: static core-window half width for :func:`plumax_rtm.cross_section`
            (from the grid step and the Doppler width at ``max_temperature``).
    """

    lines: LineList
    wavenumber: Float[Array, " n"]
    wavelength: Float[Array, " n"]
    species: str = eqx.field(static=True)
    molecule: int = eqx.field(static=True)
    wing_hw: float = eqx.field(static=True)
    wing_cm: float = eqx.field(static=True)
    core: int | None = eqx.field(static=True)

    def __init__(
        self,
        lines,
        wavenumber,
        *,
        species="CH4",
        wing_hw=50.0,
        wing_cm=0.0,
        max_temperature=350.0,
    ):
        nu = np.asarray(wavenumber, dtype=float)
        if nu.ndim != 1 or np.any(np.diff(nu) <= 0):
            raise ValueError("`wavenumber` must be 1-D and strictly ascending (cm-1)")
        mols = np.unique(np.asarray(lines.molecule))
        if mols.size != 1:
            raise ValueError("`lines` must hold a single molecule")
        self.molecule = int(mols[0])
        self.lines = lines
        self.wavenumber = jnp.asarray(nu)
        self.wavelength = jnp.asarray(_to_wavelength(nu))
        self.species = species
        self.wing_hw = float(wing_hw)
        self.wing_cm = float(wing_cm)
        # Static core-window size, fixed here where lines and grid are concrete, so the
        # fast windowed evaluation also applies under eqx.filter_jit (traced lines).
        self.core = core_points(lines, nu, max_temperature=float(max_temperature))

    def cross_section(self, pressure, temperature):
        xs = cross_section(
            self.lines,
            self.wavenumber,
            pressure,
            temperature,
            wing_hw=self.wing_hw,
            wing_cm=self.wing_cm,
            partition=lambda t: partition_ratio(self.molecule, t),
            core=0 if self.core is None else self.core,
        )
        return xs[::-1]


class LUTAbsorption(AbstractAbsorption):
    """Cross-sections interpolated (inside jit) from a :class:`CrossSectionLUT`."""

    lut: CrossSectionLUT
    wavelength: Float[Array, " n"]
    species: str = eqx.field(static=True)

    def __init__(self, lut: CrossSectionLUT):
        self.lut = lut
        self.wavelength = jnp.asarray(_to_wavelength(np.asarray(lut.wavenumber)))
        self.species = lut.species

    def cross_section(self, pressure, temperature):
        return self.lut(pressure, temperature)[::-1]


class EffectiveAbsorption(AbstractAbsorption):
    """An effective absorption per unit enhancement and channel, independent of p and T.

    Attributes:
        wavelength: ``(n,)`` nm ascending.
        absorption: ``(n,)`` two-way absorption per ppm·m at the reference geometry,
            (ppm·m)⁻¹, i.e. ``L(c)/L(0) ≈ exp(-absorption · c)`` there.
        reference_amf: air-mass factor of that geometry (the one-way vertical
            cross-section is ``absorption / (reference_amf · MOLEC_CM2_PER_PPM_M)``).
        reference_radiance: ``(n,)`` background radiance at that geometry
            (uW cm⁻² sr⁻¹ nm⁻¹) or None.
        species: gas name.
    """

    wavelength: Float[Array, " n"]
    absorption: Float[Array, " n"]
    reference_amf: float = eqx.field(static=True)
    reference_radiance: Float[Array, " n"] | None
    species: str = eqx.field(static=True)

    def __init__(
        self, wavelength, absorption, *, reference_amf=2.0, reference_radiance=None, species="CH4"
    ):
        self.wavelength = jnp.asarray(wavelength)
        self.absorption = jnp.asarray(absorption)
        self.reference_amf = float(reference_amf)
        self.reference_radiance = (
            None if reference_radiance is None else jnp.asarray(reference_radiance)
        )
        self.species = species

    def __check_init__(self):
        if self.absorption.shape != self.wavelength.shape:
            raise ValueError("`absorption` must have the shape of `wavelength`")
        if not np.all(np.asarray(self.absorption) >= 0):
            raise ValueError("`absorption` must be finite and >= 0")
        if not self.reference_amf >= 1.0:
            raise ValueError("`reference_amf` must be >= 1")

    def cross_section(self, pressure, temperature):
        del pressure, temperature
        return self.absorption / (self.reference_amf * MOLEC_CM2_PER_PPM_M)

    def subset(self, wl_min: float, wl_max: float) -> "EffectiveAbsorption":
        """The channels with ``wl_min <= wavelength <= wl_max`` (nm)."""
        wl = np.asarray(self.wavelength)
        keep = (wl >= wl_min) & (wl <= wl_max)
        if keep.sum() < 2:
            raise ValueError(f"fewer than 2 channels between {wl_min} and {wl_max} nm")
        return EffectiveAbsorption(
            wl[keep],
            np.asarray(self.absorption)[keep],
            reference_amf=self.reference_amf,
            reference_radiance=None
            if self.reference_radiance is None
            else np.asarray(self.reference_radiance)[keep],
            species=self.species,
        )


def load_mag1c_table(dtype=None) -> EffectiveAbsorption:
    """The shipped effective CH4 absorption table (derived from mag1c's MODTRAN LUT).

    31,800 channels, 1399.6-2522.0 nm; derived from the 500 and 1000 ppm·m runs only
    (see ``tools/build_mag1c_table.py``). Source: mag1c (BSD-3-Clause), Foote et al. 2020.
    """
    import xarray as xr

    ref = importlib.resources.files("plumax_rtm") / "data" / "ch4_mag1c_effective.nc"
    with importlib.resources.as_file(ref) as path, xr.open_dataset(path) as ds:
        ds = ds.load()
    dt = dtype or jnp.asarray(0.0).dtype
    return EffectiveAbsorption(
        np.asarray(ds["wavelength"], dtype=np.float64).astype(dt),
        np.asarray(ds["absorption"]).astype(dt),
        reference_amf=float(ds.attrs["reference_air_mass_factor"]),
        reference_radiance=np.asarray(ds["reference_radiance"]).astype(dt),
        species="CH4",
    )
