"""``plumax population``: a plume list -> event rate, sizes, missed mass and total."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from plumax._cli import app
from plumax._population import population

DAY = 86400.0
T0 = 1.7e9  # 2023-11-14T22:13:20Z
DAYS = 120
RATE_PER_DAY, Q_MEDIAN_KGH, LOG_SD, Q50_KGH, SLOPE = 10.0, 180.0, 1.0, 288.0, 2.0


def _write(path: Path, rows) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "time", "lat", "lon", "q", "q_sigma", "wind", "instrument", "units"])
        w.writerows(rows)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A detected catalogue drawn from the model itself, with its truth."""
    rng = np.random.default_rng(3)
    span = DAYS * DAY
    n = rng.poisson(RATE_PER_DAY * DAYS)
    t = np.sort(rng.uniform(0, span, n))
    q = Q_MEDIAN_KGH * np.exp(LOG_SD * rng.standard_normal(n))  # kg/h
    det = rng.uniform(size=n) < q**SLOPE / (q**SLOPE + Q50_KGH**SLOPE)
    path = tmp_path_factory.mktemp("pop") / "plumes.csv"
    rows = [
        [f"p{i}", f"{T0 + t[i]:.0f}", 32.0, -103.0, f"{q[i]:.4f}", "", 3.0, "EMIT", "kg/h"]
        for i in np.flatnonzero(det)
    ]
    _write(path, rows)
    truth = {
        "rate": n / DAYS,
        "total_t": float(q.sum()) / 1e3,  # 1-h events: kg/h * 1 h
        "naive_t": float(q[det].sum()) / 1e3,
        "detected": det.mean(),
    }
    return path, truth


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
    assert s["pod"] == "known" and s["converged"]


def test_fitted_detection_curve_is_honestly_wide(synthetic):
    path, truth = synthetic
    s = population(path, start=T0, end=T0 + DAYS * DAY, q50_prior_kgh=200.0).summary
    p = s["parameters"]
    assert _covers(p["event_rate_per_day"], truth["rate"])
    assert _covers(p["q50_kgh"]["EMIT"], Q50_KGH)
    assert _covers(s["total_t"], truth["total_t"])
    assert s["pod"] == "fitted"


runner = CliRunner()


def _err_line(r, needle):
    assert r.exit_code == 1, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], r.stderr
    assert "Traceback" not in r.output


def test_cli_writes_json_and_reports_malformed_rows(synthetic, tmp_path):
    path, _ = synthetic
    text = path.read_text().splitlines()
    text[2] = text[2].replace("kg/h", "furlongs")  # line 3: unknown unit
    text[5] = "p,not-a-time,32,-103,10,,3,EMIT,kg/h"  # line 6
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(text) + "\n")
    out = tmp_path / "pop.json"
    r = runner.invoke(app, ["population", str(bad), "--out", str(out)])
    _err_line(r, "line 3")
    assert "line 6" in r.stderr and "--skip-bad-rows" in r.stderr
    assert not out.exists()
    r = runner.invoke(
        app,
        [
            "population",
            str(bad),
            "--out",
            str(out),
            "--skip-bad-rows",
            "--pod-q50-kgh",
            "288",
            "--pod-slope",
            "2",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "line 3" in r.stderr and "line 6" in r.stderr
    assert "true events" in r.stdout and "missing-mass fraction" in r.stdout
    s = json.loads(out.read_text())
    assert [m["line"] for m in s["malformed"]] == [3, 6]
    assert s["catalog"]["clean_rows"] == s["catalog"]["rows"] - 2


def test_cli_bad_input(synthetic, tmp_path):
    path, _ = synthetic
    r = runner.invoke(app, ["population", str(tmp_path / "none.csv")])
    _err_line(r, "does not exist")
    r = runner.invoke(app, ["population", str(path), "--start", "yesterday"])
    _err_line(r, "--start")
    r = runner.invoke(app, ["population", str(path), "--pod-q50-kgh", "100"])
    _err_line(r, "--pod-slope")
    r = runner.invoke(app, ["population", str(path), "--schema", "nasa"])
    _err_line(r, "--schema")
    r = runner.invoke(app, ["population", str(path), "--end", "2023-12-01"])
    _err_line(r, "outside the window")
    few = tmp_path / "few.csv"
    _write(few, [[f"p{i}", f"{T0 + i}", 32, -103, 100, "", 3, "EMIT", "kg/h"] for i in range(3)])
    r = runner.invoke(app, ["population", str(few)])
    _err_line(r, "at least 5")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["few.csv"]
