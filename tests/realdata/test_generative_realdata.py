"""The generative serving diagnostics on the real LLM traces of ``../shared/realdata``.

The Azure (Splitwise) and Mooncake traces carry arrival times and token counts only: no TTFT,
TPOT, status or engine metric. So token throughput is measured (and checked here against the
source file read with pandas), while TTFT, TPOT, goodput, KV pressure, prefill interference and
errors against prompt length say ``not_assessed`` with the reason; none may invent a finding.
The Alibaba GenAI request log (Stable Diffusion serving) has statuses and latencies but no
tokens: every generative diagnostic abstains on it.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

import toolkit as tk
from tests.conftest import realdata
from toolkit.diagnose import run_diagnostics
from toolkit.types import Window

pytestmark = pytest.mark.realdata

IDS = ["infra.token_latency", "infra.kv_cache", "infra.prefill_interference",
       "infra.context_errors"]


def _halves(con) -> tuple[Window, Window]:
    first, last = con.execute("SELECT min(ts), max(ts) FROM requests").fetchone()
    first, last = pd.Timestamp(first), pd.Timestamp(last) + pd.Timedelta("1us")
    middle = (first + (last - first) / 2).floor("us")
    return Window(first, middle), Window(middle, last)


def _gaps(result) -> dict[str, str]:
    return {gap.check: gap.reason for gap in result.not_assessed}


def _token_only_trace(con, source: pd.DataFrame, ts: pd.Series, output: str) -> None:
    baseline, incident = _halves(con)
    diagnosis = run_diagnostics(con, baseline, incident, ids=IDS)
    assert diagnosis.findings() == []
    tokens = diagnosis["infra.token_latency"]
    gaps = _gaps(tokens)
    assert "requests have no ttft_ms" in gaps["infra.token_latency.ttft"]
    assert "requests have no tpot_ms" in gaps["infra.token_latency.tpot"]
    assert tokens.measured == () and tokens.throughput["host"].unique().tolist() == ["(all)"]
    # output tokens per second of each half, as pandas sums the source file
    for name, window in (("baseline", baseline), ("incident", incident)):
        inside = (ts >= pd.Timestamp(window.start)) & (ts < pd.Timestamp(window.end))
        expected = source.loc[inside, output].sum() / window.duration.total_seconds()
        assert tokens.value(name, "tokens_per_s") == pytest.approx(expected, rel=1e-12)
    assert tokens.timeline["tokens_per_s"].notna().all()
    assert "no kv_cache_usage or preemptions_total metric" in \
        diagnosis["infra.kv_cache"].not_assessed[0].reason
    assert "requests have no ttft_ms" in \
        diagnosis["infra.prefill_interference"].not_assessed[0].reason
    assert "requests have no status, finish_reason or http_status" in \
        diagnosis["infra.context_errors"].not_assessed[0].reason
    for diagnostic_id in ("infra.kv_cache", "infra.prefill_interference",
                          "infra.context_errors"):
        assert diagnosis[diagnostic_id].table.empty


@pytest.mark.parametrize("name", ["AzureLLMInferenceTrace_code.csv",
                                  "AzureLLMInferenceTrace_conv.csv"])
def test_azure_trace_has_throughput_and_no_latency(con, name):
    path = realdata("azure_llm_inference_2023", name)
    tk.load(con, path, mapping="azure-llm")
    source = pd.read_csv(path)
    # DuckDB keeps microseconds of the trace's 100 ns stamps: compare at that resolution
    ts = pd.to_datetime(source["TIMESTAMP"], utc=True).dt.floor("us")
    _token_only_trace(con, source, ts, "GeneratedTokens")


def test_mooncake_trace_has_throughput_and_no_latency(con):
    path = realdata("mooncake", "conversation_trace.jsonl")
    tk.load(con, path, mapping="mooncake")
    source = pd.DataFrame([json.loads(line) for line in path.read_text().splitlines()
                           if line.strip()])
    ts = pd.Timestamp("2025-02-21T00:00:00Z") + pd.to_timedelta(source["timestamp"], unit="ms")
    _token_only_trace(con, source, ts, "output_length")


def test_alibaba_request_log_is_not_a_token_trace(con):
    path = realdata("alibaba_genai_2026", "lora_request_trace.csv.gz")
    tk.load(con, path, mapping="alibaba-genai")
    baseline, incident = _halves(con)
    diagnosis = run_diagnostics(con, baseline, incident, ids=IDS)
    assert diagnosis.findings() == []
    assert "no ttft_ms, tpot_ms or output_tokens" in \
        diagnosis["infra.token_latency"].not_assessed[0].reason
    assert "requests have no input_tokens" in \
        diagnosis["infra.context_errors"].not_assessed[0].reason
    assert all(diagnosis[i].table.empty for i in IDS)
