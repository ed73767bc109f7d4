"""Checkpoints of trained estimators in the core :class:`~plumax_core.ArtifactRegistry`.

The format (what a checkpoint holds, and its hash) is :mod:`._checkpoint_format`; this
module rebuilds an :class:`NPE` from a checkpoint and stores and loads estimators. The
checkpoint's content hash (``tree_hash``) is the estimator's ``artifact_hash``, so the
hash in a posterior's provenance is the hash the registry stores the estimator under.
"""

from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax
import jax.random as jr
import numpy as np

from plumax_core import (
    ArtifactLineage,
    ArtifactRegistry,
    ModelRole,
    ParamSpec,
)

from ._checkpoint_format import FORMAT, VERSION, checkpoint_hash, to_checkpoint
from ._flows import FlowConfig, build_flow
from ._npe import NPE

__all__ = ["checkpoint_hash", "from_checkpoint", "load_npe", "save_npe", "to_checkpoint"]


def from_checkpoint(ckpt: Mapping[str, Any]):
    """Inverse of :func:`to_checkpoint`."""
    if not isinstance(ckpt, Mapping) or ckpt.get("format") != FORMAT:
        raise ValueError("`ckpt` is not a plumax-amortize NPE checkpoint")
    if ckpt.get("version") != VERSION:
        raise ValueError(f"unsupported NPE checkpoint version {ckpt.get('version')!r}")
    config = FlowConfig.from_dict(dict(ckpt["flow_config"]))
    skeleton = build_flow(config, ckpt["dim"], ckpt["cond_dim"], key=jr.key(0))
    arrays, static = eqx.partition(skeleton, eqx.is_array)
    leaves, treedef = jax.tree_util.tree_flatten(arrays)
    stored = ckpt["flow_arrays"]
    if len(stored) != len(leaves) or any(
        np.shape(s) != np.shape(a) for s, a in zip(stored, leaves, strict=True)
    ):
        raise ValueError("checkpoint flow arrays do not match the flow recipe")
    new = [jax.numpy.asarray(s, dtype=a.dtype) for s, a in zip(stored, leaves, strict=True)]
    flow = eqx.combine(jax.tree_util.tree_unflatten(treedef, new), static)
    return NPE(
        flow,
        ckpt["embedding"],
        ParamSpec.from_dict(ckpt["param_spec"]),
        theta_loc=ckpt["theta_loc"],
        theta_scale=ckpt["theta_scale"],
        obs_loc=ckpt["obs_loc"],
        obs_scale=ckpt["obs_scale"],
        flow_config=config,
        simulator_id=ckpt["simulator_id"],
        simulator_hash=ckpt["simulator_hash"],
        dataset_hash=ckpt["dataset_hash"],
        correction=ckpt.get("correction"),
    )


def save_npe(
    npe,
    registry: ArtifactRegistry,
    name: str,
    *,
    lineage: ArtifactLineage | None = None,
    tags: Mapping[str, Any] | None = None,
) -> str:
    """Store a trained estimator in ``registry`` with role ``PREDICTOR``.

    The default lineage points at the simulator (``oracle_hash``) and the training bank
    (``training_artifact``) the estimator was trained on, when those are known.

    Returns:
        The artifact hash (equal to ``npe.artifact_hash``).
    """
    if not isinstance(npe, NPE):
        raise TypeError(f"`npe` must be an NPE, got {type(npe).__name__}")
    if not isinstance(registry, ArtifactRegistry):
        raise TypeError(f"`registry` must be an ArtifactRegistry, got {type(registry).__name__}")
    if lineage is None:
        lineage = ArtifactLineage(
            oracle_hash=npe.simulator_hash or None,
            training_artifact=npe.dataset_hash or None,
        )
    return registry.store(to_checkpoint(npe), name, ModelRole.PREDICTOR, lineage, tags)


def load_npe(registry: ArtifactRegistry, name_or_hash: str):
    """Load an estimator stored by :func:`save_npe` (a name gives its latest version)."""
    if not isinstance(registry, ArtifactRegistry):
        raise TypeError(f"`registry` must be an ArtifactRegistry, got {type(registry).__name__}")
    return from_checkpoint(registry.load(name_or_hash))
