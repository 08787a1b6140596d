"""The server's health is read on the requests sent under the low timeout.

A window that runs on past the timeout's restore holds answers sent under the usual timeout:
their tail (cut under the low one) and a server slowdown after the incident made the whole
window's p99 ratio read 'the server also slowed', and the finding fell to medium, or vanished
when the timeout sat above the baseline's tail (varied tuning timeout_misconfiguration s8 with
the true window widened after its end: p99 ratio 0.67 -> 2.0).
"""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pandas as pd

from tests.diagnose.conftest import make_case
from toolkit.diagnose.integration.timeouts import timeout_budget

T0 = pd.Timestamp("2026-03-01T00:00Z")
CUT, RESTORE, END = (T0 + timedelta(hours=h) for h in (12, 15, 18))
BASELINE, INCIDENT = (T0, CUT), (CUT, END)


def _case(timeout_ms=100.0, restore=RESTORE, slow_after=3.0):
    """A request every 15 s for 18 h, latencies cycling over 40-139 ms (p99.9 139 ms). The
    client timeout is 5,000 ms, ``timeout_ms`` from 12:00 to ``restore``; requests slower than
    the timeout in force time out. From the restore on the server is ``slow_after`` times
    slower (a later latency change, not the incident's)."""
    k = np.arange(4320)
    ts = T0 + pd.to_timedelta(k * 15, unit="s")
    latency = (40.0 + k % 100) * np.where(ts >= restore, slow_after, 1.0)
    budget = np.where((ts >= CUT) & (ts < restore), timeout_ms, 5000.0)
    timeout = latency > budget
    requests = pd.DataFrame({"request_id": [f"r{i}" for i in k], "ts": ts,
                             "latency_ms": latency,
                             "status": np.where(timeout, "timeout", "ok")})
    events = pd.DataFrame({"ts": [T0 - timedelta(days=1), CUT, restore],
                           "kind": "config_change", "artifact": "client",
                           "detail": [json.dumps({"client_timeout_ms": v})
                                      for v in (5000, timeout_ms, 5000)]})
    return make_case(requests=requests, events=events), requests


def test_a_window_past_the_restore_reads_the_server_under_the_low_timeout():
    con, requests = _case()
    result = timeout_budget(con, BASELINE, INCIDENT)
    (finding,) = result.findings()
    # 12:00-15:00, 720 requests under 100 ms: those of 101-139 ms time out; the 427 that
    # complete run 40-100 ms (61 latencies of the 100 in the cycle, 720 from index 2880 on). The whole window's completed p99 is the slow server's
    # after 15:00 (3 x 139 ms, against 139 in the baseline: a ratio near 3)
    assert result.ratio("p99_ms") > 2.5
    under = requests[(requests.ts >= CUT) & (requests.ts < RESTORE) & requests.status.eq("ok")]
    assert result.under_low["completed"] == len(under) == 427
    assert finding.severity == "high"  # was medium: 'the server also slowed'
    assert finding.evidence["server_health_read_on"] == "requests sent under the low timeout"
    assert finding.evidence["p99_ratio"] < 1.0  # 100 / 139 at most


def test_too_few_requests_under_the_low_timeout_leave_the_window_reading():
    # restored after 10 minutes: 40 requests under the low timeout, 25 of them complete
    # (fewer than MIN_UNDER_LOW): the whole window is read, and the slower server shows
    con, requests = _case(restore=CUT + timedelta(minutes=10))
    result = timeout_budget(con, BASELINE, INCIDENT)
    under = requests[(requests.ts >= CUT) & (requests.ts < CUT + timedelta(minutes=10))
                     & requests.status.eq("ok")]
    assert result.under_low["completed"] == len(under) < 30
    assert [f.evidence.get("server_health_read_on") for f in result.findings()
            if f.evidence.get("route") != "cut_tail"] in ([], ["incident window"])


def test_a_low_timeout_over_the_whole_incident_is_read_on_the_window():
    # the low timeout holds to the end: nothing else to separate, the window is the reading
    con, _ = _case(restore=END + timedelta(hours=1), slow_after=1.0)
    result = timeout_budget(con, BASELINE, INCIDENT)
    (finding,) = result.findings()
    assert finding.evidence["server_health_read_on"] == "incident window"
    assert finding.evidence["p99_ratio"] == result.ratio("p99_ms")
