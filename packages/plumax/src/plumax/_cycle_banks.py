"""How each step of the cycle stores the simulations it draws, and reads a case back.

The three simulation banks of the cycle (`plumax_core.SimulationBank`) are stored here
and nowhere else: the held-out cases (step 2), the emulator's training set (step 3) and
the flow's training bank (step 5), each as ``<tier>-<name>`` with lineage to the
simulator and the setup. A bank is stored as itself, so its registry hash is its
content hash, the hash the emulator and the flow record as their training data.
"""

from typing import Any

from plumax_core import ArtifactLineage, ModelRole, Observations

from ._cycle_base import CycleContext

__all__ = [
    "observation",
    "store_emulator_training_set",
    "store_heldout_cases",
    "store_npe_training_set",
]


def store_heldout_cases(ctx: CycleContext, cases: Any) -> str:
    """Step 2: the held-out cases (a `plumax_core.SimulationBank`)."""
    return ctx.store(
        cases,
        "heldout-cases",
        ModelRole.BASELINE,
        step=2,
        lineage=ArtifactLineage(parent_hashes=(ctx.hash("simulator"), ctx.hash("setup"))),
        tags={"n": cases.n, ctx.tier.noise_key: ctx.tier.noise_sigma},
    )


def store_emulator_training_set(ctx: CycleContext, train: Any) -> str:
    """Step 3: the emulator's training set (a `plumax_core.SimulationBank`)."""
    return ctx.store(
        train,
        "emulator-training-set",
        ModelRole.BASELINE,
        step=3,
        lineage=ArtifactLineage(parent_hashes=(ctx.hash("simulator"), ctx.hash("setup"))),
        tags={"n": train.n},
    )


def store_npe_training_set(ctx: CycleContext, bank: Any) -> str:
    """Step 5: the flow's training bank (a `plumax_core.SimulationBank`)."""
    return ctx.store(
        bank,
        "npe-training-set",
        ModelRole.BASELINE,
        step=5,
        lineage=ArtifactLineage(parent_hashes=(ctx.hash("simulator"), ctx.hash("setup"))),
        tags={"n": bank.n},
    )


def observation(ctx: CycleContext, bank: Any, i: int) -> Observations:
    """Case ``i`` of a simulation bank as `Observations` with the tier's noise."""
    return Observations(
        bank.values[i], sigma=ctx.tier.noise_sigma, mask=bank.mask[i], kind=bank.kind
    )
