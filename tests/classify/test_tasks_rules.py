"""Rules for multiclass and regression evidence (``rules_tasks.toml``): merged into the packaged
table, firing on the task's calibration evidence (interval coverage, classwise ECE) where the
binary wording cannot, and leaving binary evidence alone."""

from __future__ import annotations

import dataclasses
import tomllib
from datetime import UTC, datetime, timedelta
from importlib import resources

import pandas as pd
import pytest

from toolkit.classify import score
from toolkit.classify.engine import Evidence
from toolkit.classify.rules import load_rules
from toolkit.diagnose import Finding
from toolkit.types import Window

T0 = datetime(2026, 3, 4, 2, 0, tzinfo=UTC)
BASELINE = Window(T0 - timedelta(days=3), T0 - timedelta(hours=12))
INCIDENT = Window(T0 - timedelta(hours=12), T0 + timedelta(days=3))
COLUMNS = ["ts", "kind", "artifact", "version", "host", "detail"]
NO_EVENTS = pd.DataFrame(columns=COLUMNS)
MODEL_DEPLOY = pd.DataFrame([[pd.Timestamp(T0 - timedelta(hours=1)), "deploy", "model", "2.1.0",
                              None, {"quantization": "int8"}]], columns=COLUMNS)
RELEASE = pd.DataFrame([[pd.Timestamp(T0 - timedelta(hours=1)), "deploy", "model", "2.1.0",
                         None, {"training_run": "run-1234"}]], columns=COLUMNS)
TASK_RULES = tomllib.loads((resources.files("toolkit.classify") / "rules_tasks.toml")
                           .read_text(encoding="utf-8"))
NAMES = {r["name"] for r in TASK_RULES["rules"]}


def calibration(severity: str = "high", **evidence) -> Finding:
    return Finding("model.calibration_shift", "model", severity, 0.3, 0.05, "calibration",
                   evidence, T0, "model.calibration")


def task_hits(*findings: Finding, events: pd.DataFrame = NO_EVENTS) -> dict[str, dict]:
    result = score(Evidence(tuple(findings), (), events, BASELINE, INCIDENT))
    return {h.name: h.add for h in result.hits if h.name in NAMES}


def verdict(*findings: Finding, events: pd.DataFrame = NO_EVENTS):
    return score(Evidence(tuple(findings), (), events, BASELINE, INCIDENT))


def test_the_task_rules_are_merged_into_the_packaged_table():
    assert NAMES <= {r.name for r in load_rules().rules}
    assert all(abs(w) <= 4.0 for r in TASK_RULES["rules"] for w in r["add"].values())


def test_intervals_that_narrowed_at_a_release_with_the_error_held_within_8_percent():
    # a 5% MAE change is outside the binary rules' 2.5-point band: only the task rule sees it
    finding = calibration(basis="interval_coverage", task="regression", mae_change=0.05,
                          accuracy_change=-0.05, versions={"after": "2.1.0"})
    hits = task_hits(finding, events=MODEL_DEPLOY)
    assert hits == {
        "prediction intervals stopped covering while the error held (within 8%), with a new "
        "model version": {"calibration_collapse": 4.0},
        "prediction intervals stopped covering while the error held (within 8%), after a model "
        "deploy": {"calibration_collapse": 3.0}}
    assert verdict(finding, events=MODEL_DEPLOY).failure_mode == "calibration_collapse"


@pytest.mark.parametrize("mae_change", [0.01, 0.12])
def test_the_narrowed_interval_rules_stay_out_of_the_binary_band_and_of_error_rises(mae_change):
    finding = calibration(basis="interval_coverage", mae_change=mae_change,
                          accuracy_change=-mae_change, versions={"after": "2.1.0"})
    hits = task_hits(finding, events=MODEL_DEPLOY)
    assert not any("error held" in name for name in hits)


def test_intervals_that_lost_coverage_because_the_error_grew_count_against_calibration():
    finding = calibration("medium", basis="interval_coverage", mae_change=0.39,
                          accuracy_change=-0.39, versions={"after": "2.1.0"})
    regression = Finding("model.version_regression", "model", "high", 0.39, 0.03, "worse",
                         {"new_version": True, "task": "regression"}, T0, "model.performance")
    hits = task_hits(finding, regression, events=RELEASE)
    assert hits == {"prediction intervals stopped covering because the error grew (15% or "
                    "more), not because they narrowed": {"calibration_collapse": -0.7}}
    evidence = Evidence((finding, regression), (), RELEASE, BASELINE, INCIDENT)
    packaged = load_rules()
    without = dataclasses.replace(packaged, rules=tuple(r for r in packaged.rules
                                                        if r.name not in NAMES))
    ours, theirs = score(evidence, packaged), score(evidence, without)
    assert ours.failure_mode == theirs.failure_mode == "bad_release"
    assert ours.mode_scores["calibration_collapse"] < theirs.mode_scores["calibration_collapse"]
    assert ours.mode_scores["bad_release"] > theirs.mode_scores["bad_release"]


def test_a_classwise_only_rise_without_a_model_change_is_weak():
    finding = calibration("medium", basis="classwise", task="multiclass", accuracy_change=-0.009,
                          classwise_ece_baseline=0.009, classwise_ece_incident=0.022)
    assert task_hits(finding) == {"only the classwise calibration moved, with no model change":
                                  {"calibration_collapse": pytest.approx(-1.05)}}
    assert verdict(finding).failure_mode == "none"
    # with a quantized release the same evidence is a calibration collapse
    assert task_hits(finding, events=MODEL_DEPLOY) == {}
    assert verdict(finding, events=MODEL_DEPLOY).failure_mode == "calibration_collapse"


def test_binary_calibration_evidence_is_left_alone():
    finding = calibration(accuracy_change=-0.004, ece_baseline=0.01, ece_incident=0.08)
    assert task_hits(finding) == {} and task_hits(finding, events=MODEL_DEPLOY) == {}


def test_an_error_rise_with_an_ood_burst_from_one_source_is_not_concept_drift():
    drift = Finding("model.concept_drift", "model", "high", 0.55, 0.10, "error rose",
                    {"task": "regression", "accuracy_drop": 0.55}, T0, "model.prediction_shift")
    burst = Finding("model.ood_burst", "model", "high", 0.97, 0.5, "one source",
                    {"source": {"client_version": "android-5.8.6"}}, T0, "model.ood")
    name = "the error rose while one source sent out-of-distribution inputs"
    assert task_hits(drift, burst) == {name: {"concept_drift": -2.0}}
    assert verdict(drift, burst).failure_mode == "adversarial_inputs"
    assert task_hits(drift) == {} and verdict(drift).failure_mode == "concept_drift"
    # the binary finding (no task in its evidence) is left to rules.toml
    binary = Finding("model.concept_drift", "model", "high", 0.1, 0.03, "accuracy fell",
                     {"accuracy_drop": 0.1}, T0, "model.prediction_shift")
    assert task_hits(binary, burst) == {}
