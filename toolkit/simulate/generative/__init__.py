"""Generative (LLM) service simulator: continuous batching, KV cache, prefix sharing, feedback.

A vLLM-like engine serves a chat endpoint on 4-6 GPU replicas with diurnal traffic; each
request has prompt / output / cached tokens, TTFT (queue + prefill), TPOT (decode step of the
batch), finish reason, preemptions, sampling parameters, chat template and LoRA adapter; a share
of the answers gets user feedback (``good`` / ``bad``); the engine's metrics (KV usage, running
and waiting requests, preemption, token and prefix-cache counters, GPU) are exported per
replica. One of :data:`MODES` is injected with confounders (DESIGN section 3a, plus the
generative forms of memory exhaustion, accelerator fault and cold start).

* :func:`make_case` plans a case (the same :class:`~toolkit.simulate.Case` interface:
  ``truth()``, ``tables()``, ``request_chunks()``, ...; plus ``endpoints()``);
* :func:`write_case` / :func:`ingest_case` write its files / load them into a case database.

Examples
--------
>>> from toolkit.simulate import generative
>>> case = generative.make_case("template_mismatch", seed=2, rows=2_000)
>>> case.pathway, case.injected["template_version"].startswith("tmpl-base-")
('integration', True)
"""

from toolkit.simulate.generative.case import (
    MODES,
    GenerativeCase,
    ingest_case,
    make_case,
    write_case,
)

__all__ = ["make_case", "write_case", "ingest_case", "GenerativeCase", "MODES"]
