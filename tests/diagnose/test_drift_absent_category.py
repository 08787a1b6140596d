"""A categorical feature with no value in either window (all NULL there, logged elsewhere in
the case) leaves its own drift unmeasured and the other features' as they are. It crashed
``data.feature_drift`` (``Item wrong length``: the per-group category counts had no row when
no group held a value), in the focused slices of varied tuning schema_mismatch s1, where a
pipeline deploy turns a feature NULL (found by helper C29, stop 38)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

import toolkit as tk
from toolkit.diagnose._case import case_view
from toolkit.diagnose.data.drift import feature_drift
from toolkit.types import Window

T0 = datetime(2026, 3, 2, tzinfo=UTC)
BASELINE = Window(T0, T0 + timedelta(minutes=1000))
INCIDENT = Window(T0 + timedelta(minutes=1000), T0 + timedelta(minutes=2000))


def _requests(with_country: bool) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    n = 3000
    frame = pd.DataFrame({"request_id": [f"r{k}" for k in range(n)],
                          "ts": pd.date_range(T0, periods=n, freq="min"),
                          "amount": rng.lognormal(3, 1, n) * np.r_[np.ones(1500),
                                                                   np.full(1500, 1.5)],
                          "score": rng.uniform(size=n), "prediction": "0"})
    if with_country:  # values only after both windows
        frame["country"] = np.where(np.arange(n) >= 2500, rng.choice(["fr", "de"], n), None)
    return frame


def _drift(frame: pd.DataFrame) -> pd.DataFrame:
    con = tk.connect()
    assert tk.load(con, frame, table="requests").rows_rejected == 0
    return feature_drift(con, BASELINE, INCIDENT, case=case_view(con)).to_frame().set_index(
        "feature")


def test_a_category_absent_from_both_windows_is_unmeasured_and_the_rest_unchanged():
    both = _drift(_requests(with_country=True))
    country = both.loc["country"]
    assert (country["n_baseline"], country["n_incident"]) == (0, 0)
    assert np.isnan(country["psi"]) and not country["drifted"]
    # amount is measured exactly as in the same case without the country column
    alone = _drift(_requests(with_country=False))
    columns = ["n_baseline", "n_incident", "psi", "ks", "pvalue"]
    pd.testing.assert_series_equal(both.loc["amount", columns], alone.loc["amount", columns])
    assert both.loc["amount", "drifted"]  # the 1.5x rescale half way through is drift
