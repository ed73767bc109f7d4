"""NUTS on the full thinned marked TPP model, and a power-law tail fit vs `powerlaw`.

* NUTS (numpyro) effective samples per second for the LognormalHillModel (constant rate,
  lognormal marks, Hill POD; 5 parameters) at 10^3 and 10^4 detected events, three ways:
  a diagonal mass matrix, a dense one, and whitened by the Laplace covariance with a
  diagonal mass matrix (what ``fit_nuts`` does by default). Compile time
  is the difference between the first run of an MCMC object (compile + sampling) and a
  second run of the same object (sampling only, compiled function cached); ESS/s uses the
  second run's minimum ESS over parameters and its wall time.
* The power-law tail exponent of the same 10^4-event catalogue above a common x_min,
  fitted by plumax-pod (maximum likelihood of TruncatedPowerLawMarks with optimistix) and
  by the `powerlaw` package (Alstott et al. 2014), timed in the same run.

Run: ``uv run python benchmarks/bench_pod_nuts.py [--quick]``.
"""

import argparse
import os
import platform
import time

import jax
from _results import write_json_atomic

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optimistix as optx  # noqa: E402

import plumax_pod as pp  # noqa: E402

DAY = 86400.0
TRUTH = {"rate": 20.0 / DAY, "mu": np.log(0.05), "sigma": 1.2, "q50": 0.08, "slope": 2.0}


def catalogue(n_detected, seed=0):
    rng = np.random.default_rng(seed)
    p_bar = float(
        pp.detection_fraction(
            pp.LognormalMarks(TRUTH["mu"], TRUTH["sigma"]), pp.HillPOD(TRUTH["q50"], TRUTH["slope"])
        )
    )
    T = n_detected / (TRUTH["rate"] * p_bar)
    n = rng.poisson(TRUTH["rate"] * T)
    t = np.sort(rng.uniform(0.0, T, n))
    q = np.exp(TRUTH["mu"] + TRUTH["sigma"] * rng.standard_normal(n))
    p = q**2 / (q**2 + TRUTH["q50"] ** 2)
    det = rng.uniform(size=n) < p
    return T, t[det], q[det]


VARIANTS = {
    # name: (whitened by the Laplace covariance, dense mass matrix)
    "diag": (False, False),
    "dense": (False, True),
    "whitened (fit_nuts default)": (True, False),
}


def bench_nuts(n_events, num_warmup, num_samples, variant, seed=0):
    from numpyro.diagnostics import effective_sample_size
    from numpyro.infer import MCMC, NUTS

    whiten, dense = VARIANTS[variant]
    T, t, q = catalogue(n_events, seed)
    model = pp.LognormalHillModel(rate_prior=(1e-4, 3.0), q50_prior=(0.12, 1.0))
    data = pp.PopulationData(t, pp.PointMarks(q), 0.0, T)
    lap = pp.fit_map_laplace(model, data)
    d = lap.mean.shape[0]
    centre = lap.mean if whiten else jnp.zeros(d)
    chol = jnp.linalg.cholesky(lap.cov.as_matrix()) if whiten else jnp.eye(d)
    z0 = jnp.zeros(d) if whiten else lap.mean
    potential = jax.jit(lambda u: -model.log_posterior_unconstrained(centre + chol @ u, data))
    mcmc = MCMC(
        NUTS(potential_fn=potential, dense_mass=dense),
        num_warmup=num_warmup,
        num_samples=num_samples,
        progress_bar=False,
    )
    t0 = time.perf_counter()
    mcmc.run(jax.random.key(seed), init_params=z0)
    jax.block_until_ready(mcmc.get_samples())
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    mcmc.run(jax.random.key(seed + 1), init_params=z0)
    s = centre + jax.block_until_ready(mcmc.get_samples()) @ chol.T
    second = time.perf_counter() - t0
    ess = np.asarray(effective_sample_size(np.asarray(s)[None]))
    return {
        "variant": variant,
        "n_events": int(q.size),
        "num_warmup": num_warmup,
        "num_samples": num_samples,
        "compile_s": max(first - second, 0.0),
        "sampling_s": second,
        "min_ess": float(ess.min()),
        "ess_per_s": float(ess.min() / second),
        "posterior_mean": {
            k: float(v)
            for k, v in zip(
                model.param_spec.flat_names,
                np.asarray(model.param_spec.forward_transform(jnp.mean(s, 0))[0]),
                strict=True,
            )
        },
    }, q


def bench_powerlaw(q, repeats=3):
    import powerlaw

    with np.errstate(all="ignore"):
        t0 = time.perf_counter()
        fit_auto = powerlaw.Fit(q, verbose=False)
        t_auto = time.perf_counter() - t0
    xmin = float(fit_auto.xmin)
    tail = jnp.asarray(q[q >= xmin])

    def nll(a, args):
        return -jnp.sum(pp.TruncatedPowerLawMarks(a, xmin).log_prob(tail)) / tail.size

    @jax.jit
    def ours(a0):
        return optx.minimise(
            nll, optx.BFGS(rtol=1e-8, atol=1e-8), a0, max_steps=500, throw=False
        ).value

    t0 = time.perf_counter()
    jax.block_until_ready(ours(jnp.asarray(2.5)))
    compile_s = time.perf_counter() - t0
    times_ours, times_peer = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a_ours = float(jax.block_until_ready(ours(jnp.asarray(2.5))))
        times_ours.append(time.perf_counter() - t0)
        with np.errstate(all="ignore"):
            t0 = time.perf_counter()
            a_peer = float(powerlaw.Fit(q, xmin=xmin, verbose=False).power_law.alpha)
            times_peer.append(time.perf_counter() - t0)
    closed = 1.0 + tail.size / float(np.sum(np.log(np.asarray(tail) / xmin)))  # Clauset eq. 3.1
    return {
        "xmin_kg_s": xmin,
        "n_tail": int(tail.size),
        "alpha_plumax": a_ours,
        "alpha_powerlaw": a_peer,
        "alpha_closed_form": closed,
        "plumax_fit_s_median": float(np.median(times_ours)),
        "plumax_compile_s": compile_s,
        "powerlaw_fit_s_median": float(np.median(times_peer)),
        "powerlaw_xmin_search_s": t_auto,
        "powerlaw_version": getattr(powerlaw, "__version__", "unknown"),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    sizes = [(1000, 200, 200)] if args.quick else [(1000, 500, 500), (10000, 300, 300)]
    rows, q_big = [], None
    for n, w, s in sizes:
        for variant in VARIANTS:
            r, q = bench_nuts(n, w, s, variant)
            rows.append(r)
        q_big = q
    pl = bench_powerlaw(q_big)
    head = f"{'variant':<28}{'events':>8} {'compile s':>10} {'sampling s':>11} {'min ESS':>8}"
    print(head + f" {'ESS/s':>8}")
    for r in rows:
        print(
            f"{r['variant']:<28}{r['n_events']:>8} {r['compile_s']:>10.2f} "
            f"{r['sampling_s']:>11.2f} {r['min_ess']:>8.0f} {r['ess_per_s']:>8.1f}"
        )
    print(f"\npower-law tail (x_min = {pl['xmin_kg_s']:.4g} kg/s, n_tail = {pl['n_tail']})")
    print(f"{'impl':>10} {'alpha':>8} {'fit s':>10}")
    print(f"{'plumax':>10} {pl['alpha_plumax']:>8.4f} {pl['plumax_fit_s_median']:>10.4f}")
    print(f"{'powerlaw':>10} {pl['alpha_powerlaw']:>8.4f} {pl['powerlaw_fit_s_median']:>10.4f}")
    print(f"{'closed':>10} {pl['alpha_closed_form']:>8.4f}")
    import importlib.metadata as md

    out = {
        "name": "bench_pod_nuts",
        "quick": args.quick,
        "nuts": rows,
        "powerlaw_tail": pl,
        "versions": {k: md.version(k) for k in ("plumax-pod", "plumax-core", "jax", "numpyro")},
        "backend": jax.default_backend(),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count()},
    }
    write_json_atomic("benchmarks/results/bench_pod_nuts.json", out)


if __name__ == "__main__":
    main()
