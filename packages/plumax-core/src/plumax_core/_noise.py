"""Noise models: how simulated (noise-free) observations become data.

A simulation bank (:func:`plumax_core.simulate_bank`) turns each clean simulation into
an observation with a noise model; an estimator trained on the bank learns the
posterior only for the observation process it was trained on, so the noise model is
part of the bank's identity and must match how real observations are corrupted. A
noise model takes the clean values of one simulation (with the forward model's own
``sigma`` and ``mask`` when it reports them) and returns noisy values and a validity
mask. Masked elements may hold anything, NaN included: every consumer fills them
before use.
"""

import abc

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Bool, Float, PRNGKeyArray


class AbstractNoiseModel(eqx.Module):
    """Corrupts one clean simulation into an observation.

    Contract for every implementation:

    * ``__call__(values, sigma, mask, *, key)`` is pure and traceable (it is vmapped
      over simulations); the same key gives the same result;
    * it returns ``(noisy, valid)`` with the shape of ``values``; ``valid`` is a subset of
      the incoming ``mask`` (a noise model may hide elements, never reveal them);
    * ``std(sigma)`` is the 1-sigma of the noise it adds (broadcastable to one
      observation), given the forward model's own ``sigma``; None when it does not say.
    """

    @abc.abstractmethod
    def __call__(
        self,
        values: Float[Array, "*S"],
        sigma: Float[Array, "*S"] | None,
        mask: Bool[Array, "*S"],
        *,
        key: PRNGKeyArray,
    ) -> tuple[Float[Array, "*S"], Bool[Array, "*S"]]:
        """Noisy values and validity mask for one simulation."""

    def std(self, sigma: Float[Array, "*S"] | None) -> Float[Array, "..."] | None:
        """The 1-sigma of the added noise (same units as the values), or None.

        Args:
            sigma: the forward model's own per-element 1-sigma, or None.
        """
        del sigma
        return None


class GaussianNoise(AbstractNoiseModel):
    """Additive independent Gaussian noise, ``y = f(theta) + scale * eps``.

    Attributes:
        scale: 1-sigma noise in the units of the observations (a scalar or an array
            broadcastable to one observation), > 0.
    """

    scale: Float[Array, "..."]

    def __init__(self, scale):
        self.scale = jnp.asarray(scale, dtype=float)

    def __check_init__(self):
        if not bool(jnp.all(self.scale > 0)) or not bool(jnp.all(jnp.isfinite(self.scale))):
            raise ValueError(f"`scale` must be finite and > 0, got {self.scale}")

    def __call__(self, values, sigma, mask, *, key):
        eps = jr.normal(key, values.shape, values.dtype)
        return values + self.scale.astype(values.dtype) * eps, mask

    def std(self, sigma):
        return self.scale


class ObservationNoise(AbstractNoiseModel):
    """Additive Gaussian noise with the per-element ``sigma`` the forward model reports.

    Raises at simulation time (ValueError) when the forward model's observations carry
    no ``sigma``/``noise``.
    """

    def __call__(self, values, sigma, mask, *, key):
        if sigma is None:
            raise ValueError(
                "ObservationNoise needs the forward model's observations to carry `sigma`; "
                "use GaussianNoise(scale) instead"
            )
        eps = jr.normal(key, values.shape, values.dtype)
        return values + sigma * eps, mask

    def std(self, sigma):
        return sigma


class RandomMask(AbstractNoiseModel):
    """Another noise model, then each element hidden independently (e.g. cloud cover).

    Hidden elements are set to NaN, which is what a real retrieval reports there; the
    estimator must (and does) cope. The fraction is drawn per simulation uniformly in
    ``[0, max_fraction]`` so the estimator sees both clear and cloudy scenes.

    Attributes:
        base: the noise model applied first.
        max_fraction: the largest hidden fraction, in [0, 1).
    """

    base: AbstractNoiseModel
    max_fraction: float = eqx.field(static=True)

    def __check_init__(self):
        if not isinstance(self.base, AbstractNoiseModel):
            raise TypeError("`base` must be an AbstractNoiseModel")
        if not 0.0 <= self.max_fraction < 1.0:
            raise ValueError(f"`max_fraction` must be in [0, 1), got {self.max_fraction}")

    def __call__(self, values, sigma, mask, *, key):
        k_base, k_frac, k_mask = jr.split(key, 3)
        noisy, valid = self.base(values, sigma, mask, key=k_base)
        frac = self.max_fraction * jr.uniform(k_frac, (), values.dtype)
        hidden = jr.uniform(k_mask, values.shape, values.dtype) < frac
        valid = valid & ~hidden
        return jnp.where(valid, noisy, jnp.nan), valid

    def std(self, sigma):
        return self.base.std(sigma)
