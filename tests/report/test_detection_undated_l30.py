"""The Detection section of a report with no onset to state (a ``none`` verdict) tells times
against the incident window's start, not against an "estimated onset" the report does not
give (G30's sweep: varied tuning none s3 read "... after the estimated onset")."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd

from tests.report.test_sections import ONSET, _latency, _postmortem
from toolkit.diagnose import Finding


def _finding(at):
    return Finding(id="infrastructure.latency_regression", pathway="infrastructure",
                   severity="low", statistic=1.2, threshold=1.5, summary="p99 rose 1.2x",
                   onset=at)


def _breaches(start, end):
    return pd.DataFrame({"start": [start], "end": [end], "buckets": [2],
                         "worst_p99_ms": [320.0]})


def test_a_none_verdict_tells_the_first_signal_against_the_window_start():
    pm = _postmortem(mode="none", pathway="none",
                     findings=[_finding(ONSET + timedelta(minutes=20))])
    text = pm.detection().fragment
    assert "(+20 min from the incident window" in text
    assert "estimated onset" not in text


def test_a_none_verdict_tells_slo_breaches_against_the_window_start():
    breach = _breaches(ONSET - timedelta(hours=2), ONSET + timedelta(hours=1))
    pm = _postmortem(mode="none", pathway="none",
                     results={"infra.latency": _latency(breach)})
    text = pm.detection().fragment
    assert "before the incident window" in text and "estimated onset" not in text


def test_a_decided_verdict_still_tells_times_against_its_onset():
    breach = _breaches(ONSET + timedelta(hours=1), ONSET + timedelta(hours=2))
    pm = _postmortem(findings=[_finding(ONSET + timedelta(minutes=20))],
                     results={"infra.latency": _latency(breach)})
    text = pm.detection().fragment
    assert "the estimated onset)" in text
    assert "first breached after the estimated onset at" in text
    assert "window&#x27;s start" not in text and "window's start" not in text
