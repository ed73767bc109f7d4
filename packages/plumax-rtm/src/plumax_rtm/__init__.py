"""Radiative transfer, instruments and retrievals for methane.

Spectroscopy (HITRAN lines, Voigt), absorption sources (line-by-line, look-up tables,
the shipped mag1c-derived effective CH4 table), a two-way Beer-Lambert forward model,
instruments as lineax operators, matched filters, optimal estimation and flux
quantification, and the plausibility rules for radiance cubes and methane enhancements.
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
from ._spectroscopy import (
    core_points as core_points,
    cross_section as cross_section,
    doppler_hwhm as doppler_hwhm,
    line_intensity as line_intensity,
    lorentz_hwhm as lorentz_hwhm,
    partition_ratio as partition_ratio,
)

__version__ = importlib.metadata.version("plumax-rtm")
