"""The incident timeline never shows an empty axis: a panel with too few points says why.

Varied tuning bad_release s21 (30,000 rows): the drift timeline kept one bucket (37 feature
rows, PSI 0.71); the "largest feature PSI" panel drew it as a one-point line, invisible, on an
empty 0.70-0.75 axis.
"""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib
import numpy as np
import pandas as pd

from toolkit.report import figures
from toolkit.types import Window

matplotlib.use("Agg")

START = pd.Timestamp("2026-02-23 00:00", tz="UTC")


def _result(drift_buckets: list[pd.Timestamp], accuracy: list[float] | None = None):
    """A classification stub: a day of baseline, a day of incident, hourly timelines."""
    hours = pd.date_range(START, periods=48, freq="h")
    latency = SimpleNamespace(timeline=pd.DataFrame({
        "bucket_start": hours, "p99_ms": np.linspace(200, 400, 48), "error_rate": 0.0,
        "timeout_rate": 0.0}))
    drift = SimpleNamespace(timeline=pd.DataFrame({
        "bucket_start": drift_buckets, "feature": "amount", "psi": 0.71,
        "n": 37.0}))
    results = {"infra.latency": latency, "data.drift": drift}
    if accuracy is not None:
        results["model.performance"] = SimpleNamespace(timeline=pd.DataFrame({
            "bucket_start": hours, "accuracy": accuracy}))
    incident = Window(START + pd.Timedelta(hours=24), START + pd.Timedelta(hours=48))
    return SimpleNamespace(
        diagnosis=SimpleNamespace(results=results), onset=incident.start, incident=incident,
        baseline=Window(START, incident.start), detected=None)


def _events() -> pd.DataFrame:
    return pd.DataFrame(columns=["ts", "kind", "artifact", "version", "host", "detail"])


def _axis(fig, label: str):
    return next(ax for ax in fig.axes if ax.get_ylabel() == label)


def test_one_drift_bucket_says_so_in_words():
    fig = figures.incident_timeline(_result([START + pd.Timedelta(hours=40)]), _events())
    ax = _axis(fig, "largest feature PSI")
    texts = [t.get_text() for t in ax.texts]
    assert any("only 1 time bucket" in t and "fewer than 30" in t for t in texts), texts
    # no series drawn on it: the old panel drew a one-point line on a 0.70-0.75 axis
    assert not [line for line in ax.get_lines() if line.get_color() == "#55A868"]
    assert list(ax.get_yticks()) == []


def test_no_drift_bucket_in_view_says_so():
    fig = figures.incident_timeline(_result([START - pd.Timedelta(days=5)] * 3), _events())
    texts = [t.get_text() for t in _axis(fig, "largest feature PSI").texts]
    assert any("no time bucket" in t for t in texts), texts


def test_enough_drift_buckets_draw_a_line():
    """A guard: the words replace only a panel with too few values, never a real line."""
    buckets = [START + pd.Timedelta(hours=h) for h in (30, 31, 32, 33)]
    fig = figures.incident_timeline(_result(buckets), _events())
    ax = _axis(fig, "largest feature PSI")
    assert not ax.texts
    drawn = [line for line in ax.get_lines() if line.get_color() == "#55A868"]
    assert drawn and len(drawn[0].get_xdata()) == 4


def test_an_isolated_point_gets_a_marker():
    """A value between missing ones (sparse labels) is a point, not a zero-length line."""
    accuracy = [np.nan] * 48
    accuracy[30], accuracy[34], accuracy[35], accuracy[40] = 0.9, 0.8, 0.82, 0.7
    buckets = [START + pd.Timedelta(hours=h) for h in (30, 31, 32)]
    fig = figures.incident_timeline(_result(buckets, accuracy), _events())
    ax = _axis(fig, "accuracy")
    markers = [line for line in ax.get_lines() if line.get_marker() == "o"]
    assert len(markers) == 1
    # the lone points are 30 and 40 (34 and 35 join each other), by hand
    shown = sorted(np.asarray(markers[0].get_ydata(), dtype=float).tolist())
    assert shown == [0.7, 0.9]


def test_all_zero_failures_say_so():
    fig = figures.incident_timeline(_result([START + pd.Timedelta(hours=40)]), _events())
    texts = [t.get_text() for t in _axis(fig, "errors + timeouts").texts]
    assert "0 throughout this view" in texts


def test_diagnostic_charts_mark_a_lone_point():
    """Varied tuning none s3: the accuracy chart of a timeline with one labelled bucket was an
    empty axis (a line through one point draws nothing)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1, 2, 3, 4], [np.nan, 0.9, np.nan, 0.5, 0.6], color="b")  # 0.9 is alone
    ax.plot([5], [0.7], color="r")  # a single point
    ax.plot([0, 1], [0.2, 0.3], color="k", marker="s")  # markers already: left alone
    ax.axhline(0.5, ls="--")  # a reference line: two joined points
    figures.mark_lone_points(fig)
    lines = ax.get_lines()
    assert lines[0].get_marker() == "o" and list(lines[0].get_markevery()) == [1]
    assert lines[1].get_marker() == "o" and list(lines[1].get_markevery()) == [0]
    assert lines[2].get_marker() == "s" and lines[2].get_markevery() is None
    assert lines[3].get_marker() in (None, "None", "none", "")
    plt.close(fig)
