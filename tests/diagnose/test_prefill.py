"""infra.prefill_interference on hand-built traffic with long-prompt bursts, against pandas/scipy."""

from __future__ import annotations

import importlib
import re
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tests.diagnose.conftest import make_case

mod = importlib.import_module("toolkit.diagnose.infra.prefill")
prefill_interference = mod.prefill_interference

T0 = pd.Timestamp("2026-03-01T00:00Z")
CUT = T0 + timedelta(hours=6)
END = CUT + timedelta(hours=6)
WIDTH = timedelta(minutes=5)
LONG = 20_000


def traffic(*, bursts: bool, tpot_factor: float = 1.0, seed: int = 11):
    """A request every 3 s for 12 hours on two replicas (alternating). With ``bursts``, every
    other 5-minute bucket of the incident carries 15% prompts of 20k tokens, prefilled whole
    (10 s, chunked prefill off): a short prompt that arrives on the same replica while one is
    being prefilled waits until it is done. Elsewhere long prompts are rare and chunked (no
    wait)."""
    rng = np.random.default_rng(seed)
    n = 12 * 60 * 20
    ts = T0 + pd.to_timedelta(np.arange(n) * 3, unit="s")
    host = np.arange(n) % 2
    bucket = ((ts - T0) // WIDTH).to_numpy()
    burst = (ts >= CUT) & (bucket % 2 == 0) if bursts else np.zeros(n, dtype=bool)
    tokens = np.round(rng.lognormal(5.3, 0.6, n)).astype(int) + 1
    long_ = rng.random(n) < np.where(burst, 0.15, 0.005)
    tokens[long_] = LONG
    ttft = 60.0 + tokens * 0.05 + rng.gamma(4.0, 10.0, n)
    whole = long_ & (ts >= CUT) & bursts
    ttft[whole] = 60.0 + tokens[whole] * 0.5
    seconds = (ts - T0).total_seconds().to_numpy()
    for h in (0, 1):  # the wait behind a whole prefill on the same replica
        busy = -np.inf
        for k in np.flatnonzero(host == h):
            if not long_[k] and seconds[k] < busy:
                ttft[k] += (busy - seconds[k]) * 1000
            if whole[k]:
                busy = max(busy, seconds[k] + ttft[k] / 1000)
    tpot = rng.gamma(20.0, 1.0, n) * np.where(ts >= CUT, tpot_factor, 1.0)
    return pd.DataFrame({"request_id": np.arange(n).astype(str), "ts": ts,
                         "host": np.where(host == 0, "gpu-a", "gpu-b"),
                         "input_tokens": tokens, "output_tokens": 100, "ttft_ms": ttft,
                         "tpot_ms": tpot})


def behind_long_prefill(frame, short_tokens, long_tokens):
    """Short prompts that arrived on a replica while a long prompt there had no first token
    yet, by brute force over every pair."""
    seconds = (frame.ts - T0).dt.total_seconds().to_numpy()
    until = seconds + frame.ttft_ms.to_numpy() / 1000
    out = np.zeros(len(frame), dtype=bool)
    longs = np.flatnonzero(frame.input_tokens.to_numpy() >= long_tokens)
    short = frame.input_tokens.to_numpy() <= short_tokens
    hosts = frame.host.to_numpy()
    for k in longs:
        hit = (hosts == hosts[k]) & (seconds > seconds[k]) & (seconds < until[k]) & short
        out |= hit
    return out


def test_interference_numbers_against_pandas_and_scipy():
    frame = traffic(bursts=True)
    con = make_case(requests=frame)
    result = prefill_interference(con, (T0, CUT), (CUT, END), short_tokens=300,
                                  long_tokens=10_000, bucket=WIDTH)
    table = result.table.set_index("window")
    for name, part in (("baseline", frame[frame.ts < CUT]), ("incident", frame[frame.ts >= CUT])):
        short = part[part.input_tokens <= 300]
        long_ = part[part.input_tokens >= 10_000]
        assert table.loc[name, "short_requests"] == len(short)
        assert table.loc[name, "long_requests"] == len(long_)
        assert table.loc[name, "long_token_share"] == pytest.approx(
            long_.input_tokens.sum() / part.input_tokens.sum())
        for q, label in ((0.9, "p90"), (0.99, "p99")):
            assert table.loc[name, f"short_ttft_{label}_ms"] == pytest.approx(
                np.quantile(short.ttft_ms, q), rel=1e-12)
        assert table.loc[name, "tpot_p50_ms"] == pytest.approx(np.median(part.tpot_ms),
                                                               rel=1e-12)
        assert table.loc[name, "long_per_hour"] == pytest.approx(len(long_) / 6)
    # exceedance of the baseline short-prompt p90, counted exactly
    base_p90 = table.loc["baseline", "short_ttft_p90_ms"]
    inc_short = frame[(frame.ts >= CUT) & (frame.input_tokens <= 300)]
    assert table.loc["incident", "short_exceed_share"] == pytest.approx(
        (inc_short.ttft_ms > base_p90).mean())
    # the bucket correlation, from pandas buckets and scipy
    key = frame.ts.dt.floor(WIDTH)
    shares = frame.assign(long=np.where(frame.input_tokens >= 10_000, frame.input_tokens, 0)
                          ).groupby(key)[["long", "input_tokens"]].sum()
    share = shares["long"] / shares["input_tokens"]
    short_p90 = frame[frame.input_tokens <= 300].groupby(key)["ttft_ms"].quantile(0.9)
    timeline = result.timeline.set_index("bucket_start")
    assert timeline["long_token_share"].to_numpy() == pytest.approx(share.to_numpy())
    rho = stats.spearmanr(share.loc[short_p90.index], short_p90).statistic
    assert result.rho == pytest.approx(rho, abs=1e-12) and rho > 0.5
    assert result.buckets == len(short_p90)
    # head of line: who waited behind a long prefill, and the Welch test on log TTFT
    blocked = behind_long_prefill(frame, 300, 10_000)
    short = frame.input_tokens <= 300
    inc = frame.ts >= CUT
    assert table.loc["incident", "blocked_requests"] == (blocked & inc).sum() > 300
    assert table.loc["incident", "clear_requests"] == (short & ~blocked & inc).sum()
    assert np.isnan(table.loc["baseline", "blocked_requests"])  # the incident's test only
    a = np.log(frame.ttft_ms[blocked & inc])
    b = np.log(frame.ttft_ms[short & ~blocked & inc])
    welch = stats.ttest_ind(a, b, equal_var=False)
    ev = result.evidence()
    assert ev["blocked_ratio_incident"] == pytest.approx(np.exp(a.mean() - b.mean()), rel=1e-9)
    assert ev["blocked_pvalue"] == pytest.approx(welch.pvalue, rel=1e-6, abs=1e-300)
    assert ev["head_of_line"] is True
    [finding] = result.findings()
    assert finding.id == "infrastructure.prefill_interference" and finding.severity == "high"
    ev = finding.evidence
    assert ev["long_share_up"] and ev["correlated"] and ev["decode_unchanged"] is True
    assert ev["tpot_p50_ratio"] == pytest.approx(1.0, abs=0.05)
    assert finding.statistic == pytest.approx(max(
        table.loc["incident", f"short_ttft_{q}_ms"] / table.loc["baseline", f"short_ttft_{q}_ms"]
        for q in ("p90", "p99")))
    assert finding.statistic > 10  # the p99: fewer than 10% of short prompts were blocked
    assert abs(pd.Timestamp(finding.onset) - CUT) <= WIDTH


def test_default_prompt_classes_are_baseline_quantiles():
    frame = traffic(bursts=True)
    result = prefill_interference(make_case(requests=frame), (T0, CUT), (CUT, END))
    base = frame[frame.ts < CUT].input_tokens
    assert result.short_tokens == pytest.approx(np.quantile(base, 0.5), rel=1e-12)
    assert result.long_tokens == pytest.approx(np.quantile(base, 0.95), rel=1e-12)
    assert [f.id for f in result.findings()] == ["infrastructure.prefill_interference"]


def test_no_bursts_no_finding():
    result = prefill_interference(make_case(requests=traffic(bursts=False)), (T0, CUT),
                                  (CUT, END))
    assert result.findings() == []
    assert result.evidence()["long_share_up"] is False


def test_slower_decode_lowers_the_severity():
    frame = traffic(bursts=True, tpot_factor=2.0)
    [finding] = prefill_interference(make_case(requests=frame), (T0, CUT), (CUT, END),
                                     short_tokens=300, long_tokens=10_000).findings()
    assert finding.evidence["decode_unchanged"] is False and finding.severity == "medium"


def test_without_ttft_it_is_not_assessed():
    frame = traffic(bursts=True).drop(columns=["ttft_ms"])
    result = prefill_interference(make_case(requests=frame), (T0, CUT), (CUT, END))
    assert result.table.empty and result.findings() == []
    assert "requests have no ttft_ms" in result.not_assessed[0].reason


def test_tpot_median_shared_with_token_latency_on_one_case_view():
    """After infra.token_latency on the same case view, the TPOT median per window is read
    from its summaries instead of one more quantile in the window query: same numbers as a
    view of its own, and numpy's median of each window."""
    from toolkit.diagnose._case import case_view

    token_latency = importlib.import_module("toolkit.diagnose.infra.token_latency")
    frame = traffic(bursts=True, tpot_factor=1.4)
    con = make_case(requests=frame)
    alone = prefill_interference(con, (T0, CUT), (CUT, END), bucket=WIDTH)
    case = case_view(con)
    token_latency.token_latency(con, (T0, CUT), (CUT, END), bucket=WIDTH, case=case)
    shared = prefill_interference(con, (T0, CUT), (CUT, END), bucket=WIDTH, case=case)
    def tpot_quantile(result) -> bool:
        window_sql = next(s for s in result.sql if "short_with_ttft" in s)
        return re.search(r"QUANTILE_CONT\([^,]*tpot_ms", window_sql) is not None

    assert tpot_quantile(alone) and not tpot_quantile(shared)  # read from the summaries
    pd.testing.assert_frame_equal(shared.table, alone.table)
    pd.testing.assert_frame_equal(shared.timeline, alone.timeline)
    table = shared.table.set_index("window")
    for name, part in (("baseline", frame[frame.ts < CUT]), ("incident", frame[frame.ts >= CUT])):
        assert table.loc[name, "tpot_p50_ms"] == pytest.approx(part.tpot_ms.median(), rel=1e-12)
