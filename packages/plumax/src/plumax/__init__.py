"""plumax: the meta-package — a compatible set of the libraries, the CLI and pipelines.

It implements no physics: it composes plumax-transport (forward models) and vardax-lite
(the oracle inference) through the plumax-core protocols.

* :mod:`plumax.pipelines` — :func:`~plumax.pipelines.run_cycle` (the six-step cycle),
  :func:`~plumax.pipelines.simulate`,
  :func:`~plumax.pipelines.invert`, :func:`~plumax.pipelines.fuse_instruments`,
  :func:`~plumax.pipelines.plume_prior`, :func:`~plumax.pipelines.summarise`;
* Tier IV building blocks: :class:`Instrument`, :class:`FusedForwardModel`,
  :func:`fuse_observations`, :func:`simulate_instruments`, :class:`BlockAverage`;
* :class:`PinnedForwardModel` / :func:`pin` — hold known parameters fixed;
* :func:`read_scene` / :func:`scene_dataset` — the NetCDF scene schema;
* the ``plumax`` command line (``plumax --help``).
"""

import importlib.metadata

from . import pipelines as pipelines
from ._fusion import (
    FusedForwardModel as FusedForwardModel,
    Instrument as Instrument,
    fuse_observations as fuse_observations,
    simulate_instruments as simulate_instruments,
)
from ._models import (
    BlockAverage as BlockAverage,
    PinnedForwardModel as PinnedForwardModel,
    pin as pin,
)
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

__version__ = importlib.metadata.version("plumax")
