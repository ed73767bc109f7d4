"""The meta-package ``plumax`` orchestrates; the libraries own the science.

``docs/architecture.md`` (the package rules): plumax "implements no physics and no
statistics: every number it prints comes from a documented, tested library function".
This test reads plumax's source with ``ast`` and enforces the part of that rule that a
machine can check:

**Rule M1 — no numerical models.** No class in plumax derives from ``equinox.Module``
(directly, through an alias such as ``eqx.Module``, through a class imported from a
plumax library — ``plumax_core``, ``plumax_transport``, ``plumax_rtm``, ``vardax_lite``,
``plumax_emulate``, ``plumax_amortize``, ``plumax_pod`` —, all of whose classes are
equinox modules, or through another class of the same file that does) *and* defines
``__call__``. A forward model, an observation operator or any other callable pytree
belongs in the library whose concept it is.

**Rule M2 — no compiled or transformed kernels.** plumax references none of the JAX
function transformations or compiled loops, whether as a decorator, a call or an
import: ``jax.{jit, pmap, vmap, grad, value_and_grad, jacfwd, jacrev, hessian, jvp, vjp,
linearize, checkpoint, remat, custom_jvp, custom_vjp, pure_callback}``,
``jax.lax.{scan, while_loop, fori_loop, map, associative_scan}``,
``jax.experimental.shard_map.shard_map``, ``equinox.filter_{jit, vmap, pmap, grad,
value_and_grad, jvp, vjp, checkpoint, custom_jvp, custom_vjp}`` and core's
``plumax_core.filter_jit`` (also as ``plumax_core.validation.filter_jit``). Names are
resolved through the file's imports (``import jax.lax as L``, ``from jax import jit as
j``, ``from equinox import filter_jit``), so an alias does not hide them.

Allowed, because they are conversions and orchestration at the edges: calling any
library function (which may itself jit), ``jax.numpy`` and ``jax.random`` (arrays and
explicit keys for library calls), ``jax.enable_x64``, unit conversions, dataclasses and
plain callables.

The checker (:func:`find_violations`) is a plain function of a source string, tested
on small fake sources that break each rule: the check can fail. A third test checks
that plumax's modules import each other without a circle (the old
pipelines -> _overpass -> _scene -> _overpass is gone).
"""

from __future__ import annotations

import ast
import dataclasses
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PLUMAX_SRC = ROOT / "packages" / "plumax" / "src" / "plumax"

LIBRARIES = (
    "plumax_core",
    "plumax_transport",
    "plumax_rtm",
    "vardax_lite",
    "plumax_emulate",
    "plumax_amortize",
    "plumax_pod",
)
_JAX_TRANSFORMS = (
    "jit",
    "pmap",
    "vmap",
    "grad",
    "value_and_grad",
    "jacfwd",
    "jacrev",
    "hessian",
    "jvp",
    "vjp",
    "linearize",
    "checkpoint",
    "remat",
    "custom_jvp",
    "custom_vjp",
    "pure_callback",
)
_LAX_LOOPS = ("scan", "while_loop", "fori_loop", "map", "associative_scan")
_EQX_TRANSFORMS = (
    "filter_jit",
    "filter_vmap",
    "filter_pmap",
    "filter_grad",
    "filter_value_and_grad",
    "filter_jvp",
    "filter_vjp",
    "filter_checkpoint",
    "filter_custom_jvp",
    "filter_custom_vjp",
)
#: Fully qualified names plumax may not reference (rule M2).
FORBIDDEN = frozenset(
    [f"jax.{t}" for t in _JAX_TRANSFORMS]
    + [f"jax.lax.{t}" for t in _LAX_LOOPS]
    + [f"equinox.{t}" for t in _EQX_TRANSFORMS]
    + [
        "jax.experimental.shard_map.shard_map",
        "plumax_core.filter_jit",
        "plumax_core.validation.filter_jit",
    ]
)
_MODULE_BASES = frozenset({"equinox.Module"})


@dataclasses.dataclass(frozen=True)
class Violation:
    """One break of rule ``rule`` at ``file:line``: ``what``."""

    file: str
    line: int
    rule: str
    what: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.rule}: {self.what}"


def _aliases(tree: ast.Module) -> dict[str, str]:
    """Local name -> fully qualified name, from every import in the file (any depth)."""
    out: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    out[a.asname] = a.name
                else:  # `import jax.numpy` binds `jax`
                    root = a.name.split(".")[0]
                    out[root] = root
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                out[a.asname or a.name] = f"{node.module}.{a.name}"
    return out


def _qualname(node: ast.expr, aliases: dict[str, str]) -> str | None:
    """``jax.lax.scan`` for ``L.scan`` after ``import jax.lax as L``; None otherwise."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or node.id not in aliases:
        return None
    return ".".join([aliases[node.id], *reversed(parts)])


def _is_library_class(qual: str) -> bool:
    return qual.split(".")[0] in LIBRARIES


def _defines_call(stmt: ast.stmt) -> bool:
    """``def __call__`` or ``__call__ = ...`` in a class body."""
    if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
        return stmt.name == "__call__"
    targets = stmt.targets if isinstance(stmt, ast.Assign) else []
    if isinstance(stmt, ast.AnnAssign):
        targets = [stmt.target]
    return any(isinstance(t, ast.Name) and t.id == "__call__" for t in targets)


def find_violations(source: str, filename: str = "<source>") -> list[Violation]:
    """Every break of rules M1 and M2 (module docstring) in one plumax source file."""
    tree = ast.parse(source, filename=filename)
    aliases = _aliases(tree)
    found: list[Violation] = []
    modules: set[str] = set()  # classes of this file that are equinox modules
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            module_base = False
            for base in node.bases:
                q = _qualname(base, aliases)
                if (q is not None and (q in _MODULE_BASES or _is_library_class(q))) or (
                    isinstance(base, ast.Name) and base.id in modules
                ):
                    module_base = True
            if module_base:
                modules.add(node.name)
                calls = [b for b in node.body if _defines_call(b)]
                for b in calls:
                    found.append(
                        Violation(
                            filename,
                            b.lineno,
                            "M1",
                            f"class {node.name} is an equinox module with a __call__ "
                            "(a numerical model belongs in a library)",
                        )
                    )
        elif isinstance(node, ast.Attribute | ast.Name):
            q = _qualname(node, aliases)
            if q in FORBIDDEN:
                found.append(Violation(filename, node.lineno, "M2", f"uses {q}"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                q = f"{node.module}.{a.name}"
                if q in FORBIDDEN:
                    found.append(Violation(filename, node.lineno, "M2", f"imports {q}"))
    # an attribute chain `jax.lax.scan` is also walked as its inner `jax.lax`: report once
    unique = {(v.line, v.rule, v.what): v for v in found}
    return sorted(unique.values(), key=lambda v: (v.line, v.rule))


def _plumax_files() -> list[pathlib.Path]:
    files = sorted(PLUMAX_SRC.rglob("*.py"))
    assert len(files) >= 10, f"expected plumax's source under {PLUMAX_SRC}"
    return files


def test_plumax_defines_no_model_and_no_kernel():
    bad = []
    for path in _plumax_files():
        bad += find_violations(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    assert not bad, "plumax only orchestrates:\n" + "\n".join(map(str, bad))


# ---------------------------------------------------------------- the checker can fail

CLEAN = """
import dataclasses
import jax
import jax.numpy as jnp
import jax.random as jr
import plumax_rtm as pr
from plumax_core import compose, pin


@dataclasses.dataclass
class Report:
    value: float

    def __call__(self):  # a plain callable is not a numerical model
        return self.value


def pipeline(model, params, met):
    with jax.enable_x64(True):
        key = jr.key(0)
        q = jnp.asarray(params["Q"]) * 3600.0
    return pr.retrieve_scene, compose, pin(model, H=5.0), key, q
"""


def test_checker_accepts_orchestration():
    assert find_violations(CLEAN) == []


@pytest.mark.parametrize(
    ("source", "rule", "needle"),
    [
        (
            "import equinox as eqx\nclass M(eqx.Module):\n    def __call__(self, x):\n"
            "        return x\n",
            "M1",
            "class M",
        ),
        (
            "from equinox import Module\nclass Base(Module):\n    pass\n"
            "class M(Base):\n    __call__ = None\n",
            "M1",
            "class M",
        ),
        (
            "import plumax_core as pc\nclass F(pc.AbstractForwardModel):\n"
            "    def __call__(self, p, met):\n        return met\n",
            "M1",
            "class F",
        ),
        (
            "from plumax_core import AbstractObservationOperator as Op\nclass A(Op):\n"
            "    def __call__(self, s):\n        return s\n",
            "M1",
            "class A",
        ),
        ("import jax\n@jax.jit\ndef f(x):\n    return x\n", "M2", "jax.jit"),
        ("import jax\ng = jax.vmap(lambda x: x)\n", "M2", "jax.vmap"),
        ("from jax import vmap as v\ng = v(abs)\n", "M2", "jax.vmap"),
        ("import equinox as eqx\n@eqx.filter_jit\ndef f(x):\n    return x\n", "M2", "filter_jit"),
        ("import jax.lax as L\ny = L.scan(f, 0, xs)\n", "M2", "jax.lax.scan"),
        ("from jax import lax\ny = lax.fori_loop(0, 3, f, 0)\n", "M2", "jax.lax.fori_loop"),
        ("from plumax_core import filter_jit\n", "M2", "plumax_core.filter_jit"),
        ("def f():\n    import jax\n    return jax.grad(abs)\n", "M2", "jax.grad"),
    ],
)
def test_checker_flags_each_kind_of_violation(source, rule, needle):
    found = find_violations(source, "fake.py")
    assert found, source
    assert any(v.rule == rule and needle in v.what for v in found), found


# ---------------------------------------------------------------- no import circle


def _internal_imports(path: pathlib.Path) -> set[str]:
    """The plumax submodules ``path`` imports (relative or absolute, any depth)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {p.stem for p in PLUMAX_SRC.glob("*.py")}
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level == 1 or mod == "plumax" or mod.startswith("plumax."):
                sub = mod.removeprefix("plumax").lstrip(".") if node.level == 0 else mod
                if sub:
                    out.add(sub.split(".")[0])
                else:  # `from . import pipelines` / `from plumax import x`
                    out |= {a.name if a.name in names else "__init__" for a in node.names}
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("plumax."):
                    out.add(a.name.split(".")[1])
    return out - {path.stem}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return [*stack[stack.index(m) :], m]
            if m not in state and (c := visit(m)):
                return c
        state[n] = 2
        stack.pop()
        return None

    for n in sorted(graph):
        if n not in state and (c := visit(n)):
            return c
    return None


def test_plumax_modules_import_each_other_without_a_circle():
    graph = {p.stem: _internal_imports(p) for p in _plumax_files() if p.stem != "__init__"}
    assert "_overpass" in graph["pipelines"] and "_scene" in graph["_overpass"]
    circle = _cycle(graph)
    assert circle is None, "import circle: " + " -> ".join(circle)
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
