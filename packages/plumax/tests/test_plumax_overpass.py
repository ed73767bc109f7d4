"""Fast checks of the demo's Tier IV overpass pipeline (simulate_radiance -> retrieve).

The algorithms are plumax-rtm's (``retrieve_scene``, ``RetrievalErrorModel``; tested in
``packages/plumax-rtm/tests/test_rtm_scene_retrieval.py``); these tests check that the
pipeline composes them and that the radiance file converts once, at the reader."""

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from plumax.pipelines import default_geometry, retrieve, simulate_radiance


@pytest.fixture(scope="module")
def scene():
    return simulate_radiance(
        q_kgh=3000.0,
        geometry=default_geometry(16, extent=960.0, upwind=120.0),
        supersample=2,
        key_surface=jr.key(1),
        key_noise=jr.key(2),
    )


def test_radiance_scene_is_deterministic_and_absorbs_in_the_plume(scene):
    ny, nx, m = scene.radiance.shape
    assert scene.radiance.kind == "radiance" and scene.radiance.dims == ("y", "x", "band")
    assert (ny, nx) == (16, 16) and m == scene.wavelengths.size > 10
    again = simulate_radiance(
        q_kgh=3000.0,
        geometry=default_geometry(16, extent=960.0, upwind=120.0),
        supersample=2,
        key_surface=jr.key(1),
        key_noise=jr.key(2),
    )
    np.testing.assert_array_equal(again.radiance.values, scene.radiance.values)
    # Beer-Lambert: the plume darkens the scene, more in the strong CH4 band (~2300 nm)
    # than in the weak one (~2150 nm); compare noise-free model radiance per pixel
    # with the q=0 radiance of the same surface.
    col = np.asarray(scene.column.values)
    peak = np.unravel_index(np.argmax(col), col.shape)
    strong = int(np.argmin(np.abs(scene.wavelengths - 2300.0)))
    weak = int(np.argmin(np.abs(scene.wavelengths - 2150.0)))
    params = {"Q": jnp.asarray(3000.0 / 3600.0), "x0": 0.0, "y0": 0.0, "H": 5.0}
    with_plume = np.asarray(scene.model(params, scene.met).values)[peak]
    clean = np.asarray(scene.model(dict(params, Q=jnp.asarray(1e-12)), scene.met).values)[peak]
    ratio = with_plume / clean
    assert ratio[strong] < ratio[weak] <= 1.0 + 1e-6
    assert ratio[strong] < 0.99


def test_retrieval_tracks_the_true_column(scene):
    ret = retrieve(scene, optimal_estimation=False).result
    truth = np.asarray(scene.column.values)
    ok = ret.valid & ret.mask
    assert ok.sum() >= 5, "the plume must be detected"
    slope = np.sum(ret.enhancement[ok] * truth[ok]) / np.sum(truth[ok] ** 2)
    assert 0.7 < slope < 1.3
    # off-plume pixels: enhancement / sigma behaves like standard normal noise
    off = ret.valid & ~ret.exclusion & (truth < 1.0)
    z = ret.enhancement[off] / ret.sigma[off]
    assert abs(np.mean(z)) < 0.5 and 0.5 < np.std(z) < 1.5


def test_retrieval_gain_does_not_follow_the_surface_albedo(scene):
    """Albedo correction (Thompson et al. 2016): uncorrected, the filter's response to a
    plume pixel scales with its brightness (slope 1.05 of enhancement/truth against
    albedo/mean albedo here), a per-pixel gain error the inversion cannot model."""
    ret = retrieve(scene, optimal_estimation=False).result
    truth = np.asarray(scene.column.values)
    sel = ret.valid & (truth > 300.0)
    assert sel.sum() >= 20
    ratio = ret.enhancement[sel] / truth[sel]
    slope = np.polyfit(scene.albedo[sel] / scene.albedo.mean(), ratio, 1)[0]
    assert abs(slope) < 0.3


def test_radiance_scene_file_round_trip_retrieves_the_same_map(scene, tmp_path):
    import xarray as xr

    from plumax.pipelines import read_radiance_scene

    path = tmp_path / "scene.nc"
    scene.to_dataset().to_netcdf(path)
    with xr.open_dataset(path) as ds:
        back = read_radiance_scene(ds.load())
    np.testing.assert_array_equal(back.radiance.values, scene.radiance.values)
    np.testing.assert_array_equal(back.radiance.sigma, scene.radiance.sigma)
    np.testing.assert_array_equal(back.column.values, scene.column.values)
    np.testing.assert_allclose(back.wavelengths, scene.wavelengths)
    np.testing.assert_allclose(np.asarray(back.srf.matrix), np.asarray(scene.srf.matrix))
    assert back.sza_deg == scene.sza_deg and back.pixel_size == scene.pixel_size
    a = retrieve(scene, optimal_estimation=False)
    b = retrieve(back, optimal_estimation=False)
    np.testing.assert_allclose(b.result.enhancement, a.result.enhancement, rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(b.result.mask, a.result.mask)
    # the retrieved column scene carries the pixel averaging into the inversion model
    from plumax import read_scene

    rs = read_scene(b.scene_dataset())
    assert rs.truth == {"Q_kgh": 3000.0, "x0": 0.0, "y0": 0.0}
    p = {"Q": jnp.asarray(3000.0 / 3600.0), "x0": 0.0, "y0": 0.0}
    # ... and the error model's nuisances (at 0 they change nothing)
    assert {"log_gain", "offset"} <= set(rs.nuisance_std) <= set(rs.model.param_spec.names)
    p.update({name: 0.0 for name in rs.nuisance_std})
    assert rs.starts and all("x0" in s and "y0" in s for s in rs.starts)
    np.testing.assert_allclose(
        np.asarray(rs.model(p, rs.met).values), np.asarray(scene.column.values), rtol=1e-5
    )
    # one carrier: the written column scene reads back as the retrieval's Observations
    obs = b.observations()
    fields = ("values", "sigma", "mask") if obs.noise is None else ("values",)
    for field in fields:
        np.testing.assert_array_equal(getattr(rs.observations, field), getattr(obs, field))
    if obs.noise is not None:  # correlated errors: the Kronecker covariance, rebuilt
        np.testing.assert_allclose(rs.observations.noise.as_matrix(), obs.noise.as_matrix())
    assert rs.observations.kind == obs.kind == "column_ppm_m"


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda ds: ds.drop_vars("radiance"), "no variable 'radiance'"),
        (lambda ds: ds.assign_attrs(instrument="nosuch"), "nosuch"),
        (lambda ds: _without(ds, "sza_deg"), "sza_deg"),
        (lambda ds: _with_units(ds, "W m-2"), "units"),
        (lambda ds: ds.isel(band=[i for i in range(ds.sizes["band"]) if i != 5]), "band centres"),
        (lambda ds: ds.assign_attrs(met_wind_speed=-1.0), "met_wind_speed"),
    ],
)
def test_radiance_scene_reader_rejects_bad_files(scene, edit, message):
    from plumax.pipelines import read_radiance_scene

    ds = edit(scene.to_dataset())
    with pytest.raises((ValueError, KeyError), match=message):
        read_radiance_scene(ds)


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda ds: ds.assign(radiance=-ds["radiance"]), "negative value"),
        (lambda ds: ds.assign(radiance=ds["radiance"] * 0.0), "mean over the valid pixels"),
        (
            lambda ds: ds.assign(radiance=ds["radiance"] * 0.0 + ds["radiance"].mean(("x", "y"))),
            "does not vary",
        ),
        (lambda ds: ds.isel(band=[5]), "at least 2"),
    ],
    ids=["negated", "all-zero", "uniform", "one-band"],
)
def test_impossible_radiance_is_rejected_by_name(scene, edit, needle):
    """Each of these was retrieved and written before (or failed with "`alpha` beyond
    the saturation curve's range" for one band)."""
    from plumax.pipelines import read_radiance_scene

    ds = edit(scene.to_dataset())
    ds["radiance"].attrs["units"] = scene.to_dataset()["radiance"].attrs["units"]
    with pytest.raises(ValueError, match=needle) as info:
        read_radiance_scene(ds)
    assert "`radiance`" in str(info.value)
    # retrieve() applies the same rules to a scene built in code
    import dataclasses

    values = np.asarray(ds["radiance"].values)
    if values.shape[-1] == scene.radiance.shape[-1]:
        bad = dataclasses.replace(scene, radiance=scene.radiance.replace(values=values))
        with pytest.raises(ValueError, match=needle):
            retrieve(bad, optimal_estimation=False)


def test_too_few_valid_pixels_says_how_many_remain(scene):
    """The classic filter needs more valid background pixels than bands."""
    import dataclasses

    m = scene.radiance.shape[-1]
    rad = np.array(scene.radiance.values)
    flat = rad.reshape(-1, m)
    flat[m - 5 :] = np.nan  # keep m - 5 finite pixels of 256
    masked = scene.radiance.replace(values=rad, mask=np.isfinite(rad), sigma=None)
    bad = dataclasses.replace(scene, radiance=masked)
    n_bad = 256 - (m - 5)
    with pytest.raises(
        ValueError, match=rf"only {m - 5} of 256 pixels .*{n_bad} non-finite.* at least {m + 1}"
    ):
        retrieve(bad, optimal_estimation=False)


def test_float32_coordinates_round_trip_through_netcdf(scene, tmp_path):
    """``plumax demo`` writes float32 pixel centres (24 px of 1440/23 m from -180 m):
    not exactly evenly spaced in float32, and rejected by the old float64 tolerance.
    The rule is core's one coordinate rule (``check_coordinate``)."""
    import xarray as xr

    from plumax.pipelines import read_radiance_scene

    ds = scene.to_dataset()
    x32 = np.linspace(1100.0, 2100.0, 16).astype(np.float32)  # spacing 66.67 m
    d = np.diff(x32.astype(np.float64))
    assert not np.allclose(d, d[0], rtol=1e-6)  # the old rule fails here
    ds = ds.assign_coords(x=("x", x32, ds["x"].attrs))
    path = tmp_path / "scene32.nc"
    ds.to_netcdf(path)
    with xr.open_dataset(path) as back_ds:
        assert back_ds["x"].dtype == np.float32
        back = read_radiance_scene(back_ds.load())
    assert back.pixel_size == pytest.approx(1000.0 / 15, rel=1e-6)
    # a real irregularity is still caught, with the numbers
    x_bad = x32.copy()
    x_bad[7] += 1.0
    with pytest.raises(ValueError, match="coordinate 'x'` must be evenly spaced"):
        read_radiance_scene(ds.assign_coords(x=("x", x_bad, ds["x"].attrs)))


def test_simulate_radiance_checks_the_wind():
    with pytest.raises(ValueError, match="wind_speed"):
        simulate_radiance(q_kgh=100.0, wind_speed=0.1, key_surface=jr.key(0), key_noise=jr.key(1))


def test_retrieval_summary_has_no_warnings_when_a_plume_is_found(scene):
    info = retrieve(scene, optimal_estimation=False).summary()
    assert info["warnings"] == [] and info["mask_pixels"] > 0


def _without(ds, attr):
    ds = ds.copy()
    del ds.attrs[attr]
    return ds


def _with_units(ds, units):
    ds = ds.copy()
    ds["radiance"].attrs["units"] = units
    return ds
