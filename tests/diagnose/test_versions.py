"""Version matrix against lineage: numbers, version skew, benign deploys, missing inputs."""

from __future__ import annotations

import functools
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from tests.diagnose.conftest import make_case
from toolkit.diagnose._base import DiagnosticResult
from toolkit.diagnose.integration.versions import ID, version_matrix

T0 = pd.Timestamp("2026-03-01T00:00Z")
BASELINE = (T0, T0 + timedelta(hours=10))
INCIDENT = (T0 + timedelta(hours=10), T0 + timedelta(hours=16))
LINEAGE = pd.DataFrame({"release": ["r1", "r2"], "model_version": ["m1", "m2"],
                        "pipeline_version": ["p1", "p2"], "client_version": [None, None]})


def _requests(n=960, *, seed=0, model=None, pipeline=None, client=None, score=None,
              correct=None):
    """One request a minute for 16 h; the callables give each column from the minute index."""
    rng = np.random.default_rng(seed)
    k = np.arange(n)
    ts = T0 + pd.to_timedelta(k, unit="min")
    frame = pd.DataFrame({
        "request_id": [f"r{i}" for i in k], "ts": ts,
        "model_version": model(k) if model else "m2",
        "pipeline_version": pipeline(k) if pipeline else "p2",
        "client_version": client(k) if client else np.where(k % 2, "web-1", "ios-1"),
        "score": score(k, rng) if score else rng.uniform(0.55, 0.8, n),
    })
    ok = correct(k, rng) if correct else rng.random(n) < 0.9
    frame["prediction"] = "fraud"
    labels = pd.DataFrame({"request_id": frame["request_id"],
                           "label": np.where(ok, "fraud", "legit"),
                           "labeled_at": ts + timedelta(hours=1)}).iloc[::2]
    return frame, labels


def _skew_case(*, rollback=True, lineage=True):
    """The model is rolled back at 10:00 on 40% of the traffic; the pipeline is not."""
    skewed = lambda k: (k >= 600) & (k % 5 < 2)  # noqa: E731
    requests, labels = _requests(
        model=lambda k: np.where(skewed(k), "m1", "m2"),
        score=lambda k, rng: np.where(skewed(k), rng.uniform(0.9, 1.0, len(k)),
                                      rng.uniform(0.55, 0.8, len(k))),
        correct=lambda k, rng: np.where(skewed(k), rng.random(len(k)) < 0.4,
                                        rng.random(len(k)) < 0.9))
    tables = {"requests": requests, "labels": labels}
    if lineage:
        tables["lineage"] = LINEAGE
    if rollback:
        tables["events"] = pd.DataFrame({"ts": [T0 + timedelta(hours=10)], "kind": ["rollback"],
                                         "artifact": ["model"], "version": ["m1"]})
    return make_case(**tables), requests, labels


def test_numbers_match_pandas():
    con, requests, labels = _skew_case()
    result = version_matrix(con, BASELINE, INCIDENT, bucket=timedelta(hours=1))
    assert all(g.check != ID for g in result.not_assessed)

    frame = requests.copy()
    frame["window"] = np.select(
        [(frame.ts >= BASELINE[0]) & (frame.ts < BASELINE[1]),
         (frame.ts >= INCIDENT[0]) & (frame.ts < INCIDENT[1])], ["baseline", "incident"], None)
    frame = frame.merge(labels, on="request_id", how="left")
    frame["correct"] = (frame["prediction"] == frame["label"]).where(frame["label"].notna())
    keys = ["window", "model_version", "pipeline_version", "client_version"]
    expected = frame.dropna(subset=["window"]).groupby(keys).agg(
        requests=("request_id", "size"), mean_score=("score", "mean"),
        labelled=("label", "count"), accuracy=("correct", "mean")).reset_index()
    got = result.table.merge(expected, on=keys, suffixes=("", "_pd"))
    assert len(got) == len(expected) == len(result.table)
    assert (got["requests"] == got["requests_pd"]).all()
    np.testing.assert_allclose(got["mean_score"], got["mean_score_pd"])
    # accuracy is measured in the incident (the baseline is only a fallback reference)
    inc = got[got["window"] == "incident"]
    assert (inc["labelled"] == inc["labelled_pd"]).all()
    np.testing.assert_allclose(inc["accuracy"], inc["accuracy_pd"].astype(float))
    assert (got.loc[got["window"] == "baseline", "labelled"] == 0).all()
    shares = got.groupby("window")["share"].sum()
    np.testing.assert_allclose(shares, 1.0)

    # the skew share per bucket, against pandas
    frame["bucket"] = frame["ts"].dt.floor("h")
    frame["unknown"] = ~((frame.model_version == "m1") & (frame.pipeline_version == "p1")
                         | (frame.model_version == "m2") & (frame.pipeline_version == "p2"))
    per_bucket = frame.groupby("bucket")["unknown"].mean()
    tl = result.timeline.set_index("bucket_start")["skew_share"]
    np.testing.assert_allclose(tl.to_numpy(), per_bucket.loc[tl.index].to_numpy())
    inc = frame[frame.window == "incident"]
    assert result.skew_share("incident") == pytest.approx(inc["unknown"].mean())


def test_latest_label_wins():
    requests, labels = _requests(n=120)
    labels = labels.set_index("request_id")
    labels.loc["r60", "label"] = "fraud"
    older = pd.DataFrame({"request_id": ["r60"], "label": ["legit"],
                          "labeled_at": [T0 - timedelta(days=1)]})
    labels = pd.concat([labels.reset_index(), older], ignore_index=True)
    con = make_case(requests=requests, labels=labels)
    windows = (T0, T0 + timedelta(hours=1)), (T0 + timedelta(hours=1), T0 + timedelta(hours=2))
    skipped = version_matrix(con, *windows)
    assert skipped.table["labelled"].sum() == 0
    assert "skipped" in {g.check: g.reason for g in skipped.not_assessed}[f"{ID}.accuracy"]
    result = version_matrix(con, *windows, accuracy=True)
    assert f"{ID}.accuracy" not in {g.check for g in result.not_assessed}
    inc = result.table[result.table["window"] == "incident"]
    assert inc["labelled"].sum() == 30  # r60 counted once, with its latest label
    latest = labels.drop_duplicates("request_id", keep="first").set_index("request_id")
    ids = [f"r{i}" for i in range(60, 120, 2)]
    assert inc["correct"].sum() == latest.loc[ids, "label"].eq("fraud").sum()
    assert result.table.loc[result.table["window"] == "baseline", "labelled"].sum() == 0
    assert len(result.sql) == 2 and len(skipped.sql) == 1


def test_baseline_reference_when_the_incident_has_no_known_labels():
    # every incident request is on the skewed pair: the end of the baseline is the reference
    requests, labels = _requests(
        model=lambda k: np.where(k >= 600, "m1", "m2"),
        correct=lambda k, rng: np.where(k >= 600, rng.random(len(k)) < 0.4,
                                        rng.random(len(k)) < 0.9))
    con = make_case(requests=requests, labels=labels, lineage=LINEAGE)
    result = version_matrix(con, BASELINE, INCIDENT)
    reference = {g.check: g.reason for g in result.not_assessed}[f"{ID}.baseline_accuracy"]
    assert "2026-03-01T00:00:00Z/2026-03-01T10:00:00Z" in reference  # 10 h of baseline < 1 day
    (finding,) = result.findings()
    assert finding.evidence["labelled_known"] == 300 and finding.evidence["less_accurate"]
    assert finding.severity == "high"
    assert len(result.sql) == 3


def test_skew_with_lineage_and_rollback_is_high():
    con, requests, _ = _skew_case()
    result = version_matrix(con, BASELINE, INCIDENT)
    assert result.known_source == "lineage"
    (finding,) = result.findings()
    assert finding.id == "integration.version_skew"
    assert finding.severity == "high"
    assert finding.statistic == pytest.approx(0.4, abs=0.01)
    assert finding.evidence["less_accurate"] and finding.evidence["more_confident"]
    assert finding.evidence["recombined"]
    assert finding.evidence["pairs"][0]["model_version"] == "m1"
    assert abs(finding.onset - INCIDENT[0].to_pydatetime()) <= timedelta(minutes=5)
    assert finding.to_dict()["onset"].startswith("2026-03-01T10:0")
    pairs = result.pairs[result.pairs["window"] == "incident"].set_index("model_version")
    assert not pairs.loc["m1", "known_pair"] and pairs.loc["m2", "known_pair"]
    assert pairs.loc["m1", "accuracy"] < 0.6 < pairs.loc["m2", "accuracy"]
    assert len(result.rollbacks()) == 1
    signals = result.signals()
    assert set(signals["signal"]) == {"versions.skew_share", "versions.unknown_share"}


def test_skew_without_lineage_is_judged_on_the_baseline():
    # baseline: release r1 (m1 x p1) until 05:00, then r2 (m2 x p2); incident: m1 x p2
    con, _, _ = (lambda r: (make_case(requests=r[0], labels=r[1]), *r))(_requests(
        model=lambda k: np.where((k < 300) | ((k >= 600) & (k % 5 < 2)), "m1", "m2"),
        pipeline=lambda k: np.where(k < 300, "p1", "p2"),
        correct=lambda k, rng: np.where((k >= 600) & (k % 5 < 2), rng.random(len(k)) < 0.4,
                                        rng.random(len(k)) < 0.9)))
    result = version_matrix(con, BASELINE, INCIDENT)
    assert result.known_source == "baseline"
    assert any(g.check == f"{ID}.lineage" for g in result.not_assessed)
    (finding,) = result.findings()
    assert finding.severity == "high"  # recombined and less accurate
    assert finding.evidence["recombined"] and finding.evidence["less_accurate"]


def test_benign_release_in_lineage_and_new_client_give_no_finding():
    # release r2 replaces r1 at 12:00 (deploy events, in lineage); a new web client rolls out
    requests, labels = _requests(
        model=lambda k: np.where(k < 720, "m1", "m2"),
        pipeline=lambda k: np.where(k < 720, "p1", "p2"),
        client=lambda k: np.where(k % 2, np.where(k >= 700, "web-2", "web-1"), "ios-1"),
        score=lambda k, rng: np.where(k < 720, rng.uniform(0.55, 0.8, len(k)),
                                      rng.uniform(0.7, 0.95, len(k))))
    events = pd.DataFrame({"ts": [T0 + timedelta(hours=12)] * 2, "kind": ["deploy"] * 2,
                           "artifact": ["model", "pipeline"], "version": ["m2", "p2"]})
    con = make_case(requests=requests, labels=labels, events=events, lineage=LINEAGE)
    result = version_matrix(con, BASELINE, INCIDENT)
    assert result.skew_share("incident") == 0
    assert result.unknown_share("incident") == 0  # lineage names no client: wildcard
    assert result.findings() == []
    assert len(result.events) == 2


def test_benign_release_without_lineage_is_not_high():
    # a new, more confident release (model and pipeline together) with no lineage
    requests, labels = _requests(
        model=lambda k: np.where(k < 720, "m1", "m2"),
        pipeline=lambda k: np.where(k < 720, "p1", "p2"),
        client=lambda k: np.where(k % 2, np.where(k >= 700, "web-2", "web-1"), "ios-1"),
        score=lambda k, rng: np.where(k < 720, rng.uniform(0.55, 0.8, len(k)),
                                      rng.uniform(0.8, 0.99, len(k))))
    events = pd.DataFrame({"ts": [T0 + timedelta(hours=12)], "kind": ["deploy"],
                           "artifact": ["model"], "version": ["m2"]})
    con = make_case(requests=requests, labels=labels, events=events)
    result = version_matrix(con, BASELINE, INCIDENT)
    assert result.skew_share("incident") > 0.5
    (finding,) = result.findings()
    assert finding.severity == "low" and finding.evidence["announced_release"]
    # the same release without its deploy event: a new, unexplained pair
    unannounced = version_matrix(make_case(requests=requests, labels=labels), BASELINE,
                                 INCIDENT)
    assert [f.severity for f in unannounced.findings()] == ["medium"]


def test_unknown_pair_already_in_baseline_is_low():
    requests, labels = _requests(model=lambda k: np.where(k % 10 == 0, "m9", "m2"))
    con = make_case(requests=requests, labels=labels, lineage=LINEAGE)
    result = version_matrix(con, BASELINE, INCIDENT, min_requests=20)
    (finding,) = result.findings()
    assert finding.severity == "low"
    assert finding.evidence["baseline_share"] == pytest.approx(0.1, abs=0.01)


def test_missing_inputs_are_not_assessed():
    requests, _ = _requests(n=200)
    no_model = make_case(requests=requests.drop(columns=["model_version"]))
    result = version_matrix(no_model, (T0, T0 + timedelta(hours=1)),
                            (T0 + timedelta(hours=1), T0 + timedelta(hours=3)))
    assert result.not_assessed and result.not_assessed[0].check == ID
    assert "model_version" in result.not_assessed[0].reason
    assert result.findings() == [] and result.signals().empty

    no_pipeline = make_case(requests=requests.drop(columns=["pipeline_version", "score",
                                                            "prediction"]))
    result = version_matrix(no_pipeline, (T0, T0 + timedelta(hours=1)),
                            (T0 + timedelta(hours=1), T0 + timedelta(hours=3)))
    checks = {g.check for g in result.not_assessed}
    assert {f"{ID}.pipeline", f"{ID}.lineage", f"{ID}.accuracy"} <= checks
    assert result.table["mean_score"].isna().all()
    assert result.findings() == []

    empty_incident = version_matrix(no_pipeline, (T0, T0 + timedelta(hours=1)),
                                    (T0 + timedelta(days=1), T0 + timedelta(days=2)))
    assert "incident" in empty_incident.not_assessed[-1].reason

    import toolkit as tk
    empty = version_matrix(tk.connect(), BASELINE, INCIDENT)
    assert empty.not_assessed and empty.findings() == []


def test_plot_and_frame():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.axes import Axes

    con, _, _ = _skew_case()
    result = version_matrix(con, BASELINE, INCIDENT)
    assert isinstance(result, DiagnosticResult)
    assert isinstance(result.plot(), Axes)
    frame = result.to_frame()
    assert (frame["diagnostic"] == ID).all() and len(frame) == len(result.table)
    assert result.sql and all("SELECT" in q for q in result.sql)
    assert "Version matrix" in result._repr_html_()
    assert "skew share incident" in repr(result)
    import toolkit as tk

    assert isinstance(version_matrix(tk.connect(), BASELINE, INCIDENT).plot(), Axes)


def test_worse_release_and_restoring_rollback_are_not_high():
    # without lineage: a new pipeline p3 is deployed at 10:00 and is less accurate (a bad
    # release, or a schema change upstream); it is rolled back to p2 at 15:00
    new = lambda k: (k >= 600) & (k < 900)  # noqa: E731
    requests, labels = _requests(
        pipeline=lambda k: np.where(new(k), "p3", "p2"),
        correct=lambda k, rng: np.where(new(k), rng.random(len(k)) < 0.5,
                                        rng.random(len(k)) < 0.9))
    events = pd.DataFrame({"ts": [T0 + timedelta(hours=10), T0 + timedelta(hours=15)],
                           "kind": ["deploy", "rollback"], "artifact": ["pipeline"] * 2,
                           "version": ["p3", "p2"]})
    con = make_case(requests=requests, labels=labels, events=events)
    result = version_matrix(con, BASELINE, INCIDENT)
    (finding,) = result.findings()
    assert finding.evidence["less_accurate"] and finding.evidence["rollback_events"] == []
    assert finding.severity == "low" and finding.evidence["announced_release"]


@functools.cache
def simulated(mode: str, seed: int):
    """``(con, baseline, incident, truth)`` of a small simulated case (toolkit.simulate)."""
    from toolkit import simulate

    case = simulate.make_case(mode, seed=seed, rows=20_000)
    tables = case.tables()
    con = make_case(**{name: tables[name] for name in ("requests", "labels", "events",
                                                         "lineage")
                       if tables[name] is not None and len(tables[name])})
    truth = case.truth()
    return con, "/".join(truth["baseline"]), "/".join(truth["incident"]), truth


@pytest.mark.parametrize("seed", [1, 2])
def test_simulated_version_skew_is_high_and_none_is_quiet(seed):
    con, baseline, incident, truth = simulated("version_skew", seed)
    (finding,) = version_matrix(con, baseline, incident).findings()
    assert finding.severity == "high"
    onset = pd.Timestamp(truth["onset"])
    assert abs(pd.Timestamp(finding.onset) - onset) <= timedelta(minutes=15)
    con, baseline, incident, _ = simulated("none", seed)
    assert all(f.severity != "high" for f in version_matrix(con, baseline, incident).findings())
