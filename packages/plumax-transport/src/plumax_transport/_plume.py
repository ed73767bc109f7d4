r"""The steady-state Gaussian plume (Tier I).

For a source of strength Q (kg/s) at ``(x0, y0)`` and effective height ``H_e = H + Δh``,
in a wind of speed u blowing *from* meteorological direction d, receptor coordinates are
rotated into the wind frame (x' downwind, y' crosswind, positive to the left):

.. math::

   x' = \frac{(X - x_0) u_x + (Y - y_0) u_y}{u}, \qquad
   y' = \frac{-(X - x_0) u_y + (Y - y_0) u_x}{u},

with ``(u_x, u_y) = (-u sin d, -u cos d)``. The concentration (kg/m³) is

.. math::

   c = \frac{Q}{u}\; \frac{e^{-y'^2/2\sigma_y^2}}{\sqrt{2\pi}\,\sigma_y}\; V(z; H_e, \sigma_z, L)

for ``x' > 0`` and 0 upwind, where ``σy(x'), σz(x')`` are the Briggs (1973) curves
(:mod:`~plumax_transport._dispersion`) and V the ground- and lid-reflected vertical
density (:mod:`~plumax_transport._reflection`). The total column is
``Q e^{-y'^2/2σy²} / (sqrt(2π) u σy)`` exactly (V integrates to one); far downwind
(σz ≫ L) the point concentration tends to the well-mixed ``Q e^{-y'^2/2σy²}/(sqrt(2π) u σy L)``.

u is the wind at the release height from the Irwin (1979) power law
``u(z) = u_ref (max(z, z_ref)/z_ref)^p`` with the ISC3 exponents (``reference_height=None``
uses the met wind as is). Upwind receptors (``x' <= 0``) get exactly 0 with finite
gradients (the formula is evaluated at a safe x' and masked).

With ``crosswind_cell = w > 0`` each receptor stands for a cell of width ``w`` across
the wind and the crosswind density is its mean over the cell,

.. math::

   \frac{1}{w}\left[\Phi\!\left(\frac{y' + w/2}{\sigma_y}\right)
   - \Phi\!\left(\frac{y' - w/2}{\sigma_y}\right)\right],

the exact crosswind integral of the Gaussian (it tends to the point value as
``w → 0``); along the wind, only the cell's downwind part ``[max(x' - w/2, 0), x' + w/2]``
counts, evaluated at its middle and weighted by its length over ``w`` (the midpoint rule
on the part of the cell the plume covers, continuous as the source crosses the cell).
:class:`~plumax_transport.PixelAveraged` sets it to the sub-pixel width, so that a
plume narrower than a sub-pixel still moves smoothly with the source position: point
samples make the likelihood of ``x0`` and ``y0`` rugged at the sub-pixel scale.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import equinox as eqx
import jax.numpy as jnp
from jax.scipy.special import ndtr
from jaxtyping import Array

from plumax_core import AbstractForwardModel, MetField, Observations, Param, ParamSpec
from plumax_core.validation import MIN_WIND_SPEED

from ._common import (
    Checks,
    check_min_wind_speed,
    check_support,
    check_wind,
    one,
    profile_speed,
    run_checked,
    stability_of,
)
from ._dispersion import check_terrain, sigma_y, sigma_z
from ._geometry import AbstractGeometry
from ._plume_rise import BriggsPlumeRise
from ._reflection import METHODS

_SQRT2PI = 2.5066282746310002

#: Parameters of the Tier I plume.
PLUME_PARAM_SPEC = ParamSpec(
    (
        Param("Q", units="kg/s", lower=0.0, log=True, description="emission rate"),
        Param("x0", units="m", description="source easting"),
        Param("y0", units="m", description="source northing"),
        Param("H", units="m", lower=0.0, description="release height above ground"),
    )
)


def wind_frame(X, Y, x0, y0, ux, uy, speed):
    """Downwind ``x'`` and crosswind ``y'`` (m) of receptors ``(X, Y)`` from ``(x0, y0)``."""
    dx, dy = X - x0, Y - y0
    ex, ey = ux / speed, uy / speed
    return dx * ex + dy * ey, -dx * ey + dy * ex


class GaussianPlume(AbstractForwardModel):
    """Steady Gaussian plume with ground and boundary-layer-lid reflection.

    Params (``param_spec``): ``Q`` emission rate kg/s (> 0, log-transformed), ``x0``,
    ``y0`` source position m, ``H`` release height m (>= 0).

    Met (steady, uniform): wind ``u, v`` (m/s, at ``reference_height``), stability class
    (or Obukhov length + z0), ``pblh`` (m, the lid), ``temperature`` (K) and ``pressure``
    (Pa) for unit conversion and plume rise.

    Attributes:
        geometry: where the plume is sampled and in what units
            (:class:`PointReceptors`, :class:`ColumnImage`, :class:`ColumnAverage`).
        terrain: ``"rural"`` (open country) or ``"urban"`` dispersion curves.
        lid: reflect at the boundary-layer top ``met.pblh``; False = ground only.
        n_images: image pairs kept on each side of the layer (see ``_reflection``).
        method: ``"hybrid"`` (images, then Fourier modes when σz/L >= 0.7) or ``"images"``.
        plume_rise: Briggs vent properties, or None (a cold, passive release: no rise).
        reference_height: height (m) of the met wind for the power-law profile; None
            disables the profile (the met wind is used at every height).
        min_wind_speed: floor of core's wind-speed rule, m/s (default
            ``plumax_core.validation.MIN_WIND_SPEED`` = 0.5): the met wind speed must be
            finite and in ``[min_wind_speed, MAX_WIND_SPEED]``; any other raises (it is
            never clipped). Raise it to be stricter; lowering it leaves the range where
            the Gaussian plume is valid (see the module docstring's references).
        check_upwind: raise when every receptor is upwind of the source.
        crosswind_cell: width (m) of the cell each receptor stands for across the wind;
            0 (default) = point receptors; > 0 = the crosswind mean over the cell (module
            docstring; set by :class:`~plumax_transport.PixelAveraged`).
        strict: when the call is traced (jit/vmap/grad), raise on invalid input
            (True, default) or return NaN observations (False). Use False under samplers
            (NUTS), whose divergent proposals can be NaN or leave the support: the NaN
            likelihood rejects the proposal instead of aborting the run. Eager calls
            always raise.
    """

    geometry: AbstractGeometry
    plume_rise: BriggsPlumeRise | None = None
    terrain: str = eqx.field(static=True, default="rural")
    lid: bool = eqx.field(static=True, default=True)
    n_images: int = eqx.field(static=True, default=3)
    method: str = eqx.field(static=True, default="hybrid")
    reference_height: float | None = eqx.field(static=True, default=10.0)
    min_wind_speed: float = eqx.field(static=True, default=MIN_WIND_SPEED)
    check_upwind: bool = eqx.field(static=True, default=True)
    strict: bool = eqx.field(static=True, default=True)
    crosswind_cell: float = eqx.field(static=True, default=0.0)

    def __check_init__(self):
        if not (math.isfinite(self.crosswind_cell) and self.crosswind_cell >= 0):
            raise ValueError(
                f"`crosswind_cell` must be finite and >= 0 m, got {self.crosswind_cell}"
            )
        if not isinstance(self.geometry, AbstractGeometry):
            raise TypeError(
                f"`geometry` must be a PointReceptors/ColumnImage/ColumnAverage, got "
                f"{type(self.geometry).__name__}"
            )
        check_terrain(self.terrain)
        if self.method not in METHODS:
            raise ValueError(f"`method` must be one of {METHODS}, got {self.method!r}")
        if not isinstance(self.n_images, int) or self.n_images < 0:
            raise ValueError(f"`n_images` must be a non-negative int, got {self.n_images!r}")
        if self.reference_height is not None and not self.reference_height > 0:
            raise ValueError("`reference_height` must be > 0 m or None")
        check_min_wind_speed(self.min_wind_speed)

    @property
    def param_spec(self) -> ParamSpec:
        return PLUME_PARAM_SPEC

    def effective_height_and_speed(
        self, H, met: MetField, check: Checks | None = None
    ) -> tuple[Array, Array, Array]:
        """``(H_e, u, class)``: effective height (m), advecting wind (m/s), class index."""
        check = Checks(inside=True) if check is None else check
        ux, uy = one("u", met.u), one("v", met.v)
        speed = jnp.hypot(ux, uy)
        speed = check_wind(check, speed, speed, self.min_wind_speed)
        stab = stability_of(met)
        stab = check(stab, (stab < 0) | (stab > 5), "`met.stability_class` must be in 0-5 (A-F)")
        u = profile_speed(speed, H, stab, self.terrain, self.reference_height)
        He = H
        if self.plume_rise is not None:
            He = H + self.plume_rise(u, stab, one("temperature", met.temperature))
        return He, u, stab

    def __call__(self, params: Mapping[str, Array], met: MetField) -> Observations:
        """Simulate the geometry's observations (see the module docstring)."""
        return run_checked(_plume_core, self, params, met)


@eqx.filter_jit
def _plume_core(model: GaussianPlume, p, met: MetField, inside: bool):
    check = Checks(inside, strict=model.strict)
    p = check_support(model.param_spec, p, check)
    Q, x0, y0, H = p["Q"], p["x0"], p["y0"], p["H"]
    dtype = jnp.result_type(Q, x0, y0, H, met.u)
    ux, uy = one("u", met.u).astype(dtype), one("v", met.v).astype(dtype)
    speed = jnp.maximum(jnp.hypot(ux, uy), jnp.finfo(dtype).tiny)
    He, u, stab = model.effective_height_and_speed(H.astype(dtype), met, check)
    u = u.astype(dtype)
    L = one("pblh", met.pblh).astype(dtype) if model.lid else None
    if L is not None:
        He = check(He, He > L, "effective source height exceeds `met.pblh` (the lid)")
        He = check(He, model.geometry.max_height > L, "a receptor lies above `met.pblh` (the lid)")

    X, Y = model.geometry.horizontal()
    xp, yp = wind_frame(X.astype(dtype), Y.astype(dtype), x0, y0, ux, uy, speed)
    down = xp > 0
    if model.check_upwind:
        xp = check(xp, ~jnp.any(down), "every receptor is upwind of the source (x' <= 0)")
    frac = 1.0
    if model.crosswind_cell > 0:
        # the cell [x' - h, x' + h] x [y' - h, y' + h]: its downwind part, evaluated at
        # that part's middle and weighted by its length (continuous as x0 crosses it)
        h = 0.5 * model.crosswind_cell
        lo, hi = jnp.maximum(xp - h, 0.0), xp + h
        down = hi > 0
        xs = jnp.where(down, 0.5 * (lo + hi), 1.0)
        frac = jnp.clip((hi - lo) / model.crosswind_cell, 0.0, 1.0)
    else:
        xs = jnp.where(down, xp, 1.0)
    sy = sigma_y(xs, stab, model.terrain)
    sz = sigma_z(xs, stab, model.terrain)
    inv_sy = 1.0 / sy
    if model.crosswind_cell > 0:
        horiz = (ndtr((yp + h) * inv_sy) - ndtr((yp - h) * inv_sy)) / model.crosswind_cell
    else:
        horiz = jnp.exp(-0.5 * (yp * inv_sy) ** 2) * (inv_sy / _SQRT2PI)
    vert = model.geometry.vertical(He, sz, L, n_images=model.n_images, method=model.method)
    field = jnp.where(down, Q / u * horiz * vert * frac, 0.0)
    T = one("temperature", met.temperature).astype(dtype)
    P = one("pressure", met.pressure).astype(dtype)
    return model.geometry.finish(field, T, P), check.flags
