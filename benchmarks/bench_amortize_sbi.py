"""Peer benchmark: the `sbi` package (PyTorch NPE) on the linear-Gaussian amortization task.

This mirrors ``benchmarks/bench_amortize_latency.py`` (the JAX NPE benchmark) with the
reference PyTorch implementation, so both can be read side by side:

* model: conjugate linear-Gaussian simulator, D = 2 parameters, 5 observations,
  ``y = A theta + b + N(0, SIGMA^2)``, prior ``N(M0, S0)``; the task, its closed form
  and the accuracy score come from ``_amortize_task.py``, shared with the JAX benchmark;
* training: 5000 simulations drawn with numpy, sbi's NPE (NPE-C) with a masked
  autoregressive flow of 3 transforms and 32 hidden features, batch 128,
  learning rate 2e-3, early stopping after 10 epochs without validation improvement;
* latency per observation for 1000 posterior draws: ``DirectPosterior.sample`` (sbi's
  default path, which rejects draws outside the prior support), the same without the
  support check, and ``sample_batched`` over 100 observations divided by 100;
* accuracy against the closed-form posterior: max |dmean| / sd_post and
  max |sd / sd_post - 1| from 4000 draws on one held-out observation, and the mean of
  both over 20 held-out observations.

Only numpy, torch, sbi and the numpy-only ``_amortize_task.py`` beside it are
imported. torch must never enter the project's own environment, so this script runs in
a separate virtual environment::

    python3.11 -m venv /tmp/sbi-env
    /tmp/sbi-env/bin/pip install torch==2.13.0
    /tmp/sbi-env/bin/pip install sbi numpy "torch==2.13.0"

(pinning torch in the second command keeps pip from replacing the CPU build). Run::

    /tmp/sbi-env/bin/python bench_amortize_sbi.py [--out PATH] [--threads 2] [--seed 0]

It prints a table (metric, setting, value) and writes JSON to ``--out`` (default
``bench_amortize_sbi.json`` beside this script), atomically via a temporary file.

The script sets ``OMP_WAIT_POLICY=PASSIVE`` unless the environment already sets it: with
libgomp's default spinning and two torch threads on two cores shared with another busy
process, each small op stalled for ~20 ms (training took 20 s an epoch instead of ~0.1 s).
Run with ``OMP_WAIT_POLICY=ACTIVE`` in the environment to measure torch's default.
"""

import argparse
import os
import platform
import statistics
import time

# libgomp's default busy-wait makes every torch op stall for milliseconds when the cores are
# shared with another busy process; read once when torch loads, so it must be set here.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import sbi
import torch
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
from _results import write_json_atomic
from sbi.inference import NPE
from sbi.neural_nets import posterior_nn

N_SCORE_DRAWS = 4000
N_BATCH = 100
N_HELDOUT = 20
LATENCY_REPEATS = 30
BATCH_REPEATS = 5


class NullTracker:
    """Tracker that records nothing (sbi's default writes TensorBoard logs to ./sbi-logs)."""

    log_dir = None

    def log_metric(self, name, value, step=None):
        pass

    def log_metrics(self, metrics, step=None):
        pass

    def log_params(self, params):
        pass

    def add_figure(self, name, figure, step=None):
        pass

    def flush(self):
        pass


def simulate(rng, n):
    """Draw n (theta, y) pairs from the prior and the linear-Gaussian simulator."""
    theta = rng.multivariate_normal(M0, S0, size=n)
    y = theta @ A.T + B + SIGMA * rng.standard_normal((n, A.shape[0]))
    return theta, y


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def as_tensor(a):
    return torch.as_tensor(a, dtype=torch.float32)


def parse_args():
    default_out = os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "bench_amortize_sbi.json"
    )
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=default_out, help="where to write the JSON result")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--seed", type=int, default=0, help="seed for numpy and torch")
    return parser.parse_args()


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    prior = torch.distributions.MultivariateNormal(as_tensor(M0), covariance_matrix=as_tensor(S0))

    t = time.perf_counter()
    theta, y = simulate(rng, N_TRAIN)
    t_sim = time.perf_counter() - t

    estimator = posterior_nn(model="maf", hidden_features=32, num_transforms=3)
    inference = NPE(
        prior=prior,
        density_estimator=estimator,
        tracker=NullTracker(),
        show_progress_bars=False,
    )
    t = time.perf_counter()
    inference.append_simulations(as_tensor(theta), as_tensor(y))
    density = inference.train(
        training_batch_size=128,
        learning_rate=2e-3,
        stop_after_epochs=10,
    )
    posterior = inference.build_posterior(density)
    t_train = time.perf_counter() - t
    epochs = inference.summary["epochs_trained"][-1]
    # sbi holds out validation_fraction = 0.1 and its train loader drops the last batch.
    steps = epochs * (int(0.9 * N_TRAIN) // 128)

    _, y_test = simulate(rng, N_BATCH)
    y_test_t = as_tensor(y_test)
    y0 = y_test_t[0]

    def draw(n, x, reject=True):
        return posterior.sample((n,), x=x, show_progress_bars=False, reject_outside_prior=reject)

    def draw_raw():
        with torch.no_grad():
            return draw(N_DRAWS, y0, reject=False)

    def draw_batch():
        return posterior.sample_batched(
            (N_DRAWS,), x=y_test_t, max_sampling_batch_size=N_DRAWS, show_progress_bars=False
        )

    draw(N_DRAWS, y0)  # warm-up
    t_post = median_time(lambda: draw(N_DRAWS, y0), LATENCY_REPEATS)
    draw_raw()
    t_raw = median_time(draw_raw, LATENCY_REPEATS)
    has_batched = hasattr(posterior, "sample_batched")
    if has_batched:
        draw_batch()
        t_batch = median_time(draw_batch, BATCH_REPEATS) / N_BATCH

    def draws_np(x):
        return draw(N_SCORE_DRAWS, x).numpy().astype(np.float64)

    mean_err, sd_err = score(draws_np(y0), y_test[0])
    held = [score(draws_np(y_test_t[i]), y_test[i]) for i in range(N_HELDOUT)]
    mean_err_avg = float(np.mean([h[0] for h in held]))
    sd_err_avg = float(np.mean([h[1] for h in held]))

    rows = [
        ("simulate bank (s)", f"{N_TRAIN} sims (numpy)", t_sim),
        ("train NPE (s)", f"{steps} steps, {epochs} epochs", t_train),
        ("sbi posterior.sample per obs (ms)", f"{N_DRAWS} draws", 1e3 * t_post),
        ("sbi sample, no prior check per obs (ms)", f"{N_DRAWS} draws", 1e3 * t_raw),
    ]
    if has_batched:
        rows.append(
            ("sbi sample_batched per obs (ms)", f"B={N_BATCH}, {N_DRAWS} draws", 1e3 * t_batch)
        )
    rows += [
        ("NPE max |dmean|/sd_post", "vs closed form, 1 obs", mean_err),
        ("NPE max |sd/sd_post - 1|", "vs closed form, 1 obs", sd_err),
        ("NPE max |dmean|/sd_post", f"mean over {N_HELDOUT} obs", mean_err_avg),
        ("NPE max |sd/sd_post - 1|", f"mean over {N_HELDOUT} obs", sd_err_avg),
    ]
    print()  # sbi ends its "converged after N epochs" message without a newline
    print_rows(rows)

    result = {
        "benchmark": "bench_amortize_sbi",
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "torch_version": torch.__version__,
            "sbi_version": sbi.__version__,
            "numpy_version": np.__version__,
            "load_average_1min": os.getloadavg()[0],
        },
        "config": {
            "n_train": N_TRAIN,
            "density_estimator": "maf",
            "hidden_features": 32,
            "num_transforms": 3,
            "training_batch_size": 128,
            "learning_rate": 2e-3,
            "stop_after_epochs": 10,
            "seed": args.seed,
        },
        "rows": [{"metric": n, "setting": s, "value": float(v)} for n, s, v in rows],
        "train_history": {
            "epochs": epochs,
            "training_loss": [float(v) for v in inference.summary["training_loss"]],
            "validation_loss": [float(v) for v in inference.summary["validation_loss"]],
        },
    }
    write_json_atomic(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
