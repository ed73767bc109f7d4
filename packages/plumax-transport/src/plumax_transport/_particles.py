r"""The Lagrangian particle engine (Tier II): Langevin turbulence in a MetField.

Each particle carries a position ``(x, y, z)`` (m, ``z`` above ground), a turbulent
velocity ``(u', v', w')`` (m/s) and an ``active`` flag; all particles share the time
``t``. One step of length ``dt`` (s), in the direction ``s = +1`` (forward in time) or
``-1`` (backward), is:

1. **Turbulent velocities** (Markov-1 Langevin). Vertically, for Gaussian turbulence
   that is inhomogeneous in ``z`` (Thomson 1987, *J. Fluid Mech.* 180, 529-556, its
   one-dimensional Gaussian case; Legg & Raupach 1982, *Boundary-Layer Meteorol.* 24, 3-13;
   Wilson, Legg & Thomson 1983, *Boundary-Layer Meteorol.* 27, 163-169):

   .. math::

      dw' = -\frac{w'}{\tau_w}dt + \frac12\Big(1 + \frac{w'^2}{\sigma_w^2}\Big)
            \frac{\partial \sigma_w^2}{\partial z}dt + \sqrt{\frac{2\sigma_w^2}{\tau_w}}\,dW,

   the second term being the drift correction that satisfies Thomson's well-mixed
   condition (``drift_correction=False`` drops it, which is *not* well mixed).
   Horizontally the turbulence is homogeneous: ``u'`` and ``v'`` are
   Ornstein-Uhlenbeck processes with ``(sigma_u, tau_u)`` and ``(sigma_v, tau_v)``.
   The linear part is integrated exactly over the step with the drift frozen, as
   FLEXPART does for long steps (Stohl et al. 2005, *Atmos. Chem. Phys.* 5, 2461,
   section 7):

   .. math::

      w'_{k+1} = r_w w'_k + (1 - r_w)\,\tau_w D_k + \sigma_w \sqrt{1 - r_w^2}\,\xi,
      \qquad r_w = e^{-\Delta t/\tau_w},

   with ``D_k`` the drift correction at step start and ``xi ~ N(0, 1)``; ``u'``, ``v'``
   likewise with ``D = 0``. This is exact for homogeneous turbulence (any ``dt``) and
   first order in ``dt`` otherwise. Safeguard: after the update ``|w'|`` is clipped to
   ``MAX_VELOCITY_RATIO`` (6) times the local ``sigma_w`` (``w' = 0`` where
   ``sigma_w = 0``), in the spirit of Yee & Wilson's (2007, *Boundary-Layer Meteorol.*
   122, 243-261) cure for rogue trajectories: with a step far above
   :func:`time_step`'s limit the ``w'^2`` term of the drift can otherwise run away. At
   the default step it acts on ~1e-8 of particle-steps (the Gaussian tail) and leaves
   the well-mixed profile unchanged (measured with 10^6 particles). The statistics
   (``sigma``, ``tau``, ``d sigma_w^2/dz``) come from an
   :class:`~plumax_transport.AbstractTurbulence` at the particle's height in the
   boundary layer of its column (below).

2. **Positions**, with the mean wind ``U = (U, V, W)`` by Heun's predictor-corrector
   (second order; the Petterssen (1940) iteration FLEXPART applies to the grid-scale
   wind) and the turbulent velocity held over the step:

   .. math::

      X^* = X_k + (s U(X_k, t_k) + u'_{k+1})\Delta t, \qquad
      X_{k+1} = X_k + \big(\tfrac{s}{2}[U(X_k, t_k) + U(X^*, t_{k+1})] + u'_{k+1}\big)\Delta t,

   ``t_{k+1} = t_k + s dt``. With no turbulence a particle follows the streamlines of a
   time- and space-varying wind to ``O(dt^2)``. **Backward in time** (``s = -1``) the
   mean wind is reversed (particles move upwind) and the turbulence model is unchanged:
   for Gaussian turbulence the time-reversed process obeys the same Langevin equation
   (its velocity pdf is symmetric), so the backward model stays well mixed (Thomson
   1987; Flesch, Wilson & Yee 1995, *J. Appl. Meteor.* 34, 1320-1332).

3. **Reflection** at the ground and at the local boundary-layer top ``h`` (taken at the
   new position and time): perfect reflection (Wilson & Flesch 1993, *J. Appl.
   Meteor.* 32, 1695-1707, show it keeps Gaussian turbulence well mixed), ``z -> -z``
   or ``z -> 2h - z`` with ``w' -> -w'``. Any number of crossings (a huge step) is
   folded at once, which equals repeated reflection: with ``m = z mod 2h``,
   ``z -> h - |m - h|`` and ``w'`` changes sign ``|floor(z/h)|`` times. After every
   step each active particle lies in ``[0, h]``. The mean vertical wind is not
   reflected.

4. **Domain.** A particle whose new position leaves the met's horizontal domain
   (:meth:`plumax_core.MetSampler.contains`; unbounded along an axis without a
   coordinate) becomes inactive: it stays where it left and stops moving. Mass that
   left the domain is the inactive fraction. With ``release_step`` a particle is held
   (neither moving nor leaving) until its release step.

**Boundary layer at a particle** (:func:`boundary_layer`), from the met at
``(t, y, x)`` (``pblh``, ``z0`` and ``1/L`` at the ground, the lowest level if they have
a ``z`` axis): ``h = met.pblh``; ``1/L`` from ``met.obukhov_length`` or, when only
``met.stability_class`` is given, the centre of the Pasquill class on Golder's (1972)
nomogram at the met's ``z0`` (:func:`~plumax_transport._stability.golder_inverse_obukhov`;
class D gives ``1/L = 0``, neutral); ``1/L`` (not ``L``, which passes through infinity)
is what is interpolated between met nodes (so a class that changes between two met
times changes ``1/L`` linearly, where :meth:`plumax_core.MetField.at` steps). ``u*``
from the wind speed at ``reference_height`` by Monin-Obukhov similarity and ``w*`` from
Deardorff's relation (Deardorff 1970, *J. Atmos. Sci.* 27, 1211-1213;
:func:`~plumax_transport._turbulence.friction_velocity`,
:func:`~plumax_transport._turbulence.convective_velocity`). A met without a ``z`` axis
has winds uniform in height (its wind is taken as the wind at ``reference_height``).

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
origin); a steady met is valid at any time and is not affected.

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
from jaxtyping import Array, ArrayLike, Bool, Float, PRNGKeyArray

from plumax_core import MetField, MetSampler
from plumax_core.validation import error_if

from ._stability import golder_inverse_obukhov
from ._turbulence import (
    AbstractTurbulence,
    TurbulenceProfile,
    convective_velocity,
    friction_velocity,
)

#: ``|w'|`` is clipped to this multiple of the local ``sigma_w`` after each update.
MAX_VELOCITY_RATIO = 6.0


class ParticleState(eqx.Module):
    """Particles at one time.

    Attributes:
        x, y, z: positions, m (``z`` above ground), shape ``(N,)``.
        up, vp, wp: turbulent velocities ``u', v', w'``, m/s, ``(N,)``.
        t: time, s (shared), shape ``()``.
        active: False once a particle has left the met's horizontal domain, ``(N,)``.
    """

    x: Float[Array, " N"]
    y: Float[Array, " N"]
    z: Float[Array, " N"]
    up: Float[Array, " N"]
    vp: Float[Array, " N"]
    wp: Float[Array, " N"]
    t: Float[Array, ""]
    active: Bool[Array, " N"]

    def __check_init__(self):
        shape = jnp.shape(self.x)
        if len(shape) != 1:
            raise ValueError(f"`x` must be 1-D (N,), got shape {shape}")
        for name in ("y", "z", "up", "vp", "wp", "active"):
            s = jnp.shape(getattr(self, name))
            if s != shape:
                raise ValueError(f"`{name}` has shape {s}; `x` has {shape}")
        if jnp.shape(self.t) != ():
            raise ValueError(f"`t` must be a scalar time (s), got shape {jnp.shape(self.t)}")

    @property
    def positions(self) -> Float[Array, "N 3"]:
        """``(x, y, z)`` stacked, m."""
        return jnp.stack([self.x, self.y, self.z], axis=-1)


# -- met at the particles --------------------------------------------------------------


def _concrete(*xs) -> bool:
    return not any(isinstance(a, jax.core.Tracer) for a in jax.tree_util.tree_leaves(xs))


def _guard(x, bad, msg: str):
    """Raise ``ValueError(msg)`` now if ``bad`` is concretely true, else check at run time."""
    if _concrete(bad):
        if bool(np.any(np.asarray(bad))):
            raise ValueError(msg)
        return x
    return error_if(x, jnp.any(bad), msg)


def _inverse_obukhov(met: MetField) -> Array:
    """``1/L`` (1/m) on the met's grid (module docstring); 0 = neutral."""
    if met.obukhov_length is not None:
        return 1.0 / met.obukhov_length
    if met.stability_class is not None:
        if _concrete(met.z0) and np.any((np.asarray(met.z0) < 1e-3) | (np.asarray(met.z0) > 1)):
            raise ValueError(
                "`met.z0` must be in [1e-3, 1] m to turn `met.stability_class` into an Obukhov "
                "length (Golder 1972); give `met.obukhov_length` instead"
            )
        centres = golder_inverse_obukhov(met.z0)  # (..., 6)
        sc = met.stability_class
        shape = jnp.broadcast_shapes(jnp.shape(sc), centres.shape[:-1])
        centres = jnp.broadcast_to(centres, (*shape, 6))
        sc = jnp.broadcast_to(sc, shape)
        return jnp.take_along_axis(centres, sc[..., None], axis=-1)[..., 0]
    raise ValueError(
        "`met` has neither `obukhov_length` nor `stability_class`: the Obukhov length is "
        "needed for the boundary-layer turbulence"
    )


class _MetAtParticles(eqx.Module):
    """The samplers a run needs, built once before the time loop."""

    surface: MetSampler  # pblh, z0, 1/L
    wind: MetSampler  # u, v[, w]
    has_w: bool = eqx.field(static=True)
    reference_height: float = eqx.field(static=True)

    def __init__(self, met: MetField, reference_height: float, dtype):
        if met.pblh is None:
            raise ValueError("`met.pblh` (boundary-layer height, m) is needed")
        _check_reference_height(met, reference_height)
        self.surface = MetSampler(met, ("pblh", "z0", _inverse_obukhov(met)), dtype=dtype)
        self.has_w = met.w is not None
        self.wind = MetSampler(met, ("u", "v", "w") if self.has_w else ("u", "v"), dtype=dtype)
        self.reference_height = float(reference_height)

    def boundary_layer(self, tau, x, y):
        h, z0, inv_L = self.surface.at_offset(tau, x, y, 0.0)
        U = self.wind.at_offset(tau, x, y, self.reference_height)
        speed = jnp.hypot(U[0], U[1])
        L = 1.0 / inv_L
        ustar = friction_velocity(speed, z0, L, self.reference_height)
        return h, ustar, convective_velocity(ustar, h, L), L

    def mean_wind(self, tau, x, y, z):
        U = self.wind.at_offset(tau, x, y, z)
        W = U[2] if self.has_w else jnp.zeros((), U[0].dtype)
        return U[0], U[1], W


@eqx.filter_jit
def _bl_at(fields: _MetAtParticles, tau, x, y):
    return fields.boundary_layer(tau, x, y)


@eqx.filter_jit
def _local_sigmas(fields: _MetAtParticles, turbulence, tau, x, y, z):
    h, ustar, wstar, L = fields.boundary_layer(tau, x, y)
    prof = turbulence(z, h, ustar, wstar, L)
    return h, prof.sigma_u, prof.sigma_v, prof.sigma_w


def _check_reference_height(met: MetField, reference_height: float) -> None:
    if not (isinstance(reference_height, int | float) and math.isfinite(reference_height)):
        raise ValueError(
            f"`reference_height` must be a finite number (m), got {reference_height!r}"
        )
    if reference_height <= 0:
        raise ValueError(f"`reference_height` must be > 0 m, got {reference_height!r}")
    if _concrete(met.z0) and np.any(np.asarray(met.z0) >= reference_height):
        raise ValueError(
            f"`reference_height` ({reference_height} m) must exceed the roughness length "
            f"`met.z0` (max {float(np.max(np.asarray(met.z0)))} m)"
        )


def _dtype():
    return jnp.result_type(float)


def boundary_layer(
    met: MetField, t, x, y, *, reference_height: float = 10.0
) -> tuple[Array, Array, Array, Array]:
    """``(h, u*, w*, L)`` at points ``(t, y, x)`` from the met (module docstring).

    Args:
        met: the met (``pblh``, ``z0``, ``obukhov_length`` or ``stability_class``,
            ``u``, ``v``).
        t: time, s; x, y: positions, m (broadcast together).
        reference_height: height of the wind used for ``u*``, m (> ``met.z0``).

    Returns:
        boundary-layer height ``h`` (m), friction velocity ``u*`` and convective
        velocity ``w*`` (m/s), Obukhov length ``L`` (m, ``inf`` neutral); each with the
        broadcast shape of the coordinates the met varies along (``()`` for uniform,
        steady met).

    Raises:
        ValueError: a missing field, ``reference_height <= met.z0``, or a time outside
            a time-varying met's range.
    """
    fields = _MetAtParticles(met, reference_height, _dtype())
    fields.surface.check_time(t, t, "t")
    fields.wind.check_time(t, t, "t")
    return _bl_at(fields, fields.surface.offset(t, _dtype()), x, y)


def mean_wind(met: MetField, t, x, y, z) -> tuple[Array, Array, Array]:
    """Mean wind ``(U, V, W)`` (m/s) at points ``(t, z, y, x)``; ``W = 0`` without
    ``met.w``. Raises ``ValueError`` for a time outside a time-varying met's range."""
    sampler = MetSampler(met, ("u", "v", "w") if met.w is not None else ("u", "v"))
    sampler.check_time(t, t, "t")
    U = sampler.at_offset(sampler.offset(t, _dtype()), x, y, z)
    W = U[2] if met.w is not None else jnp.zeros((), U[0].dtype)
    return U[0], U[1], W


# -- initial state -------------------------------------------------------------------


def _positions(x, y, z, dtype):
    arrs = []
    for name, a in (("x", x), ("y", y), ("z", z)):
        a = jnp.asarray(a, dtype=dtype)
        if a.ndim != 1:
            raise ValueError(
                f"`{name}` must be a 1-D array of particle positions (m), got shape {a.shape}"
            )
        arrs.append(a)
    if not arrs[0].shape == arrs[1].shape == arrs[2].shape:
        raise ValueError(
            f"`x`, `y`, `z` must have the same shape, got {arrs[0].shape}, {arrs[1].shape}, "
            f"{arrs[2].shape}"
        )
    return [
        _guard(a, ~jnp.isfinite(a), f"`{name}` must be finite")
        for name, a in zip(("x", "y", "z"), arrs, strict=True)
    ]


def initial_state(
    x: ArrayLike,
    y: ArrayLike,
    z: ArrayLike,
    *,
    time: float,
    met: MetField,
    turbulence: AbstractTurbulence,
    key: PRNGKeyArray,
    reference_height: float = 10.0,
) -> ParticleState:
    """Particles at ``(x, y, z)`` (m, each ``(N,)``) at ``time`` (s), with turbulent
    velocities drawn from the local Eulerian pdf ``N(0, sigma_i^2)`` of ``turbulence``.

    Raises:
        ValueError: mismatched or non-1-D positions, a ``z`` outside ``[0, h]`` (the
            local ``met.pblh``), a particle outside the met's horizontal domain, a
            ``time`` outside a time-varying met's range, or the errors of
            :func:`boundary_layer`. Traced (under jit) positions are checked at run
            time, except the domain: traced particles outside it start inactive.
    """
    _check_turbulence(turbulence)
    dtype = _dtype()
    x, y, z = _positions(x, y, z, dtype)
    fields = _MetAtParticles(met, reference_height, dtype)
    fields.surface.check_time(time, time, "time")
    fields.wind.check_time(time, time, "time")
    tau = fields.surface.offset(time, dtype)
    h, sigma_u, sigma_v, sigma_w = _local_sigmas(fields, turbulence, tau, x, y, z)
    z = _guard(z, (z < 0) | (z > h), "`z` must lie in [0, h] (h = met.pblh at the particle)")
    inside = fields.surface.contains(x, y)
    if _concrete(inside) and not bool(np.all(np.asarray(inside))):
        raise ValueError("`x`, `y`: some particles start outside the met's horizontal domain")
    xi = jr.normal(key, (3, x.shape[0]), dtype=dtype)
    return ParticleState(
        x,
        y,
        z,
        sigma_u * xi[0],
        sigma_v * xi[1],
        sigma_w * xi[2],
        jnp.asarray(time, dtype=dtype),
        jnp.broadcast_to(inside, x.shape),
    )


# -- one step --------------------------------------------------------------------------


def _fold(z, h):
    """Fold ``z`` into ``[0, h]`` by repeated perfect reflection; the velocity sign."""
    n = jnp.floor(z / h)
    m = z - 2.0 * h * jnp.floor(z / (2.0 * h))
    folded = jnp.clip(h - jnp.abs(m - h), 0.0, h)  # clip: rounding of m at 0 or 2h
    sign = jnp.where(jnp.mod(n, 2.0) == 0.0, 1.0, -1.0).astype(z.dtype)
    return folded, sign


def _langevin(v, sigma, tau, dt, xi, drift=None):
    """Exact OU update over ``dt`` with the drift frozen (module docstring)."""
    r = jnp.exp(-dt / tau)
    out = r * v + sigma * jnp.sqrt(1.0 - r * r) * xi
    if drift is not None:
        out = out + (1.0 - r) * tau * drift
    return out


def _step(
    fields: _MetAtParticles, turbulence, state, aux, xi, tau_k, t_next, dt, s, drift, released
):
    h, ustar, wstar, L, U0, V0, W0 = aux
    prof: TurbulenceProfile = turbulence(state.z, h, ustar, wstar, L)
    up = _langevin(state.up, prof.sigma_u, prof.tau_u, dt, xi[0])
    vp = _langevin(state.vp, prof.sigma_v, prof.tau_v, dt, xi[1])
    D = None
    if drift:
        sw2 = prof.sigma_w * prof.sigma_w
        ratio = jnp.where(sw2 > 0, state.wp * state.wp / jnp.where(sw2 > 0, sw2, 1.0), 0.0)
        D = 0.5 * (1.0 + ratio) * prof.dsigma_w2_dz
    wp = _langevin(state.wp, prof.sigma_w, prof.tau_w, dt, xi[2], D)
    cap = MAX_VELOCITY_RATIO * prof.sigma_w  # rogue-velocity safeguard (module docstring)
    wp = jnp.clip(wp, -cap, cap)
    # Heun predictor-corrector for the mean wind, turbulence held over the step
    xs = state.x + (s * U0 + up) * dt
    ys = state.y + (s * V0 + vp) * dt
    zs, _ = _fold(state.z + (s * W0 + wp) * dt, h)
    tau_next = tau_k + s * dt
    U1, V1, W1 = fields.mean_wind(tau_next, xs, ys, zs)
    x1 = state.x + (0.5 * s * (U0 + U1) + up) * dt
    y1 = state.y + (0.5 * s * (V0 + V1) + vp) * dt
    z1 = state.z + (0.5 * s * (W0 + W1) + wp) * dt
    moving = state.active if released is None else state.active & released
    active = state.active & (~moving | fields.surface.contains(x1, y1))
    x1 = jnp.where(moving, x1, state.x)
    y1 = jnp.where(moving, y1, state.y)
    h1, ustar1, wstar1, L1 = fields.boundary_layer(tau_next, x1, y1)
    z1, sign = _fold(z1, h1)
    z1 = jnp.where(moving, z1, state.z)
    wp = jnp.where(moving, sign * wp, state.wp)
    up = jnp.where(moving, up, state.up)
    vp = jnp.where(moving, vp, state.vp)
    Uk, Vk, Wk = fields.mean_wind(tau_next, x1, y1, z1)
    new = ParticleState(x1, y1, z1, up, vp, wp, t_next, active)
    return new, (h1, ustar1, wstar1, L1, Uk, Vk, Wk)


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
        st, aux = _step(fields, turbulence, st, aux, xi, tau_k, t_next, dt_, s, drift, released)
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


# -- public drivers --------------------------------------------------------------------


def _check_turbulence(turbulence) -> None:
    if not isinstance(turbulence, AbstractTurbulence):
        raise ValueError(
            f"`turbulence` must be an AbstractTurbulence, got {type(turbulence).__name__}"
        )


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
    """Advance particles ``n_steps`` steps of ``dt`` (module docstring) in one
    ``jax.lax.scan``.

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

    Returns:
        ``(state, carry)`` after the last step.

    Raises:
        ValueError: naming the argument: a negative or non-int ``n_steps``, ``dt <= 0``,
            ``direction`` not +-1, a run ``[t0, t0 + direction n_steps dt]`` outside a
            time-varying met's time range, ``state.z`` outside ``[0, h]`` at the start
            (checked at run time when traced), a ``release_step`` that is not ``(N,)``
            integers, or the errors of :func:`boundary_layer`.
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
    _check_turbulence(turbulence)
    if accumulate is not None and not callable(accumulate):
        raise ValueError("`accumulate` must be callable (carry, state, k) -> carry, or None")
    dtype = state.x.dtype
    fields = _MetAtParticles(met, reference_height, dtype)
    if _concrete(state.t):
        t0 = float(np.asarray(state.t))
        t1 = t0 + direction * n_steps * dt
        for sampler in (fields.surface, fields.wind):
            try:
                sampler.check_time(t0, t1, "state.t")
            except ValueError as err:
                raise ValueError(
                    f"the run from `state.t` = {t0} s over `n_steps` x `dt` = {n_steps} x "
                    f"{dt} s (direction {direction:+d}) ends at {t1} s: {err}"
                ) from None
        varying = fields.surface.time_varying or fields.wind.time_varying
        resolution = float(np.spacing(np.asarray(max(abs(t0), abs(t1)), dtype=dtype)))
        if varying and resolution > 0.01 * dt:
            raise ValueError(
                f"`state.t` = {t0} s cannot be stepped by `dt` = {dt} s in {np.dtype(dtype)} "
                f"(resolution {resolution:g} s there) while the met varies in time: enable "
                "jax x64 or give `met.time` and the particle time relative to a local origin"
            )
    tau0 = fields.surface.offset(state.t, dtype)
    h, _, _, _ = _bl_at(fields, tau0, state.x, state.y)
    tol = 1e-5 * h
    bad = state.active & ((state.z < -tol) | (state.z > h + tol))
    z = _guard(state.z, bad, "`state.z` must lie in [0, h] (h = met.pblh at the particle)")
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


# -- time step -------------------------------------------------------------------------


@eqx.filter_jit
def _column_scales(fields: _MetAtParticles, turbulence, tau, X, Y, frac):
    bl = fields.boundary_layer(tau, X, Y)
    h, ustar, wstar, L = (jnp.broadcast_to(a, X.shape)[:, None] for a in bl)
    prof = turbulence(h * frac, h, ustar, wstar, L)
    sw = prof.sigma_w
    safe = jnp.where(sw > 0, sw, 1.0)
    grad = jnp.where(sw > 0, jnp.abs(prof.dsigma_w2_dz) / (2.0 * safe), 0.0)
    taus = jnp.stack([prof.tau_u, prof.tau_v, prof.tau_w])
    return jnp.min(taus), jnp.max(grad), jnp.max(sw), jnp.min(h)


def _turbulence_scales(met, fields: _MetAtParticles, turbulence, n_heights: int):
    """``(min tau, max |d sigma_w/dz|, max sigma_w, min h)`` over the met's nodes."""
    dtype = _dtype()
    varying = fields.surface.time_varying or fields.wind.time_varying
    times = np.asarray(met.time if varying else met.time[:1], np.float64)
    xs = np.asarray(met.x, np.float64) if met.x is not None else np.zeros(1)
    ys = np.asarray(met.y, np.float64) if met.y is not None else np.zeros(1)
    Y, X = (jnp.asarray(a.ravel(), dtype) for a in np.meshgrid(ys, xs, indexing="ij"))
    frac = np.concatenate([[0.0], np.geomspace(1e-4, 1.0, n_heights - 1)])
    frac = jnp.asarray(frac, dtype)[None, :]
    out = []
    for t in times:
        scales = _column_scales(fields, turbulence, fields.surface.offset(t, dtype), X, Y, frac)
        out.append(tuple(float(v) for v in scales))
    return (
        min(o[0] for o in out),
        max(o[1] for o in out),
        max(o[2] for o in out),
        min(o[3] for o in out),
    )


def time_step(
    met: MetField,
    turbulence: AbstractTurbulence,
    *,
    dt: float | None = None,
    dx: float | None = None,
    safety: float = 0.2,
    reference_height: float = 10.0,
    n_heights: int = 64,
) -> float:
    """Choose a time step (s), or check a given one, for :func:`run_particles`.

    The limit is ``safety x min(tau_min, 0.5 / max|d sigma_w/dz|, h_min / (2
    sigma_w,max), dx / |U|_max)``: the Lagrangian time scales, the vertical scale of
    ``sigma_w`` and the boundary-layer depth crossed in one step (FLEXPART's criteria,
    Stohl et al. 2005, section 7, with ``safety = 1/ctl``), and the advective (Courant)
    limit over a cell ``dx``. ``tau``, ``sigma_w`` and its gradient are evaluated at
    every met node (every time, ``y`` and ``x`` of the grid) at ``n_heights`` heights
    from 0 to ``h``; ``|U|_max`` is the largest mean wind speed on the grid (where a
    multilinear wind's speed is largest). ``dx`` defaults to the met's smallest
    horizontal spacing (no advective limit for a met without ``x``/``y``).

    Args:
        met, turbulence: as for :func:`run_particles` (concrete values).
        dt: a step to check, s; None to return the limit.
        dx: length of the cell the step must not cross, m (e.g. an output grid
            spacing).
        safety: fraction of the limiting scale, in ``(0, 1]`` (default 0.2, FLEXPART's
            ``ctl = 5``).
        reference_height: as for :func:`boundary_layer`.
        n_heights: heights per column at which the profile is evaluated.

    Returns:
        ``dt`` if given and within the limit, else the limit.

    Raises:
        ValueError: naming ``dt`` and the limit when ``dt`` exceeds it; a bad
            ``safety``, ``dx`` or ``dt``.
    """
    if not (isinstance(safety, int | float) and 0 < safety <= 1):
        raise ValueError(f"`safety` must be in (0, 1], got {safety!r}")
    if dx is not None and not (math.isfinite(float(dx)) and float(dx) > 0):
        raise ValueError(f"`dx` must be finite and > 0 m, got {dx!r}")
    if dt is not None and not (math.isfinite(float(dt)) and float(dt) > 0):
        raise ValueError(f"`dt` must be finite and > 0 s, got {dt!r}")
    if isinstance(n_heights, bool) or not isinstance(n_heights, int) or n_heights < 2:
        raise ValueError(f"`n_heights` must be an int >= 2, got {n_heights!r}")
    _check_turbulence(turbulence)
    if not _concrete(met):
        raise ValueError("time_step needs a concrete `met` (call it outside jax.jit)")
    dtype = _dtype()
    fields = _MetAtParticles(met, reference_height, dtype)
    tau_min, gmax, swmax, hmin = _turbulence_scales(met, fields, turbulence, n_heights)
    limits = {"tau_L": tau_min}
    if gmax > 0:
        limits["0.5/|d sigma_w/dz|"] = 0.5 / gmax
    if swmax > 0:
        limits["h/(2 sigma_w)"] = hmin / (2.0 * swmax)
    if dx is None:
        spacings = [
            float(np.min(np.diff(np.asarray(c, np.float64))))
            for c in (met.x, met.y)
            if c is not None and c.shape[0] > 1
        ]
        dx = min(spacings) if spacings else None
    if dx is not None:
        comps = [np.asarray(met.u), np.asarray(met.v)] + (
            [np.asarray(met.w)] if met.w is not None else []
        )
        speed = float(np.max(np.sqrt(sum(np.square(c) for c in np.broadcast_arrays(*comps)))))
        if speed > 0:
            limits["dx/|U|"] = float(dx) / speed
    name, scale = min(limits.items(), key=lambda kv: kv[1])
    limit = safety * scale
    if dt is None:
        return limit
    if float(dt) > limit * (1.0 + 1e-9):
        raise ValueError(
            f"`dt` = {float(dt):g} s exceeds the limit {limit:.4g} s = safety ({safety:g}) x "
            f"{name} ({scale:.4g} s); use a smaller `dt` (or time_step(..., dt=None))"
        )
    return float(dt)
