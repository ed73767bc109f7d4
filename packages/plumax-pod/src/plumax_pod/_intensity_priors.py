"""Default numpyro priors for each intensity model (numpyro imported lazily).

Call :func:`sample_intensity` inside a numpyro model: it draws the parameters of the
requested intensity from weakly informative priors (lognormal rates centred on
``rate_scale`` events/s with a log-sd of 2, Beta(2, 2) relative amplitudes, uniform
phases over the period, lognormal Weibull shape around 1, Beta(2, 5) Hawkes branching
ratio) and returns the constructed intensity. Site names are ``prefix + field``.
"""

from plumax_core.units import DAY, HOUR, YEAR

from ._intensity import (
    ConstantIntensity,
    DiurnalIntensity,
    DiurnalSeasonalIntensity,
    HawkesIntensity,
    OperationalIntensity,
    PeriodicBatchIntensity,
    SeasonalIntensity,
    WeibullRenewalIntensity,
)

INTENSITY_KINDS = (
    "constant",
    "diurnal",
    "seasonal",
    "diurnal_seasonal",
    "operational",
    "periodic_batch",
    "weibull_renewal",
    "hawkes",
)


def sample_intensity(
    kind: str, *, rate_scale: float = 1e-4, prefix: str = "", history=None, **static
):
    """Sample an intensity of ``kind`` inside a numpyro model (see module docstring).

    Args:
        kind: one of :data:`INTENSITY_KINDS`.
        rate_scale: prior median of the rate parameters (events/s).
        prefix: prefix of the numpyro site names.
        history: event times, needed by ``"weibull_renewal"`` and ``"hawkes"``.
        **static: static fields forwarded to the intensity (e.g. ``period``, ``duration``).
    """
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    if kind not in INTENSITY_KINDS:
        raise ValueError(f"`kind` must be one of {INTENSITY_KINDS}, got {kind!r}")
    if kind in ("weibull_renewal", "hawkes") and history is None:
        raise ValueError(f"`history` is required for kind {kind!r}")

    def rate(name):
        return numpyro.sample(prefix + name, dist.LogNormal(jnp.log(rate_scale), 2.0))

    def amp(name):
        return numpyro.sample(prefix + name, dist.Beta(2.0, 2.0))

    def phase(name, period):
        return numpyro.sample(prefix + name, dist.Uniform(0.0, period))

    if kind == "constant":
        return ConstantIntensity(rate("rate"))
    if kind == "diurnal":
        return DiurnalIntensity(rate("rate"), amp("amplitude"), phase("t_peak", DAY), **static)
    if kind == "seasonal":
        return SeasonalIntensity(rate("rate"), amp("amplitude"), phase("t_peak", YEAR), **static)
    if kind == "diurnal_seasonal":
        return DiurnalSeasonalIntensity(
            rate("rate"),
            amp("amplitude_diurnal"),
            amp("amplitude_seasonal"),
            phase("t_peak_diurnal", DAY),
            phase("t_peak_seasonal", YEAR),
            **static,
        )
    if kind == "operational":
        return OperationalIntensity(rate("rate_on"), rate("rate_off"), **static)
    if kind == "periodic_batch":
        period = static.get("period", DAY)
        return PeriodicBatchIntensity(
            rate("base"), rate("batch_rate"), phase("offset", period), **static
        )
    if kind == "weibull_renewal":
        k = numpyro.sample(prefix + "shape", dist.LogNormal(0.0, 0.5))
        s = numpyro.sample(prefix + "scale", dist.LogNormal(jnp.log(1.0 / rate_scale), 2.0))
        return WeibullRenewalIntensity(k, s, history, **static)
    mu = rate("mu")
    alpha = numpyro.sample(prefix + "alpha", dist.Beta(2.0, 5.0))
    beta = numpyro.sample(prefix + "beta", dist.LogNormal(jnp.log(1.0 / HOUR), 2.0))
    return HawkesIntensity(mu, alpha, beta, history)
