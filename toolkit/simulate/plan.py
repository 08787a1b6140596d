"""The plan of a case: everything decided before any row is generated.

Failure-mode planners and confounders write into a mutable :class:`Builder` (events, deploys,
client releases, effects, traffic modifiers, pod changes, the injected parameters); the
builder is then frozen into a :class:`Plan`, from which rows, metrics and events are
generated chunk by chunk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from toolkit.simulate.features import Feature
from toolkit.simulate.fleet import Fleet, Leak, PodWindow, Restart
from toolkit.simulate.model import Linear, Standardizer
from toolkit.simulate.serving import Platform
from toolkit.simulate.traffic import Ramp, Traffic

__all__ = ["Event", "Deploy", "ClientRelease", "Planning", "Builder", "Plan", "HOUR", "DAY",
           "MINUTE"]

MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0


@dataclass(frozen=True)
class Event:
    """One row of ``events`` (``t`` in seconds since the case start)."""

    t: float
    kind: str
    artifact: str | None = None
    version: str | None = None
    host: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Deploy:
    """A model / pipeline / service version change; pods switch at ``t`` plus their stagger
    in ``release`` (artifacts of one release switch together)."""

    t: float
    artifact: str
    version: str
    release: int
    lineage: bool


@dataclass(frozen=True)
class ClientRelease:
    """A client version published at ``t``; its users adopt it with time constant ``tau_s``."""

    t: float
    family: str
    version: str
    tau_s: float


class Planning:
    """What the builders of both simulators (this one and the generative one) share: the
    case's ``severity`` in [0, 1] and its ``events``, which each builder sets."""

    severity: float
    events: list[Event]

    def scale(self, lo: float, hi: float, *, log: bool = False) -> float:
        """A magnitude between ``lo`` (subtle) and ``hi`` (blatant) at the case's severity."""
        s = self.severity
        if log:
            return float(np.exp(np.log(lo) + s * (np.log(hi) - np.log(lo))))
        return float(lo + s * (hi - lo))

    def event(self, t: float, kind: str, artifact: str | None = None, version: str | None = None,
              host: str | None = None, **detail: Any) -> None:
        self.events.append(Event(float(t), kind, artifact, version, host, detail))


class Builder(Planning):
    """Mutable plan under construction (used by the planners only)."""

    def __init__(
        self,
        *,
        rng: np.random.Generator,
        mode: str,
        preset: dict[str, Any],
        span_s: float,
        start: datetime,
        onset: float,
        platform: Platform,
        features: tuple[Feature, ...],
        std: Standardizer,
        model: Linear,
        train: dict[str, np.ndarray],
        train_u: np.ndarray,
        severity: float,
    ) -> None:
        self.rng = rng
        self.mode = mode
        self.preset = preset
        self.span_s = span_s
        self.start = start
        self.onset: float | None = onset
        self.incident_end = span_s
        self.baseline_end: float | None = None
        self.platform = platform
        self.features = features
        self.std = std
        self.truth = model.as_truth()
        self.models: dict[str, Linear] = {model.version: model}
        self.train = train
        self.train_u = train_u
        self.severity = severity
        self.events: list[Event] = []
        self.deploys: list[Deploy] = []
        self.clients: list[ClientRelease] = []
        self.effects: list[Any] = []
        self.traffic_mods: list[tuple[Ramp, float]] = []
        self.windows: list[PodWindow] = []
        self.restarts: list[Restart] = []
        self.leak: Leak | None = None
        self.injected: dict[str, Any] = {}
        self.notes: list[str] = []
        self.confounders: list[str] = []
        self.extra_columns: dict[str, str] = {}
        self.weekend_factor = 1.0
        self.client_timeout_ms = float(platform.client_timeout_ms)
        self.cache_keyed_by_model = True
        self.scratch: dict[str, Any] = {}  # planner -> finalizer notes
        self._release = 0

    # -- helpers for planners -------------------------------------------------------------

    def traffic(self) -> Traffic:
        """The traffic with the modifiers planned so far."""
        p = self.platform
        return Traffic.build(span_s=self.span_s, amplitude=p.traffic_amplitude,
                             peak_hour=p.peak_hour, start_weekday=self.start.weekday(),
                             start_hour=self.start.hour + self.start.minute / 60.0,
                             weekend_factor=self.weekend_factor,
                             modifiers=tuple(self.traffic_mods))

    def feature(self, name: str) -> Feature:
        return next(f for f in self.features if f.name == name)

    def has_feature(self, name: str) -> bool:
        return any(f.name == name for f in self.features)

    def version_at(self, artifact: str, t: float) -> str:
        current = {"model": self.platform.model_version,
                   "pipeline": self.platform.pipeline_version,
                   "service": self.platform.service_version}[artifact]
        for d in sorted(self.deploys, key=lambda d: d.t):
            if d.artifact == artifact and d.t <= t:
                current = d.version
        return current

    def new_release(self) -> int:
        self._release += 1
        return self._release

    def deploy(self, t: float, artifact: str, version: str, *, kind: str = "deploy",
               lineage: bool = True, release: int | None = None, **detail: Any) -> int:
        """Change ``artifact`` to ``version`` at ``t`` and log the event."""
        previous = self.version_at(artifact, t)
        release = self.new_release() if release is None else release
        self.deploys.append(Deploy(float(t), artifact, version, release, lineage))
        self.event(t, kind, artifact, version, None, from_version=previous, **detail)
        if artifact == "model" and self.platform.has("cache") and self.cache_keyed_by_model:
            self.event(t + 5.0, "cache_flush", "cache", None, None, reason="model version change")
        return release

    def client_release(self, t: float, family: str, version: str, tau_s: float,
                       **detail: Any) -> None:
        self.clients.append(ClientRelease(float(t), family, version, float(tau_s)))
        self.event(t, "deploy", "client", version, None, client=family, **detail)

    def client_version_at(self, family: str, t: float) -> str:
        base = next(c.version for c in self.platform.clients if c.name == family)
        for r in sorted(self.clients, key=lambda r: r.t):
            if r.family == family and r.t <= t:
                base = r.version
        return base

    def window(self, lo: float, hi: float) -> float:
        """A uniform time in ``[lo, hi]`` clipped to the case."""
        lo, hi = max(lo, 0.0), min(hi, self.span_s)
        return float(self.rng.uniform(lo, max(lo, hi)))

    def mitigated(self, probability: float, lo: float, hi: float) -> float | None:
        """With ``probability``, an incident end in ``onset + [lo, hi]`` (None otherwise, or
        when it would not fit before the end of the case)."""
        if self.preset.get("mitigated") is False:
            return None
        if self.rng.random() >= probability or self.onset is None:
            return None
        end = self.onset + float(self.rng.uniform(lo, hi))
        return end if end < self.span_s - 2 * HOUR else None


@dataclass(frozen=True)
class Plan:
    """A frozen, fully decided case (internal; :class:`~toolkit.simulate.Case` wraps it)."""

    seed: int
    key: tuple[int, ...]
    mode: str
    preset: str | None
    rows: int
    start: datetime
    span_s: float
    onset: float | None
    incident: tuple[float, float]
    baseline: tuple[float, float]
    platform: Platform
    features: tuple[Feature, ...]
    std: Standardizer = field(repr=False)
    truth: Linear = field(repr=False)
    models: dict[str, Linear] = field(repr=False)
    deploys: tuple[Deploy, ...] = field(repr=False)
    stagger: np.ndarray = field(repr=False)
    clients: tuple[ClientRelease, ...] = field(repr=False)
    effects: tuple[Any, ...] = field(repr=False)
    traffic: Traffic = field(repr=False)
    fleet: Fleet = field(repr=False)
    events: tuple[Event, ...] = field(repr=False)
    lineage: tuple[tuple[str, str, str, float], ...] = field(repr=False)
    injected: dict[str, Any] = field(repr=False)
    notes: tuple[str, ...] = ()
    confounders: tuple[str, ...] = ()
    extra_columns: dict[str, str] = field(default_factory=dict, repr=False)
    client_timeout_ms: float = 5000.0
    cache_keyed_by_model: bool = True
    memory_per_request: float = 0.0
    gpu_per_request: float = 0.0
    id_prefix: str = "req"
    metrics_from: float = 0.0
    #: The varied world's draws (``None`` in the classic world).
    world: Any = field(default=None, repr=False)

    def column(self, name: str) -> str:
        """The exported name of an internal feature / column name."""
        return name if self.world is None else self.world.name(name)

    def label_of(self, value: str) -> str:
        """The exported wording of an internal level or endpoint."""
        return value if self.world is None else self.world.value(value)

    def effects_of(self, kind: type) -> list[Any]:
        return [e for e in self.effects if isinstance(e, kind)]
