r"""An uncertain wind: :class:`UncertainWindForwardModel` and :func:`with_uncertain_wind`.

The met a forward model is run under (a reanalysis, a forecast, a 10 m wind from a
weather station) is not the wind that carried the plume. For a point source the error in
the wind speed is the dominant term of the error of the inferred emission rate (Varon
et al. 2018, AMT 11, 5673, "Quantifying methane point sources from fine-scale satellite
observations of atmospheric methane plumes"), and an error in the direction moves the
plume's axis. Two scalar nuisance parameters carry this transport-model error:

* ``log_wind_scale`` (units ``"1"``): the true wind speed is the met's times
  ``k = exp(log_wind_scale)``;
* ``wind_dir_offset`` (units ``"degree"``): the true wind direction (meteorological,
  the direction the wind blows *from*, clockwise from north) is the met's plus ``δ``.

With ``u = -s sin d``, ``v = -s cos d`` (:class:`~plumax_core.MetField`), the wind of
speed ``k s`` from ``d + δ`` is the clockwise rotation of ``(u, v)`` by ``δ``, scaled:

$$
u' = k (u \cos\delta + v \sin\delta), \qquad v' = k (v \cos\delta - u \sin\delta),
$$

applied elementwise, so a uniform, gridded or time-varying met is perturbed the same way
everywhere (one speed factor and one rotation per scene). Only ``u`` and ``v`` change;
``w``, stability, boundary-layer height and the rest of the met are kept. Both maps are
smooth, so gradients with respect to the two parameters exist everywhere.

The priors are the caller's: both parameters appear in ``param_spec``, so any prior over
the spec covers them (e.g. ``sigma(log_wind_scale) ≈ 0.3`` for a reanalysis 10 m wind,
``sigma(wind_dir_offset)`` of some tens of degrees).
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

__all__ = ["UncertainWindForwardModel", "with_uncertain_wind"]

_SCALE = "log_wind_scale"
_OFFSET = "wind_dir_offset"


class UncertainWindForwardModel(AbstractForwardModel):
    """``model`` under the met's wind scaled and turned by two nuisance parameters.

    ``param_spec`` is the wrapped spec with two scalar, unbounded parameters appended
    last: ``log_wind_scale`` (units ``"1"``, the natural log of the factor on the wind
    speed) and ``wind_dir_offset`` (units ``"degree"``, added to the meteorological
    'from' direction, clockwise from north). A call builds a :class:`MetField` whose
    ``u`` and ``v`` (m/s, any shape the met allows; elementwise) are those of the speed
    ``wind_speed * exp(log_wind_scale)`` from ``wind_direction + wind_dir_offset``, and
    calls ``model`` with the other parameters under it. Each call takes one value of
    each nuisance parameter (shape ``()``); batches go through ``jax.vmap``, which works,
    as does ``jax.grad`` with respect to both. ``model_id`` is the wrapped model's id
    followed by ``[uncertain-wind]``.

    The two parameters stand for the transport-model error of the met source (the wind
    speed error is the dominant term of a point source's flux error, Varon et al. 2018,
    AMT 11, 5673); their priors are the caller's, over the returned spec.

    Attributes:
        model: the wrapped forward model.

    Raises:
        TypeError: ``model`` is not an :class:`AbstractForwardModel`.
        ValueError: ``model`` already has a parameter ``log_wind_scale`` or
            ``wind_dir_offset`` (the message names it).
    """

    model: AbstractForwardModel

    def __check_init__(self):
        check_nuisance(self.model, (_SCALE, _OFFSET), "uncertain wind")

    @property
    def param_spec(self) -> ParamSpec:
        scale = Param(
            _SCALE,
            units="1",
            description=(
                "natural log of the factor on the met's wind speed "
                "(true speed = met speed * exp(log_wind_scale))"
            ),
        )
        offset = Param(
            _OFFSET,
            units="degree",
            description=(
                "offset added to the met's wind direction (meteorological, from, "
                "clockwise from north)"
            ),
        )
        return ParamSpec((*self.model.param_spec.params, scale, offset))

    @property
    def model_id(self) -> str:
        return f"{self.model.model_id}[uncertain-wind]"

    def perturbed_met(
        self, met: MetField, log_wind_scale: Array | float, wind_dir_offset: Array | float
    ) -> MetField:
        """``met`` with its wind speed times ``exp(log_wind_scale)``, direction turned.

        The 'from' direction increases by ``wind_dir_offset`` degrees; only ``u`` and
        ``v`` change (same shapes as broadcast from the met's).

        Raises:
            ValueError: a nuisance value that is not a scalar (batch with ``jax.vmap``).
        """
        s = jnp.asarray(log_wind_scale)
        d = jnp.asarray(wind_dir_offset)
        for name, x in ((_SCALE, s), (_OFFSET, d)):
            if x.shape != ():
                raise ValueError(
                    f"`params[{name!r}]` must be a scalar per call, got shape {x.shape}; "
                    "batch the model with jax.vmap"
                )
        k = jnp.exp(s)
        rad = jnp.deg2rad(d)
        c, sn = jnp.cos(rad), jnp.sin(rad)
        u = k * (met.u * c + met.v * sn)
        v = k * (met.v * c - met.u * sn)
        return eqx.tree_at(lambda m: (m.u, m.v), met, (u, v))

    def __call__(self, params: Mapping[str, Array], met: MetField) -> Observations:
        """The wrapped model at the other parameters under the perturbed met."""
        inner = {k: v for k, v in params.items() if k not in (_SCALE, _OFFSET)}
        return self.model(inner, self.perturbed_met(met, params[_SCALE], params[_OFFSET]))


def with_uncertain_wind(model: AbstractForwardModel) -> UncertainWindForwardModel:
    """Add the wind-speed factor and direction offset of the met as parameters of ``model``.

    Shorthand for ``UncertainWindForwardModel(model)``; see
    :class:`UncertainWindForwardModel` for the contract and the errors raised.
    """
    return UncertainWindForwardModel(model)
