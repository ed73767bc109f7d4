"""Issue 17, catalogue ingest: the reading rules, one regression test per reported case.

* a bad or blank ``q_sigma`` is a malformed row, never a switch of every row's marks;
* times are ISO 8601 unless a format or epoch unit is given, and range-checked;
* repeated header columns, exact duplicate rows, non-UTF-8 bytes, a BOM;
* de-duplication on the grid equals the quadratic reference.
"""

import csv
import datetime as dt
import io
import math

import numpy as np
import pytest

from plumax_pod import (
    CatalogError,
    GaussianMarks,
    PlumeCatalog,
    PointMarks,
    TimeRule,
    catalog_mark_data,
    deduplicate,
    haversine,
    parse_time,
    read_catalog,
)

HEADER = ["id", "time", "lat", "lon", "q", "q_sigma", "wind", "instrument", "units"]


def _rows(n=8):
    return [
        [f"p{i}", f"2024-03-{i + 1:02d}T10:00:00Z", "31.5", "-102.0", f"{100 + 10 * i}",
         f"{20 + i}", "3.0", "EMIT", "kg/h"]
        for i in range(n)
    ]  # fmt: skip


def _write(path, rows, header=HEADER, encoding="utf-8", newline="\n", bom=False):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator=newline)
    w.writerow(header)
    w.writerows(rows)
    data = buf.getvalue().encode(encoding)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return path


# -- 1. the uncertainty rule ------------------------------------------------------------


@pytest.mark.parametrize(
    "bad, words",
    [("-5", "must be > 0"), ("0", "must be > 0"), ("abc", "non-numeric q_sigma"),
     ("nan", "non-finite q_sigma"), ("", "missing q_sigma")],
)  # fmt: skip
def test_one_bad_sigma_is_a_malformed_row_not_a_switch(tmp_path, bad, words):
    """Reported: one negative, zero or blank q_sigma turned every row into a point mark
    (116.8 t -> 134.3 t on the same list). Now that row alone is reported, by line."""
    rows = _rows()
    rows[3][5] = bad  # line 5
    path = _write(tmp_path / "c.csv", rows)
    with pytest.raises(CatalogError) as err:
        read_catalog(path)
    assert err.value.report.bad_lines == (5,)
    assert words in str(err.value) and "line 5" in str(err.value)
    cat, rep = read_catalog(path, errors="report")
    assert rep.bad_lines == (5,) and len(cat) == 7
    marks = catalog_mark_data(cat)
    # every remaining row keeps its Gaussian mark likelihood, sd(log Q) = sigma / q
    assert isinstance(marks, GaussianMarks)
    q = np.array([100 + 10 * i for i in range(8) if i != 3], float)
    s = np.array([20 + i for i in range(8) if i != 3], float)
    np.testing.assert_allclose(np.asarray(marks.std), s / q, rtol=1e-6)


def test_blank_sigma_point_keeps_the_others_gaussian(tmp_path):
    rows = _rows()
    rows[2][5] = ""
    rows[6][5] = " "
    path = _write(tmp_path / "c.csv", rows)
    cat, rep = read_catalog(path, blank_sigma="point", errors="report")
    assert rep.issues == () and rep.q_sigma == "column, blanks exact"
    assert np.isnan(cat.q_sigma[[2, 6]]).all() and np.isfinite(np.delete(cat.q_sigma, [2, 6])).all()
    marks = catalog_mark_data(cat)
    std = np.asarray(marks.std)
    assert std[2] == std[6] == 0.0  # exact rates: the Gaussian's zero-width limit
    assert np.all(np.delete(std, [2, 6]) > 0)
    # negative sigmas stay malformed under blank_sigma="point"
    rows[4][5] = "-1"
    with pytest.raises(CatalogError) as err:
        read_catalog(_write(tmp_path / "d.csv", rows), blank_sigma="point")
    assert err.value.report.bad_lines == (6,)
    with pytest.raises(ValueError, match="blank_sigma"):
        read_catalog(path, blank_sigma="drop")


def test_without_a_sigma_column_every_rate_is_exact(tmp_path):
    rows = [r[:5] + r[6:] for r in _rows()]
    header = [h for h in HEADER if h != "q_sigma"]
    cat, rep = read_catalog(_write(tmp_path / "c.csv", rows, header), errors="report")
    assert rep.q_sigma == "absent" and np.isnan(cat.q_sigma).all()
    assert isinstance(catalog_mark_data(cat), PointMarks)


def test_zero_std_gaussian_equals_point_marks(x64):
    """std = 0 is the exact limit: the same event terms as PointMarks up to log q."""
    from plumax_pod import HillPOD, LognormalMarks

    q = np.array([0.02, 0.1, 0.7])
    marks, pod = LognormalMarks(-2.5, 1.2), HillPOD(0.08, 2.0)
    g = np.asarray(GaussianMarks(np.log(q), np.zeros(3)).log_event_integral(marks, pod))
    p = np.asarray(PointMarks(q).log_event_integral(marks, pod))
    np.testing.assert_allclose(g, p + np.log(q), rtol=1e-10)
    with pytest.raises(ValueError, match="std"):
        GaussianMarks([0.0], [0.0], np.array([0.0]), np.array([1.0]))  # no prior division


# -- 2. times ---------------------------------------------------------------------------


def test_times_are_iso_8601_unless_told_otherwise(tmp_path):
    """Reported: ``20240131`` was read as Unix seconds (1970-08-23)."""
    assert parse_time("20240131") == dt.datetime(2024, 1, 31, tzinfo=dt.UTC).timestamp()
    assert parse_time("2024-01-31T12:00:00+02:00") == parse_time("2024-01-31T10:00:00Z")
    with pytest.raises(ValueError, match="epoch_unit"):
        parse_time("1706659200")
    assert parse_time("1706659200", epoch_unit="s") == 1706659200.0
    assert parse_time("1706659200500", epoch_unit="ms") == 1706659200.5
    assert parse_time("31/01/2024 10:00", time_format="%d/%m/%Y %H:%M") == parse_time(
        "2024-01-31T10:00Z"
    )
    with pytest.raises(ValueError, match="not both"):
        TimeRule("%Y", "s")
    with pytest.raises(ValueError, match="epoch_unit"):
        TimeRule(epoch_unit="minutes")
    with pytest.raises(ValueError, match="years"):
        TimeRule(years=(2100, 1970))


def test_millisecond_epochs_read_as_seconds_fail_by_line(tmp_path):
    """Reported: ms epochs failed after a 21 s fit with "year 55842 is out of range".
    Now the reader rejects them, by line, before anything is fitted."""
    rows = _rows()
    for i, r in enumerate(rows):
        r[1] = str(1_706_659_200_000 + i * 3_600_000)
    path = _write(tmp_path / "ms.csv", rows)
    with pytest.raises(CatalogError) as err:
        read_catalog(path, epoch_unit="s")
    assert err.value.report.bad_lines == tuple(range(2, 10))
    assert "outside the plausible years 1970-2100" in str(err.value)
    cat = read_catalog(path, epoch_unit="ms")
    assert cat.time[0] == 1_706_659_200.0 and np.all(np.diff(cat.time) == 3600.0)


def test_one_yyyymmdd_row_cannot_stretch_the_window(tmp_path):
    """Reported: one ``20240131`` row, read as 1970, stretched the window to 54 years."""
    rows = _rows()
    rows[5][1] = "20240131"
    cat = read_catalog(_write(tmp_path / "c.csv", rows))
    assert cat.time[5] == parse_time("2024-01-31")
    assert (cat.time.max() - cat.time.min()) / 86400 < 60
    rows[5][1] = "1706659200"  # a bare epoch in an ISO column: malformed, with a hint
    with pytest.raises(CatalogError) as err:
        read_catalog(_write(tmp_path / "d.csv", rows))
    assert err.value.report.bad_lines == (7,) and "epoch_unit" in str(err.value)


def test_time_range_is_configurable(tmp_path):
    rows = _rows()
    rows[0][1] = "1969-12-31T23:00:00Z"
    rows[1][1] = "2101-01-01T00:00:00Z"
    path = _write(tmp_path / "c.csv", rows)
    with pytest.raises(CatalogError) as err:
        read_catalog(path)
    assert err.value.report.bad_lines == (2, 3)
    assert len(read_catalog(path, years=(1960, 2200))) == 8
    with pytest.raises(CatalogError) as err:
        read_catalog(path, years=(2024, 2024))
    assert err.value.report.bad_lines == (2, 3)  # 2024 rows pass, the others do not


# -- 3. header, duplicates, bytes -------------------------------------------------------


def test_repeated_mapped_column_is_an_error_naming_it(tmp_path):
    """Reported: a duplicated header column was used silently (last wins)."""
    header = HEADER + ["q"]
    rows = [r + ["999"] for r in _rows()]
    with pytest.raises(ValueError, match=r"repeats column\(s\) 'q' at positions \[5, 10\]"):
        read_catalog(_write(tmp_path / "c.csv", rows, header))
    # an unmapped column may repeat: nothing is read from it
    header = HEADER + ["note", "note"]
    rows = [r + ["a", "b"] for r in _rows()]
    assert len(read_catalog(_write(tmp_path / "d.csv", rows, header))) == 8


def test_exact_duplicate_rows_are_flagged_with_both_lines(tmp_path):
    """Reported: every row doubled gave a rate x4.1, unflagged."""
    rows = _rows(4)
    doubled = rows + [list(r) for r in rows]  # lines 6-9 repeat lines 2-5
    path = _write(tmp_path / "c.csv", doubled)
    with pytest.raises(CatalogError) as err:
        read_catalog(path)
    rep = err.value.report
    assert rep.bad_lines == (6, 7, 8, 9)
    assert ("line 6: exact duplicate of line 2") in str(err.value)
    cat, rep = read_catalog(path, errors="report")
    assert list(cat.lines) == [2, 3, 4, 5] and len(rep.issues) == 4
    # rows equal in the mapped columns but not in another column are not exact copies
    rows2 = [r + [str(i)] for i, r in enumerate(doubled)]
    assert len(read_catalog(_write(tmp_path / "d.csv", rows2, HEADER + ["note"]))) == 8


def test_non_utf8_bytes_name_the_file_and_line(tmp_path):
    """Reported: a bare decode error without file or line."""
    rows = _rows()
    path = _write(tmp_path / "c.csv", rows)
    lines = path.read_bytes().split(b"\n")
    lines[4] = lines[4].replace(b"EMIT", b"EM\xe9T")  # Latin-1 e-acute on line 5
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(CatalogError) as err:
        read_catalog(path)
    assert err.value.report.bad_lines == (5,)
    assert str(path) in str(err.value) and "not UTF-8 (0xe9" in str(err.value)
    cat, rep = read_catalog(path, errors="report")
    assert len(cat) == 7 and rep.bad_lines == (5,)
    # in the header: no column can be trusted
    path.write_bytes(b"id,ti\xffme,lat\n")
    with pytest.raises(ValueError, match=r"line 1 \(header\).*not UTF-8"):
        read_catalog(path)


def test_bom_crlf_quotes_and_nul(tmp_path):
    """A UTF-8 BOM before the first column name is read as utf-8-sig (reported: the
    first column was then "missing"); CRLF and quoted fields are RFC 4180."""
    rows = _rows()
    header = ["time"] + [h for h in HEADER if h != "time"]  # time first: the BOM's victim
    rows = [[r[1]] + r[:1] + r[2:] for r in rows]
    clean = read_catalog(_write(tmp_path / "a.csv", rows, header))
    bom = read_catalog(_write(tmp_path / "b.csv", rows, header, bom=True, newline="\r\n"))
    np.testing.assert_array_equal(clean.time, bom.time)
    quoted = tmp_path / "q.csv"
    with open(quoted, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, quoting=csv.QUOTE_ALL)
        w.writerow(header)
        w.writerows(rows)
    np.testing.assert_array_equal(read_catalog(quoted).q, clean.q)
    data = (tmp_path / "a.csv").read_bytes().split(b"\n")
    data[3] = data[3].replace(b"31.5", b"31\x005")
    data[6] = b'"broken,' + data[6]
    (tmp_path / "n.csv").write_bytes(b"\n".join(data))
    with pytest.raises(CatalogError) as err:
        read_catalog(tmp_path / "n.csv")
    assert err.value.report.bad_lines[0] == 4 and "NUL" in str(err.value)
    assert 7 in err.value.report.bad_lines


def test_header_problems(tmp_path):
    (tmp_path / "e.csv").write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        read_catalog(tmp_path / "e.csv")
    with pytest.raises(ValueError, match="not a file"):
        read_catalog(tmp_path / "missing.csv")
    path = _write(tmp_path / "c.csv", [r[:1] + r[2:] for r in _rows()], ["id"] + HEADER[2:])
    with pytest.raises(ValueError, match=r"required column\(s\) \['time'\] missing"):
        read_catalog(path)


def test_plume_catalog_checks_its_values():
    good = dict(
        time=np.array([0.0]), lat=np.array([1.0]), lon=np.array([2.0]), q=np.array([1.0]),
        q_sigma=np.array([np.nan]), wind=np.array([np.nan]), instrument=np.array(["a"]),
        ids=np.array(["x"]), lines=np.array([2]),
    )  # fmt: skip
    PlumeCatalog(**good)
    for field, value in (("q", -1.0), ("q_sigma", 0.0), ("wind", -2.0), ("time", np.nan)):
        with pytest.raises(ValueError, match=field):
            PlumeCatalog(**{**good, field: np.array([value])})
    with pytest.raises(ValueError, match="1-D"):
        PlumeCatalog(**{**good, "lat": np.array([1.0, 2.0])})


# -- de-duplication ---------------------------------------------------------------------


def _dedup_reference(cat, distance_m, time_s):
    """The original quadratic single-link-to-head algorithm."""
    order = np.argsort(cat.time, kind="stable")
    cluster = -np.ones(len(cat), int)
    heads = []
    for i in order:
        for c in range(len(heads) - 1, -1, -1):
            h = heads[c]
            if cat.time[i] - cat.time[h] > time_s:
                break
            if haversine(cat.lat[h], cat.lon[h], cat.lat[i], cat.lon[i]) <= distance_m:
                cluster[i] = c
                break
        if cluster[i] < 0:
            cluster[i] = len(heads)
            heads.append(i)
    return cluster


@pytest.mark.parametrize("distance_m, time_s", [(0.0, 0.0), (500.0, 1800.0), (5e4, 86400.0)])
def test_grid_dedup_equals_the_quadratic_reference(distance_m, time_s):
    rng = np.random.default_rng(7)
    n = 600
    lat = np.concatenate(
        [rng.uniform(-89.99, 89.99, n // 2), 89.999 - rng.uniform(0, 0.01, n // 2)]
    )
    lon = rng.uniform(-180, 180, n)
    lat[::7], lon[::7] = lat[1::7][: len(lat[::7])], lon[1::7][: len(lon[::7])]  # exact repeats
    t = np.round(rng.uniform(0, 5 * 86400, n), -2)
    cat = PlumeCatalog(
        time=t, lat=lat, lon=lon, q=rng.uniform(0.1, 1, n), q_sigma=np.full(n, np.nan),
        wind=np.full(n, np.nan), instrument=np.array(["a"] * n),
        ids=np.array([str(i) for i in range(n)]), lines=np.arange(2, n + 2),
    )  # fmt: skip
    out, cluster = deduplicate(cat, distance_m=distance_m, time_s=time_s, keep="max")
    np.testing.assert_array_equal(cluster, _dedup_reference(cat, distance_m, time_s))
    k = cluster.max() + 1
    assert len(out) == k
    for c in range(k):  # keep="max": the largest q of each cluster, first row on ties
        members = np.flatnonzero(cluster == c)
        assert out.ids[c] == cat.ids[members[np.argmax(cat.q[members])]]
    with pytest.raises(ValueError, match="distance_m"):
        deduplicate(cat, distance_m=math.nan, time_s=1.0)
