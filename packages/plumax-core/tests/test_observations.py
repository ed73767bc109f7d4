import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from plumax_core import OBSERVATION_KINDS, Observations, register_observation_kind


def _image():
    vals = np.arange(12.0, dtype=np.float32).reshape(3, 4)
    return Observations(
        vals,
        kind="column_ppm_m",
        sigma=np.full((3, 4), 0.5, np.float32),
        mask=vals != 5.0,
        coords={"y": np.arange(3.0), "x": np.arange(4.0) * 30.0},
        instrument="test",
    )


def test_units_from_kind():
    obs = _image()
    assert obs.units == OBSERVATION_KINDS["column_ppm_m"][0] == "ppm m"
    assert obs.dims == ("y", "x")


def test_xarray_round_trip_exact():
    obs = _image()
    ds = obs.to_xarray()
    assert ds["values"].attrs["units"] == "ppm m"
    back = Observations.from_xarray(ds)
    for f in ("values", "sigma", "mask"):
        a, b = np.asarray(getattr(obs, f)), np.asarray(getattr(back, f))
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    for k in obs.coords:
        np.testing.assert_array_equal(obs.coords[k], back.coords[k])
    assert (back.kind, back.instrument, back.dims) == (obs.kind, obs.instrument, obs.dims)


def test_from_xarray_rejects_wrong_units():
    ds = _image().to_xarray()
    ds["values"].attrs["units"] = "ppb"
    with pytest.raises(ValueError, match="units"):
        Observations.from_xarray(ds)


def test_nan_only_where_masked():
    vals = np.array([1.0, np.nan, 3.0])
    Observations(vals, kind="xch4_ppb", mask=np.isfinite(vals))  # fine
    with pytest.raises(ValueError, match="non-finite"):
        Observations(vals, kind="xch4_ppb")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(kind="banana"), "unknown observation `kind`"),
        (dict(kind="radiance", sigma=np.ones(4)), "sigma"),
        (dict(kind="radiance", sigma=-1.0), "sigma"),
        (dict(kind="radiance", mask=np.ones(2, bool)), "mask"),
        (dict(kind="radiance", dims=("a", "b")), "dims"),
        (dict(kind="radiance", coords={"obs": np.ones(2)}), "coords"),
        (dict(kind="radiance", noise=lx.DiagonalLinearOperator(jnp.ones(2))), "noise"),
        (
            dict(kind="radiance", sigma=1.0, noise=lx.DiagonalLinearOperator(jnp.ones(3))),
            "not both",
        ),
    ],
)
def test_bad_inputs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Observations(np.ones(3), **kwargs)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.integers(1, 4), min_size=1, max_size=3),
    st.lists(st.integers(1, 4), min_size=1, max_size=3),
)
def test_mask_shape_property(shape, mask_shape):
    vals = np.zeros(shape)
    mask = np.ones(mask_shape, bool)
    if tuple(shape) == tuple(mask_shape):
        assert Observations(vals, kind="generic", mask=mask).shape == tuple(shape)
    else:
        with pytest.raises(ValueError, match="mask"):
            Observations(vals, kind="generic", mask=mask)


def test_error_covariance_and_register_kind():
    obs = Observations(np.ones(3), kind="generic", sigma=np.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(lx.diagonal(obs.error_covariance()), [1.0, 4.0, 9.0])
    register_observation_kind("test_kind_xyz", "K", "test temperature")
    assert Observations(np.ones(2), kind="test_kind_xyz").units == "K"
    with pytest.raises(ValueError, match="already registered"):
        register_observation_kind("radiance", "W", "x")


def test_jit_vmap_grad_through_observations():
    obs = _image()

    def loss(o):
        return jnp.sum(jnp.where(o.valid(), (o.values / o.sigma) ** 2, 0.0))

    assert float(jax.jit(loss)(obs)) == pytest.approx(float(loss(obs)))
    stacked = jax.tree.map(lambda a, b: jnp.stack([a, b]), obs, obs.replace(values=obs.values * 2))
    out = jax.vmap(loss)(stacked)
    np.testing.assert_allclose(out[1], 4 * out[0], rtol=1e-6)
    g = jax.grad(lambda v: loss(obs.replace(values=v)))(obs.values)
    expected = np.where(np.asarray(obs.mask), 2 * np.asarray(obs.values) / 0.25, 0.0)
    np.testing.assert_allclose(g, expected, rtol=1e-6)
