"""Cache staleness: numbers, stale hits after a model update, healthy caches, missing inputs."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from tests.diagnose.conftest import make_case
from toolkit.diagnose.integration.cache import ID, cache_staleness

T0 = pd.Timestamp("2026-03-01T00:00Z")
BASELINE = (T0, T0 + timedelta(hours=12))
INCIDENT = (T0 + timedelta(hours=12), T0 + timedelta(hours=20))
DEPLOY = T0 + timedelta(hours=12)


def _requests(n=2400, *, seed=3, stale_for=timedelta(hours=3), canary=False, hit_rate=0.35):
    """One request every 30 s for 20 h. v2 replaces v1 at 12:00 on non-cached requests; cache
    hits keep v1's answers for ``stale_for`` after it (``canary``: v1 keeps half the traffic)."""
    rng = np.random.default_rng(seed)
    k = np.arange(n)
    ts = T0 + pd.to_timedelta(k * 30, unit="s")
    after = ts >= DEPLOY
    hit = rng.random(n) < hit_rate
    model = np.where(after, "v2", "v1")
    if canary:
        model = np.where(after & (k % 2 == 0), "v1", model)
    cached = np.where(after & (ts >= DEPLOY + stale_for), "v2", "v1")
    return pd.DataFrame({"request_id": [f"r{i}" for i in k], "ts": ts, "model_version": model,
                         "cache_hit": hit, "cache_model_version": np.where(hit, cached, None)})


def _events(*rows):
    return pd.DataFrame({"ts": [r[0] for r in rows], "kind": [r[1] for r in rows],
                         "artifact": [r[2] for r in rows], "version": [r[3] for r in rows],
                         "detail": [json.dumps(r[4]) for r in rows]})


DEPLOY_EVENTS = _events((T0 - timedelta(days=2), "deploy", "model", "v1", {}),
                        (DEPLOY, "deploy", "model", "v2", {}),
                        (T0 - timedelta(days=5), "config_change", "cache", None,
                         {"cache_ttl_s": 10800}))


def test_numbers_match_pandas():
    requests = _requests()
    con = make_case(requests=requests, events=DEPLOY_EVENTS)
    result = cache_staleness(con, BASELINE, INCIDENT, bucket=timedelta(hours=1))
    assert result.not_assessed == ()
    frame = requests.copy()
    frame["window"] = np.select(
        [(frame.ts >= BASELINE[0]) & (frame.ts < BASELINE[1]),
         (frame.ts >= INCIDENT[0]) & (frame.ts < INCIDENT[1])], ["baseline", "incident"], None)
    deployed = np.where(frame.ts >= DEPLOY, "v2", "v1")  # the deploy sits on a bucket edge
    frame["stale"] = frame.cache_hit & (frame.cache_model_version != deployed)
    frame = frame.dropna(subset=["window"])
    expected = frame.groupby("window").agg(requests=("ts", "size"), hits=("cache_hit", "sum"),
                                           stale_hits=("stale", "sum"))
    table = result.table.set_index("window")
    for column in ("requests", "hits", "stale_hits"):
        assert (table[column] == expected[column]).all(), column
    np.testing.assert_allclose(table["stale_share"], expected["stale_hits"] / expected["hits"])
    np.testing.assert_allclose(table["hit_rate"], expected["hits"] / expected["requests"])
    frame["bucket"] = frame["ts"].dt.floor("h")
    per = frame[frame.cache_hit].groupby("bucket")["stale"].mean()
    tl = result.timeline.set_index("bucket_start")
    np.testing.assert_allclose(tl.loc[per.index, "stale_share"], per)
    assert (tl.loc[tl.index >= DEPLOY, "announced"] == "v2").all()
    # the episode: from the deploy to the last stale hit, against the 3 h TTL
    (episode,) = result.episodes.itertuples()
    stale = frame[frame.stale]
    assert episode.cache_model_version == "v1" and episode.stale_hits == len(stale)
    assert episode.update_at == DEPLOY and episode.update_source == "deploy event"
    assert episode.duration_s == (stale.ts.max() - DEPLOY).total_seconds()
    assert result.ttl_s == 10800
    assert episode.duration_over_ttl == pytest.approx(episode.duration_s / 10800)


def test_stale_hits_until_ttl_are_high():
    con = make_case(requests=_requests(), events=DEPLOY_EVENTS)
    result = cache_staleness(con, BASELINE, INCIDENT)
    (finding,) = result.findings()
    assert finding.id == "integration.cache_staleness" and finding.severity == "high"
    # every hit of the episode's 3 h is stale; over the whole 8 h window, 3/8 of them
    assert finding.statistic == pytest.approx(1.0, abs=0.02)
    assert finding.evidence["window_share"] == pytest.approx(3 / 8, abs=0.05)
    assert finding.evidence["cache_model_version"] == "v1"
    assert finding.evidence["duration_over_ttl"] == pytest.approx(1.0, abs=0.02)
    assert abs(finding.onset - DEPLOY.to_pydatetime()) <= timedelta(minutes=5)
    json.dumps(finding.to_dict())
    assert set(result.signals()["signal"]) == {"cache.stale_share", "cache.hit_rate"}


def test_stale_hits_found_without_events():
    result = cache_staleness(make_case(requests=_requests()), BASELINE, INCIDENT)
    (finding,) = result.findings()
    assert finding.severity == "high"
    episode = result.main_episode()
    assert episode["update_source"] == "last non-cached request of the version"
    assert episode["update_at"] < DEPLOY  # the last v1 answer computed before the update
    assert f"{ID}.ttl" in {g.check for g in result.not_assessed}


def test_healthy_caches_give_no_finding():
    # the cache is flushed with the deploy: hits serve v2 at once
    flushed = _requests(stale_for=timedelta(0))
    events = pd.concat([DEPLOY_EVENTS, _events((DEPLOY, "cache_flush", "cache", None, {}))])
    result = cache_staleness(make_case(requests=flushed, events=events), BASELINE, INCIDENT)
    assert result.value("incident", "stale_hits") == 0 and result.findings() == []

    # a canary keeps v1 on half of the non-cached traffic: v1 cache hits are still legitimate
    canary = _requests(canary=True, stale_for=timedelta(hours=20))
    result = cache_staleness(make_case(requests=canary, events=DEPLOY_EVENTS), BASELINE,
                             INCIDENT)
    assert result.value("incident", "stale_hits") == 0 and result.findings() == []

    # a handful of stale hits right after the deploy (in-flight entries): not high
    brief = _requests(stale_for=timedelta(minutes=10))
    result = cache_staleness(make_case(requests=brief, events=DEPLOY_EVENTS), BASELINE,
                             INCIDENT, min_hits=5)
    assert all(f.severity != "high" for f in result.findings())


def test_sparse_traffic_still_shows_a_stale_cache():
    # one request every 5 minutes: ~25 stale hits in the incident, a count too small for a
    # fixed threshold of 50 but a rise from 0% to about half of the hits
    sparse = _requests(stale_for=timedelta(hours=4), hit_rate=0.5)
    sparse = sparse[sparse.index % 10 == 0]
    result = cache_staleness(make_case(requests=sparse, events=DEPLOY_EVENTS), BASELINE,
                             INCIDENT)
    assert 20 <= result.value("incident", "stale_hits") < 50
    (finding,) = result.findings()
    assert finding.severity == "high"
    # about the same share of stale hits in the baseline already: chronic, not what changed
    chronic = sparse.assign(cache_model_version=np.where(
        sparse["cache_hit"] & (sparse["ts"] < DEPLOY) & (sparse.index % 20 == 0), "v0",
        sparse["cache_model_version"]))
    result = cache_staleness(make_case(requests=chronic, events=DEPLOY_EVENTS), BASELINE,
                             INCIDENT)
    assert result.value("baseline", "stale_share") > 0.3
    assert [f.severity for f in result.findings()] == ["low"]


def test_missing_inputs_are_not_assessed():
    requests = _requests(n=600)
    windows = ((T0, T0 + timedelta(hours=2)), (T0 + timedelta(hours=2), T0 + timedelta(hours=5)))
    for drop, words in ((["cache_hit"], "cache_hit"), (["cache_model_version"],
                                                        "cache_model_version"),
                        (["model_version"], "deployed model version")):
        result = cache_staleness(make_case(requests=requests.drop(columns=drop)), *windows)
        assert result.not_assessed[0].check == ID, drop
        assert words in result.not_assessed[0].reason
        assert result.findings() == [] and result.signals().empty
    no_hits = requests.assign(cache_hit=False, cache_model_version=None)
    result = cache_staleness(make_case(requests=no_hits), *windows)
    assert "no cache hits" in result.not_assessed[0].reason
    import toolkit as tk
    assert cache_staleness(tk.connect(), BASELINE, INCIDENT).not_assessed


def test_plot_and_frame():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.axes import Axes

    result = cache_staleness(make_case(requests=_requests(), events=DEPLOY_EVENTS), BASELINE,
                             INCIDENT)
    assert isinstance(result.plot(), Axes)
    frame = result.to_frame()
    assert (frame["diagnostic"] == ID).all() and len(frame) == 2
    assert len(result.sql) == 1
    assert "Cache staleness" in result._repr_html_()
    import toolkit as tk
    assert isinstance(cache_staleness(tk.connect(), BASELINE, INCIDENT).plot(), Axes)


@pytest.mark.parametrize("seed", [1, 2])
def test_simulated_cache_staleness_is_high_and_none_is_quiet(seed):
    from tests.diagnose.test_versions import simulated

    con, baseline, incident, truth = simulated("cache_staleness", seed)
    (finding,) = cache_staleness(con, baseline, incident).findings()
    assert finding.severity == "high"
    onset = pd.Timestamp(truth["onset"])
    assert abs(pd.Timestamp(finding.onset) - onset) <= timedelta(minutes=15)
    con, baseline, incident, _ = simulated("none", seed)
    assert all(f.severity != "high" for f in cache_staleness(con, baseline, incident).findings())


def test_a_short_episode_in_a_long_window_still_fires_dated_at_the_update():
    # the window detector's scan: ten days, the first quarter as baseline; a model deploy on
    # day 7 leaves 3 h of stale cache hits, 1.7% of the 7.5-day window's hits (below the 5%
    # threshold: the old finding did not fire and the detector placed the window days away)
    rng = np.random.default_rng(7)
    n = 7200
    ts = T0 + pd.to_timedelta(np.arange(n) * 120, unit="s")
    deploy = T0 + timedelta(days=7, hours=3)
    hit = rng.random(n) < 0.35
    model = np.where(ts >= deploy, "v2", "v1")
    cached = np.where((ts >= deploy) & (ts >= deploy + timedelta(hours=3)), "v2", "v1")
    requests = pd.DataFrame({"request_id": [f"r{i}" for i in range(n)], "ts": ts,
                             "model_version": model, "cache_hit": hit,
                             "cache_model_version": np.where(hit, cached, None)})
    events = _events((T0 - timedelta(days=2), "deploy", "model", "v1", {}),
                     (deploy, "deploy", "model", "v2", {}))
    quarter = T0 + timedelta(days=2, hours=12)
    end = T0 + timedelta(days=10)
    result = cache_staleness(make_case(requests=requests, events=events), (T0, quarter),
                             (quarter, end), bucket=timedelta(hours=1))
    (finding,) = result.findings()
    assert finding.evidence["window_share"] < 0.05
    assert finding.statistic >= 0.9
    assert finding.severity in ("medium", "high")
    assert pd.Timestamp(finding.onset) == deploy
