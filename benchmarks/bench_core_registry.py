"""Artifact-registry store cost against registry size: the journal registry and, as the
peer in the same run, the previous release's registry (one ``index.json`` rewritten on
every store), loaded from git history.

For each implementation, small artifacts (a 16-element float64 array and a tag) are stored
one after another under 50 rotating names into a fresh registry; the wall time of each
store is recorded, and the median over the ``WINDOW`` stores just before the registry
reaches each size is reported (so a row is the cost of one store into a registry of
about that size). Also timed, for the journal registry: the first read of a registry of
each size by a fresh registry object (what `plumax registry ls` pays before printing)
and a full ``check()`` (re-hashing every payload). Every store fsyncs its files, so the
numbers depend on the disk; compare rows of one run only. The machine's load average is
recorded: other jobs on a shared machine slow fsync-bound code a lot.

The previous registry is only run up to ``--peer-max`` stores (its cost grows with the
size: the whole index is rewritten and re-parsed per store).

Run from the repository root:

    uv run python benchmarks/bench_core_registry.py            # 10^2, 10^3, 10^4
    uv run python benchmarks/bench_core_registry.py --quick    # 10^2, 10^3
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from _results import write_json_atomic

import plumax_core
from plumax_core import ArtifactRegistry

RESULTS = pathlib.Path(__file__).resolve().parent / "results" / "bench_core_registry.json"
REPO = pathlib.Path(__file__).resolve().parent.parent
PEER_COMMIT = "7cf7044"  # the last commit with the version-1 registry
WINDOW = 50


def load_previous_registry():
    """The version-1 `ArtifactRegistry` class, from git history (None without git)."""
    path = "packages/plumax-core/src/plumax_core/_registry.py"
    try:
        source = subprocess.run(
            ["git", "-C", str(REPO), "show", f"{PEER_COMMIT}:{path}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    spec = importlib.util.spec_from_loader("plumax_core._registry_v1", loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "plumax_core"  # its relative imports: _enum, _serialise
    sys.modules[spec.name] = module
    exec(compile(source, f"{PEER_COMMIT}:{path}", "exec"), module.__dict__)
    return module.ArtifactRegistry


def store_costs(registry_cls, root: pathlib.Path, sizes: list[int]) -> dict[int, float]:
    """Median store time (s) in the window before each size."""
    reg = registry_cls(root)
    times: list[float] = []
    out: dict[int, float] = {}
    for i in range(max(sizes)):
        obj = {"w": np.full(16, float(i))}
        t0 = time.perf_counter()
        reg.store(obj, f"artifact-{i % 50}", "baseline", tags={"i": i})
        times.append(time.perf_counter() - t0)
        if i + 1 in sizes:
            out[i + 1] = statistics.median(times[-WINDOW:])
    return out


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="sizes 10^2 and 10^3 only")
    parser.add_argument("--peer-max", type=int, default=1000, help="largest peer size")
    args = parser.parse_args()
    sizes = [100, 1000] if args.quick else [100, 1000, 10_000]
    load_before = os.getloadavg()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        t0 = time.perf_counter()
        new = store_costs(ArtifactRegistry, tmp / "journal", sizes)
        new_total = time.perf_counter() - t0
        reads, checks = {}, {}
        for n in sizes:  # a registry of each size, read by a fresh registry object
            if n == max(sizes):
                root = tmp / "journal"
            else:
                root = tmp / f"read-{n}"
                store_costs(ArtifactRegistry, root, [n])
            t0 = time.perf_counter()
            ArtifactRegistry(root, mode="r").list()
            reads[n] = time.perf_counter() - t0
            t0 = time.perf_counter()
            report = ArtifactRegistry(root, mode="r").check()
            checks[n] = time.perf_counter() - t0
            assert report.ok and report.records == n, str(report)
        previous_cls = load_previous_registry()
        old: dict[int, float] = {}
        if previous_cls is not None:
            peer_sizes = [n for n in sizes if n <= args.peer_max]
            old = store_costs(previous_cls, tmp / "v1", peer_sizes)
        for n in sizes:
            rows.append(
                {
                    "size": n,
                    "store_ms": 1e3 * new[n],
                    "store_ms_previous": None if n not in old else 1e3 * old[n],
                    "first_read_ms": 1e3 * reads[n],
                    "check_ms": 1e3 * checks[n],
                }
            )
    load_after = os.getloadavg()

    print(f"registry store cost (median of the {WINDOW} stores before each size)")
    print(f"{'size':>7} {'store ms':>9} {'previous':>9} {'first read ms':>14} {'check ms':>9}")
    for r in rows:
        prev = "-" if r["store_ms_previous"] is None else f"{r['store_ms_previous']:.2f}"
        print(
            f"{r['size']:>7} {r['store_ms']:>9.2f} {prev:>9} {r['first_read_ms']:>14.1f} "
            f"{r['check_ms']:>9.1f}"
        )
    print(f"load average before/after: {load_before[0]:.2f} / {load_after[0]:.2f}")
    result = {
        "benchmark": "bench_core_registry",
        "quick": args.quick,
        "window": WINDOW,
        "rows": rows,
        "journal_total_s": new_total,
        "peer": None if previous_cls is None else f"plumax_core registry at {PEER_COMMIT}",
        "load_average_before": load_before,
        "load_average_after": load_after,
        "versions": {"plumax_core": plumax_core.__version__, "numpy": np.__version__},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
    }
    write_json_atomic(RESULTS, result)
    return result


if __name__ == "__main__":
    main()
