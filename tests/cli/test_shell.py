"""``forensics shell``: a read-only SQL shell that needs no DuckDB CLI."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

import toolkit as tk


@pytest.fixture
def case(tmp_path):
    path = tmp_path / "case.duckdb"
    con = tk.connect(path)
    tk.load(con, pd.DataFrame({
        "request_id": ["a", "b", "c"],
        "ts": pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-02"], utc=True),
        "latency_ms": [1.5, 2.25, 4.0],
        "status": ["ok", "error", "ok"],
    }), table="requests")
    con.close()
    return path


def _shell(case, script: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "toolkit.cli", "shell", "--db", str(case), *extra],
        input=script, capture_output=True, text=True, timeout=120)


def test_statements_spanning_lines_run_and_print_their_result(case):
    out = _shell(case, "SELECT status, count(*) AS n,\n  sum(latency_ms) AS total\n"
                       "FROM requests GROUP BY ALL ORDER BY status;\n")
    assert out.returncode == 0, out.stderr
    lines = [line.split() for line in out.stdout.splitlines()]
    # error: 1 request, 2.25 ms; ok: 2 requests, 5.5 ms (hand sums)
    assert ["error", "│", "1", "│", "2.25"] in lines
    assert ["ok", "│", "2", "│", "5.50"] in lines


def test_dot_commands_list_tables_and_columns(case):
    out = _shell(case, ".tables\n.schema requests\n.quit\nSELECT 4242 AS marker;\n")
    assert out.returncode == 0, out.stderr
    assert "labelled_predictions" in out.stdout and "view" in out.stdout
    assert "latency_ms" in out.stdout and "DOUBLE" in out.stdout
    # .quit stops reading: the statement after it never ran.
    assert "marker" not in out.stdout and "4242" not in out.stdout


def test_the_case_is_read_only_and_sandboxed(case, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read")
    out = _shell(case, f"SELECT * FROM read_text('{secret}');\nDELETE FROM requests;\n"
                       "SELECT count(*) AS n FROM requests;\n")
    assert out.returncode == 1  # piped input with failed statements exits non-zero
    assert "do not read" not in out.stdout
    assert out.stderr.count("error:") == 2
    assert ["3"] == [c for c in out.stdout.split() if c.isdigit()]  # nothing was deleted


def test_an_unterminated_statement_is_reported_not_dropped(case):
    out = _shell(case, "SELECT 42 AS answer")
    assert out.returncode == 1
    assert "no closing ';'" in out.stderr
    assert "42" not in out.stdout
