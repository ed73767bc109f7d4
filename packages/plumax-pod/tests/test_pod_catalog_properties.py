"""Property tests of the plume-list reader (hypothesis).

Random clean rows (values, unicode instrument names, ids with commas, quotes and line
breaks), random schemas, column orders, extra columns, quoting, line endings and BOM;
then random damage to some records (bad or blank sigma, bad rate, latitude, time or
epoch-in-an-ISO-column, missing or extra fields, non-UTF-8 bytes, an exact duplicate).
Each run must end in a ``CatalogError`` whose bad lines are exactly the damaged records'
first lines, and with ``errors="report"`` in the same catalogue as reading the clean
records alone; an undamaged file reads to the generating values.
"""

import csv
import datetime as dt
import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from plumax_pod import SCHEMAS, CatalogError, read_catalog

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
T_LO = int(dt.datetime(2000, 1, 1, tzinfo=dt.UTC).timestamp())
T_HI = int(dt.datetime(2030, 1, 1, tzinfo=dt.UTC).timestamp())
INSTRUMENTS = ["EMIT", "Sentinel-5P", "GF-5 高分", "Göktürk", "tan,ager", 'av "3"']
UNIT_FACTOR = {"kg/h": 1 / 3600, "t/h": 1000 / 3600, "kg/s": 1.0}
DAMAGE = [
    "sigma_negative", "sigma_zero", "sigma_blank", "sigma_text", "q_text", "q_negative",
    "q_inf", "lat", "time_text", "time_epoch", "time_1899", "short", "long", "bytes",
    "latin1", "duplicate",
]  # fmt: skip


def _iso(t: int, style: int) -> str:
    d = dt.datetime.fromtimestamp(t, dt.UTC)
    if style == 0:
        return d.strftime("%Y-%m-%dT%H:%M:%SZ")
    if style == 1:
        return d.isoformat()  # +00:00
    if style == 2:
        return d.strftime("%Y-%m-%d %H:%M:%S")  # naive = UTC
    return (d + dt.timedelta(hours=5, minutes=30)).strftime("%Y-%m-%dT%H:%M:%S+05:30")


rows_st = st.lists(
    st.fixed_dictionaries(
        {
            "t": st.integers(T_LO, T_HI),
            "style": st.integers(0, 3),
            "lat": st.floats(-90, 90),
            "lon": st.floats(-180, 359.99),
            "q": st.floats(1e-3, 1e5),
            "rel": st.one_of(st.none(), st.floats(0.01, 3.0)),
            "wind": st.one_of(st.none(), st.floats(0.1, 30.0)),
            "instrument": st.sampled_from(INSTRUMENTS),
            "tag": st.text(st.sampled_from(list('ab,"\n é')), max_size=6),
        }
    ),
    min_size=1,
    max_size=25,
)


@st.composite
def files(draw):
    rows = draw(rows_st)
    schema = SCHEMAS[draw(st.sampled_from(sorted(SCHEMAS)))]
    cols = dict(schema.columns)
    fields = list(cols)
    with_sigma = draw(st.booleans())
    blank_sigma = draw(st.sampled_from(["error", "point"]))
    if not with_sigma:
        fields.remove("q_sigma")
    extra = draw(st.lists(st.sampled_from(["note", "flag", "x y"]), unique=True, max_size=2))
    order = draw(st.permutations(fields + extra))
    units = draw(st.sampled_from(sorted(UNIT_FACTOR)))
    n_damage = draw(st.integers(0, min(4, len(rows))))
    damaged = draw(st.lists(st.integers(0, len(rows) - 1), min_size=n_damage, max_size=n_damage))
    kinds = {i: draw(st.sampled_from(DAMAGE)) for i in sorted(set(damaged))}
    if not with_sigma:  # sigma damage needs the column
        kinds = {i: k for i, k in kinds.items() if not k.startswith("sigma")}
    if blank_sigma == "point":  # a blank sigma is then allowed, not damage
        kinds = {i: k for i, k in kinds.items() if k != "sigma_blank"}
    style = {
        "bom": draw(st.booleans()),
        "crlf": draw(st.booleans()),
        "quote_all": draw(st.booleans()),
    }
    return rows, schema, cols, order, units, with_sigma, blank_sigma, kinds, style


def _record(i, r, cols, order, units, schema, with_sigma, blank_sigma):
    """The clean fields of row ``i`` by canonical field (+ extra columns)."""
    rate_units = units if "units" in cols else schema.rate_units
    f = {
        "id": f"p{i}|{r['tag']}",  # unique: clean rows are never exact duplicates
        "time": _iso(r["t"], r["style"]),
        "lat": repr(r["lat"]),
        "lon": repr(r["lon"]),
        "q": repr(r["q"]),
        "q_sigma": "" if r["rel"] is None else repr(r["q"] * r["rel"]),
        "wind": "" if r["wind"] is None else repr(r["wind"]),
        "instrument": r["instrument"],
        "units": rate_units,
        "note": "n",
        "flag": "",
        "x y": "1,2",
    }
    if with_sigma and r["rel"] is None and blank_sigma == "error":
        f["q_sigma"] = repr(r["q"] * 0.5)
    return f, rate_units


def _damage(f, kind):
    if kind == "sigma_negative":
        f["q_sigma"] = "-1.5"
    elif kind == "sigma_zero":
        f["q_sigma"] = "0"
    elif kind == "sigma_blank":
        f["q_sigma"] = ""
    elif kind == "sigma_text":
        f["q_sigma"] = "n/a"
    elif kind == "q_text":
        f["q"] = "12 kg"
    elif kind == "q_negative":
        f["q"] = "-3"
    elif kind == "q_inf":
        f["q"] = "inf"
    elif kind == "lat":
        f["lat"] = "95.5"
    elif kind == "time_text":
        f["time"] = "yesterday"
    elif kind == "time_epoch":
        f["time"] = "1706659200"
    elif kind == "time_1899":
        f["time"] = "1899-12-31T00:00:00Z"
    elif kind == "latin1":
        f["instrument"] = "Göktürk"
    elif kind == "bytes":
        f["instrument"] += "\x01"  # becomes a 0xff byte inside the field (see _serialise)


def _serialise(records, style, header):
    """Bytes of the file and the first line of each record (header = line 1)."""
    out, starts, line = [], [], 2
    lt = "\r\n" if style["crlf"] else "\n"
    quoting = csv.QUOTE_ALL if style["quote_all"] else csv.QUOTE_MINIMAL

    def enc(fields, encoding="utf-8"):
        buf = io.StringIO()
        csv.writer(buf, lineterminator=lt, quoting=quoting).writerow(fields)
        return buf.getvalue().encode(encoding)

    out.append((b"\xef\xbb\xbf" if style["bom"] else b"") + enc(header))
    for fields, raw in records:
        starts.append(line)
        data = enc(fields, "latin-1" if raw == "latin1" else "utf-8")
        if raw == "bytes":  # a stray byte inside a field: the CSV structure is unchanged
            data = data.replace(b"\x01", b"\xff")
        elif raw == "short":
            data = enc(fields[:-1])
        elif raw == "long":
            data = enc(fields + ["surplus"])
        out.append(data)
        line += data.count(b"\n")
    return b"".join(out), starts


def _same(a, b):
    for f in ("time", "lat", "lon", "q", "q_sigma", "wind"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
    assert list(a.instrument) == list(b.instrument) and list(a.ids) == list(b.ids)


@SETTINGS
@given(spec=files())
def test_damage_is_reported_by_line_and_clean_rows_read_alike(spec, tmp_path_factory):
    rows, schema, cols, order, units, with_sigma, blank_sigma, kinds, style = spec
    tmp = tmp_path_factory.mktemp("prop")
    header = [cols.get(c, c) for c in order]
    records, clean, damaged = [], [], set()
    dup_sources = []
    for i, r in enumerate(rows):
        f, rate_units = _record(i, r, cols, order, units, schema, with_sigma, blank_sigma)
        kind = kinds.get(i)
        if kind and kind != "duplicate":
            _damage(f, kind)
        fields = [f[c] for c in order]
        raw = kind if kind in ("bytes", "latin1", "short", "long") else None
        records.append((fields, raw))
        if kind and kind != "duplicate":
            damaged.add(len(records) - 1)
        else:
            clean.append(i)
            dup_sources.append(fields)
        if kind == "duplicate" and dup_sources:
            records.append((list(dup_sources[0]), None))  # a copy of an earlier clean row
            damaged.add(len(records) - 1)
    data, starts = _serialise(records, style, header)
    path = tmp / "damaged.csv"
    path.write_bytes(data)
    clean_data, _ = _serialise(
        [rec for j, rec in enumerate(records) if j not in damaged], style, header
    )
    clean_path = tmp / "clean.csv"
    clean_path.write_bytes(clean_data)
    kw = {"blank_sigma": blank_sigma}

    ref = read_catalog(clean_path, schema, **kw)
    # the clean file reads back to the generating values
    for j, i in enumerate(clean):
        r = rows[i]
        rate_units = units if "units" in cols else schema.rate_units
        assert ref.time[j] == r["t"] and ref.lat[j] == r["lat"]
        assert ref.lon[j] == ((r["lon"] + 180.0) % 360.0) - 180.0
        assert ref.q[j] == pytest.approx(r["q"] * UNIT_FACTOR[rate_units], rel=1e-12)
        assert ref.instrument[j] == r["instrument"]
        assert np.isnan(ref.q_sigma[j]) == (
            not with_sigma or (r["rel"] is None and blank_sigma == "point")
        )

    expected_bad = tuple(sorted(starts[j] for j in damaged))
    if expected_bad:
        with pytest.raises(CatalogError) as err:
            read_catalog(path, schema, **kw)
        assert err.value.report.bad_lines == expected_bad, err.value
    else:
        _same(read_catalog(path, schema, **kw), ref)
    cat, rep = read_catalog(path, schema, errors="report", **kw)
    assert rep.bad_lines == expected_bad
    assert rep.n_rows == len(records)
    _same(cat, ref)
    assert list(cat.lines) == [starts[j] for j in range(len(records)) if j not in damaged]
