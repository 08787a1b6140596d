"""Window detection for an incident that begins inside the provisional baseline (issue 22):
the first scan measures against the span's first quarter, so an incident that starts in it is
dated no earlier than the quarter; a second scan against the first sixteenth dates it."""

from __future__ import annotations

import importlib

import pandas as pd
import pytest

from toolkit.diagnose._case import case_view
from toolkit.simulate import ingest_case, make_case
from toolkit.types import Window

api = importlib.import_module("toolkit.classify.api")


@pytest.fixture(scope="module")
def early_case(tmp_path_factory):
    """A classic covariate shift with the logs cut so that the shift starts a tenth of the way
    into the span (well inside the first quarter, after the first sixteenth)."""
    case = make_case("covariate_shift", seed=1, rows=20_000)
    truth = case.truth()
    onset, end = pd.Timestamp(truth["onset"]), pd.Timestamp(truth["incident"][1])
    con = ingest_case(case, tmp_path_factory.mktemp("early-edge"))
    cut = onset - (end - onset) / 9
    con.execute("DELETE FROM requests WHERE ts < ?", [cut.to_pydatetime()])
    yield con, onset
    con.close()


def test_an_incident_inside_the_provisional_baseline_is_dated_from_an_early_edge_scan(
        early_case, monkeypatch):
    con, onset = early_case
    case = case_view(con)
    _, span = api._analysed_span(case)
    start, stop = pd.Timestamp(span.start), pd.Timestamp(span.end)
    assert abs((onset - start) / (stop - start) - 0.1) < 0.01
    quarter = start + (stop - start) / 4
    baselines = _record_scans(monkeypatch)
    located = api._detect(con, case, span, None)[0]
    # two scans: the provisional quarter, then the first sixteenth
    wanted = [quarter, start + (stop - start) / 16]
    assert len(baselines) == 2
    assert all(abs(pd.Timestamp(b.end) - w) < pd.Timedelta(seconds=1)
               for b, w in zip(baselines, wanted, strict=True))
    # the first scan alone dates the shift at the quarter (14 h late); the early-edge scan
    # dates it within three hours and the window holds it
    assert located.onset < quarter - pd.Timedelta(hours=6)
    assert abs(pd.Timestamp(located.onset) - onset) <= pd.Timedelta(hours=3)
    assert pd.Timestamp(located.incident.start) <= onset < pd.Timestamp(located.incident.end)


def test_a_given_baseline_or_an_onset_away_from_the_quarter_takes_one_scan(early_case,
                                                                           monkeypatch):
    con, onset = early_case
    case = case_view(con)
    _, span = api._analysed_span(case)
    calls = _record_scans(monkeypatch)
    start = pd.Timestamp(span.start)
    baseline = Window(start, onset - pd.Timedelta(hours=1))
    assert api._detect(con, case, span, baseline)[0] is not None
    assert len(calls) == 1


def _record_scans(monkeypatch) -> list:
    """The baseline window of every diagnostics scan the detector runs, in order."""
    baselines = []
    run = api.run_diagnostics

    def recording(con, baseline, incident, **kwargs):
        baselines.append(baseline)
        return run(con, baseline, incident, **kwargs)

    monkeypatch.setattr(api, "run_diagnostics", recording)
    return baselines
