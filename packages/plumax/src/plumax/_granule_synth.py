"""A small synthetic granule in the real layouts: EMIT L1B RAD + OBS and an ERA5 file.

For trying the real-data chain (``plumax retrieve GRANULE --obs OBS --met ERA5`` then
``plumax invert``) without a download, and for its tests and docs. Every number comes
from a library: the met is ``MetField.from_era5`` of the ERA5 file written here (the
plume blows with exactly the wind the retrieval will read), the overpass is
:func:`plumax._overpass.simulate_radiance` (Gaussian plume, pixel-averaged, through the
Beer-Lambert model on EMIT bands), and the files are written by
``plumax_rtm.write_emit_l1b`` (layout facts cited there). The ERA5 file follows the
new Copernicus CDS NetCDF layout that ``MetField.from_era5`` documents (``valid_time``,
descending ``latitude``, ``longitude``, ``number``, ``expver``; ECMWF units strings).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax.random as jr
import numpy as np

import plumax_rtm as pr
from plumax_core import STABILITY_CLASSES, LocalFrame, MetField, seconds_since_epoch, units
from plumax_transport import ColumnImage

from ._granule import EMIT_PIXEL_SIZE
from ._overpass import simulate_radiance

__all__ = ["SyntheticGranule", "write_synthetic_granule"]

_ERA5_UNITS = {
    "u10": "m s**-1",
    "v10": "m s**-1",
    "t2m": "K",
    "sp": "Pa",
    "blh": "m",
    "fsr": "m",
    "tcc": "(0 - 1)",
    "ssrd": "J m**-2",
}


@dataclasses.dataclass(frozen=True)
class SyntheticGranule:
    """The files of :func:`write_synthetic_granule` and the truth behind them.

    Attributes:
        radiance_path, obs_path, met_path: the EMIT L1B RAD, OBS and ERA5 files.
        truth: ``Q_kgh``, ``x0``, ``y0`` (m, in ``frame``), ``lon``, ``lat`` (degrees) of
            the source, and the wind it blew with (``wind_speed`` m/s, ``wind_direction``
            degrees from, at the release height).
        frame: the local frame of the simulation (centred on the granule).
    """

    radiance_path: Path
    obs_path: Path
    met_path: Path
    truth: dict[str, float]
    frame: LocalFrame


def _write_era5(path: Path, lon0: float, lat0: float, time: str, wind: tuple[float, float]):
    import xarray as xr

    t = np.datetime64(time.rstrip("Z"), "ns")
    hour = np.timedelta64(int(units.HOUR), "s")
    times = t - hour + np.arange(3) * hour
    lats = np.round(lat0 * 4) / 4 + np.array([0.5, 0.25, 0.0, -0.25, -0.5])  # descending
    lons = np.round(lon0 * 4) / 4 + np.array([-0.5, -0.25, 0.0, 0.25, 0.5])
    values = {
        "u10": wind[0],
        "v10": wind[1],
        "t2m": 300.0,
        "sp": 90000.0,
        "blh": 800.0,
        "fsr": 0.1,
        "tcc": 0.2,
        "ssrd": 400.0 * units.HOUR,  # J m-2 over the hour: 400 W m-2 (sun up, few clouds)
    }
    shape = (times.size, lats.size, lons.size)
    ds = xr.Dataset(
        {
            k: (("valid_time", "latitude", "longitude"), np.full(shape, v, np.float32))
            for k, v in values.items()
        },
        coords={
            "valid_time": ("valid_time", times),
            "latitude": ("latitude", lats, {"units": "degrees_north"}),
            "longitude": ("longitude", lons, {"units": "degrees_east"}),
            "number": 0,
            "expver": ("valid_time", np.array(["0001"] * times.size)),
        },
        attrs={"GRIB_centre": "ecmf", "Conventions": "CF-1.7", "institution": "ECMWF"},
    )
    for k, u in _ERA5_UNITS.items():
        ds[k].attrs["units"] = u
    ds.to_netcdf(path, encoding={"valid_time": {"units": "seconds since 1970-01-01"}})


def write_synthetic_granule(
    folder: str | Path,
    *,
    q_kgh: float = 800.0,
    x0: float = -330.0,
    y0: float = 20.0,
    source_height: float = 5.0,
    lon0: float = -103.9,
    lat0: float = 32.1,
    time: str = "2024-06-01T18:00:00",
    wind_10m: tuple[float, float] = (5.0, 0.3),
    n: int = 25,
    snr: float = 300.0,
    seed: int = 3,
) -> SyntheticGranule:
    """Write a synthetic EMIT granule with a plume, and its ERA5 file, into ``folder``.

    The scene is ``n x n`` pixels of ``EMIT_PIXEL_SIZE`` (60 m; ``n`` odd: the pixel centres
    are multiples of it from the centre, as the retrieval's local grid), north up, centred on
    ``(lon0, lat0)``; the source at ``(x0, y0)`` m emits ``q_kgh`` at ``source_height``.
    The ERA5 file holds a uniform 10-m wind ``wind_10m = (u10, v10)`` m/s over three
    hours around ``time``; the plume blows with ``MetField.from_era5`` of it at the
    release height (the profile and the stability class that reader derives).

    Returns:
        :class:`SyntheticGranule`: the paths and the truth.

    Raises:
        ValueError: an even or too small ``n``, an existing file (nothing is overwritten),
            or the simulation's errors.
    """
    folder = Path(folder)
    if not (isinstance(n, int) and n >= 9 and n % 2 == 1):
        raise ValueError(f"`n` must be an odd int >= 9, got {n!r}")
    stamp = time.rstrip("Z").replace("-", "").replace(":", "")
    rad = folder / f"EMIT_L1B_RAD_001_{stamp}_2415312_004.nc"
    obs = folder / f"EMIT_L1B_OBS_001_{stamp}_2415312_004.nc"
    met_path = folder / "era5_single_levels.nc"
    for p in (rad, obs, met_path):
        if p.exists():
            raise ValueError(f"{p} exists; refusing to overwrite it")
    frame = LocalFrame(lon0, lat0)
    t_start = float(seconds_since_epoch(time))
    t_mid = t_start + 1.0  # the acquisition lasts 2 s
    _write_era5(met_path, lon0, lat0, time, wind_10m)
    met = MetField.from_era5(
        met_path, lon=lon0, lat=lat0, time=t_mid, frame=frame, height=source_height
    )
    speed = float(np.asarray(met.wind_speed))
    direction = float(np.asarray(met.wind_direction))
    xs = (np.arange(n) - (n - 1) // 2) * EMIT_PIXEL_SIZE
    ks, kn = jr.split(jr.key(seed))
    sc = simulate_radiance(
        q_kgh=q_kgh,
        x0=x0,
        y0=y0,
        height=source_height,
        wind_speed=speed,
        wind_dir=direction,
        stability=STABILITY_CLASSES[int(np.asarray(met.stability_class))],
        pblh=float(np.asarray(met.pblh)),
        geometry=ColumnImage(xs, xs.copy()),
        snr=snr,
        supersample=4,
        key_surface=ks,
        key_noise=kn,
    )
    lon, lat = frame.lonlat_grid(xs, xs)
    centres, widths = pr.instrument_bands("EMIT")
    wl = np.asarray(sc.srf.centers, np.float64)
    fwhm = widths[np.abs(centres[None, :] - wl[:, None]).argmin(axis=1)]
    cube = np.asarray(sc.radiance.values, np.float32)
    pr.write_emit_l1b(  # downtrack runs north to south: row 0 is the northernmost line
        rad,
        obs,
        cube[::-1],
        wl,
        fwhm,
        lat[::-1],
        lon[::-1],
        time_start=t_start,
        time_end=t_start + 2.0,
        solar_zenith=float(sc.sza_deg),
        sensor_zenith=0.0,
    )
    slon, slat = frame.to_lonlat(x0, y0)
    truth = {
        "Q_kgh": float(q_kgh),
        "x0": float(x0),
        "y0": float(y0),
        "lon": float(slon),
        "lat": float(slat),
        "wind_speed": speed,
        "wind_direction": direction,
    }
    return SyntheticGranule(rad, obs, met_path, truth, frame)
