r"""The Lagrangian particle forward model (Tier II), a drop-in for the Gaussian plume.

:class:`LagrangianParticles` takes the plume's parameters (:data:`PLUME_PARAM_SPEC`:
``Q`` kg/s, ``x0``, ``y0`` m, ``H`` m) and geometries and returns the same
:class:`~plumax_core.Observations` (kind, dims, shape, units), but moves ``N`` particles
through the met with the Langevin engine of :mod:`plumax_transport._particles` (any
:class:`~plumax_transport.AbstractTurbulence`, winds varying in space and time) instead of
using the Briggs curves. The particles leave ``(x0, y0, H)`` with velocities drawn from
the local turbulence (:func:`~plumax_transport.initial_state`); the model holds its own
PRNG key, so a call is a deterministic function of the parameters (common random
numbers): jit, vmap, gradients, MAP and Laplace work through it.

**Steady met** (``obs_time=None``; nothing in the met varies in time): the steady
concentration is the source strength times the mean time the particles spend at the
receptor, the *residence-time* estimator (Flesch, Wilson & Yee 1995, *J. Appl.
Meteor.* 34, 1320-1332; FLEXPART's gridded concentrations, Stohl et al. 2005, *Atmos.
Chem. Phys.* 5, 2461-2474):

.. math::

   c(\mathbf r) = \frac{Q}{N}\sum_{p=1}^{N}\int_0^T K(\mathbf r - \mathbf X_p(t))\,dt
   \approx \frac{Q\,\Delta t}{N}\sum_{k=0}^{n}{}'' \sum_p K(\mathbf r - \mathbf X_p(t_k)),

with ``t_k = k Δt``, ``n Δt = T`` and ``Σ''`` the trapezoidal rule (halves at ``k = 0``
and ``k = n``), ``K`` the geometry's kernel (:mod:`plumax_transport._kernels`: CIC on a
grid, a Gaussian with its ground image at points). It is accumulated inside the
particle loop (memory independent of ``n``); ``T`` must exceed the travel time to the
receptors, after which ``c`` no longer depends on ``T``.

**Time-varying met** (``obs_time`` given): the concentration at ``t_obs`` of a
continuous release over ``[t_obs - T, t_obs]``,

.. math::

   c(\mathbf r, t_{obs}) = Q\int_{t_{obs}-T}^{t_{obs}} E\,K(\mathbf r - \mathbf X(t_{obs}
   \mid t'))\,dt' \approx \frac{Q T}{N}\sum_{j=1}^{N} K(\mathbf r - \mathbf X_j(t_{obs})),

a *snapshot*: particle ``j`` is released at ``t'_j = t_{obs} - T + (j - 1/2) T/N``
rounded to the nearest step (held at the source until then, ``release_step``; released
particles start with the velocity drawn at ``t_{obs} - T``, which relaxes within the
Lagrangian time), each carrying ``Q T/N``; rounding gives the release slots ``0`` and
``n`` half the weight of the others, the trapezoidal rule in the particle age. In a
steady met the law of ``X`` at age ``a`` does not depend on the release time, so the
snapshot's mean is ``Q ∫_0^T E K(r - X(a)) da``, the residence-time estimator's mean on the
same quadrature: the two agree within Monte Carlo error (tested); the residence-time
estimator uses every step and is the less noisy. ``obs_time`` may be given for a steady
met too; a met that varies in time requires it.

**Duration and step** are chosen eagerly from a concrete met when not given (both
must be given when the met is traced): :mod:`plumax_transport._lagrangian_plan`.

**Units**: the kernel sums give kg/m³ (points) or kg/m² (columns), turned into the
geometry's units by the geometry's own ``finish`` with the air temperature and pressure
(the met's value, or, when they vary, sampled at each receptor, ground level for a
grid, at ``obs_time`` or the met's first time), as the plume does.

**Gradients** are pathwise (the derivative of this realisation, common random
numbers): exact for the Gaussian kernel, and for CIC the derivative of a piecewise
linear function (kinks where a particle crosses a cell centre). Reverse mode goes
through the engine's ``lax.scan`` and keeps its residuals, so its memory grows like
``N n`` (unlike the forward run); measured on 2 CPU cores: 2000 particles, 600 steps,
a 100 x 100 grid take 0.04 s forward and 0.4 s for a gradient.

**Checks** (as :class:`~plumax_transport.GaussianPlume`): the parameters' support, core's
wind-speed rule on every met node, the release height inside ``[0, h]`` with ``h`` the
lowest ``met.pblh`` at the source over the run's release window (a snapshot's particles
wait at ``H`` until their release: ``pblh`` is linear in time between met times, so ``h``
is its minimum at the window's ends and at the met times inside it), the source inside
the met's horizontal domain, point receptors below the highest ``met.pblh``; eager
calls raise ``ValueError``, traced calls raise (``strict=True``) or return NaN
observations (``strict=False``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from plumax_core import (
    AbstractForwardModel,
    MetField,
    MetSampler,
    Observations,
    ParamSpec,
)
from plumax_core.validation import MIN_WIND_SPEED

from ._common import (
    Checks,
    check_min_wind_speed,
    check_support,
    check_wind,
    run_checked,
)
from ._geometry import AbstractGeometry, PointReceptors
from ._kernels import AbstractKernel, ResidenceTime, kernel_for
from ._lagrangian_plan import Plan, make_plan
from ._particles import initial_state, run_particles
from ._plume import PLUME_PARAM_SPEC
from ._turbulence import AbstractTurbulence, HannaTurbulence, check_turbulence


def _finite_positive(name: str, value, units: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a number ({units}), got {value!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"`{name}` must be finite and > 0 {units}, got {value!r}")
    return v


def _bandwidth(value) -> tuple[float, float, float]:
    vals = (value,) * 3 if isinstance(value, int | float) else tuple(value)
    if len(vals) != 3:
        raise ValueError(f"`bandwidth` must be one length or three (h_x, h_y, h_z), m: {value!r}")
    return tuple(_finite_positive("bandwidth", v, "m") for v in vals)  # type: ignore[return-value]


class LagrangianParticles(AbstractForwardModel):
    """Tier II: a Lagrangian particle model with the Gaussian plume's interface.

    Params (``param_spec`` = :data:`PLUME_PARAM_SPEC`): ``Q`` emission rate kg/s,
    ``x0``, ``y0`` source position m, ``H`` release height m (in ``[0, met.pblh]``).

    Met: ``u, v`` (m/s; ``w`` optional), ``pblh`` (m), ``obukhov_length`` or
    ``stability_class``, ``z0``, ``temperature`` and ``pressure`` (units), scalars or on a
    ``(time, z, y, x)`` grid (see :func:`~plumax_transport.run_particles`).

    Attributes:
        geometry: :class:`PointReceptors`, :class:`ColumnImage` or :class:`ColumnAverage`
            (a grid needs at least 2 centres per axis).
        key: the PRNG key of the realisation (initial velocities and the run).
        turbulence: the turbulence model (default :class:`HannaTurbulence`).
        n_particles: number of particles ``N`` (Monte Carlo error ``∝ N^-1/2``).
        dt: time step, s, or None (automatic; :mod:`plumax_transport._lagrangian_plan`).
        duration: travel time ``T`` (steady) or release window (snapshot), s, or None
            (automatic; :mod:`plumax_transport._lagrangian_plan`).
        obs_time: observation time, s UTC: the snapshot estimator of a release over
            ``[obs_time - T, obs_time]``; None: the steady residence-time estimator.
        bandwidth: ``(h_x, h_y, h_z)`` of the point-receptor kernel, m (one value for
            all three); unused by the grid geometries. Default ``(10, 10, 5)`` m: a
            relative bias of about ``-(h_y²/σ_y² + h_z²/σ_z²)/2`` (below 5 % for plumes
            wider than ``σ_y = 60``, ``σ_z = 30`` m, i.e. a few hundred m downwind);
            see :mod:`plumax_transport._kernels` for the choice.
        reference_height: height of the met wind used for ``u*``, m.
        min_wind_speed: floor of core's wind-speed rule, m/s (as the plume).
        strict: traced calls raise on invalid input (True) or give NaN (False).
        kernel: the geometry's kernel (:mod:`plumax_transport._kernels`), derived.
        extent: diagonal of the receptors' bounding box, m, derived (for ``duration``).
    """

    geometry: AbstractGeometry
    key: PRNGKeyArray
    turbulence: AbstractTurbulence
    kernel: AbstractKernel
    n_particles: int = eqx.field(static=True)
    dt: float | None = eqx.field(static=True)
    duration: float | None = eqx.field(static=True)
    obs_time: float | None = eqx.field(static=True)
    bandwidth: tuple[float, float, float] = eqx.field(static=True)
    reference_height: float = eqx.field(static=True)
    min_wind_speed: float = eqx.field(static=True)
    strict: bool = eqx.field(static=True)
    extent: float = eqx.field(static=True)

    def __init__(
        self,
        geometry: AbstractGeometry,
        *,
        key: PRNGKeyArray,
        turbulence: AbstractTurbulence | None = None,
        n_particles: int = 1000,
        dt: float | None = None,
        duration: float | None = None,
        obs_time: float | None = None,
        bandwidth: float | Sequence[float] = (10.0, 10.0, 5.0),
        reference_height: float = 10.0,
        min_wind_speed: float = MIN_WIND_SPEED,
        strict: bool = True,
    ):
        self.bandwidth = _bandwidth(bandwidth)
        self.kernel = kernel_for(geometry, self.bandwidth)
        self.geometry = geometry
        X, Y = (np.asarray(c, np.float64) for c in geometry.horizontal())
        self.extent = math.hypot(float(X.max() - X.min()), float(Y.max() - Y.min()))
        if not isinstance(key, jax.Array):
            raise ValueError(f"`key` must be a jax PRNG key, got {type(key).__name__}")
        self.key = key
        turbulence = HannaTurbulence() if turbulence is None else turbulence
        check_turbulence(turbulence)
        self.turbulence = turbulence
        if (
            isinstance(n_particles, bool)
            or not isinstance(n_particles, int | np.integer)
            or n_particles < 1
        ):
            raise ValueError(f"`n_particles` must be an int >= 1, got {n_particles!r}")
        self.n_particles = int(n_particles)
        self.dt = None if dt is None else _finite_positive("dt", dt, "s")
        self.duration = None if duration is None else _finite_positive("duration", duration, "s")
        if obs_time is not None and not math.isfinite(float(obs_time)):
            raise ValueError(f"`obs_time` must be a finite time (s) or None, got {obs_time!r}")
        self.obs_time = None if obs_time is None else float(obs_time)
        self.reference_height = _finite_positive("reference_height", reference_height, "m")
        self.min_wind_speed = check_min_wind_speed(min_wind_speed)
        self.strict = bool(strict)

    @property
    def param_spec(self) -> ParamSpec:
        return PLUME_PARAM_SPEC

    def __call__(self, params: Mapping[str, Array], met: MetField) -> Observations:
        """Simulate the geometry's observations (module docstring).

        The check policy of :class:`GaussianPlume` (``_common.run_checked``, which counts
        the model's key among the inputs that make a call traced under
        ``eqx.filter_jit``/``filter_vmap`` over models).
        """
        return run_checked(_core, self, params, met)


# -- the plan: times, step and duration, chosen eagerly ---------------------------------


def _plan(model: LagrangianParticles, met: MetField) -> Plan:
    """The model's plan for ``met`` (:func:`~plumax_transport._lagrangian_plan.make_plan`)."""
    return make_plan(
        met,
        dt=model.dt,
        duration=model.duration,
        obs_time=model.obs_time,
        turbulence=model.turbulence,
        reference_height=model.reference_height,
        extent=model.extent,
        min_wind_speed=model.min_wind_speed,
        length_scale=model.kernel.length_scale,
    )


# -- the simulation --------------------------------------------------------------------

_MSG_HEIGHT = "release height `H` exceeds `met.pblh` at the source (its minimum over the release)"
_MSG_DOMAIN = "the source (`x0`, `y0`) lies outside the met's horizontal domain"
_MSG_LID = "a receptor lies above `met.pblh` (the lid)"


def _air(met: MetField, geometry: AbstractGeometry, t) -> tuple[Array, Array]:
    """Air temperature (K) and pressure (Pa) at the receptors (module docstring)."""
    if jnp.size(met.temperature) == 1 and jnp.size(met.pressure) == 1:
        return jnp.reshape(met.temperature, ()), jnp.reshape(met.pressure, ())
    sampler = MetSampler(met, ("temperature", "pressure"))
    if isinstance(geometry, PointReceptors):
        x, y, z = geometry.x, geometry.y, geometry.z
    else:
        x, y = geometry.horizontal()
        z = jnp.zeros(())
    return sampler.at_offset(sampler.offset(t), x, y, z)


@eqx.filter_jit
def _source_pblh(plan: Plan, x0: Array, y0: Array) -> Array:
    """The lowest ``met.pblh`` (m) at the source over ``[plan.t0, plan.t_end]``: at the
    window's ends and at the met times inside it (``pblh`` is linear in time between
    them, so this is its minimum over the window; module docstring)."""
    met = plan.met
    sampler = MetSampler(met, ("pblh",))
    ends = jnp.stack([jnp.asarray(plan.t0), jnp.asarray(plan.t_end)]).astype(met.time.dtype)
    if sampler.time_varying:
        times = jnp.concatenate([ends, met.time])
        inside = (met.time > ends[0]) & (met.time < ends[1])
        use = jnp.concatenate([jnp.ones((2,), bool), inside])
    else:
        times, use = ends[:1], jnp.ones((1,), bool)
    ones = jnp.ones(times.shape, jnp.result_type(float))
    (h,) = sampler.at_offset(sampler.offset(times), x0 * ones, y0 * ones, 0.0)
    h = jnp.broadcast_to(h, times.shape)
    return jnp.min(jnp.where(use, h, jnp.inf))


def _source_checks(model: LagrangianParticles, plan: Plan, x0, y0, H):
    """``(lowest h at the source over the release window, [(bad, message), ...])`` for
    the release point and the receptors."""
    met = plan.met
    h = _source_pblh(plan, jnp.asarray(x0), jnp.asarray(y0))
    bad = [(H > h, _MSG_HEIGHT), (~MetSampler(met, ("pblh",)).contains(x0, y0), _MSG_DOMAIN)]
    if isinstance(model.geometry, PointReceptors):
        bad.append((model.geometry.max_height > jnp.max(met.pblh), _MSG_LID))
    return h, bad


def _core(model: LagrangianParticles, p, met: MetField, inside: bool):
    """The plan (eager), the source checks (eager when concrete), then the jitted run."""
    with jax.ensure_compile_time_eval():  # a concrete met is planned now, even under jit
        plan = _plan(model, met)
        if not inside:  # raise before running
            _, bad = _source_checks(model, plan, p["x0"], p["y0"], p["H"])
            for flag, msg in bad:
                if bool(np.any(np.asarray(flag))):
                    raise ValueError(msg)
    return _simulate(model, plan, p, inside)


@eqx.filter_jit
def _simulate(model: LagrangianParticles, plan: Plan, p, inside: bool):
    check = Checks(inside, strict=model.strict)
    p = check_support(model.param_spec, p, check)
    met = plan.met
    dtype = jnp.result_type(float)
    Q, x0, y0, H = (jnp.asarray(p[k], dtype) for k in ("Q", "x0", "y0", "H"))
    Q = check_wind(check, Q, met.wind_speed, model.min_wind_speed)
    h_src, bad = _source_checks(model, plan, x0, y0, H)
    for flag, msg in bad:
        Q = check(Q, flag, msg)
    # inside [0, h] at every release even where a traced check only flags it (NaN out,
    # strict=False)
    z = jnp.clip(H, 0.0, jnp.asarray(h_src, dtype) * (1.0 - 1e-6))
    n = model.n_particles
    key_init, key_run = jr.split(model.key)
    ones = jnp.ones((n,), dtype)
    state = initial_state(
        x0 * ones,
        y0 * ones,
        z * ones,
        time=plan.t0,
        met=met,
        turbulence=model.turbulence,
        key=key_init,
        reference_height=model.reference_height,
    )
    kernel = model.kernel
    dt = jnp.asarray(plan.dt, dtype)
    run = dict(
        key=key_run, dt=plan.dt, n_steps=plan.n_steps, reference_height=model.reference_height
    )
    if plan.snapshot:
        slots = np.round((np.arange(n) + 0.5) / n * plan.n_steps).astype(np.int32)
        final, _ = run_particles(
            state, met, model.turbulence, **run, release_step=jnp.asarray(slots)
        )
        field = kernel.deposit(
            kernel.zeros(dtype), final.x, final.y, final.z, jnp.where(final.active, 1.0, 0.0)
        )
        scale = Q * (plan.n_steps * dt) / n
    else:
        start = kernel.deposit(
            kernel.zeros(dtype), state.x, state.y, state.z, jnp.where(state.active, 0.5 * dt, 0.0)
        )
        _, field = run_particles(
            state,
            met,
            model.turbulence,
            **run,
            accumulate=ResidenceTime(kernel, dt, plan.n_steps),
            carry=start,
        )
        scale = Q / n
    field = kernel.density(field) * scale
    T_air, P_air = _air(met, model.geometry, plan.t_end)
    return model.geometry.finish(field, T_air.astype(dtype), P_air.astype(dtype)), check.flags
