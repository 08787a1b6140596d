"""The recipes of docs/recipes.md against independent implementations on the same arrays.

PSI against Evidently itself, ECE against a hand (netcal-style) computation, ROC and PR AUC
against scikit-learn when it is installed (a hand computation otherwise).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.diagnose.conftest import make_case
from toolkit.diagnose.drift import feature_drift

N = 3000
TS = pd.date_range("2026-03-01", periods=2 * N, freq="min", tz="UTC")
BASELINE = (TS[0], TS[N])
INCIDENT = (TS[N], TS[-1] + pd.Timedelta("1min"))


def _frame(**columns: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"request_id": [f"r{i}" for i in range(2 * N)], "ts": TS, **columns})


def _evidently_psi(frame: pd.DataFrame, features: list[str]) -> pd.Series:
    from toolkit.diagnose._evidently import evidently_drift

    theirs = evidently_drift(frame[:N], frame[N:], numerical=features, categorical=[],
                             method="psi")
    assert set(theirs["method"].str.lower()) == {"psi"}
    return theirs.set_index("feature")["statistic"]


def _fifteen_values(rng: np.random.Generator) -> np.ndarray:
    # 15 unevenly spaced values: Sturges' 13 equal-width bins over 0..40 put most of them in
    # one bin, where Evidently gives each value its own
    values = np.r_[np.arange(12) * 0.5, 10.0, 25.0, 40.0]
    shares = np.r_[np.full(12, 0.07), 0.06, 0.06, 0.04]
    # mass moved between neighbouring values, within one Sturges bin
    moved = np.r_[np.tile([0.10, 0.04], 6), 0.06, 0.06, 0.04]
    return np.r_[rng.choice(values, N, p=shares), rng.choice(values, N, p=moved)]


def test_psi_of_a_fifteen_valued_feature_is_evidentlys():
    """Evidently bins a numeric column with at most 20 distinct reference values per value (the
    toolkit used Sturges bins: 0.094 against 0.145 on a 15-valued feature)."""
    rng = np.random.default_rng(11)
    frame = _frame(x=_fifteen_values(rng), y=np.r_[rng.normal(0, 1, N),
                                                   rng.normal(0.3, 1.1, N)])
    ours = feature_drift(make_case(requests=frame), BASELINE, INCIDENT,
                         recipe="evidently").table.set_index("feature")["psi_evidently"]
    theirs = _evidently_psi(frame, ["x", "y"])
    for feature in ("x", "y"):  # 15 values, and continuous (Sturges bins)
        assert ours[feature] == pytest.approx(theirs[feature], rel=1e-9), feature
    # Sturges bins on the same values hide most of it: the per-value bins matter here
    edges = np.histogram_bin_edges(frame["x"], bins="sturges")
    from toolkit.diagnose._stats import psi_evidently

    sturges = psi_evidently(np.histogram(frame["x"][:N], edges)[0],
                            np.histogram(frame["x"][N:], edges)[0])
    assert sturges < theirs["x"] / 3


def test_per_value_psi_counts_incident_values_the_reference_never_had():
    """Values absent from the reference get a bin each (with Evidently's fill), however many."""
    rng = np.random.default_rng(12)
    base = rng.choice(np.arange(15.0), N)
    # a third of the incident is new: 5 repeated values and ~900 values seen once
    inc = rng.choice(np.arange(15.0), N)
    new = rng.uniform(size=N) < 0.3
    inc[new] = np.where(rng.uniform(size=new.sum()) < 0.5,
                        rng.choice([100.0, 101.0, 102.0, 103.0, 104.0], new.sum()),
                        rng.uniform(200, 300, new.sum()))
    frame = _frame(x=np.r_[base, inc])
    ours = feature_drift(make_case(requests=frame), BASELINE, INCIDENT,
                         recipe="evidently").table.set_index("feature").loc["x", "psi_evidently"]
    assert ours == pytest.approx(_evidently_psi(frame, ["x"])["x"], rel=1e-9)


def test_psi_at_the_twenty_value_limit_and_against_a_reference_table():
    rng = np.random.default_rng(13)
    twenty = rng.choice(np.arange(20.0), 2 * N)
    twenty[N:] = np.where(rng.uniform(size=N) < 0.2, 3.0, twenty[N:])
    twenty_one = rng.choice(np.arange(21.0) * 3, 2 * N)  # 21 values: Sturges bins
    twenty_one[N:] = np.where(rng.uniform(size=N) < 0.2, 30.0, twenty_one[N:])
    frame = _frame(twenty=twenty, twenty_one=twenty_one)
    theirs = _evidently_psi(frame, ["twenty", "twenty_one"])
    ours = feature_drift(make_case(requests=frame), BASELINE, INCIDENT,
                         recipe="evidently").table.set_index("feature")["psi_evidently"]
    # the reference table plays Evidently's reference
    reference = frame[:N].drop(columns=["request_id", "ts"])
    against = feature_drift(make_case(requests=frame, reference=reference), BASELINE, INCIDENT,
                            recipe="evidently", against="reference").table.set_index("feature")
    for feature in ("twenty", "twenty_one"):
        assert ours[feature] == pytest.approx(theirs[feature], rel=1e-9), feature
        assert against.loc[feature, "psi_evidently"] == pytest.approx(theirs[feature],
                                                                      rel=1e-9), feature


def test_sturges_bins_are_left_closed_as_numpys():
    """An integer feature over more than 20 values has values on the Sturges edges: numpy puts
    them in the bin above (the last bin is closed)."""
    rng = np.random.default_rng(14)
    # 0..48 pooled over 6000 rows: 14 bins of width 48/14 -- and 0..24 even: edges at 24, 48
    x = np.r_[rng.integers(0, 49, N), rng.integers(0, 49, N) // 2 * 2].astype(float)
    frame = _frame(x=x)
    edges = np.histogram_bin_edges(x, bins="sturges")
    assert np.isin(edges[1:-1], x).any()  # some values sit exactly on an inner edge
    ours = feature_drift(make_case(requests=frame), BASELINE, INCIDENT,
                         recipe="evidently").table.set_index("feature").loc["x", "psi_evidently"]
    assert ours == pytest.approx(_evidently_psi(frame, ["x"])["x"], rel=1e-9)
