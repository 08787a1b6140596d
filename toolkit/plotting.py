"""One plotting theme for every figure the toolkit draws (seaborn, matplotlib).

Figures are drawn on demand: importing the toolkit does not import matplotlib.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["PATHWAY_COLORS", "SEVERITY_COLORS", "WINDOW_COLORS", "set_theme", "axes"]

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


def _has_display() -> bool:
    import os

    return bool(os.environ.get("DISPLAY") or os.environ.get("MPLBACKEND"))
