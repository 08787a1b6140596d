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

__all__ = ["refine_onset", "best_split", "best_segment", "coarse_onset", "gradual_onset",
           "ramp_fit"]


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


def best_segment(values: np.ndarray, weights: np.ndarray | None = None, *,
                 direction: int = 0, min_start: int = 0) -> tuple[int, int, float]:
    """The contiguous segment whose (weighted) mean departs most from the rest.

    The "epidemic" change model: the series is normal, changes at ``start`` and may return at
    ``end``. Every segment ``[start, end)`` with ``start >= min_start`` is scored by the
    t-statistic of its mean against the rest; ``direction`` +1 keeps segments above the rest,
    -1 below, 0 either. Returns ``(start, end, t)``; ``t`` is 0 when nothing is found.

    Examples
    --------
    >>> best_segment(np.array([0, 0, 0, 5, 5, 5, 0, 0.0]))[:2]
    (3, 6)
    """
    x = np.asarray(values, dtype=float)
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=float)
    w = np.where(np.isnan(x), 0.0, w)
    x = np.where(np.isnan(x), 0.0, x)
    n = len(x)
    if n < 3 or w.sum() <= 0:
        return 0, n, 0.0
    cw = np.concatenate([[0.0], np.cumsum(w)])
    cwx = np.concatenate([[0.0], np.cumsum(w * x)])
    cwxx = np.concatenate([[0.0], np.cumsum(w * x * x)])
    total_w, total_wx, total_wxx = cw[-1], cwx[-1], cwxx[-1]
    variance = max(total_wxx / total_w - (total_wx / total_w) ** 2, 1e-12)
    starts = np.arange(max(min_start, 1), n)
    best = (0, n, 0.0)
    for start in starts:
        ends = np.arange(start + 1, n + 1)
        sw = cw[ends] - cw[start]
        swx = cwx[ends] - cwx[start]
        rw = total_w - sw
        ok = (sw > 0) & (rw > 0)
        if not ok.any():
            continue
        inside = np.where(ok, swx / np.where(sw > 0, sw, 1), 0.0)
        outside = np.where(ok, (total_wx - swx) / np.where(rw > 0, rw, 1), 0.0)
        diff = inside - outside
        if direction:
            diff = np.where(np.sign(diff) == direction, diff, 0.0)
        # effective counts: weights are counts per bucket
        t = np.abs(diff) / np.sqrt(variance * (1 / np.where(sw > 0, sw, 1) +
                                               1 / np.where(rw > 0, rw, 1)))
        t = np.where(ok, t, 0.0)
        k = int(np.argmax(t))
        if t[k] > best[2]:
            best = (int(start), int(ends[k]), float(t[k]))
    return best


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

    The single change point of the per-row indicator (least squares, as :func:`best_split`) is
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
