"""Output publishing (issue 17, data loss): a command's outputs appear together or not
at all, never over a user's files, with the user's umask; killed runs leave all-old or
all-new outputs (fault injection in a subprocess, 20 kills per publishing path).

The real ``plumax demo --fast`` is killed once in ``tests-integration/test_plumax_demo.py``
(slow); here the publishing step (:mod:`plumax._outputs`) runs on small synthetic outputs.
"""

import contextlib
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from plumax import _outputs
from plumax._outputs import (
    MANIFEST,
    OutputFolderError,
    StagedFolder,
    atomic_write,
    find_leftovers,
    read_manifest,
    verify_folder,
    write_files,
    write_json,
)


@contextlib.contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _publish(target: Path, tag: str, n: int = 3) -> StagedFolder:
    with StagedFolder(target, command="test") as st:
        for i in range(n):
            write_json(st.path / f"part-{i}.json", {"tag": tag, "i": i})
        (st.path / "sub").mkdir()
        write_json(st.path / "sub" / "last.json", {"tag": tag})
    return st


def complete_tag(target: Path) -> str | None:
    """The tag of a complete published folder (every manifest entry present, unchanged,
    nothing else, one tag throughout); None when ``target`` is absent."""
    if not target.exists():
        return None
    assert verify_folder(target) == [], verify_folder(target)
    m = read_manifest(target)
    files = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    assert files == sorted([*m["files"], MANIFEST]), (files, m["files"])
    tags = {json.loads((target / r).read_text())["tag"] for r in m["files"]}
    assert len(tags) == 1, tags
    return tags.pop()


# ------------------------------------------------------------------------------ files


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o027, 0o077])
def test_outputs_honour_the_umask(tmp_path, mask):
    with umask(mask):
        atomic_write(tmp_path / "a.txt", lambda p: p.write_text("a"))
        write_json(tmp_path / "b.json", {"b": 1})
        write_files({tmp_path / "c.txt": lambda p: p.write_text("c")})
        _publish(tmp_path / "out", "x")
    for name in (
        "a.txt",
        "b.json",
        "c.txt",
        "out/part-0.json",
        "out/sub/last.json",
        "out/" + MANIFEST,
    ):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~mask, name
    for name in ("out", "out/sub"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o777 & ~mask, name


def test_atomic_write_leaves_nothing_on_error_and_can_refuse_to_replace(tmp_path):
    (tmp_path / "keep.txt").write_text("old")

    def fail(p: Path):
        p.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "keep.txt", fail)
    with pytest.raises(FileExistsError):
        write_json(tmp_path / "keep.txt", {}, overwrite=False)
    with pytest.raises(RuntimeError):
        write_files(
            {tmp_path / "new.txt": lambda p: p.write_text("x"), tmp_path / "keep.txt": fail}
        )
    assert sorted(os.listdir(tmp_path)) == ["keep.txt"]
    assert (tmp_path / "keep.txt").read_text() == "old"


# ---------------------------------------------------------------------------- folders


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_a_rerun_replaces_the_folder_whole(tmp_path, monkeypatch, exchange):
    if not exchange:
        monkeypatch.setattr(_outputs, "_exchange", lambda a, b: False)
    target = tmp_path / "demo"
    _publish(target, "old", n=5)
    assert complete_tag(target) == "old"
    st = _publish(target, "new", n=2)  # fewer files: none of the old ones may survive
    assert complete_tag(target) == "new" and st.kept is None
    assert sorted(os.listdir(tmp_path)) == ["demo"]
    m = read_manifest(target)
    assert m["run_id"] == st.run_id and m["command"] == "test"
    assert sorted(m["files"]) == ["part-0.json", "part-1.json", "sub/last.json"]


def test_an_empty_folder_is_used(tmp_path):
    (tmp_path / "demo").mkdir()
    _publish(tmp_path / "demo", "new")
    assert complete_tag(tmp_path / "demo") == "new"


def test_missing_parents_are_created_and_removed_again_on_failure(tmp_path):
    with pytest.raises(RuntimeError), StagedFolder(tmp_path / "a" / "b" / "demo", command="t"):
        raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []
    _publish(tmp_path / "a" / "b" / "demo", "new")
    assert complete_tag(tmp_path / "a" / "b" / "demo") == "new"


def test_a_users_folder_is_never_replaced(tmp_path):
    target = tmp_path / "demo"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(OutputFolderError, match="--out .* notes.txt"):
        StagedFolder(target, command="t")
    # a previous run's folder the user added a file to, or edited
    _publish(tmp_path / "run", "old")
    (tmp_path / "run" / "notes.txt").write_text("mine")
    with pytest.raises(OutputFolderError, match=r"notes.txt \(not in the manifest\)"):
        StagedFolder(tmp_path / "run", command="t")
    (tmp_path / "run" / "notes.txt").unlink()
    (tmp_path / "run" / "part-1.json").write_text('{"tag": "edited"}')
    with pytest.raises(OutputFolderError, match=r"part-1.json \(changed since it was written\)"):
        StagedFolder(tmp_path / "run", command="t")
    (tmp_path / "run" / "part-1.json").unlink()  # a subset of the outputs is still ours
    (tmp_path / "run" / "sub" / "extra").mkdir()
    with pytest.raises(OutputFolderError, match=r"sub/extra/ \(not in the manifest\)"):
        StagedFolder(tmp_path / "run", command="t")
    (tmp_path / "run" / "sub" / "extra").rmdir()
    os.symlink("/etc/passwd", tmp_path / "run" / "sub" / "link")
    with pytest.raises(OutputFolderError, match="a link or special file"):
        StagedFolder(tmp_path / "run", command="t")
    (tmp_path / "run" / "sub" / "link").unlink()
    (tmp_path / "run" / MANIFEST).write_text("{not json")
    with pytest.raises(OutputFolderError, match="not valid JSON"):
        StagedFolder(tmp_path / "run", command="t")
    os.symlink("demo", tmp_path / "link")
    with pytest.raises(OutputFolderError, match="symbolic link"):
        StagedFolder(tmp_path / "link", command="t")
    assert sorted(os.listdir(tmp_path)) == ["demo", "link", "run"]
    assert (target / "notes.txt").read_text() == "mine"


def test_a_user_file_that_appears_during_the_swap_survives(tmp_path, monkeypatch):
    target = tmp_path / "demo"
    _publish(target, "old")
    real = _outputs._exchange

    def exchange_then_user_writes(a, b):
        ok = real(a, b)
        (a / "written-meanwhile.txt").write_text("mine")  # `a` now holds the old outputs
        return ok

    monkeypatch.setattr(_outputs, "_exchange", exchange_then_user_writes)
    st = _publish(target, "new")
    assert complete_tag(target) == "new"
    assert st.kept is not None and find_leftovers(target) == [st.kept]
    assert sorted(os.listdir(st.kept)) == ["written-meanwhile.txt"]  # only what we made went


def test_a_user_file_that_appears_during_the_run_stops_the_publishing(tmp_path):
    target = tmp_path / "demo"
    _publish(target, "old")
    with pytest.raises(OutputFolderError, match="kept, complete, in") as info:
        with StagedFolder(target, command="t") as st:
            write_json(st.path / "part-0.json", {"tag": "new"})
            (target / "notes.txt").write_text("mine")  # the user, while the run computes
    assert str(st.path) in str(info.value) and "notes.txt" in str(info.value)
    assert (target / "notes.txt").read_text() == "mine"
    (target / "notes.txt").unlink()
    assert complete_tag(target) == "old" and complete_tag(st.path) == "new"
    assert find_leftovers(target) == [st.path]


def test_an_error_or_ctrl_c_leaves_the_old_folder_and_no_staging(tmp_path):
    target = tmp_path / "demo"
    _publish(target, "old")
    for exc in (RuntimeError("boom"), KeyboardInterrupt()):
        with pytest.raises(type(exc)), StagedFolder(target, command="t") as st:
            write_json(st.path / "part-0.json", {"tag": "new"})
            raise exc
        assert complete_tag(target) == "old"
        assert os.listdir(tmp_path) == ["demo"]


def test_leftovers_are_reported_never_deleted(tmp_path):
    target = tmp_path / "demo"
    stale = tmp_path / f"demo.plumax-staging-{'a' * 32}"
    old = tmp_path / f"demo.plumax-old-{'b' * 32}"
    for p in (stale, old):
        p.mkdir()
        (p / "scene.nc").write_text("half")
    (tmp_path / f"other.plumax-old-{'c' * 32}").mkdir()  # another target's: not listed
    _publish(target, "new")
    assert find_leftovers(target) == [old, stale]
    assert "previous outputs" in _outputs.describe_leftover(old)
    assert "unpublished outputs" in _outputs.describe_leftover(stale)
    assert (stale / "scene.nc").read_text() == "half"


def test_demo_is_published_whole_even_when_interrupted(tmp_path, monkeypatch):
    """Before the fix, an interrupted re-run left the new scene.nc beside the old
    summary.json, report.html and posteriors."""
    import numpy as np
    import xarray as xr

    from plumax import pipelines as pl
    from plumax._demo import run_demo

    target = tmp_path / "demo"
    _publish(target, "old")
    before = {p: p.read_bytes() for p in target.rglob("*") if p.is_file()}

    class FakeScene:
        def to_dataset(self):
            return xr.Dataset({"radiance": (("y", "x"), np.ones((2, 2)))})

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pl, "simulate_radiance", lambda **kw: FakeScene())
    monkeypatch.setattr(pl, "retrieve", interrupted)  # after scene.nc is written
    with pytest.raises(KeyboardInterrupt):
        run_demo(target, seed=1, fast=True)
    assert {p: p.read_bytes() for p in target.rglob("*") if p.is_file()} == before
    assert os.listdir(tmp_path) == ["demo"]
    # a folder with a user's file is refused before any work
    (target / "notes.txt").write_text("mine")
    monkeypatch.setattr(pl, "simulate_radiance", lambda **kw: pytest.fail("ran"))
    with pytest.raises(OutputFolderError, match="notes.txt"):
        run_demo(target, seed=1, fast=True)


# --------------------------------------------------------------------- fault injection

# Drives plumax/_outputs.py (standard library only) in a bare subprocess: writes a few
# small outputs tagged with argv[3] into a StagedFolder and publishes them, with random
# pauses around every rename, unlink, rmdir and exchange. Half the kills come at a random
# time of the whole run, half at a random time after "written" (inside the publishing
# step: manifest, swap, removal of the old outputs).
DRIVER = r"""
import importlib.util, os, random, sys, time

spec = importlib.util.spec_from_file_location("plumax_outputs_driven", sys.argv[1])
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
target, tag, mode, seed = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
rng = random.Random(seed)


def pause():
    time.sleep(rng.uniform(0, 0.003))


def slowed(fn):
    def wrapped(*args, **kwargs):
        pause()
        out = fn(*args, **kwargs)
        pause()
        return out

    return wrapped


m._exchange = slowed(m._exchange) if mode == "exchange" else (lambda a, b: False)
for name in ("rename", "replace", "unlink", "rmdir"):
    setattr(os, name, slowed(getattr(os, name)))
if mode == "die-between-renames":  # the fallback's one window: the target is absent
    rename = os.rename

    def rename_or_die(src, dst):
        if str(dst) == str(m.Path(target).resolve()) and ".plumax-staging-" in str(src):
            os._exit(9)
        rename(src, dst)

    os.rename = rename_or_die
print("ready", flush=True)
with m.StagedFolder(target, command="fault-injection") as st:
    for i in range(6):
        m.write_json(st.path / f"part-{i}.json", {"tag": tag, "i": i})
        pause()
    os.mkdir(st.path / "sub")
    m.write_json(st.path / "sub" / "last.json", {"tag": tag})
    print("written", flush=True)  # publishing starts: manifest, swap, removal of the old
print("done", flush=True)
"""


def _start(target: Path, tag: str, mode: str, seed: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER, _outputs.__file__, str(target), tag, mode, str(seed)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "ready"
    return proc


@pytest.mark.parametrize("mode", ["exchange", "fallback"])
def test_kill_9_while_publishing_leaves_all_old_or_all_new(tmp_path, mode):
    rng = random.Random(17)
    target = tmp_path / "demo"
    _publish(target, "run-0")
    t = time.perf_counter()
    proc = _start(target, "run-1", mode, seed=0)
    assert proc.stdout.readline().strip() == "written"
    t_publish = time.perf_counter()
    assert proc.communicate(timeout=60)[0].strip() == "done" and proc.returncode == 0
    duration, publishing = time.perf_counter() - t, time.perf_counter() - t_publish
    assert complete_tag(target) == "run-1"
    outcomes = {"old": 0, "new": 0, "absent": 0}
    killed = 0
    for k in range(2, 22):
        old = complete_tag(target)
        new = f"run-{k}"
        proc = _start(target, new, mode, seed=k)
        if k % 2:
            assert proc.stdout.readline().strip() == "written"
            time.sleep(rng.uniform(0.0, publishing))
        else:
            time.sleep(rng.uniform(0.0, duration))
        proc.kill()  # SIGKILL: no clean-up code runs
        killed += "done" not in proc.communicate(timeout=60)[0]
        now = complete_tag(target)  # asserts the folder is complete and unmixed
        leftovers = find_leftovers(target)
        # nothing else appeared beside the target
        assert sorted(os.listdir(tmp_path)) == sorted(
            ["demo"] * (now is not None) + [p.name for p in leftovers]
        )
        if now is None:
            # only between the fallback's two renames: the previous outputs are whole
            # under their clear name, the new ones whole in staging
            assert mode == "fallback" and old is not None
            (olds,) = (p for p in leftovers if ".plumax-old-" in p.name)
            assert complete_tag(olds) == old
            outcomes["absent"] += 1
            olds.rename(target)  # the user's recovery: the previous outputs back in place
            leftovers = [p for p in leftovers if p != olds]
        else:
            assert now in (old, new), (now, old, new)
            outcomes["old" if now == old else "new"] += 1
        for p in leftovers:  # the user clears what the report named
            for q in sorted(p.rglob("*"), reverse=True):
                q.rmdir() if q.is_dir() else q.unlink()
            p.rmdir()
    assert killed >= 5, outcomes  # most kills land before the run finished
    assert outcomes["old"] >= 1 and outcomes["new"] >= 1, outcomes


def test_a_run_killed_between_the_fallback_renames_is_recoverable(tmp_path):
    target = tmp_path / "demo"
    _publish(target, "old")
    proc = _start(target, "new", "die-between-renames", seed=1)
    proc.communicate(timeout=60)
    assert proc.returncode == 9 and not target.exists()
    staging, old = (
        next(p for p in find_leftovers(target) if kind in p.name)
        for kind in (".plumax-staging-", ".plumax-old-")
    )
    assert sorted(os.listdir(tmp_path)) == sorted([staging.name, old.name])
    assert complete_tag(old) == "old" and complete_tag(staging) == "new"
    _publish(target, "next")  # the next run publishes; the leftovers stay, reported
    assert complete_tag(target) == "next" and find_leftovers(target) == sorted([staging, old])
