"""Posterior checks (contraction, chi-square fit, convergence) against closed forms.

Every check has a case where it must pass and a deliberately wrong model, data set or
sampler run where it must fail.
"""

import json

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from scipy import stats
from vardax_models import MET, ExpModel, LinearModel, linear_problem

import plumax_core as pc
import vardax_lite as vx


def _diag_problem(G, sig, b_std, y, zb=None):
    """Linear-Gaussian problem with a diagonal prior, and its closed form (float64)."""
    m, D = G.shape
    zb = np.zeros(D) if zb is None else zb
    spec = pc.ParamSpec(tuple(pc.Param(f"a{i}") for i in range(D)))
    prior = pc.GaussianPrior.from_std(spec, jnp.asarray(zb), jnp.asarray(b_std))
    obs = pc.Observations(jnp.asarray(y), kind="generic", sigma=jnp.asarray(sig))
    problem = vx.Problem(LinearModel(jnp.asarray(G), spec), MET, obs, prior)
    B = np.diag(np.asarray(b_std, float) ** 2)
    Ri = np.diag(1.0 / np.broadcast_to(sig, (m,)) ** 2)
    P = np.linalg.inv(np.linalg.inv(B) + G.T @ Ri @ G)
    mu = zb + P @ G.T @ Ri @ (y - G @ zb)
    return problem, mu, P, B


def _oi(problem):
    """The closed-form (optimal interpolation) posterior of a linear problem."""
    G = problem.forward_model.G
    return vx.OptimalInterpolation(
        G, problem.R, problem.B, problem.z_b, param_spec=problem.param_spec
    ).posterior(problem.y)


# -- contraction ----------------------------------------------------------------------


def test_contraction_is_the_conjugate_closed_form(x64):
    problem, mu, P, d = linear_problem(D=3, m=8, seed=4)
    post = vx.ThreeDVar().posterior(problem)
    c = vx.posterior_contraction(post, problem.prior)
    np.testing.assert_allclose(c, 1.0 - np.diag(P) / np.diag(d["B"]), atol=1e-10)
    # with a diagonal B it is the diagonal of the averaging kernel; its sum is the DFS
    rng = np.random.default_rng(5)
    G = rng.normal(size=(6, 3))
    problem2, mu2, P2, B2 = _diag_problem(G, 0.7, [1.0, 2.0, 0.5], rng.normal(size=6))
    post2 = _oi(problem2)
    np.testing.assert_allclose(np.asarray(post2.cov.as_matrix()), P2, atol=1e-10)
    c2 = vx.posterior_contraction(post2, problem2.prior)
    A = np.asarray(vx.averaging_kernel(P2, B2))
    np.testing.assert_allclose(c2, np.diag(A), atol=1e-10)
    assert float(np.sum(c2)) == pytest.approx(float(vx.dfs(P2, B2)), abs=1e-10)


def test_contraction_of_samples_and_non_gaussian_prior(x64, getkey):
    """Sample-based posteriors and a mixture prior (variance from prior draws)."""
    problem, mu, P, d = linear_problem(D=2, m=5, seed=2)
    draws = np.random.default_rng(0).multivariate_normal(mu, P, size=(2, 20000))
    post = pc.Posterior(jnp.asarray(mu), None, jnp.asarray(draws), provenance=pc.make_provenance())
    ref = 1.0 - np.diag(P) / np.diag(d["B"])
    np.testing.assert_allclose(vx.posterior_contraction(post, problem.prior), ref, atol=0.03)
    spec = problem.param_spec
    g = pc.GaussianPrior(jnp.asarray(d["zb"]), jnp.asarray(d["B"]), spec)
    mix = pc.MixturePrior([g, g])  # the same Gaussian twice: variance diag(B)
    c = vx.posterior_contraction(post, mix, key=getkey(), n_prior_draws=40000)
    np.testing.assert_allclose(c, ref, atol=0.03)


def test_contraction_check_fires_on_an_uninformative_parameter(x64):
    """a1 does not enter the model (column of zeros): its posterior is its prior."""
    rng = np.random.default_rng(1)
    G = rng.normal(size=(10, 2))
    y = G @ np.array([0.3, -0.2]) + 0.1 * rng.normal(size=10)
    problem, *_ = _diag_problem(G, 0.1, [1.0, 1.0], y)
    ok = vx.contraction_check(_oi(problem), problem.prior)
    assert ok.passed and ok.statistic > 0.99
    G_blind = G.copy()
    G_blind[:, 1] = 0.0
    problem_b, *_ = _diag_problem(G_blind, 0.1, [1.0, 1.0], y)
    bad = vx.contraction_check(_oi(problem_b), problem_b.prior)
    assert not bad.passed
    assert bad.details["prior_dominated"] == ["a1"]
    assert bad.statistic == pytest.approx(0.0, abs=1e-10)
    # a nuisance known from its prior by design is reported, not failed
    nuis = vx.contraction_check(_oi(problem_b), problem_b.prior, nuisance=("a1",))
    assert nuis.passed and nuis.details["prior_dominated"] == []
    assert nuis.details["contraction"][1] == pytest.approx(0.0, abs=1e-10)
    assert nuis.statistic > 0.99
    # data and prior of equal precision: contraction 1/2 exactly, on the threshold
    one, *_ = _diag_problem(np.ones((1, 1)), 1.0, [1.0], np.array([0.4]))
    half = vx.contraction_check(_oi(one), one.prior)
    assert half.statistic == pytest.approx(0.5, abs=1e-12)


def test_contraction_rejects_a_mismatched_prior(x64):
    problem, *_ = linear_problem(D=3)
    other, *_ = linear_problem(D=2)
    post = _oi(problem)
    with pytest.raises(ValueError, match="prior"):
        vx.posterior_contraction(post, other.prior)


# -- chi-square fit -------------------------------------------------------------------


def test_fit_statistic_is_the_innovation_closed_form(x64):
    """2 J* = d^T (G B G^T + R)^-1 d, d = y - G z_b (exact for a linear-Gaussian problem)."""
    problem, mu, P, d = linear_problem(D=3, m=8, seed=7)
    g = vx.fit_check(problem, jnp.asarray(mu))
    G, B, sig = d["G"], d["B"], d["sig"]
    inn = d["y"] - G @ d["zb"]
    ref = float(inn @ np.linalg.solve(G @ B @ G.T + np.diag(sig**2), inn))
    assert g.details["chi2"] == pytest.approx(ref, rel=1e-10)
    assert g.details["dof"] == 8
    assert g.statistic == pytest.approx(stats.chi2.sf(ref, 8), rel=1e-4)
    # a batch of candidates: the lowest cost (the MAP) is used
    post_far = jnp.stack([jnp.asarray(mu) + 3.0, jnp.asarray(mu)])
    assert vx.fit_check(problem, post_far).details["chi2"] == pytest.approx(ref, rel=1e-10)


def test_fit_p_values_are_uniform_for_a_correct_model_and_fire_for_wrong_ones(x64):
    """Simulated from the model: p ~ U(0, 1). A negated signal, a 5-sigma offset and
    errors understated 3x are all rejected."""
    rng = np.random.default_rng(11)
    m, D = 30, 2
    G = rng.normal(size=(m, D)) * 2.0
    sig, b_std = 0.5, np.array([1.0, 1.0])
    problem, *_ = _diag_problem(G, sig, b_std, np.zeros(m))
    Ri = np.eye(m) / sig**2
    K = np.linalg.inv(np.diag(1 / b_std**2) + G.T @ Ri @ G) @ G.T @ Ri

    def p_value(y):
        p = problem.with_data(jnp.asarray(y))
        return vx.fit_check(p, jnp.asarray(K @ y))

    ps = []
    for _ in range(300):
        z = rng.normal(size=D) * b_std
        ps.append(p_value(G @ z + sig * rng.normal(size=m)).statistic)
    ps = np.asarray(ps)
    assert stats.kstest(ps, "uniform").pvalue > 0.01
    assert np.mean(ps < vx.FIT_ALPHA) < 0.02  # false alarms: about 1 in 1000

    z = np.array([0.8, -0.5])
    clean = G @ z + sig * rng.normal(size=m)
    assert p_value(clean).passed
    # the same truth with the plume-like signal of a source of the wrong sign only fits
    # when the prior allows it; a positive-only model (ExpModel below) cannot
    for wrong in (clean + 5 * sig, G @ z + 3 * sig * rng.normal(size=m)):
        g = p_value(wrong)
        assert not g.passed and g.details["reduced_chi2"] > 2


def test_fit_check_rejects_a_negated_signal_a_positive_model_cannot_explain(x64):
    """ExpModel has Q > 0 (log-transformed): the negated bump is not in its range."""
    x = jnp.linspace(-4.0, 4.0, 40)
    model = ExpModel(x)
    spec = model.param_spec
    prior = pc.GaussianPrior.from_std(spec, jnp.array([0.0, 0.0]), jnp.array([1.5, 2.0]))
    truth = {"Q": jnp.asarray(2.0), "x0": jnp.asarray(0.5)}
    noise = 0.1 * jr.normal(jr.key(3), (40,))
    y = model(truth, MET).values + noise

    def run(values):
        obs = pc.Observations(values, kind="generic", sigma=jnp.asarray(0.1))
        problem = vx.Problem(model, MET, obs, prior)
        post = vx.ThreeDVar().posterior(problem)
        return vx.fit_check(problem, post.mean)

    assert run(y).passed
    bad = run(-y)
    assert not bad.passed and bad.statistic < 1e-10


def test_fit_check_refuses_student_t(x64):
    problem, mu, *_ = linear_problem(D=2, m=4)
    t = vx.Problem(
        problem.forward_model, MET, problem.observations, problem.prior, likelihood="student_t"
    )
    with pytest.raises(ValueError, match="Gaussian likelihood"):
        vx.fit_check(t, jnp.asarray(mu))
    diag = vx.inference_diagnostics(t, vx.ThreeDVar(solver="bfgs").posterior(t))
    assert "chi2_fit" not in diag.checks and "Student-t" in diag.skipped["chi2_fit"]


# -- convergence ----------------------------------------------------------------------


def _sampled(rhat, n_div):
    prov = pc.make_provenance(converged=max(rhat) < 1.05, rhat=rhat, n_divergent=n_div, ess=[50.0])
    draws = jr.normal(jr.key(0), (2, 50, len(rhat)))
    return pc.Posterior(jnp.zeros(len(rhat)), None, draws, provenance=prov)


def test_convergence_check(x64):
    problem = vx.Problem(
        ExpModel(jnp.linspace(-3.0, 3.0, 12)),
        MET,
        pc.Observations(jnp.linspace(0.1, 1.0, 12), kind="generic", sigma=jnp.asarray(0.05)),
        pc.GaussianPrior.from_std(
            ExpModel(jnp.zeros(1)).param_spec, jnp.zeros(2), jnp.array([1.0, 1.0])
        ),
    )
    good = vx.ThreeDVar().posterior(problem)
    assert vx.convergence_check(good).passed
    stopped = vx.ThreeDVar(max_steps=1).posterior(problem)
    g = vx.convergence_check(stopped)
    assert not g.passed and g.details["n_iter"] == 1
    assert vx.convergence_check(_sampled([1.002, 1.01], 0)).passed
    r = vx.convergence_check(_sampled([1.002, 1.3], 0))
    assert not r.passed and r.statistic == pytest.approx(1.3)
    assert not vx.convergence_check(_sampled([1.002, 1.01], 4)).passed
    unknown = pc.Posterior(jnp.zeros(1), jnp.eye(1), provenance=pc.make_provenance())
    assert not vx.convergence_check(unknown).passed


# -- all together ---------------------------------------------------------------------


def test_inference_diagnostics_words_each_failure(x64):
    rng = np.random.default_rng(1)
    G = rng.normal(size=(10, 2))
    G[:, 1] = 0.0
    y = G @ np.array([0.3, 0.0]) + 0.1 * rng.normal(size=10)
    problem, *_ = _diag_problem(G, 0.1, [1.0, 1.0], y + 1.0)  # offset: misfit
    post = vx.ThreeDVar(max_steps=1, solver="bfgs").posterior(problem)
    diag = vx.inference_diagnostics(problem, post)
    assert not diag.passed
    assert set(diag.checks) == {"convergence", "posterior_contraction", "chi2_fit"}
    text = " | ".join(diag.warnings)
    assert "did not converge" in text and "barely inform a1" in text
    assert "does not fit" in text
    d = json.loads(json.dumps(diag.to_dict()))
    assert d["passed"] is False and len(d["warnings"]) == 3
    clean, *_ = _diag_problem(rng.normal(size=(10, 2)), 0.1, [1.0, 1.0], np.zeros(10))
    ok = vx.inference_diagnostics(clean, _oi(clean))
    assert ok.passed and ok.warnings == ()
