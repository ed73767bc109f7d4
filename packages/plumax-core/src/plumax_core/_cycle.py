"""Benchmark contracts for the six-step cycle (step 6: gates comparing each step with
the one it replaces).

A `CycleStageBenchmark` says what a stage of the cycle must achieve against its oracle:
which step is being checked (``target_step``) against which (``oracle_step``), which data
level transition it covers (``"L2->L4"``), how strong the oracle is (`OracleStrength`),
which metrics are computed and the `Tolerance` each must meet. A `CycleBenchmark` runs
candidate metric values for all its stages into a `CycleReport`, which is plain JSON and
can be compared with an earlier report by `CycleReport.diff`.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._enum import LowerStrEnum
from ._registry import ArtifactNotFoundError, check_hash

__all__ = [
    "CycleBenchmark",
    "CycleReport",
    "CycleStageBenchmark",
    "MetricChange",
    "MetricResult",
    "OracleStrength",
    "ReportDiff",
    "StageChange",
    "StageResult",
    "Tolerance",
]

_TRANSITION_RE = re.compile(r"\s*L(\d+)\s*->\s*L(\d+)\s*")
_REPORT_FORMAT = "plumax-cycle-report"
_REPORT_VERSION = 1
_NAN = float("nan")  # one NaN object, so that reports holding NaN compare equal


class OracleStrength(LowerStrEnum):
    """How much an oracle's answer can be trusted, strongest first.

    * ``EXACT`` — a closed form (conjugate Gaussian posterior, analytic solution): the
      reference is the true answer up to floating-point error.
    * ``SAMPLER`` — an asymptotically exact sampler (NUTS/HMC): the reference converges to
      the true posterior as the number of (converged) samples grows; carries Monte-Carlo
      error.
    * ``LAPLACE`` — a Gaussian approximation at the MAP (Laplace / Gauss-Newton): exact for
      a linear-Gaussian problem, otherwise only locally correct; the mean is the mode.
    * ``POINT`` — a point estimate only (MAP, 4D-Var optimum): no uncertainty, so only
      mean-type metrics can be checked against it.

    `rank` is 0 for the strongest; iteration order is strongest first.
    """

    EXACT = "exact"
    SAMPLER = "sampler"
    LAPLACE = "laplace"
    POINT = "point"

    @property
    def rank(self) -> int:
        """0 for ``EXACT`` (strongest) up to 3 for ``POINT`` (weakest)."""
        return list(type(self)).index(self)

    def at_least(self, other: OracleStrength | str) -> bool:
        """Whether this oracle is as strong as ``other`` or stronger."""
        return self.rank <= OracleStrength(other).rank


def _bound(value: Any, argname: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{argname} must be a number or None; got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{argname} must be finite (use None for no bound); got {value!r}")
    return value


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """The pass rule of one metric: ``min <= value <= max`` (either bound may be None).

    A NaN value, or a missing one, never passes.
    """

    max: float | None = None
    min: float | None = None

    def __post_init__(self):
        hi, lo = _bound(self.max, "max"), _bound(self.min, "min")
        if hi is None and lo is None:
            raise ValueError("Tolerance needs at least one of max, min")
        if hi is not None and lo is not None and lo > hi:
            raise ValueError(f"Tolerance min ({lo}) must not exceed max ({hi})")
        object.__setattr__(self, "max", hi)
        object.__setattr__(self, "min", lo)

    def check(self, value: float) -> bool:
        """Whether ``value`` passes."""
        if math.isnan(value):
            return False
        if self.max is not None and value > self.max:
            return False
        return not (self.min is not None and value < self.min)

    def __str__(self) -> str:
        if self.max is not None and self.min is not None:
            return f"in [{self.min:.6g}, {self.max:.6g}]"
        if self.max is not None:
            return f"<= {self.max:.6g}"
        return f">= {self.min:.6g}"

    def to_dict(self) -> dict[str, float | None]:
        return {"max": self.max, "min": self.min}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Tolerance:
        unknown = set(data) - {"max", "min"}
        if unknown:
            raise ValueError(f"unknown Tolerance fields: {sorted(unknown)}")
        return cls(max=data.get("max"), min=data.get("min"))


def _coerce_tolerance(value: Tolerance | Mapping[str, Any], metric: str) -> Tolerance:
    if isinstance(value, Tolerance):
        return value
    if isinstance(value, Mapping):
        return Tolerance.from_dict(value)
    raise ValueError(f"tolerances[{metric!r}] must be a Tolerance; got {value!r}")


def _check_step(value: Any, argname: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 6:
        raise ValueError(f"{argname} must be an int cycle step in 1..6; got {value!r}")
    return value


def _check_name(value: Any, argname: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{argname} must be a non-empty string; got {value!r}")
    return value


@dataclasses.dataclass(frozen=True, kw_only=True)
class CycleStageBenchmark:
    """What one stage of the cycle must achieve against its oracle.

    Attributes:
        name: unique stage name within a `CycleBenchmark`, e.g. ``"emulator-vs-oracle"``.
        target_step: the cycle step being checked, 1..6.
        oracle_step: the step it is checked against, 1..6, earlier than ``target_step``.
        l_transition: data-level transition covered, ``"L<k>->L<m>"`` (e.g. ``"L2->L4"``).
        oracle_strength: how strong the oracle is (`OracleStrength`).
        metrics: names of the metrics the stage computes (non-empty, unique).
        tolerances: metric name -> `Tolerance`; metrics without one are reported but not
            gated. Every key must be listed in ``metrics``.
        oracle_artifact_hash: registry hash of the oracle artifact, if registered.
    """

    name: str
    target_step: int
    oracle_step: int
    l_transition: str
    oracle_strength: OracleStrength
    metrics: tuple[str, ...]
    tolerances: Mapping[str, Tolerance] = dataclasses.field(default_factory=dict)
    oracle_artifact_hash: str | None = None

    def __post_init__(self):
        _check_name(self.name, "name")
        _check_step(self.target_step, "target_step")
        _check_step(self.oracle_step, "oracle_step")
        if self.oracle_step >= self.target_step:
            raise ValueError(
                f"oracle_step ({self.oracle_step}) must come before target_step "
                f"({self.target_step}) in stage {self.name!r}"
            )
        match = (
            _TRANSITION_RE.fullmatch(self.l_transition)
            if isinstance(self.l_transition, str)
            else None
        )
        if match is None:
            raise ValueError(
                f"l_transition must look like 'L<k>->L<m>' (e.g. 'L2->L4'); "
                f"got {self.l_transition!r}"
            )
        object.__setattr__(self, "l_transition", f"L{match[1]}->L{match[2]}")
        object.__setattr__(
            self, "oracle_strength", OracleStrength.coerce(self.oracle_strength, "oracle_strength")
        )
        if isinstance(self.metrics, str) or not isinstance(self.metrics, Sequence):
            raise ValueError(f"metrics must be a sequence of names; got {self.metrics!r}")
        metrics = tuple(_check_name(m, "metrics") for m in self.metrics)
        if not metrics:
            raise ValueError(f"metrics of stage {self.name!r} must not be empty")
        if len(set(metrics)) != len(metrics):
            raise ValueError(f"metrics of stage {self.name!r} must be unique; got {metrics}")
        object.__setattr__(self, "metrics", metrics)
        if not isinstance(self.tolerances, Mapping):
            raise ValueError(f"tolerances must be a mapping; got {self.tolerances!r}")
        unknown = [k for k in self.tolerances if k not in metrics]
        if unknown:
            raise ValueError(
                f"tolerances of stage {self.name!r} refer to unlisted metrics {unknown}; "
                f"metrics are {list(metrics)}"
            )
        tolerances = {
            m: _coerce_tolerance(self.tolerances[m], m) for m in metrics if m in self.tolerances
        }
        object.__setattr__(self, "tolerances", tolerances)
        if self.oracle_artifact_hash is not None:
            object.__setattr__(
                self,
                "oracle_artifact_hash",
                check_hash(self.oracle_artifact_hash, "oracle_artifact_hash"),
            )

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "target_step": self.target_step,
            "oracle_step": self.oracle_step,
            "l_transition": self.l_transition,
            "oracle_strength": self.oracle_strength.value,
            "metrics": list(self.metrics),
            "tolerances": {k: t.to_dict() for k, t in self.tolerances.items()},
            "oracle_artifact_hash": self.oracle_artifact_hash,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CycleStageBenchmark:
        return cls(**{**data, "metrics": tuple(data["metrics"])})


# --------------------------------------------------------------------------- results


def _encode_float(value: float | None) -> float | str | None:
    if value is None or math.isfinite(value):
        return value
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def _decode_float(value: Any) -> float | None:
    if value is None:
        return None
    return float(value)


@dataclasses.dataclass(frozen=True)
class MetricResult:
    """One metric of one stage.

    Attributes:
        name: metric name.
        value: the candidate's value (None if missing or not a number).
        tolerance: the pass rule, or None for an ungated metric.
        passed: True/False, or None for an ungated metric that was present.
        reason: why it failed (None when it passed).
    """

    name: str
    value: float | None
    tolerance: Tolerance | None
    passed: bool | None
    reason: str | None = None

    def __post_init__(self):
        if self.value is not None and math.isnan(self.value):
            object.__setattr__(self, "value", _NAN)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": _encode_float(self.value),
            "tolerance": None if self.tolerance is None else self.tolerance.to_dict(),
            "passed": self.passed,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MetricResult:
        tol = data.get("tolerance")
        return cls(
            name=data["name"],
            value=_decode_float(data.get("value")),
            tolerance=None if tol is None else Tolerance.from_dict(tol),
            passed=data.get("passed"),
            reason=data.get("reason"),
        )


@dataclasses.dataclass(frozen=True)
class StageResult:
    """The outcome of one `CycleStageBenchmark` in a run.

    Attributes:
        name, target_step, oracle_step, l_transition, oracle_strength,
            oracle_artifact_hash: copied from the stage definition.
        metrics: one `MetricResult` per listed metric, in the stage's order.
        passed: no error and no metric failed.
        error: text of the exception raised by the candidate (or why it could not run).
    """

    name: str
    target_step: int
    oracle_step: int
    l_transition: str
    oracle_strength: OracleStrength
    oracle_artifact_hash: str | None
    metrics: tuple[MetricResult, ...]
    passed: bool
    error: str | None = None

    def metric(self, name: str) -> MetricResult:
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(f"stage {self.name!r} has no metric {name!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "target_step": self.target_step,
            "oracle_step": self.oracle_step,
            "l_transition": self.l_transition,
            "oracle_strength": self.oracle_strength.value,
            "oracle_artifact_hash": self.oracle_artifact_hash,
            "metrics": [m.to_dict() for m in self.metrics],
            "passed": self.passed,
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StageResult:
        return cls(
            name=data["name"],
            target_step=int(data["target_step"]),
            oracle_step=int(data["oracle_step"]),
            l_transition=data["l_transition"],
            oracle_strength=OracleStrength.coerce(data["oracle_strength"], "oracle_strength"),
            oracle_artifact_hash=data.get("oracle_artifact_hash"),
            metrics=tuple(MetricResult.from_dict(m) for m in data["metrics"]),
            passed=bool(data["passed"]),
            error=data.get("error"),
        )


@dataclasses.dataclass(frozen=True)
class CycleReport:
    """The result of `CycleBenchmark.run_full_cycle`; plain JSON on disk.

    Attributes:
        benchmark: the benchmark's name.
        stages: one `StageResult` per stage, in the benchmark's order.
        created: ISO-8601 UTC time of the run.
        lineage: optional registry information (per-stage oracle status / staleness).
    """

    benchmark: str
    stages: tuple[StageResult, ...]
    created: str
    lineage: Mapping[str, Any] | None = None

    def __hash__(self) -> int:
        return hash(self.to_json())

    @property
    def passed(self) -> bool:
        """Every stage passed."""
        return all(s.passed for s in self.stages)

    def stage(self, name: str) -> StageResult:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(f"report has no stage {name!r}; stages are {[s.name for s in self.stages]}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": _REPORT_FORMAT,
            "version": _REPORT_VERSION,
            "benchmark": self.benchmark,
            "created": self.created,
            "passed": self.passed,
            "stages": [s.to_dict() for s in self.stages],
            "lineage": None if self.lineage is None else dict(self.lineage),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CycleReport:
        if data.get("format") != _REPORT_FORMAT:
            raise ValueError(f"not a cycle report (format {data.get('format')!r})")
        if data.get("version") != _REPORT_VERSION:
            raise ValueError(f"unsupported cycle report version {data.get('version')!r}")
        report = cls(
            benchmark=data["benchmark"],
            stages=tuple(StageResult.from_dict(s) for s in data["stages"]),
            created=data["created"],
            lineage=data.get("lineage"),
        )
        if "passed" in data and bool(data["passed"]) != report.passed:
            raise ValueError("cycle report is inconsistent: 'passed' disagrees with its stages")
        return report

    def to_json(self, indent: int | None = 2) -> str:
        """Strict JSON (non-finite metric values are written as strings)."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> CycleReport:
        return cls.from_dict(json.loads(text))

    def diff(self, other: CycleReport) -> ReportDiff:
        """Changes from this report (old) to ``other`` (new)."""
        return _diff(self, other)

    def __str__(self) -> str:
        rows = [("stage", "metric", "value", "tolerance", "result")]
        for s in self.stages:
            if s.error:
                rows.append((s.name, "-", "-", "-", f"ERROR: {s.error}"))
            for m in s.metrics:
                result = {True: "pass", False: "FAIL", None: "-"}[m.passed]
                tol = "-" if m.tolerance is None else str(m.tolerance)
                rows.append((s.name, m.name, _fmt(m.value), tol, result))
        head = f"cycle report {self.benchmark!r} ({self.created}): "
        return head + ("PASS" if self.passed else "FAIL") + "\n" + _table(rows)


# --------------------------------------------------------------------------- benchmark

Candidate = Mapping[str, Any] | Callable[[], Mapping[str, Any]]


def _evaluate(stage: CycleStageBenchmark, candidate: Any, missing: bool) -> StageResult:
    error = None
    values: Mapping[str, Any] = {}
    if missing:
        error = f"no candidate supplied for stage {stage.name!r}"
    else:
        try:
            values = candidate() if callable(candidate) else candidate
            if not isinstance(values, Mapping):
                raise TypeError(
                    f"candidate must give a mapping of metric name -> float; got "
                    f"{type(values).__name__}"
                )
        except Exception as err:
            error = f"{type(err).__name__}: {err}"
            values = {}

    results = []
    for name in stage.metrics:
        tol = stage.tolerances.get(name)
        if error is not None:
            results.append(MetricResult(name, None, tol, False, "not evaluated: stage error"))
            continue
        if name not in values:
            have = ", ".join(sorted(map(str, values))) or "none"
            reason = f"metric {name!r} missing from the candidate's output (got: {have})"
            results.append(MetricResult(name, None, tol, False, reason))
            continue
        try:
            value = float(values[name])
        except (TypeError, ValueError):
            reason = f"value {values[name]!r} is not a number"
            results.append(MetricResult(name, None, tol, False, reason))
            continue
        if tol is None:
            if math.isnan(value):
                results.append(MetricResult(name, value, None, False, "value is NaN"))
            else:
                results.append(MetricResult(name, value, None, None))
        elif tol.check(value):
            results.append(MetricResult(name, value, tol, True))
        else:
            results.append(MetricResult(name, value, tol, False, f"{value:.6g} is not {tol}"))
    passed = error is None and all(r.passed is not False for r in results)
    return StageResult(
        name=stage.name,
        target_step=stage.target_step,
        oracle_step=stage.oracle_step,
        l_transition=stage.l_transition,
        oracle_strength=stage.oracle_strength,
        oracle_artifact_hash=stage.oracle_artifact_hash,
        metrics=tuple(results),
        passed=passed,
        error=error,
    )


@dataclasses.dataclass(frozen=True)
class CycleBenchmark:
    """A set of stage benchmarks run together.

    Attributes:
        stages: the `CycleStageBenchmark`s, with unique names.
        name: a name for the benchmark (recorded in reports).
    """

    stages: tuple[CycleStageBenchmark, ...]
    name: str = "cycle"

    def __post_init__(self):
        _check_name(self.name, "name")
        if isinstance(self.stages, CycleStageBenchmark) or not isinstance(self.stages, Sequence):
            raise ValueError("stages must be a sequence of CycleStageBenchmark")
        stages = tuple(self.stages)
        if not stages:
            raise ValueError("stages must not be empty")
        for s in stages:
            if not isinstance(s, CycleStageBenchmark):
                raise ValueError(f"stages must hold CycleStageBenchmark; got {type(s)}")
        names = [s.name for s in stages]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"stage names must be unique; repeated: {dupes}")
        object.__setattr__(self, "stages", stages)

    def stage(self, name: str) -> CycleStageBenchmark:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(f"no stage {name!r}; stages are {[s.name for s in self.stages]}")

    def run_full_cycle(
        self, candidates: Mapping[str, Candidate], *, registry: Any = None
    ) -> CycleReport:
        """Evaluate every stage and collect a `CycleReport`.

        Args:
            candidates: stage name -> mapping of metric name -> float, or a zero-argument
                callable returning one. Each callable is called once; an exception it
                raises becomes that stage's ``error`` (the stage fails, the others run).
                A stage without a candidate fails with a clear error.
            registry: an optional `ArtifactRegistry`. For stages with an
                ``oracle_artifact_hash`` the report's ``lineage`` records the oracle's
                status (ok/missing/corrupted), ``replaced_by`` (a newer artifact stored
                under the oracle's name) and ``stale`` (the oracle's own upstream was
                replaced); a missing or corrupted oracle fails the stage.

        Raises:
            ValueError: ``candidates`` names a stage that does not exist.
        """
        if not isinstance(candidates, Mapping):
            raise ValueError("candidates must be a mapping of stage name -> metrics")
        unknown = [k for k in candidates if k not in {s.name for s in self.stages}]
        if unknown:
            raise ValueError(
                f"candidates name unknown stages {unknown}; stages are "
                f"{[s.name for s in self.stages]}"
            )
        results = [
            _evaluate(s, candidates.get(s.name), s.name not in candidates) for s in self.stages
        ]
        lineage = None
        if registry is not None:
            lineage = {"registry": str(getattr(registry, "root", registry)), "stages": {}}
            for i, s in enumerate(self.stages):
                if s.oracle_artifact_hash is None:
                    continue
                info = _oracle_info(registry, s.oracle_artifact_hash)
                lineage["stages"][s.name] = info
                if info["status"] != "ok" and results[i].error is None:
                    results[i] = dataclasses.replace(
                        results[i],
                        passed=False,
                        error=f"oracle artifact {s.oracle_artifact_hash} is {info['status']}",
                    )
        return CycleReport(
            benchmark=self.name,
            stages=tuple(results),
            created=datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds"),
            lineage=lineage,
        )


def _oracle_info(registry: Any, h: str) -> dict[str, Any]:
    try:
        node = registry.lineage(h)
    except ArtifactNotFoundError:
        return {
            "hash": h,
            "status": "missing",
            "name": None,
            "replaced_by": None,
            "stale": None,
            "problems": [],
        }
    return {
        "hash": h,
        "status": node.status,
        "name": node.name,
        "replaced_by": node.replaced_by,
        "stale": registry.stale(h),
        "problems": [f"{p.hash} ({p.status})" for p in node.problems if p is not node],
    }


# --------------------------------------------------------------------------- diffs


def _flip(old: bool | None, new: bool | None) -> str | None:
    if old is True and new is False:
        return "pass->fail"
    if old is False and new is True:
        return "fail->pass"
    return None


@dataclasses.dataclass(frozen=True)
class MetricChange:
    """One metric compared between two reports.

    ``status`` is ``"added"``, ``"removed"``, ``"changed"`` or ``"unchanged"``; ``change``
    is ``new_value - old_value`` when both are numbers.
    """

    stage: str
    metric: str
    status: str
    old_value: float | None
    new_value: float | None
    old_passed: bool | None
    new_passed: bool | None

    @property
    def change(self) -> float | None:
        if self.old_value is None or self.new_value is None:
            return None
        return self.new_value - self.old_value

    @property
    def flip(self) -> str | None:
        """``"pass->fail"``, ``"fail->pass"`` or None."""
        return _flip(self.old_passed, self.new_passed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "metric": self.metric,
            "status": self.status,
            "old_value": _encode_float(self.old_value),
            "new_value": _encode_float(self.new_value),
            "change": _encode_float(self.change),
            "old_passed": self.old_passed,
            "new_passed": self.new_passed,
            "flip": self.flip,
        }


@dataclasses.dataclass(frozen=True)
class StageChange:
    """One stage compared between two reports (``status``: added/removed/common)."""

    stage: str
    status: str
    old_passed: bool | None
    new_passed: bool | None
    old_error: str | None = None
    new_error: str | None = None

    @property
    def flip(self) -> str | None:
        return _flip(self.old_passed, self.new_passed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "status": self.status,
            "old_passed": self.old_passed,
            "new_passed": self.new_passed,
            "old_error": self.old_error,
            "new_error": self.new_error,
            "flip": self.flip,
        }


@dataclasses.dataclass(frozen=True)
class ReportDiff:
    """Differences between an old and a new `CycleReport` (see `CycleReport.diff`)."""

    old_passed: bool
    new_passed: bool
    stages: tuple[StageChange, ...]
    metrics: tuple[MetricChange, ...]

    @property
    def flip(self) -> str | None:
        """Overall pass/fail flip."""
        return _flip(self.old_passed, self.new_passed)

    @property
    def flips(self) -> tuple[MetricChange | StageChange, ...]:
        """Every stage and metric whose pass/fail flipped."""
        return tuple(c for c in (*self.stages, *self.metrics) if c.flip is not None)

    @property
    def regressions(self) -> tuple[MetricChange | StageChange, ...]:
        """Stages and metrics that went from pass to fail."""
        return tuple(c for c in self.flips if c.flip == "pass->fail")

    def to_dict(self) -> dict[str, Any]:
        return {
            "old_passed": self.old_passed,
            "new_passed": self.new_passed,
            "flip": self.flip,
            "stages": [s.to_dict() for s in self.stages],
            "metrics": [m.to_dict() for m in self.metrics],
        }

    def __str__(self) -> str:
        def verdict(p: bool | None) -> str:
            return {True: "pass", False: "FAIL", None: "-"}[p]

        head = f"overall: {verdict(self.old_passed)} -> {verdict(self.new_passed)}"
        rows = [("stage", "metric", "status", "old", "new", "change", "flip")]
        for s in self.stages:
            rows.append(
                (
                    s.stage,
                    "(stage)",
                    s.status,
                    verdict(s.old_passed),
                    verdict(s.new_passed),
                    "",
                    s.flip or "",
                )
            )
            for m in self.metrics:
                if m.stage == s.stage:
                    change = "" if m.change is None else f"{m.change:+.6g}"
                    rows.append(
                        (
                            m.stage,
                            m.metric,
                            m.status,
                            _fmt(m.old_value),
                            _fmt(m.new_value),
                            change,
                            m.flip or "",
                        )
                    )
        return head + "\n" + _table(rows)


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return a == b or (math.isnan(a) and math.isnan(b))


def _diff(old: CycleReport, new: CycleReport) -> ReportDiff:
    old_stages = {s.name: s for s in old.stages}
    new_stages = {s.name: s for s in new.stages}
    order = list(old_stages) + [n for n in new_stages if n not in old_stages]
    stage_changes, metric_changes = [], []
    for name in order:
        o, n = old_stages.get(name), new_stages.get(name)
        status = "removed" if n is None else "added" if o is None else "common"
        stage_changes.append(
            StageChange(
                stage=name,
                status=status,
                old_passed=None if o is None else o.passed,
                new_passed=None if n is None else n.passed,
                old_error=None if o is None else o.error,
                new_error=None if n is None else n.error,
            )
        )
        om = {} if o is None else {m.name: m for m in o.metrics}
        nm = {} if n is None else {m.name: m for m in n.metrics}
        for metric in list(om) + [m for m in nm if m not in om]:
            a, b = om.get(metric), nm.get(metric)
            if a is None:
                mstatus = "added"
            elif b is None:
                mstatus = "removed"
            elif _same(a.value, b.value) and a.passed == b.passed:
                mstatus = "unchanged"
            else:
                mstatus = "changed"
            metric_changes.append(
                MetricChange(
                    stage=name,
                    metric=metric,
                    status=mstatus,
                    old_value=None if a is None else a.value,
                    new_value=None if b is None else b.value,
                    old_passed=None if a is None else a.passed,
                    new_passed=None if b is None else b.passed,
                )
            )
    return ReportDiff(
        old_passed=old.passed,
        new_passed=new.passed,
        stages=tuple(stage_changes),
        metrics=tuple(metric_changes),
    )
