"""Calibration drivers for an amortized posterior over held-out simulations.

Amortization makes calibration checks cheap: the posterior of every held-out simulation
is one forward pass, so the coverage of the estimator can be tested over hundreds of
simulations (Talts et al. 2018; Lemos et al. 2023), which is impractical with MCMC.

* :func:`sbc_check` — simulation-based calibration (Talts, Betancourt, Simpson, Vehtari
  & Gelman 2018) through :func:`plumax_core.gates.sbc_ranks` /
  :func:`~plumax_core.gates.sbc_uniformity`. Optionally *stratified by the data*: the
  prior itself passes a plain SBC (its draws are exchangeable with the truth), so an
  estimator that ignores the observations is only caught when ranks are also tested
  within groups of similar observations (labels that depend on ``y`` only are allowed,
  see ``sbc_uniformity``).
* :func:`tarp_check` — TARP expected coverage (Lemos, Coogan, Hezaveh &
  Perreault-Levasseur 2023) through :func:`plumax_core.gates.tarp_coverage`.
* :func:`posterior_predictive_check` — replicated data from posterior draws compared with
  the observation through a chi-square discrepancy (Gelman, Meng & Stern 1996).

All ranks and distances are computed in the unconstrained flat space of the
``param_spec`` (monotone per-coordinate maps leave SBC ranks unchanged).
"""

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import PRNGKeyArray

from plumax_core import (
    AbstractForwardModel,
    AbstractNoiseModel,
    MetField,
    Observations,
    SimulationBank,
)
from plumax_core.gates import GateResult, sbc_ranks, sbc_uniformity, tarp_coverage

from ._npe import NPE


def _check(npe, bank):
    if not isinstance(npe, NPE):
        raise TypeError(f"`npe` must be an NPE, got {type(npe).__name__}")
    if not isinstance(bank, SimulationBank):
        raise TypeError(f"`bank` must be a SimulationBank, got {type(bank).__name__}")
    if bank.param_spec != npe.param_spec:
        raise ValueError("`bank.param_spec` differs from the estimator's")
    bank.check_prior_draws("a calibration check")


def _draws(npe, bank, key, n_posterior_samples, chunk=256):
    """``(N, L, D)`` draws for every simulation of ``bank``; fixed-size chunks (the last
    one padded) so one compiled program serves every call."""
    from ._npe import _sample_batch

    keys = jr.split(key, bank.n)
    size = min(chunk, bank.n)
    out = []
    for s in range(0, bank.n, size):
        values, valid = npe._check_batch(bank.values[s : s + size], bank.mask[s : s + size])
        ks = keys[s : s + size]
        m = values.shape[0]
        if m < size:
            pad = lambda a, m=m: jnp.concatenate(
                [a, jnp.broadcast_to(a[:1], (size - m, *a.shape[1:]))]
            )  # noqa: E501, E731
            values, valid, ks = pad(values), pad(valid), pad(ks)
        out.append(_sample_batch(npe, values, valid, ks, n_posterior_samples)[:m])
    return jnp.concatenate(out)


def _data_strata(npe: NPE, bank: SimulationBank, n_strata: int) -> np.ndarray:
    """Labels from the observations only: equal-count bins of the leading principal
    component of the standardised (masked-filled) observations."""
    feats = jax.vmap(npe.standardise)(bank.values, bank.mask)
    f = np.asarray(feats, dtype=np.float64).reshape(bank.n, -1)
    f = f - f.mean(axis=0)
    _, _, vt = np.linalg.svd(f, full_matrices=False)
    score = f @ vt[0]
    edges = np.quantile(score, np.linspace(0, 1, n_strata + 1)[1:-1])
    return np.searchsorted(edges, score).astype(np.int64)


def sbc_check(
    npe: NPE,
    bank: SimulationBank,
    *,
    key: PRNGKeyArray,
    n_posterior_samples: int = 99,
    n_strata: int = 0,
    alpha: float = 0.01,
    bonferroni: bool = False,
) -> GateResult:
    """Simulation-based calibration of ``npe`` over held-out simulations.

    Args:
        npe: the estimator.
        bank: held-out simulations (never the training bank).
        key: PRNG key.
        n_posterior_samples: draws L per simulation (ranks take L + 1 values).
        n_strata: with ``k >= 2``, also test within ``k`` equal-count groups of
            observations (quantiles of the leading principal component of the
            standardised observations): catches an estimator that ignores the data.
        alpha: significance level (the gate fails at ``p < alpha``).
        bonferroni: correct ``alpha`` for the number of tests.

    Returns:
        The :func:`~plumax_core.gates.sbc_uniformity` result; ``details["ranks_source"]``
        says how ranks were computed.
    """
    _check(npe, bank)
    if bank.n < 20:
        raise ValueError(f"`bank` must hold at least 20 simulations for SBC, got {bank.n}")
    k_draw, k_tie = jr.split(key)
    samples = _draws(npe, bank, k_draw, n_posterior_samples)
    ranks = sbc_ranks(bank.theta, samples, key=k_tie)
    strata = None
    if n_strata:
        if n_strata < 2:
            raise ValueError(f"`n_strata` must be 0 or >= 2, got {n_strata}")
        strata = _data_strata(npe, bank, n_strata)
    return sbc_uniformity(
        ranks, n_posterior_samples, alpha=alpha, strata=strata, bonferroni=bonferroni
    )


def tarp_check(
    npe: NPE,
    bank: SimulationBank,
    *,
    key: PRNGKeyArray,
    n_posterior_samples: int = 99,
    references: str = "posterior",
    tol: float | None = None,
) -> GateResult:
    """TARP expected-coverage test of ``npe`` over held-out simulations (Lemos et al. 2023).

    Args:
        npe: the estimator.
        bank: held-out simulations.
        key: PRNG key.
        n_posterior_samples: draws per simulation.
        references: ``"uniform"`` — reference points uniform over the box spanned by
            the held-out truths (independent of the data: TARP is then a necessary
            condition only, and an estimator that ignores the data and returns the
            prior passes it); ``"posterior"`` (default) — ``r_i = m_i + s_i * eps_i``
            with ``m_i, s_i`` the mean and std of the estimator's own draws for
            observation ``i`` and ``eps_i ~ N(0, I)``: a reference distribution that
            depends on the data, as Lemos et al. (2023, Theorem 3) require for TARP to
            be sufficient. For an exact posterior the expected coverage is calibrated
            for any data-dependent reference, so this stays a valid test.
        tol: tolerance; default the 1% Kolmogorov-Smirnov rule of
            :func:`~plumax_core.gates.tarp_coverage`.
    """
    _check(npe, bank)
    if references not in ("uniform", "posterior"):
        raise ValueError(f"`references` must be 'uniform' or 'posterior', got {references!r}")
    k_draw, k_ref, k_tarp = jr.split(key, 3)
    samples = _draws(npe, bank, k_draw, n_posterior_samples)
    refs = None
    if references == "posterior":
        eps = jr.normal(k_ref, (bank.n, npe.dim), samples.dtype)
        refs = jnp.mean(samples, axis=1) + jnp.std(samples, axis=1) * eps
    result = tarp_coverage(samples, bank.theta, key=k_tarp, tol=tol, references=refs)
    return result


def posterior_predictive_check(
    npe: NPE,
    model: AbstractForwardModel,
    met: MetField,
    noise: AbstractNoiseModel,
    observation: Observations,
    *,
    key: PRNGKeyArray,
    n_samples: int = 200,
    alpha: float = 0.01,
) -> GateResult:
    """Posterior-predictive p-value of one observation (Gelman, Meng & Stern 1996).

    For draws ``theta_s ~ q(theta | y)``: ``y_rep_s ~ noise(model(theta_s))`` and the
    discrepancy ``T(y, theta) = sum_valid ((y - f(theta)) / sigma)^2`` with ``sigma`` the
    observation's own error (``Observations.sigma_full``). The p-value is
    ``P(T(y_rep, theta) >= T(y, theta))``; the check fails when it is below ``alpha``
    or above ``1 - alpha`` (the model, the noise model or the estimator do not
    reproduce the data).

    Raises:
        ValueError: the observation carries no ``sigma``, or bad shapes (see ``posterior``).
    """
    if not isinstance(observation, Observations):
        raise TypeError("`observation` must be an Observations (with `sigma`)")
    if npe.obs_shape != observation.values.shape:
        raise ValueError(
            f"`observation` must have shape {npe.obs_shape}, got {observation.values.shape}"
        )
    sigma = observation.sigma_full()
    k_post, k_rep = jr.split(key)
    post = npe.posterior(observation, key=k_post, n_samples=n_samples)
    theta = post.flat_samples()
    spec = npe.param_spec
    valid = observation.valid()
    y = observation.filled(0.0)

    def one(t, k):
        obs = model(spec.from_unconstrained(t), met)
        f = obs.values
        s_model = obs.sigma_full() if (obs.sigma is not None or obs.noise is not None) else None
        y_rep, rep_valid = noise(f, s_model, obs.valid(), key=k)
        both = valid & rep_valid
        t_obs = jnp.sum(jnp.where(both, ((y - f) / sigma) ** 2, 0.0))
        t_rep = jnp.sum(jnp.where(both, ((jnp.where(both, y_rep, 0.0) - f) / sigma) ** 2, 0.0))
        return t_obs, t_rep

    t_obs, t_rep = jax.jit(jax.vmap(one))(theta, jr.split(k_rep, theta.shape[0]))
    p = float(jnp.mean(t_rep >= t_obs))
    return GateResult(
        name="posterior_predictive",
        passed=bool(alpha <= p <= 1 - alpha),
        statistic=p,
        threshold=alpha,
        details={
            "rule": "alpha <= p <= 1 - alpha",
            "mean_discrepancy_observed": float(jnp.mean(t_obs)),
            "mean_discrepancy_replicated": float(jnp.mean(t_rep)),
            "n_valid": int(jnp.sum(valid)),
            "n_samples": int(n_samples),
        },
    )


def calibration_report(
    npe: NPE,
    bank: SimulationBank,
    *,
    key: PRNGKeyArray,
    n_posterior_samples: int = 99,
    n_strata: int = 0,
) -> Mapping[str, GateResult]:
    """``{"sbc": ..., "tarp": ...}`` over the same held-out simulations."""
    k1, k2 = jr.split(key)
    return {
        "sbc": sbc_check(
            npe, bank, key=k1, n_posterior_samples=n_posterior_samples, n_strata=n_strata
        ),
        "tarp": tarp_check(npe, bank, key=k2, n_posterior_samples=n_posterior_samples),
    }
