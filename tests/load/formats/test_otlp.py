"""OTLP/JSON traces: server spans into requests."""

from __future__ import annotations

import json

import pytest

import toolkit as tk
from tests.load.formats._helpers import FIXTURES, at, counts_hold, rejects

OTLP = FIXTURES / "otlp"
COLUMNS = ("request_id, ts, latency_ms, status, http_status, error_type, endpoint, host, "
           "model_name, model_version, client_version, input_tokens, output_tokens, ttft_ms")


def test_one_request_document_with_number_and_string_times(con):
    report = tk.load(con, OTLP / "trace.json")
    (file,) = report.files
    assert (file.table, file.format) == ("requests", "otlp")
    assert (file.rows_read, file.rows_loaded, file.rows_rejected) == (2, 2, 0)
    assert file.notes == ("1 span(s) not of kind SERVER (internal, client, ...) not loaded",)
    rows = con.execute(f"SELECT {COLUMNS} FROM requests ORDER BY ts").fetchall()
    assert rows == [
        # numbers: 1772460000135802469 - 1772460000123456789 ns = 12.34568 ms, exact
        ("5b8efff798038103d269b633813fc60c:eee19b7ec3c1b174",
         at("2026-03-02T14:00:00.123456Z"), 12.34568, "ok", 200, None, "fraud-scorer",
         "fraud-7d9f-abc", None, "v7", "ios-5.2.0", None, None, None),
        # strings; request id from the x-request-id header attribute (an array value)
        ("req-0042", at("2026-03-02T14:00:01Z"), 250.000001, "error", 500, "oom",
         "fraud-scorer", "fraud-7d9f-abc", None, "v7", "android-5.1.9", None, None, None),
    ]
    counts_hold(con)


def test_collector_file_exporter_lines(con):
    report = tk.load(con, OTLP / "traces.jsonl")
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (4, 2, 2)
    rows = con.execute(f"SELECT {COLUMNS} FROM requests ORDER BY ts").fetchall()
    assert rows == [
        ("cmpl-8f2a", at("2026-03-02T14:00:02Z"), 2500.0, "ok", 200, None, "vllm", "gpu-node-3",
         "meta-llama/Llama-3.1-8B-Instruct", None, None, 512, 128, pytest.approx(215.0)),
        # kind given by name; HTTP 504 is a timeout
        ("cmpl-8f2b", at("2026-03-02T14:00:03Z"), 30000.0, "timeout", 504, None, "vllm",
         "gpu-node-3", None, None, None, None, None, None),
    ]
    assert rejects(con) == [
        (2, "startTimeUnixNano", "startTimeUnixNano: missing or not an integer"),
        (3, None, "not valid JSON (a truncated or corrupt line)"),
    ]
    counts_hold(con)


def test_cache_attributes(con, tmp_path):
    def attr(key, value):
        return {"key": key, "value": value}

    span = {
        "traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "EEE19B7EC3C1B174",
        "name": "POST /v2/score", "kind": 2, "startTimeUnixNano": "1772460000000000000",
        "endTimeUnixNano": "1772460000002500000", "status": {},
        "attributes": [attr("http.response.status_code", {"intValue": "200"}),
                       attr("cache.hit", {"boolValue": True}),
                       attr("cache.model_version", {"stringValue": "4.19.1"}),
                       attr("model.version", {"stringValue": "4.20.0"})],
    }
    request = {"resourceSpans": [{"resource": {"attributes": []},
                                  "scopeSpans": [{"scope": {}, "spans": [span]}]}]}
    path = tmp_path / "traces.jsonl"
    path.write_text(json.dumps(request) + "\n")
    assert tk.load(con, path).rows_loaded == 1
    # a stale cache hit: answered by an older model version than the one deployed
    assert con.execute("SELECT cache_hit, cache_model_version, model_version, latency_ms "
                       "FROM requests").fetchall() == [(True, "4.19.1", "4.20.0", 2.5)]
