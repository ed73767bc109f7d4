"""Classic matched filter throughput and chunk-wise peak memory (plumax-rtm).

Two parts, each in its own subprocess so that ``ru_maxrss`` (the peak resident set of
the process) belongs to that part alone:

* ``inmem``: :func:`plumax_rtm.matched_filter` (JAX, float32, classic covariance) on an
  in-memory ``(ny, 1000, 285)`` cube, timed after compilation -> pixels/s.
* ``dask``: :func:`plumax_rtm.scene_matched_filter` on a lazily generated dask-backed
  ``1000 x 1000 x 285`` float32 scene (1.14 GB; 2.3 GB as the float64 the statistics use),
  chunked ``(rows, 1000, 285)`` so no piece exceeds the per-chunk budget; the cube is never
  materialised whole. Wall time includes generating each chunk twice (two passes).

Writes benchmarks/results/bench_rtm_matched_filter.json (temp file + os.replace).
"""

import json
import os
import pathlib
import platform
import resource
import subprocess
import sys
import time

import numpy as np
from _results import write_json_atomic

OUT = pathlib.Path(__file__).resolve().parent / "results" / "bench_rtm_matched_filter.json"
NY, NX, NB = 1000, 1000, 285
CHUNK_ROWS = 100  # 100 x 1000 x 285 float32 = 114 MB per chunk


def _spectrum(nb):
    wl = np.linspace(380.0, 2500.0, nb)
    return (1.0 + 0.5 * np.sin(wl / 300.0)) * np.exp(-(((wl - 900.0) / 900.0) ** 2)) + 0.05


def _block(rows, seed):
    rng = np.random.default_rng(seed)
    base = _spectrum(NB).astype(np.float32)
    albedo = rng.uniform(0.1, 0.5, (rows, NX, 1)).astype(np.float32)
    noise = rng.standard_normal((rows, NX, NB), dtype=np.float32) * np.float32(0.01)
    return albedo * base + noise


def _target():
    return -np.linspace(0.0, 1e-5, NB) * (np.arange(NB) % 7 == 0)


def _peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def part_inmem(ny):
    import jax
    import jax.numpy as jnp

    import plumax_rtm as pr

    x = jnp.asarray(_block(ny, 0))
    k = jnp.asarray(_target(), jnp.float32)
    jax.block_until_ready(pr.matched_filter(x, k).enhancement)  # compile
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        jax.block_until_ready(pr.matched_filter(x, k).enhancement)
        runs.append(time.perf_counter() - t0)
    t = float(np.median(runs))
    return {"pixels": ny * NX, "bands": NB, "run_s_median": t, "px_per_s": ny * NX / t}


def part_dask():
    import dask
    import dask.array as da
    import xarray as xr

    import plumax_rtm as pr

    n_chunks = NY // CHUNK_ROWS
    blocks = [
        da.from_delayed(dask.delayed(_block)(CHUNK_ROWS, i), (CHUNK_ROWS, NX, NB), np.float32)
        for i in range(n_chunks)
    ]
    cube = xr.DataArray(da.concatenate(blocks, axis=0), dims=("y", "x", "band"))
    with dask.config.set(scheduler="threads", num_workers=2):
        t0 = time.perf_counter()
        out = pr.scene_matched_filter(cube, _target())
        vals = out.values
        t = time.perf_counter() - t0
    return {
        "pixels": NY * NX,
        "bands": NB,
        "chunk": [CHUNK_ROWS, NX, NB],
        "chunk_mb_float32": CHUNK_ROWS * NX * NB * 4 / 2**20,
        "cube_mb_float32": NY * NX * NB * 4 / 2**20,
        "cube_mb_float64": NY * NX * NB * 8 / 2**20,
        "run_s": t,
        "px_per_s": NY * NX / t,
        "finite_fraction": float(np.isfinite(vals).mean()),
    }


def main():
    if len(sys.argv) > 1:  # child
        part = sys.argv[1]
        res = part_inmem(int(sys.argv[2])) if part == "inmem" else part_dask()
        res["peak_rss_mb"] = _peak_mb()
        print("RESULT " + json.dumps(res))
        return
    results = {}
    for args in (["inmem", "250"], ["dask"]):
        proc = subprocess.run(
            [sys.executable, __file__, *args], capture_output=True, text=True, check=True
        )
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
        results[args[0]] = json.loads(line[7:])
    import jax

    import plumax_rtm as pr

    res = {
        "name": "bench_rtm_matched_filter",
        "target_px_per_s": 1e5,
        **results,
        "versions": {"plumax_rtm": pr.__version__, "jax": jax.__version__},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
    }
    print(f"{'path':28s} {'pixels':>9s} {'time (s)':>9s} {'px/s':>10s} {'peak RSS MB':>12s}")
    for key, label in (("inmem", "JAX in-memory (classic)"), ("dask", "xarray/dask chunk-wise")):
        r = results[key]
        t = r.get("run_s_median", r.get("run_s"))
        print(
            f"{label:28s} {r['pixels']:9d} {t:9.2f} {r['px_per_s']:10.3g} {r['peak_rss_mb']:12.0f}"
        )
    d = results["dask"]
    print(
        f"scene {d['cube_mb_float32']:.0f} MB float32 ({d['cube_mb_float64']:.0f} MB float64), "
        f"chunks of {d['chunk_mb_float32']:.0f} MB"
    )
    write_json_atomic(OUT, res)


if __name__ == "__main__":
    main()
