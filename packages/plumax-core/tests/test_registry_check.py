"""ArtifactRegistry.check: every kind of damage is found, and a repair rebuilds the index
from the objects' own records without touching what is not the registry's."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from plumax_core import ArtifactLineage, ArtifactRegistry, ModelRole, RegistryCheck


def _obj(i: float):
    return {"w": np.arange(4.0) + i}


def _fill(root: Path, n: int = 5) -> list[tuple]:
    """Stores with repeated names (versions) and lineage; returns the records' keys."""
    reg = ArtifactRegistry(root)
    prev = None
    for i in range(n):
        lineage = ArtifactLineage(parent_hashes=(prev,) if prev else ())
        prev = reg.store(_obj(i), f"art-{i % 3}", ModelRole.BASELINE, lineage=lineage)
    reg.store(_obj(0), "alias", "production")  # a second record of an existing object
    return [r.key for r in reg.list()]


def _keys(root: Path) -> list[tuple]:
    return [r.key for r in ArtifactRegistry(root, mode="r").list()]


@pytest.fixture
def root(tmp_path) -> Path:
    return tmp_path / "reg"


def test_healthy_registry_checks_ok(root):
    _fill(root)
    (root / "reports").mkdir()  # a folder of the user's beside the registry's own
    report = ArtifactRegistry(root, mode="r").check()
    assert report.ok and report.repairable and report.records == 6 and report.objects == 5
    assert report.foreign == ("reports",)
    json.dumps(report.to_dict())
    assert "ok" in str(report)


def test_deleted_index_is_rebuilt_from_the_objects(root):
    keys = _fill(root)
    (root / "index.jsonl").unlink()
    report = ArtifactRegistry(root, mode="r").check()
    assert report.index == "missing" and not report.ok and report.repairable
    assert len(report.unindexed) == 6
    fixed = ArtifactRegistry(root).check(repair=True)
    assert fixed.ok and fixed.repaired and "index rebuilt" in fixed.repaired[0]
    assert _keys(root) == keys
    reg = ArtifactRegistry(root, mode="r")
    assert reg.resolve("art-0") == reg.list(name="art-0")[-1].hash
    assert reg.lineage("art-1").parents[0].status == "ok"


@pytest.mark.parametrize("cut", [1, 37, -1], ids=["first-byte", "mid-line", "last-byte"])
def test_truncated_index_keeps_working_and_is_repaired(root, cut):
    keys = _fill(root)
    path = root / "index.jsonl"
    data = path.read_bytes()
    path.write_bytes(data[: cut % len(data)])
    reader = ArtifactRegistry(root, mode="r")
    survivors = reader.list()  # no error: the torn last line is ignored
    assert [r.key for r in survivors] == keys[: len(survivors)] and len(survivors) < len(keys)
    report = reader.check()
    assert not report.ok and report.repairable
    assert report.torn_bytes > 0 or report.unindexed
    assert ArtifactRegistry(root).check(repair=True).ok
    assert _keys(root) == keys


def test_first_store_killed_before_its_index_line(root):
    """The journal exists (empty) from the layout's creation, so an object renamed into
    place by a store that died before appending reads as "not indexed", not as a
    registry whose index was deleted."""
    reg = ArtifactRegistry(root)
    reg.store(_obj(0), "first", "baseline")
    (root / "index.jsonl").write_bytes(b"")  # the state such a kill leaves
    reader = ArtifactRegistry(root, mode="r")
    assert reader.list() == ()
    report = reader.check()
    assert [r.name for r in report.unindexed] == ["first"] and report.repairable
    assert ArtifactRegistry(root).check(repair=True).ok
    assert [r.name for r in ArtifactRegistry(root, mode="r").list()] == ["first"]


def test_edited_index_line_is_an_error_until_repaired(root):
    keys = _fill(root)
    path = root / "index.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    lines[2] = b'{"name": 3}\n'
    path.write_bytes(b"".join(lines))
    with pytest.raises(ValueError, match="line 3"):
        ArtifactRegistry(root, mode="r").list()
    report = ArtifactRegistry(root, mode="r").check()
    assert report.bad_lines and report.bad_lines[0][0] == 3 and report.repairable
    assert ArtifactRegistry(root).check(repair=True).ok
    assert _keys(root) == keys


def test_lost_payloads_are_reported_never_deleted(root, tmp_path):
    _fill(root)
    reg = ArtifactRegistry(root)
    bad = reg.resolve("art-1")  # _obj(4), the second version of art-1
    payload = root / "objects" / bad / "payload.bin"
    payload.write_bytes(payload.read_bytes()[:-3])
    gone = reg.resolve("art-2")
    shutil.rmtree(root / "objects" / gone)
    report = reg.check(repair=True)
    assert report.corrupted == (bad,) and report.missing == (gone,)
    assert not report.ok and not report.repairable
    assert payload.is_file()  # the damaged bytes are the user's evidence: kept
    assert any("payload corrupted" in p for p in report.problems)
    # Storing the same object again restores the good bytes.
    reg.store(_obj(4), "art-1", ModelRole.BASELINE, lineage=reg.info("art-1").lineage)
    assert bad not in reg.check().corrupted


def test_orphan_and_foreign_entries(root):
    _fill(root)
    h = ArtifactRegistry(root).resolve("art-0")
    (root / "objects" / h / "meta.json").write_text("{")
    for f in (root / "objects" / h / "records").iterdir():
        f.unlink()
    (root / "objects" / "README").write_text("user note")
    (root / "index.jsonl").unlink()
    report = ArtifactRegistry(root).check(repair=True)
    assert h in report.orphans and not report.repairable
    assert "objects/README" in report.foreign
    assert (root / "objects" / "README").read_text() == "user note"


def test_check_of_empty_or_absent_registry(tmp_path):
    assert ArtifactRegistry(tmp_path / "nothing").check().index == "empty"
    (tmp_path / "empty").mkdir()
    report = ArtifactRegistry(tmp_path / "empty").check()
    assert isinstance(report, RegistryCheck) and report.ok and report.records == 0


_DAMAGE = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0.0, 1.0)),
    st.tuples(st.just("garbage"), st.integers(0, 100), st.binary(min_size=1, max_size=30)),
    st.tuples(st.just("delete"), st.just(0)),
    st.tuples(st.just("drop-line"), st.integers(0, 100)),
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(n=st.integers(1, 6), damage=_DAMAGE)
def test_any_index_damage_is_repaired_to_the_same_records(tmp_path_factory, n, damage):
    root = tmp_path_factory.mktemp("prop") / "reg"
    keys = _fill(root, n)
    path = root / "index.jsonl"
    data = path.read_bytes()
    lines = data.splitlines(keepends=True)
    kind = damage[0]
    if kind == "truncate":
        path.write_bytes(data[: int(damage[1] * len(data))])
    elif kind == "garbage":
        i = damage[1] % len(lines)
        lines[i] = damage[2].replace(b"\n", b" ") + b"\n"
        path.write_bytes(b"".join(lines))
    elif kind == "delete":
        path.unlink()
    else:
        del lines[damage[1] % len(lines)]
        path.write_bytes(b"".join(lines))
    report = ArtifactRegistry(root).check(repair=True)
    assert report.ok, str(report)
    assert _keys(root) == keys
    assert ArtifactRegistry(root).check(repair=True).repaired == ()  # idempotent
