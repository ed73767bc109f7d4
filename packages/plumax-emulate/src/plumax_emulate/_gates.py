"""Emulator gates: accuracy on held-out simulations and Jacobian agreement.

* :func:`relative_l2_errors` — per-draw ``||y_emu - y|| / ||y||`` on a held-out
  `plumax_core.SimulationBank`;
* :func:`accuracy_gate` — thresholds on the *distribution* of those errors (median,
  90th percentile, maximum), not only the mean;
* :func:`jacobian_gate` — at several draws, the Jacobians (``jax.jacfwd`` of
  `plumax_core.forward_flat` in the unconstrained space) of the emulator and of the
  physics model compared by `plumax_core.gates.jacobian_probe_error` (the 5% gate).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import PRNGKeyArray

from plumax_core import AbstractForwardModel, MetField, SimulationBank, forward_flat
from plumax_core.gates import GateResult, jacobian_probe_error

from ._inputs import bank_inputs, check_emulator_bank
from ._neural_forward import NeuralForward


@eqx.filter_jit
def _predict(model: NeuralForward, x):
    return jax.vmap(model.predict_flat)(x)


@eqx.filter_jit
def _jacobian(model: AbstractForwardModel, met: MetField, theta):
    return jax.jacfwd(forward_flat(model, met, unconstrained=True))(theta)


def relative_l2_errors(
    model: NeuralForward, bank: SimulationBank, *, chunk: int = 1024
) -> np.ndarray:
    """Per-draw relative L2 error ``||y_emu - y||_2 / ||y||_2`` over ``bank``.

    Args:
        model: the emulator.
        bank: held-out clean simulations (a `plumax_core.SimulationBank`).
        chunk: draws per emulator call.

    Returns:
        ``(n,)`` float64 array (a draw with ``y = 0`` gives ``inf`` unless the
        emulator also returns exactly 0).
    """
    if not isinstance(model, NeuralForward):
        raise TypeError(f"`model` must be a NeuralForward, got {type(model).__name__}")
    check_emulator_bank(bank)
    if bank.obs_shape != model.template.values.shape:
        raise ValueError(
            f"`bank` outputs {bank.obs_shape} do not match the emulator's "
            f"{model.template.values.shape}"
        )
    x = bank_inputs(bank).astype(np.float32)
    if x.shape[1] != model.net.n_in:
        raise ValueError("`bank` inputs (params + met features) do not match the emulator")
    n = bank.n
    y = np.asarray(bank.values).reshape(n, -1).astype(np.float64)
    out = np.empty(n)
    for s in range(0, n, chunk):
        pred = np.asarray(_predict(model, jnp.asarray(x[s : s + chunk])), np.float64)
        num = np.linalg.norm(pred - y[s : s + chunk], axis=1)
        den = np.linalg.norm(y[s : s + chunk], axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[s : s + chunk] = np.where(den > 0, num / den, np.where(num > 0, np.inf, 0.0))
    return out


def error_summary(errors) -> dict[str, float]:
    """``mean, median, p90, p99, max`` of per-draw errors."""
    e = np.asarray(errors, dtype=np.float64).ravel()
    if e.size == 0:
        raise ValueError("`errors` is empty")
    return {
        "mean": float(e.mean()),
        "median": float(np.median(e)),
        "p90": float(np.quantile(e, 0.9)),
        "p99": float(np.quantile(e, 0.99)),
        "max": float(e.max()),
        "n": int(e.size),
    }


def accuracy_gate(
    model: NeuralForward,
    bank: SimulationBank,
    *,
    max_median: float = 0.01,
    max_p90: float | None = None,
    max_max: float | None = None,
) -> GateResult:
    """Pass when the held-out relative L2 errors meet every given threshold.

    Args:
        model: the emulator.
        bank: held-out simulations (a bank drawn with another key).
        max_median: limit on the median error (the headline statistic).
        max_p90: optional limit on the 90th percentile.
        max_max: optional limit on the worst draw.

    Returns:
        `GateResult` ``"emulator_accuracy"``: statistic the median, threshold
        `max_median`; ``details`` has the summary and each rule's outcome.
    """
    limits = {"median": max_median, "p90": max_p90, "max": max_max}
    for k, v in limits.items():
        if v is not None and not (np.isfinite(v) and v > 0):
            raise ValueError(f"`max_{k}` must be finite and > 0, got {v}")
    summary = error_summary(relative_l2_errors(model, bank))
    checks = {k: bool(summary[k] <= v) for k, v in limits.items() if v is not None}
    rule = " and ".join(f"{k} <= {v:g}" for k, v in limits.items() if v is not None)
    return GateResult(
        name="emulator_accuracy",
        passed=all(checks.values()),
        statistic=summary["median"],
        threshold=float(max_median),
        details={"rule": f"relative L2 error {rule}", **summary, "checks": checks},
    )


def jacobian_gate(
    emulator: NeuralForward,
    physics: AbstractForwardModel,
    points: SimulationBank,
    *,
    key: PRNGKeyArray,
    n_points: int = 5,
    tol: float = 0.05,
    n_probes: int = 8,
) -> GateResult:
    """Compare emulator and physics Jacobians at ``n_points`` draws of ``points``.

    At each draw ``i`` (met ``points.met_at(i)``) both models are linearised in the
    unconstrained space, ``J = jacfwd(forward_flat(model, met, unconstrained=True))``,
    and `jacobian_probe_error` estimates ``||J_emu - J_phys||_2 / ||J_phys||_2``.
    The gate passes when every draw passes.

    Returns:
        `GateResult` ``"emulator_jacobian"``: statistic the worst draw's error;
        ``details`` lists each draw's error.
    """
    if not isinstance(points, SimulationBank):
        raise TypeError(
            f"`points` must be a plumax_core.SimulationBank, got {type(points).__name__}"
        )
    if physics.param_spec != emulator.param_spec:
        raise ValueError("`physics` and `emulator` have different param specs")
    if isinstance(n_points, bool) or not isinstance(n_points, int) or n_points < 1:
        raise ValueError(f"`n_points` must be a positive int, got {n_points!r}")
    k_pick, k_probe = jr.split(key)
    m = min(n_points, points.n)
    idx = np.sort(np.asarray(jr.choice(k_pick, points.n, (m,), replace=False)))
    stats, results = [], []
    for j, i in enumerate(idx):
        met: MetField = points.met_at(int(i))
        theta = jnp.asarray(points.theta[int(i)])
        j_emu, j_phys = _jacobian(emulator, met, theta), _jacobian(physics, met, theta)
        r = jacobian_probe_error(
            j_emu, j_phys, key=jr.fold_in(k_probe, j), n_probes=n_probes, tol=tol
        )
        results.append(r)
        stats.append(r.statistic)
    worst = float(np.max(stats))
    return GateResult(
        name="emulator_jacobian",
        passed=all(r.passed for r in results),
        statistic=worst,
        threshold=float(tol),
        details={
            "rule": "every draw: ||J_emu - J_phys|| / ||J_phys|| <= tol",
            "indices": idx.tolist(),
            "errors": stats,
            "median_error": float(np.median(stats)),
        },
    )
