"""Persistency and emission totals from a fitted population model.

* ``P(≥1 detected event in [t0, t1]) = 1 − exp(−p̄ Λ(t0, t1))`` for a Poisson process
  thinned with detection fraction ``p̄`` (``p̄ = 1`` for true events).
* Expected waiting time from ``t0`` to the next event: ``E[W] = ∫_0^∞ exp(−p̄ Λ(t0, t0+s)) ds``
  (``1/(p̄ λ)`` for a constant rate).
* Total emitted mass over ``[t0, t1]``: ``M_total = Λ(t0, t1) · E[Q] · D`` (kg) with ``D``
  the duration of one event, as posterior samples; compare with the naive sum of the
  detected rates ``Σ_i q_i D``, which misses every undetected event.
"""

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from plumax_core import Posterior
from plumax_core.validation import check_value

from ._intensity import AbstractIntensity, ConstantIntensity
from ._numerics import gauss_legendre


def prob_at_least_one(
    intensity: AbstractIntensity, t0: ArrayLike, t1: ArrayLike, *, p_detect: ArrayLike = 1.0
) -> Float[Array, "..."]:
    """Probability of at least one (detected) event in ``[t0, t1]`` (Poisson process)."""
    return -jnp.expm1(-jnp.asarray(p_detect) * intensity.integrated(t0, t1))


def expected_waiting_time(
    intensity: AbstractIntensity,
    t0: ArrayLike = 0.0,
    *,
    p_detect: ArrayLike = 1.0,
    horizon: float = 365.25 * 86400.0,
    n_panels: int = 512,
) -> Float[Array, ""]:
    """Expected time (s) from ``t0`` to the next (detected) event.

    Exact ``1/(p̄ λ)`` for :class:`ConstantIntensity`; otherwise composite Gauss-Legendre of
    the survival function ``exp(−p̄ Λ(t0, t0+s))`` on ``[0, horizon]`` (the mass beyond the
    horizon is neglected: choose it much longer than the typical waiting time).
    """
    p = jnp.asarray(p_detect)
    if isinstance(intensity, ConstantIntensity):
        return 1.0 / (p * intensity.rate)
    check_value("horizon", horizon, positive=True)
    x, w = gauss_legendre(8)
    edges = jnp.linspace(0.0, horizon, n_panels + 1)
    a, b = edges[:-1, None], edges[1:, None]
    s = 0.5 * (b - a) * jnp.asarray(x) + 0.5 * (a + b)
    t0 = jnp.asarray(t0)
    surv = jnp.exp(-p * intensity.integrated(jnp.broadcast_to(t0, s.shape), t0 + s))
    return jnp.sum(0.5 * (b - a) * jnp.asarray(w) * surv)


def total_emission_samples(
    model,
    posterior: Posterior,
    t0: ArrayLike,
    t1: ArrayLike,
    *,
    duration: float,
    key: PRNGKeyArray,
    n: int = 2000,
) -> Float[Array, " n"]:
    """Posterior draws of ``M_total = Λ(t0, t1) · E[Q] · duration`` (kg).

    Args:
        model: the :class:`~plumax_pod.AbstractPopulationModel` that was fitted.
        posterior: its fit (``param_spec`` must be ``model.param_spec``).
        t0, t1: window (s). duration: duration of one event (s). n: draws.
    """
    check_value("duration", duration, positive=True)
    z = posterior.sample(key, n)

    def one(zi):
        intensity, marks, _ = model.build(model.param_spec.from_unconstrained(zi))
        return intensity.integrated(t0, t1) * marks.mean() * duration

    return jax.vmap(one)(z)


def naive_total(q: ArrayLike, *, duration: float) -> Float[Array, ""]:
    """The naive catalogue total ``Σ_i q_i · duration`` (kg); biased low (missing mass)."""
    check_value("duration", duration, positive=True)
    q = jnp.asarray(q)
    check_value("q", q, nonneg=True)
    return jnp.sum(q) * duration


def summarise_samples(samples: ArrayLike, level: float = 0.95) -> dict[str, float]:
    """Mean, median and equal-tailed ``level`` interval of draws."""
    s = np.asarray(samples)
    lo, hi = np.quantile(s, [(1 - level) / 2, (1 + level) / 2])
    return {
        "mean": float(s.mean()),
        "median": float(np.median(s)),
        "lower": float(lo),
        "upper": float(hi),
        "level": level,
    }
