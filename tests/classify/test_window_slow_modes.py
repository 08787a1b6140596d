"""Window detection for slow modes: the onset is where the failure starts, not where its
symptoms pile up (issue 22)."""

from __future__ import annotations

import importlib
from datetime import timedelta

import numpy as np
import pandas as pd

from toolkit.diagnose._base import Finding
from toolkit.types import Window

windows = importlib.import_module("toolkit.classify.windows")

START = pd.Timestamp("2026-03-01", tz="UTC")
HOUR = timedelta(hours=1)
SPAN = Window(START, START + 240 * HOUR)


def series(name: str, values: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"bucket_start": START + pd.to_timedelta(np.arange(len(values)), "h"),
                         "signal": name, "value": values})


def finding(id_: str, pathway: str, onset, severity: str = "high") -> Finding:
    return Finding(id=id_, pathway=pathway, severity=severity, statistic=1.0, threshold=0.5,
                   summary=id_, evidence={}, onset=onset, diagnostic=id_.split(".")[0])


def pile_up(rng: np.random.Generator, at: int) -> pd.DataFrame:
    """OOM kills, restarts and the latency tail of a leak that exhausts memory at ``at``."""
    kills = np.zeros(240)
    kills[at:] = rng.poisson(5, 240 - at) + 3
    p99 = rng.normal(200, 10, 240)
    p99[at:] += 500
    return pd.concat([series("memory.oom_kills", kills), series("memory.restarts", kills),
                      series("latency.p99_ms", p99)])


def test_a_late_pile_up_does_not_move_the_onset_of_a_leak():
    # the leak starts at hour 120 (dated on raw rows by its own finding); memory runs out 30
    # hours later, where three findings and three timeline changes pile up
    rng = np.random.default_rng(11)
    leak = START + 120 * HOUR + timedelta(minutes=17)
    found = [finding("infrastructure.memory_leak", "infrastructure", leak),
             finding("infrastructure.oom_kills", "infrastructure",
                     START + 150 * HOUR + timedelta(minutes=5)),
             finding("infrastructure.memory_pressure", "infrastructure",
                     START + 150 * HOUR + timedelta(minutes=40)),
             finding("infrastructure.latency_regression", "infrastructure",
                     START + 151 * HOUR + timedelta(minutes=2), "medium")]
    located = windows.locate_incident(found, pile_up(rng, 150), SPAN, HOUR)
    assert located.onset == leak
    assert located.incident.start == leak
    # the symptoms that piled up keep the incident open to the end of the data
    assert located.incident.end == SPAN.end
    assert located.baseline.end == leak - HOUR


def test_a_finding_of_another_pathway_before_the_pile_up_is_another_story():
    # a feature drifts a day before an unrelated latency incident: the drift does not date it
    rng = np.random.default_rng(12)
    incident = START + 150 * HOUR + timedelta(minutes=5)
    found = [finding("data.feature_drift", "data", START + 126 * HOUR + timedelta(minutes=33)),
             finding("infrastructure.oom_kills", "infrastructure", incident),
             finding("infrastructure.memory_pressure", "infrastructure",
                     START + 150 * HOUR + timedelta(minutes=40))]
    located = windows.locate_incident(found, pile_up(rng, 150), SPAN, HOUR)
    assert located.onset == incident


def test_a_finding_dated_by_its_timeline_does_not_lead_in():
    # a calibration onset on a bucket start a day before the accuracy drop: timelines place a
    # change only to within a bucket or two, so it does not date the incident
    rng = np.random.default_rng(13)
    accuracy = rng.normal(0.9, 0.005, 240)
    accuracy[150:] -= 0.12
    drop = START + 150 * HOUR + timedelta(minutes=47)
    found = [finding("model.calibration_shift", "model", START + 126 * HOUR),
             finding("model.accuracy_drop", "model", drop)]
    located = windows.locate_incident(found, series("model.accuracy", accuracy), SPAN, HOUR)
    assert located.onset == drop


def test_a_lead_in_longer_than_two_days_is_not_the_same_incident():
    rng = np.random.default_rng(14)
    incident = START + 150 * HOUR + timedelta(minutes=5)
    found = [finding("infrastructure.memory_leak", "infrastructure",
                     incident - windows.LEAD_IN - HOUR),
             finding("infrastructure.oom_kills", "infrastructure", incident),
             finding("infrastructure.memory_pressure", "infrastructure",
                     START + 150 * HOUR + timedelta(minutes=40))]
    located = windows.locate_incident(found, pile_up(rng, 150), SPAN, HOUR)
    assert located.onset == incident


def test_a_stray_oom_kill_a_day_before_the_leak_does_not_open_the_window():
    # varied tuning seed 17: one OOM kill 24 h before the leak starts, 40 h before the pile-up
    rng = np.random.default_rng(15)
    leak = START + 135 * HOUR + timedelta(minutes=44)
    found = [finding("infrastructure.oom_kills", "infrastructure",
                     START + 111 * HOUR + timedelta(minutes=10)),
             finding("infrastructure.memory_leak", "infrastructure", leak),
             finding("infrastructure.memory_pressure", "infrastructure",
                     START + 150 * HOUR + timedelta(minutes=6)),
             finding("infrastructure.latency_regression", "infrastructure",
                     START + 150 * HOUR + timedelta(minutes=29), "medium")]
    located = windows.locate_incident(found, pile_up(rng, 150), SPAN, HOUR)
    assert located.onset == leak


def test_a_segments_first_failure_does_not_lead_in():
    # varied tuning timeout_misconfiguration seeds 2 and 4: a new client version's first failure
    # (one row, its background rate) dated the failure-segment finding 7 and 8 hours before the
    # timeout change, and as a lead-in of the same pathway it opened the window there
    rng = np.random.default_rng(15)
    rate = np.abs(rng.normal(0.002, 0.0004, 240))
    rate[150:] = 0.06
    change = START + 150 * HOUR + timedelta(minutes=20)
    first_failure = START + 143 * HOUR + timedelta(minutes=3)
    segment = Finding(id="integration.failure_segment", pathway="integration", severity="high",
                      statistic=1.0, threshold=0.5, summary="client_version", evidence={},
                      onset=first_failure, diagnostic="case.segments")
    found = [segment, finding("integration.timeout_misconfiguration", "integration", change)]
    located = windows.locate_incident(found, series("latency.timeout_rate", rate), SPAN, HOUR)
    assert located.onset == change
    # the same finding from a diagnostic that dates the onset of a change still leads in
    led = Finding(id="integration.cache_staleness", pathway="integration", severity="high",
                  statistic=1.0, threshold=0.5, summary="stale", evidence={},
                  onset=first_failure, diagnostic="integration.cache")
    located = windows.locate_incident([led, found[1]], series("latency.timeout_rate", rate),
                                      SPAN, HOUR)
    assert located.onset == first_failure
