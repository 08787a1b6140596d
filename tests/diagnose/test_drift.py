"""Feature drift against independent implementations (hand PSI, scipy, Evidently)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tests.diagnose.conftest import make_case
from toolkit.diagnose import _stats as st
from toolkit.diagnose._profile import LEVELS
from toolkit.diagnose.data.drift import feature_drift
from toolkit.errors import InvalidParameterError

N = 3000
TS = pd.date_range("2026-03-01", periods=2 * N, freq="min", tz="UTC")
BASELINE = (TS[0], TS[N])
INCIDENT = (TS[N], TS[-1] + pd.Timedelta("1min"))


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(42)
    frame = pd.DataFrame({
        "request_id": [f"r{i}" for i in range(2 * N)],
        "ts": TS,
        "shifted": np.r_[rng.normal(0, 1, N), rng.normal(0.8, 1.2, N)],
        "stable": rng.gamma(2.0, 3.0, 2 * N),
        "heavy": np.r_[rng.lognormal(3, 1, N), rng.lognormal(3.3, 1, N)],
        "channel": np.r_[rng.choice(["web", "app", "api"], N, p=[0.5, 0.3, 0.2]),
                         rng.choice(["web", "app", "api", "sms"], N, p=[0.3, 0.3, 0.2, 0.2])],
        "tier": rng.choice(["gold", "silver"], 2 * N),
    })
    return frame


@pytest.fixture(scope="module")
def con(data):
    return make_case(requests=data)


def hand_psi(base: np.ndarray, inc: np.ndarray, bins: int = 10) -> float:
    """PSI by hand: baseline quantile edges (as the profile computes them), right-closed bins."""
    edges = np.quantile(base, np.linspace(0, 1, bins + 1)[1:-1])
    count_b = np.bincount(np.searchsorted(edges, base, side="left"), minlength=bins)
    count_i = np.bincount(np.searchsorted(edges, inc, side="left"), minlength=bins)
    e = np.maximum(count_b / count_b.sum(), 1e-4)
    a = np.maximum(count_i / count_i.sum(), 1e-4)
    return float(np.sum((a - e) * np.log(a / e)))


def test_psi_matches_a_hand_calculation(con, data):
    result = feature_drift(con, BASELINE, INCIDENT)
    table = result.table.set_index("feature")
    for feature in ("shifted", "stable", "heavy"):
        base, inc = data[feature][:N].to_numpy(), data[feature][N:].to_numpy()
        assert table.loc[feature, "psi"] == pytest.approx(hand_psi(base, inc), rel=1e-9)


def test_psi_hand_formula_on_tiny_counts():
    # E = (0.5, 0.5), A = (0.25, 0.75): PSI = -0.25 ln 0.5 + 0.25 ln 1.5
    expected = -0.25 * np.log(0.5) + 0.25 * np.log(1.5)
    assert st.psi(np.array([2, 2]), np.array([1, 3])) == pytest.approx(expected)
    # an empty bin is floored at 1e-4, not infinite
    assert st.psi(np.array([10, 0]), np.array([5, 5])) == pytest.approx(
        (0.5 - 1.0) * np.log(0.5) + (0.5 - 1e-4) * np.log(0.5 / 1e-4))


@pytest.mark.parametrize("exact_rows", [10**9, 0], ids=["exact", "grid"])
def test_ks_and_wasserstein_against_scipy(con, data, exact_rows):
    result = feature_drift(con, BASELINE, INCIDENT, exact_rows=exact_rows)
    table = result.table.set_index("feature")
    for feature in ("shifted", "stable", "heavy"):
        base, inc = data[feature][:N].to_numpy(), data[feature][N:].to_numpy()
        ks = stats.ks_2samp(base, inc)
        w1 = stats.wasserstein_distance(base, inc)
        row = table.loc[feature]
        if exact_rows:
            assert row["ks_exact"]
            assert row["ks"] == pytest.approx(ks.statistic, abs=1e-12)
            assert row["wasserstein_raw"] == pytest.approx(w1, rel=1e-9)
            assert row["pvalue"] == pytest.approx(stats.ks_2samp(base, inc, method="asymp").pvalue,
                                                  rel=1e-6, abs=1e-300)
        else:
            # the documented bound: D_edges <= D <= D_upper
            assert row["ks"] <= ks.statistic + 1e-12 <= row["ks_upper"] + 1e-12
            assert row["ks_upper"] - row["ks"] < 0.05
            assert row["wasserstein_raw"] == pytest.approx(w1, rel=0.05)
        assert row["wasserstein"] == pytest.approx(row["wasserstein_raw"] / base.std(), rel=1e-9)


def test_categorical_against_scipy(con, data):
    result = feature_drift(con, BASELINE, INCIDENT)
    row = result.table.set_index("feature").loc["channel"]
    base, inc = data["channel"][:N], data["channel"][N:]
    cats = sorted(set(base) | set(inc))
    table = np.vstack([base.value_counts().reindex(cats, fill_value=0),
                       inc.value_counts().reindex(cats, fill_value=0)])
    chi2 = stats.chi2_contingency(table, correction=False)
    assert row["chi2"] == pytest.approx(chi2.statistic)
    assert row["pvalue"] == pytest.approx(chi2.pvalue, abs=1e-300)
    from scipy.spatial.distance import jensenshannon

    assert row["js"] == pytest.approx(jensenshannon(table[0] / N, table[1] / N, base=2))
    assert row["unseen_share"] == pytest.approx((inc == "sms").mean())
    assert row["unseen"] == ["sms"]


def test_verdicts_control_for_many_features(con):
    result = feature_drift(con, BASELINE, INCIDENT)
    assert set(result.drifted) == {"shifted", "heavy", "channel"}
    table = result.table.set_index("feature")
    assert table.loc["stable", "severity"] == "none" and table.loc["tier", "severity"] == "none"
    adjusted = st.benjamini_hochberg(result.table["pvalue"].to_numpy())
    assert np.allclose(result.table["pvalue_adjusted"], adjusted, equal_nan=True)
    finding = result.findings()[0]
    assert finding.id == "data.feature_drift" and finding.severity == "high"
    assert set(finding.evidence["features"]) == {"shifted", "heavy", "channel"}


def test_timeline_and_onset(con):
    result = feature_drift(con, BASELINE, INCIDENT)
    shifted = result.timeline[result.timeline["feature"] == "shifted"]
    before = shifted[shifted["bucket_start"] < pd.Timestamp(TS[N])]["psi"]
    after = shifted[shifted["bucket_start"] >= pd.Timestamp(TS[N])]["psi"]
    assert after.median() > 3 * before.median()
    onset = result.onsets()["shifted"]
    assert abs(pd.Timestamp(onset) - TS[N]) <= pd.Timedelta(result.timeline["bucket_start"]
                                                           .diff().max())
    assert set(result.signals()["signal"]) == {"drift.max_psi"}


def test_evidently_recipe_agrees_with_evidently(con, data):
    from toolkit.diagnose._evidently import evidently_drift

    ours = feature_drift(con, BASELINE, INCIDENT, recipe="evidently").table.set_index("feature")
    theirs = evidently_drift(data[:N], data[N:], numerical=["shifted", "stable", "heavy"],
                             categorical=["channel", "tier"]).set_index("feature")
    for feature in theirs.index:
        assert ours.loc[feature, "evidently_drifted"] == theirs.loc[feature, "drifted"], feature
        assert ours.loc[feature, "evidently_statistic"] == pytest.approx(
            theirs.loc[feature, "statistic"], rel=1e-6), feature


@pytest.mark.parametrize("sixth_value", [False, True])
def test_evidently_recipe_tests_a_five_valued_numeric_like_evidently(sixth_value):
    """Evidently tests a numeric column with at most 5 values with Jensen-Shannon on the value
    shares, else with Wasserstein; a rare sixth value that shares a fine bin with another one
    must still count."""
    from toolkit.diagnose._evidently import evidently_drift

    rng = np.random.default_rng(3)
    few = np.r_[rng.choice(5, N, p=[0.4, 0.3, 0.15, 0.1, 0.05]),
                rng.choice(5, N, p=[0.2, 0.3, 0.2, 0.2, 0.1])].astype(float)
    if sixth_value:
        few[[7, N + 7]] = 2.5
    frame = pd.DataFrame({"request_id": [f"r{i}" for i in range(2 * N)], "ts": TS, "few": few})
    ours = feature_drift(make_case(requests=frame), BASELINE, INCIDENT,
                         recipe="evidently").table.set_index("feature").loc["few"]
    theirs = evidently_drift(frame[:N], frame[N:], numerical=["few"], categorical=[]).iloc[0]
    assert ours["evidently_test"] == ("wasserstein" if sixth_value else "jensenshannon")
    assert ("Wasserstein" if sixth_value else "Jensen-Shannon") in theirs["method"]
    assert ours["evidently_statistic"] == pytest.approx(theirs["statistic"], rel=1e-6)
    assert ours["evidently_drifted"] == theirs["drifted"]


def test_evidently_psi_recipe_matches_its_formula(con, data):
    result = feature_drift(con, BASELINE, INCIDENT, recipe="evidently")
    row = result.table.set_index("feature").loc["shifted"]
    base, inc = data["shifted"][:N].to_numpy(), data["shifted"][N:].to_numpy()
    edges = np.histogram_bin_edges(np.r_[base, inc], bins="sturges")
    # Evidently: np.histogram counts (left-closed bins, the last closed), as ours
    rb = np.histogram(base, edges)[0] / N
    ri = np.histogram(inc, edges)[0] / N
    expected = st.psi_evidently(rb * N, ri * N)
    assert row["psi_evidently"] == pytest.approx(expected, rel=1e-9)


def test_against_reference_table(data):
    reference = data[:N].drop(columns=["request_id", "ts"])
    con = make_case(requests=data, reference=reference)
    result = feature_drift(con, BASELINE, INCIDENT, against="reference")
    assert result.against == "reference"
    assert set(result.drifted) == {"shifted", "heavy", "channel"}


def test_missing_inputs_and_bad_parameters(data):
    con = make_case(requests=data[["request_id", "ts"]])
    result = feature_drift(con, BASELINE, INCIDENT)
    assert result.not_assessed and result.findings() == []
    with pytest.raises(InvalidParameterError, match="overlap"):
        feature_drift(con, BASELINE, (TS[10], TS[20]))
    with pytest.raises(InvalidParameterError, match="recipe"):
        feature_drift(con, BASELINE, INCIDENT, recipe="nannyml")


def test_plot_and_frame(con):
    import matplotlib

    matplotlib.use("Agg")
    result = feature_drift(con, BASELINE, INCIDENT)
    assert result.plot().get_title().startswith("Feature drift")
    assert result.plot(kind="bar").get_title().startswith("PSI")
    frame = result.to_frame()
    assert (frame["diagnostic"] == "data.drift").all()
    assert "<table" in result._repr_html_()


def test_levels_contain_the_deciles():
    assert all(round(d, 2) in LEVELS for d in np.linspace(0.1, 0.9, 9))


SHAPES = {
    # the incident's median 7x the baseline's and one outlier stretching the range 1000x: tail
    # bins spaced evenly out to the maximum put all the moved mass in the first one (the 1M
    # bench case: 5.9 against scipy's 2.6; here 14x too large)
    "heavy tail moved up, one outlier": lambda rng: (
        rng.lognormal(3, 1, N), np.r_[1e6, rng.lognormal(3 + np.log(7), 1, N - 1)]),
    "heavy tail moved up": lambda rng: (rng.lognormal(3, 1, N),
                                        rng.lognormal(3 + np.log(7), 1, N)),
    "unit change x1000": lambda rng: (rng.gamma(2, 3, N), 1000 * rng.gamma(2, 3, N)),
    "pareto tails": lambda rng: (rng.pareto(1.5, N), rng.pareto(1.2, N)),
    "shift down 3 sd": lambda rng: (rng.normal(0, 1, N), rng.normal(-3, 1, N)),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_grid_wasserstein_follows_tails_that_moved_out_of_range(shape):
    base, inc = SHAPES[shape](np.random.default_rng(5))
    frame = pd.DataFrame({"request_id": [f"h{i}" for i in range(2 * N)], "ts": TS,
                          "amount": np.r_[base, inc]})
    result = feature_drift(make_case(requests=frame), BASELINE, INCIDENT, exact_rows=0)
    row = result.table.set_index("feature").loc["amount"]
    assert not row["ks_exact"]
    assert row["wasserstein_raw"] == pytest.approx(stats.wasserstein_distance(base, inc),
                                                   rel=0.05)
    ks = stats.ks_2samp(base, inc).statistic
    assert row["ks"] <= ks + 1e-12 <= row["ks_upper"] + 1e-12


DISCRETE = {
    # few integers: one fine bin per integer, so the binned KS and Wasserstein are exact
    "counts moved up": lambda rng: (rng.poisson(2.0, N), rng.poisson(2.0, N) * 3 + 1),
    "ratings 1-5": lambda rng: (rng.choice(5, N, p=[.1, .2, .4, .2, .1]) + 1,
                                rng.choice(5, N, p=[.3, .3, .2, .1, .1]) + 1),
    # integers over a range too wide for a bin each: the repeated quantiles get point bins
    "wide counts": lambda rng: (rng.negative_binomial(1, 0.002, N),
                                rng.negative_binomial(1, 0.0015, N)),
}


@pytest.mark.parametrize("shape", list(DISCRETE))
def test_grid_ks_and_wasserstein_are_exact_on_discrete_features(shape):
    base, inc = (np.asarray(v, dtype=float) for v in DISCRETE[shape](np.random.default_rng(8)))
    frame = pd.DataFrame({"request_id": [f"d{i}" for i in range(2 * N)], "ts": TS,
                          "count": np.r_[base, inc]})
    result = feature_drift(make_case(requests=frame), BASELINE, INCIDENT, exact_rows=0)
    row = result.table.set_index("feature").loc["count"]
    assert not row["ks_exact"]
    ks = stats.ks_2samp(base, inc).statistic
    w1 = stats.wasserstein_distance(base, inc)
    if shape == "wide counts":
        assert row["ks"] <= ks + 1e-12 <= row["ks_upper"] + 1e-12
        assert row["wasserstein_raw"] == pytest.approx(w1, rel=0.05)
    else:
        assert row["ks"] == pytest.approx(ks, abs=1e-12)
        assert row["ks_upper"] == pytest.approx(ks, abs=1e-12)
        assert row["wasserstein_raw"] == pytest.approx(w1, rel=1e-9)


def test_a_zero_inflated_feature_gets_a_tight_ks_bound():
    rng = np.random.default_rng(9)
    # 40% and then 10% exact zeros (a default), the rest continuous
    base = np.where(rng.random(N) < 0.4, 0.0, rng.gamma(2, 3, N))
    inc = np.where(rng.random(N) < 0.1, 0.0, rng.gamma(2, 3, N))
    frame = pd.DataFrame({"request_id": [f"z{i}" for i in range(2 * N)], "ts": TS,
                          "amount": np.r_[base, inc]})
    result = feature_drift(make_case(requests=frame), BASELINE, INCIDENT, exact_rows=0)
    row = result.table.set_index("feature").loc["amount"]
    ks = stats.ks_2samp(base, inc).statistic
    assert row["ks"] <= ks + 1e-12 <= row["ks_upper"] + 1e-12
    # the zeros have a bin of their own: the bound is as tight as on a continuous feature
    # (without it the 30-point jump at zero widened it by 0.11)
    assert row["ks_upper"] - row["ks"] < 0.02
