"""Validation drivers of the six-step cycle: SBC over an analysis, and oracle comparison.

The gate *statistics* live in :mod:`plumax_core.gates` (re-exported here); these drivers
run inference to produce their inputs.

* :func:`run_sbc` — simulation-based calibration (Talts et al. 2018, arXiv:1804.06788,
  Algorithm 1): draw ``z ~ prior``, simulate data, run the analysis, rank ``z`` among
  ``L`` posterior draws; the ranks are uniform iff the posterior is calibrated.
* :func:`compare_to_oracle` — :func:`plumax_core.gates.posterior_agreement` of a
  candidate analysis against the oracle over a set of cases, as a table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from plumax_core import AbstractPrior, Posterior
from plumax_core.gates import (
    GateResult,
    posterior_agreement,
    sbc_ranks,
    sbc_uniformity,
)

from ._problem import Problem


def _run(analysis, problem: Problem, key) -> Posterior:
    if hasattr(analysis, "posterior"):
        return analysis.posterior(problem, key=key)
    if callable(analysis):
        return analysis(problem, key)
    raise TypeError(
        "`analysis` must be an AbstractAnalysis or a callable (problem, key) -> Posterior"
    )


class SBCResult:
    """Output of :func:`run_sbc`.

    Attributes:
        ranks: ``(n, D)`` integer ranks in ``0..L``.
        gate: the :func:`plumax_core.gates.sbc_uniformity` :class:`GateResult`.
        histogram: ``{"bin_edges": (n_bins + 1,), "counts": D lists}`` for plotting.
        strata: ``(n,)`` labels or None.
        theta_true: ``(n, D)`` true unconstrained parameters.
    """

    def __init__(self, ranks, gate: GateResult, histogram, strata, theta_true):
        self.ranks = ranks
        self.gate = gate
        self.histogram = histogram
        self.strata = strata
        self.theta_true = theta_true

    @property
    def passed(self) -> bool:
        return self.gate.passed

    def to_dict(self) -> dict[str, Any]:
        return {
            "ranks": np.asarray(self.ranks).tolist(),
            "gate": self.gate.to_dict(),
            "histogram": self.histogram,
            "strata": None if self.strata is None else np.asarray(self.strata).tolist(),
        }


def run_sbc(
    simulator: Callable[[Array, PRNGKeyArray], Problem],
    prior: AbstractPrior,
    analysis: Any,
    n: int,
    key: PRNGKeyArray,
    *,
    n_draws: int = 99,
    strata: Callable[[Problem], int] | None = None,
    n_bins: int | None = None,
    alpha: float = 0.01,
) -> SBCResult:
    """Simulation-based calibration of ``analysis`` (Talts et al. 2018).

    Args:
        simulator: ``(z_true (D,), key) -> Problem`` with data simulated at the
            unconstrained parameters ``z_true``.
        prior: the prior ``z_true`` is drawn from (it must be the one the analysis uses
            for the test to be meaningful).
        analysis: an :class:`AbstractAnalysis` or ``(problem, key) -> Posterior``.
        n: number of simulations (>= 20 for the default binning).
        key: PRNG key.
        n_draws: ``L`` posterior draws per simulation (``Posterior.sample``).
        strata: optional ``problem -> int`` regime label (from data/met only, never
            from the truth).
        n_bins, alpha: passed to :func:`plumax_core.gates.sbc_uniformity`.
    """
    if not (isinstance(n, int) and n >= 2):
        raise ValueError(f"`n` must be an int >= 2, got {n!r}")
    if not (isinstance(n_draws, int) and n_draws >= 1):
        raise ValueError(f"`n_draws` must be a positive int, got {n_draws!r}")
    spec = prior.param_spec
    k_prior, k_loop, k_rank = jr.split(key, 3)
    theta = spec.to_unconstrained(prior.sample(k_prior, n))
    draws, labels = [], []
    for i, k in enumerate(jr.split(k_loop, n)):
        k_sim, k_ana, k_draw = jr.split(k, 3)
        problem = simulator(theta[i], k_sim)
        post = _run(analysis, problem, k_ana)
        draws.append(post.sample(k_draw, n_draws))
        if strata is not None:
            labels.append(int(strata(problem)))
    ranks = sbc_ranks(theta, jnp.stack(draws), key=k_rank)
    s = None if strata is None else np.asarray(labels)
    gate = sbc_uniformity(ranks, n_draws, n_bins=n_bins, alpha=alpha, strata=s)
    b = gate.details["n_bins"]
    edges = np.ceil(np.arange(b + 1) * (n_draws + 1) / b).tolist()
    hist = {"bin_edges": edges, "counts": gate.details["counts"]}
    return SBCResult(ranks, gate, hist, s, theta)


class ComparisonTable:
    """Rows of :func:`compare_to_oracle`: one per case, with the agreement gate result."""

    def __init__(self, rows: list[dict[str, Any]], gates: list[GateResult]):
        self.rows = rows
        self.gates = gates

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "rows": self.rows}

    def __str__(self) -> str:
        head = f"{'case':<20} {'max |dmean|/sd':>15} {'max sd ratio':>13} {'verdict':>8}"
        lines = [head, "-" * len(head)]
        for r in self.rows:
            lines.append(
                f"{str(r['case']):<20} {r['max_z']:>15.3g} {r['max_cv_ratio']:>13.3g} "
                f"{'PASS' if r['passed'] else 'FAIL':>8}"
            )
        return "\n".join(lines)


def compare_to_oracle(
    candidate_analysis: Any,
    oracle_analysis: Any,
    cases: Sequence[Problem] | Mapping[str, Problem],
    *,
    key: PRNGKeyArray | None = None,
    max_z: float = 1.0,
    max_cv_ratio: float = 2.0,
) -> ComparisonTable:
    """Posterior agreement of a candidate analysis with the oracle over ``cases``.

    Each case is a :class:`Problem`; both analyses run on it and
    :func:`plumax_core.gates.posterior_agreement` compares their marginals
    (``|Δmean| / σ_oracle <= max_z`` and spread ratio ``<= max_cv_ratio``).
    """
    items = list(cases.items()) if isinstance(cases, Mapping) else list(enumerate(cases))
    if not items:
        raise ValueError("`cases` is empty")
    key = jr.key(0) if key is None else key
    rows, gates = [], []
    for (name, problem), k in zip(items, jr.split(key, len(items)), strict=True):
        kc, ko = jr.split(k)
        cand = _run(candidate_analysis, problem, kc)
        orac = _run(oracle_analysis, problem, ko)
        g = posterior_agreement(cand, orac, max_z=max_z, max_cv_ratio=max_cv_ratio)
        gates.append(g)
        rows.append(
            {
                "case": name,
                "passed": g.passed,
                "max_z": g.details["max_z_observed"],
                "max_cv_ratio": g.details["max_cv_ratio_observed"],
                "statistic": g.statistic,
            }
        )
    return ComparisonTable(rows, gates)
