"""Remediation per failure mode, for real-time and batch serving.

Real-time pipelines cannot retry or correct later: they need containment now (rollback,
fallback, load shedding). Batch pipelines tolerate retries and delayed correction: quarantine,
fix, re-run. Each entry has actions for both, plus the ones that apply to either.
"""

from __future__ import annotations

from typing import Any

__all__ = ["REMEDIATION", "remediation_for", "SERVING_MODES", "SLICE_REMEDIATION",
           "remediation_for_slice", "remediation_for_runs"]

SERVING_MODES = ("real-time", "batch")

#: failure mode -> {"always": [...], "real-time": [...], "batch": [...]}
REMEDIATION: dict[str, dict[str, list[str]]] = {
    "covariate_shift": {
        "always": [
            "Confirm which upstream source or population moved (segment, geography, producer) "
            "before retraining.",
            "Retrain or fine-tune on recent data that includes the shifted population; validate "
            "on a holdout drawn from the incident window.",
            "Monitor PSI on the features that moved, on baseline-quantile bins, with alerts.",
        ],
        "real-time": ["Until the retrained model ships, route the shifted segment to a fallback "
                      "(previous model, rules) or raise its decision threshold."],
        "batch": ["Hold downstream consumers of the affected partitions and re-score them once "
                  "the retrained model is validated."],
    },
    "schema_mismatch": {
        "always": [
            "Validate the input contract (feature names, types, required fields) at the serving "
            "boundary and reject violations instead of defaulting them.",
            "Version the preprocessing pipeline with the model under one release id and test "
            "the upstream change against it before release.",
        ],
        "real-time": ["Roll back the upstream change, or deploy a shim that maps the renamed or "
                      "retyped fields, now."],
        "batch": ["Quarantine the partitions written since the change and re-run them after the "
                  "fix."],
    },
    "null_injection": {
        "always": [
            "Trace the nulls / default values to their producer (a broken join, a failing "
            "source) and fix it there.",
            "Alert on null and default-value rates per feature.",
            "Make missing-value handling identical in training and serving.",
        ],
        "real-time": ["Flag or reject requests that miss critical features rather than scoring "
                      "defaults."],
        "batch": ["Backfill the missing values and re-score the affected rows."],
    },
    "unit_change": {
        "always": [
            "Declare units in the feature contract and validate value ranges at the boundary.",
            "Convert at the producer (or explicitly in the pipeline) and redeploy; add a test "
            "with a known value per feature.",
        ],
        "real-time": ["Hotfix the conversion in the pipeline now; keep the producer change "
                      "behind a flag."],
        "batch": ["Re-run the affected partitions after the conversion fix."],
    },
    "concept_drift": {
        "always": [
            "Retrain on recent labelled data and shorten the retraining cycle.",
            "Monitor realised accuracy per segment, accounting for label delay.",
        ],
        "real-time": ["Reduce reliance on the model until retrained (stricter thresholds, human "
                      "review or fallback for high-stakes decisions)."],
        "batch": ["Correct downstream decisions with the retrained model once validated."],
    },
    "calibration_collapse": {
        "always": [
            "Gate quantized or compressed releases on ECE and on the share of confident errors, "
            "not only on accuracy.",
            "Re-fit temperature scaling (or isotonic calibration) on the new artifact and "
            "re-check the decision threshold (e.g. 0.85) against its reliability diagram.",
        ],
        "real-time": ["Roll back to the full-precision model until the quantized one is "
                      "recalibrated."],
        "batch": ["Re-score with a recalibrated model; decisions taken above the threshold "
                  "need review."],
    },
    "bad_release": {
        "always": [
            "Roll back to the previous model version.",
            "When the failures concentrate on some model versions, checkpoints or adapters "
            "(affected slices), take exactly those out of routing and block them at load time "
            "until each passes a smoke test; the others keep serving.",
            "Add canary or shadow evaluation with realised accuracy to the release gate, and "
            "compare versions on the same inputs before full rollout.",
        ],
        "real-time": ["Roll back immediately; keep the previous version warm for fast "
                      "rollbacks."],
        "batch": ["Re-score the batches produced by the bad version."],
    },
    "adversarial_inputs": {
        "always": [
            "Rate-limit or block the offending source and review what it was served.",
            "Add input validation and out-of-distribution detection at the boundary.",
        ],
        "real-time": ["Serve a safe default or reject out-of-distribution requests from "
                      "untrusted sources."],
        "batch": ["Drop or quarantine the source's records before scoring."],
    },
    "memory_exhaustion": {
        "always": [
            "Set a concurrency limit per replica below the knee of the latency-concurrency "
            "curve.",
            "Tie autoscaling to memory (GPU memory) and queue depth, not only CPU.",
            "Right-size memory limits and batch sizes; load-test at peak concurrency.",
        ],
        "real-time": ["Shed load or queue with backpressure instead of accepting requests the "
                      "replica cannot hold."],
        "batch": ["Reduce batch size or parallelism and retry the failed shards."],
    },
    "memory_leak": {
        "always": [
            "Find the leak: memory growth per request, unbounded caches or buffers.",
            "Alert on the memory growth slope per replica.",
        ],
        "real-time": ["Until fixed, schedule rolling restarts before replicas reach their "
                      "limit."],
        "batch": ["Restart workers between jobs; retry the jobs that failed."],
    },
    "cold_start": {
        "always": [
            "Warm replicas up before they take traffic (readiness after model load and a "
            "warm-up request).",
            "Keep a minimum of warm replicas and scale earlier (predictive autoscaling); "
            "preload model artifacts on nodes.",
        ],
        "real-time": ["Raise the minimum replica count during peaks."],
        "batch": ["Start workers before the batch window and reuse them across jobs."],
    },
    "accelerator_fault": {
        "always": [
            "Drain and replace the faulty host or GPU (the host named by the affected slice or "
            "the host outlier).",
            "Add per-host health checks (GPU errors, latency) with automatic ejection from the "
            "load balancer.",
        ],
        "real-time": ["Eject the host from the serving pool now."],
        "batch": ["Re-run the work that landed on the faulty host."],
    },
    "version_skew": {
        "always": [
            "Version all artifacts (model, preprocessing pipeline, API contract, cache) under "
            "one release id, and deploy and roll them back together.",
            "Check the model x pipeline pair against lineage at startup and refuse unknown "
            "pairs; pass features by name, not by position.",
        ],
        "real-time": ["Restore a released pair now: roll the pipeline back to the model's "
                      "version (or roll the model forward)."],
        "batch": ["Re-score everything processed since the rollback."],
    },
    "api_contract_mismatch": {
        "always": [
            "Version the API contract and run client-server contract tests in CI.",
            "Reproduce with a request from the failing client version (the affected slice) "
            "and fix the side that broke the contract.",
            "Keep the previous contract version working during client rollouts; roll clients "
            "out gradually.",
        ],
        "real-time": ["Roll back the client release or deploy a compatibility shim."],
        "batch": ["Re-submit the rejected records once client and server agree."],
    },
    "timeout_misconfiguration": {
        "always": [
            "Align client timeouts with the server latency tail (above the p99.9 with margin) "
            "and budget retries.",
            "Manage timeouts as reviewed, versioned configuration; alert when a timeout falls "
            "below the observed tail.",
        ],
        "real-time": ["Restore the previous timeout now; add hedged requests only within the "
                      "latency budget."],
        "batch": ["Use longer timeouts with retries and backoff; re-run the timed-out items."],
    },
    "cache_staleness": {
        "always": [
            "Tie cache invalidation to the model version: include it in the cache key.",
            "Flush the prediction cache on every model deploy and rollback; keep TTLs shorter "
            "than the release cadence.",
            "Monitor the share of cache hits served by a model version other than the deployed "
            "one.",
        ],
        "real-time": ["Flush the cache now."],
        "batch": ["Invalidate cached results produced before the update and recompute them."],
    },
    # -- generative endpoints (DESIGN 3a) ----------------------------------------------------
    "prompt_shift": {
        "always": [
            "Find which tenant, adapter or client moved the prompt population (length, "
            "language, task) and whether it is expected growth or a misbehaving caller.",
            "Re-plan capacity and cost for the new prompt mix (KV cache, prefill budget, "
            "max_model_len); per-tenant token quotas keep one tenant from starving the others.",
            "Evaluate answer quality on the new prompt population before relying on it; alert "
            "on prompt-length PSI and adapter mix per hour.",
        ],
        "real-time": ["Rate-limit or route the shifted tenant to its own replicas until "
                      "capacity and quality are confirmed."],
        "batch": ["Schedule the shifted tenant's batch jobs off-peak and re-run the requests "
                  "that missed their SLO."],
    },
    "kv_cache_exhaustion": {
        "always": [
            "Give the KV cache room: raise gpu_memory_utilization (or add replicas), and cap "
            "concurrency with max_num_seqs / max_num_batched_tokens so the running batch fits "
            "the cache instead of preempting.",
            "Enable chunked prefill and prefix caching; review max_model_len against the "
            "prompts actually served.",
            "Alert on KV-cache usage above 90%, on the preemption rate and on waiting "
            "requests, and autoscale on them rather than on CPU.",
        ],
        "real-time": ["Revert the configuration change that shrank the cache, or scale out "
                      "now; shed or queue low-priority traffic at the gateway meanwhile."],
        "batch": ["Lower the batch job's concurrency to what the cache holds and re-run the "
                  "requests that timed out or were cut short."],
    },
    "prefill_interference": {
        "always": [
            "Enable chunked prefill (bounded max_num_batched_tokens) so long prompts are "
            "prefilled in slices between decode steps instead of blocking short requests.",
            "Route very long prompts to dedicated replicas (or a disaggregated prefill pool) "
            "and give short interactive requests priority.",
            "Track TTFT of short prompts separately from long ones, against the long-prompt "
            "token share.",
        ],
        "real-time": ["Roll back the change that disabled chunked prefill, or divert the "
                      "long-prompt tenant to its own pool now."],
        "batch": ["Run long-document batch jobs on separate replicas or off-peak."],
    },
    "prefix_cache_regression": {
        "always": [
            "Keep the system prompt prefix stable: move per-request content (timestamps, ids, "
            "user names) after the shared prefix.",
            "Version prompts and chat templates with the client release and test the prefix "
            "cache hit rate before rollout.",
            "Alert on the prefix-cache hit share (hits / queries) per client version.",
        ],
        "real-time": ["Roll back the client or prompt change that broke the shared prefix."],
        "batch": ["Re-order the batch prompts so the shared prefix comes first before "
                  "re-running them."],
    },
    "sampling_config_drift": {
        "always": [
            "Pin the generation config: set explicit sampling defaults on the server "
            "(e.g. vLLM --generation-config vllm, or explicit temperature, top_p and "
            "max_tokens) so a model's generation_config.json cannot override them silently.",
            "Log the effective sampling parameters of every request and compare them across "
            "releases in CI.",
        ],
        "real-time": ["Roll back the serving release, or set the previous defaults "
                      "explicitly, now."],
        "batch": ["Re-run the requests answered with the drifted parameters (truncated or "
                  "off-temperature outputs)."],
    },
    "template_mismatch": {
        "always": [
            "Version the chat template and tokenizer with the model: release them together "
            "and check the served pair against lineage at startup.",
            "Test a release on a few prompts for stop behaviour (finish_reason length share, "
            "special tokens in outputs) before routing traffic.",
        ],
        "real-time": ["Restore the template released with this model now."],
        "batch": ["Re-run the requests answered with the wrong template."],
    },
    "none": {
        "always": ["No incident pattern found in these windows: check the windows, and the "
                   "signals listed as not assessed."],
        "real-time": [],
        "batch": [],
    },
}


#: Actions per role of an affected slice (``case.segments``: the attribute on which failures
#: concentrate), for the postmortem's "affected slices" section, whatever the verdict.
SLICE_REMEDIATION: dict[str, dict[str, list[str]]] = {
    "model": {
        "always": ["Stop routing requests to the failing model versions, checkpoints or "
                   "adapters and block them at load time until each passes a smoke test; "
                   "tell the owners of those artifacts.",
                   "Add a load-time check (a warm-up inference per artifact) so that an "
                   "artifact that cannot serve is never published."],
        "real-time": ["Fail fast with a clear error (or fall back to a default artifact) "
                      "instead of accepting requests the artifact cannot serve."],
        "batch": ["Re-run the items that the failing artifacts processed once they are "
                  "fixed."],
    },
    "host": {
        "always": ["Drain the host or GPU the failures concentrate on and check its hardware "
                   "(GPU errors, ECC, Xid) before returning it to the pool.",
                   "Eject hosts automatically on per-host error-rate health checks."],
        "real-time": ["Remove the host from the load balancer now."],
        "batch": ["Re-run the work that landed on that host."],
    },
    "site": {
        "always": ["Fail over from the zone, region or cluster the failures concentrate on "
                   "and check its shared dependencies (network, storage, quotas)."],
        "real-time": ["Shift traffic to the healthy sites."],
        "batch": ["Re-run the site's work elsewhere."],
    },
    "client": {
        "always": ["Reproduce with a request from the failing client or API version and "
                   "compare it with the server's contract; keep the previous contract working "
                   "during rollouts."],
        "real-time": ["Roll back the client release or deploy a compatibility shim."],
        "batch": ["Re-submit the rejected records once client and server agree."],
    },
    "pipeline": {
        "always": ["Check the failing pipeline or template version against the model it "
                   "serves (lineage) and its input contract; release them together."],
        "real-time": ["Restore the last released pipeline or template version."],
        "batch": ["Re-run the items processed by that version."],
    },
    "segment": {
        "always": ["Look at what the failing population sends (a tenant, a request type, an "
                   "input value): validate such requests at the boundary and reject them with "
                   "a clear error, or support them; tell the tenant."],
        "real-time": ["Rate-limit or route the failing population to a fallback while it is "
                      "investigated."],
        "batch": ["Quarantine the population's records and re-run them after the fix."],
    },
}


def remediation_for_slice(role: str, serving_mode: str = "real-time") -> list[str]:
    """The actions for an affected slice whose attribute has ``role`` (``model``, ``host``,
    ``site``, ``client``, ``pipeline``, ``segment``): the serving-mode specific ones first.

    Examples
    --------
    >>> remediation_for_slice("host", "batch")[0]
    'Re-run the work that landed on that host.'
    """
    entry = SLICE_REMEDIATION.get(role)
    if entry is None:
        return []
    specific = entry.get(serving_mode, []) if serving_mode in SERVING_MODES else []
    return [*specific, *entry["always"]]


def remediation_for(failure_mode: str, serving_mode: str = "real-time") -> list[str]:
    """The actions for ``failure_mode``: the serving-mode specific ones first.

    Examples
    --------
    >>> remediation_for("cache_staleness", "batch")[0]
    'Invalidate cached results produced before the update and recompute them.'
    """
    entry = REMEDIATION.get(failure_mode)
    if entry is None:
        return []
    specific = entry.get(serving_mode, []) if serving_mode in SERVING_MODES else []
    return [*specific, *entry["always"]]


def remediation_for_runs(findings: Any) -> list[str]:
    """Run-specific actions for a case of batch runs, from ``case.batch_runs``' findings.

    A batch pipeline can re-run: the verdict's generic "quarantine and re-run" becomes the
    runs to quarantine and re-run (failing, less accurate or drifted runs), the partial runs to
    complete, and the retried runs whose outputs may be duplicated.

    Examples
    --------
    >>> from toolkit.diagnose import Finding
    >>> partial = Finding("infrastructure.batch_partial_run", "infrastructure", "medium", 0.2,
    ...                   0.5, "", {"runs": ["run 4 (2026-03-04 02:00 UTC)"],
    ...                             "partial_runs": [4], "row_shares": {4: 0.25}},
    ...                   diagnostic="case.batch_runs")
    >>> remediation_for_runs([partial])
    ['Re-run run 4 (2026-03-04 02:00 UTC): it wrote 25% of a typical run.']
    """
    actions: list[str] = []
    for finding in findings:
        if getattr(finding, "diagnostic", None) != "case.batch_runs":
            continue
        evidence = finding.evidence or {}
        runs = [str(r) for r in evidence.get("runs") or []]
        if not runs:
            continue
        listed = ", ".join(runs)
        if finding.id in ("integration.batch_run_failures", "model.batch_run_accuracy",
                          "data.batch_run_drift"):
            what = {"integration.batch_run_failures": "failed far more often than the runs "
                                                      "before",
                    "model.batch_run_accuracy": "were less accurate than the runs before",
                    "data.batch_run_drift": "scored inputs that drifted from the reference "
                                            "runs"}[finding.id]
            actions.append(f"Quarantine the outputs of {listed}, which {what}, and re-run "
                           "them once the cause is fixed.")
        elif finding.id == "infrastructure.batch_partial_run":
            shares = evidence.get("row_shares") or {}
            for run, label in zip(evidence.get("partial_runs") or [], runs, strict=False):
                share = shares.get(run, shares.get(str(run)))
                wrote = f": it wrote {share:.0%} of a typical run" if share is not None else ""
                actions.append(f"Re-run {label}{wrote}.")
        elif finding.id == "integration.batch_retried_run":
            retries = evidence.get("retries") or {}
            for label, retry in zip(runs, retries.values(), strict=False):
                actions.append(f"Deduplicate the outputs of {label}: a retry of run "
                               f"{retry.get('of')} ({retry.get('reason')}).")
    return list(dict.fromkeys(actions))
