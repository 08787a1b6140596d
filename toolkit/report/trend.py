"""Week by week: accuracy, ECE, p99 latency, failure rate and drift over the last N weeks.

The weekly report's trend. Requests, p99, failures, accuracy and the calibration bins are
aggregated per ISO week in one DuckDB query over the case (week number by epoch arithmetic,
so no time-zone library is needed); ECE is computed from those bins in Python. Drift is the
share of features the ``data.drift`` diagnostic finds drifted in each week against the week
before. The SQL is written for DuckDB and runs through ``case.con``: on Spark it is
transpiled (``quantile_cont`` to the exact ``percentile``, ``epoch`` to ``unix_micros`` / 1e6)
and gives the same measures (tests/spark/test_spark_reports.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from toolkit.plotting import WINDOW_COLORS, set_theme
from toolkit.types import Window

if TYPE_CHECKING:  # pragma: no cover
    import duckdb
    from matplotlib.figure import Figure

    from toolkit.diagnose._case import CaseView

__all__ = ["ECE_BINS", "TREND_MEASURES", "weekly_measures", "trend_figure"]

#: Equal-width confidence bins of the trend's ECE (NannyML's and netcal's default).
ECE_BINS = 10
#: Columns of :func:`weekly_measures` drawn by :func:`trend_figure`, with their titles.
TREND_MEASURES = {"accuracy": "accuracy", "ece": f"ECE ({ECE_BINS} bins)",
                  "p99_ms": "p99 latency (ms)", "failure_rate": "errors + timeouts",
                  "drift_share": "share of features drifted"}
_WEEK = 7 * 24 * 3600


def weekly_measures(con: duckdb.DuckDBPyConnection, case: CaseView, last: Window, *,
                    weeks: int = 6, drift: dict[datetime, float] | None = None
                    ) -> pd.DataFrame:
    """One row per ISO week, the ``weeks`` weeks ending with ``last``.

    Parameters
    ----------
    con, case
        The case.
    last
        The report's week.
    weeks
        How many weeks to show.
    drift
        Drift share per week start, when already known (the report's own week); the other
        weeks' drift is measured against the week before them.

    Returns
    -------
    pandas.DataFrame
        ``week`` (e.g. ``2026-W07``), ``start``, ``requests``, ``p99_ms``, ``failure_rate``,
        ``labelled``, ``accuracy``, ``ece``, ``drift_share``: missing values are NaN. Weeks
        before the case's first request are left out.
    """
    first = pd.Timestamp(last.start) - pd.Timedelta(days=7 * (weeks - 1))
    starts = [first + pd.Timedelta(days=7 * k) for k in range(weeks)]
    frame = pd.DataFrame({"start": starts})
    frame["week"] = [s.strftime("%G-W%V") for s in starts]
    for column in ("requests", "p99_ms", "failure_rate", "labelled", "accuracy", "ece",
                   "drift_share"):
        frame[column] = np.nan
    if not case.has("requests"):
        return frame
    params = {"first": first.to_pydatetime(), "end": pd.Timestamp(last.end).to_pydatetime()}
    columns = case.columns["requests"]
    week = _week_expr("ts")
    parts = ["count(*) AS requests"]
    if "latency_ms" in columns:
        parts.append("quantile_cont(latency_ms, 0.99) AS p99_ms")
    if "status" in columns:
        parts.append("avg(CASE WHEN status IS NULL THEN NULL WHEN status IN ('error', "
                     "'timeout') THEN 1.0 ELSE 0.0 END) AS failure_rate")
    base = con.execute(
        f"SELECT {week} AS k, {', '.join(parts)} FROM requests WHERE ts >= $first AND "
        f"ts < $end GROUP BY k", params).df().set_index("k")
    for column in base.columns:
        frame.loc[base.index.astype(int), column] = base[column].to_numpy(dtype=float)
    if case.has("labels") and "prediction" in columns:
        _quality(con, case, frame, _week_expr("r.ts"), params)
    for k, start in enumerate(starts):
        known = (drift or {}).get(start.to_pydatetime())
        if known is not None:
            frame.loc[k, "drift_share"] = known
        elif k and frame.loc[k, "requests"] > 0 and frame.loc[k - 1, "requests"] > 0:
            frame.loc[k, "drift_share"] = _drift_share(con, case, start)
    frame["requests"] = frame["requests"].fillna(0).astype(int)
    first_data = int(np.argmax(frame["requests"].to_numpy() > 0)) \
        if frame["requests"].any() else len(frame) - 1
    return frame.iloc[first_data:].reset_index(drop=True)  # no empty weeks before the data


def _week_expr(column: str) -> str:
    """Index of the week (0 = the first shown) of ``column``, by epoch arithmetic."""
    return f"CAST(floor((epoch({column}) - epoch($first)) / {_WEEK}) AS INTEGER)"


def _quality(con: duckdb.DuckDBPyConnection, case: CaseView, frame: pd.DataFrame, week: str,
             params: dict[str, Any]) -> None:
    """Accuracy and ECE per week from labelled requests (bins aggregated in DuckDB)."""
    has_score = "score" in case.columns["requests"]
    score = "r.score" if has_score else "NULL"
    bins = con.execute(
        f"SELECT {week} AS k, "
        f"least(CAST(floor({score} * {ECE_BINS}) AS INTEGER), {ECE_BINS - 1}) AS b, "
        "count(*) AS n, avg(CASE WHEN CAST(r.prediction AS VARCHAR) = CAST(l.label AS VARCHAR) "
        f"THEN 1.0 ELSE 0.0 END) AS acc, avg({score}) AS conf "
        "FROM requests r JOIN (SELECT request_id, any_value(label) AS label FROM labels "
        "GROUP BY request_id) l USING (request_id) "
        "WHERE r.ts >= $first AND r.ts < $end AND r.prediction IS NOT NULL "
        "GROUP BY k, b", params).df()
    if bins.empty:
        return
    for k, part in bins.groupby("k"):
        n = part["n"].to_numpy(dtype=float)
        frame.loc[int(k), "labelled"] = n.sum()
        frame.loc[int(k), "accuracy"] = float((part["acc"] * n).sum() / n.sum())
        scored = part.dropna(subset=["b", "conf"])
        if has_score and len(scored):
            m = scored["n"].to_numpy(dtype=float)
            gap = np.abs(scored["acc"].to_numpy(dtype=float) - scored["conf"].to_numpy(
                dtype=float))
            frame.loc[int(k), "ece"] = float((gap * m).sum() / m.sum())


def _drift_share(con: duckdb.DuckDBPyConnection, case: CaseView, start: pd.Timestamp) -> float:
    from toolkit.diagnose import run_diagnostics

    current = Window(start.to_pydatetime(), (start + pd.Timedelta(days=7)).to_pydatetime())
    previous = Window(current.start - timedelta(days=7), current.start)
    result = run_diagnostics(con, previous, current, case=case, ids=["data.drift"]).results.get(
        "data.drift")
    if result is None or result.table.empty:
        return float("nan")
    return len(result.drifted) / len(result.table)


def trend_figure(frame: pd.DataFrame) -> Figure | None:
    """Small multiples, one panel per measure, the report's week highlighted."""
    shown = [c for c in TREND_MEASURES if c in frame and frame[c].notna().any()]
    if not shown:
        return None
    set_theme()
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(shown), figsize=(2.6 * len(shown), 2.6), squeeze=False)
    x = np.arange(len(frame))
    for ax, column in zip(axes[0], shown, strict=True):
        values = frame[column].to_numpy(dtype=float)
        ax.plot(x, values, marker="o", color=WINDOW_COLORS["baseline"], lw=1.4, gid=column)
        ax.plot(x[-1:], values[-1:], marker="o", color=WINDOW_COLORS["incident"], ls="none")
        ax.set_title(TREND_MEASURES[column], fontsize=10)
        ax.set_xticks(x, [w.split("-")[1] for w in frame["week"]], fontsize=8)
        low = np.nanmin(values)
        if low >= 0:
            ax.set_ylim(bottom=0, top=max(np.nanmax(values) * 1.15, 1e-3))
        if column in ("accuracy", "drift_share"):
            ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
        elif column == "failure_rate":
            digits = 2 if np.nanmax(values) < 0.01 else 1
            ax.yaxis.set_major_formatter(plt.FuncFormatter(
                lambda v, _, d=digits: f"{v:.{d}%}"))
    weeks = f"{len(frame)} week" + ("s" if len(frame) != 1 else "")
    fig.suptitle(f"Last {weeks} ({frame['week'].iloc[0]} to "
                 f"{frame['week'].iloc[-1]}); this week in red", fontsize=10)
    fig.tight_layout()
    return fig
