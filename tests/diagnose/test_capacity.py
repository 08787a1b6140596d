"""Latency against concurrency: numbers, saturation, healthy load, missing concurrency."""

from __future__ import annotations

import json
from datetime import timedelta

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from tests.diagnose.conftest import make_case
from toolkit.diagnose.infra.capacity import (
    ID,
    LATENCY_RATIO,
    hist_count_above,
    hist_quantiles,
    latency_vs_concurrency,
)

T0 = pd.Timestamp("2026-03-01T00:00Z")
CUT = T0 + timedelta(hours=24)
BASELINE = (T0, CUT)
INCIDENT = (CUT, CUT + timedelta(hours=6))


def _requests(*, seed=0, capacity=None, surge=1.0, blip=False, step_s=4, hosts=4):
    """One request every ``step_s`` seconds for 30 h; in flight follows a daily cycle
    (mean 4..12) with Poisson noise, times ``surge`` in the incident. Latency is lognormal
    (median 50 ms) rising 1% per request in flight, and ``(1 + 0.8 (level - capacity))`` times
    more above ``capacity``. ``blip``: 5 incident minutes 5x slower with 3x the concurrency
    (Little's law)."""
    rng = np.random.default_rng(seed)
    n = 30 * 3600 // step_s
    ts = T0 + pd.to_timedelta(np.arange(n) * step_s, unit="s")
    hour = (np.arange(n) * step_s / 3600.0) % 24
    mean = 8 + 4 * np.cos(2 * np.pi * (hour - 18) / 24)
    mean = np.where(ts >= CUT, mean * surge, mean)
    level = rng.poisson(mean).astype(float)
    in_blip = (ts >= CUT + timedelta(hours=2)) & (ts < CUT + timedelta(hours=2, minutes=5))
    if blip:
        level = np.where(in_blip, level * 3, level)
    latency = np.exp(np.log(50) + 0.3 * rng.standard_normal(n)) * (1 + 0.01 * level)
    if capacity is not None:
        latency *= 1 + 0.8 * np.maximum(level - capacity, 0)
    if blip:
        latency = np.where(in_blip, latency * 5, latency)
    status = np.where(rng.random(n) < 0.01, "error", "ok")
    return pd.DataFrame({"request_id": [f"r{i}" for i in range(n)], "ts": ts,
                         "host": [f"pod-{k}" for k in np.arange(n) % hosts],
                         "latency_ms": latency, "in_flight": level.astype(int),
                         "status": status})


@pytest.fixture(scope="module")
def saturated():
    frame = _requests(capacity=16, surge=2.2)
    return frame, latency_vs_concurrency(make_case(requests=frame), BASELINE, INCIDENT)


def _inverted(values, q):
    return float(np.quantile(values, q, method="inverted_cdf"))


def test_curve_matches_numpy(saturated):
    frame, result = saturated
    inside = frame[frame["ts"] < INCIDENT[1]]
    table = result.table.set_index("level")
    counts = inside.groupby("in_flight").size()
    assert table["requests"].to_dict() == {float(k): int(v) for k, v in counts.items()}
    for level, rows in inside.groupby("in_flight"):
        if len(rows) < 200:
            continue
        for q, column in ((0.5, "p50_ms"), (0.95, "p95_ms"), (0.99, "p99_ms")):
            expected = _inverted(rows["latency_ms"], q)
            assert table.loc[level, column] == pytest.approx(expected, rel=LATENCY_RATIO - 1)
        inc = rows[rows["ts"] >= CUT]["latency_ms"]
        if len(inc) >= 200:
            assert table.loc[level, "p99_incident_ms"] == pytest.approx(_inverted(inc, 0.99),
                                                                         rel=0.01)
        errors = (rows["status"] == "error").mean()
        assert table.loc[level, "error_rate"] == pytest.approx(errors)


def test_windows_and_knee_match_numpy(saturated):
    frame, result = saturated
    base = frame[frame["ts"] < CUT]
    inc = frame[(frame["ts"] >= CUT) & (frame["ts"] < INCIDENT[1])]
    for name, rows in (("baseline", base), ("incident", inc)):
        assert result.value(name, "max_level") == rows["in_flight"].max()
        assert result.value(name, "p99_level") == _inverted(rows["in_flight"], 0.99)
        assert result.value(name, "p50_level") == _inverted(rows["in_flight"], 0.5)
        assert result.value(name, "requests") == len(rows)
    # Low-concurrency p99: all requests at levels up to the baseline median level.
    median = _inverted(base["in_flight"], 0.5)
    both = pd.concat([base, inc])
    low = both[both["in_flight"] <= median]["latency_ms"]
    assert result.p99_low_ms == pytest.approx(_inverted(low, 0.99), rel=0.01)
    # Knee: first level (>= 100 requests, above the low region) whose p99 is >= 2x and stays.
    p99 = both.groupby("in_flight")["latency_ms"].agg(
        lambda v: _inverted(v, 0.99) if len(v) >= 100 else np.nan).dropna()
    p99 = p99[p99.index > median]
    high = (p99 >= 2 * result.p99_low_ms).to_numpy()
    knee = next(p99.index[k] for k in range(len(high))
                if high[k] and (k + 1 == len(high) or high[k + 1]))
    assert result.knee == knee
    assert 16 <= result.knee <= 18
    share = (inc["in_flight"] >= result.knee).mean()
    assert result.value("incident", "share_above_knee") == pytest.approx(share)
    above = inc[inc["in_flight"] >= result.knee]["latency_ms"]
    assert result.value("incident", "p99_above_knee_ms") == pytest.approx(
        _inverted(above, 0.99), rel=0.01)


def test_saturation_fires_high(saturated):
    _, result = saturated
    (finding,) = result.findings()
    assert finding.id == "infrastructure.capacity_saturation"
    assert finding.severity == "high"
    assert finding.pathway == "infrastructure" and finding.diagnostic == ID
    assert finding.statistic >= 0.10
    assert finding.evidence["max_in_flight_incident"] > finding.evidence["max_in_flight_baseline"]
    assert abs(pd.Timestamp(finding.onset) - CUT) <= timedelta(minutes=10)
    assert result.refined_onsets == {"infrastructure.capacity_saturation": finding.onset}
    assert finding.to_dict()["evidence"]["knee"] == result.knee
    json.dumps(finding.to_dict())


@pytest.mark.parametrize("kwargs", [
    dict(),                         # daily seasonality and noise, far below capacity
    dict(blip=True),                # a 5-minute latency blip (concurrency rises with it)
    dict(capacity=30, surge=1.2),   # busier incident, still below the knee
    dict(seed=3, capacity=22),      # a knee exists that daily peaks brush in both windows
])
def test_healthy_load_gives_no_high_finding(kwargs):
    result = latency_vs_concurrency(make_case(requests=_requests(**kwargs)), BASELINE,
                                    INCIDENT)
    assert all(f.severity not in ("high",) for f in result.findings())
    assert not [f for f in result.findings() if f.severity == "medium"]


def test_signals_plot_and_frame(saturated):
    _, result = saturated
    signals = result.signals()
    assert list(signals.columns) == ["bucket_start", "signal", "value"]
    assert {"capacity.level_mean", "capacity.level_max",
            "capacity.above_knee_share"} <= set(signals["signal"])
    ax = result.plot()
    assert ax.get_title() == "Latency against concurrency"
    frame = result.to_frame()
    assert (frame["diagnostic"] == ID).all() and "p99_ms" in frame
    assert result.sql and all("SELECT" in sql for sql in result.sql)
    assert "knee" in result._repr_html_()


def test_level_from_metrics_when_requests_lack_in_flight():
    frame = _requests(capacity=16, surge=2.2).drop(columns="in_flight")
    rng = np.random.default_rng(1)
    minutes = pd.date_range(T0, INCIDENT[1], freq="1min", inclusive="left")
    hosts = [f"pod-{k}" for k in range(4)]
    metrics = pd.DataFrame([(t, h) for t in minutes for h in hosts], columns=["ts", "host"])
    metrics["name"] = "in_flight"
    metrics["value"] = rng.poisson(8, len(metrics)).astype(float)
    result = latency_vs_concurrency(make_case(requests=frame, metrics=metrics), BASELINE,
                                    INCIDENT, min_requests=20)
    assert result.level_source.startswith("metrics.in_flight")
    assert not [g for g in result.not_assessed if g.check == ID]
    # Independent join: each request takes its host's value for its minute.
    merged = frame.assign(minute=frame["ts"].dt.floor("1min")).merge(
        metrics.rename(columns={"ts": "minute"}), on=["host", "minute"])
    counts = merged.groupby("value").size()
    assert result.table.set_index("level")["requests"].to_dict() == {
        float(k): int(v) for k, v in counts.items()}


def test_missing_inputs_are_not_assessed():
    frame = _requests().drop(columns="in_flight")
    result = latency_vs_concurrency(make_case(requests=frame), BASELINE, INCIDENT)
    assert result.table.empty and not result.findings()
    assert result.not_assessed[0].check == ID
    assert "in_flight" in result.not_assessed[0].reason
    assert result.plot() is not None and result.signals().empty
    no_latency = make_case(requests=_requests().drop(columns="latency_ms"))
    result = latency_vs_concurrency(no_latency, BASELINE, INCIDENT)
    assert "latency" in result.not_assessed[0].reason
    empty = latency_vs_concurrency(make_case(), BASELINE, INCIDENT)
    assert empty.not_assessed and not empty.findings()
    # No concurrency in the incident window: measured where it exists, the gap stated.
    part = _requests(capacity=16)
    part["in_flight"] = part["in_flight"].where(part["ts"] < CUT)
    result = latency_vs_concurrency(make_case(requests=part), BASELINE, INCIDENT)
    assert not result.table.empty and not result.findings()
    assert [g.check for g in result.not_assessed] == [f"{ID}.windows"]
    # in_flight column present but empty everywhere: falls back, then says why.
    nulls = _requests().assign(in_flight=None)
    result = latency_vs_concurrency(make_case(requests=nulls), BASELINE, INCIDENT)
    assert result.table.empty and result.not_assessed


def test_histogram_helpers_against_numpy():
    rng = np.random.default_rng(5)
    values = np.r_[np.exp(rng.normal(4, 1, 5000)), np.zeros(20)]
    bins = np.where(values > 0, np.floor(np.log(np.where(values > 0, values, 1)) /
                                         np.log(LATENCY_RATIO)), -1_000_000)
    frame = pd.DataFrame({"lbin": bins}).value_counts().rename("n").reset_index()
    q = hist_quantiles(frame, [], (0.001, 0.25, 0.5, 0.9, 0.99, 1.0))
    for column, level in zip(q.columns, (0.001, 0.25, 0.5, 0.9, 0.99, 1.0), strict=True):
        expected = _inverted(values, level)
        assert q[column].iloc[0] == pytest.approx(expected, rel=0.01, abs=1e-9)
    for threshold in (10.0, 55.0, 300.0):
        assert hist_count_above(frame, threshold) == pytest.approx(
            (values > threshold).sum(), rel=0.01, abs=3)


# --- queue build-up from the queue_depth metric (issue 20 notes) ----------------------------

QUEUE_AT = CUT + timedelta(hours=2)
TEN = timedelta(minutes=10)


def _queue_metrics(*, rise=12.0, until=None, seed=2, name="queue_depth"):
    """queue_depth of 4 hosts every minute: Poisson(2) each, Poisson(``rise``) from
    ``QUEUE_AT`` (to ``until``)."""
    rng = np.random.default_rng(seed)
    minutes = pd.date_range(T0, INCIDENT[1], freq="1min", inclusive="left")
    frame = pd.DataFrame([(t, f"pod-{k}") for t in minutes for k in range(4)],
                         columns=["ts", "host"])
    up = (frame["ts"] >= QUEUE_AT) & (frame["ts"] < (until or INCIDENT[1]))
    frame["value"] = rng.poisson(np.where(up, rise, 2.0)).astype(float)
    frame["name"] = name
    return frame


def _bucket_queue(metrics: pd.DataFrame) -> pd.Series:
    """Independent pandas: per 10-minute bucket, each host's mean, summed over the hosts."""
    bucket = metrics["ts"].dt.floor("10min")
    return metrics.groupby([bucket, "host"])["value"].mean().groupby(level=0).sum()


def _slow_after_queue(frame, factor=3.0):
    return frame.assign(latency_ms=np.where(frame["ts"] >= QUEUE_AT,
                                            frame["latency_ms"] * factor, frame["latency_ms"]))


def test_queue_that_climbs_and_stays_up_with_latency_is_a_finding():
    metrics = _queue_metrics()
    requests = _slow_after_queue(_requests().drop(columns="in_flight"))
    result = latency_vs_concurrency(make_case(requests=requests, metrics=metrics), BASELINE,
                                    INCIDENT, bucket=TEN)
    expected = _bucket_queue(metrics)
    queue = result.queue.set_index("bucket_start")["queue"]
    np.testing.assert_allclose(queue.to_numpy(), expected.to_numpy(), rtol=1e-12)
    base = expected[expected.index < CUT]
    q95 = float(np.quantile(base.to_numpy(), 0.95))
    (f,) = [f for f in result.findings() if f.id == "infrastructure.queue_buildup"]
    assert f.threshold == pytest.approx(max(2 * q95, q95 + 1))
    inc = expected[expected.index >= CUT]
    assert f.statistic == pytest.approx(float(inc[inc.index >= QUEUE_AT].median()))
    assert pd.Timestamp(f.onset) == QUEUE_AT
    assert f.evidence["high_buckets"] == 24 and f.evidence["incident_buckets"] == 36
    assert f.evidence["stay_share"] == 1.0
    assert f.evidence["latency_ratio"] == pytest.approx(3.0, rel=0.15)
    assert f.evidence["spearman_queue_p99"] > 0.5
    assert f.severity == "high" and f.pathway == "infrastructure"
    # no concurrency in this case: the curve is not assessed, the queue still is
    assert result.table.empty and [g.check for g in result.not_assessed] == [ID]
    assert "capacity.queue_depth" in set(result.signals()["signal"])
    json.dumps(f.to_dict())


def test_queue_without_a_latency_rise_is_low_and_a_spike_is_nothing():
    requests = _requests().drop(columns="in_flight")
    flat = latency_vs_concurrency(make_case(requests=requests, metrics=_queue_metrics()),
                                  BASELINE, INCIDENT, bucket=TEN)
    (f,) = [f for f in flat.findings() if f.id == "infrastructure.queue_buildup"]
    assert f.severity == "low" and f.evidence["latency_ratio"] < 1.5
    # 20 minutes of queue (two buckets), then back to normal: not a build-up
    spike = _queue_metrics(until=QUEUE_AT + timedelta(minutes=20))
    result = latency_vs_concurrency(make_case(requests=requests, metrics=spike), BASELINE,
                                    INCIDENT, bucket=TEN)
    assert result.queue_buildup() is None
    assert not [f for f in result.findings() if f.id == "infrastructure.queue_buildup"]


def test_queue_from_metrics_alone_with_a_latency_metric():
    metrics = _queue_metrics(name="requests_waiting")
    minutes = metrics[metrics["host"] == "pod-0"]["ts"]
    latency = pd.DataFrame({"ts": minutes, "host": "pod-0", "name": "latency_p99_ms",
                            "value": np.where(minutes >= QUEUE_AT, 900.0, 300.0)})
    result = latency_vs_concurrency(make_case(metrics=pd.concat([metrics, latency])),
                                    BASELINE, INCIDENT, bucket=TEN)
    (f,) = result.findings()
    assert f.id == "infrastructure.queue_buildup" and f.severity == "high"
    assert f.evidence["latency_ratio"] == pytest.approx(3.0)
    assert f.evidence["latency_source"] == "metrics.latency_p99_ms (mean per bucket)"


def test_saturation_evidence_carries_the_queue(saturated):
    frame, _ = saturated
    metrics = _queue_metrics(rise=2.0)  # a queue series that does not move
    result = latency_vs_concurrency(make_case(requests=frame, metrics=metrics), BASELINE,
                                    INCIDENT)
    (f,) = result.findings()
    assert f.id == "infrastructure.capacity_saturation"
    queue = _bucket_queue(metrics)
    assert f.evidence["queue_depth_mean_baseline"] > 0
    assert f.evidence["queue_depth_mean_incident"] == pytest.approx(
        result.queue.loc[result.queue["window"] == "incident", "queue"].mean())
    assert queue.mean() == pytest.approx(8.0, rel=0.05)


def test_queue_needs_a_baseline():
    metrics = _queue_metrics()
    metrics = metrics[metrics["ts"] >= CUT]
    result = latency_vs_concurrency(make_case(requests=_requests(), metrics=metrics), BASELINE,
                                    INCIDENT, bucket=TEN)
    assert result.queue_buildup() is None
    assert any(g.check == f"{ID}.queue" for g in result.not_assessed)
