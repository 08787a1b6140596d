"""The command line used as a hostile or careless user would (issue 19 defects 4, 7-10, issue 21
item 10): every refusal is one line on stderr with exit code 2 and leaves the case unchanged,
`forensics sql` reaches no file but the case, and log content cannot drive the terminal."""

from __future__ import annotations

import hashlib
import json
import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

import toolkit as tk
from tests.cli.conftest import one_line_error
from toolkit._version import __version__

FORENSICS = shutil.which("forensics", path=str(Path(sys.executable).parent))
ESC = "\x1b"
TITLE = "\x1b]0;pwned\x07"
CLEAR = "\x1b[2J"
CSI = "\x9b"  # the one-character CSI of the C1 set


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def case(tmp_path) -> Path:
    """A case written through the store alone (no loader), with hostile strings in it."""
    path = tmp_path / "case.duckdb"
    con = tk.connect(path)
    con.execute(
        "INSERT INTO requests (request_id, ts, model_version, host, latency_ms) VALUES "
        "('a', '2026-03-02T14:00:00Z', ?, ?, 81.45349999999999), "
        "('b', '2026-03-02T14:01:00Z', 'v1', 'pod-1', 20.0)", [f"v2{TITLE}", f"pod{CLEAR}"])
    con.execute("INSERT INTO rejects (file, row_number, column_name, reason) VALUES "
                "(?, 3, 'ts', ?)", [f"/x/req{CLEAR}.csv", f"ts: not a timestamp{TITLE}"])
    con.close()
    return path


# --- issue 19 defect 4 and 10: a --db that is not a DuckDB case ------------------------------

@pytest.mark.parametrize("name", ["some.csv", "README.md", "data.parquet"])
def test_ingest_info_sql_refuse_a_db_that_is_not_duckdb(tmp_path, name, run):
    db = tmp_path / name
    if name.endswith(".parquet"):
        import pandas as pd

        pd.DataFrame({"request_id": ["a"], "latency_ms": [1.0]}).to_parquet(db)
    else:
        db.write_text("request_id,ts,latency_ms\na,2026-03-02T14:00:00Z,1\n")
    before = digest(db)
    data = tmp_path / "requests.csv"
    data.write_text("request_id,ts,latency_ms\nb,2026-03-02T14:00:00Z,2\n")
    for args in (("ingest", str(data), "--db", str(db)), ("info", "--db", str(db)),
                 ("sql", "--db", str(db), "SELECT 1")):
        line = one_line_error(run(*args))
        assert f"{db} is not a DuckDB case file" in line
        assert digest(db) == before
    assert not Path(f"{db}.wal").exists()


def test_too_small_memory_limit_is_a_usage_error(case, run):
    before = digest(case)
    for limit in ("0MB", "10MB", "50MB"):
        line = one_line_error(run("info", "--db", str(case),
                                  env={"FORENSICS_MEMORY_LIMIT": limit}))
        assert "FORENSICS_MEMORY_LIMIT" in line and "too small" in line
    assert digest(case) == before


# --- issue 19 defect 7: forensics sql is sandboxed to the case --------------------------------

def test_sql_cannot_attach_copy_or_read_other_files(case, tmp_path, run):
    other = tmp_path / "other.duckdb"
    con = duckdb.connect(str(other))
    con.execute("CREATE TABLE keep AS SELECT 42 AS v")
    con.close()
    before_other, before_case = digest(other), digest(case)
    attach = run("sql", "--db", str(case),
                 f"ATTACH '{other}' AS o (READ_ONLY false); DROP TABLE o.keep")
    copy = run("sql", "--db", str(case), f"COPY (SELECT 1 AS v) TO '{other}' (FORMAT csv)")
    read = run("sql", "--db", str(case), "SELECT content FROM read_text('/etc/passwd')",
               "--format", "csv")
    for result in (attach, copy, read):
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert "--unsafe-allow-external" in result.stderr
    assert "root:" not in read.stdout
    assert digest(other) == before_other and digest(case) == before_case
    assert duckdb.connect(str(other), read_only=True).execute(
        "SELECT v FROM keep").fetchall() == [(42,)]
    trusted = run("sql", "--db", str(case), "--unsafe-allow-external", "--format", "csv",
                  "SELECT content FROM read_text('/etc/passwd')")
    assert trusted.returncode == 0 and "root:" in trusted.stdout


def test_sql_keeps_the_case_views_and_macros(case, run):
    out = run("sql", "--db", str(case), "--format", "json",
              "SELECT requests FROM latency_timeline(INTERVAL 1 HOUR)")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [{"requests": 2}]


# --- issue 19 defect 8: escape sequences from log content --------------------------------------

def test_info_and_sql_table_escape_control_characters(case, run):
    info = run("info", "--db", str(case))
    assert info.returncode == 0, info.stderr
    assert ESC not in info.stdout and "\x07" not in info.stdout
    assert "v2\\x1b]0;pwned\\x07 (1)" in info.stdout and "pod\\x1b[2J (1)" in info.stdout
    assert "req\\x1b[2J.csv: ts: not a timestamp\\x1b]0;pwned\\x07" in info.stdout
    as_json = run("info", "--db", str(case), "--json")
    assert ESC not in as_json.stdout
    assert f"v2{TITLE}" in json.loads(as_json.stdout)["model_versions"]
    table = run("sql", "--db", str(case), "SELECT model_version, host FROM requests ORDER BY 1")
    assert table.returncode == 0 and ESC not in table.stdout
    assert "v2\\x1b]0;pwned\\x07" in table.stdout
    error = run("sql", "--db", str(case), f'SELECT "{CLEAR}x{TITLE}" FROM requests')
    line = one_line_error(error, code=1) if "\n" not in error.stderr.strip() else error.stderr
    assert ESC not in line and "\\x1b[2J" in error.stderr


def test_sql_json_escapes_c1_and_csv_is_exact_when_redirected(case, run):
    query = f"SELECT model_version || '{CSI}' AS v FROM requests WHERE request_id = 'a'"
    as_json = run("sql", "--db", str(case), "--format", "json", query)
    assert ESC not in as_json.stdout and CSI not in as_json.stdout
    assert json.loads(as_json.stdout) == [{"v": f"v2{TITLE}{CSI}"}]
    as_csv = run("sql", "--db", str(case), "--format", "csv", query)
    assert as_csv.stdout.splitlines()[1] == f"v2{TITLE}{CSI}"  # exact data into a file or pipe


def test_sql_csv_on_a_terminal_shows_escapes(case):
    """On a TTY the same CSV shows the control characters as text, with a note on stderr."""
    primary, secondary = pty.openpty()
    try:
        result = subprocess.run(
            [FORENSICS, "sql", "--db", str(case), "--format", "csv",
             "SELECT model_version FROM requests WHERE request_id = 'a'"],
            stdout=secondary, stderr=subprocess.PIPE, text=True,
            env={"CI": "true", "PATH": "/usr/bin:/bin"})
        os.close(secondary)
        secondary = None
        chunks = []
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        if secondary is not None:
            os.close(secondary)
        os.close(primary)
    shown = b"".join(chunks).decode()
    assert result.returncode == 0, result.stderr
    assert ESC not in shown and "v2\\x1b]0;pwned\\x07" in shown
    assert "redirect the output to a file" in result.stderr


# --- issue 19 defect 9: --week ------------------------------------------------------------------

@pytest.mark.parametrize("week", ["../../escape", "2026-W47/../../../escape", "2026-W5",
                                  "2026-47", "2025-W53", "2026-W00", "0001-W01", "2026-W47\n"])
def test_weekly_refuses_a_week_that_is_not_an_iso_week(case, tmp_path, week, run):
    out = tmp_path / "reports" / "deep"
    before = sorted(p.name for p in tmp_path.rglob("*"))
    line = one_line_error(run("report", "weekly", "--db", str(case), "--week", week,
                              "--out", str(out)))
    assert "--week" in line
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


# --- issue 19 defect 10: out-of-range windows and a non-UTF-8 --id -----------------------------

@pytest.mark.parametrize("window", ["0001-01-01/9999-12-31", "1800-01-01/2026-03-03",
                                    "2026-03-01/2262-05-01"])
def test_out_of_range_window_is_a_usage_error(case, window, run):
    before = digest(case)
    line = one_line_error(run("classify", "--db", str(case), "--incident", window))
    assert line.startswith("error: --incident: ") and window.split("/")[0][:4] in line
    baseline = one_line_error(run("classify", "--db", str(case), "--baseline", window))
    assert "--baseline" in baseline
    assert digest(case) == before


def test_non_utf8_or_control_id_is_a_usage_error(case, tmp_path):
    out = tmp_path / "pm"
    before = digest(case)
    for bad in (b"INC-\xff\xfe", b"INC-\x1b[2J"):
        result = subprocess.run(
            [FORENSICS.encode(), b"postmortem", b"--db", str(case).encode(), b"--out",
             str(out).encode(), b"--id", bad],
            capture_output=True, env={"CI": "true", "PATH": "/usr/bin:/bin"})
        stderr = result.stderr.decode("utf-8", "replace")
        assert result.returncode == 2, stderr
        assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1
        assert "--id" in stderr and "\x1b" not in stderr
    assert not out.exists() and digest(case) == before


# --- issue 21 item 10: sql table, --version, help, ingest output ------------------------------

def test_sql_table_rounds_and_right_aligns_numbers_without_squeezing_headers(case, run):
    query = ("SELECT latency_ms AS latency_in_milliseconds, request_id AS identifier_of_request, "
             "ts AS bucket_start_timestamp, 1234567 AS a_rather_long_count_column "
             "FROM requests ORDER BY request_id")
    result = run("sql", "--db", str(case), query, width=80)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = lines[0]
    for name in ("latency_in_milliseconds", "identifier_of_request", "bucket_start_timestamp",
                 "a_rather_long_count_column"):
        assert name in header
    assert "…" not in result.stdout
    first = lines[2].split("│")
    assert first[0].strip() == "81.4535" and first[0].endswith("81.4535 ")  # right-aligned
    assert lines[3].split("│")[0].strip() == "20.0000"
    assert "81.45349999999999" not in result.stdout
    exact = run("sql", "--db", str(case), "--format", "csv",
                "SELECT latency_ms FROM requests WHERE request_id = 'a'")
    assert exact.stdout.splitlines()[1] == "81.45349999999999"


def test_version_and_help_text(run):
    version = run("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"forensics {__version__}"
    for command in ("ingest", "info", "sql", "classify", "postmortem", "demo", "simulate",
                    "evaluate"):
        text = run(command, "--help").stdout
        assert text and "<list[" not in text and "DESIGN" not in text, (command, text)
    assert "--unsafe-allow-external" in run("sql", "--help").stdout


def test_ingest_prints_a_summary_not_a_line_per_file(tmp_path, run):
    folder = tmp_path / "export" / "requests"
    folder.mkdir(parents=True)
    for i in range(30):
        rows = [f"r{i}-{j},2026-03-02T14:{j:02d}:00Z,{10 + j}" for j in range(3)]
        if i == 7:
            rows[1] = f"r{i}-1,not-a-time,11"
        (folder / f"part-{i:03d}.csv").write_text("request_id,ts,latency_ms\n"
                                                   + "\n".join(rows) + "\n")
    (tmp_path / "export" / "notes.json").write_text('{"not": "a table"}\n')
    db = tmp_path / "case.duckdb"
    brief = run("ingest", str(tmp_path / "export"), "--db", str(db))
    assert brief.returncode == 0, brief.stderr
    lines = brief.stdout.strip().splitlines()
    assert "part-007.csv: 1 of 3 rows rejected" in lines
    skipped = [line for line in lines if line.startswith("notes.json: ")]
    assert len(skipped) == 1 and "skipped" in skipped[0]
    assert lines[-1] == ("31 file(s) (30 loaded, 1 skipped): 90 rows read, 89 loaded, 1 "
                         "rejected (see the rejects table)")
    assert "part-000.csv" not in brief.stdout and len(lines) <= 5
    again = run("ingest", str(tmp_path / "export"), "--db", str(db), "--verbose")
    assert again.returncode == 0, again.stderr
    assert all(f"part-{i:03d}.csv" in again.stdout for i in range(30))
    assert "31 file(s) (30 unchanged, 1 skipped): 0 rows read" in again.stdout


def test_a_failed_ingest_says_what_was_committed_and_leaves_no_empty_case(tmp_path, run):
    """Issue 19 defects 6 and 10: an ingest that stops reports what it had committed, and a
    refused first file leaves no new, empty case file behind."""
    db = tmp_path / "case.duckdb"
    line = one_line_error(run("ingest", str(tmp_path / "missing"), "--db", str(db)), code=1)
    assert "missing" in line
    assert not db.exists() and not Path(f"{db}.wal").exists()
    good, bad = tmp_path / "good" / "requests.csv", tmp_path / "bad" / "requests.csv"
    good.parent.mkdir()
    bad.parent.mkdir()
    good.write_text("request_id,ts,latency_ms\na,2026-03-02T14:00:00Z,1\n"
                    "b,2026-03-02T14:01:00Z,2\n")
    bad.write_text("request_id,latency_ms\nc,3\n")  # no ts: the file is refused
    result = run("ingest", str(good), str(bad), "--db", str(db))
    line = one_line_error(result, code=1)
    assert str(bad) in line
    assert result.stdout.strip() == ("stopped after 1 file(s) committed (2 rows loaded, 0 "
                                     "rejected); the file in the error and those after it "
                                     "were not loaded")
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT request_id FROM requests ORDER BY 1").fetchall() == [("a",),
                                                                                   ("b",)]
    con.close()
