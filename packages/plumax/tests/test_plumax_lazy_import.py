"""``import plumax`` and every ``plumax ... --help`` leave JAX and the libraries unimported.

The CLI parses before it computes: ``plumax --help`` took 2.1 s when the package imported
its pipelines (hence JAX) at import time. The time itself is measured in
``benchmarks/bench_plumax_cli_help.py``; here the cause is checked, deterministically: in a
fresh interpreter, after every command's ``--help``, none of the heavy modules is in
``sys.modules``. The lazy names still resolve (``plumax.invert`` imports on first use).
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = (
    "jax",
    "jaxlib",
    "numpy",
    "scipy",
    "xarray",
    "equinox",
    "plumax_core",
    "plumax_transport",
    "plumax_rtm",
    "vardax_lite",
    "plumax_emulate",
    "plumax_amortize",
    "plumax_pod",
    "plumax.pipelines",
)

_PROBE = """
import json, sys
import typer.main
from typer.testing import CliRunner
from plumax._cli import app

paths = []
def walk(cmd, path):
    paths.append(path)
    for name, sub in (getattr(cmd, "commands", None) or {}).items():
        walk(sub, (*path, name))
walk(typer.main.get_command(app), ())
runner = CliRunner()
codes = {" ".join(p): runner.invoke(app, [*p, "--help"]).exit_code for p in paths}
heavy = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY or m in HEAVY)
print(json.dumps({"codes": codes, "heavy": heavy}))
"""


def _probe(code: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", f"HEAVY = {HEAVY!r}\n{code}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_help_of_every_command_imports_nothing_heavy():
    out = _probe(_PROBE)
    assert len(out["codes"]) >= 10, out["codes"]  # the app, 7 commands, registry's
    assert all(code == 0 for code in out["codes"].values()), out["codes"]
    assert out["heavy"] == [], f"--help imported {out['heavy']}"


def test_import_plumax_is_light_and_names_resolve_lazily():
    out = _probe(
        "import json, sys\n"
        "import plumax\n"
        "light = sorted(m for m in sys.modules if m.split('.')[0] in HEAVY or m in HEAVY)\n"
        "names = {n: type(getattr(plumax, n)).__name__ for n in plumax.__all__}\n"
        "from plumax import invert, pin\n"
        "import plumax_core\n"
        "same = plumax.pin is plumax_core.pin and invert is plumax.pipelines.invert\n"
        "print(json.dumps({'light': light, 'names': names, 'same': same,\n"
        "                  'dir': sorted(set(plumax.__all__) - set(dir(plumax)))}))\n"
    )
    assert out["light"] == []
    assert set(out["names"]) == set(__import__("plumax").__all__)
    assert out["same"] is True
    assert out["dir"] == []


def test_unknown_attribute_is_an_attribute_error():
    import pytest

    import plumax

    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        plumax.nonsense  # noqa: B018
