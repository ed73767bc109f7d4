r"""Receptor footprints (Tier II): the sparse receptor x flux-cell sensitivity matrix.

A footprint ``F`` maps a gridded surface flux ``q`` (kg m-2 s-1), per cell of a
horizontal grid and per emission time window, to receptor values,

.. math::

   y_r = \sum_{w, j, i} F_{r, w j i}\; q_{w j i} \qquad (+\ \text{background}),

``y`` in the receptors' units (their :class:`~plumax_core.Observations` kind), ``F`` in
those units per (kg m-2 s-1): for a point receptor in kg/m3, ``F`` is in s/m (equation
and derivation in :func:`~plumax_transport.backward_footprints`). The matrix is stored
sparse, a ``jax.experimental.sparse.BCOO`` of shape ``(n_receptors, n_windows ny nx)``
with the flux flattened in C order over ``(window, y, x)``: a receptor sees only the
cells upwind of it, typically well under 10 % of them.

Receptors: :class:`~plumax_transport.PointReceptors` (concentration, ppm or kg/m3) and
:class:`ColumnReceptors` (a vertical column, ppm m, mol/m2, kg/m2 or the column average
XCH4 in ppb, optionally weighted by an averaging kernel). Their unit conversions are the
Tier I geometries' (:meth:`PointReceptors.finish`, :meth:`ColumnImage.finish`,
:meth:`ColumnAverage.finish`, on the constants of :mod:`plumax_core.units`), evaluated
once per receptor with the met's temperature and pressure there (see
:func:`unit_factor`), so a footprint and a Tier I model report the same units the same
way.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from plumax_core import OBSERVATION_KINDS
from plumax_core.linalg import SparseMatrix
from plumax_core.validation import check_coordinate

from ._geometry import ColumnAverage, ColumnImage, PointReceptors

#: Units of the flux a footprint multiplies.
FLUX_UNITS = "kg m-2 s-1"

_COLUMN_UNITS = {
    "ppm_m": "column_ppm_m",
    "mol_m2": "column_mol_m2",
    "kg_m2": "column_kg_m2",
    "xch4_ppb": "xch4_ppb",
}


def _finite_1d(name: str, v, n: int | None = None) -> np.ndarray:
    arr = np.asarray(v, dtype=np.float64)
    if n is not None and arr.ndim == 0:
        arr = np.broadcast_to(arr, (n,))
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"`{name}` must be a non-empty 1-D array, got shape {arr.shape}")
    if n is not None and arr.shape != (n,):
        raise ValueError(f"`{name}` must have shape ({n},), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` must be finite")
    return arr


class ColumnReceptors(eqx.Module):
    """Vertical columns through ``(x, y)``: what a column sensor (satellite, aircraft
    remote sensing) sees of a surface flux, for :func:`backward_footprints`.

    A column is ``Omega = int_0^h A(z) c(z) dz`` over the boundary layer of height ``h``
    (``met.pblh`` at the receptor) with the averaging kernel ``A`` (1 without one),
    reported as ``units``: ``"ppm_m"``, ``"mol_m2"`` or ``"kg_m2"`` as
    :class:`ColumnImage` (ppm m with the surface air density), or ``"xch4_ppb"``, the
    column-average mole-fraction enhancement ``1e9 Omega / (M_CH4 Omega_air)`` over the
    whole dry-air column ``Omega_air = p_s / (g M_air)`` as :class:`ColumnAverage` with
    ``column_height=None``.

    **The column above the boundary layer receives no surface flux within the run:**
    particles are released in ``[0, h]`` and the particle engine keeps them there, so
    methane vented above the boundary layer before the receptor time (residual layers,
    deep convection, fronts) is not in the footprint; for ``xch4_ppb`` it still counts
    in the air column that the enhancement is averaged over.

    Attributes:
        x, y: column positions, m, shape ``(n,)`` (``y`` broadcasts).
        units: one of ``"ppm_m"``, ``"mol_m2"``, ``"kg_m2"``, ``"xch4_ppb"``.
        averaging_kernel: None (``A = 1``); ``(heights, values)``, each ``(m,)``, heights
            (m above ground) strictly increasing, interpolated linearly in height and
            constant beyond the ends; or a traceable callable ``A(z)`` of heights ``z``
            (m, any shape) returning dimensionless weights of the same shape.
    """

    x: Float[Array, " n"]
    y: Float[Array, " n"]
    units: str = eqx.field(static=True)
    averaging_kernel: tuple[Float[Array, " m"], Float[Array, " m"]] | Callable | None

    def __init__(self, x, y, *, units: str = "ppm_m", averaging_kernel=None):
        xs = _finite_1d("x", np.atleast_1d(x))
        self.x = jnp.asarray(xs)
        self.y = jnp.asarray(_finite_1d("y", y, xs.shape[0]))
        if units not in _COLUMN_UNITS:
            raise ValueError(f"`units` must be one of {tuple(_COLUMN_UNITS)}, got {units!r}")
        self.units = units
        if averaging_kernel is None or callable(averaging_kernel):
            self.averaging_kernel = averaging_kernel
        else:
            try:
                heights, values = averaging_kernel
            except (TypeError, ValueError):
                raise ValueError(
                    "`averaging_kernel` must be None, a callable A(z) or a pair (heights, "
                    f"values), got {type(averaging_kernel).__name__}"
                ) from None
            h = _finite_1d("averaging_kernel heights", heights)
            check_coordinate("averaging_kernel heights", h)
            v = _finite_1d("averaging_kernel values", values, h.shape[0])
            self.averaging_kernel = (jnp.asarray(h), jnp.asarray(v))

    @property
    def kind(self) -> str:
        """The :class:`~plumax_core.Observations` kind of the receptor values."""
        return _COLUMN_UNITS[self.units]

    def kernel(self, z: Float[Array, "..."]) -> Float[Array, "..."]:
        """The averaging kernel ``A(z)`` (dimensionless) at heights ``z`` (m)."""
        if self.averaging_kernel is None:
            return jnp.ones_like(z)
        if callable(self.averaging_kernel):
            a = jnp.asarray(self.averaging_kernel(z), dtype=z.dtype)
            if a.shape != z.shape:
                raise ValueError(
                    f"`averaging_kernel(z)` must return the shape of z {z.shape}, got {a.shape}"
                )
            return a
        heights, values = self.averaging_kernel
        return jnp.interp(z, heights.astype(z.dtype), values.astype(z.dtype))

    def _geometry(self):
        if self.units == "xch4_ppb":
            return ColumnAverage([0.0], [0.0], column_height=None)
        return ColumnImage([0.0], [0.0], units=self.units)


def unit_factor(
    receptors: PointReceptors | ColumnReceptors,
    temperature: Float[ArrayLike, " n"],
    pressure: Float[ArrayLike, " n"],
) -> Float[Array, " n"]:
    """Receptor units per kg/m3 (points) or per kg/m2 (columns), one value per receptor.

    The Tier I geometry's own conversion applied to a unit field (it is linear):
    :meth:`PointReceptors.finish` (``1e6 / (M_CH4 n)``, ``n = p/(R T)``, for ppm),
    :meth:`ColumnImage.finish` and :meth:`ColumnAverage.finish` (``1e9 / (M_CH4 p_s/(g
    M_air))`` for XCH4), with ``temperature`` (K) and ``pressure`` (Pa) at each receptor
    (shape ``(n,)``).
    """
    T = jnp.broadcast_to(jnp.asarray(temperature, float), receptors.x.shape)
    P = jnp.broadcast_to(jnp.asarray(pressure, float), receptors.x.shape)
    if isinstance(receptors, PointReceptors):
        return receptors.finish(jnp.ones(receptors.x.shape, T.dtype), T, P).values
    geometry = receptors._geometry()
    one = jnp.ones((1, 1), T.dtype)
    return jax.vmap(lambda t, p: geometry.finish(one, t, p).values[0, 0])(T, P)


class Footprint(eqx.Module):
    """Sensitivities of receptor values to a gridded surface flux (module docstring).

    Built by :func:`~plumax_transport.backward_footprints`. ``F[r, w, j, i]`` is the
    change of receptor ``r``'s value (in the receptors' units) per kg m-2 s-1 emitted
    from cell ``(j, i)`` (``y`` then ``x``) during window ``w``.

    Attributes:
        matrix: the ``BCOO`` matrix, shape ``(n_receptors, n_windows ny nx)``, columns in
            C order over ``(window, y, x)``; ``n_windows = 1`` without windows.
        x_edges, y_edges: flux-cell edges, m, ``(nx+1,)`` and ``(ny+1,)``, ascending.
        time: receptor times, s (host float64), ``(n_receptors,)``.
        time_windows: emission-window edges, s (host float64), ``(n_windows+1,)``, or
            None: one window, the whole run ``[time - duration, time]``.
        kind: the receptors' :class:`~plumax_core.Observations` kind (e.g.
            ``"concentration_ppm"``).
        n_particles: particles per receptor.
        duration: length of the backward run, s.
        dt: particle time step, s.
        surface_layer: fraction of the boundary-layer height counted as in contact with
            the surface.
    """

    matrix: object  # jax.experimental.sparse.BCOO (lazy import)
    x_edges: Float[Array, " nx+1"]
    y_edges: Float[Array, " ny+1"]
    time: np.ndarray
    time_windows: np.ndarray | None
    kind: str = eqx.field(static=True)
    n_particles: int = eqx.field(static=True)
    duration: float = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    surface_layer: float = eqx.field(static=True)

    def __check_init__(self):
        if self.kind not in OBSERVATION_KINDS:
            raise ValueError(f"`kind` must be an observation kind, got {self.kind!r}")
        nw = 1 if self.time_windows is None else len(self.time_windows) - 1
        n_cells = nw * (self.y_edges.shape[0] - 1) * (self.x_edges.shape[0] - 1)
        shape = tuple(self.matrix.shape)
        if len(shape) != 2 or shape[1] != n_cells:
            raise ValueError(
                f"`matrix` must have shape (n_receptors, {n_cells}) for these edges and "
                f"windows, got {shape}"
            )
        if np.shape(self.time) != (shape[0],):
            raise ValueError(f"`time` must have shape ({shape[0]},), got {np.shape(self.time)}")

    # -- shapes and units ------------------------------------------------------------

    @property
    def x(self) -> Float[Array, " nx"]:
        """Cell centres along x, m."""
        return 0.5 * (self.x_edges[1:] + self.x_edges[:-1])

    @property
    def y(self) -> Float[Array, " ny"]:
        """Cell centres along y, m."""
        return 0.5 * (self.y_edges[1:] + self.y_edges[:-1])

    @property
    def n_receptors(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def n_windows(self) -> int:
        return 1 if self.time_windows is None else len(self.time_windows) - 1

    @property
    def flux_shape(self) -> tuple[int, ...]:
        """Shape of the flux ``q``: ``(ny, nx)``, or ``(n_windows, ny, nx)`` with windows."""
        grid = (self.y_edges.shape[0] - 1, self.x_edges.shape[0] - 1)
        return grid if self.time_windows is None else (self.n_windows, *grid)

    @property
    def cell_area(self) -> Float[Array, "ny nx"]:
        """Cell areas, m2."""
        return jnp.diff(self.y_edges)[:, None] * jnp.diff(self.x_edges)[None, :]

    @property
    def receptor_units(self) -> str:
        """Units of the receptor values (of ``kind``)."""
        return OBSERVATION_KINDS[self.kind][0]

    @property
    def units(self) -> str:
        """Units of the footprint, e.g. ``"ppm (kg m-2 s-1)-1"``."""
        return f"{self.receptor_units} ({FLUX_UNITS})-1"

    @property
    def fill_fraction(self) -> float:
        """Fraction of the matrix's entries that are stored (non-zero)."""
        n, m = self.matrix.shape
        return float(self.matrix.nse) / float(n * m)

    # -- linear algebra --------------------------------------------------------------

    @property
    def operator(self) -> SparseMatrix:
        """``F`` as a lineax operator over the flattened flux (``O(nnz)`` products)."""
        return SparseMatrix(self.matrix)

    def apply(self, q: Float[ArrayLike, "*batch ..."]) -> Float[Array, "*batch n"]:
        """Receptor values ``F q`` (receptor units) for a flux ``q`` (kg m-2 s-1) of shape
        ``(*batch, *flux_shape)``; returns ``(*batch, n_receptors)``.

        Raises:
            ValueError: ``q`` does not end in :attr:`flux_shape`.
        """
        q = jnp.asarray(q)
        fs = self.flux_shape
        if q.shape[q.ndim - len(fs) :] != fs or q.ndim < len(fs):
            raise ValueError(f"`q` must end in the flux shape {fs}, got shape {q.shape}")
        batch = q.shape[: q.ndim - len(fs)]
        flat = q.reshape((-1, self.matrix.shape[1])).astype(self.matrix.dtype)
        out = (self.matrix @ flat.T).T
        return out.reshape((*batch, self.matrix.shape[0]))

    def dense(self) -> Float[Array, "n ..."]:
        """The dense footprint, ``(n_receptors, *flux_shape)`` (memory ``n x cells``)."""
        return self.matrix.todense().reshape((self.n_receptors, *self.flux_shape))

    def to_xarray(self):
        """An ``xarray.Dataset``: ``footprint`` as ``(receptor, [window,] y, x)`` with
        ``attrs["units"]``, cell centres and edges, receptor times and window edges.

        The values are densified: ``8 n_receptors n_windows ny nx`` bytes in float64 (use
        :attr:`matrix` for large problems).
        """
        import xarray as xr

        window = () if self.time_windows is None else ("window",)
        dims = ("receptor", *window, "y", "x")
        coords = {
            "x": ("x", np.asarray(self.x), {"units": "m", "long_name": "cell centre"}),
            "y": ("y", np.asarray(self.y), {"units": "m", "long_name": "cell centre"}),
            "x_edges": ("x_edge", np.asarray(self.x_edges), {"units": "m"}),
            "y_edges": ("y_edge", np.asarray(self.y_edges), {"units": "m"}),
            "time": (
                "receptor",
                np.asarray(self.time),
                {"units": "s", "long_name": "receptor time"},
            ),
        }
        if self.time_windows is not None:
            tw = np.asarray(self.time_windows)
            coords["window_start"] = ("window", tw[:-1], {"units": "s"})
            coords["window_end"] = ("window", tw[1:], {"units": "s"})
        long_name = f"sensitivity of {OBSERVATION_KINDS[self.kind][1]} to the surface flux"
        data = xr.Variable(
            dims, np.asarray(self.dense()), attrs={"units": self.units, "long_name": long_name}
        )
        attrs = {
            "kind": self.kind,
            "units": self.units,
            "flux_units": FLUX_UNITS,
            "n_particles": self.n_particles,
            "duration_s": self.duration,
            "dt_s": self.dt,
            "surface_layer": self.surface_layer,
            "fill_fraction": self.fill_fraction,
        }
        return xr.Dataset({"footprint": data}, coords=coords, attrs=attrs)
