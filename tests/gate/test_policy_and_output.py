"""The policy template, policy errors, and the JSON and JUnit outputs."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from tests.gate.conftest import build_case
from toolkit.errors import InvalidParameterError
from toolkit.gate import CHECKS, gate, load_policy, template_path


def test_the_template_ships_and_loads():
    path = template_path()
    assert path.is_file() and path.name == "policy_template.toml"
    policy = load_policy()
    assert set(policy.profiles) == {"realtime", "batch"}
    assert policy.default_profile == "realtime"
    rt, batch = policy.profiles["realtime"], policy.profiles["batch"]
    assert rt.max_latency_p99_ms < batch.max_latency_p99_ms  # rule 5: real time tolerates less
    assert rt.max_ece_increase <= batch.max_ece_increase
    assert all(policy.checks[c] for c in CHECKS)
    assert policy.missing["accuracy"] == "fail" and policy.missing["cache"] == "skip"


@pytest.mark.parametrize(("text", "message"), [
    ("default_profile = 'x'\n[profiles.a]\n", "profiles.a: missing"),
    ("[checks]\nspeed = true\n", "profiles: at least one"),
    ("[profiles", "not a valid TOML"),
])
def test_a_bad_policy_names_the_file_and_key(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InvalidParameterError, match=message) as err:
        load_policy(path)
    assert str(path) in str(err.value)


def test_a_bad_threshold_is_named(tmp_path):
    path = tmp_path / "gate.toml"
    path.write_text(template_path().read_text(encoding="utf-8").replace(
        "max_ece = 0.05", "max_ece = -1"), encoding="utf-8")
    with pytest.raises(InvalidParameterError, match=r"profiles\.realtime\.max_ece: must be"):
        load_policy(path)


def test_json_and_junit_outputs():
    result = gate(build_case(cache_detail={"cache_ttl_s": 60}), "m2")
    data = json.loads(result.to_json())
    assert data["verdict"] == "fail" and data["candidate"] == "m2"
    assert [c["name"] for c in data["checks"]] == list(CHECKS)
    root = ET.fromstring(result.to_junit())
    assert root.tag == "testsuite"
    assert root.get("tests") == str(len(CHECKS)) and root.get("failures") == "1"
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert set(cases) == set(CHECKS)
    failure = cases["cache"].find("failure")
    assert failure is not None and "TTL only" in failure.get("message")
    assert json.loads(failure.text)["status"] == "fail"
    assert cases["accuracy"].find("failure") is None
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["candidate"] == "m2" and props["baseline"] == "m1"
    text = result.to_text()
    assert text.startswith("gate FAILED") and "[FAIL] cache" in text


def test_junit_survives_control_characters_from_the_logs():
    from toolkit.gate import Check, GateResult

    bad = "m2\x1b[2J\x00"
    result = GateResult(candidate=bad, baseline="m1", endpoint="e\x07", profile="realtime",
                        checks=(Check("lineage", "fail", f"model {bad} is in no release"),
                                Check("cache", "skip", "no cache \x0b here")),
                        policy="gate.toml")
    root = ET.fromstring(result.to_junit())  # would raise on a raw \x1b or \x00
    assert root.get("name") == "forensics gate m2\\x1b[2J\\x00"
    failure = root.find("testcase/failure")
    assert failure.get("message") == "model m2\\x1b[2J\\x00 is in no release"
    assert json.loads(failure.text)["summary"] == f"model {bad} is in no release"
    assert root.find("testcase/skipped").get("message") == "no cache \\x0b here"
