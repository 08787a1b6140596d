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
