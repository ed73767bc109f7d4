r"""What one run of :class:`~plumax_transport.EulerianFV` does: its times, met intervals
and substeps, chosen eagerly (:func:`make_plan`).

**Times.** The run covers ``[start, start + duration]`` in ``K = n_steps`` equal model
steps ``Δt = duration/K``; step ``k`` ends at the observation time
``t_{k+1} = start + (k + 1) Δt``. ``start`` defaults to the met's first time (for a
steady met, whose one time does not matter, too). Times are counted from the met's
first time (``origin``, float64 on the host; the sampler's offset), so that a float32
run resolves its steps even with UTC-epoch times; a traced met is shifted by the
``time_origin`` that :meth:`~plumax_transport.EulerianFV.planned` recorded from the
concrete met, so that it runs on the same offsets. A met that varies in time must cover
``[start, start + duration]`` (it is never extrapolated): ``ValueError`` eagerly, a
run-time check when its times are traced. ``t0`` and ``Δt`` are array leaves of the
:class:`Plan` (a new met with other winds, hence another automatic duration, reuses
the compiled run); the counts below are static.

**Met intervals.** A step is split into ``M`` equal met intervals, each advanced with
the winds, diffusivities and air density of its own midpoint (the midpoint rule in time,
held over the interval's substeps; a met steady over the run has ``M = 1``). For a met
varying in time, ``M = ceil(Δt / τ)`` with ``τ`` the smaller of (i) the shortest
spacing ``h`` of the met's times among the intervals the run overlaps, so that a met
interval lies within at most two of the met's (linear) time intervals, and (ii)
``sqrt(8 f Δx / a)``, ``a`` the largest rate of change of the horizontal wind between
consecutive met times there (m/s², over all nodes), ``Δx = min(dx, dy)`` and
``f = MAX_SHIFT`` (0.1): holding a wind that changes at the rate ``a`` at its midpoint
value misplaces the air entering the interval (the source's emissions) by at most
``a τ²/8`` (the midpoint rule's error for a linear wind), kept below a tenth of a cell.
A traced met's ``M`` is not known when the program is built: ``met_intervals`` fixes it
(:meth:`~plumax_transport.EulerianFV.planned` records it); a traced met steady in
time (its shapes say so) needs none.

**Duration.** ``duration=None`` (a concrete met only) is ``2 D / U_min``, with ``D`` the
diagonal of the grid's horizontal box and ``U_min`` the slowest horizontal wind speed
at the met's nodes, at least core's ``MIN_WIND_SPEED`` (and ``min_wind_speed``): every
parcel released inside the domain has left it, with the margin again for along-wind
spread, so a run of one step ends on the steady plume over the domain (the drop-in for
the steady :class:`~plumax_transport.GaussianPlume`; air slowed along its path, or a
calm, needs an explicit ``duration``).

**Substeps.** The engine's explicit part (advection plus horizontal diffusion) is stable
and keeps ``q >= 0`` for a substep up to
:func:`~plumax_transport._fv_solver.stable_time_step`; with a concrete met the plan
takes the smallest such limit over the ``K M`` interval midpoints (one midpoint for a
met steady over the run) and gives every met interval ``ceil(1.01 (Δt/M) / limit)``
substeps (the 1 % margin keeps a substep clear of a limit recomputed in float32 by the
run-time check), ``n_substeps`` per model step in all. With ``max_substeps`` given,
every met interval takes ``ceil(max_substeps / M)`` substeps (so that an eager call
and a traced one compute the same numbers): a concrete met needing more raises
``ValueError`` naming ``max_substeps`` and the number needed; a traced met (its winds
unknown when the program is built) must give ``max_substeps`` and is checked at run
time, every met interval, against the limit of that interval's winds (the model's
``strict`` setting: raise or NaN).
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from plumax_core import MetField
from plumax_core.validation import MIN_WIND_SPEED

from ._common import is_concrete
from ._eulerian_met import GridMet
from ._eulerian_observe import grid_box
from ._fv_diffusion import AbstractDiffusivity
from ._fv_grid import FVGrid
from ._fv_solver import n_substeps as _n_substeps, stable_time_step

#: Margin of the automatic duration over the crossing time of the domain's diagonal.
DURATION_FACTOR = 2.0
#: Largest displacement, in cells, of the midpoint rule in time within a met interval.
MAX_SHIFT = 0.1
#: Margin of the planned substeps over the stability limit (module docstring).
SUBSTEP_MARGIN = 1.01


class Plan(eqx.Module):
    """The times, met intervals and substeps of one run (module docstring).

    Attributes:
        t0: start of the run, s from ``origin`` (an array leaf).
        dt: model step ``Δt``, s (an array leaf).
        origin: the met's first time, s (a host float; for a traced met the
            ``time_origin`` it was shifted by, else 0: its times are then absolute).
        n_steps: number of model steps ``K``.
        n_intervals: met intervals ``M`` per model step.
        n_substeps: substeps per model step (``M`` times those of one met interval).
        run_time_check: True when ``n_substeps`` could not be checked against the
            stability limit eagerly (a traced met): each met interval checks it at run
            time.
        time_checked: True when the run's time range was checked eagerly.
    """

    t0: Array
    dt: Array
    origin: float = eqx.field(static=True)
    n_steps: int = eqx.field(static=True)
    n_intervals: int = eqx.field(static=True)
    n_substeps: int = eqx.field(static=True)
    run_time_check: bool = eqx.field(static=True)
    time_checked: bool = eqx.field(static=True)

    @property
    def interval_substeps(self) -> int:
        """Substeps of one met interval."""
        return self.n_substeps // self.n_intervals

    def midpoint(self, k, j, dtype) -> Array:
        """Time offset of the midpoint of met interval ``j`` of step ``k``, s."""
        frac = (jnp.asarray(j, dtype) + 0.5) / self.n_intervals
        return jnp.asarray(self.t0, dtype) + (jnp.asarray(k, dtype) + frac) * jnp.asarray(
            self.dt, dtype
        )

    def end(self, k, dtype) -> Array:
        """Time offset of step ``k``'s end (its observation time), s."""
        return jnp.asarray(self.t0, dtype) + (jnp.asarray(k, dtype) + 1.0) * jnp.asarray(
            self.dt, dtype
        )

    def times(self) -> np.ndarray:
        """The ``K`` observation times, s UTC (float64; a concrete plan)."""
        t0 = self.origin + float(np.asarray(self.t0, np.float64))
        return t0 + float(np.asarray(self.dt, np.float64)) * np.arange(1, self.n_steps + 1)


def step_fields(fields: GridMet, grid: FVGrid, diffusivity: AbstractDiffusivity, tau):
    """``(face winds, K_h, K_z)`` at time offset ``tau`` (s): the winds of
    :meth:`GridMet.winds` and the diffusivity at the columns' boundary-layer scales
    (a diffusivity without them, ``fields.surface`` None, gets neutral placeholders:
    ``u* = 0``, ``L = inf``, ``h`` = the grid's top, which it ignores)."""
    dtype = fields.u.tables[0].data.dtype
    winds = fields.winds(tau, grid)
    if fields.surface is not None:
        ustar, L, h = fields.boundary_layer(tau, grid)
    else:
        ustar = jnp.zeros((), dtype)
        L = jnp.asarray(jnp.inf, dtype)
        h = jnp.asarray(grid.z_edges[-1], dtype)
    kh = diffusivity.horizontal(jnp.asarray(grid.z, dtype), ustar, L, h)
    kz = diffusivity.vertical(jnp.asarray(grid.z_edges, dtype), ustar, L, h)
    return winds, kh, kz


@eqx.filter_jit
def _stable_limit(fields: GridMet, grid: FVGrid, diffusivity, taus, scheme: str):
    """The smallest stable substep (s) over the time offsets ``taus``."""

    def one(tau):
        winds, kh, _ = step_fields(fields, grid, diffusivity, tau)
        return stable_time_step(grid, winds, kh, scheme=scheme)

    return jnp.min(jax.vmap(one)(taus))


def auto_duration(met: MetField, grid: FVGrid, min_wind_speed: float) -> float:
    """``2 D / U_min`` (module docstring), s."""
    x_lo, x_hi, y_lo, y_hi, _ = grid_box(grid)
    diagonal = math.hypot(x_hi - x_lo, y_hi - y_lo)
    floor = max(min_wind_speed, MIN_WIND_SPEED)
    u_min = max(float(np.min(np.asarray(met.wind_speed))), floor)
    return DURATION_FACTOR * diagonal / u_min


def met_intervals(met: MetField, grid: FVGrid, t0: float, duration: float, dt: float) -> int:
    """``M`` for a concrete met varying in time over ``[t0, t0 + duration]`` (offsets
    from the met's first time, s; module docstring)."""
    times = np.asarray(met.time, np.float64)
    times = times - times[0]
    h = np.diff(times)
    overlap = (times[1:] > t0) & (times[:-1] < t0 + duration)
    if h.size == 0 or not overlap.any():
        return 1
    tau = float(h[overlap].min())
    shape = (times.size, *met.grid_shape[1:])
    rate = 0.0
    for name in ("u", "v"):
        c = np.broadcast_to(np.asarray(getattr(met, name), np.float64), shape)
        if c.ndim == 4 and c.shape[0] > 1:
            d = np.abs(np.diff(c, axis=0)) / h[:, None, None, None]
            rate = rate + np.max(d[overlap]) ** 2
    a = math.sqrt(rate)  # bounds |d(u, v)/dt| (each component's largest rate)
    if a > 0:
        tau = min(tau, math.sqrt(8.0 * MAX_SHIFT * min(grid.dx, grid.dy) / a))
    return max(1, math.ceil(dt / tau * (1.0 - 1e-9)))


def _traced_start(met: MetField, start, origin: float, dtype) -> Array:
    """``t0`` (s from ``origin``) for a met whose times are traced."""
    if start is None:
        return met.time[0].astype(dtype)
    if is_concrete(start):
        return jnp.asarray(float(np.asarray(start, np.float64)) - origin, dtype)
    return jnp.asarray(start, dtype) - jnp.asarray(origin, dtype)


def make_plan(
    met: MetField,
    fields: GridMet,
    grid: FVGrid,
    diffusivity: AbstractDiffusivity,
    *,
    duration: float | None,
    n_steps: int,
    start: float | None,
    max_substeps: int | None,
    met_intervals_given: int | None,
    time_origin: float | None,
    scheme: str,
    min_wind_speed: float,
) -> Plan:
    """The plan of one run (module docstring); call it eagerly (under
    ``jax.ensure_compile_time_eval``) so that a concrete met is planned now. A traced
    met must already be shifted by ``time_origin`` (when given).

    Raises:
        ValueError: a traced met without ``duration``, ``max_substeps`` or (varying in
            time) ``met_intervals``; a run outside the time range of a met that varies
            in time; ``max_substeps`` below the number of substeps the stability limit
            needs.
    """
    concrete = is_concrete(met)
    if duration is None:
        if not concrete:
            raise ValueError(
                "`duration` must be given when the met is traced (it is chosen from a "
                "concrete met's winds; `model.planned(met)` fixes it from the concrete met)"
            )
        duration = auto_duration(met, grid, min_wind_speed)
    dt = duration / n_steps
    dtype = fields.u.tables[0].data.dtype
    time_checked = False
    t0_host = 0.0
    if is_concrete(met.time):
        origin = float(np.asarray(met.time, np.float64)[0])
        t_start = origin if start is None else float(start)
        fields.check_time(t_start, t_start + duration, "[start, start + duration]")
        time_checked = True
        t0_host = t_start - origin
        t0 = np.asarray(t0_host, np.float64)
    else:
        origin = 0.0 if time_origin is None else float(time_origin)
        t0 = _traced_start(met, start, origin, dtype)
        time_checked = not fields.time_varying
    dt_leaf = np.asarray(dt, np.float64)
    if not fields.time_varying:
        M = 1
    elif met_intervals_given is not None:
        M = met_intervals_given
    elif concrete:
        M = met_intervals(met, grid, t0_host, duration, dt)
    else:
        raise ValueError(
            "`met_intervals` must be given when a met varying in time is traced: the "
            "number of met intervals per model step is planned from a concrete met's "
            "times and winds; `model.planned(met)` fixes it from the concrete met"
        )
    if not concrete:
        if max_substeps is None:
            raise ValueError(
                "`max_substeps` must be given when the met is traced: the number of "
                "substeps is planned from a concrete met's winds (it is then checked "
                "against the stability limit at run time); `model.planned(met)` fixes it "
                "from the concrete met, e.g. before a vardax-lite inversion"
            )
        per = -(-max_substeps // M)
        return Plan(t0, dt_leaf, origin, n_steps, M, per * M, True, time_checked)
    k = np.arange(n_steps) if fields.time_varying else np.zeros(1)
    j = np.arange(M)
    taus = t0_host + (k[:, None] + (j[None, :] + 0.5) / M).ravel() * dt
    limit = float(_stable_limit(fields, grid, diffusivity, jnp.asarray(taus, dtype), scheme))
    per = int(_n_substeps(SUBSTEP_MARGIN * dt / M, limit))
    if max_substeps is not None:
        given = -(-max_substeps // M)
        if given < per:
            raise ValueError(
                f"`max_substeps` = {max_substeps} is too small: the stability (CFL) limit "
                f"{limit:.4g} s needs {per * M} substeps per model step of {dt:.6g} s"
            )
        per = given
    return Plan(t0, dt_leaf, origin, n_steps, M, per * M, False, time_checked)
