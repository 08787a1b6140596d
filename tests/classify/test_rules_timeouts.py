"""Timeout misconfiguration with no timeout configuration logged (issue 22's fourth hard
distinction): timeouts rise while the server's completed latency holds. The medium finding
(no configuration known) alone gave 0.57-0.64, one confounder away from an abstention; the
server's health is the mode's own evidence and adds to it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

import toolkit as tk
from toolkit.classify import score
from toolkit.classify.engine import Evidence
from toolkit.diagnose import Finding
from toolkit.types import Window

RULE = "timeouts rose while the server's latency held"
T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
BASELINE = Window(T0 - timedelta(days=7), T0)
INCIDENT = Window(T0, T0 + timedelta(hours=8))
NO_EVENTS = pd.DataFrame(columns=["ts", "kind", "artifact", "version", "host", "detail"])


def timeouts(severity: str = "medium", healthy: bool = True) -> Finding:
    return Finding("integration.timeout_misconfiguration", "integration", severity, 0.033,
                   0.005, "timeouts", {"baseline_rate": 0.0, "incident_rate": 0.033,
                                       "timeout_ms": float("nan"), "server_healthy": healthy,
                                       "p99_ratio": 1.02, "p50_ratio": 1.0},
                   T0 + timedelta(minutes=3))


def verdict(*findings: Finding):
    return score(Evidence(findings, (), NO_EVENTS, BASELINE, INCIDENT))


@pytest.mark.parametrize(("severity", "healthy", "fires"), [
    ("medium", True, True), ("high", True, True), ("medium", False, False),
    ("low", True, False),
])
def test_the_rule_needs_a_healthy_server(severity, healthy, fires):
    result = verdict(timeouts(severity, healthy))
    assert (RULE in {h.name for h in result.hits}) is fires


def test_a_medium_finding_with_a_confounder_is_decided():
    # a mild latency blip beside the timeouts does not turn it into an infrastructure mode
    blip = Finding("infrastructure.latency_regression", "infrastructure", "medium", 1.4, 1.3,
                   "blip", {"p99_ratio": 1.4}, T0 + timedelta(hours=2))
    result = verdict(timeouts(), blip)
    assert (result.pathway, result.failure_mode) == ("integration", "timeout_misconfiguration")


def test_timeouts_without_any_configuration_logged_are_classified_confidently():
    rng = np.random.default_rng(0)
    n = 12_000
    ts = pd.date_range("2026-03-01", periods=n, freq="40s", tz="UTC")
    latency = rng.lognormal(np.log(60), 0.6, n)
    cut = (np.arange(n) >= n // 2) & (latency > 180)  # a 180 ms client timeout, not logged
    con = tk.connect()
    tk.load(con, pd.DataFrame({
        "request_id": [f"r{i}" for i in range(n)], "ts": ts, "x0": rng.normal(0, 1, n),
        "host": rng.choice(["h1", "h2", "h3"], n), "client_version": rng.choice(["a", "b"], n),
        "latency_ms": np.where(cut, 180.0, latency), "status": np.where(cut, "timeout", "ok"),
        "http_status": np.where(cut, 504, 200)}), table="requests")
    result = tk.classify_incident(con, baseline=(ts[0], ts[n // 2]),
                                  incident=(ts[n // 2], ts[-1] + pd.Timedelta(seconds=1)))
    found = {f.id: f for f in result.diagnosis.findings()}
    assert found["integration.timeout_misconfiguration"].severity == "medium"
    assert result.failure_mode == "timeout_misconfiguration"
    assert result.confidence >= 0.75  # 0.64 before
