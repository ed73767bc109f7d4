"""Cycle step 5 on the Tier I Gaussian plume: amortized NPE against the NUTS oracle.

Parameters: log-emission ``Q`` (kg/s), source position ``x0, y0`` (m) and the wind speed
``u`` (m/s) as a nuisance parameter (the plume's column scales as ``Q / u``, so ``Q`` and
``u`` are strongly correlated a posteriori: a hard, non-Gaussian posterior). Data: noisy
24 x 24 column images (ppm m, 300-1500 m downwind) with random cloud masks (NaN in hidden
pixels). A CNN embedding + rational-quadratic-spline MAF is trained on simulations from
the prior.

Must show (issue 7): across 200 held-out simulations SBC passes at p > 0.01, and on 20
held-out cases the amortized posterior agrees with NUTS (vardax-lite) within one oracle
sigma with a spread ratio below 2 (`plumax_core.gates.posterior_agreement`).

The training simulations come from a defensive proposal that oversamples strong plumes
(half the prior, half the prior shifted one prior sd up in log Q and down in u); the flow
learns the proposal's posterior and every posterior is corrected to the prior's by
sampling-importance-resampling (`ProposalCorrection`).

Status (docs/amortize/calibration.md): with 200 000 simulations and the default
`CNNEmbedding` (a stride-1 first block and coordinate channels) this setting agreed with
NUTS on all 20 cases for 5 of 8 training keys on an NVIDIA H100 (worst z 0.45-0.89);
the other three missed only case 8, one of the four highest-signal cases, at z 1.00,
1.08 and 1.35. SBC passed for all eight (min p 0.02-0.36). The test's training key 13
gave 20 of 20 (worst z 0.61) and SBC min p 0.13. Simulating from the prior instead
agreed on all 20 for 1 of 6 keys (case 8 missed at z up to 2.03). Training takes about
115 000 steps: 6-8 minutes on an H100, an estimated 8 hours on 2 CPU cores (not run
there); run it on a GPU. The NUTS reference was checked independently by importance
sampling (cases 0 and 8-11: means within 0.1 oracle sd).
"""

import time
from collections.abc import Mapping

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jaxtyping import Array

import plumax_amortize as pa
import plumax_core as pc

pytestmark = pytest.mark.slow

N_TRAIN = 200000
NOISE_PPM_M = 60.0
SPEC = pc.ParamSpec(
    (
        pc.Param("Q", units="kg/s", lower=0.0, log=True, description="emission rate"),
        pc.Param("x0", units="m", description="source easting"),
        pc.Param("y0", units="m", description="source northing"),
        pc.Param("u", units="m/s", lower=1.0, upper=12.0, log=True, description="wind speed"),
    )
)


class PlumeWithWind(pc.AbstractForwardModel):
    """The Tier I plume with the wind speed as a parameter (release height fixed).

    NUTS trajectories can reach unconstrained values where ``Q = exp(z)`` underflows to 0
    or overflows (float32), or become NaN when they diverge. The plume is built with
    ``strict=False`` so that such a proposal gives NaN observations (a non-finite
    likelihood that NUTS rejects) instead of aborting the run, and with
    ``check_upwind=False`` (a proposal far upwind of the grid is a zero image).
    """

    plume: pc.AbstractForwardModel
    height: float = 20.0

    @property
    def param_spec(self) -> pc.ParamSpec:
        return SPEC

    def __call__(self, params: Mapping[str, Array], met: pc.MetField) -> pc.Observations:
        wind = pc.MetField.uniform(params["u"], 270.0, stability="D")
        p = {"Q": params["Q"], "x0": params["x0"], "y0": params["y0"], "H": self.height}
        obs = self.plume(p, wind)
        return obs.replace(sigma=jnp.asarray(NOISE_PPM_M))


def _setup():
    from plumax_transport import ColumnImage, GaussianPlume

    # 300-1500 m downwind: the plume (sigma_y >= 23 m, class D) is at least one crosswind
    # pixel (26 m) wide, so the image resolves it. Nearer the source a point-sampled
    # plume narrower than the pixels makes the likelihood of y0 spuriously sharp (posterior
    # sd down to 0.1 m when the plume axis happens to fall on a pixel row): aliasing, not
    # information a sensor has, and no amortized estimator learns it.
    geo = ColumnImage(jnp.linspace(300.0, 1500.0, 24), jnp.linspace(-300.0, 300.0, 24))
    model = PlumeWithWind(GaussianPlume(geo, check_upwind=False, strict=False))
    met = pc.MetField.uniform(4.0, 270.0, stability="D")  # unused: the wind is a parameter
    prior = pc.GaussianPrior.from_std(
        SPEC, jnp.array([np.log(0.05), 0.0, 0.0, 0.0]), jnp.array([0.5, 15.0, 20.0, 0.6])
    )
    return model, met, prior


# The settings below are shared with benchmarks/bench_amortize_plume_keys.py, which
# retrains this estimator once per training key.


def noise_model() -> pa.AbstractNoiseModel:
    """Gaussian noise at the model's sigma, 30% of pixels masked at random."""
    return pa.RandomMask(pa.ObservationNoise(), 0.3)


def proposal(prior: pc.GaussianPrior, shift: float = 1.0) -> pc.MixturePrior:
    """Half the prior, half the prior shifted ``shift`` prior sd up in log Q and down in u
    (unconstrained coordinates): more simulations of strong plumes in light wind, the
    observations that are rare under the prior and hardest for the flow."""
    sd = jnp.sqrt(jnp.diag(prior.cov.as_matrix()))
    direction = jnp.array([1.0, 0.0, 0.0, -1.0])
    strong = pc.GaussianPrior.from_std(prior.param_spec, prior.mean + shift * sd * direction, sd)
    return pc.MixturePrior((prior, strong), (0.5, 0.5))


def held_out(model, met, prior, noise):
    """(200 held-out simulations for SBC, the 20 cases compared with NUTS)."""
    return pa.simulate(model, prior, met, noise, 220, key=jr.key(1)).split(200)


def case_observation(cases, i: int) -> pc.Observations:
    """Case ``i`` as the Observations both the estimator and NUTS condition on."""
    return pc.Observations(cases.values[i], sigma=NOISE_PPM_M, mask=cases.mask[i], kind=cases.kind)


def fit(bank, *, key, max_epochs: int = 150, correction=None):
    """The test's estimator: the default CNN embedding and a 4-layer spline MAF."""
    return pa.fit_npe(
        bank,
        key=key,
        embedding=pa.CNNEmbedding((24, 24), 32, key=jr.key(2)),
        flow=pa.FlowConfig("maf_rqs", flow_layers=4, nn_width=64),
        train=pa.TrainConfig(
            batch_size=128,
            learning_rate=1e-3,
            patience=15,
            max_epochs=max_epochs,
            lr_decay=0.5,
            lr_patience=5,
        ),
        correction=correction,
    )


def nuts_oracle():
    """The reference. The (Q, u) posterior is a narrow curved ridge on high-signal cases
    (the column scales as Q / u); at the default target acceptance 0.8 one of the 20
    cases had 173 divergences and R-hat 1.6, so the reference itself was wrong. At 0.95
    all converge."""
    import vardax_lite as vx

    return vx.NUTSOracle(num_warmup=400, num_samples=500, num_chains=2, target_accept=0.95)


def test_npe_plume_sbc_and_agreement_with_nuts():
    import vardax_lite as vx

    model, met, prior = _setup()
    noise = noise_model()
    t0 = time.perf_counter()
    q = proposal(prior)
    train = pa.simulate(model, prior, met, noise, N_TRAIN, key=jr.key(0), proposal=q)
    sbc_bank, cases = held_out(model, met, prior, noise)
    npe, history = fit(train, key=jr.key(13), correction=pa.ProposalCorrection(prior, q))
    t_train = time.perf_counter() - t0
    sbc = pa.sbc_check(npe, sbc_bank, key=jr.key(4), n_posterior_samples=99)
    print(f"train {t_train:.0f} s, {history.n_steps} steps; {sbc}")
    assert sbc.passed, sbc.details["p_values"]
    assert sbc.statistic > 0.01

    oracle = nuts_oracle()
    results = []
    for i in range(cases.n):
        obs = case_observation(cases, i)
        amort = npe.posterior(obs, key=jr.fold_in(jr.key(5), i), n_samples=2000)
        nuts = oracle.posterior(vx.Problem(model, met, obs, prior), key=jr.fold_in(jr.key(6), i))
        # an unconverged oracle is no reference: compare only against a converged one
        assert nuts.provenance["converged"], (i, nuts.provenance["rhat"])
        gate = pc.gates.posterior_agreement(amort, nuts)
        results.append(gate)
        print(i, gate, np.round(gate.details["z"], 2), np.round(gate.details["cv_ratio"], 2))
    failing = [i for i, g in enumerate(results) if not g.passed]
    assert not failing, [results[i].details for i in failing]
