"""TARP: Tests of Accuracy with Random Points (expected coverage probability).

Lemos, Coogan, Hezaveh & Perreault-Levasseur (2023), "Sampling-based accuracy testing
of posterior estimators for general inference", ICML, arXiv:2302.03026. For each
simulation a reference point ``theta_r`` is drawn; the "credible region" of level
``alpha`` is the ball around ``theta_r`` holding a fraction ``alpha`` of the posterior
draws. The expected coverage probability ``ECP(alpha)`` (fraction of simulations whose
truth falls inside that ball) equals ``alpha`` for every ``alpha`` when the posterior
is exact, and (for suitable reference distributions) only then (their Theorem 3).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import ArrayLike, Float, PRNGKeyArray

from .._validation import as_finite_float_array, check_positive_int
from ._result import GateResult

__all__ = ["tarp_coverage"]

# Asymptotic Kolmogorov-Smirnov critical value at the 1% level: sqrt(-ln(0.01 / 2) / 2).
_KS_C_1PCT = math.sqrt(-math.log(0.005) / 2.0)


@functools.partial(jax.jit, static_argnames=("normalize", "randomize"))
def _coverage_fraction(samples, theta, refs, key, normalize: bool, randomize: bool):
    """Steps 1-3: the coverage fractions ``f_i``, shape ``(n_sims,)``."""
    n_sims, n_draws, d = samples.shape
    lo = jnp.min(theta, axis=0)
    span = jnp.max(theta, axis=0) - lo
    span = jnp.where(span > 0, span, jnp.ones_like(span))
    key_ref, key_u = jr.split(key)
    if refs is None:
        refs = lo + span * jr.uniform(key_ref, (n_sims, d), samples.dtype)
    if normalize:
        samples = (samples - lo) / span
        theta = (theta - lo) / span
        refs = (refs - lo) / span
    d_samples = jnp.linalg.norm(samples - refs[:, None, :], axis=-1)  # (n, L)
    d_true = jnp.linalg.norm(theta - refs, axis=-1)  # (n,)
    closer = jnp.sum(d_samples < d_true[:, None], axis=1)
    if not randomize:
        return closer / n_draws
    u = jr.uniform(key_u, (n_sims,), samples.dtype)
    return (closer + u) / (n_draws + 1)


def _ks_distance(f: np.ndarray) -> float:
    """``sup_a |#{f_i < a} / n - a|`` over ``a`` in [0, 1] (exact, from the order statistics)."""
    f = np.sort(f)
    n = f.size
    i = np.arange(1, n + 1)
    return float(max(np.max(i / n - f), np.max(f - (i - 1) / n)))


def tarp_coverage(
    posterior_samples: Float[ArrayLike, "n_sims L d"],
    theta_true: Float[ArrayLike, "n_sims d"],
    *,
    key: PRNGKeyArray,
    n_alphas: int = 101,
    tol: float | None = None,
    references: Float[ArrayLike, "n_sims d"] | Float[ArrayLike, " d"] | None = None,
    normalize: bool = True,
    randomize: bool = True,
) -> GateResult:
    """TARP expected-coverage test of posterior draws (Lemos et al. 2023).

    Algorithm (their Alg. 1, with the options below):

    1. If `normalize`, map every dimension affinely so the truths span ``[0, 1]``
       (``(x - min_i theta_i) / (max_i theta_i - min_i theta_i)``; a constant dimension
       is only shifted), applied alike to truths, draws and given references.
    2. References: one per simulation, uniform over the box spanned by the truths (the
       unit cube after normalisation), unless `references` are given (in the original
       units; shape ``(d,)`` is shared by all simulations).
    3. For simulation ``i``, ``k_i`` = number of draws with
       ``||theta_il - r_i|| < ||theta_i - r_i||``; the coverage fraction is
       ``f_i = (k_i + u_i) / (L + 1)`` with ``u_i ~ U(0, 1)`` when `randomize` (default),
       else ``f_i = k_i / L`` as in the paper. Under an exact posterior ``k_i`` is uniform
       on ``0..L`` (the truth is exchangeable with the draws), so the randomised
       ``f_i`` is exactly ``U(0, 1)``; the unrandomised one is uniform on a grid of step
       ``1 / L``, which biases the curve by up to ``1 / (L + 1)``.
    4. ``ECP(alpha) = mean_i [f_i < alpha]`` on ``n_alphas`` levels in ``[0, 1]``.

    Statistic: the maximum absolute deviation ``sup_alpha |ECP(alpha) - alpha|``,
    computed exactly over all ``alpha`` in [0, 1] (not only on the grid) from the order
    statistics of ``f``; it is the Kolmogorov-Smirnov distance between the ``f_i`` and
    ``U(0, 1)``. The area between the curve and the diagonal (trapezoid rule on the
    grid) is reported too. Default ``tol = 1.628 / sqrt(n_sims)``, the asymptotic
    KS critical value at the 1% level (``sqrt(-ln(0.005) / 2) / sqrt(n)``): an exact
    posterior fails with probability about 1% (slightly more for small ``n_sims``,
    where the asymptotic value is a little low, or with ``randomize=False``).

    Args:
        posterior_samples: draws, shape ``(n_sims, L, d)``, ``L >= 1``.
        theta_true: truths, shape ``(n_sims, d)``, ``n_sims >= 2``.
        key: PRNG key for the references and the randomisation.
        n_alphas: number of credibility levels in the reported curve, >= 2.
        tol: pass when the statistic is ``<= tol``; default the KS rule above.
        references: optional reference points, shape ``(n_sims, d)`` or ``(d,)``.
        normalize: rescale each dimension by the truths' range (step 1).
        randomize: randomised coverage fractions (step 3).

    Returns:
        `GateResult` named ``"tarp_coverage"``: statistic the maximum deviation,
        threshold `tol`; ``details`` has ``alphas``, ``ecp``, ``area``, the grid maximum
        deviation and the settings.

    Raises:
        ValueError: for mismatched shapes, ``L < 1``, fewer than 2 simulations, NaN/inf
            inputs or invalid settings.
    """
    samples = as_finite_float_array(posterior_samples, "posterior_samples", ndim=3)
    theta = as_finite_float_array(theta_true, "theta_true", ndim=2)
    n_alphas = check_positive_int(n_alphas, "n_alphas", minimum=2)
    n_sims, n_draws, d = samples.shape
    if n_draws < 1:
        raise ValueError("`posterior_samples` must hold L >= 1 draws per simulation (axis 1).")
    if theta.shape[0] != n_sims:
        raise ValueError(
            f"`theta_true` has {theta.shape[0]} simulations but `posterior_samples` has "
            f"{n_sims} (n_sims mismatch)."
        )
    if theta.shape[1] != d:
        raise ValueError(
            f"`theta_true` has d={theta.shape[1]} parameters but `posterior_samples` has d={d}."
        )
    if n_sims < 2:
        raise ValueError(f"`theta_true` must hold at least 2 simulations, got {n_sims}.")
    tol_rule = "given" if tol is not None else "1.628 / sqrt(n_sims) (KS, 1% level)"
    if tol is None:
        tol = _KS_C_1PCT / math.sqrt(n_sims)
    tol = float(tol)
    if not (np.isfinite(tol) and tol > 0):
        raise ValueError(f"`tol` must be finite and > 0, got {tol}.")

    dtype = jnp.result_type(samples.dtype, theta.dtype)
    refs = None
    if references is not None:
        refs = as_finite_float_array(references, "references").astype(dtype)
        if refs.shape == (d,):
            refs = jnp.broadcast_to(refs, (n_sims, d))
        elif refs.shape != (n_sims, d):
            raise ValueError(
                f"`references` must have shape ({n_sims}, {d}) or ({d},), got {refs.shape}."
            )
    f = _coverage_fraction(
        samples.astype(dtype), theta.astype(dtype), refs, key, normalize, randomize
    )
    f = np.asarray(f, dtype=np.float64)

    alphas = np.linspace(0.0, 1.0, n_alphas)
    ecp = np.mean(f[:, None] < alphas[None, :], axis=0)
    dev = np.abs(ecp - alphas)
    area = float(np.sum(0.5 * (dev[1:] + dev[:-1]) * np.diff(alphas)))
    statistic = _ks_distance(f)
    return GateResult(
        name="tarp_coverage",
        passed=bool(statistic <= tol),
        statistic=statistic,
        threshold=tol,
        details={
            "rule": "max_alpha |ECP(alpha) - alpha| <= tol",
            "alphas": alphas.tolist(),
            "ecp": ecp.tolist(),
            "area": area,
            "max_deviation_grid": float(dev.max()),
            "n_sims": int(n_sims),
            "n_posterior_samples": int(n_draws),
            "normalize": bool(normalize),
            "randomize": bool(randomize),
            "tol_rule": tol_rule,
        },
    )
