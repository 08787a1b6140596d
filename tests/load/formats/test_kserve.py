"""KServe and Seldon payload logs (CloudEvents): dumps, structured JSON and the blob sink."""

from __future__ import annotations

import base64
import os
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import toolkit as tk
from tests.conftest import realdata
from tests.load.formats._helpers import FIXTURES, at, counts_hold, rejects
from toolkit.load.formats import READERS

KS = FIXTURES / "kserve"
COLUMNS = ("request_id, ts, latency_ms, endpoint, model_name, model_version, status, "
           "prediction, score")


def rows(con, extra: str = "") -> list[tuple]:
    return con.execute(f"SELECT {COLUMNS}{extra} FROM requests ORDER BY ts, request_id"
                       ).fetchall()


def test_event_display_v1_pairs_and_unanswered_request(con):
    report = tk.load(con, KS / "event_display_v1.txt")
    (file,) = report.files
    assert (file.format, file.table) == ("kserve", "requests")
    assert (file.rows_read, file.rows_loaded, file.rows_rejected) == (4, 4, 0)
    a = "5b4a8f38-0c2e-4f1e-9d55-2f1e0c7a9b01"
    assert rows(con, ", f0, f1, f2, f3") == [
        # 14:05:01.100000500 -> .112345678: 12.345178 ms, to the nanosecond
        (f"{a}:0", at("2026-03-02T14:05:01.1Z"), pytest.approx(12.345178), "sklearn-iris",
         "sklearn-iris", None, "ok", "1", None, 6.8, 2.8, 4.8, 1.4),
        (f"{a}:1", at("2026-03-02T14:05:01.1Z"), pytest.approx(12.345178), "sklearn-iris",
         "sklearn-iris", None, "ok", "2", None, 6.0, 3.4, 4.5, 1.6),
        # response logged before its request: paired on the id all the same
        ("0f0e2d1c-3b4a-4c5d-8e6f-7a8b9c0d1e2f", at("2026-03-02T14:05:02.2Z"),
         pytest.approx(50.0), "sklearn-iris", "sklearn-iris", None, "ok", "0", None,
         5.1, 3.5, 1.4, 0.2),
        # no response logged: no status, prediction nor latency
        ("9a9b9c9d-0000-4000-8000-00000000000c", at("2026-03-02T14:05:03Z"), None,
         "sklearn-iris", "sklearn-iris", None, None, None, None, 7.7, 3.0, 6.1, 2.3),
    ]
    assert con.execute("SELECT DISTINCT format FROM loads").fetchall() == [("kserve",)]
    counts_hold(con)


def test_event_display_v2_tensors_and_error_response(con):
    report = tk.load(con, KS / "event_display_v2.txt")
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (3, 3, 0)
    a = "6c1f0a52-77d4-4b0a-9a43-0d3c7f1e2a10"
    assert rows(con, ", age, workclass, f0, f1, f2") == [
        # two named input tensors -> features age and workclass; model name and version come
        # from the V2 response, the prediction from "predict", its probability from predict_proba
        (f"{a}:0", at("2026-03-02T15:00:00Z"), pytest.approx(20.0002), "income", "income-xgb",
         "v3", "ok", "0", pytest.approx(0.75), 39.0, "State-gov", None, None, None),
        (f"{a}:1", at("2026-03-02T15:00:00Z"), pytest.approx(20.0002), "income", "income-xgb",
         "v3", "ok", "1", pytest.approx(0.6), 50.0, "Private", None, None, None),
        ("1d2e3f40-5a6b-4c7d-8e9f-a0b1c2d3e4f5", at("2026-03-02T15:00:01Z"), pytest.approx(500.0),
         "income", "income", None, "error", None, None, None, None, 1.5, 2.5, 3.5),
    ]


def test_http_echo_dump_with_json_quoted_extensions(con):
    report = tk.load(con, KS / "http_echo.txt")
    assert (report.rows_read, report.rows_loaded) == (3, 3)
    got = rows(con, ", f0")
    assert [r[0] for r in got] == [f"7e1d3c44-93b1-4f57-a0e9-55c9d6f0a111:{i}" for i in range(3)]
    assert {r[3] for r in got} == {"iris"}  # '"iris"' unquoted
    assert [r[7] for r in got] == ["1", "1", "0"]
    assert got[0][2] == pytest.approx(4.068506)
    assert got[0][1] == at("2020-02-27T09:52:15.816441Z")


def test_seldon_pairs_on_request_id(con):
    report = tk.load(con, KS / "seldon_echo.txt")
    (file,) = report.files
    assert (file.rows_read, file.rows_loaded) == (1, 1)
    assert "1 event(s) neither request nor response" in file.notes[0]
    assert rows(con, ", sepal_length, sepal_width") == [
        ("12b0d447-288e-42a0-a7b4-b630c8b4895c", at("2022-08-16T22:38:13.447502Z"),
         pytest.approx(5.0), "model-test", "model-test-predictor", "1.0.0", "ok", "1",
         pytest.approx(0.6), 2.0, 1.0),
    ]


def test_structured_cloudevents_lines_with_a_truncated_line(con):
    report = tk.load(con, KS / "structured.jsonl")
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (3, 2, 1)
    assert rows(con, ", amount, country") == [
        ("a1b2c3d4-0001-4000-8000-000000000001", at("2026-03-02T16:00:00Z"), pytest.approx(8.5),
         "fraud", "fraud", None, "ok", "1", pytest.approx(0.93), 120.5, "DE"),
        ("a1b2c3d4-0002-4000-8000-000000000002", at("2026-03-02T16:00:01Z"), pytest.approx(4.0),
         "fraud", "fraud", None, "ok", "0", pytest.approx(0.88), 9.99, "FR"),
    ]
    assert rejects(con) == [(5, None, "not valid JSON (a truncated or corrupt line)")]
    counts_hold(con)


def test_blob_sink_csv_pairs_request_and_response_objects(con, tmp_path):
    source = KS / "blob" / "default" / "sklearn-iris" / "predictor"
    folder = tmp_path / "predictor"
    shutil.copytree(source, folder)
    when = at("2026-03-02T18:30:00Z").timestamp()
    for path in folder.iterdir():
        os.utime(path, (when, when))
    report = tk.load(con, tmp_path)
    by_name = {f.source.rsplit("/", 1)[1]: f for f in report.files}
    request = by_name["2c7e9a3e-1f0b-4b8e-9d1a-6f5c4e3d2b1a-request.csv"]
    response = by_name["2c7e9a3e-1f0b-4b8e-9d1a-6f5c4e3d2b1a-response.csv"]
    assert (request.format, request.rows_loaded) == ("kserve", 1)
    assert any("modification time" in n for n in request.notes)
    assert (response.rows_read, response.notes) == (
        0, ("response loaded with its request object "
            "2c7e9a3e-1f0b-4b8e-9d1a-6f5c4e3d2b1a-request.csv",))
    assert rows(con, ", f0, f3") == [
        ("2c7e9a3e-1f0b-4b8e-9d1a-6f5c4e3d2b1a", at("2026-03-02T18:30:00Z"), None,
         "sklearn-iris", "sklearn-iris", None, "ok", "2", None, 6.8, 1.4),
    ]


def test_blob_sink_json_batch_with_undecodable_bytes(con):
    report = tk.load(con, KS / "blob_json" / "batch-0001.json")
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (2, 1, 1)
    assert rows(con) == [
        ("b-0001", at("2026-03-02T17:00:00Z"), pytest.approx(3.0), "sklearn-iris",
         "sklearn-iris", None, "ok", "2", None),
    ]
    assert rejects(con) == [(3, "bytes", "bytes: the BASE64 body does not decode")]


def _blob_parquet(path, kind, body, *, snake=False):
    """A blob-sink Parquet object: the 2025 marshaller (camelCase, base64 string) or the older
    one (snake_case, raw binary)."""
    names = ["url", "bytes", "contentType", "reqType", "id", "sourceUri", "inferenceService",
             "namespace", "component", "endpoint", "metadata", "annotations", "certName",
             "tlsSkipVerify"]
    if snake:
        names = ["url", "bytes", "content_type", "req_type", "id", "source_uri",
                 "inference_service", "namespace", "component", "endpoint", "metadata",
                 "annotations", "cert_name", "tls_skip_verify"]
    payload = body.encode() if snake else base64.b64encode(body.encode()).decode()
    values = ["http://sink/", payload, "application/json",
              f"org.kubeflow.serving.inference.{kind}", "p-0001", "http://localhost:9081/",
              "income", "ml", "predictor", "", "{}", "", "", False]
    table = pa.table({n: [v] for n, v in zip(names, values, strict=True)})
    pq.write_table(table, path)


@pytest.mark.parametrize("snake", [False, True], ids=["base64-camelcase", "binary-snakecase"])
def test_blob_sink_parquet(con, tmp_path, snake):
    _blob_parquet(tmp_path / "p-0001-request.parquet", "request",
                  '{"instances": [{"age": 39, "workclass": "State-gov"}]}', snake=snake)
    _blob_parquet(tmp_path / "p-0001-response.parquet", "response",
                  '{"predictions": [{"predicted_label": ">50K", "probability": 0.7}]}',
                  snake=snake)
    report = tk.load(con, tmp_path)
    assert [(f.format, f.rows_read) for f in report.files] == [("kserve", 1), ("kserve", 0)]
    got = con.execute("SELECT request_id, endpoint, prediction, score, age, workclass "
                      "FROM requests").fetchall()
    assert got == [("p-0001", "income", ">50K", pytest.approx(0.7), 39.0, "State-gov")]


def test_forced_format_and_sniffing():
    reader = READERS["kserve"]
    assert reader.sniff(KS / "http_echo.txt", (KS / "http_echo.txt").read_bytes()) == "requests"
    assert reader.sniff(KS / "x.txt", b"just a log line\nanother\n") is None
    assert reader.sniff(KS / "requests.csv", b"request_id,ts,latency_ms\n") is None


@pytest.mark.realdata
def test_real_event_display_dump(con):
    report = tk.load(con, realdata("kserve", "event_display_sklearn_iris_2021.txt"))
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (2, 2, 0)
    assert rows(con, ", f0, f1, f2, f3") == [
        ("0009174a-24a8-4603-b098-09c8799950e9:0", at("2021-04-10T00:23:26.078952Z"),
         pytest.approx(1.783202), "sklearn-iris", "sklearn-iris", None, "ok", "1", None,
         6.8, 2.8, 4.8, 1.4),
        ("0009174a-24a8-4603-b098-09c8799950e9:1", at("2021-04-10T00:23:26.078952Z"),
         pytest.approx(1.783202), "sklearn-iris", "sklearn-iris", None, "ok", "1", None,
         6.0, 3.4, 4.5, 1.6),
    ]


@pytest.mark.realdata
def test_real_http_echo_dump(con):
    report = tk.load(con, realdata("kserve", "http_echo_logger_v1_2020.txt"))
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (2, 2, 0)
    got = rows(con, ", f0")
    assert [(r[0], r[3], r[6], r[7], r[9]) for r in got] == [
        ("3ba84918-209f-4d8d-ae38-b041e5e4a328:0", "iris", "ok", "1", 6.8),
        ("3ba84918-209f-4d8d-ae38-b041e5e4a328:1", "iris", "ok", "1", 6.0),
    ]
    assert got[0][2] == pytest.approx(4.068506)  # 15.820509751 - 15.816441245 s
