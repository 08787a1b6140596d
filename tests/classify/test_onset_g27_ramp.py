"""A slow fall of accuracy is dated where it began, even days before a detected window
(issue 22, G27).

A detected window opens where the fall is deep; its baseline holds the ramp's start (varied
tuning concept_drift s4: the verdict was 43 hours late, at the window's start). The accuracy
drop's ``ramp_began`` (fitted over the whole span) dates the verdict, with no 36-hour limit.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from toolkit.classify import score
from toolkit.classify.engine import Evidence
from toolkit.diagnose import Finding
from toolkit.types import Window

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
BASELINE = Window(T0 - timedelta(days=9), T0)
INCIDENT = Window(T0, T0 + timedelta(days=8))
NO_EVENTS = pd.DataFrame(columns=["ts", "kind", "artifact", "version", "host", "detail"])


def drop(**evidence) -> Finding:
    return Finding("model.accuracy_drop", "model", "high", 0.12, 0.03, "accuracy fell",
                   {"accuracy_baseline": 0.9, "accuracy_incident": 0.78, **evidence}, T0)


#: what model.prediction_shift reports beside it when no feature drifted (no onset of its own)
CONCEPT = Finding("model.concept_drift", "model", "high", 0.12, 0.03, "accuracy fell",
                  {"accuracy_drop": 0.12, "max_feature_psi": 0.01, "psi_beyond_noise": []}, None)


def verdict(*findings: Finding):
    return score(Evidence((*findings, CONCEPT), (), NO_EVENTS, BASELINE, INCIDENT, "real-time"))


def test_the_ramp_s_start_dates_the_drift_days_before_the_window():
    began = T0 - timedelta(hours=43, minutes=7)
    with_ramp, without = verdict(drop(ramp_began=began)), verdict(drop())
    assert with_ramp.failure_mode == without.failure_mode == "concept_drift"
    assert with_ramp.confidence == without.confidence
    assert without.onset == T0
    assert with_ramp.onset == began


def test_a_ramp_before_the_span_is_not_the_onset():
    v = verdict(drop(ramp_began=BASELINE.start - timedelta(hours=1)))
    assert v.onset == T0


def test_a_ramp_after_the_finding_s_onset_is_not_the_onset():
    v = verdict(drop(ramp_began=T0 + timedelta(hours=2)))
    assert v.onset == T0


def test_a_ramp_start_near_the_window_s_start_leaves_it():
    """Guards varied tuning concept_drift s4 with the given window: the window's start is the
    truth and the fit, placed to within about two buckets, lay 3.6 h before it."""
    v = verdict(drop(ramp_began=T0 - timedelta(hours=1)))
    assert v.onset == T0
