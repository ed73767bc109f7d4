"""The missing-mass paradox: Monte Carlo against the closed forms, for every scenario."""

import jax.numpy as jnp
import numpy as np
import pytest

from plumax_pod import (
    HillPOD,
    LognormalMarks,
    ParadoxScenario,
    canonical_scenarios,
    paradox_closed_form,
    simulate_paradox,
)

SCENARIOS = canonical_scenarios()


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_paradox_scenario(name, getkey):
    sc = SCENARIOS[name]
    cf = paradox_closed_form(sc)
    sim = simulate_paradox(sc, key=getkey(), n_replicates=200)
    # the paradox, in closed form and in every simulated replicate average
    assert float(cf["observed_mean"]) > float(cf["true_mean"])
    assert float(cf["observed_mass"]) < float(cf["true_mass"])
    obs_mean = np.asarray(sim["observed_mean"])
    obs_mean = obs_mean[np.isfinite(obs_mean)]
    obs_mass, true_mass = np.asarray(sim["observed_mass"]), np.asarray(sim["true_mass"])
    assert obs_mean.mean() > np.asarray(sim["true_mean"]).mean()
    assert np.all(obs_mass <= true_mass)

    # Monte Carlo matches the closed forms within 4 standard errors
    def close(samples, ref):
        se = samples.std(ddof=1) / np.sqrt(samples.size)
        assert abs(samples.mean() - ref) < 4 * se + 1e-3 * abs(ref), (samples.mean(), ref, se)

    close(obs_mass, float(cf["observed_mass"]))
    close(np.asarray(sim["n_detected"]) / (sc.rate * sc.window), float(cf["detected_fraction"]))
    # ratio estimator: E[Σ Q det]/E[N det] over replicates
    ratio = obs_mass.sum() / sc.duration / np.asarray(sim["n_detected"]).sum()
    assert ratio == pytest.approx(float(cf["observed_mean"]), rel=0.1)


def test_closed_form_lognormal_hill_against_numpy():
    # independent check of E[Q P_d] with a dense log-grid Riemann sum
    sc = ParadoxScenario(LognormalMarks(np.log(0.1), 1.0), HillPOD(0.2, 2.0), 1e-4, 1e6, 60.0)
    x = np.linspace(-15, 10, 200001)
    pdf = np.exp(-0.5 * ((x - np.log(0.1)) / 1.0) ** 2) / np.sqrt(2 * np.pi)
    q = np.exp(x)
    p = q**2 / (q**2 + 0.04)
    dx = x[1] - x[0]
    e_qp, e_p = np.sum(pdf * q * p) * dx, np.sum(pdf * p) * dx
    cf = paradox_closed_form(sc)
    assert float(cf["observed_mean"]) == pytest.approx(e_qp / e_p, rel=2e-4)
    assert float(cf["observed_mass"]) == pytest.approx(1e-4 * 1e6 * 60.0 * e_qp, rel=2e-4)
    assert float(cf["missing_mass_fraction"]) == pytest.approx(
        1 - e_qp / np.exp(np.log(0.1) + 0.5), rel=2e-4
    )


def test_no_paradox_without_selection():
    sc = ParadoxScenario(LognormalMarks(0.0, 1.0), HillPOD(1e-9, 5.0), 1e-4, 1e6)
    cf = paradox_closed_form(sc)
    assert float(cf["missing_mass_fraction"]) == pytest.approx(0.0, abs=1e-6)
    assert float(cf["observed_mean"]) == pytest.approx(float(cf["true_mean"]), rel=1e-5)


def test_bad_scenario():
    with pytest.raises(ValueError, match="rate"):
        ParadoxScenario(LognormalMarks(0.0, 1.0), HillPOD(1.0), -1.0, 10.0)
    _ = jnp
