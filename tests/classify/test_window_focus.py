"""When the first scan finds no change, a focused scan compares later slices of the span with
the days just before them (issue 22: a late or short incident diluted over three quarters of
the span read ``none`` on the fallback window)."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from tests.classify.scans import FakeScan
from toolkit.classify.windows import DetectedWindows
from toolkit.diagnose import Finding
from toolkit.diagnose._case import case_view
from toolkit.evaluate import _no_change_found, _window_placed
from toolkit.simulate import ingest_case, make_case
from toolkit.types import Window

api = importlib.import_module("toolkit.classify.api")
focus = importlib.import_module("toolkit.classify.focus")

T0 = datetime(2026, 2, 2, tzinfo=UTC)
SPAN = Window(T0, T0 + timedelta(days=16))
BUCKET = timedelta(hours=2)


def _finding(at, severity="high", fid="data.null_rate"):
    return Finding(fid, "data", severity, 0.2, 0.01, "nulls", onset=at,
                   diagnostic="data.quality")


def _agreeing(at, fid="data.null_rate"):
    """A finding and another that agrees with it (the drift found with the nulls)."""
    return [_finding(at, fid=fid), _finding(at + timedelta(minutes=20), "medium",
                                            "data.feature_drift")]


def _fake_scans(monkeypatch, by_slice):
    """run_diagnostics answers each slice (by the start of its incident window) with the
    findings given for it (none for the others), and records the slices scanned."""
    scanned = []

    def run(con, baseline, incident, case=None, options=None, progress=None):
        scanned.append((baseline, incident))
        return FakeScan(by_slice.get(pd.Timestamp(incident.start), []))

    monkeypatch.setattr(focus, "run_diagnostics", run)
    return scanned


def _slice_start(share):
    return pd.Timestamp(SPAN.start + (SPAN.end - SPAN.start) * share)


def test_a_finding_in_the_third_quarter_dates_the_window_with_a_baseline_next_to_it(
        monkeypatch):
    onset = _slice_start(1 / 2) + timedelta(days=1, minutes=37)
    scanned = _fake_scans(monkeypatch, {_slice_start(1 / 2): _agreeing(onset)})
    found = focus.focused_scan(None, None, SPAN, BUCKET)
    assert found is not None
    located, how = found.window, found.how
    assert pd.Timestamp(located.onset) == onset
    # the baseline is the days just before it, from the slice's baseline (the second quarter)
    assert pd.Timestamp(located.baseline.start) == _slice_start(1 / 4)
    assert pd.Timestamp(located.baseline.end) == onset - BUCKET
    assert how == "2026-02-10 00:00 to 2026-02-14 00:00 against 2026-02-06 00:00 to 2026-02-10 00:00"
    # the second quarter was scanned first; the last quarter and eighth were not needed
    assert [pd.Timestamp(i.start) for _, i in scanned] == [_slice_start(1 / 4), _slice_start(1 / 2)]


def test_the_earliest_slice_wins(monkeypatch):
    # the last quarter measured against a baseline holding the incident reads its recovery as a
    # change (varied tuning null_injection seed 2): the earlier slice's incident is the one
    early = _slice_start(1 / 4) + timedelta(hours=30, minutes=13)
    late = _slice_start(3 / 4) + timedelta(hours=5, minutes=7)
    _fake_scans(monkeypatch, {_slice_start(1 / 4): _agreeing(early),
                              _slice_start(3 / 4): _agreeing(late, "data.out_of_range")})
    located = focus.focused_scan(None, None, SPAN, BUCKET).window
    assert pd.Timestamp(located.onset) == early


@pytest.mark.parametrize("severity", ["low", "info"])
def test_a_weak_finding_opens_no_focused_window(monkeypatch, severity):
    at = _slice_start(3 / 4) + timedelta(hours=5, minutes=7)
    scanned = _fake_scans(monkeypatch, {_slice_start(3 / 4): [
        _finding(at, severity), _finding(at + timedelta(minutes=20), severity, "data.drift")]})
    assert focus.focused_scan(None, None, SPAN, BUCKET) is None
    assert len(scanned) == len(focus.FOCUS_SLICES)


def test_a_finding_dated_by_its_timeline_opens_no_focused_window(monkeypatch):
    # a medium latency regression dated at a bucket start (21:00 on a 3-hour grid) opened a
    # window on the last quarter of a healthy case (varied tuning none seed 13)
    at = _slice_start(3 / 4) + 3 * BUCKET
    other = _finding(at + BUCKET, "medium", "infrastructure.capacity_saturation")
    _fake_scans(monkeypatch, {_slice_start(3 / 4): [
        _finding(at, "medium", "infrastructure.latency_regression"), other]})
    assert focus.focused_scan(None, None, SPAN, BUCKET) is None
    # the same finding refined on raw rows dates it
    _fake_scans(monkeypatch, {_slice_start(3 / 4): [
        _finding(at + timedelta(minutes=11), "medium", "infrastructure.latency_regression"),
        other]})
    assert focus.focused_scan(None, None, SPAN, BUCKET) is not None


def test_a_lone_finding_opens_no_focused_window(monkeypatch):
    # a lone medium capacity-saturation finding dated on raw rows, nothing agreeing, opened a
    # window on the third quarter of a healthy case (varied tuning none seed 2)
    at = _slice_start(1 / 2) + timedelta(days=1, hours=1, minutes=19)
    _fake_scans(monkeypatch, {_slice_start(1 / 2): [
        _finding(at, "medium", "infrastructure.capacity_saturation")]})
    assert focus.focused_scan(None, None, SPAN, BUCKET) is None


def test_timeline_changes_alone_open_no_focused_window(monkeypatch):
    # against a few days of baseline a timeline departs easily (varied tuning none seed 8: the
    # null-rate timeline changed in the last quarter against the third, with no finding)
    rng = np.random.default_rng(0)
    times = pd.date_range(SPAN.start, SPAN.end, freq=BUCKET, inclusive="left")
    values = rng.normal(0.01, 0.001, len(times))
    values[times >= _slice_start(7 / 8)] += 0.05
    signals = pd.DataFrame({"bucket_start": times, "signal": "data.max_null_rate",
                            "value": values})

    class Timelines(FakeScan):
        def signals(self):
            return signals[(signals.bucket_start >= self.start) &
                           (signals.bucket_start < self.end)]

    def run(con, baseline, incident, case=None, options=None, progress=None):
        scan = Timelines([])
        scan.start, scan.end = pd.Timestamp(baseline.start), pd.Timestamp(incident.end)
        return scan

    monkeypatch.setattr(focus, "run_diagnostics", run)
    # the timelines alone do locate a change, which the focused scan does not keep
    assert focus.locate_incident([], signals, Window(_slice_start(1 / 2).to_pydatetime(),
                                                     SPAN.end), BUCKET,
                                 _slice_start(3 / 4).to_pydatetime()) is not None
    assert focus.focused_scan(None, None, SPAN, BUCKET) is None


@pytest.fixture(scope="module")
def healthy(tmp_path_factory):
    con = ingest_case(make_case("none", seed=1, rows=20_000),
                      tmp_path_factory.mktemp("focus"))
    yield con
    con.close()


def test_classify_reads_the_focused_window_and_names_it(healthy, monkeypatch):
    _, span = api._analysed_span(case_view(healthy))
    start = pd.Timestamp(span.start)
    onset = start + (pd.Timestamp(span.end) - start) * 0.8
    located = DetectedWindows(
        baseline=Window((onset - timedelta(days=2)).to_pydatetime(),
                        (onset - timedelta(hours=1)).to_pydatetime()),
        incident=Window(onset.to_pydatetime(), span.end), onset=onset.to_pydatetime(),
        changes=(), supporting=("data.null_rate",))
    monkeypatch.setattr(api, "_detect", lambda *a, **k: (None, api._NO_SIGNALS))
    monkeypatch.setattr(api, "_focus", lambda *a, **k: focus.Focused(located, "the slice"))
    result = api.classify_incident(healthy)
    assert result.incident == located.incident
    assert result.baseline == located.baseline
    assert result.detected is located
    assert result.window_source == "detected (focused scan: the slice)"
    assert not result.window_source.startswith(api.NO_CHANGE_FOUND)


def test_evaluate_counts_a_focused_window_as_found():
    frame = pd.DataFrame({"window_source": [
        "detected", "detected (focused scan: 2026-02-10 00:00 to 2026-02-14 00:00 against "
        "2026-02-06 00:00 to 2026-02-10 00:00)",
        "detected (no change found: the span after its first quarter, against that quarter)"]})
    assert _no_change_found(frame).tolist() == [False, False, True]
    assert _window_placed(frame).tolist() == [True, True, False]
