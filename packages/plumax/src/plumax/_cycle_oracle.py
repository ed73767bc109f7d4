"""The model-based stages of the cycle: simulator (1), oracle (2), oracle on the emulator (4).

1. :class:`SimulatorStage` — the tier's ``setup``: forward model (role ``ORACLE``), prior
   and met (``<tier>-simulator``, ``<tier>-setup``).
2. :class:`OracleStage` — held-out noisy simulations (``plumax_amortize.simulate``) and
   their posteriors by model-based inference on the simulator (vardax-lite: NUTS, or MAP
   + Laplace), role ``ORACLE``. Gate ``oracle-convergence`` (NUTS only).
4. :class:`EmulatorInferenceStage` — the step-2 inference, unchanged, with the emulator
   as forward model. Gate ``emulator-inference``: `plumax_core.gates.posterior_agreement`
   against step 2.

:func:`agreement_metrics` and :func:`agreement_gate` are the posterior-agreement gate of
any step against step 2 (steps 4 and 5).
"""

import dataclasses
from typing import Any

import jax.random as jr
import numpy as np

import plumax_amortize as pa
import vardax_lite as vx
from plumax_core import (
    ArtifactLineage,
    CycleStageBenchmark,
    ModelRole,
    OracleStrength,
    Posterior,
    Tolerance,
    gates,
)

from ._cycle_banks import observation, store_bank
from ._cycle_base import AbstractCycleStage, CycleContext

__all__ = [
    "EmulatorInferenceStage",
    "OracleStage",
    "SimulatorStage",
    "agreement_gate",
    "agreement_metrics",
    "oracle_strength",
]

_AGREEMENT_METRICS = ("agree_fraction", "median_z", "max_z", "max_spread_ratio")
_AGREEMENT_TOLERANCES = {"agree_fraction": Tolerance(min=0.9), "median_z": Tolerance(max=1.0)}


def _storable(post: Posterior) -> Posterior:
    # a matrix-free Laplace covariance holds closures: materialise it for the registry
    return Posterior.from_dict(post.to_dict())


def oracle_strength(ctx: CycleContext) -> OracleStrength:
    """``SAMPLER`` for a NUTS oracle, ``LAPLACE`` for MAP + Laplace."""
    return OracleStrength.SAMPLER if ctx.budget.oracle == "nuts" else OracleStrength.LAPLACE


def agreement_metrics(cands: list[Posterior], oracles: list[Posterior]) -> dict[str, float]:
    """Metrics of `plumax_core.gates.posterior_agreement` over the held-out cases."""
    results = [gates.posterior_agreement(c, o) for c, o in zip(cands, oracles, strict=True)]
    z = [float(r.details["max_z_observed"]) for r in results]
    r = [float(r.details["max_cv_ratio_observed"]) for r in results]
    return {
        "agree_fraction": float(np.mean([g.passed for g in results])),
        "median_z": float(np.median(z)),
        "max_z": float(np.max(z)),
        "max_spread_ratio": float(np.max(r)),
    }


def agreement_gate(ctx: CycleContext, name: str, target_step: int) -> CycleStageBenchmark:
    """Posterior agreement of a step with the step-2 oracle."""
    return CycleStageBenchmark(
        name=name,
        target_step=target_step,
        oracle_step=2,
        l_transition="L2->L4",
        oracle_strength=oracle_strength(ctx),
        metrics=_AGREEMENT_METRICS,
        tolerances=_AGREEMENT_TOLERANCES,
        oracle_artifact_hash=ctx.hash("oracle-posteriors"),
    )


@dataclasses.dataclass(frozen=True)
class _Inference:
    """The oracle's inference (step 2), reused unchanged on the emulator (step 4)."""

    method: str  # "nuts" or "laplace"
    analysis: Any  # a vardax-lite analysis
    met: Any
    prior: Any

    def posteriors(self, ctx: CycleContext, forward: Any, cases: Any) -> list[Posterior]:
        """Posterior of each case; the same keys for every forward model."""

        out = []
        for i in range(cases.n):
            k = jr.fold_in(ctx.keys["oracle"], i)
            problem = vx.Problem(forward, self.met, observation(ctx, cases, i), self.prior)
            if self.method == "nuts":
                post = self.analysis.posterior(problem, key=k)
            else:
                post = self.analysis.posterior(problem)
            out.append(_storable(post))
        return out


# 1 ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class SimulatorStage(AbstractCycleStage):
    """Step 1: the tier's simulator, prior and met, stored as the oracle of everything.

    Produces ``model``, ``met``, ``prior``; stores ``simulator`` (role ``ORACLE``) and
    ``setup`` (prior, met and the noise level; lineage to the simulator).

    Attributes:
        what: the progress message's description of the simulator.
    """

    step = 1
    name = "simulator"
    produces = ("model", "met", "prior")
    artifacts = ("simulator", "setup")

    what: str = "simulator"

    def describe(self, ctx: CycleContext) -> str:
        return self.what

    def run(self, ctx: CycleContext) -> dict[str, Any]:
        model, met, prior = ctx.tier.setup(ctx.budget)
        h_sim = ctx.store(model, "simulator", ModelRole.ORACLE, step=1)
        ctx.store(
            {"prior": prior, "met": met, ctx.tier.noise_key: ctx.tier.noise_sigma},
            "setup",
            ModelRole.BASELINE,
            step=1,
            lineage=ArtifactLineage(parent_hashes=(h_sim,)),
        )
        return {"model": model, "met": met, "prior": prior}


# 2 ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class OracleStage(AbstractCycleStage):
    """Step 2: posteriors of held-out noisy simulations by inference on the simulator.

    Simulates ``budget.n_calibration + budget.n_cases`` noisy cases
    (`plumax_amortize.simulate`, key ``heldout``): the first ``n_calibration`` are the
    calibration set of step 5, the rest the held-out cases. Each case's posterior comes
    from ``vardax_lite.NUTSOracle`` (``budget.oracle == "nuts"``; key ``fold_in(oracle,
    i)``) or ``vardax_lite.ThreeDVar`` with the Laplace covariance (``"laplace"``).

    Produces ``calibration``, ``cases``, ``inference`` (the method, for step 4) and
    ``oracle_posteriors``; stores ``heldout-cases`` and ``oracle-posteriors`` (role
    ``ORACLE``). Gate ``oracle-convergence`` (NUTS only): ``max_rhat`` ≤ 1.05,
    ``min_ess`` ≥ 100, ``divergences`` (reported).

    Attributes:
        solver: the optimistix solver name of the MAP + Laplace oracle.
    """

    step = 2
    name = "oracle"
    needs = ("model", "met", "prior")
    produces = ("calibration", "cases", "inference", "oracle_posteriors")
    artifacts = ("heldout-cases", "oracle-posteriors")

    solver: str = "levenberg_marquardt"

    def describe(self, ctx: CycleContext) -> str:
        return f"{ctx.budget.oracle} oracle posteriors on {ctx.budget.n_cases} held-out cases"

    def run(self, ctx: CycleContext) -> dict[str, Any]:
        b = ctx.budget
        model, met, prior = ctx["model"], ctx["met"], ctx["prior"]
        if b.oracle == "nuts":
            analysis: Any = vx.NUTSOracle(
                num_warmup=b.nuts_warmup, num_samples=b.nuts_samples, num_chains=b.nuts_chains
            )
        else:
            analysis = vx.ThreeDVar(solver=self.solver)
        inference = _Inference(b.oracle, analysis, met, prior)
        noise = pa.GaussianNoise(ctx.tier.noise_sigma)
        held = pa.simulate(
            model, prior, met, noise, b.n_calibration + b.n_cases, key=ctx.keys["heldout"]
        )
        calib, cases = held.split(b.n_calibration)
        h_cases = store_bank(
            ctx, cases, "heldout-cases", step=2, tags={ctx.tier.noise_key: ctx.tier.noise_sigma}
        )
        posts = inference.posteriors(ctx, model, cases)
        ctx.store(
            tuple(posts),
            "oracle-posteriors",
            ModelRole.ORACLE,
            step=2,
            lineage=ArtifactLineage(
                oracle_hash=ctx.hash("simulator"), parent_hashes=(h_cases, ctx.hash("setup"))
            ),
            tags={"method": b.oracle},
        )
        if b.oracle == "nuts":
            ctx.metrics["oracle-convergence"] = {
                "max_rhat": float(np.max([max(p.provenance["rhat"]) for p in posts])),
                "min_ess": float(np.min([min(p.provenance["ess"]) for p in posts])),
                "divergences": float(sum(p.provenance["n_divergent"] for p in posts)),
            }
        return {
            "calibration": calib,
            "cases": cases,
            "inference": inference,
            "oracle_posteriors": posts,
        }

    def gates(self, ctx: CycleContext) -> tuple[CycleStageBenchmark, ...]:
        if ctx.budget.oracle != "nuts":
            return ()
        return (
            CycleStageBenchmark(
                name="oracle-convergence",
                target_step=2,
                oracle_step=1,
                l_transition="L2->L4",
                oracle_strength=OracleStrength.EXACT,
                metrics=("max_rhat", "min_ess", "divergences"),
                tolerances={"max_rhat": Tolerance(max=1.05), "min_ess": Tolerance(min=100.0)},
                oracle_artifact_hash=ctx.hash("simulator"),
            ),
        )


# 4 ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class EmulatorInferenceStage(AbstractCycleStage):
    """Step 4: the step-2 inference, unchanged, with the emulator as forward model.

    The same cases and the same keys as step 2: only the forward model differs.
    Produces ``emulator_posteriors``; stores ``emulator-posteriors``. Gate
    ``emulator-inference``: posterior agreement with step 2 (``agree_fraction`` ≥ 0.9,
    ``median_z`` ≤ 1, ``max_z``, ``max_spread_ratio``).
    """

    step = 4
    name = "emulator-inference"
    needs = ("inference", "emulator", "cases", "oracle_posteriors")
    produces = ("emulator_posteriors",)
    artifacts = ("emulator-posteriors",)
    report_parents = ("emulator-posteriors",)

    def describe(self, ctx: CycleContext) -> str:
        return f"{ctx.budget.oracle} with the emulator as forward model"

    def run(self, ctx: CycleContext) -> dict[str, Any]:
        posts = ctx["inference"].posteriors(ctx, ctx["emulator"], ctx["cases"])
        ctx.store(
            tuple(posts),
            "emulator-posteriors",
            ModelRole.BASELINE,
            step=4,
            lineage=ArtifactLineage(
                oracle_hash=ctx.hash("oracle-posteriors"),
                parent_hashes=(ctx.hash("emulator"), ctx.hash("heldout-cases")),
            ),
            tags={"method": ctx.budget.oracle},
        )
        ctx.metrics["emulator-inference"] = agreement_metrics(posts, ctx["oracle_posteriors"])
        return {"emulator_posteriors": posts}

    def gates(self, ctx: CycleContext) -> tuple[CycleStageBenchmark, ...]:
        return (agreement_gate(ctx, "emulator-inference", 4),)
