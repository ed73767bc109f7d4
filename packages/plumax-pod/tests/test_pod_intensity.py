"""Intensity models: compensators against scipy quadrature, contracts, bad input."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate

from plumax_pod import (
    ConstantIntensity,
    DiurnalIntensity,
    DiurnalSeasonalIntensity,
    HawkesIntensity,
    OperationalIntensity,
    PeriodicBatchIntensity,
    SeasonalIntensity,
    WeibullRenewalIntensity,
    expected_waiting_time,
    prob_at_least_one,
)

DAY = 86400.0
HIST = np.array([0.3, 1.1, 1.15, 2.7, 4.0, np.inf]) * DAY

INTENSITIES = {
    "constant": lambda: ConstantIntensity(2e-5),
    "diurnal": lambda: DiurnalIntensity(2e-5, 0.7, 0.4 * DAY),
    "seasonal": lambda: SeasonalIntensity(2e-5, 0.5, 40 * DAY),
    "diurnal_seasonal": lambda: DiurnalSeasonalIntensity(2e-5, 0.6, 0.4, 0.3 * DAY, 100 * DAY),
    "operational": lambda: OperationalIntensity(5e-5, 1e-6, 7.5, 17.25, workdays=5),
    "periodic_batch": lambda: PeriodicBatchIntensity(
        1e-6, 3e-4, 0.2 * DAY, period=DAY / 3, duration=1800.0
    ),
    "weibull_renewal": lambda: WeibullRenewalIntensity(1.7, 0.8 * DAY, HIST),
    "weibull_bursty": lambda: WeibullRenewalIntensity(0.6, 0.8 * DAY, HIST),
    "hawkes": lambda: HawkesIntensity(1e-5, 0.6, 1 / 7200.0, HIST),
}
# discontinuities (event times / window edges) for scipy.integrate.quad's `points`
WINDOWS = [(0.05 * DAY, 0.9 * DAY), (0.2 * DAY, 4.3 * DAY)]
PIECEWISE = {"operational": 3600.0 / 4, "periodic_batch": 1800.0}


def _breaks(name, t0, t1):
    step = PIECEWISE.get(name)
    grid = np.arange(np.floor(t0 / step) * step, t1, step) if step else np.zeros(0)
    pts = np.concatenate([grid, HIST[np.isfinite(HIST)]])
    return np.sort(pts[(pts > t0) & (pts < t1)])


@pytest.mark.parametrize("name", sorted(INTENSITIES))
def test_integrated_matches_scipy_quad(name, x64):
    lam = INTENSITIES[name]()
    jf = jax.jit(lambda t: lam(t))
    f = lambda t: float(jf(jnp.asarray(t)))
    for t0, t1 in WINDOWS:
        pts = _breaks(name, t0, t1)
        edges = np.concatenate([[t0], pts, [t1]])
        ref = sum(
            scipy.integrate.quad(f, a, b, limit=200)[0]
            for a, b in zip(edges[:-1], edges[1:], strict=True)
            if b > a
        )
        got = float(lam.integrated(t0, t1))
        assert got == pytest.approx(ref, rel=1e-6, abs=1e-9), name


@eqx.filter_jit
def _contract_values(lam, t, a, b, c):
    g = eqx.filter_grad(lambda m: m.integrated(a, c))(lam)
    return (
        lam(t),
        lam.integrated(a, b) + lam.integrated(b, c),
        lam.integrated(a, c),
        lam.integrated(jnp.stack([a, b]), jnp.stack([b, c])),
        g,
    )


@pytest.mark.parametrize("name", sorted(INTENSITIES))
def test_contract_nonneg_additive_jit_grad(name):
    lam = INTENSITIES[name]()
    t = jnp.linspace(0.0, 6 * DAY, 97)
    a, b, c = jnp.asarray(0.1 * DAY), jnp.asarray(1.3 * DAY), jnp.asarray(3.9 * DAY)
    v, ab_bc, ac, batched, g = _contract_values(lam, t, a, b, c)
    assert v.shape == t.shape and bool(jnp.all(v >= 0))
    assert float(ab_bc) == pytest.approx(float(ac), rel=1e-5)
    assert batched.shape == (2,)
    assert jnp.allclose(lam(t[:5]), v[:5], rtol=1e-5)  # eager == jit
    leaves = [x for x in jax.tree_util.tree_leaves(g) if eqx.is_inexact_array(x)]
    # the history (may hold +inf padding) is data, not a parameter
    params = [x for x in leaves if x.ndim == 0]
    assert params and all(bool(jnp.isfinite(x)) for x in params)


def test_operational_counts_working_hours():
    lam = OperationalIntensity(1.0, 0.0, 8.0, 18.0, workdays=5)
    # one full week: 5 days x 10 h of working time
    assert float(lam.integrated(0.0, 7 * DAY)) == pytest.approx(50 * 3600.0)
    assert float(lam(jnp.asarray(5 * DAY + 12 * 3600.0))) == 0.0  # Saturday noon
    assert float(lam(jnp.asarray(12 * 3600.0))) == 1.0


def test_weibull_k1_is_poisson():
    lam = WeibullRenewalIntensity(1.0, 1000.0, HIST)
    assert float(lam.integrated(0.0, 3 * DAY)) == pytest.approx(3 * DAY / 1000.0, rel=1e-5)


def test_persistency_closed_forms(x64):
    lam = ConstantIntensity(1 / 3600.0)
    assert float(prob_at_least_one(lam, 0.0, 3600.0)) == pytest.approx(1 - np.exp(-1))
    assert float(expected_waiting_time(lam, p_detect=0.25)) == pytest.approx(4 * 3600.0)
    # quadrature path (non-constant class) against 1/λ
    d = DiurnalIntensity(1 / 3600.0, 0.0)
    assert float(expected_waiting_time(d, horizon=40 * 3600.0, n_panels=64)) == pytest.approx(
        3600.0, rel=1e-6
    )


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: ConstantIntensity(-1.0), "rate"),
        (lambda: DiurnalIntensity(1.0, 1.5), "amplitude"),
        (lambda: OperationalIntensity(1.0, 0.0, 18.0, 8.0), "start_hour"),
        (lambda: PeriodicBatchIntensity(0.0, 1.0, period=10.0, duration=20.0), "duration"),
        (lambda: WeibullRenewalIntensity(-1.0, 1.0, HIST), "shape"),
        (lambda: HawkesIntensity(1.0, 1.2, 1.0, HIST), "alpha"),
        (lambda: HawkesIntensity(1.0, 0.5, 1.0, np.zeros((2, 2))), "history"),
    ],
)
def test_bad_input(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_numpyro_priors_build_every_kind():
    import numpyro

    import plumax_pod
    from plumax_pod import AbstractIntensity

    for kind in plumax_pod.INTENSITY_KINDS:
        lam = numpyro.handlers.seed(
            lambda kind=kind: plumax_pod.sample_intensity(kind, history=HIST), rng_seed=0
        )()
        assert isinstance(lam, AbstractIntensity)
        assert float(lam.integrated(0.0, DAY)) >= 0.0
    with pytest.raises(ValueError, match="kind"):
        plumax_pod.sample_intensity("nope")
