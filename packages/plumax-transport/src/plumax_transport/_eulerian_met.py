r"""The met on a finite-volume grid at one time (Tier III).

:class:`GridMet` holds the :class:`~plumax_core.MetSampler` s an Eulerian run reads,
built once before the time loop, and answers at a time offset ``tau`` (s from the met's
first time, :meth:`plumax_core.MetSampler.offset`):

* **face winds** (:meth:`GridMet.winds`): ``u`` at the x-faces ``(z_k, y_j, x_{i-1/2})``,
  ``v`` at the y-faces, ``w`` (when the met has it) at the z-faces, each by the sampler's
  multilinear interpolation at the face centre (a met without a ``z`` axis is uniform in
  height: its wind is the wind at every level). A face beyond the met's horizontal
  domain takes the nearest node's value (the sampler's clamping); the cell *centres* must
  lie inside the domain (checked by the model);
* **boundary layer per column** (:meth:`GridMet.boundary_layer`): ``u*``, ``L`` and ``h``
  at the cell centres ``(y_j, x_i)`` from
  :class:`~plumax_transport._particle_met.MetAtParticles` (the Lagrangian tier's
  definitions, one for both tiers): ``h = met.pblh``; ``1/L`` from
  ``met.obukhov_length`` or, with only ``met.stability_class``, the class centre on
  Golder's (1972) nomogram at ``met.z0`` (never a silent neutral default: a met with
  neither raises); ``u*`` by Monin-Obukhov similarity from the wind speed at
  ``reference_height`` (:func:`~plumax_transport._turbulence.friction_velocity`);
* **air density profile** (:meth:`GridMet.air_density`), kg/m³ at the level centres,
  ideal gas ``ρ = p M_air/(R T)``: when ``met.temperature`` and ``met.pressure`` both vary
  along the met's ``z`` axis, their values interpolated at the level centres above the
  domain's centre; otherwise the surface values at the domain's centre continued
  hydrostatically with the standard-atmosphere lapse rate ``Γ = 6.5 K/km``
  (ISO 2533:1975), ``T = T_s - Γ z``, ``ρ = ρ_s (T/T_s)^{g M_air/(R Γ) - 1}``;
* **air temperature and pressure at the receptors** (:meth:`GridMet.air_at`), for the
  geometry's unit conversion (the met's values when uniform, as the other tiers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from plumax_core import MetField, MetSampler
from plumax_core.units import G0, M_AIR, R_GAS

from ._geometry import AbstractGeometry, PointReceptors
from ._particle_met import MetAtParticles

if TYPE_CHECKING:
    from ._fv_advection import FaceWinds
    from ._fv_grid import FVGrid

#: Standard-atmosphere tropospheric lapse rate, K/m (ISO 2533:1975).
LAPSE_RATE = 0.0065
#: Air-density choices: the profile of the module docstring, or uniform (``advance``'s
#: ``air_density=None``: the diffusion acts on the mass density itself).
AIR_DENSITIES = ("hydrostatic", "uniform")


def _varies_in_z(a) -> bool:
    return a is not None and jnp.ndim(a) == 4 and jnp.shape(a)[1] > 1


class GridMet(eqx.Module):
    """The samplers of one run on an FV grid (module docstring).

    Attributes:
        u, v, w: samplers of the wind components (``w`` None without ``met.w``).
        surface: the boundary-layer samplers, or None when the diffusivity needs no
            boundary-layer scales (a constant K).
        air: the sampler of ``temperature`` and ``pressure``.
        density: ``"hydrostatic"`` or ``"uniform"`` (:data:`AIR_DENSITIES`).
        air_in_z: whether temperature and pressure both vary along the met's ``z``.
    """

    u: MetSampler
    v: MetSampler
    w: MetSampler | None
    surface: MetAtParticles | None
    air: MetSampler
    density: str = eqx.field(static=True)
    air_in_z: bool = eqx.field(static=True)

    def __init__(
        self,
        met: MetField,
        *,
        needs_boundary_layer: bool,
        reference_height: float,
        density: str,
        dtype,
    ):
        self.u = MetSampler(met, ("u",), dtype=dtype)
        self.v = MetSampler(met, ("v",), dtype=dtype)
        self.w = None if met.w is None else MetSampler(met, ("w",), dtype=dtype)
        self.surface = (
            MetAtParticles(met, reference_height, dtype) if needs_boundary_layer else None
        )
        self.air = MetSampler(met, ("temperature", "pressure"), dtype=dtype)
        self.density = density
        self.air_in_z = (
            _varies_in_z(met.temperature) and _varies_in_z(met.pressure) and met.z is not None
        )

    @property
    def samplers(self) -> tuple[MetSampler, ...]:
        out = [self.u, self.v, self.air]
        if self.w is not None:
            out.append(self.w)
        if self.surface is not None:
            out += [self.surface.surface, self.surface.wind]
        return tuple(out)

    @property
    def time_varying(self) -> bool:
        return any(s.time_varying for s in self.samplers)

    def check_time(self, t_start: float, t_end: float, name: str) -> None:
        """``ValueError`` naming ``name`` when ``[t_start, t_end]`` (s, absolute,
        concrete) leaves the range of a met that varies in time."""
        for s in self.samplers:
            s.check_time(t_start, t_end, name)

    def winds(self, tau, grid: FVGrid) -> FaceWinds:
        """Face winds (m/s) at time offset ``tau`` (module docstring)."""
        from ._fv_advection import FaceWinds

        dtype = self.u.tables[0].data.dtype
        x, y, z = (jnp.asarray(c, dtype) for c in (grid.x, grid.y, grid.z))
        xe, ye = jnp.asarray(grid.x_edges, dtype), jnp.asarray(grid.y_edges, dtype)
        nz, ny, nx = grid.shape
        (u,) = self.u.at_offset(tau, xe[None, None, :], y[None, :, None], z[:, None, None])
        (v,) = self.v.at_offset(tau, x[None, None, :], ye[None, :, None], z[:, None, None])
        u = jnp.broadcast_to(u, (nz, ny, nx + 1))
        v = jnp.broadcast_to(v, (nz, ny + 1, nx))
        w = None
        if self.w is not None:
            ze = jnp.asarray(grid.z_edges, dtype)
            (w,) = self.w.at_offset(tau, x[None, None, :], y[None, :, None], ze[:, None, None])
            w = jnp.broadcast_to(w, (nz + 1, ny, nx))
        return FaceWinds(u=u, v=v, w=w)

    def boundary_layer(self, tau, grid: FVGrid) -> tuple[Array, Array, Array]:
        """``(u*, L, h)`` (m/s, m, m) at the cell centres, each ``(ny, nx)`` or ``()``
        (module docstring); requires ``surface``."""
        assert self.surface is not None
        dtype = self.u.tables[0].data.dtype
        x = jnp.asarray(grid.x, dtype)[None, :]
        y = jnp.asarray(grid.y, dtype)[:, None]
        h, ustar, _, L = self.surface.boundary_layer(tau, x, y)
        return ustar, L, h

    def air_density(self, tau, grid: FVGrid) -> Float[Array, " nz"] | None:
        """Air density at the level centres, kg/m³, or None for ``"uniform"``."""
        if self.density == "uniform":
            return None
        dtype = self.u.tables[0].data.dtype
        xc = 0.5 * (grid.x_edges[0] + grid.x_edges[-1])
        yc = 0.5 * (grid.y_edges[0] + grid.y_edges[-1])
        xc, yc = jnp.asarray(xc, dtype), jnp.asarray(yc, dtype)
        z = jnp.asarray(grid.z, dtype)
        if self.air_in_z:
            T, p = self.air.at_offset(tau, xc, yc, z)
            return jnp.broadcast_to(p * M_AIR / (R_GAS * T), z.shape)
        Ts, ps = self.air.at_offset(tau, xc, yc, jnp.zeros((), dtype))
        rho_s = ps * M_AIR / (R_GAS * Ts)
        ratio = (Ts - LAPSE_RATE * z) / Ts
        return rho_s * ratio ** (G0 * M_AIR / (R_GAS * LAPSE_RATE) - 1.0)

    def air_at(self, tau, geometry: AbstractGeometry) -> tuple[Array, Array]:
        """Air temperature (K) and pressure (Pa) at the receptors (ground level for a
        grid geometry) at time offset ``tau``."""
        dtype = self.u.tables[0].data.dtype
        if isinstance(geometry, PointReceptors):
            x, y, z = geometry.x, geometry.y, geometry.z
        else:
            x, y = geometry.horizontal()
            z = jnp.zeros(())
        T, p = self.air.at_offset(
            tau, jnp.asarray(x, dtype), jnp.asarray(y, dtype), jnp.asarray(z, dtype)
        )
        return T, p
