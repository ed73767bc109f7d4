"""Reading an EMIT L1B granule: :func:`open_emit_l1b` (the layout facts and their sources
are in :mod:`plumax_rtm._emit`, the granule in :class:`~plumax_rtm.EmitGranule`)."""

from __future__ import annotations

import os

import numpy as np

from ._emit import EmitGranule
from ._emit_write import (
    EMIT_FILL,
    EMIT_RADIANCE_UNITS,
    OBS_LAYERS,
    RADIANCE_UNITS,
    parse_time,
)
from ._glt import check_geotransform, glt_indices

__all__ = ["open_emit_l1b"]

_ACCEPTED_UNITS = {"uw/cm^2/sr/nm", "uwcm-2sr-1nm-1", "µw/cm^2/sr/nm", "µwcm-2sr-1nm-1"}
_DEFAULT_ROWS = 128
_GOOD_SAMPLE_ROWS = 32


def _check_units(name: str, units) -> None:
    u = str(units).lower().replace(" ", "")
    if u not in _ACCEPTED_UNITS:
        raise ValueError(
            f"`{name}` units are {units!r}; expected EMIT's {EMIT_RADIANCE_UNITS!r} or "
            f"{RADIANCE_UNITS!r} (no other radiance unit is converted)"
        )


def _open_group(path, group: str):
    """A group of the file as an undecoded (raw values, fill kept) xarray dataset."""
    import xarray as xr

    try:
        return xr.open_dataset(
            path, engine="netcdf4", group=group, mask_and_scale=False, decode_times=False
        )
    except OSError:
        raise ValueError(f"{os.fspath(path)} has no group `{group}`") from None


def _group_var(grp, group: str, name: str, path) -> np.ndarray:
    if name not in grp.variables:
        raise ValueError(f"{os.fspath(path)} has no variable `{group}/{name}`")
    var = grp[name]
    data = np.asarray(var.values)
    fill = var.attrs.get("_FillValue", var.encoding.get("_FillValue"))
    if data.dtype.kind == "f":
        data = data.astype(np.float64)
        data[data == EMIT_FILL] = np.nan
        if fill is not None:
            data[data == fill] = np.nan
    elif fill is not None and data.dtype.kind in "iu":
        data = np.where(data == fill, 0, data)
    return data


def _chunks(chunks, dims=("downtrack", "crosstrack", "bands")) -> dict:
    if chunks is None:
        return {"downtrack": _DEFAULT_ROWS, "crosstrack": -1, "bands": -1}
    out = {"downtrack": _DEFAULT_ROWS, "crosstrack": -1, "bands": -1}
    for k, v in dict(chunks).items():
        key = "bands" if k == "band" else k
        if key not in dims:
            raise ValueError(f"`chunks` key {k!r} is not one of downtrack, crosstrack, band")
        out[key] = v
    return out


def _derive_good(var, wavelengths, fwhm) -> np.ndarray:
    """Good bands from the fill pattern of up to 32 evenly spaced downtrack lines: a band
    is good when it is finite (not fill) in at least half of the sampled pixels that have
    any finite band, and its centre and FWHM are finite and positive."""
    n = var.shape[0]
    rows = np.unique(np.linspace(0, n - 1, min(n, _GOOD_SAMPLE_ROWS)).astype(int))
    sample = np.asarray(var.isel(downtrack=rows).values, np.float64)
    sample[sample == EMIT_FILL] = np.nan
    fin = np.isfinite(sample).reshape(-1, sample.shape[-1])
    live = fin.any(axis=1)
    frac = fin[live].mean(axis=0) if live.any() else np.zeros(sample.shape[-1])
    return (frac >= 0.5) & np.isfinite(wavelengths) & (fwhm > 0)


def open_emit_l1b(radiance_path, obs_path=None, *, chunks=None, good_wavelengths=None):
    """Open an EMIT L1B RAD granule (and its OBS file) lazily.

    Args:
        radiance_path: ``EMIT_L1B_RAD_*.nc``.
        obs_path: the matching ``EMIT_L1B_OBS_*.nc`` (same dims and
            ``time_coverage_start``), or None.
        chunks: dask chunks by dim name (``downtrack``, ``crosstrack``, ``band``);
            default ``{"downtrack": 128}`` with the other dims whole.
        good_wavelengths: ``(m,)`` bool to use instead of the file's (e.g. from the L2A
            mask product). Without it and without ``sensor_band_parameters/
            good_wavelengths`` in the file, the good bands are derived from the fill
            pattern of up to 32 evenly spaced lines (a band is good when finite in at
            least half of the pixels that have data, and its centre/FWHM are valid).

    Raises:
        ValueError: a missing variable or attribute, wrong dims, wrong units, unsorted
            wavelengths, inconsistent sizes or an OBS file of another granule, naming it.
    """
    import xarray as xr

    path = os.fspath(radiance_path)
    # every read goes through xarray's file manager (one HDF5 handle per file): a second,
    # raw netCDF4 handle on a file xarray holds open crashed HDF5 in the tests
    ds = xr.open_dataset(path, engine="netcdf4", chunks=_chunks(chunks), decode_times=False)
    if "radiance" not in ds.variables:
        raise ValueError(f"{path} has no root variable `radiance` (EMIT L1B RAD expected)")
    var = ds["radiance"]
    if tuple(var.dims) != ("downtrack", "crosstrack", "bands"):
        raise ValueError(
            f"`radiance` dims are {var.dims}; expected ('downtrack', 'crosstrack', 'bands')"
        )
    if var.dtype.kind != "f":
        raise ValueError(f"`radiance` must be floating point, got {var.dtype}")
    _check_units("radiance", var.attrs.get("units"))
    shape = tuple(var.shape)
    # group datasets are closed here, not left to the garbage collector: closing one of
    # them later, while other handles on the files are open, crashed HDF5 in the tests
    with _open_group(path, "sensor_band_parameters") as sbp:
        wl = _group_var(sbp, "sensor_band_parameters", "wavelengths", path)
        fw = _group_var(sbp, "sensor_band_parameters", "fwhm", path)
        for name, arr in (("wavelengths", wl), ("fwhm", fw)):
            units = sbp[name].attrs.get("units", "nm")
            if str(units).lower() not in ("nm", "nanometers", "nanometer"):
                raise ValueError(f"`sensor_band_parameters/{name}` units {units!r}; expected nm")
            if arr.shape != (shape[2],):
                raise ValueError(
                    f"`sensor_band_parameters/{name}` has {arr.shape} values for {shape[2]} bands"
                )
        if not np.all(np.diff(wl[np.isfinite(wl)]) > 0):
            raise ValueError("`sensor_band_parameters/wavelengths` must be strictly ascending")
        if good_wavelengths is not None:
            good = np.asarray(good_wavelengths, bool)
            source = "argument"
        elif "good_wavelengths" in sbp.variables:
            good = _group_var(sbp, "sensor_band_parameters", "good_wavelengths", path) != 0
            source = "file"
        else:
            good = _derive_good(var, wl, fw)
            source = f"fill pattern of {min(shape[0], _GOOD_SAMPLE_ROWS)} lines"
        if good.shape != wl.shape:
            raise ValueError(f"`good_wavelengths` has shape {good.shape}; expected {wl.shape}")
        good = good & np.isfinite(wl) & (fw > 0)
    with _open_group(path, "location") as loc:
        lat = _group_var(loc, "location", "lat", path)
        lon = _group_var(loc, "location", "lon", path)
        elev = _group_var(loc, "location", "elev", path)
        for name, arr in (("lat", lat), ("lon", lon), ("elev", elev)):
            if arr.shape != shape[:2]:
                raise ValueError(f"`location/{name}` has shape {arr.shape}; expected {shape[:2]}")
        glt_x = _group_var(loc, "location", "glt_x", path)
        glt_y = _group_var(loc, "location", "glt_y", path)
    attrs = dict(ds.attrs)
    for key in ("geotransform", "spatial_ref", "time_coverage_start", "time_coverage_end"):
        if key not in attrs:
            raise ValueError(f"{path} lacks the global attribute `{key}`")
    gt = check_geotransform(attrs["geotransform"])
    glt_indices(glt_x, glt_y, shape[:2])  # validates the table against the sensor grid
    t0 = parse_time(attrs["time_coverage_start"], "global attribute time_coverage_start")
    t1 = parse_time(attrs["time_coverage_end"], "global attribute time_coverage_end")
    if t1 < t0:
        raise ValueError("`time_coverage_end` is before `time_coverage_start`")

    rad = ds["radiance"]
    if rad.encoding.get("_FillValue") is None and rad.encoding.get("missing_value") is None:
        rad = rad.where(rad != EMIT_FILL)  # EMIT fill, even without a _FillValue attribute
    rad = rad.rename(bands="band").assign_coords(
        band=("band", wl, {"units": "nm", "long_name": "band centre wavelength"}),
        fwhm=("band", fw, {"units": "nm", "long_name": "full width at half maximum"}),
    )
    rad.attrs = {
        "units": RADIANCE_UNITS,
        "long_name": "at-sensor spectral radiance",
        "source_units": EMIT_RADIANCE_UNITS,
        "good_wavelengths_source": source,
    }
    obs = None
    sources = [path]
    if obs_path is not None:
        obs = _open_obs(os.fspath(obs_path), shape[:2], attrs)
        sources.append(os.fspath(obs_path))
    return EmitGranule(
        radiance=rad.rename("radiance"),
        wavelengths=wl,
        fwhm=fw,
        good_wavelengths=good,
        lat=lat,
        lon=lon,
        elev=elev,
        glt_x=glt_x,
        glt_y=glt_y,
        geotransform=tuple(float(v) for v in gt),
        crs_wkt=str(attrs["spatial_ref"]),
        time_start=t0,
        time_end=t1,
        obs=obs,
        granule_id=os.path.splitext(os.path.basename(path))[0],
        source_paths=tuple(sources),
        attrs=attrs,
    )


def _open_obs(path, shape, rad_attrs):
    import xarray as xr

    # the OBS layers (11 per pixel, about 140 MB for a full granule) are read into memory
    # and the file closed at once: a handle left open and closed later by the garbage
    # collector, while other handles were open, crashed HDF5 in the tests
    with xr.open_dataset(path, engine="netcdf4", decode_times=False) as ds:
        ds = ds.load()
    if "obs" not in ds.variables:
        raise ValueError(f"{path} has no root variable `obs` (EMIT L1B OBS expected)")
    if tuple(ds["obs"].dims) != ("downtrack", "crosstrack", "bands"):
        raise ValueError(
            f"`obs` dims are {ds['obs'].dims}; expected (downtrack, crosstrack, bands)"
        )
    if tuple(ds["obs"].shape[:2]) != tuple(shape):
        raise ValueError(f"`obs` covers {ds['obs'].shape[:2]} pixels; the radiance has {shape}")
    try:
        sbp = xr.open_dataset(path, engine="netcdf4", group="sensor_band_parameters")
    except OSError:
        sbp = None
    if sbp is None or "observation_bands" not in sbp.variables:
        raise ValueError(f"{path} has no variable `sensor_band_parameters/observation_bands`")
    with sbp:
        names = [str(s) for s in np.asarray(sbp["observation_bands"].values).ravel()]
    start = ds.attrs.get("time_coverage_start")
    if start is not None and str(start) != str(rad_attrs["time_coverage_start"]):
        raise ValueError(
            f"OBS `time_coverage_start` {start!r} differs from the radiance's "
            f"{rad_attrs['time_coverage_start']!r}: not the same granule"
        )
    if len(names) != len(OBS_LAYERS):
        raise ValueError(f"`observation_bands` has {len(names)} names; expected {len(OBS_LAYERS)}")
    for (key, prefix, _), name in zip(OBS_LAYERS, names, strict=True):
        if not name.strip().lower().startswith(prefix):
            raise ValueError(
                f"`observation_bands` entry {name!r} is not the expected {prefix!r} layer ({key})"
            )
    obs = ds["obs"]
    if obs.encoding.get("_FillValue") is None:
        obs = obs.where(obs != EMIT_FILL)
    out = xr.Dataset(
        {
            key: obs.isel(bands=i, drop=True).assign_attrs(units=units, long_name=name)
            for i, ((key, _, units), name) in enumerate(zip(OBS_LAYERS, names, strict=True))
        }
    )
    out.attrs["source"] = path
    return out
