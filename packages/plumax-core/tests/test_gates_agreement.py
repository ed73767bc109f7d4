"""`posterior_agreement`: candidate vs oracle marginals."""

import jax.numpy as jnp
import numpy as np
import pytest

from plumax_core.gates import posterior_agreement


class _DuckPosterior:
    """Stands in for `plumax_core.Posterior`: attribute `.mean`, method `.std()`."""

    def __init__(self, mean, std):
        self.mean = jnp.asarray(mean)
        self._std = jnp.asarray(std)

    def std(self):
        return self._std


MEAN = jnp.array([0.0, 120.0, -3.0])  # e.g. x-offset with mean 0, Q, log-something
STD = jnp.array([5.0, 10.0, 0.5])


def test_identical_passes():
    result = posterior_agreement(_DuckPosterior(MEAN, STD), _DuckPosterior(MEAN, STD))
    assert result.passed
    assert result.statistic == pytest.approx(0.5)  # r = 1 against max_cv_ratio = 2
    assert result.details["z"] == [0.0, 0.0, 0.0]
    assert result.details["cv_ratio"] == [1.0, 1.0, 1.0]


def test_tuple_and_duck_inputs_agree():
    cand = (MEAN + 0.3 * STD, 1.2 * STD)
    a = posterior_agreement(cand, (MEAN, STD))
    b = posterior_agreement(_DuckPosterior(*cand), _DuckPosterior(MEAN, STD))
    assert a == b
    assert a.passed
    np.testing.assert_allclose(a.details["z"], 0.3, rtol=1e-6)
    np.testing.assert_allclose(a.details["cv_ratio"], 1.2, rtol=1e-6)


def test_mean_shift_of_1p5_sigma_fails():
    shift = jnp.array([0.0, 1.5, 0.0]) * STD
    result = posterior_agreement((MEAN + shift, STD), (MEAN, STD))
    assert not result.passed
    assert result.statistic == pytest.approx(1.5)
    assert result.details["failing_z"] == [1]
    assert result.details["failing_cv_ratio"] == []


@pytest.mark.parametrize("factor", [3.0, 1.0 / 3.0])
def test_spread_factor_3_fails_either_way(factor):
    std_c = STD.at[0].multiply(factor)
    result = posterior_agreement((MEAN, std_c), (MEAN, STD))
    assert not result.passed
    assert result.details["max_cv_ratio_observed"] == pytest.approx(3.0, rel=1e-6)
    assert result.details["failing_cv_ratio"] == [0]
    assert result.statistic == pytest.approx(1.5, rel=1e-6)


def test_edges_are_inclusive():
    # Exactly representable: z = |2 - 0| / 2 = 1 and r = 4 / 2 = 2, both at the limit: pass.
    oracle = (jnp.array([0.0]), jnp.array([2.0]))
    assert posterior_agreement((jnp.array([2.0]), jnp.array([2.0])), oracle).passed
    assert posterior_agreement((jnp.array([0.0]), jnp.array([4.0])), oracle).passed
    assert posterior_agreement((jnp.array([-2.0]), jnp.array([1.0])), oracle).passed
    # One float32 ulp beyond either limit fails.
    above = np.nextafter(np.float32(2.0), np.float32(3.0))
    assert not posterior_agreement((jnp.array([above]), jnp.array([2.0])), oracle).passed
    wider = np.nextafter(np.float32(4.0), np.float32(5.0))
    assert not posterior_agreement((jnp.array([0.0]), jnp.array([wider])), oracle).passed


def test_custom_limits():
    cand, oracle = (jnp.array([1.5]), jnp.array([1.0])), (jnp.array([0.0]), jnp.array([1.0]))
    assert not posterior_agreement(cand, oracle).passed
    assert posterior_agreement(cand, oracle, max_z=2.0).passed


def test_bad_input():
    good = (MEAN, STD)
    with pytest.raises(ValueError, match="d mismatch"):
        posterior_agreement((MEAN[:2], STD[:2]), good)
    with pytest.raises(ValueError, match="candidate mean"):
        posterior_agreement((MEAN.at[0].set(jnp.nan), STD), good)
    with pytest.raises(ValueError, match="oracle std"):
        posterior_agreement(good, (MEAN, STD.at[1].set(0.0)))
    with pytest.raises(ValueError, match="candidate"):
        posterior_agreement(MEAN, good)  # a bare array is not a posterior
    with pytest.raises(ValueError, match="candidate"):
        posterior_agreement((MEAN, STD[:2]), good)
    with pytest.raises(ValueError, match="max_z"):
        posterior_agreement(good, good, max_z=0.0)
    with pytest.raises(ValueError, match="max_cv_ratio"):
        posterior_agreement(good, good, max_cv_ratio=0.5)
