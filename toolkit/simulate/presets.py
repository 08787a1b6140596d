"""The published scenarios, with their figures, as presets of :func:`make_case`.

Each preset fixes the failure mode and the parameters that carry its figures; everything else
(platform details, noise) still follows the seed. The figures are not written into the data:
they come out of the generating process (the shift that yields 0.74 precision is solved for,
the latency knee is where memory runs out, ...), and the tests measure them on the tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from toolkit.simulate.serving import GIB

__all__ = ["Preset", "PRESETS"]


@dataclass(frozen=True)
class Preset:
    """One published scenario.

    Attributes
    ----------
    name, failure_mode, title
        Identity and one-line summary.
    figures
        The scenario's published numbers (also reported in ``truth.json``).
    span_days, onset_day
        Length of the case and the day the failure starts.
    baseline_precision
        Precision of the positive class the baseline model is tuned to.
    severity
        Fixed severity (0 subtle .. 1 blatant) for magnitudes the preset does not fix.
    requires
        Evidence forced present (see :data:`toolkit.simulate.serving.REQUIREMENTS`).
    platform
        Platform fields fixed by the scenario.
    params
        Mode parameters read by the failure-mode planner.
    """

    name: str
    failure_mode: str
    title: str
    figures: dict[str, Any]
    span_days: float = 14.0
    onset_day: float | None = None
    baseline_precision: float | None = None
    severity: float | None = None
    optional_features: int | None = None
    requires: frozenset[str] = frozenset()
    platform: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "gradual-shift-8w",
            "covariate_shift",
            "Distribution shift takes precision from 0.91 to 0.74 over 8 weeks",
            {"precision_baseline": 0.91, "precision_final_week": 0.74, "weeks": 8},
            span_days=14.0 + 56.0,
            onset_day=14.0,
            baseline_precision=0.91,
            optional_features=0,
            requires=frozenset({"labels"}),
            platform={"label_coverage": 0.75, "label_delay_h": 10.0, "metric_step_s": 60,
                      "n_pods": 4, "gpu": False},
            params={"variant": "travel", "gradual": True, "ramp_s": 56 * 86400.0,
                    "target_precision": 0.74},
        ),
        Preset(
            "gpu-oom-16gb",
            "memory_exhaustion",
            "16 GB GPU: at 40 concurrent requests latency rises from 180 ms to 4,200 ms "
            "and the pod is OOM-killed",
            {"gpu_memory_total_bytes": 16 * GIB, "knee_in_flight": 40, "latency_ms_before": 180,
             "latency_ms_at_knee": 4200},
            onset_day=9.3,
            severity=0.6,
            requires=frozenset({"in_flight", "gpu"}),
            platform={"gpu": True, "gpu_memory_total_bytes": 16 * GIB,
                      "gpu_model_bytes": 6 * GIB, "latency_ms": 180.0, "concurrency": 9.0,
                      "traffic_amplitude": 0.5, "client_timeout_ms": 30000},
            params={"knee": 40.0, "latency_ms_saturated": 4200.0, "hold_h": 4.0},
        ),
        Preset(
            "rollback-feature-order",
            "version_skew",
            "A model rollback restores an older model while the preprocessing pipeline keeps a "
            "new feature order: valid-schema inputs in the wrong positions, confidently wrong "
            "outputs",
            {"pair_not_in_lineage": True, "mean_score_after_min": 0.9,
             "accuracy_after_max": 0.75},
            onset_day=9.5,
            optional_features=0,
            requires=frozenset({"labels", "lineage", "pipeline_version"}),
            platform={"label_coverage": 0.6, "label_delay_h": 6.0},
            params={"permutation": (("amount_usd", "account_age_days"),
                                    ("distance_km", "amount_usd"),
                                    ("account_age_days", "distance_km")),
                    "mitigated": False},
        ),
        Preset(
            "int8-overconfidence",
            "calibration_collapse",
            "8-bit quantization keeps accuracy within 1.2% of baseline while scores become "
            "overconfident against a 0.85 decision threshold",
            {"accuracy_within": 0.012, "decision_threshold": 0.85},
            onset_day=8.0,
            baseline_precision=0.9,
            requires=frozenset({"labels"}),
            platform={"label_coverage": 0.7, "label_delay_h": 6.0},
            params={"temperature": 4.0, "quantization_noise": 0.1, "decision_threshold": 0.85},
        ),
        Preset(
            "stale-cache-72h",
            "cache_staleness",
            "A 72-hour-TTL cache serves pre-update outputs for up to 3 days after a model "
            "update",
            {"cache_ttl_s": 72 * 3600, "stale_hours_max": 72},
            onset_day=8.5,
            requires=frozenset({"cache"}),
            platform={"cache_hit_rate": 0.4},
            params={"ttl_s": 72 * 3600.0},
        ),
    )
}
