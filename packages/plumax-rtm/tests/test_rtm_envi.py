"""ENVI radiance cubes: header parsing, every interleave and byte order, masking, laziness.

The layout facts tested here come from the NV5 Geospatial (L3Harris) "ENVI Header Files"
help page (``ENVI`` first line, ``key = value``, braces over several lines, ``;`` comment
lines, data type codes, interleave, byte order 0/1, ``wavelength units``, ``bbl``, ``data
ignore value``, ``map info``) and the JPL AVIRIS-NG data product readme (``ang..._rdn_..._img``
binary without extension beside ``.hdr``, radiance in µW cm⁻² sr⁻¹ nm⁻¹, BIL float32).
Binary layouts are checked byte by byte against NumPy written independently of
:func:`plumax_rtm.write_envi` (``raw_bytes``), so the writer is tested against the format
and the reader against both; and the files are read by a peer library in the same test,
Spectral Python (SPy, ``spectral.envi.open``).
"""

from pathlib import Path

import dask.array as da
import numpy as np
import pytest

import plumax_rtm as pr

RADIANCE_UNITS = "uW cm-2 sr-1 nm-1"


def cube(nl=7, ns=5, nb=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(1.0, 12.0, (nl, ns, nb)).astype(np.float32)


def raw_bytes(c, interleave, dtype):
    """The file body by the ENVI definitions: BSQ [band][line][sample], BIL
    [line][band][sample], BIP [line][sample][band]."""
    order = {"bsq": (2, 0, 1), "bil": (0, 2, 1), "bip": (0, 1, 2)}[interleave]
    return np.transpose(c, order).astype(dtype).tobytes()


def write_header(path, body):
    path.write_text("ENVI\n" + body)
    return path


@pytest.mark.parametrize("interleave", ["bsq", "bil", "bip"])
@pytest.mark.parametrize("byte_order", [0, 1])
def test_round_trip_every_interleave_and_byte_order(tmp_path, interleave, byte_order):
    c = cube()
    wl = np.array([2200.0, 2250.0, 2300.0, 2350.0])
    b, h = pr.write_envi(
        tmp_path / f"c_{interleave}{byte_order}.img",
        c,
        wl,
        fwhm=np.full(4, 8.0),
        interleave=interleave,
        byte_order=byte_order,
    )
    assert h.endswith(f"c_{interleave}{byte_order}.hdr")
    # the bytes on disk are the ENVI layout, built here without the writer
    expect = raw_bytes(c, interleave, np.dtype(np.float32).newbyteorder("<>"[byte_order]))
    assert Path(b).read_bytes() == expect
    for p in (b, h):  # either file opens the pair
        r = pr.open_envi(p)
        assert r.dims == ("line", "sample", "band")
        assert r.dtype == np.float32
        np.testing.assert_array_equal(r.values, c)
        np.testing.assert_array_equal(r["band"].values, wl)
        np.testing.assert_array_equal(r["fwhm"].values, 8.0)
        assert r.attrs["units"] == RADIANCE_UNITS
        assert r.attrs["interleave"] == interleave
        assert r["good_band"].values.all()


@pytest.mark.parametrize("interleave", ["bsq", "bil", "bip"])
@pytest.mark.parametrize(("dtype", "byte_order"), [("float32", 1), ("int16", 0), ("uint16", 1)])
def test_peer_spectral_python_reads_the_same_cube(tmp_path, interleave, dtype, byte_order):
    envi = pytest.importorskip("spectral.io.envi")
    c = np.round(cube() * 10.0).astype(dtype)
    wl = np.array([2200.0, 2250.0, 2300.0, 2350.0])
    b, h = pr.write_envi(
        tmp_path / f"p_{interleave}",
        c,
        wl,
        fwhm=np.full(4, 8.0),
        interleave=interleave,
        dtype=dtype,
        byte_order=byte_order,
        bbl=[1, 0, 1, 1],
    )
    peer = envi.open(h, b)
    ours = pr.open_envi(h)
    np.testing.assert_array_equal(ours.values, np.asarray(peer.load(), np.float64))
    np.testing.assert_allclose(ours["band"].values, peer.bands.centers)
    np.testing.assert_allclose(ours["fwhm"].values, peer.bands.bandwidths)
    np.testing.assert_array_equal(
        ours["good_band"].values, np.asarray(peer.metadata["bbl"], float) > 0
    )
    assert (peer.nrows, peer.ncols, peer.nbands) == ours.shape


@pytest.mark.parametrize(
    ("dtype", "code", "out"),
    [("int16", 2, np.float32), ("float32", 4, np.float32), ("float64", 5, np.float64)],
)
def test_data_types(tmp_path, dtype, code, out):
    c = np.round(cube(nl=6, ns=3, nb=5) * 100.0)
    wl = np.linspace(1000.0, 2000.0, 5)
    b, h = pr.write_envi(tmp_path / "t", c, wl, dtype=dtype, interleave="bip")
    assert h == b + ".hdr"  # AVIRIS-NG style: binary without extension, header appended
    hdr = pr.read_envi_header(h)
    assert hdr["data type"] == code
    assert hdr["dtype"] == np.dtype(dtype).newbyteorder("<")
    r = pr.open_envi(b)
    assert r.dtype == out
    np.testing.assert_array_equal(r.values, c)


def test_header_parsing_braces_comments_micrometres(tmp_path):
    body = """; a comment line at the top
description = {
  AVIRIS-NG style test header
  spanning two lines}
samples = 3
lines   = 2
bands   = 4
header offset = 16
file type = ENVI Standard
data type = 12
interleave = BIL
byte order = 1
; a comment between keys
map info = {UTM, 1.000, 1.000, 724522.127, 3289425.638, 5.0000000000e+00,
 5.0000000000e+00, 11, North, WGS-84, units=Meters, rotation=75.00000000}
wavelength units = Micrometers
wavelength = {
 0.400, 0.410,
; a comment inside the braces
 0.420, 0.430}
fwhm = { 0.005, 0.005, 0.006, 0.006 }
bbl = {1, 0, 1, 1}
band names = {b1, b2,
 b3, b4}
Data Ignore Value = -9999
"""
    h = write_header(tmp_path / "x.hdr", body)
    hdr = pr.read_envi_header(h)
    assert (hdr["samples"], hdr["lines"], hdr["bands"]) == (3, 2, 4)
    assert hdr["header offset"] == 16
    assert hdr["data type"] == 12 and hdr["dtype"] == np.dtype(">u2")
    assert hdr["interleave"] == "bil" and hdr["byte order"] == 1
    np.testing.assert_allclose(hdr["wavelength"], [400.0, 410.0, 420.0, 430.0])
    np.testing.assert_allclose(hdr["fwhm"], [5.0, 5.0, 6.0, 6.0])
    assert hdr["wavelength units"] == "nm"
    assert hdr["source wavelength units"] == "Micrometers"
    np.testing.assert_array_equal(hdr["bbl"], [1, 0, 1, 1])
    assert hdr["band names"] == ["b1", "b2", "b3", "b4"]
    assert hdr["data ignore value"] == -9999.0
    assert hdr["description"] == "AVIRIS-NG style test header\nspanning two lines"
    assert hdr["file type"] == "ENVI Standard"
    mi = hdr["map info"]
    assert mi["projection"] == "UTM" and mi["zone"] == 11 and mi["hemisphere"] == "North"
    assert mi["reference_pixel"] == (1.0, 1.0)
    assert mi["reference_coordinate"] == (724522.127, 3289425.638)
    assert mi["pixel_size"] == (5.0, 5.0)
    assert mi["datum"] == "WGS-84" and mi["units"] == "Meters" and mi["rotation"] == 75.0
    # the binary with a 16-byte embedded header, big-endian uint16, BIL
    c = np.arange(2 * 3 * 4, dtype=np.float64).reshape(2, 3, 4) + 1.0
    (tmp_path / "x.dat").write_bytes(b"\x00" * 16 + raw_bytes(c, "bil", ">u2"))
    r = pr.open_envi(h, radiance_scale=0.5)
    np.testing.assert_array_equal(r.values, 0.5 * c)
    np.testing.assert_array_equal(r["good_band"].values, [True, False, True, True])
    assert r.attrs["map_info"]["zone"] == 11
    assert r.attrs["units_source"] == "radiance_scale argument"


def test_bbl_and_data_ignore_value(tmp_path):
    c = cube(nl=8, ns=6, nb=5).astype(np.float64)
    c[2, 3, 1] = np.nan  # one value
    c[:, :, 4] = np.nan  # a dead band
    bbl = [1, 1, 1, 1, 0]
    b, _ = pr.write_envi(
        tmp_path / "m.dat",
        c,
        np.arange(5) * 10.0 + 2000.0,
        dtype="int16",
        data_ignore_value=-9999,
        bbl=bbl,
    )
    # on disk the NaNs are the ignore value (an int16 file cannot hold NaN)
    stored = np.frombuffer(Path(b).read_bytes(), "<i2").reshape(8, 5, 6)  # BIL
    assert stored[2, 1, 3] == -9999 and np.all(stored[:, 4, :] == -9999)
    r = pr.open_envi(b)
    v = r.values
    assert np.isnan(v[2, 3, 1]) and np.all(np.isnan(v[..., 4]))
    assert np.isfinite(v).sum() == v.size - 1 - 8 * 6
    np.testing.assert_array_equal(r["good_band"].values, np.array(bbl, bool))
    good = r.isel(band=r["good_band"].values)
    assert good.sizes["band"] == 4
    np.testing.assert_array_equal(
        v[..., :4][np.isfinite(v[..., :4])], np.rint(c[..., :4])[np.isfinite(c[..., :4])]
    )
    assert r.attrs["data_ignore_value"] == -9999.0


def test_lazy_dask_reading_and_chunks(tmp_path):
    c = cube(nl=40, ns=9, nb=6)
    b, _ = pr.write_envi(tmp_path / "lazy", c, np.linspace(2100, 2400, 6), interleave="bsq")
    r = pr.open_envi(b, chunks={"line": 16})
    assert isinstance(r.data, da.Array)
    assert r.chunks == ((16, 16, 8), (9,), (6,))
    np.testing.assert_array_equal(r.isel(line=slice(10, 20)).values, c[10:20])
    r2 = pr.open_envi(b, chunks={"band": 2, "sample": 4})
    assert r2.chunks == ((40,), (4, 4, 1), (2, 2, 2))
    np.testing.assert_array_equal(r2.values, c)
    with pytest.raises(ValueError, match="`chunks` key 'y'"):
        pr.open_envi(b, chunks={"y": 4})


def test_units_policy(tmp_path):
    c = cube(nl=3, ns=2, nb=3)
    wl = [2000.0, 2100.0, 2200.0]
    # W m-2 sr-1 nm-1 is converted (x100), refused spellings name radiance_scale
    b, _ = pr.write_envi(tmp_path / "w.img", c, wl, units="W m-2 sr-1 nm-1")
    r = pr.open_envi(b)
    np.testing.assert_allclose(r.values, 100.0 * c, rtol=1e-6)
    assert r.attrs["source_units"] == "W m-2 sr-1 nm-1" and r.attrs["units_source"] == "header"
    b, _ = pr.write_envi(tmp_path / "dn.img", c, wl, units="DN")
    with pytest.raises(ValueError, match="radiance units 'DN' are not known.*radiance_scale"):
        pr.open_envi(b)
    np.testing.assert_allclose(
        pr.open_envi(b, radiance_scale=[1.0, 2.0, 3.0]).values, c * [1, 2, 3]
    )
    with pytest.raises(ValueError, match="`radiance_scale` must be"):
        pr.open_envi(b, radiance_scale=[1.0, 2.0])
    # no units key: refused, unless the file is an AVIRIS-NG rdn product (readme units)
    b, _ = pr.write_envi(tmp_path / "plain", c, wl, units=None)
    with pytest.raises(ValueError, match="no radiance units.*radiance_scale"):
        pr.open_envi(b)
    b, h = pr.write_envi(tmp_path / "ang20191021t171902_rdn_v2x1_img", c, wl, units=None)
    r = pr.open_envi(h)
    np.testing.assert_array_equal(r.values, c)
    assert r.attrs["units"] == RADIANCE_UNITS
    assert "AVIRIS-NG" in r.attrs["units_source"]


HEADER_OK = {
    "samples": "2",
    "lines": "2",
    "bands": "2",
    "data type": "4",
    "interleave": "bil",
    "byte order": "0",
    "wavelength units": "Nanometers",
    "wavelength": "{1000, 1100}",
}


def header_with(tmp_path, **changes):
    keys = dict(HEADER_OK)
    for k, v in changes.items():
        k = k.replace("_", " ")
        if v is None:
            keys.pop(k)
        else:
            keys[k] = v
    h = tmp_path / "bad.hdr"
    h.write_text(
        "ENVI\n" + "".join(f"{k} = {v}\n" for k, v in keys.items()) + "data units = uW/cm^2/sr/nm\n"
    )
    (tmp_path / "bad").write_bytes(np.zeros(8, "<f4").tobytes())
    return h


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"samples": None}, "required header key `samples` is missing"),
        ({"byte_order": None}, "required header key `byte order` is missing"),
        ({"interleave": None}, "required header key `interleave` is missing"),
        ({"data_type": "7"}, "unknown `data type` 7"),
        ({"data_type": "6"}, "`data type` 6 .* complex"),
        ({"interleave": "bxl"}, "unknown `interleave` 'bxl'"),
        ({"byte_order": "2"}, "`byte order` must be 0"),
        ({"lines": "two"}, "`lines` must be an integer"),
        ({"wavelength": "{1000, 1100, 1200}"}, "`wavelength` has 3 values for 2 bands"),
        ({"wavelength": "{1100, 1000}"}, "`wavelength` must be finite and strictly ascending"),
        ({"wavelength": None}, "no `wavelength` key"),
        ({"wavelength_units": "Index"}, "`wavelength units` is 'Index'"),
        ({"wavelength_units": None}, "`wavelength units` is None"),
        ({"wavelength": "{1000, 1100"}, "braces of `wavelength` are never closed"),
        ({"lines": "3"}, "has 32 bytes; the header implies 48"),
        ({"map_info": "{UTM, 1, 1, 5}"}, "`map info` needs at least 7 items"),
    ],
)
def test_bad_headers_are_refused_naming_the_key(tmp_path, changes, match):
    h = header_with(tmp_path, **changes)
    with pytest.raises(ValueError, match=match):
        pr.open_envi(h)


def test_partner_files_and_magic(tmp_path):
    h = tmp_path / "nomagic.hdr"
    h.write_text("samples = 2\n")
    with pytest.raises(ValueError, match="first line must be 'ENVI'"):
        pr.read_envi_header(h)
    (tmp_path / "lonely.hdr").write_text("ENVI\n")
    with pytest.raises(ValueError, match="no binary file for header"):
        pr.open_envi(tmp_path / "lonely.hdr")
    (tmp_path / "orphan.img").write_bytes(b"\x00" * 4)
    with pytest.raises(ValueError, match="no ENVI header for"):
        pr.open_envi(tmp_path / "orphan.img")
    c = cube(nl=2, ns=2, nb=2)
    pr.write_envi(tmp_path / "dup", c, [1000.0, 1100.0])
    (tmp_path / "dup.img").write_bytes(b"")
    with pytest.raises(ValueError, match="matches several binary files"):
        pr.open_envi(tmp_path / "dup.hdr")
    with pytest.raises(FileExistsError):
        pr.write_envi(tmp_path / "dup", c, [1000.0, 1100.0])
    with pytest.raises(ValueError, match="`interleave` must be"):
        pr.write_envi(tmp_path / "w2", c, [1000.0, 1100.0], interleave="bsl")
    with pytest.raises(ValueError, match="`dtype` complex64 has no ENVI data type"):
        pr.write_envi(tmp_path / "w3", c, [1000.0, 1100.0], dtype="complex64")
    with pytest.raises(ValueError, match="cannot hold; set `data_ignore_value`"):
        pr.write_envi(tmp_path / "w4", np.full((2, 2, 2), np.nan), [1.0, 2.0], dtype="int16")


def test_scene_matched_filter_finds_plume_in_envi_cube(tmp_path):
    nl, ns, nb = 48, 40, 31
    wl = np.linspace(2150.0, 2450.0, nb)
    sigma = 2e-5 * np.exp(-0.5 * ((wl - 2300.0) / 15.0) ** 2) + 1e-5 * np.exp(
        -0.5 * ((wl - 2360.0) / 10.0) ** 2
    )  # absorption per ppm m (shape only)
    rng = np.random.default_rng(1)
    albedo = rng.uniform(0.8, 1.2, (nl, ns, 1))
    base = 0.4 + 0.1 * np.sin(wl / 40.0)
    pixel = 30.0
    y = (np.arange(nl) - nl / 2) * pixel
    x = (np.arange(ns) - ns / 2) * pixel
    plume = np.hypot(x[None, :] - 150.0, y[:, None] + 60.0) < 250.0
    alpha = np.where(plume, 2000.0, 0.0)[..., None]  # ppm m
    rad = base * albedo * np.exp(-alpha * sigma) * (1 + 0.002 * rng.standard_normal((nl, ns, nb)))
    rad[..., -1] = np.nan  # a dead band, flagged bad, stored as the ignore value
    bbl = np.r_[np.ones(nb - 1), 0.0]
    b, _ = pr.write_envi(
        tmp_path / "ang20200101t000000_rdn_v0_img",
        rad,
        wl,
        fwhm=np.full(nb, 5.5),
        interleave="bil",
        data_ignore_value=-9999.0,
        bbl=bbl,
        units=None,  # units from the AVIRIS-NG file name
    )
    r = pr.open_envi(b, chunks={"line": 16})
    r = r.isel(band=r["good_band"].values)
    scene = r.rename(line="y", sample="x").assign_coords(
        y=("y", y, {"units": "m"}), x=("x", x, {"units": "m"})
    )
    mf = pr.scene_matched_filter(scene, -sigma[:-1])
    assert isinstance(mf.data, da.Array)  # nothing computed yet
    out = mf.values
    contrast = out[plume].mean() - out[~plume].mean()  # the plume biases the mean
    assert contrast == pytest.approx(2000.0, rel=0.1)
    assert out[~plume].std() < 200.0
    assert mf.attrs["n_masked"] == 0
