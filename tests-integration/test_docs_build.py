"""The documentation site builds in strict mode, with an API page per package.

``mkdocs build --strict`` fails on any warning: a broken link, a page missing from the
navigation, a docstring griffe cannot parse (a parameter documented that the signature
lacks). The API pages are generated from the docstrings by mkdocstrings, so the check
also keeps the docstrings of every public name well formed.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

# package -> names its API page must show (one per concept the docs promise)
API_PAGES = {
    "plumax-core": ["ArtifactRegistry", "Posterior", "MetField", "check_wind_speed"],
    "plumax-transport": ["GaussianPlume", "ColumnImage"],
    "plumax-rtm": ["matched_filter", "check_radiance"],
    "vardax-lite": ["inference_diagnostics"],
    "plumax-emulate": ["NeuralForward"],
    "plumax-amortize": ["fit_npe"],
    "plumax-pod": ["read_catalog", "missing_mass"],
    "plumax": ["pipelines"],
}


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return out


def test_every_markdown_page_is_in_the_navigation(site):
    pages = {p.relative_to(ROOT / "docs").with_suffix("") for p in (ROOT / "docs").rglob("*.md")}
    built = {
        p.parent.relative_to(site) if p.parent != site else pathlib.Path("index")
        for p in site.rglob("index.html")
    }
    for page in pages:
        target = (
            pathlib.Path("index")
            if page.name == "index" and page.parent == pathlib.Path(".")
            else (page.parent if page.name == "index" else page)
        )
        assert target in built, f"docs/{page}.md was not built"


@pytest.mark.parametrize("package", sorted(API_PAGES))
def test_api_page_shows_the_public_names(site, package):
    html = (site / "api" / package / "index.html").read_text(encoding="utf-8")
    for name in API_PAGES[package]:
        assert name in html, f"API page of {package} does not show {name}"
