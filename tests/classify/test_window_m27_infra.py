"""An unheld first-scan window of an infrastructure fault is not displaced by a slice that
dates a later symptom of the same fault (issue 22, M27).

Since 244532b a first-scan window that no medium or high finding dated on raw rows holds
(``focus.held_by_finding``) gives way to a focused slice's window. An infrastructure fault is
often dated by its metrics (memory, capacity timelines, or a finding its diagnostic dates on a
bucket start), which nothing holds, so such a window was always exposed: varied tuning
memory_leak s9 lost its first window (onset 34 min off, IoU 0.94) to the second quarter's,
dated by memory pressure 4.4 h later (IoU 0.36). It now stands when the slice dates its onset
inside it on infrastructure signals too. A slice dating another pathway's symptoms still
replaces it (varied tuning memory_exhaustion s5: a memory-pressure finding 3 days early,
replaced by a failure segment 16 min off), and a first window of another pathway gives way
as before."""

from __future__ import annotations

import importlib
from datetime import timedelta

import pandas as pd

from tests.classify.scans import QUARTER, SPAN, T0, fake_scans
from toolkit.diagnose import Finding

api = importlib.import_module("toolkit.classify.api")
focus = importlib.import_module("toolkit.classify.focus")

#: the incident of the focused slice "second quarter against the first" starts at 8 days
SECOND = pd.Timestamp(T0 + timedelta(days=8))


def _finding(fid, pathway, at, severity="high"):
    return Finding(fid, pathway, severity, 0.3, 0.1, fid, onset=at,
                   diagnostic=fid.split(".")[0])


def _memory_on_the_grid(at):
    # a leak finding its diagnostic dates on a bucket start: no finding on raw rows holds it
    return [_finding("infrastructure.memory_leak", "infrastructure", at)]


def test_a_later_symptom_of_the_same_fault_leaves_the_first_window(monkeypatch):
    # memory_leak s9: the first window 34 min after the onset; the second quarter dates memory
    # pressure and a latency regression 4.4 h later, inside it
    at = SECOND + timedelta(hours=12)
    later = at + timedelta(hours=4, minutes=26)
    fake_scans(monkeypatch, _memory_on_the_grid(at), {SECOND: [
        _finding("infrastructure.memory_pressure", "infrastructure", later),
        _finding("infrastructure.latency_regression", "infrastructure",
                 later + timedelta(minutes=3, seconds=41), "medium")]})
    located = api._detect(None, None, SPAN, None)[0]
    assert pd.Timestamp(located.onset) == at  # before: the slice's, 4.4 h later
    assert not hasattr(located, "how")


def test_a_fault_of_another_pathway_inside_a_long_first_window_replaces_it(monkeypatch):
    # memory_exhaustion s5: memory pressure dated on a bucket start 3 days before the failures;
    # the slice's cluster is a failure segment, with an infrastructure finding elsewhere in it
    at = QUARTER + timedelta(days=1, hours=3)
    failures = SECOND + timedelta(days=1, hours=12, minutes=32, seconds=15)
    fake_scans(monkeypatch, [_finding("infrastructure.memory_pressure", "infrastructure", at,
                                       "medium")], {SECOND: [
        _finding("integration.failure_segment", "integration", failures),
        _finding("integration.client_errors", "integration",
                 failures + timedelta(minutes=24), "medium"),
        _finding("infrastructure.latency_regression", "infrastructure",
                 failures + timedelta(days=2), "medium")]})
    located = api._detect(None, None, SPAN, None)[0]
    assert pd.Timestamp(located.onset) == failures
    assert located.how.startswith("2026-02-10 00:00 to 2026-02-14 00:00")


def test_a_first_window_of_another_pathway_is_replaced_as_before(monkeypatch):
    at = SECOND + timedelta(hours=12)
    later = at + timedelta(hours=4, minutes=26)
    fake_scans(monkeypatch, [_finding("data.feature_drift", "data", at)], {SECOND: [
        _finding("infrastructure.memory_pressure", "infrastructure", later),
        _finding("infrastructure.latency_regression", "infrastructure",
                 later + timedelta(minutes=3, seconds=41), "medium")]})
    located = api._detect(None, None, SPAN, None)[0]
    assert pd.Timestamp(located.onset) == later
