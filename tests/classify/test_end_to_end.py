"""Simulated incidents through the real loader, diagnostics and classifier."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import toolkit as tk
from toolkit.classify import classify_incident
from toolkit.simulate import make_case, write_case

pytestmark = pytest.mark.slow


def ingested(tmp_path: Path, mode: str, seed: int, rows: int = 20_000):
    case = make_case(mode, seed=seed, rows=rows)
    write_case(case, tmp_path / "raw")
    db = tmp_path / "case.duckdb"
    con = tk.connect(db)
    assert tk.load(con, tmp_path / "raw").rows_rejected == 0
    return con, case.truth(), db


@pytest.mark.parametrize(("mode", "seed"), [
    ("covariate_shift", 11), ("calibration_collapse", 11), ("memory_exhaustion", 11),
    ("version_skew", 11), ("none", 11),
])
def test_given_windows_give_the_true_mode(tmp_path, mode, seed):
    con, truth, _ = ingested(tmp_path, mode, seed)
    result = classify_incident(con, incident="/".join(truth["incident"]),
                               baseline="/".join(truth["baseline"]))
    assert (result.pathway, result.failure_mode) == (truth["pathway"], truth["failure_mode"])
    if truth["onset"]:
        error = abs((result.onset - pd.Timestamp(truth["onset"])).total_seconds())
        # a gradual shift has no sharp start: its onset is dated to within a few hours
        assert error <= (6 * 3600 if mode == "covariate_shift" else 3600)


def test_detected_windows_and_the_json_contract(tmp_path):
    con, truth, db = ingested(tmp_path, "cache_staleness", 12)
    con.close()
    forensics = shutil.which("forensics", path=str(Path(sys.executable).parent))
    out = subprocess.run([forensics, "classify", "--db", str(db), "--json"],
                         capture_output=True, text=True, check=True)
    payload = json.loads(out.stdout)
    assert set(payload) >= {"pathway", "failure_mode", "confidence", "scores", "onset",
                            "incident", "baseline", "findings", "not_assessed", "remediation"}
    assert payload["pathway"] == "integration"
    assert payload["failure_mode"] == "cache_staleness"
    assert payload["window_source"] == "detected"
    assert abs(sum(payload["scores"].values()) - 1) < 1e-3
    start, end = (pd.Timestamp(t) for t in payload["incident"])
    onset = pd.Timestamp(truth["onset"])
    assert start - pd.Timedelta("2h") <= onset <= end
    finding = payload["findings"][0]
    assert set(finding) >= {"id", "pathway", "severity", "statistic", "threshold", "summary",
                            "evidence"}
    human = subprocess.run([forensics, "classify", "--db", str(db)], capture_output=True,
                           text=True, check=True).stdout
    assert human.startswith("Verdict: integration / cache_staleness")


def test_classification_result_frame_plot_and_gaps(tmp_path):
    con, truth, _ = ingested(tmp_path, "calibration_collapse", 11)
    con.execute("DELETE FROM metrics")  # no memory samples: the memory check cannot run
    result = classify_incident(con, incident="/".join(truth["incident"]),
                               baseline="/".join(truth["baseline"]))
    frame = result.to_frame()
    assert "model.calibration_shift" in set(frame["id"])
    assert len(frame) == len(result.to_dict()["findings"])
    ax = result.plot()
    heights = [bar.get_width() for bar in ax.patches]
    assert heights == pytest.approx(list(result.verdict.scores.values()))
    assert any(g.check.startswith("infra.memory") for g in result.not_assessed)
    assert result.remediation and result.remediation == tuple(result.to_dict()["remediation"])
