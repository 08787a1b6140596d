"""A focused slice's window held by a drift that began just before the slice, with a second
finding of the same pathway that has no onset of its own (issue 22; varied tuning
covariate_shift seed 3, 30,000 rows)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from toolkit.classify.focus import held_by_finding
from toolkit.classify.windows import DetectedWindows
from toolkit.diagnose import Finding
from toolkit.types import Window

BUCKET = timedelta(hours=3)
#: The slice (the last quarter) and its baseline (the third quarter), as in covariate_shift s3.
BASE = Window(datetime(2026, 2, 9, 0, 0, tzinfo=UTC), datetime(2026, 2, 12, 11, 56, tzinfo=UTC))
SLICE = Window(BASE.end, datetime(2026, 2, 15, 23, 51, tzinfo=UTC))
#: The drift finding, refined on raw rows to 1 h 30 min before the slice opens.
DRIFT_AT = BASE.end - timedelta(hours=1, minutes=30)


def finding(fid: str, pathway: str, onset, severity: str = "high") -> Finding:
    return Finding(id=fid, pathway=pathway, severity=severity, statistic=1.0, threshold=0.2,
                   summary=fid, evidence={}, onset=onset, diagnostic=fid)


def window(onset, supporting=("data.feature_drift",)) -> DetectedWindows:
    return DetectedWindows(Window(BASE.start, onset - BUCKET), Window(onset, SLICE.end), onset,
                           (), supporting)


def test_a_drift_begun_just_before_the_slice_with_an_undated_finding_holds_its_window():
    found = [finding("data.feature_drift", "data", DRIFT_AT),
             finding("data.out_of_range", "data", None, "medium")]
    assert held_by_finding(window(DRIFT_AT), found, SLICE, BUCKET)


@pytest.mark.parametrize("fid, pathway, severity", [
    ("data.out_of_range", "data", "low"),  # a low finding does not agree
    ("model.calibration_shift", "model", "medium"),  # nor one of another pathway
])
def test_an_undated_finding_agrees_only_when_medium_or_high_and_of_the_same_pathway(
        fid, pathway, severity):
    found = [finding("data.feature_drift", "data", DRIFT_AT),
             finding(fid, pathway, None, severity)]
    assert not held_by_finding(window(DRIFT_AT), found, SLICE, BUCKET)


def test_a_finding_dated_more_than_a_bucket_before_the_slice_does_not_hold_it():
    early = BASE.end - BUCKET - timedelta(minutes=1)
    found = [finding("data.feature_drift", "data", early),
             finding("data.out_of_range", "data", None, "medium")]
    assert not held_by_finding(window(early), found, SLICE, BUCKET)
    # exactly a bucket before the slice opens, it does
    at = BASE.end - BUCKET
    found = [finding("data.feature_drift", "data", at),
             finding("data.out_of_range", "data", None, "medium")]
    assert held_by_finding(window(at), found, SLICE, BUCKET)


def test_a_lone_finding_still_holds_nothing():
    inside = SLICE.start + timedelta(hours=2, minutes=7)
    assert not held_by_finding(window(inside), [finding("data.feature_drift", "data", inside)],
                               SLICE, BUCKET)
    # a second signal among the window's supporting ones still makes it hold
    assert held_by_finding(window(inside, ("data.feature_drift", "drift.max_psi")),
                           [finding("data.feature_drift", "data", inside)], SLICE, BUCKET)
