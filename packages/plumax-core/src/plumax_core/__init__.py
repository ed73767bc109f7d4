"""plumax-core: the protocols and types every plumax library is built against.

See ``DESIGN.md`` section 3. Public names are re-exported here; structured linear
algebra lives in :mod:`plumax_core.linalg` and the cycle's validation gates in
:mod:`plumax_core.gates`.
"""

import importlib.metadata

from . import (
    gates as gates,
    linalg as linalg,
    testing as testing,
    training as training,
    validation as validation,
)
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
from ._met import (
    STABILITY_CLASSES as STABILITY_CLASSES,
    MetField as MetField,
    stability_index as stability_index,
    wind_components as wind_components,
)
from ._observations import (
    OBSERVATION_KINDS as OBSERVATION_KINDS,
    Observations as Observations,
    register_observation_kind as register_observation_kind,
)
from ._params import Param as Param, ParamSpec as ParamSpec
from ._posterior import Posterior as Posterior
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

__version__ = importlib.metadata.version("plumax-core")
