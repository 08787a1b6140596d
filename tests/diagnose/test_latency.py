"""infra.latency on latency metric series (a metrics-only export), checked against numpy."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from tests.diagnose.conftest import make_case
from toolkit.diagnose._case import MIN_WINDOW_ROWS
from toolkit.diagnose.infra.latency import ID, latency_profile

T0 = pd.Timestamp("2026-03-01T00:00Z")
CUT = T0 + timedelta(hours=6)
END = CUT + timedelta(hours=6)


def samples(n_base: int, n_inc: int, factor: float, name: str = "latency_ms", seed: int = 1):
    rng = np.random.default_rng(seed)
    base = rng.gamma(4.0, 50.0, n_base)
    inc = rng.gamma(4.0, 50.0, n_inc) * factor
    ts = np.r_[T0 + (CUT - T0) * np.arange(n_base) / n_base,
               CUT + (END - CUT) * np.arange(n_inc) / n_inc]
    return pd.DataFrame({"ts": ts, "host": "pod-a", "name": name, "value": np.r_[base, inc]}), \
        base, inc


@pytest.mark.parametrize("name", ["latency_ms", "latency_p99_ms"])
def test_latency_from_a_metric_series_when_requests_have_none(name):
    metrics, base, inc = samples(2_000, 2_000, 4.0, name)
    result = latency_profile(make_case(metrics=metrics), (T0, CUT), (CUT, END))
    assert result.source == f"metrics:{name}"
    p99 = result.table.set_index("window")["p99_ms"]
    # DuckDB's approx_quantile (t-digest) against numpy's exact quantile
    assert p99["baseline"] == pytest.approx(np.quantile(base, 0.99), rel=0.03)
    assert p99["incident"] == pytest.approx(np.quantile(inc, 0.99), rel=0.03)
    assert result.table.set_index("window")["requests"].tolist() == [2_000, 2_000]
    [finding] = result.findings()  # no status: no error or timeout rate finding
    assert finding.id == "infrastructure.latency_regression" and finding.severity == "high"
    assert finding.evidence["source"] == f"metrics:{name}" and name in finding.summary
    assert result.table["error_rate"].isna().all()
    assert CUT <= pd.Timestamp(finding.onset) < CUT + timedelta(hours=1)
    assert set(result.signals()["signal"]) >= {"latency.p99_ms"}  # dates a metrics-only case


def test_too_few_latency_samples_are_not_compared():
    metrics, _, _ = samples(MIN_WINDOW_ROWS - 1, 500, 10.0)
    result = latency_profile(make_case(metrics=metrics), (T0, CUT), (CUT, END))
    assert result.findings() == []
    [gap] = result.not_assessed
    assert gap.check == ID and f"{MIN_WINDOW_ROWS - 1} latency_ms samples in the baseline" in \
        gap.reason


def test_request_latencies_win_over_metrics():
    metrics, _, _ = samples(500, 500, 10.0)
    ts = T0 + (END - T0) * np.arange(1_000) / 1_000
    requests = pd.DataFrame({"request_id": range(1_000), "ts": ts, "latency_ms": 100.0,
                             "status": "ok"})
    result = latency_profile(make_case(metrics=metrics, requests=requests), (T0, CUT),
                             (CUT, END))
    assert result.source == "requests" and result.findings() == []


def test_without_latency_anywhere_it_says_so():
    metrics, _, _ = samples(500, 500, 1.0, name="gpu_utilization")
    result = latency_profile(make_case(metrics=metrics), (T0, CUT), (CUT, END))
    assert "no latency_ms or latency_p99_ms metric series" in result.not_assessed[0].reason
