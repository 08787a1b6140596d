"""Batch runs run over run: hand-built cases of 3-4 runs where run 3 fails, drifts, scores
worse, stops half-way or repeats an earlier run; checked against scipy, statsmodels and numpy."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from tests.diagnose.conftest import make_case
from toolkit.diagnose import REGISTRY, run_diagnostics

batch = importlib.import_module("toolkit.diagnose.case.batch_runs")
run_over_run = batch.run_over_run

DAYS = [pd.Timestamp(f"2026-03-0{d}T02:00Z") for d in (1, 2, 3, 4)]
BASELINE = (pd.Timestamp("2026-03-01T00:00Z"), pd.Timestamp("2026-03-02T12:00Z"))
INCIDENT = (pd.Timestamp("2026-03-02T12:00Z"), pd.Timestamp("2026-03-05T00:00Z"))


def _run(day: int, n: int = 400, *, seed: int | None = None, shift: float = 0.0,
         failures: int = 2, job: str | None = None, ids: str | None = None,
         **columns) -> pd.DataFrame:
    """One run of ``n`` records at 02:00 on March ``day``: feature ``x`` ~ N(shift, 1), a
    categorical ``color``, the first ``failures`` records failed."""
    rng = np.random.default_rng(day if seed is None else seed)
    k = np.arange(n)
    frame = pd.DataFrame({
        "request_id": [f"{ids or day}-{i}" for i in k],
        "ts": DAYS[day - 1],
        "endpoint": f"batch-transform:{job or f'score-2026-03-0{day}'}",
        "status": np.where(k < failures, "error", "ok"),
        "x": rng.normal(shift, 1.0, n),
        "color": np.asarray(["red", "green", "blue"], dtype=object)[k % 3],
    })
    for name, values in columns.items():
        frame[name] = values
    return frame


def _case(*runs: pd.DataFrame, labels: pd.DataFrame | None = None):
    tables = {"requests": pd.concat(runs, ignore_index=True)}
    if labels is not None:
        tables["labels"] = labels
    return make_case(**tables)


def test_registered():
    assert REGISTRY["case.batch_runs"] is run_over_run


def test_failures_at_run_three_against_scipy():
    con = _case(_run(1), _run(2), _run(3, failures=60), _run(4, failures=3))
    result = run_over_run(con, BASELINE, INCIDENT)
    t = result.table
    assert t["run"].tolist() == [1, 2, 3, 4]
    assert t["job"].tolist() == [f"score-2026-03-0{d}" for d in (1, 2, 3, 4)]
    assert t["failures"].tolist() == [2, 2, 60, 3]
    # each run against the healthy runs before it, pooled (run 4 against runs 1-2, not 3):
    # one-sided Fisher, then Holm over runs 2-4
    p = [stats.fisher_exact([[k, n - k], [kb, nb - kb]], alternative="greater").pvalue
         for k, n, kb, nb in ((2, 400, 2, 400), (60, 400, 4, 800), (3, 400, 4, 800))]
    np.testing.assert_allclose(t["failure_pvalue"].iloc[1:], p, rtol=1e-9)
    adjusted = multipletests(p, method="holm")[1]
    np.testing.assert_allclose(t["failure_p_adjusted"].iloc[1:], adjusted, rtol=1e-9)
    assert t["failure_flagged"].tolist() == [False, False, True, False]
    (f,) = [f for f in result.findings() if f.id == "integration.batch_run_failures"]
    assert f.evidence["run"] == 3 and f.evidence["job"] == "score-2026-03-03"
    assert f.evidence["flagged_runs"] == [3]
    assert f.evidence["failure_rate"] == pytest.approx(60 / 400)
    assert f.evidence["prior_failure_rate"] == pytest.approx(4 / 800)
    assert f.onset == DAYS[2].to_pydatetime()
    assert f.severity == "high"  # 15% >= max(5 x 0.5%, 0.5% + 5 points)
    assert "score-2026-03-03" in f.summary and "15.0%" in f.summary
    assert not t["partial"].any() and t["retry_of"].isna().all()


def test_a_second_bad_run_is_compared_with_the_healthy_runs():
    # pooled with run 3 (104 of 1,200 before it), run 4's 10% would not stand out
    con = _case(_run(1), _run(2), _run(3, failures=100), _run(4, failures=40))
    t = run_over_run(con, BASELINE, INCIDENT).table
    assert t["failure_flagged"].tolist() == [False, False, True, True]
    assert t["prior_failure_rate"].iloc[3] == pytest.approx(4 / 800)
    p4 = stats.fisher_exact([[40, 360], [4, 796]], alternative="greater").pvalue
    assert t["failure_pvalue"].iloc[3] == pytest.approx(p4, rel=1e-9)


def test_a_run_that_fails_no_more_than_before_is_not_flagged():
    con = _case(_run(1, failures=20), _run(2, failures=20), _run(3, failures=25))
    result = run_over_run(con, BASELINE, INCIDENT)
    assert not result.table["failure_flagged"].any()
    assert [f.id for f in result.findings()] == []


def _reference_psi(reference: np.ndarray, current: np.ndarray) -> float:
    """PSI on the reference deciles (numpy's linear quantiles; right-closed bins)."""
    edges = np.unique(np.quantile(reference, np.linspace(0.1, 0.9, 9)))
    e = np.bincount(np.searchsorted(edges, reference, side="left"), minlength=len(edges) + 1)
    a = np.bincount(np.searchsorted(edges, current, side="left"), minlength=len(edges) + 1)
    e = np.maximum(e / e.sum(), 1e-4)
    a = np.maximum(a / a.sum(), 1e-4)
    return float(np.sum((a - e) * np.log(a / e)))


def test_drift_starts_at_run_three():
    runs = [_run(1), _run(2), _run(3, shift=1.0), _run(4, shift=1.2)]
    con = _case(*runs)
    result = run_over_run(con, BASELINE, INCIDENT)
    t = result.table
    # runs 1 and 2 start in the baseline and are healthy: the reference
    assert t["reference"].tolist() == [True, True, False, False]
    reference = np.r_[runs[0]["x"], runs[1]["x"]]
    d = result.drift.set_index(["run", "feature"])
    for run in (3, 4):
        expected = _reference_psi(reference, runs[run - 1]["x"].to_numpy())
        assert d.loc[(run, "x"), "psi"] == pytest.approx(expected, rel=1e-9)
        assert d.loc[(run, "x"), "drifted"]
    assert not d.loc[(3, "color"), "drifted"]  # same colours in every run
    (f,) = [f for f in result.findings() if f.id == "data.batch_run_drift"]
    assert f.evidence["run"] == 3 and f.evidence["top_feature"] == "x"
    assert f.evidence["reference_runs"] == [1, 2]
    assert f.evidence["persistent"] is True
    assert f.onset == DAYS[2].to_pydatetime()
    assert f.severity == "high" and f.statistic > 0.25
    assert t["drifted_features"].tolist() == [[], [], ["x"], ["x"]]
    evidence = json.loads(json.dumps(f.to_dict()))["evidence"]
    assert evidence["psi_by_run"]["3"] == pytest.approx(d.loc[(3, "x"), "psi"])
    assert evidence["run_start"] == "2026-03-03T02:00:00Z"


def test_no_drift_between_runs_of_one_distribution():
    con = _case(_run(1), _run(2), _run(3), _run(4))
    result = run_over_run(con, BASELINE, INCIDENT)
    assert not result.drift["drifted"].any()
    assert result.findings() == []


def _labels(frame: pd.DataFrame, wrong: int) -> pd.DataFrame:
    """Labels equal to the prediction except for the first ``wrong`` records."""
    label = frame["prediction"].copy()
    flip = {"yes": "no", "no": "yes"}
    label.iloc[:wrong] = label.iloc[:wrong].map(flip)
    return pd.DataFrame({"request_id": frame["request_id"], "label": label})


def test_accuracy_drop_at_run_three_after_a_model_change_without_drift():
    pred = np.where(np.arange(400) % 2 == 0, "yes", "no")
    runs = [_run(d, prediction=pred, model_version="m2" if d >= 3 else "m1")
            for d in (1, 2, 3, 4)]
    wrong = {1: 40, 2: 36, 3: 100, 4: 104}
    labels = pd.concat([_labels(r, wrong[d]) for d, r in zip((1, 2, 3, 4), runs, strict=True)])
    con = _case(*runs, labels=labels)
    result = run_over_run(con, BASELINE, INCIDENT)
    t = result.table
    np.testing.assert_allclose(t["accuracy"], [0.9, 0.91, 0.75, 0.74])
    p = [stats.fisher_exact([[w, 400 - w], [wb, nb - wb]], alternative="greater").pvalue
         for w, wb, nb in ((36, 40, 400), (100, 76, 800), (104, 76, 800))]
    np.testing.assert_allclose(t["accuracy_pvalue"].iloc[1:], p, rtol=1e-9)
    np.testing.assert_allclose(t["accuracy_p_adjusted"].iloc[1:],
                               multipletests(p, method="holm")[1], rtol=1e-9)
    assert t["accuracy_flagged"].tolist() == [False, False, True, True]
    (f,) = [f for f in result.findings() if f.id == "model.batch_run_accuracy"]
    assert f.evidence["run"] == 3
    assert f.evidence["accuracy_drop"] == pytest.approx(0.905 - 0.75)
    assert f.evidence["model_changed"] is True and f.evidence["pipeline_changed"] is False
    assert f.evidence["new_versions"] == {"model_version": ["m2"]}
    assert f.evidence["drift_at_run"] is False
    assert f.severity == "high"
    # the prediction mix per run: half yes, half no
    assert set(result.mix["share"].round(6)) == {0.5}


def test_partial_and_retried_runs():
    runs = [_run(1), _run(2), _run(3, n=100),
            # run 4 scores run 2's input again under a new job, with new request ids
            _run(4, seed=2, ids="retry", failures=2)]
    con = _case(*runs)
    result = run_over_run(con, BASELINE, INCIDENT)
    t = result.table
    # median run: 400 rows; run 3 has 100 of them
    assert t["row_share"].tolist() == [1.0, 1.0, 0.25, 1.0]
    assert t["partial"].tolist() == [False, False, True, False]
    (partial,) = [f for f in result.findings() if f.id == "infrastructure.batch_partial_run"]
    assert partial.evidence["partial_runs"] == [3]
    assert partial.statistic == pytest.approx(0.25)
    assert partial.severity == "low" and partial.onset == DAYS[2].to_pydatetime()
    assert t["retry_of"].tolist()[3] == 2
    assert "same 400 input rows as run 2" in t["retry_reason"].iloc[3]
    (retry,) = [f for f in result.findings() if f.id == "integration.batch_retried_run"]
    assert retry.evidence["retries"] == {4: {"of": 2, "reason": t["retry_reason"].iloc[3]}}
    # a retried or partial run is not a drift reference and not a healthy run
    assert t["reference"].tolist() == [True, True, False, False]


def test_retry_by_request_ids_and_by_job_name():
    again = _run(2)
    again["ts"] = pd.Timestamp("2026-03-02T09:00Z")  # the same job, re-run 7 hours later
    again["x"] = again["x"] + 0.001  # not byte-identical input
    con = _case(_run(1), _run(2), again, _run(3))
    result = run_over_run(con, BASELINE, INCIDENT)
    t = result.table
    assert t["job"].tolist() == ["score-2026-03-01", "score-2026-03-02", "score-2026-03-02",
                                 "score-2026-03-03"]
    assert t["repeated_ids"].tolist() == [0, 0, 400, 0]
    assert t["retry_of"].tolist()[2] == 2
    # starts 7 h after run 2, sooner than half the median spacing of runs (17 h / 2)
    assert t["retry_reason"].iloc[2] == ("same job name score-2026-03-02 7.0 h after it; 100% "
                                         "of its request ids seen in run 2")


def test_a_job_name_that_recurs_on_schedule_is_not_a_retry():
    runs = [_run(d).drop(columns="endpoint").assign(job_id="nightly-scoring")
            for d in (1, 2, 3, 4)]
    con = _case(*runs)
    con.execute("INSERT INTO case_meta VALUES ('serving_mode', '\"batch\"')")
    result = run_over_run(con, BASELINE, INCIDENT)
    # one job name, four runs a day apart: the idle gaps cut the runs, none is a retry
    assert result.table["job"].tolist() == ["nightly-scoring"] * 4
    assert result.table["retry_of"].isna().all()
    assert [f.id for f in result.findings()] == []


def test_one_run_is_not_assessed():
    con = _case(_run(1))
    result = run_over_run(con, BASELINE, INCIDENT)
    assert result.findings() == [] and result.table.empty
    assert result.not_assessed[-1].reason == (
        "1 batch run (score-2026-03-01, 400 rows at 2026-03-01 02:00 UTC): run over run "
        "needs at least 2 runs")


def test_a_real_time_case_is_not_assessed():
    frame = _run(1).assign(endpoint="fraud", ts=pd.date_range("2026-03-01", periods=400,
                                                              freq="min", tz="UTC"))
    con = _case(frame)
    result = run_over_run(con, BASELINE, INCIDENT)
    assert [(g.check, g.reason) for g in result.not_assessed] == [(
        "case.batch_runs", "not a batch case: no endpoint is batch-transform:<job> and "
        "case_meta serving_mode is not 'batch'")]


def test_serving_mode_batch_runs_by_time_and_by_run_column():
    # no endpoint: runs are the distinct run times when case_meta says batch
    runs = [_run(d, failures=50 if d == 3 else 1).drop(columns="endpoint") for d in (1, 2, 3)]
    con = _case(*runs)
    assert run_over_run(con, BASELINE, INCIDENT).not_assessed[0].check == "case.batch_runs"
    con.execute("INSERT INTO case_meta VALUES ('serving_mode', '\"batch\"')")
    result = run_over_run(con, BASELINE, INCIDENT)
    assert result.method == "serving_mode 'batch', runs by time"
    assert result.table["rows"].tolist() == [400, 400, 400]
    assert result.table["failure_flagged"].tolist() == [False, False, True]
    # a run column names the jobs; records spread over minutes still form one run each
    spread = [r.assign(ts=r["ts"] + pd.to_timedelta(np.arange(400), unit="s"), job_id=f"j{k}")
              for k, r in enumerate(runs)]
    con2 = _case(*spread)
    con2.execute("INSERT INTO case_meta VALUES ('serving_mode', '\"batch\"')")
    result = run_over_run(con2, BASELINE, INCIDENT)
    assert result.method == "serving_mode 'batch', one job per job_id"
    assert result.table["job"].tolist() == ["j0", "j1", "j2"]
    assert result.table["failure_flagged"].tolist() == [False, False, True]


def test_real_time_rows_are_left_out_with_a_note():
    live = _run(1).assign(endpoint="live", request_id=[f"live-{i}" for i in range(400)],
                          status="error")
    con = _case(_run(1), _run(2), live)
    result = run_over_run(con, BASELINE, INCIDENT)
    assert result.table["rows"].tolist() == [400, 400]
    assert result.table["failures"].tolist() == [2, 2]
    assert ("case.batch_runs.rows", "400 requests of other endpoints (real-time traffic) are "
            "left out of the run comparison") in [(g.check, g.reason)
                                                  for g in result.not_assessed]


def test_runs_with_the_diagnosis_and_leaves_no_temp_table():
    con = _case(_run(1), _run(2), _run(3, failures=60), _run(4))
    diagnosis = run_diagnostics(con, BASELINE, INCIDENT, ids=["case.batch_runs"])
    ids = [f.id for f in diagnosis.findings()]
    assert ids == ["integration.batch_run_failures"]
    assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE "
                       "'_forensics_batch_runs%'").fetchone() == (0,)
    result = diagnosis["case.batch_runs"]
    signals = result.signals()
    rates = signals[signals["signal"] == "batch.failure_rate"]["value"].tolist()
    assert rates == pytest.approx([2 / 400, 2 / 400, 60 / 400, 2 / 400])
    ax = result.plot()
    assert [label.get_text() for label in ax.get_xticklabels()] == ["1", "2", "3", "4"]
    assert "run 3 (score-2026-03-03" in result.to_html(figure=False)


def test_sql_reruns_in_the_engine():
    con = _case(_run(1), _run(2), _run(3, failures=60))
    result = run_over_run(con, BASELINE, INCIDENT)
    assert any(str(sql).startswith("CREATE OR REPLACE TEMP TABLE") for sql in result.sql)
    last = None
    for sql in result.sql:  # the recorded statements run as they stand, in order
        last = con.execute(str(sql)).df()
    # the last statement counts the colours per run: 3 runs x 3 colours, every row once
    assert (len(last), int(last["n"].sum())) == (9, 1200)


def test_accuracy_is_for_classifiers():
    runs = [_run(d, prediction=np.round(np.linspace(0, 9, 400), 1).astype(str))
            for d in (1, 2, 3)]
    labels = pd.concat([pd.DataFrame({"request_id": r["request_id"], "label": "4.5"})
                        for r in runs])
    endpoints = pd.DataFrame({"endpoint": [r["endpoint"].iloc[0] for r in runs],
                              "task": "regression"})
    con = make_case(requests=pd.concat(runs, ignore_index=True), labels=labels,
                    endpoints=endpoints)
    result = run_over_run(con, BASELINE, INCIDENT)
    assert ("case.batch_runs.accuracy", "endpoints are regression: accuracy per run is for "
            "classifiers") in [(g.check, g.reason) for g in result.not_assessed]
    assert result.table["accuracy"].isna().all() and not result.table["accuracy_flagged"].any()


def test_an_id_like_feature_is_not_drift():
    # a customer id per record: every run scores other customers, by nature (300 values in
    # 300 rows: fewer than the 500 categories a feature may have, but id-like)
    runs = [_run(d, n=100, customer=[f"c{d}-{i}" for i in range(100)]) for d in (1, 2, 3)]
    con = _case(*runs)
    catalog = con.execute("SELECT name, kind FROM features ORDER BY name").fetchall()
    assert ("customer", "categorical") in catalog
    result = run_over_run(con, BASELINE, INCIDENT)
    assert "customer" not in set(result.drift["feature"])
    assert not result.drift["drifted"].any()
