"""integration.generation on hand-built cases, checked against pandas / scipy on the same rows."""

from __future__ import annotations

import importlib
import json
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial import distance

import toolkit as tk

gen = importlib.import_module("toolkit.diagnose.integration.generation")

T0 = pd.Timestamp("2026-03-01", tz="UTC")
BASELINE = (T0, T0 + pd.Timedelta("5h"))
INCIDENT = (T0 + pd.Timedelta("5h"), T0 + pd.Timedelta("10h"))
CHANGE = T0 + pd.Timedelta("6h")


def _case(tmp_path, **tables: pd.DataFrame):
    con = tk.connect(tmp_path / "case.duckdb")
    for name, table in tables.items():
        report = tk.load(con, table, table=name)
        assert report.rows_rejected == 0
    return con


def _requests(*, drift: bool = False, template: bool = False, n: int = 800,
              seed: int = 0) -> pd.DataFrame:
    """Generative requests; ``drift``: from CHANGE on temperature 1.2 and max_tokens 256
    (server defaults overriding the request's 0.7 / 512); ``template``: from CHANGE on 40% of
    the requests run with template t2 and loop to max_tokens."""
    rng = np.random.default_rng(seed)
    ts = T0 + pd.to_timedelta(np.sort(rng.uniform(0, 10 * 3600, n)), unit="s")
    after = np.asarray(ts >= CHANGE)
    temperature = np.where(after & drift, 1.2, 0.7)
    max_tokens = np.where(after & drift, 256, 512)
    wanted = rng.integers(50, 400, n) * np.where(after & drift, 1.5, 1.0)
    templates = np.where(after & template & (rng.uniform(size=n) < 0.4), "t2", "t1")
    wanted = np.where(templates == "t2", 10_000, wanted)
    output = np.minimum(wanted.astype(int), max_tokens)
    finish = np.where(output >= max_tokens, "length", "stop")
    finish = np.where(rng.uniform(size=n) < 0.02, "content_filter", finish)
    params = [json.dumps({"temperature": float(t), "max_tokens": int(m), "top_p": 0.9})
              for t, m in zip(temperature, max_tokens, strict=True)]
    return pd.DataFrame({"request_id": [f"r{k}" for k in range(n)], "ts": ts,
                         "model_version": "m1", "template_version": templates,
                         "input_tokens": rng.integers(100, 1000, n), "output_tokens": output,
                         "finish_reason": finish, "params": params})


def _split(frame: pd.DataFrame):
    b = frame[frame["ts"] < BASELINE[1]]
    return b, frame[frame["ts"] >= INCIDENT[0]]


def test_window_statistics_equal_pandas_and_scipy(tmp_path):
    frame = _requests(drift=True)
    con = _case(tmp_path, requests=frame)
    r = gen.generation(con, BASELINE, INCIDENT)
    b, i = _split(frame)
    for name, part in (("baseline", b), ("incident", i)):
        assert r.value(name, "output_mean") == pytest.approx(part["output_tokens"].mean())
        assert r.value(name, "output_var") == pytest.approx(part["output_tokens"].var(),
                                                            rel=1e-9)
        assert r.value(name, "length_share") == pytest.approx(
            (part["finish_reason"] == "length").mean())
        limit = part["params"].map(lambda p: json.loads(p)["max_tokens"])
        assert r.value(name, "at_max_share") == pytest.approx(
            (part["output_tokens"] >= limit).mean())
    ratio, p = r._output()
    welch = stats.ttest_ind(i["output_tokens"], b["output_tokens"], equal_var=False)
    assert p == pytest.approx(welch.pvalue, rel=1e-6)
    assert ratio == pytest.approx(i["output_tokens"].mean() / b["output_tokens"].mean())
    js, fp = r._finish()
    table = pd.crosstab(np.r_[["b"] * len(b), ["i"] * len(i)],
                        np.r_[b["finish_reason"], i["finish_reason"]])
    assert fp == pytest.approx(stats.chi2_contingency(table.to_numpy(),
                                                      correction=False).pvalue, rel=1e-9)
    pb, pi = table.loc["b"].to_numpy(float), table.loc["i"].to_numpy(float)
    assert js == pytest.approx(distance.jensenshannon(pb / pb.sum(), pi / pi.sum(), base=2))
    # TVD of the temperature values: the incident share after the change
    row = r.params.set_index("param").loc["temperature"]
    assert row["tvd"] == pytest.approx((i["ts"] >= CHANGE).mean())
    assert (row["baseline_value"], row["incident_value"]) == ("0.7", "1.2")
    assert r.params.set_index("param").loc["top_p", "tvd"] == 0.0


def test_sampling_drift_after_a_config_change_fires(tmp_path):
    events = pd.DataFrame({"ts": [CHANGE], "kind": ["config_change"], "artifact": ["service"],
                           "version": [None],
                           "detail": [json.dumps({"temperature": 1.2, "max_tokens": 256})]})
    con = _case(tmp_path, requests=_requests(drift=True), events=events)
    r = gen.generation(con, BASELINE, INCIDENT, bucket=timedelta(minutes=30))
    found = {f.id: f for f in r.findings()}
    assert {"integration.sampling_params_changed", "integration.truncation_rise"} <= set(found)
    assert "integration.template_outside_lineage" not in found
    drift = found["integration.sampling_params_changed"]
    assert set(drift.evidence["params"]) == {"temperature", "max_tokens"}
    assert drift.evidence["after_deploy"] is True
    assert drift.evidence["config_events"][0]["params"] == ["max_tokens", "temperature"]
    assert abs(drift.evidence["input_ratio"] - 1) < 0.1
    assert abs(drift.onset - CHANGE) <= timedelta(minutes=30)
    truncation = found["integration.truncation_rise"]
    assert truncation.evidence["length_share_incident"] > \
        truncation.evidence["length_share_baseline"] + 0.15
    assert set(truncation.evidence["params_changed"]) == {"max_tokens", "temperature"}


def test_template_outside_lineage(tmp_path):
    frame = _requests(template=True)
    lineage = pd.DataFrame({"release": ["r1"], "model_version": ["m1"],
                            "template_version": ["t1"]})
    con = _case(tmp_path, requests=frame, lineage=lineage)
    r = gen.generation(con, BASELINE, INCIDENT)
    found = {f.id: f for f in r.findings()}
    f = found["integration.template_outside_lineage"]
    _, i = _split(frame)
    outside = i[i["template_version"] == "t2"]
    inside = i[i["template_version"] == "t1"]
    assert f.evidence["known_from"] == "lineage"
    assert f.statistic == pytest.approx(len(outside) / len(i))
    assert f.evidence["versions"] == [{"model_version": "m1", "template_version": "t2",
                                       "requests": len(outside)}]
    assert f.evidence["length_share_outside"] == pytest.approx(
        (outside["finish_reason"] == "length").mean())
    assert f.evidence["length_share_inside"] == pytest.approx(
        (inside["finish_reason"] == "length").mean())
    assert f.evidence["output_ratio_outside"] == pytest.approx(
        outside["output_tokens"].mean() / inside["output_tokens"].mean())
    assert "integration.sampling_params_changed" not in found
    assert found["integration.truncation_rise"].evidence["template_outside"] is True


def test_template_known_from_the_baseline_without_lineage(tmp_path):
    con = _case(tmp_path, requests=_requests(template=True))
    r = gen.generation(con, BASELINE, INCIDENT)
    f = next(f for f in r.findings() if f.id == "integration.template_outside_lineage")
    assert f.evidence["known_from"] == "baseline"
    assert [v["template_version"] for v in f.evidence["versions"]] == ["t2"]


def test_new_model_on_a_known_template_is_no_template_mismatch(tmp_path):
    """Without lineage, a new model version served with the baseline's template is a release
    (the bench case found it flagged when known pairs were (model, template))."""
    frame = _requests()
    frame.loc[frame["ts"] >= CHANGE, "model_version"] = "m2"
    r = gen.generation(_case(tmp_path, requests=frame), BASELINE, INCIDENT)
    assert r.findings() == [] and r.templates["known"].all()


def test_healthy_generation_has_no_finding(tmp_path):
    lineage = pd.DataFrame({"release": ["r1"], "model_version": ["m1"],
                            "template_version": ["t1"]})
    con = _case(tmp_path, requests=_requests(), lineage=lineage)
    r = gen.generation(con, BASELINE, INCIDENT)
    assert r.findings() == []
    assert r.changed_params == [] and r.templates["known"].all()


def test_missing_columns_not_assessed(tmp_path):
    ts = T0 + pd.to_timedelta(np.arange(100) * 360, unit="s")
    con = _case(tmp_path, requests=pd.DataFrame({"request_id": range(100), "ts": ts,
                                                 "input_tokens": 100}))
    r = gen.generation(con, BASELINE, INCIDENT)
    assert r.table.empty and r.findings() == []
    assert "output_tokens, finish_reason, params, template_version" in r.not_assessed[0].reason
    # output lengths only: the rest says what it lacks, the output comparison runs
    frame = pd.DataFrame({"request_id": range(100), "ts": ts,
                          "output_tokens": [100] * 50 + [400] * 50})
    (tmp_path / "b").mkdir()
    r = gen.generation(_case(tmp_path / "b", requests=frame), BASELINE, INCIDENT)
    assert {g.check for g in r.not_assessed} == {
        "integration.generation:finish_reason", "integration.generation:params",
        "integration.generation:template_version"}
    assert [f.id for f in r.findings()] == ["integration.output_length_shift"]
    assert r.findings()[0].statistic == pytest.approx(4.0)


def test_params_documents_are_read_by_value_not_by_text(tmp_path):
    """Documents that differ in key order or spacing hold the same parameters; a request
    without params counts as 'unset'; at_max uses each document's own max_tokens."""
    frame = _requests(n=400)
    variants = ['{"temperature": 0.7, "max_tokens": 100}',
                '{"max_tokens":100,"temperature":0.7}',
                '{"temperature": 0.7, "max_tokens": 300}', None]
    frame["params"] = [variants[k % 4] for k in range(len(frame))]
    r = gen.generation(_case(tmp_path, requests=frame), BASELINE, INCIDENT)
    assert r.changed_params == []
    temperature = r.params.set_index("param").loc["temperature"]
    b, i = _split(frame)
    assert temperature["baseline_value"] == "0.7" and temperature["tvd"] == pytest.approx(
        abs(b["params"].isna().mean() - i["params"].isna().mean()))
    limit = frame["params"].map(lambda p: json.loads(p)["max_tokens"] if p else np.nan)
    for name, part in (("baseline", b), ("incident", i)):
        known = limit[part.index].notna()
        assert r.value(name, "at_max_share") == pytest.approx(
            (part["output_tokens"][known] >= limit[part.index][known]).mean())
