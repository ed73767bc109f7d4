r"""The Eulerian field seen through a geometry (Tier III observation operator).

The state is the cell-mean tracer mass density ``q`` (kg/m³) on an
:class:`~plumax_transport.FVGrid`. A geometry samples it as the other tiers do, in kg/m³
(points) or kg/m² (columns), before its own ``finish`` converts the units:

* :class:`~plumax_transport.PointReceptors`: trilinear interpolation between the cell
  centres (uniform in ``x``, ``y``; stretched levels in ``z``); between the outermost
  centre and the grid's face (in particular below the first level centre, the air next
  to the ground) the outermost cell's value (the cell mean, a zero-gradient
  continuation).
* :class:`~plumax_transport.ColumnImage` / :class:`~plumax_transport.ColumnAverage`: the
  column ``Ω = Σ_k q_k Δz_k`` (kg/m²) of each grid column, partial up to ``z_top`` /
  ``column_height`` when set (the level that contains it counted by the fraction below,
  ``q`` being uniform in a cell; nothing above the grid's top: the model holds no tracer
  there), then bilinear interpolation between the column centres to the geometry's
  ``(y, x)`` centres, with the same continuation to the faces.

Every receptor (pixel centre) must lie inside the grid's box
(:func:`check_geometry_in_grid`): the model is never extrapolated beyond its domain.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ._geometry import AbstractGeometry, ColumnAverage, ColumnImage, PointReceptors

if TYPE_CHECKING:
    from ._fv_grid import FVGrid


def uniform_bracket(p: Array, c0: Array, d: float, n: int) -> tuple[Array, Array, Array]:
    """Lower and upper indices and fraction of positions ``p`` between uniformly spaced
    centres ``c0 + i d``, clamped at the ends (``f = 0`` or ``1``): the linear
    (cloud-in-cell) weights ``1 - f``, ``f`` of both the observation operator and the
    point source (:mod:`plumax_transport._eulerian_source`)."""
    if n == 1:
        zero = jnp.zeros(p.shape, jnp.int32)
        return zero, zero, jnp.zeros(p.shape, p.dtype)
    s = (p - c0) / d
    i = jnp.clip(jnp.floor(s), 0, n - 2)
    f = jnp.clip(s - i, 0.0, 1.0)
    i = i.astype(jnp.int32)
    return i, i + 1, f


def level_bracket(p: Array, z: Array) -> tuple[Array, Array, Array]:
    """As :func:`uniform_bracket` between the (stretched) level centres ``z``."""
    n = z.shape[0]
    if n == 1:
        zero = jnp.zeros(p.shape, jnp.int32)
        return zero, zero, jnp.zeros(p.shape, p.dtype)
    i = jnp.clip(jnp.searchsorted(z, p, side="right") - 1, 0, n - 2).astype(jnp.int32)
    f = jnp.clip((p - z[i]) / (z[i + 1] - z[i]), 0.0, 1.0)
    return i, i + 1, f


def point_values(grid: FVGrid, q: Float[Array, "nz ny nx"], x, y, z) -> Float[Array, " n"]:
    """``q`` (kg/m³) at points ``(x, y, z)`` (m), trilinear between the cell centres."""
    dtype = q.dtype
    x, y, z = (jnp.asarray(a, dtype) for a in (x, y, z))
    ix0, ix1, fx = uniform_bracket(x, jnp.asarray(grid.x[0], dtype), grid.dx, grid.nx)
    iy0, iy1, fy = uniform_bracket(y, jnp.asarray(grid.y[0], dtype), grid.dy, grid.ny)
    iz0, iz1, fz = level_bracket(z, jnp.asarray(grid.z, dtype))
    out = 0.0
    for iz, wz in ((iz0, 1.0 - fz), (iz1, fz)):
        for iy, wy in ((iy0, 1.0 - fy), (iy1, fy)):
            for ix, wx in ((ix0, 1.0 - fx), (ix1, fx)):
                out = out + wz * wy * wx * q[iz, iy, ix]
    return out


def column(grid: FVGrid, q: Float[Array, "nz ny nx"], z_top: float | None) -> Array:
    """The column ``Σ q Δz`` (kg/m²) of each grid column, ``(ny, nx)``, up to ``z_top``
    (m; None: the whole grid)."""
    dz = jnp.asarray(grid.dz, q.dtype)
    if z_top is None:
        frac = jnp.ones_like(dz)
    else:
        lower = jnp.asarray(grid.z_edges[:-1], q.dtype)
        frac = jnp.clip((z_top - lower) / dz, 0.0, 1.0)
    return jnp.tensordot(frac * dz, q, axes=1)


def column_values(grid: FVGrid, col: Float[Array, "ny nx"], X, Y) -> Array:
    """Bilinear interpolation of the columns ``col`` (kg/m²) at ``(X, Y)`` (m,
    broadcast together)."""
    dtype = col.dtype
    X, Y = jnp.broadcast_arrays(jnp.asarray(X, dtype), jnp.asarray(Y, dtype))
    ix0, ix1, fx = uniform_bracket(X, jnp.asarray(grid.x[0], dtype), grid.dx, grid.nx)
    iy0, iy1, fy = uniform_bracket(Y, jnp.asarray(grid.y[0], dtype), grid.dy, grid.ny)
    return (1.0 - fy) * ((1.0 - fx) * col[iy0, ix0] + fx * col[iy0, ix1]) + fy * (
        (1.0 - fx) * col[iy1, ix0] + fx * col[iy1, ix1]
    )


def sample(geometry: AbstractGeometry, grid: FVGrid, q: Float[Array, "nz ny nx"]) -> Array:
    """The geometry's field in kg/m³ (points, ``(n,)``) or kg/m² (columns, ``(ny, nx)``)
    from the state ``q`` (module docstring)."""
    if isinstance(geometry, PointReceptors):
        return point_values(grid, q, geometry.x, geometry.y, geometry.z)
    if isinstance(geometry, ColumnImage):
        top = geometry.z_top
    elif isinstance(geometry, ColumnAverage):
        top = geometry.column_height
    else:  # pragma: no cover - the model's constructor refuses other geometries
        raise TypeError(f"unsupported geometry {type(geometry).__name__}")
    X, Y = geometry.horizontal()
    return column_values(grid, column(grid, q, top), X, Y)


def geometry_shape(geometry: AbstractGeometry) -> tuple[int, ...]:
    """Shape of the geometry's values: ``(n,)`` or ``(ny, nx)``."""
    if isinstance(geometry, PointReceptors):
        return (int(geometry.x.shape[0]),)
    return (int(geometry.y.shape[0]), int(geometry.x.shape[0]))


def grid_box(grid: FVGrid) -> tuple[float, float, float, float, float]:
    """``(x_lo, x_hi, y_lo, y_hi, top)``: the grid's outer faces, m, as host floats
    (from its stored coordinates, so also while a caller is being traced)."""
    x, y = np.asarray(grid.x, np.float64), np.asarray(grid.y, np.float64)
    top = float(np.asarray(grid.z_edges, np.float64)[-1])
    return (
        float(x[0] - 0.5 * grid.dx),
        float(x[-1] + 0.5 * grid.dx),
        float(y[0] - 0.5 * grid.dy),
        float(y[-1] + 0.5 * grid.dy),
        top,
    )


def check_geometry_in_grid(geometry: AbstractGeometry, grid: FVGrid) -> None:
    """``ValueError`` naming ``geometry`` when a receptor (pixel centre) lies outside
    the grid's box ``[x_edges_0, x_edges_-1] x [y_edges_0, y_edges_-1] x [0, z_top]``,
    or when the geometry is not one of the three the model observes."""
    if not isinstance(geometry, PointReceptors | ColumnImage | ColumnAverage):
        raise ValueError(
            "`geometry` must be a PointReceptors, ColumnImage or ColumnAverage, got "
            f"{type(geometry).__name__}"
        )
    x_lo, x_hi, y_lo, y_hi, top = grid_box(grid)
    xe, ye = np.array([x_lo, x_hi]), np.array([y_lo, y_hi])
    X, Y = (np.asarray(c, np.float64) for c in geometry.horizontal())
    tol = 1e-9 * max(1.0, np.abs(xe).max(), np.abs(ye).max())
    bad = []
    if X.min() < xe[0] - tol or X.max() > xe[-1] + tol:
        bad.append(f"x in [{X.min():g}, {X.max():g}] m beyond the grid's [{xe[0]:g}, {xe[-1]:g}]")
    if Y.min() < ye[0] - tol or Y.max() > ye[-1] + tol:
        bad.append(f"y in [{Y.min():g}, {Y.max():g}] m beyond the grid's [{ye[0]:g}, {ye[-1]:g}]")
    if isinstance(geometry, PointReceptors) and geometry.max_height > top * (1 + 1e-12):
        bad.append(f"a receptor at {geometry.max_height:g} m above the grid's top {top:g} m")
    if bad:
        raise ValueError(
            "`geometry` must lie inside the grid (the model is not extrapolated): " + "; ".join(bad)
        )
