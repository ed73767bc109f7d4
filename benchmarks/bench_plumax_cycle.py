"""``plumax cycle``: wall time per step, peak memory and every gate value.

Run: ``uv run python benchmarks/bench_plumax_cycle.py [--full]`` (default ``--fast``).
Writes ``benchmarks/results/bench_plumax_cycle.json`` (one entry per budget and backend)
and prints a table. Peak memory is the process's maximum resident set size
(``resource.getrusage``), JAX's compilation caches included.
"""

import resource
import sys
import tempfile
import time
from pathlib import Path

from _results import update_json_atomic


def main() -> None:
    import jax

    from plumax._cycle import run_cycle

    fast = "--full" not in sys.argv
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        run = run_cycle(Path(d) / "runs", fast=fast)
    wall = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gates = {
        f"{s.name}.{m.name}": {"value": m.value, "passed": m.passed}
        for s in run.report.stages
        for m in s.metrics
    }
    row = {
        "benchmark": "plumax cycle" + (" --fast" if fast else ""),
        "backend": jax.default_backend(),
        "devices": [str(x) for x in jax.devices()],
        "wall_s": wall,
        "peak_rss_mb": peak_mb,
        "steps_s": run.seconds,
        "budget": run.budget.to_dict(),
        "passed": run.report.passed,
        "gates": gates,
    }
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    path = out / "bench_plumax_cycle.json"
    update_json_atomic(path, f"{row['benchmark']} [{row['backend']}]", row)
    print(f"{'benchmark':<22}{'backend':<9}{'wall s':>8}{'peak MB':>9}  gates")
    verdict = "all pass" if run.report.passed else "some FAIL"
    print(f"{row['benchmark']:<22}{row['backend']:<9}{wall:>8.1f}{peak_mb:>9.0f}  {verdict}")
    for k, v in run.seconds.items():
        print(f"  {k:<30}{v:>8.1f} s")
    print(run.report)


if __name__ == "__main__":
    main()
