"""SageMaker Model Monitor: requests as data capture, labels as ground-truth uploads.

Layout (``log_formats.md`` section 1)::

    datacapture/<endpoint>/AllTraffic/YYYY/MM/DD/HH/<MM-SS-mmm>-<uuid>.jsonl
    groundtruth/YYYY/MM/DD/HH/<MM-SS-mmm>-<uuid>.jsonl

One capture line per request, in the hour folder of its time::

    {"captureData": {"endpointInput": {"observedContentType": "application/json",
                                       "mode": "INPUT", "data": "{\\"amount_usd\\": 12.5, ...}",
                                       "encoding": "JSON"},
                     "endpointOutput": {"observedContentType": "application/json",
                                        "mode": "OUTPUT", "encoding": "JSON", "data":
                                        "{\\"predictions\\": [{\\"predicted_label\\": 1,
                                        \\"score\\": 0.93}]}"}},
     "eventMetadata": {"eventId": "<uuid>", "inferenceId": "<request_id>",
                       "inferenceTime": "2026-02-02T00:00:01Z"},
     "eventVersion": "0"}

* ``inferenceId`` is the request id (the caller passes ``InferenceId=`` to
  ``InvokeEndpoint``), so ground truth joins on it; ``eventId`` is a UUID per invocation.
* ``inferenceTime`` has whole seconds, as in every real capture: ``ts`` loses its fraction.
* The input is the request's features as one JSON object (a custom container's payload), so
  the loader names the feature columns without ``--features``; missing values are ``null``.
* The output is Linear Learner's ``{"predictions": [{"predicted_label", "score"}]}``, the
  score being the probability of class 1 (the loader turns it back into the confidence in the
  prediction: for a "0", ``1 - score``, equal to the generic score up to 1e-12).
* A request the model did not answer (``status = 'error'``) is captured without
  ``endpointOutput`` (capture records what passed; the schema allows either part missing).
* Ground truth: one line per label, ``{"groundTruthData": {"data": "1", "encoding": "CSV"},
  "eventMetadata": {"eventId": "<inferenceId>"}, "eventVersion": "0"}``, uploaded by a
  daily job at midnight after the label arrived, into that hour's folder (``labeled_at``
  becomes that midnight: never before the label existed).

Not in the capture (SageMaker has no place for them): ``latency_ms``, ``host``,
``model_version``, ``pipeline_version``, ``client_version``, ``status``, ``http_status``,
``error_type``, ``in_flight``, ``cache_*``; ``endpoint`` becomes the endpoint name and
``model_name`` the variant (``AllTraffic``), as the loader reads them from the path.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from toolkit.simulate.case import Case
from toolkit.simulate.platforms._common import (
    Progress,
    connect,
    digest_uuid,
    features_json,
    positive_probability,
    run_starts,
    seconds_text,
    write_lines,
)
from toolkit.simulate.writer import write_tables

__all__ = ["write", "VARIANT", "capture_root", "ground_truth_root"]

#: The production variant (SageMaker's default name).
VARIANT = "AllTraffic"
_HOUR_US = 3_600_000_000
_DAY_US = 24 * _HOUR_US
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def capture_root(case: Case, out: Path) -> Path:
    """``<out>/datacapture/<endpoint>/AllTraffic``."""
    return out / "datacapture" / case.plan.platform.service / VARIANT


def ground_truth_root(out: Path) -> Path:
    """``<out>/groundtruth`` (the ground-truth S3 prefix)."""
    return out / "groundtruth"


def write(case: Case, out: Path, progress: Progress | None = None) -> None:
    """Write the capture and ground truth of ``case`` under ``out``, the rest as generic files."""
    con = connect()
    capture = capture_root(case, out)
    done = 0
    for c, (requests, labels) in enumerate(case.arrow_chunks()):
        con.register("chunk", requests)
        lines = con.sql(_capture_sql(requests.schema)).to_arrow_table()
        con.unregister("chunk")
        _write_hours(lines, capture, case.seed, "capture", c)
        if labels is not None and labels.num_rows:
            con.register("labels", labels)
            lines = con.sql(_ground_truth_sql()).to_arrow_table()
            con.unregister("labels")
            _write_hours(lines, ground_truth_root(out), case.seed, "groundtruth", c)
        done += requests.num_rows
        if progress is not None:
            progress(done, case.rows)
    con.close()
    write_tables(case, out, requests=False, events=case.events())


def _capture_sql(schema: pa.Schema) -> str:
    payload = (
        "CAST(json_object('predictions', json_array(json_object('predicted_label', "
        f"CAST(prediction AS INTEGER), 'score', {positive_probability()}))) AS VARCHAR)"
    )
    endpoint_input = (
        "json_object('observedContentType', 'application/json', 'mode', 'INPUT', "
        f"'data', {features_json(schema)}, 'encoding', 'JSON')"
    )
    endpoint_output = (
        "json_object('observedContentType', 'application/json', 'mode', 'OUTPUT', "
        f"'data', {payload}, 'encoding', 'JSON')"
    )
    h = "md5(request_id)"
    event_id = (f"substr({h}, 1, 8) || '-' || substr({h}, 9, 4) || '-4' || substr({h}, 14, 3) "
                f"|| '-a' || substr({h}, 18, 3) || '-' || substr({h}, 21, 12)")
    record = (
        "json_object('captureData', CASE WHEN prediction IS NULL THEN "
        f"json_object('endpointInput', {endpoint_input}) ELSE json_object('endpointInput', "
        f"{endpoint_input}, 'endpointOutput', {endpoint_output}) END, 'eventMetadata', "
        f"json_object('eventId', {event_id}, 'inferenceId', request_id, 'inferenceTime', "
        f"{seconds_text('epoch_us(ts)')} || 'Z'), 'eventVersion', '0')"
    )
    return (
        "SELECT epoch_us(ts) AS _us, epoch_us(ts) // 3600000000 AS _hour, "
        f"CAST({record} AS VARCHAR) || chr(10) AS line FROM chunk ORDER BY ts, request_id"
    )


def _ground_truth_sql() -> str:
    # uploaded by a daily job: at midnight after the label arrived, in that hour's folder
    record = (
        "json_object('groundTruthData', json_object('data', label, 'encoding', 'CSV'), "
        "'eventMetadata', json_object('eventId', request_id), 'eventVersion', '0')"
    )
    upload = f"(epoch_us(labeled_at) // {_DAY_US} + 1) * {_DAY_US}"
    return (
        f"SELECT {upload} AS _us, {upload} // {_HOUR_US} AS _hour, "
        f"CAST({record} AS VARCHAR) || chr(10) AS line FROM labels "
        "ORDER BY labeled_at, request_id"
    )


def _write_hours(lines: pa.Table, root: Path, seed: int, kind: str, chunk: int) -> None:
    """One file per hour of the chunk, in the ``YYYY/MM/DD/HH`` folder of that hour."""
    hours = lines.column("_hour").to_numpy()
    first_us = lines.column("_us").to_numpy()
    text = lines.column("line")
    bounds = run_starts(hours)
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        when = _EPOCH + timedelta(microseconds=int(first_us[lo]))
        folder = root / when.strftime("%Y/%m/%d/%H")
        name = f"{when:%M-%S}-{when.microsecond // 1000:03d}-" \
               f"{digest_uuid(seed, kind, chunk, int(hours[lo]))}.jsonl"
        write_lines(folder / name, text, int(lo), int(hi))

