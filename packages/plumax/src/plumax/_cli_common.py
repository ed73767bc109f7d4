"""What every ``plumax`` command shares: consoles, the one-line error contract, input
checks, the output checks (:func:`check_outputs`) and warnings (:func:`print_warnings`)."""

import functools
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

__all__ = [
    "CLIError",
    "check_out_folder",
    "check_outputs",
    "err_console",
    "friendly",
    "one_line",
    "open_scene",
    "out_console",
    "print_warnings",
    "warn",
]

err_console = Console(stderr=True)
out_console = Console()


class CLIError(Exception):
    """A user-facing error: its message is printed as one line."""


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (its type name when the message is empty)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def friendly(fn):
    """Turn expected exceptions into one stderr line and exit status 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001 - the CLI's contract: one line, no traceback
            if os.environ.get("PLUMAX_DEBUG"):
                raise
            typer.echo(f"error: {one_line(exc)}", err=True)
            raise typer.Exit(1) from None

    return wrapper


def open_scene(path: Path):
    import xarray as xr

    if not path.is_file():
        raise CLIError(f"input file {str(path)!r} does not exist")
    try:
        with xr.open_dataset(path) as ds:
            return ds.load()
    except (OSError, ValueError) as exc:
        raise CLIError(f"cannot read {str(path)!r} as NetCDF ({one_line(exc)})") from None


def _parent(path: Path) -> Path:
    return path.parent if str(path.parent) else Path(".")


def _same_file(a: Path, b: Path) -> bool:
    """True when ``a`` and ``b`` are one file: the same (st_dev, st_ino) where both exist
    (symbolic and hard links included), else the same fully resolved path."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def _inside(path: Path, folder: Path) -> bool:
    p, f = path.resolve(), folder.resolve()
    return p == f or f in p.parents


def check_outputs(
    *,
    inputs: Iterable[Path | None] = (),
    files: Mapping[str, Path | None] | None = None,
    folders: Mapping[str, Path | None] | None = None,
) -> None:
    """Refuse, before any work, outputs that would write over an input or over each other.

    Every ``plumax`` command that writes calls this first, with its outputs named by the
    option (or argument) that gave them.

    Args:
        inputs: the files the command reads.
        files: ``{option: path}`` of the files it writes (each replaced atomically).
        folders: ``{option: path}`` of the folders it writes into or replaces
            (``--registry``, ``--root``, ``plumax demo --out``).

    Raises:
        CLIError: one line naming the option, when a file output is an input (the same
            path, or a symbolic or hard link to it), is an existing folder, or has no
            existing parent folder; when a folder output is an existing file or holds an
            input; when two outputs are the same path.
    """
    ins = [Path(p) for p in inputs if p is not None]
    outs: list[tuple[str, Path]] = []
    for opt, path in (files or {}).items():
        if path is None:
            continue
        path = Path(path)
        for src in ins:
            if _same_file(path, src):
                raise CLIError(
                    f"{opt} {str(path)!r} would write over the input {str(src)!r} "
                    "(the same file); choose another path"
                )
        if path.is_dir():
            raise CLIError(f"{opt} {str(path)!r} is a folder; give a file name")
        if not _parent(path).is_dir():
            raise CLIError(f"{opt}: output folder {str(_parent(path))!r} does not exist")
        outs.append((opt, path))
    for opt, path in (folders or {}).items():
        if path is None:
            continue
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise CLIError(f"{opt} {str(path)!r} exists and is not a folder")
        for src in ins:
            if _inside(src, path):
                raise CLIError(
                    f"{opt} {str(path)!r} holds the input {str(src)!r}; choose a folder "
                    "that does not contain the inputs"
                )
        outs.append((opt, path))
    for i, (opt_a, a) in enumerate(outs):
        for opt_b, b in outs[i + 1 :]:
            if _same_file(a, b):
                raise CLIError(f"{opt_b} {str(b)!r} is the same path as {opt_a} {str(a)!r}")


def check_out_folder(path: Path | None, option: str = "--out") -> None:
    """The parent folder of an output file must exist (see :func:`check_outputs`)."""
    check_outputs(files={option: path})


def warn(message: str) -> None:
    """Print one ``warning: ...`` line on stderr."""
    typer.echo(f"warning: {' '.join(str(message).split())}", err=True)


def print_warnings(summary: Mapping[str, Any] | None, *, what: str = "the result") -> None:
    """Print a pipeline summary's ``"warnings"`` (any strings; the key may be absent) on
    stderr, one ``warning: ...`` line each, and warn when ``"converged"`` is False."""
    if not isinstance(summary, Mapping):
        return
    found = summary.get("warnings") or []
    if isinstance(found, str):
        found = [found]
    messages = [str(m) for m in found if str(m).strip()]
    if summary.get("converged") is False and not any("converge" in m for m in messages):
        messages.append(f"{what} did not converge (converged: false); treat the numbers with care")
    for m in messages:
        warn(m)
