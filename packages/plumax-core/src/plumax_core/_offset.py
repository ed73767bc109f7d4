r"""An additive offset on the observations: :class:`OffsetForwardModel` and :func:`with_offset`.

A column map from a matched filter is measured against the scene's estimated background
mean; the error of that estimate is one unknown constant added to every pixel. Adding it
as a parameter makes it a nuisance of the inversion:

$$
y = h(\theta, \mathrm{met}) + b ,
$$

with ``h`` the wrapped forward model and ``b`` in the observations' units. The prior is
the caller's (for a retrieved map, ``N(0, offset_std²)`` from the retrieval's error model,
``plumax_rtm.RetrievalErrorModel``): the parameter appears in ``param_spec``.
"""

from collections.abc import Mapping

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array

from ._forward import AbstractForwardModel
from ._met import MetField
from ._nuisance_names import check_nuisance
from ._observations import Observations
from ._params import Param, ParamSpec

__all__ = ["OffsetForwardModel", "with_offset"]


class OffsetForwardModel(AbstractForwardModel):
    """``model`` with an unknown constant ``params[name]`` added to its observations.

    ``param_spec`` is the wrapped spec with one scalar, unbounded parameter ``name``
    appended last, in ``units`` (those of the observations). A call passes the other
    parameters to ``model`` and returns its :class:`Observations` with ``values +
    params[name]`` (everything else kept). A batch of parameters (leading axes
    ``*batch``) offsets each member by its own value; ``jax.vmap`` and ``jax.grad`` work.
    ``model_id`` is the wrapped model's id followed by ``[offset:<name>]``.

    Attributes:
        model: the wrapped forward model.
        name: the offset parameter's name (a Python identifier, not already a parameter
            of ``model``).
        units: the offset's units, those of the observations (e.g. ``"ppm m"``).

    Raises:
        TypeError: ``model`` is not an :class:`AbstractForwardModel`.
        ValueError: ``name`` is already a parameter of ``model`` (naming it) or is not
            a Python identifier.
    """

    model: AbstractForwardModel
    name: str = eqx.field(static=True, default="offset")
    units: str = eqx.field(static=True, default="1")

    def __check_init__(self):
        check_nuisance(self.model, (self.name,), "offset")

    @property
    def param_spec(self) -> ParamSpec:
        offset = Param(
            self.name,
            units=self.units,
            description="additive offset common to every observation (background error)",
        )
        return ParamSpec((*self.model.param_spec.params, offset))

    @property
    def model_id(self) -> str:
        return f"{self.model.model_id}[offset:{self.name}]"

    def __call__(self, params: Mapping[str, Array], met: MetField) -> Observations:
        """The wrapped model at the other parameters, plus ``params[name]``."""
        obs = self.model({k: v for k, v in params.items() if k != self.name}, met)
        b = jnp.asarray(params[self.name])
        extra = obs.values.ndim - b.ndim
        if extra < 0:
            raise ValueError(
                f"`params[{self.name!r}]` of shape {b.shape} has more axes than the "
                f"observations {obs.values.shape}"
            )
        return obs.replace(values=obs.values + b.reshape(b.shape + (1,) * extra))


def with_offset(
    model: AbstractForwardModel, *, name: str = "offset", units: str = "1"
) -> OffsetForwardModel:
    """Add an unknown constant ``name`` (in ``units``) to the observations of ``model``.

    Shorthand for ``OffsetForwardModel(model, name, units)``; see
    :class:`OffsetForwardModel`.
    """
    return OffsetForwardModel(model, name, units)
