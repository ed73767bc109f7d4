import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from plumax_core import Param, ParamSpec

SPEC = ParamSpec(
    (
        Param("Q", units="kg/s", lower=0.0, log=True),
        Param("x0", units="m", lower=-500.0, upper=500.0),
        Param("H", units="m", lower=0.0),
        Param("w", shape=(2,), upper=3.0),
        Param("b"),
        Param("q", lower=1e-3, upper=10.0, log=True),
    )
)


def test_flatten_unflatten_round_trip_with_batch():
    params = {
        "Q": jnp.array([0.1, 2.0]),
        "x0": jnp.array([1.0, -3.0]),
        "H": jnp.array([0.0, 10.0]),
        "w": jnp.array([[1.0, 2.0], [0.5, -1.0]]),
        "b": jnp.array([4.0, 5.0]),
        "q": jnp.array([0.5, 5.0]),
    }
    flat = SPEC.flatten(params)
    assert flat.shape == (2, SPEC.size) == (2, 7)
    back = SPEC.unflatten(flat)
    for k in params:
        np.testing.assert_array_equal(back[k], params[k])
    assert SPEC.flat_names == ("Q", "x0", "H", "w[0]", "w[1]", "b", "q")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-6, 6), min_size=7, max_size=7))
def test_unconstrained_round_trip_and_support(z):
    with jax.enable_x64(True):
        z = jnp.asarray(z, dtype=jnp.float64)
        params = SPEC.from_unconstrained(z)
        assert bool(SPEC.in_support(params))
        np.testing.assert_allclose(SPEC.to_unconstrained(params), z, rtol=1e-9, atol=1e-9)


def test_log_abs_det_jacobian_matches_autodiff(x64):
    z = jnp.linspace(-2.0, 2.0, SPEC.size)
    jac = jax.jacfwd(lambda z: SPEC.forward_transform(z)[0])(z)
    # the transform is elementwise, so the Jacobian is diagonal
    np.testing.assert_allclose(jac - jnp.diag(jnp.diag(jac)), 0.0, atol=1e-12)
    expected = jnp.sum(jnp.log(jnp.abs(jnp.diag(jac))))
    np.testing.assert_allclose(SPEC.log_abs_det_jacobian(z), expected, rtol=1e-12)


def test_spec_json_round_trip():
    d = json.loads(json.dumps(SPEC.to_dict()))
    assert ParamSpec.from_dict(d) == SPEC


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(name="Q", lower=1.0, upper=1.0), "lower"),
        (dict(name="Q", lower=-1.0, log=True), "log=True"),
        (dict(name="not valid"), "identifier"),
        (dict(name="Q", shape=(0,)), "shape"),
        (dict(name="Q", lower=math.nan), "NaN"),
    ],
)
def test_bad_param(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Param(**kwargs)


def test_bad_params_dict():
    with pytest.raises(ValueError, match="missing"):
        SPEC.flatten({"Q": 1.0})
    with pytest.raises(ValueError, match="trailing size"):
        SPEC.unflatten(jnp.zeros(3))
    with pytest.raises(ValueError, match="duplicate"):
        ParamSpec((Param("a"), Param("a")))
    with pytest.raises(ValueError, match="outside its support"):
        SPEC.check_in_support(
            {"Q": -1.0, "x0": 0.0, "H": 0.0, "w": jnp.zeros(2), "b": 0.0, "q": 1.0}
        )
    with pytest.raises(TypeError, match="Param"):
        ParamSpec(("Q",))
