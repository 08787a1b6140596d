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

__all__ = ["incident_timeline", "pathway_scores", "verdict_scores", "undecided_shares",
           "readable_accuracy", "score_distribution", "bin_labels", "burst_gap",
           "recolor_outliers", "mark_lone_points"]

_ARTIFACT_COLORS = {"model": "#DD8452", "pipeline": "#4C72B0", "client": "#8172B3",
                    "cache": "#937860", "infra": "#C44E52", "service": "#8C8C8C"}


def incident_timeline(result: Classification, events: pd.DataFrame, *,
                      dated: bool = True) -> Figure | None:
    """Latency, failures and model quality around the incident, with events and change points.

    The view runs from well before the onset (twice the incident's length, between 12 hours
    and 3 days) to the end of the incident; events are drawn in a lane of their own. A
    generative endpoint adds time to first token and the mean prompt length (the prompt mix);
    the accuracy panel merges time buckets until they hold enough labels for a line
    (:func:`readable_accuracy`).

    ``dated=False``: the report states no onset (a ``none`` verdict, or nothing dated one), so
    no onset line is drawn; the onset of such a verdict is only the window's start (varied
    tuning none s3 drew a red "estimated onset" line there).
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
    tokens = diagnosis.results.get("infra.token_latency")
    if _has_column(tokens, "ttft_p99_ms"):
        panels.append(("TTFT p99 (ms)", tokens.timeline, "ttft_p99_ms", "#937860", True))
    performance = diagnosis.results.get("model.performance")
    merged_width = None
    if performance is not None and not performance.timeline.empty:
        if "accuracy" in performance.timeline:
            accuracy, merged_width = readable_accuracy(performance, result, start, end)
            panels.append(("accuracy", accuracy, "accuracy", "#4C72B0", False))
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
    mix = diagnosis.results.get("data.prompt_mix")
    if _has_column(mix, "input_mean"):
        panels.append(("mean prompt tokens", mix.timeline, "input_mean", "#55A868", False))
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
    onset_key = "red line = estimated onset, " if dated else "no onset dated, "
    lane.set_title(f"Incident timeline (UTC): {onset_key}shaded = incident, "
                   "dotted = detected change points", fontsize=10, pad=22)
    if dated:
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
            if label == "accuracy" and merged_width is not None:
                ax.text(0.01, 0.95, f"buckets of {_width_text(merged_width)} (at least "
                        f"{MIN_ACCURACY_LABELS} labels each, drawn at their middles)",
                        transform=ax.transAxes,
                        fontsize=7, color="#666666", va="top", gid="bucket-width",
                        bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8})
        ax.axvspan(result.incident.start, result.incident.end, color=WINDOW_COLORS["incident"],
                   alpha=0.07)
        if dated:
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


#: Labels a merged accuracy bucket needs to be drawn (the diagnostic's own minimum per bucket).
MIN_ACCURACY_LABELS = 30
#: Share of the view's labelled buckets that must reach :data:`MIN_ACCURACY_LABELS` for the
#: accuracy line to read as a line rather than as scattered points.
READABLE_SHARE = 0.8
#: Bucket merges tried, fewest first (times the diagnostic's bucket).
MERGE_FACTORS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96)


def _has_column(result: Any, column: str) -> bool:
    """Whether a diagnostic result has a timeline with a value in ``column`` (a trace that
    logs no latency has a TTFT column of missing values: the Azure LLM trace)."""
    timeline = getattr(result, "timeline", None)
    if not isinstance(timeline, pd.DataFrame) or timeline.empty or column not in timeline:
        return False
    return bool(np.isfinite(pd.to_numeric(timeline[column], errors="coerce").to_numpy(
        dtype=float)).any())


def readable_accuracy(performance: Any, result: Any, start: pd.Timestamp,
                      end: pd.Timestamp) -> tuple[pd.DataFrame, pd.Timedelta | None]:
    """The accuracy timeline to draw over ``start``-``end``, and the merged bucket width
    (``None``: the diagnostic's own timeline, unmerged).

    ``model.performance`` keeps the buckets with at least :data:`MIN_ACCURACY_LABELS` labels
    (its ``timeline``); a sparsely labelled case keeps few or none, though it has labels
    enough for a coarser line: varied tuning none s3 (60,000 rows) had 1,194 incident labels
    over 16 days, about 8 per 2-hour bucket, and its timeline held one bucket. From the counts
    of every labelled bucket (``label_buckets``: binary tasks) this merges ``k`` consecutive
    buckets, aligned on the epoch as the diagnostic's are, for the fewest ``k`` of
    :data:`MERGE_FACTORS` at which :data:`READABLE_SHARE` of the view's labelled buckets hold
    :data:`MIN_ACCURACY_LABELS` labels and at least :data:`MIN_PANEL_POINTS` do; else the ``k``
    that keeps the most such buckets. The merged accuracy is the labels' (correct over
    labelled), never a mean of bucket accuracies; each merged bucket is placed at its middle.
    Without ``label_buckets`` (multiclass and
    regression results), or when the diagnostic's timeline already reads as a line, that
    timeline is returned as it is.
    """
    from toolkit.diagnose._case import choose_bucket

    timeline = performance.timeline
    counts = getattr(performance, "label_buckets", None)
    if not isinstance(counts, pd.DataFrame) or counts.empty or not {
            "bucket_start", "labelled", "correct"} <= set(counts.columns):
        return timeline, None
    span_start = min(pd.Timestamp(result.baseline.start), pd.Timestamp(result.incident.start))
    span_end = max(pd.Timestamp(result.baseline.end), pd.Timestamp(result.incident.end))
    seconds = max(1, round(choose_bucket(span_end - span_start).total_seconds()))
    times = pd.to_datetime(counts["bucket_start"], utc=True)
    # whole seconds since the epoch, whatever the frame's resolution (ns or us)
    epoch = (times - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    if (epoch % seconds).any():  # not the default grid (a bucket was passed): leave it
        return timeline, None
    inside = counts[(times >= start) & (times <= end)]
    epoch = epoch[inside.index]
    best: tuple[int, int, pd.DataFrame] | None = None
    for k in MERGE_FACTORS:
        key = (epoch // (k * seconds)) * (k * seconds)
        merged = inside.groupby(key.to_numpy())[["labelled", "correct"]].sum()
        kept = merged[merged["labelled"] >= MIN_ACCURACY_LABELS]
        if len(kept) >= MIN_PANEL_POINTS and len(kept) >= READABLE_SHARE * len(merged):
            best = (k, len(kept), kept)
            break
        if best is None or len(kept) > best[1]:
            best = (k, len(kept), kept)
    if best is None or best[0] == 1 or best[1] < MIN_PANEL_POINTS:
        return timeline, None
    k, _, kept = best
    frame = pd.DataFrame({
        # drawn at the middle of each merged bucket: at its start, a fall at a bucket's end
        # would read up to a whole (long) bucket early
        "bucket_start": pd.to_datetime(kept.index.to_numpy() + k * seconds // 2, unit="s",
                                       utc=True),
        "labelled": kept["labelled"].to_numpy(),
        "accuracy": (kept["correct"] / kept["labelled"]).to_numpy(dtype=float)})
    return frame, pd.Timedelta(seconds=k * seconds)


def _width_text(width: pd.Timedelta) -> str:
    """``16 h``, ``2 days``, ``45 min``: a bucket width."""
    minutes = width.total_seconds() / 60
    if minutes < 120:
        return f"{minutes:g} min"
    if minutes < 48 * 60:
        return f"{minutes / 60:g} h"
    return f"{minutes / 1440:g} days"


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


def verdict_scores(result: Classification, min_confidence: float) -> Figure:
    """Bar chart of what an undecided verdict (``none`` or ``undetermined``) weighed: the
    probability of no incident beside each pathway's, all of the same sum (they add to 1).

    :func:`pathway_scores` draws each pathway's probability *given* an incident (the bars
    add to 1 without the no-incident share), which reads as a ranking of a found cause; for a
    ``none`` verdict it drew infrastructure 0.30 ahead of three 0.23 (varied tuning none s3)
    when no incident was the likeliest at 0.54. Here the bars are the ones the verdict
    compared: ``none`` when no incident weighs at least as much as every pathway, else
    ``undetermined`` when no pathway reaches ``min_confidence`` (a dashed line) or leads the
    next by the rule table's margin.
    """
    set_theme()
    import matplotlib.pyplot as plt

    from toolkit.plotting import PATHWAY_COLORS

    shares = undecided_shares(result)
    names = list(shares)
    fig, ax = plt.subplots(figsize=(6, 2.7))
    ax.barh(names, [shares[n] for n in names],
            color=[PATHWAY_COLORS.get(n, "#8C8C8C") if n != "no incident" else "#8C8C8C"
                   for n in names])
    if result.verdict.pathway != "none":  # none is decided against the pathways' bars
        ax.axvline(min_confidence, color="#444444", lw=0.9, ls="--")
        ax.text(min_confidence + 0.01, -0.6, f"a pathway needs {min_confidence:g}",
                fontsize=8, color="#444444", va="bottom")
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel("probability (the five add to 1)")
    ax.set_title(f"Verdict {result.verdict.pathway}: no incident against each pathway",
                 pad=14)
    for k, name in enumerate(names):
        ax.text(min(shares[name] + 0.02, 0.9), k, f"{shares[name]:.2f}", va="center",
                fontsize=9)
    fig.tight_layout()
    return fig


def undecided_shares(result: Classification) -> dict[str, float]:
    """``no incident`` and each pathway's probability, adding to 1: the verdict's pathway
    scores are given an incident, so each is scaled by the probability of one (``1 -`` the
    ``none`` mode's)."""
    v = result.verdict
    p_none = float(v.mode_scores.get("none", 0.0))
    shares = {"no incident": p_none}
    shares.update({p: float(x) * (1.0 - p_none) for p, x in v.scores.items()})
    return shares


def _as_utc(value: datetime) -> pd.Timestamp:
    return pd.Timestamp(value).tz_convert("UTC")
