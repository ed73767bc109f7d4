"""The checkpoint format of a trained estimator: what is stored, and its content hash.

flowjax flows hold closures (parameterisation constructors), which no content-addressed
serialiser can store by reference. A checkpoint therefore keeps the flow's *recipe*
(:class:`FlowConfig` and its dimensions) and its array leaves; loading
(:func:`plumax_amortize._checkpoint.from_checkpoint`) rebuilds the same flow from the
recipe and puts the stored arrays back. Everything else (the summary network, the
parameter spec, the standardisation) is stored as is. This module reads an estimator's
attributes only, so that ``NPE`` can hash itself without importing the loader.
"""

from typing import Any

import equinox as eqx
import jax
import numpy as np

from plumax_core import tree_hash

FORMAT = "plumax-amortize/npe"
VERSION = 1


def _flow_arrays(flow) -> list[np.ndarray]:
    arrays, _ = eqx.partition(flow, eqx.is_array)
    return [np.asarray(a) for a in jax.tree_util.tree_leaves(arrays)]


def to_checkpoint(npe) -> dict[str, Any]:
    """A serialisable dict holding everything needed to rebuild ``npe`` exactly."""
    ckpt = {
        "format": FORMAT,
        "version": VERSION,
        "flow_config": npe.flow_config.to_dict(),
        "dim": int(npe.theta_loc.shape[0]),
        "cond_dim": int(npe.embedding.out_dim),
        "flow_arrays": _flow_arrays(npe.flow),
        "embedding": npe.embedding,
        "param_spec": npe.param_spec.to_dict(),
        "theta_loc": np.asarray(npe.theta_loc),
        "theta_scale": np.asarray(npe.theta_scale),
        "obs_loc": np.asarray(npe.obs_loc),
        "obs_scale": np.asarray(npe.obs_scale),
        "simulator_id": npe.simulator_id,
        "simulator_hash": npe.simulator_hash,
        "dataset_hash": npe.dataset_hash,
    }
    if npe.correction is not None:  # absent otherwise: earlier checkpoints keep their hash
        ckpt["correction"] = npe.correction
    return ckpt


def checkpoint_hash(npe) -> str:
    """Content hash (sha256 hex) of the estimator's checkpoint."""
    return tree_hash(to_checkpoint(npe))
