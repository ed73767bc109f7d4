"""Small compositions of library forward models (no physics lives here).

* :class:`PinnedForwardModel` — a forward model with some parameters held at known
  values (e.g. the release height ``H`` of a stack whose height is on record), so that
  inference runs over the remaining ones only.
* :class:`BlockAverage` — an :class:`plumax_core.AbstractObservationOperator` that
  block-averages a fine ``(ny, nx)`` image to coarse pixels and multiplies by an
  averaging kernel (a scalar or per-coarse-pixel sensitivity). Applied to a transport
  model with :func:`plumax_core.compose`, it turns one column image into what a coarser,
  less sensitive instrument sees.
"""

from collections.abc import Mapping

import equinox as eqx
import jax.numpy as jnp
import lineax as lx
import numpy as np
from jaxtyping import Array, Float

from plumax_core import (
    AbstractForwardModel,
    AbstractObservationOperator,
    MetField,
    Observations,
    ParamSpec,
    autodiff_linearization,
)

__all__ = ["BlockAverage", "PinnedForwardModel", "pin"]


class PinnedForwardModel(AbstractForwardModel):
    """``model`` with the parameters in ``fixed`` held at given values.

    Attributes:
        model: the wrapped forward model.
        fixed: ``{name: value}`` for the pinned parameters (physical units).

    ``param_spec`` is the wrapped spec without the pinned names, in the same order.
    """

    model: AbstractForwardModel
    fixed: dict[str, Array]

    def __init__(self, model: AbstractForwardModel, fixed: Mapping[str, float | Array]):
        if not isinstance(model, AbstractForwardModel):
            raise TypeError(f"`model` must be an AbstractForwardModel, got {type(model).__name__}")
        names = model.param_spec.names
        unknown = [k for k in fixed if k not in names]
        if unknown:
            raise ValueError(f"`fixed` names {unknown} are not parameters of the model {names}")
        if len(fixed) >= len(names):
            raise ValueError("`fixed` must leave at least one free parameter")
        self.model = model
        self.fixed = {k: jnp.asarray(v, dtype=float) for k, v in fixed.items()}
        for k, v in self.fixed.items():
            p = model.param_spec[k]
            arr = np.asarray(v)
            if arr.shape != p.shape or not np.all(np.isfinite(arr)):
                raise ValueError(f"`fixed[{k!r}]` must be finite with shape {p.shape}")
            if np.any((arr < p.lower) | (arr > p.upper)):
                raise ValueError(f"`fixed[{k!r}]` = {arr} is outside [{p.lower}, {p.upper}]")

    @property
    def param_spec(self) -> ParamSpec:
        return ParamSpec(tuple(p for p in self.model.param_spec.params if p.name not in self.fixed))

    @property
    def model_id(self) -> str:
        return f"{self.model.model_id}[pinned:{','.join(sorted(self.fixed))}]"

    def __call__(self, params: Mapping[str, Array], met: MetField) -> Observations:
        """The wrapped model at ``params`` merged with the pinned values."""
        full = dict(params)
        ref = params[self.param_spec.names[0]]
        for k, v in self.fixed.items():
            full[k] = jnp.broadcast_to(v.astype(jnp.result_type(ref, float)), jnp.shape(ref))
        return self.model(full, met)


def pin(model: AbstractForwardModel, **fixed: float) -> PinnedForwardModel:
    """``pin(plume, H=5.0)``: shorthand for :class:`PinnedForwardModel`."""
    return PinnedForwardModel(model, fixed)


class BlockAverage(AbstractObservationOperator):
    """Coarsen a ``(ny, nx)`` image by ``factor`` and apply an averaging kernel.

    ``out[j, i] = kernel[j, i] * mean(state[f j : f (j+1), f i : f (i+1)])`` with
    ``f = factor``; ``ny`` and ``nx`` must be multiples of ``f``. Coordinates ``x``,
    ``y`` of an :class:`Observations` state are block-averaged too.

    Attributes:
        factor: block size in fine pixels (``1`` = no coarsening). Static.
        kernel: averaging kernel (dimensionless sensitivity), scalar or
            ``(ny // f, nx // f)``; ``1`` = a perfect column sensor.
        instrument: label written on the output observations.
    """

    factor: int = eqx.field(static=True)
    kernel: Float[Array, "..."]
    instrument: str = eqx.field(static=True)

    def __init__(self, factor: int = 1, kernel: float | Array = 1.0, *, instrument: str = ""):
        if not isinstance(factor, int | np.integer) or factor < 1:
            raise ValueError(f"`factor` must be a positive int, got {factor!r}")
        k = np.asarray(kernel, dtype=float)
        if k.ndim not in (0, 2) or not np.all(np.isfinite(k)) or np.any(k <= 0):
            raise ValueError("`kernel` must be a finite, positive scalar or 2-D array")
        self.factor = int(factor)
        self.kernel = jnp.asarray(kernel, dtype=float)
        self.instrument = str(instrument)

    def _coarsen(self, x: Array) -> Array:
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
        out = self._coarsen(values)
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
