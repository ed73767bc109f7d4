"""Optimal interpolation (BLUE): the closed-form linear-Gaussian analysis.

For ``y = c + H z + e``, ``e ~ N(0, R)``, prior ``z ~ N(z_b, B)`` (Gandin 1963; Lorenc
1986, eqs. 2.7-2.8; Rodgers 2000, eqs. 4.5 and 2.27):

.. math::

    P^* = (B^{-1} + H^\\top R^{-1} H)^{-1}, \\qquad
    z^* = z_b + P^* H^\\top R^{-1} (y - c - H z_b)
        = z_b + B H^\\top (H B H^\\top + R)^{-1} (y - c - H z_b).

The information form (``D x D`` solve) is used when ``m >= D``, the gain form
(``m x m`` solve) otherwise. ``R`` and ``B`` may be any lineax operators, including the
structured ones of :mod:`plumax_core.linalg` (their solves are used for ``R^{-1} H``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from plumax_core import Observations, ParamSpec, Posterior, linalg, make_provenance

from ._analysis import AbstractAnalysis
from ._problem import Problem, _is_diagonal, check_spd

_PSD = (lx.symmetric_tag, lx.positive_semidefinite_tag)


def _as_operator(x, name: str) -> lx.AbstractLinearOperator:
    if isinstance(x, lx.AbstractLinearOperator):
        return x
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
        H: observation operator, ``m x D`` (matrix or lineax operator).
        R: observation-error covariance, ``m x m`` SPD.
        B: prior (background) covariance, ``D x D`` SPD.
        x_b: prior mean, ``(D,)``.
        offset: ``c``, ``(m,)``: the model is ``y = c + H z`` (zeros by default).
        param_spec: optional layout attached to the posterior (then ``z`` is its
            unconstrained space).

    Raises:
        ValueError: non-SPD ``B`` or ``R``; ``H`` / ``R`` / ``B`` / ``x_b`` shapes that do
            not match.
    """

    H: lx.AbstractLinearOperator
    R: lx.AbstractLinearOperator
    B: lx.AbstractLinearOperator
    x_b: Float[Array, " D"]
    offset: Float[Array, " m"]
    param_spec: ParamSpec | None = None

    def __init__(self, H, R, B, x_b, *, offset=None, param_spec: ParamSpec | None = None):
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

    def analysis(self, y, mask=None) -> tuple[Float[Array, " D"], Float[Array, "D D"]]:
        """Posterior mean ``z*`` and dense covariance ``P*`` for data ``y`` (``(m,)``)."""
        y = jnp.asarray(y, self.x_b.dtype).ravel()
        if y.shape != (self.n_obs,):
            raise ValueError(f"`y` must have {self.n_obs} values (rows of `H`), got {y.shape}")
        if mask is not None:
            mask = np.asarray(mask, bool).ravel()
            if mask.shape != y.shape:
                raise ValueError(f"`mask` must have shape {y.shape}, got {mask.shape}")
        valid = np.ones(y.shape, bool) if mask is None else mask
        if not isinstance(y, jax.core.Tracer) and not np.all(np.isfinite(np.asarray(y)[valid])):
            raise ValueError(
                "`y` has NaN/inf observations that are not masked; pass `mask=np.isfinite(y)`"
            )
        Hd, R, c, idx = self._reduce(mask)
        if idx is not None:
            y = y[idx]
        d = y - c - Hd @ self.x_b
        B = self.B
        D, m = Hd.shape[1], Hd.shape[0]
        if m >= D:
            RiH = jax.vmap(lambda col: linalg.solve(R, col), in_axes=1, out_axes=1)(Hd)
            A = linalg.inverse(B).as_matrix() + Hd.T @ RiH
            A = 0.5 * (A + A.T)
            cf = jax.scipy.linalg.cho_factor(A, lower=True)
            P = jax.scipy.linalg.cho_solve(cf, jnp.eye(D, dtype=A.dtype))
            mean = self.x_b + jax.scipy.linalg.cho_solve(cf, RiH.T @ d)
        else:
            BHt = jax.vmap(B.mv, in_axes=0, out_axes=1)(Hd)  # (D, m) = B H^T
            S = Hd @ BHt + R.as_matrix()
            S = 0.5 * (S + S.T)
            cf = jax.scipy.linalg.cho_factor(S, lower=True)
            K = jax.scipy.linalg.cho_solve(cf, BHt.T).T  # (D, m)
            mean = self.x_b + K @ d
            P = B.as_matrix() - K @ BHt.T
        return mean, 0.5 * (P + P.T)

    def posterior(self, data, *, key: PRNGKeyArray | None = None, mask=None) -> Posterior:
        """Closed-form posterior for ``data``: an ``(m,)`` array, ``Observations`` or a
        :class:`Problem` (its observations and mask are used)."""
        del key
        if isinstance(data, Problem):
            data = data.observations
        if isinstance(data, Observations):
            mask = None if data.mask is None else data.mask
            y = data.filled(0.0).ravel()
        else:
            y = data
        mean, P = self.analysis(y, mask)
        m_used = self.n_obs if mask is None else int(np.sum(np.asarray(mask)))
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
        )
        return Posterior(
            mean, lx.MatrixLinearOperator(P, _PSD), provenance=prov, param_spec=self.param_spec
        )

    def posterior_mean_batch(self, Y: Float[Array, "N m"]) -> Float[Array, "N D"]:
        """Posterior means for a batch of data vectors (the covariance does not depend on y)."""
        return jax.vmap(lambda y: self.analysis(y)[0])(jnp.asarray(Y))
