import jax.numpy as jnp
import jax.random as jr
import lineax as lx
import numpy as np
import pytest
from scipy import integrate, stats

from plumax_core import GaussianPrior, MixturePrior, Param, ParamSpec

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
    with pytest.raises(ValueError, match="`cov` must be positive definite; variance 1"):
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


def _mixture():
    a = _prior()
    b = GaussianPrior.from_std(
        SPEC, jnp.array([np.log(0.5), -2.0, 1.0]), jnp.array([0.3, 1.0, 0.5])
    )
    return MixturePrior((a, b), (1.0, 3.0)), a, b


def test_mixture_log_prob_matches_scipy(x64):
    mix, a, b = _mixture()
    np.testing.assert_allclose(mix.weights, [0.25, 0.75])
    z = np.array([[-1.0, 2.0, 0.3], [-0.5, -1.5, 1.2]])
    ref = np.log(
        0.25 * stats.multivariate_normal(np.asarray(a.mean), np.asarray(a.cov.as_matrix())).pdf(z)
        + 0.75 * stats.multivariate_normal(np.asarray(b.mean), np.asarray(b.cov.as_matrix())).pdf(z)
    )
    np.testing.assert_allclose(mix.log_prob_unconstrained(jnp.asarray(z)), ref, rtol=1e-10)
    # physical units: the same Jacobian as each component's
    params = SPEC.from_unconstrained(jnp.asarray(z))
    np.testing.assert_allclose(
        mix.log_prob(params),
        ref - np.asarray(SPEC.log_abs_det_jacobian(jnp.asarray(z))),
        rtol=1e-10,
    )
    assert np.isneginf(float(mix.log_prob({"Q": -1.0, "x0": 0.0, "frac": 0.5})))


def test_mixture_density_integrates_to_one(x64):
    spec = ParamSpec((Param("f", lower=2.0, upper=5.0),))
    mix = MixturePrior(
        (GaussianPrior.from_std(spec, 0.3, 0.8), GaussianPrior.from_std(spec, -1.0, 0.4)),
        (0.4, 0.6),
    )
    val, _ = integrate.quad(lambda f: float(jnp.exp(mix.log_prob({"f": f}))), 2.0, 5.0)
    assert val == pytest.approx(1.0, abs=1e-7)


def test_mixture_samples_match_components(x64):
    mix, a, b = _mixture()
    s = mix.sample(jr.key(3), 40000)
    assert bool(jnp.all(s["Q"] > 0)) and bool(jnp.all((s["frac"] > 0) & (s["frac"] < 1)))
    z = np.asarray(SPEC.to_unconstrained(s))
    # the mixture's mean and covariance: law of total expectation / variance
    means = np.stack([np.asarray(a.mean), np.asarray(b.mean)])
    covs = np.stack([np.asarray(a.cov.as_matrix()), np.asarray(b.cov.as_matrix())])
    w = np.array([0.25, 0.75])
    mean = w @ means
    cov = np.einsum("k,kij->ij", w, covs + np.einsum("ki,kj->kij", means - mean, means - mean))
    np.testing.assert_allclose(z.mean(0), mean, atol=0.04)
    np.testing.assert_allclose(np.cov(z.T), cov, atol=0.08)
    # the component shares: P(x0 < 0.5) against the mixture of the two normal CDFs
    assert (
        abs(
            np.mean(z[:, 1] < 0.5)
            - (
                0.25 * stats.norm(3.0, np.sqrt(2.0)).cdf(0.5)
                + 0.75 * stats.norm(-2.0, 1.0).cdf(0.5)
            )
        )
        < 0.01
    )
    np.testing.assert_array_equal(mix.sample(jr.key(3), 5)["x0"], mix.sample(jr.key(3), 5)["x0"])


def test_bad_mixture():
    a = _prior()
    with pytest.raises(ValueError, match="components"):
        MixturePrior(())
    with pytest.raises(TypeError, match=r"components\[1\]"):
        MixturePrior((a, "prior"))
    other = GaussianPrior.from_std(ParamSpec((Param("x"),)), 0.0, 1.0)
    with pytest.raises(ValueError, match=r"components\[1\]\.param_spec"):
        MixturePrior((a, other))
    with pytest.raises(ValueError, match="weights"):
        MixturePrior((a, a), (1.0, 2.0, 3.0))
    with pytest.raises(ValueError, match="weights"):
        MixturePrior((a, a), (1.0, -1.0))
    with pytest.raises(ValueError, match="weights"):
        MixturePrior((a, a), (1.0, float("nan")))
