"""The anchored scan reads the releases from the first scan's timelines (issue 22, review of
7cdc985: ``api._anchor`` ran ``model.prediction_shift`` a second time, over the same windows and
buckets, to draw the release timeline the first scan had already drawn)."""

from __future__ import annotations

import importlib
from datetime import timedelta
from types import SimpleNamespace

import numpy as np
import pandas as pd

from tests.classify.scans import SPAN, T0, FakeScan, fake_scans
from toolkit.classify.windows import release_starts
from toolkit.diagnose._case import choose_bucket

api = importlib.import_module("toolkit.classify.api")
focus = importlib.import_module("toolkit.classify.focus")


def _release_timeline(bucket):
    """The first scan's timelines: a new version's share 0 (with noise) that rises to 0.4 ten
    days into the span, and a score PSI beside it."""
    starts = pd.date_range(T0, SPAN.end, freq=bucket, inclusive="left")
    share = np.abs(np.random.default_rng(5).normal(0.0, 0.002, len(starts)))
    share[starts >= pd.Timestamp(T0 + timedelta(days=10))] += 0.4
    return pd.concat([
        pd.DataFrame({"bucket_start": starts, "signal": "model.new_version_share",
                      "value": share}),
        pd.DataFrame({"bucket_start": starts, "signal": "model.score_psi", "value": 0.0})])


def test_anchor_takes_the_releases_of_the_first_scan_without_scanning_again(monkeypatch):
    bucket = choose_bucket(SPAN.duration)
    signals = _release_timeline(bucket)
    expected = release_starts(signals, SPAN, bucket)
    assert len(expected) == 1  # the rise the timeline shows
    calls = []

    def no_scan(*a, **k):  # the old code scanned model.prediction_shift here
        raise AssertionError("_anchor ran a diagnostic")

    def anchored(con, case, search, bucket_, releases=(), arrivals=()):
        calls.append((search, bucket_, list(releases), list(arrivals)))

    monkeypatch.setattr(api, "run_diagnostics", no_scan)
    monkeypatch.setattr(api, "anchored_scan", anchored)
    no_requests = SimpleNamespace(has=lambda table, *columns: False)
    api._anchor(None, no_requests, SPAN, signals)
    assert calls == [(SPAN, bucket, expected, [])]


def test_detect_hands_back_the_first_scans_timelines(monkeypatch):
    # the first scan finds nothing: _detect returns no window and that scan's timelines
    bucket = choose_bucket(SPAN.duration)
    signals = _release_timeline(bucket)
    fake_scans(monkeypatch, [], {})

    class Timelines(FakeScan):
        def signals(self):
            return signals

    first = []

    def run(con, baseline, incident, case=None, options=None, progress=None):
        first.append(pd.Timestamp(baseline.end))
        return Timelines([]) if len(first) == 1 else FakeScan([])

    monkeypatch.setattr(api, "run_diagnostics", run)
    monkeypatch.setattr(focus, "run_diagnostics", lambda *a, **k: FakeScan([]))
    located, seen = api._detect(None, None, SPAN, None)
    assert located is None
    assert seen is signals
    # a span too short to scan: no window, no timelines
    short = type(SPAN)(T0, T0 + timedelta(minutes=2))
    located, seen = api._detect(None, None, short, None)
    assert located is None and seen.empty
