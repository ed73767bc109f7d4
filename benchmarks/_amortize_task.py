"""The linear-Gaussian amortization task shared by the two amortized-inference benchmarks.

``bench_amortize_latency.py`` (plumax-amortize, JAX) and ``bench_amortize_sbi.py`` (the
`sbi` peer, PyTorch, run in its own environment) must score the same task the same way,
so the task, its closed-form posterior and the accuracy score live here once. Only
numpy and the standard library are imported: both environments have them.

Model: ``y = A theta + B + N(0, SIGMA^2 I)`` with 5 observations of D = 2 parameters and
the prior ``theta ~ N(M0, S0)``; conjugate, so the posterior is Gaussian in closed form
(Bishop 2006, eq. 2.116-2.117).
"""

import numpy as np

A = np.array([[1.0, 0.5], [0.2, -1.0], [0.7, 0.7], [-0.4, 0.3], [1.2, -0.2]])
B = np.array([0.1, -0.3, 0.0, 0.5, 0.2])
SIGMA = 0.5
M0 = np.array([0.5, -1.0])
S0 = np.array([[1.0, 0.3], [0.3, 0.8]])
N_TRAIN = 5000
N_DRAWS = 1000


def closed_form(y):
    """Posterior ``(mean (2,), cov (2, 2))`` of theta given one observation ``y`` (5,)."""
    s0i = np.linalg.inv(S0)
    cov = np.linalg.inv(s0i + A.T @ A / SIGMA**2)
    return cov @ (s0i @ M0 + A.T @ (y - B) / SIGMA**2), cov


def score(draws, y):
    """``(max |dmean| / sd_post, max |sd / sd_post - 1|)`` of ``draws`` (M, 2) against the
    closed-form posterior of ``y``."""
    mean, cov = closed_form(y)
    sd = np.sqrt(np.diag(cov))
    return (
        float(np.max(np.abs(draws.mean(0) - mean) / sd)),
        float(np.max(np.abs(draws.std(0, ddof=1) / sd - 1))),
    )


def print_rows(rows, name_width=42, setting_width=28):
    """Print ``(metric, setting, value)`` rows as a table."""
    print(f"{'metric':{name_width}s} {'setting':{setting_width}s} {'value':>12s}")
    for name, setting, value in rows:
        print(f"{name:{name_width}s} {setting:{setting_width}s} {value:12.4g}")
