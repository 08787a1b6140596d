"""The three-bin PIT of a regression's prediction interval (below / inside / above) against a
hand computation: a biased release misses on one side."""

from __future__ import annotations

import importlib

import numpy as np
import pandas as pd
import pytest

from tests.diagnose.conftest import make_case

calibration = importlib.import_module("toolkit.diagnose.model.calibration")


def test_the_intervals_miss_on_the_side_of_the_bias():
    rng = np.random.default_rng(3)
    n = 4000
    ts = pd.date_range("2026-03-01", periods=n, freq="min", tz="UTC")
    y = np.round(rng.normal(50, 5, n), 2)
    bias = np.where(np.arange(n) >= n // 2, 3.0, 0.0)  # the incident predicts too high
    pred = np.round(y + rng.normal(0, 1, n) + bias, 2)
    lower, upper = pred - 1.645, pred + 1.645  # a central 90% interval
    con = make_case(
        requests=pd.DataFrame({"request_id": range(n), "ts": ts,
                               "prediction": [f"{v:.2f}" for v in pred],
                               "pred_lower": lower, "pred_upper": upper}),
        labels=pd.DataFrame({"request_id": range(n), "label": [f"{v:.2f}" for v in y]}))
    result = calibration.calibration(con, (ts[0], ts[n // 2]),
                                     (ts[n // 2], ts[-1] + pd.Timedelta("1min")))
    for window, part in (("baseline", slice(0, n // 2)), ("incident", slice(n // 2, n))):
        below = np.mean(y[part] < lower[part])
        above = np.mean(y[part] > upper[part])
        assert result.value(window, "below_share") == pytest.approx(below, abs=1e-12)
        assert result.value(window, "above_share") == pytest.approx(above, abs=1e-12)
        assert result.value(window, "below_share") + result.value(window, "coverage") + \
            result.value(window, "above_share") == pytest.approx(1.0)
    # the baseline misses on both sides alike; the biased incident under its intervals
    assert abs(result.value("baseline", "below_share") -
               result.value("baseline", "above_share")) < 0.03
    assert result.value("incident", "below_share") > 0.5 > result.value("incident",
                                                                        "above_share")
    # the same three bins over time
    t = result.timeline
    np.testing.assert_allclose(t["below_share"] + t["coverage"] + t["above_share"], 1.0)
