"""Vertex AI request-response logging: requests as the BigQuery table exported to NDJSON.

``vertex/request_response_logging-NNNNNNNNNNNN.json`` is ``bq extract
--destination_format NEWLINE_DELIMITED_JSON`` of the endpoint's logging table (one file per
request chunk, numbered as ``bq`` numbers a wildcard export; ``log_formats.md`` section 3.1)::

    {"endpoint": "projects/<number>/locations/us-central1/endpoints/<id>",
     "deployed_model_id": "4512345678901234567", "logging_time": "2026-02-02 00:00:01.123456 UTC",
     "request_id": "1234567890000000042",
     "request_payload": ["{\\"amount_usd\\": 12.5, \\"country\\": \\"US\\", ...}"],
     "response_payload": ["{\\"classes\\": [\\"0\\", \\"1\\"], \\"scores\\": [0.07, 0.93]}"]}

* ``request_id`` is a NUMERIC: :func:`request_ids` maps the case's ids to 19-digit numbers
  (a per-case prefix and the request's sequence number), written as text as ``bq`` exports a
  NUMERIC; the generic ``labels/`` are keyed by the same numbers, so they join.
* ``deployed_model_id`` is the deployment of the model version that answered: a 19-digit id
  per version (:func:`deployed_model_id`), which the loader keeps as ``model_version``.
* ``endpoint`` is an endpoint resource per generic endpoint (route), :func:`endpoint_resource`.
* ``logging_time`` is the request's time (microseconds, exact).
* One element per instance: the features as a JSON object (missing values ``null``), and the
  prediction as AutoML's ``{"classes", "scores"}``, so ``prediction`` and ``score`` load
  exactly.
* A request the model did not answer (``status = 'error'``) has no response to log and is not
  in the table.

Not in the table: ``latency_ms``, ``host``, ``model_name``, ``pipeline_version``,
``client_version``, ``status``, ``http_status``, ``error_type``, ``in_flight``, ``cache_*``.
Labels (re-keyed) and the other tables stay generic.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from toolkit.simulate.case import Case
from toolkit.simulate.platforms._common import (
    Progress,
    connect,
    features_json,
    seconds_text,
    write_lines,
)
from toolkit.simulate.writer import write_tables
from toolkit.store.schema import quote_literal

__all__ = ["write", "request_ids", "deployed_model_id", "endpoint_resource", "PROJECT",
           "REGION"]

#: The Google Cloud project number and region of the endpoints.
PROJECT = "614298307112"
REGION = "us-central1"


def _number(key: str) -> str:
    """A 19-digit decimal id derived from ``key`` (:func:`_number_sql` computes the same)."""
    return str(10**18 + int(hashlib.md5(key.encode()).hexdigest()[:15], 16))


def _number_sql(key: str) -> str:
    """SQL: :func:`_number` of the text expression ``key``."""
    return (f"CAST(1000000000000000000 + CAST('0x' || substr(md5({key}), 1, 15) AS UBIGINT) "
            "AS VARCHAR)")


def request_ids(case: Case, ids: pa.Array | Iterable[str]) -> pa.Array:
    """Vertex AI ``request_id`` (NUMERIC, as text) of the case's request ids.

    A 9-digit prefix per case and the 10-digit sequence number the generic id ends with.

    Examples
    --------
    >>> from toolkit.simulate import make_case
    >>> case = make_case("none", seed=1, rows=1_000)
    >>> ids = request_ids(case, [case.plan.id_prefix + "0000000042"]).to_pylist()
    >>> len(ids[0]), ids[0].endswith("0000000042")
    (19, True)
    """
    ids = pa.array(ids, pa.string()) if not isinstance(ids, pa.Array) else ids
    prefix = _number(f"{case.seed}/{case.plan.id_prefix}")[:9]
    return pc.binary_join_element_wise(prefix, pc.utf8_slice_codeunits(ids, -10), "")


def deployed_model_id(case: Case, version: str) -> str:
    """The ``deployed_model_id`` of a model version (one deployment per version)."""
    return _number(f"{case.seed}/deployed-model/{version}")


def endpoint_resource(case: Case, endpoint: str) -> str:
    """The endpoint resource name serving a generic endpoint (route)."""
    return f"projects/{PROJECT}/locations/{REGION}/endpoints/" \
           f"{_number(f'{case.seed}/endpoint/{endpoint}')}"


def write(case: Case, out: Path, progress: Progress | None = None) -> None:
    """Write the requests of ``case`` as Vertex AI logging exports, the rest as generic files."""
    con = connect()
    folder = out / "vertex"
    labels_dir = out / "labels" if case.plan.platform.labels else None
    if labels_dir is not None:
        labels_dir.mkdir()
    done = 0
    for c, (requests, labels) in enumerate(case.arrow_chunks()):
        requests = requests.set_column(requests.schema.get_field_index("request_id"),
                                       "request_id", request_ids(case, requests["request_id"]
                                                                 .combine_chunks()))
        con.register("chunk", requests)
        lines = con.sql(_lines_sql(case, requests.schema)).to_arrow_table().column("line")
        con.unregister("chunk")
        write_lines(folder / f"request_response_logging-{c:012d}.json", lines)
        if labels_dir is not None and labels is not None:
            labels = labels.set_column(0, "request_id",
                                       request_ids(case, labels["request_id"].combine_chunks()))
            pq.write_table(labels, labels_dir / f"part-{c:05d}.parquet")
        done += requests.num_rows
        if progress is not None:
            progress(done, case.rows)
    con.close()
    write_tables(case, out, requests=False, events=case.events())


def _lines_sql(case: Case, schema: pa.Schema) -> str:
    endpoint = (f"'projects/{PROJECT}/locations/{REGION}/endpoints/' || "
                f"{_number_sql(quote_literal(f'{case.seed}/endpoint/') + ' || endpoint')}")
    deployed = _number_sql(quote_literal(f"{case.seed}/deployed-model/") + " || model_version")
    us = "epoch_us(ts)"
    fraction = f"({us} % 1000000)"
    logging_time = (
        f"{seconds_text(us, '%Y-%m-%d %H:%M:%S')} || CASE WHEN {fraction} = 0 THEN '' ELSE "
        f"'.' || rtrim(lpad(CAST({fraction} AS VARCHAR), 6, '0'), '0') END || ' UTC'"
    )
    # AutoML's classes / scores; a tie at 0.5 keeps the predicted class first in arg-max order
    other = ("CASE WHEN score = 0.5 AND prediction = '1' THEN 0.499999 "
             "ELSE round(1.0 - score, 6) END")
    scores = (f"CASE WHEN prediction = '1' THEN json_array({other}, score) "
              f"ELSE json_array(score, {other}) END")
    response = f"CAST(json_object('classes', json_array('0', '1'), 'scores', {scores}) AS VARCHAR)"
    record = (
        f"json_object('endpoint', {endpoint}, 'deployed_model_id', {deployed}, "
        f"'logging_time', {logging_time}, 'request_id', request_id, "
        f"'request_payload', json_array({features_json(schema)}), "
        f"'response_payload', json_array({response}))"
    )
    return (f"SELECT CAST({record} AS VARCHAR) || chr(10) AS line FROM chunk "
            "WHERE prediction IS NOT NULL ORDER BY ts, request_id")
