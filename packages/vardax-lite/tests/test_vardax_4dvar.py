"""4D-Var on a small linear advection model: adjoint, gradient, strong/weak/incremental."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from vardax_models import MET, Advection

import plumax_core as pc
import vardax_lite as vx

N, K = 12, 4


@pytest.fixture(scope="module")
def advection_problem():
    with jax.enable_x64(True):
        spec = pc.ParamSpec((pc.Param("x0", shape=(N,), units="ppm"),))
        model = Advection(spec, n_steps=K, c=0.5)
        grid = jnp.arange(N, dtype=jnp.float64)
        truth = {"x0": jnp.exp(-0.5 * ((grid - 4.0) / 1.5) ** 2)}
        y = model(truth, MET).values
        noise = 0.05 * jr.normal(jr.key(3), y.shape, jnp.float64)
        obs = pc.Observations(y + noise, kind="generic", sigma=0.05, dims=("time", "obs"))
        d = jnp.abs(grid[:, None] - grid[None, :])
        d = jnp.minimum(d, N - d)
        B = 0.25 * jnp.exp(-d / 2.0) + 1e-6 * jnp.eye(N)
        prior = pc.GaussianPrior(jnp.zeros(N), B, spec)
        problem = vx.Problem(model, MET, obs, prior)
        yield problem


def test_adjoint_dot_product_and_fd(advection_problem, x64):
    problem = advection_problem
    chi = jr.normal(jr.key(0), (N,), jnp.float64)
    gate = vx.adjoint_test(problem, chi, key=jr.key(1))
    assert gate.passed and gate.statistic <= 1e-10, gate
    g = vx.cost_gradient(problem, chi)
    v = jr.normal(jr.key(2), (N,), jnp.float64)
    h = 1e-5
    fd = (problem.cost(chi + h * v) - problem.cost(chi - h * v)) / (2 * h)
    np.testing.assert_allclose(float(jnp.dot(g, v)), float(fd), rtol=1e-7)
    # a wrong adjoint fails the gate (the test can fail)
    fn = lambda c: problem.whitened_residual(problem.from_control(c))
    out, vjp = jax.vjp(fn, chi)
    bad = vx.dot_product_test(
        lambda u: jax.jvp(fn, (chi,), (u,))[1], lambda w: 1.01 * vjp(w)[0], chi, out, key=jr.key(1)
    )
    assert not bad.passed


def test_strong_incremental_agree_with_closed_form(advection_problem, x64):
    problem = advection_problem
    oi = vx.OptimalInterpolation.from_problem(problem).posterior(problem)
    strong = vx.StrongFourDVar().posterior(problem)
    inc = vx.IncrementalFourDVar().posterior(problem)
    np.testing.assert_allclose(inc.mean, oi.mean, atol=1e-8)
    np.testing.assert_allclose(inc.cov.as_matrix(), oi.cov.as_matrix(), atol=1e-8)
    np.testing.assert_allclose(strong.mean, inc.mean, atol=1e-6)
    np.testing.assert_allclose(strong.std(), inc.std(), atol=1e-8)
    assert strong.provenance["converged"] is True


def test_weak_4dvar(advection_problem, x64):
    problem = advection_problem
    model = problem.forward_model
    q = 0.02
    weak = vx.WeakFourDVar(q).posterior(problem)
    # closed form: eta ~ N(0, q^2 I) enters linearly, so y ~ N(c + H z, R + q^2 H_eta H_eta^T)
    params0 = problem.param_spec.unflatten(jnp.zeros(N))
    n = N
    f_eta = lambda e: model.simulate(params0, e.reshape(K, n), MET).ravel()
    He = jax.jacfwd(f_eta)(jnp.zeros(K * n))
    Reff = problem.R.as_matrix() + q**2 * He @ He.T
    oi = vx.OptimalInterpolation.from_problem(problem)
    ref = vx.OptimalInterpolation(oi.H, Reff, oi.B, oi.x_b, offset=oi.offset).posterior(problem.y)
    np.testing.assert_allclose(weak.mean, ref.mean, atol=1e-8)
    np.testing.assert_allclose(weak.cov.as_matrix(), ref.cov.as_matrix(), atol=1e-8)
    # with a (nearly) perfect model it reduces to strong-constraint 4D-Var
    weak0 = vx.WeakFourDVar(1e-6).posterior(problem)
    inc = vx.IncrementalFourDVar().posterior(problem)
    np.testing.assert_allclose(weak0.mean, inc.mean, atol=1e-6)
