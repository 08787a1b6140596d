"""model.concept_drift says what it compared: with no input feature logged it does not claim
the inputs stayed close, and a drop found after a step inside the window is the drop it
reports (not the whole window's diluted one)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tests.diagnose.conftest import make_case
from toolkit.diagnose.model.performance import model_performance
from toolkit.diagnose.model.prediction_shift import prediction_shift

START = pd.Timestamp("2026-03-01", tz="UTC")


def _case(features: bool, after: str):
    # accuracy 0.9, then 0.7 from ``after`` hours on; one request every 5 minutes for 108 h
    rng = np.random.default_rng(3)
    ts = pd.date_range(START, periods=108 * 12, freq="5min")
    prediction = rng.choice(["0", "1"], len(ts))
    right = rng.uniform(size=len(ts)) < np.where(ts >= START + pd.Timedelta(after), 0.7, 0.9)
    label = np.where(right, prediction, np.where(prediction == "1", "0", "1"))
    requests = pd.DataFrame({"request_id": [f"r{i}" for i in range(len(ts))], "ts": ts,
                             "prediction": prediction})
    if features:
        requests["amount"] = rng.normal(50, 5, len(ts))
    labels = pd.DataFrame({"request_id": requests["request_id"], "label": label,
                           "labeled_at": ts + pd.Timedelta("1h")})
    return make_case(requests=requests, labels=labels)


def _concept(con, incident_start: str):
    baseline = (START, START + pd.Timedelta(incident_start))
    incident = (START + pd.Timedelta(incident_start), START + pd.Timedelta("108h"))
    result = prediction_shift(con, baseline, incident)
    (finding,) = [f for f in result.findings() if f.id == "model.concept_drift"]
    return result, finding


def test_without_input_features_concept_drift_does_not_claim_the_inputs_stayed_close():
    result, finding = _concept(_case(features=False, after="60h"), "60h")
    assert "stayed close" not in finding.summary
    assert "no input feature" in finding.summary
    gaps = {g.check: g.reason for g in result.not_assessed}
    assert "not ruled out" in gaps["model.prediction_shift:input_drift"]


def test_with_input_features_the_summary_gives_the_largest_psi_and_no_gap():
    result, finding = _concept(_case(features=True, after="60h"), "60h")
    assert "stayed close to the baseline (largest feature PSI 0.0" in finding.summary
    assert "model.prediction_shift:input_drift" not in {g.check for g in result.not_assessed}


def test_a_drop_after_a_step_is_the_drop_concept_drift_reports():
    # the window opens at 60 h, the drop comes at 96 h: over the whole window accuracy fell
    # about 5 points (diluted); after the step, about 20 (the accuracy finding's own figure)
    con = _case(features=True, after="96h")
    result, finding = _concept(con, "60h")
    performance = model_performance(con, (START, START + pd.Timedelta("60h")),
                                    (START + pd.Timedelta("60h"), START + pd.Timedelta("108h")))
    (drop,) = [f for f in performance.findings() if f.id == "model.accuracy_drop"]
    assert "step_start" in drop.evidence  # found after the step, not over the whole window
    whole = -performance.accuracy_change
    assert whole < 0.08 < finding.statistic
    assert finding.statistic == drop.statistic == finding.evidence["accuracy_drop"]
