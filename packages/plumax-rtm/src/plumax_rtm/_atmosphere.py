"""Layered standard atmospheres (AFGL, Anderson et al. 1986) for CH4, CO2 and H2O.

Anderson, G. P., Clough, S. A., Kneizys, F. X., Chetwynd, J. H. and Shettle, E. P.
(1986), *AFGL Atmospheric Constituent Profiles (0-120 km)*, AFGL-TR-86-0110. Only the
0-10 km levels are kept (pressure mb, temperature K, H2O ppmv from Tables 1a-f/2a-d).

Verification (2025): the values were first typed from memory; they were then checked
against two independent machine-readable transcriptions of the AFGL tables — the
``pyrtlib`` climatology files (SatCloP/pyrtlib, ``pyrtlib/climatology/*.dat``, which cite
Anderson et al. 1986) and the AFGL H2O profiles embedded in a Fortran/C radiative
transfer code base (identical values). Four typing errors were corrected: US standard
p(1 km) 898.6 -> 898.8 mb; tropical T(2 km) 288.0 -> 287.7 K; mid-latitude winter
p(9 km) 299.2 -> 299.3 mb and its H2O at 3-10 km (2098, 1133, 642.5, 410.9, 227.5,
128.0, 71.11, 38.48 -> 2088, 1280, 824.1, 510.3, 232.1, 107.7, 55.66, 29.60 ppmv). The
US-standard T/p columns equal the U.S. Standard Atmosphere 1976 (NOAA/NASA/USAF,
NASA-TM-X-74335) rounded to 4 digits; the tests recompute them from its lapse rates.

the air above 10 km is one extra layer from the 10-km pressure to the top at the 10-km
temperature and mixing ratios (a documented simplification: it carries ~26% of the
column). CH4 and CO2 are well mixed at user-given values (defaults 1.9 ppm and
420 ppm — the AFGL tables' 1.7 and 330 ppmv are 1980s values).
"""

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

_Z_KM = np.arange(11.0)
# name -> (pressure mb, temperature K, H2O ppmv) at 0, 1, ..., 10 km.
_AFGL = {
    "us_standard": (
        [1013.0, 898.8, 795.0, 701.2, 616.6, 540.5, 472.2, 411.1, 356.5, 308.0, 265.0],
        [288.2, 281.7, 275.2, 268.7, 262.2, 255.7, 249.2, 242.7, 236.2, 229.7, 223.3],
        [7745, 6071, 4631, 3182, 2158, 1397, 925.4, 572.0, 366.7, 158.3, 69.96],
    ),
    "tropical": (
        [1013.0, 904.0, 805.0, 715.0, 633.0, 559.0, 492.0, 432.0, 378.0, 329.0, 286.0],
        [299.7, 293.7, 287.7, 283.7, 277.0, 270.3, 263.6, 257.0, 250.3, 243.6, 237.0],
        [25930, 19490, 15340, 8600, 4441, 3346, 2101, 1289, 763.7, 409.8, 191.2],
    ),
    "midlatitude_summer": (
        [1013.0, 902.0, 802.0, 710.0, 628.0, 554.0, 487.0, 426.0, 372.0, 324.0, 281.0],
        [294.2, 289.7, 285.2, 279.2, 273.2, 267.2, 261.2, 254.7, 248.2, 241.7, 235.3],
        [18760, 13780, 9680, 5984, 3813, 2225, 1510, 1020, 646.4, 412.9, 247.2],
    ),
    "midlatitude_winter": (
        [1018.0, 897.3, 789.7, 693.8, 608.1, 531.3, 462.7, 401.6, 347.3, 299.3, 256.8],
        [272.2, 268.7, 265.2, 261.7, 255.7, 249.7, 243.7, 237.7, 231.7, 225.7, 219.7],
        [4316, 3454, 2788, 2088, 1280, 824.1, 510.3, 232.1, 107.7, 55.66, 29.60],
    ),
}
STANDARD_ATMOSPHERES = tuple(_AFGL)
_G = 9.80665
_M_AIR = 28.9647e-3  # kg/mol
_N_A = 6.02214076e23


class Atmosphere(eqx.Module):
    """Homogeneous layers with their pressure, temperature and gas columns.

    Attributes:
        pressure: ``(L,)`` layer mean pressure, Pa.
        temperature: ``(L,)`` layer mean temperature, K.
        air_column: ``(L,)`` dry-air column, molecules cm⁻².
        vmr: ``{gas: (L,)}`` volume mixing ratios (mol/mol).
        name: label.
    """

    pressure: Float[Array, " L"]
    temperature: Float[Array, " L"]
    air_column: Float[Array, " L"]
    vmr: dict[str, Float[Array, " L"]]
    name: str = eqx.field(static=True)

    def __check_init__(self):
        n = self.pressure.shape
        if self.temperature.shape != n or self.air_column.shape != n:
            raise ValueError("Atmosphere arrays must all have shape (L,)")
        for g, v in self.vmr.items():
            if v.shape != n:
                raise ValueError(f"`vmr[{g!r}]` must have shape {n}")

    def column(self, gas: str) -> Float[Array, " L"]:
        """Per-layer column of ``gas``, molecules cm⁻²."""
        if gas not in self.vmr:
            raise ValueError(f"`gas` {gas!r} not in this atmosphere ({sorted(self.vmr)})")
        return self.vmr[gas] * self.air_column

    def total_column(self, gas: str) -> Float[Array, ""]:
        return jnp.sum(self.column(gas))


def standard_atmosphere(
    name: str = "us_standard", *, ch4_ppm: float = 1.9, co2_ppm: float = 420.0
) -> Atmosphere:
    """An AFGL standard atmosphere as 11 layers (10 of 1 km, one above 10 km).

    Layer columns from hydrostatic balance, ``N = Δp N_A / (g M_air)`` (dry air; the
    water-vapour mass is neglected, < 2%).

    Args:
        name: one of :data:`STANDARD_ATMOSPHERES`.
        ch4_ppm, co2_ppm: well-mixed dry mole fractions, ppm.
    """
    if name not in _AFGL:
        raise ValueError(f"`name` {name!r} unknown; choose from {STANDARD_ATMOSPHERES}")
    if not (ch4_ppm >= 0 and co2_ppm >= 0):
        raise ValueError("`ch4_ppm` and `co2_ppm` must be >= 0")
    p_mb, t, h2o = (np.asarray(a, float) for a in _AFGL[name])
    p_edges = np.concatenate([p_mb, [0.0]]) * 100.0
    dp = p_edges[:-1] - p_edges[1:]
    p_mid = np.concatenate([0.5 * (p_edges[:-2] + p_edges[1:-1]), [p_edges[-2] / 2]])
    t_mid = np.concatenate([0.5 * (t[:-1] + t[1:]), [t[-1]]])
    h_mid = np.concatenate([np.sqrt(h2o[:-1] * h2o[1:]), [h2o[-1]]]) * 1e-6
    air = dp * _N_A / (_G * _M_AIR) * 1e-4  # molecules cm-2
    n = air.size
    return Atmosphere(
        jnp.asarray(p_mid),
        jnp.asarray(t_mid),
        jnp.asarray(air),
        {
            "H2O": jnp.asarray(h_mid),
            "CH4": jnp.full(n, ch4_ppm * 1e-6),
            "CO2": jnp.full(n, co2_ppm * 1e-6),
        },
        name,
    )
