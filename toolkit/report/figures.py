"""Figures composed from several diagnostics (one theme: :mod:`toolkit.plotting`)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import pandas as pd

from toolkit.plotting import WINDOW_COLORS, set_theme

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from toolkit.classify import Classification

__all__ = ["incident_timeline", "pathway_scores"]

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
        panels.append(("accuracy", performance.timeline, "accuracy", "#4C72B0", False))
    drift = diagnosis.results.get("data.drift")
    if drift is not None and not drift.timeline.empty:
        worst = drift.timeline.groupby("bucket_start", as_index=False)["psi"].max()
        panels.append(("largest feature PSI", worst, "psi", "#55A868", False))
    if not panels:
        return None
    shown = events[(events["ts"] >= start) & (events["ts"] <= end)] if not events.empty \
        else events
    fig, axes = plt.subplots(len(panels) + 1, 1, figsize=(11, 1.7 * len(panels) + 1.6),
                             sharex=True, gridspec_kw={"height_ratios": [0.9] +
                                                       [1.0] * len(panels)})
    lane = axes[0]
    artifacts = list(dict.fromkeys(str(a) for a in shown["artifact"])) if len(shown) else []
    for row in shown.itertuples():
        y = artifacts.index(str(row.artifact))
        color = _ARTIFACT_COLORS.get(str(row.artifact), "#8C8C8C")
        lane.plot([row.ts], [y], marker="v", color=color, ms=7)
        label = f"{row.kind} {row.version or ''}".strip()
        lane.annotate(label[:22], (row.ts, y), xytext=(3, 4), textcoords="offset points",
                      fontsize=7, color=color, rotation=20)
    lane.set_yticks(range(len(artifacts)), artifacts or [""], fontsize=8)
    lane.set_ylim(-0.7, max(len(artifacts) - 0.3, 0.7))
    lane.set_title("Incident timeline (UTC): red line = estimated onset, shaded = incident, "
                   "dotted = detected change points", fontsize=10, pad=22)
    lane.grid(False)
    lane.axvline(onset, color="#C44E52", lw=1.5)
    for ax, (label, frame, column, color, log) in zip(axes[1:], panels, strict=True):
        view = frame[(frame["bucket_start"] >= start) & (frame["bucket_start"] <= end)]
        ax.plot(view["bucket_start"], view[column], color=color, lw=1.4)
        if log and (view[column] > 0).all() and len(view):
            ax.set_yscale("log")
        ax.set_ylabel(label, fontsize=9)
        ax.axvspan(result.incident.start, result.incident.end, color=WINDOW_COLORS["incident"],
                   alpha=0.07)
        ax.axvline(onset, color="#C44E52", lw=1.5)
        for row in shown.itertuples():
            ax.axvline(row.ts, color=_ARTIFACT_COLORS.get(str(row.artifact), "#8C8C8C"),
                       lw=0.8, ls="--", alpha=0.6)
        if result.detected is not None:
            for change in result.detected.changes:
                if start <= pd.Timestamp(change.at) <= end:
                    ax.axvline(change.at, color="#CCB974", lw=0.9, ls=":")
    axes[-1].set_xlim(start, end)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


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
