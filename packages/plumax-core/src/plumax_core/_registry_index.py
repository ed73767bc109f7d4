"""The artifact registry's index in memory: lookups by name, hash and prefix, lineage.

`RecordIndex` holds the records read from a registry's journal, in store order, with
the maps every query needs (latest record per name and per hash), so that a lookup, a
lineage walk or a staleness query never re-reads the files. It knows nothing about disk:
`_registry.ArtifactRegistry` fills it and passes a payload-status function in.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._registry_types import (
    AmbiguousArtifactError,
    ArtifactNotFoundError,
    ArtifactRecord,
    LineageNode,
    Replacement,
    Status,
)

__all__ = ["MIN_PREFIX", "RecordIndex", "check_name", "check_tags"]

_HEX_RE = re.compile(r"[0-9a-fA-F]+")
#: Shortest hash prefix accepted in place of a full hash.
MIN_PREFIX = 8


def check_tags(tags: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate free tags: a mapping of non-empty str to JSON scalars."""
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
    try:
        return json.loads(json.dumps(out, allow_nan=False, sort_keys=True))
    except ValueError as err:
        raise ValueError(f"tags must be JSON-serialisable ({err})") from None


def check_name(name: object) -> str:
    """Validate an artifact name: non-empty, no control characters, not all hex."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"name must be a non-empty string; got {name!r}")
    if any(c in name for c in "\n\r\t\x00"):
        raise ValueError(f"name must not contain control characters; got {name!r}")
    if len(name) >= MIN_PREFIX and _HEX_RE.fullmatch(name):
        raise ValueError(f"name {name!r} looks like a hash; choose a name that is not all hex")
    return name


@dataclasses.dataclass
class RecordIndex:
    """Records in store order plus lookup maps; ``source``/``end``/``lines`` say which
    journal file (device, inode) was read and how far."""

    source: tuple[Any, ...] | None = None
    end: int = 0
    lines: int = 0
    records: list[ArtifactRecord] = dataclasses.field(default_factory=list)
    by_name: dict[str, list[ArtifactRecord]] = dataclasses.field(default_factory=dict)
    latest_by_hash: dict[str, ArtifactRecord] = dataclasses.field(default_factory=dict)
    names_by_hash: dict[str, dict[str, None]] = dataclasses.field(default_factory=dict)

    def add(self, records: Iterable[ArtifactRecord]) -> None:
        """Append records (in store order)."""
        for r in records:
            self.records.append(r)
            self.by_name.setdefault(r.name, []).append(r)
            self.latest_by_hash[r.hash] = r
            self.names_by_hash.setdefault(r.hash, {})[r.name] = None

    def latest_hash(self, name: str) -> str:
        return self.by_name[name][-1].hash

    # ------------------------------------------------------------------ lookups

    def _near_matches(self, key: str) -> str:
        near = difflib.get_close_matches(key, sorted(self.by_name), n=5, cutoff=0.5)
        low = key.lower()
        near += [h for h in sorted(self.latest_by_hash) if low[:4] and h.startswith(low[:4])][:5]
        return " Did you mean: " + ", ".join(near) + "?" if near else ""

    def resolve(self, key: str, where: str) -> ArtifactRecord:
        """The latest record of a name, of a full hash or of a unique hash prefix.

        Raises:
            TypeError: ``key`` is not a non-empty string.
            ArtifactNotFoundError: nothing matches (the message lists near matches).
            AmbiguousArtifactError: a prefix matches several hashes.
        """
        if not isinstance(key, str) or not key:
            raise TypeError(f"name_or_hash must be a non-empty string; got {key!r}")
        if key in self.by_name:
            return self.by_name[key][-1]
        low = key.lower()
        if _HEX_RE.fullmatch(key) and MIN_PREFIX <= len(key) <= 64:
            if low in self.latest_by_hash:
                return self.latest_by_hash[low]
            hits = sorted(h for h in self.latest_by_hash if h.startswith(low))
            if len(hits) > 1:
                raise AmbiguousArtifactError(
                    f"hash prefix {key!r} matches {len(hits)} artifacts: {', '.join(hits)}"
                )
            if hits:
                return self.latest_by_hash[hits[0]]
        hint = ""
        if _HEX_RE.fullmatch(key) and len(key) < MIN_PREFIX:
            hint = f" (hash prefixes need at least {MIN_PREFIX} characters)"
        raise ArtifactNotFoundError(
            f"no artifact named or hashed {key!r} in {where}{hint}." + self._near_matches(key)
        )

    # ------------------------------------------------------------------ lineage

    def replaced_by(self, h: str) -> str | None:
        """The newest hash under a name ``h`` was stored under, when that is not ``h``."""
        for name in self.names_by_hash.get(h, {}):
            newest = self.latest_hash(name)
            if newest != h:
                return newest
        return None

    def lineage(self, h: str, status: Callable[[str], Status]) -> LineageNode:
        """The ancestry tree of ``h``; ``status(hash)`` checks a payload on disk."""

        def node(h: str, relation: str, path: frozenset[str]) -> LineageNode:
            rec = self.latest_by_hash.get(h)
            if rec is None:
                return LineageNode(hash=h, relation=relation, status="missing")
            common = {
                "hash": h,
                "relation": relation,
                "name": rec.name,
                "role": rec.role,
                "created": rec.created,
                "replaced_by": self.replaced_by(h),
            }
            if h in path:
                return LineageNode(status="cycle", **common)
            parents = tuple(node(up, rel, path | {h}) for rel, up in rec.lineage.upstream())
            return LineageNode(status=status(h), parents=parents, **common)

        return node(h, "self", frozenset())

    def replaced_ancestors(self, h: str) -> tuple[Replacement, ...]:
        """Upstream artifacts of ``h`` (direct or transitive) superseded under their names."""
        found: dict[tuple[str, str], Replacement] = {}

        def visit(h: str, path: tuple[str, ...], seen: frozenset[str]) -> None:
            rec = self.latest_by_hash.get(h)
            if rec is None or h in seen:
                return
            if path:
                for name in self.names_by_hash.get(h, {}):
                    newest = self.latest_hash(name)
                    if newest != h and (h, name) not in found:
                        found[(h, name)] = Replacement(h, name, newest, path)
            for rel, up in rec.lineage.upstream():
                visit(up, (*path, rel), seen | {h})

        visit(h, (), frozenset())
        return tuple(found.values())
