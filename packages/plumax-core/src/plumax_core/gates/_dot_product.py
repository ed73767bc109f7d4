"""Dot-product (adjoint) test: ``<J u, w> == <u, J^T w>`` for random ``u, w``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import PRNGKeyArray

from .._validation import check_positive_int
from ._result import GateResult

__all__ = ["dot_product_test"]

_tree = jax.tree_util


def _default_rtol(itemsize: int) -> float:
    """Default tolerance by the byte size of the least precise floating dtype seen."""
    if itemsize >= 8:
        return 1e-10
    if itemsize >= 4:
        return 1e-4
    return 1e-2


def _structure(example: Any, name: str):
    """Pytree of `jax.ShapeDtypeStruct` from an example pytree of arrays / structs."""

    def leaf(x):
        if not (hasattr(x, "shape") and hasattr(x, "dtype")):
            x = jnp.asarray(x)
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise ValueError(f"`{name}` leaves must be floating point, got dtype {x.dtype}.")
        return jax.ShapeDtypeStruct(tuple(x.shape), x.dtype)

    return _tree.tree_map(leaf, example)


def _random_like(key: PRNGKeyArray, structure, n: int):
    """Standard-normal pytree like `structure`, with a leading axis of length `n`."""
    leaves, treedef = _tree.tree_flatten(structure)
    keys = jr.split(key, max(len(leaves), 1))
    return _tree.tree_unflatten(
        treedef,
        [jr.normal(k, (n, *s.shape), s.dtype) for k, s in zip(keys, leaves, strict=False)],
    )


def _vdot(a, b):
    pairs = zip(_tree.tree_leaves(a), _tree.tree_leaves(b), strict=True)
    return sum(jnp.vdot(x, y) for x, y in pairs)


def _norm(a):
    return jnp.sqrt(sum(jnp.sum(x * x) for x in _tree.tree_leaves(a)))


@eqx.filter_jit
def _inner_products(jvp_fn, vjp_fn, us, ws, unwrap: bool):
    """Per probe ``<J u, w>``, ``<u, J^T w>`` and the four norms, in one compiled call.

    `us`, `ws` carry a leading probe axis; `jax.lax.map` applies the functions one probe
    at a time (no `vmap` requirement on them).
    """

    def one(uw):
        u, w = uw
        ju = jvp_fn(u)
        jtw = vjp_fn(w)
        if unwrap:
            jtw = jtw[0]
        return jnp.stack([_vdot(ju, w), _vdot(u, jtw), _norm(ju), _norm(w), _norm(u), _norm(jtw)])

    return jax.lax.map(one, (us, ws))


def _check_like(value, structure, name: str, what: str):
    s_val = _tree.tree_structure(value)
    s_ref = _tree.tree_structure(structure)
    if s_val != s_ref:
        raise ValueError(f"`{name}` returned a {s_val}, expected the structure of {what}: {s_ref}.")
    for x, s in zip(_tree.tree_leaves(value), _tree.tree_leaves(structure), strict=True):
        if tuple(jnp.shape(x)) != tuple(s.shape):
            raise ValueError(
                f"`{name}` returned shape {jnp.shape(x)}, expected {s.shape} (from {what})."
            )


def _itemsize(leaves) -> int:
    return min(np.dtype(x.dtype).itemsize for x in leaves)


def dot_product_test(
    jvp_fn: Callable[[Any], Any],
    vjp_fn: Callable[[Any], Any],
    primal_in: Any,
    primal_out: Any,
    *,
    key: PRNGKeyArray,
    n_probes: int = 4,
    rtol: float | None = None,
) -> GateResult:
    """Adjoint consistency: ``<J u, w> = <u, J^T w>`` for random ``u`` and ``w``.

    The classic "dot-product test" of a hand-written (or emulated) adjoint against its
    tangent-linear model (e.g. Claerbout 1992, *Earth Soundings Analysis*, §5; the
    standard check of 4D-Var adjoints). For ``n_probes`` pairs of standard-normal
    ``u`` (in the input space) and ``w`` (in the output space) the relative mismatch is

        ``|<J u, w> - <u, J^T w>| / max(||J u|| ||w||, ||u|| ||J^T w||)``.

    The denominator bounds both inner products (Cauchy-Schwarz), so the mismatch is
    measured against the size of the terms rounding acts on, and stays meaningful when
    ``<J u, w>`` happens to be near zero.

    Args:
        jvp_fn: tangent-linear map ``u -> J u``; ``u`` has the structure of `primal_in`,
            the result that of `primal_out`. E.g.
            ``lambda u: jax.jvp(f, (x,), (u,))[1]``.
        vjp_fn: adjoint map ``w -> J^T w`` returning the structure of `primal_in`. A
            1-tuple (what the pullback of `jax.vjp` returns) is unwrapped.
        primal_in: example of the input (an array, a pytree of arrays, or
            `jax.ShapeDtypeStruct`s); only shapes and floating dtypes are used.
        primal_out: example of the output, likewise.
        key: PRNG key for the probes.
        n_probes: number of ``(u, w)`` pairs, >= 1.
        rtol: pass when the largest mismatch is ``<= rtol``. Default by the least
            precise floating dtype among the inputs, outputs and results: 1e-10 for
            float64, 1e-4 for float32, 1e-2 for 16-bit floats. (For very large float32
            operators, rounding in the inner products grows like ``sqrt(size)`` times
            machine epsilon; pass a looser `rtol` there.)

    Returns:
        `GateResult` named ``"dot_product_test"``: statistic the largest relative
        mismatch, threshold `rtol`; ``details`` has the per-probe mismatches and inner
        products.

    Raises:
        ValueError: for non-floating examples, functions returning the wrong structure
            or shapes, or invalid settings.
    """
    n_probes = check_positive_int(n_probes, "n_probes")
    s_in = _structure(primal_in, "primal_in")
    s_out = _structure(primal_out, "primal_out")
    if rtol is not None:
        rtol = float(rtol)
        if not (np.isfinite(rtol) and rtol > 0):
            raise ValueError(f"`rtol` must be finite and > 0, got {rtol}.")
    # Check structures and shapes by abstract evaluation (nothing runs or compiles).
    ju_struct = jax.eval_shape(jvp_fn, s_in)
    _check_like(ju_struct, s_out, "jvp_fn", "primal_out")
    jtw_struct = jax.eval_shape(vjp_fn, s_out)
    unwrap = (
        isinstance(jtw_struct, tuple)
        and len(jtw_struct) == 1
        and _tree.tree_structure(jtw_struct) != _tree.tree_structure(s_in)
    )
    if unwrap:
        jtw_struct = jtw_struct[0]
    _check_like(jtw_struct, s_in, "vjp_fn", "primal_in")
    itemsize = _itemsize(
        _tree.tree_leaves(s_in)
        + _tree.tree_leaves(s_out)
        + _tree.tree_leaves(ju_struct)
        + _tree.tree_leaves(jtw_struct)
    )
    k_u, k_w = jr.split(key)
    # Probes drawn eagerly: the sampler's compilation is then shared by all calls.
    us = _random_like(k_u, s_in, n_probes)
    ws = _random_like(k_w, s_out, n_probes)
    rows = np.asarray(_inner_products(jvp_fn, vjp_fn, us, ws, unwrap), dtype=np.float64)
    mismatches, lhs_all, rhs_all = [], [], []
    for lhs, rhs, norm_ju, norm_w, norm_u, norm_jtw in rows.tolist():
        scale = max(norm_ju * norm_w, norm_u * norm_jtw)
        if not np.isfinite([lhs, rhs, scale]).all():
            mismatch = float("inf")
        elif scale > 0:
            mismatch = abs(lhs - rhs) / scale
        else:
            mismatch = 0.0
        mismatches.append(mismatch)
        lhs_all.append(lhs)
        rhs_all.append(rhs)
    if rtol is None:
        rtol = _default_rtol(itemsize)
    statistic = max(mismatches)
    return GateResult(
        name="dot_product_test",
        passed=bool(statistic <= rtol),
        statistic=statistic,
        threshold=rtol,
        details={
            "rule": "max relative |<Ju, w> - <u, J^T w>| <= rtol",
            "mismatch": mismatches,
            "jvp_inner": lhs_all,
            "vjp_inner": rhs_all,
            "n_probes": n_probes,
            "float_bytes": itemsize,
        },
    )
