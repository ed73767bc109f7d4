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

__all__ = ["observation", "store_bank"]


def store_bank(
    ctx: CycleContext, bank: Any, name: str, *, step: int, tags: dict[str, Any] | None = None
) -> str:
    """Store a `plumax_core.SimulationBank` as itself (its registry hash is its content
    hash) under ``<tier>-<name>``, with lineage to the simulator and the setup and the
    tags ``{"n": bank.n, **tags}``: the held-out cases (step 2), the emulator's training
    set (step 3) and the flow's training bank (step 5)."""
    return ctx.store(
        bank,
        name,
        ModelRole.BASELINE,
        step=step,
        lineage=ArtifactLineage(parent_hashes=(ctx.hash("simulator"), ctx.hash("setup"))),
        tags={"n": bank.n, **(tags or {})},
    )


def observation(ctx: CycleContext, bank: Any, i: int) -> Observations:
    """Case ``i`` of a simulation bank as `Observations` with the tier's noise."""
    return Observations(
        bank.values[i], sigma=ctx.tier.noise_sigma, mask=bank.mask[i], kind=bank.kind
    )
