"""What every ``plumax`` command shares: consoles, the one-line error contract, input checks."""

import functools
import os
from pathlib import Path

import typer
from rich.console import Console

__all__ = [
    "CLIError",
    "check_out_folder",
    "err_console",
    "friendly",
    "one_line",
    "open_scene",
    "out_console",
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


def check_out_folder(path: Path | None) -> None:
    if path is not None and not (path.parent if str(path.parent) else Path(".")).is_dir():
        raise CLIError(f"output folder {str(path.parent)!r} does not exist")
