"""Failure modes of a generative service (DESIGN section 3a) and its confounders.

Each planner turns the builder's knobs from the onset on and logs the change that caused the
failure (if one did). Its docstring becomes the case's notes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from toolkit.simulate.fleet import PodWindow, Restart
from toolkit.simulate.generative.plan import ADAPTERS, DAY, HOUR, MINUTE, Builder
from toolkit.simulate.serving import bump
from toolkit.simulate.traffic import Ramp

__all__ = ["MODES", "PLANNERS", "confounders", "CONFOUNDERS"]

#: Generative failure modes -> pathway (plus ``none``).
MODES: dict[str, str] = {
    "none": "none",
    "prompt_shift": "data",
    "bad_release": "model",
    "kv_cache_exhaustion": "infrastructure",
    "prefill_interference": "infrastructure",
    "memory_exhaustion": "infrastructure",
    "accelerator_fault": "infrastructure",
    "cold_start": "infrastructure",
    "prefix_cache_regression": "integration",
    "sampling_config_drift": "integration",
    "template_mismatch": "integration",
}
CONFOUNDERS = ("benign_deploy", "traffic_swing", "seasonality")
#: Artifacts whose change is (part of) the failure, per mode: the benign deploy avoids them.
_CAUSAL = {
    "bad_release": {"model"}, "sampling_config_drift": {"service"},
    "template_mismatch": {"service", "model"}, "prefix_cache_regression": {"client"},
    "kv_cache_exhaustion": {"service"}, "prefill_interference": {"service"},
    "memory_exhaustion": {"service"}, "cold_start": {"infra"},
}


def _end(b: Builder, probability: float, lo: float, hi: float) -> float | None:
    """With ``probability``, a mitigation at ``onset + [lo, hi]`` (if it fits)."""
    if b.rng.random() >= probability:
        return None
    end = b.onset + float(b.rng.uniform(lo, hi))
    return end if end < b.span_s - 3 * HOUR else None


def none(b: Builder) -> None:  # noqa: ARG001 - a healthy period
    """A healthy period: confounders only, no failure."""


def prompt_shift(b: Builder) -> None:
    """The prompt population moves with no artifact change: a tenant's long-document traffic
    grows (adapter mix shifts towards ``summarize-lora``) and prompts get 1.4-2.5x longer over
    0.5-4 hours; prompt cost and TTFT follow, outputs stay as they were. The KV cache keeps
    headroom."""
    up = float(b.rng.uniform(0.5, 4.0)) * HOUR
    ramp = Ramp(b.onset, b.onset + up)
    mult = b.scale(1.4, 2.5)
    mix = np.array(b.platform.adapter_mix)
    target = mix * 0.5
    target[list(ADAPTERS).index("summarize-lora")] += 0.5
    b.knobs.prompt_mult = (ramp, mult)
    b.knobs.adapter_mix = (ramp, tuple(float(x) for x in target))
    b.injected.update(prompt_multiplier=round(mult, 3), ramp_hours=round(up / HOUR, 2),
                      adapter="summarize-lora", adapter_share=round(float(target[-1]), 3))


def bad_release(b: Builder) -> None:
    """A new model version (released with the same chat template, in lineage) answers worse on
    the same traffic: the share of ``bad`` feedback rises 1.8-4x, refusals
    (``finish_reason = content_filter``) 3-10x, and output lengths move by 0.6-0.8x or
    1.3-1.6x; latency and prompts are unchanged."""
    version = _next_model(b.platform.model_version)
    b.deploy(b.onset, "model", version, template_version=b.platform.template_version)
    b.lineage.append((version, b.platform.template_version, b.onset - 6 * HOUR))
    end = _end(b, 0.4, 6 * HOUR, 36 * HOUR)
    if end is not None:
        b.deploy(end, "model", b.platform.model_version, kind="rollback")
        b.incident_end = end
    ramp = Ramp(b.onset, b.onset + 5 * MINUTE, end or float("inf"))
    factor = b.scale(1.8, 4.0)
    longer = b.rng.random() < 0.5
    out = b.scale(1.3, 1.6) if longer else b.scale(0.8, 0.6)
    b.knobs.quality = (ramp, {"bad_factor": factor, "refusal_factor": b.scale(3, 10)})
    b.knobs.output_mult = (ramp, out)
    b.injected.update(model_version=version, bad_factor=round(factor, 3),
                      output_multiplier=round(out, 3))


def _next_model(version: str) -> str:
    head, _, last = version.rpartition(".")
    return f"{head}.{int(last) + 1}"


def kv_cache_exhaustion(b: Builder) -> None:
    """A service config change (``gpu_memory_utilization`` lowered, ``max_num_seqs`` raised)
    leaves the KV cache 1.1-1.6x too small for the load: KV usage pins near 1, the scheduler
    preempts and queues, TTFT and the latency tail explode, token throughput falls; prompts,
    outputs and errors are unchanged."""
    over = b.scale(1.1, 1.6)
    util_before = 0.9
    end = _end(b, 0.4, 4 * HOUR, 30 * HOUR)
    ramp = Ramp(b.onset, b.onset, end or float("inf"))
    b.knobs.kv_factor = (ramp, -1.0)  # the capacity is set once the load is known (case.py)
    b.event(b.onset, "config_change", "service", None, None,
            gpu_memory_utilization=round(util_before / over * 0.8, 2),
            previous_gpu_memory_utilization=util_before, max_num_seqs=512,
            previous_max_num_seqs=256)
    if end is not None:
        b.event(end, "config_change", "service", None, None,
                gpu_memory_utilization=util_before, max_num_seqs=256)
        b.incident_end = end
    b.injected.update(kv_overload=round(over, 3))


def prefill_interference(b: Builder) -> None:
    """Head-of-line blocking: a deploy turns chunked prefill off while a long-document tenant
    (16-24k-token prompts) grows to 1.5-5% of requests; short prompts now wait behind whole
    long prefills, so their TTFT jumps while decode speed (TPOT) stays the same."""
    share = b.scale(0.015, 0.05)
    version = bump(b.platform.service_version, part=2)
    b.deploy(b.onset, "service", version, enable_chunked_prefill=False,
             max_num_batched_tokens=65536)
    end = _end(b, 0.3, 6 * HOUR, 30 * HOUR)
    ramp = Ramp(b.onset, b.onset + float(b.rng.uniform(0, 30)) * MINUTE, end or float("inf"))
    b.knobs.chunked_off = ramp
    b.knobs.long_share = (ramp, share)
    b.knobs.long_median = (ramp, float(b.rng.uniform(16_000, 24_000)))
    if end is not None:
        b.deploy(end, "service", bump(version, part=2), enable_chunked_prefill=True)
        b.incident_end = end
    b.injected.update(service_version=version, long_share=round(share, 4))


def memory_exhaustion(b: Builder) -> None:
    """``max_model_len`` is raised from 32k to 128k tokens: prompts that were refused
    (``context_length_exceeded``) are now admitted, and those beyond 50-70k tokens run the GPU
    out of memory: the request fails (HTTP 500, ``oom``), the engine dies and restarts (OOM
    kill), and the requests in flight on that replica fail with it."""
    limit = float(b.rng.uniform(50_000, 70_000))
    share = b.scale(0.006, 0.02)
    b.event(b.onset, "config_change", "service", None, None, max_model_len=131072,
            previous_max_model_len=32768)
    ramp = Ramp(b.onset, b.onset)
    b.knobs.max_model_len = (ramp, 131_072)
    b.knobs.long_share = (ramp, share)
    b.knobs.long_median = (ramp, float(b.rng.uniform(40_000, 55_000)))
    b.knobs.oom_tokens = limit
    b.injected.update(oom_prompt_tokens=round(limit), long_share=round(share, 4))


def accelerator_fault(b: Builder) -> None:
    """One replica's GPU degrades (Xid error): its decode slows 2-6x and/or 5-50% of its
    requests fail (``cuda_error``), and its utilisation metric sticks; the other replicas and
    the prompts are fine."""
    host = str(b.rng.choice(b.platform.pods))
    variant = str(b.rng.choice(["errors", "latency", "both"]))
    end = _end(b, 0.5, 4 * HOUR, 30 * HOUR)
    ramp = Ramp(b.onset, b.onset + float(b.rng.uniform(0, 10)) * MINUTE, end or float("inf"))
    slow = b.scale(2.0, 6.0) if variant != "errors" else 1.0
    rate = b.scale(0.05, 0.5) if variant != "latency" else 0.0
    b.knobs.host_fault = (ramp, host, slow, rate)
    xid = int(b.rng.choice([48, 63, 79, 94]))
    b.event(b.onset + float(b.rng.uniform(2, 15)) * MINUTE, "alert", "infra", None, host,
            alert="GPUXidError", xid=xid, gpu="0")
    if end is not None:
        b.event(end, "restart", "infra", None, host, reason="node replaced")
        b.incident_end = end
    b.injected.update(host=host, variant=variant, tpot_factor=round(slow, 3),
                      error_rate=round(rate, 4), xid=xid)


def cold_start(b: Builder) -> None:
    """The autoscaler flaps (scale-down stabilisation 600 s -> 60 s): every 35-120 minutes one
    to three replicas are added and removed; a new replica loads weights and captures CUDA
    graphs, so its first requests wait K x 150 ms exp(-age / tau) longer for their first token
    and decode 1 + K / 10 exp(-age / tau) times slower (K 20-200, tau 2-8 minutes), with an
    empty prefix cache."""
    n = len(b.platform.pods)
    b.event(b.onset, "config_change", "infra", None, None, autoscaler="hpa",
            scale_down_stabilization_s=60, previous_scale_down_stabilization_s=600)
    end = _end(b, 0.4, 12 * HOUR, 40 * HOUR)
    stop = end or b.span_s
    if end is not None:
        b.incident_end = end
        b.event(end, "config_change", "infra", None, None, autoscaler="hpa",
                scale_down_stabilization_s=600, previous_scale_down_stabilization_s=60)
    t = b.onset + float(b.rng.uniform(2, 15)) * MINUTE
    ups = 0
    while t < stop - 10 * MINUTE:
        count = int(b.rng.integers(1, 4))
        life = float(b.rng.uniform(15, 50)) * MINUTE
        for i in range(count):
            token = "".join(b.rng.choice(list("abcdefghjkmnpqrstvwxz23456789"), 5))
            name = f"{b.platform.service}-{token}-s"
            start = t + i * 20.0
            b.windows.append(PodWindow(name, start, min(start + life, b.span_s)))
            b.event(start, "scale", "infra", None, name, direction="up", replicas=n + i + 1,
                    reason="kv_cache_usage")
            if start + life < b.span_s:
                b.event(start + life, "scale", "infra", None, name, direction="down",
                        replicas=n + count - i - 1, reason="scale_down_stabilization")
            ups += 1
        t += life + float(b.rng.uniform(20, 70)) * MINUTE
    factor = b.scale(20, 200, log=True)
    tau = float(b.rng.uniform(120, 480))
    b.knobs.cold = (Ramp(b.onset, b.onset, stop), factor, tau)
    b.injected.update(factor=round(factor, 2), tau_s=round(tau, 1), scale_ups=ups)


def prefix_cache_regression(b: Builder) -> None:
    """A client release puts the current timestamp at the top of the system prompt: its
    requests no longer share a cached prefix (hit probability 0.85 -> 0-0.1), so prompt
    tokens prefilled per request, prefill time and TTFT rise at the same prompt length; the
    outputs are unchanged."""
    family, version, _ = b.platform.clients[0]
    new = bump(version, part=1)
    tau = float(b.rng.uniform(0.2, 2.0)) * HOUR
    hit = b.scale(0.1, 0.0)
    b.client_release(b.onset, family, new, tau, hit_probability=hit,
                     change="system prompt starts with the current timestamp")
    b.injected.update(client=family, client_version=new, hit_probability=round(hit, 3),
                      adoption_tau_h=round(tau / HOUR, 2))


def sampling_config_drift(b: Builder) -> None:
    """A service upgrade loads the model's ``generation_config.json`` (vLLM's default): its
    sampling defaults override the requests' (temperature and top_p move, ``max_tokens``
    defaults to 64-256 for requests that set none), so output lengths fall and the share of
    ``finish_reason = length`` climbs; model, template and prompts are unchanged."""
    version = bump(b.platform.service_version, part=1)
    b.deploy(b.onset, "service", version, generation_config="auto")
    end = _end(b, 0.3, 6 * HOUR, 30 * HOUR)
    ramp = Ramp(b.onset, b.onset + float(b.rng.uniform(0, 8)) * MINUTE, end or float("inf"))
    max_tokens = float(round(b.scale(256, 64) / 16) * 16)
    temperature = float(b.rng.choice([0.6, 1.0]))
    b.knobs.sampling = (ramp, {"temperature": temperature, "top_p": 0.95,
                               "max_tokens": max_tokens})
    if end is not None:
        b.deploy(end, "service", bump(version, part=2), generation_config="vllm")
        b.incident_end = end
    b.injected.update(service_version=version, default_max_tokens=int(max_tokens),
                      temperature=temperature)


def template_mismatch(b: Builder) -> None:
    """A redeploy ships a chat template that was never released with this model (outside
    lineage): 20-60% of answers loop until ``max_tokens`` (``finish_reason = length``),
    feedback turns bad for them; TTFT and prompts are unchanged."""
    p = b.platform
    number = int(p.template_version.rpartition("v")[2])
    wrong = f"tmpl-base-v{number + int(b.rng.integers(1, 3))}"
    b.deploy(b.onset, "template", wrong, change="tokenizer_config.json refreshed",
             template_version=wrong)
    end = _end(b, 0.4, 4 * HOUR, 30 * HOUR)
    ramp = Ramp(b.onset, b.onset + float(b.rng.uniform(0, 8)) * MINUTE, end or float("inf"))
    share = b.scale(0.2, 0.6)
    b.knobs.template_loop = (ramp, share)
    if end is not None:
        b.deploy(end, "template", p.template_version, template_version=p.template_version)
        b.incident_end = end
    b.injected.update(template_version=wrong, loop_share=round(share, 3))


PLANNERS: dict[str, Callable[[Builder], None]] = {
    name: globals()[name] for name in MODES}


def confounders(b: Builder) -> None:
    """A benign release near the onset, a traffic swing (a busy day, 1.2-1.5x for 6-16 hours,
    away from the onset) and quieter weekends."""
    rng = b.rng
    excluded = _CAUSAL.get(b.mode, set())
    options = [a for a in ("client", "service", "infra") if a not in excluded]
    artifact = str(rng.choice(options))
    offset = float(rng.uniform(0.5, 10.0)) * HOUR * (1 if rng.random() < 0.3 else -1)
    t = min(max(b.onset + offset, 0.2 * DAY), b.span_s - HOUR)
    if artifact == "client":
        family, version, _ = b.platform.clients[int(rng.integers(1, 3))]
        b.client_release(t, family, bump(version, part=2), float(rng.uniform(2, 12)) * HOUR)
    elif artifact == "service":
        b.deploy(t, "service", bump(b.version_at("service", t), part=2), change="logging only")
    else:
        b.event(t, "config_change", "infra", None, None, log_level="info")
    b.injected["confounder_deploy"] = {"artifact": artifact,
                                       "offset_hours": round((t - b.onset) / HOUR, 2)}
    day = float(rng.integers(1, max(2, int(b.span_s // DAY) - 1))) * DAY
    if abs(day + 0.5 * DAY - b.onset) < 1.5 * DAY:
        day = max(0.5 * DAY, day - 2.5 * DAY)
    length = float(rng.uniform(6, 16)) * HOUR
    factor = float(rng.uniform(1.2, 1.5))
    b.traffic_mods.append((Ramp(day, day + 2 * HOUR, day + length, 2 * HOUR), factor))
    b.weekend_factor = float(rng.uniform(0.7, 0.9))
    b.injected["confounder_swing"] = {"day": round(day / DAY, 2), "factor": round(factor, 3)}
    b.confounders.extend(CONFOUNDERS)


def drains(b: Builder) -> None:
    """Background: one to three node-drain restarts away from the onset."""
    for _ in range(int(b.rng.integers(1, 4))):
        t = float(b.rng.uniform(0.3 * DAY, b.span_s - 0.3 * DAY))
        if abs(t - b.onset) < 12 * HOUR:
            t = float(b.rng.uniform(0.3 * DAY, max(0.4 * DAY, b.onset - 12 * HOUR)))
        pod = str(b.rng.choice(b.platform.pods))
        downtime = float(b.rng.uniform(20, 90))
        b.restarts.append(Restart(t, pod, downtime))
        b.event(t + downtime, "restart", "infra", None, pod, reason="node_drain")
