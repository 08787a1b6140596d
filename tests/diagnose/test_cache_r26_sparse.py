"""Cache staleness in a sparsely logged request log (issue 22, R26). Varied tuning
cache_staleness s5, s8 and s10, with the true windows, read none: the log keeps 1 request in
8 to 32, so a 4-16 h episode leaves 6-10 stale hits in the incident (35-62% of its hits)
against 0 stale of 567-884 baseline hits, under the fixed floor of 20 stale hits. A few stale
hits now fire when their rise over the baseline is significant by an exact test and the
episode outlasts the grace period; a rollout draining (version_skew s16: 3 hits of the old
version in the five minutes after a rollback) and a rise the exact test does not carry still
give nothing."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from tests.diagnose.conftest import make_case
from tests.diagnose.test_cache import BASELINE, DEPLOY, DEPLOY_EVENTS, INCIDENT, _requests
from toolkit.diagnose.integration.cache import cache_staleness


def _sparse(stale_for: timedelta, every: int, seed: int = 3) -> pd.DataFrame:
    """One logged request in ``every`` of _requests' (one every 30 s) after the deploy of v2 at
    12:00 (one in 3 before it: the baseline holds about 140 hits, none stale); cache hits keep
    v1's answers for ``stale_for``."""
    rows = _requests(stale_for=stale_for, seed=seed, hit_rate=0.3)
    keep = np.where(rows["ts"] < DEPLOY, rows.index % 3 == 0, rows.index % every == 0)
    return rows[keep]


def _stale(requests: pd.DataFrame) -> int:
    after = requests[requests["ts"] >= DEPLOY]
    return int((after["cache_hit"] & (after["cache_model_version"] == "v1")).sum())


def test_a_few_stale_hits_over_hours_are_a_stale_cache():
    # one logged request every 15 min: about 6 stale hits in 6 h, none in the baseline
    requests = _sparse(timedelta(hours=6), every=30)
    assert 3 <= _stale(requests) < 20
    result = cache_staleness(make_case(requests=requests, events=DEPLOY_EVENTS), BASELINE,
                             INCIDENT)
    (finding,) = result.findings()  # none before: fewer than 20 stale hits
    assert finding.severity in {"medium", "high"}
    assert finding.onset == DEPLOY.to_pydatetime()


def test_a_rollout_draining_for_minutes_is_not_a_stale_cache():
    # stale hits only in the ten minutes after the deploy, logged densely enough to count 3+
    requests = _sparse(timedelta(minutes=10), every=1, seed=5)
    assert 3 <= _stale(requests) < 20
    result = cache_staleness(make_case(requests=requests, events=DEPLOY_EVENTS), BASELINE,
                             INCIDENT)
    assert result.findings() == []


def test_a_few_stale_hits_that_the_baseline_already_had_are_not_a_rise():
    # the baseline holds stale hits at the same share: few hits carry no exact-test rise
    requests = _sparse(timedelta(hours=6), every=30)
    hits = requests["cache_hit"] & (requests["ts"] < DEPLOY)
    chronic = requests.assign(cache_model_version=np.where(
        hits & (np.arange(len(requests)) % 3 == 0), "v0", requests["cache_model_version"]))
    result = cache_staleness(make_case(requests=chronic, events=DEPLOY_EVENTS), BASELINE,
                             INCIDENT)
    assert all(f.severity == "low" for f in result.findings()) or result.findings() == []
