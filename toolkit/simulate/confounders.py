"""Background activity and confounders.

Background (every case): the release the case starts from (lineage), the cache's settings,
routine client releases and one to three node-drain restarts away from the onset.

Confounders (``confounders=True``): things a careless diagnosis would blame, drawn so that they
never cause the incident's signals themselves:

* ``benign_deploy``: a release of an artifact unrelated to the failure, near the onset;
* ``benign_drift``: mild drift (PSI well under 0.1) of a feature the model barely uses;
* ``seasonality``: quieter weekends and a promotion day with 30-60% more traffic;
* ``latency_blip``: 5-20 minutes of 3-8x latency on every replica, away from the onset.
"""

from __future__ import annotations

import numpy as np

from toolkit.simulate import model as M
from toolkit.simulate.effects import FeatureShift, LatencyEffect, MixShift
from toolkit.simulate.fleet import Restart
from toolkit.simulate.plan import DAY, HOUR, MINUTE, Builder
from toolkit.simulate.serving import bump
from toolkit.simulate.traffic import Ramp

__all__ = ["background", "confounders", "some", "CONFOUNDERS"]

CONFOUNDERS = ("benign_deploy", "benign_drift", "seasonality", "latency_blip")

#: Artifacts whose change would be (part of) the failure itself, per mode.
_CAUSAL_ARTIFACTS = {
    "schema_mismatch": {"pipeline"},
    "version_skew": {"pipeline", "model"},
    "api_contract_mismatch": {"client"},
    "adversarial_inputs": {"client"},
    "timeout_misconfiguration": {"client"},
    "memory_leak": {"service"},
    "cold_start": {"infra"},
    "memory_exhaustion": {"infra"},
}


def background(b: Builder) -> None:
    """Routine activity every case has."""
    rng = b.rng
    if b.platform.has("cache") and b.mode != "cache_staleness":
        b.event(float(rng.uniform(0.2, 1.0)) * DAY, "config_change", "cache", None, None,
                cache_ttl_s=int(rng.choice([900, 3600, 21600, 86400])),
                cache_key="request_hash+model_version")
    onset = b.onset if b.onset is not None else b.span_s
    for _ in range(int(rng.integers(0, 3))):
        family = str(rng.choice([c.name for c in b.platform.clients]))
        t = float(rng.uniform(0.5 * DAY, max(0.6 * DAY, onset - 1.5 * DAY)))
        b.client_release(t, family, bump(b.client_version_at(family, t), part=2),
                         float(rng.uniform(3, 24)) * HOUR)
    for _ in range(int(rng.integers(1, 4))):
        t = float(rng.uniform(0.3 * DAY, b.span_s - 0.3 * DAY))
        if abs(t - onset) < 12 * HOUR:
            t = float(rng.uniform(0.3 * DAY, max(0.4 * DAY, onset - 12 * HOUR)))
        pod = str(rng.choice(b.platform.pods))
        downtime = float(rng.uniform(20, 90))
        b.restarts.append(Restart(t, pod, downtime))
        b.event(t + downtime, "restart", "infra", None, pod, reason="node_drain")


def confounders(b: Builder) -> None:
    """Add the four confounders (see the module docstring)."""
    _benign_deploy(b)
    _benign_drift(b)
    _seasonality(b)
    _latency_blip(b)
    b.confounders.extend(CONFOUNDERS)


def some(b: Builder, counts: dict[str, int]) -> None:
    """Add each confounder ``counts[name]`` times (the varied world: any subset, some of them
    more than once); those present are listed once in ``b.confounders``."""
    makers = {"benign_deploy": _benign_deploy, "benign_drift": _benign_drift,
              "seasonality": _seasonality, "latency_blip": _latency_blip}
    for name in CONFOUNDERS:
        for _ in range(int(counts.get(name, 0))):
            makers[name](b)
        if counts.get(name, 0):
            b.confounders.append(name)


def _benign_deploy(b: Builder) -> None:
    rng = b.rng
    onset = b.onset
    excluded = _CAUSAL_ARTIFACTS.get(b.mode, set())
    if not b.platform.lineage:
        # without a lineage table, a new (model, pipeline) pair after the baseline cannot be
        # told from a skew; the benign change is then to another artifact
        excluded = excluded | {"pipeline"}
    options = [a for a in ("client", "pipeline", "service", "infra") if a not in excluded]
    artifact = str(rng.choice(options))
    offset = float(rng.uniform(0.5, 12.0)) * HOUR * (1 if rng.random() < 0.3 else -1)
    t = min(max(onset + offset, 0.2 * DAY), b.span_s - HOUR)
    if artifact == "client":
        family = str(rng.choice([c.name for c in b.platform.clients]))
        b.client_release(t, family, bump(b.client_version_at(family, t), part=2),
                         float(rng.uniform(2, 12)) * HOUR)
    elif artifact == "pipeline":
        b.deploy(t, "pipeline", bump(b.version_at("pipeline", t), part=2),
                 change="logging only")
    elif artifact == "service":
        b.deploy(t, "service", bump(b.version_at("service", t), part=2))
    else:
        b.event(t, "config_change", "infra", None, None,
                **dict([(str(rng.choice(["log_level", "metrics_scrape_interval_s",
                                         "node_pool"])), "info")]))
    b.injected.setdefault("confounder_deploy", {"artifact": artifact,
                                                "offset_hours": round((t - onset) / HOUR, 2)})


def _benign_drift(b: Builder) -> None:
    """Drift sized by its PSI on the reference (0.02-0.06 at the end of the case)."""
    names = [f.name for f in b.features if f.numeric and abs(f.weight) <= 0.1]
    ramp = Ramp(1.0 * DAY, b.span_s)
    target = float(b.rng.uniform(0.02, 0.06))
    sign = 1.0 if b.rng.random() < 0.5 else -1.0
    if names:
        name = str(b.rng.choice(names))
        x = b.train[name][:10_000]
        delta = M.bisect(lambda d: _psi(x, b.std.shift(name, x, sign * d)), 0.0, 1.0, target,
                         iterations=20)
        b.effects.append(FeatureShift(name, sign * delta, ramp))
    else:
        name = "device_type"
        level = b.feature(name).levels.index("tablet")
        codes = b.train[name][:10_000]
        u = np.random.default_rng(3).random(len(codes))
        share = M.bisect(lambda s: _psi(codes, np.where(u < s, level, codes), categorical=True),
                         0.0, 0.5, target, iterations=20)
        b.effects.append(MixShift(name, "tablet", share, ramp))
    b.injected.setdefault("confounder_drift", {"feature": name, "psi_at_end": round(target, 4)})


def _psi(expected: np.ndarray, actual: np.ndarray, *, categorical: bool = False) -> float:
    expected, actual = expected[~np.isnan(expected)], actual[~np.isnan(actual)]
    if categorical:
        size = int(max(expected.max(), actual.max())) + 1
        e = np.bincount(expected.astype(int), minlength=size)
        a = np.bincount(actual.astype(int), minlength=size)
    else:
        edges = np.unique(np.quantile(expected, np.linspace(0, 1, 11)[1:-1]))
        e = np.bincount(np.searchsorted(edges, expected, side="right"), minlength=len(edges) + 1)
        a = np.bincount(np.searchsorted(edges, actual, side="right"), minlength=len(edges) + 1)
    e = np.maximum(e / e.sum(), 1e-4)
    a = np.maximum(a / a.sum(), 1e-4)
    return float(np.sum((a - e) * np.log(a / e)))


def _seasonality(b: Builder) -> None:
    b.weekend_factor = float(b.rng.uniform(0.7, 0.9))
    day = float(b.rng.integers(1, max(2, int(b.span_s // DAY) - 1))) * DAY
    if b.onset is not None and abs(day + 0.5 * DAY - b.onset) < 1.5 * DAY:
        day = max(DAY, day - 3 * DAY)
    b.traffic_mods.append((Ramp(day, day + 3 * HOUR, day + 18 * HOUR, 3 * HOUR),
                           float(b.rng.uniform(1.3, 1.6))))


def _latency_blip(b: Builder) -> None:
    onset = b.onset
    for _ in range(20):
        t = float(b.rng.uniform(0.5 * DAY, b.span_s - 2 * HOUR))
        if abs(t - onset) > 12 * HOUR:
            break
    duration = float(b.rng.uniform(5, 20)) * MINUTE
    b.effects.append(LatencyEffect(float(b.rng.uniform(3, 8)), Ramp(t, t, t + duration)))
    if b.rng.random() < 0.5:
        b.event(t + 3 * MINUTE, "alert", "service", None, None, alert="HighLatencyP99",
                severity="warning", state="firing")
        b.event(t + duration + 5 * MINUTE, "alert", "service", None, None,
                alert="HighLatencyP99", severity="warning", state="resolved")
