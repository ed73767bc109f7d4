"""`pin` / `PinnedForwardModel`: known parameters held fixed, the rest free."""

import jax.numpy as jnp
import numpy as np
import pytest

from plumax_core import (
    AbstractForwardModel,
    MetField,
    Observations,
    Param,
    ParamSpec,
    PinnedForwardModel,
    pin,
)
from plumax_core.testing import check_forward_model

SPEC = ParamSpec(
    (
        Param("Q", units="kg/s", lower=0.0, log=True),
        Param("x0", units="m"),
        Param("y0", units="m"),
        Param("w", units="m", lower=0.0),
    )
)


class _Blob(AbstractForwardModel):
    """``Q exp(-r²/2w²) / (2π w² u)`` on a fixed 6 x 5 grid (a toy column image)."""

    x: jnp.ndarray
    y: jnp.ndarray

    @property
    def param_spec(self):
        return SPEC

    def __call__(self, params, met):
        X, Y = self.x[None, :], self.y[:, None]
        w2 = params["w"] ** 2
        r2 = (X - params["x0"]) ** 2 + (Y - params["y0"]) ** 2
        v = params["Q"] * jnp.exp(-0.5 * r2 / w2) / (2 * jnp.pi * w2) / met.wind_speed
        return Observations(
            v, kind="column_kg_m2", dims=("y", "x"), coords={"y": self.y, "x": self.x}
        )


BLOB = _Blob(jnp.linspace(-2.0, 2.0, 5), jnp.linspace(-2.5, 2.5, 6))
MET = MetField.uniform(2.0, 270.0)


def test_pinned_spec_drops_the_pinned_names_in_order():
    m = pin(BLOB, w=1.5)
    assert isinstance(m, PinnedForwardModel)
    assert m.param_spec.names == ("Q", "x0", "y0")
    assert m.param_spec["Q"] == SPEC["Q"]
    assert m.model_id.endswith("_Blob[pinned:w]")
    assert pin(BLOB, y0=0.0, w=1.0).model_id.endswith("[pinned:w,y0]")


def test_pinned_call_equals_the_full_model_with_the_value_merged():
    m = pin(BLOB, w=1.5, y0=0.25)
    p = {"Q": jnp.asarray(2.0), "x0": jnp.asarray(-0.5)}
    want = BLOB({**p, "y0": jnp.asarray(0.25), "w": jnp.asarray(1.5)}, MET).values
    np.testing.assert_array_equal(m(p, MET).values, want)


def test_pinned_model_meets_the_forward_model_contract():
    m = pin(BLOB, w=1.2)
    batch = {"Q": jnp.array([0.5, 2.0]), "x0": jnp.array([0.0, 0.3]), "y0": jnp.array([0.1, -0.2])}
    obs = check_forward_model(m, batch, MET)
    assert obs.kind == "column_kg_m2" and obs.shape == (6, 5)


def test_pin_nests():
    m = pin(pin(BLOB, w=1.0), y0=0.0)
    assert m.param_spec.names == ("Q", "x0")
    p = {"Q": jnp.asarray(1.0), "x0": jnp.asarray(0.0)}
    want = BLOB({**p, "y0": jnp.asarray(0.0), "w": jnp.asarray(1.0)}, MET).values
    np.testing.assert_allclose(m(p, MET).values, want, rtol=1e-6)


@pytest.mark.parametrize(
    ("fixed", "match"),
    [
        ({"Z": 1.0}, "not parameters"),
        ({"w": -1.0}, "outside"),
        ({"w": float("nan")}, "finite"),
        ({"w": [1.0, 2.0]}, "shape"),
        ({"Q": 1.0, "x0": 0.0, "y0": 0.0, "w": 1.0}, "at least one free"),
    ],
)
def test_bad_pins_raise_naming_the_parameter(fixed, match):
    with pytest.raises(ValueError, match=match):
        PinnedForwardModel(BLOB, fixed)


def test_pin_needs_a_forward_model():
    with pytest.raises(TypeError, match="AbstractForwardModel"):
        pin(lambda p, m: None, H=1.0)
