"""The generative service of a case and its plan: everything decided before a row exists.

A vLLM-like engine serves one chat endpoint on a few GPU replicas. Per replica and minute the
plan holds the engine's state (a fluid model of continuous batching):

* arrivals ``a`` (requests/s) follow the diurnal traffic (:class:`toolkit.simulate.traffic.
  Traffic`) spread over the replicas that are up (:mod:`toolkit.simulate.fleet`);
* decode time per output token grows with the batch: ``TPOT = t0 (1 + running / B)``; the
  running batch follows Little's law, ``running = a * mean_output * TPOT``;
* each running sequence holds its context in the KV cache (prompt tokens not shared through
  the prefix cache, plus half its output on average); demand over the replica's KV capacity
  ``K`` is the KV usage;
* above ``KV_FULL`` (0.92) of the capacity the scheduler stops admitting and preempts
  (recomputes) sequences: the excess waits in a queue that drains at the capacity's completion
  rate, the queue time adds to TTFT, and preemptions per request grow with the overload.

Failure modes and confounders change *knobs* over time (:class:`Builder`): prompt-length
multiplier, adapter mix, share of very long prompts, prefix-cache hit probability, KV capacity,
chunked prefill, sampling defaults, template, model quality, a host's GPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from toolkit.simulate.fleet import Fleet, PodWindow, Restart
from toolkit.simulate.plan import DAY, HOUR, MINUTE, Event, Planning
from toolkit.simulate.traffic import Ramp, Traffic

__all__ = ["GenPlatform", "Builder", "GenPlan", "EngineState", "draw_platform", "engine_state",
           "KV_FULL", "ADAPTERS", "STEP_S", "LONG_SIGMA"]

#: Metric / engine-state grid (seconds).
STEP_S = 60.0
#: KV usage at which the scheduler starts queueing and preempting.
KV_FULL = 0.92
#: LoRA adapters served by the endpoint (``base`` is the model itself): relative prompt length.
ADAPTERS: dict[str, float] = {"base": 1.0, "support-lora": 0.8, "sql-lora": 1.4,
                              "summarize-lora": 3.0}
#: Longest a request waits in the engine's queue before its client gives up (seconds).
MAX_WAIT_S = 20.0
#: Spread (log) of the long-document prompts' lengths.
LONG_SIGMA = 0.45
_MODELS = ("llama-3.1-8b-instruct", "qwen2.5-14b-instruct", "mistral-7b-instruct-v0.3")
_GPU_BYTES = 80 * (1 << 30)


@dataclass(frozen=True)
class GenPlatform:
    """The service: replicas, engine speeds, prompt and output populations, clients."""

    service: str
    endpoint: str
    model_name: str
    model_version: str
    service_version: str
    template_version: str
    pods: tuple[str, ...]
    rate_per_pod: float
    tpot_ms: float
    batch_half: float
    prefill_ms_per_token: float
    prompt_median: float
    prompt_sigma: float
    output_median: float
    output_sigma: float
    adapter_mix: tuple[float, ...]
    system_prompt: tuple[int, ...]
    hit_probability: float
    long_share: float
    long_median: float
    max_model_len: int
    server_max_tokens: int
    explicit_max_share: float
    chunked_prefill: bool
    chunk_tokens: int
    bad_rate: float
    refusal_rate: float
    label_share: float
    clients: tuple[tuple[str, str, float], ...]
    traffic_amplitude: float
    peak_hour: float
    gpu_model_bytes: int
    kv_bytes_per_token: int
    gpu_memory_utilization: float = 0.85
    # capability flags read by the generic writer (toolkit.simulate.writer)
    labels: bool = True
    metrics: bool = True
    events: bool = True
    lineage: bool = True
    reference: bool = False


def draw_platform(rng: np.random.Generator) -> GenPlatform:
    """A service drawn from the seed."""
    model = str(rng.choice(_MODELS))
    short = model.split("-")[0]
    service = f"{short}-chat"
    n = int(rng.integers(4, 7))
    token = "".join(rng.choice(list("abcdefghjkmnpqrstvwxz23456789"), 5))
    pods = tuple(f"{service}-{token}-{i}" for i in range(n))
    mix = rng.dirichlet([6.0, 3.0, 2.0, 1.0])
    tpot, batch_half = float(rng.uniform(12.0, 22.0)), float(rng.uniform(96.0, 192.0))
    output_median, output_sigma = float(rng.uniform(140.0, 300.0)), float(rng.uniform(0.6, 0.8))
    # arrivals per replica at a decode load of 15-25% of the batch that doubles TPOT
    out_mean = output_median * np.exp(output_sigma ** 2 / 2)
    rate = float(rng.uniform(0.15, 0.25)) * batch_half / (out_mean * tpot / 1000.0)
    return GenPlatform(
        service=service,
        endpoint=f"/v1/chat/completions/{service}",
        model_name=model,
        model_version=f"{short}-2026.{int(rng.integers(1, 4)):02d}.{int(rng.integers(1, 9))}",
        service_version=f"vllm-0.{int(rng.integers(7, 10))}.{int(rng.integers(0, 5))}",
        template_version=f"tmpl-{short}-v{int(rng.integers(2, 6))}",
        pods=pods,
        rate_per_pod=rate,
        tpot_ms=tpot,
        batch_half=batch_half,
        prefill_ms_per_token=float(rng.uniform(0.05, 0.12)),
        prompt_median=float(rng.uniform(450.0, 1100.0)),
        prompt_sigma=float(rng.uniform(0.7, 0.95)),
        output_median=output_median,
        output_sigma=output_sigma,
        adapter_mix=tuple(float(x) for x in mix),
        system_prompt=tuple(int(x) for x in rng.integers(12, 60, len(ADAPTERS)) * 16),
        hit_probability=float(rng.uniform(0.8, 0.95)),
        long_share=float(rng.uniform(0.002, 0.006)),
        long_median=float(rng.uniform(9_000.0, 16_000.0)),
        max_model_len=32_768,
        server_max_tokens=2048,
        explicit_max_share=float(rng.uniform(0.4, 0.7)),
        chunked_prefill=True,
        chunk_tokens=int(rng.choice([512, 1024, 2048])),
        bad_rate=float(rng.uniform(0.05, 0.1)),
        refusal_rate=float(rng.uniform(0.003, 0.01)),
        label_share=float(rng.uniform(0.08, 0.15)),
        clients=(("chat-web", f"3.{int(rng.integers(1, 9))}.0", 0.6),
                 ("mobile", f"2.{int(rng.integers(1, 9))}.0", 0.3),
                 ("batch-api", f"1.{int(rng.integers(1, 9))}.0", 0.1)),
        traffic_amplitude=float(rng.uniform(0.35, 0.6)),
        peak_hour=float(rng.uniform(13.0, 19.0)),
        gpu_model_bytes=int(rng.uniform(16, 30) * (1 << 30)),
        kv_bytes_per_token=131_072,
        gpu_memory_utilization=float(rng.uniform(0.8, 0.88)),
    )


class Builder(Planning):
    """Mutable plan under construction: the planners write knobs, events and deploys."""

    def __init__(self, *, rng: np.random.Generator, mode: str, span_s: float, start: datetime,
                 onset: float, platform: GenPlatform, severity: float) -> None:
        self.rng = rng
        self.mode = mode
        self.span_s = span_s
        self.start = start
        self.onset = onset
        self.incident_end = span_s
        self.platform = platform
        self.severity = severity
        self.events: list[Event] = []
        self.traffic_mods: list[tuple[Ramp, float]] = []
        self.weekend_factor = 1.0
        self.windows: list[PodWindow] = []
        self.restarts: list[Restart] = []
        self.injected: dict[str, Any] = {}
        self.confounders: list[str] = []
        #: (time, artifact, version): model / service / template versions over time.
        self.versions: list[tuple[float, str, str]] = []
        #: template versions registered in lineage with their model version.
        self.lineage: list[tuple[str, str, float]] = [
            (platform.model_version, platform.template_version, -float(rng.uniform(5, 30)) * DAY)]
        #: client releases: (t, family, version, adoption tau seconds, hit probability or None).
        self.clients: list[tuple[float, str, str, float, float | None]] = []
        k = self.knobs = Knobs()
        k.chunked = platform.chunked_prefill

    def version_at(self, artifact: str, t: float) -> str:
        p = self.platform
        current = {"model": p.model_version, "service": p.service_version,
                   "template": p.template_version}[artifact]
        for when, which, version in sorted(self.versions):
            if which == artifact and when <= t:
                current = version
        return current

    def deploy(self, t: float, artifact: str, version: str, *, kind: str = "deploy",
               **detail: Any) -> None:
        """Change ``artifact`` (``model``, ``service`` or ``template``: a template ships with
        the model artifact) to ``version`` at ``t`` and log the event."""
        previous = self.version_at(artifact, t)
        self.versions.append((float(t), artifact, version))
        if artifact == "template":
            version = self.version_at("model", t)
        self.event(t, kind, "model" if artifact == "template" else artifact, version, None,
                   from_version=previous, **detail)

    def client_release(self, t: float, family: str, version: str, tau_s: float,
                       hit_probability: float | None = None, **detail: Any) -> None:
        self.clients.append((float(t), family, version, float(tau_s), hit_probability))
        self.event(t, "deploy", "client", version, None, client=family, **detail)

    def traffic(self) -> Traffic:
        p = self.platform
        return Traffic.build(span_s=self.span_s, amplitude=p.traffic_amplitude,
                             peak_hour=p.peak_hour, start_weekday=self.start.weekday(),
                             start_hour=self.start.hour + self.start.minute / 60.0,
                             weekend_factor=self.weekend_factor,
                             modifiers=tuple(self.traffic_mods))


@dataclass
class Knobs:
    """What the failure modes turn, each as ``(ramp, value)``: the value applies with the ramp's
    weight (linear blend from the baseline value). ``None``: unchanged."""

    prompt_mult: tuple[Ramp, float] | None = None
    adapter_mix: tuple[Ramp, tuple[float, ...]] | None = None
    long_share: tuple[Ramp, float] | None = None
    kv_factor: tuple[Ramp, float] | None = None
    chunked: bool = True
    chunked_off: Ramp | None = None
    max_model_len: tuple[Ramp, int] | None = None
    oom_tokens: float = float("inf")
    sampling: tuple[Ramp, dict[str, float]] | None = None
    template_loop: tuple[Ramp, float] | None = None
    quality: tuple[Ramp, dict[str, float]] | None = None
    host_fault: tuple[Ramp, str, float, float] | None = None
    cold: tuple[Ramp, float, float] | None = None
    output_mult: tuple[Ramp, float] | None = None
    long_median: tuple[Ramp, float] | None = None


@dataclass(frozen=True)
class EngineState:
    """Per minute (rows) and replica (columns): the engine's fluid state."""

    arrivals: np.ndarray = field(repr=False)
    running: np.ndarray = field(repr=False)
    waiting: np.ndarray = field(repr=False)
    usage: np.ndarray = field(repr=False)
    queue_ms: np.ndarray = field(repr=False)
    preempt_rate: np.ndarray = field(repr=False)
    tpot_ms: np.ndarray = field(repr=False)
    long_busy: np.ndarray = field(repr=False)
    capacity_tokens: np.ndarray = field(repr=False)
    prompt_mean: np.ndarray = field(repr=False)
    output_mean: np.ndarray = field(repr=False)
    cached_share: np.ndarray = field(repr=False)
    demand: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class GenPlan:
    """A frozen generative case (internal; :class:`GenerativeCase` wraps it)."""

    seed: int
    key: tuple[int, ...]
    mode: str
    rows: int
    start: datetime
    span_s: float
    onset: float | None
    incident: tuple[float, float]
    baseline: tuple[float, float]
    platform: GenPlatform
    knobs: Knobs = field(repr=False)
    traffic: Traffic = field(repr=False)
    fleet: Fleet = field(repr=False)
    state: EngineState = field(repr=False)
    events: tuple[Event, ...] = field(repr=False)
    versions: tuple[tuple[float, str, str], ...] = field(repr=False)
    lineage: tuple[tuple[str, str, float], ...] = field(repr=False)
    clients: tuple[tuple[float, str, str, float, float | None], ...] = field(repr=False)
    injected: dict[str, Any] = field(repr=False)
    confounders: tuple[str, ...] = ()
    metrics_from: float = 0.0
    id_prefix: str = "chatcmpl-"
    world: Any = None

    def version_at(self, artifact: str, t: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """Codes into a vocabulary: the version of ``artifact`` at each time."""
        p = self.platform
        first = {"model": p.model_version, "service": p.service_version,
                 "template": p.template_version}[artifact]
        changes = sorted((when, v) for when, a, v in self.versions if a == artifact)
        vocab = [first] + [v for _, v in changes]
        codes = np.searchsorted(np.array([w for w, _ in changes], dtype=np.float64), t,
                                side="right") if changes else np.zeros(len(t), dtype=np.int64)
        return codes.astype(np.int32), vocab


def blend(knob: tuple[Ramp, Any] | None, t: np.ndarray, base: float, index: int = 1
          ) -> np.ndarray:
    """Baseline value ``base`` moved towards the knob's value by its ramp weight."""
    t = np.asarray(t, dtype=np.float64)
    if knob is None:
        return np.full(t.shape, float(base))
    w = knob[0].weight(t)
    return base + w * (float(knob[index]) - base)


def mix_at(platform: GenPlatform, knobs: Knobs, t: np.ndarray) -> np.ndarray:
    """Adapter shares at each time, ``(len(t), adapters)``."""
    base = np.array(platform.adapter_mix)
    if knobs.adapter_mix is None:
        return np.broadcast_to(base, (len(t), len(base)))
    w = knobs.adapter_mix[0].weight(t)[:, None]
    return base[None, :] * (1 - w) + np.array(knobs.adapter_mix[1])[None, :] * w


def population(platform: GenPlatform, knobs: Knobs, t: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Expected prompt tokens, output tokens, cached share of the prompt and long-prompt share
    of a request arriving at ``t`` (before the KV state)."""
    mix = mix_at(platform, knobs, t)
    rel = np.array(list(ADAPTERS.values()))
    mult = blend(knobs.prompt_mult, t, 1.0)
    lognormal_mean = np.exp(platform.prompt_sigma ** 2 / 2)
    short_mean = platform.prompt_median * lognormal_mean * mult * (mix @ rel)
    long = blend(knobs.long_share, t, platform.long_share)
    long_median = blend(knobs.long_median, t, platform.long_median)
    prompt = (1 - long) * short_mean + long * long_median * np.exp(LONG_SIGMA ** 2 / 2)
    out_mult = blend(knobs.output_mult, t, 1.0)
    out = platform.output_median * np.exp(platform.output_sigma ** 2 / 2) * out_mult
    loop = blend(knobs.template_loop, t, 0.0)
    out = (1 - loop) * out + loop * platform.server_max_tokens * 0.75
    system = mix @ np.array(platform.system_prompt, dtype=np.float64)
    cached = np.clip(platform.hit_probability * system / np.maximum(short_mean, 1.0), 0, 0.9)
    return prompt, out, cached, long


def engine_state(platform: GenPlatform, knobs: Knobs, fleet: Fleet, traffic: Traffic,
                 capacity_tokens: float | None, hit_share: np.ndarray | None = None
                 ) -> EngineState:
    """The fluid engine state per minute and replica (see the module docstring).

    With ``capacity_tokens`` ``None`` the KV capacity is unbounded (used to size it).
    """
    cells, pods = fleet.alive.shape
    mid = (np.arange(cells) + 0.5) * fleet.step
    prompt, out, cached, long = population(platform, knobs, mid)
    if hit_share is not None:
        cached = cached * hit_share
    per_pod = platform.rate_per_pod * traffic.at(mid) * len(platform.pods) / np.maximum(
        fleet.n_alive, 1)
    arrivals = np.where(fleet.alive, per_pod[:, None], 0.0)
    t0 = np.full((cells, pods), platform.tpot_ms)
    if knobs.host_fault is not None:
        ramp, host, slow, _ = knobs.host_fault
        if host in fleet.names:
            j = fleet.names.index(host)
            t0[:, j] *= 1 + (slow - 1) * ramp.weight(mid)
    x = arrivals * out[:, None] * t0 / 1000.0
    ratio = np.clip(x / platform.batch_half, 0, 0.95)
    running = x / (1 - ratio)
    ctx = prompt * (1 - 0.5 * cached) + out / 2
    demand = running * ctx[:, None]
    if capacity_tokens is None:
        capacity = np.full((cells, pods), np.inf)
    else:
        capacity = np.full((cells, pods), float(capacity_tokens))
        capacity *= blend(knobs.kv_factor, mid, 1.0)[:, None]
    usage = demand / capacity
    full = KV_FULL * capacity
    cap_running = np.minimum(running, full / ctx[:, None])
    tpot = t0 * (1 + cap_running / platform.batch_half)
    mu = cap_running / np.maximum(out[:, None] * tpot / 1000.0, 1e-9)  # completions/s at cap
    waiting = np.zeros((cells, pods))
    backlog = np.zeros(pods)
    # the queue carries over from minute to minute; clients give up after MAX_WAIT_S
    limit = mu * MAX_WAIT_S
    for g in range(cells):
        inflow = arrivals[g] - np.where(demand[g] > full[g], mu[g], arrivals[g])
        backlog = np.minimum(np.maximum(0.0, backlog + inflow * fleet.step) * fleet.alive[g],
                             limit[g])
        waiting[g] = backlog
    queue_ms = np.where(waiting > 0, waiting / np.maximum(mu, 1e-9) * 1000.0, 0.0)
    over = np.maximum(usage / KV_FULL - 1.0, 0.0)
    preempt = np.where(usage >= KV_FULL, np.minimum(0.6 + 4.0 * over, 4.0), 0.0)
    usage = np.where(usage >= KV_FULL, np.minimum(0.985, KV_FULL + 0.04 + 0.2 * over), usage)
    # a short request arriving while a long prompt prefills: chance one is running
    long_prefill_s = blend(knobs.long_median, mid, platform.long_median)[:, None] * \
        platform.prefill_ms_per_token / 1000.0
    busy = 1 - np.exp(-arrivals * long[:, None] * long_prefill_s)
    return EngineState(
        arrivals=arrivals.astype(np.float32), running=cap_running.astype(np.float32),
        waiting=waiting.astype(np.float32), usage=np.nan_to_num(usage).astype(np.float32),
        queue_ms=queue_ms.astype(np.float32), preempt_rate=preempt.astype(np.float32),
        tpot_ms=tpot.astype(np.float32), long_busy=busy.astype(np.float32),
        capacity_tokens=capacity.astype(np.float64), prompt_mean=prompt, output_mean=out,
        cached_share=cached, demand=demand)


# re-exported helpers for the planners
__all__ += ["blend", "mix_at", "population", "Knobs", "HOUR", "MINUTE", "DAY"]
