"""Export: exact JSON round trip; the prior divided out recovers the likelihood."""

import json

import jax.numpy as jnp
import jax.random as jr
import numpy as np
from vardax_models import MET, LogObs, linear_problem

import plumax_core as pc
import vardax_lite as vx


def _roundtrip(mark):
    text = json.dumps(mark.to_dict())
    back = vx.GaussianMarkLikelihood.from_dict(json.loads(text))
    assert back.to_dict() == mark.to_dict()
    return back


def test_roundtrip_laplace_lowrank_samples(x64, getkey):
    problem, mu, P, d = linear_problem(D=4, m=3, seed=8)
    meta = {"event_id": "E1", "time": 1.7e9, "lon": -102.1}
    for adapter in (vx.LaplaceCovariance(), vx.GaussNewtonHessian(n_krylov=3)):
        post = vx.ThreeDVar(adapter=adapter).posterior(problem)
        back = _roundtrip(vx.GaussianMarkLikelihood(post, meta, prior=problem.prior))
        np.testing.assert_array_equal(back.posterior.mean, post.mean)
        np.testing.assert_allclose(back.posterior.cov.as_matrix(), P, atol=1e-10)
        assert back.event_metadata == meta
    kind = vx.GaussianMarkLikelihood(post, meta, prior=problem.prior).to_dict()["posterior"]["cov"]
    assert kind["type"] == "cholesky"  # low-rank update of a dense B: stored as Cholesky
    diag_prior = pc.GaussianPrior.from_std(problem.param_spec, jnp.zeros(4), 2.0)
    p_diag = vx.Problem(problem.forward_model, MET, problem.observations, diag_prior)
    post_lr = vx.ThreeDVar(adapter=vx.GaussNewtonHessian(n_krylov=3)).posterior(p_diag)
    mark_lr = vx.GaussianMarkLikelihood(post_lr, meta, prior=diag_prior)
    assert mark_lr.to_dict()["posterior"]["cov"]["type"] == "low_rank"
    back_lr = _roundtrip(mark_lr)
    np.testing.assert_allclose(back_lr.posterior.std(), post_lr.std(), rtol=1e-12)
    # samples and a diagonal covariance
    import lineax as lx

    samples = jr.normal(getkey(), (2, 5, 4), jnp.float64)
    p2 = pc.Posterior(
        jnp.zeros(4),
        lx.DiagonalLinearOperator(jnp.ones(4)),
        samples,
        provenance=post.provenance,
        param_spec=post.param_spec,
    )
    m2 = vx.GaussianMarkLikelihood(p2, meta, prior=problem.prior)
    back2 = _roundtrip(m2)
    np.testing.assert_array_equal(back2.posterior.samples, samples)
    assert m2.to_dict()["posterior"]["cov"]["type"] == "diagonal"
    assert len(m2.to_dict()["log_prior_at_samples"]) == 2


def test_mark_likelihood_lognormal_conjugate(x64, getkey):
    """log Q ~ N(m0, s0^2) prior, y = log Q + e (lognormal measurement): L(log Q) = N(y, s^2)."""
    spec = pc.ParamSpec((pc.Param("Q", units="kg/s", lower=0.0, log=True),))
    m0, s0, s, yv = 0.0, 1.0, 0.5, 0.8
    prior = pc.GaussianPrior.from_std(spec, jnp.asarray([m0]), s0)

    problem = vx.Problem(
        LogObs(spec), MET, pc.Observations(jnp.asarray([yv]), kind="generic", sigma=s), prior
    )
    post = vx.ThreeDVar().posterior(problem)
    exact = vx.GaussianMarkLikelihood(post, {"id": 1}, prior=prior).likelihood_gaussian_exact()
    np.testing.assert_allclose(exact[0], [yv], atol=1e-10)
    np.testing.assert_allclose(exact[1], [[s**2]], atol=1e-10)
    # from samples, with the prior divided out by importance weights
    n = 40000
    draws = post.sample(getkey(), n)[None]
    sp = pc.Posterior(post.mean, None, draws, provenance=post.provenance, param_spec=spec)
    mark = vx.GaussianMarkLikelihood(sp, {"id": 1}, prior=prior)
    mu_l, cov_l = mark.likelihood_gaussian()
    assert abs(float(mu_l[0]) - yv) < 0.02
    assert abs(float(jnp.sqrt(cov_l[0, 0])) - s) < 0.02
    # without dividing out the prior we would get the (narrower) posterior instead
    assert abs(float(jnp.std(draws)) - s) > 0.04
    # round trip keeps the per-sample prior log-densities
    back = _roundtrip(mark)
    np.testing.assert_allclose(
        back.log_prior(draws[0, :3]), prior.log_prob_unconstrained(draws[0, :3])
    )
