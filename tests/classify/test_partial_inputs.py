"""Regression tests for partial, oddly dated and tiny cases (issue 20, items 1 and 2).

Each test builds a small case by hand, so the expected outcome is known exactly.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

import toolkit as tk
from toolkit.classify import classify_incident
from toolkit.diagnose import REGISTRY, run_diagnostics
from toolkit.diagnose._case import MIN_WINDOW_ROWS, case_view
from toolkit.diagnose.model.prediction_shift import prediction_shift
from toolkit.errors import InvalidParameterError
from toolkit.types import Window

T0 = datetime(2026, 3, 2, tzinfo=UTC)


def load(**tables: pd.DataFrame):
    con = tk.connect()
    for name, frame in tables.items():
        assert tk.load(con, frame, table=name).rows_rejected == 0
    return con


def healthy(n: int = 2_000, seed: int = 3, **extra) -> pd.DataFrame:
    """A steady service over ``n`` minutes: latency, status, host, two features, outputs."""
    rng = np.random.default_rng(seed)
    score = rng.uniform(0.5, 1.0, n)
    frame = pd.DataFrame({
        "request_id": [f"r{k}" for k in range(n)],
        "ts": pd.date_range(T0, periods=n, freq="min"),
        "host": rng.choice(["h1", "h2", "h3"], n),
        "model_version": "v1",
        "latency_ms": rng.gamma(4.0, 10.0, n),
        "status": "ok",
        "amount": rng.lognormal(3, 1, n),
        "country": rng.choice(["fr", "de", "es"], n),
        "prediction": np.where(rng.uniform(size=n) < 0.3, "1", "0"),
        "score": score,
    })
    return frame.assign(**extra)


# -- item 1: all-NULL columns, predictions missing in a window, time outliers -------------------

def test_a_column_without_any_value_is_absent():
    # the store creates every canonical column; an LLM trace leaves prediction and score NULL
    con = load(requests=healthy(300).drop(columns=["prediction", "score"]))
    case = case_view(con)
    assert "prediction" in case.declared["requests"]
    assert "prediction" not in case.columns["requests"]
    assert not case.has("requests", "prediction") and case.has("requests", "latency_ms")
    result = prediction_shift(con, (T0, T0 + timedelta(minutes=150)),
                              (T0 + timedelta(minutes=150), T0 + timedelta(minutes=300)),
                              case=case)
    assert [g.reason for g in result.not_assessed] == ["requests carry no score or prediction"]


def test_predictions_missing_in_one_window_leave_the_class_shift_unmeasured():
    # KeyError: 'baseline' before: the NULL predictions of a window made it vanish in the pivot
    frame = healthy(400)
    frame.loc[:199, "prediction"] = None
    con = load(requests=frame)
    result = prediction_shift(con, (T0, T0 + timedelta(minutes=200)),
                              (T0 + timedelta(minutes=200), T0 + timedelta(minutes=400)))
    assert np.isnan(result.max_share_change)
    assert set(result.table["window"]) == {"incident"}
    assert result.table["requests"].sum() == 200  # only the requests with a prediction


def test_class_shares_ignore_requests_without_a_prediction():
    frame = healthy(400)
    frame["prediction"] = ["1"] * 50 + ["0"] * 100 + ["2"] * 50 + ["1"] * 60 + ["2"] * 40 + \
        [None] * 100
    con = load(requests=frame)
    result = prediction_shift(con, (T0, T0 + timedelta(minutes=200)),
                              (T0 + timedelta(minutes=200), T0 + timedelta(minutes=400)))
    # "0": 100 of 200 in the baseline, none of the 100 predicted in the incident: -50 points
    # (counting the 100 requests without a prediction as a class would make it -25)
    assert result.changed_class == "0"
    assert result.max_share_change == pytest.approx(-0.5)


@pytest.mark.parametrize("when", ["1970-01-01", "9999-12-31", "0001-01-01"])
def test_a_request_dated_by_a_broken_clock_is_left_out_of_the_span(when):
    con = load(requests=healthy(2_000))
    con.execute("INSERT INTO requests (request_id, ts, status) VALUES ('odd', ?::TIMESTAMPTZ, "
                "'ok')", [f"{when} 00:00:00+00"])
    case = case_view(con)
    assert case.span == Window(T0, T0 + timedelta(minutes=1_999, microseconds=1))
    outliers = case.span_outliers("requests")
    assert outliers.rows == 1 and when[:4].lstrip("0") in outliers.reason("requests")
    result = classify_incident(con, case=case)  # OutOfBoundsDatetime / KeyError before
    payload = json.loads(result.to_json())
    assert payload["not_assessed"][0]["check"] == "case.span"
    assert pd.Timestamp(payload["baseline"][0]) >= pd.Timestamp(T0)


def test_the_span_keeps_every_row_of_a_case_without_outliers():
    frame = healthy(500)
    # a quiet weekend is not an outlier: 5 requests two days after 8 hours of traffic
    late = healthy(5).assign(ts=pd.date_range(T0 + timedelta(days=2), periods=5, freq="min"),
                             request_id=[f"late{k}" for k in range(5)])
    con = load(requests=pd.concat([frame, late]))
    case = case_view(con)
    assert case.span_outliers("requests").rows == 0
    assert case.span.end == T0 + timedelta(days=2, minutes=4, microseconds=1)


def test_a_small_case_is_not_trimmed():
    # at most 1% of the rows may be cut: with 50 rows not even one
    con = load(requests=healthy(50))
    con.execute("INSERT INTO requests (request_id, ts) VALUES ('odd', TIMESTAMPTZ "
                "'1970-01-01 00:00:00+00')")
    case = case_view(con)
    assert case.span_outliers("requests").rows == 0
    assert case.span.start == datetime(1970, 1, 1, tzinfo=UTC)
    json.loads(classify_incident(con, case=case).to_json())


def test_a_window_outside_the_analysable_times_is_refused():
    with pytest.raises(InvalidParameterError, match="between 1678-01-01 and 2262-01-01"):
        Window("2026-01-01", "9999-12-31")
    con = load(requests=healthy(300))
    with pytest.raises(InvalidParameterError, match="between"):
        classify_incident(con, incident="2026-03-02T03:00Z/9999-12-31T00:00Z")


# -- item 2: no finding from an empty or tiny window -------------------------------------------

def test_three_requests_give_no_finding_and_say_why():
    # a SageMaker capture sample: 3 records, every feature value different; before, every
    # feature "drifted" and the verdict was data / schema_mismatch at 0.80-0.90
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"request_id": ["a", "b", "c"],
                          "ts": [T0, T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)],
                          "prediction": ["0", "0", "1"], "score": [0.7, 0.8, 0.99],
                          **{f"f{k}": rng.normal(size=3) for k in range(12)}})
    con = load(requests=frame)
    result = classify_incident(con)
    assert result.to_dict()["findings"] == []
    assert result.pathway == "undetermined"
    reasons = {g.check: g.reason for g in result.not_assessed}
    assert "fewer than 30" in reasons["data.drift"]
    assert "baseline window" in reasons["data.drift"]


def test_an_empty_baseline_window_gives_no_new_feature():
    con = load(requests=healthy(600))
    result = classify_incident(con, baseline=(T0 - timedelta(days=1), T0),
                               incident=(T0, T0 + timedelta(minutes=600)))
    assert not [f for f in result.diagnosis.findings() if f.pathway == "data"]
    assert result.pathway in ("none", "undetermined")
    reasons = {g.check: g.reason for g in result.not_assessed}
    for check in ("data.drift", "data.quality", "integration.versions", "infra.latency"):
        assert reasons[check].startswith("no requests in the baseline window"), check


def test_an_incident_at_the_start_of_the_data_classifies_with_an_empty_baseline():
    # EmptyWindowError before ("no data before the incident")
    con = load(requests=healthy(600))
    result = classify_incident(con, incident=(T0, T0 + timedelta(minutes=60)))
    assert result.baseline.end == T0
    assert result.pathway == "undetermined" or not result.diagnosis.findings()
    json.loads(result.to_json())


def test_a_baseline_given_alone_is_never_overlapped_by_the_detected_incident():
    # InvalidParameterError before: the change found inside the given baseline opened the
    # incident there, and the windows overlapped
    frame = healthy(2_000)
    frame.loc[1_000:, "latency_ms"] *= 8  # a step at minute 1000
    con = load(requests=frame)
    given = Window(T0, T0 + timedelta(minutes=1_500))
    result = classify_incident(con, baseline=given)
    assert result.detected.onset < given.end  # the change was found inside the baseline
    assert result.baseline == given
    assert result.incident.start == given.end
    assert result.incident.end >= T0 + timedelta(minutes=1_999)


@pytest.mark.parametrize("n", [MIN_WINDOW_ROWS - 1, MIN_WINDOW_ROWS])
def test_the_minimum_is_the_same_for_every_comparison(n):
    frame = healthy(2 * n)
    con = load(requests=frame)
    cut = T0 + timedelta(minutes=n)
    diagnosis = run_diagnostics(con, (T0, cut), (cut, T0 + timedelta(minutes=2 * n)))
    short = {r for r, res in diagnosis.results.items()
             if any("fewer than 30" in g.reason for g in res.not_assessed)}
    if n < MIN_WINDOW_ROWS:
        assert {"data.drift", "model.calibration", "infra.hosts", "infra.latency"} <= short
    else:
        assert not short


# -- progress ---------------------------------------------------------------------------------

def test_progress_names_each_diagnostic_before_it_runs():
    con = load(requests=healthy(300))
    calls = []
    half = T0 + timedelta(minutes=150)
    run_diagnostics(con, (T0, half), (half, T0 + timedelta(minutes=300)),
                    progress=lambda *a: calls.append(a))
    assert calls == [(i, k, len(REGISTRY)) for k, i in enumerate(REGISTRY)]
    calls.clear()
    run_diagnostics(con, (T0, half), (half, T0 + timedelta(minutes=300)),
                    ids=["infra.latency", "data.drift"], progress=lambda *a: calls.append(a))
    order = [i for i in REGISTRY if i in ("infra.latency", "data.drift")]
    assert calls == [(order[0], 0, 2), (order[1], 1, 2)]


def test_classify_reports_progress_for_the_scan_and_the_diagnosis():
    con = load(requests=healthy(600))
    calls = []
    classify_incident(con, incident=(T0 + timedelta(minutes=300), T0 + timedelta(minutes=600)),
                      progress=lambda *a: calls.append(a))
    assert [c[0] for c in calls] == list(REGISTRY)  # given windows: no scan
    calls.clear()
    classify_incident(con, progress=lambda *a: calls.append(a))
    assert [c[0] for c in calls] == list(REGISTRY) * 2  # the detection scan, then the diagnosis
    assert calls[-1][1:] == (len(REGISTRY) - 1, len(REGISTRY))


# -- item 6: metrics alone are evidence ------------------------------------------------------

def test_a_metrics_only_case_is_dated_and_diagnosed_from_its_series():
    # "The case has no requests to classify" before; now the latency series dates the
    # incident and the latency diagnostic measures it on the metric's samples
    rng = np.random.default_rng(7)
    n = 4 * 2_880  # four samples a minute for two days
    ts = T0 + (timedelta(days=2) * np.arange(n) / n)
    step = T0 + timedelta(hours=36)
    latency = rng.gamma(4.0, 50.0, n) * np.where(ts >= step, 4.0, 1.0)
    gpu = [pd.DataFrame({"ts": ts[::4], "host": f"pod-{h}", "name": "gpu_utilization",
                         "value": np.clip(rng.normal(60, 10, n // 4), 0, 100)})
           for h in range(4)]  # DCGM-style percent
    con = load(metrics=pd.concat([pd.DataFrame({"ts": ts, "host": "pod-0",
                                                "name": "latency_ms", "value": latency}),
                                  *gpu], ignore_index=True))
    result = classify_incident(con)
    assert result.window_source == "detected"
    assert abs(result.incident.start - step) <= timedelta(minutes=30)
    ids = {f.id for f in result.diagnosis.findings()}
    assert "infrastructure.latency_regression" in ids
    assert result.diagnosis["infra.latency"].source == "metrics:latency_ms"
    assert result.diagnosis["infra.accelerators"].utilization_scale == 100.0
    checks = {g.check for g in result.not_assessed}
    assert {"data.drift", "model.performance"} <= checks  # what requests would have told
    json.loads(result.to_json())


def test_an_events_only_case_classifies_from_its_events():
    events = pd.DataFrame({"ts": [T0 + timedelta(hours=h) for h in (1, 30, 30.1, 30.2, 31)],
                           "kind": ["deploy", "oom_kill", "restart", "oom_kill", "restart"],
                           "artifact": ["model", "infra", "infra", "infra", "infra"],
                           "host": ["h1", "h1", "h1", "h2", "h2"]})
    con = load(events=events)
    result = classify_incident(con, incident=(T0 + timedelta(hours=29),
                                              T0 + timedelta(hours=32)))
    payload = json.loads(result.to_json())
    # the events' span (from the first event) before the incident is the baseline
    assert payload["baseline"] == ["2026-03-02T01:00:00Z", "2026-03-03T05:00:00Z"]
    assert "infrastructure.oom_kills" in {f["id"] for f in payload["findings"]}


@pytest.mark.realdata
def test_alibaba_metric_files_alone_are_classified():
    from tests.conftest import realdata

    folder = realdata("alibaba_genai_2026")
    mappings = __import__("pathlib").Path(__file__).parent / "mappings"
    con = tk.connect()
    for name, mapping in (("pipeline_inference_data_anon.csv.gz", "alibaba_latency_ms"),
                          ("pod_gpu_duty_cycle_anon.csv.gz", "alibaba_gpu_utilization")):
        report = tk.load(con, folder / name, mapping=str(mappings / f"{mapping}.toml"))
        assert report.rows_rejected == 0
    result = classify_incident(con)
    latency = result.diagnosis["infra.latency"]
    assert latency.source == "metrics:latency_ms" and not latency.table.empty
    # the end-to-end latency of the day barely moves (p99 ratio about 1.07): no regression
    assert 0.8 < latency.p99_ratio < 1.3
    assert result.diagnosis["infra.accelerators"].utilization_scale == 100.0
    assert result.pathway == "none"  # examined (latency, GPUs) and nothing found
    json.loads(result.to_json())


# -- the real exports that crashed or misled (skipped without ../shared/realdata) -------------

MAPPINGS = __import__("pathlib").Path(__file__).parent / "mappings"


@pytest.mark.realdata
@pytest.mark.parametrize(("parts", "mapping", "windows"), [
    (("azure_llm_inference_2023", "AzureLLMInferenceTrace_code.csv"), "azure_llm",
     ("2023-11-16T18:15:00Z/2023-11-16T18:45:00Z", "2023-11-16T18:45:00Z/2023-11-16T19:15:00Z")),
    (("mooncake", "conversation_trace.jsonl"), "mooncake",
     ("1970-01-01T00:00:00Z/1970-01-01T00:30:00Z", "1970-01-01T00:30:00Z/1970-01-01T01:00:00Z")),
])
def test_llm_traces_without_outputs_classify(parts, mapping, windows):
    # KeyError: 'baseline' before, with or without windows: no prediction column
    from tests.conftest import realdata

    con = tk.connect()
    report = tk.load(con, realdata(*parts), mapping=str(MAPPINGS / f"{mapping}.toml"))
    assert report.rows_rejected == 0
    for kw in ({}, {"baseline": windows[0], "incident": windows[1]}):
        result = classify_incident(con, **kw)
        payload = json.loads(result.to_json())
        # only arrival times and token counts, and nothing moved in them: no verdict
        assert payload["pathway"] == "undetermined" and payload["findings"] == []
        reasons = {g["check"]: g["reason"] for g in payload["not_assessed"]}
        # a token trace is a generative endpoint: no class or value to shift (DESIGN 3a)
        assert reasons["model.prediction_shift"].startswith("generative endpoints: their "
                                                              "outputs are tokens")


@pytest.mark.realdata
@pytest.mark.parametrize("parts", [
    ("sagemaker", "capture_sm_model_monitor_introduction.jsonl"),
    ("sagemaker", "capture_SageMaker_ModelMonitoring.jsonl"),
    ("kserve",),
])
def test_tiny_platform_samples_abstain_instead_of_a_schema_change(parts):
    # data / schema_mismatch at 0.80-0.90 before, from 1-3 requests and an empty baseline
    from tests.conftest import realdata

    con = tk.connect()
    tk.load(con, realdata(*parts))
    result = classify_incident(con)
    payload = json.loads(result.to_json())
    assert payload["pathway"] == "undetermined"
    assert payload["findings"] == []
    reasons = {g["check"]: g["reason"] for g in payload["not_assessed"]}
    assert "fewer than 30" in reasons["data.drift"]
