"""A new failing slice is dated where its failures rose, not by its first failure.

A new client release that fails at the background rate for hours before its failures rise
(a client timeout cut later) was dated by that first background failure, hours before the
incident (varied tuning timeout_misconfiguration seeds 2 and 4, issue 22).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import numpy as np
import pandas as pd

from tests.diagnose.conftest import make_case
from toolkit.diagnose.case.segments import failure_concentration

T0 = pd.Timestamp("2026-03-01T00:00Z")
BASELINE = (T0, T0 + timedelta(hours=12))
INCIDENT = (T0 + timedelta(hours=12), T0 + timedelta(hours=24))
RISE = T0 + timedelta(hours=18)


def _requests(cut=RISE):
    """One request every 30 s for 24 h. From 12:00 every other request comes from a new
    client release web-2, which fails one request in 25 of its own until ``cut`` and every
    request after it; web-1 never fails."""
    k = np.arange(2880)
    ts = T0 + pd.to_timedelta(k * 30, unit="s")
    new = (ts >= INCIDENT[0]) & (k % 2 == 1)
    background = new & ((k // 2) % 25 == 0)
    failed = background | (new & (ts >= cut))
    return pd.DataFrame({"request_id": [f"r{i}" for i in k], "ts": ts,
                         "client_version": np.where(new, "web-2", "web-1"),
                         "status": np.where(failed, "error", "ok"), "latency_ms": 80.0})


def test_a_new_release_is_dated_where_its_failures_rose():
    requests = _requests()
    result = failure_concentration(make_case(requests=requests), BASELINE, INCIDENT)
    (finding,) = [f for f in result.findings() if f.id == "integration.failure_segment"]
    assert finding.evidence["values"] == ["web-2"] and finding.evidence["new"]
    first = requests[requests.status.eq("error")].ts.min()
    # web-2's first failure is its first background one, minutes after 12:00 (the old onset)
    assert first < INCIDENT[0] + timedelta(minutes=30)
    # its share of the traffic failing steps from 0.5 / 25 = 2% to 50% at 18:00, a bucket
    # boundary: the step is dated there
    width = pd.Series(result.timeline["bucket_start"].unique()).diff().min()
    assert abs(pd.Timestamp(finding.onset) - RISE) <= 0.1 * width
    assert finding.evidence["first_failure"] == first.to_pydatetime()


def test_the_onset_is_never_before_the_first_failure_in_the_incident():
    # a release that fails at once on every request: the rise and the first failure agree,
    # and the onset is that failure (12:00:30, web-2's first request)
    requests = _requests(cut=INCIDENT[0])
    result = failure_concentration(make_case(requests=requests), BASELINE, INCIDENT)
    (finding,) = [f for f in result.findings() if f.id == "integration.failure_segment"]
    assert pd.Timestamp(finding.onset) == INCIDENT[0] + timedelta(seconds=30)


def test_without_four_buckets_the_first_failure_dates_it():
    requests = _requests()
    result = failure_concentration(make_case(requests=requests), BASELINE, INCIDENT)
    tl = result.timeline
    starts = sorted(tl["bucket_start"].unique())[-3:]
    short = replace(result, timeline=tl[tl["bucket_start"].isin(starts)])
    assert short.failure_rise("client_version", ["web-2"]) is None
    (finding,) = [f for f in short.findings() if f.id == "integration.failure_segment"]
    assert pd.Timestamp(finding.onset) == requests[requests.status.eq("error")].ts.min()


def test_a_few_more_failures_later_are_noise_not_a_rise():
    # guard: web-2 fails 2 of its 180 requests in 12:00-15:00 and 5 of its 540 after
    # (a lower rate after; scipy fisher_exact p 0.76 for any later split of this kind): a step
    # fitted there is noise, and the first failure dates it
    k = np.arange(2880)
    ts = T0 + pd.to_timedelta(k * 30, unit="s")
    new = (ts >= INCIDENT[0]) & (k % 2 == 1)
    j = np.cumsum(new) - 1  # index among web-2's requests
    failed = new & np.isin(j, [40, 150, 300, 420, 500, 610, 700])
    requests = pd.DataFrame({"request_id": [f"r{i}" for i in k], "ts": ts,
                             "client_version": np.where(new, "web-2", "web-1"),
                             "status": np.where(failed, "error", "ok"), "latency_ms": 80.0})
    result = failure_concentration(make_case(requests=requests), BASELINE, INCIDENT)
    (finding,) = [f for f in result.findings() if f.id == "integration.failure_segment"]
    assert pd.Timestamp(finding.onset) == requests[failed].ts.min()
