r"""What one call of :class:`~plumax_transport.LagrangianParticles` runs: its times, step
and duration, chosen eagerly (:func:`make_plan`).

**Duration and step** (chosen from a concrete met; both must be given when the met is
traced):

* ``duration=None``: ``T = 1.5 D / U_min``, with ``D`` the diagonal of the bounding box of
  the receptors (grid-cell centres) and ``U_min`` the smallest horizontal wind speed at
  the met's nodes (at least ``min_wind_speed``): a source inside the box has its plume
  carried past every receptor, with half again for along-wind spread and slower air. A
  source outside the box, or air slowed along its path, needs an explicit ``duration``;
  a single point receptor (``D = 0``) too.
* ``dt=None``: the smaller of :func:`~plumax_transport.time_step` (the turbulence and
  met limits, FLEXPART's rules) and ``ℓ / (2 U_max)``, ``ℓ`` the kernel's horizontal
  scale (the smallest cell spacing, or ``min(h_x, h_y)``): a particle moves at most half
  a cell (or half a bandwidth) per step, so the step sum resolves the kernel and the
  release slots do not leave beads along the plume. A given ``dt`` is checked with
  :func:`~plumax_transport.time_step` (``ValueError`` naming ``dt`` when it exceeds the
  turbulence limit), not against ``ℓ``. Either way ``n = ceil(T / dt)`` steps of
  ``T / n`` are run.

**Times.** A concrete ``met.time`` is counted from its first time (float64 on the host),
so that the run's float32 time resolves the step; the run starts at ``t0`` and ends at
``t_end`` (s, in that local time): ``[obs_time - T, obs_time]`` for a snapshot, the met's
first time for the steady residence-time estimator. A snapshot's window must lie inside
the range of a met that varies in time.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from plumax_core import MetField

from ._common import is_concrete
from ._particle_met import max_wind_speed, varies_in_time
from ._time_step import time_step
from ._turbulence import AbstractTurbulence

#: Margin of the automatic duration over the crossing time of the geometry.
DURATION_FACTOR = 1.5


class Plan(eqx.Module):
    """What one call runs: the met with its time counted from its first time (when
    concrete), the run's start ``t0`` and end ``t_end`` (s, in that time), the step
    ``dt`` (s) and the number of steps, and whether it is a snapshot."""

    met: MetField
    t0: Array
    t_end: Array
    dt: float = eqx.field(static=True)
    n_steps: int = eqx.field(static=True)
    snapshot: bool = eqx.field(static=True)


def _auto_duration(met: MetField, extent: float, min_wind_speed: float) -> float:
    if extent <= 0:
        raise ValueError(
            "`duration` must be given: the geometry has no extent (a single point "
            "receptor), from which it is chosen"
        )
    u_min = max(float(np.min(np.asarray(met.wind_speed))), min_wind_speed)
    return DURATION_FACTOR * extent / u_min


def _auto_step(
    met: MetField,
    dt: float | None,
    turbulence: AbstractTurbulence,
    reference_height: float,
    length_scale: float,
) -> float:
    if dt is not None:
        return time_step(met, turbulence, dt=dt, reference_height=reference_height)
    limit = time_step(met, turbulence, reference_height=reference_height)
    u_max = max_wind_speed(met)
    if u_max > 0:
        limit = min(limit, 0.5 * length_scale / u_max)
    return limit


def make_plan(
    met: MetField,
    *,
    dt: float | None,
    duration: float | None,
    obs_time: float | None,
    turbulence: AbstractTurbulence,
    reference_height: float,
    extent: float,
    min_wind_speed: float,
    length_scale: float,
) -> Plan:
    """The plan of one call (module docstring).

    Args:
        met: the met (concrete, or traced with ``dt`` and ``duration`` given).
        dt, duration, obs_time: the model's settings (s; None: automatic / steady).
        turbulence, reference_height, min_wind_speed: the model's settings.
        extent: diagonal of the receptors' bounding box, m.
        length_scale: the kernel's horizontal scale, m.

    Raises:
        ValueError: a met that varies in time without ``obs_time``; a traced met
            without ``dt`` and ``duration``; a snapshot window outside the met's time
            range; no extent to choose ``duration`` from; ``dt`` above
            :func:`~plumax_transport.time_step`'s limit.
    """
    varying = varies_in_time(met)
    snapshot = obs_time is not None
    if varying and not snapshot:
        raise ValueError(
            "`obs_time` must be given: the met varies in time, so the model needs the "
            "observation time (the steady residence-time estimator needs a steady met)"
        )
    concrete = is_concrete(met)
    if not concrete and (dt is None or duration is None):
        raise ValueError(
            "`dt` and `duration` must be given when the met is traced (they are chosen "
            "from a concrete met)"
        )
    T = duration if duration is not None else _auto_duration(met, extent, min_wind_speed)
    if concrete:
        dt = _auto_step(met, dt, turbulence, reference_height, length_scale)
    n_steps = max(1, math.ceil(T / dt - 1e-9))
    origin = 0.0
    if is_concrete(met.time):
        times = np.asarray(met.time, np.float64)
        origin = float(times[0])
        local = jnp.asarray(times - origin, dtype=met.time.dtype)
        met = eqx.tree_at(lambda m: m.time, met, local)
    if snapshot:
        t_end = obs_time - origin
        t0 = t_end - T
        if varying and is_concrete(met.time):
            last = float(np.asarray(met.time)[-1])
            tol = 1e-9 * max(1.0, abs(origin), abs(last))
            if t0 < -tol or t_end > last + tol:
                raise ValueError(
                    f"the release window [`obs_time` - `duration`, `obs_time`] = "
                    f"[{t0 + origin}, {t_end + origin}] s must lie inside the met time range "
                    f"[{origin}, {last + origin}] s: give a shorter `duration` or another "
                    "`obs_time`"
                )
        t0_arr, t_end_arr = jnp.asarray(t0), jnp.asarray(t_end)
    else:
        t0_arr = met.time[0]
        t_end_arr = met.time[0]
    return Plan(met, t0_arr, t_end_arr, T / n_steps, n_steps, snapshot)
