"""One epoch of minibatch gradient descent, shared by every trained plumax model."""

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, PRNGKeyArray, PyTree


@eqx.filter_jit
def minibatch_epoch(
    loss: Callable[..., Array],
    params: PyTree,
    static: PyTree,
    opt_state: Any,
    optimiser: Any,
    data: tuple[Array, ...],
    key: PRNGKeyArray,
    batch_size: int,
    n_batches: int,
) -> tuple[PyTree, Any, Array]:
    """Run ``n_batches`` optimiser steps over a random permutation of ``data``.

    Args:
        loss: ``loss(params, static, *batch) -> scalar``; differentiated with respect to
            ``params`` (`equinox.filter_value_and_grad`).
        params, static: the trainable and static parts of the model
            (`equinox.partition`).
        opt_state: the optimiser state.
        optimiser: any object with an optax-style ``update(grads, state, params) ->
            (updates, state)`` (e.g. an ``optax.GradientTransformation``); it is a static
            argument, so reuse one object to reuse the compiled epoch.
        data: arrays with a shared leading axis ``N``; batch ``b`` is
            ``tuple(a[perm[b]] for a in data)``.
        key: PRNG key of the permutation ``jr.permutation(key, N)``.
        batch_size, n_batches: static; ``n_batches * batch_size <= N`` (the remainder
            of the permutation is dropped this epoch).

    Returns:
        ``(params, opt_state, mean loss over the steps)``.
    """
    n = data[0].shape[0]
    if n_batches * batch_size > n:
        raise ValueError(
            f"n_batches * batch_size ({n_batches} x {batch_size}) exceeds the data size {n}"
        )
    order = jr.permutation(key, n)[: n_batches * batch_size].reshape(n_batches, batch_size)

    def step(carry, idx):
        p, s = carry
        value, grads = eqx.filter_value_and_grad(loss)(p, static, *(a[idx] for a in data))
        updates, s = optimiser.update(grads, s, p)
        return (eqx.apply_updates(p, updates), s), value

    (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), order)
    return params, opt_state, jnp.mean(losses)
