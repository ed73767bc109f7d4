"""4D-Var: strong-constraint, weak-constraint and incremental.

A time-stepping forward model (:class:`plumax_core.AbstractTimeSteppingModel`, re-exported
here) integrates ``x_{k+1} = M_k(x_k; params) + eta_k`` from an initial state set by the
parameters and observes ``y_k = h(x_{k+1})`` after each step.

* :class:`StrongFourDVar` (``eta = 0``; Le Dimet & Talagrand 1986, Tellus 38A:97;
  Talagrand & Courtier 1987, QJRMS 113:1311): the MAP of the parameters; the gradient
  (the adjoint integration) is reverse-mode autodiff through ``lax.scan``.
* :class:`WeakFourDVar` (Trémolet 2006, QJRMS 132:2483, eq. 4): the model errors
  ``eta_k ~ N(0, Q)`` join the control vector, whitened as ``eta_k = Q^{1/2} xi_k``, and
  the cost gains ``1/2 sum xi_k^T xi_k``. The parameter posterior is the ``D x D`` block
  of the joint Laplace covariance (the marginal of a Gaussian).
* :class:`IncrementalFourDVar` (Courtier, Thépaut & Hollingsworth 1994, QJRMS
  120:1367): outer Gauss-Newton loop; each inner problem
  ``(I + G^T G) delta = -(chi + G^T w)`` is solved by conjugate gradients with the
  tangent-linear ``G`` from ``jax.linearize`` and its adjoint by transposition. The
  posterior comes from an adapter at the final iterate: the Gauss-Newton
  Hessian there (``LaplaceCovariance``) up to 200 parameters, the matrix-free
  low-rank ``GaussNewtonHessian`` beyond (a gridded emission field).

Both strong and incremental 4D-Var record their cost in provenance: ``n_model_runs``
(full nonlinear forward-model runs), ``n_tangent_linear_runs`` and ``n_adjoint_runs``,
counted at run time by :class:`vardax_lite._counting.CountingModel` over the MAP search
and the adapter's construction (not later uses of a lazy covariance).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
from jaxtyping import Array, Float, PRNGKeyArray

from plumax_core import AbstractTimeSteppingModel, Posterior, gates

from ._adapters import AbstractPosteriorAdapter, select_adapter
from ._analysis import AbstractAnalysis, clean_input_errors, provenance_for
from ._counting import counting, with_counting
from ._map import SOLVERS, check_solver, solve_map_jit
from ._problem import Problem

_PSD = (lx.symmetric_tag, lx.positive_semidefinite_tag)


def adjoint_test(problem: Problem, chi: Float[Array, " D"], *, key: PRNGKeyArray, n_probes=4):
    """Dot-product test ``<G u, w> = <u, G^T w>`` of the tangent-linear model and the
    autodiff adjoint at ``chi`` (:func:`plumax_core.gates.dot_product_test`)."""
    fn = lambda c: problem.whitened_residual(problem.from_control(c))
    out, vjp = jax.vjp(fn, chi)
    jvp = lambda u: jax.jvp(fn, (chi,), (u,))[1]
    return gates.dot_product_test(jvp, vjp, chi, out, key=key, n_probes=n_probes)


def cost_gradient(problem: Problem, chi: Float[Array, " D"]) -> Float[Array, " D"]:
    """``dJ/dchi`` by the adjoint (reverse-mode autodiff through the time loop)."""
    return jax.grad(problem.cost)(chi)


def _analysis_posterior(
    analysis: AbstractAnalysis,
    problem: Problem,
    counted: Problem,
    tally,
    chi: Float[Array, " D"],
    chi_cov: Float[Array, " D"],
    adapter: AbstractPosteriorAdapter | None,
    key: PRNGKeyArray | None,
    **extra,
) -> Posterior:
    """The 4D-Var posterior at ``chi``: the adapter's spread at ``chi_cov`` (run on the
    counting copy ``counted`` of ``problem``, inside ``tally``), the run counts and the
    provenance of the original ``problem``."""
    # the 4D-Var mapping: matrix-free GaussNewtonHessian beyond 200 parameters
    adapter = select_adapter(type(analysis).__name__, problem) if adapter is None else adapter
    out = adapter(counted, chi_cov, key=key)
    jax.effects_barrier()
    prov = provenance_for(
        problem,
        analysis,
        **extra,
        **out.extra,
        n_model_runs=int(tally["model"]),
        n_tangent_linear_runs=int(tally["tangent_linear"]),
        n_adjoint_runs=int(tally["adjoint"]),
    )
    return Posterior(
        problem.from_control(chi),
        out.cov,
        out.samples,
        provenance=prov,
        param_spec=problem.param_spec,
    )


class StrongFourDVar(AbstractAnalysis):
    """Strong-constraint 4D-Var: the model is perfect, the control is its parameters.

    Attributes:
        solver: ``"lbfgs"`` (default: the classic adjoint + quasi-Newton), ``"bfgs"``,
            ``"gauss_newton"`` or ``"levenberg_marquardt"``.
        rtol, atol, max_steps: solver settings.
        adapter: posterior adapter; None = :func:`select_adapter` (matrix-free
            :class:`GaussNewtonHessian` beyond 200 parameters).

    Provenance counts the runs of the forward model (see :mod:`vardax_lite._counting`)
    during the MAP solve and the adapter's construction: ``n_model_runs`` (full
    nonlinear runs; with L-BFGS one per cost-and-gradient evaluation plus the final cost),
    ``n_tangent_linear_runs`` and ``n_adjoint_runs`` (one per gradient).
    """

    solver: str = eqx.field(static=True, default="lbfgs")
    rtol: float = eqx.field(static=True, default=1e-10)
    atol: float = eqx.field(static=True, default=1e-10)
    max_steps: int = eqx.field(static=True, default=1000)
    adapter: AbstractPosteriorAdapter | None = None

    def __check_init__(self):
        if self.solver not in SOLVERS:
            raise ValueError(f"`solver` must be one of {SOLVERS}, got {self.solver!r}")

    @clean_input_errors
    def posterior(self, problem: Problem, *, key: PRNGKeyArray | None = None) -> Posterior:
        check_solver(self.solver, problem.likelihood)
        counted = with_counting(problem)
        chi0 = jnp.zeros(problem.dim, problem.z_b.dtype)
        with counting() as tally:
            res = solve_map_jit(
                counted,
                chi0,
                solver=self.solver,
                rtol=self.rtol,
                atol=self.atol,
                max_steps=self.max_steps,
            )
            return _analysis_posterior(
                self,
                problem,
                counted,
                tally,
                res.chi,
                res.chi,
                self.adapter,
                key,
                n_iter=int(res.n_steps),
                J_star=float(res.J),
                converged=bool(res.converged),
                solver=self.solver,
            )


@eqx.filter_jit
def _outer_step(problem: Problem, chi, cg_rtol, cg_atol, n_inner):
    """One Gauss-Newton outer loop at ``chi``: one full-model run (the linearisation),
    one adjoint for the gradient, one TL and one adjoint per CG iteration.

    Returns the increment's end point, ``||delta||``, the CG iterations and ``J(chi)``.
    """
    fn = lambda c: problem.whitened_residual(problem.from_control(c))
    w, jvp = jax.linearize(fn, chi)
    G = lx.FunctionLinearOperator(jvp, jax.ShapeDtypeStruct(chi.shape, chi.dtype))
    grad = chi + G.T.mv(w)
    H = lx.TaggedLinearOperator(lx.IdentityLinearOperator(G.in_structure()) + G.T @ G, _PSD)
    sol = lx.linear_solve(
        H, -grad, lx.CG(rtol=cg_rtol, atol=cg_atol, max_steps=n_inner), throw=False
    )
    delta = sol.value
    J = 0.5 * jnp.sum(chi**2) + 0.5 * jnp.sum(w**2)
    return chi + delta, jnp.linalg.norm(delta), sol.stats["num_steps"], J


class IncrementalFourDVar(AbstractAnalysis):
    """Incremental 4D-Var: outer Gauss-Newton relinearisations, inner CG.

    Attributes:
        n_outer: maximum outer loops (static).
        n_inner: maximum CG iterations per inner loop (static).
        cg_rtol, cg_atol: CG tolerances.
        outer_tol: stop when ``||delta chi|| <= outer_tol * (1 + ||chi||)``.
        adapter: posterior adapter, applied at the final iterate (the MAP estimate, a
            fresh linearisation there); None = the 4D-Var mapping of
            :func:`select_adapter`: :class:`LaplaceCovariance` ``L (I + G^T G)^{-1} L^T``
            (the Gauss-Newton Hessian at the MAP, dense) up to 200 parameters, the
            matrix-free :class:`GaussNewtonHessian` (a low-rank update of ``B``, never
            ``D x D``) beyond.

    Cost accounting in provenance (see :mod:`vardax_lite._counting`):
    ``n_model_runs`` = one per outer loop (its linearisation, whose primal output is the
    residual) + one for the final cost + one for the adapter's linearisation;
    ``n_tangent_linear_runs`` / ``n_adjoint_runs`` = the CG products with ``G`` and
    ``G^T`` (plus the gradient's adjoint per outer loop and the adapter's Lanczos).
    """

    n_outer: int = eqx.field(static=True, default=10)
    n_inner: int = eqx.field(static=True, default=100)
    cg_rtol: float = eqx.field(static=True, default=1e-12)
    cg_atol: float = eqx.field(static=True, default=1e-12)
    outer_tol: float = eqx.field(static=True, default=1e-10)
    adapter: AbstractPosteriorAdapter | None = None

    def __check_init__(self):
        for name in ("n_outer", "n_inner"):
            v = getattr(self, name)
            if not (isinstance(v, int) and v >= 1):
                raise ValueError(f"`{name}` must be a positive int, got {v!r}")

    @clean_input_errors
    def posterior(self, problem: Problem, *, key: PRNGKeyArray | None = None) -> Posterior:
        if problem.likelihood != "gaussian":
            raise ValueError("IncrementalFourDVar needs a Gaussian likelihood (Gauss-Newton)")
        counted = with_counting(problem)
        chi = jnp.zeros(problem.dim, problem.z_b.dtype)
        n_cg, converged, n_outer = [], False, 0
        with counting() as tally:
            for _ in range(self.n_outer):
                chi, dn, steps, _ = _outer_step(
                    counted, chi, self.cg_rtol, self.cg_atol, self.n_inner
                )
                n_cg.append(int(steps))
                n_outer += 1
                if float(dn) <= self.outer_tol * (1.0 + float(jnp.linalg.norm(chi))):
                    converged = True
                    break
            J = float(_cost_jit(counted, chi))
            return _analysis_posterior(
                self,
                problem,
                counted,
                tally,
                chi,
                chi,
                self.adapter,
                key,
                n_iter=n_outer,
                J_star=J,
                converged=converged,
                n_inner_total=sum(n_cg),
                n_inner_per_outer=n_cg,
            )


@eqx.filter_jit
def _cost_jit(problem: Problem, chi):
    return problem.cost(chi)


def posterior_std_maps(posterior: Posterior) -> dict[str, Array]:
    """Marginal posterior standard deviations reshaped to each parameter's shape.

    ``posterior.std()`` (the square root of ``lx.diagonal(cov)``; for the
    :class:`GaussNewtonHessian` covariance ``B + U C U^T`` that is ``diag(B)`` plus a
    row sum, ``O(D k)``, never ``D x D``) split by the posterior's ``param_spec``: e.g.
    an ``(n_windows, ny, nx)`` map for a gridded emission. The values are in the
    *unconstrained* space (log space for a ``log=True`` parameter, where they are the
    relative spread of the emission).

    Raises:
        ValueError: the posterior carries no ``param_spec``.
    """
    if posterior.param_spec is None:
        raise ValueError("`posterior` has no `param_spec`: cannot split its std by parameter")
    return posterior.param_spec.unflatten(posterior.std())


class WeakFourDVar(AbstractAnalysis):
    """Weak-constraint 4D-Var with additive model error ``eta_k ~ N(0, diag(q^2))``.

    Attributes:
        model_error_std: ``q``, scalar or ``(n,)`` model-error standard deviation per
            step (state units).
        rtol, atol, max_steps: Gauss-Newton settings.

    The forward model must be an :class:`AbstractTimeSteppingModel`. The returned
    posterior is over the parameters only (the model-error block is marginalised; its
    MAP norm and size are in provenance).
    """

    model_error_std: Array
    rtol: float = eqx.field(static=True, default=1e-10)
    atol: float = eqx.field(static=True, default=1e-10)
    max_steps: int = eqx.field(static=True, default=100)

    def __init__(self, model_error_std, *, rtol=1e-10, atol=1e-10, max_steps=100):
        self.model_error_std = jnp.asarray(model_error_std, dtype=jnp.result_type(float))
        self.rtol, self.atol, self.max_steps = rtol, atol, max_steps

    def __check_init__(self):
        q = self.model_error_std
        if not isinstance(q, jax.core.Tracer) and not bool(
            jnp.all(q > 0) & jnp.all(jnp.isfinite(q))
        ):
            raise ValueError("`model_error_std` must be finite and > 0")

    def _residual_fn(self, problem: Problem):
        model = problem.forward_model
        if not isinstance(model, AbstractTimeSteppingModel):
            raise TypeError(
                f"WeakFourDVar needs an AbstractTimeSteppingModel, got {type(model).__name__}"
            )
        d, K = problem.dim, model.n_steps
        n = model.state_size(problem.met)
        q = jnp.broadcast_to(self.model_error_std, (n,))

        def residuals(u, args=None):
            chi, xi = u[:d], u[d:].reshape(K, n)
            z = problem.from_control(chi)
            params = problem.param_spec.from_unconstrained(z)
            pred = model.simulate(params, xi * q, problem.met).ravel()
            return jnp.concatenate([u, problem.whiten_obs(pred - problem.y)])

        return residuals, d + K * n

    @clean_input_errors
    def posterior(self, problem: Problem, *, key: PRNGKeyArray | None = None) -> Posterior:
        del key
        import optimistix as optx

        if problem.likelihood != "gaussian":
            raise ValueError("WeakFourDVar needs a Gaussian likelihood")
        residuals, size = self._residual_fn(problem)
        u0 = jnp.zeros(size, problem.z_b.dtype)
        sol = _weak_solve(residuals, u0, self.rtol, self.atol, self.max_steps)
        u = sol.value
        d = problem.dim
        Jac = jax.jacfwd(residuals)(u)[size:]  # whitened data Jacobian, (m, size)
        Hj = jnp.eye(size, dtype=u.dtype) + Jac.T @ Jac
        cf = jax.scipy.linalg.cho_factor(Hj, lower=True)
        E = jnp.eye(size, d, dtype=u.dtype)
        Pchi = jax.scipy.linalg.cho_solve(cf, E)[:d]  # D x D block of H^-1 (whitened)
        Lm = problem.prior_sqrt.as_matrix()
        P = Lm @ Pchi @ Lm.T
        r = residuals(u)
        prov = provenance_for(
            problem,
            self,
            n_iter=int(sol.stats["num_steps"]),
            J_star=float(0.5 * jnp.sum(r**2)),
            converged=bool(sol.result == optx.RESULTS.successful),
            adapter="LaplaceCovariance(joint, marginal block)",
            model_error_norm=float(jnp.linalg.norm(u[d:])),
            control_size=int(size),
        )
        return Posterior(
            problem.from_control(u[:d]),
            lx.MatrixLinearOperator(0.5 * (P + P.T), _PSD),
            provenance=prov,
            param_spec=problem.param_spec,
        )


def _weak_solve(residuals, u0, rtol, atol, max_steps):
    import optimistix as optx

    return optx.least_squares(
        residuals, optx.GaussNewton(rtol=rtol, atol=atol), u0, max_steps=max_steps, throw=False
    )
