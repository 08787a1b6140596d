"""Ingest integrity of the generic loaders (issue 19): one regression test per defect.

Each test fails on the code before the fix. The invariant behind all of them: ``rows read``
(counted independently of the parser) = loaded + rejected, every loaded value equals the
source value, a refused file leaves the case byte-for-byte unchanged, and every error is one
line from :mod:`toolkit.errors`.
"""

from __future__ import annotations

import gzip
import json
import math
import sys
from datetime import UTC, datetime

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import toolkit as tk
from toolkit.errors import FileParseError, LoadError, MappingError, SchemaMismatchError

from .test_generic import counts_hold, snapshot

HEADER = "request_id,ts,model_version,latency_ms\n"


def csv_rows(n: int, start: int = 0) -> str:
    return "".join(
        f"r{i},2026-03-02T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z,v1,{i}.5\n"
        for i in range(start, start + n)
    )


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text, text
    assert "Traceback" not in text
    return text


# ------------------------------------------------------------------------------------------
# 1. an unterminated quote discarded the rest of the file


def test_defect_1_unterminated_quote_refuses_the_file_with_its_position(tmp_path, con):
    path = tmp_path / "requests.csv"
    # data row 11 (file line 12) opens a quote in model_version that is never closed
    path.write_text(HEADER + csv_rows(10) + 'r10,2026-03-02T00:00:10Z,"v2,3.0\n'
                    + csv_rows(20_000, start=11))
    before = snapshot(con)
    with pytest.raises(FileParseError) as info:
        tk.load(con, path)
    message = one_line(info.value)
    assert info.value.position == "line 12"
    assert "model_version" in message and "never closed" in message
    assert snapshot(con) == before

    # a quoted value that legitimately spans lines is one record, and is loaded verbatim
    ok = tmp_path / "ok" / "requests.csv"
    ok.parent.mkdir()
    ok.write_text(HEADER + csv_rows(3) + 'r3,2026-03-02T00:00:03Z,"v2\n\nhotfix",4.5\n'
                  + csv_rows(3, start=4))
    report = tk.load(con, ok)
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (7, 7, 0)
    assert con.execute(
        "SELECT model_version FROM requests WHERE request_id = 'r3'"
    ).fetchone()[0] == "v2\n\nhotfix"
    # ... and the report says so: swallowed lines are never silent
    assert "continue onto 1 more line(s)" in report.files[0].notes[0]
    counts_hold(con)


# ------------------------------------------------------------------------------------------
# 2. source columns named like the loader's internal aliases


def test_defect_2_internal_names_never_collide_with_source_columns(tmp_path, con):
    hostile = ["__c0", "__c1", "__c3", "_parse_error", "_row", "_raw", "_errors", "__w_v0"]
    frame = pd.DataFrame({
        "request_id": ["a", "b"],
        "ts": ["2026-03-02T00:00:00Z", "2026-03-02T00:00:01Z"],
        "latency_ms": ["12.5", "13.5"],
        "model_version": ["v1", "v2"],
        **{name: [f"{name}-1", f"{name}-2"] for name in hostile},
    })
    csv_path = tmp_path / "requests.csv"
    frame.to_csv(csv_path, index=False)
    jsonl = tmp_path / "j" / "requests.jsonl"
    jsonl.parent.mkdir()
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in
                             frame.assign(request_id=["c", "d"]).to_dict("records")))
    parquet = tmp_path / "p" / "requests.parquet"
    parquet.parent.mkdir()
    frame.assign(request_id=["e", "f"], latency_ms=[12.5, 13.5]).to_parquet(parquet)
    for path in (csv_path, jsonl, parquet):
        report = tk.load(con, path)
        assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (2, 2, 0)
    cols = ", ".join(f'"{n}"' for n in hostile)
    rows = con.execute(
        f"SELECT request_id, ts, latency_ms, model_version, {cols} FROM requests "
        "ORDER BY request_id"
    ).fetchall()
    assert [r[0] for r in rows] == ["a", "b", "c", "d", "e", "f"]
    for row, k in zip(rows, [1, 2] * 3, strict=True):
        assert row[1] == datetime(2026, 3, 2, 0, 0, k - 1, tzinfo=UTC)
        assert row[2] == 11.5 + k
        assert row[3] == f"v{k}"
        assert list(row[4:]) == [f"{name}-{k}" for name in hostile]
    counts_hold(con)


def test_defect_2_renamed_header_columns_are_noted(tmp_path, con):
    path = tmp_path / "requests.csv"
    path.write_text("request_id,ts, lead,,amount,amount\nr0,2026-03-02T00:00:00Z,0,1,2,3\n")
    report = tk.load(con, path)
    assert report.files[0].notes == (
        "renamed column(s): ' lead' -> 'lead', '' -> 'column_3', 'amount' -> 'amount_1'",)
    assert con.execute("SELECT lead, column_3, amount, amount_1 FROM requests").fetchone() == (
        0.0, 1.0, 2.0, 3.0)
    # the same name twice in a Parquet file: both kept, and said
    parquet = tmp_path / "p" / "requests.parquet"
    parquet.parent.mkdir()
    pq.write_table(pa.table([pa.array(["p0"]), pa.array(["2026-03-02T00:00:00Z"]),
                             pa.array([5.0]), pa.array([6.0])],
                            names=["request_id", "ts", "amount", "amount"]), parquet)
    report = tk.load(con, parquet)
    assert report.files[0].notes == ("renamed column(s): 'amount' -> 'amount_1'",)
    assert con.execute(
        "SELECT amount, amount_1 FROM requests WHERE request_id = 'p0'").fetchone() == (5.0, 6.0)


# ------------------------------------------------------------------------------------------
# 3. feature columns whose name starts with "__" were never written


def test_defect_3_double_underscore_features_are_written(tmp_path, con):
    path = tmp_path / "requests.csv"
    path.write_text("request_id,ts,__x,___y,__label\n"
                    "r1,2026-03-02T00:00:00Z,1.5,a,7\nr2,2026-03-02T00:00:01Z,2.5,b,8\n")
    tk.load(con, path)
    rows = con.execute(
        'SELECT "__x", "___y", "__label" FROM requests ORDER BY request_id'
    ).fetchall()
    assert rows == [(1.5, "a", 7.0), (2.5, "b", 8.0)]
    kinds = dict(con.execute("SELECT name, kind FROM features").fetchall())
    assert kinds == {"__x": "numeric", "___y": "categorical", "__label": "numeric"}
    assert con.execute("SELECT count(*) FROM labels").fetchone()[0] == 0


# ------------------------------------------------------------------------------------------
# 6. files skipped silently in a folder ingest


def test_defect_6_every_file_in_a_folder_is_loaded_or_listed_with_a_reason(tmp_path, con):
    case = tmp_path / "case"
    (case / "_backup").mkdir(parents=True)
    (case / ".old").mkdir()
    (case / "labels.csv").write_text("request_id,label\nr1,1\n")
    (case / "requests.csv.bz2").write_bytes(b"BZh91AY&SY")
    (case / "metrics.csv.zst").write_bytes(b"\x28\xb5\x2f\xfd")
    (case / "events.xlsx").write_bytes(b"PK\x03\x04")
    (case / "_backup" / "requests.csv").write_text(HEADER + csv_rows(2))
    (case / ".old" / "requests.csv").write_text(HEADER + csv_rows(2))
    # a stray file that no table claims and that is not even text must not stop the folder
    (case / "dump.json").write_bytes(b"\x00\x01\x02binary")

    report = tk.load(con, case)
    frame = report.to_frame()
    frame["name"] = frame["source"].str.slice(len(str(case)) + 1)
    status = dict(zip(frame["name"], frame["status"], strict=True))
    notes = dict(zip(frame["name"], frame["notes"], strict=True))
    assert status == {
        "labels.csv": "loaded", "requests.csv.bz2": "skipped", "metrics.csv.zst": "skipped",
        "events.xlsx": "skipped", "_backup/requests.csv": "skipped",
        ".old/requests.csv": "skipped", "dump.json": "skipped",
    }
    assert "bzip2" in notes["requests.csv.bz2"]
    assert "zstd" in notes["metrics.csv.zst"]
    assert "spreadsheet" in notes["events.xlsx"]
    assert "_backup/" in notes["_backup/requests.csv"]
    assert ".old/" in notes[".old/requests.csv"]
    assert notes["dump.json"]

    # a folder ingest that stops says what it had already committed
    bad = tmp_path / "bad"
    (bad / "requests").mkdir(parents=True)
    (bad / "features.csv").write_text("name,kind\namount,numeric\n")
    (bad / "requests" / "part-0.csv").write_text(HEADER + 'r1,2026-03-02T00:00:00Z,"v1,1\n'
                                                 + csv_rows(3, start=2))
    with pytest.raises(FileParseError) as info:
        tk.load(con, bad)
    message = one_line(info.value)
    assert "1 file(s) before it were committed" in message and "features.csv" in message
    assert [f.status for f in info.value.committed.files] == ["loaded"]
    assert con.execute("SELECT name FROM features").fetchall() == [("amount",)]


# ------------------------------------------------------------------------------------------
# 10. tracebacks instead of one-line errors


def test_defect_10_text_named_gz_is_refused_clearly(tmp_path, con):
    path = tmp_path / "requests.csv.gz"
    path.write_text(HEADER + csv_rows(3))
    before = snapshot(con)
    with pytest.raises(FileParseError, match="not gzip-compressed") as info:
        tk.load(con, path)
    one_line(info.value)
    assert snapshot(con) == before


def test_defect_10_truncated_gzip_is_one_line_or_skipped_in_a_folder(tmp_path, con):
    folder = tmp_path / "case"
    folder.mkdir()
    path = folder / "requests.csv.gz"
    path.write_bytes(gzip.compress((HEADER + csv_rows(3)).encode())[:10])
    (folder / "labels.csv").write_text("request_id,label\nr1,1\n")
    before = snapshot(con)
    with pytest.raises(FileParseError, match="cannot be read|corrupt") as info:
        tk.load(con, path)
    one_line(info.value)
    assert snapshot(con) == before
    report = tk.load(con, folder)
    entries = {f.source.rsplit("/", 1)[-1]: f for f in report.files}
    assert {name: f.status for name, f in entries.items()} == {
        "labels.csv": "loaded", "requests.csv.gz": "skipped"}
    assert "gzip" in entries["requests.csv.gz"].notes[0] or \
        "cannot be read" in entries["requests.csv.gz"].notes[0]


def test_defect_10_cr_only_line_endings_load(tmp_path, con):
    path = tmp_path / "requests.csv"
    path.write_bytes((HEADER + csv_rows(5)).replace("\n", "\r").encode())
    report = tk.load(con, path)
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (5, 5, 0)
    assert con.execute("SELECT sum(latency_ms) FROM requests").fetchone()[0] == 12.5
    counts_hold(con)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("columns", [("amount", "Amount"), ("ts", "TS"), ("TS", "ts")])
def test_defect_10_columns_differing_only_in_case_are_refused(tmp_path, con, columns, fmt):
    path = tmp_path / f"requests.{fmt}"
    names = ["request_id", *(c for c in ("ts",) if c not in columns), *columns]
    frame = pd.DataFrame([["r1", *(["1"] * (len(names) - 1))]], columns=names)
    frame[columns[0 if columns[0].lower() == "ts" else 1]] = "2026-03-02T00:00:00Z"
    # DuckDB's Parquet reader renames the later one (`ts` -> `ts_1`); it must not be guessed
    frame.to_csv(path, index=False) if fmt == "csv" else frame.to_parquet(path)
    before = snapshot(con)
    with pytest.raises(SchemaMismatchError, match="differ only in case") as info:
        tk.load(con, path)
    assert columns[1] in one_line(info.value)
    assert snapshot(con) == before


def test_defect_10_reserved_and_engine_column_names(tmp_path, con):
    path = tmp_path / "requests.csv"
    path.write_text("request_id,ts,LOAD_ID\nr1,2026-03-02T00:00:00Z,1\n")
    before = snapshot(con)
    with pytest.raises(SchemaMismatchError, match="reserved") as info:
        tk.load(con, path)
    one_line(info.value)
    assert snapshot(con) == before
    empty = pd.DataFrame({"request_id": ["a"], "ts": ["2026-03-02T00:00:00Z"], "": [1.0]})
    with pytest.raises(SchemaMismatchError, match="empty name") as info:
        tk.load(con, empty, table="requests")
    one_line(info.value)
    assert snapshot(con) == before
    names = ["_row", "_errors", "ordinality", "file_row_number"]
    for fmt in ("csv", "parquet"):
        frame = pd.DataFrame({"request_id": [f"{fmt}1", f"{fmt}2"],
                              "ts": ["2026-03-02T00:00:00Z"] * 2,
                              **{n: [float(i), float(i) + 0.5] for i, n in enumerate(names)}})
        target = tmp_path / fmt / f"requests.{fmt}"
        target.parent.mkdir()
        frame.to_csv(target, index=False) if fmt == "csv" else frame.to_parquet(target)
        report = tk.load(con, target)
        assert report.rows_loaded == 2
    got = con.execute(
        'SELECT "_row", "_errors", "ordinality", "file_row_number" FROM requests '
        "ORDER BY request_id"
    ).fetchall()
    assert got == [(0.0, 1.0, 2.0, 3.0), (0.5, 1.5, 2.5, 3.5)] * 2


def test_defect_10_features_kind_outside_the_vocabulary_is_a_reject(tmp_path, con):
    path = tmp_path / "features.csv"
    path.write_text("name,kind\namount,numerical\ncountry,categorical\n")
    report = tk.load(con, path)
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (2, 1, 1)
    assert con.execute("SELECT row_number, column_name, reason FROM rejects").fetchall() == [
        (2, "kind", "kind: not 'numeric' or 'categorical'")]
    counts_hold(con)


def test_defect_10_binary_mapping_file(tmp_path, con):
    mapping = tmp_path / "mapping.toml"
    mapping.write_bytes(b"\x00\x01\xff\xfe\x89PNG")
    path = tmp_path / "requests.csv"
    path.write_text(HEADER + csv_rows(2))
    with pytest.raises(MappingError, match="not a UTF-8 text file") as info:
        tk.load(con, path, mapping=mapping)
    one_line(info.value)


class _DiskFullAtCommit:
    """A case connection whose COMMIT fails as DuckDB's does on a full disk: the transaction is
    gone, and the write error is what the caller gets."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con

    def execute(self, sql, *args, **kwargs):
        if sql.strip().upper() == "COMMIT":
            self._con.execute("ROLLBACK")
            raise duckdb.IOException(
                'IO Error: Could not write file "case.duckdb.wal": No space left on device')
        return self._con.execute(sql, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._con, name)


def test_defect_10_disk_full_at_commit_names_the_real_cause(tmp_path, con):
    path = tmp_path / "requests.csv"
    path.write_text(HEADER + csv_rows(3))
    before = snapshot(con)
    with pytest.raises(LoadError) as info:
        tk.load(_DiskFullAtCommit(con), path)
    message = one_line(info.value)
    assert "full" in message and "No space left on device" in message
    assert "cannot rollback" not in message and "cannot be read" not in message
    assert not isinstance(info.value, FileParseError)  # the input is fine (defect 11)
    assert snapshot(con) == before


def test_defect_10_out_of_memory_is_one_line(tmp_path, con):
    path = tmp_path / "requests.csv"
    path.write_text(HEADER + csv_rows(60_000))
    before = snapshot(con)
    con.execute("SET memory_limit = '1MB'")
    con.execute("SET threads = 1")
    with pytest.raises(LoadError, match="out of memory") as info:
        tk.load(con, path)
    assert "FORENSICS_MEMORY_LIMIT" in one_line(info.value)
    con.execute("RESET memory_limit")
    assert snapshot(con) == before


# ------------------------------------------------------------------------------------------
# 11. misleading messages


def test_defect_11_json_lines_rejects_bad_lines_one_by_one(tmp_path, con, monkeypatch):
    monkeypatch.setattr(sys.modules["toolkit.load.sources"], "MAX_LINE_BYTES", 1 << 20,
                        raising=False)
    good = '{"request_id": "%s", "ts": "2026-03-02T00:00:0%d Z"}\n'
    body = (
        (good % ("a", 1)).encode()
        + b'{"request_id": "\xff\xfe", "ts": "2026-03-02T00:00:02Z"}\n'
        + (good % ("b", 3)).encode()
        + b'{"request_id": "\xc3", "ts": "2026-03-02T00:00:04Z"}\n'
        + b'{"request_id": "huge", "pad": "' + b"x" * (3 << 20) + b'"}\n'
        + (good % ("c", 6)).encode()
    ).replace(b" Z", b"Z")
    for name, data in (("requests.jsonl", body), ("gz/requests.jsonl.gz", gzip.compress(body))):
        path = tmp_path / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        report = tk.load(con, path)
        assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (6, 3, 3)
    rejects = con.execute(
        "SELECT row_number, reason FROM rejects WHERE file LIKE '%.jsonl' ORDER BY row_number"
    ).fetchall()
    assert [r[0] for r in rejects] == [2, 4, 5]
    assert "UTF-8" in rejects[0][1] and "UTF-8" in rejects[1][1]
    assert "longer than" in rejects[2][1]
    loaded = con.execute("SELECT request_id, ts FROM requests ORDER BY request_id").fetchall()
    assert [r[0] for r in loaded] == ["a", "a", "b", "b", "c", "c"] or \
        [r[0] for r in loaded] == ["a", "b", "c"]
    counts_hold(con)


@pytest.mark.parametrize("kind", ["utf-16", "binary"])
def test_defect_11_utf16_and_binary_csv_say_what_they_are(tmp_path, con, kind):
    path = tmp_path / "requests.csv"
    if kind == "utf-16":
        path.write_bytes((HEADER + csv_rows(3)).encode("utf-16"))
    else:
        path.write_bytes(bytes(range(256)) * 8)
    before = snapshot(con)
    with pytest.raises(FileParseError) as info:
        tk.load(con, path)
    message = one_line(info.value)
    assert ("UTF-16" if kind == "utf-16" else "binary") in message
    assert "needs column" not in message
    assert snapshot(con) == before


def test_defect_11_empty_json_lines_say_so_not_needs_column(tmp_path, con):
    path = tmp_path / "requests.jsonl"
    path.write_text("\n  \n")
    with pytest.raises(FileParseError, match="no JSON record") as info:
        tk.load(con, path)
    assert "needs column" not in one_line(info.value)


def test_defect_11_table_for_an_already_loaded_path_is_not_silently_ignored(tmp_path, con):
    path = tmp_path / "data.csv"
    path.write_text("request_id,label\nr1,1\n")
    tk.load(con, path, table="labels")
    report = tk.load(con, path, table="reference")
    entry = report.files[0]
    assert entry.status == "unchanged" and entry.table == "labels"
    assert "not loaded into reference" in entry.notes[0]


def test_defect_11_empty_kind_is_a_missing_value_not_not_text(tmp_path, con):
    path = tmp_path / "events.jsonl"
    path.write_text('{"ts": "2026-03-02T00:00:00Z", "kind": ""}\n'
                    '{"ts": "2026-03-02T00:00:01Z", "kind": "deploy"}\n')
    report = tk.load(con, path)
    assert (report.rows_loaded, report.rows_rejected) == (1, 1)
    assert con.execute("SELECT reason FROM rejects").fetchone()[0] == \
        "kind: required value is missing"


# ------------------------------------------------------------------------------------------
# 12. minor wrong results


def test_defect_12_offset_beyond_18_hours_is_rejected(tmp_path, con):
    path = tmp_path / "requests.csv"
    path.write_text("request_id,ts\nr1,2026-03-02T00:00:00-25:00\nr2,2026-03-02T00:00:00+05:30\n"
                    "r3,2026-03-02 12:00:00-0800\nr4,2026-03-25\nr5,2026-03-02T00:00:00+1900\n")
    report = tk.load(con, path)
    assert (report.rows_loaded, report.rows_rejected) == (3, 2)
    assert con.execute("SELECT row_number, reason FROM rejects ORDER BY 1").fetchall() == [
        (2, "ts: not a timestamp"), (6, "ts: not a timestamp")]
    assert con.execute("SELECT request_id, ts FROM requests ORDER BY 1").fetchall() == [
        ("r2", datetime(2026, 3, 1, 18, 30, tzinfo=UTC)),
        ("r3", datetime(2026, 3, 2, 20, 0, tzinfo=UTC)),
        ("r4", datetime(2026, 3, 25, tzinfo=UTC)),
    ]


def test_defect_12_nan_loads_as_null_in_every_double_column(tmp_path, con):
    path = tmp_path / "requests.csv"
    path.write_text("request_id,ts,latency_ms,score,amount\n"
                    "r1,2026-03-02T00:00:00Z,nan,NaN,1.5\nr2,2026-03-02T00:00:01Z,20,0.5,nan\n")
    frame = pd.DataFrame({"request_id": ["f1"], "ts": ["2026-03-02T00:00:02Z"],
                          "latency_ms": [math.nan], "score": [0.7], "amount": [math.nan]})
    tk.load(con, path)
    tk.load(con, frame, table="requests")
    # real IEEE NaN (pandas turns NaN into null on the way to Arrow; Arrow and Parquet keep it),
    # in a column whose Parquet min/max statistics (0.0 .. 0.0) leave the NaN out
    nan = pa.table({"request_id": ["p1", "p2"], "ts": ["2026-03-02T00:00:03Z"] * 2,
                    "latency_ms": pa.array([0.0, math.nan]), "score": pa.array([math.nan, 0.0]),
                    "amount": pa.array([0.0, math.nan])})
    parquet = tmp_path / "p" / "requests.parquet"
    parquet.parent.mkdir()
    pq.write_table(nan, parquet)
    tk.load(con, parquet)
    tk.load(con, nan.set_column(0, "request_id", pa.array(["a1", "a2"])), table="requests")
    rows = con.execute(
        "SELECT request_id, latency_ms, score, amount FROM requests ORDER BY 1").fetchall()
    assert rows == [("a1", 0.0, None, 0.0), ("a2", None, 0.0, None), ("f1", None, 0.7, None),
                    ("p1", 0.0, None, 0.0), ("p2", None, 0.0, None),
                    ("r1", None, None, 1.5), ("r2", 20.0, 0.5, None)]
    assert con.execute("SELECT max(latency_ms) FROM requests").fetchone()[0] == 20.0
    assert con.execute("SELECT count(*) FROM rejects").fetchone()[0] == 0
    counts_hold(con)


def test_defect_12_duplicated_json_key_rejects_the_record(tmp_path, con):
    path = tmp_path / "requests.jsonl"
    path.write_text('{"request_id": "a", "ts": "2026-03-02T00:00:00Z", "latency_ms": 1, '
                    '"latency_ms": 2}\n{"request_id": "b", "ts": "2026-03-02T00:00:00Z"}\n')
    report = tk.load(con, path)
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (2, 1, 1)
    row, reason = con.execute("SELECT row_number, reason FROM rejects").fetchone()
    assert row == 1 and 'duplicate key "latency_ms"' in reason
    counts_hold(con)


def test_defect_10_empty_json_key_rejects_the_record(tmp_path, con):
    path = tmp_path / "requests.jsonl"
    path.write_text('{"request_id": "a", "ts": "2026-03-02T00:00:00Z", "": 1}\n'
                    '{"request_id": "b", "ts": "2026-03-02T00:00:00Z", " ": 2}\n')
    report = tk.load(con, path)
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (2, 1, 1)
    assert con.execute("SELECT row_number, reason FROM rejects").fetchone() == (
        1, 'an empty key (""), which names no column')
    assert con.execute('SELECT request_id, " " FROM requests').fetchall() == [("b", 2.0)]


def test_defect_12_latin1_header_is_decoded(tmp_path, con):
    path = tmp_path / "requests.csv"
    path.write_bytes("request_id,ts,größe,ort\nr1,2026-03-02T00:00:00Z,1.5,Köln\n"
                     .encode("latin-1"))
    report = tk.load(con, path)
    assert report.rows_loaded == 1
    assert "Latin-1" in report.files[0].notes[0]
    assert con.execute('SELECT "größe", ort FROM requests').fetchone() == (1.5, "Köln")
    assert dict(con.execute("SELECT name, kind FROM features").fetchall()) == {
        "größe": "numeric", "ort": "categorical"}


def test_a_quoted_value_holding_a_carriage_return_loads(tmp_path):
    """A lone CR (or CRLF) inside a quoted value is data, not the end of a record: the file
    loads with the value as it is (the independent line count used to stop on it)."""
    path = tmp_path / "requests.csv"
    path.write_bytes(b'request_id,ts,country\nk1,2026-03-02T14:00:00Z,"a\rb"\n'
                     b'k2,2026-03-02T14:00:00Z,"c\r\nd"\nk3,2026-03-02T14:00:00Z,e\n')
    con = tk.connect(tmp_path / "case.duckdb")
    report = tk.load(con, path)
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (3, 3, 0)
    assert con.sql("SELECT request_id, country FROM requests ORDER BY 1").fetchall() == [
        ("k1", "a\rb"), ("k2", "c\r\nd"), ("k3", "e")]
