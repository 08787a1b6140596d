"""A score meaning declared in the mapping file reaches the model diagnostics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import toolkit as tk
from toolkit.diagnose import calibration, model_performance


@pytest.fixture
def case_with_p_positive(tmp_path):
    """Requests whose score column holds P(positive); the mapping says so."""
    rng = np.random.default_rng(5)
    n = 2000
    ts = pd.date_range("2026-03-01", periods=n, freq="min", tz="UTC")
    p = rng.uniform(0, 1, n)
    y = (rng.uniform(0, 1, n) < p).astype(int)
    pred = np.where(p >= 0.5, "yes", "no")
    pd.DataFrame({"request_id": np.arange(n).astype(str), "ts": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
                  "prediction": pred, "p_yes": p}).to_csv(tmp_path / "requests.csv", index=False)
    pd.DataFrame({"request_id": np.arange(n).astype(str),
                  "label": np.where(y == 1, "yes", "no")}).to_csv(tmp_path / "labels.csv",
                                                                 index=False)
    mapping = tmp_path / "requests.toml"
    mapping.write_text('table = "requests"\n[columns]\n'
                       'score = { source = "p_yes", semantics = "p_positive", positive = "yes" }\n')
    con = tk.connect(tmp_path / "case.duckdb")
    tk.load(con, tmp_path / "requests.csv", mapping=mapping)
    tk.load(con, tmp_path / "labels.csv")
    windows = ((ts[0], ts[n // 2]), (ts[n // 2], ts[-1] + pd.Timedelta("1min")))
    yield con, windows
    con.close()


def test_declared_p_positive_is_used_without_passing_it(case_with_p_positive):
    con, (baseline, incident) = case_with_p_positive
    declared = calibration(con, baseline, incident)
    explicit = calibration(con, baseline, incident, score_is="p_positive", positive="yes")
    assert declared.score_is == "p_positive" and declared.positive == "yes"
    assert not [g for g in declared.not_assessed if g.check.startswith("model.calibration")]
    pd.testing.assert_frame_equal(declared.table, explicit.table)
    # Well calibrated by construction: P(positive) is the true probability.
    assert declared.value("baseline", "ece") < 0.06


def test_an_explicit_argument_wins_over_the_declaration(case_with_p_positive):
    con, (baseline, incident) = case_with_p_positive
    as_confidence = calibration(con, baseline, incident, score_is="confidence")
    assert as_confidence.score_is == "confidence"
    # Read as a confidence, these scores look like P(positive) and are not assessed.
    assert any("P(positive)" in g.reason or "p_positive" in g.reason
               for g in as_confidence.not_assessed)


def test_performance_ranks_with_the_declared_positive_class(case_with_p_positive):
    con, (baseline, incident) = case_with_p_positive
    result = model_performance(con, baseline, incident)
    explicit = model_performance(con, baseline, incident, score_is="p_positive", positive="yes")
    assert result.value("incident", "roc_auc") == pytest.approx(
        explicit.value("incident", "roc_auc"), abs=1e-12)
    assert result.value("incident", "roc_auc") > 0.7
