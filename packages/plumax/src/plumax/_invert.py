"""Inversion of observations for a point source (composition of vardax-lite and core).

:func:`invert` (MAP + Laplace mixture or NUTS, with a physical-unit summary),
:func:`plume_prior`, :func:`summarise`, :func:`check_inputs` and :class:`Inversion`;
re-exported by :mod:`plumax.pipelines`.
"""

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import lineax as lx
import numpy as np
from jaxtyping import PRNGKeyArray

import plumax_rtm as pr
import vardax_lite as vx
from plumax_core import (
    AbstractForwardModel,
    AbstractPrior,
    GaussianPrior,
    MetField,
    Observations,
    ParamSpec,
    Posterior,
    posterior_to_datatree,
    units,
)
from plumax_core.validation import check_emission_rate, check_wind_speed

from ._scene import Scene, read_scene

__all__ = [
    "METHODS",
    "Inversion",
    "check_inputs",
    "invert",
    "plume_prior",
    "summarise",
]

METHODS = ("laplace", "nuts")


def plume_prior(
    spec: ParamSpec,
    *,
    q_kgh: float = 100.0,
    q_log_std: float = 1.5,
    position: tuple[float, float] = (0.0, 0.0),
    position_std: float = 100.0,
    bias_std: float | Mapping[str, float] = 10.0,
    nuisance_std: Mapping[str, float] | None = None,
) -> GaussianPrior:
    """An independent Gaussian prior in the unconstrained space of ``spec``.

    ``Q`` is lognormal with median ``q_kgh`` (kg/h) and log-std ``q_log_std``; ``x0``,
    ``y0`` are normal around ``position`` (m) with std ``position_std``; every
    ``bias_<name>`` is normal around 0 with std ``bias_std`` (a number, or a mapping
    ``name -> std``); a parameter named in ``nuisance_std`` (the wind, gain and offset
    nuisances of :func:`add_nuisances`) is normal around 0 with that std; any other
    parameter gets N(0, 1) in its unconstrained coordinate.
    """
    nuisance_std = dict(nuisance_std or {})
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
        elif p.name in nuisance_std:
            mean.append(0.0)
            std.append(float(nuisance_std[p.name]))
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
        frame: the scene's :class:`plumax_core.LocalFrame` when it is geolocated (the
            summary then has ``"source"`` in lon/lat), else None.
    """

    posterior: Posterior
    summary: dict[str, Any]
    method: str
    frame: Any = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable: ``{"summary": ..., "posterior": Posterior.to_dict()}``."""
        return {"summary": self.summary, "posterior": self.posterior.to_dict()}

    def to_datatree(self):
        """The posterior as NetCDF groups (:func:`plumax_core.posterior_to_datatree`: the
        ArviZ ``posterior`` group of physical draws when there are draws, else the
        ``gaussian`` group; the exact ``unconstrained`` state), plus a ``summary`` group:
        one scalar per summarised quantity (its median, with ``units``, ``mean``,
        ``std``, ``lo``, ``hi`` and ``level`` as attributes; ``Q`` in kg/h; the source
        position as ``source_lon``/``source_lat`` when geolocated), and the whole
        summary as JSON in the root attribute ``summary``. With draws and a frame, the
        ``posterior`` group also holds ``source_lon``/``source_lat`` draws (degrees)."""
        import json

        import xarray as xr

        tree = posterior_to_datatree(self.storable_posterior())
        level = float(self.summary.get("level", 0.9))
        rows: dict[str, Any] = {}
        items = [(k, v) for k, v in self.summary.items() if isinstance(v, dict) and "median" in v]
        items += [(f"source_{k}", v) for k, v in self.summary.get("source", {}).items()]
        for name, v in items:
            attrs = {k: v[k] for k in ("units", "mean", "std", "lo", "hi") if k in v}
            rows[name] = ((), float(v["median"]), {**attrs, "level": level})
        tree["summary"] = xr.DataTree(xr.Dataset(rows, attrs={"statistic": "median"}))
        if self.frame is not None and "posterior" in tree.children:
            post = tree["posterior"].to_dataset()
            lon, lat = self.frame.to_lonlat(post["x0"].values, post["y0"].values)
            post["source_lon"] = (("chain", "draw"), lon, {"units": "degrees_east"})
            post["source_lat"] = (("chain", "draw"), lat, {"units": "degrees_north"})
            tree["posterior"] = xr.DataTree(post)
        tree.attrs = {**tree.attrs, "summary": json.dumps(self.summary), "method": self.method}
        return tree

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
) -> tuple[Observations, MetField, AbstractForwardModel, Any, bool, dict[str, float], list, Any]:
    """``(observations, met, model, truth, from_scene, nuisance_std, starts, frame)``;
    ``from_scene`` when read from a scene (its variables then carry the file's names in
    error messages); ``frame`` the scene's local frame when it is geolocated."""
    truth = None
    stds: dict[str, float] = {}
    starts: list[dict[str, float]] = []
    if isinstance(observations, Scene):
        scene = observations
    elif not isinstance(observations, Observations):
        scene = read_scene(observations)  # an xarray.Dataset
    else:
        scene = None
    if scene is not None:
        observations, truth = scene.observations, scene.truth
        met = scene.met if met is None else met
        if model is None:
            model, stds, starts = scene.model, dict(scene.nuisance_std), list(scene.starts)
    if met is None or model is None:
        raise ValueError("pass `met` and `model` with bare Observations (or pass a scene Dataset)")
    frame = None if scene is None else scene.frame
    return observations, met, model, truth, scene is not None, stds, starts, frame


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


def _nuisances_held(problem, names: set[str]):
    """``problem`` with the prior std of the nuisance parameters ``names`` shrunk to
    1e-4 of theirs (a diagonal Gaussian prior; else ``problem`` itself): the source is
    fitted first, with the nuisances at their prior mean, so that the joint MAP search
    starts off the ridge along which Q, the gain and the wind speed trade off."""
    prior = problem.prior
    spec = problem.param_spec
    if not names or not isinstance(prior, GaussianPrior) or not lx.is_diagonal(prior.cov):
        return problem
    std = jnp.sqrt(lx.diagonal(prior.cov))
    held = jnp.asarray([1e-4 if n in names else 1.0 for n in spec.flat_names], std.dtype)
    pinned = GaussianPrior.from_std(spec, prior.mean, std * held)
    return vx.Problem(problem.forward_model, problem.met, problem.observations, pinned)


def _staged_start(analysis, problem, z0):
    """The MAP of ``problem`` from ``z0``; ``z0`` itself when the search meets a
    non-finite model value (the joint search then tries from there)."""
    try:
        return analysis.solve(problem, z0).z
    except eqx.EquinoxRuntimeError:
        return z0


def _start_z(spec: ParamSpec, prior, start: Mapping[str, float] | None):
    """The unconstrained start of a MAP search: ``start`` over the prior mean (None:
    the prior mean)."""
    if not start:
        return None
    unknown = sorted(set(start) - set(spec.names))
    if unknown:
        raise ValueError(f"`start` names {unknown} that are not model parameters")
    mean = spec.from_unconstrained(prior.mean)
    return spec.to_unconstrained(
        {k: jnp.asarray(start.get(k, v), v.dtype) for k, v in mean.items()}
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
    nuisance_std: Mapping[str, float] | None = None,
    start: Mapping[str, float] | Sequence[Mapping[str, float]] | None = None,
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
        method: ``"laplace"`` (:class:`vardax_lite.ThreeDVar` + Laplace covariance at
            each distinct optimum found from the ``start`` points, mixed by their
            evidence: :class:`vardax_lite.LaplaceMixture`) or
            ``"nuts"`` (:class:`vardax_lite.NUTSOracle`, started at the MAP).
        key: PRNG key for NUTS (default ``jr.key(0)``).
        level: credible level of the summary intervals.
        num_warmup: NUTS warm-up steps per chain.
        num_samples: NUTS draws per chain.
        num_chains: NUTS chains.
        nuisance_std: prior 1-sigma of the model's nuisance parameters (wind, retrieval
            gain, offset: :func:`add_nuisances`) for the default prior; a scene file
            with a retrieval error model or a met uncertainty brings its own (its model
            then carries those parameters, marginalised in every summary).
        start: where the Laplace MAP search starts, in the model's parameter units
            (``Q`` in kg/s), for the parameters given (the others at the prior mean),
            or a sequence of such starts (the lowest cost wins), e.g.
            :meth:`Retrieval.starts` (the quick-look flux and points in the most upwind
            plume pixel); default the prior mean. NUTS starts from the best of several
            MAP searches of its own.

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
    obs, met, model, truth, from_scene, stds, scene_starts, frame = _as_scene(
        observations, met, model
    )
    start = scene_starts if start is None and scene_starts else start
    check_inputs(obs, met, from_scene=from_scene)
    stds.update(nuisance_std or {})
    prior = plume_prior(model.param_spec, nuisance_std=stds) if prior is None else prior
    problem = vx.Problem(model, met, obs, prior)
    key = jr.key(0) if key is None else key
    if method == "laplace":
        # tolerances on the whitened control: reachable in the working precision
        tol = 1e-8 if jnp.dtype(jnp.result_type(float)) == jnp.float64 else 1e-5
        analysis = vx.ThreeDVar(max_steps=100, rtol=tol, atol=tol, adapter=vx.LaplaceCovariance())
        starts = [start] if isinstance(start, Mapping) else list(start or [None])
        pinned = _nuisances_held(problem, set(stds))
        raw = [_start_z(model.param_spec, prior, s0) for s0 in starts]
        raw = [prior.mean if z is None else z for z in raw]
        z0s = list(raw)
        if pinned is not problem:
            # each start twice: as given, and after a fit of the source with the
            # nuisances held (the joint search from there does not wander along the
            # Q-gain-wind ridge; from the raw start it can reach a mode that needs a
            # wind offset); the mixture keeps the distinct optima
            z0s = [_staged_start(analysis, pinned, z0) for z0 in raw] + raw
        mixture = vx.LaplaceMixture(base=analysis)
        post = mixture.posterior(problem, key=key, starts=jnp.stack(z0s))
    else:
        analysis = vx.NUTSOracle(
            num_warmup=num_warmup, num_samples=num_samples, num_chains=num_chains
        )
        post = analysis.posterior(problem, key=key)
    summary = summarise(post, level=level)
    summary["method"] = method
    summary["converged"] = post.provenance.get("converged")
    diagnostics = vx.inference_diagnostics(problem, post, nuisance=tuple(stds))
    summary["diagnostics"] = diagnostics.to_dict()
    summary["warnings"] = list(diagnostics.warnings)
    if frame is not None:
        summary["source"] = source_lonlat(post, frame, level=level)
    if truth is not None:
        summary["truth"] = truth
    return Inversion(post, summary, method, frame)


def source_lonlat(posterior: Posterior, frame, *, level: float = 0.9, n: int = 4000):
    """The source position of a posterior over ``x0``/``y0`` (m, in ``frame``) in degrees:
    ``{"lon": {...}, "lat": {...}}``, each with ``median``, ``lo``, ``hi`` (equal-tailed at
    ``level``) and ``units``, from the posterior's draws (or ``n`` draws from its
    Gaussian, ``jr.key(0)``) mapped through :meth:`plumax_core.LocalFrame.to_lonlat`."""
    if posterior.samples is not None:
        draws = posterior.param_spec.from_unconstrained(posterior.flat_samples())
    else:
        draws = posterior.sample_params(jr.key(0), n)
    lon, lat = frame.to_lonlat(np.asarray(draws["x0"]), np.asarray(draws["y0"]))
    q = [(1 - level) / 2, 0.5, 1 - (1 - level) / 2]
    out = {}
    for name, vals, unit in (("lon", lon, "degrees_east"), ("lat", lat, "degrees_north")):
        lo, med, hi = np.quantile(vals, q)
        out[name] = {"units": unit, "median": float(med), "lo": float(lo), "hi": float(hi)}
    return out
