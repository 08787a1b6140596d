"""model.feedback on hand-built cases: bad shares, eval-score means, refusals and their
intervals checked against hand formulas and scipy on the same rows."""

from __future__ import annotations

import importlib
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import toolkit as tk

fb = importlib.import_module("toolkit.diagnose.model.feedback")

T0 = pd.Timestamp("2026-03-01", tz="UTC")
BASELINE = (T0, T0 + pd.Timedelta("5h"))
INCIDENT = (T0 + pd.Timedelta("5h"), T0 + pd.Timedelta("10h"))


def _case(tmp_path, **tables: pd.DataFrame):
    con = tk.connect(tmp_path / "case.duckdb")
    for name, table in tables.items():
        report = tk.load(con, table, table=name)
        assert report.rows_rejected == 0
    return con


def _wilson(k: float, n: float, z: float = 1.959964) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def _requests(n: int = 1200, *, canary: bool, bad_v2: float = 0.3, refuse_v2: float = 0.01,
              seed: int = 0) -> pd.DataFrame:
    """v1 serves the baseline; in the incident v2 takes half the traffic (canary) or all of
    it. v1: 10% bad feedback, 1% refusals; v2: ``bad_v2`` and ``refuse_v2``."""
    rng = np.random.default_rng(seed)
    ts = T0 + pd.to_timedelta(np.sort(rng.uniform(0, 10 * 3600, n)), unit="s")
    incident = np.asarray(ts >= INCIDENT[0])
    v2 = incident & ((rng.uniform(size=n) < 0.5) if canary else True)
    bad = rng.uniform(size=n) < np.where(v2, bad_v2, 0.1)
    refused = rng.uniform(size=n) < np.where(v2, refuse_v2, 0.01)
    return pd.DataFrame({
        "request_id": [f"r{k}" for k in range(n)], "ts": ts,
        "model_version": np.where(v2, "v2", "v1"), "input_tokens": rng.integers(100, 900, n),
        "finish_reason": np.where(refused, "content_filter", "stop"),
        "_bad": bad})


def _labels(frame: pd.DataFrame, *, every: int = 1) -> pd.DataFrame:
    part = frame.iloc[::every]
    return pd.DataFrame({"request_id": part["request_id"],
                         "label": np.where(part["_bad"], "bad", "good")})


def test_bad_share_per_version_with_wilson_intervals(tmp_path):
    frame = _requests(canary=True)
    con = _case(tmp_path, requests=frame.drop(columns="_bad"), labels=_labels(frame, every=2))
    r = fb.feedback(con, BASELINE, INCIDENT)
    assert r.metric == "bad_share"
    labelled = frame.iloc[::2]
    for (window, version), part in labelled.assign(
            window=np.where(labelled["ts"] < BASELINE[1], "baseline", "incident")).groupby(
            ["window", "model_version"]):
        row = r.table.set_index(["window", "model_version"]).loc[(window, version)]
        k, n = part["_bad"].sum(), len(part)
        assert row["labelled"] == n and row["value"] == pytest.approx(k / n)
        assert (row["value_lo"], row["value_hi"]) == pytest.approx(_wilson(k, n), rel=1e-9)
    [f] = [f for f in r.findings() if f.id == "model.feedback_regression"]
    e = f.evidence
    assert (e["version"], e["reference_version"], e["compared_in"]) == ("v2", "v1", "incident")
    assert e["new_version"] is True and f.onset >= INCIDENT[0]
    inc = labelled[labelled["ts"] >= INCIDENT[0]]
    v1, v2 = inc[inc["model_version"] == "v1"], inc[inc["model_version"] == "v2"]
    assert f.statistic == pytest.approx(v2["_bad"].mean() - v1["_bad"].mean())
    assert e["input_ratio"] == pytest.approx(v2["input_tokens"].mean() /
                                             v1["input_tokens"].mean())
    pooled = (v1["_bad"].sum() + v2["_bad"].sum()) / (len(v1) + len(v2))
    z = (v2["_bad"].mean() - v1["_bad"].mean()) / math.sqrt(
        pooled * (1 - pooled) * (1 / len(v1) + 1 / len(v2)))
    assert e["pvalue"] == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-6)


def test_eval_scores_compared_with_the_baseline_version(tmp_path):
    frame = _requests(canary=False)
    rng = np.random.default_rng(2)
    score = np.where(frame["model_version"] == "v2", rng.normal(0.70, 0.1, len(frame)),
                     rng.normal(0.80, 0.1, len(frame))).round(4)
    labels = pd.DataFrame({"request_id": frame["request_id"], "label": score.astype(str)})
    con = _case(tmp_path, requests=frame.drop(columns="_bad"), labels=labels)
    r = fb.feedback(con, BASELINE, INCIDENT)
    assert r.metric == "score"
    b, i = score[frame["ts"] < BASELINE[1]], score[frame["ts"] >= INCIDENT[0]]
    row = r.table.set_index(["window", "model_version"]).loc[("incident", "v2")]
    assert row["value"] == pytest.approx(i.mean())
    half = 1.959964 * i.std(ddof=1) / math.sqrt(len(i))
    assert (row["value_lo"], row["value_hi"]) == pytest.approx((i.mean() - half,
                                                                i.mean() + half))
    [f] = [f for f in r.findings() if f.id == "model.feedback_regression"]
    assert f.evidence["compared_in"] == "baseline" and f.evidence["metric"] == "score"
    assert f.evidence["pvalue"] == pytest.approx(
        stats.ttest_ind(b, i, equal_var=False).pvalue, rel=1e-6)
    assert f.statistic == pytest.approx((b.mean() - i.mean()) /
                                        math.sqrt((b.var(ddof=1) + i.var(ddof=1)) / 2))
    assert f.severity == "high"


def test_refusal_rise_on_the_new_version(tmp_path):
    frame = _requests(canary=True, bad_v2=0.1, refuse_v2=0.08)
    con = _case(tmp_path, requests=frame.drop(columns="_bad"), labels=_labels(frame))
    r = fb.feedback(con, BASELINE, INCIDENT)
    found = {f.id: f for f in r.findings()}
    assert set(found) == {"model.refusal_rise"}
    e = found["model.refusal_rise"].evidence
    inc = frame[frame["ts"] >= INCIDENT[0]]
    v2 = inc[inc["model_version"] == "v2"]
    k = int((v2["finish_reason"] == "content_filter").sum())
    assert e["version"] == "v2" and e["share"] == pytest.approx(k / len(v2))
    assert (e["share_lo"], e["share_hi"]) == pytest.approx(_wilson(k, len(v2)), rel=1e-9)


def test_healthy_feedback_has_no_finding(tmp_path):
    frame = _requests(canary=True, bad_v2=0.1, refuse_v2=0.01)
    con = _case(tmp_path, requests=frame.drop(columns="_bad"), labels=_labels(frame))
    r = fb.feedback(con, BASELINE, INCIDENT)
    assert r.findings() == [] and r.not_assessed == ()


def test_window_drop_without_versions(tmp_path):
    frame = _requests(canary=False).drop(columns=["model_version"])
    con = _case(tmp_path, requests=frame.drop(columns="_bad"), labels=_labels(frame))
    [f] = fb.feedback(con, BASELINE, INCIDENT).findings()
    assert f.id == "model.feedback_drop"
    b, i = frame[frame["ts"] < BASELINE[1]], frame[frame["ts"] >= INCIDENT[0]]
    assert f.evidence["value_baseline"] == pytest.approx(b["_bad"].mean())
    assert f.evidence["value_incident"] == pytest.approx(i["_bad"].mean())


def test_missing_labels_and_finish_reason_not_assessed(tmp_path):
    frame = _requests(canary=True, refuse_v2=0.08)
    con = _case(tmp_path, requests=frame.drop(columns="_bad"))
    r = fb.feedback(con, BASELINE, INCIDENT)
    assert [g.check for g in r.not_assessed] == ["model.feedback:labels"]
    assert [f.id for f in r.findings()] == ["model.refusal_rise"]
    (tmp_path / "b").mkdir()
    con = _case(tmp_path / "b", requests=frame.drop(columns=["_bad", "finish_reason"]))
    r = fb.feedback(con, BASELINE, INCIDENT)
    assert {g.check for g in r.not_assessed} == {"model.feedback:labels",
                                                 "model.feedback:refusals"}
    assert r.findings() == []


def test_free_text_labels_are_not_guessed(tmp_path):
    frame = _requests(canary=True)
    labels = pd.DataFrame({"request_id": frame["request_id"],
                           "label": np.where(frame["_bad"], "meh", "good")})
    con = _case(tmp_path, requests=frame.drop(columns="_bad"), labels=labels)
    r = fb.feedback(con, BASELINE, INCIDENT)
    assert r.table.empty
    assert "'meh'" in next(g.reason for g in r.not_assessed if g.check ==
                           "model.feedback:labels")


def test_a_classifiers_labels_are_not_feedback(tmp_path):
    """Labels 0/1 of a classifier's predictions are ground truth, not good/bad judgements."""
    frame = _requests(canary=True)
    frame["prediction"] = "1"
    con = _case(tmp_path, requests=frame.drop(columns=["_bad", "input_tokens",
                                                       "finish_reason"]),
                labels=pd.DataFrame({"request_id": frame["request_id"],
                                     "label": np.where(frame["_bad"], "0", "1")}))
    r = fb.feedback(con, BASELINE, INCIDENT)
    assert r.table.empty and r.findings() == []
    assert "model.performance" in next(g.reason for g in r.not_assessed
                                       if g.check == "model.feedback:labels")


def test_judgement_words_in_any_case_and_padding_count_as_good_or_bad(tmp_path):
    """Every spelling of :data:`GOOD` / :data:`BAD` (upper case, padded) is a judgement: the
    bad share is the hand count of the bad words (the test runs as a constant-list lookup)."""
    frame = _requests(canary=False, seed=3)
    rng = np.random.default_rng(5)
    bad_words = np.array([" Thumbs_Down", "BAD", "dislike\n", "rejected", "0", "No "])
    good_words = np.array(["Good", " thumbs_up", "ACCEPTED", "1", "yes", "Pass"])
    words = np.where(frame["_bad"], rng.choice(bad_words, len(frame)),
                     rng.choice(good_words, len(frame)))
    labels = pd.DataFrame({"request_id": frame["request_id"], "label": words})
    con = _case(tmp_path, requests=frame.drop(columns="_bad"), labels=labels)
    r = fb.feedback(con, BASELINE, INCIDENT)
    assert r.metric == "bad_share"
    table = r.table.set_index(["window", "model_version"])
    inside = frame["ts"] < BASELINE[1]
    for window, version, part in (("baseline", "v1", frame[inside]),
                                  ("incident", "v2", frame[~inside])):
        row = table.loc[(window, version)]
        assert row["labelled"] == len(part)
        assert row["value"] == pytest.approx(part["_bad"].mean(), rel=1e-12)
