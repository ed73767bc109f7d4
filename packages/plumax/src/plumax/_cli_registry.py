"""``plumax registry``: inspect an artifact registry; ``check --repair`` is its only write.

``ls``, ``show`` and ``lineage`` open the registry read-only
(`plumax_core.ArtifactRegistry` with ``mode="r"``): they create, lock and delete nothing
and work on a read-only folder; a folder that is not a registry is an error.
"""

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ._cli_common import CLIError, friendly, out_console

__all__ = ["registry_app"]

registry_app = typer.Typer(
    help=(
        "Inspect an artifact registry (content-addressed store with lineage).\n\n"
        "Examples:\n\n"
        "  plumax registry ls --root ./plumax-runs\n\n"
        "  plumax registry show posterior-scene-laplace\n\n"
        "  plumax registry lineage posterior-scene-laplace\n\n"
        "  plumax registry check --root ./plumax-runs --repair"
    ),
    no_args_is_help=True,
)


def _registry(root: Path, mode: str = "r"):
    from plumax_core import ArtifactRegistry

    return ArtifactRegistry(root, mode=mode)


RootOpt = Annotated[Path, typer.Option(help="Registry folder.")]


@registry_app.command("ls")
@friendly
def registry_ls(root: RootOpt = Path("plumax-runs")):
    """List every artifact: name, version, role, hash prefix and file status.

    Use `plumax registry show NAME` for the creation time, tags and lineage."""
    reg = _registry(root)
    records = reg.list()
    table = Table(title=f"{root} ({len(records)} records)")
    table.add_column("name", no_wrap=True)
    for col in ("v", "role", "hash", "status"):
        table.add_column(col, no_wrap=True)
    for r in records:
        table.add_row(r.name, str(r.version), r.role.value, r.hash[:12], reg.verify(r.hash))
    out_console.print(table)
    problems = reg.check(verify=False).problems
    if problems:
        typer.echo(
            f"warning: the registry has {len(problems)} problem(s) ({problems[0]}); "
            f"run `plumax registry check --root {root}`",
            err=True,
        )


@registry_app.command("check")
@friendly
def registry_check(
    root: RootOpt = Path("plumax-runs"),
    repair: Annotated[
        bool,
        typer.Option(
            help="Rebuild the index from the objects' own records and remove staging "
            "debris. Lost or damaged payloads are reported, never deleted."
        ),
    ] = False,
):
    """Verify every artifact (re-hash each payload) and the index against the objects.

    Finds a deleted, truncated or edited index, records stored but not indexed, corrupted
    or missing payloads and debris of interrupted writes. Exit status 0 when the registry
    is sound (after the repair, with --repair), 1 otherwise. Files that are not the
    registry's own are listed and left alone.

    Examples:

      plumax registry check --root ./plumax-runs

      plumax registry check --root ./plumax-runs --repair
    """
    reg = _registry(root, mode="a" if repair else "r")
    report = reg.check(repair=repair)
    typer.echo(str(report))
    if report.ok:
        return
    if repair or not report.repairable:
        raise CLIError(
            f"{len(report.problems)} problem(s) that a repair cannot fix (payloads lost or "
            "damaged: store those artifacts again, or restore them from a copy)"
        )
    raise CLIError(f"{len(report.problems)} problem(s); run `plumax registry check --repair`")


@registry_app.command("show")
@friendly
def registry_show(
    name: Annotated[str, typer.Argument(help="Artifact name or hash prefix (>= 8 chars).")],
    root: RootOpt = Path("plumax-runs"),
):
    """Show one artifact's record (role, tags, lineage, size) as JSON."""
    reg = _registry(root)
    rec = reg.info(name)
    d = rec.to_dict()
    d["status"] = reg.verify(rec.hash)
    d["stale"] = reg.stale(rec.hash)
    out_console.print_json(json.dumps(d))


@registry_app.command("lineage")
@friendly
def registry_lineage(
    name: Annotated[str, typer.Argument(help="Artifact name or hash prefix (>= 8 chars).")],
    root: RootOpt = Path("plumax-runs"),
):
    """Print an artifact's ancestry; missing or corrupted files are reported, not fatal."""
    reg = _registry(root)
    node = reg.lineage(name)
    typer.echo(str(node))
    problems = node.problems
    if problems:
        listed = ", ".join(f"{p.name or p.hash[:12]} ({p.status})" for p in problems)
        typer.echo(f"warning: {len(problems)} artifact(s) not ok: {listed}", err=True)
