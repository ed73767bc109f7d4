"""Emulator speed-up over a moderately expensive analytic physics model, CPU.

The physics model is a Gaussian-puff column image: ``K`` puffs released at a steady
rate from a source ``(x0, y0)`` of strength ``Q``, advected by a uniform wind and
spreading as ``sigma(age) = a age^0.9`` (so each call evaluates ``K x H x W`` Gaussians,
like a Tier I puff model with many puffs). A `plumax_emulate.PCANet` emulator
(log-free, standard outputs) is trained on ``N`` simulations of it.

Measured, after compilation, median of repeats, each ending in ``block_until_ready``:

* forward time per call at batch 1 and per batch of 1024 (``jit(vmap)``) for both;
* simulation cost of the training set and training cost of the emulator;
* held-out accuracy of the emulator (median / p90 / max relative L2 error);
* break-even number of forward calls ``N* = (simulate + train) / (t_phys - t_emu)``,
  per single call and per sample in batches of 1024.

Results are printed and written atomically to
``benchmarks/results/bench_emulate_speed.json``. ``--quick`` runs a smaller problem.

    uv run python benchmarks/bench_emulate_speed.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import platform
import time

import jax
from _results import write_json_atomic

jax.config.update("jax_platforms", "cpu")

import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jax.random as jr  # noqa: E402
import numpy as np  # noqa: E402

import plumax_core as pc  # noqa: E402
import plumax_emulate as pe  # noqa: E402

SPEC = pc.ParamSpec(
    (
        pc.Param("Q", units="kg/s", lower=0.0, log=True),
        pc.Param("x0", units="m"),
        pc.Param("y0", units="m"),
    )
)


class PuffImage(pc.AbstractForwardModel):
    """Column image (kg/m2) of ``n_puffs`` Gaussian puffs on an ``n x n`` grid."""

    grid: jax.Array
    n_puffs: int = eqx.field(static=True)
    dt: float = eqx.field(static=True, default=2.0)

    @property
    def param_spec(self):
        return SPEC

    def __call__(self, params, met):
        u, v = jnp.mean(met.u), jnp.mean(met.v)
        age = self.dt * (jnp.arange(self.n_puffs) + 0.5)
        px = params["x0"] + u * age
        py = params["y0"] + v * age
        sig = 0.5 * age**0.9 + 20.0  # puffs resolved by the 19-25 m grid
        mass = params["Q"] * self.dt
        X, Y = jnp.meshgrid(self.grid, self.grid)

        def add(img, puff):  # scan over puffs: memory stays one image per sample
            x, y, s = puff
            r2 = (X - x) ** 2 + (Y - y) ** 2
            return img + jnp.exp(-0.5 * r2 / s**2) / (2 * jnp.pi * s**2), None

        img, _ = jax.lax.scan(add, jnp.zeros_like(X), (px, py, sig))
        img = mass * img
        return pc.Observations(img, kind="column_kg_m2", coords={"x": self.grid, "y": self.grid})


def _timeit(fn, *args, repeats=7):
    jax.block_until_ready(fn(*args))  # compile + warm up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main(quick: bool = False) -> dict:
    n_pix, n_puffs = (24, 300) if quick else (32, 2000)
    n_train, epochs = (1000, 30) if quick else (4000, 150)
    model = PuffImage(jnp.linspace(0.0, 600.0, n_pix), n_puffs)
    met = pc.MetField.uniform(3.0, 270.0)
    prior = pc.GaussianPrior.from_std(SPEC, jnp.array([0.0, 50.0, 300.0]), jnp.array([0.3, 20, 40]))

    t = time.perf_counter()
    train = pc.simulate_bank(model, prior, met, n_train, key=jr.key(0), batch_size=64)
    t_sim = time.perf_counter() - t
    held = pc.simulate_bank(model, prior, met, 500, key=jr.key(1), batch_size=64)
    t = time.perf_counter()
    cfg = pe.TrainConfig(max_epochs=epochs, batch_size=64, learning_rate=3e-3, patience=30)
    res = pe.fit_emulator(
        train,
        key=jr.key(2),
        net="pca",
        config=cfg,
        net_options={"n_components": 48, "width": 128, "depth": 3},
    )
    t_train = time.perf_counter() - t
    emu = res.model.with_policies(ood="ignore", met_mismatch="ignore")
    err = pe.error_summary(pe.relative_l2_errors(emu, held))

    flat = {
        name: pc.forward_flat(m, met, unconstrained=True)
        for name, m in (("physics", model), ("emulator", emu))
    }
    theta1 = jnp.asarray(held.theta[0])
    theta_b = jnp.asarray(np.resize(held.theta, (1024, 3)))
    rows = {}
    for name, f in flat.items():
        single = jax.jit(f)
        batched = jax.jit(jax.vmap(f))
        rows[name] = {
            "batch1_s": _timeit(single, theta1, repeats=51),
            "batch1024_s": _timeit(batched, theta_b, repeats=3 if name == "physics" else 7),
        }
    cost = t_sim + t_train
    out = {
        "speedup_batch1": rows["physics"]["batch1_s"] / rows["emulator"]["batch1_s"],
        "speedup_batch1024": rows["physics"]["batch1024_s"] / rows["emulator"]["batch1024_s"],
    }
    gain1 = rows["physics"]["batch1_s"] - rows["emulator"]["batch1_s"]
    gainb = (rows["physics"]["batch1024_s"] - rows["emulator"]["batch1024_s"]) / 1024
    out["break_even_calls_batch1"] = cost / gain1 if gain1 > 0 else float("inf")
    out["break_even_samples_batch1024"] = cost / gainb if gainb > 0 else float("inf")
    result = {
        "name": "bench_emulate_speed",
        "quick": quick,
        "problem": {
            "image": [n_pix, n_pix],
            "n_puffs": n_puffs,
            "n_train": n_train,
            "net": "pca(48) + mlp(128x3)",
            "max_epochs": epochs,
            "epochs_run": res.n_epochs,
        },
        "timings": rows,
        "simulate_train_set_s": t_sim,
        "train_s": t_train,
        "train_loop_s": res.train_seconds,
        "held_out_relative_l2": err,
        **out,
        "versions": {
            "jax": jax.__version__,
            "plumax_core": pc.__version__,
            "plumax_emulate": pe.__version__,
        },
        "backend": jax.default_backend(),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_avg_1min": os.getloadavg()[0],
        },
    }
    print(f"{'model':<10} {'batch 1 (ms)':>14} {'batch 1024 (ms)':>16}")
    for name, r in rows.items():
        print(f"{name:<10} {1e3 * r['batch1_s']:>14.3f} {1e3 * r['batch1024_s']:>16.2f}")
    print(
        f"speed-up: batch 1 {out['speedup_batch1']:.1f}x, batch 1024 "
        f"{out['speedup_batch1024']:.1f}x"
    )
    print(
        f"simulate {n_train} draws: {t_sim:.1f} s; train ({res.n_epochs} epochs): {t_train:.1f} s"
    )
    print(
        f"break-even: {out['break_even_calls_batch1']:.3g} single calls, "
        f"{out['break_even_samples_batch1024']:.3g} samples in batches of 1024"
    )
    print("held-out relative L2:", {k: round(v, 4) for k, v in err.items()})
    path = pathlib.Path(__file__).parent / "results" / "bench_emulate_speed.json"
    write_json_atomic(path, result, indent=1)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small problem")
    main(parser.parse_args().quick)
