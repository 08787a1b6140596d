"""The replicas over time: which pod is up, how loaded it is, its memory, its (re)starts.

Everything lives on a grid with the platform's metric step (30-60 s) so that the metrics the
platform exports and the requests it logs are two views of one state. Restarts after an OOM
kill are decided here, from the sampled in-flight counts, and become events.

Examples
--------
>>> import numpy as np
>>> from toolkit.simulate.traffic import Traffic
>>> traffic = Traffic.build(span_s=86400, amplitude=0.5, peak_hour=18.0)
>>> fleet, events = build(np.random.default_rng(0), pods=("a", "b"), span_s=86400, step=60,
...                       traffic=traffic, concurrency=8.0, memory_base=0.4)
>>> fleet.alive.shape, events
((1440, 2), [])
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from toolkit.simulate.effects import Saturation

__all__ = ["Fleet", "PodWindow", "Restart", "Leak", "build"]


@dataclass(frozen=True)
class PodWindow:
    """A pod that exists only in ``[up, down)`` (added by a scale-up)."""

    name: str
    up: float
    down: float


@dataclass(frozen=True)
class Restart:
    """Pod ``name`` goes down at ``t`` for ``downtime`` seconds."""

    t: float
    name: str
    downtime: float


@dataclass(frozen=True)
class Leak:
    """Memory grows from ``onset`` (+ per-pod stagger) until the pod is OOM-killed.

    ``fill_s`` is, per pod, the time from a (re)start until the limit.
    """

    onset: float
    fill_s: tuple[float, ...]
    stagger_s: tuple[float, ...]
    until: float = float("inf")


@dataclass(frozen=True)
class Fleet:
    """Pods on the metric grid.

    Attributes
    ----------
    names
        Pod names, base replicas first, then pods added by scale-ups.
    step
        Grid step (seconds).
    alive
        ``(cells, pods)``: the pod serves traffic in the cell.
    lam
        Expected requests in flight per pod.
    inflight
        Sampled in-flight count (what the ``in_flight`` metric reports).
    memory
        Memory used / limit before the per-request share (base, plus a leak).
    starts
        Per pod, the sorted times it (re)started (the first is before the case start).
    """

    names: tuple[str, ...]
    step: float
    alive: np.ndarray = field(repr=False)
    lam: np.ndarray = field(repr=False)
    inflight: np.ndarray = field(repr=False)
    memory: np.ndarray = field(repr=False)
    starts: tuple[np.ndarray, ...] = field(repr=False)
    up: np.ndarray = field(repr=False)
    first: np.ndarray = field(repr=False)
    n_alive: np.ndarray = field(repr=False)

    def cell(self, t: np.ndarray) -> np.ndarray:
        return np.clip((t // self.step).astype(np.int64), 0, self.alive.shape[0] - 1)

    def route(self, t: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Pod index serving each request (uniform over the pods up at that time).

        ``up`` lists the pods that are up, cell after cell; ``first[g]`` is where cell ``g``'s
        list starts.
        """
        g = self.cell(t)
        k = np.minimum((u * self.n_alive[g]).astype(np.int64), self.n_alive[g] - 1)
        return self.up[self.first[g] + k].astype(np.int64)

    def age(self, t: np.ndarray, pod: np.ndarray) -> np.ndarray:
        """Seconds since the serving pod last started (one sorted search for all pods)."""
        stride = 1e8  # longer than any case, in seconds
        keys = np.concatenate([p * stride + s for p, s in enumerate(self.starts)])
        times = np.concatenate(self.starts)
        owner = np.concatenate([np.full(len(s), p) for p, s in enumerate(self.starts)])
        i = np.searchsorted(keys, pod * stride + t, side="right") - 1
        found = (i >= 0) & (owner[np.maximum(i, 0)] == pod)
        return np.where(found, t - times[np.maximum(i, 0)], np.inf)


def build(
    rng: np.random.Generator,
    *,
    pods: tuple[str, ...],
    span_s: float,
    step: float,
    traffic,
    concurrency: float,
    memory_base: float,
    windows: tuple[PodWindow, ...] = (),
    restarts: tuple[Restart, ...] = (),
    saturation: Saturation | None = None,
    leak: Leak | None = None,
) -> tuple[Fleet, list[tuple[float, str, str, dict]]]:
    """Lay the fleet out on the grid.

    Returns
    -------
    fleet, events
        ``events`` are ``(t, kind, host, detail)`` for the OOM kills and restarts decided here.
    """
    cells = int(np.ceil(span_s / step))
    mid = (np.arange(cells) + 0.5) * step
    names = tuple(pods) + tuple(w.name for w in windows)
    n_base = len(pods)
    alive = np.ones((cells, len(names)), dtype=bool)
    for j, w in enumerate(windows):
        alive[:, n_base + j] = (mid >= w.up) & (mid < w.down)
    starts: list[list[float]] = [[-float(rng.uniform(1, 20)) * 86400.0] for _ in pods]
    starts += [[w.up] for w in windows]
    index = {name: i for i, name in enumerate(names)}
    events: list[tuple[float, str, str, dict]] = []

    def down(p: int, t: float, downtime: float) -> None:
        lo, hi = int(t // step), int(np.ceil((t + downtime) / step))
        alive[lo:hi, p] = False
        starts[p].append(t + downtime)

    for r in restarts:
        down(index[r.name], r.t, r.downtime)

    weight = rng.uniform(0.95, 1.05, len(names)).astype(np.float32)
    intensity = traffic.at(mid)

    def load() -> tuple[np.ndarray, np.ndarray]:
        n_alive = np.maximum(alive.sum(axis=1), 1)
        per_pod = (concurrency * intensity * (n_base / n_alive)).astype(np.float32)
        lam = np.where(alive, per_pod[:, None] * weight[None, :], np.float32(0.0))
        counts = np.zeros(alive.shape, dtype=np.int32)
        counts[alive] = rng.poisson(lam[alive])
        return lam, counts

    lam, inflight = load()
    memory = memory_base + rng.uniform(-0.04, 0.04, len(names)).astype(np.float32)[None, :] \
        + np.float32(0.004) * rng.standard_normal((cells, len(names)), dtype=np.float32)

    if saturation is not None:
        for p in range(len(names)):
            hits = np.flatnonzero(inflight[:, p] >= saturation.oom_level)
            last = -np.inf
            restarts_p = 0
            for g in hits:
                t = float(mid[g])
                if t - last < 900.0 or not alive[g, p]:  # a restarted pod needs time to refill
                    continue
                last = t
                restarts_p += 1
                downtime = float(rng.uniform(20.0, 90.0))
                down(p, t, downtime)
                events.append((t, "oom_kill", names[p],
                               {"reason": "OOMKilled", "container": "model-server",
                                "exit_code": 137}))
                events.append((t + downtime, "restart", names[p],
                               {"reason": "OOMKilled", "restart_count": restarts_p}))
        before = inflight
        lam, inflight = load()
        inflight = np.where(alive, np.maximum(inflight, np.where(
            before >= saturation.oom_level, before, 0)), 0)

    if leak is not None:
        for p in range(min(len(names), len(leak.fill_s))):
            t0 = leak.onset + leak.stagger_s[p]
            fill = leak.fill_s[p]
            top = 0.97 - memory[:, p]
            since = mid - t0
            phase = np.where(since >= 0, np.mod(since, fill), -1.0)
            grow = np.where((phase >= 0) & (mid < leak.until), phase / fill, 0.0)
            memory[:, p] = memory[:, p] + top * grow
            k = 1
            while t0 + k * fill < min(span_s, leak.until):
                t = t0 + k * fill
                downtime = float(rng.uniform(20.0, 60.0))
                down(p, t, downtime)
                events.append((t, "oom_kill", names[p],
                               {"reason": "OOMKilled", "container": "model-server",
                                "exit_code": 137}))
                events.append((t + downtime, "restart", names[p],
                               {"reason": "OOMKilled", "restart_count": k}))
                k += 1
        lam, inflight = load()

    n_alive = alive.sum(axis=1)
    if (n_alive == 0).any():  # never leave a cell without a pod: keep the first one up
        alive[n_alive == 0, 0] = True
        n_alive = alive.sum(axis=1)
    up = np.nonzero(alive)[1].astype(np.int32)
    first = np.concatenate([[0], np.cumsum(n_alive)[:-1]]).astype(np.int64)
    return Fleet(
        names,
        float(step),
        alive,
        lam.astype(np.float32),
        inflight.astype(np.int32),
        np.clip(memory, 0.05, 0.99).astype(np.float32),
        tuple(np.array(sorted(s)) for s in starts),
        up,
        first,
        n_alive.astype(np.int64),
    ), events
