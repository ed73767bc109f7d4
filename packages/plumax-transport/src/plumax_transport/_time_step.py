r"""The time step of the Lagrangian particle engine (:func:`time_step`).

FLEXPART's rule (Stohl et al. 2005, *Atmos. Chem. Phys.* 5, 2461-2474, section 7):
``dt <= ctl^-1 tau_Lw`` with ``ctl = 5``, and two criteria that keep the vertical
step small against the vertical structure, ``0.5/|d sigma_w/dz|`` (the scale over which
``sigma_w`` changes) and ``h/(2 sigma_w)`` (FLEXPART uses ``h/(2|w'|)`` per particle);
plus here the advective (Courant) limit ``dx/|U|`` over a cell. Only the *vertical*
Lagrangian time scale limits the step:

* the horizontal turbulence is homogeneous and its Ornstein-Uhlenbeck update is exact
  for any ``dt`` (:mod:`plumax_transport._particle_step`): a long step relative to
  ``tau_u`` or ``tau_v`` does not bias the velocities. What it does change is the
  integration of the position with ``u'`` held over the step, which multiplies the
  long-time horizontal diffusivity by ``(x/2) coth(x/2) = 1 + x^2/12 + ...``, ``x =
  dt/tau_u``. With :class:`~plumax_transport.HannaTurbulence` and the default safety
  ``dt <= 0.2 x 30 s = 6 s`` against ``tau_u >= 10 s``: ``x <= 0.6``, at most +3 % in
  the diffusivity (+1.5 % in ``sigma_y``), and only where ``tau_u`` sits at its floor;
* the vertical update is only first order in ``dt`` (the drift correction is frozen
  over the step, ``sigma_w`` and ``tau_w`` vary with height), and a step long against
  ``tau_w`` lets the ``w'^2`` drift term run away; hence ``tau_w`` and the two
  vertical criteria.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from plumax_core import MetField

from ._common import is_concrete
from ._particle_met import MetAtParticles, default_dtype, max_wind_speed
from ._turbulence import AbstractTurbulence, check_turbulence


@eqx.filter_jit
def _column_scales(fields: MetAtParticles, turbulence, tau, X, Y, frac):
    bl = fields.boundary_layer(tau, X, Y)
    h, ustar, wstar, L = (jnp.broadcast_to(a, X.shape)[:, None] for a in bl)
    prof = turbulence(h * frac, h, ustar, wstar, L)
    sw = prof.sigma_w
    safe = jnp.where(sw > 0, sw, 1.0)
    grad = jnp.where(sw > 0, jnp.abs(prof.dsigma_w2_dz) / (2.0 * safe), 0.0)
    return jnp.min(prof.tau_w), jnp.max(grad), jnp.max(sw), jnp.min(h)


def _turbulence_scales(met, fields: MetAtParticles, turbulence, n_heights: int):
    """``(min tau_w, max |d sigma_w/dz|, max sigma_w, min h)`` over the met's nodes."""
    dtype = default_dtype()
    times = np.asarray(met.time if fields.time_varying else met.time[:1], np.float64)
    xs = np.asarray(met.x, np.float64) if met.x is not None else np.zeros(1)
    ys = np.asarray(met.y, np.float64) if met.y is not None else np.zeros(1)
    Y, X = (jnp.asarray(a.ravel(), dtype) for a in np.meshgrid(ys, xs, indexing="ij"))
    frac = np.concatenate([[0.0], np.geomspace(1e-4, 1.0, n_heights - 1)])
    frac = jnp.asarray(frac, dtype)[None, :]
    out = []
    for t in times:
        scales = _column_scales(fields, turbulence, fields.surface.offset(t, dtype), X, Y, frac)
        out.append(tuple(float(v) for v in scales))
    return (
        min(o[0] for o in out),
        max(o[1] for o in out),
        max(o[2] for o in out),
        min(o[3] for o in out),
    )


def time_step(
    met: MetField,
    turbulence: AbstractTurbulence,
    *,
    dt: float | None = None,
    dx: float | None = None,
    safety: float = 0.2,
    reference_height: float = 10.0,
    n_heights: int = 64,
) -> float:
    """Choose a time step (s), or check a given one, for
    :func:`~plumax_transport.run_particles`.

    The limit is ``safety x min(tau_w,min, 0.5 / max|d sigma_w/dz|, h_min / (2
    sigma_w,max), dx / |U|_max)``: the vertical Lagrangian time scale, the vertical
    scale of ``sigma_w`` and the boundary-layer depth crossed in one step (FLEXPART's
    criteria, Stohl et al. 2005, section 7, with ``safety = 1/ctl``), and the advective
    (Courant) limit over a cell ``dx``. The horizontal time scales ``tau_u``, ``tau_v``
    do not limit it (module docstring: their update is exact for any ``dt``; the
    position's error is ``(x/2) coth(x/2) - 1`` in the horizontal diffusivity, ``x =
    dt/tau_u``). ``tau_w``, ``sigma_w`` and its gradient are evaluated at every met node
    (every time, ``y`` and ``x`` of the grid) at ``n_heights`` heights from 0 to ``h``;
    ``|U|_max`` is the largest mean wind speed on the grid (where a multilinear wind's
    speed is largest). ``dx`` defaults to the met's smallest horizontal spacing (no
    advective limit for a met without ``x``/``y``).

    For :class:`~plumax_transport.HannaTurbulence` (``h`` = 1000 m, 4 m/s at 10 m,
    ``z0`` = 0.1 m) the limit is 6 s for ``L`` = -50 m, neutral and ``L`` = +100 m
    (0.2 x the 30 s floor on ``tau_w``), and 2.2 s for ``L`` = -10 m (the ``sigma_w``
    gradient near the ground). 6 s is the most it gives wherever ``tau_w`` reaches that
    floor near the ground, as in all four cases.

    Args:
        met, turbulence: as for :func:`~plumax_transport.run_particles` (concrete
            values).
        dt: a step to check, s; None to return the limit.
        dx: length of the cell the step must not cross, m (e.g. an output grid
            spacing).
        safety: fraction of the limiting scale, in ``(0, 1]`` (default 0.2, FLEXPART's
            ``ctl = 5``).
        reference_height: as for :func:`~plumax_transport.boundary_layer`.
        n_heights: heights per column at which the profile is evaluated.

    Returns:
        ``dt`` if given and within the limit, else the limit.

    Raises:
        ValueError: naming ``dt`` and the limit when ``dt`` exceeds it; a bad
            ``safety``, ``dx``, ``dt`` or ``n_heights``; a traced ``met``.
    """
    if not (isinstance(safety, int | float) and 0 < safety <= 1):
        raise ValueError(f"`safety` must be in (0, 1], got {safety!r}")
    if dx is not None and not (math.isfinite(float(dx)) and float(dx) > 0):
        raise ValueError(f"`dx` must be finite and > 0 m, got {dx!r}")
    if dt is not None and not (math.isfinite(float(dt)) and float(dt) > 0):
        raise ValueError(f"`dt` must be finite and > 0 s, got {dt!r}")
    if isinstance(n_heights, bool) or not isinstance(n_heights, int) or n_heights < 2:
        raise ValueError(f"`n_heights` must be an int >= 2, got {n_heights!r}")
    check_turbulence(turbulence)
    if not is_concrete(met):
        raise ValueError("time_step needs a concrete `met` (call it outside jax.jit)")
    fields = MetAtParticles(met, reference_height, default_dtype())
    tau_w, gmax, swmax, hmin = _turbulence_scales(met, fields, turbulence, n_heights)
    limits = {"tau_Lw": tau_w}
    if gmax > 0:
        limits["0.5/|d sigma_w/dz|"] = 0.5 / gmax
    if swmax > 0:
        limits["h/(2 sigma_w)"] = hmin / (2.0 * swmax)
    if dx is None:
        spacings = [
            float(np.min(np.diff(np.asarray(c, np.float64))))
            for c in (met.x, met.y)
            if c is not None and c.shape[0] > 1
        ]
        dx = min(spacings) if spacings else None
    if dx is not None:
        speed = max_wind_speed(met)
        if speed > 0:
            limits["dx/|U|"] = float(dx) / speed
    name, scale = min(limits.items(), key=lambda kv: kv[1])
    limit = safety * scale
    if dt is None:
        return limit
    if float(dt) > limit * (1.0 + 1e-9):
        raise ValueError(
            f"`dt` = {float(dt):g} s exceeds the limit {limit:.4g} s = safety ({safety:g}) x "
            f"{name} ({scale:.4g} s); use a smaller `dt` (or time_step(..., dt=None))"
        )
    return float(dt)
