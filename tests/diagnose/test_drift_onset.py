"""When feature drift started: a slow ramp dated at its start, a sparse log dated at all.

Hand-made cases whose true onset is known. PSI grows with the square of a small shift, so a
ramp fitted on the PSI timeline starts near the ramp's peak (the old onset was a day late on
a 40 h ramp), and buckets under 30 rows left the PSI timeline empty (no onset at all).
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from tests.diagnose.conftest import make_case
from toolkit.diagnose._case import case_view
from toolkit.diagnose._profile import feature_profile
from toolkit.diagnose.data.drift import _shift_timeline, feature_drift
from toolkit.types import Window

START = pd.Timestamp("2026-03-01", tz="UTC")
ONSET = START + pd.Timedelta(days=6, hours=12, minutes=20)
END = START + pd.Timedelta(days=10)


def _ramp_case(rows: int, ramp_hours: float, shift_sd: float, seed: int):
    rng = np.random.default_rng(seed)
    ts = START + pd.to_timedelta(np.sort(rng.uniform(0, (END - START).total_seconds(), rows)),
                                 unit="s")
    hours = ((ts - ONSET) / pd.Timedelta(hours=1)).to_numpy()
    level = shift_sd * np.clip(hours / ramp_hours, 0, 1) if ramp_hours > 0 else \
        shift_sd * (hours >= 0)
    frame = pd.DataFrame({"request_id": [f"r{i}" for i in range(rows)], "ts": ts,
                          "x": rng.normal(0, 1, rows) + level,
                          "noise": rng.normal(0, 1, rows)})
    return make_case(requests=frame)


def _onset_hours(result) -> float:
    (finding,) = [f for f in result.findings() if f.id == "data.feature_drift"]
    assert finding.onset is not None
    return (pd.Timestamp(finding.onset) - ONSET) / pd.Timedelta(hours=1)


@pytest.fixture(scope="module")
def ramp():
    return _ramp_case(rows=14_400, ramp_hours=40, shift_sd=1.5, seed=3)


def test_slow_ramp_is_dated_at_its_start_with_the_true_windows(ramp):
    result = feature_drift(ramp, (START, ONSET - pd.Timedelta(minutes=20)), (ONSET, END),
                           bucket=timedelta(hours=1))
    assert result.drifted == ["x"]
    assert abs(_onset_hours(result)) <= 1.0


def test_slow_ramp_is_dated_at_its_start_from_a_scan(ramp):
    # the window detector's scan: the first quarter against the rest
    quarter = START + (END - START) / 4
    result = feature_drift(ramp, (START, quarter), (quarter, END), bucket=timedelta(hours=1))
    # a 40 h ramp moves the mean CDF by 0.02 in its first two hours, below one bucket's noise
    assert abs(_onset_hours(result)) <= 3.0


def test_sparse_log_still_dates_a_step():
    # 300 rows over ten days: about four rows per 3 h bucket, none with the 30 the PSI
    # timeline needs; the step is still dated, to within its bucket
    con = _ramp_case(rows=300, ramp_hours=0, shift_sd=2.5, seed=5)
    quarter = START + (END - START) / 4
    result = feature_drift(con, (START, quarter), (quarter, END), bucket=timedelta(hours=3))
    assert result.timeline.empty
    assert abs(_onset_hours(result)) <= 3.0


def test_shift_timeline_is_the_mean_baseline_cdf_per_bucket():
    # hand calculation: baseline values 0..9 three times, then ten rows at 9; one row per
    # hourly bucket; under the baseline each value v has mid-CDF (v + 0.5) / 10
    ts = pd.date_range("2026-03-01", periods=40, freq="h", tz="UTC")
    x = np.r_[np.tile(np.arange(10.0), 3), np.full(10, 9.0)]
    con = make_case(requests=pd.DataFrame({"request_id": [f"r{i}" for i in range(40)],
                                           "ts": ts, "x": x}))
    profile = feature_profile(case_view(con), Window(ts[0], ts[30]),
                              Window(ts[30], ts[-1] + pd.Timedelta("1h")),
                              bucket=timedelta(hours=1))
    shift = _shift_timeline(profile, "x")
    assert shift["bucket_start"].tolist() == list(ts)
    assert shift["shift"].to_numpy() == pytest.approx((x + 0.5) / 10, abs=1e-12)
    assert shift["n"].tolist() == [1] * 40


def test_a_step_between_sparse_buckets_is_dated_where_the_data_first_show_it():
    """Daily batch runs (one hourly bucket with rows a day): a step between the third and the
    fourth run fits equally well anywhere in the empty day between them; the onset is the
    fourth run's bucket, where the change is first observed, not the fitted middle of the gap
    (the old form dated it in the gap, at the baseline's end)."""
    from datetime import timedelta

    from toolkit.diagnose._onset import change_start

    runs = pd.date_range("2026-03-01T02:00Z", periods=6, freq="D")
    timeline = pd.DataFrame({"bucket_start": runs, "x": [0.5, 0.5, 0.5, 0.9, 0.9, 0.9],
                             "n": 600})
    start, gradual = change_start(timeline, "x", width=timedelta(hours=1),
                                  after=pd.Timestamp("2026-03-03T12:00Z").to_pydatetime(),
                                  weights="n")
    assert not gradual
    assert pd.Timestamp(start) == pd.Timestamp("2026-03-04T02:00Z")
