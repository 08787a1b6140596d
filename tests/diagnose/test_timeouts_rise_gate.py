"""The timeouts rise counts the few timeouts a sampled log keeps when chance cannot explain them.

A log kept 1 in 50 holds 3-8 of an incident's timeouts; the rise needed 20 (or 8 at p < 1e-6 by
a normal approximation), so a timeout misconfiguration in such a log gave no finding (issue 22,
R23's proposal). Now 3 timeouts and a one-sided Fisher exact test at p < 1e-3.
"""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tests.diagnose.conftest import make_case
from toolkit.diagnose.integration.timeouts import PVALUE, rise_pvalue, timeout_budget

T0 = pd.Timestamp("2026-03-01T00:00Z")


def _case(n_base, n_inc, timeouts_base, timeouts_inc, *, config=True):
    """One request a minute: ``n_base`` in the baseline, then ``n_inc`` in the incident;
    latencies cycle over 40-139 ms (p99.9 about 139 ms); the first requests of each window
    whose index is in ``timeouts_*`` time out. A config change sets a 100 ms client timeout
    at the incident's start."""
    n = n_base + n_inc
    k = np.arange(n)
    ts = T0 + pd.to_timedelta(k, unit="min")
    latency = 40.0 + k % 100
    timeout = np.isin(k, timeouts_base) | np.isin(k - n_base, timeouts_inc)
    requests = pd.DataFrame({"request_id": [f"r{i}" for i in k], "ts": ts,
                             "latency_ms": latency,
                             "status": np.where(timeout, "timeout", "ok")})
    tables = {"requests": requests}
    if config:
        tables["events"] = pd.DataFrame({
            "ts": [T0 - timedelta(days=1), ts[n_base]], "kind": "config_change",
            "artifact": "client", "detail": [json.dumps({"client_timeout_ms": 5000}),
                                             json.dumps({"client_timeout_ms": 100})]})
    windows = (T0, ts[n_base]), (ts[n_base], ts[-1] + timedelta(minutes=1))
    return make_case(**tables), windows


@pytest.mark.parametrize("k_b,n_b,k_i,n_i", [(0, 1440, 4, 120), (0, 300, 3, 300),
                                             (2, 1440, 5, 120), (7, 50, 3, 4)])
def test_rise_pvalue_is_fishers_exact_test(k_b, n_b, k_i, n_i):
    expected = stats.fisher_exact([[k_i, n_i - k_i], [k_b, n_b - k_b]],
                                  alternative="greater").pvalue
    assert rise_pvalue(k_b, n_b, k_i, n_i) == pytest.approx(expected, rel=1e-9)


def test_four_timeouts_far_beyond_chance_make_a_finding():
    # 4 timeouts in 120 incident requests against none of 1,440: Fisher p = C(120, 4) /
    # C(1560, 4), about 3.3e-5; the old gate (20 timeouts, or 8 at p < 1e-6) gave nothing
    con, (baseline, incident) = _case(1440, 120, [], [3, 30, 60, 90])
    (finding,) = timeout_budget(con, baseline, incident).findings()
    p = (120 * 119 * 118 * 117) / (1560 * 1559 * 1558 * 1557)
    assert finding.evidence["pvalue"] == pytest.approx(p, rel=1e-9) and p < PVALUE
    assert finding.statistic == pytest.approx(4 / 120)
    assert finding.severity == "high"  # the 100 ms timeout sits below the 139 ms tail


def test_three_timeouts_that_chance_explains_make_none():
    # 3 of 300 against 0 of 300: a rate of 1% (twice the baseline's and 0.5 point above it),
    # but Fisher p = C(300, 3) / C(600, 3), about 0.124
    con, (baseline, incident) = _case(300, 300, [], [10, 100, 200], config=False)
    result = timeout_budget(con, baseline, incident)
    assert rise_pvalue(0, 300, 3, 300) == pytest.approx(
        (300 * 299 * 298) / (600 * 599 * 598), rel=1e-9)
    assert result.findings() == []


def test_two_timeouts_are_never_enough():
    # 2 of 20 against 0 of 2,000: p = C(20, 2) / C(2020, 2), about 9.3e-5, but two requests
    con, (baseline, incident) = _case(2000, 20, [], [3, 12])
    assert rise_pvalue(0, 2000, 2, 20) < PVALUE
    assert [f for f in timeout_budget(con, baseline, incident).findings()
            if f.evidence.get("route") != "cut_tail"] == []
