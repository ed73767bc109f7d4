"""Structured linear algebra as lineax operators.

Operators (all act on flat 1-D vectors and are `lx.AbstractLinearOperator`s):

- `LowRankUpdate(base, U, C=None, V=None)`: `B + U C Vᵀ`, Woodbury solves.
- `Kronecker(A₁, …, A_d)`: `A₁ ⊗ … ⊗ A_d`, row-major vectorisation.
- `BlockDiagonal(blocks)`: `diag(A₁, …, A_b)`.
- `Inverse(A)`: `A⁻¹`, held lazily.
- `DiagonalScaled(A, l, r=None)`: `diag(l) A diag(r)` (`r = l` by default), e.g. a
  covariance with per-element standard deviations; solves through `A`'s structure.
- `SparseMatrix(matrix)`: an `m × n` `jax.experimental.sparse.BCOO` matrix (e.g. a
  footprint), `O(nnz)` products with it and its transpose.

Covariance builders: `matern32(coords, length_scale, variance)` (a 1-D Matérn-3/2
matrix) and `separable_matern32(x, y, length_scale, sigma, *, time=, time_scale=)` (the
separable Matérn-3/2 covariance of a gridded flux as a `Kronecker` product, optionally
with per-cell standard deviations and an exponential temporal factor).

Functions dispatching on operator type (all jit/vmap/grad compatible): `solve`,
`logdet`, `cholesky`, `inverse`, `to_dense`. The lineax solver `Structured` makes
`lx.linear_solve` use the same structured solves.
"""

from ._blockdiag import BlockDiagonal as BlockDiagonal
from ._covariance import (
    DiagonalScaled as DiagonalScaled,
    matern32 as matern32,
    separable_matern32 as separable_matern32,
)
from ._functions import (
    cholesky as cholesky,
    logdet as logdet,
    solve as solve,
    to_dense as to_dense,
)
from ._inverse import Inverse as Inverse, inverse as inverse
from ._kronecker import Kronecker as Kronecker
from ._lowrank import LowRankUpdate as LowRankUpdate
from ._solver import Structured as Structured
from ._sparse import SparseMatrix as SparseMatrix

__all__ = [
    "BlockDiagonal",
    "cholesky",
    "DiagonalScaled",
    "Inverse",
    "inverse",
    "Kronecker",
    "logdet",
    "LowRankUpdate",
    "matern32",
    "separable_matern32",
    "solve",
    "SparseMatrix",
    "Structured",
    "to_dense",
]
