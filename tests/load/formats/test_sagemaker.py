"""SageMaker Model Monitor data capture, ground truth and merged records."""

from __future__ import annotations

import shutil

import pytest

import toolkit as tk
from tests.conftest import realdata
from tests.load.formats._helpers import FIXTURES, at, counts_hold, rejects
from toolkit.load.formats import READERS

SM = FIXTURES / "sagemaker"
CAPTURE = (SM / "capture" / "churn-endpoint" / "AllTraffic" / "2021" / "05" / "18" / "00" /
           "20-45-950-c13afd5c-02c6-49bb-89d3-3e725c81f9e7.jsonl")
NAMES = ["account_length", "vmail_messages", "day_mins", "day_calls"]


def test_csv_capture_rows_features_and_rejects(con):
    report = tk.load(con, CAPTURE, features=NAMES)
    (file,) = report.files
    assert (file.table, file.format) == ("requests", "sagemaker")
    # 8 lines; line 3 holds a request of two records: 9 rows, 3 of them rejected
    assert (file.rows_read, file.rows_loaded, file.rows_rejected) == (9, 6, 3)
    rows = con.execute(
        "SELECT request_id, ts, endpoint, model_name, prediction, score, account_length, "
        "vmail_messages, day_mins, day_calls FROM requests ORDER BY ts, request_id"
    ).fetchall()
    p = [0.036397725343704224, 0.5217539072036743, 0.017852725461125374, 0.9562002420425415,
         0.3791300654411316]
    expected = [
        ("f04a8538-696c-4648-8064-8b680b2e3318", at("2021-05-18T00:21:48Z"), "0", 1 - p[0],
         132.0, 10.0, 182.9, 54.0),
        ("58", at("2021-05-18T00:29:02Z"), "1", p[1], 41.0, 0.0, 159.3, 66.0),
        ("3036be7c-b824-4b59-8735-2605bd5ea38e:0", at("2021-05-18T00:30:00Z"), "0", 1 - p[2],
         85.0, 0.0, 210.3, 66.0),
        ("3036be7c-b824-4b59-8735-2605bd5ea38e:1", at("2021-05-18T00:30:00Z"), "1", p[3],
         130.0, 0.0, 263.7, 113.0),
        ("44029db5-953e-48ec-a803-8c2d386487fa", at("2021-05-18T00:31:00Z"), "0", 1 - p[4],
         61.0, 0.0, 260.0, 123.0),
        ("ce513d89-74af-4a95-9f63-d0099b6a004f", at("2021-05-18T00:35:00Z"), None, None,
         146.0, 0.0, 160.1, 63.0),
    ]
    assert len(rows) == len(expected)
    for got, want in zip(rows, expected, strict=True):
        rid, ts, prediction, score, *features = want
        assert got[:2] == (rid, ts)
        assert got[2:4] == ("churn-endpoint", "AllTraffic")  # from the capture folder layout
        assert got[4] == prediction
        assert got[5] == (pytest.approx(score, abs=1e-12) if score is not None else None)
        assert list(got[6:]) == features
    assert rejects(con) == [
        (5, "captureData.endpointInput.data",
         "captureData.endpointInput.data: the BASE64 payload does not decode"),
        (6, "captureData.endpointInput.data",
         "captureData.endpointInput.data: the input record has 5 value(s); expected 4 "
         "(one per name in features)"),
        (7, None, "not valid JSON (a truncated or corrupt line)"),
    ]
    assert con.execute("SELECT DISTINCT file FROM rejects").fetchall() == [(str(CAPTURE),)]
    raw = con.execute("SELECT raw FROM rejects WHERE row_number = 5").fetchone()[0]
    assert '"eventId":"bad00000-0000-4000-8000-000000000005"' in raw
    assert con.execute("SELECT format FROM loads").fetchone()[0] == "sagemaker"
    kinds = dict(con.execute("SELECT name, kind FROM features").fetchall())
    assert kinds == {n: "numeric" for n in NAMES}
    counts_hold(con)


def test_ids_stay_text_and_reload_is_a_no_op(con):
    tk.load(con, CAPTURE, features=NAMES)
    assert con.execute("SELECT typeof(request_id) FROM requests LIMIT 1").fetchone()[0] == \
        "VARCHAR"
    again = tk.load(con, CAPTURE, features=NAMES)
    assert again.files[0].status == "unchanged"
    assert con.execute("SELECT count(*) FROM requests").fetchone()[0] == 6


def test_positional_features_default_to_f0_and_mapping_renames(con, tmp_path):
    report = tk.load(con, CAPTURE)
    assert "positional inputs named f0..f3" in report.files[0].notes[-1]
    assert con.execute("SELECT f0, f3 FROM requests WHERE request_id = '58'").fetchone() == \
        (41.0, 66.0)
    # the mapping renames a positional column like any source column
    other = tk.connect()
    copy = tmp_path / CAPTURE.name
    shutil.copy(CAPTURE, copy)
    tk.load(other, copy, mapping={"columns": {"account_length": "f0"}})
    columns = [c for (c,) in other.execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = 'requests'").fetchall()]
    assert "account_length" in columns and "f0" not in columns and "f1" in columns
    assert other.execute("SELECT account_length FROM requests WHERE request_id = '58'"
                         ).fetchone()[0] == 41.0


def test_json_jsonlines_and_base64_json_payloads(con):
    report = tk.load(con, SM / "capture_json.jsonl")
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (6, 6, 0)
    rows = con.execute(
        "SELECT request_id, prediction, score, f0, f1, f2, f3, age, workclass FROM requests "
        "ORDER BY ts, request_id"
    ).fetchall()
    assert rows == [
        ("50ef5ec7-4d6b-4606-b13d-803c7416f853", "1", pytest.approx(0.989977359771728),
         28.0, 2.0, 133937.0, 9.0, None, None),
        ("74e40c99-2d94-4a6d-a21e-f0222769012e:0", "1", pytest.approx(0.989977359771728),
         28.0, 2.0, 133937.0, 9.0, None, None),
        # predicted 0 with score 0.0601 (the positive-class probability): confidence 0.9399
        ("74e40c99-2d94-4a6d-a21e-f0222769012e:1", "0", pytest.approx(1 - 0.06010060757398605),
         43.0, 2.0, 72338.0, 12.0, None, None),
        ("7:0", "1", pytest.approx(0.5041388273239136), 34.0, 2.0, 162604.0, 11.0, None, None),
        ("7:1", "0", pytest.approx(1 - 0.09185617417097092), 20.0, 2.0, 258509.0, 11.0, None,
         None),
        # BASE64 JSON: named features, a string label with its own probability
        ("7ddb2d7c-4d6a-4e67-a68e-23870399829d", "<=50K", pytest.approx(0.82), None, None, None,
         None, 39.0, "State-gov"),
    ]
    kinds = dict(con.execute("SELECT name, kind FROM features").fetchall())
    assert kinds["workclass"] == "categorical" and kinds["age"] == "numeric"


def test_merged_records_load_requests_with_their_labels(con):
    report = tk.load(con, SM / "merged.jsonl")
    assert (report.files[0].table, report.rows_loaded, report.rows_rejected) == ("requests", 3, 0)
    joined = con.execute(
        "SELECT r.request_id, r.prediction, l.label, l.labeled_at FROM requests r "
        "JOIN labels l USING (request_id) ORDER BY r.ts, r.request_id"
    ).fetchall()
    assert joined == [("95", "1", "0", None), ("7:0", "1", "0", None), ("7:1", "1", "1", None)]
    counts_hold(con)


def test_batch_transform_capture_takes_its_time_from_the_hour_folder(con):
    path = SM / "batch" / "churn-batch" / "2024" / "01" / "19" / "20" / "ae4ec948-batch-capture.jsonl"
    report = tk.load(con, path)
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (4, 4, 0)
    rows = con.execute(
        "SELECT request_id, ts, endpoint, prediction, score, f0, f1, f2, f3 FROM requests "
        "ORDER BY request_id"
    ).fetchall()
    hour = at("2024-01-19T20:00:00Z")
    # the file's records are one batch run, labelled by its time
    run = "batch-transform:2024-01-19T20:00:00+00:00"
    assert rows == [
        ("94bcc22a-0462-4bd1-92c9-b46a5aaec1aa:0", hour, run, "1",
         pytest.approx(0.9899773597717285), 28.0, 2.0, 133937.0, 9.0),
        ("94bcc22a-0462-4bd1-92c9-b46a5aaec1aa:1", hour, run, "0",
         pytest.approx(1 - 0.06010060757398605), 43.0, 2.0, 72338.0, 12.0),
        ("ae4ec948-edc0-4195-be9c-0b15b6ca114f", hour, run, "1",
         pytest.approx(0.989977359771728), 28.0, 2.0, 133937.0, 9.0),
        # CSV: the input fields, then the output field
        ("bd6c3be0-5902-4008-afc2-538b3be3bf2c", hour, run, "0",
         pytest.approx(1 - 0.01584203727543354), 186.0, 0.1, 137.8, 97.0),
    ]
    labels = con.execute("SELECT request_id, label FROM labels ORDER BY request_id").fetchall()
    assert labels == [("94bcc22a-0462-4bd1-92c9-b46a5aaec1aa:0", "0"),
                      ("94bcc22a-0462-4bd1-92c9-b46a5aaec1aa:1", "1"),
                      ("ae4ec948-edc0-4195-be9c-0b15b6ca114f", "1"),
                      ("bd6c3be0-5902-4008-afc2-538b3be3bf2c", "1")]


def test_ground_truth_upload_loads_into_labels(con):
    path = SM / "groundtruth" / "2021" / "05" / "18" / "01" / "gt-upload.jsonl"
    report = tk.load(con, path)
    assert (report.files[0].table, report.rows_read, report.rows_loaded) == ("labels", 4, 4)
    labels = con.execute("SELECT request_id, label, labeled_at FROM labels ORDER BY request_id"
                         ).fetchall()
    hour = at("2021-05-18T01:00:00Z")
    assert labels == [("3036be7c-b824-4b59-8735-2605bd5ea38e:0", "1", hour),
                      ("3036be7c-b824-4b59-8735-2605bd5ea38e:1", "0", hour),
                      ("58", "0", hour),
                      ("f04a8538-696c-4648-8064-8b680b2e3318", "1", hour)]
    # the ground truth joins the capture on inferenceId ("58") or eventId
    tk.load(con, CAPTURE, features=NAMES)
    matched = con.execute("SELECT count(*) FROM requests JOIN labels USING (request_id)"
                          ).fetchone()[0]
    assert matched == 4


def test_folder_of_captures_mixed_with_a_generic_table(con, tmp_path):
    folder = tmp_path / "export"
    shutil.copytree(SM / "capture", folder / "capture")
    (folder / "events.jsonl").write_text(
        '{"ts": "2021-05-18T00:00:00Z", "kind": "deploy", "artifact": "model", "version": "v2"}\n')
    report = tk.load(con, folder, features=NAMES)
    formats = {f.table: f.format for f in report.files}
    assert formats == {"events": "jsonl", "requests": "sagemaker"}
    assert con.execute("SELECT count(*) FROM requests").fetchone()[0] == 6


def test_sniff_only_claims_capture_lines():
    reader = READERS["sagemaker"]
    assert reader.sniff(CAPTURE, CAPTURE.read_bytes()[:4096]) == "requests"
    assert reader.sniff(CAPTURE, b'{"request_id": "a", "ts": "2026-03-02T00:00:00Z"}\n') is None


REAL_CAPTURES = {
    # file: (rows read = loaded, features); every real capture line loads
    "capture_SageMaker_ModelMonitoring.jsonl": (12, 69),
    "capture_SageMaker_ModelMonitoring_outputs.jsonl": (9, 69),
    "capture_sm_model_monitor_introduction.jsonl": (3, 69),
    "capture_model_quality_churn_sdk.jsonl": (6, 69),
    "capture_SageMaker_Monitoring_Bias_Drift_for_Endpoint.jsonl": (3, 14),
    "capture_SageMaker_Monitoring_Feature_Attribution_Drift_for_Endpoint.jsonl": (3, 14),
    "capture_sm_clarify_model_bias_monitor_for_endpoint_json.jsonl": (3, 14),
}


@pytest.mark.realdata
@pytest.mark.parametrize("name", sorted(REAL_CAPTURES))
def test_every_real_capture_file_loads(con, name):
    report = tk.load(con, realdata("sagemaker", name))
    rows, features = REAL_CAPTURES[name]
    assert [(f.format, f.rows_read, f.rows_loaded, f.rows_rejected) for f in report.files] == \
        [("sagemaker", rows, rows, 0)]
    assert con.execute("SELECT count(*) FROM features").fetchone()[0] == features
    missing = con.execute("SELECT count(*) FROM requests WHERE prediction IS NULL OR score "
                          "NOT BETWEEN 0.5 AND 1").fetchone()[0]
    assert missing == 0  # a prediction and its confidence for every captured answer


@pytest.mark.realdata
def test_real_csv_captures(con):
    path = realdata("sagemaker", "capture_SageMaker_ModelMonitoring.jsonl")
    report = tk.load(con, path)
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (12, 12, 0)
    columns = con.execute("SELECT count(*) FROM features").fetchone()[0]
    assert columns == 69  # the churn model's 69 CSV inputs, named f0..f68
    first = con.execute(
        "SELECT request_id, ts, prediction, score, f0, f68 FROM requests ORDER BY ts, f0 LIMIT 1"
    ).fetchone()
    assert first[1] == at("2020-11-09T21:33:04Z")
    assert first[0] in ("87947a31-1816-44f3-b1a3-9781488009a0",
                        "996d9368-e36f-45c4-8fe5-e3f675ec2cfe")
    assert first[2] == "0"


@pytest.mark.realdata
def test_real_captures_with_inference_ids_join_on_them(con):
    path = realdata("sagemaker", "capture_model_quality_churn_sdk.jsonl")
    tk.load(con, path)
    ids = [r for (r,) in con.execute(
        "SELECT request_id FROM requests ORDER BY ts").fetchall()]
    assert ids == ["57", "58", "58", "59", "57", "58"]
    score = con.execute("SELECT prediction, score FROM requests WHERE ts = '2021-02-05 04:15:00Z'"
                        ).fetchone()
    assert score == ("1", pytest.approx(0.5217539072036743))


@pytest.mark.realdata
def test_real_jsonlines_and_json_captures(con):
    for name in ("capture_SageMaker_Monitoring_Bias_Drift_for_Endpoint.jsonl",
                 "capture_sm_clarify_model_bias_monitor_for_endpoint_json.jsonl"):
        tk.load(con, realdata("sagemaker", name))
    rows = con.execute("SELECT request_id, prediction, round(score, 6), f0, f2 FROM requests "
                       "ORDER BY ts, request_id").fetchall()
    assert rows == [
        ("50ef5ec7-4d6b-4606-b13d-803c7416f853", "1", 0.989977, 28.0, 133937.0),
        ("74e40c99-2d94-4a6d-a21e-f0222769012e:0", "1", 0.989977, 28.0, 133937.0),
        ("74e40c99-2d94-4a6d-a21e-f0222769012e:1", "1", 0.504139, 43.0, 72338.0),
        ("7ddb2d7c-4d6a-4e67-a68e-23870399829d", "1", 0.989977, 28.0, 133937.0),
        ("9066ac80-dde1-4370-a73e-ab997e2544f1:0", "1", 0.989977, 28.0, 133937.0),
        ("9066ac80-dde1-4370-a73e-ab997e2544f1:1", "1", 0.504139, 43.0, 72338.0),
    ]


@pytest.mark.realdata
def test_real_merged_records(con):
    report = tk.load(con, realdata("sagemaker", "merged_groundtruth_endpoint.jsonl"))
    # one request of 334 instances (inferenceId 7) and one of a single instance (95)
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (335, 335, 0)
    assert con.execute("SELECT count(*) FROM labels").fetchone()[0] == 335
    first = con.execute(
        "SELECT r.prediction, round(r.score, 6), l.label FROM requests r JOIN labels l "
        "USING (request_id) WHERE request_id = '7:0'").fetchone()
    assert first == ("1", 0.989977, "0")
    # the notebook uploads made-up ground truth: predictions agree with 109 of the 335 labels
    agree = con.execute(
        "SELECT count_if(prediction = label) FROM requests JOIN labels USING (request_id)"
    ).fetchone()[0]
    assert agree == 109
    counts_hold(con)


@pytest.mark.realdata
def test_real_batch_transform_records_without_time_are_rejected_with_a_note(con):
    report = tk.load(con, realdata("sagemaker", "merged_groundtruth_batch_transform.jsonl"))
    (file,) = report.files
    # 334 + 1 + 1 instances; no inferenceTime and no hour folder in this path
    assert (file.rows_read, file.rows_loaded, file.rows_rejected) == (336, 0, 336)
    assert "their time is unknown" in "; ".join(file.notes)
    reasons = con.execute("SELECT column_name, reason, count(*) FROM rejects GROUP BY ALL "
                          "ORDER BY 3").fetchall()
    # the file mixes two models: the churn CSV record has 69 inputs, the others 14
    assert reasons == [
        ("captureData.batchTransformOutput.data", "captureData.batchTransformOutput.data: the "
         "input record has 69 value(s); expected 14 (as most records of the file)", 1),
        ("ts", "ts: required value is missing", 335),
    ]
