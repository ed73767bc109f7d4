"""Classifier two-sample test (C2ST) between two sets of posterior draws.

Lopez-Paz & Oquab (2017), "Revisiting classifier two-sample tests", ICLR: train a
classifier to tell sample A (the flow's draws) from sample B (the oracle's draws, e.g.
NUTS); its held-out accuracy is 0.5 when the two distributions are identical and
approaches 1 as they separate. Under the null the held-out accuracy over ``n_test``
balanced points is approximately ``N(1/2, 1/(4 n_test))``, which gives the p-value
reported. Used in the SBI benchmark of Lueckmann et al. (2021) with a threshold near 0.6
for "good" posteriors.
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import ArrayLike, PRNGKeyArray

from plumax_core.gates import GateResult


def _bce(model, x, y):
    logits = jax.vmap(model)(x)[:, 0]
    return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, y))


def c2st(
    samples_a: ArrayLike,
    samples_b: ArrayLike,
    *,
    key: PRNGKeyArray,
    threshold: float = 0.6,
    test_fraction: float = 0.3,
    width: int = 64,
    depth: int = 2,
    steps: int = 1500,
    learning_rate: float = 1e-3,
) -> GateResult:
    """C2ST accuracy of an MLP classifier separating ``samples_a`` from ``samples_b``.

    Both samples are z-scored with the pooled mean and std, the classes are balanced
    (the larger sample is subsampled), a ``test_fraction`` is held out, and an MLP
    (``depth`` hidden layers of ``width``, GELU) is trained with Adam on the rest
    (full-batch, ``steps`` steps). The held-out accuracy is the statistic.

    Args:
        samples_a, samples_b: draws of shape ``(n_a, D)`` and ``(n_b, D)`` (any
            leading axes are flattened), e.g. flow and NUTS draws in the same space.
        key: PRNG key.
        threshold: the gate passes when accuracy <= threshold (0.5 = identical).

    Returns:
        `GateResult` named ``"c2st"``; ``details`` has the p-value against 0.5, the
        numbers of training and test points.

    Raises:
        ValueError: mismatched D, fewer than 20 draws in a sample, non-finite values.
    """
    a = np.asarray(samples_a, dtype=np.float64)
    b = np.asarray(samples_b, dtype=np.float64)
    if a.ndim < 2 or b.ndim < 2:
        raise ValueError("`samples_a` and `samples_b` must be (n, D) arrays")
    a, b = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"`samples_a` has D={a.shape[1]} but `samples_b` has D={b.shape[1]}")
    if min(len(a), len(b)) < 20:
        raise ValueError("`samples_a` and `samples_b` need at least 20 draws each")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("`samples_a` and `samples_b` must be finite")
    if not 0 < test_fraction < 1:
        raise ValueError(f"`test_fraction` must be in (0, 1), got {test_fraction}")
    k_sub, k_perm, k_init = jr.split(key, 3)
    n = min(len(a), len(b))
    ia = np.asarray(jr.permutation(k_sub, len(a)))[:n]
    ib = np.asarray(jr.permutation(jr.fold_in(k_sub, 1), len(b)))[:n]
    x = np.concatenate([a[ia], b[ib]])
    y = np.concatenate([np.zeros(n), np.ones(n)])
    x = (x - x.mean(axis=0)) / np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0)
    order = np.asarray(jr.permutation(k_perm, 2 * n))
    x, y = jnp.asarray(x[order], jnp.float32), jnp.asarray(y[order], jnp.float32)
    n_test = max(2, int(round(test_fraction * 2 * n)))
    x_tr, y_tr, x_te, y_te = x[n_test:], y[n_test:], x[:n_test], y[:n_test]
    model = eqx.nn.MLP(x.shape[1], 1, width, depth, activation=jax.nn.gelu, key=k_init)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    opt = optax.adam(learning_rate)

    @eqx.filter_jit
    def train(params, x_tr, y_tr):
        def step(carry, _):
            p, s = carry
            grads = eqx.filter_grad(lambda q: _bce(eqx.combine(q, static), x_tr, y_tr))(p)
            updates, s = opt.update(grads, s, p)
            return (eqx.apply_updates(p, updates), s), None

        (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
        return params

    model = eqx.combine(train(params, x_tr, y_tr), static)
    pred = np.asarray(jax.vmap(model)(x_te)[:, 0] > 0)
    acc = float(np.mean(pred == np.asarray(y_te, bool)))
    z = (acc - 0.5) * 2.0 * math.sqrt(n_test)
    p = 0.5 * math.erfc(z / math.sqrt(2.0))
    return GateResult(
        name="c2st",
        passed=acc <= threshold,
        statistic=acc,
        threshold=threshold,
        details={
            "rule": "held-out accuracy <= threshold (0.5 = indistinguishable)",
            "p_value_vs_chance": p,
            "n_train": int(2 * n - n_test),
            "n_test": int(n_test),
            "n_per_sample": int(n),
        },
    )
