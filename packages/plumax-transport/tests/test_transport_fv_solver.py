"""advance / stable_time_step: conservation, budgets, CFL, derivatives, NumPy reference."""

import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plumax_transport._fv_advection import FaceWinds
from plumax_transport._fv_boundary import Boundaries
from plumax_transport._fv_grid import FVGrid
from plumax_transport._fv_solver import advance, n_substeps, stable_time_step

_spec = importlib.util.spec_from_file_location(
    "fv_numpy_reference", pathlib.Path(__file__).with_name("fv_numpy_reference.py")
)
ref = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ref)

XS, YS, ZE = np.arange(6) * 100.0, np.arange(5) * 80.0, np.array([0.0, 10.0, 30.0, 60.0, 100.0])
SHAPE = (4, 5, 6)


def _winds(rng, scale=3.0, wscale=0.05):
    return FaceWinds(
        u=jnp.asarray(scale * rng.normal(size=(4, 5, 7))),
        v=jnp.asarray(scale * rng.normal(size=(4, 6, 6))),
        w=jnp.asarray(wscale * rng.normal(size=(5, 5, 6))),
    )


def _kz(rng):
    return jnp.asarray(rng.uniform(0.5, 20.0, size=(5, 5, 6)))


@pytest.mark.parametrize("scheme", ["upwind", "limited", "weno5"])
def test_mass_conserved_periodic_and_closed(x64, scheme):
    rng = np.random.default_rng(0)
    grid = FVGrid(XS, YS, ZE)
    winds = _winds(rng)
    q = jnp.asarray(rng.uniform(0, 1, size=SHAPE))
    bnd = Boundaries("periodic", "periodic", "closed", "closed")
    dtm = float(stable_time_step(grid, winds, 30.0, scheme=scheme))
    q1, out = advance(
        q,
        grid=grid,
        winds=winds,
        kh=30.0,
        kz=_kz(rng),
        source=0.0,
        dt=4 * dtm,
        n_substeps=4,
        boundaries=bnd,
        scheme=scheme,
    )
    m0 = float(grid.mass(q))
    assert float(out) == 0.0
    assert float(grid.mass(q1)) == pytest.approx(m0, rel=1e-14)
    assert float(q1.min()) >= 0.0
    assert float(jnp.max(jnp.abs(q1 - q))) > 1e-3  # it did move


@pytest.mark.parametrize("scheme", ["upwind", "limited", "weno5"])
def test_open_budget_and_outflow(x64, scheme):
    rng = np.random.default_rng(1)
    grid = FVGrid(XS, YS, ZE)
    winds = _winds(rng)
    q = jnp.asarray(rng.uniform(0, 1, size=SHAPE))
    source = jnp.asarray(rng.uniform(0, 1e-3, size=SHAPE))
    bnd = Boundaries(bottom="open", top="open", background=0.2)
    dtm = float(stable_time_step(grid, winds, 30.0, scheme=scheme))
    dt = 3 * dtm
    q1, out = advance(
        q,
        grid=grid,
        winds=winds,
        kh=30.0,
        kz=_kz(rng),
        source=source,
        dt=dt,
        n_substeps=3,
        boundaries=bnd,
        scheme=scheme,
    )
    m0, m1 = float(grid.mass(q)), float(grid.mass(q1))
    src = dt * float(jnp.sum(source * grid.cell_volume))
    assert abs(m1 - m0 - src + float(out)) <= 1e-13 * m0
    assert float(q1.min()) >= 0.0


def test_plume_exits_with_positive_outflow(x64):
    n = 30
    grid = FVGrid(np.arange(n) * 50.0, [0.0], [0.0, 10.0], dy=50.0)
    winds = FaceWinds(u=jnp.full((1, 1, n + 1), 5.0), v=jnp.zeros((1, 2, n)))
    q = jnp.zeros(grid.shape).at[0, 0, n - 4].set(1.0)
    q1, out = advance(
        q,
        grid=grid,
        winds=winds,
        kh=0.0,
        kz=0.0,
        source=0.0,
        dt=100.0,
        n_substeps=40,
        boundaries=Boundaries(),
        scheme="limited",
    )
    assert float(out) > 0.0
    m0 = float(grid.mass(q))
    assert float(grid.mass(q1)) + float(out) == pytest.approx(m0, rel=1e-13)
    # after 500 m at 5 m/s from 200 m before the edge, nearly all of it has left
    assert float(out) > 0.9 * m0


def test_stable_time_step_closed_form(x64):
    grid = FVGrid(XS, YS, ZE)
    nz, ny, nx = SHAPE
    winds = FaceWinds(u=jnp.full((nz, ny, nx + 1), -4.0), v=jnp.zeros((nz, ny + 1, nx)))
    assert float(stable_time_step(grid, winds, 0.0, scheme="upwind")) == pytest.approx(100 / 4)
    assert float(stable_time_step(grid, winds, 0.0, scheme="weno5")) == pytest.approx(0.5 * 25)
    k = 40.0
    want = 1.0 / (4 / 100 + 2 * k / 100**2 + 2 * k / 80**2)
    assert float(stable_time_step(grid, winds, k, scheme="upwind")) == pytest.approx(want)
    assert float(stable_time_step(grid, winds, k, scheme="limited")) == pytest.approx(want / 2)
    ww = FaceWinds(u=winds.u, v=winds.v, w=jnp.full((nz + 1, ny, nx), 0.5))
    want_w = 1.0 / (4 / 100 + 0.5 / 10)  # the thinnest level, 10 m
    assert float(stable_time_step(grid, ww, 0.0, scheme="upwind")) == pytest.approx(want_w)
    assert float(
        jax.jit(stable_time_step, static_argnames="scheme")(grid, ww, 0.0, scheme="upwind")
    ) == pytest.approx(want_w)


def test_cfl_bound_is_real(x64):
    n = 40
    grid = FVGrid(np.arange(n) * 10.0, [0.0], [0.0, 1.0], dy=10.0)
    winds = FaceWinds(u=jnp.full((1, 1, n + 1), 2.0), v=jnp.zeros((1, 2, n)))
    bnd = Boundaries("periodic", "periodic")
    rng = np.random.default_rng(5)
    q = jnp.asarray(rng.uniform(0, 1, size=grid.shape))
    dtm = float(stable_time_step(grid, winds, 1.0, scheme="upwind"))
    dt = 7.3 * dtm
    ns = n_substeps(dt, dtm)
    assert ns == 8
    kw = dict(grid=grid, winds=winds, kh=1.0, kz=0.0, source=0.0, boundaries=bnd)
    ok, _ = advance(q, dt=dt, n_substeps=ns, scheme="upwind", **kw)
    assert float(ok.min()) >= 0.0 and float(ok.max()) <= float(q.max())
    ok, _ = advance(q, dt=dt, n_substeps=ns, scheme="limited", **kw)
    assert float(ok.min()) >= 0.0
    # one substep of 7.3x the limit: donor cell overshoots and goes negative
    bad, _ = advance(q, dt=dt, n_substeps=1, scheme="upwind", **kw)
    assert float(bad.min()) < 0.0 or float(bad.max()) > 1.0
    assert float(bad.min()) < 0.0


@pytest.mark.parametrize("limiter", ["van_leer", "superbee"])
def test_limited_bound_is_tvd_on_a_square_wave(x64, limiter):
    """At its own bound (Courant 1/2) the limited scheme makes no new extrema on a square
    wave (TVD); the bound is sufficient, not sharp: 1.5x and 2x it still stay TVD here
    (at Courant 1 the positivity blend falls back to the exact donor-cell shift), 2.5x
    it does not."""
    n = 40
    grid = FVGrid(np.arange(n) * 10.0, [0.0], [0.0, 1.0], dy=10.0)
    winds = FaceWinds(u=jnp.full((1, 1, n + 1), 2.0), v=jnp.zeros((1, 2, n)))
    i = jnp.arange(n)
    q = jnp.where((i >= 10) & (i < 20), 2.0, 1.0).reshape(grid.shape)  # min 1: blend idle
    dtm = float(stable_time_step(grid, winds, 0.0, scheme="limited"))
    assert dtm == pytest.approx(0.5 * 10.0 / 2.0)
    kw = dict(grid=grid, winds=winds, kh=0.0, kz=0.0, source=0.0, n_substeps=10)
    kw |= dict(boundaries=Boundaries("periodic", "periodic"), scheme="limited", limiter=limiter)
    for factor in (1.0, 1.5, 2.0):
        q1, _ = advance(q, dt=10 * factor * dtm, **kw)
        assert float(q1.max()) <= 2.0 and float(q1.min()) >= 1.0, factor
    q1, _ = advance(q, dt=10 * 2.5 * dtm, **kw)
    assert float(q1.min()) < 1.0 - 1e-2  # a new minimum


def test_n_substeps():
    assert n_substeps(10.0, 3.0) == 4
    assert n_substeps(1.0, 3.0) == 1
    assert n_substeps(6.0, 3.0) == 2
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="`dt`"):
            n_substeps(bad, 1.0)
    with pytest.raises(ValueError, match="`max_dt`"):
        n_substeps(1.0, 0.0)


def test_advance_argument_checks():
    grid = FVGrid(XS, YS, ZE)
    rng = np.random.default_rng(0)
    kw = dict(
        grid=grid, winds=_winds(rng), kh=1.0, kz=1.0, source=0.0, dt=1.0, boundaries=Boundaries()
    )
    q = jnp.zeros(SHAPE)
    with pytest.raises(ValueError, match="`n_substeps`"):
        advance(q, n_substeps=0, scheme="upwind", **kw)
    with pytest.raises(ValueError, match="`scheme`"):
        advance(q, n_substeps=1, scheme="ppm", **kw)
    with pytest.raises(ValueError, match="`q`"):
        advance(jnp.zeros((4, 5, 5)), n_substeps=1, scheme="upwind", **kw)
    with pytest.raises(ValueError, match="`air_density`"):
        advance(q, n_substeps=1, scheme="upwind", air_density=jnp.ones(3), **kw)


@pytest.mark.parametrize(
    "name, value",
    [
        ("kz", -5.0),
        ("kz", jnp.full((5, 5, 6), jnp.nan)),
        ("kh", -50.0),
        ("kh", jnp.inf),
        ("air_density", jnp.array([1.2, 1.1, 0.0, 1.0])),
        ("air_density", jnp.array([1.2, 1.1, jnp.nan, 1.0])),
    ],
)
def test_bad_diffusivity_and_density_rejected(name, value):
    grid = FVGrid(XS, YS, ZE)
    winds = _winds(np.random.default_rng(0))
    kw = dict(kh=1.0, kz=1.0, air_density=None) | {name: value}
    q = jnp.ones(SHAPE)
    common = dict(grid=grid, winds=winds, source=0.0, dt=1.0, boundaries=Boundaries())
    with pytest.raises(ValueError, match=f"`{name}` must be finite"):
        advance(q, n_substeps=1, scheme="limited", **common, **kw)
    if name == "kh":  # a negative K_h would give a negative "stable" step
        with pytest.raises(ValueError, match="`kh` must be finite"):
            stable_time_step(grid, winds, value, scheme="limited")

    # traced: the result is NaN (never a silently wrong number)
    def run(v):
        return advance(q, n_substeps=1, scheme="upwind", **common, **(kw | {name: v}))[0]

    assert bool(jnp.all(jnp.isnan(jax.jit(run)(value))))
    # and a valid traced value passes
    good = jnp.ones_like(jnp.asarray(value)) if name == "air_density" else 2.0
    assert bool(jnp.all(jnp.isfinite(jax.jit(run)(good))))
    if name == "kh":
        dtm = jax.jit(stable_time_step, static_argnames="scheme")
        assert bool(jnp.isnan(dtm(grid, winds, value, scheme="limited")))


@pytest.mark.slow  # two reverse-mode compiles, ~15 s
def test_reverse_mode_memory_one_state_per_substep(x64):
    """The checkpointed substeps: grad's temp memory grows by ~one state per substep
    (it grew by ~144 states per substep for "limited" before)."""
    grid, winds, q, src, kz, bnd = _small_problem()

    def temp(ns):
        def loss(q):
            kw = dict(grid=grid, winds=winds, kh=5.0, kz=kz, source=src, boundaries=bnd)
            return jnp.sum(advance(q, dt=ns * 0.5, n_substeps=ns, scheme="limited", **kw)[0] ** 2)

        return jax.jit(jax.grad(loss)).lower(q).compile().memory_analysis().temp_size_in_bytes

    per_substep = (temp(5) - temp(1)) / 4 / (q.size * q.dtype.itemsize)
    assert per_substep <= 2.0


def _small_problem():
    rng = np.random.default_rng(7)
    grid = FVGrid(XS, YS, ZE)
    winds = _winds(rng)
    q = jnp.asarray(rng.uniform(0.5, 1.5, size=SHAPE))
    src = jnp.asarray(rng.uniform(0, 1e-3, size=SHAPE))
    kz = _kz(rng)
    bnd = Boundaries(west="open", east="open", south="periodic", north="periodic", background=0.3)
    return grid, winds, q, src, kz, bnd


def test_jit_grad_and_adjoint_dot_product(x64):
    grid, winds, q, src, kz, bnd = _small_problem()
    rho = jnp.array([1.2, 1.18, 1.15, 1.1])
    dt = 2 * float(stable_time_step(grid, winds, 20.0, scheme="limited"))

    def f(q, src):
        return advance(
            q,
            grid=grid,
            winds=winds,
            kh=20.0,
            kz=kz,
            source=src,
            dt=dt,
            n_substeps=2,
            boundaries=bnd,
            scheme="limited",
            air_density=rho,
        )[0]

    rng = np.random.default_rng(8)
    dq = jnp.asarray(rng.normal(size=SHAPE))
    ds = jnp.asarray(rng.normal(size=SHAPE))
    ybar = jnp.asarray(rng.normal(size=SHAPE))
    # the adjoint: jax.grad of the scalar <f(q, s), ybar> wrt q and the source
    aq, as_ = jax.grad(lambda a, b: jnp.sum(f(a, b) * ybar), argnums=(0, 1))(q, src)
    assert bool(jnp.all(jnp.isfinite(aq))) and float(jnp.max(jnp.abs(as_))) > 0
    # the tangent-linear model: jvp
    _, tang = jax.jvp(f, (q, src), (dq, ds))
    lhs = float(jnp.sum(tang * ybar))
    rhs = float(jnp.sum(aq * dq) + jnp.sum(as_ * ds))
    assert abs(lhs - rhs) <= 1e-10 * abs(lhs)


@pytest.mark.parametrize("scheme", ["upwind", "limited"])
def test_matches_numpy_reference(x64, scheme):
    grid, winds, q, src, kz, bnd = _small_problem()
    # a near-empty corner so the positivity limiter is active in the limited run
    q = q.at[:, :2, :2].set(0.0)
    kh = jnp.asarray(np.random.default_rng(9).uniform(5, 30, size=SHAPE))
    dtm = float(stable_time_step(grid, winds, kh, scheme=scheme))
    dt = 3 * dtm
    q1, out = advance(
        q,
        grid=grid,
        winds=winds,
        kh=kh,
        kz=kz,
        source=src,
        dt=dt,
        n_substeps=3,
        boundaries=bnd,
        scheme=scheme,
    )
    r = ref.Reference(
        grid.dx,
        grid.dy,
        ZE,
        np.asarray(winds.u),
        np.asarray(winds.v),
        np.asarray(winds.w),
        np.asarray(kh),
        np.asarray(kz),
        np.asarray(src),
        {"x": ("open", "open"), "y": ("periodic", "periodic"), "z": ("closed", "closed")},
        0.3,
        scheme,
    )
    q_ref, out_ref = r.advance(np.asarray(q), dt, 3)
    np.testing.assert_allclose(np.asarray(q1), q_ref, rtol=1e-12, atol=1e-12 * np.max(q_ref))
    assert float(out) == pytest.approx(out_ref, rel=1e-12)
    assert float(q1.min()) >= 0.0
