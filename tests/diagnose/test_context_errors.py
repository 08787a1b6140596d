"""infra.context_errors: failures by prompt-length decile, checked against pandas / scipy."""

from __future__ import annotations

import importlib
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tests.diagnose.conftest import make_case

mod = importlib.import_module("toolkit.diagnose.infra.context_errors")
context_errors = mod.context_errors

T0 = pd.Timestamp("2026-03-01T00:00Z")
CUT = T0 + timedelta(hours=6)
END = CUT + timedelta(hours=6)
N = 5_000


def traffic(*, long_failures: str | None, seed: int = 2):
    """N requests per window; 0.5% fail at random everywhere. With ``long_failures``, half the
    incident prompts beyond 2,000 tokens fail with that error type."""
    rng = np.random.default_rng(seed)
    n = 2 * N
    ts = T0 + (END - T0) * np.arange(n) / n
    tokens = np.round(rng.lognormal(6.0, 0.8, n)).astype(int) + 1
    status = np.where(rng.random(n) < 0.005, "error", "ok").astype(object)
    error_type = np.where(status == "error", "internal_error", None).astype(object)
    http = np.where(status == "error", 500, 200)
    if long_failures:
        hit = (ts >= CUT) & (tokens > 2_000) & (rng.random(n) < 0.5)
        status[hit] = "error"
        error_type[hit] = long_failures
        http[hit] = 400 if "context" in long_failures else 500
    return pd.DataFrame({"request_id": np.arange(n).astype(str), "ts": pd.DatetimeIndex(ts),
                         "input_tokens": tokens, "status": status, "error_type": error_type,
                         "http_status": http})


def test_deciles_rates_and_concentration_against_pandas_and_scipy():
    frame = traffic(long_failures="CUDA out of memory")
    result = context_errors(make_case(requests=frame), (T0, CUT), (CUT, END))
    inc = frame[frame.ts >= CUT]
    levels = np.arange(1, 10) / 10
    assert np.allclose(result.edges, np.quantile(inc.input_tokens, levels), rtol=1e-12)
    edges = np.asarray(result.edges)
    frame["decile"] = (frame.input_tokens.to_numpy()[:, None] > edges[None, :]).sum(axis=1)
    frame["window"] = np.where(frame.ts < CUT, "baseline", "incident")
    frame["failed"] = frame.status == "error"
    expected = frame.groupby(["window", "decile"]).agg(requests=("failed", "size"),
                                                       failures=("failed", "sum"))
    got = result.table.set_index(["window", "decile"])
    assert got[["requests", "failures"]].astype(int).equals(expected.astype(int))
    assert (got.loc["incident", "oom"] + got.loc["incident", "other"]
            == got.loc["incident", "failures"]).all()
    # the timeline: requests and failures of the longest decile per time bucket
    bucket = frame.ts.dt.floor(result.timeline["bucket_start"].diff().dropna().iloc[0])
    top_rows = frame[frame.decile == 9].groupby(bucket)
    timeline = result.timeline.set_index("bucket_start")
    assert timeline["top_requests"].reindex(top_rows.size().index).tolist() == \
        top_rows.size().tolist()
    assert timeline["top_failures"].reindex(top_rows.size().index).tolist() == \
        top_rows.failed.sum().tolist()
    [finding] = result.findings()
    assert finding.id == "infrastructure.long_prompt_errors" and finding.severity == "high"
    ev = finding.evidence
    inc = frame[frame.window == "incident"]
    top = inc.decile == 9
    assert ev["top_decile_failure_share"] == pytest.approx(inc.failed[top].sum()
                                                           / inc.failed.sum())
    assert ev["rate_ratio"] == pytest.approx(inc.failed[top].mean() / inc.failed[~top].mean())
    table = np.array([[inc.failed[~top].sum(), (~inc.failed[~top]).sum()],
                      [inc.failed[top].sum(), (~inc.failed[top]).sum()]])
    chi2 = stats.chi2_contingency(table, correction=False)
    assert ev["pvalue"] == pytest.approx(chi2.pvalue, rel=1e-6, abs=1e-300)  # z^2 = chi2
    rates = inc.groupby("decile").failed.mean()
    assert ev["rho"] == pytest.approx(stats.spearmanr(rates.index, rates).statistic)
    assert ev["dominant_kind"] == "oom"
    assert ev["oom_share"] == pytest.approx((inc.error_type == "CUDA out of memory").sum()
                                            / inc.failed.sum())
    assert ev["longest_prompt_tokens"] == inc.input_tokens.max()
    assert abs(pd.Timestamp(finding.onset) - CUT) <= timedelta(minutes=15)


def test_context_length_refusals_are_named():
    frame = traffic(long_failures="context_length_exceeded")
    [finding] = context_errors(make_case(requests=frame), (T0, CUT), (CUT, END)).findings()
    assert finding.evidence["dominant_kind"] == "context_length"
    assert (finding.id, finding.pathway) == ("data.long_prompt_refusals", "data")
    assert "context-length refusals" in finding.summary


def test_failures_independent_of_length_do_not_fire():
    result = context_errors(make_case(requests=traffic(long_failures=None)), (T0, CUT),
                            (CUT, END))
    assert result.findings() == []
    assert result.evidence()["top_decile_failure_share"] < 0.3


def test_missing_columns_are_not_assessed():
    frame = traffic(long_failures="oom")
    no_status = frame.drop(columns=["status", "http_status", "error_type"])
    result = context_errors(make_case(requests=no_status), (T0, CUT), (CUT, END))
    assert "no status, finish_reason or http_status" in result.not_assessed[0].reason
    no_tokens = frame.drop(columns=["input_tokens"])
    result = context_errors(make_case(requests=no_tokens), (T0, CUT), (CUT, END))
    assert "no input_tokens" in result.not_assessed[0].reason and result.findings() == []
