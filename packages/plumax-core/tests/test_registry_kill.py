"""Fault injection: a process storing artifacts is killed with SIGKILL at random moments,
20 times; after every kill the registry reads, every indexed artifact verifies, and
``check(repair=True)`` leaves it clean without losing an indexed record."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

# Runs in its own interpreter: it forks a storing child, kills it after a random delay,
# and inspects the registry in the parent. Only numpy payloads are stored, so JAX's
# backend is never started and forking is safe.
_DRIVER = textwrap.dedent(
    """
    import json, os, random, signal, sys, time
    import numpy as np
    from plumax_core import ArtifactLineage, ArtifactRegistry

    root, tries, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(seed)
    sizes = (8, 2_000, 60_000)  # float64 elements: 64 B to 480 kB payloads
    out = []
    known = 0
    for t in range(tries):
        pid = os.fork()
        if pid == 0:  # the storing child: runs until killed
            try:
                reg = ArtifactRegistry(root)
                prev, i = None, 0
                while True:
                    obj = {"w": np.full(sizes[i % 3], t * 1e6 + i)}
                    lineage = ArtifactLineage(parent_hashes=(prev,) if prev else ())
                    prev = reg.store(obj, f"a{i % 5}", "baseline", lineage=lineage)
                    i += 1
            finally:
                os._exit(0)
        time.sleep(rng.uniform(0.005, 0.12))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        row = {"try": t}
        reader = ArtifactRegistry(root, mode="r")
        records = reader.list()  # must not raise: a torn line is ignored
        row["indexed"] = len(records)
        row["indexed_bad"] = sum(reader.verify(r.hash) != "ok" for r in records)
        row["lost"] = known - len(records)
        before = reader.check()
        row["torn"] = before.torn_bytes
        row["unindexed"] = len(before.unindexed)
        row["debris"] = len(before.debris)
        row["repairable"] = before.repairable
        after = ArtifactRegistry(root).check(repair=True)
        row["ok_after_repair"] = after.ok
        row["records_after_repair"] = after.records
        known = after.records
        out.append(row)
    print(json.dumps(out))
    """
)


def _run(tmp_path, tries: int, seed: int) -> list[dict]:
    proc = subprocess.run(
        [sys.executable, "-c", _DRIVER, str(tmp_path / "reg"), str(tries), str(seed)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_sigkill_during_stores_never_damages_the_registry(tmp_path):
    rows = _run(tmp_path, tries=20, seed=0)
    assert len(rows) == 20
    for row in rows:
        assert row["indexed_bad"] == 0, row  # an indexed artifact is always whole
        assert row["lost"] <= 0, row  # a kill never removes an indexed record
        assert row["repairable"], row  # no corrupted payload, no unnamed object
        assert row["ok_after_repair"], row
        assert row["records_after_repair"] >= row["indexed"], row
    # The kills landed in different phases of a store: some left debris or a torn line,
    # else this test would not be exercising anything.
    stored = rows[-1]["records_after_repair"]
    assert stored > 20, rows
    phases = sum(r["torn"] > 0 or r["unindexed"] > 0 or r["debris"] > 0 for r in rows)
    assert phases >= 1, rows


@pytest.mark.slow
def test_sigkill_during_stores_many_seeds(tmp_path):
    for seed in range(1, 6):
        rows = _run(tmp_path / str(seed), tries=20, seed=seed)
        assert all(r["indexed_bad"] == 0 and r["lost"] <= 0 for r in rows), rows
        assert all(r["repairable"] and r["ok_after_repair"] for r in rows), rows
