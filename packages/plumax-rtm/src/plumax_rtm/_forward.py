"""Two-way Beer-Lambert forward model with a methane plume layer.

At-sensor radiance on the model's fine wavelength grid (e.g. Thompson et al. 2015,
AMT 8, 4383, eq. 1; Frankenberg et al. 2005 for the slant-column form):

``L(λ) = F(λ) ρ(λ) exp(-A [τ_bg(λ) + (s_w - 1) τ_H2O(λ) + σ_p(λ) N_ppm ΔX])``

* ``A = 1/cos θ_s + 1/cos θ_v`` — the two-way air-mass factor (plane-parallel);
* ``τ_bg`` — one-way vertical optical depth of the background atmosphere
  (``Σ_gas Σ_layers σ_gas(p_l, T_l) N_gas,l``) for every gas whose source is
  line-by-line or a LUT;
* ``s_w`` — water-vapour scaling of the H2O column (1 = the profile);
* ``σ_p`` — CH4 cross-section at the plume layer's (p, T); ``ΔX`` the enhancement in
  ppm·m and ``N_ppm`` = molecules cm⁻² per ppm·m (STP);
* ``ρ(λ) = ρ₀(λ) Σ_k c_k P_k(x)`` — a given surface spectrum ``ρ₀`` times a Legendre
  polynomial in ``x ∈ [-1, 1]`` across the grid;
* ``F(λ) = s_E E_sun(λ) cos θ_s / π`` (top-of-atmosphere solar irradiance, scaled by
  ``s_E``), or a given reference radiance (e.g. MODTRAN's ``L(0)``, which already holds
  the background atmosphere: then ``τ_bg = 0``, and ``ρ`` is relative to the reference).

Cross-sections are evaluated once at construction (line-by-line or LUT), so calling the
model is cheap, jit/vmap/grad-safe, and differentiable w.r.t. enhancement, water and
reflectance.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

# the column conversions (STP ppm·m) are core's, re-exported by plumax_rtm
from plumax_core.units import (
    mol_m2_to_ppm_m as mol_m2_to_ppm_m,
    ppm_m_to_mol_m2 as ppm_m_to_mol_m2,
)

from ._absorption import (
    MOLEC_CM2_PER_PPM_M,
    AbstractAbsorption,
    EffectiveAbsorption,
)
from ._atmosphere import Atmosphere

_H = 6.62607015e-34
_C = 2.99792458e8
_KB = 1.380649e-23
_R_SUN = 6.957e8
_AU = 1.495978707e11


def blackbody_solar_irradiance(wavelength_nm, temperature: float = 5772.0) -> np.ndarray:
    """TOA solar spectral irradiance at 1 AU from a 5772 K blackbody (IAU 2015 nominal
    effective temperature and radius), µW cm⁻² nm⁻¹ — a smooth stand-in for a measured
    solar spectrum (e.g. Kurucz/TSIS) that lacks Fraunhofer lines."""
    lam = np.asarray(wavelength_nm, float) * 1e-9
    b = 2 * _H * _C**2 / lam**5 / np.expm1(_H * _C / (lam * _KB * temperature))  # W m-2 sr-1 m-1
    e = np.pi * b * (_R_SUN / _AU) ** 2  # W m-2 m-1
    return e * 1e-9 * 1e6 * 1e-4  # µW cm-2 nm-1


def air_mass_factor(sza_deg: float, vza_deg: float) -> float:
    """Two-way plane-parallel air-mass factor ``1/cos θ_s + 1/cos θ_v``."""
    for name, v in (("sza_deg", sza_deg), ("vza_deg", vza_deg)):
        if not (0.0 <= v < 85.0):
            raise ValueError(f"`{name}` must be in [0, 85) degrees, got {v}")
    return float(1 / np.cos(np.deg2rad(sza_deg)) + 1 / np.cos(np.deg2rad(vza_deg)))


@eqx.filter_jit
def _layer_tau(source, pressure, temperature, columns):
    """``Σ_l σ(p_l, T_l) N_l`` in one compiled, layer-vmapped call."""
    xs = jax.vmap(source.cross_section)(pressure, temperature)
    return columns @ xs


def _legendre(x, n):
    out = [jnp.ones_like(x)]
    if n > 1:
        out.append(x)
    for k in range(2, n):
        out.append(((2 * k - 1) * x * out[-1] - (k - 1) * out[-2]) / k)
    return jnp.stack(out[:n])


class BeerLambertRTM(eqx.Module):
    """Radiance on a fine wavelength grid for a plume enhancement, water and reflectance.

    Build with :meth:`from_absorbers`. Attributes (fine grid of ``n`` wavelengths):
        wavelength: ``(n,)`` nm.
        source: ``(n,)`` ``F(λ)``, µW cm⁻² sr⁻¹ nm⁻¹ (before reflectance).
        tau_background: ``(n,)`` one-way vertical optical depth of the background,
            excluding H2O.
        tau_h2o: ``(n,)`` one-way vertical H2O optical depth of the profile.
        sigma_plume: ``(n,)`` CH4 one-way optical depth per ppm·m in the plume layer.
        surface: ``(n,)`` base reflectance spectrum ``ρ₀``.
        amf: two-way air-mass factor (static).
        n_poly: number of Legendre reflectance coefficients (static).
    """

    wavelength: Float[Array, " n"]
    source: Float[Array, " n"]
    tau_background: Float[Array, " n"]
    tau_h2o: Float[Array, " n"]
    sigma_plume: Float[Array, " n"]
    surface: Float[Array, " n"]
    amf: float = eqx.field(static=True)
    n_poly: int = eqx.field(static=True)

    def __check_init__(self):
        n = self.wavelength.shape
        for f in ("source", "tau_background", "tau_h2o", "sigma_plume", "surface"):
            if getattr(self, f).shape != n:
                raise ValueError(f"`{f}` must have the shape of `wavelength` {n}")
        if np.any(np.diff(np.asarray(self.wavelength)) <= 0):
            raise ValueError("`wavelength` must be strictly ascending")
        if self.n_poly < 1:
            raise ValueError("`n_poly` must be >= 1")

    @classmethod
    def from_absorbers(
        cls,
        absorbers: dict[str, AbstractAbsorption],
        *,
        atmosphere: Atmosphere | None = None,
        sza_deg: float = 30.0,
        vza_deg: float = 0.0,
        plume_pressure: float | None = None,
        plume_temperature: float | None = None,
        surface=None,
        solar_irradiance=None,
        reference_radiance=None,
        irradiance_scale: float = 1.0,
        n_poly: int = 3,
    ) -> "BeerLambertRTM":
        """Precompute the optical depths from absorption sources on one shared grid.

        Args:
            absorbers: ``{gas: source}``; must contain ``"CH4"``; all on the same grid.
            atmosphere: layers for the background (needed for line-by-line/LUT gases).
            sza_deg, vza_deg: solar and viewing zenith angles, degrees.
            plume_pressure, plume_temperature: plume layer (default: lowest layer, or
                101325 Pa / 288.15 K without an atmosphere).
            surface: ``(n,)`` base reflectance (default 1).
            solar_irradiance: ``(n,)`` µW cm⁻² nm⁻¹ (default 5772 K blackbody).
            reference_radiance: ``(n,)`` use this as ``F`` (no background τ); default
                the CH4 source's ``reference_radiance`` when it is an
                :class:`EffectiveAbsorption` and no atmosphere is given.
            irradiance_scale: ``s_E``.
            n_poly: Legendre reflectance coefficients.
        """
        if "CH4" not in absorbers:
            raise ValueError("`absorbers` must contain 'CH4'")
        wl = np.asarray(absorbers["CH4"].wavelength)
        for g, a in absorbers.items():
            if not isinstance(a, AbstractAbsorption):
                raise TypeError(f"`absorbers[{g!r}]` must be an AbstractAbsorption")
            if a.wavelength.shape != wl.shape or not np.allclose(np.asarray(a.wavelength), wl):
                raise ValueError(f"`absorbers[{g!r}]` is on a different wavelength grid")
        amf = air_mass_factor(sza_deg, vza_deg)
        dt = absorbers["CH4"].wavelength.dtype
        if plume_pressure is None:
            plume_pressure = float(atmosphere.pressure[0]) if atmosphere is not None else 101325.0
        if plume_temperature is None:
            plume_temperature = (
                float(atmosphere.temperature[0]) if atmosphere is not None else 288.15
            )
        sigma_plume = (
            absorbers["CH4"].cross_section(plume_pressure, plume_temperature) * MOLEC_CM2_PER_PPM_M
        )
        tau_bg = np.zeros(wl.shape)
        tau_h2o = np.zeros(wl.shape)
        if atmosphere is not None:
            for g, a in absorbers.items():
                if isinstance(a, EffectiveAbsorption):
                    continue  # valid for enhancements only, not a 10^4 ppm·m background
                cols = jnp.asarray(atmosphere.column(g))
                tau = np.asarray(_layer_tau(a, atmosphere.pressure, atmosphere.temperature, cols))
                if g == "H2O":
                    tau_h2o = tau_h2o + tau
                else:
                    tau_bg = tau_bg + tau
        ch4 = absorbers["CH4"]
        if (
            reference_radiance is None
            and atmosphere is None
            and isinstance(ch4, EffectiveAbsorption)
        ):
            reference_radiance = ch4.reference_radiance
        if reference_radiance is not None:
            source = np.asarray(reference_radiance, float) * irradiance_scale
        else:
            e = (
                blackbody_solar_irradiance(wl)
                if solar_irradiance is None
                else np.asarray(solar_irradiance, float)
            )
            source = irradiance_scale * e * np.cos(np.deg2rad(sza_deg)) / np.pi
        surface = np.ones(wl.shape) if surface is None else np.asarray(surface, float)
        return cls(
            wavelength=jnp.asarray(wl, dt),
            source=jnp.asarray(source, dt),
            tau_background=jnp.asarray(tau_bg, dt),
            tau_h2o=jnp.asarray(tau_h2o, dt),
            sigma_plume=jnp.asarray(sigma_plume, dt),
            surface=jnp.asarray(surface, dt),
            amf=amf,
            n_poly=int(n_poly),
        )

    def reflectance(self, coeffs: Float[ArrayLike, " k"]) -> Float[Array, " n"]:
        """``ρ(λ) = ρ₀(λ) Σ_k c_k P_k(x)``."""
        coeffs = jnp.asarray(coeffs)
        if coeffs.shape[-1] != self.n_poly:
            raise ValueError(f"`coeffs` must have {self.n_poly} entries, got {coeffs.shape}")
        wl = self.wavelength
        x = 2 * (wl - wl[0]) / (wl[-1] - wl[0]) - 1
        return self.surface * (coeffs @ _legendre(x, self.n_poly))

    def optical_depth(self, enhancement, h2o_scale=1.0) -> Float[Array, " n"]:
        """Slant (two-way) optical depth ``A [τ_bg + s_w τ_H2O + σ_p ΔX]``."""
        return self.amf * (
            self.tau_background + h2o_scale * self.tau_h2o + self.sigma_plume * enhancement
        )

    def __call__(
        self,
        enhancement: Float[ArrayLike, ""],
        h2o_scale: Float[ArrayLike, ""] = 1.0,
        reflectance_coeffs: Float[ArrayLike, " k"] | None = None,
    ) -> Float[Array, " n"]:
        """Radiance ``(n,)`` µW cm⁻² sr⁻¹ nm⁻¹ for an enhancement in ppm·m."""
        if reflectance_coeffs is None:
            reflectance_coeffs = jnp.zeros(self.n_poly).at[0].set(1.0)
        rho = self.reflectance(reflectance_coeffs)
        return self.source * rho * jnp.exp(-self.optical_depth(enhancement, h2o_scale))

    def default_coeffs(self, albedo: float = 1.0) -> Float[Array, " k"]:
        return jnp.zeros(self.n_poly, self.wavelength.dtype).at[0].set(albedo)
