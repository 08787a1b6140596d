"""`forensics ingest / info / sql` through the real console script."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

FORENSICS = shutil.which("forensics", path=str(Path(sys.executable).parent))


def run(*args: str, check: bool = False) -> subprocess.CompletedProcess:
    result = subprocess.run([FORENSICS, *args], capture_output=True, text=True,
                            env={"CI": "true", "PATH": "/usr/bin:/bin", "COLUMNS": "200"})
    if check and result.returncode != 0:
        raise AssertionError(result.stderr)
    return result


@pytest.fixture
def case_dir(tmp_path):
    folder = tmp_path / "export"
    folder.mkdir()
    pd.DataFrame({
        "request_id": ["a", "b", "c"],
        "ts": ["2026-03-02T14:00:00Z", "2026-03-02T14:01:00Z", "bad"],
        "model_version": ["v1", "v2", "v2"],
        "host": ["pod-0", "pod-1", "pod-0"],
        "latency_ms": [10.0, 20.0, 30.0],
        "amount": [1.0, 2.0, 3.0],
    }).to_csv(folder / "requests.csv", index=False)
    (folder / "events.jsonl").write_text(
        '{"ts": "2026-03-02T13:59:00Z", "kind": "deploy", "artifact": "model", "version": "v2"}\n'
    )
    return folder


def test_ingest_info_sql_round_trip(case_dir, tmp_path):
    db = tmp_path / "case.duckdb"
    result = run("ingest", str(case_dir), "--db", str(db), check=True)
    assert "4 rows read, 3 loaded, 1 rejected" in result.stdout
    again = run("ingest", str(case_dir), "--db", str(db), check=True)
    assert "unchanged" in again.stdout and "0 rows read" in again.stdout

    info = run("info", "--db", str(db), check=True).stdout
    assert "requests" in info and "v1 (1), v2 (1)" in info
    assert "amount (numeric)" in info and "rejected rows: 1" in info

    summary = json.loads(run("info", "--db", str(db), "--json", check=True).stdout)
    counts = {t["table"]: t["rows"] for t in summary["tables"]}
    assert counts["requests"] == 2 and counts["events"] == 1

    out = run("sql", "--db", str(db), "SELECT model_version, count(*) AS n FROM requests "
              "GROUP BY 1 ORDER BY 1", "--format", "csv", check=True).stdout
    assert out.splitlines() == ["model_version,n", "v1,1", "v2,1"]
    rows = json.loads(run("sql", "--db", str(db), "SELECT request_id FROM requests ORDER BY 1",
                          "--format", "json", check=True).stdout)
    assert rows == [{"request_id": "a"}, {"request_id": "b"}]


def test_exit_codes_and_messages(case_dir, tmp_path):
    db = tmp_path / "case.duckdb"
    usage = run("ingest", str(case_dir))  # --db missing
    assert usage.returncode == 2
    missing = run("ingest", str(tmp_path / "nope"), "--db", str(db))
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: ") and "Traceback" not in missing.stderr
    run("ingest", str(case_dir), "--db", str(db), check=True)
    bad_sql = run("sql", "--db", str(db), "SELECT nope")
    assert bad_sql.returncode == 1 and "query failed" in bad_sql.stderr
    write = run("sql", "--db", str(db), "DELETE FROM requests")
    assert write.returncode == 1 and "read-only" in write.stderr
    no_case = run("info", "--db", str(tmp_path / "other.duckdb"))
    assert no_case.returncode == 2 and "No case database" in no_case.stderr  # a usage error
