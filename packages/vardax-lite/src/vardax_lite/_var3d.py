"""3D-Var / MAP: nonlinear least squares with a prior, in whitened control variables.

Minimises (Lorenc 1986, QJRMS 112:1177, eq. 3.1; written in the control variable
``chi = L^{-1}(z - z_b)`` of Courtier et al. 1994)

.. math::

    J(\\chi) = \\tfrac12\\chi^\\top\\chi + \\tfrac12 (h(z) - y)^\\top R^{-1} (h(z) - y),
    \\qquad z = z_b + L\\chi,

over the *unconstrained* parameters ``z`` of the model's ``param_spec`` — so bounded and
log-transformed parameters (an emission rate, a bounded height) are handled by the spec's
bijections and the prior is Gaussian in that space. The posterior spread comes from an
adapter (:func:`select_adapter` by default: Laplace at the MAP for moderate ``D``).
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from plumax_core import Posterior

from ._adapters import AbstractPosteriorAdapter, select_adapter
from ._analysis import AbstractAnalysis, clean_input_errors, provenance_for
from ._map import SOLVERS, MAPResult, check_solver, solve_map_jit
from ._problem import Problem


def _check_tolerances(rtol, atol, max_steps):
    if not (rtol > 0 and atol > 0):
        raise ValueError(f"`rtol` and `atol` must be > 0, got {rtol}, {atol}")
    if not (isinstance(max_steps, int) and max_steps >= 1):
        raise ValueError(f"`max_steps` must be a positive int, got {max_steps!r}")


def map_posterior(
    analysis: AbstractAnalysis,
    problem: Problem,
    res: MAPResult,
    adapter: AbstractPosteriorAdapter | None,
    key: PRNGKeyArray | None,
    **extra,
) -> Posterior:
    """Wrap a MAP result and an adapter's spread into a :class:`plumax_core.Posterior`."""
    adapter = select_adapter(analysis.name, problem) if adapter is None else adapter
    out = adapter(problem, res.chi, key=key)
    prov = provenance_for(
        problem,
        analysis,
        n_iter=int(res.n_steps),
        J_star=float(res.J),
        converged=bool(res.converged),
        **out.extra,
        **extra,
    )
    return Posterior(res.z, out.cov, out.samples, provenance=prov, param_spec=problem.param_spec)


class ThreeDVar(AbstractAnalysis):
    """3D-Var / MAP estimate with an adapter for the posterior spread.

    Attributes:
        solver: ``"gauss_newton"``, ``"levenberg_marquardt"`` (Gaussian likelihood),
            ``"bfgs"`` or ``"lbfgs"`` (any likelihood). Static.
        rtol, atol: optimistix convergence tolerances (on the whitened control).
        max_steps: iteration cap.
        adapter: posterior adapter; None = :func:`select_adapter`.

    Example:
        >>> post = ThreeDVar().posterior(problem)        # doctest: +SKIP
        >>> post.mean, post.std()                         # doctest: +SKIP
    """

    solver: str = eqx.field(static=True, default="gauss_newton")
    rtol: float = eqx.field(static=True, default=1e-10)
    atol: float = eqx.field(static=True, default=1e-10)
    max_steps: int = eqx.field(static=True, default=256)
    adapter: AbstractPosteriorAdapter | None = None

    def __check_init__(self):
        if self.solver not in SOLVERS:
            raise ValueError(f"`solver` must be one of {SOLVERS}, got {self.solver!r}")
        _check_tolerances(self.rtol, self.atol, self.max_steps)

    def solve(self, problem: Problem, z0: Array | None = None) -> MAPResult:
        """The MAP only (whitened and unconstrained), from ``z0`` (default: ``z_b``)."""
        check_solver(self.solver, problem.likelihood)
        chi0 = jnp.zeros(problem.dim, problem.z_b.dtype) if z0 is None else problem.to_control(z0)
        return solve_map_jit(
            problem,
            chi0,
            solver=self.solver,
            rtol=self.rtol,
            atol=self.atol,
            max_steps=self.max_steps,
        )

    @clean_input_errors
    def posterior(
        self, problem: Problem, *, key: PRNGKeyArray | None = None, z0: Array | None = None
    ) -> Posterior:
        """MAP + adapter -> :class:`plumax_core.Posterior` (unconstrained space)."""
        res = self.solve(problem, z0)
        return map_posterior(self, problem, res, self.adapter, key, solver=self.solver)
