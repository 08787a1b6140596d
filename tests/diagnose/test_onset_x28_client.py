"""A new client version's onset is its first request when that comes before its first contract
error (issue 22, X28): without a deploy event, varied tuning api_contract_mismatch s4, s7 and
s9 were dated at the first contract error, 85, 77 and 157 minutes after the release, while the
version's first requests came 51, 35 and 134 minutes after it."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from tests.diagnose.conftest import make_case
from toolkit.diagnose.integration.client_errors import errors_by_client

T0 = pd.Timestamp("2026-03-01T00:00Z")
BASELINE = (T0, T0 + timedelta(days=5))
INCIDENT = (T0 + timedelta(days=5), T0 + timedelta(days=6))


def _requests(first_ok: int) -> pd.DataFrame:
    """Old clients every 10 minutes over six days; web-2 from the incident's start + 2 h on,
    every 30 minutes, its first ``first_ok`` requests fine and the rest failing with 422."""
    old_ts = T0 + pd.to_timedelta(np.arange(0, 6 * 24 * 60, 10), unit="min")
    new_start = INCIDENT[0] + timedelta(hours=2)
    new_ts = new_start + pd.to_timedelta(np.arange(0, 20 * 60, 30), unit="min")
    clients = np.r_[np.array(["web-1", "ios-1"])[np.arange(len(old_ts)) % 2],
                    np.full(len(new_ts), "web-2")]
    fails = np.r_[np.zeros(len(old_ts), bool), np.arange(len(new_ts)) >= first_ok]
    return pd.DataFrame({
        "request_id": [f"r{i}" for i in range(len(clients))],
        "ts": np.r_[old_ts, new_ts], "client_version": clients,
        "status": np.where(fails, "error", "ok"), "http_status": np.where(fails, 422, 200),
        "error_type": np.where(fails, "ValidationError", None)})


def test_a_new_version_is_dated_by_its_first_request():
    result = errors_by_client(make_case(requests=_requests(first_ok=4)), BASELINE, INCIDENT)
    (finding,) = result.findings()
    assert finding.evidence["new"] and not finding.evidence["announced"]
    first_request = INCIDENT[0] + timedelta(hours=2)
    assert pd.Timestamp(finding.evidence["first_seen"]) == first_request
    # its first contract error came two hours later (the 5th request, 4 x 30 minutes)
    assert pd.Timestamp(finding.onset) == first_request


def test_a_version_failing_from_its_first_request_keeps_that_onset():
    result = errors_by_client(make_case(requests=_requests(first_ok=0)), BASELINE, INCIDENT)
    (finding,) = result.findings()
    assert pd.Timestamp(finding.onset) == INCIDENT[0] + timedelta(hours=2)
