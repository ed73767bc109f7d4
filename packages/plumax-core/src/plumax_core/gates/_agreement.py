"""Posterior agreement gate: a candidate posterior against the oracle's (cycle step 6)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._validation import as_finite_float_array
from ._result import GateResult

__all__ = ["posterior_agreement"]


def _mean_std(post: Any, name: str):
    """Extract flat ``(mean, std)`` arrays from a duck-typed posterior or a tuple."""
    if isinstance(post, tuple | list):
        if len(post) != 2:
            raise ValueError(f"`{name}` as a tuple must be (mean, std), got length {len(post)}.")
        mean, std = post
    elif hasattr(post, "mean") and callable(getattr(post, "std", None)):
        mean = post.mean
        if callable(mean):
            # numpy/JAX arrays have `.mean()` and `.std()` methods: not a posterior.
            raise ValueError(
                f"`{name}` must be a posterior (attribute `.mean`, method `.std()`) or a "
                f"(mean, std) tuple, got {type(post).__name__}."
            )
        std = post.std()
    else:
        raise ValueError(
            f"`{name}` must be a posterior (attribute `.mean`, method `.std()`) or a "
            f"(mean, std) tuple, got {type(post).__name__}."
        )
    mean = as_finite_float_array(mean, f"{name} mean").reshape(-1)
    std = as_finite_float_array(std, f"{name} std").reshape(-1)
    if mean.shape != std.shape:
        raise ValueError(f"`{name}`: mean has {mean.size} elements but std has {std.size}.")
    if not (np.asarray(std) > 0).all():
        raise ValueError(f"`{name} std` must be strictly positive.")
    return mean, std


@jax.jit
def _z_and_ratio(mu_c, sd_c, mu_o, sd_o):
    return jnp.abs(mu_c - mu_o) / sd_o, jnp.maximum(sd_c / sd_o, sd_o / sd_c)


def posterior_agreement(
    candidate: Any,
    oracle: Any,
    *,
    max_z: float = 1.0,
    max_cv_ratio: float = 2.0,
) -> GateResult:
    """Compare a candidate posterior's marginals with the oracle's (docs/architecture.md, step 6).

    For every parameter ``i`` (after flattening the means to shape ``(d,)``):

    * standardised mean error ``z_i = |mu_c_i - mu_o_i| / sigma_o_i``, and
    * spread ratio ``r_i = max(sigma_c_i / sigma_o_i, sigma_o_i / sigma_c_i) >= 1``.

    `r_i` is the ratio of the two coefficients of variation ``sigma / |mu|`` *when the
    means agree* (which the `z` criterion enforces): with ``mu_c ≈ mu_o`` the ``|mu|``
    cancels. The coefficient of variation itself is not used because parameters such as
    a source position or a log-emission can have a posterior mean at (or near) zero,
    where ``sigma / |mu|`` is undefined or arbitrarily large for a perfectly good
    posterior. The ratio is symmetric, so a candidate twice too narrow fails like one
    twice too wide.

    The gate passes when every ``z_i <= max_z`` **and** every ``r_i <= max_cv_ratio``
    (both inclusive: a value exactly at its limit passes).

    Args:
        candidate: the posterior under test: an object with attribute ``.mean`` (shape
            ``(d,)``, or any shape that is flattened) and method ``.std()`` (same shape)
            such as `plumax_core.Posterior`, or a ``(mean, std)`` tuple of arrays.
        oracle: the reference (step-2) posterior, in the same forms.
        max_z: largest allowed ``z_i`` (in oracle standard deviations), > 0.
        max_cv_ratio: largest allowed spread ratio ``r_i``, >= 1.

    Returns:
        A `GateResult` named ``"posterior_agreement"`` whose statistic is the worst
        normalised violation ``max(max_i z_i / max_z, max_i r_i / max_cv_ratio)`` with
        threshold 1; ``details`` holds the per-parameter lists ``z`` and ``cv_ratio``,
        their maxima and the indices that fail. (`passed` is decided on the raw
        comparisons, so rounding in the normalisation cannot flip it.)

    Raises:
        ValueError: for unrecognised inputs, mismatched sizes, NaN/inf, non-positive
            standard deviations or invalid limits.
    """
    max_z = float(max_z)
    max_cv_ratio = float(max_cv_ratio)
    if not (np.isfinite(max_z) and max_z > 0):
        raise ValueError(f"`max_z` must be finite and > 0, got {max_z}.")
    if not (np.isfinite(max_cv_ratio) and max_cv_ratio >= 1):
        raise ValueError(f"`max_cv_ratio` must be finite and >= 1, got {max_cv_ratio}.")
    mu_c, sd_c = _mean_std(candidate, "candidate")
    mu_o, sd_o = _mean_std(oracle, "oracle")
    if mu_c.shape != mu_o.shape:
        raise ValueError(
            f"`candidate` has {mu_c.size} parameters but `oracle` has {mu_o.size} (d mismatch)."
        )
    z, r = (np.asarray(x, dtype=np.float64) for x in _z_and_ratio(mu_c, sd_c, mu_o, sd_o))
    z_bad = z > max_z
    r_bad = r > max_cv_ratio
    passed = not bool(np.any(z_bad) or np.any(r_bad))
    max_z_seen = float(z.max()) if z.size else 0.0
    max_r_seen = float(r.max()) if r.size else 1.0
    statistic = max(max_z_seen / max_z, max_r_seen / max_cv_ratio)
    return GateResult(
        name="posterior_agreement",
        passed=passed,
        statistic=statistic,
        threshold=1.0,
        details={
            "rule": "every z <= max_z and every cv_ratio <= max_cv_ratio",
            "z": z.tolist(),
            "cv_ratio": r.tolist(),
            "max_z_observed": max_z_seen,
            "max_cv_ratio_observed": max_r_seen,
            "max_z": max_z,
            "max_cv_ratio": max_cv_ratio,
            "failing_z": np.flatnonzero(z_bad).tolist(),
            "failing_cv_ratio": np.flatnonzero(r_bad).tolist(),
            "n_params": int(z.size),
        },
    )
