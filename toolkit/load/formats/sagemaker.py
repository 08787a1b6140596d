"""SageMaker Model Monitor data capture (JSON lines), ground-truth uploads and merged records.

One capture line is one ``InvokeEndpoint`` call (or one batch-transform record)::

    {"captureData": {"endpointInput": {"observedContentType": "text/csv", "mode": "INPUT",
                                       "data": "132,10,182.9", "encoding": "CSV"},
                     "endpointOutput": {"observedContentType": "text/csv; charset=utf-8",
                                        "mode": "OUTPUT", "data": "0.0364", "encoding": "CSV"}},
     "eventMetadata": {"eventId": "f04a8538-...", "inferenceId": "58",
                       "inferenceTime": "2022-04-18T00:21:48Z"},
     "eventVersion": "0"}

What is read, in SQL (DuckDB reads the file one line per text value):

* ``data`` is decoded per ``encoding`` (``BASE64`` with ``from_base64``; a payload that does
  not decode, or whose bytes are not UTF-8 text, rejects its line with the reason), then split per ``observedContentType``: CSV (one record per
  line, fields by position), JSON (``{"instances": [...]}``, V2 tensors, a list of rows, or one
  object such as ``{"features": [...]}``) and JSON lines (one record per line). A request of N
  records gives N rows; their ids are ``<id>:0`` .. ``<id>:N-1`` (``<id>`` alone for one record).
* ``request_id`` is ``inferenceId`` when the caller set one, else ``eventId``, kept as text;
  ``ts`` is ``inferenceTime``, else the hour of the ``YYYY/MM/DD/HH`` folder the file sits in;
  for batch-transform records, else the batch run's time (:mod:`._batch`: the job's
  description beside the file, a ``<job>-YYYY-MM-DD-HH-MM-SS`` folder, or ``run_time=...`` /
  ``forensics ingest --run-time``). A record with no time at all is rejected.
* Features: CSV and JSON arrays are positional, named from ``features=[...]`` (``forensics
  ingest --features a,b,c``) or ``f0``, ``f1``, ...; a record with another number of values is
  rejected. JSON objects give one column per key.
* ``prediction`` and ``score`` come from the output (rules in :mod:`._payload`: a bare CSV
  probability ``p`` predicts "1" when ``p >= 0.5`` and scores ``max(p, 1 - p)``, the
  confidence in that prediction).
* ``groundTruthData`` (ground-truth uploads, and the monitor's merged records) gives labels: a
  ground-truth file loads into ``labels`` (``eventMetadata.eventId`` holds the capture's
  inferenceId or eventId; ``labeled_at`` is the hour folder of the upload); a merged record
  loads its capture into ``requests`` with the label inline.
* Batch transform capture (``captureData.batchTransformOutput``): JSON records carry the output
  under ``SageMakerOutput`` next to the inputs; CSV records are the input fields followed by the
  output (the last field, or the fields after the ``features`` names).
* ``endpoint`` and ``model_name`` are the endpoint and variant folders of the capture layout
  ``<endpoint>/<variant>/YYYY/MM/DD/HH/<file>.jsonl``, when the path has it. Batch-transform
  records of one file are one batch run: their ``endpoint`` is ``batch-transform:<job name>``
  (``batch-transform:<run time>`` when the job's name is unknown), and a note gives the run's
  time and where it comes from.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from toolkit.errors import LoadError
from toolkit.load.discover import SourceFile
from toolkit.load.formats import FormatOptions, register
from toolkit.load.formats._batch import BatchRun, batch_run
from toolkit.load.formats._common import (
    head_text,
    lines,
    materialize,
    path_hour,
    record_error,
)
from toolkit.load.formats._instances import explode
from toolkit.load.formats._payload import (
    csv_fields,
    csv_outputs,
    csv_value_json,
    label_of,
    request_instances,
    response_outputs,
    text_lines,
    v2_tensors,
)
from toolkit.load.sources import StagedSource
from toolkit.store.schema import quote_ident, quote_literal

__all__ = ["SageMakerReader"]

_FIELDS = {
    "event_id": "$.eventMetadata.eventId",
    "inference_id": "$.eventMetadata.inferenceId",
    "inference_time": "$.eventMetadata.inferenceTime",
    "in_data": "$.captureData.endpointInput.data",
    "in_enc": "$.captureData.endpointInput.encoding",
    "in_ct": "$.captureData.endpointInput.observedContentType",
    "out_data": "$.captureData.endpointOutput.data",
    "out_enc": "$.captureData.endpointOutput.encoding",
    "out_ct": "$.captureData.endpointOutput.observedContentType",
    "bt_data": "$.captureData.batchTransformOutput.data",
    "bt_enc": "$.captureData.batchTransformOutput.encoding",
    "bt_ct": "$.captureData.batchTransformOutput.observedContentType",
    "gt_data": "$.groundTruthData.data",
    "gt_enc": "$.groundTruthData.encoding",
    "gt_ct": "$.groundTruthData.observedContentType",
}
_PAYLOADS = {
    "in": "captureData.endpointInput.data",
    "out": "captureData.endpointOutput.data",
    "bt": "captureData.batchTransformOutput.data",
    "gt": "groundTruthData.data",
}
_LAYOUT = re.compile(r"/([^/]+)/([^/]+)/\d{4}/\d{2}/\d{2}/\d{2}/[^/]+$")
#: ``endpoint`` of the rows of one batch run: ``batch-transform:<job name or run time>``.
_BATCH_PREFIX = "batch-transform:"


class SageMakerReader:
    """Reader of SageMaker Model Monitor capture, ground-truth and merged JSON lines."""

    name = "sagemaker"
    tables = ("requests", "reference", "labels")

    def sniff(self, path: Path, head: bytes) -> str | None:
        """``requests`` for capture (and merged) lines, ``labels`` for ground-truth uploads.

        Examples
        --------
        >>> SageMakerReader().sniff(Path("x.jsonl"), b'{"captureData": {}, "eventMetadata": {}}')
        'requests'
        >>> SageMakerReader().sniff(Path("x.jsonl"), b'{"groundTruthData": {"data": "1"}, '
        ...                         b'"eventMetadata": {"eventId": "58"}}')
        'labels'
        """
        first = head_text(head).lstrip().split("\n", 1)[0]
        if not first.startswith("{") or '"eventMetadata"' not in first and \
                '"captureData"' not in first:
            return None
        if '"captureData"' in first:
            return "requests"
        if '"groundTruthData"' in first:
            return "labels"
        return None

    def stage(
        self, con: duckdb.DuckDBPyConnection, source: SourceFile, options: FormatOptions
    ) -> StagedSource:
        """Stage the file for ``requests`` (or ``reference``) or ``labels``."""
        table = source.table or "requests"
        if table not in ("requests", "reference", "labels"):
            raise LoadError(
                f"{source.path}: SageMaker capture loads into requests (or reference) and "
                f"labels, not {table}.",
                path=str(source.path),
            )
        cleanup: list[str] = []
        decoded = materialize(con, _decoded_sql(lines(con, source.path, cleanup)),
                              cleanup=cleanup)
        hour = path_hour(source.path)
        if table == "labels":
            records = materialize(con, _labels_sql(decoded, hour), cleanup=cleanup)
            return explode(con, records, label=str(source.path), options=options,
                           cleanup=cleanup, table="labels",
                           fields=(_PAYLOADS["gt"], _PAYLOADS["gt"], _PAYLOADS["gt"]))
        layout = _LAYOUT.search(source.path.as_posix())
        batch_records = con.execute(
            f"SELECT count(*) FROM {quote_ident(decoded)} WHERE _perr IS NULL AND "
            "(bt_text IS NOT NULL OR bt_error IS NOT NULL) AND inference_time IS NULL"
        ).fetchall()[0][0]
        run = batch_run(source.path, options.run_time) if batch_records else None
        records = materialize(con, _requests_sql(decoded, hour, layout, options, run),
                              cleanup=cleanup)
        batch_only = con.execute(
            f"SELECT count(bt_text) > 0 AND count(in_text) + count(out_text) = 0 "
            f"FROM {quote_ident(decoded)}"
        ).fetchall()[0][0]
        fields = (_PAYLOADS["bt"], _PAYLOADS["bt"], _PAYLOADS["gt"]) if batch_only else \
            (_PAYLOADS["in"], _PAYLOADS["out"], _PAYLOADS["gt"])
        untimed = con.execute(
            f"SELECT count(*) FROM {quote_ident(records)} WHERE _perr IS NULL AND ts IS NULL"
        ).fetchall()[0][0]
        notes = []
        if run is not None:
            notes.append(
                f"batch run {_BATCH_PREFIX}{run.name}: {batch_records} batch-transform "
                f"record(s) without inferenceTime timed {run.time} (from {run.source})"
            )
        if untimed:
            notes.append(
                f"{untimed} record(s) without eventMetadata.inferenceTime (e.g. batch "
                "transform) in a path without a YYYY/MM/DD/HH folder: their time is unknown, "
                "so they are rejected; give the batch job's run time (run_time=... / "
                "forensics ingest --run-time), or keep its describe-transform-job JSON or its "
                "<job>-YYYY-MM-DD-HH-MM-SS folder beside the file"
            )
        return explode(con, records, label=str(source.path), options=options, cleanup=cleanup,
                       notes=notes, fields=fields)


def _decoded_sql(text: str) -> str:
    """Lines, their fields, and each payload decoded and split into records' raw material.

    ``text`` is the relation of the file's lines (:func:`._common.lines`).
    """
    paths = ", ".join(f"'{p}'" for p in _FIELDS.values())
    fields = ", ".join(f"_v[{i + 1}] AS {name}" for i, name in enumerate(_FIELDS))
    objects = ("$.eventMetadata", "$.captureData", "$.captureData.endpointInput",
               "$.captureData.endpointOutput", "$.captureData.batchTransformOutput",
               "$.groundTruthData")
    base = (
        f"(SELECT _row, _raw, _perr, {fields} FROM (SELECT *, CASE WHEN _perr IS NULL THEN "
        f"json_extract_string(_raw, [{paths}]) END AS _v FROM "
        f"(SELECT _row, _raw, {record_error(objects=objects)} AS _perr FROM {text})))"
    )
    level1 = ", ".join(
        f"CASE WHEN upper({p}_enc) = 'BASE64' THEN "
        f"try(from_base64(regexp_replace({p}_data, '\\s+', '', 'g'))) END AS {p}_bin"
        for p in _PAYLOADS
    )
    level2 = ", ".join(
        f"CASE WHEN upper({p}_enc) = 'BASE64' THEN try(decode({p}_bin)) ELSE {p}_data END "
        f"AS {p}_text, CASE WHEN upper({p}_enc) = 'BASE64' AND {p}_data IS NOT NULL AND "
        f"{p}_bin IS NULL THEN 'the BASE64 payload does not decode' "
        f"WHEN upper({p}_enc) = 'BASE64' AND {p}_bin IS NOT NULL AND try(decode({p}_bin)) IS "
        f"NULL THEN 'the BASE64 payload is not UTF-8 text (binary payloads such as "
        f"application/x-npy are not read)' END AS {p}_err"
        for p in _PAYLOADS
    )
    level3 = ", ".join(
        f"CASE WHEN {p}_text IS NULL THEN NULL WHEN {p}_ct ILIKE '%csv%' THEN 'csv' "
        f"WHEN {p}_ct ILIKE '%jsonl%' OR {p}_ct ILIKE '%jsonlines%' OR {p}_ct ILIKE '%ndjson%' "
        f"THEN 'jsonl' WHEN {p}_ct ILIKE '%json%' OR upper({p}_enc) = 'JSON' OR "
        f"json_valid({p}_text) THEN CASE WHEN json_valid({p}_text) THEN 'json' ELSE 'jsonl' END "
        f"ELSE 'csv' END AS {p}_kind, {text_lines(p + '_text')} AS {p}_lines"
        for p in _PAYLOADS
    )
    level4 = ", ".join(
        f"coalesce({p}_err, CASE WHEN {p}_kind = 'jsonl' AND NOT list_bool_and("
        f"list_transform({p}_lines, lambda l: json_valid(l))) THEN 'a line of the "
        f"JSON-lines payload is not valid JSON' END) AS {p}_error, CASE WHEN {p}_kind = 'json' "
        f"THEN CAST({p}_text AS JSON) END AS {p}_json"
        for p in _PAYLOADS
    )
    sql = base
    for level in (level1, level2, level3, level4):
        sql = f"(SELECT *, {level} FROM {sql})"
    drop = ", ".join(f"{p}_{s}" for p in _PAYLOADS for s in ("bin", "err", "data"))
    return f"SELECT * EXCLUDE ({drop}) FROM {sql}"


def _ground_truth(prefix: str = "gt") -> str:
    lines, data = f"{prefix}_lines", f"{prefix}_json"
    return (
        f"CASE WHEN {prefix}_error IS NOT NULL THEN NULL "
        f"WHEN {prefix}_kind = 'csv' THEN list_transform({lines}, lambda l: trim(l)) "
        f"WHEN {prefix}_kind = 'jsonl' THEN list_transform({lines}, "
        f"lambda l: {label_of('CAST(l AS JSON)')}) "
        f"WHEN {prefix}_kind = 'json' AND json_type({data}->'instances') = 'ARRAY' THEN "
        f"list_transform(CAST({data}->'instances' AS JSON[]), lambda e: {label_of('e')}) "
        f"WHEN {prefix}_kind = 'json' AND json_type({data}) = 'ARRAY' THEN "
        f"list_transform(CAST({data} AS JSON[]), lambda e: {label_of('e')}) "
        f"WHEN {prefix}_kind = 'json' THEN [{label_of(data)}] END"
    )


def _labels_sql(decoded: str, hour: str | None) -> str:
    labeled_at = quote_literal(hour) if hour else "NULL"
    return (
        "SELECT _row, _raw, coalesce(_perr, CASE WHEN gt_text IS NULL AND gt_error IS NULL "
        "THEN 'not a ground-truth record (no groundTruthData.data)' END, gt_error) AS _perr, "
        f"CASE WHEN _perr IS NULL AND gt_error IS NOT NULL THEN {quote_literal(_PAYLOADS['gt'])} "
        "END AS _pcol, "
        "coalesce(inference_id, event_id) AS _id, NULL::JSON[] AS _xs, NULL::JSON[] AS _ys, "
        f"{_ground_truth()} AS _gts, "
        "CASE WHEN in_text IS NULL AND out_text IS NULL AND bt_text IS NULL "
        f"THEN {labeled_at} END AS labeled_at FROM \"{decoded}\""
    )


def _requests_sql(
    decoded: str, hour: str | None, layout: re.Match | None, options: FormatOptions,
    run: BatchRun | None,
) -> str:
    n_features = len(options.features)
    # batch-transform CSV: the input fields, then the output field(s)
    bt_x = f"[1:{n_features}]" if n_features else "[1:-2]"
    bt_y = f"[{n_features + 1}:]" if n_features else "[-1:]"
    bt_fields = csv_fields("l")
    bt_output = (
        f"CASE WHEN len({bt_fields}{bt_y}) = 1 THEN {csv_value_json(bt_fields + bt_y + '[1]')} "
        f"ELSE to_json(list_transform({bt_fields}{bt_y}, lambda f: {csv_value_json('f')})) END"
    )
    bt_output_json = "_bt_y"
    without_output = "_bt_x"
    inputs = (
        "CASE WHEN in_kind = 'csv' THEN list_transform(in_lines, "
        f"lambda l: to_json({csv_fields('l')})) "
        "WHEN in_kind = 'jsonl' AND in_error IS NULL THEN list_transform(in_lines, "
        "lambda l: CAST(l AS JSON)) "
        f"WHEN in_kind = 'json' THEN {request_instances('in_json', '_in_t')} "
        f"WHEN bt_kind = 'csv' THEN list_transform(bt_lines, lambda l: to_json({bt_fields}{bt_x})) "
        "WHEN bt_kind = 'jsonl' AND bt_error IS NULL THEN list_transform(bt_lines, lambda l: "
        "json_merge_patch(CAST(l AS JSON), '{\"SageMakerOutput\": null}')) "
        f"WHEN bt_kind = 'json' THEN {request_instances(without_output, None)} END"
    )
    outputs = (
        f"CASE WHEN out_kind = 'csv' THEN {csv_outputs('out_text', 'len(_xs)')} "
        "WHEN out_kind = 'jsonl' AND out_error IS NULL THEN list_transform(out_lines, "
        "lambda l: CAST(l AS JSON)) "
        "WHEN out_kind = 'json' THEN "
        f"{response_outputs('out_json', '_out_t', 'len(_xs)')} "
        f"WHEN bt_kind = 'csv' THEN list_transform(bt_lines, lambda l: {bt_output}) "
        "WHEN bt_kind = 'jsonl' AND bt_error IS NULL THEN list_transform(bt_lines, "
        "lambda l: CAST(l AS JSON)->'SageMakerOutput') "
        "WHEN bt_kind = 'json' THEN "
        f"{response_outputs(bt_output_json, None, 'len(_xs)')} END"
    )
    ts = f"coalesce(inference_time, {quote_literal(hour)})" if hour else "inference_time"
    batch = "(bt_text IS NOT NULL OR bt_error IS NOT NULL)"
    path_columns = ""
    if run is not None:
        # batch records: the run's time, and the run as their endpoint (one run, one label)
        ts = (f"CASE WHEN {batch} THEN coalesce(inference_time, {quote_literal(run.time)}) "
              f"ELSE {ts} END")
        path_columns = (f", CASE WHEN {batch} THEN {quote_literal(_BATCH_PREFIX + run.name)} "
                        "END AS endpoint")
    if layout is not None:
        endpoint, variant = layout.groups()
        batch_endpoint = quote_literal(_BATCH_PREFIX + run.name) if run is not None else "NULL"
        path_columns = (
            f", CASE WHEN {batch} THEN {batch_endpoint} ELSE {quote_literal(endpoint)} END "
            f"AS endpoint, CASE WHEN bt_text IS NULL THEN {quote_literal(variant)} END "
            "AS model_name"
        )
    errors = (
        "coalesce(_perr, CASE WHEN in_text IS NULL AND out_text IS NULL AND bt_text IS NULL "
        "AND in_error IS NULL AND out_error IS NULL AND bt_error IS NULL THEN CASE WHEN "
        "gt_text IS NOT NULL THEN 'a ground-truth record without captureData: load its file "
        "into labels' ELSE 'not a SageMaker capture record (no captureData)' END END, "
        "in_error, out_error, bt_error, gt_error)"
    )
    error_column = (
        "CASE WHEN _perr IS NOT NULL THEN NULL "
        + " ".join(f"WHEN {p}_error IS NOT NULL THEN {quote_literal(field)}"
                   for p, field in _PAYLOADS.items())
        + " END"
    )
    # V2 tensors first, so that the instance and output expressions name them once
    tensors = (
        f"(SELECT *, {v2_tensors('in_json', 'inputs')} AS _in_t, "
        f"{v2_tensors('out_json', 'outputs')} AS _out_t, "
        "json_merge_patch(bt_json, '{\"SageMakerOutput\": null}') AS _bt_x, "
        f"bt_json->'SageMakerOutput' AS _bt_y FROM \"{decoded}\")"
    )
    with_inputs = f"(SELECT *, {inputs} AS _xs FROM {tensors})"
    return (
        f"SELECT _row, _raw, {errors} AS _perr, {error_column} AS _pcol, "
        "coalesce(inference_id, event_id) AS _id, "
        f"_xs, {outputs} AS _ys, {_ground_truth()} AS _gts, {ts} AS ts{path_columns} "
        f"FROM {with_inputs}"
    )


register(SageMakerReader())
