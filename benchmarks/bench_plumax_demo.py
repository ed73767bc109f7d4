"""End-to-end ``plumax demo`` wall time and peak memory (CPU; GPU when one is present).

Run: ``uv run python benchmarks/bench_plumax_demo.py [--full]``. Writes
``benchmarks/results/bench_plumax_demo.json`` and prints a table. The demo runs twice in
one process: the first run pays JAX's compilation, the second is the wall time "after
the first compile" (another seed, so no result is reused). Peak memory is the process's
maximum resident set size (``resource.getrusage``), which includes JAX's compilation
caches; the load average is recorded (compare rows of one run only).
"""

import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from _results import update_json_atomic


def main() -> None:
    import jax

    from plumax._demo import run_demo

    fast = "--full" not in sys.argv
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        result = run_demo(Path(d) / "demo", seed=0, fast=fast)
    wall = time.perf_counter() - t0
    t1 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        run_demo(Path(d) / "demo", seed=1, fast=fast)
    warm = time.perf_counter() - t1
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    row = {
        "benchmark": "plumax demo" + (" --fast" if fast else ""),
        "backend": jax.default_backend(),
        "devices": [str(x) for x in jax.devices()],
        "wall_s": wall,
        "wall_after_compile_s": warm,
        "load_average": list(os.getloadavg()),
        "peak_rss_mb": peak_mb,
        "steps_s": result["timings"],
        "Q_true_kgh": result["truth"]["Q"],
        "Q_laplace_kgh": [result["laplace"]["Q"][k] for k in ("median", "lo", "hi")],
        "Q_nuts_kgh": [result["nuts"]["Q"][k] for k in ("median", "lo", "hi")],
    }
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    path = out / "bench_plumax_demo.json"
    update_json_atomic(path, f"{row['benchmark']} [{row['backend']}]", row)
    print(f"{'benchmark':<22}{'backend':<9}{'wall s':>8}{'warm s':>8}{'peak MB':>9}")
    print(f"{row['benchmark']:<22}{row['backend']:<9}{wall:>8.1f}{warm:>8.1f}{peak_mb:>9.0f}")
    print(f"  load average {row['load_average']}")
    for k, v in row["steps_s"].items():
        print(f"  {k:<30}{v:>8.1f} s")


if __name__ == "__main__":
    main()
