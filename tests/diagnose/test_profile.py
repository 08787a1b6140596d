"""The shared feature profile against numpy on the raw values of each window."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.diagnose.conftest import make_case
from toolkit.diagnose._case import case_view
from toolkit.diagnose._profile import LEVELS, feature_profile
from toolkit.types import Window

N = 2000
TS = pd.date_range("2026-03-01", periods=2 * N, freq="min", tz="UTC")
BASELINE = Window(TS[0].to_pydatetime(), TS[N].to_pydatetime())
INCIDENT = Window(TS[N].to_pydatetime(), (TS[-1] + pd.Timedelta("1min")).to_pydatetime())


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    # an epoch-like feature: mean 1e9, std 1; naive sums of squares lose every digit
    offset = 1e9 + rng.normal(0, 1, 2 * N)
    counts = rng.poisson(3, 2 * N).astype(float)
    counts[rng.random(2 * N) < 0.05] = -1.0
    counts[rng.random(2 * N) < 0.1] = np.nan
    counts[N:][rng.random(N) < 0.2] = np.nan
    channel = rng.choice(["web", "app", "unknown", " N/A ", "Default"], 2 * N,
                         p=[0.5, 0.3, 0.1, 0.05, 0.05]).astype(object)
    channel[rng.random(2 * N) < 0.05] = None
    return pd.DataFrame({"request_id": [f"r{i}" for i in range(2 * N)], "ts": TS,
                         "offset": offset, "counts": counts, "channel": channel,
                         "empty_later": np.r_[rng.normal(0, 1, N), np.full(N, np.nan)]})


@pytest.fixture(scope="module")
def profile(data):
    con = make_case(requests=data)
    return feature_profile(case_view(con), BASELINE, INCIDENT)


@pytest.mark.parametrize("window, rows", [("baseline", slice(0, N)), ("incident", slice(N, None))])
def test_numeric_stats_match_numpy(profile, data, window, rows):
    part = data.iloc[rows]
    for feature in ("offset", "counts"):
        values = part[feature].dropna().to_numpy()
        assert profile.stat(feature, window, "rows") == len(part)
        assert profile.stat(feature, window, "nonnull") == len(values)
        assert profile.stat(feature, window, "min") == values.min()
        assert profile.stat(feature, window, "max") == values.max()
        assert profile.stat(feature, window, "mean") == pytest.approx(values.mean(), rel=1e-12)
        assert profile.stat(feature, window, "std") == pytest.approx(values.std(), rel=1e-6)
        assert profile.stat(feature, window, "defaults") == np.isin(values, [0, -1]).sum()


def test_categorical_defaults_are_trimmed_case_insensitive_tokens(profile, data):
    part = data.iloc[:N]["channel"].dropna()
    tokens = part.str.strip().str.lower().isin(["unknown", "n/a", "default"])
    assert profile.stat("channel", "baseline", "defaults") == tokens.sum()
    assert profile.stat("channel", "baseline", "nonnull") == len(part)
    assert profile.stat("channel", "baseline", "distinct") == 5


def test_quantiles_match_numpy_when_the_window_is_not_sampled(profile, data):
    for window, rows in (("baseline", slice(0, N)), ("incident", slice(N, None))):
        for feature in ("offset", "counts"):
            values = data.iloc[rows][feature].dropna().to_numpy()
            np.testing.assert_allclose(profile.quantiles[(feature, window)],
                                       np.quantile(values, LEVELS), rtol=1e-12)


def test_a_feature_without_values_in_a_window(profile):
    assert ("empty_later", "incident") not in profile.quantiles
    assert ("empty_later", "baseline") in profile.quantiles
    assert profile.stat("empty_later", "incident", "nonnull") == 0
    assert np.isnan(profile.stat("empty_later", "incident", "mean"))
    assert np.isnan(profile.stat("missing_feature", "incident", "mean"))


def test_histogram_counts_every_value_once(profile, data):
    for feature in ("offset", "counts"):
        _, base, incident = profile.numeric_counts(feature)
        assert base.sum() == data.iloc[:N][feature].notna().sum()
        assert incident.sum() == data.iloc[N:][feature].notna().sum()


def test_incident_quantiles_are_queried_once_on_first_use(data):
    con = make_case(requests=data)
    fresh = feature_profile(case_view(con), BASELINE, INCIDENT)
    before = len(fresh.sql)
    assert ("offset", "baseline") in fresh.quantiles
    assert len(fresh.sql) == before  # the baseline's came with the bin edges
    assert fresh.quantiles.get(("offset", "incident")) is not None
    assert len(fresh.sql) == before + 1
    assert ("counts", "incident") in fresh.quantiles and len(fresh.sql) == before + 1
    assert set(fresh.quantiles) >= {("offset", "incident"), ("counts", "baseline")}


def test_rows_between_the_windows_far_outside_their_range_are_binned_too():
    # the histogram scan covers the whole span; the integer grid must leave room for the gap's
    # values (here 1e12 times the windows' range), and NaN / inf force the clamped form
    rng = np.random.default_rng(11)
    ts = pd.date_range("2026-03-01", periods=300, freq="min", tz="UTC")
    x = rng.normal(0, 1, 300)
    x[140:160] = 1e12
    y = rng.normal(0, 1, 300)
    y[150], y[200], y[210] = np.inf, -np.inf, 1e300
    frame = pd.DataFrame({"request_id": [f"q{i}" for i in range(300)], "ts": ts, "x": x,
                          "y": y})
    baseline = Window(ts[0].to_pydatetime(), ts[140].to_pydatetime())
    incident = Window(ts[160].to_pydatetime(), (ts[-1] + pd.Timedelta("1min")).to_pydatetime())
    profile = feature_profile(case_view(make_case(requests=frame)), baseline, incident)
    for feature in ("x", "y"):
        total = sum(profile.numeric_hist[feature].sum(axis=0))
        assert total == 300
        uppers, base, inc = profile.numeric_counts(feature)
        values = frame[feature].to_numpy()
        for counts, part in ((base, values[:140]), (inc, values[160:])):
            expected = np.bincount(np.searchsorted(uppers[:-1], part, side="left"),
                                   minlength=len(uppers))
            np.testing.assert_array_equal(counts, expected)
    assert np.isfinite(profile.edges["y"]).all()  # no extension bins out to infinity


def test_nan_values_are_binned_above_every_edge():
    # DuckDB's max is NaN then, which pandas shows like the NULL max of a window without
    # values; taken for one, the values were scaled unclamped and the cast to BIGINT failed
    rng = np.random.default_rng(13)
    ts = pd.date_range("2026-03-01", periods=300, freq="min", tz="UTC")
    frame = pd.DataFrame({"request_id": [f"n{i}" for i in range(300)], "ts": ts,
                          "x": rng.normal(0, 1, 300)})
    con = make_case(requests=frame)
    con.execute("UPDATE requests SET x = 'nan'::DOUBLE WHERE request_id IN ('n5', 'n200')")
    baseline = Window(ts[0].to_pydatetime(), ts[150].to_pydatetime())
    incident = Window(ts[150].to_pydatetime(), (ts[-1] + pd.Timedelta("1min")).to_pydatetime())
    profile = feature_profile(case_view(con), baseline, incident)
    _, base, inc = profile.numeric_counts("x")
    assert base.sum() == inc.sum() == 150
    assert base[-1] >= 1 and inc[-1] >= 1  # the NaN, in the overflow bin


def test_fine_edges_stay_within_seven_comparisons():
    # quantiles repeating a default (0) and both tails far outside the baseline's range: the
    # partner edge of each atom takes a place the repeated levels left free, so the engine's
    # binary search stays at 7 comparisons per value (at most 127 edges)
    rng = np.random.default_rng(17)
    base = rng.lognormal(0, 1, N)
    base[rng.random(N) < 0.08] = 0.0
    inc = np.r_[rng.lognormal(0, 1, N - 2), -50.0, 1e4]
    frame = pd.DataFrame({"request_id": [f"e{i}" for i in range(2 * N)], "ts": TS,
                          "x": np.r_[base, inc]})
    profile = feature_profile(case_view(make_case(requests=frame)), BASELINE, INCIDENT)
    edges, points = profile.edges["x"], profile.point_bins["x"]
    assert points.sum() >= 1  # 0 has a point bin of its own
    assert edges[0] < -30 and edges[-1] > 8e3  # tails out towards both extremes
    assert len(edges) <= 127
