"""The analysis protocol: every inference maps a :class:`Problem` to a ``Posterior``."""

import abc
import functools
from collections.abc import Callable
from typing import Any, TypeVar

import equinox as eqx
from jaxtyping import PRNGKeyArray

from plumax_core import Posterior, Provenance, clean_errors, make_provenance

from ._problem import Problem

_F = TypeVar("_F", bound=Callable[..., Any])


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


def clean_input_errors(method: _F) -> _F:
    """Run ``method`` (an analysis' ``posterior``) under :func:`plumax_core.clean_errors`.

    The solvers compile the forward model; an input check of the model that fails there
    (e.g. a wind below the plume's 0.5 m/s floor) reaches the caller as
    :class:`plumax_core.InvalidInputError` (a ``ValueError`` with the check's message)
    instead of an equinox / XLA runtime error. Other errors pass through unchanged.
    """

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with clean_errors():
            return method(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


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
