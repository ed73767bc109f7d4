"""Block-diagonal lineax operators, `diag(A₁, …, A_b)`."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import jax.scipy as jsp
import lineax as lx
import numpy as np
from jaxtyping import Array, Inexact

from .._validation import check_square_operator
from ._functions import _cholesky, _logdet, _solve
from ._inverse import _inverse


class BlockDiagonal(lx.AbstractLinearOperator):
    """The block-diagonal operator `diag(A₁, …, A_b)` of square lineax operators.

    Block `j` has size `nⱼ`; a vector of shape `(n,)`, `n = Σⱼ nⱼ`, is split into
    consecutive pieces of sizes `n₁, …, n_b` and block `j` acts on piece `j`. `solve`,
    `logdet` (a sum), `cholesky` and `inverse` all work block by block, using each
    block's own structure.

    **Fields:**

    - `blocks`: the tuple `(A₁, …, A_b)`.
    """

    blocks: tuple[lx.AbstractLinearOperator, ...]

    def __init__(self, blocks: Sequence[lx.AbstractLinearOperator]):
        """**Arguments:**

        - `blocks`: a non-empty tuple or list of square lineax operators on 1-D vectors.

        **Raises:**

        `TypeError` if `blocks` is not a sequence of lineax operators; `ValueError` if
        it is empty or a block is not square.
        """
        if isinstance(blocks, lx.AbstractLinearOperator) or not isinstance(blocks, Sequence):
            raise TypeError(
                "`blocks` must be a tuple or list of lineax operators, "
                f"got {type(blocks).__name__}."
            )
        if len(blocks) == 0:
            raise ValueError("`blocks` must contain at least one operator.")
        for j, block in enumerate(blocks):
            check_square_operator(block, f"blocks[{j}]")
        self.blocks = tuple(blocks)

    @property
    def sizes(self) -> tuple[int, ...]:
        """The block sizes `(n₁, …, n_b)`."""
        return tuple(b.in_size() for b in self.blocks)

    def mv(self, vector: Inexact[Array, " n"]) -> Inexact[Array, " n"]:
        return _apply_per_block(lambda b, x: b.mv(x), self.blocks, vector)

    def as_matrix(self) -> Inexact[Array, "n n"]:
        return jsp.linalg.block_diag(*(b.as_matrix() for b in self.blocks))

    def transpose(self) -> BlockDiagonal:
        if lx.is_symmetric(self):
            return self
        return BlockDiagonal(tuple(b.transpose() for b in self.blocks))

    def in_structure(self) -> jax.ShapeDtypeStruct:
        dtype = jnp.result_type(*(b.in_structure().dtype for b in self.blocks))
        return jax.ShapeDtypeStruct((sum(self.sizes),), dtype)

    def out_structure(self) -> jax.ShapeDtypeStruct:
        dtype = jnp.result_type(*(b.out_structure().dtype for b in self.blocks))
        return jax.ShapeDtypeStruct((sum(self.sizes),), dtype)


def _split(blocks, vector: Inexact[Array, " n"]) -> list[Array]:
    offsets = np.cumsum([b.in_size() for b in blocks])[:-1]
    return jnp.split(vector, offsets)


def _apply_per_block(fn, blocks, vector: Inexact[Array, " n"]) -> Inexact[Array, " n"]:
    pieces = [fn(b, x) for b, x in zip(blocks, _split(blocks, vector), strict=True)]
    return jnp.concatenate(pieces)


#
# Structured linear algebra.
#


@_solve.register(BlockDiagonal)
def _(operator, vector):
    return _apply_per_block(_solve, operator.blocks, vector)


@_logdet.register(BlockDiagonal)
def _(operator):
    return sum(_logdet(b) for b in operator.blocks)


@_cholesky.register(BlockDiagonal)
def _(operator):
    return BlockDiagonal(tuple(_cholesky(b) for b in operator.blocks))


@_inverse.register(BlockDiagonal)
def _(operator):
    return BlockDiagonal(tuple(_inverse(b) for b in operator.blocks))


#
# lineax's per-operator queries.
#


@lx.linearise.register(BlockDiagonal)
def _(operator):
    return BlockDiagonal(tuple(lx.linearise(b) for b in operator.blocks))


@lx.materialise.register(BlockDiagonal)
def _(operator):
    return BlockDiagonal(tuple(lx.materialise(b) for b in operator.blocks))


@lx.conj.register(BlockDiagonal)
def _(operator):
    return BlockDiagonal(tuple(lx.conj(b) for b in operator.blocks))


@lx.diagonal.register(BlockDiagonal)
def _(operator):
    return jnp.concatenate([lx.diagonal(b) for b in operator.blocks])


@lx.tridiagonal.register(BlockDiagonal)
def _(operator):
    diags, lowers, uppers = zip(*(lx.tridiagonal(b) for b in operator.blocks), strict=True)
    # Off-diagonals are zero where one block ends and the next begins.
    zero = jnp.zeros((1,), jnp.result_type(*lowers))

    def join(parts):
        joined = []
        for j, part in enumerate(parts):
            if j > 0:
                joined.append(zero)
            joined.append(part)
        return jnp.concatenate(joined)

    return jnp.concatenate(diags), join(lowers), join(uppers)


# Each of these properties holds for a block-diagonal operator when it holds for every block.
for _query in (
    lx.is_symmetric,
    lx.is_positive_semidefinite,
    lx.is_negative_semidefinite,
    lx.is_diagonal,
    lx.is_tridiagonal,
    lx.is_lower_triangular,
    lx.is_upper_triangular,
    lx.has_unit_diagonal,
):

    @_query.register(BlockDiagonal)
    def _(operator, _query=_query):
        return all(_query(b) for b in operator.blocks)
