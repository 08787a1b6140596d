"""The failure taxonomy (DESIGN sections 3a and 4): pathways, their failure modes, and the
tasks each mode applies to.

Most failure modes apply to every endpoint. The generative ones (DESIGN 3a) exist only on
token-streaming endpoints: :data:`MODE_TASKS` names them, and :func:`applicable_modes` keeps
them out of the scoring of a case that shows no generative evidence, so that a binary,
multiclass or regression case is scored over exactly the modes it always was.

Examples
--------
>>> PATHWAY_OF["kv_cache_exhaustion"], "kv_cache_exhaustion" in applicable_modes(())
('infrastructure', False)
>>> "kv_cache_exhaustion" in applicable_modes(("infrastructure.kv_cache_pressure",))
True
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["PATHWAYS", "FAILURE_MODES", "PATHWAY_OF", "NONE", "UNDETERMINED", "MODE_TASKS",
           "TASK_FINDINGS", "GENERATIVE_MODES", "applicable_modes", "case_tasks"]

PATHWAYS: tuple[str, ...] = ("data", "model", "infrastructure", "integration")
#: Failure modes of each pathway, in the order of DESIGN section 4, then those of section 3a.
FAILURE_MODES: dict[str, tuple[str, ...]] = {
    "data": ("covariate_shift", "schema_mismatch", "null_injection", "unit_change",
             "prompt_shift"),
    "model": ("concept_drift", "calibration_collapse", "bad_release", "adversarial_inputs"),
    "infrastructure": ("memory_exhaustion", "memory_leak", "cold_start", "accelerator_fault",
                       "kv_cache_exhaustion", "prefill_interference"),
    "integration": ("version_skew", "api_contract_mismatch", "timeout_misconfiguration",
                    "cache_staleness", "prefix_cache_regression", "sampling_config_drift",
                    "template_mismatch"),
}
#: Pathway of every failure mode.
PATHWAY_OF: dict[str, str] = {m: p for p, modes in FAILURE_MODES.items() for m in modes}
#: Failure modes that exist on generative (LLM) endpoints only (DESIGN 3a). ``bad_release``
#: has a generative form but applies to every task.
GENERATIVE_MODES: tuple[str, ...] = ("prompt_shift", "kv_cache_exhaustion",
                                     "prefill_interference", "prefix_cache_regression",
                                     "sampling_config_drift", "template_mismatch")
#: The tasks a failure mode applies to; a mode not listed applies to every task.
MODE_TASKS: dict[str, frozenset[str]] = {m: frozenset({"generative"}) for m in GENERATIVE_MODES}
#: Findings that only a case of the task can produce: their presence says the case has it.
TASK_FINDINGS: dict[str, frozenset[str]] = {
    "generative": frozenset({
        "infrastructure.ttft_regression", "infrastructure.tpot_regression",
        "infrastructure.goodput_drop", "infrastructure.kv_cache_pressure",
        "infrastructure.prefill_interference", "infrastructure.long_prompt_errors",
        "data.long_prompt_refusals", "data.prompt_length_shift", "integration.prefix_cache_drop",
        "integration.truncation_rise", "integration.sampling_params_changed",
        "integration.template_outside_lineage", "integration.output_length_shift",
        "model.feedback_regression", "model.feedback_drop", "model.refusal_rise",
    }),
}
#: Verdict when the logs show no incident.
NONE = "none"
#: Verdict when the evidence does not decide.
UNDETERMINED = "undetermined"


def case_tasks(finding_ids: Iterable[str], declared: Iterable[str] = ()) -> frozenset[str]:
    """The tasks a case evidently has: those ``declared`` plus those its findings reveal
    (:data:`TASK_FINDINGS`)."""
    ids = set(finding_ids)
    found = {task for task, only in TASK_FINDINGS.items() if ids & only}
    return frozenset(declared) | frozenset(found)


def applicable_modes(finding_ids: Iterable[str], declared: Iterable[str] = ()
                     ) -> tuple[str, ...]:
    """The failure modes that apply to a case with these findings (and declared tasks), in
    :data:`PATHWAY_OF` order: every mode without a task restriction, and the task-specific
    ones of the case's tasks (:func:`case_tasks`)."""
    tasks = case_tasks(finding_ids, declared)
    return tuple(m for m in PATHWAY_OF if m not in MODE_TASKS or MODE_TASKS[m] & tasks)
