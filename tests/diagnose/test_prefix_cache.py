"""integration.prefix_cache on hand-built cases: shares from cached_tokens, counters and
prefix hashes, checked against pandas / plain-Python recomputations on the same rows."""

from __future__ import annotations

import importlib
import json
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

import toolkit as tk
from toolkit.errors import InvalidParameterError

pc = importlib.import_module("toolkit.diagnose.integration.prefix_cache")

T0 = pd.Timestamp("2026-03-01", tz="UTC")
BASELINE = (T0, T0 + pd.Timedelta("5h"))
INCIDENT = (T0 + pd.Timedelta("5h"), T0 + pd.Timedelta("10h"))


def _case(tmp_path, **tables: pd.DataFrame):
    con = tk.connect(tmp_path / "case.duckdb")
    for name, table in tables.items():
        report = tk.load(con, table, table=name)
        assert report.rows_rejected == 0
    return con


def _requests(n: int = 600, *, regression: bool, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = T0 + pd.to_timedelta(np.sort(rng.uniform(0, 10 * 3600, n)), unit="s")
    input_tokens = rng.integers(1000, 2000, n)
    after = ts >= T0 + pd.Timedelta("5h30min")
    client = np.where(after & regression, "c2", "c1")
    share = np.where(client == "c2", rng.uniform(0.0, 0.1, n), rng.uniform(0.6, 0.9, n))
    cached = (input_tokens * share).astype(int)
    ttft = 50 + 0.2 * (input_tokens - cached) + rng.normal(0, 5, n)
    return pd.DataFrame({"request_id": [f"r{k}" for k in range(n)], "ts": ts,
                         "input_tokens": input_tokens, "cached_tokens": cached,
                         "ttft_ms": ttft, "output_tokens": rng.integers(100, 300, n),
                         "client_version": client})


def _window(frame: pd.DataFrame, window) -> pd.DataFrame:
    return frame[(frame["ts"] >= window[0]) & (frame["ts"] < window[1])]


def test_cached_token_share_equals_pandas_and_drop_fires_after_client_deploy(tmp_path):
    frame = _requests(regression=True)
    events = pd.DataFrame({"ts": [T0 + pd.Timedelta("5h30min"), T0 + pd.Timedelta("9h30min")],
                           "kind": ["deploy", "deploy"], "artifact": ["client", "service"],
                           "version": ["c2", "s2"]})
    con = _case(tmp_path, requests=frame, events=events)
    r = pc.prefix_cache(con, BASELINE, INCIDENT, bucket=timedelta(minutes=30))
    assert r.source == "cached_tokens"
    b, i = _window(frame, BASELINE), _window(frame, INCIDENT)
    assert r.value("baseline", "share") == pytest.approx(
        b["cached_tokens"].sum() / b["input_tokens"].sum(), rel=1e-12)
    assert r.value("incident", "share") == pytest.approx(
        i["cached_tokens"].sum() / i["input_tokens"].sum(), rel=1e-12)
    c2 = i[i["client_version"] == "c2"]
    got = r.by_version.set_index("version").loc["c2"]
    assert got["share"] == pytest.approx(c2["cached_tokens"].sum() / c2["input_tokens"].sum())
    [f] = r.findings()
    assert f.id == "integration.prefix_cache_drop" and f.severity == "high"
    e = f.evidence
    assert e["worst_version"]["version"] == "c2" and e["worst_version"]["column"] == \
        "client_version" and e["worst_version"]["new"] is True
    assert e["new_versions"] == {"client_version": ["c2"]}
    assert [ev["artifact"] for ev in e["events"]] == ["client", "service"]
    assert [ev["version"] for ev in e["events_near_onset"]] == ["c2"]
    assert e["ttft_ratio"] == pytest.approx(i["ttft_ms"].mean() / b["ttft_ms"].mean())
    assert e["ttft_ratio"] > 1.5 and abs(e["output_ratio"] - 1) < 0.1
    uncached = (frame["input_tokens"] - frame["cached_tokens"])
    assert e["uncached_ratio"] == pytest.approx(
        uncached[i.index].mean() / uncached[b.index].mean())
    # dated at the client deploy (30-minute buckets)
    assert abs(f.onset - (T0 + pd.Timedelta("5h30min"))) <= timedelta(minutes=30)
    # the timeline: 30-minute shares as pandas computes them
    frame["bucket"] = frame["ts"].dt.floor("30min")
    sums = frame.groupby("bucket")[["cached_tokens", "input_tokens"]].sum()
    t = r.timeline.set_index("bucket_start")
    assert np.allclose(t["hits"], sums["cached_tokens"]) and np.allclose(
        t["queries"], sums["input_tokens"])


def test_healthy_cache_has_no_finding(tmp_path):
    con = _case(tmp_path, requests=_requests(regression=False))
    r = pc.prefix_cache(con, BASELINE, INCIDENT)
    assert r.findings() == [] and 0.6 < r.value("incident", "share") < 0.9


def _counters(drop: bool) -> tuple[pd.DataFrame, dict[str, float]]:
    """Cumulative counters on two hosts, one minute apart, with a reset on host b at 3h; the
    expected per-window hits / queries from a plain-Python pass."""
    rows, expected = [], {"baseline": [0.0, 0.0], "incident": [0.0, 0.0]}
    for host, reset in (("a", None), ("b", 180)):
        hits = queries = 0.0
        previous = None
        for minute in range(600):
            rate = 0.2 if drop and minute >= 330 else 0.7
            q = 1000.0 + 10 * (minute % 7)
            if minute == reset:
                hits = queries = 0.0
            hits += q * rate
            queries += q
            ts = T0 + pd.Timedelta(minutes=minute)
            rows += [(ts, host, pc.HITS, hits), (ts, host, pc.QUERIES, queries)]
            if previous is not None:
                window = "baseline" if ts < BASELINE[1] else "incident"
                dh = hits - previous[0] if hits >= previous[0] else hits
                dq = queries - previous[1] if queries >= previous[1] else queries
                expected[window][0] += dh
                expected[window][1] += dq
            previous = (hits, queries)
    frame = pd.DataFrame(rows, columns=["ts", "host", "name", "value"])
    return frame, {w: h / q for w, (h, q) in expected.items()}


def test_counter_increases_with_resets_give_the_share(tmp_path):
    metrics, expected = _counters(drop=True)
    con = _case(tmp_path, metrics=metrics)
    r = pc.prefix_cache(con, BASELINE, INCIDENT)
    assert r.source == "counters"
    assert r.value("baseline", "share") == pytest.approx(expected["baseline"], rel=1e-12)
    assert r.value("incident", "share") == pytest.approx(expected["incident"], rel=1e-12)
    assert r.value("baseline", "share") == pytest.approx(0.7, rel=1e-9)
    [f] = r.findings()
    assert f.evidence["source"] == "counters" and np.isnan(f.evidence["ttft_ratio"])
    assert f.evidence["events_near_onset"] == []
    assert abs(f.onset - (T0 + pd.Timedelta("5h30min"))) <= timedelta(minutes=15)


def test_counters_without_drop_have_no_finding(tmp_path):
    metrics, expected = _counters(drop=False)
    r = pc.prefix_cache(_case(tmp_path, metrics=metrics), BASELINE, INCIDENT)
    assert r.findings() == [] and r.value("incident", "share") == pytest.approx(0.7)


def _hashed(seed: int, *, break_at: int | None) -> pd.DataFrame:
    """Requests whose block hashes share a system-prompt prefix [0, 1, 2] and a few
    conversation prefixes; from ``break_at`` on the first block changes every request (a
    timestamp at the top of the system prompt), so nothing is reused any more."""
    rng = np.random.default_rng(seed)
    n = 500
    ts = T0 + pd.to_timedelta(np.sort(rng.uniform(0, 10 * 3600, n)), unit="s")
    lists, fresh = [], 10_000
    for k in range(n):
        head = [0, 1, 2] if break_at is None or k < break_at else [fresh, fresh + 1, fresh + 2]
        fresh += 3
        conversation = [100 + 10 * int(rng.integers(0, 5)) + j for j in range(3)]
        tail = list(range(fresh, fresh + int(rng.integers(1, 4))))
        fresh += 4
        lists.append(head + conversation + tail if head[0] == 0 else head + tail)
    return pd.DataFrame({"request_id": [f"r{k}" for k in range(n)], "ts": ts,
                         "input_tokens": [512 * len(h) for h in lists],
                         "prefix_hashes": [json.dumps(h) for h in lists]})


def _reuse_by_window(frame: pd.DataFrame) -> dict[str, float]:
    seen, counts = set(), {"baseline": [0, 0], "incident": [0, 0]}
    for ts, hashes in zip(frame["ts"], frame["prefix_hashes"], strict=True):
        window = "baseline" if ts < BASELINE[1] else "incident"
        for h in json.loads(hashes):
            counts[window][0] += h in seen
            counts[window][1] += 1
            seen.add(h)
    return {w: hits / total for w, (hits, total) in counts.items()}


def test_reuse_share_estimated_from_prefix_hashes(tmp_path):
    frame = _hashed(4, break_at=260)
    con = _case(tmp_path, requests=frame)
    r = pc.prefix_cache(con, BASELINE, INCIDENT)
    assert r.source == "prefix_hashes"
    expected = _reuse_by_window(frame)
    assert r.value("baseline", "share") == pytest.approx(expected["baseline"], rel=1e-12)
    assert r.value("incident", "share") == pytest.approx(expected["incident"], rel=1e-12)
    [f] = r.findings()
    assert f.evidence["estimated"] is True and f.evidence["source"] == "prefix_hashes"
    healthy = _hashed(4, break_at=None)
    (tmp_path / "healthy").mkdir()
    r = pc.prefix_cache(_case(tmp_path / "healthy", requests=healthy), BASELINE, INCIDENT)
    assert r.findings() == []
    assert r.value("incident", "share") == pytest.approx(
        _reuse_by_window(healthy)["incident"], rel=1e-12)


def test_without_any_source_not_assessed(tmp_path):
    ts = T0 + pd.to_timedelta(np.arange(100) * 360, unit="s")
    con = _case(tmp_path, requests=pd.DataFrame({"request_id": range(100), "ts": ts,
                                                 "input_tokens": 100}))
    r = pc.prefix_cache(con, BASELINE, INCIDENT)
    assert r.table.empty and r.findings() == []
    assert "cached_tokens" in r.not_assessed[0].reason
    forced = pc.prefix_cache(con, BASELINE, INCIDENT, source="counters")
    assert "no counters" in forced.not_assessed[0].reason
    with pytest.raises(InvalidParameterError, match="source must be one of"):
        pc.prefix_cache(con, BASELINE, INCIDENT, source="guess")
