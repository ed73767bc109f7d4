"""`SparseMatrix`: products, transpose and materialisation equal the dense matrix's.

Every builder in the registry returns the operator and the dense matrix it must equal,
assembled independently with numpy/scipy (`scipy.sparse.random(...).toarray()`, a numpy
array), never with the operator's own `as_matrix`.
"""

from __future__ import annotations

import json
import subprocess
import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import pytest
import scipy.sparse as sps
from jax.experimental import sparse as jsparse

from plumax_core import linalg

RTOL = ATOL = 1e-12
PSD = (lx.symmetric_tag, lx.positive_semidefinite_tag)


@pytest.fixture
def rng():
    return np.random.default_rng(5)


def _random_sparse(rng, m=12, n=30, density=0.1):
    return sps.random(m, n, density=density, random_state=rng, format="csr")


def _from_scipy(rng):
    a = _random_sparse(rng)
    return linalg.SparseMatrix(a), a.toarray()


def _from_bcoo(rng):
    a = _random_sparse(rng).toarray()
    return linalg.SparseMatrix(jsparse.BCOO.fromdense(jnp.asarray(a))), a


def _from_bcsr(rng):
    a = _random_sparse(rng, 9, 7, 0.3).toarray()
    return linalg.SparseMatrix(jsparse.BCSR.fromdense(jnp.asarray(a))), a


def _from_dense(rng):
    a = _random_sparse(rng, 20, 11, 0.2).toarray()
    return linalg.SparseMatrix(a), a


def _square_spd(rng):
    # A banded SPD matrix: diagonally dominant tridiagonal plus a far off-diagonal pair.
    n = 15
    a = np.diag(rng.uniform(3.0, 4.0, n))
    off = rng.uniform(-1.0, 1.0, n - 1)
    a += np.diag(off, 1) + np.diag(off, -1)
    a[0, n - 1] = a[n - 1, 0] = 0.3
    return linalg.SparseMatrix(sps.coo_matrix(a), PSD), a


SPARSE = {
    "scipy": _from_scipy,
    "bcoo": _from_bcoo,
    "bcsr": _from_bcsr,
    "dense": _from_dense,
    "square_spd": _square_spd,
}


def _close(actual, expected):
    np.testing.assert_allclose(np.asarray(actual), expected, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", sorted(SPARSE))
def test_matches_dense(x64, rng, name):
    op, dense = SPARSE[name](rng)
    m, n = dense.shape
    v, w = rng.standard_normal(n), rng.standard_normal(m)
    vs = rng.standard_normal((4, n))

    @jax.jit
    def everything(op, v, w, vs):
        return {
            "mv": op.mv(v),
            "T.mv": op.T.mv(w),
            "as_matrix": op.as_matrix(),
            "to_dense": linalg.to_dense(op),
            "T.as_matrix": op.T.as_matrix(),
            "vmap_mv": jax.vmap(op.mv)(vs),
        }

    out = everything(op, v, w, vs)
    eager = op.mv(jnp.asarray(v))
    _close(out["mv"], dense @ v)
    _close(eager, dense @ v)
    _close(out["T.mv"], dense.T @ w)
    _close(out["as_matrix"], dense)
    _close(out["to_dense"], dense)
    _close(out["T.as_matrix"], dense.T)
    _close(out["vmap_mv"], vs @ dense.T)
    assert op.in_structure().shape == (n,) and op.out_structure().shape == (m,)
    assert op.shape == (m, n)
    assert op.nse >= np.count_nonzero(dense)
    # the adjoint identity <A v, w> = <v, Aᵀ w>
    np.testing.assert_allclose(np.dot(out["mv"], w), np.dot(v, out["T.mv"]), rtol=1e-12, atol=1e-12)


def test_gradients(x64, rng):
    """Gradients flow to the vector and to the stored values (BCOO autodiff)."""
    a = _random_sparse(rng)
    op = linalg.SparseMatrix(a)
    dense = a.toarray()
    v = jnp.asarray(rng.standard_normal(30))
    grad_v = jax.grad(lambda v: jnp.sum(op.mv(v) ** 2))(v)
    _close(grad_v, 2 * dense.T @ (dense @ np.asarray(v)))
    # d/d data of sum(A v) is v[col] for each stored entry
    grad_op = eqx.filter_grad(lambda op: jnp.sum(op.mv(v)))(op)
    cols = np.asarray(op.matrix.indices[:, 1])
    _close(grad_op.matrix.data, np.asarray(v)[cols])


def test_square_queries_and_dense_fallback(x64, rng):
    """Diagonals from the stored entries; solve/logdet/cholesky through the dense rules."""
    op, dense = _square_spd(rng)
    _close(lx.diagonal(op), np.diag(dense))
    main, lower, upper = lx.tridiagonal(op)
    _close(main, np.diag(dense))
    _close(lower, np.diag(dense, -1))
    _close(upper, np.diag(dense, 1))
    assert lx.is_symmetric(op) and lx.is_positive_semidefinite(op)
    assert not lx.is_diagonal(op) and not lx.is_tridiagonal(op)
    assert op.T is op
    b = rng.standard_normal(15)
    _close(linalg.solve(op, b), np.linalg.solve(dense, b))
    np.testing.assert_allclose(linalg.logdet(op), np.linalg.slogdet(dense)[1], rtol=1e-12)
    factor = linalg.cholesky(op).as_matrix()
    _close(factor @ factor.T, dense)
    # an untagged rectangular matrix is not reported as having any structure
    rect, rect_dense = _from_scipy(rng)
    assert not lx.is_symmetric(rect) and not lx.is_positive_semidefinite(rect)
    _close(lx.diagonal(rect), np.diagonal(rect_dense))
    # duplicate entries are summed (the BCOO convention), also on the diagonal
    dup = jsparse.BCOO(
        (jnp.asarray([1.0, 2.0, 5.0]), jnp.asarray([[0, 0], [0, 0], [1, 0]])), shape=(2, 2)
    )
    sm = linalg.SparseMatrix(dup)
    _close(lx.diagonal(sm), np.array([3.0, 0.0]))
    _close(sm.as_matrix(), np.array([[3.0, 0.0], [5.0, 0.0]]))


def test_tags_and_dtype(x64):
    ints = linalg.SparseMatrix(np.array([[1, 0], [0, 2]]), lx.diagonal_tag)
    assert jnp.issubdtype(ints.in_structure().dtype, jnp.floating)
    assert lx.is_diagonal(ints) and lx.is_symmetric(ints) and lx.is_tridiagonal(ints)
    assert lx.is_lower_triangular(ints) and not lx.is_positive_semidefinite(ints)
    lower = linalg.SparseMatrix(np.array([[1.0, 0.0], [3.0, 2.0]]), lx.lower_triangular_tag)
    assert lx.is_upper_triangular(lower.T) and not lx.is_lower_triangular(lower.T)
    conj = lx.conj(lower)
    assert isinstance(conj, linalg.SparseMatrix) and lx.is_lower_triangular(conj)
    assert lx.linearise(lower) is lower and lx.materialise(lower) is lower


def test_bad_input():
    # BCOOs built from (data, indices) directly: nothing to compile
    three_d = jsparse.BCOO((jnp.ones(1), jnp.zeros((1, 3), int)), shape=(2, 2, 2))
    dense_dim = jsparse.BCOO((jnp.ones((1, 3)), jnp.zeros((1, 1), int)), shape=(3, 3))
    assert dense_dim.n_dense == 1
    with pytest.raises(ValueError, match="`matrix` must be 2-D"):
        linalg.SparseMatrix(np.ones(3))
    with pytest.raises(ValueError, match="`matrix` must be 2-D"):
        linalg.SparseMatrix(three_d)
    with pytest.raises(ValueError, match="n_dense = 1"):
        linalg.SparseMatrix(dense_dim)
    with pytest.raises(TypeError, match="`matrix` must be a sparse or dense matrix"):
        linalg.SparseMatrix(lx.MatrixLinearOperator(jnp.eye(2)))
    with pytest.raises(TypeError, match="`matrix` must be a jax.experimental.sparse.BCOO"):
        linalg.SparseMatrix(object())
    with pytest.raises(ValueError, match="need a square matrix"):
        linalg.SparseMatrix(sps.eye(2, 3), lx.symmetric_tag)


def test_import_stays_light():
    """`import plumax_core` does not import `jax.experimental.sparse` (it is lazy)."""
    code = (
        "import json, sys; import plumax_core.linalg as L; "
        "print(json.dumps('jax.experimental.sparse' in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) is False
