"""The case store: schema, migrations, read-only access, locking."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import duckdb
import pytest

import toolkit as tk
from toolkit.errors import CaseLockedError, InvalidParameterError, SchemaVersionError
from toolkit.store import schema

# DESIGN section 3, column by column (load_id is the provenance column every data table adds).
EXPECTED = {
    "requests": {
        "request_id": "VARCHAR", "ts": "TIMESTAMP WITH TIME ZONE", "endpoint": "VARCHAR",
        "model_name": "VARCHAR", "model_version": "VARCHAR", "pipeline_version": "VARCHAR",
        "client_version": "VARCHAR", "host": "VARCHAR", "latency_ms": "DOUBLE",
        "status": "VARCHAR", "http_status": "INTEGER", "error_type": "VARCHAR",
        "in_flight": "INTEGER", "cache_hit": "BOOLEAN", "cache_model_version": "VARCHAR",
        "prediction": "VARCHAR", "score": "DOUBLE", "input_tokens": "INTEGER",
        "output_tokens": "INTEGER", "ttft_ms": "DOUBLE", "load_id": "INTEGER",
    },
    "labels": {"request_id": "VARCHAR", "label": "VARCHAR",
               "labeled_at": "TIMESTAMP WITH TIME ZONE", "load_id": "INTEGER"},
    "reference": {"label": "VARCHAR", "prediction": "VARCHAR", "score": "DOUBLE",
                  "load_id": "INTEGER"},
    "features": {"name": "VARCHAR", "kind": "VARCHAR", "position": "INTEGER", "unit": "VARCHAR"},
    "metrics": {"ts": "TIMESTAMP WITH TIME ZONE", "host": "VARCHAR", "name": "VARCHAR",
                "value": "DOUBLE", "labels": "JSON", "load_id": "INTEGER"},
    "events": {"ts": "TIMESTAMP WITH TIME ZONE", "kind": "VARCHAR", "artifact": "VARCHAR",
               "version": "VARCHAR", "host": "VARCHAR", "detail": "JSON", "load_id": "INTEGER"},
    "lineage": {"release": "VARCHAR", "model_version": "VARCHAR", "pipeline_version": "VARCHAR",
                "client_version": "VARCHAR", "created_at": "TIMESTAMP WITH TIME ZONE",
                "load_id": "INTEGER"},
}


def columns(con, table):
    return dict(con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ? "
        "ORDER BY column_index", [table]).fetchall())


@pytest.mark.parametrize("table", sorted(EXPECTED))
def test_canonical_tables_have_design_columns_and_types(con, table):
    assert columns(con, table) == EXPECTED[table]


def test_bookkeeping_tables_and_version(con):
    for table in ("loads", "rejects", "schema_version", "case_meta"):
        assert columns(con, table), table
    assert tk.store.schema_version(con) == schema.migrations()[-1][0] == 2


def test_session_time_zone_is_utc(con):
    assert con.execute("SELECT current_setting('TimeZone')").fetchone()[0] == "UTC"
    value = con.execute("SELECT TIMESTAMPTZ '2026-03-02 16:05:00+02'").fetchone()[0]
    assert value.utcoffset().total_seconds() == 0 and value.hour == 14


def test_file_case_persists_and_reopens_read_only(case_path):
    con = tk.connect(case_path)
    con.execute("INSERT INTO events (ts, kind) VALUES ('2026-03-02T14:00Z', 'deploy')")
    con.close()
    reader = tk.connect(case_path, read_only=True)
    assert reader.execute("SELECT kind FROM events").fetchall() == [("deploy",)]
    with pytest.raises(duckdb.Error):
        reader.execute("INSERT INTO events (kind) VALUES ('x')")
    reader.close()


def test_migrates_a_version_1_case(case_path):
    raw = duckdb.connect(str(case_path))
    raw.execute(
        "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name VARCHAR, "
        "applied_at TIMESTAMPTZ, toolkit_version VARCHAR)"
    )
    version, name, sql = schema.migrations()[0]
    raw.execute(sql)
    raw.execute("INSERT INTO schema_version VALUES (?, ?, now(), 'old')", [version, name])
    raw.execute("INSERT INTO events (kind) VALUES ('restart')")
    raw.close()
    with pytest.raises(SchemaVersionError, match="Open it once for writing"):
        tk.connect(case_path, read_only=True)
    con = tk.connect(case_path)
    assert tk.store.schema_version(con) == 2
    assert con.execute("SELECT count(*) FROM case_meta").fetchone() == (0,)
    assert con.execute("SELECT kind FROM events").fetchall() == [("restart",)]


def test_newer_case_is_refused(case_path):
    con = tk.connect(case_path)
    con.execute("INSERT INTO schema_version VALUES (99, 'future', now(), '9.9')")
    con.close()
    with pytest.raises(SchemaVersionError, match="newer than this toolkit"):
        tk.connect(case_path)


def test_read_only_needs_an_existing_case(tmp_path):
    with pytest.raises(InvalidParameterError, match="No case database"):
        tk.connect(tmp_path / "missing.duckdb", read_only=True)
    plain = tmp_path / "plain.duckdb"
    duckdb.connect(str(plain)).close()
    with pytest.raises(SchemaVersionError, match="not a case database"):
        tk.connect(plain, read_only=True)


def test_locked_case_gives_advice_not_a_traceback(case_path):
    tk.connect(case_path).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import duckdb, sys, time
            con = duckdb.connect({str(case_path)!r})
            print("ready", flush=True)
            sys.stdin.read()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        for read_only in (False, True):
            with pytest.raises(CaseLockedError) as info:
                tk.connect(case_path, read_only=read_only)
            message = str(info.value)
            assert f"PID {holder.pid}" in message
            assert "read_only=True" in message
            assert isinstance(info.value, OSError)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


def test_views_and_macros_answer_like_pandas(con):
    import pandas as pd

    frame = pd.DataFrame({
        "request_id": [f"r{i}" for i in range(8)],
        "ts": pd.date_range("2026-03-02T14:00Z", periods=8, freq="10min"),
        "latency_ms": [10, 20, 30, 40, 100, 200, 300, 400.0],
        "status": ["ok", "ok", "error", "ok", "timeout", "ok", "ok", "error"],
        "prediction": ["1", "0", "1", "1", "0", "0", "1", "1"],
        "score": [0.9, 0.8, 0.7, 0.6, 0.9, 0.8, 0.7, 0.6],
    })
    labels = pd.DataFrame({"request_id": ["r0", "r1", "r2", "r5"],
                           "label": ["1", "1", "1", "0"]})
    tk.load(con, frame, table="requests")
    tk.load(con, labels, table="labels")
    timeline = con.sql("SELECT * FROM latency_timeline(INTERVAL 40 MINUTE)").df()
    assert timeline["requests"].tolist() == [4, 4]
    assert timeline["p50_ms"].tolist() == [25.0, 250.0]
    assert timeline["p99_ms"].tolist() == pytest.approx(
        [frame.latency_ms[:4].quantile(0.99), frame.latency_ms[4:].quantile(0.99)])
    assert timeline["error_rate"].tolist() == [0.25, 0.25]
    assert timeline["timeout_rate"].tolist() == [0.0, 0.25]
    labelled = con.sql("SELECT request_id, correct FROM labelled_predictions ORDER BY 1").fetchall()
    assert labelled == [("r0", True), ("r1", False), ("r2", True), ("r5", True)]
    accuracy = con.execute("SELECT accuracy FROM accuracy_timeline(INTERVAL 1 DAY)").fetchone()[0]
    assert accuracy == pytest.approx(0.75)
    window = con.execute(
        "SELECT count(*) FROM window_requests('2026-03-02T14:10Z', '2026-03-02T14:30Z')"
    ).fetchone()[0]
    assert window == 2


def test_connection_is_free_after_toolkit_calls(con):
    """DuckDB 2.0 refuses new work while a result is partly fetched: the toolkit must always
    consume its results, so a notebook can go on with con.sql() after any toolkit call."""
    import pandas as pd

    frame = pd.DataFrame({"request_id": ["a"], "ts": ["2026-03-02T14:00Z"], "latency_ms": [1.0]})
    tk.load(con, frame, table="requests")
    con.sql("SELECT 1").df()
    tk.summarize(con)
    assert con.sql("SELECT count(*) AS n FROM requests").df()["n"].tolist() == [1]
