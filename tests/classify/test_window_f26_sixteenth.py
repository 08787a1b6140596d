"""The last focused slice: the span's last sixteenth against the sixteenth before it (issue 22).
An incident of the span's last half day is diluted over the last eighth: varied tuning
covariate_shift seed 2 (onset 12 h before the end of a 21-day span) had no finding in any
slice, where the last sixteenth dates a medium drift 30 min after the onset."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta

import pandas as pd

from tests.classify.scans import FakeScan
from toolkit.diagnose import Finding
from toolkit.types import Window

focus = importlib.import_module("toolkit.classify.focus")

T0 = datetime(2026, 2, 2, tzinfo=UTC)
SPAN = Window(T0, T0 + timedelta(days=16))
BUCKET = timedelta(hours=3)
LAST_SIXTEENTH = pd.Timestamp(T0 + timedelta(days=15))


def _agreeing(at):
    return [Finding("data.feature_drift", "data", "medium", 0.105, 0.1, "drift", onset=at,
                    diagnostic="data.drift"),
            Finding("model.ood_share", "model", "medium", 0.2, 0.1, "ood",
                    onset=at + timedelta(minutes=20), diagnostic="model.ood")]


def test_the_last_sixteenth_dates_an_incident_of_the_last_half_day(monkeypatch):
    onset = LAST_SIXTEENTH + timedelta(hours=11, minutes=51)
    scanned = []

    def run(con, baseline, incident, case=None, options=None, progress=None):
        scanned.append((pd.Timestamp(baseline.start), pd.Timestamp(incident.start)))
        # only the last sixteenth (against the sixteenth before it) holds a finding
        if pd.Timestamp(incident.start) == LAST_SIXTEENTH:
            return FakeScan(_agreeing(onset))
        return FakeScan([])

    monkeypatch.setattr(focus, "run_diagnostics", run)
    found = focus.focused_scan(None, None, SPAN, BUCKET)
    assert found is not None
    located, how = found.window, found.how
    assert pd.Timestamp(located.onset) == onset
    assert how == "2026-02-17 00:00 to 2026-02-18 00:00 against 2026-02-16 00:00 to 2026-02-17 00:00"
    # it is the last slice scanned, after the quarters and the last eighth held nothing
    assert scanned[-1] == (pd.Timestamp(T0 + timedelta(days=14)), LAST_SIXTEENTH)
    assert len(scanned) == 5
