"""The postmortem says why the estimated onset precedes the incident window's start.

Varied tuning bad_release s21 (30,000 rows): the onset is the model deploy at 16:56, the window
(anchored at that deploy) opens at its first signal at 17:51; the timeline drew the onset 55 min
before the shaded window and no section said why.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pandas as pd
import pytest

import toolkit as tk
from tests.report.conftest import ingested_case
from toolkit.classify.api import ANCHORED, NO_CHANGE_FOUND
from toolkit.report.postmortem import Postmortem, _lag_text
from toolkit.types import Window

DEPLOY = pd.Timestamp("2026-02-24 16:56:39", tz="UTC")
START = pd.Timestamp("2026-02-24 17:51:37", tz="UTC")
INCIDENT = Window(START, pd.Timestamp("2026-02-26 02:55:12", tz="UTC"))
BASELINE = Window(pd.Timestamp("2026-02-23 16:51", tz="UTC"),
                  pd.Timestamp("2026-02-24 14:51", tz="UTC"))


def _finding(fid: str, onset, **evidence):
    return SimpleNamespace(id=fid, onset=onset, evidence=evidence, diagnostic=fid.split(".")[0],
                           severity="medium", summary=fid)


def _postmortem(onset, *, source: str = f"{ANCHORED}: 16:51 to 16:51)", trigger=None,
                findings=(), detected_start=START, baseline=BASELINE, results=None
                ) -> Postmortem:
    verdict = SimpleNamespace(trigger=trigger, failure_mode="bad_release", onset=onset,
                              pathway="model")
    detected = None if detected_start is None else SimpleNamespace(
        incident=Window(detected_start, INCIDENT.end),
        supporting=("model.prediction_shift", "latency.p99_ms"))
    result = SimpleNamespace(
        onset=onset, incident=INCIDENT, baseline=baseline, window_source=source,
        detected=detected, verdict=verdict,
        diagnosis=SimpleNamespace(findings=lambda: list(findings), results=results or {}))
    return Postmortem(result=result, case=None)


def test_trigger_dated_onset_before_an_anchored_window():
    trigger = {"ts": "2026-02-24T16:56:39Z", "kind": "deploy", "artifact": "model",
               "version": "2.2.0"}
    text = _postmortem(DEPLOY, trigger=trigger).onset_before_window()
    assert text is not None
    # 17:51:37 - 16:56:39 = 54 min 58 s, shown as 55 min
    assert "precedes the incident window's start" in text and "by 55 min" in text
    assert "logged deploy of model 2.2.0" in text
    assert "scan anchored at a logged change" in text and "model.prediction_shift" in text


def test_finding_dated_onset_names_the_finding():
    onset = START - pd.Timedelta(minutes=20)
    found = _finding("data.feature_drift", onset)
    text = _postmortem(onset, findings=[found], source="detected").onset_before_window()
    assert "the date the diagnosis gives the finding data.feature_drift" in text
    assert "by 20 min" in text
    assert "the detector's scan" in text


def test_slow_start_onset_points_to_detection():
    began = START - pd.Timedelta(hours=3)
    found = _finding("infrastructure.memory_leak", START + pd.Timedelta(hours=1),
                     climb_began=began.isoformat())
    text = _postmortem(began, findings=[found], source="detected").onset_before_window()
    assert "slow change behind infrastructure.memory_leak" in text and "by 3 h" in text


def test_given_and_fallback_windows_say_so():
    onset = START - pd.Timedelta(minutes=40)
    given = _postmortem(onset, source="given", detected_start=None).onset_before_window()
    assert "window was given, not detected" in given
    fallback = _postmortem(onset, source=f"{NO_CHANGE_FOUND}: last quarter)",
                           detected_start=None).onset_before_window()
    assert "fallback" in fallback and "marks no change" in fallback


def test_onset_inside_the_baseline_is_flagged():
    onset = BASELINE.end - pd.Timedelta(hours=2)
    text = _postmortem(onset, source="given", detected_start=None,
                       baseline=BASELINE).onset_before_window()
    assert "baseline window ends 2 h after the onset" in text


@pytest.mark.parametrize("delta", [pd.Timedelta(0), pd.Timedelta(seconds=30),
                                   -pd.Timedelta(hours=1)])
def test_no_statement_when_the_onset_is_not_before_the_window(delta):
    """A guard: the onset at (or within a minute of) the window's start, or after it, needs
    no explanation; the report says nothing."""
    pm = _postmortem(START - delta)
    assert pm.onset_before_window() is None
    assert "before the incident window opens" not in pm._onset_text()


def test_summary_states_the_relation_and_a_none_verdict_has_no_onset():
    trigger = {"ts": "2026-02-24T16:56:39Z", "kind": "deploy", "artifact": "model",
               "version": "2.2.0"}
    pm = _postmortem(DEPLOY, trigger=trigger)
    pm.result.verdict.confidence, pm.result.verdict.hits = 0.66, ()
    assert "precedes the incident window" in pm.summary().fragment
    assert "55 min before the incident window opens" in pm._onset_text()
    # a none verdict: no incident, so no onset (varied tuning none s3 read "onset at")
    pm.result.verdict.pathway = pm.result.verdict.failure_mode = "none"
    pm.result.window_source = f"{NO_CHANGE_FOUND}: the span after its first quarter)"
    summary = pm.summary().fragment
    assert "No incident found in the window analysed" in summary and "fallback" in summary
    assert "onset at" not in summary and "precedes" not in summary
    assert pm._onset_text() == "none (no incident found)"


def test_a_breach_that_began_before_the_onset_is_not_after_it():
    """Varied tuning memory_exhaustion s11: a breach window from 09:00 into the 11:44 onset
    read "first breached after the onset at 09:00"."""
    onset = pd.Timestamp("2026-03-01 11:44", tz="UTC")
    breaches = pd.DataFrame({"start": [pd.Timestamp("2026-03-01 09:00", tz="UTC")],
                             "end": [pd.Timestamp("2026-03-01 13:00", tz="UTC")],
                             "worst_p99_ms": [2895.0]})
    latency = SimpleNamespace(breaches=breaches, slo_ms=774.0, slo_source="2 x baseline p99")
    pm = _postmortem(onset, results={"infra.latency": latency})
    text = pm.detection().fragment
    assert "already breached from 2026-03-01 09:00 UTC, 2.7 h before the estimated onset" \
        in text
    assert "first breached after the onset" not in text


def test_far_lags_read_in_hours_or_days():
    assert _lag_text(pd.Timedelta(minutes=8210)) == "5.7 days after"
    assert _lag_text(pd.Timedelta(minutes=-150)) == "2.5 h before"
    assert _lag_text(pd.Timedelta(minutes=12)) == "+12 min from"


@pytest.mark.slow
def test_rendered_postmortem_states_the_onset_window_relation(tmp_path):
    """The real render path (papermill + nbconvert): a bad release whose given window opens 40
    min after the deploy the verdict dates the onset by."""
    db, truth = ingested_case(tmp_path / "case", "bad_release", seed=21, rows=6_000)
    onset = pd.Timestamp(truth["onset"])
    window = f"{(onset + pd.Timedelta(minutes=40)).isoformat()}/{truth['incident'][1]}"
    rendered = tk.render_postmortem(db, tmp_path / "pm", incident=window,
                                    baseline="/".join(truth["baseline"]))
    results = json.loads(rendered.results.read_text())
    assert results["classification"]["failure_mode"] == "bad_release"
    html = rendered.html.read_text()
    statement = ("precedes the incident window", "by 40 min",
                 "the onset is the logged deploy of model", "window was given, not detected")
    for part in statement:
        # in the summary and under the timeline figure
        assert html.count(part) >= 2, part
    assert "40 min before the incident window opens" in html  # the header


def test_an_inferred_batch_mode_says_how():
    """Varied tuning none s3: "serving mode: batch" beside case.batch_runs' "not a batch
    case", with nothing saying the mode was guessed from a sparse log's idle minutes."""
    pm = _postmortem(START)
    pm.result.serving_mode = "batch"
    pm.result.diagnosis.results["case.traffic"] = SimpleNamespace(
        serving_mode_source="inferred")
    assert pm._serving_mode_text().startswith("batch (inferred from the traffic's shape: at "
                                               "least half the minutes without a request")
    pm.result.serving_mode = "real-time"
    assert pm._serving_mode_text() == "real-time (inferred from the traffic's shape)"
    pm.result.diagnosis.results["case.traffic"].serving_mode_source = "default"
    assert pm._serving_mode_text() == "real-time"


def test_a_negative_rule_weight_is_signed_once():
    """Varied tuning bad_release s21's rationale read "concept_drift +-0.8"."""
    pm = _postmortem(START, results={})
    pm.result.verdict.confidence, pm.result.verdict.alternatives = 0.66, ()
    pm.result.verdict.hits = (
        SimpleNamespace(name="a new, less accurate model version", findings=("a", "b"),
                        add={"concept_drift": -0.8, "bad_release": 1.4}),)
    pm.result.serving_mode = "real-time"
    pm.result.diagnosis.to_frame = pd.DataFrame
    pm.result.diagnosis.not_assessed = list
    html = pm.classification().fragment
    assert "concept_drift -0.8, bad_release +1.4" in html and "+-" not in html


def test_a_breach_that_ended_just_before_the_onset_says_so():
    onset = pd.Timestamp("2026-03-01 11:44", tz="UTC")
    breaches = pd.DataFrame({"start": [pd.Timestamp("2026-03-01 10:00", tz="UTC")],
                             "end": [pd.Timestamp("2026-03-01 11:30", tz="UTC")],
                             "worst_p99_ms": [2895.0]})
    latency = SimpleNamespace(breaches=breaches, slo_ms=774.0, slo_source="2 x baseline p99")
    text = _postmortem(onset, results={"infra.latency": latency}).detection().fragment
    assert "breached from 2026-03-01 10:00 to 2026-03-01 11:30 UTC, just before the " \
           "estimated onset" in text


def test_an_undetermined_fallback_window_states_no_onset():
    """The SageMaker export (real data): an undetermined verdict on a fallback window read
    "estimated onset" at the window's start, which no finding dated."""
    pm = _postmortem(START, source=f"{NO_CHANGE_FOUND}: the span after its first quarter)",
                     detected_start=None)
    pm.result.verdict.pathway = pm.result.verdict.failure_mode = "undetermined"
    pm.result.verdict.confidence, pm.result.verdict.hits = 0.11, ()
    summary = pm.summary().fragment
    assert "No onset dated in the window analysed" in summary and "onset at" not in summary
    assert pm._onset_text().startswith("none dated (a fallback window")
    # a finding that dates an onset inside a fallback window still gives one
    pm.result.onset = pm.result.verdict.onset = START + pd.Timedelta(hours=2)
    assert "onset at" in pm.summary().fragment


def test_a_long_timeline_detail_is_cut_at_a_word_with_an_ellipsis():
    """Varied tuning memory_leak s2: a timeline row's summary ended "...; 30 ended i"."""
    from toolkit.report.postmortem import _clip

    summary = ("memory climbs steadily on 34 of 34 segments between restarts (5 host(s), "
               "median +7.8% of the limit per hour); 30 ended in a restart.")
    clipped = _clip(summary)
    assert clipped.endswith("30 ended\u2026") and len(clipped) <= 120
    assert _clip("short") == "short"
