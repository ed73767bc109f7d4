"""ENVI radiance cubes (flat binary + ``.hdr`` header), read lazily as ``(line, sample, band)``.

AVIRIS-NG L1B ``rdn`` files, PRISMA-like products or any imaging spectrometer exported to ENVI
share one layout: a flat binary file and a text header beside it. :func:`read_envi_header`
parses the header into typed values; :func:`open_envi` maps the binary file lazily
(``numpy.memmap`` opened per dask chunk) into an ``xarray.DataArray`` with dims ``(line,
sample, band)`` whatever the file's interleave; :func:`write_envi` writes the same layout
(for tests and examples).

Facts of the format used here and their sources:

* NV5 Geospatial (formerly L3Harris / Exelis) ENVI help, "ENVI Header Files"
  (``nv5geospatialsoftware.com/docs/enviheaderfiles.html``; the older "The ENVI Header
  Format" chapter of *Getting Started with ENVI*): the header starts with the text
  ``ENVI``; ``key = value`` lines; values in braces may span lines; a line whose first
  character is ``;`` is a comment. Required fields: ``samples`` (pixels per line),
  ``lines``, ``bands``, ``data type``, ``interleave``, ``byte order``; ``header offset``
  (bytes skipped before the data) defaults to 0. ``byte order`` 0 = least significant
  byte first (little endian), 1 = most significant first (big endian). ``data type``
  codes: 1 uint8, 2 int16, 3 int32, 4 float32, 5 float64, 6 complex64, 9 complex128,
  12 uint16, 13 uint32, 14 int64, 15 uint64 (the same table is in ENVI's
  ``ENVI_SETUP_HEAD`` help and in public readers, e.g. the R ``raster`` ENVI writer and
  HyTools). ``interleave``: ``bsq`` (band sequential: ``[band][line][sample]``), ``bil``
  (band interleaved by line: ``[line][band][sample]``), ``bip`` (band interleaved by
  pixel: ``[line][sample][band]``) (also Esri "BIL, BIP and BSQ raster files").
  ``wavelength`` = band centres and ``fwhm`` = full widths at half maximum, both in
  ``wavelength units`` (ENVI's list: Micrometers/um, Nanometers/nm, Millimeters,
  Centimeters, Meters, Wavenumber, Angstroms, GHz, MHz, Index, Unknown); ``bbl`` = bad
  band multipliers (0 bad, 1 good); ``data ignore value`` = a pixel value to ignore;
  ``map info`` = ``{projection name, reference pixel x, reference pixel y (file
  coordinates, 1-based), pixel easting, pixel northing, x pixel size, y pixel size,
  [UTM zone, North|South,] datum, units=..., rotation=...}``.
* AVIRIS-NG data product readme (JPL, "AVIRIS-NG Data Product Distribution Document",
  Lundeen, Green, Eastwood, Thompson; shipped as ``ang<date>t<time>_README*.txt``): file
  names ``angYYYYMMDDtHHNNSS_rdn_<version>_img`` with the header appended as ``.hdr`` (no
  extension on the binary), companions ``_obs_ort`` (observation geometry on the GLT grid),
  ``_obs``, ``_loc`` (lon/lat/elevation, BIL float64), ``_igm`` and ``_glt`` (geometric
  look-up table, BIP int32; negative = nearest-neighbour infill); the radiance is
  calibrated, "microwatts per centimeter_squared per nanometer per steradian", band
  interleaved by line, 32-bit float. AVIRIS-Classic readmes (``f<yymmdd>t01p00r<nn>``)
  describe 16-bit integer radiance that is divided by per-band gains (``.gain``) to get
  µW cm⁻² nm⁻¹ sr⁻¹ — hence ``radiance_scale`` may be a per-band array.

Units are converted once, here, into :data:`RADIANCE_UNITS` (µW cm⁻² sr⁻¹ nm⁻¹; the same
constant the EMIT reader uses). ENVI has no standard header key for the data's units
(none is listed on the "ENVI Header Files" page), so :func:`open_envi` reads the units from
a ``data units`` or ``radiance units`` key when one is present (a convention of some
producers and of :func:`write_envi`), knows AVIRIS-NG ``rdn`` files by their name, and
otherwise refuses to guess: pass ``radiance_scale``.

Not confirmed: the byte order of AVIRIS-NG ``rdn`` files from the readme alone (one
version of the readme says "32-bit big-endian floating point Intel" for the radiance and
"little-endian" for the reflectance; third-party AVIRIS-NG loaders say little endian) —
the header's ``byte order`` is authoritative and is what is read; whether every AVIRIS-NG
header carries ``wavelength units`` (a header without it is refused rather than assumed to
be nm); the ENVI convention for the reference pixel of ``map info`` (corner vs centre of
pixel 1,1), so ``map info`` is parsed and kept in the attributes but no map coordinates
are derived from it; support for 64-bit integer codes 14/15 in ENVI itself (the ENVI
"Image Files" page says the raster format does not support them; the header pages list
them) — they are read as int64/uint64.
"""

from __future__ import annotations

import os
import re

import numpy as np

from ._emit_write import RADIANCE_UNITS
from ._envi_header import (
    _AVIRIS_NG_RDN,
    _BINARY_SUFFIXES,
    _DEFAULT_LINES,
    _INTERLEAVES,
    _RADIANCE_TO_UW_CM2_SR_NM,
    _RAW_AXES,
    _UNITS_KEYS,
    ENVI_DATA_TYPES,
    read_envi_header,
)

__all__ = ["ENVI_DATA_TYPES", "open_envi", "read_envi_header", "write_envi"]


def _pair(path: str) -> tuple[str, str]:
    """``(binary, header)`` paths from either of them."""
    if path.lower().endswith(".hdr"):
        if not os.path.isfile(path):
            raise ValueError(f"header {path} does not exist")
        stem = path[:-4]
        found = [stem + s for s in _BINARY_SUFFIXES if os.path.isfile(stem + s)]
        if not found:
            raise ValueError(
                f"no binary file for header {path}: tried "
                + ", ".join(repr(stem + s) for s in _BINARY_SUFFIXES)
            )
        if len(found) > 1:
            raise ValueError(f"header {path} matches several binary files {found}: pass one")
        return found[0], path
    if not os.path.isfile(path):
        raise ValueError(f"`path` {path} does not exist")
    root = os.path.splitext(path)[0]
    tried = [path + ".hdr", path + ".HDR"]
    if root != path:
        tried += [root + ".hdr", root + ".HDR"]
    for cand in tried:
        if os.path.isfile(cand):
            return path, cand
    raise ValueError(f"no ENVI header for {path}: tried " + ", ".join(map(repr, tried)))


class _MappedCube:
    """Array-like view of the binary file in its native axis order: each ``[]`` opens a
    ``numpy.memmap``, copies the slice into native byte order and closes the map (so a
    dask graph holds no open file and can be shipped to workers)."""

    def __init__(self, path: str, file_dtype: np.dtype, shape: tuple, offset: int):
        self.path, self.file_dtype, self.shape, self.offset = path, file_dtype, shape, offset
        self.dtype = file_dtype.newbyteorder("=")
        self.ndim = len(shape)

    def __getitem__(self, key):
        mm = np.memmap(self.path, self.file_dtype, "r", self.offset, self.shape)
        try:
            return np.array(mm[key], dtype=self.dtype)
        finally:
            del mm


def _chunks(chunks, shape: dict) -> dict:
    out = {"line": _DEFAULT_LINES, "sample": -1, "band": -1}
    if chunks is not None:
        if not isinstance(chunks, dict):
            raise ValueError(f"`chunks` must be a dict over line/sample/band, got {chunks!r}")
        for k, v in chunks.items():
            if k not in out:
                raise ValueError(f"`chunks` key {k!r} is not one of line, sample, band")
            out[k] = v
    return {k: (shape[k] if v in (-1, None) else int(v)) for k, v in out.items()}


def _norm_units(units: str) -> str:
    u = units.strip().lower().replace("µ", "u").replace("μ", "u")
    u = u.replace("^", "").replace("*", "")
    return re.sub(r"[\s()_]", "", u)


def _units(hdr: dict, binary: str, radiance_scale, nb: int, path: str):
    """``(scale, source_units, how)``: the factor into µW cm-2 sr-1 nm-1 and its origin."""
    given = next((hdr[k] for k in _UNITS_KEYS if k in hdr), None)
    if radiance_scale is not None:
        scale = np.asarray(radiance_scale, np.float64)
        if scale.shape not in ((), (nb,)) or not np.all(np.isfinite(scale) & (scale > 0)):
            raise ValueError(
                f"`radiance_scale` must be a positive finite scalar or ({nb},) per-band "
                f"array, got shape {scale.shape}"
            )
        return scale, given or "", "radiance_scale argument"
    if given is not None:
        factor = _RADIANCE_TO_UW_CM2_SR_NM.get(_norm_units(given))
        if factor is None:
            raise ValueError(
                f"{path}: radiance units {given!r} are not known; pass `radiance_scale` "
                f"(the factor into {RADIANCE_UNITS}) to read them"
            )
        return np.asarray(factor), given, "header"
    if _AVIRIS_NG_RDN.match(os.path.basename(binary)):
        return (
            np.asarray(1.0),
            "microwatts per centimeter_squared per nanometer per steradian",
            ("AVIRIS-NG rdn product (JPL AVIRIS-NG data product readme)"),
        )
    raise ValueError(
        f"{path}: the header gives no radiance units (no `data units` or `radiance units` "
        f"key) and the file is not an AVIRIS-NG rdn product; pass `radiance_scale` (e.g. "
        f"1.0 if already {RADIANCE_UNITS}, per-band 1/gain for AVIRIS-Classic integers)"
    )


def open_envi(path, *, chunks=None, radiance_scale=None):
    """Open an ENVI radiance cube lazily as ``DataArray (line, sample, band)``.

    Args:
        path: the ``.hdr`` header or the binary file; the partner is found beside it
            (header ``X.hdr`` -> binary ``X``, ``X.img`` or ``X.dat``; binary ``X`` or
            ``X.ext`` -> ``X.hdr`` / ``X.ext.hdr``).
        chunks: dask chunks by output dim, e.g. ``{"line": 64}``; default 128 lines per
            chunk, all samples and bands (-1 = the whole axis).
        radiance_scale: factor (scalar or ``(bands,)``) taking the stored numbers into
            µW cm⁻² sr⁻¹ nm⁻¹; overrides the header's units. Without it the units come
            from a ``data units`` / ``radiance units`` header key (known spellings of
            µW cm⁻² sr⁻¹ nm⁻¹, mW cm⁻² sr⁻¹ µm⁻¹, W m⁻² sr⁻¹ nm⁻¹ and W m⁻² sr⁻¹ µm⁻¹) or
            from an AVIRIS-NG ``ang..._rdn...`` file name (already µW cm⁻² sr⁻¹ nm⁻¹ per
            the JPL readme: scale 1); anything else is refused.

    Returns:
        ``xarray.DataArray`` named ``radiance``, dask-backed (float32 for float32 and
        8/16-bit integer files, float64 otherwise), units :data:`RADIANCE_UNITS`, NaN
        where the stored value equals ``data ignore value``; coordinates ``band``
        (centres, nm, strictly ascending), ``fwhm`` (nm, when in the header) and
        ``good_band`` (bool, ``bbl != 0``; all True without ``bbl``). ``attrs`` hold the
        units' origin, ``map_info``, ``description`` and the parsed header
        (``envi_header``). The file is read only when values are computed.

    Raises:
        ValueError: header errors (:func:`read_envi_header`), no partner file, a file
            size that differs from ``header offset + lines*samples*bands*itemsize``, no
            ``wavelength`` or a non-length ``wavelength units``, non-ascending
            wavelengths, unknown radiance units without ``radiance_scale``, bad ``chunks``.
    """
    import dask.array as da
    import xarray as xr
    from dask.base import tokenize

    binary, hdr_path = _pair(os.fspath(path))
    hdr = read_envi_header(hdr_path)
    nl, ns, nb = hdr["lines"], hdr["samples"], hdr["bands"]
    fdt = hdr["dtype"]
    expected = hdr["header offset"] + nl * ns * nb * fdt.itemsize
    size = os.path.getsize(binary)
    if size != expected:
        raise ValueError(
            f"{binary} has {size} bytes; the header implies {expected} (`header offset` "
            f"{hdr['header offset']} + lines {nl} x samples {ns} x bands {nb} x "
            f"{fdt.itemsize} bytes of `data type` {hdr['data type']})"
        )
    if "wavelength" not in hdr:
        raise ValueError(f"{hdr_path}: no `wavelength` key; band centres are needed")
    if hdr.get("wavelength units") != "nm":
        raise ValueError(
            f"{hdr_path}: `wavelength units` is {hdr.get('wavelength units')!r}; expected "
            "a length unit (Nanometers, Micrometers, ...)"
        )
    wl = hdr["wavelength"]
    if not (np.all(np.isfinite(wl)) and np.all(np.diff(wl) > 0)):
        raise ValueError(f"{hdr_path}: `wavelength` must be finite and strictly ascending")
    scale, source_units, how = _units(hdr, binary, radiance_scale, nb, hdr_path)

    raw_axes = _RAW_AXES[hdr["interleave"]]
    sizes = {"line": nl, "sample": ns, "band": nb}
    ch = _chunks(chunks, sizes)
    cube = _MappedCube(binary, fdt, tuple(sizes[a] for a in raw_axes), hdr["header offset"])
    name = "envi-" + tokenize(os.path.abspath(binary), os.path.getmtime(binary), size, fdt.str)
    arr = da.from_array(
        cube,
        chunks=tuple(ch[a] for a in raw_axes),
        name=name,
        lock=False,
        meta=np.empty((0, 0, 0), cube.dtype),
    )
    arr = arr.transpose(tuple(raw_axes.index(a) for a in ("line", "sample", "band")))
    out_dtype = np.float32 if cube.dtype.kind == "f" and cube.dtype.itemsize == 4 else np.float64
    if cube.dtype.kind in "iu" and cube.dtype.itemsize <= 2:
        out_dtype = np.float32
    x = arr.astype(out_dtype)
    ignore = hdr.get("data ignore value")
    if ignore is not None:
        x = da.where(arr == ignore, np.nan, x)
    if not (scale.ndim == 0 and float(scale) == 1.0):
        x = x * scale.astype(out_dtype)

    coords = {"band": ("band", wl, {"units": "nm", "long_name": "band centre wavelength"})}
    if "fwhm" in hdr:
        coords["fwhm"] = (
            "band",
            hdr["fwhm"],
            {"units": "nm", "long_name": "full width at half maximum"},
        )
    good = hdr["bbl"] != 0 if "bbl" in hdr else np.ones(nb, bool)
    coords["good_band"] = ("band", good, {"long_name": "good band (ENVI bbl != 0)"})
    attrs = {
        "units": RADIANCE_UNITS,
        "long_name": "at-sensor spectral radiance",
        "source_units": source_units,
        "units_source": how,
        "radiance_scale": scale.tolist(),
        "good_band_source": "bbl" if "bbl" in hdr else "all (no bbl)",
        "interleave": hdr["interleave"],
        "source_path": binary,
        "header_path": hdr_path,
        "envi_header": hdr,
    }
    for key in ("description", "map info", "data ignore value"):
        if key in hdr:
            attrs[key.replace(" ", "_")] = hdr[key]
    return xr.DataArray(
        x, dims=("line", "sample", "band"), coords=coords, attrs=attrs, name="radiance"
    )


def _fmt_list(values, fmt: str, per_line: int = 8) -> str:
    items = [format(float(v), fmt) for v in values]
    rows = [", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]
    return "{\n " + ",\n ".join(rows) + "}"


def write_envi(
    path,
    cube,
    wavelengths,
    *,
    fwhm=None,
    interleave: str = "bil",
    dtype="float32",
    byte_order: int = 0,
    data_ignore_value=None,
    bbl=None,
    units: str | None = RADIANCE_UNITS,
    description: str | None = None,
) -> tuple[str, str]:
    """Write ``cube (line, sample, band)`` as an ENVI binary file and its ``.hdr``.

    The header goes to ``X.hdr`` for a binary ``X.img`` / ``X.dat`` and to ``path +
    ".hdr"`` otherwise (the AVIRIS-NG style, binary without extension). Lists (wavelength,
    fwhm, bbl) are written over several lines in braces; ``wavelength units =
    Nanometers``; ``data units = <units>`` unless ``units`` is None (ENVI has no standard
    key for it; :func:`open_envi` reads this one).

    Args:
        path: the binary file to create (must not exist; nor its header).
        cube: ``(line, sample, band)`` array; NaN is written as ``data_ignore_value``
            when given. Integer dtypes get the values rounded to nearest.
        wavelengths: ``(band,)`` strictly ascending band centres, nm.
        fwhm: ``(band,)`` nm, optional.
        interleave: ``"bsq"``, ``"bil"`` or ``"bip"``.
        dtype: one of the ENVI types (uint8, int16, int32, float32, float64, uint16,
            uint32, int64, uint64).
        byte_order: 0 little endian, 1 big endian.
        data_ignore_value: written as ``data ignore value``.
        bbl: ``(band,)`` bad band list (0 bad, 1 good).
        units: the radiance units string, or None to write no units key.
        description: free text for ``description``.

    Returns:
        ``(binary_path, header_path)``.
    """
    path = os.fspath(path)
    if path.lower().endswith(".hdr"):
        raise ValueError(f"`path` must be the binary file, not a header: {path}")
    root, ext = os.path.splitext(path)
    hdr_path = root + ".hdr" if ext.lower() in (".img", ".dat") else path + ".hdr"
    for p in (path, hdr_path):
        if os.path.exists(p):
            raise FileExistsError(f"{p} exists; write_envi does not overwrite")
    data = np.asarray(cube)
    if data.ndim != 3 or 0 in data.shape:
        raise ValueError(f"`cube` must be a non-empty (line, sample, band) array, got {data.shape}")
    nl, ns, nb = data.shape
    wl = np.asarray(wavelengths, np.float64)
    if wl.shape != (nb,) or not (np.all(np.isfinite(wl)) and np.all(np.diff(wl) > 0)):
        raise ValueError(
            f"`wavelengths` must be ({nb},) finite and strictly ascending, got {wl.shape}"
        )
    if interleave not in _INTERLEAVES:
        raise ValueError(f"`interleave` must be bsq, bil or bip, got {interleave!r}")
    if byte_order not in (0, 1):
        raise ValueError(f"`byte_order` must be 0 (little) or 1 (big), got {byte_order!r}")
    dt = np.dtype(dtype)
    codes = {v: k for k, v in ENVI_DATA_TYPES.items()}
    if dt not in codes:
        raise ValueError(f"`dtype` {dt} has no ENVI data type; use one of {list(map(str, codes))}")
    lists = {}
    for key, arr in (("fwhm", fwhm), ("bbl", bbl)):
        if arr is not None:
            a = np.asarray(arr, np.float64)
            if a.shape != (nb,) or not np.all(np.isfinite(a)):
                raise ValueError(f"`{key}` must be ({nb},) finite values, got shape {a.shape}")
            lists[key] = a
    values = data.astype(np.float64) if dt.kind in "iu" else data.astype(dt)
    if data_ignore_value is not None:
        values = np.where(np.isnan(values), data_ignore_value, values)
    if dt.kind in "iu":
        if not np.all(np.isfinite(values)):
            raise ValueError(f"`cube` has NaN/inf that {dt} cannot hold; set `data_ignore_value`")
        info = np.iinfo(dt)
        values = np.rint(values)
        if values.min() < info.min or values.max() > info.max:
            raise ValueError(f"`cube` values exceed the range of {dt}")
    perm = tuple(("line", "sample", "band").index(a) for a in _RAW_AXES[interleave])
    raw = np.ascontiguousarray(np.transpose(values, perm)).astype(
        dt.newbyteorder("<" if byte_order == 0 else ">")
    )
    if description and ("{" in description or "}" in description):
        raise ValueError("`description` must not contain braces")
    head = ["ENVI"]
    if description:
        head.append("description = {\n " + description.strip() + "}")
    head += [
        f"samples = {ns}",
        f"lines = {nl}",
        f"bands = {nb}",
        "header offset = 0",
        "file type = ENVI Standard",
        f"data type = {codes[dt]}",
        f"interleave = {interleave}",
        f"byte order = {byte_order}",
        "wavelength units = Nanometers",
        "wavelength = " + _fmt_list(wl, ".6f"),
    ]
    if "fwhm" in lists:
        head.append("fwhm = " + _fmt_list(lists["fwhm"], ".6f"))
    if "bbl" in lists:
        head.append("bbl = " + _fmt_list(lists["bbl"], "g", per_line=20))
    if data_ignore_value is not None:
        head.append(f"data ignore value = {float(data_ignore_value):g}")
    if units is not None:
        head.append(f"data units = {units}")
    raw.tofile(path)
    with open(hdr_path, "w", encoding="utf-8") as f:
        f.write("\n".join(head) + "\n")
    return path, hdr_path
