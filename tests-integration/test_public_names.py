"""Every package states its public names in ``__all__``, and states them all.

The API reference pages (mkdocstrings, ``docs/api/``) show the names a package's
``__init__`` lists in ``__all__``; a re-export (``from ._x import f as f``) missing from
``__all__`` would vanish from the docs, and a name in ``__all__`` that is not defined
would break ``from package import *``. Read with ``ast``, no import needed.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
# every public module: a package ``__init__`` or a module whose name has no leading "_"
PUBLIC = sorted(
    f
    for f in ROOT.glob("packages/*/src/**/*.py")
    if f.name == "__init__.py" or not f.name.startswith("_")
)


def _top_level(tree: ast.Module):
    """The module's statements, with those of ``if TYPE_CHECKING:`` blocks (a package
    that imports its names lazily states them there)."""
    for node in tree.body:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            yield from node.body
        else:
            yield node


def public_reexports(tree: ast.Module) -> set[str]:
    """Names bound at module level by a redundant-alias import (``import a as a``)."""
    out: set[str] = set()
    for node in _top_level(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.asname is not None and alias.asname == alias.name.rsplit(".", 1)[-1]:
                    out.add(alias.asname)
    return out


def top_level_names(tree: ast.Module) -> set[str]:
    """Names a module binds at top level (definitions, assignments, ``from`` imports)."""
    out: set[str] = set()
    for node in _top_level(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif isinstance(node, ast.Assign):
            out.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out.add(node.target.id)
        elif isinstance(node, ast.ImportFrom):
            out.update(a.asname or a.name for a in node.names)
    return out


def declared_all(tree: ast.Module) -> list[str] | None:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return [ast.literal_eval(e) for e in node.value.elts]
    return None


def problems(source: str) -> list[str]:
    """What is wrong with a public module's ``__all__`` (empty when nothing is)."""
    tree = ast.parse(source)
    exports = public_reexports(tree)
    names = declared_all(tree)
    if names is None:
        return ["no __all__"] if exports else []
    out = []
    if len(names) != len(set(names)):
        out.append("__all__ repeats a name")
    if missing := exports - set(names):
        out.append(f"re-exported but missing from __all__: {sorted(missing)}")
    if unknown := set(names) - exports - top_level_names(tree):
        out.append(f"in __all__ but neither defined nor re-exported: {sorted(unknown)}")
    return out


def test_the_check_can_fail():
    assert problems("from ._a import f as f, g as g\n__all__ = ['f']\n") == [
        "re-exported but missing from __all__: ['g']"
    ]
    assert problems("from ._a import f as f\n") == ["no __all__"]
    assert problems("def h(): ...\n__all__ = ['h', 'k']\n") == [
        "in __all__ but neither defined nor re-exported: ['k']"
    ]
    assert problems("from ._a import f as f\ndef h(): ...\n__all__ = ['f', 'h']\n") == []
    lazy = "if TYPE_CHECKING:\n    from ._a import f as f\n"
    assert problems(lazy) == ["no __all__"]
    assert problems(lazy + "__all__ = ['f']\n") == []


@pytest.mark.parametrize("module", PUBLIC, ids=lambda p: str(p.relative_to(ROOT / "packages")))
def test_all_lists_every_public_name(module):
    assert problems(module.read_text()) == [], module
