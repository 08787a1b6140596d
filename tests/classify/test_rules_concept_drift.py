"""Concept drift beside a mild drift of a feature the model barely uses (issue 22's first hard
distinction): the accuracy falls, one unimportant input drifts a little (PSI 0.1-0.25) and the
model's outputs stay where they were, so the drift does not explain the loss: model, not data.
A drift of the feature the model relies on moves its outputs and stays a covariate shift."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

import toolkit as tk
from toolkit.classify import score
from toolkit.classify.engine import Evidence
from toolkit.diagnose import Finding, NotAssessed
from toolkit.types import Window

RULE = "accuracy fell while a mild input drift left the model's outputs in place"
T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
BASELINE = Window(T0 - timedelta(days=7), T0)
INCIDENT = Window(T0, T0 + timedelta(hours=12))
NO_EVENTS = pd.DataFrame(columns=["ts", "kind", "artifact", "version", "host", "detail"])


def build(*, drift: float = 0.0, shift: float = 0.0, flip: float = 0.2, n: int = 16_000,
          prediction: bool = True, score_column: bool = True, seed: int = 0):
    """A binary model that reads ``x1`` only; ``x2`` and ``x3`` are unused inputs.

    In the second half ``drift`` moves the unused ``x2`` (0.5 gives a PSI of about 0.23),
    ``shift`` moves ``x1`` (a covariate shift of the input that matters) and ``flip`` of the
    labels are flipped (the concept changed: same inputs, other answers).
    """
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2026-03-01", periods=n, freq="30s", tz="UTC")
    later = np.arange(n) >= n // 2
    x1 = rng.normal(0, 1, n) + np.where(later, shift, 0.0)
    x2 = rng.normal(0, 1, n) + np.where(later, drift, 0.0)
    x3 = rng.normal(0, 1, n)
    p = 1 / (1 + np.exp(-3 * x1))
    predicted = (p >= 0.5).astype(int)
    label = (rng.uniform(size=n) < p).astype(int)
    label = np.where(later & (rng.uniform(size=n) < flip), 1 - label, label)
    requests = pd.DataFrame({"request_id": [f"r{i}" for i in range(n)], "ts": ts, "x1": x1,
                             "x2": x2, "x3": x3, "latency_ms": rng.gamma(4, 10, n),
                             "status": "ok"})
    if prediction:
        requests["prediction"] = predicted.astype(str)
    if score_column:
        requests["score"] = np.where(predicted == 1, p, 1 - p)
    con = tk.connect()
    tk.load(con, requests, table="requests")
    tk.load(con, pd.DataFrame({"request_id": requests["request_id"],
                               "label": label.astype(str),
                               "labeled_at": ts + pd.Timedelta(hours=1)}), table="labels")
    windows = {"baseline": (ts[0], ts[n // 2]),
               "incident": (ts[n // 2], ts[-1] + pd.Timedelta(seconds=1))}
    return con, windows


def classify(**kwargs):
    con, windows = build(**kwargs)
    result = tk.classify_incident(con, **windows)
    findings = {f.id: f for f in result.diagnosis.findings()}
    con.close()
    return result, findings


def test_concept_drift_beside_a_mild_drift_of_an_unused_feature_is_model():
    result, findings = classify(drift=0.5)
    # what the logs show: accuracy fell, x2 alone drifted mildly, the outputs did not move
    assert findings["model.accuracy_drop"].severity == "high"
    drift = findings["data.feature_drift"]
    assert set(drift.evidence["features"]) == {"x2"}
    assert 0.1 <= drift.statistic < 0.25
    assert "model.prediction_shift" not in findings
    assert RULE in {h.name for h in result.verdict.hits}
    assert (result.pathway, result.failure_mode) == ("model", "concept_drift")
    hit = next(h for h in result.verdict.hits if h.name == RULE)
    assert hit.add == {"concept_drift": 3.0, "covariate_shift": -2.0}


def test_a_shift_of_the_feature_the_model_reads_stays_covariate_shift():
    result, findings = classify(shift=0.6, flip=0.0)
    assert "x1" in findings["data.feature_drift"].evidence["features"]
    assert findings["model.prediction_shift"].severity == "high"
    assert RULE not in {h.name for h in result.verdict.hits}
    assert (result.pathway, result.failure_mode) == ("data", "covariate_shift")


def test_without_predictions_nothing_says_whether_outputs_moved():
    # no prediction column: no accuracy and no output check; the drift is all the logs show
    result, findings = classify(drift=0.5, prediction=False, score_column=False)
    assert "model.accuracy_drop" not in findings
    assert "data.feature_drift" in findings
    assert RULE not in {h.name for h in result.verdict.hits}
    assert result.failure_mode != "concept_drift"


# ---------------------------------------------------------------- the rule on findings
def finding(id_: str, severity: str = "high", evidence: dict | None = None,
            statistic: float = 1.0) -> Finding:
    return Finding(id_, id_.split(".")[0], severity, statistic, 0.1, id_, evidence or {},
                   T0 + timedelta(minutes=10))


def drop(severity: str = "high") -> Finding:
    return finding("model.accuracy_drop", severity, {"accuracy_baseline": 0.93,
                                                     "accuracy_incident": 0.80}, 0.13)


def drift(psi: float = 0.18) -> Finding:
    return finding("data.feature_drift", "high" if psi >= 0.25 else "medium",
                   {"features": {"x2": {"psi": psi}}}, psi)


def outputs(severity: str = "medium", score_psi: float = 0.05) -> Finding:
    return finding("model.prediction_shift", severity,
                   {"score_psi": score_psi, "class_share_change": 0.01}, score_psi)


def verdict(*findings: Finding, gaps: tuple[NotAssessed, ...] = (),
            events: pd.DataFrame = NO_EVENTS):
    return score(Evidence(tuple(findings), gaps, events, BASELINE, INCIDENT))


def fires(result) -> bool:
    return RULE in {h.name for h in result.hits}


@pytest.mark.parametrize(("extra", "expected"), [
    ((), True),                                   # output check ran, nothing moved
    ((outputs("medium", 0.05),), True),           # outputs moved far less than the inputs
    ((outputs("medium", 0.12),), False),          # as much as the inputs: the drift explains
    ((outputs("high", 0.05),), False),            # a high output shift always counts
])
def test_the_rule_reads_whether_the_outputs_moved_with_the_inputs(extra, expected):
    result = verdict(drop(), drift(), *extra)
    assert fires(result) is expected
    if expected:
        assert result.failure_mode == "concept_drift"


def test_an_output_check_that_could_not_run_keeps_the_rule_silent():
    gap = NotAssessed("model.prediction_shift", "requests carry no score or prediction")
    result = verdict(drop(), drift(), gaps=(gap,))
    assert not fires(result)
    assert result.failure_mode == "covariate_shift"  # the old reading, nothing to refute it


def test_a_large_drift_a_low_accuracy_drop_or_a_model_deploy_keep_it_silent():
    assert not fires(verdict(drop(), drift(0.6)))
    assert not fires(verdict(drop("low"), drift()))
    # a low drift does not block model.concept_drift: nothing to take back
    low = finding("data.feature_drift", "low", {"features": {"x2": {"psi": 0.06}}}, 0.06)
    assert not fires(verdict(drop(), low))
    # inputs out of the baseline's range: the inputs did not stay put
    outside = finding("data.out_of_range", "medium", {"features": {"x2": 0.08}}, 0.08)
    assert not fires(verdict(drop(), drift(), outside))
    deploy = pd.DataFrame([{"ts": pd.Timestamp(T0 - timedelta(hours=1)), "kind": "deploy",
                            "artifact": "model", "version": "2.0", "host": None,
                            "detail": {}}])
    assert not fires(verdict(drop(), drift(), events=deploy))


# ---------------------------------------------------------------- without labels
UNLABELLED = "a mild input drift left the model's outputs in place, and no labels say more"
NO_LABELS = NotAssessed("model.performance", "the case has no labels")


def test_without_labels_the_mild_drift_is_not_a_decided_covariate_shift():
    # the partial form of the concept-drift case: its labels table is empty. What is left is
    # a mild drift of x2, which the model does not read (its outputs did not move): whether
    # anything broke cannot be seen. covariate_shift 0.57 before the rule.
    con, windows = build(drift=0.5)
    con.execute("DELETE FROM labels")
    result = tk.classify_incident(con, **windows)
    con.close()
    found = {f.id for f in result.diagnosis.findings()}
    assert found == {"data.feature_drift"}
    assert UNLABELLED in {h.name for h in result.verdict.hits}
    assert result.failure_mode == "undetermined"
    assert result.verdict.mode_scores["covariate_shift"] < 0.35


def test_the_unlabelled_rule_needs_no_labels_unmoved_outputs_and_a_mild_drift():
    def unlabelled(*findings, gaps=(NO_LABELS,)):
        return UNLABELLED in {h.name for h in verdict(*findings, gaps=gaps).hits}

    assert unlabelled(drift())
    assert not unlabelled(drift(), gaps=())               # labels ran and saw no loss
    assert not unlabelled(drift(0.6))                     # a large drift is a shift
    assert not unlabelled(drift(), outputs("medium", 0.12))  # outputs moved with the inputs
    assert not unlabelled(drift(), gaps=(NO_LABELS, NotAssessed(
        "model.prediction_shift", "requests carry no score or prediction")))  # unknown
    # a large drift without labels keeps the covariate-shift verdict
    assert verdict(drift(0.6), gaps=(NO_LABELS,)).failure_mode == "covariate_shift"
