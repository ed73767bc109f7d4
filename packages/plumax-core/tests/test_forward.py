import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from plumax_core import (
    AbstractForwardModel,
    AbstractObservationOperator,
    MetField,
    Observations,
    Param,
    ParamSpec,
    autodiff_linearization,
    compose,
    forward_flat,
)
from plumax_core.testing import check_forward_model, tree_allclose


class _LinearModel(AbstractForwardModel):
    """c(x) = Q * exp(-(x - x0)^2 / 2) / u on fixed receptors."""

    receptors: jax.Array

    @property
    def param_spec(self):
        return ParamSpec((Param("Q", units="kg/s", lower=0.0, log=True), Param("x0", units="m")))

    def __call__(self, params, met):
        c = params["Q"] * jnp.exp(-0.5 * (self.receptors - params["x0"]) ** 2)
        return Observations(c / met.wind_speed, kind="concentration_ppm", dims=("receptor",))


class _Square(AbstractObservationOperator):
    def __call__(self, state):
        v = state.values if isinstance(state, Observations) else state
        return Observations(v**2 + jnp.sin(v), kind="generic", dims=("receptor",))

    def linearize(self, state):
        return autodiff_linearization(self, state)


MODEL = _LinearModel(jnp.linspace(-3.0, 3.0, 7))
MET = MetField.uniform(2.0, 270.0)
BATCH = {"Q": jnp.array([0.5, 1.0, 2.0]), "x0": jnp.array([-1.0, 0.0, 0.5])}


def test_contract_checks_pass():
    obs = check_forward_model(MODEL, BATCH, MET)
    assert obs.kind == "concentration_ppm"


class _BadGradient(AbstractForwardModel):
    param_spec: ParamSpec = eqx.field(default=ParamSpec((Param("Q"), Param("x0"))))

    def __call__(self, params, met):
        return Observations(jnp.sqrt(jnp.abs(params["x0"])) * jnp.ones(3), kind="generic")


def test_contract_checks_can_fail():
    with pytest.raises(AssertionError, match="gradient"):
        check_forward_model(_BadGradient(), {"Q": jnp.ones(2), "x0": jnp.zeros(2)}, MET)


def test_compose_is_forward_model():
    tier4 = compose(MODEL, _Square())
    assert isinstance(tier4, AbstractForwardModel)
    assert tier4.param_spec == MODEL.param_spec
    params = {"Q": jnp.asarray(1.0), "x0": jnp.asarray(0.0)}
    v = MODEL(params, MET).values
    np.testing.assert_allclose(tier4(params, MET).values, v**2 + jnp.sin(v), rtol=1e-6)
    check_forward_model(tier4, BATCH, MET)
    with pytest.raises(TypeError, match="operator"):
        compose(MODEL, lambda x: x)
    with pytest.raises(TypeError, match="forward"):
        compose(_Square(), _Square())


def test_autodiff_linearization_is_jacobian_and_adjoint(x64, getkey):
    op = _Square()
    state = Observations(jr.normal(getkey(), (7,)), kind="generic", dims=("receptor",))
    lin = op.linearize(state)
    u, w = jr.normal(getkey(), (7,)), jr.normal(getkey(), (7,))
    # independent reference: the analytic derivative 2x + cos(x)
    jac = np.diag(2 * state.values + np.cos(state.values))
    np.testing.assert_allclose(lin.mv(u), jac @ u, rtol=1e-12)
    np.testing.assert_allclose(lin.transpose().mv(w), jac.T @ w, rtol=1e-12)
    np.testing.assert_allclose(jnp.dot(lin.mv(u), w), jnp.dot(u, lin.transpose().mv(w)))


def test_forward_flat_unconstrained(x64):
    f = forward_flat(MODEL, MET, unconstrained=True)
    z = jnp.array([jnp.log(2.0), 0.5])
    # MODEL's receptors are float32, so the direct call below runs in float32
    np.testing.assert_allclose(f(z), MODEL({"Q": 2.0, "x0": 0.5}, MET).values, rtol=1e-6)
    jac = jax.jacfwd(f)(z)
    assert jac.shape == (7, 2)


def test_tree_allclose():
    a = {"x": jnp.ones(3), "s": "label"}
    assert tree_allclose(a, {"x": jnp.ones(3), "s": "label"})
    assert not tree_allclose(a, {"x": jnp.ones(3) * 1.1, "s": "label"})
    assert not tree_allclose(a, {"x": jnp.ones(3), "s": "other"})
    assert not tree_allclose(a, {"x": jnp.ones(3)})
    assert eqx.tree_equal(MODEL, MODEL)
