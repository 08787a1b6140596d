"""``forensics evaluate --task``: multiclass and regression suites end to end on tiny cases."""

from __future__ import annotations

import importlib
import json
import subprocess

import pytest

from toolkit.cli import main
from toolkit.errors import InvalidParameterError
from toolkit.evaluate import (
    TASK_REPORT_SEEDS,
    TASK_TUNING_SEEDS,
    _ingest,
    check_suite,
    evaluate,
    seeds_for,
)
from toolkit.simulate import make_case
from toolkit.simulate.tasks import MODES

cli_app = importlib.import_module("toolkit.cli.app")


def test_seed_split_and_modes_per_task():
    assert seeds_for("classic", task="multiclass") == TASK_REPORT_SEEDS == (1001, 1002, 1003)
    assert seeds_for("classic", task="regression", tuning=True) == TASK_TUNING_SEEDS
    assert TASK_TUNING_SEEDS == tuple(range(1, 16))
    assert seeds_for("varied") == (2001, 2002, 2003)  # the binary worlds keep theirs
    assert check_suite("classic", "multiclass") == list(MODES)
    assert "unit_change" in check_suite("classic", "binary")
    with pytest.raises(InvalidParameterError, match="does not simulate unit_change"):
        check_suite("classic", "regression", ["bad_release", "unit_change"])
    with pytest.raises(InvalidParameterError, match="classic world only"):
        check_suite("varied", "multiclass")
    with pytest.raises(InvalidParameterError, match="Unknown task 'ranking'"):
        check_suite("classic", "ranking")
    with pytest.raises(InvalidParameterError, match="tuning seeds of the multiclass service"):
        evaluate(task="multiclass", seeds=[3], modes=["none"])


def test_a_task_case_is_loaded_with_its_endpoints_catalog(tmp_path):
    case = make_case("none", seed=1, rows=2_000, task="multiclass")
    con = _ingest(case, str(tmp_path))
    try:
        rows = con.execute("SELECT endpoint, task, classes FROM endpoints "
                           "ORDER BY endpoint").fetchall()
        rejected = con.execute("SELECT count(*) FROM rejects").fetchone()[0]
        scored = con.execute("SELECT count(*) FROM requests WHERE scores IS NOT NULL"
                             ).fetchone()[0]
    finally:
        con.close()
    assert rejected == 0
    assert [r[1] for r in rows] == ["multiclass"] * len(rows) and rows
    assert json.loads(rows[0][2]) == list(case.head.classes)
    assert scored > 1_900


@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_evaluate_task_end_to_end(task):
    """Simulate, write, load, diagnose and classify a quantized release of each service."""
    report = evaluate(task=task, modes=["calibration_collapse"], seeds=[1], rows=20_000,
                      tuning=True, given_window=True)
    (outcome,) = report.outcomes
    assert outcome.error is None
    assert outcome.task == task and report.task == task
    assert (outcome.truth_pathway, outcome.truth_mode) == ("model", "calibration_collapse")
    assert (outcome.pathway, outcome.failure_mode) == ("model", "calibration_collapse")
    assert report.to_dict()["task"] == task and report.to_dict()["tuning_run"] is True
    assert report.summary["failure_mode_accuracy"] == 1.0


def test_evaluate_regression_with_detected_windows():
    """Window detection reads the regression calibration's signals (interval coverage; it
    crashed on a KeyError 'ece' before 4892389)."""
    report = evaluate(task="regression", modes=["calibration_collapse"], seeds=[1],
                      rows=20_000, tuning=True, given_window=False)
    (outcome,) = report.outcomes
    assert outcome.error is None, outcome.error
    assert (outcome.pathway, outcome.failure_mode) == ("model", "calibration_collapse")


@pytest.fixture
def run(capsys, monkeypatch):
    def invoke(*args: str):
        monkeypatch.setenv("CI", "true")
        monkeypatch.setattr(cli_app.err_console, "_width", 300)
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(list(args), code, out, err)

    return invoke


@pytest.mark.parametrize(("args", "message"), [
    (("--task", "ranking"), "Unknown task 'ranking'"),
    (("--task", "regression", "--modes", "unit_change"), "does not simulate unit_change"),
    (("--task", "multiclass", "--world", "varied"), "classic world only"),
])
def test_cli_refuses_bad_task_options_as_usage_errors(run, args, message):
    result = run("evaluate", *args, "--jobs", "1")
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
