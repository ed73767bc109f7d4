r"""Eddy diffusivities for the finite-volume transport solver (Tier III).

A diffusivity gives the horizontal ``K_h`` at the cell centres and the vertical ``K_z`` at
the level edges (m^2/s), from the boundary-layer scales: friction velocity ``u*``
(m/s), Obukhov length ``L`` (m, ``+-inf`` neutral) and boundary-layer height ``h`` (m),
each a scalar or a ``(ny, nx)`` field.

:class:`MoninObukhovK` is the eddy-diffusivity profile of the nonlocal scheme of
Holtslag & Boville (1993, *J. Climate* 6:1825; "HB93"; after Troen & Mahrt 1986,
*Bound.-Layer Meteor.* 37:129) for a scalar, without its nonlocal parts. HB93 eq. (3.9):

.. math::

   K_z(z) = \kappa\, w_t\, z \left(1 - \frac{z}{h}\right)^2 \quad (0 \le z < h),
   \qquad K_z = K_{min}\quad (z \ge h),

floored at ``K_min`` everywhere, ``kappa = 0.4``. The velocity scale ``w_t``:

* stable and neutral (``L > 0`` or ``+-inf``), all ``z < h``: ``w_t = u* / phi_h(z/L)``
  (HB93 eq. A1) with ``phi_h = 1 + 5 zeta`` for ``0 <= zeta <= 1`` (eq. A3) and
  ``phi_h = 5 + zeta`` for ``zeta > 1`` (eq. A5), continuous at ``zeta = 1``;
* unstable (``L < 0``), surface layer ``z <= eps h`` (``eps = 0.1``): ``w_t = u* /
  phi_h(z/L)`` (eq. A1) with ``phi_h = (1 - 15 zeta)^{-1/2}`` (eq. A6);
* unstable, above the surface layer (``eps h < z < h``): HB93's ``w_t = w_m / Pr``
  (eq. A10) with ``w_m = u* / phi_m(eps h / L)`` (the ``(u*^3 + c_1 w*^3)^{1/3}``
  of eq. A11, ``c_1 = 15 kappa eps = 0.6``, written with ``w*^3 = -u*^3 h / (kappa L)``)
  and ``Pr = phi_h / phi_m`` at ``eps h / L`` (eq. A13) **without** its nonlocal term
  ``a kappa eps w* / w_m``; that is ``w_t = u* / phi_h(eps h / L)``, the surface-layer
  scale at the top of the surface layer, so ``K`` is continuous at ``z = eps h``.

**Omitted:** the counter-gradient term ``gamma_c`` (HB93 eq. 3.10), which needs the
tracer's surface flux, and with it the ``a kappa eps w*/w_m`` part of ``Pr``: the
solver's vertical flux is purely local, ``-K_z d(q/rho)/dz``. So in convective
conditions ``K`` above the surface layer is larger than HB93's (their ``Pr`` has the
extra positive term), and the mixing their counter-gradient flux adds is missing. The
equation numbers are those of HB93's section 3 and appendix A. ``K_h`` is the constant
``kh``.
"""

from __future__ import annotations

import abc
import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._turbulence import VON_KARMAN


def _check_nonneg(name: str, value) -> None:
    try:
        v = float(value)
    except (TypeError, ValueError):  # a traced value is checked by the caller's policy
        return
    if not (math.isfinite(v) and v >= 0):
        raise ValueError(f"`{name}` must be finite and >= 0 m^2/s, got {value!r}")


def _column(field, dtype) -> Array:
    """A scalar or ``(ny, nx)`` field as an array broadcastable against ``(n, ny, nx)``."""
    a = jnp.asarray(field, dtype)
    if a.ndim not in (0, 2):
        raise ValueError(f"boundary-layer scales must be scalars or (ny, nx) fields, got {a.shape}")
    return a


class AbstractDiffusivity(eqx.Module):
    """An eddy-diffusivity model.

    Contract: ``horizontal`` returns ``K_h >= 0`` (m^2/s) broadcastable to ``(nz, ny,
    nx)``; ``vertical`` returns ``K_z >= 0`` (m^2/s) on the level edges, broadcastable
    to ``(nz + 1, ny, nx)``. Both are jit/vmap/grad-able in their inputs.
    """

    @abc.abstractmethod
    def horizontal(self, z: Float[Array, " nz"], ustar, L, h) -> Array:
        """``K_h`` at the level centres ``z`` (m), broadcastable to ``(nz, ny, nx)``."""

    @abc.abstractmethod
    def vertical(self, z_edges: Float[Array, " nz1"], ustar, L, h) -> Array:
        """``K_z`` at the level edges ``z_edges`` (m), broadcastable to ``(nz + 1, ny, nx)``."""


class ConstantK(AbstractDiffusivity):
    """Constant diffusivities ``kh`` (horizontal) and ``kz`` (vertical), m^2/s, >= 0."""

    kh: float
    kz: float

    def __check_init__(self):
        _check_nonneg("kh", self.kh)
        _check_nonneg("kz", self.kz)

    def horizontal(self, z, ustar=None, L=None, h=None) -> Array:
        z = jnp.asarray(z)
        return jnp.full((z.shape[0], 1, 1), self.kh, z.dtype)

    def vertical(self, z_edges, ustar=None, L=None, h=None) -> Array:
        z_edges = jnp.asarray(z_edges)
        return jnp.full((z_edges.shape[0], 1, 1), self.kz, z_edges.dtype)


#: Height of the surface layer as a fraction of the boundary-layer height (HB93's epsilon).
SURFACE_LAYER_FRACTION = 0.1


def holtslag_boville_phi_h(zeta: Array) -> Array:
    """HB93's ``phi_h(zeta)``: ``(1 - 15 zeta)^-1/2`` (zeta < 0), ``1 + 5 zeta`` (0 <= zeta
    <= 1), ``5 + zeta`` (zeta > 1) (Holtslag & Boville 1993, eqs. A3, A5, A6)."""
    unstable = zeta < 0
    zu = jnp.where(unstable, zeta, 0.0)
    zs = jnp.where(unstable, 0.0, zeta)
    stable = jnp.where(zs <= 1.0, 1.0 + 5.0 * zs, 5.0 + zs)
    return jnp.where(unstable, (1.0 - 15.0 * zu) ** -0.5, stable)


class MoninObukhovK(AbstractDiffusivity):
    """Holtslag-Boville (1993) ``K_z`` profile (local part, see the module docstring);
    constant ``K_h``.

    Attributes:
        kh: horizontal diffusivity, m^2/s (default 50).
        k_min: the floor of ``K_z`` everywhere and its value above ``h``, m^2/s
            (default 0.1, a free-tropospheric value).
    """

    kh: float = 50.0
    k_min: float = 0.1

    def __check_init__(self):
        _check_nonneg("kh", self.kh)
        _check_nonneg("k_min", self.k_min)

    def horizontal(self, z, ustar=None, L=None, h=None) -> Array:
        z = jnp.asarray(z)
        return jnp.full((z.shape[0], 1, 1), self.kh, z.dtype)

    def vertical(self, z_edges, ustar, L, h) -> Array:
        """``K_z`` (m^2/s) at ``z_edges`` (m), shape ``(nz + 1, 1 | ny, 1 | nx)``.

        ``ustar`` (m/s, >= 0), ``L`` (m, nonzero, ``+-inf`` neutral) and ``h`` (m, > 0):
        scalars or ``(ny, nx)``. Concrete invalid values raise ``ValueError``.
        """
        z = jnp.asarray(z_edges)
        dt = z.dtype
        us, ll, hh = _column(ustar, dt), _column(L, dt), _column(h, dt)
        for name, val, bad in (
            ("ustar", us, lambda a: ~(jnp.isfinite(a) & (a >= 0))),
            ("L", ll, lambda a: jnp.isnan(a) | (a == 0)),
            ("h", hh, lambda a: ~(jnp.isfinite(a) & (a > 0))),
        ):
            try:
                flag = bool(jnp.any(bad(val)))
            except Exception:  # traced: left to the caller's check policy
                continue
            if flag:
                raise ValueError(f"`{name}` is invalid for MoninObukhovK: {val!r}")
        zc = z[:, None, None]
        # unstable: above the surface layer the scale is the one at its top, eps h
        z_scale = jnp.where(ll < 0, jnp.minimum(zc, SURFACE_LAYER_FRACTION * hh), zc)
        w_t = us / holtslag_boville_phi_h(z_scale / ll)
        k_mo = VON_KARMAN * w_t * zc * (1.0 - zc / hh) ** 2
        k_min = jnp.asarray(self.k_min, dt)
        return jnp.where(zc < hh, jnp.maximum(k_mo, k_min), k_min)


# ---------------------------------------------------------------- diffusion operators


def horizontal_diffusive_flux(
    q: Array, k: Array, spacing: float, periodic: bool, axis: int = -1
) -> Array:
    """Diffusive flux ``-K dq/dx`` (kg m^-2 s^-1) at the ``n + 1`` faces along ``axis``.

    ``k`` (m^2/s) has the shape of ``q`` (centres); the face value is the mean of the two
    neighbouring centres. Closed and open ends carry no diffusive flux (zero gradient);
    periodic ends wrap, the high end repeating the low end's flux.
    """
    axis = axis % q.ndim
    n = q.shape[axis]
    mode = "wrap" if periodic else "edge"
    widths = [(0, 0)] * q.ndim
    widths[axis] = (1, 1)
    qp = jnp.pad(q, widths, mode=mode)
    kp = jnp.pad(k, widths, mode=mode)
    cut = lambda x, a, b: jax.lax.slice_in_dim(x, a, b, axis=axis)
    flux = -0.5 * (cut(kp, 0, n + 1) + cut(kp, 1, n + 2)) * (cut(qp, 1, n + 2) - cut(qp, 0, n + 1))
    flux = flux / spacing
    if periodic:
        return jnp.concatenate([cut(flux, 0, n), cut(flux, 0, 1)], axis=axis)
    zero = jnp.zeros_like(cut(flux, 0, 1))
    return jnp.concatenate([zero, cut(flux, 1, n), zero], axis=axis)


def implicit_vertical_diffusion(
    q: Float[Array, "nz ny nx"],
    kz: Float[Array, "nz1 ny nx"],
    dz: Float[Array, " nz"],
    dt,
    air_density: Float[Array, " nz"] | None = None,
) -> Float[Array, "nz ny nx"]:
    r"""One backward-Euler step of vertical diffusion, a tridiagonal solve per column.

    Solves, for the mixing ratio ``r = q / rho`` (``rho = 1`` when ``air_density`` is
    ``None``),

    .. math::

       \rho_k \Delta z_k r^{n+1}_k + \Delta t\,[D_{k+1/2}(r_k - r_{k+1})
         + D_{k-1/2}(r_k - r_{k-1})]^{n+1} = \Delta z_k q^n_k ,
       \qquad D_{k+1/2} = \frac{\bar\rho_{k+1/2} K_{k+1/2}}{z_{k+1} - z_k},

    i.e. the flux ``-rho_e K_z d(q/rho)/dz`` at the interior edges (``rho_e`` the mean of
    the neighbouring levels, ``z_k`` the level centres), and no flux through the bottom
    and top edges (closed, or open with zero gradient). The matrix (rows multiplied by
    ``dz_k``) is symmetric and diagonally dominant with non-positive off-diagonals (an
    M-matrix), so the step conserves ``sum(q dz)`` and keeps ``q >= 0`` for any ``dt``
    (the elimination without pivoting adds only non-negative terms). Solved with
    :func:`jax.lax.linalg.tridiagonal_solve`, batched over the ``(ny, nx)`` columns.
    """
    nz = q.shape[0]
    dtype = q.dtype
    if nz == 1:
        return q
    rho = jnp.ones((nz,), dtype) if air_density is None else jnp.asarray(air_density, dtype)
    dzc = 0.5 * (dz[1:] + dz[:-1])  # distance between neighbouring centres, (nz - 1,)
    rho_e = 0.5 * (rho[1:] + rho[:-1])
    kin = jnp.broadcast_to(kz, (nz + 1,) + q.shape[1:])[1:-1]  # interior edges
    d_e = dt * (rho_e / dzc)[:, None, None] * kin  # (nz - 1, ny, nx)
    zero = jnp.zeros((1,) + q.shape[1:], dtype)
    lower = jnp.concatenate([zero, -d_e], axis=0)  # A[k, k-1]
    upper = jnp.concatenate([-d_e, zero], axis=0)  # A[k, k+1]
    diag = (
        (rho * dz)[:, None, None]
        + jnp.concatenate([zero, d_e], 0)
        + jnp.concatenate([d_e, zero], 0)
    )
    rhs = q * dz[:, None, None]
    to_cols = lambda a: jnp.moveaxis(a, 0, -1)
    r = jax.lax.linalg.tridiagonal_solve(
        to_cols(lower), to_cols(diag), to_cols(upper), to_cols(rhs)[..., None]
    )[..., 0]
    return jnp.moveaxis(r, -1, 0) * rho[:, None, None]
