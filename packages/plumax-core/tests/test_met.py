import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from plumax_core import MetField, stability_index


def test_meteorological_direction_convention():
    # wind FROM the north blows towards the south: v < 0
    north = MetField.uniform(4.0, 0.0)
    assert float(north.v) == pytest.approx(-4.0)
    assert float(north.u) == pytest.approx(0.0, abs=1e-6)
    west = MetField.uniform(4.0, 270.0)
    assert float(west.u) == pytest.approx(4.0)


@settings(max_examples=50, deadline=None)
@given(st.floats(0.5, 40.0), st.floats(0.0, 359.9))
def test_speed_direction_round_trip(speed, direction):
    m = MetField.uniform(speed, direction)
    assert float(m.wind_speed) == pytest.approx(speed, rel=1e-5)
    diff = (float(m.wind_direction) - direction + 180.0) % 360.0 - 180.0
    assert abs(diff) < 1e-3


@settings(max_examples=30, deadline=None)
@given(st.one_of(st.floats(max_value=-1e-6), st.just(float("nan")), st.just(float("inf"))))
def test_bad_speed_raises(speed):
    with pytest.raises(ValueError, match="speed"):
        MetField.uniform(speed, 90.0)


@pytest.mark.parametrize("cls", ["G", 6, -1, 2.5, "AB"])
def test_unknown_stability_class(cls):
    with pytest.raises(ValueError, match="stability"):
        MetField.uniform(3.0, 90.0, stability=cls)


def test_stability_index():
    assert [stability_index(c) for c in "ABCDEF"] == list(range(6))
    assert stability_index("d") == 3


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(temperature=-1.0), "temperature"),
        (dict(pressure=0.0), "pressure"),
        (dict(pblh=-10.0), "pblh"),
        (dict(z0=0.0), "z0"),
        (dict(obukhov_length=0.0), "obukhov_length"),
        (dict(stability_class=7), "stability_class"),
    ],
)
def test_bad_fields(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MetField(1.0, 1.0, **kwargs)


def test_shape_checks():
    with pytest.raises(ValueError, match="4-D"):
        MetField(jnp.ones(3), 1.0, time=jnp.arange(3.0))
    with pytest.raises(ValueError, match="along 'time'"):
        MetField(jnp.ones((3, 1, 1, 1)), 1.0, time=jnp.arange(4.0))
    with pytest.raises(ValueError, match="NaN"):
        MetField(jnp.array(jnp.nan), 1.0)
    with pytest.raises(ValueError, match="increasing"):
        MetField(1.0, 1.0, time=jnp.array([0.0, 0.0]))


def _series():
    t = jnp.array([0.0, 600.0, 1800.0])
    return MetField.from_timeseries(
        t,
        jnp.array([2.0, 4.0, 3.0]),
        jnp.array([90.0, 90.0, 180.0]),
        stability=["B", "C", "D"],
        pblh=jnp.array([500.0, 800.0, 1000.0]),
    )


def test_at_matches_numpy_interp():
    m = _series()
    for t in (0.0, 150.0, 600.0, 1000.0, 1800.0):
        mt = m.at(t)
        for name in ("u", "v", "pblh"):
            ref = np.interp(t, np.asarray(m.time), np.asarray(getattr(m, name)).ravel())
            assert float(getattr(mt, name).ravel()[0]) == pytest.approx(ref, rel=1e-6, abs=1e-6)
        expected_class = {0.0: 1, 150.0: 1, 600.0: 2, 1000.0: 2, 1800.0: 3}[t]
        assert int(mt.stability_class.ravel()[0]) == expected_class
        assert mt.time.shape == (1,)


def test_at_out_of_range_raises():
    m = _series()
    with pytest.raises(ValueError, match="outside the met time range"):
        m.at(1801.0)
    # steady met is valid at any time
    assert MetField.uniform(3.0, 10.0).at(1e6).time[0] == 1e6


def test_at_under_jit_and_grad():
    m = _series()
    f = jax.jit(lambda t: m.at(t).u.sum())
    assert float(f(300.0)) == pytest.approx(float(m.at(300.0).u.sum()))
    g = jax.grad(lambda t: m.at(t).pblh.sum())(300.0)
    assert float(g) == pytest.approx(300.0 / 600.0)


def test_jit_vmap_grad_through_metfield():
    def speed(m):
        return jnp.sum(m.wind_speed * m.pblh)

    fields = [MetField.uniform(s, 45.0, pblh=p) for s, p in ((2.0, 500.0), (5.0, 900.0))]
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *fields)
    out = jax.vmap(speed)(stacked)
    np.testing.assert_allclose(out, [1000.0, 4500.0], rtol=1e-5)
    assert float(jax.jit(speed)(fields[0])) == pytest.approx(1000.0, rel=1e-5)
    # the integer stability class is not differentiable: filter_grad skips it
    g = eqx.filter_grad(speed)(fields[0])
    assert float(g.pblh) == pytest.approx(2.0, rel=1e-5)
    assert g.stability_class is None
    # and met as a non-differentiated argument works with plain jax.grad
    gs = jax.grad(lambda s, m: speed(MetField.uniform(s, 45.0, pblh=m.pblh)), argnums=0)
    assert float(gs(2.0, fields[0])) == pytest.approx(500.0, rel=1e-5)


def test_xarray_round_trip_exact():
    rng = np.random.default_rng(0)
    m = MetField(
        rng.normal(size=(2, 3, 4, 5)).astype(np.float32),
        rng.normal(size=(2, 1, 4, 5)).astype(np.float32),
        w=np.float32(0.1),
        temperature=np.full((2, 3, 1, 1), 290.0, np.float32),
        stability_class=np.array([2, 3], np.int32).reshape(2, 1, 1, 1),
        obukhov_length=np.float32(-50.0),
        time=np.array([0.0, 3600.0], np.float32),
        z=np.array([10.0, 50.0, 100.0], np.float32),
        y=np.arange(4.0, dtype=np.float32),
        x=np.arange(5.0, dtype=np.float32),
        source="test-fixture",
    )
    ds = m.to_xarray()
    assert ds["u"].attrs["units"] == "m s-1"
    assert ds["temperature"].attrs["standard_name"] == "air_temperature"
    back = MetField.from_xarray(ds)
    for name in ("u", "v", "w", "temperature", "stability_class", "obukhov_length", "time", "z"):
        a, b = np.asarray(getattr(m, name)), np.asarray(getattr(back, name))
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    assert back.source == "test-fixture"


def test_from_xarray_checks_units():
    ds = MetField.uniform(3.0, 10.0).to_xarray()
    ds["u"].attrs["units"] = "km h-1"
    with pytest.raises(ValueError, match="units"):
        MetField.from_xarray(ds)
    with pytest.raises(TypeError, match="Dataset"):
        MetField.from_xarray({"u": 1})


def test_from_timeseries_default_pblh_and_traced_time():
    m = MetField.from_timeseries(
        jnp.array([0.0, 60.0]), jnp.array([2.0, 3.0]), jnp.array([0.0, 0.0])
    )
    assert float(m.pblh) == 1000.0  # the constructor's default, not None
    # at() under jit with the whole MetField traced (time included)
    f = jax.jit(lambda met, t: met.at(t).wind_speed.sum())
    assert float(f(m, 30.0)) == pytest.approx(2.5, rel=1e-6)
