"""ArtifactRegistry safety: read-only use changes nothing, only its own files are deleted,
links are never followed to delete, outputs honour the umask, version-1 registries migrate."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import numpy as np
import pytest

from plumax_core import (
    ArtifactLineage,
    ArtifactNotFoundError,
    ArtifactRegistry,
    ModelRole,
    NotARegistryError,
    ReadOnlyRegistryError,
)
from plumax_core._serialise import serialise


def _obj(i: float = 0.0):
    return {"w": np.arange(6.0) + i}


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under ``root`` (links not followed): type, mode, size, mtime, content hash."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            digest = None
            if stat.S_ISREG(st.st_mode):
                digest = hashlib.sha256(p.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                digest = os.readlink(p)
            out[str(p.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns, digest)
    return out


@pytest.fixture
def filled(tmp_path) -> Path:
    """A registry with a small lineage chain."""
    root = tmp_path / "reg"
    reg = ArtifactRegistry(root)
    a = reg.store(_obj(0), "oracle", ModelRole.ORACLE)
    reg.store(_obj(1), "emulator", "emulator", lineage=ArtifactLineage(oracle_hash=a))
    return root


# --------------------------------------------------------------------------- read-only use


def _read_everything(root: Path) -> None:
    reg = ArtifactRegistry(root, mode="r")
    records = reg.list()
    assert [r.name for r in records] == ["oracle", "emulator"]
    assert reg.info("emulator").version == 1
    assert reg.verify("emulator") == "ok"
    assert reg.lineage("emulator").parents[0].name == "oracle"
    assert not reg.stale("emulator")
    np.testing.assert_array_equal(reg.load("emulator")["w"], _obj(1)["w"])
    assert reg.check().ok
    with pytest.raises(ReadOnlyRegistryError, match="read-only"):
        reg.store(_obj(2), "new", "baseline")
    with pytest.raises(ReadOnlyRegistryError):
        reg.check(repair=True)


def test_reading_changes_nothing(filled):
    shutil.rmtree(filled / "tmp")  # even a missing tmp/ is not recreated by readers
    (filled / "registry.lock").unlink()
    before = snapshot(filled)
    _read_everything(filled)
    ArtifactRegistry(filled)  # opening for writing creates nothing either
    assert snapshot(filled) == before


@contextlib.contextmanager
def _read_only_folder(path: Path):
    """Make ``path`` read-only for this process: permissions when not root, else a
    read-only bind mount (root ignores permissions); skip when neither is possible."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [path, *path.rglob("*")]}
        for p in modes:
            p.chmod(modes[p] & ~0o222)
        try:
            yield
        finally:
            for p, m in modes.items():
                p.chmod(m)
        return
    cmd = ["mount", "--bind", "-o", "ro", str(path), str(path)]
    if shutil.which("mount") is None or subprocess.run(cmd, capture_output=True).returncode:
        pytest.skip("running as root without permission to make a read-only mount")
    try:
        yield
    finally:
        subprocess.run(["umount", str(path)], check=True)


def test_reads_work_on_a_read_only_folder(filled):
    with _read_only_folder(filled):
        with pytest.raises(OSError):  # the folder really is read-only
            (filled / "probe").write_text("x")
        _read_everything(filled)


def test_read_mode_refuses_what_is_not_a_registry(tmp_path):
    with pytest.raises(NotARegistryError, match="no such folder"):
        ArtifactRegistry(tmp_path / "absent", mode="r")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "scene.nc").write_bytes(b"netcdf")
    with pytest.raises(NotARegistryError, match="not a plumax artifact registry"):
        ArtifactRegistry(tmp_path / "data", mode="r")
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["scene.nc"]
    with pytest.raises(ValueError, match="mode"):
        ArtifactRegistry(tmp_path, mode="w")  # type: ignore[arg-type]


def test_write_mode_refuses_a_folder_of_other_files(tmp_path):
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "notes.txt").write_text("mine")
    with pytest.raises(NotARegistryError, match="other files"):
        ArtifactRegistry(tmp_path / "project")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotARegistryError, match="not a folder"):
        ArtifactRegistry(tmp_path / "file")
    # An empty folder, or one that does not exist yet, becomes a registry at the first store.
    empty = tmp_path / "empty"
    empty.mkdir()
    reg = ArtifactRegistry(empty)
    assert list(empty.iterdir()) == [] and reg.list() == ()
    reg.store(_obj(), "a", "baseline")
    assert (empty / "plumax-registry.json").is_file()
    with pytest.raises(ArtifactNotFoundError):
        ArtifactRegistry(tmp_path / "new").load("a")
    assert not (tmp_path / "new").exists()


# --------------------------------------------------------------------------- links and debris


def test_tmp_link_is_never_followed_to_delete(filled, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / ".plumax-store-0123456789abcdef0123456789abcdef").mkdir()  # staging-like name
    (victim / "thesis.tex").write_text("precious")
    before = snapshot(victim)
    shutil.rmtree(filled / "tmp")
    (filled / "tmp").symlink_to(victim)
    reg = ArtifactRegistry(filled)
    assert [r.name for r in reg.list()] == ["oracle", "emulator"]
    with pytest.raises(NotARegistryError, match="tmp/"):
        reg.store(_obj(5), "x", "baseline")
    with pytest.raises(NotARegistryError, match="tmp/"):
        reg.check(repair=True)
    report = reg.check()
    assert report.debris == () and not report.ok and not report.repairable
    assert any(p.startswith("tmp/ is a link") for p in report.problems)
    assert snapshot(victim) == before


def test_staging_link_inside_tmp_is_not_removed(filled, tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    (target / "data.bin").write_bytes(b"x" * 10)
    link = filled / "tmp" / ".plumax-store-0123456789abcdef0123456789abcdef"
    link.symlink_to(target)
    ArtifactRegistry(filled).store(_obj(7), "later", "baseline")
    assert link.is_symlink() and (target / "data.bin").read_bytes() == b"x" * 10


def test_object_link_is_refused_not_replaced(tmp_path):
    reg = ArtifactRegistry(tmp_path / "reg")
    reg.store(_obj(0), "a", "baseline")
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "payload.bin").write_bytes(b"user data")
    import hashlib as _h

    h = _h.sha256(serialise(_obj(1))).hexdigest()
    (reg.root / "objects" / h).symlink_to(other)
    with pytest.raises(ValueError, match="link or a file"):
        reg.store(_obj(1), "b", "baseline")
    assert (other / "payload.bin").read_bytes() == b"user data"


# --------------------------------------------------------------------------- umask


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_files_honour_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        reg = ArtifactRegistry(tmp_path / "reg")
        h = reg.store(_obj(), "a", "baseline")
        reg.store(_obj(), "b", "baseline")  # a record file beside an existing object
    finally:
        os.umask(old)
    root = tmp_path / "reg"
    paths = [p for p in root.rglob("*") if not p.is_symlink()]
    assert any(p.parent.name == "records" for p in paths)
    for p in paths:
        want = (0o777 if p.is_dir() else 0o666) & ~umask
        assert stat.S_IMODE(p.stat().st_mode) == want, (p, oct(p.stat().st_mode))
    assert (root / "objects" / h / "payload.bin").is_file()


# --------------------------------------------------------------------------- version 1


def _make_v1(root: Path) -> list[str]:
    """A version-1 registry as the previous release wrote it (index.json, no records/)."""
    (root / "objects").mkdir(parents=True)
    (root / "tmp").mkdir()
    (root / "registry.lock").touch()
    (root / "tmp" / "store-ab12cd34").mkdir()  # its staging debris
    records, hashes = [], []
    for i, name in enumerate(["bank", "bank", "copy"]):
        data = serialise(_obj(min(i, 1)))
        h = hashlib.sha256(data).hexdigest()
        rec = {
            "name": name,
            "hash": h,
            "role": "baseline",
            "created": f"2026-01-0{i + 1}T00:00:00.000000+00:00",
            "tags": {},
            "lineage": ArtifactLineage().to_dict(),
            "size": len(data),
            "version": 1 if name == "copy" else i + 1,
        }
        records.append(rec)
        hashes.append(h)
        obj = root / "objects" / h
        if not obj.exists():
            obj.mkdir()
            (obj / "payload.bin").write_bytes(data)
            meta = {"hash": h, "size": len(data), "first_record": rec}
            (obj / "meta.json").write_text(json.dumps(meta))
    index = {"format": "plumax-artifact-index", "version": 1, "records": records}
    (root / "index.json").write_text(json.dumps(index))
    return hashes


def test_version_1_registry_is_read_then_migrated(tmp_path):
    root = tmp_path / "v1"
    hashes = _make_v1(root)
    before = snapshot(root)
    reg = ArtifactRegistry(root, mode="r")
    assert [(r.name, r.version) for r in reg.list()] == [("bank", 1), ("bank", 2), ("copy", 1)]
    assert reg.resolve("bank") == hashes[1] and reg.check().ok is False  # v1 debris
    assert snapshot(root) == before
    writer = ArtifactRegistry(root)
    writer.store(_obj(9), "new", "oracle")
    assert not (root / "index.json").exists() and (root / "plumax-registry.json").is_file()
    assert not (root / "tmp" / "store-ab12cd34").exists()
    names = [(r.name, r.version) for r in ArtifactRegistry(root, mode="r").list()]
    assert names == [("bank", 1), ("bank", 2), ("copy", 1), ("new", 1)]
    # The migration kept every record beside its object, so a rebuild loses none.
    (root / "index.jsonl").unlink()
    report = ArtifactRegistry(root).check(repair=True)
    assert report.ok and report.records == 4, str(report)
    assert [(r.name, r.version) for r in ArtifactRegistry(root, mode="r").list()] == names
