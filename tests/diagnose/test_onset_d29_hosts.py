"""A host outlier dated at the incident window's start says so (issue 22, D29).

Where a host already stands out in the incident window's first bucket, its excess's step
(``HostsResult.excess_rise``, fitted from the window's start on) is pinned at the window's
start, and the raw rows around it show no step: the date means "at or before the window
opened". The finding's evidence says so (``onset_at_window_start``), so that the verdict's
onset does not read it as a date refined on raw rows (varied tuning accelerator_fault s6: 61
minutes before the truth).
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd

from tests.diagnose.conftest import make_case
from toolkit.diagnose.infra.hosts import host_outliers

T0 = pd.Timestamp("2026-03-01T00:00Z")
BASELINE = (T0, T0 + timedelta(hours=24))


def _requests(fault: pd.Timestamp) -> pd.DataFrame:
    """Four hosts, three requests each an hour for two days; h2 fails every request from
    ``fault`` on."""
    rows = []
    for h in range(48):
        for host in range(4):
            for j in range(3):
                ts = T0 + timedelta(hours=h, minutes=20 * j + 5 * host)
                bad = host == 2 and ts >= fault
                rows.append((f"r{h}-{host}-{j}", ts, f"h{host}", "error" if bad else "ok", 80.0))
    return pd.DataFrame(rows, columns=["request_id", "ts", "host", "status", "latency_ms"])


def test_a_host_failing_before_the_window_opens_is_flagged():
    # the fault is in the gap between the windows: h2 fails from the window's first request
    fault = T0 + timedelta(hours=28)
    incident = (T0 + timedelta(hours=30, minutes=7), T0 + timedelta(hours=48))
    result = host_outliers(make_case(requests=_requests(fault)), BASELINE, incident)
    (finding,) = result.findings()
    assert finding.evidence["host"] == "h2"
    assert pd.Timestamp(finding.onset) == incident[0]
    assert finding.evidence["onset_at_window_start"] is True


def test_a_host_failing_inside_the_window_is_not_flagged():
    fault = T0 + timedelta(hours=36)
    incident = (T0 + timedelta(hours=24), T0 + timedelta(hours=48))
    result = host_outliers(make_case(requests=_requests(fault)), BASELINE, incident)
    (finding,) = result.findings()
    onset = pd.Timestamp(finding.onset)
    assert fault - timedelta(minutes=10) < onset <= fault + timedelta(minutes=10)
    assert "onset_at_window_start" not in finding.evidence
