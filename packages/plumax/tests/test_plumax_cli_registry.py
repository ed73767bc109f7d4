"""``plumax registry``: read-only commands change nothing; ``check [--repair]``.

Every command runs through the CLI harness (``plumax_cli`` in ``conftest.py``): inputs
unchanged, nothing created or removed outside the declared outputs. The read-only
commands are also checked with modification times (nothing rewritten, even unchanged).
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from plumax_core import ArtifactLineage, ArtifactRegistry, ModelRole


def _snapshot(root: Path) -> dict[str, tuple]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None
            out[str(p.relative_to(root))] = (stat.S_IFMT(st.st_mode), st.st_mtime_ns, digest)
    return out


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


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


def test_read_commands_change_nothing(runs, plumax_cli):
    before = _snapshot(runs.parent)
    for args in (
        ("registry", "ls", "--root", "runs"),
        ("registry", "show", "posterior-scene-laplace", "--root", "runs"),
        ("registry", "lineage", "posterior-scene-laplace", "--root", "runs"),
        ("registry", "check", "--root", "runs"),
    ):
        r = plumax_cli(*args, root=runs.parent, inputs=_files(runs))
        assert r.exit_code == 0, r.output
    assert _snapshot(runs.parent) == before


@pytest.mark.parametrize("cmd", ["ls", "check"])
def test_not_a_registry_is_an_error_and_nothing_is_created(tmp_path, cmd, plumax_cli):
    folder = tmp_path / "papers"
    folder.mkdir()
    (folder / "draft.txt").write_text("mine")
    before = _snapshot(tmp_path)
    for root in ("papers", "absent"):
        r = plumax_cli("registry", cmd, "--root", root, root=tmp_path, inputs=["papers/draft.txt"])
        assert r.exit_code == 1
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:") and "registry" in lines[0]
    assert _snapshot(tmp_path) == before


def test_check_finds_a_deleted_index_and_repairs_it(runs, plumax_cli):
    (runs / "index.jsonl").unlink()
    root = runs.parent
    r = plumax_cli("registry", "ls", "--root", "runs", root=root, inputs=_files(runs))
    assert r.exit_code == 1 and "check --repair" in r.stderr
    r = plumax_cli("registry", "check", "--root", "runs", root=root, inputs=_files(runs))
    assert r.exit_code == 1 and "index is missing" in r.stdout and "--repair" in r.stderr
    r = plumax_cli("registry", "check", "--root", "runs", "--repair", root=root, outputs=["runs"])
    assert r.exit_code == 0, r.output
    assert "index rebuilt: 2 record(s)" in r.stdout
    r = plumax_cli("registry", "ls", "--root", "runs", root=root, inputs=_files(runs))
    assert r.exit_code == 0 and "posterior-scene-laplace" in r.stdout and not r.stderr


def test_ls_warns_about_a_torn_index_line(runs, plumax_cli):
    path = runs / "index.jsonl"
    path.write_bytes(path.read_bytes()[:-10])
    r = plumax_cli("registry", "ls", "--root", "runs", root=runs.parent, inputs=_files(runs))
    assert r.exit_code == 0 and "observations-scene" in r.stdout
    assert "warning:" in r.stderr and "registry check" in r.stderr


def test_check_reports_a_corrupted_payload_it_cannot_fix(runs, plumax_cli):
    reg = ArtifactRegistry(runs, mode="r")
    payload = reg.path("observations-scene")
    payload.write_bytes(payload.read_bytes()[:-1])
    args = ("registry", "check", "--root", "runs", "--repair")
    r = plumax_cli(*args, root=runs.parent, inputs=[payload], outputs=["runs"])
    assert r.exit_code == 1
    assert "payload corrupted" in r.stdout and "cannot fix" in r.stderr
    assert payload.is_file()  # reported, not deleted
