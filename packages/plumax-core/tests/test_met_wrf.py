"""MetField.from_wrf on a tiny file written in the wrfout layout.

Layout (WRF-ARW User's Guide, "WRF Output"; Registry): dims Time, bottom_top,
bottom_top_stag, south_north(_stag), west_east(_stag); `Times` characters
"YYYY-MM-DD_hh:mm:ss"; U on west_east_stag, V on south_north_stag, PH/PHB on
bottom_top_stag; XLAT/XLONG, COSALPHA/SINALPHA, U10, V10, T2, PSFC, PBLH, HGT, UST, HFX
(upward positive), ZNT; global attributes MAP_PROJ, TRUELAT1, TRUELAT2, STAND_LON,
MOAD_CEN_LAT, CEN_LAT, CEN_LON, DX, DY; WRF's sphere of radius 6370 km. Grid-relative to
earth-relative rotation: u_e = u cos(a) - v sin(a), v_n = v cos(a) + u sin(a) (UCAR WRF
forum, "Converting model grid-relative wind to earth-relative wind"; D. Ovens, "How to
properly rotate WRF winds to earth-relative coordinates"). Expected values are hand
calculations (NumPy) on the values written.
"""

import numpy as np
import pytest
import xarray as xr
from pyproj import CRS, Transformer

from plumax_core import MetField
from plumax_core._met_profile import golder_class, obukhov_length

NT, NZ, NY, NX = 2, 3, 4, 5
# XLAT/XLONG are float32, as WRF writes them: the nodes are placed to ~0.1 m (3e-5 of a
# cell), so interpolated winds agree with the hand values to ~3e-5 m/s
ATOL = 1e-4
DX = 3000.0
ATTRS = {"MAP_PROJ": 1, "TRUELAT1": 30.0, "TRUELAT2": 60.0, "STAND_LON": -100.0,
         "MOAD_CEN_LAT": 35.0, "CEN_LAT": 35.0, "CEN_LON": -100.0, "DX": DX, "DY": DX}  # fmt: skip
TIMES = ["2024-06-01_18:00:00", "2024-06-01_19:00:00"]
ZSTAG = np.array([0.0, 100.0, 250.0, 500.0])  # m above ground of the w-faces


def _crs(attrs=ATTRS):
    return CRS.from_proj4(
        f"+proj=lcc +lat_1={attrs['TRUELAT1']} +lat_2={attrs['TRUELAT2']} +lat_0=35 "
        f"+lon_0={attrs['STAND_LON']} +a=6370000 +b=6370000 +units=m +no_defs"
    )


def _origin():
    fwd = Transformer.from_crs("EPSG:4326", _crs(), always_xy=True)
    xc, yc = fwd.transform(-100.3, 35.2)
    return xc - (NX - 1) / 2 * DX, yc - (NY - 1) / 2 * DX


def index_to_lonlat(fi, fj):
    inv = Transformer.from_crs(_crs(), "EPSG:4326", always_xy=True)
    x0, y0 = _origin()
    return inv.transform(x0 + fi * DX, y0 + fj * DX)


def wrf_dataset(seed=0, attrs=ATTRS):
    rng = np.random.default_rng(seed)
    jj, ii = np.mgrid[0:NY, 0:NX]
    lon, lat = index_to_lonlat(ii.astype(float), jj.astype(float))
    m2 = (NT, NY, NX)
    hgt = 1000.0 + 50.0 * rng.uniform(size=m2)
    alpha = np.deg2rad(rng.uniform(-10, 10, size=m2))
    v = {
        "U": (("Time", "bottom_top", "south_north", "west_east_stag"),
              5.0 + rng.uniform(-2, 2, (NT, NZ, NY, NX + 1)), "m s-1"),
        "V": (("Time", "bottom_top", "south_north_stag", "west_east"),
              -1.0 + rng.uniform(-2, 2, (NT, NZ, NY + 1, NX)), "m s-1"),
        "PH": (("Time", "bottom_top_stag", "south_north", "west_east"),
               np.zeros((NT, NZ + 1, NY, NX)), "m2 s-2"),
        "PHB": (("Time", "bottom_top_stag", "south_north", "west_east"),
                9.81 * (hgt[:, None] + ZSTAG[None, :, None, None]), "m2 s-2"),
        "HGT": (("Time", "south_north", "west_east"), hgt, "m"),
        "XLAT": (("Time", "south_north", "west_east"), np.broadcast_to(lat, m2), "degree_north"),
        "XLONG": (("Time", "south_north", "west_east"), np.broadcast_to(lon, m2), "degree_east"),
        "COSALPHA": (("Time", "south_north", "west_east"), np.cos(alpha), ""),
        "SINALPHA": (("Time", "south_north", "west_east"), np.sin(alpha), ""),
        "U10": (("Time", "south_north", "west_east"), 3.0 + rng.uniform(-1, 1, m2), "m s-1"),
        "V10": (("Time", "south_north", "west_east"), 1.0 + rng.uniform(-1, 1, m2), "m s-1"),
        "T2": (("Time", "south_north", "west_east"), 300.0 + rng.uniform(-2, 2, m2), "K"),
        "PSFC": (("Time", "south_north", "west_east"), 88000.0 + rng.uniform(-200, 200, m2), "Pa"),
        "PBLH": (("Time", "south_north", "west_east"), 1500.0 + rng.uniform(-200, 200, m2), "m"),
        "UST": (("Time", "south_north", "west_east"), 0.4 + rng.uniform(-0.05, 0.05, m2), "m s-1"),
        "HFX": (("Time", "south_north", "west_east"), 150.0 + rng.uniform(-30, 30, m2), "W m-2"),
        "ZNT": (("Time", "south_north", "west_east"), 0.05 + rng.uniform(-0.01, 0.01, m2), "m"),
    }  # fmt: skip
    data = {k: (d, np.asarray(a, np.float32), {"units": u}) for k, (d, a, u) in v.items()}
    times = np.array([list(s) for s in TIMES], dtype="S1")
    data["Times"] = (("Time", "DateStrLen"), times)
    return xr.Dataset(data, attrs=dict(attrs))


def earth(ds, u, v):
    c, s = ds["COSALPHA"].values.astype(float), ds["SINALPHA"].values.astype(float)
    if u.ndim == 4:
        c, s = c[:, None], s[:, None]
    return u * c - v * s, v * c + u * s


@pytest.fixture
def wrf_file(tmp_path):
    path = tmp_path / "wrfout_d01_2024-06-01_18:00:00"
    wrf_dataset().to_netcdf(path)
    return path


def test_surface_wind_at_a_node_is_rotated_u10(wrf_file):
    ds = wrf_dataset()
    lon, lat = index_to_lonlat(2.0, 1.0)
    met = MetField.from_wrf(wrf_file, lon=lon, lat=lat, time="2024-06-01T18:00:00")
    ue, vn = earth(ds, ds["U10"].values.astype(float), ds["V10"].values.astype(float))
    np.testing.assert_allclose(
        [float(met.u), float(met.v)], [ue[0, 1, 2], vn[0, 1, 2]], rtol=1e-6, atol=ATOL
    )
    assert float(met.pblh) == pytest.approx(float(ds["PBLH"][0, 1, 2]), rel=1e-5)
    assert met.source.startswith("WRF")
    # HFX is upward positive: a heated surface gives an unstable (negative) Obukhov length
    L = obukhov_length(
        ds["UST"][0, 1, 2], ds["HFX"][0, 1, 2], ds["T2"][0, 1, 2], ds["PSFC"][0, 1, 2]
    )
    assert float(met.obukhov_length) == pytest.approx(float(L), rel=1e-5) and float(L) < 0
    assert int(met.stability_class) == int(golder_class(L, float(ds["ZNT"][0, 1, 2])))


def test_destaggered_3d_wind_above_the_lowest_level():
    ds = wrf_dataset()
    lon, lat = index_to_lonlat(3.0, 2.0)
    met = MetField.from_wrf(ds, lon=lon, lat=lat, time="2024-06-01T19:00:00", height=200.0)
    u = ds["U"].values.astype(float)
    v = ds["V"].values.astype(float)
    um = 0.5 * (u[..., :-1] + u[..., 1:])  # mean of the two faces
    vm = 0.5 * (v[:, :, :-1] + v[:, :, 1:])
    ue, vn = earth(ds, um, vm)
    zmass = 0.5 * (ZSTAG[:-1] + ZSTAG[1:])  # 50, 175, 375 m above ground
    exp_u = np.interp(200.0, zmass, ue[1, :, 2, 3])
    exp_v = np.interp(200.0, zmass, vn[1, :, 2, 3])
    np.testing.assert_allclose([float(met.u), float(met.v)], [exp_u, exp_v], rtol=1e-6, atol=ATOL)
    with pytest.raises(ValueError, match="model top"):
        MetField.from_wrf(ds, lon=lon, lat=lat, time="2024-06-01T19:00:00", height=450.0)


def test_between_nodes_is_bilinear_in_index_space():
    ds = wrf_dataset()
    fi, fj = 1.3, 2.6
    lon, lat = index_to_lonlat(fi, fj)
    t = "2024-06-01T18:15:00"
    met = MetField.from_wrf(ds, lon=lon, lat=lat, time=t)
    ue, vn = earth(ds, ds["U10"].values.astype(float), ds["V10"].values.astype(float))

    def bil(a):
        i, j, wi, wj = 1, 2, fi - 1, fj - 2
        return ((1 - wj) * ((1 - wi) * a[j, i] + wi * a[j, i + 1])
                + wj * ((1 - wi) * a[j + 1, i] + wi * a[j + 1, i + 1]))  # fmt: skip

    w = 0.25  # 18:15 between 18:00 and 19:00
    exp_u = (1 - w) * bil(ue[0]) + w * bil(ue[1])
    exp_v = (1 - w) * bil(vn[0]) + w * bil(vn[1])
    # the default frame is centred on the point, where grid north is true north
    np.testing.assert_allclose([float(met.u), float(met.v)], [exp_u, exp_v], rtol=1e-6, atol=ATOL)
    t2 = (1 - w) * bil(ds["T2"].values[0].astype(float)) + w * bil(ds["T2"].values[1].astype(float))
    assert float(met.temperature) == pytest.approx(t2, rel=1e-6)


def test_grid_mode_shapes():
    ds = wrf_dataset()
    lon, lat = index_to_lonlat(2.0, 1.5)
    x = np.array([-2000.0, 0.0, 2000.0])
    y = np.array([-1000.0, 1000.0])
    met = MetField.from_wrf(ds, lon=lon, lat=lat, time="2024-06-01T18:30", x=x, y=y, height=60.0)
    assert met.u.shape == (1, 1, 2, 3) and met.obukhov_length.shape == (1, 1, 2, 3)


def test_outside_domain_and_time_are_refused():
    ds = wrf_dataset()
    lon, lat = index_to_lonlat(-0.5, 1.0)
    with pytest.raises(ValueError, match="`lon`.*outside"):
        MetField.from_wrf(ds, lon=lon, lat=lat, time="2024-06-01T18:00")
    lon, lat = index_to_lonlat(1.0, 1.0)
    with pytest.raises(ValueError, match="`time`.*outside"):
        MetField.from_wrf(ds, lon=lon, lat=lat, time="2024-06-01T20:00")


def test_unsupported_or_inconsistent_projection():
    lon, lat = index_to_lonlat(1.0, 1.0)
    with pytest.raises(ValueError, match="MAP_PROJ = 6"):
        MetField.from_wrf(wrf_dataset(attrs={**ATTRS, "MAP_PROJ": 6}), lon=lon, lat=lat,
                          time="2024-06-01T18:00")  # fmt: skip
    for wrong in ({"STAND_LON": -95.0}, {"DX": 2500.0, "DY": 2500.0}):
        with pytest.raises(ValueError, match="off the Lambert conformal grid"):
            MetField.from_wrf(wrf_dataset(attrs={**ATTRS, **wrong}), lon=lon, lat=lat,
                              time="2024-06-01T18:00")  # fmt: skip


def test_units_and_missing_fluxes():
    lon, lat = index_to_lonlat(1.0, 1.0)
    ds = wrf_dataset()
    ds["U10"].attrs["units"] = "knots"
    with pytest.raises(ValueError, match="U10.*knots"):
        MetField.from_wrf(ds, lon=lon, lat=lat, time="2024-06-01T18:00")
    ds = wrf_dataset().drop_vars(["UST", "HFX"])
    with pytest.raises(ValueError, match="UST.*stability="):
        MetField.from_wrf(ds, lon=lon, lat=lat, time="2024-06-01T18:00")
    met = MetField.from_wrf(ds, lon=lon, lat=lat, time="2024-06-01T18:00", stability="B")
    assert int(met.stability_class) == 1 and met.obukhov_length is None
