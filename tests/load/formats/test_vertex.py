"""Vertex AI request-response logging exports (BigQuery -> NDJSON / Parquet)."""

from __future__ import annotations

import decimal
from datetime import datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import toolkit as tk
from tests.load.formats._helpers import FIXTURES, UTC, at, counts_hold, rejects

VX = FIXTURES / "vertex"
EP = "projects/1234567890/locations/us-central1/endpoints/8765432101234567890"


def test_ndjson_one_row_per_instance(con):
    report = tk.load(con, VX / "request_response_logging.ndjson")
    (file,) = report.files
    assert (file.table, file.format) == ("requests", "vertex")
    assert (file.rows_read, file.rows_loaded, file.rows_rejected) == (7, 4, 3)
    rows = con.execute(
        "SELECT request_id, ts, endpoint, model_version, prediction, score, age, workclass, "
        "hours_per_week, f0, f1, f2 FROM requests ORDER BY ts, request_id").fetchall()
    assert rows == [
        # NUMERIC ids above 2^53 stay exact; AutoML classes/scores give class and its score
        ("5374205265901353984", at("2026-03-02T14:00:00.123456Z"), EP, "4512345678901234567",
         "<=50K", 0.82, 39.0, "State-gov", 40.0, None, None, None),
        ("5374205265901353985:0", at("2026-03-02T14:00:01Z"), EP, "4512345678901234567",
         "1", 0.7, None, None, None, 1.5, 0.2, 3.0),
        ("5374205265901353985:1", at("2026-03-02T14:00:01Z"), EP, "4512345678901234567",
         "0", 0.9, None, None, None, 2.5, 0.1, 1.0),
        # one {"instances": [...]} payload element is expanded; a regression value has no score
        ("5374205265901353986", at("2026-03-02T14:00:02Z"), EP, "9912345678901234567",
         "3.25", None, None, None, None, 0.5, 0.5, 0.5),
    ]
    assert rejects(con) == [
        (4, "request_payload", "request_payload: element 0 is not valid JSON"),
        (5, "response_payload", "response_payload: the request holds 2 record(s) but the "
                                "response 1"),
        (6, None, "not valid JSON (a truncated or corrupt line)"),
    ]
    counts_hold(con)


def test_generative_ai_logs(con):
    report = tk.load(con, VX / "genai_request_response.ndjson")
    assert (report.rows_read, report.rows_loaded) == (1, 1)
    row = con.execute("SELECT request_id, ts, model_name, model_version, input_tokens, "
                      "output_tokens, latency_ms FROM requests").fetchone()
    assert row == ("5374205265901353984", at("2025-09-08T10:15:02.123Z"),
                   "publishers/google/models/gemini-2.5-pro", "default", 3, 29, 11225.994)


def test_parquet_export_with_decimal_ids(con, tmp_path):
    table = pa.table({
        "endpoint": [EP, EP],
        "deployed_model_id": ["4512345678901234567", "4512345678901234567"],
        "logging_time": pa.array([datetime(2026, 3, 2, 14, 0, tzinfo=UTC),
                                  datetime(2026, 3, 2, 14, 0, 5, tzinfo=UTC)],
                                 pa.timestamp("us", tz="UTC")),
        # BigQuery NUMERIC -> Parquet DECIMAL(38, 9)
        "request_id": pa.array([decimal.Decimal("98765432109876543210"),
                                decimal.Decimal("98765432109876543211")], pa.decimal128(38, 9)),
        "request_payload": [['{"age": 52, "workclass": "Private"}'],
                            ["[1.0, 2.0]", "[3.0, 4.0]"]],
        "response_payload": [['{"classes": ["<=50K", ">50K"], "scores": [0.35, 0.65]}'],
                             ["[0.6, 0.4]", "[0.45, 0.55]"]],
    })
    path = tmp_path / "request_response_logging.parquet"
    pq.write_table(table, path)
    report = tk.load(con, path)
    assert [(f.format, f.rows_read, f.rows_loaded) for f in report.files] == [("vertex", 3, 3)]
    rows = con.execute("SELECT request_id, ts, prediction, score, age, workclass, f0, f1 "
                       "FROM requests ORDER BY request_id").fetchall()
    assert rows == [
        ("98765432109876543210", at("2026-03-02T14:00:00Z"), ">50K", 0.65, 52.0, "Private",
         None, None),
        ("98765432109876543211:0", at("2026-03-02T14:00:05Z"), "0", 0.6, None, None, 1.0, 2.0),
        ("98765432109876543211:1", at("2026-03-02T14:00:05Z"), "1", pytest.approx(0.55), None,
         None, 3.0, 4.0),
    ]
