"""EMIT L1B radiance granules (+ their OBS companion), lazily, with the granule's GLT.

:func:`open_emit_l1b` reads an ``EMIT_L1B_RAD_001_<start>_<orbit>_<scene>.nc`` file and,
optionally, the matching ``EMIT_L1B_OBS_001_...nc`` into an :class:`EmitGranule`: the
radiance as a dask-backed ``xarray.DataArray`` ``(downtrack, crosstrack, band)`` (bands in
one chunk, 128 lines per chunk, so a full 1280 x 1242 x 285 float32 granule, 1.8 GB,
streams), band centres/FWHM, geolocation, the geometric lookup table (GLT) and the
observation geometry. The granule orthorectifies any sensor-geometry array onto the GLT
grid and back (:mod:`plumax_rtm._glt`) and resamples the radiance onto a local metric grid
(:meth:`EmitGranule.to_local_grid`) for :func:`~plumax_rtm.scene_matched_filter`.

The layout read here (names, dims, units strings, fill -9999, global attributes) is set
out with its sources in :mod:`plumax_rtm._emit_write`: the EMIT SDS converters
(``emit-sds/emit-sds-l1b`` ``output_conversion.py``, ``emit-sds/emit-utils``
``daac_converter.py``), the LP DAAC reader ``nasa/EMIT-Data-Resources``
``python/modules/emit_tools.py`` (fill -> NaN, GLT 1-based with 0 = no data, cell centres
from the geotransform) and the EMIT L1B product documentation JPL D-104187 (as cited by
``emit-sds/emit-main``). OBS layer names are matched by their leading words
(:data:`OBS_LAYERS`) because two spellings exist (ENVI headers of
``emit-sds/emit-sds-l1b-geo``: "Path length (m)", "Solar phase", ...; delivered products,
``emit-sds/emit-main``: "Path length (sensor-to-ground in meters)", ...).

Not confirmed: that an L1B RAD file never carries ``sensor_band_parameters/
good_wavelengths`` (the L2A files do; the L1B converter writes none, so when absent the
good bands come from the fill pattern, see :func:`open_emit_l1b`); the exact
``observation_bands`` strings of current products (hence the prefix matching); whether
EMIT GLTs hold negative (in-filled) entries (:mod:`plumax_rtm._glt`).

Units are converted once, here: EMIT's "uW/cm^2/SR/nm" is our ``"uW cm-2 sr-1 nm-1"``
(the same quantity, renamed); any other radiance unit string is refused.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import numpy as np

from ._emit_write import (
    iso_time,
)
from ._glt import (
    cell_centres,
    gather,
    glt_indices,
    inverse_glt,
    lonlat_to_cell,
)

__all__ = ["EmitGranule"]


@dataclasses.dataclass(frozen=True, eq=False)
class EmitGranule:
    """One EMIT L1B granule: lazy radiance, band parameters, geolocation, GLT and OBS.

    Attributes:
        radiance: ``DataArray (downtrack, crosstrack, band)`` float32, µW cm⁻² sr⁻¹ nm⁻¹,
            dask-backed, NaN at fill pixels; coordinate ``band`` = centres (nm), ``fwhm``.
        wavelengths, fwhm: ``(m,)`` band centres and full widths at half maximum, nm.
        good_wavelengths: ``(m,)`` bool; ``radiance.attrs['good_wavelengths_source']``
            says whether it came from the file, the caller or the fill pattern.
        lat, lon, elev: ``(downtrack, crosstrack)`` pixel centres (degrees) and surface
            elevation (m), NumPy float64, NaN at fill.
        glt_x, glt_y: ``(ortho_y, ortho_x)`` int, 1-based, 0 = no pixel (as in the file).
        geotransform: the GLT grid's 6 GDAL values (degrees, north-up).
        crs_wkt: the GLT grid's WKT (``spatial_ref``; EPSG:4326).
        time_start, time_end: acquisition start/end, seconds since 1970-01-01 UTC.
        obs: ``xarray.Dataset (downtrack, crosstrack)`` of :data:`OBS_LAYERS` (read into
            memory, NaN at fill), or None without an OBS file.
        granule_id: the radiance file name without extension.
        source_paths: the files read.
        attrs: the radiance file's global attributes.
    """

    radiance: Any
    wavelengths: np.ndarray
    fwhm: np.ndarray
    good_wavelengths: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    elev: np.ndarray
    glt_x: np.ndarray
    glt_y: np.ndarray
    geotransform: tuple
    crs_wkt: str
    time_start: float
    time_end: float
    obs: Any
    granule_id: str
    source_paths: tuple
    attrs: dict = dataclasses.field(default_factory=dict, repr=False)

    # -- simple properties ----------------------------------------------------------

    @property
    def sensor_shape(self) -> tuple[int, int]:
        """``(downtrack, crosstrack)`` pixels."""
        return tuple(self.lat.shape)

    @property
    def ortho_shape(self) -> tuple[int, int]:
        """``(ortho_y, ortho_x)`` cells of the GLT grid."""
        return tuple(self.glt_x.shape)

    @property
    def ortho_lat(self) -> np.ndarray:
        """Cell-centre latitudes of the GLT grid ``(ortho_y,)``, degrees (descending)."""
        return cell_centres(self.geotransform, self.ortho_shape)[0]

    @property
    def ortho_lon(self) -> np.ndarray:
        """Cell-centre longitudes of the GLT grid ``(ortho_x,)``, degrees (ascending)."""
        return cell_centres(self.geotransform, self.ortho_shape)[1]

    @property
    def time_mid(self) -> float:
        """Middle of the acquisition, seconds since 1970-01-01 UTC."""
        return 0.5 * (self.time_start + self.time_end)

    def _obs_mean(self, name: str) -> float:
        if self.obs is None:
            raise ValueError(
                f"granule {self.granule_id} was opened without its OBS file: `{name}` "
                "needs `obs_path` in open_emit_l1b"
            )
        return float(self.obs[name].mean(skipna=True).values)

    @property
    def solar_zenith_mean(self) -> float:
        """Mean solar zenith angle over valid pixels (OBS "To-sun zenith"), degrees."""
        return self._obs_mean("solar_zenith")

    @property
    def view_zenith_mean(self) -> float:
        """Mean view zenith angle over valid pixels (OBS "To-sensor zenith"), degrees."""
        return self._obs_mean("sensor_zenith")

    # -- bands ----------------------------------------------------------------------

    def band_indices(self, band_range=None, *, fine_wavelength=None) -> np.ndarray:
        """Indices of the good bands whose centre lies in ``band_range = (lo, hi)`` nm
        (default all); with ``fine_wavelength`` also those whose centre ± 1 FWHM lies
        inside that grid (so the response has support on it).

        Raises:
            ValueError: a malformed range, or no band left.
        """
        keep = self.good_wavelengths.copy()
        c, f = self.wavelengths, self.fwhm
        if band_range is not None:
            lo, hi = (float(v) for v in band_range)
            if not lo < hi:
                raise ValueError(f"`band_range` must be (lo, hi) nm with lo < hi, got {band_range}")
            keep &= (c >= lo) & (c <= hi)
        if fine_wavelength is not None:
            wl = np.asarray(fine_wavelength, np.float64)
            keep &= (c - f >= wl.min()) & (c + f <= wl.max())
        if not keep.any():
            raise ValueError(
                f"no good band of {self.granule_id} in `band_range` {band_range}"
                + ("" if fine_wavelength is None else " inside `fine_wavelength`")
            )
        return np.nonzero(keep)[0]

    def spectral_response(self, fine_wavelength, *, band_range=None):
        """Gaussian SRFs with the file's own band centres and FWHM, for the good bands of
        :meth:`band_indices` ``(band_range, fine_wavelength=fine_wavelength)``.

        Returns:
            :class:`~plumax_rtm.SpectralResponse` mapping ``(n,)`` -> ``(m_sel,)``.
        """
        from ._instruments import SpectralResponse

        idx = self.band_indices(band_range, fine_wavelength=fine_wavelength)
        return SpectralResponse.gaussian(fine_wavelength, self.wavelengths[idx], self.fwhm[idx])

    # -- geometry -------------------------------------------------------------------

    @functools.cached_property
    def _glt_index(self):
        return glt_indices(self.glt_x, self.glt_y, self.sensor_shape)[:2]

    @functools.cached_property
    def _inverse(self):
        iy, ix = self._glt_index
        return inverse_glt(iy, ix, self.sensor_shape, self.geotransform, self.lat, self.lon)

    def _wrap(self, da, lead: tuple[str, str], shape, what: str):
        import xarray as xr

        if not isinstance(da, xr.DataArray):
            arr = da if hasattr(da, "dask") else np.asarray(da)
            dims = lead + tuple(f"dim_{i}" for i in range(2, arr.ndim))
            da = xr.DataArray(arr, dims=dims)
        if tuple(da.dims[:2]) != lead or tuple(da.shape[:2]) != tuple(shape):
            raise ValueError(
                f"`{what}` must have leading dims {lead} of sizes {tuple(shape)}, got "
                f"{dict(zip(da.dims, da.shape, strict=True))}"
            )
        return da

    def _rebuild(self, da, data, lead, coords):
        import xarray as xr

        rest = da.dims[2:]
        keep = {k: v for k, v in da.coords.items() if set(v.dims) <= set(rest)}
        return xr.DataArray(data, dims=lead + rest, coords={**keep, **coords}, name=da.name)

    def orthorectify(self, da):
        """``da`` ``(downtrack, crosstrack, ...)`` on the GLT grid ``(lat, lon, ...)``.

        Cell ``(r, c)`` takes pixel ``(glt_y - 1, glt_x - 1)``; NaN where the GLT is 0.
        ``lat``/``lon`` are the cell centres of the geotransform (lat descending). Lazy
        for a dask-backed input (tile by tile), eager for NumPy.
        """
        da = self._wrap(da, ("downtrack", "crosstrack"), self.sensor_shape, "da")
        iy, ix = self._glt_index
        out = self._rebuild(
            da,
            gather(da.data, iy, ix),
            ("lat", "lon"),
            {
                "lat": ("lat", self.ortho_lat, {"units": "degrees_north"}),
                "lon": ("lon", self.ortho_lon, {"units": "degrees_east"}),
            },
        )
        out.attrs = {**da.attrs, "geotransform": list(self.geotransform), "crs_wkt": self.crs_wkt}
        return out

    def to_sensor(self, ortho_da, *, unreferenced: str = "nan"):
        """An ortho array ``(lat, lon, ...)`` on the GLT grid back to ``(downtrack,
        crosstrack, ...)``: each sensor pixel takes the ortho cell whose GLT entry points
        to it (several: the cell centre nearest to the pixel's lat/lon).

        Pixels that no cell points to are NaN with ``unreferenced="nan"`` (default); with
        ``"nearest"`` they take the cell containing their own lat/lon (NaN if outside
        the grid).
        """
        if unreferenced not in ("nan", "nearest"):
            raise ValueError(f"`unreferenced` must be 'nan' or 'nearest', got {unreferenced!r}")
        da = self._wrap(ortho_da, ("lat", "lon"), self.ortho_shape, "ortho_da")
        rows, cols = self._inverse
        if unreferenced == "nearest":
            r2, c2 = lonlat_to_cell(self.geotransform, self.ortho_shape, self.lon, self.lat)
            miss = rows < 0
            rows = np.where(miss, r2, rows)
            cols = np.where(miss, c2, cols)
        out = self._rebuild(da, gather(da.data, rows, cols), ("downtrack", "crosstrack"), {})
        out.attrs = {k: v for k, v in da.attrs.items() if k not in ("geotransform", "crs_wkt")}
        return out

    def to_local_grid(self, frame=None, pixel_size: float = 60.0, *, bands=None, chunks=(64, 256)):
        """Nearest-neighbour resampling onto a regular metric grid of a local frame.

        Each cell centre ``(x, y)`` goes to lon/lat (``frame.to_lonlat``), to the GLT cell
        containing it, and to the sensor pixel that cell shows; cells outside the GLT grid
        or on an empty GLT cell are NaN and ``valid = False``.

        Args:
            frame: a :class:`plumax_core.LocalFrame`; default centred on the granule
                (``LocalFrame.centred_on(lon, lat)``).
            pixel_size: grid spacing, m; cell centres are multiples of it (the frame
                centre is a cell centre), covering every pixel of the granule.
            bands: None = the good bands; ``(lo, hi)`` nm = the good bands in that range;
                an integer array = exactly those band indices.
            chunks: ``(y, x)`` cells per dask chunk (bands in one chunk).

        Returns:
            ``xarray.Dataset`` with dims ``y``, ``x`` (ascending, m) and ``band`` (nm):
            ``radiance (y, x, band)`` (dask when the granule is), ``valid``,
            ``downtrack_index``/``crosstrack_index`` (-1 none), ``solar_zenith`` and
            ``sensor_zenith`` (degrees, with OBS), 2-D ``lat``/``lon`` and the CF
            ``crs`` of :func:`plumax_core.add_geolocation`, a ``time`` coordinate
            (mid-acquisition) and attrs ``lon0``, ``lat0``, ``time_coverage_start``,
            ``time_coverage_end``, ``granule_id``, ``pixel_size_m``.
        """
        import xarray as xr

        from plumax_core import LocalFrame, add_geolocation

        ps = float(pixel_size)
        if not (np.isfinite(ps) and ps > 0):
            raise ValueError(f"`pixel_size` must be > 0 m, got {pixel_size}")
        ok = np.isfinite(self.lat) & np.isfinite(self.lon)
        if not ok.any():
            raise ValueError(f"granule {self.granule_id} has no finite lat/lon")
        if frame is None:
            frame = LocalFrame.centred_on(self.lon[ok], self.lat[ok])
        elif not isinstance(frame, LocalFrame):
            raise ValueError(f"`frame` must be a plumax_core.LocalFrame, got {type(frame)}")
        if bands is None:
            sel = self.band_indices()
        elif isinstance(bands, tuple) and len(bands) == 2:
            sel = self.band_indices(bands)
        else:
            sel = np.asarray(bands)
            if sel.ndim != 1 or sel.dtype.kind not in "iu" or sel.size == 0:
                raise ValueError("`bands` must be None, (lo, hi) nm or 1-D integer indices")
            if sel.min() < 0 or sel.max() >= self.wavelengths.size:
                raise ValueError(f"`bands` indices must be in [0, {self.wavelengths.size})")
        px, py = frame.to_xy(self.lon[ok], self.lat[ok])
        x = np.arange(np.floor(px.min() / ps), np.ceil(px.max() / ps) + 1) * ps
        y = np.arange(np.floor(py.min() / ps), np.ceil(py.max() / ps) + 1) * ps
        glon, glat = frame.lonlat_grid(x, y)
        r, c = lonlat_to_cell(self.geotransform, self.ortho_shape, glon, glat)
        giy, gix = self._glt_index
        iy = np.where(r >= 0, giy[np.maximum(r, 0), np.maximum(c, 0)], -1)
        ix = np.where(iy >= 0, gix[np.maximum(r, 0), np.maximum(c, 0)], -1)
        rad = gather(self.radiance.data, iy, ix, tile=chunks, last=sel)
        rad_attrs = {k: v for k, v in self.radiance.attrs.items() if k != "good_wavelengths_source"}
        data = {
            "radiance": (("y", "x", "band"), rad, rad_attrs),
            "valid": (("y", "x"), iy >= 0, {"long_name": "cell shows a sensor pixel"}),
            "downtrack_index": (("y", "x"), iy.astype(np.int32), {"long_name": "-1: none"}),
            "crosstrack_index": (("y", "x"), ix.astype(np.int32), {"long_name": "-1: none"}),
        }
        if self.obs is not None:
            for name in ("solar_zenith", "sensor_zenith"):
                vals = gather(np.asarray(self.obs[name].values), iy, ix)
                data[name] = (("y", "x"), vals, dict(self.obs[name].attrs))
        ds = xr.Dataset(
            data,
            coords={
                "x": ("x", x, {"units": "m"}),
                "y": ("y", y, {"units": "m"}),
                "band": ("band", self.wavelengths[sel], {"units": "nm"}),
                "fwhm": ("band", self.fwhm[sel], {"units": "nm"}),
            },
        )
        ds = add_geolocation(ds, frame, time=self.time_mid)
        ds.attrs.update(
            lon0=frame.lon0,
            lat0=frame.lat0,
            time_coverage_start=iso_time(self.time_start),
            time_coverage_end=iso_time(self.time_end),
            granule_id=self.granule_id,
            pixel_size_m=ps,
        )
        return ds
