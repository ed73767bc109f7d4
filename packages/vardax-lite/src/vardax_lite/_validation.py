"""Validation drivers of the six-step cycle: SBC over an analysis, and oracle comparison.

The gate *statistics* live in :mod:`plumax_core.gates` (re-exported here); these drivers
run inference to produce their inputs.

* :func:`run_sbc` — simulation-based calibration (Talts et al. 2018, arXiv:1804.06788,
  Algorithm 1) over a :class:`plumax_core.SimulationBank` simulated from the prior
  (``plumax_core.simulate_bank``: ``z ~ prior``, data ``y ~ noise(h(z))``): run the
  analysis on each simulated observation and rank ``z`` among ``L`` posterior draws;
  the ranks are uniform iff the posterior is calibrated.
* :func:`compare_to_oracle` — :func:`plumax_core.gates.posterior_agreement` of a
  candidate analysis against the oracle over a set of cases, as a table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import PRNGKeyArray

from plumax_core import AbstractForwardModel, AbstractPrior, Posterior, SimulationBank
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
        theta_true: ``(n, D)`` true unconstrained parameters (the bank's ``theta``).
        bank_hash: content hash of the bank the truths came from
            (`plumax_core.SimulationBank.content_hash`), or "" when it cannot be hashed.
    """

    def __init__(self, ranks, gate: GateResult, histogram, strata, theta_true, bank_hash=""):
        self.ranks = ranks
        self.gate = gate
        self.histogram = histogram
        self.strata = strata
        self.theta_true = theta_true
        self.bank_hash = bank_hash

    @property
    def passed(self) -> bool:
        return self.gate.passed

    def to_dict(self) -> dict[str, Any]:
        return {
            "ranks": np.asarray(self.ranks).tolist(),
            "gate": self.gate.to_dict(),
            "histogram": self.histogram,
            "strata": None if self.strata is None else np.asarray(self.strata).tolist(),
            "bank_hash": self.bank_hash or None,
        }


def run_sbc(
    analysis: Any,
    bank: SimulationBank,
    *,
    forward: AbstractForwardModel,
    prior: AbstractPrior,
    key: PRNGKeyArray,
    n_draws: int = 99,
    strata: Callable[[Problem], int] | None = None,
    n_bins: int | None = None,
    alpha: float = 0.01,
    likelihood: str = "gaussian",
    df: float = 4.0,
) -> SBCResult:
    """Simulation-based calibration of ``analysis`` (Talts et al. 2018).

    Each simulation ``i`` of ``bank`` is turned into ``Problem(forward,
    bank.met_at(i), bank.observation(i), prior)`` (the observation errors are the
    bank's noise model's, see `plumax_core.SimulationBank.observation`); the analysis
    runs on it and the bank's truth ``theta[i]`` is ranked among ``n_draws`` posterior
    draws.

    Args:
        analysis: an :class:`AbstractAnalysis` or ``(problem, key) -> Posterior``.
        bank: simulations from ``prior`` (``plumax_core.simulate_bank(..., noise=...)``
            without a proposal), one met per draw; at least 2.
        forward: the forward model the analysis inverts (the bank's simulator, or a
            substitute for it such as an emulator).
        prior: the prior the bank was drawn from; the analysis uses it too (the test is
            meaningful only when both are the same).
        key: PRNG key (analyses and rank ties).
        n_draws: ``L`` posterior draws per simulation (``Posterior.sample``).
        strata: optional ``problem -> int`` regime label (from data/met only, never
            from the truth).
        n_bins, alpha: passed to :func:`plumax_core.gates.sbc_uniformity`.
        likelihood, df: passed to :class:`Problem`.

    Raises:
        TypeError: wrong argument types.
        ValueError: a weighted bank (simulated from a proposal), repeated observations,
            a prior on another layout, or too few simulations.
    """
    if not isinstance(bank, SimulationBank):
        raise TypeError(f"`bank` must be a plumax_core.SimulationBank, got {type(bank).__name__}")
    if not isinstance(prior, AbstractPrior):
        raise TypeError(f"`prior` must be an AbstractPrior, got {type(prior).__name__}")
    if prior.param_spec != bank.param_spec:
        raise ValueError("`prior.param_spec` differs from `bank.param_spec`")
    bank.check_prior_draws("SBC")
    if bank.repeats is not None:
        raise ValueError("`bank` holds repeated observations; SBC needs one met per draw")
    if bank.n < 2:
        raise ValueError(f"`bank` must hold at least 2 simulations, got {bank.n}")
    if not (isinstance(n_draws, int) and n_draws >= 1):
        raise ValueError(f"`n_draws` must be a positive int, got {n_draws!r}")
    k_loop, k_rank = jr.split(key)
    draws, labels = [], []
    for i, k in enumerate(jr.split(k_loop, bank.n)):
        k_ana, k_draw = jr.split(k)
        problem = Problem(
            forward,
            bank.met_at(i),
            bank.observation(i),
            prior,
            likelihood=likelihood,
            df=df,
        )
        post = _run(analysis, problem, k_ana)
        draws.append(post.sample(k_draw, n_draws))
        if strata is not None:
            labels.append(int(strata(problem)))
    theta = bank.theta
    ranks = sbc_ranks(theta, jnp.stack(draws), key=k_rank)
    s = None if strata is None else np.asarray(labels)
    gate = sbc_uniformity(ranks, n_draws, n_bins=n_bins, alpha=alpha, strata=s)
    b = gate.details["n_bins"]
    edges = np.ceil(np.arange(b + 1) * (n_draws + 1) / b).tolist()
    hist = {"bin_edges": edges, "counts": gate.details["counts"]}
    try:
        bank_hash = bank.content_hash()
    except TypeError:
        bank_hash = ""
    return SBCResult(ranks, gate, hist, s, theta, bank_hash)


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
