"""The missing-mass paradox: detection makes plumes look bigger and totals look smaller.

Only detected events enter a catalogue, and detection favours large emissions, so

* the observed mean rate ``E[Q | detected] = E[Q P_d] / E[P_d]`` exceeds the true
  ``E[Q]`` (size-biased sampling; ``Cov(Q, P_d) > 0`` for a POD nondecreasing in Q), and
* the observed mass ``λ T D E[Q P_d]`` falls short of the true ``λ T D E[Q]`` (``T``:
  window, ``D``: event duration), by the missing-mass fraction ``1 − E[Q P_d]/E[Q]``.

:func:`paradox_closed_form` evaluates these by quadrature; :func:`simulate_paradox` is
the Monte-Carlo simulator (vectorised over replicates with ``jax.vmap``).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from plumax_core.units import DAY, HOUR, KG_H
from plumax_core.validation import check_value

from ._marks import AbstractMarkDistribution, LognormalMarks, LognormalParetoMarks
from ._pod import AbstractPOD, HillPOD, ProbitPOD


class ParadoxScenario(eqx.Module):
    """A population observed by one instrument.

    Attributes:
        marks: true size distribution (kg/s). pod: detection curve.
        rate: true event rate (events/s). window: observation window ``T`` (s).
        duration: duration ``D`` of one event (s). description: free text.
    """

    marks: AbstractMarkDistribution
    pod: AbstractPOD
    rate: float = eqx.field(static=True)
    window: float = eqx.field(static=True)
    duration: float = eqx.field(static=True, default=HOUR)
    description: str = eqx.field(static=True, default="")

    def __check_init__(self):
        check_value("rate", self.rate, positive=True)
        check_value("window", self.window, positive=True)
        check_value("duration", self.duration, positive=True)


def canonical_scenarios() -> dict[str, ParadoxScenario]:
    """Illustrative observing systems, from coarse satellites to aircraft.

    Detection thresholds are of the orders of magnitude compiled by Jacob et al. (2022,
    Atmos. Chem. Phys. 22, 9617, Fig. 5/Table 2): ~10-25 t/h for TROPOMI-class
    area-flux mappers, ~0.5-1 t/h for hyperspectral point-source imagers, ~0.1-0.2 t/h for
    high-resolution commercial satellites, ~10 kg/h for aircraft. Size distributions are
    heavy-tailed lognormals (and a lognormal-Pareto), as in aerial surveys of oil and gas
    basins (e.g. Cusworth et al. 2022). They are illustrations, not calibrated values.
    """
    return {
        "area_flux_mapper": ParadoxScenario(
            LognormalMarks(np.log(2.0), 1.2),
            HillPOD(20e3 * KG_H, 3.0),
            1 / DAY,
            365 * DAY,
            description="TROPOMI-class: Q50 = 20 t/h",
        ),
        "point_source_imager": ParadoxScenario(
            LognormalMarks(np.log(0.1), 1.5),
            HillPOD(800 * KG_H, 2.5),
            4 / DAY,
            365 * DAY,
            description="hyperspectral imager (EMIT/PRISMA-class): Q50 = 0.8 t/h",
        ),
        "high_res_commercial": ParadoxScenario(
            LognormalMarks(np.log(0.03), 1.3),
            ProbitPOD(150 * KG_H, 0.6),
            4 / DAY,
            365 * DAY,
            description="GHGSat-class: Q50 = 150 kg/h, probit POD",
        ),
        "aircraft": ParadoxScenario(
            LognormalMarks(np.log(0.005), 1.5),
            HillPOD(10 * KG_H, 2.0),
            10 / DAY,
            30 * DAY,
            description="airborne imaging spectrometer: Q50 = 10 kg/h",
        ),
        "heavy_tail": ParadoxScenario(
            LognormalParetoMarks(np.log(0.05), 1.0, 0.3, 1.6),
            HillPOD(500 * KG_H, 2.0),
            4 / DAY,
            365 * DAY,
            description="lognormal body, Pareto tail (alpha = 1.6) above 0.3 kg/s",
        ),
    }


@eqx.filter_jit
def paradox_closed_form(scenario: ParadoxScenario, *, n_quad: int = 96) -> dict[str, Array]:
    """Expected observed and true statistics by quadrature.

    Returns a dict: ``detected_fraction = E[P_d]``, ``true_mean = E[Q]``,
    ``observed_mean = E[Q P_d]/E[P_d]`` (kg/s), ``true_mass = λ T D E[Q]``,
    ``observed_mass = λ T D E[Q P_d]`` (kg), ``missing_mass_fraction = 1 − E[Q P_d]/E[Q]``.
    """
    m, pod = scenario.marks, scenario.pod
    x, lw = m.log_quadrature(n_quad)
    q = jnp.exp(x)
    lp = pod.log_prob_detect(q)
    e_p = jnp.sum(jnp.exp(lw + lp))
    e_qp = jnp.sum(jnp.exp(lw + lp + x))
    e_q = m.mean()
    scale = scenario.rate * scenario.window * scenario.duration
    return {
        "detected_fraction": e_p,
        "true_mean": e_q,
        "observed_mean": e_qp / e_p,
        "true_mass": scale * e_q,
        "observed_mass": scale * e_qp,
        "missing_mass_fraction": 1.0 - e_qp / e_q,
    }


def simulate_paradox(
    scenario: ParadoxScenario, *, key: PRNGKeyArray, n_replicates: int = 200
) -> dict[str, Array]:
    """Monte-Carlo catalogues: ``N ~ Poisson(λT)`` events, ``Q ~ f``, detection
    ``~ Bernoulli(P_d(Q))``; vectorised over ``n_replicates``.

    Returns ``(n_replicates,)`` arrays: ``n_true``, ``n_detected``, ``true_mean``,
    ``observed_mean`` (NaN when nothing is detected), ``true_mass``, ``observed_mass`` (kg)
    and ``missing_mass_fraction``.
    """
    lam = scenario.rate * scenario.window
    n_max = int(2 ** np.ceil(np.log2(lam + 8 * np.sqrt(lam) + 20)))
    return _simulate(scenario, jr.split(key, n_replicates), lam, n_max)


@eqx.filter_jit
def _simulate(scenario, keys, lam, n_max):
    def one(k):
        ka, kq, kd = jr.split(k, 3)
        # N ~ Poisson(λT) exactly: unit-rate arrivals falling before λT
        arrivals = jnp.cumsum(jr.exponential(ka, (n_max,)))
        mask = arrivals < lam
        n = jnp.sum(mask)
        q = scenario.marks.sample(kq, (n_max,))
        det = mask & (jr.uniform(kd, (n_max,)) < scenario.pod(q))
        tot = jnp.sum(jnp.where(mask, q, 0.0))
        obs = jnp.sum(jnp.where(det, q, 0.0))
        nd = jnp.sum(det)
        return {
            "n_true": n,
            "n_detected": nd,
            "true_mean": tot / jnp.maximum(n, 1),
            "observed_mean": jnp.where(nd > 0, obs / jnp.maximum(nd, 1), jnp.nan),
            "true_mass": tot * scenario.duration,
            "observed_mass": obs * scenario.duration,
            "missing_mass_fraction": 1.0 - obs / tot,
        }

    return jax.vmap(one)(keys)
