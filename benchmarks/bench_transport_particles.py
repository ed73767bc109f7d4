"""Benchmark: the Tier II Lagrangian particle engine (``run_particles``), float32.

Particle-steps per second (particles x steps / steady-state run time) of
:func:`plumax_transport.run_particles` for four cases, each released from a point
source at 20 m (``initial_state``), ``dt`` = 4 s (within ``time_step``'s limit for
each case, checked: 5.6 s for a, 4.7 s for c):

a. ``hanna``: uniform, steady met (5 m/s, convective: L = -50 m, pblh 1000 m) and
   ``HannaTurbulence``;
b. ``homogeneous``: the same met and ``HomogeneousTurbulence`` (constant sigmas and
   time scales: the cheapest turbulence model);
c. ``gridded``: a time-varying gridded met (3 times x 41 x 41 columns, 1 km spacing,
   wind and pblh varying in t, y, x, L = -50 m) and ``HannaTurbulence``;
d. ``hanna+deposit``: case a with an ``accumulate`` callback that deposits every
   active particle onto a 100 x 100 grid each step (cloud-in-cell: 4 bilinear weights
   per particle, one scatter-add), as a forward model gathering a concentration does.

Sizes: N = 10^4 and 10^5 particles x 500 steps (``--quick``: 10^3 x 100). The first
call of each row (trace, compile, one run) is timed apart, and ``compile_s`` is the
lowering plus XLA compile time ``jax.monitoring`` reports during it. The steady-state
time is the median of ``--repeats`` (default 5, >= 3) later calls, each ended by
``jax.block_until_ready``, taken in rounds that call every row of one size once in turn
(so a change of the machine's load falls on the engine and its reference alike). Every
call gets the same inputs and key.

**Roofline reference**, measured in the same run on the same machine and sizes: the
irreducible work of a Langevin step written as plainly as possible in JAX, one jitted
``lax.scan`` of the same length whose body draws the ``3 N`` standard normals with
``jr.normal(jr.fold_in(key, k), (3, N))`` (the engine's draw, same key implementation),
updates 3 velocity arrays by one exact Ornstein-Uhlenbeck step with constant
coefficients (``u = r u + a xi``) and 3 position arrays by ``x = x + (U + u) dt``. It
has no turbulence profile, no met interpolation, no Heun corrector, no reflection and
no domain test, so it bounds the engine's speed from above and is no target; the engine's
fraction of it says how much the physics costs on top of the random numbers and the
state update. Measured beside it: the RNG alone (the same scan with the draws summed
into one (3, N) array; normals/s) and the memory bandwidth (STREAM-style kernels over
2^25 float32, 128 MiB per array: jitted JAX ``b = a x`` into a fresh output and, with
the output donated, ``a x`` and ``a x + y`` in place; NumPy ``np.copyto`` and
``np.multiply(..., out=)``; bytes/s counting each array read or written once).

Writes the entry ``"full [<backend>]"`` or ``"quick [<backend>]"`` of
``results/bench_transport_particles.json`` (``update_json_atomic``: a GPU run keeps the
CPU entry). On a GPU the same script runs unchanged (JAX device placement). The
machine's load average is recorded before and after: on a shared 2-core machine the
numbers move with it.

    uv run python benchmarks/bench_transport_particles.py            # 10^4, 10^5 x 500
    uv run python benchmarks/bench_transport_particles.py --quick    # 10^3 x 100
"""

from __future__ import annotations

import argparse
import os
import pathlib
import platform
import statistics
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from _compile_timing import first_call
from _results import update_json_atomic

import plumax_core
import plumax_transport
from plumax_core import MetField
from plumax_transport import (
    HannaTurbulence,
    HomogeneousTurbulence,
    initial_state,
    run_particles,
    time_step,
)

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
DT = 4.0  # s
SOURCE_Z = 20.0  # m
L_CONVECTIVE = -50.0  # m
PBLH = 1000.0  # m
SPEED = 5.0  # m/s, from the west (u = 5, v = 0)
TARGET = 2e7  # particle-steps/s on 2 CPU cores, float32 (issue #21)


# -- inputs ---------------------------------------------------------------------------


def uniform_met() -> MetField:
    return MetField.uniform(SPEED, 270.0, stability=None, obukhov_length=L_CONVECTIVE, pblh=PBLH)


def gridded_met() -> MetField:
    """3 times x 41 x 41 columns (1 km), wind and pblh varying smoothly in t, y, x."""
    time_ = np.array([0.0, 1800.0, 3600.0])
    x = np.linspace(-5000.0, 35000.0, 41)
    y = np.linspace(-20000.0, 20000.0, 41)
    T, Y, X = np.meshgrid(time_, y, x, indexing="ij")
    u = SPEED + 0.5 * np.sin(X / 7000.0) + 0.3 * np.cos(Y / 9000.0) - 2e-4 * T
    v = 0.4 * np.sin(Y / 8000.0 + X / 11000.0) + 1e-4 * T
    pblh = PBLH + 150.0 * np.cos(X / 13000.0) * np.cos(Y / 10000.0) + 0.02 * T
    return MetField(
        u[:, None],
        v[:, None],
        pblh=pblh[:, None],
        obukhov_length=L_CONVECTIVE,
        time=time_,
        x=x,
        y=y,
    )


class CICDeposit(eqx.Module):
    """``accumulate`` callback: cloud-in-cell deposit of the active particles on an
    ``n x n`` grid of cell ``dx`` (cell centres ``x0 + (i + 1/2) dx``), one scatter-add
    of ``4 N`` bilinear weights per step (the weight is the step ``dt``: residence
    time, particle-seconds per cell). Corners off the grid are dropped."""

    x0: float = eqx.field(static=True)
    y0: float = eqx.field(static=True)
    dx: float = eqx.field(static=True)
    n: int = eqx.field(static=True)
    weight: float = eqx.field(static=True)

    def __call__(self, grid, state, k):
        n = self.n
        fx = (state.x - self.x0) / self.dx - 0.5
        fy = (state.y - self.y0) / self.dx - 0.5
        ix, iy = jnp.floor(fx), jnp.floor(fy)
        wx, wy = fx - ix, fy - iy
        ix, iy = ix.astype(jnp.int32), iy.astype(jnp.int32)
        w0 = jnp.where(state.active, self.weight, 0.0).astype(grid.dtype)
        idx, wts = [], []
        for ox, oy, w in (
            (0, 0, (1 - wx) * (1 - wy)),
            (1, 0, wx * (1 - wy)),
            (0, 1, (1 - wx) * wy),
            (1, 1, wx * wy),
        ):
            jx, jy = ix + ox, iy + oy
            inside = (jx >= 0) & (jx < n) & (jy >= 0) & (jy < n)
            idx.append(jnp.where(inside, jy * n + jx, n * n))  # n*n: out of range, dropped
            wts.append(w0 * w)
        flat = grid.reshape(-1).at[jnp.concatenate(idx)].add(jnp.concatenate(wts), mode="drop")
        return flat.reshape(grid.shape)


DEPOSIT = CICDeposit(x0=-1000.0, y0=-7500.0, dx=150.0, n=100, weight=DT)


def release(n: int, met: MetField, turbulence, seed: int = 0):
    zeros = np.zeros(n, np.float32)
    return initial_state(
        zeros,
        zeros,
        np.full(n, SOURCE_Z, np.float32),
        time=0.0,
        met=met,
        turbulence=turbulence,
        key=jr.key(seed),
    )


# -- timing ---------------------------------------------------------------------------


def timed(fn) -> float:
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - t0


def interleaved(fns: dict, repeats: int) -> dict:
    """Steady-state times: ``repeats`` rounds, each calling every function once in turn,
    so that a change of the machine's load falls on all of them alike."""
    ts = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            ts[name].append(timed(fn))
    return ts


# -- roofline reference ---------------------------------------------------------------


def make_reference(n: int, n_steps: int, dtype):
    """Plain Langevin steps (module docstring): RNG + 3 OU updates + 3 position updates."""
    tau, sigma = 100.0, 1.0
    r = float(np.exp(-DT / tau))
    a = float(sigma * np.sqrt(1.0 - r * r))

    @jax.jit
    def run(key, x, y, z, u, v, w):
        def body(c, k):
            x, y, z, u, v, w = c
            xi = jr.normal(jr.fold_in(key, k), (3, n), dtype=dtype)
            u = r * u + a * xi[0]
            v = r * v + a * xi[1]
            w = r * w + a * xi[2]
            x = x + (SPEED + u) * DT
            y = y + v * DT
            z = z + w * DT
            return (x, y, z, u, v, w), None

        c, _ = jax.lax.scan(body, (x, y, z, u, v, w), jnp.arange(n_steps, dtype=jnp.int32))
        return c

    return run


def make_rng_only(n: int, n_steps: int, dtype):
    @jax.jit
    def run(key, acc):
        def body(c, k):
            return c + jr.normal(jr.fold_in(key, k), (3, n), dtype=dtype), None

        c, _ = jax.lax.scan(body, acc, jnp.arange(n_steps, dtype=jnp.int32))
        return c

    return run


def bandwidth(n: int, repeats: int) -> dict:
    """Bytes/s of STREAM-style kernels over ``n`` float32 (each array read or written
    counted once). JAX: ``scale`` into a fresh output (each call allocates and first
    touches a new buffer), and ``scale``/``axpy`` in place (the output donated);
    NumPy: ``copyto`` and ``multiply(..., out=)`` into a preallocated array."""
    rng = np.random.default_rng(0)
    xn = rng.standard_normal(n, dtype=np.float32)
    yn = rng.standard_normal(n, dtype=np.float32)
    bn = np.empty_like(xn)
    xj = jnp.asarray(xn)
    box = {"s": jnp.asarray(xn), "y": jnp.asarray(yn)}
    scale = jax.jit(lambda x: 0.5 * x)
    scale_d = jax.jit(lambda x: 0.5 * x, donate_argnums=0)
    axpy_d = jax.jit(lambda x, y: 0.5 * x + y, donate_argnums=1)

    def scale_inplace():
        box["s"] = scale_d(box["s"])
        return box["s"]

    def axpy_inplace():
        box["y"] = axpy_d(xj, box["y"])
        return box["y"]

    nbytes = 4 * n
    kernels = {
        "jax_scale_new_output": (lambda: scale(xj), 2 * nbytes),
        "jax_scale_in_place": (scale_inplace, 2 * nbytes),
        "jax_axpy_in_place": (axpy_inplace, 3 * nbytes),
        "numpy_copy": (lambda: np.copyto(bn, xn), 2 * nbytes),
        "numpy_scale": (lambda: np.multiply(xn, np.float32(0.5), out=bn), 2 * nbytes),
    }
    for fn, _ in kernels.values():
        timed(fn)  # compile / first touch
    ts = interleaved({k: v[0] for k, v in kernels.items()}, max(repeats, 5))
    out = {}
    for name, (_, moved) in kernels.items():
        t = statistics.median(ts[name])
        out[name] = {"s": t, "s_all": ts[name], "bytes": moved, "bytes_per_s": moved / t}
    return out


# -- main -----------------------------------------------------------------------------


def _cache_sizes() -> dict:
    out = {}
    base = "/sys/devices/system/cpu/cpu0/cache"
    if os.path.isdir(base):
        for idx in sorted(os.listdir(base)):
            try:
                with open(os.path.join(base, idx, "level")) as f:
                    level = f.read().strip()
                with open(os.path.join(base, idx, "type")) as f:
                    kind = f.read().strip()
                with open(os.path.join(base, idx, "size")) as f:
                    size = f.read().strip()
            except OSError:
                continue
            out[f"L{level} {kind}"] = size
    return out


def machine_facts() -> dict:
    model = None
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if "model name" in ln), None)
    except OSError:
        pass
    dev = jax.devices()[0]
    return {
        "backend": jax.default_backend(),
        "device": str(dev),
        "device_kind": dev.device_kind,
        "devices": [str(d) for d in jax.devices()],
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": model,
        "cpu_caches": _cache_sizes(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "xla_flags": os.environ.get("XLA_FLAGS"),
    }


REFERENCE_INCLUDES = (
    "one jitted lax.scan of n_steps whose body draws 3N standard normals with "
    "jr.normal(jr.fold_in(key, k), (3, N)) (the engine's draw, same key implementation), "
    "one exact OU update u = r u + a xi of 3 velocity arrays (constant r, a) and one "
    "position update x += (U + u) dt of 3 arrays; no turbulence profile, met "
    "interpolation, Heun corrector, reflection, velocity clip or domain test. 'RNG only': "
    "the same scan with only the draws (summed into one (3, N) carry). fraction_of_reference "
    "= engine particle-steps/s / reference particle-steps/s, same N and steps, same run."
)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    if args.repeats < 3:
        ap.error("--repeats must be >= 3")
    sizes, n_steps = ([1_000], 100) if args.quick else ([10_000, 100_000], 500)
    bw_n = 2**22 if args.quick else 2**25  # full: 128 MiB per array, 4x the L3
    load_before = os.getloadavg()
    t_start = time.perf_counter()

    hanna = HannaTurbulence()
    homog = HomogeneousTurbulence(0.8, 0.8, 0.6, (100.0, 100.0, 60.0))
    met_u, met_g = uniform_met(), gridded_met()
    dt_limits = {
        "hanna uniform": time_step(met_u, hanna),
        "homogeneous uniform": time_step(met_u, homog),
        "hanna gridded": time_step(met_g, hanna),
    }
    if DT > min(dt_limits.values()):
        raise ValueError(f"dt = {DT} s exceeds time_step's limit: {dt_limits}")
    key = jr.key(1)
    cases = {
        "hanna": (met_u, hanna, None),
        "homogeneous": (met_u, homog, None),
        "gridded": (met_g, hanna, None),
        "hanna+deposit": (met_u, hanna, DEPOSIT),
    }

    entries = []
    for n in sizes:
        fns, states = {}, {}
        for case, (met, turb, acc) in cases.items():
            state = release(n, met, turb)
            states[case] = state
            carry0 = None if acc is None else jnp.zeros((DEPOSIT.n,) * 2, state.x.dtype)

            def call(state=state, met=met, turb=turb, acc=acc, carry0=carry0):
                return run_particles(
                    state, met, turb, key=key, dt=DT, n_steps=n_steps, accumulate=acc, carry=carry0
                )

            fns[case] = call
        dtype = states["hanna"].x.dtype
        ref = make_reference(n, n_steps, dtype)
        z0 = jnp.full((n,), SOURCE_Z, dtype)
        vel = jr.normal(jr.key(2), (3, n), dtype)
        ref_args = (key, z0, z0, z0, vel[0], vel[1], vel[2])
        rng_only = make_rng_only(n, n_steps, dtype)
        acc0 = jnp.zeros((3, n), dtype)
        fns["reference: plain Langevin"] = lambda ref=ref, a=ref_args: ref(*a)
        fns["reference: RNG only"] = lambda f=rng_only, a=acc0: f(key, a)

        firsts = {name: first_call(fn)[0] for name, fn in fns.items()}
        ts = interleaved(fns, args.repeats)
        ref_rate = n * n_steps / statistics.median(ts["reference: plain Langevin"])
        for name in fns:
            t = statistics.median(ts[name])
            e = {
                "case": name,
                "n_particles": n,
                "n_steps": n_steps,
                "dtype": str(dtype),
                **firsts[name],
                "run_s_median": t,
                "run_s_all": ts[name],
                "particle_steps_per_s": n * n_steps / t,
                "fraction_of_reference": n * n_steps / t / ref_rate,
            }
            if name == "reference: RNG only":
                e["normals_per_s"] = 3 * n * n_steps / t
            elif name in cases:
                end, carry = fns[name]()
                e["active_fraction_at_end"] = float(jnp.mean(end.active))
                e["z_range_at_end_m"] = [float(jnp.min(end.z)), float(jnp.max(end.z))]
                if carry is not None:
                    dep = float(jnp.sum(carry))
                    e["deposited_particle_s"] = dep
                    e["deposited_fraction"] = dep / (n * n_steps * DT)
            entries.append(e)

    bw = bandwidth(bw_n, args.repeats)
    load_after = os.getloadavg()
    wall = time.perf_counter() - t_start

    machine = machine_facts()
    setting = "quick" if args.quick else "full"
    hanna_rates = [e["particle_steps_per_s"] for e in entries if e["case"] == "hanna"]
    result = {
        "benchmark": "bench_transport_particles",
        "setting": setting,
        "problem": {
            "sizes": sizes,
            "n_steps": n_steps,
            "dt_s": DT,
            "dt_limits_s": dt_limits,
            "dtype": entries[0]["dtype"],
            "source": {"x_m": 0.0, "y_m": 0.0, "z_m": SOURCE_Z},
            "met_uniform": {
                "speed_m_s": SPEED,
                "obukhov_length_m": L_CONVECTIVE,
                "pblh_m": PBLH,
            },
            "met_gridded": {"time": 3, "y": 41, "x": 41, "spacing_m": 1000.0},
            "homogeneous_turbulence": {
                "sigma_m_s": [0.8, 0.8, 0.6],
                "lagrangian_time_s": [100.0, 100.0, 60.0],
            },
            "deposit_grid": {"n": DEPOSIT.n, "cell_m": DEPOSIT.dx, "scheme": "cloud-in-cell"},
        },
        "timing": (
            "first_call_s: the first call (trace, compile, run); compile_s = lowering_s + "
            "xla_compile_s from jax.monitoring during that call; run_s_median: median of "
            f"{args.repeats} later calls, interleaved round by round with the other rows of "
            "the same size, each ended by jax.block_until_ready"
        ),
        "cases": entries,
        "reference_includes": REFERENCE_INCLUDES,
        "bandwidth": {
            "n_float32": bw_n,
            "note": "bytes counted once per array read or written (copy/scale 2, axpy 3)",
            **bw,
        },
        "target_particle_steps_per_s": TARGET,
        "hanna_uniform_meets_target": {
            str(e["n_particles"]): e["particle_steps_per_s"] >= TARGET
            for e in entries
            if e["case"] == "hanna"
        },
        "repeats": args.repeats,
        "wall_s": wall,
        "load_average_before": list(load_before),
        "load_average_after": list(load_after),
        "versions": {
            "plumax_core": plumax_core.__version__,
            "plumax_transport": plumax_transport.__version__,
            "jax": jax.__version__,
            "jaxlib": getattr(jax.lib, "__version__", None),
            "equinox": eqx.__version__,
            "numpy": np.__version__,
        },
        "machine": machine,
    }

    print(
        f"\nrun_particles, {entries[0]['dtype']}, dt = {DT} s, backend {machine['backend']} "
        f"({machine['device_kind']}), {machine['cpu_count']} CPUs, median of {args.repeats}"
    )
    hdr = f"{'case':26s} {'N':>7s} {'steps':>5s} {'compile s':>9s} {'run s':>8s}"
    print(f"{hdr} {'p-steps/s':>10s} {'of ref':>6s}")
    for e in entries:
        print(
            f"{e['case']:26s} {e['n_particles']:7d} {e['n_steps']:5d} {e['compile_s']:9.2f} "
            f"{e['run_s_median']:8.3f} {e['particle_steps_per_s']:10.3e} "
            f"{e['fraction_of_reference']:6.2f}"
        )
    for e in entries:
        if e["case"] == "reference: RNG only":
            print(f"RNG only, N = {e['n_particles']}: {e['normals_per_s']:.3e} normals/s")
    print(f"bandwidth ({bw_n} float32, GB/s):")
    for k, v in bw.items():
        print(f"  {k:22s} {v['bytes_per_s'] / 1e9:7.1f}")
    rates = ", ".join(f"{r:.2e}" for r in hanna_rates)
    print(f"target {TARGET:.0e} particle-steps/s (hanna, uniform met): {rates}")
    print("reference = " + REFERENCE_INCLUDES.split("; no ")[0])
    fmt = lambda la: ", ".join(f"{v:.2f}" for v in la)  # noqa: E731
    print(
        f"load average (1, 5, 15 min): before {fmt(load_before)}; after {fmt(load_after)}; "
        f"wall {wall:.0f} s"
    )
    update_json_atomic(
        RESULTS / "bench_transport_particles.json", f"{setting} [{machine['backend']}]", result
    )


if __name__ == "__main__":
    main()
