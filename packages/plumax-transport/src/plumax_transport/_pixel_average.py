r"""Pixel averaging: what a sensor pixel sees of a plume narrower than the pixel.

The transport models sample the column at points (the pixel centres of a grid
geometry). A 60-m pixel integrates a plume that is only metres wide near the source,
so its value is the *mean* of the column over the pixel, not the value at its centre.
:class:`PixelAveraged` approximates that mean by the midpoint rule on ``f x f``
sub-pixel centres:

$$
\bar\Omega_{ji} = \frac{1}{f^2} \sum_{a,b=0}^{f-1}
\Omega\!\left(x_i + \Big(\tfrac{b - (f-1)/2}{f}\Big)\Delta x,\;
y_j + \Big(\tfrac{a - (f-1)/2}{f}\Big)\Delta y\right),
$$

where ``Δx, Δy`` are the (even) pixel spacings. The mean of a smooth column converges as
``O(f^{-2})``; the crosswind integral of a plume is recovered even where the plume is
narrower than a pixel (point sampling aliases it).

It wraps *any* transport tier whose model samples a grid geometry
(``model.geometry`` is an :class:`~plumax_transport.AbstractGridGeometry`): the wrapped
model is the same model evaluated on :func:`supersample` of its geometry, and the
parameters (``Q, x0, y0, H`` for a point source) are unchanged, so inference,
emulators and pipelines written for the point-sampled model run on the averaged one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from plumax_core import AbstractForwardModel, BlockAverage, MetField, Observations, ParamSpec
from plumax_core.validation import check_coordinate

from ._geometry import AbstractGridGeometry

__all__ = ["PixelAveraged", "supersample"]


def _factor(factor) -> int:
    if isinstance(factor, bool) or not isinstance(factor, int | np.integer) or factor < 1:
        raise ValueError(
            f"`factor` (sub-samples per pixel side) must be an int >= 1, got {factor!r}"
        )
    return int(factor)


def _subpixel_axis(name: str, centres, f: int) -> np.ndarray:
    """``(n f,)`` sub-pixel centres (float64) of an evenly spaced axis of pixel centres."""
    c = np.asarray(centres, float)
    if c.ndim != 1 or c.size < 2:
        raise ValueError(
            f"`geometry.{name}` must hold at least 2 pixel centres (the pixel size is "
            f"their spacing), got shape {c.shape}"
        )
    check_coordinate(f"geometry.{name}", np.asarray(centres), evenly_spaced=True)
    step = float(np.mean(np.diff(c)))
    off = (np.arange(f) - (f - 1) / 2) / f
    return (c[:, None] + off[None, :] * step).ravel()


def supersample(geometry: AbstractGridGeometry, factor: int) -> AbstractGridGeometry:
    """The same geometry on ``factor x factor`` sub-pixel centres per pixel.

    Sub-pixel centres of pixel ``i`` are ``x_i + ((b - (f - 1)/2) / f) Δx`` for
    ``b = 0..f-1`` (and likewise in y): the midpoints of an even ``f x f`` split of the
    pixel, so their mean is the pixel centre. Every other attribute (units, ``z_top``,
    ``column_height``) is kept.

    Args:
        geometry: a grid geometry (:class:`~plumax_transport.ColumnImage`,
            :class:`~plumax_transport.ColumnAverage`) with at least 2 evenly spaced pixel
            centres per axis (m).
        factor: sub-samples per pixel side, an int >= 1 (1 returns ``geometry``).

    Returns:
        A geometry of the same type with ``(ny f, nx f)`` points.

    Raises:
        TypeError: ``geometry`` is not a grid geometry.
        ValueError: ``factor`` not an int >= 1, or an axis with fewer than 2 centres or
            not evenly spaced (core's coordinate rule,
            :func:`plumax_core.validation.check_coordinate`).
    """
    if not isinstance(geometry, AbstractGridGeometry):
        raise TypeError(
            f"`geometry` must be a grid geometry (ColumnImage, ColumnAverage), got "
            f"{type(geometry).__name__}"
        )
    f = _factor(factor)
    if f == 1:
        return geometry
    fx = _subpixel_axis("x", geometry.x, f)
    fy = _subpixel_axis("y", geometry.y, f)
    fine = eqx.tree_at(lambda g: (g.x, g.y), geometry, (jnp.asarray(fx), jnp.asarray(fy)))
    for name in ("x", "y"):  # after the cast to the stored dtype
        check_coordinate(f"supersampled geometry.{name}", np.asarray(getattr(fine, name)))
    return fine


class PixelAveraged(AbstractForwardModel):
    """A transport model's grid output averaged over each sensor pixel.

    ``PixelAveraged(GaussianPlume(geometry), 4)`` is a drop-in replacement for
    ``GaussianPlume(geometry)``: same ``param_spec``, same output kind, shape
    ``(ny, nx)``, dims and coordinates (``geometry``'s pixel centres), but each value is
    the mean of ``factor x factor`` point samples inside the pixel (see the module
    docstring). Any tier whose model has a ``geometry`` field holding a grid geometry
    works (the Gaussian plume and puff today); the model's own settings (terrain,
    ``strict``, ``check_upwind``, ...) are kept. A model with a ``crosswind_cell``
    field (:class:`~plumax_transport.GaussianPlume`) gets the sub-pixel width there, so
    each sub-sample is its cell's exact crosswind mean rather than a point value (a plume
    narrower than a sub-pixel then moves smoothly with the source position).

    Attributes:
        model: the wrapped model, rebuilt on ``supersample(geometry, factor)``.
        geometry: the sensor pixels (the wrapped model's original geometry).
        factor: sub-samples per pixel side. Static.
        average: the block mean over ``factor x factor`` sub-pixels
            (:class:`plumax_core.BlockAverage` with a unit kernel).

    Raises:
        TypeError: ``model`` is not a forward model, or has no grid ``geometry``.
        ValueError: ``factor`` not an int >= 1, or a geometry that cannot be
            supersampled (see :func:`supersample`).
    """

    model: AbstractForwardModel
    geometry: AbstractGridGeometry
    factor: int = eqx.field(static=True)
    average: BlockAverage

    def __init__(self, model: AbstractForwardModel, factor: int):
        if not isinstance(model, AbstractForwardModel):
            raise TypeError(f"`model` must be an AbstractForwardModel, got {type(model).__name__}")
        geometry = getattr(model, "geometry", None)
        if not isinstance(geometry, AbstractGridGeometry):
            raise TypeError(
                f"`model` must sample a grid geometry (a `geometry` field holding a ColumnImage "
                f"or ColumnAverage) to be pixel-averaged, got {type(geometry).__name__}"
            )
        f = _factor(factor)
        fine = supersample(geometry, f)
        inner = model if f == 1 else eqx.tree_at(lambda m: m.geometry, model, fine)
        if f > 1 and hasattr(inner, "crosswind_cell"):  # a model that averages across the wind
            cell = float(np.mean(np.diff(np.asarray(geometry.y, float)))) / f
            inner = dataclasses.replace(inner, crosswind_cell=cell)
        self.model = inner
        self.geometry = geometry
        self.factor = f
        self.average = BlockAverage(f)

    @property
    def param_spec(self) -> ParamSpec:
        return self.model.param_spec

    @property
    def model_id(self) -> str:
        return f"{self.model.model_id}[pixel-averaged:{self.factor}x{self.factor}]"

    def __call__(self, params: Mapping[str, Array], met: MetField) -> Observations:
        """Mean of the sub-pixel samples per pixel, on ``geometry``'s pixel centres."""
        fine = self.model(params, met)
        out = self.average(fine)
        return out.replace(
            coords={"y": self.geometry.y, "x": self.geometry.x}, instrument=fine.instrument
        )
