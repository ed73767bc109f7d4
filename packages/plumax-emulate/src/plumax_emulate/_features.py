"""Met features: the parts of a `MetField` an emulator takes as inputs.

An emulator either fixes the met at training time or takes a few met summaries as extra
inputs (after the unconstrained params). A feature extractor is an
:class:`AbstractMetFeatures`; :class:`WindFeatures` gives the mean wind components.
"""

import abc

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from plumax_core import MetField


class AbstractMetFeatures(eqx.Module):
    """Maps a `MetField` to a fixed-length feature vector.

    Contract: ``__call__(met)`` is pure and traceable, returns a ``(F,)`` float array
    with ``F == len(names)`` for every met the emulator is used with, and is smooth
    where the emulated model is (features are network inputs and gradients flow
    through them).
    """

    @property
    @abc.abstractmethod
    def names(self) -> tuple[str, ...]:
        """One label per feature (with units), e.g. ``("u [m/s]", "v [m/s]")``."""

    @abc.abstractmethod
    def __call__(self, met: MetField) -> Float[Array, " F"]:
        """The feature vector of ``met``."""


class WindFeatures(AbstractMetFeatures):
    """Mean eastward and northward wind ``(u, v)`` in m/s over the whole met grid.

    Components rather than speed and direction: they are smooth everywhere (direction
    wraps at 360 degrees and is undefined at calm).
    """

    @property
    def names(self) -> tuple[str, ...]:
        return ("u [m/s]", "v [m/s]")

    def __call__(self, met: MetField) -> Float[Array, " 2"]:
        return jnp.stack([jnp.mean(met.u), jnp.mean(met.v)])
