"""ArtifactRegistry: content addressing, atomic writes, corruption, lineage, staleness."""

from __future__ import annotations

import concurrent.futures
import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plumax_core import _registry_files
from plumax_core._registry import (
    AmbiguousArtifactError,
    ArtifactCorruptedError,
    ArtifactLineage,
    ArtifactNotFoundError,
    ArtifactRegistry,
    ModelRole,
)
from plumax_core._serialise import tree_hash

H1 = "a" * 64
H2 = "0123456789abcdef" * 4


def _arrays(seed: float = 0.0):
    return {"w": np.arange(12.0).reshape(3, 4) + seed, "b": jnp.array([1, 2, 3], jnp.int32)}


def _same(a, b) -> bool:
    """Same treedef, leaf types and dtypes, and exactly equal values."""
    la, ta = jax.tree_util.tree_flatten(a)
    lb, tb = jax.tree_util.tree_flatten(b)
    if ta != tb:
        return False
    for x, y in zip(la, lb, strict=True):
        if isinstance(x, np.ndarray | jax.Array):
            if type(x) is not type(y) or x.dtype != y.dtype:
                return False
            if not np.array_equal(np.asarray(x), np.asarray(y)):
                return False
        elif x != y:
            return False
    return True


@pytest.fixture
def reg(tmp_path):
    return ArtifactRegistry(tmp_path / "reg")


# --------------------------------------------------------------------------- store / load


def test_store_load_mlp_and_dict(reg, getkey):
    mlp = eqx.nn.MLP(2, 1, width_size=4, depth=1, key=getkey())
    h_mlp = reg.store(mlp, "emulator", ModelRole.EMULATOR)
    h_arr = reg.store(_arrays(), "bank", "baseline", tags={"n": 3, "kind": "sim"})
    assert h_mlp == tree_hash(mlp)
    assert len(h_arr) == 64
    back = reg.load("emulator")
    assert isinstance(back, eqx.nn.MLP) and _same(back, mlp)
    for key in (h_arr, h_arr[:8], h_arr[:20].upper(), "bank"):
        loaded = reg.load(key)
        assert _same(loaded, _arrays())
        assert isinstance(loaded["b"], jax.Array) and isinstance(loaded["w"], np.ndarray)
    # A second registry object on the same root sees the same artifacts.
    assert _same(ArtifactRegistry(reg.root).load("bank"), _arrays())


def test_layout_and_info(reg):
    h = reg.store(_arrays(), "bank", ModelRole.BASELINE, tags={"site": "permian"})
    obj = reg.root / "objects" / h
    assert (obj / "payload.bin").is_file() and (obj / "meta.json").is_file()
    meta = json.loads((obj / "meta.json").read_text())
    assert meta["hash"] == h and meta["size"] == (obj / "payload.bin").stat().st_size
    lines = (reg.root / "index.jsonl").read_text().splitlines()
    assert [json.loads(ln)["name"] for ln in lines] == ["bank"]
    assert json.loads(lines[0])["role"] == "baseline"
    kept = [json.loads(p.read_text()) for p in (obj / "records").iterdir()]
    assert kept == [json.loads(lines[0])]  # every record is also kept beside its object
    marker = json.loads((reg.root / "plumax-registry.json").read_text())
    assert marker["format"] == "plumax-artifact-registry" and marker["version"] == 2
    info = reg.info("bank")
    assert info.hash == h and info.role is ModelRole.BASELINE
    assert info.tags == {"site": "permian"} and info.size == meta["size"] and info.version == 1
    assert info.created.endswith("+00:00")
    assert reg.path("bank") == obj / "payload.bin"
    assert reg.verify("bank") == "ok"


def test_name_resolves_to_latest_version(reg):
    h1 = reg.store(_arrays(0.0), "bank", "baseline")
    h2 = reg.store(_arrays(1.0), "bank", "baseline")
    assert h1 != h2
    assert reg.resolve("bank") == h2
    assert _same(reg.load("bank"), _arrays(1.0))
    assert _same(reg.load(h1), _arrays(0.0))
    assert [r.version for r in reg.list(name="bank")] == [1, 2]
    assert [r.hash for r in reg.ls()] == [h1, h2]


def test_store_is_idempotent(reg):
    h = reg.store(_arrays(), "bank", "baseline")
    assert reg.store(_arrays(), "bank", "baseline") == h
    assert len(reg.list()) == 1
    # Same object under a new name: a new record, one payload.
    assert reg.store(_arrays(), "bank-copy", ModelRole.PRODUCTION) == h
    assert [r.name for r in reg.list()] == ["bank", "bank-copy"]
    assert len(list((reg.root / "objects").iterdir())) == 1
    assert len(reg.list(role="production")) == 1


def test_unknown_name_lists_near_matches(reg):
    h = reg.store(_arrays(), "plume-emulator", "emulator")
    with pytest.raises(ArtifactNotFoundError, match="plume-emulator"):
        reg.load("plume-emulatr")
    with pytest.raises(ArtifactNotFoundError, match="at least 8"):
        reg.load(h[:6])
    with pytest.raises(LookupError):
        reg.info("f" * 64 if not h.startswith("f") else "e" * 64)
    assert "plume-emulator" in reg and h in reg and "nope" not in reg


def test_ambiguous_prefix(reg, monkeypatch):
    reg.store(_arrays(0.0), "a", "baseline")
    reg.store(_arrays(1.0), "b", "baseline")
    hashes = [r.hash for r in reg.list()]
    common = 0
    while hashes[0][common] == hashes[1][common]:
        common += 1
    if common >= 8:  # astronomically unlikely; nothing to test
        with pytest.raises(AmbiguousArtifactError):
            reg.load(hashes[0][:common])
    else:
        assert reg.resolve(hashes[0][:8]) == hashes[0]


def test_bad_inputs(reg):
    with pytest.raises(ValueError, match="role"):
        reg.store(_arrays(), "bank", "teacher")
    with pytest.raises(ValueError, match="name"):
        reg.store(_arrays(), "", "oracle")
    with pytest.raises(ValueError, match="hash"):
        reg.store(_arrays(), "deadbeefcafe", "oracle")
    with pytest.raises(ValueError, match="tags"):
        reg.store(_arrays(), "bank", "oracle", tags=["x"])
    with pytest.raises(ValueError, match="itself"):
        own = ArtifactLineage(oracle_hash=tree_hash(_arrays()))
        reg.store(_arrays(), "bank", "oracle", lineage=own)
    with pytest.raises(TypeError):
        reg.store({"f": lambda x: x}, "bank", "oracle")
    assert reg.list() == ()
    assert ModelRole("ORACLE") is ModelRole.ORACLE and ModelRole("emulator") is ModelRole.EMULATOR


def test_lineage_validation_and_json():
    lin = ArtifactLineage(
        oracle_hash=H1.upper(),
        parent_hashes=[H2],
        training_artifact=H2,
        benchmark_results={"rmse": 0.1, "stages": [1, 2]},
    )
    assert lin.oracle_hash == H1 and lin.parent_hashes == (H2,)
    assert ArtifactLineage.from_json(lin.to_json()) == lin
    assert ArtifactLineage.from_dict(lin.to_dict()) == lin
    assert hash(lin) == hash(ArtifactLineage.from_json(lin.to_json()))
    with pytest.raises(ValueError, match="oracle_hash"):
        ArtifactLineage(oracle_hash="xyz")
    with pytest.raises(ValueError, match="parent_hashes"):
        ArtifactLineage(parent_hashes=["g" * 64])
    with pytest.raises(ValueError, match="parent_hashes"):
        ArtifactLineage(parent_hashes=H1)
    with pytest.raises(ValueError, match="training_artifact"):
        ArtifactLineage(training_artifact=H1[:10])
    with pytest.raises(ValueError, match="benchmark_results"):
        ArtifactLineage(benchmark_results={"x": object()})
    with pytest.raises(ValueError, match="unknown"):
        ArtifactLineage.from_dict({"oracle": H1})


# --------------------------------------------------------------------------- corruption


def test_truncated_payload_refused(reg):
    h = reg.store(_arrays(), "bank", "baseline")
    payload = reg.root / "objects" / h / "payload.bin"
    data = payload.read_bytes()
    payload.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactCorruptedError, match="bank") as err:
        reg.load("bank")
    assert str(payload) in str(err.value)
    assert reg.verify(h) == "corrupted"


def test_flipped_byte_refused(reg):
    h = reg.store(_arrays(), "bank", "baseline")
    payload = reg.root / "objects" / h / "payload.bin"
    data = bytearray(payload.read_bytes())
    data[len(data) - 50] ^= 0x10
    payload.write_bytes(bytes(data))
    with pytest.raises(ArtifactCorruptedError, match="corrupted"):
        reg.load(h)
    # Storing the object again repairs the payload without a duplicate record.
    assert reg.store(_arrays(), "bank", "baseline") == h
    assert reg.verify(h) == "ok" and len(reg.list()) == 1
    assert _same(reg.load("bank"), _arrays())


def test_damaged_index_is_reported(reg):
    reg.store(_arrays(), "bank", "baseline")
    reg.store(_arrays(1.0), "other", "baseline")
    path = reg.root / "index.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"{not json\n" + lines[1])
    with pytest.raises(ArtifactCorruptedError, match=r"line 1 .*check --repair"):
        ArtifactRegistry(reg.root).load("bank")


def test_deleted_index_is_reported_not_empty(reg):
    reg.store(_arrays(), "bank", "baseline")
    (reg.root / "index.jsonl").unlink()
    fresh = ArtifactRegistry(reg.root, mode="r")
    with pytest.raises(ArtifactCorruptedError, match=r"missing while objects are stored"):
        fresh.list()
    with pytest.raises(ArtifactCorruptedError, match="missing"):
        ArtifactRegistry(reg.root).store(_arrays(2.0), "new", "baseline")


# --------------------------------------------------------------------------- atomicity


def _failing_write(fail_on: int):
    real = _registry_files.write_bytes
    calls = {"n": 0}

    def write(path, data):
        calls["n"] += 1
        if calls["n"] == fail_on:
            with open(path, "xb") as f:  # half-written file, then the "crash"
                f.write(data[: len(data) // 2])
            raise OSError("simulated crash during write")
        real(path, data)

    return write


def _failing_append(layout, records):
    """Half of the journal line reaches the disk, then the "crash"."""
    data = b"".join(_registry_files.record_line(r) for r in records)
    with open(layout.journal, "ab") as f:
        f.write(data[: len(data) // 2])
    raise OSError("simulated crash during write")


@pytest.mark.parametrize("fail_on", [1, 2, 3, 4], ids=["payload", "meta", "record", "index"])
def test_crash_mid_store_leaves_nothing(reg, monkeypatch, fail_on):
    h0 = reg.store(_arrays(0.0), "first", "oracle")
    index_before = (reg.root / "index.jsonl").read_bytes()
    obj = _arrays(1.0)
    h = tree_hash(obj)

    if fail_on == 4:
        monkeypatch.setattr(_registry_files.Layout, "append", _failing_append)
    else:
        monkeypatch.setattr(_registry_files, "write_bytes", _failing_write(fail_on))
    with pytest.raises(OSError, match="simulated crash"):
        reg.store(obj, "second", "emulator")
    monkeypatch.undo()

    assert not (reg.root / "objects" / h).exists()
    assert sorted(p.name for p in (reg.root / "objects").iterdir()) == [h0]
    assert list((reg.root / "tmp").iterdir()) == []
    assert [r.name for r in ArtifactRegistry(reg.root, mode="r").list()] == ["first"]
    assert reg.check().ok == (fail_on != 4)  # a torn index line is reported ...
    assert reg.store(obj, "second", "emulator") == h  # ... and cut by the next writer
    assert (reg.root / "index.jsonl").read_bytes().startswith(index_before)
    assert _same(reg.load("second"), obj)
    assert reg.check().ok


def test_concurrent_stores_keep_every_record(reg):
    objs = [_arrays(float(i)) for i in range(6)]

    def work(i):
        # A registry object per thread: each takes the file lock independently.
        return ArtifactRegistry(reg.root).store(objs[i], "bank", "baseline", tags={"i": i})

    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        hashes = list(pool.map(work, range(6)))
    records = reg.list(name="bank")
    assert sorted(r.hash for r in records) == sorted(hashes)
    assert sorted(r.version for r in records) == list(range(1, 7))
    for h, obj in zip(hashes, objs, strict=True):
        assert _same(reg.load(h), obj)


def test_only_own_staging_debris_is_removed_by_the_next_write(reg):
    reg.store(_arrays(0.0), "first", "oracle")
    tmp = reg.root / "tmp"
    debris = tmp / ".plumax-store-0123456789abcdef0123456789abcdef"
    debris.mkdir()
    (debris / "payload.bin").write_bytes(b"half")
    (tmp / ".plumax-journal-0123456789abcdef0123456789abcdef.jsonl").write_text("{")
    (tmp / "store-ab12_xyz").mkdir()  # a version-1 staging folder
    (tmp / "notes.txt").write_text("mine")  # not the registry's: must survive
    (tmp / "store-user").mkdir()  # looks similar, is not a staging name
    ArtifactRegistry(reg.root)  # opening removes nothing
    assert len(list(tmp.iterdir())) == 5
    assert not ArtifactRegistry(reg.root).check().ok
    reg.store(_arrays(1.0), "second", "oracle")
    assert sorted(p.name for p in tmp.iterdir()) == ["notes.txt", "store-user"]


# --------------------------------------------------------------------------- lineage


def _chain(reg):
    """oracle <- emulator <- predictor, plus a training set feeding the emulator."""
    oracle = reg.store(_arrays(0.0), "oracle", ModelRole.ORACLE)
    train = reg.store(_arrays(10.0), "train-bank", ModelRole.BASELINE)
    emu = reg.store(
        _arrays(1.0),
        "emulator",
        ModelRole.EMULATOR,
        lineage=ArtifactLineage(oracle_hash=oracle, training_artifact=train),
    )
    pred = reg.store(
        _arrays(2.0), "predictor", ModelRole.PREDICTOR, lineage=ArtifactLineage(parent_hashes=[emu])
    )
    return oracle, train, emu, pred


def test_stale_after_upstream_replaced(reg):
    oracle, train, emu, pred = _chain(reg)
    assert not reg.stale(emu) and not reg.stale(pred) and not reg.stale(oracle)
    assert reg.replaced_ancestors(pred) == ()

    new_oracle = reg.store(_arrays(0.5), "oracle", ModelRole.ORACLE)
    assert reg.stale(emu)  # direct
    assert reg.stale(pred)  # transitive
    assert reg.stale("predictor")
    assert not reg.stale(oracle) and not reg.stale(new_oracle) and not reg.stale(train)
    (rep,) = reg.replaced_ancestors(pred)
    assert rep.hash == oracle and rep.name == "oracle" and rep.replaced_by == new_oracle
    assert rep.path == ("parent", "oracle")

    # Restoring the old oracle under its name makes the descendants current again.
    reg.store(_arrays(0.0), "oracle", ModelRole.ORACLE)
    assert not reg.stale(pred)


def test_stale_via_training_artifact(reg):
    _, _, emu, pred = _chain(reg)
    reg.store(_arrays(11.0), "train-bank", ModelRole.BASELINE)
    assert reg.stale(emu) and reg.stale(pred)
    assert reg.replaced_ancestors(pred)[0].path == ("parent", "training")


def test_lineage_tree(reg):
    oracle, train, emu, pred = _chain(reg)
    root = reg.lineage(pred)
    assert (root.hash, root.relation, root.status, root.name) == (pred, "self", "ok", "predictor")
    (emu_node,) = root.parents
    assert emu_node.hash == emu and emu_node.role is ModelRole.EMULATOR
    assert {(n.relation, n.hash) for n in emu_node.parents} == {
        ("oracle", oracle),
        ("training", train),
    }
    assert all(n.status == "ok" for n in root.walk()) and root.problems == ()
    assert "predictor" in str(root) and "oracle" in str(root)
    json.dumps(root.to_dict())


def test_lineage_shared_ancestry_is_printed_once(reg):
    """A diamond (two artifacts built on one emulator) prints the emulator's ancestry
    once; a problem shared by both branches is listed once."""
    import shutil

    oracle, train, emu, _ = _chain(reg)
    a = reg.store(_arrays(3.0), "post-a", ModelRole.PREDICTOR, {"parent_hashes": (emu,)})
    b = reg.store(_arrays(4.0), "post-b", ModelRole.PREDICTOR, {"parent_hashes": (emu,)})
    report = reg.store(_arrays(5.0), "report", ModelRole.BASELINE, {"parent_hashes": (a, b)})
    text = str(reg.lineage(report))
    assert text.count(emu[:12]) == 2  # under post-a, then once more under post-b ...
    assert text.count(oracle[:12]) == 1  # ... but its ancestry is not repeated
    assert text.count("[ancestry shown above]") == 1
    assert sum(1 for n in reg.lineage(report).walk() if n.hash == oracle) == 2  # tree intact
    shutil.rmtree(reg.root / "objects" / oracle)
    (problem,) = reg.lineage(report).problems
    assert (problem.hash, problem.status) == (oracle, "missing")


def test_lineage_reports_deleted_and_damaged_upstream(reg):
    import shutil

    oracle, train, emu, pred = _chain(reg)
    shutil.rmtree(reg.root / "objects" / oracle)
    payload = reg.root / "objects" / train / "payload.bin"
    payload.write_bytes(payload.read_bytes()[:-3])
    root = reg.lineage("predictor")
    status = {n.hash: n.status for n in root.walk()}
    assert status == {pred: "ok", emu: "ok", oracle: "missing", train: "corrupted"}
    assert {n.hash for n in root.problems} == {oracle, train}
    assert not reg.stale(pred)  # damage is not replacement
    with pytest.raises(ArtifactNotFoundError, match="missing"):
        reg.load("oracle")


def test_lineage_unknown_upstream_is_missing(reg):
    h = reg.store(_arrays(), "emu", "emulator", lineage={"oracle_hash": H1})
    root = reg.lineage(h)
    (node,) = root.parents
    assert node.hash == H1 and node.status == "missing" and node.name is None
    assert not reg.stale(h)
