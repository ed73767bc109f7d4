"""plumax-core: the protocols and types every plumax library is built against.

See ``docs/architecture.md`` (the package rules and the core types). Public names are
re-exported here, among them the one simulation bank of the cycle
(:func:`simulate_bank`, :class:`SimulationBank`, the noise models); structured linear
algebra lives in :mod:`plumax_core.linalg`, the cycle's validation gates in
:mod:`plumax_core.gates`, every unit conversion in :mod:`plumax_core.units` and the one
validation rule per quantity in :mod:`plumax_core.validation`.
"""

import importlib.metadata

from . import (
    gates as gates,
    linalg as linalg,
    testing as testing,
    training as training,
    units as units,
    validation as validation,
)
from ._averaging_kernel import (
    AveragingKernelOperator as AveragingKernelOperator,
    regrid_matrix as regrid_matrix,
)
from ._bank import SimulationBank as SimulationBank
from ._bank_cache import CorruptedShardWarning as CorruptedShardWarning
from ._bank_simulate import simulate_bank as simulate_bank
from ._block_average import BlockAverage as BlockAverage
from ._cycle import (
    CycleBenchmark as CycleBenchmark,
    CycleReport as CycleReport,
    CycleStageBenchmark as CycleStageBenchmark,
    MetricChange as MetricChange,
    MetricResult as MetricResult,
    OracleStrength as OracleStrength,
    ReportDiff as ReportDiff,
    StageChange as StageChange,
    StageResult as StageResult,
    Tolerance as Tolerance,
)
from ._errors import (
    InvalidInputError as InvalidInputError,
    clean_errors as clean_errors,
    filter_jit as filter_jit,
)
from ._forward import (
    AbstractForwardModel as AbstractForwardModel,
    AbstractObservationOperator as AbstractObservationOperator,
    ComposedForwardModel as ComposedForwardModel,
    autodiff_linearization as autodiff_linearization,
    compose as compose,
    forward_flat as forward_flat,
)
from ._fusion import (
    FusedForwardModel as FusedForwardModel,
    HoldoutCheck as HoldoutCheck,
    Instrument as Instrument,
    fuse_observations as fuse_observations,
    holdout_check as holdout_check,
    simulate_instruments as simulate_instruments,
)
from ._gain import GainForwardModel as GainForwardModel, with_gain as with_gain
from ._geo import (
    GRID_MAPPING_NAME as GRID_MAPPING_NAME,
    LocalFrame as LocalFrame,
    add_geolocation as add_geolocation,
    frame_from_dataset as frame_from_dataset,
    seconds_since_epoch as seconds_since_epoch,
)
from ._importance import (
    importance_log_weight as importance_log_weight,
    kish_effective_sample_size as kish_effective_sample_size,
)
from ._met import (
    MET_ATTR_UNITS as MET_ATTR_UNITS,
    STABILITY_CLASSES as STABILITY_CLASSES,
    MetField as MetField,
    stability_index as stability_index,
    wind_components as wind_components,
)
from ._met_sample import MetSampler as MetSampler, sample_met as sample_met
from ._met_sources import default_wind_uncertainty as default_wind_uncertainty
from ._netcdf import open_netcdf as open_netcdf
from ._noise import (
    AbstractNoiseModel as AbstractNoiseModel,
    GaussianNoise as GaussianNoise,
    ObservationNoise as ObservationNoise,
    RandomMask as RandomMask,
)
from ._observations import (
    OBSERVATION_KINDS as OBSERVATION_KINDS,
    Observations as Observations,
    register_observation_kind as register_observation_kind,
)
from ._offset import OffsetForwardModel as OffsetForwardModel, with_offset as with_offset
from ._params import Param as Param, ParamSpec as ParamSpec
from ._pin import PinnedForwardModel as PinnedForwardModel, pin as pin
from ._posterior import Posterior as Posterior
from ._posterior_tree import (
    POSTERIOR_SCHEMA as POSTERIOR_SCHEMA,
    posterior_from_datatree as posterior_from_datatree,
    posterior_to_datatree as posterior_to_datatree,
)
from ._prior import (
    AbstractPrior as AbstractPrior,
    GaussianPrior as GaussianPrior,
    MixturePrior as MixturePrior,
)
from ._provenance import (
    REQUIRED_PROVENANCE_KEYS as REQUIRED_PROVENANCE_KEYS,
    Provenance as Provenance,
    make_provenance as make_provenance,
    package_versions as package_versions,
)
from ._registry import (
    AmbiguousArtifactError as AmbiguousArtifactError,
    ArtifactCorruptedError as ArtifactCorruptedError,
    ArtifactLineage as ArtifactLineage,
    ArtifactNotFoundError as ArtifactNotFoundError,
    ArtifactRecord as ArtifactRecord,
    ArtifactRegistry as ArtifactRegistry,
    LineageNode as LineageNode,
    ModelRole as ModelRole,
    NotARegistryError as NotARegistryError,
    ReadOnlyRegistryError as ReadOnlyRegistryError,
    RegistryCheck as RegistryCheck,
    Replacement as Replacement,
)
from ._serialise import (
    SerialisationError as SerialisationError,
    deserialise as deserialise,
    serialise as serialise,
    tree_hash as tree_hash,
)
from ._time_stepping import AbstractTimeSteppingModel as AbstractTimeSteppingModel
from ._wind_nuisance import (
    UncertainWindForwardModel as UncertainWindForwardModel,
    with_uncertain_wind as with_uncertain_wind,
)

__all__ = [
    "AbstractForwardModel",
    "AbstractTimeSteppingModel",
    "AbstractNoiseModel",
    "AbstractObservationOperator",
    "AbstractPrior",
    "AmbiguousArtifactError",
    "ArtifactCorruptedError",
    "ArtifactLineage",
    "ArtifactNotFoundError",
    "ArtifactRecord",
    "ArtifactRegistry",
    "AveragingKernelOperator",
    "BlockAverage",
    "ComposedForwardModel",
    "CorruptedShardWarning",
    "CycleBenchmark",
    "CycleReport",
    "CycleStageBenchmark",
    "FusedForwardModel",
    "GRID_MAPPING_NAME",
    "GainForwardModel",
    "GaussianNoise",
    "GaussianPrior",
    "HoldoutCheck",
    "Instrument",
    "InvalidInputError",
    "LineageNode",
    "LocalFrame",
    "MET_ATTR_UNITS",
    "MetField",
    "MetSampler",
    "MetricChange",
    "MetricResult",
    "MixturePrior",
    "ModelRole",
    "NotARegistryError",
    "OBSERVATION_KINDS",
    "ObservationNoise",
    "Observations",
    "OffsetForwardModel",
    "OracleStrength",
    "POSTERIOR_SCHEMA",
    "Param",
    "ParamSpec",
    "PinnedForwardModel",
    "Posterior",
    "Provenance",
    "REQUIRED_PROVENANCE_KEYS",
    "RandomMask",
    "ReadOnlyRegistryError",
    "RegistryCheck",
    "Replacement",
    "ReportDiff",
    "STABILITY_CLASSES",
    "SerialisationError",
    "SimulationBank",
    "StageChange",
    "StageResult",
    "Tolerance",
    "UncertainWindForwardModel",
    "add_geolocation",
    "autodiff_linearization",
    "clean_errors",
    "compose",
    "default_wind_uncertainty",
    "deserialise",
    "filter_jit",
    "forward_flat",
    "frame_from_dataset",
    "fuse_observations",
    "gates",
    "holdout_check",
    "importance_log_weight",
    "kish_effective_sample_size",
    "linalg",
    "make_provenance",
    "open_netcdf",
    "package_versions",
    "pin",
    "posterior_from_datatree",
    "posterior_to_datatree",
    "register_observation_kind",
    "regrid_matrix",
    "sample_met",
    "seconds_since_epoch",
    "serialise",
    "simulate_bank",
    "simulate_instruments",
    "stability_index",
    "testing",
    "training",
    "tree_hash",
    "units",
    "validation",
    "wind_components",
    "with_gain",
    "with_offset",
    "with_uncertain_wind",
]

__version__ = importlib.metadata.version("plumax-core")
