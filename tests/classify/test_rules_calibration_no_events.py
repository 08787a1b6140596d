"""Calibration collapse with no event logged (issue 22): the model's scores all moved while
the predicted class mix and the inputs held, with no accuracy loss. The rules read it only
through a quantized-model deploy event (or labels enough for the ECE); without the events
table the simulated collapse read undetermined 0.26 or, with the int8 build's new version
pair, version_skew 0.57-0.58."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from toolkit.classify import score
from toolkit.classify.engine import Evidence
from toolkit.diagnose import Finding
from toolkit.types import Window

RULE = "scores moved while the class mix and the inputs held, with no model deploy logged"
SKEW_RULE = "the new pair is a new model whose scores all moved: a release, not skew"
T0 = datetime(2026, 3, 1, tzinfo=UTC)
CUT = T0 + timedelta(days=7)
END = CUT + timedelta(days=2)
COLUMNS = ["ts", "kind", "artifact", "version", "host", "detail"]
NO_EVENTS = pd.DataFrame(columns=COLUMNS)


def _shift(class_share_change: float = 0.002, severity: str = "high") -> Finding:
    return Finding("model.prediction_shift", "model", severity, 2.46, 0.1, "scores moved",
                   {"score_psi": 2.46, "mean_score": [0.975, 0.993], "class": "0",
                    "class_share_change": class_share_change}, CUT + timedelta(minutes=5))


def _new_pair() -> Finding:
    # versions.py's finding for a new int8 build whose pair is unknown only because it is new
    return Finding("integration.version_skew", "integration", "medium", 1.0, 0.05, "new pair",
                   {"known_source": "baseline", "recombined": False,
                    "announced_release": False}, CUT + timedelta(minutes=5))


def _score(*findings: Finding, events: pd.DataFrame = NO_EVENTS):
    return score(Evidence(tuple(findings), (), events, Window(T0, CUT), Window(CUT, END)))


def test_scores_that_moved_alone_are_a_calibration_collapse():
    verdict = _score(_shift())
    assert RULE in {h.name for h in verdict.hits}
    assert (verdict.pathway, verdict.failure_mode) == ("model", "calibration_collapse")
    assert verdict.confidence > 0.6  # undetermined 0.26 before the rule


def test_the_new_versions_pair_is_not_read_as_skew():
    verdict = _score(_shift(), _new_pair())
    hits = {h.name: h for h in verdict.hits}
    assert hits[SKEW_RULE].add == {"version_skew": -2.0}
    assert verdict.failure_mode == "calibration_collapse"  # version_skew 0.58 before


def test_a_recombined_pair_keeps_its_skew_weight():
    skew = _new_pair()
    skew = Finding(skew.id, skew.pathway, skew.severity, skew.statistic, skew.threshold,
                   skew.summary, {**skew.evidence, "recombined": True}, skew.onset)
    verdict = _score(_shift(), skew)
    assert SKEW_RULE not in {h.name for h in verdict.hits}


@pytest.mark.parametrize("other", [
    Finding("model.accuracy_drop", "model", "medium", 0.05, 0.03, "acc", {}, CUT),
    Finding("data.feature_drift", "data", "medium", 0.2, 0.1, "drift",
            {"unexplained_psi": 0.2}, CUT),
    Finding("data.null_rate", "data", "high", 0.4, 0.05, "nulls", {}, CUT),
    Finding("model.ood_burst", "model", "high", 0.3, 0.05, "ood", {}, CUT),
    Finding("integration.cache_staleness", "integration", "high", 0.3, 0.05, "stale", {}, CUT),
])
def test_not_when_something_else_explains_the_moved_scores(other):
    verdict = _score(_shift(), other)
    assert RULE not in {h.name for h in verdict.hits}
    assert SKEW_RULE not in {h.name for h in _score(_shift(), _new_pair(), other).hits}


@pytest.mark.parametrize(("change", "severity"), [(0.10, "high"), (0.002, "medium")])
def test_not_when_the_class_mix_moved_or_the_shift_is_moderate(change, severity):
    verdict = _score(_shift(change, severity))
    assert RULE not in {h.name for h in verdict.hits}
    assert verdict.failure_mode != "calibration_collapse"


def test_a_logged_model_deploy_leaves_it_to_the_deploy_rules():
    deploy = pd.DataFrame([{"ts": pd.Timestamp(CUT) - pd.Timedelta(minutes=30),
                            "kind": "deploy", "artifact": "model", "version": "2.0",
                            "host": None, "detail": None}], columns=COLUMNS)
    verdict = _score(_shift(), events=deploy)
    assert RULE not in {h.name for h in verdict.hits}


def test_simulated_collapse_without_its_events_table(tmp_path):
    # varied tuning seed 1 of calibration_collapse, the events table's rows deleted: the real
    # diagnostics' evidence, given windows
    import toolkit as tk
    from toolkit.simulate import ingest_case, make_case

    case = make_case("calibration_collapse", seed=1, rows=60000, world="varied")
    truth = case.truth()
    con = ingest_case(case, str(tmp_path))
    con.execute("DELETE FROM events")
    result = tk.classify_incident(con, incident="/".join(truth["incident"]),
                                  baseline="/".join(truth["baseline"]))
    con.close()
    assert RULE in {h.name for h in result.verdict.hits}
    assert result.failure_mode == "calibration_collapse"
