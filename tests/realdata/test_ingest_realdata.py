"""Ingest of every real export in ``../shared/realdata`` with the shipped mappings (issue 20).

Each test loads a file or folder as a user would (``tk.load`` with ``mapping="<name>"``) and
checks the exact row counts (rows read = loaded + rejected, every reject explained) and that
key values equal the source file's values read independently with pandas / json.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

import toolkit as tk
from tests.conftest import realdata

pytestmark = pytest.mark.realdata


def _counts_hold(con, report) -> None:
    for f in report.files:
        assert f.rows_read == f.rows_loaded + f.rows_rejected, f
    rejects = con.execute("SELECT count(*), count(reason) FROM rejects").fetchone()
    assert rejects == (report.rows_rejected, report.rows_rejected)


def test_alibaba_genai_folder(con):
    folder = realdata("alibaba_genai_2026")
    report = tk.load(con, folder, mapping="alibaba-genai")
    _counts_hold(con, report)
    by_name = {f.source.rsplit("/", 1)[-1]: f for f in report.files}
    assert len(by_name) == 13 and all(f.status == "loaded" for f in report.files)
    # every file loads whole: its rows are pandas' rows
    for name, f in by_name.items():
        rows = len(pd.read_csv(folder / name))
        assert (f.rows_read, f.rows_loaded, f.rows_rejected) == (rows, rows, 0), name
    assert by_name["lora_request_trace.csv.gz"].table == "requests"
    assert report.rows_read == 750_970

    source = pd.read_csv(folder / "lora_request_trace.csv.gz")
    failed = source[source["predict_status"] == "FAILED"]
    assert len(failed) == 398
    assert con.execute("SELECT count(*) FROM requests WHERE status = 'error'").fetchone() == (
        398,)
    assert con.execute("SELECT count(*) FROM requests WHERE status = 'ok'").fetchone() == (
        int((source["predict_status"] == "SUCCEED").sum()),)
    # the states no mapping entry translates are kept, reported and counted
    assert tk.summarize(con).unknown_statuses == {"pending": 30, "processing": 3}
    # failures per checkpoint, as pandas counts them
    got = dict(con.execute(
        "SELECT checkpoint_model_version_id, count(*) FROM requests WHERE status = 'error' "
        "GROUP BY 1").fetchall())
    assert got == failed["checkpoint_model_version_id"].value_counts().to_dict()
    assert con.execute("SELECT kind FROM features WHERE name = 'checkpoint_model_version_id'"
                       ).fetchone() == ("categorical",)
    # latency: seconds to milliseconds; time: naive text read as UTC
    total = con.execute("SELECT sum(latency_ms), min(ts), max(ts) FROM requests").fetchone()
    assert total[0] == pytest.approx(source["exec_time_seconds"].sum() * 1000)
    created = pd.to_datetime(source["gmt_create"], utc=True)
    assert (pd.Timestamp(total[1]), pd.Timestamp(total[2])) == (created.min(), created.max())

    # GPU duty cycle is published in percent: stored as a fraction
    duty = pd.read_csv(folder / "pod_gpu_duty_cycle_anon.csv.gz")
    mean, peak, n = con.execute("SELECT avg(value), max(value), count(*) FROM metrics "
                                "WHERE name = 'gpu_utilization'").fetchone()
    assert n == len(duty)
    assert mean == pytest.approx(duty["value"].mean() / 100)
    assert peak == pytest.approx(duty["value"].max() / 100) and peak <= 1.0
    memory = pd.read_csv(folder / "pod_memory_util_anon.csv.gz")
    assert con.execute("SELECT avg(value) FROM metrics WHERE name = 'memory_utilization'"
                       ).fetchone()[0] == pytest.approx(memory["value"].mean())
    first = pd.to_datetime(duty["timestamp_anon"].min(), unit="s", utc=True)
    assert pd.Timestamp(con.execute("SELECT min(ts) FROM metrics WHERE name = "
                                    "'gpu_utilization'").fetchone()[0]) == first
    hosts = con.execute("SELECT count(DISTINCT host) FROM metrics WHERE name = "
                        "'gpu_utilization'").fetchone()[0]
    assert hosts == duty["container_ip"].nunique()


@pytest.mark.parametrize(("name", "rows"), [("AzureLLMInferenceTrace_code.csv", 8819),
                                            ("AzureLLMInferenceTrace_conv.csv", 19366)])
def test_azure_llm_trace(con, name, rows):
    path = realdata("azure_llm_inference_2023", name)
    report = tk.load(con, path, mapping="azure-llm")
    _counts_hold(con, report)
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (rows, rows, 0)
    source = pd.read_csv(path)
    assert len(source) == rows
    got = con.execute("SELECT sum(input_tokens), sum(output_tokens), min(ts), max(ts) "
                      "FROM requests").fetchone()
    assert got[:2] == (source["ContextTokens"].sum(), source["GeneratedTokens"].sum())
    stamps = pd.to_datetime(source["TIMESTAMP"], utc=True)
    # DuckDB keeps microseconds; the trace has 100 ns digits
    assert abs(pd.Timestamp(got[2]) - stamps.min()) < pd.Timedelta("1us")
    assert abs(pd.Timestamp(got[3]) - stamps.max()) < pd.Timedelta("1us")


def test_mooncake_trace(con):
    path = realdata("mooncake", "conversation_trace.jsonl")
    report = tk.load(con, path, mapping="mooncake")
    _counts_hold(con, report)
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (
        len(records), len(records), 0) == (12031, 12031, 0)
    got = con.execute("SELECT sum(input_tokens), sum(output_tokens), "
                      "epoch_ms(max(ts)) - epoch_ms(min(ts)), min(ts) FROM requests").fetchone()
    assert got[0] == sum(r["input_length"] for r in records)
    assert got[1] == sum(r["output_length"] for r in records)
    span = max(r["timestamp"] for r in records) - min(r["timestamp"] for r in records)
    assert got[2] == span
    # relative milliseconds are placed after the mapping's declared origin, never in 1970
    assert pd.Timestamp(got[3]) == pd.Timestamp("2025-02-21T00:00:00Z")
    # the block hashes land in the canonical prefix_hashes column, not as a feature
    assert con.execute("SELECT count(*) FROM duckdb_columns() WHERE table_name = 'requests' "
                       "AND column_name = 'hash_ids'").fetchone() == (0,)
    assert con.execute("SELECT count(*) FROM features").fetchone() == (0,)
    first = json.loads(con.execute("SELECT CAST(prefix_hashes AS VARCHAR) FROM requests "
                                   "ORDER BY ts, request_id LIMIT 1").fetchone()[0])
    assert first == sorted(records, key=lambda r: r["timestamp"])[0]["hash_ids"]


_SAGEMAKER = [
    ("capture_SageMaker_ModelMonitoring.jsonl", 12, 0),
    ("capture_SageMaker_ModelMonitoring_outputs.jsonl", 9, 0),
    ("capture_SageMaker_Monitoring_Bias_Drift_for_Endpoint.jsonl", 3, 0),
    ("capture_SageMaker_Monitoring_Feature_Attribution_Drift_for_Endpoint.jsonl", 3, 0),
    ("capture_model_quality_churn_sdk.jsonl", 6, 0),
    ("capture_sm_clarify_model_bias_monitor_for_endpoint_json.jsonl", 3, 0),
    ("capture_sm_model_monitor_introduction.jsonl", 3, 0),
    ("merged_groundtruth_endpoint.jsonl", 335, 0),
]


@pytest.mark.parametrize(("name", "loaded", "rejected"), _SAGEMAKER)
def test_sagemaker_capture(con, name, loaded, rejected):
    path = realdata("sagemaker", name)
    report = tk.load(con, path)
    _counts_hold(con, report)
    assert [f.format for f in report.files] == ["sagemaker"]
    assert (report.rows_loaded, report.rows_rejected) == (loaded, rejected)
    # every capture record is in the loaded ids: its inference id, else its event id (then
    # ":<n>" per instance when a record holds several)
    metas = [json.loads(line)["eventMetadata"] for line in path.read_text().splitlines()
             if line.strip()]
    events = {m.get("inferenceId") or m["eventId"] for m in metas}
    ids = {i.split(":")[0] for (i,) in con.execute("SELECT request_id FROM requests").fetchall()}
    assert ids == events


def test_sagemaker_batch_transform_with_a_run_time(con):
    path = realdata("sagemaker", "merged_groundtruth_batch_transform.jsonl")
    report = tk.load(con, path, run_time="2026-01-01T00:00:00Z")
    _counts_hold(con, report)
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (336, 335, 1)
    # the one reject: the churn record whose 69 inputs do not fit the file's 14-input records
    assert con.execute("SELECT reason FROM rejects").fetchall() == [(
        "captureData.batchTransformOutput.data: the input record has 69 value(s); expected 14 "
        "(as most records of the file)",)]


@pytest.mark.parametrize("name", ["event_display_sklearn_iris_2021.txt",
                                  "http_echo_logger_v1_2020.txt"])
def test_kserve_dump(con, name):
    path = realdata("kserve", name)
    report = tk.load(con, path)
    _counts_hold(con, report)
    assert [f.format for f in report.files] == ["kserve"]
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (2, 2, 0)
