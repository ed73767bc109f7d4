"""Training loop: determinism, early stopping, checkpoints, architectures, bad input."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from plumax_core import (
    ArtifactRegistry,
    GaussianNoise,
    MetField,
    ModelRole,
    RandomMask,
    simulate_bank,
    tree_hash,
)
from plumax_core.testing import tree_allclose
from plumax_emulate import (
    ConvDecoderNet,
    MLPNet,
    NeuralForward,
    OutputTransform,
    PCANet,
    Standardiser,
    TrainConfig,
    WindFeatures,
    error_summary,
    fit_emulator,
    load_emulator,
    relative_l2_errors,
    save_emulator,
)

FAST = TrainConfig(max_epochs=4, batch_size=50, patience=100)


@pytest.fixture(scope="module")
def small(bump, prior, met):
    return simulate_bank(bump, prior, met, 200, key=jr.key(0))


def test_deterministic_given_key(small):
    a = fit_emulator(small, key=jr.key(1), config=FAST, net_options={"width": 16, "depth": 1})
    b = fit_emulator(small, key=jr.key(1), config=FAST, net_options={"width": 16, "depth": 1})
    c = fit_emulator(small, key=jr.key(2), config=FAST, net_options={"width": 16, "depth": 1})
    assert tree_allclose(eqx.filter(a.model, eqx.is_array), eqx.filter(b.model, eqx.is_array))
    assert a.history == b.history
    assert not tree_allclose(a.model.net, c.model.net)
    np.testing.assert_array_equal(a.val_indices, b.val_indices)
    assert len(a.val_indices) == 20 and len(a.train_indices) == 180
    assert not set(a.val_indices) & set(a.train_indices)


def test_early_stopping_and_schedule(small):
    cfg = TrainConfig(max_epochs=200, batch_size=50, patience=2, min_delta=0.9)
    r = fit_emulator(small, key=jr.key(1), config=cfg, net_options={"width": 16, "depth": 1})
    assert r.stopped_early and r.n_epochs < 200
    # epoch 0 improves on inf; no later epoch improves by 90%: stop after `patience` more
    assert r.n_epochs == len(r.history["val_loss"]) == 3
    assert r.best_epoch == int(np.argmin(r.history["val_loss"]))
    full = fit_emulator(
        small,
        key=jr.key(1),
        config=TrainConfig(max_epochs=12, warmup_epochs=3, batch_size=50),
        net_options={"width": 16, "depth": 1},
    )
    lr = full.history["learning_rate"]
    assert np.argmax(lr) == 2 and lr[-1] < 0.05 * max(lr)  # warmup, then cosine decay


def test_training_writes_nothing_saving_is_a_separate_call(small, bump, tmp_path):
    reg = ArtifactRegistry(tmp_path / "reg")
    seen = []
    cfg = TrainConfig(max_epochs=4, batch_size=50, patience=100)
    r = fit_emulator(
        small,
        key=jr.key(1),
        config=cfg,
        net_options={"width": 16, "depth": 1},
        on_improvement=lambda epoch, model, loss: seen.append((epoch, model, loss)),
    )
    assert not (tmp_path / "reg").exists()  # fitting stored nothing
    # the callback saw every improvement, with the best-so-far model
    val = r.history["val_loss"]
    improved = [e for e in range(len(val)) if val[e] < min(val[:e], default=np.inf)]
    assert [e for e, _, _ in seen] == improved and seen[-1][2] == pytest.approx(min(val))
    assert tree_hash(seen[-1][1]) == tree_hash(r.model)
    # the emulator records the bank it was trained on; save_emulator's lineage uses it
    assert r.model.dataset_hash == small.content_hash()
    h_oracle = reg.store(bump, "bump", ModelRole.ORACLE)
    h_bank = reg.store(small, "bump-bank", ModelRole.BASELINE)
    h = save_emulator(r.model, reg, "emu", tags={"a": 1})
    assert h == tree_hash(r.model)
    rec = reg.info("emu")
    assert rec.role == ModelRole.EMULATOR and rec.tags["a"] == 1
    assert rec.lineage.oracle_hash == h_oracle and rec.lineage.training_artifact == h_bank
    assert {p.relation for p in reg.lineage("emu").parents} == {"oracle", "training"}
    assert all(p.status == "ok" for p in reg.lineage("emu").parents)
    # a checkpoint from the callback, stored by the caller
    epoch, model, loss = seen[0]
    save_emulator(model, reg, "emu-checkpoint", tags={"epoch": epoch, "val_loss": loss})
    assert isinstance(load_emulator(reg, "emu"), NeuralForward)
    with pytest.raises(TypeError, match="NeuralForward"):
        load_emulator(reg, "bump-bank")
    with pytest.raises(TypeError, match="model"):
        save_emulator(small, reg, "x")


def test_pca_and_log_outputs(small, bump, prior, met):
    held = simulate_bank(bump, prior, met, 100, key=jr.key(5))
    cfg = TrainConfig(max_epochs=20, batch_size=20, learning_rate=5e-3, patience=100)
    r = fit_emulator(
        small,
        key=jr.key(1),
        net="pca",
        log_outputs=True,
        config=cfg,
        net_options={"n_components": 8, "width": 32, "depth": 2},
    )
    net = r.model.net
    assert isinstance(net, PCANet) and net.n_components == 8 and r.model.output_transform.log
    targets = r.model.output_transform(jnp.asarray(small.values))
    assert net.explained_variance(targets) > 0.999  # log-Gaussian bumps are near-quadratic
    # the frozen basis did not move during training
    fresh = PCANet(3, np.asarray(targets)[r.train_indices], n_components=8, key=jr.key(0))
    np.testing.assert_allclose(net.basis, fresh.basis, rtol=1e-4, atol=1e-5)
    summary = error_summary(relative_l2_errors(r.model, held))
    assert summary["median"] < 0.1
    assert np.all(np.asarray(r.model(small.params_at(0), met).values) > 0)


def test_conv_decoder_shapes():
    net = ConvDecoderNet(5, (20, 12), channels=(8, 4, 2), head_width=16, key=jr.key(0))
    assert net.n_out == 240 and len(net.ups) == 2 and net.ups[0].stride == (2, 2)
    out = jax.eval_shape(net, jnp.ones(5))  # shapes only: compiling convs is slow on CPU
    assert out.shape == (240,)


@pytest.mark.slow
def test_conv_decoder_on_images(emu, prior, met):
    blob = emu.Blob()
    ds = simulate_bank(blob, prior, met, 120, key=jr.key(0))
    cfg = TrainConfig(max_epochs=30, batch_size=20, learning_rate=3e-3, patience=100)
    r = fit_emulator(
        ds,
        key=jr.key(1),
        net="conv",
        config=cfg,
        net_options={"channels": (16, 8, 4), "head_width": 32},
    )
    assert isinstance(r.model.net, ConvDecoderNet)
    obs = r.model(ds.params_at(0), met)
    assert obs.values.shape == (16, 16) and obs.kind == "column_ppm_m"
    assert obs.dims == ("y", "x")
    assert r.history["val_loss"][-1] < 0.5 * r.history["val_loss"][0]
    with pytest.raises(ValueError, match="conv"):
        fit_emulator(
            simulate_bank(emu.Bump(jnp.ones(4)), prior, met, 20, key=jr.key(0)),
            key=jr.key(0),
            net="conv",
            config=FAST,
        )


def test_met_feature_emulator(emu, prior):
    model = emu.Bump(jnp.linspace(-2.0, 2.0, 32), c=0.1)
    ds = simulate_bank(
        model, prior, emu.WindSampler(), 400, key=jr.key(0), met_features=WindFeatures()
    )
    cfg = TrainConfig(max_epochs=60, batch_size=32, learning_rate=5e-3, patience=100)
    r = fit_emulator(ds, key=jr.key(1), config=cfg, net_options={"width": 64, "depth": 2})
    assert r.model.training_met is None and r.model.net.n_in == 5
    p = {"A": jnp.array(1.0), "mu": jnp.array(0.0), "s": jnp.array(0.6)}
    slow, fast = MetField(2.5, 0.0), MetField(5.5, 0.0)
    for m in (slow, fast):
        err = jnp.linalg.norm(r.model(p, m).values - model(p, m).values)
        assert err < 0.1 * jnp.linalg.norm(model(p, m).values)
    # the emulator does respond to the met
    shift = r.model(p, fast).values - r.model(p, slow).values
    assert jnp.linalg.norm(shift) > 0.3 * jnp.linalg.norm(
        model(p, fast).values - model(p, slow).values
    )


def test_normalisers():
    x = jr.normal(jr.key(0), (100, 3)) * jnp.array([1.0, 10.0, 0.0]) + 5
    s = Standardiser.fit(x)
    np.testing.assert_allclose(s.inverse(s(x)), x, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(s(x))[:, :2].std(0), 1.0, rtol=1e-4)
    np.testing.assert_array_equal(s.std[2], 1.0)
    y = jnp.abs(jr.normal(jr.key(1), (50, 4))) + 0.1
    for log in (False, True):
        t = OutputTransform.fit(y, log=log)
        np.testing.assert_allclose(t.inverse(t(y)), y, rtol=1e-4)
    with pytest.raises(ValueError, match="y >= 0"):
        OutputTransform.fit(-y, log=True)
    with pytest.raises(ValueError, match="std"):
        Standardiser(jnp.zeros(2), jnp.array([1.0, 0.0]))


def test_bad_input(small):
    for kw in (
        {"learning_rate": -1.0},
        {"max_epochs": 0},
        {"val_fraction": 0.9},
        {"batch_size": 1.5},
    ):
        with pytest.raises(ValueError, match=next(iter(kw))):
            TrainConfig(**kw)
    with pytest.raises(TypeError, match="`bank`"):
        fit_emulator(np.zeros((3, 3)), key=jr.key(0))
    with pytest.raises(ValueError, match="`net`"):
        fit_emulator(small, key=jr.key(0), net="transformer", config=FAST)
    with pytest.raises(ValueError, match="`net` maps"):
        fit_emulator(small, key=jr.key(0), net=MLPNet(4, 32, key=jr.key(0)), config=FAST)
    with pytest.raises(ValueError, match="n_in"):
        MLPNet(0, 3, key=jr.key(0))
    with pytest.raises(ValueError, match="image_shape"):
        ConvDecoderNet(3, (4, 4, 4), key=jr.key(0))
    with pytest.raises(ValueError, match="too small"):
        fit_emulator(small.take(slice(0, 2)), key=jr.key(0), config=FAST)
    with pytest.raises(TypeError, match="on_improvement"):
        fit_emulator(small, key=jr.key(0), config=FAST, on_improvement=3)


def test_bank_an_emulator_cannot_learn(bump, prior, met, emu):
    cloudy = simulate_bank(
        bump, prior, met, 40, key=jr.key(0), noise=RandomMask(GaussianNoise(0.01), 0.5)
    )
    with pytest.raises(ValueError, match="masked or non-finite"):
        fit_emulator(cloudy, key=jr.key(0), config=FAST)
    sampled = simulate_bank(bump, prior, emu.WindSampler(), 40, key=jr.key(0))
    with pytest.raises(ValueError, match="sampled met"):
        fit_emulator(sampled, key=jr.key(0), config=FAST)
    repeated = simulate_bank(bump, prior, (met, met), 40, key=jr.key(0))
    with pytest.raises(ValueError, match="repeated"):
        fit_emulator(repeated, key=jr.key(0), config=FAST)
