"""The EMIT L1B file layout, and a writer of small (or streamed full-size) granules.

Facts of the layout (names, dims, dtypes, units strings, fill value, global attributes)
and their sources:

* RAD file: root ``radiance`` float32 ``(downtrack, crosstrack, bands)``, ``long_name =
  "Radiance Data"``, ``units = "uW/cm^2/SR/nm"``; group ``sensor_band_parameters`` with
  ``wavelengths`` ("Wavelength Centers") and ``fwhm`` ("Full Width at Half Max"),
  float32 ``(bands,)``, nm; group ``location`` with ``lon`` ("Longitude (WGS-84)",
  ``degrees east``), ``lat`` ("Latitude (WGS-84)", ``degrees north``), ``elev``
  ("Surface Elevation", m), float64 ``(downtrack, crosstrack)``, and ``glt_x`` ("GLT
  Sample Lookup") / ``glt_y`` ("GLT Line Lookup"), int32 ``(ortho_y, ortho_x)``, units
  "pixel location"; every variable has ``_FillValue = -9999``. Sources: EMIT SDS
  ``emit-sds/emit-sds-l1b`` ``output_conversion.py``; ``emit-sds/emit-utils``
  ``emit_utils/daac_converter.py`` (``add_variable``, ``add_loc``, ``add_glt``,
  ``makeDims``, ``makeGlobalAttr``).
* OBS file: root ``obs`` float32 ``(downtrack, crosstrack, bands)`` ("Observation Data",
  no units) with the 11 names of ``sensor_band_parameters/observation_bands`` (a string
  variable); the same ``location`` group and GLT. The names written here are those of
  the delivered products as listed in ``emit-sds/emit-main`` (metrics of L1B OBS band
  means); older ENVI headers use shorter names (see :data:`~plumax_rtm._emit.OBS_LAYERS`).
* Global attributes (``makeGlobalAttr``): ``time_coverage_start``/``_end`` formatted
  ``%Y-%m-%dT%H:%M:%S%z`` (``emit-sds/emit-main`` ``strftime``), ``geotransform`` (6 GDAL
  values), ``spatial_ref`` (GDAL WKT of the GLT, EPSG:4326), ``spatialResolution``,
  ``westernmost_longitude``/``easternmost_longitude``/``northernmost_latitude``/
  ``southernmost_latitude``, ``flight_line``, ``day_night_flag``, ``Conventions``,
  ``instrument``, ``platform``, ``title``; file names ``EMIT_L1B_RAD_001_<start>_<orbit>_
  <scene>.nc`` (LP DAAC; ``emit-sds/emit-main``).

The writer is for tests, documentation and benchmarks: the GLT is a nearest-pixel table
(:func:`plumax_rtm._glt.build_glt`), not the SDS's DEM-based one; the OBS layers that
need terrain are those of a flat surface (slope 0, aspect 0, cosine(i) = cos(solar
zenith)); the path length is ``altitude / cos(view zenith)``; UTC time is linear in the
line number between start and end; the earth-sun distance is the common approximation
``1 - 0.01672 cos(0.9856° (day_of_year - 4))`` AU. ``history`` says the file is synthetic.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

import numpy as np

from plumax_core.units import HOUR

from ._glt import build_glt, check_geotransform, glt_indices, pixel_spacing_m

__all__ = [
    "EMIT_FILL",
    "EMIT_RADIANCE_UNITS",
    "OBS_BAND_NAMES",
    "OBS_LAYERS",
    "RADIANCE_UNITS",
    "write_emit_l1b",
]

#: Radiance units used inside plumax (µW cm⁻² sr⁻¹ nm⁻¹).
RADIANCE_UNITS = "uW cm-2 sr-1 nm-1"
#: The units string of EMIT L1B radiance files (the same quantity).
EMIT_RADIANCE_UNITS = "uW/cm^2/SR/nm"
#: Fill value of every EMIT netCDF variable (``daac_converter.NODATA``).
EMIT_FILL = -9999.0

#: The 11 OBS layers in file order: ``(name here, leading words of the file's band name,
#: units)``.
OBS_LAYERS = (
    ("path_length", "path length", "m"),
    ("sensor_azimuth", "to-sensor azimuth", "degree"),
    ("sensor_zenith", "to-sensor zenith", "degree"),
    ("solar_azimuth", "to-sun azimuth", "degree"),
    ("solar_zenith", "to-sun zenith", "degree"),
    ("solar_phase", "solar phase", "degree"),
    ("slope", "slope", "degree"),
    ("aspect", "aspect", "degree"),
    ("cosine_i", "cosine(i)", "1"),
    ("utc_time", "utc time", "hour"),
    ("earth_sun_distance", "earth-sun distance", "AU"),
)
#: ``observation_bands`` as written (delivered-product spelling, ``emit-sds/emit-main``).
OBS_BAND_NAMES = (
    "Path length (sensor-to-ground in meters)",
    "To-sensor azimuth (0 to 360 degrees CW from N)",
    "To-sensor zenith (0 to 90 degrees from zenith)",
    "To-sun azimuth (0 to 360 degrees CW from N)",
    "To-sun zenith (0 to 90 degrees from zenith)",
    "Solar phase (degrees between to-sensor and to-sun vectors in principal plane)",
    "Slope (local surface slope as derived from DEM in degrees)",
    "Aspect (local surface aspect 0 to 360 degrees clockwise from N)",
    "Cosine(i) (apparent local illumination factor based on DEM slope and aspect and to sun "
    "vector)",
    "UTC Time (decimal hours for mid-line pixels)",
    "Earth-sun distance (AU)",
)
#: GDAL WKT1 of EPSG:4326 (WGS 84 geographic), the ``spatial_ref`` of EMIT GLTs.
WGS84_WKT = (
    'GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563,'
    'AUTHORITY["EPSG","7030"]],AUTHORITY["EPSG","6326"]],PRIMEM["Greenwich",0,'
    'AUTHORITY["EPSG","8901"]],UNIT["degree",0.0174532925199433,AUTHORITY["EPSG","9122"]],'
    'AXIS["Latitude",NORTH],AXIS["Longitude",EAST],AUTHORITY["EPSG","4326"]]'
)
#: ISS ground speed used to date lines when ``time_end`` is not given, m/s (approximate).
ISS_GROUND_SPEED_M_S = 7.2e3


def parse_time(value, name: str) -> float:
    """Seconds since 1970-01-01 UTC of an ISO 8601 string (``+0000``/``Z`` offsets
    allowed; none means UTC), a ``datetime64``/``datetime``, or a number of seconds."""
    if isinstance(value, str | bytes):
        s = value.decode() if isinstance(value, bytes) else value
        s = s.strip()
        try:
            t = datetime.fromisoformat(s[:-1] + "+00:00" if s.endswith("Z") else s)
        except ValueError:
            raise ValueError(f"`{name}` = {value!r} is not an ISO 8601 time") from None
        if t.tzinfo is None:
            t = t.replace(tzinfo=UTC)
        return t.timestamp()
    from plumax_core import seconds_since_epoch

    out = float(seconds_since_epoch(value))
    if not np.isfinite(out):
        raise ValueError(f"`{name}` must be a finite time, got {value!r}")
    return out


def iso_time(seconds: float) -> str:
    """The EMIT spelling of a UTC time: ``%Y-%m-%dT%H:%M:%S+0000``."""
    return datetime.fromtimestamp(float(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def _field(value, shape, name):
    arr = np.asarray(value, np.float64)
    try:
        arr = np.broadcast_to(arr, shape)
    except ValueError:
        raise ValueError(f"`{name}` has shape {arr.shape}; expected a scalar or {shape}") from None
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` must be finite")
    return arr


def _var(nc, name, dtype, dims, long_name, units, data=None):
    v = nc.createVariable(name, dtype, dims, fill_value=np.array(EMIT_FILL).astype(dtype))
    v.long_name = long_name
    if units is not None:
        v.units = units
    if data is not None:
        v[...] = data
    return v


def _attrs(nc, title, flight_line, t0, t1, gt, glt_shape):
    ny, nx = glt_shape
    nc.setncatts(
        {
            "title": title,
            "instrument": "EMIT",
            "platform": "ISS",
            "Conventions": "CF-1.63",
            "flight_line": flight_line,
            "time_coverage_start": iso_time(t0),
            "time_coverage_end": iso_time(t1),
            "westernmost_longitude": gt[0],
            "easternmost_longitude": gt[0] + nx * gt[1],
            "northernmost_latitude": gt[3],
            "southernmost_latitude": gt[3] + ny * gt[5],
            "spatialResolution": gt[1],
            "spatial_ref": WGS84_WKT,
            "geotransform": np.asarray(gt, np.float64),
            "day_night_flag": "Day",
            "history": "synthetic granule written by plumax_rtm.write_emit_l1b (not EMIT data)",
        }
    )


def _location(nc, lat, lon, elev, glt_x, glt_y):
    dims = ("downtrack", "crosstrack")
    _var(nc, "location/lon", "f8", dims, "Longitude (WGS-84)", "degrees east", lon)
    _var(nc, "location/lat", "f8", dims, "Latitude (WGS-84)", "degrees north", lat)
    _var(nc, "location/elev", "f8", dims, "Surface Elevation", "m", elev)
    odims = ("ortho_y", "ortho_x")
    _var(nc, "location/glt_x", "i4", odims, "GLT Sample Lookup", "pixel location", glt_x)
    _var(nc, "location/glt_y", "i4", odims, "GLT Line Lookup", "pixel location", glt_y)


def _dims(nc, nd, ncross, nb, glt_shape):
    nc.createDimension("downtrack", nd)
    nc.createDimension("crosstrack", ncross)
    nc.createDimension("bands", nb)
    nc.createDimension("ortho_y", glt_shape[0])
    nc.createDimension("ortho_x", glt_shape[1])


def write_emit_l1b(
    radiance_path,
    obs_path,
    radiance,
    wavelengths,
    fwhm,
    lat,
    lon,
    *,
    time_start,
    time_end=None,
    elev=None,
    solar_zenith=30.0,
    solar_azimuth=150.0,
    sensor_zenith=5.0,
    sensor_azimuth=100.0,
    altitude_m: float = 420e3,
    ortho_pixel_deg: float | None = None,
    fill_mask=None,
    glt=None,
    units: str = EMIT_RADIANCE_UNITS,
    block_rows: int = 64,
):
    """Write a granule in the EMIT L1B RAD (+ OBS) layout; returns the paths written.

    Args:
        radiance_path, obs_path: files to create (``obs_path`` None: no OBS file).
            Existing files are refused (no command writes over its inputs).
        radiance: ``(downtrack, crosstrack, bands)`` in ``units`` (NumPy or dask), or a
            callable ``f(row_start, row_stop) -> (rows, crosstrack, bands)`` so a
            full-size granule is written ``block_rows`` lines at a time without holding it.
            NaN values are written as the fill -9999.
        wavelengths, fwhm: ``(bands,)`` nm, centres strictly ascending, FWHM > 0.
        lat, lon: ``(downtrack, crosstrack)`` pixel centres, degrees (finite).
        time_start: acquisition start (ISO string, datetime64 or seconds UTC).
        time_end: acquisition end; default ``time_start`` + the downtrack length over
            the ISS ground speed (7.2 km/s, approximate).
        elev: surface elevation, m (default 0).
        solar_zenith, solar_azimuth, sensor_zenith, sensor_azimuth: degrees, scalars or
            ``(downtrack, crosstrack)``; the OBS layers (defaults: a plausible morning
            overpass, documented, not measured values).
        altitude_m: sensor altitude for the OBS path length, m (ISS about 420 km).
        ortho_pixel_deg: GLT cell size, degrees (default: the pixel spacing).
        fill_mask: ``(downtrack, crosstrack)`` bool, pixels written as fill in every band.
        glt: ``(glt_x, glt_y, geotransform)`` to write instead of building one.
        units: the radiance units attribute (EMIT's by default; tests write others).
        block_rows: lines per write.

    Raises:
        ValueError: inconsistent shapes, non-finite geolocation or angles, unsorted
            wavelengths, a GLT that does not fit the sensor grid, an existing output.
    """
    import netCDF4

    lat = np.asarray(lat, np.float64)
    lon = np.asarray(lon, np.float64)
    wl = np.asarray(wavelengths, np.float64)
    fw = np.asarray(fwhm, np.float64)
    if lat.ndim != 2 or lat.shape != lon.shape:
        raise ValueError(f"`lat` {lat.shape} and `lon` {lon.shape} must be 2-D and equal")
    nd, ncross = lat.shape
    if wl.ndim != 1 or fw.shape != wl.shape or np.any(np.diff(wl) <= 0):
        raise ValueError("`wavelengths` must be 1-D strictly ascending and `fwhm` the same shape")
    if not np.all(fw > 0):
        raise ValueError("`fwhm` must be > 0 nm")
    nb = wl.size
    shape3 = (nd, ncross, nb)
    if not callable(radiance):
        if tuple(radiance.shape) != shape3:
            raise ValueError(f"`radiance` has shape {tuple(radiance.shape)}; expected {shape3}")
    mask = np.zeros((nd, ncross), bool) if fill_mask is None else np.asarray(fill_mask, bool)
    if mask.shape != (nd, ncross):
        raise ValueError(f"`fill_mask` has shape {mask.shape}; expected {(nd, ncross)}")
    elev = _field(0.0 if elev is None else elev, (nd, ncross), "elev")
    angles = {
        k: _field(v, (nd, ncross), k)
        for k, v in (
            ("solar_zenith", solar_zenith),
            ("solar_azimuth", solar_azimuth),
            ("sensor_zenith", sensor_zenith),
            ("sensor_azimuth", sensor_azimuth),
        )
    }
    for k in ("solar_zenith", "sensor_zenith"):
        if np.any((angles[k] < 0) | (angles[k] >= 90)):
            raise ValueError(f"`{k}` must be in [0, 90) degrees")
    t0 = parse_time(time_start, "time_start")
    if time_end is None:
        t1 = t0 + nd * pixel_spacing_m(lat, lon)[0] / ISS_GROUND_SPEED_M_S
    else:
        t1 = parse_time(time_end, "time_end")
    if not t1 >= t0:
        raise ValueError("`time_end` must not precede `time_start`")
    if glt is None:
        glt_x, glt_y, gt = build_glt(lat, lon, pixel_deg=ortho_pixel_deg)
    else:
        glt_x, glt_y, gt = np.asarray(glt[0]), np.asarray(glt[1]), check_geotransform(glt[2])
        glt_indices(glt_x, glt_y, (nd, ncross))
    for p in (radiance_path, obs_path):
        if p is not None and os.path.exists(p):
            raise ValueError(f"{os.fspath(p)} exists; refusing to overwrite it")
    flight = os.path.splitext(os.path.basename(os.fspath(radiance_path)))[0]

    with netCDF4.Dataset(radiance_path, "w", format="NETCDF4") as nc:
        _attrs(
            nc,
            "EMIT L1B At-Sensor Calibrated Radiance Data 60 m V001",
            flight,
            t0,
            t1,
            gt,
            glt_x.shape,
        )
        _dims(nc, nd, ncross, nb, glt_x.shape)
        _var(
            nc,
            "sensor_band_parameters/wavelengths",
            "f4",
            ("bands",),
            "Wavelength Centers",
            "nm",
            wl,
        )
        _var(
            nc, "sensor_band_parameters/fwhm", "f4", ("bands",), "Full Width at Half Max", "nm", fw
        )
        var = _var(
            nc, "radiance", "f4", ("downtrack", "crosstrack", "bands"), "Radiance Data", units
        )
        var.set_auto_mask(False)
        step = max(1, int(block_rows))
        for r0 in range(0, nd, step):
            r1 = min(nd, r0 + step)
            block = radiance(r0, r1) if callable(radiance) else radiance[r0:r1]
            block = np.asarray(block, np.float32)
            if block.shape != (r1 - r0, ncross, nb):
                raise ValueError(
                    f"`radiance` rows {r0}:{r1} have shape {block.shape}; expected "
                    f"{(r1 - r0, ncross, nb)}"
                )
            block = np.where(np.isfinite(block) & ~mask[r0:r1, :, None], block, EMIT_FILL)
            var[r0:r1] = block.astype(np.float32)
        _location(nc, lat, lon, elev, glt_x, glt_y)
    if obs_path is None:
        return os.fspath(radiance_path), None

    sz, sa = angles["solar_zenith"], angles["solar_azimuth"]
    vz, va = angles["sensor_zenith"], angles["sensor_azimuth"]
    rz, rv = np.deg2rad(sz), np.deg2rad(vz)
    cos_phase = np.cos(rz) * np.cos(rv) + np.sin(rz) * np.sin(rv) * np.cos(np.deg2rad(sa - va))
    line_t = t0 + (np.arange(nd) + 0.5) / nd * (t1 - t0)
    day = datetime.fromtimestamp(t0, UTC)
    hours = (line_t - datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) / HOUR
    doy = day.timetuple().tm_yday
    layers = [
        altitude_m / np.cos(rv),
        va,
        vz,
        sa,
        sz,
        np.rad2deg(np.arccos(np.clip(cos_phase, -1.0, 1.0))),
        np.zeros_like(sz),
        np.zeros_like(sz),
        np.cos(rz),
        np.broadcast_to(hours[:, None], (nd, ncross)),
        np.full_like(sz, 1.0 - 0.01672 * np.cos(np.deg2rad(0.9856 * (doy - 4)))),
    ]
    with netCDF4.Dataset(obs_path, "w", format="NETCDF4") as nc:
        _attrs(
            nc,
            "EMIT L1B Observation Data 60 m V001",
            flight.replace("_RAD_", "_OBS_"),
            t0,
            t1,
            gt,
            glt_x.shape,
        )
        _dims(nc, nd, ncross, len(OBS_BAND_NAMES), glt_x.shape)
        names = nc.createVariable("sensor_band_parameters/observation_bands", str, ("bands",))
        names.long_name = "Observation Band Names"
        for i, n in enumerate(OBS_BAND_NAMES):
            names[i] = n
        var = _var(nc, "obs", "f4", ("downtrack", "crosstrack", "bands"), "Observation Data", None)
        for r0 in range(0, nd, step):
            r1 = min(nd, r0 + step)
            var[r0:r1] = np.stack([a[r0:r1] for a in layers], axis=-1).astype(np.float32)
        _location(nc, lat, lon, elev, glt_x, glt_y)
    return os.fspath(radiance_path), os.fspath(obs_path)
