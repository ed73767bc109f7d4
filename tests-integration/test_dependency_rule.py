"""The dependency rule (``docs/architecture.md``), enforced by reading the source.

* Each of the seven libraries imports only its own module, ``plumax_core`` and
  third-party packages; ``plumax_core`` imports no plumax library at all. Only the
  meta-package ``plumax`` may import its siblings.
* Each library's pyproject depends on no workspace package other than plumax-core.
* No pyproject declares torch.
* Every package carries a version, a README, a CHANGELOG, ``py.typed`` and a
  ``src/<module>/__init__.py`` exposing ``__version__``.

The import checker is a plain function (:func:`find_import_violations`) so that it is
itself tested on a fake package tree that breaks the rule: the check can fail.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import importlib.metadata
import pathlib
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES_DIR = ROOT / "packages"

CORE = "plumax_core"
META = "plumax"

# distribution name -> import name; the workspace as docs/architecture.md lays it out.
EXPECTED_PACKAGES = {
    "plumax-core": "plumax_core",
    "plumax-transport": "plumax_transport",
    "plumax-rtm": "plumax_rtm",
    "vardax-lite": "vardax_lite",
    "plumax-emulate": "plumax_emulate",
    "plumax-amortize": "plumax_amortize",
    "plumax-pod": "plumax_pod",
    "plumax": "plumax",
}
LIBRARIES = [dist for dist, module in EXPECTED_PACKAGES.items() if module != META]


# --------------------------------------------------------------------------- checker


@dataclasses.dataclass(frozen=True)
class Violation:
    """One forbidden import: ``file:line`` in package ``package`` imports ``imported``."""

    package: str
    file: pathlib.Path
    line: int
    imported: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.package} imports {self.imported!r}"


def workspace_modules(packages_dir: pathlib.Path) -> dict[str, pathlib.Path]:
    """Map each top-level module under ``packages/*/src/`` to its package folder."""
    modules: dict[str, pathlib.Path] = {}
    for src in sorted(packages_dir.glob("*/src")):
        for module_dir in sorted(src.iterdir()):
            if module_dir.is_dir() and (module_dir / "__init__.py").is_file():
                modules[module_dir.name] = src.parent
    return modules


def allowed_first_party(module: str, all_modules: set[str]) -> set[str]:
    """The workspace modules that ``module`` may import (the dependency rule)."""
    if module == META:
        return set(all_modules)
    if module == CORE:
        return {CORE}
    return {module, CORE}


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """Absolute imports anywhere in ``tree`` (functions, ``if TYPE_CHECKING`` blocks...).

    Also catches ``importlib.import_module("x")`` and ``__import__("x")`` with a
    constant string, the usual way to import lazily. Relative imports are skipped:
    they cannot leave the package.
    """
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = (
                func.attr
                if isinstance(func, ast.Attribute)
                else func.id
                if isinstance(func, ast.Name)
                else None
            )
            first = node.args[0]
            if (
                name in {"import_module", "__import__"}
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
                and not first.value.startswith(".")
            ):
                found.append((node.lineno, first.value))
    return found


def find_import_violations(packages_dir: pathlib.Path) -> list[Violation]:
    """Every import in ``packages_dir/*/src`` that breaks the dependency rule.

    A file that does not parse is reported as a violation too (it cannot be checked).
    """
    modules = workspace_modules(packages_dir)
    violations: list[Violation] = []
    for module, package_dir in modules.items():
        allowed = allowed_first_party(module, set(modules))
        for path in sorted((package_dir / "src" / module).rglob("*.py")):
            rel = path.relative_to(packages_dir.parent)
            try:
                tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            except SyntaxError as err:
                violations.append(Violation(module, rel, err.lineno or 0, "<syntax error>"))
                continue
            for line, name in imported_modules(tree):
                top = name.split(".")[0]
                if top in modules and top not in allowed:
                    violations.append(Violation(module, rel, line, name))
    return violations


def _requirement_names(requirements: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(req).name) for req in requirements}


def load_pyproject(package_dir: pathlib.Path) -> dict:
    with (package_dir / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


def find_dependency_violations(packages_dir: pathlib.Path) -> list[str]:
    """Sibling requirements in the libraries' pyprojects (dependencies and extras)."""
    pyprojects = {
        canonicalize_name(data["project"]["name"]): data
        for data in (
            load_pyproject(p.parent) for p in sorted(packages_dir.glob("*/pyproject.toml"))
        )
    }
    workspace = set(pyprojects)
    core, meta = canonicalize_name("plumax-core"), canonicalize_name("plumax")
    problems: list[str] = []
    for name, data in pyprojects.items():
        if name == meta:
            continue
        project = data["project"]
        groups = {"dependencies": project.get("dependencies", [])}
        for extra, reqs in project.get("optional-dependencies", {}).items():
            groups[f"optional-dependencies.{extra}"] = reqs
        allowed = set() if name == core else {core}
        for where, reqs in groups.items():
            for sibling in sorted((_requirement_names(reqs) & workspace) - allowed - {name}):
                problems.append(f"{name}: {where} requires sibling {sibling}")
    return problems


# --------------------------------------------------------------------------- the rule


def test_workspace_has_the_eight_packages():
    found = {
        load_pyproject(p.parent)["project"]["name"]: p.parent
        for p in PACKAGES_DIR.glob("*/pyproject.toml")
    }
    assert set(found) == set(EXPECTED_PACKAGES)
    modules = workspace_modules(PACKAGES_DIR)
    assert set(modules) == set(EXPECTED_PACKAGES.values())
    for dist, module in EXPECTED_PACKAGES.items():
        assert modules[module] == found[dist], f"{module} lives outside {dist}'s folder"


def test_no_library_imports_a_sibling():
    violations = find_import_violations(PACKAGES_DIR)
    assert not violations, "dependency rule broken (docs/architecture.md):\n" + "\n".join(
        map(str, violations)
    )


def test_no_library_depends_on_a_sibling():
    problems = find_dependency_violations(PACKAGES_DIR)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("dist", [d for d in LIBRARIES if d != "plumax-core"])
def test_library_requirement_on_core_matches_core_version(dist):
    core_version = load_pyproject(PACKAGES_DIR / "plumax-core")["project"]["version"]
    project = load_pyproject(PACKAGES_DIR / dist)["project"]
    reqs = {canonicalize_name(r.name): r for r in map(Requirement, project["dependencies"])}
    assert "plumax-core" in reqs, f"{dist} must depend on plumax-core"
    spec = reqs["plumax-core"].specifier
    assert spec.contains(core_version), (
        f"{dist} requires plumax-core{spec}, which excludes the workspace's {core_version}"
    )


def test_meta_package_pins_every_library_compatibly():
    project = load_pyproject(PACKAGES_DIR / "plumax")["project"]
    reqs = {canonicalize_name(r.name): r for r in map(Requirement, project["dependencies"])}
    for dist in LIBRARIES:
        version = load_pyproject(PACKAGES_DIR / dist)["project"]["version"]
        assert dist in reqs, f"plumax must depend on {dist}"
        spec = reqs[dist].specifier
        assert str(spec), f"plumax must give {dist} a version range"
        assert spec.contains(version), f"plumax requires {dist}{spec}, excluding {version}"


# --------------------------------------------------------------------------- torch


def _all_pyprojects() -> list[pathlib.Path]:
    return [ROOT / "pyproject.toml", *sorted(PACKAGES_DIR.glob("*/pyproject.toml"))]


def _declared_requirements(data: dict) -> dict[str, list[str]]:
    """Every requirement list a pyproject declares (project deps, extras, groups)."""
    project = data.get("project", {})
    out = {"project.dependencies": project.get("dependencies", [])}
    for extra, reqs in project.get("optional-dependencies", {}).items():
        out[f"project.optional-dependencies.{extra}"] = reqs
    for group, reqs in data.get("dependency-groups", {}).items():
        # entries may be {include-group = "..."} tables
        out[f"dependency-groups.{group}"] = [r for r in reqs if isinstance(r, str)]
    return out


@pytest.mark.parametrize("pyproject", _all_pyprojects(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_pyproject_depends_on_torch(pyproject):
    with pyproject.open("rb") as f:
        data = tomllib.load(f)
    for where, reqs in _declared_requirements(data).items():
        names = _requirement_names(reqs)
        assert "torch" not in names, f"{pyproject.relative_to(ROOT)}: {where} declares torch"


def test_torch_is_not_installed():
    # the root's override-dependencies keeps mag1c's torch out of the environment
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.distribution("torch")


# --------------------------------------------------------------------------- layout


@pytest.mark.parametrize("dist", list(EXPECTED_PACKAGES))
def test_package_layout(dist):
    module = EXPECTED_PACKAGES[dist]
    package_dir = PACKAGES_DIR / dist
    data = load_pyproject(package_dir)
    project = data["project"]
    version = project.get("version")
    assert version, f"{dist}: pyproject has no version"
    assert "version" not in project.get("dynamic", []), f"{dist}: version must be static"
    assert data["build-system"]["build-backend"] == "hatchling.build"
    assert project.get("requires-python") == ">=3.11"
    wheel_packages = data["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert wheel_packages == [f"src/{module}"]

    readme = package_dir / "README.md"
    assert readme.is_file() and readme.read_text().strip(), f"{dist}: README.md missing or empty"
    assert project.get("readme") == "README.md"
    changelog = package_dir / "CHANGELOG.md"
    assert changelog.is_file(), f"{dist}: CHANGELOG.md missing"
    assert version in changelog.read_text(), f"{dist}: CHANGELOG.md has no entry for {version}"

    init = package_dir / "src" / module / "__init__.py"
    assert init.is_file(), f"{dist}: {init.relative_to(ROOT)} missing"
    assert (package_dir / "src" / module / "py.typed").is_file(), f"{dist}: py.typed missing"
    names = set()
    for node in ast.walk(ast.parse(init.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names |= {a.asname or a.name for a in node.names}
    assert "__version__" in names, f"{dist}: __init__.py does not define __version__"


@pytest.mark.parametrize("dist", list(EXPECTED_PACKAGES))
def test_installed_version_matches_pyproject(dist):
    module = importlib.import_module(EXPECTED_PACKAGES[dist])
    version = load_pyproject(PACKAGES_DIR / dist)["project"]["version"]
    assert module.__version__ == version


# --------------------------------------------------------------------------- the checker can fail


def _write_package(
    packages_dir: pathlib.Path,
    dist: str,
    module: str,
    files: dict[str, str],
    dependencies: list[str] | None = None,
) -> None:
    pkg = packages_dir / dist
    src = pkg / "src" / module
    src.mkdir(parents=True)
    (src / "__init__.py").write_text('__version__ = "0.1.0"\n')
    for name, text in files.items():
        path = src / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    deps = ", ".join(f'"{d}"' for d in (dependencies or []))
    (pkg / "pyproject.toml").write_text(
        f'[project]\nname = "{dist}"\nversion = "0.1.0"\ndependencies = [{deps}]\n'
    )


@pytest.fixture
def fake_workspace(tmp_path):
    packages = tmp_path / "packages"
    _write_package(packages, "plumax-core", "plumax_core", {"_types.py": "import numpy\n"})
    _write_package(
        packages,
        "plumax-transport",
        "plumax_transport",
        {"_plume.py": "import jax\nfrom plumax_core import Posterior\nfrom . import _x\n"},
        ["plumax-core>=0.1", "jax"],
    )
    _write_package(
        packages,
        "plumax",
        "plumax",
        {"cli.py": "import plumax_transport\nfrom plumax_core import compose\n"},
        ["plumax-core", "plumax-transport"],
    )
    return packages


def test_checker_passes_a_clean_tree(fake_workspace):
    assert find_import_violations(fake_workspace) == []
    assert find_dependency_violations(fake_workspace) == []


@pytest.mark.parametrize(
    ("package", "source", "imported"),
    [
        ("transport", "import plumax_rtm\n", "plumax_rtm"),
        ("transport", "from plumax_rtm.spectra import voigt\n", "plumax_rtm.spectra"),
        ("transport", "import plumax\n", "plumax"),
        ("transport", "from plumax import cli\n", "plumax"),
        ("transport", "def f():\n    import plumax_rtm as r\n    return r\n", "plumax_rtm"),
        (
            "transport",
            "class A:\n    def m(self):\n        from plumax_rtm import x\n",
            "plumax_rtm",
        ),
        (
            "transport",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import plumax_rtm\n",
            "plumax_rtm",
        ),
        (
            "transport",
            "import importlib\nm = importlib.import_module('plumax_rtm.x')\n",
            "plumax_rtm.x",
        ),
        ("transport", "try:\n    import plumax_rtm\nexcept ImportError:\n    pass\n", "plumax_rtm"),
        ("core", "import plumax_transport\n", "plumax_transport"),
        ("core", "def f():\n    from plumax import x\n", "plumax"),
    ],
)
def test_checker_catches_a_sibling_import(fake_workspace, package, source, imported):
    # a sibling package must exist in the tree for the import to be first-party
    _write_package(fake_workspace, "plumax-rtm", "plumax_rtm", {"spectra.py": "x = 1\n"})
    module = "plumax_core" if package == "core" else "plumax_transport"
    dist = module.replace("_", "-")
    (fake_workspace / dist / "src" / module / "_bad.py").write_text(source)
    violations = find_import_violations(fake_workspace)
    assert [(v.package, v.imported) for v in violations] == [(module, imported)]
    assert violations[0].file.name == "_bad.py"


def test_checker_catches_deep_files_and_syntax_errors(fake_workspace):
    bad = fake_workspace / "plumax-core" / "src" / "plumax_core" / "sub" / "deep" / "m.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("import plumax_transport.x\n")
    broken = fake_workspace / "plumax-transport" / "src" / "plumax_transport" / "broken.py"
    broken.write_text("def f(:\n")
    found = {(v.package, v.imported) for v in find_import_violations(fake_workspace)}
    assert found == {
        ("plumax_core", "plumax_transport.x"),
        ("plumax_transport", "<syntax error>"),
    }


def test_checker_ignores_relative_and_third_party_imports(fake_workspace):
    src = fake_workspace / "plumax-transport" / "src" / "plumax_transport"
    (src / "_ok.py").write_text(
        "from . import _plume\nfrom .._x import y\nimport plumax_transportx\nimport numpy\n"
        "import importlib\nimportlib.import_module('._plume', __package__)\n"
    )
    assert find_import_violations(fake_workspace) == []


def test_dependency_checker_catches_sibling_requirements(tmp_path):
    packages = tmp_path / "packages"
    _write_package(packages, "plumax-core", "plumax_core", {}, ["plumax-pod"])
    _write_package(packages, "plumax-pod", "plumax_pod", {}, ["plumax-core"])
    _write_package(packages, "vardax-lite", "vardax_lite", {}, ["plumax-core", "Plumax_Pod>=0.1"])
    _write_package(packages, "plumax", "plumax", {}, ["plumax-pod", "vardax-lite"])
    pyproject = packages / "plumax-pod" / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text() + '[project.optional-dependencies]\nfull = ["vardax-lite[x]"]\n'
    )
    assert sorted(find_dependency_violations(packages)) == [
        "plumax-core: dependencies requires sibling plumax-pod",
        "plumax-pod: optional-dependencies.full requires sibling vardax-lite",
        "vardax-lite: dependencies requires sibling plumax-pod",
    ]
