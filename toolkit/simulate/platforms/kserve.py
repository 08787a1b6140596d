"""KServe payload logging: requests as the knative ``event_display`` dump of their CloudEvents.

The InferenceService's logger (``spec.predictor.logger: {mode: all}``) posts each request and
its response as two CloudEvents with the same ``ce-id``; the ``event_display`` sink prints
them, and ``kubectl logs`` of the sink is what people keep (``log_formats.md`` section 2.1)::

    ☁️  cloudevents.Event
    Validation: valid
    Context Attributes,
      specversion: 1.0
      type: org.kubeflow.serving.inference.request
      source: http://localhost:9081/
      id: req-3f9a1c-0000000042
      time: 2026-02-02T00:00:01.123456Z
      datacontenttype: application/json
    Extensions,
      component: predictor
      endpoint:
      inferenceservicename: fraud-scorer
      namespace: ml-serving
    Data,
      {"id":"req-3f9a1c-0000000042","inputs":[{"name":"amount_usd","shape":[1],...}]}

Files ``event-display/<isvc>-NNNNN.log`` hold :data:`FILE_REQUESTS` requests each, both
events of a request in the same file, events ordered by time.

* ``id`` (``ce-id``) is the request id: the client sends it as the ``Ce-Id`` header, which the
  logger keeps, so labels join on it.
* ``time`` is the request's time and the response's (request time plus the latency), to the
  nanosecond as Go prints it: the loader's ``latency_ms`` is their difference, exact.
* Bodies are V2 (Open Inference Protocol): one ``inputs`` tensor per feature (``FP64`` or
  ``BYTES``, shape ``[1]``; a missing value is ``null``), and a response with ``model_name``,
  ``model_version`` and the ``predict`` (INT64) and ``predict_proba`` (FP64, ``[1, 2]``)
  tensors of a scikit-learn server, so ``prediction`` and ``score`` load exactly. A request the
  model did not answer gets ``{"error": "<error_type>"}``.

Not in the events: ``host`` (the logger names no pod), ``pipeline_version``,
``client_version``, ``http_status``, ``error_type``, ``in_flight``, ``cache_*``; ``status`` is
``error`` or ``ok`` (a client-side timeout is invisible to the server); ``endpoint`` becomes
the InferenceService name. Labels and the other tables stay generic.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from toolkit.simulate.case import Case
from toolkit.simulate.platforms._common import (
    NAMESPACE,
    Progress,
    epoch_ns,
    feature_columns,
    rfc3339_ns,
    write_request_files,
)
from toolkit.simulate.writer import write_tables
from toolkit.store.schema import quote_ident, quote_literal

__all__ = ["write", "FILE_REQUESTS"]

#: Requests per dump file (two events each).
FILE_REQUESTS = 50_000
_BANNER = "☁️  cloudevents.Event"


def write(case: Case, out: Path, progress: Progress | None = None) -> None:
    """Write the requests of ``case`` as event_display dumps, the rest as generic files."""
    isvc = case.plan.platform.service
    write_request_files(
        case, out, out / "event-display",
        sql=lambda schema: _events_sql(schema, isvc, case.plan.platform.model_name),
        column="block", file_rows=FILE_REQUESTS, file_name=lambda k: f"{isvc}-{k:05d}.log",
        progress=progress)
    write_tables(case, out, requests=False, events=case.events())


def _tensor(name: str, dtype: str) -> str:
    shape = "[1, 2]" if name == "predict_proba" else "[1]"
    return (f"json_object('name', {quote_literal(name)}, 'shape', json({quote_literal(shape)}), "
            f"'datatype', {quote_literal(dtype)}, 'data', ")


def _request_body(schema: pa.Schema) -> str:
    inputs = []
    for name in feature_columns(schema):
        dtype = "BYTES" if pa.types.is_string(schema.field(name).type) else "FP64"
        inputs.append(f"{_tensor(name, dtype)}json_array({quote_ident(name)}))")
    return (f"CAST(json_object('id', request_id, 'inputs', json_array({', '.join(inputs)})) "
            "AS VARCHAR)")


def _response_body(model_name: str) -> str:
    other = "round(1.0 - score, 6)"
    probabilities = (f"CASE WHEN prediction = '1' THEN json_array({other}, score) "
                     f"ELSE json_array(score, {other}) END")
    outputs = (f"json_array({_tensor('predict', 'INT64')}json_array(CAST(prediction AS "
               f"INTEGER))), {_tensor('predict_proba', 'FP64')}{probabilities}))")
    return (
        "CASE WHEN prediction IS NULL THEN CAST(json_object('error', coalesce(error_type, "
        "'internal_error')) AS VARCHAR) ELSE CAST(json_object('model_name', "
        f"{quote_literal(model_name)}, 'model_version', model_version, 'id', request_id, "
        f"'outputs', {outputs}) AS VARCHAR) END"
    )


def _block(kind: str, isvc: str) -> str:
    """SQL: the text block of one event (``_id``, ``_ns`` and ``_body`` in scope)."""
    head = "\n".join([
        _BANNER, "Validation: valid", "Context Attributes,", "  specversion: 1.0",
        f"  type: org.kubeflow.serving.inference.{kind}", "  source: http://localhost:9081/",
        "  id: ",
    ])
    ext = "\n".join([
        "", "  datacontenttype: application/json", "Extensions,", "  component: predictor",
        "  endpoint: ", f"  inferenceservicename: {isvc}", f"  namespace: {NAMESPACE}",
        "Data,", "  ",
    ])
    return (f"{quote_literal(head)} || _id || chr(10) || '  time: ' || {rfc3339_ns('_ns')} "
            f"|| {quote_literal(ext)} || _body || chr(10)")


def _events_sql(schema: pa.Schema, isvc: str, model_name: str) -> str:
    latency_ns = "CAST(round(coalesce(latency_ms, 0) * 1000) AS BIGINT) * 1000"
    events = (
        f"SELECT request_id AS _id, {epoch_ns('ts')} AS _ns, 0 AS _k, "
        f"{_request_body(schema)} AS _body FROM chunk UNION ALL "
        f"SELECT request_id, {epoch_ns('ts')} + {latency_ns}, 1, {_response_body(model_name)} "
        "FROM chunk"
    )
    return (
        f"SELECT CASE WHEN _k = 0 THEN {_block('request', isvc)} ELSE "
        f"{_block('response', isvc)} END AS block FROM ({events}) ORDER BY _ns, _k, _id"
    )
