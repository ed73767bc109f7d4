"""Input and output normalisation stored with an emulator.

Networks train best on inputs and targets of order one. The transforms here are part
of the trained model (they are pytree fields of :class:`~plumax_emulate.NeuralForward`),
so the normalisation learned from the training set travels with the weights.
"""

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float


class Standardiser(eqx.Module):
    """Affine map ``x -> (x - mean) / std`` per feature.

    Attributes:
        mean: ``(n,)`` feature means.
        std: ``(n,)`` feature standard deviations (> 0).
    """

    mean: Float[Array, " n"]
    std: Float[Array, " n"]

    def __check_init__(self):
        if self.mean.shape != self.std.shape or self.mean.ndim != 1:
            raise ValueError(
                f"`mean` {self.mean.shape} and `std` {self.std.shape} must be equal 1-D shapes"
            )
        if not bool(np.all(np.asarray(self.std) > 0)):
            raise ValueError("`std` must be > 0")

    @classmethod
    def fit(cls, x: Float[Array, "n_samples n"], *, min_std: float = 1e-6) -> "Standardiser":
        """Per-feature mean and std of ``x`` (a constant feature gets ``std = 1``)."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] < 2:
            raise ValueError(f"`x` must be (n_samples >= 2, n), got {x.shape}")
        mean, std = x.mean(0), x.std(0)
        std = np.where(std > min_std, std, 1.0)
        return cls(jnp.asarray(mean, jnp.float32), jnp.asarray(std, jnp.float32))

    def __call__(self, x: Float[Array, "... n"]) -> Float[Array, "... n"]:
        return (x - self.mean) / self.std

    def inverse(self, x: Float[Array, "... n"]) -> Float[Array, "... n"]:
        return x * self.std + self.mean


class OutputTransform(eqx.Module):
    """Map physical outputs ``y`` (flat, ``(P,)``) to network targets and back.

    ``t = (g(y) - mean) / scale`` with ``g(y) = log(y + offset)`` when ``log`` is True
    (positive fields, e.g. concentrations spanning orders of magnitude) and ``g(y) = y``
    otherwise. ``mean`` is per element; ``scale`` is one number (the RMS deviation over
    all elements), so the mean-squared loss in target space is proportional to the
    squared L2 error in ``g``-space and no near-constant element is blown up.

    Attributes:
        mean: ``(P,)`` per-element mean of ``g(y)`` over the training set.
        scale: scalar spread of ``g(y)`` (> 0).
        offset: added before the log (same units as ``y``, >= 0); ignored if not ``log``.
        log: learn in log space.
        log_max: in log space, ``g`` is capped at this value before ``exp`` (by default
            the training maximum plus 3, i.e. 20 times the largest training value), so
            an extrapolating network cannot overflow to ``inf``; inside the training
            range the cap is never active.
    """

    mean: Float[Array, " P"]
    scale: Float[Array, ""]
    offset: float = eqx.field(static=True, default=0.0)
    log: bool = eqx.field(static=True, default=False)
    log_max: float = eqx.field(static=True, default=float("inf"))

    def __check_init__(self):
        if self.mean.ndim != 1:
            raise ValueError(f"`mean` must be 1-D (P,), got {self.mean.shape}")
        if not float(self.scale) > 0:
            raise ValueError(f"`scale` must be > 0, got {float(self.scale)}")
        if self.offset < 0:
            raise ValueError(f"`offset` must be >= 0, got {self.offset}")

    @classmethod
    def fit(
        cls, y: Float[Array, "n_samples P"], *, log: bool = False, offset: float | None = None
    ) -> "OutputTransform":
        """Fit to training outputs ``y``.

        With ``log=True`` every ``y`` must be ``>= 0``; ``offset`` defaults to ``1e-6``
        times the largest ``|y|`` (so exact zeros stay finite in log space).
        """
        y = np.asarray(y, dtype=np.float64)
        if y.ndim != 2:
            raise ValueError(f"`y` must be (n_samples, P), got {y.shape}")
        if log:
            if np.any(y < 0):
                raise ValueError("log-space outputs need `y >= 0` everywhere in the training set")
            if offset is None:
                offset = 1e-6 * float(np.max(np.abs(y))) or 1e-30
            g = np.log(y + offset)
        else:
            offset = 0.0
            g = y
        log_max = float(np.max(g)) + 3.0 if log else float("inf")
        mean = g.mean(0)
        scale = float(np.sqrt(np.mean((g - mean) ** 2)))
        if not scale > 0:
            scale = 1.0
        return cls(
            jnp.asarray(mean, jnp.float32),
            jnp.asarray(scale, jnp.float32),
            offset=float(offset),
            log=bool(log),
            log_max=log_max,
        )

    def __call__(self, y: Float[Array, "... P"]) -> Float[Array, "... P"]:
        g = jnp.log(y + self.offset) if self.log else y
        return (g - self.mean) / self.scale

    def inverse(self, t: Float[Array, "... P"]) -> Float[Array, "... P"]:
        g = t * self.scale + self.mean
        if not self.log:
            return g
        return jnp.exp(jnp.minimum(g, self.log_max)) - self.offset
