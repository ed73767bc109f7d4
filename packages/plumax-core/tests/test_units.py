"""plumax_core.units against independent numbers: scipy.constants and the ideal-gas law
computed here, round trips, array kinds and tracing, and errors that name the argument."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.constants as sc

from plumax_core import units


def test_time_and_mass_constants():
    assert units.MINUTE == sc.minute
    assert units.HOUR == sc.hour == 3600.0
    assert units.DAY == sc.day == 86400.0
    assert units.WEEK == sc.week
    assert units.YEAR == sc.Julian_year  # 365.25 d
    assert units.TONNE == sc.metric_ton == 1000.0


def test_rate_factors_against_definitions():
    # 1 kg/h = 1 kg / 3600 s; 1 t/h = 1000 kg / 3600 s.
    assert units.KG_H == pytest.approx(1.0 / sc.hour, rel=1e-15)
    assert units.T_H == pytest.approx(1000.0 / sc.hour, rel=1e-15)
    assert units.rate_factor("kg/s") == 1.0
    assert units.rate_to_kg_s(3600.0, "kg/h") == pytest.approx(1.0, rel=1e-15)
    assert units.rate_to_kg_s(3.6, "t/h") == pytest.approx(1.0, rel=1e-15)
    assert units.kg_h_to_kg_s(7200.0) == 2.0
    assert units.kg_s_to_kg_h(0.5) == 1800.0


@pytest.mark.parametrize("spelling", ["kg/h", "KG/H", " kg  h-1 ", "kg/hr", "kgh"])
def test_rate_spellings_kg_h(spelling):
    assert units.rate_factor(spelling) == units.KG_H


@pytest.mark.parametrize("spelling", ["t/h", "T/hr", "t h-1", "Tonne/h"])
def test_rate_spellings_t_h(spelling):
    assert units.rate_factor(spelling) == units.T_H


@pytest.mark.parametrize("bad", ["lb/h", "kg/d", "", "kg", None, 3600])
def test_unknown_rate_unit_is_an_error_naming_the_argument(bad):
    with pytest.raises(ValueError, match="`rate_units`.*not one of"):
        units.rate_factor(bad, name="rate_units")
    with pytest.raises(ValueError, match="`units`"):
        units.rate_to_kg_s(1.0, bad)
    with pytest.raises(ValueError, match="`units`"):
        units.rate_from_kg_s(1.0, bad)


@pytest.mark.parametrize("unit", sorted(units.RATE_UNITS))
def test_rate_round_trip(unit):
    q = np.exp(np.random.default_rng(0).normal(-2.0, 2.0, 1000))
    back = units.rate_to_kg_s(units.rate_from_kg_s(q, unit), unit)
    np.testing.assert_allclose(back, q, rtol=5e-16, atol=0)


def test_kg_h_routes_agree_to_the_last_bit():
    """kg_h_to_kg_s divides by 3600, rate_to_kg_s multiplies by 1/3600: one rounding apart."""
    q = np.geomspace(1e-3, 1e6, 10_001)
    a, b = units.kg_h_to_kg_s(q), units.rate_to_kg_s(q, "kg/h")
    np.testing.assert_allclose(a, b, rtol=2.3e-16, atol=0)
    np.testing.assert_allclose(units.kg_s_to_kg_h(units.kg_h_to_kg_s(q)), q, rtol=2.3e-16, atol=0)


def test_rate_table_is_read_only():
    with pytest.raises(TypeError):
        units.RATE_UNITS["lb/h"] = 1.0  # type: ignore[index]


# ----------------------------------------------------------------------- column units
def test_column_factors_from_the_ideal_gas_law():
    """The STP factors, recomputed from scipy.constants (CODATA 2018, exact SI-2019)."""
    t0, p0 = sc.zero_Celsius, sc.atm  # 273.15 K, 101325 Pa
    assert (units.T_STP, units.P_STP) == (t0, p0)
    assert units.K_B == sc.k
    assert units.R_GAS == pytest.approx(sc.R, rel=1e-10)  # 10 significant digits
    n_stp = p0 / (sc.R * t0)  # mol m^-3
    assert units.AIR_MOLAR_DENSITY_STP == pytest.approx(n_stp, rel=1e-10)
    # 1 ppm over 1 m of STP air.
    assert units.MOL_M2_PER_PPM_M == pytest.approx(1e-6 * n_stp * 1.0, rel=1e-10)
    # Loschmidt's number (m^-3) x 1e-6 x 1 m, in cm^-2.
    assert units.MOLEC_CM2_PER_PPM_M == pytest.approx(
        1e-6 * sc.physical_constants["Loschmidt constant (273.15 K, 101.325 kPa)"][0] / 1e4,
        rel=1e-10,
    )
    # molecules = mol x N_A; 1 m^-2 = 1e-4 cm^-2.
    assert units.MOLEC_CM2_PER_PPM_M == pytest.approx(
        units.MOL_M2_PER_PPM_M * sc.N_A * 1e-4, rel=1e-10
    )
    assert units.AIR_MOLAR_DENSITY_STP == pytest.approx(44.615, rel=1e-5)
    assert units.KG_M2_PER_PPM_M * 1e6 == pytest.approx(0.7156, rel=1e-4)  # mg m^-2


def test_molar_masses_against_iupac_atomic_weights():
    # IUPAC 2021 abridged standard atomic weights: C 12.011, H 1.008 g/mol.
    assert units.M_CH4 == pytest.approx((12.011 + 4 * 1.008) * 1e-3, rel=2e-4)
    # Dry air (N2 78.084 %, O2 20.946 %, Ar 0.934 %, CO2 0.04 %), 28.96 g/mol.
    m_air = (0.78084 * 28.0134 + 0.20946 * 31.9988 + 0.00934 * 39.948 + 0.0004 * 44.0095) / (
        0.78084 + 0.20946 + 0.00934 + 0.0004
    )
    assert units.M_AIR == pytest.approx(m_air * 1e-3, rel=2e-4)
    assert units.G0 == sc.g


def test_column_values_are_bit_identical_to_plumax_rtm_before_the_move():
    """The expressions plumax-rtm used until the unit module existed: no result changes."""
    assert units.MOLEC_CM2_PER_PPM_M == 1e-6 * 101325.0 / (1.380649e-23 * 273.15) * 1e-6 * 100.0
    assert units.MOL_M2_PER_PPM_M == 1e-6 * 101325.0 / (8.314462618 * 273.15)
    assert units.KG_M2_PER_PPM_M == units.MOL_M2_PER_PPM_M * 16.04e-3
    assert units.AIR_MOLAR_DENSITY_STP == 101325.0 / (8.314462618 * 273.15)


PAIRS = {
    "mol_m2": (units.ppm_m_to_mol_m2, units.mol_m2_to_ppm_m, units.MOL_M2_PER_PPM_M),
    "kg_m2": (units.ppm_m_to_kg_m2, units.kg_m2_to_ppm_m, units.KG_M2_PER_PPM_M),
    "molec_cm2": (units.ppm_m_to_molec_cm2, units.molec_cm2_to_ppm_m, units.MOLEC_CM2_PER_PPM_M),
}


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_column_round_trip_and_factor(name):
    fwd, inv, factor = PAIRS[name]
    x = np.random.default_rng(1).normal(0.0, 500.0, 1000)  # ppm m, negative allowed
    np.testing.assert_allclose(fwd(x), x * factor, rtol=0, atol=0)
    np.testing.assert_allclose(inv(fwd(x)), x, rtol=5e-16, atol=1e-12)


def test_mol_kg_chain_is_consistent():
    x = np.linspace(-100.0, 3000.0, 101)
    np.testing.assert_allclose(
        units.mol_m2_to_kg_m2(units.ppm_m_to_mol_m2(x)), units.ppm_m_to_kg_m2(x), rtol=1e-15
    )
    np.testing.assert_allclose(units.kg_m2_to_mol_m2(units.mol_m2_to_kg_m2(x)), x, rtol=1e-15)


def test_air_molar_density_ideal_gas():
    t = np.array([250.0, 288.15, 310.0])
    p = np.array([80_000.0, 101_325.0, 103_000.0])
    np.testing.assert_allclose(units.air_molar_density(t, p), p / (sc.R * t), rtol=1e-10)
    assert units.air_molar_density(units.T_STP, units.P_STP) == units.AIR_MOLAR_DENSITY_STP


# ------------------------------------------------------------------- array kinds, tracing
FUNCS = {
    "kg_h_to_kg_s": units.kg_h_to_kg_s,
    "kg_s_to_kg_h": units.kg_s_to_kg_h,
    "rate_to_kg_s_t_h": lambda q: units.rate_to_kg_s(q, "t/h"),
    "rate_from_kg_s_kg_h": lambda q: units.rate_from_kg_s(q, "kg/h"),
    "ppm_m_to_mol_m2": units.ppm_m_to_mol_m2,
    "mol_m2_to_ppm_m": units.mol_m2_to_ppm_m,
    "ppm_m_to_kg_m2": units.ppm_m_to_kg_m2,
    "kg_m2_to_ppm_m": units.kg_m2_to_ppm_m,
    "mol_m2_to_kg_m2": units.mol_m2_to_kg_m2,
    "kg_m2_to_mol_m2": units.kg_m2_to_mol_m2,
    "ppm_m_to_molec_cm2": units.ppm_m_to_molec_cm2,
    "molec_cm2_to_ppm_m": units.molec_cm2_to_ppm_m,
}


@pytest.mark.parametrize("name", sorted(FUNCS))
def test_floats_numpy_jax_and_tracing(name):
    f = FUNCS[name]
    x = [0.5, 2.0, 30.0]
    ref = np.asarray(f(np.asarray(x)))
    assert isinstance(f(2.0), float)
    assert isinstance(f(x), np.ndarray) and f(x).dtype == np.float64
    np.testing.assert_array_equal(f(x), ref)
    xj = jnp.asarray(x, dtype=jnp.float32)
    out = f(xj)
    assert isinstance(out, jax.Array) and out.dtype == jnp.float32  # no silent upcast
    np.testing.assert_allclose(jax.jit(f)(xj), ref, rtol=1e-6)
    np.testing.assert_allclose(jax.vmap(f)(xj), ref, rtol=1e-6)
    slope = jax.grad(lambda v: f(v))(jnp.float32(3.0))  # linear: d f / dx = f(1)
    assert math.isclose(float(slope), float(f(1.0)), rel_tol=1e-6)


def test_dry_air_constant_and_pressure_units():
    from plumax_core import units

    # 287.05 J kg-1 K-1 (e.g. Wallace & Hobbs 2006, Atmospheric Science, p. 67)
    assert units.R_DRY_AIR == pytest.approx(287.05, rel=1e-4)
    assert units.PRESSURE_UNITS["hPa"] == 100.0 and units.PPM / units.PPB == pytest.approx(1e3)
