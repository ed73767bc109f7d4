"""Wall time of ``plumax calibrate --n N --fast`` and what it found (CPU).

Run: ``uv run python benchmarks/bench_plumax_calibrate.py [--n 40]``. Writes
``benchmarks/results/bench_plumax_calibrate.json`` and prints a table: the total wall
time (compilation included, as a user pays it), the mean per truth, the load average
(compare rows of one run only) and, per parameter, the 90% coverage, the width/spread
ratio and the SBC p-value. The target of issue 19 is under 15 minutes on 2 cores.
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

from _results import update_json_atomic


def main() -> None:
    import jax

    from plumax._calibrate import run_calibrate

    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        res = run_calibrate(Path(d) / "cal", n=args.n, seed=args.seed, fast=True)
    wall = time.perf_counter() - t0
    row = {
        "benchmark": f"plumax calibrate --n {args.n} --fast",
        "backend": jax.default_backend(),
        "wall_s": wall,
        "per_truth_s": wall / args.n,
        "load_average": list(os.getloadavg()),
        "passed": res.passed,
        "checks": {
            p: {
                "covered_90": c["coverage"]["0.9"]["covered"],
                "band_90": c["coverage"]["0.9"]["band"],
                "width_ratio": c["width_ratio"],
                "sbc_p": c["sbc_p"],
            }
            for p, c in res.checks.items()
        },
    }
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    update_json_atomic(out / "bench_plumax_calibrate.json", row["benchmark"], row)
    print(f"{'benchmark':<34}{'wall s':>8}{'per truth s':>13}  load average")
    print(f"{row['benchmark']:<34}{wall:>8.1f}{wall / args.n:>13.2f}  {row['load_average']}")
    for p, c in row["checks"].items():
        print(
            f"  {p:<4} 90% covers {c['covered_90']}/{args.n} (band {c['band_90']}), "
            f"width/spread {c['width_ratio']:.2f}, SBC p {c['sbc_p']:.3g}"
        )


if __name__ == "__main__":
    main()
