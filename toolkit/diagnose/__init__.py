"""Diagnostics: measure drift, calibration, accuracy, latency, memory, versions, cache.

Every diagnostic is a function ``(con, baseline, incident, /, *, ...) -> XxxResult``. Heavy
lifting happens in DuckDB through ibis expressions; results are frozen dataclasses with a tidy
``table``, ``to_frame()``, ``plot(ax=None)``, ``findings()``, ``signals()`` and the SQL they ran.
:data:`REGISTRY` lists them by stable id; :func:`run_diagnostics` runs them together.

The folders follow the failure taxonomy (DESIGN section 4): ``data/``, ``model/``, ``infra/`` and
``integration/`` hold the diagnostics that speak to each causal pathway, ``case/`` the ones about
the case as a whole (traffic, failure concentration). The engine helpers they share live here,
in the underscore modules (``_case`` for the case view, ``_engine`` for the query primitives,
``_stats``, ``_binning``, ``_onset``, ``_labels``, ``_profile``, ``_evidently``, ``_base``).
"""

from toolkit.diagnose._base import DiagnosticResult, Finding, NotAssessed
from toolkit.diagnose._case import CaseView, case_view
from toolkit.diagnose.case.batch_runs import BatchRunsResult, run_over_run
from toolkit.diagnose.case.segments import SegmentsResult, failure_concentration
from toolkit.diagnose.case.traffic import TrafficResult, traffic_shape
from toolkit.diagnose.data.data_quality import DataQualityResult, data_quality
from toolkit.diagnose.data.drift import FeatureDriftResult, feature_drift
from toolkit.diagnose.data.permutation import PermutationResult, feature_permutation
from toolkit.diagnose.data.prompt_mix import PromptMixResult, prompt_mix
from toolkit.diagnose.data.units import UnitChangeResult, unit_change
from toolkit.diagnose.infra.accelerators import AcceleratorResult, accelerator_faults
from toolkit.diagnose.infra.capacity import CapacityResult, latency_vs_concurrency
from toolkit.diagnose.infra.cold_start import ColdStartResult, cold_start_effect
from toolkit.diagnose.infra.context_errors import ContextErrorsResult, context_errors
from toolkit.diagnose.infra.hosts import HostsResult, host_outliers
from toolkit.diagnose.infra.kv_cache import KVCacheResult, kv_cache_pressure
from toolkit.diagnose.infra.latency import LatencyResult, latency_profile
from toolkit.diagnose.infra.memory import MemoryResult, memory_pressure
from toolkit.diagnose.infra.prefill import PrefillResult, prefill_interference
from toolkit.diagnose.infra.token_latency import TokenLatencyResult, token_latency
from toolkit.diagnose.integration.cache import CacheStalenessResult, cache_staleness
from toolkit.diagnose.integration.client_errors import ClientErrorsResult, errors_by_client
from toolkit.diagnose.integration.generation import GenerationResult, generation
from toolkit.diagnose.integration.prefix_cache import PrefixCacheResult, prefix_cache
from toolkit.diagnose.integration.timeouts import TimeoutResult, timeout_budget
from toolkit.diagnose.integration.versions import VersionMatrixResult, version_matrix
from toolkit.diagnose.model.calibration import CalibrationResult, calibration
from toolkit.diagnose.model.estimation import EstimationResult, estimation
from toolkit.diagnose.model.feedback import FeedbackResult, feedback
from toolkit.diagnose.model.ood import OODResult, ood_bursts
from toolkit.diagnose.model.performance import PerformanceResult, model_performance
from toolkit.diagnose.model.prediction_shift import PredictionShiftResult, prediction_shift
from toolkit.diagnose.registry import REGISTRY, Diagnosis, register, run_diagnostics

register("case.traffic", traffic_shape)
register("case.segments", failure_concentration)
register("case.batch_runs", run_over_run)
register("data.drift", feature_drift)
register("data.quality", data_quality)
register("data.units", unit_change)
register("data.permutation", feature_permutation)
register("data.prompt_mix", prompt_mix)
register("model.performance", model_performance)
register("model.calibration", calibration)
register("model.estimation", estimation)
register("model.prediction_shift", prediction_shift)
register("model.ood", ood_bursts)
register("model.feedback", feedback)
register("infra.latency", latency_profile)
register("infra.capacity", latency_vs_concurrency)
register("infra.memory", memory_pressure)
register("infra.cold_start", cold_start_effect)
register("infra.hosts", host_outliers)
register("infra.accelerators", accelerator_faults)
register("infra.token_latency", token_latency)
register("infra.kv_cache", kv_cache_pressure)
register("infra.prefill_interference", prefill_interference)
register("infra.context_errors", context_errors)
register("integration.versions", version_matrix)
register("integration.client_errors", errors_by_client)
register("integration.timeouts", timeout_budget)
register("integration.cache", cache_staleness)
register("integration.prefix_cache", prefix_cache)
register("integration.generation", generation)

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
    "data_quality",
    "DataQualityResult",
    "unit_change",
    "UnitChangeResult",
    "feature_permutation",
    "PermutationResult",
    "model_performance",
    "PerformanceResult",
    "calibration",
    "CalibrationResult",
    "estimation",
    "EstimationResult",
    "prediction_shift",
    "PredictionShiftResult",
    "ood_bursts",
    "OODResult",
    "traffic_shape",
    "TrafficResult",
    "version_matrix",
    "VersionMatrixResult",
    "errors_by_client",
    "ClientErrorsResult",
    "timeout_budget",
    "TimeoutResult",
    "cache_staleness",
    "CacheStalenessResult",
    "latency_vs_concurrency",
    "CapacityResult",
    "memory_pressure",
    "MemoryResult",
    "cold_start_effect",
    "ColdStartResult",
    "host_outliers",
    "accelerator_faults",
    "AcceleratorResult",
    "HostsResult",
    "failure_concentration",
    "SegmentsResult",
    "run_over_run",
    "BatchRunsResult",
    "prompt_mix",
    "PromptMixResult",
    "prefix_cache",
    "PrefixCacheResult",
    "generation",
    "GenerationResult",
    "feedback",
    "FeedbackResult",
    "token_latency",
    "TokenLatencyResult",
    "kv_cache_pressure",
    "KVCacheResult",
    "prefill_interference",
    "PrefillResult",
    "context_errors",
    "ContextErrorsResult",
]
