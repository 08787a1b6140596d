"""The verdict's onset prefers a finding dated on raw rows to one dated at a bucket's start.

Varied tuning accelerator_fault s1 (issue 22): an accelerator fault refined to 07:33 (the
truth 07:32:42) beside an error rate whose onset is its first hourly bucket over the
threshold, 07:00, was dated 07:00 (33 minutes early); memory_exhaustion s3 and s4 were dated
38 and 86 minutes early the same way (an error rate's and a latency's bucket start beside an
OOM kill or a memory-pressure onset).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from toolkit.classify import score
from toolkit.classify.engine import Evidence
from toolkit.diagnose import Finding
from toolkit.types import Window

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)  # on the hourly grid of these windows
BASELINE = Window(T0 - timedelta(days=7), T0)
INCIDENT = Window(T0, T0 + timedelta(hours=6))
NO_EVENTS = pd.DataFrame(columns=["ts", "kind", "artifact", "version", "host", "detail"])
REFINED = T0 + timedelta(minutes=33, seconds=7, microseconds=412)


def finding(id_: str, severity: str, onset: datetime) -> Finding:
    return Finding(id_, id_.split(".")[0], severity, 1.0, 0.0, id_, {}, onset)


def verdict(*findings: Finding):
    return score(Evidence(findings, (), NO_EVENTS, BASELINE, INCIDENT, "real-time"))


def test_a_bucket_start_does_not_date_the_verdict_before_a_refined_onset():
    v = verdict(finding("infrastructure.accelerator_fault", "high", REFINED),
                finding("infrastructure.error_rate", "medium", T0))
    assert v.failure_mode == "accelerator_fault"
    assert any("infrastructure.error_rate" in h.findings and h.add.get("accelerator_fault", 0) > 0
               for h in v.hits)  # the grid-dated finding does support the mode
    assert v.onset == REFINED


def test_a_bucket_start_two_buckets_earlier_still_dates_it():
    early = T0 - timedelta(hours=2) + timedelta(hours=3)  # 15:00, on the grid
    refined = early + timedelta(hours=2, minutes=5, seconds=3)
    v = verdict(finding("infrastructure.accelerator_fault", "high", refined),
                finding("infrastructure.error_rate", "medium", early))
    assert v.onset == early


def test_grid_onsets_alone_still_date_the_verdict():
    v = verdict(finding("infrastructure.accelerator_fault", "high", T0 + timedelta(hours=1)),
                finding("infrastructure.error_rate", "medium", T0))
    assert v.onset == T0
