"""LagrangianParticles (Tier II forward model) against independent references: Taylor's
(1921) Gaussian plume in homogeneous turbulence (the kernel's smoothing in closed form),
mass conservation (flux through a cross-section, total mass, the boundary layer), the
N^-1/2 Monte Carlo law, the snapshot estimator in a turning wind (the advected centre of
mass) and against the residence-time estimator, the drop-in contract of GaussianPlume,
and bad input."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from plumax_core import MetField
from plumax_transport import (
    ColumnAverage,
    ColumnImage,
    GaussianPlume,
    HannaTurbulence,
    HomogeneousTurbulence,
    LagrangianParticles,
    PointReceptors,
    time_step,
)
from plumax_transport._lagrangian import _plan, _source_pblh

P = {"Q": 0.05, "x0": 0.0, "y0": 0.0, "H": 10.0}
MET = MetField.uniform(5.0, 270.0, stability="D", pblh=800.0)  # blowing towards +x


def _params(**kw):
    return {k: jnp.asarray(v, float) for k, v in dict(P, **kw).items()}


def _area(geo):
    """Cell areas (m²) of an evenly spaced grid."""
    return float(np.diff(np.asarray(geo.x))[0] * np.diff(np.asarray(geo.y))[0])


# -- 1. Taylor (1921) in homogeneous turbulence ----------------------------------------

U, SV, SW, TAU, H_SRC = 5.0, 0.5, 0.3, 50.0, 20.0
TAYLOR_MET = MetField.uniform(U, 270.0, stability="D", pblh=1e4)  # the lid out of reach
TAYLOR_TURB = HomogeneousTurbulence(0.0, SV, SW, TAU)


def _taylor_var(sigma, t):
    return 2 * sigma**2 * TAU * (t - TAU * (1 - np.exp(-t / TAU)))


def _taylor_plume(x, y, z, h, *, var=_taylor_var):
    """Slender-plume concentration (kg/m³ for Q = 1 kg/s) with Taylor's spreads and the
    ground image, smoothed by the Gaussian kernel of bandwidths h: closed form across the
    wind and vertically (sigma^2 -> sigma^2 + h^2, the image included), Gauss-Hermite
    along it. Valid for sigma_u << U (here sigma_u = 0)."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(24)
    out = 0.0
    for a, w in zip(nodes, weights / math.sqrt(2 * math.pi), strict=True):
        t = (x + h[0] * a) / U
        sy = np.sqrt(var(SV, t) + h[1] ** 2)
        sz = np.sqrt(var(SW, t) + h[2] ** 2)
        vert = np.exp(-((z - H_SRC) ** 2) / (2 * sz**2)) + np.exp(-((z + H_SRC) ** 2) / (2 * sz**2))
        out = out + w * np.exp(-(y**2) / (2 * sy**2)) * vert / (2 * math.pi * U * sy * sz)
    return out


def _taylor_receptors():
    xs = np.array([300.0, 300.0, 300.0, 600.0, 600.0, 600.0])
    sy = np.sqrt(_taylor_var(SV, xs / U))
    ys = np.array([0.0, 1.0, 0.0, 0.0, 1.0, 0.0]) * sy
    zs = np.array([0.0, 0.0, 15.0, 0.0, 0.0, 15.0])
    return xs, ys, zs


@pytest.mark.parametrize(
    ("n_particles", "n_keys", "rel_tol"),
    [(10_000, 4, 0.05), pytest.param(100_000, 16, 0.01, marks=pytest.mark.slow)],
)
def test_point_receptors_match_the_taylor_gaussian_plume(n_particles, n_keys, rel_tol):
    """Ground-level and elevated receptors 300 and 600 m downwind (sigma_y = 38, 55 m,
    sigma_z = 23, 33 m), on the axis and one sigma_y off it: the mean over keys equals
    the kernel-smoothed Taylor plume within 4 standard errors and rel_tol (the step bias,
    dt = tau/50, is 1e-4 of the variance); the diffusive-limit spreads
    (2 sigma^2 tau t) are rejected."""
    xs, ys, zs = _taylor_receptors()
    h = (10.0, 10.0, 5.0)
    geo = PointReceptors(xs, ys, zs, units="kg_m3")
    params = _params(Q=1.0, H=H_SRC)
    vals = []
    for seed in range(n_keys):
        model = LagrangianParticles(
            geo,
            key=jr.key(seed),
            turbulence=TAYLOR_TURB,
            n_particles=n_particles,
            duration=200.0,
            bandwidth=h,
        )
        vals.append(np.asarray(model(params, TAYLOR_MET).values, np.float64))
    vals = np.array(vals)
    mean = vals.mean(axis=0)
    se = vals.std(axis=0, ddof=1) / math.sqrt(n_keys)
    want = _taylor_plume(xs, ys, zs, h)
    assert np.all(np.abs(mean - want) < 4 * se + 0.2 * rel_tol * want), (mean / want, se / want)
    assert np.all(np.abs(mean / want - 1) < rel_tol), mean / want
    diffusive = _taylor_plume(xs, ys, zs, h, var=lambda s, t: 2 * s**2 * TAU * t)
    assert np.max(np.abs(mean / diffusive - 1)) > 0.15


# -- 2. mass ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def flux_case():
    """sigma_u = 0 (no along-wind diffusion): every particle crosses each cross-section
    once, at speed U; the grid holds every particle (x <= U T = 1250 m, |y| < 6 sigma_y)."""
    geo = ColumnImage(
        np.arange(-100.0, 1501.0, 20.0), np.arange(-500.0, 501.0, 20.0), units="kg_m2"
    )
    model = LagrangianParticles(
        geo,
        key=jr.key(1),
        turbulence=TAYLOR_TURB,
        n_particles=2000,
        duration=250.0,
    )
    return geo, model, np.asarray(model(P, TAYLOR_MET).values, np.float64)


def test_crosswind_integral_times_wind_is_the_emission_rate(flux_case):
    geo, model, col = flux_case
    x = np.asarray(geo.x)
    crosswind = col.sum(axis=0) * 20.0  # kg/m
    inside = (x >= 100.0) & (x <= 1100.0)
    np.testing.assert_allclose(crosswind[inside] * U, P["Q"], rtol=2e-4)
    assert np.all(crosswind[x > 1300.0] == 0.0)  # beyond U T nothing arrived
    # total mass on a grid holding every particle: Q T
    assert col.sum() * _area(geo) == pytest.approx(P["Q"] * 250.0, rel=1e-4)


# One Hanna configuration shared by the mass, N^-1/2 and estimator tests (one compile):
# a neutral 5 m/s westerly, 300 s of travel, a grid holding every particle.
GRID = ColumnImage(np.arange(-600.0, 2400.0, 50.0), np.arange(-800.0, 801.0, 50.0), units="kg_m2")
N_GRID = 2000


def _grid_run(n=N_GRID, key=None, geo=GRID, **kw):
    model = LagrangianParticles(
        geo, key=jr.key(2) if key is None else key, n_particles=n, duration=300.0, **kw
    )
    return np.asarray(model(P, MET).values, np.float64)


@pytest.fixture(scope="module")
def grid_column():
    return _grid_run()


def test_total_mass_and_the_boundary_layer_with_hanna_turbulence(grid_column):
    """Hanna turbulence (sigma_u > 0): the total mass is Q T on a grid holding every
    particle; the flux Q within Monte Carlo error; a partial column up to pblh is the
    whole column (no particle above the lid), one up to 30 m is not."""
    col = grid_column
    assert col.sum() * _area(GRID) == pytest.approx(P["Q"] * 300.0, rel=1e-4)
    x = np.asarray(GRID.x)
    flux = col.sum(axis=0)[(x >= 300.0) & (x <= 1000.0)] * 50.0 * 5.0
    assert np.mean(flux) == pytest.approx(P["Q"], rel=0.05)
    lid = ColumnImage(GRID.x, GRID.y, units="kg_m2", z_top=800.0)
    low = ColumnImage(GRID.x, GRID.y, units="kg_m2", z_top=30.0)
    np.testing.assert_array_equal(_grid_run(geo=lid), col)
    below = _grid_run(geo=low)
    assert 0.1 * col.sum() < below.sum() < 0.9 * col.sum()


# -- 3. Monte Carlo error ----------------------------------------------------------------


def test_error_falls_like_inverse_square_root_of_n(grid_column):
    """Mean squared difference to the 16 N run, over 16 keys at N and at 4 N: the RMS
    ratio's expectation is sqrt((1 + 1/16)/(1/4 + 1/16)) = 1.84; one key's MSE is
    dominated by a few particle tracks (along-track correlation), hence the keys."""
    n = N_GRID // 16
    mse = [
        np.mean([np.mean((_grid_run(m, k) - grid_column) ** 2) for k in jr.split(jr.key(m), 16)])
        for m in (n, 4 * n)
    ]
    ratio = math.sqrt(mse[0] / mse[1])
    assert 1.5 < ratio < 2.7, ratio


# -- 4. drop-in for GaussianPlume --------------------------------------------------------

GEOMETRIES = {
    "points": lambda: PointReceptors(
        np.array([200.0, 400.0, 600.0, 400.0]), np.array([0.0, 10.0, -20.0, 40.0]), 2.0
    ),
    "column_image": lambda: ColumnImage(
        np.linspace(-100.0, 700.0, 17), np.linspace(-150.0, 150.0, 11), units="ppm_m"
    ),
    "column_average": lambda: ColumnAverage(
        np.linspace(-100.0, 700.0, 17), np.linspace(-150.0, 150.0, 11), column_height=300.0
    ),
}


def _model(geo, seed=0, **kw):
    kw = dict(dict(n_particles=200, bandwidth=(20.0, 20.0, 10.0)), **kw)
    return LagrangianParticles(geo, key=jr.key(seed), **kw)


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_drop_in_for_the_gaussian_plume(name):
    """Same kind/dims/shape, parameters and order of magnitude as the plume;
    deterministic given the key, another key differs; exactly linear in Q."""
    geo = GEOMETRIES[name]()
    model = _model(geo)
    ref = GaussianPlume(geo)(P, MET)
    out = model(P, MET)
    assert (out.kind, out.dims, out.values.shape) == (ref.kind, ref.dims, ref.values.shape)
    assert model.param_spec is GaussianPlume(geo).param_spec
    vals = np.asarray(out.values)
    assert np.all(np.isfinite(vals)) and vals.max() > 0
    # same order of magnitude as the plume (another turbulence model, same physics)
    assert 0.2 < vals.max() / float(np.max(np.asarray(ref.values))) < 5.0
    np.testing.assert_array_equal(model(P, MET).values, vals)
    assert not np.allclose(_model(geo, seed=1)(P, MET).values, vals)
    np.testing.assert_allclose(model(dict(P, Q=3 * P["Q"]), MET).values, 3 * vals, rtol=1e-6)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("points", marks=pytest.mark.slow),
        "column_image",
        pytest.param("column_average", marks=pytest.mark.slow),
    ],
)
def test_jit_vmap_grad_through_the_model(name):
    """jit(vmap(value_and_grad)) over a batch of params equals the eager loop; the
    gradients w.r.t. Q, x0, y0, H are finite and non-zero and match central differences
    over 10 cm in x0 (CIC: piecewise linear in each particle position, kinks at the cell
    centres; on a centre, where every particle starts, the gradient is the right
    derivative)."""
    geo = GEOMETRIES[name]()
    model = _model(geo)
    weights = jr.uniform(jr.key(9), model(P, MET).values.shape, dtype=float)

    def loss(p):
        obs = model(p, MET).values
        return jnp.sum(weights * obs), obs

    delta = 0.05
    x0 = jnp.array([7.3, 30.0, 7.3 + delta, 7.3 - delta, 0.0, delta, 12.3])
    batch = {
        "Q": jnp.array([0.05, 0.08] + [0.05] * 5),
        "x0": x0,
        "y0": jnp.array([3.1, -15.0] + [3.1] * 5),
        "H": jnp.array([10.0, 25.0] + [10.0] * 5),
    }
    (losses, obs), grads = jax.jit(jax.vmap(jax.value_and_grad(loss, has_aux=True)))(batch)
    for i in range(2):
        eager = np.asarray(model({k: v[i] for k, v in batch.items()}, MET).values)
        np.testing.assert_allclose(obs[i], eager, rtol=2e-4, atol=1e-6 * eager.max())
    for k in ("Q", "x0", "y0", "H"):
        g = float(grads[k][0])
        assert math.isfinite(g) and g != 0.0, (k, g)
    assert float(grads["Q"][0]) == pytest.approx(float(losses[0]) / 0.05, rel=1e-4)
    fd = (float(losses[2]) - float(losses[3])) / (2 * delta)
    assert float(grads["x0"][0]) == pytest.approx(fd, rel=0.01)
    if name != "points":
        right = (float(losses[5]) - float(losses[4])) / delta
        assert float(grads["x0"][4]) == pytest.approx(right, rel=0.01)
        # continuous: a shift of a tenth of a cell changes the image by about a tenth
        step = np.abs(np.asarray(obs[6] - obs[0])).sum() / np.abs(np.asarray(obs[0])).sum()
        assert 0.01 < step < 0.3, step


# -- 5. time-varying met -----------------------------------------------------------------

TURN_TIMES = np.array([0.0, 300.0, 400.0, 900.0])
TURNING = MetField.from_timeseries(
    TURN_TIMES, np.full(4, 5.0), np.array([270.0, 270.0, 180.0, 180.0]), stability="D", pblh=800.0
)  # blowing +x until 300 s, turning to +y by 400 s


def _advected_centre(t_start, t_obs):
    """Mean over release times in [t_start, t_obs] of the displacement by the mean wind
    (u, v linear in time between the met times), m."""
    t = np.linspace(t_start, t_obs, 70_001)
    u = np.interp(t, TURN_TIMES, [5.0, 5.0, 0.0, 0.0])
    v = np.interp(t, TURN_TIMES, [0.0, 0.0, 5.0, 5.0])
    dt = t[1] - t[0]
    cum = lambda a: np.concatenate([[0.0], np.cumsum(0.5 * (a[1:] + a[:-1]) * dt)])  # noqa: E731
    disp_x = cum(u)[-1] - cum(u)  # displacement from release to t_obs
    disp_y = cum(v)[-1] - cum(v)
    return np.mean(disp_x), np.mean(disp_y)


def test_snapshot_in_a_turning_wind_points_where_the_wind_blew():
    geo = ColumnImage(
        np.arange(-1500.0, 2501.0, 100.0), np.arange(-1500.0, 4501.0, 100.0), units="kg_m2"
    )
    model = LagrangianParticles(
        geo, key=jr.key(4), n_particles=4000, duration=700.0, obs_time=900.0
    )
    col = np.asarray(model(P, TURNING).values, np.float64)
    mass = col * _area(geo)
    assert mass.sum() == pytest.approx(P["Q"] * 700.0, rel=1e-4)  # the grid holds all
    X, Y = np.meshgrid(np.asarray(geo.x), np.asarray(geo.y))
    # CIC keeps first moments: the centre of mass is the particles' (MC error ~5 m)
    want = _advected_centre(200.0, 900.0)
    got = (np.sum(mass * X) / mass.sum(), np.sum(mass * Y) / mass.sum())
    assert np.allclose(got, want, atol=25.0), (got, want)
    # the recent plume (within 1.5 km) points north, where the wind blew since 400 s
    near = np.hypot(X, Y) < 1500.0
    angle = math.degrees(math.atan2(np.sum((mass * Y)[near]), np.sum((mass * X)[near])))
    assert 75.0 < angle < 105.0, angle


def test_snapshot_and_residence_time_agree_in_steady_met(grid_column):
    """Within Monte Carlo error: the snapshot differs from the residence-time column by
    less than two snapshots (other keys) differ from each other; a source moved 100 m
    along the wind is told apart."""
    res = grid_column
    snap = [_grid_run(key=jr.key(s), obs_time=1e4) for s in (6, 7)]
    rms = lambda a: float(np.sqrt(np.mean(a**2)))  # noqa: E731
    noise = rms(snap[0] - snap[1])  # sqrt(2) x the snapshot's own error
    assert rms(snap[0] - res) < noise
    assert snap[0].sum() / res.sum() == pytest.approx(1.0, rel=1e-4)  # both hold Q T
    moved = LagrangianParticles(GRID, key=jr.key(2), n_particles=N_GRID, duration=300.0)
    moved = np.asarray(moved(dict(P, x0=100.0), MET).values, np.float64)
    assert rms(snap[0] - moved) > 2 * noise


# -- 6. bad input ------------------------------------------------------------------------

_POINTS = PointReceptors(np.array([300.0, 600.0]), 0.0, 0.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(n_particles=0), "`n_particles`"),
        (dict(n_particles=-5), "`n_particles`"),
        (dict(n_particles=2.5), "`n_particles`"),
        (dict(dt=0.0), "`dt`"),
        (dict(duration=-1.0), "`duration`"),
        (dict(bandwidth=(10.0, 0.0, 5.0)), "`bandwidth`"),
        (dict(bandwidth=(10.0, 5.0)), "`bandwidth`"),
        (dict(obs_time=math.nan), "`obs_time`"),
        (dict(reference_height=0.0), "`reference_height`"),
        (dict(min_wind_speed=0.0), "`min_wind_speed`"),
        (dict(turbulence="hanna"), "`turbulence`"),
        (dict(key=0), "`key`"),
    ],
)
def test_bad_settings_raise(kwargs, match):
    kw = dict(dict(key=jr.key(0)), **kwargs)
    with pytest.raises(ValueError, match=match):
        LagrangianParticles(_POINTS, **kw)


def test_bad_geometry_raises():
    with pytest.raises(ValueError, match="`geometry` must be a PointReceptors"):
        LagrangianParticles("grid", key=jr.key(0))
    with pytest.raises(ValueError, match="`geometry.x` must hold at least 2"):
        LagrangianParticles(ColumnImage(np.array([100.0]), np.array([0.0, 10.0])), key=jr.key(0))


def test_bad_calls_raise():
    model = _model(_POINTS, duration=150.0)
    with pytest.raises(ValueError, match="`dt` = 100 s exceeds the limit"):
        _model(_POINTS, dt=100.0, duration=150.0)(P, MET)
    with pytest.raises(ValueError, match="release height `H` exceeds `met.pblh`"):
        model(dict(P, H=900.0), MET)
    with pytest.raises(ValueError, match="outside its support"):
        model(dict(P, Q=-1.0), MET)
    with pytest.raises(ValueError, match="`met.wind_speed` must be >= 0.5 m/s"):
        model(P, MetField(0.1, 0.0, stability_class=3))
    with pytest.raises(ValueError, match="a receptor lies above `met.pblh`"):
        _model(PointReceptors(300.0, 0.0, 900.0), duration=150.0)(P, MET)
    with pytest.raises(ValueError, match="`duration` must be given"):
        _model(PointReceptors(300.0, 0.0, 0.0))(P, MET)
    with pytest.raises(ValueError, match="`obs_time` must be given"):
        model(P, TURNING)
    with pytest.raises(ValueError, match="release window .* `duration`"):
        _model(_POINTS, duration=1000.0, obs_time=900.0)(P, TURNING)
    gridded = MetField(
        jnp.full((1, 1, 2, 2), 5.0),
        jnp.zeros((1, 1, 2, 2)),
        stability_class=3,
        x=jnp.array([-100.0, 1000.0]),
        y=jnp.array([-100.0, 100.0]),
    )
    with pytest.raises(ValueError, match=r"the source \(`x0`, `y0`\) lies outside"):
        model(dict(P, y0=500.0), gridded)
    with pytest.raises(ValueError, match="`dt` and `duration` must be given when the met"):
        jax.jit(lambda u: _model(_POINTS)(P, eqx.tree_at(lambda m: m.u, MET, u)).values)(5.0)


# pblh at the source: 800 m at the window's ends, 250 m at a met time inside it
DIPPING = MetField.from_timeseries(
    TURN_TIMES,
    np.full(4, 5.0),
    np.full(4, 270.0),
    stability="D",
    pblh=np.array([800.0, 800.0, 250.0, 800.0]),
)


def test_release_height_is_checked_over_the_release_window():
    """A snapshot's particles wait at H until their release: H must stay below the
    lowest pblh at the source over [obs_time - duration, obs_time] (at its ends and the
    met times inside it), not only at its start, else they would be folded into the
    layer (H = 500 m with h = 250 m: z = 0 m)."""
    # (obs_time, duration): the lowest pblh, at a met time inside, at an end, none
    for obs_time, duration, want in (
        (900.0, 700.0, 250.0),  # [200, 900] s: 250 m at 400 s, inside
        (900.0, 400.0, 360.0),  # [500, 900] s: at its start, between 250 and 800 m
        (300.0, 300.0, 800.0),  # [0, 300] s
        (900.0, 200.0, 580.0),  # [700, 900] s: at its start
    ):
        plan = _plan(_model(_POINTS, duration=duration, obs_time=obs_time), DIPPING)
        assert float(_source_pblh(plan, 0.0, 0.0)) == pytest.approx(want, rel=1e-6)
    kw = dict(dt=5.0, duration=700.0, obs_time=900.0, n_particles=50)
    with pytest.raises(ValueError, match="release height `H` exceeds `met.pblh`"):
        _model(_POINTS, **kw)(dict(P, H=500.0), DIPPING)  # h = 800 m at the start
    # traced: NaN when not strict (the particles are clipped below the lowest pblh)
    lenient = _model(_POINTS, strict=False, **kw)
    traced = eqx.filter_jit(lambda m, h: m(_params(H=h), DIPPING).values)
    assert np.all(np.isnan(np.asarray(traced(lenient, jnp.asarray(500.0)))))
    assert np.all(np.isfinite(np.asarray(traced(lenient, jnp.asarray(200.0)))))


def test_traced_bad_input_gives_nan_when_not_strict():
    """Under tracing a lenient model turns bad input into NaN (a strict one raises the
    InvalidInputError that test_transport_api_checks checks under jit); the model itself
    is traced here (eqx.filter_jit over models traces its key)."""
    model = _model(_POINTS, duration=150.0, strict=False)
    lenient = eqx.filter_jit(lambda m, h: m(_params(H=h), MET).values)
    H = lambda h: jnp.asarray(h, float)  # noqa: E731  (an array: traced, one compile)
    np.testing.assert_allclose(lenient(model, H(10.0)), model(_params(), MET).values, rtol=1e-5)
    assert np.all(np.isnan(np.asarray(lenient(model, H(900.0)))))
    assert np.all(np.isnan(np.asarray(lenient(model, H(-1.0)))))


def test_automatic_step_and_duration():
    geo = GEOMETRIES["column_image"]()
    plan = _plan(_model(geo), MET)
    diag = math.hypot(800.0, 300.0)
    assert plan.n_steps * plan.dt == pytest.approx(1.5 * diag / 5.0)
    # half a cell per step at most, within the turbulence limit (6 s here: 0.2 x the
    # 30 s floor of tau_w); here the cell limits it
    assert time_step(MET, HannaTurbulence()) == pytest.approx(6.0)
    assert 2.5 < plan.dt <= 0.5 * 30.0 / 5.0 + 1e-9  # the cells are 50 x 30 m
