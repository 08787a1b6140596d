"""Vertex AI request-response logging, exported from BigQuery as NDJSON or Parquet.

Predictive endpoints log one row per request: ``endpoint``, ``deployed_model_id``,
``logging_time``, ``request_id`` (NUMERIC), ``request_payload`` and ``response_payload``
(REPEATED STRING: one JSON text per instance, resp. per prediction). ``bq extract`` writes
NUMERIC as a string in NDJSON and as a DECIMAL in Parquet.

* One request row per instance: the i-th element of ``request_payload`` with the i-th of
  ``response_payload`` (a payload of one ``{"instances": [...]}`` / ``{"predictions": [...]}``
  object is expanded). Instances that are objects give one feature column per key; lists are
  positional (``features=[...]`` names, else ``f0``, ``f1``, ...).
* ``request_id`` is kept exactly as exported: the NUMERIC's digits as text, never through a
  double (a DECIMAL is printed without its zero fraction). A request of N instances gives
  ``<request_id>:0`` .. ``<request_id>:N-1``.
* ``ts`` from ``logging_time`` (ISO text, or epoch seconds as ``bq --format=json`` prints
  them; a value that is neither rejects its record), ``model_version`` from
  ``deployed_model_id``, ``endpoint`` the endpoint resource name; ``prediction`` and ``score`` from the response element (the rules of
  :mod:`._payload`, e.g. AutoML's ``{"classes": [...], "scores": [...]}`` gives the top class and
  its score).
* Generative AI logs (``full_request``, ``full_response``, ``model``, ``model_version``,
  ``metadata``) give one row per request with ``model_name``, ``model_version``,
  ``input_tokens`` / ``output_tokens`` from the response's usage metadata and ``latency_ms`` from
  ``metadata.request_latency``.

A payload element that is not JSON, or a response with another number of predictions than the
request has instances, rejects the request (its line, or its row in Parquet).
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from toolkit.load.discover import SourceFile
from toolkit.load.formats import FormatOptions, register
from toolkit.load.formats._common import (
    head_text,
    lines,
    materialize,
    parquet_columns,
    record_error,
)
from toolkit.load.formats._instances import explode
from toolkit.load.sources import StagedSource
from toolkit.store.schema import quote_ident

__all__ = ["VertexReader"]

_KEYS = ("logging_time",)
_PAYLOADS = ("request_payload", "full_request")


class VertexReader:
    """Reader of Vertex AI request-response logging exports."""

    name = "vertex"
    tables = ("requests", "reference")

    def sniff(self, path: Path, head: bytes) -> str | None:
        """``requests`` for a Vertex AI request-response log export.

        Examples
        --------
        >>> VertexReader().sniff(Path("l.json"), b'{"endpoint": "projects/1/locations/x/'
        ...     b'endpoints/2", "logging_time": "2025-01-01 00:00:00 UTC", "request_payload": []}')
        'requests'
        """
        if path.name.lower().endswith((".parquet", ".pq")):
            columns = set(parquet_columns(path))
        else:
            first = head_text(head).lstrip().split("\n", 1)[0]
            if not first.startswith("{"):
                return None
            columns = {k for k in (*_KEYS, *_PAYLOADS) if f'"{k}"' in first}
        if "logging_time" in columns and any(p in columns for p in _PAYLOADS):
            return "requests"
        return None

    def stage(
        self, con: duckdb.DuckDBPyConnection, source: SourceFile, options: FormatOptions
    ) -> StagedSource:
        """Stage one request row per instance."""
        cleanup: list[str] = []
        notes: list[str] = []
        params = {"path": str(source.path)}
        if source.path.name.lower().endswith((".parquet", ".pq")):
            rows = materialize(con, _parquet_rows(con, source.path, notes), params,
                               cleanup=cleanup)
        else:
            rows = materialize(con, _ndjson_rows(lines(con, source.path, cleanup)),
                               cleanup=cleanup)
        generative = con.execute(
            f"SELECT count(*) FROM {quote_ident(rows)} WHERE full_response IS NOT NULL"
        ).fetchall()[0][0]
        records = materialize(con, _records_sql(quote_ident(rows), bool(generative)),
                              cleanup=cleanup)
        return explode(con, records, label=str(source.path), options=options, cleanup=cleanup,
                       notes=notes, fields=("request_payload", "response_payload", "labels"))


def _ndjson_rows(text: str) -> str:
    fields = {
        "endpoint": "$.endpoint",
        "deployed_model_id": "$.deployed_model_id",
        "logging_time": "$.logging_time",
        "request_id": "$.request_id",
        "model": "$.model",
        "model_version": "$.model_version",
    }
    paths = ", ".join(f"'{p}'" for p in fields.values())
    values = ", ".join(f"_v[{i + 1}] AS {name}" for i, name in enumerate(fields))
    return (
        f"SELECT _row, _raw, _perr, {values}, "
        "CASE WHEN _perr IS NULL THEN TRY_CAST(_j->'request_payload' AS VARCHAR[]) END "
        "AS request_payload, CASE WHEN _perr IS NULL THEN TRY_CAST(_j->'response_payload' AS "
        "VARCHAR[]) END AS response_payload, CASE WHEN _perr IS NULL THEN _j->'full_response' END "
        "AS full_response, CASE WHEN _perr IS NULL THEN _j->'metadata' END AS metadata FROM "
        f"(SELECT *, CASE WHEN _perr IS NULL THEN json_extract_string(_raw, [{paths}]) END AS _v, "
        "CASE WHEN _perr IS NULL THEN CAST(_raw AS JSON) END AS _j FROM (SELECT _row, _raw, "
        f"{record_error()} AS _perr FROM {text}))"
    )


def _parquet_rows(con: duckdb.DuckDBPyConnection, path: Path, notes: list[str]) -> str:
    reader = "read_parquet($path, file_row_number = true)"
    types = {name: dtype for name, dtype, *_ in con.execute(
        f"DESCRIBE SELECT * FROM {reader}", {"path": str(path)}).fetchall()}

    def text(name: str) -> str:
        if name not in types:
            return "NULL::VARCHAR"
        column, dtype = quote_ident(name), types[name].upper()
        if dtype.startswith("DECIMAL"):
            return (f"CASE WHEN {column} = trunc({column}) THEN CAST(CAST({column} AS HUGEINT) "
                    f"AS VARCHAR) ELSE rtrim(CAST({column} AS VARCHAR), '0') END")
        if dtype in ("DOUBLE", "FLOAT"):
            notes.append(f"{name} is a floating-point column in this file: ids above 2^53 may "
                         "have lost digits before the export")
            return (f"CASE WHEN {column} = trunc({column}) THEN CAST(CAST({column} AS HUGEINT) "
                    f"AS VARCHAR) ELSE CAST({column} AS VARCHAR) END")
        return f"CAST({column} AS VARCHAR)"

    def strings(name: str) -> str:
        if name not in types:
            return "NULL::VARCHAR[]"
        column = quote_ident(name)
        if types[name].endswith("[]"):
            return f"CAST({column} AS VARCHAR[])"
        return f"TRY_CAST(TRY_CAST({column} AS JSON) AS VARCHAR[])"

    def json(name: str) -> str:
        return f"TRY_CAST({quote_ident(name)} AS JSON)" if name in types else "NULL::JSON"

    logging_time = quote_ident("logging_time") if "logging_time" in types else "NULL"
    source_columns = [c for c in types if c != "file_row_number"]
    raw = "CAST(json_object(" + ", ".join(
        f"'{c}', {quote_ident(c)}" for c in source_columns) + ") AS VARCHAR)"
    return (
        f"SELECT file_row_number + 1 AS _row, {raw} AS _raw, NULL::VARCHAR AS _perr, "
        f"{text('endpoint')} AS endpoint, {text('deployed_model_id')} AS deployed_model_id, "
        f"{logging_time} AS logging_time, {text('request_id')} AS request_id, "
        f"{text('model')} AS model, {text('model_version')} AS model_version, "
        f"{strings('request_payload')} AS request_payload, "
        f"{strings('response_payload')} AS response_payload, "
        f"{json('full_response')} AS full_response, {json('metadata')} AS metadata FROM {reader}"
    )


def _payload_list(column: str, wrapper: str) -> str:
    parsed = f"list_transform({column}, lambda p: TRY_CAST(p AS JSON))"
    return (
        f"CASE WHEN {column} IS NULL THEN NULL WHEN len({column}) = 1 AND "
        f"json_type(TRY_CAST({column}[1] AS JSON)->'{wrapper}') = 'ARRAY' THEN "
        f"CAST(TRY_CAST({column}[1] AS JSON)->'{wrapper}' AS JSON[]) ELSE {parsed} END"
    )


def _records_sql(rows: str, generative: bool) -> str:
    bad = (
        "CASE WHEN list_position(list_transform({c}, lambda p: TRY_CAST(p AS JSON) IS NULL), "
        "true) IS NOT NULL THEN printf('element %d is not valid JSON', list_position("
        "list_transform({c}, lambda p: TRY_CAST(p AS JSON) IS NULL), true) - 1) END"
    )
    extra = ""
    if generative:
        usage = "coalesce(full_response->'usage_metadata', full_response->'usageMetadata')"
        extra = (
            ", CASE WHEN full_response IS NOT NULL THEN model END AS model_name, "
            f"TRY_CAST(coalesce({usage}->>'prompt_token_count', {usage}->>'promptTokenCount') "
            "AS INTEGER) AS input_tokens, TRY_CAST(coalesce("
            f"{usage}->>'candidates_token_count', {usage}->>'candidatesTokenCount') AS INTEGER) "
            "AS output_tokens, TRY_CAST(metadata->>'request_latency' AS DOUBLE) AS latency_ms"
        )
    # logging_time is a BigQuery TIMESTAMP: ISO text, or epoch seconds as `bq --format=json`
    # prints it (1.740787200E9); anything else (or out of range) rejects the record
    ts = ("coalesce(TRY_CAST(logging_time AS TIMESTAMPTZ), "
          "try(to_timestamp(TRY_CAST(logging_time AS DOUBLE))))")
    bad_time = (f"CASE WHEN logging_time IS NOT NULL AND {ts} IS NULL THEN "
                "printf('%s is not a time', logging_time) END")
    return (
        "SELECT _row, _raw, coalesce(_perr, "
        f"{bad.format(c='request_payload')}, {bad.format(c='response_payload')}, {bad_time}) "
        f"AS _perr, CASE WHEN _perr IS NOT NULL THEN NULL WHEN {bad.format(c='request_payload')} "
        f"IS NOT NULL THEN 'request_payload' WHEN {bad.format(c='response_payload')} IS NOT NULL "
        f"THEN 'response_payload' WHEN {bad_time} IS NOT NULL THEN 'logging_time' END AS _pcol, "
        "request_id AS _id, "
        f"CASE WHEN _perr IS NULL THEN {_payload_list('request_payload', 'instances')} END AS _xs, "
        f"CASE WHEN _perr IS NULL THEN {_payload_list('response_payload', 'predictions')} END "
        f"AS _ys, NULL::VARCHAR[] AS _gts, {ts} AS ts, "
        "nullif(endpoint, '') AS endpoint, "
        "coalesce(deployed_model_id, model_version) AS model_version"
        f"{extra} FROM {rows}"
    )


register(VertexReader())
