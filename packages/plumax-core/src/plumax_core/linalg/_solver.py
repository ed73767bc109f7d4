"""`Structured`: a lineax solver that uses `plumax_core.linalg.solve`."""

from __future__ import annotations

from typing import Any

import lineax as lx
from jaxtyping import Array, PyTree

from .._validation import check_square_operator
from ._functions import _solve


class Structured(lx.AbstractLinearSolver):
    """A lineax solver that dispatches on the operator's structure.

    `lx.linear_solve(op, b, solver=Structured())` returns the same `x` as
    `plumax_core.linalg.solve(op, b)`: a Woodbury solve for a `LowRankUpdate`, per-factor
    solves for a `Kronecker`, per-block solves for a `BlockDiagonal`, elementwise
    division for a diagonal operator, and `lx.linear_solve` with Cholesky (PSD-tagged)
    or `lx.AutoLinearSolver(well_posed=True)` for anything else. Going through
    `lx.linear_solve` adds lineax's machinery on top: its autodiff rules (gradients with
    respect to the operator and the right-hand side), `throw=` error reporting and
    `lx.invert`.

    The operator must be square and nonsingular (`assume_full_rank()` is `True`).

    `init` stores the operator itself as the solver state and does no factorisation:
    every `compute` redoes the structured solve. For the structured operators this is
    cheap (for a `LowRankUpdate` with diagonal base, `O(n k² + k³)`), and under
    `jax.vmap` over right-hand sides the operator-only work is shared; for a dense
    operator it refactorises on every call, so prefer a lineax solver there.
    """

    def init(self, operator: lx.AbstractLinearOperator, options: dict[str, Any]):
        del options
        check_square_operator(operator, "operator")
        return operator

    def compute(
        self,
        state: lx.AbstractLinearOperator,
        vector: PyTree[Array],
        options: dict[str, Any],
    ) -> tuple[PyTree[Array], lx.RESULTS, dict[str, Any]]:
        del options
        return _solve(state, vector), lx.RESULTS.successful, {}

    def transpose(self, state: lx.AbstractLinearOperator, options: dict[str, Any]):
        return state.transpose(), options

    def conj(self, state: lx.AbstractLinearOperator, options: dict[str, Any]):
        return lx.conj(state), options

    def assume_full_rank(self) -> bool:
        return True


Structured.__init__.__doc__ = """**Arguments:**

Nothing.
"""
