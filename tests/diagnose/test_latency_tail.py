"""A p99 rise must be more than a sparse log's noise (issue 22: a healthy period's detected
window held 156 logged requests, 3 of them above the baseline's p99, and its 12.8x "p99"
was a high latency regression that kept the verdict from "none")."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tests.diagnose.conftest import make_case
from toolkit.diagnose.infra.latency import TAIL_PVALUE, latency_profile

T0 = pd.Timestamp("2026-03-01T00:00Z")
CUT = T0 + timedelta(days=10)
END = CUT + timedelta(hours=6)


def _case(n_base: int, incident: np.ndarray, seed: int = 4):
    rng = np.random.default_rng(seed)
    base = rng.lognormal(np.log(140), 0.4, n_base)
    ts = np.r_[T0 + (CUT - T0) * np.arange(n_base) / n_base,
               CUT + (END - CUT) * np.arange(len(incident)) / len(incident)]
    frame = pd.DataFrame({"request_id": [f"r{i}" for i in range(len(ts))], "ts": ts,
                          "latency_ms": np.r_[base, incident], "status": "ok"})
    return latency_profile(make_case(requests=frame), (T0, CUT), (CUT, END)), base


def _regression(result):
    return next(f for f in result.findings() if f.id == "infrastructure.latency_regression")


def test_a_handful_of_slow_requests_in_a_sparse_window_is_low():
    rng = np.random.default_rng(5)
    incident = rng.lognormal(np.log(140), 0.4, 156)
    incident[[20, 70, 120]] = [4800.0, 5200.0, 6100.0]  # three stragglers
    result, base = _case(10_000, incident)
    finding = _regression(result)
    assert finding.statistic >= 3  # a "12x p99": high before
    assert finding.severity == "low"
    # the counts and the test, by hand: latencies above the baseline's p99 in each window
    p99 = result.value("baseline", "p99_ms")
    k_b, k_i = int((base > p99).sum()), int((incident > p99).sum())
    assert (result.value("baseline", "over_base_p99"), result.value("incident",
                                                                     "over_base_p99")) == (k_b, k_i)
    pooled = (k_b + k_i) / (10_000 + 156)
    z = (k_i / 156 - k_b / 10_000) / np.sqrt(pooled * (1 - pooled) * (1 / 10_000 + 1 / 156))
    assert finding.evidence["tail_pvalue"] == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-6)
    assert finding.evidence["tail_pvalue"] > TAIL_PVALUE
    assert "within noise" in finding.summary


def test_a_tail_that_really_moved_keeps_its_severity():
    rng = np.random.default_rng(6)
    incident = rng.lognormal(np.log(140), 0.4, 1_000)
    slow = rng.uniform(size=1_000) < 0.06  # 6% of requests hit a slow path (cold replicas)
    incident[slow] *= 12
    result, _ = _case(10_000, incident)
    finding = _regression(result)
    assert finding.severity == "high"
    assert finding.evidence["tail_share"][1] > 0.05 and finding.evidence["tail_pvalue"] < 1e-9


def test_a_moderate_rise_everywhere_is_medium():
    rng = np.random.default_rng(7)
    result, _ = _case(10_000, rng.lognormal(np.log(140), 0.4, 2_000) * 1.8)
    assert _regression(result).severity == "medium"
