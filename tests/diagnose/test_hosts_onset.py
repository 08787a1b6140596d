"""A host outlier in a sparse log is dated where its excess over the other hosts began.

With a few requests per host and bucket no bucket holds the three failed requests the
threshold crossing needs, and the finding had no onset (issue 22); the window detector then
could not use it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pandas as pd

from tests.diagnose.conftest import make_case
from toolkit.diagnose.infra.hosts import host_outliers

T0 = pd.Timestamp("2026-03-01T00:00Z")
BASELINE = (T0, T0 + timedelta(hours=24))
INCIDENT = (T0 + timedelta(hours=24), T0 + timedelta(hours=48))
FAULT = T0 + timedelta(hours=36)


def _requests(fleet_errors_from=None):
    """Four hosts, three requests each an hour (one per 15-minute bucket at most) for two
    days; h2 fails every request from 36:00 on. With ``fleet_errors_from``, every host fails
    one request an hour (the first) from then on."""
    rows = []
    for h in range(48):
        for host in range(4):
            for j in range(3):
                ts = T0 + timedelta(hours=h, minutes=20 * j + 5 * host)
                bad = (host == 2 and ts >= FAULT) or (
                    fleet_errors_from is not None and ts >= fleet_errors_from and j == 0)
                rows.append((f"r{h}-{host}-{j}", ts, f"h{host}", "error" if bad else "ok", 80.0))
    return pd.DataFrame(rows, columns=["request_id", "ts", "host", "status", "latency_ms"])


def test_a_sparse_failing_host_is_dated_at_its_first_failure():
    result = host_outliers(make_case(requests=_requests()), BASELINE, INCIDENT)
    (finding,) = result.findings()
    assert finding.evidence["host"] == "h2"
    # one request per host and bucket: no bucket has the three failures the crossing needs
    # (the old onset was None)
    assert result.timeline["requests"].max() == 1
    # h2's last healthy request is at 35:50, its first failed one at 36:10 (host 2 sends at
    # :10, :30, :50): the step lies between them
    onset = pd.Timestamp(finding.onset)
    assert FAULT - timedelta(minutes=10) < onset <= FAULT + timedelta(minutes=10)
    # the coarse date on the timeline: a step at a bucket boundary, 36:00
    assert pd.Timestamp(result.excess_rise("h2", "error_rate")) == FAULT


def test_a_fleet_wide_rise_does_not_date_the_host():
    # every host fails one request an hour from 30:00: the fleet's rate rises six hours before
    # h2's fault; h2's own rate also rises then, its excess over the others only at 36:00
    fleet = T0 + timedelta(hours=30)
    result = host_outliers(make_case(requests=_requests(fleet)), BASELINE, INCIDENT)
    (finding,) = result.findings()
    assert finding.evidence["host"] == "h2"
    # in 36:00-36:15 h2's failure (at :10, its first request of the hour) is matched by the
    # other hosts' first requests; its excess first shows in the 36:30 bucket (its :30 request)
    assert pd.Timestamp(result.excess_rise("h2", "error_rate")) == FAULT + timedelta(minutes=30)
    assert pd.Timestamp(finding.onset) > FAULT - timedelta(minutes=10)


def test_no_rise_without_four_buckets_of_the_host():
    result = host_outliers(make_case(requests=_requests()), BASELINE, INCIDENT)
    tl = result.timeline
    few = tl[(tl["host"] != "h2") | (tl["bucket_start"] < T0 + timedelta(hours=1))]
    assert (few["host"] == "h2").sum() == 3
    assert replace(result, timeline=few).excess_rise("h2", "error_rate") is None
