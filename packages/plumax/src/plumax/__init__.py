"""plumax: the meta-package — a compatible set of the libraries, the CLI and pipelines.

It implements no physics and no statistics: it composes the libraries (plumax-transport,
plumax-rtm, vardax-lite, plumax-emulate, plumax-amortize, plumax-pod) through the
plumax-core protocols, converts at the edges (files, CLI, reports) and orchestrates
(``tests-integration/test_meta_orchestrates.py`` checks that its source defines no
numerical model and no compiled kernel).

* :mod:`plumax.pipelines` — :func:`~plumax.pipelines.run_cycle` (the six-step cycle),
  :func:`~plumax.pipelines.simulate`,
  :func:`~plumax.pipelines.invert`, :func:`~plumax.pipelines.fuse_instruments`,
  :func:`~plumax.pipelines.plume_prior`, :func:`~plumax.pipelines.summarise`;
* re-exported from plumax-core for convenience: the Tier IV building blocks
  :class:`Instrument`, :class:`FusedForwardModel`, :func:`fuse_observations`,
  :func:`simulate_instruments`, :class:`BlockAverage`, and :class:`PinnedForwardModel` /
  :func:`pin` (hold known parameters fixed);
* :func:`read_scene` / :func:`scene_dataset` — the NetCDF scene schema;
* the ``plumax`` command line (``plumax --help``).
"""

import importlib.metadata

from plumax_core import (
    BlockAverage as BlockAverage,
    FusedForwardModel as FusedForwardModel,
    Instrument as Instrument,
    PinnedForwardModel as PinnedForwardModel,
    fuse_observations as fuse_observations,
    pin as pin,
    simulate_instruments as simulate_instruments,
)

from . import pipelines as pipelines
from ._scene import Scene as Scene, read_scene as read_scene, scene_dataset as scene_dataset
from .pipelines import (
    CycleBudget as CycleBudget,
    CycleRun as CycleRun,
    FusionResult as FusionResult,
    Inversion as Inversion,
    fuse_instruments as fuse_instruments,
    invert as invert,
    run_cycle as run_cycle,
    simulate as simulate,
)

__all__ = [
    "BlockAverage",
    "CycleBudget",
    "CycleRun",
    "fuse_instruments",
    "fuse_observations",
    "FusedForwardModel",
    "FusionResult",
    "Instrument",
    "Inversion",
    "invert",
    "pin",
    "PinnedForwardModel",
    "pipelines",
    "read_scene",
    "run_cycle",
    "Scene",
    "scene_dataset",
    "simulate",
    "simulate_instruments",
]

__version__ = importlib.metadata.version("plumax")
