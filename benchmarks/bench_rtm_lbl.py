"""Line-by-line CH4 cross-sections: plumax-rtm (JAX) vs HAPI on the shared HITRAN file.

406 lines, 4383.03-4386.00 cm-1 grid at 0.001 cm-1, 1 atm, 296 K, wing 50 HWHM. The
fast (windowed) path is timed, and the dense exact path (core=0) for reference.
Writes benchmarks/results/bench_rtm_lbl.json.
"""

import contextlib
import io
import os
import pathlib
import platform
import shutil
import tempfile
import time

import jax
from _results import write_json_atomic

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import plumax_rtm as pr  # noqa: E402

SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "hitran"
OUT = pathlib.Path(__file__).resolve().parent / "results" / "bench_rtm_lbl.json"


def main():
    import hapi

    tmp = tempfile.mkdtemp()
    for f in ("CH4.data", "CH4.header"):
        shutil.copy(SHARED / f, tmp)
    with contextlib.redirect_stdout(io.StringIO()):
        hapi.db_begin(tmp)
    lines = pr.read_hapi_table(tmp, "CH4")
    grid = np.arange(4383.03, 4386.0, 0.001)
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        nu, ref = hapi.absorptionCoefficient_Voigt(
            SourceTables="CH4",
            WavenumberGrid=grid,
            Environment={"p": 1.0, "T": 296.0},
            HITRAN_units=True,
            WavenumberWingHW=50.0,
        )
    t_hapi = time.perf_counter() - t0
    # The grid is created outside jit and closed over (concrete), so the static core
    # window of the fast path can be sized from it (a grid built inside jit is traced).
    grid_j = jnp.asarray(nu)
    core = pr.core_points(lines, grid_j)

    def timed(fn, n_runs=7):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(101325.0, 296.0))
        t_compile = time.perf_counter() - t0
        runs = []
        for _ in range(n_runs):
            t0 = time.perf_counter()
            out = jax.block_until_ready(fn(101325.0, 296.0))
            runs.append(time.perf_counter() - t0)
        return np.asarray(out), t_compile, float(np.median(runs))

    m = ref > 1e-3 * ref.max()

    def rel_err(a):
        return float(np.max(np.abs(a[m] - ref[m]) / ref[m]))

    mine, t_compile, t_jax = timed(jax.jit(lambda p, T: pr.cross_section(lines, grid_j, p, T)))
    err = rel_err(mine)
    # The dense exact path (every line on every grid point, both Faddeeva branches), for
    # reference: what is used when the grid or the lines are traced.
    dense, _, t_dense = timed(
        jax.jit(lambda p, T: pr.cross_section(lines, grid_j, p, T, core=0)), n_runs=3
    )
    err_dense = rel_err(dense)
    gfn = jax.jit(jax.grad(lambda p, T: pr.cross_section(lines, grid_j, p, T).sum(), (0, 1)))
    g = [float(v) for v in gfn(101325.0, 296.0)]
    res = {
        "name": "bench_rtm_lbl",
        "n_lines": lines.n_lines,
        "n_grid": int(nu.size),
        "hapi_s": t_hapi,
        "jax_compile_s": t_compile,
        "jax_run_s_median": t_jax,
        "speedup": t_hapi / t_jax,
        "max_rel_err_vs_hapi": err,
        "core_window_half_points": core,
        "jax_dense_run_s_median": t_dense,
        "max_rel_err_dense_vs_hapi": err_dense,
        "grad_sum_wrt_p_T": g,
        "versions": {
            "plumax_rtm": pr.__version__,
            "hapi": hapi.HAPI_VERSION,
            "jax": jax.__version__,
        },
        "backend": jax.default_backend(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
    }
    print(f"{'impl':8s} {'time (s)':>10s} {'rel err':>10s}")
    print(f"{'HAPI':8s} {t_hapi:10.4f} {'-':>10s}")
    print(
        f"{'JAX':8s} {t_jax:10.4f} {err:10.2e}   "
        f"(compile {t_compile:.2f} s, speed-up {t_hapi / t_jax:.1f}x)"
    )
    print(
        f"{'JAX dense':8s} {t_dense:10.4f} {err_dense:10.2e}   (speed-up {t_hapi / t_dense:.1f}x)"
    )
    print(f"grad of sum(sigma) w.r.t. (p, T): {g}")
    write_json_atomic(OUT, res)


if __name__ == "__main__":
    main()
