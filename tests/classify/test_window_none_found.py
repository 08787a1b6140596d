"""When the detector finds no incident window, the verdict is read on the windows the scan
compared (the span after its first quarter against that quarter), not on a slice it never
tested (issue 22, cause 2: a healthy period read undetermined on the last quarter's noise)."""

from __future__ import annotations

import importlib

import pandas as pd
import pytest

from toolkit.diagnose._case import case_view
from toolkit.simulate import ingest_case, make_case

api = importlib.import_module("toolkit.classify.api")


@pytest.fixture(scope="module")
def healthy(tmp_path_factory):
    con = ingest_case(make_case("none", seed=1, rows=20_000),
                      tmp_path_factory.mktemp("none-found"))
    yield con
    con.close()


def test_no_window_found_classifies_the_scanned_windows(healthy, monkeypatch):
    _, span = api._analysed_span(case_view(healthy))
    start, stop = pd.Timestamp(span.start), pd.Timestamp(span.end)
    quarter = start + (stop - start) / 4
    calls = []

    def nothing_found(con, case, span_, baseline, progress=None):
        calls.append(baseline)
        return None, api._NO_SIGNALS

    monkeypatch.setattr(api, "_detect", nothing_found)
    result = api.classify_incident(healthy)
    assert calls == [None]
    # the old code read the last quarter against the 14 days before it
    assert pd.Timestamp(result.incident.start) == quarter
    assert pd.Timestamp(result.incident.end) == stop
    assert pd.Timestamp(result.baseline.start) == start
    assert pd.Timestamp(result.baseline.end) == quarter
    assert result.window_source.startswith("detected (no change found: the span after")
    assert result.detected is None
    assert result.pathway == "none"


def test_a_baseline_given_keeps_the_window_after_it(healthy, monkeypatch):
    # with a baseline given and nothing found, the incident is still what follows the baseline
    _, span = api._analysed_span(case_view(healthy))
    start, stop = pd.Timestamp(span.start), pd.Timestamp(span.end)
    base_end = start + (stop - start) / 2
    monkeypatch.setattr(api, "_detect", lambda *a, **k: (None, api._NO_SIGNALS))
    result = api.classify_incident(
        healthy, baseline=f"{start.isoformat()}/{base_end.isoformat()}")
    assert pd.Timestamp(result.baseline.end) == base_end
    assert pd.Timestamp(result.incident.start) >= base_end
    assert result.window_source == "detected (no change found: last quarter)"
