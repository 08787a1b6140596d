"""Diagnostics: measure drift, calibration, accuracy, latency, memory, versions, cache.

Every diagnostic is a function ``(con, baseline, incident, /, *, ...) -> XxxResult``. Heavy
lifting happens in DuckDB through ibis expressions; results are frozen dataclasses with a tidy
``table``, ``to_frame()``, ``plot(ax=None)``, ``findings()``, ``signals()`` and the SQL they ran.
:data:`REGISTRY` lists them by stable id; :func:`run_diagnostics` runs them together.
"""

from toolkit.diagnose._base import DiagnosticResult, Finding, NotAssessed
from toolkit.diagnose._case import CaseView, case_view
from toolkit.diagnose.drift import FeatureDriftResult, feature_drift
from toolkit.diagnose.latency import LatencyResult, latency_profile
from toolkit.diagnose.registry import REGISTRY, Diagnosis, register, run_diagnostics

register("data.drift", feature_drift)
register("infra.latency", latency_profile)

__all__ = [
    "REGISTRY",
    "Diagnosis",
    "run_diagnostics",
    "DiagnosticResult",
    "Finding",
    "NotAssessed",
    "CaseView",
    "case_view",
    "feature_drift",
    "FeatureDriftResult",
    "latency_profile",
    "LatencyResult",
]
