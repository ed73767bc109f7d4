"""The MAP solve shared by 3D-Var, strong-constraint 4D-Var and the ensemble adapter.

Minimises the whitened cost ``J(chi)`` of :class:`~vardax_lite.Problem` with optimistix:
Gauss-Newton or Levenberg-Marquardt on the residual vector ``(chi, R^{-1/2}(h - y))``
(Gaussian likelihood; Nocedal & Wright 2006, §10.3), or BFGS / L-BFGS on ``J`` itself
(any likelihood). The adjoint (gradient) is reverse-mode autodiff through the forward
model, which for a time-stepping model is exactly the 4D-Var adjoint integration
(Le Dimet & Talagrand 1986).
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import optimistix as optx
from jaxtyping import Array, Float

from ._problem import Problem

SOLVERS = ("gauss_newton", "levenberg_marquardt", "bfgs", "lbfgs")
LEAST_SQUARES = ("gauss_newton", "levenberg_marquardt")


class MAPResult(eqx.Module):
    """Result of a MAP solve in whitened coordinates.

    Attributes:
        chi: ``(D,)`` whitened MAP ``L^{-1}(z* - z_b)``.
        z: ``(D,)`` unconstrained MAP ``z*``.
        J: cost ``J(chi)`` at the solution (negative log posterior + const).
        n_steps: solver iterations.
        converged: whether optimistix reported success.
    """

    chi: Float[Array, " D"]
    z: Float[Array, " D"]
    J: Float[Array, ""]
    n_steps: Array
    converged: Array


def check_solver(solver: str, likelihood: str) -> None:
    if solver not in SOLVERS:
        raise ValueError(f"`solver` must be one of {SOLVERS}, got {solver!r}")
    if solver in LEAST_SQUARES and likelihood != "gaussian":
        raise ValueError(
            f"`solver={solver!r}` needs a Gaussian likelihood (a sum of squares); use "
            "'bfgs' or 'lbfgs' for a Student-t likelihood"
        )


def _make_solver(solver: str, rtol: float, atol: float):
    if solver == "gauss_newton":
        return optx.GaussNewton(rtol=rtol, atol=atol)
    if solver == "levenberg_marquardt":
        return optx.LevenbergMarquardt(rtol=rtol, atol=atol)
    if solver == "bfgs":
        return optx.BFGS(rtol=rtol, atol=atol)
    return optx.LBFGS(rtol=rtol, atol=atol)


def _residuals(chi, problem):
    return problem.residuals(chi)


def _cost(chi, problem):
    return problem.cost(chi)


def solve_map(
    problem: Problem,
    chi0: Float[Array, " D"],
    *,
    solver: str,
    rtol: float,
    atol: float,
    max_steps: int,
) -> MAPResult:
    """Minimise ``J`` from ``chi0`` (traceable; jit/vmap it from outside)."""
    opt = _make_solver(solver, rtol, atol)
    if solver in LEAST_SQUARES:
        sol = optx.least_squares(
            _residuals, opt, chi0, args=problem, max_steps=max_steps, throw=False
        )
    else:
        sol = optx.minimise(_cost, opt, chi0, args=problem, max_steps=max_steps, throw=False)
    chi = sol.value
    return MAPResult(
        chi=chi,
        z=problem.from_control(chi),
        J=problem.cost(chi),
        n_steps=jnp.asarray(sol.stats["num_steps"]),
        converged=sol.result == optx.RESULTS.successful,
    )


solve_map_jit = eqx.filter_jit(solve_map)
