"""Advection schemes of the finite-volume solver: order, positivity, faces, axes."""

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import erf

from plumax_transport._fv_advection import (
    LIMITERS,
    FaceWinds,
    advective_fluxes,
    face_states,
)
from plumax_transport._fv_boundary import Boundaries
from plumax_transport._fv_grid import FVGrid
from plumax_transport._fv_solver import advance_impl, stable_time_step

LENGTH, U = 1000.0, 10.0
PERIODIC_X = Boundaries(west="periodic", east="periodic")
PERIODIC_Y = Boundaries(south="periodic", north="periodic")


def _line(n, axis):
    """A 1-D periodic problem along x or y: (grid, winds, boundaries, centres)."""
    d = LENGTH / n
    c = (np.arange(n) + 0.5) * d
    if axis == "x":
        grid = FVGrid(c, [0.0], [0.0, 1.0], dy=d)
        winds = FaceWinds(u=jnp.full((1, 1, n + 1), U), v=jnp.zeros((1, 2, n)))
        return grid, winds, PERIODIC_X, c
    grid = FVGrid([0.0], c, [0.0, 1.0], dx=d)
    winds = FaceWinds(u=jnp.zeros((1, n, 2)), v=jnp.full((1, n + 1, 1), U))
    return grid, winds, PERIODIC_Y, c


def _shape(profile, axis):
    return profile[None, None, :] if axis == "x" else profile[None, :, None]


def _one_period(n, scheme, courant, axis="x", limiter="van_leer", profile=None):
    grid, winds, bnd, c = _line(n, axis)
    if profile is None:
        profile = 0.1 + np.sin(np.pi * c / LENGTH) ** 4
    q0 = _shape(profile, axis)
    period = LENGTH / U
    nsub = int(np.ceil(period / (courant * (LENGTH / n) / U)))
    q1, out = advance_impl(
        q0,
        grid=grid,
        winds=winds,
        kh=0.0,
        kz=0.0,
        source=0.0,
        dt=period,
        n_substeps=nsub,
        boundaries=bnd,
        scheme=scheme,
        limiter=limiter,
    )
    assert float(out) == 0.0
    return np.asarray(q1).ravel(), np.asarray(q0).ravel()


def _order(scheme, ns, courant, limiter="van_leer"):
    errs = []
    for n in ns:
        q1, q0 = _one_period(n, scheme, courant(n), limiter=limiter)
        errs.append(np.mean(np.abs(q1 - q0)))
    return np.log2(errs[-2] / errs[-1]), errs


def test_upwind_first_order(x64):
    p, errs = _order("upwind", (40, 80), lambda n: 0.5)
    assert 0.8 < p < 1.2, errs


@pytest.mark.parametrize("limiter", ["van_leer", pytest.param("mc", marks=pytest.mark.slow)])
def test_limited_second_order_on_smooth_profile(x64, limiter):
    p, errs = _order("limited", (40, 80), lambda n: 0.4, limiter)
    assert p >= 1.7, errs


def test_weno5_fifth_order(x64):
    # dt ~ dx^(5/3): the RK3 error O(dt^3) then falls like dx^5
    p, errs = _order("weno5", (40, 80), lambda n: 0.4 * (20 / n) ** (2 / 3))
    assert p >= 4.0, errs
    assert errs[-1] < 3e-5


def test_y_axis_matches_x_axis(x64):
    for scheme in ("limited",):
        qx, _ = _one_period(20, scheme, 0.45, axis="x")
        qy, _ = _one_period(20, scheme, 0.45, axis="y")
        np.testing.assert_allclose(qy, qx, rtol=0, atol=1e-14)


SQUARE_N = 50


def _square(scheme, limiter="van_leer", positivity=True, dtype=np.float64):
    grid, winds, bnd, c = _line(SQUARE_N, "x")
    q0 = _shape(((c > 300) & (c < 600)).astype(dtype), "x")
    winds = FaceWinds(u=winds.u.astype(dtype), v=winds.v.astype(dtype))
    period = LENGTH / U
    courant = 0.5 if scheme == "upwind" else 0.45
    nsub = int(np.ceil(3 * period / (courant * LENGTH / SQUARE_N / U)))
    q1, _ = advance_impl(
        q0,
        grid=grid,
        winds=winds,
        kh=0.0,
        kz=0.0,
        source=0.0,
        dt=3 * period,
        n_substeps=nsub,
        boundaries=bnd,
        scheme=scheme,
        limiter=limiter,
        positivity=positivity,
    )
    return np.asarray(q1), q0


@pytest.mark.parametrize("limiter", LIMITERS)
def test_limited_square_wave_stays_nonnegative(x64, limiter):
    q1, q0 = _square("limited", limiter)
    assert q1.min() >= 0.0
    assert q1.max() <= 1.0 + 1e-12  # TVD: no new maximum
    assert q1.sum() == pytest.approx(q0.sum(), rel=1e-14)


def test_weno5_positivity_limiter_is_needed(x64):
    q1, q0 = _square("weno5")
    assert q1.min() >= 0.0
    assert q1.sum() == pytest.approx(q0.sum(), rel=1e-14)
    raw, _ = _square("weno5", positivity=False)
    assert raw.min() < -1e-6  # without the limiter WENO5 undershoots
    q32, _ = _square("weno5", dtype=np.float32)
    assert q32.dtype == np.float32 and q32.min() >= 0.0


def test_limited_reconstruction_on_stretched_levels_exact_for_linear(x64):
    ze = np.array([0.0, 5.0, 12.0, 25.0, 45.0, 80.0, 130.0])
    zc = 0.5 * (ze[1:] + ze[:-1])
    q = 2.0 + 0.03 * zc
    ql, qr = face_states(jnp.asarray(q), False, "limited", "van_leer", jnp.asarray(np.diff(ze)))
    # interior faces: both one-sided reconstructions give the linear profile's value
    # cells 1..n-2 (whose neighbours are real cells) reconstruct the linear profile exactly:
    # q^L at faces 2..n-1 (right faces) and q^R at faces 1..n-2 (left faces)
    np.testing.assert_allclose(ql[2:-1], 2.0 + 0.03 * ze[2:-1], rtol=1e-14)
    np.testing.assert_allclose(qr[1:-2], 2.0 + 0.03 * ze[1:-2], rtol=1e-14)
    # the end cells see a zero-gradient ghost: slope 0 there (first order)
    assert float(ql[1]) == pytest.approx(q[0]) and float(qr[-2]) == pytest.approx(q[-1])
    # without the stretching weights the reconstruction is not exact
    ql_u, _ = face_states(jnp.asarray(q), False, "limited", "van_leer")
    assert np.max(np.abs(np.asarray(ql_u[2:-1]) - (2.0 + 0.03 * ze[2:-1]))) > 1e-3


def _column_error(nz, scheme):
    h, sig, z0, t, w = 1000.0, 60.0, 300.0, 300.0, 1.0
    xi = np.linspace(0.0, 1.0, nz + 1)
    ze = h * (xi + xi**2) / 2.0  # spacing grows by a factor 3 from bottom to top
    grid = FVGrid([0.0], [0.0], ze, dx=10.0, dy=10.0)
    winds = FaceWinds(
        u=jnp.zeros((nz, 1, 2)), v=jnp.zeros((nz, 2, 1)), w=jnp.full((nz + 1, 1, 1), w)
    )

    def cell_mean(centre):
        a = erf((ze[1:] - centre) / (np.sqrt(2) * sig))
        b = erf((ze[:-1] - centre) / (np.sqrt(2) * sig))
        return 0.5 * (a - b) / np.diff(ze)

    q0 = cell_mean(z0)[:, None, None]
    bnd = Boundaries(bottom="open", top="open")
    dtmax = float(stable_time_step(grid, winds, 0.0, scheme=scheme))
    q1, out = advance_impl(
        q0,
        grid=grid,
        winds=winds,
        kh=0.0,
        kz=0.0,
        source=0.0,
        dt=t,
        n_substeps=int(np.ceil(t / dtmax)),
        boundaries=bnd,
        scheme=scheme,
    )
    exact = cell_mean(z0 + w * t)
    m0, m1 = float(grid.mass(q0)), float(grid.mass(q1))
    assert m1 - m0 + float(out) == pytest.approx(0.0, abs=1e-13 * m0)
    return np.sum(np.abs(np.asarray(q1)[:, 0, 0] - exact) * np.diff(ze))


@pytest.mark.slow
def test_vertical_limited_second_order_on_stretched_levels(x64):
    e1, e2 = _column_error(40, "limited"), _column_error(80, "limited")
    assert np.log2(e1 / e2) >= 1.6, (e1, e2)
    # weno5's vertical is the limited scheme: the same numbers
    assert _column_error(40, "weno5") == pytest.approx(e1, rel=1e-12)


def test_face_kinds(x64):
    grid = FVGrid(np.arange(4) * 10.0, np.arange(3) * 10.0, [0.0, 10.0, 20.0])
    rng = np.random.default_rng(3)
    q = jnp.asarray(rng.uniform(1, 2, size=grid.shape))
    u = jnp.asarray(rng.normal(size=(2, 3, 5)))
    v = jnp.asarray(rng.normal(size=(2, 4, 4)))
    w = jnp.asarray(rng.normal(size=(3, 3, 4)))
    winds = FaceWinds(u=u, v=v, w=w)
    bnd = Boundaries(
        west="open",
        east="closed",
        south="periodic",
        north="periodic",
        bottom="closed",
        top="open",
        background=0.7,
    )
    for scheme in ("upwind", "limited"):
        fluxes = eqx.filter_jit(
            lambda q, winds, grid, scheme=scheme: advective_fluxes(
                q, winds, grid, bnd, scheme=scheme
            )
        )
        fx, fy, fz = fluxes(q, winds, grid)
        assert fx.shape == u.shape and fy.shape == v.shape and fz.shape == w.shape
        np.testing.assert_array_equal(fx[..., -1], 0.0)  # closed east
        np.testing.assert_array_equal(fz[0], 0.0)  # closed bottom
        # open west: inflow u * background where u > 0; outflow u * q_edge (upwind)
        inflow = u[..., 0] > 0
        np.testing.assert_allclose(
            np.where(inflow, fx[..., 0], 0), np.where(inflow, u[..., 0] * 0.7, 0)
        )
        if scheme == "upwind":
            np.testing.assert_allclose(
                np.where(inflow, 0, fx[..., 0]), np.where(inflow, 0, u[..., 0] * q[..., 0])
            )
        inflow_top = w[-1] < 0
        np.testing.assert_allclose(
            np.where(inflow_top, fz[-1], 0), np.where(inflow_top, w[-1] * 0.7, 0)
        )
        # periodic y: the two end faces carry the same flux (v[:, 0] used for both)
        np.testing.assert_array_equal(fy[:, 0], fy[:, -1])
        if scheme == "upwind":  # periodic upwind: the donor of face 0 is the last row
            np.testing.assert_allclose(
                fy[:, 0], np.maximum(v[:, 0], 0) * q[:, -1] + np.minimum(v[:, 0], 0) * q[:, 0]
            )
    with pytest.raises(ValueError, match="`scheme`"):
        advective_fluxes(q, winds, grid, bnd, scheme="lax")
    with pytest.raises(ValueError, match="`limiter`"):
        advective_fluxes(q, winds, grid, bnd, scheme="limited", limiter="koren")
    with pytest.raises(ValueError, match="`winds.u`"):
        advective_fluxes(q, FaceWinds(u=u[..., :-1], v=v, w=w), grid, bnd, scheme="upwind")
