"""The analysis protocol: every inference maps a :class:`Problem` to a ``Posterior``."""

import abc
from typing import Any

import equinox as eqx
from jaxtyping import PRNGKeyArray

from plumax_core import Posterior, Provenance, make_provenance

from ._problem import Problem


class AbstractAnalysis(eqx.Module):
    """An inference method (the oracle of the six-step cycle).

    Contract for every implementation:

    * ``posterior(problem, key=...)`` returns a :class:`plumax_core.Posterior` whose
      ``mean`` / ``cov`` / ``samples`` live in the unconstrained flat space of
      ``problem.param_spec`` (attached as ``param_spec``), never a bare point estimate;
    * its provenance is built by :func:`plumax_core.make_provenance` with ``n_iter``,
      ``J_star`` (None for samplers), ``converged`` and the hashes of the forward
      model, of the analysis itself and of ``(B, R)``;
    * on a linear-Gaussian problem the posterior is the closed-form one
      ``N(z_b + K(y - H z_b), (B^{-1} + H^T R^{-1} H)^{-1})`` (exactly for the
      Gaussian methods, within Monte-Carlo error for the samplers).
    """

    @abc.abstractmethod
    def posterior(self, problem: Problem, *, key: PRNGKeyArray | None = None) -> Posterior:
        """Run the analysis on ``problem``."""

    @property
    def name(self) -> str:
        return type(self).__name__


def provenance_for(
    problem: Problem,
    analysis: Any,
    *,
    n_iter: int,
    J_star: float | None,
    converged: bool | None,
    **extra: Any,
) -> Provenance:
    """:func:`plumax_core.make_provenance` filled from a problem and an analysis."""
    prior = problem.prior
    B = getattr(prior, "cov", None)
    return make_provenance(
        forward_model=problem.forward_model,
        obs_ops_used=(problem.forward_model.model_id,),
        n_iter=int(n_iter),
        J_star=None if J_star is None else float(J_star),
        converged=None if converged is None else bool(converged),
        analysis=analysis,
        B=B,
        R=problem.R,
        met=problem.met,
        analysis_name=type(analysis).__name__,
        likelihood=problem.likelihood,
        n_obs=int(problem.n_valid),
        **extra,
    )
