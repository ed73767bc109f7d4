"""CLI regression tests (issue 17, data loss): no command writes over one of its inputs,
outputs honour the umask, one wind-speed rule, and warnings reach the terminal.

Every command runs through the harness of ``conftest.py`` (``plumax_cli``).
"""

import contextlib
import json
import os
import shutil
from pathlib import Path

import pytest
import xarray as xr


def _one_line_error(r, *needles: str) -> str:
    assert r.exit_code == 1, r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error:"), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "Traceback" not in r.output
    return lines[0]


@contextlib.contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture(scope="module")
def scene_file(tmp_path_factory, plumax_cli) -> Path:
    d = tmp_path_factory.mktemp("scene")
    r = plumax_cli("simulate", "scene.nc", "--pixels", "8", root=d, outputs=["scene.nc"])
    assert r.exit_code == 0, r.output
    return d / "scene.nc"


@pytest.fixture
def work(scene_file, tmp_path) -> Path:
    shutil.copy2(scene_file, tmp_path / "scene.nc")
    return tmp_path


# ----------------------------------------------------------------- inputs are never outputs


def test_invert_refuses_to_write_over_its_input(work, plumax_cli):
    # before the fix: exit 0, and scene.nc replaced by JSON
    for out in ("scene.nc", "./scene.nc", "sub/../scene.nc", str(work / "scene.nc")):
        (work / "sub").mkdir(exist_ok=True)
        r = plumax_cli("invert", "scene.nc", "--out", out, root=work, inputs=["scene.nc"])
        _one_line_error(r, "--out", "would write over the input")


def test_links_to_the_input_count_as_the_input(work, plumax_cli):
    os.symlink("scene.nc", work / "soft.json")
    os.link(work / "scene.nc", work / "hard.json")
    for out in ("soft.json", "hard.json"):
        r = plumax_cli(
            "invert", "scene.nc", "--out", out, root=work, inputs=["scene.nc", "hard.json"]
        )
        _one_line_error(r, "--out", out, "would write over the input")
    # the input given through a link, the output by its real name
    r = plumax_cli("invert", "soft.json", "--out", "scene.nc", root=work, inputs=["scene.nc"])
    _one_line_error(r, "--out 'scene.nc'", "would write over the input 'soft.json'")
    # a link in a parent folder
    os.symlink(work, work / "alias")
    r = plumax_cli("invert", "scene.nc", "--out", "alias/scene.nc", root=work, inputs=["scene.nc"])
    _one_line_error(r, "--out", "would write over the input")


def test_retrieve_outputs_are_neither_inputs_nor_each_other(work, plumax_cli):
    for args, needle in (
        (("--out", "r.nc", "--summary", "scene.nc"), "--summary 'scene.nc' would write over"),
        (("--out", "scene.nc"), "--out 'scene.nc' would write over"),
        (("--out", "same.nc", "--summary", "same.nc"), "is the same path as --out"),
        (("--out", "sub"), "is a folder"),
    ):
        (work / "sub").mkdir(exist_ok=True)
        r = plumax_cli("retrieve", "scene.nc", *args, root=work, inputs=["scene.nc"])
        _one_line_error(r, needle)
    # the default --out is retrieved.nc: a scene of that name is not written over
    (work / "retrieved.nc").write_bytes((work / "scene.nc").read_bytes())
    r = plumax_cli("retrieve", "retrieved.nc", root=work, inputs=["retrieved.nc"])
    _one_line_error(r, "--out 'retrieved.nc' would write over the input")


def test_registry_and_folder_outputs(work, plumax_cli):
    (work / "runs").mkdir()
    shutil.copy2(work / "scene.nc", work / "runs" / "scene.nc")
    r = plumax_cli(
        "invert", "runs/scene.nc", "--registry", "runs", root=work, inputs=["runs/scene.nc"]
    )
    _one_line_error(r, "--registry 'runs' holds the input 'runs/scene.nc'")
    r = plumax_cli("invert", "scene.nc", "--registry", "scene.nc", root=work, inputs=["scene.nc"])
    _one_line_error(r, "--registry 'scene.nc' exists and is not a folder")
    r = plumax_cli(
        "invert", "scene.nc", "--out", "p.json", "--registry", "p.json", root=work,
        inputs=["scene.nc"],
    )  # fmt: skip
    _one_line_error(r, "--registry 'p.json' is the same path as --out 'p.json'")
    r = plumax_cli("simulate", "runs", "--pixels", "8", root=work)
    _one_line_error(r, "OUT 'runs' is a folder")
    r = plumax_cli("simulate", "nowhere/s.nc", "--pixels", "8", root=work)
    _one_line_error(r, "output folder 'nowhere' does not exist")


def test_demo_refuses_an_output_folder_it_may_not_replace(tmp_path, plumax_cli):
    """Each refusal comes before any work (no simulation runs, nothing is created)."""
    (tmp_path / "file").write_text("x")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("years of work")
    os.symlink("mine", tmp_path / "link")
    for out, needle in (
        ("file", "--out 'file' exists and is not a folder"),
        ("mine", "--out 'mine' holds what no earlier plumax run wrote there: thesis.tex"),
        ("link", "--out 'link' is a symbolic link"),
        (".", "must end in a folder name"),
        (str(tmp_path), "is the current folder or holds it"),
    ):
        r = plumax_cli(
            "demo", "--fast", "--out", out, root=tmp_path, inputs=["file", "mine/thesis.tex"]
        )
        _one_line_error(r, needle)


def test_cycle_root_is_checked_by_the_same_helper(tmp_path, plumax_cli):
    (tmp_path / "runs").write_text("not a registry")
    r = plumax_cli("cycle", "--fast", "--root", "runs", root=tmp_path, inputs=["runs"])
    _one_line_error(r, "--root 'runs' exists and is not a folder")


# --------------------------------------------------------------------------------- umask


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_simulate_output_honours_the_umask(tmp_path, plumax_cli, mask):
    # before the fix: always 0600 (tempfile.mkstemp)
    with umask(mask):
        r = plumax_cli("simulate", "s.nc", "--pixels", "8", root=tmp_path, outputs=["s.nc"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "s.nc").stat().st_mode & 0o777 == 0o666 & ~mask


def test_invert_json_and_registry_honour_the_umask(work, plumax_cli):
    with umask(0o002):
        r = plumax_cli(
            "invert", "scene.nc", "--out", "post.json", "--registry", "runs",
            root=work, inputs=["scene.nc"], outputs=["post.json", "runs"],
        )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert (work / "post.json").stat().st_mode & 0o777 == 0o664
    for p in [work / "runs", *(work / "runs").rglob("*")]:
        assert p.stat().st_mode & 0o777 == (0o775 if p.is_dir() else 0o664), p


# ------------------------------------------------------------------------------- wind speed


def test_scene_wind_speed_follows_the_one_rule(work, plumax_cli):
    ds = xr.load_dataset(work / "scene.nc")
    for speed, needle in ((0.3, ">= 0.5 m/s"), (500.0, "<= 120 m/s"), ("fast", "a number")):
        name = f"wind-{speed}.nc"
        ds.assign_attrs(met_wind_speed=speed).to_netcdf(work / name)
        r = plumax_cli("invert", name, "--out", "p.json", root=work, inputs=[name])
        _one_line_error(r, "met_wind_speed", needle)


# --------------------------------------------------------------------------------- warnings


def _warnings(r) -> list[str]:
    return [ln for ln in r.stderr.splitlines() if ln.startswith("warning:")]


def test_invert_prints_the_pipeline_warnings(work, plumax_cli, monkeypatch):
    import dataclasses

    from plumax import pipelines as pl

    real = pl.invert
    extra: dict = {}

    def invert(*args, **kwargs):
        inv = real(*args, **kwargs)
        summary = {k: v for k, v in inv.summary.items() if k != "warnings"}
        summary.update(extra)
        return dataclasses.replace(inv, summary=summary)

    monkeypatch.setattr(pl, "invert", invert)
    extra.update(converged=True)
    r = plumax_cli("invert", "scene.nc", root=work, inputs=["scene.nc"])
    assert r.exit_code == 0 and _warnings(r) == [], r.stderr  # no key: no warning
    extra.update(converged=False, warnings=["the data barely constrain Q", "1x1 image"])
    r = plumax_cli(
        "invert", "scene.nc", "--out", "p.json", root=work, inputs=["scene.nc"],
        outputs=["p.json"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    w = _warnings(r)
    assert w[:2] == ["warning: the data barely constrain Q", "warning: 1x1 image"]
    assert len(w) == 3 and "did not converge" in w[2] and "MAP + Laplace" in w[2]
    assert json.loads((work / "p.json").read_text())["summary"]["converged"] is False
    # a pipeline warning that already says so is not repeated
    extra.update(warnings=["the optimiser did not converge in 100 steps"])
    r = plumax_cli("invert", "scene.nc", root=work, inputs=["scene.nc"])
    assert _warnings(r) == ["warning: the optimiser did not converge in 100 steps"]


def test_retrieve_prints_the_pipeline_warnings(work, plumax_cli, monkeypatch):
    import numpy as np

    from plumax import pipelines as pl

    class Scene:
        wavelengths = np.linspace(2100.0, 2400.0, 5)
        instrument = "EMIT"

    class Result:
        enhancement = np.zeros((3, 4))

    class Retrieval:
        result = Result()

        def scene_dataset(self):
            return xr.Dataset({"values": (("y", "x"), self.result.enhancement)})

        def summary(self):
            return {
                "mask_pixels": 0,
                "threshold_ppm_m": 1.0,
                "residual_scale": 1.0,
                "IME": None,
                "CSF": None,
                "OE": None,
                "warnings": ["only 3 valid pixels remain"],
            }

    monkeypatch.setattr(pl, "read_radiance_scene", lambda ds: Scene())
    monkeypatch.setattr(pl, "retrieve", lambda sc, **kw: Retrieval())
    r = plumax_cli(
        "retrieve", "scene.nc", "--out", "r.nc", "--summary", "r.json", root=work,
        inputs=["scene.nc"], outputs=["r.nc", "r.json"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert _warnings(r) == ["warning: only 3 valid pixels remain"]
    assert json.loads((work / "r.json").read_text())["warnings"] == ["only 3 valid pixels remain"]


def test_demo_reports_leftovers_and_warnings(tmp_path, plumax_cli, monkeypatch):
    """The demo command around `run_demo` (replaced here by a quick fake that publishes
    one file the same way): a killed run's leftovers are reported, never touched."""
    from plumax import _demo
    from plumax._outputs import StagedFolder, write_json

    stale = tmp_path / f"demo.plumax-staging-{'a' * 32}"
    stale.mkdir()
    (stale / "scene.nc").write_text("half")
    q = {"median": 1.0, "lo": 0.5, "hi": 2.0, "units": "kg/h"}

    def fake_run_demo(out, *, seed, fast, console):
        with StagedFolder(out, command="plumax demo") as st:
            write_json(st.path / "summary.json", {"seed": seed})
        s = {"level": 0.9, "Q": q, "converged": True}
        return {
            "laplace": s,
            "nuts": {**s, "converged": False},
            "retrieval": {"IME": None, "CSF": None, "warnings": ["few plume pixels"]},
            "truth": {"Q": 1.0},
            "report": str(out / "report.html"),
            "wall_s": 0.1,
        }

    monkeypatch.setattr(_demo, "run_demo", fake_run_demo)
    r = plumax_cli("demo", "--out", "demo", root=tmp_path, outputs=["demo"])
    assert r.exit_code == 0, r.output
    w = _warnings(r)
    assert len(w) == 3, r.stderr
    assert f"{stale.name!r} holds the unpublished outputs" in w[0]
    assert w[1] == "warning: few plume pixels"
    assert "the NUTS inversion did not converge" in w[2]
    assert json.loads((tmp_path / "demo" / "summary.json").read_text()) == {"seed": 0}
