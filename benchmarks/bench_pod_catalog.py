"""Catalogue ingest + population fit: time and peak memory at 10^4, 10^5, 10^6 rows.

Issue 17 reported 200 000 rows taking 5 min and 5.1 GB; the target is 10^6 rows ingested
and fitted (the default MAP + Laplace method) within 4 GB peak RSS.

Each size runs in a fresh subprocess (``--child``), so its peak resident set size
(``getrusage(RUSAGE_SELF).ru_maxrss`` of that process) is its own:

* ``read``: :func:`plumax_pod.read_catalog` alone (validated, line-numbered);
* ``population``: :func:`plumax._population.population`, what ``plumax population``
  runs: read, window and coverage, MAP + Laplace (first run: compile included), 4000
  posterior draws of the derived answers, the summary.

Peers in the same run, each in its own fresh subprocess on the same file:

* ``pandas.read_csv`` + ``pandas.to_datetime`` (C parser, no validation): what a bare
  reader costs;
* ``--baseline REF``: the implementation at git revision ``REF`` (``git archive``, read
  only; e.g. ``HEAD`` before the fix), at the sizes it can survive (10^4, 10^5).

The machine is shared: the load average before and after each run is recorded
(``os.getloadavg()``); compare numbers from one run only.

Run: ``uv run python benchmarks/bench_pod_catalog.py [--quick] [--baseline HEAD]``.
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _results import write_json_atomic

HERE = Path(__file__).resolve().parent
RESULT = HERE / "results" / "bench_pod_catalog.json"
T0 = 1.7e9
DAY = 86400.0


def write_catalogue(path, n: int, *, seed: int = 0) -> None:
    """A canonical plume list of ``n`` detections: one instrument, one year, ISO 8601
    times, lognormal rates around 300 kg/h with a 25% ``q_sigma``, detected through a
    Hill curve (so the fit has something to find)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(0, 365 * DAY, n)) + T0
    q = 300.0 * np.exp(rng.normal(size=n))
    q = np.maximum(q, 1e-3)
    iso = np.datetime_as_string(t.astype("datetime64[s]"), unit="s")
    lat = rng.uniform(30, 33, n)
    lon = rng.uniform(-104, -101, n)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write("id,time,lat,lon,q,q_sigma,wind,instrument,units\n")
        step = 100_000
        for a in range(0, n, step):
            b = min(a + step, n)
            fh.write(
                "".join(
                    f"p{i},{iso[i]}Z,{lat[i]:.5f},{lon[i]:.5f},{q[i]:.3f},{0.25 * q[i]:.3f},"
                    f"3.0,EMIT,kg/h\n"
                    for i in range(a, b)
                )
            )


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def child(kind: str, path: str) -> dict:
    """One measurement in this (fresh) process; printed as JSON on the last line."""
    t0 = time.perf_counter()
    if kind == "pandas":
        import pandas as pd

        t_import = time.perf_counter() - t0
        t1 = time.perf_counter()
        df = pd.read_csv(path)
        pd.to_datetime(df["time"], utc=True)
        return {"import_s": t_import, "read_s": time.perf_counter() - t1, "peak_mb": _peak_mb()}
    import jax  # noqa: F401 - import cost apart

    import plumax_pod as pp
    from plumax._population import population

    t_import = time.perf_counter() - t0
    out = {"import_s": t_import}
    if kind == "new":
        t1 = time.perf_counter()
        cat = pp.read_catalog(path)
        out["read_s"] = time.perf_counter() - t1
        out["rows"] = len(cat)
        del cat
        out["read_peak_mb"] = _peak_mb()
    t1 = time.perf_counter()
    s = population(path).summary
    out["population_s"] = time.perf_counter() - t1
    out["peak_mb"] = _peak_mb()
    out["converged"] = bool(s["converged"])
    out["events"] = int(s["catalog"]["events"])
    out["rate_per_day"] = s["parameters"]["event_rate_per_day"]["median"]
    out["missing_mass_fraction"] = s["missing_mass_fraction"]
    return out


def run_child(kind: str, path: Path, env=None, timeout=3600) -> dict:
    before = os.getloadavg()
    t0 = time.perf_counter()
    r = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    wall = time.perf_counter() - t0
    after = os.getloadavg()
    if r.returncode != 0:
        return {"error": r.stderr.strip().splitlines()[-1:], "wall_s": wall}
    res = json.loads(r.stdout.strip().splitlines()[-1])
    res.update(wall_s=wall, load_before=before[0], load_after=after[0])
    return res


def baseline_env(ref: str, tmp: Path) -> dict:
    """Sources of plumax-pod and plumax at git ``ref`` (``git archive``, read only) put
    first on ``PYTHONPATH``; the rest of the environment unchanged."""
    root = HERE.parent
    dest = tmp / f"baseline-{ref}"
    dest.mkdir()
    arch = subprocess.run(
        ["git", "-C", str(root), "archive", ref, "packages/plumax-pod/src", "packages/plumax/src"],
        capture_output=True,
        check=True,
    )
    subprocess.run(["tar", "-x", "-C", str(dest)], input=arch.stdout, check=True)
    env = dict(os.environ)
    paths = [str(dest / "packages/plumax-pod/src"), str(dest / "packages/plumax/src")]
    env["PYTHONPATH"] = os.pathsep.join(paths + [env.get("PYTHONPATH", "")])
    return env


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="10^3 and 10^4 rows only")
    ap.add_argument("--baseline", default=None, help="git revision to compare with")
    ap.add_argument("--child", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    sizes = [1_000, 10_000] if args.quick else [10_000, 100_000, 1_000_000]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base_env = baseline_env(args.baseline, tmp) if args.baseline else None
        for n in sizes:
            path = tmp / f"plumes_{n}.csv"
            write_catalogue(path, n)
            mb = path.stat().st_size / 1e6
            runs = [("plumax (this tree)", "new", None), ("pandas.read_csv peer", "pandas", None)]
            if base_env is not None and n <= 100_000:
                runs.append((f"plumax @ {args.baseline}", "old", base_env))
            for label, kind, env in runs:
                res = run_child(kind, path, env)
                res.update(impl=label, rows=n, file_mb=mb)
                rows.append(res)
                print(json.dumps(res), file=sys.stderr, flush=True)
            path.unlink()
    head = (
        f"{'impl':<24}{'rows':>9} {'read s':>8} {'ingest+fit s':>13} {'peak MB':>9} "
        f"{'load':>11}  events/day"
    )
    print(head)
    for r in rows:
        if "error" in r:
            print(f"{r['impl']:<24}{r['rows']:>9}  failed: {r['error']}")
            continue
        fit = r.get("population_s")
        rate = r.get("rate_per_day")
        print(
            f"{r['impl']:<24}{r['rows']:>9} {r.get('read_s', float('nan')):>8.2f} "
            f"{'-' if fit is None else f'{fit:.1f}':>13} {r['peak_mb']:>9.0f} "
            f"{r['load_before']:>5.1f}-{r['load_after']:<5.1f} "
            f"{'' if rate is None else f'{rate:.4g}'}"
        )
    import importlib.metadata as md

    import jax

    out = {
        "name": "bench_pod_catalog",
        "quick": args.quick,
        "target": "10^6 rows ingested and fitted (laplace) within 4 GB peak RSS",
        "results": rows,
        "versions": {k: md.version(k) for k in ("plumax-pod", "plumax", "jax", "numpy", "pandas")},
        "backend": jax.default_backend(),
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "loadavg_end": os.getloadavg(),
        },
    }
    write_json_atomic(RESULT, out)
    print(f"wrote {RESULT}")


if __name__ == "__main__":
    main()
