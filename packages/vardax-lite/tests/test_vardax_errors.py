"""Bad input gives clear errors naming the argument."""

import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import pytest
from vardax_models import MET, LinearModel

import plumax_core as pc
import vardax_lite as vx
from plumax_core.validation import error_if


def test_non_spd_B():
    with pytest.raises(ValueError, match="`B`"):
        vx.OptimalInterpolation(
            np.eye(2), np.eye(2), np.array([[1.0, 2.0], [2.0, 1.0]]), np.zeros(2)
        )
    # a non-SPD prior covariance is refused by plumax-core before any Problem is built
    spec = pc.ParamSpec((pc.Param("a"), pc.Param("b")))
    with pytest.raises(ValueError, match="positive definite"):
        pc.GaussianPrior(jnp.zeros(2), jnp.asarray([[1.0, 2.0], [2.0, 1.0]]), spec)


def test_mismatched_shapes():
    with pytest.raises(ValueError, match="`R` must be 3x3"):
        vx.OptimalInterpolation(np.ones((3, 2)), np.eye(4), np.eye(2), np.zeros(2))
    with pytest.raises(ValueError, match="`B` must be 2x2"):
        vx.OptimalInterpolation(np.ones((3, 2)), np.eye(3), np.eye(3), np.zeros(2))
    spec = pc.ParamSpec((pc.Param("a"), pc.Param("b")))
    prior = pc.GaussianPrior.from_std(spec, jnp.zeros(2), 1.0)
    obs = pc.Observations(jnp.zeros(4), kind="generic", sigma=1.0)
    with pytest.raises(ValueError, match="returns 3 values but `observations` has 4"):
        vx.Problem(LinearModel(jnp.ones((3, 2)), spec), MET, obs, prior)
    obs3 = pc.Observations(
        jnp.zeros(3), kind="generic", noise=lx.DiagonalLinearOperator(-jnp.ones(3))
    )
    with pytest.raises(ValueError, match="R \\(observations.noise\\)"):
        vx.Problem(LinearModel(jnp.ones((3, 2)), spec), MET, obs3, prior)


def test_nan_observations_without_mask():
    oi = vx.OptimalInterpolation(np.ones((3, 2)), np.eye(3), np.eye(2), np.zeros(2))
    with pytest.raises(ValueError, match="mask"):
        oi.posterior(np.array([1.0, np.nan, 2.0]))
    post = oi.posterior(np.array([1.0, np.nan, 2.0]), mask=np.array([True, False, True]))
    assert np.all(np.isfinite(post.mean))
    with pytest.raises(ValueError, match="mask"):
        pc.Observations(jnp.asarray([1.0, jnp.nan]), kind="generic", sigma=1.0)


def test_bad_settings():
    with pytest.raises(ValueError, match="`solver`"):
        vx.ThreeDVar(solver="newton")
    with pytest.raises(ValueError, match="`n_krylov`"):
        vx.GaussNewtonHessian(n_krylov=0)
    with pytest.raises(ValueError, match="`inflation`"):
        vx.EnsembleCovariance(inflation=0.5)
    with pytest.raises(ValueError, match="`likelihood`"):
        spec = pc.ParamSpec((pc.Param("a"),))
        vx.Problem(
            LinearModel(jnp.ones((1, 1)), spec),
            MET,
            pc.Observations(jnp.zeros(1), kind="generic", sigma=1.0),
            pc.GaussianPrior.from_std(spec, jnp.zeros(1), 1.0),
            likelihood="cauchy",
        )
    with pytest.raises(ValueError, match="no `sigma` or `noise`"):
        spec = pc.ParamSpec((pc.Param("a"),))
        vx.Problem(
            LinearModel(jnp.ones((1, 1)), spec),
            MET,
            pc.Observations(jnp.zeros(1), kind="generic"),
            pc.GaussianPrior.from_std(spec, jnp.zeros(1), 1.0),
        )


class _CheckedLine(pc.AbstractForwardModel):
    """``y = G theta``, refusing a met wind above 10 m/s with a run-time plumax check."""

    G: jax.Array
    param_spec: pc.ParamSpec

    def __call__(self, params, met):
        speed = error_if(met.wind_speed, met.wind_speed > 10.0, "`met.wind_speed` > 10 (test)")
        return pc.Observations(
            self.G @ self.param_spec.flatten(params) + 0.0 * speed, kind="generic"
        )


def test_model_check_failing_inside_the_solver_is_a_clean_value_error():
    """Issue 17: a forward model's check that fails inside the compiled solver reached
    the user as an equinox/XLA runtime error; it is now a ValueError with its message."""
    spec = pc.ParamSpec((pc.Param("a"), pc.Param("b")))
    model = _CheckedLine(jnp.ones((3, 2)), spec)
    obs = pc.Observations(jnp.zeros(3), kind="generic", sigma=1.0)
    prior = pc.GaussianPrior.from_std(spec, jnp.zeros(2), 1.0)
    windy = pc.MetField.uniform(20.0, 270.0)
    with pytest.raises(pc.InvalidInputError, match=r"^`met.wind_speed` > 10 \(test\)$"):
        vx.ThreeDVar().posterior(vx.Problem(model, windy, obs, prior))
    post = vx.ThreeDVar().posterior(vx.Problem(model, MET, obs, prior))
    assert np.all(np.isfinite(np.asarray(post.std())))
