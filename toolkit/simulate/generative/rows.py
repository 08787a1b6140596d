"""Request and feedback rows of a generative case, chunk by chunk (vectorised, no state).

A request arrives (traffic), is routed to a replica that is up (fleet), draws its adapter,
client, prompt length, prefix-cache hit and sampling parameters, and is served by the engine
state of its replica in that minute (:func:`~toolkit.simulate.generative.plan.engine_state`):

* ``queue_ms``: a few ms, plus the minute's queue (KV full) and a cold replica's warm-up;
* ``ttft_ms = queue_ms + prefill`` (prompt tokens not served from the prefix cache times the
  replica's prefill cost), plus the wait behind a long prompt's prefill when one is running
  (a chunk of it with chunked prefill, all of it without);
* ``tpot_ms``: the minute's decode step (grows with the batch), plus the recompute of each
  preemption spread over the output;
* ``latency_ms = ttft_ms + tpot_ms * (output_tokens - 1)``.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from toolkit.simulate import encode
from toolkit.simulate.generative.plan import (
    ADAPTERS,
    LONG_SIGMA,
    GenPlan,
    blend,
    mix_at,
)

__all__ = ["CHUNK_ROWS", "chunk", "client_vocabulary", "PARAM_TEMPERATURES"]

CHUNK_ROWS = 250_000
_MAX_TOKENS = np.array([256, 512, 1024, 2048])
PARAM_TEMPERATURES = {"chat-web": 0.7, "mobile": 0.7, "batch-api": 0.2}


def client_vocabulary(plan: GenPlan) -> list[str]:
    """``family/version`` strings: the base versions, then each release's."""
    vocab = [f"{f}/{v}" for f, v, _ in plan.platform.clients]
    vocab += [f"{f}/{v}" for _, f, v, _, _ in plan.clients]
    return vocab


def chunk(plan: GenPlan, c: int) -> tuple[pa.Table, pa.Table]:
    """Requests ``c * CHUNK_ROWS ..`` and their feedback labels."""
    p, k, st, fleet = plan.platform, plan.knobs, plan.state, plan.fleet
    lo, hi = c * CHUNK_ROWS, min((c + 1) * CHUNK_ROWS, plan.rows)
    n = hi - lo
    rng = np.random.default_rng([*plan.key, 100, c])
    t = plan.traffic.arrival_times(np.arange(lo, hi), rng.random(n), plan.rows)
    pod = fleet.route(t, rng.random(n))
    g = fleet.cell(t)

    # who asks what
    mix = mix_at(p, k, t)
    adapter = np.minimum((rng.random(n)[:, None] > np.cumsum(mix, axis=1)).sum(axis=1),
                         len(ADAPTERS) - 1)
    shares = np.array([s for _, _, s in p.clients])
    family = np.minimum(np.searchsorted(np.cumsum(shares / shares.sum()), rng.random(n)),
                        len(shares) - 1)
    client = family.copy()
    hit_p = np.full(n, p.hit_probability)
    u_adopt = rng.random(n)
    names = [f for f, _, _ in p.clients]
    for i, (t0, fam, _, tau, hit) in enumerate(sorted(plan.clients)):
        adopted = (family == names.index(fam)) & (t >= t0) & \
            (u_adopt < 1 - np.exp(-(t - t0) / tau))
        client = np.where(adopted, len(p.clients) + i, client)
        if hit is not None:
            hit_p = np.where(adopted, hit, hit_p)

    long_share = blend(k.long_share, t, p.long_share)
    is_long = rng.random(n) < long_share
    rel = np.array(list(ADAPTERS.values()))[adapter]
    mult = blend(k.prompt_mult, t, 1.0)
    short = p.prompt_median * mult * rel * np.exp(p.prompt_sigma * rng.standard_normal(n))
    long_median = blend(k.long_median, t, p.long_median)
    long = long_median * np.exp(LONG_SIGMA * rng.standard_normal(n))
    input_tokens = np.maximum(np.round(np.where(is_long, long, short)), 4).astype(np.int64)
    max_len = blend(k.max_model_len, t, p.max_model_len)
    too_long = input_tokens > max_len

    # replica age (cold starts) and prefix cache
    age = fleet.age(t, pod)
    cold_factor = np.zeros(n)
    warm_cache = np.ones(n, dtype=bool)
    if k.cold is not None:
        ramp, factor, tau = k.cold
        new_pod = pod >= len(p.pods)
        cold_factor = np.where(new_pod & ramp.active(t), factor * np.exp(-age / tau), 0.0)
        warm_cache = ~(new_pod & (age < 2 * tau))
    system = np.array(p.system_prompt)[adapter]
    hit = (rng.random(n) < hit_p) & warm_cache & ~is_long
    cached = np.where(hit, np.minimum(system, ((input_tokens - 1) // 16) * 16), 0)
    cached = np.maximum(cached, 0).astype(np.int64)

    # sampling parameters (effective, as the engine logs them)
    explicit = rng.random(n) < p.explicit_max_share
    asked = _MAX_TOKENS[rng.choice(4, n, p=[0.1, 0.3, 0.35, 0.25])]
    temperature = np.array([PARAM_TEMPERATURES.get(f, 0.7) for f in names])[family]
    top_p = np.where(family == 2, 0.9, 1.0)
    max_tokens = np.where(explicit, asked, p.server_max_tokens).astype(np.float64)
    if k.sampling is not None:
        ramp, values = k.sampling
        override = rng.random(n) < ramp.weight(t)
        temperature = np.where(override, values["temperature"], temperature)
        top_p = np.where(override, values["top_p"], top_p)
        max_tokens = np.where(override & ~explicit, values["max_tokens"], max_tokens)
    max_tokens = max_tokens.astype(np.int64)

    # outputs
    out_mult = blend(k.output_mult, t, 1.0)
    out = np.round(p.output_median * out_mult * np.exp(p.output_sigma *
                                                       rng.standard_normal(n)))
    out = np.maximum(out, 1).astype(np.int64)
    loop = rng.random(n) < blend(k.template_loop, t, 0.0)
    out = np.where(loop, max_tokens, out)
    quality = k.quality
    refusal_rate = p.refusal_rate * _quality(quality, t, "refusal_factor")
    refused = rng.random(n) < refusal_rate
    out = np.where(refused, rng.integers(12, 60, n), out)
    aborted = ~refused & (rng.random(n) < 0.004)
    out = np.where(aborted, np.maximum(1, (out * rng.random(n)).astype(np.int64)), out)
    length = out >= max_tokens
    out = np.minimum(out, max_tokens)
    finish = np.where(refused, 4, np.where(length, 1, np.where(aborted, 2, 0)))

    # engine timings
    cell = (g, pod)
    queue = rng.exponential(4.0, n) + st.queue_ms[cell] * rng.gamma(2.0, 0.5, n)
    queue += cold_factor * 150.0 * rng.uniform(0.7, 1.3, n)
    cost = p.prefill_ms_per_token * rng.uniform(0.9, 1.1, n)
    prefill = (input_tokens - cached) * cost + 6.0
    off = np.zeros(n, dtype=bool) if k.chunked_off is None else \
        rng.random(n) < k.chunked_off.weight(t)
    residual = np.where(off, long_median * p.prefill_ms_per_token, p.chunk_tokens *
                        p.prefill_ms_per_token)
    busy = ~is_long & (rng.random(n) < st.long_busy[cell])
    wait = np.where(busy, residual * rng.random(n), 0.0)
    ttft = queue + prefill + wait
    preemptions = rng.poisson(st.preempt_rate[cell]).astype(np.int64)
    recompute = preemptions * (input_tokens + out / 2) * cost
    # a cold replica also decodes slowly until its CUDA graphs and kernels are warm
    tpot = st.tpot_ms[cell] * np.exp(0.08 * rng.standard_normal(n)) * (1 + cold_factor / 10) + \
        recompute / np.maximum(out - 1, 1)
    latency = ttft + tpot * np.maximum(out - 1, 0)
    in_flight = rng.poisson(np.maximum(st.running[cell], 0.0)).astype(np.int64)

    # failures
    error = np.full(n, -1)  # index into _ERRORS
    error = np.where(too_long, 0, error)
    if np.isfinite(k.oom_tokens):
        error = np.where(~too_long & (input_tokens > k.oom_tokens), 1, error)
        crashes = plan.injected.get("_crashes", {})
        for j, times in crashes.items():
            times = np.asarray(times)
            if not len(times):
                continue
            i = np.searchsorted(times, t, side="right") - 1
            near = (pod == int(j)) & (i >= 0) & (t - times[np.maximum(i, 0)] < 45.0)
            error = np.where(near & (error < 0), 2, error)
    if k.host_fault is not None:
        ramp, host, _, rate = k.host_fault
        if host in fleet.names and rate > 0:
            j = fleet.names.index(host)
            bad = (pod == j) & (rng.random(n) < rate * ramp.weight(t))
            error = np.where(bad & (error < 0), 3, error)
    failed = error >= 0
    http = np.where(failed, np.array([400, 500, 503, 500])[np.maximum(error, 0)], 200)
    fail_latency = np.where(error == 0, rng.uniform(3, 15, n), np.where(
        error == 1, queue + prefill * rng.uniform(0.3, 0.9, n), rng.uniform(5, 2_000, n)))
    out = np.where(failed, 0, out)
    finish = np.where(failed, np.where(error == 0, -1, 3), finish)
    latency = np.where(failed, fail_latency, latency)
    ttft = np.where(failed, np.nan, ttft)
    tpot = np.where(failed | (out < 2), np.nan, tpot)
    cached = np.where(error == 0, 0, cached)
    preemptions = np.where(failed, 0, preemptions)

    model_codes, model_vocab = plan.version_at("model", t)
    tmpl_codes, tmpl_vocab = plan.version_at("template", t)
    params_codes, params_vocab = _params(temperature, top_p, max_tokens)
    start_us = int(plan.start.timestamp() * 1_000_000)
    ids = encode.ids(plan.id_prefix, np.arange(lo, hi))
    requests = pa.table({
        "request_id": ids,
        "ts": encode.timestamps(start_us, t),
        "endpoint": encode.strings(np.zeros(n, dtype=np.int32), [p.service]),
        "model_name": encode.strings(np.zeros(n, dtype=np.int32), [p.model_name]),
        "model_version": encode.strings(model_codes, model_vocab),
        "client_version": encode.strings(client, client_vocabulary(plan)),
        "host": encode.strings(pod, list(fleet.names)),
        "latency_ms": encode.floats(np.round(latency, 3)),
        "status": encode.strings(np.where(failed, 1, 0), ["ok", "error"]),
        "http_status": encode.ints(http),
        "error_type": encode.strings(error, list(_ERRORS)),
        "in_flight": encode.ints(in_flight),
        "input_tokens": encode.ints(input_tokens),
        "output_tokens": encode.ints(out),
        "cached_tokens": encode.ints(cached),
        "ttft_ms": encode.floats(np.round(ttft, 3)),
        "tpot_ms": encode.floats(np.round(tpot, 4)),
        "queue_ms": encode.floats(np.round(np.where(error == 0, np.nan, queue), 3)),
        "finish_reason": encode.strings(finish, list(_FINISH)),
        "preemptions": encode.ints(preemptions),
        "params": encode.strings(params_codes, params_vocab),
        "template_version": encode.strings(tmpl_codes, tmpl_vocab),
        "adapter": encode.strings(adapter, list(ADAPTERS)),
    })

    # feedback: good / bad for a share of the answered requests
    asked_feedback = ~failed & (rng.random(n) < p.label_share)
    bad = p.bad_rate * _quality(quality, t, "bad_factor")
    bad = np.where(length, np.maximum(bad, 0.35), bad)
    bad = np.where(loop & length, 0.75, bad)
    bad = np.where(refused, 0.5, bad)
    if k.sampling is not None:
        bad = bad + 0.04 * k.sampling[0].weight(t)
    label_bad = rng.random(n) < np.clip(bad, 0, 0.95)
    labeled_at = t + latency / 1000.0 + rng.exponential(900.0, n)
    keep = asked_feedback & (labeled_at < plan.span_s)
    labels = pa.table({
        "request_id": ids.filter(pa.array(keep)),
        "label": encode.strings(np.where(label_bad[keep], 1, 0), ["good", "bad"]),
        "labeled_at": encode.timestamps(start_us, labeled_at[keep]),
    })
    return requests, labels


_ERRORS = ("context_length_exceeded", "oom", "engine_dead", "cuda_error")
_FINISH = ("stop", "length", "abort", "error", "content_filter")


def _quality(knob, t: np.ndarray, name: str) -> np.ndarray:
    if knob is None:
        return np.ones(len(t))
    ramp, values = knob
    return 1 + ramp.weight(t) * (float(values.get(name, 1.0)) - 1)


def _params(temperature: np.ndarray, top_p: np.ndarray, max_tokens: np.ndarray
            ) -> tuple[np.ndarray, list[str]]:
    """Codes into the JSON texts of the distinct parameter combinations."""
    combos = np.stack([temperature, top_p, max_tokens.astype(np.float64)], axis=1)
    unique, codes = np.unique(combos, axis=0, return_inverse=True)
    vocab = [json.dumps({"temperature": float(a), "top_p": float(b), "max_tokens": int(c)})
             for a, b, c in unique]
    return codes.reshape(-1).astype(np.int32), vocab
