"""OpenTelemetry: requests as OTLP/JSON server spans, as the collector's file exporter writes.

``otlp/traces-NNNNN.jsonl`` (one file per :data:`FILE_SPANS` requests) holds one
``ExportTraceServiceRequest`` per line (``log_formats.md`` section 5.1): a batch of up to
:data:`BATCH_SPANS` spans of one pod (its SDK's resource), in time order::

    {"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":
      "fraud-scorer"}},{"key":"k8s.pod.name","value":{"stringValue":"fraud-scorer-..."}}, ...]},
      "scopeSpans":[{"scope":{"name":"opentelemetry.instrumentation.fastapi", ...},
       "spans":[{"traceId":"<32 hex>","spanId":"<16 hex>","name":"POST /v2/score","kind":2,
                 "startTimeUnixNano":"1770595200123456000","endTimeUnixNano":"...",
                 "attributes":[...],"status":{}}, ...]}]}]}

Span attributes (HTTP semantic conventions, plus the service's own ``model.*``):
``http.request.method``, ``http.route`` (the generic ``endpoint``),
``http.response.status_code``, ``error.type``, ``http.request.header.x-request-id`` and
``http.request.header.x-client-version`` (captured request headers: string arrays),
``model.name``, ``model.version``, ``pipeline.version``, ``cache.hit``,
``cache.model_version``, ``model.prediction``, ``model.score``. Status is ERROR (code 2, the
error type as message) for 5xx answers, unset otherwise; 64-bit integers (times, the status
code) are decimal strings as conforming encoders write them.

The loader reads back ``request_id``, ``ts`` and ``latency_ms`` (nanoseconds, exact),
``status``, ``http_status``, ``error_type``, ``host`` (``k8s.pod.name``), ``model_name``,
``model_version``, ``pipeline_version``, ``client_version``, ``cache_hit``,
``cache_model_version``, ``prediction`` and ``score``; ``endpoint`` becomes the service name
(``service.name``). Spans carry no model inputs (features) and no ``in_flight``; labels and the
other tables stay generic.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

from toolkit.simulate.case import Case
from toolkit.simulate.platforms._common import (
    CONTAINER,
    NAMESPACE,
    Progress,
    epoch_ns,
    write_request_files,
)
from toolkit.simulate.writer import write_tables
from toolkit.store.schema import quote_literal

__all__ = ["write", "BATCH_SPANS", "FILE_SPANS", "SCOPE"]

#: Spans per exported batch (the batch span processor's default ``max_export_batch_size``).
BATCH_SPANS = 512
#: Spans per file (about 50 MB: the file exporter rotates its file at ``max_megabytes``, 100 by
#: default; it also bounds the memory of the text made at once).
FILE_SPANS = 50_000
#: The instrumentation scope of the server spans.
SCOPE = {"name": "opentelemetry.instrumentation.fastapi", "version": "0.48b0"}


def write(case: Case, out: Path, progress: Progress | None = None) -> None:
    """Write the requests of ``case`` as OTLP/JSON trace files, the rest as generic files."""
    write_request_files(
        case, out, out / "otlp",
        sql=lambda schema: _lines_sql(schema, case.plan.platform.service),
        column="line", file_rows=FILE_SPANS, file_name=lambda k: f"traces-{k:05d}.jsonl",
        progress=progress)
    write_tables(case, out, requests=False, events=case.events())


def _attribute(key: str, kind: str, value: str) -> str:
    """SQL: one ``{"key", "value": {<kind>: value}}`` attribute, NULL when ``value`` is."""
    wrapped = {
        "string": f"json_object('stringValue', {value})",
        "int": f"json_object('intValue', CAST({value} AS VARCHAR))",
        "double": f"json_object('doubleValue', {value})",
        "bool": f"json_object('boolValue', {value})",
        "strings": f"json_object('arrayValue', json_object('values', "
                   f"json_array(json_object('stringValue', {value}))))",
    }[kind]
    return f"CASE WHEN {value} IS NOT NULL THEN json_object('key', {quote_literal(key)}, " \
           f"'value', {wrapped}) END"


def _span_attributes(schema: pa.Schema) -> str:
    names = set(schema.names)
    parts = [
        ("http.request.method", "string", "'POST'"),
        ("http.route", "string", "endpoint"),
        ("http.response.status_code", "int", "http_status"),
        ("error.type", "string", "error_type"),
        ("http.request.header.x-request-id", "strings", "request_id"),
        ("http.request.header.x-client-version", "strings", "client_version"),
        ("model.name", "string", "model_name"),
        ("model.version", "string", "model_version"),
        ("pipeline.version", "string", "pipeline_version"),
        ("cache.hit", "bool", "cache_hit"),
        ("cache.model_version", "string", "cache_model_version"),
        ("model.prediction", "string", "prediction"),
        ("model.score", "double", "score"),
    ]
    items = ", ".join(_attribute(k, kind, v) for k, kind, v in parts
                      if not v.isidentifier() or v in names)
    return f"list_filter([{items}], lambda a: a IS NOT NULL)"


def _lines_sql(schema: pa.Schema, service: str) -> str:
    start = epoch_ns("ts")
    end = f"({start} + CAST(round(coalesce(latency_ms, 0) * 1000) AS BIGINT) * 1000)"
    span = (
        "json_object('traceId', md5(request_id), 'spanId', substr(md5('span/' || request_id), "
        "1, 16), 'name', 'POST ' || coalesce(endpoint, '/'), 'kind', 2, 'startTimeUnixNano', "
        f"CAST({start} AS VARCHAR), 'endTimeUnixNano', CAST({end} AS VARCHAR), 'attributes', "
        f"to_json({_span_attributes(schema)}), 'status', CASE WHEN http_status >= 500 THEN "
        "json_object('code', 2, 'message', coalesce(error_type, '')) ELSE json_object() END)"
    )
    resource = (
        "json_object('attributes', json_array("
        f"{_attribute('service.name', 'string', quote_literal(service))}, "
        f"{_attribute('k8s.namespace.name', 'string', quote_literal(NAMESPACE))}, "
        f"{_attribute('k8s.deployment.name', 'string', quote_literal(service))}, "
        f"{_attribute('k8s.pod.name', 'string', 'host')}, "
        f"{_attribute('k8s.container.name', 'string', quote_literal(CONTAINER))}))"
    )
    # each span is one piece of text; a batch's first span opens the request, its last one
    # closes it: the file is the pieces in order, without building lists of spans
    head = '{"resourceSpans":[{"resource":'
    middle = f',"scopeSpans":[{{"scope":{_json(SCOPE)},"spans":['
    opening = f"{quote_literal(head)} || CAST({resource} AS VARCHAR) || {quote_literal(middle)}"
    closing = f"{quote_literal(']}]}]}')} || chr(10)"
    batches = (
        "SELECT *, row_number() OVER w AS _i, count(*) OVER b AS _n, min(ts) OVER b AS _first "
        "FROM (SELECT *, (row_number() OVER (PARTITION BY host ORDER BY ts, request_id) - 1) "
        f"// {BATCH_SPANS} AS _batch FROM chunk) WINDOW b AS (PARTITION BY host, _batch), "
        "w AS (PARTITION BY host, _batch ORDER BY ts, request_id)"
    )
    return (
        f"SELECT CASE WHEN _i = 1 THEN {opening} ELSE '' END || CAST({span} AS VARCHAR) || "
        f"CASE WHEN _i = _n THEN {closing} ELSE ',' END AS line FROM ({batches}) "
        "ORDER BY _first, host, _batch, _i"
    )


def _json(value: dict) -> str:
    return json.dumps(value, separators=(",", ":"))
