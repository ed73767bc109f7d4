"""What each instrument observed: coverage fractions and overpass schedules.

A detection catalogue says when instruments *saw* something, not when they *looked*.
Without the latter a fit must assume every instrument watched the whole window, which
is wrong for imagers that look for minutes a day: with several instruments it yields
a missing-mass fraction below zero, and one relabelled row can move the event rate
twenty-fold. So each instrument's coverage is stated:

* a coverage **fraction** ``c`` in (0, 1]: the chance that an event in the window fell
  inside what the instrument observed (its share of the window's time x area), taken as
  independent of the event and of the other instruments;
* an **overpass schedule**: the times (UTC) it looked, each observing
  ``[t − half_window, t + half_window]`` (put the event duration into the window: a
  snapshot sees events active at the overpass); optionally with a fraction too;

or the instruments are pooled into one (:func:`~plumax_pod.catalog_population_data`).

:func:`read_coverage` reads either kind from a UTF-8 CSV (the catalogue's reading
rules, line-numbered errors): columns ``instrument,coverage`` (one row per instrument)
or ``instrument,time`` (one row per overpass, times under the same
:class:`~plumax_pod.TimeRule` as the catalogue; optional ``half_window_s``, constant
per instrument).
"""

import dataclasses
import math
import os

import numpy as np

from ._catalog import CatalogError, CatalogReport
from ._catalog_csv import StrictCSV, duplicate_rows
from ._catalog_times import DEFAULT_YEARS, TimeRule


@dataclasses.dataclass(frozen=True)
class InstrumentCoverage:
    """What one instrument observed.

    Attributes:
        fraction: coverage fraction in (0, 1] (see the module docstring); default 1.
        overpasses: ``(m,)`` overpass times, Unix seconds (UTC), or None (the instrument
            looked throughout the window).
        half_window_s: half-width of each overpass window (s, > 0); needed with
            ``overpasses``.
    """

    fraction: float = 1.0
    overpasses: np.ndarray | None = None
    half_window_s: float | None = None

    def __post_init__(self):
        f = self.fraction
        if not (isinstance(f, int | float) and math.isfinite(f) and 0 < f <= 1):
            raise ValueError(f"coverage `fraction` must lie in (0, 1], got {f!r}")
        if self.overpasses is None:
            if self.half_window_s is not None:
                raise ValueError("`half_window_s` needs `overpasses`")
            return
        o = np.asarray(self.overpasses, np.float64).reshape(-1)
        if not np.all(np.isfinite(o)):
            raise ValueError("`overpasses` must be finite Unix seconds")
        o = np.sort(o)
        object.__setattr__(self, "overpasses", o)
        hw = self.half_window_s
        if hw is None or not (math.isfinite(hw) and hw > 0):
            raise ValueError(f"`half_window_s` must be > 0 s with `overpasses`, got {hw!r}")
        close = np.flatnonzero(np.diff(o) < 2 * hw)
        if close.size:
            raise ValueError(
                f"overpass windows overlap: {o[close[0]]!r} and {o[close[0] + 1]!r} s are less "
                f"than 2 x half_window_s = {2 * hw:g} s apart"
            )

    def describe(self) -> dict:
        """JSON-ready description."""
        out: dict = {"fraction": float(self.fraction)}
        if self.overpasses is not None:
            out["overpasses"] = int(self.overpasses.size)
            out["half_window_s"] = float(self.half_window_s)
        return out


def read_coverage(
    path: str | os.PathLike,
    *,
    half_window_s: float | None = None,
    time_format: str | None = None,
    epoch_unit: str | None = None,
    years: tuple[int, int] = DEFAULT_YEARS,
) -> dict[str, InstrumentCoverage]:
    """Read a coverage CSV (module docstring): ``{instrument: InstrumentCoverage}``.

    Args:
        path: CSV with ``instrument`` and either ``coverage`` (fraction) or ``time``
            (overpasses) columns.
        half_window_s: overpass half-window (s) when the file has no ``half_window_s``
            column.
        time_format, epoch_unit, years: the time rule (:class:`~plumax_pod.TimeRule`).

    Raises:
        ValueError: unreadable file or header, neither or both kinds of column.
        CatalogError: malformed rows (every one with its line): blank or unknown
            values, a repeated instrument (fractions) or overpass, a half-window that
            changes within an instrument, overlapping overpass windows.
    """
    rule = TimeRule(time_format, epoch_unit, tuple(years))
    if not os.path.isfile(path):
        raise ValueError(f"coverage file {os.fspath(path)!r} is not a file")
    with StrictCSV(path) as csvf:
        h = csvf.header
        kinds = [c for c in ("coverage", "time") if c in h]
        if "instrument" not in h or len(kinds) != 1:
            raise ValueError(
                f"coverage file {csvf.path!r}: the header needs 'instrument' and one of "
                f"'coverage' (fractions) or 'time' (overpasses), got {h}"
            )
        kind = kinds[0]
        cols = ["instrument", kind] + (["half_window_s"] if "half_window_s" in h else [])
        csvf.require_unique(cols)
        idx = [h.index(c) for c in cols]
        lines, names, values, hws, digs = [], [], [], [], []
        issues: list[tuple[int, str]] = []
        for ch in csvf.chunks(idx):
            lines.append(ch.lines)
            names += [s.strip() for s in ch.columns[0]]
            if kind == "time":
                t, bad = rule.parse(ch.columns[1])
                issues += [(int(ch.lines[i]), m) for i, m in bad]
                values.append(t)
            else:
                values.append(_fractions(ch.columns[1], ch.lines, issues))
            if len(cols) == 3:
                hws.append(_positive(ch.columns[2], ch.lines, issues, "half_window_s"))
            digs.append(ch.digests)
        issues = csvf.issues + issues
        n_rows = csvf.n_records
    lines = np.concatenate(lines) if lines else np.zeros(0, np.int64)
    vals = np.concatenate(values) if values else np.zeros(0)
    hw = np.concatenate(hws) if hws else np.full(vals.size, np.nan)
    for i in np.flatnonzero(np.asarray([not n for n in names], bool)):
        issues.append((int(lines[i]), "missing instrument"))
    dig = np.concatenate(digs) if digs else np.zeros((0, 2), np.uint64)
    dup, first = duplicate_rows(lines, dig)
    for p, f in zip(dup, first, strict=True):
        issues.append((int(lines[p]), f"exact duplicate of line {int(f)}"))
    names_arr = np.asarray(names, dtype=str)
    out: dict[str, InstrumentCoverage] = {}
    for name in sorted(set(names) - {""}):
        rows = np.flatnonzero(names_arr == name)
        if kind == "coverage":
            if rows.size > 1:
                first_line = int(lines[rows[0]])
                issues += [
                    (int(lines[r]), f"instrument {name!r} repeated (first on line {first_line})")
                    for r in rows[1:]
                ]
            if np.isfinite(vals[rows[0]]):
                out[name] = InstrumentCoverage(float(vals[rows[0]]))
            continue
        w = hw[rows] if len(cols) == 3 else np.full(rows.size, np.nan)
        if len(cols) == 3 and np.unique(w[np.isfinite(w)]).size > 1:
            issues.append(
                (int(lines[rows[0]]), f"half_window_s changes within instrument {name!r}")
            )
            continue
        hw_k = float(w[np.isfinite(w)][0]) if np.any(np.isfinite(w)) else half_window_s
        if hw_k is None:
            raise ValueError(
                f"coverage file {os.fspath(path)!r}: no `half_window_s` column and no "
                "`half_window_s` argument: how long does one overpass observe?"
            )
        o = vals[rows]
        if not np.all(np.isfinite(o)):
            continue  # already reported by line
        order = np.argsort(o, kind="stable")
        gap = np.flatnonzero(np.diff(o[order]) < 2 * hw_k)
        if gap.size:
            issues += [
                (
                    int(lines[rows[order[g + 1]]]),
                    f"overpass of {name!r} within 2 x half_window_s = {2 * hw_k:g} s of the "
                    f"one on line {int(lines[rows[order[g]]])} (windows may not overlap)",
                )
                for g in gap
            ]
            continue
        out[name] = InstrumentCoverage(1.0, o, hw_k)
    if issues:
        issues.sort(key=lambda x: x[0])
        raise CatalogError(
            CatalogReport(os.fspath(path), n_rows, tuple(issues), rule.describe(), "absent")
        )
    if not out:
        raise ValueError(f"coverage file {os.fspath(path)!r} has no rows")
    return out


def _fractions(texts, lines, issues) -> np.ndarray:
    out = np.full(len(texts), np.nan)
    for i, s in enumerate(texts):
        try:
            v = float(s)
        except ValueError:
            issues.append((int(lines[i]), f"coverage {s!r} is not a number"))
            continue
        if not (math.isfinite(v) and 0 < v <= 1):
            issues.append((int(lines[i]), f"coverage {s.strip()!r} outside (0, 1]"))
            continue
        out[i] = v
    return out


def _positive(texts, lines, issues, name) -> np.ndarray:
    out = np.full(len(texts), np.nan)
    for i, s in enumerate(texts):
        try:
            v = float(s)
        except ValueError:
            v = math.nan
        if not (math.isfinite(v) and v > 0):
            issues.append((int(lines[i]), f"{name} {s!r} must be a number > 0"))
            continue
        out[i] = v
    return out
