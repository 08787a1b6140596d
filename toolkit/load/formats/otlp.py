"""OpenTelemetry OTLP/JSON traces: server spans into requests.

A file holds one ``ExportTraceServiceRequest`` (``{"resourceSpans": [...]}``, possibly
pretty-printed) or one per line, as the collector's ``file`` exporter writes. Each span of kind
SERVER (``2`` or ``"SPAN_KIND_SERVER"``) is one request; other spans (internal, client...) are
counted in a note.

=====================  ==================================================================
column                 from
=====================  ==================================================================
request_id             a request-id attribute (``request.id``, ``request_id``,
                       ``app.request.id``, ``gen_ai.request.id``,
                       ``http.request.header.x-request-id``), else ``<traceId>:<spanId>``
                       (hex ids as lower-case text: OTLP/JSON hex is case-insensitive)
ts                     ``startTimeUnixNano`` (decimal string or JSON number; read as
                       HUGEINT, so nanoseconds are exact, then stored to the microsecond)
latency_ms             ``endTimeUnixNano - startTimeUnixNano`` in ms (exact integer
                       nanoseconds before the division)
status                 ``timeout`` for HTTP 408/504, ``error`` for ``status.code`` 2
                       (ERROR) or HTTP >= 400, else ``ok``
http_status            ``http.response.status_code`` (``http.status_code`` before semconv 1.21)
error_type             ``error.type``
endpoint               resource ``service.name``
host                   resource ``k8s.pod.name``, ``host.name`` or ``service.instance.id``
model_name             ``model.name``, ``ml.model.name``, ``gen_ai.request.model``
model_version          ``model.version``, ``ml.model.version``, ``model_version``,
                       ``gen_ai.response.model``
pipeline_version       ``pipeline.version``, ``preprocessing.version``
client_version         ``client.version``, ``app.client.version``, ``client_version``,
                       ``http.request.header.x-client-version``
cache_hit              ``cache.hit``
cache_model_version    ``cache.model_version`` (the model version that computed a cached
                       answer)
prediction, score      ``prediction`` / ``model.prediction``, ``score`` / ``model.score``
input/output_tokens    ``gen_ai.usage.input_tokens`` (``prompt_tokens``),
                       ``gen_ai.usage.output_tokens`` (``completion_tokens``)
ttft_ms                ``gen_ai.latency.time_to_first_token`` (seconds) x 1000
queue_ms               ``gen_ai.latency.time_in_queue`` (seconds) x 1000
finish_reason          ``gen_ai.response.finish_reasons`` (the first)
params                 ``gen_ai.request.temperature``, ``top_p``, ``top_k``, ``max_tokens``,
                       ``n``, ``seed``, ``presence_penalty``, ``frequency_penalty`` as a JSON
                       object of the ones present (vLLM's ``--otlp-traces-endpoint`` spans)
=====================  ==================================================================

Span attributes are looked up first, then resource attributes. ``_row`` is the line of the
request in a JSON-lines file, else the span's position in the document.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from toolkit.load.discover import SourceFile
from toolkit.load.formats import FormatOptions, register
from toolkit.load.formats._common import finish, head_text, json_records, materialize
from toolkit.load.sources import StagedSource
from toolkit.store.schema import quote_ident, quote_literal

__all__ = ["OTLPReader"]

#: Sampling parameters read from ``gen_ai.request.*`` into the ``params`` JSON.
_SAMPLING = ("temperature", "top_p", "top_k", "max_tokens", "n", "seed", "presence_penalty",
             "frequency_penalty")
#: canonical column -> attribute keys, first found wins
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "request_id": ("request.id", "request_id", "app.request.id", "gen_ai.request.id",
                   "http.request.header.x-request-id", "x-request-id"),
    "http_status": ("http.response.status_code", "http.status_code"),
    "error_type": ("error.type",),
    "endpoint": ("service.name",),
    "host": ("k8s.pod.name", "host.name", "service.instance.id"),
    "model_name": ("model.name", "ml.model.name", "gen_ai.request.model"),
    "model_version": ("model.version", "ml.model.version", "model_version",
                      "gen_ai.response.model"),
    "pipeline_version": ("pipeline.version", "preprocessing.version"),
    "client_version": ("client.version", "app.client.version", "client_version",
                       "http.request.header.x-client-version"),
    "cache_hit": ("cache.hit",),
    "cache_model_version": ("cache.model_version",),
    "prediction": ("prediction", "model.prediction", "ml.prediction"),
    "score": ("score", "model.score", "ml.score"),
    "input_tokens": ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"),
    "output_tokens": ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"),
    "_ttft_s": ("gen_ai.latency.time_to_first_token",),
    "_queue_s": ("gen_ai.latency.time_in_queue",),
    "finish_reason": ("gen_ai.response.finish_reasons", "gen_ai.response.finish_reason"),
    **{f"_p_{name}": (f"gen_ai.request.{name}",) for name in _SAMPLING},
}
_RESOURCE_ONLY = ("endpoint", "host")


VALUE = "a->'value'"


def _any_value(v: str) -> str:
    """SQL: an OTLP ``AnyValue`` as text (an array gives its first element)."""
    first = f"{v}->'arrayValue'->'values'->0"
    return (
        f"coalesce({v}->>'stringValue', {v}->>'intValue', {v}->>'doubleValue', "
        f"{v}->>'boolValue', {first}->>'stringValue', {first}->>'intValue', "
        f"{first}->>'doubleValue')"
    )


def _nanos(text: str) -> str:
    return (f"coalesce(TRY_CAST({text} AS HUGEINT), "
            f"TRY_CAST(TRY_CAST({text} AS DOUBLE) AS HUGEINT))")


class OTLPReader:
    """Reader of OTLP/JSON trace exports."""

    name = "otlp"
    tables = ("requests",)

    def sniff(self, path: Path, head: bytes) -> str | None:
        """``requests`` for OTLP/JSON traces.

        Examples
        --------
        >>> OTLPReader().sniff(Path("t.json"), b'{"resourceSpans": []}')
        'requests'
        """
        text = head_text(head)
        if text.lstrip().startswith("{") and '"resourceSpans"' in text:
            return "requests"
        return None

    def stage(
        self, con: duckdb.DuckDBPyConnection, source: SourceFile, options: FormatOptions
    ) -> StagedSource:
        """Stage the server spans."""
        cleanup: list[str] = []
        notes: list[str] = []
        mode, records = json_records(con, source.path, cleanup)
        spans = materialize(con, _spans_sql(records, mode), cleanup=cleanup)
        other = con.execute(
            f"SELECT count(*) FROM {quote_ident(spans)} WHERE _perr IS NULL AND NOT _server"
        ).fetchall()[0][0]
        if other:
            notes.append(f"{other} span(s) not of kind SERVER (internal, client, ...) not loaded")
        final = materialize(con, _requests_sql(quote_ident(spans)), cleanup=cleanup)
        return finish(con, final, str(source.path), cleanup=cleanup, notes=notes)


def _spans_sql(records: str, mode: str) -> str:
    requests = (
        f"(SELECT _row, _raw, _perr, CASE WHEN _perr IS NULL THEN CAST(_raw AS JSON) END AS r "
        f"FROM {records})"
    )
    resource_spans = (
        "(SELECT _row, _perr, unnest(CASE WHEN _perr IS NULL THEN CAST(coalesce("
        "r->'resourceSpans', '[]') AS JSON[]) ELSE [NULL::JSON] END) AS rs, "
        "generate_subscripts(CASE WHEN _perr IS NULL THEN CAST(coalesce(r->'resourceSpans', "
        f"'[]') AS JSON[]) ELSE [NULL::JSON] END, 1) AS i1, _raw FROM {requests})"
    )
    scope_spans = (
        "(SELECT _row, _perr, _raw, i1, rs->'resource'->'attributes' AS rattrs, "
        "unnest(CASE WHEN _perr IS NULL THEN CAST(coalesce(rs->'scopeSpans', "
        "rs->'instrumentationLibrarySpans', '[]') AS JSON[]) ELSE [NULL::JSON] END) AS ss, "
        "generate_subscripts(CASE WHEN _perr IS NULL THEN CAST(coalesce(rs->'scopeSpans', "
        "rs->'instrumentationLibrarySpans', '[]') AS JSON[]) ELSE [NULL::JSON] END, 1) AS i2 "
        f"FROM {resource_spans})"
    )
    spans = (
        "(SELECT _row, _perr, _raw, i1, i2, rattrs, unnest(CASE WHEN _perr IS NULL THEN "
        "CAST(coalesce(ss->'spans', '[]') AS JSON[]) ELSE [NULL::JSON] END) AS span, "
        "generate_subscripts(CASE WHEN _perr IS NULL THEN CAST(coalesce(ss->'spans', '[]') "
        f"AS JSON[]) ELSE [NULL::JSON] END, 1) AS i3 FROM {scope_spans})"
    )
    row = "row_number() OVER (ORDER BY _row, i1, i2, i3)" if mode == "document" else "_row"
    return (
        f"SELECT {row} AS _row, CASE WHEN _perr IS NULL THEN CAST(span AS VARCHAR) ELSE _raw END "
        "AS _raw, _perr, span, rattrs, coalesce(span->>'kind' IN ('2', 'SPAN_KIND_SERVER'), false) "
        f"AS _server FROM {spans}"
    )


def _params_sql() -> str:
    """SQL: the sampling parameters the span carries, as a JSON object (NULL when none)."""
    entries = ", ".join(
        f"{{'k': {quote_literal(name)}, 'v': TRY_CAST(_p_{name} AS DOUBLE)}}" for name in _SAMPLING)
    present = f"list_filter([{entries}], lambda e: e.v IS NOT NULL)"
    return (f"CASE WHEN len({present}) > 0 THEN CAST(to_json(map_from_entries({present})) "
            "AS JSON) END")


def _requests_sql(spans: str) -> str:
    span_keys = "list_transform(CAST(coalesce(span->'attributes', '[]') AS JSON[]), " \
                "lambda a: a->>'key')"
    span_values = "list_transform(CAST(coalesce(span->'attributes', '[]') AS JSON[]), " \
                  f"lambda a: {_any_value(VALUE)})"
    resource_keys = "list_transform(CAST(coalesce(rattrs, '[]') AS JSON[]), lambda a: a->>'key')"
    resource_values = "list_transform(CAST(coalesce(rattrs, '[]') AS JSON[]), " \
                      f"lambda a: {_any_value(VALUE)})"

    def attribute(column: str) -> str:
        keys = ATTRIBUTES[column]
        scopes = [("_rk", "_rv")] if column in _RESOURCE_ONLY else [("_sk", "_sv"), ("_rk", "_rv")]
        parts = [f"{vals}[list_position({ks}, {quote_literal(k)})]"
                 for ks, vals in scopes for k in keys]
        return f"coalesce({', '.join(parts)})"

    start, end = _nanos("span->>'startTimeUnixNano'"), _nanos("span->>'endTimeUnixNano'")
    attributes = ", ".join(f"{attribute(c)} AS {c}" for c in ATTRIBUTES if c != "request_id")
    with_attrs = (
        f"(SELECT *, {attribute('request_id')} AS _rid, {attributes}, "
        f"TRY_CAST(coalesce({attribute('http_status')}, '') AS INTEGER) AS _http, "
        f"nullif({start}, 0) AS _start, nullif({end}, 0) AS _end, "
        # a start DuckDB cannot hold (1e30 ns) rejects its span instead of failing the file
        f"CAST(try(make_timestamp(TRY_CAST(nullif({start}, 0) // 1000 AS BIGINT))) AS "
        "TIMESTAMPTZ) AS _ts FROM "
        f"(SELECT *, {span_keys} AS _sk, {span_values} AS _sv, {resource_keys} AS _rk, "
        f"{resource_values} AS _rv FROM {spans} WHERE _perr IS NOT NULL OR _server))"
    )
    status_code = "span->'status'->>'code'"
    return (
        "SELECT _row, _raw, coalesce(_perr, CASE WHEN _start IS NULL THEN "
        "'missing or not an integer' WHEN _start < 0 OR _ts IS NULL THEN printf('%s is not a "
        "time (nanoseconds since 1970 out of range)', span->>'startTimeUnixNano') END) "
        "AS _parse_error, CASE WHEN _perr IS NULL AND (_start IS NULL OR _start < 0 OR _ts IS "
        "NULL) THEN 'startTimeUnixNano' END AS _parse_column, "
        "coalesce(_rid, lower(span->>'traceId') || ':' || lower(span->>'spanId')) AS request_id, "
        "_ts AS ts, "
        "CASE WHEN _end >= _start THEN CAST(_end - _start AS DOUBLE) / 1e6 END AS latency_ms, "
        f"CASE WHEN _perr IS NOT NULL THEN NULL WHEN _http IN (408, 504) THEN 'timeout' "
        f"WHEN {status_code} IN ('2', 'STATUS_CODE_ERROR') OR _http >= 400 THEN 'error' "
        "ELSE 'ok' END AS status, http_status, error_type, endpoint, host, model_name, "
        "model_version, pipeline_version, client_version, cache_hit, cache_model_version, "
        "prediction, score, "
        "input_tokens, output_tokens, TRY_CAST(_ttft_s AS DOUBLE) * 1000 AS ttft_ms, "
        "TRY_CAST(_queue_s AS DOUBLE) * 1000 AS queue_ms, finish_reason, "
        f"{_params_sql()} AS params FROM {with_attrs}"
    )


register(OTLPReader())
