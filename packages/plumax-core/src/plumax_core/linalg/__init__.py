"""Structured linear algebra as lineax operators.

Operators (all act on flat 1-D vectors and are `lx.AbstractLinearOperator`s):

- `LowRankUpdate(base, U, C=None, V=None)`: `B + U C Vᵀ`, Woodbury solves.
- `Kronecker(A₁, …, A_d)`: `A₁ ⊗ … ⊗ A_d`, row-major vectorisation.
- `BlockDiagonal(blocks)`: `diag(A₁, …, A_b)`.
- `Inverse(A)`: `A⁻¹`, held lazily.

Functions dispatching on operator type (all jit/vmap/grad compatible): `solve`,
`logdet`, `cholesky`, `inverse`, `to_dense`. The lineax solver `Structured` makes
`lx.linear_solve` use the same structured solves.
"""

from ._blockdiag import BlockDiagonal as BlockDiagonal
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

__all__ = [
    "BlockDiagonal",
    "cholesky",
    "Inverse",
    "inverse",
    "Kronecker",
    "logdet",
    "LowRankUpdate",
    "solve",
    "Structured",
    "to_dense",
]
