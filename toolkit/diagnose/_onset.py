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
from toolkit.diagnose._engine import Recorder, bucket_expr
from toolkit.types import Window

__all__ = ["refine_onset", "coarse_onset", "gradual_onset", "ramp_fit", "ramp_start",
           "change_start", "broken_line", "ramp_began", "rollout_began", "fit_rollout"]


def broken_line(x: np.ndarray, y: np.ndarray, candidates: np.ndarray,
                weights: np.ndarray | None = None, *, free: bool = False
                ) -> tuple[float, float, float, float]:
    """Weighted least-squares fit of a continuous broken line, flat until ``t0`` then rising:
    ``y = a + b * max(0, x - t0)`` with ``b > 0``, over the breakpoints ``candidates``. With
    ``free``, the first piece has a slope of its own: ``y = a + c x + b * max(0, x - t0)``,
    ``b`` the change of slope at ``t0``. A fall is the rise of ``-y`` (same residuals).

    Returns ``(t0, b, rss, rss_line)``: the best breakpoint among those where the line rises
    after it, ``b``, its weighted residual sum of squares, and that of one weighted straight
    line over all points. ``(nan, 0, inf, rss_line)`` when no breakpoint gives a rise.

    Memory leaks (a host's climb before its first OOM kill, unweighted) and slow falls of
    accuracy (:func:`ramp_began`, weighted by labels per bucket) are both dated by it.

    Examples
    --------
    >>> x = np.arange(10.0)
    >>> t0, b, rss, line = broken_line(x, np.maximum(0.0, x - 4.0), np.arange(0, 9, 0.5))
    >>> float(t0), round(float(b), 6), round(float(rss), 9), line > 1
    (4.0, 1.0, 0.0, True)
    >>> t0, b, rss, line = broken_line(x, -np.maximum(0.0, x - 4.0), np.arange(0, 9, 0.5))
    >>> bool(np.isnan(t0)), b
    (True, 0.0)
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    candidates = np.asarray(candidates, dtype=float)
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=float)
    total = w.sum()
    if len(x) < 3 or total <= 0 or len(candidates) == 0:
        return float("nan"), 0.0, float("inf"), 0.0
    xm, ym = (w * x).sum() / total, (w * y).sum() / total
    xc, yc = x - xm, y - ym
    sxx_line = (w * xc ** 2).sum()
    syy = (w * yc ** 2).sum()
    line = max(float(syy - ((w * xc * yc).sum() ** 2 / sxx_line if sxx_line > 0 else 0.0)), 0.0)
    hinge = np.maximum(0.0, x[None, :] - candidates[:, None])
    if free:
        # per candidate, the weighted normal equations of [1, x, hinge] (3 x 3, solved at once)
        design = np.stack([np.ones_like(hinge), np.broadcast_to(x, hinge.shape), hinge], axis=2)
        gram = np.einsum("tni,n,tnj->tij", design, w, design)
        rhs = np.einsum("tni,n->ti", design, w * y)
        ok = np.abs(np.linalg.det(gram)) > 1e-9
        coef = np.zeros_like(rhs)
        coef[ok] = np.linalg.solve(gram[ok], rhs[ok][..., None])[..., 0]
        rss = (w[None, :] * (np.einsum("tni,ti->tn", design, coef) - y[None, :]) ** 2).sum(axis=1)
        slope = np.where(ok, coef[:, 2], 0.0)
    else:
        # per candidate, the weighted simple regression of y on the hinge (intercept a, slope b)
        hc = hinge - ((w[None, :] * hinge).sum(axis=1, keepdims=True) / total)
        sxx = (w[None, :] * hc ** 2).sum(axis=1)
        sxy = (w[None, :] * hc * yc[None, :]).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = np.where(sxx > 0, sxy / sxx, 0.0)
        rss = syy - slope * sxy
    if not (slope > 0).any():
        return float("nan"), 0.0, float("inf"), line
    best = int(np.argmin(np.where(slope > 0, rss, np.inf)))
    return float(candidates[best]), float(slope[best]), float(max(rss[best], 0.0)), line


#: A ramp's start (:func:`ramp_began`) must beat one straight line by an F-test at this level.
RAMP_BREAK_P = 1e-3


def ramp_began(timeline: pd.DataFrame, column: str, *, weights: str = "labelled",
               p: float = RAMP_BREAK_P) -> datetime | None:
    """Where a slow fall of ``column`` began over the whole ``timeline`` (baseline included),
    to within a fraction of a bucket, or ``None``.

    :func:`ramp_fit` places the fall (flat, falling from bucket ``k1`` to ``k2``, flat) on the
    buckets; it must span more than two of them (a gradual change, not a step). A continuous
    broken line (:func:`broken_line` on the negated values, weighted by ``weights``, each
    bucket's value at its centre) fitted to the buckets up to ``k2`` then dates the start between the buckets around
    ``k1``, when it beats one straight line by an F-test (p < ``p``). A detected window opens
    where a slow model-quality fall is already deep, and its baseline holds the ramp's start
    (varied tuning concept_drift s4: 43 hours before the window).
    """
    from scipy import stats

    if timeline is None or timeline.empty or column not in timeline or weights not in timeline:
        return None
    t = timeline.sort_values("bucket_start")
    t = t[t[column].notna() & (t[weights] > 0)]
    if len(t) < 8:
        return None
    times = pd.to_datetime(t["bucket_start"], utc=True).reset_index(drop=True)
    width = times.diff().min()
    if pd.isna(width) or width <= pd.Timedelta(0):
        return None
    y = t[column].to_numpy(float)
    w = t[weights].to_numpy(float)
    k1, k2, r2 = ramp_fit(y, w, min_start=1, direction=-1)
    if r2 <= 0 or k2 - k1 <= 2:
        return None
    hours = width / pd.Timedelta(hours=1)
    x = ((times - times.iloc[0]) / pd.Timedelta(hours=1)).to_numpy(float) + hours / 2
    keep = np.arange(len(x)) <= min(k2, len(x) - 1)
    if keep.sum() < 6:
        return None
    lo = x[max(k1 - 2, 0)]
    hi = x[min(k1 + 2, len(x) - 1)]
    t0, b, rss, line = broken_line(x[keep], -y[keep], np.arange(lo, hi, hours / 12), w[keep])
    n = int(keep.sum())
    if not np.isfinite(t0) or b <= 0 or rss <= 0 or line <= rss:
        return None
    f = (line - rss) / (rss / (n - 3))
    if stats.f.sf(f, 1, n - 3) >= p:
        return None
    return (times.iloc[0] + pd.Timedelta(hours=t0)).floor("us").to_pydatetime()


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
        r2 = _explained(r, x, w, direction)
        j = int(np.argmax(r2))
        if r2[j] > best[2]:
            best = (k1, int(k2[j]), float(r2[j]))
    return best


def ramp_start(timeline: pd.DataFrame, column: str, *, width: timedelta, after: datetime,
               weights: str | None = None, direction: int = 0,
               length: float | None = None) -> tuple[datetime, datetime, float] | None:
    """When a change of ``column`` began and completed, to a fraction of a bucket.

    Each bucket's value is the mean over the bucket, so it sits at the bucket's centre: a ramp
    ``a + c * clip((t - s) / (e - s), 0, 1)`` is fitted on the centres' times (weighted least
    squares, ``weights`` per bucket, e.g. its row count, so that a bucket of three rows is
    little evidence), first with ``s`` and ``e`` on bucket boundaries (:func:`ramp_fit`'s
    search), then to a tenth of a bucket around them. ``s`` is where the series leaves its
    earlier level, not where it crosses a threshold: a slow drift is dated at its start, a
    step inside the bucket it happened in. ``s`` is at most half a bucket before ``after``
    (the baseline's end). ``direction`` +1 keeps rises, -1 falls, 0 either.

    The column should be linear in the share of changed rows (a mean, a share): on a convex
    measure such as PSI a ramp's start is fitted late. ``length`` (in buckets) fixes
    ``e - s``: 1 fits a step inside a bucket (a bucket's mean over a step at ``tau`` is the
    one-bucket ramp from ``tau - 1/2`` to ``tau + 1/2`` read at the bucket's centre).

    Returns ``(start, end, r2)`` with ``r2`` the share of the (weighted) variance explained,
    or ``None`` without four buckets or any change.

    Examples
    --------
    >>> t = pd.date_range("2026-01-01", periods=12, freq="h", tz="UTC")
    >>> x = np.clip((np.arange(12) + 0.5 - 4.25) / 5, 0, 1)
    >>> tl = pd.DataFrame({"bucket_start": t, "x": x})
    >>> s, e, _ = ramp_start(tl, "x", width=timedelta(hours=1), after=t[2].to_pydatetime())
    >>> s.strftime("%H:%M"), e.strftime("%H:%M")  # the ramp ran from 04:15 to 09:15
    ('04:11', '09:18')
    """
    if timeline is None or timeline.empty or column not in timeline:
        return None
    t = timeline[timeline[column].notna()].sort_values("bucket_start")
    if weights:
        t = t[t[weights] > 0]
    if len(t) < 4:
        return None
    starts = pd.to_datetime(t["bucket_start"], utc=True)
    origin = starts.iloc[0]
    step = pd.Timedelta(width)
    pos = ((starts - origin) / step).to_numpy(float) + 0.5  # bucket centres, in buckets
    x = t[column].to_numpy(float)
    w = np.ones_like(x) if not weights else t[weights].to_numpy(float)
    lowest = max((pd.Timestamp(after) - origin) / step - 0.5, 0.0)
    total = w.sum()
    mean = (w * x).sum() / total
    var_y = (w * (x - mean) ** 2).sum()
    if var_y <= 0:
        return None

    def r2(s: np.ndarray, e: np.ndarray) -> np.ndarray:
        """Share of variance explained per candidate pair (rows of ``s``, ``e``)."""
        r = np.clip((pos[None, :] - s[:, None]) / np.maximum(e - s, 1e-9)[:, None], 0.0, 1.0)
        return _explained(r, x, w, direction)

    last = float(np.ceil(pos[-1]))
    edges = np.unique(np.r_[lowest, np.arange(np.ceil(lowest), last + 1.0)])
    s_grid, e_grid = np.meshgrid(edges, edges, indexing="ij")
    if length is None:
        keep = e_grid > s_grid
        s0, e0 = s_grid[keep], e_grid[keep]
    else:
        s0 = np.r_[edges, edges + 0.5]
        e0 = s0 + length
    fit = r2(s0, e0)
    best = int(np.argmax(fit))
    if fit[best] <= 0:
        return None
    fine = np.arange(-1.0, 1.0001, 0.1)
    s_f, e_f = np.meshgrid(s0[best] + fine, e0[best] + fine, indexing="ij")
    s_f, e_f = s_f.ravel(), e_f.ravel()
    if length is not None:
        s_f = np.unique(s_f)
        e_f = s_f + length
    ok = (e_f > s_f + 0.05) & (s_f >= lowest)
    s_f, e_f = s_f[ok], e_f[ok]
    fit_f = r2(s_f, e_f)
    j = int(np.argmax(fit_f))
    s, e, r = (s_f[j], e_f[j], fit_f[j]) if fit_f[j] > fit[best] else (
        s0[best], e0[best], fit[best])
    return ((origin + s * step).to_pydatetime(), (origin + e * step).to_pydatetime(), float(r))


def _explained(r: np.ndarray, x: np.ndarray, w: np.ndarray, direction: int) -> np.ndarray:
    """Share of the weighted variance of ``x`` that each row of ``r`` (a ramp regressor per
    candidate) explains in a one-regressor weighted least squares fit; 0 where the fitted
    change goes against ``direction`` (+1 rises, -1 falls, 0 either)."""
    total = w.sum()
    mean = (w * x).sum() / total
    var_y = (w * (x - mean) ** 2).sum()
    r_mean = (r * w).sum(axis=1) / total
    dr = r - r_mean[:, None]
    cov = (dr * (x - mean) * w).sum(axis=1)
    var_r = (dr * dr * w).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(var_r > 0, cov * cov / (var_r * var_y), 0.0)
    return np.where(np.sign(cov) == direction, out, 0.0) if direction else out


#: A ramp is preferred to a step when it explains the buckets better by this F statistic
#: (one extra parameter; about p < 0.05).
RAMP_F = 4.0


def change_start(timeline: pd.DataFrame, column: str, *, width: timedelta, after: datetime,
                 weights: str | None = None, direction: int = 0,
                 gradual_buckets: float = 2.0) -> tuple[datetime, bool] | None:
    """Where a change of ``column`` began, and whether it is gradual.

    A step (:func:`ramp_start` with ``length=1``) and a free ramp are both fitted; the
    ramp wins only when it lasts more than ``gradual_buckets`` buckets and explains the
    buckets better than the step by an F statistic of :data:`RAMP_F` (on noisy sparse buckets a
    long ramp otherwise fits the noise before a step and dates it a day early).

    A step's time is the middle of its one-bucket ramp (see :func:`ramp_start`).

    Returns ``(start, gradual)`` or ``None`` without a change.

    Examples
    --------
    >>> t = pd.date_range("2026-01-01", periods=24, freq="h", tz="UTC")
    >>> step = pd.DataFrame({"bucket_start": t, "x": (np.arange(24) >= 10).astype(float)})
    >>> s, gradual = change_start(step, "x", width=timedelta(hours=1), after=t[2])
    >>> s.strftime("%H:%M"), gradual
    ('10:00', False)
    """
    step = ramp_start(timeline, column, width=width, after=after, weights=weights,
                      direction=direction, length=1.0)
    ramp = ramp_start(timeline, column, width=width, after=after, weights=weights,
                      direction=direction)
    if ramp is None:
        return None
    if step is None:
        return ramp[0], True
    m = int(timeline[column].notna().sum())
    longer = pd.Timestamp(ramp[1]) - pd.Timestamp(ramp[0]) > gradual_buckets * pd.Timedelta(width)
    f = (ramp[2] - step[2]) / max(1.0 - ramp[2], 1e-12) * max(m - 4, 1)
    if longer and f >= RAMP_F:
        return ramp[0], True
    # a bucket averages a step at ``tau`` inside it into a ramp of one bucket centred on tau
    tau = step[0] + (step[1] - step[0]) / 2
    return _first_observed(timeline, column, weights, width, tau), False


def _first_observed(timeline: pd.DataFrame, column: str, weights: str | None,
                    width: timedelta, when: datetime) -> datetime:
    """``when`` if a bucket with data holds it, else the start of the first such bucket after.

    Between two buckets with data (the runs of a batch job, a sparse log) a step fits equally
    well anywhere in the empty stretch; the data show the change first in the next bucket
    that has rows, so the onset is not placed where nothing was observed.
    """
    t = timeline[timeline[column].notna()]
    if weights:
        t = t[t[weights] > 0]
    starts = pd.to_datetime(t["bucket_start"], utc=True).sort_values()
    moment = pd.Timestamp(when)
    step = pd.Timedelta(width)
    if ((starts <= moment) & (moment < starts + step)).any():
        return when
    later = starts[starts > moment]
    return later.iloc[0].to_pydatetime() if len(later) else when


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
    midway: bool = False,
) -> datetime:
    """Refine ``coarse`` to the exact row where ``indicator`` steps, within ``around`` of it.

    The single change point of the per-row indicator (least squares, two constant segments) is
    found in the engine from running sums over the rows ordered by time, so no bucketing blurs
    it. ``table`` must have ``ts`` and ``indicator`` must be an expression on it. Returns
    ``coarse`` unchanged when there are too few rows or no clear step (t below
    ``min_strength``). ``fine`` is accepted for compatibility and ignored.

    The change happened between the last row of the first segment and the first row of the
    second. By default the onset is the latter (the first request that shows it); with
    ``midway`` it is the middle of that gap, which halves the worst error where the log is
    sparse: a request log sampled 1 in 46 leaves 20-80 minutes between logged requests
    (varied tuning unit_change s5: the last unchanged request 25 minutes before the truth,
    the first changed one 52 minutes after it).
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
        last_ts=rows.ts,
    )
    margin = ibis.greatest(steps.n * 0.02, 20)
    candidates = steps.filter((steps.k >= margin) & (steps.k <= steps.n - margin))
    gain = candidates.s * candidates.s / candidates.k + (candidates.total - candidates.s) * (
        candidates.total - candidates.s) / (candidates.n - candidates.k)
    best = record(candidates.mutate(gain=gain).order_by(ibis.desc("gain")).limit(1).select(
        "next_ts", "last_ts", "k", "n", "s", "total", "total2", "gain"))
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
    first = pd.Timestamp(row["next_ts"]).tz_convert("UTC")
    if midway and pd.notna(row["last_ts"]):
        first = first - (first - pd.Timestamp(row["last_ts"]).tz_convert("UTC")) / 2
    return first.floor("us").to_pydatetime()


#: A ramp's start (:func:`rollout_began`) must beat the plain step by an F-test at this level.
ROLLOUT_P = 1e-3
#: How far from the step :func:`rollout_began` looks (a rollout of up to two hours is dated by
#: its middle, at most an hour after its start), and the grain of its per-bucket sums.
ROLLOUT_REACH = timedelta(hours=4)
ROLLOUT_GRAIN = timedelta(minutes=2)


def rollout_began(record: Recorder, table: ibis.Table, indicator: ibis.NumericValue,
                  step: datetime, *, limits: Window | None = None,
                  reach: timedelta = ROLLOUT_REACH, grain: timedelta = ROLLOUT_GRAIN,
                  p: float = ROLLOUT_P) -> datetime | None:
    """Where a change that :func:`refine_onset` dated at ``step`` began, when it ramped in.

    A change rolled out over an hour or two (an upstream release reaching its hosts one by
    one) raises the per-row ``indicator`` linearly, and the single least-squares step lands
    near the middle of the ramp: varied tuning unit_change s9, s10 and s11 (rollouts of 120,
    85 and 69 minutes) were dated 33-48 minutes late. Here the rows within ``reach`` of
    ``step`` are summed per ``grain`` in the engine (rows, sum and sum of squares of the
    indicator), and a continuous ramp (flat, a linear rise from ``s`` to ``e``, flat;
    :func:`fit_rollout`) is fitted to them by least squares over the rows, with ``s`` no later
    than ``step``. Its start is returned only when the ramp beats the best plain step on the
    same sums by an F-test (one extra parameter, p < ``p``) and is earlier than ``step``; a
    clean step stays where it is (``None``).
    """
    from scipy import stats

    step_ts = pd.Timestamp(step)
    start, end = step_ts - pd.Timedelta(reach), step_ts + pd.Timedelta(reach)
    if limits is not None:
        start = max(start, pd.Timestamp(limits.start))
        end = min(end, pd.Timestamp(limits.end))
    if end <= start:
        return None
    rows = table.filter(within(table.ts, Window(start, end))).select(
        ts=table.ts, x=indicator.cast("float64")).filter(ibis._.x.notnull())
    per = record(rows.group_by(bucket_start=bucket_expr(rows.ts, grain)).aggregate(
        n=rows.x.count(), s=rows.x.sum(), q=(rows.x * rows.x).sum()))
    if len(per) < 6:
        return None
    starts = pd.to_datetime(per["bucket_start"], utc=True)
    origin, width = starts.min(), pd.Timedelta(grain)
    pos = ((starts - origin) / width).to_numpy(float) + 0.5
    fit = fit_rollout(pos, per["n"].to_numpy(float), per["s"].to_numpy(float),
                      per["q"].to_numpy(float), before=(step_ts - origin) / width)
    if fit is None:
        return None
    s, _, rss, rss_step, rows_n = fit
    if rows_n <= 4 or rss <= 0 or rss >= rss_step:
        return None
    f = (rss_step - rss) / (rss / (rows_n - 4))
    began = origin + s * width
    if stats.f.sf(f, 1, rows_n - 4) >= p or began >= step_ts:
        return None
    return began.floor("us").to_pydatetime()


def fit_rollout(pos: np.ndarray, n: np.ndarray, s1: np.ndarray, s2: np.ndarray, *,
                before: float, min_length: float = 2.0
                ) -> tuple[float, float, float, float, float] | None:
    """Least-squares fits of a step and of a continuous ramp to per-row values given only
    their sums per bucket.

    ``pos`` are the buckets' centres (in buckets), ``n`` their rows, ``s1`` and ``s2`` the sums
    of the values and of their squares. The model holds each row at its bucket's centre: a
    step at a bucket edge, or a ramp ``a + c * clip((t - s) / (e - s), 0, 1)`` with ``s`` and
    ``e`` on bucket edges, ``e - s >= min_length`` and ``s <= before``, rising the same way
    as the best step. The residual sum of squares over the rows follows from the sums
    (``sum x^2 - (sum x)^2 / N - cov^2 / var`` of the one-regressor fit).

    Returns ``(s, e, rss_ramp, rss_step, N)`` or ``None`` without a fitted ramp.

    Examples
    --------
    >>> pos = np.arange(12) + 0.5
    >>> x = np.clip((pos - 4) / 4, 0, 1)  # one row per bucket, a ramp from 4 to 8
    >>> s, e, rss, rss_step, rows = fit_rollout(pos, np.ones(12), x, x * x, before=6.0)
    >>> s, e, round(rss, 12), rss_step > 0.1, rows
    (4.0, 8.0, 0.0, True, 12.0)
    """
    pos, n, s1, s2 = (np.asarray(a, dtype=float) for a in (pos, n, s1, s2))
    if len(pos) < 4 or n.sum() <= 0:
        return None
    edges = np.arange(np.floor(pos.min()), np.ceil(pos.max()) + 1.0)
    step_rss, step_cov = _rss_from_sums((pos[None, :] >= edges[:, None]).astype(float),
                                        n, s1, s2)
    j = int(np.argmin(step_rss))
    sign = np.sign(step_cov[j])
    s_grid, e_grid = np.meshgrid(edges, edges, indexing="ij")
    keep = (e_grid - s_grid >= min_length) & (s_grid <= before)
    s0, e0 = s_grid[keep], e_grid[keep]
    best = (np.inf, np.nan, np.nan)
    for lo in range(0, len(s0), 4096):  # about 4096 x buckets floats at a time
        s, e = s0[lo:lo + 4096], e0[lo:lo + 4096]
        r = np.clip((pos[None, :] - s[:, None]) / (e - s)[:, None], 0.0, 1.0)
        rss, cov = _rss_from_sums(r, n, s1, s2)
        rss = np.where(np.sign(cov) == sign, rss, np.inf)
        k = int(np.argmin(rss))
        if rss[k] < best[0]:
            best = (float(rss[k]), float(s[k]), float(e[k]))
    if not np.isfinite(best[0]):
        return None
    return best[1], best[2], max(best[0], 0.0), float(max(step_rss[j], 0.0)), float(n.sum())


def _rss_from_sums(r: np.ndarray, n: np.ndarray, s1: np.ndarray, s2: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``r`` (a regressor's value per bucket), the residual sum of squares over
    the rows of ``x ~ a + c r`` and the covariance's sign-carrying numerator."""
    total, sx = n.sum(), s1.sum()
    nr, sr, nrr = r @ n, r @ s1, (r * r) @ n
    cov = sr - sx * nr / total
    var = nrr - nr * nr / total
    with np.errstate(divide="ignore", invalid="ignore"):
        explained = np.where(var > 1e-12, cov * cov / var, 0.0)
    return s2.sum() - sx * sx / total - explained, cov
