"""The verdict of a memory leak is dated where its first climb began (issue 22, K27).

A detected window opens where a leak's symptoms pile up (OOM kills, latency), hours after its
memory began to climb; the leak finding's ``climb_began`` (measured on the whole span's
samples) dates the verdict, even more than an hour before the window (varied tuning
memory_leak seeds 3, 5, 6, 8, 9, 10: 5 to 22 hours late before).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from toolkit.classify import score
from toolkit.classify.engine import Evidence
from toolkit.diagnose import Finding
from toolkit.types import Window

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
BASELINE = Window(T0 - timedelta(days=7), T0)
INCIDENT = Window(T0, T0 + timedelta(days=2))
NO_EVENTS = pd.DataFrame(columns=["ts", "kind", "artifact", "version", "host", "detail"])
VISIBLE = T0 + timedelta(minutes=17, seconds=3)


def leak(**evidence) -> Finding:
    return Finding("infrastructure.memory_leak", "infrastructure", "high", 1.0, 0.5,
                   "memory climbs", {"kind": "memory", **evidence}, VISIBLE)


def verdict(*findings: Finding, events: pd.DataFrame = NO_EVENTS):
    return score(Evidence(findings, (), events, BASELINE, INCIDENT, "real-time"))


def test_the_climb_s_start_dates_a_leak_hours_before_the_window():
    began = T0 - timedelta(hours=9, minutes=4, seconds=11)
    v = verdict(leak(climb_began=began))
    assert v.failure_mode == "memory_leak"
    assert v.onset == began


def test_without_it_the_visible_onset_still_dates_the_leak():
    v = verdict(leak())
    assert v.failure_mode == "memory_leak"
    assert v.onset == VISIBLE


def test_a_climb_too_long_before_the_window_is_not_the_onset():
    v = verdict(leak(climb_began=T0 - timedelta(hours=40)))
    assert v.onset == VISIBLE


def test_a_release_just_before_the_climb_s_start_still_dates_it():
    began = T0 - timedelta(hours=9)
    release = pd.DataFrame({"ts": [pd.Timestamp(began - timedelta(minutes=3))],
                            "kind": ["deploy"], "artifact": ["service"], "version": ["2.1"],
                            "host": [None], "detail": [None]})
    v = verdict(leak(climb_began=began), events=release)
    assert v.onset == began - timedelta(minutes=3)
