"""Benchmark: one incremental 4D-Var outer iteration on the Tier III Eulerian model.

Measures, for :class:`vardax_lite.IncrementalFourDVar` (``n_outer=1``, a fixed
``n_inner`` CG iterations) on :class:`plumax_transport.EulerianFV` with a gridded
emission, the wall time of one outer iteration end to end (first call with its compile
apart, then a second call), the run counts of its provenance (full, tangent-linear and
adjoint runs), the time of one forward run and of one tangent-linear + adjoint pair
measured apart, and the peak memory (resident set) on the CPU.

**Setting** (float32, JAX's default). ``EulerianFV(source="gridded")`` on a 128 x 128 x
20 grid of 1 km cells, 20 levels stretched to 3 km (``z_edges = 3000 s^1.5``); 6 h in
``K = 6`` hourly model steps, each ending at an observation time; ``n_windows = 3``
emission windows of 2 h (``D = 3 x 128 x 128`` = 49 152 parameters, kg m^-2 s^-1). The
met is uniform in space and hourly in time (``MetField.from_timeseries``: 5 +- 0.5 m/s
from 250 degrees veering 3 degrees per hour, L = -200 m, boundary layer 1000 m), with
the model's default :class:`MoninObukhovK` and hydrostatic air density; open sides,
closed bottom and top. Scheme ``"upwind"``: it is linear in the state, so the model is
linear in the emission and one Gauss-Newton outer loop is the exact MAP up to CG (the
flux and positivity limiters of ``"limited"`` are piecewise smooth in the state, so its
Gauss-Newton outer loop relinearises a different model each time and need not converge:
``tests-integration/test_eulerian_4dvar.py``). Observations: ``ColumnImage`` on every
model column (``ppm_m``) after each step (``m = 6 x 128 x 128`` = 98 304), from a truth
of five Gaussian hotspots (2-4 km wide, up to 3e-7 kg m^-2 s^-1, about 1 t/h per km^2)
switching on and off between windows, plus 20 ppm m Gaussian noise. Background
``B = separable_matern32`` (Matern-3/2 in x and y, 5 km; exponential in time, 4 h;
sd 1e-7 kg m^-2 s^-1), a Kronecker product never formed; prior mean 0. ``--quick``: 32 x
32 x 10, 2 h in 2 steps, 2 windows.

**What is timed.** (a) ``IncrementalFourDVar(n_outer=1, n_inner=N).posterior``
end to end, twice: the first call (trace, compile, run; ``compile_s`` from
``jax.monitoring``) and a second one. The posterior adapter is set explicitly to
``GaussNewtonHessian(n_krylov=k)`` (``--n-krylov``, default 5; the default mapping
would take ``min(D, m, 100)`` = 100 Lanczos steps, each one TL and one adjoint run) and
is also timed alone (second call) on the same problem, so that the outer iteration
without it is the difference. (b) Apart, on the model's flat map ``h(z)``
(``Problem.predict``, what 4D-Var linearises): one forward run (``jax.jit``); and, in one
jitted function, ``jax.linearize`` of ``h`` followed by ``P`` products ``u <- H'^T H' u``
(``jax.linear_transpose`` of the linearised map, as the CG's ``G^T G``), timed for ``P =
0`` and ``P`` (default 4): per TL + adjoint pair ``(t_P - t_0) / P``. Each figure is the
median of ``--repeats`` (default 3) calls after the first, ended by
``jax.block_until_ready``.

**Memory.** Each part runs in a fresh Python subprocess of this script, so its peak is
its own. Recorded in the child: ``VmHWM`` of ``/proc/self/status`` (the peak resident
set of the process since it started: JAX runtime, compiled code and every buffer) at the
end, and ``VmRSS`` after the imports and the problem's setup (before the measured
work); in the parent, ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` after each
child (the largest peak of the children so far; the 4D-Var child runs first, so the
first reading is its own). On a GPU the device allocator's ``peak_bytes_in_use`` is
recorded too. Also: the model state size ``n = nz ny nx``, the met intervals ``M`` and
the substeps per model step (:mod:`plumax_transport._eulerian_plan`: ``M ceil(1.01
(dt / M) / stable_time_step)``; the model is ``planned(met)`` from the concrete met,
since the analyses trace it).

Writes the entry ``"full [<backend>]"`` or ``"quick [<backend>]"`` of
``results/bench_vardax_eulerian_4dvar.json`` (``update_json_atomic``). The same script
runs on a GPU unchanged (JAX device placement only). The load average is recorded
before and after.

    uv run python benchmarks/bench_vardax_eulerian_4dvar.py            # 128 x 128 x 20, 6 h
    uv run python benchmarks/bench_vardax_eulerian_4dvar.py --quick    # 32 x 32 x 10, 2 h
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import tempfile
import time

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
HOUR = 3600.0
CELL = 1000.0  # m
TOP = 3000.0  # m
NOISE = 20.0  # ppm m
PRIOR_SD = 1e-7  # kg m^-2 s^-1
LENGTH_KM = 5.0
TIME_SCALE_H = 4.0
HOTSPOTS = (  # (x, y) as fractions of the domain, width km, peak kg m^-2 s^-1, windows on
    (0.25, 0.30, 2.0, 3e-7, "all"),
    (0.40, 0.65, 3.0, 2e-7, "all"),
    (0.55, 0.45, 2.0, 3e-7, "first"),
    (0.30, 0.50, 4.0, 1e-7, "last"),
    (0.60, 0.25, 2.5, 2e-7, "all"),
)


def settings(quick: bool) -> dict:
    if quick:
        return {"nx": 32, "ny": 32, "nz": 10, "hours": 2, "n_steps": 2, "n_windows": 2}
    return {"nx": 128, "ny": 128, "nz": 20, "hours": 6, "n_steps": 6, "n_windows": 3}


# -- the child: builds the problem and measures one part --------------------------------


def _proc_status(field: str) -> float | None:
    """``VmHWM`` / ``VmRSS`` of this process, MiB (None where /proc is missing)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    return None


def build_problem(s: dict):
    import jax.numpy as jnp
    import jax.random as jr
    import numpy as np

    import plumax_core as pc
    import vardax_lite as vx
    from plumax_core import MetField
    from plumax_core.linalg import separable_matern32
    from plumax_transport import ColumnImage
    from plumax_transport._eulerian import EulerianFV
    from plumax_transport._fv_grid import FVGrid

    nx, ny, nz, nw = s["nx"], s["ny"], s["nz"], s["n_windows"]
    x = (np.arange(nx) + 0.5) * CELL
    y = (np.arange(ny) + 0.5) * CELL
    z_edges = TOP * np.linspace(0.0, 1.0, nz + 1) ** 1.5
    grid = FVGrid(x, y, z_edges)
    hours = s["hours"]
    t = np.arange(hours + 1) * HOUR
    met = MetField.from_timeseries(
        t,
        5.0 + 0.5 * np.sin(t / (3 * HOUR)),
        250.0 + 3.0 * t / HOUR,
        stability=None,
        obukhov_length=-200.0,
        pblh=1000.0,
    )
    kw = dict(
        duration=hours * HOUR,
        n_steps=s["n_steps"],
        source="gridded",
        n_windows=nw,
        scheme="upwind",
    )
    geometry = ColumnImage(x, y, units="ppm_m")
    # the analyses trace the met (it is a field of the Problem under jit), so the model
    # is planned from the concrete met (substeps, met intervals, times)
    model = EulerianFV(geometry, grid, **kw).planned(met)
    X, Y = np.meshgrid(x, y)
    truth = np.zeros((nw, ny, nx))
    for fx, fy, width, peak, on in HOTSPOTS:
        bump = peak * np.exp(
            -0.5 * ((X - fx * nx * CELL) ** 2 + (Y - fy * ny * CELL) ** 2) / (width * 1e3) ** 2
        )
        windows = {"all": range(nw), "first": [0], "last": [nw - 1]}[on]
        for j in windows:
            truth[j] += bump
    dtype = jnp.result_type(float)
    truth = jnp.asarray(truth, dtype)
    clean = model({"emission": truth}, met)
    noise = NOISE * jr.normal(jr.key(0), clean.values.shape, dtype)
    obs = pc.Observations(clean.values + noise, kind=clean.kind, sigma=NOISE, dims=clean.dims)
    t_win = (np.arange(nw) + 0.5) * hours / nw  # window centres, h
    B = separable_matern32(
        jnp.asarray(x / 1e3, dtype),
        jnp.asarray(y / 1e3, dtype),
        LENGTH_KM,
        PRIOR_SD,
        time=jnp.asarray(t_win, dtype),
        time_scale=TIME_SCALE_H,
    )
    prior = pc.GaussianPrior(jnp.zeros(model.param_spec.size, dtype), B, model.param_spec)
    problem = vx.Problem(model, met, obs, prior)
    plan = model.prepare(met).plan
    info = {
        "state_size": int(model.state_size(met)),
        "grid_nz_ny_nx": list(grid.shape),
        "n_steps": model.n_steps,
        "model_step_s": float(plan.dt),
        "substeps_per_step": int(plan.n_substeps),
        "met_intervals_per_step": int(model.met_intervals or 1),
        "substep_s": float(plan.dt) / int(plan.n_substeps),
        "n_params": int(problem.dim),
        "n_obs": int(problem.n_obs),
        "dtype": str(jnp.dtype(dtype)),
        "B_type": type(B).__name__,
        "prior_sqrt_type": type(problem.prior_sqrt).__name__,
        "signal_ppm_m_max": float(jnp.max(clean.values)),
    }
    return problem, truth, info


def _median_calls(fn, repeats: int) -> tuple[float, list[float]]:
    import jax

    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), ts


def child_4dvar(args, s: dict) -> dict:
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import numpy as np
    from _compile_timing import first_call

    import vardax_lite as vx
    from vardax_lite._adapters import GaussNewtonHessian
    from vardax_lite._counting import counting, with_counting

    problem, truth, info = build_problem(s)
    rss_setup = _proc_status("VmRSS")
    adapter = GaussNewtonHessian(n_krylov=args.n_krylov)
    analysis = vx.IncrementalFourDVar(n_outer=1, n_inner=args.n_inner, adapter=adapter)

    def run():
        post = analysis.posterior(problem)
        jax.block_until_ready(post.mean)
        return post

    first, post = first_call(run)
    second_call, post = first_call(run)  # the same timer: it reports any recompilation
    second = second_call["first_call_s"]
    prov = dict(post.provenance)
    counts = {k: int(prov[k]) for k in ("n_model_runs", "n_tangent_linear_runs", "n_adjoint_runs")}

    # the adapter alone, at the same point (its second call timed)
    chi = problem.to_control(post.mean)
    counted = with_counting(problem)

    def adapter_call():
        out = adapter(counted, chi)
        jax.block_until_ready(eqx.filter(out.cov, eqx.is_array))
        return out

    ad_first, _ = first_call(adapter_call)
    with counting() as tally:
        ad_second_call, _ = first_call(adapter_call)
    ad_second = ad_second_call["first_call_s"]
    cost = eqx.filter_jit(lambda p, c: p.cost(c))
    cost_prior = float(cost(problem, jnp.zeros(problem.dim, problem.z_b.dtype)))

    mean = np.asarray(post.mean).reshape(truth.shape)
    tr = np.asarray(truth)
    hot = tr > 0.1 * tr.max()
    return {
        "info": info,
        "n_inner": args.n_inner,
        "n_krylov": args.n_krylov,
        "posterior_first_call": first,
        "posterior_second_call_s": second,
        "posterior_second_call_compile_s": second_call["compile_s"],
        "counts": counts,
        "n_inner_total": prov.get("n_inner_total"),
        "J_prior": cost_prior,
        "J_star": prov.get("J_star"),
        "adapter_alone": {
            **ad_first,
            "second_call_s": ad_second,
            "second_call_compile_s": ad_second_call["compile_s"],
            "counts": {k: int(v) for k, v in tally.items()},
        },
        "outer_iteration_without_adapter_s": second - ad_second,
        "truth_total_over_hotspots": float(tr[hot].sum()),
        "posterior_total_over_hotspots": float(mean[hot].sum()),
        "corr_posterior_truth": float(np.corrcoef(mean.ravel(), tr.ravel())[0, 1]),
        "rss_after_setup_mib": rss_setup,
        "vmhwm_mib": _proc_status("VmHWM"),
        "device_peak_bytes": _device_peak(),
    }


def child_parts(args, s: dict) -> dict:
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import jax.random as jr
    from _compile_timing import first_call

    problem, _, info = build_problem(s)
    rss_setup = _proc_status("VmRSS")
    z = problem.z_b + problem.prior_sqrt.mv(jr.normal(jr.key(3), (problem.dim,), problem.z_b.dtype))
    u0 = jr.normal(jr.key(4), (problem.dim,), z.dtype)
    forward = eqx.filter_jit(lambda p, z: p.predict(z))
    fwd_first, _ = first_call(lambda: forward(problem, z))
    fwd_run, fwd_all = _median_calls(lambda: forward(problem, z), args.repeats)

    def pairs(n_pairs: int):
        @eqx.filter_jit
        def run(p, z, u):
            y, jvp = jax.linearize(p.predict, z)
            adj = jax.linear_transpose(jvp, z)

            def body(_, v):
                w = adj(jvp(v))[0]
                return w / jnp.linalg.norm(w)

            return y, jax.lax.fori_loop(0, n_pairs, body, u)

        return lambda: run(problem, z, u0)

    out = {}
    for n in (0, args.pairs):
        call = pairs(n)
        f, _ = first_call(call)
        t, ts = _median_calls(call, args.repeats)
        out[n] = {**f, "run_s_median": t, "run_s_all": ts}
    per_pair = (out[args.pairs]["run_s_median"] - out[0]["run_s_median"]) / args.pairs
    return {
        "info": info,
        "forward": {**fwd_first, "run_s_median": fwd_run, "run_s_all": fwd_all},
        "linearize_only": out[0],
        f"linearize_plus_{args.pairs}_pairs": out[args.pairs],
        "pairs": args.pairs,
        "tl_plus_adjoint_pair_s": per_pair,
        "rss_after_setup_mib": rss_setup,
        "vmhwm_mib": _proc_status("VmHWM"),
        "device_peak_bytes": _device_peak(),
    }


def _device_peak() -> int | None:
    import jax

    stats = jax.devices()[0].memory_stats()
    return None if not stats else stats.get("peak_bytes_in_use")


# -- the parent -----------------------------------------------------------------------


def run_child(part: str, args) -> tuple[dict, float, float]:
    """Run ``part`` in a fresh interpreter; returns its result, its wall time and the
    children's ``ru_maxrss`` (MiB) after it."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "out.json")
        cmd = [sys.executable, __file__, "--child", part, "--child-out", path]
        cmd += [
            f"--n-inner={args.n_inner}",
            f"--n-krylov={args.n_krylov}",
            f"--repeats={args.repeats}",
            f"--pairs={args.pairs}",
        ]
        if args.quick:
            cmd.append("--quick")
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=os.path.dirname(os.path.abspath(__file__)))
        wall = time.perf_counter() - t0
        with open(path) as f:
            res = json.load(f)
    maxrss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0  # KiB on Linux
    return res, wall, maxrss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--n-inner", type=int, default=10, help="CG iterations of the outer loop")
    ap.add_argument("--n-krylov", type=int, default=5, help="Lanczos steps of the adapter")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--pairs", type=int, default=4, help="TL + adjoint pairs timed together")
    ap.add_argument("--child", choices=("4dvar", "parts"), help=argparse.SUPPRESS)
    ap.add_argument("--child-out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if min(args.n_inner, args.n_krylov, args.repeats, args.pairs) < 1:
        ap.error("--n-inner, --n-krylov, --repeats and --pairs must be >= 1")
    s = settings(args.quick)

    if args.child:
        fn = child_4dvar if args.child == "4dvar" else child_parts
        res = fn(args, s)
        with open(args.child_out, "w") as f:
            json.dump(res, f)
        return

    load_before = os.getloadavg()
    t_start = time.perf_counter()
    var, var_wall, maxrss_after_4dvar = run_child("4dvar", args)
    parts, parts_wall, maxrss_after_parts = run_child("parts", args)
    load_after = os.getloadavg()
    wall = time.perf_counter() - t_start

    import equinox as eqx
    import jax
    import lineax as lx
    import numpy as np
    from _machine import machine_facts

    import plumax_core
    import plumax_transport
    import vardax_lite

    machine = machine_facts()
    setting = "quick" if args.quick else "full"
    info = var["info"]
    result = {
        "benchmark": "bench_vardax_eulerian_4dvar",
        "setting": setting,
        "problem": {
            **s,
            **info,
            "model": "EulerianFV(source='gridded', scheme='upwind', MoninObukhovK, "
            "hydrostatic air density, open sides, closed bottom/top)",
            "met": "MetField.from_timeseries hourly: 5 +- 0.5 m/s, 250 deg veering 3 deg/h, "
            "L = -200 m, pblh 1000 m",
            "observations": f"ColumnImage ppm_m on every model column after each step, "
            f"noise {NOISE} ppm m",
            "truth": "five Gaussian hotspots (2-4 km, up to 3e-7 kg m^-2 s^-1), some on in "
            "one window only",
            "background": f"separable_matern32: Matern-3/2 {LENGTH_KM} km in x and y, "
            f"exponential {TIME_SCALE_H} h in time, sd {PRIOR_SD} kg m^-2 s^-1; mean 0",
        },
        "analysis": f"IncrementalFourDVar(n_outer=1, n_inner={args.n_inner}, "
        f"adapter=GaussNewtonHessian(n_krylov={args.n_krylov}))",
        "fourdvar": var,
        "parts": parts,
        "memory": (
            "vmhwm_mib: VmHWM of /proc/self/status at the end of each child process (peak "
            "resident set of the whole process); rss_after_setup_mib: VmRSS after imports "
            "and the problem's setup; children_ru_maxrss_mib_*: getrusage(RUSAGE_CHILDREN)."
            "ru_maxrss in the parent after each child (max over the children so far)"
        ),
        "children_ru_maxrss_mib_after_4dvar": maxrss_after_4dvar,
        "children_ru_maxrss_mib_after_parts": maxrss_after_parts,
        "child_wall_s": {"4dvar": var_wall, "parts": parts_wall},
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

    c = var["counts"]
    pf = var["posterior_first_call"]
    print(
        f"\nIncrementalFourDVar(n_outer=1, n_inner={args.n_inner}) on EulerianFV "
        f"{info['grid_nz_ny_nx']} ({info['dtype']}), {info['n_steps']} steps of "
        f"{info['model_step_s'] / HOUR:g} h x {info['substeps_per_step']} substeps, "
        f"D = {info['n_params']}, m = {info['n_obs']}, state n = {info['state_size']}; "
        f"backend {machine['backend']} ({machine['device_kind']}), {machine['cpu_count']} CPUs"
    )
    rows = [
        (
            "4D-Var outer iteration, 1st call",
            pf["first_call_s"],
            f"compile {pf['compile_s']:.1f} s",
        ),
        (
            "4D-Var outer iteration, 2nd call",
            var["posterior_second_call_s"],
            f"compile {var['posterior_second_call_compile_s']:.1f} s",
        ),
        (
            f"  of which adapter (Lanczos k={args.n_krylov}), alone",
            var["adapter_alone"]["second_call_s"],
            f"compile {var['adapter_alone']['second_call_compile_s']:.1f} s, "
            f"counts {var['adapter_alone']['counts']}",
        ),
        ("forward run h(z)", parts["forward"]["run_s_median"], ""),
        ("linearize h (forward + residuals)", parts["linearize_only"]["run_s_median"], ""),
        ("TL + adjoint pair", parts["tl_plus_adjoint_pair_s"], f"from {args.pairs} pairs"),
    ]
    for name, t, note in rows:
        print(f"{name:<44s} {t:9.2f} s  {note}")
    print(
        f"provenance counts: full {c['n_model_runs']}, TL {c['n_tangent_linear_runs']}, "
        f"adjoint {c['n_adjoint_runs']}; CG iterations {var['n_inner_total']}; "
        f"J: prior {var['J_prior']:.4g} -> {var['J_star']:.4g}; corr(mean, truth) "
        f"{var['corr_posterior_truth']:.3f}"
    )
    print(
        f"peak RSS (VmHWM): 4D-Var child {var['vmhwm_mib']:.0f} MiB (after setup "
        f"{var['rss_after_setup_mib']:.0f}), parts child {parts['vmhwm_mib']:.0f} MiB; "
        f"RUSAGE_CHILDREN ru_maxrss {maxrss_after_4dvar:.0f} / {maxrss_after_parts:.0f} MiB; "
        f"device peak {var['device_peak_bytes']}"
    )
    fmt = lambda la: ", ".join(f"{x:.2f}" for x in la)  # noqa: E731
    print(
        f"load average (1, 5, 15 min): before {fmt(load_before)}; after {fmt(load_after)}; "
        f"wall {wall:.0f} s"
    )
    update_json = __import__("_results").update_json_atomic
    update_json(
        RESULTS / "bench_vardax_eulerian_4dvar.json", f"{setting} [{machine['backend']}]", result
    )


if __name__ == "__main__":
    main()
