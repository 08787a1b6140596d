"""Infrastructure metrics: one long-format frame per pod (``ts, host, name, value, labels``).

Metrics cover the investigation window (from three days before the onset to the end, at most
the 15 days of Prometheus' default retention), at the platform's step. Values come from the fleet's grid (the same in-flight counts and memory the
requests saw):
``in_flight``, ``cpu_utilization`` (0-1), ``memory_used_bytes`` / ``memory_limit_bytes``, and
on GPU platforms ``gpu_memory_used_bytes`` / ``gpu_memory_total_bytes`` / ``gpu_utilization``;
plus the service-wide ``replicas`` count (no host).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from toolkit.simulate import encode
from toolkit.simulate.effects import GpuFault
from toolkit.simulate.plan import Plan

__all__ = ["metric_chunks", "metric_names"]

_LABELS = json.dumps({"namespace": "ml-serving", "container": "model-server"})
_GPU_LABELS = json.dumps({"namespace": "ml-serving", "container": "model-server", "gpu": "0"})


def metric_names(plan: Plan) -> tuple[str, ...]:
    names = ("in_flight", "cpu_utilization", "memory_used_bytes", "memory_limit_bytes")
    if plan.platform.gpu:
        names += ("gpu_memory_used_bytes", "gpu_memory_total_bytes", "gpu_utilization")
    return names


def metric_chunks(plan: Plan) -> Iterator[pa.Table]:
    """One table per pod, then one for ``replicas``."""
    fleet, p = plan.fleet, plan.platform
    start_us = int(plan.start.timestamp() * 1_000_000)
    faults = plan.effects_of(GpuFault)
    first = int(np.ceil(plan.metrics_from / fleet.step))
    for j, host in enumerate(fleet.names):
        cells = np.flatnonzero(fleet.alive[first:, j]) + first
        if not len(cells):
            continue
        rng = np.random.default_rng([*plan.key, 2, j])
        t = cells * fleet.step
        n = fleet.inflight[cells, j].astype(np.float64)
        m = len(cells)
        values: dict[str, np.ndarray] = {
            "in_flight": n,
            "cpu_utilization": np.clip(0.06 + 0.7 * n / p.capacity + rng.normal(0, 0.02, m),
                                       0.01, 1.0),
            "memory_used_bytes": np.minimum(
                p.memory_limit_bytes * fleet.memory[cells, j] + plan.memory_per_request * n,
                p.memory_limit_bytes),
            "memory_limit_bytes": np.full(m, float(p.memory_limit_bytes)),
        }
        if p.gpu:
            total = float(p.gpu_memory_total_bytes)
            used = p.gpu_model_bytes + plan.gpu_per_request * n + rng.normal(0, 0.004 * total, m)
            util = np.clip(0.05 + 0.85 * n / p.capacity + rng.normal(0, 0.03, m), 0.0, 1.0)
            for f in faults:
                if f.host == host:
                    stuck = f.ramp.active(t)
                    util = np.where(stuck, np.clip(f.utilization + rng.normal(0, 0.005, m),
                                                   0.0, 1.0), util)
            values.update(gpu_memory_used_bytes=np.clip(used, 0.0, total),
                          gpu_memory_total_bytes=np.full(m, total), gpu_utilization=util)
        names = metric_names(plan)
        which = np.repeat(np.arange(len(names)), m)
        labels = [_GPU_LABELS if name.startswith("gpu") else _LABELS for name in names]
        yield pa.table({
            "ts": encode.timestamps(start_us, np.tile(t, len(names))),
            "host": encode.strings(np.zeros(len(which), dtype=np.int32), [host]),
            "name": encode.strings(which, names),
            "value": pa.array(np.round(np.concatenate([values[k] for k in names]), 6)),
            "labels": encode.strings(which, labels),
        })
    cells = np.arange(first, fleet.alive.shape[0])
    zeros = np.zeros(len(cells), dtype=np.int32)
    yield pa.table({
        "ts": encode.timestamps(start_us, cells * fleet.step),
        "host": pa.nulls(len(cells), pa.string()),
        "name": encode.strings(zeros, ["replicas"]),
        "value": pa.array(fleet.n_alive[first:].astype(np.float64)),
        "labels": encode.strings(zeros, [json.dumps({"namespace": "ml-serving"})]),
    })
