"""``timeouts.below_tail``: the client timeout in force against the baseline's tail, per bucket.

Varied tuning timeout_misconfiguration seed 1: a 160 ms client timeout for eight hours in a log
that keeps only the answers the client waited for (no timeout logged, the tail past 160 ms
missing). The window detector's scan compares the first quarter of three weeks with the rest,
where eight hours of cut tail move nothing, and no timeline showed the change: the window went
to a latency blip 13 hours later.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from tests.diagnose.conftest import make_case
from tests.diagnose.test_timeouts import T0, _config, _requests
from toolkit.diagnose.integration.timeouts import timeout_budget

# a scan-like split: a 4-hour baseline, then 14 hours in which the timeout is low for 3 only
BASE = (T0, T0 + timedelta(hours=4))
REST = (T0 + timedelta(hours=4), T0 + timedelta(hours=18))
LOW = (T0 + timedelta(hours=8), T0 + timedelta(hours=11))


def _cut_log():
    requests = _requests()
    low = (requests["ts"] >= LOW[0]) & (requests["ts"] < LOW[1])
    requests = requests[~low | (requests["latency_ms"] <= 100)]  # the tail past 100 ms is lost
    events = _config((LOW[0], "client", None, {"client": "all", "client_timeout_ms": 100,
                                               "previous_client_timeout_ms": 3000}),
                     (LOW[1], "client", None, {"client": "all", "client_timeout_ms": 3000}))
    return requests, events


def test_a_cut_tail_steps_the_below_tail_signal():
    requests, events = _cut_log()
    result = timeout_budget(make_case(requests=requests, events=events), BASE, REST,
                            bucket=timedelta(hours=1))
    assert (requests["status"] == "timeout").sum() == 0
    signals = result.signals()
    below = signals[signals["signal"] == "timeouts.below_tail"].set_index("bucket_start")["value"]
    # by hand: the baseline's completed p99.9 (about 250 ms) against 3000 ms, then 100 ms
    base = requests[(requests["ts"] < BASE[1])]["latency_ms"]
    assert 100 < np.quantile(base, 0.999) < 3000
    expected = pd.Series(0.0, index=below.index)
    expected[(below.index >= LOW[0]) & (below.index < LOW[1])] = 1.0
    pd.testing.assert_series_equal(below, expected, check_names=False)
    assert len(below) == 18
    # nothing else in the timeline shows it: no timeout, no over-budget request
    rest = signals[signals["signal"].isin(["timeouts.timeout_rate",
                                           "timeouts.over_budget_share"])]
    assert (rest["value"] == 0).all()


def test_a_timeout_above_the_tail_or_none_known_gives_no_step():
    requests = _requests()
    calm = _config((LOW[0], "client", None, {"client": "all", "client_timeout_ms": 5000,
                                             "previous_client_timeout_ms": 3000}))
    result = timeout_budget(make_case(requests=requests, events=calm), BASE, REST,
                            bucket=timedelta(hours=1))
    below = result.signals().query("signal == 'timeouts.below_tail'")["value"]
    assert len(below) == 18 and (below == 0).all()
    # no timeout configuration at all: nothing to say, no signal
    bare = timeout_budget(make_case(requests=requests), BASE, REST, bucket=timedelta(hours=1))
    assert "timeouts.below_tail" not in set(bare.signals()["signal"])
    assert bare.below_tail().empty


def test_a_change_inside_a_bucket_gives_its_share_of_requests():
    # the timeout drops at 08:20 and returns at 10:40: by hand, with a request every 15 s,
    # bucket 08 holds 160 of its 240 requests under 100 ms and bucket 10 holds 160 of 240,
    # so the detector dates the step inside the bucket, not at its start (varied tuning
    # timeout_misconfiguration s3 and s6 were dated up to a bucket early by a 0/1 value)
    start, end = T0 + timedelta(hours=8, minutes=20), T0 + timedelta(hours=10, minutes=40)
    events = _config((start, "client", None, {"client": "all", "client_timeout_ms": 100,
                                              "previous_client_timeout_ms": 3000}),
                     (end, "client", None, {"client": "all", "client_timeout_ms": 3000}))
    result = timeout_budget(make_case(requests=_requests(), events=events), BASE, REST,
                            bucket=timedelta(hours=1))
    below = result.below_tail().set_index("bucket_start")["below_tail"]
    assert below[T0 + timedelta(hours=8)] == 160 / 240
    assert below[T0 + timedelta(hours=9)] == 1.0
    assert below[T0 + timedelta(hours=10)] == 160 / 240
    assert below.drop([T0 + timedelta(hours=h) for h in (8, 9, 10)]).eq(0).all()


def test_a_window_that_runs_past_the_restore_still_finds_the_cut_tail():
    # the window holds 7 hours after the timeout was put back (a detected window rarely ends
    # at the restore): the slow answers sent then are not under the low timeout (varied tuning
    # timeout_misconfiguration s1: the window found, 8 min off, then read none)
    requests, events = _cut_log()
    result = timeout_budget(make_case(requests=requests, events=events), BASE, REST,
                            bucket=timedelta(hours=1))
    # over the whole window the completed tail is above the 100 ms timeout ...
    rest = requests[(requests["ts"] >= REST[0]) & (requests["ts"] < REST[1])]
    assert np.quantile(rest["latency_ms"], 0.999) > 100
    # ... but nothing sent under it ran past it: the cut tail is found, dated at the change
    (finding,) = result.findings()
    assert finding.evidence["route"] == "cut_tail" and finding.severity == "medium"
    under = rest[(rest["ts"] >= LOW[0]) & (rest["ts"] < LOW[1])]["latency_ms"]
    assert finding.evidence["incident_p999_ms"] <= under.max() <= 100
    assert pd.Timestamp(finding.onset) == LOW[0]
