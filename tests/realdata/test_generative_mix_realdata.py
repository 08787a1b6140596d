"""The generative mix diagnostics on the real LLM traces (issue 23 item 2): what they say about
the Azure LLM inference trace (token-length mix over its hour) and Mooncake (prefix reuse
estimated from its block hashes), each statistic recomputed here from the source file with
pandas / scipy / plain Python."""

from __future__ import annotations

import importlib
import importlib.resources
import json
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import toolkit as tk
from tests.conftest import realdata
from toolkit.diagnose import run_diagnostics

pytestmark = pytest.mark.realdata

pm = importlib.import_module("toolkit.diagnose.data.prompt_mix")
pc = importlib.import_module("toolkit.diagnose.integration.prefix_cache")

GENERATIVE = ["data.prompt_mix", "integration.prefix_cache", "integration.generation",
              "model.feedback"]
AZURE_START = pd.Timestamp("2023-11-16T18:15:00Z")
AZURE_BASELINE = (AZURE_START, AZURE_START + pd.Timedelta("30min"))
AZURE_INCIDENT = (AZURE_START + pd.Timedelta("30min"), AZURE_START + pd.Timedelta("60min"))
MOONCAKE_START = pd.Timestamp("2025-02-21T00:00:00Z")  # the shipped mapping's origin
MOONCAKE_BASELINE = (MOONCAKE_START, MOONCAKE_START + pd.Timedelta("30min"))
MOONCAKE_INCIDENT = (MOONCAKE_START + pd.Timedelta("30min"),
                     MOONCAKE_START + pd.Timedelta("60min"))


def _decile_psi(b: np.ndarray, i: np.ndarray) -> float:
    edges = np.unique(np.quantile(b, np.linspace(0.1, 0.9, 9)))
    cb = np.bincount(np.searchsorted(edges, b, side="left"), minlength=len(edges) + 1)
    ci = np.bincount(np.searchsorted(edges, i, side="left"), minlength=len(edges) + 1)
    pb, pi = np.maximum(cb / cb.sum(), 1e-4), np.maximum(ci / ci.sum(), 1e-4)
    return float(np.sum((pi - pb) * np.log(pi / pb)))


def _azure(tmp_path, name: str):
    path = realdata("azure_llm_inference_2023", name)
    con = tk.connect(tmp_path / "case.duckdb")
    report = tk.load(con, path, mapping="azure-llm")
    assert report.rows_rejected == 0
    source = pd.read_csv(path)
    source["ts"] = pd.to_datetime(source["TIMESTAMP"], utc=True)
    return con, source


def _windows(source: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
    b = source[(source["ts"] >= AZURE_BASELINE[0]) & (source["ts"] < AZURE_BASELINE[1])]
    i = source[(source["ts"] >= AZURE_INCIDENT[0]) & (source["ts"] < AZURE_INCIDENT[1])]
    return b[column].to_numpy(), i[column].to_numpy()


def test_azure_conversation_prompts_get_shorter_in_the_second_half_hour(tmp_path):
    """The conversation trace's second half hour has shorter prompts: its p90 drops from
    about 4,100 to 2,400 tokens (PSI 0.15 on the first half hour's deciles), with no artifact
    in the trace at all. The prompt mix reports it, dated 18:40 by the 10-minute timeline;
    output length moves less (PSI < 0.1)."""
    con, source = _azure(tmp_path, "AzureLLMInferenceTrace_conv.csv")
    r = pm.prompt_mix(con, AZURE_BASELINE, AZURE_INCIDENT, bucket=timedelta(minutes=10))
    b, i = _windows(source, "ContextTokens")
    row = r.row("input_tokens")
    assert (row["n_baseline"], row["n_incident"]) == (len(b), len(i))
    assert row["psi"] == pytest.approx(_decile_psi(b, i), rel=1e-12)
    ks = stats.ks_2samp(b, i, method="asymp")
    assert row["ks"] == pytest.approx(ks.statistic, abs=1e-12)
    assert (row["p90_baseline"], row["p90_incident"]) == pytest.approx(
        (np.quantile(b, 0.9), np.quantile(i, 0.9)))
    ob, oi = _windows(source, "GeneratedTokens")
    assert r.row("output_tokens")["psi"] == pytest.approx(_decile_psi(ob, oi), rel=1e-12)
    [f] = r.findings()
    assert f.id == "data.prompt_length_shift" and f.severity == "medium"
    assert 0.10 <= f.statistic < 0.25 and f.evidence["length_ratio"] < 0.9
    assert f.evidence["artifact_changed"] is False and f.evidence["output_follows"] is False
    # the mix part says why it could not run: the trace has no adapter, endpoint or tenant
    assert [g.check for g in r.not_assessed] == ["data.prompt_mix:mix"]
    # token-length mix per 10 minutes, as pandas counts it from the CSV
    source["bucket"] = source["ts"].dt.floor("10min")
    per = source.groupby("bucket").agg(requests=("ContextTokens", "size"),
                                       input_mean=("ContextTokens", "mean"),
                                       output_mean=("GeneratedTokens", "mean"))
    t = r.timeline.set_index("bucket_start")
    assert t.index.tolist() == per.index.tolist() and len(t) == 7  # 18:10 .. 19:10
    assert t["requests"].tolist() == per["requests"].tolist()
    assert np.allclose(t["input_mean"], per["input_mean"])
    assert np.allclose(t["output_mean"], per["output_mean"])
    # each 10 minutes against the first half hour's deciles: the mix holds until 18:40, then
    # every bucket departs (PSI 0.3-0.7), which dates the shift
    psi = t["input_psi"].to_numpy()
    assert (psi[:3] < 0.12).all() and (psi[3:] > 0.3).all()
    assert f.onset == pd.Timestamp("2023-11-16T18:40:00Z")


def test_azure_code_trace_has_a_stable_prompt_mix(tmp_path):
    con, source = _azure(tmp_path, "AzureLLMInferenceTrace_code.csv")
    d = run_diagnostics(con, AZURE_BASELINE, AZURE_INCIDENT, ids=GENERATIVE)
    b, i = _windows(source, "ContextTokens")
    row = d["data.prompt_mix"].row("input_tokens")
    assert row["psi"] == pytest.approx(_decile_psi(b, i), rel=1e-12) and row["psi"] < 0.01
    assert d.findings() == []
    # a trace of token counts only: nothing to read for the cache, settings or feedback
    for check in ("integration.prefix_cache", "integration.generation", "model.feedback"):
        assert not d[check].findings() and d[check].not_assessed, check
    assert not d["integration.prefix_cache"].assessed
    ob, oi = _windows(source, "GeneratedTokens")
    generation = d["integration.generation"]
    assert generation.value("baseline", "output_mean") == pytest.approx(ob.mean())
    assert generation.value("incident", "output_mean") == pytest.approx(oi.mean())


def test_mooncake_prefix_reuse_estimated_from_block_hashes(tmp_path):
    """Mooncake's 12,031 requests re-use about 37% of their 512-token prefix blocks (a cache
    that never evicts; 28% in the first ten minutes while it warms, 40% in the last).

    The shipped mapping loads ``hash_ids`` into the canonical ``prefix_hashes`` column, which
    is what the prefix-cache estimate reads."""
    path = realdata("mooncake", "conversation_trace.jsonl")
    con = tk.connect(tmp_path / "case.duckdb")
    assert tk.load(con, path, mapping="mooncake").rows_rejected == 0
    r = pc.prefix_cache(con, MOONCAKE_BASELINE, MOONCAKE_INCIDENT,
                        bucket=timedelta(minutes=10))
    assert r.source == "prefix_hashes"
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    records.sort(key=lambda rec: rec["timestamp"])
    seen: set[int] = set()
    hits = np.zeros(6)
    blocks = np.zeros(6)
    for rec in records:
        bucket = rec["timestamp"] // 600_000
        for h in rec["hash_ids"]:
            hits[bucket] += h in seen
            blocks[bucket] += 1
            seen.add(h)
    t = r.timeline
    assert t["queries"].tolist() == blocks.tolist() and t["hits"].tolist() == hits.tolist()
    assert r.value("baseline", "share") == pytest.approx(hits[:3].sum() / blocks[:3].sum())
    assert r.value("incident", "share") == pytest.approx(hits[3:].sum() / blocks[3:].sum())
    total = hits.sum() / blocks.sum()
    assert 0.35 < total < 0.38
    assert t["share"].iloc[0] < 0.3 < 0.39 < t["share"].iloc[-1]
    # the reuse share rises as the cache warms: no drop, no finding
    assert r.findings() == []


def test_mooncake_with_the_shipped_mapping(tmp_path):
    """With the shipped mapping the prompt mix reads the token counts, and the prefix cache
    the block hashes (a reuse share that rises as the cache warms: no drop)."""
    path = realdata("mooncake", "conversation_trace.jsonl")
    con = tk.connect(tmp_path / "case.duckdb")
    tk.load(con, path, mapping="mooncake")
    d = run_diagnostics(con, MOONCAKE_BASELINE, MOONCAKE_INCIDENT, ids=GENERATIVE)
    assert d["integration.prefix_cache"].source == "prefix_hashes"
    assert d["integration.prefix_cache"].findings() == []
    records = pd.read_json(path, lines=True)
    half = records["timestamp"] < 1_800_000
    b = records.loc[half, "input_length"].to_numpy()
    i = records.loc[~half, "input_length"].to_numpy()
    row = d["data.prompt_mix"].row("input_tokens")
    assert row["psi"] == pytest.approx(_decile_psi(b, i), rel=1e-12)
    assert row["ks"] == pytest.approx(stats.ks_2samp(b, i).statistic, abs=1e-12)
    # prompts are a little shorter in the second half hour (mean 12.9k -> 11.3k tokens) but
    # the decile mix barely moves (PSI 0.02): no prompt-shift finding
    assert row["psi"] < 0.1 and d["data.prompt_mix"].findings() == []
    assert row["mean_baseline"] == pytest.approx(b.mean())
