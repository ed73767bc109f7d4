"""`LowRankUpdate`: Woodbury solve, determinant lemma, gradients, tags and bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from plumax_core import linalg

RTOL = ATOL = 1e-10
PSD = (lx.symmetric_tag, lx.positive_semidefinite_tag)


@pytest.fixture
def rng():
    return np.random.default_rng(1)


def _problem(rng, n=50, k=4):
    d = rng.uniform(0.5, 2.0, size=n)
    u = rng.standard_normal((n, k))
    op = linalg.LowRankUpdate(lx.DiagonalLinearOperator(jnp.asarray(d)), jnp.asarray(u), tags=PSD)
    return op, np.diag(d) + u @ u.T


def test_eager_against_numpy(x64, rng):
    """n = 50, rank 4, diagonal base, without jit."""
    op, dense = _problem(rng)
    b = rng.standard_normal(50)
    assert op.rank == 4
    np.testing.assert_allclose(op.mv(jnp.asarray(b)), dense @ b, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(
        linalg.solve(op, jnp.asarray(b)), np.linalg.solve(dense, b), rtol=RTOL, atol=ATOL
    )
    np.testing.assert_allclose(linalg.logdet(op), np.linalg.slogdet(dense)[1], rtol=RTOL, atol=ATOL)
    lower = np.asarray(linalg.cholesky(op).as_matrix())
    np.testing.assert_allclose(lower @ lower.T, dense, rtol=RTOL, atol=ATOL)
    assert lx.is_lower_triangular(linalg.cholesky(op))


@settings(max_examples=15, deadline=None)
@given(
    n=st.integers(1, 24),
    k=st.integers(1, 6),
    seed=st.integers(0, 2**31 - 1),
    psd=st.booleans(),
    with_core=st.booleans(),
)
def test_woodbury_property(n, k, seed, psd, with_core):
    """Woodbury solve and determinant lemma equal dense results for random sizes/ranks.

    Both the Cholesky path (PSD-tagged, SPD core) and the general path (no tags, any
    core, `I + C VᵀB⁻¹U`) are exercised; `k > n` is allowed.
    """
    rng = np.random.default_rng(seed)
    d = rng.uniform(0.5, 2.0, size=n)
    u = rng.standard_normal((n, k))
    if with_core:
        a = rng.standard_normal((k, k))
        c = a @ a.T / k + np.eye(k)
    else:
        c = np.eye(k)
    dense = np.diag(d) + u @ c @ u.T
    b = rng.standard_normal(n)
    with jax.enable_x64(True):
        op = linalg.LowRankUpdate(
            lx.DiagonalLinearOperator(jnp.asarray(d)),
            jnp.asarray(u),
            jnp.asarray(c) if with_core else None,
            tags=PSD if psd else (),
        )
        x, ld = jax.jit(lambda op, b: (linalg.solve(op, b), linalg.logdet(op)))(op, jnp.asarray(b))
        np.testing.assert_allclose(x, np.linalg.solve(dense, b), rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(ld, np.linalg.slogdet(dense)[1], rtol=1e-9, atol=1e-9)


def test_gradients_match_dense(x64, rng):
    """Reverse-mode gradients of solve (via lx.linear_solve + Structured) and logdet."""
    n, k = 12, 3
    d0 = jnp.asarray(rng.uniform(0.5, 2.0, size=n))
    u = jnp.asarray(rng.standard_normal((n, k)))
    b = jnp.asarray(rng.standard_normal(n))

    def structured(d):
        op = linalg.LowRankUpdate(lx.DiagonalLinearOperator(d), u, tags=PSD)
        x = lx.linear_solve(op, b, solver=linalg.Structured()).value
        return jnp.sum(x**2) + linalg.logdet(op)

    def dense(d):
        matrix = jnp.diag(d) + u @ u.T
        return jnp.sum(jnp.linalg.solve(matrix, b) ** 2) + jnp.linalg.slogdet(matrix)[1]

    grads = jax.jit(lambda d: (jax.grad(structured)(d), jax.grad(dense)(d)))(d0)
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-9, atol=1e-9)


def test_tags_and_transpose(x64, rng):
    d = jnp.asarray(rng.uniform(0.5, 2.0, size=6))
    u = jnp.asarray(rng.standard_normal((6, 2)))
    v = jnp.asarray(rng.standard_normal((6, 2)))
    base = lx.DiagonalLinearOperator(d)
    # V defaults to U, C to the identity: symmetric because the diagonal base is.
    plain = linalg.LowRankUpdate(base, u)
    assert lx.is_symmetric(plain) and not lx.is_positive_semidefinite(plain)
    assert plain.T is plain
    # Passing V=U (the same object) is the symmetric case too.
    assert linalg.LowRankUpdate(base, u, V=u).V is None
    tagged = linalg.LowRankUpdate(base, u, tags=lx.positive_semidefinite_tag)
    assert lx.is_positive_semidefinite(tagged)
    general = linalg.LowRankUpdate(base, u, jnp.asarray([[1.0, 2.0], [0.0, 1.0]]), v)
    assert not lx.is_symmetric(general) and not lx.is_diagonal(general)
    transposed = general.T
    assert isinstance(transposed, linalg.LowRankUpdate)
    np.testing.assert_allclose(transposed.as_matrix(), general.as_matrix().T, rtol=RTOL)
    # Tags are transposed as lineax does (here only to check the plumbing).
    flagged = linalg.LowRankUpdate(base, u, None, v, tags=lx.lower_triangular_tag)
    assert flagged.T.tags == frozenset({lx.upper_triangular_tag})


def test_cholesky_and_inverse_types(x64, rng):
    op, _ = _problem(rng, n=8, k=2)
    factor = linalg.cholesky(op)
    assert isinstance(factor, lx.MatrixLinearOperator)
    assert lx.is_lower_triangular(factor)
    assert isinstance(linalg.inverse(op), linalg.Inverse)
    assert linalg.inverse(linalg.inverse(op)) is op


def test_bad_input(rng):
    base = lx.DiagonalLinearOperator(jnp.ones(5))
    u = jnp.ones((5, 2))
    with pytest.raises(TypeError, match="`base`"):
        linalg.LowRankUpdate(jnp.eye(5), u)
    with pytest.raises(ValueError, match="`base` must be square"):
        linalg.LowRankUpdate(lx.MatrixLinearOperator(jnp.ones((5, 4))), u)
    with pytest.raises(ValueError, match="`base` must act on flat 1-D"):
        linalg.LowRankUpdate(lx.DiagonalLinearOperator({"a": jnp.ones(5)}), u)
    with pytest.raises(ValueError, match="`U`"):
        linalg.LowRankUpdate(base, jnp.ones((4, 2)))
    with pytest.raises(ValueError, match="`U`"):
        linalg.LowRankUpdate(base, jnp.ones(5))
    with pytest.raises(TypeError, match="`U`"):
        linalg.LowRankUpdate(base, base)
    with pytest.raises(TypeError, match="`U`"):
        linalg.LowRankUpdate(base, "not an array")
    with pytest.raises(ValueError, match="`C`"):
        linalg.LowRankUpdate(base, u, jnp.eye(3))
    with pytest.raises(ValueError, match="`C`"):
        linalg.LowRankUpdate(base, u, jnp.ones(2))
    with pytest.raises(ValueError, match="`V`"):
        linalg.LowRankUpdate(base, u, None, jnp.ones((5, 3)))
