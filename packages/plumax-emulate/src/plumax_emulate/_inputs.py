"""What an emulator reads from a core simulation bank: inputs, targets, and the checks.

An emulator learns the map ``[theta_unconstrained, met_features] -> values`` from a
:class:`plumax_core.SimulationBank` of clean simulations (``plumax_core.simulate_bank``
without a noise model). This module states what such a bank must hold; the training
loop and the gates share it.
"""

import numpy as np

from plumax_core import SimulationBank

from ._features import AbstractMetFeatures


def check_emulator_bank(bank, name: str = "bank") -> SimulationBank:
    """``bank`` if an emulator can learn from (or be scored on) it.

    Raises:
        TypeError: not a `SimulationBank`, or a met-feature extractor that is not an
            `AbstractMetFeatures`.
        ValueError: repeated observations, no template, or values that are masked or
            non-finite (an emulator learns complete, finite outputs).
    """
    if not isinstance(bank, SimulationBank):
        raise TypeError(f"`{name}` must be a plumax_core.SimulationBank, got {type(bank).__name__}")
    if bank.repeats is not None:
        raise ValueError(
            f"`{name}` holds repeated observations; an emulator needs one met per draw"
        )
    if bank.template is None:
        raise ValueError(f"`{name}` has no template (simulate it with plumax_core.simulate_bank)")
    if bank.met_features is not None and not isinstance(bank.met_features, AbstractMetFeatures):
        raise TypeError(
            f"`{name}.met_features` must be an AbstractMetFeatures (emulator inputs need names)"
        )
    values, mask = np.asarray(bank.values), np.asarray(bank.mask)
    if not mask.all() or not np.all(np.isfinite(values)):
        raise ValueError(
            f"`{name}` has masked or non-finite values; an emulator learns complete, finite "
            "outputs (simulate the bank without a noise model that hides elements)"
        )
    return bank


def bank_inputs(bank: SimulationBank) -> np.ndarray:
    """``(N, D + F)`` raw emulator inputs: unconstrained params, then met features."""
    theta = np.asarray(bank.theta)
    if bank.features is None:
        return theta
    return np.concatenate([theta, np.asarray(bank.features)], axis=1)
