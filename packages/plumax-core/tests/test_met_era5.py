"""MetField.from_era5 on small files written in the ERA5 NetCDF layouts.

Layouts: the new Copernicus CDS (since Sept 2024; ECMWF Confluence "GRIB to netCDF
conversion on new CDS and ADS systems"): dims valid_time, latitude (descending),
longitude, pressure_level (hPa), a scalar `number` and an `expver` coordinate along
valid_time (PyPSA/atlite PR #391); the old CDS: dim `time`, `expver` as a dimension
mixing ERA5 (1) and ERA5T (5) (ECMWF forum "ERA5 CDS requests which return a mixture of
ERA5 and ERA5T data"), packed shorts with scale_factor/add_offset (Unidata
ECMWF_ERA-40_subset.cdl). Units strings as ECMWF writes them ("m s**-1", "K", "Pa",
"m", "(0 - 1)", "J m**-2", "W m**-2"); ECMWF fluxes positive downwards (ECMWF Data FAQ).
The expected values are hand interpolations (NumPy) of the values written.
"""

import numpy as np
import pytest
import xarray as xr

from plumax_core import LocalFrame, MetField, units
from plumax_core._geo import seconds_since_epoch
from plumax_core._met_profile import golder_class, insolation_class, obukhov_length, sun_elevation

LAT = np.array([33.0, 32.75, 32.5, 32.25])  # descending, as ERA5
LON = np.array([-104.5, -104.25, -104.0, -103.75])
TIMES = np.array(["2024-06-01T17:00", "2024-06-01T18:00", "2024-06-01T19:00"], "datetime64[ns]")
UNITS = {"u10": "m s**-1", "v10": "m s**-1", "t2m": "K", "sp": "Pa", "blh": "m",
         "zust": "m s**-1", "ishf": "W m**-2", "fsr": "m", "tcc": "(0 - 1)",
         "ssrd": "J m**-2"}  # fmt: skip
POINT = dict(lon=-104.1, lat=32.6, time="2024-06-01T18:20:00")


def _fields(seed=0):
    rng = np.random.default_rng(seed)
    shape = (TIMES.size, LAT.size, LON.size)
    base = {"u10": 3.0, "v10": -2.0, "t2m": 300.0, "sp": 88000.0, "blh": 1500.0,
            "zust": 0.4, "ishf": -150.0, "fsr": 0.05, "tcc": 0.3, "ssrd": 3.0e6}  # fmt: skip
    scale = {"u10": 1.0, "v10": 1.0, "t2m": 2.0, "sp": 300.0, "blh": 200.0, "zust": 0.05,
             "ishf": 30.0, "fsr": 0.01, "tcc": 0.1, "ssrd": 2e5}  # fmt: skip
    return {k: base[k] + scale[k] * rng.uniform(-1, 1, shape) for k in base}


def era5_single(fields=None, *, lon=LON, lat=LAT, drop=()):
    fields = _fields() if fields is None else fields
    data = {
        k: (("valid_time", "latitude", "longitude"), v, {"units": UNITS[k]})
        for k, v in fields.items()
        if k not in drop
    }
    return xr.Dataset(
        data,
        coords={
            "valid_time": ("valid_time", TIMES),
            "latitude": ("latitude", lat, {"units": "degrees_north"}),
            "longitude": ("longitude", lon, {"units": "degrees_east"}),
            "number": 0,
            "expver": ("valid_time", np.array(["0001"] * TIMES.size)),
        },
    )


def hand(values, lon=POINT["lon"], lat=POINT["lat"], t=POINT["time"], lons=LON, lats=LAT):
    """Bilinear (lon, lat) + linear time interpolation by hand."""
    ts = seconds_since_epoch(TIMES)
    tt = seconds_since_epoch(t)
    i = int(np.searchsorted(ts, tt)) - 1
    wt = (tt - ts[i]) / (ts[i + 1] - ts[i])
    order = np.argsort(lats)
    la, v = lats[order], values[:, order, :]
    j = int(np.searchsorted(la, lat)) - 1
    wy = (lat - la[j]) / (la[j + 1] - la[j])
    k = int(np.searchsorted(lons, lon)) - 1
    wx = (lon - lons[k]) / (lons[k + 1] - lons[k])

    def at(n):
        return ((1 - wy) * ((1 - wx) * v[n, j, k] + wx * v[n, j, k + 1])
                + wy * ((1 - wx) * v[n, j + 1, k] + wx * v[n, j + 1, k + 1]))  # fmt: skip

    return (1 - wt) * at(i) + wt * at(i + 1)


@pytest.fixture
def sl_file(tmp_path):
    path = tmp_path / "era5_sl.nc"
    era5_single().to_netcdf(path, encoding={"valid_time": {"units": "seconds since 1970-01-01"}})
    return path


def test_wind_and_state_equal_hand_interpolation(sl_file):
    f = _fields()
    met = MetField.from_era5(sl_file, **POINT)
    assert met.u.shape == ()
    np.testing.assert_allclose(float(met.u), hand(f["u10"]), rtol=1e-6)
    np.testing.assert_allclose(float(met.v), hand(f["v10"]), rtol=1e-6)
    np.testing.assert_allclose(float(met.temperature), hand(f["t2m"]), rtol=1e-6)
    np.testing.assert_allclose(float(met.pressure), hand(f["sp"]), rtol=1e-6)
    np.testing.assert_allclose(float(met.pblh), hand(f["blh"]), rtol=1e-6)
    np.testing.assert_allclose(float(met.z0), hand(f["fsr"]), rtol=1e-6)
    # MetField stores time in JAX's default float (float32 without x64: 128 s steps in 2024)
    assert float(met.time[0]) == pytest.approx(seconds_since_epoch(POINT["time"]), abs=128.0)
    assert met.source.startswith("ERA5") and "era5_sl.nc" in met.source
    # stability from the fluxes: ishf < 0 (downward positive) is an upward flux: unstable
    L = obukhov_length(hand(f["zust"]), -hand(f["ishf"]), hand(f["t2m"]), hand(f["sp"]))
    assert float(met.obukhov_length) == pytest.approx(float(L), rel=1e-5) and L < 0
    assert int(met.stability_class) == int(golder_class(L, hand(f["fsr"])))


def test_neutral_profile_at_height_with_override(sl_file):
    f = _fields()
    ds = era5_single(drop=("zust", "ishf"))
    met = MetField.from_era5(ds, **POINT, height=50.0, stability="D")
    z0 = hand(f["fsr"])
    expected = hand(f["u10"]) * np.log(50.0 / z0) / np.log(10.0 / z0)
    np.testing.assert_allclose(float(met.u), expected, rtol=1e-6)
    assert int(met.stability_class) == 3 and met.obukhov_length is None


def test_units_are_checked(tmp_path):
    ds = era5_single()
    ds["u10"].attrs["units"] = "km h**-1"
    with pytest.raises(ValueError, match="u10.*km h"):
        MetField.from_era5(ds, **POINT)
    ds = era5_single()
    ds["u10"].attrs["units"] = "m s-1"  # the CF spelling is accepted too
    MetField.from_era5(ds, **POINT)
    del ds["sp"].attrs["units"]
    with pytest.raises(ValueError, match="'sp' has no `units`"):
        MetField.from_era5(ds, **POINT)


def test_degrees_are_not_metres():
    raw = era5_single().rename(
        {"latitude": "y", "longitude": "x", "valid_time": "time", "u10": "u", "v10": "v"}
    )
    raw = raw[["u", "v"]].drop_vars(["number", "expver"])
    with pytest.raises(ValueError, match="m s-1"):  # ECMWF's "m s**-1" is not CF's
        MetField.from_xarray(raw)
    for name in ("u", "v"):
        raw[name].attrs["units"] = "m s-1"
    with pytest.raises(ValueError, match="angle"):  # degrees where metres are expected
        MetField.from_xarray(raw)
    xdeg = xr.DataArray(LON, dims="x", attrs={"units": "degrees_east"})
    ym = xr.DataArray(np.array([0.0, 100.0]), dims="y", attrs={"units": "m"})
    with pytest.raises(ValueError, match="x.*angle"):
        MetField.from_era5(era5_single(), **POINT, x=xdeg, y=ym)


@pytest.mark.parametrize(
    "change, match",
    [({"lon": -105.0}, "lon"), ({"lat": 33.2}, "lat"), ({"time": "2024-06-01T19:30"}, "time")],
)
def test_outside_coverage_is_refused(change, match):
    with pytest.raises(ValueError, match=f"`{match}`.*outside"):
        MetField.from_era5(era5_single(), **{**POINT, **change})


def test_longitudes_0_360_and_ascending_latitude():
    ref = MetField.from_era5(era5_single(), **POINT)
    m360 = MetField.from_era5(era5_single(lon=LON + 360.0), **POINT)
    np.testing.assert_allclose([m360.u, m360.v], [ref.u, ref.v], rtol=1e-6)
    f = {k: v[:, ::-1, :] for k, v in _fields().items()}
    asc = MetField.from_era5(era5_single(f, lat=LAT[::-1]), **POINT)
    np.testing.assert_allclose([asc.u, asc.v, asc.pblh], [ref.u, ref.v, ref.pblh], rtol=1e-6)


def test_global_grid_wraps_across_the_seam():
    lons = np.arange(0.0, 360.0, 90.0)
    f = _fields()
    ds = era5_single(f, lon=lons)
    met = MetField.from_era5(ds, lon=-10.0, lat=32.6, time=POINT["time"])  # between 270 and 360
    wrapped = {k: np.concatenate([v, v[:, :, :1]], axis=2) for k, v in f.items()}
    exp = hand(wrapped["u10"], lon=350.0, lat=32.6, lons=np.append(lons, 360.0))
    np.testing.assert_allclose(float(met.u), exp, rtol=1e-6)


def test_old_cds_expver_dimension():
    f = _fields()
    e1 = {k: v.copy() for k, v in f.items()}
    e5 = {k: v + 1.0 for k, v in f.items()}
    for k in f:
        e1[k][2] = np.nan  # last time only in ERA5T
        e5[k][0] = np.nan  # first time only in ERA5; the middle one in both
    data = {
        k: (("time", "expver", "latitude", "longitude"), np.stack([e1[k], e5[k]], 1),
            {"units": UNITS[k]})
        for k in f
    }  # fmt: skip
    ds = xr.Dataset(
        data,
        coords={"time": TIMES, "expver": [1, 5], "latitude": LAT, "longitude": LON},
    )
    combined = f["u10"].copy()
    combined[2] += 1.0  # ERA5T where ERA5 is missing; ERA5 (expver 1) where both exist
    met = MetField.from_era5(ds, **POINT)
    np.testing.assert_allclose(float(met.u), hand(combined), rtol=1e-6)
    late = {**POINT, "time": "2024-06-01T18:45"}
    met = MetField.from_era5(ds, **late)
    np.testing.assert_allclose(float(met.u), hand(combined, t=late["time"]), rtol=1e-6)


def test_packed_shorts_decode_to_the_same_result(tmp_path):
    f = _fields()
    path = tmp_path / "packed.nc"
    enc = {
        k: {"dtype": "int16", "scale_factor": 0.001, "add_offset": 1.0, "_FillValue": -32767}
        for k in ("u10", "v10")
    }
    era5_single(f).to_netcdf(path, encoding=enc)
    unpacked = {k: np.round((f[k] - 1.0) / 0.001) * 0.001 + 1.0 for k in ("u10", "v10")}
    met = MetField.from_era5(path, **POINT)
    np.testing.assert_allclose(float(met.u), hand(unpacked["u10"]), rtol=1e-6)
    with xr.open_dataset(path, mask_and_scale=False) as raw:
        assert raw["u10"].dtype == np.int16
        met_raw = MetField.from_era5(raw, **POINT)
    np.testing.assert_allclose([met_raw.u, met_raw.v], [met.u, met.v], rtol=1e-6)


def test_ensemble_member():
    f0, f1 = _fields(0), _fields(1)
    data = {
        k: (("number", "valid_time", "latitude", "longitude"), np.stack([f0[k], f1[k]]),
            {"units": UNITS[k]})
        for k in f0
    }  # fmt: skip
    ds = xr.Dataset(
        data, coords={"number": [0, 1], "valid_time": TIMES, "latitude": LAT, "longitude": LON}
    )
    with pytest.raises(ValueError, match="number="):
        MetField.from_era5(ds, **POINT)
    met = MetField.from_era5(ds, **POINT, number=1)
    np.testing.assert_allclose(float(met.u), hand(f1["u10"]), rtol=1e-6)
    with pytest.raises(ValueError, match="`number` = 7"):
        MetField.from_era5(ds, **POINT, number=7)


def test_grid_mode_and_rotation():
    frame = LocalFrame(-104.0, 32.5)
    x = np.array([-20e3, -10e3, 0.0, 10e3])
    y = np.array([-5e3, 0.0, 5e3])
    met = MetField.from_era5(era5_single(), **POINT, frame=frame, x=x, y=y)
    assert met.u.shape == (1, 1, 3, 4) and met.stability_class.shape == (1, 1, 3, 4)
    np.testing.assert_array_equal(np.asarray(met.x), x)
    lon, lat = frame.lonlat_grid(x, y)
    f = _fields()
    nodes = list(zip(lon.ravel(), lat.ravel(), strict=True))
    ue = np.array([hand(f["u10"], lon=a, lat=b) for a, b in nodes])
    ve = np.array([hand(f["v10"], lon=a, lat=b) for a, b in nodes])
    ug, vg = frame.wind_to_grid(ue, ve, lon.ravel(), lat.ravel())
    np.testing.assert_allclose(np.asarray(met.u).ravel(), ug, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(met.v).ravel(), vg, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(met.wind_speed).ravel(), np.hypot(ue, ve), rtol=1e-5)


def test_stability_without_fluxes_and_missing_everything():
    f = _fields()
    met = MetField.from_era5(era5_single(drop=("zust", "ishf")), **POINT)
    t = seconds_since_epoch(POINT["time"])
    elev = sun_elevation(t, POINT["lon"], POINT["lat"])
    assert elev > 0  # 18:20 UTC in New Mexico: midday
    speed = np.hypot(hand(f["u10"]), hand(f["v10"]))
    expected = insolation_class(speed, hand(f["ssrd"]) / 3600.0, hand(f["tcc"]), elev)
    assert int(met.stability_class) == int(expected)
    assert met.obukhov_length is None
    with pytest.raises(ValueError, match="zust.*stability="):
        MetField.from_era5(era5_single(drop=("zust", "ishf", "ssrd", "tcc")), **POINT)


def test_pressure_levels_above_the_surface_layer():
    f = _fields()
    plev = np.array([1000.0, 925.0, 850.0, 700.0])  # 1000 and 925 hPa are below ground
    rng = np.random.default_rng(3)
    shape = (TIMES.size, plev.size, LAT.size, LON.size)
    pl = {"u": 8.0 + rng.uniform(-1, 1, shape), "v": 1.0 + rng.uniform(-1, 1, shape),
          "t": 290.0 + rng.uniform(-2, 2, shape)}  # fmt: skip
    ds_pl = xr.Dataset(
        {k: (("valid_time", "pressure_level", "latitude", "longitude"), v,
             {"units": "K" if k == "t" else "m s**-1"}) for k, v in pl.items()},
        coords={"valid_time": TIMES, "pressure_level": ("pressure_level", plev, {"units": "hPa"}),
                "latitude": LAT, "longitude": LON},
    )  # fmt: skip
    met = MetField.from_era5(era5_single(f), ds_pl, **POINT, height=1500.0)
    sp, t2 = hand(f["sp"]), hand(f["t2m"])
    levels = [(p * 100.0, hand(pl["u"][:, i]), hand(pl["t"][:, i])) for i, p in enumerate(plev)]
    levels = [lv for lv in levels if lv[0] < sp]
    z, zs, us = 0.0, [10.0], [hand(f["u10"])]
    p_prev, t_prev = sp, t2
    for p, u, t in levels:
        # R_d/g from core's one definition (R_DRY_AIR = R/M_air, checked against the
        # published 287.05 in test_units)
        z += units.R_DRY_AIR / units.G0 * 0.5 * (t_prev + t) * np.log(p_prev / p)
        zs.append(z)
        us.append(u)
        p_prev, t_prev = p, t
    np.testing.assert_allclose(float(met.u), np.interp(1500.0, zs, us), rtol=1e-6)
    assert "pressure levels" in met.source
    with pytest.raises(ValueError, match="above the highest pressure level"):
        MetField.from_era5(era5_single(f), ds_pl, **POINT, height=9000.0)
    bad = ds_pl.copy()
    bad["pressure_level"].attrs["units"] = "m"
    with pytest.raises(ValueError, match="pressure_level"):
        MetField.from_era5(era5_single(f), bad, **POINT)
