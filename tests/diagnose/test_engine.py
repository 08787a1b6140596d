"""The engine helpers every diagnostic builds on: time buckets and deterministic samples."""

from __future__ import annotations

from datetime import timedelta

import ibis
import numpy as np
import pandas as pd
import pytest

from toolkit.diagnose._engine import (
    bucket_expr,
    bucket_window_key,
    decode_bucket_window,
    sample_by_time,
    window_label,
)
from toolkit.types import Window


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


@pytest.mark.parametrize("width", [timedelta(seconds=45), timedelta(hours=3)])
def test_packed_bucket_window_key_decodes_to_bucket_and_window(backend, width):
    rng = np.random.default_rng(4)
    seconds = rng.integers(-3 * 86400, 10 * 86400, 5000)  # both sides of the epoch
    table = ibis.memtable({"ts": pd.to_datetime(seconds, unit="s", utc=True)})
    day = pd.Timestamp("1970-01-01", tz="UTC")
    baseline = Window(day - pd.Timedelta("2D"), day + pd.Timedelta("1D"))
    incident = Window(day + pd.Timedelta("2D"), day + pd.Timedelta("5D"))
    got = backend.execute(table.mutate(
        key=bucket_window_key(table.ts, width, baseline, incident),
        bucket=bucket_expr(table.ts, width), window=window_label(table.ts, baseline, incident)))
    starts, names = decode_bucket_window(got["key"], width)
    assert (starts.to_numpy() == got["bucket"].to_numpy()).all()
    assert [n for n in names] == [None if pd.isna(w) else w for w in got["window"]]
    assert {"baseline", "incident", None} == set(names)


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


def test_time_hashed_sample_takes_rates_with_many_decimals(backend):
    # 100k of 999,600 rows: the literal 0.10004001600640256 once overflowed a DECIMAL(18)
    n = 50_000
    ts = pd.Timestamp("2026-03-01", tz="UTC") + pd.to_timedelta(np.arange(n), unit="s")
    table = ibis.memtable({"ts": ts, "w": np.where(np.arange(n) % 2, "a", "b")})
    rate = ibis.cases((table.w == "a", 100_000 / 999_600), else_=1 / 3)
    counts = backend.execute(sample_by_time(table, rate).group_by("w").count())
    share = counts.set_index("w")["CountStar()"] / (n / 2)
    assert share["a"] == pytest.approx(100_000 / 999_600, abs=0.02)
    assert share["b"] == pytest.approx(1 / 3, abs=0.02)
    assert backend.execute(sample_by_time(table, 0.123456789012345).count()) > 0


def _build_side(con, sql: str) -> list[str]:
    """Tables under the build (right) child of the plan's hash join."""
    import json

    def find(node):
        if "HASH_JOIN" in node.get("name", ""):
            return node
        return next((f for c in node.get("children", []) if (f := find(c))), None)

    def tables(node):
        table = node.get("extra_info", {}).get("Table")
        return ([table] if table else []) + [t for c in node.get("children", [])
                                             for t in tables(c)]

    plan = json.loads(con.execute("EXPLAIN (FORMAT json) " + sql).fetchall()[0][1])
    return tables(find(plan[0])["children"][1])


@pytest.mark.parametrize("previous", ["", "compressed_materialization"])
def test_joins_as_written_builds_on_the_right_and_restores_the_setting(previous):
    from toolkit.diagnose._engine import Recorder, quiet_ibis
    from toolkit.diagnose._engines import DuckDBEngine

    backend = ibis.duckdb.connect()
    con = backend.con
    con.execute("CREATE TABLE small AS SELECT range::VARCHAR AS id FROM range(100)")
    con.execute("CREATE TABLE big AS SELECT range::VARCHAR AS id, range AS v FROM range(100000)")
    if previous:
        con.execute(f"SET disabled_optimizers = '{previous}'")
    with quiet_ibis():  # ibis reads the schema with DuckDB 2's deprecated fetch_arrow_table
        small, big = backend.table("small"), backend.table("big")
    joined = small.inner_join(big, "id")
    expr = joined.aggregate(n=joined.count(), s=joined.v.sum())
    sql = ibis.to_sql(expr, dialect="duckdb")
    # DuckDB on its own builds on the smaller table, whichever side it is written on
    assert _build_side(con, sql) == ["memory.main.small"]
    record = Recorder(joins_as_written=True)
    with record._plan(DuckDBEngine(con)):
        assert _build_side(con, sql) == ["memory.main.big"]
    assert con.execute("SELECT current_setting('disabled_optimizers')").fetchone()[0] == previous
    # the plan changes, the answer does not
    assert record(expr).iloc[0].tolist() == Recorder()(expr).iloc[0].tolist() == [
        100, sum(range(100))]
    assert con.execute("SELECT current_setting('disabled_optimizers')").fetchone()[0] == previous


def test_time_hashed_sample_keeps_the_rows_an_independent_park_miller_hash_picks(backend):
    """The sample is an integer-only hash (two Park-Miller rounds over the epoch microseconds),
    so every engine keeps the same rows; here numpy computes it independently, pre-1970 times
    (negative epochs) included."""
    rng = np.random.default_rng(11)
    micros = np.concatenate([rng.integers(1_700_000_000_000_000, 1_800_000_000_000_000, 5_000),
                             rng.integers(-100_000_000_000_000, 0, 500)])
    ts = pd.to_datetime(micros, unit="us", utc=True)
    table = ibis.memtable({"ts": ts, "i": np.arange(len(micros))})
    kept = set(backend.execute(sample_by_time(table, 0.3).select("i"))["i"])
    m, a = 2**31 - 1, 48_271
    low, high = micros & m, (micros >> 31) & m
    first = ((low + 1) * a) % m
    hashed = (((first + high) % m + 1) * a) % m
    expected = set(np.flatnonzero(hashed / m < 0.3))
    assert kept == expected
    assert 0.25 < len(kept) / len(micros) < 0.35
