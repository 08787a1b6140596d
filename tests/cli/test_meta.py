"""`forensics meta`: the case facts no log carries (serving mode, SLO targets)."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime

import pandas as pd

import toolkit as tk
from toolkit.cli import main


def cli(args, capsys):
    """Run `forensics ARGS` as the console script does: (exit code, stdout + stderr)."""
    code = main(args)
    out = capsys.readouterr()
    return code, out.out + out.err


def _nightly_case(path):
    """Three nightly runs of 300 rows each, every row stamped with its run's start."""
    rows = []
    for night in range(3):
        start = datetime(2026, 11, 1 + night, 2, tzinfo=UTC)
        rows += [{"request_id": f"n{night}-{i}", "ts": start,
                  "status": "ok", "prediction": str(i % 2), "amount": float(i)}
                 for i in range(300)]
    con = tk.connect(path)
    tk.load(con, pd.DataFrame(rows), table="requests")
    con.close()


def test_meta_sets_shows_and_unsets_validated_facts(tmp_path, capsys):
    db = str(tmp_path / "case.duckdb")
    _nightly_case(db)
    assert cli(["meta", "--db", db], capsys)[1].startswith("no case facts set")
    assert cli(["meta", "serving_mode", "Batch", "--db", db], capsys) == (
        0, 'serving_mode = "batch"\n')
    assert cli(["meta", "ttft_slo_ms", "450", "--db", db], capsys)[0] == 0
    code, shown = cli(["meta", "--db", db], capsys)
    assert shown.splitlines() == ['serving_mode = "batch"', "ttft_slo_ms = 450.0"]
    for bad, words in ((["meta", "ttft_slo_ms", "soon"], "positive number of milliseconds"),
                       (["meta", "error_rate_slo", "1.5"], "share between 0 and 1"),
                       (["meta", "colour", "red"], "Unknown case fact 'colour'"),
                       (["meta", "serving_mode", "streaming"], "real-time or batch")):
        code, text = cli([*bad, "--db", db], capsys)
        assert code == 2 and words in text, (bad, text)
    code, text = cli(["meta", "ttft_slo_ms", "--unset", "--db", db], capsys)
    assert code == 0 and "ttft_slo_ms: unset" in text
    con = tk.connect(db, read_only=True)
    assert con.execute("SELECT key, CAST(value AS VARCHAR) FROM case_meta").fetchall() == [
        ("serving_mode", '"batch"')]
    con.close()


def test_declaring_batch_serving_lets_runs_be_compared(tmp_path, capsys):
    db = tmp_path / "case.duckdb"
    _nightly_case(db)
    batch = importlib.import_module("toolkit.diagnose.case.batch_runs")
    windows = ("2026-11-01/2026-11-02", "2026-11-02/2026-11-04")
    con = tk.connect(db, read_only=True)
    before = batch.run_over_run(con, *windows)
    con.close()
    assert any("not a batch case" in g.reason for g in before.not_assessed)
    assert cli(["meta", "serving_mode", "batch", "--db", str(db)], capsys)[0] == 0
    con = tk.connect(db, read_only=True)
    after = batch.run_over_run(con, *windows)
    con.close()
    assert not any("not a batch case" in g.reason for g in after.not_assessed)
    assert list(after.table["run"]) == [1, 2, 3]
