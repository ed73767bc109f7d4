"""Amortized inference latency (plumax-amortize NPE) versus NUTS on the same observation.

Model: a conjugate linear-Gaussian simulator (D = 2 parameters, 5 observations, noise
sigma 0.5), so both methods are also scored against the closed-form posterior. Rows:

* training cost: simulation of the bank and NPE training (wall time, optimiser steps);
* amortized latency per observation for 1000 posterior draws: one `NPE.posterior` call
  (a full `plumax_core.Posterior` with provenance) and the raw jitted sampler, and
  per observation in a vmapped batch of 100;
* NUTS (numpyro, used directly here: 500 warm-up + 1000 draws, 1 chain) on the same
  observation: first call (with compilation) and a warm second call;
* accuracy of both against the closed form: max |Δmean| / σ_post, max |σ/σ_post - 1|
  on one observation, and the NPE's averaged over 20 held-out observations;
* optionally the peer: the same task with the `sbi` package (PyTorch NPE, a MAF of the
  same size), run by ``benchmarks/bench_amortize_sbi.py`` in a separate environment
  that has torch (torch is not a project dependency). Pass that environment's Python
  with ``--sbi-python`` and its rows join this table and JSON, from the same run on the
  same machine; ``--sbi-seeds`` runs it once per seed (sbi's training depends on its
  initialisation seed).

Run: ``uv run python benchmarks/bench_amortize_latency.py [--sbi-python PATH]`` (CPU;
set ``JAX_PLATFORMS=cpu``). Writes its entry ``"bench_amortize_latency [<backend>]"`` of
``benchmarks/results/bench_amortize_latency.json``, keeping other backends' entries.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from _amortize_task import (
    M0,
    N_DRAWS,
    N_TRAIN,
    S0,
    SIGMA,
    A,
    B,
    print_rows,
    score,
)
from _results import update_json_atomic
from jaxtyping import Array

import plumax_amortize as pa
import plumax_core as pc

SPEC = pc.ParamSpec((pc.Param("a"), pc.Param("b")))


class LinearGaussian(pc.AbstractForwardModel):
    param_spec: pc.ParamSpec
    A: Array
    b: Array

    def __call__(self, params: Mapping[str, Array], met: pc.MetField) -> pc.Observations:
        return pc.Observations(
            self.A @ self.param_spec.flatten(params) + self.b, sigma=SIGMA, kind="generic"
        )


def _timeit(fn, repeats):
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def nuts_run(y, key, warmup=500, samples=N_DRAWS):
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import MCMC, NUTS

    def model(y):
        theta = numpyro.sample("theta", dist.MultivariateNormal(jnp.asarray(M0), jnp.asarray(S0)))
        numpyro.sample("y", dist.Normal(jnp.asarray(A) @ theta + jnp.asarray(B), SIGMA), obs=y)

    mcmc = MCMC(NUTS(model), num_warmup=warmup, num_samples=samples, progress_bar=False)
    mcmc.run(key, jnp.asarray(y))
    return mcmc.get_samples()["theta"]


def run_sbi(python: str, seed: int) -> dict:
    """Run the sbi peer script with ``python`` (an environment with torch and sbi)."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_amortize_sbi.py")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "sbi.json")
        subprocess.run([python, script, "--out", out, "--seed", str(seed)], check=True)
        with open(out) as f:
            return json.load(f)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sbi-python", help="Python of an environment with torch and sbi")
    parser.add_argument("--sbi-seeds", type=int, nargs="+", default=[0], help="sbi seeds")
    args = parser.parse_args()
    if args.sbi_python and not os.path.exists(args.sbi_python):
        sys.exit(f"--sbi-python: {args.sbi_python} does not exist")

    model = LinearGaussian(SPEC, jnp.asarray(A), jnp.asarray(B))
    prior = pc.GaussianPrior(jnp.asarray(M0), jnp.asarray(S0), SPEC)
    met = pc.MetField.uniform(3.0, 270.0)
    noise = pa.ObservationNoise()

    t = time.perf_counter()
    bank = pa.simulate(model, prior, met, noise, N_TRAIN, key=jr.key(1))
    jax.block_until_ready(bank.values)
    t_sim = time.perf_counter() - t
    t = time.perf_counter()
    npe, hist = pa.fit_npe(
        bank,
        key=jr.key(0),
        embedding=pa.MLPEmbedding((5,), 16, width=32, depth=1, key=jr.key(5)),
        flow=pa.FlowConfig("maf", flow_layers=3, nn_width=32),
        train=pa.TrainConfig(batch_size=128, learning_rate=2e-3, patience=10),
    )
    t_train = time.perf_counter() - t

    test = pa.simulate(model, prior, met, noise, 100, key=jr.key(2))
    y0 = test.values[0]
    npe.posterior(y0, key=jr.key(3), n_samples=N_DRAWS)  # compile
    t_post = _timeit(lambda: npe.posterior(y0, key=jr.key(3), n_samples=N_DRAWS).samples, 30)
    mask0 = jnp.ones(y0.shape, bool)
    sampler = jax.jit(lambda v, m, k: npe.sample_unconstrained(v, m, N_DRAWS, key=k))
    sampler(y0, mask0, jr.key(3))
    t_raw = _timeit(lambda: sampler(y0, mask0, jr.key(3)), 30)
    npe.sample_batch(test.values, key=jr.key(4), n_samples=N_DRAWS)
    t_batch = _timeit(lambda: npe.sample_batch(test.values, key=jr.key(4), n_samples=N_DRAWS), 5)
    t_batch /= test.n

    t = time.perf_counter()
    nuts_draws = nuts_run(y0, jr.key(6))
    jax.block_until_ready(nuts_draws)
    t_nuts_first = time.perf_counter() - t
    t = time.perf_counter()
    nuts_draws = nuts_run(y0, jr.key(7))
    jax.block_until_ready(nuts_draws)
    t_nuts_warm = time.perf_counter() - t

    y0n = np.asarray(y0, dtype=np.float64)
    flow_draws = np.asarray(npe.posterior(y0, key=jr.key(8), n_samples=4000).flat_samples())
    npe_mean_err, npe_sd_err = score(flow_draws, y0n)
    nuts_mean_err, nuts_sd_err = score(np.asarray(nuts_draws, dtype=np.float64), y0n)
    c2st = pa.c2st(flow_draws[:1000], np.asarray(nuts_draws), key=jr.key(9))
    held = [
        score(
            np.asarray(
                npe.posterior(test.values[i], key=jr.key(10 + i), n_samples=4000).flat_samples()
            ),
            np.asarray(test.values[i], dtype=np.float64),
        )
        for i in range(20)
    ]

    rows = [
        ("simulate bank (s)", f"{N_TRAIN} sims", t_sim),
        ("train NPE (s)", f"{hist.n_steps} steps, {len(hist.val_loss)} epochs", t_train),
        ("NPE posterior() per obs (ms)", f"{N_DRAWS} draws", 1e3 * t_post),
        ("NPE raw jitted sampler per obs (ms)", f"{N_DRAWS} draws", 1e3 * t_raw),
        ("NPE batched per obs (ms)", f"B={test.n}, {N_DRAWS} draws", 1e3 * t_batch),
        ("NUTS first call (s)", f"500 warm-up + {N_DRAWS}", t_nuts_first),
        ("NUTS warm call (s)", f"500 warm-up + {N_DRAWS}", t_nuts_warm),
        ("speed-up NUTS warm / NPE posterior()", "", t_nuts_warm / t_post),
        ("NPE max |dmean|/sd_post", "vs closed form", npe_mean_err),
        ("NPE max |sd/sd_post - 1|", "vs closed form", npe_sd_err),
        ("NUTS max |dmean|/sd_post", "vs closed form", nuts_mean_err),
        ("NUTS max |sd/sd_post - 1|", "vs closed form", nuts_sd_err),
        ("C2ST accuracy NPE vs NUTS", "0.5 = same", c2st.statistic),
        ("NPE max |dmean|/sd_post", "mean over 20 obs", float(np.mean([h[0] for h in held]))),
        ("NPE max |sd/sd_post - 1|", "mean over 20 obs", float(np.mean([h[1] for h in held]))),
    ]
    peers = []
    for seed in args.sbi_seeds if args.sbi_python else []:
        peer = run_sbi(args.sbi_python, seed)
        peers.append(peer)
        rows += [
            ("sbi " + r["metric"].removeprefix("sbi "), f"seed {seed}, {r['setting']}", r["value"])
            for r in peer["rows"]
        ]
    print_rows(rows, 44, 34)
    result = {
        "benchmark": "bench_amortize_latency",
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "jax_backend": jax.default_backend(),
            "load_average_1min": os.getloadavg()[0],
        },
        "target": {"npe_latency_ms_per_obs_1000_draws": 10.0},
        "passed_latency_target": bool(1e3 * t_post < 10.0),
        "rows": [{"metric": n, "setting": s, "value": float(v)} for n, s, v in rows],
        "train_history": hist.to_dict(),
        "peer_sbi": [{"machine": p["machine"], "config": p["config"]} for p in peers],
    }
    path = os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "results", "bench_amortize_latency.json"
    )
    update_json_atomic(path, f"bench_amortize_latency [{jax.default_backend()}]", result)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
