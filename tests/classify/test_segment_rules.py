"""Rules for affected slices (``case.segments``): the pathway follows the attribute's role,
the dedicated diagnostics are not counted twice, and other explanations take precedence."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta
from importlib import resources

import pandas as pd
import pytest

from toolkit.classify import remediation_for, score
from toolkit.classify.engine import Evidence
from toolkit.classify.remediation import SLICE_REMEDIATION, remediation_for_slice
from toolkit.classify.rules import Context, _parse, holds
from toolkit.diagnose import Finding
from toolkit.diagnose.case.segments import ROLES
from toolkit.errors import InvalidParameterError
from toolkit.types import Window

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
BASELINE = Window(T0 - timedelta(days=7), T0)
INCIDENT = Window(T0, T0 + timedelta(hours=6))
NO_EVENTS = pd.DataFrame(columns=["ts", "kind", "artifact", "version", "host", "detail"])


def segment(pathway: str, role: str, severity: str = "medium", measure: str = "failure",
            timeout_share: float = 0.0) -> Finding:
    return Finding(f"{pathway}.{measure}_segment", pathway, severity, 0.6, 0.1, "slice",
                   {"attribute": role, "role": role, "timeout_share": timeout_share,
                    "values": ["x"]}, T0 + timedelta(minutes=5), "case.segments")


def other(id_: str, severity: str = "high") -> Finding:
    return Finding(id_, id_.split(".")[0], severity, 1.0, 0.0, id_, {}, None)


def verdict(*findings: Finding):
    return score(Evidence(tuple(findings), (), NO_EVENTS, BASELINE, INCIDENT))


def fired(result) -> set[str]:
    return {hit.name for hit in result.hits}


@pytest.mark.parametrize(("finding", "mode", "decisive"), [
    (segment("model", "model", "high"), "bad_release", True),
    (segment("infrastructure", "host", "high"), "accelerator_fault", True),
    (segment("integration", "client", "high"), "api_contract_mismatch", True),
    # chronic (medium) slices and a slow host rank their mode first but do not decide alone
    (segment("model", "model", "medium"), "bad_release", False),
    (segment("infrastructure", "host", "high", measure="latency"), "accelerator_fault", False),
])
def test_the_slice_points_to_the_mode_of_its_attribute(finding, mode, decisive):
    result = verdict(finding)
    modes = {m: p for m, p in result.mode_scores.items() if m != "none"}
    assert max(modes, key=modes.get) == mode
    assert result.failure_mode == (mode if decisive else "undetermined")


def test_a_medium_model_slice_weighs_three_scaled_by_severity():
    result = verdict(segment("model", "model", "medium"))
    (hit,) = result.hits
    assert hit.add == {"bad_release": pytest.approx(3.0 * 0.7)}
    assert hit.findings == ("model.failure_segment",)


def test_a_low_slice_adds_nothing():
    assert verdict(segment("model", "model", "low")).hits == ()
    assert verdict(segment("model", "model", "low")).failure_mode == "none"


def test_a_site_or_a_population_names_no_mode():
    for finding in (segment("infrastructure", "site", "high"), segment("data", "segment",
                                                                        "high")):
        result = verdict(finding)
        assert result.hits == ()
        # a high finding is still unlikely in a healthy period: not "none", not a guess
        assert result.failure_mode == "undetermined"


def test_host_slices_are_not_counted_twice_with_the_host_outlier():
    with_outlier = verdict(segment("infrastructure", "host", "high"),
                           other("infrastructure.host_outlier"))
    alone = verdict(other("infrastructure.host_outlier"))
    assert "failures concentrated on one host or GPU" not in fired(with_outlier)
    assert fired(with_outlier) == fired(alone)

    def odds(result):  # accelerator_fault against another mode: "none" cancels out
        return result.mode_scores["accelerator_fault"] / result.mode_scores["bad_release"]

    assert odds(with_outlier) == pytest.approx(odds(alone), rel=0.01)


@pytest.mark.parametrize("explanation", ["infrastructure.memory_leak",
                                         "infrastructure.cold_start",
                                         "infrastructure.oom_kills"])
def test_failures_on_a_host_that_memory_or_cold_starts_explain_are_not_a_gpu(explanation):
    result = verdict(segment("infrastructure", "host", "high"), other(explanation))
    assert "failures concentrated on one host or GPU" not in fired(result)
    assert result.failure_mode != "accelerator_fault"


def test_timeouts_on_one_client_are_not_a_contract_mismatch():
    contract = verdict(segment("integration", "client", "high", timeout_share=0.1))
    timeouts = verdict(segment("integration", "client", "high", timeout_share=0.9))
    assert "failures concentrated on one client or API version" in fired(contract)
    assert "failures concentrated on one client or API version" not in fired(timeouts)
    with_mismatch = verdict(segment("integration", "client", "high"),
                            other("integration.timeout_misconfiguration"))
    assert with_mismatch.failure_mode == "timeout_misconfiguration"


def test_client_slices_are_not_counted_twice_with_client_contract_errors():
    result = verdict(segment("integration", "client", "high"),
                     other("integration.client_contract_errors"))
    assert "failures concentrated on one client or API version" not in fired(result)
    assert result.failure_mode == "api_contract_mismatch"


def test_a_pipeline_slice_splits_between_skew_and_schema():
    result = verdict(segment("integration", "pipeline", "high"))
    (hit,) = result.hits
    assert hit.add == {"version_skew": 1.0, "schema_mismatch": 1.0}


def test_a_model_slice_yields_to_version_skew():
    result = verdict(segment("model", "model", "high"), other("integration.version_skew"))
    assert "failures concentrated on some model versions, checkpoints or adapters" \
        not in fired(result)
    assert result.failure_mode == "version_skew"


def test_text_operators():
    finding = segment("infrastructure", "host")
    context = Context({finding.id: finding}, NO_EVENTS, T0)
    base = {"finding": finding.id, "evidence": "role"}
    assert holds(base | {"op": "eq", "value": "host"}, context)
    assert not holds(base | {"op": "eq", "value": "site"}, context)
    assert holds(base | {"op": "in", "value": ["site", "host"]}, context)
    assert not holds(base | {"op": "in", "value": ["client"]}, context)
    # a missing key never matches
    assert not holds({"finding": finding.id, "evidence": "nope", "op": "eq", "value": None},
                     context)
    with pytest.raises(InvalidParameterError, match="unknown op"):
        _parse({"rules": [{"name": "x", "when": [base | {"op": "like", "value": "h"}],
                           "add": {"bad_release": 1.0}}]}, "test")


def test_roles_named_by_rules_exist_and_every_role_has_remediation():
    text = (resources.files("toolkit.classify") / "rules.toml").read_text(encoding="utf-8")
    roles = {role for role, _, _ in ROLES} | {"segment"}
    used = {c["value"] for rule in tomllib.loads(text)["rules"] for c in rule["when"]
            if c.get("evidence") == "role"}
    assert used and used <= roles
    assert set(SLICE_REMEDIATION) == roles
    for role in roles:
        assert remediation_for_slice(role, "batch")[0] == SLICE_REMEDIATION[role]["batch"][0]
        assert remediation_for_slice(role)[-1] == SLICE_REMEDIATION[role]["always"][-1]
    assert remediation_for_slice("unknown") == []
    assert any("checkpoints" in line for line in remediation_for("bad_release"))
