"""Window detection on synthetic signal timelines."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from toolkit.classify.windows import detect_windows, locate_incident
from toolkit.diagnose._base import Finding
from toolkit.types import Window

START = pd.Timestamp("2026-03-01", tz="UTC")
HOUR = timedelta(hours=1)


def series(name: str, values: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"bucket_start": START + pd.to_timedelta(np.arange(len(values)), "h"),
                         "signal": name, "value": values})


def test_finds_a_sustained_step_and_its_recovery():
    rng = np.random.default_rng(0)
    p99 = rng.normal(200, 10, 240)
    p99[150:190] += 400
    errors = rng.normal(0.01, 0.002, 240)
    errors[152:190] += 0.05
    signals = pd.concat([series("latency.p99_ms", p99), series("latency.error_rate", errors)])
    span = Window(START, START + 240 * HOUR)
    found = detect_windows(signals, span, HOUR)
    assert found.onset == START + 150 * HOUR
    assert found.incident.end == START + 190 * HOUR
    assert found.baseline.end <= found.onset
    assert set(found.supporting) == {"latency.p99_ms", "latency.error_rate"}


def test_a_short_blip_is_not_an_incident():
    rng = np.random.default_rng(1)
    p99 = rng.normal(200, 10, 240)
    p99[100] += 600  # one bucket
    assert detect_windows(series("latency.p99_ms", p99), Window(START, START + 240 * HOUR),
                          HOUR) is None


def test_prefers_the_change_most_signals_agree_on():
    rng = np.random.default_rng(2)
    a = rng.normal(0, 1, 240)
    a[60:] += 8  # an early, lone change in one signal
    b, c = rng.normal(0, 1, 240), rng.normal(0, 1, 240)
    b[170:] += 10
    c[171:] += 10
    signals = pd.concat([series("drift.max_psi", a), series("model.accuracy", b),
                         series("model.ece", c)])
    found = detect_windows(signals, Window(START, START + 240 * HOUR), HOUR)
    assert found.onset == START + 170 * HOUR


def _finding(onset):
    return Finding(id="data.feature_drift", pathway="data", severity="high", statistic=3.0,
                   threshold=0.1, summary="drift", evidence={}, onset=onset,
                   diagnostic="data.drift")


def test_a_findings_refined_onset_beats_the_bucket_that_holds_it():
    rng = np.random.default_rng(4)
    psi = np.abs(rng.normal(0.02, 0.01, 240))
    psi[149:] += 2.0  # the change point lands a bucket early, as PELT's may
    span = Window(START, START + 240 * HOUR)
    onset = START + 150 * HOUR + timedelta(minutes=50)
    found = locate_incident([_finding(onset)], series("drift.max_psi", psi), span, HOUR)
    assert found.onset == onset and found.incident.start == onset
    assert found.baseline.end == onset - HOUR
    # a timeline change two buckets before the finding is an earlier start of its own
    p99 = rng.normal(200, 10, 240)
    p99[148:] += 400
    signals = pd.concat([series("drift.max_psi", psi), series("latency.p99_ms", p99)])
    found = locate_incident([_finding(onset)], signals, span, HOUR)
    # (dated within its bucket: the noise of a full step moves it by minutes at most)
    assert abs(found.onset - (START + 148 * HOUR)) <= timedelta(minutes=10)


def test_one_symptom_measured_by_two_diagnostics_counts_once():
    rng = np.random.default_rng(5)
    span = Window(START, START + 240 * HOUR)

    def step(at, stop=240):
        values = np.abs(rng.normal(0.001, 0.0005, 240))
        values[at:stop] += 0.2
        return values

    timeouts = step(120, 130)  # an unrelated timeout episode, seen by two diagnostics
    signals = pd.concat([
        series("latency.timeout_rate", timeouts), series("timeouts.timeout_rate", timeouts),
        series("cache.stale_share", step(170, 180)),        # the incident
        series("model.new_version_share", step(170)),       # and the release behind it
    ])
    found = locate_incident([], signals, span, HOUR)
    assert found.onset == START + 170 * HOUR


def test_replica_starts_corroborate_but_do_not_date_an_incident():
    starts = np.zeros(240)
    starts[100:104] = 6  # a scale-out: replicas start, nothing is wrong
    span = Window(START, START + 240 * HOUR)
    onset = START + 180 * HOUR
    drift = Finding(id="model.calibration_shift", pathway="model", severity="medium",
                    statistic=0.05, threshold=0.02, summary="ece", evidence={}, onset=onset,
                    diagnostic="model.calibration")
    found = locate_incident([drift], series("cold_start.starts", starts), span, HOUR)
    assert found.onset == onset


def test_a_finding_dated_to_a_bucket_start_does_not_open_the_window_early():
    # an accuracy drop dated by its timeline (the start of the bucket before the change) and a
    # drift onset refined on raw rows: the refined one dates the incident
    rng = np.random.default_rng(6)
    psi = np.abs(rng.normal(0.02, 0.01, 240))
    psi[150:] += 2.0
    span = Window(START, START + 240 * HOUR)
    refined = START + 150 * HOUR + timedelta(minutes=50)
    coarse = Finding(id="model.accuracy_drop", pathway="model", severity="high", statistic=0.1,
                     threshold=0.02, summary="drop", evidence={}, onset=START + 149 * HOUR,
                     diagnostic="model.performance")
    found = locate_incident([coarse, _finding(refined)], series("drift.max_psi", psi), span,
                            HOUR)
    assert found.onset == refined
    # a coarse finding two buckets before every refined one is an earlier start of its own
    early = Finding(**{**coarse.__dict__, "onset": START + 148 * HOUR})
    found = locate_incident([early, _finding(refined)], series("drift.max_psi", psi), span,
                            HOUR)
    assert found.onset == START + 148 * HOUR


def test_a_blip_of_a_repeated_signal_does_not_end_the_incident():
    # a release at bucket 170 whose findings persist; the timeout diagnostic's copy of the
    # latency tail blips with it (the latency diagnostic's own p99 does not move) and recovers
    rng = np.random.default_rng(7)
    span = Window(START, START + 240 * HOUR)
    tail = rng.normal(300, 10, 240)
    tail[170:176] += 300
    share = np.zeros(240)
    share[170:] = 1.0
    signals = pd.concat([series("timeouts.p99_ms", tail),
                         series("latency.p99_ms", rng.normal(300, 10, 240)),
                         series("model.new_version_share", share)])
    onset = START + 170 * HOUR + timedelta(minutes=20)
    shift = Finding(id="model.calibration_shift", pathway="model", severity="high",
                    statistic=0.03, threshold=0.01, summary="ece", evidence={}, onset=onset,
                    diagnostic="model.calibration")
    found = locate_incident([shift], signals, span, HOUR)
    assert found.onset == onset
    assert found.incident.end == span.end
