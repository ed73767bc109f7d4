"""Reader for Sentinel-5P TROPOMI methane (CH4) Level-2 files.

:func:`read_tropomi_ch4` reads one ``S5P_*_L2__CH4____*.nc`` file into a
:class:`TropomiCH4` (NumPy arrays, one row per kept ground pixel), whose
:meth:`~TropomiCH4.observations` is a ``plumax_core.Observations`` of kind ``"xch4_ppb"``
and whose :meth:`~TropomiCH4.operator` is the matching
``plumax_core.AveragingKernelOperator`` (the model-to-XCH4 map of those pixels).

Layout read (group / variable, dimensions, units as accepted here)::

    PRODUCT/
      methane_mixing_ratio, methane_mixing_ratio_bias_corrected,
      methane_mixing_ratio_precision          (time, scanline, ground_pixel)  1e-9 (ppb)
      qa_value                                (time, scanline, ground_pixel)  1, 0..1
      latitude, longitude                     (time, scanline, ground_pixel)  degrees_north/east
      time_utc                                (time, scanline)  ISO 8601 strings, or
      time  (time,) s since a reference  +  delta_time (time, scanline) ms
    PRODUCT/SUPPORT_DATA/GEOLOCATIONS/
      latitude_bounds, longitude_bounds       (time, scanline, ground_pixel, corner=4)
    PRODUCT/SUPPORT_DATA/DETAILED_RESULTS/
      column_averaging_kernel                 (time, scanline, ground_pixel, layer=12)  1
    PRODUCT/SUPPORT_DATA/INPUT_DATA/
      methane_profile_apriori, dry_air_subcolumns  (..., layer=12)  mol m-2
      surface_pressure, pressure_interval     (time, scanline, ground_pixel)  Pa

Conventions (converted once, here):

* Layer edges are ``p_k = surface_pressure - k * pressure_interval``, ``k = 0..12``,
  surface first (HARP's S5P_L2_CH4 ingestion, ``read_input_pressure_bounds``: "the pressure
  grid is equidistant between the surface pressure and a fixed top pressure"; IMI builds
  the same 13 edges). The product stores the layer profiles (averaging kernel, prior,
  dry-air sub-columns) top of atmosphere first: HARP inverts all three "to make [the
  vertical grid] ascending" and IMI reverses them (``[..., ::-1]``) before pairing them
  with the surface-first edges. This reader reverses them too, so layer 0 is the
  surface layer everywhere in :class:`TropomiCH4`.
* ``qa_value`` is stored as an 8-bit integer with a scale factor (HARP reads "the raw 8bit
  value" 0..100 and describes it as a continuous descriptor from 0 to 100 (full quality);
  netCDF4 applies ``scale_factor``, so 0.01 is implied). After scaling it must lie in
  [0, 1]; a file whose ``qa_value`` is not scaled is refused.
* Fill values: netCDF ``_FillValue`` (9.96921e36 for floats) are masked by netCDF4; any
  value with ``|v| >= 9.9692e36`` or non-finite is also treated as fill. A pixel with fill
  in any variable read is dropped, as is a pixel with ``qa_value < qa_threshold`` (0.5 is
  the usual recommendation, also IMI's filter) or outside ``bbox``. The counts are kept
  in :attr:`TropomiCH4.counts`.
* Pixels are flattened scanline-major (C order over ``(scanline, ground_pixel)``); their
  indices are kept. Times are seconds since 1970-01-01 UTC.

Sources: Sentinel-5 Precursor/TROPOMI Level 2 Product User Manual, Methane,
SRON-S5P-LEV2-MA-001 (Apituley et al.; issue 2.4.0, 2022-07-11, consulted only through
its title page); the TROPOMI methane ATBD (Hasekamp et al., SRON-S5P-LEV2-RP-001); the
HARP S5P L2 ingestion (github.com/stcorp/harp, ``libharp/harp-ingest-s5p_l2.c``: group and
variable names, layer inversion, pressure bounds, raw ``qa_value``, ``time`` + ``delta_time``
in ms); the Integrated Methane Inversion (github.com/geoschem/integrated_methane_inversion:
``read_tropomi``, ``filter_tropomi``, ``TROPOMI_operator``). Not confirmed against the
PUM's own tables: the exact ``units`` strings (``"1e-9"`` is assumed for the mixing
ratios, ``"mol m-2"`` for sub-columns; a few spellings are accepted), the ``qa_value``
scale factor (0.01 inferred as above) and its ``_FillValue``, the value of the fixed top
pressure, and the ``units`` of ``delta_time`` (both ``"milliseconds since <date>"`` and
plain ``"ms"`` relative to ``time`` are accepted).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

from plumax_core import AveragingKernelOperator, Observations, seconds_since_epoch, units

__all__ = ["FILL_VALUE", "N_LAYERS", "TropomiCH4", "read_tropomi_ch4"]

#: netCDF default float fill value used by the S5P L2 products.
FILL_VALUE = 9.96921e36
#: Retrieval layers of the TROPOMI CH4 product (13 pressure levels).
N_LAYERS = 12

_PRODUCT = "PRODUCT"
_GEO = "PRODUCT/SUPPORT_DATA/GEOLOCATIONS"
_DETAILED = "PRODUCT/SUPPORT_DATA/DETAILED_RESULTS"
_INPUT = "PRODUCT/SUPPORT_DATA/INPUT_DATA"

_PIX = ("time", "scanline", "ground_pixel")
_CORNER = (*_PIX, "corner")
_LAYER = (*_PIX, "layer")

# accepted units -> factor to the reader's unit (None = attribute may be absent)
_PPB = {"1e-9": 1.0, "1e-09": 1.0, "10^-9": 1.0, "ppb": 1.0, "ppbv": 1.0}
_ONE = {"1": 1.0, None: 1.0}
_LAT = {"degrees_north": 1.0, "degree_north": 1.0}
_LON = {"degrees_east": 1.0, "degree_east": 1.0}
_MOL_M2 = {"mol m-2": 1.0, "mol/m2": 1.0, "mol m^-2": 1.0, "mol/m^2": 1.0, "mol.m-2": 1.0}
_PA = {k: units.PRESSURE_UNITS[k] for k in ("Pa", "hPa")}
_TIME_UNITS = {
    "s": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "ms": 1e-3,
    "millisecond": 1e-3,
    "milliseconds": 1e-3,
    "days": units.DAY,
    "day": units.DAY,
}


@dataclasses.dataclass(frozen=True, eq=False)
class TropomiCH4:
    """Kept pixels of one TROPOMI CH4 L2 file (NumPy arrays, read-only).

    Attributes:
        xch4: ``(npix,)`` XCH4, ppb (bias-corrected or not, see ``bias_corrected``).
        xch4_precision: ``(npix,)`` 1-sigma precision, ppb.
        qa_value: ``(npix,)`` quality value in [0, 1].
        longitude, latitude: ``(npix,)`` pixel centres, degrees east / north.
        longitude_bounds, latitude_bounds: ``(npix, 4)`` pixel corners, degrees.
        time: ``(npix,)`` seconds since 1970-01-01T00:00:00 UTC (of the scanline).
        scanline, ground_pixel: ``(npix,)`` integer indices in the file's swath.
        column_averaging_kernel: ``(npix, 12)`` dimensionless, layer 0 at the surface.
        methane_profile_apriori: ``(npix, 12)`` prior sub-columns, mol m-2, surface first.
        dry_air_subcolumns: ``(npix, 12)`` dry-air sub-columns, mol m-2, surface first.
        surface_pressure: ``(npix,)`` Pa.
        pressure_interval: ``(npix,)`` layer thickness, Pa.
        n_ground_pixel: swath width of the file (for the flat pixel id).
        bias_corrected: whether ``xch4`` is ``methane_mixing_ratio_bias_corrected``.
        qa_threshold: the QA filter applied.
        counts: ``{"total", "fill", "below_qa", "outside_bbox", "kept"}`` pixel counts
            (each dropped pixel counted once, in that order).
        attrs: the file's global attributes.
        source: the path read.
    """

    xch4: np.ndarray
    xch4_precision: np.ndarray
    qa_value: np.ndarray
    longitude: np.ndarray
    latitude: np.ndarray
    longitude_bounds: np.ndarray
    latitude_bounds: np.ndarray
    time: np.ndarray
    scanline: np.ndarray
    ground_pixel: np.ndarray
    column_averaging_kernel: np.ndarray
    methane_profile_apriori: np.ndarray
    dry_air_subcolumns: np.ndarray
    surface_pressure: np.ndarray
    pressure_interval: np.ndarray
    n_ground_pixel: int
    bias_corrected: bool
    qa_threshold: float
    counts: Mapping[str, int]
    attrs: Mapping[str, Any]
    source: str

    def __post_init__(self):
        n = self.xch4.shape[0] if np.ndim(self.xch4) == 1 else -1
        if n < 0:
            raise ValueError(f"`xch4` must be 1-D, got shape {np.shape(self.xch4)}")
        shapes = {
            "xch4_precision": (n,),
            "qa_value": (n,),
            "longitude": (n,),
            "latitude": (n,),
            "longitude_bounds": (n, 4),
            "latitude_bounds": (n, 4),
            "time": (n,),
            "scanline": (n,),
            "ground_pixel": (n,),
            "column_averaging_kernel": (n, N_LAYERS),
            "methane_profile_apriori": (n, N_LAYERS),
            "dry_air_subcolumns": (n, N_LAYERS),
            "surface_pressure": (n,),
            "pressure_interval": (n,),
        }
        for name, shape in shapes.items():
            arr = getattr(self, name)
            if np.shape(arr) != shape:
                raise ValueError(f"`{name}` must have shape {shape}, got {np.shape(arr)}")
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, np.ndarray):
                v = np.array(v)  # own copy: the caller's array keeps its flags
                v.setflags(write=False)
                object.__setattr__(self, f.name, v)
        object.__setattr__(self, "counts", MappingProxyType(dict(self.counts)))
        object.__setattr__(self, "attrs", MappingProxyType(dict(self.attrs)))

    # -- derived ------------------------------------------------------------------

    @property
    def n_pixels(self) -> int:
        return int(self.xch4.shape[0])

    @property
    def pixel_id(self) -> np.ndarray:
        """``(npix,)`` ``scanline * n_ground_pixel + ground_pixel`` (unique in the file)."""
        return self.scanline.astype(np.int64) * self.n_ground_pixel + self.ground_pixel

    @property
    def pressure_edges(self) -> np.ndarray:
        """``(npix, 13)`` layer edges, Pa, surface first: ``p_s - k dp``."""
        k = np.arange(N_LAYERS + 1)
        return self.surface_pressure[:, None] - k[None, :] * self.pressure_interval[:, None]

    @property
    def prior_profile_ppb(self) -> np.ndarray:
        """``(npix, 12)`` prior mole fraction, ppb (sub-column ratio)."""
        return self.methane_profile_apriori / self.dry_air_subcolumns * 1e9

    @property
    def instrument(self) -> str:
        version = self.attrs.get("processor_version", "")
        return "TROPOMI/S5P L2 CH4" + (f" {version}" if version else "")

    # -- core types ---------------------------------------------------------------

    def observations(self) -> Observations:
        """XCH4 as ``Observations(kind="xch4_ppb", dims=("pixel",))``, sigma = precision.

        The ``"pixel"`` coordinate is :attr:`pixel_id`; longitude and latitude are not a
        coordinate of a core ``Observations`` (its coordinates are per dimension) and
        travel in :meth:`to_xarray`.
        """
        return Observations(
            self.xch4,
            kind="xch4_ppb",
            sigma=self.xch4_precision,
            dims=("pixel",),
            coords={"pixel": self.pixel_id.astype(float)},
            instrument=self.instrument,
        )

    def operator(
        self,
        model_pressure_edges: Any = None,
        *,
        mask: Any = None,
        extend_model_column: bool = True,
    ) -> AveragingKernelOperator:
        """The averaging-kernel operator of these pixels (state in ppb).

        Args:
            model_pressure_edges: ``(nmodel + 1,)`` or ``(npix, nmodel + 1)`` model layer
                edges, Pa: the state is then a model profile per pixel ``(npix, nmodel)``,
                regridded mass-conservingly. None: the state is on the 12 retrieval
                layers, surface first, ``(npix, 12)``.
            mask: ``(npix,)`` bool, False to drop a pixel from the likelihood.
            extend_model_column: see :func:`plumax_core.regrid_matrix`.
        """
        return AveragingKernelOperator(
            self.column_averaging_kernel,
            self.methane_profile_apriori,
            self.dry_air_subcolumns,
            self.pressure_edges,
            prior_units="mol m-2",
            model_pressure_edges=model_pressure_edges,
            extend_model_column=extend_model_column,
            mask=mask,
            pixel=self.pixel_id.astype(float),
            instrument=self.instrument,
        )

    def to_xarray(self):
        """An ``xarray.Dataset`` over ``pixel`` (+ ``layer``, ``level``, ``corner``), CF units."""
        import xarray as xr

        epoch = np.datetime64("1970-01-01T00:00:00", "ns")
        t = epoch + np.round(self.time * 1e9).astype("int64").astype("timedelta64[ns]")
        lay = "layer 0 is the surface layer (the product's layer order reversed)"
        ppb = {"units": "ppb"}
        data = {
            "xch4": ("pixel", self.xch4, {**ppb, "long_name": "column-averaged dry-air CH4"}),
            "xch4_precision": (
                "pixel",
                self.xch4_precision,
                {**ppb, "long_name": "XCH4 precision"},
            ),
            "qa_value": ("pixel", self.qa_value, {"units": "1", "long_name": "quality value"}),
            "longitude_bounds": (
                ("pixel", "corner"),
                self.longitude_bounds,
                {"units": "degrees_east"},
            ),
            "latitude_bounds": (
                ("pixel", "corner"),
                self.latitude_bounds,
                {"units": "degrees_north"},
            ),
            "column_averaging_kernel": (
                ("pixel", "layer"),
                self.column_averaging_kernel,
                {"units": "1", "comment": lay},
            ),
            "methane_profile_apriori": (
                ("pixel", "layer"),
                self.methane_profile_apriori,
                {"units": "mol m-2", "comment": lay},
            ),
            "dry_air_subcolumns": (
                ("pixel", "layer"),
                self.dry_air_subcolumns,
                {"units": "mol m-2", "comment": lay},
            ),
            "surface_pressure": ("pixel", self.surface_pressure, {"units": "Pa"}),
            "pressure_interval": ("pixel", self.pressure_interval, {"units": "Pa"}),
            "pressure_edges": (
                ("pixel", "level"),
                self.pressure_edges,
                {"units": "Pa", "comment": "surface_pressure - level * pressure_interval"},
            ),
        }
        coords = {
            "longitude": ("pixel", self.longitude, {"units": "degrees_east"}),
            "latitude": ("pixel", self.latitude, {"units": "degrees_north"}),
            "time": ("pixel", t),
            "scanline": ("pixel", self.scanline),
            "ground_pixel": ("pixel", self.ground_pixel),
        }
        attrs = {k: v for k, v in self.attrs.items() if isinstance(v, str | int | float)}
        attrs.update(
            Conventions="CF-1.8",
            source=self.source,
            qa_threshold=float(self.qa_threshold),
            bias_corrected=int(self.bias_corrected),
        )
        return xr.Dataset(data, coords=coords, attrs=attrs)


# ----------------------------------------------------------------- reading


def _group(ds, path: str, source: str):
    g = ds
    for part in path.split("/"):
        if part not in g.groups:
            raise ValueError(f"{source}: group {path!r} is missing (not a TROPOMI CH4 L2 file?)")
        g = g.groups[part]
    return g


def _units(var) -> str | None:
    u = getattr(var, "units", None)
    return None if u is None else str(u).strip()


def _read(group, gpath: str, name: str, dims: tuple[str, ...], units: Mapping, source: str):
    """``(values float64 with NaN at fill, fill mask)`` of one variable, units converted."""
    if name not in group.variables:
        raise ValueError(f"{source}: variable '{gpath}/{name}' is missing")
    var = group.variables[name]
    if tuple(var.dimensions) != dims:
        raise ValueError(
            f"{source}: variable '{gpath}/{name}' has dimensions {tuple(var.dimensions)}, "
            f"expected {dims}"
        )
    u = _units(var)
    if u not in units:
        accepted = sorted(k for k in units if k is not None)
        raise ValueError(
            f"{source}: variable '{gpath}/{name}' has units {u!r}; expected one of {accepted}"
        )
    raw = var[...]
    fill = np.ma.getmaskarray(raw)
    vals = np.ma.filled(np.ma.asarray(raw, dtype=np.float64), np.nan)
    fill |= ~np.isfinite(vals) | (np.abs(vals) >= 0.99999 * FILL_VALUE)
    vals = np.where(fill, np.nan, vals * units[u])
    if vals.shape[0] != 1:
        raise ValueError(
            f"{source}: variable '{gpath}/{name}' has a time dimension of length "
            f"{vals.shape[0]}; a TROPOMI L2 file has 1"
        )
    return vals[0], fill[0]


def _parse_since(units: str | None, name: str, source: str) -> tuple[float, float | None]:
    """``(seconds per unit, reference epoch seconds or None)`` of ``"<unit> [since <date>]"``."""
    if units is None:
        raise ValueError(f"{source}: variable '{name}' has no units (e.g. 'seconds since ...')")
    m = re.fullmatch(r"\s*(\w+)(?:\s+since\s+(.+?))?\s*", units)
    if m is None or m.group(1) not in _TIME_UNITS:
        raise ValueError(
            f"{source}: variable '{name}' has units {units!r}; expected '<unit> since <date>' "
            f"with unit in {sorted(_TIME_UNITS)}"
        )
    ref = None
    if m.group(2) is not None:
        date = m.group(2).replace(" UTC", "").strip().replace(" ", "T")
        try:
            ref = float(seconds_since_epoch(date))
        except ValueError:
            raise ValueError(
                f"{source}: variable '{name}' has units {units!r} with an unreadable date"
            ) from None
    return _TIME_UNITS[m.group(1)], ref


def _scanline_times(product, source: str, nscan: int) -> tuple[np.ndarray, np.ndarray]:
    """``(seconds since 1970 per scanline, fill mask)`` from time_utc or time + delta_time."""
    if "time_utc" in product.variables:
        var = product.variables["time_utc"]
        if tuple(var.dimensions) != ("time", "scanline"):
            raise ValueError(
                f"{source}: variable 'PRODUCT/time_utc' has dimensions {tuple(var.dimensions)}, "
                "expected ('time', 'scanline')"
            )
        raw = np.asarray(var[...], dtype=object).reshape(-1, nscan)[0]
        out, fill = np.full(nscan, np.nan), np.zeros(nscan, bool)
        for i, s in enumerate(raw):
            s = "" if s is None or s is np.ma.masked else str(s).strip()
            if not s:
                fill[i] = True
                continue
            try:
                out[i] = float(seconds_since_epoch(s))
            except ValueError:
                raise ValueError(
                    f"{source}: 'PRODUCT/time_utc' scanline {i} holds {s!r}, not an ISO 8601 time"
                ) from None
        return out, fill
    for name in ("time", "delta_time"):
        if name not in product.variables:
            raise ValueError(f"{source}: neither 'PRODUCT/time_utc' nor 'PRODUCT/{name}' found")
    tvar, dvar = product.variables["time"], product.variables["delta_time"]
    if tuple(dvar.dimensions) != ("time", "scanline"):
        raise ValueError(
            f"{source}: variable 'PRODUCT/delta_time' has dimensions {tuple(dvar.dimensions)}, "
            "expected ('time', 'scanline')"
        )
    t_scale, t_ref = _parse_since(_units(tvar), "PRODUCT/time", source)
    if t_ref is None:
        raise ValueError(f"{source}: 'PRODUCT/time' units must be '<unit> since <date>'")
    d_scale, d_ref = _parse_since(_units(dvar), "PRODUCT/delta_time", source)
    t0 = (
        t_ref
        + float(np.ma.filled(np.ma.asarray(tvar[...], dtype=float), np.nan).ravel()[0]) * t_scale
    )
    delta = np.ma.filled(np.ma.asarray(dvar[...], dtype=np.float64), np.nan)[0]
    base = t0 if d_ref is None else d_ref
    out = base + delta * d_scale
    return out, ~np.isfinite(out)


def _check_bbox(bbox: Any) -> tuple[float, float, float, float] | None:
    if bbox is None:
        return None
    try:
        b = tuple(float(v) for v in bbox)
    except (TypeError, ValueError):
        raise ValueError("`bbox` must be (lon_min, lat_min, lon_max, lat_max) in degrees") from None
    if len(b) != 4 or not np.all(np.isfinite(b)):
        raise ValueError("`bbox` must be 4 finite numbers (lon_min, lat_min, lon_max, lat_max)")
    lon0, lat0, lon1, lat1 = b
    if not (-180.0 <= lon0 < lon1 <= 180.0):
        raise ValueError(
            f"`bbox` longitudes must satisfy -180 <= lon_min < lon_max <= 180, got {lon0}, {lon1} "
            "(a box across the antimeridian is not supported: read two boxes)"
        )
    if not (-90.0 <= lat0 < lat1 <= 90.0):
        raise ValueError(f"`bbox` latitudes must satisfy -90 <= lat_min < lat_max <= 90, got {b}")
    return b


def _attr_value(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.ndarray):
        return v.item() if v.size == 1 else v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v


def read_tropomi_ch4(
    path: str | os.PathLike[str],
    *,
    qa_threshold: float = 0.5,
    bias_corrected: bool = True,
    bbox: Any = None,
) -> TropomiCH4:
    """Read a TROPOMI CH4 L2 file: keep pixels with ``qa_value >= qa_threshold``, no fill
    and (optionally) centre inside ``bbox``.

    Args:
        path: the ``.nc`` file.
        qa_threshold: minimum ``qa_value`` in [0, 1] (0.5: the product's recommendation as
            applied by IMI).
        bias_corrected: read ``methane_mixing_ratio_bias_corrected`` (True) or
            ``methane_mixing_ratio`` (False).
        bbox: ``(lon_min, lat_min, lon_max, lat_max)`` degrees, inclusive, or None.

    Returns:
        :class:`TropomiCH4`, possibly with zero pixels.

    Raises:
        ValueError: a missing group or variable, wrong dimensions or units (naming the
            variable), an unscaled ``qa_value``, non-physical pressures or a precision
            <= 0 at a kept pixel, a bad ``qa_threshold`` or ``bbox``.
        FileNotFoundError: no file at ``path``.
    """
    from plumax_core import open_netcdf

    qa_threshold = float(qa_threshold)
    if not (0.0 <= qa_threshold <= 1.0):
        raise ValueError(f"`qa_threshold` must be in [0, 1], got {qa_threshold}")
    if not isinstance(bias_corrected, bool):
        raise ValueError(f"`bias_corrected` must be True or False, got {bias_corrected!r}")
    box = _check_bbox(bbox)
    source = os.fspath(path)
    if not os.path.isfile(source):
        raise FileNotFoundError(f"no TROPOMI file at {source!r}")
    with open_netcdf(source) as ds:
        ds.set_auto_maskandscale(True)
        attrs = {k: _attr_value(ds.getncattr(k)) for k in ds.ncattrs()}
        prod = _group(ds, _PRODUCT, source)
        geo = _group(ds, _GEO, source)
        det = _group(ds, _DETAILED, source)
        inp = _group(ds, _INPUT, source)
        xname = "methane_mixing_ratio_bias_corrected" if bias_corrected else "methane_mixing_ratio"
        fields = {
            "xch4": _read(prod, _PRODUCT, xname, _PIX, _PPB, source),
            "xch4_precision": _read(
                prod, _PRODUCT, "methane_mixing_ratio_precision", _PIX, _PPB, source
            ),
            "qa_value": _read(prod, _PRODUCT, "qa_value", _PIX, _ONE, source),
            "latitude": _read(prod, _PRODUCT, "latitude", _PIX, _LAT, source),
            "longitude": _read(prod, _PRODUCT, "longitude", _PIX, _LON, source),
            "latitude_bounds": _read(geo, _GEO, "latitude_bounds", _CORNER, _LAT, source),
            "longitude_bounds": _read(geo, _GEO, "longitude_bounds", _CORNER, _LON, source),
            "column_averaging_kernel": _read(
                det, _DETAILED, "column_averaging_kernel", _LAYER, _ONE, source
            ),
            "methane_profile_apriori": _read(
                inp, _INPUT, "methane_profile_apriori", _LAYER, _MOL_M2, source
            ),
            "dry_air_subcolumns": _read(inp, _INPUT, "dry_air_subcolumns", _LAYER, _MOL_M2, source),
            "surface_pressure": _read(inp, _INPUT, "surface_pressure", _PIX, _PA, source),
            "pressure_interval": _read(inp, _INPUT, "pressure_interval", _PIX, _PA, source),
        }
        nscan, ngp = fields["xch4"][0].shape
        t_scan, t_fill = _scanline_times(prod, source, nscan)
    for name, (vals, _) in fields.items():
        if vals.shape[:2] != (nscan, ngp):
            raise ValueError(
                f"{source}: variable {name!r} has swath shape {vals.shape[:2]}, expected "
                f"{(nscan, ngp)}"
            )
    for name in ("column_averaging_kernel", "methane_profile_apriori", "dry_air_subcolumns"):
        if fields[name][0].shape[-1] != N_LAYERS:
            raise ValueError(
                f"{source}: variable {name!r} has {fields[name][0].shape[-1]} layers, "
                f"expected {N_LAYERS}"
            )
    qa, qa_fill = fields["qa_value"]
    if np.any((qa[~qa_fill] < -1e-6) | (qa[~qa_fill] > 1.0 + 1e-6)):
        raise ValueError(
            f"{source}: variable 'PRODUCT/qa_value' has values outside [0, 1] after scaling "
            "(expected an 8-bit value with scale_factor 0.01)"
        )
    fill = t_fill[:, None] | np.zeros((nscan, ngp), bool)
    for _, f in fields.values():
        fill |= f if f.ndim == 2 else np.any(f, axis=-1)
    qa_ok = np.round(np.nan_to_num(qa, nan=-1.0), 6) >= qa_threshold
    in_box = np.ones((nscan, ngp), bool)
    if box is not None:
        lon, lat = fields["longitude"][0], fields["latitude"][0]
        with np.errstate(invalid="ignore"):
            in_box = (lon >= box[0]) & (lon <= box[2]) & (lat >= box[1]) & (lat <= box[3])
    keep = ~fill & qa_ok & in_box
    counts = {
        "total": int(nscan * ngp),
        "fill": int(fill.sum()),
        "below_qa": int((~fill & ~qa_ok).sum()),
        "outside_bbox": int((~fill & qa_ok & ~in_box).sum()),
        "kept": int(keep.sum()),
    }
    flat = np.flatnonzero(keep.ravel())  # scanline-major
    scan, gp = np.divmod(flat, ngp)
    out = {name: vals[scan, gp] for name, (vals, _) in fields.items()}
    for name in ("column_averaging_kernel", "methane_profile_apriori", "dry_air_subcolumns"):
        out[name] = np.ascontiguousarray(out[name][:, ::-1])  # product: top first -> surface first
    _check_physical(out, source)
    return TropomiCH4(
        **out,
        time=t_scan[scan],
        scanline=scan.astype(np.int64),
        ground_pixel=gp.astype(np.int64),
        n_ground_pixel=int(ngp),
        bias_corrected=bias_corrected,
        qa_threshold=qa_threshold,
        counts=counts,
        attrs=attrs,
        source=source,
    )


def _check_physical(out: Mapping[str, np.ndarray], source: str) -> None:
    """Refuse kept pixels whose values cannot be right (no silent clipping)."""

    def refuse(var: str, bad: np.ndarray, what: str) -> None:
        if np.any(bad):
            raise ValueError(
                f"{source}: variable {var!r} must be {what} at pixels passing the filters; "
                f"{int(np.sum(np.any(bad, axis=-1) if bad.ndim > 1 else bad))} pixel(s) are not"
            )

    refuse("methane_mixing_ratio_precision", out["xch4_precision"] <= 0, "> 0 ppb")
    refuse("surface_pressure", out["surface_pressure"] <= 0, "> 0 Pa")
    refuse("pressure_interval", out["pressure_interval"] <= 0, "> 0 Pa")
    top = out["surface_pressure"] - N_LAYERS * out["pressure_interval"]
    refuse("pressure_interval", top < -1e-6 * out["surface_pressure"], "<= surface_pressure / 12")
    refuse("dry_air_subcolumns", out["dry_air_subcolumns"] <= 0, "> 0 mol m-2")
