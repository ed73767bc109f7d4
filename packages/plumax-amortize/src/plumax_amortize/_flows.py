"""Conditional normalizing flows (flowjax) used as posterior estimators.

A :class:`FlowConfig` is the *static* recipe of a conditional flow ``q(z | e)`` over the
standardised unconstrained parameters ``z`` (dimension D) given an embedding ``e`` of the
observations (dimension E). Keeping the recipe separate from the weights lets a trained
estimator be checkpointed as plain arrays (flowjax flows hold closures, which cannot be
pickled by reference) and rebuilt exactly from the recipe.

Flow families:

* ``"maf"`` — masked autoregressive flow with affine transformers (Papamakarios, Pavlakou
  & Murray 2017, "Masked autoregressive flow for density estimation"), the flow used for
  NPE by Papamakarios & Murray (2016) and Greenberg, Nonnenmacher & Macke (2019);
* ``"maf_rqs"`` — masked autoregressive flow with monotone rational-quadratic-spline
  transformers (Durkan, Bekasov, Murray & Papamakarios 2019, "Neural spline flows");
* ``"coupling_rqs"`` — coupling flow with rational-quadratic-spline transformers
  (Durkan et al. 2019); needs D >= 2.
"""

from __future__ import annotations

from typing import Any, Literal

import equinox as eqx
import jax.numpy as jnp
from flowjax.bijections import RationalQuadraticSpline
from flowjax.distributions import AbstractDistribution, Normal
from flowjax.flows import coupling_flow, masked_autoregressive_flow
from jaxtyping import PRNGKeyArray

FlowKind = Literal["maf", "maf_rqs", "coupling_rqs"]
_KINDS: tuple[str, ...] = ("maf", "maf_rqs", "coupling_rqs")


class FlowConfig(eqx.Module):
    """Static hyperparameters of a conditional flow.

    Attributes:
        kind: ``"maf"``, ``"maf_rqs"`` or ``"coupling_rqs"`` (see the module docstring).
        flow_layers: number of flow layers (each followed by a permutation).
        nn_width: hidden width of each conditioner network.
        nn_depth: hidden layers of each conditioner network.
        knots: spline knots (spline kinds only).
        interval: the spline acts on ``[-interval, interval]`` of the *standardised*
            parameters and is the identity outside it (spline kinds only).
    """

    kind: str = eqx.field(static=True, default="maf")
    flow_layers: int = eqx.field(static=True, default=4)
    nn_width: int = eqx.field(static=True, default=64)
    nn_depth: int = eqx.field(static=True, default=1)
    knots: int = eqx.field(static=True, default=8)
    interval: float = eqx.field(static=True, default=5.0)

    def __check_init__(self):
        if self.kind not in _KINDS:
            raise ValueError(f"`kind` must be one of {_KINDS}, got {self.kind!r}")
        for name in ("flow_layers", "nn_width", "knots"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"`{name}` must be a positive int, got {v!r}")
        if not isinstance(self.nn_depth, int) or self.nn_depth < 0:
            raise ValueError(f"`nn_depth` must be an int >= 0, got {self.nn_depth!r}")
        if not float(self.interval) > 0:
            raise ValueError(f"`interval` must be > 0, got {self.interval!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "flow_layers": self.flow_layers,
            "nn_width": self.nn_width,
            "nn_depth": self.nn_depth,
            "knots": self.knots,
            "interval": float(self.interval),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FlowConfig:
        return cls(**d)


def build_flow(
    config: FlowConfig, dim: int, cond_dim: int, *, key: PRNGKeyArray
) -> AbstractDistribution:
    """A fresh flowjax conditional flow ``q(z | e)``, ``z`` in R^dim, ``e`` in R^cond_dim.

    The base distribution is a standard normal. flowjax's ``invert=True`` is used: the
    density (the training loss) is one network pass per layer, and sampling (the
    amortized inference path) inverts autoregressive layers sequentially, D passes of
    a small network per layer, which is cheap for the handful of source parameters.

    Raises:
        ValueError: ``dim < 1``, ``cond_dim < 1``, or ``"coupling_rqs"`` with ``dim < 2``.
    """
    if not isinstance(config, FlowConfig):
        raise TypeError(f"`config` must be a FlowConfig, got {type(config).__name__}")
    if dim < 1 or cond_dim < 1:
        raise ValueError(f"`dim` and `cond_dim` must be >= 1, got {dim} and {cond_dim}")
    base = Normal(jnp.zeros(dim))
    common = dict(
        base_dist=base,
        cond_dim=cond_dim,
        flow_layers=config.flow_layers,
        nn_width=config.nn_width,
        nn_depth=config.nn_depth,
        invert=True,
    )
    spline = RationalQuadraticSpline(knots=config.knots, interval=float(config.interval))
    if config.kind == "maf":
        return masked_autoregressive_flow(key, **common)
    if config.kind == "maf_rqs":
        return masked_autoregressive_flow(key, transformer=spline, **common)
    if dim < 2:
        raise ValueError("`coupling_rqs` needs at least 2 parameters (`dim` >= 2); use 'maf_rqs'")
    return coupling_flow(key, transformer=spline, **common)
