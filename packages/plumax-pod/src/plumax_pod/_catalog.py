"""Plume-list CSV ingestion: schemas, unit conversion, line-numbered validation.

A :class:`CatalogSchema` maps the canonical fields to a catalogue's column names:

==============  ========  =====================================================
field           required  meaning
==============  ========  =====================================================
``time``        yes       detection time; ISO 8601 unless a format or an epoch
                          unit is given (:class:`~plumax_pod.TimeRule`)
``lat``         yes       latitude (degrees north, [-90, 90])
``lon``         yes       longitude (degrees east, [-180, 360))
``q``           yes       emission rate (> 0), in ``rate_units`` (or the ``units`` column)
``q_sigma``     no        1-sigma emission-rate uncertainty (> 0), same units
``wind``        no        wind speed used in the quantification (m/s, > 0)
``instrument``  no        instrument / satellite name
``id``          no        plume identifier
``units``       no        per-row rate units, overriding ``rate_units``
==============  ========  =====================================================

Reading rules (each broken rule is a malformed row, reported by its line number, the
header being line 1):

* the file is UTF-8 (a byte-order mark is dropped) and CSV by RFC 4180; see
  :mod:`plumax_pod._catalog_csv`. A column the schema maps may appear only once in the
  header (an error naming it, not "last wins");
* times follow one explicit :class:`~plumax_pod.TimeRule` and must fall in its plausible
  years (1970-2100 by default);
* the uncertainty rule: when the file has the schema's ``q_sigma`` column, every row
  must carry a finite sigma > 0 there. A blank sigma is a malformed row unless
  ``blank_sigma="point"`` says such rows are exact rates; rows are never switched
  between Gaussian and exact as a group. Without the column every rate is exact;
* an exact duplicate of an earlier row (every field equal, unmapped columns included)
  is malformed: with ``errors="report"`` the later copy is left out and listed.

``errors="raise"`` raises :class:`CatalogError` listing every problem; ``errors="report"``
returns the clean rows and the :class:`CatalogReport`. Nothing is silently dropped,
clipped or guessed. Rates are converted to kg/s (``t/h``, ``kg/h``, ``kg/s`` and common
spellings).
"""

import csv
import dataclasses
import math
import os
from collections.abc import Sequence

import numpy as np

from plumax_core import units as _units
from plumax_core.validation import MAX_WIND_SPEED, check_emission_rate

from ._catalog_csv import StrictCSV, duplicate_rows
from ._catalog_schema import (
    FIELDS,
    REQUIRED,
    SCHEMAS,
    CatalogSchema,
    kg_s_to,
)
from ._catalog_times import DEFAULT_YEARS, TimeRule, iso_utc

BLANK_SIGMA = ("error", "point")


@dataclasses.dataclass(frozen=True)
class CatalogReport:
    """What reading found.

    Attributes:
        path: the file. n_rows: records after the header (blank lines not counted).
        issues: ``(line, message)`` per problem, sorted by line.
        time_rule: how times were read (e.g. ``"ISO 8601"``).
        q_sigma: ``"column"`` (every row has a sigma), ``"column, blanks exact"``
            (``blank_sigma="point"``) or ``"absent"`` (no column: exact rates).
    """

    path: str
    n_rows: int
    issues: tuple[tuple[int, str], ...]
    time_rule: str = "ISO 8601"
    q_sigma: str = "absent"

    @property
    def bad_lines(self) -> tuple[int, ...]:
        return tuple(sorted({ln for ln, _ in self.issues}))

    def __str__(self):
        head = f"{self.path}: {len(self.bad_lines)} malformed row(s) of {self.n_rows}"
        shown = [f"  line {ln}: {msg}" for ln, msg in self.issues[:50]]
        if len(self.issues) > 50:
            shown.append(f"  ... and {len(self.issues) - 50} more (see .report.issues)")
        return "\n".join([head, *shown])


class CatalogError(ValueError):
    """Malformed rows in a plume list; ``.report`` holds every problem."""

    def __init__(self, report: CatalogReport):
        super().__init__(str(report))
        self.report = report


@dataclasses.dataclass(frozen=True)
class PlumeCatalog:
    """Clean plume detections (numpy, float64).

    Attributes:
        time: ``(n,)`` Unix seconds (UTC). lat, lon: degrees (lon in [-180, 180)).
        q: emission rate, kg/s (> 0). q_sigma: its 1-sigma uncertainty, kg/s (> 0, or
            NaN = an exact rate). wind: m/s (> 0, or NaN = unknown).
        instrument, ids: ``(n,)`` strings. lines: ``(n,)`` source line numbers.

    Raises:
        ValueError: arrays of different lengths, or values breaking the rules above.
    """

    time: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    q: np.ndarray
    q_sigma: np.ndarray
    wind: np.ndarray
    instrument: np.ndarray
    ids: np.ndarray
    lines: np.ndarray

    def __post_init__(self):
        n = np.shape(self.time)
        for f in dataclasses.fields(self):
            if np.ndim(getattr(self, f.name)) != 1 or np.shape(getattr(self, f.name)) != n:
                raise ValueError(f"`{f.name}` must be 1-D with the length of `time` {n}")
        for f in ("time", "lat", "lon", "q"):
            if not np.all(np.isfinite(getattr(self, f))):
                raise ValueError(f"`{f}` must be finite")
        check_emission_rate("q", self.q, units="kg/s")
        for f in ("q_sigma", "wind"):
            v = np.asarray(getattr(self, f), float)
            if not np.all(np.isnan(v) | (np.isfinite(v) & (v > 0))):
                raise ValueError(f"`{f}` must be > 0 (or NaN where unknown)")

    def __len__(self):
        return int(self.time.shape[0])

    def take(self, idx) -> "PlumeCatalog":
        return PlumeCatalog(
            **{f.name: getattr(self, f.name)[idx] for f in dataclasses.fields(self)}
        )

    def times_relative(self, t_ref: float | None = None) -> np.ndarray:
        """Seconds since ``t_ref`` (default: the earliest detection) — what the intensity
        models take (float32-safe for windows up to months)."""
        t_ref = float(self.time.min()) if t_ref is None else float(t_ref)
        return self.time - t_ref

    def q_in(self, units: str) -> np.ndarray:
        """Emission rates in ``units`` (e.g. ``"kg/h"``)."""
        return kg_s_to(self.q, units)

    def to_csv(self, path: str | os.PathLike, *, rate_units: str = "kg/h") -> None:
        """Write in the canonical schema (:data:`CANONICAL_SCHEMA`, rates in ``rate_units``,
        ISO 8601 UTC times). The ``q_sigma`` column is written only when some row has a
        sigma; rows without one are then blank (read them back with
        ``blank_sigma="point"``)."""
        with_sigma = bool(np.any(np.isfinite(self.q_sigma)))
        cols = [f for f in FIELDS if with_sigma or f != "q_sigma"]
        q = kg_s_to(self.q, rate_units)
        qs = kg_s_to(self.q_sigma, rate_units)

        def num(x):
            return "" if math.isnan(x) else repr(float(x))

        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(cols)
            for i in range(len(self)):
                row = {
                    "id": self.ids[i],
                    "time": iso_utc(float(self.time[i])),
                    "lat": repr(float(self.lat[i])),
                    "lon": repr(float(self.lon[i])),
                    "q": repr(float(q[i])),
                    "q_sigma": num(qs[i]),
                    "wind": num(self.wind[i]),
                    "instrument": self.instrument[i],
                    "units": rate_units,
                }
                w.writerow([row[c] for c in cols])


def _rate_factor_or_none(units: str) -> float | None:
    """kg/s per ``units`` (:func:`plumax_core.units.rate_factor`), None if unknown."""
    try:
        return _units.rate_factor(units)
    except ValueError:
        return None


def _floats(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(values, blank, bad)``: float64 values (NaN where blank or bad), and masks of
    blank fields and of fields that are not numbers."""
    n = len(texts)
    try:
        return np.array(texts, dtype=np.float64), np.zeros(n, bool), np.zeros(n, bool)
    except ValueError:
        pass
    out = np.full(n, np.nan)
    blank, bad = np.zeros(n, bool), np.zeros(n, bool)
    for i, s in enumerate(texts):
        try:
            out[i] = float(s)
        except ValueError:
            if s.strip():
                bad[i] = True
            else:
                blank[i] = True
    return out, blank, bad


class _Reader:
    """The validation of one file, chunk by chunk (see :func:`read_catalog`)."""

    def __init__(self, csvf: StrictCSV, schema: CatalogSchema, rule: TimeRule, blank_sigma: str):
        self.schema, self.rule, self.blank_sigma = schema, rule, blank_sigma
        header = csvf.header
        mapped = {f: c for f, c in schema.columns.items()}
        absent = [c for f, c in mapped.items() if f in REQUIRED and c not in header]
        if absent:
            raise ValueError(
                f"`path` {csvf.path!r}: required column(s) {absent} missing from the header "
                f"(schema {schema.name!r}; header: {header[:12]}"
                f"{' ...' if len(header) > 12 else ''})"
            )
        self.present = {f: c for f, c in mapped.items() if c in header}
        csvf.require_unique(list(self.present.values()))
        self.fields = list(self.present)
        self.index = [header.index(self.present[f]) for f in self.fields]
        self.issues: list[tuple[int, str]] = []

    def label(self, field: str) -> str:
        col = self.present[field]
        return field if col == field else f"{field} (column {col!r})"

    def chunk(self, lines: np.ndarray, cols: list[list[str]]) -> dict[str, np.ndarray]:
        """Validated arrays of one chunk plus ``ok`` (no problem in the row)."""
        m = lines.size
        raw = dict(zip(self.fields, cols, strict=True))
        problems: list[tuple[int, str]] = []  # (position in chunk, message)
        out: dict[str, np.ndarray] = {}
        t, bad_t = self.rule.parse(raw["time"])
        problems += bad_t
        out["time"] = t
        for f in ("lat", "lon", "q", "q_sigma", "wind"):
            if f not in raw:
                out[f] = np.full(m, np.nan)
                continue
            v, blank, bad = _floats(raw[f])
            lab = self.label(f)
            for i in np.flatnonzero(bad):
                problems.append((i, f"non-numeric {lab} {raw[f][i]!r}"))
            nonfinite = ~np.isfinite(v) & ~blank & ~bad
            for i in np.flatnonzero(nonfinite):
                problems.append((i, f"non-finite {lab} {raw[f][i].strip()!r}"))
            if f in REQUIRED:
                for i in np.flatnonzero(blank):
                    problems.append((i, f"missing {lab}"))
            elif f == "q_sigma" and self.blank_sigma == "error":
                for i in np.flatnonzero(blank):
                    problems.append(
                        (
                            i,
                            f"missing {lab}: the file has this column, so every row needs a "
                            "sigma > 0 (blank_sigma='point' takes such rows as exact rates)",
                        )
                    )
            ok = np.isfinite(v)
            if f == "lat":
                for i in np.flatnonzero(ok & ~((v >= -90) & (v <= 90))):
                    problems.append((i, f"{lab} {v[i]!r} outside [-90, 90]"))
            elif f == "lon":
                for i in np.flatnonzero(ok & ~((v >= -180) & (v < 360))):
                    problems.append((i, f"{lab} {v[i]!r} outside [-180, 360)"))
            elif f == "q":
                for i in np.flatnonzero(ok & ~(v > 0)):
                    problems.append((i, f"non-positive emission rate {lab} {v[i]!r}"))
            elif f == "q_sigma":
                for i in np.flatnonzero(ok & ~(v > 0)):
                    problems.append((i, f"{lab} must be > 0, got {v[i]!r}"))
            elif f == "wind":
                for i in np.flatnonzero(ok & ~(v > 0)):
                    problems.append((i, f"non-positive wind {lab} {v[i]!r} m/s"))
                for i in np.flatnonzero(ok & (v > MAX_WIND_SPEED)):
                    problems.append(
                        (
                            i,
                            f"{lab} {v[i]!r} m/s is faster than any measured surface wind "
                            f"(> {MAX_WIND_SPEED:g} m/s): a unit error?",
                        )
                    )
            out[f] = v
        default = _units.rate_factor(self.schema.rate_units, name="rate_units")
        factor = np.full(m, default)
        if "units" in raw:
            memo: dict[str, float | None] = {}
            for i, u in enumerate(raw["units"]):
                if u not in memo:  # a blank cell means the schema's rate_units
                    memo[u] = _rate_factor_or_none(u) if u.strip() else default
                if memo[u] is None:
                    problems.append((i, f"unknown rate units {u!r}"))
                    factor[i] = np.nan
                else:
                    factor[i] = memo[u]
        out["q"] = out["q"] * factor
        out["q_sigma"] = out["q_sigma"] * factor
        out["lon"] = ((out["lon"] + 180.0) % 360.0) - 180.0
        out["instrument"] = np.asarray(
            [s.strip() for s in raw["instrument"]] if "instrument" in raw else [""] * m, dtype=str
        )
        ids = [s.strip() for s in raw["id"]] if "id" in raw else [""] * m
        out["ids"] = np.asarray([s or f"line{ln}" for s, ln in zip(ids, lines, strict=True)], str)
        ok = np.ones(m, bool)
        for i, msg in problems:
            ok[i] = False
            self.issues.append((int(lines[i]), msg))
        out["ok"] = ok
        out["lines"] = lines
        return out


def read_catalog(
    path: str | os.PathLike,
    schema: CatalogSchema | str = "canonical",
    *,
    errors: str = "raise",
    blank_sigma: str = "error",
    time_format: str | None = None,
    epoch_unit: str | None = None,
    years: tuple[int, int] = DEFAULT_YEARS,
) -> PlumeCatalog | tuple[PlumeCatalog, CatalogReport]:
    """Read a plume-list CSV (the rules are in the module docstring).

    Args:
        path: CSV file, UTF-8, header row first.
        schema: a :class:`CatalogSchema` or the name of a built-in one
            (``"canonical"``, ``"imeo"``, ``"carbon_mapper"``, ``"ghgsat"``).
        errors: ``"raise"`` (default) raises :class:`CatalogError` if any row is
            malformed; ``"report"`` returns ``(catalog, report)`` with the clean rows.
        blank_sigma: ``"error"`` (default): a blank ``q_sigma`` in a file that has the
            column is a malformed row; ``"point"``: such rows are exact rates
            (``q_sigma`` NaN) while the others keep their uncertainty.
        time_format: a ``strptime`` format for the time column (UTC unless ``%z``).
        epoch_unit: ``"s"`` or ``"ms"``: the time column holds Unix epochs in that unit.
        years: plausible ``(first, last)`` calendar years of a detection (UTC).

    Raises:
        ValueError: bad arguments, an unreadable file or header (empty, not UTF-8,
            a required column missing, a mapped column repeated), naming the file.
        CatalogError: malformed rows with ``errors="raise"``, every one with its line.
    """
    if isinstance(schema, str):
        if schema not in SCHEMAS:
            raise ValueError(f"`schema` {schema!r} is not one of {sorted(SCHEMAS)}")
        schema = SCHEMAS[schema]
    if not isinstance(schema, CatalogSchema):
        raise TypeError(f"`schema` must be a CatalogSchema or a name, got {type(schema)}")
    if errors not in ("raise", "report"):
        raise ValueError(f"`errors` must be 'raise' or 'report', got {errors!r}")
    if blank_sigma not in BLANK_SIGMA:
        raise ValueError(f"`blank_sigma` must be one of {BLANK_SIGMA}, got {blank_sigma!r}")
    rule = TimeRule(time_format, epoch_unit, tuple(years))
    if not os.path.isfile(path):
        raise ValueError(f"`path` {os.fspath(path)!r} is not a file")
    parts: list[dict[str, np.ndarray]] = []
    digests: list[np.ndarray] = []
    with StrictCSV(path) as csvf:
        reader = _Reader(csvf, schema, rule, blank_sigma)
        for ch in csvf.chunks(reader.index):
            parts.append(reader.chunk(ch.lines, ch.columns))
            digests.append(ch.digests)
        issues = csvf.issues + reader.issues
        n_rows = csvf.n_records
    keys = ("time", "lat", "lon", "q", "q_sigma", "wind", "instrument", "ids", "lines", "ok")
    if parts:
        cols = {k: np.concatenate([p[k] for p in parts]) for k in keys}
        dig = np.concatenate(digests)
    else:
        cols = {k: np.zeros(0, bool if k == "ok" else float) for k in keys}
        cols["instrument"] = cols["ids"] = np.zeros(0, str)
        cols["lines"] = np.zeros(0, np.int64)
        dig = np.zeros((0, 2), np.uint64)
    dup, first = duplicate_rows(cols["lines"], dig)
    for pos, ln in zip(dup, first, strict=True):
        issues.append((int(cols["lines"][pos]), f"exact duplicate of line {int(ln)}"))
    cols["ok"][dup] = False
    issues.sort(key=lambda x: x[0])
    sigma_mode = (
        "absent"
        if "q_sigma" not in reader.present
        else ("column" if blank_sigma == "error" else "column, blanks exact")
    )
    report = CatalogReport(os.fspath(path), n_rows, tuple(issues), rule.describe(), sigma_mode)
    if issues and errors == "raise":
        raise CatalogError(report)
    ok = cols.pop("ok")
    cat = PlumeCatalog(**{k: v[ok] for k, v in cols.items()})
    return (cat, report) if errors == "report" else cat


def rescale_wind(catalog: PlumeCatalog, new_wind: Sequence[float] | np.ndarray) -> PlumeCatalog:
    """Re-quantify with a different wind: IME/CSF rates scale linearly with the wind speed
    (``Q = U_eff · IME / L``, Varon et al. 2018), so ``q' = q · u'/u`` (and ``q_sigma``).

    Raises:
        ValueError: if ``new_wind`` has the wrong length, is non-positive, or a row has no
            original wind.
    """
    u = np.asarray(new_wind, dtype=float)
    if u.shape != catalog.q.shape:
        raise ValueError(f"`new_wind` must have shape {catalog.q.shape}, got {u.shape}")
    if not np.all(u > 0):
        raise ValueError("`new_wind` must be > 0")
    if np.any(np.isnan(catalog.wind)):
        raise ValueError("`catalog` has rows without a wind speed; cannot rescale them")
    r = u / catalog.wind
    return dataclasses.replace(catalog, q=catalog.q * r, q_sigma=catalog.q_sigma * r, wind=u)
