"""Priors over forward-model parameters."""

import abc
import math
from collections.abc import Mapping

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import lineax as lx
from equinox import AbstractVar
from jaxtyping import Array, Float, PRNGKeyArray

from ._params import ParamSpec
from ._validation import (
    as_float_array,
    check_covariance,
    check_finite,
    covariance_error_if,
    positive_error_if,
)


class AbstractPrior(eqx.Module):
    """A prior distribution over a forward model's parameters.

    Attributes:
        param_spec: the parameter layout the prior is defined on.

    Contract for every implementation:

    * ``sample(key, n)`` returns a params dict whose values have a leading axis ``n``
      and lie inside ``param_spec``'s support; the same key gives the same draws;
    * ``log_prob(params)`` is the log density *in physical units* (with respect to
      Lebesgue measure on the constrained parameters), accepts leading batch axes, and
      is ``-inf`` outside the support;
    * ``log_prob_unconstrained(z)`` is the log density of the flat unconstrained vector
      ``z`` (what samplers and flows work with):
      ``log_prob(x(z)) + log|dx/dz|``.
    """

    param_spec: AbstractVar[ParamSpec]

    @abc.abstractmethod
    def sample(self, key: PRNGKeyArray, n: int) -> dict[str, Array]:
        """``n`` independent draws as a params dict with leading axis ``n``."""

    @abc.abstractmethod
    def log_prob_unconstrained(self, z: Float[Array, "*batch D"]) -> Float[Array, "*batch"]:
        """Log density of the unconstrained flat vector ``z``."""

    @abc.abstractmethod
    def log_prob(self, params: Mapping[str, Array]) -> Float[Array, "*batch"]:
        """Log density of ``params`` in physical units."""


class GaussianPrior(AbstractPrior):
    """A Gaussian in the unconstrained space of ``param_spec``.

    ``z ~ N(mean, cov)`` and ``x = T(z)`` with ``T`` the spec's transforms: a
    log-transformed parameter is lognormal, a bounded one logit-normal, an unbounded
    one Gaussian. ``cov`` is any symmetric positive-definite lineax operator (diagonal,
    dense, Kronecker, low-rank update, ...); sampling uses its structured Cholesky
    factor and ``log_prob`` its structured solve and log-determinant
    (:mod:`plumax_core.linalg`).

    Attributes:
        mean: ``(D,)`` mean of ``z``.
        cov: ``D x D`` covariance of ``z``, checked symmetric positive definite by
            :func:`plumax_core.validation.check_covariance` (in full up to D = 512,
            by probes above); a traced diagonal or dense ``cov`` is checked at run
            time (finite, positive variances).
        param_spec: the parameter layout.
    """

    mean: Float[Array, " D"]
    cov: lx.AbstractLinearOperator
    param_spec: ParamSpec

    def __init__(self, mean, cov, param_spec: ParamSpec):
        self.mean = as_float_array("mean", mean)
        if not isinstance(cov, lx.AbstractLinearOperator):
            arr = as_float_array("cov", cov)
            if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
                raise ValueError(f"`cov` must be a square matrix or operator, got {arr.shape}")
            cov = lx.MatrixLinearOperator(arr, lx.positive_semidefinite_tag)
        self.cov = covariance_error_if("cov", cov)
        self.param_spec = param_spec

    def __check_init__(self):
        if not isinstance(self.param_spec, ParamSpec):
            raise TypeError("`param_spec` must be a ParamSpec")
        d = self.param_spec.size
        if self.mean.shape != (d,):
            raise ValueError(f"`mean` must have shape ({d},) for this spec, got {self.mean.shape}")
        check_finite("mean", self.mean)
        if self.cov.in_size() != d or self.cov.out_size() != d:
            raise ValueError(
                f"`cov` must be {d}x{d}, got {self.cov.out_size()}x{self.cov.in_size()}"
            )
        check_covariance("cov", self.cov)

    @classmethod
    def from_std(cls, param_spec: ParamSpec, mean, std) -> "GaussianPrior":
        """Independent Gaussian in unconstrained space with standard deviations ``std``.

        ``std`` (broadcastable to ``(D,)``) must be finite and > 0: a concrete value is
        checked now (``ValueError``), a traced one at run time (an error, never the
        log-density of ``|std|``).
        """
        std = positive_error_if("std", as_float_array("std", std))
        d = (param_spec.size,)
        std = jnp.broadcast_to(std, d)
        mean = jnp.broadcast_to(as_float_array("mean", mean), d)
        return cls(mean, lx.DiagonalLinearOperator(std**2), param_spec)

    def log_prob_unconstrained(self, z: Float[Array, "*batch D"]) -> Float[Array, "*batch"]:
        from .linalg import logdet, solve

        z = jnp.asarray(z)
        d = self.param_spec.size
        r = z - self.mean
        flat = r.reshape(-1, d)
        quad = jax.vmap(lambda v: v @ solve(self.cov, v))(flat).reshape(z.shape[:-1])
        logp_z = -0.5 * (quad + logdet(self.cov) + d * math.log(2 * math.pi))
        return logp_z

    def log_prob(self, params: Mapping[str, Array]) -> Float[Array, "*batch"]:
        spec = self.param_spec
        inside = spec.in_support(params)
        z = spec.to_unconstrained(params)
        # outside the support z is NaN; evaluate at a safe point and mask afterwards
        z = jnp.where(inside[..., None], z, self.mean)
        lp = self.log_prob_unconstrained(z) - spec.log_abs_det_jacobian(z)
        return jnp.where(inside, lp, -jnp.inf)

    def sample_unconstrained(self, key: PRNGKeyArray, n: int) -> Float[Array, "n D"]:
        from .linalg import cholesky

        eps = jr.normal(key, (n, self.param_spec.size), dtype=self.mean.dtype)
        chol = cholesky(self.cov)
        return self.mean + jax.vmap(chol.mv)(eps)

    def sample(self, key: PRNGKeyArray, n: int) -> dict[str, Array]:
        return self.param_spec.from_unconstrained(self.sample_unconstrained(key, n))


class MixturePrior(AbstractPrior):
    """A finite mixture ``p(x) = sum_k w_k p_k(x)`` of priors on one parameter layout.

    Uses: a multimodal prior, and a *defensive* importance-sampling proposal
    ``alpha * prior + (1 - alpha) * q`` (Hesterberg 1995), whose importance weights
    ``prior / proposal`` are bounded by ``1 / alpha`` however poorly ``q`` matches.

    Attributes:
        components: the K component priors, all on the same ``param_spec``.
        weights: ``(K,)`` mixture weights (normalised to sum to 1 on construction).
        param_spec: the parameter layout (that of the components).
    """

    components: tuple[AbstractPrior, ...]
    weights: Float[Array, " K"]
    param_spec: ParamSpec

    def __init__(self, components, weights=None):
        components = tuple(components)
        if not components:
            raise ValueError("`components` must hold at least one prior")
        for i, c in enumerate(components):
            if not isinstance(c, AbstractPrior):
                raise TypeError(
                    f"`components[{i}]` must be an AbstractPrior, got {type(c).__name__}"
                )
        spec = components[0].param_spec
        for i, c in enumerate(components[1:], start=1):
            if c.param_spec != spec:
                raise ValueError(
                    f"`components[{i}].param_spec` differs from `components[0].param_spec`"
                )
        if weights is None:
            weights = jnp.full(len(components), 1.0 / len(components))
        weights = as_float_array("weights", weights)
        if weights.shape != (len(components),):
            raise ValueError(f"`weights` must have shape ({len(components)},), got {weights.shape}")
        weights = positive_error_if("weights", weights)
        self.components = components
        self.weights = weights / jnp.sum(weights)
        self.param_spec = spec

    def _component_index(self, key: PRNGKeyArray, n: int) -> Array:
        return jr.choice(key, len(self.components), (n,), p=self.weights)

    def sample(self, key: PRNGKeyArray, n: int) -> dict[str, Array]:
        k_idx, *k_comp = jr.split(key, len(self.components) + 1)
        idx = self._component_index(k_idx, n)
        draws = [c.sample(k, n) for c, k in zip(self.components, k_comp, strict=True)]
        rows = jnp.arange(n)
        return {
            name: jnp.stack([d[name] for d in draws])[idx, rows] for name in self.param_spec.names
        }

    def log_prob_unconstrained(self, z: Float[Array, "*batch D"]) -> Float[Array, "*batch"]:
        return self._mix([c.log_prob_unconstrained(z) for c in self.components])

    def log_prob(self, params: Mapping[str, Array]) -> Float[Array, "*batch"]:
        return self._mix([c.log_prob(params) for c in self.components])

    def _mix(self, terms: list[Array]) -> Array:
        """``log sum_k w_k exp(terms_k)``, stable; ``-inf`` where every term is."""
        stacked = jnp.stack(terms)
        logw = jnp.log(self.weights).reshape(-1, *(1,) * (stacked.ndim - 1))
        return jax.nn.logsumexp(stacked + logw, axis=0)
