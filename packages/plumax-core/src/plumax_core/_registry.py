"""A content-addressed artifact registry with lineage and staleness tracking.

Every artifact of the six-step cycle (oracle posteriors, emulators, flows, datasets) is
stored under the sha256 of its deterministic serialisation (`plumax_core._serialise`), with
a human name, a `ModelRole`, an `ArtifactLineage` (which artifacts it was built from) and
free tags. On-disk layout under ``root``::

    root/
      index.json                 ordered list of records (name, hash, role, created, tags,
                                 lineage, size, version); the registry's source of truth
      registry.lock              fcntl lock taken around every write
      objects/<hash>/payload.bin serialised pytree; sha256(payload.bin) == <hash>
      objects/<hash>/meta.json   immutable: hash, size, created, format, first record
      tmp/                       staging area; emptied when a registry is opened

Writes are atomic: files are written into ``tmp/``, flushed and fsync'ed, then moved into
place with `os.rename` / `os.replace`; a failed `store` leaves neither a half-written
object nor a changed index. The lock uses `fcntl`, so the registry is POSIX-only.
Reads re-hash ``payload.bin``, so a truncated or edited file is refused with
`ArtifactCorruptedError`.

!!! warning
    Loading unpickles the payload's skeleton: open only registries you trust.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import difflib
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from ._enum import LowerStrEnum
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
    "Replacement",
]

_HASH_RE = re.compile(r"[0-9a-f]{64}")
_HEX_RE = re.compile(r"[0-9a-fA-F]+")
_MIN_PREFIX = 8
_INDEX_FORMAT = "plumax-artifact-index"
_INDEX_VERSION = 1

Status = Literal["ok", "missing", "corrupted", "cycle"]


# --------------------------------------------------------------------------- errors


class ArtifactNotFoundError(LookupError):
    """No artifact matches a name or hash (the message lists near matches)."""


class AmbiguousArtifactError(ArtifactNotFoundError):
    """A hash prefix matches more than one artifact."""


class ArtifactCorruptedError(ValueError):
    """A stored file does not match its content hash (truncated or edited)."""


# --------------------------------------------------------------------------- small types


class ModelRole(LowerStrEnum):
    """What an artifact is for in the six-step cycle.

    * ``ORACLE`` — step 2: model-based inference on the simple model; validates the rest.
    * ``EMULATOR`` — step 3: a neural surrogate standing in for the forward model.
    * ``PRODUCTION`` — the artifact currently used to produce results.
    * ``PREDICTOR`` — step 5: an amortized predictor (observations -> posterior).
    * ``BASELINE`` — a reference kept for comparison (a previous version, a peer method).

    Values are lower-case strings (readable in JSON); the strings, in any case, are
    accepted wherever a role is asked for.
    """

    ORACLE = "oracle"
    EMULATOR = "emulator"
    PRODUCTION = "production"
    PREDICTOR = "predictor"
    BASELINE = "baseline"


def check_hash(value: object, argname: str) -> str:
    """Validate a full sha256 hex digest (64 hex characters); returns it lower-cased."""
    if not isinstance(value, str) or not _HASH_RE.fullmatch(value.lower()):
        raise ValueError(f"{argname} must be a 64-character hex sha256 string; got {value!r}")
    return value.lower()


def _json_roundtrip(value: Any, argname: str) -> Any:
    try:
        return json.loads(json.dumps(value, allow_nan=False, sort_keys=True))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{argname} must be JSON-serialisable ({err})") from None


@dataclasses.dataclass(frozen=True)
class ArtifactLineage:
    """Where an artifact came from.

    Attributes:
        oracle_hash: hash of the oracle (step 2) artifact this one was validated against.
        parent_hashes: hashes of the artifacts it was directly derived from.
        training_artifact: hash of the training data set / simulation bank.
        benchmark_results: JSON-serialisable results (e.g. a `CycleReport.to_dict()`;
            any object with a ``to_dict()`` method is converted).

    All hashes are full 64-character hex sha256 strings (see `ArtifactRegistry.resolve`
    to turn a name into one).
    """

    oracle_hash: str | None = None
    parent_hashes: tuple[str, ...] = ()
    training_artifact: str | None = None
    benchmark_results: Mapping[str, Any] | None = None

    def __post_init__(self):
        if self.oracle_hash is not None:
            object.__setattr__(self, "oracle_hash", check_hash(self.oracle_hash, "oracle_hash"))
        if self.training_artifact is not None:
            object.__setattr__(
                self,
                "training_artifact",
                check_hash(self.training_artifact, "training_artifact"),
            )
        if isinstance(self.parent_hashes, str):
            raise ValueError("parent_hashes must be a sequence of hashes, not a single string")
        parents = tuple(check_hash(h, "parent_hashes") for h in self.parent_hashes)
        object.__setattr__(self, "parent_hashes", parents)
        results = self.benchmark_results
        if results is not None:
            if hasattr(results, "to_dict"):
                results = results.to_dict()
            if not isinstance(results, Mapping):
                raise ValueError("benchmark_results must be a mapping (or have .to_dict())")
            object.__setattr__(
                self, "benchmark_results", _json_roundtrip(dict(results), "benchmark_results")
            )

    def __hash__(self) -> int:
        return hash(self.to_json())

    def upstream(self) -> Iterator[tuple[str, str]]:
        """Yield ``(relation, hash)`` for every referenced artifact."""
        if self.oracle_hash is not None:
            yield "oracle", self.oracle_hash
        for h in self.parent_hashes:
            yield "parent", h
        if self.training_artifact is not None:
            yield "training", self.training_artifact

    def to_dict(self) -> dict[str, Any]:
        return {
            "oracle_hash": self.oracle_hash,
            "parent_hashes": list(self.parent_hashes),
            "training_artifact": self.training_artifact,
            "benchmark_results": self.benchmark_results,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArtifactLineage:
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown ArtifactLineage fields: {sorted(unknown)}")
        return cls(**{**data, "parent_hashes": tuple(data.get("parent_hashes", ()))})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ArtifactLineage:
        return cls.from_dict(json.loads(text))


@dataclasses.dataclass(frozen=True)
class ArtifactRecord:
    """One entry of the registry index: an artifact stored under a name.

    Attributes:
        name: the human name; storing again under it makes a new version.
        hash: content hash (sha256 of the payload), 64 hex characters.
        role: the artifact's `ModelRole`.
        created: ISO-8601 UTC time the record was made.
        tags: free JSON-scalar tags.
        lineage: the artifact's `ArtifactLineage`.
        size: payload size, bytes.
        version: 1 for the first artifact stored under ``name``, then 2, 3, ...
    """

    name: str
    hash: str
    role: ModelRole
    created: str
    tags: Mapping[str, Any]
    lineage: ArtifactLineage
    size: int
    version: int

    def __hash__(self) -> int:
        return hash((self.name, self.hash, self.created, self.version))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "hash": self.hash,
            "role": self.role.value,
            "created": self.created,
            "tags": dict(self.tags),
            "lineage": self.lineage.to_dict(),
            "size": self.size,
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArtifactRecord:
        return cls(
            name=data["name"],
            hash=check_hash(data["hash"], "hash"),
            role=ModelRole.coerce(data["role"], "role"),
            created=data["created"],
            tags=dict(data.get("tags") or {}),
            lineage=ArtifactLineage.from_dict(data.get("lineage") or {}),
            size=int(data["size"]),
            version=int(data["version"]),
        )


@dataclasses.dataclass(frozen=True)
class LineageNode:
    """One artifact in an ancestry tree returned by `ArtifactRegistry.lineage`.

    Attributes:
        hash: the artifact's hash.
        relation: how it relates to its child: ``"self"`` (the root), ``"oracle"``,
            ``"parent"`` or ``"training"``.
        status: ``"ok"``; ``"missing"`` (not in the index, or its files are gone);
            ``"corrupted"`` (payload does not match the hash); ``"cycle"`` (already on the
            path, not expanded again).
        name, role, created: from the artifact's latest record, ``None`` if unknown.
        replaced_by: hash of a newer artifact stored under the same name, else ``None``.
        parents: the nodes this artifact was built from.
    """

    hash: str
    relation: str
    status: Status
    name: str | None = None
    role: ModelRole | None = None
    created: str | None = None
    replaced_by: str | None = None
    parents: tuple[LineageNode, ...] = ()

    def walk(self) -> Iterator[LineageNode]:
        """Depth-first iteration over this node and all its ancestors."""
        yield self
        for p in self.parents:
            yield from p.walk()

    @property
    def problems(self) -> tuple[LineageNode, ...]:
        """Nodes whose status is not ``"ok"``, each artifact once (first occurrence)."""
        found: dict[str, LineageNode] = {}
        for n in self.walk():
            if n.status != "ok":
                found.setdefault(n.hash, n)
        return tuple(found.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "hash": self.hash,
            "relation": self.relation,
            "status": self.status,
            "name": self.name,
            "role": None if self.role is None else self.role.value,
            "created": self.created,
            "replaced_by": self.replaced_by,
            "parents": [p.to_dict() for p in self.parents],
        }

    def _lines(self, depth: int, shown: set[str]) -> Iterator[str]:
        extra = f" replaced by {self.replaced_by[:12]}" if self.replaced_by else ""
        role = self.role.value if self.role else "?"
        line = (
            f"{'  ' * depth}{self.relation}: {self.name or '?'} [{role}] "
            f"{self.hash[:12]} ({self.status}){extra}"
        )
        if self.parents and self.hash in shown:
            yield f"{line} [ancestry shown above]"
            return
        yield line
        shown.add(self.hash)
        for p in self.parents:
            yield from p._lines(depth + 1, shown)

    def __str__(self) -> str:
        """An indented tree; an artifact reached twice has its ancestry printed once."""
        return "\n".join(self._lines(0, set()))


@dataclasses.dataclass(frozen=True)
class Replacement:
    """An upstream artifact that has been superseded under its name.

    Attributes:
        hash: the upstream artifact the descendant was built from.
        name: the name under which a newer artifact was stored.
        replaced_by: hash of the newest artifact under ``name``.
        path: relations from the queried artifact to this upstream, e.g.
            ``("parent", "oracle")``.
    """

    hash: str
    name: str
    replaced_by: str
    path: tuple[str, ...]


# --------------------------------------------------------------------------- file helpers


def _write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file and force it to disk (flush + fsync)."""
    with open(path, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


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


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds")


def _check_tags(tags: Mapping[str, Any] | None) -> dict[str, Any]:
    if tags is None:
        return {}
    if not isinstance(tags, Mapping):
        raise ValueError(f"tags must be a mapping of str to JSON scalars; got {type(tags)}")
    out = {}
    for k, v in tags.items():
        if not isinstance(k, str) or not k:
            raise ValueError(f"tags keys must be non-empty strings; got {k!r}")
        if v is not None and not isinstance(v, str | int | float | bool):
            raise ValueError(f"tags[{k!r}] must be a str, int, float, bool or None; got {v!r}")
        out[k] = v
    return _json_roundtrip(out, "tags")


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"name must be a non-empty string; got {name!r}")
    if any(c in name for c in "\n\r\t\x00"):
        raise ValueError(f"name must not contain control characters; got {name!r}")
    if len(name) >= _MIN_PREFIX and _HEX_RE.fullmatch(name):
        raise ValueError(f"name {name!r} looks like a hash; choose a name that is not all hex")
    return name


# --------------------------------------------------------------------------- registry


class ArtifactRegistry:
    """Content-addressed store of pytree artifacts, with lineage (see module docstring).

    Args:
        root: directory of the registry; created if absent.

    Example:
        ```python
        reg = ArtifactRegistry("artifacts")
        h = reg.store(mlp, "plume-emulator", ModelRole.EMULATOR,
                      lineage=ArtifactLineage(oracle_hash=oracle_h))
        mlp2 = reg.load("plume-emulator")        # latest version under that name
        reg.stale(h)                             # True once a new oracle is stored
        ```
    """

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        self._objects = self.root / "objects"
        self._tmp = self.root / "tmp"
        self._index_path = self.root / "index.json"
        self._lock_path = self.root / "registry.lock"
        self._objects.mkdir(parents=True, exist_ok=True)
        self._tmp.mkdir(exist_ok=True)
        with self._locked():
            # Anything left in tmp/ is debris of an interrupted write: writers hold the
            # lock while they use tmp/, so nobody is using it now.
            for entry in self._tmp.iterdir():
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)

    def __repr__(self) -> str:
        return f"ArtifactRegistry({str(self.root)!r})"

    # ------------------------------------------------------------------ internals

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self._lock_path, "a+b") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def _read_index(self) -> list[ArtifactRecord]:
        try:
            text = self._index_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        try:
            data = json.loads(text)
            if data.get("format") != _INDEX_FORMAT:
                raise ValueError("not a plumax artifact index")
            return [ArtifactRecord.from_dict(r) for r in data["records"]]
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise ArtifactCorruptedError(
                f"registry index {self._index_path} is unreadable ({err})"
            ) from err

    def _write_index(self, records: Sequence[ArtifactRecord]) -> None:
        payload = {
            "format": _INDEX_FORMAT,
            "version": _INDEX_VERSION,
            "records": [r.to_dict() for r in records],
        }
        data = json.dumps(payload, indent=1, sort_keys=True).encode()
        tmp = self._tmp / f"index-{os.getpid()}-{uuid.uuid4().hex}.json"
        try:
            _write_bytes(tmp, data)
            os.replace(tmp, self._index_path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(self.root)

    def _object_dir(self, h: str) -> Path:
        return self._objects / h

    def path(self, name_or_hash: str) -> Path:
        """Path of an artifact's ``payload.bin``."""
        return self._object_dir(self.resolve(name_or_hash)) / "payload.bin"

    def _status(self, h: str) -> Status:
        payload = self._object_dir(h) / "payload.bin"
        try:
            digest = hashlib.sha256(payload.read_bytes()).hexdigest()
        except FileNotFoundError:
            return "missing"
        return "ok" if digest == h else "corrupted"

    def _remove_dir(self, path: Path) -> None:
        """Move a directory out of the way atomically, then delete it."""
        trash = Path(tempfile.mkdtemp(prefix="trash-", dir=self._tmp))
        os.rename(path, trash / "obj")
        shutil.rmtree(trash, ignore_errors=True)

    def _ensure_object(self, h: str, data: bytes, meta: Mapping[str, Any]) -> bool:
        """Make ``objects/<h>`` hold ``data``; returns True if this call created it."""
        target = self._object_dir(h)
        if target.exists():
            if self._status(h) == "ok":
                return False
            self._remove_dir(target)  # damaged copy: replace it with the good bytes
        staging = Path(tempfile.mkdtemp(prefix="store-", dir=self._tmp))
        try:
            _write_bytes(staging / "payload.bin", data)
            _write_bytes(staging / "meta.json", json.dumps(meta, indent=1).encode())
            _fsync_dir(staging)
            os.rename(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        _fsync_dir(self._objects)
        return True

    def _near_matches(self, key: str, records: Sequence[ArtifactRecord]) -> str:
        names = sorted({r.name for r in records})
        hashes = sorted({r.hash for r in records})
        near = difflib.get_close_matches(key, names, n=5, cutoff=0.5)
        low = key.lower()
        near += [h for h in hashes if low[:4] and h.startswith(low[:4])][:5]
        if not near:
            return ""
        return " Did you mean: " + ", ".join(near) + "?"

    def _resolve_record(self, key: str, records: Sequence[ArtifactRecord]) -> ArtifactRecord:
        if not isinstance(key, str) or not key:
            raise TypeError(f"name_or_hash must be a non-empty string; got {key!r}")
        by_name = [r for r in records if r.name == key]
        if by_name:
            return by_name[-1]
        low = key.lower()
        if _HEX_RE.fullmatch(key) and _MIN_PREFIX <= len(key) <= 64:
            hits = sorted({r.hash for r in records if r.hash.startswith(low)})
            if len(hits) > 1:
                raise AmbiguousArtifactError(
                    f"hash prefix {key!r} matches {len(hits)} artifacts: {', '.join(hits)}"
                )
            if hits:
                return [r for r in records if r.hash == hits[0]][-1]
        hint = ""
        if _HEX_RE.fullmatch(key) and len(key) < _MIN_PREFIX:
            hint = f" (hash prefixes need at least {_MIN_PREFIX} characters)"
        raise ArtifactNotFoundError(
            f"no artifact named or hashed {key!r} in {self.root}{hint}."
            + self._near_matches(key, records)
        )

    # ------------------------------------------------------------------ public API

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

        Storing the same object twice stores one payload; a second record is added only
        when the name (or role, lineage, tags) differs from that name's latest record.
        """
        name = _check_name(name)
        role = ModelRole.coerce(role, "role")
        if lineage is None:
            lineage = ArtifactLineage()
        elif isinstance(lineage, Mapping):
            lineage = ArtifactLineage.from_dict(lineage)
        elif not isinstance(lineage, ArtifactLineage):
            raise ValueError(f"lineage must be an ArtifactLineage or None; got {type(lineage)}")
        tags = _check_tags(tags)
        data = serialise(obj)
        h = hashlib.sha256(data).hexdigest()
        if any(up == h for _, up in lineage.upstream()):
            raise ValueError(f"lineage of {name!r} refers to the artifact itself ({h})")

        with self._locked():
            records = self._read_index()
            previous = [r for r in records if r.name == name]
            latest = previous[-1] if previous else None
            unchanged = (
                latest is not None
                and latest.hash == h
                and latest.role == role
                and latest.lineage == lineage
                and dict(latest.tags) == tags
            )
            record = ArtifactRecord(
                name=name,
                hash=h,
                role=role,
                created=_now(),
                tags=tags,
                lineage=lineage,
                size=len(data),
                version=len(previous) + 1,
            )
            meta = {
                "hash": h,
                "size": len(data),
                "created": record.created,
                "serialisation": "plumax-pytree/1",
                "first_record": record.to_dict(),
            }
            created = self._ensure_object(h, data, meta)
            if unchanged:
                return h  # idempotent (a damaged payload was repaired above)
            try:
                self._write_index([*records, record])
            except BaseException:
                if created:
                    self._remove_dir(self._object_dir(h))
                raise
        return h

    def resolve(self, name_or_hash: str) -> str:
        """The full hash of a name (its latest version), a full hash or a unique prefix."""
        return self._resolve_record(name_or_hash, self._read_index()).hash

    def info(self, name_or_hash: str) -> ArtifactRecord:
        """The record of a name's latest version, or the latest record of a hash."""
        return self._resolve_record(name_or_hash, self._read_index())

    def list(
        self, name: str | None = None, role: ModelRole | str | None = None
    ) -> tuple[ArtifactRecord, ...]:
        """All records in the order they were stored, optionally filtered."""
        records = self._read_index()
        if name is not None:
            records = [r for r in records if r.name == name]
        if role is not None:
            want = ModelRole.coerce(role, "role")
            records = [r for r in records if r.role == want]
        return tuple(records)

    ls = list

    def __contains__(self, name_or_hash: object) -> bool:
        try:
            self._resolve_record(name_or_hash, self._read_index())  # type: ignore[arg-type]
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
        record = self._resolve_record(name_or_hash, self._read_index())
        path = self._object_dir(record.hash) / "payload.bin"
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

    def lineage(self, name_or_hash: str) -> LineageNode:
        """The ancestry tree of an artifact; damaged upstreams are reported, not raised.

        Each node carries a status: ``"ok"``, ``"missing"`` (not indexed, or its files were
        deleted), ``"corrupted"`` (payload fails its hash) or ``"cycle"``.
        """
        records = self._read_index()
        root = self._resolve_record(name_or_hash, records)
        latest_by_hash = {r.hash: r for r in records}
        latest_by_name = {r.name: r.hash for r in records}

        def node(h: str, relation: str, path: frozenset[str]) -> LineageNode:
            rec = latest_by_hash.get(h)
            if rec is None:
                return LineageNode(hash=h, relation=relation, status="missing")
            common = {
                "hash": h,
                "relation": relation,
                "name": rec.name,
                "role": rec.role,
                "created": rec.created,
                "replaced_by": self._replaced_by(h, records, latest_by_name),
            }
            if h in path:
                return LineageNode(status="cycle", **common)
            parents = tuple(node(up, rel, path | {h}) for rel, up in rec.lineage.upstream())
            return LineageNode(status=self._status(h), parents=parents, **common)

        return node(root.hash, "self", frozenset())

    @staticmethod
    def _replaced_by(
        h: str, records: Sequence[ArtifactRecord], latest_by_name: Mapping[str, str]
    ) -> str | None:
        for name in dict.fromkeys(r.name for r in records if r.hash == h):
            if latest_by_name[name] != h:
                return latest_by_name[name]
        return None

    def replaced_ancestors(self, name_or_hash: str) -> tuple[Replacement, ...]:
        """Upstream artifacts (direct or transitive) superseded under their names."""
        records = self._read_index()
        root = self._resolve_record(name_or_hash, records)
        latest_by_hash = {r.hash: r for r in records}
        latest_by_name = {r.name: r.hash for r in records}
        found: dict[tuple[str, str], Replacement] = {}

        def visit(h: str, path: tuple[str, ...], seen: frozenset[str]) -> None:
            rec = latest_by_hash.get(h)
            if rec is None or h in seen:
                return
            if path:
                for name in dict.fromkeys(r.name for r in records if r.hash == h):
                    newest = latest_by_name[name]
                    if newest != h and (h, name) not in found:
                        found[(h, name)] = Replacement(h, name, newest, path)
            for rel, up in rec.lineage.upstream():
                visit(up, (*path, rel), seen | {h})

        visit(root.hash, (), frozenset())
        return tuple(found.values())

    def stale(self, name_or_hash: str) -> bool:
        """True when any upstream artifact (oracle, parents, training data, recursively)
        has been replaced by a newer artifact stored under the same name."""
        return bool(self.replaced_ancestors(name_or_hash))
