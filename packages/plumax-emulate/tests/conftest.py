"""Small analytic forward models and priors for the plumax-emulate tests."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jaxtyping import Array

from plumax_core import (
    AbstractForwardModel,
    GaussianPrior,
    MetField,
    Observations,
    Param,
    ParamSpec,
)

BUMP_SPEC = ParamSpec(
    (
        Param("A", units="1", lower=0.0, log=True, description="amplitude"),
        Param("mu", units="m", description="centre"),
        Param("s", units="m", lower=0.0, log=True, description="width"),
    )
)


class Bump(AbstractForwardModel):
    """``y(x) = A exp(-(x - mu - c u)^2 / (2 s^2))`` on 32 points of [-2, 2] m.

    ``u`` is the met's mean eastward wind (m/s); ``c`` (s) couples it (0 = met-free).
    """

    x: Array
    c: float = eqx.field(static=True, default=0.0)

    @property
    def param_spec(self) -> ParamSpec:
        return BUMP_SPEC

    def __call__(self, params, met: MetField) -> Observations:
        centre = params["mu"] + self.c * jnp.mean(met.u)
        y = params["A"] * jnp.exp(-0.5 * ((self.x - centre) / params["s"]) ** 2)
        return Observations(
            y, kind="generic", coords={"obs": self.x}, sigma=0.01, instrument="bump"
        )


class Blob(AbstractForwardModel):
    """A 16 x 16 Gaussian blob image (``A``, centre ``mu`` along x, width ``s``)."""

    @property
    def param_spec(self) -> ParamSpec:
        return BUMP_SPEC

    def __call__(self, params, met: MetField) -> Observations:
        g = jnp.linspace(-2.0, 2.0, 16)
        X, Y = jnp.meshgrid(g, g)
        r2 = (X - params["mu"]) ** 2 + Y**2
        img = params["A"] * jnp.exp(-0.5 * r2 / params["s"] ** 2)
        return Observations(img, kind="column_ppm_m", coords={"x": g, "y": g})


class WindSampler(eqx.Module):
    """Met with a random westerly wind of 2-6 m/s (a key -> MetField sampler)."""

    def __call__(self, key) -> MetField:
        speed = 2.0 + 4.0 * jax.random.uniform(key)
        return MetField(speed, jnp.zeros_like(speed))


def bump_prior() -> GaussianPrior:
    return GaussianPrior.from_std(
        BUMP_SPEC, jnp.array([0.0, 0.0, np.log(0.6)]), jnp.array([0.3, 0.25, 0.15])
    )


@pytest.fixture(scope="session")
def met() -> MetField:
    return MetField.uniform(5.0, 270.0)


@pytest.fixture(scope="session")
def bump() -> Bump:
    return Bump(jnp.linspace(-2.0, 2.0, 32))


@pytest.fixture(scope="session")
def prior() -> GaussianPrior:
    return bump_prior()


@pytest.fixture(scope="session")
def emu():
    """The helpers of this file (test modules cannot import a conftest by name)."""
    import types

    return types.SimpleNamespace(
        BUMP_SPEC=BUMP_SPEC,
        Blob=Blob,
        Bump=Bump,
        WindSampler=WindSampler,
        bump_prior=bump_prior,
    )
