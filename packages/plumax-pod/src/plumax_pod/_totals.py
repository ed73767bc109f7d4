"""Persistency and emission totals from a fitted population model.

* ``P(≥1 detected event in [t0, t1]) = 1 − exp(−p̄ Λ(t0, t1))`` for a Poisson process
  thinned with detection fraction ``p̄`` (``p̄ = 1`` for true events).
* Expected waiting time from ``t0`` to the next event: ``E[W] = ∫_0^∞ exp(−p̄ Λ(t0, t0+s)) ds``
  (``1/(p̄ λ)`` for a constant rate).
* Expected emitted mass over ``[t0, t1]``: ``M = Λ(t0, t1) · E[Q] · D`` (kg) with ``D``
  the duration of one event (:func:`total_emission_samples`): what the model expects,
  not conditioned on what was seen.
* Missed mass: ``M_miss = D ∫ λ(t) ∫ Q P_miss(Q, t) f(Q) dQ dt`` with
  ``P_miss(Q, t) = Π_k (1 − c_k(t) P_k(Q))`` — instrument ``k`` looks at ``t`` (its window
  or overpass windows) and then sees a fraction ``c_k`` of the events, independently of
  the other instruments (:func:`expected_missed_mass`). The total given the catalogue is
  ``M_total = Σ_i q_i D + M_miss``: the detected mass plus a non-negative missed part,
  so ``M_total >= Σ_i q_i D`` and the missing-mass fraction ``M_miss / M_total`` lies in
  [0, 1) by construction (:func:`missing_mass`). Compare with the naive sum of the
  detected rates ``Σ_i q_i D`` (:func:`naive_total`), which misses every undetected event.
"""

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from plumax_core import Posterior
from plumax_core.units import DAY, YEAR
from plumax_core.validation import check_value

from ._intensity import AbstractIntensity, ConstantIntensity
from ._likelihood import detection_fraction
from ._marks import AbstractMarkDistribution, LognormalMarks
from ._numerics import gauss_legendre
from ._pod import AbstractPOD
from ._population_data import PopulationData


def prob_at_least_one(
    intensity: AbstractIntensity, t0: ArrayLike, t1: ArrayLike, *, p_detect: ArrayLike = 1.0
) -> Float[Array, "..."]:
    """Probability of at least one (detected) event in ``[t0, t1]`` (Poisson process)."""
    return -jnp.expm1(-jnp.asarray(p_detect) * intensity.integrated(t0, t1))


def expected_waiting_time(
    intensity: AbstractIntensity,
    t0: ArrayLike = 0.0,
    *,
    p_detect: ArrayLike = 1.0,
    horizon: float = YEAR,
    n_panels: int = 512,
) -> Float[Array, ""]:
    """Expected time (s) from ``t0`` to the next (detected) event.

    Exact ``1/(p̄ λ)`` for :class:`ConstantIntensity`; otherwise composite Gauss-Legendre of
    the survival function ``exp(−p̄ Λ(t0, t0+s))`` on ``[0, horizon]`` (the mass beyond the
    horizon is neglected: choose it much longer than the typical waiting time).
    """
    p = jnp.asarray(p_detect)
    if isinstance(intensity, ConstantIntensity):
        return 1.0 / (p * intensity.rate)
    check_value("horizon", horizon, positive=True)
    x, w = gauss_legendre(8)
    edges = jnp.linspace(0.0, horizon, n_panels + 1)
    a, b = edges[:-1, None], edges[1:, None]
    s = 0.5 * (b - a) * jnp.asarray(x) + 0.5 * (a + b)
    t0 = jnp.asarray(t0)
    surv = jnp.exp(-p * intensity.integrated(jnp.broadcast_to(t0, s.shape), t0 + s))
    return jnp.sum(0.5 * (b - a) * jnp.asarray(w) * surv)


def total_emission_samples(
    model,
    posterior: Posterior,
    t0: ArrayLike,
    t1: ArrayLike,
    *,
    duration: float,
    key: PRNGKeyArray,
    n: int = 2000,
) -> Float[Array, " n"]:
    """Posterior draws of ``M_total = Λ(t0, t1) · E[Q] · duration`` (kg).

    Args:
        model: the :class:`~plumax_pod.AbstractPopulationModel` that was fitted.
        posterior: its fit (``param_spec`` must be ``model.param_spec``).
        t0, t1: window (s). duration: duration of one event (s). n: draws.
    """
    check_value("duration", duration, positive=True)
    z = posterior.sample(key, n)

    def one(zi):
        intensity, marks, _ = model.build(model.param_spec.from_unconstrained(zi))
        return intensity.integrated(t0, t1) * marks.mean() * duration

    return jax.vmap(one)(z)


def coverage_segments(data: PopulationData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split the analysis window ``[min t0_k, max t1_k]`` into segments within which every
    instrument either looks all the time or not at all.

    Returns:
        ``(a, b, cover)``: ``(J,)`` segment starts and ends (s) and ``(J, K)`` the coverage
        fraction ``c_k`` of each instrument during each segment (0 where it does not look).
        Needs concrete (not traced) ``data``.
    """
    t0 = np.asarray(data.t0, np.float64)
    t1 = np.asarray(data.t1, np.float64)
    c = np.asarray(data.coverage, np.float64)
    k_all = t0.size
    edges = [t0, t1]
    windows = []
    for k in range(k_all):
        sched = None if data.schedules is None else data.schedules[k]
        if sched is None:
            windows.append(None)
            continue
        o = np.asarray(sched.times, np.float64)
        lo = np.clip(o - sched.half_window, t0[k], t1[k])
        hi = np.clip(o + sched.half_window, t0[k], t1[k])
        windows.append((lo, hi))
        edges += [lo, hi]
    cuts = np.unique(np.concatenate(edges))
    a, b = cuts[:-1], cuts[1:]
    mid = 0.5 * (a + b)
    cover = np.zeros((a.size, k_all))
    for k in range(k_all):
        looks = (mid >= t0[k]) & (mid <= t1[k])
        if windows[k] is not None:
            lo, hi = windows[k]
            j = np.searchsorted(lo, mid, side="right") - 1  # windows ascending, disjoint
            jj = np.clip(j, 0, max(lo.size - 1, 0))
            looks &= (j >= 0) & (mid <= hi[jj]) if lo.size else np.zeros_like(looks)
        cover[:, k] = np.where(looks, c[k], 0.0)
    return a, b, cover


def expected_missed_mass(
    intensity: AbstractIntensity,
    marks: AbstractMarkDistribution,
    pods: tuple[AbstractPOD, ...],
    segments: tuple[np.ndarray, np.ndarray, np.ndarray],
    *,
    duration: float,
    n_quad: int = 64,
) -> Float[Array, ""]:
    """Expected mass (kg) of the events nobody detected (module docstring), >= 0.

    Args:
        intensity, marks, pods: the population (events/s, kg/s, one POD per instrument).
        segments: :func:`coverage_segments` of the data (concrete numpy arrays).
        duration: duration of one event (s).
        n_quad: order of the marks' log-space quadrature.

    Every term is a product of non-negative factors (``Λ >= 0``, quadrature weights,
    ``Q``, ``1 − c P ∈ [0, 1]``), so the result is never negative.
    """
    check_value("duration", duration, positive=True)
    a, b, cover = segments
    if cover.shape[1] != len(pods):
        raise ValueError(f"`segments` cover {cover.shape[1]} instruments, `pods` has {len(pods)}")
    patterns, inv = np.unique(cover, axis=0, return_inverse=True)
    inv = np.asarray(inv).reshape(-1)
    lam = jnp.maximum(intensity.integrated(jnp.asarray(a), jnp.asarray(b)), 0.0)
    x, lw = marks.log_quadrature(n_quad)
    lmiss = [pod.log_prob_miss(jnp.exp(x)) for pod in pods]
    total = 0.0
    for p, row in enumerate(patterns):
        lp = jnp.zeros_like(x)
        for k, c in enumerate(row):
            if c <= 0.0:
                continue  # instrument k does not look here: it misses everything
            if c >= 1.0:
                lp = lp + lmiss[k]
            else:  # log(1 − c P) = log((1 − c) + c (1 − P))
                lp = lp + jnp.logaddexp(np.log1p(-c), np.log(c) + lmiss[k])
        mean_q_missed = jnp.exp(logsumexp(lw + x + lp))  # E_f[Q P_miss]
        total = total + jnp.sum(jnp.where(inv == p, lam, 0.0)) * mean_q_missed
    return total * duration


def missing_mass(detected_kg: ArrayLike, missed_kg: ArrayLike) -> dict[str, Array]:
    """``total = detected + missed`` and ``fraction = missed / total`` (module docstring).

    Returns ``{"detected", "missed", "total", "fraction"}`` in one dtype (that of the
    inputs as JAX arrays): ``total >= detected`` holds there exactly (rounding is monotone),
    and ``fraction`` lies in [0, 1): where the detected share is below the float
    resolution (e.g. 6e-8 in float32) it is the largest float below 1, not a rounded-up 1.0.

    Args:
        detected_kg: mass of the detected events, ``Σ_i q_i D`` (kg, > 0).
        missed_kg: expected missed mass (kg, >= 0; e.g. :func:`expected_missed_mass`).

    Raises:
        ValueError: ``detected_kg <= 0`` or a negative / NaN ``missed_kg`` (concrete).
    """
    check_value("detected_kg", detected_kg, positive=True)
    check_value("missed_kg", missed_kg, nonneg=True)
    detected, missed = jnp.asarray(detected_kg), jnp.asarray(missed_kg)
    total = detected + missed
    # missed / total < 1 exactly; when detected / total is below the float resolution
    # the quotient would round up to 1.0, so it is rounded down to the largest float < 1
    fraction = missed / total
    below_one = jnp.nextafter(jnp.ones((), fraction.dtype), jnp.zeros((), fraction.dtype))
    return {
        "detected": detected,
        "missed": missed,
        "total": total,
        "fraction": jnp.minimum(fraction, below_one),
    }


def naive_total(q: ArrayLike, *, duration: float) -> Float[Array, ""]:
    """The naive catalogue total ``Σ_i q_i · duration`` (kg); biased low (missing mass)."""
    check_value("duration", duration, positive=True)
    q = jnp.asarray(q)
    check_value("q", q, nonneg=True)
    return jnp.sum(q) * duration


def summarise_samples(samples: ArrayLike, level: float = 0.95) -> dict[str, float]:
    """Mean, median and equal-tailed ``level`` interval of draws."""
    s = np.asarray(samples)
    lo, hi = np.quantile(s, [(1 - level) / 2, (1 + level) / 2])
    return {
        "mean": float(s.mean()),
        "median": float(np.median(s)),
        "lower": float(lo),
        "upper": float(hi),
        "level": level,
    }


def population_draws(
    model,
    posterior: Posterior,
    data: PopulationData,
    *,
    detected_q: ArrayLike,
    duration: float,
    key: PRNGKeyArray,
    n: int = 4000,
    batch_size: int = 500,
    n_quad: int = 64,
) -> dict[str, np.ndarray]:
    """Posterior draws of the population's parameters and derived answers.

    Every derived number is computed here, per draw, by the functions of this module:

    * the model's physical parameters (``model.param_spec`` names, e.g. ``rate`` in
      events/s, ``mu``/``sigma`` of log Q, ``q50`` in kg/s, ``slope``);
    * ``mean_q`` (kg/s, ``E[Q]``) and, for lognormal marks, ``median_q`` (``e^mu``);
    * ``detected_fraction``: ``(n, K)`` ``p̄_k = ∫ P_k f dQ`` per instrument;
    * ``expected_kg``: ``Λ · E[Q] · duration`` over the window (:func:`total_emission_samples`'s
      quantity, not conditioned on the catalogue);
    * ``missed_kg`` (:func:`expected_missed_mass`), and from it ``total_kg`` and
      ``missing_fraction`` (:func:`missing_mass`): ``total = Σ q_i · duration + missed``;
    * ``p_event_per_day`` (:func:`prob_at_least_one` over the window's first day) and
      ``waiting_time_s`` (:func:`expected_waiting_time` from the window start).

    Args:
        model: the fitted :class:`~plumax_pod.AbstractPopulationModel`.
        posterior: its fit. data: the data it was fitted to (concrete).
        detected_q: ``(n_events,)`` detected emission rates (kg/s) — the catalogue sum.
        duration: duration of one event (s). key: PRNG key of the draws. n: draws.
        batch_size: draws evaluated together (memory is ``O(batch_size)``).
        n_quad: order of the marks' quadrature.

    Returns:
        ``{name: numpy array with a leading axis of n draws}``.
    """
    check_value("duration", duration, positive=True)
    if not (isinstance(n, int) and n > 0 and isinstance(batch_size, int) and batch_size > 0):
        raise ValueError(f"`n` and `batch_size` must be positive ints, got {n}, {batch_size}")
    check_value("detected_q", detected_q, positive=True)
    detected_kg = float(naive_total(detected_q, duration=duration))  # as the caller's naive sum
    segments = coverage_segments(data)
    t0 = float(np.min(np.asarray(data.t0)))
    t1 = float(np.max(np.asarray(data.t1)))
    z = posterior.sample(key, n)

    def one(zi):
        params = model.param_spec.from_unconstrained(zi)
        intensity, marks, pods = model.build(params)
        missed = expected_missed_mass(
            intensity, marks, pods, segments, duration=duration, n_quad=n_quad
        )
        mm = missing_mass(detected_kg, missed)
        out = dict(params)
        out.update(
            mean_q=marks.mean(),
            detected_fraction=jnp.stack(
                [detection_fraction(marks, p, n_quad=n_quad) for p in pods]
            ),
            expected_kg=intensity.integrated(t0, t1) * marks.mean() * duration,
            missed_kg=missed,
            total_kg=mm["total"],
            missing_fraction=mm["fraction"],
            p_event_per_day=prob_at_least_one(intensity, t0, t0 + DAY),
            waiting_time_s=expected_waiting_time(intensity, t0),
        )
        if isinstance(marks, LognormalMarks):
            out["median_q"] = jnp.exp(marks.mu)
        return out

    draws = jax.lax.map(one, z, batch_size=min(batch_size, n))
    return {k: np.asarray(v, np.float64) for k, v in draws.items()}
