"""`forensics simulate` through the real console script."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import toolkit as tk
from toolkit import simulate

FORENSICS = shutil.which("forensics", path=str(Path(sys.executable).parent))


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([FORENSICS, *args], capture_output=True, text=True,
                          env={"CI": "true", "PATH": "/usr/bin:/bin", "COLUMNS": "200"})


def test_one_mode_then_ingest(tmp_path):
    out = tmp_path / "case"
    result = run("simulate", "--mode", "timeout_misconfiguration", "--seed", "3", "--rows",
                 "5000", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "timeout_misconfiguration (integration)" in result.stdout
    truth = json.loads((out / "truth.json").read_text())
    assert truth["failure_mode"] == "timeout_misconfiguration" and truth["rows"] == 5000
    assert truth == simulate.make_case("timeout_misconfiguration", seed=3, rows=5000).truth()
    db = tmp_path / "case.duckdb"
    ingest = run("ingest", str(out), "--db", str(db))
    assert ingest.returncode == 0, ingest.stderr
    assert ", 0 rejected" in ingest.stdout


def test_all_modes(tmp_path):
    out = tmp_path / "all"
    result = run("simulate", "--mode", "all", "--rows", "1000", "--seed", "1",
                 "--no-confounders", "--extra-features", "3", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(simulate.FAILURE_MODES)
    for mode in simulate.FAILURE_MODES:
        truth = json.loads((out / mode / "truth.json").read_text())
        assert truth["failure_mode"] == mode and truth["confounders"] == []
        assert {"f01", "f02", "f03"} <= set(
            line.split(",")[0] for line in (out / mode / "features.csv").read_text().splitlines())
    con = tk.connect()
    assert tk.load(con, out / "none").rows_rejected == 0


def test_preset_list_and_errors(tmp_path):
    """Presets, --list and the error paths, in-process (no interpreter start-up per call)."""
    from typer.testing import CliRunner

    from toolkit.cli import (
        app,
        commands,  # noqa: F401
    )

    runner = CliRunner()
    listed = runner.invoke(app, ["simulate", "--list"])
    assert listed.exit_code == 0 and "rollback-feature-order" in listed.output
    assert "cache_staleness" in listed.output
    result = runner.invoke(app, ["simulate", "--preset", "stale-cache-72h", "--rows", "2000",
                                 "--out", str(tmp_path / "p")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "p" / "truth.json").read_text())["preset"] == "stale-cache-72h"
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    for args, message in (
        (["--mode", "nope", "--out", str(tmp_path / "a")], "Unknown failure mode"),
        (["--mode", "none"], "--out is required"),
        (["--out", str(tmp_path / "b")], "--mode MODE|all or --preset"),
        (["--mode", "all", "--preset", "gpu-oom-16gb", "--out", str(tmp_path / "c")],
         "cannot be combined"),
        (["--mode", "none", "--rows", "5", "--out", str(tmp_path / "d")], "rows must be"),
        (["--mode", "none", "--out", str(tmp_path / "full")], "not an empty folder"),
    ):
        result = runner.invoke(app, ["simulate", *args])
        assert result.exit_code == 2, (args, result.output)  # usage errors (exit code contract)
        assert message in result.output
    usage = runner.invoke(app, ["simulate", "--mode", "none", "--rows", "many", "--out",
                                str(tmp_path / "y")])
    assert usage.exit_code == 2


def test_error_through_the_console_script(tmp_path):
    bad = run("simulate", "--mode", "nope", "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and bad.stderr.startswith("error: Unknown failure mode")
    assert len(bad.stderr.strip().splitlines()) == 1


def test_varied_world_through_the_console_script(tmp_path):
    out = tmp_path / "case"
    result = run("simulate", "--mode", "cold_start", "--seed", "5", "--rows", "4000",
                 "--world", "varied", "--out", str(out))
    assert result.returncode == 0, result.stderr
    truth = json.loads((out / "truth.json").read_text())
    assert truth == simulate.make_case("cold_start", seed=5, rows=4000, world="varied").truth()
    assert truth["world"]["sampling"]["served_rows"] == 4000
    assert f"{truth['rows']:,} logged" in result.stdout
    bad = run("simulate", "--mode", "none", "--world", "other", "--out", str(tmp_path / "x"))
    assert bad.returncode != 0 and "Unknown world 'other'" in bad.stderr + bad.stdout
