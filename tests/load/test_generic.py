"""Generic loaders: CSV, CSV.gz, Parquet, JSONL(.gz), JSON arrays, folders, frames."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import toolkit as tk
from toolkit.errors import (
    AlreadyLoadedChangedError,
    FileParseError,
    LoadError,
    SchemaMismatchError,
)

UTC = UTC


def request_rows(n: int, *, start: str = "2026-03-02T00:00:00Z") -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame({
        "request_id": [f"req-{i:05d}" for i in range(n)],
        "ts": pd.date_range(start, periods=n, freq="s").strftime("%Y-%m-%dT%H:%M:%SZ"),
        "model_version": np.where(np.arange(n) < n // 2, "v1", "v2"),
        "host": [f"pod-{i % 3}" for i in range(n)],
        "latency_ms": rng.gamma(4.0, 20.0, n).round(3),
        "status": "ok",
        "prediction": rng.integers(0, 2, n).astype(str),
        "score": rng.uniform(0.5, 1.0, n).round(4),
        "amount": rng.lognormal(3, 1, n).round(2),
        "country": rng.choice(["US", "DE", "FR"], n),
    })


def counts_hold(con) -> None:
    bad = con.execute(
        "SELECT count(*) FROM loads WHERE rows_read <> rows_loaded + rows_rejected"
    ).fetchone()[0]
    assert bad == 0
    per_load = con.execute(
        "SELECT l.load_id, l.rows_rejected, count(r.load_id) FROM loads l "
        "LEFT JOIN rejects r USING (load_id) WHERE NOT l.replaced GROUP BY ALL"
    ).fetchall()
    for load_id, rejected, kept in per_load:
        assert rejected == kept, load_id


def snapshot(con) -> dict:
    tables = ["requests", "labels", "reference", "features", "metrics", "events", "lineage",
              "loads", "rejects"]
    counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}
    counts["columns"] = con.execute(
        "SELECT count(*) FROM duckdb_columns() WHERE table_name IN ('requests', 'reference')"
    ).fetchone()[0]
    return counts


def test_csv_with_three_malformed_rows(tmp_path, con):
    frame = request_rows(1000)
    lines = frame.to_csv(index=False).splitlines()
    # lines[0] is the header, so data row k (1-based) is file line k + 1.
    lines[101] = lines[101].replace(lines[101].split(",")[4], "fast")  # latency not a number
    lines[502] = lines[502] + ",surplus"  # one field too many
    lines[903] = lines[903].replace(lines[903].split(",")[1], "not-a-time")
    path = tmp_path / "requests.csv"
    path.write_text("\n".join(lines) + "\n")

    report = tk.load(con, path)
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (1000, 997, 3)
    rejects = con.execute(
        "SELECT row_number, column_name, reason, raw FROM rejects ORDER BY row_number"
    ).fetchall()
    assert [r[0] for r in rejects] == [102, 503, 904]
    assert rejects[0][1:3] == ("latency_ms", "latency_ms: not a number")
    assert "fast" in rejects[0][3]
    assert rejects[1][2] == "malformed CSV line (too many columns)"
    assert rejects[1][3] == lines[502]
    assert rejects[2][1] == "ts" and "not-a-time" in rejects[2][3]
    assert con.execute("SELECT count(*) FROM requests").fetchone()[0] == 997
    counts_hold(con)

    before = snapshot(con)
    again = tk.load(con, path)
    assert again.files[0].status == "unchanged" and again.rows_read == 0
    assert snapshot(con) == before


def test_loaded_values_match_the_source(tmp_path, con):
    frame = request_rows(50)
    path = tmp_path / "requests.csv"
    frame.to_csv(path, index=False)
    tk.load(con, path)
    loaded = con.execute(
        "SELECT request_id, ts, latency_ms, prediction, score, amount, country FROM requests "
        "ORDER BY request_id"
    ).df()
    assert loaded["request_id"].tolist() == frame["request_id"].tolist()
    assert loaded["latency_ms"].tolist() == frame["latency_ms"].tolist()
    assert loaded["amount"].tolist() == frame["amount"].tolist()
    assert loaded["country"].tolist() == frame["country"].tolist()
    assert loaded["ts"].iloc[0] == pd.Timestamp("2026-03-02T00:00:00Z")
    kinds = dict(con.execute("SELECT name, kind FROM features").fetchall())
    assert kinds == {"amount": "numeric", "country": "categorical"}


def test_changed_file_is_refused_unless_replaced(tmp_path, con):
    path = tmp_path / "requests.csv"
    request_rows(10).to_csv(path, index=False)
    tk.load(con, path)
    request_rows(12).to_csv(path, index=False)
    before = snapshot(con)
    with pytest.raises(AlreadyLoadedChangedError, match="replace"):
        tk.load(con, path)
    assert snapshot(con) == before
    report = tk.load(con, path, replace=True)
    assert report.files[0].status == "replaced"
    assert con.execute("SELECT count(*) FROM requests").fetchone()[0] == 12
    assert con.execute("SELECT count(*) FROM loads WHERE replaced").fetchone()[0] == 1
    counts_hold(con)


def test_same_content_under_another_path_is_a_duplicate(tmp_path, con):
    a, b = tmp_path / "a" / "requests.csv", tmp_path / "b" / "requests.csv"
    for p in (a, b):
        p.parent.mkdir()
        request_rows(5).to_csv(p, index=False)
    tk.load(con, a)
    report = tk.load(con, b)
    assert report.files[0].status == "duplicate"
    assert con.execute("SELECT count(*) FROM requests").fetchone()[0] == 5


@pytest.mark.parametrize("suffix", ["csv.gz", "parquet", "jsonl", "jsonl.gz", "json"])
def test_every_generic_format_loads_the_same_rows(tmp_path, con, suffix):
    frame = request_rows(40)
    path = tmp_path / f"requests.{suffix}"
    if suffix == "csv.gz":
        with gzip.open(path, "wt") as handle:
            frame.to_csv(handle, index=False)
    elif suffix == "parquet":
        frame.to_parquet(path, index=False)
    elif suffix == "jsonl":
        frame.to_json(path, orient="records", lines=True)
    elif suffix == "jsonl.gz":
        with gzip.open(path, "wt") as handle:
            handle.write(frame.to_json(orient="records", lines=True))
    else:
        path.write_text(frame.to_json(orient="records"))
    report = tk.load(con, path)
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (40, 40, 0)
    got = con.execute(
        "SELECT request_id, latency_ms, amount, country, model_version FROM requests "
        "ORDER BY request_id"
    ).df()
    pd.testing.assert_frame_equal(
        got, frame[["request_id", "latency_ms", "amount", "country", "model_version"]],
        check_dtype=False,
    )


def test_jsonl_bad_lines_are_rejected_with_their_line(tmp_path, con):
    path = tmp_path / "events.jsonl"
    path.write_text(
        '{"ts": "2026-03-02T14:00:00Z", "kind": "Deploy", "artifact": "model", "version": "v2"}\n'
        '{"ts": "2026-03-02T14:05:00Z", "kind": "config_ch\n'
        "\n"
        '["not", "an", "object"]\n'
        '{"ts": 1772460300, "kind": "config_change", "client_timeout_ms": 200, "who": "ops"}\n'
    )
    report = tk.load(con, path)
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (4, 2, 2)
    rejects = con.execute("SELECT row_number, reason FROM rejects ORDER BY 1").fetchall()
    assert rejects == [(2, "not valid JSON"), (4, "not a JSON object")]
    events = con.execute("SELECT kind, ts, detail FROM events ORDER BY ts").fetchall()
    assert events[0][0] == "deploy"
    assert events[1][1] == datetime(2026, 3, 2, 14, 5, tzinfo=UTC)
    assert json.loads(events[1][2]) == {"client_timeout_ms": 200, "who": "ops"}
    counts_hold(con)


def test_folder_of_tables_and_hive_partitions(tmp_path, con):
    case = tmp_path / "case"
    for day in ("2026-03-01", "2026-03-02"):
        part = case / "requests" / f"day={day}"
        part.mkdir(parents=True)
        request_rows(10, start=f"{day}T00:00:00Z").assign(
            request_id=lambda f, d=day: d + "-" + f.request_id
        ).to_parquet(part / "part-0.parquet", index=False)
    (case / "metrics").mkdir()
    (case / "metrics" / "part-0.csv").write_text(
        "ts,host,name,value\n2026-03-02T00:00:00Z,pod-0,memory_used_bytes,1e9\n"
    )
    pd.DataFrame({"request_id": ["2026-03-01-req-00001"], "label": [1.0]}).to_csv(
        case / "labels.csv", index=False)
    (case / "truth.json").write_text('{"pathway": "data"}')
    (case / "README.md").write_text("notes")

    report = tk.load(con, case)
    by_status = report.to_frame().groupby("status").size().to_dict()
    # truth.json belongs to no table, README.md is no table format: both listed, not loaded
    assert by_status == {"loaded": 4, "skipped": 2}
    notes = dict(zip(report.to_frame()["source"].map(lambda s: s.rsplit("/", 1)[-1]),
                     report.to_frame()["notes"], strict=True))
    assert notes["truth.json"] == "not a table file; skipped"
    assert notes["README.md"].startswith("not a format the loader reads (.md")
    assert con.execute("SELECT count(*) FROM requests").fetchone()[0] == 20
    # the hive key is a partition, not a model input
    assert "day" not in dict(con.execute("SELECT name, kind FROM features").fetchall())
    assert con.execute("SELECT label FROM labels").fetchone()[0] == "1"
    assert con.execute("SELECT value FROM metrics").fetchone()[0] == 1e9


def test_mapping_renames_and_converts_units(tmp_path, con):
    path = tmp_path / "export.csv"
    path.write_text(
        "rid,t_epoch_ms,dur_us,tz_time,amount_eur\n"
        "a,1772460000000,250000,2026-03-02T16:00:00+02:00,12.5\n"
        "b,1772460001500,1500,2026-03-02T14:00:01Z,7\n"
    )
    mapping = tmp_path / "mapping.toml"
    mapping.write_text(
        'table = "requests"\n'
        'drop = ["tz_time"]\n'
        "[columns]\n"
        'request_id = "rid"\n'
        'ts = { source = "t_epoch_ms", unit = "ms" }\n'
        'latency_ms = { source = "dur_us", unit = "us" }\n'
        'model_version = { value = "v7" }\n'
        "[features]\n"
        'amount_eur = { kind = "numeric", unit = "EUR" }\n'
    )
    report = tk.load(con, path, mapping=mapping)
    assert report.rows_loaded == 2
    rows = con.execute(
        "SELECT request_id, ts, latency_ms, model_version, amount_eur FROM requests ORDER BY 1"
    ).fetchall()
    assert rows[0] == ("a", datetime(2026, 3, 2, 14, 0, tzinfo=UTC), 250.0, "v7", 12.5)
    assert rows[1][1] == datetime(2026, 3, 2, 14, 0, 1, 500000, tzinfo=UTC)
    assert rows[1][2] == pytest.approx(1.5)
    assert con.execute("SELECT unit FROM features WHERE name = 'amount_eur'").fetchone()[0] == "EUR"
    assert "tz_time" not in [c for (c,) in con.execute("SELECT name FROM features").fetchall()]


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        ("1772460000", "s", datetime(2026, 3, 2, 14, 0, tzinfo=UTC)),
        ("1772460000.25", "s", datetime(2026, 3, 2, 14, 0, 0, 250000, tzinfo=UTC)),
        ("1772460000123", "ms", datetime(2026, 3, 2, 14, 0, 0, 123000, tzinfo=UTC)),
        ("1772460000123456", "us", datetime(2026, 3, 2, 14, 0, 0, 123456, tzinfo=UTC)),
        ("1772460000123456789", "ns", datetime(2026, 3, 2, 14, 0, 0, 123457, tzinfo=UTC)),
        ("1772460000123456", None, datetime(2026, 3, 2, 14, 0, 0, 123456, tzinfo=UTC)),
        ("1772460000", None, datetime(2026, 3, 2, 14, 0, tzinfo=UTC)),
        ("2026-03-02T09:00:00-05:00", None, datetime(2026, 3, 2, 14, 0, tzinfo=UTC)),
        ("2026-03-02 14:00:00", None, datetime(2026, 3, 2, 14, 0, tzinfo=UTC)),
        ("2026-03-02T14:00:00.9799600", "iso", datetime(2026, 3, 2, 14, 0, 0, 979960, tzinfo=UTC)),
    ],
)
def test_timestamp_units(tmp_path, con, value, unit, expected):
    path = tmp_path / "events.csv"
    path.write_text(f"when,kind\n{value},restart\n")
    spec = {"source": "when"} | ({"unit": unit} if unit else {})
    tk.load(con, path, mapping={"columns": {"ts": spec}})
    assert con.execute("SELECT ts FROM events").fetchone()[0] == expected


@pytest.mark.parametrize(("unit", "factor"), [("s", 1000.0), ("us", 0.001), ("ns", 1e-6),
                                              ("ms", 1.0), ("min", 60000.0)])
def test_latency_units(con, unit, factor):
    frame = pd.DataFrame({"request_id": ["a"], "ts": ["2026-03-02T14:00Z"], "dur": [3.0]})
    tk.load(con, frame, table="requests",
            mapping={"columns": {"latency_ms": {"source": "dur", "unit": unit}}})
    assert con.execute("SELECT latency_ms FROM requests").fetchone()[0] == pytest.approx(3 * factor)


@pytest.mark.parametrize("kind", ["pandas", "polars", "arrow"])
def test_in_memory_frames_get_the_same_checks(con, kind):
    frame = pd.DataFrame({
        "request_id": ["a", "b", None, "d"],
        "ts": ["2026-03-02T14:00Z", "2026-03-02T14:01Z", "2026-03-02T14:02Z", "yesterday"],
        "latency_ms": [10.0, 11.0, 12.0, 13.0],
        "tenure_days": [1, 2, 3, 4],
    })
    source = {"pandas": frame, "polars": pl.from_pandas(frame),
              "arrow": pa.Table.from_pandas(frame)}[kind]
    report = tk.load(con, source, table="requests")
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (4, 2, 2)
    rejects = con.execute("SELECT row_number, reason FROM rejects ORDER BY 1").fetchall()
    assert rejects == [(3, "request_id: required value is missing"), (4, "ts: not a timestamp")]
    assert report.files[0].source == {"pandas": "<pandas.DataFrame>",
                                      "polars": "<polars.DataFrame>",
                                      "arrow": "<pyarrow.Table>"}[kind]
    assert tk.load(con, source, table="requests").files[0].status == "unchanged"


def test_float_labels_and_predictions_compare_as_classes(con):
    requests = pd.DataFrame({"request_id": ["a", "b"], "ts": ["2026-03-02T14:00Z"] * 2,
                             "prediction": [1, 0]})
    labels = pd.DataFrame({"request_id": ["a", "b"], "label": [1.0, np.nan]})
    tk.load(con, requests, table="requests")
    report = tk.load(con, labels, table="labels")
    assert report.rows_rejected == 1  # a label row without a label is not ground truth
    assert con.execute("SELECT correct FROM labelled_predictions").fetchall() == [(True,)]


def test_labels_logged_inline_with_requests_fill_labels(con):
    frame = pd.DataFrame({"request_id": ["a", "b"], "ts": ["2026-03-02T14:00Z"] * 2,
                          "prediction": ["1", "0"], "label": ["1", None], "x": [1.0, 2.0]})
    tk.load(con, frame, table="requests")
    assert con.execute("SELECT request_id, label FROM labels").fetchall() == [("a", "1")]
    names = [n for (n,) in con.execute("SELECT name FROM features").fetchall()]
    assert names == ["x"]


def test_status_is_derived_from_http_status(con):
    frame = pd.DataFrame({"request_id": list("abcd"), "ts": ["2026-03-02T14:00Z"] * 4,
                          "http_status": [200, 504, 500, 422]})
    tk.load(con, frame, table="requests")
    statuses = con.execute("SELECT status FROM requests ORDER BY request_id").fetchall()
    assert [s for (s,) in statuses] == ["ok", "timeout", "error", "error"]


def test_traces_without_ids_get_stable_synthetic_ids(tmp_path, con):
    path = tmp_path / "requests.csv"
    path.write_text("ts,latency_ms\n2026-03-02T14:00:00Z,5\n2026-03-02T14:00:01Z,6\n")
    tk.load(con, path)
    ids = [i for (i,) in con.execute("SELECT request_id FROM requests ORDER BY ts").fetchall()]
    assert ids[0].startswith("requests-") and ids[0].endswith(":1") and ids[1].endswith(":2")
    assert "request_id" in con.execute("SELECT note FROM loads").fetchone()[0]


def test_unreadable_file_names_file_and_leaves_case_unchanged(tmp_path, con):
    good = tmp_path / "events.csv"
    good.write_text("ts,kind\n2026-03-02T14:00:00Z,deploy\n")
    tk.load(con, good)
    before = snapshot(con)
    broken = tmp_path / "requests.parquet"
    broken.write_bytes(b"PAR1 this is not really parquet")
    with pytest.raises(FileParseError, match="requests.parquet"):
        tk.load(con, broken)
    assert snapshot(con) == before
    not_json = tmp_path / "metrics.jsonl"
    not_json.write_text("ts,host,name,value\n2026-03-02,pod,cpu,1\n")
    with pytest.raises(FileParseError, match=r"metrics.jsonl.*line 1") as info:
        tk.load(con, not_json)
    assert info.value.position == "line 1"
    assert snapshot(con) == before


def test_missing_required_column_is_a_schema_error(tmp_path, con):
    path = tmp_path / "labels.csv"
    path.write_text("request_id,truth\na,1\n")
    with pytest.raises(SchemaMismatchError, match="label"):
        tk.load(con, path)
    tk.load(con, path, mapping={"tables": {"labels": {"columns": {"label": "truth"}}}})
    assert con.execute("SELECT label FROM labels").fetchall() == [("1",)]


def test_unknown_table_for_a_single_file(tmp_path, con):
    path = tmp_path / "export.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(LoadError, match="cannot tell which table"):
        tk.load(con, path)


def test_numeric_looking_identifiers_stay_categorical(tmp_path, con):
    path = tmp_path / "reference.csv"
    path.write_text("zip,amount,label\n02139,1.5,1\n10001,2.5,0\n")
    tk.load(con, path)
    kinds = dict(con.execute("SELECT name, kind FROM features").fetchall())
    assert kinds == {"zip": "categorical", "amount": "numeric"}
    assert con.execute("SELECT zip FROM reference ORDER BY 1").fetchall() == [("02139",),
                                                                             ("10001",)]


def test_sql_injection_in_column_names_is_inert(tmp_path, con):
    path = tmp_path / "requests.csv"
    path.write_text('request_id,ts,"x""); DROP TABLE loads; --"\n'
                    "a,2026-03-02T14:00:00Z,1\n")
    tk.load(con, path)
    assert con.execute("SELECT count(*) FROM loads").fetchone()[0] == 1
    assert con.execute("SELECT name FROM features").fetchone()[0] == 'x"); DROP TABLE loads; --'
