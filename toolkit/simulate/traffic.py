"""Traffic over time: diurnal and weekly seasonality, surges and bursts, and arrival times.

Time inside the simulator is float seconds since the case start. Requests arrive as an
inhomogeneous process: request ``k`` of ``N`` arrives at ``Lambda^-1((k + u_k) / N)`` where
``Lambda`` is the normalised cumulative intensity. Arrival times are therefore sorted, exact for
any chunk of ``k`` on its own (chunks need no state from each other), and follow the intensity.

Examples
--------
>>> import numpy as np
>>> t = Traffic.build(span_s=7 * 86400, amplitude=0.5, peak_hour=18.0)
>>> times = t.arrival_times(np.arange(1000), np.full(1000, 0.5), 1000)
>>> bool(np.all(np.diff(times) > 0)), float(times[0]) >= 0.0
(True, True)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Ramp", "Traffic", "GRID_S"]

#: Resolution of the intensity grid (seconds).
GRID_S = 60.0


@dataclass(frozen=True)
class Ramp:
    """A time profile in [0, 1]: 0 before ``start``, rising linearly to 1 at ``full``, 1 until
    ``end``, then falling linearly to 0 over ``fade`` seconds (at once when ``fade`` is 0).

    Examples
    --------
    >>> r = Ramp(10.0, 20.0, end=30.0, fade=10.0)
    >>> r.weight(np.array([5.0, 15.0, 25.0, 35.0, 45.0])).tolist()
    [0.0, 0.5, 1.0, 0.5, 0.0]
    """

    start: float
    full: float
    end: float = float("inf")
    fade: float = 0.0

    def weight(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=np.float64)
        if self.full > self.start:
            up = np.clip((t - self.start) / (self.full - self.start), 0.0, 1.0)
        else:
            up = (t >= self.start).astype(np.float64)
        if self.fade > 0:
            down = np.clip((self.end + self.fade - t) / self.fade, 0.0, 1.0)
        else:
            down = (t < self.end).astype(np.float64)
        return up * down

    def active(self, t: np.ndarray) -> np.ndarray:
        return self.weight(t) > 0


@dataclass(frozen=True)
class Traffic:
    """Request intensity over the case (relative units: 1 = average weekday hour).

    Attributes
    ----------
    span_s
        Length of the case.
    intensity
        Intensity per ``GRID_S`` cell.
    cumulative
        Normalised cumulative intensity at the cell edges (0 .. 1).
    """

    span_s: float
    intensity: np.ndarray = field(repr=False)
    cumulative: np.ndarray = field(repr=False)

    @classmethod
    def build(
        cls,
        *,
        span_s: float,
        amplitude: float,
        peak_hour: float,
        start_weekday: int = 0,
        start_hour: float = 0.0,
        weekend_factor: float = 1.0,
        modifiers: tuple[tuple[Ramp, float], ...] = (),
    ) -> Traffic:
        """Diurnal cosine (peak at ``peak_hour`` UTC), weekend factor, then each modifier
        multiplies the intensity by ``1 + (factor - 1) * ramp``. The case starts on weekday
        ``start_weekday`` (Monday = 0) at ``start_hour`` UTC."""
        cells = int(np.ceil(span_s / GRID_S))
        mid = (np.arange(cells) + 0.5) * GRID_S
        clock = mid + start_hour * 3600.0
        hour = (clock / 3600.0) % 24.0
        day = (start_weekday + (clock // 86400.0).astype(int)) % 7
        intensity = 1.0 + amplitude * np.cos(2 * np.pi * (hour - peak_hour) / 24.0)
        intensity = intensity * np.where(day >= 5, weekend_factor, 1.0)
        for ramp, factor in modifiers:
            intensity = intensity * (1.0 + (factor - 1.0) * ramp.weight(mid))
        intensity = np.maximum(intensity, 0.02)
        cumulative = np.concatenate([[0.0], np.cumsum(intensity)])
        cumulative /= cumulative[-1]
        return cls(span_s, intensity, cumulative)

    @property
    def edges(self) -> np.ndarray:
        edges = np.arange(len(self.intensity) + 1) * GRID_S
        edges[-1] = self.span_s
        return edges

    def arrival_times(self, k: np.ndarray, u: np.ndarray, total: int) -> np.ndarray:
        """Arrival time (seconds) of requests ``k`` (0-based) of ``total``; ``u`` in [0, 1)."""
        q = (k.astype(np.float64) + u) / float(total)
        return np.interp(q, self.cumulative, self.edges)

    def at(self, t: np.ndarray) -> np.ndarray:
        """Intensity at times ``t``."""
        idx = np.clip((np.asarray(t) // GRID_S).astype(np.int64), 0, len(self.intensity) - 1)
        return self.intensity[idx]

    def share(self, start: float, end: float) -> float:
        """Share of all requests that arrive in ``[start, end)``."""
        lo, hi = np.interp([start, end], self.edges, self.cumulative)
        return float(hi - lo)
