"""The last stage of the cycle: the report of every gate (step 6).

:class:`ReportStage` gathers the gates of the stages that ran into a
`plumax_core.CycleReport`, stores it (``<tier>-cycle-report``) and writes it as JSON
with a `plumax_core.ReportDiff` against the previous report in the same registry.
"""

import dataclasses
import datetime
import json
from typing import Any

from plumax_core import ArtifactLineage, CycleBenchmark, CycleReport, ModelRole

from ._cycle_base import REPORT_VALUES, AbstractCycleStage, CycleContext
from ._outputs import write_json

__all__ = ["ReportStage"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReportStage(AbstractCycleStage):
    """Step 6: every gate of the stages that ran, in one report, diffed with the last.

    Runs the `plumax_core.CycleBenchmark` ``<tier>-cycle`` made of the gates of the
    stages before it (in stage order) on their metrics, stores the
    `plumax_core.CycleReport` as ``<tier>-cycle-report`` (lineage: the oracle posteriors,
    every stage's ``report_parents``, the report itself as benchmark results; tags:
    ``passed`` and the budget) and writes it to ``root/reports/<tier>-cycle-<time>.json``.
    When the registry holds an earlier report of the tier, their
    `plumax_core.ReportDiff` is written beside it (``...-diff.json``) first, so a report
    on disk always has its diff. Produces ``report``, ``previous``, ``diff``,
    ``report_path`` and ``diff_path``.

    Raises:
        ValueError: no stage before it contributes a gate.
    """

    step = 6
    name = "report"
    produces = REPORT_VALUES
    artifacts = ("cycle-report",)

    def describe(self, ctx: CycleContext) -> str:
        return "gates -> cycle report"

    def run(self, ctx: CycleContext) -> dict[str, Any]:
        tier = ctx.tier.name
        stages = tuple(g for stage in ctx.completed for g in stage.gates(ctx))
        if not stages:
            raise ValueError(
                f"tier {tier!r}: no stage contributes a gate "
                f"(stages run: {[s.label for s in ctx.completed]}), nothing to report"
            )
        report = CycleBenchmark(stages, name=f"{tier}-cycle").run_full_cycle(
            ctx.metrics, registry=ctx.registry
        )
        name = ctx.artifact_name("cycle-report")
        previous_records = ctx.registry.list(name=name)
        previous = None
        if previous_records:
            previous = CycleReport.from_dict(ctx.registry.load(previous_records[-1].hash))
        parents = tuple(ctx.hash(a) for stage in ctx.completed for a in stage.report_parents)
        ctx.store(
            report.to_dict(),
            "cycle-report",
            ModelRole.BASELINE,
            step=6,
            lineage=ArtifactLineage(
                oracle_hash=(
                    ctx.hash("oracle-posteriors") if ctx.has("oracle-posteriors") else None
                ),
                parent_hashes=parents,
                benchmark_results=report,
            ),
            tags={
                "passed": report.passed,
                "budget": json.dumps(ctx.budget.to_dict(), sort_keys=True),
            },
        )
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        reports = ctx.root / "reports"
        reports.mkdir(parents=True, exist_ok=True)
        report_path = reports / f"{tier}-cycle-{stamp}.json"
        diff = diff_path = None
        # never over an earlier file (overwrite=False), and the diff before the report:
        # a report file on disk always has its diff beside it
        json.dumps(report.to_dict(), allow_nan=False)  # a non-finite value fails here, first
        if previous is not None:
            diff = previous.diff(report)
            diff_path = reports / f"{tier}-cycle-{stamp}-diff.json"
            write_json(diff_path, diff.to_dict(), indent=2, allow_nan=False, overwrite=False)
        write_json(report_path, report.to_dict(), indent=2, allow_nan=False, overwrite=False)
        return {
            "report": report,
            "previous": previous,
            "diff": diff,
            "report_path": report_path,
            "diff_path": diff_path,
        }
