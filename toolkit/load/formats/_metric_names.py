"""Serving-stack metric names and how they map onto the case's canonical metric names.

Sources: DCGM exporter, cAdvisor / kube-state-metrics, NVIDIA Triton, vLLM, SGLang, TGI,
TorchServe, KServe and Knative (``reference/log_formats.md`` section 4, ``llm_serving.md``).
Canonical conventions: memory in bytes, utilisation and KV-cache usage as fractions 0..1,
latency in milliseconds; LLM engines' scheduler gauges become ``requests_running`` /
``requests_waiting`` and their token, preemption and prefix-cache counters keep their cumulative
values under ``*_total`` names (DESIGN section 3a) with a per-second rate derived beside them.
The source's own name stays in the row's ``labels`` (``__name__``). A metric not listed keeps its
name.
"""

from __future__ import annotations

__all__ = ["GAUGES", "HISTOGRAMS", "COUNT_HISTOGRAMS", "SUMMARIES", "RATIOS", "RATES", "QUANTILES",
           "quantile_name"]

MIB = 1024.0 * 1024.0

#: (source name, label key, label value, canonical name, factor): a sample of the source
#: series (whose label key, when given, has that value) is ``value * factor`` of the canonical.
GAUGES: tuple[tuple[str, str | None, str | None, str, float], ...] = (
    ("DCGM_FI_DEV_FB_USED", None, None, "gpu_memory_used_bytes", MIB),
    ("DCGM_FI_DEV_FB_FREE", None, None, "gpu_memory_free_bytes", MIB),
    ("DCGM_FI_DEV_FB_TOTAL", None, None, "gpu_memory_total_bytes", MIB),
    ("DCGM_FI_DEV_GPU_UTIL", None, None, "gpu_utilization", 0.01),
    ("container_memory_working_set_bytes", None, None, "memory_used_bytes", 1.0),
    ("container_spec_memory_limit_bytes", None, None, "memory_limit_bytes", 1.0),
    ("kube_pod_container_resource_limits", "resource", "memory", "memory_limit_bytes", 1.0),
    ("kube_deployment_status_replicas", None, None, "replicas", 1.0),
    ("nv_gpu_utilization", None, None, "gpu_utilization", 1.0),
    ("nv_gpu_memory_used_bytes", None, None, "gpu_memory_used_bytes", 1.0),
    ("nv_gpu_memory_total_bytes", None, None, "gpu_memory_total_bytes", 1.0),
    ("nv_cpu_utilization", None, None, "cpu_utilization", 1.0),
    ("nv_cpu_memory_used_bytes", None, None, "memory_used_bytes", 1.0),
    ("nv_inference_pending_request_count", None, None, "queue_depth", 1.0),
    # LLM engines (DESIGN section 3a): scheduler gauges, KV-cache usage, cumulative counters
    ("vllm:num_requests_running", None, None, "requests_running", 1.0),
    ("vllm:num_requests_waiting", None, None, "requests_waiting", 1.0),
    ("vllm:gpu_cache_usage_perc", None, None, "kv_cache_usage", 1.0),
    ("vllm:kv_cache_usage_perc", None, None, "kv_cache_usage", 1.0),
    ("vllm:gpu_prefix_cache_hit_rate", None, None, "prefix_cache_hit_rate", 1.0),
    *(
        (f"vllm:{name}{suffix}", None, None, canonical, 1.0)
        for name, canonical in (("num_preemptions", "preemptions_total"),
                                ("prompt_tokens", "prompt_tokens_total"),
                                ("generation_tokens", "generation_tokens_total"),
                                ("prefix_cache_queries", "prefix_cache_queries_total"),
                                ("prefix_cache_hits", "prefix_cache_hits_total"))
        for suffix in ("_total", "")
    ),
    ("sglang:num_running_reqs", None, None, "requests_running", 1.0),
    ("sglang:num_queue_reqs", None, None, "requests_waiting", 1.0),
    ("sglang:token_usage", None, None, "kv_cache_usage", 1.0),
    ("sglang:cache_hit_rate", None, None, "prefix_cache_hit_rate", 1.0),
    ("sglang:prompt_tokens_total", None, None, "prompt_tokens_total", 1.0),
    ("sglang:generation_tokens_total", None, None, "generation_tokens_total", 1.0),
    ("sglang:cached_tokens_total", None, None, "cached_tokens_total", 1.0),
    ("tgi_batch_current_size", None, None, "requests_running", 1.0),
    ("tgi_queue_size", None, None, "requests_waiting", 1.0),
    ("CPUUtilization", None, None, "cpu_utilization", 0.01),
    ("MemoryUsed", None, None, "memory_used_bytes", MIB),
    ("GPUMemoryUsed", None, None, "gpu_memory_used_bytes", MIB),
    ("GPUUtilization", None, None, "gpu_utilization", 0.01),
    ("revision_queue_depth", None, None, "queue_depth", 1.0),
)

#: Histogram base name (the ``_bucket`` series without the suffix) -> (canonical prefix,
#: factor to milliseconds). Quantiles are named ``<prefix>_p50_ms``, ``_p95_ms``, ``_p99_ms``.
#: (Histograms of counts, not durations, are in :data:`COUNT_HISTOGRAMS`.)
HISTOGRAMS: dict[str, tuple[str, float]] = {
    "vllm:e2e_request_latency_seconds": ("latency", 1000.0),
    "revision_request_latencies": ("latency", 1.0),
    "revision_app_request_latencies": ("app_latency", 1.0),
    "request_predict_seconds": ("predict_latency", 1000.0),
    "request_preprocess_seconds": ("preprocess_latency", 1000.0),
    "request_postprocess_seconds": ("postprocess_latency", 1000.0),
    "request_explain_seconds": ("explain_latency", 1000.0),
    "vllm:time_to_first_token_seconds": ("ttft", 1000.0),
    "vllm:inter_token_latency_seconds": ("inter_token_latency", 1000.0),
    "vllm:time_per_output_token_seconds": ("inter_token_latency", 1000.0),
    "vllm:request_queue_time_seconds": ("queue_time", 1000.0),
    "vllm:request_inference_time_seconds": ("inference_time", 1000.0),
    "vllm:request_prefill_time_seconds": ("prefill_time", 1000.0),
    "vllm:request_decode_time_seconds": ("decode_time", 1000.0),
    "nv_inference_first_response_histogram_ms": ("first_response_latency", 1.0),
    "sglang:time_to_first_token_seconds": ("ttft", 1000.0),
    "sglang:inter_token_latency_seconds": ("inter_token_latency", 1000.0),
    "sglang:time_per_output_token_seconds": ("inter_token_latency", 1000.0),
    "sglang:e2e_request_latency_seconds": ("latency", 1000.0),
    "tgi_request_duration": ("latency", 1000.0),
    "tgi_request_queue_duration": ("queue_time", 1000.0),
    "tgi_request_inference_duration": ("inference_time", 1000.0),
    "tgi_request_mean_time_per_token_duration": ("inter_token_latency", 1000.0),
    "http_request_duration_seconds": ("http_latency", 1000.0),
    "http_request_duration_highr_seconds": ("http_latency", 1000.0),
}

#: Histograms of token counts: base name -> canonical prefix; quantiles are named
#: ``<prefix>_p50``, ``_p95``, ``_p99`` (no unit suffix).
COUNT_HISTOGRAMS: dict[str, str] = {
    "vllm:request_prompt_tokens": "prompt_tokens",
    "vllm:request_generation_tokens": "generation_tokens",
    "tgi_request_input_length": "prompt_tokens",
    "tgi_request_generated_tokens": "generation_tokens",
}

#: Summary series (with a ``quantile`` label) -> (canonical prefix, factor to milliseconds).
SUMMARIES: dict[str, tuple[str, float]] = {
    "nv_inference_request_summary_us": ("latency", 0.001),
    "nv_inference_queue_summary_us": ("queue_time", 0.001),
    "nv_inference_compute_input_summary_us": ("compute_input", 0.001),
    "nv_inference_compute_infer_summary_us": ("compute_infer", 0.001),
    "nv_inference_compute_output_summary_us": ("compute_output", 0.001),
}

#: Cumulative counters divided step by step: (numerator, denominator, canonical name, factor).
#: Triton and TorchServe export latency as cumulative microseconds, so the mean latency over a
#: step is the increase of the duration counter over the increase of the request counter.
RATIOS: tuple[tuple[str, str, str, float], ...] = (
    ("nv_inference_request_duration_us", "nv_inference_request_success", "latency_avg_ms",
     0.001),
    ("nv_inference_queue_duration_us", "nv_inference_request_success", "queue_time_avg_ms",
     0.001),
    ("nv_inference_compute_input_duration_us", "nv_inference_request_success",
     "compute_input_avg_ms", 0.001),
    ("nv_inference_compute_infer_duration_us", "nv_inference_request_success",
     "compute_infer_avg_ms", 0.001),
    ("nv_inference_compute_output_duration_us", "nv_inference_request_success",
     "compute_output_avg_ms", 0.001),
    ("ts_inference_latency_microseconds", "ts_inference_requests_total", "latency_avg_ms",
     0.001),
    ("ts_queue_latency_microseconds", "ts_inference_requests_total", "queue_time_avg_ms",
     0.001),
    *(
        (f"{base}_sum", f"{base}_count", f"{prefix}_avg_ms", factor)
        for base, (prefix, factor) in HISTOGRAMS.items()
    ),
)

#: Cumulative counters turned into per-second rates: (counter, canonical name).
RATES: tuple[tuple[str, str], ...] = (
    ("nv_inference_request_success", "requests_per_s"),
    ("nv_inference_request_failure", "errors_per_s"),
    ("nv_inference_count", "inferences_per_s"),
    ("ts_inference_requests_total", "requests_per_s"),
    ("vllm:request_success_total", "requests_per_s"),
    ("revision_request_count", "requests_per_s"),
    ("tgi_request_count", "requests_per_s"),
    ("sglang:num_requests_total", "requests_per_s"),
    ("sglang:num_aborted_requests_total", "aborted_per_s"),
    ("sglang:prompt_tokens_total", "prompt_tokens_per_s"),
    ("sglang:generation_tokens_total", "generation_tokens_per_s"),
    *(
        (f"vllm:{name}{suffix}", canonical)
        for name, canonical in (("num_preemptions", "preemptions_per_s"),
                                ("prompt_tokens", "prompt_tokens_per_s"),
                                ("generation_tokens", "generation_tokens_per_s"),
                                ("prefix_cache_queries", "prefix_cache_queries_per_s"),
                                ("prefix_cache_hits", "prefix_cache_hits_per_s"))
        for suffix in ("_total", "")
    ),
)

#: Quantiles computed from histograms.
QUANTILES = (0.5, 0.95, 0.99)


def quantile_name(prefix: str, q: float, *, ms: bool = True) -> str:
    """``latency_p99_ms`` for ``("latency", 0.99)``.

    Examples
    --------
    >>> quantile_name("latency", 0.99), quantile_name("x", 0.999, ms=False)
    ('latency_p99_ms', 'x_p99.9')
    """
    return f"{prefix}_p{q * 100:g}" + ("_ms" if ms else "")
