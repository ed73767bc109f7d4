"""No package's modules import each other in a circle (issue 18).

A circle (``a`` imports ``b``, ``b`` imports ``a``, directly or through others) makes
import order matter, hides which module owns a concept and is usually patched over
with an import inside a function. The graph is read from the source with ``ast``:

* nodes are the modules of one package (``packages/*/src/<pkg>/**/*.py``; a package's
  ``__init__`` is the node of the package itself);
* an edge ``a -> b`` for every import in ``a`` (at module level *or inside a function*:
  a deferred import is still a dependency) that names a module ``b`` of the same
  package: ``from . import b``, ``from .b import f``, ``import pkg.b``, ``from pkg
  import f`` (an edge to the package's ``__init__``);
* imports under ``if TYPE_CHECKING:`` are skipped (they never run).

The strongly connected components of that graph (Tarjan) must all be single modules.
A package's ``__init__`` imports its modules, so a module that imports its own package
root is in a circle too. The graph builder is tested on a fake package, so that the
check can fail.
"""

from __future__ import annotations

import ast
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = sorted(
    p for p in ROOT.glob("packages/*/src/*") if p.is_dir() and (p / "__init__.py").is_file()
)


def module_name(package: pathlib.Path, path: pathlib.Path) -> str:
    parts = list(path.relative_to(package).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([package.name, *parts])


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST):
    """Every import node, not descending into ``if TYPE_CHECKING:`` bodies."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            yield from (n for child in node.orelse for n in _imports_of(child))
            continue
        yield from _imports_of(node)


def _imports_of(node: ast.AST):
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node
    else:
        yield from _imports(node)


def import_graph(sources: dict[str, tuple[str, bool]], top: str) -> dict[str, set[str]]:
    """``{module: modules of the package it imports}``.

    Args:
        sources: ``{module name: (source, is_package)}`` of one package.
        top: the package's top-level name.
    """
    edges: dict[str, set[str]] = {m: set() for m in sources}
    for mod, (source, is_pkg) in sources.items():
        base = mod.split(".") if is_pkg else mod.split(".")[:-1]
        for node in _imports(ast.parse(source)):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                if node.level:
                    prefix = base[: len(base) - (node.level - 1)]
                    origin = ".".join(prefix + ([node.module] if node.module else []))
                else:
                    origin = node.module or ""
                # `from origin import x` names the module origin.x when there is one,
                # else a name defined in origin
                targets = [
                    f"{origin}.{a.name}" if f"{origin}.{a.name}" in sources else origin
                    for a in node.names
                ]
            for target in targets:
                parts = target.split(".")
                if parts[0] != top:
                    continue
                while parts and ".".join(parts) not in sources:
                    parts.pop()
                if parts and ".".join(parts) != mod:
                    edges[mod].add(".".join(parts))
    return edges


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, 1972)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(edges) + 100))
    try:
        for v in sorted(edges):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return out


def package_sources(package: pathlib.Path) -> dict[str, tuple[str, bool]]:
    return {
        module_name(package, p): (p.read_text(), p.name == "__init__.py")
        for p in sorted(package.rglob("*.py"))
    }


def test_the_check_finds_circles():
    fake = {
        "pkg": ("from ._a import f as f\nfrom . import sub as sub\n", True),
        "pkg._a": ("def f():\n    from ._b import g\n    return g\n", False),
        "pkg._b": ("from pkg._a import f\n", False),
        "pkg._c": ("from . import _a\nfrom typing import TYPE_CHECKING\n", False),
        "pkg._d": ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg\n", False),
        "pkg._e": ("from pkg import f\n", False),
        "pkg.sub": ("from .. import _c\n", True),
    }
    edges = import_graph(fake, "pkg")
    assert edges["pkg._c"] == {"pkg._a"}  # `from . import _a` is the module, not the root
    assert edges["pkg._d"] == set()  # TYPE_CHECKING only
    assert edges["pkg._e"] == {"pkg"}
    assert edges["pkg.sub"] == {"pkg._c"}
    assert circles(edges) == [["pkg._a", "pkg._b"]]
    fake["pkg._a"] = ("from . import f\n", False)  # a module importing its package root
    (found,) = circles(import_graph(fake, "pkg"))
    assert {"pkg", "pkg._a"} <= set(found)


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_no_import_circle(package):
    found = circles(import_graph(package_sources(package), package.name))
    assert not found, f"{package.name}: modules import each other in a circle: {found}"
