"""Finding the incident window in the data when the user does not give one.

Recipe:

1. The case's span is cut into buckets; a provisional baseline is its first quarter.
2. The diagnostics' timelines over the whole span give one series per signal (latency p50/p99,
   error and timeout rates, accuracy, ECE, worst feature PSI, worst null rate, request volume,
   and the integration and infrastructure signals the diagnostics expose).
3. Each series is put on a robust z scale against the provisional baseline (median, MAD) and
   segmented with ruptures' PELT (l2 cost, penalty ``3 * log(n)``, minimum segment 2 buckets).
   A change point counts when the level after it differs from the baseline by at least 4 robust
   standard deviations and the change is *sustained*: at least 3 buckets, or through the end.
4. The onset is the change point with the most support: the sum of the strengths of all the
   signals that change within two buckets of it; ties go to the earliest.
5. The incident runs from the onset until every supporting signal is back within 4 robust
   standard deviations of its baseline (or the end of the data); the baseline is the period
   before the onset, at most 14 days, ending one bucket before it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from toolkit.types import Window

__all__ = ["DetectedWindows", "detect_windows", "SignalChange"]

MIN_EFFECT = 4.0
SUSTAIN = 3
MAX_BASELINE = timedelta(days=14)


@dataclass(frozen=True)
class SignalChange:
    """A sustained change of one signal."""

    signal: str
    at: datetime
    strength: float
    recovered: datetime | None


@dataclass(frozen=True)
class DetectedWindows:
    """Windows found in the data, with the change points that placed them."""

    baseline: Window
    incident: Window
    onset: datetime
    changes: tuple[SignalChange, ...]
    supporting: tuple[str, ...]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([c.__dict__ for c in self.changes])


def detect_windows(signals: pd.DataFrame, span: Window, bucket: timedelta) -> DetectedWindows | None:
    """Locate the incident in ``signals`` (``bucket_start``, ``signal``, ``value``).

    Returns ``None`` when no signal changes in a sustained way (nothing to investigate).
    """
    provisional_end = span.start + (span.end - span.start) / 4
    changes = []
    for name, part in signals.groupby("signal"):
        series = part.groupby("bucket_start")["value"].mean().sort_index()
        series = series[series.index >= pd.Timestamp(span.start)]
        change = _signal_change(str(name), series, provisional_end, bucket)
        if change is not None:
            changes.append(change)
    if not changes:
        return None
    best, support = None, -1.0
    for candidate in changes:
        near = [c for c in changes if abs(c.at - candidate.at) <= 2 * bucket]
        total = sum(c.strength for c in near)
        earliest = min(c.at for c in near)
        if total > support + 1e-9 or (abs(total - support) <= 1e-9 and best is not None and
                                      earliest < best[0]):
            best, support = (earliest, near), total
    onset, near = best
    recovered = [c.recovered for c in near]
    end = span.end if any(r is None for r in recovered) else max(recovered)
    end = max(end, onset + bucket)
    base_start = max(span.start, onset - MAX_BASELINE)
    base_end = onset - bucket
    if base_end <= base_start:
        base_end = onset
    return DetectedWindows(
        baseline=Window(base_start, base_end), incident=Window(onset, end), onset=onset,
        changes=tuple(sorted(changes, key=lambda c: c.at)),
        supporting=tuple(sorted({c.signal for c in near})),
    )


def _signal_change(name: str, series: pd.Series, provisional_end: datetime,
                   bucket: timedelta) -> SignalChange | None:
    values = series.to_numpy(dtype=float)
    times = series.index
    if len(values) < 8 or np.isnan(values).all():
        return None
    base = values[times < pd.Timestamp(provisional_end)]
    base = base[~np.isnan(base)]
    if len(base) < 4:
        return None
    centre = float(np.median(base))
    spread = 1.4826 * float(np.median(np.abs(base - centre)))
    spread = max(spread, float(np.std(base)) * 0.5, 1e-9 + abs(centre) * 0.02)
    z = (values - centre) / spread
    z = pd.Series(z).interpolate(limit_direction="both").to_numpy()
    breaks = _pelt(z)
    segments = list(zip([0, *breaks[:-1]], breaks, strict=True))
    for start, stop in segments:
        if start == 0:
            continue
        level = float(np.median(z[start:stop]))
        if abs(level) < MIN_EFFECT:
            continue
        length = stop - start
        sustained = length >= SUSTAIN or stop == len(z)
        if not sustained:
            continue
        recovered = None
        for later_start, later_stop in segments:
            if later_start >= stop and abs(float(np.median(z[later_start:later_stop]))) < \
                    MIN_EFFECT:
                recovered = times[later_start].to_pydatetime()
                break
        return SignalChange(name, times[start].to_pydatetime(), min(abs(level), 50.0),
                            recovered)
    return None


def _pelt(z: np.ndarray) -> list[int]:
    import ruptures

    penalty = 3.0 * math.log(max(len(z), 2))
    algo = ruptures.Pelt(model="l2", min_size=2, jump=1).fit(z.reshape(-1, 1))
    return algo.predict(pen=penalty)
