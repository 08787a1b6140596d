"""Engine metrics, events, lineage and the endpoints catalog of a generative case.

Metrics are per replica at the engine-state step (60 s), from three days before the onset, with
the canonical names of DESIGN section 3a (the source's vLLM name in ``labels``):
``kv_cache_usage`` (0-1), ``requests_running``, ``requests_waiting``, the counters
``preemptions_total``, ``prompt_tokens_total``, ``generation_tokens_total``,
``prefix_cache_queries_total``, ``prefix_cache_hits_total`` (reset to 0 when the replica
restarts, as Prometheus counters do), and ``gpu_utilization``, ``gpu_memory_used_bytes``,
``gpu_memory_total_bytes``; plus the service-wide ``replicas``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa

from toolkit.simulate import encode
from toolkit.simulate.generative.plan import GenPlan

__all__ = ["metric_tables", "events_frame", "lineage_frame", "endpoints_frame",
           "features_frame", "METRIC_NAMES", "SOURCE_NAMES"]

#: Canonical name -> the vLLM metric it stands for.
SOURCE_NAMES = {
    "kv_cache_usage": "vllm:kv_cache_usage_perc",
    "requests_running": "vllm:num_requests_running",
    "requests_waiting": "vllm:num_requests_waiting",
    "preemptions_total": "vllm:num_preemptions_total",
    "prompt_tokens_total": "vllm:prompt_tokens_total",
    "generation_tokens_total": "vllm:generation_tokens_total",
    "prefix_cache_queries_total": "vllm:prefix_cache_queries_total",
    "prefix_cache_hits_total": "vllm:prefix_cache_hits_total",
    "gpu_utilization": "DCGM_FI_DEV_GPU_UTIL",
    "gpu_memory_used_bytes": "DCGM_FI_DEV_FB_USED",
    "gpu_memory_total_bytes": "DCGM_FI_DEV_FB_TOTAL",
}
METRIC_NAMES = tuple(SOURCE_NAMES)
_GPU_BYTES = 80 * (1 << 30)


def _counter(rate_per_step: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Cumulative sum that restarts at 0 at every ``True`` of ``starts``."""
    total = np.cumsum(rate_per_step)
    base = np.where(starts, total - rate_per_step, np.nan)
    base[0] = 0.0 if not starts[0] else base[0]
    base = pd.Series(base).ffill().fillna(0.0).to_numpy()
    return total - base


def metric_tables(plan: GenPlan) -> Iterator[pa.Table]:
    """One table per replica, then one for ``replicas``."""
    fleet, st, p = plan.fleet, plan.state, plan.platform
    step = fleet.step
    start_us = int(plan.start.timestamp() * 1_000_000)
    first = int(np.ceil(plan.metrics_from / step))
    hit_share = plan.injected.get("_hit_share")
    fault = plan.knobs.host_fault
    crashes = plan.injected.get("_crashes", {})
    for j, host in enumerate(fleet.names):
        alive = fleet.alive[:, j]
        restarted = np.concatenate([[True], alive[1:] & ~alive[:-1]])
        rng = np.random.default_rng([*plan.key, 2, j])
        cells = np.flatnonzero(alive[first:]) + first
        if not len(cells):
            continue
        a = st.arrivals[:, j].astype(np.float64) * step
        served = np.where(st.waiting[:, j] > 0, np.minimum(a, st.running[:, j] /
                                                           np.maximum(st.output_mean *
                                                                      st.tpot_ms[:, j] /
                                                                      1000.0, 1e-9) * step), a)
        prompt = a * st.prompt_mean
        cached = st.cached_share if hit_share is None else st.cached_share * hit_share
        values = {
            "kv_cache_usage": np.clip(st.usage[:, j] + rng.normal(0, 0.01, len(a)), 0.0, 1.0),
            "requests_running": rng.poisson(st.running[:, j]).astype(np.float64),
            "requests_waiting": np.round(st.waiting[:, j]).astype(np.float64),
            "preemptions_total": _counter(a * st.preempt_rate[:, j], restarted),
            "prompt_tokens_total": _counter(prompt, restarted),
            "generation_tokens_total": _counter(served * st.output_mean, restarted),
            "prefix_cache_queries_total": _counter(prompt, restarted),
            "prefix_cache_hits_total": _counter(prompt * cached, restarted),
        }
        util = np.clip(0.15 + 0.8 * st.running[:, j] / (st.running[:, j] + 40.0) +
                       rng.normal(0, 0.02, len(a)), 0.0, 1.0)
        mid = (np.arange(len(a)) + 0.5) * step
        if fault is not None and fault[1] == host:
            stuck = fault[0].active(mid)
            util = np.where(stuck, np.clip(1.0 + rng.normal(0, 0.002, len(a)), 0.0, 1.0), util)
        # vLLM preallocates gpu_memory_utilization of the GPU (weights + KV cache) at start
        used = np.full(len(a), p.gpu_memory_utilization * _GPU_BYTES) + \
            rng.normal(0, 0.001 * _GPU_BYTES, len(a))
        for t_crash in crashes.get(str(j), ()):
            near = (mid >= t_crash - 3 * step) & (mid < t_crash)
            used = np.where(near, 0.995 * _GPU_BYTES, used)
        values.update(gpu_utilization=util, gpu_memory_used_bytes=np.clip(used, 0, _GPU_BYTES),
                      gpu_memory_total_bytes=np.full(len(a), float(_GPU_BYTES)))
        m = len(cells)
        which = np.repeat(np.arange(len(METRIC_NAMES)), m)
        labels = [json.dumps({"source": SOURCE_NAMES[name], "model_name": p.model_name,
                              **({"gpu": "0"} if name.startswith("gpu") else {})})
                  for name in METRIC_NAMES]
        yield pa.table({
            "ts": encode.timestamps(start_us, np.tile(cells * step, len(METRIC_NAMES))),
            "host": encode.strings(np.zeros(len(which), dtype=np.int32), [host]),
            "name": encode.strings(which, METRIC_NAMES),
            "value": pa.array(np.round(np.concatenate([values[k][cells]
                                                       for k in METRIC_NAMES]), 6)),
            "labels": encode.strings(which, labels),
        })
    cells = np.arange(first, fleet.alive.shape[0])
    zeros = np.zeros(len(cells), dtype=np.int32)
    yield pa.table({
        "ts": encode.timestamps(start_us, cells * step),
        "host": pa.nulls(len(cells), pa.string()),
        "name": encode.strings(zeros, ["replicas"]),
        "value": pa.array(fleet.n_alive[first:].astype(np.float64)),
        "labels": encode.strings(zeros, [json.dumps({"source": "kube_deployment_status_"
                                                               "replicas_available"})]),
    })


def _ts(plan: GenPlan, seconds) -> pd.Series:
    base = pd.Timestamp(plan.start)
    return base + pd.to_timedelta(np.round(np.asarray(seconds, dtype=np.float64) * 1e6)
                                  .astype(np.int64), unit="us")


def events_frame(plan: GenPlan) -> pd.DataFrame:
    """``ts, kind, artifact, version, host, detail`` (detail as JSON text), by time."""
    events = sorted(plan.events, key=lambda e: (e.t, e.kind, e.host or ""))
    return pd.DataFrame({
        "ts": _ts(plan, [e.t for e in events]),
        "kind": [e.kind for e in events],
        "artifact": [e.artifact for e in events],
        "version": [e.version for e in events],
        "host": [e.host for e in events],
        "detail": [json.dumps(e.detail, sort_keys=True) for e in events],
    })


def lineage_frame(plan: GenPlan) -> pd.DataFrame:
    """The (model, chat template) pairs released together."""
    rows = plan.lineage
    return pd.DataFrame({
        "release": [f"release-{i + 1:03d}" for i in range(len(rows))],
        "model_version": [m for m, _, _ in rows],
        "pipeline_version": pd.Series([None] * len(rows), dtype=object),
        "client_version": pd.Series([None] * len(rows), dtype=object),
        "created_at": _ts(plan, [c for _, _, c in rows]),
        "template_version": [t for _, t, _ in rows],
    })


def endpoints_frame(plan: GenPlan) -> pd.DataFrame:
    """The endpoints catalog: the one generative endpoint."""
    return pd.DataFrame({"endpoint": [plan.platform.service], "task": ["generative"],
                         "positive_class": pd.Series([None], dtype=object),
                         "classes": pd.Series([None], dtype=object),
                         "interval_coverage": pd.Series([None], dtype="float64")})


def features_frame(plan: GenPlan) -> pd.DataFrame:  # noqa: ARG001 - same signature as others
    """No model-input feature columns: an empty catalog."""
    return pd.DataFrame({"name": pd.Series([], dtype=object), "kind": pd.Series([], dtype=object),
                         "position": pd.Series([], dtype="int64"),
                         "unit": pd.Series([], dtype=object)})
