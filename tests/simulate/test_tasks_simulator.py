"""The multiclass and regression services of the simulator (toolkit.simulate.tasks).

Each property is measured on the generated tables with an independent computation (pandas,
numpy, json), against what the task's model and the mode are documented to do.
"""

from __future__ import annotations

import functools
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from toolkit.errors import InvalidParameterError
from toolkit.simulate import make_case
from toolkit.simulate.case import task_modes
from toolkit.simulate.tasks import MODES
from toolkit.simulate.tasks.shared import decode

ROWS = 20_000


@functools.cache
def generated(mode: str, task: str, seed: int = 1, rows: int = ROWS):
    """``(case, requests joined with labels, tables)`` made once per test process."""
    case = make_case(mode, seed=seed, rows=rows, task=task)
    tables = case.tables()
    joined = tables.requests.merge(tables.labels, on="request_id", how="inner")
    return case, joined, tables


def windows(case, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Answered rows of the baseline and of the incident window."""
    answered = frame[frame["prediction"].notna()]
    ts = answered["ts"]
    base = answered[ts < pd.Timestamp(case.baseline.end)]
    incident = answered[(ts >= pd.Timestamp(case.incident.start))
                        & (ts < pd.Timestamp(case.incident.end))]
    return base, incident


def probabilities(frame: pd.DataFrame, classes: list[str]) -> np.ndarray:
    parsed = pd.DataFrame([json.loads(s) for s in frame["scores"]])
    return parsed[classes].to_numpy()


def accuracy(frame: pd.DataFrame) -> float:
    return float((frame["prediction"] == frame["label"]).mean())


def top_label_ece(frame: pd.DataFrame, bins: int = 10) -> float:
    conf = frame["score"].to_numpy()
    correct = (frame["prediction"] == frame["label"]).to_numpy(dtype=float)
    idx = np.minimum((conf * bins).astype(int), bins - 1)
    total = 0.0
    for b in np.unique(idx):
        sel = idx == b
        total += sel.sum() * abs(conf[sel].mean() - correct[sel].mean())
    return total / len(conf)


def classwise_ece(frame: pd.DataFrame, classes: list[str], bins: int = 10) -> float:
    probs = probabilities(frame, classes)
    out = []
    for k, name in enumerate(classes):
        p = probs[:, k]
        hit = (frame["label"] == name).to_numpy(dtype=float)
        idx = np.minimum((p * bins).astype(int), bins - 1)
        total = sum((idx == b).sum() * abs(p[idx == b].mean() - hit[idx == b].mean())
                    for b in np.unique(idx))
        out.append(total / len(p))
    return float(np.mean(out))


def regression_frame(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.assign(y=frame["label"].astype(float), p=frame["prediction"].astype(float))
    return out.assign(covered=(out["y"] >= out["pred_lower"]) & (out["y"] <= out["pred_upper"]))


def rmse(frame: pd.DataFrame) -> float:
    return float(np.sqrt(((frame["y"] - frame["p"]) ** 2).mean()))


# -- multiclass ------------------------------------------------------------------------------


def test_multiclass_tables_have_classes_scores_summing_to_one_and_the_top_class():
    case, _, tables = generated("none", "multiclass")
    classes = json.loads(tables.endpoints["classes"].iloc[0])
    assert 3 <= len(classes) <= 10
    assert set(tables.endpoints["task"]) == {"multiclass"}
    assert set(tables.endpoints["endpoint"]) == set(tables.requests["endpoint"])
    answered = tables.requests[tables.requests["prediction"].notna()]
    probs = probabilities(answered, classes)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(answered["score"].to_numpy(), probs.max(axis=1))
    top = np.asarray(classes, dtype=object)[probs.argmax(axis=1)]
    assert (answered["prediction"].to_numpy() == top).all()
    assert set(tables.labels["label"]) <= set(classes)
    # every class occurs in the labels of 20k requests
    assert set(tables.labels["label"]) == set(classes)
    errors = tables.requests[tables.requests["status"] == "error"]
    assert len(errors) and errors["prediction"].isna().all() and errors["scores"].isna().all()


def test_seeds_draw_different_class_counts_in_range():
    counts = {len(make_case("none", seed=s, rows=1_000, task="multiclass").head.classes)
              for s in range(12)}
    assert min(counts) >= 3 and max(counts) <= 10 and len(counts) >= 3


def test_multiclass_calibration_collapse_keeps_accuracy_and_raises_ece():
    case, joined, _ = generated("calibration_collapse", "multiclass")
    classes = list(case.head.classes)
    base, incident = windows(case, joined)
    assert abs(accuracy(incident) - accuracy(base)) < 0.03
    assert top_label_ece(incident) > top_label_ece(base) + 0.03
    assert classwise_ece(incident, classes) > classwise_ece(base, classes) + 0.005
    assert incident["score"].mean() > base["score"].mean() + 0.05  # overconfident
    assert set(incident["model_version"]) == {case.injected["model_to"]}


def test_multiclass_bad_release_loses_accuracy_on_the_same_inputs():
    case, joined, _ = generated("bad_release", "multiclass")
    base, incident = windows(case, joined)
    new = incident[incident["model_version"] == case.injected["model_to"]]
    assert accuracy(new) < accuracy(base) - 0.02
    # same inputs: the features did not move
    assert abs(new["amount_usd"].median() / base["amount_usd"].median() - 1) < 0.1


def test_multiclass_concept_drift_changes_labels_of_some_classes_not_inputs():
    case, joined, _ = generated("concept_drift", "multiclass", seed=2)
    base, incident = windows(case, joined)
    late = incident[incident["ts"] >= incident["ts"].quantile(0.5)]
    assert accuracy(late) < accuracy(base) - 0.03
    drifted = case.head.summary()["drift_classes"]
    assert drifted


    def errors(f: pd.DataFrame, involving: bool) -> float:
        wrong = f["prediction"] != f["label"]
        touches = f["label"].isin(drifted) | f["prediction"].isin(drifted)
        return float((wrong & (touches if involving else ~touches)).mean())

    # P(y|x) moved for the drifting classes only: the new errors involve them
    assert errors(late, True) > errors(base, True) + 0.03
    assert abs(errors(late, False) - errors(base, False)) < 0.02
    assert abs(late["amount_usd"].median() / base["amount_usd"].median() - 1) < 0.1
    assert set(late["model_version"]) == set(base["model_version"])


def test_multiclass_adversarial_rows_are_confidently_wrong():
    case, joined, _ = generated("adversarial_inputs", "multiclass")
    source = case.injected["source"]["client_version"]
    attack = joined[(joined["client_version"] == source) & joined["prediction"].notna()]
    rest = joined[(joined["client_version"] != source) & joined["prediction"].notna()]
    assert len(attack) > 50
    assert accuracy(attack) < 0.2 < accuracy(rest)


def test_multiclass_version_skew_rows_are_wrong_and_truth_follows_the_world():
    case, joined, _ = generated("version_skew", "multiclass")
    m0, p1 = case.injected["pair_not_in_lineage"]
    skewed = joined[(joined["model_version"] == m0) & (joined["pipeline_version"] == p1)
                    & joined["prediction"].notna()]
    base, _ = windows(case, joined)
    assert len(skewed) > 100
    assert accuracy(skewed) < accuracy(base) - 0.1


# -- regression ------------------------------------------------------------------------------


def test_regression_intervals_cover_near_nominal_before_the_incident():
    case, joined, tables = generated("none", "regression")
    nominal = float(tables.endpoints["interval_coverage"].iloc[0])
    assert nominal in (0.8, 0.9)
    frame = regression_frame(joined[joined["prediction"].notna()])
    assert abs(frame["covered"].mean() - nominal) < 0.03
    assert (frame["pred_lower"] < frame["p"]).all() and (frame["p"] < frame["pred_upper"]).all()
    assert tables.requests["score"].isna().all()
    # numbers as text
    assert pd.to_numeric(tables.labels["label"]).notna().all()


def test_regression_calibration_collapse_narrows_intervals_not_errors():
    case, joined, tables = generated("calibration_collapse", "regression")
    nominal = float(tables.endpoints["interval_coverage"].iloc[0])
    base, incident = (regression_frame(f) for f in windows(case, joined))
    assert abs(base["covered"].mean() - nominal) < 0.04
    assert incident["covered"].mean() < nominal - 0.15
    mae = lambda f: (f["y"] - f["p"]).abs().mean()  # noqa: E731
    assert 0.85 < mae(incident) / mae(base) < 1.15
    width = lambda f: (f["pred_upper"] - f["pred_lower"]).mean()  # noqa: E731
    assert width(incident) < width(base) / 2


def test_regression_bad_release_raises_error_on_the_same_inputs():
    case, joined, _ = generated("bad_release", "regression")
    base, incident = (regression_frame(f) for f in windows(case, joined))
    new = incident[incident["model_version"] == case.injected["model_to"]]
    assert rmse(new) > 1.15 * rmse(base)
    assert abs(new["amount_usd"].median() / base["amount_usd"].median() - 1) < 0.1


def test_regression_concept_drift_raises_error_without_a_release():
    case, joined, _ = generated("concept_drift", "regression", seed=2)
    base, incident = (regression_frame(f) for f in windows(case, joined))
    late = incident[incident["ts"] >= incident["ts"].quantile(0.5)]
    assert rmse(late) > 1.2 * rmse(base)
    assert set(late["model_version"]) == set(base["model_version"])


def test_regression_adversarial_rows_fall_outside_their_intervals():
    case, joined, _ = generated("adversarial_inputs", "regression")
    source = case.injected["source"]["client_version"]
    frame = regression_frame(joined[joined["prediction"].notna()])
    attack = frame[frame["client_version"] == source]
    assert len(attack) > 50 and attack["covered"].mean() < 0.05


# -- shared machinery --------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_serving_columns_and_label_rows_are_the_binary_cases(task):
    """Traffic, replicas, errors and label arrival come from the binary simulator unchanged."""
    case = make_case("cache_staleness", seed=4, rows=3_000, task=task)
    binary = make_case("cache_staleness", seed=4, rows=3_000)
    ours, theirs = case.tables(), binary.tables()
    same = ["request_id", "ts", "model_version", "host", "latency_ms", "status", "cache_hit",
            "cache_model_version", "amount_usd"]
    pd.testing.assert_frame_equal(ours.requests[same], theirs.requests[same])
    pd.testing.assert_frame_equal(ours.labels[["request_id", "labeled_at"]],
                                  theirs.labels[["request_id", "labeled_at"]])
    pd.testing.assert_frame_equal(ours.events, theirs.events)
    assert ours.endpoints is not None and theirs.endpoints is None
    assert case.truth()["task"] == task and "task" not in binary.truth()


def test_stale_cache_hits_carry_the_old_versions_answers():
    case = make_case("cache_staleness", seed=4, rows=20_000, task="multiclass")
    requests = case.tables().requests
    stale = requests[requests["cache_hit"].fillna(False)
                     & (requests["cache_model_version"] == case.injected["model_from"])
                     & (requests["model_version"] == case.injected["model_to"])]
    assert len(stale) > 20
    # the same inputs answered by the new model differ for some of them: recompute both
    # versions' answers with the head and check the stale rows carry the old one
    table = pa.Table.from_pandas(stale, preserve_index=False)
    d = decode(case.plan, table)
    probs = case.head.probabilities(d)
    classes = np.asarray(case.head.classes, dtype=object)
    assert (classes[probs.argmax(axis=1)] == stale["prediction"].to_numpy()).all()
    new = case.head.models[case.injected["model_to"]]
    fresh = new.logits(d.received, case.plan.std).argmax(axis=1)
    assert (classes[fresh] != stale["prediction"].to_numpy()).any()


def test_reference_carries_the_tasks_labels_and_predictions():
    case = make_case("none", seed=3, rows=5_000, task="regression")
    ref = case.reference()
    if ref is None:
        pytest.skip("this seed's platform exports no reference")
    assert "score" not in ref.columns
    assert pd.to_numeric(ref["prediction"]).notna().all()
    mc = make_case("none", seed=3, rows=5_000, task="multiclass").reference()
    assert set(mc["label"]) <= set(make_case("none", seed=3, rows=5_000,
                                             task="multiclass").head.classes)


def test_same_seed_same_tables_and_binary_default_unchanged():
    a = make_case("bad_release", seed=5, rows=2_000, task="regression").tables().requests
    b = make_case("bad_release", seed=5, rows=2_000, task="regression").tables().requests
    pd.testing.assert_frame_equal(a, b)
    plain = make_case("bad_release", seed=5, rows=2_000).tables().requests
    explicit = make_case("bad_release", seed=5, rows=2_000, task="binary").tables().requests
    pd.testing.assert_frame_equal(plain, explicit)


def test_bad_requests_are_refused_with_the_reason():
    with pytest.raises(InvalidParameterError, match="does not simulate 'unit_change'"):
        make_case("unit_change", seed=1, rows=2_000, task="multiclass")
    with pytest.raises(InvalidParameterError, match="Unknown task 'ranking'"):
        make_case("none", seed=1, rows=2_000, task="ranking")
    with pytest.raises(InvalidParameterError, match="Presets are binary"):
        make_case(None, seed=1, rows=2_000, task="regression", preset="stale-cache-72h")
    assert task_modes("multiclass") == MODES and "none" in MODES


def test_generative_task_missing_is_a_clear_error(monkeypatch):
    import importlib

    real = importlib.import_module

    def without_generative(name, *args, **kwargs):
        if name == "toolkit.simulate.generative":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", without_generative)
    with pytest.raises(InvalidParameterError, match="generative simulator"):
        make_case("none", seed=1, rows=2_000, task="generative")
    with pytest.raises(InvalidParameterError, match="generative simulator"):
        task_modes("generative")
    with pytest.raises(InvalidParameterError, match="mode, seed and rows only"):
        make_case("none", seed=1, rows=2_000, task="generative", world="varied")


def test_varied_world_names_are_read_back():
    """The varied world renames features and levels: the head reads them back (no level is
    lost to the ``unknown`` code, every numeric value arrives)."""
    case = make_case("none", seed=2, rows=6_000, task="multiclass", world="varied")
    requests = case.tables().requests
    d = decode(case.plan, pa.Table.from_pandas(requests, preserve_index=False))
    for f in case.plan.features:
        column = requests[case.plan.column(f.name)]
        values = d.received[f.name]
        if f.numeric:
            assert np.isnan(values).sum() == column.isna().sum()
        else:
            assert ((values < 0) == column.isna().to_numpy()).all()
            assert values.max() < len(f.levels)  # no value fell to "unknown"
    assert case.plan.column("amount_usd") != "amount_usd"
