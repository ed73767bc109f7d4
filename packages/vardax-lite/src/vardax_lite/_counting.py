"""Cost accounting: count the full-model, tangent-linear and adjoint runs of an analysis.

:class:`CountingModel` wraps a forward model ``h`` and fires a host callback
(``jax.debug.callback``) each time a *run* is executed, whatever transformation
produced it:

* ``"model"``: one per nonlinear (full) evaluation of ``h`` — a plain call, the primal
  pass of ``jax.jvp`` / ``jax.linearize`` / ``jax.vjp`` / ``jax.grad`` (which run the
  model once), each iteration of a ``lax.while_loop`` / ``fori_loop`` that evaluates it
  (an optimistix solve);
* ``"tangent_linear"``: one per application of the tangent-linear model ``H' u`` (each
  call of a ``jax.linearize``-d function, each ``jax.jvp``);
* ``"adjoint"``: one per application of the adjoint ``H'^T w`` (each cotangent pulled
  back by ``jax.vjp`` / ``jax.grad`` / ``jax.linear_transpose``).

Under ``vmap`` every batch member counts (a Jacobian by ``jacfwd`` counts ``D``
tangent-linear runs). How: ``h`` becomes a ``jax.custom_jvp`` whose primal rule and
whose JVP rule's primal output fire ``"model"``; the JVP rule's tangent goes through an
identity written as ``lax.custom_linear_solve``, whose solve fires ``"tangent_linear"``
and whose transpose solve (what reverse mode evaluates) fires ``"adjoint"``. The
derivatives are unchanged (the identity is exact); ``jax.checkpoint`` recomputation
inside ``h`` is not a separate run (the callbacks sit outside ``h``).

Counts are collected by :func:`counting` (a context manager; nested ones all count)
after ``jax.effects_barrier()``, so asynchronous dispatch cannot lose a callback.
"""

from __future__ import annotations

import collections
import contextlib
import threading
from collections.abc import Iterator

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from plumax_core import AbstractForwardModel, Observations, ParamSpec

KINDS = ("model", "tangent_linear", "adjoint")

_LOCK = threading.Lock()
_ACTIVE: list[collections.Counter] = []


def _fire(kind: str) -> None:
    with _LOCK:
        for tally in _ACTIVE:
            tally[kind] += 1


def _on_model(_):
    _fire("model")


def _on_tangent_linear(_):
    _fire("tangent_linear")


def _on_adjoint(_):
    _fire("adjoint")


def _probe(x: jax.Array) -> jax.Array:
    """A flag computed from one element of ``x``: the callback's operand (batched under
    ``vmap``, cheap, and dependent on ``x``); a boolean, so that an overflowing trial
    value (an optimiser's line search) is never cast on the host."""
    return jnp.isnan(jnp.ravel(x)[:1])


def _is_zero(t) -> bool:
    return isinstance(t, SymbolicZero)


def _instantiate(t, primal):
    """A tangent as an array (a symbolic zero becomes zeros of the primal's shape)."""
    return jnp.zeros_like(primal) if _is_zero(t) else t


def _tap_linear(v: jax.Array) -> jax.Array:
    """The identity on a tangent; evaluating it counts a TL run, its transpose an adjoint."""

    def solve(_matvec, b):
        jax.debug.callback(_on_tangent_linear, _probe(b))
        return b

    def transpose_solve(_vecmat, b):
        jax.debug.callback(_on_adjoint, _probe(b))
        return b

    return jax.lax.custom_linear_solve(lambda x: x, v, solve, transpose_solve)


@contextlib.contextmanager
def counting() -> Iterator[collections.Counter]:
    """Collect the runs of every :class:`CountingModel` executed inside the block.

    Yields a ``collections.Counter`` with keys ``"model"``, ``"tangent_linear"`` and
    ``"adjoint"``, complete when the block exits.
    """
    tally: collections.Counter = collections.Counter({k: 0 for k in KINDS})
    with _LOCK:
        _ACTIVE.append(tally)
    try:
        yield tally
    finally:
        jax.effects_barrier()
        with _LOCK:
            _ACTIVE.remove(tally)


class CountingModel(AbstractForwardModel):
    """A forward model that counts its full, tangent-linear and adjoint runs.

    Attributes:
        model: the wrapped :class:`plumax_core.AbstractForwardModel`.

    ``__call__`` returns the wrapped model's values (same shape, ``kind``, ``dims`` and
    ``instrument``); its other fields (``sigma``, ``mask``, ``coords``) are not passed
    through (the analyses read only the values). Outside :func:`counting` the callbacks
    count nothing.
    """

    model: AbstractForwardModel

    @property
    def param_spec(self) -> ParamSpec:
        return self.model.param_spec

    @property
    def model_id(self) -> str:
        return self.model.model_id

    def __call__(self, params, met) -> Observations:
        meta: dict = {}
        # the model's and met's arrays are explicit arguments (a closure over tracers of
        # an enclosing jit would leak when the JVP rule is traced later, e.g. by optimistix)
        dynamic, static = eqx.partition((self.model, met), eqx.is_array)

        def run(p, dyn):
            model, met_ = eqx.combine(dyn, static)
            obs = model(p, met_)
            meta.update(kind=obs.kind, dims=obs.dims, instrument=obs.instrument)
            return obs.values

        @jax.custom_jvp
        def values(p, dyn):
            out = run(p, dyn)
            jax.debug.callback(_on_model, _probe(out))
            return out

        def jvp_rule(primals, tangents):
            # symbolic zeros: the model's and met's arrays are differentiated only when
            # their tangents are not zero (an analysis differentiates the parameters
            # alone; pushing explicit zero tangents through the met could give 0 * inf =
            # NaN, e.g. at a neutral met, 1/L = 0)
            (p, dyn), (tp, tdyn) = primals, tangents
            tp = jax.tree_util.tree_map(_instantiate, tp, p, is_leaf=_is_zero)
            if all(_is_zero(t) for t in jax.tree_util.tree_leaves(tdyn, is_leaf=_is_zero)):
                out, tangent = jax.jvp(lambda q: run(q, dyn), (p,), (tp,))
            else:
                tdyn = jax.tree_util.tree_map(_instantiate, tdyn, dyn, is_leaf=_is_zero)
                out, tangent = jax.jvp(run, (p, dyn), (tp, tdyn))
            jax.debug.callback(_on_model, _probe(out))
            return out, _tap_linear(tangent)

        values.defjvp(jvp_rule, symbolic_zeros=True)

        out = values(params, dynamic)
        return Observations(
            out, kind=meta["kind"], dims=meta["dims"], instrument=meta["instrument"]
        )


def with_counting(problem):
    """``problem`` with its forward model wrapped in :class:`CountingModel` (a copy)."""
    return eqx.tree_at(lambda p: p.forward_model, problem, CountingModel(problem.forward_model))
