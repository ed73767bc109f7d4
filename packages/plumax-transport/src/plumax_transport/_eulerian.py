r"""The Eulerian finite-volume forward model (Tier III), a drop-in for the Gaussian plume.

:class:`EulerianFV` solves the tracer equation for the methane mass density
``q = ρ c`` (kg/m³, ``c`` the mass mixing ratio) on an :class:`~plumax_transport.FVGrid`,

.. math::

   \partial_t (\rho c) + \nabla\cdot(\rho\,\mathbf u\, c)
   = \nabla_h\cdot(K_h \nabla_h q) + \partial_z\!\left(\rho K_z\,\partial_z c\right) + S,

with the engine of :mod:`plumax_transport._fv_solver` (flux-form finite volumes:
advection by the chosen scheme and horizontal diffusion explicit, SSP-RK3 for the
high-order schemes, vertical diffusion implicit; mass-conserving and positive). It is
an :class:`~plumax_core.AbstractTimeSteppingModel`: ``K = n_steps`` model steps over
``[start, start + duration]``, each ending at an observation time
(:mod:`plumax_transport._eulerian_plan`: the times, the step's midpoint met, the
substeps); the state is ``q`` flattened in C order ``(nz, ny, nx)``.

* ``initial_state(params, met)``: zero, the fixed ``initial`` array, or the ``initial``
  parameter (kg/m³).
* ``step(x, k, met, params)``: ``advance`` over step ``k`` with the winds, ``K_h``, ``K_z``
  and air-density profile of the step's midpoint
  (:mod:`plumax_transport._eulerian_met`) and the source of
  :mod:`plumax_transport._eulerian_source` (a point source with the plume's parameters,
  or gridded surface fluxes per emission window).
* ``observe(x, k, met)``: the geometry's field (:mod:`plumax_transport._eulerian_observe`)
  converted by the geometry's own ``finish`` with the met's air temperature and
  pressure at the receptors (ground level for a grid) at the observation time.

``__call__`` runs :meth:`simulate` (so :class:`vardax_lite.StrongFourDVar` /
``WeakFourDVar``, which call ``simulate``, see the same numbers) and returns, for
``n_steps == 1``, exactly the :class:`~plumax_core.Observations` the
:class:`~plumax_transport.GaussianPlume` gives for the same geometry (values, dims,
coords, kind); for ``n_steps > 1`` the values gain a leading ``"time"`` axis, ``(K,
*geometry shape)`` (the times are :meth:`EulerianFV.observation_times`).

**Checks** (the policy of :func:`plumax_transport._common.run_checked`, as every tier):
eagerly ``ValueError``; traced, ``strict=True`` raises at run time
(:class:`plumax_core.InvalidInputError` under :func:`plumax_core.clean_errors`) and
``strict=False`` gives NaN observations. Checked: the parameters' support; core's
wind-speed rule on every met node; a point source inside the grid; the grid's cell
centres inside the met's horizontal domain (a met with ``x``/``y`` coordinates); the
run inside the time range of a met varying in time; with a traced met, each step's
substep against the stability limit (:mod:`plumax_transport._eulerian_plan`).

**Gradients and memory.** Reverse mode goes through :meth:`simulate`'s ``lax.scan``,
whose step is wrapped in ``jax.checkpoint`` (core's contract): the backward pass keeps
the ``K`` step states (``O(K n)``, ``n = nz ny nx``) and recomputes one step at a time,
whose substep loop then keeps its own residuals (``O(n_substeps n)``, for the one step
being differentiated). Measured (float64, the temporary memory of the compiled
gradient, ``jax.jit(jax.grad(loss)).lower(p).compile().memory_analysis()
.temp_size_in_bytes / 8``, a ``4 x 12 x 16`` grid, ``n = 768``, the limited scheme):
``5357 n`` values for ``K = 6`` with 48 substeps per step, ``20889 n`` with 192
substeps (about ``108 n`` per substep), and ``+18 n`` going from ``K = 6`` to ``K = 24``
(one state per step); tested (``@slow``) in
``tests/test_transport_eulerian.py::test_reverse_mode_memory_is_k_states_plus_one_steps_substeps``.
The upwind scheme is linear in the state, so its adjoint keeps no state residuals.

The dot-product test of the adjoint through the whole time loop holds to 1e-10
(float64) with the upwind and the limited scheme (tested).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from plumax_core import (
    AbstractTimeSteppingModel,
    MetField,
    Observations,
    ParamSpec,
)
from plumax_core.validation import MAX_WIND_SPEED, MIN_WIND_SPEED, error_if

from ._common import Checks, check_min_wind_speed, check_wind, is_concrete, run_checked
from ._eulerian_met import AIR_DENSITIES, GridMet
from ._eulerian_observe import check_geometry_in_grid, geometry_shape, sample
from ._eulerian_plan import Plan, make_plan, step_fields
from ._eulerian_source import (
    SOURCES,
    deposit_point,
    param_spec,
    point_outside,
    surface_flux,
    window_index,
)
from ._fv_advection import LIMITERS, SCHEMES
from ._fv_boundary import Boundaries
from ._fv_diffusion import AbstractDiffusivity, ConstantK, MoninObukhovK
from ._fv_grid import FVGrid
from ._fv_solver import advance, stable_time_step
from ._geometry import AbstractGeometry

_MSG_SOURCE = "the source (`x0`, `y0`, `H`) lies outside the grid"
_MSG_DOMAIN = "a cell centre of the grid lies outside the met's horizontal domain"
_MSG_TIME = "the run [start, start + duration] leaves the met's time range"
_MSG_SUPPORT = "params contain NaN or a value outside the support"
_MSG_CFL = (
    "`max_substeps` is too small for the met's winds: a substep exceeds the stability (CFL) limit"
)


class _Prepared(eqx.Module):
    """The met of one run with its samplers and plan (built once, eagerly for a
    concrete met): what :meth:`EulerianFV.step` and :meth:`EulerianFV.observe` read."""

    met: MetField
    fields: GridMet
    plan: Plan


def _positive_float(name: str, value, units: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a number ({units}), got {value!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"`{name}` must be finite and > 0 {units}, got {value!r}")
    return v


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"`{name}` must be an int >= 1, got {value!r}")
    return int(value)


class EulerianFV(AbstractTimeSteppingModel):
    """Tier III: an Eulerian finite-volume model with the Gaussian plume's interface.

    Params (``param_spec``): with ``source="point"`` exactly
    :data:`~plumax_transport.PLUME_PARAM_SPEC` (``Q`` kg/s, ``x0``, ``y0`` m, ``H`` m);
    with ``source="gridded"`` ``emission`` ``(n_windows, ny, nx)`` kg m⁻² s⁻¹; plus
    ``initial`` ``(nz, ny, nx)`` kg/m³ with ``initial="param"``
    (:mod:`plumax_transport._eulerian_source`).

    Met: ``u``, ``v`` (``w`` optional) m/s; ``pblh``, ``z0`` and ``obukhov_length`` or
    ``stability_class`` (for a diffusivity using the boundary layer, e.g. the default
    :class:`MoninObukhovK`; a :class:`ConstantK` reads none of them); ``temperature`` and
    ``pressure``; scalars or on a ``(time, z, y, x)`` grid.

    Attributes:
        geometry: :class:`PointReceptors`, :class:`ColumnImage` or :class:`ColumnAverage`,
            inside the grid.
        grid: the :class:`FVGrid`.
        n_steps: model steps ``K`` (observation times), static.
        duration: length of the run, s, or None (``2 D / U_min`` from a concrete met,
            :mod:`plumax_transport._eulerian_plan`).
        start: start of the run, s UTC, or None (the met's first time).
        source: ``"point"`` or ``"gridded"``.
        n_windows: emission windows of a gridded source (``1 <= n_windows <= n_steps``).
        log_emission: a gridded source's ``emission`` is positive and inferred in log
            space (``Param(log=True, lower=0)``: a lognormal prior; the model is then
            nonlinear in the control even with the linear upwind scheme).
        initial: ``"zero"``, ``"param"`` or ``"fixed"`` (from the ``initial`` argument:
            None, ``"param"``, or an ``(nz, ny, nx)`` array kept in ``initial_field``).
        initial_field: the fixed initial field, kg/m³, or None.
        diffusivity: the eddy diffusivity (default :class:`MoninObukhovK`).
        boundaries: the face kinds (default :class:`Boundaries`: open sides, closed
            bottom and top).
        scheme, limiter: the engine's advection scheme and limiter.
        max_substeps: substeps per model step when given (needed for a traced met), else
            planned from the met (:mod:`plumax_transport._eulerian_plan`).
        reference_height: height of the met wind used for ``u*``, m.
        min_wind_speed: floor of core's wind-speed rule, m/s.
        air_density: ``"hydrostatic"`` (the profile of
            :mod:`plumax_transport._eulerian_met`, so that vertical diffusion mixes the
            mixing ratio) or ``"uniform"`` (it mixes ``q`` itself, as constant-density
            K-theory does).
        strict: traced calls raise on invalid input (True) or give NaN (False).
    """

    geometry: AbstractGeometry
    grid: FVGrid
    diffusivity: AbstractDiffusivity
    boundaries: Boundaries
    initial_field: Float[Array, "nz ny nx"] | None
    n_steps: int = eqx.field(static=True)
    duration: float | None = eqx.field(static=True)
    start: float | None = eqx.field(static=True)
    source: str = eqx.field(static=True)
    n_windows: int = eqx.field(static=True)
    log_emission: bool = eqx.field(static=True)
    initial: str = eqx.field(static=True)
    scheme: str = eqx.field(static=True)
    limiter: str = eqx.field(static=True)
    max_substeps: int | None = eqx.field(static=True)
    reference_height: float = eqx.field(static=True)
    min_wind_speed: float = eqx.field(static=True)
    air_density: str = eqx.field(static=True)
    strict: bool = eqx.field(static=True)

    def __init__(
        self,
        geometry: AbstractGeometry,
        grid: FVGrid,
        *,
        duration: float | None = None,
        n_steps: int = 1,
        start: float | None = None,
        source: str = "point",
        n_windows: int = 1,
        log_emission: bool = False,
        initial=None,
        diffusivity: AbstractDiffusivity | None = None,
        boundaries: Boundaries | None = None,
        scheme: str = "limited",
        limiter: str = "van_leer",
        max_substeps: int | None = None,
        reference_height: float = 10.0,
        min_wind_speed: float = MIN_WIND_SPEED,
        air_density: str = "hydrostatic",
        strict: bool = True,
    ):
        if not isinstance(grid, FVGrid):
            raise ValueError(f"`grid` must be an FVGrid, got {type(grid).__name__}")
        self.grid = grid
        check_geometry_in_grid(geometry, grid)
        self.geometry = geometry
        self.n_steps = _positive_int("n_steps", n_steps)
        self.duration = None if duration is None else _positive_float("duration", duration, "s")
        if start is not None and not (
            isinstance(start, int | float | np.floating | np.integer) and math.isfinite(start)
        ):
            raise ValueError(f"`start` must be a finite time (s UTC) or None, got {start!r}")
        self.start = None if start is None else float(start)
        if source not in SOURCES:
            raise ValueError(f"`source` must be one of {SOURCES}, got {source!r}")
        self.source = source
        self.n_windows = _positive_int("n_windows", n_windows)
        if source == "point" and self.n_windows != 1:
            raise ValueError(
                f"`n_windows` must be 1 for a point source (its rate Q is constant), got "
                f"{n_windows!r}"
            )
        if not isinstance(log_emission, bool):
            raise ValueError(f"`log_emission` must be a bool, got {log_emission!r}")
        if log_emission and source != "gridded":
            raise ValueError(
                "`log_emission` needs source='gridded' (a point source's Q is "
                "already positive and log-scaled in PLUME_PARAM_SPEC)"
            )
        self.log_emission = log_emission
        if self.n_windows > self.n_steps:
            raise ValueError(
                f"`n_windows` must be <= `n_steps` ({self.n_steps}), got {n_windows!r}"
            )
        self.initial_field = None
        if initial is None:
            self.initial = "zero"
        elif isinstance(initial, str):
            if initial != "param":
                raise ValueError(
                    f"`initial` must be None, 'param' or an array of shape {grid.shape}, "
                    f"got {initial!r}"
                )
            self.initial = "param"
        else:
            arr = np.asarray(initial, dtype=float)
            if arr.shape != grid.shape:
                raise ValueError(
                    f"`initial` must have the grid's shape {grid.shape} (nz, ny, nx), got "
                    f"{arr.shape}"
                )
            if not np.all(np.isfinite(arr)):
                raise ValueError("`initial` must be finite (kg/m^3)")
            self.initial = "fixed"
            self.initial_field = jnp.asarray(arr)
        diffusivity = MoninObukhovK() if diffusivity is None else diffusivity
        if not isinstance(diffusivity, AbstractDiffusivity):
            raise ValueError(
                "`diffusivity` must be an AbstractDiffusivity (ConstantK, MoninObukhovK), "
                f"got {type(diffusivity).__name__}"
            )
        self.diffusivity = diffusivity
        boundaries = Boundaries() if boundaries is None else boundaries
        if not isinstance(boundaries, Boundaries):
            raise ValueError(f"`boundaries` must be a Boundaries, got {type(boundaries).__name__}")
        self.boundaries = boundaries
        if scheme not in SCHEMES:
            raise ValueError(f"`scheme` must be one of {SCHEMES}, got {scheme!r}")
        if limiter not in LIMITERS:
            raise ValueError(f"`limiter` must be one of {LIMITERS}, got {limiter!r}")
        self.scheme, self.limiter = scheme, limiter
        self.max_substeps = (
            None if max_substeps is None else _positive_int("max_substeps", max_substeps)
        )
        self.reference_height = _positive_float("reference_height", reference_height, "m")
        self.min_wind_speed = check_min_wind_speed(min_wind_speed)
        if air_density not in AIR_DENSITIES:
            raise ValueError(f"`air_density` must be one of {AIR_DENSITIES}, got {air_density!r}")
        self.air_density = air_density
        self.strict = bool(strict)

    # -- the contract --------------------------------------------------------------

    @property
    def param_spec(self) -> ParamSpec:
        return param_spec(
            self.source,
            self.n_windows,
            self.grid.shape,
            self.initial == "param",
            self.log_emission,
        )

    @property
    def kind(self) -> str:
        return self.geometry.kind

    def prepare(self, met: MetField | _Prepared) -> _Prepared:
        """The met's samplers and the run's plan (eager for a concrete met; module
        docstring of :mod:`plumax_transport._eulerian_plan`); a prepared met is returned
        as is.

        Raises:
            ValueError: the plan's errors (``duration``/``max_substeps`` for a traced
                met, the time range, too few ``max_substeps``); a met missing a field
                the diffusivity needs; the grid's centres outside the met's domain.
        """
        if isinstance(met, _Prepared):
            return met
        if not isinstance(met, MetField):
            raise ValueError(f"`met` must be a MetField, got {type(met).__name__}")
        with jax.ensure_compile_time_eval():
            fields = GridMet(
                met,
                needs_boundary_layer=not isinstance(self.diffusivity, ConstantK),
                reference_height=self.reference_height,
                density=self.air_density,
                dtype=jnp.result_type(float),
            )
            inside = self._centres_in_met(fields)
            if is_concrete(inside) and not bool(inside):
                raise ValueError(
                    "`grid`: its cell centres must lie inside the met's horizontal domain "
                    "(`met.x`, `met.y`); the met is not extrapolated"
                )
            plan = make_plan(
                met,
                fields,
                self.grid,
                self.diffusivity,
                duration=self.duration,
                n_steps=self.n_steps,
                start=self.start,
                max_substeps=self.max_substeps,
                scheme=self.scheme,
                min_wind_speed=self.min_wind_speed,
            )
        return _Prepared(met, fields, plan)

    def planned(self, met: MetField) -> EulerianFV:
        """This model with its ``duration``, ``start`` and ``max_substeps`` fixed from the
        plan of the concrete ``met``.

        Use it before an inversion: vardax-lite's analyses hold the met as an array
        leaf of the :class:`vardax_lite.Problem` and jit over it, so the met the model
        sees there is traced and cannot be planned (``ValueError`` naming
        ``max_substeps``). The planned copy runs the same steps and substeps on a traced
        met, with the stability limit still checked at run time every step.

        Raises:
            ValueError: ``met`` is traced, or the plan's own errors.
        """
        if not is_concrete(met):
            raise ValueError("`met` must be concrete to plan the run (call this outside jit)")
        plan = self.prepare(met).plan
        start = plan.origin + float(np.asarray(plan.t0, np.float64))
        return EulerianFV(
            self.geometry,
            self.grid,
            duration=plan.dt * self.n_steps,
            n_steps=self.n_steps,
            start=start,
            source=self.source,
            n_windows=self.n_windows,
            log_emission=self.log_emission,
            initial={"zero": None, "param": "param", "fixed": self.initial_field}[self.initial],
            diffusivity=self.diffusivity,
            boundaries=self.boundaries,
            scheme=self.scheme,
            limiter=self.limiter,
            max_substeps=plan.n_substeps,
            reference_height=self.reference_height,
            min_wind_speed=self.min_wind_speed,
            air_density=self.air_density,
            strict=self.strict,
        )

    def _centres_in_met(self, fields: GridMet) -> Array:
        x = jnp.asarray(self.grid.x)
        y = jnp.asarray(self.grid.y)
        return jnp.all(fields.u.contains(x[None, :], y[:, None]))

    def initial_state(self, params, met) -> Float[Array, " n"]:
        """``x_0``: the initial field (kg/m³) flattened, ``(nz ny nx,)``."""
        dtype = jnp.result_type(float)
        if self.initial == "param":
            q0 = jnp.asarray(params["initial"], dtype)
        elif self.initial == "fixed":
            q0 = jnp.asarray(self.initial_field, dtype)
        else:
            q0 = jnp.zeros(self.grid.shape, dtype)
        return q0.reshape(-1)

    def source_density(self, params, k, dtype=None) -> Float[Array, "nz ny nx"]:
        """The source of step ``k``, kg m⁻³ s⁻¹ (:mod:`plumax_transport._eulerian_source`)."""
        dtype = jnp.result_type(float) if dtype is None else dtype
        if self.source == "point":
            Q, x0, y0, H = (jnp.asarray(params[n], dtype) for n in ("Q", "x0", "y0", "H"))
            return deposit_point(self.grid, Q, x0, y0, H)
        emission = jnp.asarray(params["emission"], dtype)
        j = window_index(jnp.asarray(k, jnp.int32), self.n_windows, self.n_steps)
        return surface_flux(self.grid, jnp.take(emission, j, axis=0))

    def step(self, x, k, met, params) -> Float[Array, " n"]:
        """``x_{k+1}``: the engine's ``advance`` over model step ``k`` (module docstring)."""
        prep = self.prepare(met)
        plan = prep.plan
        dtype = x.dtype
        tau = plan.midpoint(k, dtype)
        winds, kh, kz = step_fields(prep.fields, self.grid, self.diffusivity, tau)
        q, _ = advance(
            x.reshape(self.grid.shape),
            grid=self.grid,
            winds=winds,
            kh=kh,
            kz=kz,
            source=self.source_density(params, k, dtype),
            dt=plan.dt,
            n_substeps=plan.n_substeps,
            boundaries=self.boundaries,
            scheme=self.scheme,
            limiter=self.limiter,
            air_density=prep.fields.air_density(tau, self.grid),
        )
        if plan.run_time_check:
            limit = stable_time_step(self.grid, winds, kh, scheme=self.scheme)
            speed = prep.met.wind_speed
            # a wind outside core's rule is reported by that rule's own check
            valid = jnp.all(
                jnp.isfinite(speed) & (speed >= self.min_wind_speed) & (speed <= MAX_WIND_SPEED)
            )
            bad = (plan.dt / plan.n_substeps > limit * (1.0 + 1e-5)) & valid
            if self.strict:
                q = error_if(q, bad, _MSG_CFL)
            else:
                q = jnp.where(bad, jnp.nan, q)
        return q.reshape(-1)

    def observe(self, x, k, met) -> Float[Array, " p"]:
        """The geometry's values (its units) of ``x_{k+1}``, flattened."""
        prep = self.prepare(met)
        dtype = x.dtype
        field = sample(self.geometry, self.grid, x.reshape(self.grid.shape))
        T, P = prep.fields.air_at(prep.plan.end(k, dtype), self.geometry)
        obs = self.geometry.finish(field, T.astype(dtype), P.astype(dtype))
        return obs.values.reshape(-1)

    def simulate(self, params, eta, met) -> Float[Array, "K p"]:
        """Core's :meth:`~plumax_core.AbstractTimeSteppingModel.simulate` on the
        prepared met (the samplers and plan built once, outside the time loop)."""
        return super().simulate(params, eta, self.prepare(met))

    def observation_times(self, met: MetField) -> np.ndarray:
        """The ``K`` observation times, s UTC (float64; a concrete met)."""
        plan = self.prepare(met).plan
        t0 = plan.origin + float(np.asarray(plan.t0, np.float64))
        return t0 + plan.dt * np.arange(1, self.n_steps + 1)

    def __call__(self, params: Mapping[str, Array], met: MetField) -> Observations:
        """Simulate the geometry's observations (module docstring), with the check
        policy of :func:`plumax_transport._common.run_checked`."""
        return run_checked(_core, self, params, met)

    def _observations(self, ys: Float[Array, "K p"]) -> Observations:
        shape = geometry_shape(self.geometry)
        # the geometry's own Observations (dims, coords, kind) for the values
        template = self.geometry.finish(jnp.zeros(shape, ys.dtype), 288.15, 101325.0)
        if self.n_steps == 1:
            return template.replace(values=ys[0].reshape(shape))
        return Observations(
            ys.reshape((self.n_steps, *shape)),
            kind=template.kind,
            dims=("time", *template.dims),
            coords=template.coords,
        )


def _core(model: EulerianFV, p, met: MetField, inside: bool):
    """Prepare the met (eager), check a concrete source now, then the jitted run."""
    prep = model.prepare(met)
    if not inside and model.source == "point":
        with jax.ensure_compile_time_eval():
            out = point_outside(model.grid, p["x0"], p["y0"], p["H"])
        if bool(np.asarray(out)):
            raise ValueError(_MSG_SOURCE)
    return _run(model, p, prep, inside)


@eqx.filter_jit
def _run(model: EulerianFV, p, prep: _Prepared, inside: bool):
    check = Checks(inside, strict=model.strict)
    spec = model.param_spec
    first = spec.names[0]
    p = dict(p)
    if inside:
        p[first] = check(p[first], ~spec.in_support(p), _MSG_SUPPORT)
    met = prep.met
    p[first] = check_wind(check, p[first], met.wind_speed, model.min_wind_speed)
    if model.source == "point":
        p[first] = check(p[first], point_outside(model.grid, p["x0"], p["y0"], p["H"]), _MSG_SOURCE)
    p[first] = check(p[first], ~model._centres_in_met(prep.fields), _MSG_DOMAIN)
    if not prep.plan.time_checked:
        t0 = prep.plan.t0
        t1 = t0 + prep.plan.dt * prep.plan.n_steps
        outside = (t0 < met.time[0]) | (t1 > met.time[-1])
        p[first] = check(p[first], outside, _MSG_TIME)
    ys = model.simulate(p, None, prep)
    return model._observations(ys), check.flags
