r"""WRF reader: :meth:`plumax_core.MetField.from_wrf`.

**Layout read** (``wrfout`` files of WRF-ARW; variable names, dims and units as the
model writes them, cf. the WRF-ARW User's Guide, "WRF Output" and the
``Registry.EM_COMMON`` state table): dims ``Time``, ``bottom_top``,
``bottom_top_stag``, ``south_north``, ``south_north_stag``, ``west_east``,
``west_east_stag``; ``Times`` (``Time``, ``DateStrLen``) characters
``"YYYY-MM-DD_hh:mm:ss"``; mass-point ``XLAT``/``XLONG`` (degrees), ``U10``, ``V10``
(m s-1), ``T2`` (K), ``PSFC`` (Pa), ``PBLH``, ``HGT``, ``ZNT`` (m), ``UST`` (m s-1),
``HFX`` (W m-2, *upward* positive), ``COSALPHA``/``SINALPHA`` (the local rotation of
the grid against true north); ``U`` on ``west_east_stag``, ``V`` on
``south_north_stag``, geopotential ``PH`` + ``PHB`` (m2 s-2) on ``bottom_top_stag``;
global attributes ``MAP_PROJ``, ``TRUELAT1``, ``TRUELAT2``, ``STAND_LON``,
``MOAD_CEN_LAT``, ``CEN_LAT``, ``CEN_LON``, ``DX``, ``DY`` (m). Not confirmed here from a
real file: the exact units strings (taken as ``"m s-1"``, ``"m2 s-2"``, ``"W m-2"``,
``"degree_north"``/``"degree_east"``; ``"m s**-1"``-style spellings are accepted too).

**Winds.** Staggered ``U``/``V`` are de-staggered to mass points by the mean of the two
faces, ``U_m[i] = (U[i] + U[i+1]) / 2``. Grid-relative winds are turned earth-relative
with (UCAR WRF forum, "Converting model grid-relative wind to earth-relative wind"; D.
Ovens, "How to properly rotate WRF winds to earth-relative coordinates",
http://www-k12.atmos.washington.edu/~ovens/wrfwinds.html)

$$ u_{e} = u\cos\alpha - v\sin\alpha, \qquad v_{n} = v\cos\alpha + u\sin\alpha, $$

then to the local frame's grid (:meth:`plumax_core.LocalFrame.wind_to_grid`). A
Mercator grid (``MAP_PROJ`` 3) is aligned with the earth: without ``COSALPHA`` it is
read with ``cos = 1``, ``sin = 0`` (Ovens, as above).

**Height.** At or below the lowest mass level the wind comes from ``U10``/``V10`` and
the surface-layer profile of :mod:`plumax_core._met_profile` (Obukhov length from
``UST`` and ``HFX``, roughness ``ZNT``); above it, from the de-staggered 3-D winds
interpolated linearly in height above ground, ``z = (PH + PHB)/g - HGT`` with ``g =
9.81`` m s-2 (WRF's constant; not re-checked against the source here) averaged
from the ``bottom_top_stag`` faces to mass levels. Without the 3-D variables the
profile is used up to 100 m and higher heights are refused.

**Horizontal interpolation.** The WRF grid is regular in its map projection: the reader
builds it with pyproj from ``MAP_PROJ`` (1 Lambert conformal ``lcc`` with ``TRUELAT1``,
``TRUELAT2``, ``STAND_LON``; 2 polar stereographic; 3 Mercator) on WRF's sphere of
radius 6 370 000 m, checks that ``XLAT``/``XLONG`` fall on that grid to within 5 % of
``DX`` (so wrong attributes are caught, not used), projects the scene's longitudes and
latitudes, and interpolates bilinearly in grid-index space. Other projections
(``MAP_PROJ`` 6, lat-lon / rotated pole) are refused. The sphere radius is WRF's
documented ``EARTH_RADIUS_M``; not confirmed here beyond that the grid check passes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._met_grid import (
    DEFAULT_Z0,
    MS_UNITS,
    SURFACE_LAYER_TOP,
    axis_weights,
    bilinear,
    build_metfield,
    check_height_z0,
    check_units,
    decoded_values,
    open_source,
    parse_time,
    scene_nodes,
)
from ._met_profile import (
    REFERENCE_HEIGHT,
    golder_class,
    obukhov_length,
    wind_at_height,
)

__all__ = ["WRF_EARTH_RADIUS", "WRF_GRAVITY", "WRF_UNITS", "read_wrf", "wrf_crs"]

#: Radius of WRF's spherical earth, m.
WRF_EARTH_RADIUS = 6370000.0
#: WRF's gravitational acceleration, m s-2.
WRF_GRAVITY = 9.81
_GRID_TOL = 0.05  # of DX

WRF_UNITS: dict[str, tuple[str, ...]] = {
    "U": MS_UNITS,
    "V": MS_UNITS,
    "U10": MS_UNITS,
    "V10": MS_UNITS,
    "UST": MS_UNITS,
    "T2": ("K",),
    "PSFC": ("Pa",),
    "PBLH": ("m",),
    "HGT": ("m",),
    "ZNT": ("m",),
    "HFX": ("W m-2", "W m**-2"),
    "PH": ("m2 s-2", "m**2 s**-2", "m2/s2"),
    "PHB": ("m2 s-2", "m**2 s**-2", "m2/s2"),
    "XLAT": ("degree_north", "degrees_north"),
    "XLONG": ("degree_east", "degrees_east"),
    "COSALPHA": ("", "1", "-"),
    "SINALPHA": ("", "1", "-"),
}
_PROJECTIONS = {1: "Lambert conformal", 2: "polar stereographic", 3: "Mercator"}


def wrf_crs(attrs: Any):
    """The ``pyproj.CRS`` of a WRF grid from its global attributes.

    Raises:
        ValueError: a missing attribute or an unsupported ``MAP_PROJ``, naming it.
    """
    from pyproj import CRS

    def get(key):
        if key not in attrs:
            raise ValueError(f"WRF file lacks the global attribute {key!r}")
        return float(np.asarray(attrs[key]).ravel()[0])

    proj = int(get("MAP_PROJ"))
    if proj not in _PROJECTIONS:
        raise ValueError(
            f"WRF MAP_PROJ = {proj} is not supported; supported: "
            + ", ".join(f"{k} ({v})" for k, v in _PROJECTIONS.items())
        )
    sphere = f"+a={WRF_EARTH_RADIUS} +b={WRF_EARTH_RADIUS} +units=m +no_defs"
    t1, lon0 = get("TRUELAT1"), get("STAND_LON")
    if proj == 1:
        t2 = get("TRUELAT2")
        lat0 = float(attrs.get("MOAD_CEN_LAT", attrs.get("CEN_LAT", t1)))
        s = f"+proj=lcc +lat_1={t1} +lat_2={t2} +lat_0={lat0} +lon_0={lon0} {sphere}"
    elif proj == 2:
        pole = 90.0 if t1 >= 0 else -90.0
        s = f"+proj=stere +lat_0={pole} +lat_ts={t1} +lon_0={lon0} {sphere}"
    else:
        s = f"+proj=merc +lat_ts={t1} +lon_0={lon0} {sphere}"
    return proj, CRS.from_proj4(s)


def _times(ds: Any) -> np.ndarray:
    if "Times" not in ds.variables:
        raise ValueError("WRF file has no `Times` variable")
    raw = np.asarray(ds["Times"].values)
    if raw.dtype.kind == "S" and raw.ndim == 2:
        strings = [b"".join(r).decode() for r in raw]
    else:
        strings = [r.decode() if isinstance(r, bytes) else str(r) for r in raw.ravel()]
    out = []
    for s in strings:
        try:
            out.append(np.datetime64(s.strip().replace("_", "T"), "ns"))
        except ValueError:
            raise ValueError(f"WRF `Times` entry {s!r} is not 'YYYY-MM-DD_hh:mm:ss'") from None
    return (np.array(out) - np.datetime64("1970-01-01T00:00:00", "ns")) / np.timedelta64(1, "s")


class _WrfGrid:
    """Fractional grid indices of the nodes and the data block around them."""

    def __init__(self, ds, label, node_lon, node_lat, t):
        from pyproj import Transformer

        self.ds, self.label = ds, label
        for v in ("XLAT", "XLONG"):
            if v not in ds.variables:
                raise ValueError(f"{label} has no variable {v!r}")
            check_units(f"{label} variable {v!r}", ds[v], WRF_UNITS[v])
        self.proj, crs = wrf_crs(ds.attrs)
        dx = float(np.asarray(ds.attrs.get("DX", np.nan)))
        dy = float(np.asarray(ds.attrs.get("DY", np.nan)))
        if not (np.isfinite(dx) and dx > 0 and np.isfinite(dy) and dy > 0):
            raise ValueError(f"{label} global attributes DX/DY must be > 0 m, got {dx}, {dy}")
        fwd = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
        xlat = np.asarray(ds["XLAT"].values, np.float64)
        xlon = np.asarray(ds["XLONG"].values, np.float64)
        xlat = xlat[0] if xlat.ndim == 3 else xlat
        xlon = xlon[0] if xlon.ndim == 3 else xlon
        ny, nx = xlat.shape
        gx, gy = fwd.transform(xlon, xlat)
        jj, ii = np.mgrid[0:ny, 0:nx]
        x0 = float(np.mean(gx - ii * dx))
        y0 = float(np.mean(gy - jj * dy))
        err = max(np.max(np.abs(gx - x0 - ii * dx)), np.max(np.abs(gy - y0 - jj * dy)))
        if err > _GRID_TOL * min(dx, dy):
            raise ValueError(
                f"{label}: XLAT/XLONG are off the {_PROJECTIONS[self.proj]} grid built from "
                f"MAP_PROJ/TRUELAT1/TRUELAT2/STAND_LON/DX/DY by {err:.3g} m "
                f"(> {_GRID_TOL:.0%} of DX): inconsistent projection attributes"
            )
        px, py = fwd.transform(node_lon, node_lat)
        fi = (np.asarray(px) - x0) / dx
        fj = (np.asarray(py) - y0) / dy
        self.i0, self.i1, self.wi = axis_weights(
            np.arange(nx), fi, name="lon", what=f"{label} west_east grid index"
        )
        self.j0, self.j1, self.wj = axis_weights(
            np.arange(ny), fj, name="lat", what=f"{label} south_north grid index"
        )
        times = _times(ds)
        self.t0, self.t1, self.wt = axis_weights(times, t, name="time", what=f"{label} time")
        # contiguous block around the nodes (mass points); staggered ones get one more
        self.js = slice(int(min(self.j0.min(), self.j1.min())), int(self.j1.max()) + 1)
        self.is_ = slice(int(min(self.i0.min(), self.i1.min())), int(self.i1.max()) + 1)
        self.ts = np.unique([self.t0[0], self.t1[0]])

    def has(self, name: str) -> bool:
        return name in self.ds.variables

    def block(self, name: str) -> np.ndarray:
        """``name`` on the block, ``(nt, ny_b, nx_b[, nz])`` at mass points."""
        if not self.has(name):
            raise ValueError(f"{self.label} has no variable {name!r}")
        da = self.ds[name]
        check_units(
            f"{self.label} variable {name!r}",
            da,
            WRF_UNITS[name],
            optional=name in ("COSALPHA", "SINALPHA"),
        )
        if "Time" not in da.dims:
            raise ValueError(f"{self.label} variable {name!r} has no `Time` dim: {da.dims}")
        grow = lambda sl: slice(sl.start, sl.stop + 1)
        windows = {
            "Time": self.ts,
            "south_north": self.js,
            "south_north_stag": grow(self.js),
            "west_east": self.is_,
            "west_east_stag": grow(self.is_),
        }
        sel = {d: w for d, w in windows.items() if d in da.dims}
        da = da.isel(sel)
        zdim = [d for d in da.dims if d in ("bottom_top", "bottom_top_stag")]
        ydim = "south_north" if "south_north" in da.dims else "south_north_stag"
        xdim = "west_east" if "west_east" in da.dims else "west_east_stag"
        arr = decoded_values(da.transpose("Time", ydim, xdim, *zdim))
        if ydim.endswith("_stag"):
            arr = 0.5 * (arr[:, :-1] + arr[:, 1:])
        if xdim.endswith("_stag"):
            arr = 0.5 * (arr[:, :, :-1] + arr[:, :, 1:])
        if zdim and zdim[0].endswith("_stag"):
            arr = 0.5 * (arr[..., :-1] + arr[..., 1:])
        return arr

    def at_nodes(self, arr: np.ndarray, name: str) -> np.ndarray:
        """Bilinear in index space and linear in time: ``(N[, nz])``."""
        j = lambda a: a - self.js.start
        i = lambda a: a - self.is_.start
        vals = bilinear(arr, j(self.j0), j(self.j1), self.wj, i(self.i0), i(self.i1), self.wi)
        a, b = np.searchsorted(self.ts, self.t0[0]), np.searchsorted(self.ts, self.t1[0])
        out = (1.0 - self.wt[0]) * vals[a] + self.wt[0] * vals[b]
        if not np.all(np.isfinite(out)):
            raise ValueError(f"{self.label} variable {name!r} has missing values at the point")
        return out

    def interp(self, name: str) -> np.ndarray:
        return self.at_nodes(self.block(name), name)

    def rotation(self) -> tuple[np.ndarray, np.ndarray]:
        if self.has("COSALPHA") and self.has("SINALPHA"):
            return self.block("COSALPHA"), self.block("SINALPHA")
        if self.proj == 3:
            return np.array(1.0), np.array(0.0)
        raise ValueError(
            f"{self.label} lacks COSALPHA/SINALPHA, needed to turn grid-relative winds "
            "earth-relative on a non-Mercator grid"
        )


def read_wrf(
    wrfout: Any,
    *,
    lon: float,
    lat: float,
    time: Any,
    frame: Any = None,
    height: float = 10.0,
    x: Any = None,
    y: Any = None,
    stability: Any = None,
    z0: float | None = None,
):
    """Implementation of :meth:`plumax_core.MetField.from_wrf` (see there)."""

    t, height = parse_time(time), check_height_z0(height, z0)
    node_lon, node_lat, frame, shape, xs, ys = scene_nodes(lon, lat, frame, x, y)
    sc_override = stability  # an index 0-5, resolved by the MetField classmethod

    with open_source("wrfout", wrfout) as (ds, name):
        label = f"WRF file {name!r}"
        g = _WrfGrid(ds, label, node_lon, node_lat, t)
        for v in ("U10", "V10", "T2", "PSFC", "PBLH"):
            if not g.has(v):
                raise ValueError(f"{label} lacks the variable {v!r}")
        cosa, sina = g.rotation()
        u10b, v10b = g.block("U10"), g.block("V10")
        u10 = g.at_nodes(u10b * cosa - v10b * sina, "U10")
        v10 = g.at_nodes(v10b * cosa + u10b * sina, "V10")
        t2, psfc, pblh = g.interp("T2"), g.interp("PSFC"), g.interp("PBLH")
        if z0 is not None:
            z0_arr = np.full(node_lon.shape, float(z0))
        elif g.has("ZNT"):
            z0_arr = g.interp("ZNT")
        else:
            z0_arr = np.full(node_lon.shape, DEFAULT_Z0)
        L = None
        if g.has("UST") and g.has("HFX"):
            L = obukhov_length(g.interp("UST"), g.interp("HFX"), t2, psfc)
        if sc_override is not None:
            sc = np.full(node_lon.shape, sc_override, np.int32)
        elif L is not None:
            sc = golder_class(L, z0_arr)
        else:
            raise ValueError(
                f"{label} lacks 'UST' and/or 'HFX' to derive the stability class; "
                "pass `stability=` ('A'-'F')"
            )

        low = np.ones(node_lon.shape, bool)
        u3 = v3 = zagl = None
        if height > REFERENCE_HEIGHT and all(g.has(v) for v in ("U", "V", "PH", "PHB", "HGT")):
            ub, vb = g.block("U"), g.block("V")
            ca = cosa[..., None] if np.ndim(cosa) else cosa
            sa = sina[..., None] if np.ndim(sina) else sina
            u3 = g.at_nodes(ub * ca - vb * sa, "U")
            v3 = g.at_nodes(vb * ca + ub * sa, "V")
            geo = (g.block("PH") + g.block("PHB")) / WRF_GRAVITY
            zagl = g.at_nodes(geo - g.block("HGT")[..., None], "PH")
            low = height <= zagl[:, 0]
        elif height > SURFACE_LAYER_TOP:
            raise ValueError(
                f"`height` = {height} m needs the 3-D winds; {label} lacks some of "
                "'U', 'V', 'PH', 'PHB', 'HGT'"
            )
        source = f"WRF {name}"

    u_e, v_e = np.empty_like(u10), np.empty_like(v10)
    if np.any(low):
        if height == REFERENCE_HEIGHT:
            u_e[low], v_e[low] = u10[low], v10[low]
        else:
            Ll = None if L is None else L[low]
            u_e[low] = wind_at_height(u10[low], height, z0_arr[low], Ll)
            v_e[low] = wind_at_height(v10[low], height, z0_arr[low], Ll)
    for n in np.flatnonzero(~low):
        if height > zagl[n, -1]:
            raise ValueError(
                f"`height` = {height} m is above the model top ({zagl[n, -1]:.0f} m) of {label}"
            )
        u_e[n] = np.interp(height, zagl[n], u3[n])
        v_e[n] = np.interp(height, zagl[n], v3[n])

    return build_metfield(
        u_east=u_e,
        v_north=v_e,
        lon=node_lon,
        lat=node_lat,
        frame=frame,
        shape=shape,
        x=xs,
        y=ys,
        time=t,
        temperature=t2,
        pressure=psfc,
        pblh=pblh,
        z0=z0_arr,
        stability_class=sc,
        obukhov_length=L,
        source=source,
    )
