"""`with_uncertain_wind` / `UncertainWindForwardModel`: the met's wind scaled and turned."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from plumax_core import (
    AbstractForwardModel,
    MetField,
    Observations,
    Param,
    ParamSpec,
    UncertainWindForwardModel,
    wind_components,
    with_gain,
    with_uncertain_wind,
)
from plumax_core.testing import check_forward_model


class _WindProbe(AbstractForwardModel):
    """Returns the wind it is run under: ``[speed, direction, u, v]`` (a uniform met)."""

    @property
    def param_spec(self):
        return ParamSpec((Param("a"),))

    def __call__(self, params, met):
        met_seen = jnp.stack([met.wind_speed, met.wind_direction, met.u, met.v])
        return Observations(params["a"] * 0.0 + met_seen, kind="generic")


class _Streak(AbstractForwardModel):
    """A toy plume: ``Q/s exp(-c²/2w²) sigmoid(d)`` with ``d``/``c`` the down/crosswind
    distances of a 6 x 7 grid from the wind (``(u, v)/s`` is the direction it blows to)."""

    x: jnp.ndarray
    y: jnp.ndarray

    @property
    def param_spec(self):
        return ParamSpec((Param("Q", units="kg/s", lower=0.0, log=True), Param("w", units="m")))

    def __call__(self, params, met):
        s = met.wind_speed
        tx, ty = met.u / s, met.v / s
        X, Y = self.x[None, :], self.y[:, None]
        down, cross = X * tx + Y * ty, -X * ty + Y * tx
        v = params["Q"] / s * jnp.exp(-0.5 * cross**2 / params["w"] ** 2) * jax.nn.sigmoid(down)
        return Observations(v, kind="generic", dims=("y", "x"))


PROBE = _WindProbe()
STREAK = _Streak(jnp.linspace(-3.0, 3.0, 7), jnp.linspace(-2.5, 2.5, 6))
WEST = MetField.uniform(3.0, 270.0, pblh=800.0, source="station")
ONE = {"a": jnp.asarray(1.0)}


def _seen(model, params, met):
    speed, direction, u, v = np.asarray(model(params, met).values)
    return speed, direction, u, v


def _circ(a, b):
    """Signed difference a - b on the circle, degrees in [-180, 180)."""
    return (a - b + 180.0) % 360.0 - 180.0


def test_spec_appends_the_two_nuisances_last():
    m = with_uncertain_wind(STREAK)
    assert isinstance(m, UncertainWindForwardModel)
    assert m.param_spec.names == ("Q", "w", "log_wind_scale", "wind_dir_offset")
    scale, offset = m.param_spec["log_wind_scale"], m.param_spec["wind_dir_offset"]
    assert (scale.units, offset.units) == ("1", "degree")
    for p in (scale, offset):
        assert p.shape == () and not p.log
        assert p.lower == -math.inf and p.upper == math.inf
    assert m.model_id == STREAK.model_id + "[uncertain-wind]"


def test_zero_nuisance_is_the_wrapped_model_exactly():
    m = with_uncertain_wind(STREAK)
    p = {"Q": jnp.asarray(1.5), "w": jnp.asarray(0.8)}
    met = MetField.uniform(4.0, 123.0)
    got = m({**p, "log_wind_scale": jnp.asarray(0.0), "wind_dir_offset": jnp.asarray(0.0)}, met)
    np.testing.assert_array_equal(got.values, STREAK(p, met).values)
    seen = m.perturbed_met(met, 0.0, 0.0)
    np.testing.assert_array_equal(seen.u, met.u)
    np.testing.assert_array_equal(seen.v, met.v)


def test_log_two_doubles_the_speed_seen():
    m = with_uncertain_wind(PROBE)
    speed, direction, _, _ = _seen(
        m, {**ONE, "log_wind_scale": math.log(2.0), "wind_dir_offset": 0.0}, WEST
    )
    assert speed == pytest.approx(6.0, rel=1e-6)
    assert _circ(direction, 270.0) == pytest.approx(0.0, abs=1e-4)


def test_ninety_degrees_turns_a_westerly_into_a_northerly():
    m = with_uncertain_wind(PROBE)
    speed, direction, u, v = _seen(m, {**ONE, "log_wind_scale": 0.0, "wind_dir_offset": 90.0}, WEST)
    assert speed == pytest.approx(3.0, rel=1e-6)
    assert _circ(direction, 0.0) == pytest.approx(0.0, abs=1e-4)  # from 360 = from 0
    # from the north: blowing towards the south
    assert u == pytest.approx(0.0, abs=1e-6) and v == pytest.approx(-3.0, rel=1e-6)


def test_only_the_wind_changes():
    met = MetField.uniform(3.0, 270.0, stability="B", pblh=800.0, source="station")
    seen = with_uncertain_wind(PROBE).perturbed_met(met, 0.3, 45.0)
    for name in ("temperature", "pressure", "pblh", "stability_class", "z0", "time"):
        np.testing.assert_array_equal(getattr(seen, name), getattr(met, name))
    assert seen.source == "station"


@settings(max_examples=60, deadline=None)
@given(
    st.floats(0.5, 40.0),
    st.floats(0.0, 360.0, exclude_max=True),
    st.floats(-1.5, 1.5),
    st.floats(-400.0, 400.0),
)
def test_speed_and_direction_seen(speed, direction, scale, offset):
    u, v = wind_components(speed, direction)
    met = MetField(u, v)
    m = with_uncertain_wind(PROBE)
    params = {**ONE, "log_wind_scale": scale, "wind_dir_offset": offset}
    s_seen, d_seen, _, _ = _seen(m, params, met)
    assert s_seen == pytest.approx(speed * math.exp(scale), rel=1e-5)
    assert abs(_circ(d_seen, (direction + offset) % 360.0)) < 2e-3


def test_gridded_time_varying_met_is_turned_elementwise(getkey):
    nt, ny, nx = 3, 2, 4
    speed = 1.0 + 5.0 * jax.random.uniform(getkey(), (nt, 1, ny, nx))
    direction = 360.0 * jax.random.uniform(getkey(), (nt, 1, ny, nx))
    u, v = wind_components(speed, direction)
    met = MetField(u, v, time=[0.0, 60.0, 120.0])
    seen = with_uncertain_wind(PROBE).perturbed_met(met, -0.4, 30.0)
    assert seen.u.shape == seen.v.shape == (nt, 1, ny, nx)
    np.testing.assert_allclose(seen.wind_speed, speed * math.exp(-0.4), rtol=1e-5)
    diff = _circ(np.asarray(seen.wind_direction), (np.asarray(direction) + 30.0) % 360.0)
    np.testing.assert_allclose(diff, 0.0, atol=2e-3)
    # a scalar u beside a gridded v is broadcast, still elementwise
    mixed = MetField(2.0, v)
    got = with_uncertain_wind(PROBE).perturbed_met(mixed, 0.0, 90.0)
    np.testing.assert_allclose(got.u, jnp.broadcast_to(v, got.u.shape), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.v, jnp.full(v.shape, -2.0), rtol=1e-5, atol=1e-6)


def test_vmap_equals_a_loop_and_the_contract_holds():
    m = with_uncertain_wind(STREAK)
    met = MetField.uniform(4.0, 200.0)
    batch = {
        "Q": jnp.array([0.5, 2.0, 1.0]),
        "w": jnp.array([0.8, 1.2, 1.0]),
        "log_wind_scale": jnp.array([-0.2, 0.0, 0.5]),
        "wind_dir_offset": jnp.array([-30.0, 0.0, 75.0]),
    }
    batched = eqx.filter_vmap(m, in_axes=(0, None))(batch, met).values
    for i in range(3):
        s, d = float(batch["log_wind_scale"][i]), float(batch["wind_dir_offset"][i])
        # independent: the wrapped model under a met built from the turned speed/direction
        met_i = MetField.uniform(4.0 * math.exp(s), 200.0 + d)
        want = STREAK({"Q": batch["Q"][i], "w": batch["w"][i]}, met_i).values
        np.testing.assert_allclose(batched[i], want, rtol=1e-4, atol=1e-6)
    check_forward_model(m, batch, met)


def test_gradients_are_those_of_the_rotation():
    m = with_uncertain_wind(PROBE)

    def seen(s, d):
        return m({**ONE, "log_wind_scale": s, "wind_dir_offset": d}, WEST).values

    zero = jnp.asarray(0.0)
    ds = jax.jacfwd(seen, argnums=0)(zero, zero)
    dd = jax.jacfwd(seen, argnums=1)(zero, zero)
    # d speed / d log_scale = speed; d direction / d offset = 1
    np.testing.assert_allclose(ds[0], 3.0, rtol=1e-6)
    np.testing.assert_allclose(dd[1], 1.0, rtol=1e-5)
    # westerly (u=3, v=0): du/dδ = v π/180 = 0, dv/dδ = -u π/180
    np.testing.assert_allclose(dd[2:], [0.0, -3.0 * math.pi / 180.0], rtol=1e-5, atol=1e-7)
    g = jax.grad(lambda d: seen(zero, d)[3])(jnp.asarray(40.0))
    assert np.isfinite(g)


def test_batched_nuisance_without_vmap_raises():
    m = with_uncertain_wind(PROBE)
    with pytest.raises(ValueError, match="jax.vmap"):
        m({"a": jnp.ones(2), "log_wind_scale": jnp.zeros(2), "wind_dir_offset": 0.0}, WEST)


def test_duplicate_names_raise_naming_them():
    with pytest.raises(ValueError, match="log_wind_scale"):
        with_uncertain_wind(with_uncertain_wind(STREAK))
    with pytest.raises(ValueError, match="wind_dir_offset"):
        with_uncertain_wind(with_gain(STREAK, name="wind_dir_offset"))
    with pytest.raises(TypeError, match="AbstractForwardModel"):
        with_uncertain_wind(lambda p, m: None)


def test_composes_with_a_gain():
    m = with_gain(with_uncertain_wind(STREAK))
    assert m.param_spec.names[-3:] == ("log_wind_scale", "wind_dir_offset", "log_gain")
