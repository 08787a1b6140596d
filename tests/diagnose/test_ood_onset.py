"""model.ood_burst is dated by its own source (issue 22: a burst of out-of-range inputs from
one client version, with no onset, could not place the incident window; the detector then
opened it days away on an unrelated change of the whole traffic's OOD share)."""

from __future__ import annotations

from importlib import import_module

import numpy as np
import pandas as pd
import pytest

import toolkit as tk

ood = import_module("toolkit.diagnose.model.ood")


def _case(start_share: float, n: int = 12_000, noise_at: float | None = None, seed: int = 5):
    """Requests a minute apart; from ``start_share`` of the span on, 8% of requests come from
    a new client ``bot-9`` with inputs far outside the baseline. ``noise_at`` adds, from that
    share on, a small rise of OOD requests spread over every client (a diluting change)."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2026-03-01", periods=n, freq="min", tz="UTC")
    x, y = rng.normal(0, 1, (2, n))
    client = rng.choice(["app-1", "app-2", "web-3"], n).astype(object)
    k = np.arange(n)
    burst = (k >= int(start_share * n)) & (rng.uniform(size=n) < 0.08)
    x[burst], y[burst], client[burst] = 9.0, -9.0, "bot-9"
    if noise_at is not None:
        spread = (k >= int(noise_at * n)) & ~burst & (rng.uniform(size=n) < 0.004)
        x[spread], y[spread] = 6.0, -6.0
    con = tk.connect()
    tk.load(con, pd.DataFrame({"request_id": k, "ts": ts, "x": x, "y": y,
                               "client_version": client, "score": 0.97}), table="requests")
    return con, ts, burst


@pytest.mark.parametrize("start_share", [0.55, 0.8])
def test_a_burst_is_dated_at_its_first_requests(start_share):
    con, ts, burst = _case(start_share)
    half = len(ts) // 2
    r = ood.ood_bursts(con, (ts[0], ts[half]), (ts[half], ts[-1]))
    (f,) = r.findings()
    assert f.evidence["value"] == "bot-9"
    first = ts[np.flatnonzero(burst)[0]]
    # within one timeline bucket of the first burst request (not the window's start)
    bucket = pd.Timestamp(r.timeline["bucket_start"].iloc[1]) - pd.Timestamp(
        r.timeline["bucket_start"].iloc[0])
    assert f.onset is not None
    assert abs(pd.Timestamp(f.onset) - first) <= bucket, (f.onset, first, bucket)


def test_the_burst_is_dated_by_its_source_not_by_a_diluting_change_elsewhere():
    # the whole traffic's OOD share also rises at 60%, from every client; the burst is at 85%
    con, ts, burst = _case(0.85, noise_at=0.6)
    half = len(ts) // 2
    r = ood.ood_bursts(con, (ts[0], ts[half]), (ts[half], ts[-1]))
    (f,) = r.findings()
    first = ts[np.flatnonzero(burst)[0]]
    assert abs(pd.Timestamp(f.onset) - first) <= pd.Timedelta(hours=2), (f.onset, first)
    # the named source's own series: hand count of its OOD requests per bucket
    st = r.source_timeline
    named = st[(st["source"] == "client_version") & (st["value"] == "bot-9")]
    assert named["ood"].sum() == burst.sum()
