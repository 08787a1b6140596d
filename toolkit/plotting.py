"""One plotting theme for every figure the toolkit draws (seaborn, matplotlib).

Figures are drawn on demand: importing the toolkit does not import matplotlib.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["PATHWAY_COLORS", "SEVERITY_COLORS", "WINDOW_COLORS", "OUTLIER_COLOR", "set_theme",
           "axes", "polish", "plain_number"]

#: Colour of each causal pathway, used wherever a pathway is drawn.
PATHWAY_COLORS = {
    "data": "#4C72B0",
    "model": "#DD8452",
    "infrastructure": "#C44E52",
    "integration": "#8172B3",
}
SEVERITY_COLORS = {"info": "#8C8C8C", "low": "#55A868", "medium": "#CCB974", "high": "#C44E52"}
#: Baseline in grey-blue, incident in red, everywhere.
WINDOW_COLORS = {"baseline": "#4C72B0", "incident": "#C44E52"}
#: Outliers (hosts, versions that stand out): never the incident's red.
OUTLIER_COLOR = "#E08A00"

#: Axes with this gid keep their y limits (e.g. a lane of categorical rows).
FIXED_Y = "forensics-fixed-y"

_applied = False


def set_theme() -> None:
    """Apply the toolkit's seaborn theme (idempotent)."""
    global _applied
    if _applied:
        return
    import matplotlib

    if matplotlib.get_backend().lower() in ("", "agg") or not _has_display():
        matplotlib.use("Agg", force=False)
    import seaborn as sns

    sns.set_theme(
        context="notebook",
        style="whitegrid",
        palette="deep",
        rc={
            "figure.figsize": (9, 4),
            "figure.dpi": 100,
            "axes.titlesize": 12,
            "axes.titleweight": "bold",
            "axes.labelsize": 10,
            "legend.fontsize": 9,
            "legend.frameon": False,
            "axes.spines.top": False,
            "axes.spines.right": False,
        },
    )
    _applied = True


def axes(ax: Axes | None = None, **figure: Any) -> Axes:
    """Return ``ax``, or a new themed Axes when it is ``None``."""
    set_theme()
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, new = plt.subplots(**figure)
    return new


def plain_number(value: float, _position: object = None) -> str:
    """A tick label without scientific notation: ``200``, ``1,500``, ``0.05``."""
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.0f}" if float(value).is_integer() else f"{value:.3g}"
    return f"{value:.3g}"


def polish(figure: Any) -> Any:
    """Make every axes of ``figure`` readable, whichever diagnostic drew it.

    * log axes get plain tick labels (``200``, not ``2x10^2``), with intermediate labels only
      when the axis spans less than two decades;
    * time axes get an automatic date locator with concise labels, rotated so they never
      overlap;
    * a y axis whose data are all zero or positive starts at 0 (an all-zero rate is drawn on
      0..1, not on -0.04..+0.04);
    * text annotations of the same x position (within 1.5% of the axis) are merged into one,
      so event labels do not overlap;
    * categorical tick labels and legend entries show ``(missing)``, never ``None`` or
      ``nan``, and ``yes`` / ``no`` rather than ``True`` / ``False``.

    Returns ``figure``.
    """
    import matplotlib.dates as mdates

    figure.canvas.draw()  # tick labels exist only once drawn
    for ax in figure.axes:
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() == "log":
                _plain_log_axis(ax, axis)
        if isinstance(ax.xaxis.get_major_formatter(), (mdates.AutoDateFormatter,
                                                       mdates.DateFormatter,
                                                       mdates.ConciseDateFormatter)):
            # minticks 4, not 5: with 5, ranges between 4.5 and 5 days (beyond 9 ticks of
            # 12 h, below 5 daily ticks) fit no interval and matplotlib warns
            locator = mdates.AutoDateLocator(minticks=4, maxticks=10)
            ax.xaxis.set_major_locator(locator)
            ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
            for label in ax.get_xticklabels():
                label.set_rotation(30)
                label.set_horizontalalignment("right")
        if not ax.images and ax.yaxis.get_scale() == "linear" and \
                ax.get_gid() != FIXED_Y:
            _floor_at_zero(ax)
        if ax.get_gid() != FIXED_Y:
            _merge_annotations(ax)
        _missing_in_labels(ax)
    return figure


def _missing_in_labels(ax: Any) -> None:
    """Categorical tick labels never show ``None`` / ``nan`` (``client_version=None``)."""
    import re

    pattern = re.compile(r"\b(None|nan|NaN|NaT)\b")
    legend = ax.get_legend()
    if legend is not None:
        for text in legend.get_texts():
            shown = {"True": "yes", "False": "no"}.get(text.get_text(), text.get_text())
            text.set_text(pattern.sub("(missing)", shown))
    for axis in (ax.xaxis, ax.yaxis):
        labels = axis.get_ticklabels()
        texts = [t.get_text() for t in labels]
        if any(pattern.search(t) for t in texts):
            axis.set_ticks(axis.get_ticklocs(), [pattern.sub("(missing)", t) for t in texts])


def _plain_log_axis(ax: Any, axis: Any) -> None:
    import matplotlib.ticker as mticker

    low, high = (ax.get_ylim() if axis is ax.yaxis else ax.get_xlim())
    decades = np.log10(max(high, 1e-12)) - np.log10(max(low, 1e-12))
    axis.set_major_formatter(mticker.FuncFormatter(plain_number))
    if decades < 2:
        axis.set_minor_locator(mticker.LogLocator(subs=(2.0, 3.0, 5.0)))
        axis.set_minor_formatter(mticker.FuncFormatter(plain_number))
    else:
        axis.set_minor_formatter(mticker.NullFormatter())


def _y_data(ax: Any) -> np.ndarray:
    values = []
    for line in ax.get_lines():
        data = np.asarray(line.get_ydata(), dtype=object)
        if line.get_linestyle() in ("None", "") and line.get_marker() in ("None", "", None):
            continue
        values.append(np.asarray(pd.to_numeric(pd.Series(data), errors="coerce"), float))
    for collection in ax.collections:
        if type(collection).__name__ == "PathCollection":
            offsets = np.asarray(collection.get_offsets(), dtype=float)
            if offsets.size:
                values.append(offsets[:, 1])
    if not values:
        return np.array([])
    out = np.concatenate(values)
    return out[np.isfinite(out)]


def _floor_at_zero(ax: Any) -> None:
    data = _y_data(ax)
    if not len(data) or data.min() < 0:
        return
    low, high = ax.get_ylim()
    if data.max() == 0:
        ax.set_ylim(0, 1)
    elif low < 0:
        ax.set_ylim(0, high)


def _merge_annotations(ax: Any) -> None:
    from matplotlib.text import Annotation

    notes = [t for t in ax.texts if isinstance(t, Annotation)]
    if len(notes) < 2:
        return
    low, high = ax.get_xlim()
    span = (high - low) or 1.0

    def x_of(note: Any) -> float:
        try:
            return float(ax.convert_xunits(note.xy[0]))
        except (TypeError, ValueError):
            return float("nan")

    def row_of(note: Any) -> str:
        return repr(note.xy[1])

    placed = sorted(((x_of(n), n) for n in notes),
                    key=lambda p: (row_of(p[1]), np.isnan(p[0]), p[0]))
    groups: list[list[tuple[float, Any]]] = []
    for x, note in placed:
        if groups and not np.isnan(x) and row_of(note) == row_of(groups[-1][0][1]) and \
                x - groups[-1][0][0] <= 0.015 * span:
            groups[-1].append((x, note))
        else:
            groups.append([(x, note)])
    for group in groups:
        if len(group) < 2:
            continue
        labels: dict[str, int] = {}
        for _, note in group:
            labels[note.get_text()] = labels.get(note.get_text(), 0) + 1
        joiner = "\n" if abs(group[0][1].get_rotation() - 90) < 1 else " / "
        text = joiner.join(f"{k} x{n}" if n > 1 else k for k, n in labels.items())
        group[0][1].set_text(text)
        for _, note in group[1:]:
            note.remove()


def _has_display() -> bool:
    import os

    return bool(os.environ.get("DISPLAY") or os.environ.get("MPLBACKEND"))
