"""The rule table and the scoring engine, on hand-made findings (no database)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from toolkit.classify import load_rules, remediation_for, score
from toolkit.classify.engine import Evidence
from toolkit.classify.rules import RuleTable, _parse
from toolkit.classify.taxonomy import FAILURE_MODES, PATHWAY_OF
from toolkit.diagnose import Finding, NotAssessed
from toolkit.errors import InvalidParameterError
from toolkit.types import Window

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
BASELINE = Window(T0 - timedelta(days=7), T0)
INCIDENT = Window(T0, T0 + timedelta(hours=6))
NO_EVENTS = pd.DataFrame(columns=["ts", "kind", "artifact", "version", "host", "detail"])


def finding(id_: str, severity: str = "high", onset: datetime | None = None, **evidence):
    return Finding(id_, id_.split(".")[0], severity, 1.0, 0.0, id_, evidence, onset)


def evidence(*findings: Finding, events: pd.DataFrame = NO_EVENTS, mode: str = "real-time"):
    return Evidence(tuple(findings), (), events, BASELINE, INCIDENT, mode)


def events(*rows):
    return pd.DataFrame([{"ts": pd.Timestamp(ts), "kind": kind, "artifact": artifact,
                          "version": "v", "host": None, "detail": detail or {}}
                         for ts, kind, artifact, detail in rows])


def test_no_finding_means_no_incident():
    verdict = score(evidence())
    assert verdict.pathway == "none" and verdict.failure_mode == "none"
    assert verdict.confidence > 0.5


def test_probabilities_sum_to_one_and_pathways_aggregate_modes():
    verdict = score(evidence(finding("data.feature_drift"), finding("model.accuracy_drop",
                                                                      "medium")))
    assert math.isclose(sum(verdict.mode_scores.values()), 1.0, abs_tol=1e-3)
    assert math.isclose(sum(verdict.scores.values()), 1.0, abs_tol=1e-3)
    assert set(verdict.scores) == set(FAILURE_MODES)


@pytest.mark.parametrize(("findings", "expected"), [
    ([finding("data.feature_drift")], "covariate_shift"),
    ([finding("data.unit_change")], "unit_change"),
    ([finding("data.null_rate")], "null_injection"),
    ([finding("model.concept_drift"), finding("model.accuracy_drop")], "concept_drift"),
    ([finding("model.ood_burst")], "adversarial_inputs"),
    ([finding("infrastructure.memory_leak")], "memory_leak"),
    ([finding("infrastructure.cold_start")], "cold_start"),
    ([finding("infrastructure.host_outlier")], "accelerator_fault"),
    ([finding("infrastructure.accelerator_fault")], "accelerator_fault"),
    ([finding("integration.cache_staleness")], "cache_staleness"),
    ([finding("integration.client_contract_errors")], "api_contract_mismatch"),
    ([finding("integration.timeout_misconfiguration")], "timeout_misconfiguration"),
])
def test_each_signal_points_to_its_mode(findings, expected):
    verdict = score(evidence(*findings))
    assert verdict.failure_mode == expected
    assert verdict.pathway == PATHWAY_OF[expected]


def test_drift_with_a_permutation_is_integration_not_data():
    drift = finding("data.feature_drift")
    alone = score(evidence(drift))
    assert alone.pathway == "data"
    skew = score(evidence(drift, finding("integration.feature_permutation"),
                          finding("model.accuracy_drop")))
    assert (skew.pathway, skew.failure_mode) == ("integration", "version_skew")


def test_accuracy_loss_without_drift_is_model():
    verdict = score(evidence(finding("model.accuracy_drop"), finding("model.concept_drift")))
    assert verdict.pathway == "model"


def test_calibration_collapse_needs_an_artifact_change():
    shift = finding("model.calibration_shift", accuracy_change=0.004,
                    versions={"before": "3.1", "after": "3.1-int8"})
    verdict = score(evidence(shift))
    assert verdict.failure_mode == "calibration_collapse"
    # the same ECE rise caused by defaulted inputs is the inputs' problem
    bare = finding("model.calibration_shift", "medium", accuracy_change=0.004)
    nulls = score(evidence(bare, finding("data.null_rate")))
    assert nulls.failure_mode == "null_injection"


def test_a_calibration_shift_from_stale_cache_hits_is_the_cache():
    # after a deploy, cache hits still serve the old model: ECE moves because two models answer
    shift = finding("model.calibration_shift", "medium", accuracy_change=-0.02,
                    versions={"before": "4.7.6", "after": "4.8.0"})
    deploy = events((T0 - timedelta(minutes=5), "deploy", "model", {}))
    assert score(evidence(shift, events=deploy)).failure_mode == "calibration_collapse"
    stale = finding("integration.cache_staleness", onset=T0 - timedelta(minutes=5))
    verdict = score(evidence(shift, stale, events=deploy))
    assert verdict.failure_mode == "cache_staleness" and verdict.pathway == "integration"


def test_a_deploy_near_the_onset_raises_the_modes_tied_to_it():
    drop = finding("model.accuracy_drop", "medium", onset=T0 + timedelta(minutes=10))
    deploy = events((T0 - timedelta(minutes=20), "deploy", "model", {}))
    without = score(evidence(drop))
    with_deploy = score(evidence(drop, events=deploy))
    assert with_deploy.mode_scores["bad_release"] > without.mode_scores["bad_release"]
    # its absence keeps concept drift favoured when inputs are stable
    drift_signal = finding("model.concept_drift", "medium")
    assert score(evidence(drop, drift_signal)).failure_mode == "concept_drift"
    assert score(evidence(drop, drift_signal, events=deploy)).mode_scores["concept_drift"] < \
        score(evidence(drop, drift_signal)).mode_scores["concept_drift"]


def test_onset_snaps_to_the_release_that_started_the_mode():
    release = T0 + timedelta(minutes=7)
    found = finding("integration.cache_staleness", onset=T0 + timedelta(minutes=40))
    verdict = score(evidence(found, events=events((release, "deploy", "model", {}))))
    assert verdict.onset == release


def test_abstains_when_two_pathways_tie():
    rules = _parse({"scoring": {"base": -3.0, "min_margin": 0.15},
                    "rules": [{"name": "a", "when": [{"finding": "x.a"}],
                               "add": {"covariate_shift": 5.0}},
                              {"name": "b", "when": [{"finding": "x.b"}],
                               "add": {"memory_leak": 5.0}}]}, "test")
    verdict = score(evidence(finding("x.a"), finding("x.b")), rules)
    assert verdict.pathway == "undetermined"


def test_an_undetermined_verdict_labels_every_fix_as_a_candidate():
    # regression: the undetermined verdict carried the best mode's fixes unlabelled
    rules = _parse({"scoring": {"base": -3.0, "min_margin": 0.15},
                    "rules": [{"name": "a", "when": [{"finding": "x.a"}],
                               "add": {"covariate_shift": 5.0}},
                              {"name": "b", "when": [{"finding": "x.b"}],
                               "add": {"memory_leak": 5.0}}]}, "test")
    gaps = (NotAssessed("model.performance", "no labels"),)
    found = Evidence((finding("x.a"), finding("x.b")), gaps, NO_EVENTS, BASELINE, INCIDENT,
                     "batch")
    verdict = score(found, rules)
    assert verdict.pathway == "undetermined"
    steps = list(verdict.remediation)
    assert all(isinstance(s, str) for s in steps)
    assert "undetermined" in steps[0]
    assert any("not assessed: model.performance" in s for s in steps)
    candidates = [s for s in steps if s.startswith("If it is ")]
    assert len(candidates) == 3
    modes = sorted((m for m in PATHWAY_OF), key=lambda m: -verdict.mode_scores[m])[:3]
    assert {m for m in modes[:2]} == {"covariate_shift", "memory_leak"}
    for line, mode in zip(candidates, modes, strict=True):
        p = verdict.mode_scores[mode]
        prefix = f"If it is {mode.replace('_', ' ')} (candidate, p={p:.2f}): "
        assert line.startswith(prefix)
        # every fix of the candidate, the batch ones first
        assert line[len(prefix):] == " ".join(remediation_for(mode, "batch"))
    # no failure mode's fix stands alone as if it were recommended
    every_fix = {a for m in PATHWAY_OF for a in remediation_for(m, "batch")}
    assert not every_fix & set(steps)


def test_remediation_differs_by_serving_mode():
    realtime = score(evidence(finding("integration.cache_staleness")))
    batch = score(evidence(finding("integration.cache_staleness"), mode="batch"))
    assert realtime.remediation[0] == "Flush the cache now."
    assert batch.remediation[0].startswith("Invalidate cached results")
    assert set(realtime.remediation[1:]) == set(batch.remediation[1:])
    for mode in PATHWAY_OF:
        assert remediation_for(mode, "real-time"), mode


def test_rule_table_is_validated():
    with pytest.raises(InvalidParameterError, match="unknown failure mode"):
        _parse({"rules": [{"name": "x", "when": [], "add": {"gremlins": 1.0}}]}, "t")
    with pytest.raises(InvalidParameterError, match="unknown condition"):
        _parse({"rules": [{"name": "x", "when": [{"findng": "a"}], "add": {}}]}, "t")
    table = load_rules()
    assert isinstance(table, RuleTable) and len(table.rules) > 30
    assert all(mode in PATHWAY_OF for rule in table.rules for mode in rule.add)


def _drift(**psi):
    return finding("data.feature_drift", features={
        name: {"psi": value, "wasserstein": None, "severity": "high"}
        for name, value in psi.items()})


def test_defaults_that_a_shifted_feature_picks_up_do_not_make_it_null_injection():
    # the feature moved towards zero: 5 more points of exact zeros, and a PSI far beyond what
    # those zeros alone can produce
    nulls = finding("data.null_rate", "medium", features={
        "age": {"null_rate": [0.0, 0.0], "default_rate": [0.01, 0.061]}})
    shifted = score(evidence(_drift(age=1.6, amount=0.9), nulls))
    assert shifted.failure_mode == "covariate_shift"
    # the same default rate with a drift the defaults account for is null injection
    injected = finding("data.null_rate", "high", features={
        "age": {"null_rate": [0.0, 0.0], "default_rate": [0.01, 0.4]}})
    assert score(evidence(_drift(age=1.2), injected)).failure_mode == "null_injection"


def test_a_unit_change_does_not_explain_other_features_drifting():
    rescaled = finding("data.unit_change", feature="distance", factor=8.5, matched=10.0)
    alone = score(evidence(_drift(distance=3.0), rescaled))
    assert alone.failure_mode == "unit_change"
    both = score(evidence(_drift(distance=3.0, amount=1.9), rescaled))
    assert both.failure_mode == "covariate_shift"


def test_the_null_and_default_bound_holds_on_any_binning_and_is_attained():
    import numpy as np

    from toolkit.classify.engine import _null_bound
    from toolkit.diagnose._stats import psi

    # drift counts non-null values; default_rate is a share of them. 30% of the incident's rows
    # are null and 40% of its non-null values are the default 0 (1% before); the other values
    # keep their distribution exactly
    rest = np.array([120.0, 80, 200, 150, 250, 200])  # counts of the other values per bin
    rates = {"null_rate": [0.0, 0.3], "default_rate": [0.01, 0.4]}
    bound = _null_bound(rates)

    def counts(default_share: float, zero_bin: bool) -> np.ndarray:
        other = (1 - default_share) * rest / rest.sum()
        if zero_bin:  # the default has a bin of its own: the bound is reached
            return np.r_[default_share, other]
        return np.r_[other[0] + default_share, other[1:]]  # shares the lowest bin

    own = psi(counts(0.01, True), counts(0.4, True))
    shared = psi(counts(0.01, False), counts(0.4, False))
    assert shared < own <= bound + 1e-12
    assert own == pytest.approx(psi(np.array([0.01, 0.99]), np.array([0.4, 0.6])))
    # the three-cell PSI over all rows, with the default share of the non-null rows
    whole = psi(np.array([0.0, 0.01, 0.99]), np.array([0.3, 0.4 * 0.7, 0.6 * 0.7]))
    assert bound == pytest.approx(max(own, whole))
    assert _null_bound(None) == 0.0
    assert math.isinf(_null_bound({"null_rate": [0.0, 1.5], "default_rate": [0.0, 0.0]}))
