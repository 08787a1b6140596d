"""A case serving a binary and a regression endpoint: model.performance, model.calibration and
model.prediction_shift measure each endpoint with its own task (hand computations on each
endpoint's rows), name the endpoint in their findings, and leave a one-endpoint case as it
was."""

from __future__ import annotations

import importlib

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, mean_absolute_error, precision_score

from tests.diagnose.conftest import make_case

performance = importlib.import_module("toolkit.diagnose.model.performance")
calibration = importlib.import_module("toolkit.diagnose.model.calibration")
shift = importlib.import_module("toolkit.diagnose.model.prediction_shift")

START = pd.Timestamp("2026-03-01", tz="UTC")
BASELINE = (START, START + pd.Timedelta("2D"))
INCIDENT = (START + pd.Timedelta("2D"), START + pd.Timedelta("4D"))


def _binary(n: int, rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    """``fraud``: accuracy 0.95 then 0.80 (the incident), a confidence in the prediction."""
    ts = START + pd.to_timedelta(np.sort(rng.uniform(0, 4 * 86_400, n)), unit="s")
    incident = ts >= INCIDENT[0]
    label = rng.choice(["0", "1"], n, p=[0.7, 0.3])
    right = rng.uniform(size=n) < np.where(incident, 0.80, 0.95)
    pred = np.where(right, label, np.where(label == "1", "0", "1"))
    score = np.round(rng.uniform(0.6, 1.0, n), 3)
    ids = [f"f{i}" for i in range(n)]
    return {"requests": pd.DataFrame({"request_id": ids, "ts": ts, "endpoint": "fraud",
                                      "prediction": pred, "score": score}),
            "labels": pd.DataFrame({"request_id": ids, "label": label})}


def _regression(n: int, rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    """``price``: errors twice as wide in the incident, the interval no wider, predictions
    shifted up."""
    ts = START + pd.to_timedelta(np.sort(rng.uniform(0, 4 * 86_400, n)), unit="s")
    incident = ts >= INCIDENT[0]
    y = np.round(rng.normal(100, 10, n), 2)
    pred = np.round(y + rng.normal(0, np.where(incident, 4.0, 2.0)) + 5 * incident, 2)
    ids = [f"p{i}" for i in range(n)]
    return {"requests": pd.DataFrame({"request_id": ids, "ts": ts, "endpoint": "price",
                                      "prediction": [f"{v:.2f}" for v in pred],
                                      "pred_lower": pred - 4.0, "pred_upper": pred + 4.0}),
            "labels": pd.DataFrame({"request_id": ids, "label": [f"{v:.2f}" for v in y]})}


def _case(*parts: dict[str, pd.DataFrame]):
    return make_case(**{name: pd.concat([p[name] for p in parts], ignore_index=True)
                        for name in ("requests", "labels")})


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(24)
    return _binary(3000, rng), _regression(5000, rng)


@pytest.fixture(scope="module")
def mixed(frames):
    return _case(*frames)


def _window_rows(frame: pd.DataFrame, labels: pd.DataFrame, window) -> pd.DataFrame:
    rows = frame.merge(labels, on="request_id")
    return rows[(rows["ts"] >= window[0]) & (rows["ts"] < window[1])]


def test_each_endpoint_is_measured_with_its_own_task(frames, mixed):
    (binary, regression) = frames
    result = performance.model_performance(mixed, BASELINE, INCIDENT)
    # the main task (most requests) is the regression, on its own rows only
    assert result.task == "regression" and set(result.endpoints) == {"fraud"}
    for name, window in (("baseline", BASELINE), ("incident", INCIDENT)):
        rows = _window_rows(regression["requests"], regression["labels"], window)
        assert result.value(name, "labelled") == len(rows)
        assert result.value(name, "mae") == pytest.approx(mean_absolute_error(
            rows["label"].astype(float), rows["prediction"].astype(float)), abs=1e-9)
        fraud = result.endpoints["fraud"]
        rows = _window_rows(binary["requests"], binary["labels"], window)
        assert fraud.task == "binary" and fraud.positive == "1"
        assert fraud.value(name, "labelled") == len(rows)
        assert fraud.value(name, "accuracy") == pytest.approx(
            accuracy_score(rows["label"], rows["prediction"]), abs=1e-12)
        assert fraud.value(name, "precision") == pytest.approx(
            precision_score(rows["label"], rows["prediction"], pos_label="1"), abs=1e-12)
        # coverage counts the endpoint's own requests
        requests = binary["requests"]
        inside = ((requests["ts"] >= window[0]) & (requests["ts"] < window[1])).sum()
        assert fraud.value(name, "requests") == inside
    # findings name their endpoint
    found = {(f.id, f.evidence["endpoint"]): f for f in result.findings()}
    drop = found[("model.accuracy_drop", "fraud")]
    assert drop.summary.startswith("endpoint fraud: accuracy fell")
    assert "task" not in drop.evidence  # the binary evidence as it is
    rise = found[("model.accuracy_drop", "price")]
    assert rise.evidence["task"] == "regression" and rise.summary.startswith("endpoint price:")


def test_a_one_endpoint_case_is_unchanged(frames, mixed):
    """The fraud endpoint measured alone in the mixed case equals the fraud-only case's
    result, whose findings name no endpoint."""
    alone = performance.model_performance(_case(frames[0]), BASELINE, INCIDENT)
    within = performance.model_performance(mixed, BASELINE, INCIDENT).endpoints["fraud"]
    assert not alone.endpoints and alone.main_endpoints == ()
    columns = [c for c in alone.table.columns if c != "window"]
    np.testing.assert_allclose(alone.table[columns].to_numpy(float),
                               within.table[columns].to_numpy(float), atol=1e-12)
    assert [f.evidence for f in alone.findings()] == [
        {k: v for k, v in f.evidence.items()} for f in within.findings()]
    assert all("endpoint" not in f.evidence for f in alone.findings())


def test_a_binary_main_task_reads_its_own_endpoint_only(frames):
    """When the binary endpoint serves most requests, its accuracy is not diluted by the
    regression's rows (the whole labelled table was read before)."""
    rng = np.random.default_rng(5)
    binary, regression = _binary(6000, rng), _regression(1000, rng)
    result = performance.model_performance(_case(binary, regression), BASELINE, INCIDENT)
    assert result.task == "binary" and set(result.endpoints) == {"price"}
    rows = _window_rows(binary["requests"], binary["labels"], BASELINE)
    assert result.value("baseline", "labelled") == len(rows)
    assert result.value("baseline", "accuracy") == pytest.approx(
        accuracy_score(rows["label"], rows["prediction"]), abs=1e-12)
    assert result.endpoints["price"].task == "regression"


def test_calibration_per_endpoint(frames, mixed):
    binary, regression = frames
    result = calibration.calibration(mixed, BASELINE, INCIDENT, bins=10)
    assert result.task == "regression" and set(result.endpoints) == {"fraud"}
    fraud = result.endpoints["fraud"]
    for name, window in (("baseline", BASELINE), ("incident", INCIDENT)):
        rows = _window_rows(regression["requests"], regression["labels"], window)
        y = rows["label"].astype(float)
        covered = ((y >= rows["pred_lower"]) & (y <= rows["pred_upper"])).mean()
        assert result.value(name, "coverage") == pytest.approx(covered, abs=1e-12)
        rows = _window_rows(binary["requests"], binary["labels"], window)
        conf = rows["score"].to_numpy(float)
        right = (rows["label"] == rows["prediction"]).to_numpy(float)
        k = np.clip(np.floor(conf * 10), 0, 9)
        ece = sum(abs(right[k == b].sum() - conf[k == b].sum()) for b in range(10)) / len(k)
        assert fraud.value(name, "ece") == pytest.approx(ece, abs=1e-12)
    shifts = [f for f in result.findings() if f.id == "model.calibration_shift"]
    assert [f.evidence["endpoint"] for f in shifts] == ["price"]
    assert shifts[0].evidence["task"] == "regression"


def test_prediction_shift_per_endpoint(frames, mixed):
    binary, regression = frames
    perf = performance.model_performance(mixed, BASELINE, INCIDENT)
    result = shift.prediction_shift(mixed, BASELINE, INCIDENT, performance=perf)
    assert result.task == "regression" and set(result.endpoints) == {"fraud"}
    fraud = result.endpoints["fraud"]
    requests = binary["requests"]
    share = [np.mean(requests.loc[(requests["ts"] >= w[0]) & (requests["ts"] < w[1]),
                                  "prediction"] == "1") for w in (BASELINE, INCIDENT)]
    assert abs(fraud.max_share_change) == pytest.approx(abs(share[1] - share[0]), abs=1e-12)
    # the concept-drift inputs are the fraud endpoint's own accuracy drop
    assert fraud.accuracy_drop == pytest.approx(
        -perf.endpoints["fraud"].accuracy_change, abs=1e-12)
    found = {(f.id, f.evidence["endpoint"]) for f in result.findings()}
    assert ("model.prediction_shift", "price") in found
    assert ("model.concept_drift", "fraud") in found
    # the regression's outputs: its own mean prediction per window
    means = [regression["requests"].loc[(regression["requests"]["ts"] >= w[0]) &
                                        (regression["requests"]["ts"] < w[1]),
                                        "prediction"].astype(float).mean()
             for w in (BASELINE, INCIDENT)]
    assert result.mean_output == pytest.approx(tuple(means), abs=1e-9)
    # the same with the performance result made inside
    again = shift.prediction_shift(mixed, BASELINE, INCIDENT)
    assert again.endpoints["fraud"].accuracy_drop == pytest.approx(fraud.accuracy_drop)


def test_a_classifier_beside_a_generative_endpoint_is_measured(frames):
    """An LLM endpoint (most requests; no predicted class) and the fraud classifier: the
    generative main task is not assessed, with the reason, and the classifier is measured."""
    binary = frames[0]
    n = 5000
    ts = START + pd.to_timedelta(np.linspace(0, 4 * 86_400 - 1, n), unit="s")
    chat = pd.DataFrame({"request_id": [f"g{i}" for i in range(n)], "ts": ts,
                         "endpoint": "chat", "input_tokens": 100, "output_tokens": 20})
    con = make_case(requests=pd.concat([binary["requests"], chat], ignore_index=True),
                    labels=binary["labels"])
    for fn in (performance.model_performance, calibration.calibration,
               shift.prediction_shift):
        result = fn(con, BASELINE, INCIDENT)
        assert result.task == "generative" and result.table.empty
        assert any("generative" in g.reason for g in result.not_assessed)
        fraud = result.endpoints["fraud"]
        assert fraud.task == "binary" and not fraud.table.empty
    perf = performance.model_performance(con, BASELINE, INCIDENT)
    rows = _window_rows(binary["requests"], binary["labels"], INCIDENT)
    assert perf.endpoints["fraud"].value("incident", "accuracy") == pytest.approx(
        accuracy_score(rows["label"], rows["prediction"]), abs=1e-12)
    assert [f.evidence["endpoint"] for f in perf.findings()] == ["fraud"]


def test_a_declared_endpoint_without_requests_is_said_not_measured(frames):
    """The catalog declares a regression endpoint that served nothing: no result for it, one
    not-assessed line naming it."""
    binary = frames[0]
    con = make_case(requests=binary["requests"], labels=binary["labels"],
                    endpoints=pd.DataFrame({"endpoint": ["price"], "task": ["regression"]}))
    alone = performance.model_performance(_case(binary), BASELINE, INCIDENT)
    result = performance.model_performance(con, BASELINE, INCIDENT)
    assert result.task == "binary" and not result.endpoints
    (gap,) = [g for g in result.not_assessed if "price" in g.reason]
    assert gap.reason == ("endpoint price (regression) is declared in the endpoints catalog "
                          "but served no request")
    # the binary endpoint's own measures as in the case without the catalog
    np.testing.assert_allclose(result.table["accuracy"], alone.table["accuracy"], atol=1e-12)
    assert [f.summary for f in result.findings()] == [f.summary for f in alone.findings()]
