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
  retrieval (``plumax_rtm.retrieve_scene``: matched filter, plume mask, IME/CSF); the
  retrieved map inverts with :func:`invert` (:func:`add_gain_uncertainty` folds the
  filter's gain error, ``plumax_rtm.with_gain_error``, into Q).

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
import numpy as np
from jaxtyping import PRNGKeyArray

import plumax_rtm as pr
import vardax_lite as vx
from plumax_core import (
    AbstractForwardModel,
    AbstractPrior,
    FusedForwardModel,
    GaussianPrior,
    Instrument,
    MetField,
    Observations,
    ParamSpec,
    Posterior,
    fuse_observations,
    holdout_check,
    units,
)
from plumax_core.validation import check_emission_rate, check_wind_speed
from plumax_transport import GaussianPlume

from ._cycle import CycleRun, run_cycle
from ._cycle_base import CYCLE_KEYS, AbstractCycleStage, CycleContext, CycleTier
from ._cycle_budget import CycleBudget
from ._cycle_gaussian import GAUSSIAN_TIER, gaussian_tier
from ._cycle_learned import AmortizedStage, EmulatorStage
from ._cycle_oracle import EmulatorInferenceStage, OracleStage, SimulatorStage
from ._cycle_report import ReportStage
from ._cycle_tiers import cycle_tier, cycle_tiers, register_cycle_tier, unregister_cycle_tier
from ._overpass import (
    RETRIEVAL_GAIN_STD,
    RadianceScene,
    Retrieval,
    add_gain_uncertainty,
    radiance_keys,
    read_radiance_scene,
    retrieve,
    simulate_radiance,
)
from ._population import PopulationResult, population
from ._scene import (
    Scene,
    default_geometry,
    pixel_averaged_plume,
    read_scene,
    scene_dataset,
)

__all__ = [
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
    "RETRIEVAL_GAIN_STD",
    "FusionResult",
    "RadianceScene",
    "Retrieval",
    "add_gain_uncertainty",
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
]

METHODS = ("laplace", "nuts")


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
    )


def plume_prior(
    spec: ParamSpec,
    *,
    q_kgh: float = 100.0,
    q_log_std: float = 1.5,
    position: tuple[float, float] = (0.0, 0.0),
    position_std: float = 100.0,
    bias_std: float | Mapping[str, float] = 10.0,
) -> GaussianPrior:
    """An independent Gaussian prior in the unconstrained space of ``spec``.

    ``Q`` is lognormal with median ``q_kgh`` (kg/h) and log-std ``q_log_std``; ``x0``,
    ``y0`` are normal around ``position`` (m) with std ``position_std``; every
    ``bias_<name>`` is normal around 0 with std ``bias_std`` (a number, or a mapping
    ``name -> std``); any other parameter gets N(0, 1) in its unconstrained coordinate.
    """
    check_emission_rate("q_kgh", q_kgh, units="kg/h")
    mean, std = [], []
    for p in spec.params:
        if p.shape != ():
            raise ValueError(f"plume_prior handles scalar parameters only; {p.name!r} is not")
        if p.name == "Q":
            mean.append(math.log(units.kg_h_to_kg_s(q_kgh)))
            std.append(q_log_std)
        elif p.name in ("x0", "y0"):
            mean.append(position[0] if p.name == "x0" else position[1])
            std.append(position_std)
        elif p.name.startswith("bias_"):
            s = bias_std[p.name[5:]] if isinstance(bias_std, Mapping) else bias_std
            mean.append(0.0)
            std.append(float(s))
        else:
            mean.append(0.0)
            std.append(1.0)
    return GaussianPrior.from_std(spec, jnp.asarray(mean), jnp.asarray(std))


@dataclasses.dataclass(frozen=True)
class Inversion:
    """The result of :func:`invert`.

    Attributes:
        posterior: over the model's unconstrained parameters (``log Q`` in kg/s, ...).
        summary: per parameter ``{"units", "median", "mean", "std", "lo", "hi"}`` in
            physical units with ``Q`` in kg/h, plus ``"level"``, ``"method"``,
            ``"converged"``, ``"diagnostics"`` (the posterior checks of
            :func:`vardax_lite.inference_diagnostics`), ``"warnings"`` (a sentence per
            failed check; empty when all pass) and, for a synthetic scene, ``"truth"``.
        method: ``"laplace"`` or ``"nuts"``.
    """

    posterior: Posterior
    summary: dict[str, Any]
    method: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable: ``{"summary": ..., "posterior": Posterior.to_dict()}``."""
        return {"summary": self.summary, "posterior": self.posterior.to_dict()}

    def storable_posterior(self) -> Posterior:
        """The posterior with a materialised covariance (a matrix-free Laplace operator
        holds closures, which an :class:`plumax_core.ArtifactRegistry` cannot store)."""
        return Posterior.from_dict(self.posterior.to_dict())


def summarise(
    posterior: Posterior, *, level: float = 0.9, key: PRNGKeyArray | None = None, n: int = 4000
) -> dict[str, Any]:
    """Physical-unit summary of a posterior (``Q`` in kg/h): median, mean, std, interval.

    Intervals are equal-tailed (:meth:`plumax_core.Posterior.credible_interval`);
    medians map the flat-space median through the monotone transforms (exact); means and
    stds come from ``n`` draws (``key`` defaults to ``jr.key(0)``: deterministic).
    """
    spec = posterior.param_spec
    if spec is None:
        raise ValueError("the posterior has no param_spec; physical units are unknown")
    ci = posterior.credible_interval(level)
    if posterior.samples is not None:
        flat = posterior.flat_samples()
        zmed = jnp.median(flat, axis=0)
        draws = spec.from_unconstrained(flat)
    else:
        zmed = posterior.mean
        draws = posterior.sample_params(jr.key(0) if key is None else key, n)
    med = spec.unflatten(spec.forward_transform(zmed)[0])
    out: dict[str, Any] = {"level": float(level)}
    for p in spec.params:
        scale = 1.0 / units.KG_H if p.name == "Q" else 1.0
        unit = "kg/h" if p.name == "Q" else p.units
        d = np.asarray(draws[p.name], dtype=np.float64) * scale
        out[p.name] = {
            "units": unit,
            "median": float(np.asarray(med[p.name])) * scale,
            "mean": float(d.mean()),
            "std": float(d.std(ddof=1)),
            "lo": float(np.asarray(ci[p.name][0])) * scale,
            "hi": float(np.asarray(ci[p.name][1])) * scale,
        }
    return out


def _as_scene(
    observations, met, model
) -> tuple[Observations, MetField, AbstractForwardModel, Any, bool]:
    """``(observations, met, model, truth, from_scene)``; ``from_scene`` when read from a
    scene (its variables then carry the file's names in error messages)."""
    truth = None
    if isinstance(observations, Scene):
        scene = observations
    elif not isinstance(observations, Observations):
        scene = read_scene(observations)  # an xarray.Dataset
    else:
        scene = None
    if scene is not None:
        observations, truth = scene.observations, scene.truth
        met = scene.met if met is None else met
        model = scene.model if model is None else model
    if met is None or model is None:
        raise ValueError("pass `met` and `model` with bare Observations (or pass a scene Dataset)")
    return observations, met, model, truth, scene is not None


def check_inputs(observations: Observations, met: MetField, *, from_scene: bool = False) -> None:
    """The physical entry checks of :func:`invert` (one rule per quantity, each in its
    library): the wind speed (``plumax_core.validation.check_wind_speed``: finite, 0.5-120
    m/s) and the observed values (``plumax_rtm.check_enhancement``: finite where valid,
    and within 10 sigma of the physical bounds of an enhancement of their ``kind``, e.g.
    no column below minus the whole background methane column, about -17 100 ppm m).

    Raises:
        ValueError: naming the variable (``met_wind_speed`` / ``values`` of a scene
            file, else ``met.wind_speed`` / ``observations.values``).
    """

    check_wind_speed("met_wind_speed" if from_scene else "met.wind_speed", met.wind_speed)
    has_sigma = observations.sigma is not None or observations.noise is not None
    pr.check_enhancement(
        observations.values,
        kind=observations.kind,
        sigma=observations.sigma_full() if has_sigma else None,
        mask=observations.mask,
        name="values" if from_scene else "observations.values",
    )


def invert(
    observations: Any,
    met: MetField | None = None,
    model: AbstractForwardModel | None = None,
    prior: AbstractPrior | None = None,
    *,
    method: str = "laplace",
    key: PRNGKeyArray | None = None,
    level: float = 0.9,
    num_warmup: int = 300,
    num_samples: int = 300,
    num_chains: int = 2,
) -> Inversion:
    """Invert observations for the source: MAP + Laplace or NUTS (vardax-lite).

    Args:
        observations: :class:`plumax_core.Observations` (then pass ``met`` and
            ``model``), or a scene ``xarray.Dataset`` written by :func:`simulate`
            (met, model and truth are read from it).
        met: the met (with bare observations).
        model: the forward model (with bare observations), e.g.
            ``pin(GaussianPlume(g), H=5.0)`` so the parameters are ``(Q, x0, y0)``.
        prior: None = :func:`plume_prior` on the model's spec.
        method: ``"laplace"`` (:class:`vardax_lite.ThreeDVar` + Laplace covariance) or
            ``"nuts"`` (:class:`vardax_lite.NUTSOracle`, started at the MAP).
        key: PRNG key for NUTS (default ``jr.key(0)``).
        level: credible level of the summary intervals.
        num_warmup: NUTS warm-up steps per chain.
        num_samples: NUTS draws per chain.
        num_chains: NUTS chains.

    Returns:
        An :class:`Inversion` whose ``summary`` also holds ``"diagnostics"``
        (:meth:`vardax_lite.InferenceDiagnostics.to_dict`: convergence, posterior
        contraction per parameter, chi-square fit at the MAP) and ``"warnings"``, one
        sentence per failed check: an unconverged optimiser or sampler, a parameter the
        data barely inform (contraction ``1 - var_post/var_prior`` < 0.5: the answer is
        mostly the prior), or data no parameter value fits (p < 0.001).

    Raises:
        ValueError: an unknown ``method`` or an input that fails :func:`check_inputs`
            (a wind speed outside 0.5-120 m/s, impossible observed values), naming it.
    """

    if method not in METHODS:
        raise ValueError(f"`method` must be one of {METHODS}, got {method!r}")
    obs, met, model, truth, from_scene = _as_scene(observations, met, model)
    check_inputs(obs, met, from_scene=from_scene)
    prior = plume_prior(model.param_spec) if prior is None else prior
    problem = vx.Problem(model, met, obs, prior)
    key = jr.key(0) if key is None else key
    if method == "laplace":
        # tolerances on the whitened control: reachable in the working precision
        tol = 1e-8 if jnp.dtype(jnp.result_type(float)) == jnp.float64 else 1e-5
        analysis = vx.ThreeDVar(max_steps=100, rtol=tol, atol=tol, adapter=vx.LaplaceCovariance())
        post = analysis.posterior(problem)
    else:
        analysis = vx.NUTSOracle(
            num_warmup=num_warmup, num_samples=num_samples, num_chains=num_chains
        )
        post = analysis.posterior(problem, key=key)
    summary = summarise(post, level=level)
    summary["method"] = method
    summary["converged"] = post.provenance.get("converged")
    diagnostics = vx.inference_diagnostics(problem, post)
    summary["diagnostics"] = diagnostics.to_dict()
    summary["warnings"] = list(diagnostics.warnings)
    if truth is not None:
        summary["truth"] = truth
    return Inversion(post, summary, method)


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
