"""Simulation-based calibration (SBC): rank statistics and their uniformity test.

Talts, Betancourt, Simpson, Vehtari & Gelman (2018), "Validating Bayesian inference
algorithms with simulation-based calibration", arXiv:1804.06788. If
``theta ~ prior``, ``y ~ p(y | theta)`` and ``theta_1..L`` are independent draws from
the exact posterior ``p(theta | y)``, the rank of ``theta`` among the draws is uniform on
``{0, ..., L}`` (their Theorem 1). Any systematic departure flags a miscalibrated
posterior: U shape = too narrow, hump = too wide, slope = biased.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax.scipy.special import gammaincc
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray

from .._validation import as_finite_float_array, check_positive_int, check_probability
from ._result import GateResult

__all__ = ["chi2_sf", "sbc_ranks", "sbc_uniformity"]


def chi2_sf(x: Float[ArrayLike, "*shape"], dof: float) -> Float[Array, "*shape"]:
    """Survival function ``P(X > x)`` of a χ² variable with `dof` degrees of freedom.

    ``Q(dof / 2, x / 2)``, the regularised upper incomplete gamma function
    (Abramowitz & Stegun 26.4.19), via `jax.scipy.special.gammaincc`.
    """
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    return _chi2_sf(x, jnp.asarray(dof, x.dtype))


@jax.jit
def _chi2_sf(x, dof):
    # `dof` is traced, so one compilation serves every number of bins.
    return gammaincc(dof / 2, x / 2)


def sbc_ranks(
    theta_true: Float[ArrayLike, "n_sims d"],
    posterior_samples: Float[ArrayLike, "n_sims L d"],
    *,
    key: PRNGKeyArray | None = None,
) -> Int[Array, "n_sims d"]:
    """SBC rank of each true parameter among its posterior draws (Talts et al. 2018).

    ``rank[i, j] = #{l : posterior_samples[i, l, j] < theta_true[i, j]}``, an integer in
    ``{0, ..., L}``.

    Ties: draws exactly equal to the truth (possible for discrete or clipped
    parameters) are counted as below the truth with a uniformly random share when a
    `key` is given (rank ``= #less + U{0, ..., #equal}``), which keeps the ranks
    uniform under calibration; without a key, ties count as *not* below (the rank is
    the number of strictly smaller draws). For continuous posteriors ties have
    probability zero and the key is irrelevant.

    Args:
        theta_true: true parameters, shape ``(n_sims, d)``.
        posterior_samples: posterior draws per simulation, shape ``(n_sims, L, d)``,
            ``L >= 1``.
        key: optional PRNG key for random tie breaking.

    Returns:
        Integer ranks, shape ``(n_sims, d)``.

    Raises:
        ValueError: for wrong ranks/shapes, ``L < 1``, mismatched ``n_sims`` or ``d``,
            or NaN/inf inputs.
    """
    theta = as_finite_float_array(theta_true, "theta_true", ndim=2)
    samples = as_finite_float_array(posterior_samples, "posterior_samples", ndim=3)
    if samples.shape[1] < 1:
        raise ValueError("`posterior_samples` must hold L >= 1 draws per simulation (axis 1).")
    if samples.shape[0] != theta.shape[0]:
        raise ValueError(
            f"`posterior_samples` has {samples.shape[0]} simulations but `theta_true` has "
            f"{theta.shape[0]} (n_sims mismatch)."
        )
    if samples.shape[2] != theta.shape[1]:
        raise ValueError(
            f"`posterior_samples` has d={samples.shape[2]} parameters but `theta_true` has "
            f"d={theta.shape[1]}."
        )
    return _ranks(theta, samples, key)


@jax.jit
def _ranks(theta, samples, key):
    below = jnp.sum(samples < theta[:, None, :], axis=1)
    if key is None:
        return below.astype(jnp.int32)
    ties = jnp.sum(samples == theta[:, None, :], axis=1)
    u = jr.uniform(key, below.shape)
    share = jnp.minimum(jnp.floor(u * (ties + 1)), ties).astype(below.dtype)
    return (below + share).astype(jnp.int32)


def _default_n_bins(n_sims: int, n_rank_values: int) -> int:
    return int(min(max(n_sims // 10, 2), 20, n_rank_values))


def _bin_widths(n_bins: int, n_rank_values: int) -> np.ndarray:
    """Number of rank values in each bin ``j``: ranks ``r`` with ``r * B // (L + 1) == j``."""
    j = np.arange(n_bins + 1, dtype=np.int64)
    edges = -((-j * n_rank_values) // n_bins)  # ceil(j (L + 1) / B)
    return np.diff(edges)


@functools.partial(jax.jit, static_argnames=("n_bins", "n_rank_values"))
def _chi2_counts(ranks, n_bins: int, n_rank_values: int):
    """Per-parameter bin counts ``(B, d)`` and Pearson χ² ``(d,)`` for ranks ``(n, d)``."""
    n = ranks.shape[0]
    bins = (ranks.astype(jnp.int32) * n_bins) // n_rank_values
    counts = jax.vmap(lambda b: jnp.bincount(b, length=n_bins), in_axes=1, out_axes=1)(bins)
    widths = jnp.asarray(_bin_widths(n_bins, n_rank_values))
    dtype = jnp.result_type(float)
    expected = n * widths.astype(dtype) / n_rank_values
    stat = jnp.sum((counts - expected[:, None]) ** 2 / expected[:, None], axis=0)
    return counts, stat


def _check_ranks(ranks, n_posterior_samples: int) -> np.ndarray:
    arr = np.asarray(ranks)  # host-side checks: nothing to compile
    if arr.ndim != 2:
        raise ValueError(f"`ranks` must have shape (n_sims, d), got {arr.shape}.")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"`ranks` must be non-empty, got shape {arr.shape}.")
    if arr.dtype.kind == "f":
        if np.isnan(arr).any():
            raise ValueError("`ranks` contains NaN.")
        if not np.all(arr == np.round(arr)):
            raise ValueError("`ranks` must be integer-valued.")
    elif arr.dtype.kind not in "iu":
        raise ValueError(f"`ranks` must be integer-valued, got dtype {arr.dtype}.")
    if arr.min() < 0 or arr.max() > n_posterior_samples:
        raise ValueError(
            f"`ranks` must lie in 0..n_posterior_samples={n_posterior_samples}; got values in "
            f"[{arr.min()}, {arr.max()}]."
        )
    return arr.astype(np.int32)


def _test(ranks: np.ndarray, n_bins: int | None, n_rank_values: int) -> dict:
    b = _default_n_bins(ranks.shape[0], n_rank_values) if n_bins is None else n_bins
    counts, stat = _chi2_counts(ranks, n_bins=b, n_rank_values=n_rank_values)
    p = chi2_sf(stat, b - 1)
    return {
        "n_sims": int(ranks.shape[0]),
        "n_bins": b,
        "chi2": np.asarray(stat, dtype=np.float64).tolist(),
        "p_values": np.asarray(p, dtype=np.float64).tolist(),
        "counts": np.asarray(counts).T.tolist(),
    }


def sbc_uniformity(
    ranks: Int[ArrayLike, "n_sims d"],
    n_posterior_samples: int,
    *,
    n_bins: int | None = None,
    alpha: float = 0.01,
    strata: Int[ArrayLike, " n_sims"] | None = None,
    bonferroni: bool = False,
) -> GateResult:
    """Pearson χ² test that SBC ranks are uniform on ``{0, ..., L}`` (Talts et al. 2018).

    For each parameter the ``L + 1`` possible ranks are grouped into `n_bins` bins of
    (as nearly as possible) equal width: rank ``r`` goes to bin ``r * B // (L + 1)``,
    so widths differ by at most one when ``B`` does not divide ``L + 1``; the expected
    count of a bin is ``n_sims * width / (L + 1)``, so the test stays exact for any
    ``B``. ``X² = sum (observed - expected)² / expected`` is referred to a χ² law with
    ``B - 1`` degrees of freedom: ``p = Q((B - 1) / 2, X² / 2)`` (`chi2_sf`).

    Default bins: ``B = clip(n_sims // 10, 2, min(20, L + 1))``, so the expected count
    per bin is at least 10 whenever ``n_sims >= 20`` (the χ² approximation needs about
    5 or more), with at most 20 bins so broad departures keep their power.

    Decision: the gate fails when any parameter's p-value (pooled, or in any stratum)
    is below the threshold. By default the threshold is `alpha` itself for every test,
    as the contract states ("fails at p < 0.01"): with ``d`` parameters and ``s``
    strata a calibrated posterior fails by chance with probability up to about
    ``alpha * d * (1 + s)``. With ``bonferroni=True`` the threshold is
    ``alpha / (d * (1 + s))``, bounding that family-wise false-failure rate by `alpha`.

    Args:
        ranks: SBC ranks from `sbc_ranks`, integers in ``0..L``, shape ``(n_sims, d)``.
        n_posterior_samples: ``L``, the number of posterior draws per rank, >= 1.
        n_bins: number of bins ``B``, ``2 <= B <= L + 1``; default as above (per
            stratum, from its own size, when `strata` is given).
        alpha: significance level in (0, 1).
        strata: optional integer regime labels, shape ``(n_sims,)``; the test is then
            also run within each stratum (e.g. stable vs convective met), and any failing
            stratum fails the gate. Labels must depend only on the data or the regime
            (observations, meteorology), never on the true parameters: ranks are
            uniform given ``y`` but not given ``theta``, so strata built from the truth
            make even an exact posterior fail.
        bonferroni: divide `alpha` by the number of tests (see above).

    Returns:
        `GateResult` named ``"sbc_uniformity"``: statistic the smallest p-value,
        threshold the (possibly corrected) alpha, pass when ``statistic >= threshold``.
        ``details`` holds per-parameter ``p_values``, ``chi2`` and bin ``counts``
        (``d`` lists of ``B``), and under ``"strata"`` the same per stratum label.

    Raises:
        ValueError: for ranks with NaN, non-integers, values outside ``0..L`` or wrong
            shape; ``L < 1``; invalid `n_bins`, `alpha` or `strata`.
    """
    n_post = check_positive_int(n_posterior_samples, "n_posterior_samples")
    alpha = check_probability(alpha, "alpha")
    r = _check_ranks(ranks, n_post)
    n_sims, d = r.shape
    n_rank_values = n_post + 1
    if n_bins is not None:
        n_bins = check_positive_int(n_bins, "n_bins", minimum=2)
        if n_bins > n_rank_values:
            raise ValueError(
                f"`n_bins`={n_bins} exceeds the number of possible ranks L + 1 = {n_rank_values}."
            )
    pooled = _test(r, n_bins, n_rank_values)
    per_stratum: dict[str, dict] = {}
    if strata is not None:
        s = np.asarray(strata)
        if s.shape != (n_sims,):
            raise ValueError(f"`strata` must have shape (n_sims,) = ({n_sims},), got {s.shape}.")
        if s.dtype.kind == "f":
            if np.isnan(s).any() or not np.all(s == np.round(s)):
                raise ValueError("`strata` must hold integer labels (no NaN).")
            s = s.astype(np.int64)
        elif s.dtype.kind not in "iub":
            raise ValueError(f"`strata` must hold integer labels, got dtype {s.dtype}.")
        for label in np.unique(s):
            rows = np.flatnonzero(s == label)
            per_stratum[str(int(label))] = _test(r[rows], n_bins, n_rank_values)
    n_tests = d * (1 + len(per_stratum))
    threshold = alpha / n_tests if bonferroni else alpha
    failing = [f"pooled/param {j}" for j, p in enumerate(pooled["p_values"]) if p < threshold]
    for label, res in per_stratum.items():
        failing += [
            f"stratum {label}/param {j}" for j, p in enumerate(res["p_values"]) if p < threshold
        ]
    all_p = pooled["p_values"] + [p for res in per_stratum.values() for p in res["p_values"]]
    statistic = min(all_p)
    return GateResult(
        name="sbc_uniformity",
        passed=not failing,
        statistic=statistic,
        threshold=threshold,
        details={
            "rule": "every p-value >= threshold",
            **pooled,
            "dof": pooled["n_bins"] - 1,
            "n_posterior_samples": n_post,
            "alpha": alpha,
            "bonferroni": bool(bonferroni),
            "n_tests": n_tests,
            "failing": failing,
            "strata": per_stratum,
        },
    )
