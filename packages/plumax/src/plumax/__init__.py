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

The names are imported on first use (PEP 562 module ``__getattr__``): ``import plumax``
and ``plumax --help`` do not import JAX; ``plumax.invert`` (or ``from plumax import
invert``) imports what it needs then.
"""

import importlib
import importlib.metadata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what the lazy names are, for type checkers and the API docs
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

# public name -> the module that defines it (relative names are plumax's own)
_LAZY: dict[str, str] = {
    **dict.fromkeys(
        (
            "BlockAverage",
            "FusedForwardModel",
            "Instrument",
            "PinnedForwardModel",
            "fuse_observations",
            "pin",
            "simulate_instruments",
        ),
        "plumax_core",
    ),
    **dict.fromkeys(("Scene", "read_scene", "scene_dataset"), "._scene"),
    **dict.fromkeys(
        (
            "CycleBudget",
            "CycleRun",
            "FusionResult",
            "Inversion",
            "fuse_instruments",
            "invert",
            "run_cycle",
            "simulate",
        ),
        ".pipelines",
    ),
}

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


def __getattr__(name: str) -> Any:
    if name == "pipelines":
        return importlib.import_module(".pipelines", __name__)
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
