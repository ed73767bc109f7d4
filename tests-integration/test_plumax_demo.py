"""``plumax demo --fast`` end to end in a temporary folder (slow)."""

import json
import os

import pytest
from typer.testing import CliRunner


@pytest.mark.slow
def test_plumax_demo_fast(tmp_path):
    from plumax._cli import app

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        r = CliRunner().invoke(app, ["demo", "--fast", "--out", "demo"], catch_exceptions=False)
    finally:
        os.chdir(cwd)
    assert r.exit_code == 0, r.output
    assert "plumax-rtm" in r.stderr and "matched-filter" in r.stderr
    out = tmp_path / "demo"
    for name in (
        "report.html",
        "scene.nc",
        "retrieved.nc",
        "summary.json",
        "posterior-laplace.json",
        "posterior-nuts.json",
        "registry/index.json",
    ):
        assert (out / name).is_file(), name
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2
    assert "retrieved enhancement" in html and "plume mask" in html
    summary = json.loads((out / "summary.json").read_text())
    q_true = summary["truth"]["Q"]
    assert summary["transport_only"] is False
    ret = summary["retrieval"]
    assert ret["mask_pixels"] >= 5 and ret["residual_scale"] >= 1.0
    assert ret["IME"] is not None and ret["mean_uncertainty_ppm_m"] > 0
    for method in ("laplace", "nuts"):
        q = summary[method]["Q"]
        assert summary[method]["level"] == 0.9
        assert q["lo"] <= q_true <= q["hi"], (method, q, q_true)
