"""ENVI header files: :func:`read_envi_header` (the format facts and their sources are in
:mod:`plumax_rtm._envi`)."""

from __future__ import annotations

import os
import re

import numpy as np

__all__ = ["ENVI_DATA_TYPES", "read_envi_header"]

#: ENVI ``data type`` codes -> NumPy dtypes (byte order applied separately).
ENVI_DATA_TYPES = {
    1: np.dtype(np.uint8),
    2: np.dtype(np.int16),
    3: np.dtype(np.int32),
    4: np.dtype(np.float32),
    5: np.dtype(np.float64),
    12: np.dtype(np.uint16),
    13: np.dtype(np.uint32),
    14: np.dtype(np.int64),
    15: np.dtype(np.uint64),
}
_COMPLEX_CODES = {6: "complex64", 9: "complex128"}
_INTERLEAVES = ("bsq", "bil", "bip")
# the file's axis order, slowest first, per interleave
_RAW_AXES = {
    "bsq": ("band", "line", "sample"),
    "bil": ("line", "band", "sample"),
    "bip": ("line", "sample", "band"),
}
_REQUIRED = ("samples", "lines", "bands", "data type", "interleave", "byte order")
_ALIASES = {"headeroffset": "header offset"}
# wavelength units (ENVI spellings, lower case) -> factor to nm
_LENGTH_TO_NM = {
    "nanometers": 1.0,
    "nanometer": 1.0,
    "nm": 1.0,
    "micrometers": 1e3,
    "micrometer": 1e3,
    "microns": 1e3,
    "um": 1e3,
    "µm": 1e3,
    "μm": 1e3,
    "millimeters": 1e6,
    "mm": 1e6,
    "centimeters": 1e7,
    "cm": 1e7,
    "meters": 1e9,
    "m": 1e9,
    "angstroms": 0.1,
}
# radiance units (normalised by _norm_units) -> factor to µW cm-2 sr-1 nm-1
# 1 W m-2 = 1e6 µW / 1e4 cm2 = 100 µW cm-2; per µm -> per nm divides by 1000.
_RADIANCE_TO_UW_CM2_SR_NM = {
    "uwcm-2sr-1nm-1": 1.0,
    "uwcm-2nm-1sr-1": 1.0,
    "uw/cm2/sr/nm": 1.0,
    "uw/cm2/nm/sr": 1.0,
    "microwatts/cm2/sr/nm": 1.0,
    "microwatts/cm2/nm/sr": 1.0,
    "mwcm-2sr-1um-1": 1.0,
    "mw/cm2/sr/um": 1.0,
    "mw/cm2/um/sr": 1.0,
    "wm-2sr-1nm-1": 100.0,
    "wm-2nm-1sr-1": 100.0,
    "w/m2/sr/nm": 100.0,
    "w/m2/nm/sr": 100.0,
    "wm-2sr-1um-1": 0.1,
    "wm-2um-1sr-1": 0.1,
    "w/m2/sr/um": 0.1,
    "w/m2/um/sr": 0.1,
}
_UNITS_KEYS = ("data units", "radiance units")
_AVIRIS_NG_RDN = re.compile(r"^ang\d{8}t\d{6}.*_rdn", re.IGNORECASE)
_DEFAULT_LINES = 128
_BINARY_SUFFIXES = ("", ".img", ".dat")


# -- header ---------------------------------------------------------------------------


def _raw_header(path: str) -> dict[str, str]:
    """``key -> value text`` (brace contents without the braces, lines joined by \\n)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().lstrip("\ufeff").splitlines()
    if not lines or not lines[0].strip().startswith("ENVI"):
        raise ValueError(f"{path} is not an ENVI header: its first line must be 'ENVI'")
    out: dict[str, str] = {}
    i = 1
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip() or line.lstrip().startswith(";"):
            continue
        if "=" not in line:
            raise ValueError(f"{path} line {i}: expected `key = value`, got {line.strip()!r}")
        key, value = line.split("=", 1)
        key = " ".join(key.lower().split())
        key = _ALIASES.get(key, key)
        value = value.strip()
        if value.startswith("{"):
            parts = [value[1:]]
            while "}" not in parts[-1]:
                if i >= len(lines):
                    raise ValueError(f"{path}: the braces of `{key}` are never closed")
                nxt = lines[i]
                i += 1
                if not nxt.lstrip().startswith(";"):
                    parts.append(nxt)
            last, _, rest = parts[-1].partition("}")
            if rest.strip():
                raise ValueError(f"{path}: text {rest.strip()!r} after the braces of `{key}`")
            parts[-1] = last
            value = "\n".join(p.strip() for p in parts).strip()
        out[key] = value
    return out


def _int(raw: dict, key: str, path: str) -> int:
    try:
        return int(raw[key].strip())
    except ValueError:
        raise ValueError(f"{path}: `{key}` must be an integer, got {raw[key]!r}") from None


def _floats(raw: dict, key: str, path: str, n: int | None = None) -> np.ndarray:
    items = [s.strip() for s in raw[key].replace("\n", ",").split(",") if s.strip()]
    try:
        arr = np.array([float(s) for s in items], np.float64)
    except ValueError:
        raise ValueError(f"{path}: `{key}` must be a list of numbers, got {raw[key]!r}") from None
    if n is not None and arr.shape != (n,):
        raise ValueError(f"{path}: `{key}` has {arr.size} values for {n} bands")
    return arr


def _map_info(text: str, path: str) -> dict:
    items = [s.strip() for s in text.replace("\n", " ").split(",") if s.strip()]
    if len(items) < 7:
        raise ValueError(
            f"{path}: `map info` needs at least 7 items (projection, reference pixel x, y, "
            f"easting, northing, x and y pixel size), got {len(items)}"
        )
    try:
        num = [float(s) for s in items[1:7]]
    except ValueError:
        raise ValueError(
            f"{path}: `map info` items 2-7 must be numbers, got {items[1:7]}"
        ) from None
    info: dict = {
        "projection": items[0],
        "reference_pixel": (num[0], num[1]),
        "reference_coordinate": (num[2], num[3]),
        "pixel_size": (num[4], num[5]),
    }
    rest = items[7:]
    if items[0].strip().lower() == "utm":
        if len(rest) < 2:
            raise ValueError(f"{path}: a UTM `map info` needs the zone and North/South")
        info["zone"] = int(float(rest[0]))
        info["hemisphere"] = rest[1]
        rest = rest[2:]
    for item in rest:
        if "=" in item:
            k, v = (s.strip() for s in item.split("=", 1))
            try:
                info[k.lower()] = float(v)
            except ValueError:
                info[k.lower()] = v
        elif "datum" not in info:
            info["datum"] = item
    return info


def read_envi_header(path) -> dict:
    """Parse an ENVI ``.hdr`` file into typed values.

    Keys are the header's own, lower case with single spaces. Typed entries:
    ``samples``, ``lines``, ``bands``, ``header offset`` (default 0), ``data type``,
    ``byte order`` (int); ``dtype`` (the NumPy dtype with the file's byte order);
    ``interleave`` (``"bsq" | "bil" | "bip"``); ``wavelength`` and ``fwhm`` (``(bands,)``
    float64, converted to nm when ``wavelength units`` is a length unit, which then reads
    ``"nm"`` and the file's spelling moves to ``source wavelength units``; otherwise left
    as in the file); ``bbl`` (``(bands,)`` float64 multipliers); ``data ignore value``
    (float); ``map info`` (dict: ``projection``, ``reference_pixel`` (1-based file
    coordinates), ``reference_coordinate``, ``pixel_size``, UTM ``zone``/``hemisphere``,
    ``datum``, ``units``, ``rotation``, ...); ``band names`` (list of str);
    ``description`` (str). Any other key keeps its text.

    Raises:
        ValueError: no ``ENVI`` first line, a missing required key (samples, lines, bands,
            data type, interleave, byte order), an unknown data type code or interleave,
            a malformed value, list lengths that differ from ``bands``.
    """
    path = os.fspath(path)
    raw = _raw_header(path)
    for key in _REQUIRED:
        if key not in raw:
            raise ValueError(f"{path}: the required header key `{key}` is missing")
    hdr: dict = dict(raw)
    for key in ("samples", "lines", "bands", "data type", "byte order"):
        hdr[key] = _int(raw, key, path)
    for key in ("samples", "lines", "bands"):
        if hdr[key] <= 0:
            raise ValueError(f"{path}: `{key}` must be positive, got {hdr[key]}")
    hdr["header offset"] = _int(raw, "header offset", path) if "header offset" in raw else 0
    if hdr["header offset"] < 0:
        raise ValueError(f"{path}: `header offset` must be >= 0, got {hdr['header offset']}")
    code = hdr["data type"]
    if code in _COMPLEX_CODES:
        raise ValueError(
            f"{path}: `data type` {code} ({_COMPLEX_CODES[code]}) is complex; radiance "
            f"cubes are real (supported codes {sorted(ENVI_DATA_TYPES)})"
        )
    if code not in ENVI_DATA_TYPES:
        raise ValueError(
            f"{path}: unknown `data type` {code}; expected one of {sorted(ENVI_DATA_TYPES)}"
        )
    if hdr["byte order"] not in (0, 1):
        raise ValueError(
            f"{path}: `byte order` must be 0 (little) or 1 (big), got {raw['byte order']!r}"
        )
    hdr["dtype"] = ENVI_DATA_TYPES[code].newbyteorder("<" if hdr["byte order"] == 0 else ">")
    inter = raw["interleave"].strip().lower()
    if inter not in _INTERLEAVES:
        raise ValueError(
            f"{path}: unknown `interleave` {raw['interleave']!r}; expected bsq, bil or bip"
        )
    hdr["interleave"] = inter
    nb = hdr["bands"]
    for key in ("wavelength", "fwhm", "bbl"):
        if key in raw:
            hdr[key] = _floats(raw, key, path, nb)
    units = raw.get("wavelength units")
    if units is not None:
        factor = _LENGTH_TO_NM.get(units.strip().lower())
        if factor is not None:
            hdr["source wavelength units"] = units.strip()
            hdr["wavelength units"] = "nm"
            for key in ("wavelength", "fwhm"):
                if key in hdr:
                    hdr[key] = hdr[key] * factor
    if "data ignore value" in raw:
        try:
            hdr["data ignore value"] = float(raw["data ignore value"])
        except ValueError:
            raise ValueError(
                f"{path}: `data ignore value` must be a number, got {raw['data ignore value']!r}"
            ) from None
    if "map info" in raw:
        hdr["map info"] = _map_info(raw["map info"], path)
    if "band names" in raw:
        names = [s.strip() for s in raw["band names"].replace("\n", ",").split(",")]
        hdr["band names"] = [s for s in names if s]
    if "description" in raw:
        hdr["description"] = raw["description"].strip()
    return hdr


# -- files ----------------------------------------------------------------------------
