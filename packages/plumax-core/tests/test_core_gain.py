"""`with_gain` / `GainForwardModel`: a multiplicative gain exp(log_gain) on the values."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plumax_core import (
    AbstractForwardModel,
    GainForwardModel,
    MetField,
    Observations,
    Param,
    ParamSpec,
    pin,
    with_gain,
)
from plumax_core.testing import check_forward_model

SPEC = ParamSpec(
    (
        Param("Q", units="kg/s", lower=0.0, log=True),
        Param("x0", units="m"),
        Param("w", units="m", lower=0.0),
    )
)
SIGMA = 0.01


class _Blob(AbstractForwardModel):
    """``Q exp(-r²/2w²) / (2π w² u)`` on a fixed 4 x 5 grid, with a sigma and a mask."""

    x: jnp.ndarray
    y: jnp.ndarray

    @property
    def param_spec(self):
        return SPEC

    def __call__(self, params, met):
        X, Y = self.x[None, :], self.y[:, None]
        w2 = params["w"] ** 2
        r2 = (X - params["x0"]) ** 2 + Y**2
        v = params["Q"] * jnp.exp(-0.5 * r2 / w2) / (2 * jnp.pi * w2) / met.wind_speed
        mask = jnp.ones(v.shape, bool).at[0, 0].set(False)
        return Observations(
            v,
            kind="column_kg_m2",
            sigma=SIGMA,
            mask=mask,
            dims=("y", "x"),
            coords={"y": self.y, "x": self.x},
            instrument="toy",
        )


BLOB = _Blob(jnp.linspace(-2.0, 2.0, 5), jnp.linspace(-1.5, 1.5, 4))
MET = MetField.uniform(2.0, 270.0)
P = {"Q": jnp.asarray(2.0), "x0": jnp.asarray(-0.5), "w": jnp.asarray(1.2)}


def test_spec_has_the_gain_last_unbounded_dimensionless():
    m = with_gain(BLOB)
    assert isinstance(m, GainForwardModel)
    assert m.param_spec.names == ("Q", "x0", "w", "log_gain")
    assert m.param_spec.params[:3] == SPEC.params
    p = m.param_spec["log_gain"]
    assert p.shape == () and p.units == "1" and not p.log
    assert p.lower == -math.inf and p.upper == math.inf
    assert "gain" in p.description
    assert m.model_id == BLOB.model_id + "[gain:log_gain]"
    named = with_gain(BLOB, name="log_g_s5p")
    assert named.param_spec.names[-1] == "log_g_s5p"
    assert named.model_id.endswith("[gain:log_g_s5p]")


def test_zero_log_gain_is_the_wrapped_model_exactly():
    got = with_gain(BLOB)({**P, "log_gain": jnp.asarray(0.0)}, MET)
    want = BLOB(P, MET)
    np.testing.assert_array_equal(got.values, want.values)
    np.testing.assert_array_equal(got.sigma, want.sigma)
    np.testing.assert_array_equal(got.mask, want.mask)
    assert (got.kind, got.dims, got.instrument) == (want.kind, want.dims, want.instrument)
    np.testing.assert_array_equal(got.coords["x"], want.coords["x"])


def test_log_two_doubles_the_values_and_keeps_sigma():
    got = with_gain(BLOB)({**P, "log_gain": jnp.asarray(math.log(2.0))}, MET)
    want = BLOB(P, MET)
    np.testing.assert_allclose(got.values, 2.0 * want.values, rtol=1e-6)
    np.testing.assert_array_equal(got.sigma, want.sigma)
    np.testing.assert_array_equal(got.mask, want.mask)
    assert got.units == want.units == "kg m-2"


def test_vmap_equals_a_loop_and_the_contract_holds():
    m = with_gain(BLOB)
    batch = {
        "Q": jnp.array([0.5, 2.0, 1.0]),
        "x0": jnp.array([0.0, 0.3, -0.4]),
        "w": jnp.array([1.0, 1.5, 0.8]),
        "log_gain": jnp.array([-0.3, 0.0, 0.7]),
    }
    batched = eqx.filter_vmap(m, in_axes=(0, None))(batch, MET).values
    for i in range(3):
        one = {k: v[i] for k, v in batch.items()}
        want = (
            np.exp(float(batch["log_gain"][i]))
            * BLOB({k: v for k, v in one.items() if k != "log_gain"}, MET).values
        )
        np.testing.assert_allclose(batched[i], want, rtol=1e-5)
    obs = check_forward_model(m, batch, MET)
    assert obs.shape == (4, 5)


def test_leading_batch_axes_scale_each_member():
    """A model that takes batched params natively: each member gets its own gain."""

    class _Line(AbstractForwardModel):
        @property
        def param_spec(self):
            return ParamSpec((Param("a"),))

        def __call__(self, params, met):
            a = jnp.asarray(params["a"])
            v = a[..., None] * jnp.arange(1.0, 4.0)
            return Observations(v, kind="generic", dims=(*("b",) * a.ndim, "x"))

    m = with_gain(_Line())
    out = m({"a": jnp.array([1.0, 2.0]), "log_gain": jnp.log(jnp.array([3.0, 0.5]))}, MET)
    np.testing.assert_allclose(out.values, [[3.0, 6.0, 9.0], [1.0, 2.0, 3.0]], rtol=1e-6)


def test_grad_wrt_log_gain_at_zero_is_the_values():
    m = with_gain(BLOB)
    jac = jax.jacfwd(lambda lg: m({**P, "log_gain": lg}, MET).values)(jnp.asarray(0.0))
    np.testing.assert_allclose(jac, BLOB(P, MET).values, rtol=1e-6)
    # and through a scalar loss with jax.grad
    g = jax.grad(lambda lg: jnp.sum(m({**P, "log_gain": lg}, MET).values))(jnp.asarray(0.0))
    np.testing.assert_allclose(g, jnp.sum(BLOB(P, MET).values), rtol=1e-5)


def test_gain_composes_with_pin():
    m = with_gain(pin(BLOB, w=1.2))
    assert m.param_spec.names == ("Q", "x0", "log_gain")
    got = m({"Q": P["Q"], "x0": P["x0"], "log_gain": jnp.asarray(math.log(3.0))}, MET)
    np.testing.assert_allclose(got.values, 3.0 * BLOB(P, MET).values, rtol=1e-6)


def test_duplicate_name_raises_naming_it():
    with pytest.raises(ValueError, match="'x0'"):
        with_gain(BLOB, name="x0")
    with pytest.raises(ValueError, match="'log_gain'"):
        with_gain(with_gain(BLOB))
    # a second gain under another name is fine
    assert with_gain(with_gain(BLOB), name="log_gain2").param_spec.names[-2:] == (
        "log_gain",
        "log_gain2",
    )


def test_bad_name_and_bad_model_raise():
    with pytest.raises(ValueError, match="identifier"):
        with_gain(BLOB, name="log gain")
    with pytest.raises(TypeError, match="AbstractForwardModel"):
        with_gain(lambda p, m: None)
