"""A coarse onset is placed inside its bucket by another finding's refined onset.

Varied tuning adversarial_inputs s7 (issue 22, F30): on a detected window with 3-hour
diagnosis buckets, the OOD burst (the only finding that dates an adversarial-inputs verdict)
was dated 15:00, the start of its bucket and of the window, 72 minutes before the flood's first
request. The accuracy drop of the same window, refined on its labels, fell at 16:23:48 (12
minutes after the truth). A coarse date says only that the change began in its bucket; when no
supporting finding is refined, a refined onset of another finding inside that bucket dates it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from toolkit.classify import score
from toolkit.classify.engine import Evidence, _diagnosis_bucket
from toolkit.classify.windows import on_grid
from toolkit.diagnose import Finding
from toolkit.types import Window

# the detected windows of varied tuning adversarial_inputs s7
BASELINE = Window(datetime(2026, 2, 16, 0, 2, 20, tzinfo=UTC),
                  datetime(2026, 2, 26, 12, 0, tzinfo=UTC))
INCIDENT = Window(datetime(2026, 2, 26, 15, 0, tzinfo=UTC),
                  datetime(2026, 3, 1, 23, 57, 48, tzinfo=UTC))
NO_EVENTS = pd.DataFrame(columns=["ts", "kind", "artifact", "version", "host", "detail"])
COARSE = datetime(2026, 2, 26, 15, 0, tzinfo=UTC)  # a 3-hour bucket's start
REFINED = datetime(2026, 2, 26, 16, 23, 48, 146706, tzinfo=UTC)


def burst(onset: datetime) -> Finding:
    return Finding("model.ood_burst", "model", "high", 0.9, 0.6, "burst",
                   {"source": "client_version", "value": "android-5.3.5",
                    "values": ["android-5.3.5"], "ood_mean_score": 0.95}, onset)


def accuracy(onset: datetime, severity: str = "medium") -> Finding:
    return Finding("model.accuracy_drop", "model", severity, 0.12, 0.05, "accuracy", {}, onset)


def verdict(*findings: Finding):
    return score(Evidence(findings, (), NO_EVENTS, BASELINE, INCIDENT, "real-time"))


def test_the_case_has_three_hour_buckets_and_a_coarse_burst_date():
    bucket = pd.Timedelta(_diagnosis_bucket(Evidence((), (), NO_EVENTS, BASELINE, INCIDENT,
                                                     "real-time")))
    assert bucket == pd.Timedelta(hours=3)
    assert on_grid(pd.Timestamp(COARSE), bucket)
    assert not on_grid(pd.Timestamp(REFINED), bucket)


def test_a_refined_onset_inside_the_coarse_bucket_dates_the_verdict():
    v = verdict(burst(COARSE), accuracy(REFINED))
    assert v.failure_mode == "adversarial_inputs"
    # the accuracy drop does not support the verdict: only the burst dates it
    assert not any("model.accuracy_drop" in h.findings and h.add.get("adversarial_inputs", 0) > 0
                   for h in v.hits)
    assert pd.Timestamp(v.onset) == pd.Timestamp(REFINED)  # old code: 15:00


def test_a_refined_onset_after_the_bucket_leaves_the_coarse_date():
    # 18:00 is the next bucket's start: the burst's bucket ends there
    v = verdict(burst(COARSE), accuracy(COARSE + timedelta(hours=3, minutes=1, seconds=5)))
    assert pd.Timestamp(v.onset) == pd.Timestamp(COARSE)


def test_a_refined_onset_before_the_coarse_date_leaves_it():
    v = verdict(burst(COARSE), accuracy(COARSE - timedelta(minutes=20, seconds=11)))
    assert pd.Timestamp(v.onset) == pd.Timestamp(COARSE)


def test_a_low_finding_inside_the_bucket_does_not_date_the_verdict():
    v = verdict(burst(COARSE), accuracy(REFINED, severity="low"))
    assert pd.Timestamp(v.onset) == pd.Timestamp(COARSE)



def test_a_date_at_the_window_start_off_the_grid_stays():
    # a host's excess pinned at the window's start (D29's flag) may have begun before it
    start = INCIDENT.start + timedelta(minutes=7, seconds=41)
    host = Finding("infrastructure.host_outlier", "infrastructure", "high", 9.0, 3.5, "host",
                   {"host": "h2", "measure": "p99_ms", "onset_at_window_start": True}, start)
    inside = start + timedelta(minutes=31, seconds=17)
    v = score(Evidence((host, accuracy(inside)), (), NO_EVENTS, BASELINE,
                       Window(start, INCIDENT.end), "real-time"))
    dating = {f for h in v.hits if h.add.get(v.failure_mode, 0) > 0 for f in h.findings}
    assert "infrastructure.host_outlier" in dating
    assert "model.accuracy_drop" not in dating
    assert pd.Timestamp(v.onset) == pd.Timestamp(start)
