"""The serving platform of one case: replicas, hardware, what the platform logs, clients.

Real platforms differ in what their exports carry. Which optional request columns
(``in_flight``, ``cache_hit`` / ``cache_model_version``, ``pipeline_version``,
``client_version``) and optional tables (``reference``, ``lineage``, ``labels``) exist is drawn
from the seed, except that the evidence a failure mode needs is always there
(:data:`REQUIREMENTS`).

Examples
--------
>>> import numpy as np
>>> p = draw(np.random.default_rng(0), requires={"in_flight"})
>>> "in_flight" in p.columns, 4 <= len(p.pods) <= 8
(True, True)
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import numpy as np

__all__ = ["Platform", "ClientFamily", "draw", "REQUIREMENTS", "OPTIONAL_COLUMNS", "GIB"]

GIB = 1 << 30
#: Optional request columns (``cache`` stands for ``cache_hit`` and ``cache_model_version``).
OPTIONAL_COLUMNS = ("in_flight", "cache", "pipeline_version", "client_version")
#: Evidence each failure mode needs, always present in its cases.
REQUIREMENTS: dict[str, frozenset[str]] = {
    "none": frozenset(),
    "covariate_shift": frozenset(),
    "schema_mismatch": frozenset({"pipeline_version"}),
    "null_injection": frozenset(),
    "unit_change": frozenset(),
    "concept_drift": frozenset({"labels"}),
    "calibration_collapse": frozenset({"labels"}),
    "bad_release": frozenset({"labels"}),
    "adversarial_inputs": frozenset({"labels", "client_version"}),
    "memory_exhaustion": frozenset({"in_flight"}),
    "memory_leak": frozenset(),
    "cold_start": frozenset(),
    "accelerator_fault": frozenset({"gpu"}),
    "version_skew": frozenset({"pipeline_version", "lineage", "labels"}),
    "api_contract_mismatch": frozenset({"client_version"}),
    "timeout_misconfiguration": frozenset({"client_version"}),
    "cache_staleness": frozenset({"cache"}),
}


@dataclass(frozen=True)
class ClientFamily:
    """A calling application: its share of traffic, endpoint and first version."""

    name: str
    share: float
    endpoint: str
    version: str


@dataclass(frozen=True)
class Platform:
    """Everything about the serving platform that does not depend on the failure mode."""

    model_name: str
    service: str
    pods: tuple[str, ...]
    gpu: bool
    gpu_memory_total_bytes: int
    gpu_model_bytes: int
    memory_limit_bytes: int
    memory_base_fraction: float
    metric_step_s: int
    columns: frozenset[str]
    reference: bool
    lineage: bool
    labels: bool
    label_coverage: float
    label_delay_h: float
    cache_hit_rate: float
    latency_ms: float
    latency_sigma: float
    tail_share: float
    concurrency: float
    capacity: float
    client_timeout_ms: int
    traffic_amplitude: float
    peak_hour: float
    clients: tuple[ClientFamily, ...]
    model_version: str
    pipeline_version: str
    service_version: str
    #: Exported at all (the varied world may leave them out).
    metrics: bool = True
    events: bool = True
    host_column: bool = True

    def has(self, column: str) -> bool:
        return column in self.columns

    def pod_name(self, rng: np.random.Generator) -> str:
        """A new pod name of this deployment (``service-<hash>-<suffix>``)."""
        return f"{self.service}-{self.pods[0].split('-')[-2]}-{_token(rng, 5)}"


def _token(rng: np.random.Generator, length: int) -> str:
    alphabet = np.array(list(string.ascii_lowercase + string.digits))
    return "".join(rng.choice(alphabet, size=length))


def semver(rng: np.random.Generator, major: tuple[int, int]) -> str:
    return f"{rng.integers(*major)}.{rng.integers(0, 20)}.{rng.integers(0, 10)}"


def bump(version: str, *, part: int = 1) -> str:
    """``3.4.1`` -> ``3.5.0`` (part 1) or ``3.4.2`` (part 2); keeps a ``name-`` prefix."""
    prefix, _, number = version.rpartition("-")
    nums = [int(x) for x in number.split(".")]
    nums[part] += 1
    nums[part + 1:] = [0] * (len(nums) - part - 1)
    text = ".".join(str(x) for x in nums)
    return f"{prefix}-{text}" if prefix else text


def draw(
    rng: np.random.Generator,
    *,
    requires: frozenset[str] | set[str] = frozenset(),
    overrides: dict | None = None,
) -> Platform:
    """Draw a platform; ``requires`` forces evidence present, ``overrides`` fixes fields."""
    overrides = dict(overrides or {})
    service = str(rng.choice(["fraud-scorer", "risk-scoring", "txn-guard", "fraud-model"]))
    pod_hash = _token(rng, 9)
    n_pods = int(overrides.pop("n_pods", rng.integers(4, 9)))
    pods = tuple(f"{service}-{pod_hash}-{_token(rng, 5)}" for _ in range(n_pods))
    gpu = bool(rng.random() < 0.7) or "gpu" in requires
    gpu_total = int(rng.choice([16, 24, 40, 80])) * GIB
    columns = {c for c, p in zip(OPTIONAL_COLUMNS, (0.7, 0.4, 0.8, 0.9), strict=True)
               if rng.random() < p}
    columns |= {c for c in OPTIONAL_COLUMNS if c in requires}
    families = (
        ClientFamily("web", 0.35, "/v2/score", f"web-2026.{rng.integers(1, 3)}.{rng.integers(0, 6)}"),
        ClientFamily("ios", 0.25, "/v2/score", f"ios-{semver(rng, (6, 9))}"),
        ClientFamily("android", 0.30, "/v2/score", f"android-{semver(rng, (6, 9))}"),
        ClientFamily("partner", 0.10, "/v1/score", f"partner-api-{semver(rng, (1, 3))}"),
    )
    fields = dict(
        model_name=service.replace("-scorer", "").replace("-scoring", "") + "-clf",
        service=service,
        pods=pods,
        gpu=gpu,
        gpu_memory_total_bytes=gpu_total,
        gpu_model_bytes=int(gpu_total * rng.uniform(0.25, 0.45)),
        memory_limit_bytes=int(rng.choice([8, 16, 32])) * GIB,
        memory_base_fraction=float(rng.uniform(0.35, 0.5)),
        metric_step_s=int(rng.choice([30, 45, 60], p=[0.2, 0.3, 0.5])),
        columns=frozenset(columns),
        reference=bool(rng.random() < 0.75) or "reference" in requires,
        lineage=bool(rng.random() < 0.6) or "lineage" in requires,
        labels=bool(rng.random() < 0.85) or "labels" in requires,
        label_coverage=float(rng.uniform(0.3, 0.8)),
        label_delay_h=float(rng.uniform(3.0, 30.0)),
        cache_hit_rate=float(rng.uniform(0.2, 0.45)),
        latency_ms=float(rng.uniform(25.0, 160.0)),
        latency_sigma=float(rng.uniform(0.25, 0.4)),
        tail_share=float(rng.uniform(0.004, 0.012)),
        concurrency=float(rng.uniform(5.0, 12.0)),
        capacity=float(rng.uniform(40.0, 60.0)),
        client_timeout_ms=int(rng.choice([3000, 5000, 10000])),
        traffic_amplitude=float(rng.uniform(0.45, 0.7)),
        peak_hour=float(rng.uniform(14.0, 20.0)),
        clients=families,
        model_version=semver(rng, (2, 5)),
        pipeline_version=f"fe-{semver(rng, (1, 3))}",
        service_version=f"serve-{semver(rng, (1, 2))}",
    )
    for key, value in overrides.items():
        if key == "columns":
            value = frozenset(value) | fields["columns"]
        fields[key] = value
    return Platform(**fields)
