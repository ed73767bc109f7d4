r"""The finite-volume grid of the Eulerian transport solver (Tier III).

Cells are boxes ``dx * dy * dz_k``: uniform in x and y (cell centres ``x``, ``y``, m) and
stretched in z, given by the level edges ``z_edges`` (m, ``z_edges[0] == 0``, strictly
increasing). The state ``q`` is the tracer mass density (kg/m^3) of each cell, shape
``(nz, ny, nx)`` (C order: z, y, x), so the mass in the domain is

.. math::

   M = \sum_{k,j,i} q_{kji}\, \Delta x\, \Delta y\, \Delta z_k ,

the quantity every flux-form update of :mod:`plumax_transport._fv_solver` conserves up
to the fluxes through open faces (LeVeque 2002, *Finite Volume Methods for Hyperbolic
Problems*, ch. 4).
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

#: Relative tolerance on the uniformity of the x and y spacings.
UNIFORM_RTOL = 1e-6


def _axis(name: str, values, spacing) -> tuple[Array, float]:
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.size < 1:
        raise ValueError(f"`{name}` must be a 1-D array with at least one cell, got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` must be finite numbers")
    arr = arr.astype(np.float64)
    dname = "d" + name
    if arr.size == 1:
        if spacing is None:
            raise ValueError(
                f"`{name}` has a single cell, so its spacing `{dname}=` must be given as a keyword"
            )
        step = float(spacing)
    else:
        steps = np.diff(arr)
        step = float(steps.mean())
        if not step > 0 or not np.allclose(steps, step, rtol=UNIFORM_RTOL, atol=0.0):
            raise ValueError(
                f"`{name}` must be increasing with uniform spacing (rel. tol {UNIFORM_RTOL:g}); "
                f"spacings range over [{steps.min():g}, {steps.max():g}] m"
            )
        if spacing is not None and not np.isclose(float(spacing), step, rtol=UNIFORM_RTOL):
            raise ValueError(
                f"`{dname}`={spacing!r} disagrees with the spacing of `{name}` ({step:g})"
            )
    if not (np.isfinite(step) and step > 0):
        raise ValueError(f"`{dname}` must be finite and > 0, got {spacing!r}")
    return jnp.asarray(values), step


class FVGrid(eqx.Module):
    """A finite-volume grid, uniform in x and y, stretched in z.

    Attributes:
        x: cell-centre x, m, shape ``(nx,)``, uniform spacing ``dx``.
        y: cell-centre y, m, shape ``(ny,)``, uniform spacing ``dy``.
        z_edges: level edges, m, shape ``(nz + 1,)``, ``z_edges[0] == 0``, strictly increasing.
        dx: x spacing, m (static; derived from ``x``, or the ``dx=`` keyword for one cell).
        dy: y spacing, m (static).
    """

    x: Float[Array, " nx"]
    y: Float[Array, " ny"]
    z_edges: Float[Array, " nz1"]
    dx: float = eqx.field(static=True)
    dy: float = eqx.field(static=True)

    def __init__(self, x, y, z_edges, *, dx=None, dy=None):
        self.x, self.dx = _axis("x", x, dx)
        self.y, self.dy = _axis("y", y, dy)
        ze = np.asarray(z_edges)
        if ze.ndim != 1 or ze.size < 2:
            raise ValueError(
                f"`z_edges` must be a 1-D array of at least 2 level edges, got shape {ze.shape}"
            )
        if not np.issubdtype(ze.dtype, np.number) or not np.all(np.isfinite(ze)):
            raise ValueError("`z_edges` must be finite numbers")
        if ze[0] != 0:
            raise ValueError(f"`z_edges[0]` must be 0 (the ground), got {ze[0]!r}")
        if not np.all(np.diff(ze) > 0):
            raise ValueError("`z_edges` must be strictly increasing")
        self.z_edges = jnp.asarray(z_edges)

    @property
    def nx(self) -> int:
        return self.x.shape[0]

    @property
    def ny(self) -> int:
        return self.y.shape[0]

    @property
    def nz(self) -> int:
        return self.z_edges.shape[0] - 1

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(nz, ny, nx)``, the shape of a state ``q``."""
        return (self.nz, self.ny, self.nx)

    @property
    def z(self) -> Float[Array, " nz"]:
        """Level centres, m: the midpoints of the edges."""
        return 0.5 * (self.z_edges[1:] + self.z_edges[:-1])

    @property
    def dz(self) -> Float[Array, " nz"]:
        """Level thicknesses, m."""
        return jnp.diff(self.z_edges)

    @property
    def x_edges(self) -> Float[Array, " nx1"]:
        """x of the cell faces, m, shape ``(nx + 1,)``."""
        return jnp.concatenate([self.x - 0.5 * self.dx, self.x[-1:] + 0.5 * self.dx])

    @property
    def y_edges(self) -> Float[Array, " ny1"]:
        """y of the cell faces, m, shape ``(ny + 1,)``."""
        return jnp.concatenate([self.y - 0.5 * self.dy, self.y[-1:] + 0.5 * self.dy])

    @property
    def cell_volume(self) -> Float[Array, "nz 1 1"]:
        """Cell volumes ``dx * dy * dz_k``, m^3, shape ``(nz, 1, 1)``."""
        return (self.dx * self.dy * self.dz)[:, None, None]

    def mass(self, q: Float[Array, "nz ny nx"]) -> Float[Array, ""]:
        """Tracer mass in the domain, kg: ``sum(q * cell_volume)`` for ``q`` in kg/m^3."""
        q = jnp.asarray(q)
        if q.shape != self.shape:
            raise ValueError(f"`q` must have the grid's shape {self.shape}, got {q.shape}")
        return jnp.sum(q * self.cell_volume.astype(q.dtype))
