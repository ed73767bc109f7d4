"""Real granules in: an EMIT L1B radiance granule (+ OBS) and a met file -> RadianceScene.

Orchestration only; every step is a library call:

* ``plumax_rtm.open_emit_l1b`` — the granule, lazily (dask), with its OBS companion;
* ``EmitGranule.to_local_grid`` — nearest-neighbour resampling through the granule's
  geometric lookup table onto a regular metric grid of a ``plumax_core.LocalFrame``
  (centred on the granule, or on ``bbox``), the geolocation attached;
* ``plumax_rtm.ch4_measured_model`` — the Beer-Lambert CH4 model with the file's own
  band centres and FWHM at the scene's mean solar and view zenith angles (OBS);
* :func:`read_met_file` — ``MetField.from_era5`` or ``MetField.from_wrf`` (told apart by
  their variables) at the scene centre and mid-acquisition time, the wind at the
  release height rotated to the frame's grid, and the met source's wind uncertainty
  (``plumax_core.default_wind_uncertainty``) unless given.

The result is the same :class:`plumax._overpass.RadianceScene` a synthetic overpass is,
so :func:`plumax._overpass.retrieve` and ``plumax invert`` run on it unchanged.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

import plumax_rtm as pr
from plumax_core import LocalFrame, MetField, Observations, default_wind_uncertainty
from plumax_transport import ColumnImage

from ._overpass import RadianceScene
from ._scene import pixel_averaged_plume

__all__ = [
    "granule_frame",
    "is_emit_l1b",
    "met_file_kind",
    "read_emit_scene",
    "read_granule",
    "read_met_file",
]

#: EMIT's nominal ground sampling distance, m (the grid spacing used by default).
EMIT_PIXEL_SIZE = 60.0


def _variables(path: str | Path) -> dict[str, tuple[str, ...]]:
    """``{name: dims}`` of the root variables, read through xarray's file manager (a
    second, raw netCDF4 handle on a file xarray holds open upsets HDF5)."""
    import xarray as xr

    with xr.open_dataset(path, decode_times=False, mask_and_scale=False) as ds:
        return {str(k): tuple(map(str, v.dims)) for k, v in ds.variables.items()}


def is_emit_l1b(path: str | Path) -> bool:
    """Whether ``path`` is an EMIT L1B radiance granule (a root ``radiance`` variable on
    ``(downtrack, crosstrack, bands)``)."""
    try:
        dims = _variables(path).get("radiance")
    except (OSError, ValueError):
        return False
    return dims == ("downtrack", "crosstrack", "bands")


def met_file_kind(path: str | Path) -> str:
    """``"ERA5"`` (``u10``/``v10`` on ``latitude``/``longitude``) or ``"WRF"`` (``U10`` and
    ``XLAT``) for a met file.

    Raises:
        ValueError: neither layout, naming the variables looked for.
    """
    names = set(_variables(path))
    if {"u10", "v10"} <= names or {"u", "v", "pressure_level"} <= names:
        return "ERA5"
    if {"U10", "V10", "XLAT", "XLONG"} <= names:
        return "WRF"
    raise ValueError(
        f"met file {Path(path).name} is neither ERA5 (u10, v10 on latitude/longitude) nor "
        "a WRF wrfout (U10, V10, XLAT, XLONG)"
    )


def read_met_file(
    path: str | Path,
    *,
    pressure_levels: str | Path | None = None,
    frame: LocalFrame,
    time: float,
    height: float,
    stability: str | None = None,
) -> MetField:
    """The steady met at the centre of ``frame`` and ``time`` (s UTC) from an ERA5 file
    (single levels, optionally with a pressure-level file) or a wrfout file, with the
    wind at ``height`` m above ground (``MetField.from_era5`` / ``MetField.from_wrf``
    state the profile) in the frame's grid components.

    Raises:
        ValueError: an unknown layout, or the reader's errors (units, coverage).
    """
    kind = met_file_kind(path)
    common = dict(
        lon=frame.lon0, lat=frame.lat0, time=time, frame=frame, height=height, stability=stability
    )
    if kind == "ERA5":
        return MetField.from_era5(path, pressure_levels, **common)
    if pressure_levels is not None:
        raise ValueError("--met-pressure-levels goes with an ERA5 single-levels --met file")
    return MetField.from_wrf(path, **common)


def granule_frame(granule, bbox: tuple[float, float, float, float] | None = None) -> LocalFrame:
    """The local frame of a granule: centred on ``bbox`` ``(lon_min, lat_min, lon_max,
    lat_max)`` (degrees) when given, else on the granule's geolocated pixels.

    Raises:
        ValueError: a malformed ``bbox``.
    """
    if bbox is None:
        ok = np.isfinite(granule.lon) & np.isfinite(granule.lat)
        return LocalFrame.centred_on(granule.lon[ok], granule.lat[ok])
    lon_min, lat_min, lon_max, lat_max = (float(v) for v in bbox)
    if not (lon_min < lon_max and lat_min < lat_max):
        raise ValueError(
            f"`bbox` must be (lon_min, lat_min, lon_max, lat_max) with min < max, got {bbox}"
        )
    return LocalFrame.centred_on([lon_min, lon_max], [lat_min, lat_max])


def read_granule(
    radiance_path: str | Path,
    obs_path: str | Path,
    met_path: str | Path,
    *,
    met_pressure_levels: str | Path | None = None,
    source_height: float = 5.0,
    pixel_size: float = EMIT_PIXEL_SIZE,
    bbox: tuple[float, float, float, float] | None = None,
    stability: str | None = None,
    wind_uncertainty: tuple[float, float] | None = None,
) -> RadianceScene:
    """``plumax retrieve GRANULE --obs OBS --met MET``: the frame (:func:`granule_frame`),
    the met at its centre and mid-acquisition time (:func:`read_met_file`, wind at
    ``source_height``) and the scene (:func:`read_emit_scene`)."""
    g = pr.open_emit_l1b(radiance_path, obs_path)
    frame = granule_frame(g, bbox)
    if bbox is not None:
        lon, lat = g.lon, g.lat
        inside = (lon >= bbox[0]) & (lon <= bbox[2]) & (lat >= bbox[1]) & (lat <= bbox[3])
        if not inside.any():
            raise ValueError(f"`bbox` {tuple(bbox)} holds no pixel of granule {g.granule_id}")
    met = read_met_file(
        met_path,
        pressure_levels=met_pressure_levels,
        frame=frame,
        time=g.time_mid,
        height=source_height,
        stability=stability,
    )
    return read_emit_scene(
        g,
        None,
        met,
        frame=frame,
        source_height=source_height,
        pixel_size=pixel_size,
        bbox=bbox,
        wind_uncertainty=wind_uncertainty,
    )


def read_emit_scene(
    radiance_path: Any,
    obs_path: str | Path | None,
    met: MetField,
    *,
    frame: LocalFrame | None = None,
    source_height: float = 5.0,
    pixel_size: float = EMIT_PIXEL_SIZE,
    bbox: tuple[float, float, float, float] | None = None,
    wavelength_range: tuple[float, float] = (2100.0, 2450.0),
    terrain: str = "rural",
    supersample: int = 4,
    wind_uncertainty: tuple[float, float] | None = None,
) -> RadianceScene:
    """An EMIT L1B granule and its OBS file as a :class:`RadianceScene` on a local grid.

    Args:
        radiance_path, obs_path: the ``EMIT_L1B_RAD_*.nc`` and ``EMIT_L1B_OBS_*.nc`` files
            (or an opened ``plumax_rtm.EmitGranule`` and None).
        met: the met at the scene (:func:`read_met_file`), in ``frame``'s grid components.
        frame: the local frame (default: centred on ``bbox``, else on the granule).
        source_height: the known release height, m.
        pixel_size: spacing of the local grid, m (EMIT: 60).
        bbox: ``(lon_min, lat_min, lon_max, lat_max)`` degrees: keep this window only.
        wavelength_range: the fine absorption grid, nm; the bands inside it are used.
        terrain: ``"rural"`` or ``"urban"`` (the plume's dispersion curves).
        supersample: point samples per pixel side of the inversion's plume model.
        wind_uncertainty: ``(log-speed std, direction std in degrees)``; default
            ``plumax_core.default_wind_uncertainty(met.source)``.

    Raises:
        ValueError: the reader's errors (layout, units, fill), an empty window, or bad
            options, naming what was expected.
    """
    if not (math.isfinite(source_height) and source_height >= 0):
        raise ValueError(f"`source_height` must be >= 0 m, got {source_height}")
    g = radiance_path
    if not isinstance(g, pr.EmitGranule):
        g = pr.open_emit_l1b(radiance_path, obs_path)
    if frame is None:
        frame = granule_frame(g, bbox)
    sza, vza = g.solar_zenith_mean, g.view_zenith_mean
    rtm, srf, bands = pr.ch4_measured_model(
        g.wavelengths, g.fwhm, wavelength_range, sza_deg=sza, vza_deg=vza, n_poly=2
    )
    keep = np.intersect1d(bands, g.band_indices(wavelength_range))
    if keep.size != bands.size:  # a band flagged bad inside the range: rebuild without it
        rtm, srf, sub = pr.ch4_measured_model(
            g.wavelengths[keep], g.fwhm[keep], wavelength_range, sza_deg=sza, vza_deg=vza
        )
        bands = keep[sub]
    grid = g.to_local_grid(frame, pixel_size, bands=bands)
    frame = LocalFrame(float(grid.attrs["lon0"]), float(grid.attrs["lat0"]))
    if bbox is not None:
        lon, lat = grid["lon"].values, grid["lat"].values
        inside = (lon >= bbox[0]) & (lon <= bbox[2]) & (lat >= bbox[1]) & (lat <= bbox[3])
        rows, cols = np.nonzero(inside.any(axis=1))[0], np.nonzero(inside.any(axis=0))[0]
        if rows.size < 2 or cols.size < 2:
            raise ValueError(f"`bbox` {bbox} holds fewer than 2 x 2 pixels of the granule")
        grid = grid.isel(y=slice(rows[0], rows[-1] + 1), x=slice(cols[0], cols[-1] + 1))
    valid = np.asarray(grid["valid"].values, bool)
    if not valid.any():
        raise ValueError(f"granule {g.granule_id} has no valid pixel in the window")
    radiance = np.asarray(grid["radiance"].values, np.float64)
    finite = np.all(np.isfinite(radiance), axis=-1)
    mask = np.broadcast_to((valid & finite)[..., None], radiance.shape)
    radiance = np.where(mask, radiance, 0.0)
    xs = np.asarray(grid["x"].values, np.float64)
    ys = np.asarray(grid["y"].values, np.float64)
    coords = {"y": ys, "x": xs}
    transport = pixel_averaged_plume(ColumnImage(xs, ys), supersample, terrain=terrain)
    stds = default_wind_uncertainty(met.source) if wind_uncertainty is None else wind_uncertainty
    return RadianceScene(
        radiance=Observations(
            radiance,
            kind="radiance",
            mask=mask,
            dims=("y", "x", "band"),
            coords={**coords, "band": np.asarray(grid["band"].values, np.float64)},
            instrument=f"EMIT {g.granule_id}",
        ),
        column=None,
        albedo=None,
        rtm=rtm,
        srf=srf,
        model=None,
        transport=transport,
        met=met,
        source_height=float(source_height),
        terrain=terrain,
        supersample=int(supersample),
        truth=None,
        instrument="EMIT",
        snr=float("nan"),
        sza_deg=float(sza),
        rtm_range=(float(rtm.wavelength[0]), float(rtm.wavelength[-1])),
        wind_uncertainty=tuple(float(v) for v in stds),
        frame=frame,
        time=float(g.time_mid),
    )
