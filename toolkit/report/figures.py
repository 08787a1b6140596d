"""Figures composed from several diagnostics (one theme: :mod:`toolkit.plotting`)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from toolkit.plotting import FIXED_Y, OUTLIER_COLOR, WINDOW_COLORS, set_theme
from toolkit.report.events import bursts
from toolkit.report.format import fmt_number

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from toolkit.classify import Classification

__all__ = ["incident_timeline", "pathway_scores", "score_distribution", "bin_labels",
           "burst_gap", "recolor_outliers", "mark_lone_points"]

_ARTIFACT_COLORS = {"model": "#DD8452", "pipeline": "#4C72B0", "client": "#8172B3",
                    "cache": "#937860", "infra": "#C44E52", "service": "#8C8C8C"}


def incident_timeline(result: Classification, events: pd.DataFrame) -> Figure | None:
    """Latency, failures and model quality around the incident, with events and change points.

    The view runs from well before the onset (twice the incident's length, between 12 hours
    and 3 days) to the end of the incident; events are drawn in a lane of their own.
    """
    set_theme()
    import matplotlib.pyplot as plt

    diagnosis = result.diagnosis
    onset = pd.Timestamp(result.onset)
    end = pd.Timestamp(result.incident.end)
    lead = min(max(2 * (end - pd.Timestamp(result.incident.start)), pd.Timedelta("12h")),
               pd.Timedelta("3D"))
    start = max(pd.Timestamp(result.baseline.start), onset - lead)
    panels = []
    latency = diagnosis.results.get("infra.latency")
    if latency is not None and not latency.timeline.empty:
        panels.append(("p99 latency (ms)", latency.timeline, "p99_ms", "#C44E52", True))
        panels.append(("errors + timeouts", latency.timeline.assign(
            failures=latency.timeline["error_rate"] + latency.timeline["timeout_rate"]),
            "failures", "#8172B3", False))
    performance = diagnosis.results.get("model.performance")
    if performance is not None and not performance.timeline.empty:
        if "accuracy" in performance.timeline:
            panels.append(("accuracy", performance.timeline, "accuracy", "#4C72B0", False))
        elif "mae" in performance.timeline:  # a regression endpoint: its error, not accuracy
            panels.append(("MAE", performance.timeline, "mae", "#4C72B0", False))
    calibration = diagnosis.results.get("model.calibration")
    if calibration is not None and not calibration.timeline.empty and \
            "ece" in calibration.timeline:
        panels.append(("ECE", calibration.timeline, "ece", "#DD8452", False))
    drift = diagnosis.results.get("data.drift")
    if drift is not None and not drift.timeline.empty:
        worst = drift.timeline.groupby("bucket_start", as_index=False)["psi"].max()
        panels.append(("largest feature PSI", worst, "psi", "#55A868", False))
    if not panels:
        return None
    panels = [(*panel, _too_few(panel[0], _in_view(panel[1], start, end), panel[2]))
              for panel in panels]
    shown = events[(events["ts"] >= start) & (events["ts"] <= end)] if not events.empty \
        else events
    marks = bursts(shown, burst_gap(end - start))
    fig, axes = plt.subplots(len(panels) + 1, 1, figsize=(11, 1.7 * len(panels) + 1.6),
                             sharex=True, gridspec_kw={"height_ratios": [0.9] +
                                                       [1.0] * len(panels)})
    lane = axes[0]
    lane.set_gid(FIXED_Y)
    _event_lane(lane, marks, end - start)
    lane.set_title("Incident timeline (UTC): red line = estimated onset, shaded = incident, "
                   "dotted = detected change points", fontsize=10, pad=22)
    lane.axvline(onset, color="#C44E52", lw=1.5)
    for ax, (label, frame, column, color, log, missing) in zip(axes[1:], panels, strict=True):
        ax.set_ylabel(label, fontsize=9)
        if missing is not None:
            _words_panel(ax, missing)
        else:
            view = _in_view(frame, start, end)
            _plot_series(ax, view["bucket_start"],
                         pd.to_numeric(view[column], errors="coerce").to_numpy(dtype=float),
                         color)
            if log and (view[column] > 0).all() and len(view):
                ax.set_yscale("log")
        ax.axvspan(result.incident.start, result.incident.end, color=WINDOW_COLORS["incident"],
                   alpha=0.07)
        ax.axvline(onset, color="#C44E52", lw=1.5)
        for row in marks.itertuples():
            color = _ARTIFACT_COLORS.get(str(row.artifact), "#8C8C8C")
            if row.count > 1 and row.last > row.first:
                ax.axvspan(row.first, row.last, color=color, alpha=0.12, lw=0)
            else:
                ax.axvline(row.first, color=color, lw=0.8, ls="--", alpha=0.6)
        if result.detected is not None:
            for change in result.detected.changes:
                if start <= pd.Timestamp(change.at) <= end:
                    ax.axvline(change.at, color="#CCB974", lw=0.9, ls=":")
    axes[-1].set_xlim(start, end)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


#: The fewest points of a timeline panel that make a line; with fewer the panel says so in
#: words. The drift diagnostic leaves out buckets with fewer than 30 feature rows (their PSI is
#: mostly noise): varied tuning bad_release s21 (30,000 rows, 10,000 logged, 1 in 10 with
#: features) kept one bucket of 37 rows, PSI 0.71, drawn as a lone invisible point on an empty
#: 0.70-0.75 axis.
MIN_PANEL_POINTS = 3
#: Why a panel has too few points, by its label (the drift timeline drops sparse buckets).
_SPARSE_REASON = {
    "largest feature PSI": "buckets with fewer than 30 logged feature rows are left out, "
                           "their PSI being mostly noise; the drift tables below compare the "
                           "whole windows",
}


def _in_view(frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp
             ) -> pd.DataFrame:
    """The rows of a timeline inside the view (a missing value stays: it breaks the line)."""
    inside = (frame["bucket_start"] >= start) & (frame["bucket_start"] <= end)
    return frame[inside]


def _too_few(label: str, view: pd.DataFrame, column: str) -> str | None:
    """Why a panel cannot draw its timeline (fewer than :data:`MIN_PANEL_POINTS` values in
    the view), in words; ``None`` when it can."""
    values = pd.to_numeric(view[column], errors="coerce").to_numpy(dtype=float)
    points = int(np.isfinite(values).sum())
    if points >= MIN_PANEL_POINTS:
        return None
    reason = _SPARSE_REASON.get(label, "the diagnostic has no value for the other buckets")
    if not points:
        return f"{label}: no time bucket in this view ({reason})."
    return (f"{label}: only {points} time bucket{'s' if points > 1 else ''} in this view, too "
            f"few for a timeline ({reason}).")


def _words_panel(ax: Axes, text: str) -> None:
    """A panel that says why it has nothing to plot, instead of an empty axis."""
    import textwrap

    ax.set_gid(FIXED_Y)
    ax.set_yticks([])
    ax.set_ylim(0, 1)
    ax.grid(False, axis="y")
    ax.text(0.01, 0.5, "\n".join(textwrap.wrap(text, 150)), transform=ax.transAxes,
            fontsize=8, color="#666666", va="center", gid="no-data",
            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.9})


def _plot_series(ax: Axes, x: pd.Series, y: np.ndarray, color: str) -> None:
    """A timeline as a line, with a marker on every point no neighbour joins (a line through
    one point draws nothing); said in words when every value is 0 (a line on the axis)."""
    ax.plot(x, y, color=color, lw=1.4)
    finite = np.isfinite(y)
    lone = _lone(y)
    if lone.any():
        ax.plot(x.to_numpy()[lone], y[lone], color=color, marker="o", ms=4, ls="none")
    if finite.any() and (y[finite] == 0).all():
        ax.text(0.01, 0.85, "0 throughout this view", transform=ax.transAxes, fontsize=8,
                color="#666666", va="top",
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.9})


def _lone(y: np.ndarray) -> np.ndarray:
    """Which finite values of a series have no finite neighbour (a line draws nothing at
    them)."""
    finite = np.isfinite(y)
    joined = np.zeros_like(finite)
    joined[1:] |= finite[:-1]
    joined[:-1] |= finite[1:]
    return finite & ~joined


def mark_lone_points(fig: Figure) -> Figure:
    """Put a marker on every point of a drawn line that no neighbour joins: a line through a
    single point (a timeline with one labelled bucket) draws nothing, and the axis reads empty
    (varied tuning none s3, 60,000 rows: the accuracy timeline held one bucket; its chart was
    an empty 0.5-1.0 axis). Lines that already carry markers are left as they are."""
    for ax in fig.axes:
        for line in ax.get_lines():
            if line.get_marker() not in (None, "None", "none", "", " ") or \
                    line.get_linestyle() in ("None", "none", "", " "):
                continue
            try:
                y = np.asarray(line.get_ydata(), dtype=float)
            except (TypeError, ValueError):
                continue
            if y.ndim != 1 or not len(y):
                continue
            lone = np.flatnonzero(_lone(y))
            if len(lone):
                line.set_marker("o")
                line.set_markersize(4)
                line.set_markevery([int(k) for k in lone])
    return fig


def burst_gap(span: pd.Timedelta) -> pd.Timedelta:
    """Events of one kind closer than this merge into one mark: 1% of the view, at least
    a minute."""
    return max(pd.Timedelta(span) / 100, pd.Timedelta(minutes=1))


def _event_lane(lane: Axes, marks: pd.DataFrame, span: pd.Timedelta) -> None:
    """One row per artifact; each burst a marker (a bar over its duration). Bursts of a row
    within 4% of the view share one label (``oom_kill x37, restart x37``); labels of nearby
    groups are staggered in height so they never overlap."""
    lane.grid(False)
    if marks.empty:
        lane.set_yticks([])
        lane.set_ylim(-0.7, 0.7)
        lane.text(0.01, 0.5, "no events logged in this period", transform=lane.transAxes,
                  fontsize=8, color="#666666", va="center")
        return
    rows = [str(a) if a is not None else "other" for a in marks["artifact"]]
    artifacts = list(dict.fromkeys(rows))
    groups: list[tuple[int, list[Any]]] = []
    for row, name in zip(marks.itertuples(), rows, strict=True):
        y = artifacts.index(name)
        color = _ARTIFACT_COLORS.get(name, "#8C8C8C")
        if row.count > 1 and row.last > row.first:
            lane.plot([row.first, row.last], [y, y], color=color, lw=4, alpha=0.5,
                      solid_capstyle="butt")
        lane.plot([row.first], [y], marker="v", color=color, ms=7, ls="none")
        same_row = [g for g in groups if g[0] == y]
        if same_row and row.first - same_row[-1][1][0].first <= span * 0.04:
            same_row[-1][1].append(row)
        else:
            groups.append((y, [row]))
    last_x: dict[int, pd.Timestamp] = {}
    level: dict[int, int] = {}
    for y, members in groups:
        parts: dict[str, int] = {}
        for row in members:
            key = f"{row.kind} {row.version or ''}".strip()
            parts[key] = parts.get(key, 0) + int(row.count)
        label = ", ".join(f"{k} x{n:,}" if n > 1 else k for k, n in parts.items())
        first = members[0].first
        close = y in last_x and (first - last_x[y]) < span * 0.15
        level[y] = (level.get(y, 0) + 1) % 3 if close else 0
        last_x[y] = first
        color = _ARTIFACT_COLORS.get(artifacts[y], "#8C8C8C")
        lane.annotate(label if len(label) <= 40 else label[:39] + "…", (first, y),
                      xytext=(3, 3 + 8 * level[y]), textcoords="offset points", fontsize=7,
                      color=color, annotation_clip=False)
    lane.set_yticks(range(len(artifacts)), artifacts, fontsize=8)
    lane.set_ylim(-0.7, len(artifacts) - 0.3 + 0.25)


def score_distribution(result: Any) -> Figure | None:
    """Shares of scores per baseline-decile bin, baseline and incident side by side.

    Bars are placed by bin position (labels are the bins' edges with enough digits to tell
    them apart), never grouped by a rounded label; the shares of each window add to 1 and
    carry no error bars (they are counts, not estimates).
    """
    set_theme()
    import matplotlib.pyplot as plt

    bins = getattr(result, "score_bins", pd.DataFrame())
    if bins is None or bins.empty:
        return None
    base = bins.loc[bins["window"] == "baseline", "share"].to_numpy(dtype=float)
    inc = bins.loc[bins["window"] == "incident", "share"].to_numpy(dtype=float)
    if "upper" in bins:  # exact edges, when the diagnostic exposes them
        uppers = bins.loc[bins["window"] == "baseline", "upper"].to_numpy(dtype=float)
        labels = bin_labels([u for u in uppers if np.isfinite(u)], len(base))
    else:
        labels = _labels_from_rounded(bins.loc[bins["window"] == "baseline", "bin"].tolist())
    fig, ax = plt.subplots(figsize=(9, 3.8))
    x = np.arange(len(base))
    ax.bar(x - 0.2, base, width=0.4, color=WINDOW_COLORS["baseline"], label="baseline",
           gid="baseline")
    ax.bar(x + 0.2, inc, width=0.4, color=WINDOW_COLORS["incident"], label="incident",
           gid="incident")
    ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
    ax.set_xlabel("score bin (baseline deciles)")
    ax.set_ylabel("share of requests")
    psi = getattr(result, "score_psi", float("nan"))
    ax.set_title(f"Score distribution (PSI {fmt_number(psi, 3)})")
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def bin_labels(edges: list[float], count: int) -> list[str]:
    """Labels of the bins ``(-inf, e0], (e0, e1], ..., (e_last, inf)`` with as many decimals
    as it takes to tell neighbouring edges apart (at most 6)."""
    if not edges:
        return [f"bin {k + 1}" for k in range(count)]
    for decimals in range(2, 7):
        shown = [f"{e:.{decimals}f}" for e in edges]
        if len(set(shown)) == len(shown):
            break
    uppers = [f"<= {e}" for e in shown]
    labels = [uppers[0]] + [f"{shown[k - 1]}-{shown[k]}" for k in range(1, len(shown))]
    labels.append(f"> {shown[-1]}")
    return labels[:count] if len(labels) >= count else labels + [""] * (count - len(labels))


def recolor_outliers(ax: Axes) -> Axes:
    """Tick labels the diagnostic marked in the incident's red get the outlier colour, so an
    outlier is never confused with the incident window."""
    from matplotlib.colors import same_color

    for label in [*ax.get_xticklabels(), *ax.get_yticklabels()]:
        if same_color(label.get_color(), WINDOW_COLORS["incident"]):
            label.set_color(OUTLIER_COLOR)
    if "outliers in red" in ax.get_xlabel():
        ax.set_xlabel(ax.get_xlabel().replace("outliers in red", "outliers in bold orange"))
    return ax


def _labels_from_rounded(uppers: list[str]) -> list[str]:
    """``<= edge`` per bin from rounded upper-edge labels; a label that repeats (edges closer
    than the rounding) gets its bin number, so no two bins share a label."""
    labels = []
    for k, upper in enumerate(uppers):
        if str(upper) == "inf":
            labels.append(f"> {uppers[k - 1]}" if k else "all")
            continue
        labels.append(f"<= {upper}")
    counts = {label: labels.count(label) for label in labels}
    return [f"{label} (bin {k + 1})" if counts[label] > 1 else label
            for k, label in enumerate(labels)]


def pathway_scores(result: Classification) -> Figure:
    """Bar chart of the pathway probabilities."""
    set_theme()
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 2.4))
    result.plot(ax=ax)
    fig.tight_layout()
    return fig


def _as_utc(value: datetime) -> pd.Timestamp:
    return pd.Timestamp(value).tz_convert("UTC")
