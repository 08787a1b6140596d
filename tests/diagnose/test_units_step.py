"""A unit change on a window that opens long before the step (issue 22): a detected window at
IoU 0.4 holds more rows in the old unit than in the new one, and no whole-window test can
match. The step is located inside the window and the unchanged tests run on its two sides,
so the guards of test_units_noise.py still hold."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tests.diagnose.conftest import make_case
from toolkit.diagnose.data.units import MIN_BUCKET_VALUES, locate_step, unit_change

START = pd.Timestamp("2026-03-01", tz="UTC")
N, SPLIT = 6000, 3000          # 5-minute rows; baseline before SPLIT, incident after
STEP = 5040                    # the unit changes here: 960 of the 3,000 incident rows rescaled


def _case(values: np.ndarray, rng: np.random.Generator):
    ts = pd.date_range(START, periods=N, freq="5min", tz="UTC")
    con = make_case(requests=pd.DataFrame({
        "request_id": [f"r{i}" for i in range(N)], "ts": ts, "value": values,
        "other": rng.normal(5, 1, N)}))
    return con, (ts[0], ts[SPLIT]), (ts[SPLIT], ts[-1] + pd.Timedelta("5min"))


def _findings(values, rng):
    con, baseline, incident = _case(values, rng)
    return unit_change(con, baseline, incident).findings()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_step_late_in_a_widened_window_is_found_and_dated(seed):
    # minutes -> seconds on the last 32% of the window: the whole-window mixture needs half
    # the rows rescaled and the direct test a whole rescaling, so the old code found nothing
    rng = np.random.default_rng(seed)
    values = rng.gamma(3.0, 2.0, N)
    values[STEP:] *= 60
    (finding,) = _findings(values, rng)
    assert finding.evidence["feature"] == "value" and finding.evidence["matched"] == 60.0
    assert "after a step at" in finding.evidence["meaning"]
    step = START + pd.Timedelta(minutes=5 * STEP)
    assert abs(pd.Timestamp(finding.onset) - step) <= pd.Timedelta("5min")


def test_a_gradual_growth_to_a_unit_factor_is_not_a_step():
    # log-mean grows linearly to x60 over the incident: every split has rescaled-by-something
    # rows on both sides, and no known factor holds between them
    rng = np.random.default_rng(7)
    growth = np.ones(N)
    growth[SPLIT:] = np.exp(np.linspace(0, math.log(60), N - SPLIT))
    assert _findings(rng.lognormal(2, 0.5, N) * growth, rng) == []


def test_a_reshaped_step_is_not_a_unit_change():
    # a step in location and spread (a covariate shift) by roughly x10 in the median
    rng = np.random.default_rng(8)
    values = rng.lognormal(2, 0.5, N)
    values[STEP:] = rng.lognormal(2 + math.log(10), 0.9, N - STEP)
    assert _findings(values, rng) == []


def test_the_factor_must_hold_across_the_step_too():
    # the rows after the step are x60 the baseline, but the window's rows before it were
    # already x3 (not a unit): across the step the factor is 20, no unit, so no finding
    rng = np.random.default_rng(9)
    values = rng.gamma(3.0, 2.0, N)
    values[SPLIT:] *= 3
    values[STEP:] *= 20
    assert _findings(values, rng) == []


def test_locate_step_is_the_least_squares_split_of_the_log_medians():
    medians = np.array([4.0, 5.0, 4.0, 6.0, 5.0, 400.0, 520.0, 480.0, 450.0])
    counts = np.full(medians.size, 10.0)
    # by hand: the split with the smallest within-segment squared error of log(median)
    y = np.log(medians)
    costs = {j: ((y[:j] - y[:j].mean()) ** 2).sum() + ((y[j:] - y[j:].mean()) ** 2).sum()
             for j in range(2, medians.size - 1)}
    assert min(costs, key=costs.get) == 5 == locate_step(medians, counts)
    # sparse buckets are left out: the split index still refers to the original buckets
    sparse = counts.copy()
    sparse[[1, 6]] = MIN_BUCKET_VALUES - 1
    assert locate_step(medians, sparse) == 5
    # a flat feature, or too few buckets, has no step
    assert locate_step(np.full(9, 5.0), counts) is None
    assert locate_step(medians[3:7], counts[3:7]) is None
