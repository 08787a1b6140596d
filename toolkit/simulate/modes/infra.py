"""Infrastructure pathway: memory exhaustion, memory leak, cold start, accelerator fault."""

from __future__ import annotations

import numpy as np

from toolkit.simulate.effects import (
    ColdStart,
    ErrorEffect,
    GpuFault,
    LatencyEffect,
    LeakPressure,
    Saturation,
    Selector,
)
from toolkit.simulate.fleet import Fleet, Leak, PodWindow
from toolkit.simulate.plan import HOUR, MINUTE, Builder
from toolkit.simulate.serving import bump
from toolkit.simulate.traffic import Ramp

__all__ = ["memory_exhaustion", "memory_exhaustion_onset", "memory_leak", "cold_start",
           "accelerator_fault"]


def memory_exhaustion(b: Builder) -> None:
    """A traffic surge drives concurrency past the level at which a replica's (GPU) memory
    runs out: above the knee, latency jumps to 8-40x normal, requests fail with ``oom``, pods
    are OOM-killed and restart. The knee is 2.2-3.2x the average concurrency (or the preset's
    40), and at least 25% above any load seen without the surge."""
    p = b.preset
    platform = b.platform
    onset = b.onset
    up = float(b.rng.uniform(0.5, 2.0)) * HOUR
    hold = float(p.get("hold_h", b.rng.uniform(1.5, 5.0))) * HOUR
    fade = float(b.rng.uniform(0.5, 1.5)) * HOUR
    ramp = Ramp(onset - 0.6 * up, onset + 0.4 * up, onset + 0.4 * up + hold, fade)
    base = b.traffic()
    peak_without = platform.concurrency * float(base.intensity.max())
    knee = float(p.get("knee") or max(round(platform.concurrency * b.rng.uniform(2.2, 3.2)),
                                      np.ceil(1.25 * peak_without)))
    held = np.linspace(ramp.full, ramp.end, 32)
    target = knee * b.scale(1.1, 1.4)
    factor = max(1.2, target / (platform.concurrency * float(base.at(held).mean())))
    b.traffic_mods.append((ramp, factor))
    b.scratch["surge"] = ramp
    latency = float(p.get("latency_ms_saturated") or platform.latency_ms * b.scale(8, 40, log=True))
    error_rate = b.scale(0.1, 0.5)
    b.effects.append(Saturation(knee, latency, error_rate, oom_level=knee + max(2.0, 0.1 * knee)))
    b.client_timeout_ms = max(b.client_timeout_ms, 3.0 * latency)
    b.baseline_end = ramp.start
    resource = "gpu" if platform.gpu else "host"
    b.injected.update(
        knee_in_flight=knee, latency_ms_normal=round(platform.latency_ms, 1),
        latency_ms_saturated=round(latency, 1), oom_error_rate=round(error_rate, 4),
        surge_factor=round(factor, 3), memory=resource,
        memory_total_bytes=(platform.gpu_memory_total_bytes if platform.gpu
                            else platform.memory_limit_bytes),
    )


def memory_exhaustion_onset(b: Builder, fleet: Fleet, events: list) -> None:
    """Date the incident from the load the fleet actually reached: the onset is when the mean
    expected concurrency per replica first reaches 90% of the knee."""
    knee = b.injected["knee_in_flight"]
    surge = b.scratch["surge"]
    alive = fleet.alive.sum(axis=1)
    mean = fleet.lam.sum(axis=1) / np.maximum(alive, 1)
    mid = (np.arange(len(mean)) + 0.5) * fleet.step
    over = np.flatnonzero((mean >= 0.9 * knee) & surge.active(mid))
    if len(over):
        b.onset = float(over[0] * fleet.step)
        b.incident_end = float(min((over[-1] + 1) * fleet.step + 15 * MINUTE, b.span_s))
    kills = [e for e in events if e[1] == "oom_kill"]
    b.injected["oom_kills"] = len(kills)
    b.event(b.onset + 5 * MINUTE, "alert", "service", None, None, alert="HighLatencyP99",
            severity="page", state="firing")


def memory_leak(b: Builder) -> None:
    """From a service release on, each replica leaks memory until it is OOM-killed, every
    5-30 hours (per-pod rates differ): memory saw-tooth, rising latency and errors near the
    limit, restarts."""
    onset = b.onset
    remaining = b.span_s - onset
    fill = min(b.scale(30, 5, log=True) * HOUR, remaining / 1.6)
    pods = b.platform.pods
    fill_s = tuple(float(fill * b.rng.uniform(0.85, 1.2)) for _ in pods)
    stagger = tuple(float(b.rng.uniform(0, 10)) * MINUTE for _ in pods)
    version = None
    if b.rng.random() < 0.7:
        version = bump(b.platform.service_version, part=2)
        b.deploy(onset, "service", version)
    end = b.mitigated(0.3, 2.2 * fill, 4.0 * fill)
    if end is not None:
        b.incident_end = end
        if version is not None:
            b.deploy(end, "service", b.platform.service_version, kind="rollback")
        else:
            b.deploy(end, "service", bump(b.platform.service_version, part=2), reason="hotfix")
    b.leak = Leak(onset, fill_s, stagger, until=end or float("inf"))
    b.effects.append(LeakPressure(onset))
    b.injected.update(fill_hours=round(fill / HOUR, 3), service_version=version,
                      memory_limit_bytes=b.platform.memory_limit_bytes)


def cold_start(b: Builder) -> None:
    """An autoscaler change (scale down after 60 s) makes the fleet flap: every 35-120 minutes
    one to three new pods are added and removed again, and requests served by a pod in its
    first minutes take 1 + K exp(-age / tau) times longer (K 5-40, tau 2-10 minutes)."""
    onset = b.onset
    n = len(b.platform.pods)
    b.event(onset, "config_change", "infra", None, None, autoscaler="hpa",
            min_replicas=n, scale_down_stabilization_s=60, previous_scale_down_stabilization_s=600)
    end = b.mitigated(0.4, 24 * HOUR, 60 * HOUR)
    stop = end or b.span_s
    if end is not None:
        b.incident_end = end
        b.event(end, "config_change", "infra", None, None, autoscaler="hpa", min_replicas=n,
                scale_down_stabilization_s=600, previous_scale_down_stabilization_s=60)
    t = onset + float(b.rng.uniform(2, 15)) * MINUTE
    ups = 0
    while t < stop - 10 * MINUTE:
        count = int(b.rng.integers(1, 4))
        life = float(b.rng.uniform(15, 50)) * MINUTE
        for i in range(count):
            name = b.platform.pod_name(b.rng)
            start = t + i * 20.0
            b.windows.append(PodWindow(name, start, min(start + life, b.span_s)))
            b.event(start, "scale", "infra", None, name, direction="up", replicas=n + i + 1,
                    reason="cpu_utilization")
            if start + life < b.span_s:
                b.event(start + life, "scale", "infra", None, name, direction="down",
                        replicas=n + count - i - 1, reason="scale_down_stabilization")
            ups += 1
        t += life + float(b.rng.uniform(20, 70)) * MINUTE
    factor = b.scale(5, 40, log=True)
    tau = float(b.rng.uniform(120, 600))
    b.effects.append(ColdStart(factor, tau, Ramp(onset, onset, stop)))
    b.injected.update(factor=round(factor, 3), tau_s=round(tau, 1), scale_ups=ups)


def accelerator_fault(b: Builder) -> None:
    """One replica's GPU goes bad (Xid error): its requests fail (5-60%) and/or slow down
    (2-8x) and its utilisation metric sticks; the other replicas are fine."""
    onset = b.onset
    host = str(b.rng.choice(b.platform.pods))
    variant = str(b.rng.choice(["errors", "latency", "both"]))
    end = b.mitigated(0.5, 4 * HOUR, 36 * HOUR)
    if end is not None:
        b.incident_end = end
        b.event(end, "restart", "infra", None, host, reason="node replaced")
    ramp = Ramp(onset, onset + float(b.rng.uniform(0, 10)) * MINUTE, end or float("inf"))
    selector = Selector("host", (host,))
    rate, factor = b.scale(0.05, 0.6), b.scale(2.0, 8.0)
    if variant in ("errors", "both"):
        b.effects.append(ErrorEffect(rate, ramp, "gpu_error", 500, selector))
    if variant in ("latency", "both"):
        b.effects.append(LatencyEffect(factor, ramp, selector))
    stuck = float(b.rng.choice([0.0, 1.0]))
    b.effects.append(GpuFault(host, ramp, stuck))
    xid = int(b.rng.choice([48, 63, 79, 94]))
    b.event(onset + float(b.rng.uniform(2, 15)) * MINUTE, "alert", "infra", None, host,
            alert="GPUXidError", xid=xid, gpu="0")
    b.injected.update(host=host, gpu="0", variant=variant, xid=xid,
                      error_rate=round(rate, 4) if variant != "latency" else 0.0,
                      latency_factor=round(factor, 3) if variant != "errors" else 1.0,
                      gpu_utilization_stuck_at=stuck)
