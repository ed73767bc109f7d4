"""Briggs plume rise: the final rise of a buoyant or jet-like release above its vent.

Fluxes at the vent (exit velocity ``w`` m/s, radius ``r`` m, exit temperature ``T_s`` K,
ambient temperature ``T_a`` K, g = 9.80665 m/s²):

* buoyancy flux ``F_b = g w r² (T_s - T_a) / T_s``  (m⁴/s³), Briggs (1969, 1975);
* momentum flux ``F_m = w² r² T_a / T_s``  (m⁴/s²).

Final rise at stack-top wind speed ``u``:

* neutral / unstable (classes A-D): buoyancy-dominated
  ``Δh = 21.425 F_b^{3/4} / u`` for ``F_b < 55`` and ``38.71 F_b^{3/5} / u`` otherwise
  (Briggs 1971, 1972: ``1.6 F^{1/3} x_f^{2/3}/u`` with ``x_f = 49 F^{5/8}`` or
  ``119 F^{2/5}``); momentum-dominated ``Δh = 3 d w / u`` with ``d = 2r`` (Briggs 1969);
* stable (classes E, F): stability parameter ``s = (g/T_a) dθ/dz`` with
  ``dθ/dz = 0.020`` K/m (E) and ``0.035`` K/m (F); buoyancy-dominated
  ``Δh = 2.6 (F_b/(u s))^{1/3}``, momentum-dominated ``Δh = 1.5 (F_m/(u √s))^{1/3}``
  (Briggs 1975).

As recommended by Briggs (1975) the larger of the buoyancy and momentum rises is used.
The formulas and constants are those of the US EPA ISC3 model (User's Guide vol. II,
EPA-454/B-95-003b, section 1.1.4). A vent no warmer than the air (``F_b <= 0``, e.g. a
cold methane vent) has no buoyant rise; with ``w = 0`` there is no rise at all, which is
the default of the models (``plume_rise=None``).
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Int

_G = 9.80665
_DTHETA_DZ = (0.0, 0.0, 0.0, 0.0, 0.020, 0.035)  # K/m, classes A-F (only E, F used)


def buoyancy_flux(exit_velocity, radius, exit_temperature, ambient_temperature):
    """``F_b = g w r² (T_s - T_a)/T_s`` in m⁴/s³ (Briggs 1969)."""
    Ts = jnp.asarray(exit_temperature)
    return _G * exit_velocity * radius**2 * (Ts - ambient_temperature) / Ts


def momentum_flux(exit_velocity, radius, exit_temperature, ambient_temperature):
    """``F_m = w² r² T_a/T_s`` in m⁴/s² (Briggs 1969)."""
    return exit_velocity**2 * radius**2 * ambient_temperature / exit_temperature


def _pos_pow(x: Array, p: float) -> Array:
    """``x**p`` for x > 0, 0 otherwise, with finite gradients everywhere."""
    pos = x > 0
    return jnp.where(pos, jnp.where(pos, x, 1.0) ** p, 0.0)


class BriggsPlumeRise(eqx.Module):
    """Vent properties for Briggs final plume rise (see the module docstring).

    Attributes:
        exit_velocity: vertical exit velocity ``w``, m/s, >= 0.
        radius: vent inner radius ``r``, m, > 0.
        exit_temperature: exit gas temperature ``T_s``, K, > 0.
    """

    exit_velocity: Float[Array, ""]
    radius: Float[Array, ""]
    exit_temperature: Float[Array, ""]

    def __init__(self, exit_velocity: float, radius: float, exit_temperature: float):
        self.exit_velocity = jnp.asarray(exit_velocity, dtype=float)
        self.radius = jnp.asarray(radius, dtype=float)
        self.exit_temperature = jnp.asarray(exit_temperature, dtype=float)

    def __check_init__(self):
        import numpy as np

        for name, lo, strict in (
            ("exit_velocity", 0.0, False),
            ("radius", 0.0, True),
            ("exit_temperature", 0.0, True),
        ):
            v = np.asarray(getattr(self, name))
            if not np.all(np.isfinite(v)) or np.any(v < lo) or (strict and np.any(v == lo)):
                raise ValueError(f"`{name}` must be finite and {'>' if strict else '>='} 0")

    def __call__(
        self,
        wind_speed: Float[ArrayLike, ""],
        stability: Int[ArrayLike, ""],
        ambient_temperature: Float[ArrayLike, ""],
    ) -> Float[Array, ""]:
        """Final plume rise Δh (m) at stack-top wind speed (m/s), class index, T_a (K)."""
        u = jnp.asarray(wind_speed)
        Ta = jnp.asarray(ambient_temperature, dtype=u.dtype)
        w = self.exit_velocity.astype(u.dtype)
        r = self.radius.astype(u.dtype)
        Ts = self.exit_temperature.astype(u.dtype)
        Fb = buoyancy_flux(w, r, Ts, Ta)
        Fm = momentum_flux(w, r, Ts, Ta)
        # neutral / unstable
        dh_b_neu = jnp.where(Fb < 55.0, 21.425 * _pos_pow(Fb, 0.75), 38.71 * _pos_pow(Fb, 0.6)) / u
        dh_m_neu = 3.0 * (2.0 * r) * w / u
        neutral = jnp.maximum(dh_b_neu, dh_m_neu)
        # stable
        dtheta = jnp.asarray(_DTHETA_DZ, dtype=u.dtype)[stability]
        s = _G / Ta * jnp.where(dtheta > 0, dtheta, 1.0)
        dh_b_st = 2.6 * _pos_pow(Fb / (u * s), 1.0 / 3.0)
        dh_m_st = 1.5 * _pos_pow(Fm / (u * jnp.sqrt(s)), 1.0 / 3.0)
        stable = jnp.maximum(dh_b_st, dh_m_st)
        return jnp.where(jnp.asarray(stability) >= 4, stable, neutral)
