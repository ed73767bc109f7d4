"""Geolocation: a local metric frame centred on a scene, and CF geolocated outputs.

Every transport model works in a flat ``(x, y)`` frame in metres, ``x`` towards grid
east and ``y`` towards grid north. Real products arrive in longitude/latitude. The
:class:`LocalFrame` converts between the two with an azimuthal equidistant (AEQD)
projection on the WGS 84 ellipsoid centred on the scene (PROJ ``aeqd``, Snyder 1987,
*Map Projections: A Working Manual*, USGS PP 1395, pp. 191-202): distances from the
centre are true geodesic distances, and within 50 km of the centre the scale error in
any direction is below 3e-5 (the scale factor along a circle about the centre is
``(rho / R) / sin(rho / R) ~ 1 + rho²/(6 R²)``), so a plume model's metres are metres.

Grid north differs from true north away from the centre (meridian convergence):
:meth:`LocalFrame.north_bearing` gives the grid bearing of true north at a point, and
:meth:`LocalFrame.wind_to_grid` rotates an east/north wind into grid components. Both
are computed from the projection itself (finite differences of the forward transform),
so they hold for any point the projection covers.

Outputs: :func:`add_geolocation` gives a ``(y, x)`` dataset 2-D ``lat``/``lon``
coordinates, a CF ``grid_mapping`` variable ``crs`` (with ``crs_wkt``), the CF
attributes of ``x``/``y`` and a time coordinate (CF-1.8, section 5.6 "Horizontal
Coordinate Reference Systems, Grid Mappings, and Projections");
:func:`frame_from_dataset` reads the frame back.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from ._validation import check_length_units

__all__ = [
    "GRID_MAPPING_NAME",
    "LocalFrame",
    "add_geolocation",
    "frame_from_dataset",
    "seconds_since_epoch",
]

#: Name of the CF grid-mapping variable every geolocated plumax output carries.
GRID_MAPPING_NAME = "crs"

_EPOCH = np.datetime64("1970-01-01T00:00:00", "ns")


@functools.lru_cache(maxsize=64)
def _transformers(lon0: float, lat0: float):
    from pyproj import CRS, Transformer

    crs = CRS.from_proj4(
        f"+proj=aeqd +lat_0={lat0!r} +lon_0={lon0!r} +x_0=0 +y_0=0 +datum=WGS84 +units=m"
    )
    fwd = Transformer.from_crs(CRS.from_epsg(4326), crs, always_xy=True)
    inv = Transformer.from_crs(crs, CRS.from_epsg(4326), always_xy=True)
    return crs, fwd, inv


def _check_lonlat(lon: Any, lat: Any, name: str = "") -> tuple[np.ndarray, np.ndarray]:
    lon = np.asarray(lon, np.float64)
    lat = np.asarray(lat, np.float64)
    pre = f"{name} " if name else ""
    if not (np.all(np.isfinite(lon)) and np.all(np.isfinite(lat))):
        raise ValueError(f"{pre}longitude/latitude must be finite")
    if np.any(np.abs(lat) > 90.0):
        raise ValueError(
            f"{pre}latitude must be in [-90, 90] degrees, got values up to {np.abs(lat).max():g}"
        )
    if np.any(lon < -360.0) or np.any(lon > 360.0):
        raise ValueError(f"{pre}longitude must be in [-360, 360] degrees")
    return lon, lat


class LocalFrame:
    """An azimuthal equidistant frame (metres) centred on ``(lon0, lat0)`` (degrees, WGS 84).

    ``x`` is grid east and ``y`` grid north, both in m; the centre is ``(0, 0)``. Instances
    are immutable, hashable and compare equal when their centres are equal.

    Args:
        lon0: longitude of the centre, degrees east, in ``[-180, 180]``.
        lat0: latitude of the centre, degrees north, in ``(-90, 90)``.

    Raises:
        ValueError: a non-finite or out-of-range centre, naming it.
    """

    __slots__ = ("_lon0", "_lat0")

    def __init__(self, lon0: float, lat0: float):
        lon0, lat0 = float(lon0), float(lat0)
        if not (math.isfinite(lon0) and -180.0 <= lon0 <= 180.0):
            raise ValueError(f"`lon0` must be in [-180, 180] degrees east, got {lon0}")
        if not (math.isfinite(lat0) and -90.0 < lat0 < 90.0):
            raise ValueError(f"`lat0` must be in (-90, 90) degrees north, got {lat0}")
        object.__setattr__(self, "_lon0", lon0)
        object.__setattr__(self, "_lat0", lat0)

    def __setattr__(self, name, value):
        raise AttributeError("LocalFrame is immutable")

    @property
    def lon0(self) -> float:
        """Longitude of the centre, degrees east."""
        return self._lon0

    @property
    def lat0(self) -> float:
        """Latitude of the centre, degrees north."""
        return self._lat0

    def __repr__(self) -> str:
        return f"LocalFrame(lon0={self._lon0!r}, lat0={self._lat0!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LocalFrame) and (self._lon0, self._lat0) == (
            other._lon0,
            other._lat0,
        )

    def __hash__(self) -> int:
        return hash(("LocalFrame", self._lon0, self._lat0))

    @classmethod
    def centred_on(cls, lon: Any, lat: Any) -> LocalFrame:
        """The frame centred on the middle of a scene's longitudes and latitudes (degrees):
        the centre of their bounding box (longitudes unwrapped across the antimeridian).

        Raises:
            ValueError: empty, non-finite or out-of-range coordinates.
        """
        lon, lat = _check_lonlat(lon, lat, "scene")
        if lon.size == 0:
            raise ValueError("scene longitude/latitude are empty")
        lon = np.mod(lon.ravel() + 180.0, 360.0) - 180.0
        if lon.max() - lon.min() > 180.0:  # spans the antimeridian
            lon = np.mod(lon, 360.0)
        lon0 = 0.5 * (lon.min() + lon.max())
        lon0 = float(np.mod(lon0 + 180.0, 360.0) - 180.0)
        return cls(lon0, 0.5 * float(lat.min() + lat.max()))

    # -- projection -------------------------------------------------------------------

    @property
    def crs(self):
        """The ``pyproj.CRS`` of the frame (AEQD, WGS 84, metres)."""
        return _transformers(self._lon0, self._lat0)[0]

    def to_xy(self, lon: Any, lat: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` in m of longitudes/latitudes in degrees (any matching shapes).

        Raises:
            ValueError: non-finite values or a latitude outside ``[-90, 90]``: a
                coordinate in metres given as degrees is refused here.
        """
        lon, lat = _check_lonlat(lon, lat)
        x, y = _transformers(self._lon0, self._lat0)[1].transform(lon, lat)
        return np.asarray(x, np.float64), np.asarray(y, np.float64)

    def to_lonlat(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(lon, lat)`` in degrees (longitude in ``[-180, 180]``) of ``(x, y)`` in m.

        Raises:
            ValueError: non-finite ``x`` or ``y``.
        """
        x = np.asarray(x, np.float64)
        y = np.asarray(y, np.float64)
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
            raise ValueError("`x`/`y` must be finite (m)")
        lon, lat = _transformers(self._lon0, self._lat0)[2].transform(x, y)
        return np.asarray(lon, np.float64), np.asarray(lat, np.float64)

    def lonlat_grid(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(lon, lat)`` ``(ny, nx)`` of the pixel centres of a grid with 1-D ``x`` ``(nx,)``
        and ``y`` ``(ny,)`` (m)."""
        xx, yy = np.meshgrid(np.asarray(x, np.float64), np.asarray(y, np.float64))
        return self.to_lonlat(xx, yy)

    # -- grid north -------------------------------------------------------------------

    def north_bearing(self, lon: Any, lat: Any) -> np.ndarray:
        """Grid bearing of true north at ``(lon, lat)``, degrees clockwise from grid north.

        Zero at the centre and along its meridian; east of the centre in the northern
        hemisphere the meridians lean towards the pole (negative bearing). Computed from
        the projection by a central difference of 1e-5 degree of latitude.
        """
        lon, lat = _check_lonlat(lon, lat)
        d = 1e-5
        lat_hi = np.minimum(lat + d, 90.0)
        lat_lo = np.maximum(lat - d, -90.0)
        x1, y1 = self.to_xy(lon, lat_hi)
        x0, y0 = self.to_xy(lon, lat_lo)
        return np.rad2deg(np.arctan2(x1 - x0, y1 - y0))

    def wind_to_grid(
        self, u_east: Any, v_north: Any, lon: Any, lat: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rotate an east/north wind (m/s) at ``(lon, lat)`` into grid ``(u_x, v_y)`` (m/s).

        With ``beta`` the grid bearing of true north (:meth:`north_bearing`), true north
        is the grid vector ``(sin beta, cos beta)`` and true east ``(cos beta, -sin beta)``;
        the speed is unchanged.
        """
        beta = np.deg2rad(self.north_bearing(lon, lat))
        u = np.asarray(u_east, np.float64)
        v = np.asarray(v_north, np.float64)
        return u * np.cos(beta) + v * np.sin(beta), -u * np.sin(beta) + v * np.cos(beta)

    # -- CF ---------------------------------------------------------------------------

    def cf_attrs(self) -> dict[str, Any]:
        """The CF grid-mapping attributes of the frame (``grid_mapping_name =
        "azimuthal_equidistant"``, its origin, the WGS 84 ellipsoid and ``crs_wkt``)."""
        attrs = dict(self.crs.to_cf())
        attrs.setdefault("grid_mapping_name", "azimuthal_equidistant")
        attrs["longitude_of_projection_origin"] = self._lon0
        attrs["latitude_of_projection_origin"] = self._lat0
        attrs.setdefault("crs_wkt", self.crs.to_wkt())
        return attrs

    @classmethod
    def from_cf(cls, attrs: Any) -> LocalFrame:
        """The frame of a CF ``grid_mapping`` variable's attributes (as :meth:`cf_attrs`).

        Raises:
            ValueError: a grid mapping other than ``azimuthal_equidistant`` or missing
                origin attributes.
        """
        name = attrs.get("grid_mapping_name")
        if name != "azimuthal_equidistant":
            raise ValueError(
                f"grid mapping {name!r} is not a plumax local frame "
                "(expected grid_mapping_name='azimuthal_equidistant')"
            )
        try:
            return cls(
                float(attrs["longitude_of_projection_origin"]),
                float(attrs["latitude_of_projection_origin"]),
            )
        except KeyError as err:
            raise ValueError(f"grid mapping attributes lack {err.args[0]!r}") from None


def seconds_since_epoch(t: Any) -> np.ndarray:
    """Seconds since 1970-01-01T00:00:00 UTC of a time: ``datetime64`` (any unit), an ISO
    8601 string (a trailing ``Z`` allowed), a ``datetime``, or a number already in seconds.

    Raises:
        ValueError: a string that is not a date, or NaT.
    """
    if isinstance(t, str):
        s = t.strip()
        if s.endswith("Z"):
            s = s[:-1]
        try:
            t = np.datetime64(s, "ns")
        except ValueError:
            raise ValueError(f"time {t!r} is not an ISO 8601 date") from None
    arr = np.asarray(t)
    if arr.dtype.kind == "O":
        arr = arr.astype("datetime64[ns]")
    if arr.dtype.kind == "M":
        if np.any(np.isnat(arr)):
            raise ValueError("time holds NaT (not a time)")
        return (arr.astype("datetime64[ns]") - _EPOCH) / np.timedelta64(1, "ns") * 1e-9
    return arr.astype(np.float64)


def _as_datetime64(seconds: Any) -> np.ndarray:
    s = np.asarray(seconds, np.float64)
    return _EPOCH + np.round(s * 1e9).astype("int64").astype("timedelta64[ns]")


def add_geolocation(ds, frame: LocalFrame, *, time: Any = None, x: str = "x", y: str = "y"):
    """A copy of ``ds`` geolocated by ``frame`` (CF-1.8).

    ``ds`` has 1-D coordinates ``x`` and ``y`` in m (the frame's). Added: the scalar
    variable ``crs`` carrying :meth:`LocalFrame.cf_attrs`; 2-D coordinates ``lat``/``lon``
    ``(y, x)`` in degrees; ``standard_name = projection_x_coordinate`` /
    ``projection_y_coordinate`` on ``x``/``y``; ``grid_mapping = "crs"`` on every data
    variable that has both dims; and, when ``time`` is given (seconds UTC, datetime64 or
    ISO string), a scalar ``time`` coordinate.

    Raises:
        ValueError: ``x``/``y`` missing or not in metres
            (:func:`plumax_core.validation.check_length_units`: degrees are refused,
            naming the coordinate; no units attribute is read as metres).
    """
    for c in (x, y):
        if c not in ds.coords:
            raise ValueError(f"dataset has no coordinate {c!r} (m) to geolocate")
        check_length_units(f"coordinate {c}", ds[c].attrs.get("units"), default="m")
    out = ds.copy()
    lon, lat = frame.lonlat_grid(out[x].values, out[y].values)
    out[GRID_MAPPING_NAME] = ((), np.int32(0), frame.cf_attrs())
    out = out.assign_coords(
        lat=((y, x), lat, {"units": "degrees_north", "standard_name": "latitude"}),
        lon=((y, x), lon, {"units": "degrees_east", "standard_name": "longitude"}),
    )
    out[x].attrs.update(units="m", standard_name="projection_x_coordinate", axis="X")
    out[y].attrs.update(units="m", standard_name="projection_y_coordinate", axis="Y")
    for var in out.data_vars.values():
        if x in var.dims and y in var.dims:
            var.attrs["grid_mapping"] = GRID_MAPPING_NAME
    if time is not None:
        t = _as_datetime64(seconds_since_epoch(time))
        out = out.assign_coords(time=((), t.reshape(()), {"standard_name": "time"}))
    out.attrs["Conventions"] = "CF-1.8"
    return out


def frame_from_dataset(ds) -> LocalFrame | None:
    """The :class:`LocalFrame` of a dataset written by :func:`add_geolocation`, or None
    when it carries no ``crs`` grid mapping.

    Raises:
        ValueError: a ``crs`` variable that is not a plumax local frame.
    """
    if GRID_MAPPING_NAME not in ds.variables:
        return None
    return LocalFrame.from_cf(ds[GRID_MAPPING_NAME].attrs)
