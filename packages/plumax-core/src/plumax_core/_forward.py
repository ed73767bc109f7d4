"""The forward-model and observation-operator protocols, and their composition.

Every tier of plumax is an :class:`AbstractForwardModel`: a pure, traceable map
``(params, met) -> Observations``. Inference (vardax-lite), emulators
(plumax-emulate) and amortized flows (plumax-amortize) only ever see this protocol,
which is what lets each step of the six-step cycle be a substitution.
"""

import abc
from collections.abc import Callable, Mapping

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
from equinox import AbstractVar
from jaxtyping import Array

from ._met import MetField
from ._observations import Observations
from ._params import ParamSpec


class AbstractForwardModel(eqx.Module):
    """A physical (or emulated) model mapping parameters and met to observations.

    Attributes:
        param_spec: the names, shapes, units, bounds and transforms of ``params``.

    Contract for every implementation:

    * ``__call__(params, met)`` is pure and traceable: it works under ``jax.jit``,
      ``jax.vmap`` over a batch of params, and ``jax.grad`` with respect to every
      floating-point parameter;
    * ``params`` is a ``dict`` whose keys are ``param_spec.names`` and whose values have
      the shapes declared there;
    * the returned :class:`Observations` has the same ``kind``, ``dims`` and shape for
      every ``params`` (so emulators and flows can learn it).
    """

    param_spec: AbstractVar[ParamSpec]

    @abc.abstractmethod
    def __call__(self, params: Mapping[str, Array], met: MetField) -> Observations:
        """Simulate observations for ``params`` under ``met``."""

    @property
    def model_id(self) -> str:
        """A stable identifier of the model class: ``"module.QualName"``."""
        cls = type(self)
        return f"{cls.__module__}.{cls.__qualname__}"


class AbstractObservationOperator(eqx.Module):
    """Maps a model state (e.g. a column-enhancement image) to observations.

    Contract for every implementation:

    * ``__call__(state)`` is pure and traceable; ``state`` is an :class:`Observations`
      or an array;
    * ``linearize(state)`` returns the Jacobian of ``__call__(state).values`` with
      respect to the state's values at ``state``, as a lineax operator whose ``mv`` is
      a JVP and whose ``transpose().mv`` is the corresponding VJP (it must pass
      :func:`plumax_core.gates.dot_product_test`). Implementations without an analytic
      Jacobian return :func:`autodiff_linearization` of themselves.
    """

    @abc.abstractmethod
    def __call__(self, state: Observations | Array) -> Observations:
        """Apply the operator."""

    @abc.abstractmethod
    def linearize(self, state: Observations | Array) -> lx.AbstractLinearOperator:
        """The Jacobian at ``state`` (acting on arrays shaped like the state's values)."""

    @property
    def operator_id(self) -> str:
        cls = type(self)
        return f"{cls.__module__}.{cls.__qualname__}"


def _state_values(state: Observations | Array) -> Array:
    return state.values if isinstance(state, Observations) else jnp.asarray(state)


def autodiff_linearization(
    fn: Callable[[Observations | Array], Observations],
    state: Observations | Array,
) -> lx.AbstractLinearOperator:
    """Jacobian of ``fn(state).values`` w.r.t. the state's values, by ``jax.linearize``.

    The forward pass is evaluated once; ``mv`` is a JVP and ``transpose().mv`` a VJP
    (via ``jax.linear_transpose``), so no dense matrix is ever formed unless
    ``as_matrix()`` is called.
    """
    x0 = _state_values(state)

    def values_of(x):
        s = state.replace(values=x) if isinstance(state, Observations) else x
        return fn(s).values

    _, jvp = jax.linearize(values_of, x0)
    structure = jax.eval_shape(lambda: x0)
    return lx.FunctionLinearOperator(jvp, structure)


class ComposedForwardModel(AbstractForwardModel):
    """``operator(forward(params, met))``: e.g. Tier IV = transport then radiative transfer.

    Built by :func:`compose`. Its ``param_spec`` is the transport model's.
    """

    forward: AbstractForwardModel
    operator: AbstractObservationOperator

    @property
    def param_spec(self) -> ParamSpec:
        return self.forward.param_spec

    def __call__(self, params: Mapping[str, Array], met: MetField) -> Observations:
        return self.operator(self.forward(params, met))


def compose(
    forward: AbstractForwardModel, operator: AbstractObservationOperator
) -> ComposedForwardModel:
    """Compose a forward model with an observation operator into a new forward model."""
    if not isinstance(forward, AbstractForwardModel):
        raise TypeError(f"`forward` must be an AbstractForwardModel, got {type(forward).__name__}")
    if not isinstance(operator, AbstractObservationOperator):
        raise TypeError(
            f"`operator` must be an AbstractObservationOperator, got {type(operator).__name__}"
        )
    return ComposedForwardModel(forward, operator)


def forward_flat(
    model: AbstractForwardModel, met: MetField, *, unconstrained: bool = False
) -> Callable[[Array], Array]:
    """``theta (D,) -> values.ravel()``: the model as a function of a flat vector.

    With ``unconstrained=True`` the input is the unconstrained vector of the model's
    ``param_spec`` (what samplers and flows work in). Useful for Jacobians and
    emulator training; vmap it for batches.
    """
    spec = model.param_spec

    def fn(theta: Array) -> Array:
        params = spec.from_unconstrained(theta) if unconstrained else spec.unflatten(theta)
        return model(params, met).values.ravel()

    return fn
