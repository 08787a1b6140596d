"""``forensics gate`` through the installed script: exit codes 0, 1 and 2, JSON and JUnit."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.gate.conftest import build_case

FORENSICS = str(Path(sys.executable).with_name("forensics"))


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([FORENSICS, "gate", *args], capture_output=True, text=True,
                          timeout=120)


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gate")
    clean, ttl = folder / "clean.duckdb", folder / "ttl.duckdb"
    build_case(clean).close()
    build_case(ttl, cache_detail={"cache_ttl_s": 259200}).close()
    return clean, ttl


def test_pass_exits_0(cases):
    out = run("--db", str(cases[0]), "--candidate", "m2")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("gate PASSED: candidate m2 vs baseline m1")


def test_fail_exits_1_with_json_and_junit(cases, tmp_path):
    junit = tmp_path / "gate.xml"
    out = run("--db", str(cases[1]), "--candidate", "m2", "--baseline", "m1", "--json",
              "--junit", str(junit))
    assert out.returncode == 1, out.stderr
    data = json.loads(out.stdout)
    assert data["verdict"] == "fail"
    assert [c["name"] for c in data["checks"] if c["status"] == "fail"] == ["cache"]
    root = ET.parse(junit).getroot()
    assert root.get("failures") == "1"
    assert [c.get("name") for c in root.iter("testcase") if c.find("failure") is not None] \
        == ["cache"]


@pytest.mark.parametrize("args", [
    ("--candidate", "m9"),  # a version that never served
    ("--candidate", "m2", "--policy", "missing.toml"),
    ("--candidate", "m2", "--baseline", "m2"),
    (),  # no --candidate
])
def test_usage_errors_exit_2(cases, args):
    out = run("--db", str(cases[0]), *args)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr


def test_a_missing_database_is_a_usage_error(tmp_path):
    out = run("--db", str(tmp_path / "nope.duckdb"), "--candidate", "m2")
    assert out.returncode == 2
    assert "no such case database" in out.stderr
