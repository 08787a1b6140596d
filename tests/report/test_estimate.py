"""The report's view of the label-free estimate (``toolkit.report.estimate``): what it says
when a new model version is calibrated on its own labelled head (issue 25 item 2)."""

from __future__ import annotations

from datetime import timedelta
from importlib import import_module

import pandas as pd

from tests.diagnose.test_estimation import _release_case
from toolkit.report.estimate import Estimate

est = import_module("toolkit.diagnose.model.estimation")


def test_report_names_the_version_calibrated_on_its_own_labels():
    con, b, i, *_ = _release_case()
    as_of = i.start + pd.Timedelta(minutes=1000) + pd.Timedelta("1h")
    view = Estimate(est.estimation(con, b, i, as_of=as_of, bucket=timedelta(days=7)))
    assert view.estimated
    assert view.to_dict()["calibrated_on_own_labels"] == {"v2": 1000}
    rows = {r["measure"]: r["value"] for r in view.rows()}
    assert rows["new model version(s) calibrated on their own labels"] == (
        "v2 on 1,000 labels (the labels that calibrate it cannot check it)")
    # before any label of v2 it abstains, and the report says so without the row
    before = est.estimation(con, b, i, as_of=i.start)
    refusal = next(g.reason for g in before.not_assessed if g.check == est.ID)
    view = Estimate(before, refusal.removeprefix("cannot estimate: "))
    assert not view.estimated and view.to_dict()["calibrated_on_own_labels"] == {}
    assert "v2: no label of this version had arrived by as_of" in view.to_dict()["reason"]
