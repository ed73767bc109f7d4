r"""ERA5 reader: :meth:`plumax_core.MetField.from_era5`.

**Layout read** (NetCDF as the Copernicus Climate Data Store writes it since its
September 2024 modernisation; ECMWF Confluence, "GRIB to netCDF conversion on new CDS
and ADS systems", https://confluence.ecmwf.int/display/CKB/GRIB+to+netCDF+conversion+on+new+CDS+and+ADS+systems):
dims ``valid_time``, ``latitude`` (north to south, descending), ``longitude`` and, for
pressure levels, ``pressure_level`` (hPa); a scalar or 1-D ``number`` (ensemble member)
coordinate; ``expver`` as a coordinate *along* ``valid_time`` (PyPSA/atlite PR #391,
"expver is now a coordinate mapping on the time dim instead of being a separate dim").
The files of the old CDS are read too: time dim ``time``, pressure dim ``level``
(``"millibars"``) and ``expver`` as a *dimension* when a request mixed final ERA5
(``expver`` 1) and preliminary ERA5T (``expver`` 5) data, each filled where the other is
missing (ECMWF forum, "ERA5 CDS requests which return a mixture of ERA5 and ERA5T
data"); packed ``short`` variables with ``scale_factor``/``add_offset`` (Unidata's
ECMWF_ERA-40_subset.cdl shows the same packing with ``units = "m"``, ``"(0 - 1)"``,
``"Pa"``).

**Variables** (ERA5 short names, units as ECMWF writes them; both ``**-1`` and ``-1``
exponent spellings accepted): single levels ``u10``, ``v10`` (m s-1), ``t2m`` (K),
``sp`` (Pa), ``blh`` (m), optional ``zust`` (friction velocity, m s-1), ``ishf``
(instantaneous surface sensible heat flux, W m-2, *positive downwards*: ECMWF Data FAQ
"The ECMWF convention for all flux fields is that downward is positive"), ``fsr``
(forecast surface roughness, m), ``tcc`` (total cloud cover, ``"(0 - 1)"``) and ``ssrd``
(surface solar radiation downwards, J m-2 accumulated over the hour ending at
``valid_time``: divided by 3600 s for W m-2); pressure levels ``u``, ``v`` (m s-1) and
``t`` (K). Not confirmed from a file at hand: the exact units strings the new CDS writes
for ``zust``/``ishf``/``fsr`` (taken as the ECMWF parameter-database units) and whether
``expver`` is written as ``"0001"``-style strings or integers (both are read: ``expver``
is ordered by its integer value).

**Choices.** ``expver`` as a dimension: at each time the lowest ``expver`` with data
(1 = final ERA5) wins over a higher one (5 = ERA5T, preliminary). An ensemble ``number``
dim with more than one member is refused unless ``number=`` picks one. Longitudes
``0..360`` and ``-180..180`` both work (a global grid wraps across its seam).

**Interpolation.** Bilinear in longitude/latitude and linear in time to the scene
point or to each node of the scene grid; a point or time outside the file is refused.

**Wind at ``height``.** From ``u10``/``v10`` with the surface-layer profile of
:mod:`plumax_core._met_profile` (Monin-Obukhov with Businger-Dyer functions when the
Obukhov length is known, the neutral log law ``u10 ln(z/z0)/ln(10/z0)`` otherwise).
With ``pressure_levels`` and ``height`` above :data:`SURFACE_LAYER_TOP` (100 m), the
winds of the levels above the ground are placed at their hypsometric heights above
ground, integrated upwards from the surface (``sp``, ``t2m``) layer by layer,

$$ z_k = z_{k-1} + \frac{R_d}{g}\,\frac{T_{k-1} + T_k}{2}\,\ln\frac{p_{k-1}}{p_k}, $$

(Wallace & Hobbs 2006, *Atmospheric Science*, eq. 3.29, with the layer-mean temperature
in place of the virtual temperature: humidity, < 1 % in height, is left out), and the
wind is interpolated linearly in height between the 10 m wind and those levels.

**Stability.** ``L = -rho c_p T u*^3 / (kappa g H)`` from ``zust`` and ``H = -ishf``
with ``rho = sp / (R_d t2m)``, then Golder's (1972) class from ``(L, z0)``; without the
fluxes, the insolation method (SRDT by day from ``ssrd``, Turner's night classes from
``tcc``; US EPA 2000, EPA-454/R-99-005); ``stability=`` overrides the class (the
Obukhov length from the fluxes, when present, is still returned and used by the
profile). ``z0=`` overrides ERA5 ``fsr``, which overrides the default 0.1 m.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._geo import seconds_since_epoch
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
    GRAVITY,
    R_DRY_AIR,
    REFERENCE_HEIGHT,
    golder_class,
    insolation_class,
    obukhov_length,
    sun_elevation,
    wind_at_height,
)
from ._units import HOUR, PRESSURE_UNITS

__all__ = ["DEFAULT_Z0", "ERA5_UNITS", "read_era5"]


#: Accepted units spellings of each ERA5 variable.
ERA5_UNITS: dict[str, tuple[str, ...]] = {
    "u10": MS_UNITS,
    "v10": MS_UNITS,
    "t2m": ("K",),
    "sp": ("Pa",),
    "blh": ("m",),
    "zust": MS_UNITS,
    "ishf": ("W m**-2", "W m-2"),
    "fsr": ("m",),
    "tcc": ("(0 - 1)", "(0-1)", "1"),
    "ssrd": ("J m**-2", "J m-2"),
    "u": MS_UNITS,
    "v": MS_UNITS,
    "t": ("K",),
}
_REQUIRED = ("u10", "v10", "t2m", "sp", "blh")
_OPTIONAL = ("zust", "ishf", "fsr", "tcc", "ssrd")
_LEVEL_UNITS = PRESSURE_UNITS
_ACCUMULATION_S = HOUR  # ERA5 hourly accumulations (ssrd) cover the previous hour


def _dim(ds: Any, names: tuple[str, ...], what: str, label: str) -> str:
    for n in names:
        if n in ds.dims:
            return n
    raise ValueError(f"{label} has no {what} dimension (expected one of {list(names)})")


class _Era5File:
    """One ERA5 dataset: its dims, and interpolation of its variables at the nodes."""

    def __init__(self, ds: Any, label: str, number: int | None, lon: np.ndarray, lat, t):
        self.ds, self.label, self.number = ds, label, number
        self.tdim = _dim(ds, ("valid_time", "time"), "time", label)
        self.ydim = _dim(ds, ("latitude",), "latitude", label)
        self.xdim = _dim(ds, ("longitude",), "longitude", label)
        for dim, allowed in (
            (self.ydim, ("degrees_north", "degree_north")),
            (self.xdim, ("degrees_east", "degree_east")),
        ):
            if dim in ds.coords:
                check_units(f"{label} coordinate {dim!r}", ds[dim], allowed, optional=True)
        times = np.asarray(ds[self.tdim].values)
        if times.dtype.kind != "M":
            raise ValueError(
                f"{label} `{self.tdim}` is not decoded as dates (dtype {times.dtype}); "
                "open it with xarray's default decode_times=True"
            )
        tsec = seconds_since_epoch(times)
        self.t0, self.t1, self.wt = axis_weights(tsec, t, name="time", what=f"{label} time")
        lons = np.asarray(ds[self.xdim].values, np.float64)
        target = lon % 360.0 if lons.max() > 180.0 else lon
        self.x0, self.x1, self.wx = axis_weights(
            lons, target, name="lon", what=f"{label} longitude", periodic=True
        )
        lats = np.asarray(ds[self.ydim].values, np.float64)
        self.y0, self.y1, self.wy = axis_weights(lats, lat, name="lat", what=f"{label} latitude")

    def has(self, name: str) -> bool:
        return name in self.ds.data_vars

    def interp(self, name: str, level_dim: str | None = None) -> np.ndarray:
        """Variable ``name`` at the nodes and time: ``(N,)`` or ``(N, nlevel)``."""
        if not self.has(name):
            raise ValueError(f"{self.label} has no variable {name!r}")
        da = self.ds[name]
        check_units(f"{self.label} variable {name!r}", da, ERA5_UNITS[name])
        ut = np.unique([self.t0[0], self.t1[0]])
        uy = np.unique(np.concatenate([self.y0, self.y1]))
        ux = np.unique(np.concatenate([self.x0, self.x1]))
        block = da.isel({self.tdim: ut, self.ydim: uy, self.xdim: ux})
        block = self._member(block, name)
        dims = (self.tdim, self.ydim, self.xdim) + ((level_dim,) if level_dim else ())
        extra = [d for d in block.dims if d not in dims]
        if extra or set(dims) - set(block.dims):
            raise ValueError(
                f"{self.label} variable {name!r} has dims {block.dims}; expected {dims}"
            )
        arr = decoded_values(block.transpose(*dims))
        pos = lambda u, i: np.searchsorted(u, i)
        vals = bilinear(
            arr,
            pos(uy, self.y0),
            pos(uy, self.y1),
            self.wy,
            pos(ux, self.x0),
            pos(ux, self.x1),
            self.wx,
        )
        a, b = pos(ut, self.t0)[0], pos(ut, self.t1)[0]
        out = (1.0 - self.wt[0]) * vals[a] + self.wt[0] * vals[b]
        if not np.all(np.isfinite(out)):
            raise ValueError(
                f"{self.label} variable {name!r} has missing values (NaN/_FillValue) in the "
                "grid cells around the requested point and time"
            )
        return out

    def _member(self, block: Any, name: str) -> Any:
        if "number" in block.dims:
            n = block.sizes["number"]
            if self.number is None:
                if n > 1:
                    raise ValueError(
                        f"{self.label} variable {name!r} holds {n} ensemble members (dim "
                        "`number`); pass `number=` to choose one"
                    )
                block = block.isel(number=0)
            else:
                members = [int(m) for m in np.asarray(block["number"].values)]
                if int(self.number) not in members:
                    raise ValueError(
                        f"`number` = {self.number} is not among the members {members} of "
                        f"{self.label}"
                    )
                block = block.isel(number=members.index(int(self.number)))
        elif self.number is not None and "number" in block.coords:
            if int(np.asarray(block["number"].values).ravel()[0]) != int(self.number):
                raise ValueError(
                    f"`number` = {self.number} but {self.label} holds member "
                    f"{int(np.asarray(block['number'].values).ravel()[0])}"
                )
        if "expver" in block.dims:  # old CDS: ERA5 (1) and ERA5T (5) side by side
            codes = [int(str(e).strip()) for e in np.asarray(block["expver"].values)]
            order = np.argsort(codes, kind="stable")
            out = block.isel(expver=int(order[0]), drop=True)
            for k in order[1:]:
                out = out.fillna(block.isel(expver=int(k), drop=True))
            block = out
        return block


def _hypsometric_wind(
    height: float,
    u10: np.ndarray,
    v10: np.ndarray,
    sp: np.ndarray,
    t2m: np.ndarray,
    p_levels: np.ndarray,
    u_l: np.ndarray,
    v_l: np.ndarray,
    t_l: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Wind at ``height`` (m above ground) from pressure levels (module docstring).

    ``p_levels`` ``(nlev,)`` Pa; ``u_l``, ``v_l``, ``t_l`` ``(N, nlev)``; surface
    ``(N,)``. Levels at or below the ground (``p >= sp``) are skipped.
    """
    order = np.argsort(-p_levels)  # surface upwards
    p_levels = p_levels[order]
    u_l, v_l, t_l = u_l[:, order], v_l[:, order], t_l[:, order]
    uo, vo = np.empty_like(u10), np.empty_like(v10)
    for n in range(u10.size):
        above = p_levels < sp[n]
        p = np.concatenate([[sp[n]], p_levels[above]])
        t = np.concatenate([[t2m[n]], t_l[n, above]])
        dz = R_DRY_AIR / GRAVITY * 0.5 * (t[1:] + t[:-1]) * np.log(p[:-1] / p[1:])
        z = np.concatenate([[REFERENCE_HEIGHT], np.cumsum(dz)])
        if z.size < 2 or height > z[-1]:
            top = z[-1] if z.size > 1 else REFERENCE_HEIGHT
            raise ValueError(
                f"`height` = {height} m is above the highest pressure level in "
                f"`pressure_levels` ({top:.0f} m above ground)"
            )
        if np.any(np.diff(z) <= 0):
            raise ValueError(
                "`pressure_levels`: the lowest level above ground is below 10 m; cannot place "
                "the 10 m wind under it"
            )
        uo[n] = np.interp(height, z, np.concatenate([[u10[n]], u_l[n, above]]))
        vo[n] = np.interp(height, z, np.concatenate([[v10[n]], v_l[n, above]]))
    return uo, vo


def read_era5(
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
    stability: Any = None,
    z0: float | None = None,
    number: int | None = None,
):
    """Implementation of :meth:`plumax_core.MetField.from_era5` (see there)."""

    t, height = parse_time(time), check_height_z0(height, z0)
    node_lon, node_lat, frame, shape, xs, ys = scene_nodes(lon, lat, frame, x, y)
    sc_override = stability  # an index 0-5, resolved by the MetField classmethod

    with open_source("single_levels", single_levels) as (ds, label):
        f = _Era5File(ds, f"ERA5 single levels {label!r}", number, node_lon, node_lat, t)
        missing = [v for v in _REQUIRED if not f.has(v)]
        if missing:
            raise ValueError(f"{f.label} lacks the variable(s) {missing}")
        vals = {v: f.interp(v) for v in _REQUIRED}
        for v in _OPTIONAL:
            if f.has(v):
                vals[v] = f.interp(v)
        source = f"ERA5 single levels {label}"

    for v, lo in (("t2m", 0.0), ("sp", 0.0), ("blh", 0.0)):
        if np.any(vals[v] <= lo):
            raise ValueError(f"ERA5 variable {v!r} must be > 0 at the point, got {vals[v].min()}")
    if z0 is not None:
        z0_arr = np.full(node_lon.shape, float(z0))
    elif "fsr" in vals:
        z0_arr = vals["fsr"]
        if np.any(z0_arr <= 0):
            raise ValueError("ERA5 variable 'fsr' (roughness) must be > 0 m at the point")
    else:
        z0_arr = np.full(node_lon.shape, DEFAULT_Z0)

    L = None
    if "zust" in vals and "ishf" in vals:
        L = obukhov_length(vals["zust"], -vals["ishf"], vals["t2m"], vals["sp"])

    speed10 = np.hypot(vals["u10"], vals["v10"])
    if sc_override is not None:
        sc = np.full(node_lon.shape, sc_override, np.int32)
    elif L is not None:
        sc = golder_class(L, z0_arr)
    elif "ssrd" in vals or "tcc" in vals:
        elev = sun_elevation(t, node_lon, node_lat)
        if np.any(elev > 0) and "ssrd" not in vals:
            raise ValueError(
                f"{source}: daytime stability needs 'ssrd' (or 'zust' and 'ishf'); "
                "or pass `stability=`"
            )
        if np.any(elev <= 0) and "tcc" not in vals:
            raise ValueError(
                f"{source}: night-time stability needs 'tcc' (or 'zust' and 'ishf'); "
                "or pass `stability=`"
            )
        rad = vals.get("ssrd", np.full(node_lon.shape, np.nan)) / _ACCUMULATION_S
        sc = insolation_class(speed10, rad, vals.get("tcc", np.nan), elev)
    else:
        raise ValueError(
            f"{source} has neither the fluxes 'zust' and 'ishf' nor 'ssrd'/'tcc' to derive "
            "the stability class; add them to the request or pass `stability=` ('A'-'F')"
        )

    if pressure_levels is not None:
        with open_source("pressure_levels", pressure_levels) as (dsp, plabel):
            fp = _Era5File(dsp, f"ERA5 pressure levels {plabel!r}", number, node_lon, node_lat, t)
            ldim = _dim(dsp, ("pressure_level", "level"), "pressure-level", fp.label)
            lev = dsp[ldim]
            check_units(f"{fp.label} coordinate {ldim!r}", lev, tuple(_LEVEL_UNITS), optional=False)
            p_levels = np.asarray(lev.values, np.float64) * _LEVEL_UNITS[lev.attrs["units"]]
            missing = [v for v in ("u", "v", "t") if not fp.has(v)]
            if missing:
                raise ValueError(f"{fp.label} lacks the variable(s) {missing}")
            ul, vl, tl = (fp.interp(v, ldim) for v in ("u", "v", "t"))
            source += f", pressure levels {plabel}"

    if height > SURFACE_LAYER_TOP and pressure_levels is not None:
        u_e, v_e = _hypsometric_wind(
            height, vals["u10"], vals["v10"], vals["sp"], vals["t2m"], p_levels, ul, vl, tl
        )
    elif height == REFERENCE_HEIGHT:
        u_e, v_e = vals["u10"], vals["v10"]
    else:
        u_e = wind_at_height(vals["u10"], height, z0_arr, L)
        v_e = wind_at_height(vals["v10"], height, z0_arr, L)

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
        temperature=vals["t2m"],
        pressure=vals["sp"],
        pblh=vals["blh"],
        z0=z0_arr,
        stability_class=sc,
        obukhov_length=L,
        source=source,
    )
