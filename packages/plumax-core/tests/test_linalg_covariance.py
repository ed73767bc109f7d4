"""Matérn covariances and `DiagonalScaled`, against independent numpy/scipy references.

The references are built without the code under test: the Matérn-3/2 kernel from the
general Matérn form with scipy's modified Bessel function `K_ν` (Rasmussen & Williams
2006, eq. 4.14, ν = 3/2), the separable covariance with `np.kron`, and every solve,
log-determinant and factorisation with `np.linalg`.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import pytest
import scipy.special
import scipy.stats

import plumax_core as pc
from plumax_core import linalg

RTOL = ATOL = 1e-10


@pytest.fixture
def rng():
    return np.random.default_rng(11)


def _matern_bessel(d, length, nu=1.5):
    """The general Matérn kernel (R&W 2006, eq. 4.14) via scipy's Bessel `K_ν`."""
    d = np.asarray(d, dtype=np.float64)
    s = np.sqrt(2 * nu) * d / length
    with np.errstate(invalid="ignore"):
        k = 2 ** (1 - nu) / scipy.special.gamma(nu) * s**nu * scipy.special.kv(nu, s)
    return np.where(d == 0, 1.0, k)


def _matern_ref(coords, length, variance=1.0):
    coords = np.asarray(coords, dtype=np.float64)
    return variance * _matern_bessel(np.abs(coords[:, None] - coords[None, :]), length)


def _exp_ref(coords, scale):
    coords = np.asarray(coords, dtype=np.float64)
    return np.exp(-np.abs(coords[:, None] - coords[None, :]) / scale)


def _close(actual, expected, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(np.asarray(actual), expected, rtol=rtol, atol=atol)


def test_matern32_values_and_psd(x64):
    # at d = 0, ℓ/2, ℓ, 2ℓ, 3.7ℓ (ℓ = 1): (1 + √3 d) exp(-√3 d), and the Bessel form
    coords = np.array([0.0, 0.5, 1.0, 2.0, 3.7])
    table = [1.0, 0.7848876539574506, 0.4833577245965077, 0.13973135019231467, 0.0122045295473]
    op = linalg.matern32(coords, 1.0, variance=2.5)
    row = np.asarray(op.as_matrix())[0]
    _close(row, 2.5 * np.array(table), rtol=1e-11)
    _close(row, 2.5 * _matern_bessel(coords, 1.0), rtol=1e-12)
    assert lx.is_symmetric(op) and lx.is_positive_semidefinite(op)
    # positive semidefinite on an irregular grid; positive definite as points are distinct
    pts = np.sort(np.random.default_rng(0).uniform(0.0, 50.0, 60))
    mat = np.asarray(linalg.matern32(pts, 7.5, 0.3).as_matrix())
    _close(mat, _matern_ref(pts, 7.5, 0.3))
    eig = np.linalg.eigvalsh(mat)
    assert eig.min() >= -1e-12 * eig.max()
    np.linalg.cholesky(mat)
    # jit with traced arguments
    traced = jax.jit(lambda c, ell: linalg.matern32(c, ell).as_matrix())(pts, 7.5)
    _close(traced, _matern_ref(pts, 7.5))


def test_separable_is_not_isotropic(x64):
    """k(dx) k(dy) ≠ k(√(dx² + dy²)): the separable kernel is not the 2-D Matérn-3/2."""
    d = 2.0
    cov = linalg.separable_matern32(
        np.array([0.0, d / math.sqrt(2)]), np.array([0.0, d / math.sqrt(2)]), 1.0, 1.0
    )
    diagonal_neighbour = float(cov.as_matrix()[0, 3])  # cells (0, 0) and (1, 1)
    _close(diagonal_neighbour, _matern_bessel(d / math.sqrt(2), 1.0) ** 2)
    assert abs(diagonal_neighbour - float(_matern_bessel(d, 1.0))) > 0.05


def _grid(rng):
    x = np.sort(rng.uniform(0.0, 30.0, 7))
    y = np.sort(rng.uniform(0.0, 20.0, 5))
    return x, y


def _scalar(rng):
    x, y = _grid(rng)
    op = linalg.separable_matern32(x, y, 6.0, 1.7)
    return op, 1.7**2 * np.kron(_matern_ref(y, 6.0), _matern_ref(x, 6.0))


def _anisotropic_scaled(rng):
    x, y = _grid(rng)
    sigma = rng.uniform(0.2, 3.0, (5, 7))
    op = linalg.separable_matern32(x, y, (4.0, 9.0), sigma)
    s = sigma.reshape(-1)
    corr = np.kron(_matern_ref(y, 4.0), _matern_ref(x, 9.0))
    return op, s[:, None] * corr * s[None, :]


def _time_scaled(rng):
    x, y = _grid(rng)
    t = np.array([0.0, 1.0, 2.5])
    sigma = rng.uniform(0.5, 2.0, (3, 5, 7))
    op = linalg.separable_matern32(x, y, 6.0, sigma, time=t, time_scale=2.0)
    s = sigma.reshape(-1)
    corr = np.kron(_exp_ref(t, 2.0), np.kron(_matern_ref(y, 6.0), _matern_ref(x, 6.0)))
    return op, s[:, None] * corr * s[None, :]


def _time_shared_sigma(rng):
    x, y = _grid(rng)
    t = np.array([0.0, 3.0])
    sigma = rng.uniform(0.5, 2.0, (5, 7))
    op = linalg.separable_matern32(x, y, 6.0, sigma, time=t, time_scale=4.0)
    s = np.tile(sigma.reshape(-1), 2)
    corr = np.kron(_exp_ref(t, 4.0), np.kron(_matern_ref(y, 6.0), _matern_ref(x, 6.0)))
    return op, s[:, None] * corr * s[None, :]


def _general_scaled(rng):
    # left ≠ right around a non-symmetric Kronecker: the general DiagonalScaled.
    a = rng.standard_normal((4, 4)) + 4 * np.eye(4)
    b = rng.standard_normal((3, 3)) + 3 * np.eye(3)
    inner = linalg.Kronecker(lx.MatrixLinearOperator(a), lx.MatrixLinearOperator(b))
    left, right = rng.uniform(0.5, 2.0, 12), rng.uniform(-2.0, -0.5, 12)
    op = linalg.DiagonalScaled(inner, left, right)
    return op, left[:, None] * np.kron(a, b) * right[None, :]


COVARIANCES = {
    "scalar": (_scalar, True),
    "anisotropic_scaled": (_anisotropic_scaled, True),
    "time_scaled": (_time_scaled, True),
    "time_shared_sigma": (_time_shared_sigma, True),
    "general_scaled": (_general_scaled, False),
}


@pytest.mark.parametrize("name", sorted(COVARIANCES))
def test_structured_matches_dense(x64, rng, name):
    build, spd = COVARIANCES[name]
    op, dense = build(rng)
    n = dense.shape[0]
    v = rng.standard_normal(n)

    @jax.jit
    def everything(op, v):
        inv = linalg.inverse(op)
        out = {
            "as_matrix": op.as_matrix(),
            "mv": op.mv(v),
            "T.mv": op.T.mv(v),
            "solve": linalg.solve(op, v),
            "structured": lx.linear_solve(op, v, solver=linalg.Structured()).value,
            "logdet": linalg.logdet(op),
            "inverse.mv": inv.mv(v),
            "diagonal": lx.diagonal(op),
        }
        if spd:
            out["cholesky"] = linalg.cholesky(op).as_matrix()
        return out

    out = everything(op, v)
    _close(out["as_matrix"], dense)
    _close(out["mv"], dense @ v)
    _close(out["T.mv"], dense.T @ v)
    _close(out["solve"], np.linalg.solve(dense, v))
    _close(out["structured"], np.linalg.solve(dense, v))
    _close(out["logdet"], np.linalg.slogdet(dense)[1])
    _close(out["inverse.mv"], np.linalg.solve(dense, v))
    _close(out["diagonal"], np.diag(dense))
    assert lx.is_symmetric(op) is spd and lx.is_positive_semidefinite(op) is spd
    if spd:
        _close(out["cholesky"], np.linalg.cholesky(dense))  # lower, positive diagonal
        assert lx.is_lower_triangular(linalg.cholesky(op))
        eig = np.linalg.eigvalsh(dense)
        assert eig.min() > 0
    else:
        assert not lx.is_symmetric(op.T)


def test_scaled_structure_is_kept(x64, rng):
    op, dense = _anisotropic_scaled(rng)
    assert isinstance(op, linalg.DiagonalScaled)
    assert isinstance(op.operator, linalg.Kronecker) and op.right is None
    assert op.T is op
    factor = linalg.cholesky(op)
    assert isinstance(factor, linalg.DiagonalScaled)
    assert isinstance(factor.operator, linalg.Kronecker)
    inv = linalg.inverse(op)
    assert isinstance(inv, linalg.DiagonalScaled) and isinstance(inv.operator, linalg.Kronecker)
    _close(inv.as_matrix(), np.linalg.inv(dense), rtol=1e-8, atol=1e-8)
    main, lower, upper = lx.tridiagonal(op)
    _close(lower, np.diag(dense, -1))
    _close(upper, np.diag(dense, 1))
    assert isinstance(
        linalg.separable_matern32(np.arange(3.0), np.arange(2.0), 1.0, 2.0), linalg.Kronecker
    )


def test_large_grid_is_never_dense(x64, rng):
    """A 100 × 100 grid (10⁴ cells): solve, logdet, cholesky and the diagonal stay structured."""
    x = y = np.arange(100.0)
    sigma = rng.uniform(0.5, 2.0, (100, 100))
    op = linalg.separable_matern32(x, y, 3.0, sigma)
    b = jnp.asarray(rng.standard_normal(10_000))
    sol = linalg.solve(op, b)
    _close(op.mv(sol), b, rtol=1e-8, atol=1e-8)
    # log det = 2 Σ log s + nx logdet C_y + ny logdet C_x (small dense references)
    c1 = _matern_ref(x, 3.0)
    expected = 2 * np.sum(np.log(sigma)) + 200 * np.linalg.slogdet(c1)[1]
    _close(linalg.logdet(op), expected, rtol=1e-10)
    _close(lx.diagonal(op), sigma.reshape(-1) ** 2)
    z = jnp.asarray(rng.standard_normal(10_000))
    draw = linalg.cholesky(op).mv(z)
    _close(linalg.solve(op, draw) @ draw, z @ z, rtol=1e-8)  # (Lz)ᵀ (LLᵀ)⁻¹ (Lz) = zᵀz


def test_gaussian_prior_log_prob(x64, rng):
    """A GaussianPrior over a scaled Kronecker covariance: scipy's multivariate normal."""
    op, dense = _anisotropic_scaled(rng)
    spec = pc.ParamSpec((pc.Param("flux", shape=(5, 7), units="kg m-2 s-1"),))
    mean = rng.standard_normal(35)
    prior = pc.GaussianPrior(jnp.asarray(mean), op, spec)
    z = rng.standard_normal((3, 35))
    expected = scipy.stats.multivariate_normal(mean, dense).logpdf(z)
    _close(prior.log_prob_unconstrained(jnp.asarray(z)), expected, rtol=1e-10)


def test_bad_input():
    x = np.arange(4.0)
    with pytest.raises(ValueError, match="`coords` must be a non-empty 1-D"):
        linalg.matern32(np.ones((2, 2)), 1.0)
    with pytest.raises(ValueError, match="`coords` must be finite"):
        linalg.matern32(np.array([0.0, np.nan]), 1.0)
    with pytest.raises(ValueError, match="`length_scale` must be finite and > 0"):
        linalg.matern32(x, 0.0)
    with pytest.raises(ValueError, match="`variance` must be finite and > 0"):
        linalg.matern32(x, 1.0, -1.0)
    with pytest.raises(ValueError, match="`length_scale` must be a scalar"):
        linalg.matern32(x, np.ones(2))
    with pytest.raises(ValueError, match="`y` must be finite"):
        linalg.separable_matern32(x, np.array([np.inf]), 1.0, 1.0)
    with pytest.raises(ValueError, match=r"`length_scale\[1\] \(along x\)`"):
        linalg.separable_matern32(x, x, (1.0, -2.0), 1.0)
    with pytest.raises(ValueError, match="a pair"):
        linalg.separable_matern32(x, x, (1.0, 2.0, 3.0), 1.0)
    with pytest.raises(ValueError, match=r"`sigma` must be a scalar or have shape \(3, 4\)"):
        linalg.separable_matern32(x, np.arange(3.0), 1.0, np.ones((4, 3)))
    with pytest.raises(ValueError, match="`sigma` must be finite and > 0"):
        linalg.separable_matern32(x, x, 1.0, np.zeros((4, 4)))
    with pytest.raises(ValueError, match="`time` and `time_scale`"):
        linalg.separable_matern32(x, x, 1.0, 1.0, time=np.arange(2.0))
    with pytest.raises(ValueError, match="`time_scale` must be finite and > 0"):
        linalg.separable_matern32(x, x, 1.0, 1.0, time=np.arange(2.0), time_scale=-1.0)
    with pytest.raises(ValueError, match=r"\(2, 4, 4\)"):
        linalg.separable_matern32(x, x, 1.0, np.ones((3, 4, 4)), time=[0.0, 1.0], time_scale=1.0)
    with pytest.raises(ValueError, match=r"`left` must have shape \(4,\)"):
        linalg.DiagonalScaled(lx.MatrixLinearOperator(jnp.eye(4)), jnp.ones(3))
    with pytest.raises(TypeError, match="`operator` must be a lineax"):
        linalg.DiagonalScaled(jnp.eye(4), jnp.ones(4))
