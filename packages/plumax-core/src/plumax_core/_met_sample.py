r"""Per-particle sampling of a :class:`~plumax_core.MetField`.

A Lagrangian model asks for the met at every particle, every step: ``N`` query points
``(t, z, y, x)``. :class:`MetSampler` answers with multilinear interpolation of the
met's ``(time, z, y, x)`` fields:

* a **scalar** field is the same everywhere and always (the answer is the scalar, shape
  ``()``, which broadcasts against the particles);
* along an axis where a field has **size 1** it is constant;
* along an axis where it has size ``n > 1`` it is interpolated linearly between the two
  bracketing coordinates, ``f = (q - c_i) / (c_{i+1} - c_i)``: a time series
  ``(nt, 1, 1, 1)`` linearly in time, a gridded field trilinearly in space and linearly
  in time. Multilinear interpolation reproduces exactly every function that is linear in
  each coordinate separately (``a + b x + c y t + ...``).

Outside the coordinate range the query is **clamped** to the nearest end (constant
extrapolation) by the sampler itself; the callers decide what an outside point means:

* ``z`` (height above ground, m): below the lowest or above the highest level the
  nearest level's value is used. A met without a ``z`` axis is uniform in height;
* ``x``, ``y``: :meth:`MetSampler.contains` says which points lie inside the met's
  horizontal domain ``[x_0, x_{-1}] x [y_0, y_{-1}]`` (unbounded along an axis without
  a coordinate): a particle model marks the others inactive rather than clamping them;
* ``t``: a query outside ``[time_0, time_{-1}]`` of a met that varies in time raises
  (:meth:`MetSampler.check_time`, :func:`sample_met`); a met that does not vary in time
  is valid at any time.

Times are handled as offsets from the met's first time (``MetSampler.origin``, a host
float64), so that a float32 run with UTC-epoch times (``~1.7e9`` s, float32 resolution
128 s) still interpolates with the resolution of the offset:
:meth:`MetSampler.at_offset` takes ``tau = t - origin``.

Fields of the same shape are stacked once, at construction, into a *corner table*: for
every grid cell, the values of all those fields at all ``2^m`` corners of the cell (``m``
the number of spatial axes the fields vary along) form one row, so that a point needs a
single gather (two for a time-varying field) rather than one per corner: on XLA:CPU a gather
of one wide row is several times faster than ``2^m`` narrow ones. The table has ``2^m``
times the values of the fields; above ``MAX_TABLE_SIZE`` values the sampler gathers
corner by corner instead. A time-varying field queried at one time for all points is
first blended between its two bracketing time slices when a slice is small against the
number of points, when it is gathered corner by corner (with a corner table, two row
gathers were measured faster). Coordinates with uniform spacing are located
arithmetically, others by binary search.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float

from ._errors import error_if
from ._met import _FIELD_ATTRS, MetField
from ._validation import is_concrete

__all__ = ["MetSampler", "sample_met"]

_AXES = ("time", "z", "y", "x")
#: Without a corner table, a time-varying field queried at one time for all points is
#: blended between its two time slices first when a slice has at most this many values
#: per point.
_SLAB_FACTOR = 16
#: Largest corner table (number of values) built; larger groups gather corner by corner.
MAX_TABLE_SIZE = 2**25


def _is_tracer(x: Any) -> bool:
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(x))


def _uniform_spacing(c: np.ndarray) -> bool:
    d = np.diff(c)
    return bool(d.size > 0 and np.all(np.abs(d - d[0]) <= 1e-6 * abs(d[0])))


class _Axis(eqx.Module):
    """One interpolation axis: its coordinate and how to locate a query on it."""

    coord: Float[Array, " n"]
    uniform: bool = eqx.field(static=True)

    def locate(self, q: Array) -> tuple[Array, Array]:
        """Lower bracket index ``i`` in ``[0, n-2]`` and fraction ``f`` in ``[0, 1]``."""
        c = self.coord
        n = c.shape[0]
        if self.uniform:  # arithmetic, no gather
            s = (q - c[0]) / (c[1] - c[0])
            fi = jnp.clip(jnp.floor(s), 0, n - 2)
            return fi.astype(jnp.int32), jnp.clip(s - fi, 0.0, 1.0)
        i = jnp.searchsorted(c, q, side="right", method="scan_unrolled") - 1
        i = jnp.clip(i, 0, n - 2).astype(jnp.int32)
        lo = c[i]
        return i, jnp.clip((q - lo) / (c[i + 1] - lo), 0.0, 1.0)


class _Table(eqx.Module):
    """Fields of one shape ``(nt|1, nz|1, ny|1, nx|1)``, ``k`` of them, for interpolation.

    With ``corners`` the data is the corner table ``(nt|1, cells..., 2^m k)`` (module
    docstring), else the stacked fields ``(nt|1, nz|1, ny|1, nx|1, k)``.
    """

    data: Array
    k: int = eqx.field(static=True)
    spatial: tuple[int, ...] = eqx.field(static=True)  # varying spatial axes (1, 2, 3)
    timed: bool = eqx.field(static=True)
    corners: bool = eqx.field(static=True)

    def __init__(self, stacked: Array, corners: bool | None):
        shape = stacked.shape[:4]
        self.k = int(stacked.shape[4])
        self.spatial = tuple(ax for ax in (1, 2, 3) if shape[ax] > 1)
        self.timed = shape[0] > 1
        m = len(self.spatial)
        if corners is None:
            corners = m > 0 and stacked.size * 2**m <= MAX_TABLE_SIZE
        self.corners = bool(corners) and m > 0
        if self.corners:
            parts = []
            for corner in itertools.product((0, 1), repeat=m):
                part = stacked
                for ax, c in zip(self.spatial, corner, strict=True):
                    part = jax.lax.slice_in_dim(part, c, shape[ax] - 1 + c, axis=ax)
                parts.append(part)
            self.data = jnp.concatenate(parts, axis=-1)
        else:
            self.data = stacked

    def __call__(self, located, n_points: int) -> Array:
        data = self.data
        timed = self.timed
        slab = not self.corners and data[0].size <= _SLAB_FACTOR * n_points
        if timed and located[0][0].ndim == 0 and slab:
            i, f = located[0]  # one time for all points: blend the two time slices once
            a = jax.lax.dynamic_index_in_dim(data, i, axis=0)
            data = a + f * (jax.lax.dynamic_index_in_dim(data, i + 1, axis=0) - a)
            timed = False
        if not timed and not self.spatial:
            return data.reshape(-1)
        shape = data.shape[:4]
        width = data.shape[4]
        flat = data.reshape(-1, width)
        strides = [int(math.prod(shape[ax + 1 :])) for ax in range(4)]
        if not self.corners:
            return self._by_corner(flat, strides, located, timed)
        base = 0
        weights = []
        for ax in self.spatial:
            base = base + located[ax][0] * strides[ax]
        for corner in itertools.product((0, 1), repeat=len(self.spatial)):
            w = 1.0
            for ax, c in zip(self.spatial, corner, strict=True):
                f = located[ax][1]
                w = w * (f if c else 1.0 - f)
            weights.append(w[..., None])
        k = self.k

        def rows(index):
            r = flat.at[index].get(mode="promise_in_bounds")  # in range by construction
            acc = weights[0] * r[..., :k]
            for c in range(1, len(weights)):
                acc = acc + weights[c] * r[..., c * k : (c + 1) * k]
            return acc

        if not timed:
            return rows(base)
        i, f = located[0]
        a = rows(base + i * strides[0])
        return a + f[..., None] * (rows(base + (i + 1) * strides[0]) - a)

    def _by_corner(self, flat, strides, located, timed) -> Array:
        axes = ([0] if timed else []) + list(self.spatial)
        acc = None
        for corner in itertools.product((0, 1), repeat=len(axes)):
            idx = 0
            w = 1.0
            for ax, c in zip(axes, corner, strict=True):
                i, f = located[ax]
                idx = idx + (i + c) * strides[ax]
                w = w * (f if c else 1.0 - f)
            term = w[..., None] * flat.at[idx].get(mode="promise_in_bounds")
            acc = term if acc is None else acc + term
        return acc


class MetSampler(eqx.Module):
    """Selected fields of a :class:`MetField`, ready for interpolation at N points.

    Build it once (outside a time loop) and call it at every step::

        sampler = MetSampler(met, ("u", "v", "pblh"))
        u, v, h = sampler(t, x, y, z)

    Attributes:
        tables: the fields grouped by shape, as corner tables (module docstring).
        layout: for each requested field, ``(group, column)``.
        axes: the time, z, y and x axes (None where no field varies along it).
        origin: the met's first time, s (a host float; 0 for a traced met).
        time_range: ``(time_0, time_-1)`` as host floats, None for a traced met.
        time_varying: whether any sampled field varies in time.
        xy: the ``x`` and ``y`` coordinates bounding the horizontal domain (None along
            an axis without one: unbounded).
    """

    tables: tuple[_Table, ...]
    layout: tuple[tuple[int, int], ...] = eqx.field(static=True)
    axes: tuple[_Axis | None, ...]
    xy: tuple[Float[Array, " n"] | None, Float[Array, " n"] | None]
    origin: float = eqx.field(static=True)
    time_range: tuple[float, float] | None = eqx.field(static=True)
    time_varying: bool = eqx.field(static=True)

    def __init__(
        self,
        met: MetField,
        fields: Sequence[str | ArrayLike],
        *,
        dtype: Any = None,
        corner_tables: bool | None = None,
    ):
        """Args:
        met: the met whose grid and coordinates are used.
        fields: each a :class:`MetField` attribute name (``"u"``, ``"pblh"``, ...) or an
            array on the met's grid (a scalar or 4-D, broadcastable to
            ``met.grid_shape`` like a field: e.g. a quantity derived from fields).
        dtype: floating dtype of the stacked fields and coordinates (default: the
            default float dtype; float32 unless x64 is enabled).
        corner_tables: store corner tables (True), gather corner by corner (False),
            or decide by size (None, ``MAX_TABLE_SIZE``); the values are the same.

        Raises:
            ValueError: an unknown or absent field name, a field of the wrong shape, a
                field varying along ``z``/``y``/``x`` without that coordinate, or a
                coordinate that is not strictly increasing.
        """
        dtype = jnp.result_type(float) if dtype is None else dtype
        if isinstance(fields, str):
            fields = (fields,)
        grid = met.grid_shape
        arrays: list[Array] = []
        for item in fields:
            if isinstance(item, str):
                if item not in _FIELD_ATTRS:
                    raise ValueError(f"`fields`: MetField has no field {item!r}")
                val = getattr(met, item, None)
                if val is None:
                    raise ValueError(f"`met.{item}` is not set; it is needed here")
                name = f"met.{item}"
            else:
                val = jnp.asarray(item)
                name = "a derived field"
            if val.ndim not in (0, 4):
                raise ValueError(
                    f"`{name}` must be a scalar or a 4-D (time, z, y, x) array, got shape "
                    f"{val.shape}"
                )
            if val.ndim == 4:
                for ax, (n, g) in enumerate(zip(val.shape, grid, strict=True)):
                    if n != 1 and n != g:
                        raise ValueError(
                            f"`{name}` has size {n} along {_AXES[ax]!r} but the grid has {g}"
                        )
            arrays.append(jnp.asarray(val).astype(dtype))
        shapes: list[tuple[int, ...]] = []
        members: list[list[int]] = []
        layout: list[tuple[int, int]] = []
        for j, a in enumerate(arrays):
            shape = (1, 1, 1, 1) if a.ndim == 0 else a.shape
            if shape not in shapes:
                shapes.append(shape)
                members.append([])
            g = shapes.index(shape)
            layout.append((g, len(members[g])))
            members[g].append(j)
        self.tables = tuple(
            _Table(jnp.stack([jnp.reshape(arrays[j], shape) for j in mem], axis=-1), corner_tables)
            for shape, mem in zip(shapes, members, strict=True)
        )
        self.layout = tuple(layout)
        varies = [any(s[ax] > 1 for s in shapes) for ax in range(4)]
        coords = (met.time, met.z, met.y, met.x)
        axes: list[_Axis | None] = []
        for ax, name in enumerate(_AXES):
            c = coords[ax]
            if not varies[ax]:
                axes.append(None)
                continue
            if c is None:
                raise ValueError(
                    f"a sampled field varies along {name!r} but `met.{name}` (the coordinate) "
                    "is None"
                )
            uniform = False
            if is_concrete(c):
                cn = np.asarray(c, dtype=np.float64)
                if np.any(np.diff(cn) <= 0):
                    raise ValueError(f"`met.{name}` must be strictly increasing to interpolate")
                uniform = _uniform_spacing(cn)
            if ax == 0 and is_concrete(c):
                # offsets from the first time, computed in float64 (module docstring)
                cn = np.asarray(c, dtype=np.float64)
                c = cn - cn[0]
            axes.append(_Axis(jnp.asarray(c, dtype=dtype), uniform))
        self.axes = tuple(axes)
        t = met.time
        self.time_varying = varies[0]
        if is_concrete(t):
            tn = np.asarray(t, dtype=np.float64)
            self.origin = float(tn[0])
            self.time_range = (float(tn[0]), float(tn[-1]))
        else:
            self.origin = 0.0
            self.time_range = None
        self.xy = (
            None if met.x is None else jnp.asarray(met.x, dtype=dtype),
            None if met.y is None else jnp.asarray(met.y, dtype=dtype),
        )

    # -- queries ---------------------------------------------------------------------

    def __call__(self, t, x, y, z=None) -> tuple[Array, ...]:
        """The fields at ``(t, z, y, x)``: a tuple in the order of ``fields``.

        ``t`` (s, absolute), ``x``, ``y`` (m) and ``z`` (m above ground; ignored when no
        field varies in height, required otherwise) broadcast together; each result has
        the broadcast shape of the coordinates its field varies along (``()`` for a
        scalar field). Outside points are clamped (module docstring); use
        :meth:`check_time` / :meth:`contains` for the policy.
        """
        tau = None if self.axes[0] is None else self.offset(t)
        return self.at_offset(tau, x, y, z)

    def offset(self, t, dtype: Any = None) -> Array:
        """``t - origin`` (s): in float64 on the host for a concrete ``t``, then cast to
        ``dtype`` (default: the sampler's)."""
        if dtype is None:
            dtype = self.tables[0].data.dtype if self.tables else jnp.result_type(float)
        if not _is_tracer(t):
            return jnp.asarray(np.asarray(t, dtype=np.float64) - self.origin, dtype=dtype)
        return jnp.asarray(t, dtype) - jnp.asarray(self.origin, dtype)

    def at_offset(self, tau, x, y, z=None) -> tuple[Array, ...]:
        """As :meth:`__call__` with the time given as ``tau = t - origin`` (s)."""
        queries = (tau, z, y, x)
        located: list[tuple[Array, Array] | None] = []
        for ax, axis in enumerate(self.axes):
            if axis is None:
                located.append(None)
                continue
            q = queries[ax]
            if q is None:
                raise ValueError(
                    f"a sampled field varies along {_AXES[ax]!r}: pass the query coordinate"
                )
            located.append(axis.locate(jnp.asarray(q, dtype=axis.coord.dtype)))
        n_points = math.prod(
            jnp.broadcast_shapes(*(jnp.shape(q) for q in (x, y, z) if q is not None))
        )
        out: list[Array | None] = [None] * len(self.layout)
        for g, table in enumerate(self.tables):
            vals = table(located, max(n_points, 1))
            for j, (gj, col) in enumerate(self.layout):
                if gj == g:
                    out[j] = vals[..., col]
        return tuple(out)  # type: ignore[arg-type]

    def contains(self, x, y) -> Bool[Array, "..."]:
        """True where ``(x, y)`` lies in the met's horizontal domain (module docstring)."""
        inside = jnp.ones(jnp.broadcast_shapes(jnp.shape(x), jnp.shape(y)), dtype=bool)
        for c, q in zip(self.xy, (x, y), strict=True):
            if c is not None:
                inside = inside & (q >= c[0]) & (q <= c[-1])
        return inside

    def check_time(self, t_start, t_end, name: str = "t") -> None:
        """Raise ``ValueError`` (naming ``name``) if ``[t_start, t_end]`` (s, either
        order) leaves the met's time range while a sampled field varies in time.

        Concrete values only; a traced time is not checked here (see
        :func:`sample_met`)."""
        if not self.time_varying or self.time_range is None:
            return
        if _is_tracer((t_start, t_end)):
            return
        a, b = sorted((float(np.asarray(t_start)), float(np.asarray(t_end))))
        t0, t1 = self.time_range
        tol = 1e-9 * max(1.0, abs(t0), abs(t1))
        if a < t0 - tol or b > t1 + tol:
            raise ValueError(
                f"`{name}` spans [{a}, {b}] s, outside the met time range [{t0}, {t1}] s "
                "(the met varies in time and is never extrapolated)"
            )


def sample_met(
    met: MetField,
    fields: Sequence[str | ArrayLike] | str,
    t: ArrayLike,
    x: ArrayLike,
    y: ArrayLike,
    z: ArrayLike | None = None,
) -> tuple[Array, ...]:
    """Fields of ``met`` at points ``(t, z, y, x)`` by multilinear interpolation.

    A one-off convenience around :class:`MetSampler` (build the sampler once when
    sampling repeatedly). Each result has the broadcast shape of the query coordinates
    its field varies along (``()`` for a scalar field).

    Args:
        met: the met.
        fields: field names (``"u"``, ``"pblh"``, ...) or arrays on the met's grid.
        t: time, s UTC (scalar or per point).
        x, y: horizontal position, m.
        z: height above ground, m (needed when a field varies in height).

    Raises:
        ValueError: a time outside the met's range when a sampled field varies in time
            (checked at run time, as :func:`plumax_core.validation.error_if`, when ``t``
            is traced), or any error of :class:`MetSampler`.
    """
    if isinstance(fields, str):
        fields = (fields,)
    sampler = MetSampler(met, fields)
    if sampler.time_varying:
        if _is_tracer(t) or sampler.time_range is None:
            t0, t1 = met.time[0], met.time[-1]
            tt = jnp.asarray(t)
            t = error_if(tt, jnp.any((tt < t0) | (tt > t1)), "`t` is outside the met time range")
        else:
            tn = np.asarray(t, dtype=np.float64)
            sampler.check_time(tn.min(), tn.max(), name="t")
    return sampler(t, x, y, z)
