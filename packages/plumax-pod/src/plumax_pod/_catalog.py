"""Plume-list CSV ingestion: schemas, unit conversion, wind rescaling, de-duplication.

A :class:`CatalogSchema` maps the canonical fields to a catalogue's column names:

==============  ========  =====================================================
field           required  meaning
==============  ========  =====================================================
``time``        yes       ISO 8601 date/time (``Z`` or offset = UTC) or Unix seconds
``lat``         yes       latitude (degrees north, [-90, 90])
``lon``         yes       longitude (degrees east, [-180, 360))
``q``           yes       emission rate, in ``rate_units`` (or the ``units`` column)
``q_sigma``     no        1-sigma emission-rate uncertainty, same units
``wind``        no        wind speed used in the quantification (m/s)
``instrument``  no        instrument / satellite name
``id``          no        plume identifier
``units``       no        per-row rate units, overriding ``rate_units``
==============  ========  =====================================================

Rates are converted to kg/s (``t/h``, ``kg/h``, ``kg/s`` and common spellings).
Every malformed row is reported with its line number in the file (the header is line 1)
in a :class:`CatalogReport`; ``errors="raise"`` raises :class:`CatalogError` listing all
of them, ``errors="report"`` returns the clean rows plus the report. Nothing is silently
dropped.
"""

import csv
import dataclasses
import datetime as dt
import math
import os
from collections.abc import Mapping, Sequence

import numpy as np

_UNITS = {
    "kg/s": 1.0,
    "kg s-1": 1.0,
    "kg/h": 1 / 3600,
    "kg/hr": 1 / 3600,
    "kg h-1": 1 / 3600,
    "kgh": 1 / 3600,
    "t/h": 1000 / 3600,
    "t/hr": 1000 / 3600,
    "t h-1": 1000 / 3600,
    "tonne/h": 1000 / 3600,
}
EARTH_RADIUS_M = 6_371_008.8  # IUGG mean Earth radius


def rate_to_kg_s(value, units: str):
    """Convert an emission rate from ``units`` (kg/s, kg/h, t/h, ...) to kg/s."""
    key = units.strip().lower().replace(" ", " ")
    if key not in _UNITS:
        raise ValueError(f"`units` {units!r} is not one of {sorted(_UNITS)}")
    return np.asarray(value, dtype=float) * _UNITS[key]


def kg_s_to(value, units: str):
    """Convert kg/s to ``units``."""
    return np.asarray(value, dtype=float) / _UNITS[units.strip().lower()]


@dataclasses.dataclass(frozen=True)
class CatalogSchema:
    """Column names of a plume list (see the module docstring for the fields).

    Attributes:
        name: schema label. columns: mapping canonical field -> CSV column.
        rate_units: units of ``q``/``q_sigma`` when no ``units`` column is mapped.
    """

    name: str
    columns: Mapping[str, str]
    rate_units: str = "kg/h"

    def __post_init__(self):
        missing = [f for f in ("time", "lat", "lon", "q") if f not in self.columns]
        if missing:
            raise ValueError(f"`columns` of schema {self.name!r} lacks required field(s) {missing}")
        unknown = set(self.columns) - {
            "time",
            "lat",
            "lon",
            "q",
            "q_sigma",
            "wind",
            "instrument",
            "id",
            "units",
        }
        if unknown:
            raise ValueError(f"`columns` has unknown field(s) {sorted(unknown)}")
        if self.rate_units.strip().lower() not in _UNITS:
            raise ValueError(f"`rate_units` {self.rate_units!r} is not one of {sorted(_UNITS)}")


# Column layouts modelled on the public exports; check them against the file you have.
IMEO_SCHEMA = CatalogSchema(
    "imeo",
    {
        "id": "id_plume",
        "time": "tile_date",
        "lat": "lat",
        "lon": "lon",
        "q": "ch4_fluxrate",
        "q_sigma": "ch4_fluxrate_std",
        "wind": "wind_speed",
        "instrument": "satellite",
    },
    "kg/h",
)
CARBON_MAPPER_SCHEMA = CatalogSchema(
    "carbon_mapper",
    {
        "id": "plume_id",
        "time": "datetime",
        "lat": "plume_latitude",
        "lon": "plume_longitude",
        "q": "emission_auto",
        "q_sigma": "emission_uncertainty_auto",
        "wind": "wind_speed_avg_auto",
        "instrument": "instrument",
    },
    "kg/h",
)
GHGSAT_SCHEMA = CatalogSchema(
    "ghgsat",
    {
        "id": "observation_id",
        "time": "date_time",
        "lat": "latitude",
        "lon": "longitude",
        "q": "emission_rate",
        "q_sigma": "emission_rate_uncertainty",
        "wind": "wind_speed",
        "instrument": "satellite",
    },
    "t/h",
)
SCHEMAS = {s.name: s for s in (IMEO_SCHEMA, CARBON_MAPPER_SCHEMA, GHGSAT_SCHEMA)}


@dataclasses.dataclass(frozen=True)
class CatalogReport:
    """Problems found while reading: ``issues`` is a tuple of ``(line, message)``."""

    path: str
    n_rows: int
    issues: tuple[tuple[int, str], ...]

    @property
    def bad_lines(self) -> tuple[int, ...]:
        return tuple(sorted({ln for ln, _ in self.issues}))

    def __str__(self):
        head = f"{self.path}: {len(self.bad_lines)} malformed row(s) of {self.n_rows}"
        return "\n".join([head] + [f"  line {ln}: {msg}" for ln, msg in self.issues])


class CatalogError(ValueError):
    """Malformed rows in a plume list; ``.report`` holds every problem."""

    def __init__(self, report: CatalogReport):
        super().__init__(str(report))
        self.report = report


@dataclasses.dataclass(frozen=True)
class PlumeCatalog:
    """Clean plume detections (numpy, float64).

    Attributes:
        time: ``(n,)`` Unix seconds (UTC). lat, lon: degrees. q: kg/s.
        q_sigma: kg/s (NaN where absent). wind: m/s (NaN where absent).
        instrument, ids: ``(n,)`` strings. lines: ``(n,)`` source line numbers.
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
        """Write in the canonical schema (:data:`CANONICAL_SCHEMA`, rates in ``rate_units``)."""
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["id", "time", "lat", "lon", "q", "q_sigma", "wind", "instrument", "units"])
            for i in range(len(self)):
                t = dt.datetime.fromtimestamp(float(self.time[i]), tz=dt.UTC)
                w.writerow(
                    [
                        self.ids[i],
                        t.isoformat().replace("+00:00", "Z"),
                        repr(float(self.lat[i])),
                        repr(float(self.lon[i])),
                        repr(float(kg_s_to(self.q[i], rate_units))),
                        ""
                        if math.isnan(self.q_sigma[i])
                        else repr(float(kg_s_to(self.q_sigma[i], rate_units))),
                        "" if math.isnan(self.wind[i]) else repr(float(self.wind[i])),
                        self.instrument[i],
                        rate_units,
                    ]
                )


CANONICAL_SCHEMA = CatalogSchema(
    "canonical",
    {f: f for f in ("id", "time", "lat", "lon", "q", "q_sigma", "wind", "instrument", "units")},
    "kg/h",
)
SCHEMAS["canonical"] = CANONICAL_SCHEMA


def parse_time(text: str) -> float:
    """ISO 8601 (naive = UTC) or Unix seconds -> Unix seconds."""
    s = text.strip()
    try:
        return float(s)
    except ValueError:
        pass
    t = dt.datetime.fromisoformat(s)
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.timestamp()


def read_catalog(
    path: str | os.PathLike,
    schema: CatalogSchema | str = "canonical",
    *,
    errors: str = "raise",
) -> PlumeCatalog | tuple[PlumeCatalog, CatalogReport]:
    """Read a plume-list CSV.

    Args:
        path: CSV file (header row first).
        schema: a :class:`CatalogSchema` or the name of a built-in one
            (``"canonical"``, ``"imeo"``, ``"carbon_mapper"``, ``"ghgsat"``).
        errors: ``"raise"`` (default) raises :class:`CatalogError` if any row is
            malformed; ``"report"`` returns ``(catalog, report)`` with the clean rows.
    """
    if isinstance(schema, str):
        if schema not in SCHEMAS:
            raise ValueError(f"`schema` {schema!r} is not one of {sorted(SCHEMAS)}")
        schema = SCHEMAS[schema]
    if errors not in ("raise", "report"):
        raise ValueError(f"`errors` must be 'raise' or 'report', got {errors!r}")
    cols = schema.columns
    issues: list[tuple[int, str]] = []
    rows: dict[str, list] = {
        k: [] for k in ("time", "lat", "lon", "q", "q_sigma", "wind", "instrument", "ids", "lines")
    }
    n_rows = 0
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        absent = [
            c for f, c in cols.items() if f in ("time", "lat", "lon", "q") and c not in header
        ]
        if absent:
            raise ValueError(
                f"`path` {os.fspath(path)!r}: required column(s) {absent} missing "
                f"from the header (schema {schema.name!r})"
            )
        for row in reader:
            n_rows += 1
            line = reader.line_num
            if None in row:
                issues.append((line, f"{len(row[None])} more field(s) than the header"))
                continue
            if any(v is None for v in row.values()):
                issues.append((line, "fewer fields than the header"))
                continue

            def get(field, row=row):
                c = cols.get(field)
                return None if c is None else (row.get(c) or "").strip()

            bad = []
            try:
                t = parse_time(get("time"))
            except (ValueError, TypeError):
                bad.append(f"unparsable time {get('time')!r}")
            vals = {}
            for f in ("lat", "lon", "q", "q_sigma", "wind"):
                s = get(f)
                if s is None or s == "":
                    if f in ("lat", "lon", "q"):
                        bad.append(f"missing {f}")
                    vals[f] = math.nan
                    continue
                try:
                    vals[f] = float(s)
                except ValueError:
                    bad.append(f"non-numeric {f} {s!r}")
                    vals[f] = math.nan
                    continue
                if not math.isfinite(vals[f]):
                    bad.append(f"non-finite {f}")
            units = get("units") or schema.rate_units
            if units.strip().lower() not in _UNITS:
                bad.append(f"unknown rate units {units!r}")
            if math.isfinite(vals["lat"]) and not -90 <= vals["lat"] <= 90:
                bad.append(f"lat {vals['lat']} outside [-90, 90]")
            if math.isfinite(vals["lon"]) and not -180 <= vals["lon"] < 360:
                bad.append(f"lon {vals['lon']} outside [-180, 360)")
            if math.isfinite(vals["q"]) and vals["q"] <= 0:
                bad.append(f"non-positive emission rate {vals['q']}")
            if math.isfinite(vals["wind"]) and vals["wind"] <= 0:
                bad.append(f"non-positive wind {vals['wind']}")
            if bad:
                issues.extend((line, b) for b in bad)
                continue
            rows["time"].append(t)
            rows["lat"].append(vals["lat"])
            rows["lon"].append(((vals["lon"] + 180) % 360) - 180)
            rows["q"].append(float(rate_to_kg_s(vals["q"], units)))
            rows["q_sigma"].append(float(rate_to_kg_s(vals["q_sigma"], units)))
            rows["wind"].append(vals["wind"])
            rows["instrument"].append(get("instrument") or "")
            rows["ids"].append(get("id") or f"line{line}")
            rows["lines"].append(line)
    report = CatalogReport(os.fspath(path), n_rows, tuple(issues))
    if issues and errors == "raise":
        raise CatalogError(report)
    cat = PlumeCatalog(
        time=np.asarray(rows["time"], float),
        lat=np.asarray(rows["lat"], float),
        lon=np.asarray(rows["lon"], float),
        q=np.asarray(rows["q"], float),
        q_sigma=np.asarray(rows["q_sigma"], float),
        wind=np.asarray(rows["wind"], float),
        instrument=np.asarray(rows["instrument"], dtype=object).astype(str),
        ids=np.asarray(rows["ids"], dtype=object).astype(str),
        lines=np.asarray(rows["lines"], int),
    )
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


def haversine(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance (m) on a sphere of radius :data:`EARTH_RADIUS_M`."""
    p1, p2 = np.deg2rad(lat1), np.deg2rad(lat2)
    dlat, dlon = p2 - p1, np.deg2rad(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dlat / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def deduplicate(
    catalog: PlumeCatalog, *, distance_m: float, time_s: float, keep: str = "first"
) -> tuple[PlumeCatalog, np.ndarray]:
    """Merge detections of the same event: within ``distance_m`` (haversine) and
    ``time_s`` of a cluster's first detection (single-link in time order).

    Args:
        keep: ``"first"`` (earliest), ``"max"`` (largest q) or ``"mean"`` (first row with
            the cluster's mean q and the mean of its q_sigma).

    Returns:
        ``(deduplicated catalog, cluster index of every input row)``.
    """
    if not (distance_m >= 0 and time_s >= 0):
        raise ValueError("`distance_m` and `time_s` must be >= 0")
    if keep not in ("first", "max", "mean"):
        raise ValueError(f"`keep` must be 'first', 'max' or 'mean', got {keep!r}")
    order = np.argsort(catalog.time, kind="stable")
    cluster = -np.ones(len(catalog), int)
    heads: list[int] = []
    for i in order:
        for c in range(len(heads) - 1, -1, -1):
            h = heads[c]
            if catalog.time[i] - catalog.time[h] > time_s:
                break
            if (
                haversine(catalog.lat[h], catalog.lon[h], catalog.lat[i], catalog.lon[i])
                <= distance_m
            ):
                cluster[i] = c
                break
        if cluster[i] < 0:
            cluster[i] = len(heads)
            heads.append(i)
    pick = []
    q, qs = catalog.q.copy(), catalog.q_sigma.copy()
    for c, h in enumerate(heads):
        members = np.flatnonzero(cluster == c)
        if keep == "max":
            pick.append(members[np.argmax(catalog.q[members])])
        else:
            pick.append(h)
            if keep == "mean":
                q[h] = catalog.q[members].mean()
                qs[h] = catalog.q_sigma[members].mean()
    out = dataclasses.replace(catalog, q=q, q_sigma=qs).take(np.asarray(pick, int))
    return out, cluster
