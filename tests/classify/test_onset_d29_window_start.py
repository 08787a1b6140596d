"""A host outlier dated at the window's start is a coarse date for the verdict's onset.

Varied tuning accelerator_fault s6 (issue 22, D29): a host's excess, pinned at the detected
window's start (06:54, off the 3-hour diagnosis grid, so it counted as refined), dated the
verdict 61 minutes before the truth, beside an accelerator fault refined to within a minute of
it. The host outlier's evidence now says its date is the window's start
(``onset_at_window_start``), and such a date counts like a bucket's start: only two buckets or
more before every refined onset.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from toolkit.classify import score
from toolkit.classify.engine import Evidence
from toolkit.diagnose import Finding
from toolkit.types import Window

START = datetime(2026, 2, 26, 6, 54, tzinfo=UTC)  # off the 3-hour grid
BASELINE = Window(datetime(2026, 2, 16, 0, 3, 51, tzinfo=UTC), START - timedelta(hours=3))
INCIDENT = Window(START, datetime(2026, 3, 8, 23, 58, 2, tzinfo=UTC))
NO_EVENTS = pd.DataFrame(columns=["ts", "kind", "artifact", "version", "host", "detail"])
REFINED = START + timedelta(minutes=61, seconds=30, microseconds=812)


def host(onset: datetime, **evidence) -> Finding:
    return Finding("infrastructure.host_outlier", "infrastructure", "high", 9.0, 3.5, "host",
                   {"host": "h2", "measure": "p99_ms", **evidence}, onset)


def accelerator(onset: datetime) -> Finding:
    return Finding("infrastructure.accelerator_fault", "infrastructure", "high", 1.0, 0.0,
                   "gpu", {}, onset)


def verdict(*findings: Finding):
    return score(Evidence(findings, (), NO_EVENTS, BASELINE, INCIDENT, "real-time"))


def test_a_flagged_window_start_does_not_date_the_verdict_before_a_refined_onset():
    v = verdict(host(START, onset_at_window_start=True), accelerator(REFINED))
    assert v.failure_mode == "accelerator_fault"
    assert any("infrastructure.host_outlier" in h.findings
               and h.add.get("accelerator_fault", 0) > 0 for h in v.hits)
    assert pd.Timestamp(v.onset) == pd.Timestamp(REFINED)


def test_an_unflagged_date_at_the_window_start_still_dates_it():
    # a host dated on its raw rows at that very moment (no flag) is a refined onset
    v = verdict(host(START), accelerator(REFINED))
    assert pd.Timestamp(v.onset) == pd.Timestamp(START)


def test_a_flagged_window_start_two_buckets_earlier_still_dates_it():
    late = START + timedelta(hours=6, minutes=5, seconds=7)  # two 3-hour buckets and more
    v = verdict(host(START, onset_at_window_start=True), accelerator(late))
    assert pd.Timestamp(v.onset) == pd.Timestamp(START)
