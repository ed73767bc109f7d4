"""Posterior checks: did the inference converge, did the data inform it, does the model fit?

Three checks, each a :class:`plumax_core.gates.GateResult` that can fail, so a caller can
flag an answer that is only the prior, an unconverged one, or one that no parameter
value explains:

* :func:`contraction_check` — the posterior contraction ("posterior shrinkage", Betancourt
  2018, "Calibrating model-based inferences and decisions", arXiv:1803.08393)
  of every flat unconstrained parameter ``i``

  .. math::

      c_i = 1 - \\operatorname{var}_{post}(z_i) / \\operatorname{var}_{prior}(z_i).

  For a Gaussian prior and a Gaussian (Laplace) posterior, ``1 / var_post = 1 / var_prior
  + (data precision)`` along a coordinate of a diagonal ``B``, so ``c_i`` is the data's
  share of the posterior precision and equals the diagonal element ``A_ii`` of the
  averaging kernel ``A = I - P* B^{-1}`` (Rodgers 2000, eq. 2.80); ``sum c_i`` is the DFS.
  The retrieval is ``x_hat = x_a + A (x - x_a)`` (Rodgers 2000, §3.1), so with
  ``A_ii < 1/2`` the estimate of parameter ``i`` is weighted more towards the prior
  than towards the truth: the check fails below :data:`MIN_CONTRACTION` = 0.5
  ("the prior dominates").
* :func:`fit_check` — the chi-square test of the minimum cost. With the whitened cost
  ``J(chi) = chi.chi / 2 + |R^{-1/2}(h(z) - y)|^2 / 2`` of :class:`~vardax_lite.Problem`,
  a linear-Gaussian problem has, at the MAP,

  .. math::

      2 J^* = d^\\top (H B H^\\top + R)^{-1} d, \\qquad d = y - H z_b
      \\sim \\chi^2_m ,

  with ``m`` the number of valid observations: the innovation ``d`` is
  ``N(0, HBH^T + R)`` when the model, the prior and the errors are right (Bennett 2002,
  *Inverse Modeling of the Ocean and Atmosphere*, the reduced penalty; Talagrand 1999,
  "A posteriori evaluation and verification of analysis and assimilation algorithms",
  ECMWF Workshop on Diagnosis of Data Assimilation Systems; Ménard & Chang 2000, Mon.
  Wea. Rev. 128:2672, the chi-square-validated Kalman filter). The check reports
  ``2J*/m`` (the reduced chi-square) and the upper-tail p-value ``P(chi2_m > 2J*)``,
  and fails when it is below :data:`FIT_ALPHA` = 0.001. For a nonlinear model the law is
  the linearised one at the MAP. Data that no parameter value explains within their
  errors (a negated plume, a wrong unit, a second source) fail it.
* :func:`convergence_check` — the analysis's own report: the optimiser's success flag
  for MAP analyses; for samplers, the split R-hat below :data:`MAX_RHAT` = 1.05 (the
  :class:`~vardax_lite.NUTSOracle` rule; Gelman et al. 2013, BDA3 §11.4) and no
  divergent transition (Betancourt 2017, arXiv:1701.02434: divergences mean the
  sampler missed part of the posterior, biasing it).

:func:`inference_diagnostics` runs all three and words a warning for each failure.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import lineax as lx
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from plumax_core import AbstractPrior, GaussianPrior, Posterior
from plumax_core.gates import GateResult, chi2_sf

from ._problem import Problem

#: Below this posterior contraction ``1 - var_post/var_prior`` the prior carries more
#: of the posterior precision than the data (``A_ii < 1/2``, Rodgers 2000, §3.1).
MIN_CONTRACTION = 0.5
#: Significance level of the chi-square fit test: a correct model and error budget
#: fails it by chance once in a thousand scenes.
FIT_ALPHA = 1e-3
#: Split R-hat limit for samplers (the :class:`~vardax_lite.NUTSOracle` convergence rule).
MAX_RHAT = 1.05


def _prior_variance(prior: AbstractPrior, key: PRNGKeyArray | None, n: int) -> np.ndarray:
    if isinstance(prior, GaussianPrior):
        return np.asarray(lx.diagonal(prior.cov), np.float64)
    key = jr.key(0) if key is None else key
    z = prior.param_spec.to_unconstrained(prior.sample(key, n))
    return np.var(np.asarray(z, np.float64), axis=0, ddof=1)


def posterior_contraction(
    posterior: Posterior,
    prior: AbstractPrior,
    *,
    key: PRNGKeyArray | None = None,
    n_prior_draws: int = 4096,
) -> Float[np.ndarray, " D"]:
    """Per-parameter contraction ``1 - var_post / var_prior`` (Betancourt 2018).

    Both variances are marginal, in the flat unconstrained space of the prior's
    ``param_spec`` (``log Q`` for a log-transformed emission rate), where the analyses
    of vardax-lite work and a :class:`plumax_core.GaussianPrior` is Gaussian.

    Args:
        posterior: any :class:`plumax_core.Posterior` (``cov`` or ``samples``), ``(D,)``.
        prior: the prior it came from; a ``GaussianPrior`` gives ``diag(B)`` exactly,
            any other prior is estimated from ``n_prior_draws`` draws (``key``,
            default ``jr.key(0)``).

    Returns:
        ``(D,)`` float64: 1 means the data fixed the parameter, 0 that the posterior is
        as wide as the prior (the data said nothing), < 0 that it is wider. NaN where
        the posterior variance is not finite.

    Raises:
        ValueError: the posterior and prior dimensions differ.
    """
    if posterior.dim != prior.param_spec.size:
        raise ValueError(
            f"`posterior` is {posterior.dim}-D but `prior` is over {prior.param_spec.size} "
            "parameters"
        )
    var_post = np.asarray(posterior.variance(), np.float64)
    var_prior = _prior_variance(prior, key, int(n_prior_draws))
    out = 1.0 - var_post / var_prior
    return np.where(np.isfinite(var_post) & (var_post >= 0), out, np.nan)


def contraction_check(
    posterior: Posterior,
    prior: AbstractPrior,
    *,
    threshold: float = MIN_CONTRACTION,
    key: PRNGKeyArray | None = None,
    nuisance: tuple[str, ...] = (),
) -> GateResult:
    """Fails when any parameter's :func:`posterior_contraction` is below ``threshold``.

    Parameters named in ``nuisance`` (a retrieval gain, a wind error: marginalised, and
    known mostly from their priors by design) are reported but never fail the check.
    ``statistic`` is the smallest contraction of the others (NaN, failing, when a
    posterior variance is not finite); ``details`` holds ``names``, per-parameter
    ``contraction`` and ``nuisance``.
    """
    c = posterior_contraction(posterior, prior, key=key)
    names = list(posterior.names)
    keep = np.array([n.split("[")[0] not in nuisance for n in names], bool)
    weak = [n for n, v, k in zip(names, c, keep, strict=True) if k and not (v >= threshold)]
    c_kept = np.asarray(c)[keep] if keep.any() else np.asarray(c)
    return GateResult(
        "posterior_contraction",
        passed=not weak,
        statistic=float(np.min(c_kept)) if np.all(np.isfinite(c_kept)) else float("nan"),
        threshold=float(threshold),
        details={
            "names": names,
            "contraction": [float(v) for v in c],
            "nuisance": list(nuisance),
            "prior_dominated": weak,
            "rule": "every 1 - var_post/var_prior >= threshold (unconstrained coordinates)",
        },
    )


@eqx.filter_jit
def _batch_cost(problem: Problem, z: Array) -> Array:
    return jax.vmap(lambda zi: problem.cost(problem.to_control(zi)))(z)


def fit_check(problem: Problem, z: Float[Array, "*N D"], *, alpha: float = FIT_ALPHA) -> GateResult:
    """Chi-square test of the minimum cost: ``2 J(z*) ~ chi2_m`` (linear-Gaussian, exact).

    Args:
        problem: a Gaussian-likelihood :class:`~vardax_lite.Problem` with a
            :class:`plumax_core.GaussianPrior`.
        z: the unconstrained MAP ``(D,)``, or ``(N, D)`` candidates (e.g. posterior
            draws of a sampler) of which the lowest cost is used: ``2(J(z) - J*)`` is
            about ``chi2_D`` near the MAP, so the best of many draws is close to it.
        alpha: significance level; the check fails when ``P(chi2_m > 2J) < alpha``.

    Returns:
        ``GateResult("chi2_fit", passed, statistic=p_value, threshold=alpha)`` with
        ``details``: ``chi2`` (= 2J), ``dof`` (= m, the valid observations),
        ``reduced_chi2`` (= 2J/m), ``data_chi2`` (the residual part
        ``|R^{-1/2}(h - y)|^2``) and the rule.

    Raises:
        ValueError: a Student-t likelihood or a non-Gaussian prior (the chi-square law
            does not hold), or ``z`` of the wrong size.
    """
    if problem.likelihood != "gaussian":
        raise ValueError("`fit_check` needs a Gaussian likelihood (2J* is then chi-square)")
    if not isinstance(problem.prior, GaussianPrior):
        raise ValueError("`fit_check` needs a GaussianPrior (2J* is then chi-square)")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"`alpha` must be in (0, 1), got {alpha}")
    zb = jnp.atleast_2d(jnp.asarray(z, problem.z_b.dtype))
    if zb.ndim != 2 or zb.shape[-1] != problem.dim:
        raise ValueError(f"`z` must have shape (D,) or (N, D) with D={problem.dim}")
    J = np.asarray(_batch_cost(problem, zb), np.float64)
    J = np.where(np.isfinite(J), J, np.inf)
    best = int(np.argmin(J))
    chi2 = 2.0 * float(J[best])
    dof = int(round(float(problem.n_valid)))
    data = float(jnp.sum(problem.whitened_residual(zb[best]) ** 2))
    if math.isfinite(chi2) and dof > 0:
        p = float(chi2_sf(jnp.asarray(chi2), float(dof)))
    else:
        p = 0.0 if dof > 0 else float("nan")
    return GateResult(
        "chi2_fit",
        passed=bool(p >= alpha),
        statistic=p,
        threshold=float(alpha),
        details={
            "chi2": chi2,
            "dof": dof,
            "reduced_chi2": chi2 / dof if dof > 0 else float("nan"),
            "data_chi2": data,
            "rule": "P(chi2_dof > 2 J*) >= threshold, 2 J* = |chi|^2 + |R^-1/2 (h(z*) - y)|^2",
        },
    )


def convergence_check(posterior: Posterior, *, max_rhat: float = MAX_RHAT) -> GateResult:
    """The analysis's own convergence report, read from ``posterior.provenance``.

    Samplers (provenance with ``rhat``): ``statistic`` = max split R-hat, passing below
    ``max_rhat`` with no divergent transition (``n_divergent``). MAP analyses:
    ``statistic`` = 1.0 if the optimiser reported success (``converged``), else 0.0
    (threshold 1.0); ``converged`` None (not assessed) fails.
    """
    prov = posterior.provenance
    rhat = prov.get("rhat")
    if rhat is not None:
        r = np.asarray(rhat, np.float64)
        max_r = float(np.nanmax(r)) if np.any(np.isfinite(r)) else float("nan")
        n_div = int(prov.get("n_divergent") or 0)
        ess = prov.get("ess")
        return GateResult(
            "convergence",
            passed=bool(max_r < max_rhat and n_div == 0),
            statistic=max_r,
            threshold=float(max_rhat),
            details={
                "kind": "sampler",
                "n_divergent": n_div,
                "min_ess": None if ess is None else float(np.min(ess)),
                "n_iter": prov.get("n_iter"),
                "rule": "max split R-hat < threshold and no divergent transition",
            },
        )
    conv = prov.get("converged")
    return GateResult(
        "convergence",
        passed=conv is True,
        statistic=float("nan") if conv is None else float(bool(conv)),
        threshold=1.0,
        details={
            "kind": "optimiser",
            "converged": conv,
            "n_iter": prov.get("n_iter"),
            "rule": "the optimiser reported success",
        },
    )


@dataclasses.dataclass(frozen=True)
class InferenceDiagnostics:
    """The checks of one inference (:func:`inference_diagnostics`).

    Attributes:
        checks: ``{"convergence", "posterior_contraction", "chi2_fit"}`` →
            :class:`plumax_core.gates.GateResult` (a check that does not apply, e.g. the
            fit test under a Student-t likelihood, is absent and named in ``skipped``).
        warnings: one human-readable sentence per failed check.
        skipped: ``{check name: reason}``.
    """

    checks: dict[str, GateResult]
    warnings: tuple[str, ...]
    skipped: dict[str, str]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"passed", "checks": {name: GateResult.to_dict()}, "warnings",
        "skipped"}``."""
        return {
            "passed": self.passed,
            "checks": {k: v.to_dict() for k, v in self.checks.items()},
            "warnings": list(self.warnings),
            "skipped": dict(self.skipped),
        }


def _convergence_warning(g: GateResult) -> str:
    d = g.details
    if d["kind"] == "sampler":
        parts = []
        if not g.statistic < g.threshold:
            parts.append(f"max split R-hat {g.statistic:.3f} >= {g.threshold:g}")
        if d["n_divergent"]:
            parts.append(f"{d['n_divergent']} divergent transition(s)")
        return (
            "the sampler did not converge (" + ", ".join(parts) + "): the posterior "
            "may be biased; run longer chains or check the model"
        )
    if d["converged"] is None:
        return "the analysis did not report whether it converged"
    return (
        f"the MAP optimisation did not converge ({d['n_iter']} iterations): the "
        "posterior is centred on a point that is not the optimum"
    )


def _contraction_warning(g: GateResult) -> str:
    d = g.details
    parts = []
    for name in d["prior_dominated"]:
        c = d["contraction"][d["names"].index(name)]
        if not math.isfinite(c):
            parts.append(f"{name} (posterior variance not finite)")
        else:
            parts.append(f"{name} (contraction {c:.2f}: posterior variance {1 - c:.0%} of prior)")
    return (
        f"the data barely inform {', '.join(parts)}: below {g.threshold:g} the prior "
        "outweighs the data, so the answer is mostly the prior"
    )


def _fit_warning(g: GateResult) -> str:
    d = g.details
    return (
        f"the model does not fit the data: chi-square {d['chi2']:.4g} on {d['dof']} "
        f"observations (reduced {d['reduced_chi2']:.3g}, p = {g.statistic:.2g} < "
        f"{g.threshold:g}); no parameter value explains them within their errors "
        "(wrong sign or units, another source, or errors too small?)"
    )


def inference_diagnostics(
    problem: Problem,
    posterior: Posterior,
    *,
    min_contraction: float = MIN_CONTRACTION,
    alpha: float = FIT_ALPHA,
    max_rhat: float = MAX_RHAT,
    max_fit_draws: int = 256,
    key: PRNGKeyArray | None = None,
    nuisance: tuple[str, ...] = (),
) -> InferenceDiagnostics:
    """Run :func:`convergence_check`, :func:`contraction_check` and :func:`fit_check`.

    ``nuisance`` names parameters whose weak contraction is expected (passed to
    :func:`contraction_check`).

    The fit test is evaluated at the posterior mean (the MAP of a Laplace / 3D-Var
    posterior) and, for a sample-based posterior, also at up to ``max_fit_draws``
    evenly spaced draws (the lowest cost is used). It is skipped, with the reason in
    ``skipped``, for a Student-t likelihood or a non-Gaussian prior.
    """
    checks: dict[str, GateResult] = {}
    skipped: dict[str, str] = {}
    checks["convergence"] = convergence_check(posterior, max_rhat=max_rhat)
    checks["posterior_contraction"] = contraction_check(
        posterior, problem.prior, threshold=min_contraction, key=key, nuisance=tuple(nuisance)
    )
    if problem.likelihood != "gaussian":
        skipped["chi2_fit"] = "Student-t likelihood: 2J* is not chi-square"
    elif not isinstance(problem.prior, GaussianPrior):
        skipped["chi2_fit"] = "non-Gaussian prior: 2J* is not chi-square"
    else:
        z = jnp.asarray(posterior.mean)[None]
        if posterior.samples is not None:
            flat = posterior.flat_samples()
            step = max(1, flat.shape[0] // max(1, int(max_fit_draws)))
            z = jnp.concatenate([z, flat[::step][:max_fit_draws]])
        checks["chi2_fit"] = fit_check(problem, z, alpha=alpha)
    words = {
        "convergence": _convergence_warning,
        "posterior_contraction": _contraction_warning,
        "chi2_fit": _fit_warning,
    }
    warnings = tuple(words[k](g) for k, g in checks.items() if not g.passed)
    return InferenceDiagnostics(checks, warnings, skipped)
