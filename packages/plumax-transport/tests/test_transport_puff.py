"""GaussianPuff: exact released mass, conservation, convergence to the plume, wind
schedules, meander, contract and bad input."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from plumax_core import MetField
from plumax_core.testing import check_forward_model
from plumax_transport import (
    ColumnImage,
    GaussianPlume,
    GaussianPuff,
    OUMeander,
    PointReceptors,
    puff_intervals,
)

MET = MetField.uniform(5.0, 270.0, stability="D", pblh=800.0)


def test_released_mass_exact_with_partial_intervals(x64):
    edges = [0.0, 300.0, 605.0, 1000.0]
    Q = jnp.array([0.1, 0.2, 0.05])
    geo = PointReceptors(np.array([100.0]), 0.0, 1.0)
    m = GaussianPuff(geo, edges, obs_time=1000.0, puff_interval=7.0)  # 1000/7: partial last
    exact = 0.1 * 300 + 0.2 * 305 + 0.05 * 395
    assert float(m.released_mass(Q)) == pytest.approx(exact, rel=1e-14)
    tau, W = puff_intervals(np.asarray(edges), 7.0, 1000.0)
    assert tau[-1] == 1000.0 and tau[-1] - tau[-2] == pytest.approx(1000.0 - 7.0 * 142)
    assert float(m.puff_masses(Q)[-1]) == pytest.approx(0.05 * (1000.0 - 7.0 * 142), rel=1e-12)
    # observed mid-window: only what has been released so far
    m2 = GaussianPuff(geo, edges, obs_time=450.0, puff_interval=7.0)
    assert float(m2.released_mass(Q)) == pytest.approx(0.1 * 300 + 0.2 * 150, rel=1e-14)


def test_column_mass_conserved_by_quadrature(x64):
    """∬ column dA over the grid (kg) equals the released mass (steady wind)."""
    x = np.arange(-400.0, 9000.0, 20.0)
    y = np.arange(-1500.0, 1500.0, 20.0)
    geo = ColumnImage(x, y, units="kg_m2")
    m = GaussianPuff(geo, [0.0, 600.0, 1000.0], obs_time=1300.0, puff_interval=20.0)
    Q = jnp.array([0.1, 0.3])
    col = np.asarray(m({"Q": Q, "x0": 0.0, "y0": 0.0, "H": 5.0}, MET).values)
    total = col.sum() * 20.0 * 20.0
    assert total == pytest.approx(float(m.released_mass(Q)), rel=1e-3)


def test_puff_train_converges_to_steady_plume(x64):
    """Steady wind, constant Q, long release: the snapshot tends to the plume as the
    puff spacing shrinks. Stated tolerance, for x' in [300 m, 4 km] and spacing u·Δt
    <= σy(300 m): 1% where |y'| <= σy and 3% out to |y'| = 2σy (the residual there is
    the along-wind spread σx = σy(s) that the slender plume neglects, O((dσ/dx)² y²/σ²))."""
    x = np.linspace(300.0, 4000.0, 38)
    y = np.linspace(-150.0, 150.0, 7)
    geo = ColumnImage(x, y, units="kg_m2")
    p_plume = {"Q": 0.1, "x0": 0.0, "y0": 0.0, "H": 5.0}
    plume = np.asarray(GaussianPlume(geo)(p_plume, MET).values)
    sy = (0.08 * x / np.sqrt(1 + 1e-4 * x))[None, :]
    rel = {}
    for dt in (20.0, 4.0):
        m = GaussianPuff(geo, [0.0, 3600.0], obs_time=3600.0, puff_interval=dt)
        puff = np.asarray(m({"Q": jnp.array([0.1]), "x0": 0.0, "y0": 0.0, "H": 5.0}, MET).values)
        rel[dt] = np.abs(puff / plume - 1.0)
    core = np.abs(y)[:, None] <= sy
    wide = np.abs(y)[:, None] <= 2 * sy
    assert np.max(rel[4.0][core]) < 0.01
    assert np.max(rel[4.0][wide]) < 0.03
    assert np.max(rel[20.0][core]) > 5 * np.max(rel[4.0][core])  # it does converge


def test_timeseries_wind_matches_steady_and_kinematics(x64):
    geo = PointReceptors(np.array([1000.0, 2000.0]), 0.0, 1.0)
    edges, P = [0.0, 200.0], {"Q": jnp.array([0.2]), "x0": 0.0, "y0": 0.0, "H": 2.0}
    m = GaussianPuff(geo, edges, obs_time=400.0, puff_interval=10.0)
    t = np.array([0.0, 150.0, 500.0])
    steady_ts = MetField.from_timeseries(
        t, np.full(3, 5.0), np.full(3, 270.0), stability="D", pblh=800.0
    )
    np.testing.assert_allclose(
        np.asarray(m(P, steady_ts).values), np.asarray(m(P, MET).values), rtol=1e-6
    )
    # accelerating wind along +x: u(t) = 3 + t/100 (linear); a puff released at τ moves
    # ∫_τ^T u dt = 3 (T-τ) + (T² - τ²)/200, and its travel distance is the same
    met = MetField.from_timeseries(t, 3.0 + t / 100.0, np.full(3, 270.0), stability="D", pblh=800.0)
    from plumax_transport._common import Checks

    disp = jax.jit(lambda met: m._displacement(met, jnp.float64, Checks(inside=True)))
    dx, dy, s = disp(met)
    tau = np.arange(5.0, 200.0, 10.0)
    T = 400.0
    ref = 3 * (T - tau) + (T**2 - tau**2) / 200.0
    np.testing.assert_allclose(np.asarray(dx), ref, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(dy), 0.0, atol=1e-9)
    np.testing.assert_allclose(np.asarray(s), ref, rtol=1e-10)
    # turning wind: the displacement is the exact integral of the linear (u, v)
    met2 = MetField.from_timeseries(
        t, np.full(3, 5.0), np.array([270.0, 180.0, 180.0]), stability="D", pblh=800.0
    )
    dx2, dy2, s2 = disp(met2)
    assert np.all(np.asarray(s2) >= np.hypot(np.asarray(dx2), np.asarray(dy2)) - 1e-9)


def test_meander(getkey, x64):
    geo = ColumnImage(
        np.arange(-200.0, 4000.0, 25.0), np.arange(-1500.0, 1500.0, 25.0), units="kg_m2"
    )
    P = {"Q": jnp.array([0.1]), "x0": 0.0, "y0": 0.0, "H": 5.0}
    base = GaussianPuff(geo, [0.0, 300.0], obs_time=600.0, puff_interval=10.0)
    key = getkey()
    zero = GaussianPuff(geo, [0.0, 300.0], obs_time=600.0, meander=OUMeander(0.0, 100.0, key=key))
    np.testing.assert_allclose(
        np.asarray(zero(P, MET).values), np.asarray(base(P, MET).values), atol=1e-15
    )
    mk = lambda k: GaussianPuff(
        geo, [0.0, 300.0], obs_time=600.0, meander=OUMeander(1.0, 100.0, key=k)
    )
    a, a2, b = mk(key)(P, MET).values, mk(key)(P, MET).values, mk(getkey())(P, MET).values
    np.testing.assert_array_equal(np.asarray(a), np.asarray(a2))
    assert not np.allclose(np.asarray(a), np.asarray(b))
    assert float(jnp.sum(a)) * 625.0 == pytest.approx(30.0, rel=2e-3)  # mass unchanged
    # the OU sampler: stationary variance σ² and lag-1 correlation exp(-dt/τ)
    v = np.asarray(OUMeander(2.0, 50.0, key=getkey(), dt=10.0).velocities(40000, jnp.float64))
    assert np.var(v) == pytest.approx(4.0, rel=0.05)
    lag = np.mean([np.corrcoef(v[1:, i], v[:-1, i])[0, 1] for i in range(2)])
    assert lag == pytest.approx(np.exp(-10.0 / 50.0), abs=0.02)


def test_puff_contract_and_grad():
    geo = ColumnImage(np.linspace(100.0, 1500.0, 6), np.linspace(-200.0, 250.0, 5))
    m = GaussianPuff(geo, [0.0, 100.0, 250.0], obs_time=300.0, puff_interval=25.0)
    batch = {
        "Q": jnp.array([[0.1, 0.2], [0.05, 0.3]]),
        "x0": jnp.array([0.0, -20.0]),
        "y0": jnp.array([0.0, 10.0]),
        "H": jnp.array([2.0, 30.0]),
    }
    check_forward_model(m, batch, MET, rtol=1e-4, atol=1e-6)


def test_puff_grad_matches_fd(x64):
    geo = ColumnImage(np.linspace(100.0, 1500.0, 6), np.linspace(-200.0, 250.0, 5))
    m = GaussianPuff(geo, [0.0, 100.0, 250.0], obs_time=300.0, puff_interval=25.0)

    @jax.jit
    def f(v):
        p = {"Q": v[:2], "x0": v[2], "y0": v[3], "H": v[4]}
        return m(p, MetField.uniform(v[5], v[6], stability="C", pblh=700.0)).values.ravel()

    v0 = jnp.array([0.1, 0.2, -30.0, 10.0, 25.0, 4.0, 260.0])
    J = np.asarray(jax.jit(jax.jacrev(f))(v0))
    for i, h in enumerate([1e-5, 1e-5, 1e-2, 1e-2, 1e-2, 1e-4, 1e-3]):
        e = np.zeros(7)
        e[i] = h
        fd = (np.asarray(f(v0 + e)) - np.asarray(f(v0 - e))) / (2 * h)
        np.testing.assert_allclose(J[:, i], fd, rtol=1e-5, atol=1e-7 * np.max(np.abs(fd)))


def test_puff_bad_input():
    geo = PointReceptors(np.array([500.0]), 0.0, 1.0)
    m = GaussianPuff(geo, [0.0, 100.0], obs_time=200.0)
    P = {"Q": jnp.array([0.1]), "x0": 0.0, "y0": 0.0, "H": 2.0}
    with pytest.raises(ValueError, match="speed"):
        m(P, MetField.uniform(0.0, 270.0, stability="D"))
    with pytest.raises(ValueError, match="NaN"):
        m(dict(P, Q=jnp.array([jnp.nan])), MET)
    with pytest.raises(ValueError, match="shape"):
        m(dict(P, Q=jnp.array([0.1, 0.2])), MET)
    with pytest.raises(ValueError, match="met.time|outside"):
        t = np.array([100.0, 300.0])
        m(
            P,
            MetField.from_timeseries(
                t, np.full(2, 5.0), np.full(2, 270.0), stability="D", pblh=800.0
            ),
        )
    with pytest.raises(ValueError, match="release_edges"):
        GaussianPuff(geo, [0.0, 0.0], obs_time=10.0)
    with pytest.raises(ValueError, match="obs_time"):
        GaussianPuff(geo, [10.0, 20.0], obs_time=5.0)
    with pytest.raises(ValueError, match="timescale"):
        OUMeander(1.0, 0.0, key=jr.key(0))
