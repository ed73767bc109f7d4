"""LaplaceMixture: one mode is the closed form; two symmetric modes get equal weights."""

import jax.numpy as jnp
import numpy as np
import pytest
from vardax_models import MET, linear_problem

import plumax_core as pc
import vardax_lite as vx


def test_one_mode_is_the_closed_form_posterior(x64):
    problem, mu, P, _ = linear_problem()
    starts = jnp.stack([problem.z_b, problem.z_b + 1.0, problem.z_b - 2.0])
    post = vx.LaplaceMixture().posterior(problem, starts=starts)
    assert post.provenance["n_modes"] == 1 and list(post.provenance["weights"]) == [1.0]
    assert post.samples is None  # one mode: the Laplace posterior itself
    np.testing.assert_allclose(post.mean, mu, atol=1e-8)
    np.testing.assert_allclose(np.asarray(post.cov.as_matrix()), P, atol=1e-8)


class _Square(pc.AbstractForwardModel):
    """``y = x²`` at 4 points: the posterior of ``x`` given ``y = 4`` has modes at ±2."""

    @property
    def param_spec(self):
        return pc.ParamSpec((pc.Param("x", units="1"),))

    def __call__(self, params, met):
        x = jnp.asarray(params["x"])
        return pc.Observations(
            jnp.broadcast_to(x[..., None] ** 2, (*x.shape, 4)), kind="column_ppm_m", sigma=0.1
        )


def test_symmetric_modes_share_the_mass(x64):
    spec = _Square().param_spec
    obs = pc.Observations(jnp.full(4, 4.0), kind="column_ppm_m", sigma=0.1)
    prior = pc.GaussianPrior.from_std(spec, jnp.zeros(1), jnp.full(1, 5.0))
    problem = vx.Problem(_Square(), MET, obs, prior)
    starts = jnp.array([[-1.5], [1.5], [2.5]])
    post = vx.LaplaceMixture(n_samples=20_000).posterior(problem, starts=starts)
    assert post.provenance["n_modes"] == 2
    np.testing.assert_allclose(post.provenance["weights"], [0.5, 0.5], atol=0.01)
    x = np.asarray(post.flat_samples())[:, 0]
    assert np.mean(x > 0) == pytest.approx(0.5, abs=0.02)
    # each mode: Laplace sd of x at ±2 is 0.1 / (2·|2|·sqrt(4)) = 0.0125 (likelihood-dominated)
    assert np.std(x[x > 0]) == pytest.approx(0.0125, rel=0.05)
    # from one start only one mode is seen: the single Laplace approximation
    one = vx.LaplaceMixture(n_samples=1000).posterior(problem, starts=jnp.array([[1.5]]))
    assert one.provenance["n_modes"] == 1 and float(one.mean[0]) == pytest.approx(2.0, abs=1e-3)


def test_bad_options_and_starts_are_named(x64):
    problem, *_ = linear_problem()
    with pytest.raises(ValueError, match="n_samples"):
        vx.LaplaceMixture(n_samples=1)
    with pytest.raises(ValueError, match="separation"):
        vx.LaplaceMixture(separation=0.0)
    with pytest.raises(ValueError, match="starts"):
        vx.LaplaceMixture().posterior(problem, starts=jnp.zeros((2, problem.dim + 1)))
