"""Neural surrogates that are themselves ForwardModels (cycle step 3).

* data: the core :class:`plumax_core.SimulationBank` (``plumax_core.simulate_bank``:
  prior draws through any forward model, cached as NetCDF shards, resumable, sharded
  over devices);
* networks: :class:`AbstractEmulatorNet`, :class:`MLPNet`, :class:`ConvDecoderNet`,
  :class:`PCANet`; normalisation :class:`Standardiser`, :class:`OutputTransform`;
* met inputs: :class:`AbstractMetFeatures`, :class:`WindFeatures`;
* the surrogate: :class:`NeuralForward` (an ``AbstractForwardModel``),
  :class:`OutOfDistributionWarning`, :class:`MetMismatchWarning`;
* training: :func:`fit_emulator`, :class:`TrainConfig`, :class:`TrainResult` (no I/O);
  storing: :func:`save_emulator`, :func:`load_emulator`;
* gates: :func:`relative_l2_errors`, :func:`error_summary`, :func:`accuracy_gate`,
  :func:`jacobian_gate`.
"""

import importlib.metadata

from ._checkpoint import load_emulator as load_emulator, save_emulator as save_emulator
from ._features import AbstractMetFeatures as AbstractMetFeatures, WindFeatures as WindFeatures
from ._gates import (
    accuracy_gate as accuracy_gate,
    error_summary as error_summary,
    jacobian_gate as jacobian_gate,
    relative_l2_errors as relative_l2_errors,
)
from ._nets import (
    AbstractEmulatorNet as AbstractEmulatorNet,
    ConvDecoderNet as ConvDecoderNet,
    MLPNet as MLPNet,
    PCANet as PCANet,
)
from ._neural_forward import (
    MetMismatchWarning as MetMismatchWarning,
    NeuralForward as NeuralForward,
    OutOfDistributionWarning as OutOfDistributionWarning,
)
from ._normalise import OutputTransform as OutputTransform, Standardiser as Standardiser
from ._train import (
    TrainConfig as TrainConfig,
    TrainResult as TrainResult,
    fit_emulator as fit_emulator,
)

__all__ = [
    "AbstractEmulatorNet",
    "AbstractMetFeatures",
    "accuracy_gate",
    "ConvDecoderNet",
    "error_summary",
    "fit_emulator",
    "jacobian_gate",
    "load_emulator",
    "MetMismatchWarning",
    "MLPNet",
    "NeuralForward",
    "OutOfDistributionWarning",
    "OutputTransform",
    "PCANet",
    "relative_l2_errors",
    "save_emulator",
    "Standardiser",
    "TrainConfig",
    "TrainResult",
    "WindFeatures",
]

__version__ = importlib.metadata.version("plumax-emulate")
