"""The reports name how the label-free accuracy was estimated (issue 25): CBPE from the
calibrated scores, or the stand-in model on the features for a model version no label vouches
for, with the stand-in's check against CBPE on the old version's rows."""

from __future__ import annotations

from importlib import import_module

import numpy as np

from tests.diagnose.test_estimation_proxy import _case
from toolkit.report.estimate import estimate

est_mod = import_module("toolkit.diagnose.model.estimation")


def test_a_new_version_with_no_label_is_shown_as_the_stand_in_estimate():
    con, b, i, y, pred, new = _case(seed=3, old_share=0.3)
    shown = estimate(con, b, i)
    assert shown.method == "proxy" and shown.estimated, shown.reason
    rows = {r["measure"]: r["value"] for r in shown.rows()}
    assert "estimated accuracy (stand-in model, no labels needed)" in rows
    assert "estimated accuracy (CBPE, no labels needed)" not in rows
    # the stand-in's check where the old version still served: both estimates and their gap
    old = shown.old_version_check()
    truth_old = float((pred[~new] == np.where(y[~new], "1", "0")).mean())
    assert old["rows"] == int((~new).sum())
    assert abs(old["proxy_accuracy"] - truth_old) < 0.03
    check = rows["check: the old version's rows, stand-in vs CBPE"]
    assert check.startswith(f"{old['proxy_accuracy']:.1%} vs {old['cbpe_accuracy']:.1%}")
    assert f"{old['rows']:,} requests" in check
    # the reports name the method in the finding's own words (one mapping, not two)
    assert shown.method_name == shown.result.headline()["method"] \
        == "stand-in model on the features"
    saved = shown.to_dict()
    assert saved["method"] == "proxy" and saved["old_version_check"]["rows"] == old["rows"]
    assert abs(saved["estimated_accuracy"] - float((pred == np.where(y, "1", "0")).mean())) \
        < 0.02


def test_the_old_version_alone_stays_a_cbpe_estimate_with_no_stand_in_row():
    con, b, i, *_ = _case(seed=4, old_share=1.0)  # v1 serves the incident too
    shown = estimate(con, b, i)
    assert shown.method == "cbpe" and shown.estimated, shown.reason
    measures = [r["measure"] for r in shown.rows()]
    assert "estimated accuracy (CBPE, no labels needed)" in measures
    assert not any(m.startswith("check: the old version") for m in measures)
    assert shown.to_dict()["old_version_check"] is None


def test_an_estimate_with_no_incident_label_says_concept_drift_is_unchecked():
    con, b, i, *_ = _case(seed=3, old_share=0.3)
    rows = {r["measure"]: r["value"] for r in estimate(con, b, i).rows()}
    assert "concept drift" in rows["assumption not checked yet"]
    # once incident labels exist the estimate is checked against them instead
    con, b, i, *_ = _case(seed=3, old_share=0.3, inc_labels=True)
    rows = {r["measure"]: r["value"] for r in estimate(con, b, i).rows()}
    assert "assumption not checked yet" not in rows
    assert "realized accuracy (the labels that exist)" in rows


def test_the_label_gap_says_the_incident_has_no_labels_not_the_case():
    from toolkit.report.estimate import label_gap

    perf = import_module("toolkit.diagnose.model.performance")
    con, b, i, *_ = _case(seed=3)  # the baseline is labelled, the incident is not
    assert label_gap(perf.model_performance(con, b, i)) == "no labels in the incident window"
    assert label_gap(None) == "no labels in the case"
