"""Where a memory leak's first climb began, not where it became visible (issue 22, K27).

Varied tuning memory_leak seeds 5, 6, 8, 9, 10 (no release logged) were dated 5 to 22 hours
late: the segment before a host's first OOM kill (or reset) is flat, then rises, so it does not
climb steadily as a whole, and the first segment that does starts a whole fill period after
the leak began. Seed 3's metrics start days after its first OOM kills.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.diagnose.conftest import make_case
from toolkit.diagnose._onset import broken_line
from toolkit.diagnose.infra.memory import memory_pressure

T0 = pd.Timestamp("2026-03-01T00:00Z")
H = pd.Timedelta(hours=1)
LIMIT = 16 * 2**30
BEGAN = T0 + 40 * H                      # the leak begins here
STAGGER = (0, 7, 14)                     # minutes, per host
CYCLE = (10.0, 10.0, 10.0)               # hours from the leak's start (or a kill) to the kill
BASELINE = (T0, T0 + 48 * H)
INCIDENT = (T0 + 48 * H, T0 + 84 * H)


def _metrics(*, seed: int = 0, first_sample: pd.Timestamp = T0, kill_events: bool = False):
    """Per-5-minute memory of three hosts: 45% of the limit with a daily swing of +-3% and
    noise, then from :data:`BEGAN` (plus a stagger) a climb to 96% over one cycle, a reset to
    45% (an unlogged OOM kill, or a logged one with ``kill_events``), and again."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range(first_sample, T0 + 84 * H, freq="5min", inclusive="left")
    hours = ((ts - T0) / H).to_numpy()
    frames, events = [], []
    for k, (lag, cycle) in enumerate(zip(STAGGER, CYCLE, strict=True)):
        host = f"pod-{k}"
        start = (BEGAN - T0) / H + lag / 60.0
        base = 0.45 + 0.03 * np.sin(2 * np.pi * hours / 24) + rng.normal(0, 0.004, len(ts))
        since = hours - start
        phase = np.where(since >= 0, np.mod(since, cycle), -1.0)
        share = base + np.where(phase >= 0, 0.51 * phase / cycle, 0.0)
        frames.append(pd.DataFrame({"ts": ts, "host": host, "name": "memory_used_bytes",
                                    "value": share * LIMIT}))
        frames.append(pd.DataFrame({"ts": ts, "host": host, "name": "memory_limit_bytes",
                                    "value": float(LIMIT)}))
        kill = start + cycle
        while kill < 84:
            t = T0 + pd.Timedelta(hours=kill)
            events += [(t, "oom_kill", host), (t + pd.Timedelta(seconds=40), "restart", host)]
            kill += cycle
    metrics = pd.concat(frames, ignore_index=True)
    tables = {"metrics": metrics}
    if kill_events:
        tables["events"] = pd.DataFrame(events, columns=["ts", "kind", "host"])
    return tables


def _leak(result):
    return next(f for f in result.findings() if f.id == "infrastructure.memory_leak")


def test_broken_line_matches_a_least_squares_fit_of_each_breakpoint():
    rng = np.random.default_rng(3)
    x = np.arange(0.0, 30.0)
    y = 2.0 + 0.8 * np.maximum(0.0, x - 17.3) + rng.normal(0, 0.05, len(x))
    grid = np.arange(0.0, 28.0, 0.1)
    t0, slope, rss, line = broken_line(x, y, grid)
    # independent: lstsq of [1, max(0, x - t)] for every breakpoint, one polyfit line
    fits = []
    for t in grid:
        design = np.column_stack([np.ones_like(x), np.maximum(0.0, x - t)])
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        fits.append((float(((design @ coef - y) ** 2).sum()), t, coef[1]))
    best_rss, best_t, best_slope = min(f for f in fits if f[2] > 0)
    assert t0 == pytest.approx(best_t)
    assert slope == pytest.approx(best_slope)
    assert rss == pytest.approx(best_rss)
    assert line == pytest.approx(float(((np.polyval(np.polyfit(x, y, 1), x) - y) ** 2).sum()))
    assert abs(t0 - 17.3) < 0.5


def test_a_leak_without_a_release_is_dated_where_its_first_climb_began():
    result = memory_pressure(make_case(**_metrics()), BASELINE, INCIDENT)
    leak = _leak(result)
    began = pd.Timestamp(leak.evidence["climb_began"])
    # the median host began 7 minutes after BEGAN; the visible onset is the first reset's
    assert abs((began - (BEGAN + pd.Timedelta(minutes=7))) / pd.Timedelta(minutes=1)) <= 20
    assert pd.Timestamp(leak.onset) >= BEGAN + 8 * H


def test_metrics_that_start_after_the_first_kills_date_it_one_cycle_before_the_first_kill():
    tables = _metrics(first_sample=T0 + 65 * H, kill_events=True)
    result = memory_pressure(make_case(**tables), BASELINE, INCIDENT)
    began = pd.Timestamp(_leak(result).evidence["climb_began"])
    assert abs((began - (BEGAN + pd.Timedelta(minutes=7))) / pd.Timedelta(minutes=1)) <= 20


def test_a_leak_that_a_release_started_keeps_the_release_s_date():
    """Guards varied tuning memory_leak s1, s2, s4, s7, dated to the second by their release:
    the segment before the first climb ended at the release (a restart), not at a kill."""
    tables = _metrics(kill_events=True)
    release = pd.DataFrame({"ts": [BEGAN - pd.Timedelta(minutes=1)], "kind": ["deploy"],
                            "host": [None], "artifact": ["service"]})
    tables["events"] = pd.concat([tables["events"].assign(artifact="infra"), release],
                                 ignore_index=True)
    result = memory_pressure(make_case(**tables), BASELINE, INCIDENT)
    leak = _leak(result)
    assert "climb_began" not in leak.evidence
    assert abs(pd.Timestamp(leak.onset) - BEGAN) <= pd.Timedelta(minutes=15)
