"""Radiative transfer, instruments and retrievals for methane.

Spectroscopy (HITRAN lines, Voigt), absorption sources (line-by-line, look-up tables,
the shipped mag1c-derived effective CH4 table), a two-way Beer-Lambert forward model,
instruments as lineax operators, matched filters, optimal estimation and flux
quantification (IME, CSF for any wind direction), the plausibility rules for radiance
cubes and methane enhancements, synthetic overpasses (:func:`simulate_radiance_cube`,
:class:`GaussianAlbedo`) and the scene-retrieval recipe with its error model
(:func:`retrieve_scene` -> :class:`SceneRetrieval`, whose ``observations()`` is a
``plumax_core.Observations``, and the map's error model :class:`RetrievalErrorModel`).
See ``docs/rtm/``.
"""

import importlib.metadata

from ._absorption import (
    MOL_M2_PER_PPM_M as MOL_M2_PER_PPM_M,
    MOLEC_CM2_PER_PPM_M as MOLEC_CM2_PER_PPM_M,
    AbstractAbsorption as AbstractAbsorption,
    EffectiveAbsorption as EffectiveAbsorption,
    LineByLineAbsorption as LineByLineAbsorption,
    LUTAbsorption as LUTAbsorption,
    load_mag1c_table as load_mag1c_table,
)
from ._atmosphere import (
    STANDARD_ATMOSPHERES as STANDARD_ATMOSPHERES,
    Atmosphere as Atmosphere,
    standard_atmosphere as standard_atmosphere,
)
from ._csf_wind import (
    CARDINAL_TOLERANCE_DEG as CARDINAL_TOLERANCE_DEG,
    csf_flux_downwind as csf_flux_downwind,
    downwind_unit as downwind_unit,
    most_upwind_pixel as most_upwind_pixel,
)
from ._emit import EmitGranule as EmitGranule
from ._emit_read import open_emit_l1b as open_emit_l1b
from ._emit_write import (
    EMIT_FILL as EMIT_FILL,
    OBS_LAYERS as OBS_LAYERS,
    write_emit_l1b as write_emit_l1b,
)
from ._envi import (
    ENVI_DATA_TYPES as ENVI_DATA_TYPES,
    open_envi as open_envi,
    read_envi_header as read_envi_header,
    write_envi as write_envi,
)
from ._error_model import (
    RetrievalErrorModel as RetrievalErrorModel,
    covariogram as covariogram,
    cross_validated_errors as cross_validated_errors,
    estimate_error_model as estimate_error_model,
    exponential_correlation as exponential_correlation,
    injection_gains as injection_gains,
)
from ._faddeeva import (
    faddeeva as faddeeva,
    faddeeva_far as faddeeva_far,
    gaussian_profile as gaussian_profile,
    lorentzian_profile as lorentzian_profile,
    voigt_profile as voigt_profile,
)
from ._flux import (
    KG_M2_PER_PPM_M as KG_M2_PER_PPM_M,
    FluxEstimate as FluxEstimate,
    csf_flux as csf_flux,
    effective_wind as effective_wind,
    ime_flux as ime_flux,
    plume_mask as plume_mask,
)
from ._forward import (
    BeerLambertRTM as BeerLambertRTM,
    air_mass_factor as air_mass_factor,
    blackbody_solar_irradiance as blackbody_solar_irradiance,
    mol_m2_to_ppm_m as mol_m2_to_ppm_m,
    ppm_m_to_mol_m2 as ppm_m_to_mol_m2,
)
from ._hitran import (
    ISOTOPOLOGUE_MASS as ISOTOPOLOGUE_MASS,
    LineList as LineList,
    fetch_hitran as fetch_hitran,
    read_hapi_table as read_hapi_table,
    read_par as read_par,
)
from ._instruments import (
    INSTRUMENTS as INSTRUMENTS,
    NoiseModel as NoiseModel,
    SpectralResponse as SpectralResponse,
    instrument_bands as instrument_bands,
)
from ._lut import CrossSectionLUT as CrossSectionLUT
from ._matched_filter import (
    COVARIANCES as COVARIANCES,
    MatchedFilterResult as MatchedFilterResult,
    desaturate as desaturate,
    far_threshold as far_threshold,
    matched_filter as matched_filter,
    saturation_curve as saturation_curve,
    sparse_matched_filter as sparse_matched_filter,
    target_spectrum as target_spectrum,
)
from ._oe import (
    OEResult as OEResult,
    oe_posterior as oe_posterior,
    optimal_estimation as optimal_estimation,
    state_names as state_names,
)
from ._operator import RadianceOperator as RadianceOperator
from ._plausibility import (
    AIR_COLUMN_STP_M as AIR_COLUMN_STP_M,
    BACKGROUND_CH4_PPM as BACKGROUND_CH4_PPM,
    ENHANCEMENT_BOUNDS as ENHANCEMENT_BOUNDS,
    MIN_BANDS as MIN_BANDS,
    NOISE_MARGIN_SIGMA as NOISE_MARGIN_SIGMA,
    check_background_pixels as check_background_pixels,
    check_enhancement as check_enhancement,
    check_radiance as check_radiance,
    check_target as check_target,
    min_background_pixels as min_background_pixels,
)
from ._scene import scene_matched_filter as scene_matched_filter
from ._scene_retrieval import (
    QUICKLOOK_Z as QUICKLOOK_Z,
    OECheck as OECheck,
    SceneRetrieval as SceneRetrieval,
    oe_check_prior as oe_check_prior,
    plume_exclusion as plume_exclusion,
    residual_scale as residual_scale,
    retrieve_scene as retrieve_scene,
)
from ._spectroscopy import (
    core_points as core_points,
    cross_section as cross_section,
    doppler_hwhm as doppler_hwhm,
    line_intensity as line_intensity,
    lorentz_hwhm as lorentz_hwhm,
    partition_ratio as partition_ratio,
)
from ._surface import GaussianAlbedo as GaussianAlbedo
from ._synthetic import (
    SimulatedRadiance as SimulatedRadiance,
    ch4_instrument_model as ch4_instrument_model,
    ch4_measured_model as ch4_measured_model,
    simulate_radiance_cube as simulate_radiance_cube,
)
from ._tropomi import TropomiCH4 as TropomiCH4, read_tropomi_ch4 as read_tropomi_ch4
from ._tropomi_write import write_tropomi_ch4 as write_tropomi_ch4

__all__ = [
    "AbstractAbsorption",
    "AIR_COLUMN_STP_M",
    "air_mass_factor",
    "Atmosphere",
    "BACKGROUND_CH4_PPM",
    "BeerLambertRTM",
    "blackbody_solar_irradiance",
    "CARDINAL_TOLERANCE_DEG",
    "ch4_instrument_model",
    "ch4_measured_model",
    "check_background_pixels",
    "check_enhancement",
    "check_radiance",
    "check_target",
    "core_points",
    "COVARIANCES",
    "cross_section",
    "CrossSectionLUT",
    "csf_flux",
    "csf_flux_downwind",
    "desaturate",
    "doppler_hwhm",
    "downwind_unit",
    "effective_wind",
    "EffectiveAbsorption",
    "EMIT_FILL",
    "EmitGranule",
    "ENHANCEMENT_BOUNDS",
    "ENVI_DATA_TYPES",
    "faddeeva",
    "faddeeva_far",
    "far_threshold",
    "fetch_hitran",
    "FluxEstimate",
    "gaussian_profile",
    "GaussianAlbedo",
    "ime_flux",
    "instrument_bands",
    "INSTRUMENTS",
    "ISOTOPOLOGUE_MASS",
    "KG_M2_PER_PPM_M",
    "line_intensity",
    "LineByLineAbsorption",
    "LineList",
    "load_mag1c_table",
    "lorentz_hwhm",
    "lorentzian_profile",
    "LUTAbsorption",
    "matched_filter",
    "MatchedFilterResult",
    "min_background_pixels",
    "MIN_BANDS",
    "MOL_M2_PER_PPM_M",
    "mol_m2_to_ppm_m",
    "MOLEC_CM2_PER_PPM_M",
    "most_upwind_pixel",
    "NOISE_MARGIN_SIGMA",
    "NoiseModel",
    "OBS_LAYERS",
    "oe_check_prior",
    "oe_posterior",
    "OECheck",
    "OEResult",
    "open_emit_l1b",
    "open_envi",
    "optimal_estimation",
    "partition_ratio",
    "plume_exclusion",
    "plume_mask",
    "ppm_m_to_mol_m2",
    "QUICKLOOK_Z",
    "RadianceOperator",
    "read_envi_header",
    "read_hapi_table",
    "read_par",
    "read_tropomi_ch4",
    "residual_scale",
    "RetrievalErrorModel",
    "covariogram",
    "cross_validated_errors",
    "estimate_error_model",
    "exponential_correlation",
    "injection_gains",
    "retrieve_scene",
    "saturation_curve",
    "scene_matched_filter",
    "SceneRetrieval",
    "simulate_radiance_cube",
    "SimulatedRadiance",
    "sparse_matched_filter",
    "SpectralResponse",
    "standard_atmosphere",
    "STANDARD_ATMOSPHERES",
    "state_names",
    "target_spectrum",
    "TropomiCH4",
    "voigt_profile",
    "write_emit_l1b",
    "write_envi",
    "write_tropomi_ch4",
]

__version__ = importlib.metadata.version("plumax-rtm")
