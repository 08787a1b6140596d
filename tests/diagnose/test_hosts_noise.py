"""The hosts' timelines read by the window detector count only excesses beyond sampling noise.

In a sparse request log (1 in 50 kept) a host has a handful of requests per bucket, and one slow
request is a slow share of 10-20% against a fleet median of 0: the plain excess over the median
stepped for buckets on end in cases with no infrastructure fault at all (varied tuning
null_injection s2, concept_drift s4, calibration_collapse s3).
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tests.diagnose.conftest import make_case
from toolkit.diagnose.infra.hosts import ALPHA, host_excess, host_outliers

T0 = pd.Timestamp("2026-03-01T00:00Z")
B1, B2, B3 = T0, T0 + timedelta(hours=3), T0 + timedelta(hours=6)


def _timeline(rows):
    frame = pd.DataFrame(rows, columns=["bucket_start", "host", "requests", "slow"])
    return frame.assign(slow_share=frame.pop("slow") / frame["requests"])


def test_one_slow_request_among_few_is_noise():
    # bucket 1: a host's 1 slow request of 5 against 0 of 10 on the others: share 0.2 over a
    # median of 0, which the old signal reported as an excess of 0.2.
    # bucket 2: 8 of 10 slow on h1 against 0 of 20: a slow host.
    # bucket 3: 3 of 10 against 1 of 20: three times the others, but p = 0.10 by Fisher.
    tl = _timeline([(B1, "h1", 5, 1), (B1, "h2", 5, 0), (B1, "h3", 5, 0),
                    (B2, "h1", 10, 8), (B2, "h2", 10, 0), (B2, "h3", 10, 0),
                    (B3, "h1", 10, 3), (B3, "h2", 10, 1), (B3, "h3", 10, 0)])
    excess = host_excess(tl, "slow_share")
    np.testing.assert_allclose(excess, [0, 0, 0, 0.8, 0, 0, 0, 0, 0])
    # the independent test: scipy's one-sided Fisher exact test on the 2x2 table
    assert stats.fisher_exact([[1, 4], [0, 10]], alternative="greater")[1] > ALPHA
    assert stats.fisher_exact([[8, 2], [0, 20]], alternative="greater")[1] < ALPHA / 3
    assert stats.fisher_exact([[3, 7], [1, 19]], alternative="greater")[1] > ALPHA / 3


def test_excess_matches_fisher_row_by_row():
    rng = np.random.default_rng(4)
    rows = []
    for b in range(40):
        for h in range(4):
            n = int(rng.integers(1, 60))
            p = 0.6 if (h == 2 and b >= 20) else 0.02
            rows.append((T0 + timedelta(hours=3 * b), f"h{h}", n, int(rng.binomial(n, p))))
    tl = _timeline(rows)
    got = host_excess(tl, "slow_share")
    expected = []
    for _, r in tl.iterrows():  # the reference, row by row on a tiny frame
        same = tl[tl["bucket_start"] == r["bucket_start"]]
        k, n = round(r["slow_share"] * r["requests"]), r["requests"]
        other_k = round((same["slow_share"] * same["requests"]).sum()) - k
        other_n = same["requests"].sum() - n
        other = other_k / other_n
        p = stats.fisher_exact([[k, n - k], [other_k, other_n - other_k]],
                               alternative="greater")[1]
        share = k / n
        out = p < ALPHA / len(same) and share >= 2 * other and share - other >= 0.01
        expected.append(share - other if out else 0.0)
    np.testing.assert_allclose(got, expected, atol=1e-12)
    assert (got[:80] == 0).all() and (got[80:][tl["host"].iloc[80:] == "h2"] > 0).mean() >= 0.7


def test_missing_share_stays_missing_and_lone_host_is_not_compared():
    tl = _timeline([(B1, "h1", 10, 9), (B2, "h1", 10, 9), (B2, "h2", 10, 0)])
    tl.loc[2, "slow_share"] = np.nan
    excess = host_excess(tl, "slow_share")
    assert excess[0] == 0 and excess[1] == 0 and np.isnan(excess[2])


def _sparse(seed, fault=None):
    """Eight days of a sparse log: ~15 requests per host and 3-hour bucket on 4 hosts, 1% of
    requests slow (the baseline p99) anywhere; ``fault``: that host is slow on 60% of its
    requests from day 6."""
    rng = np.random.default_rng(seed)
    n = 8 * 8 * 60
    ts = T0 + pd.to_timedelta(np.sort(rng.uniform(0, 8 * 86400, n)), unit="s")
    host = np.array(["h0", "h1", "h2", "h3"])[rng.integers(0, 4, n)]
    slow = rng.random(n) < 0.01
    if fault is not None:
        slow |= (host == fault) & (ts >= T0 + timedelta(days=6)) & (rng.random(n) < 0.6)
    latency = np.where(slow, 900.0, 50.0 + rng.uniform(0, 20, n))
    return pd.DataFrame({"request_id": [f"r{i}" for i in range(n)], "ts": ts, "host": host,
                         "latency_ms": latency, "status": "ok"})


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sparse_healthy_fleet_gives_a_flat_signal(seed):
    frame = _sparse(seed)
    result = host_outliers(make_case(requests=frame), (T0, T0 + timedelta(days=2)),
                           (T0 + timedelta(days=2), T0 + timedelta(days=8)),
                           bucket=timedelta(hours=3))
    signal = result.signals().query("signal == 'hosts.slow_share_excess'")
    # the old median excess: one slow request in a host's ~15 made 0.05-0.2 in many buckets
    tl = result.timeline[result.timeline["requests"] >= 5]
    old = (tl["slow_share"] - tl.groupby("bucket_start")["slow_share"].transform("median")
           ).groupby(tl["bucket_start"]).max()
    assert (old > 0.05).sum() >= 5
    assert (signal["value"] == 0).all()


def test_sparse_faulty_host_still_steps():
    frame = _sparse(5, fault="h2")
    result = host_outliers(make_case(requests=frame), (T0, T0 + timedelta(days=2)),
                           (T0 + timedelta(days=2), T0 + timedelta(days=8)),
                           bucket=timedelta(hours=3))
    signal = result.signals().query("signal == 'hosts.slow_share_excess'").set_index(
        "bucket_start")["value"]
    after = signal[signal.index >= T0 + timedelta(days=6)]
    before = signal[signal.index < T0 + timedelta(days=6)]
    assert (before == 0).all()
    assert (after > 0.3).mean() >= 0.75  # ~9 of ~15 requests slow against ~1%
