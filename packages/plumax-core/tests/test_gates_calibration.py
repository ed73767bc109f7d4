"""SBC and TARP on a conjugate Gaussian model with a closed-form posterior.

Prior ``theta ~ N(0, I_2)``, observation ``y = theta + eps``, ``eps ~ N(0, 0.5^2 I)``:
the exact posterior is ``N(y / (1 + s^2), s^2 / (1 + s^2))`` per dimension, ``s = 0.5``.
Exact draws must pass both gates; too narrow (x0.5), too wide (x2) and biased (+1 sd)
draws must fail both. Fixed keys make every outcome deterministic.
"""

import functools

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from plumax_core.gates import sbc_ranks, sbc_uniformity, tarp_coverage

N_SIMS, N_POST, D, NOISE = 1000, 100, 2, 0.5

CASES = {
    "exact": (0.0, 1.0),
    "too_narrow": (0.0, 0.5),
    "too_wide": (0.0, 2.0),
    "mean_shift_1sd": (1.0, 1.0),
}


@functools.partial(jax.jit, static_argnames=("n_sims", "n_post"))
def _simulate(key, mean_shift, spread, n_sims, n_post):
    k_theta, k_eps, k_post = jr.split(key, 3)
    theta = jr.normal(k_theta, (n_sims, D))
    y = theta + NOISE * jr.normal(k_eps, (n_sims, D))
    post_var = NOISE**2 / (1.0 + NOISE**2)
    post_mean = y / (1.0 + NOISE**2)
    post_sd = jnp.sqrt(post_var)
    z = jr.normal(k_post, (n_sims, n_post, D))
    samples = post_mean[:, None, :] + post_sd * (mean_shift + spread * z)
    return theta, y, samples


@pytest.fixture(scope="module")
def data():
    out = {}
    for name, (shift, spread) in CASES.items():
        out[name] = _simulate(jr.key(2024), shift, spread, N_SIMS, N_POST)
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_sbc(data, case):
    theta, y, samples = data[case]
    ranks = sbc_ranks(theta, samples)
    result = sbc_uniformity(ranks, N_POST)
    assert result.details["n_bins"] == 20
    if case == "exact":
        assert result.passed, str(result)
        # Strata that are a function of the data (not of theta) keep ranks uniform.
        # Six tests (2 pooled + 2 x 2 strata) at 1% each: correct for multiplicity.
        stratified = sbc_uniformity(ranks, N_POST, strata=np.asarray(y[:, 0] > 0), bonferroni=True)
        assert stratified.details["n_tests"] == 6
        assert stratified.passed, str(stratified)
    else:
        assert not result.passed, str(result)
        assert result.statistic < 1e-6


@pytest.mark.parametrize("case", list(CASES))
def test_tarp(data, case):
    theta, _, samples = data[case]
    result = tarp_coverage(samples, theta, key=jr.key(7))
    assert result.threshold == pytest.approx(1.628 / np.sqrt(N_SIMS), rel=1e-3)
    if case == "exact":
        assert result.passed, str(result)
        assert result.details["area"] < 0.02
    else:
        assert not result.passed, str(result)
        assert result.statistic > 1.5 * result.threshold


def test_shape_of_miscalibration(data):
    """Too narrow -> U-shaped rank histogram (extremes over-full); too wide -> a hump."""
    expected_edge = 2 * N_SIMS / 20  # two outer bins of 20
    for case, sign in (("too_narrow", 1), ("too_wide", -1)):
        theta, _, samples = data[case]
        counts = sbc_uniformity(sbc_ranks(theta, samples), N_POST).details["counts"]
        for per_param in counts:
            assert sign * (per_param[0] + per_param[-1] - expected_edge) > 0.5 * expected_edge
