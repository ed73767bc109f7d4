"""Jacobian probe gate: relative operator-norm distance between two linearisations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import lineax as lx
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from .._validation import check_positive_int
from ._result import GateResult

__all__ = ["jacobian_probe_error"]

LinearLike = lx.AbstractLinearOperator | Callable[[Any], Any] | Array | np.ndarray


class _FlatMap(NamedTuple):
    """A linear map on flat vectors: ``mv: (n,) -> (m,)``, optional ``rmv: (m,) -> (n,)``."""

    mv: Callable[[Array], Array]
    rmv: Callable[[Array], Array] | None
    n_in: int
    dtype: Any


def _as_struct(x):
    """`jax.ShapeDtypeStruct` of an array-like or struct leaf."""
    if not (hasattr(x, "shape") and hasattr(x, "dtype")):
        x = np.asarray(x)
    return jax.ShapeDtypeStruct(tuple(x.shape), x.dtype)


def _flat_spec(structure):
    """Size, dtype and ``unravel: (n,) -> pytree`` for a pytree of `ShapeDtypeStruct`s.

    Works from shapes alone, so no array is created (or computation compiled) outside jit.
    """
    leaves, treedef = jax.tree_util.tree_flatten(structure)
    sizes = [int(np.prod(leaf.shape, dtype=np.int64)) for leaf in leaves]
    offsets = np.cumsum([0, *sizes])
    dtype = jnp.result_type(*[leaf.dtype for leaf in leaves]) if leaves else jnp.float32

    def unravel(v):
        parts = [
            v[int(offsets[i]) : int(offsets[i + 1])].reshape(leaf.shape).astype(leaf.dtype)
            for i, leaf in enumerate(leaves)
        ]
        return jax.tree_util.tree_unflatten(treedef, parts)

    return int(offsets[-1]), dtype, unravel


def _ravel(tree):
    leaves = jax.tree_util.tree_leaves(tree)
    dtype = jnp.result_type(*[x.dtype for x in leaves])
    return jnp.concatenate([jnp.ravel(x).astype(dtype) for x in leaves])


def _flatten_fn(fn, unravel_in):
    """Wrap ``fn`` (pytree -> pytree) as a flat-vector map."""

    def flat(v):
        return _ravel(fn(unravel_in(v)))

    return flat


def _from_lineax(op: lx.AbstractLinearOperator) -> _FlatMap:
    n_in, dtype, unravel_in = _flat_spec(op.in_structure())
    mv = _flatten_fn(op.mv, unravel_in)
    try:
        n_out, out_dtype, unravel_out = _flat_spec(op.out_structure())
        rmv = _flatten_fn(op.transpose().mv, unravel_out)
        # Transposes can be lazy and fail only when applied; try one before relying on it.
        jax.eval_shape(rmv, jax.ShapeDtypeStruct((n_out,), out_dtype))
    except Exception:  # no usable transpose: fall back to probing only
        rmv = None
    return _FlatMap(mv, rmv, n_in, dtype)


def _from_dense(mat: Array, name: str) -> _FlatMap:
    if mat.ndim != 2:
        raise ValueError(f"`{name}` as a dense Jacobian must be 2-D (m, n), got {mat.shape}.")
    return _FlatMap(lambda v: mat @ v, lambda w: mat.T @ w, int(mat.shape[1]), mat.dtype)


def _from_callable(fn: Callable, in_struct) -> _FlatMap:
    n_in, dtype, unravel_in = _flat_spec(in_struct)
    return _FlatMap(_flatten_fn(fn, unravel_in), None, n_in, dtype)


def _as_flat_map(op: Any, name: str, in_struct) -> _FlatMap | None:
    """Normalise `op`; returns None for a callable when no input structure is known yet."""
    if isinstance(op, lx.AbstractLinearOperator):
        return _from_lineax(op)
    if isinstance(op, jax.Array | np.ndarray) or (
        hasattr(op, "shape") and hasattr(op, "dtype") and not callable(op)
    ):
        return _from_dense(jnp.asarray(op), name)
    if callable(op):
        if in_struct is None:
            return None
        return _from_callable(op, in_struct)
    raise ValueError(
        f"`{name}` must be a lineax operator, a callable v -> J v or a dense 2-D array, "
        f"got {type(op).__name__}."
    )


def _orth_rows(v: Array) -> Array:
    """Orthonormal rows spanning the rows of ``v`` (shape ``(k, n)`` -> ``(min(k, n), n)``)."""
    q, _ = jnp.linalg.qr(v.T)
    return q.T


def _top_singular_value(batched_mv, batched_rmv, v0: Array, n_iter: int) -> Array:
    """Largest singular value of a linear map, by randomised block subspace iteration.

    With ``n_iter = 0`` (or no transpose) this is ``sigma_max(M Q)`` for ``Q`` an
    orthonormal basis of the probes' span: a lower bound on ``||M||_2`` that is exact
    when the probes span the input space. Each power step replaces the block ``V`` by
    ``M^T M Q`` (Halko, Martinsson & Tropp 2011, Alg. 4.4), which converges to the
    dominant right singular subspace.
    """
    q = _orth_rows(v0)
    if batched_rmv is not None and n_iter > 0:
        q = jax.lax.fori_loop(0, n_iter, lambda _, q: _orth_rows(batched_rmv(batched_mv(q))), q)
    y = batched_mv(q)
    return jnp.linalg.svd(y, compute_uv=False)[0]


def _resolve(op_a, op_b, in_struct) -> tuple[_FlatMap, _FlatMap]:
    """Both operators as flat maps with the same input size (`ValueError` otherwise)."""
    map_a = _as_flat_map(op_a, "op_a", in_struct)
    map_b = _as_flat_map(op_b, "op_b", in_struct)
    if map_a is None and map_b is None:
        raise ValueError("`in_example` is required when `op_a` and `op_b` are both callables.")
    if map_a is None or map_b is None:
        # One callable, one structured operator: take the input shape from the latter.
        known = map_b if map_a is None else map_a
        struct = jax.ShapeDtypeStruct((known.n_in,), known.dtype)
        if map_a is None:
            map_a = _from_callable(op_a, struct)
        else:
            map_b = _from_callable(op_b, struct)
    if map_a.n_in != map_b.n_in:
        raise ValueError(
            f"`op_a` takes {map_a.n_in} inputs but `op_b` takes {map_b.n_in} (shape mismatch)."
        )
    return map_a, map_b


def _probe_dtype(map_a: _FlatMap, map_b: _FlatMap):
    dtype = jnp.result_type(map_a.dtype, map_b.dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(float)
    return dtype


@eqx.filter_jit
def _estimate(op_a, op_b, in_struct, v0, n_power_iter: int):
    """Frobenius probe sums and both spectral-norm estimates, in one compiled call."""
    map_a, map_b = _resolve(op_a, op_b, in_struct)

    def diff_mv(v):
        return map_a.mv(v) - map_b.mv(v)

    def diff_rmv(w):
        return map_a.rmv(w) - map_b.rmv(w)

    has_diff_t = map_a.rmv is not None and map_b.rmv is not None
    diff_mv_b = jax.vmap(diff_mv)
    diff_rmv_b = jax.vmap(diff_rmv) if has_diff_t else None
    b_mv_b = jax.vmap(map_b.mv)
    b_rmv_b = None if map_b.rmv is None else jax.vmap(map_b.rmv)
    v0 = v0.astype(_probe_dtype(map_a, map_b))
    frob_num = jnp.sum(diff_mv_b(v0) ** 2)
    frob_den = jnp.sum(b_mv_b(v0) ** 2)
    norm_diff = _top_singular_value(diff_mv_b, diff_rmv_b, v0, n_power_iter)
    norm_b = _top_singular_value(b_mv_b, b_rmv_b, v0, n_power_iter)
    return frob_num, frob_den, norm_diff, norm_b


def jacobian_probe_error(
    op_a: LinearLike,
    op_b: LinearLike,
    *,
    key: PRNGKeyArray,
    n_probes: int = 16,
    tol: float = 0.05,
    n_power_iter: int = 4,
    in_example: Any = None,
) -> GateResult:
    """Relative operator-norm distance ``||A - B||_2 / ||B||_2`` of two linearisations.

    Typically `op_a` is the emulator's (or adjoint's) Jacobian and `op_b` the oracle's,
    at the same point. The norms are estimated by random probing:

    1. draw ``n_probes`` Gaussian vectors ``v_i ~ N(0, I_n)`` (rows of ``V``);
    2. if both operators have a transpose (lineax operators whose ``.transpose()``
       works, dense arrays), refine ``V`` with ``n_power_iter`` steps of block power
       (subspace) iteration on ``(A - B)^T (A - B)``; likewise on ``B^T B`` when `op_b`
       has a transpose;
    3. ``||M||_2 ≈ sigma_max(M Q)``, ``Q`` an orthonormal basis of the rows of ``V``.

    Without transposes (callables) only step 1 is done: each norm is then a lower bound
    from a random ``n_probes``-dimensional subspace, exact when ``n_probes >= n``
    (the input dimension), and usually within a few percent of it otherwise for
    Jacobians with a decaying spectrum. ``details`` also gives the plain probe ratio
    ``sqrt(sum_i ||(A - B) v_i||^2 / sum_i ||B v_i||^2)``, an unbiased-in-the-square
    estimate of the relative *Frobenius* distance. The seed's adjoint gate uses
    ``tol = 0.05`` (docs/architecture.md, the core contracts).

    Args:
        op_a: the linearisation under test: a `lineax.AbstractLinearOperator` (``.mv``,
            ``.transpose()``), a dense 2-D array ``(m, n)``, or a JAX-traceable (and
            `vmap`-able) callable ``v -> J v``.
        op_b: the reference linearisation, same forms, same input and output sizes.
        key: PRNG key for the probes.
        n_probes: number of probe vectors, >= 1.
        tol: pass when the estimated relative distance is ``<= tol``.
        n_power_iter: power-iteration steps when transposes are available, >= 0.
        in_example: an example input (array, pytree or `jax.ShapeDtypeStruct`s) fixing
            the input shape; needed only when both operators are callables.

    Returns:
        `GateResult` named ``"jacobian_probe_error"``: statistic the relative distance,
        threshold `tol`; ``details`` has both norm estimates, the Frobenius probe ratio
        and whether power iteration was used.

    Raises:
        ValueError: on unsupported operator types, mismatched input/output sizes,
            missing `in_example` for two callables, or invalid settings.
    """
    n_probes = check_positive_int(n_probes, "n_probes")
    n_power_iter = check_positive_int(n_power_iter, "n_power_iter", minimum=0)
    tol = float(tol)
    if not (np.isfinite(tol) and tol > 0):
        raise ValueError(f"`tol` must be finite and > 0, got {tol}.")
    in_struct = None if in_example is None else jax.tree_util.tree_map(_as_struct, in_example)
    for op, name in ((op_a, "op_a"), (op_b, "op_b")):
        if isinstance(op, jax.Array | np.ndarray) and not np.all(np.isfinite(np.asarray(op))):
            raise ValueError(f"`{name}` contains NaN or infinite values.")
    # Resolve eagerly once to validate (shapes only, nothing is compiled) ...
    map_a, map_b = _resolve(op_a, op_b, in_struct)
    dtype = _probe_dtype(map_a, map_b)
    n = map_a.n_in
    probe = jax.ShapeDtypeStruct((n,), dtype)
    out_a = jax.eval_shape(map_a.mv, probe)
    out_b = jax.eval_shape(map_b.mv, probe)
    if out_a.shape != out_b.shape:
        raise ValueError(
            f"`op_a` returns {out_a.shape[0]} outputs but `op_b` returns {out_b.shape[0]} "
            "(shape mismatch)."
        )
    # ... then estimate in one compiled call (operators are pytree arguments, so the
    # compilation is reused across calls with operators of the same type and shapes).
    # Probes drawn eagerly: the sampler's compilation is then shared by all calls.
    v0 = jr.normal(key, (n_probes, n), dtype)
    frob_num, frob_den, norm_diff, norm_b = (
        float(x) for x in _estimate(op_a, op_b, in_struct, v0, n_power_iter)
    )
    has_diff_t = map_a.rmv is not None and map_b.rmv is not None
    statistic = _safe_ratio(norm_diff, norm_b)
    frob_ratio = _safe_ratio(np.sqrt(frob_num), np.sqrt(frob_den))
    return GateResult(
        name="jacobian_probe_error",
        passed=bool(statistic <= tol),
        statistic=statistic,
        threshold=tol,
        details={
            "rule": "||A - B|| / ||B|| <= tol",
            "norm_diff": norm_diff,
            "norm_b": norm_b,
            "frobenius_probe_ratio": frob_ratio,
            "n_probes": n_probes,
            "n_power_iter_diff": n_power_iter if has_diff_t else 0,
            "n_power_iter_b": n_power_iter if map_b.rmv is not None else 0,
            "n_in": n,
            "n_out": int(out_a.shape[0]),
            "dtype": str(np.dtype(dtype)),
        },
    )


def _safe_ratio(num: float, den: float) -> float:
    num, den = float(num), float(den)
    if den > 0:
        return num / den
    return 0.0 if num == 0 else float("inf")
