"""An incident inside the first scan's baseline (issue 22): the window detector's first scan
measures the span after its first quarter against that quarter, so an incident that begins (and
often ends) inside the first quarter is part of its baseline and invisible to it. The early-edge
scan (against the first sixteenth) dates it there, when a finding dated on raw rows supports it
with another signal agreeing."""

from __future__ import annotations

import importlib
from datetime import timedelta

import pandas as pd
import pytest

from tests.classify.scans import QUARTER, SPAN, T0, FakeScan
from toolkit.diagnose import Finding
from toolkit.types import Window

api = importlib.import_module("toolkit.classify.api")

EDGE = pd.Timestamp(T0 + timedelta(days=1))  # the first sixteenth


def _finding(at, severity="high", fid="infrastructure.cold_start"):
    return Finding(fid, "infrastructure", severity, 0.2, 0.01, "slow", onset=at,
                   diagnostic="infra.x")


def _agreeing(at):
    return [_finding(at), _finding(at + timedelta(minutes=20), "medium",
                                   "infrastructure.latency_regression")]


def _fake_scans(monkeypatch, first, early):
    """The first scan (baseline ending at the quarter) answers ``first``, the early-edge scan
    (baseline ending at the first sixteenth) ``early``; the baselines scanned are recorded."""
    scanned = []

    def run(con, baseline, incident, case=None, options=None, progress=None):
        scanned.append(pd.Timestamp(baseline.end))
        return FakeScan(first if pd.Timestamp(baseline.end) == QUARTER else early)

    monkeypatch.setattr(api, "run_diagnostics", run)
    return scanned


def test_an_incident_inside_the_first_quarter_is_dated_by_the_early_scan(monkeypatch):
    # varied tuning cold_start seed 8: fresh replicas slow 1.5 days into a 21-day span, over
    # before the quarter ended: the first scan found no change, the verdict read none
    onset = pd.Timestamp(T0 + timedelta(days=1, hours=13, minutes=41))
    scanned = _fake_scans(monkeypatch, [], _agreeing(onset))
    located = api._detect(None, None, SPAN, None)[0]
    assert scanned == [QUARTER, EDGE]
    assert located is not None and pd.Timestamp(located.onset) == onset


def test_the_early_scan_replaces_a_later_window_of_the_first(monkeypatch):
    # varied tuning timeout_misconfiguration seed 8: the first scan, blind to the incident in
    # its baseline, dated a window 8 days later on other symptoms
    onset = pd.Timestamp(T0 + timedelta(days=2, hours=3, minutes=11))
    later = pd.Timestamp(T0 + timedelta(days=10, hours=5, minutes=7))
    first = [_finding(later, fid="integration.timeout_rate"),
             _finding(later + timedelta(minutes=9), "medium", "integration.failure_segment")]
    _fake_scans(monkeypatch, first, _agreeing(onset) + first)
    assert pd.Timestamp(api._detect(None, None, SPAN, None)[0].onset) == onset


@pytest.mark.parametrize("early", [
    # a lone finding: nothing agrees with it
    [_finding(pd.Timestamp(T0 + timedelta(days=2, minutes=37)))],
    # dated at bucket starts (by their timelines, not on raw rows; 3-hour buckets)
    [_finding(pd.Timestamp(T0 + timedelta(days=2))),
     _finding(pd.Timestamp(T0 + timedelta(days=2, hours=3)), "medium", "latency.x")],
    # low findings
    [_finding(pd.Timestamp(T0 + timedelta(days=2, minutes=37)), "low"),
     _finding(pd.Timestamp(T0 + timedelta(days=2, minutes=51)), "low", "latency.x")],
])
def test_an_early_window_without_a_finding_dated_on_raw_rows_is_not_taken(monkeypatch, early):
    # healthy varied tuning none seeds 6, 8, 9, 11: the early scan's timelines departed from a
    # day of baseline (error rate, null rate, contract errors) with no such finding
    _fake_scans(monkeypatch, [], early)
    assert api._detect(None, None, SPAN, None)[0] is None


def test_an_early_window_after_the_first_quarter_is_left_to_the_first_scan(monkeypatch):
    later = pd.Timestamp(T0 + timedelta(days=10, hours=5, minutes=7))
    first = _agreeing(later)
    # the early scan dates something a bucket earlier, after the quarter: the first scan saw
    # it too, and keeps its window
    _fake_scans(monkeypatch, first, _agreeing(later - timedelta(hours=7)))
    assert pd.Timestamp(api._detect(None, None, SPAN, None)[0].onset) == later
    # with no change found by the first scan, a window after the quarter is not the early
    # scan's to place either (the focused scans look there, against a baseline next to it)
    _fake_scans(monkeypatch, [], _agreeing(later))
    assert api._detect(None, None, SPAN, None)[0] is None


def test_a_given_baseline_takes_one_scan(monkeypatch):
    scanned = []

    def run(con, baseline, incident, case=None, options=None, progress=None):
        scanned.append(baseline)
        return FakeScan([])

    monkeypatch.setattr(api, "run_diagnostics", run)
    api._detect(None, None, SPAN, Window(T0, T0 + timedelta(days=3)))[0]
    assert len(scanned) == 1
