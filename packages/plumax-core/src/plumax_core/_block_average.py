"""Block averaging with an averaging kernel: a coarser, less sensitive view of an image.

``out[j, i] = a[j, i] · mean(state[f j : f (j+1), f i : f (i+1)])`` with block size ``f``
and averaging kernel ``a`` (dimensionless sensitivity, scalar or one per coarse pixel).
Composed with a column-image forward model (:func:`plumax_core.compose`) it is what a
coarser instrument sees (the instruments of a fused Tier IV inversion); with ``a = 1``
it is the mean of ``f x f`` point samples per sensor pixel (pixel averaging).
"""

import equinox as eqx
import jax.numpy as jnp
import lineax as lx
import numpy as np
from jaxtyping import Array, Float

from ._forward import AbstractObservationOperator, autodiff_linearization
from ._observations import Observations

__all__ = ["BlockAverage"]


class BlockAverage(AbstractObservationOperator):
    """Coarsen a ``(ny, nx)`` image by ``factor`` and apply an averaging kernel.

    ``out[j, i] = kernel[j, i] * mean(state[f j : f (j+1), f i : f (i+1)])`` with
    ``f = factor``; ``ny`` and ``nx`` must be multiples of ``f``. Coordinates ``x``,
    ``y`` of an :class:`Observations` state are block-averaged too; the output keeps the
    state's ``kind`` (``"generic"`` for a bare array) and has dims ``("y", "x")``.
    The operator is linear, so :meth:`linearize` is exact.

    Attributes:
        factor: block size in fine pixels (``1`` = no coarsening). Static.
        kernel: averaging kernel (dimensionless sensitivity), scalar or
            ``(ny // f, nx // f)``; ``1`` = a perfect column sensor.
        instrument: label written on the output observations. Static.

    Raises:
        ValueError: ``factor`` not a positive int, or a ``kernel`` that is not a finite,
            positive scalar or 2-D array (at construction); an image that is not 2-D, not
            a multiple of ``factor``, or whose coarse shape differs from a 2-D
            ``kernel`` (at the call).
    """

    factor: int = eqx.field(static=True)
    kernel: Float[Array, "..."]
    instrument: str = eqx.field(static=True)

    def __init__(self, factor: int = 1, kernel: float | Array = 1.0, *, instrument: str = ""):
        if isinstance(factor, bool) or not isinstance(factor, int | np.integer) or factor < 1:
            raise ValueError(f"`factor` must be a positive int, got {factor!r}")
        k = np.asarray(kernel, dtype=float)
        if k.ndim not in (0, 2) or not np.all(np.isfinite(k)) or np.any(k <= 0):
            raise ValueError("`kernel` must be a finite, positive scalar or 2-D array")
        self.factor = int(factor)
        self.kernel = jnp.asarray(kernel, dtype=float)
        self.instrument = str(instrument)

    def coarsen(self, x: Float[Array, "... ny nx"]) -> Float[Array, "... ny/f nx/f"]:
        """The block mean over the last two axes (no kernel)."""
        f = self.factor
        ny, nx = x.shape[-2:]
        if ny % f or nx % f:
            raise ValueError(f"image shape {(ny, nx)} is not a multiple of `factor` = {f}")
        return x.reshape(x.shape[:-2] + (ny // f, f, nx // f, f)).mean(axis=(-3, -1))

    def __call__(self, state: Observations | Array) -> Observations:
        """Block-average then scale by ``kernel``; shape ``(ny // f, nx // f)``."""
        if isinstance(state, Observations):
            values, kind, coords = state.values, state.kind, state.coords
        else:
            values, kind, coords = jnp.asarray(state), "generic", {}
        if values.ndim != 2:
            raise ValueError(f"BlockAverage needs a 2-D (ny, nx) image, got shape {values.shape}")
        out = self.coarsen(values)
        if self.kernel.ndim and self.kernel.shape != out.shape:
            raise ValueError(f"`kernel` has shape {self.kernel.shape}; the image is {out.shape}")
        out = self.kernel * out
        new_coords = {}
        f = self.factor
        for name in ("y", "x"):
            if name in coords:
                new_coords[name] = coords[name].reshape(-1, f).mean(axis=1)
        return Observations(
            out, kind=kind, dims=("y", "x"), coords=new_coords, instrument=self.instrument
        )

    def linearize(self, state: Observations | Array) -> lx.AbstractLinearOperator:
        """Exact Jacobian (the operator is linear), via JVP/VJP."""
        return autodiff_linearization(self, state)
