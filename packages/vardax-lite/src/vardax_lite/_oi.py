"""Optimal interpolation (BLUE): the closed-form linear-Gaussian analysis.

For ``y = c + H z + e``, ``e ~ N(0, R)``, prior ``z ~ N(z_b, B)`` (Gandin 1963; Lorenc
1986, eqs. 2.7-2.8; Rodgers 2000, eqs. 4.5 and 2.27):

.. math::

    P^* = (B^{-1} + H^\\top R^{-1} H)^{-1}, \\qquad
    z^* = z_b + P^* H^\\top R^{-1} (y - c - H z_b)
        = z_b + B H^\\top (H B H^\\top + R)^{-1} (y - c - H z_b).

The information form (``D x D`` solve) is used when ``m >= D``, the gain form
(``m x m`` solve) otherwise. ``R`` and ``B`` may be any lineax operators, including the
structured ones of :mod:`plumax_core.linalg` (their solves are used for ``R^{-1} H``);
``H`` may be any lineax operator, e.g. a sparse footprint
(:class:`plumax_core.linalg.SparseMatrix`). The analysis itself densifies ``H``
(``H.as_matrix()``, ``m x D``, once per call): that is the size of ``B H^T``, which the
gain form holds anyway, so a sparse ``H`` saves memory outside the analysis (and in the
forward model), not inside it.

**Large state vectors (regional flux inversions).** With ``S = H B H^T + R`` the gain
form only ever needs ``B H^T`` (``D x m``, from ``m`` products with ``B``) and ``S``
(``m x m``), so a Kronecker-structured ``B`` over ``10^4`` grid cells is never
materialised. The posterior covariance is then held as the low-rank update

.. math::

    P^* = B - (B H^\\top)\\, S^{-1} (B H^\\top)^\\top
    \\quad(\\text{``LowRankUpdate(B, U=B H^T, C=-S^{-1})``}),

whose diagonal (the marginal variances) is
``diag(B) - rowsum((B H^T) * (B H^T S^{-1}))``, ``O(D m)``. The averaging kernel
``A = I - P* B^{-1} = B H^T S^{-1} H`` (Rodgers 2000, eq. 2.80) is a rank-``m``
operator and the degrees of freedom for signal (DOFS) are
``tr A = tr(S^{-1} H B H^T)``, an ``m x m`` trace. These are the closed-form
analytic-inversion quantities of the Integrated Methane Inversion (Varon et al. 2022,
GMD 15:5787: ``x_hat``, ``S_hat = (K^T S_O^{-1} K + S_A^{-1})^{-1}`` and
``A = I - S_hat S_A^{-1}``; IMI's regularisation factor ``gamma`` is ``R = S_O / gamma``),
computed without ``D x D`` work.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from plumax_core import Observations, ParamSpec, Posterior, linalg, make_provenance
from plumax_core.validation import is_concrete

from ._analysis import AbstractAnalysis
from ._problem import Problem, _is_diagonal, check_spd

_PSD = (lx.symmetric_tag, lx.positive_semidefinite_tag)
COVARIANCES = ("auto", "dense", "operator")
# "auto" switches to the operator covariance above this many state elements (with m < D):
# a dense D x D float64 matrix is then >= 32 MB and grows as D^2.
AUTO_OPERATOR_MIN_DIM = 2000
# Round-off allowance of the gain-form marginal variances diag(B) - rowsum((B H^T) * K):
# where the data pin a cell down far below the precision of diag(B), the two terms agree
# to a few ulps and their difference is round-off of either sign. A computed variance
# down to -VARIANCE_ROUNDOFF * sqrt(m) * eps * diag(B) is clamped to 0 (the sqrt(m)
# follows the error of an m-term row sum; cells observed exactly by unit rows of H give
# at most ~0.5 sqrt(m) eps in float32); a more negative one means the covariance was lost
# to cancellation, and `posterior_std` raises.
VARIANCE_ROUNDOFF = 4.0
_FLOAT64_REMEDY = (
    "Where the data constrain a direction much more than the prior does, "
    "P = B - B H^T S^-1 H B is a small difference of large numbers and single "
    "precision loses it; run this analysis in float64 "
    "(jax.config.update('jax_enable_x64', True) before building the arrays)"
)


def _std_from_variance(var: Array, tol: Array) -> Array:
    """``sqrt(var)`` with ``var`` in ``[-tol, 0)`` clamped to 0 (round-off).

    Concrete input: raises ``ValueError`` where a variance is non-finite (a failed
    Cholesky factorisation) or below ``-tol``. Traced input (under ``jit``): no error can
    be raised, so those entries are NaN rather than a clamped, wrong 0.
    """
    ok = var >= -tol  # False for NaN as well
    if not (is_concrete(var) and is_concrete(tol)):
        return jnp.sqrt(jnp.where(ok, jnp.maximum(var, 0.0), jnp.nan))
    bad = ~np.asarray(ok)
    if np.any(bad):
        v = np.asarray(var)
        finite = v[np.isfinite(v)]
        worst = f"; smallest {finite.min():.3g}" if finite.size else ""
        detail = (
            f"{int(bad.sum())} of {v.size} marginal posterior variances are non-finite or "
            f"negative beyond round-off{worst}"
        )
        if jnp.dtype(var.dtype).itemsize < 8:
            raise ValueError(f"`posterior_std` failed in {var.dtype} ({detail}). {_FLOAT64_REMEDY}")
        raise ValueError(
            f"`posterior_std` failed in {var.dtype} ({detail}): H B H^T + R (or the "
            "information matrix B^-1 + H^T R^-1 H) is too ill-conditioned to factorise; "
            "check the scales of `R` and `B`"
        )
    return jnp.sqrt(jnp.maximum(var, 0.0))


def _as_operator(x, name: str) -> lx.AbstractLinearOperator:
    if isinstance(x, lx.AbstractLinearOperator):
        return x
    if type(x).__module__.startswith(("jax.experimental.sparse", "scipy.sparse")):
        return linalg.SparseMatrix(x)
    arr = jnp.asarray(x)
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        arr = arr.astype(jnp.result_type(float))
    if arr.ndim != 2:
        raise ValueError(
            f"`{name}` must be a 2-D matrix or a lineax operator, got shape {arr.shape}"
        )
    return lx.MatrixLinearOperator(arr)


class OptimalInterpolation(AbstractAnalysis):
    """BLUE / optimal interpolation with lineax ``H``, ``R``, ``B``.

    Attributes:
        H: observation operator, ``m x D``: a matrix, a sparse matrix (BCOO or
            ``scipy.sparse``, wrapped as :class:`plumax_core.linalg.SparseMatrix`) or any
            lineax operator; the analysis methods densify it (``m x D``, like ``B H^T``).
        R: observation-error covariance, ``m x m`` SPD.
        B: prior (background) covariance, ``D x D`` SPD.
        x_b: prior mean, ``(D,)``.
        offset: ``c``, ``(m,)``: the model is ``y = c + H z`` (zeros by default).
        param_spec: optional layout attached to the posterior (then ``z`` is its
            unconstrained space).
        covariance: how :meth:`posterior` holds ``P*`` (static). ``"dense"``: a dense
            ``D x D`` matrix (information form if ``m >= D``, gain form otherwise).
            ``"operator"``: the gain-form :class:`plumax_core.linalg.LowRankUpdate`
            ``B - (B H^T) S^{-1} (B H^T)^T`` (``m x m`` work, never ``D x D``; meant for
            ``m < D``, since it factorises the ``m x m`` matrix ``S`` whatever ``m``).
            ``"auto"`` (default): ``"operator"`` when ``m < D`` and
            ``D > AUTO_OPERATOR_MIN_DIM`` (2000), ``"dense"`` otherwise.

    Raises:
        ValueError: non-SPD ``B`` or ``R``; ``H`` / ``R`` / ``B`` / ``x_b`` shapes that do
            not match; an unknown ``covariance``.
    """

    H: lx.AbstractLinearOperator
    R: lx.AbstractLinearOperator
    B: lx.AbstractLinearOperator
    x_b: Float[Array, " D"]
    offset: Float[Array, " m"]
    param_spec: ParamSpec | None = None
    covariance: str = eqx.field(static=True, default="auto")

    def __init__(
        self,
        H,
        R,
        B,
        x_b,
        *,
        offset=None,
        param_spec: ParamSpec | None = None,
        covariance: str = "auto",
    ):
        self.covariance = covariance
        self.H = _as_operator(H, "H")
        R = _as_operator(R, "R")
        B = _as_operator(B, "B")
        m, d = self.H.out_size(), self.H.in_size()
        if R.in_size() != R.out_size() or R.in_size() != m:
            raise ValueError(
                f"`R` must be {m}x{m} to match `H` ({m}x{d}), got {R.out_size()}x{R.in_size()}"
            )
        if B.in_size() != B.out_size() or B.in_size() != d:
            raise ValueError(
                f"`B` must be {d}x{d} to match `H` ({m}x{d}), got {B.out_size()}x{B.in_size()}"
            )
        check_spd(R, "R")
        check_spd(B, "B")
        self.R = (
            R
            if lx.is_positive_semidefinite(R) or _is_diagonal(R)
            else lx.TaggedLinearOperator(R, _PSD)
        )
        self.B = (
            B
            if lx.is_positive_semidefinite(B) or _is_diagonal(B)
            else lx.TaggedLinearOperator(B, _PSD)
        )
        self.x_b = jnp.asarray(x_b, dtype=self.H.in_structure().dtype)
        if self.x_b.shape != (d,):
            raise ValueError(f"`x_b` must have shape ({d},) to match `H`, got {self.x_b.shape}")
        self.offset = (
            jnp.zeros(m, self.x_b.dtype) if offset is None else jnp.asarray(offset, self.x_b.dtype)
        )
        if self.offset.shape != (m,):
            raise ValueError(f"`offset` must have shape ({m},), got {self.offset.shape}")
        if param_spec is not None and param_spec.size != d:
            raise ValueError(f"`param_spec` has size {param_spec.size} but `H` has D={d}")
        self.param_spec = param_spec

    def __check_init__(self):
        if self.covariance not in COVARIANCES:
            raise ValueError(f"`covariance` must be one of {COVARIANCES}, got {self.covariance!r}")

    @classmethod
    def from_problem(cls, problem: Problem) -> OptimalInterpolation:
        """Linearise ``problem``'s forward model at the prior mean (exact for linear models)."""
        zb = problem.z_b
        f = problem.predict
        h0 = f(zb)
        J = jax.jacfwd(f)(zb)
        return cls(J, problem.R, problem.B, zb, offset=h0 - J @ zb, param_spec=problem.param_spec)

    @property
    def dim(self) -> int:
        return self.H.in_size()

    @property
    def n_obs(self) -> int:
        return self.H.out_size()

    def _reduce(self, mask):
        """Dense ``H``, the (row-selected) ``R`` and offset for the valid observations."""
        Hd = self.H.as_matrix()
        if mask is None:
            return Hd, self.R, self.offset, None
        idx = np.flatnonzero(np.asarray(mask).ravel())
        if _is_diagonal(self.R):
            R = lx.DiagonalLinearOperator(lx.diagonal(self.R)[idx])
        else:
            Rm = self.R.as_matrix()[np.ix_(idx, idx)]
            R = lx.MatrixLinearOperator(Rm, _PSD)
        return Hd[idx], R, self.offset[idx], idx

    def _check_mask(self, mask):
        if mask is None:
            return None
        mask = np.asarray(mask, bool).ravel()
        if mask.shape != (self.n_obs,):
            raise ValueError(f"`mask` must have shape ({self.n_obs},), got {mask.shape}")
        return mask

    def _prepare(self, y, mask):
        """Checked data and the valid rows: ``(y, H, R, c)`` with ``H`` dense ``(m', D)``."""
        y = jnp.asarray(y, self.x_b.dtype).ravel()
        if y.shape != (self.n_obs,):
            raise ValueError(f"`y` must have {self.n_obs} values (rows of `H`), got {y.shape}")
        mask = self._check_mask(mask)
        valid = np.ones(y.shape, bool) if mask is None else mask
        if not isinstance(y, jax.core.Tracer) and not np.all(np.isfinite(np.asarray(y)[valid])):
            raise ValueError(
                "`y` has NaN/inf observations that are not masked; pass `mask=np.isfinite(y)`"
            )
        Hd, R, c, idx = self._reduce(mask)
        if idx is not None:
            y = y[idx]
        return y, Hd, R, c

    def _information(self, Hd, R):
        """``(R^{-1} H, chol(B^{-1} + H^T R^{-1} H))``: the ``D x D`` information form."""
        RiH = jax.vmap(lambda col: linalg.solve(R, col), in_axes=1, out_axes=1)(Hd)
        A = linalg.inverse(self.B).as_matrix() + Hd.T @ RiH
        A = 0.5 * (A + A.T)
        return RiH, jax.scipy.linalg.cho_factor(A, lower=True)

    def _gain(self, Hd, R):
        """``(B H^T, chol(S))`` with ``S = H B H^T + R``: the ``m x m`` gain form.

        ``B H^T`` (``D x m``) costs ``m`` products with ``B`` (structured for a
        Kronecker ``B``); ``B`` itself is never materialised.
        """
        BHt = jax.vmap(self.B.mv, in_axes=0, out_axes=1)(Hd)  # (D, m) = B H^T
        S = Hd @ BHt + R.as_matrix()
        S = 0.5 * (S + S.T)
        return BHt, jax.scipy.linalg.cho_factor(S, lower=True)

    def analysis(self, y, mask=None) -> tuple[Float[Array, " D"], Float[Array, "D D"]]:
        """Posterior mean ``z*`` and dense covariance ``P*`` for data ``y`` (``(m,)``)."""
        y, Hd, R, c = self._prepare(y, mask)
        d = y - c - Hd @ self.x_b
        D, m = Hd.shape[1], Hd.shape[0]
        if m >= D:
            RiH, cf = self._information(Hd, R)
            P = jax.scipy.linalg.cho_solve(cf, jnp.eye(D, dtype=RiH.dtype))
            mean = self.x_b + jax.scipy.linalg.cho_solve(cf, RiH.T @ d)
        else:
            BHt, cf = self._gain(Hd, R)
            K = jax.scipy.linalg.cho_solve(cf, BHt.T).T  # (D, m)
            mean = self.x_b + K @ d
            P = self.B.as_matrix() - K @ BHt.T
        return mean, 0.5 * (P + P.T)

    def analysis_operator(self, y, mask=None) -> tuple[Float[Array, " D"], linalg.LowRankUpdate]:
        """Posterior mean ``z*`` and ``P*`` as an operator, in the gain form.

        ``P* = B + U C U^T`` with ``U = B H^T`` (``D x m``) and ``C = -S^{-1}``, a
        :class:`plumax_core.linalg.LowRankUpdate` over ``B`` itself (tagged symmetric;
        not positive-semidefinite-tagged, because ``C`` is negative definite and the
        PSD-tagged Woodbury path of ``LowRankUpdate`` assumes a positive definite
        ``C``). ``lx.diagonal`` of it costs ``O(D m)``; ``as_matrix()`` is the only
        ``D x D`` operation. Work: ``m`` products with ``B`` and an ``m x m`` Cholesky.
        """
        y, Hd, R, c = self._prepare(y, mask)
        d = y - c - Hd @ self.x_b
        BHt, cf = self._gain(Hd, R)
        m = Hd.shape[0]
        Sinv = jax.scipy.linalg.cho_solve(cf, jnp.eye(m, dtype=BHt.dtype))
        Sinv = 0.5 * (Sinv + Sinv.T)
        mean = self.x_b + BHt @ jax.scipy.linalg.cho_solve(cf, d)
        cov = linalg.LowRankUpdate(self.B, BHt, -Sinv, tags=lx.symmetric_tag)
        return mean, cov

    def _operator_covariance(self, m: int) -> bool:
        if self.covariance == "auto":
            return m < self.dim and self.dim > AUTO_OPERATOR_MIN_DIM
        return self.covariance == "operator"

    def posterior(self, data, *, key: PRNGKeyArray | None = None, mask=None) -> Posterior:
        """Closed-form posterior for ``data``: an ``(m,)`` array, ``Observations`` or a
        :class:`Problem` (its observations and mask are used).

        Its ``cov`` is a dense ``lx.MatrixLinearOperator`` or, per ``covariance``, the
        :meth:`analysis_operator` low-rank update (``Posterior.std()`` then reads its
        cheap diagonal)."""
        del key
        if isinstance(data, Problem):
            data = data.observations
        if isinstance(data, Observations):
            mask = None if data.mask is None else data.mask
            y = data.filled(0.0).ravel()
        else:
            y = data
        m_used = self.n_obs if mask is None else int(np.sum(np.asarray(mask)))
        if self._operator_covariance(m_used):
            mean, cov = self.analysis_operator(y, mask)
            kind = "operator"
        else:
            mean, P = self.analysis(y, mask)
            cov = lx.MatrixLinearOperator(P, _PSD)
            kind = "dense"
        prov = make_provenance(
            obs_ops_used=(type(self.H).__name__,),
            n_iter=1,
            J_star=None,
            converged=True,
            analysis=self,
            B=self.B,
            R=self.R,
            analysis_name="OptimalInterpolation",
            n_obs=m_used,
            adapter="closed_form",
            covariance=kind,
        )
        try:
            return Posterior(mean, cov, provenance=prov, param_spec=self.param_spec)
        except ValueError as err:
            if jnp.dtype(mean.dtype).itemsize >= 8:
                raise
            raise ValueError(
                f"the posterior covariance failed its check in {mean.dtype} ({err}). "
                + _FLOAT64_REMEDY
            ) from err

    def posterior_mean_batch(self, Y: Float[Array, "N m"]) -> Float[Array, "N D"]:
        """Posterior means for a batch of data vectors (the covariance does not depend on y)."""
        if self._operator_covariance(self.n_obs):
            return jax.vmap(lambda y: self.analysis_operator(y)[0])(jnp.asarray(Y))
        return jax.vmap(lambda y: self.analysis(y)[0])(jnp.asarray(Y))

    def posterior_samples(self, y, *, key: PRNGKeyArray, n: int, mask=None) -> Float[Array, "n D"]:
        """``n`` exact draws from the posterior without forming ``P*``.

        The perturbed-observation construction (Evensen 2003, *Ocean Dynamics* 53, 343,
        section 4; the Joseph form of the Kalman update): with ``z ~ N(0, B)`` (from the
        structured ``cholesky(B)``), ``e ~ N(0, R)`` and the gain ``K = B H^T S^{-1}``,

        .. math::  x = z^* + (I - K H) z + K e

        has mean ``z*`` and covariance ``(I - KH) B (I - KH)^T + K R K^T = B - K S K^T
        = P*`` exactly (``K H B = K S K^T``). Each draw costs one product with
        ``chol(B)``, with ``chol(R)`` and with ``H``, and an ``m x m`` solve, so a
        Kronecker ``B`` over ``10^4`` cells is never materialised (``Posterior.sample``
        on the operator covariance would form the ``D x D`` Cholesky factor); and the
        Joseph form is positive semidefinite by construction, also in float32.

        Args:
            y: the data, ``(m,)``.
            key: PRNG key.
            n: number of draws (>= 1).
            mask: valid observations, as for :meth:`posterior`.

        Returns:
            ``(n, D)`` draws in the analysis' space.
        """
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
            raise ValueError(f"`n` must be an int >= 1, got {n!r}")
        y, Hd, R, c = self._prepare(y, mask)
        BHt, cf = self._gain(Hd, R)
        mean = self.x_b + BHt @ jax.scipy.linalg.cho_solve(cf, y - c - Hd @ self.x_b)
        k_b, k_r = jax.random.split(key)
        dtype = mean.dtype
        Lb, Lr = linalg.cholesky(self.B), linalg.cholesky(R)
        z = jax.vmap(Lb.mv)(jax.random.normal(k_b, (int(n), self.dim), dtype))
        e = jax.vmap(Lr.mv)(jax.random.normal(k_r, (int(n), Hd.shape[0]), dtype))
        innov = jax.scipy.linalg.cho_solve(cf, (e - z @ Hd.T).T)  # (m, n) = S^-1 (e - H z)
        return mean + z + (BHt @ innov).T

    # -- information content (no data needed) ----------------------------------------

    def posterior_std(self, mask=None) -> Float[Array, " D"]:
        """Marginal posterior standard deviations ``sqrt(diag P*)``.

        Gain form (``m < D``): ``diag(B) - rowsum((B H^T) * (B H^T S^{-1}))``, ``O(D m)``
        beyond ``diag(B)`` and never ``D x D``; information form (``m >= D``): the
        diagonal of the ``D x D`` inverse Hessian.

        The gain-form difference cancels where the data pin a cell down: a computed
        variance in ``[-VARIANCE_ROUNDOFF * sqrt(m) * eps * diag(B), 0)`` is round-off
        and reads as 0 (a standard deviation below what the dtype resolves).

        Raises:
            ValueError: a variance below that bound or non-finite (the covariance was
                lost to cancellation, or ``S`` could not be factorised), naming float64
                as the remedy in single precision (as :meth:`posterior` does). Under
                ``jit`` such entries are NaN instead.
        """
        Hd, R = self._rows(mask)
        D, m = Hd.shape[1], Hd.shape[0]
        if m >= D:
            _, cf = self._information(Hd, R)
            P = jax.scipy.linalg.cho_solve(cf, jnp.eye(D, dtype=Hd.dtype))
            var = jnp.diagonal(P)
            return _std_from_variance(var, jnp.zeros_like(var))
        BHt, cf = self._gain(Hd, R)
        K = jax.scipy.linalg.cho_solve(cf, BHt.T).T  # (D, m) = B H^T S^{-1}
        prior_var = lx.diagonal(self.B)
        var = prior_var - jnp.sum(BHt * K, axis=1)
        eps = jnp.finfo(var.dtype).eps
        return _std_from_variance(var, VARIANCE_ROUNDOFF * math.sqrt(m) * eps * prior_var)

    def averaging_kernel(self, mask=None) -> lx.AbstractLinearOperator:
        """The averaging kernel ``A = I - P* B^{-1} = P* H^T R^{-1} H`` (Rodgers 2000, eq. 2.80).

        Gain form (``m < D``): ``A = K H`` with the gain ``K = B H^T S^{-1}``, a
        rank-``m`` operator held as the :class:`plumax_core.linalg.LowRankUpdate`
        ``0 + K H`` (``U = K``, ``V = H^T``): ``mv`` and ``lx.diagonal`` cost
        ``O(D m)``, ``as_matrix()`` is ``D x D``; it is singular (``solve`` is
        meaningless). Information form (``m >= D``): a dense ``lx.MatrixLinearOperator``
        ``P* H^T R^{-1} H``. ``A`` is not symmetric in general.
        """
        Hd, R = self._rows(mask)
        D, m = Hd.shape[1], Hd.shape[0]
        if m >= D:
            RiH, cf = self._information(Hd, R)
            return lx.MatrixLinearOperator(jax.scipy.linalg.cho_solve(cf, Hd.T @ RiH))
        BHt, cf = self._gain(Hd, R)
        K = jax.scipy.linalg.cho_solve(cf, BHt.T).T  # (D, m)
        zero = lx.DiagonalLinearOperator(jnp.zeros(D, dtype=K.dtype))
        return linalg.LowRankUpdate(zero, K, None, Hd.T)

    def dfs(self, mask=None) -> Float[Array, ""]:
        """Degrees of freedom for signal (IMI's DOFS), ``tr A`` (Rodgers 2000, eq. 2.81).

        Gain form (``m < D``): ``tr(S^{-1} H B H^T)``, an ``m x m`` trace; information
        form: ``tr(P* H^T R^{-1} H)``.
        """
        Hd, R = self._rows(mask)
        D, m = Hd.shape[1], Hd.shape[0]
        if m >= D:
            RiH, cf = self._information(Hd, R)
            return jnp.trace(jax.scipy.linalg.cho_solve(cf, Hd.T @ RiH))
        BHt, cf = self._gain(Hd, R)
        return jnp.trace(jax.scipy.linalg.cho_solve(cf, Hd @ BHt))

    def _rows(self, mask):
        """Dense ``H`` and ``R`` of the valid observations (no data needed)."""
        Hd, R, _, _ = self._reduce(self._check_mask(mask))
        return Hd, R
