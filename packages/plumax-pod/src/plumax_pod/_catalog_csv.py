"""Strict, line-numbered CSV reading shared by the plume-list and coverage readers.

The file is read as bytes and decoded line by line as UTF-8 (RFC 3629), so a byte
sequence that is not UTF-8 is reported with its file, line and column instead of
stopping the whole read with a bare ``UnicodeDecodeError``. A UTF-8 byte-order mark
before the first column name is dropped (the ``utf-8-sig`` convention). Records are
split by Python's :mod:`csv` module in ``strict`` mode with the RFC 4180 quoting
rules (fields may be quoted, a quote inside a quoted field is doubled, a quoted field
may span lines). Line numbers are physical lines of the file (the header is line 1);
a record that spans lines is numbered by its first line.

Records are handed out in chunks of column-wise string lists, so the caller converts
each column with one vectorised pass and memory stays bounded by the chunk.
"""

import codecs
import csv
import dataclasses
import hashlib
import operator
import os
from collections.abc import Iterator, Sequence

import numpy as np

CHUNK_ROWS = 65_536


@dataclasses.dataclass
class RecordChunk:
    """Up to :data:`CHUNK_ROWS` records with the right number of fields.

    Attributes:
        lines: ``(m,)`` first physical line of each record.
        columns: one list of ``m`` raw strings per requested column index.
        digests: ``(m, 2)`` uint64, a 128-bit BLAKE2b digest of each record's fields
            (exact-duplicate detection).
    """

    lines: np.ndarray
    columns: list[list[str]]
    digests: np.ndarray


class StrictCSV:
    """A CSV file read strictly (see the module docstring).

    Attributes:
        path: the file. header: the column names (BOM removed).
        issues: ``(line, message)`` for records that could not even be split into the
            header's fields (bad bytes, NUL, broken quoting, wrong field count); filled
            while iterating :meth:`chunks`.
        n_records: non-empty records after the header seen so far.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self.issues: list[tuple[int, str]] = []
        self.n_records = 0
        self._bad_bytes: dict[int, str] = {}
        self._fh = open(self.path, "rb")  # closed by close() / __exit__
        self._reader = csv.reader(self._decoded(), strict=True)
        try:
            header = next(self._reader)
        except StopIteration:
            self.close()
            raise ValueError(f"`path` {self.path!r} is empty (no header line)") from None
        except csv.Error as exc:
            self.close()
            raise ValueError(f"`path` {self.path!r}, line 1: unreadable header ({exc})") from None
        bad = [ln for ln in self._bad_bytes if ln <= self._reader.line_num]
        if bad:
            msg = self._bad_bytes[bad[0]]
            self.close()
            raise ValueError(f"`path` {self.path!r}, line {bad[0]} (header): {msg}")
        self.header: list[str] = header
        self.header_lines = self._reader.line_num

    def _decoded(self) -> Iterator[str]:
        for ln, raw in enumerate(self._fh, start=1):
            if ln == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                self._bad_bytes[ln] = (
                    f"bytes that are not UTF-8 (0x{raw[exc.start]:02x} at byte "
                    f"{exc.start + 1} of the line); save the file as UTF-8"
                )
                text = raw.decode("utf-8", "replace")
            if "\x00" in text:
                self._bad_bytes.setdefault(ln, "a NUL byte (binary data in a text file)")
                text = text.replace("\x00", "")
            yield text

    def close(self) -> None:
        self._fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def require_unique(self, names: Sequence[str]) -> None:
        """Raise if any of ``names`` appears more than once in the header (which one to
        use would be a guess)."""
        dup = {n: [i + 1 for i, h in enumerate(self.header) if h == n] for n in set(names)}
        dup = {n: pos for n, pos in dup.items() if len(pos) > 1}
        if dup:
            what = "; ".join(f"{n!r} at positions {pos}" for n, pos in sorted(dup.items()))
            raise ValueError(
                f"`path` {self.path!r}: the header repeats column(s) {what}; "
                "rename or remove the extra column(s)"
            )

    def chunks(self, index: Sequence[int]) -> Iterator[RecordChunk]:
        """Iterate the records in chunks, keeping the fields at ``index`` (header
        positions). Records that cannot be split into ``len(header)`` fields, or that
        contain bad bytes, are added to :attr:`issues` and left out of the chunks."""
        width = len(self.header)
        idx = list(index)
        pick = operator.itemgetter(*idx) if len(idx) > 1 else (lambda r: (r[idx[0]],))
        reader = self._reader
        bad_bytes = self._bad_bytes
        lines: list[int] = []
        rows: list[tuple[str, ...]] = []
        digests: list[bytes] = []
        blake = hashlib.blake2b
        add_line, add_row, add_digest = lines.append, rows.append, digests.append
        while True:
            start = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                self.n_records += 1
                self.issues.append((start, f"broken CSV quoting ({exc}; RFC 4180)"))
                continue
            if not row:
                continue  # a blank line separates nothing; it is not a record
            self.n_records += 1
            end = reader.line_num
            if bad_bytes:
                hit = [ln for ln in range(start, end + 1) if ln in bad_bytes]
                if hit:
                    self.issues.append((start, bad_bytes[hit[0]]))
                    continue
            if len(row) != width:
                more = len(row) - width
                msg = (
                    f"{more} more field(s) than the {width}-column header"
                    if more > 0
                    else f"{-more} fewer field(s) than the {width}-column header"
                )
                self.issues.append((start, msg))
                continue
            add_line(start)
            add_row(pick(row))
            # fields never contain NUL (removed above), so joining on NUL is injective
            add_digest(blake("\x00".join(row).encode(), digest_size=16).digest())
            if len(lines) >= CHUNK_ROWS:
                yield _chunk(lines, rows, digests, len(idx))
                lines, rows, digests = [], [], []
                add_line, add_row, add_digest = lines.append, rows.append, digests.append
        if lines:
            yield _chunk(lines, rows, digests, len(idx))


def _chunk(lines, rows, digests, n_cols) -> RecordChunk:
    cols = [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in range(n_cols)]
    d = np.frombuffer(b"".join(digests), dtype=np.uint64).reshape(-1, 2)
    return RecordChunk(np.asarray(lines, np.int64), cols, d)


def duplicate_rows(lines: np.ndarray, digests: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact duplicates among records: ``(dup_positions, first_lines)`` — the positions
    (into ``lines``) of every later copy of a record, and the line of its first copy."""
    if lines.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    order = np.lexsort((lines, digests[:, 1], digests[:, 0]))
    d = digests[order]
    same = np.all(d[1:] == d[:-1], axis=1)
    if not same.any():
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    new_group = np.concatenate([[True], ~same])
    group_start = np.maximum.accumulate(np.where(new_group, np.arange(order.size), 0))
    later = ~new_group
    dup_pos = order[later]
    first_lines = lines[order[group_start[later]]]
    return dup_pos, first_lines
