"""Tier V from a plume list: ``plumax population CATALOG.csv``.

A plume-list CSV (`plumax_pod.read_catalog`; canonical, IMEO, Carbon Mapper or
GHGSat-style columns) becomes population answers with uncertainty, fitted by the thinned
marked temporal point process of plumax-pod (`plumax_pod.LognormalHillModel`: constant
event rate, lognormal event sizes, a Hill probability of detection per instrument):
the true event rate, the size distribution, what the instruments miss, and the total
emitted mass (detected + expected missed) next to the naive catalogue sum.

This module only orchestrates: reading, coverage, data, the fit and every derived
number are plumax-pod functions (`read_catalog`, `read_coverage`,
`catalog_population_data`, `fit_map_laplace` / `fit_nuts`, `population_draws`,
`summarise_samples`); here they are called in order and converted to kg/h, tonnes,
days and hours for the summary.

Units: kg/h and tonnes at this edge; kg/s and seconds inside plumax-pod.
"""

import dataclasses
import datetime
import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.random as jr
import numpy as np
from jaxtyping import PRNGKeyArray

import plumax_pod as pp
from plumax_core import units
from plumax_pod import summarise_samples

__all__ = ["PopulationResult", "population"]

METHODS = ("laplace", "nuts")


@dataclasses.dataclass(frozen=True)
class PopulationResult:
    """What :func:`population` produced.

    Attributes:
        summary: JSON-ready numbers (see :func:`population`).
        posterior: the `plumax_core.Posterior` of the population parameters.
        model: the fitted `plumax_pod.LognormalHillModel`.
        data: the `plumax_pod.PopulationData` it was fitted to.
    """

    summary: dict[str, Any]
    posterior: Any
    model: Any
    data: Any


def _iso(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).isoformat(timespec="seconds")


def _interval(draws: np.ndarray, level: float, scale: float = 1.0) -> dict[str, float]:
    s = summarise_samples(np.asarray(draws, np.float64) * scale, level)
    return {"median": s["median"], "lo": s["lower"], "hi": s["upper"]}


def _coverage(pp, coverage, coverage_file, half_window_s, time_kw):
    if coverage is not None and coverage_file is not None:
        raise ValueError("give `coverage` or `coverage_file`, not both")
    if coverage_file is not None:
        return pp.read_coverage(coverage_file, half_window_s=half_window_s, **time_kw)
    if isinstance(coverage, Mapping):
        return {str(k): v for k, v in coverage.items()}
    return coverage


def population(
    path: Any,
    *,
    schema: str = "canonical",
    errors: str = "raise",
    blank_sigma: str = "error",
    time_format: str | None = None,
    epoch_unit: str | None = None,
    years: tuple[int, int] = (1970, 2100),
    start: float | None = None,
    end: float | None = None,
    dedup_m: float = 0.0,
    dedup_hours: float = 0.0,
    event_hours: float = 1.0,
    coverage: float | Mapping[str, Any] | None = None,
    coverage_file: Any = None,
    overpass_half_window_h: float | None = None,
    pool: bool | None = None,
    pod_q50_kgh: float | None = None,
    pod_slope: float | None = None,
    q50_prior_kgh: float = 100.0,
    method: str = "laplace",
    key: PRNGKeyArray | None = None,
    level: float = 0.9,
    n_draws: int = 4000,
    num_warmup: int = 500,
    num_samples: int = 500,
) -> PopulationResult:
    """Fit the population model to a plume list and summarise it.

    Args:
        path: plume-list CSV (UTF-8; docs/pod/catalogs.md).
        schema: column schema name (``plumax_pod.SCHEMAS``: ``"canonical"``, ``"imeo"``,
            ``"carbon_mapper"``, ``"ghgsat"``).
        errors: ``"raise"`` (a malformed row is an error naming its line) or ``"report"``
            (malformed rows, exact duplicates included, are listed in
            ``summary["malformed"]`` and left out).
        blank_sigma: ``"error"`` (a blank ``q_sigma`` in a file with that column is a
            malformed row) or ``"point"`` (such rows are exact rates).
        time_format: how times are read (``plumax_pod.TimeRule``): ISO 8601 by default,
            or a ``strptime`` format.
        epoch_unit: Unix epochs in ``"s"`` / ``"ms"`` instead of dates.
        years: detections must fall in these years (first, last).
        start: start of the observation window, Unix seconds; default the first
            detection (then the rate is slightly biased high for short catalogues).
        end: end of the window, Unix seconds; default the last detection.
        dedup_m: merge detections within this distance (m) of a cluster's first
            detection (`plumax_pod.deduplicate`, keeping the largest); with
            ``dedup_hours``; 0 and 0 = no de-duplication.
        dedup_hours: and within this time (h).
        event_hours: duration of one event, h (converts rates to mass).
        coverage: what the instruments observed (`plumax_pod.catalog_population_data`):
            one fraction in (0, 1] (all instruments pooled), or ``{instrument: fraction
            or plumax_pod.InstrumentCoverage}`` for every instrument.
        coverage_file: a coverage CSV (`plumax_pod.read_coverage`: per-instrument
            fractions or overpass times); not with ``coverage``.
        overpass_half_window_h: half-width of an overpass window, h, for a coverage file
            without a ``half_window_s`` column; default ``event_hours / 2``.
        pool: True fits all instruments as one; False refuses to pool; None (default)
            pools several instruments only when their coverage is not stated (and says
            so in ``summary["coverage"]`` and ``summary["warnings"]``).
        pod_q50_kgh: ``Q50`` (kg/h) of a probability of detection known from controlled
            releases (Hill: ``P_d = Q^s / (Q^s + Q50^s)``), the same for every instrument;
            give both it and ``pod_slope`` or neither. Without them ``Q50`` per
            instrument and the slope are fitted with a log-normal prior centred on
            ``q50_prior_kgh`` (1 e-fold sd).
        pod_slope: the Hill slope ``s`` of that probability of detection.
        method: ``"laplace"`` (MAP + Laplace) or ``"nuts"``.
        key: PRNG key (draws, NUTS); default ``jr.key(0)``.
        level: credible level of the intervals.
        n_draws: posterior draws for derived quantities.
        num_warmup: NUTS warm-up steps (one chain).
        num_samples: NUTS draws (one chain).

    Returns:
        A `PopulationResult`. ``summary`` holds ``catalog`` (rows, events, instruments,
        window, time rule, uncertainty rule), ``coverage`` (pooled?, stated?, per fitted
        instrument its events and coverage), ``parameters`` (event rate per day, median
        and mean event size in kg/h, log-sd, per-instrument Q50 in kg/h and slope, each
        ``{median, lo, hi}``), ``detected_fraction`` (population-averaged P_d per
        instrument), ``total_t`` (detected + expected missed mass, t), ``missed_t``,
        ``naive_total_t`` (the detected mass), ``missing_mass_fraction`` (in [0, 1)),
        ``p_event_per_day``, ``waiting_time_h`` and ``warnings``.

    Raises:
        ValueError: bad arguments (naming them), an unreadable or malformed catalogue
            (``plumax_pod.CatalogError`` lists every bad line) or coverage file,
            detections outside the window, unstated coverage with ``pool=False``, or
            too few events to fit.
    """

    if method not in METHODS:
        raise ValueError(f"`method` must be one of {METHODS}, got {method!r}")
    if not 0 < level < 1:
        raise ValueError(f"`level` must be in (0, 1), got {level}")
    for name, v in (("dedup_m", dedup_m), ("dedup_hours", dedup_hours)):
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"`{name}` must be >= 0, got {v}")
    if not (math.isfinite(event_hours) and event_hours > 0):
        raise ValueError(f"`event_hours` must be > 0 h, got {event_hours}")
    if overpass_half_window_h is not None and not (
        math.isfinite(overpass_half_window_h) and overpass_half_window_h > 0
    ):
        raise ValueError(f"`overpass_half_window_h` must be > 0 h, got {overpass_half_window_h}")
    if (pod_q50_kgh is None) != (pod_slope is None):
        raise ValueError("give both `pod_q50_kgh` and `pod_slope` (a known POD), or neither")
    if pod_q50_kgh is not None and not (pod_q50_kgh > 0 and pod_slope > 0):
        raise ValueError(f"a known POD needs Q50 > 0 and slope > 0, got {pod_q50_kgh}, {pod_slope}")
    if not q50_prior_kgh > 0:
        raise ValueError(f"`q50_prior_kgh` must be > 0, got {q50_prior_kgh}")
    key = jr.key(0) if key is None else key
    time_kw = {"time_format": time_format, "epoch_unit": epoch_unit, "years": tuple(years)}
    pp.TimeRule(**time_kw)  # bad time options fail before any reading
    half_window_h = event_hours / 2 if overpass_half_window_h is None else overpass_half_window_h
    cov = _coverage(pp, coverage, coverage_file, half_window_h * units.HOUR, time_kw)

    catalog, report = pp.read_catalog(
        path, schema, errors="report", blank_sigma=blank_sigma, **time_kw
    )
    if report.issues and errors == "raise":
        raise pp.CatalogError(report)
    n_clean = len(catalog)
    if dedup_m > 0 or dedup_hours > 0:
        catalog, _ = pp.deduplicate(
            catalog, distance_m=dedup_m, time_s=dedup_hours * units.HOUR, keep="max"
        )
    if len(catalog) < 5:
        raise ValueError(f"the catalogue has {len(catalog)} usable events; need at least 5")

    duration = event_hours * units.HOUR
    with jax.enable_x64(True):
        fit = pp.catalog_population_data(catalog, start=start, end=end, coverage=cov, pool=pool)
        k = len(fit.instruments)
        fixed = None
        if pod_q50_kgh is not None:
            fixed = tuple(
                pp.HillPOD(units.kg_h_to_kg_s(pod_q50_kgh), float(pod_slope)) for _ in range(k)
            )
        model = pp.LognormalHillModel(
            n_instruments=k,
            fixed_pod=fixed,
            rate_prior=(fit.rate_scale(), 5.0),
            q50_prior=(units.kg_h_to_kg_s(q50_prior_kgh), 1.0),
        )
        k_fit, k_draw = jr.split(key)
        if method == "laplace":
            post = pp.fit_map_laplace(model, fit.data)
        else:
            post = pp.fit_nuts(
                model, fit.data, key=k_fit, num_warmup=num_warmup, num_samples=num_samples
            )
        d = pp.population_draws(
            model,
            post,
            fit.data,
            detected_q=fit.detected_q,
            duration=duration,
            key=k_draw,
            n=n_draws,
        )
        naive_kg = float(pp.naive_total(fit.detected_q, duration=duration))  # float64 here
    names = fit.instruments
    q50 = d["q50"].reshape(n_draws, -1) if "q50" in d else None
    params = {
        "event_rate_per_day": _interval(d["rate"], level, units.DAY),
        "median_event_kgh": _interval(d["median_q"], level, 1.0 / units.KG_H),
        "mean_event_kgh": _interval(d["mean_q"], level, 1.0 / units.KG_H),
        "log_sd": _interval(d["sigma"], level),
        "q50_kgh": {
            n: (
                {"median": pod_q50_kgh, "lo": pod_q50_kgh, "hi": pod_q50_kgh}
                if q50 is None
                else _interval(q50[:, i], level, 1.0 / units.KG_H)
            )
            for i, n in enumerate(names)
        },
        "slope": (
            {"median": pod_slope, "lo": pod_slope, "hi": pod_slope}
            if "slope" not in d
            else _interval(d["slope"], level)
        ),
    }
    converged = bool(post.provenance.get("converged", True))
    warnings = []
    if fit.pooled or not fit.coverage_stated:
        warnings.append(fit.note)
    if post.provenance.get("hessian_positive_definite") is False:
        warnings.append(
            "the Hessian at the mode is not positive definite (a flat or saddle direction): "
            "the Laplace intervals are not trustworthy; try --method nuts"
        )
    elif not converged:
        warnings.append("the fit did not converge; treat the numbers with care")
    instruments, counts = np.unique(catalog.instrument, return_counts=True)
    summary = {
        "catalog": {
            "path": str(path),
            "schema": schema,
            "rows": int(report.n_rows),
            "clean_rows": int(n_clean),
            "events": int(len(catalog)),
            "instruments": [str(x) for x in instruments],
            "events_per_instrument": {
                str(x): int(c) for x, c in zip(instruments, counts, strict=True)
            },
            "start": _iso(fit.start),
            "end": _iso(fit.end),
            "days": fit.span_s / units.DAY,
            "time_rule": report.time_rule,
            "q_sigma": report.q_sigma,
            "mark_likelihood": fit.mark_likelihood,
        },
        "coverage": fit.describe(),
        "malformed": None
        if errors == "raise"
        else [{"line": int(ln), "problem": msg} for ln, msg in report.issues],
        "method": method,
        "level": level,
        "pod": "known" if fixed is not None else "fitted",
        "converged": converged,
        "parameters": params,
        "detected_fraction": {
            n: _interval(d["detected_fraction"][:, i], level) for i, n in enumerate(names)
        },
        "event_hours": event_hours,
        "total_t": _interval(d["total_kg"], level, 1e-3),
        "missed_t": _interval(d["missed_kg"], level, 1e-3),
        "naive_total_t": naive_kg * 1e-3,
        "missing_mass_fraction": _interval(d["missing_fraction"], level),
        "p_event_per_day": _interval(d["p_event_per_day"], level),
        "waiting_time_h": _interval(d["waiting_time_s"], level, 1.0 / units.HOUR),
        "warnings": warnings,
    }
    return PopulationResult(summary=summary, posterior=post, model=model, data=fit.data)
