"""Fixtures for plumax-amortize tests: a conjugate linear-Gaussian simulator.

``theta ~ N(m0, S0)`` (D = 2, unbounded), ``y = A theta + b + sigma * eps`` (5
observations). The posterior is Gaussian with

    S_post = (S0^-1 + A^T A / sigma^2)^-1,
    m_post = S_post (S0^-1 m0 + A^T (y - b) / sigma^2),

an independent closed form to compare the learned flow with.
"""

from collections.abc import Mapping

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

A = np.array([[1.0, 0.5], [0.2, -1.0], [0.7, 0.7], [-0.4, 0.3], [1.2, -0.2]])
B = np.array([0.1, -0.3, 0.0, 0.5, 0.2])
SIGMA = 0.5
M0 = np.array([0.5, -1.0])
S0 = np.array([[1.0, 0.3], [0.3, 0.8]])

SPEC = ParamSpec((Param("a", units="1"), Param("b", units="1")))


class LinearGaussian(AbstractForwardModel):
    """``y = A theta + b`` with per-element ``sigma``; a 5-vector of generic values."""

    param_spec: ParamSpec
    A: Array
    b: Array
    sigma: float

    def __call__(self, params: Mapping[str, Array], met: MetField) -> Observations:
        theta = self.param_spec.flatten(params)
        return Observations(self.A @ theta + self.b, sigma=self.sigma, kind="generic")


def closed_form(y, s0=S0):
    """Posterior mean (..., 2) and covariance (2, 2) for observations y (..., 5), under
    the prior N(M0, s0)."""
    s0i = np.linalg.inv(s0)
    cov = np.linalg.inv(s0i + A.T @ A / SIGMA**2)
    rhs = s0i @ M0 + (np.asarray(y) - B) @ A / SIGMA**2
    return rhs @ cov.T, cov


class _Problem:
    def __init__(self, model, prior, met, closed_form):
        self.model, self.prior, self.met, self.closed_form = model, prior, met, closed_form


@pytest.fixture(scope="session")
def linear_gaussian():
    """``.model``, ``.prior``, ``.met`` and ``.closed_form(y) -> (mean, cov)``."""
    model = LinearGaussian(SPEC, jnp.asarray(A), jnp.asarray(B), SIGMA)
    prior = GaussianPrior(jnp.asarray(M0), jnp.asarray(S0), SPEC)
    met = MetField.uniform(3.0, 270.0)
    return _Problem(model, prior, met, closed_form)


@pytest.fixture(scope="session")
def lg_banks(linear_gaussian):
    """(training bank of 4000, held-out bank of 300) simulations."""
    import jax.random as jr

    import plumax_amortize as pa

    p = linear_gaussian
    noise = pa.ObservationNoise()
    train = pa.simulate(p.model, p.prior, p.met, noise, 4000, key=jr.key(1))
    test = pa.simulate(p.model, p.prior, p.met, noise, 300, key=jr.key(2))
    return train, test


def _fit(bank, max_steps=None, correction=None):
    import jax.random as jr

    import plumax_amortize as pa

    return pa.fit_npe(
        bank,
        key=jr.key(0),
        embedding=pa.MLPEmbedding((5,), 16, width=32, depth=1, key=jr.key(5)),
        flow=pa.FlowConfig("maf", flow_layers=3, nn_width=32),
        train=pa.TrainConfig(batch_size=128, learning_rate=2e-3, patience=10, max_steps=max_steps),
        correction=correction,
    )


@pytest.fixture(scope="session")
def lg_npe(lg_banks):
    """A trained estimator and its history."""
    return _fit(lg_banks[0])


#: the proposal of the importance-weighting tests: a defensive mixture of the prior (50%)
#: and a Gaussian twice as wide (50%), which puts more simulations in the prior's tails
PROPOSAL_ALPHA = 0.5
PROPOSAL_SCALE = 2.0


def _proposal_closed_form(y):
    """Posterior mean (..., 2) under the *proposal* as the prior (a two-component
    Gaussian mixture: each component's conjugate posterior, weighted by its evidence)."""
    from scipy.stats import multivariate_normal

    y = np.atleast_2d(np.asarray(y, dtype=np.float64))
    means, logws = [], []
    for alpha, cov0 in ((PROPOSAL_ALPHA, S0), (1 - PROPOSAL_ALPHA, PROPOSAL_SCALE**2 * S0)):
        means.append(closed_form(y, cov0)[0])
        evidence = multivariate_normal(A @ M0 + B, A @ cov0 @ A.T + SIGMA**2 * np.eye(5))
        logws.append(np.log(alpha) + evidence.logpdf(y))
    logw = np.stack(logws)
    w = np.exp(logw - logw.max(0))
    w /= w.sum(0)
    return w[0][:, None] * means[0] + w[1][:, None] * means[1]


@pytest.fixture(scope="session")
def proposal_closed_form():
    """``f(y) -> mean``: the posterior mean with the proposal as the prior."""
    return _proposal_closed_form


@pytest.fixture(scope="session")
def lg_proposal(linear_gaussian):
    """The defensive-mixture proposal (a ``plumax_core.MixturePrior``)."""
    from plumax_core import MixturePrior

    wide = GaussianPrior(jnp.asarray(M0), jnp.asarray(PROPOSAL_SCALE**2 * S0), SPEC)
    return MixturePrior((linear_gaussian.prior, wide), (PROPOSAL_ALPHA, 1 - PROPOSAL_ALPHA))


@pytest.fixture(scope="session")
def lg_weighted_bank(linear_gaussian, lg_proposal):
    """4000 simulations from the defensive-mixture proposal, with importance weights."""
    import jax.random as jr

    import plumax_amortize as pa

    p = linear_gaussian
    return pa.simulate(
        p.model, p.prior, p.met, pa.ObservationNoise(), 4000, key=jr.key(1), proposal=lg_proposal
    )


@pytest.fixture(scope="session")
def lg_npe_weighted(lg_weighted_bank):
    """An estimator trained on the importance-weighted proposal bank."""
    return _fit(lg_weighted_bank)


@pytest.fixture(scope="session")
def lg_npe_resampled(linear_gaussian, lg_proposal, lg_weighted_bank):
    """An estimator of the proposal posterior, corrected by resampling."""
    import plumax_amortize as pa

    correction = pa.ProposalCorrection(linear_gaussian.prior, lg_proposal)
    return _fit(lg_weighted_bank, correction=correction)


@pytest.fixture(scope="session")
def lg_npe_undertrained(lg_banks):
    """The same estimator after 2 optimiser steps."""
    return _fit(lg_banks[0], max_steps=2)


class Blob(AbstractForwardModel):
    """A Gaussian blob on an (8, 8) grid: amplitude ``q`` (positive, log-bounded) at
    position ``x0`` (bounded); a tiny image model for the CNN / mask / support tests."""

    param_spec: ParamSpec

    def __call__(self, params, met):
        yy, xx = jnp.mgrid[0:8, 0:8].astype(float)
        img = params["q"] * jnp.exp(-0.5 * ((xx - params["x0"]) ** 2 + (yy - 3.5) ** 2) / 2.0)
        return Observations(img, sigma=0.1, kind="column_ppm_m")


BLOB_SPEC = ParamSpec(
    (
        Param("q", units="ppm m", lower=0.1, upper=10.0, log=True),
        Param("x0", units="px", lower=0.0, upper=7.0),
    )
)


@pytest.fixture(scope="session")
def blob():
    model = Blob(BLOB_SPEC)
    prior = GaussianPrior.from_std(BLOB_SPEC, jnp.zeros(2), 1.0)
    return model, prior, MetField.uniform(3.0, 270.0)
