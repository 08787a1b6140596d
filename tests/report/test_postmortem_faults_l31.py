"""The postmortem's faults left after G30 (session 31), each on a hand-made result:

1. a report with no onset (a ``none`` verdict, an undetermined one nothing dated) draws no
   "estimated onset" row or line at the window's start (varied tuning none s3);
2. the pathway scores of a ``none`` or ``undetermined`` verdict are shown as the verdict
   weighed them (no incident beside each pathway), with why no cause was decided;
3. a sparsely labelled case gets an accuracy line from merged buckets (varied tuning none s3,
   60,000 rows: one bucket of 30 labels drawn, 1,194 labels in the window);
4. a generative case gets time-to-first-token and prompt-length panels (varied tuning
   prompt_shift: only latency and errors were drawn; the Azure LLM trace had no panel);
5. a window of fewer than 30 requests is said to be too small to judge (varied tuning
   concept_drift s2 with its true window: 11 requests, "No latency, error or quality data").
"""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import matplotlib
import numpy as np
import pandas as pd

from tests.report.test_sections import INCIDENT, _postmortem
from toolkit.classify.engine import RuleHit
from toolkit.report import figures
from toolkit.types import Window

matplotlib.use("Agg")

START = pd.Timestamp("2026-02-02 00:00", tz="UTC")
RED = "#C44E52"


def _events() -> pd.DataFrame:
    return pd.DataFrame(columns=["ts", "kind", "artifact", "version", "host", "detail"])


def _undecided(pathway: str, onset=None, findings=(), hits=(), scores=None,
               p_none: float = 0.54):
    """A postmortem of a ``none`` or ``undetermined`` verdict whose onset is the window's
    start (as the classifier leaves it when nothing dates one)."""
    pm = _postmortem(mode=pathway, pathway=pathway, findings=findings, hits=hits,
                     mode_scores={"none": p_none})
    pm.result.verdict.onset = onset or INCIDENT.start
    pm.result.onset = onset or INCIDENT.start
    pm.result.verdict.scores = scores or {"data": 0.23, "model": 0.23,
                                          "infrastructure": 0.30, "integration": 0.24}
    return pm


# ---------------------------------------------------------------- 1. no onset, no onset row
def test_a_none_verdict_lists_no_estimated_onset_row():
    text = _undecided("none").timeline().fragment
    assert "estimated onset" not in text
    assert "incident start" in text  # the window's start stays, as a window row


def test_an_undetermined_verdict_nothing_dated_lists_no_onset_row():
    pm = _undecided("undetermined")
    assert "estimated onset" not in pm.timeline().fragment
    assert pm._onset_text().startswith("none dated (undetermined")


def test_an_undetermined_verdict_dated_by_a_finding_keeps_its_onset():
    """A guard: an undetermined verdict whose onset a finding gives is dated."""
    from toolkit.diagnose._base import Finding

    at = INCIDENT.start + timedelta(minutes=40)
    finding = Finding(id="data.covariate_shift", pathway="data", severity="medium",
                      statistic=0.3, threshold=0.2, summary="amount moved", onset=at)
    pm = _undecided("undetermined", onset=at, findings=[finding])
    assert "estimated onset" in pm.timeline().fragment
    assert not pm._undated()


def test_the_timeline_figure_draws_no_onset_line_when_undated():
    hours = pd.date_range(START, periods=48, freq="h")
    latency = SimpleNamespace(timeline=pd.DataFrame({
        "bucket_start": hours, "p99_ms": np.linspace(200, 400, 48), "error_rate": 0.0,
        "timeout_rate": 0.0}))
    incident = Window(START + pd.Timedelta(hours=24), START + pd.Timedelta(hours=48))
    result = SimpleNamespace(diagnosis=SimpleNamespace(results={"infra.latency": latency}),
                             onset=incident.start, incident=incident,
                             baseline=Window(START, incident.start), detected=None)

    def red_lines(fig):
        return [line for ax in fig.axes for line in ax.get_lines()
                if line.get_color() == RED and len(set(line.get_xdata())) == 1]

    assert red_lines(figures.incident_timeline(result, _events()))  # dated: drawn
    fig = figures.incident_timeline(result, _events(), dated=False)
    assert not red_lines(fig)
    assert "no onset dated" in fig.axes[0].get_title()


# ---------------------------------------------------------------- 2. undecided pathway scores
def test_undecided_shares_add_the_no_incident_share():
    pm = _undecided("none", p_none=0.54)
    shares = figures.undecided_shares(pm.result)
    assert shares["no incident"] == 0.54
    # each pathway's score is given an incident: times P(incident) = 0.46
    assert np.isclose(shares["infrastructure"], 0.30 * 0.46)
    assert np.isclose(shares["data"], 0.23 * 0.46)
    assert np.isclose(sum(shares.values()), 0.54 + 1.00 * 0.46)


def test_a_none_verdict_says_what_the_bars_mean():
    hit = RuleHit("latency regression", {"latency_regression": 0.5}, ("infra.x",))
    text = _undecided("none", hits=(hit,)).pathway_figure().fragment
    assert "Verdict none: no incident (0.54) weighs at least as much as any pathway " \
           "(the largest, infrastructure, 0.14)" in text
    assert "not a ranking of a found cause" in text
    assert "alt='Verdict scores'" in text


def test_an_undetermined_verdict_says_which_condition_failed():
    hit = RuleHit("drift", {"covariate_shift": 1.0}, ("data.x",))
    # given an incident: data 0.45, model 0.40; P(no incident) 0.1: 0.405 and 0.36
    scores = {"data": 0.45, "model": 0.40, "infrastructure": 0.1, "integration": 0.05}
    text = _undecided("undetermined", hits=(hit,), scores=scores, p_none=0.1
                      ).pathway_figure().fragment
    assert "the leading pathway, data, has 0.41, below the 0.5 a verdict needs" in text
    # data 0.55 and model 0.45 with no incident at 0: above 0.5, but a lead of 0.10
    scores = {"data": 0.55, "model": 0.45, "infrastructure": 0.0, "integration": 0.0}
    text = _undecided("undetermined", hits=(hit,), scores=scores, p_none=0.0
                      ).pathway_figure().fragment
    assert "the leading pathway, data (0.55), is 0.10 ahead of model (0.45); a verdict " \
           "needs a lead of 0.15" in text


def test_no_rule_fired_draws_no_chart_of_priors():
    text = _undecided("undetermined", scores={p: 0.25 for p in (
        "data", "model", "infrastructure", "integration")}).pathway_figure().fragment
    assert "<img" not in text
    assert "rule table&#x27;s prior" in text


def test_a_decided_verdict_says_its_bars_are_given_an_incident():
    pm = _postmortem(mode_scores={"none": 0.07})
    pm.result.verdict.scores = {"model": 0.59, "data": 0.2, "infrastructure": 0.11,
                                "integration": 0.1}
    pm.result.verdict.confidence = 0.55
    pm.result.verdict.hits = (RuleHit("cal", {"calibration_collapse": 2.0}, ("m.c",)),)
    pm.result.plot = lambda ax: ax.barh(["model"], [0.59])
    text = pm.pathway_figure().fragment
    assert "given that there is an incident" in text
    assert "no incident 0.07; with that counted in, model&#x27;s is 0.55" in text


# ---------------------------------------------------------------- 3. sparse labels
def _sparse_performance():
    """Ten days of 3-hour buckets with 8 labels each (7 correct), the last day 8 labels with
    4 correct: no bucket reaches 30 labels, so the diagnostic's timeline is empty."""
    buckets = pd.date_range(START, periods=80, freq="3h")
    correct = np.where(np.arange(80) >= 72, 4.0, 7.0)
    label_buckets = pd.DataFrame({"bucket_start": buckets, "labelled": 8, "correct": correct,
                                  "accuracy": correct / 8})
    timeline = pd.DataFrame({"bucket_start": [buckets[5]], "accuracy": [0.9],
                             "labelled": [30]})
    baseline = Window(START, START + pd.Timedelta(days=5))
    incident = Window(baseline.end, START + pd.Timedelta(days=10))
    performance = SimpleNamespace(timeline=timeline, label_buckets=label_buckets)
    result = SimpleNamespace(baseline=baseline, incident=incident)
    return performance, result


def test_sparse_labels_merge_buckets_into_a_line():
    performance, result = _sparse_performance()
    frame, width = figures.readable_accuracy(performance, result, START,
                                             START + pd.Timedelta(days=10))
    # 8 labels a bucket: 4 buckets (32 labels) are the fewest that reach 30, so 12 h buckets
    assert width == pd.Timedelta(hours=12)
    assert len(frame) == 20 and (frame["labelled"] == 32).all()
    # the labels' accuracy: 28 of 32 before the last day, 16 of 32 on it
    assert np.allclose(frame["accuracy"].iloc[:18], 28 / 32)
    assert np.allclose(frame["accuracy"].iloc[18:], 16 / 32)
    # placed at the middle of each 12 h bucket
    assert frame["bucket_start"].iloc[0] == START + pd.Timedelta(hours=6)


def test_enough_labels_keep_the_diagnostics_timeline():
    """A guard: a timeline whose buckets hold 30 labels is drawn as the diagnostic made it."""
    performance, result = _sparse_performance()
    performance.label_buckets = performance.label_buckets.assign(labelled=40, correct=35.0)
    frame, width = figures.readable_accuracy(performance, result, START,
                                             START + pd.Timedelta(days=10))
    assert width is None and frame is performance.timeline


def test_the_accuracy_panel_draws_the_merged_line():
    performance, result = _sparse_performance()
    result = SimpleNamespace(
        diagnosis=SimpleNamespace(results={"model.performance": performance}),
        onset=result.incident.start, incident=result.incident, baseline=result.baseline,
        detected=None)
    fig = figures.incident_timeline(result, _events())
    ax = next(a for a in fig.axes if a.get_ylabel() == "accuracy")
    drawn = [line for line in ax.get_lines() if line.get_color() == "#4C72B0"]
    assert drawn and len(drawn[0].get_xdata()) >= 15
    assert any("buckets of 12 h" in t.get_text() for t in ax.texts)


# ---------------------------------------------------------------- 4. generative panels
def _generative(ttft: list[float]):
    hours = pd.date_range(START, periods=48, freq="h")
    tokens = SimpleNamespace(timeline=pd.DataFrame({"bucket_start": hours,
                                                    "ttft_p99_ms": ttft}))
    mix = SimpleNamespace(timeline=pd.DataFrame({
        "bucket_start": hours, "input_mean": np.r_[np.full(24, 1500.0), np.full(24, 4600.0)]}))
    incident = Window(START + pd.Timedelta(hours=24), START + pd.Timedelta(hours=48))
    return SimpleNamespace(
        diagnosis=SimpleNamespace(results={"infra.token_latency": tokens,
                                           "data.prompt_mix": mix}),
        onset=incident.start, incident=incident, baseline=Window(START, incident.start),
        detected=None)


def test_a_generative_case_draws_ttft_and_prompt_length():
    fig = figures.incident_timeline(_generative(list(np.linspace(500, 1500, 48))), _events())
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert "TTFT p99 (ms)" in labels and "mean prompt tokens" in labels
    ax = next(a for a in fig.axes if a.get_ylabel() == "mean prompt tokens")
    assert max(ax.get_lines()[0].get_ydata()) == 4600.0


def test_a_trace_without_latency_draws_no_ttft_panel():
    """The Azure LLM trace logs token counts, no latency: its TTFT column is all missing."""
    fig = figures.incident_timeline(_generative([np.nan] * 48), _events())
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert "TTFT p99 (ms)" not in labels and "mean prompt tokens" in labels


# ---------------------------------------------------------------- 5. windows too small
def _small(n_incident: int, n_baseline: int = 5_000):
    pm = _undecided("undetermined", p_none=0.1)
    counts = {INCIDENT.start: n_incident}
    pm.case.has = lambda table, column=None: table == "requests"
    pm.case.window_rows = lambda window: counts.get(window.start, n_baseline)
    pm.result.diagnosis.to_frame = pd.DataFrame
    return pm


def test_a_window_of_11_requests_is_too_small_to_judge():
    pm = _small(11)
    summary = pm.summary().fragment
    assert "Too few requests to judge: the incident window holds 11 logged requests, fewer " \
           "than the 30 a comparison of the windows needs" in summary
    assert "verdict abstains" in summary
    assert "points to no single cause" not in summary
    impact = pm.impact().fragment
    assert "Impact not measured: the incident window holds 11 logged requests" in impact
    assert "No latency, error or quality data" not in impact
    assert "No pathway chart" in pm.pathway_figure().fragment
    assert "the windows were not compared" in pm.classification().fragment


def test_a_window_of_30_requests_is_judged():
    """A guard: 30 requests are enough (the diagnostics' own minimum)."""
    pm = _small(30)
    assert "Too few requests" not in pm.summary().fragment
    assert "No latency, error or quality data" in pm.impact().fragment


def test_a_decided_verdict_on_a_small_baseline_says_what_it_rests_on():
    """Only the baseline is small: the incident's requests were still judged among
    themselves (hosts, concurrency, timeouts), so the verdict does not rest on metrics alone."""
    pm = _small(5_000, n_baseline=18)
    pm.result.verdict.pathway = "infrastructure"
    pm.result.verdict.failure_mode = "memory_leak"
    summary = pm.summary().fragment
    assert "the baseline window holds 18 logged requests" in summary
    assert "rests on metrics, events and the incident&#x27;s requests among themselves" \
        in summary
    pm = _small(11)
    pm.result.verdict.pathway = "infrastructure"
    pm.result.verdict.failure_mode = "memory_leak"
    assert "verdict rests on metrics and events alone" in pm.summary().fragment
