"""Issue 17, several instruments: coverage, pooling and a missed mass that cannot be negative.

Reported: with two instrument names each instrument was taken to watch the whole
window; the missing-mass fraction came out at -0.69 (total below the catalogue sum) and
one relabelled row moved the rate from 4.55 to 125 events/day.
"""

import math

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy import integrate

from plumax_pod import (
    CatalogError,
    ConstantIntensity,
    HillPOD,
    InstrumentCoverage,
    LognormalHillModel,
    LognormalMarks,
    OverpassSchedule,
    PlumeCatalog,
    PointMarks,
    PopulationData,
    catalog_population_data,
    coverage_segments,
    expected_missed_mass,
    fit_map_laplace,
    missing_mass,
    population_draws,
    read_coverage,
)
from plumax_pod._population_data import event_sum

DAY = 86400.0


def _lognormal_pdf(q, mu, sigma):
    return math.exp(-0.5 * ((math.log(q) - mu) / sigma) ** 2) / (q * sigma * math.sqrt(2 * math.pi))


def _hill(q, q50, s):
    return q**s / (q**s + q50**s)


def _e_q_missed(mu, sigma, factors):
    """E_f[Q Π (1 − c P_k(Q))] by adaptive quadrature (independent of the module)."""

    def g(q):
        m = 1.0
        for c, q50, s in factors:
            m *= 1.0 - c * _hill(q, q50, s)
        return q * m * _lognormal_pdf(q, mu, sigma)

    return integrate.quad(g, 0, np.inf, limit=400, epsabs=0, epsrel=1e-11)[0]


def test_missed_mass_single_instrument_closed_form(x64):
    rate, mu, sigma, T, D = 3e-4, math.log(0.05), 1.1, 40 * DAY, 3600.0
    marks, pod = LognormalMarks(mu, sigma), HillPOD(0.08, 2.0)
    for c in (1.0, 0.3):
        data = PopulationData([10.0], PointMarks([0.1]), 0.0, T, coverage=[c])
        got = expected_missed_mass(
            ConstantIntensity(rate), marks, (pod,), coverage_segments(data), duration=D
        )
        ref = rate * T * D * _e_q_missed(mu, sigma, [(c, 0.08, 2.0)])
        assert float(got) == pytest.approx(ref, rel=1e-8)


def test_missed_mass_with_two_overlapping_schedules(x64):
    """Segments: nobody looks / A / A+B / B; the union P_miss = Π (1 − c_k P_k)."""
    sa = OverpassSchedule(jnp.array([150.0, 550.0]), half_window=50.0)  # [100,200], [500,600]
    sb = OverpassSchedule(jnp.array([200.0]), half_window=50.0)  # [150, 250]
    data = PopulationData(
        [150.0, 200.0], PointMarks([0.1, 0.1]), [0.0, 0.0], [1000.0, 1000.0],
        instrument=[0, 1], schedules=(sa, sb), coverage=[0.6, 0.9],
    )  # fmt: skip
    a, b, cover = coverage_segments(data)
    total = {tuple(row): 0.0 for row in np.unique(cover, axis=0)}
    for lo, hi, row in zip(a, b, cover, strict=True):
        total[tuple(row)] += hi - lo
    assert total == {(0.0, 0.0): 750.0, (0.6, 0.0): 150.0, (0.6, 0.9): 50.0, (0.0, 0.9): 50.0}
    rate, mu, sigma, D = 2e-3, math.log(0.06), 0.9, 1800.0
    pa, pb = (0.6, 0.05, 2.0), (0.9, 0.12, 1.5)
    got = expected_missed_mass(
        ConstantIntensity(rate),
        LognormalMarks(mu, sigma),
        (HillPOD(0.05, 2.0), HillPOD(0.12, 1.5)),
        (a, b, cover),
        duration=D,
    )
    ref = (
        rate
        * D
        * (
            750.0 * _e_q_missed(mu, sigma, [])
            + 150.0 * _e_q_missed(mu, sigma, [pa])
            + 50.0 * _e_q_missed(mu, sigma, [pa, pb])
            + 50.0 * _e_q_missed(mu, sigma, [pb])
        )
    )
    assert float(got) == pytest.approx(ref, rel=1e-8)


@settings(max_examples=40, deadline=None)
@given(
    log_rate=st.floats(-12, -2),
    mu=st.floats(-6, 3),
    sigma=st.floats(0.05, 3.0),
    pods=st.lists(
        st.tuples(st.floats(-6, 3), st.floats(0.3, 6.0), st.floats(0.01, 1.0)),
        min_size=1,
        max_size=3,
    ),
    detected=st.lists(st.floats(1e-4, 1e3), min_size=1, max_size=20),
    days=st.floats(0.5, 3000),
)
def test_missing_fraction_in_unit_interval_by_construction(
    log_rate, mu, sigma, pods, detected, days
):
    """Whatever the population and coverage: missed >= 0, total >= detected, fraction in
    [0, 1)."""
    k = len(pods)
    data = PopulationData(
        [0.0], PointMarks([1.0]), np.zeros(k), np.full(k, days * DAY),
        coverage=[c for _, _, c in pods],
    )  # fmt: skip
    missed = expected_missed_mass(
        ConstantIntensity(math.exp(log_rate)),
        LognormalMarks(mu, sigma),
        tuple(HillPOD(math.exp(lq), s) for lq, s, _ in pods),
        coverage_segments(data),
        duration=3600.0,
    )
    detected_kg = float(np.sum(detected)) * 3600.0
    mm = missing_mass(detected_kg, missed)
    assert float(missed) >= 0.0
    # in the arrays' own precision (here float32): detected + missed >= detected
    assert float(mm["total"]) >= float(mm["detected"])
    assert float(mm["detected"]) == pytest.approx(detected_kg, rel=1e-6)
    assert 0.0 <= float(mm["fraction"]) < 1.0
    with pytest.raises(ValueError, match="missed_kg"):
        missing_mass(detected_kg, -1.0)


def test_coverage_scales_the_compensator(x64):
    """log L(c) − log L(1) = n log c − (c − 1) Λ p̄ (the event terms gain log c)."""
    model = LognormalHillModel(fixed_pod=HillPOD(0.08, 2.0))
    q = np.array([0.05, 0.2, 0.1])
    params = {"rate": jnp.asarray(1e-4), "mu": jnp.asarray(-3.0), "sigma": jnp.asarray(1.0)}
    ll = [
        float(model.log_likelihood(params, PopulationData([1.0, 2.0, 3.0], PointMarks(q), 0.0,
                                                          1e5, coverage=[c])))
        for c in (1.0, 0.25)
    ]  # fmt: skip
    from plumax_pod import detection_fraction

    pbar = float(detection_fraction(LognormalMarks(-3.0, 1.0), HillPOD(0.08, 2.0)))
    assert ll[1] - ll[0] == pytest.approx(3 * math.log(0.25) + 0.75 * 1e-4 * 1e5 * pbar, rel=1e-9)
    with pytest.raises(ValueError, match="coverage"):
        PopulationData([1.0], PointMarks([0.1]), 0.0, 10.0, coverage=[0.0])
    with pytest.raises(ValueError, match="coverage"):
        PopulationData([1.0], PointMarks([0.1]), 0.0, 10.0, coverage=[0.5, 0.5])


def test_chunked_event_sum_equals_the_whole(x64):
    """The checkpointed chunked sum (what large catalogues use) is the same function."""
    from plumax_pod import GaussianMarks

    rng = np.random.default_rng(0)
    n = 1001
    q = np.exp(rng.normal(-2, 1, n))
    std = np.where(rng.uniform(size=n) < 0.3, 0.0, 0.3)
    data = PopulationData(
        np.sort(rng.uniform(0, 1e6, n)), GaussianMarks(np.log(q), std), [0.0, 0.0],
        [1e6, 1e6], instrument=rng.integers(0, 2, n), coverage=[0.5, 0.2],
    )  # fmt: skip
    model = LognormalHillModel(n_instruments=2)
    z = model.param_spec.to_unconstrained(model.initial_params(data))

    def f(z, chunk):
        intensity, marks, pods = model.build(model.param_spec.from_unconstrained(z))
        return event_sum(intensity, marks, pods, data, chunk)

    for fn in (f, jax.grad(f), jax.hessian(f)):
        fn = jax.jit(fn, static_argnums=1)
        np.testing.assert_allclose(fn(z, 10**6), fn(z, 300), rtol=1e-10, atol=1e-8)


# -- catalogue -> data: the pooling rule ------------------------------------------------


def _catalog(instruments, times=None, q=None):
    n = len(instruments)
    times = np.arange(n) * 3600.0 + 1.7e9 if times is None else np.asarray(times)
    return PlumeCatalog(
        time=times, lat=np.full(n, 30.0), lon=np.full(n, -100.0),
        q=np.full(n, 0.1) if q is None else np.asarray(q), q_sigma=np.full(n, np.nan),
        wind=np.full(n, np.nan), instrument=np.asarray(instruments),
        ids=np.array([f"p{i}" for i in range(n)]), lines=np.arange(2, n + 2),
    )  # fmt: skip


def test_unstated_coverage_pools_and_says_so():
    cat = _catalog(["EMIT"] * 6 + ["tanager"] * 2)
    fit = catalog_population_data(cat)
    assert fit.pooled and not fit.coverage_stated and fit.instruments == ("pooled (EMIT, tanager)",)
    assert "pooled" in fit.note and fit.describe()["pooled"]
    assert fit.data.n_instruments == 1 and fit.events == (8,)
    # a relabelled row cannot change a pooled fit: the data are identical
    relabelled = _catalog(["EMIT"] * 5 + ["tanager"] * 3)
    other = catalog_population_data(relabelled).data
    for a, b in zip(jax.tree.leaves(fit.data), jax.tree.leaves(other), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="coverage is not stated"):
        catalog_population_data(cat, pool=False)
    single = catalog_population_data(_catalog(["EMIT"] * 3))
    assert not single.pooled and not single.coverage_stated and "assumed" in single.note


def test_stated_coverage():
    cat = _catalog(["EMIT"] * 6 + ["tanager"] * 2)
    fit = catalog_population_data(cat, coverage={"EMIT": 0.4, "tanager": 0.1, "PRISMA": 0.2})
    assert not fit.pooled and fit.instruments == ("EMIT", "tanager", "PRISMA")
    assert fit.events == (6, 2, 0)  # PRISMA looked and saw nothing
    np.testing.assert_allclose(fit.data.coverage, [0.4, 0.1, 0.2])
    np.testing.assert_array_equal(fit.data.instrument, [0] * 6 + [1] * 2)
    with pytest.raises(ValueError, match=r"no coverage for instrument\(s\) \['tanager'\]"):
        catalog_population_data(cat, coverage={"EMIT": 0.4})
    with pytest.raises(ValueError, match="pool"):
        catalog_population_data(cat, coverage={"EMIT": 0.4, "tanager": 0.1}, pool=True)
    pooled = catalog_population_data(cat, coverage=0.3)
    assert pooled.pooled and pooled.coverage_stated
    assert float(pooled.data.coverage[0]) == pytest.approx(0.3)
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        catalog_population_data(cat, coverage={"EMIT": 1.5, "tanager": 0.1})
    with pytest.raises(ValueError, match="outside the window"):
        catalog_population_data(cat, start=1.7e9 + 7200.0)


def test_overpass_coverage_checks_detections_by_line():
    t0 = 1.7e9
    cat = _catalog(["EMIT"] * 3, times=[t0 + 100.0, t0 + DAY + 50.0, t0 + 2 * DAY + 2000.0])
    over = InstrumentCoverage(0.5, np.array([t0, t0 + DAY, t0 + 2 * DAY]), 600.0)
    with pytest.raises(ValueError, match=r"outside its overpass windows \(\+-600 s; lines 4\)"):
        catalog_population_data(cat, coverage={"EMIT": over})
    ok = catalog_population_data(
        _catalog(["EMIT"] * 2, times=[t0 + 100.0, t0 + DAY + 50.0]),
        coverage={"EMIT": over},
        start=t0,
        end=t0 + 2 * DAY + 300.0,
    )
    np.testing.assert_allclose(ok.data.observed_seconds(), [600.0 + 1200.0 + 900.0])  # clipped
    with pytest.raises(ValueError, match="overlap"):
        InstrumentCoverage(1.0, np.array([0.0, 100.0]), 60.0)


def test_read_coverage_files(tmp_path):
    p = tmp_path / "frac.csv"
    p.write_text("instrument,coverage\nEMIT,0.4\ntanager,0.1\n", encoding="utf-8")
    cov = read_coverage(p)
    assert cov["EMIT"].fraction == 0.4 and cov["tanager"].overpasses is None
    p.write_text("instrument,coverage\nEMIT,0.4\nEMIT,0.5\ntanager,1.5\nX,abc\n")
    with pytest.raises(CatalogError) as err:
        read_coverage(p)
    assert err.value.report.bad_lines == (3, 4, 5)
    o = tmp_path / "over.csv"
    o.write_text(
        "\ufeffinstrument,time\nEMIT,2024-01-01T10:30:00Z\nEMIT,2024-01-02T10:30:00Z\n"
        "tanager,2024-01-01T18:00:00Z\n",
        encoding="utf-8",
    )
    cov = read_coverage(o, half_window_s=1800.0)
    assert cov["EMIT"].overpasses.size == 2 and cov["EMIT"].half_window_s == 1800.0
    with pytest.raises(ValueError, match="half_window_s"):
        read_coverage(o)
    o.write_text("instrument,time\nEMIT,2024-01-01T10:30:00Z\nEMIT,2024-01-01T10:40:00Z\n")
    with pytest.raises(CatalogError, match="line 3: overpass of 'EMIT' within"):
        read_coverage(o, half_window_s=600.0)
    o.write_text("instrument,time\nEMIT,1704105000\n")
    with pytest.raises(CatalogError, match="epoch_unit"):
        read_coverage(o, half_window_s=600.0)
    assert read_coverage(o, half_window_s=600.0, epoch_unit="s")["EMIT"].overpasses[0] == 1704105000
    (tmp_path / "bad.csv").write_text("instrument,coverage,time\nEMIT,0.4,2024-01-01\n")
    with pytest.raises(ValueError, match="one of"):
        read_coverage(tmp_path / "bad.csv")


# -- the fit: stated coverage recovers the rate, whole-window coverage does not ----------

TRUTH = {"rate": 20.0 / DAY, "mu": math.log(0.05), "sigma": 1.0}
PODS = {"EMIT": (0.08, 2.0, 0.3), "tanager": (0.04, 2.0, 0.12)}  # Q50 kg/s, slope, coverage


@pytest.fixture(scope="module")
def two_instruments():
    rng = np.random.default_rng(11)
    T = 120 * DAY
    n = rng.poisson(TRUTH["rate"] * T)
    t = np.sort(rng.uniform(0, T, n))
    q = np.exp(TRUTH["mu"] + TRUTH["sigma"] * rng.standard_normal(n))
    rows_t, rows_q, rows_i = [], [], []
    for name, (q50, s, c) in PODS.items():
        seen = rng.uniform(size=n) < c * _hill(q, q50, s)
        rows_t.append(t[seen])
        rows_q.append(q[seen])
        rows_i += [name] * int(seen.sum())
    order = np.argsort(np.concatenate(rows_t), kind="stable")
    cat = _catalog(
        np.asarray(rows_i)[order], 1.7e9 + np.concatenate(rows_t)[order],
        np.concatenate(rows_q)[order],
    )  # fmt: skip
    return cat, T, float(q.sum())


def _fit(cat, T, coverage):
    with jax.enable_x64(True):
        fit = catalog_population_data(cat, start=1.7e9, end=1.7e9 + T, coverage=coverage)
        pods = tuple(HillPOD(PODS[k][0], PODS[k][1]) for k in fit.instruments)
        model = LognormalHillModel(n_instruments=2, fixed_pod=pods, rate_prior=(1e-4, 5.0))
        post = fit_map_laplace(model, fit.data)
        d = population_draws(
            model, post, fit.data, detected_q=fit.detected_q, duration=3600.0, key=jr.key(0),
            n=1000,
        )  # fmt: skip
    return post, d


def test_stated_coverage_recovers_the_rate_and_the_total(two_instruments):
    cat, T, true_sum = two_instruments
    post, d = _fit(cat, T, {k: v[2] for k, v in PODS.items()})
    assert post.provenance["converged"]
    lo, hi = np.quantile(d["rate"], [0.025, 0.975])
    assert lo <= TRUTH["rate"] <= hi
    naive_kg = float(cat.q.sum()) * 3600.0
    assert np.all(d["total_kg"] >= naive_kg) and np.all(d["missed_kg"] >= 0)
    assert np.all((d["missing_fraction"] >= 0) & (d["missing_fraction"] < 1))
    lo, hi = np.quantile(d["total_kg"], [0.025, 0.975])
    assert lo <= true_sum * 3600.0 <= hi
    # the old assumption (each instrument watched everything) is far off, and the test
    # can tell: its rate interval misses the truth by a wide margin
    _, d_whole = _fit(cat, T, {k: 1.0 for k in PODS})
    assert np.quantile(d_whole["rate"], 0.975) < TRUTH["rate"] / 2
    # ... yet even there the missed part is never negative
    assert np.all(d_whole["total_kg"] >= naive_kg)
