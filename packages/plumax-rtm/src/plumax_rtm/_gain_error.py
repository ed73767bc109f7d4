r"""The retrieval's gain-error model: a multiplicative error on the matched-filter map.

A matched-filter enhancement map is right only up to a gain: plume pixels left in the
background covariance shrink the filter's response (slope 0.77 on the synthetic scene of
``docs/rtm/retrievals.md``), the absorption model and the desaturation are approximate,
and the albedo correction (Thompson et al. 2016) removes only the first-order brightness
dependence. plumax-rtm validates the classic filter's slope on 200-1000 ppm·m pixels,
with the plume excluded from the covariance, within ``1 ± 0.1``
(``tests/test_rtm_retrieval.py``); :data:`RETRIEVAL_GAIN_STD` is that 10 % as a 1-sigma
relative error.

An emission rate inverted from the map inherits the gain: ``Q = g Q_map`` with
``log g ~ N(0, gain_std²)``. :func:`with_gain_error` folds it into draws of ``Q`` (or of
any quantity proportional to the map), so that a lognormal posterior of width ``s`` becomes
lognormal of width ``sqrt(s² + gain_std²)``.
"""

from __future__ import annotations

import math

import jax.random as jr
import numpy as np
from jaxtyping import PRNGKeyArray

__all__ = ["RETRIEVAL_GAIN_STD", "with_gain_error"]

#: Relative 1-sigma gain error of the matched-filter map (see the module docstring).
RETRIEVAL_GAIN_STD = 0.10


def with_gain_error(
    draws, *, key: PRNGKeyArray, gain_std: float = RETRIEVAL_GAIN_STD
) -> np.ndarray:
    """Draws of a quantity proportional to the retrieved map, with the gain error folded in.

    ``draws · exp(gain_std · ε)`` with one ``ε ~ N(0, 1)`` per draw
    (``jax.random.normal(key, draws.shape)``), in float64. Units are those of
    ``draws`` (the gain is dimensionless).

    Args:
        draws: posterior draws, e.g. of the emission rate (kg/s or kg/h), any shape.
        key: PRNG key of the gain draws.
        gain_std: 1-sigma of the log gain (>= 0; default :data:`RETRIEVAL_GAIN_STD`).

    Returns:
        An array of the shape of ``draws``.

    Raises:
        ValueError: ``gain_std`` negative or not finite, or non-finite ``draws``.
    """
    if not (isinstance(gain_std, int | float) and math.isfinite(gain_std) and gain_std >= 0):
        raise ValueError(f"`gain_std` must be finite and >= 0, got {gain_std!r}")
    q = np.asarray(draws, np.float64)
    if not np.all(np.isfinite(q)):
        raise ValueError("`draws` must be finite")
    return q * np.exp(gain_std * np.asarray(jr.normal(key, q.shape), np.float64))
