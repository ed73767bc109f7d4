"""Contract tests shared by every structured operator in `plumax_core.linalg`.

Each registry entry builds an operator together with an independent dense reference
matrix assembled with numpy/scipy (`np.kron`, `scipy.linalg.block_diag`, `diag + U C Vᵀ`),
never with the operator's own `as_matrix`. Every check compares against numpy in float64
with rtol = atol = 1e-10.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import pytest
import scipy.linalg

from plumax_core import linalg

RTOL = ATOL = 1e-10
PSD = (lx.symmetric_tag, lx.positive_semidefinite_tag)


@pytest.fixture
def rng():
    """Test data comes from numpy: no jax random kernels to compile per shape."""
    return np.random.default_rng(0)


def _mat(matrix, tags=()):
    return lx.MatrixLinearOperator(jnp.asarray(matrix), tags)


def _spd(rng, n):
    a = rng.standard_normal((n, n))
    return a @ a.T / n + np.eye(n)


def _diag(rng, n):
    return rng.uniform(0.5, 2.0, size=n)


def _lowrank(rng, n=50, k=4):
    d, u = _diag(rng, n), rng.standard_normal((n, k))
    op = linalg.LowRankUpdate(lx.DiagonalLinearOperator(d), u, tags=PSD)
    return op, np.diag(d) + np.asarray(u) @ np.asarray(u).T


def _lowrank_core(rng, n=30, k=3):
    d, u, c = _diag(rng, n), rng.standard_normal((n, k)), _spd(rng, k)
    op = linalg.LowRankUpdate(lx.DiagonalLinearOperator(d), u, c, tags=PSD)
    u, c = np.asarray(u), np.asarray(c)
    return op, np.diag(d) + u @ c @ u.T


def _lowrank_general(rng, n=30, k=3):
    # Not symmetric: distinct V, non-symmetric C, non-symmetric dense base.
    b = rng.standard_normal((n, n)) / np.sqrt(n) + 3 * np.eye(n)
    u, v = rng.standard_normal((n, k)), rng.standard_normal((n, k))
    c = rng.standard_normal((k, k)) / 2 + np.eye(k)
    op = linalg.LowRankUpdate(_mat(b), u, c, v)
    return op, np.asarray(b) + np.asarray(u) @ np.asarray(c) @ np.asarray(v).T


def _kronecker(rng):
    a, b = _spd(rng, 6), _spd(rng, 7)
    op = linalg.Kronecker(_mat(a, PSD), _mat(b, PSD))
    return op, np.kron(np.asarray(a), np.asarray(b))


def _kronecker3(rng):
    # Three factors, one of them diagonal and one a low-rank update (nested structure).
    a, d = _spd(rng, 3), _diag(rng, 4)
    lr, lr_dense = _lowrank(rng, n=5, k=2)
    diag = lx.TaggedLinearOperator(lx.DiagonalLinearOperator(d), PSD)
    op = linalg.Kronecker(_mat(a, PSD), diag, lr)
    return op, np.kron(np.kron(np.asarray(a), np.diag(d)), lr_dense)


def _kronecker_general(rng):
    a = rng.standard_normal((4, 4)) + 4 * np.eye(4)
    b = rng.standard_normal((5, 5)) + 4 * np.eye(5)
    op = linalg.Kronecker(_mat(a), _mat(b))
    return op, np.kron(np.asarray(a), np.asarray(b))


def _blockdiag(rng):
    # Three blocks of different kinds: dense, diagonal, tagged low-rank update.
    a, d = _spd(rng, 5), _diag(rng, 7)
    lr, lr_dense = _lowrank(rng, n=10, k=2)
    blocks = (
        _mat(a, PSD),
        lx.TaggedLinearOperator(lx.DiagonalLinearOperator(d), PSD),
        lx.TaggedLinearOperator(lr, PSD),
    )
    return linalg.BlockDiagonal(blocks), scipy.linalg.block_diag(
        np.asarray(a), np.diag(d), lr_dense
    )


def _inverse(rng):
    lr, lr_dense = _lowrank(rng, n=30, k=3)
    return linalg.Inverse(lr), np.linalg.inv(lr_dense)


# name -> (builder, symmetric positive definite?). lineax never reports a bare
# `DiagonalLinearOperator` as PSD, so diagonal pieces are tagged where SPD is expected.
OPERATORS = {
    "lowrank": (_lowrank, True),
    "lowrank_core": (_lowrank_core, True),
    "lowrank_general": (_lowrank_general, False),
    "kronecker": (_kronecker, True),
    "kronecker3": (_kronecker3, True),
    "kronecker_general": (_kronecker_general, False),
    "blockdiag": (_blockdiag, True),
    "inverse": (_inverse, True),
}


def _build(name, rng):
    op, dense = OPERATORS[name][0](rng)
    return op, np.asarray(dense, dtype=np.float64)


def _allclose(actual, expected):
    np.testing.assert_allclose(np.asarray(actual), expected, rtol=RTOL, atol=ATOL)


def _everything(op, vs):
    """Every quantity the contract checks, computed in one jitted function."""
    v = vs[0]
    inv = linalg.inverse(op)
    out = {
        "as_matrix": op.as_matrix(),
        "mv": op.mv(v),
        "vmap_mv": jax.vmap(op.mv)(vs),
        "T.as_matrix": op.T.as_matrix(),
        "T.mv": op.T.mv(v),
        "T.solve": linalg.solve(op.T, v),
        "vmap_solve": jax.vmap(lambda b: linalg.solve(op, b))(vs),
        "structured": lx.linear_solve(op, v, solver=linalg.Structured()).value,
        "logdet": linalg.logdet(op),
        "inverse.as_matrix": inv.as_matrix(),
        "inverse.mv": inv.mv(v),
        "inverse.solve": linalg.solve(inv, v),
        "inverse.logdet": linalg.logdet(inv),
        "diagonal": lx.diagonal(op),
    }
    if lx.is_symmetric(op):
        factor = linalg.cholesky(op)
        out["cholesky"] = factor.as_matrix()
        out["cholesky.mv"] = factor.mv(v)
    return out


def _expected(dense, vs, spd):
    v = vs[0]
    inv = np.linalg.inv(dense)
    solves = np.linalg.solve(dense, vs.T).T
    sign, logabsdet = np.linalg.slogdet(dense)
    assert sign != 0
    out = {
        "as_matrix": dense,
        "mv": dense @ v,
        "vmap_mv": vs @ dense.T,
        "T.as_matrix": dense.T,
        "T.mv": dense.T @ v,
        "T.solve": np.linalg.solve(dense.T, v),
        "vmap_solve": solves,
        "structured": solves[0],
        "logdet": logabsdet,
        "inverse.as_matrix": inv,
        "inverse.mv": inv @ v,
        "inverse.solve": dense @ v,
        "inverse.logdet": -logabsdet,
        "diagonal": np.diag(dense),
    }
    return out


@pytest.mark.parametrize("name", list(OPERATORS))
def test_contract(name, x64, rng):
    """mv, as_matrix, transpose, solve, logdet, cholesky, inverse against numpy, under jit."""
    op, dense = _build(name, rng)
    spd = OPERATORS[name][1]
    n = dense.shape[0]
    vs = jnp.asarray(rng.standard_normal((3, n)))
    assert op.in_structure() == jax.ShapeDtypeStruct((n,), jnp.float64)
    assert op.out_structure() == op.in_structure()
    assert lx.is_symmetric(op) == spd
    assert lx.is_positive_semidefinite(op) == spd
    assert not lx.is_negative_semidefinite(op)

    actual = jax.jit(_everything)(op, vs)
    expected = _expected(dense, np.asarray(vs), spd)
    for key, value in expected.items():
        np.testing.assert_allclose(actual[key], value, rtol=RTOL, atol=ATOL, err_msg=key)
    if spd:
        lower = np.asarray(actual["cholesky"])
        _allclose(lower @ lower.T, dense)
        _allclose(actual["cholesky.mv"], lower @ np.asarray(vs[0]))
        assert np.all(np.linalg.eigvalsh(dense) > 0)
    else:
        assert "cholesky" not in actual


def test_lineax_transforms(x64, rng):
    """`lx.materialise`, `lx.linearise`, `lx.conj` and `to_dense` keep type and matrix."""
    names = ("lowrank_general", "kronecker3", "blockdiag", "inverse")
    built = {name: _build(name, rng) for name in names}
    ops = {name: op for name, (op, _) in built.items()}
    for op in ops.values():
        for transform in (lx.materialise, lx.linearise, lx.conj):
            assert type(transform(op)) is type(op)

    @jax.jit
    def matrices(ops):
        return {
            name: [t(op).as_matrix() for t in (lx.materialise, lx.linearise, lx.conj)]
            + [linalg.to_dense(op)]
            for name, op in ops.items()
        }

    for name, mats in matrices(ops).items():
        for mat in mats:
            _allclose(mat, built[name][1])


def test_float32(rng):
    """Correct, to float32 accuracy, without x64."""
    ops = {name: _build(name, rng) for name in ("lowrank", "kronecker", "blockdiag")}
    for op, _ in ops.values():
        assert op.in_structure().dtype == jnp.float32
    bs = {
        name: jnp.asarray(rng.standard_normal(dense.shape[0])) for name, (_, dense) in ops.items()
    }

    @jax.jit
    def run(ops, bs):
        return {
            name: (linalg.solve(op, bs[name]), linalg.logdet(op)) for name, (op, _) in ops.items()
        }

    results = run({name: (op, None) for name, (op, _) in ops.items()}, bs)
    for name, (x, ld) in results.items():
        dense, b = ops[name][1], np.asarray(bs[name])
        assert x.dtype == jnp.float32
        np.testing.assert_allclose(x, np.linalg.solve(dense, b), rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(ld, np.linalg.slogdet(dense)[1], rtol=1e-4)
