"""Holding known parameters fixed: :class:`PinnedForwardModel` and :func:`pin`.

A forward model with some parameters pinned at known values is again a forward model,
over the remaining parameters only. It is how a stack of known height is inverted for
``(Q, x0, y0)`` with any transport tier: ``pin(GaussianPlume(geometry), H=5.0)``.
"""

from collections.abc import Mapping

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from ._forward import AbstractForwardModel
from ._met import MetField
from ._observations import Observations
from ._params import ParamSpec

__all__ = ["PinnedForwardModel", "pin"]


class PinnedForwardModel(AbstractForwardModel):
    """``model`` with the parameters in ``fixed`` held at given values.

    ``param_spec`` is the wrapped spec without the pinned names, in the same order; a
    call merges ``params`` with the pinned values (broadcast to the batch shape and
    float dtype of the first free parameter, so ``jax.vmap`` over free parameters works)
    and calls ``model``. ``model_id`` is the wrapped model's id followed by
    ``[pinned:<names>]``.

    Attributes:
        model: the wrapped forward model.
        fixed: ``{name: value}`` for the pinned parameters, in the parameters' physical
            units (e.g. ``{"H": 5.0}`` in m), each with the shape its
            :class:`~plumax_core.Param` declares.

    Raises:
        TypeError: ``model`` is not an :class:`AbstractForwardModel`.
        ValueError: a name in ``fixed`` that is not a parameter of ``model``, no free
            parameter left, or a pinned value that is not finite, has the wrong shape
            or lies outside the parameter's bounds (each message names the parameter).
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

    def __check_init__(self):
        for k, v in self.fixed.items():
            p = self.model.param_spec[k]
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
    """Hold parameters of ``model`` at known values: ``pin(plume, H=5.0)``.

    Shorthand for ``PinnedForwardModel(model, fixed)``; see :class:`PinnedForwardModel`
    for the contract and the errors raised.
    """
    return PinnedForwardModel(model, fixed)
