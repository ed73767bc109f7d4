"""The artifact registry's files: layout, durable writes, staging entries and the journal.

This module knows bytes and paths, not artifacts' meaning (that is `_registry`). Layout
(version 2) under a registry's ``root``::

    plumax-registry.json        marker: {"format": "plumax-artifact-registry", "version": 2}
    index.jsonl                 the journal: one record (JSON object) per line, appended
    registry.lock               fcntl lock held by writers
    objects/<hash>/payload.bin  serialised pytree; sha256(payload.bin) == <hash>
    objects/<hash>/meta.json    hash, size, serialisation format, the first record
    objects/<hash>/records/     one JSON file per record of this object (for rebuilds)
    tmp/                        staging entries, named ``.plumax-<kind>-<32 hex>[.ext]``

Version 1 registries (one ``index.json`` rewritten on every store, no marker, no
``records/``) are read as they are and migrated on their first write.

Rules that keep users' files safe:

* every file is created with `open` mode ``"x"`` and every folder with `os.mkdir`, so
  both honour the umask (``tempfile.mkstemp``/``mkdtemp`` would make them 0600/0700);
* staging entries carry a recognisable unique name; only such entries, and never a
  symbolic link, are removed as debris of an interrupted write;
* the journal is only appended to (one ``write`` of a whole line, then ``fsync``) or
  replaced whole by `os.replace`; a line cut short by a crash (no final newline) is a
  *torn tail*: readers ignore it and the next writer truncates it.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from ._registry_types import ArtifactRecord, NotARegistryError

__all__ = [
    "FORMAT",
    "LEGACY_FORMAT",
    "VERSION",
    "JournalRead",
    "Layout",
    "fsync_dir",
    "is_staging_name",
    "now",
    "read_journal",
    "read_journal_file",
    "write_bytes",
]

FORMAT = "plumax-artifact-registry"
VERSION = 2
LEGACY_FORMAT = "plumax-artifact-index"

_STAGING_RE = re.compile(
    r"\.plumax-(?:store|record|journal|marker|payload|meta)-[0-9a-f]{32}(?:\.[a-z]+)?"
)
# Staging names of the version-1 registry (tempfile.mkdtemp suffixes and uuid-named
# index files); only ever made by a registry, so recognisable as its debris.
_LEGACY_STAGING_RE = re.compile(r"(?:store|trash)-[a-z0-9_]{8}|index-\d+-[0-9a-f]{32}\.json")
_OWN_ROOT_ENTRIES = frozenset(
    {"plumax-registry.json", "index.jsonl", "index.json", "registry.lock", "objects", "tmp"}
)


def now() -> str:
    """The current UTC time, ISO 8601 with microseconds."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds")


def write_bytes(path: Path, data: bytes) -> None:
    """Create ``path`` (it must not exist), write ``data`` and force it to disk.

    The file's mode is ``0o666`` less the umask, like any file the user writes.
    """
    with open(path, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries to disk (best effort: not every filesystem allows it)."""
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


def is_staging_name(name: str) -> bool:
    """True for the name of a staging entry a registry (this or version 1) made."""
    return bool(_STAGING_RE.fullmatch(name) or _LEGACY_STAGING_RE.fullmatch(name))


@dataclasses.dataclass(frozen=True)
class JournalRead:
    """What one read of the journal found from ``start`` (a byte offset) to its end.

    Attributes:
        records: the records of the complete lines.
        bad_lines: ``(line number, problem)`` of complete lines that are not records.
        end: offset just after the last complete line (where the next read starts).
        lines: number of complete lines read.
        torn: length of a final fragment without a newline (an interrupted append).
    """

    records: tuple[ArtifactRecord, ...]
    bad_lines: tuple[tuple[int, str], ...]
    end: int
    lines: int
    torn: int


def read_journal(path: Path, start: int = 0, first_line: int = 1) -> JournalRead:
    """Parse the journal from byte ``start`` (whose line number is ``first_line``).

    Raises:
        FileNotFoundError: no journal at ``path``.
    """
    with open(path, "rb") as f:
        return read_journal_file(f, start, first_line)


def read_journal_file(f: BinaryIO, start: int = 0, first_line: int = 1) -> JournalRead:
    """`read_journal` on an open file (so that the caller can ``fstat`` the same file)."""
    f.seek(start)
    data = f.read()
    cut = data.rfind(b"\n") + 1  # 0 when there is no complete line
    records: list[ArtifactRecord] = []
    bad: list[tuple[int, str]] = []
    lines = data[:cut].split(b"\n")[:-1] if cut else []
    for i, raw in enumerate(lines):
        if not raw.strip():
            continue
        try:
            records.append(ArtifactRecord.from_dict(json.loads(raw)))
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            bad.append((first_line + i, f"{type(err).__name__}: {err}"))
    return JournalRead(tuple(records), tuple(bad), start + cut, len(lines), len(data) - cut)


def record_line(record: ArtifactRecord) -> bytes:
    """A record as one journal line (canonical JSON and a newline)."""
    return (json.dumps(record.to_dict(), sort_keys=True, allow_nan=False) + "\n").encode()


def record_file_name(record: ArtifactRecord) -> str:
    """A unique, sortable file name for a record under ``objects/<hash>/records/``."""
    stamp = re.sub(r"[^0-9]", "", record.created)
    return f"{stamp}-{uuid.uuid4().hex}.json"


@dataclasses.dataclass(frozen=True)
class Layout:
    """The paths of a registry rooted at ``root`` (nothing is touched on creation)."""

    root: Path

    @property
    def marker(self) -> Path:
        return self.root / "plumax-registry.json"

    @property
    def journal(self) -> Path:
        return self.root / "index.jsonl"

    @property
    def legacy_index(self) -> Path:
        return self.root / "index.json"

    @property
    def lock(self) -> Path:
        return self.root / "registry.lock"

    @property
    def objects(self) -> Path:
        return self.root / "objects"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    def object_dir(self, h: str) -> Path:
        return self.objects / h

    # ---------------------------------------------------------------- recognition

    def is_registry(self) -> bool:
        """A marker, a journal, a version-1 index, an ``objects/`` folder or the writers'
        lock (a crash while the layout is being made leaves the lock and ``objects/``
        before the marker)."""
        return (
            self.marker.is_file()
            or self.journal.is_file()
            or self.legacy_index.is_file()
            or self.lock.is_file()
            or (self.objects.is_dir() and not self.objects.is_symlink())
        )

    def check_writable_here(self) -> None:
        """Raise unless ``root`` is absent, an empty folder or a registry."""
        root = self.root
        if not root.exists():
            if root.is_symlink():
                raise NotARegistryError(f"registry root {str(root)!r} is a dangling link")
            return
        if not root.is_dir():
            raise NotARegistryError(f"registry root {str(root)!r} exists and is not a folder")
        if self.is_registry():
            return
        if any(root.iterdir()):
            raise NotARegistryError(
                f"{str(root)!r} is a folder with other files in it, not a plumax artifact "
                "registry; refusing to write a registry into it (choose an empty or new folder)"
            )

    def foreign_root_entries(self) -> tuple[str, ...]:
        """Names in ``root`` that are not part of the registry (never touched by it)."""
        return tuple(sorted(p.name for p in self.root.iterdir() if p.name not in _OWN_ROOT_ENTRIES))

    # ---------------------------------------------------------------- making

    def _real_dir(self, path: Path, what: str) -> None:
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            raise NotARegistryError(
                f"registry {what} {str(path)!r} is not a real folder (a link or a file); the "
                "registry writes and deletes only inside folders it made"
            )

    def make(self) -> None:
        """Create the layout's folders and marker where missing; call under the lock
        (another writer's debris sweep must not see a half-made marker)."""
        for path, what in ((self.objects, "objects/"), (self.tmp, "tmp/")):
            self._real_dir(path, what)
            path.mkdir(exist_ok=True)
        fresh = not (self.journal.exists() or self.legacy_index.exists() or self.has_objects())
        if fresh:
            # an empty journal before the first object: a store killed after its object
            # was renamed into place leaves an unindexed object, not a "missing index".
            # A registry with objects and no journal is damaged, and stays so until a
            # repair; a version-1 index is migrated into the journal by the writer.
            fd = os.open(self.journal, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            os.fsync(fd)
            os.close(fd)
        if not self.marker.exists():
            text = json.dumps({"format": FORMAT, "version": VERSION, "created": now()}, indent=1)
            self.publish_file(self.marker, text.encode(), "marker")

    # ---------------------------------------------------------------- staging

    def staging_path(self, kind: str, ext: str = "") -> Path:
        """A fresh unique staging name in ``tmp/`` (nothing is created)."""
        return self.tmp / f".plumax-{kind}-{uuid.uuid4().hex}{ext}"

    def publish_file(self, target: Path, data: bytes, kind: str) -> None:
        """Write ``data`` to a staging file, then move it onto ``target`` atomically."""
        staging = self.staging_path(kind, target.suffix)
        try:
            write_bytes(staging, data)
            os.replace(staging, target)
        except BaseException:
            staging.unlink(missing_ok=True)
            raise
        fsync_dir(target.parent)

    def staging_entries(self) -> Iterator[Path]:
        """Entries of ``tmp/`` that a registry made for staging (never links)."""
        if self.tmp.is_symlink() or not self.tmp.is_dir():
            return
        for entry in self.tmp.iterdir():
            if is_staging_name(entry.name) and not entry.is_symlink():
                yield entry

    def remove_debris(self) -> tuple[str, ...]:
        """Remove staging entries left by interrupted writes; only call under the lock
        (writers hold it while they use ``tmp/``). Returns the names removed."""
        removed = []
        for entry in self.staging_entries():
            if entry.is_dir():
                shutil.rmtree(entry)  # does not follow links inside
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry.name)
        return tuple(removed)

    # ---------------------------------------------------------------- objects

    def object_names(self) -> Iterator[str]:
        """Names of the entries of ``objects/`` (hashes, unless something else was put there)."""
        if not self.objects.is_dir():
            return
        with os.scandir(self.objects) as entries:
            for entry in entries:
                yield entry.name

    def has_objects(self) -> bool:
        """True when ``objects/`` has at least one entry."""
        if not self.objects.is_dir():
            return False
        with os.scandir(self.objects) as entries:
            return next(entries, None) is not None

    def object_records(self, h: str) -> tuple[list[ArtifactRecord], list[str]]:
        """The records kept with object ``h`` (the first record in ``meta.json`` and the
        ``records/`` files, each once) and the problems met reading them."""
        folder = self.object_dir(h)
        found: dict[tuple, ArtifactRecord] = {}
        problems: list[str] = []
        try:
            meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
            rec = ArtifactRecord.from_dict(meta["first_record"])
            if rec.hash == h:
                found[rec.key] = rec
            else:
                problems.append(f"meta.json: first record of {rec.hash[:12]}, not of this object")
        except FileNotFoundError:
            problems.append("meta.json is missing")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            problems.append(f"meta.json: {err}")
        records = folder / "records"
        files = sorted(records.glob("*.json")) if records.is_dir() else []
        for path in files:
            try:
                rec = ArtifactRecord.from_dict(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
                problems.append(f"records/{path.name}: {err}")
                continue
            if rec.hash != h:
                problems.append(
                    f"records/{path.name}: a record of {rec.hash[:12]}, not of this one"
                )
                continue
            found.setdefault(rec.key, rec)
        return list(found.values()), problems

    def write_record_file(self, record: ArtifactRecord) -> Path:
        """Store ``record`` beside its object (``objects/<hash>/records/``)."""
        folder = self.object_dir(record.hash) / "records"
        folder.mkdir(exist_ok=True)
        target = folder / record_file_name(record)
        data = json.dumps(record.to_dict(), indent=1, sort_keys=True).encode()
        self.publish_file(target, data, "record")
        return target

    # ---------------------------------------------------------------- journal

    def append(self, records: Iterable[ArtifactRecord]) -> None:
        """Append records to the journal in one write, then fsync; on failure the
        journal is cut back to its previous length."""
        data = b"".join(record_line(r) for r in records)
        fd = os.open(self.journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            before = os.fstat(fd).st_size
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            except BaseException:
                os.ftruncate(fd, before)
                raise
        finally:
            os.close(fd)

    def truncate_torn(self, end: int) -> None:
        """Cut the journal back to ``end`` (dropping a torn final fragment)."""
        fd = os.open(self.journal, os.O_WRONLY)
        try:
            os.ftruncate(fd, end)
            os.fsync(fd)
        finally:
            os.close(fd)

    def replace_journal(self, records: Sequence[ArtifactRecord]) -> None:
        """Write a whole new journal and move it into place atomically."""
        self.publish_file(self.journal, b"".join(record_line(r) for r in records), "journal")

    def read_legacy(self) -> list[ArtifactRecord]:
        """The records of a version-1 ``index.json``.

        Raises:
            ValueError: the file is not a readable version-1 index.
        """
        data: Any = json.loads(self.legacy_index.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("format") != LEGACY_FORMAT:
            raise ValueError("not a plumax artifact index")
        return [ArtifactRecord.from_dict(r) for r in data["records"]]
