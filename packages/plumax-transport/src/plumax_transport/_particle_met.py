r"""The met at the particles: boundary-layer scales and the mean wind (Tier II engine).

The particle engine (:mod:`plumax_transport._particles`) reads the met through
:class:`MetSampler` s built once before its time loop (:class:`MetAtParticles`).

**Boundary layer at a particle** (:func:`boundary_layer`), from the met at
``(t, y, x)`` (``pblh``, ``z0`` and ``1/L`` at the ground, the lowest level if they have
a ``z`` axis): ``h = met.pblh``; ``1/L`` from ``met.obukhov_length`` or, when only
``met.stability_class`` is given, the centre of the Pasquill class on Golder's (1972)
nomogram at the met's ``z0`` (:func:`~plumax_transport._stability.golder_inverse_obukhov`;
class D gives ``1/L = 0``, neutral); ``1/L`` (not ``L``, which passes through infinity)
is what is interpolated between met nodes (so a class that changes between two met
times changes ``1/L`` linearly, where :meth:`plumax_core.MetField.at` steps). ``u*``
from the wind speed at ``reference_height`` by Monin-Obukhov similarity and ``w*`` from
Deardorff's relation (Deardorff 1970, *J. Atmos. Sci.* 27, 1211-1213;
:func:`~plumax_transport._turbulence.friction_velocity`,
:func:`~plumax_transport._turbulence.convective_velocity`). A met without a ``z`` axis
has winds uniform in height (its wind is taken as the wind at ``reference_height``).

**Mean wind** (:func:`mean_wind`): ``(U, V, W)`` interpolated at ``(t, z, y, x)``
(``W = 0`` without ``met.w``).

**Time.** The met is interpolated at the offset of a time from the met's first time
(:meth:`plumax_core.MetSampler.offset`, float64 on the host for a concrete time, then
the run's dtype). The met *varies in time* (:func:`varies_in_time`) when one of the
fields that move the particles (:data:`TRANSPORT_FIELDS`) has more than one time.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from plumax_core import MetField, MetSampler

from ._common import is_concrete
from ._stability import golder_inverse_obukhov
from ._turbulence import convective_velocity, friction_velocity

#: The met fields that move the particles; the met "varies in time" when one of them does.
TRANSPORT_FIELDS = ("u", "v", "w", "pblh", "z0", "obukhov_length", "stability_class")


def varies_in_time(met: MetField, fields: tuple[str, ...] = TRANSPORT_FIELDS) -> bool:
    """True when one of ``fields`` (default :data:`TRANSPORT_FIELDS`) has more than one
    time (static: decided from shapes, so it works on a traced met)."""
    for name in fields:
        val = getattr(met, name)
        if val is not None and jnp.ndim(val) == 4 and jnp.shape(val)[0] > 1:
            return True
    return False


def default_dtype():
    """The default float dtype (float32 unless x64 is enabled)."""
    return jnp.result_type(float)


def max_wind_speed(met: MetField) -> float:
    """The largest mean wind speed ``|(u, v[, w])|`` on the met's grid, m/s (concrete
    met): a multilinear wind's speed is largest at a node."""
    comps = [np.asarray(met.u), np.asarray(met.v)]
    if met.w is not None:
        comps.append(np.asarray(met.w))
    return float(np.max(np.sqrt(sum(np.square(c) for c in np.broadcast_arrays(*comps)))))


def _inverse_obukhov(met: MetField) -> Array:
    """``1/L`` (1/m) on the met's grid (module docstring); 0 = neutral."""
    if met.obukhov_length is not None:
        return 1.0 / met.obukhov_length
    if met.stability_class is not None:
        if is_concrete(met.z0) and np.any((np.asarray(met.z0) < 1e-3) | (np.asarray(met.z0) > 1)):
            raise ValueError(
                "`met.z0` must be in [1e-3, 1] m to turn `met.stability_class` into an Obukhov "
                "length (Golder 1972); give `met.obukhov_length` instead"
            )
        centres = golder_inverse_obukhov(met.z0)  # (..., 6)
        sc = met.stability_class
        shape = jnp.broadcast_shapes(jnp.shape(sc), centres.shape[:-1])
        centres = jnp.broadcast_to(centres, (*shape, 6))
        sc = jnp.broadcast_to(sc, shape)
        return jnp.take_along_axis(centres, sc[..., None], axis=-1)[..., 0]
    raise ValueError(
        "`met` has neither `obukhov_length` nor `stability_class`: the Obukhov length is "
        "needed for the boundary-layer turbulence"
    )


def _check_reference_height(met: MetField, reference_height: float) -> None:
    if not (isinstance(reference_height, int | float) and math.isfinite(reference_height)):
        raise ValueError(
            f"`reference_height` must be a finite number (m), got {reference_height!r}"
        )
    if reference_height <= 0:
        raise ValueError(f"`reference_height` must be > 0 m, got {reference_height!r}")
    if is_concrete(met.z0) and np.any(np.asarray(met.z0) >= reference_height):
        raise ValueError(
            f"`reference_height` ({reference_height} m) must exceed the roughness length "
            f"`met.z0` (max {float(np.max(np.asarray(met.z0)))} m)"
        )


class MetAtParticles(eqx.Module):
    """The samplers a run needs, built once before the time loop.

    Attributes:
        surface: ``pblh``, ``z0`` and ``1/L`` (at the ground).
        wind: ``u``, ``v`` (and ``w`` when the met has it).
        has_w: whether the met has a vertical wind.
        time_varying: :func:`varies_in_time` of the met.
        reference_height: height of the wind used for ``u*``, m.
    """

    surface: MetSampler
    wind: MetSampler
    has_w: bool = eqx.field(static=True)
    time_varying: bool = eqx.field(static=True)
    reference_height: float = eqx.field(static=True)

    def __init__(self, met: MetField, reference_height: float, dtype):
        if met.pblh is None:
            raise ValueError("`met.pblh` (boundary-layer height, m) is needed")
        _check_reference_height(met, reference_height)
        self.surface = MetSampler(met, ("pblh", "z0", _inverse_obukhov(met)), dtype=dtype)
        self.has_w = met.w is not None
        self.wind = MetSampler(met, ("u", "v", "w") if self.has_w else ("u", "v"), dtype=dtype)
        self.time_varying = varies_in_time(met)
        self.reference_height = float(reference_height)

    def check_time(self, t_start, t_end, name: str) -> None:
        """Raise ``ValueError`` naming ``name`` if ``[t_start, t_end]`` (s, concrete)
        leaves the time range of a met that varies in time."""
        self.surface.check_time(t_start, t_end, name)
        self.wind.check_time(t_start, t_end, name)

    def boundary_layer(self, tau, x, y):
        """``(h, u*, w*, L)`` at time offset ``tau`` (s) and ``(x, y)`` (m)."""
        h, z0, inv_L = self.surface.at_offset(tau, x, y, 0.0)
        U = self.wind.at_offset(tau, x, y, self.reference_height)
        speed = jnp.hypot(U[0], U[1])
        # L = 1/inv_L, inf when neutral; the double where keeps its derivative finite
        # (0) at inv_L = 0, where 1/inv_L's would be -d(inv_L)/0 = NaN
        neutral = inv_L == 0
        L = jnp.where(neutral, jnp.inf, 1.0 / jnp.where(neutral, 1.0, inv_L))
        ustar = friction_velocity(speed, z0, L, self.reference_height)
        return h, ustar, convective_velocity(ustar, h, L), L

    def mean_wind(self, tau, x, y, z):
        """``(U, V, W)`` at time offset ``tau`` (s) and ``(x, y, z)`` (m)."""
        U = self.wind.at_offset(tau, x, y, z)
        W = U[2] if self.has_w else jnp.zeros((), U[0].dtype)
        return U[0], U[1], W


@eqx.filter_jit
def boundary_layer_at(fields: MetAtParticles, tau, x, y):
    """:meth:`MetAtParticles.boundary_layer`, jitted."""
    return fields.boundary_layer(tau, x, y)


@eqx.filter_jit
def local_sigmas(fields: MetAtParticles, turbulence, tau, x, y, z):
    """``(h, sigma_u, sigma_v, sigma_w)`` at the particles, jitted."""
    h, ustar, wstar, L = fields.boundary_layer(tau, x, y)
    prof = turbulence(z, h, ustar, wstar, L)
    return h, prof.sigma_u, prof.sigma_v, prof.sigma_w


def boundary_layer(
    met: MetField, t, x, y, *, reference_height: float = 10.0
) -> tuple[Array, Array, Array, Array]:
    """``(h, u*, w*, L)`` at points ``(t, y, x)`` from the met (module docstring).

    Args:
        met: the met (``pblh``, ``z0``, ``obukhov_length`` or ``stability_class``,
            ``u``, ``v``).
        t: time, s; x, y: positions, m (broadcast together).
        reference_height: height of the wind used for ``u*``, m (> ``met.z0``).

    Returns:
        boundary-layer height ``h`` (m), friction velocity ``u*`` and convective
        velocity ``w*`` (m/s), Obukhov length ``L`` (m, ``inf`` neutral); each with the
        broadcast shape of the coordinates the met varies along (``()`` for uniform,
        steady met).

    Raises:
        ValueError: a missing field, ``reference_height <= met.z0``, or a time outside
            a time-varying met's range.
    """
    fields = MetAtParticles(met, reference_height, default_dtype())
    fields.check_time(t, t, "t")
    return boundary_layer_at(fields, fields.surface.offset(t, default_dtype()), x, y)


def mean_wind(met: MetField, t, x, y, z) -> tuple[Array, Array, Array]:
    """Mean wind ``(U, V, W)`` (m/s) at points ``(t, z, y, x)``; ``W = 0`` without
    ``met.w``. Raises ``ValueError`` for a time outside a time-varying met's range."""
    sampler = MetSampler(met, ("u", "v", "w") if met.w is not None else ("u", "v"))
    sampler.check_time(t, t, "t")
    U = sampler.at_offset(sampler.offset(t, default_dtype()), x, y, z)
    W = U[2] if met.w is not None else jnp.zeros((), U[0].dtype)
    return U[0], U[1], W
