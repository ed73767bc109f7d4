"""Noise models: the contract (same key, same result; a mask only hides), and std."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from plumax_core import AbstractNoiseModel, GaussianNoise, ObservationNoise, RandomMask

NOISES = {
    "gaussian": lambda: GaussianNoise(0.5),
    "observation": lambda: ObservationNoise(),
    "random_mask": lambda: RandomMask(GaussianNoise(0.1), 0.9),
}


@pytest.mark.parametrize("name", sorted(NOISES))
def test_noise_contract(name, getkey):
    noise = NOISES[name]()
    assert isinstance(noise, AbstractNoiseModel)
    values, sigma = jnp.ones((4, 4)), jnp.full((4, 4), 0.3)
    mask = jnp.ones((4, 4), bool).at[0, 0].set(False)
    key = getkey()
    noisy, valid = noise(values, sigma, mask, key=key)
    assert noisy.shape == valid.shape == values.shape and valid.dtype == bool
    assert not bool(valid[0, 0])  # never reveals a hidden element
    again, valid2 = jax.jit(lambda k: noise(values, sigma, mask, key=k))(key)
    np.testing.assert_allclose(again, noisy, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(valid2, valid)


def test_noise_models(getkey):
    values = jnp.ones((4, 4))
    mask = jnp.ones((4, 4), bool)
    noisy, valid = GaussianNoise(0.5)(values, None, mask, key=getkey())
    assert bool(valid.all()) and float(jnp.std(noisy - 1)) > 0.1
    hidden = RandomMask(GaussianNoise(0.1), 0.9)
    vals, valid = jax.vmap(lambda k: hidden(values, None, mask, key=k))(jr.split(getkey(), 50))
    assert 0 < float(valid.mean()) < 1
    assert bool(jnp.all(jnp.isnan(vals) == ~valid))
    # std: the 1-sigma each model adds
    sigma = jnp.full((4, 4), 0.3)
    assert float(GaussianNoise(0.5).std(sigma)) == 0.5
    np.testing.assert_array_equal(ObservationNoise().std(sigma), sigma)
    assert float(hidden.std(None)) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="sigma"):
        ObservationNoise()(values, None, mask, key=getkey())
    with pytest.raises(ValueError, match="scale"):
        GaussianNoise(-1.0)
    with pytest.raises(ValueError, match="max_fraction"):
        RandomMask(GaussianNoise(1.0), 1.0)
    with pytest.raises(TypeError, match="base"):
        RandomMask("gaussian", 0.5)
