r"""Boundary-layer turbulence for the Lagrangian particle model (Tier II).

A turbulence model maps the boundary-layer scales at each particle, height ``z`` (m),
boundary-layer height ``h`` (m), friction velocity ``u*`` and convective velocity ``w*``
(m/s) and Obukhov length ``L`` (m), to the standard deviations ``sigma_u, sigma_v,
sigma_w`` (m/s) of the turbulent velocity and the Lagrangian time scales ``tau_u, tau_v,
tau_w`` (s) that drive the Langevin step of :mod:`plumax_transport._particle_step`,
plus ``d(sigma_w^2)/dz`` for Thomson's (1987) drift correction.

**Hanna (1982)** (S. R. Hanna, "Applications in air pollution modeling", ch. 7 of
Nieuwstadt & van Dop (eds.), *Atmospheric Turbulence and Air Pollution Modelling*,
Reidel), as printed in Stohl et al. (2005, *Atmos. Chem. Phys.* 5, 2461-2474, section
7) and FLEXPART's technical note v9.2 ("Parameterization of the wind fluctuations"),
with ``zeta = z/h``. Where FLEXPART's code (``hanna.f90``) differs from that printed
form, this module follows the printed Hanna (1982) form; the differences are listed
below.

*Unstable* (``L < 0`` and ``h/|L| >= 1``)::

    sigma_u = sigma_v = u* (12 + h / (2|L|))^(1/3)
    tau_u = tau_v = 0.15 h / sigma_u
    sigma_w^2 = 1.2 w*^2 (1 - 0.9 zeta) zeta^(2/3) + (1.8 - 1.4 zeta) u*^2
    tau_w = 0.1 z / (sigma_w (0.55 - 0.38 z/|L|))   for zeta < 0.1 and z < |L|
          = 0.59 z / sigma_w                        for zeta < 0.1 and z >= |L|
          = 0.15 h / sigma_w (1 - exp(-5 zeta))     for zeta >= 0.1

(the ``sigma_w`` profile is the Ryall & Maryon (1998, *Atmos. Environ.* 32, 4265-4276)
modification FLEXPART adopts.) The surface-layer ``tau_w`` denominator is written
``0.55 - 0.38 z/|L|``, as in ``hanna.f90``, which makes ``tau_w`` continuous at ``z =
|L|`` to 0.3 % (0.1/0.17 = 0.588 against 0.59); the printed ``(z - z0)/L`` with ``L < 0``
would give 0.1/0.93 there, a jump by 5.5x (``z0 << z`` is dropped, as FLEXPART does). At
``zeta = 0.1`` ``tau_w`` is continuous only when ``|L| <= 0.1 h``: the ``0.59 z/sigma_w``
branch then meets ``0.15 (1 - e^-0.5) h/sigma_w = 0.059 h/sigma_w``. When ``|L| > 0.1 h``
the surface-layer branch holds just below ``zeta = 0.1`` and ``tau_w`` jumps up there
by the factor ``5.90 (0.55 - 0.038 h/|L|)`` (tested): 2.5 for ``h`` = 1000 m, ``L`` =
-300 m, from 40.9 s to 102.2 s with a 4 m/s wind at 10 m and ``z0`` = 0.1 m.

*Neutral* (``h/|L| < 1``, including ``L = +-inf``), ``f`` the Coriolis parameter::

    sigma_u = 2.0 u* exp(-3 f z / u*)
    sigma_v = sigma_w = 1.3 u* exp(-2 f z / u*)
    tau_u = tau_v = tau_w = 0.5 z / sigma_w / (1 + 15 f z / u*)

(``f = 1e-4`` s-1 by default, the value FLEXPART hard-codes: ``3e-4 z/u*`` etc.)

*Stable* (``L > 0`` and ``h/L >= 1``)::

    sigma_u = 2.0 u* (1 - zeta),  sigma_v = sigma_w = 1.3 u* (1 - zeta)
    tau_u = 0.15 h / sigma_u zeta^0.5
    tau_v = 0.07 h / sigma_v zeta^0.5
    tau_w = 0.10 h / sigma_w zeta^0.8

(exponent 0.8 for ``tau_w`` as in Hanna (1982) and FLEXPART's code; the v9.2 note prints
0.5.)

**Differences from FLEXPART's** ``hanna.f90`` (this module follows the printed form):

* unstable ``tau_w``: ``hanna.f90`` tests ``z < |L|`` before ``zeta < 0.1``, so for
  ``|L| > 0.1 h`` it keeps the surface-layer form up to ``z = |L|``, above ``0.1 h``;
  here ``zeta < 0.1`` is tested first, as printed;
* stable ``tau_v``: ``hanna.f90`` sets ``tlv = 0.467 tlu = 0.07 h/sigma_u zeta^0.5``;
  here ``0.07 h/sigma_v zeta^0.5``, as printed (longer by ``sigma_u/sigma_v = 2/1.3``);
* the sigmas: ``hanna.f90`` adds 0.01 m/s to each; here each is floored at
  ``min_sigma`` (0.01 m/s) instead;
* ``d sigma_w/dz``: ``hanna.f90`` codes closed forms (its neutral ``-2e-4 sigma_w``
  lacks the ``1/u*`` of its profile's derivative, its unstable one floors ``zeta`` at
  1e-3); here the exact derivative of the profile actually used (below);
* ``u*``: ``hanna.f90`` floors it at 1e-4 m/s in its neutral branch; here in every
  regime.

**Floors** (so that the Langevin step stays finite; all documented attributes of
:class:`HannaTurbulence`): the profiles are evaluated at ``clip(z, min_height, h)``
(below ``min_height`` = 1 m they are constant: no singular ``zeta^(-1/3)`` gradient and
no ``tau -> 0`` at the ground); ``u*`` is floored at 1e-4 m/s before it divides;
every sigma is ``max(sigma, min_sigma)`` (0.01 m/s, the stable profiles vanish at
``z = h``); the time scales are ``max(tau_u, min_tau_horizontal)``,
``max(tau_v, min_tau_horizontal)``, ``max(tau_w, min_tau_vertical)``, by default 10 s and
30 s, FLEXPART's minima ("in order to avoid excessive computation times for particles
close to the surface", Stohl et al. 2005). The floors change the profiles, never the
consistency of the model: ``dsigma_w2_dz`` is the exact derivative of the floored
``sigma_w^2`` (computed by forward-mode differentiation, ``jax.jvp``), so Thomson's
well-mixed condition holds for the profile actually used.

**Surface-layer scaling** used to feed the profiles from a met field (see
:func:`friction_velocity`): Monin-Obukhov similarity with the Businger-Dyer functions
(:func:`psi_m`) and Deardorff's (1970) convective velocity ``w* = u* (-h/(kappa L))^(1/3)``
(``w*^3 = g/T <w'theta'> h`` with ``L = -u*^3 T/(kappa g <w'theta'>)``).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

#: von Karman constant (as plumax_core's surface-layer profile).
VON_KARMAN = 0.4


class TurbulenceProfile(eqx.Module):
    """Turbulence statistics at each particle; every field has the particles' shape.

    Attributes:
        sigma_u, sigma_v, sigma_w: standard deviations of the turbulent velocity
            components (along x, along y, vertical), m/s.
        tau_u, tau_v, tau_w: Lagrangian time scales, s.
        dsigma_w2_dz: ``d(sigma_w^2)/dz``, m/s^2 (Thomson's drift correction).
    """

    sigma_u: Float[Array, " N"]
    sigma_v: Float[Array, " N"]
    sigma_w: Float[Array, " N"]
    tau_u: Float[Array, " N"]
    tau_v: Float[Array, " N"]
    tau_w: Float[Array, " N"]
    dsigma_w2_dz: Float[Array, " N"]


class AbstractTurbulence(eqx.Module):
    """A turbulence parameterisation: boundary-layer scales -> :class:`TurbulenceProfile`.

    Implementations are final classes with the contract of :meth:`__call__`; they are
    evaluated at every particle, every step, inside ``jax.lax.scan``.
    """

    @abc.abstractmethod
    def __call__(
        self,
        z: Float[Array, " N"],
        h: Float[Array, " N"],
        ustar: Float[Array, " N"],
        wstar: Float[Array, " N"],
        L: Float[Array, " N"],
    ) -> TurbulenceProfile:
        """Turbulence statistics at heights ``z`` (m) in boundary layers of height ``h``
        (m), friction velocity ``ustar`` and convective velocity ``wstar`` (m/s) and
        Obukhov length ``L`` (m, ``+-inf`` neutral); the inputs broadcast together.

        Contract (for every implementation):

        * every field of the result has the broadcast shape of the inputs;
        * ``sigma_u, sigma_v, sigma_w`` are finite and ``>= 0`` (0 only for a component
          without turbulence, e.g. :class:`HomogeneousTurbulence` with a zero sigma);
        * ``tau_u, tau_v, tau_w`` are finite and ``> 0``;
        * ``dsigma_w2_dz`` is the derivative of ``sigma_w**2`` with respect to ``z``
          (where the profile is differentiable), so that Thomson's (1987) drift
          correction makes the model well mixed;
        * the result is traceable: it runs under ``jax.jit``/``vmap`` with no Python
          branching on values.
        """


def check_turbulence(turbulence) -> None:
    """Raise ``ValueError`` naming ``turbulence`` unless it is an
    :class:`AbstractTurbulence`."""
    if not isinstance(turbulence, AbstractTurbulence):
        raise ValueError(
            f"`turbulence` must be an AbstractTurbulence, got {type(turbulence).__name__}"
        )


def _as_times(value: float | Sequence[float], name: str) -> tuple[float, float, float]:
    if isinstance(value, int | float):
        vals = (float(value),) * 3
    else:
        vals = tuple(float(v) for v in value)
        if len(vals) != 3:
            raise ValueError(f"`{name}` must be one time (s) or three (u, v, w), got {value!r}")
    if not all(math.isfinite(v) and v > 0 for v in vals):
        raise ValueError(f"`{name}` must be finite and > 0 s, got {value!r}")
    return vals  # type: ignore[return-value]


class HomogeneousTurbulence(AbstractTurbulence):
    """Homogeneous, stationary turbulence: constant sigmas and time scales.

    Attributes:
        sigma_u, sigma_v, sigma_w: standard deviations, m/s (finite, >= 0; all 0 gives
            pure advection by the mean wind).
        lagrangian_time: ``(tau_u, tau_v, tau_w)``, s (> 0); the constructor accepts one
            time for all three components.
    """

    sigma_u: float
    sigma_v: float
    sigma_w: float
    lagrangian_time: tuple[float, float, float]

    def __init__(
        self,
        sigma_u: float,
        sigma_v: float,
        sigma_w: float,
        lagrangian_time: float | Sequence[float],
    ):
        for name, s in (("sigma_u", sigma_u), ("sigma_v", sigma_v), ("sigma_w", sigma_w)):
            if not (math.isfinite(float(s)) and float(s) >= 0):
                raise ValueError(f"`{name}` must be finite and >= 0 m/s, got {s!r}")
        self.sigma_u = float(sigma_u)
        self.sigma_v = float(sigma_v)
        self.sigma_w = float(sigma_w)
        self.lagrangian_time = _as_times(lagrangian_time, "lagrangian_time")

    def __call__(self, z, h, ustar, wstar, L) -> TurbulenceProfile:
        shape = jnp.broadcast_shapes(*(jnp.shape(a) for a in (z, h, ustar, wstar, L)))
        dtype = jnp.result_type(z, float)
        const = lambda v: jnp.full(shape, v, dtype=dtype)
        tu, tv, tw = self.lagrangian_time
        return TurbulenceProfile(
            const(self.sigma_u),
            const(self.sigma_v),
            const(self.sigma_w),
            const(tu),
            const(tv),
            const(tw),
            const(0.0),
        )


class HannaTurbulence(AbstractTurbulence):
    """Hanna (1982) boundary-layer profiles as printed in Stohl et al. (2005), FLEXPART's
    scheme; the module docstring gives the formulas and where FLEXPART's code differs.

    Regimes: neutral when ``h/|L| < 1`` (``L = +-inf`` included), unstable when
    ``L < 0`` and ``h/|L| >= 1``, stable when ``L > 0`` and ``h/L >= 1``.

    Attributes:
        coriolis: Coriolis parameter ``f`` of the neutral profiles, s-1 (default 1e-4,
            FLEXPART's constant; ``2 Omega sin(latitude)`` for a given site).
        min_height: lowest height at which the profiles are evaluated, m (1 m).
        min_sigma: floor of every sigma, m/s (0.01).
        min_tau_horizontal: floor of ``tau_u`` and ``tau_v``, s (10, FLEXPART).
        min_tau_vertical: floor of ``tau_w``, s (30, FLEXPART).
    """

    coriolis: float = 1e-4
    min_height: float = 1.0
    min_sigma: float = 0.01
    min_tau_horizontal: float = 10.0
    min_tau_vertical: float = 30.0

    def __check_init__(self):
        for name in (
            "coriolis",
            "min_height",
            "min_sigma",
            "min_tau_horizontal",
            "min_tau_vertical",
        ):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise ValueError(f"`{name}` must be a finite number > 0, got {v!r}")

    def _profiles(self, z, h, ustar, wstar, inv_L):
        """(sigma_u, sigma_v, sigma_w, tau_u, tau_v, tau_w) before the tau floors."""
        f = self.coriolis
        us = jnp.maximum(ustar, 1e-4)
        zc = jnp.clip(z, self.min_height, h)
        zeta = zc / h
        hl = h * inv_L  # h/L: < 0 unstable, > 0 stable
        neutral = jnp.abs(hl) < 1.0
        unstable = (hl <= -1.0) & ~neutral
        floor = lambda s: jnp.maximum(s, self.min_sigma)
        # unstable (convective)
        su_c = floor(us * jnp.cbrt(jnp.maximum(12.0 - 0.5 * hl, 0.0)))
        sw2_c = (
            1.2 * wstar**2 * (1.0 - 0.9 * zeta) * zeta ** (2.0 / 3.0) + (1.8 - 1.4 * zeta) * us**2
        )
        sw_c = floor(jnp.sqrt(jnp.maximum(sw2_c, 0.0)))
        tu_c = 0.15 * h / su_c
        z_over_absL = -zc * inv_L  # z/|L| for L < 0
        tw_surface = 0.1 * zc / (sw_c * jnp.maximum(0.55 - 0.38 * z_over_absL, 0.17))
        tw_c = jnp.where(
            zeta < 0.1,
            jnp.where(z_over_absL < 1.0, tw_surface, 0.59 * zc / sw_c),
            0.15 * h / sw_c * (1.0 - jnp.exp(-5.0 * zeta)),
        )
        # neutral
        r = f * zc / us
        su_n = floor(2.0 * us * jnp.exp(-3.0 * r))
        sw_n = floor(1.3 * us * jnp.exp(-2.0 * r))
        t_n = 0.5 * zc / sw_n / (1.0 + 15.0 * r)
        # stable
        one_m = 1.0 - zeta
        su_s = floor(2.0 * us * one_m)
        sw_s = floor(1.3 * us * one_m)
        sq = jnp.sqrt(zeta)
        tu_s = 0.15 * h / su_s * sq
        tv_s = 0.07 * h / sw_s * sq
        tw_s = 0.10 * h / sw_s * zeta**0.8

        def pick(c, n, s):
            return jnp.where(neutral, n, jnp.where(unstable, c, s))

        return (
            pick(su_c, su_n, su_s),
            pick(su_c, sw_n, sw_s),
            pick(sw_c, sw_n, sw_s),
            pick(tu_c, t_n, tu_s),
            pick(tu_c, t_n, tv_s),
            pick(tw_c, t_n, tw_s),
        )

    def __call__(self, z, h, ustar, wstar, L) -> TurbulenceProfile:
        z, h, ustar, wstar, L = jnp.broadcast_arrays(
            *(jnp.asarray(a, dtype=jnp.result_type(z, float)) for a in (z, h, ustar, wstar, L))
        )
        inv_L = 1.0 / L  # 1/inf = 0: neutral

        def sw2_and_rest(zz):
            su, sv, sw, tu, tv, tw = self._profiles(zz, h, ustar, wstar, inv_L)
            return sw * sw, (su, sv, sw, tu, tv, tw)

        sw2, dsw2, rest = jax.jvp(sw2_and_rest, (z,), (jnp.ones_like(z),), has_aux=True)
        del sw2
        su, sv, sw, tu, tv, tw = rest
        return TurbulenceProfile(
            su,
            sv,
            sw,
            jnp.maximum(tu, self.min_tau_horizontal),
            jnp.maximum(tv, self.min_tau_horizontal),
            jnp.maximum(tw, self.min_tau_vertical),
            dsw2,
        )


# -- surface-layer scaling ------------------------------------------------------------


def psi_m(zeta: Float[Array, "..."]) -> Float[Array, "..."]:
    """Integrated stability function for momentum, ``zeta = z/L`` (traceable).

    Paulson (1970) with Dyer's (1974) ``gamma = 16`` for ``zeta < 0``:
    ``x = (1 - 16 zeta)^(1/4)``, ``psi_m = 2 ln((1+x)/2) + ln((1+x^2)/2) - 2 atan x +
    pi/2``; ``-5 zeta`` for ``zeta >= 0`` (Dyer 1974). The JAX twin of the NumPy
    :func:`plumax_core._met_profile.psi_m` used by the met readers (tested equal).
    """
    zeta = jnp.asarray(zeta)
    x = jnp.sqrt(jnp.sqrt(1.0 - 16.0 * jnp.minimum(zeta, 0.0)))
    unstable = (
        2.0 * jnp.log((1.0 + x) / 2.0)
        + jnp.log((1.0 + x * x) / 2.0)
        - 2.0 * jnp.arctan(x)
        + math.pi / 2.0
    )
    return jnp.where(zeta < 0.0, unstable, -5.0 * zeta)


def friction_velocity(speed, z0, L, reference_height: float = 10.0):
    """``u* = kappa U(z_r) / (ln(z_r/z0) - psi_m(z_r/L) + psi_m(z0/L))``, m/s.

    Monin-Obukhov similarity (Stull 1988, section 9.7) with :func:`psi_m`; ``speed`` is
    the wind speed (m/s) at ``reference_height`` ``z_r`` (m), ``z0`` the roughness
    length (m, < z_r), ``L`` the Obukhov length (m, ``+-inf`` neutral: the log law).
    The stable log-linear law is used as is beyond ``z_r/L = 1`` (no check at run time).
    """
    inv_L = 1.0 / L
    zr = reference_height
    den = jnp.log(zr / z0) - psi_m(zr * inv_L) + psi_m(z0 * inv_L)
    return VON_KARMAN * speed / den


def convective_velocity(ustar, h, L):
    """Deardorff's ``w* = u* (-h/(kappa L))^(1/3)`` for ``L < 0``, else 0 (m/s)."""
    x = -h / (VON_KARMAN * L)
    return ustar * jnp.cbrt(jnp.maximum(x, 0.0))
