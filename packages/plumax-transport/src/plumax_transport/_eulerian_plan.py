r"""What one run of :class:`~plumax_transport.EulerianFV` does: its times and substeps,
chosen eagerly (:func:`make_plan`).

**Times.** The run covers ``[start, start + duration]`` in ``K = n_steps`` equal model
steps ``Δt = duration/K``; step ``k`` ends at the observation time
``t_{k+1} = start + (k + 1) Δt``. Inside a step the winds and diffusivities are those
of the step's *midpoint* ``start + (k + 1/2) Δt`` (the midpoint rule in time; a met
steady over the step is used exactly), held constant over its substeps. ``start``
defaults to the met's first time (for a steady met, whose one time does not matter,
too). Times are counted from the met's first time (float64 on the host; the sampler's
offset), so that a float32 run resolves its steps even with UTC-epoch times. A met
that varies in time must cover ``[start, start + duration]`` (it is never
extrapolated): ``ValueError`` eagerly, a run-time check when its times are traced.

**Duration.** ``duration=None`` (a concrete met only) is ``2 D / U_min``, with ``D`` the
diagonal of the grid's horizontal box and ``U_min`` the slowest horizontal wind speed
at the met's nodes (at least ``min_wind_speed``): every parcel released inside the
domain has left it, with the margin again for along-wind spread, so a run of one step
ends on the steady plume over the domain (the drop-in for the steady
:class:`~plumax_transport.GaussianPlume`; air slowed along its path needs an explicit
``duration``).

**Substeps.** The engine's explicit part (advection plus horizontal diffusion) is stable
and keeps ``q >= 0`` for a substep up to
:func:`~plumax_transport._fv_solver.stable_time_step`; with a concrete met the plan
takes the smallest such limit over the ``K`` step midpoints (one midpoint for a met
steady over the run) and ``n_substeps = ceil(Δt / limit)``
(:func:`~plumax_transport._fv_solver.n_substeps`). With ``max_substeps`` given, every
step takes exactly ``max_substeps`` substeps (so that an eager call and a traced one
compute the same numbers): a concrete met needing more raises ``ValueError`` naming
``max_substeps`` and the number needed; a traced met (its winds unknown when the
program is built) must give ``max_substeps`` and is checked at run time, every step,
against the limit of that step's winds (the model's ``strict`` setting: raise or NaN).
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from plumax_core import MetField

from ._common import is_concrete
from ._eulerian_met import GridMet
from ._eulerian_observe import grid_box
from ._fv_diffusion import AbstractDiffusivity
from ._fv_grid import FVGrid
from ._fv_solver import n_substeps as _n_substeps, stable_time_step

#: Margin of the automatic duration over the crossing time of the domain's diagonal.
DURATION_FACTOR = 2.0


class Plan(eqx.Module):
    """The times and substeps of one run (module docstring).

    Attributes:
        t0: start of the run, s from the met's first time (``origin``).
        origin: the met's first time, s (a host float; 0 for a traced met, whose times
            are then absolute).
        dt: model step ``Δt``, s.
        n_steps: number of model steps ``K``.
        n_substeps: substeps per model step.
        run_time_check: True when ``n_substeps`` could not be checked against the
            stability limit eagerly (a traced met): each step checks it at run time.
        time_checked: True when the run's time range was checked eagerly.
    """

    t0: Array
    origin: float = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    n_steps: int = eqx.field(static=True)
    n_substeps: int = eqx.field(static=True)
    run_time_check: bool = eqx.field(static=True)
    time_checked: bool = eqx.field(static=True)

    def midpoint(self, k, dtype) -> Array:
        """Time offset of step ``k``'s midpoint, s."""
        return jnp.asarray(self.t0, dtype) + (jnp.asarray(k, dtype) + 0.5) * self.dt

    def end(self, k, dtype) -> Array:
        """Time offset of step ``k``'s end (its observation time), s."""
        return jnp.asarray(self.t0, dtype) + (jnp.asarray(k, dtype) + 1.0) * self.dt


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
    u_min = max(float(np.min(np.asarray(met.wind_speed))), min_wind_speed)
    return DURATION_FACTOR * diagonal / u_min


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
    scheme: str,
    min_wind_speed: float,
) -> Plan:
    """The plan of one run (module docstring); call it eagerly (under
    ``jax.ensure_compile_time_eval``) so that a concrete met is planned now.

    Raises:
        ValueError: a traced met without ``duration`` or ``max_substeps``; a run
            outside the time range of a met that varies in time; ``max_substeps``
            below the number of substeps the stability limit needs.
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
        t0 = jnp.asarray(t0_host, dtype)
    else:
        origin = 0.0
        t0 = met.time[0].astype(dtype) if start is None else jnp.asarray(start, dtype)
        time_checked = not fields.time_varying
    if not concrete:
        if max_substeps is None:
            raise ValueError(
                "`max_substeps` must be given when the met is traced: the number of "
                "substeps is planned from a concrete met's winds (it is then checked "
                "against the stability limit at run time); `model.planned(met)` fixes it "
                "from the concrete met, e.g. before a vardax-lite inversion"
            )
        return Plan(t0, origin, dt, n_steps, max_substeps, True, time_checked)
    k = np.arange(n_steps) if fields.time_varying else np.zeros(1)
    taus = jnp.asarray(t0_host + (k + 0.5) * dt, dtype)
    limit = float(_stable_limit(fields, grid, diffusivity, taus, scheme))
    needed = int(_n_substeps(dt, limit))
    if max_substeps is not None:
        if max_substeps < needed:
            raise ValueError(
                f"`max_substeps` = {max_substeps} is too small: the stability (CFL) limit "
                f"{limit:.4g} s needs {needed} substeps per model step of {dt:.6g} s"
            )
        needed = max_substeps
    return Plan(t0, origin, dt, n_steps, needed, False, time_checked)
