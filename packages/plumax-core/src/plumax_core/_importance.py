"""Importance weights of simulations drawn from a proposal instead of the prior.

A bank simulated from a proposal ``q`` stands for one simulated from the prior ``p``
once each simulation carries the weight ``w = p(theta) / q(theta)``: any average over
the prior is the weighted average over the bank (importance sampling; Kahn & Marshall
1953). The weights are kept as logs, and Kish's effective sample size says how many
prior simulations the weighted bank is worth (Kish 1965, eq. 11.7.5).
"""

import jax.numpy as jnp
from jaxtyping import Array, Float

from ._prior import AbstractPrior


def importance_log_weight(
    prior: AbstractPrior, proposal: AbstractPrior, theta: Float[Array, "*batch D"]
) -> Float[Array, "*batch"]:
    """``log prior(theta) - log proposal(theta)`` of unconstrained parameters.

    Both densities are of the same unconstrained vector, so the Jacobians of the
    parameter transforms cancel.

    Args:
        prior: the target distribution.
        proposal: the distribution ``theta`` was drawn from (same ``param_spec``).
        theta: ``(*batch, D)`` unconstrained flat parameters.
    """
    return prior.log_prob_unconstrained(theta) - proposal.log_prob_unconstrained(theta)


def kish_effective_sample_size(log_weight: Float[Array, " n"]) -> Float[Array, ""]:
    """Kish's effective sample size ``(sum w)^2 / sum w^2`` of importance weights given
    as logs (shifted by their maximum first, so no weight overflows; traceable)."""
    w = jnp.exp(log_weight - jnp.max(log_weight))
    return jnp.sum(w) ** 2 / jnp.sum(w**2)
