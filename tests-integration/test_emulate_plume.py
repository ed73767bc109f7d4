"""Cycle steps 3-4 on the Tier I Gaussian plume: emulator accuracy and inference agreement.

An emulator (PCA basis + MLP, log space) of the 64 x 64 column image (150-1100 m
downwind, +-200 m crosswind, so the plume is resolved by the pixels) of
`plumax_transport.GaussianPlume` is trained on 8000 simulations (<= 20k). On held-out
prior draws its median relative L2 error must be < 5%, and MAP + Laplace inference
(`vardax_lite.ThreeDVar`) with the emulator as the forward model must agree with the
same inference on the physics model within one oracle posterior sigma (and a spread
ratio <= 2) on 20 held-out cases (`plumax_core.gates.posterior_agreement`), with
synthetic observations = physics image + Gaussian noise of 100 ppm m per pixel.
"""

import time

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import plumax_core as pc
import plumax_emulate as pe

pytestmark = pytest.mark.slow

N_TRAIN = 8000
NOISE_PPM_M = 100.0  # per-pixel 1-sigma column noise, ppm m


def _setup():
    from plumax_transport import ColumnImage, GaussianPlume

    geo = ColumnImage(jnp.linspace(150.0, 1100.0, 64), jnp.linspace(-200.0, 200.0, 64))
    plume = GaussianPlume(geo)
    met = pc.MetField.uniform(4.0, 270.0, stability="D")
    prior = pc.GaussianPrior.from_std(
        plume.param_spec,
        jnp.array([np.log(0.05), 0.0, 0.0, np.log(20.0)]),
        jnp.array([0.5, 15.0, 20.0, 0.3]),
    )
    return plume, met, prior


def test_emulated_plume_accuracy_and_inference_agreement():
    import vardax_lite as vx

    plume, met, prior = _setup()
    t0 = time.perf_counter()
    train = pc.simulate_bank(plume, prior, met, N_TRAIN, key=jr.key(0))
    held = pc.simulate_bank(plume, prior, met, 500, key=jr.key(1))
    cfg = pe.TrainConfig(
        max_epochs=150, batch_size=128, learning_rate=2e-3, patience=25, val_fraction=0.1
    )
    result = pe.fit_emulator(
        train,
        key=jr.key(2),
        net="pca",
        net_options={"n_components": 64, "width": 256, "depth": 3},
        log_outputs=True,
        config=cfg,
    )
    t_train = time.perf_counter() - t0
    emu = result.model.with_policies(ood="ignore")
    summary = pe.error_summary(pe.relative_l2_errors(emu, held))
    print(f"simulate + train: {t_train:.0f} s, epochs {result.n_epochs}; held-out {summary}")
    assert summary["median"] < 0.05

    # MAP + Laplace on the physics model (oracle) and on the emulator, 20 held-out cases
    gates, z_worst = [], []
    for i in range(20):
        truth = held.params_at(i)
        clean = plume(truth, met).values
        noise = NOISE_PPM_M * jr.normal(jr.key(100 + i), clean.shape)
        obs = pc.Observations(clean + noise, kind=held.template.kind, sigma=NOISE_PPM_M)
        oracle = vx.ThreeDVar().posterior(vx.Problem(plume, met, obs, prior))
        cand = vx.ThreeDVar().posterior(vx.Problem(emu, met, obs, prior))
        gate = pc.gates.posterior_agreement(cand, oracle)
        gates.append(gate)
        z_worst.append(gate.details["max_z_observed"])
    print("posterior agreement max z per case:", np.round(z_worst, 2))
    failing = [i for i, g in enumerate(gates) if not g.passed]
    assert not failing, [str(gates[i]) for i in failing]
