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
  last Gauss-Newton Hessian gives the posterior covariance.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
from jaxtyping import Array, Float, PRNGKeyArray

from plumax_core import AbstractTimeSteppingModel, Posterior, gates

from ._adapters import AbstractPosteriorAdapter, _whitened_hessian, laplace_from_hessian
from ._analysis import AbstractAnalysis, clean_input_errors, provenance_for
from ._map import SOLVERS, check_solver, solve_map_jit
from ._problem import Problem
from ._var3d import map_posterior

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


class StrongFourDVar(AbstractAnalysis):
    """Strong-constraint 4D-Var: the model is perfect, the control is its parameters.

    Attributes:
        solver: ``"lbfgs"`` (default: the classic adjoint + quasi-Newton), ``"bfgs"``,
            ``"gauss_newton"`` or ``"levenberg_marquardt"``.
        rtol, atol, max_steps: solver settings.
        adapter: posterior adapter; None = :func:`select_adapter` (matrix-free
            :class:`GaussNewtonHessian` beyond 200 parameters).
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
        chi0 = jnp.zeros(problem.dim, problem.z_b.dtype)
        res = solve_map_jit(
            problem,
            chi0,
            solver=self.solver,
            rtol=self.rtol,
            atol=self.atol,
            max_steps=self.max_steps,
        )
        return map_posterior(self, problem, res, self.adapter, key, solver=self.solver)


@eqx.filter_jit
def _outer_step(problem: Problem, chi, cg_rtol, cg_atol, n_inner):
    G = problem.whitened_jacobian(chi)
    w = problem.whitened_residual(problem.from_control(chi))
    grad = chi + G.T.mv(w)
    H = _whitened_hessian(problem, chi, exact=False)
    sol = lx.linear_solve(
        H, -grad, lx.CG(rtol=cg_rtol, atol=cg_atol, max_steps=n_inner), throw=False
    )
    delta = sol.value
    return chi + delta, jnp.linalg.norm(delta), sol.stats["num_steps"], problem.cost(chi + delta)


class IncrementalFourDVar(AbstractAnalysis):
    """Incremental 4D-Var: outer Gauss-Newton relinearisations, inner CG.

    Attributes:
        n_outer: maximum outer loops (static).
        n_inner: maximum CG iterations per inner loop (static).
        cg_rtol, cg_atol: CG tolerances.
        outer_tol: stop when ``||delta chi|| <= outer_tol * (1 + ||chi||)``.

    The posterior covariance is ``L (I + G^T G)^{-1} L^T`` with ``G`` from the last
    linearisation: the inner loop's own Hessian, reused.
    """

    n_outer: int = eqx.field(static=True, default=10)
    n_inner: int = eqx.field(static=True, default=100)
    cg_rtol: float = eqx.field(static=True, default=1e-12)
    cg_atol: float = eqx.field(static=True, default=1e-12)
    outer_tol: float = eqx.field(static=True, default=1e-10)

    def __check_init__(self):
        for name in ("n_outer", "n_inner"):
            v = getattr(self, name)
            if not (isinstance(v, int) and v >= 1):
                raise ValueError(f"`{name}` must be a positive int, got {v!r}")

    @clean_input_errors
    def posterior(self, problem: Problem, *, key: PRNGKeyArray | None = None) -> Posterior:
        del key
        if problem.likelihood != "gaussian":
            raise ValueError("IncrementalFourDVar needs a Gaussian likelihood (Gauss-Newton)")
        chi = jnp.zeros(problem.dim, problem.z_b.dtype)
        chi_lin = chi
        n_cg, converged, n_outer, J = 0, False, 0, problem.cost(chi)
        for _ in range(self.n_outer):
            chi_lin = chi
            chi, dn, steps, J = _outer_step(problem, chi, self.cg_rtol, self.cg_atol, self.n_inner)
            n_cg += int(steps)
            n_outer += 1
            if float(dn) <= self.outer_tol * (1.0 + float(jnp.linalg.norm(chi))):
                converged = True
                break
        H = _whitened_hessian(problem, chi_lin, exact=False)
        cov = laplace_from_hessian(problem, H)
        prov = provenance_for(
            problem,
            self,
            n_iter=n_outer,
            J_star=float(J),
            converged=converged,
            n_inner_total=n_cg,
            adapter="LaplaceCovariance(last Gauss-Newton Hessian)",
        )
        return Posterior(
            problem.from_control(chi), cov, provenance=prov, param_spec=problem.param_spec
        )


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
