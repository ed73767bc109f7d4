r"""Time stepping of the finite-volume advection-diffusion solver (Tier III).

The tracer density ``q`` (kg/m^3) obeys, in flux form,

.. math::

   \partial_t q = -\nabla\cdot F_{adv} - \nabla\cdot F_{diff} + S ,

discretised as ``dq_i/dt = -(F_{i+1/2} - F_{i-1/2})/dx - (...)/dy - (...)/dz_k + S_i``
(LeVeque 2002, *Finite Volume Methods for Hyperbolic Problems*, eq. 4.4), so the mass
``sum(q dx dy dz)`` changes only through the open faces and the source.

**Splitting (Lie, per substep).** Each substep of ``dt_s = dt / n_substeps`` is (1) an
explicit step of advection (:mod:`._fv_advection`) + horizontal diffusion (fluxes
``-K_h dq/dx``, ``-K_h dq/dy``) + source, then (2) a backward-Euler step of vertical
diffusion (:func:`._fv_diffusion.implicit_vertical_diffusion`). Lie rather than Strang
splitting: the implicit part is backward Euler, first order in time anyway, so Strang's
second half solve would double the cost without raising the order; both parts conserve
mass and keep ``q >= 0``, and so does their composition.

**Explicit part.** ``"upwind"``: one forward-Euler step. ``"limited"`` and ``"weno5"``:
the three-stage SSP-RK3 of Shu & Osher (1988, *J. Comput. Phys.* 77:439, eq. 2.18),
``q1 = q + dt L(q)``, ``q2 = 3/4 q + 1/4 (q1 + dt L(q1))``, ``q3 = 1/3 q + 2/3 (q2 +
dt L(q2))``, each stage a forward-Euler step, so positivity of the stages carries to the
step (convex combinations).

**Positivity limiter** (limited and weno5, every stage). The face flux is the blend
``F = F_L + theta (F_H - F_L)`` of the donor-cell flux ``F_L`` (upwind advection +
diffusion) and the high-order flux ``F_H`` (same diffusion), in the spirit of Zalesak
(1979, *J. Comput. Phys.* 31:335) FCT and of Hu, Adams & Shu (2013, *J. Comput. Phys.*
242:169). With ``o_f`` the outward flux through face ``f`` of cell ``i`` times ``dt`` and
over the cell's width (kg/m^3), ``max(o_f(theta), 0) <= max(o_{L,f}, 0) + theta
max(o_{H,f} - o_{L,f}, 0)``; so with ``A_i = sum_f max(o_{L,f}, 0)``, ``P_i = sum_f
max(o_{H,f} - o_{L,f}, 0)`` and

.. math::

   \theta_i = \min\!\left(1, \max\!\left(0, \frac{(1 - \delta) q_i - A_i}{P_i}\right)\right),
   \qquad \theta_f = \min(\theta_{\rm left}, \theta_{\rm right}),

each cell loses at most ``(1 - delta) q_i`` and gains only non-negative inflow, so
``q >= 0`` after the stage (``delta = 64 eps`` of the dtype absorbs the rounding of the
update). It needs ``A_i <= (1 - delta) q_i``, which holds when the donor-cell step's
outflow Courant sum ``dt (sum of outgoing |u_n|/dx + 2K/dx^2 ...) <= 1 - delta``; that
is what :func:`stable_time_step` bounds. Where no cell would go negative, ``theta = 1``
and the high-order flux is untouched; it acts only at (near-)zero minima, where the
scheme falls back towards first order locally.

**Budget.** ``outflow`` is ``dt_s`` times the net outward flux through the open faces
times the face areas, summed over substeps with the RK weights (1/6, 1/6, 2/3), so
``mass(q_new) = mass(q) + dt sum(S V) - outflow`` to round-off.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ._common import is_concrete
from ._fv_advection import FaceWinds, axis_flux, check_scheme
from ._fv_boundary import Boundaries
from ._fv_diffusion import horizontal_diffusive_flux, implicit_vertical_diffusion
from ._fv_grid import FVGrid

#: Courant-sum bound of the forward-Euler donor-cell + diffusion step (positivity).
UPWIND_COURANT = 1.0
#: Safety factor of the limited and WENO5 stages. On uniform cells (x, y, uniform
#: levels) the MUSCL flux with a TVD limiter (slope up to twice the one-sided
#: difference) is TVD in a forward-Euler stage for a Courant number <= 1/2 (Sweby 1984;
#: LeVeque 2002, sec. 6.12); SSP-RK3's SSP coefficient is 1, so the step keeps that
#: bound (tested on a square wave, where it is sufficient but not sharp). On stretched
#: levels the slope weights ``2 dz_i / (dz_{i-1} + dz_i)`` reach 2, so an MC or superbee
#: slope can reach ~4 one-sided differences and this argument gives no TVD guarantee
#: for the vertical flux at any Courant number. WENO5 (not TVD) uses the same factor
#: heuristically. What holds at this step in every case is positivity: the blend of
#: :meth:`_Setup.positive_fluxes` needs only the donor-cell bound (``C = 1``).
HIGH_ORDER_FACTOR = 0.5
#: Relative margin of the positivity limiter, in units of the dtype's epsilon.
POSITIVITY_MARGIN_EPS = 64


def _courant_factor(scheme: str) -> float:
    return UPWIND_COURANT if scheme == "upwind" else UPWIND_COURANT * HIGH_ORDER_FACTOR


def _outgoing(vel: Array, axis: int) -> Array:
    """Sum of outgoing face speeds of each cell along ``axis`` (faces n + 1 -> cells n).

    For the end cells the wind of both end faces is counted (the high end face of a
    periodic axis uses ``u[..., 0]``), which is conservative for every boundary kind.
    """
    vel = jnp.moveaxis(vel, axis, -1)
    lo, hi = vel[..., :-1], vel[..., 1:]
    out_lo = jnp.maximum(-lo, 0.0)
    out_hi = jnp.maximum(hi, 0.0)
    out_lo = out_lo.at[..., 0].set(jnp.maximum(out_lo[..., 0], -vel[..., -1]))
    out_hi = out_hi.at[..., -1].set(jnp.maximum(out_hi[..., -1], vel[..., 0]))
    return jnp.moveaxis(out_lo + out_hi, -1, axis)


def _face_min(theta: Array, axis: int, periodic: bool) -> Array:
    """``min`` of the two cells beside each face along ``axis`` (n cells -> n + 1 faces).

    End faces: the wrapped neighbour (periodic) or the inside cell alone.
    """
    n = theta.shape[axis]
    first = jax.lax.slice_in_dim(theta, 0, 1, axis=axis)
    last = jax.lax.slice_in_dim(theta, n - 1, n, axis=axis)
    below = jnp.concatenate([last if periodic else first, theta], axis=axis)
    above = jnp.concatenate([theta, first if periodic else last], axis=axis)
    return jnp.minimum(below, above)


def _k_local_max(k: Array, axis: int) -> Array:
    """``max`` of ``k`` over each cell and its two neighbours along ``axis`` (wrapping)."""
    return jnp.maximum(k, jnp.maximum(jnp.roll(k, 1, axis), jnp.roll(k, -1, axis)))


def _checked(name: str, x, *, positive: bool, unit: str):
    """``x`` as an array, checked finite and ``>= 0`` (or ``> 0``): a concrete violation
    raises ``ValueError`` naming ``name``; a traced one makes the value NaN (so the
    result is NaN, never a silently wrong number).

    Not an ``error_if`` when traced: a dense Laplace covariance of a model calling
    :func:`advance`, materialised by ``as_matrix`` under ``jax.ensure_compile_time_eval``
    (plumax_core's covariance check), raised it on a valid ``kh`` = 50 m^2/s.
    """
    if x is None:
        return None
    a = jnp.asarray(x)
    primal = jax.lax.stop_gradient(a)
    bad = ~jnp.isfinite(primal) | ((primal <= 0) if positive else (primal < 0))
    if is_concrete(bad):
        if bool(np.any(np.asarray(bad))):
            rule = "> 0" if positive else ">= 0"
            raise ValueError(f"`{name}` must be finite and {rule} {unit}")
        return a
    return jnp.where(bad, jnp.nan, a)


def stable_time_step(grid: FVGrid, winds: FaceWinds, kh, *, scheme: str) -> Float[Array, ""]:
    r"""The largest stable, positivity-keeping explicit step (s), a jit-able 0-d array.

    .. math::

       \Delta t = C \Big/ \max_{cells}\Big(\frac{u_{out}}{\Delta x} + \frac{v_{out}}{\Delta y}
         + \frac{w_{out}}{\Delta z_k} + \frac{2 K_h^{loc}}{\Delta x^2}
         + \frac{2 K_h^{loc}}{\Delta y^2}\Big)

    where ``u_out`` is the sum of the *outgoing* face-normal speeds of the cell (its two
    x-faces; ``|u|`` for a uniform wind), ``K_h^{loc}`` the largest ``K_h`` of the cell
    and its neighbours (bounding the face means), ``C = 1`` for ``"upwind"`` (the
    forward-Euler donor-cell + diffusion step is then a convex combination, so positive)
    and ``C = 1/2`` for ``"limited"`` and ``"weno5"`` (``HIGH_ORDER_FACTOR``: the TVD
    bound of the limited scheme on uniform cells; on stretched levels it keeps ``q >=
    0`` but TVD is not guaranteed, see ``HIGH_ORDER_FACTOR``). The
    vertical diffusion is implicit and sets no limit. Returns ``inf`` for no wind and
    no ``K_h``.

    Args:
        grid: the grid.
        winds: face winds, m/s.
        kh: horizontal diffusivity at the centres, m^2/s, broadcastable to ``(nz, ny, nx)``.
        scheme: one of ``SCHEMES``.

    Raises:
        ValueError: ``kh`` is concrete and not finite and ``>= 0`` (traced: the
            result is NaN).
    """
    check_scheme(scheme, "van_leer")
    winds.check(grid)
    kh = _checked("kh", kh, positive=False, unit="m^2/s")
    u = jnp.asarray(winds.u)
    dtype = jnp.result_type(u.dtype, jnp.asarray(winds.v).dtype, jnp.asarray(kh).dtype)
    rate = _outgoing(jnp.asarray(u, dtype), 2) / grid.dx
    rate = rate + _outgoing(jnp.asarray(winds.v, dtype), 1) / grid.dy
    if winds.w is not None:
        dz = grid.dz.astype(dtype)[:, None, None]
        rate = rate + _outgoing(jnp.asarray(winds.w, dtype), 0) / dz
    k = jnp.broadcast_to(jnp.asarray(kh, dtype), grid.shape)
    rate = rate + 2.0 * _k_local_max(k, 2) / grid.dx**2 + 2.0 * _k_local_max(k, 1) / grid.dy**2
    return _courant_factor(scheme) / jnp.max(rate)


def n_substeps(dt, max_dt) -> int:
    """Number of substeps ``ceil(dt / max_dt)`` (at least 1) so each is ``<= max_dt`` (eager)."""
    dt_f, max_f = float(dt), float(max_dt)
    if not (math.isfinite(dt_f) and dt_f > 0):
        raise ValueError(f"`dt` must be finite and > 0 s, got {dt!r}")
    if not max_f > 0 or math.isnan(max_f):
        raise ValueError(f"`max_dt` must be > 0 s, got {max_dt!r}")
    if math.isinf(max_f):
        return 1
    return max(1, math.ceil(dt_f / max_f))


# ---------------------------------------------------------------- the explicit operator


class _Setup:
    """Static pieces of one :func:`advance` call (shapes, dtypes, the chosen schemes)."""

    def __init__(self, grid, winds, kh, source, boundaries, scheme, limiter, dtype):
        self.grid, self.bnd, self.scheme, self.limiter = grid, boundaries, scheme, limiter
        shape = grid.shape
        self.u = jnp.asarray(winds.u, dtype)
        self.v = jnp.asarray(winds.v, dtype)
        self.w = None if winds.w is None else jnp.asarray(winds.w, dtype)
        self.kh = jnp.broadcast_to(jnp.asarray(kh, dtype), shape)
        self.source = jnp.broadcast_to(jnp.asarray(source, dtype), shape)
        self.dz = grid.dz.astype(dtype)
        self.dtype = dtype
        dx, dy = grid.dx, grid.dy
        self.area = (
            (dy * self.dz)[:, None, None],  # x-faces
            (dx * self.dz)[:, None, None],  # y-faces
            jnp.asarray(dx * dy, dtype),  # z-faces
        )
        self.width = (dx, dy, self.dz[:, None, None])

    def _advective(self, q: Array, scheme: str, axis: int, with_donor: bool = False):
        b = self.bnd
        vel = (self.w, self.v, self.u)[axis]
        if axis == 0 and scheme == "weno5":
            scheme = "limited"  # WENO5 assumes uniform cells: the vertical is limited
        dz = self.dz if axis == 0 else None
        return axis_flux(
            q, vel, b.axis(axis), b.background, scheme, self.limiter, dz, axis, with_donor
        )

    def _diffusive(self, q: Array, axis: int) -> Array:
        spacing = self.grid.dx if axis == 2 else self.grid.dy
        periodic = self.bnd.axis(axis)[0] == "periodic"
        return horizontal_diffusive_flux(q, self.kh, spacing, periodic, axis)

    def _axes(self) -> tuple[int, ...]:
        """Array axes with a flux in the explicit part: x, y, and z if there is a ``w``."""
        return (2, 1) if self.w is None else (2, 1, 0)

    def fluxes(self, q: Array, scheme: str) -> list[Array | None]:
        """Advective + diffusive fluxes ``[Fx, Fy, Fz]`` (kg m^-2 s^-1); ``Fz`` is
        ``None`` (no flux) when there is no vertical wind."""
        out = [None, None, None]
        for axis in self._axes():
            f = self._advective(q, scheme, axis)
            out[2 - axis] = f if axis == 0 else f + self._diffusive(q, axis)
        return out

    def _outward(self, flux: Array, axis: int, dt) -> tuple[Array, Array]:
        """Positive parts of ``dt`` x outward ``flux`` / cell width, low and high face.

        Each is in kg/m^3 per cell; the positive part is taken here, flux by flux.
        """
        n = flux.shape[axis] - 1
        w = self.width[2 - axis]
        lo = jnp.maximum(-jax.lax.slice_in_dim(flux, 0, n, axis=axis), 0.0) * dt / w
        hi = jnp.maximum(jax.lax.slice_in_dim(flux, 1, n + 1, axis=axis), 0.0) * dt / w
        return lo, hi

    def positive_fluxes(self, q: Array, dt, positivity: bool) -> list[Array | None]:
        """High-order fluxes, blended with the donor-cell ones so the stage keeps q >= 0.

        The donor-cell flux ``F_L`` and the high-order advective flux come from one
        reconstruction per axis; the diffusive flux, the same in both, is computed once,
        so ``F_H - F_L`` is the difference of the advective fluxes.
        """
        if not positivity:
            return self.fluxes(q, self.scheme)
        low, dif = [None, None, None], [None, None, None]
        a = p = None
        for axis in self._axes():
            adv_l, adv_h = self._advective(q, self.scheme, axis, with_donor=True)
            fl = adv_l if axis == 0 else adv_l + self._diffusive(q, axis)
            dh = adv_h - adv_l
            low[2 - axis], dif[2 - axis] = fl, dh
            for part in self._outward(fl, axis, dt):
                a = part if a is None else a + part
            for part in self._outward(dh, axis, dt):
                p = part if p is None else p + part
        # An earlier form (positive parts of differences of scaled fluxes) was
        # miscompiled by XLA CPU fusion in jax 0.10 (jit differed from eager by 1e-2,
        # tested in test_jit_grad_and_adjoint_dot_product); the barrier keeps a and p
        # materialised so the blend below cannot be fused into their computation.
        a, p = jax.lax.optimization_barrier((a, p))
        delta = POSITIVITY_MARGIN_EPS * jnp.finfo(q.dtype).eps
        room = (1.0 - delta) * q - a
        has_p = p > 0
        theta = jnp.where(has_p, jnp.clip(room / jnp.where(has_p, p, 1.0), 0.0, 1.0), 1.0)
        out = [None, None, None]
        for axis in self._axes():
            periodic = self.bnd.axis(axis)[0] == "periodic"
            i = 2 - axis
            out[i] = low[i] + _face_min(theta, axis, periodic) * dif[i]
        return out

    def outflow_rate(self, fluxes: list[Array | None]) -> Array:
        """Net mass leaving through the open faces, kg/s (inflow negative)."""
        total = jnp.zeros((), self.dtype)
        for axis in self._axes():
            f, area = fluxes[2 - axis], self.area[2 - axis]
            lo, hi = self.bnd.axis(axis)
            n = f.shape[axis]
            if lo == "open":
                total = total - jnp.sum(jax.lax.slice_in_dim(f, 0, 1, axis=axis) * area)
            if hi == "open":
                total = total + jnp.sum(jax.lax.slice_in_dim(f, n - 1, n, axis=axis) * area)
        return total

    def tendency(self, fluxes: list[Array | None]) -> Array:
        """``-div F + S`` (kg m^-3 s^-1)."""
        fx, fy, fz = fluxes
        div = (fx[..., 1:] - fx[..., :-1]) / self.grid.dx
        div = div + (fy[:, 1:, :] - fy[:, :-1, :]) / self.grid.dy
        if fz is not None:
            div = div + (fz[1:] - fz[:-1]) / self.dz[:, None, None]
        return self.source - div

    def euler(self, q: Array, dt, positivity: bool) -> tuple[Array, Array]:
        """One forward-Euler stage: ``(q + dt L(q), dt * outflow rate)``."""
        if self.scheme == "upwind":
            fl = self.fluxes(q, "upwind")
        else:
            fl = self.positive_fluxes(q, dt, positivity)
        return q + dt * self.tendency(fl), dt * self.outflow_rate(fl)


def _check_inputs(q, grid, winds, n_sub, scheme, limiter, air_density):
    check_scheme(scheme, limiter)
    if q.shape != grid.shape:
        raise ValueError(f"`q` must have the grid's shape {grid.shape}, got {q.shape}")
    if not jnp.issubdtype(q.dtype, jnp.floating):
        raise ValueError(f"`q` must be a floating-point array, got {q.dtype}")
    winds.check(grid)
    if isinstance(n_sub, bool) or not isinstance(n_sub, int | np.integer) or n_sub < 1:
        raise ValueError(f"`n_substeps` must be a Python int >= 1, got {n_sub!r}")
    if air_density is not None and jnp.shape(air_density) != (grid.nz,):
        raise ValueError(
            f"`air_density` must be None or shape ({grid.nz},), got {jnp.shape(air_density)}"
        )


def advance_impl(
    q,
    *,
    grid,
    winds,
    kh,
    kz,
    source,
    dt,
    n_substeps: int,
    boundaries,
    scheme,
    limiter="van_leer",
    air_density=None,
    positivity: bool = True,
):
    """:func:`advance` with the positivity limiter switchable (``positivity=False`` is for
    tests showing that WENO5 goes negative without it)."""
    q = jnp.asarray(q)
    _check_inputs(q, grid, winds, n_substeps, scheme, limiter, air_density)
    kh = _checked("kh", kh, positive=False, unit="m^2/s")
    kz = _checked("kz", kz, positive=False, unit="m^2/s")
    air_density = _checked("air_density", air_density, positive=True, unit="kg/m^3")
    dtype = q.dtype
    arr = lambda a: None if a is None else jnp.asarray(a, dtype)
    winds = FaceWinds(u=arr(winds.u), v=arr(winds.v), w=arr(winds.w))
    return _advance_jit(
        q,
        grid,
        winds,
        arr(kh),
        arr(kz),
        arr(source),
        arr(dt),
        arr(air_density),
        n_substeps=n_substeps,
        boundaries=boundaries,
        scheme=scheme,
        limiter=limiter,
        positivity=positivity,
    )


@eqx.filter_jit
def _advance_jit(
    q,
    grid,
    winds,
    kh,
    kz,
    source,
    dt,
    rho,
    *,
    n_substeps,
    boundaries,
    scheme,
    limiter,
    positivity,
):
    """The jitted core of :func:`advance` (all array inputs; the rest static)."""
    dtype = q.dtype
    st = _Setup(grid, winds, kh, source, boundaries, scheme, limiter, dtype)
    kz_b = jnp.broadcast_to(kz, (grid.nz + 1,) + grid.shape[1:])
    h = dt / n_substeps

    # SSP-RK3 as q_{k+1} = a_k q + b_k (q_k + h L(q_k)), k = 0, 1, 2 (Shu & Osher 1988);
    # the stages run in a scan so their body is compiled once (unrolled, the compile of
    # a reverse-mode call took twice as long). The outflow is accumulated the same way,
    # which gives it the weights 1/6, 1/6, 2/3.
    rk_a = jnp.asarray([0.0, 0.75, 1.0 / 3.0], dtype)
    rk_b = jnp.asarray([1.0, 0.25, 2.0 / 3.0], dtype)

    def stage(carry, ab):
        q0, qk, ok = carry
        a, b = ab
        e, o = st.euler(qk, h, positivity)
        return (q0, a * q0 + b * e, b * (ok + o)), None

    def substep(carry, _):
        qc, out = carry
        if scheme == "upwind":
            qn, o = st.euler(qc, h, positivity)
        else:
            zero = jnp.zeros((), dtype)
            (_, qn, o), _ = jax.lax.scan(stage, (qc, qc, zero), (rk_a, rk_b))
        qn = implicit_vertical_diffusion(qn, kz_b, st.dz, h, rho)
        return (qn, out + o), None

    # Rematerialised substeps: reverse mode keeps each substep's input state (the scan
    # carry) and recomputes one substep's residuals at a time in the backward pass.
    substep = jax.checkpoint(substep, prevent_cse=False)
    (q_new, outflow), _ = jax.lax.scan(substep, (q, jnp.zeros((), dtype)), None, length=n_substeps)
    return q_new, outflow


def advance(
    q: Float[Array, "nz ny nx"],
    *,
    grid: FVGrid,
    winds: FaceWinds,
    kh,
    kz,
    source,
    dt,
    n_substeps: int,
    boundaries: Boundaries,
    scheme: str,
    limiter: str = "van_leer",
    air_density=None,
) -> tuple[Float[Array, "nz ny nx"], Float[Array, ""]]:
    """Advance the tracer density by ``dt`` seconds in ``n_substeps`` equal substeps.

    The substeps run in a :func:`jax.lax.scan` whose body is :func:`jax.checkpoint`-ed,
    so reverse mode keeps one state per substep and recomputes one substep's internals
    at a time. Measured (``temp_size_in_bytes`` of ``jit(grad(sum(q_new**2)))``, float64,
    8 x 16 x 16 cells, one state = 16 KiB, 2/4/8 substeps): ``"limited"`` 3.26/3.30/3.36
    MB (before the checkpoint 8.07/12.8/22.2 MB, i.e. 144 states per substep);
    ``"weno5"`` 8.27/8.30/8.37 MB (before 22.9/37.4/66.4 MB, 443 states per substep);
    ``"upwind"`` (linear: no per-substep residuals) 0.5 MB either way.

    Args:
        q: tracer density, kg/m^3, shape ``(nz, ny, nx)`` (float32 or float64).
        grid: the grid.
        winds: face-normal winds, m/s, constant over the step.
        kh: horizontal diffusivity at the centres, m^2/s (finite, >= 0), broadcastable
            to ``(nz, ny, nx)``.
        kz: vertical diffusivity at the level edges, m^2/s (finite, >= 0), broadcastable
            to ``(nz + 1, ny, nx)`` (edges 0 and nz carry no flux and are not used).
        source: kg m^-3 s^-1, broadcastable to ``(nz, ny, nx)``, constant over the step.
        dt: step, s (may be traced). Each substep ``dt / n_substeps`` should be at most
            :func:`stable_time_step`; this is not checked (a traced ``dt`` cannot be).
        n_substeps: number of substeps, a static Python int >= 1.
        boundaries: boundary kinds (:class:`Boundaries`).
        scheme: ``"upwind"``, ``"limited"`` or ``"weno5"``.
        limiter: slope limiter of the limited scheme (and of WENO5's vertical).
        air_density: ``None`` or the ``(nz,)`` air-density profile, kg/m^3 (finite,
            > 0); then the vertical diffusive flux is ``-rho_e K_z d(q/rho)/dz``.

    Returns:
        ``(q_new, outflow)``: the density after ``dt`` and the net mass (kg) that left
        through open faces (inflow negative), with ``grid.mass(q_new) = grid.mass(q) +
        dt * sum(source * cell_volume) - outflow`` to round-off.

    Raises:
        ValueError: a bad argument; ``kh``, ``kz`` (finite, >= 0) and ``air_density``
            (finite, > 0) are checked when concrete; a traced invalid value makes the
            result NaN (``_checked``: an ``error_if`` there misfired, see its docstring).
    """
    return advance_impl(
        q,
        grid=grid,
        winds=winds,
        kh=kh,
        kz=kz,
        source=source,
        dt=dt,
        n_substeps=n_substeps,
        boundaries=boundaries,
        scheme=scheme,
        limiter=limiter,
        air_density=air_density,
    )
