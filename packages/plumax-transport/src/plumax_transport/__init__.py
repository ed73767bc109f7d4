"""Atmospheric transport forward models for methane (Tier I: Gaussian plume and puff;
Tier II: Lagrangian particles and footprints; Tier III: Eulerian finite volumes).

Public API:

* :class:`GaussianPlume`, :class:`GaussianPuff` — forward models
  (``plumax_core.AbstractForwardModel``).
* Geometries: :class:`PointReceptors`, :class:`ColumnImage`, :class:`ColumnAverage`.
* Pixel averaging: :class:`PixelAveraged` (any tier's grid output averaged over each
  sensor pixel, same parameters) and :func:`supersample` (a grid geometry's sub-pixel
  centres).
* :class:`BriggsPlumeRise`, :func:`sigma_y`, :func:`sigma_z`, :func:`pasquill_class`,
  :func:`pasquill_class_from_obukhov`, :func:`vertical_density`,
  :func:`vertical_fraction`, :func:`reflection_error_bound`.
* Lagrangian particles (Tier II engine): :class:`ParticleState`, :func:`initial_state`,
  :func:`run_particles` (one ``lax.scan`` with an ``accumulate`` callback, forward or
  backward in time), :func:`trajectories`, :func:`time_step`, and the met at the
  particles, :func:`boundary_layer` and :func:`mean_wind`.
* :class:`LagrangianParticles` — the Tier II forward model on the engine, a drop-in for
  :class:`GaussianPlume` (same parameters, geometries and observations).
* Turbulence: :class:`AbstractTurbulence` (returns a :class:`TurbulenceProfile`),
  :class:`HannaTurbulence` (Hanna 1982, FLEXPART's scheme), :class:`HomogeneousTurbulence`.
* Footprints (Tier II): :func:`backward_footprints` (backward particle runs from
  :class:`PointReceptors` or :class:`ColumnReceptors`, STILT's surface-layer residence
  time) gives a sparse :class:`Footprint`; :class:`FootprintForward` is the linear flux
  forward model ``y = F q + background``.
* Eulerian finite volumes (Tier III): :class:`EulerianFV` — a drop-in for
  :class:`GaussianPlume` (same point-source parameters and geometries) or a gridded
  surface-emission model per time window, and a
  :class:`plumax_core.AbstractTimeSteppingModel` for 4D-Var; its engine:
  :class:`FVGrid` (uniform horizontal spacing, stretched levels), :class:`Boundaries`
  (periodic, closed or open faces), :class:`FaceWinds`, :func:`advective_fluxes`
  (``SCHEMES``: upwind, flux-limited MUSCL with ``LIMITERS``, WENO5), the eddy
  diffusivities :class:`ConstantK` and :class:`MoninObukhovK`
  (:class:`AbstractDiffusivity`), :func:`stable_time_step`, :func:`n_substeps` and
  :func:`advance` (SSP-RK3 advection and horizontal diffusion with a positivity
  limiter, implicit vertical diffusion; mass budget to round-off).
"""

import importlib.metadata

from plumax_core.validation import (
    MAX_WIND_SPEED as MAX_WIND_SPEED,
    MIN_WIND_SPEED as MIN_WIND_SPEED,
)

from ._common import WIND_EXPONENTS as WIND_EXPONENTS
from ._dispersion import TERRAINS as TERRAINS, sigma_y as sigma_y, sigma_z as sigma_z
from ._eulerian import EulerianFV as EulerianFV
from ._footprint import ColumnReceptors as ColumnReceptors, Footprint as Footprint
from ._footprint_backward import backward_footprints as backward_footprints
from ._footprint_forward import FootprintForward as FootprintForward
from ._fv_advection import (
    LIMITERS as LIMITERS,
    SCHEMES as SCHEMES,
    FaceWinds as FaceWinds,
    advective_fluxes as advective_fluxes,
)
from ._fv_boundary import FACE_KINDS as FACE_KINDS, Boundaries as Boundaries
from ._fv_diffusion import (
    AbstractDiffusivity as AbstractDiffusivity,
    ConstantK as ConstantK,
    MoninObukhovK as MoninObukhovK,
)
from ._fv_grid import FVGrid as FVGrid
from ._fv_solver import (
    advance as advance,
    n_substeps as n_substeps,
    stable_time_step as stable_time_step,
)
from ._geometry import (
    M_AIR as M_AIR,
    M_CH4 as M_CH4,
    AbstractGeometry as AbstractGeometry,
    AbstractGridGeometry as AbstractGridGeometry,
    ColumnAverage as ColumnAverage,
    ColumnImage as ColumnImage,
    PointReceptors as PointReceptors,
    air_molar_density as air_molar_density,
)
from ._lagrangian import LagrangianParticles as LagrangianParticles
from ._particle_met import boundary_layer as boundary_layer, mean_wind as mean_wind
from ._particle_state import ParticleState as ParticleState, initial_state as initial_state
from ._particles import run_particles as run_particles, trajectories as trajectories
from ._pixel_average import PixelAveraged as PixelAveraged, supersample as supersample
from ._plume import PLUME_PARAM_SPEC as PLUME_PARAM_SPEC, GaussianPlume as GaussianPlume
from ._plume_rise import (
    BriggsPlumeRise as BriggsPlumeRise,
    buoyancy_flux as buoyancy_flux,
    momentum_flux as momentum_flux,
)
from ._puff import (
    GaussianPuff as GaussianPuff,
    OUMeander as OUMeander,
    puff_intervals as puff_intervals,
)
from ._reflection import (
    reflection_error_bound as reflection_error_bound,
    vertical_density as vertical_density,
    vertical_fraction as vertical_fraction,
)
from ._stability import (
    GOLDER_COEFFICIENTS as GOLDER_COEFFICIENTS,
    pasquill_class as pasquill_class,
    pasquill_class_from_obukhov as pasquill_class_from_obukhov,
)
from ._time_step import time_step as time_step
from ._turbulence import (
    AbstractTurbulence as AbstractTurbulence,
    HannaTurbulence as HannaTurbulence,
    HomogeneousTurbulence as HomogeneousTurbulence,
    TurbulenceProfile as TurbulenceProfile,
)

__all__ = [
    "AbstractDiffusivity",
    "AbstractGeometry",
    "AbstractGridGeometry",
    "AbstractTurbulence",
    "advance",
    "advective_fluxes",
    "air_molar_density",
    "backward_footprints",
    "Boundaries",
    "boundary_layer",
    "BriggsPlumeRise",
    "buoyancy_flux",
    "ColumnAverage",
    "ColumnImage",
    "ColumnReceptors",
    "ConstantK",
    "EulerianFV",
    "FACE_KINDS",
    "FaceWinds",
    "Footprint",
    "FootprintForward",
    "FVGrid",
    "GaussianPlume",
    "GaussianPuff",
    "GOLDER_COEFFICIENTS",
    "HannaTurbulence",
    "HomogeneousTurbulence",
    "initial_state",
    "LagrangianParticles",
    "LIMITERS",
    "M_AIR",
    "M_CH4",
    "MAX_WIND_SPEED",
    "mean_wind",
    "MIN_WIND_SPEED",
    "momentum_flux",
    "MoninObukhovK",
    "n_substeps",
    "OUMeander",
    "ParticleState",
    "pasquill_class",
    "pasquill_class_from_obukhov",
    "PixelAveraged",
    "PLUME_PARAM_SPEC",
    "PointReceptors",
    "puff_intervals",
    "reflection_error_bound",
    "run_particles",
    "SCHEMES",
    "sigma_y",
    "sigma_z",
    "stable_time_step",
    "supersample",
    "TERRAINS",
    "time_step",
    "trajectories",
    "TurbulenceProfile",
    "vertical_density",
    "vertical_fraction",
    "WIND_EXPONENTS",
]

__version__ = importlib.metadata.version("plumax-transport")
