"""Server-side latency of a healthy replica, as a function of its load.

``latency = L0 * max(0.6, 1 + 1.2 (n - c) / C) * exp(sigma * z)``, with ``n`` requests in flight,
``c`` the concurrency a typical request meets (the average concurrency weighted by traffic,
``(1 + a^2 / 2)`` times it for a diurnal amplitude ``a``) and ``C`` the capacity, so ``L0`` is
the median latency of healthy traffic. A small share of requests get a Pareto tail (GC pauses,
slow downstream lookups).

Examples
--------
>>> import numpy as np
>>> from toolkit.simulate.serving import draw
>>> p = draw(np.random.default_rng(0))
>>> typical = p.concurrency * (1 + p.traffic_amplitude**2 / 2)
>>> ms = healthy(p, np.full(3, typical), np.zeros(3), np.ones(3), np.zeros(3))
>>> bool(np.allclose(ms, p.latency_ms))
True
"""

from __future__ import annotations

import numpy as np

from toolkit.simulate.effects import Saturation
from toolkit.simulate.serving import Platform

__all__ = ["healthy", "saturated"]


def healthy(
    platform: Platform,
    inflight: np.ndarray,
    z: np.ndarray,
    u_tail: np.ndarray,
    pareto: np.ndarray,
) -> np.ndarray:
    """Latency (ms) of requests served with ``inflight`` others on the replica."""
    typical = platform.concurrency * (1.0 + platform.traffic_amplitude**2 / 2.0)
    load = np.maximum(1.0 + 1.2 * (inflight - typical) / platform.capacity, 0.6)
    ms = platform.latency_ms * load * np.exp(platform.latency_sigma * z)
    return np.where(u_tail < platform.tail_share, ms * (1.0 + 3.0 * pareto), ms)


def saturated(s: Saturation, inflight: np.ndarray, ms: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Memory pressure near and above the knee: the last 20% below it degrade quadratically
    (up to 4x); above it the replica thrashes (median ``s.latency_ms``)."""
    near = np.clip((inflight - 0.8 * s.knee) / (0.2 * s.knee), 0.0, 1.0)
    ms = ms * (1.0 + 3.0 * near**2)
    return np.where(inflight >= s.knee, s.latency_ms * np.exp(0.25 * z), ms)
