"""Each library installs and imports alone, with only plumax-core beside it.

docs/architecture.md promises that ``pip install plumax-transport`` works with nothing
from the workspace but plumax-core. This test keeps that promise honest the way a
user would meet it: it builds every package's wheel and sdist without workspace
sources (``uv build --no-sources``), then, for each of the seven libraries, creates a
fresh virtual environment, installs ONLY that library's wheel and the plumax-core
wheel (third-party dependencies from the registry), imports it and checks that no
sibling came along. The meta-package is installed last, with every wheel, and must
import too.

The builds and installs run in threads (they are I/O- and subprocess-bound) and share
uv's cache, so the whole module takes a few minutes at most on a 2-core machine.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time
import tomllib
import zipfile

import pytest
from packaging.utils import canonicalize_name, parse_wheel_filename

pytestmark = pytest.mark.slow

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES_DIR = ROOT / "packages"

PACKAGES = {  # distribution -> import name
    "plumax-core": "plumax_core",
    "plumax-transport": "plumax_transport",
    "plumax-rtm": "plumax_rtm",
    "vardax-lite": "vardax_lite",
    "plumax-emulate": "plumax_emulate",
    "plumax-amortize": "plumax_amortize",
    "plumax-pod": "plumax_pod",
    "plumax": "plumax",
}
LIBRARIES = [d for d in PACKAGES if d != "plumax"]
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
TIMEOUT = 900  # seconds, per subprocess


def _uv() -> str:
    # `uv run` exports UV, the path of the uv binary running it
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv is None:
        pytest.fail("uv is not on PATH; install it with `python3 -m pip install uv`")
    return uv


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # the test runs inside the workspace's venv: do not let it leak into the new ones
    for var in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "PYTHONPATH", "PYTHONHOME"):
        env.pop(var, None)
    env["UV_NO_PROGRESS"] = "1"
    return env


@dataclasses.dataclass
class Run:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def check(self, what: str) -> Run:
        assert self.returncode == 0, (
            f"{what} failed (exit {self.returncode}, {self.seconds:.1f}s)\n"
            f"$ {' '.join(self.args)}\n--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )
        return self


def run(args: list[str], cwd: pathlib.Path = ROOT) -> Run:
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            [str(a) for a in args],
            cwd=cwd,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as err:
        return Run([str(a) for a in args], -1, str(err.stdout), f"timed out: {err}", TIMEOUT)
    return Run(
        [str(a) for a in args],
        proc.returncode,
        proc.stdout,
        proc.stderr,
        time.perf_counter() - start,
    )


def _version(dist: str) -> str:
    with (PACKAGES_DIR / dist / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)["project"]["version"]


# --------------------------------------------------------------------------- build


@dataclasses.dataclass
class Dists:
    folder: pathlib.Path
    wheels: dict[str, pathlib.Path]
    sdists: dict[str, pathlib.Path]


@pytest.fixture(scope="module")
def dists(tmp_path_factory) -> Dists:
    """Every package built once, as users get it: no workspace sources."""
    folder = tmp_path_factory.mktemp("dist")
    uv = _uv()

    def build(dist: str) -> Run:
        out = folder / dist  # one folder each: parallel builds never see each other's files
        return run([uv, "build", "--package", dist, "--no-sources", "--out-dir", out])

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        builds = dict(zip(PACKAGES, pool.map(build, PACKAGES), strict=True))
    for dist, result in builds.items():
        result.check(f"uv build --package {dist}")

    flat = folder / "all"  # one flat folder for --find-links
    flat.mkdir()
    wheels, sdists = {}, {}
    for dist in PACKAGES:
        for path in sorted((folder / dist).iterdir()):
            if path.suffix == ".whl":
                wheels[dist] = shutil.copy2(path, flat / path.name)
            elif path.name.endswith(".tar.gz"):
                sdists[dist] = shutil.copy2(path, flat / path.name)
    return Dists(flat, {k: pathlib.Path(v) for k, v in wheels.items()}, sdists)


@pytest.mark.parametrize("dist", list(PACKAGES))
def test_build_produces_wheel_and_sdist(dists, dist):
    assert dist in dists.wheels, f"no wheel for {dist} in {sorted(dists.folder.iterdir())}"
    assert dist in dists.sdists, f"no sdist for {dist} in {sorted(dists.folder.iterdir())}"
    name, version, _, tags = parse_wheel_filename(dists.wheels[dist].name)
    assert name == canonicalize_name(dist)
    assert str(version) == _version(dist)
    assert {t.abi for t in tags} == {"none"} and {t.platform for t in tags} == {"any"}
    module = PACKAGES[dist]
    with zipfile.ZipFile(dists.wheels[dist]) as whl:
        names = set(whl.namelist())
    assert f"{module}/__init__.py" in names
    assert f"{module}/py.typed" in names
    # nothing but the package itself and its metadata goes into the wheel
    stray = {n for n in names if not n.startswith(f"{module}/") and ".dist-info/" not in n}
    assert not stray, f"{dist} wheel carries files outside {module}/: {sorted(stray)}"


# --------------------------------------------------------------------------- install alone


@dataclasses.dataclass
class Installed:
    dist: str
    steps: list[tuple[str, Run]]
    packages: set[str]
    printed_version: str


def _install_alone(uv: str, root: pathlib.Path, dists: Dists, dist: str) -> Installed:
    """Fresh venv, install ``dist`` (+ plumax-core, or every wheel for the meta-package)."""
    venv = root / f"venv-{dist}"
    python = venv / "bin" / "python"
    steps: list[tuple[str, Run]] = []

    def step(what: str, args: list) -> Run | None:
        result = run(args)
        steps.append((what, result))
        return result if result.returncode == 0 else None

    if step("uv venv", [uv, "venv", venv, "--python", PYTHON]) is None:
        return Installed(dist, steps, set(), "")
    if dist == "plumax":
        wheels = [dists.wheels[d] for d in PACKAGES]
    else:
        wheels = sorted({dists.wheels["plumax-core"], dists.wheels[dist]})
    install = [uv, "pip", "install", "--python", python, "--find-links", dists.folder, *wheels]
    if step("uv pip install", install) is None:
        return Installed(dist, steps, set(), "")
    module = PACKAGES[dist]
    code = f"import {module}; print({module}.__version__)"
    imported = step(f"import {module}", [python, "-c", code])
    listed = step("uv pip list", [uv, "pip", "list", "--python", python, "--format", "json"])
    packages = (
        {canonicalize_name(p["name"]) for p in json.loads(listed.stdout)} if listed else set()
    )
    return Installed(dist, steps, packages, imported.stdout.strip() if imported else "")


@pytest.fixture(scope="module")
def installs(dists, tmp_path_factory) -> dict[str, Installed]:
    """Every package installed alone, in parallel; the tests below read the results."""
    root = tmp_path_factory.mktemp("venvs")
    uv = _uv()
    # warm uv's cache with the libraries' shared third-party stack first, so the parallel
    # installs below hit the cache instead of downloading the same wheels seven times
    core = _install_alone(uv, root, dists, "plumax-core")
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        futures = {
            dist: pool.submit(_install_alone, uv, root, dists, dist)
            for dist in PACKAGES
            if dist != "plumax-core"
        }
        results = {dist: f.result() for dist, f in futures.items()}
    return {"plumax-core": core, **results}


def _check_steps(installed: Installed) -> None:
    for what, result in installed.steps:
        result.check(f"{installed.dist}: {what}")


@pytest.mark.parametrize("dist", LIBRARIES)
def test_library_installs_and_imports_alone(installs, dist):
    installed = installs[dist]
    _check_steps(installed)
    assert installed.printed_version == _version(dist)
    siblings = {canonicalize_name(d) for d in PACKAGES} - {canonicalize_name(dist), "plumax-core"}
    leaked = installed.packages & siblings
    assert not leaked, f"installing {dist} alone also installed {sorted(leaked)}"
    assert canonicalize_name(dist) in installed.packages
    assert "plumax-core" in installed.packages
    assert "torch" not in installed.packages, f"{dist} pulled in torch"


def test_meta_package_installs_with_every_library(installs):
    installed = installs["plumax"]
    _check_steps(installed)
    assert installed.printed_version == _version("plumax")
    missing = {canonicalize_name(d) for d in PACKAGES} - installed.packages
    assert not missing, f"plumax installed without {sorted(missing)}"
    assert "torch" not in installed.packages, "plumax pulled in torch"
