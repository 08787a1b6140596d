"""Timeouts with no latency logged (issue 22, the partial form of timeout misconfiguration):
the server tail cannot be compared, but a logged configuration change that lowered the
client timeout before the rise is the cause the log shows (medium); without it, low."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

import toolkit as tk
from tests.diagnose.conftest import make_case
from tests.diagnose.test_timeouts import BASELINE, CUT, INCIDENT, T0, _config, _requests
from toolkit.diagnose.integration.timeouts import FINDING, timeout_budget

#: the 5 s budget in force since the day before, cut to 150 ms at CUT
BUDGET = (T0 - timedelta(days=1), "service", None, {"client_timeout_ms": 5000})


def _no_latency(*events):
    requests = _requests(timeout_ms=lambda ts, c: 150.0 if ts >= CUT else 5000.0)
    timeouts = requests.status.eq("timeout")
    before, after = (timeouts[requests.ts < CUT].mean(), timeouts[requests.ts >= CUT].mean())
    assert before == 0 and after > 0.04  # the rise the budget cut causes (5% of requests)
    tables = {"requests": requests.drop(columns=["latency_ms"])}
    if events:
        tables["events"] = _config(*events)
    return make_case(**tables)


def _finding(con):
    result = timeout_budget(con, BASELINE, INCIDENT)
    assert not result.has_latency
    (finding,) = [f for f in result.findings() if f.id == FINDING]
    return finding


def test_a_logged_cut_of_the_timeout_before_the_rise_is_medium():
    finding = _finding(_no_latency(BUDGET, (CUT, "service", None, {"client_timeout_ms": 150})))
    assert finding.severity == "medium"
    assert "lowered the client timeout in force to 150 ms (baseline 5000 ms)" in finding.summary
    assert finding.evidence["timeout_ms"] == 150


def test_a_timeout_set_where_the_baseline_had_none_is_medium():
    finding = _finding(_no_latency((CUT, "service", None, {"client_timeout_ms": 150})))
    assert finding.severity == "medium"
    assert "(none set in the baseline)" in finding.summary


@pytest.mark.parametrize("events", [
    (),                                                                      # nothing logged
    (BUDGET,),                                                               # never changed
    (BUDGET, (CUT, "service", None, {"client_timeout_ms": 9000})),           # raised
    (BUDGET, (INCIDENT[1] - timedelta(minutes=30), "service", None,          # after the rise
              {"client_timeout_ms": 150})),
])
def test_without_a_cut_before_the_rise_it_stays_low(events):
    assert _finding(_no_latency(*events)).severity == "low"


def test_the_classifier_decides_the_cut_case_and_not_the_blind_one():
    cut = _no_latency(BUDGET, (CUT, "service", None, {"client_timeout_ms": 150}))
    result = tk.classify_incident(cut, baseline=BASELINE, incident=INCIDENT)
    assert (result.pathway, result.failure_mode) == ("integration", "timeout_misconfiguration")
    blind = tk.classify_incident(_no_latency(), baseline=BASELINE, incident=INCIDENT)
    assert blind.failure_mode in ("none", "undetermined")
    assert np.isfinite(result.confidence) and result.confidence > blind.confidence
