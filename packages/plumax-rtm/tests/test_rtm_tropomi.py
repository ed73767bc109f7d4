"""`read_tropomi_ch4` on small files written here in the S5P CH4 L2 layout.

The layout written (groups PRODUCT, PRODUCT/SUPPORT_DATA/{GEOLOCATIONS, DETAILED_RESULTS,
INPUT_DATA}; dimensions time=1, scanline, ground_pixel, corner=4, layer=12, level=13;
``qa_value`` as an 8-bit integer with scale_factor 0.01; float ``_FillValue`` 9.96921e36;
layer profiles stored top of atmosphere first; edges ``p_s - k dp`` from the surface) is
the one read by the HARP S5P L2 ingestion (github.com/stcorp/harp,
``libharp/harp-ingest-s5p_l2.c``) and the Integrated Methane Inversion
(github.com/geoschem/integrated_methane_inversion, ``read_tropomi``), for the product
described in the Sentinel-5P Level 2 Product User Manual, Methane, SRON-S5P-LEV2-MA-001.
Units strings (``"1e-9"``, ``"mol m-2"``) and the ``qa_value`` fill value are assumptions
of this test, not confirmed against the PUM's tables. The XCH4 reference is the sum over
sub-columns of IMI's ``TROPOMI_operator`` (eq. 46 of the ATBD as cited there).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plumax_core import AveragingKernelOperator, Observations, gates
from plumax_rtm import TropomiCH4, read_tropomi_ch4

netCDF4 = pytest.importorskip("netCDF4")

FILL = 9.96921e36
NSCAN, NGP, NL = 5, 4, 12


def _truth(seed=0):
    """Surface-first truth for a 5 x 4 swath."""
    rng = np.random.default_rng(seed)
    lon = np.linspace(10.0, 11.5, NGP)[None, :] + np.linspace(0.0, 0.2, NSCAN)[:, None]
    lat = np.linspace(45.0, 46.0, NSCAN)[:, None] + np.zeros((1, NGP))
    ps = rng.uniform(8.5e4, 1.01e5, (NSCAN, NGP))
    dp = ps / NL - rng.uniform(0.0, 5.0, (NSCAN, NGP))
    d = (dp / 9.80665 / 0.0289644)[..., None] * rng.uniform(0.97, 1.0, (NSCAN, NGP, NL))
    xa_ppb = np.linspace(1880.0, 1600.0, NL) + rng.normal(0.0, 5.0, (NSCAN, NGP, NL))
    return {
        "lon": lon,
        "lat": lat,
        "ps": ps,
        "dp": dp,
        "dry": d,
        "apriori": xa_ppb * 1e-9 * d,
        "ak": rng.uniform(0.5, 1.2, (NSCAN, NGP, NL)),
        "xch4": rng.uniform(1800.0, 1900.0, (NSCAN, NGP)),
        "xch4_bc": rng.uniform(1800.0, 1900.0, (NSCAN, NGP)),
        "precision": rng.uniform(5.0, 12.0, (NSCAN, NGP)),
        "qa": np.full((NSCAN, NGP), 1.0),
        "t0": np.datetime64("2021-07-01T11:20:30.250", "ms"),
    }


def _write(path, tr, *, time_utc=True, units=None, qa_scaled=True, drop=()):
    units = {
        "xch4": "1e-9",
        "ps": "Pa",
        "mol": "mol m-2",
        "lat": "degrees_north",
        "lon": "degrees_east",
        **(units or {}),
    }
    with netCDF4.Dataset(path, "w") as ds:
        ds.Conventions = "CF-1.7"
        ds.product_name = "S5P_OFFL_L2__CH4____"
        ds.processor_version = "02.04.00"
        ds.time_coverage_start = "2021-07-01T11:20:30Z"
        ds.time_coverage_end = "2021-07-01T12:10:00Z"
        ds.orbit = np.int32(19280)
        p = ds.createGroup("PRODUCT")
        for name, n in (
            ("time", 1),
            ("scanline", NSCAN),
            ("ground_pixel", NGP),
            ("corner", 4),
            ("layer", NL),
            ("level", NL + 1),
        ):
            p.createDimension(name, n)
            p.createVariable(name, "f8" if name == "time" else "i4", (name,))[:] = np.arange(n)
        ref = np.datetime64("2021-07-01T00:00:00", "ms")
        p["time"].units = "seconds since 2021-07-01 00:00:00"
        p["time"][:] = 0.0
        scan_t = tr["t0"] + np.arange(NSCAN) * np.timedelta64(840, "ms")
        dt = p.createVariable("delta_time", "i4", ("time", "scanline"))
        dt.units = "milliseconds since 2021-07-01 00:00:00"
        dt[:] = ((scan_t - ref) / np.timedelta64(1, "ms")).astype("int32")[None]
        if time_utc:
            tu = p.createVariable("time_utc", str, ("time", "scanline"))
            tu[:] = np.array([[str(t) + "000Z" for t in scan_t]], dtype=object)
        pix = ("time", "scanline", "ground_pixel")

        def fvar(group, name, dims, data, unit, *, top_first=False):
            if name in drop:
                return
            v = group.createVariable(name, "f4", dims, fill_value=np.float32(FILL))
            if unit is not None:
                v.units = unit
            arr = np.asarray(data, dtype=np.float64)
            if top_first:
                arr = arr[..., ::-1]
            v[:] = np.where(np.isnan(arr), FILL, arr)[None]

        fvar(p, "methane_mixing_ratio", pix, tr["xch4"], units["xch4"])
        fvar(p, "methane_mixing_ratio_bias_corrected", pix, tr["xch4_bc"], units["xch4"])
        fvar(p, "methane_mixing_ratio_precision", pix, tr["precision"], units["xch4"])
        fvar(p, "latitude", pix, tr["lat"], units["lat"])
        fvar(p, "longitude", pix, tr["lon"], units["lon"])
        q = p.createVariable("qa_value", "u1", pix, fill_value=np.uint8(255))
        q.units = "1"
        if qa_scaled:
            q.scale_factor = np.float32(0.01)
            q.add_offset = np.float32(0.0)
            q[:] = tr["qa"][None]  # netCDF4 packs with the scale factor
        else:
            q.set_auto_maskandscale(False)
            q[:] = np.round(tr["qa"] * 100).astype("u1")[None]
        sd = p.createGroup("SUPPORT_DATA")
        geo = sd.createGroup("GEOLOCATIONS")
        corner = (*pix, "corner")
        offs = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * 0.05
        fvar(geo, "latitude_bounds", corner, tr["lat"][..., None] + offs[:, 1], units["lat"])
        fvar(geo, "longitude_bounds", corner, tr["lon"][..., None] + offs[:, 0], units["lon"])
        det = sd.createGroup("DETAILED_RESULTS")
        layer = (*pix, "layer")
        fvar(det, "column_averaging_kernel", layer, tr["ak"], "1", top_first=True)
        inp = sd.createGroup("INPUT_DATA")
        scale = 100.0 if units["ps"] == "hPa" else 1.0
        fvar(inp, "surface_pressure", pix, tr["ps"] / scale, units["ps"])
        fvar(inp, "pressure_interval", pix, tr["dp"] / scale, units["ps"])
        fvar(inp, "methane_profile_apriori", layer, tr["apriori"], units["mol"], top_first=True)
        fvar(inp, "dry_air_subcolumns", layer, tr["dry"], units["mol"], top_first=True)
        levels = np.linspace(0.0, 6.0e4, NL + 1)[::-1] + np.zeros((NSCAN, NGP, 1))
        fvar(inp, "altitude_levels", (*pix, "level"), levels, "m")
    return path


# --------------------------------------------------------------- layout and values


def test_reads_the_layout_surface_first_in_scanline_major_order(tmp_path):
    tr = _truth()
    r = read_tropomi_ch4(_write(tmp_path / "s5p.nc", tr))
    assert isinstance(r, TropomiCH4) and r.n_pixels == NSCAN * NGP
    np.testing.assert_array_equal(r.scanline, np.repeat(np.arange(NSCAN), NGP))
    np.testing.assert_array_equal(r.ground_pixel, np.tile(np.arange(NGP), NSCAN))
    f32 = dict(rtol=1e-6)
    np.testing.assert_allclose(r.xch4, tr["xch4_bc"].ravel(), **f32)
    np.testing.assert_allclose(r.xch4_precision, tr["precision"].ravel(), **f32)
    np.testing.assert_allclose(r.longitude, tr["lon"].ravel(), **f32)
    np.testing.assert_allclose(r.column_averaging_kernel, tr["ak"].reshape(-1, NL), **f32)
    np.testing.assert_allclose(r.dry_air_subcolumns, tr["dry"].reshape(-1, NL), **f32)
    np.testing.assert_allclose(r.methane_profile_apriori, tr["apriori"].reshape(-1, NL), **f32)
    edges = r.pressure_edges
    assert edges.shape == (r.n_pixels, NL + 1) and np.all(np.diff(edges, axis=1) < 0)
    np.testing.assert_allclose(edges[:, 0], tr["ps"].ravel(), **f32)
    assert r.longitude_bounds.shape == (r.n_pixels, 4)
    t_expected = (tr["t0"] - np.datetime64("1970-01-01T00:00:00", "ms")) / np.timedelta64(1, "s")
    np.testing.assert_allclose(r.time[:NGP], t_expected, atol=1e-3)
    np.testing.assert_allclose(np.diff(r.time[::NGP]), 0.84, atol=1e-3)
    assert r.attrs["processor_version"] == "02.04.00"
    assert r.attrs["time_coverage_start"] == "2021-07-01T11:20:30Z"
    assert r.counts == {"total": 20, "fill": 0, "below_qa": 0, "outside_bbox": 0, "kept": 20}
    with pytest.raises(ValueError, match="read-only"):
        r.xch4[0] = 0.0


def test_time_from_time_plus_delta_time_equals_time_utc(tmp_path):
    tr = _truth()
    a = read_tropomi_ch4(_write(tmp_path / "a.nc", tr))
    b = read_tropomi_ch4(_write(tmp_path / "b.nc", tr, time_utc=False))
    np.testing.assert_allclose(a.time, b.time, atol=1e-6)


def test_bias_corrected_or_not(tmp_path):
    tr = _truth()
    path = _write(tmp_path / "s5p.nc", tr)
    np.testing.assert_allclose(
        read_tropomi_ch4(path, bias_corrected=False).xch4, tr["xch4"].ravel(), rtol=1e-6
    )
    np.testing.assert_allclose(read_tropomi_ch4(path).xch4, tr["xch4_bc"].ravel(), rtol=1e-6)


def test_qa_filter_default_half_and_threshold(tmp_path):
    tr = _truth()
    tr["qa"][0, :] = [0.0, 0.49, 0.5, 0.51]
    tr["qa"][1, 0] = 0.75
    path = _write(tmp_path / "s5p.nc", tr)
    r = read_tropomi_ch4(path)
    assert r.counts["below_qa"] == 2 and r.n_pixels == 18
    kept0 = r.ground_pixel[r.scanline == 0]
    np.testing.assert_array_equal(kept0, [2, 3])  # 0.5 is kept, 0.49 is not
    np.testing.assert_allclose(r.qa_value[:2], [0.5, 0.51], atol=1e-6)
    assert read_tropomi_ch4(path, qa_threshold=0.8).n_pixels == 15
    assert read_tropomi_ch4(path, qa_threshold=0.0).n_pixels == 20


def test_fill_pixels_are_dropped(tmp_path):
    tr = _truth()
    tr["xch4_bc"][1, 1] = np.nan
    tr["ak"][2, 3, 5] = np.nan  # one layer of one pixel
    tr["lat"][4, 0] = np.nan
    path = _write(tmp_path / "s5p.nc", tr)
    r = read_tropomi_ch4(path)
    assert r.counts["fill"] == 3 and r.n_pixels == 17
    ids = set(zip(r.scanline.tolist(), r.ground_pixel.tolist(), strict=True))
    assert not ids & {(1, 1), (2, 3), (4, 0)}
    assert np.all(np.isfinite(r.column_averaging_kernel)) and np.all(r.xch4 < 1e30)
    # the uncorrected XCH4 has no fill at (1, 1): that pixel is back
    assert read_tropomi_ch4(path, bias_corrected=False).n_pixels == 18


def test_bbox_subsets_pixel_centres(tmp_path):
    tr = _truth()
    path = _write(tmp_path / "s5p.nc", tr)
    box = (10.4, 45.2, 11.2, 45.8)
    r = read_tropomi_ch4(path, bbox=box)
    inside = (tr["lon"] >= 10.4) & (tr["lon"] <= 11.2) & (tr["lat"] >= 45.2) & (tr["lat"] <= 45.8)
    assert 0 < r.n_pixels == inside.sum() < 20
    assert r.counts["outside_bbox"] == 20 - inside.sum()
    assert np.all((r.longitude >= 10.4) & (r.longitude <= 11.2))
    empty = read_tropomi_ch4(path, bbox=(0.0, 0.0, 1.0, 1.0))
    assert empty.n_pixels == 0 and empty.observations().shape == (0,)
    assert empty.operator(np.linspace(1.0e5, 1.0, 9))(np.zeros((0, 8))).shape == (0,)
    for bad in [(11.0, 45.0, 10.0, 46.0), (10.0, 45.0, 11.0), (10, 95, 11, 96)]:
        with pytest.raises(ValueError, match="`bbox`"):
            read_tropomi_ch4(path, bbox=bad)


def test_hpa_pressures_are_converted_to_pa(tmp_path):
    tr = _truth()
    r = read_tropomi_ch4(_write(tmp_path / "s5p.nc", tr, units={"ps": "hPa"}))
    np.testing.assert_allclose(r.surface_pressure, tr["ps"].ravel(), rtol=1e-6)


# --------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"units": {"xch4": "ppm"}},
            "'PRODUCT/methane_mixing_ratio_bias_corrected' has units 'ppm'",
        ),
        ({"units": {"ps": "K"}}, "'PRODUCT/SUPPORT_DATA/INPUT_DATA/surface_pressure' has units"),
        ({"units": {"mol": "molec cm-2"}}, "methane_profile_apriori' has units 'molec cm-2'"),
        ({"units": {"lat": "degrees"}}, "'PRODUCT/latitude' has units 'degrees'"),
        ({"qa_scaled": False}, "qa_value' has values outside \\[0, 1\\]"),
        (
            {"drop": ("dry_air_subcolumns",)},
            "'PRODUCT/SUPPORT_DATA/INPUT_DATA/dry_air_subcolumns' is missing",
        ),
    ],
)
def test_wrong_units_and_layout_are_refused_naming_the_variable(tmp_path, kwargs, match):
    path = _write(tmp_path / "s5p.nc", _truth(), **kwargs)
    with pytest.raises(ValueError, match=match):
        read_tropomi_ch4(path)


def test_bad_arguments_and_non_physical_values(tmp_path):
    tr = _truth()
    path = _write(tmp_path / "s5p.nc", tr)
    with pytest.raises(ValueError, match="`qa_threshold`"):
        read_tropomi_ch4(path, qa_threshold=50)
    with pytest.raises(FileNotFoundError):
        read_tropomi_ch4(tmp_path / "absent.nc")
    tr["precision"][0, 0] = 0.0
    with pytest.raises(ValueError, match="'methane_mixing_ratio_precision' must be > 0 ppb"):
        read_tropomi_ch4(_write(tmp_path / "p0.nc", tr))
    tr = _truth()
    tr["dp"][0, 0] = tr["ps"][0, 0] / 10.0  # the top edge would be below 0 Pa
    with pytest.raises(ValueError, match="'pressure_interval' must be <= surface_pressure / 12"):
        read_tropomi_ch4(_write(tmp_path / "dp.nc", tr))
    with netCDF4.Dataset(tmp_path / "other.nc", "w") as ds:
        ds.createGroup("PRODUCT")
    with pytest.raises(ValueError, match="group 'PRODUCT/SUPPORT_DATA/GEOLOCATIONS' is missing"):
        read_tropomi_ch4(tmp_path / "other.nc")


# --------------------------------------------------------------- core types


def test_observations_carry_precision_and_pixel_ids(tmp_path):
    tr = _truth()
    tr["qa"][3, 2] = 0.2
    r = read_tropomi_ch4(_write(tmp_path / "s5p.nc", tr))
    obs = r.observations()
    assert isinstance(obs, Observations) and obs.kind == "xch4_ppb" and obs.dims == ("pixel",)
    np.testing.assert_allclose(obs.values, r.xch4, rtol=1e-6)
    np.testing.assert_allclose(obs.sigma_full(), r.xch4_precision, rtol=1e-6)
    np.testing.assert_array_equal(obs.coords["pixel"], r.scanline * NGP + r.ground_pixel)
    assert 3 * NGP + 2 not in obs.coords["pixel"]
    assert "02.04.00" in obs.instrument


def test_operator_twin_matches_the_subcolumn_formula(tmp_path, x64):
    """Reader -> operator on a model field -> XCH4 == IMI's sum over sub-columns."""
    tr = _truth(1)
    r = read_tropomi_ch4(_write(tmp_path / "s5p.nc", tr))
    rng = np.random.default_rng(11)
    nmod = 25
    medges = np.linspace(1.02e5, 1.0, nmod + 1)  # covers every pixel column
    x_model = 1850.0 + rng.normal(0.0, 8.0, (r.n_pixels, nmod))
    x_model[:, :3] += 150.0  # near-surface enhancement
    op = r.operator(medges)
    assert isinstance(op, AveragingKernelOperator) and op.state_shape == (r.n_pixels, nmod)
    out = op(x_model).values
    expected = np.empty(r.n_pixels)
    for p in range(r.n_pixels):
        pe = r.pressure_edges[p]
        x_ret = np.empty(NL)
        for i in range(NL):  # pressure-overlap mean of the model layers, by hand
            lo, hi = pe[i + 1], pe[i]
            ov = np.clip(np.minimum(hi, medges[:-1]) - np.maximum(lo, medges[1:]), 0.0, None)
            x_ret[i] = np.sum(ov * x_model[p]) / np.sum(ov)
        c, d, a = (
            r.methane_profile_apriori[p],
            r.dry_air_subcolumns[p],
            r.column_averaging_kernel[p],
        )
        expected[p] = np.sum(c + a * (x_ret * 1e-9 * d - c)) / np.sum(d) * 1e9
    np.testing.assert_allclose(out, expected, rtol=1e-10)
    # on the retrieval layers: the prior itself gives the prior column
    op0 = r.operator()
    np.testing.assert_allclose(
        op0(r.prior_profile_ppb).values,
        r.methane_profile_apriori.sum(1) / r.dry_air_subcolumns.sum(1) * 1e9,
        rtol=1e-10,
    )


def test_operator_mask_jit_grad_and_dot_product(tmp_path, getkey):
    r = read_tropomi_ch4(_write(tmp_path / "s5p.nc", _truth(2)))
    mask = np.ones(r.n_pixels, bool)
    mask[[0, 7]] = False
    op = r.operator(np.linspace(1.02e5, 1.0, 31), mask=mask)
    x = jnp.full(op.state_shape, 1850.0) + jnp.linspace(0.0, 30.0, 30)[None, :]
    out = op(x)
    np.testing.assert_array_equal(out.valid(), mask)
    np.testing.assert_allclose(eqx.filter_jit(op)(x).values, out.values, rtol=1e-6)
    g = jax.grad(lambda s: jnp.sum(op(s).filled() ** 2))(x)
    assert np.all(np.isfinite(g)) and np.all(np.asarray(g)[~mask] == 0.0)
    lin = op.linearize(x)
    assert gates.dot_product_test(lin.mv, lin.transpose().mv, x, out.values, key=getkey()).passed


def test_to_xarray(tmp_path):
    r = read_tropomi_ch4(_write(tmp_path / "s5p.nc", _truth()), bbox=(10.0, 45.0, 11.0, 46.0))
    ds = r.to_xarray()
    assert ds.sizes["pixel"] == r.n_pixels and ds.sizes["layer"] == NL
    assert ds.sizes["level"] == NL + 1 and ds.sizes["corner"] == 4
    assert ds["xch4"].attrs["units"] == "ppb" and ds["pressure_edges"].attrs["units"] == "Pa"
    assert ds["dry_air_subcolumns"].attrs["units"] == "mol m-2"
    np.testing.assert_allclose(ds["longitude"], r.longitude)
    assert ds["time"].dtype.kind == "M" and ds.attrs["bias_corrected"] == 1
    assert ds.attrs["processor_version"] == "02.04.00" and ds.attrs["orbit"] == 19280
    ds.to_netcdf(tmp_path / "out.nc")
