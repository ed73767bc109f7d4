"""`Kronecker`: the row-major convention, structured results, tags and bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import pytest

from plumax_core import linalg

PSD = (lx.symmetric_tag, lx.positive_semidefinite_tag)


@pytest.fixture
def rng():
    return np.random.default_rng(2)


def _spd(rng, n):
    a = rng.standard_normal((n, n))
    return a @ a.T / n + np.eye(n)


def test_row_major_convention(x64, rng):
    """(A ⊗ B) X.reshape(-1) == (A X Bᵀ).reshape(-1) for X of shape (m, p): m=6, p=7."""
    a, b = rng.standard_normal((6, 6)), rng.standard_normal((7, 7))
    x = rng.standard_normal((6, 7))
    op = linalg.Kronecker(lx.MatrixLinearOperator(jnp.asarray(a)), lx.MatrixLinearOperator(b))
    assert op.sizes == (6, 7)
    out = jax.jit(lambda op, v: (op.mv(v), op.as_matrix()))(op, jnp.asarray(x.reshape(-1)))
    np.testing.assert_allclose(out[0], (a @ x @ b.T).reshape(-1), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(out[1], np.kron(a, b), rtol=1e-10, atol=1e-10)


def test_logdet_formula_and_structured_results(x64, rng):
    """logdet(A ⊗ B) = p logdet A + m logdet B; cholesky/inverse stay Kronecker."""
    a, b = _spd(rng, 6), _spd(rng, 7)
    fa = lx.MatrixLinearOperator(jnp.asarray(a), PSD)
    fb = lx.MatrixLinearOperator(jnp.asarray(b), PSD)
    op = linalg.Kronecker(fa, fb)
    expected = 7 * np.linalg.slogdet(a)[1] + 6 * np.linalg.slogdet(b)[1]
    np.testing.assert_allclose(linalg.logdet(op), expected, rtol=1e-10, atol=1e-10)
    factor = linalg.cholesky(op)
    assert isinstance(factor, linalg.Kronecker)
    assert lx.is_lower_triangular(factor)
    assert isinstance(linalg.inverse(op), linalg.Kronecker)
    assert lx.is_symmetric(op) and lx.is_positive_semidefinite(op)
    assert op.T is op
    # A diagonal-only Kronecker is diagonal; a dense one is neither diagonal nor banded.
    diag = linalg.Kronecker(
        lx.DiagonalLinearOperator(jnp.ones(2)),
        lx.IdentityLinearOperator(jax.ShapeDtypeStruct((3,), jnp.float64)),
    )
    assert lx.is_diagonal(diag) and lx.is_tridiagonal(diag)
    assert not lx.is_diagonal(op) and not lx.is_tridiagonal(op)
    assert isinstance(linalg.cholesky(diag), linalg.Kronecker)


def test_tridiagonal_detection(x64):
    d = lx.DiagonalLinearOperator(jnp.arange(1.0, 3.0))
    t = lx.TridiagonalLinearOperator(jnp.full(3, 4.0), jnp.ones(2), jnp.ones(2))
    assert lx.is_tridiagonal(linalg.Kronecker(d, t))
    assert not lx.is_tridiagonal(linalg.Kronecker(t, d))
    main, lower, upper = lx.tridiagonal(linalg.Kronecker(d, t))
    dense = np.kron(np.diag([1.0, 2.0]), np.asarray(t.as_matrix()))
    np.testing.assert_allclose(main, np.diag(dense))
    np.testing.assert_allclose(lower, np.diag(dense, -1))
    np.testing.assert_allclose(upper, np.diag(dense, 1))


def test_bad_input():
    a = lx.MatrixLinearOperator(jnp.eye(3))
    with pytest.raises(ValueError, match="`factors`"):
        linalg.Kronecker()
    with pytest.raises(TypeError, match=r"`factors\[1\]`"):
        linalg.Kronecker(a, jnp.eye(2))
    with pytest.raises(TypeError, match=r"`factors\[0\]`"):
        linalg.Kronecker((a, a))
    with pytest.raises(ValueError, match=r"`factors\[1\]` must be square"):
        linalg.Kronecker(a, lx.MatrixLinearOperator(jnp.ones((2, 3))))
