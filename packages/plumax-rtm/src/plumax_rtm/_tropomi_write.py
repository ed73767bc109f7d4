"""A writer of small files in the Sentinel-5P TROPOMI CH4 Level-2 layout.

:func:`write_tropomi_ch4` writes what :func:`plumax_rtm.read_tropomi_ch4` reads, for
tests, documentation and the tests of other packages. Facts of the layout written:

* Groups ``PRODUCT``, ``PRODUCT/SUPPORT_DATA/{GEOLOCATIONS, DETAILED_RESULTS,
  INPUT_DATA}``; dimensions (in ``PRODUCT``) ``time = 1``, ``scanline``, ``ground_pixel``,
  ``corner = 4``, ``layer = 12``, ``level = 13``, each with a coordinate variable
  (``time`` float64, the others int32 ``0..n-1``).
* ``PRODUCT``: ``methane_mixing_ratio``, ``methane_mixing_ratio_bias_corrected``,
  ``methane_mixing_ratio_precision`` (units ``"1e-9"``), ``latitude``
  (``degrees_north``), ``longitude`` (``degrees_east``), float32 ``(time, scanline,
  ground_pixel)``; ``qa_value`` 8-bit unsigned, ``scale_factor = 0.01``, ``add_offset =
  0``, ``_FillValue = 255``, units ``"1"``; ``time`` (``seconds since <day> 00:00:00``,
  value 0), ``delta_time`` int32 ``(time, scanline)`` (``milliseconds since <day>
  00:00:00``) and ``time_utc`` ``(time, scanline)`` ISO 8601 strings with microseconds
  and ``Z``, ``<day>`` being the UTC day of ``time_start``.
* ``GEOLOCATIONS``: ``latitude_bounds``, ``longitude_bounds`` ``(..., corner)``.
* ``DETAILED_RESULTS``: ``column_averaging_kernel`` ``(..., layer)``, units ``"1"``.
* ``INPUT_DATA``: ``surface_pressure``, ``pressure_interval`` (Pa),
  ``methane_profile_apriori``, ``dry_air_subcolumns`` (``"mol m-2"``, ``(..., layer)``),
  ``altitude_levels`` ``(..., level)`` (m).
* Float variables have ``_FillValue = 9.96921e36`` (the netCDF default float fill); NaN
  is written as that value. The layer profiles are stored top of atmosphere first (the
  product's order); this writer takes them surface first (layer 0 = surface, as in
  :class:`~plumax_rtm.TropomiCH4`) and reverses them.
* Global attributes ``Conventions = "CF-1.7"``, ``product_name =
  "S5P_OFFL_L2__CH4____"``, ``processor_version``, ``time_coverage_start`` /
  ``time_coverage_end`` (``%Y-%m-%dT%H:%M:%SZ``), ``orbit`` (int32), and ``history``
  saying that the file is synthetic.

Sources: the layout is the one read by the HARP S5P L2 ingestion (github.com/stcorp/harp,
``libharp/harp-ingest-s5p_l2.c``: group and variable names, layer inversion, pressure
bounds, raw ``qa_value``, ``time`` + ``delta_time`` in ms) and the Integrated Methane
Inversion (github.com/geoschem/integrated_methane_inversion: ``read_tropomi``,
``filter_tropomi``, ``TROPOMI_operator``), for the product described in the Sentinel-5
Precursor/TROPOMI Level 2 Product User Manual, Methane, SRON-S5P-LEV2-MA-001 (Apituley
et al.; issue 2.4.0, 2022-07-11, consulted only through its title page) and the TROPOMI
methane ATBD (Hasekamp et al., SRON-S5P-LEV2-RP-001). Not confirmed against the PUM's
own tables: the exact ``units`` strings (``"1e-9"`` for the mixing ratios, ``"mol m-2"``
for sub-columns), the ``qa_value`` scale factor (0.01, inferred from HARP's raw 0..100
value) and its ``_FillValue``, the ``units`` of ``time`` and ``delta_time``, and the
values of ``altitude_levels`` (a fixed 60 km to 0 m placeholder, top first, not derived
from the pressures; the reader does not read it). The pixel corners are a square of
``corner_halfwidth_deg`` around the centre, not a footprint model.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np

from ._emit_write import parse_time
from ._tropomi import FILL_VALUE, N_LAYERS

__all__ = ["write_tropomi_ch4"]

_MS_PER_DAY = 86_400_000
#: default units strings, by the keys of ``units=``
_UNITS = {
    "xch4": "1e-9",
    "ps": "Pa",
    "mol": "mol m-2",
    "lat": "degrees_north",
    "lon": "degrees_east",
}
#: float variables ``drop=`` may omit
_DROPPABLE = (
    "methane_mixing_ratio",
    "methane_mixing_ratio_bias_corrected",
    "methane_mixing_ratio_precision",
    "latitude",
    "longitude",
    "latitude_bounds",
    "longitude_bounds",
    "column_averaging_kernel",
    "surface_pressure",
    "pressure_interval",
    "methane_profile_apriori",
    "dry_air_subcolumns",
    "altitude_levels",
)


def _pixel_field(value: Any, shape: tuple[int, int], name: str) -> np.ndarray:
    arr = np.asarray(value, np.float64)
    if arr.ndim == 0:
        return np.broadcast_to(arr, shape)
    if arr.shape != shape:
        raise ValueError(
            f"`{name}` has shape {arr.shape}; expected (scanline, ground_pixel) = {shape} "
            "(the shape of `latitude`) or a scalar"
        )
    return arr


def _layer_field(value: Any, shape: tuple[int, int], name: str) -> np.ndarray:
    arr = np.asarray(value, np.float64)
    full = (*shape, N_LAYERS)
    if arr.shape == (N_LAYERS,):
        return np.broadcast_to(arr, full)
    if arr.shape != full:
        raise ValueError(
            f"`{name}` has shape {arr.shape}; expected (scanline, ground_pixel, layer) = {full} "
            f"or one ({N_LAYERS},) profile, layer 0 at the surface"
        )
    return arr


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000.0, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_tropomi_ch4(
    path: str | os.PathLike[str],
    *,
    latitude: Any,
    longitude: Any,
    xch4: Any,
    xch4_bias_corrected: Any = None,
    precision: Any,
    qa_value: Any,
    averaging_kernel: Any,
    prior_profile: Any,
    dry_air_subcolumns: Any,
    surface_pressure: Any,
    pressure_interval: Any,
    time_start: Any,
    scanline_interval_ms: float = 840,
    corner_halfwidth_deg: float = 0.05,
    orbit: int = 0,
    processor_version: str = "02.04.00",
    units: Mapping[str, str] | None = None,
    time_utc: bool = True,
    qa_scaled: bool = True,
    drop: Iterable[str] = (),
) -> str:
    """Write one swath in the TROPOMI CH4 L2 layout (see the module docstring); returns
    the path written.

    Per-pixel arguments are ``(scanline, ground_pixel)`` arrays (the shape of
    ``latitude``) or scalars; layer arguments are ``(scanline, ground_pixel, 12)`` arrays,
    layer 0 at the surface (reversed here to the product's top-first order), or one
    ``(12,)`` profile for every pixel. NaN anywhere is written as the fill value.

    Args:
        path: the ``.nc`` file to create; an existing file is refused.
        latitude, longitude: pixel centres, degrees (NaN: fill).
        xch4: ``methane_mixing_ratio``, ppb.
        xch4_bias_corrected: ``methane_mixing_ratio_bias_corrected``, ppb (None: ``xch4``).
        precision: ``methane_mixing_ratio_precision``, ppb.
        qa_value: quality value in [0, 1] (NaN: fill), stored as an 8-bit integer with
            ``scale_factor`` 0.01 (so to the nearest 0.01).
        averaging_kernel: ``column_averaging_kernel``, dimensionless.
        prior_profile: ``methane_profile_apriori``, the prior CH4 sub-columns, mol m-2
            (not a mole fraction).
        dry_air_subcolumns: dry-air sub-columns, mol m-2.
        surface_pressure, pressure_interval: Pa; the layer edges are
            ``surface_pressure - k * pressure_interval``, ``k = 0..12``.
        time_start: time of the first scanline (ISO 8601 string, ``datetime64``,
            ``datetime`` or seconds since 1970 UTC); written to the millisecond.
        scanline_interval_ms: time between scanlines, ms (840 by default).
        corner_halfwidth_deg: half side of the square pixel corners around the centre.
        orbit: the ``orbit`` global attribute.
        processor_version: the ``processor_version`` global attribute.
        units: for testing the reader's refusals: units strings replacing the defaults,
            keyed ``"xch4"`` (the three mixing ratios, ``"1e-9"``), ``"ps"`` (the two
            pressures, ``"Pa"``; ``"hPa"`` also divides the values by 100, any other
            string writes the Pa values), ``"mol"`` (the two sub-columns, ``"mol m-2"``),
            ``"lat"`` (``"degrees_north"``), ``"lon"`` (``"degrees_east"``).
        time_utc: for testing the reader's refusals: False omits ``PRODUCT/time_utc``
            (the reader then uses ``time + delta_time``).
        qa_scaled: for testing the reader's refusals: False writes the raw 0..100
            ``qa_value`` without ``scale_factor``/``add_offset``.
        drop: for testing the reader's refusals: names of float variables to omit.

    Raises:
        ValueError: ``path`` exists; an argument whose shape differs from the above (named
            in the message); ``qa_value`` outside [0, 1]; latitudes outside [-90, 90] or
            longitudes outside [-180, 180]; a non-positive or non-finite
            ``scanline_interval_ms``; a negative ``corner_halfwidth_deg``; an ``orbit``
            that is not a non-negative int32; an unknown
            ``units`` key or ``drop`` name; a time that is not readable.
    """
    import netCDF4

    lat = np.asarray(latitude, np.float64)
    if lat.ndim != 2 or 0 in lat.shape:
        raise ValueError(
            f"`latitude` must be a non-empty (scanline, ground_pixel) array, got shape {lat.shape}"
        )
    shape = lat.shape
    nscan, ngp = shape
    lon = _pixel_field(longitude, shape, "longitude")
    with np.errstate(invalid="ignore"):
        if np.any(np.abs(lat) > 90.0):
            raise ValueError("`latitude` must be in [-90, 90] degrees (NaN for fill)")
        if np.any(np.abs(lon) > 180.0):
            raise ValueError("`longitude` must be in [-180, 180] degrees (NaN for fill)")
    x = _pixel_field(xch4, shape, "xch4")
    x_bc = x if xch4_bias_corrected is None else xch4_bias_corrected
    x_bc = _pixel_field(x_bc, shape, "xch4_bias_corrected")
    prec = _pixel_field(precision, shape, "precision")
    qa = _pixel_field(qa_value, shape, "qa_value")
    with np.errstate(invalid="ignore"):
        if np.any((qa < 0.0) | (qa > 1.0)):
            raise ValueError("`qa_value` must be in [0, 1] (NaN for fill)")
    ak = _layer_field(averaging_kernel, shape, "averaging_kernel")
    apriori = _layer_field(prior_profile, shape, "prior_profile")
    dry = _layer_field(dry_air_subcolumns, shape, "dry_air_subcolumns")
    ps = _pixel_field(surface_pressure, shape, "surface_pressure")
    dp = _pixel_field(pressure_interval, shape, "pressure_interval")

    interval = float(scanline_interval_ms)
    if not (np.isfinite(interval) and interval > 0):
        raise ValueError(f"`scanline_interval_ms` must be > 0, got {scanline_interval_ms!r}")
    if isinstance(orbit, bool) or not isinstance(orbit, int | np.integer) or not 0 <= orbit < 2**31:
        raise ValueError(f"`orbit` must be an integer in [0, 2**31), got {orbit!r}")
    half = float(corner_halfwidth_deg)
    if not (np.isfinite(half) and half >= 0):
        raise ValueError(f"`corner_halfwidth_deg` must be >= 0, got {corner_halfwidth_deg!r}")
    unit = dict(_UNITS)
    for key, value in (units or {}).items():
        if key not in _UNITS:
            raise ValueError(f"`units` key {key!r} is not one of {sorted(_UNITS)}")
        unit[key] = value
    drop = tuple(drop)
    for name in drop:
        if name not in _DROPPABLE:
            raise ValueError(f"`drop` name {name!r} is not one of {list(_DROPPABLE)}")

    t0_ms = round(parse_time(time_start, "time_start") * 1000.0)
    scan_ms = np.array([t0_ms + round(k * interval) for k in range(nscan)], np.int64)
    day_ms = (t0_ms // _MS_PER_DAY) * _MS_PER_DAY
    delta_ms = scan_ms - day_ms
    if delta_ms[-1] > np.iinfo(np.int32).max:
        raise ValueError("the swath is too long for an int32 `delta_time` in ms")
    day = datetime.fromtimestamp(day_ms / 1000.0, UTC).strftime("%Y-%m-%d %H:%M:%S")

    if os.path.exists(path):
        raise ValueError(f"{os.fspath(path)} exists; refusing to overwrite it")
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.Conventions = "CF-1.7"
        ds.product_name = "S5P_OFFL_L2__CH4____"
        ds.processor_version = str(processor_version)
        ds.time_coverage_start = _utc(int(scan_ms[0]))
        ds.time_coverage_end = _utc(int(scan_ms[-1]) + round(interval))
        ds.orbit = np.int32(orbit)
        ds.history = "synthetic file written by plumax_rtm.write_tropomi_ch4 (not TROPOMI data)"
        p = ds.createGroup("PRODUCT")
        for name, n in (
            ("time", 1),
            ("scanline", nscan),
            ("ground_pixel", ngp),
            ("corner", 4),
            ("layer", N_LAYERS),
            ("level", N_LAYERS + 1),
        ):
            p.createDimension(name, n)
            p.createVariable(name, "f8" if name == "time" else "i4", (name,))[:] = np.arange(n)
        p["time"].units = f"seconds since {day}"
        p["time"][:] = 0.0
        dt = p.createVariable("delta_time", "i4", ("time", "scanline"))
        dt.units = f"milliseconds since {day}"
        dt[:] = delta_ms.astype(np.int32)[None]
        if time_utc:
            stamps = np.datetime_as_string(scan_ms.astype("datetime64[ms]"), unit="us")
            tu = p.createVariable("time_utc", str, ("time", "scanline"))
            tu[:] = np.array([[s + "Z" for s in stamps]], dtype=object)
        pix = ("time", "scanline", "ground_pixel")

        def fvar(group, name, dims, data, unit_str, *, top_first=False):
            if name in drop:
                return
            v = group.createVariable(name, "f4", dims, fill_value=np.float32(FILL_VALUE))
            if unit_str is not None:
                v.units = unit_str
            arr = np.asarray(data, dtype=np.float64)
            if top_first:
                arr = arr[..., ::-1]
            v[:] = np.where(np.isnan(arr), FILL_VALUE, arr)[None]

        fvar(p, "methane_mixing_ratio", pix, x, unit["xch4"])
        fvar(p, "methane_mixing_ratio_bias_corrected", pix, x_bc, unit["xch4"])
        fvar(p, "methane_mixing_ratio_precision", pix, prec, unit["xch4"])
        fvar(p, "latitude", pix, lat, unit["lat"])
        fvar(p, "longitude", pix, lon, unit["lon"])
        q = p.createVariable("qa_value", "u1", pix, fill_value=np.uint8(255))
        q.units = "1"
        if qa_scaled:
            q.scale_factor = np.float32(0.01)
            q.add_offset = np.float32(0.0)
        q.set_auto_maskandscale(False)
        raw = np.where(np.isnan(qa), 255, np.round(np.nan_to_num(qa) * 100.0))
        q[:] = raw.astype(np.uint8)[None]
        sd = p.createGroup("SUPPORT_DATA")
        geo = sd.createGroup("GEOLOCATIONS")
        corner = (*pix, "corner")
        offs = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * half
        fvar(geo, "latitude_bounds", corner, lat[..., None] + offs[:, 1], unit["lat"])
        fvar(geo, "longitude_bounds", corner, lon[..., None] + offs[:, 0], unit["lon"])
        det = sd.createGroup("DETAILED_RESULTS")
        layer = (*pix, "layer")
        fvar(det, "column_averaging_kernel", layer, ak, "1", top_first=True)
        inp = sd.createGroup("INPUT_DATA")
        scale = 100.0 if unit["ps"] == "hPa" else 1.0
        fvar(inp, "surface_pressure", pix, ps / scale, unit["ps"])
        fvar(inp, "pressure_interval", pix, dp / scale, unit["ps"])
        fvar(inp, "methane_profile_apriori", layer, apriori, unit["mol"], top_first=True)
        fvar(inp, "dry_air_subcolumns", layer, dry, unit["mol"], top_first=True)
        levels = np.linspace(0.0, 6.0e4, N_LAYERS + 1)[::-1] + np.zeros((nscan, ngp, 1))
        fvar(inp, "altitude_levels", (*pix, "level"), levels, "m")
    return os.fspath(path)
