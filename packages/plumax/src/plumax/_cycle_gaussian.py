"""Tier I, the Gaussian plume: the setup and the six stages of ``plumax cycle --tier gaussian``.

The problem (:func:`gaussian_tier`): `plumax_transport.GaussianPlume` column images (ppm
m) with the release height pinned, parameters ``(Q [kg/s, log], x0, y0 [m])``, a known
wind, 30 ppm m pixel noise. The cycle (:data:`GAUSSIAN_TIER`) runs every stage of
:mod:`plumax._cycle_oracle`, :mod:`plumax._cycle_learned` and
:mod:`plumax._cycle_report` with their defaults.
"""

import math

import jax.numpy as jnp

from plumax_core import GaussianPrior, MetField, PinnedForwardModel, pin
from plumax_transport import ColumnImage, GaussianPlume

from ._cycle_base import CycleTier
from ._cycle_budget import CycleBudget
from ._cycle_learned import AmortizedStage, EmulatorStage
from ._cycle_oracle import EmulatorInferenceStage, OracleStage, SimulatorStage
from ._cycle_report import ReportStage

__all__ = ["GAUSSIAN_TIER", "NOISE_PPM_M", "RELEASE_HEIGHT_M", "gaussian_tier"]

NOISE_PPM_M = 30.0  # 1-sigma pixel noise of the held-out and training observations
RELEASE_HEIGHT_M = 10.0


def gaussian_tier(pixels: int = 16) -> tuple[PinnedForwardModel, MetField, GaussianPrior]:
    """The Tier I problem of the cycle: ``(model, met, prior)``.

    A `plumax_transport.GaussianPlume` column image (ppm m, ``pixels x pixels``,
    200-1600 m downwind, ±300 m crosswind) with the release height pinned at 10 m,
    a known 4 m/s westerly wind, stability class B; free parameters log ``Q`` (kg/s;
    prior median 0.05 kg/s = 180 kg/h, log-sd 0.5), ``x0`` (m, sd 15) and ``y0`` (m,
    sd 20). The plume is built with ``strict=False`` and ``check_upwind=False`` so that
    a NUTS proposal outside the support gives NaN (rejected) instead of aborting.
    """

    geo = ColumnImage(jnp.linspace(200.0, 1600.0, pixels), jnp.linspace(-300.0, 300.0, pixels))
    model = pin(GaussianPlume(geo, check_upwind=False, strict=False), H=RELEASE_HEIGHT_M)
    met = MetField.uniform(4.0, 270.0, stability="B")
    prior = GaussianPrior.from_std(
        model.param_spec, jnp.array([math.log(0.05), 0.0, 0.0]), jnp.array([0.5, 15.0, 20.0])
    )
    return model, met, prior


def _gaussian_setup(budget: CycleBudget) -> tuple[PinnedForwardModel, MetField, GaussianPrior]:
    return gaussian_tier(budget.pixels)


GAUSSIAN_TIER = CycleTier(
    name="gaussian",
    description="Tier I Gaussian plume, column images",
    setup=_gaussian_setup,
    noise_sigma=NOISE_PPM_M,
    noise_units="ppm m",
    stages=(
        SimulatorStage(what="Gaussian-plume simulator"),
        OracleStage(),
        EmulatorStage(),
        EmulatorInferenceStage(),
        AmortizedStage(),
        ReportStage(),
    ),
)
