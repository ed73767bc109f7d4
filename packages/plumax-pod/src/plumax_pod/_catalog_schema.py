"""Plume-list schemas: canonical fields, built-in column layouts and rate units.

See :mod:`plumax_pod._catalog` for the fields and the reading rules. Rates are
converted to kg/s from ``kg/s``, ``kg/h``, ``t/h`` and their common spellings
(``kg s-1``, ``kg/hr``, ``t h-1``, ``tonne/h``; case and spacing ignored).
"""

import dataclasses
from collections.abc import Mapping

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
FIELDS = ("time", "lat", "lon", "q", "q_sigma", "wind", "instrument", "id", "units")
REQUIRED = ("time", "lat", "lon", "q")


def _unit_key(units: str) -> str:
    return " ".join(units.strip().lower().split())


def rate_to_kg_s(value, units: str):
    """Convert an emission rate from ``units`` (kg/s, kg/h, t/h, ...) to kg/s."""
    key = _unit_key(units)
    if key not in _UNITS:
        raise ValueError(f"`units` {units!r} is not one of {sorted(_UNITS)}")
    return np.asarray(value, dtype=float) * _UNITS[key]


def kg_s_to(value, units: str):
    """Convert kg/s to ``units``."""
    key = _unit_key(units)
    if key not in _UNITS:
        raise ValueError(f"`units` {units!r} is not one of {sorted(_UNITS)}")
    return np.asarray(value, dtype=float) / _UNITS[key]


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
        missing = [f for f in REQUIRED if f not in self.columns]
        if missing:
            raise ValueError(f"`columns` of schema {self.name!r} lacks required field(s) {missing}")
        unknown = set(self.columns) - set(FIELDS)
        if unknown:
            raise ValueError(f"`columns` has unknown field(s) {sorted(unknown)}")
        names = list(self.columns.values())
        shared = sorted({c for c in names if names.count(c) > 1})
        if shared:
            raise ValueError(f"`columns` maps several fields to the same column(s) {shared}")
        if _unit_key(self.rate_units) not in _UNITS:
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
CANONICAL_SCHEMA = CatalogSchema("canonical", {f: f for f in FIELDS}, "kg/h")
SCHEMAS = {s.name: s for s in (CANONICAL_SCHEMA, IMEO_SCHEMA, CARBON_MAPPER_SCHEMA, GHGSAT_SCHEMA)}
