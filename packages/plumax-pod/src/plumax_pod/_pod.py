"""Probability-of-detection (POD) curves P_d(Q, covariates).

Every POD is computed in log space: ``log_prob_detect`` and ``log_prob_miss`` are the
primitives (``jax.nn.log_sigmoid``, ``jax.scipy.special.log_ndtr`` or an explicit
``log1mexp``), so a likelihood never forms ``log(1 − p)`` from a rounded ``p``.
``Q`` is an emission rate in kg/s; covariates are a dict of arrays broadcasting with
``Q`` (``"wind"`` m/s, ``"albedo"`` (0-1), ``"sza"`` solar zenith angle in degrees,
``"pixel_size"`` m).
"""

import abc
from collections.abc import Mapping

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.scipy.special import log_ndtr
from jaxtyping import Array, ArrayLike, Float

from plumax_core.validation import check_value

from ._numerics import log1mexp

_LOG_LOG2 = float(jnp.log(jnp.log(2.0)))

Covariates = Mapping[str, ArrayLike] | None


def _log_q(Q):
    Q = jnp.asarray(Q)
    return jnp.log(jnp.maximum(Q, jnp.finfo(jnp.result_type(Q, float)).tiny))


def _cov(covariates, name, default):
    if covariates is None or name not in covariates:
        return default
    return jnp.asarray(covariates[name])


class AbstractPOD(eqx.Module):
    """A probability-of-detection curve.

    Contract for every implementation:

    * ``__call__(Q, covariates)`` lies in [0, 1] and is nondecreasing in ``Q`` (kg/s) at
      fixed covariates;
    * ``log_prob_detect = log P_d`` and ``log_prob_miss = log(1 − P_d)``, both finite
      for ``0 < P_d < 1`` and computed without cancellation;
    * everything is traceable and has finite gradients in ``Q`` and the parameters.
    """

    @abc.abstractmethod
    def log_prob_detect(self, Q: ArrayLike, covariates: Covariates = None) -> Float[Array, "..."]:
        """``log P_d(Q | covariates)``."""

    @abc.abstractmethod
    def log_prob_miss(self, Q: ArrayLike, covariates: Covariates = None) -> Float[Array, "..."]:
        """``log(1 − P_d(Q | covariates))``."""

    def __call__(self, Q: ArrayLike, covariates: Covariates = None) -> Float[Array, "..."]:
        """``P_d(Q | covariates)`` in [0, 1]."""
        return jnp.exp(self.log_prob_detect(Q, covariates))


class AbstractLogitPOD(AbstractPOD):
    """A POD that is ``sigmoid(η)`` of a linear predictor ``η`` (logistic regression)."""

    @abc.abstractmethod
    def logit(self, Q: ArrayLike, covariates: Covariates = None) -> Float[Array, "..."]:
        """The linear predictor ``η`` with ``P_d = sigmoid(η)``."""

    def log_prob_detect(self, Q, covariates=None):
        return jax.nn.log_sigmoid(self.logit(Q, covariates))

    def log_prob_miss(self, Q, covariates=None):
        return jax.nn.log_sigmoid(-self.logit(Q, covariates))


class HillPOD(AbstractLogitPOD):
    """Hill curve ``P_d = Q^n / (Q^n + Q50^n) = sigmoid(n (log Q − log Q50))`` (default).

    This is the log-logistic CDF; :class:`LogLogisticPOD` with ``mu = log Q50`` and
    ``scale = 1/n`` is the same function (Conrad et al. 2023 use this form for aircraft
    and satellite detection limits).

    Attributes:
        q50: emission rate detected half of the time (kg/s, > 0).
        slope: Hill exponent ``n`` (> 0); larger = sharper threshold.
    """

    q50: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    slope: Float[Array, ""] = eqx.field(converter=jnp.asarray, default=2.0)

    def __check_init__(self):
        check_value("q50", self.q50, positive=True)
        check_value("slope", self.slope, positive=True)

    def logit(self, Q, covariates=None):
        return self.slope * (_log_q(Q) - jnp.log(self.q50))


class LogLogisticPOD(AbstractLogitPOD):
    """Log-logistic CDF ``P_d = sigmoid((log Q − mu) / scale)``: ``log Q`` is logistic.

    Reparameterisation of :class:`HillPOD`: ``Q50 = exp(mu)``, ``n = 1/scale``.

    Attributes:
        mu: location of ``log Q`` (log kg/s).
        scale: logistic scale of ``log Q`` (> 0).
    """

    mu: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    scale: Float[Array, ""] = eqx.field(converter=jnp.asarray)

    def __check_init__(self):
        check_value("mu", self.mu)
        check_value("scale", self.scale, positive=True)

    def logit(self, Q, covariates=None):
        return (_log_q(Q) - self.mu) / self.scale


class WindNormalisedLogisticPOD(AbstractLogitPOD):
    """Logistic in the wind-normalised rate ``Q/u`` (kg/m), the quantity an imager sees
    (the integrated mass enhancement scales as ``Q/u``; Varon et al. 2018):
    ``P_d = sigmoid((Q/u − x50) / width)``. Needs ``covariates["wind"]`` (m/s); defaults to
    ``wind_ref``.

    Attributes:
        x50: ``Q/u`` detected half the time (kg/m, > 0).
        width: logistic width in ``Q/u`` (kg/m, > 0).
        wind_ref: static wind used when none is given (m/s).
    """

    x50: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    width: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    wind_ref: float = eqx.field(static=True, default=3.0)

    def __check_init__(self):
        check_value("x50", self.x50, positive=True)
        check_value("width", self.width, positive=True)
        check_value("wind_ref", self.wind_ref, positive=True)

    def logit(self, Q, covariates=None):
        u = _cov(covariates, "wind", self.wind_ref)
        return (jnp.asarray(Q) / u - self.x50) / self.width


class ProbitPOD(AbstractPOD):
    """Lognormal CDF ``P_d = Φ((log Q − log Q50) / sigma)`` (probit in log Q).

    Attributes:
        q50: 50 % detection rate (kg/s). sigma: spread of ``log Q`` (> 0).
    """

    q50: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    sigma: Float[Array, ""] = eqx.field(converter=jnp.asarray)

    def __check_init__(self):
        check_value("q50", self.q50, positive=True)
        check_value("sigma", self.sigma, positive=True)

    def _z(self, Q):
        return (_log_q(Q) - jnp.log(self.q50)) / self.sigma

    def log_prob_detect(self, Q, covariates=None):
        return log_ndtr(self._z(Q))

    def log_prob_miss(self, Q, covariates=None):
        return log_ndtr(-self._z(Q))


class CloglogPOD(AbstractPOD):
    """Complementary log-log link ``P_d = 1 − exp(−exp(η))``,
    ``η = log log 2 + slope (log Q − log Q50)`` so that ``P_d(Q50) = 1/2``. Asymmetric:
    the approach to 1 is faster than the departure from 0 (a Weibull CDF in Q).
    """

    q50: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    slope: Float[Array, ""] = eqx.field(converter=jnp.asarray, default=2.0)

    def __check_init__(self):
        check_value("q50", self.q50, positive=True)
        check_value("slope", self.slope, positive=True)

    def _eta(self, Q):
        return _LOG_LOG2 + self.slope * (_log_q(Q) - jnp.log(self.q50))

    def log_prob_detect(self, Q, covariates=None):
        return log1mexp(-jnp.exp(self._eta(Q)))

    def log_prob_miss(self, Q, covariates=None):
        return -jnp.exp(self._eta(Q))


class SNRPOD(AbstractPOD):
    """Known-signal detection in Gaussian noise (Kay 1998, §4.3): ``P_d = Φ(SNR − z_fa)``.

    ``SNR = (Q/u) / (noise · pixel_size / pixel_ref)``: the plume signal scales as ``Q/u``
    and the noise-equivalent ``Q/u`` grows linearly with the pixel size. ``z_fa`` is the
    detection threshold in noise units (``Φ⁻¹(1 − false-alarm rate)``).

    Attributes:
        noise: noise-equivalent ``Q/u`` at ``pixel_ref`` (kg/m, > 0).
        threshold: ``z_fa`` (dimensionless).
        wind_ref, pixel_ref: static defaults for missing covariates (m/s, m).
    """

    noise: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    threshold: Float[Array, ""] = eqx.field(converter=jnp.asarray, default=3.0)
    wind_ref: float = eqx.field(static=True, default=3.0)
    pixel_ref: float = eqx.field(static=True, default=30.0)

    def __check_init__(self):
        check_value("noise", self.noise, positive=True)
        check_value("threshold", self.threshold)

    def snr(self, Q, covariates=None):
        u = _cov(covariates, "wind", self.wind_ref)
        px = _cov(covariates, "pixel_size", self.pixel_ref)
        return jnp.asarray(Q) / u / (self.noise * px / self.pixel_ref)

    def log_prob_detect(self, Q, covariates=None):
        return log_ndtr(self.snr(Q, covariates) - self.threshold)

    def log_prob_miss(self, Q, covariates=None):
        return log_ndtr(self.threshold - self.snr(Q, covariates))


class MultiCovariateLogisticPOD(AbstractLogitPOD):
    """Additive logistic model in log Q and the observing conditions:

    ``η = b0 + b_Q (log Q − log q_ref) + b_wind log(u/u_ref) + b_albedo (albedo − a_ref)
    + b_sza (cos sza − cos sza_ref) + b_pixel log(pixel/pixel_ref)``. A missing covariate
    takes its reference value (zero effect). Monotone in Q because ``b_Q > 0``.

    Attributes:
        b0, b_q, b_wind, b_albedo, b_sza, b_pixel: coefficients (``b_q > 0``).
        q_ref (kg/s), wind_ref (m/s), albedo_ref, sza_ref (deg), pixel_ref (m): static
            reference conditions.
    """

    b0: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    b_q: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    b_wind: Float[Array, ""] = eqx.field(converter=jnp.asarray, default=0.0)
    b_albedo: Float[Array, ""] = eqx.field(converter=jnp.asarray, default=0.0)
    b_sza: Float[Array, ""] = eqx.field(converter=jnp.asarray, default=0.0)
    b_pixel: Float[Array, ""] = eqx.field(converter=jnp.asarray, default=0.0)
    q_ref: float = eqx.field(static=True, default=1.0)
    wind_ref: float = eqx.field(static=True, default=3.0)
    albedo_ref: float = eqx.field(static=True, default=0.2)
    sza_ref: float = eqx.field(static=True, default=30.0)
    pixel_ref: float = eqx.field(static=True, default=30.0)

    def __check_init__(self):
        check_value("b_q", self.b_q, positive=True)
        for name in ("b0", "b_wind", "b_albedo", "b_sza", "b_pixel"):
            check_value(name, getattr(self, name))

    def logit(self, Q, covariates=None):
        u = _cov(covariates, "wind", self.wind_ref)
        a = _cov(covariates, "albedo", self.albedo_ref)
        sza = _cov(covariates, "sza", self.sza_ref)
        px = _cov(covariates, "pixel_size", self.pixel_ref)
        return (
            self.b0
            + self.b_q * (_log_q(Q) - jnp.log(self.q_ref))
            + self.b_wind * jnp.log(u / self.wind_ref)
            + self.b_albedo * (a - self.albedo_ref)
            + self.b_sza * (jnp.cos(jnp.deg2rad(sza)) - jnp.cos(jnp.deg2rad(self.sza_ref)))
            + self.b_pixel * jnp.log(px / self.pixel_ref)
        )


class OverpassSchedule(eqx.Module):
    """When an instrument looks: overpass times (s) each observing ``[t − half_window,
    t + half_window]``.

    Attributes:
        times: ``(m,)`` overpass times (s).
        half_window: static half-width of each observation window (s, > 0).
    """

    times: Float[Array, " m"] = eqx.field(converter=jnp.asarray)
    half_window: float = eqx.field(static=True, default=600.0)

    def __check_init__(self):
        if self.times.ndim != 1:
            raise ValueError(f"`times` must be 1-D, got shape {self.times.shape}")
        check_value("times", self.times)
        check_value("half_window", self.half_window, positive=True)

    def covers(self, t: ArrayLike) -> Float[Array, "..."]:
        """1.0 where ``t`` lies inside an observation window, else 0.0."""
        t = jnp.asarray(t)
        d = jnp.abs(t[..., None] - self.times)
        return jnp.any(d <= self.half_window, axis=-1).astype(jnp.result_type(t, float))


class MultiInstrumentPOD(AbstractPOD):
    """Union of independent instruments: ``P_d = 1 − Π_k (1 − c_k(t) P_d^k(Q))``.

    ``c_k(t) ∈ {0, 1}`` says whether instrument ``k`` observes at ``t`` (its
    :class:`OverpassSchedule`); without schedules (or without ``t``) every instrument is
    assumed to look. Covariates may be given per instrument as a tuple of dicts.

    Attributes:
        pods: tuple of per-instrument PODs.
        schedules: matching tuple of :class:`OverpassSchedule` or None.
    """

    pods: tuple[AbstractPOD, ...]
    schedules: tuple[OverpassSchedule, ...] | None = None

    def __check_init__(self):
        if not self.pods or not all(isinstance(p, AbstractPOD) for p in self.pods):
            raise TypeError("`pods` must be a non-empty tuple of AbstractPOD")
        if self.schedules is not None and len(self.schedules) != len(self.pods):
            raise ValueError(
                f"`schedules` has {len(self.schedules)} entries for {len(self.pods)} pods"
            )

    def _covs(self, covariates):
        if isinstance(covariates, tuple):
            if len(covariates) != len(self.pods):
                raise ValueError("`covariates` tuple must have one entry per instrument")
            return covariates
        return (covariates,) * len(self.pods)

    def log_prob_miss(self, Q, covariates=None, t=None):
        total = 0.0
        for k, (pod, cov) in enumerate(zip(self.pods, self._covs(covariates), strict=True)):
            lm = pod.log_prob_miss(Q, cov)
            if self.schedules is not None and t is not None:
                lm = lm * self.schedules[k].covers(t)
            total = total + lm
        return total

    def log_prob_detect(self, Q, covariates=None, t=None):
        return log1mexp(self.log_prob_miss(Q, covariates, t))

    def __call__(self, Q, covariates=None, t=None):
        return jnp.exp(self.log_prob_detect(Q, covariates, t))
