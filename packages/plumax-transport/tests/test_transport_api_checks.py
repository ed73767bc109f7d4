"""Issue 17, Python API: one wind-speed rule at every library entry, clean errors from
jitted code, traced stability classes and grid coordinates that must ascend.

Each test fails on the code before the fix (three wind-speed rules, JaxRuntimeError /
EquinoxRuntimeError reaching the user, ConcretizationTypeError for a traced class,
duplicate or decreasing ColumnImage coordinates accepted).
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plumax_core import InvalidInputError, MetField, clean_errors
from plumax_core.validation import MAX_WIND_SPEED, MIN_WIND_SPEED, check_wind_speed
from plumax_transport import (
    ColumnAverage,
    ColumnImage,
    GaussianPlume,
    GaussianPuff,
    LagrangianParticles,
    PointReceptors,
    pasquill_class,
)
from plumax_transport._eulerian import EulerianFV
from plumax_transport._fv_grid import FVGrid

#: Speeds (m/s) that every wind-speed entry must refuse: below the 0.5 m/s floor, calm,
#: negative, NaN and a unit error (km/h * 1e3 ...).
BAD_SPEEDS = (0.1, 0.0, -1.0, math.nan, 1e6)
GOOD = (MIN_WIND_SPEED, 4.0, MAX_WIND_SPEED)

_GEO = PointReceptors(np.array([400.0]), 0.0, 1.0)
_PLUME = GaussianPlume(_GEO)
_PUFF = GaussianPuff(_GEO, [0.0, 100.0], obs_time=200.0, puff_interval=50.0)
# a single receptor has no extent to choose the duration from; dt and duration given so
# that a traced met runs
_PARTICLES = LagrangianParticles(
    _GEO, key=jax.random.key(0), n_particles=64, dt=1.0, duration=100.0
)
# duration and max_substeps given so that a traced met runs (64 substeps of 0.31 s cover
# the upwind limit at 120 m/s on 50 m cells); the Eulerian tier has no 1/u singularity,
# so its own floor defaults to 0 (calm air is valid, tested with the model): the rule's
# machinery is checked here with the plume's floor set explicitly
_EULERIAN = EulerianFV(
    _GEO,
    FVGrid(
        np.arange(-50.0, 451.0, 50.0), np.array([-50.0, 0.0, 50.0]), np.array([0.0, 10.0, 30.0])
    ),
    duration=20.0,
    max_substeps=64,
    scheme="upwind",
    min_wind_speed=MIN_WIND_SPEED,
)
_P_PLUME = {"Q": 0.05, "x0": 0.0, "y0": 0.0, "H": 5.0}
_P_PUFF = {"Q": jnp.array([0.05]), "x0": 0.0, "y0": 0.0, "H": 5.0}


def _met_with_speed(speed: float) -> MetField:
    """A westerly wind of ``speed`` m/s, set past MetField's own checks (so the model's
    check is the one tested); a negative speed is not expressible as components."""
    met = MetField.uniform(4.0, 270.0, stability="D", pblh=800.0)
    return eqx.tree_at(lambda m: (m.u, m.v), met, (jnp.asarray(speed), jnp.asarray(0.0)))


def _series(speed):
    return MetField.from_timeseries(
        jnp.array([0.0, 600.0]), jnp.array([4.0, speed]), jnp.array([270.0, 270.0])
    )


#: Every library entry that accepts a wind speed, with the argument its message names.
#: Each gets a speed in m/s and must raise ValueError for every value of BAD_SPEEDS.
WIND_ENTRIES = {
    "check_wind_speed": ("speed", lambda s: check_wind_speed("speed", s)),
    "MetField.uniform": ("speed", lambda s: MetField.uniform(s, 270.0)),
    "MetField.from_timeseries": ("speed", _series),
    "GaussianPlume": ("met.wind_speed", lambda s: _PLUME(_P_PLUME, _met_with_speed(s))),
    "GaussianPuff": ("met.wind_speed", lambda s: _PUFF(_P_PUFF, _met_with_speed(s))),
    "LagrangianParticles": (
        "met.wind_speed",
        lambda s: _PARTICLES(_P_PLUME, _met_with_speed(s)),
    ),
    "EulerianFV": ("met.wind_speed", lambda s: _EULERIAN(_P_PLUME, _met_with_speed(s))),
}
#: The models cannot be handed a negative speed (met carries components u, v).
_NOT_EXPRESSIBLE = {
    ("GaussianPlume", -1.0),
    ("GaussianPuff", -1.0),
    ("LagrangianParticles", -1.0),
    ("EulerianFV", -1.0),
}


@pytest.mark.parametrize("entry", sorted(WIND_ENTRIES))
def test_every_wind_entry_applies_the_one_rule(entry):
    name, call = WIND_ENTRIES[entry]
    for speed in BAD_SPEEDS:
        if (entry, speed) in _NOT_EXPRESSIBLE:
            continue
        with pytest.raises(ValueError, match=f"`{name}` must be") as info:
            call(speed)
        msg = str(info.value)
        assert "m/s" in msg, msg
        if speed == 0.1 or speed == 0.0:
            assert f">= {MIN_WIND_SPEED:g} m/s" in msg
        if speed == 1e6:
            assert f"<= {MAX_WIND_SPEED:g} m/s" in msg
    for speed in GOOD:
        call(speed)


@pytest.mark.parametrize(
    "model", ["GaussianPlume", "GaussianPuff", "LagrangianParticles", "EulerianFV"]
)
def test_models_apply_the_rule_under_jit_with_clean_errors(model):
    """Traced, the same rule and the same message (without the value), as a ValueError."""
    name, call = WIND_ENTRIES[model]
    f = jax.jit(lambda s: call(s).values)
    assert np.all(np.isfinite(np.asarray(f(4.0))))
    for speed in (0.1, 0.0, math.nan, 1e6):
        with pytest.raises(ValueError) as eager:
            call(speed)
        with pytest.raises(InvalidInputError) as traced, clean_errors():
            f(speed)
        assert str(eager.value).startswith(str(traced.value)), (eager.value, traced.value)
        assert str(traced.value).startswith(f"`{name}` must be")


def test_non_strict_model_flags_bad_wind_as_nan_under_tracing():
    lenient = GaussianPlume(_GEO, strict=False)
    f = jax.jit(lambda s: lenient(_P_PLUME, _met_with_speed(s)).values)
    assert np.all(np.isfinite(np.asarray(f(4.0))))
    for speed in (0.1, math.nan, 1e6):
        assert np.all(np.isnan(np.asarray(f(speed))))


def test_pasquill_table_keeps_calm_winds_but_refuses_the_rest():
    """The Pasquill key classifies a measured surface wind, calm included (documented
    floor 0 instead of 0.5 m/s); NaN, negative and impossible speeds still raise."""
    assert pasquill_class(0.0, daytime=True, insolation="strong") == "A"
    assert pasquill_class(0.1, daytime=True, insolation="strong") == "A"
    for speed in (-1.0, math.nan, math.inf, 1e6):
        with pytest.raises(ValueError, match="`wind_speed` must be"):
            pasquill_class(speed, daytime=True, insolation="strong")
    with pytest.raises(ValueError, match="`wind_speed` must be a concrete"):
        jax.jit(lambda s: pasquill_class(s, daytime=True, insolation="strong"))(3.0)


def test_min_wind_speed_setting_is_checked():
    for bad in (0.0, -1.0, math.nan, 500.0):
        with pytest.raises(ValueError, match="`min_wind_speed`"):
            GaussianPlume(_GEO, min_wind_speed=bad)
        with pytest.raises(ValueError, match="`min_wind_speed`"):
            GaussianPuff(_GEO, [0.0, 100.0], obs_time=200.0, min_wind_speed=bad)
    strict = GaussianPlume(_GEO, min_wind_speed=2.0)
    with pytest.raises(ValueError, match="`met.wind_speed` must be >= 2 m/s"):
        strict(_P_PLUME, _met_with_speed(1.0))


# -- errors from inside the jitted kernels reach an eager caller as ValueError ---------


def test_eager_call_gets_a_clean_error_from_the_jitted_core():
    """The Golder check runs inside the model's jitted core (an equinox runtime error
    before the fix); an eager call now gets a ValueError with the check's message."""
    met = MetField(3.0, 0.0, obukhov_length=100.0, z0=5.0)
    with pytest.raises(InvalidInputError, match=r"^`z0` must be in \[1e-3, 1\] m"):
        _PLUME(_P_PLUME, met)


def test_user_jit_errors_are_cleaned_by_clean_errors():
    f = jax.jit(lambda q: _PLUME(dict(_P_PLUME, Q=q), _met_with_speed(4.0)).values)
    with pytest.raises(InvalidInputError, match="outside the support"), clean_errors():
        f(jnp.asarray(-1.0))


# -- traced stability classes ------------------------------------------------------------


def test_traced_stability_class_runs_through_the_models():
    met_of = lambda s: MetField.uniform(4.0, 270.0, stability=s, pblh=800.0)  # noqa: E731
    f = jax.jit(lambda s: _PLUME(_P_PLUME, met_of(s)).values)
    for k, letter in enumerate("ABCDEF"):
        np.testing.assert_allclose(
            np.asarray(f(jnp.int32(k))), np.asarray(_PLUME(_P_PLUME, met_of(letter)).values)
        )
    with pytest.raises(InvalidInputError, match="`stability` must be in 0-5"), clean_errors():
        f(jnp.int32(9))
    with pytest.raises(ValueError, match="`stability` must be an integer class index"):
        f(2.0)


# -- grid coordinates --------------------------------------------------------------------


@pytest.mark.parametrize("geometry", [ColumnImage, ColumnAverage])
@pytest.mark.parametrize(
    ("x", "y", "axis", "what"),
    [
        ([0.0, 0.0, 10.0], [0.0, 10.0], "x", "repeats a value"),
        ([0.0, 10.0], [5.0, 0.0], "y", "decreases"),
        ([30.0, 20.0, 10.0], [0.0, 10.0], "x", "decreases"),
        ([1e8, 1e8 + 1.0], [0.0, 10.0], "x", "repeats a value"),  # equal once float32
    ],
)
def test_grid_coordinates_must_strictly_ascend(geometry, x, y, axis, what):
    with pytest.raises(ValueError, match=f"`{axis}` must be strictly ascending; it {what}"):
        geometry(np.asarray(x), np.asarray(y))


def test_grid_coordinates_may_be_uneven_or_single():
    ColumnImage(np.array([0.0, 10.0, 25.0]), np.array([-5.0, 5.0]))
    ColumnImage(np.array([100.0]), np.array([0.0]))
