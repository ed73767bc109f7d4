"""Structure-exploiting `solve`, `logdet` and `cholesky`, dispatching on operator type.

Each public function checks its arguments (outside jit; shapes are static) and then calls
a private `functools.singledispatch` implementation. The structured operators of this
subpackage register their own implementations in their own modules, exactly as lineax
registers `lx.diagonal`, `lx.is_symmetric`, ... per operator class. Every implementation
is pure JAX, so all three functions work under `jax.jit`, `jax.vmap` and `jax.grad`.

Anything without a registered implementation falls back to a dense method:
`lx.linear_solve` (Cholesky when the operator is tagged positive or negative
semidefinite, `lx.AutoLinearSolver(well_posed=True)` otherwise), `jnp.linalg.slogdet`,
and `jnp.linalg.cholesky` of the materialised matrix.
"""

from __future__ import annotations

import functools as ft
from collections.abc import Callable

import jax
import jax.numpy as jnp
import lineax as lx
from jaxtyping import Array, Float, Inexact

from .._validation import check_square_operator

#
# Public entry points.
#


def solve(operator: lx.AbstractLinearOperator, vector: Inexact[Array, " n"]) -> Array:
    r"""Solve `operator @ x = vector` for `x`, exploiting the operator's structure.

    - `LowRankUpdate` `B + U C Vᵀ`: Woodbury identity, `O(n k² + k³)` plus `k + 1`
      solves with `B` (so `O(n k² + k³)` in all for a diagonal `B`).
    - `Kronecker` `A₁ ⊗ … ⊗ A_d`: `(⊗Aᵢ)⁻¹ = ⊗Aᵢ⁻¹`, i.e. `n / nᵢ` solves with each
      factor `Aᵢ` of size `nᵢ`.
    - `BlockDiagonal`: one solve per block.
    - `lx.DiagonalLinearOperator`: elementwise division, `O(n)`.
    - `Inverse(A)`: `A.mv`.
    - anything else: `lx.linear_solve`, with `lx.Cholesky()` if the operator is tagged
      positive or negative semidefinite, else `lx.AutoLinearSolver(well_posed=True)`.

    The Woodbury identity (Woodbury 1950; Higham 2002, eq. 26.10) is
    $(B + UCV^\top)^{-1} = B^{-1} - B^{-1}U\,(C^{-1} + V^\top B^{-1}U)^{-1}\,V^\top B^{-1}$.

    **Arguments:**

    - `operator`: a square lineax operator acting on vectors of shape `(n,)`.
    - `vector`: the right-hand side `b`, shape `(n,)`. To solve for many right-hand
      sides use `jax.vmap(lambda b: solve(operator, b))(bs)`.

    **Returns:**

    The solution `x`, shape `(n,)`. A singular operator gives non-finite values (or,
    for the dense fallback, a runtime error from `lx.linear_solve`).
    """
    n = check_square_operator(operator, "operator")
    _check_vector(vector, n, "vector")
    return _solve(operator, jnp.asarray(vector))


def logdet(operator: lx.AbstractLinearOperator) -> Float[Array, ""]:
    r"""Log of the absolute value of the determinant, `log |det(operator)|`.

    For the symmetric positive definite operators this is meant for (covariances and
    precisions) this is simply `log det(operator)`. The sign is not returned: for an
    operator with a negative determinant you get `log |det|`. A singular operator gives
    `-inf`; an operator tagged positive semidefinite that is not positive definite
    gives `nan` (its Cholesky factor does not exist).

    - `LowRankUpdate`: the matrix determinant lemma (Harville 1997, Thm 18.1.1),
      `log|det B| + log|det C| + log|det(C⁻¹ + VᵀB⁻¹U)|`, computed as
      `log|det B| + log|det(I + C VᵀB⁻¹U)|` unless the operator is PSD-tagged.
    - `Kronecker` `A₁ ⊗ … ⊗ A_d`: `Σᵢ (n / nᵢ) log|det Aᵢ|`; for `A ⊗ B` with `A`
      `m × m` and `B` `p × p` this is `p logdet A + m logdet B`.
    - `BlockDiagonal`: the sum over blocks.
    - `lx.DiagonalLinearOperator`: `Σᵢ log|dᵢ|`.
    - `Inverse(A)`: `-logdet(A)`.
    - anything else: `2 Σ log diag(L)` from a dense Cholesky factor `L` if tagged
      PSD/NSD, else `jnp.linalg.slogdet`.

    **Arguments:**

    - `operator`: a square lineax operator acting on vectors of shape `(n,)`.

    **Returns:**

    A scalar.
    """
    check_square_operator(operator, "operator")
    return _logdet(operator)


def cholesky(operator: lx.AbstractLinearOperator) -> lx.AbstractLinearOperator:
    """A square-root factor `L` of a symmetric positive definite operator: `L Lᵀ = operator`.

    The factor keeps the operator's structure where it can, so that drawing
    `x = mean + L.mv(z)`, `z ~ N(0, I)` costs no more than the structure allows:

    - `lx.DiagonalLinearOperator(d)`: `lx.DiagonalLinearOperator(sqrt(d))`.
    - `Kronecker(A₁, …, A_d)`: `Kronecker(chol(A₁), …, chol(A_d))`, lower triangular
      since `(⊗Lᵢ)(⊗Lᵢ)ᵀ = ⊗(LᵢLᵢᵀ)`.
    - `BlockDiagonal(blocks)`: `BlockDiagonal` of the blocks' factors.
    - `lx.IdentityLinearOperator`: itself.
    - anything else (including `LowRankUpdate`): the dense lower-triangular Cholesky
      factor of the materialised `n × n` matrix, as an `lx.MatrixLinearOperator` tagged
      `lx.lower_triangular_tag` (`O(n³)`).

    Symmetry and definiteness are not checked: a matrix that is not positive definite
    gives `nan` entries (this is `jnp.linalg.cholesky`'s behaviour).

    **Arguments:**

    - `operator`: a square, symmetric positive definite lineax operator of size `n`.

    **Returns:**

    A lineax operator `L` of size `n` with `L Lᵀ = operator`.
    """
    check_square_operator(operator, "operator")
    return _cholesky(operator)


def to_dense(operator: lx.AbstractLinearOperator) -> Inexact[Array, "m n"]:
    """Materialise `operator` as a dense matrix; the same as `operator.as_matrix()`.

    **Arguments:**

    - `operator`: any lineax operator.

    **Returns:**

    A 2-D array of shape `(out_size, in_size)`.
    """
    if not isinstance(operator, lx.AbstractLinearOperator):
        raise TypeError(
            f"`operator` must be a lineax.AbstractLinearOperator, got {type(operator).__name__}."
        )
    return operator.as_matrix()


def _check_vector(vector: object, n: int, name: str) -> None:
    shape = jnp.shape(vector)
    if shape != (n,):
        raise ValueError(
            f"`{name}` must have shape ({n},) to match the operator, got {shape}. "
            "Use jax.vmap for several right-hand sides."
        )


#
# Private dispatchers. Operator modules register their implementations here.
#


@ft.singledispatch
def _solve(operator: lx.AbstractLinearOperator, vector: Array) -> Array:
    if lx.is_positive_semidefinite(operator) or lx.is_negative_semidefinite(operator):
        solver = lx.Cholesky()
    else:
        solver = lx.AutoLinearSolver(well_posed=True)
    return lx.linear_solve(operator, vector, solver).value


@ft.singledispatch
def _logdet(operator: lx.AbstractLinearOperator) -> Array:
    matrix = operator.as_matrix()
    if lx.is_positive_semidefinite(operator):
        return _chol_logdet(jnp.linalg.cholesky(matrix))
    if lx.is_negative_semidefinite(operator):
        return _chol_logdet(jnp.linalg.cholesky(-matrix))
    return jnp.linalg.slogdet(matrix)[1]


@ft.singledispatch
def _cholesky(operator: lx.AbstractLinearOperator) -> lx.AbstractLinearOperator:
    factor = jnp.linalg.cholesky(operator.as_matrix())
    return lx.MatrixLinearOperator(factor, lx.lower_triangular_tag)


def _chol_logdet(factor: Float[Array, "n n"]) -> Float[Array, ""]:
    """`log det(L Lᵀ) = 2 Σ log Lᵢᵢ` for a Cholesky factor `L`."""
    return 2.0 * jnp.sum(jnp.log(jnp.diagonal(factor)))


def solve_columns(
    operator: lx.AbstractLinearOperator, matrix: Inexact[Array, "n k"]
) -> Inexact[Array, "n k"]:
    """`operator⁻¹ @ matrix`, one structured solve per column (vmapped)."""
    return jax.vmap(lambda column: _solve(operator, column), in_axes=1, out_axes=1)(matrix)


#
# Implementations for lineax's own operators.
#


@_solve.register(lx.DiagonalLinearOperator)
def _(operator, vector):
    return vector / operator.diagonal


@_logdet.register(lx.DiagonalLinearOperator)
def _(operator):
    return jnp.sum(jnp.log(jnp.abs(operator.diagonal)))


@_cholesky.register(lx.DiagonalLinearOperator)
def _(operator):
    return lx.DiagonalLinearOperator(jnp.sqrt(operator.diagonal))


@_solve.register(lx.IdentityLinearOperator)
def _(operator, vector):
    return vector


@_logdet.register(lx.IdentityLinearOperator)
def _(operator):
    return jnp.zeros((), operator.in_structure().dtype)


@_cholesky.register(lx.IdentityLinearOperator)
def _(operator):
    return operator


def _has_own_rule(dispatcher: Callable, operator: lx.AbstractLinearOperator) -> bool:
    return dispatcher.dispatch(type(operator)) is not dispatcher.dispatch(lx.AbstractLinearOperator)


# A tagged operator keeps the structured rule of the operator it wraps; a tagged dense
# operator uses the dense rule, which reads the tags (e.g. PSD -> Cholesky).
@_solve.register(lx.TaggedLinearOperator)
def _(operator, vector):
    if _has_own_rule(_solve, operator.operator):
        return _solve(operator.operator, vector)
    return _solve.dispatch(lx.AbstractLinearOperator)(operator, vector)


@_logdet.register(lx.TaggedLinearOperator)
def _(operator):
    if _has_own_rule(_logdet, operator.operator):
        return _logdet(operator.operator)
    return _logdet.dispatch(lx.AbstractLinearOperator)(operator)


@_cholesky.register(lx.TaggedLinearOperator)
def _(operator):
    if _has_own_rule(_cholesky, operator.operator):
        return _cholesky(operator.operator)
    return _cholesky.dispatch(lx.AbstractLinearOperator)(operator)


# Scalar multiples: (sA)⁻¹ = A⁻¹/s, log|det(sA)| = n log|s| + log|det A|, chol(sA) = √s chol(A).
@_solve.register(lx.MulLinearOperator)
def _(operator, vector):
    return _solve(operator.operator, vector) / operator.scalar


@_solve.register(lx.DivLinearOperator)
def _(operator, vector):
    return _solve(operator.operator, vector) * operator.scalar


@_solve.register(lx.NegLinearOperator)
def _(operator, vector):
    return -_solve(operator.operator, vector)


@_logdet.register(lx.MulLinearOperator)
def _(operator):
    n = operator.in_size()
    return n * jnp.log(jnp.abs(operator.scalar)) + _logdet(operator.operator)


@_logdet.register(lx.DivLinearOperator)
def _(operator):
    n = operator.in_size()
    return _logdet(operator.operator) - n * jnp.log(jnp.abs(operator.scalar))


@_logdet.register(lx.NegLinearOperator)
def _(operator):
    return _logdet(operator.operator)


@_cholesky.register(lx.MulLinearOperator)
def _(operator):
    return _cholesky(operator.operator) * jnp.sqrt(operator.scalar)


@_cholesky.register(lx.DivLinearOperator)
def _(operator):
    return _cholesky(operator.operator) / jnp.sqrt(operator.scalar)
