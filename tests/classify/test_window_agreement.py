"""Window detection weighs each candidate by whether anything else agrees with it (issue 22):
a lone finding far from the incident must not open the window."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from tests.classify.test_window_slow_modes import HOUR, SPAN, START, series, windows
from toolkit.diagnose._base import Finding


def finding(id_: str, pathway: str, onset, severity: str) -> Finding:
    return Finding(id=id_, pathway=pathway, severity=severity, statistic=1.0, threshold=0.5,
                   summary=id_, evidence={}, onset=onset, diagnostic=id_.split(".")[0])


def drift_timeline(rng: np.random.Generator, at: int) -> pd.DataFrame:
    """A worst-feature PSI that steps up at ``at`` (robust z ~ 10: a candidate of weight 0.5)."""
    psi = rng.normal(0.05, 0.01, 240)
    psi[at:] += 0.1
    return series("drift.max_psi", psi)


def test_a_lone_high_finding_far_away_does_not_open_the_window():
    # varied tuning null_injection seed 1: a high memory_pressure finding 52 h before the
    # incident, with no timeline change near it, beat a medium drift finding that the drift
    # timeline corroborates (old support 2 vs 1.5; now 1 vs 1.5)
    rng = np.random.default_rng(21)
    onset = START + 150 * HOUR + timedelta(minutes=12)
    found = [finding("infrastructure.memory_pressure", "infrastructure",
                     START + 98 * HOUR + timedelta(minutes=33), "high"),
             finding("data.feature_drift", "data", onset, "medium")]
    signals = drift_timeline(rng, 150)
    change = [c for c in windows.locate_incident(found, signals, SPAN, HOUR).changes
              if c.signal == "drift.max_psi"]
    assert len(change) == 1 and 6.0 <= change[0].strength < 20.0  # weight below 1
    located = windows.locate_incident(found, signals, SPAN, HOUR)
    assert located.onset == onset
    assert located.incident.start == onset
    assert "infrastructure.memory_pressure" not in located.supporting


def test_a_corroborated_high_finding_still_wins_and_lone_ones_keep_their_order():
    rng = np.random.default_rng(22)
    leak = START + 98 * HOUR + timedelta(minutes=33)
    drift = START + 150 * HOUR + timedelta(minutes=12)
    memory = np.zeros(240)
    memory += rng.normal(0.5, 0.01, 240)
    memory[98:] += 0.3  # the memory timeline agrees with the memory finding
    signals = pd.concat([drift_timeline(rng, 150), series("memory.level_max", memory)])
    found = [finding("infrastructure.memory_pressure", "infrastructure", leak, "high"),
             finding("data.feature_drift", "data", drift, "medium")]
    assert windows.locate_incident(found, signals, SPAN, HOUR).onset == leak
    # two lone findings: both halved, the high one still outweighs the medium one
    found = [finding("infrastructure.memory_pressure", "infrastructure", leak, "high"),
             finding("data.feature_drift", "data", drift, "medium")]
    assert windows.locate_incident(found, series("latency.p50_ms", rng.normal(50, 1, 240)),
                                   SPAN, HOUR).onset == leak


def test_a_signals_twin_is_not_an_agreement():
    # the latency tail measured by two diagnostics is one measurement: a p99 step far from the
    # incident, seen as latency.p99_ms and timeouts.p99_ms, is still a lone candidate
    tail = [(pd.Timestamp(START + 40 * HOUR), 1.5, "latency.p99_ms")]
    agreed = windows._agreement(
        tail, [windows.SignalChange("timeouts.p99_ms", START + 40 * HOUR, 30.0, None)], HOUR)
    assert agreed == [False]
    assert windows._weigh_by_agreement(tail, agreed) == [
        (pd.Timestamp(START + 40 * HOUR), 0.75, "latency.p99_ms")]
    agreed = windows._agreement(
        tail, [windows.SignalChange("latency.error_rate", START + 41 * HOUR, 9.0, None)], HOUR)
    assert agreed == [True]
    assert windows._weigh_by_agreement(tail, agreed) == tail
