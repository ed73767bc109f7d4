"""plumax-pod: population-level methane emissions (Tier V).

Probability-of-detection curves, event-size (mark) distributions, intensity models,
the thinned marked temporal point-process likelihood, MAP+Laplace and NUTS fits, the
missing-mass paradox, persistency and emission totals (detected + expected missed mass),
plume-list CSV ingestion, instrument coverage and catalogue-to-fit data.
Units: emission rates kg/s, times s (see ``docs/pod/``).
"""

import importlib.metadata

from ._catalog import (
    CatalogError as CatalogError,
    CatalogReport as CatalogReport,
    PlumeCatalog as PlumeCatalog,
    read_catalog as read_catalog,
    rescale_wind as rescale_wind,
)
from ._catalog_population import (
    CatalogPopulationData as CatalogPopulationData,
    catalog_mark_data as catalog_mark_data,
    catalog_population_data as catalog_population_data,
)
from ._catalog_schema import (
    CANONICAL_SCHEMA as CANONICAL_SCHEMA,
    CARBON_MAPPER_SCHEMA as CARBON_MAPPER_SCHEMA,
    GHGSAT_SCHEMA as GHGSAT_SCHEMA,
    IMEO_SCHEMA as IMEO_SCHEMA,
    SCHEMAS as SCHEMAS,
    CatalogSchema as CatalogSchema,
    kg_s_to as kg_s_to,
    rate_to_kg_s as rate_to_kg_s,
)
from ._catalog_times import TimeRule as TimeRule, parse_time as parse_time
from ._coverage import InstrumentCoverage as InstrumentCoverage, read_coverage as read_coverage
from ._dedup import (
    EARTH_RADIUS_M as EARTH_RADIUS_M,
    deduplicate as deduplicate,
    haversine as haversine,
)
from ._fit import (
    AbstractPopulationModel as AbstractPopulationModel,
    LognormalHillModel as LognormalHillModel,
    fit_map_laplace as fit_map_laplace,
    fit_nuts as fit_nuts,
)
from ._intensity import (
    AbstractIntensity as AbstractIntensity,
    ConstantIntensity as ConstantIntensity,
    DiurnalIntensity as DiurnalIntensity,
    DiurnalSeasonalIntensity as DiurnalSeasonalIntensity,
    HawkesIntensity as HawkesIntensity,
    OperationalIntensity as OperationalIntensity,
    PeriodicBatchIntensity as PeriodicBatchIntensity,
    SeasonalIntensity as SeasonalIntensity,
    WeibullRenewalIntensity as WeibullRenewalIntensity,
)
from ._likelihood import (
    AbstractMarkData as AbstractMarkData,
    GaussianMarks as GaussianMarks,
    PointMarks as PointMarks,
    SampleMarks as SampleMarks,
    detection_fraction as detection_fraction,
    mark_data_from_dicts as mark_data_from_dicts,
    tpp_log_likelihood as tpp_log_likelihood,
)
from ._marks import (
    AbstractMarkDistribution as AbstractMarkDistribution,
    LognormalMarks as LognormalMarks,
    LognormalParetoMarks as LognormalParetoMarks,
    MixtureMarks as MixtureMarks,
    TruncatedPowerLawMarks as TruncatedPowerLawMarks,
)
from ._paradox import (
    ParadoxScenario as ParadoxScenario,
    canonical_scenarios as canonical_scenarios,
    paradox_closed_form as paradox_closed_form,
    simulate_paradox as simulate_paradox,
)
from ._pod import (
    SNRPOD as SNRPOD,
    AbstractLogitPOD as AbstractLogitPOD,
    AbstractPOD as AbstractPOD,
    CloglogPOD as CloglogPOD,
    HillPOD as HillPOD,
    LogLogisticPOD as LogLogisticPOD,
    MultiCovariateLogisticPOD as MultiCovariateLogisticPOD,
    MultiInstrumentPOD as MultiInstrumentPOD,
    OverpassSchedule as OverpassSchedule,
    ProbitPOD as ProbitPOD,
    WindNormalisedLogisticPOD as WindNormalisedLogisticPOD,
)
from ._population_data import EVENT_CHUNK as EVENT_CHUNK, PopulationData as PopulationData
from ._population_model import Free as Free, PopulationModel as PopulationModel
from ._totals import (
    coverage_segments as coverage_segments,
    expected_missed_mass as expected_missed_mass,
    expected_waiting_time as expected_waiting_time,
    missing_mass as missing_mass,
    naive_total as naive_total,
    population_draws as population_draws,
    prob_at_least_one as prob_at_least_one,
    summarise_samples as summarise_samples,
    total_emission_samples as total_emission_samples,
)

__all__ = [
    "AbstractIntensity",
    "AbstractLogitPOD",
    "AbstractMarkData",
    "AbstractMarkDistribution",
    "AbstractPOD",
    "AbstractPopulationModel",
    "canonical_scenarios",
    "CANONICAL_SCHEMA",
    "CARBON_MAPPER_SCHEMA",
    "catalog_mark_data",
    "catalog_population_data",
    "CatalogError",
    "CatalogPopulationData",
    "CatalogReport",
    "CatalogSchema",
    "CloglogPOD",
    "ConstantIntensity",
    "coverage_segments",
    "deduplicate",
    "detection_fraction",
    "DiurnalIntensity",
    "DiurnalSeasonalIntensity",
    "EARTH_RADIUS_M",
    "EVENT_CHUNK",
    "expected_missed_mass",
    "expected_waiting_time",
    "fit_map_laplace",
    "fit_nuts",
    "Free",
    "GaussianMarks",
    "GHGSAT_SCHEMA",
    "haversine",
    "HawkesIntensity",
    "HillPOD",
    "IMEO_SCHEMA",
    "InstrumentCoverage",
    "kg_s_to",
    "LogLogisticPOD",
    "LognormalHillModel",
    "LognormalMarks",
    "LognormalParetoMarks",
    "mark_data_from_dicts",
    "missing_mass",
    "MixtureMarks",
    "MultiCovariateLogisticPOD",
    "MultiInstrumentPOD",
    "naive_total",
    "OperationalIntensity",
    "OverpassSchedule",
    "paradox_closed_form",
    "ParadoxScenario",
    "parse_time",
    "PeriodicBatchIntensity",
    "PlumeCatalog",
    "PointMarks",
    "population_draws",
    "PopulationData",
    "PopulationModel",
    "prob_at_least_one",
    "ProbitPOD",
    "rate_to_kg_s",
    "read_catalog",
    "read_coverage",
    "rescale_wind",
    "SampleMarks",
    "SCHEMAS",
    "SeasonalIntensity",
    "simulate_paradox",
    "SNRPOD",
    "summarise_samples",
    "TimeRule",
    "total_emission_samples",
    "tpp_log_likelihood",
    "TruncatedPowerLawMarks",
    "WeibullRenewalIntensity",
    "WindNormalisedLogisticPOD",
]

__version__ = importlib.metadata.version("plumax-pod")


def __getattr__(name):
    if name in ("sample_intensity", "INTENSITY_KINDS"):
        from . import _intensity_priors

        return getattr(_intensity_priors, name)
    raise AttributeError(f"module 'plumax_pod' has no attribute {name!r}")
