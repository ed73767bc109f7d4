r"""A multiplicative gain on the observations: :class:`GainForwardModel` and :func:`with_gain`.

A retrieval's sensitivity error (a mis-calibrated column averaging kernel, an error in
the spectroscopy or in the surface albedo) scales every retrieved enhancement of a scene
by one unknown factor ``g``. Adding ``log g`` as a parameter makes that error a nuisance
of the inversion, marginalised with the source parameters instead of biasing them:

$$
y = g \, h(\theta, \mathrm{met}), \qquad g = \exp(\mathrm{log\_gain}),
$$

with ``h`` the wrapped forward model. The gain is parameterised by its log, so that it stays
positive and a Gaussian prior on ``log_gain`` is a log-normal prior on ``g``; its width
comes from the retrieval's error model (e.g. a 5 % relative sensitivity error is
``sigma(log_gain) ≈ 0.05``). The prior is the caller's: the parameter appears in
``param_spec``, so any prior over the spec covers it.
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

__all__ = ["GainForwardModel", "with_gain"]


class GainForwardModel(AbstractForwardModel):
    """``model`` with its observations multiplied by an unknown gain ``exp(log_gain)``.

    ``param_spec`` is the wrapped spec with one scalar, unbounded parameter ``name``
    appended last (units ``"1"``: the natural log of the gain ``g``). A call passes the
    other parameters to ``model`` and returns its :class:`Observations` with
    ``values * exp(params[name])``; ``sigma``, ``noise``, ``mask``, ``dims``, ``coords``,
    ``kind`` and ``instrument`` are kept (the gain scales the signal, not the
    instrument noise). A batch of parameters (leading axes ``*batch`` on every
    parameter, ``values`` of shape ``(*batch, *S)``) scales each member by its own gain;
    ``jax.vmap`` over parameters and ``jax.grad`` with respect to ``name`` work.
    ``model_id`` is the wrapped model's id followed by ``[gain:<name>]``.

    The gain stands for a multiplicative sensitivity error of a retrieval; its prior
    (from the retrieval's error model) is the caller's, over the returned spec.

    Attributes:
        model: the wrapped forward model.
        name: the name of the log-gain parameter (a Python identifier, not already a
            parameter of ``model``).

    Raises:
        TypeError: ``model`` is not an :class:`AbstractForwardModel`.
        ValueError: ``name`` is already a parameter of ``model`` (the message names it)
            or is not a Python identifier.
    """

    model: AbstractForwardModel
    name: str = eqx.field(static=True, default="log_gain")

    def __check_init__(self):
        check_nuisance(self.model, (self.name,), "log-gain")

    @property
    def param_spec(self) -> ParamSpec:
        gain = Param(
            self.name,
            units="1",
            description=(
                "natural log of the multiplicative gain g of the observations "
                "(the retrieval's sensitivity error); g = exp(" + self.name + ")"
            ),
        )
        return ParamSpec((*self.model.param_spec.params, gain))

    @property
    def model_id(self) -> str:
        return f"{self.model.model_id}[gain:{self.name}]"

    def __call__(self, params: Mapping[str, Array], met: MetField) -> Observations:
        """The wrapped model at the other parameters, its values times ``exp(params[name])``."""
        inner = {k: v for k, v in params.items() if k != self.name}
        obs = self.model(inner, met)
        log_gain = jnp.asarray(params[self.name])
        # (*batch,) -> (*batch, 1, ..., 1) so that it scales the trailing (*S) axes
        extra = obs.values.ndim - log_gain.ndim
        if extra < 0:
            raise ValueError(
                f"`params[{self.name!r}]` of shape {log_gain.shape} has more axes than the "
                f"observations {obs.values.shape}"
            )
        gain = jnp.exp(log_gain).reshape(log_gain.shape + (1,) * extra)
        return obs.replace(values=obs.values * gain)


def with_gain(model: AbstractForwardModel, *, name: str = "log_gain") -> GainForwardModel:
    """Add an unknown multiplicative gain ``exp(name)`` on the observations of ``model``.

    Shorthand for ``GainForwardModel(model, name)``; see :class:`GainForwardModel` for
    the contract and the errors raised: ``with_gain(pin(plume, H=5.0))`` has the
    parameters of the pinned plume followed by ``log_gain``.
    """
    return GainForwardModel(model, name)
