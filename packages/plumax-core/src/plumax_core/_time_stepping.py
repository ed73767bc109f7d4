"""The time-stepping forward-model contract (4D-Var models, Eulerian transport).

A time-stepping model integrates a state ``x`` from an initial state set by the
parameters and observes it after each step:

.. math::

    x_0 = x_0(\\theta), \\qquad x_{k+1} = M_k(x_k; \\theta) + \\eta_k, \\qquad
    y_k = h_k(x_{k+1}), \\qquad k = 0, \\dots, K - 1,

with ``eta_k`` an additive model error (zero in strong-constraint 4D-Var). The
parameters enter both the initial state (e.g. an initial concentration) and every step
(e.g. an emission field forcing the tracer equation). Inference (vardax-lite's 4D-Var)
and transport (plumax-transport's Eulerian tier) both build on this contract, so it
lives in core.
"""

import abc

import jax
import jax.numpy as jnp
from equinox import AbstractVar
from jaxtyping import Array, Float

from ._forward import AbstractForwardModel
from ._observations import Observations


class AbstractTimeSteppingModel(AbstractForwardModel):
    """A forward model that integrates a state in time and observes it after each step.

    Attributes:
        n_steps: number of time steps ``K`` (static).

    Contract: ``initial_state(params, met)`` returns the ``(n,)`` state ``x_0``;
    ``step(x, k, met, params)`` returns ``x_{k+1} = M_k(x; params)`` (pure,
    differentiable in ``x`` and ``params``); ``observe(x, k, met)`` returns the
    ``(p,)`` observations of ``x_{k+1}``. ``simulate(params, eta, met)`` returns the
    ``(K, p)`` observations with additive model errors ``eta (K, n)`` (None = 0);
    ``__call__`` returns ``simulate(params, None, met)`` with dims ``("time", "obs")``
    (a subclass may reshape it, e.g. to its geometry's dims, keeping the row-major
    order of the ``(K, p)`` values).

    Memory: :meth:`simulate` runs one ``jax.lax.scan`` whose step is wrapped in
    ``jax.checkpoint``, so reverse mode (the adjoint) keeps the ``K`` states ``x_k``
    and recomputes each step's internals in the backward pass: memory ``O(K n)``
    plus one step's residuals, whatever a step does inside (e.g. sub-steps).
    """

    n_steps: AbstractVar[int]

    @abc.abstractmethod
    def initial_state(self, params, met) -> Float[Array, " n"]:
        """``x_0`` from the parameters."""

    @abc.abstractmethod
    def step(self, x: Float[Array, " n"], k, met, params) -> Float[Array, " n"]:
        """One model step ``x_{k+1} = M_k(x_k; params)``."""

    @abc.abstractmethod
    def observe(self, x: Float[Array, " n"], k, met) -> Float[Array, " p"]:
        """Observation operator applied to ``x_{k+1}``."""

    @property
    def kind(self) -> str:
        return "generic"

    def state_size(self, met) -> int:
        """``n``, the length of the state vector."""
        p = self.param_spec.unflatten(jnp.zeros(self.param_spec.size))
        return jax.eval_shape(lambda: self.initial_state(p, met)).shape[0]

    def simulate(self, params, eta: Float[Array, "K n"] | None, met) -> Float[Array, "K p"]:
        """The ``(K, p)`` observations of the run with model errors ``eta`` (None = 0)."""
        x0 = self.initial_state(params, met)
        if eta is None:
            eta = jnp.zeros((self.n_steps,) + x0.shape, x0.dtype)

        @jax.checkpoint
        def body(x, inp):
            k, e = inp
            x = self.step(x, k, met, params) + e
            return x, self.observe(x, k, met)

        _, ys = jax.lax.scan(body, x0, (jnp.arange(self.n_steps), eta))
        return ys

    def __call__(self, params, met) -> Observations:
        return Observations(self.simulate(params, None, met), kind=self.kind, dims=("time", "obs"))
