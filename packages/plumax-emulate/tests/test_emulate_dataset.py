"""SimulationDataset: determinism, the NetCDF cache (hit/miss), resume, corruption, devices."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import xarray as xr

from plumax_core import GaussianPrior, MetField, Observations, tree_hash
from plumax_emulate import CorruptedShardWarning, SimulationDataset, WindFeatures

X = jnp.linspace(-2.0, 2.0, 32)


def _ds(forward, met, n=120, key=0, prior=None, **kw):
    kw.setdefault("shard_size", 50)
    kw.setdefault("batch_size", 25)
    prior = _PRIOR[0] if prior is None else prior
    return SimulationDataset(forward, prior, met, n, jr.key(key), progress=False, **kw)


_PRIOR = []


@pytest.fixture(autouse=True)
def _prior(prior):
    _PRIOR[:] = [prior]


def test_values_match_direct_forward(bump, met):
    ds = _ds(bump, met)
    assert ds.theta.shape == (120, 3) and ds.values.shape == (120, 32)
    assert ds.features.shape == (120, 0)
    for i in (0, 57, 119):
        direct = bump(ds.params_at(i), met).values
        np.testing.assert_allclose(ds.values[i], direct, rtol=1e-6, atol=1e-7)
    assert ds.template.kind == "generic" and ds.template.dims == ("obs",)
    # the params are the prior's draws, in the prior's unconstrained space
    params = _PRIOR[0].sample(jr.split(jr.key(0))[0], 120)
    z = np.asarray(bump.param_spec.to_unconstrained(params))
    np.testing.assert_allclose(ds.theta, z, rtol=1e-5, atol=1e-6)


def test_same_key_same_data_other_key_other_data(bump, met):
    a, b, c = _ds(bump, met, key=1), _ds(bump, met, key=1), _ds(bump, met, key=2)
    np.testing.assert_array_equal(a.values, b.values)
    assert a.hash == b.hash
    assert not np.allclose(a.values, c.values)
    assert a.hash != c.hash


def test_cache_hit_and_miss(tmp_path, bump, met, emu):
    first = _ds(bump, met, cache_dir=tmp_path)
    assert (first.shards_generated, first.shards_loaded) == (3, 0)
    again = _ds(bump, met, cache_dir=tmp_path)
    assert (again.shards_generated, again.shards_loaded) == (0, 3)
    np.testing.assert_array_equal(first.values, again.values)
    assert again.hash == first.hash and again.template.kind == "generic"
    # any of model, prior, key (and met, n) changing is a miss
    other_model = _ds(emu.Bump(X * 1.01), met, cache_dir=tmp_path)
    other_key = _ds(bump, met, key=7, cache_dir=tmp_path)
    other_met = _ds(bump, MetField.uniform(4.0, 270.0), cache_dir=tmp_path)
    prior2 = GaussianPrior.from_std(bump.param_spec, jnp.zeros(3), 0.2)
    other_prior = _ds(bump, met, prior=prior2, cache_dir=tmp_path)
    for ds in (other_model, other_key, other_met, other_prior):
        assert ds.shards_loaded == 0 and ds.shards_generated == 3
        assert ds.dataset_id != first.dataset_id
    assert len(list(tmp_path.iterdir())) == 5


def test_shard_metadata_is_cf_netcdf(tmp_path, bump, met, prior):
    ds = _ds(bump, met, cache_dir=tmp_path)
    manifest = json.loads((ds.path / "manifest.json").read_text())
    assert manifest["identity"]["model_hash"] == tree_hash(bump)
    assert manifest["identity"]["prior_hash"] == tree_hash(prior)
    assert manifest["identity"]["key"] == [int(v) for v in jr.key_data(jr.key(0))]
    assert sorted(manifest["shards"]) == ["0", "1", "2"]
    with xr.open_dataset(ds.path / "shard_00001.nc") as sh:
        assert sh.attrs["model_hash"] == tree_hash(bump)
        assert sh.attrs["prior_hash"] == ds.prior_hash
        assert sh["values"].attrs["units"] == "1"
        assert sh["values"].dims == ("sample", "obs_obs")
        np.testing.assert_array_equal(sh["sample"].values, np.arange(50, 100))
        np.testing.assert_array_equal(sh["values"].values, ds.values[50:100])


def test_resume_after_interrupt(tmp_path, met, emu):
    BUDGET = emu.BUDGET
    flaky = emu.FlakyBump(X)
    BUDGET["left"] = 110  # two shards of 50 finish, the third fails part-way
    try:
        with pytest.raises(Exception, match="simulated interrupt"):
            _ds(flaky, met, n=200, cache_dir=tmp_path)
    finally:
        BUDGET["left"] = None
    (folder,) = tmp_path.iterdir()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert sorted(manifest["shards"]) == ["0", "1"]
    resumed = _ds(flaky, met, n=200, cache_dir=tmp_path)
    assert (resumed.shards_loaded, resumed.shards_generated) == (2, 2)
    fresh = _ds(flaky, met, n=200)  # uninterrupted, in memory
    np.testing.assert_array_equal(resumed.values, fresh.values)
    np.testing.assert_array_equal(resumed.theta, fresh.theta)


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete", "manifest"])
def test_corrupted_shard_detected_and_regenerated(tmp_path, bump, met, damage):
    good = _ds(bump, met, cache_dir=tmp_path)
    shard = good.path / "shard_00001.nc"
    if damage == "flip":
        data = bytearray(shard.read_bytes())
        data[len(data) // 2] ^= 0xFF
        shard.write_bytes(bytes(data))
    elif damage == "truncate":
        shard.write_bytes(shard.read_bytes()[:-100])
    elif damage == "delete":
        shard.unlink()
    else:  # a manifest whose recorded checksum no longer matches
        path = good.path / "manifest.json"
        manifest = json.loads(path.read_text())
        manifest["shards"]["1"]["sha256"] = "0" * 64
        path.write_text(json.dumps(manifest))
    with pytest.warns(CorruptedShardWarning, match="shard_00001"):
        again = _ds(bump, met, cache_dir=tmp_path)
    assert (again.shards_loaded, again.shards_generated) == (2, 1)
    np.testing.assert_array_equal(again.values, good.values)
    third = _ds(bump, met, cache_dir=tmp_path)  # repaired: a clean hit, no warning
    assert third.shards_loaded == 3


def test_sampled_met_and_features(prior, emu):
    model = emu.Bump(X, c=0.1)
    ds = SimulationDataset(
        model,
        prior,
        emu.WindSampler(),
        40,
        jr.key(3),
        met_features=WindFeatures(),
        progress=False,
    )
    assert ds.features.shape == (40, 2) and ds.met is None
    assert np.all((ds.features[:, 0] >= 2) & (ds.features[:, 0] <= 6))
    np.testing.assert_array_equal(ds.features[:, 1], 0.0)
    for i in (0, 39):
        m = ds.met_at(i)
        np.testing.assert_allclose(float(m.u), ds.features[i, 0], rtol=1e-6)
        np.testing.assert_allclose(ds.values[i], model(ds.params_at(i), m).values, rtol=1e-5)


def test_bad_input(tmp_path, bump, met, prior):
    with pytest.raises(TypeError, match="forward"):
        SimulationDataset(object(), prior, met, 10, jr.key(0))
    with pytest.raises(TypeError, match="prior"):
        SimulationDataset(bump, None, met, 10, jr.key(0))
    with pytest.raises(TypeError, match="met_sampler"):
        SimulationDataset(bump, prior, 3.0, 10, jr.key(0))
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="`n`"):
            SimulationDataset(bump, prior, met, bad, jr.key(0))
    with pytest.raises(ValueError, match="shard_size"):
        SimulationDataset(bump, prior, met, 10, jr.key(0), shard_size=0)
    with pytest.raises(ValueError, match="met_sampler"):  # a lambda cannot be hashed
        SimulationDataset(
            bump, prior, lambda k: met, 10, jr.key(0), cache_dir=tmp_path, progress=False
        )


def test_non_finite_simulations_raise(met, prior, bump):
    from plumax_core import AbstractForwardModel

    class Broken(AbstractForwardModel):
        inner: AbstractForwardModel

        @property
        def param_spec(self):
            return self.inner.param_spec

        def __call__(self, params, met):
            obs = self.inner(params, met)
            return Observations(obs.values / jnp.where(obs.values > 0.5, 0.0, 1.0), kind="generic")

    with pytest.raises(ValueError, match="non-finite"):
        SimulationDataset(Broken(bump), prior, met, 8, jr.key(0), progress=False)


_DEVICES_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    import jax, jax.numpy as jnp, jax.random as jr, numpy as np
    from conftest import Bump, bump_prior
    from plumax_core import MetField
    from plumax_emulate import SimulationDataset
    assert len(jax.local_devices()) == 2, jax.local_devices()
    met = MetField.uniform(5.0, 270.0)
    kw = dict(shard_size=64, batch_size=30, progress=False)
    prior = bump_prior()
    two = SimulationDataset(Bump(jnp.linspace(-2, 2, 32)), prior, met, 150, jr.key(4), **kw)
    one = SimulationDataset(
        Bump(jnp.linspace(-2, 2, 32)), prior, met, 150, jr.key(4),
        devices=jax.local_devices()[:1], **kw,
    )
    assert two.batch_size == 30 and len(two.devices) == 2
    np.testing.assert_array_equal(two.theta, one.theta)
    np.testing.assert_allclose(two.values, one.values, rtol=1e-6, atol=0)
    print("max abs diff", float(np.max(np.abs(two.values - one.values))))
    """
)


@pytest.mark.slow  # a fresh interpreter + compilation: ~15 s of CPU
def test_sharded_over_two_cpu_devices_matches_one():
    tests = os.path.dirname(os.path.abspath(__file__))
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    env["JAX_PLATFORMS"] = "cpu"
    out = subprocess.run(
        [sys.executable, "-c", _DEVICES_SCRIPT.format(tests=tests)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "max abs diff" in out.stdout


def test_single_device_sharding_matches(bump, met):
    a = _ds(bump, met, devices=jax.local_devices()[:1])
    b = _ds(bump, met, batch_size=7)
    np.testing.assert_allclose(a.values, b.values, rtol=1e-6, atol=1e-7)
