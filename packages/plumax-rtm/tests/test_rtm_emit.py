"""EMIT L1B reader, GLT orthorectification, local-grid resampling and the layout writer.

The files are written by :func:`plumax_rtm.write_emit_l1b` in the EMIT L1B layout, whose
facts come from the EMIT SDS converters (``emit-sds/emit-sds-l1b`` ``output_conversion.py``,
``emit-sds/emit-utils`` ``emit_utils/daac_converter.py``), the LP DAAC reader
``nasa/EMIT-Data-Resources`` ``python/modules/emit_tools.py`` (fill -9999, GLT 1-based with
0 = no pixel, cell centres from the geotransform) and the EMIT L1B product documentation
(JPL D-104187). The layout checks below read the files with netCDF4 directly, so they test
the writer against those facts and the reader against the writer independently.
"""

import dask.array as da
import netCDF4
import numpy as np
import pytest

import plumax_rtm as pr
from plumax_core import LocalFrame

R_EARTH = 6_371_008.8
LAT0, LON0 = 35.0, -110.0
T_START = "2023-06-12T19:00:00Z"
T_END = "2023-06-12T19:00:11Z"
NAME = "EMIT_L1B_{}_001_20230612T190000_2316312_004.nc"


def swath(nd, nc, heading_deg=35.0, spacing=60.0):
    """Pixel centres of a straight swath: lines advance along ``heading`` (deg from N)."""
    th = np.deg2rad(heading_deg)
    i, j = np.meshgrid(np.arange(nd), np.arange(nc), indexing="ij")
    along, cross = i * spacing, (j - (nc - 1) / 2) * spacing
    east = along * np.sin(th) + cross * np.cos(th)
    north = along * np.cos(th) - cross * np.sin(th)
    k = np.deg2rad(1.0) * R_EARTH
    return LAT0 + north / k, LON0 + east / (k * np.cos(np.deg2rad(LAT0)))


def write(tmp_path, rad, wl, fw, lat, lon, *, tag="", **kw):
    rp = tmp_path / (tag + NAME.format("RAD"))
    op = tmp_path / (tag + NAME.format("OBS"))
    kw.setdefault("time_end", T_END)
    pr.write_emit_l1b(rp, op, rad, wl, fw, lat, lon, time_start=T_START, **kw)
    return rp, op


@pytest.fixture
def small(tmp_path):
    """24 x 20 pixels x 12 bands, band 5 all fill, three fill pixels, varying angles."""
    nd, nc, nb = 24, 20, 12
    lat, lon = swath(nd, nc)
    wl = np.linspace(2100.0, 2450.0, nb)
    fw = np.linspace(7.5, 9.5, nb)
    rad = np.random.default_rng(0).uniform(1.0, 2.0, (nd, nc, nb)).astype(np.float32)
    rad[:, :, 5] = np.nan
    fill = np.zeros((nd, nc), bool)
    fill[0, :3] = True
    sza = 30.0 + 0.1 * np.arange(nd)[:, None] + 0.0 * lat
    rp, op = write(tmp_path, rad, wl, fw, lat, lon, fill_mask=fill, solar_zenith=sza)
    return {
        "rp": rp,
        "op": op,
        "rad": rad,
        "wl": wl,
        "fw": fw,
        "lat": lat,
        "lon": lon,
        "fill": fill,
        "sza": sza,
    }


def test_layout_facts(small):
    """Names, dims, dtypes, units strings, fill values and global attributes on disk."""
    with netCDF4.Dataset(small["rp"]) as nc:
        v = nc["radiance"]
        assert v.dimensions == ("downtrack", "crosstrack", "bands")
        assert v.dtype == np.float32 and v.units == "uW/cm^2/SR/nm" and v._FillValue == -9999
        sbp = nc["sensor_band_parameters"]
        assert sbp["wavelengths"].units == "nm" and sbp["fwhm"].dimensions == ("bands",)
        loc = nc["location"]
        assert loc["lat"].dimensions == ("downtrack", "crosstrack")
        assert loc["lat"].units == "degrees north" and loc["lon"].units == "degrees east"
        assert loc["glt_x"].dimensions == ("ortho_y", "ortho_x") and loc["glt_x"].dtype == np.int32
        assert len(nc.geotransform) == 6 and 'AUTHORITY["EPSG","4326"]' in nc.spatial_ref
        assert nc.time_coverage_start == "2023-06-12T19:00:00+0000"
        v.set_auto_mask(False)
        raw = v[...]
        assert np.all(raw[0, :3] == -9999) and np.all(raw[:, :, 5] == -9999)
        gx = loc["glt_x"][...]
        assert gx.min() == 0 and gx.max() <= 20
    with netCDF4.Dataset(small["op"]) as nc:
        assert nc["obs"].shape == (24, 20, 11)
        names = list(nc["sensor_band_parameters"]["observation_bands"][:])
        assert names[4].startswith("To-sun zenith") and names[10] == "Earth-sun distance (AU)"


def test_reader_round_trip(small):
    g = pr.open_emit_l1b(small["rp"], small["op"])
    assert isinstance(g.radiance.data, da.Array)
    assert g.radiance.dims == ("downtrack", "crosstrack", "band")
    assert g.radiance.attrs["units"] == "uW cm-2 sr-1 nm-1"
    np.testing.assert_allclose(g.radiance["band"], small["wl"], rtol=1e-6)
    np.testing.assert_allclose(g.fwhm, small["fw"], rtol=1e-6)
    np.testing.assert_array_equal(g.lat, small["lat"])
    assert g.granule_id == NAME.format("RAD")[:-3]
    assert g.time_start == np.datetime64("2023-06-12T19:00:00", "s").astype(float)
    assert g.time_end - g.time_start == 11.0 and g.time_mid == g.time_start + 5.5
    vals = g.radiance.values
    expect = np.where(small["fill"][..., None], np.nan, small["rad"])
    np.testing.assert_array_equal(vals, expect)  # fill pixels and the fill band are NaN
    assert g.good_wavelengths.tolist() == [i != 5 for i in range(12)]
    assert "fill pattern" in g.radiance.attrs["good_wavelengths_source"]
    assert list(g.obs.data_vars) == [k for k, _, _ in pr.OBS_LAYERS]
    np.testing.assert_allclose(g.obs["solar_zenith"].values, small["sza"], rtol=1e-6)
    assert g.solar_zenith_mean == pytest.approx(small["sza"].mean(), rel=1e-6)
    assert g.view_zenith_mean == pytest.approx(5.0)
    np.testing.assert_allclose(g.obs["cosine_i"], np.cos(np.deg2rad(small["sza"])), rtol=1e-6)
    hours = g.obs["utc_time"].values
    assert 19.0 < hours.min() < hours.max() < 19.0 + 11 / 3600


def test_reader_refuses_bad_input(small, tmp_path):
    nd, nc, nb = 6, 5, 4
    lat, lon = swath(nd, nc)
    rad = np.ones((nd, nc, nb), np.float32)
    wl, fw = np.linspace(2100, 2400, nb), np.full(nb, 8.5)
    rp, _ = write(tmp_path, rad, wl, fw, lat, lon, tag="w", units="W m-2 sr-1 um-1")
    with pytest.raises(ValueError, match="`radiance` units .*W m-2 sr-1 um-1"):
        pr.open_emit_l1b(rp)
    rp, op = write(tmp_path, rad, wl, fw, lat, lon, tag="ok", units="uW cm-2 sr-1 nm-1")
    g = pr.open_emit_l1b(rp)  # our spelling is accepted, nothing converted
    assert g.obs is None and float(g.radiance.max()) == 1.0
    with pytest.raises(ValueError, match="OBS file"):
        _ = g.solar_zenith_mean
    with pytest.raises(ValueError, match="not the same granule"):
        pr.open_emit_l1b(small["rp"], _other_obs(tmp_path, small))
    with pytest.raises(ValueError, match="exists; refusing"):
        write(tmp_path, rad, wl, fw, lat, lon, tag="ok")
    with pytest.raises(ValueError, match="`fill_mask` has shape"):
        write(tmp_path, rad, wl, fw, lat, lon, tag="m", fill_mask=np.zeros((2, 2), bool))


def _other_obs(tmp_path, small):
    rp = tmp_path / "late_rad.nc"
    op = tmp_path / "late_obs.nc"
    pr.write_emit_l1b(
        rp,
        op,
        small["rad"],
        small["wl"],
        small["fw"],
        small["lat"],
        small["lon"],
        time_start="2023-06-12T19:05:00Z",
    )
    return op


def test_orthorectify_to_sensor_round_trip(small):
    g = pr.open_emit_l1b(small["rp"], small["op"])
    ortho = g.orthorectify(g.radiance)
    assert ortho.dims == ("lat", "lon", "band") and isinstance(ortho.data, da.Array)
    assert np.all(np.diff(ortho["lat"]) < 0) and np.all(np.diff(ortho["lon"]) > 0)
    empty = g.glt_x == 0
    assert np.all(np.isnan(ortho.values[empty]))
    back = g.to_sensor(ortho).values
    referenced = np.zeros(g.sensor_shape, bool)
    referenced[g.glt_y[~empty] - 1, g.glt_x[~empty] - 1] = True
    assert referenced.mean() > 0.85
    np.testing.assert_array_equal(back[referenced], g.radiance.values[referenced])
    assert np.all(np.isnan(back[~referenced]))
    # 2-D NumPy input: eager; "nearest" fills every pixel inside the grid
    lat_o = g.orthorectify(g.lat)
    assert isinstance(lat_o.data, np.ndarray)
    near = g.to_sensor(lat_o, unreferenced="nearest").values
    assert np.all(np.isfinite(near))
    assert np.nanmax(np.abs(near - g.lat)) < 2 * g.geotransform[1]
    with pytest.raises(ValueError, match="leading dims"):
        g.orthorectify(g.radiance.transpose("crosstrack", "downtrack", "band"))


def test_hand_built_glt_maps_known_pixels(tmp_path):
    """A GLT written by hand: a 90-degree turn, plus one empty column."""
    d = 0.001
    gt = (LON0, d, 0.0, LAT0, 0.0, -d)
    nd, nc = 4, 3
    gx = np.zeros((3, 5), np.int32)
    gy = np.zeros((3, 5), np.int32)
    i, j = np.meshgrid(np.arange(nd), np.arange(nc), indexing="ij")
    r, c = 2 - j, i  # pixel (i, j) sits in cell (2 - j, i)
    gx[r, c], gy[r, c] = j + 1, i + 1
    lat, lon = LAT0 - (r + 0.5) * d, LON0 + (c + 0.5) * d
    vals = (10 * i + j).astype(np.float32)[..., None]
    rp, _ = write(tmp_path, vals, [2300.0], [8.5], lat, lon, glt=(gx, gy, gt))
    g = pr.open_emit_l1b(rp)
    o = g.orthorectify(g.radiance).isel(band=0).values
    for a, b in zip(i.ravel(), j.ravel(), strict=True):
        assert o[2 - b, a] == 10 * a + b
    assert np.all(np.isnan(o[:, 4]))
    np.testing.assert_allclose(g.ortho_lat, LAT0 - (np.arange(3) + 0.5) * d)
    np.testing.assert_allclose(g.ortho_lon, LON0 + (np.arange(5) + 0.5) * d)


def test_built_glt_on_rotated_swath():
    """Nearest-pixel GLT on a 35-degree swath with cells finer than half a pixel: the cell
    containing each pixel centre shows that pixel; far cells are empty."""
    from plumax_rtm._glt import build_glt, cell_centres, lonlat_to_cell

    lat, lon = swath(30, 25, heading_deg=35.0)
    d = 25.0 / (np.deg2rad(1.0) * R_EARTH)
    gx, gy, gt = build_glt(lat, lon, pixel_deg=d)
    r, c = lonlat_to_cell(gt, gx.shape, lon, lat)
    i, j = np.indices(lat.shape)
    np.testing.assert_array_equal(gy[r, c], i + 1)
    np.testing.assert_array_equal(gx[r, c], j + 1)
    clat, clon = cell_centres(gt, gx.shape)
    hit = gx > 0
    k = np.deg2rad(1.0) * R_EARTH
    dy = (clat[:, None] - lat[gy - 1, gx - 1]) * k
    dx = (clon[None, :] - lon[gy - 1, gx - 1]) * k * np.cos(np.deg2rad(LAT0))
    assert np.all(np.hypot(dx, dy)[hit] <= 60.0 + 1e-6)
    assert gx[0, 0] == 0 and gx[-1, -1] == 0 and 0.3 < hit.mean() < 0.9


def test_to_local_grid_reproduces_lonlat_field(tmp_path):
    nd, nc = 40, 36
    lat, lon = swath(nd, nc, heading_deg=20.0)
    k = np.deg2rad(1.0) * R_EARTH
    ex = (lon - LON0) * k * np.cos(np.deg2rad(LAT0))  # m east
    ny = (lat - LAT0) * k  # m north
    f = (100.0 + 0.01 * ex + 0.02 * ny).astype(np.float32)  # gradient 0.0224 per m
    rad = np.stack([f, 2 * f, 3 * f], axis=-1)
    sza = 20.0 + 0.05 * np.arange(nc)[None, :] + 0.0 * lat
    rp, op = write(tmp_path, rad, [2200.0, 2300.0, 2400.0], [8.5] * 3, lat, lon, solar_zenith=sza)
    g = pr.open_emit_l1b(rp, op)
    ds = g.to_local_grid(pixel_size=45.0)
    assert ds.radiance.dims == ("y", "x", "band") and isinstance(ds.radiance.data, da.Array)
    assert np.all(np.diff(ds.x) > 0) and np.all(np.diff(ds.y) > 0)
    frame = LocalFrame(ds.attrs["lon0"], ds.attrs["lat0"])
    assert frame == LocalFrame.centred_on(lon, lat)
    glon, glat = frame.lonlat_grid(ds.x, ds.y)
    np.testing.assert_allclose(ds.lat, glat)
    truth = 100.0 + 0.01 * (glon - LON0) * k * np.cos(np.deg2rad(LAT0)) + 0.02 * (glat - LAT0) * k
    got = ds.radiance.values
    valid = ds.valid.values
    assert valid.sum() > 0.9 * nd * nc * (60 / 45) ** 2 * 0.9
    assert np.all(np.isfinite(got[valid])) and np.all(np.isnan(got[~valid]))
    # nearest-neighbour bound: cell centre -> GLT cell (half its diagonal) -> pixel (<= 60 m)
    d_glt = g.geotransform[1] * k
    bound = np.hypot(0.01, 0.02) * (0.5 * np.hypot(d_glt, d_glt) + 60.0)
    err = got[valid, 0] - truth[valid]
    assert np.abs(err).max() <= bound
    assert np.abs(err).mean() < 0.5 * bound
    np.testing.assert_allclose(got[valid, 2], 3 * got[valid, 0], rtol=1e-6)
    iy, ix = ds.downtrack_index.values, ds.crosstrack_index.values
    np.testing.assert_allclose(ds.solar_zenith.values[valid], sza[iy[valid], ix[valid]], rtol=1e-6)
    assert ds.attrs["time_coverage_start"] == "2023-06-12T19:00:00+0000"
    assert ds.radiance.attrs["grid_mapping"] == "crs"


def test_spectral_response_uses_file_bands(small):
    g = pr.open_emit_l1b(small["rp"])
    fine = np.arange(2050.0, 2500.0, 0.01)
    srf = g.spectral_response(fine, band_range=(2150.0, 2420.0))
    idx = g.band_indices((2150.0, 2420.0), fine_wavelength=fine)
    assert 5 not in idx and idx.tolist() == [2, 3, 4, 6, 7, 8, 9, 10]
    np.testing.assert_allclose(srf.centers, small["wl"][idx])
    w = np.asarray(srf.matrix)
    for row, c, fwhm in zip(w, small["wl"][idx], small["fw"][idx], strict=True):
        half = row >= 0.5 * row.max()  # response to a narrow line scanned across the band
        lo, hi = fine[half][0], fine[half][-1]
        assert hi - lo == pytest.approx(fwhm, abs=0.02)
        assert 0.5 * (lo + hi) == pytest.approx(c, abs=0.01)
    with pytest.raises(ValueError, match="no good band"):
        g.spectral_response(fine, band_range=(1000.0, 1100.0))


def test_matched_filter_on_local_grid_finds_plume(tmp_path):
    nd, nc, nb = 48, 44, 30
    lat, lon = swath(nd, nc, heading_deg=30.0)
    wl = np.linspace(2150.0, 2450.0, nb)
    sigma = 2e-5 * np.exp(-0.5 * ((wl - 2300.0) / 15.0) ** 2) + 1e-5 * np.exp(
        -0.5 * ((wl - 2360.0) / 10.0) ** 2
    )  # absorption per ppm m (shape only)
    rng = np.random.default_rng(1)
    albedo = rng.uniform(0.8, 1.2, (nd, nc, 1))
    base = 0.4 + 0.1 * np.sin(wl / 40.0)
    k = np.deg2rad(1.0) * R_EARTH
    x = (lon - lon.mean()) * k * np.cos(np.deg2rad(LAT0))
    y = (lat - lat.mean()) * k
    plume = np.hypot(x - 200.0, y + 100.0) < 350.0
    alpha = np.where(plume, 2000.0, 0.0)[..., None]  # ppm m
    rad = base * albedo * np.exp(-alpha * sigma) * (1 + 0.002 * rng.standard_normal((nd, nc, nb)))
    rp, op = write(tmp_path, rad.astype(np.float32), wl, np.full(nb, 8.5), lat, lon)
    g = pr.open_emit_l1b(rp, op, chunks={"downtrack": 16})
    grid = g.to_local_grid(pixel_size=60.0, chunks=(16, 32))
    mf = pr.scene_matched_filter(grid.radiance, -sigma)
    assert isinstance(mf.data, da.Array)  # nothing computed yet
    assert mf["lat"].dims == ("y", "x")  # the geolocation is carried to the map
    out = mf.values
    iy, ix = grid.downtrack_index.values, grid.crosstrack_index.values
    ok = grid.valid.values
    in_plume = np.zeros_like(ok)
    in_plume[ok] = plume[iy[ok], ix[ok]]
    bg = ok & ~in_plume
    contrast = np.nanmean(out[in_plume]) - np.nanmean(out[bg])  # the plume biases the mean
    assert contrast == pytest.approx(2000.0, rel=0.1)
    assert np.nanstd(out[bg]) < 200.0
    assert np.all(np.isnan(out[~ok]))


def test_writer_streams_callable_and_dask(tmp_path, small):
    rad = small["rad"]
    rd = da.from_array(rad, chunks=(5, 20, 12))
    calls = []

    def rows(r0, r1):
        calls.append((r0, r1))
        return rad[r0:r1]

    for tag, src in (("c", rows), ("d", rd)):
        rp, _ = write(
            tmp_path,
            src,
            small["wl"],
            small["fw"],
            small["lat"],
            small["lon"],
            tag=tag,
            block_rows=7,
        )
        got = pr.open_emit_l1b(rp).radiance.values
        np.testing.assert_array_equal(got, rad)
    assert calls == [(0, 7), (7, 14), (14, 21), (21, 24)]
    with pytest.raises(ValueError, match="rows 0:7 have shape"):
        write(
            tmp_path,
            lambda a, b: rad[:2],
            small["wl"],
            small["fw"],
            small["lat"],
            small["lon"],
            tag="bad",
            block_rows=7,
        )
