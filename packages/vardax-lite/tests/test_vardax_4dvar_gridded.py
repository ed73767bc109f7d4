"""4D-Var of a gridded emission field: Kronecker B, run counts, structured posterior.

The toy is a periodic 2-D advection-diffusion model forced by an ``(n_windows, ny, nx)``
emission (:class:`vardax_models.AdvectionDiffusion2D`), with the separable Matern-3/2 x
exponential background of :func:`plumax_core.linalg.separable_matern32`.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from vardax_models import MET, Advection, LinearModel, gridded_emission_model

import plumax_core as pc
import vardax_lite as vx
from plumax_core import linalg
from vardax_lite._counting import CountingModel, counting, with_counting
from vardax_lite._var4d import _outer_step

NW, NY, NX = 2, 12, 12
LENGTH, TAU = 3.0, 2.0


def _matern32(r, ell):
    a = np.sqrt(3.0) * np.abs(r) / ell
    return (1.0 + a) * np.exp(-a)


def _dense_B(nw, ny, nx, sigma):
    """Cov[(t,i,j),(t',k,l)] = s^2 exp(-|t-t'|/tau) rho(|y_i-y_k|) rho(|x_j-x_l|), built
    element by element over C-order flat indices (independent of linalg)."""
    t, i, j = np.unravel_index(np.arange(nw * ny * nx), (nw, ny, nx))
    return (
        sigma**2
        * np.exp(-np.abs(t[:, None] - t[None, :]) / TAU)
        * _matern32(i[:, None] - i[None, :], LENGTH)
        * _matern32(j[:, None] - j[None, :], LENGTH)
    )


def _kron_B(nw, ny, nx, sigma):
    x, y, t = (jnp.arange(n, dtype=jnp.float64) for n in (nx, ny, nw))
    return linalg.separable_matern32(x, y, LENGTH, sigma, time=t, time_scale=TAU)


def _twin(log, sigma_b, sigma_o=0.3, grid=(NW, NY, NX), n_obs=9, steps_per_window=4):
    nw, ny, nx = grid
    model = gridded_emission_model(
        nw, ny, nx, steps_per_window=steps_per_window, n_obs=n_obs, log=log
    )
    D = nw * ny * nx
    B = _kron_B(nw, ny, nx, sigma_b)
    zb = jnp.full(D, 0.0 if log else 1.0)
    prior = pc.GaussianPrior(zb, B, model.param_spec)
    z_true = zb + linalg.cholesky(B).mv(jr.normal(jr.key(1), (D,), jnp.float64))
    y = model(model.param_spec.from_unconstrained(z_true), MET).values
    y = y + sigma_o * jr.normal(jr.key(2), y.shape, jnp.float64)
    obs = pc.Observations(y, kind="generic", sigma=sigma_o, dims=("time", "obs"))
    return vx.Problem(model, MET, obs, prior)


@pytest.fixture(scope="module")
def linear_twin():
    with jax.enable_x64(True):
        problem = _twin(log=False, sigma_b=0.5)
        inc = vx.IncrementalFourDVar().posterior(problem)
        strong = vx.StrongFourDVar().posterior(problem)
    # returned outside the context: a module fixture must not hold x64 on for the tests
    # that run while it is alive (they ask for the x64 fixture themselves)
    return problem, inc, strong


@pytest.fixture(scope="module")
def lognormal_twin():
    with jax.enable_x64(True):
        problem = _twin(log=True, sigma_b=0.3)
        inc = vx.IncrementalFourDVar(n_outer=20, outer_tol=1e-8).posterior(problem)
        strong = vx.StrongFourDVar().posterior(problem)
    # returned outside the context: a module fixture must not hold x64 on for the tests
    # that run while it is alive (they ask for the x64 fixture themselves)
    return problem, inc, strong


# -- the Kronecker background and the control-variable transform -----------------------


def test_kronecker_B_layout_and_control_transform(x64):
    nw, ny, nx, s = 2, 3, 4, 0.7
    B = _kron_B(nw, ny, nx, s)
    dense = _dense_B(nw, ny, nx, s)
    np.testing.assert_allclose(np.asarray(B.as_matrix()), dense, rtol=1e-12, atol=1e-14)
    # the emission Param flattens row-major (time slowest, then y, then x): the same
    # order as B's rows
    model = gridded_emission_model(nw, ny, nx, steps_per_window=1, n_obs=3)
    E = jr.normal(jr.key(0), (nw, ny, nx), jnp.float64)
    flat = model.param_spec.flatten({"emission": E})
    np.testing.assert_array_equal(np.asarray(flat), np.asarray(E).reshape(-1))
    k = np.ravel_multi_index((1, 2, 0), (nw, ny, nx))
    assert np.asarray(flat)[k] == float(E[1, 2, 0])
    # a wrong (x-slowest) order is detected: the check above can fail
    assert not np.allclose(_dense_B(nw, nx, ny, s), dense)
    # chi = L^-1 (z - z_b) with the Kronecker Cholesky factor equals the dense one
    zb = jnp.linspace(0.1, 0.9, nw * ny * nx)
    prior = pc.GaussianPrior(zb, B, model.param_spec)
    obs = pc.Observations(jnp.zeros((nw, 3)), kind="generic", sigma=1.0, dims=("time", "obs"))
    problem = vx.Problem(model, MET, obs, prior)
    assert isinstance(problem.prior_sqrt, linalg.Kronecker)
    z = jr.normal(jr.key(1), (nw * ny * nx,), jnp.float64)
    chi_dense = np.linalg.solve(np.linalg.cholesky(dense), np.asarray(z - zb))
    chi, back = eqx.filter_jit(lambda p, z: (p.to_control(z), p.from_control(p.to_control(z))))(
        problem, z
    )
    np.testing.assert_allclose(np.asarray(chi), chi_dense, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(back), z)


# -- never dense: inspect the traced programs at D = 64 * 64 * 4 -----------------------


def _largest(jaxpr) -> int:
    """The most elements of any variable or constant anywhere in a (closed) jaxpr."""
    size = lambda v: int(np.prod(getattr(getattr(v, "aval", v), "shape", ()), dtype=np.int64))
    if hasattr(jaxpr, "consts"):  # ClosedJaxpr
        return max([_largest(jaxpr.jaxpr)] + [size(c) for c in jaxpr.consts])
    out = max([0] + [size(v) for v in (*jaxpr.invars, *jaxpr.constvars, *jaxpr.outvars)])
    for eqn in jaxpr.eqns:
        out = max([out] + [size(v) for v in eqn.outvars])
        for p in eqn.params.values():
            for sub in p if isinstance(p, list | tuple) else (p,):
                if hasattr(sub, "eqns") or hasattr(sub, "consts"):
                    out = max(out, _largest(sub))
    return out


def test_large_control_is_never_dense(x64):
    nw, ny, nx = 4, 64, 64
    D = nw * ny * nx
    limit = D * D // 4
    problem = _twin(log=True, sigma_b=0.5, grid=(nw, ny, nx), n_obs=50, steps_per_window=2)
    assert vx.select_adapter("StrongFourDVar", problem) == vx.GaussNewtonHessian(n_krylov=100)
    chi = jnp.zeros(D)
    z = problem.z_b

    def std_and_dofs(c):
        out = vx.GaussNewtonHessian(n_krylov=8)(problem, c)
        post = pc.Posterior(
            problem.from_control(c), out.cov, provenance=_PROV, param_spec=problem.param_spec
        )
        maps = vx.posterior_std_maps(post)
        return maps["emission"], vx.dfs(out.cov, problem.B)

    traced = {
        "cost": jax.make_jaxpr(problem.cost)(chi),
        "gradient": jax.make_jaxpr(jax.grad(problem.cost))(chi),
        "control transform": jax.make_jaxpr(problem.to_control)(z),
        "incremental outer loop": jax.make_jaxpr(
            lambda c: _outer_step(with_counting(problem), c, 1e-12, 1e-12, 5)
        )(chi),
        "std maps and DOFS": jax.make_jaxpr(std_and_dofs)(chi),
    }
    for name, jaxpr in traced.items():
        assert _largest(jaxpr) < limit, name
    maps_shape = jax.eval_shape(std_and_dofs, chi)[0].shape
    assert maps_shape == (nw, ny, nx)
    # the inspection sees a dense B (the test can fail)
    assert _largest(jax.make_jaxpr(lambda c: problem.B.as_matrix() @ c)(chi)) >= D * D


_PROV = pc.make_provenance(n_iter=0, J_star=None, converged=None)


# -- the counting wrapper: exact counts under every transformation ---------------------


def test_counting_model_counts_exactly(x64):
    rng = np.random.default_rng(0)
    D, m = 3, 5
    spec = pc.ParamSpec(tuple(pc.Param(f"a{i}") for i in range(D)))
    G = jnp.asarray(rng.normal(size=(m, D)))
    base = LinearModel(G, spec)
    model = CountingModel(base)
    assert model.model_id == base.model_id and model.param_spec is spec
    f = pc.forward_flat(model, MET)
    z = jnp.asarray(rng.normal(size=D))
    w = jnp.asarray(rng.normal(size=m))
    f(z)  # outside `counting()` nothing is counted (and nothing fails)

    def runs(fn):
        with counting() as tally:
            jax.block_until_ready(fn())
        return tally["model"], tally["tangent_linear"], tally["adjoint"]

    assert runs(lambda: f(z)) == (1, 0, 0)
    assert runs(lambda: jax.jit(f)(z)) == (1, 0, 0)
    assert runs(lambda: jax.jvp(f, (z,), (z,))) == (1, 1, 0)

    def linearize_three():
        y, lin = jax.linearize(f, z)
        lt = jax.linear_transpose(lin, z)
        return [lin(z) for _ in range(3)] + [lt(w) for _ in range(2)]

    assert runs(linearize_three) == (1, 3, 2)

    def vjp_two():
        y, back = jax.vjp(f, z)
        return [back(w) for _ in range(2)]

    assert runs(vjp_two) == (1, 0, 2)
    assert runs(lambda: jax.jit(jax.grad(lambda q: jnp.sum(f(q) ** 2)))(z)) == (1, 0, 1)
    descent = lambda q: jax.lax.fori_loop(
        0, 7, lambda i, c: c - 1e-3 * jax.grad(lambda p: jnp.sum(f(p) ** 2))(c), q
    )
    assert runs(lambda: jax.jit(descent)(z)) == (7, 0, 7)
    assert runs(lambda: jax.jacfwd(f)(z)) == (1, D, 0)
    assert runs(lambda: jax.jacrev(f)(z)) == (1, 0, m)
    # derivatives are unchanged by the wrapper
    np.testing.assert_allclose(jax.jacfwd(f)(z), G, rtol=1e-14)
    np.testing.assert_allclose(jax.jacrev(f)(z), G, rtol=1e-14)
    # a checkpointed time loop (recomputed in the backward pass) is one run, not two
    N = 6
    spec_t = pc.ParamSpec((pc.Param("x0", shape=(N,)),))
    adv = CountingModel(Advection(spec_t, n_steps=5, c=0.5))
    g = pc.forward_flat(adv, MET)
    x0 = jnp.linspace(0.0, 1.0, N)
    assert runs(lambda: jax.grad(lambda q: jnp.sum(g(q) ** 2))(x0)) == (1, 0, 1)


@pytest.mark.parametrize(
    "twin", ["linear_twin", pytest.param("lognormal_twin", marks=pytest.mark.slow)]
)
def test_incremental_counts_match_its_algorithm(twin, request, x64):
    inc = request.getfixturevalue(twin)[1]
    p = inc.provenance
    n_outer, k = p["n_iter"], p["n_krylov"]
    # per outer loop its linearisation; then the final cost and the adapter's
    # linearisation
    assert p["n_model_runs"] == n_outer + 2
    # lineax CG: one product for the initial residual, one per step and a fresh
    # residual every 10 steps; the adapter's Lanczos: k products with G
    steps = p["n_inner_per_outer"]
    assert len(steps) == n_outer and sum(steps) == p["n_inner_total"]
    cg = sum(1 + s + s // 10 for s in steps)
    assert p["n_tangent_linear_runs"] == cg + k
    # G^T per CG product, one per gradient, k in Lanczos and one for its start vector
    assert p["n_adjoint_runs"] == cg + n_outer + k + 1


# -- the twin --------------------------------------------------------------------------


def test_linear_twin_matches_closed_form(linear_twin, x64):
    problem, inc, strong = linear_twin
    D = problem.dim
    assert D == NW * NY * NX > 200
    for post in (inc, strong):
        assert post.provenance["adapter"] == "GaussNewtonHessian"
        assert isinstance(post.cov, linalg.LowRankUpdate)
    # closed form, dense, in numpy, from the model's Jacobian by jacfwd
    H = np.asarray(eqx.filter_jit(lambda p: jax.jacfwd(p.predict)(p.z_b))(problem))
    Bd = _dense_B(NW, NY, NX, 0.5)
    Ri = 1.0 / 0.3**2
    zb, y = np.asarray(problem.z_b), np.asarray(problem.y)
    np.testing.assert_allclose(np.asarray(problem.predict(problem.z_b)), H @ zb, atol=1e-10)
    P = np.linalg.inv(np.linalg.inv(Bd) + Ri * H.T @ H)
    mu = zb + P @ (Ri * H.T @ (y - H @ zb))
    std = np.sqrt(np.diag(P))
    scale = np.max(np.abs(mu))
    for post in (inc, strong):
        assert np.max(np.abs(np.asarray(post.mean) - mu)) <= 1e-6 * scale
        maps = vx.posterior_std_maps(post)
        assert maps["emission"].shape == (NW, NY, NX)
        np.testing.assert_allclose(np.asarray(maps["emission"]).ravel(), std, rtol=1e-3)
    assert np.max(np.abs(np.asarray(inc.mean - strong.mean))) <= 1e-6 * scale
    np.testing.assert_allclose(inc.std(), strong.std(), rtol=1e-3)
    # DOFS: structured trace == closed-form tr(I - P B^-1) == sum lambda / (1 + lambda)
    dofs_dense = D - np.trace(np.linalg.solve(Bd, P))
    lam = np.asarray(inc.provenance["hessian_eigenvalues"])
    np.testing.assert_allclose(float(vx.dfs(inc.cov, problem.B)), dofs_dense, rtol=1e-6)
    np.testing.assert_allclose(np.sum(lam / (1 + lam)), dofs_dense, rtol=1e-6)
    # the strong (L-BFGS) run counts: one model run per iteration, the final cost and the
    # adapter's linearisation; Lanczos is the only tangent-linear user
    p = strong.provenance
    assert p["n_model_runs"] == p["n_iter"] + 2
    assert p["n_tangent_linear_runs"] == p["n_krylov"]
    # on a linear model one Gauss-Newton step is the MAP: the incremental analysis
    # needs (n_outer = 2) + 2 full-model runs, L-BFGS one per iteration
    assert inc.provenance["n_iter"] == 2 and inc.provenance["n_model_runs"] == 4
    assert 10 * inc.provenance["n_model_runs"] < p["n_model_runs"]


@pytest.mark.slow
def test_lognormal_twin_incremental_needs_fewer_model_runs(lognormal_twin, x64):
    problem, inc, strong = lognormal_twin
    assert inc.provenance["converged"] and strong.provenance["converged"]
    z_inc, z_strong = np.asarray(inc.mean), np.asarray(strong.mean)
    assert np.max(np.abs(z_inc - z_strong)) <= 1e-6 * np.max(np.abs(z_inc))
    # the same MAP: the gradient of J vanishes there (an independent stationarity check)
    g = eqx.filter_jit(lambda p, z: vx.cost_gradient(p, p.to_control(z)))(problem, inc.mean)
    assert float(jnp.linalg.norm(g)) <= 1e-6
    n_inc, n_strong = inc.provenance["n_model_runs"], strong.provenance["n_model_runs"]
    assert n_inc == inc.provenance["n_iter"] + 2
    assert 3 * n_inc < n_strong, (n_inc, n_strong)
    np.testing.assert_allclose(inc.std(), strong.std(), rtol=1e-3)


@pytest.mark.parametrize(
    "twin", ["linear_twin", pytest.param("lognormal_twin", marks=pytest.mark.slow)]
)
def test_adjoint_dot_product_on_the_twin(twin, request, x64):
    problem = request.getfixturevalue(twin)[0]
    chi = 0.3 * jr.normal(jr.key(5), (problem.dim,), jnp.float64)
    gate = vx.adjoint_test(problem, chi, key=jr.key(6))
    assert gate.passed and gate.statistic <= 1e-10, gate
