"""MAP + Laplace for a 4-parameter plume-like problem with 10^4 observations, and NUTS.

Model (written here, not imported from plumax-transport): a ground-level Gaussian plume
on a 100 x 100 receptor grid downwind of a point source,

    c(x, y) = Q / (2 pi u sy sz) exp(-(y - y0)^2 / (2 sy^2)) * 2 exp(-h^2 / (2 sz^2)),
    sy = a x^0.9, sz = b x^0.85 (x > 0 downwind distance from x0),

parameters Q (kg/s, log), y0 (m), a, b (dispersion coefficients, log). Reports:

* vardax-lite MAP (Levenberg-Marquardt) + Laplace covariance: wall time after compile;
* NUTS effective samples per second: vardax-lite's NUTSOracle (whitened, started at the
  MAP, dense mass) vs numpyro's default NUTS on the same model (natural parameters,
  default init and diagonal mass), same numbers of warmup/draws, same run.

Usage: ``uv run python benchmarks/bench_vardax_map_laplace.py [--quick]``.
"""

import argparse
import os
import platform
import statistics
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from _results import write_json_atomic

import plumax_core as pc
import vardax_lite as vx

jax.config.update("jax_enable_x64", True)


class PlumeLike(pc.AbstractForwardModel):
    xg: jax.Array
    yg: jax.Array
    param_spec: pc.ParamSpec = eqx.field(
        default_factory=lambda: pc.ParamSpec(
            (
                pc.Param("Q", units="kg/s", lower=0.0, log=True),
                pc.Param("y0", units="m"),
                pc.Param("a", lower=0.0, log=True),
                pc.Param("b", lower=0.0, log=True),
            )
        )
    )

    def __call__(self, params, met):
        u, h = 5.0, 2.0
        x = jnp.maximum(self.xg, 1.0)
        sy = params["a"] * x**0.9
        sz = params["b"] * x**0.85
        c = (
            params["Q"]
            / (2 * jnp.pi * u * sy * sz)
            * jnp.exp(-((self.yg - params["y0"]) ** 2) / (2 * sy**2))
            * 2
            * jnp.exp(-(h**2) / (2 * sz**2))
        )
        return pc.Observations(c * 1e6, kind="generic")  # mg/m^3


def timed(fn, n):
    fn()  # warm-up (compile)
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        out = fn()
        jax.block_until_ready(out.mean)
        ts.append(time.perf_counter() - t)
    return statistics.median(ts), out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    n_side = 30 if args.quick else 100
    n_warm, n_draw = (200, 200) if args.quick else (500, 1000)
    xs = jnp.linspace(20.0, 1000.0, n_side)
    ys = jnp.linspace(-200.0, 200.0, n_side)
    X, Y = jnp.meshgrid(xs, ys, indexing="ij")
    model = PlumeLike(X.ravel(), Y.ravel())
    met = pc.MetField.uniform(5.0, 270.0)
    truth = {
        "Q": jnp.asarray(0.5),
        "y0": jnp.asarray(15.0),
        "a": jnp.asarray(0.22),
        "b": jnp.asarray(0.2),
    }
    clean = model(truth, met).values
    sigma = 0.05 * float(jnp.max(clean))
    y = clean + sigma * jr.normal(jr.key(0), clean.shape)
    obs = pc.Observations(y, kind="generic", sigma=sigma)
    prior = pc.GaussianPrior.from_std(
        model.param_spec,
        jnp.asarray([np.log(1.0), 0.0, np.log(0.2), np.log(0.2)]),
        jnp.asarray([1.0, 50.0, 0.5, 0.5]),
    )
    problem = vx.Problem(model, met, obs, prior)
    m = problem.n_obs

    analysis = vx.ThreeDVar(solver="levenberg_marquardt", rtol=1e-8, atol=1e-8)

    def map_laplace():
        post = analysis.posterior(problem)
        _ = post.std()  # materialise the Laplace marginals
        return post

    t0 = time.perf_counter()
    map_laplace()
    compile_s = time.perf_counter() - t0
    t_map, post = timed(map_laplace, 5)
    ci = post.credible_interval(0.95)
    covered = {k: bool(ci[k][0] <= truth[k] <= ci[k][1]) for k in truth}

    rows = []
    # NUTS: ours vs numpyro default on the same model
    from numpyro.diagnostics import effective_sample_size
    from numpyro.infer import MCMC, NUTS

    ours = vx.NUTSOracle(num_warmup=n_warm, num_samples=n_draw, num_chains=1)
    t = time.perf_counter()
    p_ours = ours.posterior(problem, key=jr.key(1))
    t_ours = time.perf_counter() - t
    ess_ours = float(np.min(p_ours.provenance["ess"]))

    default_model = vx.numpyro_model(problem, whiten=False)
    mcmc = MCMC(
        NUTS(default_model), num_warmup=n_warm, num_samples=n_draw, num_chains=1, progress_bar=False
    )
    t = time.perf_counter()
    mcmc.run(jr.key(1))
    zs = np.asarray(mcmc.get_samples()["z"])
    t_def = time.perf_counter() - t
    ess_def = float(np.min(effective_sample_size(zs[None])))
    lap_sd = np.asarray(post.std())
    rows.append(("vardax NUTSOracle", t_ours, ess_ours, np.asarray(p_ours.std())))
    rows.append(("numpyro default NUTS", t_def, ess_def, zs.std(0)))

    print(f"problem: D=4, m={m}, backend={jax.default_backend()}, cpus={os.cpu_count()}")
    print(f"{'method':<24} {'wall s':>9} {'min ESS':>9} {'ESS/s':>9}  sd(z) ratio to Laplace")
    print(f"{'MAP+Laplace (compile)':<24} {compile_s:>9.3f}")
    print(f"{'MAP+Laplace (run)':<24} {t_map:>9.4f} {'':>9} {'':>9}  1")
    out_rows = []
    for name, wall, ess, sd in rows:
        ratio = np.round(sd / lap_sd, 3).tolist()
        print(f"{name:<24} {wall:>9.2f} {ess:>9.0f} {ess / wall:>9.1f}  {ratio}")
        out_rows.append(
            {
                "method": name,
                "wall_s_incl_compile": wall,
                "min_ess": ess,
                "ess_per_s": ess / wall,
                "sd_ratio_to_laplace": ratio,
            }
        )
    result = {
        "name": "bench_vardax_map_laplace",
        "sizes": {"D": 4, "m": m, "num_warmup": n_warm, "num_samples": n_draw},
        "map_laplace": {
            "compile_s": compile_s,
            "run_s_median": t_map,
            "n_iter": post.provenance["n_iter"],
            "truth_in_95ci": covered,
        },
        "nuts": out_rows,
        "versions": {**pc.package_versions(), "numpyro": __import__("numpyro").__version__},
        "backend": jax.default_backend(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "quick": args.quick,
    }
    write_json_atomic("benchmarks/results/bench_vardax_map_laplace.json", result)


if __name__ == "__main__":
    main()
