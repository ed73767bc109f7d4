"""`plumax_core.training.minibatch_epoch` on least squares with a hand-written SGD."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from plumax_core.training import minibatch_epoch


class SGD:
    """The smallest optax-style optimiser: ``updates = -lr * grads``."""

    def __init__(self, lr):
        self.lr = lr

    def init(self, params):
        return None

    def update(self, grads, state, params=None):
        return (-self.lr * grads), state


def _loss(w, static, x, y):
    del static
    return jnp.mean((x @ w - y) ** 2)


def test_epoch_is_full_batch_gradient_descent_when_one_batch():
    x = jr.normal(jr.key(0), (32, 3))
    y = x @ jnp.array([1.0, -2.0, 0.5])
    w = jnp.zeros(3)
    opt = SGD(0.1)
    w1, _, loss = minibatch_epoch(_loss, w, None, None, opt, (x, y), jr.key(1), 32, 1)
    grad = 2 * x.T @ (x @ w - y) / 32
    np.testing.assert_allclose(w1, w - 0.1 * grad, rtol=1e-5)
    assert float(loss) == pytest.approx(float(_loss(w, None, x, y)))


def test_epochs_converge_and_are_deterministic():
    x = jr.normal(jr.key(0), (64, 3))
    true = jnp.array([1.0, -2.0, 0.5])
    y = x @ true
    opt = SGD(0.05)
    w, losses = jnp.zeros(3), []
    for e in range(60):
        w, _, loss = minibatch_epoch(_loss, w, None, None, opt, (x, y), jr.key(e), 8, 8)
        losses.append(float(loss))
    np.testing.assert_allclose(w, true, atol=1e-3)
    assert losses[-1] < 1e-3 * losses[0]
    again = minibatch_epoch(_loss, jnp.zeros(3), None, None, opt, (x, y), jr.key(0), 8, 8)
    first = minibatch_epoch(_loss, jnp.zeros(3), None, None, opt, (x, y), jr.key(0), 8, 8)
    np.testing.assert_array_equal(again[0], first[0])


def test_too_many_batches_is_refused():
    x = jnp.zeros((10, 2))
    with pytest.raises(ValueError, match="exceeds the data size"):
        minibatch_epoch(_loss, jnp.zeros(2), None, None, SGD(0.1), (x, x[:, 0]), jr.key(0), 4, 3)


class TreeSGD(SGD):
    """SGD on any pytree of arrays."""

    def update(self, grads, state, params=None):
        return jax.tree.map(lambda g: -self.lr * g, grads), state


def test_partitioned_equinox_model():
    model = eqx.nn.Linear(2, 1, key=jr.key(0))
    params, static = eqx.partition(model, eqx.is_inexact_array)

    def loss(p, s, x, y):
        return jnp.mean((jax.vmap(eqx.combine(p, s))(x)[:, 0] - y) ** 2)

    x = jr.normal(jr.key(2), (16, 2))
    y = x @ jnp.array([0.3, -0.7]) + 0.2
    opt = TreeSGD(0.2)
    first = float(loss(params, static, x, y))
    for e in range(100):
        params, _, _ = minibatch_epoch(loss, params, static, None, opt, (x, y), jr.key(e), 4, 4)
    assert float(loss(params, static, x, y)) < 1e-3 * first
