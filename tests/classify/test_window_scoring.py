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


def test_incidents_with_no_window_found_and_healthy_cases_opening_one_are_counted():
    """The fallback window read when the detector found no change is counted apart, and a
    healthy case whose scan placed a window is a false alarm of the detector."""
    def case(truth: str, source: str) -> CaseOutcome:
        return CaseOutcome(truth, 2001, "none" if truth == "none" else "model", truth,
                           None if truth == "none" else ONSET, "model", truth, 0.9, None,
                           float("nan"), 1.0, window_source=source)

    fallback = ("detected (no change found: the span after its first quarter, "
                "against that quarter)")
    outcomes = (case("concept_drift", "detected"), case("concept_drift", fallback),
                case("memory_leak", "detected (no change found: last quarter)"),
                case("none", "detected"), case("none", fallback), case("none", "detected"),
                case("none", "detected (second scan: the last quarter against the days before)"),
                case("concept_drift", "detected (second scan: the last quarter against the days "
                     "before)"))
    summary, _ = _summary(EvaluationReport(outcomes, False, 1000, (2001,)))
    assert summary["windows_not_found"] == 2
    assert summary["healthy_windows_opened"] == 3
    given = tuple(case(o.mode, "given") for o in outcomes)
    summary, _ = _summary(EvaluationReport(given, True, 1000, (2001,)))
    assert (summary["windows_not_found"], summary["healthy_windows_opened"]) == (0, 0)

