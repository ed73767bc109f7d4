"""How robust is the plume NPE's agreement with NUTS across training keys? (GPU sweep)

The integration test ``tests-integration/test_amortize_plume.py`` trains one estimator
with one key. This benchmark trains the same estimator (the test's model, prior, noise,
network and optimiser settings) once per training key and scores each against the NUTS
oracle on the test's 20 held-out cases with ``plumax_core.gates.posterior_agreement``,
plus SBC on the test's 200 held-out simulations. Settings:

* ``prior``: simulations from the prior (the test's setting until 2026-11-23);
* ``weighted``: simulations from a defensive proposal (half the prior, half the prior
  shifted ``--shift`` prior sd up in log Q and down in the wind speed, in unconstrained
  coordinates), trained on the importance-weighted loss;
* ``resampled``: the same simulations trained without the weights, each posterior
  corrected by ``plumax_amortize.ProposalCorrection`` (sampling-importance-resampling):
  the test's setting, with the proposal ``test_amortize_plume.proposal``.

The oracle is cached in ``benchmarks/results/amortize_plume_nuts.json`` (posterior means
and standard deviations in the unconstrained space, from ``vardax_lite.NUTSOracle`` with
the test's settings); ``--oracle recompute`` reruns NUTS and rewrites it (about a minute
per case on a CPU).

Each training takes 4.5-8 minutes on an H100 at 200 000 simulations and an estimated 5-8
hours on 2 CPU cores: run it on a GPU (``--quick`` is a CPU smoke run), e.g.
``python benchmarks/bench_amortize_plume_keys.py --setting resampled --keys 3 7 11 13 17``.
Writes the entry ``"<setting>[ shift=<s>] n=<n> epochs<=<e> [<backend>]"`` of
``benchmarks/results/bench_amortize_plume_keys.json``, keeping the others.
"""

import argparse
import json
import os
import platform
import sys
import time

import jax
import jax.random as jr
import numpy as np
from _results import update_json_atomic, write_json_atomic

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests-integration"))
import test_amortize_plume as plume  # noqa: E402  (the test's model, prior and noise)

import plumax_amortize as pa  # noqa: E402
import plumax_core as pc  # noqa: E402

RESULTS = os.path.join(HERE, "results")
ORACLE = os.path.join(RESULTS, "amortize_plume_nuts.json")


def oracle(model, met, prior, cases, recompute: bool):
    """(means, stds) of the NUTS posteriors of the 20 cases, (20, 4) each."""
    if not recompute and os.path.isfile(ORACLE):
        with open(ORACLE) as f:
            ref = json.load(f)
        return np.asarray(ref["means"]), np.asarray(ref["stds"])
    import vardax_lite as vx

    nuts = plume.nuts_oracle()
    means, stds = [], []
    for i in range(cases.n):
        obs = plume.case_observation(cases, i)
        post = nuts.posterior(vx.Problem(model, met, obs, prior), key=jr.fold_in(jr.key(6), i))
        if not post.provenance["converged"]:
            raise RuntimeError(f"NUTS did not converge on case {i}: {post.provenance['rhat']}")
        s = np.asarray(post.flat_samples(), dtype=np.float64)
        means.append(s.mean(0))
        stds.append(s.std(0))
        print(f"oracle case {i}: mean {np.round(means[-1], 3)}", flush=True)
    write_json_atomic(
        ORACLE,
        {
            "what": "NUTS posterior means and sds (unconstrained space) of the 20 held-out "
            "cases of tests-integration/test_amortize_plume.py",
            "oracle": "vardax_lite.NUTSOracle(num_warmup=400, num_samples=500, num_chains=2, "
            "target_accept=0.95), key fold_in(key(6), i)",
            "names": list(prior.param_spec.names),
            "means": np.asarray(means).tolist(),
            "stds": np.asarray(stds).tolist(),
        },
    )
    return np.asarray(means), np.asarray(stds)


def one_training(
    setting, key, n_train, shift, max_epochs, model, met, prior, noise, sbc_bank, cases, ref
):
    proposal = None if setting == "prior" else plume.proposal(prior, shift)
    t0 = time.perf_counter()
    bank = pa.simulate(model, prior, met, noise, n_train, key=jr.key(0), proposal=proposal)
    t_sim = time.perf_counter() - t0
    correction = pa.ProposalCorrection(prior, proposal) if setting == "resampled" else None
    t0 = time.perf_counter()
    npe, history = plume.fit(bank, key=jr.key(key), max_epochs=max_epochs, correction=correction)
    t_train = time.perf_counter() - t0
    sbc = pa.sbc_check(npe, sbc_bank, key=jr.key(4), n_posterior_samples=99)
    z = []
    for i in range(cases.n):
        amort = npe.posterior(
            plume.case_observation(cases, i), key=jr.fold_in(jr.key(5), i), n_samples=2000
        )
        gate = pc.gates.posterior_agreement(amort, (ref[0][i], ref[1][i]))
        z.append((bool(gate.passed), np.asarray(gate.details["z"]).tolist()))
    return {
        "key": key,
        "simulate_s": round(t_sim, 1),
        "train_s": round(t_train, 1),
        "steps": history.n_steps,
        "best_val_loss": history.best_val_loss,
        "effective_sample_size": bank.effective_sample_size(),
        "sbc_min_p": float(sbc.statistic),
        "sbc_passed": bool(sbc.passed),
        "agree": sum(p for p, _ in z),
        "failing": [i for i, (p, _) in enumerate(z) if not p],
        "worst_z": max(max(zz) for _, zz in z),
        "worst_case": int(np.argmax([max(zz) for _, zz in z])),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setting", choices=("prior", "weighted", "resampled"), default="prior")
    parser.add_argument("--keys", type=int, nargs="+", default=[3, 7, 11])
    parser.add_argument("--n-train", type=int, default=plume.N_TRAIN)
    parser.add_argument("--shift", type=float, default=1.0)
    parser.add_argument("--oracle", choices=("cached", "recompute"), default="cached")
    parser.add_argument(
        "--max-epochs", type=int, default=150, help="the test's 150; fewer for a smoke run"
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: key 3, 2000 simulations, 1 epoch"
    )
    args = parser.parse_args()
    if args.quick:
        args.keys, args.n_train, args.max_epochs = [3], 2000, 1
    if args.n_train < 1000:
        parser.error("--n-train must be at least 1000")
    if args.max_epochs < 1:
        parser.error("--max-epochs must be at least 1")

    model, met, prior = plume._setup()
    noise = plume.noise_model()
    sbc_bank, cases = plume.held_out(model, met, prior, noise)
    ref = oracle(model, met, prior, cases, args.oracle == "recompute")
    rows = []
    for key in args.keys:
        row = one_training(
            args.setting,
            key,
            args.n_train,
            args.shift,
            args.max_epochs,
            model,
            met,
            prior,
            noise,
            sbc_bank,
            cases,
            ref,
        )
        rows.append(row)
        print(
            f"key {key:>3}: {row['agree']:>2}/20 agree, worst z {row['worst_z']:.2f} "
            f"(case {row['worst_case']}), SBC min p {row['sbc_min_p']:.3f}, "
            f"{row['steps']} steps in {row['train_s']:.0f} s",
            flush=True,
        )
    backend = jax.default_backend()
    shift = "" if args.setting == "prior" else f" shift={args.shift:g}"
    name = f"{args.setting}{shift} n={args.n_train} epochs<={args.max_epochs} [{backend}]"
    entry = {
        "setting": args.setting,
        "shift": args.shift,
        "n_train": args.n_train,
        "max_epochs": args.max_epochs,
        "backend": backend,
        "device": str(jax.devices()[0]),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "versions": {
            "plumax_amortize": pa.__version__,
            "plumax_core": pc.__version__,
            "jax": jax.__version__,
        },
        "runs": rows,
        "all_agree": sum(r["agree"] == 20 for r in rows),
    }
    update_json_atomic(os.path.join(RESULTS, "bench_amortize_plume_keys.json"), name, entry)
    print(f"{name}: {entry['all_agree']} of {len(rows)} trainings agree on all 20 cases")


if __name__ == "__main__":
    main()
