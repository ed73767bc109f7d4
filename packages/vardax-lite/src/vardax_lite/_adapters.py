"""Posterior adapters: from a MAP to a posterior covariance (and samples).

The three families of the seed contract:

* :class:`LaplaceCovariance` — the Laplace approximation at the MAP,
  ``P* = (H'^T R^{-1} H' + B^{-1})^{-1}`` (Gauss-Newton Hessian; or the exact Hessian
  of ``J``), held as a lazy lineax operator ``L (I + G^T G)^{-1} L^T`` with
  ``G = R^{-1/2} H' L`` (Tarantola 2005, eq. 3.51; Rodgers 2000, eq. 2.27). Nothing of
  size ``m`` is formed; the ``D x D`` whitened Hessian is materialised only when the
  operator is asked for a solve, a diagonal or a matrix.
* :class:`GaussNewtonHessian` — ``n_krylov`` Lanczos iterations (full
  reorthogonalisation) on the prior-preconditioned data-misfit Hessian ``G^T G``
  give its dominant eigenpairs ``(lambda_i, v_i)`` and the low-rank posterior
  ``P* = B - (L V) diag(lambda / (1 + lambda)) (L V)^T`` (Flath et al. 2011, SIAM J.
  Sci. Comput. 33:407, eq. 3.4; Bui-Thanh et al. 2013, SIAM J. Sci. Comput.
  35:A2494, eq. 20), a :class:`plumax_core.linalg.LowRankUpdate` whose diagonal and
  marginals cost ``O(D k)`` without materialising. Exact when ``n_krylov >= rank``.
* :class:`EnsembleCovariance` — ``M`` perturbed analyses (randomised maximum likelihood:
  Oliver, He & Reynolds 1996; the stochastic EnKF analysis of Burgers et al. 1998) run
  with ``eqx.filter_vmap``: perturbed data ``y + R^{1/2} eps`` and prior mean
  ``z_b + L eta``; the analyses are exact posterior draws for a linear-Gaussian problem,
  so the sample covariance converges at the ``1/sqrt(M)`` Monte-Carlo rate. Optional
  multiplicative inflation and Gaspari-Cohn (1999, QJRMS 125:723, eq. 4.10) localisation.
"""

import abc
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import lineax as lx
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from plumax_core import linalg

from ._map import check_solver, solve_map
from ._problem import Problem

_PSD = (lx.symmetric_tag, lx.positive_semidefinite_tag)


class AdapterOutput(eqx.Module):
    """What an adapter adds to a MAP: a covariance operator and/or samples ``(B, M, D)``."""

    cov: lx.AbstractLinearOperator | None
    samples: Float[Array, "B M D"] | None
    extra: dict = eqx.field(static=True)


class AbstractPosteriorAdapter(eqx.Module):
    """Turns a MAP ``chi*`` of a :class:`Problem` into a posterior covariance / samples.

    Contract: ``__call__(problem, chi_map, key=...)`` returns an :class:`AdapterOutput`
    whose covariance (in the unconstrained space of ``problem.param_spec``) equals the
    closed-form ``(B^{-1} + H^T R^{-1} H)^{-1}`` on a linear-Gaussian problem — exactly
    for the Hessian adapters, within Monte-Carlo error for the ensemble.
    """

    @abc.abstractmethod
    def __call__(
        self, problem: Problem, chi_map: Float[Array, " D"], *, key: PRNGKeyArray | None = None
    ) -> AdapterOutput:
        """The posterior spread around ``chi_map``."""


def _whitened_hessian(problem: Problem, chi: Array, exact: bool) -> lx.AbstractLinearOperator:
    """The Hessian of ``J`` in whitened coordinates, lazily, tagged SPD."""
    struct = jax.ShapeDtypeStruct(chi.shape, chi.dtype)
    if exact:
        grad = jax.grad(problem.cost)
        _, hvp = jax.linearize(grad, chi)
        return lx.FunctionLinearOperator(hvp, struct, _PSD)
    G = problem.whitened_jacobian(chi)
    op = lx.IdentityLinearOperator(struct) + G.T @ G
    return lx.TaggedLinearOperator(op, _PSD)


def laplace_from_hessian(
    problem: Problem, hessian: lx.AbstractLinearOperator
) -> lx.AbstractLinearOperator:
    """``L H_chi^{-1} L^T`` as a lazy SPD-tagged lineax operator (unconstrained space)."""
    L = problem.prior_sqrt
    op = L @ linalg.Inverse(hessian) @ L.T
    return lx.TaggedLinearOperator(op, _PSD)


class LaplaceCovariance(AbstractPosteriorAdapter):
    """Laplace approximation at the MAP: ``(H'^T R^{-1} H' + B^{-1})^{-1}``, lazily.

    Attributes:
        hessian: ``"gauss_newton"`` (``I + G^T G``, always SPD) or ``"exact"`` (the full
            Hessian of ``J`` by forward-over-reverse autodiff; use it for a Student-t
            likelihood, where the Gauss-Newton term is not the Hessian). ``"auto"``
            picks Gauss-Newton for a Gaussian likelihood and exact otherwise.

    The returned covariance is ``L (I + G^T G)^{-1} L^T`` as a composition of lineax
    operators; ``cov.as_matrix()`` materialises it, ``lx.diagonal(cov)`` and
    :meth:`plumax_core.Posterior.sample` use a ``D x D`` Cholesky factorisation.
    """

    hessian: str = eqx.field(static=True, default="auto")

    def __check_init__(self):
        if self.hessian not in ("auto", "gauss_newton", "exact"):
            raise ValueError(
                f"`hessian` must be 'auto', 'gauss_newton' or 'exact', got {self.hessian!r}"
            )

    def __call__(self, problem, chi_map, *, key=None):
        del key
        exact = self.hessian == "exact" or (
            self.hessian == "auto" and problem.likelihood != "gaussian"
        )
        H = _whitened_hessian(problem, chi_map, exact)
        return AdapterOutput(
            laplace_from_hessian(problem, H),
            None,
            {"adapter": "LaplaceCovariance", "hessian": "exact" if exact else "gauss_newton"},
        )


def lanczos(mv, v0: Float[Array, " D"], n_krylov: int, *, key: PRNGKeyArray):
    """``n_krylov`` Lanczos steps with full reorthogonalisation on a symmetric ``mv``.

    Returns the Ritz values ``theta (k,)`` (ascending) and orthonormal Ritz vectors
    ``V (D, k)``, so ``A ~ V diag(theta) V^T`` on the Krylov space (Golub & Van Loan
    2013, Alg. 10.1.1 with complete reorthogonalisation, §10.3.1). On breakdown (an
    invariant subspace is exhausted) the iteration restarts from a random vector
    orthogonal to the basis with a zero coupling, so ``k = D`` recovers the exact
    eigendecomposition.
    """
    d = v0.shape[0]
    k = n_krylov
    dtype = v0.dtype
    eps = jnp.finfo(dtype).eps
    Q = jnp.zeros((k + 1, d), dtype).at[0].set(v0 / jnp.linalg.norm(v0))
    keys = jr.split(key, k)

    def orth(w, Q):
        w = w - Q.T @ (Q @ w)
        return w - Q.T @ (Q @ w)

    def body(j, carry):
        Q, alpha, beta, scale = carry
        q = Q[j]
        w = mv(q)
        a = jnp.dot(q, w)
        w = orth(w, Q)
        b = jnp.linalg.norm(w)
        scale = jnp.maximum(scale, jnp.abs(a) + b)
        ok = b > jnp.sqrt(eps) * scale
        r = orth(jr.normal(keys[j], (d,), dtype), Q)
        r = r / jnp.maximum(jnp.linalg.norm(r), jnp.finfo(dtype).tiny)
        nxt = jnp.where(ok, w / jnp.where(ok, b, 1.0), r)
        Q = Q.at[j + 1].set(nxt)
        return Q, alpha.at[j].set(a), beta.at[j].set(jnp.where(ok, b, 0.0)), scale

    init = (Q, jnp.zeros(k, dtype), jnp.zeros(k, dtype), jnp.zeros((), dtype))
    Q, alpha, beta, _ = jax.lax.fori_loop(0, k, body, init)
    T = jnp.diag(alpha) + jnp.diag(beta[:-1], 1) + jnp.diag(beta[:-1], -1)
    theta, S = jnp.linalg.eigh(T)
    return theta, Q[:k].T @ S


@eqx.filter_jit
def _gauss_newton_low_rank(problem, chi_map, k: int, key):
    """Lanczos on the whitened Gauss-Newton Hessian ``G^T G`` at ``chi_map``, compiled once
    per problem structure (a second posterior of the same shapes does not recompile):
    the Ritz values ``theta (k,)`` (clipped at 0) and ``U = L V (D, k)``."""
    G = problem.whitened_jacobian(chi_map)
    mv = lambda v: G.T.mv(G.mv(v))
    k0, k1 = jr.split(key)
    # start in range(G^T) so that k = rank(G) steps already span the data-informed space
    v0 = G.T.mv(jr.normal(k0, (problem.n_obs,), chi_map.dtype))
    theta, V = lanczos(mv, v0, k, key=k1)
    theta = jnp.maximum(theta, 0.0)
    return theta, jax.vmap(problem.prior_sqrt.mv, in_axes=1, out_axes=1)(V)


#: A kept Lanczos direction whose variance reduction ``theta/(1 + theta)`` exceeds this,
#: when fewer directions were kept than the data can inform, flags a truncated posterior.
TRUNCATION_REDUCTION = 0.01


def _truncation(theta, k: int, rank_bound: int) -> dict:
    """Provenance of the low-rank truncation: ``smallest_kept_reduction`` (the least
    variance reduction ``theta/(1 + theta)`` among the ``k`` kept directions) and
    ``lowrank_truncated``: fewer directions kept than ``min(m, D)`` while the last one
    still reduces the variance by more than :data:`TRUNCATION_REDUCTION` — the data
    likely inform directions that were dropped, where the posterior keeps the prior's
    spread (conservative, too wide): raise ``n_krylov``."""
    if isinstance(theta, jax.core.Tracer):
        return {}
    smallest = float(np.min(np.asarray(theta) / (1.0 + np.asarray(theta))))
    return {
        "smallest_kept_reduction": smallest,
        "lowrank_truncated": bool(k < rank_bound and smallest > TRUNCATION_REDUCTION),
    }


class GaussNewtonHessian(AbstractPosteriorAdapter):
    """Low-rank Gauss-Newton posterior by Lanczos on ``G^T G`` (never materialised).

    Attributes:
        n_krylov: Lanczos iterations ``k`` (static; clipped to ``D``). The posterior is
            exact when ``k`` is at least the rank of ``G`` (``<= min(m, D)``); with fewer
            it keeps the ``k`` most data-informed directions and the prior elsewhere
            (the optimal low-rank update of Spantini et al. 2015, SIAM J. Sci. Comput.
            37:A2451).

    The covariance is a :class:`plumax_core.linalg.LowRankUpdate`
    ``B + U C U^T`` with ``U = L V`` and ``C = -diag(lambda / (1 + lambda))``: its
    diagonal (marginal variances) costs ``O(D k)`` plus ``diag(B)``. Provenance records
    ``smallest_kept_reduction`` and ``lowrank_truncated`` (:func:`_truncation`): a
    truncated posterior is too wide in the dropped directions.
    """

    n_krylov: int = eqx.field(static=True, default=20)

    def __check_init__(self):
        if not (isinstance(self.n_krylov, int) and self.n_krylov >= 1):
            raise ValueError(f"`n_krylov` must be a positive int, got {self.n_krylov!r}")

    def __call__(self, problem, chi_map, *, key=None):
        k = min(self.n_krylov, problem.dim)
        key = jr.key(0) if key is None else key
        theta, U = _gauss_newton_low_rank(problem, chi_map, k, key)
        C = jnp.diag(-theta / (1.0 + theta))
        cov = linalg.LowRankUpdate(problem.B, U, C)
        return AdapterOutput(
            cov,
            None,
            {
                "adapter": "GaussNewtonHessian",
                "n_krylov": k,
                "hessian_eigenvalues": np.asarray(theta[::-1]).tolist()
                if not isinstance(theta, jax.core.Tracer)
                else [],
                **_truncation(theta, k, min(problem.n_obs, problem.dim)),
            },
        )


def gaspari_cohn(r: Array) -> Array:
    """Gaspari & Cohn (1999) eq. 4.10 compactly supported correlation, ``r = dist / c``.

    Equals 1 at ``r = 0`` and 0 for ``r >= 2``.
    """
    r = jnp.abs(r)
    a = -0.25 * r**5 + 0.5 * r**4 + 0.625 * r**3 - 5.0 / 3.0 * r**2 + 1.0
    rs = jnp.where(r > 0, r, 1.0)
    b = (
        r**5 / 12.0
        - 0.5 * r**4
        + 0.625 * r**3
        + 5.0 / 3.0 * r**2
        - 5.0 * r
        + 4.0
        - 2.0 / (3.0 * rs)
    )
    return jnp.where(r <= 1.0, a, jnp.where(r < 2.0, b, 0.0))


class EnsembleCovariance(AbstractPosteriorAdapter):
    """Covariance and samples from ``M`` perturbed MAP analyses (``eqx.filter_vmap``).

    Attributes:
        n_members: ensemble size ``M >= 2`` (static).
        inflation: multiplicative anomaly inflation ``rho >= 1`` (covariance scaled by
            ``rho^2``; Anderson & Anderson 1999).
        localisation_radius: Gaspari-Cohn half-width ``c`` (correlations vanish beyond
            ``2c``), in the units of ``coords``; None = no localisation.
        coords: ``(D,)`` or ``(D, k)`` positions of the flat parameters for
            localisation; None = their indices.
        solver: optimistix solver of each member's MAP (see :class:`ThreeDVar`).
        rtol, atol, max_steps: solver settings.
    """

    n_members: int = eqx.field(static=True, default=64)
    inflation: float = eqx.field(static=True, default=1.0)
    localisation_radius: float | None = eqx.field(static=True, default=None)
    coords: Array | None = None
    solver: str = eqx.field(static=True, default="gauss_newton")
    rtol: float = eqx.field(static=True, default=1e-8)
    atol: float = eqx.field(static=True, default=1e-8)
    max_steps: int = eqx.field(static=True, default=100)

    def __check_init__(self):
        if not (isinstance(self.n_members, int) and self.n_members >= 2):
            raise ValueError(f"`n_members` must be an int >= 2, got {self.n_members!r}")
        if not (math.isfinite(self.inflation) and self.inflation >= 1.0):
            raise ValueError(f"`inflation` must be finite and >= 1, got {self.inflation}")
        if self.localisation_radius is not None and not self.localisation_radius > 0:
            raise ValueError(
                f"`localisation_radius` must be > 0 or None, got {self.localisation_radius}"
            )

    def members(self, problem: Problem, chi_map: Array, *, key: PRNGKeyArray) -> Array:
        """The ``(M, D)`` perturbed analyses ``z_i`` (before inflation)."""
        check_solver(self.solver, problem.likelihood)
        return _ensemble_members(
            problem, chi_map, key, self.n_members, self.solver, self.rtol, self.atol, self.max_steps
        )

    def __call__(self, problem, chi_map, *, key=None):
        if key is None:
            raise ValueError("`key` is required by EnsembleCovariance (it draws perturbations)")
        z = self.members(problem, chi_map, key=key)
        mean = jnp.mean(z, axis=0)
        anomalies = self.inflation * (z - mean)
        samples = mean + anomalies
        cov = anomalies.T @ anomalies / (self.n_members - 1)
        if self.localisation_radius is not None:
            d = problem.dim
            c = jnp.arange(d, dtype=cov.dtype) if self.coords is None else self.coords
            c = c.reshape(d, -1)
            dist = jnp.sqrt(jnp.sum((c[:, None, :] - c[None, :, :]) ** 2, axis=-1))
            cov = cov * gaspari_cohn(dist / self.localisation_radius)
        return AdapterOutput(
            lx.MatrixLinearOperator(cov, _PSD),
            samples[None],
            {
                "adapter": "EnsembleCovariance",
                "n_members": self.n_members,
                "inflation": self.inflation,
                "localisation_radius": self.localisation_radius,
            },
        )


@eqx.filter_jit
def _ensemble_members(problem: Problem, chi_map, key, m, solver, rtol, atol, max_steps):
    ky, kb = jr.split(key)
    eps = jr.normal(ky, (m, problem.n_obs), chi_map.dtype)
    eta = jr.normal(kb, (m, problem.dim), chi_map.dtype)
    y_pert = problem.y + jax.vmap(problem.obs_sqrt.mv)(eps)
    zb_pert = problem.z_b + jax.vmap(problem.prior_sqrt.mv)(eta)

    def one(y, zb):
        p = problem.with_data(y=y, z_b=zb)
        chi0 = p.to_control(problem.from_control(chi_map))
        res = solve_map(
            p,
            chi0,
            solver=solver,
            rtol=rtol,
            atol=atol,
            max_steps=max_steps,
        )
        return res.z

    return eqx.filter_vmap(one)(y_pert, zb_pert)


def select_adapter(analysis: str, problem: Problem) -> AbstractPosteriorAdapter:
    """The default analysis -> adapter mapping (the selection heuristic).

    * ``D <= 2000`` (the whitened Hessian fits in memory): :class:`LaplaceCovariance`
      — exact Gauss-Newton Hessian for a Gaussian likelihood, the full Hessian of
      ``J`` for a Student-t one;
    * larger ``D`` with a Gaussian likelihood (gridded fluxes, 4D-Var initial states):
      :class:`GaussNewtonHessian` with ``n_krylov = min(D, m, 100)`` — the data inform
      at most ``m`` directions, and Lanczos finds the dominant ones matrix-free;
    * larger ``D`` with a Student-t likelihood: :class:`EnsembleCovariance` (64
      members, L-BFGS), the only matrix-free option without a Gauss-Newton structure.

    ``analysis`` is the analysis' name; strong-constraint and incremental 4D-Var map to
    the matrix-free :class:`GaussNewtonHessian` already when ``D > 200``.
    """
    d, m = problem.dim, problem.n_obs
    big = d > (200 if analysis in ("StrongFourDVar", "IncrementalFourDVar") else 2000)
    if not big:
        return LaplaceCovariance()
    if problem.likelihood == "gaussian":
        return GaussNewtonHessian(n_krylov=int(min(d, m, 100)))
    return EnsembleCovariance(n_members=64, solver="lbfgs")
