"""``plumax registry``: read-only commands change nothing; ``check [--repair]``."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from plumax._cli import app
from plumax_core import ArtifactLineage, ArtifactRegistry, ModelRole

runner = CliRunner()


def _run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def _snapshot(root: Path) -> dict[str, tuple]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None
            out[str(p.relative_to(root))] = (stat.S_IFMT(st.st_mode), st.st_mtime_ns, digest)
    return out


@pytest.fixture
def runs(tmp_path) -> Path:
    root = tmp_path / "runs"
    reg = ArtifactRegistry(root)
    h = reg.store({"y": np.arange(3.0)}, "observations-scene", ModelRole.BASELINE)
    reg.store(
        {"mean": np.zeros(3)},
        "posterior-scene-laplace",
        ModelRole.ORACLE,
        lineage=ArtifactLineage(parent_hashes=(h,)),
    )
    return root


def test_read_commands_change_nothing(runs):
    before = _snapshot(runs.parent)
    for args in (
        ("registry", "ls", "--root", str(runs)),
        ("registry", "show", "posterior-scene-laplace", "--root", str(runs)),
        ("registry", "lineage", "posterior-scene-laplace", "--root", str(runs)),
        ("registry", "check", "--root", str(runs)),
    ):
        r = _run(*args)
        assert r.exit_code == 0, r.output
    assert _snapshot(runs.parent) == before


@pytest.mark.parametrize("cmd", ["ls", "check"])
def test_not_a_registry_is_an_error_and_nothing_is_created(tmp_path, cmd):
    folder = tmp_path / "papers"
    folder.mkdir()
    (folder / "draft.txt").write_text("mine")
    before = _snapshot(tmp_path)
    for root in (folder, tmp_path / "absent"):
        r = _run("registry", cmd, "--root", str(root))
        assert r.exit_code == 1
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:") and "registry" in lines[0]
    assert _snapshot(tmp_path) == before


def test_check_finds_a_deleted_index_and_repairs_it(runs):
    (runs / "index.jsonl").unlink()
    r = _run("registry", "ls", "--root", str(runs))
    assert r.exit_code == 1 and "check --repair" in r.stderr
    r = _run("registry", "check", "--root", str(runs))
    assert r.exit_code == 1 and "index is missing" in r.stdout and "--repair" in r.stderr
    r = _run("registry", "check", "--root", str(runs), "--repair")
    assert r.exit_code == 0, r.output
    assert "index rebuilt: 2 record(s)" in r.stdout
    r = _run("registry", "ls", "--root", str(runs))
    assert r.exit_code == 0 and "posterior-scene-laplace" in r.stdout and not r.stderr


def test_ls_warns_about_a_torn_index_line(runs):
    path = runs / "index.jsonl"
    path.write_bytes(path.read_bytes()[:-10])
    r = _run("registry", "ls", "--root", str(runs))
    assert r.exit_code == 0 and "observations-scene" in r.stdout
    assert "warning:" in r.stderr and "registry check" in r.stderr


def test_check_reports_a_corrupted_payload_it_cannot_fix(runs):
    reg = ArtifactRegistry(runs, mode="r")
    payload = reg.path("observations-scene")
    payload.write_bytes(payload.read_bytes()[:-1])
    r = _run("registry", "check", "--root", str(runs), "--repair")
    assert r.exit_code == 1
    assert "payload corrupted" in r.stdout and "cannot fix" in r.stderr
    assert payload.is_file()  # reported, not deleted
