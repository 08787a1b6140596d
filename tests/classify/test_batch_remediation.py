"""A batch verdict names the runs to quarantine and re-run (issue 20 item 8's remediation)."""

from __future__ import annotations

import pytest

import toolkit as tk
from tests.classify.test_batch_rules import WINDOWS, build

pytestmark = pytest.mark.slow


def test_a_failing_batch_run_is_named_in_the_first_action():
    con = build("pipeline")
    result = tk.classify_incident(con, **WINDOWS)
    con.close()
    assert result.serving_mode == "batch" and result.failure_mode == "schema_mismatch"
    first = result.remediation[0]
    # runs 4 to 6 run the failing pipeline version: each is named with its job and time
    assert first.startswith("Quarantine the outputs of run 4 (score-4, 2026-03-04 02:00 UTC)")
    assert "run 6 (score-6, 2026-03-06 02:00 UTC)" in first
    assert "re-run them once the cause is fixed" in first
    # the mode's own batch actions follow, once
    assert len(result.remediation) == len(set(result.remediation)) > 1


def test_a_real_time_verdict_gets_no_run_actions():
    from toolkit.classify.remediation import remediation_for_runs
    from toolkit.diagnose import Finding

    latency = Finding("infrastructure.latency_regression", "infrastructure", "high", 3.0, 1.5,
                      "p99 up", {}, diagnostic="infra.latency")
    assert remediation_for_runs([latency]) == []


def test_a_single_run_at_one_time_classifies_without_windows(tmp_path):
    # every row stamped with the run's time (SageMaker batch transform): classify built an
    # empty window and raised; the run is now the incident and the comparisons abstain
    import pandas as pd

    frame = pd.DataFrame({"request_id": [f"r{i}" for i in range(400)],
                          "ts": pd.Timestamp("2026-01-01T02:00Z"), "prediction": "1",
                          "score": 0.8, "amount": range(400)})
    con = tk.connect(tmp_path / "case.duckdb")
    tk.load(con, frame, table="requests")
    result = tk.classify_incident(con)
    con.close()
    assert result.pathway in ("none", "undetermined")
    assert result.window_source == ("detected (no change found: one point in time, the "
                                    "whole span)")
    assert result.incident.start == pd.Timestamp("2026-01-01T02:00Z")
