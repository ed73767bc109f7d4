"""Benchmark: the Tier III finite-volume engine (``advance``), float32, against NumPy.

Cell updates per second, ``nx * ny * nz * n_substeps / t``, of one call of
:func:`plumax_transport._fv_solver.advance` (advection + explicit horizontal diffusion +
backward-Euler vertical diffusion, Lie-split per substep) for the schemes ``"upwind"``
(forward Euler, donor cell), ``"limited"`` (SSP-RK3, MUSCL van Leer, positivity blend)
and ``"weno5"`` (SSP-RK3, WENO-JS in x and y, limited in z), on 128 x 128 x 20 cells
(``--quick``: 32 x 32 x 10) with 20 substeps per call (dispatch amortised).

**Case.** 1 km cells; 20 levels stretched to 3 km (``z_edges = 3000 s^1.5``, ``s`` in
[0, 1]: 33 m at the ground, 220 m at the top). Winds on the C-grid faces: ``u = 5 m/s x
(z / 500 m)^0.15`` (a power-law profile, clamped to [0.5, 1.5] of 5 m/s) times ``1 +
0.2 sin(2 pi y / 64 km)``, ``v = 1 + 0.5 cos(2 pi x / 50 km)`` m/s, ``w`` = 5 mm/s x a
horizontal sine pattern on the interior level edges. Diffusivity:
:class:`MoninObukhovK` (``K_h`` 50 m^2/s; ``K_z`` Holtslag-Boville with ``u*`` 0.35 m/s,
``L`` = -100 m and a boundary-layer height varying from 800 to 1200 m over the domain).
Open west/east/south/north faces (background 0), closed bottom and top. The state: two
Gaussian plumes (1e-6 kg/m^3 peak) in the lowest kilometre and exact zeros elsewhere (so
the positivity limiter acts), plus a constant source in three ground cells. Substep:
0.9 x :func:`stable_time_step` of the limited scheme (the same ``dt`` for every scheme).

**Peer.** ``packages/plumax-transport/tests/fv_numpy_reference.py`` (``Reference.advance``:
the same donor-cell and van Leer schemes with the same positivity blend, SSP-RK3 and
Lie splitting, written with index maps in plain NumPy; its vertical diffusion solves
each column with ``scipy.linalg.solve_banded`` in a Python loop). It has no WENO5. It
computes in float64 whatever it is given (its constructor casts ``K`` and the source to
float64, which promotes every update; given float32 winds and state, only the first
stage's advective flux would be float32), so it is given the float32 case's values
converted to float64 (its output dtype is recorded).
Before timing, both run the benchmark case once and the largest difference of the
states relative to the state's maximum (and of the outflow) is recorded; a float64 JAX
run of the same case (``jax.enable_x64``) is compared too, so that the float32 figure
is known to be rounding and not a different computation. Timed apart: the peer's
explicit part alone (the same substep loop without the vertical solves), since its
per-column loop dominates it; ``explicit_ratio_lower_bound`` divides that by JAX's whole
step, a lower bound on JAX's speed-up on the explicit part. Also timed: JAX's vertical
solve alone (``implicit_vertical_diffusion`` n_substeps times in a ``lax.scan``).

**Timing.** Each row's first call (trace, compile, run; ``compile_s`` is the lowering
plus XLA compile time ``jax.monitoring`` reports during it) is timed apart; the steady
state is the median of ``--repeats`` (default 3) later calls, each ended by
``jax.block_until_ready``, taken in rounds that call JAX and NumPy of one scheme in
turn (a change of the machine's load falls on both alike). Same inputs every call.

Writes the entry ``"full [<backend>]"`` or ``"quick [<backend>]"`` of
``results/bench_transport_eulerian.json`` (``update_json_atomic``). The same script runs
on a GPU unchanged (JAX device placement; the NumPy peer stays on the CPU). The load
average is recorded before and after: on a shared 2-core machine the numbers move with it.

    uv run python benchmarks/bench_transport_eulerian.py            # 128 x 128 x 20
    uv run python benchmarks/bench_transport_eulerian.py --quick    # 32 x 32 x 10
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import pathlib
import statistics
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy
from _compile_timing import first_call
from _machine import machine_facts
from _results import update_json_atomic

import plumax_transport
from plumax_transport._fv_advection import FaceWinds
from plumax_transport._fv_boundary import Boundaries
from plumax_transport._fv_diffusion import MoninObukhovK, implicit_vertical_diffusion
from plumax_transport._fv_grid import FVGrid
from plumax_transport._fv_solver import advance, stable_time_step

ROOT = pathlib.Path(__file__).resolve().parent
RESULTS = ROOT / "results"
REFERENCE_PATH = ROOT.parent / "packages/plumax-transport/tests/fv_numpy_reference.py"
CELL = 1000.0  # m
TOP = 3000.0  # m
SPEED = 5.0  # m/s
KH = 50.0  # m^2/s
USTAR, OBUKHOV = 0.35, -100.0
SCHEMES = ("upwind", "limited", "weno5")
PEER_SCHEMES = ("upwind", "limited")
TARGET_RATIO = 10.0  # JAX / NumPy on 2 CPU cores (the target)


def load_reference():
    spec = importlib.util.spec_from_file_location("fv_numpy_reference", REFERENCE_PATH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# -- the case -------------------------------------------------------------------------


def make_case(nx: int, ny: int, nz: int) -> dict:
    """Grid, winds, diffusivities, state and source as float32 NumPy arrays."""
    f = np.float32
    x = (np.arange(nx) + 0.5) * CELL
    y = (np.arange(ny) + 0.5) * CELL
    z_edges = TOP * np.linspace(0.0, 1.0, nz + 1) ** 1.5
    zc = 0.5 * (z_edges[1:] + z_edges[:-1])
    xe, ye = np.arange(nx + 1) * CELL, np.arange(ny + 1) * CELL
    prof = np.clip((zc / 500.0) ** 0.15, 0.5, 1.5)
    u = SPEED * prof[:, None, None] * (1.0 + 0.2 * np.sin(2 * np.pi * y / 64e3))[None, :, None]
    u = np.broadcast_to(u, (nz, ny, nx + 1))
    v = 1.0 + 0.5 * np.cos(2 * np.pi * x / 50e3)[None, None, :]
    v = np.broadcast_to(v, (nz, ny + 1, nx))
    w = np.zeros((nz + 1, ny, nx))
    pattern = np.sin(2 * np.pi * y / 40e3)[:, None] * np.cos(2 * np.pi * x / 30e3)[None, :]
    w[1:-1] = 0.005 * pattern
    pblh = 1000.0 + 200.0 * np.sin(2 * np.pi * (x[None, :] + y[:, None]) / (xe[-1] + ye[-1]))
    diff = MoninObukhovK(kh=KH)
    kh = np.asarray(diff.horizontal(jnp.asarray(zc, f)))
    kz = np.asarray(diff.vertical(jnp.asarray(z_edges, f), USTAR, OBUKHOV, jnp.asarray(pblh, f)))
    X, Y = np.meshgrid(x, y)
    q = np.zeros((nz, ny, nx))
    for cx, cy, sx in ((0.3, 0.4, 0.06), (0.6, 0.7, 0.1)):
        blob = np.exp(
            -0.5 * (((X - cx * xe[-1]) ** 2 + (Y - cy * ye[-1]) ** 2) / (sx * xe[-1]) ** 2)
        )
        q += 1e-6 * blob[None] * np.exp(-zc / 400.0)[:, None, None]
    q[q < 1e-9] = 0.0  # exact zeros away from the plumes: the positivity blend acts
    src = np.zeros((nz, ny, nx))
    for fx, fy in ((0.2, 0.2), (0.5, 0.5), (0.8, 0.3)):
        src[0, int(fy * ny), int(fx * nx)] = 1e-9  # kg m^-3 s^-1
    return {
        "x": x,
        "y": y,
        "z_edges": z_edges,
        "u": u.astype(f),
        "v": v.astype(f),
        "w": w.astype(f),
        "kh": kh.astype(f),
        "kz": np.broadcast_to(kz, (nz + 1, ny, nx)).astype(f),
        "q": q.astype(f),
        "source": src.astype(f),
    }


def jax_inputs(case: dict, dtype) -> dict:
    return {
        "grid": FVGrid(case["x"], case["y"], case["z_edges"]),
        "winds": FaceWinds(
            u=jnp.asarray(case["u"], dtype),
            v=jnp.asarray(case["v"], dtype),
            w=jnp.asarray(case["w"], dtype),
        ),
        "kh": jnp.asarray(case["kh"], dtype),
        "kz": jnp.asarray(case["kz"], dtype),
        "source": jnp.asarray(case["source"], dtype),
        "q": jnp.asarray(case["q"], dtype),
    }


def jax_call(inp: dict, scheme: str, dt: float, n_sub: int):
    bnd = Boundaries()  # open sides (background 0), closed bottom and top

    def call():
        return advance(
            inp["q"],
            grid=inp["grid"],
            winds=inp["winds"],
            kh=inp["kh"],
            kz=inp["kz"],
            source=inp["source"],
            dt=dt,
            n_substeps=n_sub,
            boundaries=bnd,
            scheme=scheme,
        )

    return call


def vertical_only_call(inp: dict, h: float, n_sub: int):
    """JAX's backward-Euler vertical solve alone, n_sub times in a scan."""
    dz = inp["grid"].dz.astype(inp["q"].dtype)

    @jax.jit
    def run(q, kz):
        def body(c, _):
            return implicit_vertical_diffusion(c, kz, dz, h), None

        return jax.lax.scan(body, q, None, length=n_sub)[0]

    return lambda: run(inp["q"], inp["kz"])


def numpy_reference(ref, case: dict, scheme: str):
    """The peer on the float32 case's values, as float64 (module docstring)."""
    kinds = {"x": ("open", "open"), "y": ("open", "open"), "z": ("closed", "closed")}
    c = {k: np.asarray(case[k], np.float64) for k in ("u", "v", "w", "kh", "kz", "source")}
    return ref.Reference(
        CELL,
        CELL,
        case["z_edges"],
        c["u"],
        c["v"],
        c["w"],
        c["kh"],
        c["kz"],
        c["source"],
        kinds,
        0.0,
        scheme,
    )


def numpy_explicit_only(r, q, dt: float, n_sub: int):
    """The peer's substep loop without the vertical solves (its ``advance`` otherwise)."""
    h = dt / n_sub
    for _ in range(n_sub):
        if r.scheme == "upwind":
            q, _ = r.euler(q, h)
        else:
            q1, _ = r.euler(q, h)
            e1, _ = r.euler(q1, h)
            e2, _ = r.euler(0.75 * q + 0.25 * e1, h)
            q = q / 3.0 + (2.0 / 3.0) * e2
    return q


# -- timing ---------------------------------------------------------------------------


def timed(fn) -> float:
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - t0


def interleaved(fns: dict, repeats: int) -> dict:
    """``repeats`` rounds, each calling every function once in turn."""
    ts = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            ts[name].append(timed(fn))
    return ts


def rel_diff(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


# -- main -----------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--substeps", type=int, default=20)
    args = ap.parse_args()
    if args.repeats < 1 or args.substeps < 1:
        ap.error("--repeats and --substeps must be >= 1")
    nx, ny, nz = (32, 32, 10) if args.quick else (128, 128, 20)
    n_sub = args.substeps
    n_cells = nx * ny * nz
    load_before = os.getloadavg()
    t_start = time.perf_counter()

    ref = load_reference()
    case = make_case(nx, ny, nz)
    inp = jax_inputs(case, jnp.float32)
    h = 0.9 * float(stable_time_step(inp["grid"], inp["winds"], inp["kh"], scheme="limited"))
    dt = n_sub * h

    # JAX's vertical solve alone
    vert = vertical_only_call(inp, h, n_sub)
    vert_first, _ = first_call(vert)
    vert_run = statistics.median(interleaved({"v": vert}, max(args.repeats, 3))["v"])

    rows = []
    for scheme in SCHEMES:
        call = jax_call(inp, scheme, dt, n_sub)
        first, (q_jax, out_jax) = first_call(call)
        row = {
            "scheme": scheme,
            "dtype": str(q_jax.dtype),
            **first,
            "min_q": float(jnp.min(q_jax)),
        }
        fns = {"jax": call}
        if scheme in PEER_SCHEMES:
            r = numpy_reference(ref, case, scheme)
            t0 = time.perf_counter()
            q_np, out_np = r.advance(np.asarray(case["q"], np.float64), dt, n_sub)
            peer_first = time.perf_counter() - t0
            with jax.enable_x64(True):
                q64, out64 = jax_call(jax_inputs(case, jnp.float64), scheme, dt, n_sub)()
                q64, out64 = np.asarray(q64), float(out64)
            row.update(
                {
                    "peer_dtype": str(np.asarray(q_np).dtype),
                    "peer_first_call_s": peer_first,
                    "max_rel_diff_state_f32_vs_numpy": rel_diff(q_jax, q_np),
                    "rel_diff_outflow_f32_vs_numpy": abs(float(out_jax) - out_np) / abs(out_np),
                    "max_rel_diff_state_f64_vs_numpy": rel_diff(q64, q_np),
                    "rel_diff_outflow_f64_vs_numpy": abs(out64 - out_np) / abs(out_np),
                }
            )
            q0 = np.asarray(case["q"], np.float64)
            fns["numpy"] = lambda r=r, q0=q0: r.advance(q0, dt, n_sub)
            fns["numpy_explicit"] = lambda r=r, q0=q0: numpy_explicit_only(r, q0, dt, n_sub)
        ts = interleaved(fns, args.repeats)
        t_jax = statistics.median(ts["jax"])
        row.update(
            {
                "run_s_median": t_jax,
                "run_s_all": ts["jax"],
                "cell_updates_per_s": n_cells * n_sub / t_jax,
            }
        )
        if "numpy" in ts:
            t_np = statistics.median(ts["numpy"])
            t_npe = statistics.median(ts["numpy_explicit"])
            row.update(
                {
                    "peer_run_s_median": t_np,
                    "peer_run_s_all": ts["numpy"],
                    "peer_cell_updates_per_s": n_cells * n_sub / t_np,
                    "peer_explicit_run_s_median": t_npe,
                    "peer_explicit_run_s_all": ts["numpy_explicit"],
                    "ratio_jax_over_numpy": t_np / t_jax,
                    "explicit_ratio_lower_bound": t_npe / t_jax,
                }
            )
        rows.append(row)

    load_after = os.getloadavg()
    wall = time.perf_counter() - t_start
    machine = machine_facts()
    setting = "quick" if args.quick else "full"
    result = {
        "benchmark": "bench_transport_eulerian",
        "setting": setting,
        "problem": {
            "cells_nz_ny_nx": [nz, ny, nx],
            "n_cells": n_cells,
            "n_substeps": n_sub,
            "substep_s": h,
            "dt_s": dt,
            "cell_m": CELL,
            "z_edges_m": [float(v) for v in case["z_edges"]],
            "winds": "u = 5 m/s x clip((z/500 m)^0.15, 0.5, 1.5) x (1 + 0.2 sin(2 pi y/64 km)); "
            "v = 1 + 0.5 cos(2 pi x/50 km) m/s; w = 5 mm/s sine pattern on interior edges",
            "diffusivity": f"MoninObukhovK(kh={KH}), u* {USTAR} m/s, L {OBUKHOV} m, "
            "pblh 800-1200 m varying in (y, x)",
            "boundaries": "open west/east/south/north (background 0), closed bottom/top",
            "state": "two Gaussian plumes (1e-6 kg/m^3 peak) in the lowest km, exact zeros "
            "elsewhere; constant 1e-9 kg m^-3 s^-1 source in 3 ground cells",
            "substep_rule": "0.9 x stable_time_step(scheme='limited'), the same for all schemes",
        },
        "peer": "tests/fv_numpy_reference.py Reference.advance (plain NumPy + scipy "
        "solve_banded per column in a Python loop), float64, on the float32 case's values; "
        "peer_explicit: its substep loop without the vertical solves",
        "timing": (
            "first_call_s: first call (trace, compile, run); compile_s = lowering_s + "
            "xla_compile_s from jax.monitoring; run_s_median: median of "
            f"{args.repeats} later calls in rounds (JAX, NumPy, NumPy explicit per scheme), "
            "each ended by jax.block_until_ready; cell_updates_per_s = nx ny nz n_substeps / "
            "run_s_median"
        ),
        "jax_vertical_solve_only": {
            **vert_first,
            "run_s_median": vert_run,
            "cell_updates_per_s": n_cells * n_sub / vert_run,
        },
        "rows": rows,
        "target_ratio": TARGET_RATIO,
        "repeats": args.repeats,
        "wall_s": wall,
        "load_average_before": list(load_before),
        "load_average_after": list(load_after),
        "versions": {
            "plumax_transport": plumax_transport.__version__,
            "jax": jax.__version__,
            "equinox": eqx.__version__,
            "numpy": np.__version__,
            "scipy": scipy.__version__,
        },
        "machine": machine,
    }

    print(
        f"\nadvance, {nz} x {ny} x {nx} cells, {n_sub} substeps of {h:.1f} s per call, "
        f"backend {machine['backend']} ({machine['device_kind']}), {machine['cpu_count']} CPUs, "
        f"jax {jax.__version__}, median of {args.repeats}"
    )
    hdr = (
        f"{'scheme':>8s} {'dtype':>7s} {'compile s':>9s} {'run s':>8s} {'cells/s':>9s} "
        f"{'NumPy s':>8s} {'NumPy c/s':>9s} {'ratio':>6s} {'expl. LB':>8s} {'rel diff':>8s} "
        f"{'f64 diff':>8s}"
    )
    print(hdr)
    for e in rows:
        line = (
            f"{e['scheme']:>8s} {e['dtype']:>7s} {e['compile_s']:9.2f} {e['run_s_median']:8.3f} "
            f"{e['cell_updates_per_s']:9.2e}"
        )
        if "peer_run_s_median" in e:
            line += (
                f" {e['peer_run_s_median']:8.2f} {e['peer_cell_updates_per_s']:9.2e} "
                f"{e['ratio_jax_over_numpy']:6.1f} {e['explicit_ratio_lower_bound']:8.1f} "
                f"{e['max_rel_diff_state_f32_vs_numpy']:8.1e} "
                f"{e['max_rel_diff_state_f64_vs_numpy']:8.1e}"
            )
        print(line)
    v = result["jax_vertical_solve_only"]
    print(
        f"NumPy peer computes in {rows[0].get('peer_dtype')}; 'expl. LB' = NumPy explicit part "
        f"alone / JAX whole step; JAX vertical solve alone: {v['run_s_median']:.3f} s "
        f"({v['cell_updates_per_s']:.2e} cells/s)"
    )
    fmt = lambda la: ", ".join(f"{x:.2f}" for x in la)  # noqa: E731
    print(
        f"load average (1, 5, 15 min): before {fmt(load_before)}; after {fmt(load_after)}; "
        f"wall {wall:.0f} s"
    )
    update_json_atomic(
        RESULTS / "bench_transport_eulerian.json", f"{setting} [{machine['backend']}]", result
    )


if __name__ == "__main__":
    main()
