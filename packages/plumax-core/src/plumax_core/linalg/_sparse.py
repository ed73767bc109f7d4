"""`SparseMatrix`: a `jax.experimental.sparse.BCOO` matrix as a lineax operator.

A backward-Lagrangian footprint (receptors × grid cells) is mostly zeros: a column
holds the cells upwind of one receptor. Holding it as a BCOO matrix makes `mv` and its
adjoint `O(nnz)` instead of `O(m n)`: `mv`, `transpose` and `diagonal` never form the
dense `m × n` array (only `as_matrix()` does). A consumer may still densify it:
vardax-lite's `OptimalInterpolation` calls `as_matrix()` and works with a dense `m × n`
`H`, the size of the `B Hᵀ` its gain form needs anyway.

`jax.experimental.sparse` is imported lazily (on the first construction), so that
`import plumax_core` does not pay for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
from jaxtyping import Array, Inexact


def _frozenset(tags: object | Iterable[object]) -> frozenset[object]:
    if isinstance(tags, Iterable) and not isinstance(tags, str):
        return frozenset(tags)
    return frozenset([tags])


def _as_bcoo(matrix: Any, name: str):
    """`matrix` as a 2-D, inexact `BCOO` with no batch or dense dimensions."""
    from jax.experimental import sparse as jsparse

    if isinstance(matrix, lx.AbstractLinearOperator):
        raise TypeError(
            f"`{name}` must be a sparse or dense matrix, not a lineax operator "
            f"({type(matrix).__name__}); pass `{name}.as_matrix()` or the BCOO itself."
        )
    if isinstance(matrix, jsparse.BCSR):
        matrix = matrix.to_bcoo()
    if not isinstance(matrix, jsparse.BCOO):
        if hasattr(matrix, "tocoo") and hasattr(matrix, "nnz"):  # scipy.sparse
            matrix = jsparse.BCOO.from_scipy_sparse(matrix)
        else:
            try:
                dense = jnp.asarray(matrix)
            except TypeError as e:
                raise TypeError(
                    f"`{name}` must be a jax.experimental.sparse.BCOO, a scipy.sparse matrix "
                    f"or a dense 2-D array, got {type(matrix).__name__}."
                ) from e
            if dense.ndim != 2:
                raise ValueError(f"`{name}` must be 2-D (m, n), got shape {dense.shape}.")
            matrix = jsparse.BCOO.fromdense(dense)
    if matrix.ndim != 2:
        raise ValueError(f"`{name}` must be 2-D (m, n), got shape {matrix.shape}.")
    if matrix.n_batch != 0 or matrix.n_dense != 0:
        raise ValueError(
            f"`{name}` must be a plain 2-D BCOO (n_batch = n_dense = 0), got n_batch = "
            f"{matrix.n_batch}, n_dense = {matrix.n_dense}."
        )
    if not jnp.issubdtype(matrix.dtype, jnp.inexact):
        matrix = jsparse.BCOO(
            (matrix.data.astype(jnp.result_type(float)), matrix.indices), shape=matrix.shape
        )
    return matrix


class SparseMatrix(lx.AbstractLinearOperator):
    """An `m × n` sparse matrix (`jax.experimental.sparse.BCOO`) as a lineax operator.

    `mv` is a sparse-dense product, `O(nnz)`; `transpose()` is another `SparseMatrix`
    (the BCOO transpose: the index columns swapped, no copy of the values); `as_matrix()`
    (and `plumax_core.linalg.to_dense`) materialises the dense `m × n` array. Everything
    is traceable: the operator can be passed through `jax.jit`, and gradients flow to
    the stored values and to the vector.

    `lx.diagonal` and `lx.tridiagonal` read the stored entries (duplicates are summed,
    as in the BCOO convention) without densifying. A square `SparseMatrix` can be used
    with `plumax_core.linalg.solve` / `logdet` / `cholesky`: there is no sparse
    factorisation in JAX, so these use the dense fallback on the materialised matrix
    (`O(n³)`); they are meant for small matrices and tests. For a footprint, use `mv`
    and `transpose().mv`.

    **Fields:**

    - `matrix`: the `BCOO` matrix, shape `(m, n)`, no batch or dense dimensions.
    - `tags`: lineax tags (unchecked promises, as in lineax), e.g. `lx.symmetric_tag`
      for a sparse precision matrix.
    """

    matrix: Any  # jax.experimental.sparse.BCOO (imported lazily)
    tags: frozenset[object] = eqx.field(static=True)

    def __init__(self, matrix: Any, tags: object | Iterable[object] = ()):
        """**Arguments:**

        - `matrix`: a 2-D `jax.experimental.sparse.BCOO` (or `BCSR`, converted), a
          `scipy.sparse` matrix or array (converted with `BCOO.from_scipy_sparse`), or
          a dense 2-D array (converted with `BCOO.fromdense`, keeping its non-zeros).
          Integer values are cast to the default float dtype.
        - `tags`: lineax tags, e.g. `lx.symmetric_tag` (unchecked).

        **Raises:**

        `TypeError` if `matrix` is a lineax operator or not array-like; `ValueError` if
        it is not 2-D, has batch or dense BCOO dimensions, or is tagged symmetric or
        semidefinite while not square.
        """
        self.matrix = _as_bcoo(matrix, "matrix")
        self.tags = _frozenset(tags)

    def __check_init__(self):
        m, n = self.matrix.shape
        square_tags = {
            lx.symmetric_tag,
            lx.positive_semidefinite_tag,
            lx.negative_semidefinite_tag,
            lx.diagonal_tag,
        }
        if m != n and self.tags & square_tags:
            raise ValueError(
                f"`tags` {sorted(map(str, self.tags & square_tags))} need a square matrix; "
                f"`matrix` is {m} × {n}."
            )

    @property
    def shape(self) -> tuple[int, int]:
        """`(m, n)`."""
        return tuple(self.matrix.shape)

    @property
    def nse(self) -> int:
        """The number of stored entries (an upper bound on the non-zeros)."""
        return int(self.matrix.nse)

    def mv(self, vector: Inexact[Array, " n"]) -> Inexact[Array, " m"]:
        return self.matrix @ vector

    def as_matrix(self) -> Inexact[Array, "m n"]:
        return self.matrix.todense()

    def transpose(self) -> SparseMatrix:
        if lx.is_symmetric(self):
            return self
        return SparseMatrix(self.matrix.T, lx.transpose_tags(self.tags))

    def in_structure(self) -> jax.ShapeDtypeStruct:
        return jax.ShapeDtypeStruct((self.matrix.shape[1],), self.matrix.dtype)

    def out_structure(self) -> jax.ShapeDtypeStruct:
        return jax.ShapeDtypeStruct((self.matrix.shape[0],), self.matrix.dtype)


def _band(operator: SparseMatrix, offset: int) -> Array:
    """The `offset`-th diagonal (`jnp.diagonal(A, offset)`) from the stored entries."""
    matrix = operator.matrix
    m, n = matrix.shape
    rows, cols = matrix.indices[:, 0], matrix.indices[:, 1]
    length = max(0, min(m, n - offset) if offset >= 0 else min(m + offset, n))
    start = rows if offset >= 0 else cols
    on_band = cols - rows == offset
    # Entries off the band (and BCOO padding, whose indices are out of range) are sent
    # to an out-of-range position and dropped.
    position = jnp.where(on_band, start, length)
    out = jnp.zeros(length, matrix.dtype)
    return out.at[position].add(matrix.data, mode="drop")


#
# lineax's per-operator queries.
#


@lx.linearise.register(SparseMatrix)
def _(operator):
    return operator


@lx.materialise.register(SparseMatrix)
def _(operator):
    return operator


@lx.conj.register(SparseMatrix)
def _(operator):
    from jax.experimental import sparse as jsparse

    matrix = operator.matrix
    conj = jsparse.BCOO((jnp.conj(matrix.data), matrix.indices), shape=matrix.shape)
    return SparseMatrix(conj, operator.tags)


@lx.diagonal.register(SparseMatrix)
def _(operator):
    return _band(operator, 0)


@lx.tridiagonal.register(SparseMatrix)
def _(operator):
    return _band(operator, 0), _band(operator, -1), _band(operator, 1)


# Only what the tags promise: the sparsity pattern is data, not structure. As for lineax's
# own `MatrixLinearOperator`, a diagonal tag implies the banded, triangular and symmetric
# ones, and a (real) semidefinite tag implies symmetry.
_IMPLIED_BY = {
    lx.is_symmetric: (
        lx.symmetric_tag,
        lx.diagonal_tag,
        lx.positive_semidefinite_tag,
        lx.negative_semidefinite_tag,
    ),
    lx.is_diagonal: (lx.diagonal_tag,),
    lx.is_tridiagonal: (lx.tridiagonal_tag, lx.diagonal_tag),
    lx.is_lower_triangular: (lx.lower_triangular_tag, lx.diagonal_tag),
    lx.is_upper_triangular: (lx.upper_triangular_tag, lx.diagonal_tag),
    lx.is_positive_semidefinite: (lx.positive_semidefinite_tag,),
    lx.is_negative_semidefinite: (lx.negative_semidefinite_tag,),
    lx.has_unit_diagonal: (lx.unit_diagonal_tag,),
}

for _query, _tags in _IMPLIED_BY.items():

    @_query.register(SparseMatrix)
    def _(operator, _tags=_tags):
        return any(tag in operator.tags for tag in _tags)
