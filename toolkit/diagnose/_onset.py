"""Locating when a signal changed, finer than the timeline's buckets.

A diagnostic's timeline has coarse buckets (often an hour). When a finding fires, its onset is
refined on the raw rows around the coarse onset: a per-row indicator (1 when the request looks
like the incident, e.g. an error, a value beyond the baseline median, a stale cache hit) is
averaged per fine bucket in the engine, and the split of that short series into two segments
with the smallest squared error (a single change point, the l2 cost of ruptures' ``Dynp`` with
one break) gives the onset.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import ibis
import numpy as np
import pandas as pd

from toolkit.diagnose._case import within
from toolkit.diagnose._engine import Recorder, bucket_expr
from toolkit.types import Window

__all__ = ["refine_onset", "best_split"]


def best_split(values: np.ndarray, weights: np.ndarray | None = None) -> tuple[int, float]:
    """Index of the single change point of ``values`` (l2 cost) and its t-like strength.

    Returns ``(k, strength)`` where the change happens before ``values[k]``; strength is the
    difference of the segment means over the pooled standard error (0 when no split helps).

    Examples
    --------
    >>> best_split(np.array([0, 0, 0, 1, 1, 1.0]))[0]
    3
    """
    x = np.asarray(values, dtype=float)
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=float)
    ok = ~np.isnan(x) & (w > 0)
    x, w = x[ok], w[ok]
    index = np.flatnonzero(ok)
    n = len(x)
    if n < 4:
        return (int(index[0]) if n else 0), 0.0
    cw, cwx, cwxx = np.cumsum(w), np.cumsum(w * x), np.cumsum(w * x * x)
    best_k, best_cost = 0, np.inf
    total_w, total_wx, total_wxx = cw[-1], cwx[-1], cwxx[-1]
    for k in range(1, n):
        lw, lx, lxx = cw[k - 1], cwx[k - 1], cwxx[k - 1]
        rw, rx, rxx = total_w - lw, total_wx - lx, total_wxx - lxx
        cost = (lxx - lx * lx / lw) + (rxx - rx * rx / rw)
        if cost < best_cost:
            best_k, best_cost = k, cost
    left, right = x[:best_k], x[best_k:]
    spread = np.sqrt(max(best_cost, 0.0) / max(n - 2, 1))
    strength = abs(right.mean() - left.mean()) / (spread * np.sqrt(1 / len(left) + 1 /
                                                                  len(right)) + 1e-12)
    return int(index[best_k]), float(strength)


def refine_onset(
    record: Recorder,
    table: ibis.Table,
    indicator: ibis.NumericValue,
    coarse: datetime,
    *,
    around: timedelta,
    limits: Window | None = None,
    fine: timedelta | None = None,
) -> datetime:
    """Refine ``coarse`` with the mean of ``indicator`` per fine bucket within ``around`` of it.

    ``table`` must have ``ts`` and ``indicator`` must be an expression on it. Returns
    ``coarse`` unchanged when the fine series is too short or shows no clear step.
    """
    start = pd.Timestamp(coarse) - around
    end = pd.Timestamp(coarse) + around
    if limits is not None:
        start = max(start, pd.Timestamp(limits.start))
        end = min(end, pd.Timestamp(limits.end))
    if end <= start:
        return coarse
    span = end - start
    fine = fine or max(timedelta(minutes=1), (span / 96).to_pytimedelta())
    window = Window(start, end)
    rows = table.filter(within(table.ts, window)).mutate(_indicator=indicator.cast("float64"))
    series = record(rows.group_by(bucket_start=bucket_expr(rows.ts, fine)).aggregate(
        value=rows._indicator.mean(), n=rows.count())).sort_values("bucket_start",
                                                                   ignore_index=True)
    if len(series) < 6:
        return coarse
    k, strength = best_split(series["value"].to_numpy(), series["n"].to_numpy())
    if strength < 3.0:
        return coarse
    return series["bucket_start"].iloc[k].to_pydatetime()
