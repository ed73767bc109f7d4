import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from plumax_core import MET_ATTR_UNITS, MetField, stability_index


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


# --------------------------------------------------------------------- to_attrs / from_attrs
@settings(max_examples=30, deadline=None)
@given(
    speed=st.floats(0.5, 120.0),
    direction=st.floats(0.0, 359.9),
    cls=st.sampled_from("ABCDEF"),
    pblh=st.floats(50.0, 4000.0),
    temperature=st.floats(220.0, 320.0),
    pressure=st.floats(50000.0, 105000.0),
)
def test_attrs_round_trip(speed, direction, cls, pblh, temperature, pressure):
    with jax.enable_x64(True):  # a fixture does not reset between examples
        met = MetField.uniform(
            speed, direction, stability=cls, pblh=pblh, temperature=temperature, pressure=pressure
        )
        attrs = met.to_attrs()
        assert set(attrs) == {f"met_{k}" for k in MET_ATTR_UNITS}
        assert attrs["met_stability_class"] == cls
        assert attrs["met_wind_speed"] == pytest.approx(speed, rel=1e-11)  # 12 digits
        # strings, as some NetCDF writers store attributes, read too
        back = MetField.from_attrs({k: str(v) for k, v in attrs.items()}, source="file")
        assert back.source == "file"
        again = back.to_attrs()
        for k, v in attrs.items():
            got = again[k]
            if k == "met_stability_class":
                assert got == v
            elif k == "met_wind_direction":
                assert (got - v + 180.0) % 360.0 - 180.0 == pytest.approx(0.0, abs=1e-9)
            else:
                assert got == pytest.approx(v, rel=1e-12)


def test_attrs_with_a_prefix_and_the_units_table():
    met = MetField.uniform(3.0, 250.0, stability="D", pblh=700.0)
    attrs = met.to_attrs(prefix="wrf_")
    assert sorted(attrs) == sorted(f"wrf_{k}" for k in MET_ATTR_UNITS)
    assert MET_ATTR_UNITS["wind_speed"] == "m s-1" and MET_ATTR_UNITS["pressure"] == "Pa"
    back = MetField.from_attrs(attrs, "wrf_").to_attrs("wrf_")
    assert back.pop("wrf_stability_class") == attrs.pop("wrf_stability_class") == "D"
    assert back == pytest.approx(attrs, rel=1e-6)
    with pytest.raises(ValueError, match="missing met attribute"):
        MetField.from_attrs(attrs)  # the default prefix met_ is not there


def test_to_attrs_refuses_a_met_that_varies_or_has_no_class():
    varying = MetField.from_timeseries([0.0, 60.0], [3.0, 4.0], [270.0, 270.0], stability="C")
    with pytest.raises(ValueError, match="steady uniform met; wind_speed takes 2 values"):
        varying.to_attrs()
    with pytest.raises(ValueError, match="stability class"):
        MetField(3.0, 0.0).to_attrs()


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"met_pblh": None}, r"missing met attribute\(s\) \['met_pblh'\]"),
        ({"met_temperature": "warm"}, "attribute met_temperature must be a number"),
        ({"met_pressure": float("nan")}, "met_pressure"),
        ({"met_wind_speed": 0.1}, "met_wind_speed"),
        ({"met_wind_speed": 500.0}, "met_wind_speed"),
        ({"met_stability_class": "G"}, "met_stability_class must be one of"),
    ],
)
def test_from_attrs_names_the_bad_attribute(change, needle):
    attrs = MetField.uniform(4.0, 270.0, stability="C", pblh=800.0).to_attrs()
    for k, v in change.items():
        if v is None:
            del attrs[k]
        else:
            attrs[k] = v
    with pytest.raises(ValueError, match=needle):
        MetField.from_attrs(attrs)


def test_a_met_at_the_minimum_wind_speed_reads_back(x64):
    # hypot(u, v) of a 0.5 m/s wind is 0.49999999999999994 for some directions: the
    # attribute must still pass the wind-speed rule when read (found by hypothesis)
    for direction in (14.0, 33.0, 250.0):
        met = MetField.uniform(0.5, direction, stability="F")
        attrs = met.to_attrs()
        assert attrs["met_wind_speed"] == 0.5
        assert float(MetField.from_attrs(attrs).wind_speed) == pytest.approx(0.5)
