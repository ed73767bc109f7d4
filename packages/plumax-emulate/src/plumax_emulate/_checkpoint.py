"""Storing trained emulators in the core :class:`~plumax_core.ArtifactRegistry`.

Training (:func:`plumax_emulate.fit_emulator`) returns the emulator and writes nothing;
:func:`save_emulator` is the separate, explicit store. A `NeuralForward` is stored as
itself (an equinox Module of importable classes), so its registry hash is
``tree_hash(model)`` and :func:`load_emulator` gives back a working forward model.
"""

from collections.abc import Mapping
from typing import Any

from plumax_core import ArtifactLineage, ArtifactRegistry, ModelRole

from ._neural_forward import NeuralForward


def save_emulator(
    model: NeuralForward,
    registry: ArtifactRegistry,
    name: str,
    *,
    lineage: ArtifactLineage | None = None,
    tags: Mapping[str, Any] | None = None,
) -> str:
    """Store a trained emulator in ``registry`` with role ``EMULATOR``.

    The default lineage points at the emulated model (``oracle_hash``: its
    ``tree_hash``, the hash under which the registry stores it) and the training bank
    (``training_artifact``: ``bank.content_hash()``, its registry hash), when known.

    Returns:
        The artifact hash (``tree_hash(model)``).
    """
    if not isinstance(model, NeuralForward):
        raise TypeError(f"`model` must be a NeuralForward, got {type(model).__name__}")
    if not isinstance(registry, ArtifactRegistry):
        raise TypeError(f"`registry` must be an ArtifactRegistry, got {type(registry).__name__}")
    if lineage is None:
        lineage = ArtifactLineage(
            oracle_hash=model.emulated_model_hash or None,
            training_artifact=model.dataset_hash or None,
        )
    return registry.store(model, name, ModelRole.EMULATOR, lineage, tags)


def load_emulator(registry: ArtifactRegistry, name_or_hash: str) -> NeuralForward:
    """Load an emulator stored by :func:`save_emulator` (a name gives its latest version).

    Raises:
        TypeError: the artifact is not a `NeuralForward`.
    """
    if not isinstance(registry, ArtifactRegistry):
        raise TypeError(f"`registry` must be an ArtifactRegistry, got {type(registry).__name__}")
    model = registry.load(name_or_hash)
    if not isinstance(model, NeuralForward):
        raise TypeError(
            f"artifact {name_or_hash!r} is a {type(model).__name__}, not a NeuralForward"
        )
    return model
