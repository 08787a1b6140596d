"""The hard distinctions of issue 22, rule by rule: each test gives the findings and events a
tuning case showed and checks the verdict, and that the rule stays silent without the
evidence that makes the distinction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from toolkit.classify import score
from toolkit.classify.engine import Evidence
from toolkit.diagnose import Finding, NotAssessed
from toolkit.types import Window

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
BASELINE = Window(T0 - timedelta(days=7), T0)
INCIDENT = Window(T0, T0 + timedelta(hours=20))
COLUMNS = ["ts", "kind", "artifact", "version", "host", "detail"]
NO_EVENTS = pd.DataFrame(columns=COLUMNS)


def finding(id_: str, severity: str = "high", evidence: dict | None = None,
            onset: datetime | None = T0) -> Finding:
    return Finding(id_, id_.split(".")[0], severity, 1.0, 0.0, id_, evidence or {}, onset)


def events(*rows: tuple) -> pd.DataFrame:
    return pd.DataFrame([dict(zip(COLUMNS, row, strict=True)) for row in rows], columns=COLUMNS)


def verdict(*findings: Finding, ev: pd.DataFrame = NO_EVENTS, gaps: tuple = ()):
    return score(Evidence(tuple(findings), tuple(gaps), ev, BASELINE, INCIDENT))


def fired(result) -> set[str]:
    return {hit.name for hit in result.hits}


# ---------------------------------------------------------------- calibration, few labels
QUANTIZED = events((T0, "deploy", "model", "2.7.6-int8", None,
                    {"base_model": "2.7.6", "quantization": "int8"}))
PLAIN_DEPLOY = events((T0, "deploy", "model", "2.8.0", None, {"training_run": "run-1"}))


def more_confident(class_share_change: float = 0.002) -> Finding:
    # varied tuning seed 1: score PSI 2.46, mean score 0.975 -> 0.993, class share +0.2%
    return finding("model.prediction_shift", "high", {
        "score_psi": 2.46, "mean_score": [0.975, 0.993], "class": "0",
        "class_share_change": class_share_change})


def test_scores_moving_after_a_quantized_release_are_a_calibration_collapse():
    result = verdict(more_confident(), ev=QUANTIZED)
    assert "scores moved with the class mix unchanged after a quantized model release" in \
        fired(result)
    assert (result.pathway, result.failure_mode) == ("model", "calibration_collapse")
    # with no event logged the quantized-release rule cannot fire; since 8bca707 the same
    # output shift is read by the rule for a collapse nobody announced, not left undetermined
    silent = verdict(more_confident())
    assert "scores moved with the class mix unchanged after a quantized model release" not in \
        fired(silent)
    assert "scores moved while the class mix and the inputs held, with no model deploy logged" \
        in fired(silent)
    assert silent.failure_mode == "calibration_collapse"


def test_the_quantized_release_rule_needs_the_quantization_and_the_class_mix():
    plain = verdict(more_confident(), ev=PLAIN_DEPLOY)
    assert plain.failure_mode != "calibration_collapse"
    # the predicted classes moved too: the release changed the decisions, not only the scores
    moved = verdict(more_confident(class_share_change=0.12), ev=QUANTIZED)
    assert "scores moved with the class mix unchanged after a quantized model release" \
        not in fired(moved)


def test_an_announced_release_pair_is_not_version_skew():
    # varied tuning seed 2: the int8 build's new model x pipeline pair, announced by its deploy
    skew = finding("integration.version_skew", "low", {"announced_release": True,
                                                       "known_source": "baseline"})
    result = verdict(more_confident(), skew, ev=QUANTIZED)
    assert result.mode_scores["version_skew"] < result.mode_scores["calibration_collapse"]
    assert sum(h.add.get("version_skew", 0.0) for h in result.hits) == 0.0
    assert result.failure_mode == "calibration_collapse"
    # an unannounced pair still counts
    unannounced = finding("integration.version_skew", "medium", {"announced_release": False})
    assert sum(h.add.get("version_skew", 0.0) for h in verdict(unannounced).hits) > 2.5


# ---------------------------------------------------------------- nothing could be assessed
HEALTH = ("infra.latency", "integration.client_errors", "case.segments", "model.performance",
          "model.prediction_shift", "data.drift", "data.quality")


def too_few(*checks: str) -> tuple[NotAssessed, ...]:
    return tuple(NotAssessed(c, "12 requests in the incident window: fewer than 50 are too "
                                "few to assess") for c in checks)


def test_no_finding_because_nothing_could_run_is_undetermined_not_none():
    result = verdict(gaps=too_few(*HEALTH, "infra.memory", "integration.timeouts"))
    assert (result.pathway, result.failure_mode) == ("undetermined", "undetermined")
    assert result.remediation[0].startswith("The verdict is undetermined")
    assert any("infra.latency" in step for step in result.remediation)


def test_one_health_check_that_ran_and_saw_nothing_supports_none():
    # latency and errors were looked at and are fine; labels are missing: still no incident
    result = verdict(gaps=too_few(*(c for c in HEALTH if c != "infra.latency")))
    assert result.failure_mode == "none"
    # sub-checks (a part of a diagnostic) do not make a diagnostic unassessed
    result = verdict(gaps=too_few(*(f"{c}.part" for c in HEALTH)))
    assert result.failure_mode == "none"


# ---------------------------------------------------------------- timeouts on one client
def client_slice(timeout_share: float) -> Finding:
    # varied tuning seed 3: 12 of 12 incident failures on ios-8.9.9, all client timeouts
    return finding("integration.failure_segment", "high", {
        "attribute": "client_version", "role": "client", "values": ["ios-8.9.9"],
        "timeout_share": timeout_share})


def test_timeouts_concentrated_on_one_client_are_its_timeout_not_its_contract():
    rate = finding("infrastructure.timeout_rate", "medium", {"baseline_rate": 0.0,
                                                             "incident_rate": 0.018})
    result = verdict(client_slice(1.0), rate)
    assert "timeouts concentrated on one client version" in fired(result)
    assert (result.pathway, result.failure_mode) == ("integration", "timeout_misconfiguration")
    # errors that are not timeouts on one client are a contract mismatch
    errors = verdict(client_slice(0.0))
    assert "timeouts concentrated on one client version" not in fired(errors)
    assert errors.failure_mode == "api_contract_mismatch"
    # the dedicated finding is not counted twice
    found = verdict(client_slice(1.0), finding("integration.timeout_misconfiguration", "high"))
    assert "timeouts concentrated on one client version" not in fired(found)


def test_the_timeout_change_in_seconds_dates_the_onset():
    change = T0 + timedelta(minutes=20)
    ev = events((change, "config_change", "client", None, None,
                 {"client": "ios", "client_timeout_s": 0.14}))
    result = verdict(finding("integration.timeout_misconfiguration", "high",
                             onset=T0 + timedelta(minutes=40)), ev=ev)
    assert result.failure_mode == "timeout_misconfiguration"
    assert result.onset == change


# ---------------------------------------------------------------- a new version, no lineage
def regression() -> Finding:
    return finding("model.version_regression", "high", {
        "version": "2.13.0", "reference_version": "2.12.0", "accuracy": 0.853,
        "reference_accuracy": 0.953, "new_version": True})


def new_pair(recombined: bool = False, known_source: str = "baseline") -> Finding:
    return finding("integration.version_skew", "medium", {
        "known_source": known_source, "recombined": recombined, "announced_release": False,
        "less_accurate": True})


def test_a_new_less_accurate_version_without_lineage_is_a_bad_release():
    # varied tuning seed 1 of bad_release: no events, no lineage, no pipeline version logged
    drop = finding("model.accuracy_drop", "high", {"accuracy_baseline": 0.953,
                                                   "accuracy_incident": 0.853})
    drift = finding("model.concept_drift", "high", {"accuracy_drop": 0.10,
                                                    "max_feature_psi": 0.013})
    result = verdict(drop, regression(), drift, new_pair())
    assert "a new model version is less accurate, and nothing says its pair is skewed" in \
        fired(result)
    assert (result.pathway, result.failure_mode) == ("model", "bad_release")
    # versions recombined (a rollback of one artifact) or out of lineage: skew, not a release
    for skew in (new_pair(recombined=True), new_pair(known_source="lineage")):
        result = verdict(drop, regression(), drift, skew)
        assert "a new model version is less accurate, and nothing says its pair is skewed" \
            not in fired(result)


# ---------------------------------------------------------------- OOM: exhaustion or leak
def kills(minutes_between: float) -> Finding:
    return finding("infrastructure.oom_kills", "high", {
        "oom_kills_incident": 162.0, "hours_incident": 6.05,
        "median_minutes_between_kills": minutes_between})


def test_oom_kills_minutes_apart_are_exhaustion_not_a_leak():
    latency = finding("infrastructure.latency_regression", "high")
    pressure = finding("infrastructure.memory_pressure", "low")
    fast = verdict(kills(14.0), latency, pressure)
    assert "OOM kills return to the same hosts within 90 minutes" in fired(fast)
    assert fast.failure_mode == "memory_exhaustion"
    assert fast.mode_scores["memory_leak"] < fast.mode_scores["memory_exhaustion"] / 4
    # kills hours apart say nothing against a leak: the leak finding decides
    leak = finding("infrastructure.memory_leak", "high")
    slow = verdict(kills(420.0), latency, leak)
    assert "OOM kills return to the same hosts within 90 minutes" not in fired(slow)
    assert slow.failure_mode == "memory_leak"
