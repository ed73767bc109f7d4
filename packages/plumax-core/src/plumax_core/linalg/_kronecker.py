"""Kronecker products of lineax operators, `A₁ ⊗ A₂ ⊗ … ⊗ A_d`."""

from __future__ import annotations

import functools as ft
import math

import jax
import jax.numpy as jnp
import lineax as lx
from jaxtyping import Array, Inexact

from .._validation import check_square_operator
from ._functions import _cholesky, _logdet, _solve
from ._inverse import _inverse


class Kronecker(lx.AbstractLinearOperator):
    r"""The Kronecker product `A₁ ⊗ A₂ ⊗ … ⊗ A_d` of square lineax operators.

    Factor `i` has size `nᵢ` and the product has size `n = n₁ n₂ ⋯ n_d`. Vectors use the
    **row-major** (C-order) convention: a vector `x` of shape `(n,)` is the flattening
    `X.reshape(-1)` of an array `X` of shape `(n₁, …, n_d)`, and factor `i` acts along
    axis `i`. For two factors `A` (`m × m`) and `B` (`p × p`) this is
    `(A ⊗ B) vec(X) = vec(A X Bᵀ)` with `X` of shape `(m, p)`, and `as_matrix()` equals
    `jnp.kron(A, B)`. So on a `(ny, nx)` grid flattened in C order, `Kronecker(Ay, Ax)`
    applies `Ay` along y and `Ax` along x.

    `mv` costs `Σᵢ (n / nᵢ)` matrix-vector products of factor `i` (for dense factors,
    `O(n Σᵢ nᵢ)` instead of `O(n²)`), and `solve`, `logdet`, `cholesky`, `inverse` all work
    factor by factor (Van Loan 2000, "The ubiquitous Kronecker product", §3):
    `(⊗Aᵢ)⁻¹ = ⊗Aᵢ⁻¹`, `log|det ⊗Aᵢ| = Σᵢ (n/nᵢ) log|det Aᵢ|`, `chol(⊗Aᵢ) = ⊗chol(Aᵢ)`.

    **Fields:**

    - `factors`: the tuple `(A₁, …, A_d)`.
    """

    factors: tuple[lx.AbstractLinearOperator, ...]

    def __init__(self, *factors: lx.AbstractLinearOperator):
        """**Arguments:**

        - `*factors`: one or more square lineax operators on 1-D vectors, e.g.
          `Kronecker(A, B)` for `A ⊗ B`. In error messages they are called
          `factors[0]`, `factors[1]`, ...

        **Raises:**

        `TypeError` if a factor is not a lineax operator (e.g. a tuple was passed instead
        of unpacking it); `ValueError` if no factor is given or a factor is not square.
        """
        if len(factors) == 0:
            raise ValueError("`factors`: Kronecker needs at least one factor.")
        for i, factor in enumerate(factors):
            check_square_operator(factor, f"factors[{i}]")
        self.factors = tuple(factors)

    @property
    def sizes(self) -> tuple[int, ...]:
        """The factor sizes `(n₁, …, n_d)`."""
        return tuple(f.in_size() for f in self.factors)

    def mv(self, vector: Inexact[Array, " n"]) -> Inexact[Array, " n"]:
        return _apply_per_factor(lambda f, x: f.mv(x), self.factors, vector)

    def as_matrix(self) -> Inexact[Array, "n n"]:
        return ft.reduce(jnp.kron, [f.as_matrix() for f in self.factors])

    def transpose(self) -> Kronecker:
        if lx.is_symmetric(self):
            return self
        return Kronecker(*(f.transpose() for f in self.factors))

    def in_structure(self) -> jax.ShapeDtypeStruct:
        dtype = jnp.result_type(*(f.in_structure().dtype for f in self.factors))
        return jax.ShapeDtypeStruct((math.prod(self.sizes),), dtype)

    def out_structure(self) -> jax.ShapeDtypeStruct:
        dtype = jnp.result_type(*(f.out_structure().dtype for f in self.factors))
        return jax.ShapeDtypeStruct((math.prod(self.sizes),), dtype)


def _apply_per_factor(fn, factors, vector: Inexact[Array, " n"]) -> Inexact[Array, " n"]:
    """Apply `fn(factorᵢ, ·)` along axis `i` of `vector.reshape(n₁, …, n_d)`."""
    sizes = tuple(f.in_size() for f in factors)
    x = vector.reshape(sizes)
    for axis, factor in enumerate(factors):
        moved = jnp.moveaxis(x, axis, 0)
        columns = moved.reshape(sizes[axis], -1)
        out = jax.vmap(lambda col, factor=factor: fn(factor, col), in_axes=1, out_axes=1)(columns)
        x = jnp.moveaxis(out.reshape(moved.shape), 0, axis)
    return x.reshape(-1)


#
# Structured linear algebra.
#


@_solve.register(Kronecker)
def _(operator, vector):
    return _apply_per_factor(_solve, operator.factors, vector)


@_logdet.register(Kronecker)
def _(operator):
    n = math.prod(operator.sizes)
    return sum((n // f.in_size()) * _logdet(f) for f in operator.factors)


@_cholesky.register(Kronecker)
def _(operator):
    return Kronecker(*(_cholesky(f) for f in operator.factors))


@_inverse.register(Kronecker)
def _(operator):
    return Kronecker(*(_inverse(f) for f in operator.factors))


#
# lineax's per-operator queries.
#


@lx.linearise.register(Kronecker)
def _(operator):
    return Kronecker(*(lx.linearise(f) for f in operator.factors))


@lx.materialise.register(Kronecker)
def _(operator):
    return Kronecker(*(lx.materialise(f) for f in operator.factors))


@lx.conj.register(Kronecker)
def _(operator):
    return Kronecker(*(lx.conj(f) for f in operator.factors))


@lx.diagonal.register(Kronecker)
def _(operator):
    return ft.reduce(jnp.kron, [lx.diagonal(f) for f in operator.factors])


@lx.tridiagonal.register(Kronecker)
def _(operator):
    matrix = operator.as_matrix()
    return jnp.diagonal(matrix), jnp.diagonal(matrix, -1), jnp.diagonal(matrix, 1)


# Each of these properties holds for A ⊗ B when it holds for both A and B.
for _query in (
    lx.is_symmetric,
    lx.is_positive_semidefinite,
    lx.is_diagonal,
    lx.is_lower_triangular,
    lx.is_upper_triangular,
    lx.has_unit_diagonal,
):

    @_query.register(Kronecker)
    def _(operator, _query=_query):
        return all(_query(f) for f in operator.factors)


@lx.is_negative_semidefinite.register(Kronecker)
def _(operator):
    # NSD ⊗ PSD is NSD, but we do not track that; False is always a safe answer.
    return False


@lx.is_tridiagonal.register(Kronecker)
def _(operator):
    # D₁ ⊗ … ⊗ D_{d-1} ⊗ T is block diagonal with tridiagonal blocks; any other
    # non-diagonal factor spreads entries beyond the first off-diagonal.
    *leading, last = operator.factors
    return all(lx.is_diagonal(f) for f in leading) and lx.is_tridiagonal(last)
