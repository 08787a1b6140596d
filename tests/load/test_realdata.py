"""Generic loaders on real exported traces from ../shared/realdata (skipped when absent)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import toolkit as tk
from tests.conftest import realdata

pytestmark = pytest.mark.realdata
UTC = UTC


def test_azure_llm_trace_with_a_mapping(con):
    path = realdata("azure_llm_inference_2023", "AzureLLMInferenceTrace_conv.csv")
    mapping = {
        "table": "requests",
        "columns": {"ts": {"source": "TIMESTAMP", "unit": "iso"},
                    "input_tokens": "ContextTokens", "output_tokens": "GeneratedTokens",
                    "endpoint": {"value": "conversation"}},
    }
    report = tk.load(con, path, mapping=mapping)
    # The README of the data set: 19,366 rows; its span (18:15:46 to 19:14:19) covers both
    # files, and this one ends with 2023-11-16 19:14:08.4025270.
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (19366, 19366, 0)
    first, last, generated_zero = con.execute(
        "SELECT min(ts), max(ts), count_if(output_tokens = 0) FROM requests").fetchone()
    assert first.replace(microsecond=0) == datetime(2023, 11, 16, 18, 15, 46, tzinfo=UTC)
    assert last == datetime(2023, 11, 16, 19, 14, 8, 402527, tzinfo=UTC)
    assert generated_zero == 0
    # no ids in the trace: synthesized, unique
    assert con.execute("SELECT count(DISTINCT request_id) FROM requests").fetchone()[0] == 19366


def test_alibaba_metric_files_bind_columns_by_name(con):
    # value comes first in this file, last in others: columns are bound by name.
    path = realdata("alibaba_genai_2026", "pod_gpu_duty_cycle_anon.csv.gz")
    mapping = {"table": "metrics", "columns": {
        "ts": {"source": "timestamp_anon", "unit": "s"}, "host": "container_ip",
        "name": {"value": "gpu_utilization"}}}
    report = tk.load(con, path, mapping=mapping)
    assert report.rows_read == 157417
    assert report.rows_read == report.rows_loaded + report.rows_rejected
    first, last = con.execute("SELECT min(ts), max(ts) FROM metrics").fetchone()
    assert first.date().isoformat() == "2022-09-11" and last.date().isoformat() == "2022-09-12"
    assert con.execute("SELECT count(DISTINCT name) FROM metrics").fetchone()[0] == 1


def test_mooncake_jsonl_trace(con):
    path = realdata("mooncake", "conversation_trace.jsonl")
    mapping = {"table": "requests", "drop": ["hash_ids"], "columns": {
        "ts": {"source": "timestamp", "unit": "ms"}, "input_tokens": "input_length",
        "output_tokens": "output_length"}}
    report = tk.load(con, path, mapping=mapping)
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (12031, 12031, 0)
    span = con.execute("SELECT epoch_ms(max(ts)) - epoch_ms(min(ts)) FROM requests").fetchone()[0]
    assert span == 3_536_999
