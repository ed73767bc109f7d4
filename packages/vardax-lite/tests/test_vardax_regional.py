"""Regional (analytic) flux inversion: a sparse footprint, a Matérn Kronecker prior.

The reference is the closed-form analytic inversion as the Integrated Methane Inversion
computes it (Varon et al. 2022, GMD 15:5787; Rodgers 2000, eqs. 4.5 and 2.80), written
here independently in NumPy on the dense information form:

    S_hat = (Kᵀ S_o⁻¹ K + S_a⁻¹)⁻¹,  x_hat = x_a + S_hat Kᵀ S_o⁻¹ (y - K x_a),
    A = I - S_hat S_a⁻¹,  DOFS = tr A,

with `S_a` assembled by `np.kron` from a hand-written Matérn-3/2 kernel. vardax-lite's
`OptimalInterpolation` must agree in float64 to 1e-8 (relative to the largest entry).

The lognormal prior (z = log q, y = K exp(z) + b) runs through the existing
`Problem` + `ThreeDVar` machinery with a test-local forward model.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.random as jr
import lineax as lx
import numpy as np
import pytest
import scipy.sparse as sps
from vardax_models import MET

import plumax_core as pc
import vardax_lite as vx
from plumax_core import linalg

RTOL = 1e-8


def _rel(actual, expected):
    """max |a - e| / max |e|: the relative error on the scale of the quantity."""
    expected = np.asarray(expected)
    return float(np.max(np.abs(np.asarray(actual) - expected)) / np.max(np.abs(expected)))


def _matern32_dense(coords, length):
    d = np.abs(coords[:, None] - coords[None, :])
    r = np.sqrt(3.0) * d / length
    return (1.0 + r) * np.exp(-r)


def _compact_footprint(rng, ny, nx, m, half=3):
    """Receptors at random cells, each seeing a (2 half + 1)² window around it."""
    rows, cols, vals = [], [], []
    for i in range(m):
        iy, ix = rng.integers(half, ny - half), rng.integers(half, nx - half)
        dy, dx = np.meshgrid(np.arange(-half, half + 1), np.arange(-half, half + 1))
        rows += [i] * dy.size
        cols += list(((iy + dy) * nx + ix + dx).ravel())
        vals += list(np.exp(-np.hypot(dy, dx).ravel() / 2.0) * rng.uniform(0.5, 1.0, dy.size))
    return sps.csr_matrix((vals, (rows, cols)), shape=(m, ny * nx))


def _twin(seed, ny, nx, m, *, density=0.05, k_scale=0.1, length=8.0, dense_prior=True):
    """A positive sparse footprint, a scaled Matérn prior and synthetic data.

    ``density=None``: compact footprints (``_compact_footprint``); else uniformly random
    positions with that density.
    """
    rng = np.random.default_rng(seed)
    D = ny * nx
    if density is None:
        K = _compact_footprint(rng, ny, nx, m)
    else:
        K = sps.random(
            m,
            D,
            density=density,
            random_state=rng,
            data_rvs=lambda n: rng.uniform(0.1 * k_scale, k_scale, n),
            format="csr",
        )
    x, y = 4.0 * np.arange(nx), 4.0 * np.arange(ny)
    sigma = rng.uniform(0.5, 2.0, (ny, nx))  # e.g. proportional to a prior inventory
    Sa = linalg.separable_matern32(x, y, length, sigma)
    So = rng.uniform(0.5, 1.5, m)  # diagonal observation-error variances
    xa = rng.uniform(1.0, 2.0, D)
    case = dict(K=K, Sa=Sa, So=So, xa=xa, sigma=sigma, D=D, m=m)
    if dense_prior:
        s = sigma.reshape(-1)
        Sa_dense = s[:, None] * np.kron(_matern32_dense(y, length), _matern32_dense(x, length))
        Sa_dense *= s[None, :]
        truth = xa + np.linalg.cholesky(Sa_dense) @ rng.standard_normal(D)
        case.update(Sa_dense=Sa_dense, truth=truth)
    else:  # draw the truth through the structured factor (no dense prior on a big grid)
        truth = xa + np.asarray(linalg.cholesky(Sa).mv(jnp.asarray(rng.standard_normal(D))))
        case.update(truth=truth)
    case["y"] = K @ truth + np.sqrt(So) * rng.standard_normal(m)
    return case


def _imi_reference(K, Sa, So, xa, y):
    """The IMI analytic inversion on the information form (dense NumPy)."""
    Kd = K.toarray() if sps.issparse(K) else np.asarray(K)
    Soi = np.diag(1.0 / So)
    Sa_inv = np.linalg.inv(Sa)
    S_hat = np.linalg.inv(Kd.T @ Soi @ Kd + Sa_inv)
    x_hat = xa + S_hat @ Kd.T @ Soi @ (y - Kd @ xa)
    A = np.eye(len(xa)) - S_hat @ Sa_inv
    return x_hat, S_hat, A


@pytest.fixture(scope="module")
def twin():
    with jax.enable_x64(True):
        case = _twin(0, 30, 30, 150)
        case["ref"] = _imi_reference(case["K"], case["Sa_dense"], case["So"], case["xa"], case["y"])
    return case


@pytest.mark.parametrize(
    "covariance",
    # the dense path is the pre-existing one (covered by test_vardax_linear.py as well)
    ["operator", pytest.param("dense", marks=pytest.mark.slow)],
)
def test_regional_oi_matches_imi_closed_form(x64, twin, covariance):
    x_hat, S_hat, A_ref = twin["ref"]
    R = lx.DiagonalLinearOperator(jnp.asarray(twin["So"]))
    oi = vx.OptimalInterpolation(
        twin["K"], R, twin["Sa"], twin["xa"], covariance=covariance
    )  # a scipy.sparse footprint is wrapped as a SparseMatrix
    assert isinstance(oi.H, linalg.SparseMatrix)
    post = oi.posterior(twin["y"])
    expected_type = linalg.LowRankUpdate if covariance == "operator" else lx.MatrixLinearOperator
    assert isinstance(post.cov, expected_type)
    assert post.provenance["covariance"] == covariance
    assert _rel(post.mean, x_hat) < RTOL
    assert _rel(post.variance(), np.diag(S_hat)) < RTOL
    assert _rel(oi.posterior_std() ** 2, np.diag(S_hat)) < RTOL
    for j in (0, 17, 451, 899):  # full columns of the posterior covariance
        e = jnp.zeros(twin["D"]).at[j].set(1.0)
        assert _rel(post.cov.mv(e), S_hat[:, j]) < RTOL
    A = oi.averaging_kernel()
    assert isinstance(A, linalg.LowRankUpdate)  # rank m, held as 0 + K H
    assert _rel(A.as_matrix(), A_ref) < RTOL
    assert _rel(lx.diagonal(A), np.diag(A_ref)) < RTOL
    assert _rel(vx.averaging_kernel(post, twin["Sa"]), A_ref) < RTOL
    dofs_ref = np.trace(A_ref)
    assert 5.0 < dofs_ref < 0.5 * twin["m"]
    for dofs in (oi.dfs(), vx.dfs(post, twin["Sa"]), vx.dfs(post.cov, twin["Sa"])):
        assert abs(float(dofs) - dofs_ref) < RTOL * dofs_ref


@pytest.mark.slow
def test_regional_oi_mask_and_batch(x64, twin):
    """Masked receptors equal dropping them from K and S_o; batched means are per-y means."""
    mask = np.ones(twin["m"], bool)
    mask[::7] = False
    keep = np.flatnonzero(mask)
    y = twin["y"].copy()
    y[~mask] = np.nan
    R = lx.DiagonalLinearOperator(jnp.asarray(twin["So"]))
    oi = vx.OptimalInterpolation(
        linalg.SparseMatrix(twin["K"]), R, twin["Sa"], twin["xa"], covariance="operator"
    )
    post = oi.posterior(y, mask=mask)
    x_hat, S_hat, A_ref = _imi_reference(
        twin["K"][keep], twin["Sa_dense"], twin["So"][keep], twin["xa"], twin["y"][keep]
    )
    assert _rel(post.mean, x_hat) < RTOL
    assert _rel(post.std() ** 2, np.diag(S_hat)) < RTOL
    assert abs(float(oi.dfs(mask)) - np.trace(A_ref)) < RTOL * np.trace(A_ref)
    Y = np.stack([twin["y"], twin["y"] + 1.0])
    batch = oi.posterior_mean_batch(Y)
    assert _rel(batch[0], oi.posterior(twin["y"]).mean) < 1e-12
    assert _rel(batch[1], oi.posterior(Y[1]).mean) < 1e-12


def test_wrong_observation_error_fails(x64, twin):
    """S_o scaled by 100: the posterior misses the reference, and the chi-square says so."""
    x_hat, S_hat, _ = twin["ref"]
    K, y = twin["K"], twin["y"]

    def fit(So):
        oi = vx.OptimalInterpolation(
            K, lx.DiagonalLinearOperator(jnp.asarray(So)), twin["Sa"], twin["xa"]
        )
        post = oi.posterior(y)
        dofs = float(oi.dfs())
        r = y - K @ np.asarray(post.mean)
        # E[(y - K x_hat)ᵀ S_o⁻¹ (y - K x_hat)] = m - DOFS (Desroziers et al. 2005)
        return post, np.sum(r**2 / So) / (twin["m"] - dofs)

    good, chi2_good = fit(twin["So"])
    bad, chi2_bad = fit(100.0 * twin["So"])
    assert _rel(good.mean, x_hat) < RTOL
    assert _rel(bad.mean, x_hat) > 1e3 * RTOL
    assert _rel(bad.variance(), np.diag(S_hat)) > 1e3 * RTOL
    assert 0.6 < chi2_good < 1.5
    assert chi2_bad < 0.1


def test_information_form_diagnostics(x64):
    """m >= D: the dense information form gives the same std, averaging kernel and DOFS."""
    case = _twin(2, 3, 4, 30, density=0.5, k_scale=1.0)
    x_hat, S_hat, A_ref = _imi_reference(
        case["K"], case["Sa_dense"], case["So"], case["xa"], case["y"]
    )
    R = lx.DiagonalLinearOperator(jnp.asarray(case["So"]))
    oi = vx.OptimalInterpolation(case["K"], R, case["Sa"], case["xa"])
    post = oi.posterior(case["y"])
    assert post.provenance["covariance"] == "dense"
    assert _rel(post.mean, x_hat) < RTOL
    assert _rel(post.cov.as_matrix(), S_hat) < RTOL
    assert _rel(oi.posterior_std() ** 2, np.diag(S_hat)) < RTOL
    A = oi.averaging_kernel()
    assert isinstance(A, lx.MatrixLinearOperator) and _rel(A.as_matrix(), A_ref) < RTOL
    assert abs(float(oi.dfs()) - np.trace(A_ref)) < RTOL * np.trace(A_ref)
    with pytest.raises(ValueError, match="`covariance` must be one of"):
        vx.OptimalInterpolation(case["K"], R, case["Sa"], case["xa"], covariance="lazy")
    with pytest.raises(ValueError, match="`mask` must have shape"):
        oi.dfs(np.ones(3, bool))


def _refuse_dense(self):
    raise AssertionError(f"{type(self).__name__}.as_matrix() was called: a D x D matrix")


def test_operator_path_never_materialises(x64, monkeypatch):
    """A 100 × 100 grid (10⁴ cells), 200 receptors: no D × D matrix is ever formed."""
    case = _twin(1, 100, 100, 200, density=None, dense_prior=False)
    assert case["K"].nnz / case["D"] / case["m"] < 0.01  # > 99% zeros
    # Any materialisation of the prior (hence of P* = B + U C Uᵀ) now raises.
    monkeypatch.setattr(linalg.Kronecker, "as_matrix", _refuse_dense)
    monkeypatch.setattr(linalg.DiagonalScaled, "as_matrix", _refuse_dense)
    with pytest.raises(AssertionError, match="D x D"):
        case["Sa"].as_matrix()
    R = lx.DiagonalLinearOperator(jnp.asarray(case["So"]))
    oi = vx.OptimalInterpolation(linalg.SparseMatrix(case["K"]), R, case["Sa"], case["xa"])
    post = oi.posterior(case["y"])  # covariance="auto": D > 2000 and m < D
    assert post.provenance["covariance"] == "operator"
    assert isinstance(post.cov, linalg.LowRankUpdate) and post.cov.base is case["Sa"]
    assert post.cov.U.shape == (10_000, 200)
    std = np.asarray(post.std())
    prior_std = case["sigma"].reshape(-1)
    assert np.all(np.isfinite(std)) and np.all(std > 0)
    assert np.all(std <= prior_std * (1 + 1e-12))
    assert np.min(std / prior_std) < 0.9  # the data constrain some cells
    np.testing.assert_allclose(oi.posterior_std(), std, rtol=1e-12)
    for j in (0, 5_050, 9_999):  # the operator's diagonal is its own mv
        e = jnp.zeros(10_000).at[j].set(1.0)
        np.testing.assert_allclose(post.cov.mv(e)[j], std[j] ** 2, rtol=1e-10)
    A = oi.averaging_kernel()
    dofs = float(oi.dfs())
    np.testing.assert_allclose(float(jnp.sum(lx.diagonal(A))), dofs, rtol=1e-10)
    assert 0.0 < dofs < 200.0
    # the posterior mean is closer to the truth than the prior where the data constrain
    constrained = std < 0.7 * prior_std
    err_post = np.abs(np.asarray(post.mean) - case["truth"])[constrained]
    err_prior = np.abs(case["xa"] - case["truth"])[constrained]
    assert constrained.sum() > 20 and np.mean(err_post) < np.mean(err_prior)


#
# Lognormal flux prior through Problem + ThreeDVar.
#


class FootprintFlux(pc.AbstractForwardModel):
    """``y = K q + b`` with ``q`` the flux on an ``(ny, nx)`` grid (C order), ``K`` sparse."""

    K: linalg.SparseMatrix
    background: jax.Array
    param_spec: pc.ParamSpec

    def __call__(self, params, met):
        q = params["flux"].reshape(-1)
        return pc.Observations(self.K.mv(q) + self.background, kind="xch4_ppb")


def _lognormal_case(sigma_log, seed=3, ny=8, nx=8, m=40):
    rng = np.random.default_rng(seed)
    D = ny * nx
    # footprint in ppb per (kg m-2 s-1); fluxes ~ 5e-10 kg m-2 s-1 give a few ppb
    K = sps.random(
        m, D, density=0.3, random_state=rng, data_rvs=lambda n: rng.uniform(1e8, 1e9, n)
    ).tocsr()
    spec = pc.ParamSpec(
        (pc.Param("flux", shape=(ny, nx), units="kg m-2 s-1", lower=0.0, log=True),)
    )
    q_a = 5e-10 * rng.uniform(0.5, 2.0, (ny, nx))
    mu = np.log(q_a).reshape(-1)
    x, y = 10.0 * np.arange(nx), 10.0 * np.arange(ny)
    # per-cell log-space standard deviations: B = D^(1/2) (C_y ⊗ C_x) D^(1/2)
    s = sigma_log * rng.uniform(0.7, 1.3, (ny, nx))
    B = linalg.separable_matern32(x, y, 20.0, s)
    assert isinstance(B, linalg.DiagonalScaled)
    s = s.reshape(-1)
    B_dense = s[:, None] * np.kron(_matern32_dense(y, 20.0), _matern32_dense(x, 20.0))
    B_dense *= s[None, :]
    z_true = mu + np.linalg.cholesky(B_dense) @ rng.standard_normal(D)
    background = np.full(m, 1850.0)
    sigma_obs = 1.0
    y_obs = K @ np.exp(z_true) + background + sigma_obs * rng.standard_normal(m)
    model = FootprintFlux(linalg.SparseMatrix(K), jnp.asarray(background), spec)
    prior = pc.GaussianPrior(jnp.asarray(mu), B, spec)
    obs = pc.Observations(jnp.asarray(y_obs), kind="xch4_ppb", sigma=sigma_obs)
    problem = vx.Problem(model, MET, obs, prior)
    return dict(
        problem=problem,
        K=K.toarray(),
        B=B,
        B_dense=B_dense,
        mu=mu,
        q_a=q_a.reshape(-1),
        z_true=z_true,
        y=y_obs,
        background=background,
        sigma_obs=sigma_obs,
    )


def _gaussian_linearised_at_prior(case):
    """The Gaussian analytic solution of y ≈ K q_a + b + K diag(q_a) (z - mu)."""
    H = case["K"] * case["q_a"][None, :]
    offset = case["K"] @ case["q_a"] + case["background"] - H @ case["mu"]
    R = lx.DiagonalLinearOperator(jnp.full(len(case["y"]), case["sigma_obs"] ** 2))
    oi = vx.OptimalInterpolation(H, R, case["B"], case["mu"], offset=offset)
    return np.asarray(oi.posterior(case["y"]).mean)


@pytest.mark.slow  # the default run covers it on FootprintForward (tests-integration)
def test_lognormal_prior_threedvar(x64):
    case = _lognormal_case(0.5)
    problem = case["problem"]
    post = vx.ThreeDVar().posterior(problem)
    assert post.provenance["converged"] is True
    z_map = np.asarray(post.mean)
    # the MAP is stationary: the gradient of the log posterior (analytic, in NumPy)
    # -B⁻¹(z - mu) + Jᵀ R⁻¹ (y - b - K exp z), J = K diag(exp z), vanishes there
    B_inv = np.linalg.inv(case["B_dense"])

    def grad(z):
        resid = case["y"] - case["background"] - case["K"] @ np.exp(z)
        J = case["K"] * np.exp(z)[None, :]
        return -B_inv @ (z - case["mu"]) + J.T @ resid / case["sigma_obs"] ** 2

    assert np.linalg.norm(grad(z_map)) < 1e-6 * np.linalg.norm(grad(case["mu"]))
    # the Gauss-Newton covariance at the MAP, densely: J = K diag(exp z*) (analytic)
    J = case["K"] * np.exp(z_map)[None, :]
    P_ref = np.linalg.inv(J.T @ J / case["sigma_obs"] ** 2 + B_inv)
    assert _rel(post.cov.as_matrix(), P_ref) < RTOL
    # recovery: the truth lies within the posterior where the data constrain the flux
    std = np.sqrt(np.diag(P_ref))
    constrained = std < 0.7 * np.sqrt(np.diag(case["B_dense"]))
    assert constrained.sum() >= 10
    score = (case["z_true"] - z_map) / std
    assert np.max(np.abs(score[constrained])) < 3.5
    lo, hi = post.credible_interval(0.999)["flux"]
    q_true = np.exp(case["z_true"]).reshape(8, 8)
    inside = (np.asarray(lo) < q_true) & (q_true < np.asarray(hi))
    assert np.all(inside.reshape(-1)[constrained])
    assert np.all(np.asarray(lo) > 0)
    # a wide lognormal prior is not the Gaussian solution linearised at the prior ...
    z_lin = _gaussian_linearised_at_prior(case)
    assert np.linalg.norm(z_map - z_lin) > 0.1 * np.linalg.norm(z_lin - case["mu"])


def test_lognormal_small_sigma_is_linear_gaussian(x64):
    """... but a narrow one approaches it (the nonlinearity is O(sigma))."""
    case = _lognormal_case(0.02)
    post = vx.ThreeDVar().posterior(case["problem"])
    z_map = np.asarray(post.mean)
    z_lin = _gaussian_linearised_at_prior(case)
    assert np.linalg.norm(z_map - z_lin) < 0.02 * np.linalg.norm(z_lin - case["mu"])


def test_check_spd_reads_structured_priors_through_their_parts(monkeypatch):
    """A Kronecker (or D A D) prior is checked factor by factor, never as one matrix,
    and a factor that is not SPD is still caught."""
    from vardax_lite._problem import check_spd

    x = np.linspace(0.0, 49e3, 50)
    good = linalg.separable_matern32(x, x, 5e3, np.full((50, 50), 2.0))

    def refuse(self):
        raise AssertionError("the 2500 x 2500 product was materialised")

    monkeypatch.setattr(linalg.Kronecker, "as_matrix", refuse)
    monkeypatch.setattr(linalg.DiagonalScaled, "as_matrix", refuse)
    check_spd(good, "B")
    bad_factor = lx.MatrixLinearOperator(jnp.array([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(ValueError, match=r"B \(Kronecker factor 1\).*not symmetric positive"):
        check_spd(linalg.Kronecker(lx.MatrixLinearOperator(jnp.eye(2)), bad_factor), "B")
    zero_scale = linalg.DiagonalScaled(lx.MatrixLinearOperator(jnp.eye(2)), jnp.array([1.0, 0.0]))
    with pytest.raises(ValueError, match="zero or non-finite scale"):
        check_spd(zero_scale, "B")


def test_float32_cancellation_names_the_remedy():
    """A strongly constrained problem in float32: P = B - B H^T S^-1 H B cancels, and the
    error says to run the analysis in float64 (rather than a bare covariance check)."""
    rng = np.random.default_rng(1)
    B = linalg.separable_matern32(np.arange(20.0), np.arange(15.0), 3.0, 1.0)
    H = rng.uniform(0, 1, (250, 300)) * (rng.uniform(size=(250, 300)) < 0.1)
    oi = vx.OptimalInterpolation(
        jnp.asarray(H, jnp.float32),
        np.eye(250, dtype=np.float32) * 1e-4,
        B,
        np.zeros(300, np.float32),
        covariance="operator",
    )
    y = np.asarray(H @ rng.normal(size=300), np.float32)
    with pytest.raises(ValueError, match="float32.*run this analysis in float64"):
        oi.posterior(y)


def _pinned_case(dtype, R=1e-8):
    """40 cells, 39 sparse receptors nearly noise-free: the data pin most of the state,
    and the gain-form variance diag(B) - rowsum(B Hᵀ * K) cancels to a few 1e-7."""
    rng = np.random.default_rng(0)
    H = rng.uniform(size=(39, 40)) * (rng.uniform(size=(39, 40)) < 0.2)
    B = linalg.separable_matern32(np.arange(8.0), np.arange(5.0), 3.0, 1.0)
    oi = vx.OptimalInterpolation(
        jnp.asarray(H, dtype), np.eye(39, dtype=dtype) * R, B, np.zeros(40, dtype)
    )
    return oi, H, B


def test_posterior_std_float32_cancellation_raises():
    """float32 loses the variance (sqrt would be NaN): an error naming float64, and NaN
    (not a clamped 0) under jit; float64 gives the reference stds."""
    import equinox as eqx

    oi, H, B = _pinned_case(np.float32)
    with pytest.raises(
        ValueError, match="posterior_std.*float32.*beyond round-off.*run this analysis in float64"
    ):
        oi.posterior_std()
    traced = np.asarray(eqx.filter_jit(lambda o: o.posterior_std())(oi))
    assert np.any(np.isnan(traced))
    with jax.enable_x64(True):
        oi, H, B = _pinned_case(np.float64)
        std = np.asarray(oi.posterior_std())
        P = np.linalg.inv(np.linalg.inv(np.asarray(B.as_matrix())) + H.T @ H / 1e-8)
    assert std.dtype == np.float64 and np.all(np.isfinite(std)) and np.all(std > 0)
    assert np.max(np.abs(std**2 - np.diag(P)) / np.diag(P)) < 1e-5


def test_posterior_std_clamps_round_off_in_float32():
    """Cells observed exactly (unit rows of H, R ≈ 0) have true variance ≈ R; in float32
    the difference is a few ulps of either sign and reads as 0, not NaN and no error."""
    rng = np.random.default_rng(0)
    B = linalg.separable_matern32(np.arange(20.0), np.arange(15.0), 3.0, 1.0)
    idx = rng.choice(300, 50, replace=False)
    H = np.zeros((50, 300), np.float32)
    H[np.arange(50), idx] = 1.0
    oi = vx.OptimalInterpolation(
        jnp.asarray(H), np.eye(50, dtype=np.float32) * 1e-9, B, np.zeros(300, np.float32)
    )
    # the raw gain-form variance does go negative here (the case being covered)
    Hd, R = oi._rows(None)
    BHt, cf = oi._gain(Hd, R)
    K = jax.scipy.linalg.cho_solve(cf, BHt.T).T
    assert np.min(np.asarray(lx.diagonal(oi.B) - jnp.sum(BHt * K, axis=1))) < 0
    std = np.asarray(oi.posterior_std())
    assert std.dtype == np.float32 and np.all(np.isfinite(std))
    assert np.max(std[idx]) < 1e-2  # pinned cells: ~0 at float32 resolution
    free = np.setdiff1d(np.arange(300), idx)
    assert np.all(std[free] > 0) and np.all(std[free] <= 1.0 + 1e-6)


def test_diagnostics_fast_path_for_an_equal_but_distinct_prior(x64, monkeypatch):
    """A B rebuilt from the same inputs, or P* returned by jit, still reads P* = B + U C Uᵀ
    through its update terms: the D x D fallback is never taken."""
    import equinox as eqx

    rng = np.random.default_rng(4)
    H = rng.uniform(size=(12, 30)) * (rng.uniform(size=(12, 30)) < 0.3)
    make_B = lambda: linalg.separable_matern32(np.arange(6.0), np.arange(5.0), 2.0, 1.5)
    oi = vx.OptimalInterpolation(H, np.eye(12) * 0.1, make_B(), np.zeros(30), covariance="operator")
    y = rng.normal(size=12)
    post = oi.posterior(y)
    dfs_ref = float(oi.dfs())
    A_ref = np.asarray(oi.averaging_kernel().as_matrix())
    _, cov_jit = eqx.filter_jit(lambda o: o.analysis_operator(y))(oi)
    B_rebuilt = make_B()
    assert B_rebuilt is not oi.B and cov_jit.base is not oi.B
    for cls in (linalg.Kronecker, linalg.DiagonalScaled, linalg.LowRankUpdate):
        monkeypatch.setattr(cls, "as_matrix", _refuse_dense)
    for cov, B in ((post, B_rebuilt), (post.cov, B_rebuilt), (cov_jit, oi.B)):
        assert abs(float(vx.dfs(cov, B)) - dfs_ref) < 1e-10 * dfs_ref
        assert _rel(vx.averaging_kernel(cov, B), A_ref) < 1e-10
    # a different prior is not mistaken for P*'s base (it takes the general path)
    other = linalg.separable_matern32(np.arange(6.0), np.arange(5.0), 2.0, 1.0)
    with pytest.raises(AssertionError, match="D x D"):
        vx.dfs(post, other)


def test_check_spd_accepts_traced_operators():
    """Under jit nothing can be read, so check_spd checks nothing (and does not crash)."""
    from vardax_lite._problem import check_spd

    def check(a, d, s):
        check_spd(lx.MatrixLinearOperator(a), "B")
        check_spd(lx.DiagonalLinearOperator(d), "R")
        check_spd(linalg.DiagonalScaled(lx.MatrixLinearOperator(a), s), "B")
        check_spd(linalg.Kronecker(lx.MatrixLinearOperator(a), lx.MatrixLinearOperator(a)), "B")
        return jnp.sum(a)

    a, d = jnp.array([[2.0, 0.5], [0.5, 1.0]]), jnp.ones(2)
    assert float(jax.jit(check)(a, d, d)) == 4.0
    with pytest.raises(ValueError, match="zero or non-finite scale"):  # concrete: checked
        check(a, d, jnp.array([1.0, 0.0]))
    # a traced scale over a concrete, indefinite A: A is still checked
    indefinite = lx.MatrixLinearOperator(jnp.array([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(ValueError, match="not symmetric positive definite"):
        jax.jit(lambda s: check_spd(linalg.DiagonalScaled(indefinite, s), "B") or s)(d)


def test_posterior_samples_have_the_posterior_moments(x64):
    """The perturbed-observation draws have mean z* and covariance P* (the dense closed
    form), within Monte Carlo error; a draw whose update misses the K e term (the
    prior-only spread through I - K H) would be too narrow and fails the same check."""
    rng = np.random.default_rng(4)
    B = linalg.separable_matern32(np.arange(8.0), np.arange(6.0), 2.0, 1.5)
    H = rng.uniform(0, 1, (20, 48)) * (rng.uniform(size=(20, 48)) < 0.3)
    R = np.eye(20) * 0.3
    oi = vx.OptimalInterpolation(H, R, B, np.zeros(48), covariance="operator")
    y = H @ rng.normal(size=48) + rng.normal(0, 0.3**0.5, 20)
    mean, P = oi.analysis(y)
    n = 40_000
    draws = np.asarray(oi.posterior_samples(y, key=jr.key(1), n=n))
    assert draws.shape == (n, 48)
    sd = np.sqrt(np.diag(np.asarray(P)))
    z = (draws.mean(0) - np.asarray(mean)) / (sd / np.sqrt(n))
    assert np.max(np.abs(z)) < 4.5
    emp = np.cov(draws, rowvar=False)
    # the standard error of a sample covariance entry is ~ sqrt((P_ii P_jj + P_ij^2)/n)
    se = np.sqrt((np.outer(sd**2, sd**2) + np.asarray(P) ** 2) / n)
    assert np.max(np.abs(emp - np.asarray(P)) / se) < 5.0
    # without K e the covariance is (I - KH) B (I - KH)^T, too small: the check sees it
    Bd = np.asarray(B.as_matrix())
    K = Bd @ H.T @ np.linalg.inv(H @ Bd @ H.T + R)
    narrow = (np.eye(48) - K @ H) @ Bd @ (np.eye(48) - K @ H).T
    assert np.max(np.abs(narrow - np.asarray(P)) / se) > 5.0
    with pytest.raises(ValueError, match="`n`"):
        oi.posterior_samples(y, key=jr.key(1), n=0)
