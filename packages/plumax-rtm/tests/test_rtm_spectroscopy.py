"""Faddeeva/Voigt accuracy, HITRAN readers and line-by-line cross-sections vs HAPI."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special as sp

import plumax_rtm as pr

sys.path.insert(0, __import__("os").path.dirname(__file__))
from conftest import hapi_db, hapi_xsec  # noqa: E402

# Three synthetic-but-HITRAN-shaped CH4 lines (written by the test, 160 characters).
_LINES = [
    (6, 1, 4384.100000, 2.0e-21, 0.0600, 0.080, 100.0, 0.70, -0.0080),
    (6, 1, 4384.300000, 8.0e-22, 0.0450, 0.065, 800.0, 0.60, -0.0050),
    (6, 2, 4384.310000, 5.0e-23, 0.0500, 0.070, 300.0, 0.65, -0.0070),
]


def _par_record(mol, iso, nu, sw, ga, gs, el, n, d):
    def fw(v, width, prec):  # HITRAN drops a leading zero when the field is full: .0600
        t = f"{v:{width}.{prec}f}"
        return t if len(t) <= width else t.replace("0.", ".", 1)

    rec = (
        f"{mol:2d}{iso:1d}{nu:12.6f}{sw:10.3E}{1.0:10.3E}{fw(ga, 5, 4)}{fw(gs, 5, 3)}"
        f"{el:10.4f}{n:4.2f}{fw(d, 8, 6)}"
    )
    rec = rec + " " * (160 - len(rec))
    assert len(rec) == 160
    return rec


@pytest.fixture
def par_file(tmp_path):
    path = tmp_path / "test.par"
    path.write_text("\n".join(_par_record(*r) for r in _LINES) + "\n")
    return path


def test_faddeeva_matches_scipy_over_plane(x64):
    x = np.concatenate([-np.logspace(-6, 4, 120)[::-1], [0.0], np.logspace(-6, 4, 120)])
    y = np.concatenate([[0.0], np.logspace(-6, 4, 90)])
    z = x[None, :] + 1j * y[:, None]
    w = np.asarray(jax.jit(pr.faddeeva)(jnp.asarray(z)))
    ref = sp.wofz(z)
    rel = np.abs(w - ref) / np.abs(ref)
    assert rel.max() < 1e-6, rel.max()
    # The real part (the Voigt function) separately, off the real axis.
    off = y[:, None] * np.ones_like(x)[None, :] > 0
    rel_re = np.abs(w.real - ref.real)[off] / np.abs(ref.real)[off]
    assert rel_re.max() < 1e-6, rel_re.max()


def test_faddeeva_float32_reasonable():
    z = jnp.asarray([0.5 + 0.1j, 3.0 + 1e-3j, 20.0 + 2.0j], dtype=jnp.complex64)
    w = np.asarray(pr.faddeeva(z))
    assert np.max(np.abs(w - sp.wofz(np.asarray(z))) / np.abs(sp.wofz(np.asarray(z)))) < 1e-5


def test_voigt_gaussian_and_lorentzian_limits(x64):
    dnu = jnp.linspace(-0.05, 0.05, 401)
    alpha = 0.01
    v = pr.voigt_profile(dnu, alpha, 1e-9)
    g = pr.gaussian_profile(dnu, alpha)
    assert np.max(np.abs(v - g)) / np.max(g) < 1e-6
    gamma = 0.01
    v = pr.voigt_profile(dnu, 1e-6, gamma)
    lor = pr.lorentzian_profile(dnu, gamma)
    assert np.max(np.abs(v - lor) / lor) < 1e-6


@pytest.mark.parametrize("alpha,gamma", [(0.01, 1e-4), (0.01, 0.01), (1e-3, 0.05)])
def test_line_integrates_to_its_intensity(x64, alpha, gamma):
    half = 100.0
    dnu = np.linspace(-half, half, 400_001)
    v = np.asarray(pr.voigt_profile(jnp.asarray(dnu), alpha, gamma))
    area = np.trapezoid(v, dnu)
    tail = 2.0 / np.pi * np.arctan2(gamma, half)  # Lorentzian wings beyond ±half (closed form)
    assert abs(area + tail - 1.0) < 1e-4


@pytest.mark.slow
def test_wing_cutoff_removes_lorentz_tail(x64, par_file):
    lines = pr.read_par(par_file).select(4384.0, 4384.2)
    grid = jnp.linspace(4380.0, 4388.0, 40_001)
    g = float(pr.lorentz_hwhm(lines, 101325.0, 296.0)[0])
    for hw in (5.0, 20.0):
        xs = pr.cross_section(lines, grid, 101325.0, 296.0, wing_hw=hw)
        area = np.trapezoid(np.asarray(xs), np.asarray(grid))
        s = float(lines.sw[0])
        # Near-Lorentzian line: area within ±w is (2/π) arctan(w/γ) of S.
        expect = 2.0 / np.pi * np.arctan(hw)
        assert abs(area / s - expect) < 2e-3, (hw, area / s, expect, g)


def test_read_par_and_errors(par_file, tmp_path):
    lines = pr.read_par(par_file)
    assert lines.n_lines == 3
    np.testing.assert_allclose(lines.nu, [4384.1, 4384.3, 4384.31])
    np.testing.assert_allclose(lines.sw, [2e-21, 8e-22, 5e-23])
    np.testing.assert_allclose(lines.gamma_self, [0.08, 0.065, 0.07])
    np.testing.assert_allclose(lines.delta_air, [-0.008, -0.005, -0.007])
    assert list(np.asarray(lines.isotopologue)) == [1, 1, 2]
    bad = tmp_path / "bad.par"
    bad.write_text(_par_record(*_LINES[0])[:100] + "\n")
    with pytest.raises(ValueError, match="160"):
        pr.read_par(bad)
    bad.write_text(_par_record(*_LINES[0]).replace("4384.100000", "4384.1x0000") + "\n")
    with pytest.raises(ValueError, match="not a valid HITRAN record"):
        pr.read_par(bad)
    with pytest.raises(ValueError, match="no lines"):
        lines.select(1.0, 2.0)


def test_read_hapi_table_and_shared(shared_hitran, hapi_mod):
    lines = pr.read_hapi_table(shared_hitran, "CH4")
    assert lines.n_lines == 406
    assert 4383.03 <= float(lines.nu[0]) and float(lines.nu[-1]) <= 4386.0
    par = pr.read_par(shared_hitran / "CH4.data")
    np.testing.assert_array_equal(np.asarray(par.sw), np.asarray(lines.sw))
    hapi_db(hapi_mod, shared_hitran)
    nu, sw = hapi_mod.getColumns("CH4", ["nu", "sw"])
    np.testing.assert_allclose(np.sort(nu), np.asarray(lines.nu))
    np.testing.assert_allclose(np.asarray(sw)[np.argsort(nu)], np.asarray(lines.sw))
    with pytest.raises(ValueError, match="table"):
        pr.read_hapi_table(shared_hitran, "H2O")


def test_partition_ratio_against_tips(hapi_mod):
    q296 = hapi_mod.partitionSum(6, 1, 296.0)
    for T in (200.0, 250.0, 320.0):
        tips = q296 / hapi_mod.partitionSum(6, 1, T)
        assert abs(float(pr.partition_ratio(6, T)) / tips - 1) < 2.5e-3
    with pytest.raises(ValueError, match="molecule"):
        pr.partition_ratio(7, 250.0)


def _compare(mine, ref):
    m = ref > 1e-3 * ref.max()
    return np.max(np.abs(mine[m] - ref[m]) / ref[m])


def _write_hapi_table(folder, name, records):
    """Write records as a HAPI table: ``<name>.data`` plus a JSON ``<name>.header``."""
    import json

    (folder / f"{name}.data").write_text("\n".join(records) + "\n")
    hdr = {
        "table_name": name,
        "number_of_rows": len(records),
        "format": _HAPI_FORMAT,
        "default": {},
        "table_type": "column-fixed",
        "size_in_bytes": -1,
        "order": list(_HAPI_FORMAT),
    }
    (folder / f"{name}.header").write_text(json.dumps(hdr))


@pytest.mark.parametrize("p_atm,T", [(1.0, 296.0), (0.3, 250.0)])
def test_cross_section_vs_hapi_written_par(x64, tmp_path, hapi_mod, p_atm, T):
    recs = [_par_record(*r) for r in _LINES if r[1] == 1]
    _write_hapi_table(tmp_path, "T1", recs)
    hapi_db(hapi_mod, tmp_path)
    lines = pr.read_hapi_table(tmp_path, "T1")
    assert lines.n_lines == 2
    grid = np.arange(4383.5, 4385.0, 0.0005)
    nu, ref = hapi_xsec(hapi_mod, "T1", grid, p_atm, T, WavenumberWingHW=50.0)
    tips = hapi_mod.partitionSum(6, 1, 296.0) / hapi_mod.partitionSum(6, 1, T)
    mine = np.asarray(
        pr.cross_section(lines, jnp.asarray(nu), p_atm * 101325.0, T, partition=lambda t: tips)
    )
    assert _compare(mine, ref) < 1e-4
    # With the built-in rigid-rotor/harmonic Q(T): exact at 296 K, 2e-3 elsewhere.
    approx = np.asarray(pr.cross_section(lines, jnp.asarray(nu), p_atm * 101325.0, T))
    assert _compare(approx, ref) < (1e-4 if T == 296.0 else 2e-3)


_HAPI_FORMAT = {
    "molec_id": "%2d",
    "local_iso_id": "%1d",
    "nu": "%12.6f",
    "sw": "%10.3E",
    "a": "%10.3E",
    "gamma_air": "%5.4f",
    "gamma_self": "%5.3f",
    "elower": "%10.4f",
    "n_air": "%4.2f",
    "delta_air": "%8.6f",
    "rest": "%93s",
}


def test_cross_section_vs_hapi_shared(x64, shared_hitran, hapi_mod):
    hapi_db(hapi_mod, shared_hitran)
    lines = pr.read_hapi_table(shared_hitran, "CH4")
    grid = np.arange(4383.5, 4385.5, 0.001)
    nu, ref = hapi_xsec(hapi_mod, "CH4", grid, 1.0, 296.0, WavenumberWingHW=50.0)
    mine = np.asarray(pr.cross_section(lines, jnp.asarray(nu), 101325.0, 296.0))
    err = _compare(mine, ref)
    assert err < 1e-4, err


@pytest.mark.slow
def test_cross_section_differentiable_in_p_T(x64, par_file):
    lines = pr.read_par(par_file)
    grid = jnp.linspace(4384.0, 4384.4, 200)

    @jax.jit
    def f(p, T):
        return jnp.sum(pr.cross_section(lines, grid, p, T))

    g = jax.grad(f, argnums=(0, 1))(5e4, 260.0)
    fd_T = (f(5e4, 260.01) - f(5e4, 259.99)) / 0.02
    assert np.isfinite(g[0]) and abs(g[1] - fd_T) / abs(fd_T) < 1e-5
