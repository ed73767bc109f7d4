"""Benchmark: GaussianPlume column image, JAX (jit+vmap, float32) vs NumPy, same run.

Problem: a 512 x 512 column image (ppm·m) for a batch of 64 parameter sets, float32.
Reports points/s (pixels x batch per second), the ratio to a straightforward NumPy
implementation of the same closed-form column on the same inputs, the machine's
measured exp throughput (jit'd ``jnp.exp`` over a large float32 array: the roofline,
since every pixel needs one exp), the fraction of that roofline reached, and the cost of
the gradient of the image (w.r.t. all four params, through a scalar loss) relative to a
forward evaluation.

    uv run python benchmarks/bench_transport_plume.py            # 512x512 x 64
    uv run python benchmarks/bench_transport_plume.py --quick    # 128x128 x 8
"""

from __future__ import annotations

import argparse
import os
import pathlib
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from _results import write_json_atomic

import plumax_core
import plumax_transport
from plumax_core import MetField
from plumax_transport import ColumnImage, GaussianPlume

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def timeit(fn, repeats):
    fn()  # warm-up (after compile)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def numpy_column(Q, x0, y0, X, Y, ux, uy, u, n_air):
    """Straightforward NumPy: class D rural Briggs σy, closed-form column in ppm·m."""
    out = np.empty((Q.size,) + X.shape, dtype=np.float32)
    ex, ey = ux / u, uy / u
    for b in range(Q.size):
        dx, dy = X - x0[b], Y - y0[b]
        xp = dx * ex + dy * ey
        yp = -dx * ey + dy * ex
        down = xp > 0
        xs = np.where(down, xp, 1.0)
        sy = 0.08 * xs / np.sqrt(1.0 + 1e-4 * xs)
        col = Q[b] / (np.sqrt(2 * np.pi) * u * sy) * np.exp(-0.5 * (yp / sy) ** 2)
        out[b] = np.where(down, col / 16.04e-3 / n_air * 1e6, 0.0)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    n, batch = (128, 8) if args.quick else (512, 64)
    npts = n * n * batch

    x = np.linspace(-500.0, 4500.0, n).astype(np.float32)
    y = np.linspace(-2500.0, 2500.0, n).astype(np.float32)
    model = GaussianPlume(ColumnImage(x, y, units="ppm_m"))
    met = MetField.uniform(4.0, 250.0, stability="D", pblh=800.0)
    rng = np.random.default_rng(0)
    params = {
        "Q": jnp.asarray(rng.uniform(0.01, 1.0, batch), jnp.float32),
        "x0": jnp.asarray(rng.uniform(-200, 200, batch), jnp.float32),
        "y0": jnp.asarray(rng.uniform(-200, 200, batch), jnp.float32),
        "H": jnp.asarray(rng.uniform(0.0, 8.0, batch), jnp.float32),
    }

    fwd = jax.jit(jax.vmap(lambda p: model(p, met).values))
    t0 = time.perf_counter()
    out = fwd(params).block_until_ready()
    compile_fwd = time.perf_counter() - t0
    t_fwd = timeit(lambda: fwd(params).block_until_ready(), args.repeats)

    w = jnp.asarray(rng.standard_normal((n, n)), jnp.float32)
    grad = jax.jit(jax.vmap(jax.grad(lambda p: jnp.sum(w * model(p, met).values))))
    t0 = time.perf_counter()
    jax.block_until_ready(grad(params))
    compile_grad = time.perf_counter() - t0
    t_grad = timeit(lambda: jax.block_until_ready(grad(params)), args.repeats)

    # the same gradient in forward mode (4 tangents through one fused pass)
    gradf = jax.jit(jax.vmap(jax.jacfwd(lambda p: jnp.sum(w * model(p, met).values))))
    jax.block_until_ready(gradf(params))
    t_gradf = timeit(lambda: jax.block_until_ready(gradf(params)), args.repeats)
    gr, gf = grad(params), gradf(params)
    grad_agree = max(float(jnp.max(jnp.abs(gr[k] - gf[k]) / (jnp.abs(gr[k]) + 1e-30))) for k in gr)

    big = jnp.asarray(rng.uniform(-5, 0, npts), jnp.float32)
    expf = jax.jit(jnp.exp)
    expf(big).block_until_ready()
    t_exp = timeit(lambda: expf(big).block_until_ready(), args.repeats)

    X, Y = np.meshgrid(x, y)
    ux, uy = float(met.u), float(met.v)
    u = float(np.hypot(ux, uy))
    n_air = 101325.0 / (8.314462618 * 288.15)
    pn = {k: np.asarray(v) for k, v in params.items()}
    np_args = (pn["Q"], pn["x0"], pn["y0"], X, Y, np.float32(ux), np.float32(uy), np.float32(u))
    ref = numpy_column(*np_args, np.float32(n_air))
    t_np = timeit(lambda: numpy_column(*np_args, np.float32(n_air)), max(1, args.repeats // 2))
    scale = float(np.max(np.abs(ref)))
    max_abs_err = float(np.max(np.abs(np.asarray(out) - ref))) / scale

    rows = [
        ("jax jit+vmap forward", t_fwd, npts / t_fwd),
        ("numpy forward", t_np, npts / t_np),
        ("jax jit+vmap grad, reverse mode", t_grad, npts / t_grad),
        ("jax jit+vmap grad, forward mode", t_gradf, npts / t_gradf),
        ("jnp.exp roofline (1 exp/point)", t_exp, npts / t_exp),
    ]
    result = {
        "benchmark": "bench_transport_plume",
        "problem": {"grid": [n, n], "batch": batch, "points": npts, "dtype": "float32"},
        "timings_s": {
            "jax_forward": t_fwd,
            "jax_forward_compile": compile_fwd,
            "jax_grad": t_grad,
            "jax_grad_compile": compile_grad,
            "jax_grad_forward_mode": t_gradf,
            "numpy_forward": t_np,
            "exp_roofline": t_exp,
        },
        "points_per_s": {r[0]: r[2] for r in rows},
        "speedup_vs_numpy": t_np / t_fwd,
        "fraction_of_exp_roofline": t_exp / t_fwd,
        "grad_over_forward": t_grad / t_fwd,
        "grad_forward_mode_over_forward": t_gradf / t_fwd,
        "grad_modes_max_rel_diff": grad_agree,
        "max_abs_err_vs_numpy_over_peak": max_abs_err,
        "targets": {"speedup_vs_numpy": 10.0, "fraction_of_exp_roofline": 0.5, "grad": 4.0},
        "versions": {
            "plumax_core": plumax_core.__version__,
            "plumax_transport": plumax_transport.__version__,
            "jax": jax.__version__,
            "numpy": np.__version__,
        },
        "machine": {
            "backend": jax.default_backend(),
            "devices": [str(d) for d in jax.devices()],
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "load_avg_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        },
    }
    print(f"\nGaussianPlume column image {n}x{n} x batch {batch} (float32, {npts:,} points)")
    print(f"{'implementation':34s} {'time (s)':>10s} {'Mpoints/s':>12s}")
    for name, t, pps in rows:
        print(f"{name:34s} {t:10.4f} {pps / 1e6:12.1f}")
    print(f"speed-up vs NumPy: {result['speedup_vs_numpy']:.1f}x (target >= 10x)")
    print(f"fraction of exp roofline: {result['fraction_of_exp_roofline']:.2f} (target >= 0.5)")
    print(
        f"grad / forward: reverse {result['grad_over_forward']:.2f}, forward mode "
        f"{result['grad_forward_mode_over_forward']:.2f} (target <= 4)"
    )
    print(f"max |jax - numpy| / peak: {max_abs_err:.2e}")
    print(f"compile: forward {compile_fwd:.2f} s, grad {compile_grad:.2f} s")

    name = "bench_transport_plume" + ("_quick" if args.quick else "")
    write_json_atomic(RESULTS / f"{name}.json", result)


if __name__ == "__main__":
    main()
