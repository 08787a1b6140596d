"""infra.token_latency on hand-built generative cases, checked against numpy / pandas / scipy."""

from __future__ import annotations

import importlib
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tests.diagnose.conftest import make_case

mod = importlib.import_module("toolkit.diagnose.infra.token_latency")
token_latency = mod.token_latency

T0 = pd.Timestamp("2026-03-01T00:00Z")
CUT = T0 + timedelta(hours=6)
END = CUT + timedelta(hours=6)
N = 3_000  # requests per window


def requests(*, ttft_factor=1.0, tpot_factor=1.0, seed=1, failed_incident=0):
    """Two windows of N requests on two hosts; the incident's TTFT / TPOT scaled."""
    rng = np.random.default_rng(seed)
    n = 2 * N
    ts = np.r_[T0 + (CUT - T0) * np.arange(N) / N, CUT + (END - CUT) * np.arange(N) / N]
    incident = np.arange(n) >= N
    ttft = rng.gamma(4.0, 50.0, n) * np.where(incident, ttft_factor, 1.0)
    tpot = rng.gamma(20.0, 1.0, n) * np.where(incident, tpot_factor, 1.0)
    out = rng.integers(1, 400, n)
    tpot[out == 1] = np.nan  # one output token: no time per output token
    status = np.full(n, "ok", dtype=object)
    if failed_incident:
        status[rng.choice(np.flatnonzero(incident), failed_incident, replace=False)] = "error"
    return pd.DataFrame({
        "request_id": np.arange(n).astype(str), "ts": pd.DatetimeIndex(ts),
        "host": np.where(np.arange(n) % 3 == 0, "gpu-a", "gpu-b"), "ttft_ms": ttft,
        "tpot_ms": tpot, "latency_ms": ttft + np.nan_to_num(tpot) * (out - 1),
        "output_tokens": out, "input_tokens": rng.integers(10, 2000, n), "status": status})


def run(frame, **kwargs):
    con = make_case(requests=frame)
    return token_latency(con, (T0, CUT), (CUT, END), **kwargs), con


def _windows(frame):
    return frame[frame.ts < CUT], frame[frame.ts >= CUT]


def test_quantiles_goodput_and_throughput_against_numpy():
    frame = requests(ttft_factor=4.0, failed_incident=60)
    result, _ = run(frame, ttft_slo_ms=600.0, tpot_slo_ms=30.0)
    table = result.table.set_index("window")
    for name, part in zip(("baseline", "incident"), _windows(frame), strict=True):
        for latency, column in (("ttft", "ttft_ms"), ("tpot", "tpot_ms"), ("e2e", "latency_ms")):
            values = part[column].dropna().to_numpy()
            for q, label in ((0.5, "p50"), (0.9, "p90"), (0.99, "p99")):
                assert table.loc[name, f"{latency}_{label}_ms"] == pytest.approx(
                    np.quantile(values, q), rel=1e-12), (name, latency, label)
        failed = part.status == "error"
        good = ~failed & (part.ttft_ms <= 600.0) & (part.tpot_ms.isna() | (part.tpot_ms <= 30.0))
        assert table.loc[name, "goodput"] == pytest.approx(good.mean(), abs=1e-12)
        assert table.loc[name, "failed_share"] == pytest.approx(failed.mean(), abs=1e-12)
        assert table.loc[name, "tokens_per_s"] == pytest.approx(
            part.output_tokens.sum() / 6 / 3600, rel=1e-12)
    # per replica: output tokens per second of wall time, as pandas sums them
    per_host = result.throughput.set_index(["host", "window"])["tokens_per_s"]
    for (host, window), part in frame.assign(window=np.where(frame.ts < CUT, "baseline",
                                                             "incident")).groupby(
            ["host", "window"]):
        assert per_host[(host, window)] == pytest.approx(part.output_tokens.sum() / 21600)
    # the timeline: one bucket's p90 and goodput against numpy on the same rows
    width = timedelta(minutes=5)
    result5, _ = run(frame, ttft_slo_ms=600.0, tpot_slo_ms=30.0, bucket=width)
    start = CUT + timedelta(minutes=30)
    part = frame[(frame.ts >= start) & (frame.ts < start + width)]
    row = result5.timeline.set_index("bucket_start").loc[start]
    assert row["requests"] == len(part)
    assert row["ttft_p90_ms"] == pytest.approx(np.quantile(part.ttft_ms, 0.9), rel=1e-12)
    good = (part.status != "error") & (part.ttft_ms <= 600) & (
        part.tpot_ms.isna() | (part.tpot_ms <= 30))
    assert row["goodput"] == pytest.approx(good.mean())
    assert row["tokens_per_s"] == pytest.approx(part.output_tokens.sum() / 300)


def test_ttft_regression_with_decode_unchanged_fires_with_its_test():
    frame = requests(ttft_factor=4.0)
    result, _ = run(frame)
    found = {f.id: f for f in result.findings()}
    assert set(found) == {"infrastructure.ttft_regression", "infrastructure.goodput_drop"}
    ttft = found["infrastructure.ttft_regression"]
    assert ttft.severity == "high" and ttft.statistic >= 3
    assert ttft.evidence["ttft_only"] is True and ttft.evidence["decode_slowed"] is False
    assert ttft.evidence["tpot_p50_ratio"] == pytest.approx(1.0, abs=0.05)
    # the exceedance test: share above the baseline p90, two-proportion z against scipy
    base, inc = _windows(frame)
    p90 = ttft.evidence["p90_baseline_ms"]
    k = np.array([(base.ttft_ms > p90).sum(), (inc.ttft_ms > p90).sum()])
    assert ttft.evidence["exceed_share_incident"] == pytest.approx(k[1] / N)
    pooled = k.sum() / (2 * N)
    z = (k[1] - k[0]) / N / np.sqrt(pooled * (1 - pooled) * 2 / N)
    assert ttft.evidence["pvalue"] == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-6,
                                                    abs=1e-300)
    # onset: the step at CUT, located on the rows
    assert abs(pd.Timestamp(ttft.onset) - CUT) <= timedelta(minutes=10)
    # default SLOs: twice the baseline p99
    assert result.slo_source == "2 x baseline p99"
    assert result.ttft_slo_ms == pytest.approx(2 * np.quantile(base.ttft_ms, 0.99), rel=1e-12)
    drop = found["infrastructure.goodput_drop"]
    assert drop.evidence["goodput_basis"] == "ttft+tpot"
    assert drop.statistic == pytest.approx(drop.evidence["goodput_baseline"]
                                           - drop.evidence["goodput_incident"])


def test_slow_decode_shows_in_tpot_and_the_evidence():
    result, _ = run(requests(ttft_factor=2.0, tpot_factor=2.0))
    found = {f.id: f for f in result.findings()}
    assert "infrastructure.tpot_regression" in found
    assert found["infrastructure.ttft_regression"].evidence["decode_slowed"] is True
    assert found["infrastructure.ttft_regression"].evidence["ttft_only"] is False
    assert found["infrastructure.tpot_regression"].evidence["p50_ratio"] == pytest.approx(
        2.0, rel=0.05)


def test_healthy_case_has_no_finding():
    result, _ = run(requests(seed=7))
    assert result.findings() == []
    assert result.value("incident", "goodput") > 0.97


def test_case_meta_slos_are_used():
    frame = requests()
    con = make_case(requests=frame)
    con.execute("INSERT INTO case_meta VALUES ('ttft_slo_ms', '300'), ('tpot_slo_ms', '25')")
    result = token_latency(con, (T0, CUT), (CUT, END))
    assert (result.ttft_slo_ms, result.tpot_slo_ms, result.slo_source) == (300.0, 25.0,
                                                                          "case_meta")
    inc = frame[frame.ts >= CUT]
    good = (inc.ttft_ms <= 300) & (inc.tpot_ms.isna() | (inc.tpot_ms <= 25))
    assert result.value("incident", "goodput") == pytest.approx(good.mean())


def test_token_counts_only_measures_throughput_and_says_what_it_cannot():
    frame = requests()[["request_id", "ts", "input_tokens", "output_tokens"]]
    result, _ = run(frame)
    checks = {gap.check: gap.reason for gap in result.not_assessed}
    assert "no ttft_ms" in checks["infra.token_latency.ttft"]
    assert "no tpot_ms" in checks["infra.token_latency.tpot"]
    assert result.findings() == [] and result.measured == ()
    assert result.throughput["host"].unique().tolist() == ["(all)"]
    assert result.value("incident", "tokens_per_s") == pytest.approx(
        frame[frame.ts >= CUT].output_tokens.sum() / 21600)
    assert np.isnan(result.value("incident", "goodput"))


def test_without_any_token_column_it_is_not_assessed():
    frame = requests()[["request_id", "ts", "status", "latency_ms"]]
    result, _ = run(frame)
    assert result.table.empty and result.findings() == []
    assert "no ttft_ms, tpot_ms or output_tokens" in result.not_assessed[0].reason


def test_a_sparse_latency_is_not_compared():
    frame = requests(ttft_factor=5.0)
    frame.loc[frame.index[20:N], "ttft_ms"] = np.nan  # 20 baseline TTFTs left
    result, _ = run(frame)
    assert "ttft" not in result.measured
    assert any(g.check == "infra.token_latency.ttft" and "20 baseline" in g.reason
               for g in result.not_assessed)
    assert "infrastructure.ttft_regression" not in {f.id for f in result.findings()}
