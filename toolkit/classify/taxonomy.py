"""The failure taxonomy (DESIGN section 4): pathways and their failure modes."""

from __future__ import annotations

__all__ = ["PATHWAYS", "FAILURE_MODES", "PATHWAY_OF", "NONE", "UNDETERMINED"]

PATHWAYS: tuple[str, ...] = ("data", "model", "infrastructure", "integration")
#: Failure modes of each pathway, in the order of DESIGN section 4.
FAILURE_MODES: dict[str, tuple[str, ...]] = {
    "data": ("covariate_shift", "schema_mismatch", "null_injection", "unit_change"),
    "model": ("concept_drift", "calibration_collapse", "bad_release", "adversarial_inputs"),
    "infrastructure": ("memory_exhaustion", "memory_leak", "cold_start", "accelerator_fault"),
    "integration": ("version_skew", "api_contract_mismatch", "timeout_misconfiguration",
                    "cache_staleness"),
}
#: Pathway of every failure mode.
PATHWAY_OF: dict[str, str] = {m: p for p, modes in FAILURE_MODES.items() for m in modes}
#: Verdict when the logs show no incident.
NONE = "none"
#: Verdict when the evidence does not decide.
UNDETERMINED = "undetermined"
