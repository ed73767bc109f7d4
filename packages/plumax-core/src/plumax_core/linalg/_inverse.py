"""A lazy inverse operator, and `inverse`, which keeps structure where it can."""

from __future__ import annotations

import functools as ft

import jax
import jax.numpy as jnp
import lineax as lx
from jaxtyping import Array, Inexact

from .._validation import check_square_operator
from ._functions import _cholesky, _logdet, _solve


class Inverse(lx.AbstractLinearOperator):
    """The inverse `A⁻¹` of a square, nonsingular operator `A`, held lazily.

    `Inverse(A).mv(b)` is `solve(A, b)`, so it uses `A`'s structured solve (Woodbury for
    a `LowRankUpdate`, per-factor solves for a `Kronecker`, ...). This is the tool for
    swapping between a covariance and a precision without materialising either.

    Nothing is cached between calls: every `mv` redoes `solve(A, ·)`. That is cheap for the
    structured operators here (a `k × k` factorisation for a `LowRankUpdate`) but costs a
    dense factorisation per call for a dense `A`; under `jax.vmap` over right-hand sides
    the factorisation is shared.

    Tags (symmetric, positive/negative semidefinite, diagonal, triangular) are inherited
    from `A`, since inversion preserves each of them.

    **Fields:**

    - `operator`: the operator `A` of size `n`.
    """

    operator: lx.AbstractLinearOperator

    def __init__(self, operator: lx.AbstractLinearOperator):
        """**Arguments:**

        - `operator`: a square, nonsingular lineax operator on vectors of shape `(n,)`.
        """
        check_square_operator(operator, "operator")
        self.operator = operator

    def mv(self, vector: Inexact[Array, " n"]) -> Inexact[Array, " n"]:
        return _solve(self.operator, vector)

    def as_matrix(self) -> Inexact[Array, "n n"]:
        eye = jnp.eye(self.in_size(), dtype=self.in_structure().dtype)
        return jax.vmap(self.mv, in_axes=1, out_axes=1)(eye)

    def transpose(self) -> Inverse:
        # (A⁻¹)ᵀ = (Aᵀ)⁻¹
        if lx.is_symmetric(self.operator):
            return self
        return Inverse(self.operator.transpose())

    def in_structure(self) -> jax.ShapeDtypeStruct:
        return self.operator.out_structure()

    def out_structure(self) -> jax.ShapeDtypeStruct:
        return self.operator.in_structure()


#
# `inverse`: structured where possible.
#


def inverse(operator: lx.AbstractLinearOperator) -> lx.AbstractLinearOperator:
    """A lineax operator representing `operator⁻¹`, structured where possible.

    - `lx.DiagonalLinearOperator(d)`: `lx.DiagonalLinearOperator(1 / d)`.
    - `Kronecker(A₁, …, A_d)`: `Kronecker(inverse(A₁), …, inverse(A_d))`.
    - `BlockDiagonal(blocks)`: `BlockDiagonal` of the blocks' inverses.
    - `Inverse(A)`: `A`.
    - `lx.IdentityLinearOperator`: itself.
    - anything else (including `LowRankUpdate`): `Inverse(operator)`, whose `mv` is
      `solve(operator, ·)`.

    **Arguments:**

    - `operator`: a square, nonsingular lineax operator of size `n`.

    **Returns:**

    A lineax operator of size `n`.
    """
    check_square_operator(operator, "operator")
    return _inverse(operator)


@ft.singledispatch
def _inverse(operator: lx.AbstractLinearOperator) -> lx.AbstractLinearOperator:
    return Inverse(operator)


@_inverse.register(lx.DiagonalLinearOperator)
def _(operator):
    return lx.DiagonalLinearOperator(1.0 / operator.diagonal)


@_inverse.register(lx.IdentityLinearOperator)
def _(operator):
    return operator


@_inverse.register(Inverse)
def _(operator):
    return operator.operator


#
# Structured linear algebra on an inverse.
#


@_solve.register(Inverse)
def _(operator, vector):
    return operator.operator.mv(vector)


@_logdet.register(Inverse)
def _(operator):
    return -_logdet(operator.operator)


@_cholesky.register(Inverse)
def _(operator):
    inner = operator.operator
    if lx.is_diagonal(inner):
        return lx.DiagonalLinearOperator(1.0 / jnp.sqrt(lx.diagonal(inner)))
    return _cholesky.dispatch(lx.AbstractLinearOperator)(operator)


#
# lineax's per-operator queries.
#


@lx.linearise.register(Inverse)
def _(operator):
    return Inverse(lx.linearise(operator.operator))


@lx.materialise.register(Inverse)
def _(operator):
    return Inverse(lx.materialise(operator.operator))


@lx.diagonal.register(Inverse)
def _(operator):
    if lx.is_diagonal(operator.operator):
        return 1.0 / lx.diagonal(operator.operator)
    return jnp.diagonal(operator.as_matrix())


@lx.tridiagonal.register(Inverse)
def _(operator):
    matrix = operator.as_matrix()
    return jnp.diagonal(matrix), jnp.diagonal(matrix, -1), jnp.diagonal(matrix, 1)


@lx.conj.register(Inverse)
def _(operator):
    return Inverse(lx.conj(operator.operator))


# Inversion preserves symmetry, definiteness, diagonality and triangularity. The inverse of
# a tridiagonal matrix is dense in general, but a diagonal one's is diagonal.
for _query in (
    lx.is_symmetric,
    lx.is_positive_semidefinite,
    lx.is_negative_semidefinite,
    lx.is_diagonal,
    lx.is_lower_triangular,
    lx.is_upper_triangular,
):

    @_query.register(Inverse)
    def _(operator, _query=_query):
        return _query(operator.operator)


@lx.has_unit_diagonal.register(Inverse)
def _(operator):
    # Only a triangular (or diagonal) matrix with unit diagonal has a unit-diagonal inverse.
    inner = operator.operator
    triangular = (
        lx.is_diagonal(inner) or lx.is_lower_triangular(inner) or lx.is_upper_triangular(inner)
    )
    return triangular and lx.has_unit_diagonal(inner)


@lx.is_tridiagonal.register(Inverse)
def _(operator):
    return lx.is_diagonal(operator.operator)
