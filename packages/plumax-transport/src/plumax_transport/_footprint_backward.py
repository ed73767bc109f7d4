r"""Backward Lagrangian receptor footprints (Tier II), as STILT.

**Footprint of a point receptor.** For a passive tracer with source density ``S``
(kg m-3 s-1) the mass concentration at a receptor ``(x_r, t_r)`` due to sources in
``[t_r - T, t_r]`` is (Flesch, Wilson & Yee 1995, *J. Appl. Meteor.* 34, 1320-1332;
Seibert & Frank 2004, *Atmos. Chem. Phys.* 4, 51-63, eq. 7)

.. math::

   c(x_r, t_r) = \int_{t_r - T}^{t_r}\!\!\int p_b(x, t \mid x_r, t_r)\, S(x, t)\, dx\, dt,

``p_b`` (1/m3) the density of particles released at the receptor and run backward in
time (:func:`~plumax_transport.run_particles` with ``direction=-1``; the engine's
backward model is well mixed, so ``p_b`` is the adjoint of the forward transition
density for an incompressible flow). A surface flux ``q`` (kg m-2 s-1) is represented,
as in STILT (Lin et al. 2003, *J. Geophys. Res.* 108(D16), 4493, eq. 8), as a source
spread uniformly over the layer in contact with the surface, ``0 <= z <= h_s``, with
``h_s = f h`` a fraction ``f = surface_layer`` (STILT's default 0.5) of the local
boundary-layer height ``h`` (``met.pblh``): ``S = q / h_s`` there. For ``q`` constant
over cell ``(j, i)`` and window ``w`` the integral over the layer and the cell is the
time the backward particles spend in it, so that ``c = sum F q`` with

.. math::

   F_{w j i} = \frac{1}{N}\sum_{p=1}^{N}\sum_{k}
       \frac{\Delta t}{h_s(x_{pk}, y_{pk}, t_k)}\,
       \mathbb 1[z_{pk} \le h_s,\ (x_{pk}, y_{pk}) \in \text{cell } j i,\ t_k \in w],

in s/m (kg m-3 per kg m-2 s-1): mass ``q A dt`` emitted into a layer of depth ``h_s``
over a cell of area ``A`` raises the layer's concentration by ``q dt / h_s``, and
``F h_s`` (s, for ``h_s`` constant) is the probability-weighted time the receptor's air
spent in the surface layer over the cell (STILT's residence time). The sum runs
over the steps ``k = 0 .. n-1`` of the backward run, with the particle at the end of
step ``k`` (time ``t_k = t_r - (k+1) dt``, a right-endpoint rule in time); a step belongs
to the window ``(t_w, t_{w+1}]`` containing its midpoint ``t_r - (k + 1/2) dt`` (steps
outside every window are dropped), and particles that left the met's domain no longer count. STILT's
``f = m_air/(h rho) (1/N) sum dt`` is the same expression in mole fraction per molar
flux; here the receptor's units are applied afterwards by :func:`unit_factor` (ppm: the
dry-air molar density at the receptor, as the Tier I geometries; equal to STILT's
density below ``h_s`` in the constant-density flow the engine integrates).

**Columns** (:class:`ColumnReceptors`): the column ``Omega = int_0^h A(z) c(z) dz`` at
the receptor is ``h`` times the mean of ``A c`` over heights uniform in ``[0, h]``: the
``N`` particles are released at stratified heights ``z_p = h (p + u_p)/N``, ``u_p ~
U[0, 1)``, each with weight ``h A(z_p)``, and the weights multiply the sum above (units
s: kg m-2 per kg m-2 s-1). Mass balance: with ``f = 1``, ``A = 1`` and a grid that holds
every particle, ``sum F = T`` exactly (all the flux of the last ``T`` seconds is in the
column); with ``f < 1`` the same holds on average in a well-mixed model.

**Cost and memory.** Each step adds every particle's contribution to its flattened
cell index ``w ny nx + j nx + i`` (one scatter-add, ``O(N)`` per step, inside the
engine's ``lax.scan``). Receptors run ``batch_size`` at a time (``jax.vmap``; each
batch holds a dense ``(batch_size, n_windows ny nx)`` array), and each batch's non-zeros
go to the sparse matrix on the host. Receptor ``r`` uses the key ``fold_in(key, r)``:
the result does not depend on ``batch_size``.

**Time.** Times enter the run only as offsets, never as epoch times (float32 resolves a
UTC-epoch time, ``~1.7e9`` s, only to 128 s). Window edges are taken relative to each
receptor's own time on the host (float64) and clipped to ``[-(T + dt), dt]``, and step
``k`` is assigned by its offset ``-(k + 1/2) dt``, so the windows do not depend on the
epoch; a ``dt`` that the run's dtype cannot resolve at ``T`` (spacing above ``dt / 100``)
raises (enable jax x64). A steady met is the same at every time: its runs start at time
0 (each receptor its own origin). A met that varies in time is sampled at the offset
from its first time (float64 on the host, then the run's dtype), which must resolve
``dt / 100`` over the whole run, else a ``ValueError`` (enable jax x64, or give
``met.time`` and ``time`` relative to a local origin).
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from plumax_core import MetField, MetSampler
from plumax_core.validation import check_coordinate

from ._common import is_concrete
from ._footprint import ColumnReceptors, Footprint, _finite_1d, unit_factor
from ._geometry import PointReceptors
from ._particle_met import TRANSPORT_FIELDS, varies_in_time
from ._particles import initial_state, run_particles
from ._turbulence import AbstractTurbulence, HannaTurbulence

#: The fields whose time variation matters here: the transport and, for the unit
#: conversion at each receptor, temperature and pressure.
_MET_FIELDS = (*TRANSPORT_FIELDS, "temperature", "pressure")

#: The default turbulence (Hanna 1982, as in FLEXPART).
_HANNA = HannaTurbulence()


class _CellIndex(eqx.Module):
    """Cell index ``i`` of positions along one axis with edges ``e`` (``e_i <= x <
    e_{i+1}``; ``-1`` or ``n`` outside): arithmetic for even edges, else a search."""

    edges: Float[Array, " n+1"]
    uniform: bool = eqx.field(static=True)

    def __call__(self, q: Array) -> Array:
        e = self.edges.astype(q.dtype)
        n = e.shape[0] - 1
        if self.uniform:
            s = jnp.floor((q - e[0]) * (n / (e[-1] - e[0])))
            i = jnp.clip(s, -1, n).astype(jnp.int32)
        else:
            i = (jnp.searchsorted(e, q, side="right") - 1).astype(jnp.int32)
        # half-open cells; the last edge itself is outside, whatever the rounding
        return jnp.where((q >= e[0]) & (q < e[-1]), jnp.clip(i, 0, n - 1), -1)


class _Residence(eqx.Module):
    """The ``accumulate`` callback: adds ``weight dt / h_s`` of every particle in the
    surface layer to its (window, cell) entry of the flat footprint (module docstring)."""

    pblh: MetSampler
    ix: _CellIndex
    iy: _CellIndex
    windows: Float[Array, " nw+1"] | None  # window edges relative to the receptor time, s
    tau_r: Float[Array, ""]  # receptor time in the met's local time (module docstring), s
    weight: Float[Array, " N"]
    dt: Float[Array, ""]
    surface_layer: Float[Array, ""]

    def __call__(self, carry: Float[Array, " C"], state, k) -> Float[Array, " C"]:
        dtype = state.x.dtype
        kf = k.astype(dtype)
        dt = self.dt.astype(dtype)
        (h,) = self.pblh.at_offset(self.tau_r - (kf + 1.0) * dt, state.x, state.y)
        hs = self.surface_layer.astype(dtype) * h
        nx = self.ix.edges.shape[0] - 1
        ny = self.iy.edges.shape[0] - 1
        i, j = self.ix(state.x), self.iy(state.y)
        hit = state.active & (state.z <= hs) & (i >= 0) & (j >= 0)
        cell = j * nx + i
        if self.windows is not None:
            w = jnp.searchsorted(self.windows.astype(dtype), -(kf + 0.5) * dt)
            w = w.astype(jnp.int32) - 1  # side="left": a midpoint on an edge goes left
            nw = self.windows.shape[0] - 1
            hit = hit & (w >= 0) & (w < nw)
            cell = cell + w * (nx * ny)
        index = jnp.where(hit, cell, carry.shape[0])  # out of range: dropped
        return carry.at[index].add(self.weight * (dt / hs), mode="drop")


def _int(name: str, v, minimum: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < minimum:
        raise ValueError(f"`{name}` must be an int >= {minimum}, got {v!r}")
    return int(v)


def _positive(name: str, v, units: str) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a number ({units}), got {v!r}") from None
    if not (math.isfinite(f) and f > 0):
        raise ValueError(f"`{name}` must be finite and > 0 {units}, got {v!r}")
    return f


def _edges(name: str, v) -> tuple[np.ndarray, bool]:
    arr = _finite_1d(name, v)
    if arr.shape[0] < 2:
        raise ValueError(f"`{name}` must hold >= 2 cell edges (m), got {arr.shape[0]}")
    check_coordinate(name, arr)
    d = np.diff(arr)
    return arr, bool(np.all(np.abs(d - d[0]) <= 1e-9 * np.max(np.abs(arr))))


def _resolution(dtype, seconds: float) -> float:
    return float(np.spacing(np.asarray(abs(seconds), dtype=dtype)))


def _check_times(varying, met, tau, duration, dt, windowed, dtype) -> None:
    """The times the run uses, resolved to ``dt / 100`` in ``dtype`` (module docstring):
    the window edges relative to the receptor time (within ``duration + dt`` of it) and,
    for a met that varies in time, the run ``[tau - duration, tau]`` inside its range."""
    if windowed and _resolution(dtype, duration + dt) > 0.01 * dt:
        raise ValueError(
            f"`time_windows`: {np.dtype(dtype)} resolves only "
            f"{_resolution(dtype, duration + dt):g} s at `duration` = {duration} s before the "
            f"receptor time, too coarse to assign steps of `dt` = {dt} s to windows; "
            "enable jax x64 or shorten the run"
        )
    if not varying:
        return
    end = float(np.asarray(met.time[-1], np.float64) - np.asarray(met.time[0], np.float64))
    lo, hi = float(np.min(tau)) - duration, float(np.max(tau))
    tol = 1e-9 * max(1.0, end)
    if lo < -tol or hi > end + tol:
        raise ValueError(
            f"`time` - `duration` .. `time` spans [{lo}, {hi}] s after the met's first time, "
            f"outside the met time range [0, {end}] s (the met varies in time and is never "
            "extrapolated)"
        )
    far = max(abs(lo), abs(hi))
    if _resolution(dtype, far) > 0.01 * dt:
        raise ValueError(
            f"`time`: {np.dtype(dtype)} resolves only {_resolution(dtype, far):g} s at {far} s "
            f"from the first time of a met that varies in time, too coarse for `dt` = {dt} s; "
            "enable jax x64 or give `met.time` and `time` relative to a local origin"
        )


def backward_footprints(
    receptors: PointReceptors | ColumnReceptors,
    met: MetField,
    *,
    x: Float[ArrayLike, " nx+1"],
    y: Float[ArrayLike, " ny+1"],
    time: float | Float[ArrayLike, " n"],
    duration: float,
    dt: float,
    key: PRNGKeyArray,
    n_particles: int = 200,
    turbulence: AbstractTurbulence = _HANNA,
    time_windows: Float[ArrayLike, " nw+1"] | None = None,
    surface_layer: float = 0.5,
    batch_size: int = 16,
    reference_height: float = 10.0,
) -> Footprint:
    """Footprints of receptors on a flux grid by backward particle runs (module docstring).

    Args:
        receptors: :class:`PointReceptors` (ppm or kg/m3, heights in ``[0, h]``) or
            :class:`ColumnReceptors`.
        met: the met (as for :func:`~plumax_transport.run_particles`, plus
            ``temperature`` and ``pressure`` for the units), concrete.
        x, y: flux-cell **edges**, m, ``(nx+1,)`` and ``(ny+1,)``, strictly ascending
            (any spacing; evenly spaced edges are located arithmetically).
        time: receptor times, s (same clock as ``met.time``), scalar or ``(n,)``.
        duration: length of the backward run, s (a whole number of ``dt``).
        dt: particle time step, s (choose it with :func:`~plumax_transport.time_step`).
        key: PRNG key; receptor ``r`` uses ``fold_in(key, r)``.
        n_particles: particles per receptor.
        turbulence: the turbulence model (default Hanna 1982).
        time_windows: emission-window edges, s (same clock), ``(n_windows+1,)`` strictly
            ascending, or None for one window over the whole run. A step belongs to the
            window holding its midpoint, taken relative to its receptor's time.
        surface_layer: fraction ``f`` in ``(0, 1]`` of the local boundary-layer height
            counted as in contact with the surface (STILT: 0.5).
        batch_size: receptors per batch (memory ``batch_size x n_windows ny nx``).
        reference_height: height of the wind used for ``u*``, m.

    Returns:
        the :class:`Footprint`, in the receptors' units per (kg m-2 s-1).

    Raises:
        ValueError: naming the argument: wrong receptor type, a receptor outside the
            met's horizontal domain or (points) above ``met.pblh``, non-ascending edges
            or windows, a ``duration`` that is not a whole number of ``dt``, a run outside
            a time-varying met's time range, times the run's dtype cannot resolve to
            ``dt / 100`` (``time`` for a time-varying met, ``time_windows`` over
            ``duration``; module docstring), ``surface_layer`` outside ``(0, 1]``, bad
            counts, a traced ``met``, and the errors of the particle engine.
    """
    if not isinstance(receptors, PointReceptors | ColumnReceptors):
        raise ValueError(
            f"`receptors` must be PointReceptors or ColumnReceptors, got {type(receptors).__name__}"
        )
    if not isinstance(met, MetField):
        raise ValueError(f"`met` must be a MetField, got {type(met).__name__}")
    if not is_concrete(met):
        raise ValueError("`met` must be concrete: backward_footprints runs eagerly (not in jit)")
    if not isinstance(turbulence, AbstractTurbulence):
        raise ValueError(
            f"`turbulence` must be an AbstractTurbulence, got {type(turbulence).__name__}"
        )
    n = int(receptors.x.shape[0])
    n_particles = _int("n_particles", n_particles)
    batch_size = _int("batch_size", batch_size)
    duration = _positive("duration", duration, "s")
    dt = _positive("dt", dt, "s")
    n_steps = int(round(duration / dt))
    if n_steps < 1 or abs(n_steps * dt - duration) > 1e-6 * duration:
        raise ValueError(
            f"`duration` ({duration} s) must be a whole number (>= 1) of `dt` ({dt} s)"
        )
    sl = float(surface_layer) if isinstance(surface_layer, int | float) else math.nan
    if not 0.0 < sl <= 1.0:
        raise ValueError(f"`surface_layer` must be in (0, 1], got {surface_layer!r}")
    xe, x_uniform = _edges("x", x)
    ye, y_uniform = _edges("y", y)
    times = _finite_1d("time", time, n)
    origin = float(np.asarray(met.time, np.float64)[0])
    varying = varies_in_time(met, _MET_FIELDS)
    # a steady met is the same at every time: each receptor is its own origin (no epoch
    # time in the run); a time-varying met is sampled relative to its first time
    t_local = times - origin if varying else np.zeros(n)
    windows = None
    if time_windows is not None:
        windows = _finite_1d("time_windows", time_windows)
        if windows.shape[0] < 2:
            raise ValueError("`time_windows` must hold >= 2 edges (s)")
        check_coordinate("time_windows", windows)

    dtype = jnp.result_type(float)
    _check_times(varying, met, t_local, n_steps * dt, dt, windows is not None, dtype)
    met_local = eqx.tree_at(
        lambda m: m.time, met, jnp.asarray(np.asarray(met.time, np.float64) - origin, dtype)
    )
    pblh = MetSampler(met_local, ("pblh",), dtype=dtype)
    xr_, yr_ = np.asarray(receptors.x, np.float64), np.asarray(receptors.y, np.float64)
    inside = np.asarray(pblh.contains(jnp.asarray(xr_, dtype), jnp.asarray(yr_, dtype)))
    if not np.all(inside):
        raise ValueError(
            f"`receptors`: {int(np.sum(~inside))} receptor(s) lie outside the met's horizontal "
            f"domain (first at x = {xr_[~inside][0]} m, y = {yr_[~inside][0]} m)"
        )
    tl = jnp.asarray(t_local, dtype)
    (h_r,) = pblh.at_offset(tl, jnp.asarray(xr_, dtype), jnp.asarray(yr_, dtype))
    h_r = np.broadcast_to(np.asarray(h_r, np.float64), (n,))
    point = isinstance(receptors, PointReceptors)
    zr_ = np.asarray(receptors.z, np.float64) if point else np.zeros(n)
    above = np.asarray(zr_, dtype) > np.asarray(h_r, dtype)  # as initial_state compares
    if point and np.any(above):
        bad = int(np.argmax(above))
        raise ValueError(
            f"`receptors`: receptor {bad} at z = {zr_[bad]} m lies above the boundary layer "
            f"(met.pblh = {h_r[bad]} m there); particles start in [0, h]"
        )
    thermo = MetSampler(met_local, ("temperature", "pressure"), dtype=dtype)
    T, P = thermo.at_offset(tl, receptors.x.astype(dtype), receptors.y.astype(dtype), zr_)
    factor = np.asarray(unit_factor(receptors, T, P), np.float64) / n_particles

    nw = 1 if windows is None else windows.shape[0] - 1
    n_cells = nw * (ye.shape[0] - 1) * (xe.shape[0] - 1)
    keys = jax.vmap(lambda i: jr.fold_in(key, i))(jnp.arange(n, dtype=jnp.uint32))
    cells = (
        _CellIndex(jnp.asarray(xe, dtype), x_uniform),
        _CellIndex(jnp.asarray(ye, dtype), y_uniform),
    )
    # window edges relative to each receptor's time, in float64; edges beyond the run
    # are clipped (order kept) so that the float32 ones are resolved to dt / 100
    win = None
    if windows is not None:
        win = np.clip(windows[None, :] - times[:, None], -(n_steps + 1) * dt, dt)
    dt_, sl_ = jnp.asarray(dt, dtype), jnp.asarray(sl, dtype)
    counter = jnp.arange(n_particles, dtype=dtype)

    def one(xr, yr, zr, tr, key_r, win_r):
        k_init, k_run, k_z = jr.split(key_r, 3)
        if point:
            z = jnp.full((n_particles,), zr, dtype)
            weight = jnp.ones((n_particles,), dtype)
        else:
            (h,) = pblh.at_offset(tr, xr, yr)
            z = h * (counter + jr.uniform(k_z, (n_particles,), dtype)) / n_particles
            weight = h * receptors.kernel(z)
        state = initial_state(
            jnp.full((n_particles,), xr, dtype),
            jnp.full((n_particles,), yr, dtype),
            z,
            time=tr,
            met=met_local,
            turbulence=turbulence,
            key=k_init,
            reference_height=reference_height,
        )
        acc = _Residence(pblh, *cells, win_r, tr, weight, dt_, sl_)
        _, F = run_particles(
            state,
            met_local,
            turbulence,
            key=k_run,
            dt=dt,
            n_steps=n_steps,
            direction=-1,
            accumulate=acc,
            carry=jnp.zeros((n_cells,), dtype),
            reference_height=reference_height,
        )
        return F

    batched = jax.vmap(one)
    rows, cols, vals = [], [], []
    for start in range(0, n, batch_size):
        idx = np.minimum(np.arange(start, start + batch_size), n - 1)  # pad the last batch
        args = [jnp.asarray(a[idx], dtype) for a in (xr_, yr_, zr_, t_local)]
        win_b = None if win is None else jnp.asarray(win[idx], dtype)
        dense = np.asarray(batched(*args, keys[idx], win_b), np.float64)
        m = min(batch_size, n - start)
        dense = dense[:m] * factor[start : start + m, None]
        r, c = np.nonzero(dense)
        rows.append(r + start)
        cols.append(c)
        vals.append(dense[r, c])
    from jax.experimental import sparse as jsparse

    indices = np.stack([np.concatenate(rows), np.concatenate(cols)], axis=1).astype(np.int32)
    matrix = jsparse.BCOO(
        (jnp.asarray(np.concatenate(vals), dtype), jnp.asarray(indices)), shape=(n, n_cells)
    )
    return Footprint(
        matrix,
        jnp.asarray(xe, dtype),
        jnp.asarray(ye, dtype),
        times,
        windows,
        kind=receptors.kind,
        n_particles=n_particles,
        duration=n_steps * dt,
        dt=dt,
        surface_layer=sl,
    )
