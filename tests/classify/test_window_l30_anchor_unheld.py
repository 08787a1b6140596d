"""A first-scan window that no finding holds, where no focused slice holds one either, gives
way to a window anchored at a change the case records (issue 22).

Anchored scans (``focus.anchored_scan``: logged changes, releases on the version-share
timeline, client versions that arrive mid-span) ran only when the first scan found nothing.
Varied tuning adversarial_inputs s9 and covariate_shift s9 (60,000 rows) had a first window
placed on timelines alone, 2.7-3 days before the truth, that nothing held; no slice held a
window, so that empty window stood and both read ``none``. The burst's new client version and
a logged change each anchor a window that holds the incident: both now read right.
"""

from __future__ import annotations

import importlib
from datetime import timedelta

import pandas as pd

from tests.classify.scans import LAST_EIGHTH, SPAN, T0, fake_scans
from toolkit.classify.windows import DetectedWindows
from toolkit.diagnose import Diagnosis, Finding
from toolkit.types import Window

api = importlib.import_module("toolkit.classify.api")
focus = importlib.import_module("toolkit.classify.focus")

FIRST = pd.Timestamp(T0 + timedelta(days=6, hours=1, minutes=41))
ANCHOR = pd.Timestamp(T0 + timedelta(days=13, hours=9, minutes=38))


def _lone(at):
    """One finding, no other signal agreeing: it holds no window."""
    return [Finding("data.feature_drift", "data", "high", 0.3, 0.1, "drift", onset=at,
                    diagnostic="data.drift")]


def _anchored(calls):
    def anchor(con, case, span, signals):
        calls.append((span, signals))
        window = DetectedWindows(
            baseline=Window(ANCHOR - timedelta(days=1), ANCHOR),
            incident=Window(ANCHOR, ANCHOR + timedelta(hours=4)),
            onset=ANCHOR.to_pydatetime(), changes=(), supporting=("model.ood_share",))
        return focus.Focused(window, "2026-02-15 09:38 to 2026-02-16 09:38 against "
                                     "2026-02-14 09:38 to 2026-02-15 09:38")
    return anchor


def test_an_anchored_window_replaces_an_unheld_first_window_no_slice_replaced(monkeypatch):
    scanned = fake_scans(monkeypatch, _lone(FIRST), {LAST_EIGHTH: _lone(LAST_EIGHTH)})
    calls = []
    monkeypatch.setattr(api, "_anchor", _anchored(calls))
    located, signals = api._detect(None, None, SPAN, None)
    assert pd.Timestamp(located.onset) == ANCHOR
    assert located.incident == Window(ANCHOR, ANCHOR + timedelta(hours=4))
    assert located.scan == api.ANCHORED and located.how.startswith("2026-02-15 09:38")
    # the anchors are read on the whole span, from the first scan's timelines
    assert len(calls) == 1 and calls[0][0] == SPAN and calls[0][1] is signals
    # the first scan, the early edge and every focused slice ran before the anchors
    assert len(scanned) == 2 + len(focus.FOCUS_SLICES)


def test_the_window_source_names_the_anchored_scan_in_place_of_the_first(monkeypatch):
    fake_scans(monkeypatch, _lone(FIRST), {})
    monkeypatch.setattr(api, "_anchor", _anchored([]))
    scan = api.run_diagnostics

    def diagnose(con, baseline, incident, case=None, options=None, progress=None):
        if options is not None:  # a detection scan
            return scan(con, baseline, incident, case=case, options=options)
        return Diagnosis(baseline, incident)  # the diagnosis of the windows chosen

    monkeypatch.setattr(api, "run_diagnostics", diagnose)
    monkeypatch.setattr(api, "_analysed_span", lambda case: ("requests", SPAN))

    class Case:
        events = pd.DataFrame(columns=["ts", "kind", "artifact"])

        def span_outliers(self, source):
            return type("Outliers", (), {"rows": 0})()

    result = api.classify_incident(None, case=Case())
    assert result.incident == Window(ANCHOR, ANCHOR + timedelta(hours=4))
    assert result.window_source == (
        "detected (anchored scan: 2026-02-15 09:38 to 2026-02-16 09:38 against 2026-02-14 "
        "09:38 to 2026-02-15 09:38, in place of the first scan's window, which no finding held)")


def test_an_unheld_first_window_stands_when_no_anchor_holds_one_either(monkeypatch):
    fake_scans(monkeypatch, _lone(FIRST), {LAST_EIGHTH: _lone(LAST_EIGHTH)})
    calls = []
    monkeypatch.setattr(api, "_anchor", lambda *a: calls.append(a))
    located = api._detect(None, None, SPAN, None)[0]
    assert pd.Timestamp(located.onset) == FIRST
    assert not hasattr(located, "how")  # the first scan's own window
    assert len(calls) == 1


def test_a_held_first_window_runs_no_anchored_scan(monkeypatch):
    agreeing = _lone(FIRST) + [Finding("model.ood_share", "model", "medium", 0.2, 0.1, "ood",
                                       onset=FIRST + timedelta(minutes=20),
                                       diagnostic="model.ood")]
    fake_scans(monkeypatch, agreeing, {})
    calls = []
    monkeypatch.setattr(api, "_anchor", lambda *a: calls.append(a))
    located = api._detect(None, None, SPAN, None)[0]
    assert pd.Timestamp(located.onset) == FIRST
    assert calls == []
