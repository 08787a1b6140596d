"""Client versions that arrive during the span anchor scans too (issue 22, lead, stop 38):
a client rollout or a burst from a source nobody used before, which the events table does not
record. Varied tuning adversarial_inputs s20 (30,000 rows, no events) read ``none`` on the
fallback window; a client version first seen 29 min after its onset dates it."""

from __future__ import annotations

import importlib
from datetime import timedelta
from types import SimpleNamespace

import pandas as pd

import toolkit as tk
from tests.classify.scans import SPAN, T0, FakeScan
from toolkit.diagnose import Finding
from toolkit.diagnose._case import case_view
from toolkit.types import Window

focus = importlib.import_module("toolkit.classify.focus")

BUCKET = timedelta(hours=3)


def _requests(*versions):
    """Requests of each (client_version, first, count, every) given, one table."""
    parts = [pd.DataFrame({"ts": pd.date_range(first, periods=count, freq=every),
                           "client_version": version})
             for version, first, count, every in versions]
    frame = pd.concat(parts, ignore_index=True).sort_values("ts", ignore_index=True)
    return frame.assign(request_id=[f"r{k}" for k in range(len(frame))])


def _arrivals(frame, search=SPAN):
    con = tk.connect()
    assert tk.load(con, frame, table="requests").rows_rejected == 0
    return focus.client_arrivals(case_view(con), search)


def test_a_version_that_begins_mid_span_arrives_and_a_rare_one_from_the_start_does_not():
    day = timedelta(days=1)
    frame = _requests(
        ("ios-1", T0, 1_500, "15min"),  # from the start: no arrival
        ("ios-2", T0 + 5 * day, 300, "30min"),  # a rollout on day 5
        # one logged request per 12 h, first 8 h in: at its rate 0.67 expected before (< 5)
        ("partner-1", T0 + timedelta(hours=8), 25, "12h"),
        ("web-x", T0 + 7 * day + timedelta(minutes=17), 30, "10min"))  # a 5-hour burst
    assert _arrivals(frame) == [T0 + 5 * day, T0 + 7 * day + timedelta(minutes=17)]


def test_the_silence_before_a_first_request_is_weighed_by_the_versions_own_rate():
    # 11 requests an hour apart: 10 gaps over 10 h, a rate of 1/h; first seen h hours after
    # the search starts: 1/h * h expected before it. New from NEW_CLIENT_SILENCE (5) hours.
    for hours, new in ((4.9, False), (5.0, True), (30.0, True)):
        first = T0 + timedelta(hours=hours)
        frame = _requests(("ios-1", T0, 200, "1h"), ("web-x", first, 11, "1h"))
        assert _arrivals(frame) == ([first] if new else []), hours


def test_too_few_requests_or_no_client_column_give_no_arrival():
    day = timedelta(days=1)
    two = _requests(("ios-1", T0, 200, "1h"), ("web-x", T0 + 4 * day, 2, "10min"))
    assert _arrivals(two) == []  # NEW_CLIENT_ROWS: a rate needs three requests
    assert _arrivals(two.drop(columns="client_version")) == []
    # requests outside the search window do not count
    three = _requests(("ios-1", T0, 200, "1h"), ("web-x", T0 + 4 * day, 3, "10min"))
    assert _arrivals(three, Window(T0, T0 + 3 * day)) == []


def _finding(at, severity="high", fid="model.ood_burst"):
    return Finding(fid, "model", severity, 0.2, 0.01, "ood", onset=at, diagnostic="model.ood")


def _fake(monkeypatch, by_anchor):
    scanned = []

    def run(con, baseline, incident, case=None, options=None, progress=None):
        start = pd.Timestamp(incident.start)
        scanned.append(start)
        return FakeScan(by_anchor.get(start, []))

    monkeypatch.setattr(focus, "run_diagnostics", run)
    return scanned


def _agreeing(first_row, drift_onset):
    """The burst's first request dates the OOD finding; the drift refined between the last
    clean row and the first changed one dates an agreeing finding before it."""
    return [_finding(first_row),
            _finding(drift_onset, "high", "data.feature_drift")]


def test_an_arrival_holds_a_window_whose_onset_precedes_its_first_request(monkeypatch):
    # s20: first request 03:19:48; the drift finding, refined midway, dates 03:04 (truth 02:50)
    arrival = T0 + timedelta(days=6, hours=3, minutes=19)
    onset = arrival - timedelta(minutes=15)
    scanned = _fake(monkeypatch, {arrival: _agreeing(arrival, onset)})
    case = SimpleNamespace(events=None)
    found = focus.anchored_scan(None, case, SPAN, BUCKET, arrivals=[arrival])
    assert found is not None and pd.Timestamp(found.window.onset) == onset
    assert scanned == [arrival]
    # up to a bucket before the first request (ANCHOR_LEAD), not more
    _fake(monkeypatch, {arrival: _agreeing(arrival, arrival - BUCKET - timedelta(minutes=1))})
    assert focus.anchored_scan(None, case, SPAN, BUCKET, arrivals=[arrival]) is None


def test_a_logged_change_keeps_its_onset_after_it(monkeypatch):
    # the lead is for a first request in a sampled log, which comes after the change; a
    # logged deploy dates the change itself
    deploy = T0 + timedelta(days=6)
    _fake(monkeypatch, {deploy: _agreeing(deploy, deploy - timedelta(minutes=15))})
    case = SimpleNamespace(events=pd.DataFrame({"ts": [deploy], "kind": ["deploy"],
                                                "artifact": ["client"]}))
    assert focus.anchored_scan(None, case, SPAN, BUCKET) is None


def test_an_arrival_a_bucket_after_a_logged_change_is_not_scanned_twice(monkeypatch):
    deploy = T0 + timedelta(days=6)
    arrival = deploy + timedelta(minutes=40)  # the rollout's first logged request
    later = deploy + timedelta(days=2)
    scanned = _fake(monkeypatch, {})
    case = SimpleNamespace(events=pd.DataFrame({"ts": [deploy], "kind": ["deploy"],
                                                "artifact": ["client"]}))
    assert focus.anchored_scan(None, case, SPAN, BUCKET, arrivals=[arrival, later]) is None
    assert scanned == [deploy, later]
