"""`solve`, `logdet`, `cholesky`, `inverse`, `to_dense` on lineax's own operators and bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import pytest

from plumax_core import linalg

PSD = (lx.symmetric_tag, lx.positive_semidefinite_tag)


def test_lineax_operators(x64):
    """Dense (PSD-tagged and untagged), diagonal, identity and scalar-multiple fallbacks."""
    rng = np.random.default_rng(3)
    a = rng.standard_normal((6, 6))
    spd = a @ a.T / 6 + np.eye(6)
    d = rng.uniform(0.5, 2.0, size=6)
    b = rng.standard_normal(6)
    cases = {
        "dense_psd": (lx.MatrixLinearOperator(jnp.asarray(spd), PSD), spd),
        "dense": (lx.MatrixLinearOperator(jnp.asarray(a + 3 * np.eye(6))), a + 3 * np.eye(6)),
        "diagonal": (lx.DiagonalLinearOperator(jnp.asarray(d)), np.diag(d)),
        "identity": (lx.IdentityLinearOperator(jax.ShapeDtypeStruct((6,), jnp.float64)), np.eye(6)),
        "scaled": (2.5 * lx.MatrixLinearOperator(jnp.asarray(spd), PSD), 2.5 * spd),
        "divided": (lx.MatrixLinearOperator(jnp.asarray(spd), PSD) / 4.0, spd / 4.0),
        "negated": (-lx.MatrixLinearOperator(jnp.asarray(spd), PSD), -spd),
    }

    @jax.jit
    def run(ops, b):
        return {name: (linalg.solve(op, b), linalg.logdet(op)) for name, op in ops.items()}

    results = run({name: op for name, (op, _) in cases.items()}, jnp.asarray(b))
    for name, (x, ld) in results.items():
        dense = cases[name][1]
        np.testing.assert_allclose(x, np.linalg.solve(dense, b), rtol=1e-10, err_msg=name)
        np.testing.assert_allclose(ld, np.linalg.slogdet(dense)[1], rtol=1e-10, err_msg=name)

    diag_factor = linalg.cholesky(cases["diagonal"][0])
    assert isinstance(diag_factor, lx.DiagonalLinearOperator)
    np.testing.assert_allclose(diag_factor.diagonal, np.sqrt(d))
    assert isinstance(linalg.inverse(cases["diagonal"][0]), lx.DiagonalLinearOperator)
    identity = cases["identity"][0]
    assert linalg.cholesky(identity) is identity and linalg.inverse(identity) is identity
    dense_factor = linalg.cholesky(cases["dense_psd"][0]).as_matrix()
    np.testing.assert_allclose(dense_factor @ dense_factor.T, spd, rtol=1e-10, atol=1e-10)


def test_logdet_of_non_spd_is_log_abs_det(x64):
    """Sign convention: log|det|, e.g. for a matrix with negative determinant."""
    op = lx.MatrixLinearOperator(jnp.asarray([[0.0, 2.0], [3.0, 0.0]]))
    np.testing.assert_allclose(linalg.logdet(op), np.log(6.0), rtol=1e-12)


def test_bad_input():
    op = lx.MatrixLinearOperator(jnp.eye(3))
    for fn in (linalg.logdet, linalg.cholesky, linalg.inverse, linalg.to_dense):
        with pytest.raises(TypeError, match="`operator`"):
            fn(jnp.eye(3))
    with pytest.raises(TypeError, match="`operator`"):
        linalg.solve(jnp.eye(3), jnp.ones(3))
    with pytest.raises(TypeError, match="`operator`"):
        linalg.Inverse(jnp.eye(3))
    with pytest.raises(ValueError, match="`vector`"):
        linalg.solve(op, jnp.ones(4))
    with pytest.raises(ValueError, match="`vector`"):
        linalg.solve(op, jnp.ones((3, 2)))
    with pytest.raises(ValueError, match="`operator` must be square"):
        linalg.logdet(lx.MatrixLinearOperator(jnp.ones((2, 3))))
    with pytest.raises(ValueError, match="`operator` must be square"):
        lx.linear_solve(lx.MatrixLinearOperator(jnp.ones((2, 3))), jnp.ones(2), linalg.Structured())
