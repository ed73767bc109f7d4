"""Every unit factor is written once, in ``plumax_core/_units.py`` (issue 18).

The rule, checked on the syntax tree of every ``packages/*/src/**/*.py``:

* a *constant expression* is a numeric literal, or a ``+ - * / // % **`` (or unary
  ``+``/``-``) of constant expressions: ``3600.0``, ``1 / 3600``, ``24 * 60 * 60``,
  ``365.25 * 86400.0``, ``1e-6 * 101325.0 / (8.314462618 * 273.15)``;
* a constant expression is a *unit factor* when its value, or the value of a literal in
  it, equals (to 1e-9 relative) one of :data:`TIME_FACTORS` (seconds per hour, day, week
  and Julian year and their reciprocals, and the t/h <-> kg/s factors 3.6 and 1/3.6: the
  kg/s <-> kg/h factor in all its forms) or :data:`COLUMN_FACTORS` (the molar mass of
  methane, the gas constant, the STP molar density of air and the ppm·m factors);
* no unit factor appears outside ``plumax_core/_units.py``; code writes ``units.HOUR``,
  ``units.kg_h_to_kg_s(q)``, ``units.MOL_M2_PER_PPM_M`` instead. :data:`ALLOWED` lists
  justified exceptions with a reason (none today).

What the rule does not see: strings and docstrings (examples in docs are not code), a
factor assembled from names (``MINUTES * 60``) or computed at run time, and a value
written as a different number (``2.78e-4`` is not 1/3600). Numbers in tests are not
scanned: tests check the unit module against independent values.

The scanner (:func:`find_unit_factors`) is a plain function, tested on a fake source that
breaks the rule, so that the check can fail.
"""

from __future__ import annotations

import ast
import dataclasses
import math
import operator
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
UNIT_MODULE = "packages/plumax-core/src/plumax_core/_units.py"

_HOUR, _DAY = 3600.0, 86400.0
TIME_FACTORS = {
    "s per hour": _HOUR,
    "hours per s": 1 / _HOUR,
    "s per day": _DAY,
    "days per s": 1 / _DAY,
    "s per week": 7 * _DAY,
    "weeks per s": 1 / (7 * _DAY),
    "s per Julian year": 365.25 * _DAY,
    "Julian years per s": 1 / (365.25 * _DAY),
    "kg/s per t/h": 1000 / _HOUR,
    "t/h per kg/s": _HOUR / 1000,
}
COLUMN_FACTORS = {
    "CH4 molar mass, kg/mol": 16.04e-3,
    "CH4 molar mass, g/mol": 16.04,
    "gas constant R": 8.314462618,
    "STP molar density of air": 101325.0 / (8.314462618 * 273.15),
    "MOL_M2_PER_PPM_M": 1e-6 * 101325.0 / (8.314462618 * 273.15),
    "MOLEC_CM2_PER_PPM_M": 1e-6 * 101325.0 / (1.380649e-23 * 273.15) * 1e-6 * 100.0,
    "KG_M2_PER_PPM_M": 1e-6 * 101325.0 / (8.314462618 * 273.15) * 16.04e-3,
}
FACTORS = {**TIME_FACTORS, **COLUMN_FACTORS}

# Justified occurrences outside the unit module: path -> (how many, why). None today.
ALLOWED: dict[str, tuple[int, str]] = {}


_BINOPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}


@dataclasses.dataclass(frozen=True)
class Hit:
    """One unit factor found in a source file."""

    path: str
    line: int
    code: str
    factor: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: `{self.code}` is {self.factor}"


def _is_number(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
    )


def _fold(node: ast.AST) -> tuple[float | None, list[float]] | None:
    """``(value, literals)`` of a constant expression, None if ``node`` is not one.

    ``value`` is None when the arithmetic fails (division by zero, overflow)."""
    if _is_number(node):
        return float(node.value), [float(node.value)]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        inner = _fold(node.operand)
        if inner is None:
            return None
        v, lits = inner
        return (None if v is None else _UNARY[type(node.op)](v)), lits
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left, right = _fold(node.left), _fold(node.right)
        if left is None or right is None:
            return None
        (a, la), (b, lb) = left, right
        try:
            v = None if a is None or b is None else float(_BINOPS[type(node.op)](a, b))
        except (ArithmeticError, ValueError):
            v = None
        return v, la + lb
    return None


def _factor_name(x: float | None) -> str | None:
    if x is None or x == 0 or not math.isfinite(x):
        return None
    for name, f in FACTORS.items():
        if math.isclose(abs(x), f, rel_tol=1e-9):
            return name
    return None


def find_unit_factors(source: str, path: str) -> list[Hit]:
    """Every maximal constant expression of ``source`` that is, or holds, a unit factor."""
    tree = ast.parse(source, filename=path)
    hits: list[Hit] = []

    def visit(node: ast.AST) -> None:
        folded = _fold(node)
        if folded is not None:
            value, literals = folded
            name = _factor_name(value) or next((n for n in map(_factor_name, literals) if n), None)
            if name:
                code = ast.get_source_segment(source, node) or "?"
                hits.append(Hit(path, node.lineno, code, name))
            return
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return hits


def scan_packages(root: pathlib.Path = ROOT) -> dict[str, list[Hit]]:
    """Hits per source file (path relative to ``root``) over ``packages/*/src``."""
    out: dict[str, list[Hit]] = {}
    for f in sorted(root.glob("packages/*/src/**/*.py")):
        rel = f.relative_to(root).as_posix()
        hits = find_unit_factors(f.read_text(encoding="utf-8"), rel)
        if hits:
            out[rel] = hits
    return out


@pytest.fixture(scope="module")
def scanned() -> dict[str, list[Hit]]:
    return scan_packages()


# --------------------------------------------------------------------- the scanner itself
FAKE = '''
"""Docstring: 3600 s per hour, 86400.0 and 16.04e-3 in text are not code."""
import numpy as np

SECONDS = 3600                       # hour
rate_kg_h = q * 3600.0               # hour
to_kg_s = 1 / 3600                   # reciprocal
day = 24 * 60 * 60                   # folded to a day
year = 365.25 * 86400.0              # Julian year
t_h = 1000 / 3600                    # kg/s per t/h
kg_s_per = q / 3.6                   # t/h per kg/s
m = 16.04e-3                         # CH4 molar mass
n = 1e-6 * 101325.0 / (8.314462618 * 273.15)  # ppm m factor
neg = -3600.0                        # sign does not hide it
label = "3600"                       # string: not code
near = 3601.0                        # not a factor
ok = 24.0 * HOUR                     # names, not literals
g = 9.80665                          # not in the rule
def f(duration=3.6e3):               # 3.6e3 is 3600
    return np.log(duration)
'''


def test_scanner_finds_every_form_and_nothing_else():
    hits = find_unit_factors(FAKE, "fake.py")
    assert [h.line for h in hits] == [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 19]
    by_line = {h.line: h.factor for h in hits}
    assert by_line[5] == by_line[6] == "s per hour"
    assert by_line[7] == "hours per s"  # `1 / 3600` folds to the reciprocal
    assert by_line[8] == "s per day"
    assert by_line[9] == "s per Julian year"
    assert by_line[10] == "kg/s per t/h"
    assert by_line[11] == "t/h per kg/s"
    assert by_line[12] == "CH4 molar mass, kg/mol"
    assert by_line[13] == "MOL_M2_PER_PPM_M"
    assert "q * 3600.0" not in {h.code for h in hits}  # only the constant part is reported
    assert any(h.code == "3600.0" for h in hits)


def test_scanner_reads_the_unit_module(scanned):
    """The one place the factors are written is found: the scan reads real files."""
    assert UNIT_MODULE in scanned
    factors = {h.factor for h in scanned[UNIT_MODULE]}
    assert {"s per hour", "CH4 molar mass, kg/mol", "gas constant R"} <= factors


# ------------------------------------------------------------------------- the repository
def test_unit_factors_are_written_once(scanned):
    bad = []
    for path, hits in scanned.items():
        if path == UNIT_MODULE:
            continue
        allowed = ALLOWED.get(path, (0, ""))[0]
        if len(hits) > allowed:
            bad.extend(hits)
    assert not bad, (
        "unit factors outside plumax_core/_units.py; use plumax_core.units "
        "(HOUR, DAY, kg_h_to_kg_s, rate_to_kg_s, MOL_M2_PER_PPM_M, ...):\n"
        + "\n".join(map(str, bad))
    )


def test_allowlists_are_not_stale(scanned):
    for path in ALLOWED:
        assert (ROOT / path).is_file(), f"allowlisted {path} does not exist: remove the entry"
        assert path in scanned, (
            f"{path} holds no unit factor any more: remove its entry from ALLOWED in {__file__}"
        )
