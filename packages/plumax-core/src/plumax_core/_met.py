"""Meteorology: the ``MetField`` every forward model reads.

Axis order is ``(time, z, y, x)``. Every field is either a scalar (0-d: the same
everywhere and always) or a 4-D array broadcastable to ``(nt, nz, ny, nx)``, size-1
axes allowed: a time series of wind is ``(nt, 1, 1, 1)``. Requiring 4-D (rather than
NumPy's trailing-axis broadcasting) removes the classic trap of a ``(nt,)`` series
silently broadcasting along ``x``.

Wind direction is meteorological: the direction the wind blows *from*, in degrees
clockwise from north, so ``u = -s sin(d)``, ``v = -s cos(d)``.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from ._errors import error_if
from ._validation import (
    as_array,
    as_float_array,
    check_finite,
    check_length_units,
    check_not_nan,
    check_positive,
    check_wind_speed,
    is_concrete,
)

#: Pasquill-Gifford class letters by index.
STABILITY_CLASSES: tuple[str, ...] = ("A", "B", "C", "D", "E", "F")

# name -> (units, long_name, CF standard_name or None)
_FIELD_ATTRS: dict[str, tuple[str, str, str | None]] = {
    "u": ("m s-1", "eastward wind", "eastward_wind"),
    "v": ("m s-1", "northward wind", "northward_wind"),
    "w": ("m s-1", "upward wind", "upward_air_velocity"),
    "temperature": ("K", "air temperature", "air_temperature"),
    "pressure": ("Pa", "air pressure", "air_pressure"),
    "pblh": ("m", "boundary-layer height", "atmosphere_boundary_layer_thickness"),
    "stability_class": (
        "1",
        "Pasquill stability class index (0=A very unstable ... 5=F moderately stable)",
        None,
    ),
    "obukhov_length": ("m", "Obukhov length", None),
    "z0": ("m", "surface roughness length", "surface_roughness_length"),
}
_DIMS = ("time", "z", "y", "x")


#: Units of the attributes written by :meth:`MetField.to_attrs` (CF/UDUNITS spelling).
MET_ATTR_UNITS: dict[str, str] = {
    "wind_speed": "m s-1",
    "wind_direction": "degree",
    "stability_class": "1",
    "pblh": "m",
    "temperature": "K",
    "pressure": "Pa",
}


def stability_index(stability: int | str | Any) -> int | Int[Array, ""]:
    """Pasquill class as an index 0-5; accepts ``0..5`` or ``"A".."F"`` (any case).

    A concrete value (a Python or NumPy integer, an integer-valued float, a 0-d array)
    gives a Python ``int``. A traced integer scalar (inside ``jax.jit`` / ``vmap``) is
    returned as an ``int32`` array whose range is checked at run time.

    Raises:
        ValueError: naming ``stability``: an unknown letter, a non-integer or
            out-of-range index, or a traced non-integer (float) value.
    """
    if isinstance(stability, str):
        key = stability.strip().upper()
        if key not in STABILITY_CLASSES:
            raise ValueError(
                f"`stability` must be one of {STABILITY_CLASSES} or 0-5, got {stability!r}"
            )
        return STABILITY_CLASSES.index(key)
    if isinstance(stability, jax.core.Tracer):
        return _traced_classes("stability", stability, scalar=True)
    if isinstance(stability, bool | np.bool_):
        raise ValueError(f"`stability` must be an integer class 0-5, got {stability!r}")
    try:
        value = float(stability)
    except (TypeError, ValueError):
        raise ValueError(
            f"`stability` must be a class letter 'A'-'F' or an integer index 0-5, got {stability!r}"
        ) from None
    if not value.is_integer():
        raise ValueError(f"`stability` must be an integer class 0-5, got {stability!r}")
    idx = int(value)
    if not 0 <= idx <= 5:
        raise ValueError(f"`stability` must be in 0-5 (A-F), got {stability!r}")
    return idx


def _traced_classes(name: str, x: Any, *, scalar: bool = False) -> Int[Array, "..."]:
    """A traced class-index array as int32, range-checked at run time."""
    if not jnp.issubdtype(x.dtype, jnp.integer):
        raise ValueError(
            f"`{name}` must be an integer class index 0-5 (A-F); got a traced {x.dtype} "
            "value. Inside jit pass an integer array (e.g. jnp.int32(3) or "
            "x.astype(jnp.int32)) or a class letter."
        )
    if scalar and x.ndim != 0:
        raise ValueError(f"`{name}` must be a single class, got a traced array of shape {x.shape}")
    x = x.astype(jnp.int32)
    return error_if(x, (x < 0) | (x > 5), f"`{name}` must be in 0-5 (A-F)")


def _class_field(name: str, x: Any) -> Int[Array, "..."] | None:
    """A stability-class field as int32: integer-valued, checked 0-5 (now or at run time)."""
    if x is None:
        return None
    if isinstance(x, jax.core.Tracer):
        return _traced_classes(name, x)
    arr = np.asarray(x)
    if arr.dtype.kind == "f":
        whole = np.isfinite(arr) & (arr == np.round(arr))
        if not np.all(whole):
            bad = float(arr[~whole].ravel()[0])
            raise ValueError(f"`{name}` must hold integer class indices 0-5 (A-F); got {bad}")
    elif arr.dtype.kind not in "iu":
        raise ValueError(
            f"`{name}` must hold integer class indices 0-5 (A-F) (letters via "
            f"stability_index), got dtype {arr.dtype}"
        )
    return jnp.asarray(arr.astype(np.int32))


def wind_components(speed, direction_deg):
    """(u, v) in m/s from speed (m/s) and meteorological direction (degrees, from)."""
    rad = jnp.deg2rad(direction_deg)
    return -speed * jnp.sin(rad), -speed * jnp.cos(rad)


def _field(name: str, x: Any) -> Array | None:
    if x is None:
        return None
    arr = as_array(name, x)
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        arr = as_float_array(name, arr)
    return arr


class MetField(eqx.Module):
    """Meteorological state on a ``(time, z, y, x)`` grid (scalars broadcast).

    Attributes:
        u, v: eastward / northward wind, m/s (finite; the components of any wind, calm
            included: each model checks the speed it uses against the wind-speed rule).
        w: upward wind, m/s (optional).
        temperature: air temperature, K.
        pressure: air pressure, Pa.
        pblh: boundary-layer (mixing) height, m.
        stability_class: Pasquill class index 0-5 (A-F), integer (optional): a letter,
            integers or integer-valued floats; a traced integer array is range-checked
            at run time.
        obukhov_length: Obukhov length, m (optional; ``inf`` = neutral).
        z0: surface roughness length, m.
        time: ``(nt,)`` seconds UTC (since 1970-01-01), strictly increasing.
        z, y, x: optional ``(n,)`` coordinates in m.
        source: where the met came from (recorded in posterior provenance).
    """

    u: Float[Array, "..."]
    v: Float[Array, "..."]
    w: Float[Array, "..."] | None
    temperature: Float[Array, "..."]
    pressure: Float[Array, "..."]
    pblh: Float[Array, "..."]
    stability_class: Int[Array, "..."] | None
    obukhov_length: Float[Array, "..."] | None
    z0: Float[Array, "..."]
    time: Float[Array, " nt"]
    z: Float[Array, " nz"] | None
    y: Float[Array, " ny"] | None
    x: Float[Array, " nx"] | None
    source: str = eqx.field(static=True)

    def __init__(
        self,
        u,
        v,
        *,
        w=None,
        temperature=288.15,
        pressure=101325.0,
        pblh=1000.0,
        stability_class=None,
        obukhov_length=None,
        z0=0.1,
        time=0.0,
        z=None,
        y=None,
        x=None,
        source: str = "user",
    ):
        self.u = _field("u", u)
        self.v = _field("v", v)
        self.w = _field("w", w)
        self.temperature = _field("temperature", temperature)
        self.pressure = _field("pressure", pressure)
        self.pblh = _field("pblh", pblh)
        if isinstance(stability_class, str):
            stability_class = stability_index(stability_class)
        self.stability_class = _class_field("stability_class", stability_class)
        self.obukhov_length = _field("obukhov_length", obukhov_length)
        self.z0 = _field("z0", z0)
        self.time = jnp.atleast_1d(_field("time", time))
        self.z = _field("z", z)
        self.y = _field("y", y)
        self.x = _field("x", x)
        self.source = str(source)

    def __check_init__(self):
        for name in ("u", "v", "w"):
            check_finite(name, getattr(self, name))
        check_positive("temperature", self.temperature, units="K")
        check_positive("pressure", self.pressure, units="Pa")
        check_positive("pblh", self.pblh, units="m")
        check_positive("z0", self.z0, units="m")
        check_not_nan("obukhov_length", self.obukhov_length)
        if self.obukhov_length is not None and is_concrete(self.obukhov_length):
            if np.any(np.asarray(self.obukhov_length) == 0):
                raise ValueError("`obukhov_length` must be non-zero (use inf for neutral)")
        sc = self.stability_class
        if sc is not None and is_concrete(sc):
            arr = np.asarray(sc)
            if np.any((arr < 0) | (arr > 5)):
                raise ValueError(
                    f"`stability_class` must be in 0-5 (A-F); got {arr[(arr < 0) | (arr > 5)]}"
                )
        check_finite("time", self.time)
        if self.time.ndim != 1:
            raise ValueError(f"`time` must be 1-D, got shape {self.time.shape}")
        if is_concrete(self.time) and np.any(np.diff(np.asarray(self.time)) <= 0):
            raise ValueError("`time` must be strictly increasing")
        for name in ("z", "y", "x"):
            c = getattr(self, name)
            if c is not None:
                if c.ndim != 1:
                    raise ValueError(f"`{name}` coordinate must be 1-D, got shape {c.shape}")
                check_finite(name, c)
        # Shapes: each field scalar or 4-D, broadcastable to (nt, nz, ny, nx).
        grid = self.grid_shape
        for name in _FIELD_ATTRS:
            val = getattr(self, name)
            if val is None or val.ndim == 0:
                continue
            if val.ndim != 4:
                raise ValueError(
                    f"`{name}` must be a scalar or 4-D (time, z, y, x) array, got shape "
                    f"{val.shape}; reshape a time series to (nt, 1, 1, 1)"
                )
            for ax, (n, g) in enumerate(zip(val.shape, grid, strict=True)):
                if n != 1 and g != 1 and n != g:
                    raise ValueError(
                        f"`{name}` has size {n} along {_DIMS[ax]!r} but the grid has {g}"
                    )
        if self.u.shape != () or self.v.shape != ():
            try:
                jnp.broadcast_shapes(self.u.shape, self.v.shape)
            except ValueError as err:
                raise ValueError(
                    f"`u` {self.u.shape} and `v` {self.v.shape} do not broadcast"
                ) from err

    # -- constructors ------------------------------------------------------------

    @classmethod
    def uniform(
        cls,
        speed: float,
        direction: float,
        *,
        stability: int | str | None = "D",
        time: float = 0.0,
        **kwargs: Any,
    ) -> MetField:
        """Spatially uniform, steady met from wind speed (m/s) and direction (deg, from).

        ``speed`` follows the one wind-speed rule,
        :func:`plumax_core.validation.check_wind_speed`: finite and in
        ``[MIN_WIND_SPEED, MAX_WIND_SPEED]`` = [0.5, 120] m/s (checked when concrete;
        a traced speed is checked by the model that uses it). Light or calm winds, for a
        model documented to be valid in them, are given as components: ``MetField(u, v)``.
        ``stability`` may be a letter, an index 0-5 or a traced integer scalar.

        Raises:
            ValueError: for a ``speed`` outside the rule, non-finite ``direction``, or
                an unknown ``stability`` class.
        """
        check_wind_speed("speed", speed)
        check_finite("direction", direction)
        u, v = wind_components(jnp.asarray(speed, dtype=float), jnp.asarray(direction, float))
        sc = None if stability is None else stability_index(stability)
        return cls(u, v, stability_class=sc, time=time, **kwargs)

    @classmethod
    def from_timeseries(
        cls,
        time,
        speed,
        direction,
        *,
        stability=None,
        pblh=None,
        **kwargs: Any,
    ) -> MetField:
        """Spatially uniform met varying in time: each series has shape ``(nt,)``.

        ``speed`` (m/s) follows the one wind-speed rule (see :meth:`uniform`).
        ``stability`` may be a single class or a per-time sequence of classes (letters
        or indices, or an integer array, traced or not).
        """
        time = as_float_array("time", time)
        speed = as_float_array("speed", speed)
        direction = as_float_array("direction", direction)
        nt = time.shape[0]
        for name, arr in (("speed", speed), ("direction", direction)):
            if arr.shape != (nt,):
                raise ValueError(f"`{name}` must have shape (nt,)=({nt},), got {arr.shape}")
        check_wind_speed("speed", speed)
        u, v = wind_components(speed, direction)
        r4 = lambda a: None if a is None else jnp.reshape(a, (-1, 1, 1, 1))
        if stability is not None:
            if isinstance(stability, str | int) or np.ndim(stability) == 0:
                stability = stability_index(stability)
            elif isinstance(stability, jax.Array | np.ndarray):
                stability = r4(_class_field("stability", stability))
            else:
                stability = r4(jnp.asarray([stability_index(s) for s in stability]))
        if pblh is not None:
            pblh = as_float_array("pblh", pblh)
            kwargs["pblh"] = r4(pblh) if pblh.ndim == 1 else pblh
        return cls(r4(u), r4(v), time=time, stability_class=stability, **kwargs)

    @classmethod
    def from_era5(
        cls,
        single_levels: Any,
        pressure_levels: Any = None,
        *,
        lon: float,
        lat: float,
        time: Any,
        frame: Any = None,
        height: float = 10.0,
        x: Any = None,
        y: Any = None,
        stability: int | str | None = None,
        z0: float | None = None,
        number: int | None = None,
    ) -> MetField:
        """Steady met at a scene from ERA5 NetCDF files (new or old CDS layout).

        Reads the ERA5 short names and checks their units (``u10``, ``v10``, ``t2m``,
        ``sp``, ``blh``; optional ``zust``, ``ishf``, ``fsr``, ``tcc``, ``ssrd``; on
        pressure levels ``u``, ``v``, ``t``), interpolates bilinearly in lon/lat and
        linearly in time (no extrapolation), takes the wind to ``height`` with a
        Monin-Obukhov (Businger-Dyer) or neutral log profile (or from pressure levels
        above 100 m), and derives the Pasquill class (Golder 1972 from ``zust``/``ishf``,
        else SRDT/Turner from ``ssrd``/``tcc``). Layout, formulas and sources:
        :mod:`plumax_core._met_era5` and :mod:`plumax_core._met_profile`.

        Args:
            single_levels: path or ``xarray.Dataset`` of ERA5 single-level data.
            pressure_levels: optional path or dataset of ERA5 pressure-level data.
            lon, lat: scene point, degrees (longitude in -180..360).
            time: seconds UTC, ``datetime64`` or ISO 8601 string.
            frame: the :class:`plumax_core.LocalFrame` of ``x``/``y`` (default centred
                on ``(lon, lat)``); winds are rotated to its grid.
            height: height of the wind above ground, m.
            x, y: optional 1-D grid coordinates in m (``(nx,)``, ``(ny,)``): fields
                ``(1, 1, ny, nx)``; without them every field is a scalar.
            stability: Pasquill class ('A'-'F' or 0-5) overriding the derived one.
            z0: roughness length, m; default ERA5 ``fsr`` if present, else 0.1 m.
            number: ensemble member to read from a file with several.

        Raises:
            ValueError: a missing variable, wrong units, a point or time outside the
                file, degrees where metres are expected, or no way to the stability
                class (naming the variables and the ``stability=`` override).
        """
        from ._met_era5 import read_era5

        if stability is not None:
            stability = stability_index(stability)
        return cls(
            **read_era5(
                single_levels,
                pressure_levels,
                lon=lon,
                lat=lat,
                time=time,
                frame=frame,
                height=height,
                x=x,
                y=y,
                stability=stability,
                z0=z0,
                number=number,
            )
        )

    @classmethod
    def from_wrf(
        cls,
        wrfout: Any,
        *,
        lon: float,
        lat: float,
        time: Any,
        frame: Any = None,
        height: float = 10.0,
        x: Any = None,
        y: Any = None,
        stability: int | str | None = None,
        z0: float | None = None,
    ) -> MetField:
        """Steady met at a scene from a WRF ``wrfout`` file.

        Same contract as :meth:`from_era5`. Grid-relative winds are de-staggered and
        turned earth-relative with ``COSALPHA``/``SINALPHA``; the WRF map projection
        (``MAP_PROJ`` 1, 2 or 3) is rebuilt with pyproj and the scene interpolated
        bilinearly in grid-index space and linearly in time; the wind at ``height``
        comes from ``U10``/``V10`` and the surface-layer profile (Obukhov length from
        ``UST``/``HFX``, roughness ``ZNT``) up to the lowest model level and from the
        3-D winds in height above ground (``(PH + PHB)/g - HGT``) above it. Layout,
        formulas and sources: :mod:`plumax_core._met_wrf`.

        Args:
            wrfout: path or ``xarray.Dataset`` of a wrfout file.
            lon, lat, time, frame, height, x, y, stability: as :meth:`from_era5`.
            z0: roughness length, m; default WRF ``ZNT`` if present, else 0.1 m.

        Raises:
            ValueError: as :meth:`from_era5`, and for an unsupported ``MAP_PROJ`` or
                projection attributes inconsistent with ``XLAT``/``XLONG``.
        """
        from ._met_wrf import read_wrf

        if stability is not None:
            stability = stability_index(stability)
        return cls(
            **read_wrf(
                wrfout,
                lon=lon,
                lat=lat,
                time=time,
                frame=frame,
                height=height,
                x=x,
                y=y,
                stability=stability,
                z0=z0,
            )
        )

    # -- derived -----------------------------------------------------------------

    @property
    def grid_shape(self) -> tuple[int, int, int, int]:
        """``(nt, nz, ny, nx)`` implied by coordinates and field shapes (1 if absent)."""
        sizes = [self.time.shape[0], 1, 1, 1]
        for ax, c in ((1, self.z), (2, self.y), (3, self.x)):
            if c is not None:
                sizes[ax] = c.shape[0]
        for name in _FIELD_ATTRS:
            val = getattr(self, name)
            if val is not None and val.ndim == 4:
                for ax in range(4):
                    if sizes[ax] == 1:
                        sizes[ax] = val.shape[ax]
        return tuple(sizes)  # type: ignore[return-value]

    @property
    def wind_speed(self) -> Float[Array, "..."]:
        """Horizontal wind speed, m/s."""
        return jnp.hypot(self.u, self.v)

    @property
    def wind_direction(self) -> Float[Array, "..."]:
        """Meteorological wind direction (from), degrees in [0, 360)."""
        return jnp.mod(270.0 - jnp.rad2deg(jnp.arctan2(self.v, self.u)), 360.0)

    def at(self, t: float | Float[Array, ""]) -> MetField:
        """Met at time ``t`` (s UTC), linearly interpolated between samples.

        Continuous fields are interpolated linearly; ``stability_class`` takes the value
        of the last sample at or before ``t``. The result has one time sample. Steady
        met (no field varies in time) is valid at any ``t``; otherwise a query outside
        ``[time[0], time[-1]]`` raises (it never extrapolates).
        """
        t = jnp.asarray(t, dtype=self.time.dtype)
        nt = self.time.shape[0]
        fields = [getattr(self, n) for n in _FIELD_ATTRS]
        varies = any(f is not None and f.ndim == 4 and f.shape[0] > 1 for f in fields)
        if nt == 1 or not varies:
            return eqx.tree_at(lambda m: m.time, self, jnp.reshape(t, (1,)))
        t0, t1 = self.time[0], self.time[-1]
        if is_concrete(t) and is_concrete(self.time):
            if not (float(t0) <= float(t) <= float(t1)):
                raise ValueError(
                    f"`t`={float(t)} s is outside the met time range [{float(t0)}, {float(t1)}]"
                )
        else:
            t = error_if(t, (t < t0) | (t > t1), "`t` is outside the met time range")
        i = jnp.clip(jnp.searchsorted(self.time, t, side="right") - 1, 0, nt - 2)
        frac = (t - self.time[i]) / (self.time[i + 1] - self.time[i])

        def interp(name: str, val):
            if val is None or val.ndim == 0 or val.shape[0] == 1:
                return val
            if name == "stability_class":
                j = jnp.where(frac >= 1.0, i + 1, i)
                return jax.lax.dynamic_index_in_dim(val, j, axis=0, keepdims=True)
            a = jax.lax.dynamic_index_in_dim(val, i, axis=0, keepdims=True)
            b = jax.lax.dynamic_index_in_dim(val, i + 1, axis=0, keepdims=True)
            return a + frac * (b - a)

        new = {n: interp(n, getattr(self, n)) for n in _FIELD_ATTRS}
        out = self
        for n, val in new.items():
            if val is not None:
                out = eqx.tree_at(lambda m, n=n: getattr(m, n), out, val)
        return eqx.tree_at(lambda m: m.time, out, jnp.reshape(t, (1,)))

    # -- xarray ------------------------------------------------------------------

    def to_xarray(self):
        """An ``xarray.Dataset`` with CF attributes; inverse of :meth:`from_xarray`."""
        import xarray as xr

        grid = self.grid_shape
        data_vars = {}
        for name, (units, long_name, std) in _FIELD_ATTRS.items():
            val = getattr(self, name)
            if val is None:
                continue
            attrs = {"units": units, "long_name": long_name}
            if std:
                attrs["standard_name"] = std
            arr = np.asarray(val)
            if arr.ndim == 0:
                dims: tuple[str, ...] = ()
            else:
                # a size-1 (broadcast) axis along a longer grid axis is dropped;
                # from_xarray re-inserts it, so shapes round-trip exactly
                drop = tuple(ax for ax in range(4) if arr.shape[ax] == 1 and grid[ax] > 1)
                arr = np.squeeze(arr, axis=drop) if drop else arr
                dims = tuple(d for ax, d in enumerate(_DIMS) if ax not in drop)
            data_vars[name] = xr.Variable(dims, arr, attrs=attrs)
        coords = {
            "time": xr.Variable(
                ("time",),
                np.asarray(self.time),
                attrs={"units": "s", "long_name": "time since 1970-01-01T00:00:00Z"},
            )
        }
        for name in ("z", "y", "x"):
            c = getattr(self, name)
            if c is not None:
                coords[name] = xr.Variable(
                    (name,), np.asarray(c), attrs={"units": "m", "long_name": f"{name} coordinate"}
                )
        return xr.Dataset(
            data_vars, coords=coords, attrs={"Conventions": "CF-1.8", "source": self.source}
        )

    def to_attrs(self, prefix: str = "met_") -> dict[str, float | str]:
        """A steady, spatially uniform met as flat attributes (e.g. NetCDF globals).

        The inverse of :meth:`from_attrs`: ``{prefix}wind_speed`` (m s-1),
        ``{prefix}wind_direction`` (degree, the direction the wind blows from),
        ``{prefix}stability_class`` (A-F), ``{prefix}pblh`` (m), ``{prefix}temperature``
        (K) and ``{prefix}pressure`` (Pa); the units are :data:`MET_ATTR_UNITS`. A file
        that holds one scene under one met (a column image, a radiance overpass) carries
        its met this way; a met that varies in time or space is a dataset
        (:meth:`to_xarray`).

        Raises:
            ValueError: the met varies (a field with more than one distinct value) or
                has no stability class.
        """
        if self.stability_class is None:
            raise ValueError("to_attrs needs a met with a stability class (A-F)")
        out: dict[str, float | str] = {}
        values = {
            "wind_speed": self.wind_speed,
            "wind_direction": self.wind_direction,
            "stability_class": self.stability_class,
            "pblh": self.pblh,
            "temperature": self.temperature,
            "pressure": self.pressure,
        }
        for name, val in values.items():
            arr = np.unique(np.asarray(val))
            if arr.size != 1:
                raise ValueError(
                    f"to_attrs needs a steady uniform met; {name} takes {arr.size} values"
                )
            v = arr.item()
            if name == "stability_class":
                v = STABILITY_CLASSES[int(v)]
            elif name in ("wind_speed", "wind_direction"):
                # speed and direction come back from (u, v) with a rounding error of an
                # ulp: 0.5 m/s would be written as 0.49999999999999994 and refused by
                # the wind-speed rule on reading. 12 significant digits drop that error.
                v = float(f"{v:.12g}")
            out[prefix + name] = v
        return out

    @classmethod
    def from_attrs(
        cls, attrs: Any, prefix: str = "met_", *, source: str = "attributes"
    ) -> MetField:
        """The steady uniform met written by :meth:`to_attrs`.

        ``attrs`` is any mapping (``xarray.Dataset.attrs``); values may be numbers or
        numeric strings. The wind speed follows the one wind-speed rule
        (:func:`plumax_core.validation.check_wind_speed`).

        Raises:
            ValueError: a missing attribute (all are named), a value that is not a number,
                a wind speed outside the rule or an unknown stability class, naming the
                attribute.
        """
        names = [prefix + k for k in MET_ATTR_UNITS]
        missing = [k for k in names if k not in attrs]
        if missing:
            raise ValueError(f"missing met attribute(s) {missing}")

        def number(key: str) -> float:
            try:
                value = float(attrs[key])
            except (TypeError, ValueError):
                raise ValueError(
                    f"attribute {key} must be a number ({MET_ATTR_UNITS[key[len(prefix) :]]}), "
                    f"got {attrs[key]!r}"
                ) from None
            check_finite(key, value)
            return value

        speed = number(prefix + "wind_speed")
        check_wind_speed(prefix + "wind_speed", speed)
        stability = attrs[prefix + "stability_class"]
        if str(stability) not in STABILITY_CLASSES:
            raise ValueError(
                f"attribute {prefix}stability_class must be one of {STABILITY_CLASSES}, "
                f"got {stability!r}"
            )
        return cls.uniform(
            speed,
            number(prefix + "wind_direction"),
            stability=str(stability),
            pblh=number(prefix + "pblh"),
            temperature=number(prefix + "temperature"),
            pressure=number(prefix + "pressure"),
            source=source,
        )

    @classmethod
    def from_xarray(cls, ds) -> MetField:
        """Build from an ``xarray.Dataset`` with variables named as the attributes.

        Variables may use any subset of the dims ``(time, z, y, x)`` in any order;
        missing dims are inserted with size 1. A ``datetime64`` time coordinate is
        converted to seconds since 1970-01-01 UTC. The ``x``/``y``/``z`` coordinates
        must be in metres (:func:`plumax_core.validation.check_length_units`; a
        coordinate without a units attribute is read as metres, one in degrees is
        refused: longitude/latitude go through :class:`plumax_core.LocalFrame` or
        :meth:`from_era5`).
        """
        import xarray as xr

        if not isinstance(ds, xr.Dataset):
            raise TypeError(f"`ds` must be an xarray.Dataset, got {type(ds).__name__}")
        for req in ("u", "v"):
            if req not in ds:
                raise ValueError(f"`ds` has no variable {req!r} (eastward/northward wind, m/s)")
        kwargs: dict[str, Any] = {}
        for name in _FIELD_ATTRS:
            if name not in ds:
                continue
            var = ds[name]
            unknown = [d for d in var.dims if d not in _DIMS]
            if unknown:
                raise ValueError(f"`ds[{name!r}]` has unknown dims {unknown}; expected {_DIMS}")
            expected_units = _FIELD_ATTRS[name][0]
            units = var.attrs.get("units")
            if units is not None and units != expected_units:
                raise ValueError(f"`ds[{name!r}]` has units {units!r}; expected {expected_units!r}")
            if var.ndim == 0:
                kwargs[name] = var.values
            else:
                for d in _DIMS:
                    if d not in var.dims:
                        var = var.expand_dims(d)
                kwargs[name] = var.transpose(*_DIMS).values
        time = ds["time"].values if "time" in ds.coords or "time" in ds else np.zeros(1)
        if np.issubdtype(np.asarray(time).dtype, np.datetime64):
            time = (
                (np.asarray(time) - np.datetime64("1970-01-01T00:00:00"))
                / np.timedelta64(1, "ns")
                * 1e-9
            )
        for c in ("z", "y", "x"):
            if c in ds.coords:
                check_length_units(f"ds[{c!r}]", ds[c].attrs.get("units"), default="m")
                kwargs[c] = ds[c].values
        return cls(
            kwargs.pop("u"),
            kwargs.pop("v"),
            time=time,
            source=str(ds.attrs.get("source", "xarray")),
            **kwargs,
        )
