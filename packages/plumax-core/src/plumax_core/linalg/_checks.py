"""Argument checks shared by the structured operators (run at construction, outside jit)."""

from __future__ import annotations

import jax
import lineax as lx


def check_square_operator(operator: object, name: str) -> int:
    """Check that `operator` is a square lineax operator on flat 1-D vectors.

    **Arguments:**

    - `operator`: the object to check.
    - `name`: the argument name used in error messages.

    **Returns:**

    The size `n` of the operator (it maps shape `(n,)` to shape `(n,)`).

    **Raises:**

    - `TypeError` if `operator` is not an `lx.AbstractLinearOperator`.
    - `ValueError` if it does not act on 1-D arrays, or is not square.
    """
    if not isinstance(operator, lx.AbstractLinearOperator):
        raise TypeError(
            f"`{name}` must be a lineax.AbstractLinearOperator, got {type(operator).__name__}. "
            "Wrap a matrix as `lineax.MatrixLinearOperator(matrix)`."
        )
    in_struct = operator.in_structure()
    out_struct = operator.out_structure()
    for label, struct in (("input", in_struct), ("output", out_struct)):
        if not isinstance(struct, jax.ShapeDtypeStruct) or len(struct.shape) != 1:
            raise ValueError(
                f"`{name}` must act on flat 1-D vectors; its {label} structure is {struct}."
            )
    if in_struct.shape != out_struct.shape:
        raise ValueError(
            f"`{name}` must be square; it maps shape {in_struct.shape} to {out_struct.shape}."
        )
    return in_struct.shape[0]
