r"""Advective face fluxes of the finite-volume transport solver (Tier III).

The advective flux through a face with normal wind ``u`` (m/s) is the upwind flux of
the two reconstructed face states (Godunov's flux for linear advection),

.. math::

   F_{i-1/2} = \max(u, 0)\, q^L_{i-1/2} + \min(u, 0)\, q^R_{i-1/2}
   \quad [\mathrm{kg\,m^{-2}\,s^{-1}}],

with ``q^L`` the value of cell ``i-1`` at its right face and ``q^R`` that of cell ``i`` at
its left face. The reconstructions (``scheme``):

* ``"upwind"``: piecewise constant, ``q^L = q_{i-1}``, ``q^R = q_i`` (donor cell).
* ``"limited"``: MUSCL piecewise linear (van Leer 1979, *J. Comput. Phys.* 32:101),
  ``q_i +- s_i / 2`` with the limited slope (per cell width) ``s_i = phi(a, b)`` of the
  backward and forward differences ``a = (q_i - q_{i-1}) w^-_i``, ``b = (q_{i+1} - q_i)
  w^+_i``. In x and y ``w = 1``; along z, with stretched levels, the differences are
  divided by the distance between centres and multiplied by the cell thickness,
  ``w^-_i = 2 dz_i / (dz_{i-1} + dz_i)``, ``w^+_i = 2 dz_i / (dz_i + dz_{i+1})``, so the
  reconstruction is exact for a linear profile on any level spacing (and is the
  uniform-grid formula when the levels are uniform). Limiters ``phi`` (Sweby 1984,
  *SIAM J. Numer. Anal.* 21:995, whose TVD region they all lie in):
  ``minmod``; ``van_leer`` (van Leer 1974, *J. Comput. Phys.* 14:361),
  ``2ab/(a+b)``; ``mc``, monotonized central (van Leer 1977, *J. Comput. Phys.* 23:276),
  ``minmod(2a, 2b, (a+b)/2)``; ``superbee`` (Roe 1985, *Lect. Appl. Math.* 22:163),
  ``maxmod(minmod(2a, b), minmod(a, 2b))``; each is 0 where ``ab <= 0``.
* ``"weno5"``: fifth-order WENO-JS reconstruction (Jiang & Shu 1996, *J. Comput. Phys.*
  126:202, eqs. 2.8-2.11 and 3.2-3.4) of the upwind-side face value from the five
  cells around the donor. Its ``epsilon`` is ``1e-6 q_ref^2`` with ``q_ref = max|q|`` over
  the field, i.e. Jiang & Shu's 1e-6 for a field scaled to a unit maximum, so the
  weights do not depend on the unit of ``q`` (the smoothness indicators are divided by
  ``q_ref^2``; an all-zero field gets the linear weights). WENO5 assumes uniform cells,
  so it is used in x and y only; the vertical flux of the ``"weno5"`` scheme is the
  ``"limited"`` one (with the same limiter) on the stretched levels.

Ghost cells by boundary kind (:mod:`plumax_transport._fv_boundary`): periodic wrap;
open and closed: zero gradient (the edge value repeated). Then the end faces are set:
periodic, the high end repeats the low end's flux (``u[..., 0]`` is the wind of both);
closed, 0; open, ``u_n * background`` where the wind enters and the flux above
(reconstruction from inside) where it leaves.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._fv_boundary import Boundaries
from ._fv_grid import FVGrid

SCHEMES = ("upwind", "limited", "weno5")
LIMITERS = ("minmod", "van_leer", "mc", "superbee")

#: Ghost cells on each side (WENO5 reads two cells beyond the donor's neighbour).
N_GHOST = 3
#: Jiang & Shu's (1996) epsilon, relative to ``max|q|^2``.
WENO_EPS = 1e-6


class FaceWinds(eqx.Module):
    """Winds normal to the cell faces, m/s (an Arakawa C-grid staggering).

    Attributes:
        u: x-wind on the x-faces, shape ``(nz, ny, nx + 1)``; with periodic x,
            ``u[..., 0]`` is used for both end faces.
        v: y-wind on the y-faces, shape ``(nz, ny + 1, nx)`` (periodic y likewise).
        w: vertical wind on the z-faces (level edges), shape ``(nz + 1, ny, nx)``, or
            ``None`` for no vertical wind.
    """

    u: Float[Array, "nz ny nx1"]
    v: Float[Array, "nz ny1 nx"]
    w: Float[Array, "nz1 ny nx"] | None = None

    def check(self, grid: FVGrid) -> None:
        """``ValueError`` unless the shapes match ``grid`` (static check)."""
        nz, ny, nx = grid.shape
        want = {"u": (nz, ny, nx + 1), "v": (nz, ny + 1, nx), "w": (nz + 1, ny, nx)}
        for name, shape in want.items():
            val = getattr(self, name)
            if val is None and name == "w":
                continue
            if jnp.shape(val) != shape:
                raise ValueError(
                    f"`winds.{name}` must have shape {shape} for this grid, got {jnp.shape(val)}"
                )


# ---------------------------------------------------------------- limiters


def _limit(a: Array, b: Array, limiter: str) -> Array:
    """Limited slope ``phi(a, b)`` of the backward/forward differences (0 where ab <= 0)."""
    same = a * b > 0
    sa = jnp.sign(a)
    aa, ab = jnp.abs(a), jnp.abs(b)
    if limiter == "minmod":
        s = sa * jnp.minimum(aa, ab)
    elif limiter == "van_leer":
        s = 2.0 * a * b / jnp.where(same, a + b, 1.0)
    elif limiter == "mc":
        s = sa * jnp.minimum(jnp.minimum(2.0 * aa, 2.0 * ab), 0.5 * jnp.abs(a + b))
    elif limiter == "superbee":
        s = sa * jnp.maximum(jnp.minimum(2.0 * aa, ab), jnp.minimum(aa, 2.0 * ab))
    else:
        raise ValueError(f"`limiter` must be one of {LIMITERS}, got {limiter!r}")
    return jnp.where(same, s, 0.0)


def _weno5(v0, v1, v2, v3, v4, scale):
    """WENO-JS value at the face between ``v2`` and ``v3`` (donor ``v2``; Jiang & Shu 1996)."""
    p0 = (2.0 * v0 - 7.0 * v1 + 11.0 * v2) / 6.0
    p1 = (-v1 + 5.0 * v2 + 2.0 * v3) / 6.0
    p2 = (2.0 * v2 + 5.0 * v3 - v4) / 6.0
    b0 = 13.0 / 12.0 * (v0 - 2.0 * v1 + v2) ** 2 + 0.25 * (v0 - 4.0 * v1 + 3.0 * v2) ** 2
    b1 = 13.0 / 12.0 * (v1 - 2.0 * v2 + v3) ** 2 + 0.25 * (v1 - v3) ** 2
    b2 = 13.0 / 12.0 * (v2 - 2.0 * v3 + v4) ** 2 + 0.25 * (3.0 * v2 - 4.0 * v3 + v4) ** 2
    a0 = 0.1 / (WENO_EPS + b0 * scale) ** 2
    a1 = 0.6 / (WENO_EPS + b1 * scale) ** 2
    a2 = 0.3 / (WENO_EPS + b2 * scale) ** 2
    return (a0 * p0 + a1 * p1 + a2 * p2) / (a0 + a1 + a2)


# ---------------------------------------------------------------- one axis


def _cut(x: Array, start: int, stop: int, axis: int) -> Array:
    return jax.lax.slice_in_dim(x, start, stop, axis=axis)


def pad_axis(x: Array, g: int, periodic: bool, axis: int = -1) -> Array:
    """``x`` with ``g`` ghost cells on each end of ``axis`` (wrap or edge copy)."""
    widths = [(0, 0)] * x.ndim
    widths[axis] = (g, g)
    return jnp.pad(x, widths, mode="wrap" if periodic else "edge")


def _states(
    q: Array, periodic: bool, scheme: str, limiter: str, dz: Array | None, axis: int
) -> tuple[Array, Array, Array, Array]:
    """``(q^L, q^R, donor^L, donor^R)`` at the ``n + 1`` faces along ``axis``: the
    scheme's face states and the donor-cell ones, from one padded copy of ``q``."""
    axis = axis % q.ndim
    g, n = N_GHOST, q.shape[axis]
    qp = pad_axis(q, g, periodic, axis)
    donor_l, donor_r = _cut(qp, g - 1, g + n, axis), _cut(qp, g, g + n + 1, axis)
    if scheme == "upwind":
        return donor_l, donor_r, donor_l, donor_r
    # reconstructions of cells -1 .. n (n + 2 of them)
    sl = [_cut(qp, g - 1 + k, g + n + 1 + k, axis) for k in (-2, -1, 0, 1, 2)]
    if scheme == "limited":
        a, b = sl[2] - sl[1], sl[3] - sl[2]
        if dz is not None:
            dzp = pad_axis(dz, g, periodic)
            d_c, d_m, d_p = (dzp[g - 1 + k : g + n + 1 + k] for k in (0, -1, 1))
            along = (-1,) + (1,) * (q.ndim - 1 - axis)
            a = a * (2.0 * d_c / (d_m + d_c)).reshape(along)
            b = b * (2.0 * d_c / (d_c + d_p)).reshape(along)
        s = _limit(a, b, limiter)
        right, left = sl[2] + 0.5 * s, sl[2] - 0.5 * s
    elif scheme == "weno5":
        qmax = jnp.max(jnp.abs(q))  # = max|qp|: the ghosts are copies
        scale = 1.0 / (qmax * qmax + jnp.finfo(qp.dtype).tiny)
        right = _weno5(*sl, scale)
        left = _weno5(*sl[::-1], scale)
    else:
        raise ValueError(f"`scheme` must be one of {SCHEMES}, got {scheme!r}")
    return _cut(right, 0, n + 1, axis), _cut(left, 1, n + 2, axis), donor_l, donor_r


def face_states(
    q: Array,
    periodic: bool,
    scheme: str,
    limiter: str,
    dz: Array | None = None,
    axis: int = -1,
) -> tuple[Array, Array]:
    """Left and right states ``(q^L, q^R)`` at the ``n + 1`` faces of ``axis`` of ``q``.

    ``dz`` (the cell widths along the axis, shape ``(n,)``) switches the limited scheme to
    its stretched-level form (see the module docstring); ``None`` means uniform cells.
    """
    return _states(q, periodic, scheme, limiter, dz, axis)[:2]


def axis_flux(
    q: Array,
    vel: Array,
    kinds: tuple[str, str],
    background: float,
    scheme: str,
    limiter: str,
    dz: Array | None = None,
    axis: int = -1,
    with_donor: bool = False,
):
    """Advective flux (kg m^-2 s^-1) at the ``n + 1`` faces along ``axis``.

    ``vel`` is the normal wind on those faces (m/s); ``kinds`` the boundary kinds of the
    low and high end. ``with_donor=True`` returns ``(donor-cell flux, flux)``, the
    donor-cell states taken from the same padded array.
    """
    axis = axis % q.ndim
    lo, hi = kinds
    periodic = lo == "periodic"
    n = q.shape[axis]
    if periodic:
        vel = jnp.concatenate([_cut(vel, 0, n, axis), _cut(vel, 0, 1, axis)], axis=axis)
    q_l, q_r, d_l, d_r = _states(q, periodic, scheme, limiter, dz, axis)
    vp, vm = jnp.maximum(vel, 0.0), jnp.minimum(vel, 0.0)
    bg = jnp.asarray(background, q.dtype)

    def finish(flux):
        # end faces (built by concatenation rather than scatters)
        if periodic:
            return jnp.concatenate([_cut(flux, 0, n, axis), _cut(flux, 0, 1, axis)], axis=axis)
        ends = []
        for face, kind in ((0, lo), (n, hi)):
            f = _cut(flux, face, face + 1, axis)
            v = _cut(vel, face, face + 1, axis)
            if kind == "closed":
                ends.append(jnp.zeros_like(f))
            else:
                entering = v > 0 if face == 0 else v < 0
                ends.append(jnp.where(entering, v * bg, f))
        return jnp.concatenate([ends[0], _cut(flux, 1, n, axis), ends[1]], axis=axis)

    flux = finish(vp * q_l + vm * q_r)
    if not with_donor:
        return flux
    return finish(vp * d_l + vm * d_r), flux


def check_scheme(scheme: str, limiter: str) -> None:
    if scheme not in SCHEMES:
        raise ValueError(f"`scheme` must be one of {SCHEMES}, got {scheme!r}")
    if limiter not in LIMITERS:
        raise ValueError(f"`limiter` must be one of {LIMITERS}, got {limiter!r}")


def advective_fluxes(
    q: Float[Array, "nz ny nx"],
    winds: FaceWinds,
    grid: FVGrid,
    boundaries: Boundaries,
    *,
    scheme: str,
    limiter: str = "van_leer",
) -> tuple[Float[Array, "nz ny nx1"], Float[Array, "nz ny1 nx"], Float[Array, "nz1 ny nx"]]:
    """Advective face fluxes ``(Fx, Fy, Fz)``, kg m^-2 s^-1, positive along +x, +y, +z.

    Args:
        q: tracer density, kg/m^3, shape ``(nz, ny, nx)``.
        winds: face-normal winds (m/s), see :class:`FaceWinds`.
        grid: the grid.
        boundaries: boundary kind of each face.
        scheme: ``"upwind"``, ``"limited"`` or ``"weno5"`` (see the module docstring;
            the vertical flux of ``"weno5"`` uses ``"limited"``).
        limiter: slope limiter of the limited scheme (also the vertical of ``"weno5"``).

    Returns:
        Fluxes with the shapes of ``u``, ``v`` and ``(nz + 1, ny, nx)``.
    """
    check_scheme(scheme, limiter)
    q = jnp.asarray(q)
    if q.shape != grid.shape:
        raise ValueError(f"`q` must have the grid's shape {grid.shape}, got {q.shape}")
    winds.check(grid)
    dt = q.dtype
    fx = axis_flux(
        q, jnp.asarray(winds.u, dt), boundaries.axis(2), boundaries.background, scheme, limiter
    )
    fy = axis_flux(
        q,
        jnp.asarray(winds.v, dt),
        boundaries.axis(1),
        boundaries.background,
        scheme,
        limiter,
        axis=1,
    )
    if winds.w is None:
        fz = jnp.zeros((grid.nz + 1, grid.ny, grid.nx), dt)
    else:
        zscheme = "limited" if scheme == "weno5" else scheme
        fz = axis_flux(
            q,
            jnp.asarray(winds.w, dt),
            boundaries.axis(0),
            boundaries.background,
            zscheme,
            limiter,
            dz=grid.dz.astype(dt),
            axis=0,
        )
    return fx, fy, fz
