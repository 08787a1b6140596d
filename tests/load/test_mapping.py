"""Mapping files beyond renames (issue 20 items 5, 6, 7, 8): value maps, HTTP-code statuses,
percent units, coarse and relative times, roles, score semantics, per-file sections, shipped
mappings, kinds from values, and the batch run time through ``tk.load`` / ``forensics ingest``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import toolkit as tk
from toolkit.errors import FileParseError, MappingError
from toolkit.load.mapping import read_mapping, shipped_mappings

FORENSICS = shutil.which("forensics", path=str(Path(sys.executable).parent))


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([FORENSICS, *args], capture_output=True, text=True,
                          env={"CI": "true", "PATH": "/usr/bin:/bin", "COLUMNS": "200"})


def _frame(**columns) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    base = {"request_id": [f"r{i}" for i in range(n)],
            "ts": [f"2026-03-02T14:{i:02d}:00Z" for i in range(n)]}
    return pd.DataFrame({**base, **columns})


# --- item 5: statuses ----------------------------------------------------------------------

def test_value_map_translates_statuses_and_counts_the_unmapped_ones(con):
    frame = _frame(state=["SUCCEED", "FAILED", "SUCCEED", "PENDING", "PENDING", None])
    mapping = {"columns": {"status": {"source": "state",
                                      "values": {"SUCCEED": "ok", "FAILED": "error"}}}}
    report = tk.load(con, frame, table="requests", mapping=mapping)
    assert report.rows_loaded == 6
    assert con.execute("SELECT request_id, status FROM requests ORDER BY request_id"
                       ).fetchall() == [("r0", "ok"), ("r1", "error"), ("r2", "ok"),
                                        ("r3", "pending"), ("r4", "pending"), ("r5", None)]
    assert ("2 row(s) with state values the mapping does not list, kept as they are in "
            "status: 'PENDING' (2)") in report.files[0].notes
    summary = tk.summarize(con)
    assert summary.unknown_statuses == {"pending": 2}


def test_value_map_works_on_any_column(con):
    frame = _frame(ver=["a", "b", "c"])
    tk.load(con, frame, table="requests",
            mapping={"columns": {"model_version": {"source": "ver", "values": {"a": "v1",
                                                                                "b": "v2"}}}})
    assert con.execute("SELECT model_version FROM requests ORDER BY request_id"
                       ).fetchall() == [("v1",), ("v2",), ("c",)]


def test_a_status_column_of_http_codes_is_read_as_codes(con):
    codes = ["200", "204", "301", "404", "408", "500", "503", "504", "ok", "timeout"]
    tk.load(con, _frame(status=codes), table="requests")
    assert [s for (s,) in con.execute(
        "SELECT status FROM requests ORDER BY request_id").fetchall()] == [
        "ok", "ok", "ok", "error", "timeout", "error", "error", "timeout", "ok", "timeout"]


def test_numeric_status_column_of_http_codes(con):
    tk.load(con, _frame(status=[200, 429, 504]), table="requests")
    assert con.execute("SELECT status FROM requests ORDER BY request_id").fetchall() == [
        ("ok",), ("error",), ("timeout",)]


def test_http_status_alone_derives_status(con):
    report = tk.load(con, _frame(http_status=[200, 302, 400, 408, 502, 504]), table="requests")
    assert "status derived from http_status" in report.files[0].notes
    assert [s for (s,) in con.execute(
        "SELECT status FROM requests ORDER BY request_id").fetchall()] == [
        "ok", "ok", "error", "timeout", "error", "timeout"]
    assert tk.summarize(con).unknown_statuses == {}


def test_info_reports_unknown_statuses(tmp_path):
    path = tmp_path / "requests.csv"
    _frame(status=["ok", "SUCCEED", "SUCCEED", "error"]).to_csv(path, index=False)
    db = tmp_path / "case.duckdb"
    assert _run("ingest", str(path), "--db", str(db)).returncode == 0
    out = _run("info", "--db", str(db))
    assert out.returncode == 0, out.stderr
    assert "unknown statuses: succeed (2 rows)" in out.stdout


# --- item 6: percent -----------------------------------------------------------------------

def test_percent_unit_stores_a_fraction(con):
    frame = pd.DataFrame({"ts": ["2026-03-02T14:00:00Z"] * 3, "util": [0.0, 42.5, 100.0]})
    tk.load(con, frame, table="metrics", mapping={"columns": {
        "name": {"value": "gpu_utilization"}, "value": {"source": "util", "unit": "percent"}}})
    assert [v for (v,) in con.execute("SELECT value FROM metrics ORDER BY value").fetchall()] \
        == [0.0, pytest.approx(0.425), 1.0]


def test_percent_unit_on_a_feature(con):
    tk.load(con, _frame(cpu=[50.0, 25.0]), table="requests",
            mapping={"columns": {"cpu_share": {"source": "cpu", "unit": "percent"}}})
    assert con.execute("SELECT cpu_share FROM requests ORDER BY request_id").fetchall() == [
        (0.5,), (0.25,)]
    assert con.execute("SELECT kind, unit FROM features WHERE name = 'cpu_share'"
                       ).fetchall() == [("numeric", "fraction")]


def test_percent_is_refused_on_a_duration():
    with pytest.raises(MappingError, match="latency_ms"):
        read_mapping({"columns": {"latency_ms": {"source": "d", "unit": "percent"}}})


# --- item 7: kinds, coarse times, roles, score semantics ------------------------------------

def test_kinds_follow_the_values(con):
    frame = _frame(sex=pd.Categorical(["1", "2", "1", "2"]), code=["1", "2", "2", "1"],
                   n_cat=pd.Categorical([1, 2, 1, 1]), amount=["1.5", "2", "3", "4"],
                   count=[1, 2, 3, 4])
    tk.load(con, frame, table="requests")
    assert dict(con.execute("SELECT name, kind FROM features").fetchall()) == {
        "sex": "categorical", "code": "categorical", "n_cat": "categorical",
        "amount": "numeric", "count": "numeric"}
    # categorical values keep their text: '1' and '2', not 1.0 and 2.0
    assert con.execute("SELECT sex, code FROM requests WHERE request_id = 'r0'"
                       ).fetchall() == [("1", "1")]


def test_many_distinct_integer_strings_are_still_numeric(con):
    tk.load(con, _frame(age=[str(20 + i) for i in range(25)]), table="requests")
    assert con.execute("SELECT kind FROM features WHERE name = 'age'").fetchall() == [
        ("numeric",)]


@pytest.mark.parametrize(("unit", "values", "expected"), [
    ("year", [2019, 2020], ["2019-01-01", "2020-01-01"]),
    ("year", ["2019", "2020"], ["2019-01-01", "2020-01-01"]),
    ("month", ["2019-03", "201911"], ["2019-03-01", "2019-11-01"]),
    ("date", ["2019-03-07", "20191130"], ["2019-03-07", "2019-11-30"]),
])
def test_coarse_time_column_becomes_ts(con, unit, values, expected):
    frame = pd.DataFrame({"request_id": ["a", "b"], "when": values})
    report = tk.load(con, frame, table="requests",
                     mapping={"columns": {"ts": {"source": "when", "unit": unit}}})
    assert report.rows_loaded == 2
    got = con.execute("SELECT strftime(ts AT TIME ZONE 'UTC', '%Y-%m-%d %H:%M:%S') FROM "
                      "requests ORDER BY request_id").fetchall()
    assert [g for (g,) in got] == [f"{e} 00:00:00" for e in expected]
    assert any(n.startswith(f"ts from the {unit} column when") for n in report.files[0].notes)


def test_a_year_without_a_unit_is_refused_not_put_in_1970(con):
    frame = pd.DataFrame({"request_id": ["a", "b"], "year": [2019, 1_700_000_000]})
    report = tk.load(con, frame, table="requests", mapping={"columns": {"ts": "year"}})
    assert (report.rows_loaded, report.rows_rejected) == (1, 1)
    assert con.execute("SELECT request_id, ts = to_timestamp(1700000000) FROM requests"
                       ).fetchall() == [("b", True)]
    (reason,) = con.execute("SELECT reason FROM rejects").fetchone()
    assert "below 1e8" in reason and "year" in reason
    assert con.execute("SELECT count(*) FROM requests WHERE year(ts) = 1970").fetchone() == (0,)


def test_relative_time_with_an_origin(con):
    frame = pd.DataFrame({"timestamp": [0, 1500, 60_000], "input_length": [1, 2, 3]})
    report = tk.load(con, frame, table="requests", mapping={"columns": {
        "ts": {"source": "timestamp", "unit": "ms", "origin": "2025-02-21T00:00:00+01:00"}}})
    assert report.rows_loaded == 3
    got = con.execute("SELECT epoch_ms(ts) FROM requests ORDER BY ts").fetchall()
    start = int(pd.Timestamp("2025-02-20T23:00:00Z").value // 1_000_000)
    assert [g for (g,) in got] == [start, start + 1500, start + 60_000]


def test_relative_time_without_an_origin_is_flagged(con):
    frame = pd.DataFrame({"timestamp": [0, 1500, 1_700_000_000_000]})
    report = tk.load(con, frame, table="requests",
                     mapping={"columns": {"ts": {"source": "timestamp", "unit": "ms"}}})
    assert report.rows_loaded == 3
    assert ("2 row(s) of timestamp (ms) fall before 1973-03-03 as epoch times: if they are "
            'relative to a start, declare it (ts = { ..., origin = "..." })'
            ) in report.files[0].notes


def test_origin_needs_an_epoch_unit():
    with pytest.raises(MappingError, match="origin"):
        read_mapping({"columns": {"ts": {"source": "t", "origin": "2025-01-01"}}})


def test_roles_keep_ids_and_target_out_of_the_features(con):
    mapping = {"roles": {"id": ["customer_id"], "target": "income"}}
    frame = _frame(customer_id=["c1", "c2"], income=[">50K", "<=50K"], age=[30.0, 40.0])
    report = tk.load(con, frame, table="requests", mapping=mapping)
    assert "id column(s) not catalogued as features: customer_id" in report.files[0].notes
    assert [n for (n,) in con.execute("SELECT name FROM features").fetchall()] == ["age"]
    assert con.execute("SELECT request_id, label FROM labels ORDER BY 1").fetchall() == [
        ("r0", ">50K"), ("r1", "<=50K")]
    ref = pd.DataFrame({"customer_id": ["c9"], "income": [">50K"], "age": [50.0]})
    tk.load(con, ref, table="reference", mapping=mapping)
    columns = {c for (c,) in con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = 'reference'").fetchall()}
    assert "customer_id" not in columns and "income" not in columns
    assert [n for (n,) in con.execute("SELECT name FROM features").fetchall()] == ["age"]


def test_score_semantics_are_recorded_in_case_meta(con):
    mapping = {"columns": {"score": {"source": "p", "semantics": "p_positive",
                                     "positive": ">50K"}}}
    tk.load(con, _frame(p=[0.1, 0.9]), table="requests", mapping=mapping)
    assert con.execute("SELECT score FROM requests ORDER BY request_id").fetchall() == [
        (0.1,), (0.9,)]
    (value,) = con.execute("SELECT value FROM case_meta WHERE key = 'score_semantics'"
                           ).fetchone()
    assert json.loads(value) == {"score_is": "p_positive", "source": "p", "positive": ">50K"}


def test_p_positive_needs_the_positive_class():
    with pytest.raises(MappingError, match="positive"):
        read_mapping({"columns": {"score": {"source": "p", "semantics": "p_positive"}}})


# --- item 4: per-file sections and shipped mappings -----------------------------------------

def test_files_sections_give_each_file_its_table_and_columns(con, tmp_path):
    folder = tmp_path / "export"
    folder.mkdir()
    pd.DataFrame({"t": [1_700_000_000.0, 1_700_000_060.0], "value": [50.0, 75.0],
                  "pod": ["p0", "p1"]}).to_csv(folder / "gpu_duty.csv", index=False)
    pd.DataFrame({"created": ["2023-11-14 22:13:20"], "state": ["FAILED"]}).to_csv(
        folder / "request_log.csv", index=False)
    (folder / "notes.txt").write_text("not data\n")
    mapping = tmp_path / "m.toml"
    mapping.write_text(
        '[files."gpu_duty*"]\ntable = "metrics"\n'
        'columns = { ts = { source = "t", unit = "s" }, host = "pod", '
        'name = { value = "gpu_utilization" }, value = { source = "value", unit = "percent" } }\n'
        '[files."request_log*"]\ntable = "requests"\n'
        '[files."request_log*".columns]\nts = "created"\n'
        'status = { source = "state", values = { FAILED = "error" } }\n')
    report = tk.load(con, folder, mapping=mapping)
    assert {(Path(f.source).name, f.table, f.status) for f in report.files} == {
        ("gpu_duty.csv", "metrics", "loaded"), ("request_log.csv", "requests", "loaded"),
        ("notes.txt", "-", "skipped")}
    assert con.execute("SELECT host, name, value FROM metrics ORDER BY host").fetchall() == [
        ("p0", "gpu_utilization", 0.5), ("p1", "gpu_utilization", 0.75)]
    assert con.execute("SELECT status FROM requests").fetchall() == [("error",)]


def test_shipped_mappings_resolve_by_name(tmp_path):
    assert {"alibaba-genai", "azure-llm", "mooncake"} <= set(shipped_mappings())
    mapping = read_mapping("azure-llm")
    assert mapping.table == "requests"
    assert mapping.columns["input_tokens"].source == "ContextTokens"
    with pytest.raises(MappingError, match="shipped: alibaba-genai"):
        read_mapping("no-such-mapping")
    # a path (with a separator or .toml) is a file, never a shipped name
    with pytest.raises(MappingError, match="not found"):
        read_mapping(tmp_path / "azure-llm.toml")


def test_every_shipped_mapping_parses():
    for name in shipped_mappings():
        assert read_mapping(name) is not None


def test_ingest_help_lists_the_shipped_mappings():
    out = _run("ingest", "--help")
    assert out.returncode == 0
    text = "".join(out.stdout.split())  # help wraps at hyphens: compare without whitespace
    for name in shipped_mappings():
        assert name in text


# --- item 8: run time through tk.load and forensics ingest ----------------------------------

def _batch_file(tmp_path) -> Path:
    record = {"captureData": {"batchTransformOutput": {
        "observedContentType": "application/json", "mode": "OUTPUT", "encoding": "JSON",
        "data": json.dumps({"instances": [{"features": [1.0, 2.0]}],
                            "SageMakerOutput": {"predictions": [{"predicted_label": 1,
                                                                 "score": 0.8}]}})}},
        "eventMetadata": {"eventId": "e1"}, "eventVersion": "0"}
    path = tmp_path / "capture.jsonl"
    path.write_text(json.dumps(record) + "\n")
    return path


def test_run_time_reaches_the_batch_reader(con):
    from tests.conftest import realdata

    path = realdata("sagemaker", "merged_groundtruth_batch_transform.jsonl")
    without = tk.load(tk.connect(), path)
    assert (without.rows_read, without.rows_loaded) == (336, 0)
    report = tk.load(con, path, run_time="2026-01-01T00:00:00Z")
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (336, 335, 1)
    assert con.execute("SELECT DISTINCT ts = TIMESTAMPTZ '2026-01-01 00:00:00+00' "
                       "FROM requests").fetchall() == [(True,)]


def test_ingest_run_time_option(tmp_path):
    from tests.conftest import realdata

    path = realdata("sagemaker", "merged_groundtruth_batch_transform.jsonl")
    db = tmp_path / "case.duckdb"
    out = _run("ingest", str(path), "--db", str(db), "--run-time", "2026-01-01T00:00:00Z")
    assert out.returncode == 0, out.stderr
    assert "336 rows read, 335 loaded, 1 rejected" in out.stdout
    bad = _run("ingest", str(path), "--db", str(tmp_path / "b.duckdb"), "--run-time", "soon")
    assert bad.returncode == 2
    assert "'soon' is not an ISO 8601 time" in bad.stderr
    assert not (tmp_path / "b.duckdb").exists()


def test_load_refuses_an_invalid_run_time_before_reading(con, tmp_path):
    with pytest.raises(tk.errors.InvalidParameterError, match="ISO 8601"):
        tk.load(con, tmp_path / "absent.jsonl", run_time="yesterday")


# --- writer: the refusal says why the first record failed -----------------------------------

def test_unparseable_file_message_carries_the_first_error(con, tmp_path):
    path = tmp_path / "requests.csv"
    path.write_text("request_id,ts\na,1,3,4\nb,2,3,3\n")
    with pytest.raises(FileParseError) as info:
        tk.load(con, path)
    assert str(info.value) == (
        f"{path}: no record could be parsed (first failure at line 2: malformed CSV line "
        "(too many columns)); is the file in the format its name says?")
