"""Cycle benchmark contracts: stages, tolerances, reports, diffs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from plumax_core._cycle import (
    CycleBenchmark,
    CycleReport,
    CycleStageBenchmark,
    OracleStrength,
    ReportDiff,
    Tolerance,
)
from plumax_core._registry import ArtifactRegistry, ModelRole


def _stage(name="emulator", **overrides):
    kwargs = dict(
        name=name,
        target_step=3,
        oracle_step=2,
        l_transition="L2->L4",
        oracle_strength=OracleStrength.SAMPLER,
        metrics=("rmse", "coverage", "time_s"),
        tolerances={"rmse": Tolerance(max=0.05), "coverage": Tolerance(min=0.9, max=1.0)},
    )
    kwargs.update(overrides)
    return CycleStageBenchmark(**kwargs)


def _bench():
    return CycleBenchmark(
        [
            _stage(),
            _stage(
                "amortized",
                target_step=5,
                oracle_step=4,
                l_transition="L1 -> L4",
                oracle_strength="laplace",
                metrics=("mean_z",),
                tolerances={"mean_z": {"max": 1.0}},
            ),
        ],
        name="tier1",
    )


GOOD = {
    "emulator": {"rmse": 0.01, "coverage": 0.95, "time_s": 3.0},
    "amortized": lambda: {"mean_z": np.float32(0.5)},
}


# --------------------------------------------------------------------------- contracts


def test_oracle_strength_order():
    assert list(OracleStrength) == [
        OracleStrength.EXACT,
        OracleStrength.SAMPLER,
        OracleStrength.LAPLACE,
        OracleStrength.POINT,
    ]
    assert [s.rank for s in OracleStrength] == [0, 1, 2, 3]
    assert OracleStrength.EXACT.at_least("laplace")
    assert not OracleStrength.POINT.at_least(OracleStrength.LAPLACE)
    assert OracleStrength("NUTS".replace("NUTS", "SAMPLER")) is OracleStrength.SAMPLER
    assert OracleStrength.__doc__ and "closed form" in OracleStrength.__doc__


def test_tolerance():
    assert Tolerance(max=1.0).check(1.0) and not Tolerance(max=1.0).check(1.0001)
    assert Tolerance(min=0.9).check(0.95) and not Tolerance(min=0.9).check(0.8)
    assert not Tolerance(max=1.0).check(math.nan)
    assert str(Tolerance(min=0.9, max=1.0)) == "in [0.9, 1]"
    assert Tolerance.from_dict(Tolerance(max=2).to_dict()) == Tolerance(max=2.0)
    with pytest.raises(ValueError, match="at least one"):
        Tolerance()
    with pytest.raises(ValueError, match="min"):
        Tolerance(min=2.0, max=1.0)
    with pytest.raises(ValueError, match="max"):
        Tolerance(max=math.inf)
    with pytest.raises(ValueError, match="max"):
        Tolerance(max="0.1")


def test_stage_normalises_and_round_trips():
    s = _bench().stages[1]
    assert s.l_transition == "L1->L4"
    assert s.oracle_strength is OracleStrength.LAPLACE
    assert s.tolerances == {"mean_z": Tolerance(max=1.0)}
    assert CycleStageBenchmark.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    assert hash(s) == hash(CycleStageBenchmark.from_dict(s.to_dict()))


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"target_step": 2}, "oracle_step"),
        ({"target_step": 7}, "target_step"),
        ({"oracle_step": 0}, "oracle_step"),
        ({"target_step": 3.0}, "target_step"),
        ({"target_step": True}, "target_step"),
        ({"l_transition": "L2-L4"}, "l_transition"),
        ({"l_transition": "step2->step4"}, "l_transition"),
        ({"metrics": ()}, "metrics"),
        ({"metrics": "rmse"}, "metrics"),
        ({"metrics": ("rmse", "rmse")}, "unique"),
        ({"metrics": ("rmse", "")}, "metrics"),
        ({"tolerances": {"bias": Tolerance(max=1.0)}}, "bias"),
        ({"tolerances": {"rmse": 0.05}}, "tolerances"),
        ({"oracle_strength": "guess"}, "oracle_strength"),
        ({"oracle_artifact_hash": "abc"}, "oracle_artifact_hash"),
        ({"name": ""}, "name"),
    ],
)
def test_stage_bad_inputs(overrides, match):
    kwargs = {"tolerances": {"rmse": Tolerance(max=0.05)}, **overrides}
    with pytest.raises(ValueError, match=match):
        _stage(**kwargs)


def test_benchmark_bad_inputs():
    with pytest.raises(ValueError, match="unique"):
        CycleBenchmark([_stage(), _stage()])
    with pytest.raises(ValueError, match="empty"):
        CycleBenchmark([])
    with pytest.raises(ValueError, match="CycleStageBenchmark"):
        CycleBenchmark([{"name": "x"}])
    with pytest.raises(ValueError, match="unknown stages"):
        _bench().run_full_cycle({**GOOD, "emulatr": {}})


# --------------------------------------------------------------------------- running


def test_all_pass():
    report = _bench().run_full_cycle(GOOD)
    assert report.passed
    emu = report.stage("emulator")
    assert emu.passed and emu.error is None
    assert emu.metric("rmse").passed is True and emu.metric("rmse").value == 0.01
    assert emu.metric("time_s").passed is None  # reported, not gated
    assert report.stage("amortized").metric("mean_z").value == 0.5
    assert "PASS" in str(report)


def test_failures_missing_metrics_and_errors_are_reported():
    calls = []

    def boom():
        calls.append(1)
        raise RuntimeError("flow training diverged")

    report = _bench().run_full_cycle(
        {"emulator": {"rmse": 0.2, "coverage": 0.95}, "amortized": boom}
    )
    assert not report.passed and calls == [1]
    emu = report.stage("emulator")
    assert not emu.passed
    rmse = emu.metric("rmse")
    assert rmse.passed is False and "0.2" in rmse.reason and "0.05" in rmse.reason
    missing = emu.metric("time_s")
    assert missing.passed is False and "missing" in missing.reason
    amo = report.stage("amortized")
    assert not amo.passed and "RuntimeError: flow training diverged" == amo.error
    assert "ERROR" in str(report)


def test_missing_candidate_and_bad_values():
    report = _bench().run_full_cycle(
        {"emulator": {"rmse": "fast", "coverage": math.nan, "time_s": 1.0}}
    )
    emu = report.stage("emulator")
    assert emu.metric("rmse").passed is False and "not a number" in emu.metric("rmse").reason
    assert emu.metric("coverage").passed is False
    amo = report.stage("amortized")
    assert not amo.passed and "no candidate" in amo.error
    report2 = _bench().run_full_cycle({**GOOD, "amortized": lambda: [0.1]})
    assert "mapping" in report2.stage("amortized").error


# --------------------------------------------------------------------------- reports


def test_report_json_round_trip():
    report = _bench().run_full_cycle(
        {"emulator": {"rmse": 0.1 + 0.2, "coverage": math.nan, "time_s": math.inf}}
    )
    text = report.to_json()
    json.loads(text)  # strict JSON
    assert "NaN" not in text and "Infinity" not in text
    back = CycleReport.from_json(text)
    assert back == report
    assert back.to_json() == text
    assert CycleReport.from_dict(report.to_dict()) == report
    assert back.stage("emulator").metric("rmse").value == 0.1 + 0.2
    assert math.isinf(back.stage("emulator").metric("time_s").value)
    assert back.created == report.created and back.passed == report.passed


def test_report_from_dict_checks():
    data = _bench().run_full_cycle(GOOD).to_dict()
    with pytest.raises(ValueError, match="inconsistent"):
        CycleReport.from_dict({**data, "passed": False})
    with pytest.raises(ValueError, match="format"):
        CycleReport.from_dict({**data, "format": "other"})


def test_diff_shows_flip():
    old = _bench().run_full_cycle(GOOD)
    new = _bench().run_full_cycle(
        {**GOOD, "emulator": {"rmse": 0.08, "coverage": 0.95, "time_s": 1.5}}
    )
    diff = old.diff(new)
    assert isinstance(diff, ReportDiff)
    assert diff.flip == "pass->fail"
    rmse = next(m for m in diff.metrics if m.metric == "rmse")
    assert rmse.old_value == 0.01 and rmse.new_value == 0.08
    assert rmse.change == pytest.approx(0.07) and rmse.flip == "pass->fail"
    assert rmse.status == "changed"
    cov = next(m for m in diff.metrics if m.metric == "coverage")
    assert cov.status == "unchanged" and cov.flip is None
    time_s = next(m for m in diff.metrics if m.metric == "time_s")
    assert time_s.flip is None and time_s.change == -1.5
    assert {c.flip for c in diff.regressions} == {"pass->fail"}
    assert len(diff.regressions) == 2  # the rmse metric and the emulator stage
    text = str(diff)
    assert "pass->fail" in text and "rmse" in text and "+0.07" in text
    json.dumps(diff.to_dict())
    assert new.diff(old).flip == "fail->pass"


def test_diff_added_and_removed():
    old = _bench().run_full_cycle(GOOD)
    other = CycleBenchmark(
        [
            _stage(metrics=("rmse", "coverage", "bias"), tolerances={"rmse": Tolerance(max=1)}),
            _stage("pod", target_step=6, oracle_step=2, metrics=("q50",), tolerances={}),
        ]
    )
    new = other.run_full_cycle(
        {"emulator": {"rmse": 0.01, "coverage": 0.9, "bias": 0.0}, "pod": {"q50": 1.0}}
    )
    diff = old.diff(new)
    stages = {s.stage: s.status for s in diff.stages}
    assert stages == {"emulator": "common", "amortized": "removed", "pod": "added"}
    metrics = {(m.stage, m.metric): m.status for m in diff.metrics}
    assert metrics[("emulator", "time_s")] == "removed"
    assert metrics[("emulator", "bias")] == "added"
    assert metrics[("pod", "q50")] == "added"
    assert metrics[("amortized", "mean_z")] == "removed"
    assert "removed" in str(diff) and "added" in str(diff)


def test_registry_lineage_in_report(tmp_path):
    reg = ArtifactRegistry(tmp_path / "reg")
    oracle = reg.store({"x": np.ones(3)}, "oracle", ModelRole.ORACLE)
    bench = CycleBenchmark([_stage(oracle_artifact_hash=oracle)])
    good = {"emulator": GOOD["emulator"]}
    report = bench.run_full_cycle(good, registry=reg)
    info = report.lineage["stages"]["emulator"]
    assert info["status"] == "ok" and info["name"] == "oracle"
    assert info["stale"] is False and info["replaced_by"] is None
    assert report.passed
    assert CycleReport.from_json(report.to_json()) == report

    newer = reg.store({"x": np.zeros(3)}, "oracle", ModelRole.ORACLE)
    info = bench.run_full_cycle(good, registry=reg).lineage["stages"]["emulator"]
    assert info["replaced_by"] == newer  # the benchmark points at a superseded oracle

    (tmp_path / "reg" / "objects" / oracle / "payload.bin").write_bytes(b"garbage")
    broken = bench.run_full_cycle(good, registry=reg)
    assert not broken.passed and "corrupted" in broken.stage("emulator").error
