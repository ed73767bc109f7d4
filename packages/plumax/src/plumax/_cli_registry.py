"""``plumax registry``: inspect an artifact registry (read-only)."""

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
        "  plumax registry lineage posterior-scene-laplace"
    ),
    no_args_is_help=True,
)


def _registry(root: Path):
    from plumax_core import ArtifactRegistry

    if not root.is_dir():
        raise CLIError(f"no registry at {str(root)!r} (folder does not exist)")
    return ArtifactRegistry(root)


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
