"""Pixel averaging (`supersample`, `PixelAveraged`): a drop-in for every grid tier.

Independent references: the crosswind integral of a steady plume's column is exactly
``Q/u`` at every downwind distance (mass flux), so the pixel mean of it is too; and the
wrapper equals a NumPy block mean of the same model on the supersampled grid.
"""

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pytest

from plumax_core import MetField
from plumax_core.testing import check_forward_model
from plumax_transport import (
    ColumnAverage,
    ColumnImage,
    GaussianPlume,
    GaussianPuff,
    PixelAveraged,
    PointReceptors,
    supersample,
)

MET = MetField.uniform(5.0, 270.0, stability="D", pblh=800.0)
P = {"Q": jnp.asarray(0.5), "x0": jnp.asarray(0.0), "y0": jnp.asarray(0.0), "H": jnp.asarray(5.0)}


def _block_mean(a: np.ndarray, f: int) -> np.ndarray:
    ny, nx = a.shape
    return a.reshape(ny // f, f, nx // f, f).mean(axis=(1, 3))


@pytest.mark.parametrize("f", [1, 2, 4])
def test_supersample_splits_each_pixel_evenly(f):
    g = ColumnImage(np.linspace(0.0, 300.0, 6), np.linspace(-90.0, 90.0, 4), z_top=400.0)
    fine = supersample(g, f)
    assert type(fine) is ColumnImage and fine.units == g.units and fine.z_top == 400.0
    fx, fy = np.asarray(fine.x, float), np.asarray(fine.y, float)
    assert fx.shape == (6 * f,) and fy.shape == (4 * f,)
    np.testing.assert_allclose(fx.reshape(6, f).mean(axis=1), np.asarray(g.x), atol=1e-4)
    np.testing.assert_allclose(fy.reshape(4, f).mean(axis=1), np.asarray(g.y), atol=1e-4)
    np.testing.assert_allclose(np.diff(fx), 60.0 / f, rtol=1e-5)  # even sub-pixels


def test_supersample_keeps_other_grid_geometries():
    g = ColumnAverage(np.linspace(0.0, 300.0, 6), np.linspace(-90.0, 90.0, 4), column_height=500.0)
    fine = supersample(g, 3)
    assert type(fine) is ColumnAverage and fine.column_height == 500.0
    assert fine.x.shape == (18,) and fine.y.shape == (12,)


def test_pixel_average_equals_a_numpy_block_mean_of_the_fine_plume():
    g = ColumnImage(np.linspace(60.0, 1200.0, 12), np.linspace(-330.0, 330.0, 12))
    model = PixelAveraged(GaussianPlume(g), 4)
    assert model.model.crosswind_cell == pytest.approx(60.0 / 4)  # the sub-pixel width
    fine = GaussianPlume(supersample(g, 4), crosswind_cell=15.0)(P, MET)
    out = model(P, MET)
    np.testing.assert_allclose(out.values, _block_mean(np.asarray(fine.values), 4), rtol=1e-6)
    assert out.kind == "column_ppm_m" and out.dims == ("y", "x") and out.shape == (12, 12)
    np.testing.assert_array_equal(out.coords["x"], g.x)
    np.testing.assert_array_equal(out.coords["y"], g.y)
    assert model.param_spec == GaussianPlume(g).param_spec
    assert model.model_id.endswith("GaussianPlume[pixel-averaged:4x4]")


def test_crosswind_cell_mean_is_the_fine_limit_and_smooth_in_y0():
    """With the crosswind cell mean, 4x4 sub-pixels give the 64x64 point mean (a wind
    along x: the crosswind integral is exact) to 1e-3, where 4x4 point samples of a
    class F plume narrower than a sub-pixel are off by much more; and the pixel value
    moves smoothly with y0 (no steps as the plume crosses sub-sample rows)."""
    from plumax_core import MetField

    g = ColumnImage(np.linspace(-180.0, 1260.0, 25), np.linspace(-720.0, 720.0, 25))
    met = MetField.uniform(4.0, 270.0, stability="F", pblh=800.0)
    p = {
        "Q": jnp.asarray(0.3),
        "x0": jnp.asarray(0.0),
        "y0": jnp.asarray(0.0),
        "H": jnp.asarray(5.0),
    }
    plume = GaussianPlume(g, check_upwind=False)
    fine_points = GaussianPlume(supersample(g, 64), check_upwind=False)(p, met)
    ref = _block_mean(np.asarray(fine_points.values, np.float64), 64)
    cell = np.asarray(PixelAveraged(plume, 4)(p, met).values)
    points = _block_mean(
        np.asarray(GaussianPlume(supersample(g, 4), check_upwind=False)(p, met).values), 4
    )
    # from 2 pixels downwind (x >= 120 m, sigma_y >= 4 m) the 64x64 points have converged
    cell, points, ref = cell[:, 5:], points[:, 5:], ref[:, 5:]
    scale = ref.max()
    assert np.abs(cell - ref).max() / scale < 1e-3
    assert np.abs(points - ref).max() / scale > 1e-2
    ys = np.linspace(-45.0, 45.0, 181)

    def peaks(model):
        v = np.array([float(model({**p, "y0": jnp.asarray(y)}, met).values[12, 5]) for y in ys])
        dv = np.diff(v)
        d = np.sign(np.where(np.abs(dv) > 1e-3 * np.abs(v).max(), dv, 0.0))  # above round-off
        d = d[d != 0]
        return int(np.sum((d[:-1] > 0) & (d[1:] < 0)))

    assert peaks(PixelAveraged(plume, 4)) == 1  # one hump as the plume crosses the pixel
    pointwise = PixelAveraged(plume, 4)
    pointwise = eqx.tree_at(
        lambda m: m.model, pointwise, GaussianPlume(supersample(g, 4), check_upwind=False)
    )
    assert peaks(pointwise) > 1  # point samples: a bump per sub-sample row


def test_crosswind_cell_is_checked():
    g = ColumnImage(np.linspace(60.0, 1200.0, 12), np.linspace(-330.0, 330.0, 12))
    with pytest.raises(ValueError, match="crosswind_cell"):
        GaussianPlume(g, crosswind_cell=-1.0)


def test_pixel_average_keeps_the_crosswind_mass_flux_q_over_u():
    """∫ Ω dy = Q/u (kg/m) for a steady plume at any x > 0 (the wind at the release
    height; reference_height=None takes the met wind as is). Near the source the plume
    (σy ≈ 8-20 m) is narrower than the 60-m pixels: point sampling at the pixel centres
    aliases it, the 16x16 pixel mean recovers Q/u to 0.1 %."""
    g = ColumnImage(np.arange(6) * 60.0 + 150.0, np.arange(-8, 8) * 60.0 + 30.0, units="kg_m2")
    plume = GaussianPlume(g, reference_height=None)
    want = float(P["Q"]) / 5.0
    point = np.asarray(plume(P, MET).values).sum(axis=0) * 60.0
    avg = np.asarray(PixelAveraged(plume, 16)(P, MET).values).sum(axis=0) * 60.0
    np.testing.assert_allclose(avg, want, rtol=1e-3)
    assert np.max(np.abs(point / want - 1)) > 0.1  # what the averaging is for


def test_pixel_average_is_a_drop_in_for_the_puff():
    g = ColumnImage(np.linspace(100.0, 1200.0, 8), np.linspace(-280.0, 280.0, 8))
    puff = GaussianPuff(g, [0.0, 300.0, 600.0], obs_time=600.0, puff_interval=20.0)
    model = PixelAveraged(puff, 2)
    assert model.param_spec == puff.param_spec
    fine = GaussianPuff(supersample(g, 2), [0.0, 300.0, 600.0], obs_time=600.0, puff_interval=20.0)
    p = {"Q": jnp.array([0.2, 0.4]), "x0": 0.0, "y0": 0.0, "H": 5.0}
    want = _block_mean(np.asarray(fine(p, MET).values), 2)
    np.testing.assert_allclose(model(p, MET).values, want, rtol=1e-6, atol=1e-9)


def test_pixel_averaged_plume_meets_the_forward_model_contract():
    g = ColumnImage(np.linspace(60.0, 900.0, 8), np.linspace(-240.0, 240.0, 8))
    model = PixelAveraged(GaussianPlume(g, check_upwind=False), 2)
    batch = {
        "Q": jnp.array([0.1, 0.4]),
        "x0": jnp.array([0.0, 10.0]),
        "y0": jnp.array([0.0, -5.0]),
        "H": jnp.array([5.0, 8.0]),
    }
    check_forward_model(model, batch, MET)


def test_factor_one_is_the_point_sampled_model():
    g = ColumnImage(np.linspace(60.0, 900.0, 8), np.linspace(-240.0, 240.0, 8))
    np.testing.assert_allclose(
        PixelAveraged(GaussianPlume(g), 1)(P, MET).values, GaussianPlume(g)(P, MET).values
    )


def test_bad_input_raises_naming_it():
    g = ColumnImage(np.linspace(60.0, 900.0, 8), np.linspace(-240.0, 240.0, 8))
    with pytest.raises(ValueError, match="factor"):
        PixelAveraged(GaussianPlume(g), 0)
    with pytest.raises(ValueError, match="factor"):
        supersample(g, 2.5)
    with pytest.raises(TypeError, match="grid geometry"):
        PixelAveraged(GaussianPlume(PointReceptors([100.0], [0.0], [1.0])), 2)
    with pytest.raises(TypeError, match="AbstractForwardModel"):
        PixelAveraged(g, 2)
    uneven = ColumnImage(np.array([0.0, 60.0, 130.0, 180.0]), np.linspace(-60.0, 60.0, 3))
    with pytest.raises(ValueError, match=r"geometry\.x.*evenly spaced"):
        supersample(uneven, 2)
    single = ColumnImage(np.array([100.0]), np.linspace(-60.0, 60.0, 3))
    with pytest.raises(ValueError, match=r"geometry\.x.*at least 2"):
        supersample(single, 2)
