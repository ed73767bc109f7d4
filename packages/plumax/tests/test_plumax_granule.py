"""Real layouts in, geolocated results out: an EMIT L1B granule (+ OBS) and an ERA5 file
-> ``plumax retrieve`` -> ``plumax invert``.

The files are written by :func:`plumax.pipelines.write_synthetic_granule` in the layouts
the readers cite (EMIT L1B RAD/OBS: ``plumax_rtm._emit_write``; ERA5 as the new CDS
writes it: ``plumax_core._met_era5``), with a plume of known rate at a known longitude
and latitude; the wind it blew with is the ERA5 file's, at the release height.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from plumax import pipelines as pl
from plumax._scene import read_scene
from plumax_core import frame_from_dataset, seconds_since_epoch


@pytest.fixture(scope="module")
def granule(tmp_path_factory) -> pl.SyntheticGranule:
    return pl.write_synthetic_granule(tmp_path_factory.mktemp("granule"))


@pytest.fixture(scope="module")
def chain(granule, plumax_cli) -> Path:
    d = granule.radiance_path.parent
    ins = [granule.radiance_path.name, granule.obs_path.name, granule.met_path.name]
    r = plumax_cli(
        "retrieve", ins[0], "--obs", ins[1], "--met", ins[2], "--out", "retrieved.nc",
        root=d, inputs=ins, outputs=["retrieved.nc"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "26x27 pixels, 45 EMIT bands" in r.stdout
    r = plumax_cli(
        "invert", "retrieved.nc", "--out", "post.json", "--netcdf", "post.nc",
        "--prior-q-kgh", "500",
        root=d, inputs=["retrieved.nc"], outputs=["post.json", "post.nc"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "source: lon -103.90" in r.stdout
    return d


def test_invert_recovers_the_source_lonlat_and_rate(chain, granule):
    summary = json.loads((chain / "post.json").read_text())["summary"]
    truth = granule.truth
    assert summary["Q"]["lo"] <= truth["Q_kgh"] <= summary["Q"]["hi"]
    for name in ("lon", "lat"):
        s = summary["source"][name]
        assert s["lo"] <= truth[name] <= s["hi"], (name, s, truth[name])
    for name in ("x0", "y0"):
        assert summary[name]["lo"] <= truth[name] <= summary[name]["hi"]
    # the interval is informative: narrower than a pixel
    assert summary["source"]["lat"]["hi"] - summary["source"]["lat"]["lo"] < 60.0 / 111e3


def test_retrieved_file_is_geolocated(chain, granule):
    with xr.open_dataset(chain / "retrieved.nc") as ds:
        frame = frame_from_dataset(ds)
        assert frame is not None
        assert frame.lon0 == pytest.approx(granule.frame.lon0, abs=1e-6)
        assert frame.lat0 == pytest.approx(granule.frame.lat0, abs=1e-6)
        assert "crs_wkt" in ds["crs"].attrs
        for v in ("values", "sigma", "plume_mask"):
            assert ds[v].attrs["grid_mapping"] == "crs"
        lon, lat = frame.lonlat_grid(ds["x"].values, ds["y"].values)
        np.testing.assert_allclose(ds["lon"].values, lon, atol=1e-9)
        np.testing.assert_allclose(ds["lat"].values, lat, atol=1e-9)
        t = float(seconds_since_epoch(ds["time"].values))
        assert t == pytest.approx(float(seconds_since_epoch("2024-06-01T18:00:01")), abs=1e-3)
        assert int(ds["plume_mask"].sum()) >= 5
        assert ds.attrs["met_source"].startswith("ERA5")
        assert ds.attrs["met_wind_speed"] == pytest.approx(granule.truth["wind_speed"], rel=1e-6)
        assert ds.attrs["met_wind_speed_log_std"] > 0  # the ERA5 default prior
        assert ds.attrs["obs_file"] == granule.obs_path.name


def test_posterior_netcdf_groups(chain):
    tree = xr.open_datatree(chain / "post.nc")
    try:
        assert {"unconstrained", "gaussian", "summary"} <= set(tree.children)
        s = tree["summary"]
        assert s["Q"].attrs["units"] == "kg/h"
        summary = json.loads((chain / "post.json").read_text())["summary"]
        assert float(s["source_lat"]) == pytest.approx(summary["source"]["lat"]["median"])
        assert float(s["Q"]) == pytest.approx(summary["Q"]["median"])
    finally:
        tree.close()


def _error(r, *needles):
    assert r.exit_code == 1, r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_granule_needs_obs_and_met(granule, plumax_cli):
    d = granule.radiance_path.parent
    rad = granule.radiance_path.name
    r = plumax_cli("retrieve", rad, "--out", "r.nc", root=d, inputs=[rad])
    _error(r, "EMIT L1B granule", "--obs", "--met")
    r = plumax_cli("retrieve", rad, "--obs", "nope.nc", "--met", "x.nc", root=d, inputs=[rad])
    _error(r, "--obs file 'nope.nc' does not exist")
    args = ("retrieve", rad, "--obs", granule.obs_path.name, "--met", granule.met_path.name)
    r = plumax_cli(*args, "--bbox", "1,2,3", "--out", "r.nc", root=d, inputs=[rad])
    _error(r, "--bbox must be LON_MIN,LAT_MIN,LON_MAX,LAT_MAX")
    # the met file given as the granule: neither ERA5 nor WRF
    r = plumax_cli(
        "retrieve", rad, "--obs", granule.obs_path.name, "--met", rad, "--out", "r.nc",
        root=d, inputs=[rad],
    )  # fmt: skip
    _error(r, "neither ERA5", "nor a WRF")


def test_bbox_window(granule):
    t = granule.truth
    box = (t["lon"] - 0.004, t["lat"] - 0.003, t["lon"] + 0.004, t["lat"] + 0.003)
    sc = pl.read_granule(granule.radiance_path, granule.obs_path, granule.met_path, bbox=box)
    ny, nx = sc.radiance.shape[:2]
    assert ny < 26 and nx < 27
    lon, lat = sc.frame.lonlat_grid(sc.radiance.coords["x"], sc.radiance.coords["y"])
    assert lon.min() <= box[0] + 0.001 and lon.max() >= box[2] - 0.001
    assert sc.frame.lat0 == pytest.approx(t["lat"], abs=1e-9)
    with pytest.raises(ValueError, match="holds no pixel of granule"):
        pl.read_granule(
            granule.radiance_path, granule.obs_path, granule.met_path, bbox=(10, 10, 10.1, 10.1)
        )


def test_radiance_scene_options_refused_for_a_plumax_scene(tmp_path, plumax_cli):
    ds = xr.Dataset({"radiance": (("y", "x", "band"), np.ones((2, 2, 2)))})
    ds.to_netcdf(tmp_path / "scene.nc")
    r = plumax_cli("retrieve", "scene.nc", "--stability", "C", root=tmp_path, inputs=["scene.nc"])
    _error(r, "--stability apply to an EMIT L1B granule")


def test_a_placed_synthetic_scene_keeps_its_frame_and_time():
    from plumax_core import LocalFrame

    frame = LocalFrame(10.0, 45.0)
    ds = pl.simulate(q_kgh=300.0, frame=frame, time="2024-01-02T03:04:05Z")
    assert frame_from_dataset(ds) == frame and ds["values"].attrs["grid_mapping"] == "crs"
    assert read_scene(ds).frame == frame  # invert reports lon/lat for it (chain test)
    # a placed radiance overpass keeps its frame and time through its file
    sc = pl.simulate_radiance(
        q_kgh=900.0,
        geometry=pl.default_geometry(8),
        key_surface=pl.radiance_keys(0)[0],
        key_noise=pl.radiance_keys(0)[1],
        frame=frame,
        time="2024-01-02T03:04:05Z",
    )
    back = pl.read_radiance_scene(sc.to_dataset())
    assert back.frame == frame
    assert back.time == pytest.approx(float(seconds_since_epoch("2024-01-02T03:04:05")))
