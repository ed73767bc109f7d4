"""Checking an artifact registry against its own objects, and the plan of a repair.

The journal (``index.jsonl``) is the fast index; every record is also stored beside its
object (``objects/<hash>/records/``, or the first record in ``meta.json`` for version-1
objects). So the index can be verified, and rebuilt when it was deleted, truncated or
edited, from what the objects themselves say. `scan` reads everything and changes
nothing; `ArtifactRegistry.check` runs it and, with ``repair=True``, applies the plan.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Sequence
from typing import Any, Literal

from ._registry_files import Layout, read_journal
from ._registry_types import ArtifactRecord

__all__ = ["IndexState", "RegistryCheck", "scan"]

_HASH_RE = re.compile(r"[0-9a-f]{64}")

IndexState = Literal["ok", "empty", "legacy", "missing", "unreadable"]


@dataclasses.dataclass(frozen=True)
class RegistryCheck:
    """What `ArtifactRegistry.check` found (and, after a repair, what it did).

    Attributes:
        root: the registry folder.
        index: ``"ok"`` (journal read), ``"empty"`` (no index and no objects),
            ``"legacy"`` (a version-1 ``index.json``), ``"missing"`` (no index while
            objects are stored) or ``"unreadable"`` (a version-1 index that does not parse).
        records: records in the index.
        objects: objects stored (folders under ``objects/`` named by a hash).
        bad_lines: ``(line, problem)`` of index lines that are not records.
        torn_bytes: length of an incomplete final index line (an interrupted store).
        corrupted: objects whose payload does not hash to their name.
        missing: hashes the index refers to whose payload is gone.
        unindexed: records kept beside their objects that the index lacks.
        orphans: objects with no readable record at all (cannot be named again).
        object_problems: ``(hash, problem)`` for unreadable record or meta files.
        debris: staging entries left in ``tmp/`` by interrupted writes.
        layout: problems with the registry's own folders (``tmp/`` or ``objects/`` is a
            link or a file: the registry then refuses to write).
        foreign: entries under the root or ``objects/`` that the registry did not make;
            reported, never touched.
        repaired: what a repair did (empty when none ran or nothing was needed).
    """

    root: str
    index: IndexState
    records: int
    objects: int
    bad_lines: tuple[tuple[int, str], ...] = ()
    torn_bytes: int = 0
    corrupted: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    unindexed: tuple[ArtifactRecord, ...] = ()
    orphans: tuple[str, ...] = ()
    object_problems: tuple[tuple[str, str], ...] = ()
    debris: tuple[str, ...] = ()
    layout: tuple[str, ...] = ()
    foreign: tuple[str, ...] = ()
    repaired: tuple[str, ...] = ()

    @property
    def problems(self) -> tuple[str, ...]:
        """One line per problem (foreign entries are not problems)."""
        out = list(self.layout)
        if self.index == "missing":
            out.append(f"the index is missing while {self.objects} object(s) are stored")
        elif self.index == "unreadable":
            out.append("the version-1 index.json is unreadable")
        out += [f"index line {ln}: {msg}" for ln, msg in self.bad_lines]
        if self.torn_bytes:
            out.append(f"the index ends in an incomplete line ({self.torn_bytes} bytes)")
        out += [f"object {h[:12]}: payload corrupted" for h in self.corrupted]
        out += [f"object {h[:12]}: payload missing" for h in self.missing]
        out += [
            f"record {r.name!r} v{r.version} ({r.hash[:12]}) not indexed" for r in self.unindexed
        ]
        out += [f"object {h[:12]}: no record names it" for h in self.orphans]
        out += [f"object {h[:12]}: {msg}" for h, msg in self.object_problems]
        out += [f"tmp/{name}: left by an interrupted write" for name in self.debris]
        return tuple(out)

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems

    @property
    def repairable(self) -> bool:
        """True when a repair would leave nothing wrong (no lost or damaged payload and
        no unnamed object)."""
        return not (
            self.corrupted
            or self.missing
            or self.orphans
            or self.layout
            or self.index == "unreadable"
        )

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["unindexed"] = [r.to_dict() for r in self.unindexed]
        d["ok"], d["problems"] = self.ok, list(self.problems)
        return d

    def __str__(self) -> str:
        head = (
            f"{self.root}: {self.records} record(s), {self.objects} object(s); index {self.index}"
        )
        lines = [head, *(f"  problem: {p}" for p in self.problems)]
        lines += [f"  repaired: {a}" for a in self.repaired]
        lines += [f"  not the registry's (left alone): {f}" for f in self.foreign]
        lines.append("  ok" if self.ok else f"  {len(self.problems)} problem(s)")
        return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class Scan:
    """A `RegistryCheck` plus what a repair needs: the indexed records in order and the
    records kept beside each object."""

    report: RegistryCheck
    indexed: tuple[ArtifactRecord, ...]
    beside: dict[str, tuple[ArtifactRecord, ...]]

    def rebuilt_index(self) -> list[ArtifactRecord]:
        """The index a repair writes: every readable indexed record, then the unindexed
        ones, in creation order (records of one name keep their version order)."""
        records = list(self.indexed) + list(self.report.unindexed)
        return sorted(records, key=lambda r: (r.created, r.version))


def _payload_status(layout: Layout, h: str, verify: bool) -> str:
    payload = layout.object_dir(h) / "payload.bin"
    if not payload.is_file():
        return "missing"
    if not verify:
        return "ok"
    digest = hashlib.sha256()
    with open(payload, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return "ok" if digest.hexdigest() == h else "corrupted"


def _read_index(layout: Layout, n_objects: int) -> tuple[IndexState, list, tuple, int]:
    """``(state, records, bad_lines, torn_bytes)`` of the journal or version-1 index."""
    if layout.journal.is_file():
        read = read_journal(layout.journal)
        return "ok", list(read.records), read.bad_lines, read.torn
    if layout.legacy_index.is_file():
        try:
            return "legacy", layout.read_legacy(), (), 0
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            return "unreadable", [], ((0, f"index.json: {err}"),), 0
    return ("missing" if n_objects else "empty"), [], (), 0


def scan(layout: Layout, *, verify: bool = True) -> Scan:
    """Compare a registry's index with its objects; reads only.

    Args:
        layout: the registry's paths.
        verify: re-hash every payload (reads every byte); False checks presence only.
    """
    hashes, foreign = [], []
    for name in sorted(layout.object_names()):
        path = layout.object_dir(name)
        if _HASH_RE.fullmatch(name) and path.is_dir() and not path.is_symlink():
            hashes.append(name)
        else:
            foreign.append(f"objects/{name}")
    state, indexed, bad_lines, torn = _read_index(layout, len(hashes))

    status = {h: _payload_status(layout, h, verify) for h in hashes}
    beside: dict[str, tuple[ArtifactRecord, ...]] = {}
    problems: list[tuple[str, str]] = []
    for h in hashes:
        recs, probs = layout.object_records(h)
        beside[h] = tuple(recs)
        problems += [(h, p) for p in probs]
    keys = {r.key for r in indexed}
    unindexed: dict[tuple, ArtifactRecord] = {}
    for h in hashes:
        for r in beside[h]:
            if r.key not in keys:
                unindexed.setdefault(r.key, r)
    indexed_hashes = {r.hash for r in indexed}
    missing = sorted(h for h in indexed_hashes if status.get(h, "missing") == "missing")
    named = indexed_hashes | {r.hash for r in unindexed.values()}
    layout_problems = tuple(
        f"{name}/ is a link or a file, not a folder the registry made (it will not write)"
        for name, path in (("tmp", layout.tmp), ("objects", layout.objects))
        if path.is_symlink() or (path.exists() and not path.is_dir())
    )
    report = RegistryCheck(
        root=str(layout.root),
        index=state,
        records=len(indexed),
        objects=len(hashes),
        bad_lines=tuple(bad_lines),
        torn_bytes=torn,
        corrupted=tuple(h for h in hashes if status[h] == "corrupted"),
        missing=tuple(missing),
        unindexed=tuple(sorted(unindexed.values(), key=lambda r: (r.created, r.version))),
        orphans=tuple(h for h in hashes if h not in named and status[h] != "missing"),
        object_problems=tuple(problems),
        debris=tuple(sorted(p.name for p in layout.staging_entries())),
        layout=layout_problems,
        foreign=tuple(sorted([*layout.foreign_root_entries(), *foreign])),
    )
    return Scan(report, tuple(indexed), beside)


def records_without_file(scan_: Scan, records: Sequence[ArtifactRecord]) -> list[ArtifactRecord]:
    """Records whose object exists but does not keep them (version-1 objects, lost files)."""
    out = []
    for r in records:
        kept = scan_.beside.get(r.hash)
        if kept is not None and all(k.key != r.key for k in kept):
            out.append(r)
    return out
