"""Benchmark: backward receptor footprints (Tier II) and the regional inversion on them.

Issue #21's target: footprints of 1000 receptors x 500 particles x 24 h backward at 60 s
steps in under 60 s on CPU, with the peak memory; the same script runs on a GPU (JAX
device placement only, nothing here names a device).

**Setting.** :func:`plumax_transport.backward_footprints` of XCH4 column receptors
(:class:`ColumnReceptors`, ``units="xch4_ppb"``) on a 50 x 50 flux grid of 10 km cells
(500 km x 500 km, so that a 24 h fetch of 5-6 m/s, about 450 km, stays mostly on the
grid), float32. The met is uniform and varies hourly over 48 h (``from_timeseries``:
5 +- 1 m/s, the direction veering from 250 degrees by 2 degrees per hour, boundary layer
1000 m); the receptors lie in the eastern 300 km and are observed at four times (27,
33, 39, 45 h), each run going 24 h back. Turbulence: ``HomogeneousTurbulence`` with
sigma = (0.8, 0.8, 0.5) m/s and Lagrangian times (600, 600, 300) s, for which
:func:`plumax_transport.time_step` accepts 60 s: its limit is ``0.2 x min(tau_Lw = 300
s, h / (2 sigma_w) = 1000 s, dx / |U| = 1667 s)`` = 60 s. Hanna (1982) turbulence never
accepts 60 s: its vertical time scale has FLEXPART's 30 s floor, so its limit is at most
``0.2 x 30`` = 6 s in every regime (the script records the limits of four Hanna
boundary layers in the JSON), ten times the steps of this setting.

**Sizes** (receptors x particles x hours): 100 x 500 x 24 and the target 1000 x 500 x
24 (1440 steps; 7.2e8 particle-steps); ``--quick``: 20 and 50 receptors x 100 particles
x 6 h. ``batch_size`` is the library's default (16; ``--batch-size``).

**Timing.** Each size's first call (trace, compile, run; ``compile_s`` is the lowering
plus XLA compile time that ``jax.monitoring`` reports during it) is timed apart; the
run time is the median of ``--repeats`` (default 3) later calls with the same inputs
and key, each ended by ``jax.block_until_ready`` on the matrix. The wall time is
end to end, as a user sees it: the particle runs, the residence-time callback and the
host-side assembly of the sparse matrix. To say where the time goes, the script also
times the particle engine alone (:func:`run_particles` without the callback, one flat
state of ``batch_size x particles``, the same steps) and multiplies by the number of
batches: ``engine_only_estimate_s``; the rest is the callback (pblh lookup, cell index,
scatter-add into a dense ``batch x cells`` carry), the per-batch Python and the
host-side ``nonzero``.

**Memory.** ``peak_rss_mib``: ``resource.getrusage(RUSAGE_SELF).ru_maxrss``, the peak
resident set of the whole process since it started (JAX runtime, compiled code and all
buffers included; it never decreases, so the sizes run in increasing order and each
entry says how far the peak had risen by its end). ``tracemalloc_peak_mib``: the peak
of Python-heap allocations during one extra call of the largest size, which includes
NumPy arrays (the batches copied to the host, the sparse triplets) but not XLA's own
buffers. On a GPU, ``device_peak_bytes`` is the device allocator's
``peak_bytes_in_use`` (None on CPU). Also recorded: ``nnz`` and the bytes of the sparse
matrix (float32 values + two int32 indices per entry), and the dense per-batch carry.

**Inversion.** ``vardax_lite.OptimalInterpolation`` (float64, ``covariance="operator"``)
on the largest footprint: 1000 soundings x 2500 cells, a separable Matérn-3/2 prior (30
km) with a 50 % per-cell standard deviation of a smooth prior flux, 5 ppb noise, a
truth drawn from the prior. Timed: the posterior (mean and low-rank covariance
operator), its marginal standard deviations and the DOFS, first call apart, median of
the repeats. Peer in the same run: the dense IMI closed form in NumPy (information form,
``(K^T S_o^-1 K + S_a^-1)^-1``, two 2500 x 2500 inverses), with the largest relative
difference of the mean increment and of the posterior standard deviations.

Writes the entry ``"full [<backend>]"`` or ``"quick [<backend>]"`` of
``results/bench_transport_footprints.json`` (``update_json_atomic``: a GPU run keeps the
CPU entry). The machine's load average is recorded before and after.

    uv run python benchmarks/bench_transport_footprints.py            # target size
    uv run python benchmarks/bench_transport_footprints.py --quick    # smoke check
"""

from __future__ import annotations

import argparse
import math
import os
import pathlib
import resource
import statistics
import time
import tracemalloc

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import lineax as lx
import numpy as np
from _compile_timing import first_call
from _machine import machine_facts
from _results import update_json_atomic
from jax.experimental import sparse as jsparse

import plumax_core
import plumax_transport
import vardax_lite
from plumax_core import MetField
from plumax_core.linalg import separable_matern32
from plumax_transport import (
    ColumnReceptors,
    HannaTurbulence,
    HomogeneousTurbulence,
    backward_footprints,
    initial_state,
    run_particles,
    time_step,
)

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
HOUR = 3600.0
DT = 60.0  # s
CELL = 10_000.0  # m
NCELL = 50
EDGES = np.linspace(0.0, NCELL * CELL, NCELL + 1)
CENTRES = 0.5 * (EDGES[1:] + EDGES[:-1])
PBLH = 1000.0
SIGMAS = (0.8, 0.8, 0.5)  # m/s
TAUS = (600.0, 600.0, 300.0)  # s
OVERPASSES = np.array([27.0, 33.0, 39.0, 45.0]) * HOUR
TARGET_S = 60.0  # 1000 receptors x 500 particles x 24 h on CPU (issue #21)
NOISE = 5.0  # ppb
PRIOR_LENGTH = 30_000.0  # m
N_MAX = 1000


# -- inputs ---------------------------------------------------------------------------


def make_met() -> MetField:
    t = np.arange(49) * HOUR
    speed = 5.0 + np.sin(t / (6 * HOUR))
    return MetField.from_timeseries(
        t, speed, 250.0 + 2.0 * t / HOUR, stability=None, obukhov_length=-300.0, pblh=PBLH
    )


def make_receptors(n: int) -> tuple[ColumnReceptors, np.ndarray]:
    """The first ``n`` of a fixed set of 1000 columns and their times."""
    rng = np.random.default_rng(0)
    x = rng.uniform(200e3, 500e3, N_MAX)
    y = rng.uniform(50e3, 450e3, N_MAX)
    times = np.tile(OVERPASSES, N_MAX // OVERPASSES.size)
    return ColumnReceptors(x[:n], y[:n], units="xch4_ppb"), times[:n]


def hanna_limits() -> dict:
    """time_step's limit for Hanna turbulence in four boundary layers (no 60 s among them)."""
    out = {}
    for name, L, h in (
        ("convective L=-300 m, h=1000 m", -300.0, 1000.0),
        ("convective L=-50 m, h=1500 m", -50.0, 1500.0),
        ("very convective L=-10 m, h=2000 m", -10.0, 2000.0),
        ("neutral, h=1000 m", math.inf, 1000.0),
    ):
        met = MetField.uniform(5.0, 270.0, stability=None, obukhov_length=L, pblh=h)
        out[name] = time_step(met, HannaTurbulence())
    return out


# -- timing ---------------------------------------------------------------------------


def median_runs(fn, repeats: int) -> tuple[float, list[float]]:
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), ts


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def device_peak_bytes() -> int | None:
    stats = jax.devices()[0].memory_stats()
    return None if not stats else stats.get("peak_bytes_in_use")


# -- footprints -----------------------------------------------------------------------


def footprint_call(met, turbulence, n, n_particles, hours, batch_size):
    receptors, times = make_receptors(n)

    def call():
        fp = backward_footprints(
            receptors,
            met,
            x=EDGES,
            y=EDGES,
            time=times,
            duration=hours * HOUR,
            dt=DT,
            key=jr.key(1),
            n_particles=n_particles,
            turbulence=turbulence,
            batch_size=batch_size,
        )
        jax.block_until_ready(fp.matrix.data)
        return fp

    return call


def engine_call(met, turbulence, n_particles, hours, batch_size):
    """``run_particles`` alone (no callback) on one batch's particles, flat, backward."""
    receptors, times = make_receptors(batch_size)
    xr = np.repeat(np.asarray(receptors.x), n_particles).astype(np.float32)
    yr = np.repeat(np.asarray(receptors.y), n_particles).astype(np.float32)
    z = np.random.default_rng(3).uniform(0.0, PBLH, xr.size).astype(np.float32)
    state = initial_state(
        xr, yr, z, time=float(times[0]), met=met, turbulence=turbulence, key=jr.key(2)
    )
    n_steps = int(round(hours * HOUR / DT))

    def call():
        end, _ = run_particles(
            state, met, turbulence, key=jr.key(3), dt=DT, n_steps=n_steps, direction=-1
        )
        jax.block_until_ready(end.x)
        return end

    return call


# -- inversion ------------------------------------------------------------------------


def _matern32(coords, length):
    r = np.sqrt(3.0) * np.abs(coords[:, None] - coords[None, :]) / length
    return (1.0 + r) * np.exp(-r)


def inversion(fp, repeats: int) -> dict:
    """OI with the operator covariance on ``fp`` (float64) and the dense NumPy peer."""
    with jax.enable_x64(True):
        m, d = fp.matrix.shape
        X, Y = np.meshgrid(CENTRES, CENTRES)
        x_a = (1e-8 * (1.0 + 0.5 * np.sin(X / 90e3) * np.cos(Y / 130e3))).ravel()
        s = 0.5 * x_a
        L = np.linalg.cholesky(_matern32(CENTRES, PRIOR_LENGTH))
        rng = np.random.default_rng(5)
        truth = x_a + s * (L @ rng.standard_normal((NCELL, NCELL)) @ L.T).ravel()
        mat = jsparse.BCOO(
            (jnp.asarray(np.asarray(fp.matrix.data, np.float64)), fp.matrix.indices),
            shape=fp.matrix.shape,
        )
        K = np.asarray(mat.todense())
        y = K @ truth + NOISE * rng.standard_normal(m)
        B = separable_matern32(CENTRES, CENTRES, PRIOR_LENGTH, jnp.asarray(s.reshape(NCELL, -1)))
        R = lx.DiagonalLinearOperator(jnp.full(m, NOISE**2))
        yj = jnp.asarray(y)

        def oi_call():
            oi = vardax_lite.OptimalInterpolation(mat, R, B, x_a, covariance="operator")
            post = oi.posterior(yj)
            out = (post.mean, post.std(), oi.dfs())
            jax.block_until_ready(out)
            return out

        first, (mean, std, dofs) = first_call(oi_call)
        run, runs = median_runs(oi_call, repeats)

        C1 = _matern32(CENTRES, PRIOR_LENGTH)

        def dense_peer():
            Sa = s[:, None] * np.kron(C1, C1) * s[None, :]
            Sa_inv = np.linalg.inv(Sa)
            S_hat = np.linalg.inv(K.T @ K / NOISE**2 + Sa_inv)
            inc = S_hat @ (K.T @ (y - K @ x_a)) / NOISE**2
            return inc, np.sqrt(np.diag(S_hat)), float(np.sum(S_hat * Sa_inv))

        peer_run, peer_runs = median_runs(dense_peer, repeats)
        inc_ref, std_ref, tr = dense_peer()
        inc = np.asarray(mean) - x_a
        return {
            "n_obs": int(m),
            "n_cells": int(d),
            "covariance": "operator",
            "dtype": "float64",
            "prior": "separable Matern-3/2, 30 km, per-cell sd 50 % of a smooth 1e-8 kg m-2 s-1",
            "noise_ppb": NOISE,
            **first,
            "run_s_median": run,
            "run_s_all": runs,
            "dofs": float(dofs),
            "dofs_dense_peer": float(d - tr),
            "peer": "NumPy dense IMI information form (two 2500 x 2500 inverses)",
            "peer_run_s_median": peer_run,
            "peer_run_s_all": peer_runs,
            "max_rel_diff_mean_increment": float(
                np.max(np.abs(inc - inc_ref)) / np.max(np.abs(inc_ref))
            ),
            "max_rel_diff_posterior_std": float(np.max(np.abs(np.asarray(std) / std_ref - 1))),
        }


# -- main -----------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")
    # (receptors, particles, hours), increasing: the peak RSS only ever rises
    sizes = [(20, 100, 6), (50, 100, 6)] if args.quick else [(100, 500, 24), (1000, 500, 24)]
    load_before = os.getloadavg()
    t_start = time.perf_counter()

    met = make_met()
    turbulence = HomogeneousTurbulence(*SIGMAS, TAUS)
    dt_limit = time_step(met, turbulence, dx=CELL)
    time_step(met, turbulence, dt=DT, dx=CELL)  # raises if 60 s is not allowed
    limits_hanna = hanna_limits()
    rss_baseline = peak_rss_mib()

    entries, fp = [], None
    for n, n_particles, hours in sizes:
        n_steps = int(round(hours * HOUR / DT))
        call = footprint_call(met, turbulence, n, n_particles, hours, args.batch_size)
        first, fp = first_call(call)
        run, runs = median_runs(call, args.repeats)
        eng = engine_call(met, turbulence, n_particles, hours, args.batch_size)
        eng_first, _ = first_call(eng)
        eng_run, _ = median_runs(eng, args.repeats)
        n_batches = math.ceil(n / args.batch_size)
        rows = np.asarray(fp.matrix.todense()).sum(1)
        entries.append(
            {
                "receptors": n,
                "particles": n_particles,
                "hours": hours,
                "n_steps": n_steps,
                "batch_size": args.batch_size,
                "dtype": str(fp.matrix.dtype),
                **first,
                "run_s_median": run,
                "run_s_all": runs,
                "particle_steps_per_s": n * n_particles * n_steps / run,
                "engine_only_batch_s": eng_run,
                "engine_only_compile_s": eng_first["compile_s"],
                "engine_only_estimate_s": eng_run * n_batches,
                "n_batches": n_batches,
                "fill_fraction": fp.fill_fraction,
                "nnz": int(fp.matrix.nse),
                "sparse_matrix_bytes": int(fp.matrix.nse) * (4 + 2 * 4),
                "dense_batch_carry_bytes": args.batch_size * NCELL * NCELL * 4,
                "receptors_with_empty_footprint": int(np.sum(rows == 0)),
                "peak_rss_mib": peak_rss_mib(),
                "device_peak_bytes": device_peak_bytes(),
            }
        )

    # Python-heap peak of one more call of the largest size (untimed)
    tracemalloc.start()
    footprint_call(met, turbulence, *sizes[-1], args.batch_size)()
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    entries[-1]["tracemalloc_peak_mib"] = traced_peak / 2**20

    inv = inversion(fp, args.repeats)
    inv["peak_rss_mib"] = peak_rss_mib()
    load_after = os.getloadavg()
    wall = time.perf_counter() - t_start
    machine = machine_facts()
    setting = "quick" if args.quick else "full"
    target = entries[-1]
    meets = None
    if not args.quick:
        meets = target["run_s_median"] < TARGET_S
    result = {
        "benchmark": "bench_transport_footprints",
        "setting": setting,
        "problem": {
            "sizes_receptors_particles_hours": sizes,
            "dt_s": DT,
            "dt_limit_s": dt_limit,
            "dt_reason": (
                "HomogeneousTurbulence with sigma (0.8, 0.8, 0.5) m/s and Lagrangian times "
                "(600, 600, 300) s: time_step's limit is 0.2 x min(tau_Lw 300 s, h/(2 sigma_w) "
                "1000 s, dx/|U| 1667 s) = 60 s. Hanna's limits (hanna_dt_limits_s) are <= 6 s "
                "in every regime (30 s floor of tau_w)"
            ),
            "hanna_dt_limits_s": limits_hanna,
            "turbulence": {"sigma_m_s": SIGMAS, "lagrangian_time_s": TAUS},
            "receptors": "ColumnReceptors xch4_ppb, x in [200, 500] km, y in [50, 450] km, "
            "times 27/33/39/45 h, each 24 h (or 6 h) back",
            "met": "uniform, hourly over 48 h: 5 +- 1 m/s, 250 deg veering 2 deg/h, pblh 1000 m",
            "grid": {"cells": [NCELL, NCELL], "cell_m": CELL},
        },
        "timing": (
            "first_call_s: the first call (trace, compile, run); compile_s = lowering_s + "
            "xla_compile_s from jax.monitoring during it; run_s_median: median of "
            f"{args.repeats} later calls, end to end (particles, callback, sparse assembly), "
            "each ended by jax.block_until_ready. engine_only_estimate_s: run_particles "
            "without the callback on one flat batch of batch_size x particles, times the "
            "number of batches"
        ),
        "memory": (
            "peak_rss_mib: ru_maxrss of the whole process since it started (monotone; sizes "
            "in increasing order); tracemalloc_peak_mib: peak Python-heap allocations "
            "(NumPy included, XLA buffers not) during one extra call of the largest size; "
            "device_peak_bytes: the device allocator's peak_bytes_in_use (None on CPU)"
        ),
        "rss_baseline_mib": rss_baseline,
        "footprints": entries,
        "inversion": inv,
        "target_s": TARGET_S,
        "target_size": "1000 receptors x 500 particles x 24 h at 60 s",
        "meets_target": meets,
        "repeats": args.repeats,
        "wall_s": wall,
        "load_average_before": list(load_before),
        "load_average_after": list(load_after),
        "versions": {
            "plumax_core": plumax_core.__version__,
            "plumax_transport": plumax_transport.__version__,
            "vardax_lite": vardax_lite.__version__,
            "jax": jax.__version__,
            "equinox": eqx.__version__,
            "lineax": lx.__version__,
            "numpy": np.__version__,
        },
        "machine": machine,
    }

    print(
        f"\nbackward_footprints, {target['dtype']}, dt = {DT:g} s (time_step limit "
        f"{dt_limit:g} s, HomogeneousTurbulence), {NCELL}x{NCELL} cells of {CELL / 1e3:g} km, "
        f"backend {machine['backend']} ({machine['device_kind']}), {machine['cpu_count']} "
        f"CPUs, median of {args.repeats}"
    )
    hdr = (
        f"{'rec':>5s} {'part':>5s} {'h':>3s} {'steps':>5s} {'compile s':>9s} {'first s':>8s} "
        f"{'run s':>7s} {'p-steps/s':>9s} {'engine s':>8s} {'fill':>6s} {'nnz':>8s} "
        f"{'RSS MiB':>8s}"
    )
    print(hdr)
    for e in entries:
        print(
            f"{e['receptors']:5d} {e['particles']:5d} {e['hours']:3d} {e['n_steps']:5d} "
            f"{e['compile_s']:9.2f} {e['first_call_s']:8.2f} {e['run_s_median']:7.2f} "
            f"{e['particle_steps_per_s']:9.2e} {e['engine_only_estimate_s']:8.2f} "
            f"{e['fill_fraction']:6.3f} {e['nnz']:8d} {e['peak_rss_mib']:8.0f}"
        )
    print(
        f"tracemalloc peak (largest size, Python heap incl. NumPy): "
        f"{entries[-1]['tracemalloc_peak_mib']:.1f} MiB; RSS after import and setup "
        f"{rss_baseline:.0f} MiB; device peak {entries[-1]['device_peak_bytes']}"
    )
    print(
        f"OI ({inv['n_obs']} obs x {inv['n_cells']} cells, operator covariance, float64): "
        f"compile {inv['compile_s']:.2f} s, first {inv['first_call_s']:.2f} s, run "
        f"{inv['run_s_median']:.3f} s, DOFS {inv['dofs']:.1f}; dense NumPy IMI peer "
        f"{inv['peer_run_s_median']:.2f} s (DOFS {inv['dofs_dense_peer']:.1f}); max rel diff: "
        f"mean increment {inv['max_rel_diff_mean_increment']:.1e}, posterior sd "
        f"{inv['max_rel_diff_posterior_std']:.1e}"
    )
    if meets is not None:
        print(
            f"target: {result['target_size']} under {TARGET_S:g} s on CPU: run "
            f"{target['run_s_median']:.1f} s -> {'met' if meets else 'NOT met'}"
            + ("" if machine["backend"] == "cpu" else " (this run is not on a CPU)")
        )
    fmt = lambda la: ", ".join(f"{v:.2f}" for v in la)  # noqa: E731
    print(
        f"load average (1, 5, 15 min): before {fmt(load_before)}; after {fmt(load_after)}; "
        f"wall {wall:.0f} s"
    )
    update_json_atomic(
        RESULTS / "bench_transport_footprints.json", f"{setting} [{machine['backend']}]", result
    )


if __name__ == "__main__":
    main()
