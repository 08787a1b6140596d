"""Rules on the label-free estimate (``rules_estimation.toml``, read from ``model.estimation``'s
``model.estimated_accuracy_drop``): evidence for the data and model pathways while the labels
are missing, silent once a realised drop (or enough labels) speaks; and end to end on a
simulated covariate shift whose incident labels have not arrived."""

from __future__ import annotations

import tempfile
import tomllib
from datetime import UTC, datetime, timedelta
from importlib import import_module, resources

import numpy as np
import pandas as pd
import pytest

from toolkit.classify import score
from toolkit.classify.engine import Evidence
from toolkit.classify.rules import SEVERITY_SCALE, load_rules
from toolkit.diagnose import Finding
from toolkit.types import Window

est = import_module("toolkit.diagnose.model.estimation")

T0 = datetime(2026, 3, 4, 2, 0, tzinfo=UTC)
BASELINE = Window(T0 - timedelta(days=3), T0 - timedelta(hours=12))
INCIDENT = Window(T0 - timedelta(hours=12), T0 + timedelta(days=3))
NO_EVENTS = pd.DataFrame(columns=["ts", "kind", "artifact", "version", "host", "detail"])
DRIFTED = "estimated accuracy fell (no labels yet) while the inputs drifted"
UNDRIFTED = "estimated accuracy fell (no labels yet) with no input drift"
ERR_DRIFTED = "estimated error rose (no labels yet) while the inputs drifted"
ERR_UNDRIFTED = "estimated error rose (no labels yet) with no input drift"
PROXY = "a new model version's estimated accuracy fell (stand-in model, no labels yet)"
REALISED_RELEASE = "a new model version is less accurate than its predecessor"


def finding(id_: str, severity: str = "medium", **evidence) -> Finding:
    return Finding(id_, id_.split(".")[0], severity, 0.05, 0.03, id_, evidence, T0,
                   "model.estimation" if "estimated" in id_ else id_)


def estimated(severity: str = "medium", labelled: int = 0, method: str = "cbpe") -> Finding:
    return finding("model.estimated_accuracy_drop", severity, labelled_incident=labelled,
                   estimated=True, method=method)


def hits(*findings: Finding) -> dict[str, dict[str, float]]:
    result = score(Evidence(tuple(findings), (), NO_EVENTS, BASELINE, INCIDENT))
    return {h.name: h.add for h in result.hits if "estimated" in h.name}


def test_the_estimation_rules_are_merged_and_weaker_than_realised_evidence():
    names = {r.name for r in load_rules().rules}
    data = tomllib.loads((resources.files("toolkit.classify") / "rules_estimation.toml")
                         .read_text(encoding="utf-8"))
    assert {r["name"] for r in data["rules"]} == {DRIFTED, UNDRIFTED, ERR_DRIFTED,
                                                  ERR_UNDRIFTED, PROXY} <= names
    # weaker than a realised drop: rules.toml's unexplained drift adds 3 to covariate_shift
    assert all(0 < w <= 1.0 for r in data["rules"] if r["name"] != PROXY
               for w in r["add"].values())
    # the stand-in's estimate of a new version is weaker than its realised regression
    realised = next(r for r in load_rules().rules if r.name == REALISED_RELEASE)
    proxy = next(r for r in data["rules"] if r["name"] == PROXY)
    assert set(proxy["add"]) == {"bad_release"}
    assert 0 < proxy["add"]["bad_release"] < realised.add["bad_release"]
    # concept drift and calibration collapse leave the scores unchanged: CBPE cannot see them
    assert not any({"concept_drift", "calibration_collapse"} & set(r["add"])
                   for r in data["rules"])


def test_the_rules_read_the_findings_id_and_evidence_the_estimation_emits():
    # a real estimation: calibrated reference, incident scores moved towards 0.5 (less sure)
    rng = np.random.default_rng(4)
    from tests.diagnose.test_estimation import _case

    ref_p = np.round(rng.uniform(0, 1, 4000), 3)
    ref_y = rng.uniform(size=4000) < ref_p
    ana_p = np.round(rng.uniform(0.3, 0.7, 4000), 3)
    con, b, i = _case(ref_p, ref_y, ana_p)
    found = est.estimation(con, b, i).findings()
    assert [f.id for f in found] == ["model.estimated_accuracy_drop"]
    assert found[0].evidence["labelled_incident"] == 0
    drift = finding("data.feature_drift")
    assert hits(found[0], drift) == {DRIFTED: {"covariate_shift": pytest.approx(
        SEVERITY_SCALE[found[0].severity])}}


@pytest.mark.parametrize("severity", ["low", "medium"])
def test_estimated_drop_with_drift_and_no_labels_is_covariate_shift(severity):
    got = hits(estimated(severity), finding("data.feature_drift", "high"))
    assert got == {DRIFTED: {"covariate_shift": pytest.approx(1.0 * SEVERITY_SCALE[severity])}}


def test_estimated_drop_without_drift_is_weak_model_evidence():
    got = hits(estimated("medium"))
    assert got == {UNDRIFTED: {"bad_release": pytest.approx(0.35),
                               "adversarial_inputs": pytest.approx(0.35)}}


def test_a_new_versions_stand_in_estimate_is_release_evidence():
    got = hits(estimated("medium", method="proxy"))
    scale = SEVERITY_SCALE["medium"]
    assert got[PROXY] == {"bad_release": pytest.approx(3.0 * scale)}
    assert got[UNDRIFTED] == {"bad_release": pytest.approx(0.5 * scale),
                              "adversarial_inputs": pytest.approx(0.5 * scale)}
    # CBPE's estimate is the same model on other inputs: not a release
    assert PROXY not in hits(estimated("medium", method="cbpe"))
    # drifted inputs mix the shift into the stand-in's drop; labels that speak silence it
    assert PROXY not in hits(estimated("medium", method="proxy"), finding("data.feature_drift"))
    assert PROXY not in hits(estimated("medium", labelled=100, method="proxy"))
    assert PROXY not in hits(estimated("medium", method="proxy"),
                             finding("model.accuracy_drop"))


@pytest.mark.parametrize("others", [
    # the labels arrived: a realised drop speaks (rules.toml's "accuracy fell")
    (finding("model.accuracy_drop"),),
    # enough labels to check the estimate, even without a realised drop
    (),
])
def test_silent_once_labels_speak(others):
    labelled = 0 if others else 100
    assert hits(estimated(labelled=labelled), finding("data.feature_drift"), *others) == {}
    assert hits(estimated(labelled=labelled), *others) == {}
    # and 99 labels is still "missing" (the estimation checks itself from 100)
    if not others:
        assert DRIFTED in hits(estimated(labelled=99), finding("data.feature_drift"))


@pytest.mark.slow
def test_covariate_shift_without_incident_labels_gains_from_the_estimate():
    # A simulated covariate shift whose incident labels have not arrived (deleted): the
    # realised drop cannot be measured, the estimate can; the drifted rule fires and adds to
    # covariate_shift exactly what it says, and the verdict stays covariate shift.
    from toolkit.classify import classify_incident
    from toolkit.simulate import ingest_case
    from toolkit.simulate import make_case as simulate

    case = simulate("covariate_shift", seed=1, rows=40_000)
    truth = case.truth()
    con = ingest_case(case, tempfile.mkdtemp())
    b, i = Window(*truth["baseline"]), Window(*truth["incident"])
    con.execute("DELETE FROM labels WHERE request_id IN (SELECT request_id FROM requests "
                "WHERE ts >= ?)", [i.start])
    result = classify_incident(con, baseline=b, incident=i)
    fired = {h.name: h.add for h in result.verdict.hits if "estimated accuracy" in h.name}
    drop = result.diagnosis["model.estimation"].findings()
    assert [f.id for f in drop] == ["model.estimated_accuracy_drop"]
    assert drop[0].evidence["labelled_incident"] == 0
    assert "model.accuracy_drop" not in {f.id for f in result.diagnosis.findings()}
    assert fired == {DRIFTED: {"covariate_shift": pytest.approx(
        SEVERITY_SCALE[drop[0].severity])}}
    assert result.failure_mode == "covariate_shift"
    con.close()


def test_regression_error_rise_reads_like_the_accuracy_drop():
    # the finding the regression error model emits, from a real estimation
    from tests.diagnose.test_estimation import _regression_case

    con, b, i, *_ = _regression_case()
    [rise] = est.estimation(con, b, i, as_of=i.start).findings()
    assert rise.id == "model.estimated_error_rise" and rise.evidence["labelled_incident"] == 0
    scale = SEVERITY_SCALE[rise.severity]
    assert hits(rise, finding("data.feature_drift")) == {
        ERR_DRIFTED: {"covariate_shift": pytest.approx(scale)}}
    assert hits(rise) == {ERR_UNDRIFTED: {"bad_release": pytest.approx(0.5 * scale),
                                          "adversarial_inputs": pytest.approx(0.5 * scale)}}
    assert hits(rise, finding("model.accuracy_drop")) == {}
