"""Plume-list schemas: canonical fields, built-in column layouts and rate units.

See :mod:`plumax_pod._catalog` for the fields and the reading rules. Rates are
converted to kg/s from ``kg/s``, ``kg/h``, ``t/h`` and their common spellings
(``kg s-1``, ``kg/hr``, ``t h-1``, ``tonne/h``; case and spacing ignored) by
:mod:`plumax_core.units`, which holds the one table of rate units.
"""

import dataclasses
from collections.abc import Mapping

import numpy as np

from plumax_core import units as _units

FIELDS = ("time", "lat", "lon", "q", "q_sigma", "wind", "instrument", "id", "units")
REQUIRED = ("time", "lat", "lon", "q")


def rate_to_kg_s(value, units: str):
    """Convert an emission rate from ``units`` (kg/s, kg/h, t/h, ...) to kg/s.

    The NumPy front end of :func:`plumax_core.units.rate_to_kg_s` (the unit table lives
    there): ``value`` becomes a float64 array.

    Raises:
        ValueError: ``units`` is not an emission-rate unit (the message names ``units``).
    """
    return _units.rate_to_kg_s(np.asarray(value, dtype=float), units)


def kg_s_to(value, units: str):
    """Convert kg/s to ``units`` (float64 array; :func:`plumax_core.units.rate_from_kg_s`)."""
    return _units.rate_from_kg_s(np.asarray(value, dtype=float), units)


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
        _units.rate_factor(self.rate_units, name="rate_units")


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
