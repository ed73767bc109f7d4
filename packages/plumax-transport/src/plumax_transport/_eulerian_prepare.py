"""The prepared met and the checked run of :class:`~plumax_transport.EulerianFV`.

:func:`prepare` builds, once per call and eagerly for a concrete met, the met's
samplers (:class:`~plumax_transport._eulerian_met.GridMet`) and the run's
:class:`~plumax_transport._eulerian_plan.Plan`; a traced met is first shifted by the
model's ``time_origin`` (the concrete met's first time recorded by
:meth:`~plumax_transport.EulerianFV.planned`), so that its times are small offsets in
any float precision (the eager run's). :func:`planned_kwargs` is what ``planned``
fixes; :func:`core` is the jitted, checked run that
:func:`plumax_transport._common.run_checked` calls.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from plumax_core import AbstractTimeSteppingModel, MetField
from plumax_core.validation import MAX_WIND_SPEED, error_if

from ._common import Checks, check_wind, is_concrete
from ._eulerian_met import GridMet
from ._eulerian_plan import Plan, make_plan
from ._eulerian_source import point_outside
from ._fv_diffusion import ConstantK
from ._fv_solver import stable_time_step

if TYPE_CHECKING:
    from ._fv_grid import FVGrid

#: The model these helpers serve, :class:`~plumax_transport.EulerianFV` (typed by the core
#: contract it implements: this module must not import ``_eulerian``, which imports it).
EulerianFV = AbstractTimeSteppingModel

MSG_SOURCE = "the source (`x0`, `y0`, `H`) lies outside the grid"
MSG_DOMAIN = "a cell centre of the grid lies outside the met's horizontal domain"
MSG_TIME = "the run [start, start + duration] leaves the met's time range"
MSG_SUPPORT = "params contain NaN or a value outside the support"
MSG_CFL = (
    "`max_substeps` is too small for the met's winds: a substep exceeds the stability (CFL) limit"
)


class Prepared(eqx.Module):
    """The met of one run with its samplers and plan (built once, eagerly for a
    concrete met): what :meth:`EulerianFV.step` and :meth:`EulerianFV.observe` read.
    ``met`` is the met the run reads (a traced met shifted by ``time_origin``)."""

    met: MetField
    fields: GridMet
    plan: Plan


def centres_in_met(grid: FVGrid, fields: GridMet) -> Array:
    """True when every cell centre lies inside the met's horizontal domain."""
    x = jnp.asarray(grid.x)
    y = jnp.asarray(grid.y)
    return jnp.all(fields.u.contains(x[None, :], y[:, None]))


def prepare(model: EulerianFV, met: MetField | Prepared) -> Prepared:
    """The met's samplers and the run's plan (:meth:`EulerianFV.prepare`)."""
    if isinstance(met, Prepared):
        return met
    if not isinstance(met, MetField):
        raise ValueError(f"`met` must be a MetField, got {type(met).__name__}")
    with jax.ensure_compile_time_eval():
        if not is_concrete(met.time) and model.time_origin is not None:
            origin = jnp.asarray(model.time_origin, met.time.dtype)
            met = eqx.tree_at(lambda m: m.time, met, met.time - origin)
        fields = GridMet(
            met,
            needs_boundary_layer=not isinstance(model.diffusivity, ConstantK),
            reference_height=model.reference_height,
            density=model.air_density,
            dtype=jnp.result_type(float),
        )
        inside = centres_in_met(model.grid, fields)
        if is_concrete(inside) and not bool(inside):
            raise ValueError(
                "`grid`: its cell centres must lie inside the met's horizontal domain "
                "(`met.x`, `met.y`); the met is not extrapolated"
            )
        plan = make_plan(
            met,
            fields,
            model.grid,
            model.diffusivity,
            duration=model.duration,
            n_steps=model.n_steps,
            start=model.start,
            max_substeps=model.max_substeps,
            met_intervals_given=model.met_intervals,
            time_origin=model.time_origin,
            scheme=model.scheme,
            min_wind_speed=model.min_wind_speed,
        )
    return Prepared(met, fields, plan)


def planned_kwargs(model: EulerianFV, met: MetField) -> dict:
    """The settings :meth:`EulerianFV.planned` fixes from the concrete ``met``."""
    if not is_concrete(met):
        raise ValueError("`met` must be concrete to plan the run (call this outside jit)")
    plan = prepare(model, met).plan
    return dict(
        duration=float(np.asarray(plan.dt, np.float64)) * model.n_steps,
        start=plan.origin + float(np.asarray(plan.t0, np.float64)),
        max_substeps=plan.n_substeps,
        met_intervals=plan.n_intervals,
        time_origin=plan.origin,
    )


def check_cfl(model: EulerianFV, q: Array, prep: Prepared, winds, kh, substep) -> Array:
    """``q``, or the CFL error (``strict``) / NaN when ``substep`` (s) exceeds the
    stability limit of ``winds`` and ``kh`` (the run-time check of a traced met)."""
    limit = stable_time_step(model.grid, winds, kh, scheme=model.scheme)
    speed = prep.met.wind_speed
    # a wind outside core's rule is reported by that rule's own check
    valid = jnp.all(
        jnp.isfinite(speed) & (speed >= model.min_wind_speed) & (speed <= MAX_WIND_SPEED)
    )
    bad = (substep > limit * (1.0 + 1e-5)) & valid
    if model.strict:
        return error_if(q, bad, MSG_CFL)
    return jnp.where(bad, jnp.nan, q)


def core(model: EulerianFV, p, met: MetField, inside: bool):
    """Prepare the met (eager), check a concrete source now, run the jitted
    :func:`_run`, and give a series its ``"time"`` coordinate (s UTC) when the plan is
    concrete."""
    prep = prepare(model, met)
    if not inside and model.source == "point":
        with jax.ensure_compile_time_eval():
            out = point_outside(model.grid, p["x0"], p["y0"], p["H"])
        if bool(np.asarray(out)):
            raise ValueError(MSG_SOURCE)
    obs, flags = _run(model, p, prep, inside)
    if model.n_steps > 1 and is_concrete(prep.plan.t0, prep.plan.dt):
        obs = obs.replace(coords={**obs.coords, "time": prep.plan.times()})
    return obs, flags


@eqx.filter_jit
def _run(model: EulerianFV, p, prep: Prepared, inside: bool):
    check = Checks(inside, strict=model.strict)
    spec = model.param_spec
    first = spec.names[0]
    p = dict(p)
    if inside:
        p[first] = check(p[first], ~spec.in_support(p), MSG_SUPPORT)
    met = prep.met
    p[first] = check_wind(check, p[first], met.wind_speed, model.min_wind_speed)
    if model.source == "point":
        p[first] = check(p[first], point_outside(model.grid, p["x0"], p["y0"], p["H"]), MSG_SOURCE)
    p[first] = check(p[first], ~centres_in_met(model.grid, prep.fields), MSG_DOMAIN)
    plan = prep.plan
    if not plan.time_checked:
        dtype = met.time.dtype
        t0 = jnp.asarray(plan.t0, dtype)
        span = jnp.asarray(plan.dt, dtype) * plan.n_steps
        tol = 1e-6 * span  # the offsets' rounding
        outside = (t0 < met.time[0] - tol) | (t0 + span > met.time[-1] + tol)
        p[first] = check(p[first], outside, MSG_TIME)
    ys = model.simulate(p, None, prep)
    return model.observations(ys), check.flags
