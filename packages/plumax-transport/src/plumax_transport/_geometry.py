"""Observation geometries shared by the Gaussian plume and puff.

A geometry says *where* the model is sampled and *what* is reported; the models supply
the horizontal density (1/m², or 1/m for a steady plume's crosswind profile) and the
mass (or mass flux per unit wind) and the geometry supplies the vertical factor and the
unit conversion:

* :class:`PointReceptors` — concentration at points ``(x, y, z)``: kg/m³
  (``"concentration_kg_m3"``) or mole-fraction enhancement in ppm
  (``"concentration_ppm"``), using the dry-air molar density ``n = p/(R T)`` of the met.
* :class:`ColumnImage` — the vertical integral on a 2-D grid, ``(ny, nx)``: ppm·m
  (``"column_ppm_m"``, i.e. ``1e6 Ω_CH4 / n`` with the surface air density), mol/m²
  (``"column_mol_m2"``) or kg/m² (``"column_kg_m2"``). The total column of the reflected
  Gaussian is exact in closed form (the vertical density integrates to one), so no
  quadrature is done; with ``z_top`` the partial column uses the erf/Fourier closed form
  of :func:`~plumax_transport._reflection.vertical_fraction`.
* :class:`ColumnAverage` — column-averaged dry-air mole-fraction enhancement in ppb
  (``"xch4_ppb"``) on a grid: ``1e9 Ω_CH4(0..h) / (n h)`` for a column of height ``h``,
  or, with ``column_height=None``, ``1e9 Ω_CH4 / Ω_air`` with the whole dry-air column
  ``Ω_air = p_s / (g M_air)`` (what a satellite's XCH4 sees; water vapour neglected).

Constants (from :mod:`plumax_core.units`): M_CH4 = 16.04 g/mol, M_air = 28.9644 g/mol,
R = 8.314462618 J/(mol K), g = 9.80665 m/s².
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from plumax_core import Observations

# Constants and the ideal-gas density are defined once, in plumax_core.units; plumax_transport
# re-exports M_CH4 (kg/mol), M_AIR (kg/mol) and air_molar_density (mol/m³) under these names.
from plumax_core.units import (
    G0,
    M_AIR as M_AIR,
    M_CH4 as M_CH4,
    air_molar_density as air_molar_density,
)
from plumax_core.validation import check_coordinate

from ._reflection import vertical_density, vertical_fraction


def _coord(name: str, v, *, ascending: bool = False) -> Array:
    """A finite, non-empty 1-D coordinate (m) as a float JAX array.

    With ``ascending=True`` (grid axes) the values, as stored (float32 unless x64 is
    enabled), must be strictly increasing: a repeated or decreasing coordinate raises.
    """
    arr = np.asarray(v, dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"`{name}` must be a non-empty 1-D array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` must be finite")
    out = jnp.asarray(arr)
    if ascending:
        # after the cast: two float64 values can round to one float32
        check_coordinate(name, np.asarray(out))
    return out


class AbstractGeometry(eqx.Module):
    """Where a Tier I model is sampled and in what units it reports.

    Contract: ``horizontal()`` returns receptor coordinates ``(X, Y)`` in m broadcastable
    to the output shape; ``vertical(H, σz, L, ...)`` is the vertical factor (1/m for a
    point, dimensionless for a column) of the reflected Gaussian; ``finish(mass, met)``
    turns the kg/m³ (point) or kg/m² (column) field into :class:`Observations` of the
    geometry's ``kind``, the same kind and shape for every parameter value.
    """

    @abc.abstractmethod
    def horizontal(self) -> tuple[Array, Array]:
        """Receptor ``(X, Y)`` coordinates, m."""

    @abc.abstractmethod
    def vertical(
        self, H, sigma_z, L, *, n_images: int, method: str, trailing: bool = False
    ) -> Array:
        """Vertical factor of the reflected Gaussian at the receptors.

        ``trailing=True`` adds a trailing axis to the receptor coordinates (one entry
        per puff of ``sigma_z``).
        """

    @abc.abstractmethod
    def finish(self, field: Array, temperature, pressure) -> Observations:
        """Convert the kg/m³ or kg/m² field to the reported units."""

    @property
    @abc.abstractmethod
    def kind(self) -> str:
        """The ``Observations.kind`` produced."""

    @property
    def max_height(self) -> float:
        """Highest receptor height (m) — must lie inside the mixed layer."""
        return 0.0


_POINT_UNITS = {"ppm": "concentration_ppm", "kg_m3": "concentration_kg_m3"}
_COLUMN_UNITS = {"ppm_m": "column_ppm_m", "mol_m2": "column_mol_m2", "kg_m2": "column_kg_m2"}


class PointReceptors(AbstractGeometry):
    """Point receptors at ``(x, y, z)`` (m); values shape ``(n,)``, dims ``("receptor",)``.

    Attributes:
        x, y: horizontal receptor positions, m, shape ``(n,)``.
        z: receptor heights above ground, m, ``(n,)`` (>= 0; inside the mixed layer).
        units: ``"ppm"`` (mole-fraction enhancement) or ``"kg_m3"``.
    """

    x: Float[Array, " n"]
    y: Float[Array, " n"]
    z: Float[Array, " n"]
    units: str = eqx.field(static=True)
    _zmax: float = eqx.field(static=True)

    def __init__(self, x, y, z=0.0, *, units: str = "ppm"):
        self.x = _coord("x", np.atleast_1d(x))
        n = self.x.shape[0]
        self.y = _coord("y", np.broadcast_to(np.asarray(y, dtype=float), (n,)))
        self.z = _coord("z", np.broadcast_to(np.asarray(z, dtype=float), (n,)))
        if np.any(np.asarray(self.z) < 0):
            raise ValueError("`z` receptor heights must be >= 0 m")
        if units not in _POINT_UNITS:
            raise ValueError(f"`units` must be one of {tuple(_POINT_UNITS)}, got {units!r}")
        self.units = units
        self._zmax = float(np.max(np.asarray(self.z)))

    @property
    def kind(self) -> str:
        return _POINT_UNITS[self.units]

    @property
    def max_height(self) -> float:
        return self._zmax

    def horizontal(self):
        return self.x, self.y

    def vertical(self, H, sigma_z, L, *, n_images, method, trailing=False):
        z = self.z.astype(jnp.result_type(sigma_z))
        z = z[:, None] if trailing else z
        return vertical_density(z, H, sigma_z, L, n_images=n_images, method=method)

    def finish(self, field, temperature, pressure):
        if self.units == "ppm":
            field = field / M_CH4 / air_molar_density(temperature, pressure) * 1e6
        return Observations(field, kind=self.kind, dims=("receptor",))


class AbstractGridGeometry(AbstractGeometry):
    """A geometry on a ``(ny, nx)`` grid; subclasses have fields ``x`` and ``y``.

    Contract: ``x`` and ``y`` are finite, strictly ascending pixel-centre coordinates (m)
    (a repeated or decreasing value raises ``ValueError`` naming the axis); the spacing
    need not be even, the values being point samples at the centres.
    """

    def horizontal(self):
        return self.x[None, :], self.y[:, None]

    def _obs(self, values):
        return Observations(
            values, kind=self.kind, dims=("y", "x"), coords={"y": self.y, "x": self.x}
        )


class ColumnImage(AbstractGridGeometry):
    """Vertically integrated enhancement on the grid ``y (ny,) x x (nx,)``, shape ``(ny, nx)``.

    Attributes:
        x, y: grid-cell centres, m, ``(nx,)`` and ``(ny,)``, finite and strictly
            ascending (the values are point samples at the centres).
        units: ``"ppm_m"``, ``"mol_m2"`` or ``"kg_m2"``.
        z_top: integrate from the ground to ``z_top`` (m) instead of the whole column
            (e.g. an aircraft flying below the lid); ``None`` = the whole column (exact,
            closed form).
    """

    x: Float[Array, " nx"]
    y: Float[Array, " ny"]
    units: str = eqx.field(static=True)
    z_top: float | None = eqx.field(static=True)

    def __init__(self, x, y, *, units: str = "ppm_m", z_top: float | None = None):
        self.x = _coord("x", x, ascending=True)
        self.y = _coord("y", y, ascending=True)
        if units not in _COLUMN_UNITS:
            raise ValueError(f"`units` must be one of {tuple(_COLUMN_UNITS)}, got {units!r}")
        self.units = units
        if z_top is not None and not (np.isfinite(z_top) and z_top > 0):
            raise ValueError(f"`z_top` must be finite and > 0 m (or None), got {z_top!r}")
        self.z_top = None if z_top is None else float(z_top)

    @property
    def kind(self) -> str:
        return _COLUMN_UNITS[self.units]

    def vertical(self, H, sigma_z, L, *, n_images, method, trailing=False):
        if self.z_top is None:
            return jnp.ones((), dtype=jnp.result_type(sigma_z))
        return vertical_fraction(self.z_top, H, sigma_z, L, n_images=n_images, method=method)

    def finish(self, field, temperature, pressure):
        if self.units in ("mol_m2", "ppm_m"):
            field = field / M_CH4
        if self.units == "ppm_m":
            field = field / air_molar_density(temperature, pressure) * 1e6
        return self._obs(field)


class ColumnAverage(AbstractGridGeometry):
    """Column-averaged dry-air mole-fraction enhancement (ppb) on a grid, ``(ny, nx)``.

    Attributes:
        x, y: grid-cell centres, m, ``(nx,)`` and ``(ny,)``, finite and strictly ascending.
        column_height: average over ``[0, h]`` (m) with the surface air density; ``None``
            averages over the whole dry-air column ``p_s/(g M_air)`` (satellite XCH4).
    """

    x: Float[Array, " nx"]
    y: Float[Array, " ny"]
    column_height: float | None = eqx.field(static=True)

    def __init__(self, x, y, *, column_height: float | None = None):
        self.x = _coord("x", x, ascending=True)
        self.y = _coord("y", y, ascending=True)
        if column_height is not None and not (np.isfinite(column_height) and column_height > 0):
            raise ValueError(f"`column_height` must be finite and > 0 m, got {column_height!r}")
        self.column_height = None if column_height is None else float(column_height)

    @property
    def kind(self) -> str:
        return "xch4_ppb"

    def vertical(self, H, sigma_z, L, *, n_images, method, trailing=False):
        if self.column_height is None:
            return jnp.ones((), dtype=jnp.result_type(sigma_z))
        return vertical_fraction(
            self.column_height, H, sigma_z, L, n_images=n_images, method=method
        )

    def finish(self, field, temperature, pressure):
        moles = field / M_CH4
        if self.column_height is None:
            air = pressure / (G0 * M_AIR)
        else:
            air = air_molar_density(temperature, pressure) * self.column_height
        return self._obs(moles / air * 1e9)
