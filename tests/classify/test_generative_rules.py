"""Generative failure modes in the classifier: the rules fire on the right evidence, the modes
only compete where the case is generative, and every other case scores as before."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from toolkit.classify import load_rules, remediation_for, score
from toolkit.classify.engine import Evidence
from toolkit.classify.rules import _packaged, _parse, merge_tables
from toolkit.classify.taxonomy import (
    GENERATIVE_MODES,
    MODE_TASKS,
    PATHWAY_OF,
    TASK_FINDINGS,
    applicable_modes,
)
from toolkit.diagnose import Finding
from toolkit.types import Window

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
BASELINE = Window(T0 - timedelta(days=3), T0)
INCIDENT = Window(T0, T0 + timedelta(hours=6))
NO_EVENTS = pd.DataFrame(columns=["ts", "kind", "artifact", "version", "host", "detail"])
#: The modes of DESIGN section 4 (what every non-generative case was always scored over).
CLASSIC = ("covariate_shift", "schema_mismatch", "null_injection", "unit_change",
           "concept_drift", "calibration_collapse", "bad_release", "adversarial_inputs",
           "memory_exhaustion", "memory_leak", "cold_start", "accelerator_fault",
           "version_skew", "api_contract_mismatch", "timeout_misconfiguration",
           "cache_staleness")


def finding(id_: str, severity: str = "high", **evidence) -> Finding:
    pathway = {"infrastructure": "infrastructure"}.get(id_.split(".")[0], id_.split(".")[0])
    return Finding(id_, pathway, severity, 1.0, 0.0, id_, evidence, T0 + timedelta(minutes=5))


def verdict_of(*findings: Finding, events: pd.DataFrame = NO_EVENTS):
    return score(Evidence(tuple(findings), (), events, BASELINE, INCIDENT))


def test_the_seven_generative_modes_sit_under_their_pathways():
    expected = {"prompt_shift": "data", "bad_release": "model",
                "kv_cache_exhaustion": "infrastructure", "prefill_interference": "infrastructure",
                "prefix_cache_regression": "integration", "sampling_config_drift": "integration",
                "template_mismatch": "integration"}
    assert {m: PATHWAY_OF[m] for m in expected} == expected
    assert set(MODE_TASKS) == set(GENERATIVE_MODES) == set(expected) - {"bad_release"}
    assert all(MODE_TASKS[m] == {"generative"} for m in MODE_TASKS)
    for mode in expected:
        assert remediation_for(mode, "real-time") and remediation_for(mode, "batch"), mode
    assert any("max_num_seqs" in a for a in remediation_for("kv_cache_exhaustion"))
    assert any("prefix" in a for a in remediation_for("prefix_cache_regression"))
    assert any("generation config" in a.lower() for a in remediation_for(
        "sampling_config_drift"))


def test_generative_modes_apply_only_with_generative_evidence():
    assert applicable_modes(()) == CLASSIC
    assert applicable_modes(["data.feature_drift", "infrastructure.latency_regression"]) == \
        CLASSIC
    for fid in TASK_FINDINGS["generative"]:
        assert set(applicable_modes([fid])) == set(PATHWAY_OF), fid
    assert set(applicable_modes((), declared=["generative"])) == set(PATHWAY_OF)


def test_a_classic_case_is_scored_over_the_classic_modes_only():
    # no evidence: every mode sits at log(prior) + base = -3 against "none" at 0, so each of
    # the 16 classic modes has e^-3 / (16 e^-3 + 1); over 22 modes it would be lower
    verdict = verdict_of()
    expected = math.exp(-3.0) / (16 * math.exp(-3.0) + 1.0)
    assert verdict.mode_scores["covariate_shift"] == round(expected, 4)
    assert verdict.mode_scores["none"] == round(1 / (16 * math.exp(-3.0) + 1.0), 4)
    assert all(verdict.mode_scores[m] == 0.0 for m in GENERATIVE_MODES)
    assert not {a["failure_mode"] for a in verdict.alternatives} & set(GENERATIVE_MODES)


@pytest.mark.parametrize("findings", [
    (finding("infrastructure.latency_regression"), finding("infrastructure.memory_pressure"),
     finding("infrastructure.oom_kills")),
    (finding("data.feature_drift", "medium", unexplained_psi=0.3, features={}),),
    (finding("integration.version_skew"), finding("model.accuracy_drop", "medium")),
])
def test_classic_evidence_scores_as_without_the_generative_rules(findings):
    # the packaged table (rules.toml + every rules_*.toml) against the same table without
    # rules_generative.toml: a classic case must not see any difference
    import tomllib
    from importlib import resources

    folder = resources.files("toolkit.classify")
    data = tomllib.loads((folder / "rules.toml").read_text(encoding="utf-8"))
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.startswith("rules_") and entry.name.endswith(".toml") and \
                entry.name != "rules_generative.toml":
            data = merge_tables(data, tomllib.loads(entry.read_text(encoding="utf-8")))
    without = _parse(data, "without generative")
    evidence = Evidence(tuple(findings), (), NO_EVENTS, BASELINE, INCIDENT)
    a, b = score(evidence, _packaged()), score(evidence, without)
    assert (a.pathway, a.failure_mode, a.confidence) == (b.pathway, b.failure_mode, b.confidence)
    assert a.mode_scores == b.mode_scores and a.scores == b.scores
    assert [h.name for h in a.hits] == [h.name for h in b.hits]


def test_generative_rules_are_in_the_packaged_table():
    table = load_rules()
    names = {r.name for r in table.rules}
    assert "KV cache pinned full / preemptions and the queue climbing" in names
    assert table.onset_events["template_mismatch"] == ({"kind": "deploy", "artifact": "model"},)


@pytest.mark.parametrize(("findings", "mode"), [
    ((finding("infrastructure.kv_cache_pressure", kv_pinned=True, ttft_up=True),
      finding("infrastructure.ttft_regression", ttft_only=True),
      finding("infrastructure.latency_regression")), "kv_cache_exhaustion"),
    ((finding("infrastructure.prefill_interference", "medium", decode_unchanged=True),
      finding("infrastructure.ttft_regression", ttft_only=True)), "prefill_interference"),
    ((finding("integration.prefix_cache_drop", "medium", input_ratio=1.02,
              artifact_changed=True),), "prefix_cache_regression"),
    ((finding("integration.prefix_cache_drop", "medium", input_ratio=2.1),
      finding("data.prompt_length_shift", artifact_changed=False),
      finding("data.mix_shift")), "prompt_shift"),
    ((finding("integration.sampling_params_changed", "medium"),
      finding("integration.truncation_rise", params_changed=["max_tokens"]),
      finding("model.feedback_drop")), "sampling_config_drift"),
    ((finding("integration.template_outside_lineage"),
      finding("integration.truncation_rise", template_outside=True),
      finding("model.feedback_drop")), "template_mismatch"),
    ((finding("model.feedback_regression", new_version=True),
      finding("model.refusal_rise", version="m-2")), "bad_release"),
    ((finding("infrastructure.long_prompt_errors", dominant_kind="oom"),
      finding("infrastructure.latency_regression", "medium")), "memory_exhaustion"),
])
def test_each_rule_decides_on_its_evidence(findings, mode):
    verdict = verdict_of(*findings)
    assert verdict.failure_mode == mode, (verdict.failure_mode, verdict.mode_scores)
    assert verdict.pathway == PATHWAY_OF[mode]
    assert verdict.remediation == tuple(remediation_for(mode))


def test_look_alikes_are_told_apart():
    # a prefix-cache drop that comes with much longer prompts is the prompt population moving
    diluted = verdict_of(finding("integration.prefix_cache_drop", "medium", input_ratio=2.0))
    same = verdict_of(finding("integration.prefix_cache_drop", "medium", input_ratio=1.0))
    assert diluted.mode_scores["prefix_cache_regression"] < \
        same.mode_scores["prefix_cache_regression"] / 5
    # context-length refusals in the longest prompts are not an out-of-memory crash
    refused = verdict_of(finding("data.long_prompt_refusals", dominant_kind="context_length"),
                         finding("data.prompt_length_shift", artifact_changed=False))
    assert refused.failure_mode == "prompt_shift"
    assert refused.mode_scores["memory_exhaustion"] < 0.01
    # a template outside lineage outweighs the worse feedback it causes
    template = verdict_of(finding("integration.template_outside_lineage"),
                          finding("model.feedback_regression", "medium", new_version=True))
    assert template.failure_mode == "template_mismatch"


def test_the_trigger_of_a_generative_mode_is_its_logged_change():
    events = pd.DataFrame([
        {"ts": pd.Timestamp(T0 - timedelta(hours=5)), "kind": "deploy", "artifact": "client",
         "version": "2.1", "host": None, "detail": {}},
        {"ts": pd.Timestamp(T0 + timedelta(minutes=2)), "kind": "config_change",
         "artifact": "service", "version": None, "host": None,
         "detail": {"gpu_memory_utilization": 0.6}},
    ])
    verdict = verdict_of(finding("infrastructure.kv_cache_pressure", kv_pinned=True),
                         events=events)
    assert verdict.failure_mode == "kv_cache_exhaustion"
    assert verdict.trigger is not None and verdict.trigger["kind"] == "config_change"
    assert verdict.onset == (T0 + timedelta(minutes=2)).replace(tzinfo=UTC)
