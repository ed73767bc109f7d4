"""Absorption sources, LUTs, forward model, instruments and the radiance operator."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import plumax_rtm as pr
from plumax_core import InvalidInputError, Observations, filter_jit
from plumax_core.gates import dot_product_test


def _rec(mol, iso, nu, sw, ga, gs, el, n, d):
    def fw(v, width, prec):
        t = f"{v:{width}.{prec}f}"
        return t if len(t) <= width else t.replace("0.", ".", 1)

    r = (
        f"{mol:2d}{iso:1d}{nu:12.6f}{sw:10.3E}{1.0:10.3E}{fw(ga, 5, 4)}{fw(gs, 5, 3)}"
        f"{el:10.4f}{n:4.2f}{fw(d, 8, 6)}"
    )
    return r + " " * (160 - len(r))


@pytest.fixture(scope="module")
def lines(tmp_path_factory):
    d = tmp_path_factory.mktemp("lines")
    ch4 = [
        (6, 1, 4384.0 + 0.13 * i, 1e-21 * (1 + i % 3), 0.06, 0.08, 100.0 * i, 0.7, -0.008)
        for i in range(12)
    ]
    h2o = [(1, 1, 4384.05 + 0.37 * i, 3e-24, 0.08, 0.4, 200.0 * i, 0.7, -0.01) for i in range(4)]
    (d / "ch4.par").write_text("\n".join(_rec(*r) for r in ch4) + "\n")
    (d / "h2o.par").write_text("\n".join(_rec(*r) for r in h2o) + "\n")
    return pr.read_par(d / "ch4.par"), pr.read_par(d / "h2o.par")


@pytest.fixture(scope="module")
def grid():
    return np.linspace(4383.8, 4385.8, 201)


@pytest.fixture(scope="module")
def lut(lines, grid):
    return pr.CrossSectionLUT.build(
        lines[0], [5e4, 8e4, 1.05e5], [250.0, 275.0, 300.0], grid, batch_size=4, progress=False
    )


@pytest.fixture(scope="module")
def lbl_rtm(lines, grid):
    atm = pr.standard_atmosphere("us_standard")
    ab = {
        "CH4": pr.LineByLineAbsorption(lines[0], grid),
        "H2O": pr.LineByLineAbsorption(lines[1], grid, species="H2O"),
    }
    return pr.BeerLambertRTM.from_absorbers(ab, atmosphere=atm, sza_deg=0.0, vza_deg=0.0), ab, atm


@pytest.fixture(scope="module")
def mag1c_small():
    return pr.load_mag1c_table().subset(2200.0, 2400.0)


SOURCES = {
    "lbl": lambda lines, grid, lut, m: pr.LineByLineAbsorption(lines[0], grid),
    "lut": lambda lines, grid, lut, m: pr.LUTAbsorption(lut),
    "effective": lambda lines, grid, lut, m: m,
}


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_absorption_contract(name, lines, grid, lut, mag1c_small):
    src = SOURCES[name](lines, grid, lut, mag1c_small)
    assert isinstance(src, pr.AbstractAbsorption)
    xs = src.cross_section(7e4, 280.0)
    assert xs.shape == src.wavelength.shape
    assert np.all(np.isfinite(xs)) and np.all(np.asarray(xs) >= 0) and float(xs.max()) > 0
    xj = eqx.filter_jit(lambda s, p, t: s.cross_section(p, t))(src, 7e4, 280.0)
    np.testing.assert_allclose(xj, xs, rtol=1e-5, atol=0)
    assert np.all(np.diff(np.asarray(src.wavelength)) > 0)


def test_lut_nodes_interp_roundtrip_and_range(lines, grid, lut, tmp_path):
    direct = pr.cross_section(lines[0], grid, 8e4, 275.0)
    np.testing.assert_allclose(lut(8e4, 275.0), direct, rtol=1e-5)
    mid = pr.cross_section(lines[0], grid, 6.5e4, 262.0)
    got = lut(6.5e4, 262.0)
    assert np.max(np.abs(got - mid)) / float(mid.max()) < 0.05
    path = lut.to_netcdf(tmp_path / "lut.nc")
    back = pr.CrossSectionLUT.from_netcdf(path)
    np.testing.assert_array_equal(back.xsec, lut.xsec)
    import xarray as xr

    with xr.open_dataset(path) as ds:
        assert ds["cross_section"].attrs["units"] == "cm2 molecule-1"
        assert ds["pressure"].attrs["units"] == "Pa"
    assert not list(tmp_path.glob("*.tmp"))
    with pytest.raises(ValueError, match="pressure"):
        lut(1e3, 275.0)
    with pytest.raises(ValueError, match="temperature"):
        lut(8e4, 320.0)
    with pytest.raises(Exception, match="outside the LUT range"):
        jax.block_until_ready(eqx.filter_jit(lambda t, p, T: t(p, T))(lut, 8e4, 320.0))
    # compiled with plumax_core.filter_jit: the check's own message as a ValueError
    with pytest.raises(InvalidInputError, match=r"^`temperature` outside the LUT range$"):
        jax.block_until_ready(filter_jit(lambda t, p, T: t(p, T))(lut, 8e4, 320.0))


def test_mag1c_table_shipped():
    t = pr.load_mag1c_table()
    assert t.wavelength.shape == (31800,)
    assert 1399.0 < float(t.wavelength[0]) < 1400.0 and 2521.0 < float(t.wavelength[-1]) < 2523.0
    wl = np.asarray(t.wavelength)
    k = np.asarray(t.absorption)
    # The 2.3 µm CH4 band absorbs far more than the 2.1 µm window.
    band = k[(wl > 2290) & (wl < 2380)].mean()
    window = k[(wl > 2100) & (wl < 2150)].mean()
    assert band > 5 * window


def test_two_way_nadir_is_twice_one_way(lbl_rtm, lines, grid):
    rtm, ab, atm = lbl_rtm
    assert rtm.amf == pytest.approx(2.0)
    # Independent one-way vertical optical depth, layer by layer.
    one_way = np.zeros(grid.size)
    for gas, src in ab.items():
        xs = jax.jit(jax.vmap(lambda p, T, s=src: pr.cross_section(s.lines, grid, p, T)))(
            atm.pressure, atm.temperature
        )
        one_way += np.asarray(atm.column(gas)) @ np.asarray(xs)[:, ::-1]
    L = rtm(0.0)
    tau_two_way = -np.log(np.asarray(L) / np.asarray(rtm.source))
    np.testing.assert_allclose(tau_two_way, 2 * one_way, rtol=2e-4, atol=1e-7)


def test_amf_and_bad_angles():
    assert pr.air_mass_factor(60.0, 0.0) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="sza_deg"):
        pr.air_mass_factor(90.0, 0.0)


def test_radiance_differentiable_wrt_enhancement_water_reflectance(x64, lbl_rtm):
    rtm = jax.tree.map(lambda a: a.astype(jnp.float64) if eqx.is_array(a) else a, lbl_rtm[0])

    def f(dx, w, c):
        return jnp.sum(rtm(dx, w, c) ** 2)

    c0 = jnp.array([0.3, 0.02, -0.01])
    g = jax.grad(f, argnums=(0, 1, 2))(500.0, 1.1, c0)
    h = 1e-4
    fd = [
        (f(500.0 + h, 1.1, c0) - f(500.0 - h, 1.1, c0)) / (2 * h),
        (f(500.0, 1.1 + h, c0) - f(500.0, 1.1 - h, c0)) / (2 * h),
        (f(500.0, 1.1, c0.at[1].add(h)) - f(500.0, 1.1, c0.at[1].add(-h))) / (2 * h),
    ]
    for got, ref in zip((g[0], g[1], g[2][1]), fd, strict=True):
        assert float(got) != 0.0
        assert abs(float(got) - float(ref)) <= 1e-6 * abs(float(ref))


@pytest.fixture(scope="module")
def operator(mag1c_small):
    rtm = pr.BeerLambertRTM.from_absorbers({"CH4": mag1c_small}, sza_deg=30.0)
    srf = pr.SpectralResponse.for_instrument("EMIT", rtm.wavelength)
    alb = 1.0 + 0.1 * jnp.sin(jnp.arange(12.0)).reshape(3, 4)
    return pr.RadianceOperator(
        rtm, srf, albedo=alb, noise=pr.NoiseModel(snr=300.0), instrument="EMIT"
    )


def test_radiance_operator_dot_product_and_fd(operator, getkey):
    state = Observations(jnp.linspace(0.0, 3000.0, 12).reshape(3, 4), kind="column_ppm_m")
    out = operator(state)
    assert out.kind == "radiance" and out.shape == (3, 4, operator.srf.n_bands)
    assert out.coords["band"].shape == (operator.srf.n_bands,)
    J = operator.linearize(state)
    r = dot_product_test(J.mv, J.transpose().mv, state.values, out.values, key=getkey())
    assert r.passed, r
    u = jax.random.normal(getkey(), (3, 4)) * 100.0
    fd = (operator(state.values + u).values - operator(state.values - u).values) / 2
    jv = J.mv(u)
    assert float(jnp.max(jnp.abs(jv - fd)) / jnp.max(jnp.abs(fd))) < 1e-2
    # mol/m2 input is converted.
    mol = Observations(pr.ppm_m_to_mol_m2(state.values), kind="column_mol_m2")
    np.testing.assert_allclose(operator(mol).values, out.values, rtol=1e-5)
    with pytest.raises(ValueError, match="kind"):
        operator(Observations(state.values, kind="xch4_ppb"))


def test_instruments_and_srf(mag1c_small, getkey):
    wl = np.asarray(mag1c_small.wavelength)
    for name in pr.INSTRUMENTS:
        c, f = pr.instrument_bands(name)
        assert np.all(np.diff(c) > 0) and np.all(f > 0)
    c, f = pr.instrument_bands("EMIT")
    assert c.size == 285 and np.isclose(np.diff(c).mean(), 7.4, atol=0.05)
    srf = pr.SpectralResponse.for_instrument("EMIT", wl)
    flat = jnp.full(wl.size, 3.0)
    np.testing.assert_allclose(srf(flat), 3.0, rtol=1e-5)
    op = srf.as_operator()
    r = dot_product_test(op.mv, op.transpose().mv, flat, jnp.zeros(srf.n_bands), key=getkey())
    assert r.passed
    s2 = pr.SpectralResponse.for_instrument("Sentinel-2 MSI", np.linspace(1500, 2400, 901))
    assert s2.n_bands == 2
    with pytest.raises(ValueError, match="fine_wavelength"):
        pr.SpectralResponse.gaussian(wl[::-1], [2300.0], 8.5)
    with pytest.raises(ValueError, match="name"):
        pr.instrument_bands("HyMap")
    with pytest.raises(ValueError, match="snr"):
        pr.NoiseModel()
    n = pr.NoiseModel(snr=100.0, nedl=0.01)
    np.testing.assert_allclose(n.sigma(jnp.array([1.0])), np.sqrt(0.01**2 + 0.01**2), rtol=1e-6)
