"""Traffic shape against pandas counts on the same requests."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from tests.diagnose.conftest import make_case
from toolkit.diagnose.case.traffic import traffic_shape


@pytest.fixture(scope="module")
def requests():
    rng = np.random.default_rng(3)
    start = pd.Timestamp("2026-03-01", tz="UTC")
    ts = start + pd.to_timedelta(np.sort(rng.uniform(0, 2 * 86400, 20_000)), unit="s")
    return pd.DataFrame({"request_id": [f"r{i}" for i in range(len(ts))], "ts": ts})


@pytest.mark.parametrize("width", [timedelta(hours=1), timedelta(minutes=15),
                                   timedelta(seconds=45)])
def test_timeline_counts_requests_per_epoch_aligned_bucket(requests, width):
    con = make_case(requests=requests)
    result = traffic_shape(con, ("2026-03-01", "2026-03-02"), ("2026-03-02", "2026-03-03"),
                           bucket=width)
    step = pd.Timedelta(width).value
    ns = requests["ts"].astype("datetime64[ns, UTC]").astype("int64")
    expected = pd.to_datetime((ns // step) * step, utc=True).value_counts().sort_index()
    got = result.timeline.set_index("bucket_start")["requests"]
    assert got.index.equals(expected.index.astype(got.index.dtype))
    assert (got.to_numpy() == expected.to_numpy()).all()


def test_window_table_matches_per_minute_counts(requests):
    con = make_case(requests=requests)
    result = traffic_shape(con, ("2026-03-01", "2026-03-02"), ("2026-03-02", "2026-03-03"))
    day = requests["ts"].dt.day
    for window, rows in (("baseline", requests[day == 1]), ("incident", requests[day == 2])):
        row = result.table.set_index("window").loc[window]
        busy = rows["ts"].dt.floor("min").value_counts().sort_values(ascending=False)
        assert row["requests"] == len(rows)
        assert row["empty_minute_share"] == pytest.approx(1 - len(busy) / 1440)
        assert row["top_decile_share"] == pytest.approx(busy.iloc[:144].sum() / len(rows))
