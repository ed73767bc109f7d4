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
(:mod:`plumax_transport._eulerian_plan`: the times, the met intervals, the substeps);
the state is ``q`` flattened in C order ``(nz, ny, nx)``.

* ``initial_state(params, met)``: zero, the fixed ``initial`` array, or the ``initial``
  parameter (kg/m³).
* ``step(x, k, met, params)``: ``advance`` over each of step ``k``'s ``M`` met
  intervals (``M = 1`` for a met steady in time; more where the met's wind changes
  within the step, :mod:`plumax_transport._eulerian_plan`) with the winds, ``K_h``,
  ``K_z`` and air-density profile of the interval's midpoint
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
*geometry shape)`` and, for a concrete met, the coordinate ``"time"`` (s UTC, the
:meth:`EulerianFV.observation_times`).

**Checks** (the policy of :func:`plumax_transport._common.run_checked`, as every tier):
eagerly ``ValueError``; traced, ``strict=True`` raises at run time
(:class:`plumax_core.InvalidInputError` under :func:`plumax_core.clean_errors`) and
``strict=False`` gives NaN observations. Checked: the parameters' support; core's
wind-speed rule on every met node with the floor ``min_wind_speed``, 0 by default
(finite and at most ``MAX_WIND_SPEED``: unlike the plume, the model has no ``1/u``, so
a calm or a reversing wind is valid); a point source inside the grid; the grid's cell
centres inside the met's horizontal domain (a met with ``x``/``y`` coordinates); the
run inside the time range of a met varying in time; with a traced met, each met
interval's substep against the stability limit (:mod:`plumax_transport._eulerian_plan`).
The prepared met and the checked run are :mod:`plumax_transport._eulerian_prepare`.

**Gradients and memory.** Reverse mode goes through :meth:`simulate`'s ``lax.scan``,
whose step is wrapped in ``jax.checkpoint`` (core's contract): the backward pass keeps
the ``K`` step states (``O(K n)``, ``n = nz ny nx``) and recomputes one step at a time,
whose substep loop (checkpointed by the engine, :func:`~plumax_transport._fv_solver.advance`)
then keeps one state per substep (``O(n_substeps n)``, for the one step being
differentiated; with ``M > 1`` met intervals each interval is checkpointed too, ``O(M n)``
more). Measured with the engine's substep checkpoint (float64, the temporary memory of
the compiled gradient, ``jax.jit(jax.grad(loss)).lower(p).compile().memory_analysis()
.temp_size_in_bytes / 8``, a ``3 x 6 x 8`` grid, ``n = 144``, the limited scheme):
about ``1 n`` per substep (about ``108 n`` before it) and ``3-6 n`` from ``K = 2`` to
``K = 6``;
tested (``@slow``) in
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
from plumax_core.validation import (
    MAX_WIND_SPEED,
    check_positive,
    check_positive_int,
    check_value,
)

from ._common import run_checked
from ._eulerian_met import AIR_DENSITIES
from ._eulerian_observe import check_geometry_in_grid, geometry_shape, sample
from ._eulerian_plan import step_fields
from ._eulerian_prepare import Prepared, check_cfl, core, planned_kwargs, prepare
from ._eulerian_source import (
    SOURCES,
    deposit_point,
    initial_kind,
    param_spec,
    surface_flux,
    window_index,
)
from ._fv_advection import LIMITERS, SCHEMES
from ._fv_boundary import Boundaries
from ._fv_diffusion import AbstractDiffusivity, MoninObukhovK
from ._fv_grid import FVGrid
from ._fv_solver import advance
from ._geometry import AbstractGeometry


def _positive(name: str, value, units: str) -> float:
    check_positive(name, value, units=units)
    return float(value)


def _min_wind_speed(value) -> float:
    """``min_wind_speed`` in ``[0, MAX_WIND_SPEED)`` m/s (0: core's rule keeps only
    finite speeds up to ``MAX_WIND_SPEED``)."""
    check_value("min_wind_speed", value, nonneg=True)
    v = float(value)
    if v >= MAX_WIND_SPEED:
        raise ValueError(f"`min_wind_speed` must be < {MAX_WIND_SPEED:g} m/s, got {value!r}")
    return v


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
        met_intervals: met intervals ``M`` per model step when given (needed for a
            traced met varying in time), else planned from the met.
        time_origin: the first time (s UTC) of the met the model was planned on
            (:meth:`planned`); a traced met's times are shifted by it. None: absolute.
        reference_height: height of the met wind used for ``u*``, m.
        min_wind_speed: floor of core's wind-speed rule, m/s (default 0: calm and
            reversing winds are valid for this model).
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
    met_intervals: int | None = eqx.field(static=True)
    time_origin: float | None = eqx.field(static=True)
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
        met_intervals: int | None = None,
        time_origin: float | None = None,
        reference_height: float = 10.0,
        min_wind_speed: float = 0.0,
        air_density: str = "hydrostatic",
        strict: bool = True,
    ):
        if not isinstance(grid, FVGrid):
            raise ValueError(f"`grid` must be an FVGrid, got {type(grid).__name__}")
        self.grid = grid
        check_geometry_in_grid(geometry, grid)
        self.geometry = geometry
        self.n_steps = check_positive_int(n_steps, "n_steps")
        self.duration = None if duration is None else _positive("duration", duration, "s")
        if start is not None and not (
            isinstance(start, int | float | np.floating | np.integer) and math.isfinite(start)
        ):
            raise ValueError(f"`start` must be a finite time (s UTC) or None, got {start!r}")
        self.start = None if start is None else float(start)
        if source not in SOURCES:
            raise ValueError(f"`source` must be one of {SOURCES}, got {source!r}")
        self.source = source
        self.n_windows = check_positive_int(n_windows, "n_windows")
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
        self.initial, self.initial_field = initial_kind(initial, grid.shape)
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
            None if max_substeps is None else check_positive_int(max_substeps, "max_substeps")
        )
        self.met_intervals = (
            None if met_intervals is None else check_positive_int(met_intervals, "met_intervals")
        )
        if time_origin is not None:
            check_value("time_origin", time_origin)
            time_origin = float(time_origin)
        self.time_origin = time_origin
        self.reference_height = _positive("reference_height", reference_height, "m")
        self.min_wind_speed = _min_wind_speed(min_wind_speed)
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

    def prepare(self, met: MetField | Prepared) -> Prepared:
        """The met's samplers and the run's plan (eager for a concrete met; module
        docstrings of :mod:`plumax_transport._eulerian_plan` and
        :mod:`plumax_transport._eulerian_prepare`); a prepared met is returned as is.

        Raises:
            ValueError: the plan's errors (``duration``/``max_substeps``/
                ``met_intervals`` for a traced met, the time range, too few
                ``max_substeps``); a met missing a field the diffusivity needs; the
                grid's centres outside the met's domain.
        """
        return prepare(self, met)

    def planned(self, met: MetField) -> EulerianFV:
        """This model with its ``duration``, ``start``, ``max_substeps``,
        ``met_intervals`` and ``time_origin`` fixed from the plan of the concrete ``met``.

        Use it before an inversion: vardax-lite's analyses hold the met as an array
        leaf of the :class:`vardax_lite.Problem` and jit over it, so the met the model
        sees there is traced and cannot be planned (``ValueError`` naming
        ``max_substeps``). The planned copy runs the same steps, met intervals and
        substeps on a traced met, on the same time offsets (float32 with UTC-epoch
        times included), with the stability limit still checked at run time.

        Raises:
            ValueError: ``met`` is traced, or the plan's own errors.
        """
        kw = planned_kwargs(self, met)
        return EulerianFV(
            self.geometry,
            self.grid,
            n_steps=self.n_steps,
            source=self.source,
            n_windows=self.n_windows,
            log_emission=self.log_emission,
            initial={"zero": None, "param": "param", "fixed": self.initial_field}[self.initial],
            diffusivity=self.diffusivity,
            boundaries=self.boundaries,
            scheme=self.scheme,
            limiter=self.limiter,
            reference_height=self.reference_height,
            min_wind_speed=self.min_wind_speed,
            air_density=self.air_density,
            strict=self.strict,
            **kw,
        )

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
        """``x_{k+1}``: the engine's ``advance`` over each met interval of model step
        ``k`` (module docstring)."""
        prep = self.prepare(met)
        plan = prep.plan
        dtype = x.dtype
        source = self.source_density(params, k, dtype)
        dt = jnp.asarray(plan.dt, dtype) / plan.n_intervals

        def interval(q, j):
            tau = plan.midpoint(k, j, dtype)
            winds, kh, kz = step_fields(prep.fields, self.grid, self.diffusivity, tau)
            q, _ = advance(
                q,
                grid=self.grid,
                winds=winds,
                kh=kh,
                kz=kz,
                source=source,
                dt=dt,
                n_substeps=plan.interval_substeps,
                boundaries=self.boundaries,
                scheme=self.scheme,
                limiter=self.limiter,
                air_density=prep.fields.air_density(tau, self.grid),
            )
            if plan.run_time_check:
                q = check_cfl(self, q, prep, winds, kh, dt / plan.interval_substeps)
            return q, None

        q = x.reshape(self.grid.shape)
        if plan.n_intervals == 1:
            q, _ = interval(q, 0)
        else:
            q, _ = jax.lax.scan(jax.checkpoint(interval), q, jnp.arange(plan.n_intervals))
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
        return self.prepare(met).plan.times()

    def __call__(self, params: Mapping[str, Array], met: MetField) -> Observations:
        """Simulate the geometry's observations (module docstring), with the check
        policy of :func:`plumax_transport._common.run_checked`."""
        return run_checked(core, self, params, met)

    def observations(self, ys: Float[Array, "K p"]) -> Observations:
        """The :class:`~plumax_core.Observations` of the simulated values ``ys``."""
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
