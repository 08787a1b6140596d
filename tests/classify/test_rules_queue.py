"""Queue build-up as capacity evidence (issue 22, item 3): requests waiting in the service's
queue climb and stay up while latency follows. ``infrastructure.queue_buildup`` was read by no
rule; a metrics-only case with that queue and a p99 tripling was undetermined (0.40) on the
latency regression alone."""

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

RULE = "requests queue up in the service and latency follows: short of capacity"
T0 = datetime(2026, 3, 1, tzinfo=UTC)
CUT = T0 + timedelta(hours=12)
QUEUE_AT = CUT + timedelta(hours=2)
END = CUT + timedelta(hours=8)
NO_EVENTS = pd.DataFrame(columns=["ts", "kind", "artifact", "version", "host", "detail"])


def _metrics(*, queue: bool = True, rise: float = 12.0, slow: float = 3.0) -> pd.DataFrame:
    """Every minute: queue_depth of 4 pods (Poisson 2, Poisson ``rise`` from ``QUEUE_AT``)
    and one p99 latency series (300 ms, ``slow`` x from ``QUEUE_AT``)."""
    rng = np.random.default_rng(2)
    minutes = pd.date_range(T0, END, freq="1min", inclusive="left")
    up = minutes >= QUEUE_AT
    latency = pd.DataFrame({"ts": minutes, "host": "pod-0", "name": "latency_p99_ms",
                            "value": np.where(up, 300.0 * slow, 300.0)
                            * rng.lognormal(0, 0.05, len(minutes))})
    if not queue:
        return latency
    frame = pd.DataFrame([(t, f"pod-{k}") for t in minutes for k in range(4)],
                         columns=["ts", "host"])
    frame["value"] = rng.poisson(np.where(frame["ts"] >= QUEUE_AT, rise, 2.0)).astype(float)
    frame["name"] = "queue_depth"
    return pd.concat([frame, latency], ignore_index=True)


def _classify(metrics: pd.DataFrame):
    con = tk.connect()
    tk.load(con, metrics, table="metrics")
    return tk.classify_incident(con, baseline=(T0, CUT), incident=(CUT, END))


def test_a_queue_that_climbs_with_latency_is_decided_as_capacity():
    result = _classify(_metrics())
    found = {f.id: f for f in result.diagnosis.findings()}
    assert found["infrastructure.queue_buildup"].severity == "high"
    assert RULE in {h.name for h in result.verdict.hits}
    assert (result.pathway, result.failure_mode) == ("infrastructure", "memory_exhaustion")
    assert result.confidence >= 0.6  # undetermined 0.40 before the rule


def test_without_the_queue_metric_the_latency_alone_does_not_decide():
    # the partial case: the queue series is not exported; a tripled p99 names no mode
    result = _classify(_metrics(queue=False))
    assert "infrastructure.queue_buildup" not in {f.id for f in result.diagnosis.findings()}
    assert result.failure_mode in ("undetermined", "none")
    assert result.confidence < 0.5  # nothing decided with confidence
    assert max(result.verdict.scores, key=result.verdict.scores.get) == "infrastructure"


def test_a_queue_the_service_absorbed_adds_nothing():
    # the queue climbs but latency holds: capacity.py rates it low, and low is no evidence
    result = _classify(_metrics(slow=1.0))
    found = {f.id: f for f in result.diagnosis.findings()}
    assert found["infrastructure.queue_buildup"].severity == "low"
    assert RULE not in {h.name for h in result.verdict.hits}
    assert result.failure_mode != "memory_exhaustion"


def _queue(severity: str) -> Finding:
    return Finding("infrastructure.queue_buildup", "infrastructure", severity, 48.0, 16.0,
                   "queue", {"latency_ratio": 3.0}, QUEUE_AT)


@pytest.mark.parametrize(("severity", "factor"), [("high", 1.0), ("medium", 0.7), ("low", None)])
def test_the_rule_reads_medium_and_high_queues_scaled_by_severity(severity, factor):
    verdict = score(Evidence((_queue(severity),), (), NO_EVENTS, Window(T0, CUT),
                             Window(CUT, END)))
    hits = {h.name: h for h in verdict.hits}
    if factor is None:
        assert RULE not in hits
        return
    assert hits[RULE].add["memory_exhaustion"] == pytest.approx(2.0 * factor)
    assert hits[RULE].add["timeout_misconfiguration"] == pytest.approx(-1.0 * factor)
    # a binary case: the generative modes are not scored, so their weights are dropped
    assert "kv_cache_exhaustion" not in hits[RULE].add


def test_timeouts_beside_a_queue_lose_their_healthy_server():
    timeouts = Finding("integration.timeout_misconfiguration", "integration", "medium", 0.03,
                       0.005, "timeouts", {"server_healthy": True}, CUT + timedelta(hours=2))
    alone = score(Evidence((timeouts,), (), NO_EVENTS, Window(T0, CUT), Window(CUT, END)))
    queued = score(Evidence((timeouts, _queue("high")), (), NO_EVENTS, Window(T0, CUT),
                            Window(CUT, END)))
    assert alone.failure_mode == "timeout_misconfiguration"
    assert queued.mode_scores["timeout_misconfiguration"] < \
        alone.mode_scores["timeout_misconfiguration"] - 0.2
