"""Tier V from a plume list: ``plumax population CATALOG.csv``.

A plume-list CSV (`plumax_pod.read_catalog`; canonical, IMEO, Carbon Mapper or
GHGSat-style columns) becomes population answers with uncertainty, fitted by the thinned
marked temporal point process of plumax-pod (`plumax_pod.LognormalHillModel`: constant
event rate, lognormal event sizes, a Hill probability of detection per instrument):
the true event rate, the size distribution, what the instruments miss, and the total
emitted mass ``M_total = Λ · E[Q] · duration`` next to the naive catalogue sum.

Units: kg/h and tonnes at this edge; kg/s and seconds inside plumax-pod.
"""

import dataclasses
import datetime
import math
from typing import Any

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import PRNGKeyArray

__all__ = ["PopulationResult", "population"]

KG_H_PER_KG_S = 3600.0
DAY_S = 86400.0
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
    from plumax_pod import summarise_samples

    s = summarise_samples(np.asarray(draws, np.float64) * scale, level)
    return {"median": s["median"], "lo": s["lower"], "hi": s["upper"]}


def population(
    path: Any,
    *,
    schema: str = "canonical",
    errors: str = "raise",
    start: float | None = None,
    end: float | None = None,
    dedup_m: float = 0.0,
    dedup_hours: float = 0.0,
    event_hours: float = 1.0,
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
        path: plume-list CSV.
        schema: column schema name (``plumax_pod.SCHEMAS``: ``"canonical"``, ``"imeo"``,
            ``"carbon_mapper"``, ``"ghgsat"``).
        errors: ``"raise"`` (a malformed row is an error naming its line) or ``"report"``
            (malformed rows are listed in ``summary["malformed"]`` and left out).
        start, end: observation window, Unix seconds; default the first and last
            detection (then the rate is slightly biased high for short catalogues).
        dedup_m, dedup_hours: merge detections within this distance (m) and time (h) of
            a cluster's first detection (`plumax_pod.deduplicate`, keeping the largest);
            0 and 0 = no de-duplication.
        event_hours: duration of one event, h (converts rates to mass).
        pod_q50_kgh, pod_slope: a probability of detection known from controlled
            releases (Hill: ``P_d = Q^s / (Q^s + Q50^s)``), the same for every instrument;
            both or neither. Without them ``Q50`` per instrument and the slope are fitted
            with a log-normal prior centred on ``q50_prior_kgh`` (1 e-fold sd).
        method: ``"laplace"`` (MAP + Laplace) or ``"nuts"``.
        key: PRNG key (draws, NUTS); default ``jr.key(0)``.
        level: credible level of the intervals.
        n_draws: posterior draws for derived quantities.
        num_warmup, num_samples: NUTS budget (one chain).

    Returns:
        A `PopulationResult`. ``summary`` holds ``catalog`` (rows, events, instruments,
        window), ``parameters`` (event rate per day, median and mean event size in kg/h,
        log-sd, per-instrument Q50 in kg/h and slope, each ``{median, lo, hi}``),
        ``detected_fraction`` (population-averaged P_d per instrument), ``total_t``
        (M_total in tonnes), ``naive_total_t``, ``missing_mass_fraction``,
        ``p_event_per_day`` and ``waiting_time_h``.

    Raises:
        ValueError: bad arguments (naming them), an unreadable or malformed catalogue
            (``plumax_pod.CatalogError`` lists every bad line), detections outside the
            window or too few events to fit.
    """
    import plumax_pod as pp

    if method not in METHODS:
        raise ValueError(f"`method` must be one of {METHODS}, got {method!r}")
    if not 0 < level < 1:
        raise ValueError(f"`level` must be in (0, 1), got {level}")
    for name, v in (("dedup_m", dedup_m), ("dedup_hours", dedup_hours)):
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"`{name}` must be >= 0, got {v}")
    if not (math.isfinite(event_hours) and event_hours > 0):
        raise ValueError(f"`event_hours` must be > 0 h, got {event_hours}")
    if (pod_q50_kgh is None) != (pod_slope is None):
        raise ValueError("give both `pod_q50_kgh` and `pod_slope` (a known POD), or neither")
    if pod_q50_kgh is not None and not (pod_q50_kgh > 0 and pod_slope > 0):
        raise ValueError(f"a known POD needs Q50 > 0 and slope > 0, got {pod_q50_kgh}, {pod_slope}")
    if not q50_prior_kgh > 0:
        raise ValueError(f"`q50_prior_kgh` must be > 0, got {q50_prior_kgh}")
    key = jr.key(0) if key is None else key

    read = pp.read_catalog(path, schema, errors=errors)
    catalog, report = read if errors == "report" else (read, None)
    n_rows = len(catalog) if report is None else report.n_rows
    n_clean = len(catalog)
    if dedup_m > 0 or dedup_hours > 0:
        catalog, _ = pp.deduplicate(
            catalog, distance_m=dedup_m, time_s=dedup_hours * 3600.0, keep="max"
        )
    if len(catalog) < 5:
        raise ValueError(f"the catalogue has {len(catalog)} usable events; need at least 5")
    t_start = float(catalog.time.min()) if start is None else float(start)
    t_end = float(catalog.time.max()) if end is None else float(end)
    if not t_end > t_start:
        raise ValueError(f"the window end ({_iso(t_end)}) must be after its start")
    outside = (catalog.time < t_start) | (catalog.time > t_end)
    if outside.any():
        lines = ", ".join(str(int(x)) for x in catalog.lines[outside][:5])
        raise ValueError(
            f"{int(outside.sum())} detection(s) fall outside the window "
            f"{_iso(t_start)} - {_iso(t_end)} (lines {lines})"
        )
    names, idx = np.unique(catalog.instrument, return_inverse=True)
    k = len(names)
    times = catalog.times_relative(t_start)
    span = t_end - t_start
    have_sigma = np.all(np.isfinite(catalog.q_sigma) & (catalog.q_sigma > 0))
    if have_sigma:  # delta method: sd(log Q) = sigma_Q / Q
        marks = pp.GaussianMarks(np.log(catalog.q), catalog.q_sigma / catalog.q)
    else:
        marks = pp.PointMarks(catalog.q)

    with jax.enable_x64(True):
        data = pp.PopulationData(
            jnp.asarray(times), marks, np.zeros(k), np.full(k, span), instrument=idx
        )
        fixed = None
        if pod_q50_kgh is not None:
            fixed = tuple(
                pp.HillPOD(pod_q50_kgh / KG_H_PER_KG_S, float(pod_slope)) for _ in range(k)
            )
        n_events = len(catalog)
        model = pp.LognormalHillModel(
            n_instruments=k,
            fixed_pod=fixed,
            rate_prior=(n_events / span, 5.0),
            q50_prior=(q50_prior_kgh / KG_H_PER_KG_S, 1.0),
        )
        k_fit, k_draw = jr.split(key)
        if method == "laplace":
            post = pp.fit_map_laplace(model, data)
        else:
            post = pp.fit_nuts(
                model, data, key=k_fit, num_warmup=num_warmup, num_samples=num_samples
            )
        z = post.sample(k_draw, n_draws)

        def derived(zi):
            p = model.param_spec.from_unconstrained(zi)
            intensity, mk, pods = model.build(p)
            frac = jnp.stack([pp.detection_fraction(mk, pod) for pod in pods])
            q50 = jnp.stack([jnp.asarray(pod.q50) for pod in pods])
            slope = jnp.asarray(pods[0].slope)
            return {
                "rate": p["rate"],
                "mu": p["mu"],
                "sigma": p["sigma"],
                "mean_q": mk.mean(),
                "q50": q50,
                "slope": slope,
                "frac": frac,
            }

        d = {kk: np.asarray(v, np.float64) for kk, v in jax.vmap(derived)(z).items()}
    duration = event_hours * 3600.0
    total_kg = d["rate"] * span * d["mean_q"] * duration
    naive_kg = float(np.sum(catalog.q) * duration)
    params = {
        "event_rate_per_day": _interval(d["rate"], level, DAY_S),
        "median_event_kgh": _interval(np.exp(d["mu"]), level, KG_H_PER_KG_S),
        "mean_event_kgh": _interval(d["mean_q"], level, KG_H_PER_KG_S),
        "log_sd": _interval(d["sigma"], level),
        "q50_kgh": {
            str(n): _interval(d["q50"][:, i], level, KG_H_PER_KG_S) for i, n in enumerate(names)
        },
        "slope": _interval(d["slope"], level),
    }
    summary = {
        "catalog": {
            "path": str(path),
            "schema": schema,
            "rows": int(n_rows),
            "clean_rows": int(n_clean),
            "events": int(n_events),
            "instruments": [str(n) for n in names],
            "events_per_instrument": {str(n): int(np.sum(idx == i)) for i, n in enumerate(names)},
            "start": _iso(t_start),
            "end": _iso(t_end),
            "days": span / DAY_S,
            "mark_likelihood": "gaussian" if have_sigma else "point",
        },
        "malformed": None
        if report is None
        else [{"line": int(ln), "problem": msg} for ln, msg in report.issues],
        "method": method,
        "level": level,
        "pod": "known" if fixed is not None else "fitted",
        "converged": bool(post.provenance.get("converged", True)),
        "parameters": params,
        "detected_fraction": {
            str(n): _interval(d["frac"][:, i], level) for i, n in enumerate(names)
        },
        "event_hours": event_hours,
        "total_t": _interval(total_kg, level, 1e-3),
        "naive_total_t": naive_kg * 1e-3,
        "missing_mass_fraction": _interval(1.0 - naive_kg / total_kg, level),
        "p_event_per_day": _interval(-np.expm1(-d["rate"] * DAY_S), level),
        "waiting_time_h": _interval(1.0 / d["rate"], level, 1.0 / 3600.0),
    }
    return PopulationResult(summary=summary, posterior=post, model=model, data=data)
