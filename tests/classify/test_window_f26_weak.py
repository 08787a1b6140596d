"""A first-scan window that no finding holds does not shut out the focused scans (issue 22).

The detector's first scan reads the span after its first quarter against that quarter. A late
incident is diluted there; a timeline's blip days away (or a lone finding) may still place a
window, and the focused scans, which ran only when the first scan found nothing, never looked:
varied tuning covariate_shift seed 4 read ``none`` on a drift-timeline window 8 days before the
onset (IoU 0). When no medium or high finding dated on raw rows holds the first window with
another signal agreeing (``focus.held_by_finding``), the focused scans run, and a slice's window
that such a finding holds replaces it."""

from __future__ import annotations

import importlib
from datetime import timedelta

import pandas as pd

from tests.classify.scans import LAST_EIGHTH, QUARTER, SPAN, T0, fake_scans
from toolkit.diagnose import Finding
from toolkit.types import Window

api = importlib.import_module("toolkit.classify.api")
focus = importlib.import_module("toolkit.classify.focus")


def _finding(at, severity="high", fid="data.feature_drift"):
    return Finding(fid, "data", severity, 0.3, 0.1, "drift", onset=at, diagnostic="data.drift")


def _agreeing(at):
    return [_finding(at), _finding(at + timedelta(minutes=20), "medium", "model.ood_share")]


def test_a_focused_window_held_by_a_finding_replaces_an_unheld_first_window(monkeypatch):
    # covariate_shift seed 4: the first scan's window, 8 days before the drift, rests on one
    # signal; the last eighth against the eighth before it dates the drift with a second
    # signal agreeing
    blip = pd.Timestamp(T0 + timedelta(days=5, hours=4, minutes=13))
    onset = LAST_EIGHTH + timedelta(hours=26, minutes=8)
    scanned = fake_scans(monkeypatch, [_finding(blip)], {LAST_EIGHTH: _agreeing(onset)})
    located = api._detect(None, None, SPAN, None)[0]
    assert pd.Timestamp(located.onset) == onset
    assert located.how == ("2026-02-16 00:00 to 2026-02-18 00:00 against "
                           "2026-02-14 00:00 to 2026-02-16 00:00")
    # the first scan, the early-edge scan, then the focused slices up to the last eighth
    assert len(scanned) == 2 + [share for _, share, _ in focus.FOCUS_SLICES].index(7 / 8) + 1
    assert scanned[-1] == (LAST_EIGHTH, pd.Timestamp(SPAN.end))


def test_a_held_first_window_is_kept_without_focused_scans(monkeypatch):
    at = pd.Timestamp(T0 + timedelta(days=6, hours=1, minutes=41))
    later = LAST_EIGHTH + timedelta(hours=26, minutes=8)
    scanned = fake_scans(monkeypatch, _agreeing(at), {LAST_EIGHTH: _agreeing(later)})
    located = api._detect(None, None, SPAN, None)[0]
    assert pd.Timestamp(located.onset) == at
    assert not hasattr(located, "how")  # the first scan's own window
    assert len(scanned) == 2


def test_an_unheld_first_window_stays_when_no_slice_holds_one(monkeypatch):
    at = pd.Timestamp(T0 + timedelta(days=6, hours=1, minutes=41))
    # a lone finding in the last eighth holds no focused window either
    lone = [_finding(LAST_EIGHTH + timedelta(hours=3, minutes=7))]
    scanned = fake_scans(monkeypatch, [_finding(at)], {LAST_EIGHTH: lone})
    # nor does a scan anchored at a recorded change (test_window_l30_anchor_unheld.py)
    monkeypatch.setattr(api, "_anchor", lambda *args: None)
    located = api._detect(None, None, SPAN, None)[0]
    assert pd.Timestamp(located.onset) == at
    assert not hasattr(located, "how")  # the first scan's own window
    assert len(scanned) == 2 + len(focus.FOCUS_SLICES)


def test_a_given_baseline_runs_no_focused_scan(monkeypatch):
    at = pd.Timestamp(T0 + timedelta(days=6, hours=1, minutes=41))
    scanned = fake_scans(monkeypatch, [_finding(at)],
                          {LAST_EIGHTH: _agreeing(LAST_EIGHTH + timedelta(hours=26))})
    api._detect(None, None, SPAN, Window(T0, QUARTER.to_pydatetime()))[0]
    assert len(scanned) == 1


def test_a_slice_dating_the_first_windows_incident_leaves_that_window(monkeypatch):
    # varied tuning adversarial_inputs s4: the first window (onset 12 min off, IoU 0.93) had no
    # finding to hold it; the third quarter dated the same burst 2 h earlier, its window open
    # to the end of the span (IoU 0.16)
    at = LAST_EIGHTH + timedelta(hours=4, minutes=44)
    fake_scans(monkeypatch, [_finding(at)],
                {LAST_EIGHTH: _agreeing(at - timedelta(hours=1, minutes=56))})
    located = api._detect(None, None, SPAN, None)[0]
    assert pd.Timestamp(located.onset) == at
    assert not hasattr(located, "how")
