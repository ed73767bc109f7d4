"""``plumax cycle --fast`` end to end in a temporary registry (slow, ~2.5 min).

Must show (issue 9): the cycle report lists every gate with its value; a second run
produces a diff against the first; deleting an artifact's files makes
``registry lineage`` report it missing rather than crash.
"""

import json
import shutil

import pytest

pytestmark = pytest.mark.slow

GATES = {
    "oracle-convergence": ("max_rhat", "min_ess", "divergences"),
    "emulator-accuracy": ("median_rel_l2", "p90_rel_l2", "max_rel_l2"),
    "emulator-jacobian": ("max_jacobian_error", "median_jacobian_error"),
    "emulator-inference": ("agree_fraction", "median_z", "max_z", "max_spread_ratio"),
    "amortized-calibration": ("sbc_p_bonferroni", "tarp_max_deviation"),
    "amortized-inference": ("agree_fraction", "median_z", "max_z", "max_spread_ratio"),
}


def _cycle(plumax_cli, root):
    """``plumax cycle --fast`` through the CLI harness: only ``root`` may change."""
    r = plumax_cli("cycle", "--fast", "--root", root.name, root=root.parent, outputs=[root])
    assert r.exit_code == 0, r.output
    return r


def test_plumax_cycle_fast_report_diff_and_lineage(tmp_path, plumax_cli):
    from plumax_core import ArtifactRegistry, CycleReport

    root = tmp_path / "runs"
    first = _cycle(plumax_cli, root)
    assert "first report in this registry" in first.stdout
    reports = sorted((root / "reports").glob("gaussian-cycle-*.json"))
    assert len(reports) == 1
    report = CycleReport.from_json(reports[0].read_text())
    assert [s.name for s in report.stages] == list(GATES)
    for stage in report.stages:
        assert stage.error is None, stage
        assert tuple(m.name for m in stage.metrics) == GATES[stage.name]
        for m in stage.metrics:
            assert m.value is not None, (stage.name, m.name)
            assert m.name in first.stdout
    # the step-3 gates are decisive at the fast budget; the others are reported as measured
    assert report.stage("emulator-accuracy").passed
    assert report.stage("emulator-jacobian").passed
    assert report.stage("amortized-calibration").metric("sbc_p_bonferroni").value > 0.01

    second = _cycle(plumax_cli, root)
    assert "overall:" in second.stdout and "unchanged" in second.stdout
    diffs = sorted((root / "reports").glob("gaussian-cycle-*-diff.json"))
    assert len(diffs) == 1
    diff = json.loads(diffs[0].read_text())
    # same seed, same budget: every metric is reproduced exactly
    assert diff["metrics"] and all(m["status"] == "unchanged" for m in diff["metrics"])

    reg = ArtifactRegistry(root)
    assert len(reg.list(name="gaussian-cycle-report")) == 2
    # one bank identity (issue 18): the NPE records the content hash of its training bank,
    # which is the hash the registry stored the bank under, so its lineage shows the bank
    import plumax_amortize as pa
    from plumax_core import SimulationBank

    npe = pa.load_npe(reg, "gaussian-npe")
    assert npe.dataset_hash == reg.resolve("gaussian-npe-training-set")
    assert isinstance(reg.load(npe.dataset_hash), SimulationBank)
    assert reg.load("gaussian-emulator").dataset_hash == reg.resolve(
        "gaussian-emulator-training-set"
    )
    shown = plumax_cli(
        "registry",
        "lineage",
        "gaussian-npe",
        "--root",
        "runs",
        root=tmp_path,
        inputs=[p for p in root.rglob("*") if p.is_file()],
    )
    assert shown.exit_code == 0, shown.output
    assert "training: gaussian-npe-training-set" in shown.stdout
    assert "(missing)" not in shown.stdout and "not ok" not in shown.output
    node = reg.lineage("gaussian-cycle-report")
    assert not node.problems
    shutil.rmtree(reg.path("gaussian-emulator").parent)
    inputs = [p for p in root.rglob("*") if p.is_file()]
    r = plumax_cli(
        "registry",
        "lineage",
        "gaussian-cycle-report",
        "--root",
        "runs",
        root=tmp_path,
        inputs=inputs,
    )
    assert r.exit_code == 0, r.output
    assert "gaussian-emulator" in r.stdout and "missing" in r.stdout
    assert "not ok" in r.stderr and "Traceback" not in r.output
