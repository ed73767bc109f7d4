"""LocalFrame and CF geolocation, against the geodesic (pyproj.Geod, Karney 2013) and
the closed-form meridian convergence of the azimuthal equidistant projection."""

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings, strategies as st
from pyproj import Geod

from plumax_core import (
    LocalFrame,
    MetField,
    add_geolocation,
    frame_from_dataset,
    seconds_since_epoch,
)
from plumax_core.validation import check_length_units

GEOD = Geod(ellps="WGS84")


@settings(max_examples=30, deadline=None)
@given(
    lon0=st.floats(-179.0, 179.0),
    lat0=st.floats(-80.0, 80.0),
    x=st.floats(-60e3, 60e3),
    y=st.floats(-60e3, 60e3),
)
def test_distance_from_centre_is_geodesic(lon0, lat0, x, y):
    frame = LocalFrame(lon0, lat0)
    lon, lat = frame.to_lonlat(x, y)
    az, _, dist = GEOD.inv(lon0, lat0, lon, lat)
    np.testing.assert_allclose(dist, np.hypot(x, y), rtol=1e-9, atol=1e-4)
    if np.hypot(x, y) > 1.0:  # the azimuth from the centre is the grid bearing there
        bearing = np.rad2deg(np.arctan2(x, y))
        assert abs((az - bearing + 180.0) % 360.0 - 180.0) < 1e-6
    xb, yb = frame.to_xy(lon, lat)
    np.testing.assert_allclose([xb, yb], [x, y], atol=1e-4)


def test_meridian_convergence_closed_form():
    # small-offset convergence of a centred projection: gamma ~ dlon * sin(lat)
    frame = LocalFrame(-103.9, 32.1)
    lon, lat = frame.to_lonlat(np.array([20e3, -20e3, 0.0]), np.array([0.0, 0.0, 30e3]))
    beta = frame.north_bearing(lon, lat)
    expected = -(lon - frame.lon0) * np.sin(np.deg2rad(lat))
    np.testing.assert_allclose(beta, expected, atol=2e-3)
    assert beta[0] < 0 < beta[1]  # meridians lean towards the pole
    assert abs(frame.north_bearing(frame.lon0, frame.lat0)) < 1e-9


def test_wind_to_grid_keeps_speed_and_rotates():
    frame = LocalFrame(10.0, 60.0)
    lon, lat = frame.to_lonlat(40e3, 0.0)
    beta = float(frame.north_bearing(lon, lat))
    u, v = frame.wind_to_grid(0.0, 5.0, lon, lat)  # a southerly wind, towards north
    assert np.hypot(u, v) == pytest.approx(5.0)
    assert np.rad2deg(np.arctan2(u, v)) == pytest.approx(beta)


def test_centred_on_crosses_antimeridian():
    frame = LocalFrame.centred_on([179.9, -179.9], [10.0, 10.2])
    assert abs(abs(frame.lon0) - 180.0) < 1e-9
    assert frame.lat0 == pytest.approx(10.1)


@pytest.mark.parametrize(
    ("lon0", "lat0", "match"), [(200.0, 0.0, "lon0"), (0.0, 90.0, "lat0"), (np.nan, 0, "lon0")]
)
def test_bad_centre(lon0, lat0, match):
    with pytest.raises(ValueError, match=match):
        LocalFrame(lon0, lat0)


def test_metres_given_as_degrees_are_refused():
    frame = LocalFrame(0.0, 45.0)
    with pytest.raises(ValueError, match="latitude"):
        frame.to_xy(0.0, 3000.0)  # metres passed as a latitude
    for units in ("degrees_north", "degrees_east", "degree"):
        with pytest.raises(ValueError, match="not metres"):
            check_length_units("y", units)
    with pytest.raises(ValueError, match="expected metres"):
        check_length_units("y", "km")
    ds = xr.Dataset(
        {"u": (("y", "x"), np.ones((2, 2))), "v": (("y", "x"), np.ones((2, 2)))},
        coords={
            "x": ("x", [0.0, 0.25], {"units": "degrees_east"}),
            "y": ("y", [32.0, 32.25], {"units": "degrees_north"}),
        },
    )
    with pytest.raises(ValueError, match="not metres"):
        MetField.from_xarray(ds)
    with pytest.raises(ValueError, match="not metres"):
        add_geolocation(ds, frame)


def test_add_geolocation_round_trip(tmp_path):
    frame = LocalFrame(-103.9, 32.1)
    x = np.arange(5) * 60.0 - 120.0
    y = np.arange(4) * 60.0 - 90.0
    ds = xr.Dataset(
        {"enhancement": (("y", "x"), np.arange(20.0).reshape(4, 5), {"units": "ppm m"})},
        coords={"x": x, "y": y},
    )
    out = add_geolocation(ds, frame, time="2024-07-01T17:30:05Z")
    assert out["enhancement"].attrs["grid_mapping"] == "crs"
    assert out["crs"].attrs["grid_mapping_name"] == "azimuthal_equidistant"
    assert "crs_wkt" in out["crs"].attrs
    path = tmp_path / "g.nc"
    out.to_netcdf(path)
    with xr.open_dataset(path) as back:
        assert frame_from_dataset(back) == frame
        lon, lat = frame.to_lonlat(*np.meshgrid(x, y))
        np.testing.assert_allclose(back["lon"].values, lon)
        np.testing.assert_allclose(back["lat"].values, lat)
        t = back["time"].values
        assert seconds_since_epoch(t) == pytest.approx(seconds_since_epoch("2024-07-01T17:30:05"))
    assert frame_from_dataset(ds) is None


def test_seconds_since_epoch():
    assert seconds_since_epoch("1970-01-02T00:00:00Z") == 86400.0
    assert seconds_since_epoch(np.datetime64("2000-01-01", "D")) == 946684800.0
    assert float(seconds_since_epoch(12.5)) == 12.5
    with pytest.raises(ValueError, match="ISO 8601"):
        seconds_since_epoch("yesterday")
