"""One simulation bank type, in plumax-core (issue 18).

"Draw from the prior, simulate, add noise" lives once: `plumax_core.SimulationBank`,
built by `plumax_core.simulate_bank`. A library that defines a bank or dataset class of
its own (a second carrier of the same concept, with its own identity and hash) fails
here. Read with ``ast``, no import needed: a class is a bank class when its name ends in
``Bank``, ``Dataset`` or ``Simulations``, or when it derives from a class so named. The
check is tested on fake sources, so that it can fail.
"""

from __future__ import annotations

import ast
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SOURCES = sorted(ROOT.glob("packages/*/src/**/*.py"))
#: the one module allowed to define a bank class, and what it defines
HOME = ROOT / "packages" / "plumax-core" / "src" / "plumax_core" / "_bank.py"
BANK_NAME = re.compile(r"(Bank|Dataset|Simulations)$")


def _base_name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript):
        return _base_name(node.value)
    return ""


def bank_classes(source: str) -> list[str]:
    """Names of the classes ``source`` defines (at any depth) that are bank classes."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ClassDef):
            continue
        bases = [_base_name(b) for b in node.bases]
        if BANK_NAME.search(node.name) or any(BANK_NAME.search(b) for b in bases):
            out.append(node.name)
    return out


def test_the_check_can_fail():
    assert bank_classes("class SimulationDataset:\n    pass\n") == ["SimulationDataset"]
    assert bank_classes("import eqx\nclass TrainingBank(eqx.Module):\n    x: int\n") == [
        "TrainingBank"
    ]
    assert bank_classes("import pc\nclass Mine(pc.SimulationBank):\n    pass\n") == ["Mine"]
    assert bank_classes("def f():\n    class PlumeSimulations:\n        pass\n") == [
        "PlumeSimulations"
    ]
    assert bank_classes("class NeuralForward:\n    pass\nclass Banker:\n    pass\n") == []


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT / "packages")))
def test_no_second_bank_class(path):
    found = bank_classes(path.read_text(encoding="utf-8"))
    assert found == (["SimulationBank"] if path == HOME else []), path


def test_the_libraries_share_the_core_bank():
    import plumax_amortize as pa
    import plumax_core as pc
    import plumax_emulate as pe

    assert pa.SimulationBank is pc.SimulationBank  # a re-export, not a copy
    assert pa.GaussianNoise is pc.GaussianNoise
    assert not hasattr(pe, "SimulationDataset")
