"""`PopulationModel`: any intensity x marks x POD, fitted by MAP + Laplace and NUTS."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plumax_pod import (
    ConstantIntensity,
    DiurnalIntensity,
    Free,
    HillPOD,
    LognormalHillModel,
    LognormalMarks,
    PointMarks,
    PopulationData,
    PopulationModel,
    TruncatedPowerLawMarks,
    fit_map_laplace,
    fit_nuts,
)

DAY = 86400.0


def _free_like_lognormal_hill(m: LognormalHillModel):
    """`Free` declarations whose priors equal LognormalHillModel's (one instrument)."""
    return [
        Free(
            "intensity.rate",
            lower=0.0,
            log=True,
            prior_center=m.rate_prior[0],
            prior_sd=m.rate_prior[1],
        ),
        Free("marks.mu", prior_center=m.mu_prior[0], prior_sd=m.mu_prior[1]),
        Free(
            "marks.sigma",
            lower=0.0,
            log=True,
            prior_center=m.sigma_prior[0],
            prior_sd=m.sigma_prior[1],
        ),
        Free("pod.q50", lower=0.0, log=True, prior_center=m.q50_prior[0], prior_sd=m.q50_prior[1]),
        Free(
            "pod.slope",
            lower=0.0,
            log=True,
            prior_center=m.slope_prior[0],
            prior_sd=m.slope_prior[1],
        ),
    ]


def test_reproduces_the_lognormal_hill_model_posterior(x64):
    ref = LognormalHillModel(rate_prior=(2e-4, 3.0), q50_prior=(0.1, 1.0))
    gen = PopulationModel(
        ConstantIntensity(1e-4),
        LognormalMarks(-3.0, 1.0),
        HillPOD(0.1, 2.0),
        free=_free_like_lognormal_hill(ref),
    )
    rng = np.random.default_rng(0)
    data = PopulationData(
        np.sort(rng.uniform(0, 30 * DAY, 200)),
        PointMarks(rng.lognormal(-3, 1, 200)),
        0.0,
        30 * DAY,
    )
    assert gen.param_spec.size == ref.param_spec.size == 5
    for _ in range(3):
        z = jnp.asarray(rng.normal(size=5)) + ref.param_spec.to_unconstrained(
            {"rate": 2e-4, "mu": -3.0, "sigma": 1.0, "q50": 0.1, "slope": 2.0}
        )
        np.testing.assert_allclose(
            gen.log_posterior_unconstrained(z, data),
            ref.log_posterior_unconstrained(z, data),
            rtol=1e-12,
        )


def _thinned_diurnal(seed, days, rate, amplitude, t_peak, mu, sigma, q50, slope):
    """Inhomogeneous Poisson events by thinning (Lewis & Shedler 1979), lognormal sizes,
    Hill detection (numpy only)."""
    rng = np.random.default_rng(seed)
    T = days * DAY
    lam_max = rate * (1 + amplitude)
    cand = np.sort(rng.uniform(0, T, rng.poisson(lam_max * T)))
    lam = rate * (1 + amplitude * np.cos(2 * np.pi * (cand - t_peak) / DAY))
    t = cand[rng.uniform(size=cand.size) < lam / lam_max]
    q = np.exp(mu + sigma * rng.standard_normal(t.size))
    det = rng.uniform(size=t.size) < q**slope / (q**slope + q50**slope)
    return t[det], q[det], T


def test_diurnal_intensity_is_recovered(x64):
    truth = {"rate": 40.0 / DAY, "amplitude": 0.6, "t_peak": 14 * 3600.0}
    t, q, T = _thinned_diurnal(5, 60, **truth, mu=math.log(0.05), sigma=1.0, q50=0.05, slope=2.0)
    model = PopulationModel(
        DiurnalIntensity(rate=20.0 / DAY, amplitude=0.3, t_peak=12 * 3600.0),
        LognormalMarks(math.log(0.05), 1.0),
        HillPOD(0.05, 2.0),  # known detection curve
        free=[
            Free("intensity.rate", lower=0.0, log=True, prior_sd=3.0),
            Free("intensity.amplitude", lower=0.0, upper=1.0, prior_sd=1.5),
            Free("intensity.t_peak", lower=0.0, upper=DAY, prior_sd=1.5),
            Free("marks.mu", prior_sd=5.0),
            Free("marks.sigma", lower=0.0, log=True, prior_sd=1.0),
        ],
    )
    post = fit_map_laplace(model, PopulationData(t, PointMarks(q), 0.0, T))
    assert post.provenance["converged"]
    ci = post.credible_interval(0.95)
    for name, value in truth.items():
        lo, hi = ci[f"intensity_{name}"]
        assert lo <= value <= hi, (name, lo, value, hi)
    lo, hi = ci["marks_sigma"]
    assert lo <= 1.0 <= hi
    # the diurnal signal is real: the amplitude's interval excludes 0
    assert ci["intensity_amplitude"][0] > 0.3


def test_power_law_marks_match_the_closed_form_mle(x64):
    """With certain detection and a flat-ish prior the MAP exponent equals the
    continuous power-law MLE 1 + n / sum(log(q / q_min)) (Clauset et al. 2009, eq. 3.1)."""
    rng = np.random.default_rng(2)
    alpha, q_min, n, T = 2.3, 0.01, 400, 100 * DAY
    q = q_min * (1 - rng.uniform(size=n)) ** (-1 / (alpha - 1))
    t = np.sort(rng.uniform(0, T, n))
    model = PopulationModel(
        ConstantIntensity(n / T),
        TruncatedPowerLawMarks(2.0, q_min),
        HillPOD(1e-8, 4.0),  # P_d = 1 - 1e-24 above q_min: every event detected
        free=[
            Free("intensity.rate", lower=0.0, log=True, prior_sd=10.0),
            Free("marks.alpha", lower=1.0, log=False, upper=10.0, prior_sd=100.0),
        ],
    )
    post = fit_map_laplace(model, PopulationData(t, PointMarks(q), 0.0, T))
    mle = 1 + n / np.sum(np.log(q / q_min))
    map_alpha = float(post.param_spec.from_unconstrained(post.mean)["marks_alpha"])
    assert map_alpha == pytest.approx(mle, rel=2e-3)
    rate = float(post.param_spec.from_unconstrained(post.mean)["intensity_rate"])
    assert rate == pytest.approx(n / T, rel=2e-3)  # Poisson MLE n / T


def _two_instrument_model():
    return PopulationModel(
        ConstantIntensity(1e-4),
        LognormalMarks(math.log(0.1), 0.8),
        (HillPOD(0.03, 2.0), HillPOD(0.06, 2.0)),
        free=[
            Free("intensity.rate", lower=0.0, log=True),
            Free("marks.mu", prior_sd=3.0),
            Free("pod1.q50", lower=0.0, log=True, prior_sd=1.0),
        ],
    )


def test_per_instrument_free_fields():
    model = _two_instrument_model()
    assert model.param_spec.names == ("intensity_rate", "marks_mu", "pod1_q50")
    intensity, marks, pods = model.build(
        {"intensity_rate": 2e-4, "marks_mu": -2.0, "pod1_q50": 0.5}
    )
    assert float(pods[0].q50) == pytest.approx(0.03) and float(pods[1].q50) == 0.5
    assert float(intensity.rate) == pytest.approx(2e-4) and float(marks.mu) == -2.0


@pytest.mark.slow
def test_nuts_runs_on_a_two_instrument_model(x64):
    rng = np.random.default_rng(4)
    t = np.sort(rng.uniform(0, 20 * DAY, 120))
    q = rng.lognormal(math.log(0.1), 0.8, 120)
    inst = (rng.uniform(size=120) < 0.5).astype(int)
    model = _two_instrument_model()
    data = PopulationData(t, PointMarks(q), [0.0, 0.0], [20 * DAY, 20 * DAY], instrument=inst)
    post = fit_nuts(model, data, key=jax.random.key(0), num_warmup=200, num_samples=200)
    assert post.samples.shape == (1, 200, 3) and np.all(np.isfinite(post.samples))


@pytest.mark.parametrize(
    "free, message",
    [
        ([Free("marks.nope", lower=0.0, log=True)], "no field 'nope'"),
        ([Free("intensity.period", lower=0.0, log=True)], "static field"),
        ([Free("pod3.q50", lower=0.0, log=True)], "1 PODs"),
        ([Free("marks.sigma", lower=2.0, log=True)], "strictly inside"),
        ([Free("marks.mu"), Free("marks.mu")], "repeats"),
        ([], "non-empty"),
    ],
)
def test_bad_declarations_are_refused(free, message):
    with pytest.raises(ValueError, match=message):
        PopulationModel(
            DiurnalIntensity(1e-4, 0.5), LognormalMarks(-3.0, 1.0), HillPOD(0.1), free=free
        )


def test_bad_paths_are_refused():
    for path in ("rate", "weather.rate", "a.b.c"):
        with pytest.raises(ValueError, match="path"):
            Free(path)
    with pytest.raises(ValueError, match="prior_sd"):
        Free("marks.mu", prior_sd=0.0)
