"""Multiclass performance, calibration and prediction shift against scikit-learn, scipy,
statsmodels and hand computations on the same arrays."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial import distance
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
)
from sklearn.preprocessing import label_binarize
from statsmodels.stats.proportion import proportion_confint

from tests.diagnose.conftest import make_case

performance = importlib.import_module("toolkit.diagnose.model.performance")
calibration_module = importlib.import_module("toolkit.diagnose.model.calibration")
shift_module = importlib.import_module("toolkit.diagnose.model.prediction_shift")

CLASSES = ["ant", "bee", "cat", "dog"]
N = 3000
TS = pd.date_range("2026-03-01", periods=2 * N, freq="min", tz="UTC")
BASELINE = (TS[0], TS[N])
INCIDENT = (TS[N], TS[-1] + pd.Timedelta("1min"))
BR, IR = slice(0, N), slice(N, 2 * N)  # baseline and incident rows


def _probabilities(logits: np.ndarray) -> np.ndarray:
    """Softmax on a 1/10000 grid whose rows sum to exactly 10000 ticks (so the JSON scores
    scikit-learn reads sum to 1)."""
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    ticks = np.floor(p * 10_000).astype(int)
    ticks[np.arange(len(p)), p.argmax(axis=1)] += 10_000 - ticks.sum(axis=1)
    return ticks / 10_000


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(11)
    y = rng.choice(CLASSES, 2 * N, p=[0.4, 0.3, 0.2, 0.1])
    index = np.array([CLASSES.index(v) for v in y])
    logits = rng.normal(size=(2 * N, 4))
    logits[np.arange(2 * N), index] += 1.6
    # the incident: a new version pulls true 'cat' rows towards 'bee'
    pulled = (np.arange(2 * N) >= N) & (y == "cat")
    logits[pulled, 1] += 2.5
    P = _probabilities(logits)
    pred = np.array(CLASSES)[P.argmax(axis=1)]
    version = np.where(np.arange(2 * N) < N, "v1", "v2")
    return {"y": y, "P": P, "pred": pred, "version": version}


def _case(d, *, scores=True, extra=None):
    frame = pd.DataFrame({"request_id": [f"r{i}" for i in range(2 * N)], "ts": TS,
                          "prediction": d["pred"], "score": d["P"].max(axis=1),
                          "model_version": d["version"]})
    if scores:
        frame["scores"] = [json.dumps(dict(zip(CLASSES, map(float, row), strict=True)))
                           for row in d["P"]]
    labels = pd.DataFrame({"request_id": frame["request_id"], "label": d["y"]})
    frames = {"requests": frame, "labels": labels}
    for name, more in (extra or {}).items():
        frames[name] = pd.concat([frames[name], more], ignore_index=True)
    return make_case(**frames)


@pytest.fixture(scope="module")
def con(data):
    return _case(data)


@pytest.fixture(scope="module")
def perf(con):
    return performance.model_performance(con, BASELINE, INCIDENT)


def test_metrics_equal_scikit_learn(data, perf):
    y, pred, P = data["y"], data["pred"], data["P"]
    assert perf.task == "multiclass"
    for name, part in (("baseline", BR), ("incident", IR)):
        assert perf.value(name, "accuracy") == pytest.approx(accuracy_score(y[part], pred[part]),
                                                             abs=1e-12)
        for average in ("macro", "weighted"):
            assert perf.value(name, f"{average}_f1") == pytest.approx(
                f1_score(y[part], pred[part], average=average), abs=1e-12)
        # one-vs-rest ROC AUC, macro average over the classes (scikit-learn's default)
        assert perf.value(name, "roc_auc") == pytest.approx(
            roc_auc_score(y[part], P[part], multi_class="ovr", labels=CLASSES), abs=1e-12)
        assert perf.value(name, "pr_auc") == pytest.approx(average_precision_score(
            label_binarize(y[part], classes=CLASSES), P[part], average="macro"), abs=1e-12)
        precision, recall, f1, support = precision_recall_fscore_support(
            y[part], pred[part], labels=CLASSES, zero_division=0)
        rows = perf.per_class[perf.per_class["window"] == name].set_index("class").loc[CLASSES]
        np.testing.assert_allclose(rows["precision"], precision, atol=1e-12)
        np.testing.assert_allclose(rows["recall"], recall, atol=1e-12)
        np.testing.assert_allclose(rows["f1"], f1, atol=1e-12)
        np.testing.assert_array_equal(rows["support"], support)
        # Wilson intervals: statsmodels' on the same counts
        lo, hi = proportion_confint(rows["tp"], rows["support"], method="wilson")
        np.testing.assert_allclose(rows["recall_lo"], lo, atol=1e-9)
        np.testing.assert_allclose(rows["recall_hi"], hi, atol=1e-9)
        matrix = perf.confusion[perf.confusion["window"] == name].pivot_table(
            index="label", columns="prediction", values="n", fill_value=0).reindex(
            index=CLASSES, columns=CLASSES, fill_value=0)
        np.testing.assert_array_equal(matrix.to_numpy(), confusion_matrix(
            y[part], pred[part], labels=CLASSES))


def test_the_confusion_change_says_which_class_moved_where(data, perf):
    y, pred = data["y"], data["pred"]
    top = perf.confusion_change.iloc[0]
    assert (top["label"], top["prediction"]) == ("cat", "bee")
    before = np.mean(pred[BR][y[BR] == "cat"] == "bee")
    after = np.mean(pred[IR][y[IR] == "cat"] == "bee")
    assert top["baseline_share"] == pytest.approx(before)
    assert top["incident_share"] == pytest.approx(after)
    assert top["change"] == pytest.approx(after - before) and after - before > 0.3
    # shares of one true class sum to 1 in each window
    cat = perf.confusion_change[perf.confusion_change["label"] == "cat"]
    assert cat["incident_share"].sum() == pytest.approx(1.0)


def test_findings_keep_the_binary_ids_with_the_task(perf):
    found = {f.id: f for f in perf.findings()}
    drop = found["model.accuracy_drop"]
    assert drop.evidence["task"] == "multiclass"
    assert drop.evidence["moves"][0]["label"] == "cat"
    assert drop.evidence["moves"][0]["prediction"] == "bee"
    assert drop.evidence["macro_f1_incident"] == pytest.approx(perf.value("incident", "macro_f1"))
    regression = found["model.version_regression"]
    assert regression.evidence["version"] == "v2" and regression.evidence["new_version"]
    assert regression.evidence["task"] == "multiclass"
    assert perf.headline()["task"] == "multiclass"


def test_auc_without_scores_is_not_assessed_with_the_reason(data):
    result = performance.model_performance(_case(data, scores=False), BASELINE, INCIDENT)
    assert np.isnan(result.value("incident", "roc_auc"))
    (gap,) = [g for g in result.not_assessed if g.check == "model.performance:auc"]
    assert "scores" in gap.reason and "4 classes" in gap.reason
    assert result.value("incident", "accuracy") == pytest.approx(
        accuracy_score(data["y"][IR], data["pred"][IR]))


def _ece_top_label(conf, right, bins):
    k = np.clip(np.floor(conf * bins), 0, bins - 1)
    return sum(abs(right[k == b].sum() - conf[k == b].sum()) for b in range(bins)) / len(conf)


def _ece_classwise(y, P, bins):
    """Kull et al. 2019 (netcal's per-class binning): the mean over classes of the ECE of
    p_k against [y == k], equal-width bins."""
    out = []
    for k, name in enumerate(CLASSES):
        p, o = P[:, k], (y == name).astype(float)
        b = np.clip(np.floor(p * bins), 0, bins - 1)
        out.append(sum(abs(o[b == j].sum() - p[b == j].sum()) for j in range(bins)) / len(p))
    return float(np.mean(out)), out


@pytest.mark.parametrize("bins", [10, 15])
def test_top_label_and_classwise_ece_equal_a_hand_computation(data, con, bins):
    result = calibration_module.calibration(con, BASELINE, INCIDENT, bins=bins)
    y, P, pred = data["y"], data["P"], data["pred"]
    assert result.task == "multiclass"
    for name, part in (("baseline", BR), ("incident", IR)):
        conf, right = P[part].max(axis=1), (pred[part] == y[part]).astype(float)
        assert result.value(name, "ece") == pytest.approx(_ece_top_label(conf, right, bins),
                                                          abs=1e-12)
        overall, per_class = _ece_classwise(y[part], P[part], bins)
        assert result.classwise_ece[name] == pytest.approx(overall, abs=1e-12)
        rows = result.classwise[result.classwise["window"] == name].set_index("class")
        np.testing.assert_allclose(rows.loc[CLASSES, "ece"], per_class, atol=1e-12)
    # the per-class reliability bins add up to every row of the window, for every class
    per = result.class_bins.groupby(["window", "class"])["n"].sum()
    assert set(per) == {N}


def test_a_sharper_release_raises_the_classwise_finding():
    """Same argmax (same accuracy) but probabilities pushed towards 0 and 1: a quantised or
    temperature-broken release. The finding keeps the binary id, names the task."""
    rng = np.random.default_rng(5)
    n = 2 * N
    y = rng.choice(CLASSES, n)
    index = np.array([CLASSES.index(v) for v in y])
    logits = rng.normal(size=(n, 4))
    logits[np.arange(n), index] += 1.2
    logits[N:] *= 4.0  # over-confident incident
    P = _probabilities(logits)
    d = {"y": y, "P": P, "pred": np.array(CLASSES)[P.argmax(axis=1)],
         "version": np.where(np.arange(n) < N, "v1", "v1-int8")}
    result = calibration_module.calibration(_case(d), BASELINE, INCIDENT)
    (finding,) = result.findings()
    assert finding.id == "model.calibration_shift"
    assert finding.evidence["task"] == "multiclass"
    assert finding.evidence["classwise_ece_incident"] > 2 * finding.evidence[
        "classwise_ece_baseline"]
    assert abs(finding.evidence["accuracy_change"]) < 0.03


def test_classwise_without_scores_is_not_assessed(data):
    result = calibration_module.calibration(_case(data, scores=False), BASELINE, INCIDENT)
    assert result.classwise.empty and result.value("incident", "ece") > 0
    (gap,) = [g for g in result.not_assessed if g.check == "model.calibration:classwise"]
    assert "scores" in gap.reason


def test_class_mix_shift_equals_scipy(data, con):
    result = shift_module.prediction_shift(con, BASELINE, INCIDENT)
    pred = data["pred"]
    b = np.array([np.sum(pred[BR] == c) for c in CLASSES], float)
    i = np.array([np.sum(pred[IR] == c) for c in CLASSES], float)
    chi2 = stats.chi2_contingency(np.vstack([b, i]), correction=False)
    assert result.task == "multiclass"
    assert result.class_chi2 == pytest.approx(chi2.statistic)
    assert result.class_chi2_pvalue == pytest.approx(chi2.pvalue, rel=1e-6, abs=1e-300)
    assert result.class_js == pytest.approx(distance.jensenshannon(b / b.sum(), i / i.sum(),
                                                                   base=2))
    change = i / i.sum() - b / b.sum()
    assert result.changed_class == CLASSES[int(np.argmax(np.abs(change)))] == "bee"
    finding = next(f for f in result.findings() if f.id == "model.prediction_shift")
    assert finding.evidence["task"] == "multiclass"
    assert finding.evidence["class_js"] == pytest.approx(result.class_js)
    # over time: the mix's JS distance from the baseline rises after the release
    t = result.timeline.dropna(subset=["class_js"])
    before = t[t["bucket_start"] < TS[N]]["class_js"].mean()
    after = t[t["bucket_start"] >= TS[N]]["class_js"].mean()
    assert after > before + 0.05


def test_endpoints_of_another_task_are_measured_apart_and_named(data):
    binary = pd.DataFrame({"request_id": [f"b{i}" for i in range(200)], "ts": TS[:200],
                           "endpoint": "fraud", "prediction": ["0", "1"] * 100, "score": 0.9})
    con = _case(data, extra={"requests": binary, "labels": pd.DataFrame(
        {"request_id": binary["request_id"], "label": ["1"] * 200})})
    result = performance.model_performance(con, BASELINE, INCIDENT)
    # the multiclass rows alone: the fraud endpoint's 200 labelled rows are not mixed in
    assert result.value("baseline", "labelled") == N
    assert result.value("baseline", "accuracy") == pytest.approx(
        accuracy_score(data["y"][BR], data["pred"][BR]))
    # the fraud endpoint is measured on its own, as a binary task; it has no request in the
    # incident window: said, naming the endpoint
    fraud = result.endpoints["fraud"]
    assert fraud.task == "binary" and fraud.positive == "1" and fraud.table.empty
    (gap,) = [g for g in result.not_assessed if g.check == "model.performance"]
    assert gap.reason == "endpoint fraud (binary): no labels in the incident window"


def test_generative_endpoints_are_not_assessed():
    con = make_case(requests=pd.DataFrame({"request_id": [f"g{i}" for i in range(100)],
                                           "ts": TS[:100], "input_tokens": 50,
                                           "output_tokens": 10}))
    for fn in (performance.model_performance, calibration_module.calibration,
               shift_module.prediction_shift):
        result = fn(con, (TS[0], TS[50]), (TS[50], TS[100]))
        assert result.table.empty
        assert any("generative" in g.reason for g in result.not_assessed)


def test_many_scored_rows_are_read_on_a_named_deterministic_sample(data, con, monkeypatch):
    tasks = importlib.import_module("toolkit.diagnose._tasks")
    full_cal = calibration_module.calibration(con, BASELINE, INCIDENT)
    full_perf = performance.model_performance(con, BASELINE, INCIDENT)
    assert full_cal.scores_fraction == 1.0
    assert set(full_perf.table["scores_fraction"]) == {1.0}
    monkeypatch.setattr(tasks, "SCORES_SAMPLE_ROWS", 2 * N // 3)
    runs = [(calibration_module.calibration(con, BASELINE, INCIDENT),
             performance.model_performance(con, BASELINE, INCIDENT)) for _ in range(2)]
    cal, perf = runs[0]
    assert cal.scores_fraction == pytest.approx(1 / 3)
    assert perf.table["scores_fraction"].tolist() == pytest.approx([1 / 3, 1 / 3])
    read = cal.classwise.groupby("window")["n"].max()
    assert read["baseline"] == pytest.approx(N / 3, rel=0.15)  # a third of the rows, by hash
    # the same rows every run, and estimates close to the full data's
    assert runs[1][0].classwise_ece == cal.classwise_ece
    for w in ("baseline", "incident"):
        assert cal.classwise_ece[w] == pytest.approx(full_cal.classwise_ece[w], abs=0.02)
        assert perf.value(w, "roc_auc") == pytest.approx(full_perf.value(w, "roc_auc"),
                                                         abs=0.02)
        # what does not need scores is still measured on every row
        assert perf.value(w, "labelled") == N
        assert cal.value(w, "ece") == full_cal.value(w, "ece")


def test_the_multiclass_plot_shows_accuracy_over_time(perf):
    import matplotlib

    matplotlib.use("Agg")
    ax = perf.plot()
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), perf.timeline["accuracy"])
    assert "multiclass" in ax.get_title()
