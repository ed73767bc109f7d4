r"""Units: the one place where plumax converts quantities with units.

Inside the code every quantity is SI unless its name says otherwise (``docs/architecture.md``):
emission rates in kg/s, times in s, masses in kg, column enhancements in ppm·m or
mol m⁻² (the observation's ``kind`` says which). Everything else (kg/h and t/h in plume
lists, reports and the CLI; hours and days in schedules; kg m⁻² and molecules cm⁻² in
products) is converted here and nowhere else, so that each factor is written once.

**Time** (s): :data:`MINUTE`, :data:`HOUR`, :data:`DAY`, :data:`WEEK` and the Julian
year :data:`YEAR` (365.25 d, the year unit ``a`` recommended by the IAU).

**Mass** (kg): :data:`TONNE` (metric tonne, 1000 kg).

**Emission rate** (kg/s): :data:`KG_H` and :data:`T_H` are one kg/h and one t/h in kg/s.
:func:`rate_to_kg_s` / :func:`rate_from_kg_s` convert any unit string of
:data:`RATE_UNITS`, as plume lists write them (``"kg/h"``, ``"kg h-1"``, ``"t/h"``,
``"tonne/h"``, ...; case and spacing ignored); :func:`kg_h_to_kg_s` /
:func:`kg_s_to_kg_h` are the kg/h special case. Rounding: ``rate_to_kg_s`` multiplies by
the tabulated factor (``KG_H`` is 1/3600 rounded to float64) and ``rate_from_kg_s``
divides by it, while ``kg_h_to_kg_s`` divides by the exact 3600 and ``kg_s_to_kg_h``
multiplies by it; the two routes can differ in the last bit (relative 1.1e-16). Both are
kept so that every result computed before this module existed stays bit-identical.

**Column enhancement.** A column of ``c`` ppm·m is a mole-fraction enhancement of
``c`` ppm over a 1 m path of air at STP, the convention of plumax-rtm's forward model,
matched filter and flux estimates, with ``T_STP`` = 273.15 K and ``P_STP`` = 101325 Pa
(1 atm, the IUPAC definition of STP before 1982). With the ideal-gas law, ``n = p / (R T)``:

$$
1\,\mathrm{ppm\,m} = 10^{-6}\,\frac{p_{STP}}{R\,T_{STP}}\cdot 1\,\mathrm{m}
= 4.4615\times10^{-5}\,\mathrm{mol\,m^{-2}}
= 10^{-6}\,\frac{p_{STP}}{k_B\,T_{STP}}\cdot 100\,\mathrm{cm}
= 2.6868\times10^{15}\,\mathrm{molecules\,cm^{-2}},
$$

and ``× M_CH4`` (16.04 g/mol) ``= 7.156e-7 kg m⁻²`` (1 ppm·m ≈ 0.716 mg CH4 m⁻²).
``R`` and ``k_B`` are the exact SI-2019 values (CODATA 2018; ``R = N_A k_B`` rounded to
10 digits). :data:`MOL_M2_PER_PPM_M`, :data:`MOLEC_CM2_PER_PPM_M` and
:data:`KG_M2_PER_PPM_M` are these factors; the ``*_to_*`` functions apply them.
A column at another temperature and pressure scales with ``n = p/(R T)``
(:func:`air_molar_density`).

Every function is plain arithmetic: it takes Python floats, NumPy arrays and JAX arrays
(also under ``jit``, ``vmap`` and ``grad``) and returns the same kind; a list or tuple
becomes a float NumPy array. Unknown unit strings raise a ``ValueError`` that names the
argument.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

# --------------------------------------------------------------------------- time (s)
MINUTE = 60.0
"""One minute, s."""
HOUR = 3600.0
"""One hour, s (3600)."""
DAY = 24.0 * HOUR
"""One day, s (86400)."""
WEEK = 7.0 * DAY
"""One week, s (604800)."""
YEAR = 365.25 * DAY
"""One Julian year (365.25 d), s (31 557 600)."""

# --------------------------------------------------------------------------- mass (kg)
TONNE = 1000.0
"""One metric tonne, kg."""

# --------------------------------------------------------------- emission rate (kg/s)
KG_S = 1.0
"""One kg/s in kg/s (the internal unit)."""
KG_H = 1.0 / HOUR
"""One kg/h in kg/s (1/3600)."""
T_H = TONNE / HOUR
"""One t/h in kg/s (1000/3600)."""

RATE_UNITS: Mapping[str, float] = MappingProxyType(
    {
        "kg/s": KG_S,
        "kg s-1": KG_S,
        "kg/h": KG_H,
        "kg/hr": KG_H,
        "kg h-1": KG_H,
        "kgh": KG_H,
        "t/h": T_H,
        "t/hr": T_H,
        "t h-1": T_H,
        "tonne/h": T_H,
    }
)
"""Emission-rate unit strings (lower case, single spaces) -> kg/s per unit (read-only)."""

# ------------------------------------------------------- constants of the column units
PPM = 1e-6
"""One part per million, mole fraction."""
PPB = 1e-9
"""One part per billion, mole fraction."""
T_STP = 273.15
"""STP temperature of the ppm·m convention, K."""
P_STP = 101325.0
"""STP pressure of the ppm·m convention, Pa (1 atm)."""
R_GAS = 8.314462618
"""Molar gas constant, J mol⁻¹ K⁻¹ (SI 2019: ``N_A k_B``, 10 digits)."""
K_B = 1.380649e-23
"""Boltzmann constant, J K⁻¹ (exact, SI 2019)."""
M_CH4 = 16.04e-3
"""Molar mass of methane, kg/mol (16.04 g/mol; IUPAC atomic weights give 16.043)."""
M_AIR = 28.9644e-3
"""Molar mass of dry air, kg/mol (U.S. Standard Atmosphere 1976)."""
G0 = 9.80665
"""Standard acceleration of gravity, m s⁻² (exact, 3rd CGPM 1901)."""
R_DRY_AIR = R_GAS / M_AIR
"""Specific gas constant of dry air, J kg⁻¹ K⁻¹ (287.06)."""
PRESSURE_UNITS: dict[str, float] = {"Pa": 1.0, "hPa": 100.0, "mbar": 100.0, "millibars": 100.0}
"""Pressure unit strings (CF/UDUNITS and ECMWF spellings) -> Pa per unit."""
_M3_PER_CM3 = 1e-6
_CM_PER_M = 100.0

AIR_MOLAR_DENSITY_STP = P_STP / (R_GAS * T_STP)
"""Molar density of air at STP, ``p/(R T)``, mol m⁻³ (44.615)."""
MOL_M2_PER_PPM_M = PPM * P_STP / (R_GAS * T_STP)
"""mol m⁻² per ppm·m at STP: ``1e-6 · p/(R T) · 1 m`` (1 ppm·m ≈ 0.716 mg CH4 m⁻²)."""
MOLEC_CM2_PER_PPM_M = PPM * P_STP / (K_B * T_STP) * _M3_PER_CM3 * _CM_PER_M
"""molecules cm⁻² per ppm·m at STP (273.15 K, 101325 Pa): ``1e-6 · p/(k T) · 100 cm``."""
KG_M2_PER_PPM_M = MOL_M2_PER_PPM_M * M_CH4
"""kg CH4 m⁻² per ppm·m at STP: :data:`MOL_M2_PER_PPM_M` ``× M_CH4``."""


def _value(x: Any) -> Any:
    """Floats, NumPy and JAX arrays (and tracers) pass unchanged; sequences become arrays."""
    if isinstance(x, list | tuple):
        return np.asarray(x, dtype=float)
    return x


# ----------------------------------------------------------------------- emission rate
def _rate_key(units: str) -> str:
    return " ".join(units.strip().lower().split())


def rate_factor(units: str, *, name: str = "units") -> float:
    """kg/s per one ``units`` of emission rate (``1/3600`` for ``"kg/h"``).

    Args:
        units: an emission-rate unit as plume lists write it: ``kg/s``, ``kg s-1``,
            ``kg/h``, ``kg/hr``, ``kg h-1``, ``kgh``, ``t/h``, ``t/hr``, ``t h-1``,
            ``tonne/h`` (case and spacing ignored; see :data:`RATE_UNITS`).
        name: the caller's argument name, used in the error message.

    Raises:
        ValueError: ``units`` is not a string or not a known emission-rate unit; the
            message names ``name`` and lists the known units.
    """
    key = _rate_key(units) if isinstance(units, str) else None
    if key not in RATE_UNITS:
        raise ValueError(
            f"`{name}` {units!r} is not one of {sorted(RATE_UNITS)} "
            "(emission-rate units; case and spacing ignored)"
        )
    return RATE_UNITS[key]


def rate_to_kg_s(value: Any, units: str, *, name: str = "units") -> Any:
    """Emission rate in ``units`` (kg/h, t/h, ...) -> kg/s: ``value · rate_factor(units)``.

    Args:
        value: emission rate(s) in ``units``; float, NumPy or JAX array, any shape.
        units: unit string of :data:`RATE_UNITS`.
        name: argument name for the error message.

    Returns:
        The rate(s) in kg/s, same shape and array kind.
    """
    return _value(value) * rate_factor(units, name=name)


def rate_from_kg_s(value: Any, units: str, *, name: str = "units") -> Any:
    """Emission rate in kg/s -> ``units``: ``value / rate_factor(units)``.

    Args:
        value: emission rate(s) in kg/s; float, NumPy or JAX array, any shape.
        units: target unit string of :data:`RATE_UNITS`.
        name: argument name for the error message.

    Returns:
        The rate(s) in ``units``, same shape and array kind.
    """
    return _value(value) / rate_factor(units, name=name)


def kg_h_to_kg_s(q: Any) -> Any:
    """Emission rate kg/h -> kg/s (divides by :data:`HOUR`, exactly 3600)."""
    return _value(q) / HOUR


def kg_s_to_kg_h(q: Any) -> Any:
    """Emission rate kg/s -> kg/h (multiplies by :data:`HOUR`, exactly 3600)."""
    return _value(q) * HOUR


# --------------------------------------------------------------------- column enhancement
def air_molar_density(temperature: Any, pressure: Any) -> Any:
    """Molar density of air ``n = p / (R T)``, mol m⁻³ (ideal gas).

    Args:
        temperature: K. pressure: Pa. Floats or arrays (broadcast).
    """
    return _value(pressure) / (R_GAS * _value(temperature))


def ppm_m_to_mol_m2(x: Any) -> Any:
    """Column enhancement ppm·m (STP) -> mol m⁻²: ``x · MOL_M2_PER_PPM_M``."""
    return _value(x) * MOL_M2_PER_PPM_M


def mol_m2_to_ppm_m(x: Any) -> Any:
    """Column enhancement mol m⁻² -> ppm·m (STP): ``x / MOL_M2_PER_PPM_M``."""
    return _value(x) / MOL_M2_PER_PPM_M


def ppm_m_to_kg_m2(x: Any) -> Any:
    """Column enhancement ppm·m (STP) -> kg CH4 m⁻²: ``x · KG_M2_PER_PPM_M``."""
    return _value(x) * KG_M2_PER_PPM_M


def kg_m2_to_ppm_m(x: Any) -> Any:
    """Column enhancement kg CH4 m⁻² -> ppm·m (STP): ``x / KG_M2_PER_PPM_M``."""
    return _value(x) / KG_M2_PER_PPM_M


def mol_m2_to_kg_m2(x: Any) -> Any:
    """Methane column mol m⁻² -> kg m⁻² (also mol -> kg): ``x · M_CH4``."""
    return _value(x) * M_CH4


def kg_m2_to_mol_m2(x: Any) -> Any:
    """Methane column kg m⁻² -> mol m⁻² (also kg -> mol): ``x / M_CH4``."""
    return _value(x) / M_CH4


def ppm_m_to_molec_cm2(x: Any) -> Any:
    """Column enhancement ppm·m (STP) -> molecules cm⁻²: ``x · MOLEC_CM2_PER_PPM_M``."""
    return _value(x) * MOLEC_CM2_PER_PPM_M


def molec_cm2_to_ppm_m(x: Any) -> Any:
    """Column enhancement molecules cm⁻² -> ppm·m (STP): ``x / MOLEC_CM2_PER_PPM_M``."""
    return _value(x) / MOLEC_CM2_PER_PPM_M
