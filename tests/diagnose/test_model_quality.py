"""Performance and calibration against direct numpy computations on the same rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.diagnose.conftest import make_case
from toolkit.diagnose.model.calibration import N_BINS, calibration
from toolkit.diagnose.model.performance import model_performance

N = 4000
TS = pd.date_range("2026-03-01", periods=2 * N, freq="min", tz="UTC")
BASELINE = (TS[0], TS[N])
INCIDENT = (TS[N], TS[-1] + pd.Timedelta("1min"))


@pytest.fixture(scope="module")
def rows():
    rng = np.random.default_rng(7)
    conf = np.r_[rng.uniform(0.5, 1.0, N), np.clip(rng.uniform(0.5, 1.0, N) + 0.15, 0.5, 1.0)]
    p_right = np.r_[conf[:N], conf[N:] - 0.15]  # incident: overconfident by 0.15
    right = rng.uniform(size=2 * N) < p_right
    prediction = rng.choice(["0", "1"], 2 * N, p=[0.6, 0.4])
    label = np.where(right, prediction, np.where(prediction == "1", "0", "1"))
    version = np.where(np.arange(2 * N) < N, "v1", "v2")
    labelled = rng.uniform(size=2 * N) < 0.7
    frame = pd.DataFrame({"request_id": [f"r{i}" for i in range(2 * N)], "ts": TS,
                          "prediction": prediction, "score": conf, "model_version": version,
                          "label": label, "labelled": labelled})
    return frame


@pytest.fixture(scope="module")
def con(rows):
    requests = rows[["request_id", "ts", "prediction", "score", "model_version"]]
    labels = rows.loc[rows.labelled, ["request_id", "label"]].assign(
        labeled_at=lambda f: TS[f.index] + pd.Timedelta("6h"))
    return make_case(requests=requests, labels=labels)


def direct_ece(conf: np.ndarray, correct: np.ndarray, bins: int = N_BINS) -> float:
    index = np.minimum((conf * bins).astype(int), bins - 1)
    ece = 0.0
    for b in range(bins):
        m = index == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return ece


def test_performance_matches_pandas(con, rows):
    result = model_performance(con, BASELINE, INCIDENT)
    assert result.positive == "1"
    for window, part in (("baseline", rows[:N]), ("incident", rows[N:])):
        part = part[part.labelled]
        pred, label = part.prediction, part.label
        tp = ((pred == "1") & (label == "1")).sum()
        fp = ((pred == "1") & (label == "0")).sum()
        fn = ((pred == "0") & (label == "1")).sum()
        assert result.value(window, "accuracy") == pytest.approx((pred == label).mean())
        assert result.value(window, "precision") == pytest.approx(tp / (tp + fp))
        assert result.value(window, "recall") == pytest.approx(tp / (tp + fn))
        assert result.value(window, "f1") == pytest.approx(2 * tp / (2 * tp + fp + fn))
        assert result.value(window, "coverage") == pytest.approx(len(part) / N)
        assert result.value(window, "delay_p50_h") == pytest.approx(6.0, abs=0.05)


def test_wilson_interval_hand_value():
    from toolkit.diagnose._stats import wilson_interval

    # k=9, n=10, z=1.96: (0.9 + 0.19208) / 1.38416 -/+ 1.96 sqrt(0.009 + 0.009604) / 1.38416
    lo, hi = wilson_interval(np.array([9]), np.array([10]))
    centre = (0.9 + 1.959964**2 / 20) / (1 + 1.959964**2 / 10)
    half = 1.959964 * np.sqrt(0.09 / 10 + 1.959964**2 / 400) / (1 + 1.959964**2 / 10)
    assert lo[0] == pytest.approx(centre - half) and hi[0] == pytest.approx(centre + half)


def test_calibration_matches_direct_numpy(con, rows):
    result = calibration(con, BASELINE, INCIDENT)
    for window, part in (("baseline", rows[:N]), ("incident", rows[N:])):
        part = part[part.labelled]
        conf = part.score.to_numpy()
        correct = (part.prediction == part.label).to_numpy().astype(float)
        assert result.value(window, "ece") == pytest.approx(direct_ece(conf, correct), abs=1e-12)
        assert result.value(window, "brier") == pytest.approx(np.mean((conf - correct) ** 2))
        assert result.value(window, "confident_error_share") == pytest.approx(
            np.mean((correct == 0) & (conf >= 0.85)))
        # equal-mass: 15 bins with the window's own quantile edges (right-closed)
        edges = np.quantile(conf, np.arange(1, N_BINS) / N_BINS)
        index = np.searchsorted(edges, conf, side="left")
        ece_mass = sum(abs(correct[index == b].sum() - conf[index == b].sum())
                       for b in range(N_BINS)) / len(conf)
        assert result.value(window, "ece_equal_mass") == pytest.approx(ece_mass, abs=1e-12)


def test_brier_decomposition_identity(con):
    result = calibration(con, BASELINE, INCIDENT)
    for row in result.table.itertuples():
        rebuilt = (row.reliability - row.resolution + row.uncertainty + row.within_bin_variance
                   - 2 * row.within_bin_covariance)
        assert rebuilt == pytest.approx(row.brier, abs=1e-12)


def test_brier_decomposition_exact_for_discrete_forecasts():
    # forecasts take one value per bin: within-bin terms vanish, Murphy's identity is exact
    from toolkit.diagnose.model.calibration import calibration_summary

    f = np.array([0.55, 0.55, 0.55, 0.95, 0.95])
    o = np.array([1, 0, 1, 1, 1.0])
    bins = pd.DataFrame({"n": [3, 2], "sf": [1.65, 1.9], "sff": [3 * 0.55**2, 2 * 0.95**2],
                         "so": [2, 2], "sfo": [1.1, 1.9], "wrong_confident": [0, 0]})
    summary = calibration_summary(bins)
    assert summary["within_bin_variance"] == pytest.approx(0, abs=1e-12)
    assert summary["brier"] == pytest.approx(np.mean((f - o) ** 2))
    assert summary["reliability"] - summary["resolution"] + summary["uncertainty"] == \
        pytest.approx(np.mean((f - o) ** 2))


def test_calibration_shift_finding_names_versions(con):
    result = calibration(con, BASELINE, INCIDENT)
    (finding,) = result.findings()
    assert finding.id == "model.calibration_shift"
    assert finding.evidence["versions"]["before"] == "v1"
    assert finding.evidence["versions"]["after"] == "v2"
    assert abs(finding.evidence["accuracy_change"]) < 0.05


def test_positive_class_kind(con, rows):
    result = calibration(con, BASELINE, INCIDENT, kind="positive-class")
    part = rows[:N][rows[:N].labelled]
    p = np.where(part.prediction == "1", part.score, 1 - part.score)
    o = (part.label == "1").to_numpy().astype(float)
    assert result.value("baseline", "ece") == pytest.approx(direct_ece(p, o), abs=1e-12)


def test_missing_labels_are_not_assessed():
    frame = pd.DataFrame({"request_id": ["a"], "ts": [TS[0]], "prediction": ["1"],
                          "score": [0.9]})
    con = make_case(requests=frame)
    assert model_performance(con, BASELINE, INCIDENT).not_assessed[0].reason == \
        "the case has no labels"
    assert calibration(con, BASELINE, INCIDENT).not_assessed


def test_a_score_shift_is_dated_to_the_request_not_the_bucket():
    from datetime import timedelta

    from toolkit.diagnose.model.prediction_shift import prediction_shift

    rng = np.random.default_rng(12)
    n = 6000
    ts = pd.Timestamp("2026-03-01T00:00Z") + pd.to_timedelta(np.arange(n) * 60, unit="s")
    change = ts[4000] + timedelta(minutes=17, seconds=30)  # mid-bucket
    after = ts >= change
    score = np.where(after, rng.uniform(0.95, 1.0, n), rng.uniform(0.55, 1.0, n))
    frame = pd.DataFrame({"request_id": [f"r{i}" for i in range(n)], "ts": ts, "score": score,
                          "prediction": "1"})
    result = prediction_shift(make_case(requests=frame), (ts[0], ts[3000]), (ts[3000], ts[-1]),
                              bucket=timedelta(hours=3))
    (finding,) = [f for f in result.findings() if f.id == "model.prediction_shift"]
    assert finding.severity == "high"
    assert abs(pd.Timestamp(finding.onset) - change) <= timedelta(minutes=2)
    # the coarse estimate is only the bucket
    assert result.coarse_onset() <= change - timedelta(minutes=15)


def test_a_relabelled_request_counts_once_with_its_latest_label(rows):
    from toolkit.diagnose._case import case_view
    from toolkit.diagnose._labels import labels_unique

    requests = rows[["request_id", "ts", "prediction", "score", "model_version"]]
    labels = rows.loc[rows.labelled, ["request_id", "label"]].assign(
        labeled_at=lambda f: TS[f.index] + pd.Timedelta("6h"))
    unique = make_case(requests=requests, labels=labels)
    assert labels_unique(case_view(unique))
    # every incident label first arrives wrong (flipped), then is corrected a day later
    flipped = labels.assign(label=np.where(labels["label"] == "1", "0", "1"),
                            labeled_at=labels["labeled_at"] - pd.Timedelta("1D"))
    corrected = make_case(requests=requests, labels=pd.concat([flipped, labels]))
    assert not labels_unique(case_view(corrected))
    a = model_performance(unique, BASELINE, INCIDENT).table
    b = model_performance(corrected, BASELINE, INCIDENT).table
    pd.testing.assert_frame_equal(a, b)


def _temp_tables(con) -> list[str]:
    return [r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()]


def test_label_diagnostics_share_one_labelled_join_per_view(con):
    import gc

    from toolkit.diagnose._case import case_view

    case = case_view(con)
    perf = model_performance(con, BASELINE, INCIDENT, case=case)
    cal = calibration(con, BASELINE, INCIDENT, case=case)
    (table,) = _temp_tables(con)
    creates = [s for s in perf.sql + cal.sql if s.startswith("CREATE OR REPLACE TEMP TABLE")]
    # both record the statement (their SQL is complete), only the first ran it
    assert len(creates) == 2 and creates[0] == creates[1] and table in creates[0]
    # the recorded SQL, replayed on a connection of its own, gives the same numbers
    replay = con.cursor()
    replay.execute(cal.sql[0])
    (grouped,) = [s for s in cal.sql if '"bin"' in s and '"wrong_confident"' in s]
    frame = replay.execute(grouped).df()
    assert int(frame["n"].sum()) == int(cal.table["labelled"].sum())
    del case, perf, cal
    gc.collect()
    assert table not in _temp_tables(con)


# --- ROC and PR AUC ----------------------------------------------------------------------------

def hand_auc(p: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """ROC AUC over all (positive, negative) pairs, ties half; average precision by thresholds."""
    pos, neg = p[y == 1], p[y == 0]
    pairs = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    roc = pairs / (len(pos) * len(neg))
    ap = 0.0
    for t in np.unique(p)[::-1]:
        at = p == t
        tp, seen = ((p >= t) & (y == 1)).sum(), (p >= t).sum()
        ap += (at & (y == 1)).sum() / len(pos) * tp / seen
    return float(roc), float(ap)


def test_auc_hand_values_on_tiny_data():
    # P(positive) 0.9 0.8 0.8 0.6 0.4 0.3 for labels 1 1 0 0 1 0
    p = np.array([0.9, 0.8, 0.8, 0.6, 0.4, 0.3])
    y = np.array([1, 1, 0, 0, 1, 0])
    # positives 0.9, 0.8, 0.4 against negatives 0.8, 0.6, 0.3: 3 + (1 + 0.5 + 1) + 1 = 6.5 of 9
    # thresholds 0.9 (R 1/3, P 1), 0.8 (R 2/3, P 2/3), 0.4 (R 1, P 3/5): AP = 1/3 + 2/9 + 1/5
    assert hand_auc(p, y) == pytest.approx((6.5 / 9, 1 / 3 + 2 / 9 + 1 / 5))
    ts = TS[:12]
    prediction = np.where(p >= 0.5, "1", "0")
    requests = pd.DataFrame({"request_id": [f"t{i}" for i in range(12)], "ts": ts,
                             "prediction": np.tile(prediction, 2),
                             "score": np.tile(np.where(p >= 0.5, p, 1 - p), 2)})
    labels = pd.DataFrame({"request_id": requests["request_id"],
                           "label": np.tile(y, 2).astype(str)})
    result = model_performance(make_case(requests=requests, labels=labels), (ts[0], ts[6]),
                               (ts[6], ts[-1] + pd.Timedelta("1min")))
    for window in ("baseline", "incident"):
        assert result.value(window, "roc_auc") == pytest.approx(6.5 / 9, abs=1e-12)
        assert result.value(window, "pr_auc") == pytest.approx(1 / 3 + 2 / 9 + 1 / 5, abs=1e-12)


@pytest.mark.parametrize("score_is", ["confidence", "p_positive"])
def test_auc_matches_scikit_learn(rows, score_is):
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    # two decimals: many tied scores, which both must count half
    conf = rows["score"].round(2)
    p = np.where(rows["prediction"] == "1", conf, 1 - conf)
    score = p if score_is == "p_positive" else conf
    requests = rows[["request_id", "ts", "prediction"]].assign(score=score)
    labels = rows.loc[rows.labelled, ["request_id", "label"]]
    result = model_performance(make_case(requests=requests, labels=labels), BASELINE, INCIDENT,
                               score_is=score_is)
    assert not result.not_assessed
    for window, part in (("baseline", slice(0, N)), ("incident", slice(N, 2 * N))):
        keep = rows.labelled.to_numpy()[part]
        y = (rows["label"].to_numpy()[part][keep] == "1").astype(int)
        pw = p[part][keep]
        assert result.value(window, "roc_auc") == pytest.approx(
            sklearn_metrics.roc_auc_score(y, pw), abs=1e-12)
        assert result.value(window, "pr_auc") == pytest.approx(
            sklearn_metrics.average_precision_score(y, pw), abs=1e-12)
        assert (result.value(window, "roc_auc"), result.value(window, "pr_auc")) == \
            pytest.approx(hand_auc(pw, y), abs=1e-12)


def test_auc_is_not_assessed_with_its_reason():
    ts = TS[:200]
    base = pd.DataFrame({"request_id": [f"a{i}" for i in range(200)], "ts": ts,
                         "prediction": ["1", "0"] * 100})
    labels = pd.DataFrame({"request_id": base["request_id"], "label": ["1", "1", "0", "0"] * 50})
    windows = ((ts[0], ts[100]), (ts[100], ts[-1] + pd.Timedelta("1min")))

    def gap(requests, lab=labels, **kwargs):
        result = model_performance(make_case(requests=requests, labels=lab), *windows, **kwargs)
        assert result.value("incident", "accuracy") == pytest.approx(0.5)  # the rest still runs
        assert np.isnan(result.value("incident", "roc_auc"))
        (entry,) = [g for g in result.not_assessed if g.check == "model.performance:auc"]
        return entry.reason

    assert "no score" in gap(base)
    three = base.assign(prediction=["1", "0", "2", "0"] * 50, score=0.9)
    assert "binary" in gap(three)
    rng = np.random.default_rng(3)
    p = rng.uniform(0, 1, 200)
    as_p = base.assign(prediction=np.where(p >= 0.5, "1", "0"), score=p)
    assert "P(positive" in gap(as_p)
    # one class in a window's labels: AUC undefined there, not an error
    one = labels.assign(label="1")
    result = model_performance(make_case(requests=base.assign(score=0.8), labels=one), *windows)
    assert np.isnan(result.value("baseline", "roc_auc"))
    assert np.isnan(result.value("baseline", "pr_auc"))


def test_empty_and_partial_windows_are_not_assessed(con):
    from toolkit.diagnose.model.calibration import calibration as cal

    later = (TS[-1] + pd.Timedelta("1D"), TS[-1] + pd.Timedelta("2D"))
    for strategy in ("uniform", "quantile"):
        result = cal(con, BASELINE, later, strategy=strategy, bins=10)
        assert [g.reason for g in result.not_assessed] == ["no labels in the incident window"]
    result = model_performance(con, BASELINE, later)
    assert [g.reason for g in result.not_assessed] == ["no labels in the incident window"]
    # no score column: calibration says so, performance still runs without AUC
    requests = pd.DataFrame({"request_id": ["a", "b"], "ts": TS[:2], "prediction": ["1", "0"]})
    labels = pd.DataFrame({"request_id": ["a", "b"], "label": ["1", "1"]})
    bare = make_case(requests=requests, labels=labels)
    assert cal(bare, (TS[0], TS[1]), (TS[1], TS[3])).not_assessed[0].reason.startswith(
        "requests carry no score")
    result = model_performance(bare, (TS[0], TS[1]), (TS[1], TS[3]))
    assert result.value("incident", "accuracy") == 0.0


def _labelled_windows(correct_b: int, n_b: int, correct_i: int, n_i: int):
    """Binary requests and labels: the baseline on 2026-03-01, the incident on 2026-03-02."""
    rows, labels = [], []
    for day, correct, n in ((1, correct_b, n_b), (2, correct_i, n_i)):
        for k in range(n):
            rid = f"d{day}-{k}"
            ts = pd.Timestamp(f"2026-03-0{day}T00:00:00Z") + pd.Timedelta(seconds=60 * k)
            rows.append({"request_id": rid, "ts": ts, "prediction": "1", "score": 0.9})
            labels.append({"request_id": rid, "label": "1" if k < correct else "0",
                           "labeled_at": ts + pd.Timedelta(hours=1)})
    return make_case(requests=pd.DataFrame(rows), labels=pd.DataFrame(labels))


def test_a_drop_on_few_labels_is_a_low_finding_when_its_interval_excludes_the_baseline():
    from scipy import stats

    windows = ("2026-03-01/2026-03-02", "2026-03-02/2026-03-03")
    # 93.5% on 1,200 baseline labels; 46 of 54 (85.2%) in the incident (issue 22's tuning case)
    con = _labelled_windows(1122, 1200, 46, 54)
    finding = [f for f in model_performance(con, *windows).findings()
               if f.id == "model.accuracy_drop"]
    pooled = (1122 + 46) / 1254
    z = (1122 / 1200 - 46 / 54) / np.sqrt(pooled * (1 - pooled) * (1 / 1200 + 1 / 54))
    p = 2 * stats.norm.sf(abs(z))
    assert 1e-3 < p < 0.05
    assert len(finding) == 1 and finding[0].severity == "low"
    assert finding[0].evidence["pvalue"] == pytest.approx(p)
    # the same drop on 20 labels: the interval reaches the baseline, no finding
    con = _labelled_windows(1122, 1200, 17, 20)
    assert not [f for f in model_performance(con, *windows).findings()
                if f.id == "model.accuracy_drop"]
