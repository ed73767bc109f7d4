"""``plumax population``: a plume list -> event rate, sizes, missed mass and total.

The recovery tests fit synthetic catalogues drawn from the model. The issue-17
regression tests (sigma rule, times, duplicates and bytes, several instruments) run
through the CLI harness of ``conftest.py`` (``plumax_cli``): no input changes and
nothing is created outside the output path.
"""

import csv
import datetime as dt
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import plumax_pod as pp
from plumax._population import population

DAY = 86400.0
T0 = 1.7e9  # 2023-11-14T22:13:20Z
DAYS = 120
RATE_PER_DAY, Q_MEDIAN_KGH, LOG_SD, Q50_KGH, SLOPE = 10.0, 180.0, 1.0, 288.0, 2.0
HEADER = ["id", "time", "lat", "lon", "q", "q_sigma", "wind", "instrument", "units"]
KNOWN = ["--pod-q50-kgh", str(Q50_KGH), "--pod-slope", str(SLOPE)]


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _write(path: Path, rows, header=HEADER) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def _draw(seed=3):
    """A detected catalogue drawn from the model itself, with its truth."""
    rng = np.random.default_rng(seed)
    span = DAYS * DAY
    n = rng.poisson(RATE_PER_DAY * DAYS)
    t = np.sort(rng.uniform(0, span, n))
    q = Q_MEDIAN_KGH * np.exp(LOG_SD * rng.standard_normal(n))  # kg/h
    det = rng.uniform(size=n) < q**SLOPE / (q**SLOPE + Q50_KGH**SLOPE)
    truth = {
        "rate": n / DAYS,
        "total_t": float(q.sum()) / 1e3,  # 1-h events: kg/h * 1 h
        "naive_t": float(q[det].sum()) / 1e3,
        "detected": det.mean(),
    }
    return T0 + t[det], q[det], truth


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """ISO 8601 times, no q_sigma column (exact rates), one instrument."""
    t, q, truth = _draw()
    rows = [
        [f"p{i}", _iso(t[i]), 32.0, -103.0, f"{q[i]:.4f}", 3.0, "EMIT", "kg/h"]
        for i in range(t.size)
    ]
    header = [h for h in HEADER if h != "q_sigma"]
    path = _write(tmp_path_factory.mktemp("pop") / "plumes.csv", rows, header)
    return path, truth


@pytest.fixture(scope="module")
def with_sigma(tmp_path_factory):
    """The same detections with a 25% q_sigma on every row (line i+2 = detection i)."""
    t, q, _ = _draw()
    rows = [
        [f"p{i}", _iso(t[i]), 32.0, -103.0, f"{q[i]:.4f}", f"{0.25 * q[i]:.4f}", 3.0, "EMIT",
         "kg/h"]
        for i in range(t.size)
    ]  # fmt: skip
    return rows


def _covers(v, x):
    return v["lo"] <= x <= v["hi"]


def test_known_detection_curve_recovers_the_population(synthetic):
    path, truth = synthetic
    res = population(
        path, start=T0, end=T0 + DAYS * DAY, pod_q50_kgh=Q50_KGH, pod_slope=SLOPE, level=0.95
    )
    s = res.summary
    assert s["catalog"]["events"] == s["catalog"]["rows"] > 300  # no de-duplication asked
    p = s["parameters"]
    assert _covers(p["event_rate_per_day"], truth["rate"])
    assert _covers(p["median_event_kgh"], Q_MEDIAN_KGH)
    assert _covers(p["log_sd"], LOG_SD)
    assert _covers(s["detected_fraction"]["EMIT"], truth["detected"])
    assert _covers(s["total_t"], truth["total_t"])
    # the naive catalogue sum is the detected mass only: below the whole interval
    assert s["naive_total_t"] == pytest.approx(truth["naive_t"], rel=1e-6)
    assert s["naive_total_t"] < s["total_t"]["lo"]
    assert 0 < s["missing_mass_fraction"]["lo"] <= s["missing_mass_fraction"]["hi"] < 1
    assert s["pod"] == "known" and s["converged"]
    assert s["catalog"]["time_rule"] == "ISO 8601" and s["catalog"]["mark_likelihood"] == "point"
    assert s["coverage"] == {
        "pooled": False,
        "stated": False,
        "note": "one instrument ('EMIT'), assumed to observe the whole window (coverage not "
        "stated)",
        "instruments": {"EMIT": {"events": s["catalog"]["events"], "fraction": 1.0}},
    }


def test_a_hessian_that_is_not_positive_definite_is_said(synthetic, monkeypatch):
    """The Laplace fit floors a non-positive-definite Hessian's eigenvalues so that a
    covariance exists; the summary must then say the intervals are not trustworthy."""
    import dataclasses

    import plumax_pod as pp

    real = pp.fit_map_laplace

    def saddle(model, data, **kw):
        post = real(model, data, **kw)
        prov = {**post.provenance, "hessian_positive_definite": False, "converged": False}
        return dataclasses.replace(post, provenance=prov)

    monkeypatch.setattr(pp, "fit_map_laplace", saddle)
    path, _ = synthetic
    res = population(path, start=T0, end=T0 + DAYS * DAY, pod_q50_kgh=Q50_KGH, pod_slope=SLOPE)
    s = res.summary
    assert not s["converged"]
    assert any("not positive definite" in w for w in s["warnings"]), s["warnings"]


def test_fitted_detection_curve_is_honestly_wide(synthetic):
    path, truth = synthetic
    s = population(path, start=T0, end=T0 + DAYS * DAY, q50_prior_kgh=200.0).summary
    p = s["parameters"]
    assert _covers(p["event_rate_per_day"], truth["rate"])
    assert _covers(p["q50_kgh"]["EMIT"], Q50_KGH)
    assert _covers(s["total_t"], truth["total_t"])
    assert s["pod"] == "fitted"


# -- the CLI ------------------------------------------------------------------------------


def _err_line(r, *needles):
    assert r.exit_code == 1, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    for needle in needles:
        assert needle in lines[0], (needle, r.stderr)
    assert "Traceback" not in r.output


def test_cli_writes_json_and_reports_malformed_rows(plumax_cli, synthetic, tmp_path):
    path, _ = synthetic
    text = path.read_text().splitlines()
    text[2] = text[2].replace("kg/h", "furlongs")  # line 3: unknown unit
    text[5] = "p,not-a-time,32,-103,10,3,EMIT,kg/h"  # line 6
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(text) + "\n")
    r = plumax_cli("population", "bad.csv", "--out", "pop.json", root=tmp_path, inputs=["bad.csv"])
    _err_line(r, "line 3", "line 6", "--skip-bad-rows")
    r = plumax_cli(
        "population", "bad.csv", "--out", "pop.json", "--skip-bad-rows", *KNOWN,
        root=tmp_path, inputs=["bad.csv"], outputs=["pop.json"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "line 3" in r.stderr and "line 6" in r.stderr
    assert "true events" in r.stdout and "missing-mass fraction" in r.stdout
    s = json.loads((tmp_path / "pop.json").read_text())
    assert [m["line"] for m in s["malformed"]] == [3, 6]
    assert s["catalog"]["clean_rows"] == s["catalog"]["rows"] - 2


def test_cli_bad_input(plumax_cli, synthetic, tmp_path):
    path, _ = synthetic
    local = tmp_path / "plumes.csv"
    local.write_bytes(path.read_bytes())
    run = lambda *a: plumax_cli("population", *a, root=tmp_path, inputs=["plumes.csv"])  # noqa: E731
    _err_line(run("none.csv"), "does not exist")
    _err_line(run("plumes.csv", "--start", "yesterday"), "--start")
    _err_line(run("plumes.csv", "--pod-q50-kgh", "100"), "--pod-slope")
    _err_line(run("plumes.csv", "--schema", "nasa"), "--schema")
    _err_line(run("plumes.csv", "--end", "2023-12-01"), "outside the window")
    _err_line(run("plumes.csv", "--epoch-unit", "min"), "--epoch-unit")
    _err_line(run("plumes.csv", "--epoch-unit", "s", "--time-format", "%Y"), "not both")
    _err_line(run("plumes.csv", "--coverage", "EMIT=2"), "--coverage", "(0, 1]")
    _err_line(run("plumes.csv", "--coverage", "0.3", "--coverage", "0.2"), "--coverage")
    _err_line(run("plumes.csv", "--out", "plumes.csv"), "--out", "would write over the input")
    _err_line(run("plumes.csv", "--coverage-file", "cov.csv"), "--coverage-file", "does not exist")
    _write(
        tmp_path / "few.csv",
        [[f"p{i}", _iso(T0 + i), 32, -103, 100, 1, 3, "EMIT", "kg/h"] for i in range(3)],
    )
    r = plumax_cli("population", "few.csv", root=tmp_path, inputs=["few.csv"])
    _err_line(r, "at least 5")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["few.csv", "plumes.csv"]


# -- issue 17, 1: one bad q_sigma ---------------------------------------------------------


def test_one_bad_sigma_no_longer_switches_every_row(plumax_cli, with_sigma, tmp_path):
    """Reported: one negative, zero or blank q_sigma switched every row from Gaussian to
    point marks (116.8 t -> 134.3 t). Now it is a malformed row; leaving it out gives
    exactly the answer of the list without it."""
    rows = [list(r) for r in with_sigma]
    rows[10][5] = "-3"  # line 12
    _write(tmp_path / "bad.csv", rows)
    _write(tmp_path / "without.csv", rows[:10] + rows[11:])
    for sigma in ("-3", "0", ""):
        rows[10][5] = sigma
        _write(tmp_path / "bad.csv", rows)
        r = plumax_cli("population", "bad.csv", root=tmp_path, inputs=["bad.csv"])
        _err_line(r, "1 malformed row(s)", "line 12", "q_sigma")
    r = plumax_cli(
        "population", "bad.csv", "--skip-bad-rows", "--out", "a.json", *KNOWN,
        root=tmp_path, inputs=["bad.csv"], outputs=["a.json"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    r = plumax_cli(
        "population", "without.csv", "--out", "b.json", *KNOWN,
        root=tmp_path, inputs=["without.csv"], outputs=["b.json"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    a, b = (json.loads((tmp_path / f).read_text()) for f in ("a.json", "b.json"))
    assert a["catalog"]["mark_likelihood"] == b["catalog"]["mark_likelihood"] == "gaussian"
    for key in ("total_t", "missed_t", "naive_total_t", "missing_mass_fraction", "parameters"):
        assert a[key] == b[key], key
    # a blank sigma allowed explicitly: that row alone is exact, the rest stay Gaussian
    r = plumax_cli(
        "population", "bad.csv", "--blank-sigma", "point", "--out", "c.json", *KNOWN,
        root=tmp_path, inputs=["bad.csv"], outputs=["c.json"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    c = json.loads((tmp_path / "c.json").read_text())
    assert c["catalog"]["mark_likelihood"] == "mixed"
    assert c["catalog"]["q_sigma"] == "column, blanks exact"


# -- issue 17, 2: times ---------------------------------------------------------------------


def test_epochs_need_their_unit_and_fail_before_the_fit(
    plumax_cli, with_sigma, tmp_path, monkeypatch
):
    """Reported: ms epochs failed after a 21 s fit ("year 55842 is out of range"), and
    20240131 was read as Unix seconds."""
    rows = [list(r) for r in with_sigma]
    for r in rows:
        r[1] = str(int(pp.parse_time(r[1]) * 1000))
    _write(tmp_path / "ms.csv", rows)
    monkeypatch.setattr(pp, "fit_map_laplace", lambda *a, **k: pytest.fail("fitted"))
    r = plumax_cli("population", "ms.csv", root=tmp_path, inputs=["ms.csv"])
    _err_line(r, "line 2", "not ISO 8601", "epoch_unit")
    r = plumax_cli("population", "ms.csv", "--epoch-unit", "s", root=tmp_path, inputs=["ms.csv"])
    _err_line(r, "line 2", "outside the plausible years 1970-2100")
    rows[3][1] = "20240131"  # ISO 8601 basic format: as ms, 1970-01-01T05:37:20Z
    _write(tmp_path / "ms.csv", rows)
    r = plumax_cli(
        "population", "ms.csv", "--epoch-unit", "ms", "--min-year", "2000",
        root=tmp_path, inputs=["ms.csv"],
    )  # fmt: skip
    _err_line(r, "1 malformed row(s)", "line 5", "1970-01-01T05:37:20", "2000-2100")


def test_epoch_and_format_options_read_the_same_times(plumax_cli, with_sigma, tmp_path):
    rows = [list(r) for r in with_sigma]
    _write(tmp_path / "iso.csv", rows)
    for r in rows:
        r[1] = str(int(pp.parse_time(r[1]) * 1000))
    _write(tmp_path / "ms.csv", rows)
    out = {}
    for name, extra in (("iso", []), ("ms", ["--epoch-unit", "ms"])):
        r = plumax_cli(
            "population", f"{name}.csv", "--out", f"{name}.json", *KNOWN, *extra,
            root=tmp_path, inputs=[f"{name}.csv"], outputs=[f"{name}.json"],
        )  # fmt: skip
        assert r.exit_code == 0, r.output
        out[name] = json.loads((tmp_path / f"{name}.json").read_text())
    assert out["ms"]["catalog"]["time_rule"] == "Unix epoch in ms"
    assert out["ms"]["total_t"] == out["iso"]["total_t"]
    assert out["ms"]["catalog"]["start"] == out["iso"]["catalog"]["start"]


# -- issue 17, 3: header, duplicates, bytes -------------------------------------------------


def test_header_duplicates_and_bytes(plumax_cli, with_sigma, tmp_path):
    rows = [list(r) for r in with_sigma[:20]]
    _write(tmp_path / "dupcol.csv", [r + ["9"] for r in rows], HEADER + ["q"])
    r = plumax_cli("population", "dupcol.csv", root=tmp_path, inputs=["dupcol.csv"])
    _err_line(r, "repeats column(s) 'q'")
    _write(tmp_path / "twice.csv", rows + rows)  # reported: every row doubled, rate x4.1
    r = plumax_cli("population", "twice.csv", root=tmp_path, inputs=["twice.csv"])
    _err_line(r, "20 malformed row(s)", "line 22: exact duplicate of line 2")
    path = _write(tmp_path / "latin1.csv", rows)
    data = path.read_bytes().split(b"\n")
    data[6] = data[6].replace(b"EMIT", b"EM\xc9T")
    path.write_bytes(b"\n".join(data))
    r = plumax_cli("population", "latin1.csv", root=tmp_path, inputs=["latin1.csv"])
    _err_line(r, "latin1.csv", "line 7", "not UTF-8")


# -- issue 17, 4: several instruments -------------------------------------------------------


def _two_instruments(with_sigma, relabel_at=None):
    rows = [list(r) for r in with_sigma]
    for i, r in enumerate(rows):
        r[7] = "EMIT" if i % 4 else "tanager"
    if relabel_at is not None:
        rows[relabel_at][7] = "tanager"
    return rows


def test_unstated_coverage_pools_instruments_and_says_so(plumax_cli, with_sigma, tmp_path):
    """Reported: each instrument was taken to watch the whole window; the missing-mass
    fraction came out at -0.69 and one relabelled row moved the rate from 4.55 to 125
    events/day. Now the instruments are pooled (with a warning) unless their coverage is
    stated, so relabelling a row cannot change the answer."""
    _write(tmp_path / "a.csv", _two_instruments(with_sigma))
    _write(tmp_path / "b.csv", _two_instruments(with_sigma, relabel_at=5))
    out = {}
    for name in ("a", "b"):
        r = plumax_cli(
            "population", f"{name}.csv", "--out", f"{name}.json", *KNOWN,
            root=tmp_path, inputs=[f"{name}.csv"], outputs=[f"{name}.json"],
        )  # fmt: skip
        assert r.exit_code == 0, r.output
        assert "warning:" in r.stderr and "pooled into one instrument" in r.stderr
        out[name] = json.loads((tmp_path / f"{name}.json").read_text())
    a, b = out["a"], out["b"]
    assert a["coverage"]["pooled"] and not a["coverage"]["stated"]
    assert any("pooled" in w for w in a["warnings"])
    assert a["parameters"]["event_rate_per_day"] == b["parameters"]["event_rate_per_day"]
    assert a["total_t"] == b["total_t"]
    assert 0 <= a["missing_mass_fraction"]["lo"] <= a["missing_mass_fraction"]["hi"] < 1
    assert a["naive_total_t"] <= a["total_t"]["lo"]
    r = plumax_cli("population", "a.csv", "--separate-instruments", root=tmp_path, inputs=["a.csv"])
    _err_line(r, "coverage is not stated")
    r = plumax_cli("population", "a.csv", "--coverage", "EMIT=0.5", root=tmp_path, inputs=["a.csv"])
    _err_line(r, "no coverage for instrument(s) ['tanager']")


def test_stated_coverage_fits_instruments_apart(plumax_cli, with_sigma, tmp_path):
    _write(tmp_path / "a.csv", _two_instruments(with_sigma))
    (tmp_path / "cov.csv").write_text("instrument,coverage\nEMIT,0.6\ntanager,0.2\n")
    r = plumax_cli(
        "population", "a.csv", "--coverage-file", "cov.csv", "--out", "a.json", *KNOWN,
        root=tmp_path, inputs=["a.csv", "cov.csv"], outputs=["a.json"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "pooled" not in r.stderr
    s = json.loads((tmp_path / "a.json").read_text())
    assert s["coverage"]["stated"] and not s["coverage"]["pooled"]
    assert s["coverage"]["instruments"]["tanager"]["fraction"] == 0.2
    assert set(s["detected_fraction"]) == {"EMIT", "tanager"}
    assert 0 <= s["missing_mass_fraction"]["lo"] <= s["missing_mass_fraction"]["hi"] < 1
    assert s["naive_total_t"] <= s["total_t"]["lo"]
    r = plumax_cli(
        "population", "a.csv", "--coverage-file", "cov.csv", "--out", "cov.csv",
        root=tmp_path, inputs=["a.csv", "cov.csv"],
    )  # fmt: skip
    _err_line(r, "--out", "would write over the input")


# -- issue 17, 5: scale ---------------------------------------------------------------------


@pytest.mark.slow
def test_a_million_rows_ingest_and_fit_within_4_gb(tmp_path):
    """Reported: 200 000 rows took 5 min and 5.1 GB. 10^6 rows must fit within 4 GB
    (peak RSS of a fresh process; benchmarks/bench_pod_catalog.py has the timings)."""
    script = textwrap.dedent(
        """
        import resource, sys
        import numpy as np
        sys.path.insert(0, sys.argv[2])
        from bench_pod_catalog import write_catalogue
        write_catalogue(sys.argv[1], 1_000_000, seed=0)
        from plumax._population import population
        s = population(sys.argv[1], n_draws=1000).summary
        assert s["catalog"]["events"] == 1_000_000, s["catalog"]
        assert 0 <= s["missing_mass_fraction"]["lo"] <= s["missing_mass_fraction"]["hi"] < 1
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        """
    )
    bench = Path(__file__).resolve().parents[3] / "benchmarks"
    r = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "m.csv"), str(bench)],
        capture_output=True, text=True, timeout=3600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    peak_gb = int(r.stdout.split()[-1]) / 1024**2
    assert peak_gb < 4.0, peak_gb
