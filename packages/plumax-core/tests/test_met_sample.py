"""MetSampler / sample_met: exact multilinear interpolation, broadcasting of scalar, time
series and gridded fields, the time-range rule, the horizontal domain, and bad input."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plumax_core import MetField, MetSampler, clean_errors, sample_met


def _grid_met(nonuniform: bool = False):
    """A 4-D met whose u is multilinear in (t, z, y, x) and v linear, so that the
    interpolation is exact; w is a time series, pblh a 2-D (y, x) field."""
    time = np.array([0.0, 600.0, 1800.0])
    z = np.array([0.0, 50.0, 200.0])
    y = np.array([-500.0, 0.0, 700.0, 1000.0]) if nonuniform else np.linspace(-500, 1000, 4)
    x = np.linspace(-1000.0, 2000.0, 5)
    T, Z, Y, X = np.meshgrid(time, z, y, x, indexing="ij")
    u = 3.0 + 1e-3 * X - 2e-3 * Y + 4e-3 * Z + 1e-4 * T + 1e-7 * X * T + 1e-6 * Y * Z
    v = -1.0 + 5e-4 * X + 1e-3 * Y - 1e-4 * T
    w = np.array([0.01, -0.02, 0.03]).reshape(3, 1, 1, 1)
    pblh = (800.0 + 0.1 * X[:1, :1] + 0.05 * Y[:1, :1]).reshape(1, 1, 4, 5)
    met = MetField(u, v, w=w, pblh=pblh, stability_class=3, time=time, z=z, y=y, x=x)

    def exact(t, zz, yy, xx):
        uu = 3.0 + 1e-3 * xx - 2e-3 * yy + 4e-3 * zz + 1e-4 * t + 1e-7 * xx * t + 1e-6 * yy * zz
        vv = -1.0 + 5e-4 * xx + 1e-3 * yy - 1e-4 * t
        return uu, vv, np.interp(t, time, [0.01, -0.02, 0.03]), 800.0 + 0.1 * xx + 0.05 * yy

    return met, exact


@pytest.mark.parametrize("nonuniform", [False, True])
def test_multilinear_fields_are_reproduced_exactly(x64, nonuniform):
    met, exact = _grid_met(nonuniform)
    rng = np.random.default_rng(0)
    n = 50
    t = rng.uniform(0.0, 1800.0, n)
    zz, yy, xx = rng.uniform(0, 200, n), rng.uniform(-500, 1000, n), rng.uniform(-1000, 2000, n)
    got = sample_met(met, ("u", "v", "w", "pblh"), t, xx, yy, zz)
    for g, e in zip(got, exact(t, zz, yy, xx), strict=True):
        np.testing.assert_allclose(np.asarray(g), e, rtol=1e-12, atol=1e-12)
    # a scalar query time broadcasts against per-point positions
    u, w = sample_met(met, ("u", "w"), 900.0, xx, yy, zz)
    np.testing.assert_allclose(np.asarray(u), exact(900.0, zz, yy, xx)[0], rtol=1e-12)
    assert np.shape(w) == ()  # a time series at one time: one value


@pytest.mark.parametrize("per_point_time", [False, True])
def test_corner_tables_and_corner_gathers_agree(x64, per_point_time):
    """The two storage layouts (module docstring) give the same values, with one time
    for all points (time slices blended first) or a time per point."""
    met, exact = _grid_met(nonuniform=True)
    rng = np.random.default_rng(2)
    n = 40
    zz, yy, xx = rng.uniform(-10, 250, n), rng.uniform(-600, 1100, n), rng.uniform(-1e3, 2e3, n)
    t = rng.uniform(0.0, 1800.0, n) if per_point_time else 700.0
    fields = ("u", "v", "w", "pblh")
    a = MetSampler(met, fields, corner_tables=True)(t, xx, yy, zz)
    b = MetSampler(met, fields, corner_tables=False)(t, xx, yy, zz)
    assert all(tab.corners for tab in MetSampler(met, fields).tables if tab.spatial)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=1e-12, atol=1e-12)
    # outside the grid: the value at the nearest edge (constant extrapolation)
    want = exact(t, np.clip(zz, 0, 200), np.clip(yy, -500, 1000), np.clip(xx, -1e3, 2e3))
    np.testing.assert_allclose(np.asarray(a[0]), want[0], rtol=1e-12)


def test_nodes_give_the_stored_values(x64):
    met, _ = _grid_met()
    T, Z, Y, X = np.meshgrid(met.time, met.z, met.y, met.x, indexing="ij")
    (u,) = sample_met(met, "u", T.ravel(), X.ravel(), Y.ravel(), Z.ravel())
    np.testing.assert_allclose(np.asarray(u), np.asarray(met.u).ravel(), rtol=1e-13)


def test_scalar_and_timeseries_fields_broadcast(x64):
    met = MetField.from_timeseries(
        [0.0, 3600.0], [2.0, 6.0], [270.0, 270.0], stability="C", pblh=[500.0, 900.0]
    )
    x = np.zeros(7)
    u, pblh, temp = sample_met(met, ("u", "pblh", "temperature"), 900.0, x, x)
    assert np.shape(u) == np.shape(pblh) == np.shape(temp) == ()
    assert float(u) == pytest.approx(3.0, rel=1e-12)  # from 270 deg: u = +speed
    assert float(pblh) == pytest.approx(600.0, rel=1e-12)
    assert float(temp) == pytest.approx(288.15)
    # agrees with MetField.at, the other route to time interpolation
    at = met.at(900.0)
    assert float(u) == pytest.approx(float(at.u.ravel()[0]), rel=1e-12)
    # per-point times
    (p,) = sample_met(met, "pblh", np.array([0.0, 1800.0, 3600.0]), 0.0, 0.0)
    np.testing.assert_allclose(np.asarray(p), [500.0, 700.0, 900.0], rtol=1e-12)


def test_derived_array_field():
    met = MetField(2.0, 0.0, stability_class=3, time=0.0, x=np.array([0.0, 10.0]))
    derived = jnp.array([1.0, 3.0]).reshape(1, 1, 1, 2)
    (d,) = sample_met(met, (derived,), 0.0, np.array([2.5]), np.array([0.0]))
    assert float(d[0]) == pytest.approx(1.5)


def test_time_outside_range_raises_and_steady_met_does_not():
    met = MetField.from_timeseries([0.0, 3600.0], [2.0, 6.0], [270.0, 270.0], stability="C")
    with pytest.raises(ValueError, match="`t`.*outside the met time range"):
        sample_met(met, "u", 3601.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="`t`"):
        sample_met(met, "u", np.array([10.0, -5.0]), 0.0, 0.0)
    # a field that does not vary in time is valid at any time, even on a time axis
    (p,) = sample_met(met, "pblh", 1e6, 0.0, 0.0)
    assert float(p) == pytest.approx(1000.0)
    steady = MetField.uniform(4.0, 180.0, time=100.0)
    (v,) = sample_met(steady, "v", -1e9, 0.0, 0.0)
    assert float(v) == pytest.approx(4.0, rel=1e-6)


def test_traced_time_is_checked_at_run_time():
    met = MetField.from_timeseries([0.0, 3600.0], [2.0, 6.0], [270.0, 270.0], stability="C")
    f = jax.jit(lambda t: sample_met(met, "u", t, 0.0, 0.0)[0])
    assert float(f(1800.0)) == pytest.approx(4.0, rel=1e-6)
    with pytest.raises(ValueError, match="outside the met time range"), clean_errors():
        f(4000.0).block_until_ready()


def test_float32_epoch_times_interpolate_by_offset():
    """UTC-epoch times (~1.7e9 s) have a float32 resolution of 128 s; the sampler works on
    offsets from the first time computed in float64, so a query 1 s after the first
    sample is resolved."""
    t0 = 1.7e9
    met = MetField.from_timeseries([t0, t0 + 3584.0], [2.0, 9.0], [270.0, 270.0])
    sampler = MetSampler(met, ("u",))
    assert sampler.tables[0].data.dtype == jnp.float32
    (u,) = sampler(np.float64(t0 + 512.0), 0.0, 0.0)
    assert float(u) == pytest.approx(2.0 + 7.0 * 512.0 / 3584.0, rel=1e-6)
    assert float(sampler.offset(np.float64(t0 + 1.0))) == 1.0


def test_outside_points_are_clamped_and_flagged():
    met, exact = _grid_met()
    sampler = MetSampler(met, ("pblh",))
    x = np.array([-1000.0, 2000.0, 2500.0, 0.0])
    y = np.array([0.0, 1000.0, 0.0, -600.0])
    np.testing.assert_array_equal(np.asarray(sampler.contains(x, y)), [True, True, False, False])
    (h,) = sampler(0.0, x, y, 0.0)
    # clamped to the edge of the grid (constant extrapolation)
    assert float(h[2]) == pytest.approx(800.0 + 0.1 * 2000.0, rel=1e-6)
    # a met without horizontal coordinates is unbounded
    free = MetSampler(MetField.uniform(3.0, 90.0), ("u",))
    assert bool(jnp.all(free.contains(np.array([1e9]), np.array([-1e9]))))


def test_no_z_axis_means_uniform_in_height():
    met = MetField(np.array([1.0, 3.0]).reshape(1, 1, 1, 2), 0.0, x=np.array([0.0, 100.0]))
    (u,) = sample_met(met, "u", 0.0, np.array([50.0, 50.0]), 0.0, np.array([1.0, 900.0]))
    np.testing.assert_allclose(np.asarray(u), [2.0, 2.0], rtol=1e-6)


def test_sampler_under_jit_and_vmap_matches_eager():
    met, _ = _grid_met()
    sampler = MetSampler(met, ("u", "v"))
    x, y, z = jnp.array([0.0, 100.0]), jnp.array([10.0, 20.0]), jnp.array([5.0, 60.0])
    eager = sampler(300.0, x, y, z)
    jitted = eqx.filter_jit(lambda s, t: s(t, x, y, z))(sampler, jnp.asarray(300.0))
    for a, b in zip(eager, jitted, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)
    vm = jax.vmap(lambda xx: sampler(300.0, xx, y[0], z[0])[0])(x)
    np.testing.assert_allclose(np.asarray(vm), np.asarray(sampler(300.0, x, y[0], z[0])[0]))


def test_bad_input_names_the_problem():
    met, _ = _grid_met()
    with pytest.raises(ValueError, match="no field 'speed'"):
        MetSampler(met, ("speed",))
    with pytest.raises(ValueError, match="`met.obukhov_length` is not set"):
        MetSampler(met, ("obukhov_length",))
    with pytest.raises(ValueError, match="scalar or a 4-D"):
        MetSampler(met, (jnp.ones(5),))
    with pytest.raises(ValueError, match="size 3 along 'x'"):
        MetSampler(met, (jnp.ones((1, 1, 1, 3)),))
    no_coord = MetField(np.ones((1, 1, 1, 4)), 0.0)
    with pytest.raises(ValueError, match="varies along 'x'.*`met.x`"):
        MetSampler(no_coord, ("u",))
    desc = MetField(np.ones((1, 1, 1, 3)), 0.0, x=np.array([2.0, 1.0, 0.0]))
    with pytest.raises(ValueError, match="`met.x` must be strictly increasing"):
        MetSampler(desc, ("u",))
    with pytest.raises(ValueError, match="varies along 'z'"):
        MetSampler(met, ("u",))(0.0, 0.0, 0.0)
