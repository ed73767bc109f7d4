"""Thinned marked TPP likelihood: regimes against scipy, importance correction, dict import."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.stats

from plumax_pod import (
    ConstantIntensity,
    GaussianMarks,
    HillPOD,
    LognormalMarks,
    PointMarks,
    SampleMarks,
    detection_fraction,
    mark_data_from_dicts,
    tpp_log_likelihood,
)

LAM, MU, SIG, Q50, N = 1e-4, np.log(0.05), 1.2, 0.08, 2.0


def _model():
    return ConstantIntensity(LAM), LognormalMarks(MU, SIG), HillPOD(Q50, N)


def _hill(q):
    return q**N / (q**N + Q50**N)


def test_point_regime_against_scipy(x64):
    rng = np.random.default_rng(0)
    q = np.exp(rng.normal(MU, SIG, 40))
    t = np.sort(rng.uniform(0, 1e6, 40))
    lam, marks, pod = _model()
    got = float(tpp_log_likelihood(lam, marks, pod, t, PointMarks(q), 0.0, 1e6))
    p_bar = scipy.integrate.quad(
        lambda x: _hill(x) * scipy.stats.lognorm.pdf(x, SIG, scale=np.exp(MU)), 0, np.inf
    )[0]
    ref = (
        40 * np.log(LAM)
        + np.sum(np.log(_hill(q)) + scipy.stats.lognorm.logpdf(q, SIG, scale=np.exp(MU)))
        - LAM * 1e6 * p_bar
    )
    assert got == pytest.approx(ref, rel=1e-9)
    assert float(detection_fraction(marks, pod)) == pytest.approx(p_bar, rel=1e-8)


def test_gaussian_regime_against_scipy(x64):
    m, s = np.array([np.log(0.03), np.log(0.5)]), np.array([0.4, 0.2])
    lam, marks, pod = _model()
    got = np.asarray(GaussianMarks(m, s).log_event_integral(marks, pod))
    for i in range(2):
        ref = scipy.integrate.quad(
            lambda x, i=i: (
                _hill(np.exp(x))
                * scipy.stats.norm.pdf(x, m[i], s[i])
                * scipy.stats.norm.pdf(x, MU, SIG)
            ),
            -20,
            10,
        )[0]
        assert got[i] == pytest.approx(np.log(ref), rel=1e-7)
    # narrow summaries approach the point regime (in log-Q density)
    q = np.exp(m)
    narrow = np.asarray(GaussianMarks(m, np.full(2, 1e-4)).log_event_integral(marks, pod))
    point = np.log(_hill(q)) + scipy.stats.norm.logpdf(m, MU, SIG)
    assert np.allclose(narrow, point, atol=1e-6)


def _posterior_samples(rng, m_lik, s_lik, m0, s0, S):
    """Exact draws from posterior ∝ N(x; m_lik, s_lik) N(x; m0, s0) and the prior density."""
    prec = 1 / s_lik**2 + 1 / s0**2
    mp = (m_lik / s_lik**2 + m0 / s0**2) / prec
    x = mp[:, None] + prec[:, None] ** -0.5 * rng.standard_normal((len(m_lik), S))
    return x, scipy.stats.norm.logpdf(x, m0[:, None], s0[:, None]), mp, prec**-0.5


def test_samples_regime_divides_out_prior(x64):
    rng = np.random.default_rng(1)
    m_lik, s_lik = np.log(np.array([0.02, 0.1, 0.6])), np.array([0.3, 0.25, 0.2])
    lam, marks, pod = _model()
    ref = np.asarray(GaussianMarks(m_lik, s_lik, n_nodes=40).log_event_integral(marks, pod))
    for m0, s0 in [(np.full(3, -2.0), np.full(3, 1.5)), (np.full(3, -4.0), np.full(3, 3.0))]:
        x, lp, mp, sp = _posterior_samples(rng, m_lik, s_lik, m0, s0, 20000)
        # both regimes equal log ∫ P_d L f up to the per-event evidence, which we add back
        log_z = scipy.stats.norm.logpdf(m_lik, m0, np.sqrt(s_lik**2 + s0**2))
        got = np.asarray(SampleMarks(x, lp).log_event_integral(marks, pod)) + log_z
        assert np.allclose(got, ref, atol=0.02)
        gauss = GaussianMarks(mp, sp, jnp.asarray(m0), jnp.asarray(s0))
        lm, ls = gauss.likelihood_moments()
        assert np.allclose(lm, m_lik) and np.allclose(ls, s_lik)


def test_ess_warning(x64):
    rng = np.random.default_rng(2)
    x, lp, _, _ = _posterior_samples(
        rng, np.array([np.log(20.0)]), np.array([0.05]), np.array([3.0]), np.array([0.05]), 200
    )
    sm = SampleMarks(x, lp - 50.0 * (x - 3.0))  # wrong prior density: wildly varying weights
    lam, marks, pod = _model()
    with pytest.warns(RuntimeWarning, match="ESS"):
        sm.check_ess(marks, pod)
    ok = SampleMarks(
        *_posterior_samples(
            rng, np.array([-3.0]), np.array([0.3]), np.array([-3.0]), np.array([2.0]), 500
        )[:2]
    )
    assert ok.check_ess(marks, pod)[0] > 50


def test_mark_data_from_dicts_json_and_units(x64):
    recs = [
        {"mean": float(np.log(180.0)), "cov": [[0.09]], "units": "kg/h"},
        {"mean": float(np.log(0.1)), "std": 0.2},
    ]
    md = mark_data_from_dicts(json.loads(json.dumps(recs)))
    assert isinstance(md, GaussianMarks)
    assert np.allclose(md.mean, np.log([0.05, 0.1])) and np.allclose(md.std, [0.3, 0.2])
    batched = {"samples": np.ones((2, 5)) * 0.1, "log_prior": np.zeros((2, 5)), "space": "linear"}
    batched = {k: (v if isinstance(v, str) else v) for k, v in batched.items()}
    sm = mark_data_from_dicts(
        [{k: (v[i] if not isinstance(v, str) else v) for k, v in batched.items()} for i in range(2)]
    )
    assert isinstance(sm, SampleMarks)
    assert np.allclose(sm.log_q, np.log(0.1)) and np.allclose(sm.log_prior, np.log(0.1))
    with pytest.raises(ValueError, match="mixes"):
        mark_data_from_dicts([recs[0], {"samples": [1.0], "log_prior": [0.0]}])
    with pytest.raises(ValueError, match=r"`records\[0\]\['units'\]` 'lb/h'"):
        mark_data_from_dicts([{"mean": 0.0, "std": 1.0, "units": "lb/h"}])
    # Any rate unit of plumax_core.units: 0.18 t/h = 180 kg/h = 0.05 kg/s.
    t_h = mark_data_from_dicts([{"mean": float(np.log(0.18)), "std": 0.3, "units": "T/h"}])
    assert np.allclose(t_h.mean, np.log(0.05))
    with pytest.raises(ValueError, match="prior_std"):
        GaussianMarks([0.0], [1.0], jnp.asarray([0.0]), jnp.asarray([0.5]))


def test_likelihood_gradient_finite_and_shape_check():
    lam, marks, pod = _model()
    t, q = jnp.array([1.0, 2.0]), PointMarks(jnp.array([0.1, 0.2]))
    g = jax.grad(lambda r: tpp_log_likelihood(ConstantIntensity(r), marks, pod, t, q, 0.0, 10.0))(
        jnp.asarray(0.5)
    )
    assert bool(jnp.isfinite(g))
    with pytest.raises(ValueError, match="times"):
        tpp_log_likelihood(lam, marks, pod, jnp.ones(3), q, 0.0, 10.0)
    with pytest.raises(ValueError, match="q"):
        PointMarks(jnp.array([0.1, -1.0]))
