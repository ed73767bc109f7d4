"""The six-step cycle of a registered tier, end to end (:func:`run_cycle`, ``plumax cycle``).

A tier (:class:`plumax._cycle_base.CycleTier`) is a problem and a sequence of stages,
one per step (:mod:`plumax._cycle_oracle`, :mod:`plumax._cycle_learned`,
:mod:`plumax._cycle_report`); :func:`run_cycle` looks it up by name
(:mod:`plumax._cycle_tiers`) and runs its stages in order with one
:class:`~plumax._cycle_base.CycleContext`. Every stage stores real artifacts in an
:class:`plumax_core.ArtifactRegistry`, each with its lineage, and the report stage
gates each step against the one it replaces, with the gates of the stages that ran.

Deterministic given the seed: a second run with the same budget stores the same
artifacts (the registry deduplicates them) and produces a report that differs only in
its time stamp.
"""

import dataclasses
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import jax.random as jr

from plumax_core import ArtifactRegistry, CycleReport, ReportDiff

from ._cycle_base import CYCLE_KEYS, AbstractCycleStage, CycleContext, CycleTier
from ._cycle_budget import CycleBudget
from ._cycle_tiers import cycle_tier

__all__ = ["CycleRun", "run_cycle"]


@dataclasses.dataclass(frozen=True)
class CycleRun:
    """What :func:`run_cycle` produced.

    Attributes:
        report: this run's `CycleReport`.
        previous: the previous report stored in the same registry, or None.
        diff: ``previous.diff(report)``, or None for a first run.
        artifacts: artifact name -> registry hash, for every artifact of the run.
        seconds: wall-clock seconds per stage, by label (``"1-simulator"`` ...
            ``"6-report"``).
        report_path, diff_path: the JSON files written (``diff_path`` None for a first run).
        budget: the `CycleBudget` used.
    """

    report: CycleReport
    previous: CycleReport | None
    diff: ReportDiff | None
    artifacts: dict[str, str]
    seconds: dict[str, float]
    report_path: Path
    diff_path: Path | None
    budget: CycleBudget


def _run_stage(ctx: CycleContext, stage: AbstractCycleStage) -> None:
    """Run one stage: progress messages, timing, and the checks of its declarations."""
    label = stage.label
    ctx.say(f"step {label}: {stage.describe(ctx)}")
    t0 = time.perf_counter()
    out = stage.run(ctx)
    ctx.seconds[label] = time.perf_counter() - t0
    if not isinstance(out, Mapping) or set(out) != set(stage.produces):
        got = sorted(out) if isinstance(out, Mapping) else type(out).__name__
        raise RuntimeError(
            f"stage {label} ({type(stage).__name__}) must return the values "
            f"{list(stage.produces)}, returned {got}"
        )
    unstored = [a for a in stage.artifacts if not ctx.has(a)]
    if unstored:
        raise RuntimeError(f"stage {label} ({type(stage).__name__}) did not store {unstored}")
    ctx.values.update(out)
    ctx.completed.append(stage)
    ctx.say(f"step {label}: done in {ctx.seconds[label]:.1f} s")


def run_cycle(
    root: str | Path = "plumax-runs",
    *,
    tier: str | CycleTier = "gaussian",
    fast: bool = False,
    budget: CycleBudget | None = None,
    seed: int = 0,
    say: Callable[[str], None] | None = None,
) -> CycleRun:
    """Run the six-step cycle of a tier and store everything in a registry at ``root``.

    Args:
        root: registry folder (created if needed); reports go to ``root/reports/``.
        tier: the name of a registered tier (``"gaussian"``: Tier I,
            :func:`gaussian_tier`; see `register_cycle_tier`), or a `CycleTier`.
        fast: use :meth:`CycleBudget.fast` (ignored when ``budget`` is given).
        budget: explicit `CycleBudget`.
        seed: every PRNG key derives from it; same seed and budget, same artifacts.
        say: progress callback (one line per stage start/end); default silent.

    Returns:
        A `CycleRun`; ``run.report.passed`` says whether every gate passed.

    Raises:
        ValueError: unknown ``tier`` (the message lists the registered ones), or an
            invalid ``budget``/``seed``.
    """
    spec = tier if isinstance(tier, CycleTier) else cycle_tier(tier)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"`seed` must be an int >= 0, got {seed!r}")
    if budget is None:
        budget = CycleBudget.fast() if fast else CycleBudget()
    elif not isinstance(budget, CycleBudget):
        raise TypeError(f"`budget` must be a CycleBudget, got {type(budget).__name__}")
    root = Path(root)
    keys = jr.split(jr.key(seed), len(CYCLE_KEYS))
    ctx = CycleContext(
        tier=spec,
        budget=budget,
        seed=seed,
        root=root,
        registry=ArtifactRegistry(root),
        tags={"tier": spec.name, "seed": seed, "fast": budget == CycleBudget.fast()},
        keys=dict(zip(CYCLE_KEYS, keys, strict=True)),
        say=say or (lambda _msg: None),
    )
    for stage in spec.stages:
        _run_stage(ctx, stage)
    return CycleRun(
        report=ctx["report"],
        previous=ctx["previous"],
        diff=ctx["diff"],
        artifacts=dict(ctx.artifacts),
        seconds=dict(ctx.seconds),
        report_path=ctx["report_path"],
        diff_path=ctx["diff_path"],
        budget=budget,
    )
