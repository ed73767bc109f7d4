"""Publishing a command's outputs: whole or not at all, never over a user's files.

Standard library only (the fault-injection tests drive this module in a bare
subprocess and kill it at random points).

**Files** (:func:`atomic_write`, :func:`write_json`, :func:`write_files`): each output is
written to a uniquely named temporary file beside its target
(``.<name>.plumax-tmp-<32 hex>``), flushed to disk, then renamed into place. The
temporary file is created with mode ``0o666`` and the process umask applies, so an
output gets the same permissions as any file the user writes (0644 under umask 022,
0664 under 002). :func:`write_files` writes every file of a set before renaming any.

**Folders** (:class:`StagedFolder`, ``plumax demo --out``): all of a run's outputs are
written into a sibling staging folder ``<name>.plumax-staging-<run id>`` (same file
system), together with a manifest, :data:`MANIFEST` (``plumax-manifest.json``: every
file's size and sha256 and every sub-folder). The staging folder is then published:

* target absent: one ``rename(staging, target)``;
* target present: it must be empty or hold exactly a previous plumax run (its manifest
  lists every entry and every file still has its recorded size and hash); anything
  else (a user's own files, an edited output, a symbolic link) is refused with
  :class:`OutputFolderError` and nothing is touched. Then the two folders are swapped
  in one step with Linux ``renameat2(RENAME_EXCHANGE)``, so a reader sees the old set
  or the new set, never a mix. Where the exchange is unavailable the fallback is
  ``rename(target, <name>.plumax-old-<run id>)`` then ``rename(staging, target)``:
  between the two the target is briefly absent (never mixed).
* the previous outputs, now under ``<name>.plumax-old-<run id>``, are deleted file by
  file from their manifest; a folder is removed only once empty, so an entry that
  appeared meanwhile survives, and the old folder is then kept (and reported).

An error or Ctrl-C removes the staging folder this process created. A killed process
(``kill -9``, power loss) leaves at most a ``<name>.plumax-staging-<id>`` or
``<name>.plumax-old-<id>`` folder beside the target; :func:`find_leftovers` lists them
(the CLI reports them) and nothing is ever deleted automatically, because another run
may still be writing there.
"""

import contextlib
import ctypes
import datetime
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "MANIFEST",
    "OutputFolderError",
    "StagedFolder",
    "atomic_write",
    "check_output_folder",
    "check_replaceable",
    "describe_leftover",
    "find_leftovers",
    "read_manifest",
    "verify_folder",
    "write_files",
    "write_json",
]

#: Name of the manifest written into every published output folder.
MANIFEST = "plumax-manifest.json"
MANIFEST_FORMAT = "plumax-output-folder"
MANIFEST_VERSION = 1
_RUN_ID = re.compile(r"[0-9a-f]{32}")
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


class OutputFolderError(ValueError):
    """An output folder that a command may not create or replace (message names the option)."""


# ----------------------------------------------------------------------------- files


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _parent(path: Path) -> Path:
    return path.parent if str(path.parent) else Path(".")


def _new_temp(path: Path) -> Path:
    """Create an empty, uniquely named file beside ``path`` (mode 0o666 & ~umask)."""
    while True:
        tmp = _parent(path) / f".{path.name}.plumax-tmp-{uuid.uuid4().hex}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:  # pragma: no cover - 128 random bits
            continue
        os.close(fd)
        return tmp


def _written_temp(path: Path, write: Callable[[Path], None]) -> Path:
    parent = _parent(path)
    if not parent.is_dir():
        raise ValueError(f"output folder {str(parent)!r} does not exist")
    tmp = _new_temp(path)
    try:
        write(tmp)
        _fsync_file(tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _place(tmp: Path, path: Path, *, overwrite: bool) -> None:
    try:
        if overwrite:
            os.replace(tmp, path)
        else:
            _place_new(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(_parent(path))


def _place_new(tmp: Path, path: Path) -> None:
    """Rename ``tmp`` to ``path`` unless ``path`` exists (link(2) never replaces)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: check, then rename
        if os.path.lexists(path):
            raise FileExistsError(errno.EEXIST, "file exists", str(path)) from None
        os.rename(tmp, path)
        return
    tmp.unlink()


def atomic_write(
    path: str | os.PathLike[str], write: Callable[[Path], None], *, overwrite: bool = True
) -> Path:
    """Call ``write(tmp)`` on a new temporary file beside ``path``, then rename it into place.

    The file honours the umask (it is created with mode ``0o666``). On any error the
    temporary file is removed and ``path`` is left untouched, so no partial output is
    ever visible. With ``overwrite=False`` an existing ``path`` raises
    ``FileExistsError`` (checked atomically) and is left as it was.
    """
    path = Path(path)
    tmp = _written_temp(path, write)
    _place(tmp, path, overwrite=overwrite)
    return path


def write_files(writers: Mapping[str | os.PathLike[str], Callable[[Path], None]]) -> None:
    """Write several files, then rename them all into place (see :func:`atomic_write`).

    Every file is written and flushed before the first rename, so an error while
    writing leaves every target untouched; only a crash between the renames (micro-
    seconds) can leave some replaced and some not.
    """
    done: list[tuple[Path, Path]] = []
    try:
        for path, write in writers.items():
            done.append((_written_temp(Path(path), write), Path(path)))
    except BaseException:
        for tmp, _ in done:
            tmp.unlink(missing_ok=True)
        raise
    for i, (tmp, path) in enumerate(done):
        try:
            _place(tmp, path, overwrite=True)
        except BaseException:
            for t, _ in done[i + 1 :]:
                t.unlink(missing_ok=True)
            raise


def write_json(
    path: str | os.PathLike[str],
    obj: Any,
    *,
    indent: int | None = 1,
    allow_nan: bool = True,
    overwrite: bool = True,
) -> Path:
    """Write ``obj`` as JSON through :func:`atomic_write` (``allow_nan=False``: strict JSON,
    a non-finite number raises before anything is written)."""
    text = json.dumps(obj, indent=indent, allow_nan=allow_nan)
    return atomic_write(
        path, lambda tmp: tmp.write_text(text, encoding="utf-8"), overwrite=overwrite
    )


# --------------------------------------------------------------------------- folders


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _walk(root: Path) -> tuple[dict[str, Path], list[str], list[str]]:
    """Regular files, sub-folders and other entries (links, sockets...) under ``root``,
    as ``/``-separated relative paths; symbolic links are never followed."""
    files: dict[str, Path] = {}
    folders: list[str] = []
    other: list[str] = []
    stack = [(root, "")]
    while stack:
        d, rel = stack.pop()
        with os.scandir(d) as it:
            for e in it:
                r = f"{rel}{e.name}"
                if e.is_symlink():
                    other.append(r)
                elif e.is_dir(follow_symlinks=False):
                    folders.append(r)
                    stack.append((Path(e.path), r + "/"))
                elif e.is_file(follow_symlinks=False):
                    files[r] = Path(e.path)
                else:
                    other.append(r)
    return files, sorted(folders), sorted(other)


def _write_manifest(folder: Path, *, command: str, run_id: str) -> None:
    files, folders, other = _walk(folder)
    if other:
        raise OutputFolderError(f"outputs must be plain files and folders, not {other[:3]}")
    files.pop(MANIFEST, None)
    manifest = {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "command": command,
        "run_id": run_id,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "files": {
            r: {"size": p.stat().st_size, "sha256": _sha256(p)} for r, p in sorted(files.items())
        },
        "folders": folders,
    }
    atomic_write(
        folder / MANIFEST,
        lambda tmp: tmp.write_text(json.dumps(manifest, indent=1), encoding="utf-8"),
        overwrite=False,
    )
    for r in [*folders[::-1], ""]:
        _fsync_dir(folder / r if r else folder)


def read_manifest(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of a published output folder.

    Raises:
        FileNotFoundError: no manifest.
        ValueError: a manifest that is not valid JSON or not in the expected format.
    """
    text = (Path(folder) / MANIFEST).read_text(encoding="utf-8")
    try:
        m = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{MANIFEST} is not valid JSON ({exc.msg})") from None
    ok = (
        isinstance(m, dict)
        and m.get("format") == MANIFEST_FORMAT
        and isinstance(m.get("files"), dict)
        and isinstance(m.get("folders"), list)
        and all(isinstance(v, dict) and {"size", "sha256"} <= v.keys() for v in m["files"].values())
    )
    if not ok:
        raise ValueError(f"{MANIFEST} is not a plumax output manifest")
    return m


def verify_folder(folder: str | os.PathLike[str]) -> list[str]:
    """What, in ``folder``, a plumax run did not write: ``[]`` for a folder that holds
    exactly a previous run's outputs (or a subset of them, unchanged).

    Each problem is a short phrase (``"notes.txt (not in the manifest)"``,
    ``"report.html (changed since it was written)"``, ``"notes.txt (no
    plumax-manifest.json)"``).
    """
    folder = Path(folder)
    entries = sorted(os.listdir(folder))
    if not entries:
        return []
    try:
        m = read_manifest(folder)
    except FileNotFoundError:  # not walked: it may be any folder, e.g. a home folder
        return [f"{name} (no {MANIFEST})" for name in entries]
    except (OSError, ValueError) as exc:
        return [str(exc)]
    files, folders, other = _walk(folder)
    problems = [f"{r} (a link or special file)" for r in other]
    files.pop(MANIFEST, None)
    listed, listed_folders = m["files"], set(m["folders"])
    problems += [f"{r}/ (not in the manifest)" for r in folders if r not in listed_folders]
    for r, p in sorted(files.items()):
        rec = listed.get(r)
        if rec is None:
            problems.append(f"{r} (not in the manifest)")
        elif p.stat().st_size != rec["size"] or _sha256(p) != rec["sha256"]:
            problems.append(f"{r} (changed since it was written)")
    return problems


def check_replaceable(target: str | os.PathLike[str], option: str = "--out") -> None:
    """Raise :class:`OutputFolderError` unless ``target`` may become a new output folder:
    absent, an empty folder, or a previous plumax run's unchanged outputs."""
    target = Path(target)
    if target.is_symlink():
        raise OutputFolderError(
            f"{option} {str(target)!r} is a symbolic link; give the folder itself"
        )
    if not target.exists():
        return
    if not target.is_dir():
        raise OutputFolderError(f"{option} {str(target)!r} exists and is not a folder")
    problems = verify_folder(target)
    if problems:
        shown = ", ".join(problems[:3]) + (f" and {len(problems) - 3} more" if problems[3:] else "")
        raise OutputFolderError(
            f"{option} {str(target)!r} holds what no earlier plumax run wrote there: {shown}; "
            f"plumax replaces only its own output folders (listed in {MANIFEST}): move "
            "those out or choose another folder"
        )


def check_output_folder(target: str | os.PathLike[str], option: str = "--out") -> Path:
    """Check that ``target`` may become a published output folder; return it with its
    parent resolved (the form :class:`StagedFolder` publishes to).

    Raises:
        OutputFolderError: naming ``option``: no folder name (``.``, ``/``), the current
            folder or one above it, or what :func:`check_replaceable` refuses.
    """
    target = Path(target)
    if target.name in ("", ".", ".."):
        raise OutputFolderError(
            f"{option} {str(target)!r} must end in a folder name (e.g. ./plumax-demo)"
        )
    resolved = _parent(target).resolve() / target.name
    cwd = Path.cwd().resolve()
    if cwd == resolved or resolved in cwd.parents:
        raise OutputFolderError(
            f"{option} {str(target)!r} is the current folder or holds it; choose another"
        )
    check_replaceable(target, option)
    return resolved


def _leftover_re(name: str) -> re.Pattern[str]:
    return re.compile(rf"{re.escape(name)}\.plumax-(staging|old)-([0-9a-f]{{32}})")


def find_leftovers(target: str | os.PathLike[str]) -> list[Path]:
    """Staging (``<name>.plumax-staging-<id>``) and old (``<name>.plumax-old-<id>``)
    folders beside ``target``: debris of a publishing run that was killed, or of one
    that is running now. Never deleted automatically."""
    target = Path(target)
    parent = _parent(target)
    if not parent.is_dir():
        return []
    pat = _leftover_re(target.name)
    return sorted(parent / n for n in os.listdir(parent) if pat.fullmatch(n))


def describe_leftover(path: Path) -> str:
    """One line about a leftover of :func:`find_leftovers`."""
    what = (
        "the previous outputs of an interrupted replacement"
        if ".plumax-old-" in path.name
        else "the unpublished outputs of an interrupted (or still running) plumax run"
    )
    return f"{str(path)!r} holds {what}; plumax never deletes it: remove it yourself"


@contextlib.contextmanager
def _dir_lock(folder: Path) -> Iterator[None]:
    """An advisory lock on ``folder`` itself (no lock file), so two plumax runs do not
    verify-and-swap the same target at once. Best effort where flock is unsupported."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        yield
        return
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False where
    the platform or file system cannot, so the caller falls back to two renames."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV):
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def _remove_listed(folder: Path) -> bool:
    """Delete a published output folder by its manifest: only the files it lists and then
    the folders it lists once empty. True when ``folder`` is gone."""
    try:
        m = read_manifest(folder)
    except FileNotFoundError:
        m = {"files": {}, "folders": []}
    except (OSError, ValueError):
        return False
    for rel in m["files"]:
        p = folder / rel
        if not p.is_symlink() and p.is_file():
            p.unlink()
    (folder / MANIFEST).unlink(missing_ok=True)
    for rel in sorted(m["folders"], key=lambda r: r.count("/"), reverse=True):
        with contextlib.suppress(OSError):
            (folder / rel).rmdir()
    try:
        folder.rmdir()
    except OSError:
        return False
    return True


class StagedFolder:
    """Write a command's outputs into a staging folder, then publish them in one step.

    ```python
    with StagedFolder("plumax-demo", command="plumax demo") as stage:
        write_json(stage.path / "summary.json", {...})   # every output goes in stage.path
    # published: plumax-demo/ holds the new outputs and plumax-manifest.json
    ```

    The target is checked when the object is created (:func:`check_replaceable`, so a
    refusal comes before any work) and again just before the swap. Missing parent
    folders are created (and removed again if the run fails). See the module docstring
    for the publishing steps and what a crash leaves behind.

    Attributes:
        target: the output folder (its parent resolved; the name as given).
        path: the staging folder to write into (exists inside the ``with`` block).
        run_id: 32 hex digits, also recorded in the manifest.
        kept: after publishing, an old folder that could not be fully removed (it held
            entries that appeared during the run), else None.

    Raises:
        OutputFolderError: naming ``option``, for a target that is a file, a symbolic
            link, or a folder with anything but a previous plumax run's outputs.
    """

    def __init__(self, target: str | os.PathLike[str], *, command: str, option: str = "--out"):
        self.target = check_output_folder(target, option)
        self.option = option
        self.command = command
        self.run_id = uuid.uuid4().hex
        self.path = self.target.parent / f"{self.target.name}.plumax-staging-{self.run_id}"
        self.kept: Path | None = None
        self._made_parents: list[Path] = []
        self._swapped = False

    def __enter__(self) -> "StagedFolder":
        missing = [p for p in (self.target.parent, *self.target.parent.parents) if not p.exists()]
        try:
            for p in reversed(missing):
                p.mkdir()  # mode 0o777 & ~umask
                self._made_parents.append(p)
            os.mkdir(self.path)  # mode 0o777 & ~umask
        except BaseException:
            self._discard()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            try:
                _write_manifest(self.path, command=self.command, run_id=self.run_id)
            except BaseException:
                self._discard()
                raise
            try:
                self._publish()
            except OutputFolderError as err:
                # the target changed during the run (e.g. a user's file appeared): keep
                # this run's complete outputs where they are rather than lose them
                raise OutputFolderError(
                    f"{err}; this run's outputs are kept, complete, in {str(self.path)!r}"
                ) from None
            except BaseException:
                self._discard()
                raise
            return
        self._discard()

    def _discard(self) -> None:
        """Remove what this process created: its staging folder and missing parents."""
        if self._swapped:  # published: the staging folder is the target now
            return
        if self.path.is_dir() and not self.path.is_symlink():
            shutil.rmtree(self.path, ignore_errors=True)
        for p in reversed(self._made_parents):
            with contextlib.suppress(OSError):
                p.rmdir()

    def _publish(self) -> None:
        target, staging = self.target, self.path
        old = target.parent / f"{target.name}.plumax-old-{self.run_id}"
        with _dir_lock(target.parent):
            if not os.path.lexists(target):
                os.rename(staging, target)
                self._swapped = True
                _fsync_dir(target.parent)
                return
            check_replaceable(target, self.option)  # again: it may have changed meanwhile
            if _exchange(staging, target):
                self._swapped = True
                # staging now holds the previous outputs: give it its clear name
                os.rename(staging, old)
            else:
                os.rename(target, old)
                try:
                    os.rename(staging, target)
                except BaseException:
                    os.rename(old, target)
                    raise
                self._swapped = True
            _fsync_dir(target.parent)
            if not _remove_listed(old):
                self.kept = old
