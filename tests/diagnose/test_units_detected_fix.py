"""A unit change fixed inside a detected window (issue 22): the window runs on past the fix, so
its rescaled rows are a minority between two stretches in the old unit (a pulse), or the
window opens at the change and the fix comes later (a step back). Varied tuning unit_change
s33 (x1000 for 47 h in a 9-day detected window, IoU 0.24) read covariate_shift: no whole-window
test matches a 22% share, and a single forward step leaves the fixed rows after it. The
rows between the two steps are tested against the baseline and the rest of the window with
the unchanged tests of test_units_step.py."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tests.diagnose.conftest import make_case
from toolkit.diagnose.data.units import locate_pulse, locate_step, unit_change

START = pd.Timestamp("2026-03-01", tz="UTC")
N, SPLIT = 6000, 3000          # 5-minute rows; baseline before SPLIT, incident after


def _findings(values: np.ndarray, rng: np.random.Generator):
    ts = pd.date_range(START, periods=N, freq="5min", tz="UTC")
    con = make_case(requests=pd.DataFrame({
        "request_id": [f"r{i}" for i in range(N)], "ts": ts, "value": values,
        "other": rng.normal(5, 1, N)}))
    return unit_change(con, (ts[0], ts[SPLIT]), (ts[SPLIT], ts[-1] + pd.Timedelta("5min")))\
        .findings()


def _at(row: int) -> pd.Timestamp:
    return START + pd.Timedelta(minutes=5 * row)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_unit_change_fixed_inside_the_window_is_found_and_dated(seed):
    # minutes -> seconds on rows 3600-4500 of the 3,000 incident rows (30%), then fixed: the
    # old code found nothing (the mixture needs half the rows rescaled, a forward step at
    # 3600 leaves the fixed rows after it)
    rng = np.random.default_rng(seed)
    values = rng.gamma(3.0, 2.0, N)
    values[3600:4500] *= 60
    (finding,) = _findings(values, rng)
    assert finding.evidence["feature"] == "value" and finding.evidence["matched"] == 60.0
    assert "between steps at" in finding.evidence["meaning"]
    assert abs(pd.Timestamp(finding.onset) - _at(3600)) <= pd.Timedelta("5min")


@pytest.mark.parametrize("seed", [4, 5])
def test_a_window_that_opens_in_the_new_unit_and_runs_past_the_fix(seed):
    # x100 on the window's first 1,000 rows (33%), then fixed: a step back
    rng = np.random.default_rng(seed)
    values = rng.lognormal(1.5, 0.8, N)
    values[SPLIT:4000] *= 100
    (finding,) = _findings(values, rng)
    assert finding.evidence["matched"] == 100.0
    assert "until a step back at" in finding.evidence["meaning"]
    assert abs(pd.Timestamp(finding.onset) - _at(SPLIT)) <= pd.Timedelta("5min")


def test_a_temporary_reshaping_is_not_a_unit_change():
    # a covariate shift that came and went: x10 in the median and wider, for 900 rows
    rng = np.random.default_rng(8)
    values = rng.lognormal(2, 0.5, N)
    values[3600:4500] = rng.lognormal(2 + math.log(10), 0.9, 900)
    assert _findings(values, rng) == []


def test_a_pulse_whose_outside_is_not_the_old_unit_is_not_matched():
    # the rows around the pulse were already x3 the baseline (no unit): between the pulse and
    # the rest of the window the factor is 20, no unit, so no finding
    rng = np.random.default_rng(9)
    values = rng.gamma(3.0, 2.0, N)
    values[SPLIT:] *= 3
    values[3600:4500] *= 20
    assert _findings(values, rng) == []


def test_a_temporary_rise_and_fall_in_scale_without_a_unit_is_not_matched():
    # the scale grows to x60 and back, gradually: no two constant levels
    rng = np.random.default_rng(10)
    growth = np.ones(N)
    half = (N - SPLIT) // 2
    growth[SPLIT:SPLIT + half] = np.exp(np.linspace(0, math.log(60), half))
    growth[SPLIT + half:] = np.exp(np.linspace(math.log(60), 0, N - SPLIT - half))
    assert _findings(rng.lognormal(2, 0.5, N) * growth, rng) == []


def test_locate_pulse_is_the_least_squares_fit_with_one_outer_level():
    medians = np.array([4.0, 5.0, 4.0, 6.0, 400.0, 520.0, 480.0, 450.0, 5.0, 6.0, 4.0])
    counts = np.full(medians.size, 10.0)
    y = np.log(medians)
    costs = {}
    for i in range(2, medians.size - 4):
        for j in range(i + 3, medians.size - 1):
            inside = np.zeros(medians.size, dtype=bool)
            inside[i:j] = True
            costs[(i, j)] = ((y[inside] - y[inside].mean()) ** 2).sum() + \
                ((y[~inside] - y[~inside].mean()) ** 2).sum()
    assert min(costs, key=costs.get) == (4, 8) == locate_pulse(medians, counts)
    # a single step is located by locate_step; the pulse then holds no step back to fit
    assert locate_step(medians[:8], counts[:8]) == 4
    # a flat feature, or too few buckets, has none
    assert locate_pulse(np.full(11, 5.0), counts) is None
    assert locate_pulse(medians[2:8], counts[2:8]) is None
