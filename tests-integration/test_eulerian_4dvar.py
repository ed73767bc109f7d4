r"""Twin 4D-Var on the Tier III Eulerian model (EulerianFV): a gridded emission with a few
hotspots, observed as columns at several times, is recovered within its posterior where
the data constrain it; incremental and strong 4D-Var agree; the adjoint holds.

**The twin.** A 16 x 16 grid of 500 m cells with 5 levels (0-1200 m), a steady uniform
wind of 3 m/s from the west (towards +x), Monin-Obukhov ``K_z`` in a slightly unstable
boundary layer (``L = -500`` m, ``h = 1000`` m), open sides (the plume leaves at the east
face), the linear first-order ``scheme="upwind"``, float64. The emission has
``n_windows = 2`` (steps 0-1 and 2-3), ``D = 2 x 16 x 16 = 512`` parameters. The run has
``K = 4`` steps of 600 s; after each one a 5 x 5 block of column pixels (ppm m, the cells
``x`` index 5-9, ``y`` index 5-9, the grid centres) is observed, ``m = 4 x 25 = 100``
observations with 5 ppm m Gaussian noise. The prior is ``N(x_b, B)``, ``x_b`` a smooth
background (2e-8 kg m-2 s-1 +- 30 %), ``B`` the separable Matérn-3/2 in space (length
750 m, sigma 1e-7) times an exponential in the window index (scale 2 windows): a
:class:`plumax_core.linalg.Kronecker`, never dense. The truth is the background plus
three Gaussian hotspots of 2-3e-7 kg m-2 s-1 (500 m wide): one upwind of the observed
block, one inside it, one downwind of it (never observed: its plume leaves the domain
without crossing an observed pixel).

``IncrementalFourDVar`` picks the matrix-free ``GaussNewtonHessian`` adapter itself
(``D = 512 > 200``) with ``n_krylov = min(D, m, 100) = 100 = m``: the rank of the data
Jacobian is at most ``m``, so the low-rank posterior is exact here (no truncation).

**Bug found and worked around** (reported; see
``test_model_tangent_wrt_neutral_met_is_finite``): at a neutral met (``stability="D"``,
``1/L = 0``) the tangent of EulerianFV with respect to the met's arrays is NaN even for a
zero met tangent, and vardax-lite's ``CountingModel`` (``_counting.py``) differentiates
the met (its ``custom_jvp`` passes the met arrays as primals with instantiated zero
tangents), so ``IncrementalFourDVar.posterior`` fails with "``cov`` must be finite" (a
NaN Lanczos basis). The twin therefore gives a finite Obukhov length.

Measured (2 cores, CPU): DOFS 54.0 of m = 100; 134 constrained cells (variance
reduction > 0.5), all |z| < 2, mean z -0.02, median sd_post/sd_prior 0.39; one outer loop
equals the converged MAP to 1e-11; 8 truths: 68 % / 95 % coverage 0.685 / 0.950 (bands
0.620-0.739 / 0.917-0.975), whitened chi2 1066 of 1072; noise stated 3x too small: 0.432 /
0.738, chi2 5402 of 1200 (rejected); 40 truths (slow): 0.677 / 0.953, chi2 5332 of 5360;
wind 30 % slow: 0.409 / 0.699, chi2 148660 of 5840 (rejected); adjoint 3.6e-17.
Every threshold is explained where it is asserted.
"""

from __future__ import annotations

import dataclasses
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import lineax as lx
import numpy as np
import pytest
import scipy.stats as st

import plumax_core as pc
import vardax_lite as vx
from plumax_core import MetField, linalg
from plumax_core.linalg import separable_matern32
from plumax_transport import ColumnImage, EulerianFV, FVGrid

# one worker builds the twin (module-scoped fixtures) for every test of it
pytestmark = pytest.mark.xdist_group("eulerian_4dvar_twin")

N = 16  # cells per side
DX = 500.0  # m
CENTRES = DX * (np.arange(N) + 0.5)
Z_EDGES = np.array([0.0, 50.0, 150.0, 350.0, 700.0, 1200.0])
NW, K, STEP = 2, 4, 600.0  # emission windows, model steps (observation times), s per step
OBS = np.arange(5, 10)  # observed pixel indices, in x and in y (a 5 x 5 block)
SPEED = 3.0  # m/s, from the west
NOISE = 5.0  # ppm m
SIGMA_B = 1e-7  # kg m-2 s-1, prior standard deviation
LENGTH = 750.0  # m, Matérn-3/2 length of the prior
TAU = 2.0  # windows, temporal correlation scale of the prior
D = NW * N * N
THRESHOLD = 0.5  # variance reduction 1 - sd_post^2 / sd_prior^2 of a "constrained" cell
P_BAND = 0.001  # two-sided tail of every statistical gate
REPLICATES = 8  # simulated truths of the default coverage test (40 in the slow one)
N_INNER = 300  # CG iterations per outer loop (see test_one_outer_loop_is_exact)


def _met(speed: float = SPEED) -> MetField:
    return MetField.uniform(speed, 270.0, stability=None, obukhov_length=-500.0, pblh=1000.0)


def _model(
    speed: float = SPEED,
    *,
    scheme: str = "upwind",
    grid=None,
    geometry=None,
    n_windows: int = NW,
    n_steps: int = K,
    log_emission: bool = False,
) -> EulerianFV:
    grid = FVGrid(CENTRES, CENTRES, Z_EDGES) if grid is None else grid
    geometry = (
        ColumnImage(CENTRES[OBS], CENTRES[OBS], units="ppm_m") if geometry is None else geometry
    )
    kw = dict(
        duration=n_steps * STEP,
        n_steps=n_steps,
        source="gridded",
        n_windows=n_windows,
        scheme=scheme,
        log_emission=log_emission,
    )
    # the met is an array leaf of the Problem, traced under the analyses' jit: the
    # substeps must then be given; take the model's own plan for the concrete met
    plan = EulerianFV(geometry, grid, **kw).prepare(_met(speed)).plan
    return EulerianFV(geometry, grid, max_substeps=plan.n_substeps, **kw)


def _background() -> np.ndarray:
    X, Y = np.meshgrid(CENTRES, CENTRES)
    bg = 2e-8 * (1.0 + 0.3 * np.sin(X / 2500.0) * np.cos(Y / 3000.0))
    return np.stack([bg] * NW)


HOTSPOTS = (  # peak (kg m-2 s-1), x, y (m): upwind of, inside and downwind of the block
    (3e-7, 1250.0, 3750.0),
    (2e-7, 3750.0, 2750.0),
    (3e-7, 6750.0, 5250.0),
)


def _truth() -> np.ndarray:
    X, Y = np.meshgrid(CENTRES, CENTRES)
    hot = sum(
        a * np.exp(-((X - x0) ** 2 + (Y - y0) ** 2) / (2 * 500.0**2)) for a, x0, y0 in HOTSPOTS
    )
    return _background() + np.stack([hot, 0.8 * hot])  # the hotspots weaken by 20 %


def _B():
    return separable_matern32(
        jnp.asarray(CENTRES),
        jnp.asarray(CENTRES),
        LENGTH,
        SIGMA_B,
        time=jnp.arange(NW, dtype=jnp.float64),
        time_scale=TAU,
    )


def _problem(model, y, noise=NOISE, zb=None, B=None, speed=SPEED):
    B = _B() if B is None else B
    zb = jnp.asarray(_background().ravel()) if zb is None else zb
    prior = pc.GaussianPrior(zb, B, model.param_spec)
    obs = pc.Observations(jnp.asarray(y), kind="column_ppm_m", sigma=noise, dims=("time", "y", "x"))
    return vx.Problem(model, _met(speed), obs, prior)


@dataclasses.dataclass
class Twin:
    model: EulerianFV
    problem: vx.Problem
    truth: np.ndarray  # (NW, N, N)
    post: object  # IncrementalFourDVar posterior (default settings but N_INNER)
    sd: np.ndarray  # (NW, N, N) posterior std
    reduction: np.ndarray  # (NW, N, N) 1 - sd^2 / sd_prior^2
    dofs: float
    seconds: float


@pytest.fixture(scope="module")
def twin():
    with jax.enable_x64(True):
        model = _model()
        truth = _truth()
        clean = model({"emission": jnp.asarray(truth)}, _met())
        assert clean.values.shape == (K, OBS.size, OBS.size)
        assert clean.dims == ("time", "y", "x") and clean.kind == "column_ppm_m"
        y = clean.values + NOISE * jr.normal(jr.key(0), clean.values.shape, jnp.float64)
        problem = _problem(model, y)
        t0 = time.perf_counter()
        post = vx.IncrementalFourDVar(n_inner=N_INNER).posterior(problem)
        seconds = time.perf_counter() - t0
        sd = np.asarray(vx.posterior_std_maps(post)["emission"])
        reduction = 1.0 - sd**2 / SIGMA_B**2
        dofs = float(vx.dfs(post.cov, problem.B))
    # returned outside the context: a module fixture must not hold x64 on for the tests
    # that run while it is alive (they ask for the x64 fixture themselves)
    return Twin(model, problem, truth, post, sd, reduction, dofs, seconds)


# -- 1. the twin ----------------------------------------------------------------------


def test_twin_recovers_the_hotspots_where_constrained(x64, twin):
    """Constrained cells (variance reduction > 0.5, i.e. sd_post < 0.71 sd_prior): the
    normalised errors (truth - mean)/sd_post look N(0,1) and the posterior is much
    tighter than the prior; the DOFS lie between 1 and m; cells downwind of the observed
    block (their emission leaves the domain unseen) keep the prior."""
    p = twin.post.provenance
    print(
        f"\nIncremental 4D-Var: {twin.seconds:.1f} s, provenance "
        f"{ {k: v for k, v in p.items() if k != 'hessian_eigenvalues'} }"
    )
    assert p["adapter"] == "GaussNewtonHessian" and p["n_krylov"] == 100  # chosen: D > 200
    assert isinstance(twin.post.cov, linalg.LowRankUpdate)
    assert p["converged"]
    # the averaging-kernel diagonal of P = B + U C U^T is 1 - diag(P B^-1); the variance
    # reduction 1 - P_ii/B_ii is its "local DOFS" proxy (equal for a diagonal B); both
    # are reported, the gate uses the variance reduction (independent of B^-1)
    A_diag = np.diag(np.asarray(vx.averaging_kernel(twin.post.cov, twin.problem.B)))
    assert abs(A_diag.sum() - twin.dofs) < 1e-8 * twin.dofs  # tr A = dfs, two routes
    m = twin.problem.n_obs
    print(f"DOFS {twin.dofs:.1f} of m = {m}; max A_ii {A_diag.max():.2f}")
    # (b) informative (a few tens of DOFS) yet short of resolving all m observations
    assert 1.0 < twin.dofs < m
    mean = np.asarray(twin.post.mean).reshape(NW, N, N)
    z = (twin.truth - mean) / twin.sd
    c = twin.reduction > THRESHOLD
    frac2 = float(np.mean(np.abs(z[c]) < 2.0))
    ratio = float(np.median(twin.sd[c] / SIGMA_B))
    print(
        f"constrained cells {c.sum()}; |z|<2 {frac2:.3f}; mean z {z[c].mean():+.3f}; "
        f"median sd_post/sd_prior {ratio:.2f}"
    )
    # (a) enough constrained cells to judge (the 5 x 5 block and its upwind fetch, both
    # windows; measured 110)
    assert c.sum() >= 50
    # >= 0.9 within 2 sd: N(0,1) gives 0.954; the errors of neighbouring cells are
    # correlated (effective sample far below 110), so allow a few points of slack
    assert frac2 >= 0.9
    # the mean z of ~110 correlated N(0,1) with ~10-20 effective: sd ~0.3, so 0.5 is a
    # loose bias gate (a hotspot missed by the analysis would give |mean z| >> 1)
    assert abs(float(z[c].mean())) < 0.5
    # the data shrink the spread in the constrained cells by at least a factor 2
    # (median; measured ~0.4 upwind, ~0.17 in the observed block)
    assert ratio < 0.5
    # the hotspots upwind of and inside the block are seen: the analysis moves the mean
    # at their peaks more than halfway from the prior to the truth
    for _, x0, y0 in HOTSPOTS[:2]:
        j, i = int(y0 // DX), int(x0 // DX)
        gain = (mean[0, j, i] - _background()[0, j, i]) / (
            twin.truth[0, j, i] - _background()[0, j, i]
        )
        assert gain > 0.5, (x0, y0, gain)
    # (c) cells at least 4 cells (2.7 lengths) downwind of the block never influence an
    # observation and are 2.7 prior lengths from any that do: their sd stays the
    # prior's to 1 % (prior correlation 0.04 at that range) and their mean stays at x_b
    far = np.zeros((NW, N, N), bool)
    far[:, :, OBS[-1] + 4 :] = True
    assert np.all(twin.sd[far] > 0.99 * SIGMA_B), twin.sd[far].min() / SIGMA_B
    incr = np.abs(mean - _background())[far]
    assert np.max(incr) < 0.1 * SIGMA_B
    # ... so the downwind hotspot (x = 6750 m, 4 cells past the block) is not recovered
    # and sits ~3 prior sd above the analysis: the test can tell seen from unseen
    j, i = int(HOTSPOTS[2][2] // DX), int(HOTSPOTS[2][1] // DX)
    assert z[0, j, i] > 2.0


def test_one_outer_loop_is_exact(x64, twin):
    """The upwind model is linear in the emission: the first Gauss-Newton step (CG with
    N_INNER iterations) is the MAP, and the second outer loop moves chi by < 1e-6 of its
    norm; one outer loop gives the same mean (used for the coverage replicates)."""
    p = twin.post.provenance
    assert p["n_iter"] == 2, p["n_inner_per_outer"]  # the 2nd loop only confirms
    one = vx.IncrementalFourDVar(
        n_outer=1, n_inner=N_INNER, adapter=FixedCovariance(twin.post.cov)
    ).posterior(twin.problem)
    assert one.provenance["n_model_runs"] == 2  # the linearisation and the final cost
    mu1, mu = np.asarray(one.mean), np.asarray(twin.post.mean)
    rel = np.max(np.abs(mu1 - mu)) / np.max(np.abs(mu - np.asarray(twin.problem.z_b)))
    print(f"\none outer loop vs converged: rel. diff of the increment {rel:.2e}")
    # CG to 1e-12 on a linear problem: agreement far below the posterior spread (which is
    # ~0.2 of the increment's scale); 1e-6 leaves room for CG's rounding
    assert rel < 1e-6
    # the model is affine: M(a + b) = M(a) + M(b) - M(0) to rounding (the claim checked)
    f = eqx.filter_jit(lambda e: twin.model({"emission": e}, _met()).values)
    a, b = jnp.asarray(twin.truth), jnp.asarray(_background())
    lhs, rhs = f(a + b), f(a) + f(b) - f(jnp.zeros_like(a))
    assert float(jnp.max(jnp.abs(lhs - rhs))) < 1e-10 * float(jnp.max(jnp.abs(lhs)))


# -- 2. coverage over simulated truths ------------------------------------------------


class FixedCovariance(vx.AbstractPosteriorAdapter):
    """An adapter returning a covariance computed once: for a linear model the posterior
    covariance does not depend on the data, so the replicates reuse the twin's exact
    low-rank one instead of rebuilding it (an eager Lanczos, ~5 s each)."""

    cov: lx.AbstractLinearOperator

    def __call__(self, problem, chi_map, *, key=None):
        return vx.AdapterOutput(self.cov, None, {"adapter": "FixedCovariance"})


def _posterior_block(cov, idx) -> np.ndarray:
    E = jnp.zeros((idx.size, D)).at[jnp.arange(idx.size), jnp.asarray(idx)].set(1.0)
    rows = np.asarray(jax.vmap(cov.mv)(E))
    P = rows[:, idx]
    return 0.5 * (P + P.T)


def _coverage_bands(P, replicates, levels, n_sim=4000):
    """``{level: (lo, hi)}``: the ``P_BAND`` / ``1 - P_BAND`` quantiles of the pooled
    coverage of the central ``level`` interval when each replicate's errors are N(0, P)
    (the cells' correlation included), from ``n_sim`` simulated experiments."""
    rng = np.random.default_rng(7)
    Lc = np.linalg.cholesky(P)
    sd = np.sqrt(np.diag(P))
    z = np.abs(rng.standard_normal((n_sim, replicates, P.shape[0])) @ Lc.T / sd)
    out = {}
    for level in levels:
        frac = np.mean(z < st.norm.ppf(0.5 + level / 2), axis=(1, 2))
        assert abs(frac.mean() - level) < 0.01  # the simulation itself is right
        out[level] = tuple(float(q) for q in np.quantile(frac, [P_BAND, 1 - P_BAND]))
    return out


def _replicates(model, replicates, seed):
    """Truths drawn from the prior, simulated with ``model`` and noised."""
    B = _B()
    Lb = linalg.cholesky(B)
    keys = jr.split(jr.key(seed), 2 * replicates)
    zb = jnp.asarray(_background().ravel())
    truths = np.stack(
        [np.asarray(zb + Lb.mv(jr.normal(keys[r], (D,), jnp.float64))) for r in range(replicates)]
    )
    f = eqx.filter_jit(lambda e: model({"emission": e}, _met()).values)
    ys = np.stack(
        [
            np.asarray(
                f(jnp.asarray(t.reshape(NW, N, N)))
                + NOISE * jr.normal(keys[replicates + r], (K, OBS.size, OBS.size))
            )
            for r, t in enumerate(truths)
        ]
    )
    return truths, ys


def _coverage(problem, cov, truths, ys):
    """Invert every replicate (one outer loop: exact for the linear model; the cheapest
    adapter, the covariance ``cov`` being the same for every replicate of a linear
    model) and judge the errors in the constrained cells of ``cov``."""
    inc = vx.IncrementalFourDVar(n_outer=1, n_inner=N_INNER, adapter=FixedCovariance(cov))
    means = []
    for y in ys:
        p = problem.with_data(y=jnp.asarray(y.ravel()))
        means.append(np.asarray(inc.posterior(p).mean))
    means = np.stack(means)
    sd = np.sqrt(np.asarray(lx.diagonal(cov)))
    idx = np.flatnonzero(1.0 - sd**2 / SIGMA_B**2 > THRESHOLD)
    err = truths - means
    z = err[:, idx] / sd[idx]
    P = _posterior_block(cov, idx)
    np.testing.assert_allclose(np.diag(P), sd[idx] ** 2, rtol=1e-8)
    w = np.linalg.solve(np.linalg.cholesky(P), err[:, idx].T)  # N(0, I) under the model
    chi2 = float(np.sum(w**2))
    R = len(ys)
    out = dict(n=idx.size, chi2=chi2, dof=R * idx.size, cdf=float(st.chi2.cdf(chi2, R * idx.size)))
    bands = _coverage_bands(P, R, (0.68, 0.95))
    for level in (0.68, 0.95):
        out[level] = float(np.mean(np.abs(z) < st.norm.ppf(0.5 + level / 2)))
        out[f"band{level}"] = bands[level]
    return out


def _coverage_run(twin, replicates, seed, wrong):
    """The correct model's and a wrong model's statistics over the same simulated truths;
    ``wrong`` = "noise" (stated 3x too small) or "wind" (inverted in a wind 30 % slow)."""
    t0 = time.perf_counter()
    truths, ys = _replicates(twin.model, replicates, seed=seed)
    good = _coverage(twin.problem, twin.post.cov, truths, ys)
    y0 = twin.problem.y.reshape(K, OBS.size, OBS.size)
    if wrong == "noise":
        bad_problem = _problem(twin.model, y0, noise=NOISE / 3)
    else:
        bad_problem = _problem(_model(0.7 * SPEED), y0, speed=0.7 * SPEED)
    # the wrong model's own posterior covariance (exact low rank, n_krylov = m)
    bad_cov = vx.GaussNewtonHessian(n_krylov=100)(bad_problem, jnp.zeros(D)).cov
    bad = _coverage(bad_problem, bad_cov, truths, ys)
    return good, bad, time.perf_counter() - t0


@pytest.fixture(scope="module")
def coverage(twin):
    with jax.enable_x64(True):
        return _coverage_run(twin, REPLICATES, seed=11, wrong="noise")


def _report(name, d):
    print(
        f"\n{name}: {d['n']} constrained cells; 68 % coverage {d[0.68]:.3f} "
        f"(band {d['band0.68'][0]:.3f}-{d['band0.68'][1]:.3f}); 95 % {d[0.95]:.3f} "
        f"(band {d['band0.95'][0]:.3f}-{d['band0.95'][1]:.3f}); whitened chi2 "
        f"{d['chi2']:.0f} of {d['dof']} (cdf {d['cdf']:.3f})"
    )


def test_coverage_over_simulated_truths(x64, coverage):
    """Truths drawn from the prior (so truth - mean ~ N(0, P) exactly for this linear
    Gaussian twin): the pooled 68 % and 95 % coverage in the constrained cells lies in
    its 0.1-99.9 % band, simulated from the posterior block P of those cells (so their
    correlation, which makes the effective sample far smaller than cells x truths, is
    in the band); the whitened error sum_r e_r^T P^-1 e_r is chi-square with
    R x n_cells dof (a per-truth statistic that needs no effective sample size)."""
    good, _, seconds = coverage
    _report("correct model", good)
    print(f"coverage fixture {seconds:.1f} s")
    assert good["n"] >= 50
    for level in (0.68, 0.95):
        lo, hi = good[f"band{level}"]
        assert lo <= good[level] <= hi, (level, good)
    assert P_BAND < good["cdf"] < 1 - P_BAND, good


def test_a_wrong_noise_fails_the_coverage_check(x64, coverage):
    """The same truths inverted with the noise stated 3x too small: the posterior is
    overconfident, the coverage falls below its band and the chi-square explodes."""
    good, wrong, _ = coverage
    _report("noise stated 3x too small", wrong)
    assert wrong["n"] >= good["n"]  # it believes it constrains at least as much
    _assert_rejected(wrong)


def _assert_rejected(wrong):
    # the same gates the correct model passes: coverage below its band (either level)
    # and the whitened chi-square beyond its 99.9 % point
    assert wrong[0.68] < wrong["band0.68"][0] or wrong[0.95] < wrong["band0.95"][0], wrong
    assert wrong["cdf"] > 1 - P_BAND, wrong


@pytest.mark.slow
def test_coverage_over_many_truths_and_a_slow_wind_fails(x64, twin):
    """40 truths; the wrong model is the transport itself: the inversion's EulerianFV
    runs in a wind 30 % slower than the truth's (so it attributes the columns to the
    wrong upwind cells and overestimates the fetch's residence time)."""
    good, wrong, seconds = _coverage_run(twin, 40, seed=12, wrong="wind")
    _report("correct model (40 truths)", good)
    _report("wind 30 % too slow", wrong)
    print(f"slow coverage {seconds:.1f} s")
    for level in (0.68, 0.95):
        lo, hi = good[f"band{level}"]
        assert lo <= good[level] <= hi, (level, good)
    assert P_BAND < good["cdf"] < 1 - P_BAND, good
    _assert_rejected(wrong)


# -- 4. the adjoint through the whole problem -----------------------------------------


def test_adjoint_dot_product_at_the_map(x64, twin):
    """<G u, w> = <u, G^T w> through prior whitening, the time loop and the columns, at
    the twin's MAP, to 1e-10 (float64 rounding of a few hundred thousand operations is
    ~1e-13; a wrong adjoint gives O(1))."""
    chi = twin.problem.to_control(twin.post.mean)
    gate = vx.adjoint_test(twin.problem, chi, key=jr.key(5))
    print(f"\nadjoint dot-product statistic {gate.statistic:.2e}")
    assert gate.passed and gate.statistic <= 1e-10, gate


# -- 3. incremental vs strong 4D-Var on a small nonlinear problem ----------------------


def _small_lognormal_problem():
    """8 x 8 cells, 3 levels, one window, K = 3 steps, every column observed (m = 192),
    a lognormal emission (``log_emission=True``: the control is log-flux, so the model is
    nonlinear in it though the upwind transport is linear). D = 64 <= 200: the adapter
    is the Laplace covariance at the last linearisation (strong: at the MAP)."""
    n = 8
    c = DX * (np.arange(n) + 0.5)
    grid = FVGrid(c, c, np.array([0.0, 50.0, 150.0, 400.0]))
    geo = ColumnImage(c, c, units="ppm_m")
    model = _model(grid=grid, geometry=geo, n_windows=1, n_steps=3, log_emission=True)
    X, Y = np.meshgrid(c, c)
    bg = 2e-8 * (1.0 + 0.3 * np.sin(X / 1500.0))
    hot = 6e-8 * np.exp(-((X - 1250.0) ** 2 + (Y - 2250.0) ** 2) / (2 * 500.0**2))
    truth = (bg + hot)[None]
    y = model({"emission": jnp.asarray(truth)}, _met()).values
    y = y + 2.0 * jr.normal(jr.key(3), y.shape, jnp.float64)
    # a lognormal prior: log-flux ~ N(log bg, 0.5^2 Matern); the hotspot is a factor
    # up to 4 above the background, 2.8 prior sd in log space: a nonlinear update
    B = separable_matern32(jnp.asarray(c), jnp.asarray(c), LENGTH, 0.5)
    return _problem(model, y, noise=2.0, zb=jnp.asarray(np.log(bg).ravel()), B=B)


@pytest.mark.slow
def test_incremental_and_strong_agree_and_incremental_runs_the_model_less(x64):
    """A model nonlinear in the control (lognormal emission): incremental 4D-Var
    (Gauss-Newton outer loops, CG inner) and strong 4D-Var (L-BFGS on the full cost, one
    model run per cost-and-gradient) reach the same MAP and the same posterior spread;
    the incremental one needs fewer full model runs (the provenance counts).

    Not with the "limited" scheme: its flux and positivity limiters are piecewise
    smooth in the state, so each relinearisation is a different linear model and the
    Gauss-Newton outer loop oscillates (measured: 20 outer loops without convergence,
    the MAP 1.2 % off L-BFGS's; Thuburn & Haine 2001, J. Comput. Phys. 171:616, on the
    adjoints of limited advection schemes)."""
    problem = _small_lognormal_problem()
    assert problem.forward_model.log_emission
    t0 = time.perf_counter()
    inc = vx.IncrementalFourDVar(n_outer=20, n_inner=N_INNER, outer_tol=1e-9).posterior(problem)
    t1 = time.perf_counter()
    strong = vx.StrongFourDVar().posterior(problem)
    t2 = time.perf_counter()
    pi, ps = inc.provenance, strong.provenance
    print(
        f"\nincremental: {t1 - t0:.1f} s, {pi['n_iter']} outer loops, "
        f"{pi['n_model_runs']} model runs, {pi['n_tangent_linear_runs']} TL, "
        f"{pi['n_adjoint_runs']} adjoint; strong (L-BFGS): {t2 - t1:.1f} s, "
        f"{ps['n_iter']} iterations, {ps['n_model_runs']} model runs, "
        f"{ps['n_adjoint_runs']} adjoint"
    )
    assert pi["converged"] and ps["converged"]
    # the model really is nonlinear here: Gauss-Newton needs more than the one step
    # (plus a confirming one) of a linear model
    assert pi["n_iter"] > 2, pi["n_inner_per_outer"]
    zi, zs, zb = (np.asarray(a) for a in (inc.mean, strong.mean, problem.z_b))
    rel = np.max(np.abs(zi - zs)) / np.max(np.abs(zi - zb))
    print(f"MAP agreement (relative to the increment) {rel:.2e}")
    # both solvers stop at 1e-9-1e-10 tolerances on chi ~ O(1-10): 1e-5 of the
    # increment is far above their residual and far below the posterior spread
    assert rel < 1e-5
    np.testing.assert_allclose(
        np.asarray(vx.posterior_std_maps(inc)["emission"]),
        np.asarray(vx.posterior_std_maps(strong)["emission"]),
        rtol=1e-4,  # Laplace covariances at points 1e-5 apart (a nonlinear model)
    )
    # one model run per outer loop + the final cost + the adapter's linearisation
    assert pi["n_model_runs"] == pi["n_iter"] + 2
    assert pi["n_model_runs"] < ps["n_model_runs"], (pi["n_model_runs"], ps["n_model_runs"])


# -- the neutral-met tangent (bug) -----------------------------------------------------


def test_model_tangent_wrt_neutral_met_is_finite(x64):
    c = DX * (np.arange(4) + 0.5)
    grid = FVGrid(c, c, np.array([0.0, 50.0, 150.0]))
    geo = ColumnImage(c, c, units="ppm_m")
    met = MetField.uniform(SPEED, 270.0, stability="D", pblh=1000.0)
    # planned: the met is traced (a JVP tracer) inside the derivative
    model = EulerianFV(geo, grid, duration=600.0, source="gridded", scheme="upwind").planned(met)
    params = {"emission": jnp.full((1, 4, 4), 2e-8)}
    dyn, static = eqx.partition(met, eqx.is_inexact_array)
    f = lambda d: model(params, eqx.combine(d, static)).values  # noqa: E731
    zero = jax.tree_util.tree_map(jnp.zeros_like, dyn)
    _, tangent = jax.jvp(f, (dyn,), (zero,))
    assert np.all(np.isfinite(np.asarray(tangent)))  # a zero tangent must give zero
