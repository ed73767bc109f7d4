"""`read_tropomi_ch4` on small files written by `write_tropomi_ch4` in the S5P CH4 L2 layout.

The layout written (groups PRODUCT, PRODUCT/SUPPORT_DATA/{GEOLOCATIONS, DETAILED_RESULTS,
INPUT_DATA}; dimensions time=1, scanline, ground_pixel, corner=4, layer=12, level=13;
``qa_value`` as an 8-bit integer with scale_factor 0.01; float ``_FillValue`` 9.96921e36;
layer profiles stored top of atmosphere first; edges ``p_s - k dp`` from the surface) is
the one read by the HARP S5P L2 ingestion (github.com/stcorp/harp,
``libharp/harp-ingest-s5p_l2.c``) and the Integrated Methane Inversion
(github.com/geoschem/integrated_methane_inversion, ``read_tropomi``), for the product
described in the Sentinel-5P Level 2 Product User Manual, Methane, SRON-S5P-LEV2-MA-001.
Units strings (``"1e-9"``, ``"mol m-2"``) and the ``qa_value`` fill value are assumptions
of the writer, not confirmed against the PUM's tables. The XCH4 reference is the sum over
sub-columns of IMI's ``TROPOMI_operator`` (eq. 46 of the ATBD as cited there).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plumax_core import AveragingKernelOperator, Observations, gates
from plumax_rtm import TropomiCH4, read_tropomi_ch4, write_tropomi_ch4

netCDF4 = pytest.importorskip("netCDF4")

FILL = 9.96921e36
NSCAN, NGP, NL = 5, 4, 12


def _truth(seed=0):
    """Keyword arguments of `write_tropomi_ch4` for a 5 x 4 swath (layers surface first)."""
    rng = np.random.default_rng(seed)
    lon = np.linspace(10.0, 11.5, NGP)[None, :] + np.linspace(0.0, 0.2, NSCAN)[:, None]
    lat = np.linspace(45.0, 46.0, NSCAN)[:, None] + np.zeros((1, NGP))
    ps = rng.uniform(8.5e4, 1.01e5, (NSCAN, NGP))
    dp = ps / NL - rng.uniform(0.0, 5.0, (NSCAN, NGP))
    d = (dp / 9.80665 / 0.0289644)[..., None] * rng.uniform(0.97, 1.0, (NSCAN, NGP, NL))
    xa_ppb = np.linspace(1880.0, 1600.0, NL) + rng.normal(0.0, 5.0, (NSCAN, NGP, NL))
    return {
        "longitude": lon,
        "latitude": lat,
        "surface_pressure": ps,
        "pressure_interval": dp,
        "dry_air_subcolumns": d,
        "prior_profile": xa_ppb * 1e-9 * d,
        "averaging_kernel": rng.uniform(0.5, 1.2, (NSCAN, NGP, NL)),
        "xch4": rng.uniform(1800.0, 1900.0, (NSCAN, NGP)),
        "xch4_bias_corrected": rng.uniform(1800.0, 1900.0, (NSCAN, NGP)),
        "precision": rng.uniform(5.0, 12.0, (NSCAN, NGP)),
        "qa_value": np.full((NSCAN, NGP), 1.0),
        "time_start": np.datetime64("2021-07-01T11:20:30.250", "ms"),
        "orbit": 19280,
    }


# --------------------------------------------------------------- layout and values


def test_reads_the_layout_surface_first_in_scanline_major_order(tmp_path):
    tr = _truth()
    r = read_tropomi_ch4(write_tropomi_ch4(tmp_path / "s5p.nc", **tr))
    assert isinstance(r, TropomiCH4) and r.n_pixels == NSCAN * NGP
    np.testing.assert_array_equal(r.scanline, np.repeat(np.arange(NSCAN), NGP))
    np.testing.assert_array_equal(r.ground_pixel, np.tile(np.arange(NGP), NSCAN))
    f32 = dict(rtol=1e-6)
    np.testing.assert_allclose(r.xch4, tr["xch4_bias_corrected"].ravel(), **f32)
    np.testing.assert_allclose(r.xch4_precision, tr["precision"].ravel(), **f32)
    np.testing.assert_allclose(r.longitude, tr["longitude"].ravel(), **f32)
    np.testing.assert_allclose(
        r.column_averaging_kernel, tr["averaging_kernel"].reshape(-1, NL), **f32
    )
    np.testing.assert_allclose(
        r.dry_air_subcolumns, tr["dry_air_subcolumns"].reshape(-1, NL), **f32
    )
    np.testing.assert_allclose(
        r.methane_profile_apriori, tr["prior_profile"].reshape(-1, NL), **f32
    )
    edges = r.pressure_edges
    assert edges.shape == (r.n_pixels, NL + 1) and np.all(np.diff(edges, axis=1) < 0)
    np.testing.assert_allclose(edges[:, 0], tr["surface_pressure"].ravel(), **f32)
    assert r.longitude_bounds.shape == (r.n_pixels, 4)
    epoch = np.datetime64("1970-01-01T00:00:00", "ms")
    t_expected = (tr["time_start"] - epoch) / np.timedelta64(1, "s")
    np.testing.assert_allclose(r.time[:NGP], t_expected, atol=1e-3)
    np.testing.assert_allclose(np.diff(r.time[::NGP]), 0.84, atol=1e-3)
    assert r.attrs["processor_version"] == "02.04.00"
    assert r.attrs["time_coverage_start"] == "2021-07-01T11:20:30Z"
    assert r.counts == {"total": 20, "fill": 0, "below_qa": 0, "outside_bbox": 0, "kept": 20}
    with pytest.raises(ValueError, match="read-only"):
        r.xch4[0] = 0.0


def test_time_from_time_plus_delta_time_equals_time_utc(tmp_path):
    tr = _truth()
    a = read_tropomi_ch4(write_tropomi_ch4(tmp_path / "a.nc", **tr))
    b = read_tropomi_ch4(write_tropomi_ch4(tmp_path / "b.nc", **tr, time_utc=False))
    np.testing.assert_allclose(a.time, b.time, atol=1e-6)


def test_bias_corrected_or_not(tmp_path):
    tr = _truth()
    path = write_tropomi_ch4(tmp_path / "s5p.nc", **tr)
    np.testing.assert_allclose(
        read_tropomi_ch4(path, bias_corrected=False).xch4, tr["xch4"].ravel(), rtol=1e-6
    )
    np.testing.assert_allclose(
        read_tropomi_ch4(path).xch4, tr["xch4_bias_corrected"].ravel(), rtol=1e-6
    )


def test_qa_filter_default_half_and_threshold(tmp_path):
    tr = _truth()
    tr["qa_value"][0, :] = [0.0, 0.49, 0.5, 0.51]
    tr["qa_value"][1, 0] = 0.75
    path = write_tropomi_ch4(tmp_path / "s5p.nc", **tr)
    r = read_tropomi_ch4(path)
    assert r.counts["below_qa"] == 2 and r.n_pixels == 18
    kept0 = r.ground_pixel[r.scanline == 0]
    np.testing.assert_array_equal(kept0, [2, 3])  # 0.5 is kept, 0.49 is not
    np.testing.assert_allclose(r.qa_value[:2], [0.5, 0.51], atol=1e-6)
    assert read_tropomi_ch4(path, qa_threshold=0.8).n_pixels == 15
    assert read_tropomi_ch4(path, qa_threshold=0.0).n_pixels == 20


def test_fill_pixels_are_dropped(tmp_path):
    tr = _truth()
    tr["xch4_bias_corrected"][1, 1] = np.nan
    tr["averaging_kernel"][2, 3, 5] = np.nan  # one layer of one pixel
    tr["latitude"][4, 0] = np.nan
    path = write_tropomi_ch4(tmp_path / "s5p.nc", **tr)
    r = read_tropomi_ch4(path)
    assert r.counts["fill"] == 3 and r.n_pixels == 17
    ids = set(zip(r.scanline.tolist(), r.ground_pixel.tolist(), strict=True))
    assert not ids & {(1, 1), (2, 3), (4, 0)}
    assert np.all(np.isfinite(r.column_averaging_kernel)) and np.all(r.xch4 < 1e30)
    # the uncorrected XCH4 has no fill at (1, 1): that pixel is back
    assert read_tropomi_ch4(path, bias_corrected=False).n_pixels == 18


def test_bbox_subsets_pixel_centres(tmp_path):
    tr = _truth()
    path = write_tropomi_ch4(tmp_path / "s5p.nc", **tr)
    box = (10.4, 45.2, 11.2, 45.8)
    r = read_tropomi_ch4(path, bbox=box)
    inside = (
        (tr["longitude"] >= 10.4)
        & (tr["longitude"] <= 11.2)
        & (tr["latitude"] >= 45.2)
        & (tr["latitude"] <= 45.8)
    )
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
    r = read_tropomi_ch4(write_tropomi_ch4(tmp_path / "s5p.nc", **tr, units={"ps": "hPa"}))
    np.testing.assert_allclose(r.surface_pressure, tr["surface_pressure"].ravel(), rtol=1e-6)


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
    path = write_tropomi_ch4(tmp_path / "s5p.nc", **_truth(), **kwargs)
    with pytest.raises(ValueError, match=match):
        read_tropomi_ch4(path)


def test_bad_arguments_and_non_physical_values(tmp_path):
    tr = _truth()
    path = write_tropomi_ch4(tmp_path / "s5p.nc", **tr)
    with pytest.raises(ValueError, match="`qa_threshold`"):
        read_tropomi_ch4(path, qa_threshold=50)
    with pytest.raises(FileNotFoundError):
        read_tropomi_ch4(tmp_path / "absent.nc")
    tr["precision"][0, 0] = 0.0
    with pytest.raises(ValueError, match="'methane_mixing_ratio_precision' must be > 0 ppb"):
        read_tropomi_ch4(write_tropomi_ch4(tmp_path / "p0.nc", **tr))
    tr = _truth()
    tr["pressure_interval"][0, 0] = (
        tr["surface_pressure"][0, 0] / 10.0
    )  # the top edge would be below 0 Pa
    with pytest.raises(ValueError, match="'pressure_interval' must be <= surface_pressure / 12"):
        read_tropomi_ch4(write_tropomi_ch4(tmp_path / "dp.nc", **tr))
    with netCDF4.Dataset(tmp_path / "other.nc", "w") as ds:
        ds.createGroup("PRODUCT")
    with pytest.raises(ValueError, match="group 'PRODUCT/SUPPORT_DATA/GEOLOCATIONS' is missing"):
        read_tropomi_ch4(tmp_path / "other.nc")


# --------------------------------------------------------------- core types


def test_observations_carry_precision_and_pixel_ids(tmp_path):
    tr = _truth()
    tr["qa_value"][3, 2] = 0.2
    r = read_tropomi_ch4(write_tropomi_ch4(tmp_path / "s5p.nc", **tr))
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
    r = read_tropomi_ch4(write_tropomi_ch4(tmp_path / "s5p.nc", **tr))
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
    r = read_tropomi_ch4(write_tropomi_ch4(tmp_path / "s5p.nc", **_truth(2)))
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
    r = read_tropomi_ch4(
        write_tropomi_ch4(tmp_path / "s5p.nc", **_truth()), bbox=(10.0, 45.0, 11.0, 46.0)
    )
    ds = r.to_xarray()
    assert ds.sizes["pixel"] == r.n_pixels and ds.sizes["layer"] == NL
    assert ds.sizes["level"] == NL + 1 and ds.sizes["corner"] == 4
    assert ds["xch4"].attrs["units"] == "ppb" and ds["pressure_edges"].attrs["units"] == "Pa"
    assert ds["dry_air_subcolumns"].attrs["units"] == "mol m-2"
    np.testing.assert_allclose(ds["longitude"], r.longitude)
    assert ds["time"].dtype.kind == "M" and ds.attrs["bias_corrected"] == 1
    assert ds.attrs["processor_version"] == "02.04.00" and ds.attrs["orbit"] == 19280
    ds.to_netcdf(tmp_path / "out.nc")


# --------------------------------------------------------------- the writer


def test_writer_layout_fill_qa_packing_and_history(tmp_path):
    tr = _truth()
    tr["xch4"][0, 1] = np.nan
    tr["qa_value"][2, 2] = 0.87
    del tr["xch4_bias_corrected"]  # None: the same values as `xch4`
    path = write_tropomi_ch4(tmp_path / "s5p.nc", **tr)
    assert path == str(tmp_path / "s5p.nc")
    with netCDF4.Dataset(path) as ds:
        assert "synthetic" in ds.history and ds.orbit == 19280
        assert ds.product_name == "S5P_OFFL_L2__CH4____" and ds.Conventions == "CF-1.7"
        p = ds["PRODUCT"]
        assert set(p.dimensions) >= {"time", "scanline", "ground_pixel"}
        assert p.dimensions["layer"].size == NL and p.dimensions["level"].size == NL + 1
        x = p["methane_mixing_ratio"]
        assert x.dimensions == ("time", "scanline", "ground_pixel") and x.units == "1e-9"
        x.set_auto_mask(False)
        assert x.dtype == np.float32 and x[0, 0, 1] == np.float32(FILL)
        q = p["qa_value"]
        assert q.dtype == np.uint8 and np.isclose(q.scale_factor, 0.01) and q.units == "1"
        q.set_auto_maskandscale(False)
        assert q[0, 2, 2] == 87 and q[0, 0, 0] == 100
        assert p["time_utc"][0, 0] == "2021-07-01T11:20:30.250000Z"
        assert p["delta_time"].units == "milliseconds since 2021-07-01 00:00:00"
        ak = ds["PRODUCT/SUPPORT_DATA/DETAILED_RESULTS/column_averaging_kernel"]
        np.testing.assert_allclose(ak[0, 3, 1], tr["averaging_kernel"][3, 1, ::-1], rtol=1e-6)
    r = read_tropomi_ch4(path)
    assert r.counts["fill"] == 1
    # the bias-corrected XCH4 (read by default) was written as `xch4`
    np.testing.assert_allclose(r.xch4, np.delete(tr["xch4"].ravel(), 1), rtol=1e-6)
    a = read_tropomi_ch4(
        write_tropomi_ch4(tmp_path / "iso.nc", **{**tr, "time_start": "2021-07-01T11:20:30.25Z"})
    )
    np.testing.assert_array_equal(a.time, r.time)


def test_writer_refuses_an_existing_path_and_mismatched_shapes(tmp_path):
    tr = _truth()
    path = write_tropomi_ch4(tmp_path / "s5p.nc", **tr)
    before = (tmp_path / "s5p.nc").read_bytes()
    with pytest.raises(ValueError, match="exists; refusing to overwrite"):
        write_tropomi_ch4(path, **tr)
    assert (tmp_path / "s5p.nc").read_bytes() == before
    bad = [
        ({"precision": np.ones((NSCAN, NGP + 1))}, "`precision` has shape"),
        ({"longitude": np.ones((NSCAN + 1, NGP))}, "`longitude` has shape"),
        ({"xch4_bias_corrected": np.ones(NGP)}, "`xch4_bias_corrected` has shape"),
        ({"averaging_kernel": np.ones((NSCAN, NGP, NL - 1))}, "`averaging_kernel` has shape"),
        ({"prior_profile": np.ones((NGP, NSCAN, NL))}, "`prior_profile` has shape"),
        ({"latitude": np.ones(NSCAN)}, "`latitude` must be a non-empty"),
        ({"qa_value": np.full((NSCAN, NGP), 50.0)}, "`qa_value` must be in \\[0, 1\\]"),
        ({"units": {"pressure": "Pa"}}, "`units` key 'pressure'"),
        ({"drop": ("qa",)}, "`drop` name 'qa'"),
    ]
    for change, match in bad:
        with pytest.raises(ValueError, match=match):
            write_tropomi_ch4(tmp_path / "bad.nc", **{**tr, **change})
        assert not (tmp_path / "bad.nc").exists()
    # scalars and one surface-first profile are broadcast to every pixel
    r = read_tropomi_ch4(
        write_tropomi_ch4(
            tmp_path / "bcast.nc",
            **{**tr, "precision": 7.0, "averaging_kernel": np.linspace(1.0, 0.5, NL)},
        )
    )
    np.testing.assert_allclose(r.xch4_precision, 7.0)
    np.testing.assert_allclose(r.column_averaging_kernel[5], np.linspace(1.0, 0.5, NL), rtol=1e-6)
