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
        # DESIGN section 3a: generative, multiclass and regression columns (migration 3)
        "cached_tokens": "INTEGER", "tpot_ms": "DOUBLE", "queue_ms": "DOUBLE",
        "finish_reason": "VARCHAR", "preemptions": "INTEGER", "params": "JSON",
        "template_version": "VARCHAR", "adapter": "VARCHAR", "scores": "JSON",
        "prefix_hashes": "JSON", "pred_lower": "DOUBLE", "pred_upper": "DOUBLE",
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
                "load_id": "INTEGER", "template_version": "VARCHAR"},
    "endpoints": {"endpoint": "VARCHAR", "task": "VARCHAR", "positive_class": "VARCHAR",
                  "classes": "JSON", "interval_coverage": "DOUBLE"},
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
    assert tk.store.schema_version(con) == schema.migrations()[-1][0] == 3


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
    assert tk.store.schema_version(con) == 3
    assert con.execute("SELECT count(*) FROM case_meta").fetchone() == (0,)
    assert con.execute("SELECT kind FROM events").fetchall() == [("restart",)]
    assert columns(con, "requests")["finish_reason"] == "VARCHAR"
    assert con.execute("SELECT count(*) FROM endpoints").fetchone() == (0,)


def test_migrates_a_version_2_case_with_feature_columns_and_rows(case_path):
    raw = duckdb.connect(str(case_path))
    raw.execute(
        "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name VARCHAR, "
        "applied_at TIMESTAMPTZ, toolkit_version VARCHAR)"
    )
    for version, name, sql in schema.migrations()[:2]:
        raw.execute(sql)
        raw.execute("INSERT INTO schema_version VALUES (?, ?, now(), 'old')", [version, name])
    raw.execute("ALTER TABLE requests ADD COLUMN amount DOUBLE")
    raw.execute("INSERT INTO requests (request_id, ts, amount) VALUES ('r1', now(), 2.5)")
    raw.close()
    con = tk.connect(case_path)
    assert tk.store.schema_version(con) == 3
    row = con.execute("SELECT request_id, amount, tpot_ms, adapter FROM requests").fetchall()
    assert row == [("r1", 2.5, None, None)]


def test_endpoints_catalog_keeps_one_row_per_endpoint_and_rejects_unknown_tasks(tmp_path):
    csv = tmp_path / "endpoints.csv"
    csv.write_text('endpoint,task,classes\nfraud,Binary,\ntopics,multiclass,"[""a"",""b""]"\n'
                   "eta,ranking,\n", encoding="utf-8")
    con = tk.connect(tmp_path / "case.duckdb")
    tk.load(con, csv)
    reasons = con.execute("SELECT row_number, column_name, reason FROM rejects").fetchall()
    assert reasons == [(4, "task", "task: not one of binary, multiclass, regression, generative")]
    assert con.execute("SELECT task FROM endpoints WHERE endpoint = 'fraud'").fetchone() == (
        "binary",)
    # a catalog: a later declaration of the same endpoint replaces the earlier one
    csv.write_text("endpoint,task\nfraud,regression\n", encoding="utf-8")
    tk.load(con, csv, replace=True)
    rows = con.execute("SELECT endpoint, task FROM endpoints ORDER BY endpoint").fetchall()
    assert rows == [("fraud", "regression"), ("topics", "multiclass")]


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


def _hold(case_path, read_only):
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import duckdb, sys, time
            con = duckdb.connect({str(case_path)!r}, read_only={read_only})
            print("ready", flush=True)
            sys.stdin.read()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout.readline().strip() == "ready"
    return holder


def test_locked_case_says_who_holds_it_and_what_to_do(case_path):
    """Issue 19 defect 11: a read-only reader was told to open read-only (which it did), and a
    read-only holder was called 'open for writing'."""
    tk.connect(case_path).close()
    holder = _hold(case_path, read_only=False)
    try:
        for read_only in (False, True):
            with pytest.raises(CaseLockedError) as info:
                tk.connect(case_path, read_only=read_only)
            message = str(info.value)
            assert f"PID {holder.pid}" in message
            assert "being written by" in message
            assert "open every connection read-only" not in message
            assert isinstance(info.value, OSError)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    reader = _hold(case_path, read_only=True)
    try:
        tk.connect(case_path, read_only=True).close()  # readers share the case
        with pytest.raises(CaseLockedError) as info:
            tk.connect(case_path)
        message = str(info.value)
        assert f"open read-only in another process (PID {reader.pid}" in message
        assert "for writing" not in message and "being written" not in message
        assert "Close the readers" in message
    finally:
        reader.stdin.close()
        reader.wait(timeout=30)


@pytest.mark.parametrize("name, content", [
    ("some.csv", b"request_id,ts\na,2026-03-02T14:00:00Z\n"),
    ("README.md", b"# A readme\n\nSome text that is long enough to pass a header check.\n"),
    ("empty.duckdb", b""),
    ("short.db", b"DUCK"),
])
@pytest.mark.parametrize("read_only", [False, True])
def test_a_file_that_is_not_duckdb_is_refused_and_unchanged(tmp_path, name, content, read_only):
    """Issue 19 defect 4: DuckDB opened a CSV as a throw-away in-memory database, so an ingest
    into --db some.csv reported rows loaded and kept nothing; README.md gave a traceback."""
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InvalidParameterError, match="is not a DuckDB case file") as info:
        tk.connect(path, read_only=read_only)
    assert "\n" not in str(info.value) and str(path) in str(info.value)
    assert path.read_bytes() == content


def test_a_parquet_file_is_not_a_case(tmp_path):
    import pandas as pd

    path = tmp_path / "requests.parquet"
    pd.DataFrame({"a": [1, 2]}).to_parquet(path)
    before = path.read_bytes()
    with pytest.raises(InvalidParameterError, match="not a DuckDB case file"):
        tk.connect(path)
    assert path.read_bytes() == before


def test_a_new_path_with_any_name_becomes_a_case(tmp_path):
    path = tmp_path / "new.csv"
    tk.connect(path).close()
    con = tk.connect(path, read_only=True)
    assert tk.store.schema_version(con) == schema.migrations()[-1][0]
    con.close()


@pytest.mark.parametrize("limit", ["0MB", "0", "10MB", "50MB", "63MB", "0.05GB", "1KB"])
def test_too_small_or_malformed_memory_limit_is_one_clear_error(tmp_path, monkeypatch, limit):
    """Issue 19 defect 10: FORENSICS_MEMORY_LIMIT of 0-50MB ended in DuckDB tracebacks."""
    monkeypatch.setenv("FORENSICS_MEMORY_LIMIT", limit)
    path = tmp_path / "case.duckdb"
    with pytest.raises(InvalidParameterError, match="FORENSICS_MEMORY_LIMIT") as info:
        tk.connect(path)
    assert "\n" not in str(info.value)
    assert not path.exists()


@pytest.mark.parametrize("limit, mib", [("64MB", 61.0), ("1GiB", 1024.0), ("512 mb", 488.2)])
def test_memory_limit_from_64mb_is_applied(monkeypatch, limit, mib):
    monkeypatch.setenv("FORENSICS_MEMORY_LIMIT", limit)
    con = tk.connect()
    setting = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    value, unit = setting.split()
    assert unit == ("GiB" if mib >= 1024 else "MiB")
    assert float(value) * (1024 if unit == "GiB" else 1) == pytest.approx(mib, abs=0.1)


def test_sandboxed_connection_reads_the_case_and_nothing_else(case_path, tmp_path):
    """Issue 19 defect 7: the sandbox `forensics sql` uses blocks ATTACH, COPY TO and file
    readers, and the case's own views, macros and JSON columns keep working."""
    import pandas as pd

    con = tk.connect(case_path)
    tk.load(con, pd.DataFrame({"request_id": ["a", "b"], "ts": ["2026-03-02T14:00Z"] * 2,
                               "latency_ms": [10.0, 30.0]}), table="requests")
    con.execute("""INSERT INTO events (ts, kind, detail) VALUES ('2026-03-02T14:00Z', 'deploy',
                   '{"x": 1}')""")
    con.close()
    other = tmp_path / "other.duckdb"
    duckdb.connect(str(other)).execute("CREATE TABLE keep AS SELECT 42 AS v").close()
    with pytest.raises(InvalidParameterError, match="read_only"):
        tk.connect(case_path, external_access=False)
    box = tk.connect(case_path, read_only=True, external_access=False)
    assert box.execute("SELECT requests, p50_ms FROM latency_timeline(INTERVAL 1 HOUR)"
                       ).fetchall() == [(2, 20.0)]
    assert box.execute("SELECT detail->>'x' FROM events").fetchall() == [("1",)]
    assert box.execute("SELECT count(*) FROM window_requests('2026-03-02', '2026-03-03')"
                       ).fetchall() == [(2,)]
    for attack in (
        f"ATTACH '{other}' AS o (READ_ONLY false)",
        f"COPY (SELECT 1 AS v) TO '{other}'",
        f"COPY (SELECT 1 AS v) TO '{tmp_path / 'leak.csv'}'",
        "SELECT * FROM read_text('/etc/hostname')",
        f"SELECT * FROM read_csv('{tmp_path / 'x.csv'}')",
        "SET enable_external_access = true",
        "SET lock_configuration = false",
    ):
        with pytest.raises(duckdb.Error):
            box.execute(attack)
    box.close()
    assert not (tmp_path / "leak.csv").exists()
    assert duckdb.connect(str(other), read_only=True).execute("SELECT v FROM keep").fetchall() \
        == [(42,)]


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


@pytest.mark.parametrize("threads", ["abc", "0", "-2", "1.5"])
def test_malformed_thread_count_is_one_clear_error(monkeypatch, threads):
    """FORENSICS_THREADS=abc was a bare ValueError traceback from int()."""
    monkeypatch.setenv("FORENSICS_THREADS", threads)
    with pytest.raises(InvalidParameterError, match="FORENSICS_THREADS must be a positive"):
        tk.connect()
    monkeypatch.setenv("FORENSICS_THREADS", "1")
    assert tk.connect().execute("SELECT current_setting('threads')").fetchone()[0] == 1
