r"""Twin regional flux inversion (issue #21, Tier II): a few hundred column soundings
over a 50 x 50 flux grid recover the true fluxes within the posterior where the data
constrain them.

**The twin.** A 50 km x 50 km region of 1 km cells under a slowly turning wind (2-3 m/s,
veering from 240 to 306 degrees over 11 h, boundary layer 1000 m). 500 column receptors
in XCH4 (ppb), as satellite soundings: 100 per overpass at five times between 4 h and
10 h, uniform over the domain. Their footprints come from
:func:`plumax_transport.backward_footprints` (3 h backward, 64 particles per column,
``dt`` = 60 s, the largest step :func:`plumax_transport.time_step` accepts for the
homogeneous turbulence used here; ``dt`` is also checked against the advective limit of
the 1 km cells). The prior flux ``x_a`` (the "inventory") is a smooth background (5e-9
kg m-2 s-1 +- 50 %) plus six hotspots (peaks 0.5-1e-6 kg m-2 s-1, 2-3 km wide); the
prior covariance is the separable Matérn-3/2 (length 1 km) with a 50 % per-cell
standard deviation, held as a Kronecker operator (never dense in the inversion). The
noise is 2 ppb. The magnitudes are those of a strongly emitting region: 500 soundings
carry at most 500 degrees of freedom over 2500 cells, and a weaker flux (or noisier
data) leaves almost no cell individually constrained.

**Why the truth is drawn from the prior.** The posterior intervals are calibrated over
the joint distribution of truth and noise: ``x_true - x_hat ~ N(0, P)`` exactly when
``x_true ~ N(x_a, B)`` and ``y = F x_true + e``, whatever ``y``. A hand-drawn truth
outside the prior's family would test the choice of prior, not the inversion. So each
of 8 replicates draws ``x_true = x_a + diag(s) (L ⊗ L) xi`` (``L`` the Cholesky factor
of a hand-written 1-D Matérn-3/2 matrix, in NumPy, independent of
``plumax_core.linalg``) and its own noise; the truth is the inventory's background and
hotspots plus a correlated departure of 50 %.

**The checks** (numbers measured with the default configuration, 2 cores):

(a) ``OptimalInterpolation(covariance="operator")`` equals the IMI closed form
    ``x_hat = x_a + (K^T S_o^-1 K + S_a^-1)^-1 K^T S_o^-1 (y - K x_a)`` computed densely
    in NumPy (float64): mean increment, marginal variances and the total's variance to
    1e-8 (measured 2e-12, 6e-13 and 7e-12); the same OI with the noise variance 2 %
    off misses it by 2e-3, so the gate can fail.
(b) The DOFS equal the trace of the dense averaging kernel ``I - S_hat S_a^-1`` (measured
    DOFS 193 from 500 soundings; the kernel's diagonal to 1e-13).
(c) In the cells with averaging-kernel diagonal > 0.5 (57 cells), over the 8
    replicates: the fraction of ``|x_hat - x_true| / sigma_post < 1.645`` lies in the
    0.1 %-99.9 % band of its distribution under the correct model (measured 0.917, band
    0.849-0.945), a band simulated from the posterior covariance of those cells, so that
    their spatial correlation is accounted for (here it is close to the binomial band,
    0.854-0.946: the errors of the constrained cells are only weakly correlated);
    the whitened error ``sum_r e_r^T P_CC^-1 e_r`` is chi-square with ``8 x 57``
    degrees of freedom (measured 395 of 456, cdf 0.02); the posterior error there is
    less than 0.6 of the prior error (measured 0.41); and the observation-space
    chi-square ``r^T R^-1 r / (m - DOFS)`` is 1 (Desroziers et al. 2005; measured 0.97).
(d) Wrong models fail the same checks, each judged by its own posterior: footprints
    computed in a wind 30 degrees off (same particles and key; coverage 0.10 in its 65
    constrained cells, observation chi-square 410, whitened chi-square 2.4e5 of 520)
    and the noise claimed 10 times too small (0.2 ppb; coverage 0.53 in 147 cells,
    chi-square 62 and 1.6e4 of 1176).
(e) The posterior total emission ``sum q A`` (variance ``1^T P 1`` through the
    operator) covers the true total (150-190 kg/s) in every replicate (``|z| < 3.29``,
    measured at most 2.2, and a chi-square over the replicates) and is 9 times tighter
    than the prior's (0.95 against 8.7 kg/s); the wind 30 degrees off misses it by 40-50
    standard deviations.

The slow test repeats (c)-(e) with a more accurate transport: Hanna (1982) convective
turbulence at its own ``time_step`` (6 s), 200 particles per column, 24 replicates
(measured: 39 constrained cells, coverage 0.909 in a band 0.870-0.929, whitened
chi-square cdf 0.20, error ratio 0.37, observation chi-square 0.99; wind 30 degrees
off: coverage 0.16, chi-square 350).
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import lineax as lx
import numpy as np
import pytest
import scipy.stats as st
from jax.experimental import sparse as jsparse

import vardax_lite as vx
from plumax_core import MetField
from plumax_core.linalg import separable_matern32
from plumax_transport import (
    ColumnReceptors,
    FootprintForward,
    HannaTurbulence,
    HomogeneousTurbulence,
    backward_footprints,
    time_step,
)

# one worker builds the twin (its module-scoped fixture, ~15 s) for every test of it
pytestmark = pytest.mark.xdist_group("regional_twin")

HOUR = 3600.0
CELL = 1000.0  # m
N = 50  # cells per side
EDGES = np.linspace(0.0, N * CELL, N + 1)
CENTRES = 0.5 * (EDGES[1:] + EDGES[:-1])
D = N * N
LENGTH = 1000.0  # m, Matérn-3/2 correlation length of the prior
RELATIVE_ERROR = 0.5  # prior standard deviation / prior flux
NOISE = 2.0  # ppb, observation-error standard deviation
OVERPASSES = np.array([4.0, 5.5, 7.0, 8.5, 10.0]) * HOUR
PER_OVERPASS = 100
M = OVERPASSES.size * PER_OVERPASS  # 500 soundings
DURATION = 3 * HOUR
THRESHOLD = 0.5  # averaging-kernel diagonal of a "constrained" cell
Z90 = st.norm.ppf(0.95)  # 1.645: the 90 % central interval
P_BAND = 0.001  # two-sided tail of every statistical gate


@dataclasses.dataclass(frozen=True)
class Config:
    """Transport and sampling of one twin (the inversion is the same for all)."""

    turbulence: object
    dt: float
    n_particles: int
    replicates: int
    seed: int


FAST = Config(HomogeneousTurbulence(0.6, 0.6, 0.4, 300.0), 60.0, 64, 8, 0)
ACCURATE = Config(HannaTurbulence(), 6.0, 200, 24, 1)


# -- the twin -------------------------------------------------------------------------


def _met(rotate: float = 0.0) -> MetField:
    """Hourly uniform met over 0-11 h: 2-3 m/s, from 240 deg veering 6 deg/h (+ rotate)."""
    t = np.arange(12) * HOUR
    speed = 2.5 + 0.5 * np.sin(t / (3 * HOUR))
    return MetField.from_timeseries(
        t,
        speed,
        240.0 + 6.0 * t / HOUR + rotate,
        stability=None,
        obukhov_length=-300.0,
        pblh=1000.0,
    )


def _receptors() -> tuple[ColumnReceptors, np.ndarray]:
    rng = np.random.default_rng(2024)
    x = rng.uniform(0.0, N * CELL, M)
    y = rng.uniform(0.0, N * CELL, M)
    times = np.repeat(OVERPASSES, PER_OVERPASS)
    return ColumnReceptors(x, y, units="xch4_ppb"), times


def _prior_flux() -> np.ndarray:
    """The inventory ``x_a`` (kg m-2 s-1, ``(ny, nx)``): background plus six hotspots."""
    X, Y = np.meshgrid(CENTRES, CENTRES)
    background = 5e-9 * (1.0 + 0.5 * np.sin(X / 9e3) * np.cos(Y / 13e3))
    hotspots = (  # peak (kg m-2 s-1), x, y, width (m)
        (1.0e-6, 15e3, 20e3, 2.5e3),
        (0.6e-6, 30e3, 35e3, 2.0e3),
        (0.8e-6, 35e3, 12e3, 3.0e3),
        (0.5e-6, 22e3, 42e3, 2.0e3),
        (0.7e-6, 42e3, 28e3, 2.5e3),
        (0.6e-6, 8e3, 8e3, 2.0e3),
    )
    hot = sum(
        a * np.exp(-((X - x0) ** 2 + (Y - y0) ** 2) / (2 * w**2)) for a, x0, y0, w in hotspots
    )
    return background + hot


def _matern32(coords: np.ndarray, length: float) -> np.ndarray:
    """Hand-written 1-D Matérn-3/2 correlation matrix (independent of plumax_core)."""
    r = np.sqrt(3.0) * np.abs(coords[:, None] - coords[None, :]) / length
    return (1.0 + r) * np.exp(-r)


def _as_float64(fp):
    """The same footprint with its values in float64 (an exact copy of the float32 run)."""
    m = fp.matrix
    data = jnp.asarray(np.asarray(m.data, np.float64))
    return eqx.tree_at(lambda f: f.matrix, fp, jsparse.BCOO((data, m.indices), shape=m.shape))


@dataclasses.dataclass
class Model:
    """One inversion: its OI, the replicate posteriors and their diagnostics (NumPy)."""

    name: str
    oi: vx.OptimalInterpolation
    post0: object  # the Posterior of replicate 0 (covariance as an operator)
    K: np.ndarray  # the footprint this model believes, dense (m, D)
    means: np.ndarray  # (R, D)
    sd: np.ndarray  # (D,)
    a_diag: np.ndarray  # (D,)
    dofs: float
    noise: float


@dataclasses.dataclass
class Twin:
    config: Config
    footprint: object  # the true Footprint (float32 run)
    x_a: np.ndarray  # (D,)
    s: np.ndarray  # (D,)
    truth: np.ndarray  # (R, D)
    y: np.ndarray  # (R, m)
    B: object  # the structured prior covariance
    models: dict


def _invert(name, fp64, twin_parts, noise) -> Model:
    x_a, s, y = twin_parts
    R = lx.DiagonalLinearOperator(jnp.full(M, noise**2))
    B = separable_matern32(CENTRES, CENTRES, LENGTH, jnp.asarray(s.reshape(N, N)))
    oi = vx.OptimalInterpolation(fp64.operator, R, B, x_a, covariance="operator")
    return Model(
        name=name,
        oi=oi,
        post0=oi.posterior(y[0]),
        K=np.asarray(fp64.dense(), np.float64).reshape(M, D),
        means=np.asarray(oi.posterior_mean_batch(jnp.asarray(y))),
        sd=np.asarray(oi.posterior_std()),
        a_diag=np.asarray(lx.diagonal(oi.averaging_kernel())),
        dofs=float(oi.dfs()),
        noise=noise,
    )


def _build(config: Config) -> Twin:
    receptors, times = _receptors()
    kw = dict(
        x=EDGES,
        y=EDGES,
        time=times,
        duration=DURATION,
        dt=config.dt,
        key=jr.key(config.seed),
        n_particles=config.n_particles,
        turbulence=config.turbulence,
        batch_size=100,
    )
    with jax.enable_x64(False):  # the particle runs in float32, as in production
        for rotate in (0.0, 30.0):  # the step is within every limit, for both winds
            assert time_step(_met(rotate), config.turbulence, dt=config.dt, dx=CELL) == config.dt
        fp = backward_footprints(receptors, _met(), **kw)
        # the wrong model: the same particles (same key) in a wind 30 degrees off
        fp_wrong = backward_footprints(receptors, _met(30.0), **kw)
    with jax.enable_x64(True):
        x_a = _prior_flux().reshape(-1)
        s = RELATIVE_ERROR * x_a
        rng = np.random.default_rng(100 + config.seed)
        L = np.linalg.cholesky(_matern32(CENTRES, LENGTH))
        xi = rng.standard_normal((config.replicates, N, N))
        # (L ⊗ L) vec(xi) = vec(L xi L^T) in C order
        truth = x_a + s * np.einsum("ij,rjk,lk->ril", L, xi, L).reshape(config.replicates, D)
        F = _as_float64(fp)
        clean = FootprintForward(F)({"flux": truth.reshape(-1, N, N)}).values
        y = np.asarray(clean) + NOISE * rng.standard_normal((config.replicates, M))
        parts = (x_a, s, y)
        models = {
            "correct": _invert("correct", F, parts, NOISE),
            "wind 30 deg off": _invert("wind 30 deg off", _as_float64(fp_wrong), parts, NOISE),
            "noise claimed 10x too small": _invert("noise too small", F, parts, NOISE / 10),
        }
        B = models["correct"].oi.B
    return Twin(config, fp, x_a, s, truth, y, B, models)


@pytest.fixture(scope="module")
def twin() -> Twin:
    return _build(FAST)


# -- statistics (plain NumPy/SciPy on the replicates) ----------------------------------


def _posterior_block(model: Model, idx: np.ndarray) -> np.ndarray:
    """``P[idx][:, idx]``: columns of the posterior covariance through the operator."""
    E = jnp.zeros((idx.size, D)).at[jnp.arange(idx.size), jnp.asarray(idx)].set(1.0)
    cols = np.asarray(jax.vmap(model.post0.cov.mv)(E))  # rows of P (P is symmetric)
    P = cols[:, idx]
    return 0.5 * (P + P.T)


def _coverage_band(P: np.ndarray, replicates: int, n_sim: int = 4000) -> tuple[float, float]:
    """The ``P_BAND`` and ``1 - P_BAND`` quantiles of the pooled 90 % coverage fraction
    when the errors are ``N(0, P)`` (correlated cells), ``replicates`` independent draws
    per simulated experiment."""
    rng = np.random.default_rng(7)
    Lc = np.linalg.cholesky(P)
    sd = np.sqrt(np.diag(P))
    z = rng.standard_normal((n_sim, replicates, P.shape[0])) @ Lc.T / sd
    frac = np.mean(np.abs(z) < Z90, axis=(1, 2))
    assert abs(frac.mean() - 0.9) < 0.01  # the simulation itself is right
    lo, hi = np.quantile(frac, [P_BAND, 1 - P_BAND])
    return float(lo), float(hi)


def _diagnostics(twin: Twin, model: Model) -> dict:
    """Coverage, whitened-error chi-square, error reduction and observation chi-square
    of ``model``'s posteriors over its constrained cells (a-diag > THRESHOLD)."""
    idx = np.flatnonzero(model.a_diag > THRESHOLD)
    R = twin.config.replicates
    err = model.means - twin.truth  # (R, D)
    out = {"n_constrained": idx.size, "dofs": model.dofs}
    resid = twin.y - model.means @ model.K.T
    out["chi2_obs"] = float(np.sum(resid**2) / model.noise**2 / (R * (M - model.dofs)))
    if idx.size == 0:
        return out
    z = err[:, idx] / model.sd[idx]
    out["coverage"] = float(np.mean(np.abs(z) < Z90))
    P = _posterior_block(model, idx)
    np.testing.assert_allclose(np.diag(P), model.sd[idx] ** 2, rtol=1e-8)
    Lc = np.linalg.cholesky(P)
    w = np.linalg.solve(Lc, err[:, idx].T)  # whitened: N(0, I) under the model
    out["chi2_cells"] = float(np.sum(w**2))
    out["chi2_cells_dof"] = R * idx.size
    out["chi2_cells_cdf"] = float(st.chi2.cdf(out["chi2_cells"], R * idx.size))
    out["band"] = _coverage_band(P, R)
    prior_err = twin.x_a - twin.truth
    out["error_ratio"] = float(np.sqrt(np.mean(err[:, idx] ** 2) / np.mean(prior_err[:, idx] ** 2)))
    return out


# -- tests ----------------------------------------------------------------------------


def test_footprints_of_the_soundings(twin):
    """Sparse footprints in XCH4 ppb per (kg m-2 s-1); most soundings see the grid."""
    fp = twin.footprint
    assert fp.kind == "xch4_ppb" and fp.units == "ppb (kg m-2 s-1)-1"
    assert fp.flux_shape == (N, N) and fp.n_receptors == M
    assert 0.01 < fp.fill_fraction < 0.1  # a 3 h fetch of a column is a narrow band
    rows = np.asarray(fp.matrix.todense()).sum(1)
    assert np.mean(rows > 0) > 0.9  # soundings at the upwind edge see little
    # the prior signal dominates the noise: the inversion has something to do
    signal = twin.models["correct"].K @ twin.x_a
    assert np.median(signal) > 10 * NOISE


def test_posterior_matches_the_imi_closed_form(x64, twin):
    """(a), (b): the operator-covariance OI equals the dense IMI analytic inversion."""
    model = twin.models["correct"]
    K, y0, x_a, s = model.K, twin.y[0], twin.x_a, twin.s
    C1 = _matern32(CENTRES, LENGTH)
    Sa = s[:, None] * np.kron(C1, C1) * s[None, :]
    Sa_inv = np.linalg.inv(Sa)
    S_hat = np.linalg.inv(K.T @ K / NOISE**2 + Sa_inv)
    increment = S_hat @ K.T @ (y0 - K @ x_a) / NOISE**2
    a_diag = 1.0 - np.sum(S_hat * Sa_inv, axis=1)  # diag(I - S_hat S_a^-1), S_a^-1 symmetric

    def rel(actual, expected):
        expected = np.asarray(expected)
        return float(np.max(np.abs(np.asarray(actual) - expected)) / np.max(np.abs(expected)))

    post = model.post0
    assert post.provenance["covariance"] == "operator"
    assert rel(np.asarray(post.mean) - x_a, increment) < 1e-8
    assert rel(model.means[0], x_a + increment) < 1e-8  # the batched means too
    assert rel(post.variance(), np.diag(S_hat)) < 1e-8
    assert rel(model.sd**2, np.diag(S_hat)) < 1e-8
    assert rel(model.a_diag, a_diag) < 1e-8
    dofs = float(np.sum(a_diag))  # tr A
    assert abs(model.dofs - dofs) < 1e-8 * dofs
    assert 100 < dofs < M  # informative, but far from resolving 2500 cells
    area = np.full(D, CELL * CELL)
    var_total = float(area @ np.asarray(post.cov.mv(jnp.asarray(area))))
    assert abs(var_total / (area @ S_hat @ area) - 1) < 1e-8
    # the gate can fail: the same OI with the noise variance 2 % off misses the reference
    R_off = lx.DiagonalLinearOperator(jnp.full(M, 1.02 * NOISE**2))
    off = vx.OptimalInterpolation(model.oi.H, R_off, model.oi.B, x_a, covariance="operator")
    assert rel(np.asarray(off.posterior(y0).mean) - x_a, increment) > 1e-4


def test_truth_within_the_posterior_where_the_data_constrain_it(x64, twin):
    """(c): nominal coverage and a chi-square whitened error in the constrained cells,
    errors well below the prior's there, and an observation chi-square of 1."""
    d = _diagnostics(twin, twin.models["correct"])
    assert d["n_constrained"] >= 40
    lo, hi = d["band"]
    assert lo <= d["coverage"] <= hi, d
    assert 0.8 < lo and hi < 0.98  # the band is informative
    assert P_BAND < d["chi2_cells_cdf"] < 1 - P_BAND, d
    assert d["error_ratio"] < 0.6, d
    assert abs(d["chi2_obs"] - 1.0) < 0.1, d


@pytest.mark.parametrize("wrong", ["wind 30 deg off", "noise claimed 10x too small"])
def test_a_wrong_model_fails(x64, twin, wrong):
    """(d): a wrong transport or a wrong noise fails every gate the correct model passes."""
    d = _diagnostics(twin, twin.models[wrong])
    assert d["n_constrained"] >= 40  # it believes it constrains as many cells or more
    assert d["coverage"] < d["band"][0] and d["coverage"] < 0.6, d
    assert d["chi2_cells_cdf"] > 1 - P_BAND, d
    assert d["chi2_obs"] > 3.0, d


def _total_z(twin: Twin, model: Model) -> tuple[np.ndarray, float, float]:
    """Standardised total-emission errors per replicate, posterior and prior sd (kg/s)."""
    area = np.full(D, CELL * CELL)
    a = jnp.asarray(area)
    sd_post = float(np.sqrt(area @ np.asarray(model.post0.cov.mv(a))))
    sd_prior = float(np.sqrt(area @ np.asarray(twin.B.mv(a))))
    z = (model.means @ area - twin.truth @ area) / sd_post
    return z, sd_post, sd_prior


def test_total_emission_is_covered(x64, twin):
    """(e): the domain total ``sum q A`` with variance ``a^T P a`` through the operator."""
    z, sd_post, sd_prior = _total_z(twin, twin.models["correct"])
    R = twin.config.replicates
    assert np.all(np.abs(z) < st.norm.ppf(1 - P_BAND / 2)), z
    q = st.chi2.cdf(np.sum(z**2), R)
    assert P_BAND < q < 1 - P_BAND, z
    assert sd_post < 0.2 * sd_prior
    # the wind 30 deg off misses the total
    z_wrong, _, _ = _total_z(twin, twin.models["wind 30 deg off"])
    assert st.chi2.cdf(np.sum(z_wrong**2), R) > 1 - P_BAND, z_wrong


@pytest.mark.slow
def test_accurate_twin(x64):
    """(c)-(e) with Hanna convective turbulence at its own time step, 200 particles per
    column and 24 replicates."""
    twin = _build(ACCURATE)
    d = _diagnostics(twin, twin.models["correct"])
    assert d["n_constrained"] >= 30  # wider footprints than the homogeneous turbulence's
    assert d["band"][0] <= d["coverage"] <= d["band"][1], d
    assert P_BAND < d["chi2_cells_cdf"] < 1 - P_BAND, d
    assert d["error_ratio"] < 0.6 and abs(d["chi2_obs"] - 1.0) < 0.1, d
    z, sd_post, sd_prior = _total_z(twin, twin.models["correct"])
    assert P_BAND < st.chi2.cdf(np.sum(z**2), ACCURATE.replicates) < 1 - P_BAND, z
    assert sd_post < 0.2 * sd_prior
    for wrong in ("wind 30 deg off", "noise claimed 10x too small"):
        dw = _diagnostics(twin, twin.models[wrong])
        assert dw["coverage"] < dw["band"][0] and dw["chi2_obs"] > 3.0, (wrong, dw)


def test_lognormal_flux_prior_on_footprint_forward(x64):
    """A lognormal flux prior on the footprint model itself: ``FootprintForward(positive=
    True)`` samples ``z = log q``, a ``GaussianPrior`` on ``z`` with the Matérn Kronecker
    covariance is a lognormal prior on ``q``, and ``ThreeDVar`` (Gauss-Newton) finds the
    MAP. Checked independently in NumPy: the gradient of the log posterior
    ``-B^-1 (z - mu) + J^T R^-1 (y - b - F e^z)``, ``J = F diag(e^z)``, vanishes at the
    MAP; the Gauss-Newton covariance equals ``(J^T R^-1 J + B^-1)^-1`` there; the truth,
    drawn from the prior, lies in the 99.9 % intervals where the data constrain it; and
    every flux in the intervals is positive."""
    import plumax_core as pc

    n, cell, m, noise = 8, 2000.0, 40, 2.0
    edges = np.linspace(0.0, n * cell, n + 1)
    centres = 0.5 * (edges[1:] + edges[:-1])
    rng = np.random.default_rng(7)
    met = MetField.uniform(3.0, 270.0, obukhov_length=-200.0, pblh=1000.0, z0=0.1)
    receptors = ColumnReceptors(
        rng.uniform(0.3, 1.0, m) * n * cell, rng.uniform(0.1, 0.9, m) * n * cell, units="xch4_ppb"
    )
    fp = backward_footprints(
        receptors,
        met,
        x=edges,
        y=edges,
        time=np.full(m, 2 * HOUR),
        duration=2 * HOUR,
        dt=60.0,
        n_particles=64,
        key=jr.key(5),
        turbulence=FAST.turbulence,
    )
    model = FootprintForward(fp, background=1900.0, positive=True)
    mu = np.full(n * n, np.log(2e-7))
    s = np.full((n, n), 0.6)  # log-space standard deviation
    B = separable_matern32(centres, centres, 3000.0, s)
    C1 = _matern32(centres, 3000.0)
    B_dense = 0.36 * np.kron(C1, C1)
    z_true = mu + np.linalg.cholesky(B_dense) @ rng.standard_normal(n * n)
    F = np.asarray(fp.dense(), np.float64).reshape(m, n * n)
    y = F @ np.exp(z_true) + 1900.0 + noise * rng.standard_normal(m)
    obs = pc.Observations(
        jnp.asarray(y), kind=model({"flux": jnp.exp(mu).reshape(n, n)}, met).kind, sigma=noise
    )
    problem = vx.Problem(model, met, obs, pc.GaussianPrior(jnp.asarray(mu), B, model.param_spec))
    post = vx.ThreeDVar().posterior(problem)
    assert post.provenance["converged"] is True
    z = np.asarray(post.mean)
    B_inv = np.linalg.inv(B_dense)

    def grad(zz):
        J = F * np.exp(zz)[None, :]
        return -B_inv @ (zz - mu) + J.T @ (y - 1900.0 - F @ np.exp(zz)) / noise**2

    assert np.linalg.norm(grad(z)) < 1e-6 * np.linalg.norm(grad(mu))
    J = F * np.exp(z)[None, :]
    P_ref = np.linalg.inv(J.T @ J / noise**2 + B_inv)
    P = np.asarray(post.cov.as_matrix())
    assert np.max(np.abs(P - P_ref)) < 1e-8 * np.max(np.abs(P_ref))
    std = np.sqrt(np.diag(P_ref))
    constrained = std < 0.6 * np.sqrt(np.diag(B_dense))
    assert constrained.sum() >= 8
    assert np.max(np.abs((z_true - z) / std)[constrained]) < st.norm.ppf(1 - P_BAND / 2)
    lo, hi = post.credible_interval(0.999)["flux"]
    assert np.all(np.asarray(lo) > 0)
