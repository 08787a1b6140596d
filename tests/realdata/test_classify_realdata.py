"""Classify and postmortem on every real export (issue 20): honest verdicts, no crash.

Each case is ingested as a user would (the shipped mapping where the format needs one), then
classified with windows detected from the data. The assertions are about what the data
shows: the Alibaba request log's failures are found, dated and pinned on the checkpoints that
fail on every request; the tiny SageMaker and KServe samples and the latency-free LLM traces
have nothing a comparison could rest on, so the verdict abstains with reasons instead of
inventing a change. The postmortem renders on a few of them with no stderr, traceback or
warning text in it.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

import toolkit as tk
from tests.conftest import realdata
from tests.report.test_clean_reports import _assert_clean
from toolkit.classify.taxonomy import PATHWAY_OF

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


def _case(tmp_path_factory, name: str, *parts: str, mapping: str | None = None):
    source = realdata(*parts)
    db = tmp_path_factory.mktemp(name) / "case.duckdb"
    con = tk.connect(db)
    tk.load(con, source, mapping=mapping)
    con.close()
    return db


@pytest.fixture(scope="module")
def alibaba_requests(tmp_path_factory):
    return _case(tmp_path_factory, "alibaba", "alibaba_genai_2026", "lora_request_trace.csv.gz",
                 mapping="alibaba-genai")


def _classify(db):
    con = tk.connect(db, read_only=True)
    try:
        verdict = tk.classify_incident(con)
    finally:
        con.close()
    # the contract: strict JSON, pathway and mode from the taxonomy or an abstention
    payload = json.loads(json.dumps(verdict.to_dict(), allow_nan=False))
    assert payload["pathway"] in {"data", "model", "infrastructure", "integration", "none",
                                  "undetermined"}
    assert payload["failure_mode"] in set(PATHWAY_OF) | {"none", "undetermined"}
    return verdict


def test_alibaba_request_log_failures_are_found_dated_and_attributed(alibaba_requests):
    verdict = _classify(alibaba_requests)
    segment = [f for f in verdict.diagnosis.findings() if f.id == "model.failure_segment"]
    assert segment and segment[0].severity == "high"
    values = {s["value"] for s in segment[0].evidence["slices"]}
    # the checkpoints that fail on every request, counted independently with pandas
    source = pd.read_csv(realdata("alibaba_genai_2026", "lora_request_trace.csv.gz"))
    per = source[source["predict_status"].isin(["SUCCEED", "FAILED"])].groupby(
        "checkpoint_model_version_id")["predict_status"].agg(
        n="size", failed=lambda s: (s == "FAILED").sum())
    always = set(per[(per.failed == per.n) & (per.n >= 15)].index)
    assert always == {"M0013", "M0061", "M0055", "M0017"}
    assert always & values and values <= set(per[per.failed > 0].index)
    # dated: the finding's onset is a failure of a named checkpoint in the detected window
    onset = pd.Timestamp(segment[0].onset)
    firsts = pd.to_datetime(source.loc[source.predict_status == "FAILED"].groupby(
        "checkpoint_model_version_id")["gmt_create"].min(), utc=True)
    assert any(abs(onset - firsts[v]) <= pd.Timedelta("1min") for v in values if v in firsts)
    assert verdict.pathway not in ("none", "undetermined")


@pytest.mark.parametrize("parts", [
    ("sagemaker",),
    ("kserve",),
])
def test_tiny_platform_samples_abstain_with_reasons(tmp_path_factory, parts):
    db = _case(tmp_path_factory, parts[0], *parts)
    verdict = _classify(db)
    assert verdict.pathway == "undetermined" and verdict.failure_mode == "undetermined"
    # no schema change is invented from an empty or tiny window
    assert not [f for f in verdict.diagnosis.findings() if f.severity in ("medium", "high")]
    reasons = " ".join(g.reason for g in verdict.diagnosis.not_assessed())
    assert "fewer than" in reasons or "no requests" in reasons or "baseline" in reasons


@pytest.mark.parametrize("parts,mapping", [
    (("azure_llm_inference_2023", "AzureLLMInferenceTrace_code.csv"), "azure-llm"),
    (("mooncake", "conversation_trace.jsonl"), "mooncake"),
])
def test_llm_traces_without_latency_or_outcome_abstain(tmp_path_factory, parts, mapping):
    """Arrival times and token counts only, and their mix holds over the hour: no finding,
    and an abstention that says what could not be measured."""
    db = _case(tmp_path_factory, parts[0], *parts, mapping=mapping)
    verdict = _classify(db)
    assert verdict.pathway in ("undetermined", "none")
    assert not [f for f in verdict.diagnosis.findings() if f.severity in ("medium", "high")]
    checks = {g.check.split(":")[0] for g in verdict.diagnosis.not_assessed()}
    assert {"model.performance", "infra.latency", "infra.token_latency.ttft"} <= checks


def test_azure_conversation_trace_prompts_shorten_and_nothing_else_is_claimed(tmp_path_factory):
    """The conversation trace's prompts shorten in its second half (recomputed from the file
    in tests/realdata/test_generative_mix_realdata.py): a prompt-population move with no
    artifact change, the only thing its columns can show; no latency, error or model claim."""
    db = _case(tmp_path_factory, "azure-conv", "azure_llm_inference_2023",
               "AzureLLMInferenceTrace_conv.csv", mapping="azure-llm")
    verdict = _classify(db)
    assert (verdict.pathway, verdict.failure_mode) == ("data", "prompt_shift")
    (finding,) = [f for f in verdict.diagnosis.findings() if f.severity in ("medium", "high")]
    assert finding.id == "data.prompt_length_shift"
    assert finding.evidence["mean_incident"] < finding.evidence["mean_baseline"]
    assert not finding.evidence["artifact_changed"]
    source = pd.read_csv(realdata("azure_llm_inference_2023", "AzureLLMInferenceTrace_conv.csv"))
    times = pd.to_datetime(source["TIMESTAMP"], utc=True)
    assert times.min() <= pd.Timestamp(verdict.onset) <= times.max()


def test_alibaba_metric_files_alone_are_evidence(tmp_path_factory):
    """The metric files without the request log: latency, GPU and memory series are read."""
    folder = realdata("alibaba_genai_2026")
    db = tmp_path_factory.mktemp("alibaba-metrics") / "case.duckdb"
    con = tk.connect(db)
    for name in ("pod_gpu_duty_cycle_anon.csv.gz", "pipeline_inference_data_anon.csv.gz",
                 "pod_memory_util_anon.csv.gz"):
        tk.load(con, folder / name, mapping="alibaba-genai")
    con.close()
    verdict = _classify(db)
    checks = {g.check.split(":")[0] for g in verdict.diagnosis.not_assessed()}
    # end-to-end latency comes from the metric series (the mapping names it latency_ms)
    assert "infra.latency" not in checks
    latency = verdict.diagnosis["infra.latency"]
    assert latency.source == "metrics:latency_ms"
    assert verdict.pathway != "undetermined" or verdict.diagnosis.findings()


@pytest.mark.parametrize("which", ["alibaba", "sagemaker"])
def test_postmortem_renders_cleanly_on_real_exports(tmp_path_factory, alibaba_requests, which):
    db = alibaba_requests if which == "alibaba" else _case(tmp_path_factory, "sm", "sagemaker")
    out = tmp_path_factory.mktemp(f"pm-{which}")
    rendered = tk.render_postmortem(db, out, incident_id=f"REAL-{which}")
    _assert_clean(rendered)
    page = rendered.html.read_text()
    if which == "alibaba":
        assert "M0013" in page or "M0061" in page or "M0055" in page
        assert "no affected slice stands out" not in page
