"""Wall time of ``plumax ... --help`` for every command, with the eager import as peer.

Each command's ``--help`` runs in a fresh interpreter (what a user's shell pays), ``REPEAT``
times; the table shows the median and the fastest. The peer in the same run is the same
``--help`` after ``import plumax.pipelines`` (what the CLI cost when the ``plumax``
package imported its pipelines, hence JAX and every library, before parsing). The
machine's load average is recorded: on a shared machine compare rows of one run only.

Bytecode: ``pip install`` compiles every module to bytecode, so a user's ``plumax`` does
not recompile its dependencies on each start. This benchmark does the same: the
interpreters share a bytecode cache in a temporary folder (``PYTHONPYCACHEPREFIX``, so
nothing is written into the checkout), filled by one untimed run before timing, even
where ``PYTHONDONTWRITEBYTECODE`` is set (as on our CI machines, where every start then
compiles typer, rich and pydantic from source: about 0.27 s more).

Run from the repository root:

    uv run python benchmarks/bench_plumax_cli_help.py
    uv run python benchmarks/bench_plumax_cli_help.py --repeat 3
"""

from __future__ import annotations

import argparse
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile
import time

from _results import write_json_atomic

ROOT = pathlib.Path(__file__).resolve().parent
COMMANDS = (
    (),
    ("simulate",),
    ("invert",),
    ("retrieve",),
    ("demo",),
    ("cycle",),
    ("population",),
    ("registry",),
    ("registry", "ls"),
    ("registry", "lineage"),
    ("registry", "check"),
)
_RUN = (
    "import sys\n"
    "{pre}"
    "from plumax._cli import app\n"
    "sys.argv = ['plumax', *{args!r}, '--help']\n"
    "try:\n    app()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
)


def time_help(
    args: tuple[str, ...], *, eager: bool, repeat: int, env: dict[str, str]
) -> list[float]:
    code = _RUN.format(pre="import plumax.pipelines\n" if eager else "", args=list(args))
    cmd = [sys.executable, "-c", code]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)  # fills the cache
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    load = os.getloadavg()[0]
    rows = []
    cache = tempfile.TemporaryDirectory(prefix="plumax-bench-pycache-")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = cache.name
    for cmd in COMMANDS:
        lazy = time_help(cmd, eager=False, repeat=args.repeat, env=env)
        eager = time_help(cmd, eager=True, repeat=args.repeat, env=env)
        rows.append(
            {
                "command": " ".join(("plumax", *cmd, "--help")),
                "lazy_median_s": statistics.median(lazy),
                "lazy_min_s": min(lazy),
                "eager_median_s": statistics.median(eager),
            }
        )
    cache.cleanup()
    print(
        f"plumax --help wall time, {args.repeat} fresh interpreters each, bytecode cached "
        f"(load {load:.1f})"
    )
    print(f"{'command':<36} {'median':>8} {'min':>8} {'eager':>9}")
    for r in rows:
        print(
            f"{r['command']:<36} {r['lazy_median_s']:>7.2f}s {r['lazy_min_s']:>7.2f}s "
            f"{r['eager_median_s']:>8.2f}s"
        )
    write_json_atomic(
        ROOT / "results" / "plumax_cli_help.json",
        {
            "benchmark": "plumax_cli_help",
            "repeat": args.repeat,
            "load_average_1min": load,
            "machine": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
