"""Intensity models λ(t) of a temporal point process, with exact compensators.

Every intensity is an equinox module with ``__call__(t)`` — the (conditional) event
rate in events per second at time ``t`` (seconds, relative to a reference epoch the
user chooses; keep ``|t|`` below ~1e7 s in float32) — and ``integrated(t0, t1)``, the
compensator ``Λ(t0, t1) = ∫_{t0}^{t1} λ(t) dt`` (expected number of events). All the
compensators below are exact closed forms; :meth:`AbstractIntensity.integrated_quadrature`
gives a Gauss-Legendre reference for any intensity (Daley & Vere-Jones 2003, ch. 7).

History-dependent intensities (Weibull renewal, Hawkes) carry the event history as a
fixed-size array (pad with ``+inf``: padded entries never influence anything) and are
conditional intensities ``λ(t | H_t)`` given the events strictly before ``t``.
"""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from plumax_core.units import DAY, HOUR, YEAR
from plumax_core.validation import as_float_array, check_value

from ._numerics import gauss_legendre

_TWO_PI = 2 * np.pi


class AbstractIntensity(eqx.Module):
    """An intensity (events/s) with its compensator.

    Contract for every implementation:

    * ``__call__(t) >= 0`` elementwise, ``t`` in seconds, any shape;
    * ``integrated(t0, t1)`` equals ``∫_{t0}^{t1} λ(t) dt`` for ``t0 <= t1`` (broadcasting),
      and is additive: ``Λ(a, b) + Λ(b, c) = Λ(a, c)``;
    * both are traceable (jit/vmap/grad through the parameters).
    """

    @abc.abstractmethod
    def __call__(self, t: ArrayLike) -> Float[Array, "..."]:
        """Rate λ(t) in events per second."""

    @abc.abstractmethod
    def integrated(self, t0: ArrayLike, t1: ArrayLike) -> Float[Array, "..."]:
        """Compensator ∫_{t0}^{t1} λ(t) dt (expected count, dimensionless)."""

    def integrated_quadrature(self, t0: float, t1: float, n: int = 256) -> Array:
        """Composite Gauss-Legendre estimate of ∫λ dt on ``n`` panels of 8 nodes."""
        x, w = gauss_legendre(8)
        edges = jnp.linspace(t0, t1, n + 1)
        a, b = edges[:-1, None], edges[1:, None]
        t = 0.5 * (b - a) * jnp.asarray(x) + 0.5 * (a + b)
        return jnp.sum(0.5 * (b - a) * jnp.asarray(w) * self(t))

    def log_rate(self, t: ArrayLike) -> Float[Array, "..."]:
        """``log λ(t)`` (override where a stabler form exists)."""
        return jnp.log(self(t))


def _harmonic_integral(t0, t1, period, phase):
    """∫_{t0}^{t1} cos(2π (t - phase)/period) dt."""
    k = _TWO_PI / period
    return (jnp.sin(k * (t1 - phase)) - jnp.sin(k * (t0 - phase))) / k


class ConstantIntensity(AbstractIntensity):
    """Homogeneous Poisson process: λ(t) = ``rate`` (events/s)."""

    rate: Float[Array, ""] = eqx.field(converter=jnp.asarray)

    def __check_init__(self):
        check_value("rate", self.rate, nonneg=True)

    def __call__(self, t):
        t = jnp.asarray(t)
        return jnp.broadcast_to(self.rate, t.shape).astype(jnp.result_type(t, self.rate))

    def integrated(self, t0, t1):
        return self.rate * (jnp.asarray(t1) - jnp.asarray(t0))


class _AbstractHarmonicIntensity(AbstractIntensity):
    """λ(t) = rate · (1 + amplitude · cos(2π (t − t_peak) / period)); shared by the
    diurnal and seasonal cycles, which differ only in their default period.

    Attributes (declared by each final subclass): ``rate`` (events/s), ``amplitude``
    in [0, 1], ``t_peak`` (s), ``period`` (s, static).
    """

    rate: eqx.AbstractVar[Float[Array, ""]]
    amplitude: eqx.AbstractVar[Float[Array, ""]]
    t_peak: eqx.AbstractVar[Float[Array, ""]]
    period: eqx.AbstractVar[float]

    def __check_init__(self):
        check_value("rate", self.rate, nonneg=True)
        check_value("amplitude", self.amplitude, lo=0.0, hi=1.0)
        check_value("period", self.period, positive=True)

    def __call__(self, t):
        t = jnp.asarray(t)
        return self.rate * (1 + self.amplitude * jnp.cos(_TWO_PI * (t - self.t_peak) / self.period))

    def integrated(self, t0, t1):
        t0, t1 = jnp.asarray(t0), jnp.asarray(t1)
        return self.rate * (
            (t1 - t0) + self.amplitude * _harmonic_integral(t0, t1, self.period, self.t_peak)
        )


class DiurnalIntensity(_AbstractHarmonicIntensity):
    """λ(t) = rate · (1 + amplitude · cos(2π (t − t_peak) / 1 day)), ``|amplitude| <= 1``.

    Attributes:
        rate: daily-mean rate (events/s).
        amplitude: relative diurnal amplitude in [0, 1].
        t_peak: time of the daily maximum (s, modulo one day).
    """

    rate: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    amplitude: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    t_peak: Float[Array, ""] = eqx.field(converter=jnp.asarray, default=0.0)
    period: float = eqx.field(static=True, default=DAY)


class SeasonalIntensity(_AbstractHarmonicIntensity):
    """λ(t) = rate · (1 + amplitude · cos(2π (t − t_peak) / 1 year)); year = 365.25 d."""

    rate: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    amplitude: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    t_peak: Float[Array, ""] = eqx.field(converter=jnp.asarray, default=0.0)
    period: float = eqx.field(static=True, default=YEAR)


class DiurnalSeasonalIntensity(AbstractIntensity):
    """Separable cycle λ(t) = rate · (1 + a_d cos θ_d(t)) · (1 + a_s cos θ_s(t)).

    ``θ_d = 2π (t − t_peak_d)/day``, ``θ_s = 2π (t − t_peak_s)/year``. The compensator uses
    ``cos x cos y = ½[cos(x − y) + cos(x + y)]``, so it is exact.
    """

    rate: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    amplitude_diurnal: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    amplitude_seasonal: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    t_peak_diurnal: Float[Array, ""] = eqx.field(converter=jnp.asarray, default=0.0)
    t_peak_seasonal: Float[Array, ""] = eqx.field(converter=jnp.asarray, default=0.0)
    period_diurnal: float = eqx.field(static=True, default=DAY)
    period_seasonal: float = eqx.field(static=True, default=YEAR)

    def __check_init__(self):
        check_value("rate", self.rate, nonneg=True)
        check_value("amplitude_diurnal", self.amplitude_diurnal, lo=0.0, hi=1.0)
        check_value("amplitude_seasonal", self.amplitude_seasonal, lo=0.0, hi=1.0)

    def __call__(self, t):
        t = jnp.asarray(t)
        d = 1 + self.amplitude_diurnal * jnp.cos(
            _TWO_PI * (t - self.t_peak_diurnal) / self.period_diurnal
        )
        s = 1 + self.amplitude_seasonal * jnp.cos(
            _TWO_PI * (t - self.t_peak_seasonal) / self.period_seasonal
        )
        return self.rate * d * s

    def integrated(self, t0, t1):
        t0, t1 = jnp.asarray(t0), jnp.asarray(t1)
        kd, ks = _TWO_PI / self.period_diurnal, _TWO_PI / self.period_seasonal
        pd, ps = self.t_peak_diurnal, self.t_peak_seasonal
        ad, as_ = self.amplitude_diurnal, self.amplitude_seasonal

        def sin_int(k, c, t0, t1):  # ∫ cos(k t − c) dt
            return (jnp.sin(k * t1 - c) - jnp.sin(k * t0 - c)) / k

        cross = 0.5 * (
            sin_int(kd - ks, kd * pd - ks * ps, t0, t1)
            + sin_int(kd + ks, kd * pd + ks * ps, t0, t1)
        )
        return self.rate * (
            (t1 - t0)
            + ad * sin_int(kd, kd * pd, t0, t1)
            + as_ * sin_int(ks, ks * ps, t0, t1)
            + ad * as_ * cross
        )


def _box_measure(s, period, start, duration):
    """Measure of ∪_k [k·period + start, k·period + start + duration) within [0, s)."""
    k = jnp.floor(s / period)
    r = s - k * period
    return k * duration + jnp.clip(r - start, 0.0, duration)


class PeriodicBatchIntensity(AbstractIntensity):
    """Batch operations: ``base + batch_rate`` during windows of length ``duration`` that
    start every ``period`` seconds at ``offset`` (mod period), ``base`` otherwise.

    Attributes:
        base: background rate (events/s, ≥ 0).
        batch_rate: extra rate during a batch window (events/s, ≥ 0).
        offset: start of the first window (s).
        period, duration: static window period and length (s), ``0 < duration <= period``.
    """

    base: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    batch_rate: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    offset: Float[Array, ""] = eqx.field(converter=jnp.asarray, default=0.0)
    period: float = eqx.field(static=True, default=DAY)
    duration: float = eqx.field(static=True, default=HOUR)

    def __check_init__(self):
        check_value("base", self.base, nonneg=True)
        check_value("batch_rate", self.batch_rate, nonneg=True)
        check_value("period", self.period, positive=True)
        check_value("duration", self.duration, positive=True, hi=self.period)

    def _on(self, t):
        r = jnp.mod(t - self.offset, self.period)
        return r < self.duration

    def __call__(self, t):
        t = jnp.asarray(t)
        return self.base + self.batch_rate * self._on(t)

    def integrated(self, t0, t1):
        t0, t1 = jnp.asarray(t0), jnp.asarray(t1)
        on = _box_measure(t1 - self.offset, self.period, 0.0, self.duration) - _box_measure(
            t0 - self.offset, self.period, 0.0, self.duration
        )
        return self.base * (t1 - t0) + self.batch_rate * on


class OperationalIntensity(AbstractIntensity):
    """Working-hours activity: ``rate_on`` during ``[start_hour, end_hour)`` local time on
    working days, ``rate_off`` otherwise.

    Attributes:
        rate_on, rate_off: rates in and out of working hours (events/s).
        start_hour, end_hour: static local working hours, ``0 <= start < end <= 24``.
        workdays: static number of working days per week (days 0..workdays−1 of each week,
            counted from ``week_origin``); 7 = every day.
        week_origin: static time (s) of local midnight at the start of a working week
            (e.g. a Monday); also fixes the local-time offset.
    """

    rate_on: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    rate_off: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    start_hour: float = eqx.field(static=True, default=8.0)
    end_hour: float = eqx.field(static=True, default=18.0)
    workdays: int = eqx.field(static=True, default=7)
    week_origin: float = eqx.field(static=True, default=0.0)

    def __check_init__(self):
        check_value("rate_on", self.rate_on, nonneg=True)
        check_value("rate_off", self.rate_off, nonneg=True)
        if not 0.0 <= self.start_hour < self.end_hour <= 24.0:
            raise ValueError(
                f"`start_hour`, `end_hour` need 0 <= start < end <= 24, got "
                f"{self.start_hour}, {self.end_hour}"
            )
        if not (isinstance(self.workdays, int) and 1 <= self.workdays <= 7):
            raise ValueError(f"`workdays` must be an int in 1..7, got {self.workdays!r}")

    def _on_measure(self, t):
        s = t - self.week_origin
        day = jnp.floor(s / DAY)
        week = jnp.floor(day / 7)
        dow = day - 7 * week
        n_work = week * self.workdays + jnp.minimum(dow, self.workdays)
        d = (self.end_hour - self.start_hour) * HOUR
        partial = jnp.clip(s - day * DAY - self.start_hour * HOUR, 0.0, d)
        return n_work * d + jnp.where(dow < self.workdays, partial, 0.0)

    def __call__(self, t):
        t = jnp.asarray(t)
        s = t - self.week_origin
        day = jnp.floor(s / DAY)
        dow = day - 7 * jnp.floor(day / 7)
        h = (s - day * DAY) / HOUR
        on = (dow < self.workdays) & (h >= self.start_hour) & (h < self.end_hour)
        return jnp.where(on, self.rate_on, self.rate_off)

    def integrated(self, t0, t1):
        t0, t1 = jnp.asarray(t0), jnp.asarray(t1)
        on = self._on_measure(t1) - self._on_measure(t0)
        return self.rate_off * (t1 - t0) + (self.rate_on - self.rate_off) * on


def _history(name, h):
    h = as_float_array(name, h)
    if h.ndim != 1:
        raise ValueError(f"`{name}` must be 1-D (n_events,), got shape {h.shape}")
    return h


class WeibullRenewalIntensity(AbstractIntensity):
    """Renewal process with Weibull inter-event times, as a conditional intensity.

    ``λ(t | H_t) = h(t − t_last)`` with the Weibull hazard ``h(x) = (k/s)(x/s)^{k−1}`` and
    ``t_last`` the latest of ``origin`` and the history events before ``t``; the
    compensator sums cumulative hazards ``(x/s)^k`` over the inter-event segments (exact).
    ``k < 1``: bursty (clustered), ``k = 1``: Poisson with rate 1/s, ``k > 1``: regular.

    Attributes:
        shape: Weibull shape ``k`` (> 0).
        scale: Weibull scale ``s`` (s, > 0).
        history: ``(n,)`` sorted event times (s); pad with ``+inf``.
        origin: start of the first inter-event interval (s).
    """

    shape: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    scale: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    history: Float[Array, " n"] = eqx.field(converter=lambda h: _history("history", h))
    origin: Float[Array, ""] = eqx.field(converter=jnp.asarray, default=0.0)

    def __check_init__(self):
        check_value("shape", self.shape, positive=True)
        check_value("scale", self.scale, positive=True)
        check_value("history", self.history, finite=False)

    def _points(self):
        return jnp.concatenate(
            [jnp.reshape(self.origin, (1,)).astype(self.history.dtype), self.history]
        )

    def _cumhaz(self, x):
        x = jnp.maximum(x, 0.0)
        safe = jnp.where(x > 0, x, 1.0)
        return jnp.where(x > 0, (safe / self.scale) ** self.shape, 0.0)

    def __call__(self, t):
        t = jnp.asarray(t)
        p = self._points()
        last = jnp.max(jnp.where(p[None, :] < t.reshape(-1, 1), p[None, :], -jnp.inf), axis=1)
        x = t.reshape(-1) - last
        safe = jnp.where(jnp.isfinite(x) & (x > 0), x, 1.0)
        h = (self.shape / self.scale) * (safe / self.scale) ** (self.shape - 1)
        return jnp.where(jnp.isfinite(x) & (x > 0), h, 0.0).reshape(t.shape)

    def integrated(self, t0, t1):
        t0, t1 = jnp.broadcast_arrays(jnp.asarray(t0), jnp.asarray(t1))
        p = self._points()
        seg_end = jnp.concatenate([p[1:], jnp.full((1,), jnp.inf, p.dtype)])

        def one(a, b):
            lo = jnp.clip(a, p, seg_end)
            hi = jnp.clip(b, p, seg_end)
            finite = jnp.isfinite(p)
            pp = jnp.where(finite, p, 0.0)
            contrib = self._cumhaz(jnp.where(finite, hi - pp, 0.0)) - self._cumhaz(
                jnp.where(finite, lo - pp, 0.0)
            )
            return jnp.sum(jnp.where(finite, contrib, 0.0))

        out = jax.vmap(one)(t0.reshape(-1), t1.reshape(-1))
        return out.reshape(t0.shape)


class HawkesIntensity(AbstractIntensity):
    """Self-exciting (Hawkes 1971) process with an exponential kernel.

    ``λ(t | H_t) = μ + α β Σ_{t_j < t} exp(−β (t − t_j))``: each event adds on average
    ``α`` offspring (branching ratio, stationary iff ``α < 1``) after a mean delay ``1/β``.
    Compensator (exact): ``μ (t1 − t0) + α Σ_j [e^{−β (t0 − t_j)_+} − e^{−β (t1 − t_j)_+}]``
    over events before ``t1`` (Ozaki 1979).

    Attributes:
        mu: background rate (events/s, ≥ 0).
        alpha: branching ratio in [0, 1).
        beta: kernel decay rate (1/s, > 0).
        history: ``(n,)`` event times (s), pad with ``+inf``.
    """

    mu: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    alpha: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    beta: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    history: Float[Array, " n"] = eqx.field(converter=lambda h: _history("history", h))

    def __check_init__(self):
        check_value("mu", self.mu, nonneg=True)
        check_value("alpha", self.alpha, nonneg=True, hi=0.999999)
        check_value("beta", self.beta, positive=True)
        check_value("history", self.history, finite=False)

    def __call__(self, t):
        t = jnp.asarray(t)
        dt = t.reshape(-1, 1) - self.history[None, :]
        before = dt > 0
        k = jnp.where(before, jnp.exp(-self.beta * jnp.where(before, dt, 0.0)), 0.0)
        return (self.mu + self.alpha * self.beta * jnp.sum(k, axis=1)).reshape(t.shape)

    def integrated(self, t0, t1):
        t0, t1 = jnp.broadcast_arrays(jnp.asarray(t0), jnp.asarray(t1))
        h = self.history
        fin = jnp.isfinite(h)
        hh = jnp.where(fin, h, 0.0)

        def one(a, b):
            ea = jnp.exp(-self.beta * jnp.maximum(a - hh, 0.0))
            eb = jnp.exp(-self.beta * jnp.maximum(b - hh, 0.0))
            return self.mu * (b - a) + self.alpha * jnp.sum(jnp.where(fin & (hh < b), ea - eb, 0.0))

        out = jax.vmap(one)(t0.reshape(-1), t1.reshape(-1))
        return out.reshape(t0.shape)
