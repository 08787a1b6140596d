"""Partial forms of issue 22's hard distinctions: each case drops the table or column its
distinction relies on and must fall back to ``undetermined`` or the right pathway, never to a
confident wrong mode. (The concept-drift, adversarial, bad-release and queue cases keep their
partial forms beside their rules: test_rules_concept_drift, test_rules_adversarial,
test_rules_bad_release, test_rules_queue.)"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import toolkit as tk
from tests.classify import test_rules_schema_rejections as schema
from tests.diagnose.test_cold_start import BASELINE, INCIDENT, _case
from toolkit.classify.taxonomy import PATHWAY_OF


def _decided_elsewhere(result, pathway: str) -> bool:
    """A failure mode of another pathway decided with confidence."""
    return result.failure_mode in PATHWAY_OF and PATHWAY_OF[result.failure_mode] != pathway


# ---------------------------------------------------------------- schema mismatch
@pytest.mark.parametrize(("null_share", "expected"), [
    (1.0, "schema_mismatch"),   # the feature is gone: data.schema_change still sees it
    (0.95, "null_injection"),   # nothing shows the release or the rejections: nulls it is
])
def test_schema_mismatch_without_events_or_status_codes_stays_data(null_share, expected):
    result, findings = schema.classify(null_share=null_share, deploy=False, http_status=False)
    assert "data.validation_errors" not in findings
    assert (result.pathway, result.failure_mode) == ("data", expected)


# ---------------------------------------------------------------- timeout misconfiguration
def _timeouts(drop: tuple[str, ...] = ()):
    """A 180 ms client timeout (not logged) cuts the tail of an unchanged server."""
    rng = np.random.default_rng(0)
    n = 12_000
    ts = pd.date_range("2026-03-01", periods=n, freq="40s", tz="UTC")
    latency = rng.lognormal(np.log(60), 0.6, n)
    cut = (np.arange(n) >= n // 2) & (latency > 180)
    requests = pd.DataFrame({
        "request_id": [f"r{i}" for i in range(n)], "ts": ts, "x0": rng.normal(0, 1, n),
        "host": rng.choice(["h1", "h2", "h3"], n), "client_version": rng.choice(["a", "b"], n),
        "latency_ms": np.where(cut, 180.0, latency), "status": np.where(cut, "timeout", "ok"),
        "http_status": np.where(cut, 504, 200)}).drop(columns=list(drop))
    con = tk.connect()
    tk.load(con, requests, table="requests")
    result = tk.classify_incident(con, baseline=(ts[0], ts[n // 2]),
                                  incident=(ts[n // 2], ts[-1] + pd.Timedelta(seconds=1)))
    con.close()
    return result


@pytest.mark.parametrize("drop", [("host", "client_version"), ("status",)])
def test_timeouts_without_source_columns_or_status_are_still_decided(drop):
    result = _timeouts(drop)
    assert result.failure_mode == "timeout_misconfiguration"


def test_timeouts_without_latency_decide_nothing_confidently():
    # no latency: whether the server stayed healthy cannot be seen (the timeout finding is
    # low); no mode may be decided, least of all an infrastructure one
    result = _timeouts(("latency_ms",))
    found = {f.id: f for f in result.diagnosis.findings()}
    assert found["integration.timeout_misconfiguration"].severity == "low"
    assert result.failure_mode in ("none", "undetermined")
    assert result.confidence < 0.5


# ---------------------------------------------------------------- cold start
def _cold(*, events: bool = True, host: bool = True):
    frame, starts = _case(storm=True)
    con = tk.connect()
    tk.load(con, frame if host else frame.drop(columns="host"), table="requests")
    if events:
        tk.load(con, starts.assign(artifact=None), table="events")
    result = tk.classify_incident(con, baseline=BASELINE, incident=INCIDENT)
    con.close()
    return result


def test_cold_starts_without_events_are_seen_from_new_hosts():
    result = _cold(events=False)
    assert result.failure_mode == "cold_start"


@pytest.mark.parametrize("events", [True, False])
def test_cold_starts_without_hosts_are_not_called_another_mode(events):
    # no host: replica ages are unknown, only a latency regression (and restarts) is left
    result = _cold(events=events, host=False)
    assert "infrastructure.cold_start" not in {f.id for f in result.diagnosis.findings()}
    assert not _decided_elsewhere(result, "infrastructure")
    assert result.failure_mode in ("none", "undetermined")
    assert result.confidence < 0.5
