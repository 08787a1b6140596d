"""When neither the first scan nor the focused slices find a change, scans anchored at the
changes the case records (a model release or rollback, a client rollout, a scale-out, a release
the version-share timeline shows) compare the day after each with the day before it (issue 22,
M28: varied tuning cold_start s4, a day of cold starts 1.4 days into a 14-day span, read
``none`` on the fallback window)."""

from __future__ import annotations

import importlib
from datetime import timedelta
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from tests.classify.scans import SPAN, T0, FakeScan
from toolkit.classify.windows import DetectedWindows, release_starts
from toolkit.diagnose import Finding
from toolkit.diagnose._case import case_view
from toolkit.evaluate import _no_change_found, _window_placed
from toolkit.simulate import ingest_case, make_case
from toolkit.types import Window

api = importlib.import_module("toolkit.classify.api")
focus = importlib.import_module("toolkit.classify.focus")

BUCKET = timedelta(hours=3)


def _finding(at, severity="medium", fid="infrastructure.cold_start"):
    return Finding(fid, "infrastructure", severity, 0.2, 0.01, "cold starts", onset=at,
                   diagnostic="infra.cold_start")


def _agreeing(at):
    """A finding dated on raw rows and a second one agreeing with it."""
    return [_finding(at), _finding(at + timedelta(minutes=7), "high",
                                   "infrastructure.latency_regression")]


def _events(*rows):
    return pd.DataFrame(rows, columns=["ts", "kind", "artifact"])


def _fake(monkeypatch, by_anchor):
    """run_diagnostics answers the anchored scan whose incident starts at an anchor with the
    findings given for it, any other scan nothing; returns the incident starts scanned."""
    scanned = []

    def run(con, baseline, incident, case=None, options=None, progress=None):
        start = pd.Timestamp(incident.start)
        scanned.append(start)
        assert pd.Timestamp(baseline.end) == start
        assert pd.Timestamp(baseline.start) == max(T0, start - focus.ANCHOR_SIDE)
        return FakeScan(by_anchor.get(start, []))

    monkeypatch.setattr(focus, "run_diagnostics", run)
    return scanned


def test_anchors_are_releases_rollouts_and_scale_outs_a_bucket_apart():
    day = timedelta(days=1)
    events = _events(
        (T0 + day + timedelta(hours=5), "deploy", "pipeline"),  # not an anchor (none s3, s15)
        (T0 + day + timedelta(hours=6), "config_change", "infra"),  # not an anchor (none s15)
        (T0 + day + timedelta(hours=9), "scale", "infra"),
        (T0 + day + timedelta(hours=9, minutes=20), "scale", "infra"),  # same rollout
        (T0 + day + timedelta(hours=12, minutes=1), "scale", "infra"),  # a bucket later
        (T0 + 3 * day, "deploy", "client"),
        (T0 + 5 * day, "rollback", "model"),
        (T0 + timedelta(hours=1), "deploy", "model"),  # no bucket of baseline before it
        (T0 + 16 * day - timedelta(hours=5), "deploy", "model"))  # under two buckets after
    release = T0 + 4 * day + timedelta(minutes=9)
    anchors = focus.change_anchors(events, [release], SPAN, BUCKET)
    assert anchors == [T0 + day + timedelta(hours=9), T0 + day + timedelta(hours=12, minutes=1),
                       T0 + 3 * day, release, T0 + 5 * day]


def test_no_events_and_no_release_no_anchor():
    assert focus.change_anchors(_events(), [], SPAN, BUCKET) == []
    assert focus.change_anchors(None, [], SPAN, BUCKET) == []


def test_a_scale_out_dates_the_cold_starts_a_day_after_it(monkeypatch):
    # varied tuning cold_start s4: the scale-out at 09:12 dates the cold starts 09:12
    scale = T0 + timedelta(days=1, hours=9, minutes=12)
    onset = scale + timedelta(minutes=1)
    scanned = _fake(monkeypatch, {scale: _agreeing(onset)})
    case = SimpleNamespace(events=_events((scale, "scale", "infra")))
    found = focus.anchored_scan(None, case, SPAN, BUCKET)
    assert found is not None
    assert pd.Timestamp(found.window.onset) == onset
    assert found.how == ("2026-02-03 09:12 to 2026-02-04 09:12 against "
                         "2026-02-02 09:12 to 2026-02-03 09:12")
    assert len(found.findings) == 2
    assert scanned == [scale]


def test_a_finding_a_day_after_the_change_is_not_its_effect(monkeypatch):
    # varied tuning none s3 (30,000 rows): a cache episode 19 h after a deploy held a window
    deploy = T0 + timedelta(days=3)
    _fake(monkeypatch, {deploy: _agreeing(deploy + timedelta(hours=19))})
    case = SimpleNamespace(events=_events((deploy, "deploy", "model")))
    assert focus.anchored_scan(None, case, SPAN, BUCKET) is None
    # within ANCHOR_REACH buckets (6 h) it is
    _fake(monkeypatch, {deploy: _agreeing(deploy + timedelta(hours=5, minutes=59))})
    assert focus.anchored_scan(None, case, SPAN, BUCKET) is not None


def test_a_lone_or_weak_finding_holds_no_anchored_window(monkeypatch):
    deploy = T0 + timedelta(days=3)
    case = SimpleNamespace(events=_events((deploy, "deploy", "model")))
    _fake(monkeypatch, {deploy: [_finding(deploy + timedelta(minutes=40))]})
    assert focus.anchored_scan(None, case, SPAN, BUCKET) is None
    _fake(monkeypatch, {deploy: [_finding(deploy + timedelta(minutes=40), "low"),
                                 _finding(deploy + timedelta(minutes=50), "low", "x.y")]})
    assert focus.anchored_scan(None, case, SPAN, BUCKET) is None


def test_the_earliest_holding_change_wins_and_a_pipeline_deploy_is_not_scanned(monkeypatch):
    pipeline = T0 + timedelta(days=2)
    first, second = T0 + timedelta(days=4), T0 + timedelta(days=6)
    scanned = _fake(monkeypatch, {pipeline: _agreeing(pipeline + timedelta(minutes=54)),
                                  first: _agreeing(first + timedelta(minutes=30)),
                                  second: _agreeing(second + timedelta(minutes=10))})
    case = SimpleNamespace(events=_events((pipeline, "deploy", "pipeline"),
                                          (second, "deploy", "client")))
    found = focus.anchored_scan(None, case, SPAN, BUCKET, releases=[first])
    assert pd.Timestamp(found.window.onset) == first + timedelta(minutes=30)
    assert scanned == [first]


def test_release_starts_where_the_new_versions_share_rises():
    # 8 days of 3-hour buckets, a new version's share 0 with noise, then 0.4 from bucket 40
    rng = np.random.default_rng(3)
    starts = pd.date_range(T0, periods=64, freq="3h")
    share = np.abs(rng.normal(0.0, 0.002, 64))
    share[40:] += 0.4
    signals = pd.DataFrame({"bucket_start": starts, "signal": "model.new_version_share",
                            "value": share})
    other = pd.DataFrame({"bucket_start": starts, "signal": "model.score_psi",
                          "value": np.r_[np.zeros(20), np.ones(44)]})
    span = Window(T0, T0 + timedelta(days=8))
    found = release_starts(pd.concat([signals, other]), span, BUCKET)
    assert len(found) == 1
    # the step fills its bucket: dated at the bucket's start, within the noise of the share
    # of the level the bucket holds (windows.WITHIN_NOISE of a bucket)
    assert abs(pd.Timestamp(found[0]) - starts[40]) <= 0.03 * BUCKET
    flat = signals.assign(value=np.abs(rng.normal(0.0, 0.002, 64)))
    assert release_starts(flat, span, BUCKET) == []
    assert release_starts(signals.iloc[0:0], span, BUCKET) == []


@pytest.fixture(scope="module")
def healthy(tmp_path_factory):
    con = ingest_case(make_case("none", seed=1, rows=20_000),
                      tmp_path_factory.mktemp("anchor"))
    yield con
    con.close()


def test_classify_reads_the_anchored_window_and_names_it(healthy, monkeypatch):
    _, span = api._analysed_span(case_view(healthy))
    onset = pd.Timestamp(span.start) + (pd.Timestamp(span.end) - pd.Timestamp(span.start)) * 0.1
    located = DetectedWindows(
        baseline=Window((onset - timedelta(days=1)).to_pydatetime(),
                        (onset - BUCKET).to_pydatetime()),
        incident=Window(onset.to_pydatetime(), (onset + timedelta(days=1)).to_pydatetime()),
        onset=onset.to_pydatetime(), changes=(), supporting=("data.null_rate",))
    monkeypatch.setattr(api, "_detect", lambda *a, **k: (None, api._NO_SIGNALS))
    monkeypatch.setattr(api, "_focus", lambda *a, **k: None)
    monkeypatch.setattr(api, "_anchor", lambda *a, **k: focus.Focused(located, "the day"))
    result = api.classify_incident(healthy)
    assert result.incident == located.incident
    assert result.baseline == located.baseline
    assert result.detected is located
    assert result.window_source == "detected (anchored scan: the day)"
    frame = pd.DataFrame({"window_source": [result.window_source]})
    assert not _no_change_found(frame)[0] and _window_placed(frame)[0]


def test_a_case_without_anchors_reads_the_fallback(healthy, monkeypatch):
    monkeypatch.setattr(api, "_detect", lambda *a, **k: (None, api._NO_SIGNALS))
    monkeypatch.setattr(api, "_focus", lambda *a, **k: None)
    calls = []
    real = api._anchor
    monkeypatch.setattr(api, "_anchor", lambda *a, **k: calls.append(1) or real(*a, **k))
    result = api.classify_incident(healthy)
    assert calls == [1]
    assert result.window_source.startswith(api.NO_CHANGE_FOUND)
