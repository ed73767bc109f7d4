"""plumax-amortize: amortized posteriors with conditional normalizing flows (cycle step 5).

Neural posterior estimation (Papamakarios & Murray 2016; Greenberg et al. 2019) with
flowjax conditional flows: simulate ``(theta, y)`` pairs from a prior and ANY
:class:`plumax_core.AbstractForwardModel`, train ``q(theta | y)`` by maximum likelihood,
and turn a new observation into a :class:`plumax_core.Posterior` in one forward pass.

* simulation: :func:`simulate` (the core :func:`plumax_core.simulate_bank` with a noise
  model); re-exported from plumax-core for convenience: the bank type
  :class:`SimulationBank` and the noise models :class:`AbstractNoiseModel`,
  :class:`GaussianNoise`, :class:`ObservationNoise`, :class:`RandomMask`;
* summary networks: :class:`AbstractEmbedding`, :class:`MLPEmbedding`,
  :class:`CNNEmbedding`, :class:`DeepSetEmbedding`;
* flows and training: :class:`FlowConfig`, :func:`build_flow`, :class:`TrainConfig`,
  :class:`TrainHistory`, :func:`fit_npe`, :class:`NPE`; simulations from a proposal:
  importance-weighted training, or :class:`ProposalCorrection` (resampling);
* checkpoints: :func:`save_npe`, :func:`load_npe` (core ``ArtifactRegistry``; training
  itself stores nothing);
* diagnostics: :func:`sbc_check`, :func:`tarp_check`, :func:`calibration_report`,
  :func:`posterior_predictive_check`, :func:`c2st`.
"""

import importlib.metadata

from plumax_core import (
    AbstractNoiseModel as AbstractNoiseModel,
    GaussianNoise as GaussianNoise,
    ObservationNoise as ObservationNoise,
    RandomMask as RandomMask,
    SimulationBank as SimulationBank,
)

from ._c2st import c2st as c2st
from ._checkpoint import load_npe as load_npe, save_npe as save_npe
from ._correction import ProposalCorrection as ProposalCorrection
from ._diagnostics import (
    calibration_report as calibration_report,
    posterior_predictive_check as posterior_predictive_check,
    sbc_check as sbc_check,
    tarp_check as tarp_check,
)
from ._embeddings import (
    AbstractEmbedding as AbstractEmbedding,
    CNNEmbedding as CNNEmbedding,
    DeepSetEmbedding as DeepSetEmbedding,
    MLPEmbedding as MLPEmbedding,
)
from ._flows import FlowConfig as FlowConfig, build_flow as build_flow
from ._npe import NPE as NPE
from ._simulate import simulate as simulate
from ._train import TrainConfig as TrainConfig, TrainHistory as TrainHistory, fit_npe as fit_npe

__all__ = [
    "AbstractEmbedding",
    "AbstractNoiseModel",
    "build_flow",
    "c2st",
    "calibration_report",
    "CNNEmbedding",
    "DeepSetEmbedding",
    "fit_npe",
    "FlowConfig",
    "GaussianNoise",
    "load_npe",
    "MLPEmbedding",
    "NPE",
    "ObservationNoise",
    "posterior_predictive_check",
    "ProposalCorrection",
    "RandomMask",
    "save_npe",
    "sbc_check",
    "simulate",
    "SimulationBank",
    "tarp_check",
    "TrainConfig",
    "TrainHistory",
]

__version__ = importlib.metadata.version("plumax-amortize")
