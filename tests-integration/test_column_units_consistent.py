"""One ppm·m across packages: a transport column carries the plume's mass into rtm.

plumax-transport writes column images in ppm·m (`ColumnImage`, kind ``column_ppm_m``) and
plumax-rtm reads ppm·m in its radiance operator and its flux methods. Both must mean the
same number of molecules, or a synthetic overpass holds more (or less) methane than the
plume emitted. The independent check is mass conservation: far enough downwind that the
whole plume is in the image, the crosswind integral of a steady plume's column times the
wind speed is the emission rate, :math:`u \\int \\Omega\\, dy = Q` (the vertical density
integrates to one, reflections included). plumax-rtm's cross-sectional-flux method
(`csf_flux`, which converts ppm·m to kg m⁻² with its own constant) must therefore return
`Q` from a noise-free transport image, whatever the met's temperature.

KNOWN INCONSISTENCY (issue 18 note): plumax-transport's `ColumnImage(units="ppm_m")`
converts with the met's air density ``p/(RT)``, plumax-rtm (and `plumax_core.units`)
with the density at STP, so at the default 288.15 K a transport column holds 5.5% more
ppm·m than its mass, and the IME/CSF quick-look fluxes of the demo are 5.5% high (seed
0: IME 1052, CSF 1071 kg/h for a 1000 kg/h source; 995 and 983 with an STP column).
Switching the transport to STP moves the fast cycle's NPE calibration across its gate
on some seeds (SBC p 0.0286 -> 0.0001 at seed 0), so the switch waits for the
calibration work of the next issue. The conservation test is therefore a strict xfail:
it fails today, as it should, and turns into an error (XPASS) the day the units agree,
so whoever fixes it removes the mark.
"""

from __future__ import annotations

import numpy as np
import pytest

import plumax_rtm as pr
from plumax_core import MetField, units
from plumax_transport import ColumnImage, GaussianPlume


@pytest.mark.xfail(
    strict=True,
    reason="transport ppm m uses the met's air density, rtm the STP one (see module doc)",
)
@pytest.mark.parametrize("temperature", [250.0, 288.15, 310.0])
def test_csf_of_a_transport_column_returns_the_emission_rate(x64, temperature):
    q = 0.1  # kg/s
    wind = 5.0
    step = 20.0  # m
    x = np.arange(0.0, 2000.0 + step, step)
    y = np.arange(-800.0, 800.0 + step, step)
    met = MetField.uniform(wind, 270.0, stability="D", pblh=1000.0, temperature=temperature)
    image = GaussianPlume(ColumnImage(x, y))({"Q": q, "x0": 0.0, "y0": 0.0, "H": 5.0}, met)
    assert image.kind == "column_ppm_m"
    source = (int(np.argmin(np.abs(y))), 0)
    est = pr.csf_flux(
        np.asarray(image.values),
        step,
        wind,
        source,
        distances_px=(25, 50, 75),  # 500, 1000, 1500 m downwind
        halfwidth_px=40,  # ±800 m: > 5 sigma_y at 1.5 km in class D
    )
    assert est.rate == pytest.approx(q, rel=2e-3)


def test_the_column_unit_is_the_core_unit():
    # 1 ppm·m is 1e-6 of a 1-m column of air at 273.15 K and 101325 Pa
    n_stp = 101325.0 / (8.314462618 * 273.15)
    assert units.ppm_m_to_mol_m2(1.0) == pytest.approx(1e-6 * n_stp, rel=1e-12)
    assert pr.ppm_m_to_mol_m2 is units.ppm_m_to_mol_m2
