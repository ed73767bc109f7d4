"""Geometric lookup tables (GLT): sensor geometry <-> a regular longitude/latitude grid.

An imaging spectrometer records pixels in *sensor geometry* ``(downtrack, crosstrack)``;
the EMIT products carry, beside the per-pixel ``lat``/``lon``, a GLT that orthorectifies
them: two integer rasters ``glt_x``/``glt_y`` on an ``(ortho_y, ortho_x)`` grid of square
cells in degrees (EPSG:4326), whose GDAL geotransform ``(west, dlon, 0, north, 0, -dlat)``
is a global attribute of the file. Cell ``(r, c)`` shows the sensor pixel
``(downtrack = glt_y[r, c] - 1, crosstrack = glt_x[r, c] - 1)``: the indices are
1-based and ``0`` means "no pixel" (facts from the LP DAAC ``EMIT-Data-Resources``
``emit_tools.py`` reader, ``apply_glt``/``coord_vects``, and the EMIT SDS converter
``emit_utils/daac_converter.py``, ``add_glt``; cell centres are ``west + (c + 0.5) dlon``
and ``north + (r + 0.5) * gt[5]``, the geotransform has no rotation terms).

Not confirmed for EMIT: the AVIRIS-NG orthorectification writes *negative* GLT entries
for cells filled by nearest-neighbour interpolation; :func:`glt_indices` reads a negative
entry as its absolute value and counts such entries, so a file using that convention is
read correctly and one that does not is unaffected.

Building a GLT (:func:`build_glt`, used by the writer): each ortho cell takes the sensor
pixel whose centre is nearest to the cell centre (a k-d tree on an equirectangular
projection about the scene centre; the error of that local projection is below 1e-3 of a
pixel over a 100 km granule), when that pixel is closer than ``max_distance`` (default:
the larger of the median downtrack and crosstrack pixel spacings, "about one pixel");
farther cells are 0. This is a nearest-neighbour GLT, not the EMIT SDS algorithm
(forward projection of each pixel on a DEM plus in-filling), which the files' GLTs come
from.

Applying a table in either direction is :func:`gather` (``out = src[iy, ix]``, NaN where
there is no pixel), tile by tile over dask arrays so a full granule never sits in memory.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "EARTH_RADIUS_M",
    "build_glt",
    "cell_centres",
    "check_geotransform",
    "gather",
    "glt_indices",
    "inverse_glt",
    "lonlat_to_cell",
    "pixel_spacing_m",
]

#: Mean Earth radius, m (IUGG), for the local equirectangular distances of a GLT.
EARTH_RADIUS_M = 6_371_008.8


def check_geotransform(geotransform) -> np.ndarray:
    """The 6 GDAL geotransform values as float64; refuses rotated or degenerate ones."""
    gt = np.asarray(geotransform, np.float64).ravel()
    if gt.shape != (6,) or not np.all(np.isfinite(gt)):
        raise ValueError(f"`geotransform` must be 6 finite GDAL values, got {geotransform!r}")
    if gt[2] != 0.0 or gt[4] != 0.0:
        raise ValueError(f"`geotransform` has rotation terms ({gt[2]}, {gt[4]}); expected 0")
    if not (gt[1] > 0.0 and gt[5] < 0.0):
        raise ValueError(
            f"`geotransform` pixel sizes must be dlon > 0 and dlat < 0 (north-up), got "
            f"{gt[1]}, {gt[5]}"
        )
    return gt


def cell_centres(geotransform, shape) -> tuple[np.ndarray, np.ndarray]:
    """``(lat (ny,), lon (nx,))`` of the cell centres of a north-up grid, degrees."""
    gt = check_geotransform(geotransform)
    ny, nx = shape
    lon = gt[0] + (np.arange(nx) + 0.5) * gt[1]
    lat = gt[3] + (np.arange(ny) + 0.5) * gt[5]
    return lat, lon


def lonlat_to_cell(geotransform, shape, lon, lat) -> tuple[np.ndarray, np.ndarray]:
    """``(row, col)`` of the cells containing ``(lon, lat)`` (degrees); -1 outside the grid."""
    gt = check_geotransform(geotransform)
    lon = np.asarray(lon, np.float64)
    lat = np.asarray(lat, np.float64)
    col = np.floor((lon - gt[0]) / gt[1])
    row = np.floor((lat - gt[3]) / gt[5])
    inside = (np.isfinite(col) & np.isfinite(row) & (col >= 0) & (col < shape[1]) & (row >= 0)) & (
        row < shape[0]
    )
    return (
        np.where(inside, row, -1).astype(np.int64),
        np.where(inside, col, -1).astype(np.int64),
    )


def glt_indices(glt_x, glt_y, sensor_shape) -> tuple[np.ndarray, np.ndarray, int]:
    """0-based ``(downtrack, crosstrack)`` indices of a 1-based GLT, -1 where it is 0.

    Returns ``(iy, ix, n_negative)``; negative entries are read as their absolute value
    (see the module docstring) and counted.

    Raises:
        ValueError: mismatched shapes, only one of the pair set, or an index beyond the
            sensor grid ``sensor_shape = (downtrack, crosstrack)``, naming the variable.
    """
    gx = np.asarray(glt_x)
    gy = np.asarray(glt_y)
    if gx.ndim != 2 or gx.shape != gy.shape:
        raise ValueError(
            f"`glt_x` {gx.shape} and `glt_y` {gy.shape} must be 2-D (ortho_y, ortho_x) "
            "and of the same shape"
        )
    if gx.dtype.kind not in "iu" or gy.dtype.kind not in "iu":
        raise ValueError(f"`glt_x`/`glt_y` must be integers, got {gx.dtype}/{gy.dtype}")
    n_neg = int(np.count_nonzero(gx < 0) + np.count_nonzero(gy < 0))
    gx = np.abs(gx.astype(np.int64))
    gy = np.abs(gy.astype(np.int64))
    if np.any((gx == 0) != (gy == 0)):
        raise ValueError("`glt_x` and `glt_y` disagree on which cells are empty (0)")
    for name, g, n in (("glt_y", gy, sensor_shape[0]), ("glt_x", gx, sensor_shape[1])):
        if g.size and g.max() > n:
            raise ValueError(
                f"`{name}` references pixel {int(g.max())} (1-based) but the granule has "
                f"{n} along that axis"
            )
    return gy - 1, gx - 1, n_neg


def _local_metres(lon, lat, lon0, lat0):
    k = np.deg2rad(1.0) * EARTH_RADIUS_M
    return (lon - lon0) * k * np.cos(np.deg2rad(lat0)), (lat - lat0) * k


def pixel_spacing_m(lat, lon) -> tuple[float, float]:
    """Median ``(downtrack, crosstrack)`` spacing of neighbouring pixel centres, m."""
    lat = np.asarray(lat, np.float64)
    lon = np.asarray(lon, np.float64)
    x, y = _local_metres(lon, lat, np.median(lon), np.median(lat))
    d_down = np.hypot(np.diff(x, axis=0), np.diff(y, axis=0))
    d_cross = np.hypot(np.diff(x, axis=1), np.diff(y, axis=1))
    out = []
    for d in (d_down, d_cross):
        out.append(float(np.median(d)) if d.size else float("nan"))
    return out[0], out[1]


def build_glt(lat, lon, *, pixel_deg: float | None = None, max_distance_m: float | None = None):
    """A nearest-pixel GLT of a swath with pixel centres ``lat``/``lon`` ``(nd, nc)`` (deg).

    Args:
        lat, lon: pixel-centre coordinates, degrees, finite, not crossing the antimeridian.
        pixel_deg: ortho cell size, degrees (square cells, as EMIT's); default the median
            pixel spacing converted to degrees of latitude.
        max_distance_m: cells whose nearest pixel centre is farther are empty (0); default
            the larger median pixel spacing (about one pixel).

    Returns:
        ``(glt_x, glt_y, geotransform)``: int32 ``(ortho_y, ortho_x)`` 1-based (0 = none)
        and the 6 GDAL values; the grid covers the swath plus one cell on every side.
    """
    from scipy.spatial import cKDTree

    lat = np.asarray(lat, np.float64)
    lon = np.asarray(lon, np.float64)
    if lat.ndim != 2 or lat.shape != lon.shape:
        raise ValueError(f"`lat` {lat.shape} and `lon` {lon.shape} must be 2-D and equal")
    if not (np.all(np.isfinite(lat)) and np.all(np.isfinite(lon))):
        raise ValueError("`lat`/`lon` must be finite to build a GLT")
    if np.any(np.abs(lat) > 90) or np.any(np.abs(lon) > 180):
        raise ValueError("`lat`/`lon` must be degrees in [-90, 90] / [-180, 180]")
    if lon.max() - lon.min() > 180.0:
        raise ValueError("the swath crosses the antimeridian: not supported by `build_glt`")
    s_down, s_cross = pixel_spacing_m(lat, lon)
    spacing = np.nanmax([s_down, s_cross])
    if not (spacing > 0):
        raise ValueError("`lat`/`lon` need at least 2 distinct pixels to size the grid")
    if pixel_deg is None:
        pixel_deg = float(np.nanmin([s_down, s_cross]) / (np.deg2rad(1.0) * EARTH_RADIUS_M))
    if not (np.isfinite(pixel_deg) and pixel_deg > 0):
        raise ValueError(f"`pixel_deg` must be > 0 degrees, got {pixel_deg}")
    max_d = spacing if max_distance_m is None else float(max_distance_m)
    if not (max_d > 0):
        raise ValueError(f"`max_distance_m` must be > 0, got {max_distance_m}")
    west = lon.min() - pixel_deg
    north = lat.max() + pixel_deg
    nx = int(np.ceil((lon.max() + pixel_deg - west) / pixel_deg))
    ny = int(np.ceil((north - (lat.min() - pixel_deg)) / pixel_deg))
    gt = np.array([west, pixel_deg, 0.0, north, 0.0, -pixel_deg])
    lon0, lat0 = float(np.median(lon)), float(np.median(lat))
    px, py = _local_metres(lon.ravel(), lat.ravel(), lon0, lat0)
    tree = cKDTree(np.column_stack([px, py]))
    clat, clon = cell_centres(gt, (ny, nx))
    glt_x = np.zeros((ny, nx), np.int32)
    glt_y = np.zeros((ny, nx), np.int32)
    nc = lat.shape[1]
    step = max(1, 2_000_000 // max(nx, 1))  # rows of cells per query (bounded memory)
    for r0 in range(0, ny, step):
        la, lo = np.meshgrid(clat[r0 : r0 + step], clon, indexing="ij")
        qx, qy = _local_metres(lo.ravel(), la.ravel(), lon0, lat0)
        dist, idx = tree.query(np.column_stack([qx, qy]), distance_upper_bound=max_d)
        hit = np.isfinite(dist)
        k = np.where(hit, idx, 0)
        glt_y[r0 : r0 + step] = np.where(hit, k // nc + 1, 0).reshape(la.shape)
        glt_x[r0 : r0 + step] = np.where(hit, k % nc + 1, 0).reshape(la.shape)
    return glt_x, glt_y, gt


def inverse_glt(iy, ix, sensor_shape, geotransform, lat, lon) -> tuple[np.ndarray, np.ndarray]:
    """For each sensor pixel, the ortho cell ``(row, col)`` that shows it; -1 if none does.

    A pixel shown by several cells takes the cell whose centre is nearest to the pixel's
    own ``lat``/``lon`` (ties: the first in raster order), so the choice is deterministic.
    """
    iy = np.asarray(iy)
    ix = np.asarray(ix)
    nd, nc = sensor_shape
    rows = np.full(nd * nc, -1, np.int64)
    cols = np.full(nd * nc, -1, np.int64)
    r, c = np.nonzero(iy >= 0)
    if r.size == 0:
        return rows.reshape(sensor_shape), cols.reshape(sensor_shape)
    p = iy[r, c].astype(np.int64) * nc + ix[r, c]
    clat, clon = cell_centres(geotransform, iy.shape)
    plat = np.asarray(lat, np.float64).ravel()[p]
    plon = np.asarray(lon, np.float64).ravel()[p]
    d2 = (clat[r] - plat) ** 2 + ((clon[c] - plon) * np.cos(np.deg2rad(plat))) ** 2
    order = np.lexsort((np.arange(p.size), d2, p))
    first = np.unique(p[order], return_index=True)[1]
    pick = order[first]
    rows[p[pick]] = r[pick]
    cols[p[pick]] = c[pick]
    return rows.reshape(sensor_shape), cols.reshape(sensor_shape)


def _take(sub, iy, ix, dtype, last=None):
    ok = iy >= 0
    vals = sub[iy[ok], ix[ok]]
    if last is not None:
        vals = vals[..., last]
    out = np.full(iy.shape + vals.shape[1:], np.nan, dtype)
    out[ok] = vals
    return out


def gather(src, iy, ix, *, tile: tuple[int, int] = (64, 256), last=None):
    """``out[i, j, ...] = src[iy[i, j], ix[i, j], ...]``; NaN where ``iy < 0``.

    ``src`` is a NumPy or dask array whose two leading axes are indexed (trailing axes are
    carried; ``last``, integer indices, selects along the last axis of a 3-D ``src``).
    A NumPy source gives a NumPy result; a dask source gives a dask array built tile by
    tile (``tile`` cells of the output each): a tile reads only the bounding box of the
    source pixels it needs (and, with ``last``, only the band range it spans), so memory
    is one tile's box at a time. The result is float (``src``'s dtype promoted to at
    least float32) so it can hold NaN.
    """
    iy = np.asarray(iy)
    ix = np.asarray(ix)
    if iy.shape != ix.shape or iy.ndim != 2:
        raise ValueError(f"index arrays must be 2-D and equal, got {iy.shape} and {ix.shape}")
    dtype = np.result_type(src.dtype, np.float32)
    if last is not None:
        last = np.asarray(last, np.int64)
        if src.ndim != 3 or last.ndim != 1 or last.size == 0:
            raise ValueError("`last` must be 1-D indices into the last axis of a 3-D `src`")
        lo, hi = int(last.min()), int(last.max()) + 1
        src = src[:, :, lo:hi]  # a slice: a dask source reads only this band range
        last = None if np.array_equal(last, np.arange(lo, hi)) else last - lo
    rest = tuple(src.shape[2:])
    if last is not None:
        rest = rest[:-1] + (last.size,)
    if not hasattr(src, "dask"):
        return _take(np.asarray(src), iy, ix, dtype, last)
    import dask
    import dask.array as da

    ty, tx = (int(t) for t in tile)
    take = dask.delayed(_take, pure=True)
    rows = []
    for r0 in range(0, iy.shape[0], ty):
        row = []
        for c0 in range(0, iy.shape[1], tx):
            by = iy[r0 : r0 + ty, c0 : c0 + tx]
            bx = ix[r0 : r0 + ty, c0 : c0 + tx]
            shape = by.shape + rest
            ok = by >= 0
            if not ok.any():
                row.append(da.full(shape, np.nan, dtype=dtype, chunks=shape))
                continue
            a0, a1 = int(by[ok].min()), int(by[ok].max()) + 1
            b0, b1 = int(bx[ok].min()), int(bx[ok].max()) + 1
            liy = np.where(ok, by - a0, -1).astype(np.int32)
            lix = np.where(ok, bx - b0, -1).astype(np.int32)
            part = take(src[a0:a1, b0:b1], liy, lix, dtype, last)
            row.append(da.from_delayed(part, shape, dtype=dtype))
        rows.append(da.concatenate(row, axis=1) if len(row) > 1 else row[0])
    return da.concatenate(rows, axis=0) if len(rows) > 1 else rows[0]
