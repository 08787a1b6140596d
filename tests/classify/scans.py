"""Stand-ins for a diagnostics scan (``run_diagnostics``'s result) in window-detection tests:
the findings given, no timelines, and a 16-day span with the first scan's and the focused
slices' boundaries."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta

import pandas as pd

from toolkit.types import Window

#: the span analysed in the window-detection tests: 16 days
T0 = datetime(2026, 2, 2, tzinfo=UTC)
SPAN = Window(T0, T0 + timedelta(days=16))
#: the first scan measures the span after its first quarter against that quarter
QUARTER = pd.Timestamp(T0 + timedelta(days=4))
#: the focused slice of the last eighth against the eighth before it (its incident starts here)
LAST_EIGHTH = pd.Timestamp(T0 + timedelta(days=14))


class FakeScan:
    """A scan that answers ``findings`` and an empty signal table."""

    def __init__(self, findings):
        self._findings = findings

    def findings(self):
        return self._findings

    def signals(self):
        return pd.DataFrame(columns=["bucket_start", "signal", "value"])


def fake_scans(monkeypatch, first, slices):
    """Make the window detector's scans answer from lists: the first scan (its incident from
    :data:`QUARTER` to the span's end) ``first``, each focused slice (by the start of its
    incident) what ``slices`` gives it, any other scan nothing. Returns the scans run, as
    (baseline end, incident end)."""
    scanned = []

    def run(con, baseline, incident, case=None, options=None, progress=None):
        start, end = pd.Timestamp(incident.start), pd.Timestamp(incident.end)
        scanned.append((pd.Timestamp(baseline.end), end))
        if start == QUARTER and end == pd.Timestamp(SPAN.end):
            return FakeScan(first)
        return FakeScan(slices.get(start, []))

    for module in ("toolkit.classify.api", "toolkit.classify.focus"):
        monkeypatch.setattr(importlib.import_module(module), "run_diagnostics", run)
    return scanned
