"""Low-rank update of a lineax operator, `A = B + U C Vᵀ`, with Woodbury solves."""

from __future__ import annotations

from collections.abc import Iterable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy as jsp
import lineax as lx
from jaxtyping import Array, ArrayLike, Inexact

from .._validation import check_square_operator
from ._functions import _chol_logdet, _logdet, _solve, solve_columns


def _as_matrix_argument(x: object, name: str) -> Array:
    """`jnp.asarray(x)` as an inexact array, with errors that name the argument."""
    if isinstance(x, lx.AbstractLinearOperator):
        raise TypeError(
            f"`{name}` must be an array, not a lineax operator; use `{name}.as_matrix()`."
        )
    try:
        x = jnp.asarray(x)
    except TypeError as e:
        raise TypeError(f"`{name}` must be an array, got {type(x).__name__}.") from e
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        x = x.astype(jnp.result_type(float))
    return x


def _frozenset(tags: object | Iterable[object]) -> frozenset[object]:
    if isinstance(tags, Iterable) and not isinstance(tags, str):
        return frozenset(tags)
    return frozenset([tags])


class LowRankUpdate(lx.AbstractLinearOperator):
    r"""The operator `A = B + U C Vᵀ`: a square base operator plus a rank-`k` update.

    Typical use: a prior covariance `B = diag(σ²)` plus a few coherent modes `U`, or a
    Gauss-Newton precision `B⁻¹ + Jᵀ R⁻¹ J` with few observations. `mv` costs one
    `B.mv` plus `O(n k)`; the `n × n` matrix is never formed. `solve` uses the Woodbury
    identity and `logdet` the matrix determinant lemma (see `plumax_core.linalg.solve`,
    `plumax_core.linalg.logdet`), both `O(n k² + k³)` for a diagonal `B`.

    **Fields:**

    - `base`: the operator `B`, size `n` (any square lineax operator on `(n,)` vectors,
      typically `lx.DiagonalLinearOperator`).
    - `U`: shape `(n, k)`.
    - `C`: shape `(k, k)`, or `None` for the identity.
    - `V`: shape `(n, k)`, or `None` meaning `V = U`.
    - `tags`: lineax tags, e.g. `lx.positive_semidefinite_tag`.

    **Tags.** As in lineax, tags are promises that are not checked. Passing
    `lx.symmetric_tag` / `lx.positive_semidefinite_tag` is correct when `V` is `U` (or
    `None`), `C` is symmetric (positive semidefinite) and `base` is symmetric (positive
    semidefinite). Without tags the operator is reported symmetric (PSD) exactly when
    `V` and `C` are `None` and `base` is reported symmetric (PSD) by lineax; note that
    lineax never reports an `lx.DiagonalLinearOperator` as PSD, so a diagonal-base
    covariance should be tagged explicitly. A PSD-tagged update with `V = U` is solved
    through a Cholesky factorisation of the `k × k` capacitance
    `C⁻¹ + UᵀB⁻¹U`, which assumes `C` is positive definite.
    """

    base: lx.AbstractLinearOperator
    U: Inexact[Array, "n k"]
    C: Inexact[Array, "k k"] | None
    V: Inexact[Array, "n k"] | None
    tags: frozenset[object] = eqx.field(static=True)

    def __init__(
        self,
        base: lx.AbstractLinearOperator,
        U: Inexact[ArrayLike, "n k"],
        C: Inexact[ArrayLike, "k k"] | None = None,
        V: Inexact[ArrayLike, "n k"] | None = None,
        tags: object | Iterable[object] = (),
    ):
        """**Arguments:**

        - `base`: a square lineax operator on vectors of shape `(n,)`.
        - `U`: the left factor, shape `(n, k)`.
        - `C`: the core, shape `(k, k)`; `None` (the default) means the identity.
        - `V`: the right factor, shape `(n, k)`; `None` (the default) means `V = U`.
          Passing the very same array object as `U` is treated as `None`.
        - `tags`: lineax tags (unchecked), see the class docstring.

        **Raises:**

        `TypeError` if `base` is not a lineax operator or `U`, `C`, `V` are not arrays;
        `ValueError` if `base` is not square, `U` is not `(n, k)`, `C` is not `(k, k)`
        or `V` is not `(n, k)`.
        """
        n = check_square_operator(base, "base")
        v_is_u = V is None or V is U
        U = _as_matrix_argument(U, "U")
        if U.ndim != 2 or U.shape[0] != n:
            raise ValueError(
                f"`U` must have shape (n, k) with n = {n} (the size of `base`), got {U.shape}."
            )
        k = U.shape[1]
        if C is not None:
            C = _as_matrix_argument(C, "C")
            if C.shape != (k, k):
                raise ValueError(
                    f"`C` must have shape (k, k) = ({k}, {k}) to match `U`, got {C.shape}."
                )
        if v_is_u:
            V = None
        else:
            V = _as_matrix_argument(V, "V")
            if V.shape != U.shape:
                raise ValueError(f"`V` must have the same shape as `U`, {U.shape}, got {V.shape}.")
        self.base = base
        self.U = U
        self.C = C
        self.V = V
        self.tags = _frozenset(tags)

    @property
    def rank(self) -> int:
        """The number of columns `k` of `U` (the maximal rank of the update)."""
        return self.U.shape[1]

    @property
    def V_or_U(self) -> Inexact[Array, "n k"]:
        """`V`, or `U` when `V` is `None`."""
        return self.U if self.V is None else self.V

    def _core(self, z: Inexact[Array, " k"]) -> Inexact[Array, " k"]:
        return z if self.C is None else self.C @ z

    def mv(self, vector: Inexact[Array, " n"]) -> Inexact[Array, " n"]:
        # B x + U (C (Vᵀ x)): one base mv and O(n k + k²) work.
        return self.base.mv(vector) + self.U @ self._core(self.V_or_U.T @ vector)

    def as_matrix(self) -> Inexact[Array, "n n"]:
        update = self.U @ (self.V_or_U.T if self.C is None else self.C @ self.V_or_U.T)
        return self.base.as_matrix() + update

    def transpose(self) -> LowRankUpdate:
        # (B + U C Vᵀ)ᵀ = Bᵀ + V Cᵀ Uᵀ
        if lx.is_symmetric(self):
            return self
        C_T = None if self.C is None else self.C.T
        if self.V is None:
            return LowRankUpdate(self.base.T, self.U, C_T, None, lx.transpose_tags(self.tags))
        return LowRankUpdate(self.base.T, self.V, C_T, self.U, lx.transpose_tags(self.tags))

    def in_structure(self) -> jax.ShapeDtypeStruct:
        return self._structure(self.base.in_structure())

    def out_structure(self) -> jax.ShapeDtypeStruct:
        return self._structure(self.base.out_structure())

    def _structure(self, struct: jax.ShapeDtypeStruct) -> jax.ShapeDtypeStruct:
        arrays = [a for a in (self.U, self.C, self.V) if a is not None]
        dtype = jnp.result_type(struct.dtype, *(a.dtype for a in arrays))
        return jax.ShapeDtypeStruct(struct.shape, dtype)


#
# Woodbury solve and matrix-determinant-lemma log-determinant.
#


def _uses_cholesky(operator: LowRankUpdate) -> bool:
    return operator.V is None and lx.is_positive_semidefinite(operator)


def _capacitance(operator: LowRankUpdate):
    """The pieces shared by the solve and the log-determinant.

    Returns `(B⁻¹U, factor, logdet_C)`. On the Cholesky path `factor` is the lower
    Cholesky factor of the symmetric capacitance `S = C⁻¹ + UᵀB⁻¹U` and `logdet_C` is
    `log det C`. On the general path `factor` is `K = I + C VᵀB⁻¹U` (`det K =
    det C · det(C⁻¹ + VᵀB⁻¹U)`, so it needs no `C⁻¹`) and `logdet_C` is `None`.
    """
    binv_u = solve_columns(operator.base, operator.U)  # (n, k), k base solves
    w = operator.V_or_U.T @ binv_u  # (k, k): VᵀB⁻¹U, O(n k²)
    eye = jnp.eye(operator.rank, dtype=w.dtype)
    if _uses_cholesky(operator):
        if operator.C is None:
            s, logdet_c = eye + w, jnp.zeros((), w.dtype)
        else:
            c_factor = jnp.linalg.cholesky(operator.C)
            c_inv = jsp.linalg.cho_solve((c_factor, True), eye)
            s, logdet_c = c_inv + w, _chol_logdet(c_factor)
        s = 0.5 * (s + s.T)
        return binv_u, jnp.linalg.cholesky(s), logdet_c
    k_matrix = eye + (w if operator.C is None else operator.C @ w)
    return binv_u, k_matrix, None


@_solve.register(LowRankUpdate)
def _(operator, vector):
    # Woodbury: A⁻¹b = B⁻¹b − B⁻¹U (C⁻¹ + VᵀB⁻¹U)⁻¹ VᵀB⁻¹b
    #                 = B⁻¹b − B⁻¹U (I + C VᵀB⁻¹U)⁻¹ C VᵀB⁻¹b.
    binv_u, factor, logdet_c = _capacitance(operator)
    binv_b = _solve(operator.base, vector)
    rhs = operator.V_or_U.T @ binv_b  # (k,)
    if logdet_c is not None:
        z = jsp.linalg.cho_solve((factor, True), rhs)
    else:
        z = jnp.linalg.solve(factor, operator._core(rhs))
    return binv_b - binv_u @ z


@_logdet.register(LowRankUpdate)
def _(operator):
    # Matrix determinant lemma: det(B + UCVᵀ) = det(B) det(C) det(C⁻¹ + VᵀB⁻¹U)
    #                                         = det(B) det(I + C VᵀB⁻¹U).
    _, factor, logdet_c = _capacitance(operator)
    if logdet_c is not None:
        update = logdet_c + _chol_logdet(factor)
    else:
        update = jnp.linalg.slogdet(factor)[1]
    return _logdet(operator.base) + update


#
# lineax's per-operator queries.
#


def _rebuild(operator: LowRankUpdate, base, fn=lambda x: x) -> LowRankUpdate:
    maybe = lambda x: None if x is None else fn(x)
    return LowRankUpdate(base, fn(operator.U), maybe(operator.C), maybe(operator.V), operator.tags)


@lx.linearise.register(LowRankUpdate)
def _(operator):
    return _rebuild(operator, lx.linearise(operator.base))


@lx.materialise.register(LowRankUpdate)
def _(operator):
    return _rebuild(operator, lx.materialise(operator.base))


@lx.conj.register(LowRankUpdate)
def _(operator):
    return _rebuild(operator, lx.conj(operator.base), jnp.conj)


@lx.diagonal.register(LowRankUpdate)
def _(operator):
    # diag(U C Vᵀ)_i = Σ_ab U_ia C_ab V_ib
    uc = operator.U if operator.C is None else operator.U @ operator.C
    return lx.diagonal(operator.base) + jnp.sum(uc * operator.V_or_U, axis=1)


@lx.tridiagonal.register(LowRankUpdate)
def _(operator):
    matrix = operator.as_matrix()
    return jnp.diagonal(matrix), jnp.diagonal(matrix, -1), jnp.diagonal(matrix, 1)


def _default_structure(operator: LowRankUpdate) -> bool:
    return operator.V is None and operator.C is None


@lx.is_symmetric.register(LowRankUpdate)
def _(operator):
    return lx.symmetric_tag in operator.tags or (
        _default_structure(operator) and lx.is_symmetric(operator.base)
    )


@lx.is_positive_semidefinite.register(LowRankUpdate)
def _(operator):
    return lx.positive_semidefinite_tag in operator.tags or (
        _default_structure(operator) and lx.is_positive_semidefinite(operator.base)
    )


@lx.is_negative_semidefinite.register(LowRankUpdate)
def _(operator):
    return lx.negative_semidefinite_tag in operator.tags


# A generic low-rank update destroys diagonal, banded and triangular structure.
for _query in (
    lx.is_diagonal,
    lx.is_tridiagonal,
    lx.is_lower_triangular,
    lx.is_upper_triangular,
    lx.has_unit_diagonal,
):

    @_query.register(LowRankUpdate)
    def _(operator):
        return False
