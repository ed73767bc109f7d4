"""End-to-end pipelines as plain Python functions (the CLI is a thin layer over these).

* :func:`simulate` — a synthetic Gaussian-plume scene (column image or point receptors)
  as a CF ``xarray.Dataset`` (schema: :mod:`plumax._scene`);
* :func:`invert` — MAP + Laplace or NUTS (vardax-lite) on the Gaussian plume →
  :class:`Inversion` (a :class:`plumax_core.Posterior` and a summary in kg/h);
* :func:`fuse_instruments` — Tier IV: several instruments, one posterior over
  ``(Q, x0, y0, bias_<instrument>...)``, with an optional held-out instrument;
* :func:`plume_prior` — the default weakly informative prior;
* :func:`run_cycle` — the six-step cycle with its gates (``plumax cycle``) of a tier
  registered by name (:func:`register_cycle_tier`): a :class:`CycleTier` is a setup and
  a sequence of stages, one per step (:class:`SimulatorStage`, :class:`OracleStage`,
  :class:`EmulatorStage`, :class:`EmulatorInferenceStage`, :class:`AmortizedStage`,
  :class:`ReportStage`; :class:`AbstractCycleStage` for new ones);
* :func:`population` — a plume-list CSV → plumax-pod population fit and totals
  (``plumax population``);
* :func:`simulate_radiance` / :func:`read_radiance_scene` / :func:`retrieve` — Tier IV
  overpass: pixel-averaged Gaussian plume → EMIT-like radiance → the plumax-rtm scene
  retrieval (``plumax_rtm.retrieve_scene``: matched filter, plume mask, IME/CSF, and
  the map's error model ``plumax_rtm.RetrievalErrorModel``); the retrieved map inverts
  with :func:`invert`, its gain and offset errors and the met's wind uncertainty as
  nuisance parameters (:func:`add_nuisances`);
* :func:`calibrate` — the whole chain over many simulated truths: coverage, interval
  width against spread, SBC ranks (``plumax calibrate``);
* :func:`read_granule` — a real EMIT L1B granule (+ OBS) and an ERA5 or WRF file →
  :class:`RadianceScene` on a geolocated local grid (``plumax retrieve GRANULE --obs
  OBS --met MET``); :func:`write_synthetic_granule` writes a small one, with its ERA5
  file, in the real layouts.

The science lives in the libraries; these functions compose them. Re-exported here for
the names the docs use: :func:`default_geometry` and :func:`pixel_averaged_plume`
(``plumax_transport.PixelAveraged`` of a ``GaussianPlume``) from :mod:`plumax._scene`.

Units: emission rates are kg/s inside models and posteriors, kg/h in summaries.
"""

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import jax.numpy as jnp
import jax.random as jr
from jaxtyping import PRNGKeyArray

from plumax_core import (
    AbstractForwardModel,
    AbstractPrior,
    FusedForwardModel,
    Instrument,
    MetField,
    Observations,
    fuse_observations,
    holdout_check,
    units,
)
from plumax_core.validation import check_emission_rate, check_wind_speed
from plumax_transport import GaussianPlume

from ._calibrate import CalibrationResult, TruthDistribution, calibrate
from ._cycle import CycleRun, run_cycle
from ._cycle_base import CYCLE_KEYS, AbstractCycleStage, CycleContext, CycleTier
from ._cycle_budget import CycleBudget
from ._cycle_gaussian import GAUSSIAN_TIER, gaussian_tier
from ._cycle_learned import AmortizedStage, EmulatorStage
from ._cycle_oracle import EmulatorInferenceStage, OracleStage, SimulatorStage
from ._cycle_report import ReportStage
from ._cycle_tiers import cycle_tier, cycle_tiers, register_cycle_tier, unregister_cycle_tier
from ._granule import read_emit_scene, read_granule, read_met_file
from ._granule_synth import SyntheticGranule, write_synthetic_granule
from ._invert import METHODS, Inversion, check_inputs, invert, plume_prior, summarise
from ._nuisance import add_nuisances
from ._overpass import (
    RadianceScene,
    Retrieval,
    radiance_keys,
    read_radiance_scene,
    retrieve,
    simulate_radiance,
)
from ._population import PopulationResult, population
from ._scene import (
    default_geometry,
    pixel_averaged_plume,
    scene_dataset,
)

__all__ = [
    "CalibrationResult",
    "TruthDistribution",
    "calibrate",
    "PopulationResult",
    "population",
    "CycleBudget",
    "CycleRun",
    "gaussian_tier",
    "run_cycle",
    "CYCLE_KEYS",
    "AbstractCycleStage",
    "CycleContext",
    "CycleTier",
    "GAUSSIAN_TIER",
    "SimulatorStage",
    "OracleStage",
    "EmulatorStage",
    "EmulatorInferenceStage",
    "AmortizedStage",
    "ReportStage",
    "register_cycle_tier",
    "unregister_cycle_tier",
    "cycle_tier",
    "cycle_tiers",
    "FusionResult",
    "RadianceScene",
    "Retrieval",
    "add_nuisances",
    "pixel_averaged_plume",
    "read_radiance_scene",
    "retrieve",
    "radiance_keys",
    "simulate_radiance",
    "Inversion",
    "METHODS",
    "default_geometry",
    "fuse_instruments",
    "invert",
    "plume_prior",
    "simulate",
    "check_inputs",
    "summarise",
    "SyntheticGranule",
    "read_emit_scene",
    "read_granule",
    "read_met_file",
    "write_synthetic_granule",
]


def simulate(
    *,
    q_kgh: float,
    x0: float = 0.0,
    y0: float = 0.0,
    height: float = 5.0,
    wind_speed: float = 4.0,
    wind_dir: float = 270.0,
    stability: str = "C",
    pblh: float = 800.0,
    geometry: Any = None,
    noise: float = 20.0,
    key: PRNGKeyArray | None = None,
    terrain: str = "rural",
    frame: Any = None,
    time: Any = None,
):
    """Simulate a Gaussian-plume scene and return it as a CF ``xarray.Dataset``.

    Args:
        q_kgh: true emission rate, kg/h (> 0).
        x0: source easting, m.
        y0: source northing, m.
        height: release height, m (recorded as known, ``source_height``).
        wind_speed: m/s, in ``[0.5, 120]`` (``plumax_core.validation.check_wind_speed``).
        wind_dir: wind direction, degrees, from.
        stability: Pasquill class A-F.
        pblh: boundary-layer height, m.
        geometry: a ``ColumnImage`` or ``PointReceptors``; None = :func:`default_geometry`.
        noise: 1-sigma Gaussian noise in the observation units (ppm m for a column
            image), > 0; it is always recorded as ``sigma``.
        key: PRNG key for the noise; None = noise-free values (still carrying ``sigma``).
        terrain: ``"rural"`` or ``"urban"`` dispersion.
        frame: a ``plumax_core.LocalFrame`` placing the scene's ``x``/``y`` on the Earth
            (a column image is then geolocated: lat/lon, ``crs``); None = not placed.
        time: the observation time (s UTC, datetime64 or ISO string) of a placed scene.

    Raises:
        ValueError: non-physical input (negative or too-slow wind, unknown stability,
            ``q_kgh <= 0``, ``noise <= 0``), each naming the argument.
    """

    check_emission_rate("q_kgh", q_kgh, units="kg/h")
    check_wind_speed("wind_speed", wind_speed)
    if not (math.isfinite(noise) and noise > 0):
        raise ValueError(f"`noise` (1-sigma, observation units) must be > 0, got {noise}")
    met = MetField.uniform(
        float(wind_speed), float(wind_dir), stability=stability, pblh=pblh, source="synthetic"
    )
    geometry = default_geometry() if geometry is None else geometry
    model = GaussianPlume(geometry, terrain=terrain)
    params = {
        "Q": jnp.asarray(units.kg_h_to_kg_s(q_kgh)),
        "x0": jnp.asarray(float(x0)),
        "y0": jnp.asarray(float(y0)),
        "H": jnp.asarray(float(height)),
    }
    clean = model(params, met)
    values = clean.values
    if key is not None:
        values = values + noise * jr.normal(key, values.shape, dtype=values.dtype)
    obs = clean.replace(
        values=values, sigma=jnp.asarray(noise, values.dtype), instrument="synthetic"
    )
    return scene_dataset(
        obs,
        met,
        geometry=geometry,
        source_height=height,
        terrain=terrain,
        truth={"Q_kgh": q_kgh, "x0": x0, "y0": y0},
        extra_attrs={"noise_sigma": float(noise), "noise_free": int(key is None)},
        frame=frame,
        time=time,
    )


@dataclasses.dataclass(frozen=True)
class FusionResult:
    """The result of :func:`fuse_instruments`.

    Attributes:
        inversion: the fused posterior and its summary (biases included).
        model: the :class:`FusedForwardModel` inverted (held-out instrument excluded).
        observations: the fused flat observations.
        holdout: for a held-out instrument, the predictive check
            ``plumax_core.holdout_check`` as a dict ``{"instrument", "bias_estimate",
            "reduced_chi2", "n"}``: the residual ``y - A(base(theta))`` averaged over
            200 posterior draws, its mean the implied bias, ``reduced_chi2`` the mean
            squared de-biased residual over ``sigma^2 + predictive variance``. None
            otherwise.
    """

    inversion: Inversion
    model: FusedForwardModel
    observations: Observations
    holdout: dict[str, Any] | None


def fuse_instruments(
    observations: Mapping[str, Observations],
    met: MetField,
    base: AbstractForwardModel,
    instruments: Sequence[Instrument],
    prior: AbstractPrior | None = None,
    *,
    method: str = "laplace",
    hold_out: str | None = None,
    key: PRNGKeyArray | None = None,
    level: float = 0.9,
    prior_kwargs: Mapping[str, Any] | None = None,
    **invert_kwargs: Any,
) -> FusionResult:
    """Tier IV: one posterior over ``(base params, bias_<name>...)`` from all instruments.

    Args:
        observations: ``{instrument name: Observations}`` (shape as the instrument sees).
        met: the met; base: the shared transport model (e.g. ``pin(plume, H=5.0)``).
        instruments: the :class:`Instrument` set (operators, noise, bias prior widths).
        prior: None = :func:`plume_prior` with each instrument's ``bias_std`` (and
            ``prior_kwargs``).
        method: ``"laplace"`` or ``"nuts"``.
        hold_out: name of an instrument to leave out of the fit and check against the
            fused posterior's prediction (see :attr:`FusionResult.holdout`).
    """
    full = FusedForwardModel(base, instruments, met)
    model = full if hold_out is None else full.without(hold_out, met)
    data = fuse_observations(model, observations)
    if prior is None:
        kw = dict(prior_kwargs or {})
        kw.setdefault("bias_std", {i.name: i.bias_std for i in model.instruments})
        prior = plume_prior(model.param_spec, **kw)
    inv = invert(data, met, model, prior, method=method, key=key, level=level, **invert_kwargs)
    holdout = None
    if hold_out is not None:
        check = holdout_check(
            full,
            hold_out,
            observations[hold_out],
            met,
            inv.posterior,
            key=jr.key(1) if key is None else jr.fold_in(key, 1),
        )
        holdout = check.to_dict()
    return FusionResult(inv, model, data, holdout)
