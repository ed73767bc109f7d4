"""Test helpers shared by every plumax package (and useful to anyone writing a model).

* :func:`tree_allclose` — ``allclose`` over two pytrees with the same structure.
* :func:`check_forward_model` — the :class:`~plumax_core.AbstractForwardModel`
  contract as executable checks: output kind/shape fixed, ``jit`` equals eager,
  ``vmap`` equals a Python loop, finite gradients w.r.t. every parameter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._forward import AbstractForwardModel
from ._met import MetField
from ._observations import Observations


def tree_allclose(x: Any, y: Any, *, rtol: float = 1e-5, atol: float = 1e-8) -> bool:
    """True when ``x`` and ``y`` have the same structure and all array leaves are close.

    Non-array leaves must compare equal.
    """
    xl, xs = jax.tree_util.tree_flatten(x)
    yl, ys = jax.tree_util.tree_flatten(y)
    if xs != ys:
        return False
    for a, b in zip(xl, yl, strict=True):
        if eqx.is_array_like(a) and eqx.is_array_like(b):
            a, b = np.asarray(a), np.asarray(b)
            if a.shape != b.shape or a.dtype != b.dtype:
                return False
            if not np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True):
                return False
        elif a != b:
            return False
    return True


def check_forward_model(
    model: AbstractForwardModel,
    params_batch: Mapping[str, Any],
    met: MetField,
    *,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    grad_params: Sequence[str] | None = None,
) -> Observations:
    """Run the forward-model contract checks; raise ``AssertionError`` on a violation.

    Args:
        model: the model under test.
        params_batch: a params dict with a leading batch axis (>= 2 entries).
        met: the met to run under.
        rtol: relative tolerance for jit-vs-eager and vmap-vs-loop agreement.
        atol: absolute tolerance for the same comparisons.
        grad_params: parameters whose gradient must be finite (default: all).

    Returns:
        The observations for the first parameter set (for further checks).
    """
    spec = model.param_spec
    spec.validate(params_batch)
    n = spec.batch_shape(params_batch)
    assert len(n) == 1 and n[0] >= 2, "params_batch needs one leading batch axis of size >= 2"
    singles = [{k: v[i] for k, v in params_batch.items()} for i in range(n[0])]

    eager = [model(p, met) for p in singles]
    first = eager[0]
    assert isinstance(first, Observations), "__call__ must return Observations"
    for obs in eager[1:]:
        assert obs.kind == first.kind and obs.values.shape == first.values.shape, (
            "output kind/shape must not depend on params"
        )
        assert obs.dims == first.dims

    jitted = eqx.filter_jit(model)
    for p, e in zip(singles, eager, strict=True):
        assert tree_allclose(jitted(p, met).values, e.values, rtol=rtol, atol=atol), (
            "jit(model) differs from eager model"
        )

    batched = eqx.filter_vmap(model, in_axes=(0, None))(params_batch, met)
    loop = jnp.stack([e.values for e in eager])
    assert tree_allclose(batched.values, loop, rtol=rtol, atol=atol), "vmap differs from a loop"

    names = spec.names if grad_params is None else tuple(grad_params)

    def scalar(p):
        return jnp.sum(jnp.where(first.valid(), model(p, met).values, 0.0))

    # gradients are taken in the default float dtype (float32 unless x64 is enabled)
    g = jax.grad(scalar)({k: jnp.asarray(v, dtype=float) for k, v in singles[0].items()})
    for name in names:
        assert bool(jnp.all(jnp.isfinite(g[name]))), f"gradient w.r.t. {name!r} is not finite"
    return first
