"""Information-content diagnostics: averaging kernel, DFS and reduced chi-squared.

For a Gaussian analysis with posterior covariance ``P*`` and prior covariance ``B``
(Rodgers 2000, *Inverse Methods for Atmospheric Sounding*, eqs. 2.80 and 2.81;
Cardinali et al. 2004, QJRMS 130:2767):

.. math::

    A = I - P^* B^{-1} = P^* H^\\top R^{-1} H, \\qquad d_s = \\operatorname{tr} A .

``dfs_hutchinson`` estimates the trace matrix-free with Rademacher probes (Hutchinson
1989, Commun. Stat. Simul. 18:1059): ``tr(A) = D - E[v^T P* B^{-1} v]``. The reduced
chi-squared of the analysis residuals uses ``E[(y - H z*)^T R^{-1} (y - H z*)] = m - d_s``
(Desroziers et al. 2005, QJRMS 131:3385, eq. 3; Rodgers 2000, §12.1.2), so a consistent
analysis gives a value near 1.

A posterior covariance held as a low-rank update of the prior itself,
``P* = B + U C V^T`` (a :class:`plumax_core.linalg.LowRankUpdate` whose ``base`` is
``B``: the operator covariance of :class:`OptimalInterpolation`, the
:class:`GaussNewtonHessian` adapter) gives ``A = -U C (B^{-1} V)^T`` and
``d_s = -tr(C V^T B^{-1} U)`` exactly, with ``k`` solves with ``B`` instead of ``D``.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import lineax as lx
from jaxtyping import Array, Float, PRNGKeyArray

from plumax_core import linalg
from plumax_core.validation import is_concrete

from ._problem import Problem


def _op(x) -> lx.AbstractLinearOperator:
    if isinstance(x, lx.AbstractLinearOperator):
        return x
    if hasattr(x, "cov") and isinstance(x.cov, lx.AbstractLinearOperator):
        return x.cov
    return lx.MatrixLinearOperator(jnp.asarray(x))


def _untagged(op: lx.AbstractLinearOperator) -> lx.AbstractLinearOperator:
    while isinstance(op, lx.TaggedLinearOperator):
        op = op.operator
    return op


def _update_of_prior(P: lx.AbstractLinearOperator, B: lx.AbstractLinearOperator):
    """``P`` if it is a ``LowRankUpdate`` ``B + U C V^T`` over ``B`` itself, else None."""
    P = _untagged(P)
    if not isinstance(P, linalg.LowRankUpdate):
        return None
    base, prior = _untagged(P.base), _untagged(B)
    return P if base is prior or _equal(base, prior) else None


def _equal(a, b) -> bool:
    """Whether two pytrees are equal, as a Python bool.

    ``eqx.tree_equal`` returns ``False`` for a structural mismatch but a ``jax.Array``
    (``Array(True)``) after comparing array leaves, so an equal-but-distinct ``B`` (one
    returned by ``jit``, rebuilt, or carried through another adapter) needs ``bool``.
    Traced leaves (under ``jit``) cannot be compared: then ``False`` (the general path).
    """
    equal = eqx.tree_equal(a, b)
    if isinstance(equal, bool):
        return equal
    return is_concrete(equal) and bool(equal)


def _update_terms(P: linalg.LowRankUpdate, B: lx.AbstractLinearOperator):
    """``(U C, B^{-1} V)``, both ``(D, k)``, so that ``A = -(U C) (B^{-1} V)^T``."""
    UC = P.U if P.C is None else P.U @ P.C
    BiV = jax.vmap(lambda c: linalg.solve(B, c), in_axes=1, out_axes=1)(P.V_or_U)
    return UC, BiV


def averaging_kernel(posterior_cov, B) -> Float[Array, "D D"]:
    """Dense averaging kernel ``A = I - P* B^{-1}`` (Rodgers 2000, eq. 2.80).

    Args:
        posterior_cov: ``P*`` as a matrix, a lineax operator or a Posterior with ``cov``.
        B: prior covariance (matrix or lineax operator, symmetric), same space.

    A ``LowRankUpdate`` ``P* = B + U C V^T`` over ``B`` itself gives
    ``A = -U C (B^{-1} V)^T`` with ``k`` solves (the result is still ``D x D``).
    """
    P, Bop = _op(posterior_cov), _op(B)
    if P.in_size() != Bop.in_size():
        raise ValueError(f"`posterior_cov` is {P.in_size()}-D but `B` is {Bop.in_size()}-D")
    update = _update_of_prior(P, Bop)
    if update is not None:
        UC, BiV = _update_terms(update, Bop)
        return -(UC @ BiV.T)
    Pm = P.as_matrix()
    d = Pm.shape[0]
    # P B^{-1} = (B^{-1} P)^T for symmetric P, B
    BiP = jax.vmap(lambda c: linalg.solve(Bop, c), in_axes=1, out_axes=1)(Pm)
    return jnp.eye(d, dtype=Pm.dtype) - BiP.T


def dfs(posterior_cov, B) -> Float[Array, ""]:
    """Degrees of freedom for signal ``tr(I - P* B^{-1})`` (exact, ``O(D^3)``).

    For a ``LowRankUpdate`` ``P* = B + U C V^T`` over ``B`` itself:
    ``-tr(C V^T B^{-1} U)``, ``O(D k)`` plus ``k`` solves with ``B``, never ``D x D``.
    """
    P, Bop = _op(posterior_cov), _op(B)
    update = _update_of_prior(P, Bop) if P.in_size() == Bop.in_size() else None
    if update is not None:
        UC, BiV = _update_terms(update, Bop)
        return -jnp.sum(UC * BiV)
    return jnp.trace(averaging_kernel(posterior_cov, B))


def dfs_hutchinson(posterior_cov, B, *, key: PRNGKeyArray, n_probes: int = 64) -> Float[Array, ""]:
    """Hutchinson estimate of the DFS, ``D - mean_i v_i^T P* B^{-1} v_i`` (matrix-free).

    Only ``P*.mv`` and structured solves with ``B`` are used, so it suits the low-rank
    :class:`GaussNewtonHessian` covariance of a large problem. The standard error
    decreases as ``1/sqrt(n_probes)``.
    """
    if not (isinstance(n_probes, int) and n_probes >= 1):
        raise ValueError(f"`n_probes` must be a positive int, got {n_probes!r}")
    P, Bop = _op(posterior_cov), _op(B)
    d = P.in_size()
    dtype = P.in_structure().dtype
    v = jr.rademacher(key, (n_probes, d), dtype=dtype)
    quad = jax.vmap(lambda u: jnp.dot(u, P.mv(linalg.solve(Bop, u))))(v)
    return d - jnp.mean(quad)


def reduced_chi2(problem: Problem, z: Float[Array, " D"], dfs_value=None) -> Float[Array, ""]:
    """``sum w_i^2 / (m - d_s)`` with ``w = R^{-1/2}(h(z) - y)`` over valid observations.

    ``dfs_value`` = None uses ``d_s = 0`` (plain ``chi^2 / m``).
    """
    w = problem.whitened_residual(z)
    m = problem.n_valid
    ds = 0.0 if dfs_value is None else dfs_value
    return jnp.sum(w**2) / (m - ds)
