"""Backward receptor footprints and the linear flux forward model against independent
references: the forward particle run (backward/forward duality, steady and, slow, a
time-varying wind), the closed form of homogeneous turbulence in a uniform wind, the
Tier I unit conversions, column mass balance, the sparse storage, time windows, the
forward-model contract and bad input."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from scipy.special import ndtr

from plumax_core import InvalidInputError, MetField, clean_errors, units
from plumax_core.linalg import SparseMatrix
from plumax_transport import (
    ColumnReceptors,
    Footprint,
    FootprintForward,
    HannaTurbulence,
    HomogeneousTurbulence,
    PointReceptors,
    backward_footprints,
    initial_state,
    run_particles,
)

# One configuration shared by most tests, so the particle run compiles once: a steady,
# uniform, convective met (5 m/s from the west, L = -200 m, h = 800 m), Hanna
# turbulence, 60 steps of 20 s, 16 receptors x 256 particles, a 10 x 6 grid of 500 m
# cells upwind of a receptor box.
MET = MetField.uniform(5.0, 270.0, stability=None, obukhov_length=-200.0, pblh=800.0)
HANNA = HannaTurbulence()
XE = np.arange(-4000.0, 1001.0, 500.0)
YE = np.arange(-1500.0, 1501.0, 500.0)
NY, NX = YE.size - 1, XE.size - 1
DT, STEPS, N, K = 20.0, 60, 256, 16
BOX = ((0.0, 500.0), (-250.0, 250.0), (10.0, 60.0))
BOX_VOLUME = 500.0 * 500.0 * 50.0
FRACTION = 0.5  # surface_layer
HS = FRACTION * 800.0


def _box_receptors(seed, units="kg_m3", k=K):
    rng = np.random.default_rng(seed)
    return PointReceptors(*(rng.uniform(lo, hi, k) for lo, hi in BOX), units=units)


def _footprint(receptors, *, met=MET, x=XE, y=YE, key=0, **kw):
    kw = {"duration": STEPS * DT, "dt": DT, "n_particles": N, "batch_size": K, **kw}
    return backward_footprints(
        receptors, met, x=x, y=y, time=kw.pop("time", 0.0), key=jr.key(key), **kw
    )


@pytest.fixture(scope="module")
def box_fp():
    """Footprints (kg/m3 per kg m-2 s-1) of 16 receptors drawn uniformly in the box."""
    return _footprint(_box_receptors(1))


class _BoxHits(eqx.Module):
    """Forward-run callback: time (s) each particle spends in the receptor box."""

    dt: float
    release: jax.Array | None = None
    first: int = 0

    def __call__(self, carry, s, k):
        (x0, x1), (y0, y1), (z0, z1) = BOX
        inside = s.active & (s.x >= x0) & (s.x < x1) & (s.y >= y0) & (s.y < y1)
        inside = inside & (s.z >= z0) & (s.z < z1) & (k >= self.first)
        if self.release is not None:
            inside = inside & (k >= self.release)  # held (unreleased) particles do not count
        return carry + self.dt * inside


def _forward_release(m, key, met, t0):
    """``m`` particles per flux cell, uniform in the cell and in the surface layer."""
    k1, k2, k3, k4 = jr.split(key, 4)
    src = jnp.repeat(jnp.arange(NY * NX), m)
    j, i = src // NX, src % NX
    x = jnp.asarray(XE)[i] + (XE[1] - XE[0]) * jr.uniform(k1, src.shape)
    y = jnp.asarray(YE)[j] + (YE[1] - YE[0]) * jr.uniform(k2, src.shape)
    z = HS * jr.uniform(k3, src.shape)
    state = initial_state(x, y, z, time=t0, met=met, turbulence=HANNA, key=k4)
    return state, np.asarray(src)


def _forward_steady(m, key):
    """Independent forward estimator of the box-average concentration per unit flux.

    Cell ``c`` emits ``Q_c = q_c A_c`` (kg/s) over ``[t_r - T, t_r]``; in a steady met
    the box concentration at ``t_r`` is ``(1/V) int_0^T Q_c P_c(in box at age a) da``.
    ``m`` particles are released at once from each cell (uniform in the cell and in
    ``[0, h_s]``, the source layer the footprint assumes) and run *forward*; each
    particle's time in the box over ages ``dt .. T`` estimates ``int P da``. Returns the
    per-particle values ``A_c t_p / (m V)`` (s/m) and their source cells.
    """
    k1, k2 = jr.split(key)
    state, src = _forward_release(m, k1, MET, 0.0)
    _, hits = run_particles(
        state,
        MET,
        HANNA,
        key=k2,
        dt=DT,
        n_steps=STEPS,
        accumulate=_BoxHits(DT),
        carry=jnp.zeros(src.size),
    )
    area = (XE[1] - XE[0]) * (YE[1] - YE[0])
    return np.asarray(hits, np.float64) * area / (m * BOX_VOLUME), src


def _flux_maps():
    rng = np.random.default_rng(5)
    hotspot = np.zeros((NY, NX))
    hotspot[2, 6] = 1.0
    yy, xx = np.meshgrid(np.arange(NY), np.arange(NX), indexing="ij")
    smooth = np.exp(0.5 * np.sin(xx / 2.0 + rng.uniform(0, 6)) * np.cos(yy / 1.5))
    return {"uniform": np.ones((NY, NX)), "hotspot": hotspot, "smooth": smooth}


def _compare(y_b, se_b, y_f, se_f, rel):
    """Agreement within 4 combined standard errors, and within ``rel``."""
    se = math.hypot(se_b, se_f)
    assert abs(y_b - y_f) < 4 * se, (y_b, y_f, se)
    assert abs(y_b / y_f - 1) < rel, (y_b, y_f)


# -- 1. backward/forward duality --------------------------------------------------------


def test_backward_footprint_equals_forward_run(box_fp):
    """Receptor values ``F q`` from backward footprints equal an independent forward
    particle run for three flux maps (uniform, one hotspot, smooth), within Monte Carlo
    error. Both sides estimate the box-average concentration (backward: receptors
    uniform in the box, iid, their spread gives the error; forward: the box count,
    particles iid within a cell). Measured: 0.2 %, 0.3 %, 0.6 % (1-2 % standard errors).
    """
    F = np.asarray(box_fp.dense(), np.float64)  # (K, ny, nx)
    vals, src = _forward_steady(1000, jr.key(11))
    for name, q in _flux_maps().items():
        yb = (F * q).sum((1, 2))
        v = vals * q.ravel()[src]
        y_f = v.sum()
        se_f = math.sqrt(sum(1000 * np.var(v[src == c], ddof=1) for c in range(NY * NX)))
        _compare(yb.mean(), yb.std(ddof=1) / math.sqrt(K), y_f, se_f, 0.15)
        if name == "uniform":
            assert y_f > 1.0  # s/m: the test is not comparing two zeros
    # the maps agree cell by cell where the footprint is large
    ff = np.bincount(src, weights=vals, minlength=NY * NX).reshape(NY, NX)
    se_ff = np.sqrt(1000 * np.array([np.var(vals[src == c], ddof=1) for c in range(NY * NX)]))
    se = np.hypot(F.std(0, ddof=1) / math.sqrt(K), se_ff.reshape(NY, NX))
    big = F.mean(0) > 0.3 * F.mean(0).max()
    assert big.sum() >= 12
    assert np.all(np.abs(F.mean(0) - ff)[big] < 4.5 * se[big])


@pytest.mark.slow
def test_duality_in_a_time_varying_wind():
    """As above in a wind that turns and changes speed every 10 min (linearly
    interpolated): the forward side now needs a continuous release (``release_step``
    uniform over the emission window ``[0, 1200]`` s) and counts the box over the last
    10 steps; the backward side releases receptors uniformly in the box *and* over
    those 10 times, with the emission window as ``time_windows``."""
    met = MetField.from_timeseries(
        [-1200.0, -600.0, 0.0, 600.0, 1200.0],
        [5.0, 6.0, 4.0, 5.0, 6.0],
        [270.0, 260.0, 280.0, 262.0, 275.0],
        stability=None,
        obukhov_length=-200.0,
        pblh=800.0,
    )
    W, m = 10, 6000
    k1, k2, k3 = jr.split(jr.key(21), 3)
    state, src = _forward_release(m, k1, met, 0.0)
    release = jr.randint(k2, (src.size,), 0, STEPS)
    _, hits = run_particles(
        state,
        met,
        HANNA,
        key=k3,
        dt=DT,
        n_steps=STEPS,
        release_step=release,
        accumulate=_BoxHits(DT, release, STEPS - W),
        carry=jnp.zeros(src.size),
    )
    # particle mass Q_c T / m, averaged over the W counted steps (each of length dt)
    area = (XE[1] - XE[0]) * (YE[1] - YE[0])
    vals = np.asarray(hits, np.float64) * area * STEPS * DT / (m * BOX_VOLUME * W * DT)
    rng = np.random.default_rng(3)
    kb = 4 * W
    receptors = PointReceptors(*(rng.uniform(lo, hi, kb) for lo, hi in BOX), units="kg_m3")
    times = np.repeat(DT * np.arange(STEPS - W + 1, STEPS + 1), 4)
    fp = _footprint(
        receptors,
        met=met,
        time=times,
        key=22,
        time_windows=[0.0, STEPS * DT + 1.0],
        batch_size=kb,
    )
    F = np.asarray(fp.dense(), np.float64)[:, 0]
    for q in _flux_maps().values():
        yb = (F * q).sum((1, 2))
        v = vals * q.ravel()[src]
        se_f = math.sqrt(sum(m * np.var(v[src == c], ddof=1) for c in range(NY * NX)))
        _compare(yb.mean(), yb.std(ddof=1) / math.sqrt(kb), v.sum(), se_f, 0.15)


# -- 2. closed form -------------------------------------------------------------------


def _ar1_variance(sigma, tau, dt, k):
    """Variance of the displacement ``dt sum_{m=1..k} u_m`` of the engine's exact AR(1)
    velocity ``u_{m+1} = r u_m + sigma sqrt(1 - r^2) xi`` (stationary, ``r =
    exp(-dt/tau)``): ``dt^2 sigma^2 [k (1+r)/(1-r) - 2 r (1 - r^k)/(1-r)^2]``. As
    ``dt -> 0`` it is Taylor's (1921) ``2 sigma^2 tau (t - tau (1 - exp(-t/tau)))``."""
    r = math.exp(-dt / tau)
    return dt**2 * sigma**2 * (k * (1 + r) / (1 - r) - 2 * r * (1 - r**k) / (1 - r) ** 2)


def test_footprint_closed_form_in_homogeneous_turbulence():
    """Homogeneous turbulence in a uniform wind ``U`` along x, no lid in reach (h = 2000
    m, 10 sigma_z away): the backward position after ``k`` steps is ``x_r - U t_k + X``,
    ``y_r + Y``, ``|z_r + Z|`` (perfect reflection at the ground folds the free Gaussian
    process), with independent Gaussian ``X, Y, Z`` of the AR(1) variances above. So

        F_ji = (1/h_s) sum_k dt P(x in cell i) P(y in cell j) P(|z_r + Z| <= h_s),

    each factor a difference of normal CDFs. 16 replicate receptors x 256 particles
    give the Monte Carlo error; the map is compared cell by cell (mean squared
    standardised error: 0.8-1.5 over four keys, 6-13 with a spread 10 % off). The same
    map is the Gaussian plume of each cell with Taylor's (1921) spreads (the AR(1)
    variance is checked against Taylor's to 2 % at the last step)."""
    su, sw, tau, U, zr, fraction, h = 0.8, 0.4, 100.0, 5.0, 50.0, 0.1, 2000.0
    met = MetField.uniform(U, 270.0, stability="D", pblh=h)
    turbulence = HomogeneousTurbulence(su, su, sw, tau)
    xe, ye = np.arange(-7000.0, 501.0, 500.0), np.arange(-1000.0, 1001.0, 200.0)
    xr, yr, dt, steps = 250.0, 0.0, 20.0, 60
    receptors = PointReceptors(np.full(16, xr), yr, zr, units="kg_m3")
    fp = backward_footprints(
        receptors,
        met,
        x=xe,
        y=ye,
        time=0.0,
        duration=steps * dt,
        dt=dt,
        key=jr.key(3),
        n_particles=256,
        turbulence=turbulence,
        surface_layer=fraction,
        batch_size=16,
    )
    F = np.asarray(fp.dense(), np.float64)
    hs = fraction * h

    def closed_form(U, su, sw):
        ref = np.zeros(F.shape[1:])
        for k in range(1, steps + 1):
            sx = math.sqrt(_ar1_variance(su, tau, dt, k))
            sz = math.sqrt(_ar1_variance(sw, tau, dt, k))
            px = np.diff(ndtr((xe - (xr - U * k * dt)) / sx))
            py = np.diff(ndtr((ye - yr) / sx))
            pz = ndtr((hs - zr) / sz) - ndtr((-hs - zr) / sz)
            ref += dt * pz * np.outer(py, px) / hs
        return ref

    t = steps * dt
    taylor = 2 * su**2 * tau * (t - tau * (1 - math.exp(-t / tau)))
    assert _ar1_variance(su, tau, dt, steps) / taylor == pytest.approx(1.0, abs=0.02)
    mean, se = F.mean(0), F.std(0, ddof=1) / 4.0
    total = F.sum((1, 2))

    def agrees(ref):
        big = ref > 0.05 * ref.max()  # 60-70 cells
        chi2 = np.mean(((mean - ref) / (se + 1e-3 * ref.max()))[big] ** 2)  # measured 0.8-1.5
        return (
            abs(total.mean() - ref.sum()) < 4 * total.std(ddof=1) / 4.0
            and abs(total.mean() / ref.sum() - 1) < 0.03
            and big.sum() >= 30
            and chi2 < 2.5
        )

    assert agrees(closed_form(U, su, sw))
    # the test can fail: a 10 % error in the wind or in either spread is detected
    assert not agrees(closed_form(1.1 * U, su, sw))
    assert not agrees(closed_form(U, 1.1 * su, sw))
    assert not agrees(closed_form(U, 0.9 * su, sw))
    assert not agrees(closed_form(U, su, 1.1 * sw))


# -- 3. units --------------------------------------------------------------------------


def test_ppm_and_kg_m3_differ_by_the_geometry_factor(box_fp):
    """Same receptors and key: the ppm footprint is the kg/m3 one times ``1e6 / (M_CH4
    n)``, ``n = p/(R T)`` from plumax_core.units (the Tier I PointReceptors factor)."""
    ppm = _footprint(_box_receptors(1, "ppm"))
    factor = 1e6 / (units.M_CH4 * units.air_molar_density(288.15, 101325.0))
    np.testing.assert_allclose(
        np.asarray(ppm.dense()), np.asarray(box_fp.dense()) * factor, rtol=2e-6
    )
    assert ppm.kind == "concentration_ppm" and ppm.units == "ppm (kg m-2 s-1)-1"
    assert box_fp.units == "kg m-3 (kg m-2 s-1)-1"


def test_column_is_the_integral_of_point_footprints_and_balances_mass():
    """A column's footprint (kg/m2 per kg m-2 s-1 = s) is ``int_0^h F_point(z) dz``:
    compared with 16 point receptors at the midpoints of 16 layers (x 50 m), within
    Monte Carlo error; ppm m and XCH4 are the same footprint times the Tier I geometry
    factors; and the mass balance: on a grid holding every particle and with
    ``surface_layer = 1``, ``sum F = T`` exactly (every kilogram emitted in the last
    ``T`` seconds is in the column), with 0.5 to within the MC error (well mixed)."""
    x0, y0, h = 250.0, 0.0, 800.0
    heights = (np.arange(16) + 0.5) * h / 16
    points = _footprint(PointReceptors(np.full(16, x0), y0, heights, units="kg_m3"), key=4)
    integral = np.asarray(points.dense(), np.float64).sum(0) * h / 16
    cols = ColumnReceptors(np.full(16, x0), y0, units="kg_m2")
    column = _footprint(cols, key=5)
    assert column.kind == "column_kg_m2" and column.units == "kg m-2 (kg m-2 s-1)-1"
    C = np.asarray(column.dense(), np.float64)
    tot_c, tot_p = C.sum((1, 2)), integral.sum()
    assert tot_c.mean() / tot_p == pytest.approx(1.0, abs=0.05)
    big = integral > 0.3 * integral.max()
    np.testing.assert_allclose(C.mean(0)[big], integral[big], rtol=0.15)
    # unit conversions: the geometry's factors, exactly
    n_air = units.air_molar_density(288.15, 101325.0)
    for unit, factor in (
        ("ppm_m", 1e6 / (units.M_CH4 * n_air)),
        ("xch4_ppb", 1e9 / (units.M_CH4 * 101325.0 / (units.G0 * units.M_AIR))),
    ):
        other = _footprint(ColumnReceptors(np.full(16, x0), y0, units=unit), key=5)
        np.testing.assert_allclose(np.asarray(other.dense()), C * factor, rtol=2e-6)
    # averaging kernel 1 below h/2, 0 above: only the lower half of the column
    ak = ColumnReceptors(np.full(16, x0), y0, units="kg_m2", averaging_kernel=lambda z: z < 400)
    lower = np.asarray(_footprint(ak, key=6).dense(), np.float64).sum((1, 2))
    half = np.asarray(points.dense(), np.float64)[:8].sum() * h / 16  # heights below 400 m
    assert half < 0.9 * tot_p
    assert lower.mean() / half == pytest.approx(1.0, abs=0.05)
    # mass balance on a 10 x 6 grid of 4 km x 10 km cells (same shape: no recompile)
    wide_x, wide_y = np.linspace(-36000.0, 4000.0, 11), np.linspace(-30000.0, 30000.0, 7)
    exact = _footprint(cols, x=wide_x, y=wide_y, key=7, surface_layer=1.0)
    np.testing.assert_allclose(np.asarray(exact.dense()).sum((1, 2)), STEPS * DT, rtol=1e-5)
    mixed = np.asarray(_footprint(cols, x=wide_x, y=wide_y, key=7).dense()).sum((1, 2))
    se = float(mixed.std(ddof=1)) / 4 / (STEPS * DT)
    assert float(mixed.mean()) / (STEPS * DT) == pytest.approx(1.0, abs=4 * se + 0.01)


# -- 4. sparse storage, the operator and the forward model -----------------------------


def test_sparse_storage_and_operator(box_fp):
    D = np.asarray(box_fp.dense(), np.float64).reshape(K, -1)
    nnz = np.count_nonzero(D)
    assert box_fp.matrix.nse == nnz  # every stored entry is a non-zero, none missing
    assert box_fp.fill_fraction == pytest.approx(nnz / D.size)
    assert 0.3 < box_fp.fill_fraction < 1.0  # downwind cells are never touched
    assert np.all(D[:, (np.arange(NX * NY) % NX) == NX - 1] == 0)  # x in [500, 1000]
    rng = np.random.default_rng(0)
    q = rng.normal(size=(NY, NX))
    np.testing.assert_allclose(np.asarray(box_fp.apply(q)), D @ q.ravel(), rtol=1e-5)
    qs = rng.normal(size=(3, NY, NX))
    np.testing.assert_allclose(
        np.asarray(box_fp.apply(qs)), qs.reshape(3, -1) @ D.T, rtol=1e-4, atol=1e-9
    )
    op = box_fp.operator
    assert isinstance(op, SparseMatrix) and op.shape == (K, NY * NX)
    w = rng.normal(size=K)
    np.testing.assert_allclose(np.asarray(op.transpose().mv(jnp.asarray(w))), D.T @ w, rtol=1e-4)
    # receptors far upwind of the grid (particles go further upwind): empty rows
    far = PointReceptors(np.full(K, -30000.0), 0.0, 20.0, units="kg_m3")
    empty = _footprint(far, key=9)
    assert empty.matrix.nse == 0 and empty.fill_fraction == 0.0
    ds = box_fp.to_xarray()
    assert ds["footprint"].dims == ("receptor", "y", "x")
    assert ds["footprint"].attrs["units"] == "kg m-3 (kg m-2 s-1)-1"
    np.testing.assert_allclose(ds["footprint"].values.reshape(K, -1), D, rtol=1e-6)
    np.testing.assert_allclose(ds["x"].values, XE[:-1] + 250.0)


def test_footprint_forward_is_F_q_plus_background(box_fp):
    D = np.asarray(box_fp.dense(), np.float64).reshape(K, -1)
    b = np.linspace(1.0, 2.0, K)
    model = FootprintForward(box_fp, b)
    p = model.param_spec["flux"]
    assert p.shape == (NY, NX) and p.units == "kg m-2 s-1" and p.lower == -math.inf
    q = np.random.default_rng(1).normal(size=(NY, NX)) * 1e-3
    obs = model({"flux": q}, MET)
    assert obs.kind == "concentration_kg_m3" and obs.dims == ("receptor",)
    np.testing.assert_allclose(np.asarray(obs.values), D @ q.ravel() + b, rtol=1e-5)
    jitted = jax.jit(lambda f: model({"flux": f}, MET).values)
    np.testing.assert_allclose(np.asarray(jitted(q)), np.asarray(obs.values), rtol=1e-6)
    # linear: the gradient of w . y is F^T w, whatever the flux
    w = np.random.default_rng(2).normal(size=K)
    for qq in (q, 5 * q + 1.0):
        g = jax.grad(lambda f: jnp.dot(jnp.asarray(w), model({"flux": f}, MET).values))(
            jnp.asarray(qq)
        )
        np.testing.assert_allclose(np.asarray(g).ravel(), D.T @ w, rtol=1e-4, atol=1e-9)
    batch = jax.vmap(lambda f: model({"flux": f}, MET).values)(jnp.stack([q, 2 * q]))
    np.testing.assert_allclose(np.asarray(batch[1]), 2 * (D @ q.ravel()) + b, atol=1e-6)
    # positive: lognormal-ready spec, negative flux refused, eagerly and (as the Tier I
    # models' `strict`) at run time under jit, or NaN values with strict=False
    pos = FootprintForward(box_fp, 0.0, positive=True)
    assert pos.param_spec["flux"].lower == 0.0 and pos.param_spec["flux"].log
    with pytest.raises(ValueError, match="flux"):
        pos({"flux": -np.ones((NY, NX))}, MET)
    bad = np.abs(q) + 1e-6
    bad[1, 2] = -1e-6
    traced = jax.jit(lambda f: pos({"flux": f}, MET).values)
    np.testing.assert_allclose(
        np.asarray(traced(np.abs(q))), D @ np.abs(q).ravel(), rtol=1e-5, atol=1e-12
    )
    with pytest.raises(InvalidInputError, match=r"`params\['flux'\]`.*<= 0"), clean_errors():
        traced(bad)
    lenient = FootprintForward(box_fp, 0.0, positive=True, strict=False)
    assert np.all(np.isnan(np.asarray(jax.jit(lambda f: lenient({"flux": f}, MET).values)(bad))))
    nan_q = q.copy()
    nan_q[0, 0] = np.nan
    with pytest.raises(InvalidInputError, match=r"`params\['flux'\]` contains NaN"), clean_errors():
        jitted(nan_q)
    with pytest.raises(ValueError, match="flux"):
        model({"flux": np.ones((NX, NY))}, MET)
    with pytest.raises(ValueError, match="`background`"):
        FootprintForward(box_fp, np.zeros(K + 1))
    with pytest.raises(ValueError, match="`footprint`"):
        FootprintForward(D, 0.0)


# -- 5. time windows -------------------------------------------------------------------


def test_time_windows_sum_to_the_whole_footprint(box_fp):
    """Same receptors and key, three windows covering the run: the windows add up to the
    footprint without windows (the same trajectories; only the bins differ), and the
    most recent window holds the near field (the receptor's own cell)."""
    edges = [-STEPS * DT - 1.0, -800.0, -400.0, 1.0]
    fw = _footprint(_box_receptors(1), time_windows=edges)
    assert fw.flux_shape == (3, NY, NX) and fw.n_windows == 3
    Dw = np.asarray(fw.dense(), np.float64)
    np.testing.assert_allclose(Dw.sum(1), np.asarray(box_fp.dense()), rtol=1e-5, atol=1e-12)
    near = Dw[:, :, 2:4, NX - 2].sum(-1).mean(0)  # the box's cell, x in [0, 500]
    assert near[2] > 10 * near[0]
    assert fw.to_xarray()["footprint"].dims == ("receptor", "window", "y", "x")
    q = np.ones((3, NY, NX))
    np.testing.assert_allclose(
        np.asarray(FootprintForward(fw)({"flux": q}, MET).values),
        np.asarray(box_fp.apply(np.ones((NY, NX)))),
        rtol=1e-5,
    )


def test_windows_do_not_depend_on_the_epoch():
    """Steady met, windows ``t + [-600, -300, -250, 0]`` s, dt = 20 s, receptors at ``t``
    and ``t + 10`` s (alternately): at ``t = 0`` and at a UTC epoch ``t = 1.7e9`` s
    (float32 resolution 128 s) the footprints are the same. With ``surface_layer = 1``
    and a grid holding every particle a window's total is exactly the time its steps
    cover over ``h_s`` (a step in the window of its midpoint, a midpoint on an edge in the
    earlier window): 300, 60, 240 s and, 10 s later, 300, 40, 260 s. Measuring time from
    the met's first time (0) in float32 put the epoch run's steps in the wrong windows
    (380, 0, 200 s)."""
    wide_x, wide_y = np.linspace(-36000.0, 4000.0, 11), np.linspace(-30000.0, 30000.0, 7)
    offsets = np.tile([0.0, 10.0], K // 2)
    dense = {}
    for t in (0.0, 1.7e9):
        fp = _footprint(
            _box_receptors(1),
            x=wide_x,
            y=wide_y,
            time=t + offsets,
            time_windows=t + np.array([-600.0, -300.0, -250.0, 0.0]),
            surface_layer=1.0,
        )
        np.testing.assert_array_equal(fp.time, t + offsets)  # float64 on the host
        dense[t] = np.asarray(fp.dense(), np.float64)
        expected = np.where(offsets[:, None] == 0.0, [300.0, 60.0, 240.0], [300.0, 40.0, 260.0])
        np.testing.assert_allclose(dense[t].sum((2, 3)) * 800.0, expected, rtol=1e-4)
    np.testing.assert_allclose(dense[1.7e9], dense[0.0], rtol=1e-6, atol=0.0)


@pytest.mark.slow
def test_window_equals_a_shorter_run_and_batches_do_not_matter(box_fp):
    """The last 400 s window is the footprint of a 400 s run with the same key (step
    ``k`` draws ``fold_in(key, k)``), and receptor ``r`` uses ``fold_in(key, r)``:
    ``batch_size`` does not change the result."""
    fw = _footprint(_box_receptors(1), time_windows=[-400.0, 1.0])
    short = _footprint(_box_receptors(1), duration=400.0)
    np.testing.assert_allclose(
        np.asarray(fw.dense())[:, 0], np.asarray(short.dense()), rtol=1e-5, atol=1e-12
    )
    other = _footprint(_box_receptors(1), batch_size=5)
    np.testing.assert_allclose(np.asarray(other.dense()), np.asarray(box_fp.dense()), rtol=1e-5)


@pytest.mark.slow
def test_sparse_at_100_receptors_6_hours():
    """100 receptors x 200 particles x 6 h at 60 s on a 110 x 40 grid of 1 km cells:
    finite, sparse (a 6 h fetch covers about a fifth of the grid)."""
    rng = np.random.default_rng(0)
    receptors = PointReceptors(rng.uniform(0, 5000, 100), rng.uniform(-2000, 2000, 100), 10.0)
    fp = backward_footprints(
        receptors,
        MET,
        x=np.linspace(-100e3, 10e3, 111),
        y=np.linspace(-20e3, 20e3, 41),
        time=0.0,
        duration=6 * 3600.0,
        dt=60.0,
        key=jr.key(0),
        n_particles=200,
    )
    assert np.all(np.isfinite(np.asarray(fp.matrix.data)))
    assert 0.0 < fp.fill_fraction < 0.35


# -- 6. bad input ----------------------------------------------------------------------


def test_bad_input_raises_naming_the_argument():
    rec = _box_receptors(1, k=2)
    ok = dict(x=XE, y=YE, time=0.0, duration=1200.0, dt=20.0, key=jr.key(0))
    bad = {
        "x": dict(x=XE[::-1]),
        "y": dict(y=[0.0]),
        "time": dict(time=[0.0, 1.0, 2.0]),
        "duration": dict(duration=1210.0),
        "dt": dict(dt=-1.0),
        "n_particles": dict(n_particles=0),
        "batch_size": dict(batch_size=1.5),
        "surface_layer": dict(surface_layer=1.5),
        "time_windows": dict(time_windows=[0.0, -5.0]),
        "turbulence": dict(turbulence="hanna"),
    }
    for name, change in bad.items():
        with pytest.raises(ValueError, match=f"`{name}"):
            backward_footprints(rec, MET, **{**ok, **change})
    with pytest.raises(ValueError, match="`receptors`"):
        backward_footprints(object(), MET, **ok)
    high = PointReceptors([0.0], 0.0, 900.0)  # above pblh = 800 m
    with pytest.raises(ValueError, match="`receptors`.*above the boundary layer"):
        backward_footprints(high, MET, **ok)
    gridded = MetField(
        np.full((1, 1, 2, 2), 5.0),
        0.0,
        stability_class=3,
        pblh=800.0,
        x=[0.0, 1000.0],
        y=[-500.0, 500.0],
    )
    with pytest.raises(ValueError, match="`receptors`.*outside the met's horizontal domain"):
        backward_footprints(PointReceptors([-10.0], 0.0, 10.0), gridded, **ok)
    varying = MetField.from_timeseries([0.0, 600.0], [5.0, 6.0], [270.0, 270.0], stability="D")
    with pytest.raises(ValueError, match="`time`.*outside the met time range"):
        backward_footprints(rec, varying, **{**ok, "time": 600.0})
    # times float32 cannot resolve to dt / 100 (raised before any run): an epoch time
    # 1.7e9 s after the first time of a time-varying met, and window edges over a run
    # of 400 000 steps
    if jnp.result_type(float) == jnp.float32:
        epoch = MetField.from_timeseries([0.0, 2e9], [5.0, 6.0], [270.0, 270.0], stability="D")
        with pytest.raises(ValueError, match="`time`: float32 resolves only 128 s"):
            backward_footprints(rec, epoch, **{**ok, "time": 1.7e9})
        with pytest.raises(ValueError, match="`time_windows`: float32 resolves"):
            backward_footprints(
                rec, MET, **{**ok, "dt": 0.01, "duration": 4000.0, "time_windows": [-10.0, 0.0]}
            )
    with pytest.raises(ValueError, match="`units`"):
        ColumnReceptors([0.0], 0.0, units="ppm")
    with pytest.raises(ValueError, match="`averaging_kernel"):
        ColumnReceptors([0.0], 0.0, averaging_kernel=([0.0, 0.0], [1.0, 1.0]))
    with pytest.raises(ValueError, match="`averaging_kernel`"):
        ColumnReceptors([0.0], 0.0, averaging_kernel=3.0)
    with pytest.raises(ValueError, match="`q`"):
        Footprint.apply(_footprint_stub(), np.ones((3, 3)))


def _footprint_stub():
    from jax.experimental import sparse as jsparse

    m = jsparse.BCOO.fromdense(jnp.eye(2, NY * NX))
    return Footprint(
        m,
        jnp.asarray(XE),
        jnp.asarray(YE),
        np.zeros(2),
        None,
        kind="concentration_ppm",
        n_particles=1,
        duration=1.0,
        dt=1.0,
        surface_layer=0.5,
    )
