"""The simulation bank: shapes, key schedule, noise, proposals, met, cache, identity, errors."""

import json
import os
import subprocess
import sys
import textwrap

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import xarray as xr
from jaxtyping import Array

from plumax_core import (
    AbstractForwardModel,
    ArtifactRegistry,
    CorruptedShardWarning,
    GaussianNoise,
    GaussianPrior,
    MetField,
    MixturePrior,
    ModelRole,
    ObservationNoise,
    Observations,
    Param,
    ParamSpec,
    RandomMask,
    SimulationBank,
    simulate_bank,
    tree_hash,
)

SPEC = ParamSpec(
    (
        Param("A", units="1", lower=0.0, log=True),
        Param("mu", units="m"),
        Param("s", units="m", lower=0.0, log=True),
    )
)
PRIOR = GaussianPrior.from_std(
    SPEC, jnp.array([0.0, 0.0, np.log(0.6)]), jnp.array([0.3, 0.25, 0.15])
)
MET = MetField.uniform(5.0, 270.0)
X = jnp.linspace(-2.0, 2.0, 16)

# draws FlakyBump may still simulate before it fails (None = no limit)
BUDGET = {"left": None}


class Bump(AbstractForwardModel):
    """``y(x) = A exp(-(x - mu - c u)^2 / (2 s^2))``; ``u`` the mean eastward wind."""

    x: Array
    c: float = eqx.field(static=True, default=0.0)

    @property
    def param_spec(self) -> ParamSpec:
        return SPEC

    def __call__(self, params, met):
        centre = params["mu"] + self.c * jnp.mean(met.u)
        y = params["A"] * jnp.exp(-0.5 * ((self.x - centre) / params["s"]) ** 2)
        return Observations(y, kind="generic", coords={"obs": self.x}, sigma=0.01)


def _spend(theta):
    theta = np.asarray(theta)
    if BUDGET["left"] is not None:
        n = theta.size // SPEC.size
        if BUDGET["left"] < n:
            raise RuntimeError("simulated interrupt")
        BUDGET["left"] -= n
    return theta


class FlakyBump(AbstractForwardModel):
    """`Bump` that fails once `BUDGET` is spent (an interrupted run); the check is a
    `pure_callback` whose output feeds the result, so it fails with its own batch."""

    x: Array

    @property
    def param_spec(self) -> ParamSpec:
        return SPEC

    def __call__(self, params, met):
        flat = SPEC.flatten(params)
        shape = jax.ShapeDtypeStruct(flat.shape, flat.dtype)
        p = SPEC.unflatten(jax.pure_callback(_spend, shape, flat, vmap_method="sequential"))
        y = p["A"] * jnp.exp(-0.5 * ((self.x - p["mu"]) / p["s"]) ** 2)
        return Observations(y, kind="generic", coords={"obs": self.x})


class WindSampler(eqx.Module):
    """A westerly wind of 2-6 m/s (a key -> MetField sampler)."""

    def __call__(self, key) -> MetField:
        speed = 2.0 + 4.0 * jr.uniform(key)
        return MetField(speed, jnp.zeros_like(speed))


class MeanWind(eqx.Module):
    """Met features: mean ``(u, v)``, m/s."""

    def __call__(self, met: MetField):
        return jnp.stack([jnp.mean(met.u), jnp.mean(met.v)])


BUMP = Bump(X)


def _bank(n=60, key=0, **kw):
    return simulate_bank(BUMP, PRIOR, MET, n, key=jr.key(key), **kw)


def test_clean_bank_matches_the_forward_model():
    bank = _bank(batch_size=16)
    assert isinstance(bank, SimulationBank) and len(bank) == bank.n == 60
    assert bank.theta.shape == (60, 3) and bank.values.shape == bank.mask.shape == (60, 16)
    assert bank.obs_shape == (16,) and bank.repeats is None and not bank.weighted
    assert bool(bank.mask.all()) and bank.noise is None and bank.features is None
    assert bank.fixed_met is MET and bank.met_at(7) is MET
    for i in (0, 33, 59):
        direct = BUMP(bank.params_at(i), MET).values
        np.testing.assert_allclose(bank.values[i], direct, rtol=1e-6, atol=1e-7)
    t = bank.template
    assert t.kind == bank.kind == "generic" and t.dims == ("obs",)
    np.testing.assert_array_equal(t.coords["obs"], X)
    assert bank.simulator_id == BUMP.model_id and bank.simulator_hash == tree_hash(BUMP)
    # theta: the prior's draws from the first of split(key, 4), unconstrained
    params = PRIOR.sample(jr.split(jr.key(0), 4)[0], 60)
    np.testing.assert_array_equal(bank.theta, SPEC.to_unconstrained(params))


def test_same_key_same_bank_whatever_the_batching():
    a, b, c = _bank(key=1), _bank(key=1, batch_size=7, shard_size=25), _bank(key=2)
    np.testing.assert_allclose(a.values, b.values, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(a.theta, b.theta)
    assert a.content_hash() == _bank(key=1).content_hash()
    assert not np.allclose(a.values, c.values) and a.content_hash() != c.content_hash()
    one = _bank(key=1, devices=jax.local_devices()[:1])
    np.testing.assert_allclose(one.values, a.values, rtol=1e-6, atol=1e-7)


def test_noise_key_schedule():
    """Draw i's noise under met j uses fold_in(split(k_noise, n)[i], j)."""
    noise = GaussianNoise(0.05)
    bank = _bank(n=20, noise=noise)
    clean = _bank(n=20)
    np.testing.assert_array_equal(bank.theta, clean.theta)
    k_noise = jr.split(jr.key(0), 4)[1]
    for i in (0, 13):
        k_i = jr.split(k_noise, 20)[i]
        want, _ = noise(clean.values[i], None, clean.mask[i], key=jr.fold_in(k_i, 0))
        np.testing.assert_allclose(bank.values[i], want, rtol=1e-6, atol=1e-7)
    assert bank.noise == noise
    obs = bank.observation(4)
    assert isinstance(obs, Observations) and float(obs.sigma) == pytest.approx(0.05)
    np.testing.assert_array_equal(obs.values, bank.values[4])
    np.testing.assert_array_equal(obs.coords["obs"], X)
    assert float(bank.observation(4, sigma=0.2).sigma) == pytest.approx(0.2)
    # ObservationNoise adds the forward model's own sigma, and reports it
    own = _bank(n=20, noise=ObservationNoise())
    assert float(jnp.std(own.values - clean.values)) == pytest.approx(0.01, rel=0.2)
    np.testing.assert_allclose(own.observation(0).sigma, 0.01)
    # a clean bank's observation carries the forward model's error model
    np.testing.assert_allclose(clean.observation(0).sigma, 0.01)


def test_random_mask_and_repeated_mets():
    hidden = _bank(n=40, noise=RandomMask(GaussianNoise(0.05), 0.8))
    assert 0 < float(hidden.mask.mean()) < 1
    assert bool(jnp.all(jnp.isnan(hidden.values) == ~hidden.mask))
    mets = (MET, MetField.uniform(3.0, 270.0), MetField.uniform(7.0, 270.0))
    rep = simulate_bank(
        Bump(X, c=0.2), PRIOR, mets, 50, key=jr.key(0), noise=GaussianNoise(0.01), min_repeats=1
    )
    assert rep.values.shape == (50, 3, 16) and rep.repeats == 3 and rep.met == mets
    present = np.asarray(rep.mask.any(axis=2))
    assert present[:, 0].all() and not present.all()
    assert np.all(np.diff(present.astype(int), axis=1) <= 0)  # padding at the end
    with pytest.raises(ValueError, match="repeated"):
        rep.observation(0)
    with pytest.raises(ValueError, match="repeated"):
        rep.met_at(0)


def test_proposal_log_weights():
    wide = GaussianPrior(PRIOR.mean, 4.0 * PRIOR.cov.as_matrix(), SPEC)
    proposal = MixturePrior((PRIOR, wide), (0.5, 0.5))
    bank = _bank(n=200, proposal=proposal)
    expected = PRIOR.log_prob_unconstrained(bank.theta) - proposal.log_prob_unconstrained(
        bank.theta
    )
    np.testing.assert_allclose(bank.log_weight, expected, rtol=1e-5, atol=1e-5)
    assert bank.weighted and float(jnp.max(bank.log_weight)) <= np.log(2.0) + 1e-6
    first, rest = bank.split(150)
    assert first.weighted and rest.log_weight.shape == (50,) and rest.n == 50
    np.testing.assert_array_equal(rest.values, bank.values[150:])
    w = np.exp(np.asarray(bank.log_weight, dtype=np.float64))
    assert bank.effective_sample_size() == pytest.approx(w.sum() ** 2 / np.sum(w**2), rel=1e-5)
    plain = SimulationBank(bank.theta, bank.values, bank.mask, SPEC)
    assert not plain.weighted and plain.effective_sample_size() == 200
    assert plain.content_hash() != bank.content_hash()
    # calibration checks need prior draws: one rule, on the bank
    with pytest.raises(ValueError, match="`cases` was simulated from a proposal.*SBC needs"):
        bank.check_prior_draws("SBC", name="cases")
    plain.check_prior_draws("SBC")


def test_sampled_met_and_features():
    model = Bump(X, c=0.1)
    bank = simulate_bank(
        model, PRIOR, WindSampler(), 30, key=jr.key(3), met_features=MeanWind(), batch_size=8
    )
    assert bank.features.shape == (30, 2) and bank.fixed_met is None
    assert bank.met_keys.shape == (30,)
    u = np.asarray(bank.features[:, 0])
    assert np.all((u >= 2) & (u <= 6)) and np.all(np.asarray(bank.features[:, 1]) == 0)
    for i in (0, 29):
        m = bank.met_at(i)
        np.testing.assert_allclose(float(m.u), bank.features[i, 0], rtol=1e-6)
        np.testing.assert_allclose(bank.values[i], model(bank.params_at(i), m).values, rtol=1e-5)
    sub = bank.take(np.array([4, 9]))
    assert sub.features.shape == (2, 2) and float(sub.met_at(1).u) == pytest.approx(u[9])


def test_registry_hash_is_the_content_hash(tmp_path):
    bank = _bank(n=20, noise=GaussianNoise(0.05))
    reg = ArtifactRegistry(tmp_path / "reg")
    h = reg.store(bank, "bank", ModelRole.BASELINE)
    assert h == bank.content_hash() == tree_hash(bank)
    loaded = reg.load(h)
    assert isinstance(loaded, SimulationBank) and loaded.content_hash() == h
    np.testing.assert_array_equal(loaded.values, bank.values)
    assert loaded.template.kind == "generic" and loaded.noise == bank.noise
    # a bank holding a lambda cannot be hashed (nor stored), and says so
    odd = simulate_bank(BUMP, PRIOR, lambda k: MET, 4, key=jr.key(0))
    with pytest.raises(TypeError, match="cannot be hashed"):
        odd.content_hash()


def test_cache_hit_miss_and_shard_metadata(tmp_path):
    first = _bank(cache_dir=tmp_path, shard_size=25, noise=GaussianNoise(0.05))
    again = _bank(cache_dir=tmp_path, shard_size=25, noise=GaussianNoise(0.05))
    np.testing.assert_array_equal(first.values, again.values)
    assert first.content_hash() == again.content_hash()
    assert first.content_hash() == _bank(shard_size=25, noise=GaussianNoise(0.05)).content_hash()
    (folder,) = tmp_path.iterdir()
    manifest = json.loads((folder / "manifest.json").read_text())
    ident = manifest["identity"]
    assert ident["simulator_hash"] == tree_hash(BUMP) and ident["prior_hash"] == tree_hash(PRIOR)
    assert ident["key"] == [int(v) for v in jr.key_data(jr.key(0))]
    assert sorted(manifest["shards"]) == ["0", "1", "2"]
    with xr.open_dataset(folder / "shard_00001.nc") as sh:
        assert sh.attrs["Conventions"] == "CF-1.8" and sh.attrs["model_id"] == BUMP.model_id
        assert sh["values"].attrs["units"] == "1" and sh["values"].dims == ("sample", "obs_obs")
        np.testing.assert_array_equal(sh["sample"].values, np.arange(25, 50))
        np.testing.assert_array_equal(sh["values"].values, first.values[25:50])
        np.testing.assert_array_equal(sh["mask"].values.astype(bool), first.mask[25:50])
    # any of model, key, prior or noise changing is a miss: a new folder
    _bank(cache_dir=tmp_path, shard_size=25)
    _bank(cache_dir=tmp_path, shard_size=25, key=5, noise=GaussianNoise(0.05))
    other_prior = GaussianPrior.from_std(SPEC, jnp.zeros(3), 0.2)
    simulate_bank(BUMP, other_prior, MET, 60, key=jr.key(0), cache_dir=tmp_path, shard_size=25)
    simulate_bank(Bump(X * 1.01), PRIOR, MET, 60, key=jr.key(0), cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 5


def test_resume_from_existing_shards(tmp_path):
    flaky = FlakyBump(X)
    BUDGET["left"] = 60  # two shards of 25 finish, the third fails part-way
    try:
        with pytest.raises(Exception, match="simulated interrupt"):
            simulate_bank(flaky, PRIOR, MET, 100, key=jr.key(0), cache_dir=tmp_path, shard_size=25)
    finally:
        BUDGET["left"] = None
    (folder,) = tmp_path.iterdir()
    assert sorted(json.loads((folder / "manifest.json").read_text())["shards"]) == ["0", "1"]
    BUDGET["left"] = 50  # only the two missing shards may be simulated now
    try:
        resumed = simulate_bank(
            flaky, PRIOR, MET, 100, key=jr.key(0), cache_dir=tmp_path, shard_size=25
        )
    finally:
        BUDGET["left"] = None
    fresh = simulate_bank(flaky, PRIOR, MET, 100, key=jr.key(0), shard_size=25)
    np.testing.assert_array_equal(resumed.values, fresh.values)
    assert resumed.content_hash() == fresh.content_hash()


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete", "manifest"])
def test_damaged_shard_is_regenerated(tmp_path, damage):
    good = _bank(cache_dir=tmp_path, shard_size=25)
    (folder,) = tmp_path.iterdir()
    shard = folder / "shard_00001.nc"
    if damage == "flip":
        data = bytearray(shard.read_bytes())
        data[len(data) // 2] ^= 0xFF
        shard.write_bytes(bytes(data))
    elif damage == "truncate":
        shard.write_bytes(shard.read_bytes()[:-100])
    elif damage == "delete":
        shard.unlink()
    else:
        path = folder / "manifest.json"
        manifest = json.loads(path.read_text())
        manifest["shards"]["1"]["sha256"] = "0" * 64
        path.write_text(json.dumps(manifest))
    with pytest.warns(CorruptedShardWarning, match="shard_00001"):
        again = _bank(cache_dir=tmp_path, shard_size=25)
    np.testing.assert_array_equal(again.values, good.values)


def test_bad_arguments_name_the_argument(tmp_path):
    with pytest.raises(TypeError, match="`forward`"):
        simulate_bank(object(), PRIOR, MET, 10, key=jr.key(0))
    with pytest.raises(TypeError, match="`prior`"):
        simulate_bank(BUMP, None, MET, 10, key=jr.key(0))
    with pytest.raises(TypeError, match="`met`"):
        simulate_bank(BUMP, PRIOR, 3.0, 10, key=jr.key(0))
    with pytest.raises(TypeError, match="`met`"):
        simulate_bank(BUMP, PRIOR, [], 10, key=jr.key(0))
    with pytest.raises(TypeError, match="`noise`"):
        simulate_bank(BUMP, PRIOR, MET, 10, key=jr.key(0), noise="gaussian")
    with pytest.raises(TypeError, match="`proposal`"):
        simulate_bank(BUMP, PRIOR, MET, 10, key=jr.key(0), proposal="wide")
    other = ParamSpec((Param("a"),))
    with pytest.raises(ValueError, match="prior.param_spec"):
        simulate_bank(
            BUMP, GaussianPrior.from_std(other, jnp.zeros(1), 1.0), MET, 10, key=jr.key(0)
        )
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="`n`"):
            simulate_bank(BUMP, PRIOR, MET, bad, key=jr.key(0))
    for name in ("batch_size", "shard_size"):
        with pytest.raises(ValueError, match=f"`{name}`"):
            simulate_bank(BUMP, PRIOR, MET, 10, key=jr.key(0), **{name: 0})
    with pytest.raises(ValueError, match="min_repeats"):
        simulate_bank(BUMP, PRIOR, MET, 10, key=jr.key(0), min_repeats=1)
    with pytest.raises(ValueError, match="min_repeats"):
        simulate_bank(BUMP, PRIOR, (MET, MET), 10, key=jr.key(0), min_repeats=3)
    with pytest.raises(ValueError, match="met"):  # a lambda cannot be hashed for the cache
        simulate_bank(BUMP, PRIOR, lambda k: MET, 10, key=jr.key(0), cache_dir=tmp_path)
    with pytest.raises(ValueError, match="sigma"):  # no sigma to add noise with
        simulate_bank(FlakyBump(X), PRIOR, MET, 4, key=jr.key(0), noise=ObservationNoise())
    bank = _bank(n=10)
    with pytest.raises(ValueError, match="n_first"):
        bank.split(10)
    with pytest.raises(ValueError, match="`theta`"):
        SimulationBank(bank.theta[:, :2], bank.values, bank.mask, SPEC)
    with pytest.raises(ValueError, match="`mask`"):
        SimulationBank(bank.theta, bank.values, bank.mask[:, :3], SPEC)
    with pytest.raises(ValueError, match="`log_weight`"):
        SimulationBank(bank.theta, bank.values, bank.mask, SPEC, log_weight=jnp.zeros(3))
    with pytest.raises(ValueError, match="met_keys"):
        SimulationBank(bank.theta, bank.values, bank.mask, SPEC, met=WindSampler())
    with pytest.raises(ValueError, match="template"):
        SimulationBank(
            bank.theta, bank.values[:, :4], bank.mask[:, :4], SPEC, template=bank.template
        )


def test_non_finite_simulations_raise():
    class Broken(AbstractForwardModel):
        inner: AbstractForwardModel

        @property
        def param_spec(self):
            return self.inner.param_spec

        def __call__(self, params, met):
            v = self.inner(params, met).values
            return Observations(v / jnp.where(v > 0.5, 0.0, 1.0), kind="generic")

    with pytest.raises(ValueError, match="non-finite values where valid"):
        simulate_bank(Broken(BUMP), PRIOR, MET, 8, key=jr.key(0))


_DEVICES_SCRIPT = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, jax.random as jr, numpy as np
    import plumax_core as pc
    assert len(jax.local_devices()) == 2, jax.local_devices()

    class Line(pc.AbstractForwardModel):
        @property
        def param_spec(self):
            return pc.ParamSpec((pc.Param("a"), pc.Param("b")))

        def __call__(self, params, met):
            x = jnp.linspace(0.0, 1.0, 32)
            return pc.Observations(jnp.sin(params["a"] + params["b"] * x), kind="generic")

    prior = pc.GaussianPrior.from_std(Line().param_spec, jnp.zeros(2), 1.0)
    met = pc.MetField.uniform(5.0, 270.0)
    kw = dict(key=jr.key(4), noise=pc.GaussianNoise(0.1), batch_size=30, shard_size=64)
    two = pc.simulate_bank(Line(), prior, met, 150, **kw)
    one = pc.simulate_bank(Line(), prior, met, 150, devices=jax.local_devices()[:1], **kw)
    np.testing.assert_array_equal(two.theta, one.theta)
    np.testing.assert_allclose(two.values, one.values, rtol=1e-6, atol=0)
    print("max abs diff", float(np.max(np.abs(two.values - one.values))))
    """
)


@pytest.mark.slow  # a fresh interpreter + compilation
def test_sharded_over_two_cpu_devices_matches_one():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    env["JAX_PLATFORMS"] = "cpu"
    out = subprocess.run(
        [sys.executable, "-c", _DEVICES_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "max abs diff" in out.stdout
