"""The thinned marked temporal point-process likelihood.

True events form a marked point process with intensity ``λ(t)`` and independent marks
``Q ~ f``; each is detected independently with probability ``P_d(Q)`` (independent
thinning, Daley & Vere-Jones 2003 §11.3). Event ``i`` is observed at ``t_i`` through a
mark likelihood ``L_i(Q)``. The log-likelihood of the detected catalogue on ``[t0, t1]``:

    log L = Σ_i [ log λ(t_i) + log ∫ P_d(Q) L_i(Q) f(Q) dQ ] − ∫_{t0}^{t1} λ(t) dt · ∫ P_d f dQ

Three mark-likelihood regimes (all in ``x = log Q``, Q in kg/s):

* :class:`PointMarks` — ``L_i = δ(Q − q_i)``: the term is ``log P_d(q_i) + log f(q_i)``;
* :class:`GaussianMarks` — ``L_i(x) ∝ N(x; m_i, s_i²)`` (a Gaussian posterior summary,
  optionally with its Gaussian per-event prior divided out in closed form); the integral
  is Gauss-Hermite in ``x``. ``s_i = 0`` is the exact limit ``L_i = δ(x − m_i)`` (every
  node sits at ``m_i``), so one catalogue may mix events with and without an uncertainty;
* :class:`SampleMarks` — ``S`` posterior draws ``x_is`` obtained under a per-event prior
  ``π_i``: ``∫ P_d L_i f ∝ (1/S) Σ_s P_d f_X(x_is) / π_i(x_is)`` (importance correction;
  the unknown evidence of event ``i`` is a constant of the population parameters).

All sums over quadrature nodes or samples are ``logsumexp``s, so heavy tails and tiny
detection probabilities do not underflow.
"""

import abc
import warnings
from collections.abc import Mapping

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp
from jaxtyping import Array, ArrayLike, Float

from plumax_core.units import rate_factor
from plumax_core.validation import as_float_array, check_value, is_concrete

from ._intensity import AbstractIntensity
from ._marks import AbstractMarkDistribution
from ._numerics import gauss_hermite_prob
from ._pod import AbstractPOD

Covariates = Mapping[str, ArrayLike] | None


def _expand(covariates, axis_len):
    if covariates is None:
        return None
    return {k: jnp.asarray(v)[:, None] if jnp.ndim(v) == 1 else v for k, v in covariates.items()}


class AbstractMarkData(eqx.Module):
    """Per-event mark likelihoods ``L_i(Q)`` for ``n`` detected events.

    Contract: ``log_event_integral(marks, pod, covariates)`` returns ``(n,)`` values of
    ``log ∫ P_d(Q) L_i(Q) f(Q) dQ`` up to additive constants that do not depend on the
    population (``marks``/``pod``) parameters, each depending on event ``i``'s data only;
    every array field with a leading axis of length ``n`` is per event (the population
    likelihood splits such fields into chunks of events).
    """

    @property
    @abc.abstractmethod
    def n_events(self) -> int:
        """Number of events ``n``."""

    @abc.abstractmethod
    def log_event_integral(
        self, marks: AbstractMarkDistribution, pod: AbstractPOD, covariates: Covariates = None
    ) -> Float[Array, " n"]:
        """``log ∫ P_d L_i f dQ`` per event."""

    @abc.abstractmethod
    def point_estimates(self) -> Float[Array, " n"]:
        """A point value of Q per event (kg/s), for naive sums."""


class PointMarks(AbstractMarkData):
    """Exactly known emission rates ``q`` (``(n,)``, kg/s, > 0)."""

    q: Float[Array, " n"] = eqx.field(converter=lambda q: as_float_array("q", q))

    def __check_init__(self):
        if self.q.ndim != 1:
            raise ValueError(f"`q` must be 1-D (n,), got shape {self.q.shape}")
        check_value("q", self.q, positive=True)

    @property
    def n_events(self):
        return self.q.shape[0]

    def log_event_integral(self, marks, pod, covariates=None):
        return pod.log_prob_detect(self.q, covariates) + marks.log_prob(self.q)

    def point_estimates(self):
        return self.q


class GaussianMarks(AbstractMarkData):
    """Gaussian mark likelihoods in ``log Q`` (log kg/s).

    If the summary is a *posterior* ``N(mean, std²)`` obtained under a Gaussian per-event
    prior ``N(prior_mean, prior_std²)``, pass the prior: it is divided out exactly
    (precisions subtract), leaving the likelihood. Without a prior the summary is taken to
    be the likelihood itself (flat prior in log Q). ``std = 0`` marks an exact rate
    (``L_i = δ(log Q − mean_i)``, the limit of the Gaussian; same terms as
    :class:`PointMarks` up to the constant ``log q_i``); not allowed with a prior.

    Attributes:
        mean, std: ``(n,)`` mean and std (>= 0) of log Q.
        prior_mean, prior_std: optional ``(n,)`` per-event Gaussian prior in log Q.
        n_nodes: static Gauss-Hermite order.
    """

    mean: Float[Array, " n"] = eqx.field(converter=lambda x: as_float_array("mean", x))
    std: Float[Array, " n"] = eqx.field(converter=lambda x: as_float_array("std", x))
    prior_mean: Float[Array, " n"] | None = None
    prior_std: Float[Array, " n"] | None = None
    n_nodes: int = eqx.field(static=True, default=24)

    def __check_init__(self):
        if self.mean.ndim != 1 or self.std.shape != self.mean.shape:
            raise ValueError(
                f"`mean` and `std` must both be (n,), got {self.mean.shape}, {self.std.shape}"
            )
        check_value("mean", self.mean)
        check_value("std", self.std, nonneg=True)
        if (self.prior_mean is None) != (self.prior_std is None):
            raise ValueError("give both `prior_mean` and `prior_std`, or neither")
        if self.prior_std is not None:
            check_value("std", self.std, positive=True)
            check_value("prior_std", self.prior_std, positive=True)
            if is_concrete(self.prior_std) and is_concrete(self.std):
                if np.any(np.asarray(self.prior_std) <= np.asarray(self.std)):
                    raise ValueError(
                        "`prior_std` must exceed `std` for every event (a posterior is "
                        "narrower than its prior); cannot divide out the prior"
                    )

    @property
    def n_events(self):
        return self.mean.shape[0]

    def likelihood_moments(self) -> tuple[Array, Array]:
        """``(m, s)`` of the Gaussian likelihood in log Q after dividing out the prior."""
        if self.prior_mean is None:
            return self.mean, self.std
        p_post, p_prior = self.std**-2, jnp.asarray(self.prior_std) ** -2
        prec = p_post - p_prior
        m = (self.mean * p_post - jnp.asarray(self.prior_mean) * p_prior) / prec
        return m, prec**-0.5

    def log_event_integral(self, marks, pod, covariates=None):
        m, s = self.likelihood_moments()
        z, w = gauss_hermite_prob(self.n_nodes)
        x = m[:, None] + s[:, None] * jnp.asarray(z)
        terms = (
            jnp.log(jnp.asarray(w))
            + pod.log_prob_detect(jnp.exp(x), _expand(covariates, self.n_nodes))
            + marks.log_prob_log(x)
        )
        return logsumexp(terms, axis=1)

    def point_estimates(self):
        return jnp.exp(self.mean)


class SampleMarks(AbstractMarkData):
    """Per-event posterior draws of ``log Q`` with the prior they were drawn under.

    Attributes:
        log_q: ``(n, S)`` draws of log Q (log kg/s).
        log_prior: ``(n, S)`` per-event prior log-density *of log Q* at each draw (for a
            prior density over Q, add ``log_q``: ``π_X(x) = π_Q(e^x) e^x``).
    """

    log_q: Float[Array, "n S"] = eqx.field(converter=lambda x: as_float_array("log_q", x))
    log_prior: Float[Array, "n S"] = eqx.field(converter=lambda x: as_float_array("log_prior", x))

    def __check_init__(self):
        if self.log_q.ndim != 2 or self.log_prior.shape != self.log_q.shape:
            raise ValueError(
                f"`log_q` and `log_prior` must both be (n, S), got {self.log_q.shape}, "
                f"{self.log_prior.shape}"
            )
        check_value("log_q", self.log_q)
        check_value("log_prior", self.log_prior)

    @property
    def n_events(self):
        return self.log_q.shape[0]

    def log_weights(self, marks, pod, covariates=None) -> Float[Array, "n S"]:
        """Unnormalised importance log-weights ``log P_d + log f_X − log π``."""
        return (
            pod.log_prob_detect(jnp.exp(self.log_q), _expand(covariates, None))
            + marks.log_prob_log(self.log_q)
            - self.log_prior
        )

    def log_event_integral(self, marks, pod, covariates=None):
        lw = self.log_weights(marks, pod, covariates)
        return logsumexp(lw, axis=1) - jnp.log(self.log_q.shape[1])

    def effective_sample_size(self, marks, pod, covariates=None) -> Float[Array, " n"]:
        """Kish ESS ``(Σw)²/Σw²`` of the importance weights, per event."""
        lw = self.log_weights(marks, pod, covariates)
        return jnp.exp(2 * logsumexp(lw, axis=1) - logsumexp(2 * lw, axis=1))

    def check_ess(self, marks, pod, covariates=None, *, frac: float = 0.1) -> np.ndarray:
        """Warn (``RuntimeWarning``) when any event's ESS is below ``frac · S``; return ESS."""
        ess = np.asarray(self.effective_sample_size(marks, pod, covariates))
        S = self.log_q.shape[1]
        low = np.flatnonzero(ess < frac * S)
        if low.size:
            warnings.warn(
                f"importance ESS below {frac:g}·S={frac * S:g} for {low.size} event(s) "
                f"(min {ess.min():.1f}, first at index {low[0]}); the per-event prior is a "
                "poor proposal for the population model",
                RuntimeWarning,
                stacklevel=2,
            )
        return ess

    def point_estimates(self):
        return jnp.exp(jnp.median(self.log_q, axis=1))


def detection_fraction(
    marks: AbstractMarkDistribution,
    pod: AbstractPOD,
    covariates: Covariates = None,
    *,
    n_quad: int = 64,
) -> Float[Array, ""]:
    """``p̄ = E_f[P_d(Q)] = ∫ P_d(Q) f(Q) dQ``, by the marks' log-space quadrature.

    ``covariates`` (optional): dict of ``(m,)`` arrays describing the distribution of
    observing conditions (exposure); ``p̄`` is averaged over them.
    """
    x, lw = marks.log_quadrature(n_quad)
    if covariates is None:
        return jnp.exp(logsumexp(lw + pod.log_prob_detect(jnp.exp(x))))
    cov = {k: jnp.asarray(v)[:, None] for k, v in covariates.items()}
    lp = pod.log_prob_detect(jnp.exp(x)[None, :], cov)
    return jnp.mean(jnp.exp(logsumexp(lw + lp, axis=1)))


def tpp_log_likelihood(
    intensity: AbstractIntensity,
    marks: AbstractMarkDistribution,
    pod: AbstractPOD,
    times: Float[Array, " n"],
    mark_data: AbstractMarkData,
    t0: ArrayLike,
    t1: ArrayLike,
    *,
    covariates: Covariates = None,
    exposure_covariates: Covariates = None,
    n_quad: int = 64,
) -> Float[Array, ""]:
    """Thinned marked TPP log-likelihood of a detected catalogue (module docstring).

    Args:
        intensity: λ(t) of *true* events (events/s).
        marks: f(Q) of true events (kg/s).
        pod: P_d(Q, covariates).
        times: ``(n,)`` detection times (s) in ``[t0, t1]``.
        mark_data: the per-event mark likelihoods.
        t0, t1: observation window (s).
        covariates: per-event observing conditions (dict of ``(n,)`` arrays).
        exposure_covariates: conditions over the whole window for the compensator
            (dict of ``(m,)`` arrays); None = the POD's reference conditions.
        n_quad: order of the mark quadrature in the compensator.

    Returns:
        scalar log-likelihood (nats).
    """
    times = jnp.asarray(times)
    if is_concrete(times) and times.shape != (mark_data.n_events,):
        raise ValueError(
            f"`times` must have shape ({mark_data.n_events},) to match `mark_data`, got "
            f"{times.shape}"
        )
    log_rate = jnp.sum(intensity.log_rate(times))
    log_marks = jnp.sum(mark_data.log_event_integral(marks, pod, covariates))
    p_bar = detection_fraction(marks, pod, exposure_covariates, n_quad=n_quad)
    return log_rate + log_marks - intensity.integrated(t0, t1) * p_bar


def mark_data_from_dicts(records) -> AbstractMarkData:
    """Build mark data from exported per-event mark likelihoods (plain dicts/arrays).

    Accepts a list of per-event dicts (e.g. from a JSON export) or one dict whose
    arrays carry a leading event axis. Keys (all coordinates are ``log Q``):

    * ``"mean"`` and ``"cov"`` (variance; scalar or ``[[v]]``) or ``"std"`` — a Gaussian
      posterior summary -> :class:`GaussianMarks`;
    * optional ``"prior_mean"`` and ``"prior_cov"`` / ``"prior_std"`` — the Gaussian
      per-event prior to divide out;
    * ``"samples"`` (``(S,)`` or ``(S, 1)`` draws) and ``"log_prior"`` (``(S,)`` per-draw
      prior log-density) -> :class:`SampleMarks` (takes precedence over ``mean``);
    * ``"space"``: ``"log"`` (default: coordinates are log Q) or ``"linear"`` (samples are
      Q and ``log_prior`` is a density over Q; samples regime only);
    * ``"units"``: the emission-rate unit of ``Q``, any of :data:`plumax_core.units.RATE_UNITS`
      (``"kg/s"`` by default, ``"kg/h"``, ``"t/h"``, ...): log Q is shifted by the log of
      :func:`plumax_core.units.rate_factor` (``−log 3600`` for kg/h).

    Raises:
        ValueError: missing keys, mixed regimes, or inconsistent shapes, naming the event.
    """
    if isinstance(records, Mapping):
        n = int(np.shape(records.get("samples", records.get("mean")))[0])
        records = [
            {k: (v[i] if np.ndim(v) > 0 else v) for k, v in records.items()} for i in range(n)
        ]
    records = list(records)
    if not records:
        raise ValueError("`records` is empty")

    def get(r, i, *names):
        for nm in names:
            if nm in r and r[nm] is not None:
                return r[nm]
        raise ValueError(f"`records[{i}]` has none of the keys {names}")

    shifts, linear = [], []
    for i, r in enumerate(records):
        factor = rate_factor(r.get("units", "kg/s"), name=f"records[{i}]['units']")
        shifts.append(np.log(factor))  # log Q in kg/s = log Q in units + log(kg/s per unit)
        space = r.get("space", "log")
        if space not in ("log", "linear"):
            raise ValueError(f"`records[{i}]['space']` must be 'log' or 'linear', got {space!r}")
        linear.append(space == "linear")
    has_samples = ["samples" in r and r["samples"] is not None for r in records]
    if any(has_samples) and not all(has_samples):
        raise ValueError("`records` mixes sample-based and Gaussian events; use one regime")
    if all(has_samples):
        xs, lps = [], []
        for i, r in enumerate(records):
            s = np.asarray(r["samples"], dtype=float).reshape(-1)
            lp = np.asarray(get(r, i, "log_prior"), dtype=float).reshape(-1)
            if lp.shape != s.shape:
                raise ValueError(
                    f"`records[{i}]`: `log_prior` shape {lp.shape} != samples {s.shape}"
                )
            if linear[i]:
                if np.any(s <= 0):
                    raise ValueError(f"`records[{i}]['samples']` must be > 0 in linear space")
                s = np.log(s)
                lp = lp + s  # density over Q -> density over log Q
            xs.append(s + shifts[i])
            lps.append(lp)
        if len({x.shape for x in xs}) != 1:
            raise ValueError("every event must carry the same number of samples S")
        return SampleMarks(np.stack(xs), np.stack(lps))
    if any(linear):
        raise ValueError("Gaussian summaries must be in log space (`space='log'`)")
    means, stds, pms, pss = [], [], [], []
    for i, r in enumerate(records):
        m = float(np.asarray(get(r, i, "mean")).reshape(-1)[0])
        if "std" in r:
            s = float(np.asarray(r["std"]).reshape(-1)[0])
        else:
            s = float(np.sqrt(np.asarray(get(r, i, "cov", "var")).reshape(-1)[0]))
        means.append(m + shifts[i])
        stds.append(s)
        if "prior_mean" in r:
            pms.append(float(np.asarray(r["prior_mean"]).reshape(-1)[0]) + shifts[i])
            if "prior_std" in r:
                pss.append(float(np.asarray(r["prior_std"]).reshape(-1)[0]))
            else:
                pss.append(float(np.sqrt(np.asarray(get(r, i, "prior_cov")).reshape(-1)[0])))
    if pms and len(pms) != len(records):
        raise ValueError("either every record or none must carry `prior_mean`")
    if pms:
        return GaussianMarks(means, stds, jnp.asarray(pms), jnp.asarray(pss))
    return GaussianMarks(means, stds)
