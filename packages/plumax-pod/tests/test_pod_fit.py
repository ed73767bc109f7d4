"""Population fits: recovery, totals vs the naive sum, prior-swap invariance, hierarchy, NUTS."""

import jax.numpy as jnp
import numpy as np
import pytest

from plumax_core import Posterior
from plumax_pod import (
    LognormalHillModel,
    PointMarks,
    PopulationData,
    SampleMarks,
    fit_map_laplace,
    fit_nuts,
    naive_total,
    summarise_samples,
    total_emission_samples,
)

DUR = 3600.0
DAY = 86400.0
TRUTH = {"rate": 20.0 / DAY, "mu": np.log(0.05), "sigma": 1.2, "q50": 0.08, "slope": 2.0}


def simulate_catalogue(seed, window_days, truth=TRUTH, duration=3600.0):
    """True Poisson events with lognormal rates, thinned by a Hill POD (numpy RNG)."""
    rng = np.random.default_rng(seed)
    T = window_days * DAY
    n = rng.poisson(truth["rate"] * T)
    t = np.sort(rng.uniform(0.0, T, n))
    q = np.exp(truth["mu"] + truth["sigma"] * rng.standard_normal(n))
    p = q ** truth["slope"] / (q ** truth["slope"] + truth["q50"] ** truth["slope"])
    det = rng.uniform(size=n) < p
    return {
        "T": T,
        "times": t[det],
        "q": q[det],
        "true_mass": q.sum() * duration,
        "true_expected_mass": truth["rate"]
        * T
        * np.exp(truth["mu"] + truth["sigma"] ** 2 / 2)
        * duration,
        "n_true": n,
    }


MODEL = LognormalHillModel(rate_prior=(1e-4, 3.0), q50_prior=(0.12, 1.0), slope_prior=(2.0, 0.5))


def _covers(post, level, truth=TRUTH):
    ci = post.credible_interval(level)
    return {k: bool(ci[k][0] <= truth[k] <= ci[k][1]) for k in truth}


@pytest.mark.slow
def test_map_laplace_recovery_and_totals(x64, getkey):
    c = simulate_catalogue(11, 250)
    data = PopulationData(c["times"], PointMarks(c["q"]), 0.0, c["T"])
    post = fit_map_laplace(MODEL, data)
    assert isinstance(post, Posterior) and post.provenance["converged"]
    assert post.provenance["method"] == "map_laplace"
    assert all(_covers(post, 0.99).values()), post.credible_interval(0.99)
    tot = total_emission_samples(MODEL, post, 0.0, c["T"], duration=DUR, key=getkey(), n=4000)
    s = summarise_samples(tot, 0.95)
    naive = float(naive_total(c["q"], duration=DUR))
    assert s["lower"] <= c["true_mass"] <= s["upper"]
    assert naive < s["lower"]  # the naive sum misses the undetected mass
    assert naive < 0.9 * c["true_mass"]


def _noisy_samples(rng, q, m0, s0, s_lik=0.3, S=300):
    """Exact posterior draws of log Q under the per-event prior N(m0, s0²)."""
    m_lik = np.log(q) + s_lik * rng.standard_normal(q.shape)
    prec = 1 / s_lik**2 + 1 / s0**2
    mp = (m_lik / s_lik**2 + m0 / s0**2) / prec
    x = mp[:, None] + prec**-0.5 * rng.standard_normal((q.size, S))
    lp = -0.5 * ((x - m0) / s0) ** 2 - np.log(s0) - 0.5 * np.log(2 * np.pi)
    return m_lik, x, lp


def test_prior_swap_does_not_move_fit_and_totals(x64, getkey):
    c = simulate_catalogue(5, 25)
    rng = np.random.default_rng(0)
    q = c["q"]
    state = rng.bit_generator.state
    _, xa, lpa = _noisy_samples(rng, q, -3.5, 0.6)
    rng.bit_generator.state = state  # same measurement noise, different prior
    _, xb, lpb = _noisy_samples(rng, q, -1.0, 3.0)
    fits = {}
    for name, md in {
        "prior_a": SampleMarks(xa, lpa),
        "prior_b": SampleMarks(xb, lpb),
        "no_correction_a": SampleMarks(xa, np.zeros_like(lpa)),
    }.items():
        fits[name] = fit_map_laplace(MODEL, PopulationData(c["times"], md, 0.0, c["T"]))
    assert fits["prior_a"].provenance["converged"]
    sd = fits["prior_b"].std()
    shift = np.abs(np.asarray(fits["prior_a"].mean - fits["prior_b"].mean) / sd)
    assert shift.max() < 0.25, shift
    # without the importance correction the per-event prior leaks into the fit
    bad = np.abs(np.asarray(fits["no_correction_a"].mean - fits["prior_b"].mean) / sd)
    assert bad.max() > 1.0
    # the population fit recovers the truth, and its total beats the naive sum
    post = fits["prior_b"]
    assert all(_covers(post, 0.99).values()), post.credible_interval(0.99)
    tot = total_emission_samples(MODEL, post, 0.0, c["T"], duration=DUR, key=getkey(), n=4000)
    s = summarise_samples(tot, 0.95)
    naive = float(naive_total(q, duration=DUR))
    assert s["lower"] <= c["true_mass"] <= s["upper"]
    assert naive < 0.9 * c["true_mass"]  # the naive sum misses the undetected mass


@pytest.mark.slow
def test_hierarchical_instruments_and_fixed_pod(x64):
    a = simulate_catalogue(3, 120)
    b = simulate_catalogue(4, 120, truth={**TRUTH, "q50": 0.3})
    times = np.concatenate([a["times"], b["times"] + a["T"]])
    q = np.concatenate([a["q"], b["q"]])
    ins = np.concatenate([np.zeros(a["q"].size, int), np.ones(b["q"].size, int)])
    data = PopulationData(times, PointMarks(q), [0.0, a["T"]], [a["T"], a["T"] + b["T"]], ins)
    model = LognormalHillModel(n_instruments=2, rate_prior=(1e-4, 3.0), q50_prior=(0.15, 1.0))
    post = fit_map_laplace(model, data)
    ci = post.credible_interval(0.99)
    assert ci["q50"][0][0] <= 0.08 <= ci["q50"][1][0]
    assert ci["q50"][0][1] <= 0.3 <= ci["q50"][1][1]
    assert post.param_spec.names == ("rate", "mu", "sigma", "q50", "slope", "q50_pop")
    from plumax_pod import HillPOD

    fixed = LognormalHillModel(fixed_pod=HillPOD(0.08, 2.0), rate_prior=(1e-4, 3.0))
    data1 = PopulationData(a["times"], PointMarks(a["q"]), 0.0, a["T"])
    post1 = fit_map_laplace(fixed, data1)
    assert post1.param_spec.names == ("rate", "mu", "sigma")
    assert all(_covers(post1, 0.99, {k: TRUTH[k] for k in ("rate", "mu", "sigma")}).values())


def test_bad_data():
    with pytest.raises(ValueError, match="mark_data"):
        PopulationData(jnp.ones(3), PointMarks(jnp.ones(2)), 0.0, 10.0)
    with pytest.raises(ValueError, match="t1"):
        PopulationData(jnp.ones(2), PointMarks(jnp.ones(2)), 10.0, 0.0)
    with pytest.raises(ValueError, match="instrument"):
        PopulationData(jnp.ones(2), PointMarks(jnp.ones(2)), 0.0, 10.0, jnp.array([0, 3]))
    with pytest.raises(ValueError, match="q50_prior"):
        LognormalHillModel(q50_prior=(-1.0, 1.0))


@pytest.mark.slow
def test_nuts_agrees_with_laplace(x64, getkey):
    c = simulate_catalogue(7, 100)
    data = PopulationData(c["times"], PointMarks(c["q"]), 0.0, c["T"])
    lap = fit_map_laplace(MODEL, data)
    nuts = fit_nuts(MODEL, data, key=getkey(), num_warmup=300, num_samples=400)
    assert nuts.samples.shape == (1, 400, 5)
    z = np.abs(np.asarray(nuts.mean - lap.mean) / np.asarray(lap.std()))
    assert z.max() < 1.0  # Q50 and slope are skewed: Laplace is only approximate there
    ratio = np.asarray(nuts.std()) / np.asarray(lap.std())
    assert np.all((ratio > 0.5) & (ratio < 2.0)), ratio


@pytest.mark.slow
def test_recovery_coverage_50_replicates(x64, getkey):
    """10⁴-event catalogues: 90% intervals of rate, mu, sigma, q50 cover the truth in ≥ 80%."""
    hits = {k: 0 for k in ("rate", "mu", "sigma", "q50")}
    tot_hits, naive_low = 0, 0
    n_pad = 12000  # one compiled fit for every replicate
    for seed in range(50):
        c = simulate_catalogue(1000 + seed, 1330)
        n = c["q"].size
        assert n <= n_pad
        pad = n_pad - n
        data = PopulationData(
            np.concatenate([c["times"], np.zeros(pad)]),
            PointMarks(np.concatenate([c["q"], np.ones(pad)])),
            0.0,
            c["T"],
            mask=np.arange(n_pad) < n,
        )
        post = fit_map_laplace(MODEL, data)
        cov = _covers(post, 0.9)
        for k in hits:
            hits[k] += cov[k]
        tot = total_emission_samples(MODEL, post, 0.0, c["T"], duration=DUR, key=getkey(), n=2000)
        s = summarise_samples(tot, 0.95)
        tot_hits += s["lower"] <= c["true_mass"] <= s["upper"]
        naive_low += float(naive_total(c["q"], duration=DUR)) < s["lower"]
    assert all(h >= 40 for h in hits.values()), hits
    assert tot_hits >= 45 and naive_low == 50, (tot_hits, naive_low)
