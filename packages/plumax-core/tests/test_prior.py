import jax.numpy as jnp
import jax.random as jr
import lineax as lx
import numpy as np
import pytest
from scipy import integrate, stats

from plumax_core import GaussianPrior, Param, ParamSpec

SPEC = ParamSpec(
    (
        Param("Q", units="kg/s", lower=0.0, log=True),
        Param("x0", units="m"),
        Param("frac", lower=0.0, upper=1.0),
    )
)


def _prior():
    cov = jnp.array([[0.5, 0.1, 0.0], [0.1, 2.0, 0.0], [0.0, 0.0, 1.0]])
    return GaussianPrior(jnp.array([np.log(0.1), 3.0, 0.0]), cov, SPEC)


def test_log_prob_matches_scipy(x64):
    prior = _prior()
    # independent 1-D marginal checks with a diagonal prior
    diag = GaussianPrior.from_std(
        SPEC, jnp.array([np.log(0.1), 3.0, 0.0]), jnp.array([0.7, 1.5, 1.0])
    )
    q, x0, frac = 0.3, 1.0, 0.25
    lp = diag.log_prob({"Q": q, "x0": x0, "frac": frac})
    ref = (
        stats.lognorm(s=0.7, scale=0.1).logpdf(q)
        + stats.norm(3.0, 1.5).logpdf(x0)
        # logit-normal density
        + stats.norm(0, 1).logpdf(np.log(frac / (1 - frac)))
        - np.log(frac * (1 - frac))
    )
    np.testing.assert_allclose(lp, ref, rtol=1e-10)
    # full covariance in unconstrained space vs scipy multivariate normal
    z = jnp.array([-1.0, 2.0, 0.3])
    mvn = stats.multivariate_normal(np.asarray(prior.mean), np.asarray(prior.cov.as_matrix()))
    np.testing.assert_allclose(
        prior.log_prob_unconstrained(z), mvn.logpdf(np.asarray(z)), rtol=1e-10
    )


def test_density_integrates_to_one_in_physical_units(x64):
    prior = GaussianPrior.from_std(ParamSpec((Param("f", lower=2.0, upper=5.0),)), 0.3, 0.8)
    val, _ = integrate.quad(lambda f: float(jnp.exp(prior.log_prob({"f": f}))), 2.0, 5.0)
    assert val == pytest.approx(1.0, abs=1e-7)


def test_samples_in_support_and_moments(x64):
    prior = _prior()
    s = prior.sample(jr.key(1), 20000)
    assert bool(jnp.all(s["Q"] > 0)) and bool(jnp.all((s["frac"] > 0) & (s["frac"] < 1)))
    z = SPEC.to_unconstrained(s)
    np.testing.assert_allclose(z.mean(0), prior.mean, atol=0.05)
    np.testing.assert_allclose(np.cov(np.asarray(z).T), prior.cov.as_matrix(), atol=0.06)
    assert np.isneginf(float(prior.log_prob({"Q": -1.0, "x0": 0.0, "frac": 0.5})))
    # same key, same draws
    np.testing.assert_array_equal(prior.sample(jr.key(1), 5)["Q"], prior.sample(jr.key(1), 5)["Q"])


def test_bad_prior():
    with pytest.raises(ValueError, match="mean"):
        GaussianPrior(jnp.zeros(2), jnp.eye(3), SPEC)
    with pytest.raises(ValueError, match="cov"):
        GaussianPrior(jnp.zeros(3), jnp.eye(2), SPEC)
    with pytest.raises(ValueError, match="cov diagonal"):
        GaussianPrior(jnp.zeros(3), lx.DiagonalLinearOperator(jnp.array([1.0, -1.0, 1.0])), SPEC)
    with pytest.raises(ValueError, match="std"):
        GaussianPrior.from_std(SPEC, jnp.zeros(3), -1.0)


def test_non_spd_covariance_rejected():
    with pytest.raises(ValueError, match="positive definite"):
        GaussianPrior(
            jnp.zeros(3), jnp.array([[1.0, 2.0, 0.0], [2.0, 1.0, 0.0], [0, 0, 1.0]]), SPEC
        )
    with pytest.raises(ValueError, match="symmetric"):
        GaussianPrior(
            jnp.zeros(3), jnp.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.0], [0, 0, 1.0]]), SPEC
        )
