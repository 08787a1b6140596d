"""The engine helpers every diagnostic builds on: time buckets and deterministic samples."""

from __future__ import annotations

from datetime import timedelta

import ibis
import numpy as np
import pandas as pd
import pytest

from toolkit.diagnose._engine import bucket_expr, sample_by_time


@pytest.fixture(scope="module")
def backend():
    return ibis.duckdb.connect()


@pytest.mark.parametrize("width", [timedelta(seconds=45), timedelta(minutes=5),
                                   timedelta(hours=3), timedelta(days=1)])
def test_buckets_match_pandas_floor_on_the_epoch(backend, width):
    rng = np.random.default_rng(3)
    # both sides of the epoch: integer division must floor, not truncate
    seconds = rng.integers(-3 * 86400, 60 * 86400, 2000)
    ts = pd.to_datetime(seconds, unit="s", utc=True)
    table = ibis.memtable({"ts": ts})
    got = backend.execute(table.mutate(b=bucket_expr(table.ts, width)))
    expected = got["ts"].dt.floor(pd.Timedelta(width))
    assert (got["b"] == expected).all()


def test_time_hashed_sample_is_deterministic_and_keeps_its_share(backend):
    n = 200_000
    ts = pd.Timestamp("2026-03-01", tz="UTC") + pd.to_timedelta(np.arange(n), unit="s")
    window = np.where(np.arange(n) < n // 2, "baseline", "incident")
    table = ibis.memtable({"ts": ts, "w": window})
    rate = ibis.cases((table.w == "baseline", 0.1), else_=0.5)
    sampled = sample_by_time(table, rate)
    first = backend.execute(sampled.order_by("ts"))
    again = backend.execute(sampled.order_by("ts"))
    assert first["ts"].equals(again["ts"])
    share = first.groupby("w").size() / (n // 2)
    # binomial sd at 100k rows is under 0.002
    assert share["baseline"] == pytest.approx(0.1, abs=0.01)
    assert share["incident"] == pytest.approx(0.5, abs=0.01)
    assert backend.execute(sample_by_time(table, 1.0).count()) == n
