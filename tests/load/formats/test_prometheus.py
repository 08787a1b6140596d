"""Prometheus HTTP API responses: samples, canonical names, histograms, counters, errors."""

from __future__ import annotations

import json

import pytest

import toolkit as tk
from tests.load.formats._helpers import FIXTURES, at, counts_hold, rejects
from toolkit.errors import FileParseError
from toolkit.load.formats import READERS

PROM = FIXTURES / "prometheus"
MIB = 1024 * 1024
T0, T1, T2 = at("2026-03-02T14:00:00Z"), at("2026-03-02T14:00:15Z"), at("2026-03-02T14:00:30Z")


def series(con, name: str) -> list[tuple]:
    return con.execute("SELECT ts, host, value FROM metrics WHERE name = ? ORDER BY ts, host",
                       [name]).fetchall()


def test_gpu_memory_nan_infinities_and_canonical_names(con):
    report = tk.load(con, PROM / "gpu_memory.json")
    (file,) = report.files
    assert (file.table, file.format) == ("metrics", "prometheus")
    # 3 + 3 + 1 + 3 samples, and 2 derived totals (used + free; not where used is NaN)
    assert (file.rows_read, file.rows_loaded, file.rows_rejected) == (12, 12, 0)
    assert series(con, "gpu_memory_used_bytes") == [
        (T0, "llm-0", 30000.0 * MIB), (T1, "llm-0", None), (T2, "llm-0", 39000.0 * MIB)]
    assert series(con, "gpu_memory_free_bytes") == [
        (T0, "llm-0", 10960.0 * MIB), (T1, "llm-0", 10960.0 * MIB), (T2, "llm-0", 1960.0 * MIB)]
    assert series(con, "gpu_memory_total_bytes") == [
        (T0, "llm-0", 40960.0 * MIB), (T2, "llm-0", 40960.0 * MIB)]
    assert series(con, "memory_limit_bytes") == [(T0, "llm-0", 2147483648.0)]
    # unknown names are kept; +Inf and -Inf stay infinities, NaN is NULL
    assert series(con, "slo:error_budget_burn:ratio") == [
        (T0, None, 1.5), (T1, None, float("inf")), (T2, None, float("-inf"))]
    labels = json.loads(con.execute(
        "SELECT labels FROM metrics WHERE name = 'gpu_memory_used_bytes' LIMIT 1").fetchone()[0])
    assert labels == {"__name__": "DCGM_FI_DEV_FB_USED", "Hostname": "node-a",
                      "UUID": "GPU-3f1e0b2c", "gpu": "0", "modelName": "NVIDIA A100-SXM4-40GB",
                      "namespace": "ml", "pod": "llm-0", "container": "server"}
    counts_hold(con)


def test_vllm_histogram_quantiles_with_a_counter_reset(con):
    tk.load(con, PROM / "vllm_latency.json")
    # step T0->T1: increases 20/40/60/70/80 over le 0.3/0.5/1/2.5/+Inf; p50 = rank 40 at the
    # top of the 0.5 bucket; p95 and p99 fall in +Inf: the highest finite bound, 2.5 s.
    # step T1->T2: the counters went down (a restart): the new values are the increases
    # 5/10/20/30/40; p50 = rank 20 at the top of the 1.0 bucket.
    assert series(con, "latency_p50_ms") == [(T1, "llm-0", 500.0), (T2, "llm-0", 1000.0)]
    assert series(con, "latency_p95_ms") == [(T1, "llm-0", 2500.0), (T2, "llm-0", 2500.0)]
    assert series(con, "latency_p99_ms") == [(T1, "llm-0", 2500.0), (T2, "llm-0", 2500.0)]
    # mean over the step: (68 - 20) s / (120 - 40) requests = 600 ms
    assert series(con, "latency_avg_ms") == [(T1, "llm-0", pytest.approx(600.0))]
    # DESIGN 3a: the engine's scheduler gauge is requests_running (the source name in labels)
    assert series(con, "requests_running") == [(T0, "llm-0", 7.0)]
    # the raw buckets stay, with `le` in labels
    assert con.execute("SELECT count(*) FROM metrics WHERE name = "
                       "'vllm:e2e_request_latency_seconds_bucket'").fetchone()[0] == 15
    labels = json.loads(con.execute(
        "SELECT labels FROM metrics WHERE name = 'latency_p99_ms' LIMIT 1").fetchone()[0])
    assert labels == {"engine": "0", "model_name": "meta-llama/Llama-3.1-8B-Instruct",
                      "pod": "llm-0", "histogram": "vllm:e2e_request_latency_seconds",
                      "quantile": 0.99}


def test_rate_of_buckets_without_a_name_is_named_by_the_file(con):
    tk.load(con, PROM / "request_predict_seconds_bucket.json")
    # rates 0/2/8/10 over le 0.005/0.01/0.025/+Inf: p50 = 0.01 + 0.015 * (5 - 2) / (8 - 2)
    assert series(con, "predict_latency_p50_ms") == [(T0, None, pytest.approx(17.5))]
    assert series(con, "predict_latency_p95_ms") == [(T0, None, pytest.approx(25.0))]


def test_triton_cumulative_counters_become_averages_and_rates(con):
    tk.load(con, PROM / "triton.json")
    host = "triton-0:8002"
    # (1.6e6 - 1.0e6) us / (120 - 100) requests = 30 ms; no request in the next step: no value
    assert series(con, "latency_avg_ms") == [(T1, host, pytest.approx(30.0))]
    assert series(con, "queue_time_avg_ms") == [(T1, host, pytest.approx(15.0))]
    assert series(con, "requests_per_s") == [(T1, host, pytest.approx(20 / 15)),
                                             (T2, host, 0.0)]
    assert series(con, "errors_per_s") == [(T1, host, pytest.approx(0.2)),
                                           (T2, host, pytest.approx(0.4))]
    assert series(con, "gpu_utilization") == [(T0, host, 0.87)]
    assert len(series(con, "nv_inference_request_duration_us")) == 3  # raw counter kept


def test_one_response_per_line_with_error_truncated_and_bad_value(con):
    report = tk.load(con, PROM / "responses.jsonl")
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (7, 4, 3)
    assert rejects(con) == [
        (2, None, 'Prometheus error response (bad_data): invalid parameter "query": 1:21: '
                  'parse error: unexpected "}"'),
        (3, None, "not valid JSON (a truncated or corrupt line)"),
        (4, "value", "value: the sample value abc is not a number"),
    ]
    assert con.execute("SELECT DISTINCT file FROM rejects").fetchall() == [
        (str(PROM / "responses.jsonl"),)]
    assert series(con, "requests_waiting") == [(T0, "llm-0", 3.0), (T0, "llm-1", 0.0),
                                              (T1, "llm-0", 4.0)]
    # a scalar result has no labels: named after the file; millisecond time kept
    assert series(con, "responses") == [(at("2026-03-02T14:00:00.781Z"), None, 42.0)]
    counts_hold(con)


def test_an_error_response_file_is_refused_with_the_error(con):
    with pytest.raises(FileParseError) as error:
        tk.load(con, PROM / "error.json")
    message = str(error.value)
    assert "error.json" in message
    assert "Prometheus error response (timeout): query timed out in expression evaluation" \
        in message
    assert con.execute("SELECT count(*) FROM loads").fetchone()[0] == 0


def test_sniff():
    reader = READERS["prometheus"]
    assert reader.sniff(PROM / "error.json", (PROM / "error.json").read_bytes()) == "metrics"
    assert reader.sniff(PROM / "m.json", b'{"status": "ok", "rows": []}') is None


def test_json_lines_mostly_truncated_still_load_line_by_line(con, tmp_path):
    good = json.dumps({"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"__name__": "up", "instance": "a:9090"}, "value": [1772460000, "1"]}]}})
    path = tmp_path / "up.jsonl"
    path.write_text(good + "\n" + good[:30] + "\n" + good[:12] + "\n")
    report = tk.load(con, path, table="metrics")
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (3, 1, 2)
    assert [r[0] for r in rejects(con)] == [2, 3]


def test_long_series_keep_their_own_labels(con, tmp_path):
    # a week at 30 s for 5 pods: each sample carries its series' label set (taken once per
    # series, not re-read from the whole series for every sample)
    n = 20_160
    result = [{"metric": {"__name__": "container_memory_working_set_bytes", "pod": f"pod-{k}",
                          "namespace": "ml"},
               "values": [[1772409600 + 30 * i, str(1000 * k + i)] for i in range(n)]}
              for k in range(5)]
    path = tmp_path / "memory.json"
    path.write_text(json.dumps({"status": "success",
                                "data": {"resultType": "matrix", "result": result}}))
    assert tk.load(con, path).rows_loaded == 5 * n
    assert con.execute(
        "SELECT host, count(*), min(value), max(value), count(DISTINCT labels->>'pod'), "
        "bool_and(labels->>'pod' = host) FROM metrics GROUP BY host ORDER BY host"
    ).fetchall() == [(f"pod-{k}", n, 1000.0 * k, 1000.0 * k + n - 1, 1, True)
                     for k in range(5)]
