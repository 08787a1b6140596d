"""Data quality, unit change, permutation, OOD bursts and output shift on hand-built cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.diagnose.conftest import make_case
from toolkit.diagnose.data.data_quality import data_quality
from toolkit.diagnose.data.permutation import feature_permutation
from toolkit.diagnose.data.units import UNIT_FACTORS, match_factor, scale_factor, unit_change
from toolkit.diagnose.model.ood import ood_bursts
from toolkit.diagnose.model.prediction_shift import prediction_shift

N = 4000
TS = pd.date_range("2026-03-01", periods=2 * N, freq="min", tz="UTC")
BASELINE = (TS[0], TS[N])
INCIDENT = (TS[N], TS[-1] + pd.Timedelta("1min"))


def healthy(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    hour = TS.hour.to_numpy()
    return pd.DataFrame({
        "request_id": [f"r{i}" for i in range(2 * N)], "ts": TS,
        # diurnal seasonality in one feature: a healthy pattern, not a data problem
        "amount": rng.lognormal(3 + 0.2 * np.sin(hour / 24 * 2 * np.pi), 0.6),
        "distance_km": rng.gamma(2.0, 5.0, 2 * N),
        "age_days": rng.integers(1, 2000, 2 * N).astype(float),
        "country": rng.choice(["US", "DE", "FR", "BR"], 2 * N),
        "client_version": rng.choice(["1.4", "1.5", "2.0"], 2 * N),
        "endpoint": "score",
        "prediction": rng.choice(["0", "1"], 2 * N, p=[0.7, 0.3]),
        "score": rng.uniform(0.5, 1.0, 2 * N),
    })


@pytest.fixture(scope="module")
def healthy_con():
    return make_case(requests=healthy())


def test_healthy_case_raises_no_high_finding(healthy_con):
    for fn in (data_quality, unit_change, feature_permutation, ood_bursts, prediction_shift):
        result = fn(healthy_con, BASELINE, INCIDENT)
        assert not [f for f in result.findings() if f.severity == "high"], (fn.__name__,
                                                                           result.findings())


def test_null_and_default_rates_against_pandas():
    frame = healthy(1)
    inc = frame.index >= N
    frame.loc[inc & (frame.index % 4 == 0), "distance_km"] = np.nan
    frame.loc[inc & (frame.index % 5 == 0), "age_days"] = 0.0
    frame.loc[inc & (frame.index % 10 == 0), "country"] = "unknown"
    con = make_case(requests=frame)
    result = data_quality(con, BASELINE, INCIDENT)
    table = result.table.set_index("feature")
    for feature in ("distance_km", "age_days", "country"):
        for window, part in (("baseline", frame[~inc]), ("incident", frame[inc])):
            values = part[feature]
            assert table.loc[feature, f"null_rate_{window}"] == pytest.approx(values.isna().mean())
    assert table.loc["age_days", "default_rate_incident"] == pytest.approx(
        (frame.loc[inc, "age_days"] == 0).mean())
    assert table.loc["country", "default_rate_incident"] == pytest.approx(
        (frame.loc[inc, "country"] == "unknown").mean())
    finding = next(f for f in result.findings() if f.id == "data.null_rate")
    assert finding.severity == "high"
    assert set(finding.evidence["features"]) == {"distance_km", "age_days", "country"}
    assert abs(pd.Timestamp(finding.onset) - TS[N]) <= pd.Timedelta("1h")


def test_schema_change_and_out_of_range():
    frame = healthy(2)
    inc = frame.index >= N
    frame.loc[inc, "distance_km"] = np.nan          # feature went missing
    frame["session_s"] = np.where(inc, 30.0, np.nan)  # a new feature appeared
    frame.loc[inc, "amount"] = frame.loc[inc, "amount"] + 500  # out of the baseline's range
    frame["error_type"] = np.where(inc & (frame.index % 50 == 0), "validation_error", None)
    con = make_case(requests=frame)
    result = data_quality(con, BASELINE, INCIDENT)
    ids = {f.id: f for f in result.findings()}
    assert ids["data.schema_change"].evidence["missing"] == ["distance_km"]
    assert ids["data.schema_change"].evidence["new"] == ["session_s"]
    assert ids["data.schema_change"].evidence["validation_errors"] == {"incident": 80}
    base = frame.loc[~inc, "amount"]
    lo, hi = np.quantile(base, [0.005, 0.995])
    expected = ((frame.loc[inc, "amount"] < lo) | (frame.loc[inc, "amount"] > hi)).mean()
    assert result.table.set_index("feature").loc["amount", "out_of_range_incident"] == \
        pytest.approx(expected)


@pytest.mark.parametrize("factor", [1000.0, 100.0, 60.0, 3.6, 2.54, 0.4536, 1 / 1000])
def test_unit_change_finds_known_factors(factor):
    frame = healthy(3)
    inc = frame.index >= N
    frame.loc[inc, "distance_km"] *= factor
    con = make_case(requests=frame)
    findings = unit_change(con, BASELINE, INCIDENT).findings()
    assert [f.evidence["feature"] for f in findings] == ["distance_km"]
    assert findings[0].evidence["matched"] == pytest.approx(factor)


def test_a_shift_is_not_a_unit_change():
    frame = healthy(4)
    inc = frame.index >= N
    frame.loc[inc, "distance_km"] = frame.loc[inc, "distance_km"] * 2.54 + 7  # rescale + shift
    frame.loc[inc, "amount"] = frame.loc[inc, "amount"] ** 1.5  # reshaped
    con = make_case(requests=frame)
    assert unit_change(con, BASELINE, INCIDENT).findings() == []


def test_a_unit_change_inside_a_window_that_starts_early():
    # the incident window opens before the producer switched: 15% of its rows are unscaled,
    # which pulls the median quantile ratio 10% below 1000; the mixture fit still finds x1000
    frame = healthy(6)
    switch = N + int(0.15 * N)
    frame.loc[frame.index >= switch, "distance_km"] *= 1000
    con = make_case(requests=frame)
    result = unit_change(con, BASELINE, INCIDENT)
    row = result.table.set_index("feature").loc["distance_km"]
    assert abs(row["factor"] / 1000 - 1) > 0.06  # the direct estimate misses
    (finding,) = result.findings()
    assert finding.evidence["matched"] == 1000.0
    assert "on 85% of the incident's rows" in finding.evidence["meaning"]
    assert abs(pd.Timestamp(finding.onset) - TS[switch]) <= pd.Timedelta("2min")


def test_a_unit_change_fixed_before_the_window_ends():
    # x1000 from the incident's start until 80% of it: the last third is 40% rescaled, a mix
    # of the two units rather than "mostly rescaled"; the change is still a unit change
    frame = healthy(8)
    fixed = N + int(0.8 * N)
    frame.loc[(frame.index >= N) & (frame.index < fixed), "distance_km"] *= 1000
    con = make_case(requests=frame)
    (finding,) = unit_change(con, BASELINE, INCIDENT).findings()
    assert finding.evidence["feature"] == "distance_km"
    assert finding.evidence["matched"] == 1000.0


def test_holds_over_time_accepts_a_step_or_a_pulse_but_not_in_between_factors():
    from toolkit.diagnose._profile import LEVELS
    from toolkit.diagnose.data.units import holds_over_time

    rng = np.random.default_rng(9)
    levels = np.asarray(LEVELS)
    base = rng.gamma(2.0, 5.0, 50_000)
    qb = np.quantile(base, levels)

    def third(values: np.ndarray) -> tuple[float, np.ndarray, int]:
        q = np.quantile(values, levels)
        return scale_factor(qb[5:96], q[5:96])[0], q, len(values)

    fresh = rng.gamma(2.0, 5.0, 2000)
    rescaled = third(fresh * 24)
    half = third(np.r_[fresh[:900] * 24, fresh[900:]])  # 45% rescaled: a mix, not "mostly"
    assert holds_over_time(qb, [rescaled, third(fresh * 24)], 24.0)  # a step
    assert holds_over_time(qb, [rescaled, half], 24.0)  # the change ends in the last third
    assert holds_over_time(qb, [half, rescaled], 24.0)  # it starts in the middle one
    assert not holds_over_time(qb, [rescaled, third(fresh * 5)], 24.0)  # growth through x5
    assert not holds_over_time(qb, [half, half], 24.0)  # never fully rescaled
    # below x10 the rescaled rows stay in range and a mix is not read at all
    half_36 = third(np.r_[fresh[:900] * 3.6, fresh[900:]])
    assert not holds_over_time(qb, [third(fresh * 3.6), half_36], 3.6)
    assert not holds_over_time(qb, [rescaled], 24.0)  # one third says nothing about time


def test_a_gradual_growth_near_a_known_factor_is_not_a_unit_change():
    # a lognormal amount grows 1.5x: close to x1.609 (mi -> km) but not a rescaling by it
    frame = healthy(7)
    inc = frame.index >= N
    frame.loc[inc, "distance_km"] *= 1.5
    con = make_case(requests=frame)
    assert unit_change(con, BASELINE, INCIDENT).findings() == []


def test_scale_factor_helpers():
    q = np.linspace(1, 10, 50)
    factor, dispersion = scale_factor(q, q * 3.6)
    assert factor == pytest.approx(3.6) and dispersion == pytest.approx(0)
    full = np.linspace(0.5, 12, 101)
    matched, meaning, _ = match_factor(factor, dispersion, full, full * 3.6)
    assert matched == 3.6 and meaning == UNIT_FACTORS[3.6]


def test_permutation_maps_columns_back():
    frame = healthy(5)
    inc = frame.index >= N
    a, d = frame.loc[inc, "amount"].copy(), frame.loc[inc, "distance_km"].copy()
    frame.loc[inc, "amount"], frame.loc[inc, "distance_km"] = d.to_numpy(), a.to_numpy()
    con = make_case(requests=frame)
    result = feature_permutation(con, BASELINE, INCIDENT)
    assert result.mapping == {"amount": "distance_km", "distance_km": "amount"}
    (finding,) = result.findings()
    assert finding.pathway == "integration" and finding.severity == "high"


def burst_from_one_client(seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Healthy traffic, plus 8% of the incident from a new client with two features far out."""
    frame = healthy(seed)
    rng = np.random.default_rng(seed)
    burst = (frame.index >= N) & (rng.uniform(size=2 * N) < 0.08)
    frame.loc[burst, ["amount", "distance_km"]] = [1e6, 1e4]
    frame.loc[burst, "client_version"] = "0.9-scraper"
    return frame, burst


def test_ood_burst_from_one_client_with_confident_outputs():
    frame, burst = burst_from_one_client(6)
    frame.loc[burst, "score"] = 0.99
    con = make_case(requests=frame)
    result = ood_bursts(con, BASELINE, INCIDENT)
    (finding,) = result.findings()
    assert finding.evidence["source"] == "client_version"
    assert finding.evidence["value"] == "0.9-scraper"
    assert finding.severity == "high"
    # the OOD count is exact: burst rows plus the few normal rows with 2+ features outside
    inc = frame[frame.index >= N]
    base = frame[frame.index < N]
    outside = sum(((inc[c] < np.quantile(base[c], 0.005)) | (inc[c] > np.quantile(base[c], 0.995)))
                  .astype(int) for c in ("amount", "distance_km", "age_days"))
    expected = int((outside >= 2).sum())
    assert result.share("incident") == pytest.approx(expected / len(inc))


def test_ood_labels_count_only_ood_requests_and_keep_unlabelled_ones():
    frame, burst = burst_from_one_client(9)
    rng = np.random.default_rng(90)
    labelled = rng.uniform(size=2 * N) < 0.5  # half the OOD requests have no label
    flip = rng.uniform(size=2 * N) < 0.4
    label = np.where(flip, np.where(frame["prediction"] == "1", "0", "1"), frame["prediction"])
    labels = pd.DataFrame({"request_id": frame["request_id"], "label": label})[labelled]
    con = make_case(requests=frame, labels=labels)
    table = ood_bursts(con, BASELINE, INCIDENT).table
    row = table[(table.window == "incident") & (table.source == "client_version") &
                (table.value == "0.9-scraper")].iloc[0]
    # every burst request is OOD (two features far outside); no other request of that client
    assert row.requests == row.ood == burst.sum()
    assert row.ood_labelled == (burst & labelled).sum()
    assert row.ood_correct == (burst & labelled & ~flip).sum()
    assert table.groupby(["window", "source"])["requests"].sum().eq(N).all()


def test_ood_spread_over_all_sources_is_not_a_burst():
    frame = healthy(7)
    inc = frame.index >= N
    frame.loc[inc, ["amount", "distance_km"]] *= 50  # everybody shifted: drift, not a burst
    con = make_case(requests=frame)
    assert ood_bursts(con, BASELINE, INCIDENT).findings() == []


def test_concept_drift_signal_needs_falling_accuracy_and_stable_inputs():
    frame = healthy(8)
    rng = np.random.default_rng(8)
    inc = frame.index >= N
    wrong = inc & (rng.uniform(size=2 * N) < 0.25)
    labels = frame[["request_id", "prediction"]].rename(columns={"prediction": "label"})
    labels.loc[wrong, "label"] = np.where(labels.loc[wrong, "label"] == "1", "0", "1")
    con = make_case(requests=frame, labels=labels)
    result = prediction_shift(con, BASELINE, INCIDENT)
    assert result.concept_drift
    finding = next(f for f in result.findings() if f.id == "model.concept_drift")
    assert finding.severity == "high"
    assert result.accuracy_drop == pytest.approx(wrong[inc].mean(), abs=1e-9)


def test_score_shift_psi_by_hand():
    frame = healthy(9)
    inc = frame.index >= N
    frame.loc[inc, "score"] = np.clip(frame.loc[inc, "score"] + 0.2, 0.5, 1.0)
    con = make_case(requests=frame)
    result = prediction_shift(con, BASELINE, INCIDENT)
    base, cur = frame.loc[~inc, "score"].to_numpy(), frame.loc[inc, "score"].to_numpy()
    edges = np.quantile(base, np.arange(1, 10) / 10)
    b = np.bincount(np.searchsorted(edges, base, side="left"), minlength=10) / len(base)
    c = np.bincount(np.searchsorted(edges, cur, side="left"), minlength=10) / len(cur)
    b, c = np.maximum(b, 1e-4), np.maximum(c, 1e-4)
    assert result.score_psi == pytest.approx(np.sum((c - b) * np.log(c / b)))
    assert result.findings()[0].id == "model.prediction_shift"
    assert result.mean_score == pytest.approx((base.mean(), cur.mean()))
    # each bucket's score PSI against the baseline, by hand on the same bins
    width = pd.Timedelta(result.timeline["bucket_start"].diff().min())
    frame["bucket"] = frame["ts"].dt.floor(width)
    for row in result.timeline.sample(5, random_state=0).itertuples():
        scores = frame.loc[frame["bucket"] == row.bucket_start, "score"].to_numpy()
        a = np.bincount(np.searchsorted(edges, scores, side="left"), minlength=10) / len(scores)
        a = np.maximum(a, 1e-4)
        assert row.requests == len(scores)
        assert row.score_psi == pytest.approx(np.sum((a - b) * np.log(a / b)))
