"""OpenAI-compatible request/response logs (vLLM, SGLang, TGI's OpenAI server, gateways) into requests.

Every engine that serves an OpenAI-compatible API answers with the same objects, and gateways
and proxies log them, one JSON object per line, in one of three shapes:

* a bare response: ``{"id": "chatcmpl-..", "object": "chat.completion" | "text_completion",
  "created": <epoch s>, "model": .., "choices": [{"finish_reason": ..}], "usage": {..}}``;
* a request/response pair: ``{"request": {<the request body>}, "response": {<the response>},
  ...}`` with the gateway's own fields beside them (times, latency, status, host);
* the Batch API's output: ``{"custom_id": .., "response": {"status_code": 200, "request_id":
  .., "body": {<the response>}}, "error": ..}``.

Canonical columns (the first present wins):

==================  ==========================================================================
``request_id``      ``request_id``, the response's ``id``, ``id``, the Batch ``custom_id``,
                    else ``<file name>:<line>`` (an error answer carries no id)
``ts``              the record's ``start_time`` / ``startTime`` / ``timestamp`` /
                    ``created_at`` / ``ts`` (ISO 8601 or epoch seconds), else the response's
                    ``created`` (epoch seconds, when the completion was created)
``latency_ms``      ``latency_ms`` / ``duration_ms`` / ``response_ms``, ``latency`` /
                    ``duration`` in seconds, else ``end_time - start_time``
``model_name``      the request's ``model`` (what was asked for), else the response's
``model_version``   the response's ``system_fingerprint`` (OpenAI: the backend configuration;
                    it changes with a release), else the response's ``model``
``status``          ``error`` when the record has an ``error`` object or an HTTP status >= 400
                    (``timeout`` for 408 / 504), else ``ok``
``http_status``     ``status_code`` of the record or of the Batch response
``error_type``      ``error.type`` / ``error.code``
``input_tokens``    ``usage.prompt_tokens`` (``usage.input_tokens`` in the Responses API)
``output_tokens``   ``usage.completion_tokens`` (``usage.output_tokens``)
``cached_tokens``   ``usage.prompt_tokens_details.cached_tokens`` (``input_tokens_details``)
``finish_reason``   the first choice's ``finish_reason``; ``tool_calls`` / ``function_call``
                    (the model stopped to call a tool) are ``stop``
``params``          the request's sampling parameters as sent: ``temperature``, ``top_p``,
                    ``max_tokens`` / ``max_completion_tokens``, ``n``, ``seed``, ``stop``,
                    ``presence_penalty``, ``frequency_penalty``
``ttft_ms``,        per-request timings some servers and gateways add (``ttft_ms`` /
``queue_ms``,       ``time_to_first_token_ms``, ``queue_ms`` / ``queue_time_ms``,
``tpot_ms``         ``tpot_ms`` / ``mean_itl_ms``), top level or under ``metrics``
``endpoint``        the record's ``endpoint``, else the Batch request's ``url``
``host``            ``host`` / ``hostname`` / ``pod``
``adapter``         ``adapter`` / ``lora_name``
``template_version`` ``template_version`` / ``chat_template_version``
==================  ==========================================================================

Prompts and completions are not loaded (their text is not a feature and may be sensitive). A
line that is not JSON, or a record without a time, is rejected with the reason; a Batch API
*input* file (requests never served: no response) is not recognised as this format.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from toolkit.load.discover import SourceFile
from toolkit.load.formats import FormatOptions, register
from toolkit.load.formats._common import finish, head_text, json_records, materialize
from toolkit.load.sources import StagedSource
from toolkit.store.schema import quote_literal

__all__ = ["OpenAILogReader"]

_OBJECTS = ('"chat.completion"', '"text_completion"', '"response"')
_PARAMS = ("temperature", "top_p", "max_tokens", "max_completion_tokens", "n", "seed", "stop",
           "presence_penalty", "frequency_penalty")


class OpenAILogReader:
    """Reader of OpenAI-compatible request/response logs."""

    name = "openai"
    tables = ("requests",)

    def sniff(self, path: Path, head: bytes) -> str | None:
        """``requests`` when the first line is an OpenAI-style response or a logged pair.

        Examples
        --------
        >>> r = OpenAILogReader()
        >>> r.sniff(Path("l.jsonl"), b'{"id": "chatcmpl-1", "object": "chat.completion", '
        ...         b'"created": 1, "choices": [], "usage": {}}')
        'requests'
        >>> r.sniff(Path("b.jsonl"), b'{"id": "batch_req_1", "custom_id": "a", "response": '
        ...         b'{"status_code": 200, "body": {"object": "chat.completion"}}}')
        'requests'
        >>> r.sniff(Path("in.jsonl"), b'{"custom_id": "a", "method": "POST", "url": '
        ...         b'"/v1/chat/completions", "body": {"model": "m"}}') is None
        True
        """
        first = head_text(head).lstrip().split("\n", 1)[0]
        if not first.startswith("{"):
            return None
        compact = first.replace(" ", "")
        is_object = any(f'"object":{o}' in compact for o in _OBJECTS)
        has_choices = '"choices"' in first or '"usage"' in first
        if is_object and has_choices:
            return "requests"
        if '"response"' in first and ('"choices"' in first or '"usage"' in first):
            return "requests"
        if '"custom_id"' in first and '"response"' in first and '"body"' in first:
            return "requests"  # the Batch API's output (its input has no "response")
        return None

    def stage(
        self, con: duckdb.DuckDBPyConnection, source: SourceFile, options: FormatOptions
    ) -> StagedSource:
        """Stage one request row per logged response."""
        cleanup: list[str] = []
        _, records = json_records(con, source.path, cleanup)
        staged = materialize(con, _requests_sql(records, source.path.name), cleanup=cleanup)
        return finish(con, staged, str(source.path), cleanup=cleanup)


def _first(*expressions: str) -> str:
    return "coalesce(" + ", ".join(expressions) + ")"


def _time(text: str) -> str:
    """SQL: ISO 8601 text or epoch seconds (or milliseconds above 1e11) as TIMESTAMPTZ."""
    number = f"TRY_CAST({text} AS DOUBLE)"
    return (f"coalesce(TRY_CAST({text} AS TIMESTAMPTZ), try(to_timestamp(CASE WHEN "
            f"{number} >= 1e11 THEN {number} / 1000 ELSE {number} END)))")


def _requests_sql(records: str, file_name: str) -> str:
    j = "_j"
    # the response object: bare, under "response", or the Batch API's "response"."body"
    resp = (f"(CASE WHEN json_type({j}->'response'->'body') = 'OBJECT' THEN "
            f"{j}->'response'->'body' WHEN json_type({j}->'response') = 'OBJECT' THEN "
            f"{j}->'response' ELSE {j} END)")
    req = f"(CASE WHEN json_type({j}->'request') = 'OBJECT' THEN {j}->'request' END)"
    usage = f"({resp}->'usage')"
    start = _first(*(f"{j}->>'{k}'" for k in ("start_time", "startTime", "timestamp",
                                              "created_at", "ts")))
    end = _first(f"{j}->>'end_time'", f"{j}->>'endTime'")
    start_ts, end_ts = _time(start), _time(end)
    created = _time(f"{resp}->>'created'")
    ts = f"coalesce({start_ts}, {created})"
    latency = _first(
        *(f"TRY_CAST({j}->>'{k}' AS DOUBLE)" for k in ("latency_ms", "duration_ms",
                                                       "response_ms")),
        *(f"TRY_CAST({j}->>'{k}' AS DOUBLE) * 1000" for k in ("latency", "duration")),
        f"(epoch({end_ts}) - epoch({start_ts})) * 1000",
    )
    http = _first(f"TRY_CAST({j}->>'status_code' AS INTEGER)",
                  f"TRY_CAST({j}->'response'->>'status_code' AS INTEGER)")
    error = (f"(CASE WHEN json_type({j}->'error') = 'OBJECT' THEN {j}->'error' "
             f"WHEN json_type({resp}->'error') = 'OBJECT' THEN {resp}->'error' END)")
    status = (f"CASE WHEN {http} IN (408, 504) THEN 'timeout' WHEN {error} IS NOT NULL OR "
              f"{http} >= 400 THEN 'error' ELSE 'ok' END")
    finish_raw = f"{resp}->'choices'->0->>'finish_reason'"
    finish = (f"CASE WHEN {finish_raw} IN ('tool_calls', 'function_call') THEN 'stop' "
              f"ELSE {finish_raw} END")
    params_source = f"coalesce({req}, {j}->'body')"
    params = ("json_object(" + ", ".join(f"'{p}', {params_source}->'{p}'" for p in _PARAMS)
              + ")")
    # drop the keys that were not sent (json_object keeps them as null)
    params = (f"CASE WHEN {params_source} IS NOT NULL THEN CAST(to_json(map_from_entries("
              f"list_filter(list_transform(json_keys({params}), lambda k: {{'k': k, "
              f"'v': {params}->k}}), lambda e: e.v IS NOT NULL AND json_type(e.v) <> 'NULL')))"
              " AS JSON) END")

    def timing(*keys: str) -> str:
        return _first(*(f"TRY_CAST({j}->>'{k}' AS DOUBLE)" for k in keys),
                      *(f"TRY_CAST({j}->'metrics'->>'{k}' AS DOUBLE)" for k in keys))

    # an error answer has no id: the record is named by its file and line, as elsewhere
    request_id = _first(f"{j}->>'request_id'", f"{resp}->>'id'", f"{j}->>'id'",
                        f"{j}->>'custom_id'", f"{quote_literal(file_name + ':')} || _row")
    columns = {
        "request_id": request_id,
        "ts": ts,
        "endpoint": _first(f"{j}->>'endpoint'", f"{j}->'request'->>'url'"),
        "model_name": _first(f"{req}->>'model'", f"{j}->'body'->>'model'", f"{resp}->>'model'"),
        "model_version": _first(f"{resp}->>'system_fingerprint'", f"{resp}->>'model'"),
        "host": _first(f"{j}->>'host'", f"{j}->>'hostname'", f"{j}->>'pod'"),
        "latency_ms": latency,
        "status": status,
        "http_status": http,
        "error_type": _first(f"{error}->>'type'", f"{error}->>'code'"),
        "input_tokens": _first(f"TRY_CAST({usage}->>'prompt_tokens' AS INTEGER)",
                               f"TRY_CAST({usage}->>'input_tokens' AS INTEGER)"),
        "output_tokens": _first(f"TRY_CAST({usage}->>'completion_tokens' AS INTEGER)",
                                f"TRY_CAST({usage}->>'output_tokens' AS INTEGER)"),
        "cached_tokens": _first(
            f"TRY_CAST({usage}->'prompt_tokens_details'->>'cached_tokens' AS INTEGER)",
            f"TRY_CAST({usage}->'input_tokens_details'->>'cached_tokens' AS INTEGER)"),
        "finish_reason": finish,
        "params": params,
        "ttft_ms": timing("ttft_ms", "time_to_first_token_ms"),
        "queue_ms": timing("queue_ms", "queue_time_ms"),
        "tpot_ms": timing("tpot_ms", "mean_itl_ms"),
        "adapter": _first(f"{j}->>'adapter'", f"{j}->>'lora_name'"),
        "template_version": _first(f"{j}->>'template_version'", f"{j}->>'chat_template_version'"),
    }
    select = ", ".join(f"CASE WHEN _perr IS NULL THEN {expr} END AS {name}"
                       for name, expr in columns.items())
    return (
        "SELECT _row, _raw, CASE WHEN _perr IS NOT NULL THEN _perr WHEN ts IS NULL THEN "
        "'no time: none of start_time, startTime, timestamp, created_at, ts, or the "
        "response''s created is a time' END AS _parse_error, CASE WHEN _perr IS NULL AND ts "
        "IS NULL THEN 'ts' END AS _parse_column, * EXCLUDE (_row, _raw, _perr) FROM "
        f"(SELECT _row, _raw, _perr, {select} FROM (SELECT *, CASE WHEN _perr IS NULL THEN "
        f"CAST(_raw AS JSON) END AS {j} FROM {records}))"
    )


register(OpenAILogReader())
