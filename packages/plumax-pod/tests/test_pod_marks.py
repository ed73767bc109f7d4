"""Mark distributions against scipy: normalisation, means, quadrature, sampling."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.stats

from plumax_pod import (
    HillPOD,
    LognormalMarks,
    LognormalParetoMarks,
    MixtureMarks,
    TruncatedPowerLawMarks,
)

MARKS = {
    "lognormal": lambda: LognormalMarks(np.log(0.1), 1.3),
    "powerlaw_bounded": lambda: TruncatedPowerLawMarks(2.2, 0.01, 50.0),
    "powerlaw_unbounded": lambda: TruncatedPowerLawMarks(2.6, 0.05),
    "lognormal_pareto": lambda: LognormalParetoMarks(np.log(0.05), 1.0, 0.3, 2.4),
    "mixture": lambda: MixtureMarks(
        (LognormalMarks(np.log(0.02), 0.8), LognormalMarks(np.log(1.0), 0.6)),
        jnp.log(jnp.array([0.8, 0.2])),
    ),
}


def _quad_logq(fn, lo=-30.0, hi=12.0, points=None):
    """∫ fn(x) dx over log Q with scipy."""
    return scipy.integrate.quad(fn, lo, hi, points=points, limit=400)[0]


@pytest.mark.parametrize("name", sorted(MARKS))
def test_marks_against_scipy_quadrature(name, x64, getkey):
    m = MARKS[name]()
    pts = [float(np.log(0.3)), float(np.log(0.01)), float(np.log(50.0)), float(np.log(0.05))]
    dens = jax.jit(lambda x: jnp.exp(m.log_prob_log(x)))
    fx = lambda x: float(dens(jnp.asarray(x)))
    assert _quad_logq(fx, points=pts) == pytest.approx(1.0, rel=1e-6)
    # the density in Q integrates to 1 too (log_prob = log_prob_log − log Q)
    assert float(jnp.exp(m.log_prob(jnp.asarray(0.2)))) == pytest.approx(fx(np.log(0.2)) / 0.2)
    pod = HillPOD(0.2, 2.0)
    ref_p = _quad_logq(lambda x: fx(x) * float(pod(jnp.exp(x))), points=pts)
    x, lw = m.log_quadrature(64)
    assert float(jnp.sum(jnp.exp(lw))) == pytest.approx(1.0, rel=1e-6)
    assert float(m.expect(pod, 64)) == pytest.approx(ref_p, rel=1e-4)
    ref_mean = _quad_logq(lambda x: fx(x) * np.exp(x), hi=40.0, points=pts)
    assert float(m.mean()) == pytest.approx(ref_mean, rel=1e-5)
    # sampling: one-sample KS against the CDF from quadrature
    s = np.sort(np.asarray(m.sample(getkey(), (4000,))))
    assert np.all(s > 0)
    xs = np.linspace(-30.0, 12.0, 200_001)
    cum = scipy.integrate.cumulative_trapezoid(np.asarray(dens(jnp.asarray(xs))), xs, initial=0)
    cdf = np.interp(np.log(s[::40]), xs, cum)
    emp = (np.arange(0, 4000, 40) + 0.5) / 4000
    assert np.max(np.abs(cdf - emp)) < 1.63 / np.sqrt(4000) + 0.01  # KS 1% critical value


def test_lognormal_matches_scipy(x64):
    m = LognormalMarks(-1.0, 0.7)
    q = np.array([0.01, 0.3, 2.0])
    ref = scipy.stats.lognorm.logpdf(q, 0.7, scale=np.exp(-1.0))
    assert np.allclose(np.asarray(m.log_prob(q)), ref)
    assert float(m.mean()) == pytest.approx(scipy.stats.lognorm.mean(0.7, scale=np.exp(-1.0)))


def test_powerlaw_matches_scipy_pareto(x64):
    m = TruncatedPowerLawMarks(2.5, 0.1)
    q = np.array([0.1, 0.5, 10.0])
    # scipy pareto(b) has density b q_min^b / q^(b+1): density exponent alpha = b + 1
    assert np.allclose(np.asarray(m.log_prob(q)), scipy.stats.pareto.logpdf(q, 1.5, scale=0.1))
    assert float(m.mean()) == pytest.approx(scipy.stats.pareto.mean(1.5, scale=0.1))
    assert float(TruncatedPowerLawMarks(1.8, 0.1).mean()) == np.inf


def test_lognormal_pareto_continuity(x64):
    m = LognormalParetoMarks(0.0, 1.0, 2.0, 1.5)
    eps = 1e-7
    lo, hi = m.log_prob(2.0 * (1 - eps)), m.log_prob(2.0 * (1 + eps))
    assert float(lo) == pytest.approx(float(hi), abs=1e-5)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: LognormalMarks(0.0, -1.0), "sigma"),
        (lambda: TruncatedPowerLawMarks(2.0, 1.0, 0.5), "q_max"),
        (lambda: TruncatedPowerLawMarks(0.5, 1.0), "alpha"),
        (lambda: LognormalParetoMarks(0.0, 1.0, -1.0, 1.0), "theta"),
        (lambda: MixtureMarks((LognormalMarks(0.0, 1.0),), jnp.zeros(2)), "log_weights"),
    ],
)
def test_bad_input(make, match):
    with pytest.raises(ValueError, match=match):
        make()
