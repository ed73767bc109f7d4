"""Woodbury solve and determinant-lemma log-det versus dense solves, float64 on CPU.

Builds `A = diag(d) + U Uᵀ` (n = 4000, rank k = 16) as a
`plumax_core.linalg.LowRankUpdate` and times, after jit compilation, the best of several
repeats (each ending in `block_until_ready`):

* `plumax_core.linalg.solve` (Woodbury, O(n k² + k³)) against `jnp.linalg.solve` on the
  materialised matrix (LU, O(n³)) and, as a peer, `scipy.linalg.cho_factor` +
  `cho_solve` (LAPACK Cholesky, O(n³));
* `plumax_core.linalg.logdet` (matrix determinant lemma) against `jnp.linalg.slogdet`.

The dense timings exclude building the n × n matrix. The solutions and log-determinants
are checked to agree. Results are printed as a table and written atomically to
`benchmarks/results/linalg_woodbury.json`. The target is Woodbury ≥ 20× faster than the
dense solve.

Run from the repository root:

    uv run python benchmarks/bench_linalg_woodbury.py
"""

from __future__ import annotations

import os
import pathlib
import platform
import time

import jax
from _results import write_json_atomic

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_platforms", "cpu")

import jax.numpy as jnp  # noqa: E402
import lineax as lx  # noqa: E402
import numpy as np  # noqa: E402
import scipy.linalg  # noqa: E402

from plumax_core import linalg  # noqa: E402

N, RANK = 4000, 16
REPEATS_FAST, REPEATS_DENSE = 30, 5
TARGET_SPEEDUP = 20.0
RESULTS = pathlib.Path(__file__).resolve().parent / "results" / "linalg_woodbury.json"


def best_of(fn, repeats: int) -> float:
    """Best wall time (s) of `repeats` calls; `fn` must block until its result is ready."""
    fn()  # warm-up (and compile)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> dict:
    rng = np.random.default_rng(0)
    d = rng.uniform(0.5, 2.0, size=N)
    u = rng.standard_normal((N, RANK)) / np.sqrt(RANK)
    b = rng.standard_normal(N)

    op = linalg.LowRankUpdate(
        lx.DiagonalLinearOperator(jnp.asarray(d)),
        jnp.asarray(u),
        tags=(lx.symmetric_tag, lx.positive_semidefinite_tag),
    )
    b_j = jnp.asarray(b)
    dense = jax.block_until_ready(jax.jit(lambda op: op.as_matrix())(op))
    dense_np = np.asarray(dense)

    woodbury_solve = jax.jit(linalg.solve)
    woodbury_logdet = jax.jit(linalg.logdet)
    dense_solve = jax.jit(jnp.linalg.solve)
    dense_slogdet = jax.jit(lambda m: jnp.linalg.slogdet(m)[1])

    def scipy_cho():
        return scipy.linalg.cho_solve(scipy.linalg.cho_factor(dense_np, lower=True), b)

    x_wood = np.asarray(woodbury_solve(op, b_j))
    x_dense = np.asarray(dense_solve(dense, b_j))
    x_scipy = scipy_cho()
    ld_wood = float(woodbury_logdet(op))
    ld_dense = float(dense_slogdet(dense))
    solve_err_dense = float(np.max(np.abs(x_wood - x_dense)) / np.max(np.abs(x_dense)))
    solve_err_scipy = float(np.max(np.abs(x_wood - x_scipy)) / np.max(np.abs(x_scipy)))
    logdet_err = abs(ld_wood - ld_dense) / abs(ld_dense)
    residual = float(np.max(np.abs(dense_np @ x_wood - b)) / np.max(np.abs(b)))
    agree = max(solve_err_dense, solve_err_scipy, logdet_err, residual) < 1e-8

    t = {
        "woodbury_solve": best_of(
            lambda: woodbury_solve(op, b_j).block_until_ready(), REPEATS_FAST
        ),
        "jnp_linalg_solve": best_of(
            lambda: dense_solve(dense, b_j).block_until_ready(), REPEATS_DENSE
        ),
        "scipy_cho_factor_solve": best_of(scipy_cho, REPEATS_DENSE),
        "woodbury_logdet": best_of(lambda: woodbury_logdet(op).block_until_ready(), REPEATS_FAST),
        "jnp_linalg_slogdet": best_of(
            lambda: dense_slogdet(dense).block_until_ready(), REPEATS_DENSE
        ),
    }
    speedup = {
        "solve_vs_jnp_linalg_solve": t["jnp_linalg_solve"] / t["woodbury_solve"],
        "solve_vs_scipy_cho_solve": t["scipy_cho_factor_solve"] / t["woodbury_solve"],
        "logdet_vs_jnp_slogdet": t["jnp_linalg_slogdet"] / t["woodbury_logdet"],
    }
    result = {
        "benchmark": "linalg_woodbury",
        "n": N,
        "rank": RANK,
        "dtype": "float64",
        "device": str(jax.devices()[0]),
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "versions": {
            "jax": jax.__version__,
            "lineax": lx.__version__,
            "numpy": np.__version__,
            "scipy": scipy.__version__,
        },
        "timing": "best of repeats after jit compile, seconds",
        "repeats": {"woodbury": REPEATS_FAST, "dense": REPEATS_DENSE},
        "seconds": t,
        "speedup": speedup,
        "target_speedup": TARGET_SPEEDUP,
        "meets_target": speedup["solve_vs_jnp_linalg_solve"] >= TARGET_SPEEDUP,
        "agreement": {
            "max_rel_diff_solve_vs_jnp": solve_err_dense,
            "max_rel_diff_solve_vs_scipy": solve_err_scipy,
            "rel_diff_logdet": logdet_err,
            "rel_residual_woodbury": residual,
            "logdet_woodbury": ld_wood,
            "logdet_dense": ld_dense,
            "agree": agree,
        },
    }

    print(f"LowRankUpdate(diagonal base), n = {N}, rank = {RANK}, float64, {result['device']}")
    print(f"{'method':<34}{'time (ms)':>12}{'speedup':>10}")
    rows = [
        ("woodbury solve (plumax)", t["woodbury_solve"], None),
        (
            "jnp.linalg.solve (dense LU)",
            t["jnp_linalg_solve"],
            speedup["solve_vs_jnp_linalg_solve"],
        ),
        (
            "scipy cho_factor+cho_solve",
            t["scipy_cho_factor_solve"],
            speedup["solve_vs_scipy_cho_solve"],
        ),
        ("logdet (determinant lemma)", t["woodbury_logdet"], None),
        ("jnp.linalg.slogdet (dense)", t["jnp_linalg_slogdet"], speedup["logdet_vs_jnp_slogdet"]),
    ]
    for name, seconds, ratio in rows:
        ratio_text = "" if ratio is None else f"{ratio:9.1f}x"
        print(f"{name:<34}{seconds * 1e3:>12.3f}{ratio_text:>10}")
    print(
        f"agreement: solve rel diff {solve_err_dense:.1e} (jnp), {solve_err_scipy:.1e} (scipy); "
        f"logdet rel diff {logdet_err:.1e}; ok = {agree}"
    )
    print(
        f"target >= {TARGET_SPEEDUP:.0f}x vs dense solve: "
        f"{'met' if result['meets_target'] else 'NOT met'}"
    )

    write_json_atomic(RESULTS, result)
    print(f"wrote {RESULTS}")
    if not agree:
        raise SystemExit("Woodbury and dense results disagree")
    return result


if __name__ == "__main__":
    main()
