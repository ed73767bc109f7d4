"""The Lagrangian particle engine against independent references: streamlines of a
time- and space-varying wind (scipy's ODE solver, second-order convergence, backward
return), Thomson's (1987) well-mixed criterion (and its failure without the drift
correction), Taylor's (1921) dispersion in homogeneous turbulence, reflection and the
domain, the time-step rule, the callback and bad input."""

import math

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy import stats
from scipy.integrate import solve_ivp

from plumax_core import MetField, clean_errors
from plumax_transport import (
    HannaTurbulence,
    HomogeneousTurbulence,
    ParticleState,
    boundary_layer,
    initial_state,
    mean_wind,
    run_particles,
    time_step,
    trajectories,
)
from plumax_transport._stability import golder_inverse_obukhov

STILL = HomogeneousTurbulence(0.0, 0.0, 0.0, 100.0)


# -- 1. streamlines ------------------------------------------------------------------


def _u(t, x, y):
    return 4.0 + 2e-4 * x - 1e-4 * y + 5e-4 * t + 1e-7 * x * t


def _v(t, x, y):
    return 1.0 + 1e-4 * x + 3e-4 * y - 2e-4 * t - 5e-8 * y * t


def _varying_met():
    """u, v multilinear in (t, x, y), so that the met's interpolation is exact."""
    time = np.array([0.0, 1000.0, 2000.0])
    x = np.linspace(-3000.0, 9000.0, 13)
    y = np.linspace(-4000.0, 4000.0, 9)
    T, Y, X = np.meshgrid(time, y, x, indexing="ij")
    return MetField(
        _u(T, X, Y)[:, None],
        _v(T, X, Y)[:, None],
        stability_class=3,
        pblh=1000.0,
        time=time,
        x=x,
        y=y,
    )


def test_zero_turbulence_follows_streamlines_to_second_order(x64):
    met = _varying_met()
    x0, y0 = np.array([-1000.0, 0.0, 500.0]), np.array([0.0, -1000.0, 800.0])
    t0, t1 = 200.0, 1400.0
    ref = np.array(
        [
            solve_ivp(
                lambda t, p: [_u(t, *p), _v(t, *p)], (t0, t1), [a, b], rtol=1e-12, atol=1e-9
            ).y[:, -1]
            for a, b in zip(x0, y0, strict=True)
        ]
    )
    state = initial_state(
        x0, y0, np.full(3, 100.0), time=t0, met=met, turbulence=STILL, key=jr.key(0)
    )
    errors = []
    for dt in (40.0, 20.0):
        n = int(round((t1 - t0) / dt))
        end, _ = run_particles(state, met, STILL, key=jr.key(1), dt=dt, n_steps=n)
        assert float(end.t) == pytest.approx(t1)
        assert bool(jnp.all(end.active)) and np.allclose(end.z, 100.0)
        errors.append(np.abs(np.stack([end.x, end.y], -1) - ref).max())
        # backward from the end point: back to the start (O(dt^3) per step: ~mm)
        back, _ = run_particles(end, met, STILL, key=jr.key(2), dt=dt, n_steps=n, direction=-1)
        assert float(back.t) == pytest.approx(t0)
        assert np.abs(np.stack([back.x - x0, back.y - y0])).max() < 0.01
    # ~5 km of travel: error of 0.04 m at dt = 20 s, falling as dt^2
    assert errors[1] < 0.1
    assert errors[0] / errors[1] == pytest.approx(4.0, rel=0.05)


def test_vertical_mean_wind_and_uniform_wind_exact():
    met = MetField(3.0, -2.0, w=0.05, stability_class=3, pblh=1000.0)
    state = initial_state(
        np.zeros(2),
        np.zeros(2),
        np.array([100.0, 980.0]),
        time=0.0,
        met=met,
        turbulence=STILL,
        key=jr.key(0),
    )
    path = trajectories(state, met, STILL, key=jr.key(1), dt=10.0, n_steps=20)
    assert path.shape == (21, 2, 3)
    np.testing.assert_allclose(path[-1, 0], [600.0, -400.0, 110.0], rtol=1e-6)
    assert float(path[-1, 1, 2]) <= 1000.0  # the mean wind is not reflected: held at the lid
    np.testing.assert_allclose(path[:, 0, 0], 3.0 * 10.0 * np.arange(21), rtol=1e-6)


def test_release_step_holds_particles_until_their_release():
    met = MetField.uniform(5.0, 270.0, stability="D", pblh=500.0)
    state = initial_state(
        jnp.zeros(3),
        jnp.zeros(3),
        jnp.full(3, 20.0),
        time=0.0,
        met=met,
        turbulence=STILL,
        key=jr.key(0),
    )
    for direction in (1, -1):
        path = trajectories(
            state,
            met,
            STILL,
            key=jr.key(1),
            dt=1.0,
            n_steps=10,
            direction=direction,
            release_step=jnp.array([0, 4, 10]),
        )
        # moved in steps k >= release: 10, 6 and 0 steps of 5 m
        np.testing.assert_allclose(
            path[-1, :, 0], direction * np.array([50.0, 30.0, 0.0]), atol=1e-5
        )
        np.testing.assert_allclose(path[:5, 1, 0], 0.0)  # held until step 4
        assert float(path[5, 1, 0]) == pytest.approx(5.0 * direction)
    with pytest.raises(ValueError, match="`release_step` must be"):
        run_particles(
            state, met, STILL, key=jr.key(1), dt=1.0, n_steps=2, release_step=jnp.zeros(3)
        )


# -- 2. well-mixed criterion -----------------------------------------------------------


def _mixed_z(met, turbulence, n, T, *, drift=True, direction=1, seed=0, safety=0.2):
    h = float(met.pblh)
    dt = time_step(met, turbulence, safety=safety)
    z = jr.uniform(jr.key(seed), (n,), minval=0.0, maxval=h)
    state = initial_state(
        jnp.zeros(n),
        jnp.zeros(n),
        z,
        time=0.0,
        met=met,
        turbulence=turbulence,
        key=jr.key(seed + 1),
    )
    end, _ = run_particles(
        state,
        met,
        turbulence,
        key=jr.key(seed + 2),
        dt=dt,
        n_steps=int(math.ceil(T / dt)),
        drift_correction=drift,
        direction=direction,
    )
    zz = np.asarray(end.z)
    assert np.all(np.isfinite(zz)) and zz.min() >= 0.0 and zz.max() <= h
    counts, _ = np.histogram(zz, bins=20, range=(0.0, h))
    return stats.chisquare(counts).pvalue


CBL = MetField.uniform(5.0, 270.0, stability=None, obukhov_length=-50.0, pblh=1000.0)
SBL = MetField.uniform(5.0, 270.0, stability=None, obukhov_length=30.0, pblh=300.0)


def test_well_mixed_convective():
    """h = 1000 m, L = -50 m (w* = 1.8 m/s): 20,000 particles over 1500 s (~15 tau_w in
    mid-layer) stay uniform with Thomson's drift correction; without it they pile up
    where sigma_w is small (ground and lid), by tens of per cent."""
    turbulence = HannaTurbulence()
    assert _mixed_z(CBL, turbulence, 20_000, 1500.0) > 1e-3
    assert _mixed_z(CBL, turbulence, 20_000, 1500.0, drift=False) < 1e-6


def test_well_mixed_stable_and_backward():
    turbulence = HannaTurbulence()
    assert _mixed_z(SBL, turbulence, 20_000, 600.0) > 1e-3
    assert _mixed_z(SBL, turbulence, 20_000, 600.0, drift=False) < 1e-6
    assert _mixed_z(CBL, turbulence, 20_000, 1500.0, direction=-1, seed=7) > 1e-3


def test_initial_velocities_from_the_local_pdf():
    turbulence = HannaTurbulence()
    n = 20_000
    z = jnp.full(n, 500.0)
    state = initial_state(
        jnp.zeros(n), jnp.zeros(n), z, time=0.0, met=CBL, turbulence=turbulence, key=jr.key(3)
    )
    h, us, ws, L = boundary_layer(CBL, 0.0, 0.0, 0.0)
    prof = turbulence(z[:1], h, us, ws, L)
    tol = 4 * math.sqrt(2 / n)
    for v, s in ((state.up, prof.sigma_u), (state.vp, prof.sigma_v), (state.wp, prof.sigma_w)):
        assert float(jnp.var(v)) / float(s[0]) ** 2 == pytest.approx(1.0, abs=tol)
        assert abs(float(jnp.mean(v))) < 4 * float(s[0]) / math.sqrt(n)


# -- 3. Taylor (1921) -----------------------------------------------------------------


def _record_variance(carry, state, k):
    return carry.at[k].set(jnp.var(state.y))


def test_taylor_dispersion_in_homogeneous_turbulence():
    """sigma_y^2(t) = 2 sigma_v^2 tau (t - tau (1 - exp(-t/tau))); the discretisation bias
    at dt = tau/20 is < 0.2 %, the Monte-Carlo error of a variance sqrt(2/N) = 1 %."""
    sv, tau, n, dt = 0.6, 50.0, 20_000, 2.5
    turbulence = HomogeneousTurbulence(0.5, sv, 0.3, tau)
    met = MetField.uniform(4.0, 270.0, stability="D", pblh=1000.0)
    state = initial_state(
        jnp.zeros(n),
        jnp.zeros(n),
        jnp.full(n, 500.0),
        time=0.0,
        met=met,
        turbulence=turbulence,
        key=jr.key(4),
    )
    steps = 160
    _, var = run_particles(
        state,
        met,
        turbulence,
        key=jr.key(5),
        dt=dt,
        n_steps=steps,
        accumulate=_record_variance,
        carry=jnp.zeros(steps),
    )
    tol = 4 * math.sqrt(2 / n)
    for t in (25.0, 50.0, 100.0, 200.0, 400.0):
        want = 2 * sv**2 * tau * (t - tau * (1 - math.exp(-t / tau)))
        got = float(var[int(round(t / dt)) - 1])
        assert got / want == pytest.approx(1.0, abs=tol), t
    # the diffusive limit (t >> tau) differs from the ballistic one: the test can fail
    assert float(var[-1]) / (sv**2 * 400.0**2) < 0.3


# -- 4. reflection and domain ----------------------------------------------------------


@settings(max_examples=6, deadline=None)
@given(
    L=st.sampled_from([-300.0, -20.0, math.inf, 40.0, 500.0]),
    h=st.floats(100.0, 2000.0),
    speed=st.floats(1.0, 12.0),
    dt=st.floats(1.0, 400.0),
    seed=st.integers(0, 2**16),
)
def test_particles_stay_in_the_boundary_layer(L, h, speed, dt, seed):
    """Any setting, even a step far above the time-step limit (many reflections in one
    step), leaves every particle in [0, h] with finite velocities; with a scalar met all
    particles stay active (nothing leaves an unbounded domain)."""
    met = MetField.uniform(speed, 200.0, stability=None, obukhov_length=L, pblh=h)
    n = 256
    z = jr.uniform(jr.key(seed), (n,), minval=0.0, maxval=h)
    state = initial_state(
        jnp.zeros(n),
        jnp.zeros(n),
        z,
        time=0.0,
        met=met,
        turbulence=HannaTurbulence(),
        key=jr.key(seed + 1),
    )
    end, _ = run_particles(state, met, HannaTurbulence(), key=jr.key(seed + 2), dt=dt, n_steps=25)
    zz = np.asarray(end.z)
    assert zz.min() >= 0.0 and zz.max() <= h
    for v in (end.x, end.y, end.up, end.vp, end.wp):
        assert np.all(np.isfinite(np.asarray(v)))
    assert int(jnp.sum(end.active)) == n


def test_huge_step_folds_like_repeated_reflection():
    # z = 50 m, w' = -1 m/s over 2450 s: -2400 m -> reflected at 0, 1000, 0 -> 400 m,
    # crossing three boundaries: the velocity sign flips (odd count)
    met = MetField.uniform(5.0, 270.0, stability="D", pblh=1000.0)
    state = ParticleState(
        jnp.zeros(1),
        jnp.zeros(1),
        jnp.array([50.0]),
        jnp.zeros(1),
        jnp.zeros(1),
        jnp.array([-1.0]),
        jnp.asarray(0.0),
        jnp.array([True]),
    )
    frozen = HomogeneousTurbulence(0.0, 0.0, 0.5, 1e12)  # w' kept over the step (+- 4e-5)
    end, _ = run_particles(state, met, frozen, key=jr.key(0), dt=2450.0, n_steps=1)
    assert float(end.z[0]) == pytest.approx(400.0, abs=0.5)
    assert float(end.wp[0]) == pytest.approx(1.0, abs=1e-3)


def _count_active(carry, state, k):
    return carry.at[k].set(jnp.sum(state.active)), None


def _active_and_steps(carry, state, k):
    counts, ksum = carry
    return counts.at[k].set(jnp.sum(state.active)), ksum + k


def test_particles_leaving_a_gridded_domain_become_inactive():
    x = np.linspace(0.0, 1000.0, 6)
    y = np.linspace(-500.0, 500.0, 5)
    met = MetField(
        np.full((1, 1, 5, 6), 5.0), np.zeros((1, 1, 5, 6)), stability_class=3, pblh=800.0, x=x, y=y
    )
    x0 = jnp.array([100.0, 500.0, 900.0, 990.0])
    state = initial_state(
        x0, jnp.zeros(4), jnp.full(4, 50.0), time=0.0, met=met, turbulence=STILL, key=jr.key(0)
    )
    steps = 30
    end, (counts, ksum) = run_particles(
        state,
        met,
        STILL,
        key=jr.key(1),
        dt=10.0,
        n_steps=steps,
        accumulate=_active_and_steps,
        carry=(jnp.zeros(steps, jnp.int32), jnp.int32(0)),
    )
    assert int(ksum) == steps * (steps - 1) // 2  # k = 0 .. n_steps-1
    # 5 m/s: the particle at 990 m leaves in step 1, at 900 m in step 3, at 500 m in step 11
    np.testing.assert_array_equal(np.asarray(end.active), [False, False, False, False])
    assert counts[0] == 3 and counts[2] == 2 and counts[10] == 1 and counts[18] == 0
    # each stops where it left (the first position outside), never clamped to the edge
    np.testing.assert_allclose(np.asarray(end.x), [1050.0, 1050.0, 1050.0, 1040.0], rtol=1e-6)


def test_run_under_jit_with_traced_release_and_met():
    """The forward model will trace the source position and, under an uncertain wind,
    the met: the engine runs under jit, matches the eager run, and checks a traced
    release height at run time."""
    turbulence = HannaTurbulence()

    def run(x0, u, z0=10.0):
        met = MetField(u, 1.0, stability_class=1, pblh=900.0)
        n = 64
        state = initial_state(
            jnp.full(n, x0),
            jnp.zeros(n),
            jnp.full(n, z0),
            time=0.0,
            met=met,
            turbulence=turbulence,
            key=jr.key(0),
        )
        return run_particles(state, met, turbulence, key=jr.key(1), dt=2.0, n_steps=10)[0].x

    jitted = jax.jit(run)
    np.testing.assert_allclose(np.asarray(jitted(3.0, 5.0)), np.asarray(run(3.0, 5.0)), rtol=1e-5)
    with pytest.raises(ValueError, match="`z` must lie in"), clean_errors():
        jitted(3.0, 5.0, 950.0).block_until_ready()


# -- 5. time step -----------------------------------------------------------------------


def test_time_step_rule():
    met = MetField.uniform(5.0, 270.0, stability="D", pblh=1000.0)
    turbulence = HomogeneousTurbulence(0.5, 0.5, 0.5, 20.0)
    assert time_step(met, turbulence) == pytest.approx(0.2 * 20.0)  # tau_w limits
    assert time_step(met, turbulence, dx=50.0) == pytest.approx(0.2 * 50.0 / 5.0)  # dx/|U|
    assert time_step(met, turbulence, safety=0.5) == pytest.approx(10.0)
    assert time_step(met, turbulence, dt=3.9) == 3.9
    with pytest.raises(ValueError, match=r"`dt` = 4.1 s exceeds the limit 4 s.*tau_Lw"):
        time_step(met, turbulence, dt=4.1)
    with pytest.raises(ValueError, match=r"`dt` = 2.5 s exceeds the limit 2 s.*dx/\|U\|"):
        time_step(met, turbulence, dt=2.5, dx=50.0)
    # only the vertical time scale limits the step (FLEXPART): short horizontal ones do not
    short = HomogeneousTurbulence(0.5, 0.5, 0.5, (1.0, 2.0, 20.0))
    assert time_step(met, short) == pytest.approx(4.0)
    with pytest.raises(ValueError, match=r"exceeds the limit 0.4 s.*tau_Lw"):
        time_step(met, HomogeneousTurbulence(0.5, 0.5, 0.5, (100.0, 100.0, 2.0)), dt=1.0)
    # a gridded met: dx defaults to its spacing (100 m here, 5 m/s: 20 s)
    grid = MetField(
        np.full((1, 1, 1, 11), 5.0), 0.0, stability_class=3, pblh=1000.0, x=np.linspace(0, 1000, 11)
    )
    assert time_step(grid, HomogeneousTurbulence(0.5, 0.5, 0.5, 1000.0)) == pytest.approx(4.0)
    # Hanna: never above safety x the smallest tau_w of the profile
    hanna = HannaTurbulence()
    dt = time_step(CBL, hanna)
    h, us, ws, L = boundary_layer(CBL, 0.0, 0.0, 0.0)
    p = hanna(jnp.linspace(0.0, 1000.0, 101), h, us, ws, L)
    assert 0 < dt <= 0.2 * float(jnp.min(p.tau_w)) + 1e-9
    for bad in (dict(safety=0.0), dict(safety=2.0), dict(dx=-1.0), dict(dt=0.0), dict(n_heights=1)):
        with pytest.raises(ValueError, match=f"`{next(iter(bad))}`"):
            time_step(met, turbulence, **bad)


@pytest.mark.parametrize(
    ("L", "want"), [(-50.0, 6.0), (-10.0, 2.17), (math.inf, 6.0), (100.0, 6.0)]
)
def test_time_step_with_hanna_turbulence(L, want):
    """h = 1000 m, 4 m/s (the values time_step's docstring gives): 0.2 x the 30 s floor
    of tau_w, or the sigma_w-gradient criterion in a strongly convective layer; in the
    neutral and stable layers well above 0.2 x tau_u's 10 s floor (the horizontal time
    scales do not limit the step)."""
    met = MetField.uniform(4.0, 270.0, stability=None, obukhov_length=L, pblh=1000.0)
    hanna = HannaTurbulence()
    dt = time_step(met, hanna)
    assert dt == pytest.approx(want, rel=5e-3)
    h, us, ws, L_ = boundary_layer(met, 0.0, 0.0, 0.0)
    p = hanna(jnp.linspace(0.0, 1000.0, 101), h, us, ws, L_)
    if L > 0 or math.isinf(L):  # min(tau_u, tau_v, tau_w) = 10 s would give 2 s
        assert float(jnp.min(jnp.minimum(p.tau_u, p.tau_v))) == pytest.approx(10.0)


def _y_variance(carry, state, k):
    return carry.at[k].set(jnp.var(state.y))


def test_long_horizontal_steps_follow_the_discrete_ou_sum():
    """A step of 2 tau_v (allowed: only tau_w limits it): v' keeps its variance exactly,
    and the crosswind variance is that of a sum of AR(1) velocities held over each step,
    dt^2 sigma^2 (n + 2 sum_j (n - j) r^j), r = exp(-dt/tau_v); in the long run that is
    Taylor's diffusive spread times (x/2) coth(x/2) = 1.31 at x = dt/tau_v = 2 (the
    position error _particle_step documents), not Taylor's own."""
    sv, tau_v, dt, n, steps = 0.6, 5.0, 10.0, 20_000, 40
    turbulence = HomogeneousTurbulence(0.0, sv, 0.3, (5.0, tau_v, 50.0))
    met = MetField.uniform(4.0, 270.0, stability="D", pblh=1000.0)
    assert time_step(met, turbulence, dt=dt) == dt
    state = initial_state(
        jnp.zeros(n),
        jnp.zeros(n),
        jnp.full(n, 500.0),
        time=0.0,
        met=met,
        turbulence=turbulence,
        key=jr.key(11),
    )
    end, var = run_particles(
        state,
        met,
        turbulence,
        key=jr.key(12),
        dt=dt,
        n_steps=steps,
        accumulate=_y_variance,
        carry=jnp.zeros(steps),
    )
    tol = 4 * math.sqrt(2 / n)
    assert float(jnp.var(end.vp)) / sv**2 == pytest.approx(1.0, abs=tol)
    r = math.exp(-dt / tau_v)
    for m in (1, 5, 40):
        j = np.arange(1, m)
        want = dt**2 * sv**2 * (m + 2 * np.sum((m - j) * r**j))
        assert float(var[m - 1]) / want == pytest.approx(1.0, abs=tol), m
    t = steps * dt
    taylor = 2 * sv**2 * tau_v * (t - tau_v * (1 - math.exp(-t / tau_v)))
    x = dt / tau_v
    assert float(var[-1]) / taylor == pytest.approx(x / 2 / math.tanh(x / 2), rel=0.05)


# -- met at the particles ----------------------------------------------------------------


def test_boundary_layer_from_stability_class_and_mean_wind(x64):
    for cls, z0 in (("A", 0.1), ("D", 0.1), ("F", 0.03)):
        met = MetField.uniform(4.0, 90.0, stability=cls, pblh=700.0, z0=z0)
        h, us, ws, L = boundary_layer(met, 0.0, 0.0, 0.0)
        inv = float(golder_inverse_obukhov(z0)["ABCDEF".index(cls)])
        assert float(h) == 700.0
        assert float(1.0 / L) == pytest.approx(inv, abs=1e-15)
        assert (float(ws) > 0) == (cls == "A")
    _, _, _, L = boundary_layer(MetField.uniform(4.0, 90.0, stability="D"), 0.0, 0.0, 0.0)
    assert float(L) == math.inf
    U, V, W = mean_wind(
        _varying_met(), 500.0, np.array([100.0]), np.array([-50.0]), np.array([10.0])
    )
    np.testing.assert_allclose(
        [U[0], V[0], W], [_u(500.0, 100.0, -50.0), _v(500.0, 100.0, -50.0), 0.0], rtol=1e-12
    )


# -- 7. bad input --------------------------------------------------------------------------


def _small():
    met = MetField.uniform(5.0, 270.0, stability="D", pblh=500.0)
    state = initial_state(
        jnp.zeros(3),
        jnp.zeros(3),
        jnp.full(3, 10.0),
        time=0.0,
        met=met,
        turbulence=STILL,
        key=jr.key(0),
    )
    return met, state


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_steps=-1), "`n_steps` must be >= 0"),
        (dict(n_steps=2.5), "`n_steps` must be an int"),
        (dict(n_steps=True), "`n_steps` must be an int"),
        (dict(dt=0.0), "`dt` must be finite and > 0"),
        (dict(dt=math.nan), "`dt` must be finite and > 0"),
        (dict(direction=0), "`direction` must be"),
        (dict(direction=2), "`direction` must be"),
        (dict(reference_height=-1.0), "`reference_height` must be > 0"),
        (dict(reference_height=0.05), "`reference_height`.*exceed.*`met.z0`"),
        (dict(accumulate=3), "`accumulate` must be callable"),
    ],
)
def test_run_bad_arguments(kwargs, match):
    met, state = _small()
    args = dict(key=jr.key(1), dt=1.0, n_steps=3) | kwargs
    with pytest.raises(ValueError, match=match):
        run_particles(state, met, STILL, **args)


def test_bad_states_and_met():
    met, state = _small()
    with pytest.raises(ValueError, match="`z` must lie in"):
        initial_state(
            jnp.zeros(2),
            jnp.zeros(2),
            jnp.array([10.0, 600.0]),
            time=0.0,
            met=met,
            turbulence=STILL,
            key=jr.key(0),
        )
    with pytest.raises(ValueError, match="`x`, `y`, `z` must have the same shape"):
        initial_state(
            jnp.zeros(2),
            jnp.zeros(3),
            jnp.zeros(2),
            time=0.0,
            met=met,
            turbulence=STILL,
            key=jr.key(0),
        )
    with pytest.raises(ValueError, match="`y` must be a 1-D"):
        initial_state(
            jnp.zeros(2),
            jnp.zeros((2, 1)),
            jnp.zeros(2),
            time=0.0,
            met=met,
            turbulence=STILL,
            key=jr.key(0),
        )
    with pytest.raises(ValueError, match="`state.z` must lie in"):
        run_particles(
            state.__class__(
                state.x,
                state.y,
                state.z + 1000.0,
                state.up,
                state.vp,
                state.wp,
                state.t,
                state.active,
            ),
            met,
            STILL,
            key=jr.key(0),
            dt=1.0,
            n_steps=1,
        )
    with pytest.raises(ValueError, match="`wp` has shape"):
        ParticleState(
            state.x, state.y, state.z, state.up, state.vp, state.wp[:2], state.t, state.active
        )
    with pytest.raises(ValueError, match="`turbulence` must be"):
        run_particles(state, met, "hanna", key=jr.key(0), dt=1.0, n_steps=1)
    no_pblh = MetField(5.0, 0.0, pblh=None, stability_class=3)
    with pytest.raises(ValueError, match="`met.pblh`"):
        run_particles(state, no_pblh, STILL, key=jr.key(0), dt=1.0, n_steps=1)
    rough = MetField(5.0, 0.0, stability_class=3, z0=2.0)
    with pytest.raises(ValueError, match="`met.z0` must be in"):
        boundary_layer(rough, 0.0, 0.0, 0.0, reference_height=20.0)
    bare = MetField(5.0, 0.0, pblh=500.0)
    with pytest.raises(ValueError, match="neither `obukhov_length` nor `stability_class`"):
        boundary_layer(bare, 0.0, 0.0, 0.0)
    grid = MetField(
        np.full((1, 1, 1, 3), 5.0), 0.0, stability_class=3, x=np.array([0.0, 10.0, 20.0])
    )
    with pytest.raises(ValueError, match="outside the met's horizontal domain"):
        initial_state(
            jnp.array([30.0]),
            jnp.zeros(1),
            jnp.ones(1),
            time=0.0,
            met=grid,
            turbulence=STILL,
            key=jr.key(0),
        )


def test_time_outside_a_varying_met_raises_before_the_run():
    met = _varying_met()
    state = initial_state(
        jnp.zeros(2),
        jnp.zeros(2),
        jnp.full(2, 10.0),
        time=1900.0,
        met=met,
        turbulence=STILL,
        key=jr.key(0),
    )
    with pytest.raises(
        ValueError, match="`n_steps` x `dt`.*ends at 2010.0 s.*outside the met time range"
    ):
        run_particles(state, met, STILL, key=jr.key(1), dt=10.0, n_steps=11)
    end, _ = run_particles(state, met, STILL, key=jr.key(1), dt=10.0, n_steps=10)  # to 2000 s
    assert float(end.t) == pytest.approx(2000.0)
    with pytest.raises(ValueError, match="outside the met time range"):
        run_particles(state, met, STILL, key=jr.key(1), dt=10.0, n_steps=191, direction=-1)
    with pytest.raises(ValueError, match="`time`.*outside the met time range"):
        initial_state(
            jnp.zeros(1),
            jnp.zeros(1),
            jnp.ones(1),
            time=-1.0,
            met=met,
            turbulence=STILL,
            key=jr.key(0),
        )
    # float32 epoch time with a met varying in time: the step cannot be resolved
    t0 = 1.7e9
    epoch = MetField.from_timeseries([t0, t0 + 7200.0], [3.0, 4.0], [270.0, 270.0], stability="D")
    s = initial_state(
        jnp.zeros(1), jnp.zeros(1), jnp.ones(1), time=t0, met=epoch, turbulence=STILL, key=jr.key(0)
    )
    with pytest.raises(ValueError, match="`state.t`.*cannot be stepped by `dt`"):
        run_particles(s, epoch, STILL, key=jr.key(1), dt=5.0, n_steps=10)

    # traced: checked at run time
    def run(t, met):
        one = jnp.ones(1)
        s = initial_state(0 * one, 0 * one, one, time=t, met=met, turbulence=STILL, key=jr.key(0))
        return run_particles(s, met, STILL, key=jr.key(1), dt=5.0, n_steps=10)[0].x

    local = MetField.from_timeseries([0.0, 7200.0], [3.0, 4.0], [270.0, 270.0], stability="D")
    x = jax.jit(run)(100.0, local)  # a local time: resolved
    assert float(x[0]) == pytest.approx(50.0 * (3.0 + 125.0 / 7200.0), rel=1e-5)
    with pytest.raises(ValueError, match="`state.t` cannot be stepped by `dt`"), clean_errors():
        jax.jit(run)(t0 + 100.0, epoch).block_until_ready()
