"""Embeddings, support, checkpoints and lineage, determinism and bad input."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import plumax_amortize as pa
from plumax_amortize._npe import standardisation
from plumax_core import ArtifactRegistry, ModelRole, Observations, SimulationBank

EMBEDDINGS = {
    "mlp": lambda: pa.MLPEmbedding((5,), 8, width=16, key=jr.key(0)),
    "cnn": lambda: pa.CNNEmbedding((8, 8), 8, channels=(4, 4), key=jr.key(0)),
    "deepset_mlp": lambda: pa.DeepSetEmbedding(
        pa.MLPEmbedding((5,), 8, width=16, key=jr.key(0)), 3, 8, width=16, key=jr.key(1)
    ),
    "deepset_cnn": lambda: pa.DeepSetEmbedding(
        pa.CNNEmbedding((8, 8), 8, channels=(4,), key=jr.key(0)), 2, 8, width=16, key=jr.key(1)
    ),
}


@pytest.mark.parametrize(
    "name",
    [
        "mlp",
        "deepset_mlp",
        pytest.param("cnn", marks=pytest.mark.slow),
        pytest.param("deepset_cnn", marks=pytest.mark.slow),
    ],
)
def test_embedding_contract(name, getkey):
    emb = EMBEDDINGS[name]()
    shape = emb.obs_shape
    x = jr.normal(getkey(), shape)
    mask = jr.uniform(getkey(), shape) > 0.3
    out = emb(x, mask)
    assert out.shape == (emb.out_dim,)
    assert bool(jnp.all(jnp.isfinite(out)))
    # masked elements do not influence the features
    other = jnp.where(mask, x, 100.0 * jr.normal(getkey(), shape))
    np.testing.assert_allclose(emb(other, mask), out, rtol=1e-5, atol=1e-5)
    # jit equals eager, vmap equals a loop
    np.testing.assert_allclose(eqx.filter_jit(emb)(x, mask), out, rtol=1e-5, atol=1e-5)
    xb = jnp.stack([x, 2 * x])
    mb = jnp.stack([mask, mask])
    np.testing.assert_allclose(jax.vmap(emb)(xb, mb)[1], emb(2 * x, mask), rtol=1e-5, atol=1e-5)


def test_cnn_standardises_the_image_as_a_whole(getkey):
    """'image' keeps the spatial structure (a shifted image standardises to the shifted
    standardised image); 'pixel' gives each pixel its own location and scale."""
    values = jr.normal(getkey(), (300, 8, 8)) * jnp.linspace(1.0, 5.0, 8)  # scale varies in x
    mask = jr.uniform(getkey(), values.shape) > 0.2
    image = pa.CNNEmbedding((8, 8), 8, channels=(4,), key=getkey())
    pixel = pa.CNNEmbedding((8, 8), 8, channels=(4,), standardise="pixel", key=getkey())
    assert (image.element_ndim, pixel.element_ndim) == (0, 2)
    loc, scale = standardisation(values, mask, image.element_ndim)
    valid = np.asarray(values)[np.asarray(mask)]
    np.testing.assert_allclose(loc, valid.mean(), rtol=1e-5)
    np.testing.assert_allclose(scale, valid.std(ddof=1), rtol=1e-4)
    loc_p, scale_p = standardisation(values, mask, pixel.element_ndim)
    assert loc_p.shape == scale_p.shape == (8, 8)
    assert float(scale_p[:, -1].mean()) > 3.0 * float(scale_p[:, 0].mean())
    img = values[0]
    shifted = jnp.roll(img, 2, axis=1)
    np.testing.assert_allclose((shifted - loc) / scale, jnp.roll((img - loc) / scale, 2, axis=1))
    assert not np.allclose(
        (shifted - loc_p) / scale_p, jnp.roll((img - loc_p) / scale_p, 2, axis=1), atol=1e-3
    )
    with pytest.raises(ValueError, match="standardise"):
        pa.CNNEmbedding((8, 8), standardise="global", key=getkey())


def test_cnn_blocks_and_coordinate_channels(getkey):
    """Default: a stride-1 first block, then stride 2, and two coordinate channels; the
    coarse map the head sees shrinks only at stride-2 blocks."""
    emb = pa.CNNEmbedding((9, 8), 8, channels=(4, 4, 6), key=getkey())
    assert emb.strides == (1, 2, 2) and emb.coordinates
    assert [c.in_channels for c in emb.convs] == [4, 4, 4]
    assert emb.head.in_size == 6 * (1 + 3 * 2) + 1  # 9x8 -> 5x4 -> 3x2
    plain = pa.CNNEmbedding((9, 8), 8, channels=(4, 4), coordinates=False, key=getkey())
    assert plain.convs[0].in_channels == 2
    strided = pa.CNNEmbedding((9, 8), 8, channels=(4, 4), strides=(2, 2), key=getkey())
    assert strided.head.in_size == 4 * (1 + 3 * 2) + 1
    # the globally pooled features of a plain stride-1 CNN cannot tell where a feature
    # is (translation equivariance + average pooling); with coordinate channels they can.
    # Head weights on the flattened map are zeroed so only the pooled features count.
    x = jnp.zeros((9, 8))
    mask = jnp.ones((9, 8), bool)
    a, b = x.at[2, 3].set(5.0), x.at[6, 4].set(5.0)  # both >= 2 pixels from the edges
    for coordinates in (False, True):
        emb = pa.CNNEmbedding((9, 8), 8, channels=(4,), coordinates=coordinates, key=getkey())
        w = emb.head.layers[0].weight
        emb = eqx.tree_at(lambda e: e.head.layers[0].weight, emb, w.at[:, 4:-1].set(0.0))
        same = np.allclose(emb(a, mask), emb(b, mask), rtol=1e-5, atol=1e-6)
        assert same is not coordinates
    for bad in ((1, 3, 2), (1, 2)):
        with pytest.raises(ValueError, match="strides"):
            pa.CNNEmbedding((9, 8), channels=(4, 4, 4), strides=bad, key=getkey())
    with pytest.raises(TypeError, match="coordinates"):
        pa.CNNEmbedding((9, 8), coordinates=1, key=getkey())


@pytest.mark.parametrize("name", ["deepset_mlp", "deepset_cnn"])
def test_deepset_is_permutation_and_padding_invariant(name, getkey):
    emb = EMBEDDINGS[name]()
    shape = emb.obs_shape
    x = jr.normal(getkey(), shape)
    mask = jnp.ones(shape, bool)
    perm = jnp.array([shape[0] - 1, *range(shape[0] - 1)])
    np.testing.assert_allclose(emb(x[perm], mask[perm]), emb(x, mask), rtol=1e-5, atol=1e-5)
    # hiding the last overpass = padding: the result equals the one without it,
    # and differs from the full set (the count enters the features)
    pad = mask.at[-1].set(False)
    x_junk = x.at[-1].set(123.0)
    np.testing.assert_allclose(emb(x_junk, pad), emb(x, pad), rtol=1e-5, atol=1e-5)
    assert not np.allclose(emb(x, pad), emb(x, mask))


@pytest.fixture(scope="module")
def blob_npe(blob):
    """An untrained CNN estimator (random weights) and masked, noisy blob images with NaN
    where hidden: enough for the shape, mask, support and checkpoint contracts."""
    model, prior, met = blob
    noise = pa.RandomMask(pa.ObservationNoise(), 0.5)
    bank = pa.simulate(model, prior, met, noise, 16, key=jr.key(3))
    emb = pa.CNNEmbedding((8, 8), 8, channels=(4, 4), key=jr.key(4))
    config = pa.FlowConfig("coupling_rqs", flow_layers=2, nn_width=16)
    npe = pa.NPE(
        pa.build_flow(config, 2, 8, key=jr.key(5)),
        emb,
        bank.param_spec,
        theta_loc=jnp.zeros(2),
        theta_scale=3.0 * jnp.ones(2),  # wide: draws reach far into the tails
        obs_loc=jnp.zeros(()),  # the CNN standardises the whole image with one scale
        obs_scale=jnp.ones(()),
        flow_config=config,
        simulator_id=bank.simulator_id,
        simulator_hash=bank.simulator_hash,
        dataset_hash=bank.content_hash(),
    )
    return npe, bank


def test_masked_nan_images_and_support(blob_npe, getkey):
    npe, bank = blob_npe
    assert bool(jnp.isnan(bank.values).any())  # the bank holds NaN in hidden pixels
    values, mask = bank.values[0], bank.mask[0]
    post = npe.posterior(values, mask, key=getkey(), n_samples=300)
    # NaNs in masked pixels are fine and their content is irrelevant
    again = npe.posterior(jnp.where(mask, values, -7.0), mask, key=jr.key(0), n_samples=300)
    first = npe.posterior(values, mask, key=jr.key(0), n_samples=300)
    np.testing.assert_allclose(again.samples, first.samples, rtol=1e-5, atol=1e-5)
    # every draw (even from a barely trained flow) lies in the prior support
    params = post.param_spec.from_unconstrained(post.flat_samples())
    assert bool(jnp.all(npe.param_spec.in_support(params)))
    q = np.asarray(params["q"])
    assert q.min() >= 0.1 and q.max() <= 10.0
    obs = Observations(values, sigma=0.1, mask=mask, kind="column_ppm_m")
    np.testing.assert_allclose(
        npe.posterior(obs, key=jr.key(0), n_samples=300).samples, first.samples, rtol=1e-5
    )


def test_bad_observations_raise(blob_npe):
    npe, bank = blob_npe
    with pytest.raises(ValueError, match="`observations` must have shape"):
        npe.posterior(jnp.ones((7, 8)), key=jr.key(0))
    with pytest.raises(ValueError, match="`observations` must have shape"):
        npe.sample_batch(jnp.ones((8, 8)), key=jr.key(0))
    with pytest.raises(ValueError, match="entirely masked"):
        npe.posterior(jnp.ones((8, 8)), jnp.zeros((8, 8), bool), key=jr.key(0))
    with pytest.raises(ValueError, match="entirely masked"):
        npe.sample_batch(bank.values[:2], bank.mask[:2].at[1].set(False), key=jr.key(0))
    with pytest.raises(ValueError, match="non-finite"):
        npe.posterior(jnp.full((8, 8), jnp.nan), key=jr.key(0))
    with pytest.raises(ValueError, match="n_samples"):
        npe.posterior(bank.values[0], bank.mask[0], key=jr.key(0), n_samples=0)
    with pytest.raises(TypeError, match="observations"):
        npe.posterior("not an array", key=jr.key(0))


def test_checkpoint_roundtrip_and_lineage(blob_npe, tmp_path):
    npe, bank = blob_npe
    reg = ArtifactRegistry(tmp_path / "reg")
    h = pa.save_npe(npe, reg, "blob-npe")
    assert h == npe.artifact_hash
    rec = reg.info("blob-npe")
    assert rec.role == ModelRole.PREDICTOR
    assert rec.lineage.oracle_hash == bank.simulator_hash
    assert rec.lineage.training_artifact == npe.dataset_hash
    loaded = pa.load_npe(reg, "blob-npe")
    assert loaded.artifact_hash == npe.artifact_hash
    a = npe.posterior(bank.values[1], bank.mask[1], key=jr.key(2), n_samples=50).samples
    b = loaded.posterior(bank.values[1], bank.mask[1], key=jr.key(2), n_samples=50).samples
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_corrected_estimator_checkpoint_roundtrip(lg_npe_resampled, lg_banks, tmp_path):
    npe, _ = lg_npe_resampled
    _, test = lg_banks
    reg = ArtifactRegistry(tmp_path / "reg")
    assert pa.save_npe(npe, reg, "lg-resampled") == npe.artifact_hash
    loaded = pa.load_npe(reg, "lg-resampled")
    assert loaded.artifact_hash == npe.artifact_hash
    assert loaded.correction is not None and loaded.correction.oversample == 4
    a = npe.posterior(test.values[1], key=jr.key(2), n_samples=50).samples
    b = loaded.posterior(test.values[1], key=jr.key(2), n_samples=50).samples
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # the correction is part of the estimator's identity
    from plumax_amortize._checkpoint import checkpoint_hash

    raw = eqx.tree_at(lambda n: n.correction, npe, None)
    assert checkpoint_hash(raw) != npe.artifact_hash


def test_bad_correction_raises(linear_gaussian, lg_banks, lg_weighted_bank, lg_proposal, blob):
    p = linear_gaussian
    train, _ = lg_banks
    with pytest.raises(ValueError, match="oversample"):
        pa.ProposalCorrection(p.prior, lg_proposal, oversample=0)
    with pytest.raises(TypeError, match="proposal"):
        pa.ProposalCorrection(p.prior, None)
    with pytest.raises(ValueError, match="proposal.param_spec"):
        pa.ProposalCorrection(p.prior, blob[1])
    fit = dict(key=jr.key(0), train=pa.TrainConfig(max_steps=1))
    correction = pa.ProposalCorrection(p.prior, lg_proposal)
    with pytest.raises(ValueError, match="no importance weights"):
        pa.fit_npe(train, correction=correction, **fit)
    # a correction for another proposal than the bank's
    with pytest.raises(ValueError, match="differs from the bank"):
        pa.fit_npe(lg_weighted_bank, correction=pa.ProposalCorrection(p.prior, p.prior), **fit)
    with pytest.raises(TypeError, match="correction"):
        pa.fit_npe(lg_weighted_bank, correction="resample", **fit)


@pytest.mark.slow
def test_training_is_deterministic(linear_gaussian):
    p = linear_gaussian
    bank = pa.simulate(p.model, p.prior, p.met, pa.ObservationNoise(), 200, key=jr.key(1))
    again = pa.simulate(p.model, p.prior, p.met, pa.ObservationNoise(), 200, key=jr.key(1))
    assert bank.content_hash() == again.content_hash()
    kw = dict(
        flow=pa.FlowConfig("maf", flow_layers=1, nn_width=8),
        train=pa.TrainConfig(max_steps=5, batch_size=32),
    )
    n1, h1 = pa.fit_npe(bank, key=jr.key(9), **kw)
    n2, h2 = pa.fit_npe(bank, key=jr.key(9), **kw)
    assert n1.artifact_hash == n2.artifact_hash
    assert h1.train_loss == h2.train_loss and h1.n_steps == 5


def test_trained_estimator_records_its_bank_and_stores_separately(
    linear_gaussian, lg_npe, lg_banks, tmp_path
):
    """fit_npe writes nothing; the estimator records the bank's content hash, which is
    the bank's registry hash, so `registry lineage` of the stored estimator shows the
    stored bank."""
    npe, history = lg_npe
    train, _ = lg_banks
    assert isinstance(train, SimulationBank)
    assert npe.dataset_hash == train.content_hash()
    assert "artifact_hash" not in history.to_dict()
    reg = ArtifactRegistry(tmp_path / "reg")
    h_sim = reg.store(linear_gaussian.model, "lg-simulator", ModelRole.ORACLE)
    assert h_sim == npe.simulator_hash == train.simulator_hash
    h_bank = reg.store(
        train, "lg-training-bank", ModelRole.BASELINE, lineage={"parent_hashes": [h_sim]}
    )
    assert h_bank == npe.dataset_hash
    h = pa.save_npe(npe, reg, "lg-npe")
    assert h == npe.artifact_hash
    node = reg.lineage("lg-npe")
    (training,) = [p for p in node.parents if p.relation == "training"]
    assert training.hash == h_bank and training.name == "lg-training-bank"
    assert training.status == "ok" and "lg-training-bank" in str(node)
    assert not node.problems  # the simulator (oracle) is found too


def test_learning_rate_decays_on_plateau(linear_gaussian):
    """The step size halves after every ``lr_patience`` epochs without a better held-out
    loss (recomputed here from the recorded losses), never below the floor, and the new
    step size reaches Adam (its update scales with it)."""
    import optax

    from plumax_amortize._train import _set_learning_rate

    p = linear_gaussian
    bank = pa.simulate(p.model, p.prior, p.met, pa.ObservationNoise(), 300, key=jr.key(2))
    cfg = pa.TrainConfig(
        batch_size=32,
        learning_rate=2e-2,
        lr_decay=0.5,
        lr_patience=1,
        min_learning_rate=4e-3,
        patience=6,
        max_epochs=30,
    )
    _, hist = pa.fit_npe(
        bank, key=jr.key(3), flow=pa.FlowConfig("maf", flow_layers=1, nn_width=8), train=cfg
    )
    lr, best, best_i, last, expected = cfg.learning_rate, np.inf, -1, -1, []
    for i, v in enumerate(hist.val_loss):
        expected.append(lr)
        if v < best:
            best, best_i = v, i
        if i - max(best_i, last) >= cfg.lr_patience:
            lr, last = max(lr * cfg.lr_decay, cfg.min_learning_rate), i
    np.testing.assert_allclose(hist.learning_rate, expected)
    assert hist.learning_rate[0] == 2e-2 and min(hist.learning_rate) < 2e-2  # it did decay
    assert min(hist.learning_rate) >= 4e-3
    assert hist.to_dict()["learning_rate"] == list(hist.learning_rate)

    opt = optax.chain(
        optax.clip_by_global_norm(5.0), optax.inject_hyperparams(optax.adam)(learning_rate=0.1)
    )
    params = {"w": jnp.ones(3)}
    grads = {"w": jnp.array([0.1, -0.2, 0.3])}
    state = opt.init(params)
    full, _ = opt.update(grads, state, params)
    half, _ = opt.update(grads, _set_learning_rate(state, 0.05), params)
    np.testing.assert_allclose(half["w"], 0.5 * full["w"], rtol=1e-6)


@pytest.mark.slow
def test_simulate_repeated_overpasses(linear_gaussian):
    p = linear_gaussian
    bank = pa.simulate(
        p.model,
        p.prior,
        [p.met, p.met, p.met],
        pa.ObservationNoise(),
        50,
        key=jr.key(0),
        min_repeats=1,
    )
    assert bank.values.shape == (50, 3, 5)
    present = np.asarray(bank.mask.any(axis=2))
    assert present[:, 0].all() and not present.all()
    assert np.all(np.diff(present.astype(int), axis=1) <= 0)  # padding at the end


def test_proposal_bank_weights(linear_gaussian, lg_weighted_bank, lg_proposal):
    """log_weight = log prior - log proposal, carried by take/split and in the hash."""
    p = linear_gaussian
    bank = lg_weighted_bank
    theta = bank.theta[:5]
    expected = p.prior.log_prob_unconstrained(theta) - lg_proposal.log_prob_unconstrained(theta)
    np.testing.assert_allclose(bank.log_weight[:5], expected, rtol=1e-5, atol=1e-5)
    # a defensive mixture with alpha = 1/2 bounds every weight by 2
    assert float(jnp.max(bank.log_weight)) <= np.log(2.0) + 1e-6
    first, rest = bank.split(100)
    assert first.weighted and rest.log_weight.shape == (bank.n - 100,)
    unweighted = pa.SimulationBank(
        bank.theta, bank.values, bank.mask, bank.param_spec, kind=bank.kind
    )
    assert not unweighted.weighted and unweighted.effective_sample_size() == bank.n
    assert unweighted.content_hash() != bank.content_hash()
    w = np.exp(np.asarray(bank.log_weight, dtype=np.float64))
    assert bank.effective_sample_size() == pytest.approx(w.sum() ** 2 / np.sum(w**2), rel=1e-5)
    with pytest.raises(ValueError, match="log_weight"):
        pa.SimulationBank(
            bank.theta, bank.values, bank.mask, bank.param_spec, log_weight=bank.log_weight[:3]
        )


def test_bad_proposal_raises(linear_gaussian, blob):
    from plumax_core import GaussianPrior

    p = linear_gaussian
    noise = pa.ObservationNoise()
    with pytest.raises(TypeError, match="proposal"):
        pa.simulate(p.model, p.prior, p.met, noise, 10, key=jr.key(0), proposal="wide")
    with pytest.raises(ValueError, match="proposal.param_spec"):
        pa.simulate(p.model, p.prior, p.met, noise, 10, key=jr.key(0), proposal=blob[1])

    class ZeroDensity(GaussianPrior):
        """Draws like a Gaussian but reports zero density: infinite weights."""

        def log_prob_unconstrained(self, z):
            return jnp.full(jnp.shape(z)[:-1], -jnp.inf)

    broken = ZeroDensity(p.prior.mean, p.prior.cov, p.prior.param_spec)
    with pytest.raises(ValueError, match="non-finite importance weights"):
        pa.simulate(p.model, p.prior, p.met, noise, 10, key=jr.key(0), proposal=broken)


def test_bad_configuration_raises(linear_gaussian, lg_banks):
    p = linear_gaussian
    train, _ = lg_banks
    with pytest.raises(ValueError, match="kind"):
        pa.FlowConfig("glow")
    with pytest.raises(ValueError, match="flow_layers"):
        pa.FlowConfig(flow_layers=0)
    with pytest.raises(ValueError, match="val_fraction"):
        pa.TrainConfig(val_fraction=0.9)
    with pytest.raises(ValueError, match="max_steps"):
        pa.TrainConfig(max_steps=0)
    with pytest.raises(ValueError, match="lr_decay"):
        pa.TrainConfig(lr_decay=0.0)
    with pytest.raises(ValueError, match="min_learning_rate"):
        pa.TrainConfig(learning_rate=1e-3, min_learning_rate=1e-2, lr_decay=0.5)
    pa.TrainConfig(learning_rate=1e-6)  # no decay: the floor does not apply
    with pytest.raises(ValueError, match="lr_patience"):
        pa.TrainConfig(lr_patience=0)
    with pytest.raises(ValueError, match="dim"):
        pa.build_flow(pa.FlowConfig("coupling_rqs"), 1, 4, key=jr.key(0))
    with pytest.raises(ValueError, match="obs_shape"):
        pa.fit_npe(train, key=jr.key(0), embedding=pa.MLPEmbedding((6,), key=jr.key(0)))
    with pytest.raises(TypeError, match="bank"):
        pa.fit_npe(np.zeros(3), key=jr.key(0))
    with pytest.raises(TypeError, match="noise"):
        pa.simulate(p.model, p.prior, p.met, None, 10, key=jr.key(0))
    with pytest.raises(ValueError, match="`n`"):
        pa.simulate(p.model, p.prior, p.met, pa.ObservationNoise(), 0, key=jr.key(0))
    with pytest.raises(ValueError, match="obs_shape"):
        pa.CNNEmbedding((8,), key=jr.key(0))
    with pytest.raises(ValueError, match="samples_b"):
        pa.c2st(np.zeros((30, 2)), np.zeros((30, 3)), key=jr.key(0))


def test_held_out_loss_in_chunks_equals_one_call(lg_weighted_bank, lg_npe):
    """The held-out loss is scored in padded chunks on large splits; the zero-weight
    padding must leave the weighted mean unchanged."""
    import paramax

    from plumax_amortize._train import _held_out_loss, _unit_mean_weights

    npe, _ = lg_npe
    bank = lg_weighted_bank.take(slice(0, 1000))
    params, static = eqx.partition(
        (npe.flow, npe.embedding),
        eqx.is_inexact_array,
        is_leaf=lambda leaf: isinstance(leaf, paramax.NonTrainable),
    )
    z = (bank.theta - npe.theta_loc) / npe.theta_scale
    x = jax.vmap(npe.standardise)(bank.values, bank.mask)
    data = (z, x, bank.mask, _unit_mean_weights(bank.log_weight))
    whole = _held_out_loss(params, static, data, chunk=1000)
    for chunk in (128, 333, 999):
        assert _held_out_loss(params, static, data, chunk=chunk) == pytest.approx(whole, rel=1e-5)
    # and it is the weighted mean of -log q, computed by the estimator itself
    log_q = jax.vmap(npe.log_prob_unconstrained)(bank.theta, bank.values, bank.mask)
    log_q = log_q + jnp.sum(jnp.log(npe.theta_scale))  # the flow's density of z
    expected = -float(jnp.mean(data[3] * log_q))
    assert whole == pytest.approx(expected, rel=1e-4)
