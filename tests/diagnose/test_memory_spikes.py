"""memory_pressure on noise: a short spike far from any incident, and pressure seen with no
baseline samples, are not high findings, and spikes are low (the window detector's scan placed incidents 18-78 h
off on such findings); sustained pressure still is."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from tests.diagnose.conftest import make_case
from toolkit.diagnose.infra.memory import memory_pressure

T0 = pd.Timestamp("2026-03-01T00:00Z")
END = T0 + timedelta(days=4)
QUARTER = T0 + timedelta(days=1)  # the detector's scan: the first quarter is the baseline
LIMIT = 16 * 2**30


def _case(*, hot: list[tuple[pd.Timestamp, pd.Timedelta]], start: pd.Timestamp = T0,
          hosts: int = 3, seed: int = 0):
    """Memory every 5 minutes at 45-55% of the limit, and at 97% on pod-0 during ``hot``."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range(start, END, freq="5min", inclusive="left")
    frames = []
    for k in range(hosts):
        share = 0.5 + 0.05 * np.sin(np.arange(len(ts)) / 40 + k) + rng.normal(0, 0.005, len(ts))
        if k == 0:
            for at, length in hot:
                share = np.where((ts >= at) & (ts < at + length), 0.97, share)
        frames += [pd.DataFrame({"ts": ts, "host": f"pod-{k}", "name": "memory_used_bytes",
                                 "value": share * LIMIT}),
                   pd.DataFrame({"ts": ts, "host": f"pod-{k}", "name": "memory_limit_bytes",
                                 "value": float(LIMIT)})]
    return make_case(metrics=pd.concat(frames, ignore_index=True))


def _pressure(con):
    result = memory_pressure(con, (T0, QUARTER), (QUARTER, END), bucket=timedelta(hours=1))
    (finding,) = [f for f in result.findings() if f.id == "infrastructure.memory_pressure"]
    return finding


def test_a_short_spike_in_a_long_window_is_low():
    # 20 minutes at 97% on one pod, two days into a three-day window: one bucket of 72, back
    # below the limit in the next. A spike is the noise of bursty traffic (a healthy period
    # shows them too), not a change that persists: low, not medium (the window detector took a
    # lone medium one for an incident: varied tuning none seed 3)
    spike = T0 + timedelta(days=2, hours=5, minutes=10)
    finding = _pressure(_case(hot=[(spike, pd.Timedelta(minutes=20))]))
    assert finding.evidence["incident_buckets_at_pressure"] == 1
    assert finding.evidence["longest_run_at_pressure"] == 1
    assert finding.severity == "low"


def test_a_few_spikes_without_baseline_samples_are_low():
    # varied tuning none seed 3: GPU metrics that start after the baseline, and three separate
    # one- or two-bucket spikes to the limit in three days (1 + 2 + 1 of 72 buckets)
    spikes = [(QUARTER + timedelta(hours=h), pd.Timedelta(minutes=m))
              for h, m in ((7, 30), (30, 90), (60, 20))]
    finding = _pressure(_case(hot=[(QUARTER + timedelta(hours=30, minutes=30),
                                    pd.Timedelta(minutes=90)), *spikes[::2]], start=QUARTER))
    assert np.isnan(finding.evidence["baseline_max_utilisation"])
    assert finding.evidence["incident_buckets_at_pressure"] == 4
    assert finding.evidence["longest_run_at_pressure"] == 2
    assert finding.severity == "low"


def test_three_hot_buckets_in_a_row_are_sustained():
    # by hand: 2 h 10 min at 97% from 05:10 touches the buckets 05, 06 and 07: a run of 3
    onset = T0 + timedelta(days=2, hours=5, minutes=10)
    finding = _pressure(_case(hot=[(onset, pd.Timedelta(hours=2, minutes=10))]))
    assert finding.evidence["longest_run_at_pressure"] == 3
    assert finding.severity == "high"
    # the same time at pressure cut into three one-bucket spikes a day apart is not
    split = [(onset + timedelta(hours=h), pd.Timedelta(minutes=40)) for h in (0, 20, 40)]
    finding = _pressure(_case(hot=split))
    assert finding.evidence["incident_buckets_at_pressure"] == 3
    assert finding.evidence["longest_run_at_pressure"] == 1
    assert finding.severity == "low"


def test_pressure_without_baseline_samples_is_not_high():
    # the metrics start after the baseline (a platform that exported them later); the pod
    # is at 97% for four hours every day: chronic, not a change the data can show
    days = [T0 + timedelta(days=d, hours=12) for d in (1, 2, 3)]
    con = _case(hot=[(d, pd.Timedelta(hours=4)) for d in days], start=QUARTER)
    finding = _pressure(con)
    assert np.isnan(finding.evidence["baseline_max_utilisation"])
    assert finding.severity == "medium"


def test_sustained_pressure_after_a_healthy_baseline_is_high():
    onset = T0 + timedelta(days=2, hours=5, minutes=10)
    finding = _pressure(_case(hot=[(onset, pd.Timedelta(hours=6))]))
    assert finding.evidence["incident_buckets_at_pressure"] == 7
    assert finding.severity == "high"
    # dated on the raw samples, to the sample
    assert abs(pd.Timestamp(finding.onset) - onset) <= pd.Timedelta(minutes=5)


def test_long_pressure_without_baseline_samples_is_not_high():
    # as above, but at 97% for 16 hours a day: a third of the incident's time at pressure
    # against a baseline share of nothing (no samples) is no rise either
    days = [T0 + timedelta(days=d, hours=4) for d in (1, 2, 3)]
    con = _case(hot=[(d, pd.Timedelta(hours=16)) for d in days], start=QUARTER)
    finding = _pressure(con)
    assert finding.evidence["time_at_pressure_incident"] >= 0.1
    assert finding.severity == "medium"
