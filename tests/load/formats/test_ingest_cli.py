"""`forensics ingest` on a folder mixing platform exports and generic tables."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import toolkit as tk
from tests.load.formats._helpers import FIXTURES

FORENSICS = shutil.which("forensics", path=str(Path(sys.executable).parent))


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([FORENSICS, *args], capture_output=True, text=True,
                          env={"CI": "true", "PATH": "/usr/bin:/bin", "COLUMNS": "250"})


def test_ingest_folder_with_features_and_a_forced_format(tmp_path):
    export = tmp_path / "INC-7"
    shutil.copytree(FIXTURES / "sagemaker" / "capture", export / "capture")
    shutil.copy(FIXTURES / "prometheus" / "triton.json", export / "triton.json")
    shutil.copy(FIXTURES / "kubernetes" / "pods.json", export / "pods.json")
    (export / "labels.csv").write_text("request_id,label\n58,1\n")
    # a dump saved under a name that says nothing: recognised by content all the same
    shutil.copy(FIXTURES / "kserve" / "http_echo.txt", export / "logger-output.log")
    db = tmp_path / "case.duckdb"

    result = run("ingest", str(export), "--db", str(db),
                 "--features", "account_length,vmail_messages,day_mins,day_calls")
    assert result.returncode == 0, result.stderr
    assert "rejected" in result.stdout

    con = tk.connect(db, read_only=True)
    formats = dict(con.execute("SELECT table_name || ':' || format, count(*) FROM loads "
                               "GROUP BY ALL").fetchall())
    assert formats == {"requests:sagemaker": 1, "requests:kserve": 1, "labels:csv": 1,
                       "metrics:prometheus": 1, "events:kubernetes": 1}
    assert con.execute("SELECT count(*) FROM requests WHERE day_calls IS NOT NULL"
                       ).fetchone()[0] == 9  # --features names the positional inputs of every file: 6 + 3 rows
    con.close()

    forced = tmp_path / "forced.duckdb"
    renamed = tmp_path / "capture.txt"
    shutil.copy(FIXTURES / "kserve" / "event_display_v1.txt", renamed)
    result = run("ingest", str(renamed), "--db", str(forced), "--format", "kserve")
    assert result.returncode == 0, result.stderr
    con = tk.connect(forced, read_only=True)
    assert con.execute("SELECT format, rows_loaded FROM loads").fetchall() == [("kserve", 4)]
    con.close()
