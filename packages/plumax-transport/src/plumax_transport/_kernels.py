r"""Kernel estimators: particles -> concentration at a geometry's receptors (private).

A particle model knows where its particles are; a geometry asks for a field at fixed
receptors. A kernel ``K`` (1/m³ for a point, 1/m² for a column) spreads each particle's
mass over the receptors; :class:`LagrangianParticles <plumax_transport.LagrangianParticles>`
sums it over particles (and, for a steady met, over time steps: the residence-time
estimator). Each kernel is linear in the particle weights and costs ``O(N)`` or
``O(N n_receptors)`` per call, whatever the number of steps.

**Grid geometries** (:class:`~plumax_transport.ColumnImage`,
:class:`~plumax_transport.ColumnAverage`): cloud-in-cell (CIC) deposit, the tent (hat)
function of each cell centre (Hockney & Eastwood 1988, *Computer Simulation Using
Particles*, ch. 5). On centres ``x_0 < ... < x_{n-1}`` (any spacing), a particle at
``x_i <= p <= x_{i+1}`` gives the fraction ``1 - f`` of its mass to centre ``i`` and ``f``
to ``i + 1``, ``f = (p - x_i)/(x_{i+1} - x_i)``; in 2-D the product of the two axes'
weights (bilinear). The tent of an outer centre extends one spacing beyond it (its
spacing mirrored), so a particle leaving the grid hands its mass over continuously. A
particle exactly on a centre (a kink of the tents) gets the derivative from the right,
so the derivatives of its weights still sum to zero (mass-conserving gradients, e.g.
for a source placed on a pixel centre, where all particles start). The column
density of cell ``(j, i)`` is the deposited mass over the tent's integral, the cell area
``a_j b_i`` with ``b_i = (x_{i+1} - x_{i-1})/2`` (and ``x_1 - x_0``, ``x_{n-1} - x_{n-2}``
at the ends), so that a uniform layer of particles gives a uniform column and
``sum(column * area)`` is the mass of the particles between the outer centres exactly.
The deposit is continuous (piecewise linear) in each particle's position, so the
observations are continuous in the source position and their gradients are useful. A
partial column (``ColumnImage.z_top``, ``ColumnAverage.column_height``) counts only the
particles with ``z <= z_top`` (a step in ``z``: its pathwise derivative is zero). Cost:
four scatter-adds of ``N`` values per call (``O(N)``, not ``O(N n_cells)``); an evenly
spaced axis is located arithmetically, an uneven one by binary search.

**Point receptors** (:class:`~plumax_transport.PointReceptors`): a Gaussian kernel of
bandwidths ``h = (h_x, h_y, h_z)`` (m) with its ground image (Silverman 1986, *Density
Estimation for Statistics and Data Analysis*; the image is his reflection method for a
density on ``z >= 0``):

.. math::

   K(\mathbf r - \mathbf X) = G_{h_x}(x - X)\, G_{h_y}(y - Y)\,
       \big[G_{h_z}(z - Z) + G_{h_z}(z + Z)\big], \qquad
   G_h(d) = \frac{e^{-d^2/2h^2}}{\sqrt{2\pi}\,h},

which integrates to one over ``z >= 0`` for every particle height ``Z >= 0``: no mass is
lost through the ground. Its mean is the true concentration smoothed by the kernel,
``E[ĉ] = c * K``; for a reflected Gaussian plume of spreads ``(σ_y, σ_z)`` this is the
same plume with ``σ² -> σ² + h²`` in each direction (exactly, the image included), so the
relative bias at the plume centre is about ``-(h_y²/σ_y² + h_z²/σ_z²)/2``, while the
Monte Carlo variance grows like ``1/(N h_y h_z)``. Choose ``h`` about 0.1-0.3 times the
smallest spread at the receptors (``σ_z`` near a ground-level source is the smallest) and
raise ``N`` until the noise is acceptable. The lid is not imaged (receptors sit well
below it). Cost ``O(N n_receptors)`` per call.
"""

from __future__ import annotations

import abc
import math

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

from ._geometry import AbstractGeometry, ColumnAverage, ColumnImage, PointReceptors

_SQRT2PI = math.sqrt(2.0 * math.pi)


class AbstractKernel(eqx.Module):
    """Spreads weighted particles over the receptors of one geometry.

    Contract for every implementation:

    * ``deposit(field, x, y, z, weight)`` returns ``field + sum_p weight_p k_p`` where
      ``k_p`` is particle ``p``'s share of unit mass at each receptor: linear in
      ``weight``, continuous in the positions, traceable;
    * ``density(field)`` turns the deposited sums into a density (1/m³ for points, 1/m²
      for columns) per unit mass: a particle's density integrates to one over the
      receptors' space (the plane, or the half-space ``z >= 0``);
    * ``length_scale`` (m) is the horizontal scale of the kernel: a step shorter than it
      along the wind resolves the residence-time sum.
    """

    @property
    @abc.abstractmethod
    def length_scale(self) -> float:
        """Horizontal resolution of the kernel, m."""

    @abc.abstractmethod
    def zeros(self, dtype) -> Array:
        """The empty field, the shape of the geometry's values."""

    @abc.abstractmethod
    def deposit(
        self,
        field: Array,
        x: Float[Array, " N"],
        y: Float[Array, " N"],
        z: Float[Array, " N"],
        weight: Float[Array, " N"],
    ) -> Array:
        """``field`` plus the weighted particles' shares (see the class contract)."""

    @abc.abstractmethod
    def density(self, field: Array) -> Array:
        """The deposited sums as a density per unit mass (1/m³ or 1/m²)."""


# -- grid: cloud in cell -----------------------------------------------------------


def _evenly_spaced(c: np.ndarray) -> bool:
    d = np.diff(c)
    return bool(np.all(np.abs(d - d[0]) <= 1e-6 * abs(d[0])))


def _cell_widths(c: np.ndarray) -> np.ndarray:
    """Integral of each centre's tent: half the distance between its neighbours, m."""
    d = np.diff(c)
    return np.concatenate([d[:1], 0.5 * (d[:-1] + d[1:]), d[-1:]])


class _Axis(eqx.Module):
    """Cell centres along one axis and their tent weights."""

    centres: Float[Array, " n"]
    even: bool = eqx.field(static=True)

    def tents(self, p: Array) -> tuple[Array, Array, Array]:
        """Lower centre index ``i`` in ``[0, n-2]`` and the weights of ``i`` and ``i + 1``."""
        c = self.centres.astype(p.dtype)
        n = c.shape[0]
        if self.even:
            step = c[1] - c[0]
            s = (p - c[0]) / step
            fi = jnp.clip(jnp.floor(s), 0, n - 2)
            i = fi.astype(jnp.int32)
            f = s - fi
        else:
            i = jnp.searchsorted(c, p, side="right", method="scan_unrolled") - 1
            i = jnp.clip(i, 0, n - 2).astype(jnp.int32)
            f = (p - c[i]) / (c[i + 1] - c[i])
        # inside [x_i, x_i+1): 1 - f and f, whose derivatives cancel (at a centre, f = 0,
        # the right derivative); beyond the outer centres the mirrored tent
        zero = jnp.zeros_like(f)
        w_lo = jnp.where(f < 0, jnp.maximum(1.0 + f, 0.0), jnp.where(f <= 1, 1.0 - f, zero))
        w_hi = jnp.where(f > 1, jnp.maximum(2.0 - f, 0.0), jnp.where(f >= 0, f, zero))
        return i, w_lo, w_hi


class GridKernel(AbstractKernel):
    """Cloud-in-cell deposit on a ``(ny, nx)`` grid of cell centres (module docstring).

    Attributes:
        ax, ay: the x and y axes (centres in m, at least 2 each).
        inv_area: ``1 / (a_j b_i)``, 1/m², ``(ny, nx)``.
        z_max: only particles with ``z <= z_max`` (m, a 0-d array) count; None = all.
        spacing: the smallest spacing of the centres, m (the ``length_scale``).
    """

    ax: _Axis
    ay: _Axis
    inv_area: Float[Array, "ny nx"]
    z_max: Float[Array, ""] | None
    spacing: float = eqx.field(static=True)

    def __init__(self, x, y, z_max: float | None = None):
        xs = np.asarray(x, dtype=np.float64)
        ys = np.asarray(y, dtype=np.float64)
        for name, c in (("x", xs), ("y", ys)):
            if c.ndim != 1 or c.size < 2:
                raise ValueError(
                    f"`geometry.{name}` must hold at least 2 cell centres (a cell's size is "
                    f"the spacing of the centres) for the particle model, got shape {c.shape}"
                )
        self.ax = _Axis(jnp.asarray(x), _evenly_spaced(xs))
        self.ay = _Axis(jnp.asarray(y), _evenly_spaced(ys))
        area = _cell_widths(ys)[:, None] * _cell_widths(xs)[None, :]
        self.inv_area = jnp.asarray(1.0 / area, dtype=jnp.result_type(float))
        self.z_max = None if z_max is None else jnp.asarray(float(z_max))
        self.spacing = float(min(np.min(np.diff(xs)), np.min(np.diff(ys))))

    @property
    def length_scale(self) -> float:
        return self.spacing

    def zeros(self, dtype) -> Float[Array, "ny nx"]:
        return jnp.zeros(self.inv_area.shape, dtype)

    def deposit(self, field, x, y, z, weight):
        ny, nx = field.shape
        if self.z_max is not None:
            weight = jnp.where(z <= self.z_max.astype(z.dtype), weight, 0.0)
        i, wx0, wx1 = self.ax.tents(x)
        j, wy0, wy1 = self.ay.tents(y)
        base = j * nx + i
        idx = jnp.concatenate([base, base + 1, base + nx, base + nx + 1])
        vals = jnp.concatenate([wy0 * wx0, wy0 * wx1, wy1 * wx0, wy1 * wx1])
        vals = vals * jnp.tile(weight, 4)
        flat = field.reshape(-1).at[idx].add(vals.astype(field.dtype), mode="promise_in_bounds")
        return flat.reshape(ny, nx)

    def density(self, field):
        return field * self.inv_area.astype(field.dtype)


# -- points: Gaussian kernel with its ground image -------------------------------------


class PointKernel(AbstractKernel):
    """Gaussian kernel of bandwidths ``(h_x, h_y, h_z)`` with its ground image.

    Attributes:
        x, y, z: receptor positions, m, ``(n,)``.
        bandwidth: ``(h_x, h_y, h_z)``, m (> 0).
    """

    x: Float[Array, " n"]
    y: Float[Array, " n"]
    z: Float[Array, " n"]
    bandwidth: tuple[float, float, float] = eqx.field(static=True)

    def __check_init__(self):
        if len(self.bandwidth) != 3 or not all(math.isfinite(h) and h > 0 for h in self.bandwidth):
            raise ValueError(f"`bandwidth` must be three lengths > 0 m, got {self.bandwidth!r}")

    @property
    def length_scale(self) -> float:
        return min(self.bandwidth[0], self.bandwidth[1])

    def zeros(self, dtype) -> Float[Array, " n"]:
        return jnp.zeros(self.x.shape, dtype)

    def deposit(self, field, x, y, z, weight):
        hx, hy, hz = self.bandwidth
        dt = field.dtype
        rx, ry, rz = (a.astype(dt)[None, :] for a in (self.x, self.y, self.z))
        px, py, pz = x[:, None], y[:, None], z[:, None]
        horiz = -0.5 * (((rx - px) / hx) ** 2 + ((ry - py) / hy) ** 2)
        k = jnp.exp(horiz - 0.5 * ((rz - pz) / hz) ** 2) + jnp.exp(
            horiz - 0.5 * ((rz + pz) / hz) ** 2
        )  # (N, n)
        return field + weight.astype(dt) @ k

    def density(self, field):
        hx, hy, hz = self.bandwidth
        return field / (_SQRT2PI**3 * hx * hy * hz)


def kernel_for(geometry: AbstractGeometry, bandwidth: tuple[float, float, float]) -> AbstractKernel:
    """The kernel of a geometry: CIC on a grid, a Gaussian at point receptors.

    Raises:
        ValueError: a geometry that is not a PointReceptors, ColumnImage or
            ColumnAverage, or a grid axis with fewer than 2 centres.
    """
    if isinstance(geometry, PointReceptors):
        return PointKernel(geometry.x, geometry.y, geometry.z, tuple(bandwidth))
    if isinstance(geometry, ColumnImage):
        return GridKernel(geometry.x, geometry.y, geometry.z_top)
    if isinstance(geometry, ColumnAverage):
        return GridKernel(geometry.x, geometry.y, geometry.column_height)
    raise ValueError(
        "`geometry` must be a PointReceptors, ColumnImage or ColumnAverage, got "
        f"{type(geometry).__name__}"
    )


class ResidenceTime(eqx.Module):
    """The :func:`~plumax_transport.run_particles` callback of the residence-time sum.

    After step ``k`` (particles at ``t0 + (k + 1) dt``) it adds the active particles with
    weight ``dt`` (``dt/2`` at the last step: with ``dt/2`` at ``t0``, added by the caller,
    the trapezoidal rule for ``∫_0^T K(r - X(t)) dt``).

    Attributes:
        kernel: the geometry's kernel.
        dt: step, s (a 0-d array).
        n_steps: number of steps of the run.
    """

    kernel: AbstractKernel
    dt: Float[Array, ""]
    n_steps: int = eqx.field(static=True)

    def __call__(self, field, state, k):
        dt = self.dt.astype(field.dtype)
        w = jnp.where(k == self.n_steps - 1, 0.5 * dt, dt)
        return self.kernel.deposit(field, state.x, state.y, state.z, _weights(state.active, w))


def _weights(active: Bool[Array, " N"], w) -> Array:
    return jnp.where(active, w, jnp.zeros_like(w))
