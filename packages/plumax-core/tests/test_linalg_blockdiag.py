"""`BlockDiagonal`: structured results, banded structure and bad input."""

from __future__ import annotations

import jax.numpy as jnp
import lineax as lx
import numpy as np
import pytest
import scipy.linalg

from plumax_core import linalg

PSD = (lx.symmetric_tag, lx.positive_semidefinite_tag)


def test_structured_results(x64):
    a = lx.MatrixLinearOperator(jnp.asarray([[2.0, 0.5], [0.5, 1.0]]), PSD)
    d = lx.TaggedLinearOperator(lx.DiagonalLinearOperator(jnp.asarray([1.0, 4.0, 9.0])), PSD)
    op = linalg.BlockDiagonal([a, d])
    assert op.sizes == (2, 3)
    assert lx.is_symmetric(op) and lx.is_positive_semidefinite(op)
    assert not lx.is_diagonal(op)
    factor = linalg.cholesky(op)
    assert isinstance(factor, linalg.BlockDiagonal)
    assert lx.is_lower_triangular(factor)
    np.testing.assert_allclose(
        factor.as_matrix() @ factor.as_matrix().T, op.as_matrix(), rtol=1e-12, atol=1e-12
    )
    assert isinstance(linalg.inverse(op), linalg.BlockDiagonal)
    expected = np.log(2.0 - 0.25) + np.log(36.0)
    np.testing.assert_allclose(linalg.logdet(op), expected, rtol=1e-12)


def test_tridiagonal_blocks(x64):
    """Block diagonal of tridiagonals is tridiagonal, with zeros between blocks."""
    t1 = lx.TridiagonalLinearOperator(jnp.full(3, 4.0), jnp.asarray([1.0, 2.0]), jnp.ones(2))
    t2 = lx.TridiagonalLinearOperator(jnp.full(2, 5.0), jnp.asarray([3.0]), jnp.asarray([-1.0]))
    op = linalg.BlockDiagonal((t1, t2))
    assert lx.is_tridiagonal(op)
    dense = scipy.linalg.block_diag(np.asarray(t1.as_matrix()), np.asarray(t2.as_matrix()))
    main, lower, upper = lx.tridiagonal(op)
    np.testing.assert_allclose(main, np.diag(dense))
    np.testing.assert_allclose(lower, np.diag(dense, -1))
    np.testing.assert_allclose(upper, np.diag(dense, 1))
    b = jnp.arange(1.0, 6.0)
    np.testing.assert_allclose(linalg.solve(op, b), np.linalg.solve(dense, b), rtol=1e-12)


def test_bad_input():
    a = lx.MatrixLinearOperator(jnp.eye(3))
    with pytest.raises(TypeError, match="`blocks`"):
        linalg.BlockDiagonal(a)
    with pytest.raises(ValueError, match="`blocks`"):
        linalg.BlockDiagonal(())
    with pytest.raises(TypeError, match=r"`blocks\[1\]`"):
        linalg.BlockDiagonal((a, jnp.eye(2)))
    with pytest.raises(ValueError, match=r"`blocks\[0\]` must be square"):
        linalg.BlockDiagonal((lx.MatrixLinearOperator(jnp.ones((2, 3))), a))
