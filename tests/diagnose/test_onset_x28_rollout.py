"""Onsets of changes rolled out over an hour or two, and of steps in a sparse log (issue 22, X28).

The single least-squares step of :func:`refine_onset` lands near the middle of a linear
ramp (varied tuning unit_change s9, s10, s11: rollouts of 120, 85 and 69 minutes dated 33-48
minutes late). :func:`rollout_began` fits a continuous ramp on per-bucket sums of the rows and
dates its start only when it beats the plain step by an F-test. ``fit_rollout``'s residual sums
of squares are checked against numpy's least squares on the rows themselves.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from tests.diagnose.conftest import make_case
from toolkit.diagnose._case import case_view
from toolkit.diagnose._engine import Recorder
from toolkit.diagnose._onset import fit_rollout, refine_onset, rollout_began
from toolkit.types import Window

T0 = pd.Timestamp("2026-03-01T00:00Z")
ONSET = T0 + pd.Timedelta(hours=24)


def _rows_rss(pos, x, regressor):
    """Residual sum of squares of x ~ a + c * regressor on the rows (numpy lstsq)."""
    design = np.column_stack([np.ones_like(pos), regressor])
    coef, *_ = np.linalg.lstsq(design, x, rcond=None)
    return float(((x - design @ coef) ** 2).sum()), float(coef[1])


def test_fit_rollout_matches_least_squares_on_the_rows():
    rng = np.random.default_rng(3)
    buckets = 10
    n = rng.integers(0, 4, buckets).astype(float)
    n[[0, 4, 9]] = [2, 3, 2]
    pos_rows = np.repeat(np.arange(buckets) + 0.5, n.astype(int))
    truth = np.clip((pos_rows - 3) / 4, 0, 1)
    x = (rng.random(len(pos_rows)) < 0.1 + 0.8 * truth).astype(float)
    idx = np.floor(pos_rows).astype(int)
    s1 = np.bincount(idx, x, buckets)
    keep = n > 0
    pos = np.arange(buckets)[keep] + 0.5
    before = 6.0
    s, e, rss, rss_step, rows = fit_rollout(pos, n[keep], s1[keep], s1[keep], before=before)
    assert rows == len(x)
    edges = np.arange(0.0, buckets + 1.0)
    steps = [_rows_rss(pos_rows, x, (pos_rows >= k).astype(float)) for k in edges]
    best_step = min(steps)
    assert rss_step == pytest.approx(best_step[0], abs=1e-9)
    ramps = {}
    for a, b in itertools.product(edges, edges):
        if b - a >= 2 and a <= before:
            r, c = _rows_rss(pos_rows, x, np.clip((pos_rows - a) / (b - a), 0, 1))
            if np.sign(c) == np.sign(best_step[1]):
                ramps[(a, b)] = r
    (a, b), r = min(ramps.items(), key=lambda kv: kv[1])
    assert rss == pytest.approx(r, abs=1e-9)
    assert ramps[(s, e)] == pytest.approx(r, abs=1e-9)


def _case(share: np.ndarray, ts: pd.DatetimeIndex, rng: np.random.Generator):
    hit = rng.random(len(ts)) < share
    con = make_case(requests=pd.DataFrame({
        "request_id": [f"r{i}" for i in range(len(ts))], "ts": ts,
        "value": np.where(hit, 1.0, 0.0)}))
    return case_view(con).table("requests")


def _onsets(share, ts, rng):
    requests = _case(share, ts, rng)
    record = Recorder()
    indicator = requests.value.cast("float64")
    limits = Window(T0.to_pydatetime(), (T0 + pd.Timedelta(hours=48)).to_pydatetime())
    step = refine_onset(record, requests, indicator, ONSET.to_pydatetime(),
                        around=pd.Timedelta(hours=6), limits=limits)
    return step, rollout_began(record, requests, indicator, step, limits=limits)


def _minutes(moment) -> float:
    return (pd.Timestamp(moment) - ONSET) / pd.Timedelta(minutes=1)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_two_hour_rollout_is_dated_at_its_start(seed):
    # two rows a minute for two days (varied tuning unit_change s10: about 1.6 logged rows a
    # minute); the new value reaches 0 -> 100% of rows over 120 minutes
    rng = np.random.default_rng(seed)
    ts = pd.date_range(T0, periods=48 * 120, freq="30s")
    minutes = (ts - ONSET) / pd.Timedelta(minutes=1)
    share = 0.02 + 0.96 * np.clip(np.asarray(minutes, float) / 120, 0, 1)
    step, began = _onsets(share, ts, rng)
    assert _minutes(step) >= 30                # the old onset: inside the ramp, late
    assert began is not None and abs(_minutes(began)) <= 15


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_clean_step_and_no_change_stay_as_they_are(seed):
    rng = np.random.default_rng(seed)
    ts = pd.date_range(T0, periods=48 * 60, freq="min")
    minutes = np.asarray((ts - ONSET) / pd.Timedelta(minutes=1), float)
    step, began = _onsets(np.where(minutes >= 0, 0.9, 0.05), ts, rng)
    assert abs(_minutes(step)) <= 2 and began is None
    _, began = _onsets(np.full(len(ts), 0.3), ts, rng)
    assert began is None


def test_midway_dates_a_sparse_step_between_its_last_old_and_first_new_row():
    # a step at ONSET in a log with a row every 40 minutes, the rows around it at -25 and +52
    # minutes (varied tuning unit_change s5): the first new row is 52 minutes late, the middle
    # of the gap 13.5 minutes
    offsets = np.r_[np.arange(-40 * 30, -25, 40), -25, 52, np.arange(52 + 40, 40 * 30, 40)]
    ts = pd.DatetimeIndex(ONSET + pd.to_timedelta(offsets, unit="min"))
    value = (offsets >= 0).astype(float)
    con = make_case(requests=pd.DataFrame({
        "request_id": [f"r{i}" for i in range(len(ts))], "ts": ts, "value": value}))
    requests = case_view(con).table("requests")
    indicator = requests.value.cast("float64")
    kw = dict(around=pd.Timedelta(hours=20), limits=None, min_strength=3.0)
    first = refine_onset(Recorder(), requests, indicator, ONSET.to_pydatetime(), **kw)
    middle = refine_onset(Recorder(), requests, indicator, ONSET.to_pydatetime(), midway=True,
                          **kw)
    assert _minutes(first) == pytest.approx(52)
    assert _minutes(middle) == pytest.approx((52 - 25) / 2)
