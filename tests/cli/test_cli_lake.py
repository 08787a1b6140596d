"""``forensics classify --engine spark --tables ...``: usage errors (issue 26).

Every refusal is one line on stderr with exit code 2, given before Spark starts (these tests
need no Java); a machine without Java is told so in one line, also with exit code 2.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import one_line_error
from toolkit.errors import InvalidParameterError
from toolkit.store.lake import LakeSource, parse_tables_spec

FORENSICS = shutil.which("forensics", path=str(Path(sys.executable).parent))


@pytest.mark.parametrize("args,message", [
    (["--engine", "spark"], "--engine spark needs --tables"),
    (["--engine", "spark", "--tables", "requests"], "'requests' is not TABLE=LOCATION"),
    (["--engine", "spark", "--tables", "requests=/a,=/b"], "'=/b' is not TABLE=LOCATION"),
    (["--engine", "spark", "--tables", "request=/a"], "'request' is not a table of a case. "
                                                        "Choose among: requests, labels"),
    (["--engine", "spark", "--tables", "requests=/a", "--tables", "requests=/b"],
     "requests is given twice"),
    (["--engine", "spark", "--db", "x.duckdb", "--tables", "requests=/a"],
     "--engine spark reads --tables, not --db"),
    (["--tables", "requests=/a", "--db", "x.duckdb"], "--tables goes with --engine spark"),
    (["--engine", "trino", "--tables", "requests=/a"], "--engine must be one of duckdb, spark"),
    ([], "give the case: --db CASE"),
])
def test_classify_usage_errors_exit_2_inone_line_error(run, args, message):
    line = one_line_error(run("classify", *args))
    assert message in line, line


@pytest.mark.parametrize("command", [
    ["classify"],
    ["postmortem", "--out", "OUT"],
    ["report", "weekly", "--week", "2026-W07", "--out", "OUT"],
])
@pytest.mark.parametrize("location,message", [
    ("/lake/requests\nimport os", "tables['requests']: the location '/lake/requests\\nimport "
                                   "os' holds a control character"),
    ("/lake/\x1b[2Jrequests", "holds a control character"),
    ("/lake/\x7frequests", "holds a control character"),
    ("/lake/\x9brequests", "holds a control character"),  # a one-byte CSI (C1)
    ("delta:", "'delta:' names no path after delta:"),
])
def test_a_bad_location_is_a_usage_error_in_every_command(run, tmp_path, monkeypatch, command,
                                                          location, message):
    """A location the reports' notebooks would refuse is refused with the other options, exit
    2, before a notebook or a Spark session starts (the postmortem exited 1 on a control
    character: only render_postmortem refused it, after the usage checks)."""
    started = []
    monkeypatch.setattr("toolkit.report.render_template", lambda *a, **k: started.append(a))
    monkeypatch.setattr("toolkit.store.lake.spark_session", lambda *a, **k: started.append(a))
    argv = [str(tmp_path / "out") if arg == "OUT" else arg for arg in command]
    line = one_line_error(run(*argv, "--engine", "spark", "--tables",
                         f"events=/lake/events,requests={location}"))
    assert message in line, line
    assert started == []


def test_a_bad_window_is_refused_before_the_lake_is_read(run, tmp_path):
    result = run("classify", "--engine", "spark", "--tables",
                       f"requests={tmp_path / 'absent'}", "--incident", "yesterday")
    assert "--incident" in one_line_error(result)


def test_tables_spec_and_locations():
    assert parse_tables_spec(["requests=s3a://b/r, labels = lake.db.labels", "events=e/"]) == \
        {"requests": "s3a://b/r", "labels": "lake.db.labels", "events": "e/"}
    assert LakeSource.parse("requests", "s3a://b/r") == LakeSource("requests", "s3a://b/r",
                                                                   "parquet")
    assert LakeSource.parse("labels", "delta:s3a://b/l") == LakeSource("labels", "s3a://b/l",
                                                                       "delta")
    assert LakeSource.parse("labels", "lake.db.labels") == LakeSource("labels",
                                                                      "lake.db.labels", None)
    with pytest.raises(InvalidParameterError, match="names no path after iceberg:"):
        LakeSource.parse("labels", "iceberg:")


def test_local_delta_folder_is_read_as_delta(tmp_path):
    (tmp_path / "t" / "_delta_log").mkdir(parents=True)
    assert LakeSource.parse("requests", str(tmp_path / "t")).format == "delta"
    (tmp_path / "p").mkdir()
    assert LakeSource.parse("requests", str(tmp_path / "p")).format == "parquet"


@pytest.mark.slow
def test_without_java_the_spark_engine_is_a_usage_error(tmp_path):
    """Spark cannot start: one line saying Java is missing, exit 2 (a subprocess, since this
    process may already hold a running JVM)."""
    pytest.importorskip("pyspark", reason="pyspark is not installed (the spark extra)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARK_", "PYSPARK_"))}
    env.update(JAVA_HOME=str(tmp_path / "no-java"), CI="true")
    out = subprocess.run([FORENSICS, "classify", "--engine", "spark", "--tables",
                          f"requests={tmp_path}"], env=env, capture_output=True, text=True,
                         timeout=300)
    line = one_line_error(out)
    assert "Spark could not start (is Java 17 installed" in line
