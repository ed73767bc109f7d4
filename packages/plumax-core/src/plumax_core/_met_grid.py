"""Shared machinery of the gridded met readers (ERA5, WRF): NumPy/xarray, no JAX.

* :func:`open_source`: a path (opened with xarray and closed afterwards) or an
  ``xarray.Dataset`` (used as is, never closed).
* :func:`check_units`: a variable's CF ``units`` attribute against the spellings a
  product writes (``"m s**-1"`` in ECMWF files, ``"m s-1"`` in WRF and CF), naming the
  variable on refusal.
* :func:`axis_weights`: linear-interpolation brackets on a 1-D coordinate in any order
  (ERA5 latitudes descend), optionally periodic in longitude, refusing points outside
  the coordinate (no extrapolation).
* :func:`bilinear`: bilinear interpolation of a ``(nt, ny, nx, ...)`` block at N nodes.
* :func:`scene_nodes` and :func:`build_metfield`: the scene point or the ``(ny, nx)``
  grid of a :class:`plumax_core.LocalFrame`, and the :class:`plumax_core.MetField` on it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from ._geo import LocalFrame, seconds_since_epoch
from ._validation import check_coordinate, check_length_units

#: Heights above this (m) are above the surface layer: the readers take them from
#: model-level / pressure-level winds when those are available.
SURFACE_LAYER_TOP = 100.0

#: Roughness length of the ERA5 and WRF readers when neither ``z0=`` nor the file gives
#: one, m.
DEFAULT_Z0 = 0.1

MS_UNITS = ("m s**-1", "m s-1", "m/s", "m s^-1")


@contextlib.contextmanager
def open_source(name: str, obj: Any) -> Iterator[tuple[Any, str]]:
    """``(dataset, label)`` for a path or an ``xarray.Dataset``; a file opened here is
    closed on exit. ``label`` is the file name (for ``MetField.source``)."""
    import xarray as xr

    if isinstance(obj, xr.Dataset):
        yield obj, str(obj.attrs.get("source_file", "xarray.Dataset"))
        return
    if not isinstance(obj, str | os.PathLike):
        raise ValueError(
            f"`{name}` must be a path to a NetCDF file or an xarray.Dataset, "
            f"got {type(obj).__name__}"
        )
    path = os.fspath(obj)
    if not os.path.exists(path):
        raise ValueError(f"`{name}`: no such file {path!r}")
    ds = xr.open_dataset(path)
    try:
        yield ds, os.path.basename(path)
    finally:
        ds.close()


def check_units(what: str, var: Any, allowed: tuple[str, ...], *, optional: bool = False) -> None:
    """Raise unless ``var.attrs['units']`` is one of ``allowed`` (exact spelling, spaces
    trimmed). ``optional=True`` lets a missing attribute pass."""
    units = var.attrs.get("units")
    if units is None:
        if optional:
            return
        raise ValueError(f"{what} has no `units` attribute; expected one of {list(allowed)}")
    if str(units).strip() not in allowed:
        raise ValueError(f"{what} has units {str(units)!r}; expected one of {list(allowed)}")


def axis_weights(
    coord: Any, x: Any, *, name: str, what: str, periodic: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Brackets ``(i0, i1, w)`` of ``x`` on ``coord`` (indices into ``coord`` as stored,
    any order): ``value = (1 - w) c[i0] + w c[i1]``.

    ``periodic`` (longitude): the cell between the last and the first value (+360) is
    used when the coordinate closes the circle (a global grid).

    Raises:
        ValueError: ``x`` outside the coordinate's range, naming ``name`` and ``what``;
            a coordinate with repeated or non-finite values.
    """
    c = np.asarray(coord, np.float64).ravel()
    x = np.atleast_1d(np.asarray(x, np.float64))
    if c.size == 0 or not np.all(np.isfinite(c)):
        raise ValueError(f"{what} coordinate is empty or has NaN values")
    order = np.argsort(c, kind="stable")
    cs = c[order]
    if np.any(np.diff(cs) <= 0):
        raise ValueError(f"{what} coordinate repeats a value")
    if periodic and cs.size > 1:
        step = float(np.median(np.diff(cs)))
        gap = cs[0] + 360.0 - cs[-1]
        if abs(gap - step) <= 1e-6 * max(step, 1.0) + 1e-9:
            cs = np.append(cs, cs[0] + 360.0)
            order = np.append(order, order[0])
            x = np.where(x < cs[0], x + 360.0, x)
    lo, hi = float(cs[0]), float(cs[-1])
    outside = (x < lo) | (x > hi)
    if np.any(outside):
        bad = float(x[outside][0])
        raise ValueError(
            f"`{name}` = {bad:g} is outside the {what} coverage [{lo:g}, {hi:g}] (no extrapolation)"
        )
    if cs.size == 1:
        zero = np.zeros(x.shape, np.intp) + order[0]
        return zero, zero, np.zeros(x.shape)
    k = np.clip(np.searchsorted(cs, x, side="right") - 1, 0, cs.size - 2)
    w = (x - cs[k]) / (cs[k + 1] - cs[k])
    return order[k], order[k + 1], w


def bilinear(
    arr: np.ndarray,
    j0: np.ndarray,
    j1: np.ndarray,
    wj: np.ndarray,
    k0: np.ndarray,
    k1: np.ndarray,
    wk: np.ndarray,
) -> np.ndarray:
    """Bilinear interpolation of ``arr`` ``(nt, ny, nx, *rest)`` at N nodes with row
    brackets ``(j0, j1, wj)`` and column brackets ``(k0, k1, wk)`` (each ``(N,)``,
    positions in ``arr``): returns ``(nt, N, *rest)``."""
    extra = (slice(None),) + (None,) * (arr.ndim - 3)
    wj = wj[extra]
    wk = wk[extra]
    return (
        (1 - wj) * (1 - wk) * arr[:, j0, k0]
        + (1 - wj) * wk * arr[:, j0, k1]
        + wj * (1 - wk) * arr[:, j1, k0]
        + wj * wk * arr[:, j1, k1]
    )


def decoded_values(da: Any) -> np.ndarray:
    """``da.values`` as float64 with NaN for missing data. A variable still packed (a
    dataset opened with ``mask_and_scale=False``: integer values with ``scale_factor`` /
    ``add_offset`` attributes) is unpacked here: ``value = packed * scale + offset``,
    ``_FillValue`` / ``missing_value`` -> NaN (NetCDF Users Guide, "Attribute
    Conventions")."""
    raw = np.asarray(da.values)
    attrs = da.attrs
    if raw.dtype.kind in "iu" and ("scale_factor" in attrs or "add_offset" in attrs):
        out = raw.astype(np.float64) * float(attrs.get("scale_factor", 1.0)) + float(
            attrs.get("add_offset", 0.0)
        )
        for key in ("_FillValue", "missing_value"):
            if key in attrs:
                out = np.where(raw == attrs[key], np.nan, out)
        return out
    if raw.dtype.kind not in "fiu":
        raise ValueError(f"variable {da.name!r} is not numeric (dtype {raw.dtype})")
    return raw.astype(np.float64)


def parse_time(time: Any) -> float:
    """``time`` (seconds UTC, datetime64 or ISO 8601 string) as float seconds UTC."""
    t = np.asarray(seconds_since_epoch(time), np.float64)
    if t.size != 1 or not np.isfinite(t).all():
        raise ValueError(f"`time` must be one finite time, got {time!r}")
    return float(t.reshape(()))


def scene_nodes(
    lon: Any, lat: Any, frame: LocalFrame | None, x: Any, y: Any
) -> tuple[np.ndarray, np.ndarray, LocalFrame, tuple[int, int] | None, Any, Any]:
    """Nodes ``(lon (N,), lat (N,), frame, (ny, nx) or None, x, y)`` of the scene.

    Without ``x``/``y``: the one scene point. With them (1-D, metres in ``frame``;
    an ``xarray.DataArray`` carrying ``units`` is checked by
    :func:`plumax_core.validation.check_length_units`, so degrees are refused): the
    ``(ny, nx)`` grid nodes, flattened row-major.
    """
    try:
        lon = float(lon)
        lat = float(lat)
    except (TypeError, ValueError):
        raise ValueError(f"`lon`/`lat` must be numbers (degrees), got {lon!r}, {lat!r}") from None
    if not (np.isfinite(lon) and -360.0 <= lon <= 360.0):
        raise ValueError(f"`lon` must be a longitude in degrees, got {lon}")
    if not (np.isfinite(lat) and -90.0 < lat < 90.0):
        raise ValueError(f"`lat` must be a latitude in (-90, 90) degrees, got {lat}")
    lon180 = float((lon + 180.0) % 360.0 - 180.0)
    if frame is None:
        frame = LocalFrame(lon180, lat)
    elif not isinstance(frame, LocalFrame):
        raise ValueError(f"`frame` must be a plumax_core.LocalFrame, got {type(frame).__name__}")
    if (x is None) != (y is None):
        raise ValueError("give both `x` and `y` (1-D, m) or neither")
    if x is None:
        return np.array([lon180]), np.array([lat]), frame, None, None, None
    coords = []
    for name, c in (("x", x), ("y", y)):
        units = getattr(c, "attrs", {}).get("units") if hasattr(c, "attrs") else None
        check_length_units(name, units, default="m")
        arr = np.asarray(getattr(c, "values", c), np.float64)
        check_coordinate(name, arr)
        coords.append(arr)
    xs, ys = coords
    glon, glat = frame.lonlat_grid(xs, ys)
    return glon.ravel(), glat.ravel(), frame, (ys.size, xs.size), xs, ys


def check_height_z0(height: Any, z0: Any) -> float:
    """The release ``height`` (m above ground, > 0) as a float, and ``z0`` (None or > 0 m)
    checked: the shared argument rule of the ERA5 and WRF readers.

    Raises:
        ValueError: naming ``height`` or ``z0``.
    """
    try:
        height = float(height)
    except (TypeError, ValueError):
        raise ValueError(f"`height` must be a number (m above ground), got {height!r}") from None
    if not (np.isfinite(height) and height > 0):
        raise ValueError(f"`height` must be > 0 m above ground, got {height}")
    if z0 is not None and not (np.isfinite(float(z0)) and float(z0) > 0):
        raise ValueError(f"`z0` must be > 0 m, got {z0}")
    return height


def build_metfield(
    *,
    u_east: np.ndarray,
    v_north: np.ndarray,
    lon: np.ndarray,
    lat: np.ndarray,
    frame: LocalFrame,
    shape: tuple[int, int] | None,
    x: Any,
    y: Any,
    time: float,
    temperature: np.ndarray,
    pressure: np.ndarray,
    pblh: np.ndarray,
    z0: np.ndarray,
    stability_class: np.ndarray,
    obukhov_length: np.ndarray | None,
    source: str,
):
    """The keyword arguments of the steady :class:`plumax_core.MetField` on the nodes:
    scalars for the scene point (``shape`` None), ``(1, 1, ny, nx)`` fields otherwise.
    East/north winds are rotated to grid components with
    :meth:`LocalFrame.wind_to_grid`. (The reader's classmethod builds the MetField, so
    that the readers do not import the module that imports them.)"""
    u, v = frame.wind_to_grid(u_east, v_north, lon, lat)

    def put(a, dtype=np.float64):
        a = np.broadcast_to(np.asarray(a, dtype), lon.shape)
        return a.reshape(()) if shape is None else a.reshape((1, 1) + shape)

    return dict(
        u=put(u),
        v=put(v),
        temperature=put(temperature),
        pressure=put(pressure),
        pblh=put(pblh),
        z0=put(z0),
        stability_class=put(stability_class, np.int32),
        obukhov_length=None if obukhov_length is None else put(obukhov_length),
        time=np.array([time]),
        x=x,
        y=y,
        source=source,
    )
