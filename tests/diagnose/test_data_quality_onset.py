"""When a feature started to arrive NULL or as a default value: hand-made cases with a known
onset. The old onset read the profile's timeline, which counts numeric defaults (0, -1) in no
bucket (no onset for a feature zeroed by a pipeline), and fitted a sparse log's buckets of a
few rows as if each were as good as any other (hours late)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from tests.diagnose.conftest import make_case
from toolkit.diagnose.data.data_quality import _by_rise, data_quality

START = pd.Timestamp("2026-03-01", tz="UTC")
ONSET = START + pd.Timedelta(days=6, hours=11, minutes=10)
END = START + pd.Timedelta(days=10)


def _case(rows: int, share: float, value: float | None, seed: int):
    rng = np.random.default_rng(seed)
    ts = START + pd.to_timedelta(np.sort(rng.uniform(0, (END - START).total_seconds(), rows)),
                                 unit="s")
    x = rng.lognormal(3, 0.5, rows)
    hit = (ts >= ONSET) & (rng.random(rows) < share)
    x = np.where(hit, np.nan if value is None else value, x)
    return make_case(requests=pd.DataFrame({
        "request_id": [f"r{i}" for i in range(rows)], "ts": ts, "distance_km": x,
        "other": rng.normal(0, 1, rows)}))


def _onset_minutes(result) -> float:
    (finding,) = [f for f in result.findings() if f.id == "data.null_rate"]
    assert finding.onset is not None
    return (pd.Timestamp(finding.onset) - ONSET) / pd.Timedelta(minutes=1)


def test_numeric_default_is_dated_on_raw_rows():
    # 40% of a numeric feature's values become 0.0 (a pipeline default), 20k rows
    con = _case(rows=20_000, share=0.4, value=0.0, seed=1)
    quarter = START + (END - START) / 4
    result = data_quality(con, (START, quarter), (quarter, END), bucket=timedelta(hours=1))
    # one row every ~43 s: the change point is within a few rows of the onset
    assert abs(_onset_minutes(result)) <= 10


@pytest.mark.parametrize("seed", [0, 5])
def test_sparse_null_injection_is_dated_within_its_bucket(seed):
    # 900 rows over ten days (about 11 per 3 h bucket), 35% NULL from the onset; the old
    # unweighted ramp on the timeline dated these 5.2 h and 5.0 h early
    con = _case(rows=900, share=0.35, value=None, seed=seed)
    quarter = START + (END - START) / 4
    result = data_quality(con, (START, quarter), (quarter, END), bucket=timedelta(hours=3))
    assert abs(_onset_minutes(result)) <= 180


def test_the_feature_that_rose_most_dates_the_finding():
    features = {"a": {"null_rate": [0.0, 0.1], "default_rate": [0.0, 0.0]},
                "b": {"null_rate": [0.0, 0.0], "default_rate": [0.1, 0.6]},
                "c": {"null_rate": [0.2, 0.3], "default_rate": [0.0, 0.05]}}
    assert _by_rise(features) == ["b", "a", "c"]
