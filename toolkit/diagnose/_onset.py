"""Locating when a signal changed, finer than the timeline's buckets.

A diagnostic's timeline has coarse buckets (often an hour). When a finding fires, its onset is
refined on the raw rows around the coarse onset: a per-row indicator (1 when the request looks
like the incident, e.g. an error, a value beyond the baseline median, a stale cache hit) is
ordered by time in the engine, and the split into two segments with the smallest squared error
(a single change point, the l2 cost of ruptures' ``Dynp`` with one break) gives the onset, to
the request.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import ibis
import numpy as np
import pandas as pd

from toolkit.diagnose._case import within
from toolkit.diagnose._engine import Recorder
from toolkit.types import Window

__all__ = ["refine_onset", "coarse_onset", "gradual_onset", "ramp_fit"]


def ramp_fit(values: np.ndarray, weights: np.ndarray | None = None, *, min_start: int = 1,
             direction: int = 0) -> tuple[int, int, float]:
    """Fit a level change that starts at ``k1`` and completes at ``k2`` (a ramp; a step when
    ``k2 = k1 + 1``): ``y = a + c * clip((t - k1) / (k2 - k1), 0, 1)``.

    Every pair ``k1 < k2`` with ``k1 >= min_start`` is tried (weighted least squares has a
    closed form for one regressor). ``direction`` +1 keeps rises, -1 falls, 0 either.
    Returns ``(k1, k2, r2)``, the start, the end and the share of variance explained.

    Examples
    --------
    >>> ramp_fit(np.array([0, 0, 0, 1, 2, 3, 4, 4, 4.0]))[:2]
    (2, 6)
    """
    x = np.asarray(values, dtype=float)
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=float)
    w = np.where(np.isnan(x), 0.0, w)
    x = np.where(np.isnan(x), 0.0, x)
    n = len(x)
    total = w.sum()
    if n < 4 or total <= 0:
        return 0, n, 0.0
    mean = (w * x).sum() / total
    var_y = (w * (x - mean) ** 2).sum()
    if var_y <= 0:
        return 0, n, 0.0
    t = np.arange(n, dtype=float)
    best = (0, n, 0.0)
    for k1 in range(max(min_start, 0), n - 1):
        k2 = np.arange(k1 + 1, n + 1, dtype=float)
        r = np.clip((t[None, :] - k1) / (k2[:, None] - k1), 0.0, 1.0)
        r_mean = (r * w).sum(axis=1) / total
        dr = r - r_mean[:, None]
        cov = (dr * (x - mean) * w).sum(axis=1)
        var_r = (dr * dr * w).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            r2 = np.where(var_r > 0, cov * cov / (var_r * var_y), 0.0)
            if direction:
                r2 = np.where(np.sign(cov) == direction, r2, 0.0)
        j = int(np.argmax(r2))
        if r2[j] > best[2]:
            best = (k1, int(k2[j]), float(r2[j]))
    return best


def coarse_onset(timeline: pd.DataFrame, column: str, *, after: datetime,
                 weights: str | None = None, direction: int = 0) -> datetime | None:
    """When ``column`` started to change, from the bucket before ``after`` on.

    The change is fitted as a ramp from ``k1`` to ``k2`` (:func:`ramp_fit`; a step is a ramp
    of one bucket), so a gradual change is dated at its start, not mid-way."""
    fitted = _ramp(timeline, column, after=after, weights=weights, direction=direction)
    return None if fitted is None else fitted[0]


def gradual_onset(timeline: pd.DataFrame, column: str, *, after: datetime,
                  weights: str | None = None) -> datetime | None:
    """The start of the change when it is a ramp over more than two buckets (else None)."""
    fitted = _ramp(timeline, column, after=after, weights=weights)
    if fitted is None or fitted[2] <= 2:
        return None
    return fitted[0]


def _ramp(timeline: pd.DataFrame, column: str, *, after: datetime, weights: str | None,
          direction: int = 0) -> tuple[datetime, datetime, int] | None:
    if timeline is None or timeline.empty or column not in timeline:
        return None
    t = timeline.sort_values("bucket_start")
    t = t[t[column].notna()]
    if len(t) < 4:
        return None
    times = pd.to_datetime(t["bucket_start"], utc=True).reset_index(drop=True)
    first = max(int((times < pd.Timestamp(after)).sum()) - 1, 0)
    k1, k2, r2 = ramp_fit(t[column].to_numpy(float),
                          t[weights].to_numpy(float) if weights else None,
                          min_start=first, direction=direction)
    if r2 <= 0:
        return None
    end = times.iloc[min(k2, len(times) - 1)].to_pydatetime()
    return times.iloc[k1].to_pydatetime(), end, k2 - k1


def refine_onset(
    record: Recorder,
    table: ibis.Table,
    indicator: ibis.NumericValue,
    coarse: datetime,
    *,
    around: timedelta,
    limits: Window | None = None,
    fine: timedelta | None = None,
    min_strength: float = 3.0,
) -> datetime:
    """Refine ``coarse`` to the exact row where ``indicator`` steps, within ``around`` of it.

    The single change point of the per-row indicator (least squares, two constant segments) is
    found in the engine from running sums over the rows ordered by time, so no bucketing blurs
    it. ``table`` must have ``ts`` and ``indicator`` must be an expression on it. Returns
    ``coarse`` unchanged when there are too few rows or no clear step (t below
    ``min_strength``). ``fine`` is accepted for compatibility and ignored.
    """
    start = pd.Timestamp(coarse) - around
    end = pd.Timestamp(coarse) + around
    if limits is not None:
        start = max(start, pd.Timestamp(limits.start))
        end = min(end, pd.Timestamp(limits.end))
    if end <= start:
        return coarse
    window = Window(start, end)
    rows = table.filter(within(table.ts, window)).select(
        ts=table.ts, x=indicator.cast("float64")).filter(ibis._.x.notnull())
    ordered = ibis.window(order_by=[rows.ts])
    running = ibis.cumulative_window(order_by=[rows.ts])
    steps = rows.mutate(
        k=ibis.row_number().over(ordered) + 1,
        s=rows.x.sum().over(running),
        n=rows.x.count().over(ibis.window()),
        total=rows.x.sum().over(ibis.window()),
        total2=(rows.x * rows.x).sum().over(ibis.window()),
        next_ts=rows.ts.lead().over(ordered),
    )
    margin = ibis.greatest(steps.n * 0.02, 20)
    candidates = steps.filter((steps.k >= margin) & (steps.k <= steps.n - margin))
    gain = candidates.s * candidates.s / candidates.k + (candidates.total - candidates.s) * (
        candidates.total - candidates.s) / (candidates.n - candidates.k)
    best = record(candidates.mutate(gain=gain).order_by(ibis.desc("gain")).limit(1).select(
        "next_ts", "k", "n", "s", "total", "total2", "gain"))
    if best.empty or best["next_ts"].isna().iloc[0]:
        return coarse
    row = best.iloc[0]
    k, n = float(row["k"]), float(row["n"])
    left, right = row["s"] / k, (row["total"] - row["s"]) / (n - k)
    sse = max(float(row["total2"]) - float(row["gain"]), 0.0)
    spread = np.sqrt(sse / max(n - 2, 1))
    strength = abs(right - left) / (spread * np.sqrt(1 / k + 1 / (n - k)) + 1e-12)
    if strength < min_strength:
        return coarse
    return pd.Timestamp(row["next_ts"]).tz_convert("UTC").to_pydatetime()
