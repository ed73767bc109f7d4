"""``plumax demo --fast`` end to end in a temporary folder (slow).

One full demo run (module fixture) is shared by the tests: the outputs and their
manifest, the umask, and a second demo killed with SIGKILL while it writes its outputs
into a copy of the first run's folder (the copy must stay all-old).
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

OUTPUTS = (
    "report.html",
    "scene.nc",
    "retrieved.nc",
    "summary.json",
    "posterior-laplace.json",
    "posterior-nuts.json",
    "plumax-manifest.json",
)


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, plumax_cli):
    d = tmp_path_factory.mktemp("demo")
    r = plumax_cli("demo", "--fast", "--out", "demo", root=d, outputs=["demo"])
    assert r.exit_code == 0, r.output
    assert os.listdir(d) == ["demo"]  # nothing outside the output folder
    return d / "demo", r


@pytest.mark.slow
def test_plumax_demo_fast(demo_run):
    from plumax._outputs import read_manifest, verify_folder

    out, r = demo_run
    assert "plumax-rtm" in r.stderr and "matched-filter" in r.stderr
    from plumax_core import ArtifactRegistry

    for name in OUTPUTS:
        assert (out / name).is_file(), name
    names = {rec.name for rec in ArtifactRegistry(out / "registry").list()}
    assert names == {"demo-retrieved-map", "demo-posterior-laplace", "demo-posterior-nuts"}
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2
    assert "retrieved enhancement" in html and "plume mask" in html
    summary = json.loads((out / "summary.json").read_text())
    q_true = summary["truth"]["Q"]
    assert summary["transport_only"] is False
    assert summary["report"] == str(Path("demo") / "report.html")
    ret = summary["retrieval"]
    assert ret["mask_pixels"] >= 5 and ret["residual_scale"] >= 1.0
    assert ret["IME"] is not None and ret["mean_uncertainty_ppm_m"] > 0
    for method in ("laplace", "nuts"):
        q = summary[method]["Q"]
        assert summary[method]["level"] == 0.9
        assert q["lo"] <= q_true <= q["hi"], (method, q, q_true)
    # the manifest lists every output, the registry's files included, unchanged
    assert verify_folder(out) == []
    listed = read_manifest(out)["files"]
    assert sorted([*listed, "plumax-manifest.json"]) == sorted(_snapshot(out))
    mask = os.umask(0)
    os.umask(mask)
    for name in OUTPUTS:
        assert (out / name).stat().st_mode & 0o777 == 0o666 & ~mask, name
    assert out.stat().st_mode & 0o777 == 0o777 & ~mask


@pytest.mark.slow
def test_kill_9_during_demo_output_writing_leaves_the_old_outputs(demo_run, tmp_path):
    from plumax._outputs import find_leftovers, verify_folder

    target = tmp_path / "demo"
    shutil.copytree(demo_run[0], target)
    before = _snapshot(target)
    assert verify_folder(target) == []
    cmd = "from plumax._cli import app; app()"
    proc = subprocess.Popen(
        [sys.executable, "-c", cmd, "demo", "--fast", "--seed", "5", "--out", str(target)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        staging = None
        # kill once the new run has written some outputs (scene.nc, retrieved.nc) into
        # its staging folder, i.e. while it writes
        while time.monotonic() < deadline and proc.poll() is None:
            found = [p for p in find_leftovers(target) if (p / "retrieved.nc").exists()]
            if found:
                staging = found[0]
                break
            time.sleep(0.05)
        assert staging is not None, "the demo never wrote retrieved.nc into its staging folder"
    finally:
        proc.kill()
        proc.wait(timeout=60)
    assert _snapshot(target) == before  # all-old, every file
    assert verify_folder(target) == []
    assert find_leftovers(target) == [staging]  # clearly named, reported by the next run
    assert sorted(os.listdir(tmp_path)) == sorted(["demo", staging.name])
