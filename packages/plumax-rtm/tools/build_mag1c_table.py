"""Derive plumax-rtm's shipped effective CH4 absorption table from mag1c's MODTRAN LUT.

Run once (needs the ``mag1c`` distribution installed; the module is never imported, since
its ``__init__`` imports torch):

    uv run python packages/plumax-rtm/tools/build_mag1c_table.py

Source: ``mag1c/ch4.lut`` + ``ch4.hdr`` (mag1c, BSD-3-Clause, Foote et al. 2020,
"Fast and accurate retrieval of methane concentration from imaging spectrometer data
using sparsity prior", IEEE TGRS 58, 6480): MODTRAN top-of-atmosphere radiance on 31,800
channels (1399.6-2522.0 nm) for CH4 enhancements 0, 500, 1000, 2000, 4000, 8000 and
16000 ppm·m, ENVI band-sequential float64.

Derivation (LOW enhancements only, so the higher ones stay an independent test): per
channel, the least-squares slope through the origin of ``τ(c) = -ln(L(c)/L(0))`` against
``c`` for ``c ∈ {500, 1000}`` ppm·m: ``k = Σ c τ(c) / Σ c²`` ((ppm·m)⁻¹). Negative
slopes (numerical noise in channels without CH4 absorption) are set to 0. ``L(0)`` is
stored too (the MODTRAN background radiance, a realistic SWIR spectrum for demos).
"""

import importlib.metadata
import os
import pathlib
import re

import numpy as np
import xarray as xr

CONCENTRATIONS = np.array([0.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0, 16000.0])
OUT = pathlib.Path(__file__).resolve().parents[1] / "src/plumax_rtm/data/ch4_mag1c_effective.nc"


def mag1c_files() -> tuple[pathlib.Path, pathlib.Path]:
    files = {str(f): f for f in importlib.metadata.files("mag1c")}
    return pathlib.Path(files["mag1c/ch4.hdr"].locate()), pathlib.Path(
        files["mag1c/ch4.lut"].locate()
    )


def read_envi(hdr: pathlib.Path, data: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
    """Wavelengths (nm) and radiance ``(bands, samples)`` from the ENVI header + data file."""
    text = hdr.read_text()

    def key(name):
        return re.search(rf"^{name}\s*=\s*(.+)$", text, re.M).group(1).strip()

    samples, lines, bands = int(key("samples")), int(key("lines")), int(key("bands"))
    assert key("data type") == "5" and key("interleave") == "bsq" and key("byte order") == "0"
    wl = re.search(r"wavelength\s*=\s*\{([^}]*)\}", text).group(1)
    wl = np.array([float(v) for v in wl.replace("\n", " ").split(",")])
    raw = np.fromfile(data, dtype="<f8")
    assert raw.size == samples * lines * bands and wl.size == bands
    return wl, raw.reshape(bands, lines, samples)[:, 0, :]


def derive(wl: np.ndarray, rad: np.ndarray) -> xr.Dataset:
    l0 = rad[:, 0]
    low = [1, 2]  # 500 and 1000 ppm m
    c = CONCENTRATIONS[low]
    with np.errstate(divide="ignore", invalid="ignore"):
        tau = -np.log(rad[:, low] / l0[:, None])
    tau = np.where(np.isfinite(tau), tau, 0.0)
    k = tau @ c / np.sum(c**2)
    n_neg = int(np.sum(k < 0))
    k = np.maximum(k, 0.0)
    version = importlib.metadata.version("mag1c")
    ds = xr.Dataset(
        {
            "absorption": (
                "wavelength",
                k.astype(np.float32),
                {
                    "units": "(ppm m)-1",
                    "long_name": "effective two-way CH4 absorption per unit enhancement "
                    "at the MODTRAN reference geometry",
                },
            ),
            "reference_radiance": (
                "wavelength",
                l0.astype(np.float32),
                {
                    "units": "uW cm-2 sr-1 nm-1",
                    "long_name": "MODTRAN top-of-atmosphere radiance without enhancement",
                },
            ),
        },
        coords={
            "wavelength": (
                "wavelength",
                wl.astype(np.float32),
                {"units": "nm", "long_name": "vacuum wavelength of MODTRAN channel"},
            )
        },
        attrs={
            "Conventions": "CF-1.8",
            "title": "Effective CH4 absorption table derived from the mag1c MODTRAN LUT",
            "source": f"mag1c {version} ch4.lut/ch4.hdr (MODTRAN TOA radiance, 31800 channels)",
            "source_license": "BSD-3-Clause (mag1c, Foote et al.)",
            "references": "Foote, M. D. et al. (2020), Fast and accurate retrieval of methane "
            "concentration from imaging spectrometer data using sparsity prior, IEEE TGRS "
            "58(9), 6480-6492, doi:10.1109/TGRS.2020.2976888",
            "derivation": "k = sum_c c*tau(c) / sum_c c^2 with tau(c) = -ln(L(c)/L(0)) for "
            "c in {500, 1000} ppm m only (low enhancements; 2000-16000 held out); "
            f"negative slopes set to 0 ({n_neg} channels)",
            "reference_air_mass_factor": 2.0,
            "reference_air_mass_factor_comment": "the MODTRAN geometry is not recorded in "
            "ch4.hdr; absorption is two-way at that geometry and is rescaled by AMF/2 "
            "(a nominal nadir-sun/nadir-view assumption)",
            "history": "packages/plumax-rtm/tools/build_mag1c_table.py",
        },
    )
    return ds


def main() -> None:
    wl, rad = read_envi(*mag1c_files())
    ds = derive(wl, rad)
    enc = {v: {"zlib": True, "complevel": 9} for v in ("absorption", "reference_radiance")}
    tmp = OUT.with_suffix(".nc.tmp")
    ds.to_netcdf(tmp, encoding=enc)
    os.replace(tmp, OUT)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
