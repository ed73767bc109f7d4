r"""Sources and parameters of the Eulerian forward model (Tier III).

:class:`~plumax_transport.EulerianFV` has three ways of forcing the tracer equation and
one optional initial-condition control; this module builds their
:class:`~plumax_core.ParamSpec` and turns each into the engine's source term
``S`` (kg m⁻³ s⁻¹, shape ``(nz, ny, nx)``).

**Point source** (``source="point"``; the parameters are exactly
:data:`~plumax_transport.PLUME_PARAM_SPEC`: ``Q`` kg/s, ``x0``, ``y0`` m, ``H`` m, so the
model is a drop-in for the Gaussian plume): the emission rate is shared between the
cell centres around ``(x0, y0, H)`` with *cloud-in-cell* (area-weighting) weights
(Hockney & Eastwood 1988, *Computer Simulation Using Particles*, §5-3), bilinear in
``(x, y)`` over the four nearest centres and linear in ``z`` between the two nearest level
centres,

.. math::

   S_{kji} = Q\,\frac{w^z_k\, w^y_j\, w^x_i}{V_{kji}}, \qquad
   w^x_i = (1 - f)\,[i = i_0] + f\,[i = i_0 + 1], \quad
   f = \frac{x_0 - x_{i_0}}{\Delta x} \in [0, 1],

with ``V`` the cell volume. Between a domain face and the outermost centre the weight
is clamped (``f = 0`` or ``1``): the whole rate goes to the outermost cell; in
particular a release below the first level centre goes entirely into the lowest level.
The weights along each axis sum to one, so ``Σ S V = Q`` exactly (mass-exact), and they
are piecewise linear (differentiable almost everywhere) in ``x0``, ``y0`` and ``H``.
A source outside the grid (``x0``, ``y0`` beyond the outer faces, ``H`` above the top)
is refused (:func:`point_outside`).

**Gridded surface flux** (``source="gridded"``): the parameter ``emission``, shape
``(n_windows, ny, nx)``, kg m⁻² s⁻¹, is a flux through the ground into the lowest level,
``S_{0ji} = E_{ji}/Δz_0``; window ``j`` forces the model steps ``k`` with
``floor(k n_windows / n_steps) == j`` (:func:`window_index`). It is real-valued (no lower
bound: an inversion increment may be negative, in which case positivity of the field is
not claimed).

**Initial field** (``initial="param"``): the parameter ``initial``, shape
``(nz, ny, nx)``, kg m⁻³, the initial tracer mass density (the control of
strong-constraint 4D-Var on the initial condition).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from plumax_core import Param, ParamSpec

from ._eulerian_observe import level_bracket, uniform_bracket
from ._plume import PLUME_PARAM_SPEC

if TYPE_CHECKING:
    from ._fv_grid import FVGrid

#: The forcing kinds of :class:`~plumax_transport.EulerianFV`.
SOURCES = ("point", "gridded")


def param_spec(
    source: str,
    n_windows: int,
    shape: tuple[int, int, int],
    initial_param: bool,
    log_emission: bool = False,
) -> ParamSpec:
    """The model's parameters (module docstring).

    Args:
        source: ``"point"`` (:data:`PLUME_PARAM_SPEC`) or ``"gridded"`` (``emission``).
        n_windows: number of emission windows (gridded).
        shape: the grid's ``(nz, ny, nx)``.
        initial_param: add the ``initial`` field, ``(nz, ny, nx)`` kg/m³.
        log_emission: the gridded ``emission`` is positive (``lower=0``) and inferred in
            log space (``log=True``: a Gaussian prior on it is a lognormal prior on the
            flux, and the model is nonlinear in the control).
    """
    nz, ny, nx = shape
    if source == "point":
        params = list(PLUME_PARAM_SPEC.params)
    else:
        params = [
            Param(
                "emission",
                shape=(n_windows, ny, nx),
                units="kg/m^2/s",
                lower=0.0 if log_emission else -math.inf,
                log=log_emission,
                description="surface flux into the lowest level, per emission window",
            )
        ]
    if initial_param:
        params.append(
            Param(
                "initial",
                shape=(nz, ny, nx),
                units="kg/m^3",
                description="initial tracer mass density",
            )
        )
    return ParamSpec(tuple(params))


def initial_kind(initial, shape: tuple[int, int, int]) -> tuple[str, Array | None]:
    """``(kind, field)`` of the model's ``initial`` argument: ``("zero", None)`` for None,
    ``("param", None)`` for ``"param"``, ``("fixed", field)`` for an ``(nz, ny, nx)``
    array (kg/m³, finite); else ``ValueError`` naming ``initial``."""
    if initial is None:
        return "zero", None
    if isinstance(initial, str):
        if initial != "param":
            raise ValueError(
                f"`initial` must be None, 'param' or an array of shape {shape}, got {initial!r}"
            )
        return "param", None
    arr = np.asarray(initial, dtype=float)
    if arr.shape != shape:
        raise ValueError(
            f"`initial` must have the grid's shape {shape} (nz, ny, nx), got {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError("`initial` must be finite (kg/m^3)")
    return "fixed", jnp.asarray(arr)


def _weights(i0: Array, f: Array, n: int) -> Float[Array, " n"]:
    """The linear weights ``1 - f`` at ``i0`` and ``f`` at ``i0 + 1`` over ``n``
    centres (one centre: all the weight, ``f = 0``)."""
    idx = jnp.arange(n)
    return jnp.where(idx == i0, 1.0 - f, 0.0) + jnp.where(idx == i0 + 1, f, 0.0)


def deposit_point(
    grid: FVGrid, Q: Array, x0: Array, y0: Array, H: Array
) -> Float[Array, "nz ny nx"]:
    """The point source ``Q`` (kg/s) at ``(x0, y0, H)`` (m) as a source density,
    kg m⁻³ s⁻¹, on the grid (module docstring): ``Σ S V = Q`` exactly."""
    dtype = jnp.result_type(Q, x0, y0, H)
    x = jnp.asarray(grid.x, dtype)
    y = jnp.asarray(grid.y, dtype)
    z = jnp.asarray(grid.z, dtype)
    ix, _, fx = uniform_bracket(x0, x[0], grid.dx, grid.nx)
    iy, _, fy = uniform_bracket(y0, y[0], grid.dy, grid.ny)
    iz, _, fz = level_bracket(H, z)
    wx, wy, wz = _weights(ix, fx, grid.nx), _weights(iy, fy, grid.ny), _weights(iz, fz, grid.nz)
    vol = jnp.asarray(grid.cell_volume, dtype)
    return Q * wz[:, None, None] * wy[None, :, None] * wx[None, None, :] / vol


def point_outside(grid: FVGrid, x0, y0, H) -> Array:
    """True where the release point lies outside the grid: ``x0``/``y0`` beyond the
    outer faces or ``H`` above the top edge (``H < 0`` is outside the support)."""
    xe, ye = grid.x_edges, grid.y_edges
    top = grid.z_edges[-1]
    return (x0 < xe[0]) | (x0 > xe[-1]) | (y0 < ye[0]) | (y0 > ye[-1]) | (H > top)


def surface_flux(grid: FVGrid, flux: Float[Array, "ny nx"]) -> Float[Array, "nz ny nx"]:
    """A surface flux (kg m⁻² s⁻¹) as the source density of the lowest level,
    ``flux/Δz_0`` (kg m⁻³ s⁻¹), zero above."""
    dz = jnp.asarray(grid.dz, flux.dtype)
    lowest = (jnp.arange(grid.nz) == 0).astype(flux.dtype)
    return lowest[:, None, None] * (flux / dz[0])[None]


def window_index(k, n_windows: int, n_steps: int):
    """The emission window forcing model step ``k``: ``floor(k n_windows / n_steps)``
    (integer arithmetic, ``k`` may be traced)."""
    return (k * n_windows) // n_steps
