r"""Matérn-3/2 prior covariances for gridded fluxes, held as Kronecker products.

The 1-D Matérn-3/2 kernel (Rasmussen & Williams 2006, *Gaussian Processes for Machine
Learning*, eq. 4.17 with ν = 3/2) is

$$k(d) = \sigma^2 \left(1 + \frac{\sqrt3 d}{\ell}\right) \exp\left(-\frac{\sqrt3 d}{\ell}\right),$$

and the exponential (Matérn-1/2) kernel is `k(d) = exp(-d / τ)` (eq. 4.18 with ν = 1/2).

**Separable, not isotropic.** On a `(ny, nx)` grid `separable_matern32` uses the
*product* `k(dx) k(dy)` of two 1-D kernels. That is **not** the isotropic 2-D Matérn-3/2
kernel `k(√(dx² + dy²))`: its correlation contours are not circles (at a given distance
the correlation is highest along the axes), and it is smooth along each axis separately.
It is the separable approximation used so that the covariance over the `ny · nx` cells is
the Kronecker product `K_y ⊗ K_x` of two small matrices, which is never formed: `mv`,
`solve`, `logdet` and `cholesky` work factor by factor (`plumax_core.linalg.Kronecker`).
Separable space(-time) covariances of this kind are the standard device for large flux
inversions (Yadav & Michalak 2013, GMD 6:583, §2; Saatçi 2012, PhD thesis, Cambridge,
ch. 5).

**Spatially varying standard deviations.** A per-cell prior standard deviation `s`
(e.g. proportional to a prior inventory) gives the covariance `diag(s) C diag(s)`, where
`C = C_y ⊗ C_x` is the separable correlation. It is held as a `DiagonalScaled` operator,
whose structured rules reduce to those of `C`:
`(D C D)⁻¹ = D⁻¹ C⁻¹ D⁻¹`, `log det(D C D) = 2 Σ log|sᵢ| + log det C` and
`chol(D C D) = D chol(C)`.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Inexact

from .._validation import check_square_operator, is_concrete
from ._functions import _cholesky, _logdet, _solve
from ._inverse import _inverse
from ._kronecker import Kronecker

_SPD = (lx.symmetric_tag, lx.positive_semidefinite_tag)


class DiagonalScaled(lx.AbstractLinearOperator):
    """The operator `diag(l) A diag(r)`: a square operator scaled by diagonals on both sides.

    With `right=None` it is the symmetric sandwich `diag(s) A diag(s)`, e.g. a covariance
    with per-element standard deviations `s` and correlation `A`; it is then reported
    symmetric (positive semidefinite) when `A` is. `mv` costs one `A.mv` plus `O(n)`, and
    the structured functions of `plumax_core.linalg` use `A`'s own structure (per-factor
    solves for a `Kronecker`, ...):

    - `solve`: `(D_l A D_r)⁻¹ b = D_r⁻¹ A⁻¹ D_l⁻¹ b`;
    - `logdet`: `Σ log|lᵢ| + Σ log|rᵢ| + log|det A|`;
    - `cholesky` (symmetric sandwich only): `DiagonalScaled(chol(A), s, 1)`, since
      `(D_s L)(D_s L)ᵀ = D_s A D_s`; it is lower triangular when `chol(A)` is;
    - `inverse`: `DiagonalScaled(inverse(A), 1/r, 1/l)`;
    - `lx.diagonal`: `l ⊙ diag(A) ⊙ r`.

    The scales are not checked for zeros: a zero scale makes the operator singular.

    **Fields:**

    - `operator`: the square operator `A`, size `n`.
    - `left`: `l`, shape `(n,)`.
    - `right`: `r`, shape `(n,)`, or `None` meaning `r = l`.
    """

    operator: lx.AbstractLinearOperator
    left: Inexact[Array, " n"]
    right: Inexact[Array, " n"] | None

    def __init__(
        self,
        operator: lx.AbstractLinearOperator,
        left: Inexact[ArrayLike, " n"],
        right: Inexact[ArrayLike, " n"] | None = None,
    ):
        """**Arguments:**

        - `operator`: a square lineax operator `A` on vectors of shape `(n,)`.
        - `left`: the left scales `l`, shape `(n,)`.
        - `right`: the right scales `r`, shape `(n,)`; `None` (the default) means
          `r = l`. Passing the very same array object as `left` is treated as `None`.

        **Raises:**

        `TypeError` if `operator` is not a lineax operator; `ValueError` if it is not
        square or a scale does not have shape `(n,)`.
        """
        n = check_square_operator(operator, "operator")
        same = right is None or right is left
        self.operator = operator
        self.left = _scale_vector(left, n, "left")
        self.right = None if same else _scale_vector(right, n, "right")

    @property
    def right_or_left(self) -> Inexact[Array, " n"]:
        """`right`, or `left` when `right` is `None`."""
        return self.left if self.right is None else self.right

    def mv(self, vector: Inexact[Array, " n"]) -> Inexact[Array, " n"]:
        return self.left * self.operator.mv(self.right_or_left * vector)

    def as_matrix(self) -> Inexact[Array, "n n"]:
        return self.left[:, None] * self.operator.as_matrix() * self.right_or_left[None, :]

    def transpose(self) -> DiagonalScaled:
        # (D_l A D_r)ᵀ = D_r Aᵀ D_l
        if lx.is_symmetric(self):
            return self
        if self.right is None:
            return DiagonalScaled(self.operator.transpose(), self.left)
        return DiagonalScaled(self.operator.transpose(), self.right, self.left)

    def in_structure(self) -> jax.ShapeDtypeStruct:
        return self._structure(self.operator.in_structure())

    def out_structure(self) -> jax.ShapeDtypeStruct:
        return self._structure(self.operator.out_structure())

    def _structure(self, struct: jax.ShapeDtypeStruct) -> jax.ShapeDtypeStruct:
        dtype = jnp.result_type(struct.dtype, self.left.dtype, self.right_or_left.dtype)
        return jax.ShapeDtypeStruct(struct.shape, dtype)


def _scale_vector(x: object, n: int, name: str) -> Array:
    if isinstance(x, lx.AbstractLinearOperator):
        raise TypeError(f"`{name}` must be an array of shape ({n},), not a lineax operator.")
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        x = x.astype(jnp.result_type(float))
    if x.shape != (n,):
        raise ValueError(f"`{name}` must have shape ({n},) to match `operator`, got {x.shape}.")
    return x


def _rebuild(operator: DiagonalScaled, inner, fn=lambda x: x) -> DiagonalScaled:
    if operator.right is None:
        return DiagonalScaled(inner, fn(operator.left))
    return DiagonalScaled(inner, fn(operator.left), fn(operator.right))


@_solve.register(DiagonalScaled)
def _(operator, vector):
    inner = _solve(operator.operator, vector / operator.left)
    return inner / operator.right_or_left


@_logdet.register(DiagonalScaled)
def _(operator):
    scales = jnp.sum(jnp.log(jnp.abs(operator.left)))
    scales = scales + jnp.sum(jnp.log(jnp.abs(operator.right_or_left)))
    return scales + _logdet(operator.operator)


@_cholesky.register(DiagonalScaled)
def _(operator):
    if operator.right is None:
        # (D_s L)(D_s L)ᵀ = D_s L Lᵀ D_s = D_s A D_s
        ones = jnp.ones_like(operator.left)
        return DiagonalScaled(_cholesky(operator.operator), operator.left, ones)
    return _cholesky.dispatch(lx.AbstractLinearOperator)(operator)


@_inverse.register(DiagonalScaled)
def _(operator):
    inner = _inverse(operator.operator)
    if operator.right is None:
        return DiagonalScaled(inner, 1.0 / operator.left)
    return DiagonalScaled(inner, 1.0 / operator.right, 1.0 / operator.left)


@lx.linearise.register(DiagonalScaled)
def _(operator):
    return _rebuild(operator, lx.linearise(operator.operator))


@lx.materialise.register(DiagonalScaled)
def _(operator):
    return _rebuild(operator, lx.materialise(operator.operator))


@lx.conj.register(DiagonalScaled)
def _(operator):
    return _rebuild(operator, lx.conj(operator.operator), jnp.conj)


@lx.diagonal.register(DiagonalScaled)
def _(operator):
    return operator.left * lx.diagonal(operator.operator) * operator.right_or_left


@lx.tridiagonal.register(DiagonalScaled)
def _(operator):
    main, lower, upper = lx.tridiagonal(operator.operator)
    left, right = operator.left, operator.right_or_left
    # entry (i+1, i) is scaled by l[i+1] r[i]; entry (i, i+1) by l[i] r[i+1]
    return left * main * right, left[1:] * lower * right[:-1], left[:-1] * upper * right[1:]


for _query in (lx.is_symmetric, lx.is_positive_semidefinite, lx.is_negative_semidefinite):

    @_query.register(DiagonalScaled)
    def _(operator, _query=_query):
        # D A D keeps symmetry and (real) definiteness; D_l A D_r with l ≠ r need not.
        return operator.right is None and _query(operator.operator)


# Scaling rows and columns keeps the sparsity pattern.
for _query in (
    lx.is_diagonal,
    lx.is_tridiagonal,
    lx.is_lower_triangular,
    lx.is_upper_triangular,
):

    @_query.register(DiagonalScaled)
    def _(operator, _query=_query):
        return _query(operator.operator)


@lx.has_unit_diagonal.register(DiagonalScaled)
def _(operator):
    return False


#
# Matérn covariances.
#


def _coords(x: object, name: str) -> Float[Array, " n"]:
    arr = jnp.asarray(x)
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        arr = arr.astype(jnp.result_type(float))
    if arr.ndim != 1 or arr.shape[0] == 0:
        raise ValueError(f"`{name}` must be a non-empty 1-D array of coordinates, got {arr.shape}.")
    if is_concrete(arr) and not bool(np.all(np.isfinite(np.asarray(arr)))):
        raise ValueError(f"`{name}` must be finite; it has NaN/inf coordinates.")
    return arr


def _positive_scalar(x: object, name: str) -> Float[Array, ""]:
    arr = jnp.asarray(x)
    if arr.shape != ():
        raise ValueError(f"`{name}` must be a scalar, got shape {arr.shape}.")
    if is_concrete(arr):
        value = float(arr)
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"`{name}` must be finite and > 0, got {value}.")
    return arr


def _distances(coords: Float[Array, " n"]) -> Float[Array, "n n"]:
    return jnp.abs(coords[:, None] - coords[None, :])


def matern32(
    coords: Float[ArrayLike, " n"],
    length_scale: float | Float[ArrayLike, ""],
    variance: float | Float[ArrayLike, ""] = 1.0,
) -> lx.MatrixLinearOperator:
    r"""The 1-D Matérn-3/2 covariance matrix of the points `coords`.

    `K_ij = variance · (1 + √3 d_ij / ℓ) exp(-√3 d_ij / ℓ)` with `d_ij = |x_i - x_j|`
    (Rasmussen & Williams 2006, eq. 4.17, ν = 3/2). The kernel is positive definite on
    the real line, so `K` is symmetric positive definite for distinct points (it is
    singular if two points coincide).

    **Arguments:**

    - `coords`: the points `x`, shape `(n,)`, finite (e.g. cell-centre coordinates, km).
    - `length_scale`: `ℓ > 0`, in the units of `coords`.
    - `variance`: the marginal variance `σ² > 0` (the diagonal of `K`).

    **Returns:**

    An `n × n` `lx.MatrixLinearOperator` tagged symmetric and positive semidefinite,
    of the dtype of `coords` (the default float dtype for integer coordinates).

    **Raises:**

    `ValueError` if `coords` is not a non-empty finite 1-D array, or `length_scale` /
    `variance` is not a finite positive scalar (values are checked when concrete).
    """
    x = _coords(coords, "coords")
    ell = _positive_scalar(length_scale, "length_scale")
    var = _positive_scalar(variance, "variance")
    r = math.sqrt(3.0) * _distances(x) / ell
    matrix = (var * (1.0 + r) * jnp.exp(-r)).astype(x.dtype)
    return lx.MatrixLinearOperator(matrix, _SPD)


def _matern12(coords: Float[Array, " n"], scale: Float[Array, ""]) -> lx.MatrixLinearOperator:
    """The exponential (Matérn-1/2) correlation `exp(-|t_i - t_j| / τ)` (R&W 2006, eq. 4.18)."""
    matrix = jnp.exp(-_distances(coords) / scale).astype(coords.dtype)
    return lx.MatrixLinearOperator(matrix, _SPD)


def _length_scales(length_scale: object) -> tuple[Array, Array]:
    arr = jnp.asarray(length_scale)
    if arr.shape == ():
        ell = _positive_scalar(arr, "length_scale")
        return ell, ell
    if arr.shape == (2,):
        return (
            _positive_scalar(arr[0], "length_scale[0] (along y)"),
            _positive_scalar(arr[1], "length_scale[1] (along x)"),
        )
    raise ValueError(
        f"`length_scale` must be a scalar or a pair (length_y, length_x), got shape {arr.shape}."
    )


def separable_matern32(
    x: Float[ArrayLike, " nx"],
    y: Float[ArrayLike, " ny"],
    length_scale: float | Float[ArrayLike, ""] | tuple[float, float],
    sigma: float | Float[ArrayLike, "ny nx"] | Float[ArrayLike, "nt ny nx"],
    *,
    time: Float[ArrayLike, " nt"] | None = None,
    time_scale: float | None = None,
) -> Kronecker | DiagonalScaled:
    r"""The separable Matérn-3/2 prior covariance of a flux on a `(ny, nx)` grid.

    `Cov(q_{ij}, q_{kl}) = s_{ij} s_{kl} ρ(|y_i - y_k|) ρ(|x_j - x_l|)`, with `ρ` the
    Matérn-3/2 correlation (`matern32` with unit variance). The grid is flattened in C
    order (`q.reshape(-1)`, x fastest), so the correlation is
    `Kronecker(C_y, C_x)` = `C_y ⊗ C_x` (`np.kron(C_y, C_x)`).

    This is the product of two 1-D Matérn-3/2 kernels, **not** the isotropic 2-D
    Matérn-3/2 kernel `ρ(√(dx² + dy²))` (see the module docstring): the separable
    approximation is what makes the covariance a Kronecker product that is never formed.

    With `time` (the centres of `nt` time windows) the state is `(nt, ny, nx)` in C
    order and an exponential (Matérn-1/2) temporal correlation `exp(-|t - t'| / τ)` is
    the leading factor: `C_t ⊗ C_y ⊗ C_x`.

    **Arguments:**

    - `x`: cell-centre coordinates along x, shape `(nx,)` (e.g. km).
    - `y`: cell-centre coordinates along y, shape `(ny,)`, same units.
    - `length_scale`: `ℓ > 0`, a scalar or a pair `(ℓ_y, ℓ_x)`, in the units of `x`, `y`.
    - `sigma`: the prior standard deviation `s > 0` (flux units): a scalar (the
      covariance is then a plain `Kronecker`, with `s²` folded into its `C_y` factor),
      or per cell, shape `(ny, nx)` (the same in every time window), or, with `time`,
      `(nt, ny, nx)`. A per-cell `sigma` gives `DiagonalScaled(C, s.reshape(-1))`.
    - `time`: optional window times, shape `(nt,)`.
    - `time_scale`: the temporal correlation time `τ > 0`, in the units of `time`;
      required with `time`, not allowed without it.

    **Returns:**

    A symmetric positive definite operator of size `ny · nx` (or `nt · ny · nx`):
    `Kronecker(σ² C_y, C_x)` for a scalar `sigma`, else
    `DiagonalScaled(Kronecker(C_y, C_x), s.reshape(-1))` (with the leading `C_t` when
    `time` is given). `plumax_core.linalg.solve` / `logdet` / `cholesky` /
    `inverse` and `lx.diagonal` on it never form the `n × n` matrix.

    **Raises:**

    `ValueError` for non-finite or non-1-D coordinates, a non-positive `length_scale`,
    `time_scale` or `sigma`, a `sigma` of the wrong shape, or `time` and `time_scale`
    not given together.
    """
    xs, ys = _coords(x, "x"), _coords(y, "y")
    ell_y, ell_x = _length_scales(length_scale)
    if (time is None) != (time_scale is None):
        raise ValueError("`time` and `time_scale` must be given together (or neither).")
    grid = (ys.shape[0], xs.shape[0])
    factors = []
    if time is not None:
        ts = _coords(time, "time")
        tau = _positive_scalar(time_scale, "time_scale")
        factors.append(_matern12(ts, tau))
        grid = (ts.shape[0], *grid)
    s = jnp.asarray(sigma)
    if not jnp.issubdtype(s.dtype, jnp.floating):
        s = s.astype(jnp.result_type(float))
    if is_concrete(s) and not bool(np.all(np.isfinite(np.asarray(s)) & (np.asarray(s) > 0))):
        raise ValueError("`sigma` must be finite and > 0 everywhere.")
    if s.shape == ():
        # Fold the variance into the first spatial factor: σ² (C_y ⊗ C_x) = (σ² C_y) ⊗ C_x.
        factors += [matern32(ys, ell_y, s**2), matern32(xs, ell_x)]
        return Kronecker(*factors)
    allowed = [grid[-2:]] + ([grid] if time is not None else [])
    if s.shape not in allowed:
        raise ValueError(
            f"`sigma` must be a scalar or have shape {' or '.join(map(str, allowed))} "
            f"(the grid, y then x), got {s.shape}."
        )
    factors += [matern32(ys, ell_y), matern32(xs, ell_x)]
    scale = jnp.broadcast_to(s, grid).reshape(-1)
    return DiagonalScaled(Kronecker(*factors), scale)
