"""A fixed CPU workload, timed next to each benchmark run, to show the machine's state.

A shared 2-core machine changes speed from minute to minute: this gauge took 0.037 s and
0.100 s a few minutes apart, and ``data.drift`` on the 1M bench case 0.70 s and 1.62 s with it.
Printing the gauge beside the timings says whether two figures were taken in the same state;
the ratios against Evidently are measured in alternating runs for the same reason.
"""

from __future__ import annotations

import time

__all__ = ["speed_gauge"]


def speed_gauge(iterations: int = 1_000_000) -> float:
    """Seconds for ``iterations`` additions in a Python loop (the best of three)."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        total = 0
        for k in range(iterations):
            total += k
        best = min(best, time.perf_counter() - start)
    return best
