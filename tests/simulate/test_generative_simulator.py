"""The generative service simulator: its tables have the properties it states, and each failure
mode's effect is measurable in them (checked with pandas/numpy on the generated tables)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import toolkit as tk
from toolkit.errors import InvalidParameterError
from toolkit.simulate.generative import MODES, ingest_case, make_case, write_case
from toolkit.simulate.generative.plan import KV_FULL

ROWS = 20_000


def _tables(mode: str, seed: int = 1, rows: int = ROWS):
    case = make_case(mode, seed=seed, rows=rows)
    return case, case.tables()


def _windows(case, requests: pd.DataFrame):
    base = requests[(requests.ts >= case.baseline.start) & (requests.ts < case.baseline.end)]
    inc = requests[(requests.ts >= case.incident.start) & (requests.ts < case.incident.end)]
    return base, inc


@pytest.fixture(scope="module")
def healthy():
    return _tables("none", seed=3)


@pytest.fixture(scope="module")
def exhausted():
    return _tables("kv_cache_exhaustion", seed=2)


def test_same_arguments_same_tables_and_unknown_mode_refused():
    a = make_case("prefix_cache_regression", seed=5, rows=2_000).tables()
    b = make_case("prefix_cache_regression", seed=5, rows=2_000).tables()
    pd.testing.assert_frame_equal(a.requests, b.requests)
    pd.testing.assert_frame_equal(a.metrics, b.metrics)
    c = make_case("prefix_cache_regression", seed=6, rows=2_000).tables()
    assert not a.requests["input_tokens"].equals(c.requests["input_tokens"])
    with pytest.raises(InvalidParameterError, match="Unknown generative failure mode"):
        make_case("covariate_shift", seed=1, rows=2_000)
    with pytest.raises(InvalidParameterError, match="rows must be"):
        make_case("none", seed=1, rows=10)


def test_request_columns_and_token_invariants(healthy):
    case, t = healthy
    r = t.requests
    for column in ("input_tokens", "output_tokens", "cached_tokens", "ttft_ms", "tpot_ms",
                   "queue_ms", "finish_reason", "preemptions", "params", "template_version",
                   "adapter"):
        assert column in r.columns, column
    assert len(r) == ROWS and r["request_id"].is_unique and r["ts"].is_monotonic_increasing
    # cached tokens are a block-aligned part of the prompt
    assert (r["cached_tokens"] >= 0).all() and (r["cached_tokens"] <= r["input_tokens"]).all()
    assert (r["cached_tokens"] % 16 == 0).all()
    assert 0.1 < r["cached_tokens"].sum() / r["input_tokens"].sum() < 0.8
    ok = r[r["status"] == "ok"]
    # a request that reached max_tokens is cut there: finish_reason length
    limit = ok["params"].map(lambda p: json.loads(p)["max_tokens"])
    assert (ok["output_tokens"] <= limit).all()
    assert ((ok["output_tokens"] == limit) == (ok["finish_reason"] == "length")).all()
    # end-to-end latency = TTFT + TPOT * (output tokens - 1)
    many = ok[ok["output_tokens"] > 1]
    expected = many["ttft_ms"] + many["tpot_ms"] * (many["output_tokens"] - 1)
    np.testing.assert_allclose(many["latency_ms"], expected, rtol=1e-4, atol=0.05)


def test_ttft_is_queue_plus_prefill_and_rises_with_the_queue(exhausted):
    case, t = exhausted
    r = t.requests[t.requests["status"] == "ok"]
    # TTFT = queue + prefill (+ waiting behind a long prefill): never below the queue time
    assert (r["ttft_ms"] >= r["queue_ms"]).all()
    queued = r["queue_ms"] > 1_000
    assert queued.sum() > 100
    assert r.loc[queued, "ttft_ms"].median() > 10 * r.loc[~queued, "ttft_ms"].median()
    # TTFT increases with the queue time (rank correlation over requests)
    assert r["queue_ms"].corr(r["ttft_ms"], method="spearman") > 0.5


def _kv_per_request(t) -> pd.Series:
    m = t.metrics[t.metrics["name"] == "kv_cache_usage"][["ts", "host", "value"]]
    m = m.assign(minute=m["ts"].dt.floor("min"))
    r = t.requests.assign(minute=t.requests["ts"].dt.floor("min"))
    joined = r.merge(m[["minute", "host", "value"]], on=["minute", "host"], how="left")
    return joined


def test_preemptions_only_when_the_kv_cache_is_full(exhausted, healthy):
    _, t = exhausted
    joined = _kv_per_request(t)
    preempted = joined[joined["preemptions"] > 0]
    assert len(preempted) > 100
    assert preempted["value"].notna().all()
    assert (preempted["value"] >= 0.9).all()
    # and the healthy service never fills its cache nor preempts
    _, h = healthy
    kv = h.metrics.loc[h.metrics["name"] == "kv_cache_usage", "value"]
    assert kv.max() < KV_FULL and (h.requests["preemptions"] == 0).all()


def test_engine_metrics_have_canonical_names_and_counters_only_reset_at_restarts(healthy):
    case, t = healthy
    m = t.metrics
    names = set(m["name"])
    assert {"kv_cache_usage", "requests_running", "requests_waiting", "preemptions_total",
            "prompt_tokens_total", "generation_tokens_total", "prefix_cache_queries_total",
            "prefix_cache_hits_total", "replicas"} <= names
    assert json.loads(m.loc[m["name"] == "kv_cache_usage", "labels"].iloc[0])["source"] == \
        "vllm:kv_cache_usage_perc"
    restarts = t.events[t.events["kind"] == "restart"]
    for host, series in m[m["name"] == "prompt_tokens_total"].groupby("host"):
        series = series.sort_values("ts")
        drops = series["ts"][series["value"].diff() < 0]
        for ts in drops:  # a counter only falls when its replica restarted just before
            near = restarts[(restarts["host"] == host) &
                            (abs(restarts["ts"] - ts) < pd.Timedelta(minutes=3))]
            assert len(near), (host, ts)
    hits = m[m["name"] == "prefix_cache_hits_total"].set_index(["host", "ts"])["value"]
    queries = m[m["name"] == "prefix_cache_queries_total"].set_index(["host", "ts"])["value"]
    assert (hits <= queries.loc[hits.index] + 1e-6).all()


def test_catalog_tables_lineage_and_loading(tmp_path):
    case = make_case("template_mismatch", seed=4, rows=3_000)
    assert case.endpoints()["task"].tolist() == ["generative"]
    lineage = case.lineage()
    assert "template_version" in lineage.columns
    served = set(case.tables().requests["template_version"])
    assert case.injected["template_version"] in served - set(lineage["template_version"])
    out = write_case(case, tmp_path / "raw")
    assert (out / "endpoints.csv").is_file() and (out / "truth.json").is_file()
    con = tk.connect()
    report = tk.load(con, out)
    assert report.rows_rejected == 0
    assert con.execute("SELECT count(*) FROM requests").fetchone()[0] == 3_000
    assert con.execute("SELECT task FROM endpoints").fetchall() == [("generative",)]
    labels = con.execute("SELECT DISTINCT label FROM labels ORDER BY 1").fetchall()
    assert labels == [("bad",), ("good",)]
    con.close()
    truth = json.loads((out / "truth.json").read_text())
    assert truth["task"] == "generative" and truth["failure_mode"] == "template_mismatch"
    con = ingest_case(case, tmp_path / "again")
    assert con.execute("SELECT count(DISTINCT template_version) FROM lineage").fetchone()[0] \
        == len(lineage)
    con.close()


def _share(frame: pd.DataFrame, mask) -> float:
    return float(np.mean(mask)) if len(frame) else float("nan")


def _labels_bad(t, requests):
    joined = requests.merge(t.labels, on="request_id")
    return float((joined["label"] == "bad").mean())


@pytest.mark.parametrize("mode", [m for m in MODES if m != "none"])
def test_each_mode_changes_what_it_says(mode):
    case, t = _tables(mode, seed=2)
    r = t.requests
    base, inc = _windows(case, r)
    assert len(base) > 2_000 and len(inc) > 300
    ok_b, ok_i = base[base.status == "ok"], inc[inc.status == "ok"]
    if mode == "prompt_shift":
        assert inc["input_tokens"].median() > 1.3 * base["input_tokens"].median()
        share = _share(inc, inc["adapter"] == "summarize-lora")
        assert share > _share(base, base["adapter"] == "summarize-lora") + 0.1
        assert not ((t.events["kind"] == "deploy") & (t.events["artifact"] == "model")).any()
    elif mode == "bad_release":
        assert set(inc["model_version"]) - set(base["model_version"])
        assert _labels_bad(t, inc) > 1.5 * _labels_bad(t, base)
    elif mode == "kv_cache_exhaustion":
        kv = t.metrics[t.metrics["name"] == "kv_cache_usage"]
        kv_i = kv[(kv.ts >= case.incident.start) & (kv.ts < case.incident.end)]
        assert kv_i["value"].median() > KV_FULL
        assert ok_i["preemptions"].mean() > 0.3 and ok_b["preemptions"].sum() == 0
        assert ok_i["ttft_ms"].quantile(0.9) > 5 * ok_b["ttft_ms"].quantile(0.9)
    elif mode == "prefill_interference":
        cut = base["input_tokens"].median()
        short_b, short_i = ok_b[ok_b.input_tokens <= cut], ok_i[ok_i.input_tokens <= cut]
        assert short_i["ttft_ms"].quantile(0.9) > 1.5 * short_b["ttft_ms"].quantile(0.9)
        ratio = ok_i["tpot_ms"].median() / ok_b["tpot_ms"].median()
        assert 0.8 < ratio < 1.25  # decode speed unchanged
    elif mode == "prefix_cache_regression":
        hit_b = ok_b["cached_tokens"].sum() / ok_b["input_tokens"].sum()
        hit_i = ok_i["cached_tokens"].sum() / ok_i["input_tokens"].sum()
        assert hit_i < hit_b - 0.08
        assert 0.9 < ok_i["input_tokens"].median() / ok_b["input_tokens"].median() < 1.1
        assert abs(ok_i["output_tokens"].mean() / ok_b["output_tokens"].mean() - 1) < 0.1
    elif mode == "sampling_config_drift":
        temp = lambda f: f["params"].map(lambda p: json.loads(p)["temperature"])  # noqa: E731
        assert (temp(ok_i) == case.injected["temperature"]).mean() > 0.8
        assert (temp(ok_b) == case.injected["temperature"]).mean() < 0.8
        assert _share(ok_i, ok_i.finish_reason == "length") > \
            _share(ok_b, ok_b.finish_reason == "length") + 0.05
        assert set(ok_i["template_version"]) == set(ok_b["template_version"])
    elif mode == "template_mismatch":
        assert case.injected["template_version"] not in set(t.lineage["template_version"])
        assert _share(ok_i, ok_i.finish_reason == "length") > \
            _share(ok_b, ok_b.finish_reason == "length") + 0.15
        assert _labels_bad(t, inc) > 1.5 * _labels_bad(t, base)
        assert 0.8 < ok_i["ttft_ms"].median() / ok_b["ttft_ms"].median() < 1.25
    elif mode == "memory_exhaustion":
        oom = r[r["error_type"] == "oom"]
        assert len(oom) > 5 and (oom.ts >= case.onset).all()
        assert oom["input_tokens"].min() > r["input_tokens"].quantile(0.99)
        kills = t.events[t.events["kind"] == "oom_kill"]
        assert len(kills) >= 2 and (kills.ts >= case.onset).all()
    elif mode == "accelerator_fault":
        host = case.injected["host"]
        on, off = ok_i[ok_i.host == host], ok_i[ok_i.host != host]
        err_on = _share(inc[inc.host == host], inc[inc.host == host].status == "error")
        err_off = _share(inc[inc.host != host], inc[inc.host != host].status == "error")
        slower = on["tpot_ms"].median() > 1.5 * off["tpot_ms"].median()
        assert slower or err_on > err_off + 0.03
        util = t.metrics[(t.metrics.name == "gpu_utilization") & (t.metrics.host == host) &
                         (t.metrics.ts >= case.incident.start + pd.Timedelta(minutes=15)) &
                         (t.metrics.ts < case.incident.end)]
        assert (util["value"] > 0.99).mean() > 0.95  # stuck at 100% while the load varies
    elif mode == "cold_start":
        scaled = set(t.events.loc[t.events["kind"] == "scale", "host"])
        assert scaled and set(inc["host"]) & scaled
        starts = t.events[(t.events.kind == "scale")].groupby("host")["ts"].min()
        young = ok_i[ok_i.host.isin(scaled)]
        age = (young["ts"] - young["host"].map(starts)).dt.total_seconds()
        cold, warm = young[age < 120], ok_i[~ok_i.host.isin(scaled)]
        assert len(cold) > 5
        assert cold["latency_ms"].median() > 2 * warm["latency_ms"].median()
