"""A unit change's onset in a heavy-tailed feature (issue 22, X28).

The rows after a unit change were found as values beyond the baseline's top quantile; in a
heavy-tailed feature many rescaled values stay below it, and in a sparse log the first ones
that pass come tens of minutes after the change (varied tuning unit_change s7: 42 minutes late,
a lognormal-like ``mins_since_prev_txn`` x60). The cut is now the geometric middle of the
baseline's median and its rescaled value, which a rescaled value passes unless it was far
below the median.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tests.diagnose.conftest import make_case
from toolkit.diagnose.data.units import unit_change

START = pd.Timestamp("2026-03-01", tz="UTC")
N, SPLIT, STEP = 6000, 3000, 3600  # 5-minute rows; the unit changes at row STEP


def test_small_rescaled_values_date_a_heavy_tailed_unit_change():
    rng = np.random.default_rng(5)
    values = rng.lognormal(2.0, 1.5, N)
    median = float(np.median(values[:SPLIT]))
    # the first six rows after the change were small values (a third of the median): x60
    # they are 20x the median, below the baseline's top quantile (about 30x for this spread)
    values[STEP:STEP + 6] = median / 3
    values[STEP:] *= 60
    ts = pd.date_range(START, periods=N, freq="5min", tz="UTC")
    con = make_case(requests=pd.DataFrame({
        "request_id": [f"r{i}" for i in range(N)], "ts": ts, "value": values,
        "other": rng.normal(5, 1, N)}))
    (finding,) = unit_change(con, (ts[0], ts[SPLIT]), (ts[SPLIT], ts[-1] + pd.Timedelta("5min"))
                             ).findings()
    assert finding.evidence["matched"] == 60.0
    # the change lies between row STEP - 1 and row STEP: their middle, 2.5 minutes before
    assert abs(pd.Timestamp(finding.onset) - ts[STEP]) <= pd.Timedelta("5min")
