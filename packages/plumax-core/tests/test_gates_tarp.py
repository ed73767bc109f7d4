"""`tarp_coverage`: unit behaviour (the conjugate-Gaussian checks are in test_gates_calibration)."""

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from plumax_core.gates import tarp_coverage
from plumax_core.gates._tarp import _ks_distance

N, N_POST = 300, 40  # one shape throughout: one compilation
_RNG = np.random.default_rng(8)


def test_ks_distance_matches_scipy():
    f = _RNG.uniform(size=300)
    assert _ks_distance(f) == pytest.approx(scipy.stats.kstest(f, "uniform").statistic, rel=1e-12)


def test_default_tol_and_curve(getkey):
    theta = jnp.asarray(_RNG.standard_normal((N, 2)), jnp.float32)
    # "Posterior" = the prior, independent of theta: calibrated marginally (exchangeable).
    samples = jnp.asarray(_RNG.standard_normal((N, N_POST, 2)), jnp.float32)
    result = tarp_coverage(samples, theta, key=getkey(), n_alphas=21)
    assert result.threshold == pytest.approx(1.6276 / np.sqrt(N), rel=1e-4)
    assert result.passed
    assert len(result.details["ecp"]) == 21
    assert result.details["ecp"][0] == 0.0 and result.details["ecp"][-1] == 1.0
    assert np.all(np.diff(result.details["ecp"]) >= 0)
    assert result.details["max_deviation_grid"] <= result.statistic + 1e-12
    assert 0.0 <= result.details["area"] <= result.statistic


def test_given_references_and_unrandomised(getkey):
    theta = jnp.asarray(_RNG.standard_normal((N, 2)), jnp.float32)
    samples = theta[:, None, :] + 1e-3 * jnp.asarray(
        _RNG.standard_normal((N, N_POST, 2)), jnp.float32
    )  # far too narrow
    for refs in (jnp.array([5.0, 5.0]), jnp.asarray(_RNG.standard_normal((N, 2)), jnp.float32)):
        for randomize in (True, False):
            result = tarp_coverage(
                samples, theta, key=getkey(), references=refs, randomize=randomize
            )
            assert not result.passed
            assert result.statistic > 0.3


def test_same_key_same_result(getkey):
    theta = jnp.asarray(_RNG.standard_normal((N, 2)), jnp.float32)
    samples = jnp.asarray(_RNG.standard_normal((N, N_POST, 2)), jnp.float32)
    key = getkey()
    assert tarp_coverage(samples, theta, key=key) == tarp_coverage(samples, theta, key=key)


def test_bad_input(getkey):
    theta = jnp.zeros((10, 2))
    samples = jnp.zeros((10, 5, 2))
    with pytest.raises(ValueError, match="d=2"):
        tarp_coverage(jnp.zeros((10, 5, 3)), theta, key=getkey())
    with pytest.raises(ValueError, match="n_sims"):
        tarp_coverage(samples, jnp.zeros((9, 2)), key=getkey())
    with pytest.raises(ValueError, match="L >= 1"):
        tarp_coverage(jnp.zeros((10, 0, 2)), theta, key=getkey())
    with pytest.raises(ValueError, match="at least 2"):
        tarp_coverage(samples[:1], theta[:1], key=getkey())
    with pytest.raises(ValueError, match="references"):
        tarp_coverage(samples, theta, key=getkey(), references=jnp.zeros((3, 2)))
    with pytest.raises(ValueError, match="theta_true"):
        tarp_coverage(samples, theta.at[0, 0].set(jnp.nan), key=getkey())
    with pytest.raises(ValueError, match="tol"):
        tarp_coverage(samples, theta, key=getkey(), tol=0.0)
    with pytest.raises(ValueError, match="n_alphas"):
        tarp_coverage(samples, theta, key=getkey(), n_alphas=1)
