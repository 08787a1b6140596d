"""The SageMaker batch-transform export through the batch-run diagnostic: one run, so the
run-over-run comparison abstains and says why (issue 20 item 8)."""

from __future__ import annotations

import importlib

import pandas as pd

import toolkit as tk
from tests.conftest import realdata

batch = importlib.import_module("toolkit.diagnose.case.batch_runs")


def test_sagemaker_batch_transform_is_one_run(con):
    path = realdata("sagemaker", "merged_groundtruth_batch_transform.jsonl")
    report = tk.load(con, path, run_time="2026-01-01T00:00:00Z")
    assert report.rows_loaded == 335
    (endpoint,) = con.execute("SELECT DISTINCT endpoint FROM requests").fetchone()
    assert endpoint.startswith(batch.BATCH_PREFIX)
    result = batch.run_over_run(con, ("2025-12-31", "2026-01-01"), ("2026-01-01", "2026-01-02"))
    job = endpoint[len(batch.BATCH_PREFIX):]
    assert result.method.startswith("batch-transform endpoints")
    assert result.findings() == [] and result.table.empty
    assert [(g.check, g.reason) for g in result.not_assessed] == [(
        "case.batch_runs", f"1 batch run ({job}, 335 rows at 2026-01-01 00:00 UTC): run over "
        "run needs at least 2 runs")]


def test_sagemaker_batch_transform_classify_abstains_on_runs(con):
    path = realdata("sagemaker", "merged_groundtruth_batch_transform.jsonl")
    tk.load(con, path, run_time="2026-01-01T00:00:00Z")
    result = tk.classify_incident(con, baseline=("2025-12-31", "2026-01-01"),
                                  incident=("2026-01-01", "2026-01-02"))
    gaps = {g.check: g.reason for g in result.diagnosis.not_assessed()}
    assert "run over run needs at least 2 runs" in gaps["case.batch_runs"]
    assert not [f for f in result.diagnosis.findings() if f.diagnostic == "case.batch_runs"]


def test_sagemaker_batch_transform_classify_detects_windows(con, tmp_path):
    # one run: every record shares the run's time, so there is no before and after to locate
    # a change in (classify crashed building an empty window); the run is the incident, and
    # the comparisons with an empty baseline abstain
    path = realdata("sagemaker", "merged_groundtruth_batch_transform.jsonl")
    tk.load(con, path, run_time="2026-01-01T00:00:00Z")
    result = tk.classify_incident(con)
    assert result.verdict.failure_mode in ("none", "undetermined")
    assert result.window_source.startswith("detected (no change found")
    assert result.incident.start <= pd.Timestamp("2026-01-01T00:00:00Z") < result.incident.end
    assert not [f for f in result.diagnosis.findings() if f.severity in ("medium", "high")]
