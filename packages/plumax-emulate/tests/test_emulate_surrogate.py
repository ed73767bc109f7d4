"""Must-show: a NeuralForward of an analytic 3-param -> 32-output model.

It reaches < 1% relative L2 error on held-out draws and passes the 5% Jacobian probe
gate; it is a ForwardModel (jit/vmap/grad contract); out-of-distribution params and
mismatched met are reported; it is stored in the ArtifactRegistry with the lineage of its
oracle and training bank.
"""

import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from plumax_core import (
    ArtifactRegistry,
    InvalidInputError,
    MetField,
    ModelRole,
    filter_jit,
    forward_flat,
    simulate_bank,
    tree_hash,
)
from plumax_core.testing import check_forward_model
from plumax_emulate import (
    MetMismatchWarning,
    NeuralForward,
    OutOfDistributionWarning,
    TrainConfig,
    accuracy_gate,
    error_summary,
    fit_emulator,
    jacobian_gate,
    relative_l2_errors,
    save_emulator,
)

CONFIG = TrainConfig(max_epochs=150, batch_size=32, learning_rate=5e-3, patience=1000)


@pytest.fixture(scope="module")
def trained(bump, prior, met, tmp_path_factory):
    registry = ArtifactRegistry(tmp_path_factory.mktemp("registry"))
    train = simulate_bank(bump, prior, met, 1000, key=jr.key(0))
    held_out = simulate_bank(bump, prior, met, 300, key=jr.key(1))
    result = fit_emulator(
        train, key=jr.key(2), net="mlp", net_options={"width": 64, "depth": 2}, config=CONFIG
    )
    save_emulator(result.model, registry, "bump-emulator")
    return result, train, held_out, registry


def test_accuracy_below_one_percent(trained):
    result, _, held_out, _ = trained
    errors = relative_l2_errors(result.model, held_out)
    summary = error_summary(errors)
    print("held-out relative L2:", summary, "train s:", result.train_seconds)
    assert summary["median"] < 0.01
    assert summary["p90"] < 0.02
    gate = accuracy_gate(result.model, held_out, max_median=0.01, max_p90=0.02)
    assert gate.passed, gate
    assert gate.details["median"] == pytest.approx(summary["median"])


def test_jacobian_passes_probe_gate(trained, bump):
    result, _, held_out, _ = trained
    gate = jacobian_gate(result.model, bump, held_out, key=jr.key(3), n_points=5, tol=0.05)
    print(gate, gate.details["errors"])
    assert gate.passed, gate


def test_gates_can_fail(trained, bump, prior, met):
    _, train, held_out, _ = trained
    cfg = TrainConfig(max_epochs=1, batch_size=500, learning_rate=1e-4)
    poor = fit_emulator(train, key=jr.key(9), config=cfg, net_options={"width": 8, "depth": 1})
    assert not accuracy_gate(poor.model, held_out, max_median=0.01).passed
    assert not jacobian_gate(poor.model, bump, held_out, key=jr.key(3), n_points=2).passed
    # a tight p90/max limit fails even a good model
    good = trained[0].model
    assert not accuracy_gate(good, held_out, max_median=0.5, max_max=1e-6).passed


def test_is_a_forward_model(trained, bump, met, prior):
    model = trained[0].model
    params = prior.sample(jr.key(5), 3)
    obs = check_forward_model(model, params, met, rtol=1e-4, atol=1e-5)
    ref = bump({k: v[0] for k, v in params.items()}, met)
    assert obs.kind == ref.kind and obs.units == ref.units and obs.dims == ref.dims
    assert obs.instrument == ref.instrument and obs.values.shape == ref.values.shape
    np.testing.assert_array_equal(obs.coords["obs"], ref.coords["obs"])
    np.testing.assert_array_equal(obs.sigma, ref.sigma)
    assert model.param_spec == bump.param_spec
    assert model.emulated_model_hash == tree_hash(bump)


def test_grad_through_emulator_matches_physics(trained, bump, met, prior):
    model = trained[0].model
    p = {k: v[0] for k, v in prior.sample(jr.key(6), 1).items()}
    target = bump(prior.param_spec.unflatten(jnp.array([1.1, 0.1, 0.55])), met).values

    def loss(m):
        return lambda q: jnp.sum((m(q, met).values - target) ** 2)

    g_emu, g_phys = jax.grad(loss(model))(p), jax.grad(loss(bump))(p)
    a = np.array([g_emu[k] for k in ("A", "mu", "s")])
    b = np.array([g_phys[k] for k in ("A", "mu", "s")])
    assert np.linalg.norm(a - b) <= 0.1 * np.linalg.norm(b)


def test_out_of_distribution_warns_or_raises(trained, met):
    model = trained[0].model
    inside = {"A": jnp.array(1.0), "mu": jnp.array(0.0), "s": jnp.array(0.6)}
    far = {"A": jnp.array(50.0), "mu": jnp.array(0.0), "s": jnp.array(0.6)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model(inside, met)  # no warning inside the training range
    with pytest.warns(OutOfDistributionWarning, match=r"\['A'\]"):
        model(far, met)
    strict = model.with_policies(ood="raise")
    with pytest.raises(ValueError, match="out of distribution"):
        strict(far, met)
    with pytest.raises(Exception, match="outside the range of the training draws"):
        jax.block_until_ready(eqx.filter_jit(strict)(far, met).values)
    with pytest.raises(InvalidInputError, match=r"^emulator inputs outside the range"):
        jax.block_until_ready(filter_jit(strict)(far, met).values)
    eqx.filter_jit(strict)(inside, met)  # fine under jit when inside
    quiet = model.with_policies(ood="ignore")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet(far, met)
    # outside the ParamSpec's support: always an error naming the parameter
    with pytest.raises(ValueError, match="params\\['s'\\]"):
        model({"A": jnp.array(1.0), "mu": jnp.array(0.0), "s": jnp.array(-0.5)}, met)


def test_met_mismatch(trained, met):
    model = trained[0].model
    p = {"A": jnp.array(1.0), "mu": jnp.array(0.0), "s": jnp.array(0.6)}
    series = MetField(jnp.full((3, 1, 1, 1), 5.0), 0.0, time=jnp.arange(3.0))
    with pytest.raises(ValueError, match="met shapes"):
        model(p, series)
    with pytest.raises(ValueError, match="met shapes"):  # also under jit (shapes are static)
        eqx.filter_jit(model)(p, series)
    with pytest.warns(MetMismatchWarning, match="differs from the fixed training met"):
        model(p, MetField.uniform(3.0, 270.0))
    strict = model.with_policies(met_mismatch="raise")
    with pytest.raises(ValueError, match="`met` differs"):
        strict(p, MetField.uniform(3.0, 270.0))
    with pytest.raises(TypeError, match="`met`"):
        model(p, {"u": 5.0})
    with pytest.raises(ValueError, match="batch"):
        model({k: jnp.stack([v, v]) for k, v in p.items()}, met)


def test_registry_checkpoint_and_lineage(trained, bump):
    result, train, _, registry = trained
    record = registry.info("bump-emulator")
    assert record.role == ModelRole.EMULATOR
    assert record.hash == tree_hash(result.model)
    assert record.lineage.oracle_hash == tree_hash(bump)
    assert record.lineage.training_artifact == train.content_hash() == result.model.dataset_hash
    loaded = registry.load("bump-emulator")
    assert isinstance(loaded, NeuralForward)
    theta = jnp.asarray(train.theta[:4])
    met = train.fixed_met
    a = jax.vmap(forward_flat(loaded, met, unconstrained=True))(theta)
    b = jax.vmap(forward_flat(result.model, met, unconstrained=True))(theta)
    np.testing.assert_array_equal(a, b)
