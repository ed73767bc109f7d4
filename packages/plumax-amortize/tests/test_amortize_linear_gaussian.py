"""NPE on a conjugate linear-Gaussian simulator against its closed-form posterior.

Simulation budget: 4000 training simulations (10% held out for early stopping), a
3-layer affine MAF (width 32) and an MLP embedding. Tolerances for that budget:
posterior mean within 0.35 posterior standard deviations, marginal standard deviations
within 20% and the posterior correlation within 0.2, on 8 held-out observations (4000
draws each, so the Monte Carlo error is ~0.02 sd). SBC (99 draws, 300 held-out
simulations, p >= 0.01) and TARP (KS rule at 1%) must pass; the same estimator after 2
optimiser steps must fail SBC.
"""

import equinox as eqx
import jax.random as jr
import numpy as np
import pytest

import plumax_amortize as pa
from plumax_core import Observations, Posterior


def test_mean_and_covariance_match_closed_form(linear_gaussian, lg_banks, lg_npe):
    npe, history = lg_npe
    _, test = lg_banks
    y = test.values[:8]
    mean, cov = linear_gaussian.closed_form(np.asarray(y, dtype=np.float64))
    draws = np.asarray(npe.sample_batch(y, key=jr.key(3), n_samples=4000), dtype=np.float64)
    sd = np.sqrt(np.diag(cov))
    corr = cov[0, 1] / (sd[0] * sd[1])
    for i in range(8):
        z = np.abs(draws[i].mean(0) - mean[i]) / sd
        assert np.all(z < 0.35), (i, z)
        c = np.cov(draws[i].T)
        s = np.sqrt(np.diag(c))
        assert np.all(np.abs(s / sd - 1) < 0.2), (i, s, sd)
        assert abs(c[0, 1] / (s[0] * s[1]) - corr) < 0.2, (i, c, cov)
    assert history.stopped_early
    assert history.best_val_loss == min(history.val_loss)


def test_sbc_and_tarp_pass(lg_banks, lg_npe):
    npe, _ = lg_npe
    _, test = lg_banks
    report = pa.calibration_report(npe, test, key=jr.key(4))
    assert report["sbc"].passed, report["sbc"]
    assert report["tarp"].passed, report["tarp"]
    strat = pa.sbc_check(npe, test, key=jr.key(4), n_strata=2, bonferroni=True)
    assert strat.passed, strat


def test_undertrained_flow_fails_sbc(lg_banks, lg_npe_undertrained):
    npe, history = lg_npe_undertrained
    _, test = lg_banks
    assert history.n_steps == 2
    result = pa.sbc_check(npe, test, key=jr.key(4))
    assert not result.passed, result
    assert result.statistic < 1e-3


def test_posterior_contract(linear_gaussian, lg_banks, lg_npe):
    npe, _ = lg_npe
    _, test = lg_banks
    post = npe.posterior(test.values[0], key=jr.key(7), n_samples=500)
    assert isinstance(post, Posterior)
    assert post.samples.shape == (1, 500, 2)
    assert post.cov is None
    assert post.param_spec == npe.param_spec
    np.testing.assert_allclose(post.mean, post.samples[0].mean(0), rtol=1e-5, atol=1e-6)
    prov = post.provenance
    assert prov["method"] == "npe"
    assert prov["flow_hash"] == npe.artifact_hash == prov["model_hash"]
    assert prov["forward_model_id"].endswith("LinearGaussian")
    assert prov["forward_model_hash"] == test.simulator_hash
    assert prov["training_dataset_hash"] == npe.dataset_hash
    assert prov["n_iter"] == 500


@pytest.mark.slow
def test_batch_equals_single(lg_banks, lg_npe):
    npe, _ = lg_npe
    _, test = lg_banks
    key = jr.key(11)
    batch = npe.sample_batch(test.values[:3], key=key, n_samples=64)
    keys = jr.split(key, 3)
    for i in range(3):
        single = npe.posterior(test.values[i], key=keys[i], n_samples=64).samples[0]
        np.testing.assert_allclose(batch[i], single, rtol=1e-5, atol=1e-5)
    posts = npe.posteriors(test.values[:3], key=key, n_samples=64)
    assert len(posts) == 3 and all(p.samples.shape == (1, 64, 2) for p in posts)


@pytest.mark.slow
def test_posterior_predictive_check(linear_gaussian, lg_banks, lg_npe):
    npe, _ = lg_npe
    _, test = lg_banks
    p = linear_gaussian
    obs = Observations(test.values[0], sigma=p.model.sigma, kind="generic")
    good = pa.posterior_predictive_check(
        npe, p.model, p.met, pa.ObservationNoise(), obs, key=jr.key(5)
    )
    assert good.passed, good
    bad_obs = obs.replace(values=test.values[0] + 4.0 * np.array([1, -1, 1, -1, 1]))
    bad = pa.posterior_predictive_check(
        npe, p.model, p.met, pa.ObservationNoise(), bad_obs, key=jr.key(5)
    )
    assert not bad.passed, bad


@pytest.mark.slow
def test_c2st_against_closed_form(linear_gaussian, lg_banks, lg_npe):
    npe, _ = lg_npe
    _, test = lg_banks
    y = np.asarray(test.values[1], dtype=np.float64)
    mean, cov = linear_gaussian.closed_form(y)
    exact = np.random.default_rng(0).multivariate_normal(mean, cov, size=1000)
    flow = np.asarray(npe.posterior(test.values[1], key=jr.key(8), n_samples=1000).samples)
    same = pa.c2st(flow, exact, key=jr.key(9), steps=500)
    assert same.passed, same
    shifted = exact + 2.0 * np.sqrt(np.diag(cov))
    different = pa.c2st(flow, shifted, key=jr.key(9), steps=500)
    assert not different.passed, different
    assert different.statistic > 0.75


def test_importance_weighted_bank_learns_the_prior_posterior(
    linear_gaussian, lg_banks, lg_weighted_bank, lg_npe_weighted, proposal_closed_form
):
    """Simulations from a proposal wider than the prior, trained with the importance
    weights prior / proposal, give the prior's posterior (same tolerances as the
    unweighted estimator), where the proposal's own posterior differs by more than those
    tolerances on the test observation from the prior's tail (case 5, 2.4 prior sd out)."""
    npe, _ = lg_npe_weighted
    _, test = lg_banks
    bank = lg_weighted_bank
    assert bank.weighted and 0.6 * bank.n < bank.effective_sample_size() < 0.9 * bank.n
    y = np.asarray(test.values[:8], dtype=np.float64)
    mean, cov = linear_gaussian.closed_form(y)
    sd = np.sqrt(np.diag(cov))
    # ignoring the weights would learn the proposal's posterior: detectably different
    shift = np.abs(proposal_closed_form(y) - mean) / sd
    assert shift.max() > 0.6, shift
    draws = np.asarray(npe.sample_batch(test.values[:8], key=jr.key(3), n_samples=4000))
    for i in range(8):
        z = np.abs(draws[i].mean(0) - mean[i]) / sd
        assert np.all(z < 0.35), (i, z, shift[i])
        s = draws[i].std(0)
        assert np.all(np.abs(s / sd - 1) < 0.2), (i, s, sd)


def test_calibration_checks_refuse_a_weighted_bank(lg_weighted_bank, lg_npe):
    npe, _ = lg_npe
    with pytest.raises(ValueError, match="proposal"):
        pa.sbc_check(npe, lg_weighted_bank.take(slice(0, 100)), key=jr.key(0))
    with pytest.raises(ValueError, match="proposal"):
        pa.tarp_check(npe, lg_weighted_bank.take(slice(0, 100)), key=jr.key(0))


def test_resampled_proposal_posterior_is_the_prior_posterior(
    linear_gaussian, lg_banks, lg_npe_resampled, proposal_closed_form
):
    """Trained without the weights, the flow learns the proposal's posterior; the
    resampling correction turns its draws into the prior's posterior (same tolerances),
    and the corrected estimator passes SBC on simulations from the prior."""
    npe, _ = lg_npe_resampled
    _, test = lg_banks
    y = np.asarray(test.values[:8], dtype=np.float64)
    mean, cov = linear_gaussian.closed_form(y)
    sd = np.sqrt(np.diag(cov))
    target = proposal_closed_form(y)
    raw = eqx.tree_at(lambda n: n.correction, npe, None)
    flow = np.asarray(raw.sample_batch(test.values[:8], key=jr.key(3), n_samples=4000))
    fixed = np.asarray(npe.sample_batch(test.values[:8], key=jr.key(3), n_samples=4000))
    for i in range(8):
        assert np.all(np.abs(flow[i].mean(0) - target[i]) / sd < 0.35), i
        z = np.abs(fixed[i].mean(0) - mean[i]) / sd
        assert np.all(z < 0.35), (i, z)
        assert np.all(np.abs(fixed[i].std(0) / sd - 1) < 0.2), (i, fixed[i].std(0), sd)
    # the tail case, where the two posteriors differ: the flow is off, the correction is not
    tail = int(np.argmax((np.abs(target - mean) / sd).max(1)))
    assert (
        np.abs(flow[tail].mean(0) - mean[tail]).max()
        > 2 * np.abs(fixed[tail].mean(0) - mean[tail]).max()
    )
    # weights prior / proposal <= 2 on a pool of 4000 flow draws: Kish's ESS against numpy
    lw = np.asarray(npe.correction.log_weight(flow[tail]), dtype=np.float64)
    w = np.exp(lw - lw.max())
    ess = float(npe.correction.effective_sample_size(flow[tail]))
    assert ess == pytest.approx(w.sum() ** 2 / np.sum(w**2), rel=1e-4)
    assert 0.25 * 4000 < ess <= 4000 and lw.max() <= np.log(2.0) + 1e-5
    sbc = pa.sbc_check(npe, test, key=jr.key(4))
    assert sbc.passed, sbc
    post = npe.posterior(test.values[0], key=jr.key(7), n_samples=10)
    assert post.samples.shape == (1, 10, 2)
    assert post.provenance["proposal_correction"]["oversample"] == 4
