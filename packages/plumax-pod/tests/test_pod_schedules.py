"""Overpass schedules in the compensator: snapshot imagers only see their windows."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from plumax_pod import (
    ConstantIntensity,
    DiurnalIntensity,
    HillPOD,
    LognormalHillModel,
    OverpassSchedule,
    PointMarks,
    PopulationData,
    fit_map_laplace,
)

DAY = 86400.0


def _data(times, schedule, t1=8000.0):
    return PopulationData(
        times, PointMarks(np.full(len(times), 0.1)), 0.0, t1, schedules=(schedule,)
    )


def test_exposure_is_the_integral_over_the_overpass_windows():
    sched = OverpassSchedule(jnp.array([1000.0, 5000.0, 9000.0]), half_window=100.0)
    data = _data([1050.0], sched)
    # the third window lies beyond t1 = 8000 s: it adds nothing
    assert float(data.exposure(ConstantIntensity(2e-3), 0)) == pytest.approx(2e-3 * 400.0)
    np.testing.assert_allclose(data.observed_seconds(), [400.0])
    diurnal = DiurnalIntensity(1e-3, 0.7, t_peak=3000.0)
    quad = sum(
        float(diurnal.integrated_quadrature(o - 100.0, o + 100.0, n=16)) for o in (1000, 5000)
    )
    assert float(data.exposure(diurnal, 0)) == pytest.approx(quad, rel=1e-6)
    # without a schedule the whole window counts
    plain = PopulationData([1050.0], PointMarks([0.1]), 0.0, 8000.0)
    assert float(plain.exposure(ConstantIntensity(2e-3), 0)) == pytest.approx(16.0)


def _snapshot_catalogue(seed, days, rate, duration, overpass_hour):
    """Events start uniformly; a daily snapshot at ``overpass_hour`` sees an event active
    at that instant ([start, start + duration]) and detects it with a Hill POD."""
    rng = np.random.default_rng(seed)
    T = days * DAY
    start = np.sort(rng.uniform(0, T, rng.poisson(rate * T)))
    q = np.exp(math.log(0.05) + 1.0 * rng.standard_normal(start.size))
    overpass = np.arange(days) * DAY + overpass_hour * 3600.0
    j = np.searchsorted(overpass, start)  # first overpass at or after the start
    seen = (j < days) & (overpass[np.minimum(j, days - 1)] <= start + duration)
    seen &= rng.uniform(size=start.size) < q**2 / (q**2 + 0.05**2)
    # an event is observable when it started in [o - duration, o]: a window of half-width
    # duration / 2 centred on o - duration / 2; record detections at the window centre
    centres = overpass - duration / 2
    times = centres[j[seen]]
    return times, q[seen], T, OverpassSchedule(jnp.asarray(centres), half_window=duration / 2)


def test_schedule_recovers_the_true_rate_and_ignoring_it_does_not(x64):
    rate = 30.0 / DAY
    times, q, T, sched = _snapshot_catalogue(3, 200, rate, 3600.0, 10.5)
    model = LognormalHillModel(fixed_pod=HillPOD(0.05, 2.0), rate_prior=(1e-4, 5.0))
    post = fit_map_laplace(model, PopulationData(times, PointMarks(q), 0.0, T, schedules=(sched,)))
    lo, hi = post.credible_interval(0.95)["rate"]
    assert lo <= rate <= hi
    naive = fit_map_laplace(model, PopulationData(times, PointMarks(q), 0.0, T))
    rate_naive = float(naive.param_spec.from_unconstrained(naive.mean)["rate"])
    # a continuous-observation model sees 1 h in 24: its rate is ~24x too low
    assert rate_naive < rate / 10


def test_schedule_validation():
    sched = OverpassSchedule(jnp.array([1000.0, 5000.0]), half_window=100.0)
    with pytest.raises(ValueError, match="outside its overpass windows"):
        _data([3000.0], sched)
    with pytest.raises(ValueError, match="overlap"):
        _data([1000.0], OverpassSchedule(jnp.array([1000.0, 1150.0]), half_window=100.0))
    with pytest.raises(ValueError, match="entries for 1 instruments"):
        PopulationData([1000.0], PointMarks([0.1]), 0.0, 8000.0, schedules=(sched, sched))
    with pytest.raises(TypeError, match="OverpassSchedule"):
        PopulationData([1000.0], PointMarks([0.1]), 0.0, 8000.0, schedules=("daily",))
    # an instrument without a schedule (None) observes continuously
    d = PopulationData([3000.0], PointMarks([0.1]), 0.0, 8000.0, schedules=(None,))
    assert float(d.exposure(ConstantIntensity(1e-3), 0)) == pytest.approx(8.0)
