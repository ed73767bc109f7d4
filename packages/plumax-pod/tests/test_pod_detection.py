"""POD curves: range, monotonicity, gradients, log-space stability, reparameterisations."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from plumax_pod import (
    SNRPOD,
    CloglogPOD,
    HillPOD,
    LogLogisticPOD,
    MultiCovariateLogisticPOD,
    MultiInstrumentPOD,
    OverpassSchedule,
    ProbitPOD,
    WindNormalisedLogisticPOD,
)

COV = {"wind": 4.0, "albedo": 0.3, "sza": 45.0, "pixel_size": 60.0}
PODS = {
    "hill": lambda: HillPOD(0.2, 2.5),
    "loglogistic": lambda: LogLogisticPOD(np.log(0.2), 0.4),
    "wind_logistic": lambda: WindNormalisedLogisticPOD(0.05, 0.01),
    "probit": lambda: ProbitPOD(0.2, 0.7),
    "cloglog": lambda: CloglogPOD(0.2, 1.5),
    "snr": lambda: SNRPOD(0.02, 3.0),
    "multicov": lambda: MultiCovariateLogisticPOD(0.0, 2.0, -0.8, 3.0, 1.0, -0.5, q_ref=0.2),
    "union": lambda: MultiInstrumentPOD((HillPOD(0.2, 2.0), ProbitPOD(0.5, 0.5))),
}
Q = jnp.logspace(-5, 3, 161)


USES_COV = {"wind_logistic", "snr", "multicov"}


@eqx.filter_jit
def _eval(pod, q, cov):
    def total(pq):
        m, x = pq
        return jnp.sum(m.log_prob_detect(x, cov) + m.log_prob_miss(x, cov))

    gp, g = eqx.filter_grad(total)((pod, q))
    return pod(q, cov), pod.log_prob_detect(q, cov), pod.log_prob_miss(q, cov), g, gp


@pytest.mark.parametrize("name", sorted(PODS))
def test_pod_contract(name):
    for cov in (None, COV) if name in USES_COV else (None,):
        _check_contract(*_eval(PODS[name](), Q, cov))


def _check_contract(p, lp, lm, g, gp):
    assert bool(jnp.all((p >= 0) & (p <= 1)))
    assert bool(jnp.all(jnp.diff(p) >= -1e-7)), "P_d must be nondecreasing in Q"
    assert float(p[-1]) > 0.99 and float(p[0]) < 0.05
    # log P + log(1-P) consistency where both are representable
    mid = (p > 1e-4) & (p < 1 - 1e-4)
    assert jnp.allclose(jnp.exp(lp[mid]) + jnp.exp(lm[mid]), 1.0, atol=1e-5)
    assert bool(jnp.all(jnp.isfinite(g[mid])))
    leaves = [x for x in jax.tree_util.tree_leaves(gp) if eqx.is_inexact_array(x)]
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in leaves)


def test_log_space_stability_in_tails():
    pod = HillPOD(1.0, 3.0)
    q = jnp.array([1e-30, 1e30])
    lp, lm = pod.log_prob_detect(q), pod.log_prob_miss(q)
    # sigmoid(±η) tails: log P ≈ η for η → −∞ (naive log(p) would be −inf)
    eta = 3.0 * jnp.log(q)
    assert float(lp[0]) == pytest.approx(float(eta[0]), rel=1e-5)
    assert float(lm[1]) == pytest.approx(float(-eta[1]), rel=1e-5)
    probit = ProbitPOD(1.0, 0.5)
    assert float(probit.log_prob_detect(jnp.asarray(1e-8))) == pytest.approx(
        scipy.stats.norm.logcdf(np.log(1e-8) / 0.5), rel=1e-4
    )


def test_hill_equals_loglogistic_and_scipy(x64):
    q50, n = 0.37, 2.3
    hill = HillPOD(q50, n)
    ll = LogLogisticPOD(np.log(q50), 1 / n)  # documented reparameterisation
    q = jnp.logspace(-4, 2, 50)
    assert jnp.allclose(hill(q), ll(q), rtol=1e-12)
    assert jnp.allclose(hill(q), q**n / (q**n + q50**n), rtol=1e-12)
    # scipy's Fisk distribution is the log-logistic: cdf(q; c=n, scale=q50)
    assert np.allclose(np.asarray(hill(q)), scipy.stats.fisk.cdf(np.asarray(q), n, scale=q50))
    assert float(hill(jnp.asarray(q50))) == pytest.approx(0.5)
    assert float(CloglogPOD(q50, n)(jnp.asarray(q50))) == pytest.approx(0.5)
    assert float(ProbitPOD(q50, 0.5)(jnp.asarray(q50))) == pytest.approx(0.5)


def test_snr_is_neyman_pearson(x64):
    pod = SNRPOD(0.01, 2.0)
    q, u = 0.06, 3.0  # SNR = (0.06/3)/0.01 = 2 at the reference pixel
    assert float(pod(q, {"wind": u})) == pytest.approx(scipy.stats.norm.cdf(2.0 - 2.0))
    assert float(pod(q, {"wind": u, "pixel_size": 60.0})) == pytest.approx(
        scipy.stats.norm.cdf(1.0 - 2.0)
    )


def test_union_and_schedules(x64):
    a, b = HillPOD(0.2, 2.0), ProbitPOD(0.5, 0.5)
    q = jnp.logspace(-3, 1, 20)
    union = MultiInstrumentPOD((a, b))
    assert jnp.allclose(union(q), 1 - (1 - a(q)) * (1 - b(q)), rtol=1e-10)
    assert bool(jnp.all(union(q) >= jnp.maximum(a(q), b(q)) - 1e-12))
    sched = MultiInstrumentPOD(
        (a, b),
        (
            OverpassSchedule(jnp.array([0.0, 86400.0]), 600.0),
            OverpassSchedule(jnp.array([3600.0]), 600.0),
        ),
    )
    assert jnp.allclose(sched(q, t=jnp.asarray(100.0)), a(q))  # only A overhead
    assert jnp.allclose(sched(q, t=jnp.asarray(3500.0)), b(q))
    assert jnp.allclose(sched(q, t=jnp.asarray(40000.0)), 0.0)


def test_multicovariate_directions():
    pod = PODS["multicov"]()
    q = jnp.asarray(0.2)
    assert float(pod(q, {"wind": 8.0})) < float(pod(q, {"wind": 2.0}))  # b_wind < 0
    assert float(pod(q, {"albedo": 0.5})) > float(pod(q, {"albedo": 0.1}))
    assert float(pod(q)) == pytest.approx(0.5)  # reference conditions, q = q_ref, b0 = 0


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: HillPOD(-1.0, 2.0), "q50"),
        (lambda: HillPOD(1.0, 0.0), "slope"),
        (lambda: LogLogisticPOD(0.0, -1.0), "scale"),
        (lambda: ProbitPOD(1.0, np.nan), "sigma"),
        (lambda: MultiCovariateLogisticPOD(0.0, -1.0), "b_q"),
        (lambda: SNRPOD(0.0), "noise"),
        (
            lambda: MultiInstrumentPOD((HillPOD(1.0),), (OverpassSchedule(jnp.zeros(1)),) * 2),
            "schedules",
        ),
    ],
)
def test_bad_input(make, match):
    with pytest.raises(ValueError, match=match):
        make()
