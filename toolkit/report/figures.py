"""Figures composed from several diagnostics (one theme: :mod:`toolkit.plotting`)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import pandas as pd

from toolkit.plotting import PATHWAY_COLORS, WINDOW_COLORS, set_theme

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from toolkit.classify import Classification

__all__ = ["incident_timeline", "pathway_scores"]

_ARTIFACT_COLORS = {"model": "#DD8452", "pipeline": "#4C72B0", "client": "#8172B3",
                    "cache": "#937860", "infra": "#C44E52", "service": "#8C8C8C"}


def incident_timeline(result: Classification, events: pd.DataFrame) -> Figure | None:
    """Latency, failures and model quality over time, with events and change points marked."""
    set_theme()
    import matplotlib.pyplot as plt

    diagnosis = result.diagnosis
    panels = []
    latency = diagnosis.results.get("infra.latency")
    if latency is not None and not latency.timeline.empty:
        panels.append(("latency p99 (ms)", latency.timeline, "p99_ms", "#C44E52", True))
        panels.append(("error + timeout rate", latency.timeline.assign(
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
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 1.9 * len(panels) + 0.6),
                             sharex=True, squeeze=False)
    start = pd.Timestamp(result.baseline.start)
    end = pd.Timestamp(result.incident.end)
    shown = events[(events["ts"] >= start) & (events["ts"] <= end)] if not events.empty \
        else events
    for ax, (label, frame, column, color, log) in zip(axes[:, 0], panels, strict=True):
        ax.plot(frame["bucket_start"], frame[column], color=color, lw=1.4)
        if log:
            ax.set_yscale("log")
        ax.set_ylabel(label, fontsize=9)
        ax.axvspan(result.incident.start, result.incident.end, color=WINDOW_COLORS["incident"],
                   alpha=0.07)
        ax.axvline(result.onset, color="#C44E52", lw=1.5, ls="-")
        for row in shown.itertuples():
            ax.axvline(row.ts, color=_ARTIFACT_COLORS.get(str(row.artifact), "#8C8C8C"),
                       lw=0.9, ls="--", alpha=0.8)
        if result.detected is not None:
            for change in result.detected.changes:
                ax.axvline(change.at, color="#CCB974", lw=0.8, ls=":")
    top = axes[0, 0]
    for row in shown.itertuples():
        top.annotate(f"{row.kind} {row.artifact or ''} {row.version or ''}".strip()[:28],
                     xy=(row.ts, 1.0), xycoords=("data", "axes fraction"), rotation=90,
                     fontsize=7, va="bottom", ha="center",
                     color=_ARTIFACT_COLORS.get(str(row.artifact), "#555555"))
    top.set_title("Incident timeline (UTC): red line = onset, dashed = events, dotted = "
                  "detected change points", fontsize=10, pad=38 if len(shown) else 6)
    axes[-1, 0].set_xlim(start, end)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def pathway_scores(result: Classification) -> Figure:
    """Bar chart of the pathway probabilities."""
    set_theme()
    import matplotlib.pyplot as plt

    scores = result.verdict.scores
    fig, ax = plt.subplots(figsize=(6, 2.4))
    names = list(scores)
    ax.barh(names, [scores[n] for n in names], color=[PATHWAY_COLORS[n] for n in names])
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel("probability")
    ax.set_title("Pathway scores")
    for k, name in enumerate(names):
        ax.text(min(scores[name] + 0.02, 0.9), k, f"{scores[name]:.2f}", va="center", fontsize=9)
    fig.tight_layout()
    return fig


def _as_utc(value: datetime) -> pd.Timestamp:
    return pd.Timestamp(value).tz_convert("UTC")
