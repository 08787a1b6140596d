"""LLM serving exports (issue 23 item 1): /metrics scrapes, OpenAI-style logs, gen_ai spans."""

from __future__ import annotations

import json

import pytest

import toolkit as tk
from tests.load.formats._helpers import at, counts_hold, rejects
from toolkit.load.discover import SourceFile
from toolkit.load.formats import READERS, resolve

T0, T1 = at("2026-12-06T10:00:00Z"), at("2026-12-06T10:00:15Z")

SCRAPES = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="llama",pod="vllm-0"} 7.0
vllm:num_requests_waiting{model_name="llama",pod="vllm-0"} 3.0
vllm:kv_cache_usage_perc{model_name="llama",pod="vllm-0"} 0.91
vllm:num_preemptions_total{model_name="llama",pod="vllm-0"} 10.0
vllm:time_to_first_token_seconds_bucket{le="0.1",model_name="llama",pod="vllm-0"} 10.0
vllm:time_to_first_token_seconds_bucket{le="1.0",model_name="llama",pod="vllm-0"} 20.0
vllm:time_to_first_token_seconds_bucket{le="+Inf",model_name="llama",pod="vllm-0"} 20.0
# time: 2026-12-06T10:00:15Z
vllm:num_requests_running{model_name="llama",pod="vllm-0"} 9.0
vllm:num_preemptions_total{model_name="llama",pod="vllm-0"} 25.0
vllm:time_to_first_token_seconds_bucket{le="0.1",model_name="llama",pod="vllm-0"} 12.0
vllm:time_to_first_token_seconds_bucket{le="1.0",model_name="llama",pod="vllm-0"} 40.0
vllm:time_to_first_token_seconds_bucket{le="+Inf",model_name="llama",pod="vllm-0"} 40.0
sglang:token_usage{instance="sg-1:30000"} 0.5 1765015230000
tgi_queue_size{a="x \\"quoted\\"",b="y"} NaN 1765015230
garbage line here
tgi_batch_current_size{a="1",a="2"} 4
"""


def series(con, name: str) -> list[tuple]:
    return con.execute("SELECT ts, host, value FROM metrics WHERE name = ? ORDER BY ts, host",
                       [name]).fetchall()


def test_scrapes_get_canonical_names_times_quantiles_and_rates(con, tmp_path):
    path = tmp_path / "vllm-2026-12-06T10:00:00Z.prom"
    path.write_text(SCRAPES, encoding="utf-8")
    report = tk.load(con, path)
    (file,) = report.files
    assert (file.table, file.format) == ("metrics", "prometheus-text")
    # the file name times the first scrape, the "# time:" marker the second
    assert series(con, "requests_running") == [(T0, "vllm-0", 7.0), (T1, "vllm-0", 9.0)]
    assert (T0, "vllm-0", 3.0) in series(con, "requests_waiting")
    assert (T0, "vllm-0", 0.91) in series(con, "kv_cache_usage")
    # the counter keeps its cumulative values and gets a rate: (25 - 10) / 15 s
    assert series(con, "preemptions_total") == [(T0, "vllm-0", 10.0), (T1, "vllm-0", 25.0)]
    assert series(con, "preemptions_per_s") == [(T1, "vllm-0", pytest.approx(1.0))]
    # histogram_quantile on the increases (2, 20, 20): p50 rank 10 falls in (0.1, 1.0]:
    # 0.1 + 0.9 * (10 - 2) / (20 - 2) = 0.5 s
    assert series(con, "ttft_p50_ms") == [(T1, "vllm-0", pytest.approx(500.0))]
    assert series(con, "ttft_p99_ms") == [(T1, "vllm-0", pytest.approx(
        (0.1 + 0.9 * (19.8 - 2) / 18) * 1000))]
    # own timestamps: milliseconds, and seconds when below 1e11
    assert (at("2025-12-06T10:00:30Z"), "sg-1:30000", 0.5) in series(con, "kv_cache_usage")
    name, labels, value = con.execute(
        "SELECT name, labels, value FROM metrics WHERE labels->>'__name__' = 'tgi_queue_size'"
    ).fetchone()
    assert (name, value) == ("requests_waiting", None)  # NaN is "no value"
    assert json.loads(labels) == {"a": 'x "quoted"', "b": "y", "__name__": "tgi_queue_size"}
    assert sorted(r[2] for r in rejects(con)) == [
        "a label is named twice in the sample: which value is meant cannot be told",
        "not a Prometheus text-format sample (name{labels} value [timestamp]) nor a # comment",
    ]
    counts_hold(con)


def test_a_scrape_without_any_time_is_rejected_unless_a_run_time_is_given(con, tmp_path):
    path = tmp_path / "metrics.prom"
    path.write_text('vllm:num_requests_waiting{pod="a"} 2\nvllm:num_requests_waiting{pod="b"} '
                    "5 1765015230000\n", encoding="utf-8")
    tk.load(con, path)
    assert series(con, "requests_waiting") == [(at("2025-12-06T10:00:30Z"), "b", 5.0)]
    ((row, column, reason),) = rejects(con)
    assert (row, column) == (1, "ts")
    assert "no time" in reason and "--run-time" in reason
    other = tmp_path / "other.prom"
    other.write_text('vllm:num_requests_waiting{pod="c"} 4\n', encoding="utf-8")
    tk.load(con, other, run_time="2026-12-01T08:00:00Z")
    assert (at("2026-12-01T08:00:00Z"), "c", 4.0) in series(con, "requests_waiting")


@pytest.mark.parametrize("text", [
    "a,b\n1,2\n",                               # a CSV file
    "2026-01-01 hello world\nsecond line\n",     # a plain log
    "value 3\nother 4\n",                        # two words per line, no labels, no ':'
])
def test_text_that_is_not_a_scrape_is_not_taken_for_one(tmp_path, text):
    path = tmp_path / "x.txt"
    path.write_text(text, encoding="utf-8")
    assert READERS["prometheus-text"].sniff(path, text.encode()) is None


OPENAI_LINES = [
    {"request": {"model": "llama-3-8b", "messages": [{"role": "user", "content": "hi"}],
                 "temperature": 0.7, "max_tokens": 256},
     "response": {"id": "chatcmpl-1", "object": "chat.completion", "created": 1765000000,
                  "model": "llama-3-8b", "system_fingerprint": "fp_a",
                  "choices": [{"index": 0, "finish_reason": "stop",
                               "message": {"role": "assistant", "content": "hello"}}],
                  "usage": {"prompt_tokens": 12, "completion_tokens": 3,
                            "prompt_tokens_details": {"cached_tokens": 8}}},
     "start_time": "2026-12-06T05:33:20Z", "end_time": "2026-12-06T05:33:20.250Z",
     "host": "pod-1", "ttft_ms": 40},
    {"id": "chatcmpl-2", "object": "chat.completion", "created": 1765000060,
     "model": "llama-3-8b", "choices": [{"index": 0, "finish_reason": "length"}],
     "usage": {"prompt_tokens": 100, "completion_tokens": 256}},
    {"id": "batch_req_3", "custom_id": "r3",
     "response": {"status_code": 200, "request_id": "abc",
                  "body": {"id": "chatcmpl-3", "object": "chat.completion", "created": 1765000120,
                           "model": "gpt-4o-mini-2024-07-18",
                           "choices": [{"finish_reason": "tool_calls"}],
                           "usage": {"prompt_tokens": 50, "completion_tokens": 9}}},
     "error": None},
    {"request": {"model": "m"}, "response": {"error": {"type": "invalid_request_error"}},
     "status_code": 400, "timestamp": 1765000180},
    {"request": {"model": "m"}, "response": {"choices": [], "usage": {}}},
]


def test_openai_style_logs_in_three_shapes(con, tmp_path):
    path = tmp_path / "gateway.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in OPENAI_LINES) + "\nnot json\n",
                    encoding="utf-8")
    (file,) = tk.load(con, path).files
    assert (file.format, file.rows_read, file.rows_loaded, file.rows_rejected) == (
        "openai", 6, 4, 2)
    rows = con.execute(
        "SELECT request_id, ts, model_name, model_version, latency_ms, status, http_status, "
        "error_type, input_tokens, output_tokens, cached_tokens, finish_reason, params, ttft_ms, "
        "host FROM requests ORDER BY request_id").fetchall()
    first, second, batch, failed = rows
    assert first[:8] == ("chatcmpl-1", at("2026-12-06T05:33:20Z"), "llama-3-8b", "fp_a",
                         pytest.approx(250.0), "ok", None, None)
    assert first[8:12] == (12, 3, 8, "stop")
    assert json.loads(first[12]) == {"temperature": 0.7, "max_tokens": 256}
    assert first[13:] == (40.0, "pod-1")
    # a bare response: timed by "created", no request, so no params
    assert second[:2] == ("chatcmpl-2", at("2025-12-06T05:47:40Z"))
    assert (second[11], second[12]) == ("length", None)
    # the Batch API's output: the body is the response; a tool call is a stop
    assert (batch[0], batch[6], batch[8], batch[11]) == ("chatcmpl-3", 200, 50, "stop")
    # an error answer has no id: named by file and line
    assert failed[0] == "gateway.jsonl:4"
    assert (failed[5], failed[6], failed[7]) == ("error", 400, "invalid_request_error")
    assert rejects(con) == [
        (5, "ts", "ts: no time: none of start_time, startTime, timestamp, created_at, ts, or "
                  "the response's created is a time"),
        (6, None, "not valid JSON (a truncated or corrupt line)"),
    ]
    counts_hold(con)


def test_a_batch_input_file_is_not_a_log_of_answers(tmp_path):
    line = {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": "m", "messages": []}}
    path = tmp_path / "batch_input.jsonl"
    path.write_text(json.dumps(line) + "\n", encoding="utf-8")
    assert resolve(SourceFile(path, "jsonl", None)).format != "openai"


def test_vllm_spans_carry_queue_time_finish_reason_and_sampling_parameters(con, tmp_path):
    def attr(key, value):
        return {"key": key, "value": value}

    span = {
        "traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "EEE19B7EC3C1B174",
        "name": "llm_request", "kind": 2, "startTimeUnixNano": "1772460000000000000",
        "endTimeUnixNano": "1772460001500000000", "status": {},
        "attributes": [
            attr("gen_ai.request.model", {"stringValue": "llama"}),
            attr("gen_ai.response.model", {"stringValue": "llama-v2"}),
            attr("gen_ai.request.temperature", {"doubleValue": 0.2}),
            attr("gen_ai.request.max_tokens", {"intValue": "512"}),
            attr("gen_ai.usage.prompt_tokens", {"intValue": "900"}),
            attr("gen_ai.usage.completion_tokens", {"intValue": "512"}),
            attr("gen_ai.latency.time_in_queue", {"doubleValue": 0.25}),
            attr("gen_ai.latency.time_to_first_token", {"doubleValue": 0.4}),
            attr("gen_ai.response.finish_reasons",
                 {"arrayValue": {"values": [{"stringValue": "length"}]}}),
        ],
    }
    request = {"resourceSpans": [{"resource": {"attributes": []},
                                  "scopeSpans": [{"scope": {}, "spans": [span]}]}]}
    path = tmp_path / "spans.jsonl"
    path.write_text(json.dumps(request) + "\n", encoding="utf-8")
    assert tk.load(con, path).rows_loaded == 1
    row = con.execute("SELECT model_name, model_version, input_tokens, output_tokens, queue_ms, "
                      "ttft_ms, finish_reason, params, latency_ms FROM requests").fetchone()
    assert row[:7] == ("llama", "llama-v2", 900, 512, 250.0, 400.0, "length")
    assert json.loads(row[7]) == {"temperature": 0.2, "max_tokens": 512.0}
    assert row[8] == 1500.0
