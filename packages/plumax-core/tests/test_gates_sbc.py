"""`sbc_ranks`, `sbc_uniformity` and the χ² survival function."""

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings

from plumax_core.gates import chi2_sf, sbc_ranks, sbc_uniformity
from plumax_core.gates._sbc import _default_n_bins


@settings(max_examples=60, deadline=None)
@given(x=st.floats(0.0, 300.0), dof=st.integers(1, 120))
def test_chi2_sf_matches_scipy(x, dof):
    with jax.enable_x64(True):
        ours = float(chi2_sf(jnp.asarray(x), dof))
    assert ours == pytest.approx(scipy.stats.chi2.sf(x, dof), abs=1e-6, rel=1e-6)


def test_chi2_sf_float32_close_to_scipy():
    x = np.linspace(0.0, 60.0, 61)
    ours = np.asarray(chi2_sf(jnp.asarray(x, jnp.float32), 19))
    np.testing.assert_allclose(ours, scipy.stats.chi2.sf(x, 19), atol=1e-5)


def test_ranks_definition_and_ties(getkey):
    theta = jnp.array([[0.5, 2.0], [-1.0, 0.0]])
    samples = jnp.array(
        [
            [[0.0, 1.0], [1.0, 2.0], [0.4, 3.0]],
            [[-2.0, 0.0], [-3.0, 0.0], [0.0, 0.0]],
        ]
    )
    ranks = sbc_ranks(theta, samples)
    np.testing.assert_array_equal(ranks, [[2, 1], [2, 0]])
    assert ranks.dtype == jnp.int32
    # With a key, ties (theta == draw) get a uniformly random share: rank in [#less, #less+#eq].
    tied = jnp.stack([sbc_ranks(theta, samples, key=getkey()) for _ in range(200)])
    assert int(tied[:, 1, 1].min()) == 0 and int(tied[:, 1, 1].max()) == 3
    assert int(tied[:, 0, 1].min()) == 1 and int(tied[:, 0, 1].max()) == 2
    np.testing.assert_array_equal(tied[:, 0, 0], 2)  # no tie: unchanged


def test_pvalue_matches_scipy_chisquare(x64):
    n_post, n_bins = 100, 7  # 101 rank values in 7 bins: unequal widths 15/14
    ranks = np.random.default_rng(5).integers(0, n_post + 1, (500, 3))
    result = sbc_uniformity(ranks, n_post, n_bins=n_bins)
    widths = np.diff(-((-np.arange(n_bins + 1) * (n_post + 1)) // n_bins))
    assert widths.sum() == n_post + 1 and set(widths) == {14, 15}
    for j in range(3):
        counts = np.bincount(ranks[:, j] * n_bins // (n_post + 1), minlength=n_bins)
        assert result.details["counts"][j] == counts.tolist()
        ref = scipy.stats.chisquare(counts, f_exp=500 * widths / (n_post + 1))
        assert result.details["chi2"][j] == pytest.approx(ref.statistic, rel=1e-10)
        assert result.details["p_values"][j] == pytest.approx(ref.pvalue, abs=1e-6)
    assert result.details["dof"] == n_bins - 1
    assert result.statistic == min(result.details["p_values"])


def test_default_bins():
    assert _default_n_bins(1000, 101) == 20
    assert _default_n_bins(100, 101) == 10
    assert _default_n_bins(15, 101) == 2
    assert _default_n_bins(1000, 5) == 5
    assert sbc_uniformity(np.zeros((1000, 1), np.int32), 100).details["n_bins"] == 20


def test_false_failure_rate_is_about_alpha():
    """Uniform ranks: p-values are ~U(0, 1) (300 independent parameters in one call)."""
    ranks = np.random.default_rng(6).integers(0, 51, (400, 300))
    p = np.asarray(sbc_uniformity(ranks, 50).details["p_values"])
    assert 0.05 < np.mean(p < 0.1) < 0.15
    assert scipy.stats.kstest(p, "uniform").pvalue > 1e-3


def test_strata_catch_what_pooling_hides():
    # Stratum 0 only ever ranks low, stratum 1 only high: pooled looks uniform.
    low = np.tile(np.arange(0, 50), 10)
    high = np.tile(np.arange(51, 101), 10)
    ranks = np.concatenate([low, high])[:, None]
    strata = np.repeat([0, 1], 500)
    pooled = sbc_uniformity(ranks, 100)
    assert pooled.passed
    result = sbc_uniformity(ranks, 100, strata=strata)
    assert not result.passed
    assert set(result.details["strata"]) == {"0", "1"}
    assert result.details["strata"]["0"]["n_sims"] == 500
    assert result.details["strata"]["0"]["p_values"][0] < 1e-10
    assert "stratum 1/param 0" in result.details["failing"]
    assert result.details["p_values"] == pooled.details["p_values"]


def test_bonferroni_threshold():
    ranks = np.tile(np.arange(101), 10)[:, None].repeat(4, axis=1)
    plain = sbc_uniformity(ranks, 100)
    corrected = sbc_uniformity(ranks, 100, bonferroni=True, strata=np.arange(1010) % 2)
    assert plain.threshold == 0.01
    assert corrected.details["n_tests"] == 12
    assert corrected.threshold == pytest.approx(0.01 / 12)


def test_bad_input():
    ranks = np.zeros((50, 2), np.int32)
    with pytest.raises(ValueError, match="n_posterior_samples"):
        sbc_uniformity(ranks, 0)
    with pytest.raises(ValueError, match="ranks"):
        sbc_uniformity(np.full((50, 2), np.nan), 10)
    with pytest.raises(ValueError, match="ranks"):
        sbc_uniformity(np.full((50, 2), 0.5), 10)
    with pytest.raises(ValueError, match="ranks"):
        sbc_uniformity(np.full((50, 2), 11), 10)
    with pytest.raises(ValueError, match="ranks"):
        sbc_uniformity(np.zeros(50), 10)
    with pytest.raises(ValueError, match="alpha"):
        sbc_uniformity(ranks, 10, alpha=1.0)
    with pytest.raises(ValueError, match="n_bins"):
        sbc_uniformity(ranks, 10, n_bins=12)
    with pytest.raises(ValueError, match="n_bins"):
        sbc_uniformity(ranks, 10, n_bins=1)
    with pytest.raises(ValueError, match="strata"):
        sbc_uniformity(ranks, 10, strata=np.zeros(49))
    with pytest.raises(ValueError, match="strata"):
        sbc_uniformity(ranks, 10, strata=np.full(50, 0.5))
    theta = jnp.zeros((5, 2))
    with pytest.raises(ValueError, match="d=3"):
        sbc_ranks(theta, jnp.zeros((5, 10, 3)))
    with pytest.raises(ValueError, match="n_sims"):
        sbc_ranks(theta, jnp.zeros((4, 10, 2)))
    with pytest.raises(ValueError, match="L >= 1"):
        sbc_ranks(theta, jnp.zeros((5, 0, 2)))
    with pytest.raises(ValueError, match="posterior_samples"):
        sbc_ranks(theta, jnp.full((5, 10, 2), jnp.nan))
    with pytest.raises(ValueError, match="theta_true"):
        sbc_ranks(jnp.zeros(5), jnp.zeros((5, 10, 2)))
