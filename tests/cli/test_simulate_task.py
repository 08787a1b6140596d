"""`forensics simulate --task`: multiclass, regression and generative cases from the CLI."""

from __future__ import annotations

import pandas as pd
import pytest

import toolkit as tk
from toolkit.cli import main

pytestmark = pytest.mark.slow


def test_a_regression_case_declares_its_task_and_loads_into_the_catalog(tmp_path, capsys):
    out = tmp_path / "reg"
    assert main(["simulate", "--task", "regression", "--mode", "bad_release", "--seed", "3",
                 "--rows", "5000", "--out", str(out)]) == 0
    endpoints = pd.read_csv(out / "endpoints.csv")
    assert set(endpoints["task"]) == {"regression"}  # the service's /v1 and /v2 endpoints
    assert 0 < float(endpoints["interval_coverage"].iloc[0]) < 1
    con = tk.connect(tmp_path / "case.duckdb")
    tk.load(con, out)
    assert con.execute("SELECT DISTINCT task FROM endpoints").fetchall() == [("regression",)]
    assert tk.diagnose.case_view(con).task.task == "regression"
    con.close()


def test_task_options_are_checked(tmp_path, capsys):
    assert main(["simulate", "--task", "ranking", "--mode", "none",
                 "--out", str(tmp_path / "a")]) == 2
    assert main(["simulate", "--task", "multiclass", "--preset", "gpu-oom-16gb",
                 "--out", str(tmp_path / "b")]) == 2
    assert main(["simulate", "--task", "generative", "--mode", "unit_change",
                 "--out", str(tmp_path / "c")]) == 2
    assert main(["simulate", "--world", "bogus", "--mode", "none",
                 "--out", str(tmp_path / "d")]) == 2
    capsys.readouterr()
    assert main(["simulate", "--task", "generative", "--list"]) == 0
    listed = capsys.readouterr().out
    assert "kv_cache_exhaustion        infrastructure" in listed
    assert "preset" not in listed
