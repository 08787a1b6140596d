"""KServe and Seldon payload logs: CloudEvents request/response pairs into requests.

The payload logger sends each request and its response as two CloudEvents with the same
``ce-id`` (KServe) or ``ce-requestid`` (Seldon Core: ``ce-id`` is then unique per message).
Recognised forms, by content:

* the text dump of a knative ``event_display`` sink and of an HTTP echo server (parsed in
  Python, see :mod:`._cloudevents`);
* CloudEvents in structured mode, one JSON object per line (``specversion``, ``id``, ``type``,
  ``time``, ``data`` / ``data_base64``, extensions);
* KServe's blob-storage sink: ``<id>-request.<ext>`` and ``<id>-response.<ext>`` objects in JSON
  (LogRequest objects, or an array of them), CSV or Parquet (``url, bytes, contentType,
  reqType, id, ...``; ``bytes`` is the body, base64 in CSV and JSON). A request object's sibling
  response object is read with it.

Pairs become one request row per instance (:mod:`._instances`): ``request_id`` is the pair's
key (``<key>:<i>`` for the i-th of several instances), ``ts`` the request's ``time``,
``latency_ms`` the response time minus the request time (to the nanosecond the times carry),
``endpoint`` the InferenceService name, ``model_name`` the V2 ``model_name`` (else Seldon's
``ce-modelid``, else the InferenceService), ``model_version`` the V2 ``model_version`` (else the
image tag of Seldon's ``meta.requestPath``), ``status`` ``error`` when the response body is an
``{"error": ...}`` object and ``ok`` otherwise; features from the request instances (V1
``instances``, V2 ``inputs`` tensors, Seldon ``data``), ``prediction`` and ``score`` from the
response. A request without a logged response keeps NULL status, prediction and latency; a
response without its request is timed by the response. The blob sink's CSV and Parquet records
carry no time at all: their ``ts`` is the object's modification time (``aws s3 cp/sync`` and
``gsutil`` keep it), and a note says so.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from toolkit.load.discover import SourceFile
from toolkit.load.formats import FormatOptions, head, register
from toolkit.load.formats._cloudevents import (
    EVENT_COLUMNS,
    events_table,
    is_event_display,
    is_http_echo,
    parse_event_display,
    parse_http_echo,
)
from toolkit.load.formats._common import (
    head_text,
    iso_ns,
    json_records,
    materialize,
    parquet_columns,
)
from toolkit.load.formats._instances import explode
from toolkit.load.formats._payload import request_instances, response_outputs, v2_tensors
from toolkit.load.sources import StagedSource, _name
from toolkit.store.schema import quote_ident, quote_literal

__all__ = ["KServeReader"]

#: Blob-sink columns by their normalised name (lower case, no underscores).
_BLOB_ROLES = {
    "id": "ce_id",
    "reqtype": "ce_type",
    "occurrencetime": "ce_time",
    "inferenceservice": "isvc",
    "namespace": "namespace",
    "component": "component",
    "endpoint": "endpoint",
    "contenttype": "content_type",
}
_SIBLING = re.compile(r"^(?P<stem>.+)-(?P<kind>request|response)(?P<ext>\.[A-Za-z0-9.]+)$")


def _norm(name: str) -> str:
    return name.lower().replace("_", "")


class KServeReader:
    """Reader of KServe / Seldon payload logs (CloudEvents)."""

    name = "kserve"
    tables = ("requests", "reference")

    def sniff(self, path: Path, head: bytes) -> str | None:
        """``requests`` when the file holds inference CloudEvents.

        Examples
        --------
        >>> KServeReader().sniff(Path("x.jsonl"), b'{"specversion": "1.0", "id": "a", '
        ...     b'"type": "org.kubeflow.serving.inference.request", "data": {}}')
        'requests'
        >>> KServeReader().sniff(Path("x.jsonl"), b'{"id": "a"}') is None
        True
        """
        if path.name.lower().endswith((".parquet", ".pq")):
            names = {_norm(c) for c in parquet_columns(path)}
            return "requests" if {"bytes", "reqtype", "id"} <= names else None
        text = head_text(head)
        if is_event_display(text) or is_http_echo(text):
            return "requests"
        first = text.lstrip().split("\n", 1)[0]
        if first.startswith(("{", "[")):
            if re.search(r'"(?:[Rr]eq[Tt]ype|type)"\s*:\s*"[\w.]*inference\.(?:request|response)',
                         text[:65536]):
                return "requests"
            return None
        header = {_norm(c.strip().strip('"')) for c in first.split(",")}
        if {"bytes", "reqtype", "id"} <= header:
            return "requests"
        return None

    def stage(
        self, con: duckdb.DuckDBPyConnection, source: SourceFile, options: FormatOptions
    ) -> StagedSource:
        """Parse the events, pair them, and stage one request row per instance."""
        cleanup: list[str] = []
        registered: list[str] = []
        notes: list[str] = []
        events = self._events(con, source, cleanup, registered, notes)
        other = con.execute(
            f"SELECT count(*) FROM {events} WHERE {_kind('ce_type')} = 'other' AND _perr IS NULL"
        ).fetchall()[0][0]
        if other:
            notes.append(f"{other} event(s) neither request nor response (e.g. outlier or "
                         "explanation events) not loaded")
        pairs = materialize(con, _pairs_sql(events), cleanup=cleanup)
        by_order, by_response = con.execute(
            "SELECT count_if(_perr IS NULL AND _by_order), count_if(_perr IS NULL AND "
            f"_timed_by_response) FROM {quote_ident(pairs)}"
        ).fetchall()[0]
        if by_order:
            notes.append(f"{by_order} request/response pair(s) without id (nor requestid) "
                         "paired by their order in the file; their id is #<line of the request>")
        if by_response:
            notes.append(f"{by_response} request(s) without a time attribute timed by their "
                         "response's time (latency unknown)")
        records = materialize(
            con, f"SELECT * EXCLUDE (_timed_by_response, _by_order) FROM {quote_ident(pairs)}",
            cleanup=cleanup)
        return explode(con, records, label=str(source.path), options=options, cleanup=cleanup,
                       registered=registered, notes=notes,
                       fields=("request.data", "response.data", "labels"))

    def _events(self, con: duckdb.DuckDBPyConnection, source: SourceFile, cleanup: list[str],
                registered: list[str], notes: list[str]) -> str:
        path = source.path
        lower = path.name.lower()
        if lower.endswith((".parquet", ".pq")):
            return self._blob_events(con, path, "parquet", cleanup, notes)
        text_head = head_text(head(path))
        if source.format in ("csv",) or (
            not text_head.lstrip().startswith(("{", "[")) and "," in text_head.split("\n", 1)[0]
            and not is_event_display(text_head) and not is_http_echo(text_head)
        ):
            return self._blob_events(con, path, "csv", cleanup, notes)
        if is_event_display(text_head) or is_http_echo(text_head):
            # undecodable bytes stay marked (surrogates) so that their event is rejected
            text = path.read_bytes().decode("utf-8", errors="surrogateescape")
            parsed = parse_event_display(text) if is_event_display(text_head) else \
                parse_http_echo(text)
            name = _name("events")
            con.register(name, events_table(parsed))
            registered.append(name)
            return quote_ident(name)
        return self._json_events(con, path, cleanup, notes)

    def _json_events(self, con: duckdb.DuckDBPyConnection, path: Path, cleanup: list[str],
                     notes: list[str]) -> str:
        mode, records = json_records(con, path, cleanup)
        objects = (
            f"(SELECT _row, _raw, _perr, CASE WHEN _perr IS NULL THEN CAST(_raw AS JSON) END AS j "
            f"FROM {records})"
        )
        if mode == "document":
            objects = (
                "(SELECT CASE WHEN n > 1 THEN i ELSE _row END AS _row, CAST(e AS VARCHAR) AS _raw, "
                "CASE WHEN json_type(e) <> 'OBJECT' THEN 'not a JSON object' END AS _perr, e AS j "
                "FROM (SELECT _row, unnest(elems) AS e, generate_subscripts(elems, 1) AS i, "
                "len(elems) AS n FROM (SELECT _row, CASE WHEN json_type(_raw) = 'ARRAY' THEN "
                "CAST(_raw AS JSON[]) ELSE [CAST(_raw AS JSON)] END AS elems FROM "
                f"{records})))"
            )
        mtime = _mtime(path)

        def field(*keys: str) -> str:
            return "coalesce(" + ", ".join(f"j->>'{k}'" for k in keys) + ")"

        blob_bytes = field("Bytes", "bytes")
        structured = "json_exists(j, '$.specversion')"
        b64 = "regexp_replace(j->>'data_base64', '\\s+', '', 'g')"
        body = (
            f"CASE WHEN {structured} THEN CASE WHEN j->>'data_base64' IS NOT NULL THEN "
            f"try(decode(try(from_base64({b64})))) WHEN json_type(j->'data') = "
            "'VARCHAR' THEN j->>'data' ELSE CAST(j->'data' AS VARCHAR) END "
            f"ELSE try(decode(try(from_base64({blob_bytes})))) END"
        )
        # structured CloudEvents keep a missing time missing (the pair is timed by its other
        # event, or rejected); only the blob sink, which never carries one, falls back to mtime
        time = f"CASE WHEN {structured} THEN j->>'time' ELSE {field('occurrenceTime', 'OccurrenceTime')} END"
        blob_untimed = con.execute(
            f"SELECT count_if(NOT {structured} AND {time} IS NULL) FROM {objects} "
            "WHERE _perr IS NULL"
        ).fetchall()[0][0]
        if blob_untimed:
            notes.append(_MTIME_NOTE)
        bad_bytes = f"(NOT {structured} AND {blob_bytes} IS NOT NULL AND ({body}) IS NULL)"
        bad_data = (
            f"CASE WHEN {structured} AND j->>'data_base64' IS NOT NULL AND "
            f"try(from_base64({b64})) IS NULL THEN 'data_base64 is not base64: the body does "
            f"not decode' WHEN {structured} AND j->>'data_base64' IS NOT NULL AND ({body}) IS "
            "NULL THEN 'data_base64 does not decode to UTF-8 text' END"
        )
        sql = (
            f"SELECT _row, _raw, coalesce(_perr, CASE WHEN {bad_bytes} THEN 'the BASE64 body "
            f"does not decode' END, {bad_data}) AS _perr, CASE WHEN _perr IS NOT NULL THEN NULL "
            f"WHEN {bad_bytes} THEN 'bytes' WHEN ({bad_data}) IS NOT NULL THEN 'data_base64' "
            f"END AS _pcol, CASE WHEN {structured} THEN j->>'id' ELSE {field('Id', 'id')} END AS ce_id, "
            f"CASE WHEN {structured} THEN j->>'type' ELSE {field('ReqType', 'reqType')} END "
            "AS ce_type, "
            f"CASE WHEN {structured} THEN {time} ELSE coalesce({time}, {quote_literal(mtime)}) "
            "END AS ce_time, j->>'requestid' AS ce_requestid, "
            f"coalesce(j->>'inferenceservicename', {field('InferenceService', 'inferenceService')}) "
            f"AS isvc, {field('namespace', 'Namespace')} AS namespace, "
            f"{field('component', 'Component')} AS component, "
            f"nullif({field('endpoint', 'Endpoint')}, '') AS endpoint, j->>'modelid' AS modelid, "
            f"coalesce(j->>'datacontenttype', {field('ContentType', 'contentType')}) "
            f"AS content_type, {body} AS body, {time} IS NOT NULL AS _timed FROM {objects}"
        )
        return quote_ident(materialize(con, sql, cleanup=cleanup))

    def _blob_events(self, con: duckdb.DuckDBPyConnection, path: Path, kind: str,
                     cleanup: list[str], notes: list[str]) -> str:
        files = [path]
        sibling = _SIBLING.match(path.name)
        if sibling:
            other = "response" if sibling["kind"] == "request" else "request"
            partner = path.with_name(f"{sibling['stem']}-{other}{sibling['ext']}")
            if partner.exists():
                if sibling["kind"] == "response":
                    notes.append(f"response loaded with its request object {partner.name}")
                    files = []
                else:
                    files.append(partner)
                    notes.append(f"paired with the response object {partner.name}")
        parts = [self._blob_part(con, f, kind, i) for i, f in enumerate(files)]
        if not parts:
            empty = ", ".join(
                f"NULL::{'BIGINT' if c == '_row' else 'BOOLEAN' if c == '_timed' else 'VARCHAR'}"
                f" AS {c}" for c in EVENT_COLUMNS
            )
            return quote_ident(materialize(con, f"SELECT {empty} LIMIT 0", cleanup=cleanup))
        sql = " UNION ALL ".join(p for p, _ in parts)
        params = {k: v for _, p in parts for k, v in p.items()}
        table = materialize(con, sql, params, cleanup=cleanup)
        if con.execute(f"SELECT count_if(NOT _timed) FROM {quote_ident(table)}").fetchall()[0][0]:
            notes.append(_MTIME_NOTE)
        return quote_ident(table)

    def _blob_part(self, con: duckdb.DuckDBPyConnection, path: Path, kind: str,
                   index: int) -> tuple[str, dict]:
        param = f"p{index}"
        if kind == "parquet":
            reader = f"read_parquet(${param}, file_row_number = true)"
            row = "file_row_number + 1"
        else:
            reader = (
                f"read_csv(${param}, header = true, all_varchar = true, auto_detect = true, "
                "max_line_size = 268435456)"
            )
            row = "ordinality + 1"
        described = con.execute(f"DESCRIBE SELECT * FROM {reader}",
                                {param: str(path)}).fetchall()
        types = {name: dtype for name, dtype, *_ in described}
        by_role = {_BLOB_ROLES[_norm(n)]: n for n in types if _norm(n) in _BLOB_ROLES}
        body_col = next((n for n in types if _norm(n) == "bytes"), None)
        columns = {}
        for role in ("ce_id", "ce_type", "isvc", "namespace", "component", "endpoint",
                     "content_type", "ce_time"):
            column = by_role.get(role)
            columns[role] = f"CAST({quote_ident(column)} AS VARCHAR)" if column else "NULL"
        columns["endpoint"] = f"nullif({columns['endpoint']}, '')"
        if body_col is None:
            body, bad = "NULL", "NULL"
        elif types[body_col] == "BLOB":
            body = f"try(decode({quote_ident(body_col)}))"
            bad = "NULL"
        else:
            body = f"try(decode(try(from_base64({quote_ident(body_col)}))))"
            bad = (f"CASE WHEN nullif({quote_ident(body_col)}, '') IS NOT NULL AND {body} IS NULL "
                   "THEN 'the BASE64 body does not decode' END")
        mtime = quote_literal(_mtime(path))
        raw_pairs = ", ".join(f"{quote_literal(n)}, CAST({quote_ident(n)} AS VARCHAR)"
                              for n in types if n != "file_row_number")
        sql = (
            f"SELECT {row}::BIGINT AS _row, CAST(json_object({raw_pairs}) AS VARCHAR) AS _raw, "
            f"{bad} AS _perr, CASE WHEN {bad} IS NOT NULL THEN 'bytes' END AS _pcol, "
            f"{columns['ce_id']} AS ce_id, {columns['ce_type']} AS ce_type, "
            f"coalesce({columns['ce_time']}, {mtime}) AS ce_time, NULL::VARCHAR AS ce_requestid, "
            f"{columns['isvc']} AS isvc, {columns['namespace']} AS namespace, "
            f"{columns['component']} AS component, {columns['endpoint']} AS endpoint, "
            f"NULL::VARCHAR AS modelid, {columns['content_type']} AS content_type, "
            f"{body} AS body, {columns['ce_time']} IS NOT NULL AS _timed "
            f"FROM {reader}{' WITH ORDINALITY' if kind == 'csv' else ''}"
        )
        return sql, {param: str(path)}


_MTIME_NOTE = (
    "blob-sink records carry no time: ts is the file's modification time (keep it when "
    "copying from the bucket) and latency is unknown"
)


def _mtime(path: Path) -> str:
    return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC).isoformat()


def _kind(ce_type: str) -> str:
    return (
        f"CASE WHEN {ce_type} ILIKE '%response' THEN 'response' "
        f"WHEN {ce_type} ILIKE '%request' THEN 'request' ELSE 'other' END"
    )


_UNPAIRED = (
    "a {kind} event without id (nor requestid) that cannot be paired by order: it is not "
    "right next to a {other} of the same InferenceService in the file"
)


def _pairs_sql(events: str) -> str:
    """One row per request/response pair (either side may be missing), with its payloads.

    Events pair on ``requestid`` (Seldon), else ``id`` (not for Seldon events, whose ``id`` is
    unique per message). Events without either pair by order,
    and only where that is unambiguous: a request immediately followed by a response of the
    same InferenceService (among the id-less events), neither of them next to another event
    of its own kind, the response not earlier than the request. Their id is
    ``#<line of the request>``. An id-less event that cannot be paired so is rejected when the
    file logs the other kind at all (a half row would pass for an unanswered request).
    A pair whose request has no time is timed by its response; one with no time at all is
    rejected.
    """
    keyed = (
        "(SELECT *, CASE WHEN _perr IS NOT NULL AND ce_type IS NULL THEN 'request' ELSE "
        f"{_kind('ce_type')} END AS _kind, coalesce(nullif(ce_requestid, ''), "
        # Seldon's ce-id is unique per message: only its requestid joins the two events
        "CASE WHEN NOT coalesce(ce_type ILIKE 'io.seldon.%', false) THEN nullif(ce_id, '') "
        "END) AS _given, TRY_CAST(body AS JSON) AS _json "
        f"FROM {events})"
    )
    # the neighbours of each readable id-less event among the id-less events of its service
    window = ("(PARTITION BY CASE WHEN _perr IS NULL AND _given IS NULL THEN "
              "coalesce(isvc, '') END ORDER BY _row)")
    sequenced = (
        "(SELECT *, lag(_kind) OVER w AS _p1, lag(_kind, 2) OVER w AS _p2, "
        "lead(_kind) OVER w AS _n1, lead(_kind, 2) OVER w AS _n2, lag(_row) OVER w AS _prow, "
        "lag(ce_time) OVER w AS _ptime, lead(ce_time) OVER w AS _ntime, "
        "count_if(_perr IS NULL AND _kind = 'request') OVER () AS _requests, "
        "count_if(_perr IS NULL AND _kind = 'response') OVER () AS _responses "
        f"FROM {keyed} WHERE _kind <> 'other' WINDOW w AS {window})"
    )
    in_order = (
        "(SELECT *, _perr IS NULL AND _given IS NULL AND CASE "
        "WHEN _kind = 'request' THEN _n1 = 'response' AND coalesce(_p1, 'response') = "
        "'response' AND coalesce(_n2, 'request') = 'request' AND NOT coalesce("
        "TRY_CAST(_ntime AS TIMESTAMPTZ) < TRY_CAST(ce_time AS TIMESTAMPTZ), false) "
        "ELSE _p1 = 'request' AND coalesce(_p2, 'response') = 'response' AND "
        "coalesce(_n1, 'request') = 'request' AND NOT coalesce(TRY_CAST(ce_time AS TIMESTAMPTZ) "
        "< TRY_CAST(_ptime AS TIMESTAMPTZ), false) END AS _by_order "
        f"FROM {sequenced})"
    )
    unpaired = (
        "_perr IS NULL AND _given IS NULL AND NOT coalesce(_by_order, false) AND CASE WHEN "
        "_kind = 'request' THEN _responses > 0 ELSE _requests > 0 END"
    )
    message = (
        f"CASE WHEN _kind = 'request' THEN "
        f"{quote_literal(_UNPAIRED.format(kind='request', other='response'))} ELSE "
        f"{quote_literal(_UNPAIRED.format(kind='response', other='request'))} END"
    )
    numbered = (
        "(SELECT * REPLACE (coalesce(_perr, CASE WHEN " + unpaired + " THEN " + message +
        " END) AS _perr, CASE WHEN _perr IS NULL AND " + unpaired + " THEN 'id' ELSE _pcol END "
        "AS _pcol), row_number() OVER (PARTITION BY _kind, _key ORDER BY _row) AS _nth FROM "
        "(SELECT *, coalesce(_given, CASE WHEN _by_order AND _kind = 'response' THEN "
        f"'#' || _prow END, '#' || _row) AS _key FROM {in_order}))"
    )
    request_path = "json_extract_string(r._json, '$.meta.requestPath.*')[1]"
    pairs = (
        "SELECT coalesce(q._row, r._row) AS _row, concat_ws(chr(10), q._raw, r._raw) AS _raw, "
        "coalesce(q._perr, r._perr, CASE WHEN q.ce_time IS NULL AND r.ce_time IS NULL THEN "
        "'no time: neither the request nor the response event has a time attribute' END, "
        "CASE WHEN q.body IS NOT NULL AND q._json IS NULL THEN 'the request body is not JSON' END, "
        "CASE WHEN r.body IS NOT NULL AND r._json IS NULL THEN 'the response body is not JSON' "
        "END) AS _perr, CASE WHEN q._perr IS NOT NULL THEN q._pcol WHEN r._perr IS NOT NULL "
        "THEN r._pcol WHEN q.ce_time IS NULL AND r.ce_time IS NULL THEN 'time' "
        "WHEN q.body IS NOT NULL AND q._json IS NULL THEN 'request.data' "
        "WHEN r.body IS NOT NULL AND r._json IS NULL THEN 'response.data' END AS _pcol, "
        "coalesce(q._key, r._key) AS _id, q._json AS _qj, r._json AS _rj, "
        "coalesce(q.ce_time, r.ce_time) AS ts, q._row IS NOT NULL AND q.ce_time IS NULL AND "
        "r.ce_time IS NOT NULL AS _timed_by_response, coalesce(q._by_order AND r._by_order, "
        "false) AS _by_order, "
        f"CASE WHEN q._timed AND r._timed THEN CAST(({iso_ns('r.ce_time')} - "
        f"{iso_ns('q.ce_time')}) AS DOUBLE) / 1e6 END AS latency_ms, "
        "coalesce(q.isvc, r.isvc) AS endpoint, "
        "coalesce(r._json->>'model_name', q.modelid, r.modelid, q.isvc, r.isvc) AS model_name, "
        f"coalesce(r._json->>'model_version', nullif(regexp_extract({request_path}, "
        "':([^:/@]+)$', 1), '')) AS model_version, "
        "CASE WHEN r._row IS NULL THEN NULL WHEN json_type(r._json) = 'OBJECT' AND "
        "json_exists(r._json, '$.error') THEN 'error' ELSE 'ok' END AS status "
        f"FROM (SELECT * FROM {numbered} WHERE _kind = 'request') q FULL OUTER JOIN "
        f"(SELECT * FROM {numbered} WHERE _kind = 'response') r "
        "ON q._key = r._key AND q._nth = r._nth"
    )
    xs = request_instances("_qj", "_qt")
    ys = response_outputs("_rj", "_rt", "len(_xs)")
    tensors = (f"(SELECT *, {v2_tensors('_qj', 'inputs')} AS _qt, "
               f"{v2_tensors('_rj', 'outputs')} AS _rt FROM ({pairs}))")
    return (
        "SELECT * EXCLUDE (_qj, _rj, _qt, _rt), CASE WHEN status = 'error' THEN NULL "
        f"ELSE {ys} END AS _ys, NULL::VARCHAR[] AS _gts FROM "
        f"(SELECT *, CASE WHEN _perr IS NULL THEN {xs} END AS _xs FROM {tensors})"
    )


register(KServeReader())
