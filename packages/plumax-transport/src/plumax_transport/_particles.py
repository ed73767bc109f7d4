r"""The Lagrangian particle engine (Tier II): Langevin turbulence in a MetField.

:func:`run_particles` advances :class:`~plumax_transport.ParticleState` s (from
:func:`~plumax_transport.initial_state`) through a :class:`~plumax_core.MetField` with an
:class:`~plumax_transport.AbstractTurbulence`, forward or backward in time, in one
``jax.lax.scan``. The engine is split by job:

* :mod:`plumax_transport._particle_state`: the state and the release
  (:class:`~plumax_transport.ParticleState`, :func:`~plumax_transport.initial_state`);
* :mod:`plumax_transport._particle_met`: the met at the particles, the boundary layer
  (``h``, ``u*``, ``w*``, ``L``) and the mean wind
  (:func:`~plumax_transport.boundary_layer`, :func:`~plumax_transport.mean_wind`);
* :mod:`plumax_transport._particle_step`: one step, with its maths (the Markov-1
  Langevin velocities with Thomson's (1987) drift correction, Heun's predictor-corrector
  for the positions, perfect reflection at the ground and at ``h``, the domain);
* :mod:`plumax_transport._time_step`: the step's limit
  (:func:`~plumax_transport.time_step`, FLEXPART's criteria);
* this module: the run (:func:`run_particles`, :func:`trajectories`).

Every public name is importable from here and from :mod:`plumax_transport`.

**Random numbers.** One explicit key; step ``k`` draws its ``3 N`` standard normals with
``fold_in(key, k)`` (pass a fresh key to each call of a chained run). The key's own
implementation is used: inside this loop the default threefry was measured faster on
CPU than ``"rbg"`` and ``"unsafe_rbg"`` (XLA's RngBitGenerator): 4.4e7 against 3.4e7
and 3.7e7 particle-steps/s (10^4 particles, HannaTurbulence, uniform met, 2 cores,
float32; the normals are more than half of a step), so no key is converted; pass
``jax.random.key(seed, impl="rbg")`` where that generator is faster (e.g. on GPU).

**Time.** The met is interpolated at the offset of the step's time from the met's first
time (:meth:`plumax_core.MetSampler.offset`, float64 on the host, then the run's dtype).
``state.t`` has the resolution of the state's dtype: an epoch time (``~1.7e9`` s) in
float32 resolves only 128 s, so with a met that varies in time :func:`run_particles`
refuses a ``dt`` below 100 x that resolution (enable x64 or count time from a local
origin): eagerly for a concrete ``state.t``, at run time
(:func:`plumax_core.validation.error_if`) for a traced one. A steady met is valid at any
time and is not affected.

The memory of :func:`run_particles` does not grow with ``n_steps``: one
``jax.lax.scan``, with an ``accumulate(carry, state, k)`` callback for whatever the
caller gathers (concentrations, footprints, ...).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from plumax_core import MetField
from plumax_core.validation import error_if

from ._common import guard, is_concrete
from ._particle_met import (
    MetAtParticles,
    boundary_layer as boundary_layer,
    boundary_layer_at,
    mean_wind as mean_wind,
)
from ._particle_state import ParticleState as ParticleState, initial_state as initial_state
from ._particle_step import MAX_VELOCITY_RATIO as MAX_VELOCITY_RATIO, step
from ._time_step import time_step as time_step
from ._turbulence import AbstractTurbulence, check_turbulence

_MSG_RESOLUTION = (
    "`state.t` cannot be stepped by `dt` in the state's dtype while the met varies in "
    "time (its resolution there exceeds dt/100): enable jax x64 or give `met.time` and the "
    "particle time relative to a local origin"
)


def _run_impl(
    state, fields, turbulence, key, carry, accumulate, tau0, dt, n_steps, s, drift, release
):
    dtype = state.x.dtype
    n = state.x.shape[0]
    h, ustar, wstar, L = fields.boundary_layer(tau0, state.x, state.y)
    U, V, W = fields.mean_wind(tau0, state.x, state.y, state.z)
    aux0 = (h, ustar, wstar, L, U, V, W)
    dt_ = jnp.asarray(dt, dtype)
    t0 = state.t

    def body(c, k):
        st, aux, user = c
        xi = jr.normal(jr.fold_in(key, k), (3, n), dtype=dtype)
        kf = k.astype(dtype)
        tau_k = tau0 + s * kf * dt_
        t_next = t0 + s * (kf + 1.0) * dt_
        released = None if release is None else k >= release
        st, aux = step(fields, turbulence, st, aux, xi, tau_k, t_next, dt_, s, drift, released)
        if accumulate is not None:
            user = accumulate(user, st, k)
        return (st, aux, user), None

    # rematerialise each step under reverse-mode AD: the gradient then stores only the
    # per-step carry, not every intermediate of the step (a 10^4-particle x 600-step
    # column-image gradient peaked at 6.8 GB resident without it)
    (state, _, carry), _ = jax.lax.scan(
        jax.checkpoint(body, prevent_cse=False),
        (state, aux0, carry),
        jnp.arange(n_steps, dtype=jnp.int32),
    )
    return state, carry


_run = eqx.filter_jit(_run_impl)


def _check_run_args(dt, n_steps, direction):
    if isinstance(n_steps, bool) or not isinstance(n_steps, int | np.integer):
        raise ValueError(f"`n_steps` must be an int >= 0, got {n_steps!r}")
    if n_steps < 0:
        raise ValueError(f"`n_steps` must be >= 0, got {n_steps}")
    try:
        dtf = float(dt)
    except (TypeError, ValueError, jax.errors.ConcretizationTypeError):
        raise ValueError(f"`dt` must be a concrete number of seconds, got {dt!r}") from None
    if not (math.isfinite(dtf) and dtf > 0):
        raise ValueError(f"`dt` must be finite and > 0 s, got {dt!r}")
    if isinstance(direction, bool) or direction not in (1, -1):
        raise ValueError(f"`direction` must be +1 (forward) or -1 (backward), got {direction!r}")
    return dtf, int(n_steps), int(direction)


def _check_run_time(
    state: ParticleState, fields: MetAtParticles, dt: float, n_steps: int, direction: int
) -> ParticleState:
    """The run's span against the met's time range and the time resolution of the
    state's dtype (module docstring): eagerly for a concrete ``state.t``; for a traced
    one only the resolution, at run time (the span is not checked)."""
    dtype = state.t.dtype
    if is_concrete(state.t):
        t0 = float(np.asarray(state.t))
        t1 = t0 + direction * n_steps * dt
        try:
            fields.check_time(t0, t1, "state.t")
        except ValueError as err:
            raise ValueError(
                f"the run from `state.t` = {t0} s over `n_steps` x `dt` = {n_steps} x "
                f"{dt} s (direction {direction:+d}) ends at {t1} s: {err}"
            ) from None
        resolution = float(np.spacing(np.asarray(max(abs(t0), abs(t1)), dtype=dtype)))
        if fields.time_varying and resolution > 0.01 * dt:
            raise ValueError(
                f"`state.t` = {t0} s cannot be stepped by `dt` = {dt} s in {np.dtype(dtype)} "
                f"(resolution {resolution:g} s there) while the met varies in time: enable "
                "jax x64 or give `met.time` and the particle time relative to a local origin"
            )
        return state
    if not fields.time_varying:
        return state
    t0 = state.t
    far = jnp.maximum(jnp.abs(t0), jnp.abs(t0 + jnp.asarray(direction * n_steps * dt, dtype)))
    resolution = jnp.nextafter(far, jnp.asarray(jnp.inf, dtype)) - far
    t = error_if(t0, resolution > 0.01 * dt, _MSG_RESOLUTION)
    return eqx.tree_at(lambda s: s.t, state, t)


def run_particles(
    state: ParticleState,
    met: MetField,
    turbulence: AbstractTurbulence,
    *,
    key: PRNGKeyArray,
    dt: float,
    n_steps: int,
    direction: int = 1,
    accumulate: Callable[[Any, ParticleState, Array], Any] | None = None,
    carry: Any = None,
    drift_correction: bool = True,
    reference_height: float = 10.0,
    release_step: ArrayLike | None = None,
) -> tuple[ParticleState, Any]:
    """Advance particles ``n_steps`` steps of ``dt`` (:mod:`plumax_transport._particle_step`)
    in one ``jax.lax.scan``.

    After each step ``k = 0 .. n_steps-1`` (the state then being at time
    ``t0 + direction (k+1) dt``) the callback runs as ``carry = accumulate(carry,
    state, k)`` (``k`` an int32 scalar); it must be traceable and keep the pytree
    structure, shapes and dtypes of ``carry``. Use ``state.active`` to mask particles
    that left the domain. Pass the same function object (or an ``eqx.Module``) from
    call to call: a new lambda each time recompiles. Memory does not depend on
    ``n_steps``.

    Args:
        state: particles at ``t0 = state.t`` (from :func:`initial_state`).
        met: the met (see :func:`boundary_layer`).
        turbulence: the turbulence model.
        key: PRNG key of the realisation.
        dt: step, s (> 0; choose or check it with :func:`time_step`).
        n_steps: number of steps (>= 0).
        direction: ``+1`` forward in time, ``-1`` backward (mean wind reversed).
        accumulate: the callback, or None.
        carry: initial value of the callback's carry.
        drift_correction: include Thomson's drift correction (True: well mixed).
        reference_height: height of the wind used for ``u*``, m.
        release_step: optional ``(N,)`` integers: particle ``j`` is held at its initial
            position and velocity until step ``release_step[j]`` and moves in steps
            ``k >= release_step[j]`` (a continuous release from one initial state, in
            either direction; the callback masks unreleased particles with ``k``).
            Heights are checked against ``h`` at ``t0`` only: a held particle above
            the local ``h`` of its release time is folded into ``[0, h]`` at its first
            step (keep it below the lowest ``h`` of the release window, as
            :class:`~plumax_transport.LagrangianParticles` checks).

    Returns:
        ``(state, carry)`` after the last step.

    Raises:
        ValueError: naming the argument: a negative or non-int ``n_steps``, ``dt <= 0``,
            ``direction`` not +-1, a run ``[t0, t0 + direction n_steps dt]`` outside a
            time-varying met's time range (checked when ``state.t`` is concrete), a
            ``state.t`` whose dtype cannot resolve ``dt`` while the met varies in time
            (checked eagerly when ``state.t`` is concrete, else at run time),
            ``state.z`` outside ``[0, h]`` at the start (checked at run time when
            traced), a ``release_step`` that is not ``(N,)`` integers, or the errors of
            :func:`boundary_layer`.
    """
    dt, n_steps, direction = _check_run_args(dt, n_steps, direction)
    if release_step is not None:
        release_step = jnp.asarray(release_step)
        if release_step.shape != state.x.shape or not jnp.issubdtype(
            release_step.dtype, jnp.integer
        ):
            raise ValueError(
                f"`release_step` must be {state.x.shape} integers (step of each particle's "
                f"release), got {release_step.dtype} {release_step.shape}"
            )
        release_step = release_step.astype(jnp.int32)
    check_turbulence(turbulence)
    if accumulate is not None and not callable(accumulate):
        raise ValueError("`accumulate` must be callable (carry, state, k) -> carry, or None")
    dtype = state.x.dtype
    fields = MetAtParticles(met, reference_height, dtype)
    state = _check_run_time(state, fields, dt, n_steps, direction)
    tau0 = fields.surface.offset(state.t, dtype)
    h, _, _, _ = boundary_layer_at(fields, tau0, state.x, state.y)
    tol = 1e-5 * h
    bad = state.active & ((state.z < -tol) | (state.z > h + tol))
    z = guard(state.z, bad, "`state.z` must lie in [0, h] (h = met.pblh at the particle)")
    state = eqx.tree_at(lambda s: s.z, state, z)
    return _run(
        state,
        fields,
        turbulence,
        key,
        carry,
        accumulate,
        tau0,
        jnp.asarray(dt, dtype),
        n_steps,
        jnp.asarray(direction, dtype),
        bool(drift_correction),
        release_step,
    )


def _record(buf, state, k):
    return buf.at[k + 1].set(state.positions)


def trajectories(
    state: ParticleState,
    met: MetField,
    turbulence: AbstractTurbulence,
    *,
    key: PRNGKeyArray,
    dt: float,
    n_steps: int,
    direction: int = 1,
    drift_correction: bool = True,
    reference_height: float = 10.0,
    release_step: ArrayLike | None = None,
) -> Float[Array, "n_steps+1 N 3"]:
    """Positions ``(x, y, z)`` (m) at every step, the start included: ``[k]`` is the
    position at ``t0 + direction k dt``. Same arguments and errors as
    :func:`run_particles` (for tests and plots: memory grows with ``n_steps``)."""
    dt_, n, _ = _check_run_args(dt, n_steps, direction)
    buf = jnp.zeros((n + 1, state.x.shape[0], 3), state.x.dtype).at[0].set(state.positions)
    _, buf = run_particles(
        state,
        met,
        turbulence,
        key=key,
        dt=dt_,
        n_steps=n,
        direction=direction,
        accumulate=_record,
        carry=buf,
        drift_correction=drift_correction,
        reference_height=reference_height,
        release_step=release_step,
    )
    return buf
