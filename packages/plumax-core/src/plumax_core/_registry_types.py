"""The value types of the artifact registry: roles, lineage, records, errors.

Everything here is plain data (frozen dataclasses, an enum, exceptions) with its own
validation; the on-disk layout is in `_registry_files` and the registry in `_registry`.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any, Literal

from ._enum import LowerStrEnum

__all__ = [
    "AmbiguousArtifactError",
    "ArtifactCorruptedError",
    "ArtifactLineage",
    "ArtifactNotFoundError",
    "ArtifactRecord",
    "LineageNode",
    "ModelRole",
    "NotARegistryError",
    "ReadOnlyRegistryError",
    "Replacement",
    "check_hash",
]

_HASH_RE = re.compile(r"[0-9a-f]{64}")

Status = Literal["ok", "missing", "corrupted", "cycle"]


# --------------------------------------------------------------------------- errors


class ArtifactNotFoundError(LookupError):
    """No artifact matches a name or hash (the message lists near matches)."""


class AmbiguousArtifactError(ArtifactNotFoundError):
    """A hash prefix matches more than one artifact."""


class ArtifactCorruptedError(ValueError):
    """A stored file does not match its content hash, or the index is unreadable.

    The message says which file; ``plumax registry check --repair`` (the API:
    `ArtifactRegistry.check` with ``repair=True``) rebuilds a damaged or deleted index from
    the objects' own records.
    """


class NotARegistryError(ValueError):
    """A folder opened as a registry is not one (and is not empty, or was opened read-only)."""


class ReadOnlyRegistryError(PermissionError):
    """A write (``store``, a repair) on a registry opened with ``mode="r"``."""


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
        return hash(self.key)

    @property
    def key(self) -> tuple[str, str, str, int]:
        """``(name, hash, created, version)``: what makes a record unique in a registry."""
        return (self.name, self.hash, self.created, self.version)

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
        """Rebuild a record from `to_dict` output; ``ValueError`` for a damaged one."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a record must be a JSON object, got {type(data).__name__}")
        for field in ("name", "created"):
            if not isinstance(data.get(field), str) or not data[field]:
                raise ValueError(f"record field {field!r} must be a non-empty string")
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
