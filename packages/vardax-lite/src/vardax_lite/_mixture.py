r"""A mixture of Laplace approximations at the distinct modes of a posterior.

A single Laplace approximation describes one mode. When the posterior has several
(a narrow plume seen in pixels larger than its width: the likelihood of the lateral
position is rugged at the sub-pixel scale; a faint plume that several rows of noise
could explain), the one the optimiser found is reported with a width that knows nothing
of the others, and intervals miss. :class:`LaplaceMixture` searches from several starts,
keeps the distinct optima and weights each Gaussian by its Laplace estimate of the
posterior mass around it (MacKay 2003, *Information Theory, Inference and Learning
Algorithms*, ch. 27):

.. math::

    w_k \propto \exp(-J_k)\,\lvert\Sigma_k\rvert^{1/2}, \qquad
    p(z \mid y) \approx \sum_k w_k\, \mathcal N(z;\, z_k, \Sigma_k),

with ``J_k`` the cost (negative log posterior up to a constant) at mode ``k`` and
``Σ_k`` its Laplace covariance (in the unconstrained space). The posterior is returned
as draws from the mixture. With one mode it is the plain Laplace approximation (mean
and covariance, no draws).
"""

from __future__ import annotations

import math

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from plumax_core import Posterior

from ._adapters import LaplaceCovariance
from ._analysis import AbstractAnalysis, clean_input_errors, provenance_for
from ._problem import Problem
from ._var3d import ThreeDVar

__all__ = ["LaplaceMixture"]


def _try_solve(base: ThreeDVar, problem: Problem, z0):
    """``base.solve(problem, z0)``, or None when the search hits a non-finite model
    value (a start outside the model's support): another start may still succeed."""
    try:
        return base.solve(problem, z0)
    except eqx.EquinoxRuntimeError:
        return None


class LaplaceMixture(AbstractAnalysis):
    """Multi-start MAP + a Laplace covariance at each distinct mode, mixed by evidence.

    Attributes:
        base: the :class:`ThreeDVar` that finds each mode (its adapter must give a
            covariance; default Gauss-Newton with :class:`LaplaceCovariance`).
        n_samples: draws from the mixture (static).
        separation: two optima closer than this in whitened distance (prior standard
            deviations) are one mode (static).
        max_delta_j: modes with a cost above the best by more than this are dropped
            (their weight is below ``exp(-max_delta_j)``; static).

    Raises:
        ValueError: ``n_samples < 2`` or a non-positive ``separation`` or
            ``max_delta_j``.
    """

    base: ThreeDVar = eqx.field(default_factory=lambda: ThreeDVar(adapter=LaplaceCovariance()))
    n_samples: int = eqx.field(static=True, default=4000)
    separation: float = eqx.field(static=True, default=0.5)
    max_delta_j: float = eqx.field(static=True, default=20.0)

    def __check_init__(self):
        if isinstance(self.n_samples, bool) or not isinstance(self.n_samples, int):
            raise ValueError(f"`n_samples` must be an int >= 2, got {self.n_samples!r}")
        if self.n_samples < 2:
            raise ValueError(f"`n_samples` must be an int >= 2, got {self.n_samples!r}")
        for name in ("separation", "max_delta_j"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"`{name}` must be finite and > 0, got {v}")

    @clean_input_errors
    def posterior(
        self,
        problem: Problem,
        *,
        key: PRNGKeyArray | None = None,
        starts: Float[Array, "K D"] | None = None,
    ) -> Posterior:
        """Search from ``starts`` (unconstrained ``(K, D)``; default the prior mean),
        mix the Laplace approximations of the distinct modes, and draw from the mixture
        (``key``, default ``jax.random.key(0)``).

        ``provenance`` records ``n_modes``, the mode ``weights`` and costs ``mode_J``;
        ``converged`` is that of the best mode. One mode: that mode's Laplace posterior
        (``mean``, ``cov``); several: ``n_samples`` draws from the mixture.

        A start from which the search meets a non-finite model value is skipped.

        Raises:
            ValueError: ``starts`` not ``(K, D)`` for the problem's ``D``, or no start
                reaching a finite cost.
        """
        d = problem.dim
        if starts is None:
            starts = problem.z_b[None]
        starts = jnp.asarray(starts)
        if starts.ndim != 2 or starts.shape[1] != d:
            raise ValueError(f"`starts` must be (K, {d}), got {starts.shape}")
        found = [r for r in (_try_solve(self.base, problem, z0) for z0 in starts) if r]
        found = [r for r in found if np.isfinite(float(r.J))]
        if not found:
            raise ValueError("no MAP search reached a finite cost from the given `starts`")
        found.sort(key=lambda r: float(r.J))
        modes = []
        for r in found:
            if float(r.J) - float(found[0].J) > self.max_delta_j:
                break
            chi = np.asarray(r.chi, np.float64)
            if all(np.linalg.norm(chi - np.asarray(m.chi)) > self.separation for m in modes):
                modes.append(r)
        posts = [
            self.base.posterior(problem, key=key, z0=m.z) for m in modes
        ]  # each re-solves from its optimum (one step) and adds its covariance
        means = np.stack([np.asarray(p.mean, np.float64) for p in posts])
        covs = np.stack([np.asarray(p.cov.as_matrix(), np.float64) for p in posts])
        costs = np.array([float(p.provenance["J_star"]) for p in posts])
        logw = np.empty(len(posts))
        for k in range(len(posts)):
            sign, logdet = np.linalg.slogdet(covs[k])
            logw[k] = -costs[k] + 0.5 * logdet if sign > 0 else -np.inf
        if not np.any(np.isfinite(logw)):
            raise ValueError("no mode has a positive-definite Laplace covariance")
        w = np.exp(logw - np.max(logw))
        w /= w.sum()
        extra = dict(
            n_modes=len(posts), weights=[float(v) for v in w], mode_J=[float(c) for c in costs]
        )
        if len(posts) == 1:  # the plain Laplace posterior: exact mean and covariance
            p = posts[0]
            prov = provenance_for(
                problem,
                self,
                n_iter=int(p.provenance["n_iter"]),
                J_star=float(costs[0]),
                converged=p.provenance.get("converged"),
                adapter="laplace",
                **extra,
            )
            return Posterior(p.mean, p.cov, None, provenance=prov, param_spec=problem.param_spec)
        key = jr.key(0) if key is None else key
        k_pick, k_draw = jr.split(key)
        pick = np.asarray(jr.choice(k_pick, len(posts), (self.n_samples,), p=jnp.asarray(w)))
        eps = np.asarray(jr.normal(k_draw, (self.n_samples, d)), np.float64)
        chol = np.stack(
            [
                np.linalg.cholesky(c) if np.isfinite(lw) else np.zeros((d, d))
                for c, lw in zip(covs, logw, strict=True)
            ]
        )
        draws = means[pick] + np.einsum("nij,nj->ni", chol[pick], eps)
        dtype = jnp.result_type(float)
        best = posts[int(np.argmax(w))]
        prov = provenance_for(
            problem,
            self,
            n_iter=sum(int(p.provenance["n_iter"]) for p in posts),
            J_star=float(costs.min()),
            converged=best.provenance.get("converged"),
            adapter="laplace-mixture",
            **extra,
        )
        samples = jnp.asarray(draws[None], dtype)
        return Posterior(
            jnp.asarray(draws.mean(0), dtype),
            None,
            samples,
            provenance=prov,
            param_spec=problem.param_spec,
        )
