"""A model change's anchored window lasts until the next change, not a day (issue 22, stop 38):
a worse model serves until it is replaced, and the labels that show its accuracy arrive late
and sparse. Varied tuning bad_release s21 (30,000 rows): the day after the release held a
window that showed only the score shift (undetermined); from the release to its rollback 34 h
later the accuracy drop shows (found by helper C29)."""

from __future__ import annotations

import importlib
from datetime import timedelta
from types import SimpleNamespace

import pandas as pd

from tests.classify.scans import SPAN, T0, FakeScan
from toolkit.diagnose import Finding

focus = importlib.import_module("toolkit.classify.focus")

BUCKET = timedelta(hours=3)
RELEASE = T0 + timedelta(days=6, hours=16, minutes=51)
ROLLBACK = RELEASE + timedelta(hours=34)


def _agreeing(at):
    return [Finding("model.prediction_shift", "model", "high", 0.2, 0.01, "scores moved",
                    onset=at, diagnostic="model.prediction_shift"),
            Finding("model.score_psi", "model", "medium", 0.2, 0.01, "psi",
                    onset=at + timedelta(minutes=7), diagnostic="model.prediction_shift")]


def _fake(monkeypatch, by_anchor):
    def run(con, baseline, incident, case=None, options=None, progress=None):
        return FakeScan(by_anchor.get(pd.Timestamp(incident.start), []))

    monkeypatch.setattr(focus, "run_diagnostics", run)


def _events(*rows):
    return SimpleNamespace(events=pd.DataFrame(rows, columns=["ts", "kind", "artifact"]))


def _incident(found):
    return (pd.Timestamp(found.window.incident.start), pd.Timestamp(found.window.incident.end))


def test_a_release_window_lasts_until_the_rollback(monkeypatch):
    onset = RELEASE + timedelta(minutes=60)
    _fake(monkeypatch, {RELEASE: _agreeing(onset)})
    case = _events((RELEASE, "deploy", "model"), (ROLLBACK, "rollback", "model"))
    found = focus.anchored_scan(None, case, SPAN, BUCKET)
    assert _incident(found) == (onset, ROLLBACK)
    assert pd.Timestamp(found.window.onset) == onset


def test_a_release_the_timeline_shows_lasts_until_the_span_ends(monkeypatch):
    onset = RELEASE + timedelta(minutes=60)
    _fake(monkeypatch, {RELEASE: _agreeing(onset)})
    found = focus.anchored_scan(None, _events(), SPAN, BUCKET, releases=[RELEASE])
    assert _incident(found) == (onset, pd.Timestamp(SPAN.end))


def test_a_scale_out_window_keeps_its_day(monkeypatch):
    scale = RELEASE
    _fake(monkeypatch, {scale: _agreeing(scale + timedelta(minutes=5))})
    case = _events((scale, "scale", "infra"), (ROLLBACK, "rollback", "model"))
    found = focus.anchored_scan(None, case, SPAN, BUCKET)
    assert _incident(found)[1] <= scale + focus.ANCHOR_SIDE


def test_a_located_end_after_the_next_change_stands(monkeypatch):
    # a change within the day: the window the timelines located is not cut short
    onset = RELEASE + timedelta(minutes=60)
    _fake(monkeypatch, {RELEASE: _agreeing(onset)})
    soon = RELEASE + timedelta(hours=4)
    case = _events((RELEASE, "deploy", "model"), (soon, "deploy", "client"))
    found = focus.anchored_scan(None, case, SPAN, BUCKET)
    assert _incident(found)[1] > soon
