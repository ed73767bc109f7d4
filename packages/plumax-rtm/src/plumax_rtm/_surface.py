"""A synthetic surface: per-pixel albedo scatter for simulated overpasses.

:class:`GaussianAlbedo` draws an independent reflectance per pixel,
``a = max(floor, mean + std · ε)`` with ``ε ~ N(0, 1)``. It is the surface of plumax's
synthetic EMIT-like scenes (``mean = 0.25``, ``std = 0.08``, ``floor = 0.05``, the values
of the synthetic scene in ``docs/rtm/retrievals.md``): spatially uncorrelated, so the
matched filter's background covariance sees the albedo only through its spectral
signature, and the brightness scatter is what the albedo-corrected filter (Thompson et
al. 2016) must remove. The floor keeps every pixel bright enough for the filter's
radiance rules (:func:`~plumax_rtm.check_radiance`).
"""

from __future__ import annotations

import math

import equinox as eqx
import jax.random as jr
import numpy as np
from jaxtyping import PRNGKeyArray

__all__ = ["GaussianAlbedo"]


class GaussianAlbedo(eqx.Module):
    """Independent, clipped Gaussian surface albedo per pixel (dimensionless).

    Attributes:
        mean: mean reflectance (0, 1]. Static.
        std: standard deviation of the per-pixel scatter (>= 0). Static.
        floor: smallest reflectance (0, mean]; draws below it are set to it. Static.

    Raises:
        ValueError: ``mean`` outside (0, 1], a negative or non-finite ``std``, or a
            ``floor`` outside (0, mean].
    """

    mean: float = eqx.field(static=True, default=0.25)
    std: float = eqx.field(static=True, default=0.08)
    floor: float = eqx.field(static=True, default=0.05)

    def __check_init__(self):
        for name in ("mean", "std", "floor"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v)):
                raise ValueError(f"albedo `{name}` must be a finite number, got {v!r}")
        if not 0.0 < self.mean <= 1.0:
            raise ValueError(f"albedo `mean` must be in (0, 1], got {self.mean}")
        if self.std < 0.0:
            raise ValueError(f"albedo `std` must be >= 0, got {self.std}")
        if not 0.0 < self.floor <= self.mean:
            raise ValueError(f"albedo `floor` must be in (0, mean={self.mean}], got {self.floor}")

    def sample(self, shape: tuple[int, ...], *, key: PRNGKeyArray) -> np.ndarray:
        """A reflectance map of ``shape`` (default float dtype, NumPy).

        ``max(floor, mean + std · jax.random.normal(key, shape))``; same key, same map.
        """
        albedo = self.mean + self.std * np.asarray(jr.normal(key, shape))
        return np.clip(albedo, self.floor, None)
