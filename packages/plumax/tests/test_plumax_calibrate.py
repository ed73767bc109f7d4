"""``plumax calibrate`` / ``pipelines.calibrate``: the checks, and the chain itself.

The checks are tested on synthetic cases whose calibration is known (Gaussian
posteriors of known width around truths with Gaussian errors: calibrated, and the same
with the width halved: overconfident); the whole chain at ``--n 40 --fast`` is a slow
test, with the overconfident chain (every assumed error halved) that must fail.
"""

from __future__ import annotations

import math

import jax.random as jr
import numpy as np
import pytest
from scipy import stats

from plumax._calibrate import LEVELS, PARAMS, TruthDistribution, _checks
from plumax.pipelines import calibrate


def _cases(n, width_scale, seed=0, n_draws=99):
    """Truth Q, x0 = y0 = 0; point estimates off by N(0, s); posterior N(estimate, s ·
    width_scale) for each parameter (Q in log space)."""
    rng = np.random.default_rng(seed)
    sd = {"Q": 0.1, "x0": 10.0, "y0": 5.0}
    out = []
    for _ in range(n):
        q = float(np.exp(rng.uniform(np.log(100), np.log(5000))))
        truth = {"Q": math.log(q), "x0": 0.0, "y0": 0.0}
        est = {p: truth[p] + sd[p] * rng.standard_normal() for p in PARAMS}
        post_sd = {p: sd[p] * width_scale for p in PARAMS}
        iv = {}
        for lv in LEVELS:
            z = stats.norm.ppf(0.5 + lv / 2)
            iv[str(lv)] = {p: [est[p] - z * post_sd[p], est[p] + z * post_sd[p]] for p in PARAMS}
            iv[str(lv)]["Q"] = [math.exp(v) for v in iv[str(lv)]["Q"]]
        draws = {p: est[p] + post_sd[p] * rng.standard_normal(n_draws) for p in PARAMS}
        rank = [int(np.sum(draws[p] < truth[p])) for p in PARAMS]
        med = {p: est[p] for p in PARAMS}
        med["Q"] = math.exp(med["Q"])
        out.append(
            {
                "truth": {"q_kgh": q, "x0": 0.0, "y0": 0.0},
                "intervals": iv,
                "median": med,
                "rank": rank,
            }
        )
    return out


def test_a_calibrated_chain_passes_and_an_overconfident_one_fails():
    ok, passed = _checks(_cases(200, 1.0), 99, 1.25)
    assert passed, ok
    for p in PARAMS:
        assert ok[p]["width_ratio"] == pytest.approx(1.0, abs=0.15)
    bad, passed = _checks(_cases(200, 0.5), 99, 1.25)
    assert not passed
    for p in PARAMS:
        assert not bad[p]["coverage"]["0.9"]["pass"] and not bad[p]["sbc_pass"]
    wide, passed = _checks(_cases(200, 2.0), 99, 1.25)
    assert not passed and all(not wide[p]["width_pass"] for p in PARAMS)


def test_truth_distribution_draws_inside_its_ranges_and_checks_its_fields():
    d = TruthDistribution(classes="EF")
    draws = [d.draw(k) for k in jr.split(jr.key(1), 200)]
    q = np.array([t["q_kgh"] for t in draws])
    assert q.min() >= 100 and q.max() <= 5000
    assert {t["stability"] for t in draws} == {"E", "F"}
    assert all(1.5 <= t["wind_speed"] <= 8.0 for t in draws)
    # log-uniform: the median is the geometric mean of the range (about 707 kg/h)
    assert np.median(q) == pytest.approx(math.sqrt(100 * 5000), rel=0.25)
    for kwargs, needle in [
        ({"q_kgh": (500.0, 100.0)}, "q_kgh"),
        ({"classes": "AG"}, "classes"),
        ({"wind_speed": (0.1, 2.0)}, "wind_speed"),
        ({"wind_direction_std": -1.0}, "wind_direction_std"),
    ]:
        with pytest.raises(ValueError, match=needle):
            TruthDistribution(**kwargs)


def test_calibrate_refuses_too_few_truths_and_bad_scales():
    with pytest.raises(ValueError, match="`n` must be an int >= 10"):
        calibrate(5)
    with pytest.raises(ValueError, match="error_scale"):
        calibrate(10, error_scale=0.0)


@pytest.mark.slow
def test_the_chain_is_calibrated_and_an_overconfident_chain_is_not():
    """``plumax calibrate --n 40 --fast``: for Q, x0 and y0 the 50/90/95% intervals
    cover the truth within the binomial bands, widths at most 1.25x the spread, SBC
    p > 0.01; the same chain with every assumed error halved fails."""
    res = calibrate(40, fast=True, seed=0)
    for p in ("Q", "x0", "y0"):
        c = res.checks[p]
        assert all(v["pass"] for v in c["coverage"].values()), (p, c)
        assert c["width_pass"] and c["sbc_pass"], (p, c)
    assert res.passed
    over = calibrate(40, fast=True, seed=0, error_scale=0.5)
    assert not over.passed
    assert not over.checks["Q"]["pass"]


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (("--albedo-range", "0.5", "0.1"), "albedo_mean"),
        (("--snr-range", "0", "300"), "snr"),
        (("--dir-range", "300", "200"), "wind_dir"),
        (("--classes", "XYZ"), "classes"),
    ],
)
def test_bad_calibrate_options_are_named_before_any_work(tmp_path, plumax_cli, extra, needle):
    r = plumax_cli("calibrate", "--n", "10", "--out", "cal", *extra, root=tmp_path)
    assert r.exit_code != 0
    assert needle in r.output
    assert not (tmp_path / "cal").exists()
