"""Platform records as a careless or hostile user brings them (issue 19 defects 3, 5, 6, 11).

Each test builds the smallest file that showed the defect and checks the loader's promise:
rows read = loaded + rejected, every loaded value is the source value, and what cannot be
loaded is a reject with its reason (or a refused file that leaves the case unchanged).
"""

from __future__ import annotations

import json

import pytest

import toolkit as tk
from tests.load.formats._helpers import at, counts_hold, rejects
from toolkit.errors import FileParseError, InvalidParameterError

T0 = "2026-03-02T14:00:00Z"


def _response(result_type: str, result) -> str:
    return json.dumps({"status": "success", "data": {"resultType": result_type,
                                                     "result": result}})


# --- Prometheus -----------------------------------------------------------------------------

def test_prometheus_string_result_is_refused_with_the_reason(con, tmp_path):
    # a string result was loaded as 0 read / 0 loaded / 0 rejected, without a word
    path = tmp_path / "build_info.json"
    path.write_text(_response("string", [1772460000, "v2.51.0"]))
    with pytest.raises(FileParseError) as error:
        tk.load(con, path)
    assert "build_info.json" in str(error.value)
    assert "resultType string" in str(error.value)
    assert con.execute("SELECT count(*) FROM loads").fetchone()[0] == 0


def test_prometheus_string_response_among_others_is_one_reject(con, tmp_path):
    vector = _response("vector", [{"metric": {"__name__": "up", "pod": "a"},
                                   "value": [1772460000, "1"]}])
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join([vector, _response("string", [1772460000, "x"]),
                               _response("histogram", [])]) + "\n")
    report = tk.load(con, path)
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (3, 1, 2)
    assert rejects(con) == [
        (2, None, "a Prometheus string result (resultType string) holds text, not metric "
                  "samples: nothing to load"),
        (3, None, "unknown Prometheus resultType histogram (expected matrix, vector or "
                  "scalar)"),
    ]
    assert con.execute("SELECT ts, host, name, value FROM metrics").fetchall() == [
        (at("2026-03-02T14:00:00Z"), "a", "up", 1.0)]
    counts_hold(con)


def test_prometheus_empty_result_is_noted(con, tmp_path):
    path = tmp_path / "nothing.json"
    path.write_text(_response("matrix", []))
    (file,) = tk.load(con, path).files
    assert (file.rows_read, file.rows_loaded, file.rows_rejected) == (0, 0, 0)
    assert any("empty result" in note for note in file.notes)


def test_prometheus_sample_at_time_1e20_is_rejected_with_its_position(con, tmp_path):
    # one sample at 1e20 s refused the whole file with a conversion error and no position
    result = [
        {"metric": {"__name__": "up", "pod": "a"}, "values": [[1772460000, "1"]]},
        {"metric": {"__name__": "up", "pod": "b"},
         "values": [[1772460000, "1"], [1e20, "0"], [1772460030, "1"]]},
    ]
    path = tmp_path / "up.json"
    path.write_text(json.dumps({"status": "success",
                                "data": {"resultType": "matrix", "result": result}}, indent=1))
    report = tk.load(con, path)
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (4, 3, 1)
    ((row, column, reason),) = rejects(con)
    # the row is the series' position in data.result; the reason names the sample too
    assert (row, column) == (2, "ts")
    assert reason.startswith("ts: the sample time 1")
    assert reason.endswith("is out of range (series 2, sample 2)")
    assert con.execute("SELECT host, epoch(ts)::BIGINT FROM metrics ORDER BY host, ts"
                       ).fetchall() == [("a", 1772460000), ("b", 1772460000), ("b", 1772460030)]
    counts_hold(con)


# --- recognition before the file name -------------------------------------------------------

def _kserve_event(kind: str, data, **attributes) -> str:
    return json.dumps({"specversion": "1.0", "type": f"org.kubeflow.serving.inference.{kind}",
                       "source": "http://localhost:9081/", **attributes, "data": data})


def test_kserve_dump_named_events_jsonl_loads_as_requests(con, tmp_path):
    # the name said `events`, the content is KServe: "needs column kind" before
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join([
        _kserve_event("request", {"instances": [[1.5, 2.5]]}, id="r1", time=T0,
                      inferenceservicename="iris"),
        _kserve_event("response", {"predictions": [2]}, id="r1",
                      time="2026-03-02T14:00:00.25Z", inferenceservicename="iris"),
    ]) + "\n")
    (file,) = tk.load(con, path).files
    assert (file.format, file.table, file.rows_read, file.rows_loaded) == \
        ("kserve", "requests", 1, 1)
    assert con.execute("SELECT request_id, latency_ms, prediction, f0, f1 FROM requests"
                       ).fetchall() == [("r1", 250.0, "2", 1.5, 2.5)]
    assert con.execute("SELECT count(*) FROM events").fetchone()[0] == 0


def test_kserve_dump_in_an_events_folder_loads_as_requests(con, tmp_path):
    folder = tmp_path / "events"
    folder.mkdir()
    (folder / "dump.jsonl").write_text(
        _kserve_event("request", {"instances": [[1.0]]}, id="r1", time=T0) + "\n")
    report = tk.load(con, tmp_path)
    assert [(f.format, f.table, f.rows_loaded) for f in report.files] == \
        [("kserve", "requests", 1)]


def test_a_forced_table_the_format_cannot_fill_is_refused(con, tmp_path):
    path = tmp_path / "dump.jsonl"
    path.write_text(_kserve_event("request", {"instances": [[1.0]]}, id="r1", time=T0) + "\n")
    with pytest.raises(InvalidParameterError, match="kserve records, which load into requests "
                                                    "or reference, not metrics"):
        tk.load(con, path, table="metrics")
    assert con.execute("SELECT count(*) FROM loads").fetchone()[0] == 0


# --- KServe CloudEvents (defect 5) ----------------------------------------------------------

def _at(second: float) -> str:
    return f"2026-03-02T14:00:{second:06.3f}Z"


def test_kserve_events_without_id_pair_by_order(con, tmp_path):
    # three request/response pairs without `id`: 6 half rows before
    lines = []
    for i in range(3):
        lines.append(_kserve_event("request", {"instances": [[i + 0.5, 1.0]]}, time=_at(i),
                                   inferenceservicename="iris"))
        lines.append(_kserve_event("response", {"predictions": [i]}, time=_at(i + 0.25),
                                   inferenceservicename="iris"))
    path = tmp_path / "noid.jsonl"
    path.write_text("\n".join(lines) + "\n")
    (file,) = tk.load(con, path).files
    assert (file.rows_read, file.rows_loaded, file.rows_rejected) == (3, 3, 0)
    assert any("3 request/response pair(s) without id" in n for n in file.notes)
    assert con.execute("SELECT request_id, ts, latency_ms, prediction, f0 FROM requests "
                       "ORDER BY ts").fetchall() == [
        ("#1", at(_at(0)), 250.0, "0", 0.5),
        ("#3", at(_at(1)), 250.0, "1", 1.5),
        ("#5", at(_at(2)), 250.0, "2", 2.5),
    ]
    counts_hold(con)


def test_kserve_events_without_id_in_ambiguous_order_are_rejected(con, tmp_path):
    # two requests, then two responses: which answers which cannot be told without an id
    lines = [
        _kserve_event("request", {"instances": [[1.0]]}, time=_at(0)),
        _kserve_event("request", {"instances": [[2.0]]}, time=_at(1)),
        _kserve_event("response", {"predictions": [1]}, time=_at(2)),
        _kserve_event("response", {"predictions": [2]}, time=_at(3)),
        _kserve_event("request", {"instances": [[3.0]]}, id="r9", time=_at(4)),
        _kserve_event("response", {"predictions": [3]}, id="r9", time=_at(5)),
    ]
    path = tmp_path / "ambiguous.jsonl"
    path.write_text("\n".join(lines) + "\n")
    report = tk.load(con, path)
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (5, 1, 4)
    got = rejects(con)
    assert [(row, column) for row, column, _ in got] == [(1, "id"), (2, "id"), (3, "id"),
                                                        (4, "id")]
    assert got[0][2] == ("id: a request event without id (nor requestid) that cannot be paired "
                         "by order: it is not right next to a response of the same "
                         "InferenceService in the file")
    assert got[2][2].startswith("id: a response event without id")
    assert con.execute("SELECT request_id, prediction FROM requests").fetchall() == [("r9", "3")]
    counts_hold(con)


def test_kserve_request_only_log_without_ids_still_loads(con, tmp_path):
    # logger mode "request": no response is expected, so none is missing
    path = tmp_path / "requests_only.jsonl"
    path.write_text("\n".join(_kserve_event("request", {"instances": [[float(i)]]},
                                            time=_at(i)) for i in range(2)) + "\n")
    report = tk.load(con, path)
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (2, 2, 0)
    assert con.execute("SELECT request_id, status, f0 FROM requests ORDER BY ts").fetchall() == [
        ("#1", None, 0.0), ("#2", None, 1.0)]


def test_kserve_missing_time_is_never_the_file_mtime(con, tmp_path):
    lines = [
        # the request has no time: timed by its response, with a note
        _kserve_event("request", {"instances": [[1.0]]}, id="a"),
        _kserve_event("response", {"predictions": [1]}, id="a", time=_at(1)),
        # no time on either side: rejected
        _kserve_event("request", {"instances": [[2.0]]}, id="b"),
        _kserve_event("response", {"predictions": [2]}, id="b"),
        _kserve_event("request", {"instances": [[3.0]]}, id="c", time=_at(2)),
        _kserve_event("response", {"predictions": [3]}, id="c", time=_at(2.5)),
    ]
    path = tmp_path / "untimed.jsonl"
    path.write_text("\n".join(lines) + "\n")
    (file,) = tk.load(con, path).files
    assert (file.rows_read, file.rows_loaded, file.rows_rejected) == (3, 2, 1)
    assert any("1 request(s) without a time attribute timed by their response" in n
               for n in file.notes)
    assert con.execute("SELECT request_id, ts, latency_ms FROM requests ORDER BY ts"
                       ).fetchall() == [("a", at(_at(1)), None), ("c", at(_at(2)), 500.0)]
    assert rejects(con) == [(3, "time", "time: no time: neither the request nor the response "
                                        "event has a time attribute")]
    counts_hold(con)


def test_kserve_corrupt_data_base64_is_rejected(con, tmp_path):
    import base64

    def encoded(kind: str, payload: bytes | str, **attributes) -> str:
        event = json.loads(_kserve_event(kind, None, **attributes))
        del event["data"]
        event["data_base64"] = payload if isinstance(payload, str) else \
            base64.b64encode(payload).decode()
        return json.dumps(event)

    lines = [
        encoded("request", b'{"instances": [[4.25, 1.5]]}', id="ok", time=_at(0)),
        _kserve_event("response", {"predictions": [1]}, id="ok", time=_at(0.5)),
        encoded("request", "!!! not base64 !!!", id="bad", time=_at(1)),
        _kserve_event("response", {"predictions": [0]}, id="bad", time=_at(1.5)),
        encoded("request", b"\xff\xfe\x00{", id="latin", time=_at(2)),
        _kserve_event("response", {"predictions": [0]}, id="latin", time=_at(2.5)),
    ]
    path = tmp_path / "b64.jsonl"
    path.write_text("\n".join(lines) + "\n")
    report = tk.load(con, path)
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (3, 1, 2)
    assert con.execute("SELECT request_id, f0, f1, prediction FROM requests").fetchall() == [
        ("ok", 4.25, 1.5, "1")]
    assert rejects(con) == [
        (3, "data_base64", "data_base64: data_base64 is not base64: the body does not decode"),
        (5, "data_base64", "data_base64: data_base64 does not decode to UTF-8 text"),
    ]
    counts_hold(con)


# --- SageMaker capture (defects 3 and 5) ----------------------------------------------------

def _capture(data: str, encoding: str, content_type: str, event_id: str, output: str = "0.9"
             ) -> str:
    return json.dumps({
        "captureData": {
            "endpointInput": {"observedContentType": content_type, "mode": "INPUT",
                              "data": data, "encoding": encoding},
            "endpointOutput": {"observedContentType": "text/csv", "mode": "OUTPUT",
                               "data": output, "encoding": "CSV"}},
        "eventMetadata": {"eventId": event_id, "inferenceTime": T0},
        "eventVersion": "0"})


def test_sagemaker_base64_payload_that_is_not_utf8_is_rejected(con, tmp_path):
    import base64

    good = base64.b64encode(b"3.5,7").decode()
    binary = base64.b64encode(b"\x93NUMPY\x01\x00v\x00").decode()  # an .npy header
    path = tmp_path / "capture.jsonl"
    path.write_text(_capture(good, "BASE64", "text/csv", "e1") + "\n"
                    + _capture(binary, "BASE64", "application/x-npy", "e2") + "\n")
    report = tk.load(con, path)
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (2, 1, 1)
    assert con.execute("SELECT request_id, f0, f1, prediction FROM requests").fetchall() == [
        ("e1", 3.5, 7.0, "1")]
    assert rejects(con) == [(2, "captureData.endpointInput.data",
                             "captureData.endpointInput.data: the BASE64 payload is not UTF-8 "
                             "text (binary payloads such as application/x-npy are not read)")]
    counts_hold(con)


def test_sagemaker_payload_keys_starting_with_underscores_are_written(con, tmp_path):
    # `__x` was catalogued and left all NULL (renamed `__x_input`, which the writer skipped)
    payload = json.dumps({"__x": 1.5, "_y": "blue", "ts": 3, "ts_input": 4})
    path = tmp_path / "capture.jsonl"
    path.write_text(_capture(payload, "JSON", "application/json", "e1") + "\n")
    (file,) = tk.load(con, path).files
    assert (file.rows_read, file.rows_loaded) == (1, 1)
    # keys that are canonical columns get `_input` (never merged into a real key of that name)
    assert any("ts -> ts_input_input" in n for n in file.notes)
    assert con.execute('SELECT "__x", "_y", ts_input_input, ts_input FROM requests'
                       ).fetchall() == [(1.5, "blue", 3.0, 4.0)]
    assert con.execute("SELECT name FROM features ORDER BY position").fetchall() == [
        ("__x",), ("_y",), ("ts_input_input",), ("ts_input",)]


# --- SageMaker batch transform: a run time for records without one (issue 20 item 8) -------

def _load_with(con, path, **options):
    """One file through the loader with reader options that ``tk.load`` does not take yet
    (``run_time``): the same staging, conversion and writing as ``tk.load``."""
    from toolkit.load import formats
    from toolkit.load.api import _load_file
    from toolkit.load.discover import discover

    file = formats.resolve(discover(path)[0])
    return _load_file(con, file, None, False, formats.FormatOptions(**options))


def _batch_records(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.realdata
def test_real_batch_transform_export_with_a_run_time(con):
    from tests.conftest import realdata

    path = realdata("sagemaker", "merged_groundtruth_batch_transform.jsonl")
    result = _load_with(con, path, run_time="2023-01-19T06:00:00Z")
    # 3 records: 334 + 1 instances of the income model (14 inputs) and one churn CSV record
    # (69 inputs + its output) that does not fit the file's 14-input records
    assert (result.rows_read, result.rows_loaded, result.rows_rejected) == (336, 335, 1)
    assert any(n.startswith("batch run batch-transform:2023-01-19T06:00:00+00:00: 3 ")
               for n in result.notes)
    assert con.execute("SELECT endpoint, min(ts), max(ts), count(*) FROM requests GROUP BY 1"
                       ).fetchall() == [("batch-transform:2023-01-19T06:00:00+00:00",
                                         at("2023-01-19T06:00:00Z"), at("2023-01-19T06:00:00Z"),
                                         335)]
    assert rejects(con) == [(2, "captureData.batchTransformOutput.data",
                             "captureData.batchTransformOutput.data: the input record has 69 "
                             "value(s); expected 14 (as most records of the file)")]
    # every loaded value is the source's: predictions, scores, inputs and inline labels of the
    # 334-instance record, read here with json instead of the reader's SQL
    first = _batch_records(path)[0]
    body = json.loads(first["captureData"]["batchTransformOutput"]["data"])
    labels = json.loads(first["groundTruthData"]["data"])["instances"]
    expected = sorted(
        (f"{first['eventMetadata']['eventId']}:{i}", str(p["predicted_label"]),
         p["score"] if p["predicted_label"] == 1 else 1 - p["score"],
         float(x["features"][0]), float(x["features"][13]), str(y["label"]))
        for i, (p, x, y) in enumerate(zip(body["SageMakerOutput"]["predictions"],
                                          body["instances"], labels, strict=True)))
    got = con.execute(
        "SELECT request_id, prediction, score, f0, f13, l.label FROM requests "
        "JOIN labels l USING (request_id) WHERE request_id LIKE '94bcc22a%' ORDER BY request_id"
    ).fetchall()
    assert [g[:2] + (pytest.approx(g[2]),) + g[3:] for g in got] == \
        [e[:2] + (pytest.approx(e[2]),) + e[3:] for e in expected]
    assert len(got) == 334
    counts_hold(con)


@pytest.mark.realdata
def test_real_batch_transform_export_in_a_job_folder(con, tmp_path):
    import shutil

    from tests.conftest import realdata

    folder = tmp_path / "income-batch-2023-01-19-06-04-56-123"
    folder.mkdir()
    path = folder / "capture.jsonl"
    shutil.copy(realdata("sagemaker", "merged_groundtruth_batch_transform.jsonl"), path)
    (file,) = tk.load(con, path).files
    assert (file.rows_read, file.rows_loaded, file.rows_rejected) == (336, 335, 1)
    assert con.execute("SELECT DISTINCT endpoint, ts FROM requests").fetchall() == [
        ("batch-transform:income-batch-2023-01-19-06-04-56-123",
         at("2023-01-19T06:04:56.123Z"))]


def _batch_capture(event_id: str, features: list, score: float, **metadata) -> str:
    data = json.dumps({"SageMakerOutput": {"predicted_label": int(score >= 0.5),
                                           "score": score}, "features": features})
    return json.dumps({"captureData": {"batchTransformOutput": {"data": data,
                                                                "encoding": "JSON"}},
                       "eventMetadata": {"eventId": event_id, **metadata},
                       "eventVersion": "0"})


def test_batch_run_time_from_the_job_description_beside_the_file(con, tmp_path):
    run = tmp_path / "capture" / "run-7"
    run.mkdir(parents=True)
    # `aws sagemaker describe-transform-job --transform-job-name churn-nightly-7 > job.json`
    (tmp_path / "capture" / "job.json").write_text(json.dumps({
        "TransformJobName": "churn-nightly-7", "TransformJobStatus": "Completed",
        "CreationTime": "2026-03-01T01:58:00.000000+00:00",
        "TransformStartTime": "2026-03-01T02:00:05.250000+01:00"}))
    path = run / "part-0.jsonl"
    path.write_text(_batch_capture("a", [1, 2], 0.8) + "\n"
                    + _batch_capture("b", [3, 4], 0.3, inferenceTime=T0) + "\n")
    (file,) = tk.load(con, path).files
    assert (file.rows_read, file.rows_loaded, file.rows_rejected) == (2, 2, 0)
    assert any("timed 2026-03-01T01:00:05.250000+00:00 (from the job description job.json)"
               in n for n in file.notes)
    # a record's own inferenceTime (GenerateInferenceId) still wins over the run's time
    assert con.execute("SELECT request_id, ts, endpoint, prediction, f1 FROM requests "
                       "ORDER BY request_id").fetchall() == [
        ("a", at("2026-03-01T01:00:05.25Z"), "batch-transform:churn-nightly-7", "1", 2.0),
        ("b", at(T0), "batch-transform:churn-nightly-7", "0", 4.0)]


def test_batch_records_without_any_run_time_are_rejected_saying_how_to_give_one(con, tmp_path):
    path = tmp_path / "capture.jsonl"
    path.write_text(_batch_capture("a", [1, 2], 0.8) + "\n"
                    + _capture("3.5,7", "CSV", "text/csv", "e1") + "\n")
    (file,) = tk.load(con, path).files
    assert (file.rows_read, file.rows_loaded, file.rows_rejected) == (2, 1, 1)
    assert any("--run-time" in n for n in file.notes)
    assert rejects(con) == [(1, "ts", "ts: required value is missing")]


def test_the_caller_run_time_is_the_fallback_and_must_be_a_time(con, tmp_path):
    hour = tmp_path / "2026" / "03" / "01" / "02"
    hour.mkdir(parents=True)
    path = hour / "capture.jsonl"
    path.write_text(_batch_capture("a", [1, 2], 0.8) + "\n")
    # the hour folder tells the run's time: the caller's is only a fallback
    result = _load_with(con, path, run_time="2030-01-01T00:00:00")
    assert result.rows_loaded == 1
    assert con.execute("SELECT ts, endpoint FROM requests").fetchall() == [
        (at("2026-03-01T02:00:00Z"), "batch-transform:2026-03-01T02:00:00+00:00")]
    other = tmp_path / "other.jsonl"
    other.write_text(_batch_capture("b", [1, 2], 0.8) + "\n")
    with pytest.raises(InvalidParameterError, match="run time 'yesterday' is not an ISO 8601"):
        _load_with(con, other, run_time="yesterday")
    assert con.execute("SELECT count(*) FROM loads").fetchone()[0] == 1


# --- hostile lines in platform files ---------------------------------------------------------

def _lines_in(path) -> int:
    """Records of a JSON-lines file counted without the loader: its non-blank physical lines."""
    return sum(1 for line in path.read_bytes().split(b"\n") if line.strip(b" \t\r"))


def _good_captures(n: int) -> list[bytes]:
    return [_capture(f"{i}.5,2", "CSV", "text/csv", f"e{i}").encode() for i in range(n)]


@pytest.mark.parametrize("bad, reason", [
    (b'{"captureData": {"x": "caf\xe9"}}', "not valid UTF-8 text"),
    (b'{"captureData": "a\x1eb"}', "contains a record-separator control character (\\x1e)"),
    (_capture("1,2", "CSV", "text/csv", "dup").replace(
        '"eventVersion"', '"eventMetadata": {"eventId": "other"}, "eventVersion"').encode(),
     'duplicate key "eventMetadata": which value is meant cannot be told'),
    (_capture("1,2", "CSV", "text/csv", "dup").replace(
        '"eventId": "dup"', '"eventId": "dup", "eventId": "dup2"').encode(),
     'duplicate key "eventId" in $.eventMetadata: which value is meant cannot be told'),
], ids=["latin1", "record-separator", "duplicate-top-key", "duplicate-nested-key"])
def test_sagemaker_one_bad_line_is_one_reject_not_a_refused_file(con, tmp_path, bad, reason):
    # a Latin-1 or \x1e line refused the whole file as a "CSV Error"; a duplicated key kept
    # one of the two values silently
    good = _good_captures(3)
    path = tmp_path / "capture.jsonl"
    path.write_bytes(b"\n".join([good[0], bad, *good[1:]]) + b"\n")
    report = tk.load(con, path)
    assert report.rows_read == _lines_in(path) == 4
    assert (report.rows_loaded, report.rows_rejected) == (3, 1)
    assert rejects(con) == [(2, None, reason)]
    assert con.execute("SELECT request_id, f0 FROM requests ORDER BY 1").fetchall() == [
        ("e0", 0.5), ("e1", 1.5), ("e2", 2.5)]
    counts_hold(con)


def test_sagemaker_capture_with_a_byte_order_mark_is_recognised(con, tmp_path):
    path = tmp_path / "capture.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b"\n".join(_good_captures(2)) + b"\n")
    (file,) = tk.load(con, path).files
    assert (file.format, file.rows_read, file.rows_loaded) == ("sagemaker", 2, 2)


def test_kserve_line_that_is_not_utf8_is_one_reject(con, tmp_path):
    lines = [_kserve_event(kind, {"instances": [[float(i)]]} if kind == "request" else
                           {"predictions": [i]}, id=f"r{i}", time=_at(i)).encode()
             for i in range(2) for kind in ("request", "response")]
    lines.insert(2, b'{"specversion": "1.0", "type": "caf\xe9"}')
    path = tmp_path / "k.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    report = tk.load(con, path)
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (3, 2, 1)
    assert rejects(con) == [(3, None, "not valid UTF-8 text")]


def test_prometheus_sample_without_a_value_is_rejected_not_loaded_null(con, tmp_path):
    # [t] and [t, null] were loaded as NULL values, as if Prometheus had said NaN
    result = [{"metric": {"__name__": "up", "pod": "a"},
               "values": [[1772460000, "1"], [1772460015], [1772460030, None],
                          [1772460045, "NaN"], [1772460060, "1", "x"]]}]
    path = tmp_path / "up.json"
    path.write_text(json.dumps({"status": "success",
                                "data": {"resultType": "matrix", "result": result}}))
    report = tk.load(con, path)
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (5, 2, 3)
    # one series: all on its row (its position in data.result); the reason names the sample
    assert sorted(rejects(con)) == sorted([
        (1, "value", "value: the sample has no value (series 1, sample 2)"),
        (1, "value", "value: the sample has no value (series 1, sample 3)"),
        (1, "value", 'value: the sample [1772460060,"1","x"] is not a [time, value] pair '
                     "(series 1, sample 5)")])
    # NaN is Prometheus' own "no value": loaded as NULL, as documented
    assert con.execute("SELECT epoch(ts)::BIGINT, value FROM metrics ORDER BY ts").fetchall() \
        == [(1772460000, 1.0), (1772460045, None)]


def test_seldon_events_without_requestid_do_not_pair_on_their_per_message_ids(con, tmp_path):
    # Seldon's ce-id differs between a request and its response: without ce-requestid they
    # were two half rows; adjacent, they pair by order
    def seldon(kind: str, data, event_id: str, second: float) -> str:
        return json.dumps({"specversion": "1.0", "type": f"io.seldon.serving.inference.{kind}",
                           "source": "http://:8000/", "id": event_id, "time": _at(second),
                           "inferenceservicename": "model-test", "data": data})

    path = tmp_path / "seldon.jsonl"
    path.write_text("\n".join([
        seldon("request", {"data": {"ndarray": [[2, 1]]}}, "m1", 0),
        seldon("response", {"data": {"ndarray": [[0.1, 0.9]]}}, "m2", 0.125),
    ]) + "\n")
    (file,) = tk.load(con, path).files
    assert (file.rows_read, file.rows_loaded, file.rows_rejected) == (1, 1, 0)
    assert con.execute("SELECT request_id, latency_ms, prediction, score, f0, f1 FROM requests"
                       ).fetchall() == [("#1", 125.0, "1", 0.9, 2.0, 1.0)]


# --- OTLP and Vertex times out of range --------------------------------------------------------

def test_otlp_span_start_out_of_range_is_rejected_not_the_file(con, tmp_path):
    # one span starting at 1e30 ns refused the whole file with a bare conversion error
    def span(span_id: str, start) -> dict:
        return {"traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": span_id,
                "name": "infer", "kind": 2, "startTimeUnixNano": start,
                "endTimeUnixNano": "1772460000250000000"}

    path = tmp_path / "traces.json"
    path.write_text("\n".join(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [s]}]}]})
                              for s in (span("A0", "1772460000000000000"), span("A1", "1e30"),
                                        span("A2", -5))) + "\n")
    report = tk.load(con, path)
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (3, 1, 2)
    assert rejects(con) == [
        (2, "startTimeUnixNano", "startTimeUnixNano: 1e30 is not a time (nanoseconds since "
                                 "1970 out of range)"),
        (3, "startTimeUnixNano", "startTimeUnixNano: -5 is not a time (nanoseconds since 1970 "
                                 "out of range)"),
    ]
    assert con.execute("SELECT ts, latency_ms FROM requests").fetchall() == [
        (at("2026-03-02T14:00:00Z"), 250.0)]


def test_vertex_logging_time_that_is_not_a_time_is_rejected(con, tmp_path):
    # "1e20" went through the generic epoch guess and landed in the year 5138
    def record(request_id: str, logging_time) -> str:
        return json.dumps({"endpoint": "projects/p/locations/l/endpoints/1",
                           "deployed_model_id": "42", "logging_time": logging_time,
                           "request_id": request_id, "request_payload": ['{"a": 1.5}'],
                           "response_payload": ['{"predictions": [0.7]}']})

    path = tmp_path / "vertex.jsonl"
    path.write_text("\n".join([record("1", "2026-03-02 14:00:00 UTC"),
                               record("2", "1.7724600E9"), record("3", "1e20"),
                               record("4", "soon")]) + "\n")
    report = tk.load(con, path)
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (4, 2, 2)
    assert con.execute("SELECT request_id, ts FROM requests ORDER BY 1").fetchall() == [
        ("1", at("2026-03-02T14:00:00Z")), ("2", at("2026-03-02T14:00:00Z"))]
    assert rejects(con) == [(3, "logging_time", "logging_time: 1e20 is not a time"),
                            (4, "logging_time", "logging_time: soon is not a time")]


# --- a file of nothing but unreadable records ---------------------------------------------------

@pytest.mark.parametrize("name, content, reason", [
    ("k.jsonl", "\n".join([_kserve_event("request", {"instances": [[1.0]]}, id="a"),
                           _kserve_event("response", {"predictions": [1]}, id="a")]) + "\n",
     "(line 1): nothing can be loaded: no time: neither the request nor the response event "
     "has a time attribute"),
    ("capture.jsonl", _capture("//79", "BASE64", "application/x-npy", "e1") + "\n",
     "(line 1): nothing can be loaded: the BASE64 payload is not UTF-8 text (binary payloads "
     "such as application/x-npy are not read)"),
], ids=["kserve-untimed", "sagemaker-binary"])
def test_a_file_with_no_readable_record_is_refused_with_the_reason(con, tmp_path, name, content,
                                                                   reason):
    # the writer said only "no record could be parsed ...; is the file in the format its name
    # says?", hiding why
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(FileParseError) as error:
        tk.load(con, path)
    assert str(error.value) == f"{path} {reason}"
    assert con.execute("SELECT (SELECT count(*) FROM loads) + (SELECT count(*) FROM requests) "
                       "+ (SELECT count(*) FROM rejects)").fetchone()[0] == 0


def test_batch_run_sources_and_their_ambiguities(tmp_path):
    from toolkit.load.formats._batch import batch_run

    job = {"TransformJobName": "a", "TransformStartTime": 1772330405.5}
    folder = tmp_path / "runs" / "x"
    folder.mkdir(parents=True)
    capture = folder / "part.jsonl"
    capture.write_text("{}\n")
    assert batch_run(capture, None) is None
    assert batch_run(capture, "2026-03-01T02:00:00+01:00").time == "2026-03-01T01:00:00+00:00"
    # boto3's answer dumped with json.dump(default=...) may keep epoch seconds
    (tmp_path / "runs" / "job-a.json").write_text(json.dumps(job))
    run = batch_run(capture, "2030-01-01")
    assert (run.time, run.name, run.source) == (
        "2026-03-01T02:00:05.500000+00:00", "a", "the job description job-a.json")
    # two descriptions at the same level: which one is this file's cannot be told
    (tmp_path / "runs" / "job-b.json").write_text(json.dumps({**job, "TransformJobName": "b"}))
    assert batch_run(capture, None) is None
    # a job-named folder; a name whose "timestamp" is no date is not one
    named = tmp_path / "xgb-2023-13-45-06-04-56" / "churn-2024-01-19-20-15-00" / "p.jsonl"
    named.parent.mkdir(parents=True)
    run = batch_run(named, None)
    assert (run.time, run.name) == ("2024-01-19T20:15:00+00:00", "churn-2024-01-19-20-15-00")
    bad = tmp_path / "xgb-2023-13-45-06-04-56" / "p.jsonl"
    assert batch_run(bad, None) is None


def _event_display(kind: str, event_id: str, time: str, body: str) -> str:
    return (f"☁️  cloudevents.Event\nValidation: valid\nContext Attributes,\n  specversion: 1.0\n"
            f"  type: org.kubeflow.serving.inference.{kind}\n  source: http://localhost:9081/\n"
            f"  id: {event_id}\n  time: {time}\n  datacontenttype: application/json\n"
            f"Extensions,\n  inferenceservicename: iris\nData,\n  {body}\n")


def test_kserve_event_display_with_bytes_that_are_not_utf8(con, tmp_path):
    # the dump was decoded with errors="replace": a Latin-1 byte became U+FFFD in a loaded value
    dump = "".join([
        _event_display("request", "a", _at(0), '{"instances": [{"city": "Paris", "x": 1}]}'),
        _event_display("response", "a", _at(0.5), '{"predictions": [1]}'),
        _event_display("request", "b", _at(1), '{"instances": [{"city": "K\x00ln", "x": 2}]}'),
        _event_display("response", "b", _at(1.5), '{"predictions": [0]}'),
    ]).encode().replace(b"K\x00ln", b"K\xf6ln")  # Köln in Latin-1
    path = tmp_path / "dump.txt"
    path.write_bytes(dump)
    report = tk.load(con, path)
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (2, 1, 1)
    assert con.execute("SELECT request_id, city, x, prediction FROM requests").fetchall() == [
        ("a", "Paris", 1.0, "1")]
    ((row, column, reason),) = rejects(con)
    assert (row, column, reason) == (27, None, "not valid UTF-8 text")


def test_a_corrupt_gzip_file_is_refused_with_a_one_line_error(con, tmp_path):
    import gzip

    path = tmp_path / "capture.jsonl.gz"
    path.write_bytes(gzip.compress(b"\n".join(_good_captures(50)))[:40])
    with pytest.raises(FileParseError, match="corrupt gzip data"):
        tk.load(con, path)
    assert con.execute("SELECT count(*) FROM loads").fetchone()[0] == 0


def test_resolve_tells_a_forced_table_from_the_one_the_name_suggests(tmp_path):
    from toolkit.load import formats
    from toolkit.load.discover import discover

    path = tmp_path / "events.jsonl"
    path.write_text(_kserve_event("request", {"instances": [[1.0]]}, id="r1", time=T0) + "\n")
    (named,) = discover(path)
    assert named.table == "events"
    assert formats.resolve(named).table == "requests"  # the name gives way to the content
    (forced,) = discover(path, table="events")
    with pytest.raises(InvalidParameterError, match="not events; drop --table"):
        formats.resolve(forced, table="events")  # what api.load passes for --table
    assert formats.resolve(discover(path, table="reference")[0], table="reference").table == \
        "reference"
