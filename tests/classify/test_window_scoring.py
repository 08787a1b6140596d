"""``forensics evaluate`` scores the window detector: does the detected window hold the onset."""

from __future__ import annotations

import pytest

from toolkit.evaluate import CaseOutcome, EvaluationReport, _summary

ONSET = "2026-03-02T10:00:00Z"


def outcome(mode: str, window: tuple[str, str] | None, onset: str | None = ONSET) -> CaseOutcome:
    return CaseOutcome(mode, 2001, "data", mode, onset, "data", mode, 0.9, None, float("nan"),
                       1.0, None, ("2026-03-02T10:00:00Z", "2026-03-02T16:00:00Z"), window,
                       float("nan"), "varied")


def test_the_share_of_detected_windows_that_hold_the_true_onset_by_hand():
    outcomes = (
        outcome("covariate_shift", ("2026-03-02T09:00:00Z", "2026-03-02T12:00:00Z")),  # holds
        outcome("concept_drift", ("2026-03-02T10:20:00Z", "2026-03-02T12:00:00Z")),  # 20 min late
        outcome("cold_start", ("2026-03-02T10:45:00Z", "2026-03-02T12:00:00Z")),  # 45 min late
        outcome("cache_staleness", ("2026-02-27T00:00:00Z", "2026-02-27T06:00:00Z")),  # days off
        outcome("memory_leak", None),  # no window
        outcome("none", None, onset=None),  # no incident: not counted
    )
    frame_outcomes = tuple(o if o.mode != "none" else
                           CaseOutcome("none", 2001, "none", "none", None, "none", "none", 0.9,
                                       None, float("nan"), 1.0) for o in outcomes)
    summary, intervals = _summary(EvaluationReport(frame_outcomes, False, 1000, (2001,)))
    assert summary["window_holds_onset"] == pytest.approx(2 / 5)
    low, high = intervals["window_holds_onset"]
    assert 0.0 <= low <= 2 / 5 <= high <= 1.0
