"""A full-size EMIT L1B granule, streamed: write, open, orthorectify, local grid, matched filter.

A synthetic granule in the EMIT L1B layout (1280 lines x 1242 samples x 285 bands,
float32: 1.81 GB of radiance, plus its OBS file) is written to a temporary folder
64 lines at a time by :func:`plumax_rtm.write_emit_l1b`, then

* ``open``: :func:`plumax_rtm.open_emit_l1b` (lazy radiance, eager geolocation and GLT);
* ``ortho``: :meth:`EmitGranule.orthorectify` of the whole cube, reduced over bands so
  every byte of the cube streams through the GLT tile by tile;
* ``grid``: :meth:`EmitGranule.to_local_grid` at 60 m over the CH4 window
  2100-2450 nm (index arrays eager, radiance lazy);
* ``mf``: :func:`plumax_rtm.scene_matched_filter` on that grid, computed (two passes over
  the data, chunk-wise).

Each stage's wall time and the peak resident set (a sampler thread reading
``/proc/self/status`` every 20 ms, and ``ru_maxrss`` for the whole run) are reported;
the target is a peak under 4 GB. The run happens in a child process so that its peak is
its own. The injected plume (2000 ppm m on a 600 m disk, synthetic Gaussian absorption
bands at 2300/2360 nm: a shape, not CH4 spectroscopy) gives an accuracy check: the
filter's plume/background contrast. No peer: no other EMIT reader is installed.

    uv run python benchmarks/bench_emit_granule.py            # full size (~2 GB in /tmp)
    uv run python benchmarks/bench_emit_granule.py --small    # 160 x 150 x 285, seconds

Writes benchmarks/results/bench_emit_granule[_small].json (temp file + os.replace).
"""

import argparse
import json
import os
import pathlib
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
from _results import write_json_atomic

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
FULL = (1280, 1242, 285)
SMALL = (160, 150, 285)
R_EARTH = 6_371_008.8
LAT0, LON0 = 33.0, -103.5  # a Permian-basin-like site
HEADING = 35.0  # degrees from north, an ISS descending pass
PLUME_PPM_M = 2000.0


class RssSampler:
    """Samples this process's resident set; ``stage(name)`` starts a new stage peak."""

    def __init__(self, period=0.02):
        self.period = period
        self.peaks: dict[str, float] = {}
        self._stage = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def rss_mb():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
        return float("nan")

    def _run(self):
        while not self._stop.is_set():
            s = self._stage
            if s is not None:
                self.peaks[s] = max(self.peaks.get(s, 0.0), self.rss_mb())
            time.sleep(self.period)

    def stage(self, name):
        self._stage = name
        self.peaks[name] = self.rss_mb()

    def stop(self):
        self._stop.set()
        self._thread.join()


def _geometry(nd, nc):
    th = np.deg2rad(HEADING)
    i, j = np.meshgrid(np.arange(nd), np.arange(nc), indexing="ij")
    along, cross = i * 60.0, (j - (nc - 1) / 2) * 60.0
    east = along * np.sin(th) + cross * np.cos(th)
    north = along * np.cos(th) - cross * np.sin(th)
    k = np.deg2rad(1.0) * R_EARTH
    return LAT0 + north / k, LON0 + east / (k * np.cos(np.deg2rad(LAT0))), along, cross


def _sigma(wl):
    """Absorption per ppm m of two synthetic bands (shape only)."""
    return 2e-5 * np.exp(-0.5 * ((wl - 2300.0) / 15.0) ** 2) + 1e-5 * np.exp(
        -0.5 * ((wl - 2360.0) / 10.0) ** 2
    )


def _rows_factory(nd, nc, wl, along, cross):
    base = ((1.0 + 0.5 * np.sin(wl / 300.0)) * np.exp(-(((wl - 900.0) / 900.0) ** 2)) + 0.05) * 10
    sig = _sigma(wl).astype(np.float32)
    plume = np.hypot(along - along.mean(), cross - 120.0) < 300.0
    deep = (wl > 1340) & (wl < 1445) | (wl > 1790) & (wl < 1960)  # water bands: dim
    base = np.where(deep, 0.02 * base, base).astype(np.float32)

    def rows(r0, r1):
        rng = np.random.default_rng(r0)
        alb = rng.uniform(0.15, 0.45, (r1 - r0, nc, 1)).astype(np.float32)
        a = np.where(plume[r0:r1], PLUME_PPM_M, 0.0).astype(np.float32)[..., None]
        out = base * alb * np.exp(-a * sig)
        out *= 1 + np.float32(0.003) * rng.standard_normal(out.shape, dtype=np.float32)
        return out

    return rows, plume


def run(small: bool, folder: str):
    import dask

    import plumax_rtm as pr

    nd, nc, nb = SMALL if small else FULL
    wl, fw = pr.instrument_bands("EMIT")
    wl, fw = np.asarray(wl, float), np.broadcast_to(np.asarray(fw, float), wl.shape)
    assert wl.size == nb
    lat, lon, along, cross = _geometry(nd, nc)
    rows, plume = _rows_factory(nd, nc, wl, along, cross)
    name = "EMIT_L1B_{}_001_20230807T171500_2321911_012.nc"
    rp, op = os.path.join(folder, name.format("RAD")), os.path.join(folder, name.format("OBS"))
    sampler = RssSampler()
    times = {}
    dask.config.set(scheduler="threads", num_workers=2)

    sampler.stage("write")
    t0 = time.perf_counter()
    pr.write_emit_l1b(
        rp,
        op,
        rows,
        wl,
        fw,
        lat,
        lon,
        time_start="2023-08-07T17:15:00Z",
        solar_zenith=28.0,
        sensor_zenith=8.0,
    )
    times["write"] = time.perf_counter() - t0
    file_mb = (os.path.getsize(rp) + os.path.getsize(op)) / 2**20

    sampler.stage("open")
    t0 = time.perf_counter()
    g = pr.open_emit_l1b(rp, op)
    times["open"] = time.perf_counter() - t0

    sampler.stage("ortho")
    t0 = time.perf_counter()
    ortho_sum = g.orthorectify(g.radiance).sum("band", skipna=False).values
    times["ortho"] = time.perf_counter() - t0
    ortho_cells = int(np.isfinite(ortho_sum).sum())

    sampler.stage("grid")
    t0 = time.perf_counter()
    grid = g.to_local_grid(pixel_size=60.0, bands=(2100.0, 2450.0))
    times["grid"] = time.perf_counter() - t0

    sampler.stage("mf")
    t0 = time.perf_counter()
    sig = _sigma(grid["band"].values)
    mf = pr.scene_matched_filter(grid.radiance, -sig)
    out = mf.values
    times["mf"] = time.perf_counter() - t0
    sampler.stop()

    ok = grid.valid.values
    iy, ix = grid.downtrack_index.values, grid.crosstrack_index.values
    in_plume = np.zeros_like(ok)
    in_plume[ok] = plume[iy[ok], ix[ok]]
    bg = ok & ~in_plume
    return {
        "shape": [nd, nc, nb],
        "radiance_mb_float32": nd * nc * nb * 4 / 2**20,
        "files_mb": file_mb,
        "glt_shape": list(g.ortho_shape),
        "ortho_cells_with_data": ortho_cells,
        "grid_shape": [grid.sizes["y"], grid.sizes["x"], grid.sizes["band"]],
        "grid_chunks": [list(c)[:1] for c in grid.radiance.data.chunks],
        "stage_s": times,
        "stage_peak_rss_mb": dict(sampler.peaks),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "plume_contrast_ppm_m": float(np.nanmean(out[in_plume]) - np.nanmean(out[bg])),
        "background_std_ppm_m": float(np.nanstd(out[bg])),
        "injected_ppm_m": PLUME_PPM_M,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", "--quick", action="store_true", help="160 x 150 x 285 granule")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print("RESULT " + json.dumps(run(args.small, args.child)))
        return
    nd, nc, nb = SMALL if args.small else FULL
    need_mb = nd * nc * nb * 4 / 2**20 * 1.1 + 200
    folder = tempfile.mkdtemp(prefix="bench_emit_")
    try:
        free_mb = shutil.disk_usage(folder).free / 2**20
        if free_mb < need_mb:
            raise SystemExit(f"{folder}: {free_mb:.0f} MB free, {need_mb:.0f} MB needed")
        cmd = [sys.executable, __file__, "--child", folder] + (["--small"] if args.small else [])
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout + proc.stderr)
            raise SystemExit(proc.returncode)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    res = json.loads([ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1][7:])
    import dask
    import xarray

    import plumax_rtm as pr

    name = "bench_emit_granule" + ("_small" if args.small else "")
    payload = {
        "name": name,
        "small": args.small,
        "target_peak_rss_mb": 4096,
        **res,
        "versions": {
            "plumax_rtm": pr.__version__,
            "xarray": xarray.__version__,
            "dask": dask.__version__,
        },
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
    }
    print(
        f"granule {res['shape']} float32 = {res['radiance_mb_float32']:.0f} MB "
        f"(files {res['files_mb']:.0f} MB); GLT {res['glt_shape']}; grid {res['grid_shape']}"
    )
    print(f"{'stage':8s} {'time (s)':>9s} {'peak RSS MB':>12s}")
    for k, t in res["stage_s"].items():
        print(f"{k:8s} {t:9.2f} {res['stage_peak_rss_mb'][k]:12.0f}")
    print(
        f"{'total':8s} {sum(res['stage_s'].values()):9.2f} {res['peak_rss_mb']:12.0f}"
        f"  (ru_maxrss; target < 4096)"
    )
    print(
        f"plume contrast {res['plume_contrast_ppm_m']:.0f} ppm m (injected "
        f"{res['injected_ppm_m']:.0f}), background std {res['background_std_ppm_m']:.0f}"
    )
    write_json_atomic(RESULTS / f"{name}.json", payload)


if __name__ == "__main__":
    main()
