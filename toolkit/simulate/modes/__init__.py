"""The failure taxonomy (DESIGN section 4) and one planner per failure mode.

A planner reads the builder's context (platform, features, model, onset, severity) and writes
what its failure does: effects, deploys and events, traffic changes, pod changes, and the
``injected`` parameters reported in ``truth.json``. An optional finalizer runs once the fleet
is laid out (e.g. to date the onset of a memory exhaustion from the load it reached).
"""

from __future__ import annotations

from collections.abc import Callable

from toolkit.simulate.modes import data, infra, integration, model

__all__ = ["FAILURE_MODES", "PATHWAYS", "PLANNERS", "FINALIZERS"]

#: Failure mode -> causal pathway, in DESIGN order; ``none`` is a healthy period.
FAILURE_MODES: dict[str, str] = {
    "covariate_shift": "data",
    "schema_mismatch": "data",
    "null_injection": "data",
    "unit_change": "data",
    "concept_drift": "model",
    "calibration_collapse": "model",
    "bad_release": "model",
    "adversarial_inputs": "model",
    "memory_exhaustion": "infrastructure",
    "memory_leak": "infrastructure",
    "cold_start": "infrastructure",
    "accelerator_fault": "infrastructure",
    "version_skew": "integration",
    "api_contract_mismatch": "integration",
    "timeout_misconfiguration": "integration",
    "cache_staleness": "integration",
    "none": "none",
}
PATHWAYS: tuple[str, ...] = ("data", "model", "infrastructure", "integration")

PLANNERS: dict[str, Callable] = {
    "covariate_shift": data.covariate_shift,
    "schema_mismatch": data.schema_mismatch,
    "null_injection": data.null_injection,
    "unit_change": data.unit_change,
    "concept_drift": model.concept_drift,
    "calibration_collapse": model.calibration_collapse,
    "bad_release": model.bad_release,
    "adversarial_inputs": model.adversarial_inputs,
    "memory_exhaustion": infra.memory_exhaustion,
    "memory_leak": infra.memory_leak,
    "cold_start": infra.cold_start,
    "accelerator_fault": infra.accelerator_fault,
    "version_skew": integration.version_skew,
    "api_contract_mismatch": integration.api_contract_mismatch,
    "timeout_misconfiguration": integration.timeout_misconfiguration,
    "cache_staleness": integration.cache_staleness,
    "none": lambda b: None,
}
FINALIZERS: dict[str, Callable] = {
    "memory_exhaustion": infra.memory_exhaustion_onset,
}
