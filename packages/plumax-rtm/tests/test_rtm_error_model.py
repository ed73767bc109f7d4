"""The retrieval error model (``plumax_rtm._error_model``) against independent facts.

* the covariogram of a separable AR(1) field returns its lag-1 correlation;
* the exponential correlation is the AR(1) Toeplitz matrix and the noise operator is the
  Kronecker product ``σ² R_y ⊗ R_x`` (dense check on a small grid), never a dense matrix;
* cross-validating a matched filter on Gaussian background spectra measures the
  out-of-sample variance growth that Reed, Mallett & Brennan (1974) predict for the
  sample covariance, ``(n - 1)/(n - p - 1)``, to within sampling error;
* an injection into a linear "retrieval" returns a response of exactly 1.
"""

import math

import jax.numpy as jnp
import lineax as lx
import numpy as np
import pytest

import plumax_rtm as pr
from plumax_core import linalg


def _ar1_field(rho, shape, rng):
    """A stationary separable AR(1) field with unit variance and lag-1 correlation rho."""
    ny, nx = shape
    e = rng.standard_normal((ny, nx))
    out = np.empty_like(e)
    out[0] = e[0]
    for i in range(1, ny):
        out[i] = rho * out[i - 1] + math.sqrt(1 - rho**2) * e[i]
    res = np.empty_like(out)
    res[:, 0] = out[:, 0]
    for j in range(1, nx):
        res[:, j] = rho * res[:, j - 1] + math.sqrt(1 - rho**2) * out[:, j]
    return res


@pytest.mark.parametrize("rho", [0.0, 0.3, 0.6])
def test_covariogram_recovers_the_lag_one_correlation(rho):
    z = _ar1_field(rho, (120, 120), np.random.default_rng(1))
    r, pairs = pr.covariogram(z, np.ones(z.shape, bool), max_lag=2)
    assert r[0] == 1.0 and pairs[1] == 2 * 120 * 119
    assert r[1] == pytest.approx(rho, abs=0.03)
    assert r[2] == pytest.approx(rho**2, abs=0.03)


def test_exponential_correlation_is_ar1_toeplitz():
    r = pr.exponential_correlation(5, 60.0, 120.0)
    rho = math.exp(-0.5)
    np.testing.assert_allclose(r, rho ** np.abs(np.subtract.outer(np.arange(5), np.arange(5))))
    assert np.all(np.linalg.eigvalsh(r) > 0)
    np.testing.assert_array_equal(pr.exponential_correlation(4, 60.0, 0.0), np.eye(4))


def _model(sigma, length):
    return pr.RetrievalErrorModel(
        sigma=sigma,
        variance_factor=1.2,
        offset_std=3.0,
        correlation_length=length,
        gain_log_std=0.02,
        gain_injections=(0.99, 1.01),
        covariogram=(1.0, 0.2),
        pixel_size=60.0,
    )


def test_noise_operator_is_the_kronecker_product():
    sig = np.full((3, 4), 2.0)
    em = _model(sig, 90.0)
    op = em.noise_operator()
    assert isinstance(op, linalg.Kronecker)
    ry, rx = em.correlation_factors()
    dense = np.diag(sig.ravel()) @ np.kron(ry, rx) @ np.diag(sig.ravel())
    np.testing.assert_allclose(np.asarray(op.as_matrix()), dense, rtol=1e-6)
    diag = _model(sig, 0.0).noise_operator()
    assert isinstance(diag, lx.DiagonalLinearOperator)
    np.testing.assert_allclose(np.asarray(lx.diagonal(diag)), 4.0)
    uneven = sig.copy()
    uneven[0, 0] = 3.0
    with pytest.raises(ValueError, match="uniform `sigma`"):
        _model(uneven, 90.0).noise_operator()


def test_error_model_attrs_round_trip_and_checks():
    em = _model(np.full((3, 4), 2.0), 90.0)
    back = pr.RetrievalErrorModel.from_attrs(em.to_attrs(), em.sigma, 60.0)
    for name in ("variance_factor", "offset_std", "correlation_length", "gain_log_std"):
        assert getattr(back, name) == getattr(em, name)
    assert back.gain_injections == em.gain_injections
    with pytest.raises(ValueError, match="retrieval_gain_log_std"):
        pr.RetrievalErrorModel.from_attrs(
            {k: v for k, v in em.to_attrs().items() if k != "retrieval_gain_log_std"},
            em.sigma,
            60.0,
        )
    with pytest.raises(ValueError, match="variance_factor"):
        pr.RetrievalErrorModel(
            sigma=em.sigma,
            variance_factor=0.5,
            offset_std=0.0,
            correlation_length=0.0,
            gain_log_std=0.0,
            gain_injections=(),
            covariogram=(),
            pixel_size=60.0,
        )


def test_cross_validation_matches_the_sample_covariance_loss():
    """Gaussian spectra: the held-out variance factor at the full size is the Gaussian
    theory (n-1)/(n-p-1) to within its sampling error (a few %)."""
    rng = np.random.default_rng(0)
    ny, nx, p = 30, 30, 40
    a = rng.standard_normal((p, p)) / math.sqrt(p)
    cov = a @ a.T + 0.1 * np.eye(p)
    mean = np.linspace(5.0, 8.0, p)
    x = mean + rng.standard_normal((ny, nx, p)) @ np.linalg.cholesky(cov).T
    target = rng.standard_normal(p) * 1e-3
    bg = np.ones((ny, nx), bool)

    def alpha_fn(held):
        r = pr.matched_filter(jnp.asarray(x), jnp.asarray(target), exclude=jnp.asarray(held))
        return np.asarray(r.enhancement, np.float64), np.asarray(r.uncertainty, np.float64)

    v, offset = pr.cross_validated_errors(alpha_fn, bg, p, folds=5, seed=0)
    n = ny * nx
    theory = (n - 1) / (n - p - 1)
    assert v == pytest.approx(theory, rel=0.08)
    assert offset >= 1 / math.sqrt(n)
    with pytest.raises(ValueError, match="folds"):
        pr.cross_validated_errors(alpha_fn, bg, p, folds=1)
    with pytest.raises(ValueError, match="training pixels"):
        pr.cross_validated_errors(alpha_fn, np.zeros((ny, nx), bool) | (np.arange(nx) < 1), p)


def test_injection_into_a_linear_retrieval_has_unit_response():
    """If the retrieval returns exactly -log(transmission), the response is 1."""
    shape, m = (12, 12), 3
    k = np.array([1e-4, 2e-4, 5e-5])
    rad = np.ones((*shape, m))

    def transmission(dx):
        return np.exp(-np.asarray(dx)[..., None] * k)

    def retrieve(cube):
        return -np.log(cube[..., 1]) / k[1]

    tmpl = np.zeros(shape)
    tmpl[5:7, 5:8] = [[100.0, 300.0, 50.0], [20.0, 80.0, 10.0]]
    avoid = np.zeros(shape, bool)
    avoid[4:8, 4:9] = True
    g = pr.injection_gains(retrieve, rad, transmission, tmpl, avoid, np.zeros(shape), n=5)
    assert g.shape == (5,)
    np.testing.assert_allclose(g, 1.0, rtol=1e-9)
    with pytest.raises(ValueError, match="no positive enhancement"):
        pr.injection_gains(retrieve, rad, transmission, np.zeros(shape), avoid, tmpl, n=2)
