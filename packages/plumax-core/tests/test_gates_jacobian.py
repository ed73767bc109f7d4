"""`jacobian_probe_error` and `dot_product_test`."""

import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import pytest
from jax.tree_util import Partial

from plumax_core.gates import dot_product_test, jacobian_probe_error

M_OUT, N_IN = 30, 20


def _perturbed(seed: int, rel: float):
    """A random ``J`` and ``J + rel * ||J||_2 * M / ||M||_2``: relative distance exactly `rel`.

    (Built in float64 NumPy, then cast to float32: the distance is `rel` to ~1e-7.)
    """
    rng = np.random.default_rng(seed)
    jac = rng.standard_normal((M_OUT, N_IN))
    m = rng.standard_normal((M_OUT, N_IN))
    other = jac + rel * np.linalg.norm(jac, 2) * m / np.linalg.norm(m, 2)
    return jnp.asarray(other, jnp.float32), jnp.asarray(jac, jnp.float32)


@pytest.mark.parametrize("rel", [0.0, 0.02, 0.1])
@pytest.mark.parametrize("kind", ["dense", "lineax", "function_operator"])
def test_with_transposes(getkey, kind, rel):
    a, b = _perturbed(0, rel)
    wrap = {
        "dense": lambda x: x,
        "lineax": lx.MatrixLinearOperator,
        "function_operator": lambda x: lx.FunctionLinearOperator(
            lambda v: x @ v, jax.ShapeDtypeStruct((N_IN,), x.dtype)
        ),
    }[kind]
    result = jacobian_probe_error(wrap(a), wrap(b), key=getkey())
    assert result.details["n_power_iter_diff"] == 4
    assert result.statistic == pytest.approx(rel, rel=0.02, abs=1e-6)
    assert result.passed == (rel <= 0.05)
    assert result.details["norm_b"] == pytest.approx(np.linalg.norm(np.asarray(b), 2), rel=1e-3)


def _matvec(mat, v):
    return mat @ v


@pytest.mark.parametrize("rel", [0.02, 0.1])
def test_callables_probe_only(getkey, rel):
    a, b = _perturbed(0, rel)
    # `Partial` keeps the matrices as traced leaves: one compilation for every call here.
    jv_a, jv_b = Partial(_matvec, a), Partial(_matvec, b)
    struct = jax.ShapeDtypeStruct((N_IN,), jnp.float32)
    # Fewer probes than inputs: a subspace estimate, close but not exact.
    result = jacobian_probe_error(jv_a, jv_b, key=getkey(), in_example=struct)
    assert result.details["n_power_iter_diff"] == 0
    assert result.statistic == pytest.approx(rel, rel=0.35)
    assert result.passed == (rel <= 0.05)
    # As many probes as inputs: the probes span the space and the estimate is exact.
    exact = jacobian_probe_error(
        jv_a, jv_b, key=getkey(), n_probes=N_IN, in_example=jnp.zeros(N_IN)
    )
    assert exact.statistic == pytest.approx(rel, rel=1e-3)


def test_mixed_callable_and_operator(getkey):
    a, b = _perturbed(0, 0.1)
    result = jacobian_probe_error(lambda v: a @ v, lx.MatrixLinearOperator(b), key=getkey())
    assert not result.passed
    assert result.details["n_power_iter_diff"] == 0  # no transpose of the callable
    assert result.details["n_power_iter_b"] == 4


def test_jacobian_operator_of_nonlinear_model(getkey, x64):
    w = jnp.asarray(np.random.default_rng(1).standard_normal((M_OUT, N_IN)))

    def model(x):
        return jnp.tanh(w @ x) + 0.1 * jnp.sum(x**2)

    x = jnp.asarray(np.random.default_rng(2).standard_normal(N_IN))
    dense = jax.jacfwd(model)(x)
    linearised = lx.JacobianLinearOperator(lambda y, _: model(y), x)
    same = jacobian_probe_error(linearised, dense, key=getkey())
    assert same.passed and same.statistic < 1e-12
    # A wrong "emulator" Jacobian (drops the quadratic term) must fail.
    wrong = jax.jacfwd(lambda y: jnp.tanh(w @ y))(x)
    assert not jacobian_probe_error(wrong, linearised, key=getkey()).passed


def test_pytree_operator(getkey):
    struct = {
        "a": jax.ShapeDtypeStruct((3,), jnp.float32),
        "b": jax.ShapeDtypeStruct((2,), jnp.float32),
    }
    op = lx.FunctionLinearOperator(lambda p: 2.0 * p["a"].sum() + p["b"], struct)
    op2 = lx.FunctionLinearOperator(lambda p: 2.2 * p["a"].sum() + p["b"], struct)
    result = jacobian_probe_error(op2, op, key=getkey())
    # ||A - B|| = 0.2 * ||[1,1,1]|| ... = 0.2 sqrt(6); ||B|| = largest singular value of B.
    b_dense = np.array([[2.0, 2, 2, 1, 0], [2, 2, 2, 0, 1]])
    d_dense = np.array([[0.2, 0.2, 0.2, 0, 0], [0.2, 0.2, 0.2, 0, 0]])
    expected = np.linalg.norm(d_dense, 2) / np.linalg.norm(b_dense, 2)
    assert result.statistic == pytest.approx(float(expected), rel=1e-4)


def test_zero_reference(getkey):
    zero = jnp.zeros((4, 3))
    assert jacobian_probe_error(zero, zero, key=getkey()).statistic == 0.0
    result = jacobian_probe_error(jnp.ones((4, 3)), zero, key=getkey())
    assert result.statistic == float("inf") and not result.passed


def test_bad_input(getkey):
    a, b = _perturbed(0, 0.02)
    with pytest.raises(ValueError, match="op_b"):
        jacobian_probe_error(a, b[:, :5], key=getkey())
    with pytest.raises(ValueError, match="op_b"):
        jacobian_probe_error(a, b[:5], key=getkey())
    with pytest.raises(ValueError, match="in_example"):
        jacobian_probe_error(lambda v: a @ v, lambda v: b @ v, key=getkey())
    with pytest.raises(ValueError, match="op_a"):
        jacobian_probe_error("not an operator", b, key=getkey())
    with pytest.raises(ValueError, match="op_a"):
        jacobian_probe_error(jnp.ones(3), b, key=getkey())
    with pytest.raises(ValueError, match="n_probes"):
        jacobian_probe_error(a, b, key=getkey(), n_probes=0)
    with pytest.raises(ValueError, match="tol"):
        jacobian_probe_error(a, b, key=getkey(), tol=-1.0)


# ---------------------------------------------------------------- dot-product test


def _model(w):
    def f(x):
        return jnp.sin(w @ x) * jnp.exp(0.1 * x[: w.shape[0]])

    return f


def _data(dtype):
    rng = np.random.default_rng(3)
    w = jnp.asarray(rng.standard_normal((N_IN, N_IN)), dtype)
    return w, jnp.asarray(rng.standard_normal(N_IN), dtype)


def test_dot_product_correct_vjp_float64(getkey, x64):
    w, x = _data(jnp.float64)
    f = _model(w)
    y, pullback = jax.vjp(f, x)
    result = dot_product_test(lambda u: jax.jvp(f, (x,), (u,))[1], pullback, x, y, key=getkey())
    assert result.passed
    assert result.threshold == 1e-10
    assert result.statistic < 1e-13
    assert len(result.details["mismatch"]) == 4


def test_dot_product_correct_vjp_float32(getkey):
    w, x = _data(jnp.float32)
    f = _model(w)
    y, pullback = jax.vjp(f, x)
    result = dot_product_test(lambda u: jax.jvp(f, (x,), (u,))[1], pullback, x, y, key=getkey())
    assert result.passed
    assert result.threshold == 1e-4


@pytest.mark.parametrize("bug", ["missing_transpose", "missing_factor", "wrong_sign_term"])
def test_dot_product_wrong_vjp_fails(getkey, x64, bug):
    jac, _ = _data(jnp.float64)
    vjp_fn = {
        "missing_transpose": lambda w: jac @ w,
        "missing_factor": lambda w: 0.5 * (jac.T @ w),
        "wrong_sign_term": lambda w: jac.T @ w - 2 * jnp.diag(jac) * w,
    }[bug]
    x = jnp.zeros(N_IN)
    result = dot_product_test(lambda u: jac @ u, vjp_fn, x, x, key=getkey())
    assert not result.passed
    assert result.statistic > 1e-3


def test_dot_product_pytrees_and_shapes(getkey, x64):
    def f(p):
        return {"c": p["a"] @ p["b"], "s": jnp.sum(p["a"] ** 2)}

    rng = np.random.default_rng(4)
    p = {
        "a": jnp.asarray(rng.standard_normal((3, 4))),
        "b": jnp.asarray(rng.standard_normal((4, 2))),
    }
    y, pullback = jax.vjp(f, p)
    struct_out = jax.tree_util.tree_map(lambda v: jax.ShapeDtypeStruct(v.shape, v.dtype), y)
    result = dot_product_test(
        lambda u: jax.jvp(f, (p,), (u,))[1], pullback, p, struct_out, key=getkey(), n_probes=2
    )
    assert result.passed and result.statistic < 1e-13
    with pytest.raises(ValueError, match="vjp_fn"):
        dot_product_test(
            lambda u: jax.jvp(f, (p,), (u,))[1],
            lambda w: {"a": jnp.zeros((3, 4)), "b": jnp.zeros((2, 4))},
            p,
            y,
            key=getkey(),
        )
    with pytest.raises(ValueError, match="jvp_fn"):
        dot_product_test(lambda u: jnp.zeros(3), pullback, p, y, key=getkey())


def test_dot_product_bad_input(getkey):
    x = jnp.zeros(3)
    with pytest.raises(ValueError, match="primal_in"):
        dot_product_test(lambda u: u, lambda w: w, jnp.zeros(3, int), x, key=getkey())
    with pytest.raises(ValueError, match="n_probes"):
        dot_product_test(lambda u: u, lambda w: w, x, x, key=getkey(), n_probes=0)
    with pytest.raises(ValueError, match="rtol"):
        dot_product_test(lambda u: u, lambda w: w, x, x, key=getkey(), rtol=0.0)
    nan_result = dot_product_test(lambda u: u * jnp.nan, lambda w: w, x, x, key=getkey())
    assert not nan_result.passed
    np.testing.assert_equal(nan_result.statistic, np.inf)
