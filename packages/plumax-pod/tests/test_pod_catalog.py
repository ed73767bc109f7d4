"""Plume-list CSV ingestion: round trip, schemas, units, malformed rows, wind, de-duplication."""

import csv

import numpy as np
import pytest

from plumax_core import units as core_units
from plumax_pod import (
    CatalogError,
    PlumeCatalog,
    deduplicate,
    haversine,
    rate_to_kg_s,
    read_catalog,
    rescale_wind,
)


def _write(path, header, rows):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def test_units():
    assert float(rate_to_kg_s(3600.0, "kg/h")) == pytest.approx(1.0)
    assert float(rate_to_kg_s(3.6, "t/h")) == pytest.approx(1.0)
    assert float(rate_to_kg_s(2.0, "kg/s")) == 2.0
    with pytest.raises(ValueError, match="units"):
        rate_to_kg_s(1.0, "lb/h")


@pytest.mark.parametrize("spelling", sorted(core_units.RATE_UNITS))
def test_reader_uses_the_core_unit_table(tmp_path, spelling):
    """Every spelling of plumax_core.units is read, with the core's factor, bit for bit."""
    path = tmp_path / "units.csv"
    _write(
        path,
        ["time", "lat", "lon", "q", "units"],
        [["2024-03-01T10:00:00Z", "31.5", "-102.0", "360", spelling]],
    )
    assert read_catalog(path).q[0] == 360.0 * core_units.RATE_UNITS[spelling]
    assert rate_to_kg_s(360.0, spelling) == core_units.rate_to_kg_s(360.0, spelling)


def test_round_trip_canonical(tmp_path):
    rng = np.random.default_rng(0)
    n = 25
    cat = PlumeCatalog(
        time=1.7e9 + np.sort(rng.uniform(0, 1e6, n)).round(),
        lat=rng.uniform(-60, 60, n),
        lon=rng.uniform(-170, 170, n),
        q=np.exp(rng.normal(-2, 1, n)),
        q_sigma=np.full(n, np.nan),
        wind=rng.uniform(1, 8, n),
        instrument=np.array(["EMIT"] * n),
        ids=np.array([f"p{i}" for i in range(n)]),
        lines=np.arange(2, n + 2),
    )
    cat = PlumeCatalog(**{**cat.__dict__, "q_sigma": cat.q * 0.3})
    for units in ("kg/h", "t/h", "kg/s"):
        path = tmp_path / f"cat_{units.replace('/', '_')}.csv"
        cat.to_csv(path, rate_units=units)
        back = read_catalog(path)
        for f in ("time", "lat", "lon", "q", "q_sigma", "wind"):
            assert np.allclose(getattr(back, f), getattr(cat, f), rtol=1e-12), f
        assert list(back.ids) == list(cat.ids) and list(back.instrument) == ["EMIT"] * n
        assert list(back.lines) == list(range(2, n + 2))
    assert np.allclose(back.q_in("kg/h"), cat.q * 3600)
    assert back.times_relative().min() == 0.0


def test_schemas_and_malformed_rows(tmp_path):
    path = tmp_path / "cm.csv"
    header = [
        "plume_id",
        "datetime",
        "plume_latitude",
        "plume_longitude",
        "emission_auto",
        "emission_uncertainty_auto",
        "wind_speed_avg_auto",
        "instrument",
    ]
    rows = [
        ["a", "2023-05-01T10:00:00Z", "31.9", "-102.1", "360", "36", "3.0", "av3"],  # line 2
        ["b", "not-a-date", "31.9", "-102.1", "360", "36", "3.0", "av3"],  # line 3
        ["c", "2023-05-01T11:00:00Z", "95.0", "-102.1", "360", "", "3.0", "av3"],  # line 4
        ["d", "2023-05-01T12:00:00Z", "31.9", "-102.1", "-5", "", "3.0", "av3"],  # line 5
        ["e", "2023-05-01T13:00:00", "31.9", "-102.1", "abc", "", "", "av3"],  # line 6
        ["f", "2023-05-01T14:00:00+02:00", "31.9", "258.0", "7200", "", "", "emit"],  # line 7
        ["g", "2023-05-01T15:00:00Z", "31.9"],  # line 8
    ]
    _write(path, header, rows)
    with pytest.raises(CatalogError) as err:
        read_catalog(path, "carbon_mapper", blank_sigma="point")
    rep = err.value.report
    assert rep.bad_lines == (3, 4, 5, 6, 8) and rep.n_rows == 7
    assert "line 3" in str(err.value) and "unparsable time" in str(err.value)
    # the file has a q_sigma column: by default its blank cells are malformed rows too
    with pytest.raises(CatalogError) as err:
        read_catalog(path, "carbon_mapper")
    assert err.value.report.bad_lines == (3, 4, 5, 6, 7, 8)
    assert "missing q_sigma (column 'emission_uncertainty_auto')" in str(err.value)
    cat, rep2 = read_catalog(path, "carbon_mapper", errors="report", blank_sigma="point")
    assert rep2.bad_lines == rep.bad_lines
    assert list(cat.ids) == ["a", "f"] and list(cat.lines) == [2, 7]
    assert np.allclose(cat.q, [0.1, 2.0])  # kg/h -> kg/s
    assert cat.time[1] - cat.time[0] == 2 * 3600.0  # 14:00+02:00 = 12:00Z
    assert cat.lon[1] == pytest.approx(-102.0)  # 0-360 longitudes wrapped
    assert np.isnan(cat.wind[1])


# The header of a Carbon Mapper plume-list export (2025, v3 emissions; seen in a public
# repository that redistributes one). Our schema must find its columns, and its times are
# written with an hour-only UTC offset ("+00").
CARBON_MAPPER_2025_HEADER = (
    "plume_id,plume_latitude,plume_longitude,datetime,ipcc_sector,gas,emission_cmf_type,"
    "plume_bounds,instrument,mission_phase,published_at,modified,emission_version,"
    "processing_software,gsd,sensitivity_mode,off_nadir,emission_auto,"
    "emission_uncertainty_auto,wind_speed_avg_auto,wind_speed_std_auto,"
    "wind_direction_avg_auto,wind_direction_std_auto,wind_source_auto,platform,provider,"
    "plume_tif,plume_png,con_tif,rgb_tif,rgb_png"
).split(",")


def test_carbon_mapper_export_header(tmp_path):
    path = tmp_path / "cm2025.csv"
    row = {k: "" for k in CARBON_MAPPER_2025_HEADER}
    rows = []
    for i, (t, q, dq) in enumerate(
        [("2025-05-21T18:08:50+00", "1200.5", "110.0"), ("2025-05-22T18:10:00+00", "400", "")]
    ):
        r = dict(row)
        r.update(
            plume_id=f"tan-{i}",
            plume_latitude="31.5",
            plume_longitude="-102.0",
            datetime=t,
            plume_bounds="[-102.1, 31.4, -101.9, 31.6]",  # a quoted field with commas
            instrument="tan",
            emission_auto=q,
            emission_uncertainty_auto=dq,
            wind_speed_avg_auto="6.2",
        )
        rows.append([r[k] for k in CARBON_MAPPER_2025_HEADER])
    _write(path, CARBON_MAPPER_2025_HEADER, rows)
    cat = read_catalog(path, "carbon_mapper", blank_sigma="point")
    assert list(cat.ids) == ["tan-0", "tan-1"] and list(cat.instrument) == ["tan", "tan"]
    # 2025-05-21T18:08:50Z
    assert cat.time[0] == 1747850930.0 and cat.time[1] - cat.time[0] == 86400.0 + 70.0
    np.testing.assert_allclose(cat.q, [1200.5 / 3600.0, 400.0 / 3600.0])  # kg/h -> kg/s
    assert cat.q_sigma[0] == pytest.approx(110.0 / 3600.0) and np.isnan(cat.q_sigma[1])
    assert np.all(cat.wind == 6.2)


def test_ghgsat_units_column_and_missing_header(tmp_path):
    path = tmp_path / "g.csv"
    _write(
        path,
        [
            "observation_id",
            "date_time",
            "latitude",
            "longitude",
            "emission_rate",
            "emission_rate_uncertainty",
            "wind_speed",
            "satellite",
        ],
        [["x", "1700000000", "10", "20", "1.8", "0.36", "4", "GHGSat-C1"]],
    )
    with pytest.raises(CatalogError, match="epoch_unit"):
        read_catalog(path, "ghgsat")  # a bare number is not taken for a Unix epoch
    cat = read_catalog(path, "ghgsat", epoch_unit="s")
    assert cat.q[0] == pytest.approx(0.5) and cat.q_sigma[0] == pytest.approx(0.1)
    _write(
        path,
        ["time", "lat", "lon", "q", "units"],
        [
            ["1700000000", "1", "2", "5", "t/h"],
            ["1700000001", "1", "2", "5", "kg/s"],
            ["1700000002", "1", "2", "5", "furlongs"],
        ],
    )
    cat, rep = read_catalog(path, errors="report", epoch_unit="s")
    assert np.allclose(cat.q, [5 / 3.6, 5.0]) and rep.bad_lines == (4,)
    _write(path, ["time", "lat"], [["1", "2"]])
    with pytest.raises(ValueError, match="missing from the header"):
        read_catalog(path)
    with pytest.raises(ValueError, match="schema"):
        read_catalog(path, "nonexistent")


def test_haversine_and_dedup():
    # one degree of latitude on the IUGG mean sphere
    assert haversine(0.0, 0.0, 1.0, 0.0) == pytest.approx(6_371_008.8 * np.pi / 180)
    n = 6
    cat = PlumeCatalog(
        time=np.array([0.0, 600.0, 700.0, 5000.0, 20.0, 30.0]),
        lat=np.array([30.0, 30.001, 30.0, 30.0, 31.0, 31.0]),
        lon=np.array([-100.0, -100.0, -100.0, -100.0, -100.0, -100.0]),
        q=np.array([1.0, 3.0, 2.0, 1.0, 5.0, 7.0]),
        q_sigma=np.full(n, 0.1),
        wind=np.full(n, 3.0),
        instrument=np.array(["a"] * n),
        ids=np.array([str(i) for i in range(n)]),
        lines=np.arange(n),
    )
    out, cl = deduplicate(cat, distance_m=500.0, time_s=1800.0, keep="max")
    assert sorted(out.q.tolist()) == [1.0, 3.0, 7.0]
    assert cl[0] == cl[1] == cl[2] and cl[4] == cl[5] and cl[3] not in (cl[0], cl[4])
    mean, _ = deduplicate(cat, distance_m=500.0, time_s=1800.0, keep="mean")
    assert sorted(mean.q.tolist()) == [1.0, 2.0, 6.0]
    assert len(deduplicate(cat, distance_m=10.0, time_s=1.0)[0]) == n
    w = rescale_wind(cat, np.full(n, 6.0))
    assert np.allclose(w.q, 2 * cat.q) and np.allclose(w.q_sigma, 0.2)
    with pytest.raises(ValueError, match="new_wind"):
        rescale_wind(cat, np.zeros(n))


def test_catalog_rates_follow_the_core_emission_rate_rule():
    n = 3
    with pytest.raises(ValueError, match=r"`q` \(emission rate\) must be finite and > 0 kg/s"):
        PlumeCatalog(
            time=1.7e9 + np.arange(n, dtype=float),
            lat=np.zeros(n),
            lon=np.zeros(n),
            q=np.array([0.1, 0.0, 0.2]),
            q_sigma=np.full(n, np.nan),
            wind=np.full(n, 3.0),
            instrument=np.array(["EMIT"] * n),
            ids=np.array(["a", "b", "c"]),
            lines=np.arange(2, n + 2),
        )
