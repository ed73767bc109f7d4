"""Mark (event size) distributions f(Q) over emission rates Q (kg/s).

Each distribution provides ``log_prob(Q)`` (density in Q), ``log_prob_log(x)`` (density
of ``x = log Q``: ``f(e^x) e^x``), ``sample``, ``mean`` and ``log_quadrature(n)``: nodes
``x_k`` (log Q) and log-weights ``ℓ_k`` with ``E_f[g(Q)] ≈ Σ_k exp(ℓ_k) g(exp(x_k))``,
built per family (Gauss-Hermite for the lognormal, Gauss-Laguerre for Pareto tails,
Gauss-Legendre in log Q on bounded supports) so heavy tails are integrated in log space.
"""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax.scipy.special import log_ndtr, ndtr, ndtri
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from plumax_core.validation import check_value

from ._numerics import gauss_hermite_prob, gauss_laguerre, gauss_legendre, log1mexp

_LOG_SQRT_2PI = 0.5 * np.log(2 * np.pi)


def _safe_log(Q):
    Q = jnp.asarray(Q)
    return jnp.log(jnp.where(Q > 0, Q, 1.0))


class AbstractMarkDistribution(eqx.Module):
    """A distribution of event emission rates Q > 0 (kg/s).

    Contract: ``log_prob`` integrates to 1 over Q (``-inf`` outside the support);
    ``log_prob_log(x) = log_prob(e^x) + x``; ``sample`` lies in the support;
    ``log_quadrature(n)`` has ``Σ exp(ℓ_k) = 1`` (to quadrature accuracy) and integrates
    smooth functions of ``log Q`` against ``f``; ``mean()`` is ``E[Q]`` (``inf`` if it
    diverges).
    """

    @abc.abstractmethod
    def log_prob_log(self, x: ArrayLike) -> Float[Array, "..."]:
        """Log density of ``x = log Q`` (log kg/s)."""

    @abc.abstractmethod
    def sample(self, key: PRNGKeyArray, shape: tuple[int, ...] = ()) -> Float[Array, "..."]:
        """Draws of Q (kg/s)."""

    @abc.abstractmethod
    def mean(self) -> Float[Array, ""]:
        """E[Q] (kg/s)."""

    @abc.abstractmethod
    def log_quadrature(self, n: int) -> tuple[Float[Array, " K"], Float[Array, " K"]]:
        """Nodes ``x_k = log Q_k`` and log-weights ``ℓ_k`` for expectations under f."""

    def log_prob(self, Q: ArrayLike) -> Float[Array, "..."]:
        """Log density of Q (per kg/s)."""
        Q = jnp.asarray(Q)
        x = _safe_log(Q)
        return jnp.where(Q > 0, self.log_prob_log(x) - x, -jnp.inf)

    def expect(self, g, n: int = 64) -> Array:
        """``E_f[g(Q)]`` by :meth:`log_quadrature`."""
        x, lw = self.log_quadrature(n)
        return jnp.sum(jnp.exp(lw) * g(jnp.exp(x)))


class LognormalMarks(AbstractMarkDistribution):
    """``log Q ~ N(mu, sigma²)``; mean ``exp(mu + sigma²/2)``.

    Attributes:
        mu: mean of log Q (log kg/s). sigma: std of log Q (> 0).
    """

    mu: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    sigma: Float[Array, ""] = eqx.field(converter=jnp.asarray)

    def __check_init__(self):
        check_value("mu", self.mu)
        check_value("sigma", self.sigma, positive=True)

    def log_prob_log(self, x):
        z = (jnp.asarray(x) - self.mu) / self.sigma
        return -0.5 * z**2 - jnp.log(self.sigma) - _LOG_SQRT_2PI

    def sample(self, key, shape=()):
        return jnp.exp(self.mu + self.sigma * jr.normal(key, shape, dtype=jnp.result_type(float)))

    def mean(self):
        return jnp.exp(self.mu + 0.5 * self.sigma**2)

    def log_quadrature(self, n):
        z, w = gauss_hermite_prob(n)
        return self.mu + self.sigma * jnp.asarray(z), jnp.log(jnp.asarray(w))


class TruncatedPowerLawMarks(AbstractMarkDistribution):
    """``f(Q) ∝ Q^{−alpha}`` on ``[q_min, q_max]`` (Clauset, Shalizi & Newman 2009 with an
    upper cut-off; ``q_max = inf`` allowed when ``alpha > 1``).

    Attributes:
        alpha: power-law exponent of the density. q_min, q_max: support (kg/s).
    """

    alpha: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    q_min: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    q_max: Float[Array, ""] = eqx.field(converter=jnp.asarray, default=jnp.inf)

    def __check_init__(self):
        check_value("q_min", self.q_min, positive=True)
        check_value("q_max", self.q_max, positive=True, finite=False)
        check_value("alpha", self.alpha)
        from plumax_core.validation import is_concrete

        if is_concrete(self.q_max) and is_concrete(self.q_min) and not self.q_max > self.q_min:
            raise ValueError("`q_max` must be > `q_min`")
        if is_concrete(self.q_max) and is_concrete(self.alpha):
            if not np.isfinite(float(self.q_max)) and not float(self.alpha) > 1:
                raise ValueError("`alpha` must be > 1 when `q_max` is infinite")

    def _log_norm(self):
        # log ∫_{qmin}^{qmax} Q^{-α} dQ = log ∫ exp((1-α) x) dx over x = log Q.
        a = 1.0 - self.alpha
        finite = jnp.isfinite(self.q_max)
        lo = jnp.log(self.q_min)
        hi = jnp.where(finite, jnp.log(jnp.where(finite, self.q_max, 1.0)), lo + 1.0)
        a_safe = jnp.where(jnp.abs(a) < 1e-6, 1e-6, a)
        # a > 0: exp(a hi) dominates; a < 0: exp(a lo) dominates.
        big = jnp.where(a_safe > 0, a_safe * hi, a_safe * lo)
        small = jnp.where(a_safe > 0, a_safe * lo, a_safe * hi)
        bounded = big + log1mexp(small - big) - jnp.log(jnp.abs(a_safe))
        bounded = jnp.where(jnp.abs(a) < 1e-6, jnp.log(hi - lo), bounded)
        a_neg = jnp.where(a < 0, a, -1.0)
        unbounded = a_neg * lo - jnp.log(-a_neg)  # ∫_lo^∞ e^{a x} dx, a < 0
        return jnp.where(finite, bounded, unbounded)

    def log_prob_log(self, x):
        x = jnp.asarray(x)
        inside = (x >= jnp.log(self.q_min)) & (x <= jnp.log(self.q_max))
        return jnp.where(inside, (1.0 - self.alpha) * x - self._log_norm(), -jnp.inf)

    def _cdf_inv(self, u):
        a = 1.0 - self.alpha
        lo, hi = self.q_min, self.q_max
        a_safe = jnp.where(jnp.abs(a) < 1e-6, 1e-6, a)
        base = lo**a_safe
        top = jnp.where(jnp.isfinite(hi), hi**a_safe, 0.0)
        q = (base + u * (top - base)) ** (1.0 / a_safe)
        return jnp.where(jnp.abs(a) < 1e-6, lo * (hi / lo) ** u, q)

    def sample(self, key, shape=()):
        return self._cdf_inv(jr.uniform(key, shape, dtype=jnp.result_type(float)))

    def mean(self):
        x, lw = self.log_quadrature(64)
        a_safe = jnp.where(self.alpha > 2, self.alpha, 3.0)
        unbounded = jnp.where(self.alpha > 2, self.q_min * (a_safe - 1.0) / (a_safe - 2.0), jnp.inf)
        return jnp.where(jnp.isfinite(self.q_max), jnp.sum(jnp.exp(lw + x)), unbounded)

    def log_quadrature(self, n):
        lo = jnp.log(self.q_min)
        finite = jnp.isfinite(self.q_max)
        # bounded: Gauss-Legendre in log Q; unbounded: Gauss-Laguerre in (α−1)(x − log q_min).
        xg, wg = gauss_legendre(n)
        hi = jnp.log(jnp.where(finite, self.q_max, 2 * self.q_min))
        x_leg = 0.5 * (hi - lo) * jnp.asarray(xg) + 0.5 * (hi + lo)
        lw_leg = jnp.log(0.5 * (hi - lo) * jnp.asarray(wg)) + self.log_prob_log(x_leg)
        e, we = gauss_laguerre(n)
        rate = jnp.maximum(self.alpha - 1.0, 1e-6)
        x_lag = lo + jnp.asarray(e) / rate
        lw_lag = jnp.log(jnp.asarray(we))
        return jnp.where(finite, x_leg, x_lag), jnp.where(finite, lw_leg, lw_lag)


class LognormalParetoMarks(AbstractMarkDistribution):
    """Spliced lognormal body and Pareto tail (composite model, Cooray & Ananda 2005):

    ``f(Q) = w · LN(Q; mu, sigma) / F_LN(theta)`` for ``Q <= theta`` and
    ``(1 − w) · alpha theta^alpha / Q^{alpha+1}`` above, with the weight
    ``w = (alpha/theta) / (alpha/theta + f_LN(theta)/F_LN(theta))`` that makes the density
    continuous at the threshold ``theta``. The tail exponent of the survival function is
    ``alpha`` (density exponent ``alpha + 1``).

    Attributes:
        mu, sigma: lognormal body (log kg/s). theta: splice point (kg/s). alpha: tail index.
    """

    mu: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    sigma: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    theta: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    alpha: Float[Array, ""] = eqx.field(converter=jnp.asarray)

    def __check_init__(self):
        check_value("mu", self.mu)
        check_value("sigma", self.sigma, positive=True)
        check_value("theta", self.theta, positive=True)
        check_value("alpha", self.alpha, positive=True)

    def _parts(self):
        lt = jnp.log(self.theta)
        z = (lt - self.mu) / self.sigma
        log_f_theta = -0.5 * z**2 - jnp.log(self.sigma) - _LOG_SQRT_2PI - lt  # f_LN(theta)
        log_F_theta = log_ndtr(z)
        log_a = jnp.log(self.alpha) - lt
        log_b = log_f_theta - log_F_theta
        log_w = log_a - jnp.logaddexp(log_a, log_b)
        log_1mw = log_b - jnp.logaddexp(log_a, log_b)
        return lt, z, log_F_theta, log_w, log_1mw

    def weight_body(self):
        """Probability mass of the lognormal body ``w``."""
        return jnp.exp(self._parts()[3])

    def log_prob_log(self, x):
        x = jnp.asarray(x)
        lt, _, log_F, log_w, log_1mw = self._parts()
        zb = (x - self.mu) / self.sigma
        body = log_w - log_F - 0.5 * zb**2 - jnp.log(self.sigma) - _LOG_SQRT_2PI
        tail = log_1mw + jnp.log(self.alpha) - self.alpha * (x - lt)
        return jnp.where(x <= lt, body, tail)

    def sample(self, key, shape=()):
        k1, k2, k3 = jr.split(key, 3)
        lt, z, _, log_w, _ = self._parts()
        dt = jnp.result_type(float)
        is_body = jr.uniform(k1, shape, dtype=dt) < jnp.exp(log_w)
        u = jr.uniform(k2, shape, dtype=dt, minval=1e-7, maxval=1.0)
        xb = self.mu + self.sigma * ndtri(u * ndtr(z))
        xt = lt + jr.exponential(k3, shape, dtype=dt) / self.alpha
        return jnp.exp(jnp.where(is_body, xb, xt))

    def mean(self):
        lt, z, log_F, log_w, log_1mw = self._parts()
        # E[Q | body] = exp(mu + σ²/2) Φ(z − σ)/Φ(z); E[Q | tail] = α θ/(α − 1).
        body = jnp.exp(log_w - log_F + self.mu + 0.5 * self.sigma**2 + log_ndtr(z - self.sigma))
        tail = jnp.exp(log_1mw) * self.alpha * self.theta / (self.alpha - 1.0)
        return jnp.where(self.alpha > 1, body + tail, jnp.inf)

    def log_quadrature(self, n):
        lt, z, log_F, log_w, log_1mw = self._parts()
        xg, wg = gauss_legendre(n)
        lo = jnp.minimum(self.mu - 9.0 * self.sigma, lt - 1.0)
        x_body = 0.5 * (lt - lo) * jnp.asarray(xg) + 0.5 * (lt + lo)
        lw_body = jnp.log(0.5 * (lt - lo) * jnp.asarray(wg)) + self.log_prob_log(x_body)
        e, we = gauss_laguerre(n)
        x_tail = lt + jnp.asarray(e) / self.alpha
        lw_tail = log_1mw + jnp.log(jnp.asarray(we))
        return jnp.concatenate([x_body, x_tail]), jnp.concatenate([lw_body, lw_tail])


class MixtureMarks(AbstractMarkDistribution):
    """Finite mixture ``f = Σ_j π_j f_j`` (e.g. a small-leak mode plus a super-emitter mode).

    Attributes:
        components: tuple of mark distributions.
        log_weights: ``(J,)`` unnormalised log mixture weights.
    """

    components: tuple[AbstractMarkDistribution, ...]
    log_weights: Float[Array, " J"] = eqx.field(converter=jnp.asarray)

    def __check_init__(self):
        if not self.components or not all(
            isinstance(c, AbstractMarkDistribution) for c in self.components
        ):
            raise TypeError("`components` must be a non-empty tuple of mark distributions")
        if self.log_weights.shape != (len(self.components),):
            raise ValueError(
                f"`log_weights` must have shape ({len(self.components)},), got "
                f"{self.log_weights.shape}"
            )
        check_value("log_weights", self.log_weights)

    def _lw(self):
        return jax.nn.log_softmax(self.log_weights)

    def log_prob_log(self, x):
        x = jnp.asarray(x)
        parts = jnp.stack([c.log_prob_log(x) for c in self.components], axis=0)
        lw = self._lw().reshape((-1,) + (1,) * x.ndim)
        return jax.scipy.special.logsumexp(parts + lw, axis=0)

    def sample(self, key, shape=()):
        kc, *ks = jr.split(key, len(self.components) + 1)
        idx = jr.categorical(kc, self._lw(), shape=shape)
        draws = jnp.stack([c.sample(k, shape) for c, k in zip(self.components, ks, strict=True)])
        return jnp.take_along_axis(draws, idx[None], axis=0)[0]

    def mean(self):
        return jnp.sum(jnp.exp(self._lw()) * jnp.stack([c.mean() for c in self.components]))

    def log_quadrature(self, n):
        xs, lws = [], []
        for lw_j, c in zip(self._lw(), self.components, strict=True):
            x, lw = c.log_quadrature(n)
            xs.append(x)
            lws.append(lw + lw_j)
        return jnp.concatenate(xs), jnp.concatenate(lws)
