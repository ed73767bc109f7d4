"""Particles at one time (:class:`ParticleState`) and their release (:func:`initial_state`).

Each particle carries a position ``(x, y, z)`` (m, ``z`` above ground), a turbulent
velocity ``(u', v', w')`` (m/s) and an ``active`` flag; all particles share the time
``t``. :func:`initial_state` places them and draws their turbulent velocities from the
local Eulerian pdf ``N(0, sigma_i^2)`` of the turbulence model, the stationary law of the
Langevin model (:mod:`plumax_transport._particle_step`), so a well-mixed initial
distribution stays well mixed from the first step.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, PRNGKeyArray

from plumax_core import MetField

from ._common import guard, is_concrete
from ._particle_met import MetAtParticles, default_dtype, local_sigmas
from ._turbulence import AbstractTurbulence, check_turbulence


class ParticleState(eqx.Module):
    """Particles at one time.

    Attributes:
        x, y, z: positions, m (``z`` above ground), shape ``(N,)``.
        up, vp, wp: turbulent velocities ``u', v', w'``, m/s, ``(N,)``.
        t: time, s (shared), shape ``()``.
        active: False once a particle has left the met's horizontal domain, ``(N,)``.
    """

    x: Float[Array, " N"]
    y: Float[Array, " N"]
    z: Float[Array, " N"]
    up: Float[Array, " N"]
    vp: Float[Array, " N"]
    wp: Float[Array, " N"]
    t: Float[Array, ""]
    active: Bool[Array, " N"]

    def __check_init__(self):
        shape = jnp.shape(self.x)
        if len(shape) != 1:
            raise ValueError(f"`x` must be 1-D (N,), got shape {shape}")
        for name in ("y", "z", "up", "vp", "wp", "active"):
            s = jnp.shape(getattr(self, name))
            if s != shape:
                raise ValueError(f"`{name}` has shape {s}; `x` has {shape}")
        if jnp.shape(self.t) != ():
            raise ValueError(f"`t` must be a scalar time (s), got shape {jnp.shape(self.t)}")

    @property
    def positions(self) -> Float[Array, "N 3"]:
        """``(x, y, z)`` stacked, m."""
        return jnp.stack([self.x, self.y, self.z], axis=-1)


def _positions(x, y, z, dtype):
    arrs = []
    for name, a in (("x", x), ("y", y), ("z", z)):
        a = jnp.asarray(a, dtype=dtype)
        if a.ndim != 1:
            raise ValueError(
                f"`{name}` must be a 1-D array of particle positions (m), got shape {a.shape}"
            )
        arrs.append(a)
    if not arrs[0].shape == arrs[1].shape == arrs[2].shape:
        raise ValueError(
            f"`x`, `y`, `z` must have the same shape, got {arrs[0].shape}, {arrs[1].shape}, "
            f"{arrs[2].shape}"
        )
    return [
        guard(a, ~jnp.isfinite(a), f"`{name}` must be finite")
        for name, a in zip(("x", "y", "z"), arrs, strict=True)
    ]


def initial_state(
    x: ArrayLike,
    y: ArrayLike,
    z: ArrayLike,
    *,
    time: float,
    met: MetField,
    turbulence: AbstractTurbulence,
    key: PRNGKeyArray,
    reference_height: float = 10.0,
) -> ParticleState:
    """Particles at ``(x, y, z)`` (m, each ``(N,)``) at ``time`` (s), with turbulent
    velocities drawn from the local Eulerian pdf ``N(0, sigma_i^2)`` of ``turbulence``.

    Raises:
        ValueError: mismatched or non-1-D positions, a ``z`` outside ``[0, h]`` (the
            local ``met.pblh``), a particle outside the met's horizontal domain, a
            ``time`` outside a time-varying met's range, or the errors of
            :func:`~plumax_transport.boundary_layer`. Traced (under jit) positions are
            checked at run time, except the domain: traced particles outside it start
            inactive; a traced ``time`` is not checked against the met's range.
    """
    check_turbulence(turbulence)
    dtype = default_dtype()
    x, y, z = _positions(x, y, z, dtype)
    fields = MetAtParticles(met, reference_height, dtype)
    fields.check_time(time, time, "time")
    tau = fields.surface.offset(time, dtype)
    h, sigma_u, sigma_v, sigma_w = local_sigmas(fields, turbulence, tau, x, y, z)
    z = guard(z, (z < 0) | (z > h), "`z` must lie in [0, h] (h = met.pblh at the particle)")
    inside = fields.surface.contains(x, y)
    if is_concrete(inside) and not bool(np.all(np.asarray(inside))):
        raise ValueError("`x`, `y`: some particles start outside the met's horizontal domain")
    xi = jr.normal(key, (3, x.shape[0]), dtype=dtype)
    return ParticleState(
        x,
        y,
        z,
        sigma_u * xi[0],
        sigma_v * xi[1],
        sigma_w * xi[2],
        jnp.asarray(time, dtype=dtype),
        jnp.broadcast_to(inside, x.shape),
    )
