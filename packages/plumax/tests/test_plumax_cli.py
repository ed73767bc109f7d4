"""The ``plumax`` CLI: simulate -> invert -> registry, and bad input handled in one line.

Every command runs through the harness of ``conftest.py`` (``plumax_cli``): no input
changes and nothing appears or disappears outside the declared outputs.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, plumax_cli) -> Path:
    d = tmp_path_factory.mktemp("cli")
    r = plumax_cli(
        "simulate", "scene.nc", "--pixels", "16", "--seed", "2", "--q-kgh", "300",
        root=d, outputs=["scene.nc"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    r = plumax_cli(
        "invert", "scene.nc", "--out", "post.json", "--registry", "runs",
        root=d, inputs=["scene.nc"], outputs=["post.json", "runs"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    return d


def test_help_teaches(plumax_cli, tmp_path):
    r = plumax_cli("--help", root=tmp_path)
    assert r.exit_code == 0
    assert "plumax demo --fast" in r.output and "kg/h" in r.output
    for cmd in ("simulate", "invert", "retrieve", "demo", "cycle", "registry"):
        r = plumax_cli(cmd, "--help", root=tmp_path)
        assert r.exit_code == 0 and "Examples" in r.output or cmd == "registry"


def test_simulate_writes_cf_netcdf(workdir):
    with xr.open_dataset(workdir / "scene.nc") as ds:
        assert ds["values"].dims == ("y", "x") and ds["values"].shape == (16, 16)
        assert ds["values"].attrs["units"] == "ppm m"
        assert ds["sigma"].attrs["units"] == "ppm m"
        assert ds["x"].attrs["units"] == "m"
        assert ds.attrs["Conventions"] == "CF-1.8"
        assert ds.attrs["met_wind_speed"] == pytest.approx(4.0)
        assert ds.attrs["met_stability_class"] == "C"
        assert ds.attrs["true_emission_rate_kg_h"] == 300.0
        assert float(ds["values"].max()) > 100.0


def test_simulate_is_deterministic_given_seed(plumax_cli, tmp_path):
    a, b, c = (tmp_path / n for n in ("a.nc", "b.nc", "c.nc"))
    for path, seed in ((a, "4"), (b, "4"), (c, "5")):
        r = plumax_cli(
            "simulate", path, "--pixels", "8", "--seed", seed, root=tmp_path, outputs=[path]
        )
        assert r.exit_code == 0, r.output
    va, vb, vc = (xr.load_dataset(p)["values"].values for p in (a, b, c))
    np.testing.assert_array_equal(va, vb)
    assert not np.array_equal(va, vc)


def test_invert_json_contains_truth_interval(workdir):
    d = json.loads((workdir / "post.json").read_text())
    q = d["summary"]["Q"]
    assert q["units"] == "kg/h" and q["lo"] < 300.0 < q["hi"]
    assert d["summary"]["truth"]["Q_kgh"] == 300.0
    assert d["posterior"]["param_spec"]["params"][0]["name"] == "Q"


def test_registry_ls_show_lineage(workdir, plumax_cli):
    root = str(workdir / "runs")
    r = plumax_cli("registry", "ls", "--root", root, root=workdir)  # read-only: no outputs
    assert r.exit_code == 0 and "posterior-scene-laplace" in r.output
    r = plumax_cli("registry", "show", "posterior-scene-laplace", "--root", root, root=workdir)
    assert r.exit_code == 0 and '"role": "oracle"' in r.output
    r = plumax_cli("registry", "lineage", "posterior-scene-laplace", "--root", root, root=workdir)
    assert r.exit_code == 0
    assert "observations-scene" in r.output and "(missing)" not in r.output


def test_registry_lineage_reports_a_deleted_artifact(workdir, tmp_path, plumax_cli):
    import shutil

    root = tmp_path / "runs"
    shutil.copytree(workdir / "runs", root)
    from plumax_core import ArtifactRegistry

    reg = ArtifactRegistry(root)
    reg.path("observations-scene").unlink()
    r = plumax_cli("registry", "lineage", "posterior-scene-laplace", "--root", root, root=tmp_path)
    assert r.exit_code == 0
    assert "observations-scene [baseline]" in r.stdout and "(missing)" in r.stdout
    assert "1 artifact(s) not ok" in r.stderr and "Traceback" not in r.output


def _assert_one_line_error(r, needle: str):
    assert r.exit_code != 0
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error:") and needle in lines[0], lines[0]
    assert "Traceback" not in r.output


def _files(d: Path) -> set[str]:
    return {p.name for p in d.iterdir()}


def test_bad_input_missing_file(tmp_path, plumax_cli):
    before = _files(tmp_path)
    r = plumax_cli("invert", "nope.nc", "--out", "p.json", root=tmp_path)
    _assert_one_line_error(r, "does not exist")
    assert _files(tmp_path) == before


def test_bad_input_wrong_variables_and_units(workdir, tmp_path, plumax_cli):
    ds = xr.load_dataset(workdir / "scene.nc")
    ds.drop_vars("sigma").to_netcdf(tmp_path / "nosigma.nc")
    wrong = ds.copy()
    wrong["values"].attrs["units"] = "ppb"
    wrong.to_netcdf(tmp_path / "units.nc")
    (tmp_path / "junk.nc").write_text("not a netcdf file")
    before = _files(tmp_path)
    for name, needle in (("nosigma.nc", "'sigma'"), ("units.nc", "ppb"), ("junk.nc", "NetCDF")):
        r = plumax_cli("invert", name, "--out", "p.json", root=tmp_path, inputs=[name])
        _assert_one_line_error(r, needle)
    assert _files(tmp_path) == before


def test_bad_input_negative_or_slow_wind(tmp_path, plumax_cli):
    for speed in ("-2", "0.2", "0", "nan", "121", "1e6"):
        r = plumax_cli("simulate", "s.nc", "--wind-speed", speed, "--pixels", "8", root=tmp_path)
        _assert_one_line_error(r, "--wind-speed")
    r = plumax_cli("simulate", "s.nc", "--stability", "Q", "--pixels", "8", root=tmp_path)
    _assert_one_line_error(r, "stability")
    assert _files(tmp_path) == set()


def test_bad_registry_root(tmp_path, plumax_cli):
    r = plumax_cli("registry", "ls", "--root", "none", root=tmp_path)
    _assert_one_line_error(r, "no registry")
    r = plumax_cli("invert", "x.nc", "--method", "magic", root=tmp_path)
    _assert_one_line_error(r, "--method")


@pytest.fixture(scope="module")
def radiance_file(tmp_path_factory) -> Path:
    import jax.random as jr

    from plumax.pipelines import default_geometry, simulate_radiance

    sc = simulate_radiance(
        q_kgh=3000.0,
        geometry=default_geometry(12, extent=720.0, upwind=120.0),
        supersample=2,
        key_surface=jr.key(1),
        key_noise=jr.key(2),
    )
    path = tmp_path_factory.mktemp("radiance") / "radiance.nc"
    sc.to_dataset().to_netcdf(path)
    return path


def test_retrieve_then_invert(radiance_file, tmp_path, plumax_cli):
    out, summary = tmp_path / "retrieved.nc", tmp_path / "retrieval.json"
    r = plumax_cli(
        "retrieve", radiance_file, "--out", out, "--summary", summary, "--no-oe",
        root=tmp_path, inputs=[radiance_file], outputs=[out, summary],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "plume mask" in r.output and "IME quick-look" in r.output
    info = json.loads(summary.read_text())
    assert info["mask_pixels"] >= 3 and info["OE"] is None
    with xr.open_dataset(out) as ds:
        assert ds["values"].attrs["units"] == "ppm m" and ds.attrs["supersample"] == 2
        assert ds.attrs["source_file"] == "radiance.nc"
    r = plumax_cli(
        "invert", out, "--out", "post.json", root=tmp_path, inputs=[out], outputs=["post.json"]
    )
    assert r.exit_code == 0, r.output
    post = json.loads((tmp_path / "post.json").read_text())
    assert post["summary"]["Q"]["median"] > 0


def test_retrieve_bad_input(radiance_file, tmp_path, plumax_cli):
    r = plumax_cli("retrieve", "nope.nc", "--out", "r.nc", root=tmp_path)
    _assert_one_line_error(r, "does not exist")
    ds = xr.load_dataset(radiance_file)
    ds.drop_vars("radiance").to_netcdf(tmp_path / "norad.nc")
    bad_units = ds.copy()
    bad_units["radiance"].attrs["units"] = "W m-2 sr-1 um-1"
    bad_units.to_netcdf(tmp_path / "units.nc")
    ds.assign_attrs(met_wind_speed=-3.0).to_netcdf(tmp_path / "wind.nc")
    before = _files(tmp_path)
    for name, needle in (
        ("norad.nc", "'radiance'"),
        ("units.nc", "W m-2 sr-1 um-1"),
        ("wind.nc", "met_wind_speed"),
    ):
        r = plumax_cli("retrieve", name, "--out", "r.nc", root=tmp_path, inputs=[name])
        _assert_one_line_error(r, needle)
    r = plumax_cli(
        "retrieve", radiance_file, "--out", radiance_file, root=tmp_path, inputs=[radiance_file]
    )
    _assert_one_line_error(r, "would write over the input")
    assert _files(tmp_path) == before


def test_cycle_bad_input(tmp_path, plumax_cli):
    r = plumax_cli("cycle", "--tier", "lagrangian", "--root", "runs", root=tmp_path)
    _assert_one_line_error(r, "--tier")
    r = plumax_cli("cycle", "--oracle", "magic", "--root", "runs", root=tmp_path)
    _assert_one_line_error(r, "--oracle")
    (tmp_path / "file").write_text("x")
    r = plumax_cli("cycle", "--root", "file", root=tmp_path, inputs=["file"])
    _assert_one_line_error(r, "not a folder")
    assert _files(tmp_path) == {"file"}
