"""Report figures for multiclass and regression endpoints (DESIGN 3a, issue 24).

* **Multiclass, confusion change**: a heatmap of how each true class's rows moved between the
  windows (incident share minus baseline share per cell of the row-normalised confusion
  matrix), so "which classes moved where" reads at a glance: a red off-diagonal cell is a class
  now predicted as another, a blue diagonal cell a class the model now gets right less often.
* **Multiclass, reliability per class**: one small reliability diagram per class (its
  probability in ``scores`` against how often the label is that class, baseline and incident,
  on the calibration diagnostic's ``class_bins``), titled with the class's ECE in each window:
  a quantised or temperature-broken release shows as the incident's curve leaving the diagonal
  for some classes only.
* **Regression, residuals**: the distribution of ``label - prediction`` per window on the
  baseline's residual deciles (the calibration diagnostic's ``residual_bins``), beside the
  interval coverage over time that the calibration plot draws.

Both read the diagnostics' results; nothing is recomputed here.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from toolkit.plotting import WINDOW_COLORS, set_theme

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["confusion_change_figure", "class_reliability_figure", "residuals_figure",
           "MAX_CLASSES", "MAX_PANELS"]

#: Classes shown in the heatmap (the ones with the most rows); the rest are left out and said.
MAX_CLASSES = 12


def confusion_change_figure(performance: Any) -> Figure | None:
    """Heatmap of the confusion change (rows: true class, columns: predicted class; cell: the
    incident's share of the true class's rows minus the baseline's). ``None`` when the result
    has no confusion change (not multiclass, or no labels)."""
    change = getattr(performance, "confusion_change", pd.DataFrame())
    if change is None or change.empty:
        return None
    set_theme()
    import matplotlib.pyplot as plt
    import seaborn as sns

    sizes = (change.groupby("label")[["baseline_n", "incident_n"]].sum().sum(axis=1)
             .sort_values(ascending=False))
    classes = [str(c) for c in sizes.index[:MAX_CLASSES]]
    shown = change[change["label"].isin(classes) & change["prediction"].isin(classes)]
    grid = (shown.pivot_table(index="label", columns="prediction", values="change",
                              aggfunc="sum")
            .reindex(index=classes, columns=classes).fillna(0.0) * 100)
    limit = max(float(np.nanmax(np.abs(grid.to_numpy()))), 1.0)
    side = max(4.2, 1.2 + 0.6 * len(classes))
    fig, ax = plt.subplots(figsize=(side + 2.4, side))
    values = np.round(grid.to_numpy(), 0) + 0.0  # + 0.0: no "-0"
    annot = np.vectorize(lambda v: f"{v:+.0f}" if v else "0")(values) \
        if len(classes) <= 8 else False
    with warnings.catch_warnings():  # seaborn's own call of a deprecated matplotlib API
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        sns.heatmap(grid, ax=ax, cmap="RdBu_r", center=0, vmin=-limit, vmax=limit,
                    annot=annot, fmt="", linewidths=0.5,
                    cbar_kws={"label": "change (points of the true class's rows)"})
    ax.set_xticklabels(ax.get_xticklabels(), rotation=30, ha="right")
    ax.set_yticklabels(ax.get_yticklabels(), rotation=0)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    left_out = len(sizes) - len(classes)
    ax.set_title("Where each class's rows went: incident minus baseline"
                 + (f" ({left_out} smaller classes not shown)" if left_out > 0 else ""),
                 fontsize=10)
    fig.tight_layout()
    return fig


#: Classes given a reliability panel (those whose classwise ECE moved most); the rest are said.
MAX_PANELS = 9


def class_reliability_figure(calibration: Any) -> Figure | None:
    """Reliability diagram per class (``class_bins``: mean probability against the share of
    rows labelled the class, per bin and window), the classes whose ECE rose most first, each
    panel titled with its ECE baseline -> incident. ``None`` without per-class bins (not
    multiclass, no ``scores``, or no labels)."""
    bins = getattr(calibration, "class_bins", pd.DataFrame())
    per_class = getattr(calibration, "classwise", pd.DataFrame())
    if bins is None or bins.empty or per_class is None or per_class.empty:
        return None
    set_theme()
    import matplotlib.pyplot as plt

    ece = per_class.pivot_table(index="class", columns="window", values="ece")
    for window in ("baseline", "incident"):
        if window not in ece:
            ece[window] = np.nan
    order = (ece["incident"] - ece["baseline"]).fillna(-np.inf).sort_values(
        ascending=False, kind="stable").index
    classes = [str(c) for c in order[:MAX_PANELS]]
    columns = min(3, len(classes))
    rows = -(-len(classes) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.0 * rows),
                             squeeze=False, sharex=True, sharey=True)
    for ax, cls in zip(axes.ravel(), classes, strict=False):
        ax.plot([0, 1], [0, 1], ls="--", color="#8C8C8C", lw=1)
        for window in ("baseline", "incident"):
            part = bins[(bins["class"].astype(str) == cls) & (bins["window"] == window)
                        & (bins["n"] > 0)]
            ax.plot(part["confidence"], part["frequency"], marker="o", ms=3,
                    color=WINDOW_COLORS[window], label=window, gid=f"reliability:{cls}:{window}")
        b, i = ece.loc[cls, "baseline"], ece.loc[cls, "incident"]
        ax.set_title(f"{cls}: ECE {b:.3f} -> {i:.3f}", fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
    for ax in axes.ravel()[len(classes):]:
        ax.set_visible(False)
    for k, ax in enumerate(axes.ravel()[:len(classes)]):
        if k + columns >= len(classes):  # nothing drawn below it: its own x axis
            ax.xaxis.set_tick_params(labelbottom=True)
            ax.set_xlabel("mean probability of the class", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("share labelled the class", fontsize=8)
    axes[0, 0].legend(fontsize=7, loc="upper left")
    left_out = len(order) - len(classes)
    fig.suptitle("Reliability per class, classes whose ECE rose most first"
                 + (f" ({left_out} more classes not shown)" if left_out > 0 else ""),
                 fontsize=10)
    fig.tight_layout()
    return fig


def residuals_figure(calibration: Any) -> Figure | None:
    """Residual (label - prediction) shares per window on the baseline's residual deciles;
    ``None`` without residual bins (not regression, or no labels)."""
    bins = getattr(calibration, "residual_bins", pd.DataFrame())
    if bins is None or bins.empty:
        return None
    set_theme()
    import matplotlib.pyplot as plt

    uppers = list(dict.fromkeys(bins["upper"]))
    labels = [_bin_label(uppers, i) for i in range(len(uppers))]
    x = np.arange(len(uppers))
    fig, ax = plt.subplots(figsize=(8, 3.6))
    for offset, window in ((-0.2, "baseline"), (0.2, "incident")):
        part = bins[bins["window"] == window].set_index("upper")["n"].reindex(uppers).fillna(0)
        total = float(part.sum())
        shares = part.to_numpy(float) / total if total else part.to_numpy(float)
        ax.bar(x + offset, shares, width=0.4, color=WINDOW_COLORS[window], label=window,
               gid=f"residuals:{window}")
    ax.set_xticks(x, labels, rotation=35, ha="right", fontsize=7)
    ax.set_xlabel("residual (label - prediction), on the baseline's deciles")
    ax.set_ylabel("share of labelled requests")
    ax.set_title("Residual distribution: baseline vs incident", fontsize=10)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig


def _bin_label(uppers: list[float], i: int) -> str:
    from toolkit.report.format import fmt_number

    if i == 0:
        return f"<= {fmt_number(uppers[0])}"
    if np.isinf(uppers[i]):
        return f"> {fmt_number(uppers[i - 1])}"
    return f"{fmt_number(uppers[i - 1])} to {fmt_number(uppers[i])}"
