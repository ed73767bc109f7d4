"""Linear-Gaussian problems: every Gaussian analysis equals the closed form."""

import jax.numpy as jnp
import jax.random as jr
import lineax as lx
import numpy as np
import pytest
from vardax_models import MET, ExpModel, linear_problem

import plumax_core as pc
import vardax_lite as vx


def _cov(post):
    return np.asarray(post.cov.as_matrix())


def test_oi_closed_form(x64):
    problem, mu, P, d = linear_problem()
    oi = vx.OptimalInterpolation(d["G"], d["R"], d["B"], d["zb"])
    post = oi.posterior(d["y"])
    np.testing.assert_allclose(post.mean, mu, atol=1e-8)
    np.testing.assert_allclose(_cov(post), P, atol=1e-8)
    # gain form (m < D) gives the same answer
    problem2, mu2, P2, d2 = linear_problem(D=6, m=3, seed=1)
    post2 = vx.OptimalInterpolation(d2["G"], d2["R"], d2["B"], d2["zb"]).posterior(d2["y"])
    np.testing.assert_allclose(post2.mean, mu2, atol=1e-8)
    np.testing.assert_allclose(_cov(post2), P2, atol=1e-8)
    assert post.provenance["converged"] is True
    # from_problem linearises the (linear) model exactly
    post3 = vx.OptimalInterpolation.from_problem(problem).posterior(problem)
    np.testing.assert_allclose(post3.mean, mu, atol=1e-8)


def test_oi_structured_operators(x64):
    """Kronecker B and low-rank + diagonal R agree with their dense equivalents."""
    rng = np.random.default_rng(3)
    A1 = rng.normal(size=(2, 2))
    A2 = rng.normal(size=(3, 3))
    B1, B2 = A1 @ A1.T + 2 * np.eye(2), A2 @ A2.T + 3 * np.eye(3)
    Bk = pc.linalg.Kronecker(
        lx.MatrixLinearOperator(jnp.asarray(B1), lx.positive_semidefinite_tag),
        lx.MatrixLinearOperator(jnp.asarray(B2), lx.positive_semidefinite_tag),
    )
    U = rng.normal(size=(10, 2))
    Rl = pc.linalg.LowRankUpdate(
        lx.DiagonalLinearOperator(jnp.full(10, 0.5)),
        jnp.asarray(U),
        tags=lx.positive_semidefinite_tag,
    )
    H = rng.normal(size=(10, 6))
    y = rng.normal(size=10)
    zb = np.zeros(6)
    a = vx.OptimalInterpolation(H, Rl, Bk, zb).posterior(y)
    b = vx.OptimalInterpolation(H, Rl.as_matrix(), np.kron(B1, B2), zb).posterior(y)
    np.testing.assert_allclose(a.mean, b.mean, atol=1e-10)
    np.testing.assert_allclose(_cov(a), _cov(b), atol=1e-10)


def test_oi_mask(x64):
    mask = np.array([True, False, True, True, True, False, True, True])
    problem, mu, P, d = linear_problem(mask=mask)
    y = d["y"].copy()
    y[~mask] = np.nan
    post = vx.OptimalInterpolation(d["G"], d["R"], d["B"], d["zb"]).posterior(y, mask=mask)
    np.testing.assert_allclose(post.mean, mu, atol=1e-8)
    np.testing.assert_allclose(_cov(post), P, atol=1e-8)
    post3 = vx.ThreeDVar().posterior(problem)
    np.testing.assert_allclose(post3.mean, mu, atol=1e-8)
    np.testing.assert_allclose(_cov(post3), P, atol=1e-8)


@pytest.mark.parametrize("solver", ["gauss_newton", "levenberg_marquardt", "bfgs"])
def test_3dvar_laplace_closed_form(x64, solver):
    problem, mu, P, _ = linear_problem()
    post = vx.ThreeDVar(solver=solver).posterior(problem)
    np.testing.assert_allclose(post.mean, mu, atol=1e-8)
    np.testing.assert_allclose(_cov(post), P, atol=1e-8)
    np.testing.assert_allclose(post.std(), np.sqrt(np.diag(P)), atol=1e-8)
    prov = post.provenance
    assert prov["converged"] is True and prov["n_iter"] >= 1
    assert prov["adapter"] == "LaplaceCovariance"
    assert post.param_spec == problem.param_spec
    for k in pc.REQUIRED_PROVENANCE_KEYS:
        assert k in prov


def test_gauss_newton_hessian_closed_form(x64):
    problem, mu, P, _ = linear_problem(D=5, m=3, seed=2)
    post = vx.ThreeDVar(adapter=vx.GaussNewtonHessian(n_krylov=5)).posterior(problem)
    assert isinstance(post.cov, pc.linalg.LowRankUpdate)
    np.testing.assert_allclose(post.mean, mu, atol=1e-8)
    # the diagonal without materialising, then the full matrix
    np.testing.assert_allclose(lx.diagonal(post.cov), np.diag(P), atol=1e-8)
    np.testing.assert_allclose(_cov(post), P, atol=1e-8)
    # rank(G) = m = 3: three Krylov vectors already give the exact posterior
    post3 = vx.ThreeDVar(adapter=vx.GaussNewtonHessian(n_krylov=3)).posterior(problem)
    np.testing.assert_allclose(_cov(post3), P, atol=1e-8)
    assert post3.provenance["lowrank_truncated"] is False  # k = rank(G): nothing dropped
    # and one is not enough: it must differ (the test can fail), and provenance says so
    post1 = vx.ThreeDVar(adapter=vx.GaussNewtonHessian(n_krylov=1)).posterior(problem)
    assert np.abs(_cov(post1) - P).max() > 1e-3
    prov = post1.provenance
    assert prov["lowrank_truncated"] is True and prov["smallest_kept_reduction"] > 0.01


def test_incremental_4dvar_closed_form(x64):
    problem, mu, P, _ = linear_problem()
    post = vx.IncrementalFourDVar().posterior(problem)
    np.testing.assert_allclose(post.mean, mu, atol=1e-8)
    np.testing.assert_allclose(_cov(post), P, atol=1e-8)
    assert post.provenance["converged"] is True


@pytest.mark.slow
def test_ensemble_rate(x64):
    """Frobenius error of the ensemble covariance decreases like 1/sqrt(M)."""
    problem, mu, P, _ = linear_problem(D=2, m=4, seed=4)
    chi = vx.ThreeDVar().solve(problem).chi
    Ms = (16, 64, 256, 1024)
    errs = []
    for M in Ms:
        ad = vx.EnsembleCovariance(n_members=M, max_steps=10)
        e = [
            np.linalg.norm(
                np.asarray(ad(problem, chi, key=jr.key(100 * M + r)).cov.as_matrix()) - P
            )
            for r in range(12)
        ]
        errs.append(np.sqrt(np.mean(np.square(e))))
    slope = np.polyfit(np.log(Ms), np.log(errs), 1)[0]
    assert -0.65 < slope < -0.35, (slope, errs)
    assert errs[-1] / np.linalg.norm(P) < 0.1


def test_ensemble_inflation_localisation(x64, getkey):
    problem, mu, P, _ = linear_problem(D=4, m=6, seed=5)
    chi = vx.ThreeDVar().solve(problem).chi
    k = getkey()
    base = vx.EnsembleCovariance(n_members=32)(problem, chi, key=k)
    infl = vx.EnsembleCovariance(n_members=32, inflation=1.5)(problem, chi, key=k)
    np.testing.assert_allclose(infl.cov.as_matrix(), 2.25 * base.cov.as_matrix(), rtol=1e-10)
    assert infl.samples.shape == (1, 32, 4)
    loc = vx.EnsembleCovariance(n_members=32, localisation_radius=0.5)(problem, chi, key=k)
    C = np.asarray(loc.cov.as_matrix())
    # radius 0.5 -> support 1.0: index neighbours are decorrelated entirely
    np.testing.assert_allclose(C, np.diag(np.diag(base.cov.as_matrix())), atol=1e-14)
    assert float(vx.gaspari_cohn(jnp.asarray(0.0))) == 1.0
    assert float(vx.gaspari_cohn(jnp.asarray(2.0))) == 0.0
    # RML members are exact posterior draws here: the sample covariance is close to P
    err = np.linalg.norm(np.asarray(base.cov.as_matrix()) - P) / np.linalg.norm(P)
    assert err < 3.0 / np.sqrt(32)


def test_diagnostics(x64, getkey):
    problem, mu, P, d = linear_problem(D=4, m=6, seed=6)
    A = np.asarray(vx.averaging_kernel(P, d["B"]))
    G, sig = d["G"], d["sig"]
    np.testing.assert_allclose(A, P @ G.T @ np.diag(sig**-2) @ G, atol=1e-10)
    ds = float(vx.dfs(P, d["B"]))
    assert 0 < ds < 4
    est = float(vx.dfs_hutchinson(jnp.asarray(P), jnp.asarray(d["B"]), key=getkey(), n_probes=4000))
    assert abs(est - ds) < 0.1
    # E[chi2 of analysis residuals] = m - DFS (Desroziers et al. 2005): Monte Carlo over data
    oi = vx.OptimalInterpolation(G, d["R"], d["B"], d["zb"])
    key = getkey()
    n = 4000
    z = d["zb"] + jr.normal(key, (n, 4)) @ np.linalg.cholesky(d["B"]).T
    Y = z @ G.T + sig * jr.normal(jr.fold_in(key, 1), (n, 6))
    means = oi.posterior_mean_batch(Y)
    chi2 = np.mean(np.sum(((Y - means @ G.T) / sig) ** 2, axis=1))
    assert abs(chi2 / (6 - ds) - 1.0) < 0.05
    red = vx.reduced_chi2(problem, jnp.asarray(mu), ds)
    assert np.isfinite(float(red))


def test_log_parameter_map_and_student_t(x64):
    """A log-transformed emission: MAP lies in the support; Student-t runs with BFGS."""
    x = jnp.linspace(-3.0, 3.0, 15)
    model = ExpModel(x)
    true = {"Q": jnp.asarray(2.0), "x0": jnp.asarray(0.5)}
    y = model(true, MET).values + 0.01 * jnp.sin(7 * x)
    obs = pc.Observations(y, kind="generic", sigma=0.01)
    prior = pc.GaussianPrior.from_std(model.param_spec, jnp.asarray([0.0, 0.0]), 1.0)
    problem = vx.Problem(model, MET, obs, prior)
    post = vx.ThreeDVar().posterior(problem)
    ci = post.credible_interval(0.99)
    assert ci["Q"][0] < 2.0 < ci["Q"][1] and ci["x0"][0] < 0.5 < ci["x0"][1]
    assert float(post.sample_params(jr.key(0), 10)["Q"].min()) > 0
    pt = vx.Problem(model, MET, obs, prior, likelihood="student_t", df=4.0)
    post_t = vx.ThreeDVar(solver="bfgs").posterior(pt)
    np.testing.assert_allclose(post_t.mean, post.mean, atol=0.05)
    assert post_t.provenance["hessian"] == "exact"
    with pytest.raises(ValueError, match="Gaussian likelihood"):
        vx.ThreeDVar(solver="gauss_newton").posterior(pt)


def test_select_adapter():
    problem, *_ = linear_problem()
    assert isinstance(vx.select_adapter("ThreeDVar", problem), vx.LaplaceCovariance)


@pytest.mark.slow
def test_nuts_linear_gaussian(x64):
    problem, mu, P, _ = linear_problem(D=2, m=5, seed=7)
    post = vx.NUTSOracle(num_warmup=300, num_samples=1000, num_chains=2).posterior(
        problem, key=jr.key(0)
    )
    s = np.asarray(post.flat_samples())
    ess = np.asarray(post.provenance["ess"])
    sd = np.sqrt(np.diag(P))
    # mean within 4 Monte-Carlo standard errors; covariance entries within 15%
    assert np.all(np.abs(s.mean(0) - mu) < 4 * sd / np.sqrt(ess))
    np.testing.assert_allclose(np.cov(s.T), P, rtol=0.15, atol=0.15 * sd.min() ** 2)
    assert post.provenance["converged"] is True and max(post.provenance["rhat"]) < 1.05


def _far_bump_problem():
    """A narrow bump (width 1) whose true centre (4.5) is 4.5 widths from the prior mean:
    Gauss-Newton from the prior mean ends in a local mode near 0 with almost no mass."""
    x = jnp.linspace(-10.0, 10.0, 41)
    model = ExpModel(x)
    truth = {"Q": jnp.asarray(5.0), "x0": jnp.asarray(4.5)}
    noise = 0.1 * jr.normal(jr.key(3), x.shape)
    obs = pc.Observations(model(truth, MET).values + noise, kind="generic", sigma=0.1)
    prior = pc.GaussianPrior.from_std(
        model.param_spec, jnp.array([np.log(5.0), 0.0]), jnp.array([1.0, 3.0])
    )
    return vx.Problem(model, MET, obs, prior)


def test_nuts_multistart_escapes_a_local_mode():
    problem = _far_bump_problem()
    kw = dict(num_warmup=100, num_samples=100, num_chains=2)
    one = vx.NUTSOracle(n_starts=1, **kw).posterior(problem, key=jr.key(0))
    many = vx.NUTSOracle(n_starts=16, **kw).posterior(problem, key=jr.key(0))
    x0_one = float(one.param_spec.from_unconstrained(one.mean)["x0"])
    x0_many = float(many.param_spec.from_unconstrained(many.mean)["x0"])
    # one start: the chains begin in the local mode and never find the data's bump
    assert abs(x0_one - 4.5) > 2.0
    # sixteen starts: the chains start in the global mode
    assert abs(x0_many - 4.5) < 0.1
    assert many.provenance["map_best_start"] > 0
    assert many.provenance["map_gain_over_first_start"] > 100.0  # nats
    with pytest.raises(ValueError, match="n_starts"):
        vx.NUTSOracle(n_starts=0)
