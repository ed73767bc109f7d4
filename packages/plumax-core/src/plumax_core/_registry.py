"""A content-addressed artifact registry with lineage and staleness tracking.

Every artifact of the six-step cycle (oracle posteriors, emulators, flows, datasets) is
stored under the sha256 of its deterministic serialisation (`plumax_core._serialise`), with
a human name, a `ModelRole`, an `ArtifactLineage` (which artifacts it was built from) and
free tags. The on-disk layout is described in `plumax_core._registry_files`: objects
under ``objects/<hash>/``, each keeping its own records, and an append-only journal
``index.jsonl`` indexing them.

Guarantees:

* **Atomic writes.** An object is staged in ``tmp/`` and renamed into place; a record is
  appended to the journal in one write and fsync'ed. A store killed at any moment leaves
  the registry readable: a half-written journal line is ignored by readers and cut by the
  next writer; an object stored but not yet indexed is found by `check` and indexed by
  ``check(repair=True)``.
* **Store cost does not grow with the registry.** Writers append one line; a registry
  object reads only what other writers appended since its last read.
* **Reads change nothing.** ``mode="r"`` opens an existing registry without creating,
  locking or deleting anything (it works on a read-only folder); the default
  ``mode="a"`` creates the layout at the first store, not when opened.
* **Only its own files are deleted.** Staging entries carry recognisable unique names;
  debris of interrupted writes is removed under the writers' lock, never through a link;
  anything else in the folder is left alone (`check` lists it as ``foreign``).
* **Damage is detected.** Reads re-hash ``payload.bin`` (`ArtifactCorruptedError`);
  `check` verifies every object and rebuilds the index from the objects' own records.

Writers serialise on an ``fcntl`` lock, so the registry is POSIX-only.

!!! warning
    Loading unpickles the payload's skeleton: open only registries you trust.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from . import _registry_files as files
from ._registry_check import RegistryCheck, records_without_file, scan
from ._registry_index import RecordIndex, check_name, check_tags
from ._registry_types import (
    AmbiguousArtifactError,
    ArtifactCorruptedError,
    ArtifactLineage,
    ArtifactNotFoundError,
    ArtifactRecord,
    LineageNode,
    ModelRole,
    NotARegistryError,
    ReadOnlyRegistryError,
    Replacement,
    Status,
    check_hash,
)
from ._serialise import SerialisationError, deserialise, serialise

__all__ = [
    "AmbiguousArtifactError",
    "ArtifactCorruptedError",
    "ArtifactLineage",
    "ArtifactNotFoundError",
    "ArtifactRecord",
    "ArtifactRegistry",
    "LineageNode",
    "ModelRole",
    "NotARegistryError",
    "ReadOnlyRegistryError",
    "RegistryCheck",
    "Replacement",
    "check_hash",
]

_REPAIR_HINT = "run `plumax registry check --repair` (ArtifactRegistry.check(repair=True))"


class ArtifactRegistry:
    """Content-addressed store of pytree artifacts, with lineage (see module docstring).

    Args:
        root: folder of the registry.
        mode: ``"a"`` (default) to read and write: the folder may be absent or empty (the
            layout is made at the first `store`) or an existing registry; a folder holding
            anything else is refused. ``"r"`` to read an existing registry only: nothing
            is created, locked or deleted, and `store` raises `ReadOnlyRegistryError`.

    Raises:
        NotARegistryError: ``mode="r"`` on a folder that is not a registry, or ``"a"`` on
            a folder that holds other files.

    Example:
        ```python
        reg = ArtifactRegistry("artifacts")
        h = reg.store(mlp, "plume-emulator", ModelRole.EMULATOR,
                      lineage=ArtifactLineage(oracle_hash=oracle_h))
        mlp2 = reg.load("plume-emulator")        # latest version under that name
        reg.stale(h)                             # True once a new oracle is stored
        ArtifactRegistry("artifacts", mode="r").check()   # verify every object
        ```
    """

    def __init__(self, root: str | os.PathLike[str], *, mode: Literal["r", "a"] = "a"):
        if mode not in ("r", "a"):
            raise ValueError(f"mode must be 'r' (read) or 'a' (read and write); got {mode!r}")
        self.root = Path(root)
        self.mode = mode
        self._layout = files.Layout(self.root)
        self._guard = threading.RLock()
        self._index = RecordIndex()
        if mode == "r":
            if not self.root.is_dir():
                raise NotARegistryError(f"no registry at {str(self.root)!r}: no such folder")
            if not self._layout.is_registry():
                raise NotARegistryError(
                    f"{str(self.root)!r} is not a plumax artifact registry (it has no "
                    "plumax-registry.json, index.jsonl or objects/ folder)"
                )
        else:
            self._layout.check_writable_here()

    def __repr__(self) -> str:
        return f"ArtifactRegistry({str(self.root)!r}, mode={self.mode!r})"

    # ------------------------------------------------------------------ reading the index

    def _refresh(self) -> RecordIndex:
        """Bring the cached index up to date with the files (reads only what is new)."""
        lay = self._layout
        with self._guard:
            try:
                f = open(lay.journal, "rb")
            except FileNotFoundError:
                return self._refresh_without_journal()
            with f:
                st = os.fstat(f.fileno())
                source = ("journal", st.st_dev, st.st_ino)
                index = self._index
                if index.source != source or st.st_size < index.end:
                    index = RecordIndex(source=source)
                if st.st_size > index.end or index is not self._index:
                    read = files.read_journal_file(f, index.end, index.lines + 1)
                    if read.bad_lines:
                        line, problem = read.bad_lines[0]
                        raise ArtifactCorruptedError(
                            f"registry index {lay.journal} line {line} is not a record "
                            f"({problem}); {_REPAIR_HINT}"
                        )
                    index.add(read.records)
                    index.end, index.lines = read.end, index.lines + read.lines
            self._index = index
            return index

    def _read_legacy(self) -> list[ArtifactRecord]:
        try:
            return self._layout.read_legacy()
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise ArtifactCorruptedError(
                f"registry index {self._layout.legacy_index} is unreadable ({err}); {_REPAIR_HINT}"
            ) from err

    def _refresh_without_journal(self) -> RecordIndex:
        lay = self._layout
        if lay.legacy_index.is_file():
            st = lay.legacy_index.stat()
            source = ("legacy", st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
            if self._index.source != source:
                index = RecordIndex(source=source)
                index.add(self._read_legacy())
                self._index = index
            return self._index
        if lay.has_objects():
            raise ArtifactCorruptedError(
                f"registry index {lay.journal} is missing while objects are stored in "
                f"{lay.objects}; {_REPAIR_HINT}"
            )
        self._index = RecordIndex()
        return self._index

    # ------------------------------------------------------------------ writing

    @contextlib.contextmanager
    def _writing(self, *, strict: bool = True) -> Iterator[tuple[str, ...]]:
        """Make the layout, take the writers' lock, clear debris (yields the names
        removed), migrate a version-1 index and cut a torn journal tail; ``strict=False``
        (a repair) skips the last two."""
        if self.mode == "r":
            raise ReadOnlyRegistryError(
                f"registry {str(self.root)!r} was opened read-only (mode='r')"
            )
        lay = self._layout
        with self._guard:
            lay.check_writable_here()
            self.root.mkdir(parents=True, exist_ok=True)
            with open(lay.lock, "a+b") as lock:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
                try:
                    lay.make()
                    removed = lay.remove_debris()  # writers hold the lock while they stage
                    if strict:
                        self._migrate_legacy()
                        index = self._refresh()
                        if lay.journal.is_file() and lay.journal.stat().st_size > index.end:
                            lay.truncate_torn(index.end)
                    yield removed
                finally:
                    fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _migrate_legacy(self) -> None:
        """Turn a version-1 ``index.json`` into the journal (records kept beside objects)."""
        lay = self._layout
        if not lay.legacy_index.is_file():
            return
        if not lay.journal.is_file():
            records = self._read_legacy()
            self._keep_beside_objects(records)
            lay.replace_journal(records)
        lay.legacy_index.unlink()  # superseded by the journal, which now holds its records

    def _keep_beside_objects(self, records: list[ArtifactRecord]) -> None:
        """Write record files for records whose objects do not keep them yet."""
        by_hash: dict[str, list[ArtifactRecord]] = {}
        for r in records:
            by_hash.setdefault(r.hash, []).append(r)
        for h, recs in by_hash.items():
            if not self._layout.object_dir(h).is_dir():
                continue
            kept = {k.key for k in self._layout.object_records(h)[0]}
            for r in recs:
                if r.key not in kept:
                    self._layout.write_record_file(r)

    def _ensure_object(self, h: str, data: bytes, record: ArtifactRecord) -> bool:
        """Make ``objects/<h>`` hold ``data`` (with ``record`` beside it when new);
        returns True if this call created the object folder."""
        lay = self._layout
        target = lay.object_dir(h)
        meta = {
            "hash": h,
            "size": len(data),
            "created": record.created,
            "serialisation": "plumax-pytree/1",
            "first_record": record.to_dict(),
        }
        meta_bytes = json.dumps(meta, indent=1).encode()
        if target.is_symlink() or (target.exists() and not target.is_dir()):
            raise ArtifactCorruptedError(
                f"{target} is a link or a file, not an object folder the registry made; "
                "move it away and store again"
            )
        if target.is_dir():  # damaged or partial copy: replace just the bad files
            if self._status(h) != "ok":
                lay.publish_file(target / "payload.bin", data, "payload")
            if not (target / "meta.json").is_file():
                lay.publish_file(target / "meta.json", meta_bytes, "meta")
            return False
        staging = lay.staging_path("store")
        os.mkdir(staging)
        try:
            files.write_bytes(staging / "payload.bin", data)
            files.write_bytes(staging / "meta.json", meta_bytes)
            os.mkdir(staging / "records")
            record_bytes = json.dumps(record.to_dict(), indent=1, sort_keys=True).encode()
            files.write_bytes(staging / "records" / files.record_file_name(record), record_bytes)
            files.fsync_dir(staging)
            os.rename(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        files.fsync_dir(lay.objects)
        return True

    def _discard_object(self, h: str) -> None:
        """Remove an object folder this call created (moved out of sight first)."""
        trash = self._layout.staging_path("store")
        os.rename(self._layout.object_dir(h), trash)
        shutil.rmtree(trash, ignore_errors=True)

    def store(
        self,
        obj: Any,
        name: str,
        role: ModelRole | str,
        lineage: ArtifactLineage | Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> str:
        """Store a pytree under ``name`` and return its content hash.

        Args:
            obj: any pytree `plumax_core._serialise.serialise` accepts.
            name: human name; a new store under an existing name makes a new version,
                and marks everything built on the previous version as stale.
            role: a `ModelRole` (or its string).
            lineage: the artifacts ``obj`` was built from.
            tags: free tags, a mapping of str to JSON scalars.

        Returns:
            The 64-character hex sha256 of the serialised object.

        Raises:
            ReadOnlyRegistryError: the registry was opened with ``mode="r"``.

        Storing the same object twice stores one payload; a second record is added only
        when the name (or role, lineage, tags) differs from that name's latest record.
        A damaged payload of the same hash is replaced by the good bytes.
        """
        name = check_name(name)
        role = ModelRole.coerce(role, "role")
        if lineage is None:
            lineage = ArtifactLineage()
        elif isinstance(lineage, Mapping):
            lineage = ArtifactLineage.from_dict(lineage)
        elif not isinstance(lineage, ArtifactLineage):
            raise ValueError(f"lineage must be an ArtifactLineage or None; got {type(lineage)}")
        tags = check_tags(tags)
        data = serialise(obj)
        h = hashlib.sha256(data).hexdigest()
        if any(up == h for _, up in lineage.upstream()):
            raise ValueError(f"lineage of {name!r} refers to the artifact itself ({h})")

        with self._writing():
            previous = self._index.by_name.get(name, [])
            latest = previous[-1] if previous else None
            if (
                latest is not None
                and latest.hash == h
                and latest.role == role
                and latest.lineage == lineage
                and dict(latest.tags) == tags
            ):
                self._ensure_object(h, data, latest)  # idempotent; repairs a bad payload
                return h
            record = ArtifactRecord(
                name=name,
                hash=h,
                role=role,
                created=files.now(),
                tags=tags,
                lineage=lineage,
                size=len(data),
                version=len(previous) + 1,
            )
            created = self._ensure_object(h, data, record)
            record_file = None
            try:
                if not created:
                    record_file = self._layout.write_record_file(record)
                self._layout.append([record])
            except BaseException:
                if record_file is not None:
                    record_file.unlink(missing_ok=True)
                if created:
                    self._discard_object(h)
                raise
            self._refresh()
        return h

    # ------------------------------------------------------------------ check and repair

    def check(self, *, repair: bool = False, verify: bool = True) -> RegistryCheck:
        """Verify every object and compare the index with the objects' own records.

        Args:
            repair: also fix what can be fixed: remove staging debris, rebuild the index
                from the objects' records (a deleted, truncated or edited index; records
                stored but not indexed), migrate a version-1 index. Payloads that are
                corrupted or missing cannot be repaired (their bytes are gone) and stay
                reported; nothing that is not the registry's own is touched.
            verify: re-hash every payload (reads every byte); False checks presence only.

        Returns:
            A `RegistryCheck`; ``.ok`` is True when nothing is wrong (after the repair).

        Raises:
            ReadOnlyRegistryError: ``repair=True`` on a registry opened with ``mode="r"``.
        """
        lay = self._layout
        if not repair:
            if not self.root.is_dir():
                return RegistryCheck(root=str(self.root), index="empty", records=0, objects=0)
            return scan(lay, verify=verify).report
        actions: list[str] = []
        with self._writing(strict=False) as removed:
            actions += [f"removed staging debris tmp/{name}" for name in removed]
            found = scan(lay, verify=verify)
            r = found.report
            if r.index in ("missing", "legacy") or r.bad_lines or r.torn_bytes or r.unindexed:
                rebuilt = found.rebuilt_index()
                for record in records_without_file(found, rebuilt):
                    lay.write_record_file(record)
                lay.replace_journal(rebuilt)
                actions.append(
                    f"index rebuilt: {len(rebuilt)} record(s) ({len(r.unindexed)} restored, "
                    f"{len(r.bad_lines)} unreadable line(s) and {r.torn_bytes} torn byte(s) "
                    "dropped)"
                )
            if lay.legacy_index.is_file() and r.index != "unreadable":
                lay.legacy_index.unlink()
                actions.append("version-1 index.json migrated to index.jsonl")
            self._index = RecordIndex()
        after = scan(lay, verify=verify).report
        return dataclasses.replace(after, repaired=tuple(actions))

    # ------------------------------------------------------------------ lookups

    def path(self, name_or_hash: str) -> Path:
        """Path of an artifact's ``payload.bin``."""
        return self._layout.object_dir(self.resolve(name_or_hash)) / "payload.bin"

    def _status(self, h: str) -> Status:
        payload = self._layout.object_dir(h) / "payload.bin"
        try:
            digest = hashlib.sha256(payload.read_bytes()).hexdigest()
        except (FileNotFoundError, NotADirectoryError):
            return "missing"
        return "ok" if digest == h else "corrupted"

    def _resolve_record(self, key: str) -> ArtifactRecord:
        return self._refresh().resolve(key, str(self.root))

    def resolve(self, name_or_hash: str) -> str:
        """The full hash of a name (its latest version), a full hash or a unique prefix."""
        return self._resolve_record(name_or_hash).hash

    def info(self, name_or_hash: str) -> ArtifactRecord:
        """The record of a name's latest version, or the latest record of a hash."""
        return self._resolve_record(name_or_hash)

    def list(
        self, name: str | None = None, role: ModelRole | str | None = None
    ) -> tuple[ArtifactRecord, ...]:
        """All records in the order they were stored, optionally filtered."""
        index = self._refresh()
        records = index.by_name.get(name, []) if name is not None else index.records
        if role is not None:
            want = ModelRole.coerce(role, "role")
            records = [r for r in records if r.role == want]
        return tuple(records)

    ls = list

    def __contains__(self, name_or_hash: object) -> bool:
        try:
            self._resolve_record(name_or_hash)  # type: ignore[arg-type]
        except (ArtifactNotFoundError, TypeError):
            return False
        return True

    def verify(self, name_or_hash: str) -> Status:
        """Re-hash an artifact's payload: ``"ok"``, ``"missing"`` or ``"corrupted"``."""
        return self._status(self.resolve(name_or_hash))

    def load(self, name_or_hash: str) -> Any:
        """Load an artifact (a name gives its latest version).

        Raises:
            ArtifactNotFoundError: no such name/hash, or the payload file is gone.
            ArtifactCorruptedError: the payload does not hash to the artifact's hash.
        """
        record = self._resolve_record(name_or_hash)
        path = self._layout.object_dir(record.hash) / "payload.bin"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ArtifactNotFoundError(
                f"artifact {record.name!r} ({record.hash}) is indexed but its payload {path} "
                "is missing"
            ) from None
        digest = hashlib.sha256(data).hexdigest()
        if digest != record.hash:
            raise ArtifactCorruptedError(
                f"artifact {record.name!r} is corrupted: {path} hashes to {digest}, expected "
                f"{record.hash} (file truncated or edited; {len(data)} bytes, expected "
                f"{record.size})"
            )
        try:
            return deserialise(data)
        except SerialisationError as err:
            raise ArtifactCorruptedError(
                f"artifact {record.name!r} at {path} cannot be decoded: {err}"
            ) from err

    # ------------------------------------------------------------------ lineage

    def lineage(self, name_or_hash: str) -> LineageNode:
        """The ancestry tree of an artifact; damaged upstreams are reported, not raised.

        Each node carries a status: ``"ok"``, ``"missing"`` (not indexed, or its files were
        deleted), ``"corrupted"`` (payload fails its hash) or ``"cycle"``.
        """
        h = self._resolve_record(name_or_hash).hash
        return self._index.lineage(h, self._status)

    def replaced_ancestors(self, name_or_hash: str) -> tuple[Replacement, ...]:
        """Upstream artifacts (direct or transitive) superseded under their names."""
        h = self._resolve_record(name_or_hash).hash
        return self._index.replaced_ancestors(h)

    def stale(self, name_or_hash: str) -> bool:
        """True when any upstream artifact (oracle, parents, training data, recursively)
        has been replaced by a newer artifact stored under the same name."""
        return bool(self.replaced_ancestors(name_or_hash))
