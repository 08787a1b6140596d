"""infra.kv_cache on hand-built engine metrics and requests, checked against numpy / scipy."""

from __future__ import annotations

import importlib
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tests.diagnose.conftest import make_case

mod = importlib.import_module("toolkit.diagnose.infra.kv_cache")
kv_cache_pressure = mod.kv_cache_pressure

T0 = pd.Timestamp("2026-03-01T00:00Z")
CUT = T0 + timedelta(hours=6)
END = CUT + timedelta(hours=6)
MINUTES = pd.date_range(T0, END, freq="min", inclusive="left")
HOSTS = ("gpu-0", "gpu-1")


def engine_metrics(*, pressure: bool, seed: int = 3, percent: bool = False,
                   kv_full: bool = True):
    """Per host and minute: KV usage, waiting requests and a cumulative preemption counter
    (restarted from 0 once on gpu-1 during the incident)."""
    rng = np.random.default_rng(seed)
    frames, increments = [], {}
    incident = MINUTES >= CUT
    for host in HOSTS:
        kv = rng.uniform(0.3, 0.8, len(MINUTES))
        waiting = rng.poisson(0.5, len(MINUTES)).astype(float)
        step = rng.poisson(0.05, len(MINUTES)).astype(float)
        if pressure and kv_full:
            kv = np.where(incident, rng.uniform(0.93, 1.0, len(MINUTES)), kv)
        if pressure:
            waiting = np.where(incident, rng.poisson(8, len(MINUTES)), waiting)
            step = np.where(incident, rng.poisson(2.0, len(MINUTES)), step)
        counter = np.cumsum(step) + 10.0
        if host == "gpu-1":  # engine restart: the counter starts again from 0
            reset = int(np.flatnonzero(incident)[60])
            counter[reset:] = np.cumsum(step[reset:])
        increments[host] = (step, counter)
        frames += [pd.DataFrame({"ts": MINUTES, "host": host, "name": "kv_cache_usage",
                                 "value": kv * (100 if percent else 1)}),
                   pd.DataFrame({"ts": MINUTES, "host": host, "name": "requests_waiting",
                                 "value": waiting}),
                   pd.DataFrame({"ts": MINUTES, "host": host, "name": "preemptions_total",
                                 "value": counter})]
    return pd.concat(frames, ignore_index=True), increments


def requests_following(metrics: pd.DataFrame, width=timedelta(minutes=5)):
    """Ten requests per minute whose TTFT is one value per time bucket, rising with the bucket's
    mean KV usage (so the engine's p90 per bucket is exact)."""
    kv = metrics[metrics.name == "kv_cache_usage"]
    scale = 100 if kv.value.max() > 1.5 else 1
    per_bucket = kv.groupby(kv.ts.dt.floor(width))["value"].mean() / scale
    ts = np.repeat(MINUTES, 10) + pd.to_timedelta(np.tile(np.arange(10) * 6, len(MINUTES)),
                                                  unit="s")
    ttft = 100.0 + 2000.0 * ts.floor(width).map(per_bucket).to_numpy() ** 4
    return pd.DataFrame({"request_id": np.arange(len(ts)).astype(str), "ts": ts,
                         "ttft_ms": ttft, "output_tokens": 50}), per_bucket


def test_pressure_numbers_against_pandas_and_scipy():
    metrics, increments = engine_metrics(pressure=True)
    requests, kv_bucket = requests_following(metrics)
    con = make_case(metrics=metrics, requests=requests)
    result = kv_cache_pressure(con, (T0, CUT), (CUT, END), bucket=timedelta(minutes=5))
    table = result.table.set_index("window")
    kv = metrics[metrics.name == "kv_cache_usage"]
    for name, part in (("baseline", kv[kv.ts < CUT]), ("incident", kv[kv.ts >= CUT])):
        assert table.loc[name, "kv_usage_mean"] == pytest.approx(part.value.mean())
        assert table.loc[name, "kv_usage_max"] == pytest.approx(part.value.max())
        assert table.loc[name, "kv_pinned_share"] == pytest.approx((part.value >= 0.95).mean())
    waiting = metrics[metrics.name == "requests_waiting"]
    assert table.loc["incident", "waiting_mean"] == pytest.approx(
        waiting[waiting.ts >= CUT].value.mean())
    # counter increases: the true per-minute steps (the first sample has none; the reset
    # counts the value after it, which is exactly that minute's step)
    for name, inside in (("baseline", MINUTES < CUT), ("incident", MINUTES >= CUT)):
        first = np.arange(len(MINUTES)) == 0
        expected = sum(step[inside & ~first].sum() for step, _ in increments.values())
        assert table.loc[name, "preemptions"] == pytest.approx(expected)
        assert table.loc[name, "preemptions_per_hour"] == pytest.approx(expected / 6)
    # Spearman of TTFT p90 on mean KV usage over the 5-minute buckets, as scipy computes it
    ttft = requests.groupby(requests.ts.dt.floor("5min"))["ttft_ms"].quantile(0.9)
    rho = stats.spearmanr(kv_bucket.loc[ttft.index], ttft).statistic
    assert result.rho("kv_usage_mean") == pytest.approx(rho, abs=1e-12)
    assert rho > 0.8
    [finding] = result.findings()
    assert finding.id == "infrastructure.kv_cache_pressure" and finding.severity == "high"
    ev = finding.evidence
    assert ev["signs"] == ["kv_pinned", "preemptions_up", "waiting_up", "ttft_up"]
    assert finding.statistic == pytest.approx(table.loc["incident", "kv_pinned_share"])
    assert ev["preemption_source"] == "metrics:preemptions_total"
    assert ev["waiting_source"] == "requests_waiting" and ev["latency_column"] == "ttft_ms"
    assert ev["corr_kv_ttft"] == pytest.approx(rho, abs=1e-12)
    assert abs(pd.Timestamp(finding.onset) - CUT) <= timedelta(minutes=5)


def test_queueing_with_room_in_the_cache_is_not_high():
    metrics, _ = engine_metrics(pressure=True, kv_full=False)
    requests = requests_following(metrics)[0].assign(ttft_ms=lambda d: np.where(
        d.ts >= CUT, 900.0, 100.0))
    [finding] = kv_cache_pressure(make_case(metrics=metrics, requests=requests), (T0, CUT),
                                  (CUT, END)).findings()
    assert finding.evidence["signs"] == ["preemptions_up", "waiting_up", "ttft_up"]
    assert finding.severity == "medium"  # three signs, but the KV cache was not full


def test_healthy_engine_has_no_finding():
    metrics, _ = engine_metrics(pressure=False)
    requests, _ = requests_following(metrics)
    result = kv_cache_pressure(make_case(metrics=metrics, requests=requests), (T0, CUT),
                               (CUT, END))
    assert result.findings() == []
    assert result.evidence()["n_signs"] == 0


def test_percent_usage_reads_as_fractions():
    metrics, _ = engine_metrics(pressure=True, percent=True)
    result = kv_cache_pressure(make_case(metrics=metrics), (T0, CUT), (CUT, END))
    kv = metrics[(metrics.name == "kv_cache_usage") & (metrics.ts >= CUT)]
    assert result.kv_scale == 100.0
    assert result.value("incident", "kv_pinned_share") == pytest.approx(
        (kv.value >= 95).mean())
    assert result.value("incident", "kv_usage_max") <= 1.0
    # without requests the relation to TTFT is not measured, and says so
    assert any(g.check == "infra.kv_cache.ttft" for g in result.not_assessed)


def test_preemptions_from_the_request_column_alone():
    rng = np.random.default_rng(5)
    n = 4_000
    ts = T0 + (END - T0) * np.arange(n) / n
    incident = ts >= CUT
    preemptions = np.where(incident, rng.binomial(2, 0.1, n), rng.binomial(1, 0.01, n))
    frame = pd.DataFrame({"request_id": np.arange(n).astype(str), "ts": pd.DatetimeIndex(ts),
                          "preemptions": preemptions, "ttft_ms": 100.0})
    result = kv_cache_pressure(make_case(requests=frame), (T0, CUT), (CUT, END))
    for name, part in (("baseline", frame[~incident]), ("incident", frame[incident])):
        assert result.value(name, "preempted_share") == pytest.approx(
            (part.preemptions > 0).mean())
        assert result.value(name, "preemptions") == part.preemptions.sum()
    [finding] = result.findings()
    assert finding.evidence["preemption_source"] == "requests.preemptions"
    assert finding.evidence["statistic_kind"] == "preemption_rate_ratio"
    assert finding.severity == "low"  # one sign: preemptions without KV, queue or TTFT
    assert {g.check for g in result.not_assessed} >= {"infra.kv_cache.usage",
                                                      "infra.kv_cache.waiting"}


def test_without_engine_signals_it_is_not_assessed():
    frame = pd.DataFrame({"request_id": ["a", "b"], "ts": [T0, CUT], "ttft_ms": [1.0, 2.0]})
    result = kv_cache_pressure(make_case(requests=frame), (T0, CUT), (CUT, END))
    assert result.table.empty and result.findings() == []
    assert "no kv_cache_usage or preemptions_total metric" in result.not_assessed[0].reason


def test_request_summaries_are_shared_with_token_latency(monkeypatch):
    """On one case view after infra.token_latency, infra.kv_cache reads its TTFT summaries
    instead of scanning the requests again (10M rows: two quantile scans less), with the same
    numbers as a view of its own; a summary of another bucket width is not taken for its own."""
    from toolkit.diagnose._case import case_view
    from toolkit.diagnose._engine import Recorder

    token_latency = importlib.import_module("toolkit.diagnose.infra.token_latency")
    metrics, _ = engine_metrics(pressure=True)
    requests, _ = requests_following(metrics)
    con = make_case(metrics=metrics, requests=requests)
    alone = kv_cache_pressure(con, (T0, CUT), (CUT, END), bucket=timedelta(minutes=5))
    case = case_view(con)
    token_latency.token_latency(con, (T0, CUT), (CUT, END), bucket=timedelta(minutes=10),
                                case=case)
    token_latency.token_latency(con, (T0, CUT), (CUT, END), bucket=timedelta(minutes=5),
                                case=case)
    calls = []
    original = Recorder.__call__
    monkeypatch.setattr(Recorder, "__call__",
                        lambda self, expr: calls.append(1) or original(self, expr))
    shared = kv_cache_pressure(con, (T0, CUT), (CUT, END), bucket=timedelta(minutes=5),
                               case=case)
    assert len(calls) == 2  # the metric names and cells: no requests scan
    pd.testing.assert_frame_equal(shared.table, alone.table)
    pd.testing.assert_frame_equal(shared.timeline, alone.timeline)
    # alone it runs its own TTFT p90 scans; after token latency it records the summaries' SQL
    assert sum("[0.9]" in s for s in alone.sql) == 2
    assert sum("[0.5, 0.9, 0.99]" in s for s in shared.sql) == 2
    assert len(shared.sql) == len(alone.sql)
    ttft = requests.groupby(requests.ts.dt.floor("5min"))["ttft_ms"].quantile(0.9)
    timeline = shared.timeline.set_index("bucket_start")["ttft_p90_ms"]
    assert np.allclose(timeline.loc[ttft.index].to_numpy(), ttft.to_numpy(), rtol=1e-12)
    table = shared.table.set_index("window")
    assert table.loc["incident", "ttft_p90_ms"] == pytest.approx(
        requests[requests.ts >= CUT]["ttft_ms"].quantile(0.9), rel=1e-12)
