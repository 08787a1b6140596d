"""Cache hits served by a model version other than the deployed one (cache staleness).

Recipe
------
One aggregate query over ``requests`` (span covering both windows) groups by time bucket,
window label, ``cache_hit``, ``model_version``, ``cache_model_version`` and the model version
*announced* at the request's time, and returns requests with first and last request time. The
announced version is a step function the engine evaluates per request (a ``CASE`` on time):
the version of the latest ``deploy`` / ``rollback`` event of artifact ``model``, NULL before the
first one. Python then decides on these few hundred rows:

* **live versions** of a *segment* (a time bucket, split at model events): the
  ``model_version`` values with >= 1% of the segment's non-cached requests, or >= 10% for a
  version other than the announced one (a canary keeps the old version live; the few requests
  an old version still answers while a rollout drains do not); a segment between two where a
  version is live counts as live too when the gap is too short to be a real absence (fewer
  than 10 of its requests expected there at its share on either side: sparse traffic);
* a cache hit is **stale** when its ``cache_model_version`` is logged, is not a live version of
  its bucket, and differs from the announced version (when one is announced). A canary that
  still serves the old version keeps old cached answers legitimate; without model events the
  live versions alone decide;
* per stale ``cache_model_version``, a **staleness episode**: first and last stale hit, the
  **model update** (the latest model deploy / rollback event at or before the first stale hit,
  else the last non-cached request the version served before it), the **duration** (update to
  last stale hit; a lower bound, ``ongoing``, when stale hits reach the span's last bucket) and
  its ratio to the cache **TTL** in force at the update (``cache_ttl_s``, ``ttl_s``,
  ``cache_ttl_ms``, ``cache_ttl_min``, ``cache_ttl_h`` in event detail, else ``case_meta``).

**Finding** ``integration.cache_staleness`` (statistic: share of the incident's cache hits that
are stale, over the incident's time buckets from the main episode's first stale hit to its
last when that is higher: a day-long episode in an eleven-day window, as in the window
detector's scan, is judged over its day; the whole window's share is ``window_share`` in the
evidence; threshold ``min_share``):

* it fires with >= ``min_hits`` (20) stale hits in the incident and a stale share of hits
  >= ``min_share`` (5%); with fewer, down to ``MIN_SPARSE_HITS`` (3), only when the share
  rose over the baseline's at p < 1e-3 by a one-sided Fisher exact test and the episode
  lasted >= ``grace`` after the model update (a request log sampled 1 in 30 keeps a handful
  of a six-hour episode's stale hits, and a baseline of hundreds of hits with none stale
  makes even a few significant; the rise below is then read with the same exact test, as the
  normal approximation overstates it on so few; three hits in the five minutes after a
  rollback are the old version's replicas draining);
* **medium** or **high** only when that share rose over the baseline's by >= ``min_share``
  and significantly (two-proportion z test, p < 1e-3: sparse cases have few hits, so a count
  threshold alone cannot tell a rise from noise);
* **high** when, in addition, stale hits are >= 1% of all incident requests and the episode
  lasted >= ``grace`` (30 min) after the model update (or the update is not visible), i.e.
  the cache was not invalidated with the model;
* **medium** otherwise (a small or short-lived stale tail);
* **low** when the incident's stale share exceeds the baseline's by less than ``min_share``
  or not significantly (chronic staleness, not what changed).

Onset: the model update of the main episode (the largest), when it precedes the first stale
hit in the first bucket at or after the baseline's end whose stale share of hits is
>= ``min_share`` and is no more than 24 h before the baseline's end; else that first stale hit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import ibis
import numpy as np
import pandas as pd

from toolkit._validation import check_windows
from toolkit.diagnose import _stats as st
from toolkit.diagnose._base import DiagnosticResult, Finding, NotAssessed, timeline_signals
from toolkit.diagnose._case import CaseView, case_view, choose_bucket, within
from toolkit.diagnose._engine import Recorder, bucket_expr, window_label
from toolkit.diagnose._engines import CaseSource
from toolkit.diagnose.integration.timeouts import _config_history
from toolkit.types import Window

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["cache_staleness", "CacheStalenessResult", "ID", "TTL_KEYS"]

ID = "integration.cache"
#: Detail / case_meta keys that carry the cache TTL, with their factor to seconds.
TTL_KEYS: dict[str, float] = {
    "cache_ttl_s": 1.0, "ttl_s": 1.0, "cache_ttl_seconds": 1.0, "ttl_seconds": 1.0,
    "cache_ttl_ms": 0.001, "ttl_ms": 0.001, "cache_ttl_min": 60.0, "cache_ttl_h": 3600.0,
    "cache_ttl": 1.0, "ttl": 1.0,
}
MIN_SHARE = 0.05
MIN_HITS = 20
#: Fewest stale hits that fire, below ``min_hits``, when their rise is significant (exact test).
MIN_SPARSE_HITS = 3
#: Significance a rise of the stale share over the baseline must reach.
MAX_PVALUE = 1e-3
LIVE_SHARE = 0.01
CANARY_SHARE = 0.10
MIN_EXPECTED = 10.0
HIGH_REQUEST_SHARE = 0.01
GRACE = timedelta(minutes=30)
ONSET_LOOKBACK = timedelta(hours=24)


@dataclass(frozen=True, kw_only=True, repr=False)
class CacheStalenessResult(DiagnosticResult):
    """Stale cache hits per window and over time, staleness episodes against the TTL.

    Attributes
    ----------
    table
        One row per window: ``window``, ``requests``, ``hits``, ``hit_rate``, ``stale_hits``,
        ``stale_share`` (of hits), ``stale_request_share`` (of all requests).
    timeline
        Per time bucket: ``bucket_start``, ``requests``, ``hits``, ``hit_rate``,
        ``stale_hits``, ``stale_share``, ``announced`` (model version of the latest model
        event), ``live`` (most-served non-cached version), ``first_stale``.
    episodes
        One row per stale ``cache_model_version``: ``cache_model_version``, ``stale_hits``,
        ``first_stale``, ``last_stale``, ``update_at``, ``update_source``, ``duration_s``,
        ``ongoing``, ``ttl_s``, ``duration_over_ttl``.
    events
        Model deploy / rollback events, cache flushes and TTL changes over the span.
    ttl_s
        The cache TTL in force at the main episode's update (NaN when unknown).
    """

    id = ID
    title = "Cache staleness"

    ttl_s: float = float("nan")
    min_share: float = MIN_SHARE
    min_hits: int = MIN_HITS
    grace: timedelta = GRACE
    timeline: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    episodes: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    events: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    def value(self, window: str, column: str) -> float:
        rows = self.table[self.table["window"] == window] if not self.table.empty else self.table
        return float(rows[column].iloc[0]) if len(rows) else float("nan")

    def main_episode(self) -> pd.Series | None:
        """The episode with the most stale hits."""
        if self.episodes.empty:
            return None
        return self.episodes.sort_values("stale_hits", ascending=False).iloc[0]

    def headline(self) -> dict[str, Any]:
        if self.table.empty:
            return {}
        out: dict[str, Any] = {
            "hit rate incident": self.value("incident", "hit_rate"),
            "stale share baseline": self.value("baseline", "stale_share"),
            "stale share incident": self.value("incident", "stale_share"),
            "stale hits incident": int(self.value("incident", "stale_hits")),
            "TTL s": self.ttl_s,
        }
        ep = self.main_episode()
        if ep is not None:
            out["staleness duration s"] = float(ep["duration_s"])
            out["duration / TTL"] = float(ep["duration_over_ttl"])
        return out

    def findings(self) -> list[Finding]:
        if self.table.empty:
            return []
        share = self.value("incident", "stale_share")
        stale = self.value("incident", "stale_hits")
        hits, base_hits = self.value("incident", "hits"), self.value("baseline", "hits")
        window_share = share
        ep = self.main_episode()
        during = self._episode_counts(ep)
        if during is not None and during[1] > 0 and during[0] / during[1] > share:
            # judged over the episode: a day of stale hits in a window of eleven days (the
            # window detector's scan) is 3% of the window's hits but 30% of the day's
            stale, hits = during
            share = stale / hits
        base = self.value("baseline", "stale_share")
        base = 0.0 if np.isnan(base) else base
        sparse = stale < self.min_hits
        if not (stale >= min(self.min_hits, MIN_SPARSE_HITS) and share >= self.min_share):
            return []
        if sparse and (np.isnan(base_hits) or base_hits <= 0):
            return []  # a few stale hits with no baseline hits to test them against
        rose = True
        if not np.isnan(base_hits) and base_hits > 0:
            if sparse:
                pvalue = st.fisher_greater(stale, hits, round(base * base_hits), base_hits)
            else:
                _, pvalue = st.two_proportion_z(base * base_hits, base_hits, stale, hits)
            rose = share > base and pvalue < MAX_PVALUE
            if sparse and not rose:
                return []
        of_requests = self.value("incident", "stale_request_share")
        duration = float(ep["duration_s"]) if ep is not None else float("nan")
        persistent = bool(np.isnan(duration) or duration >= self.grace.total_seconds())
        if sparse and not persistent:
            return []  # a few hits within minutes of the update: a rollout draining
        if share - base < self.min_share or not rose:
            severity = "low"
        elif of_requests >= HIGH_REQUEST_SHARE and persistent:
            severity = "high"
        else:
            severity = "medium"
        summary = (f"{share:.1%} of the incident's cache hits ({int(stale)}, "
                   f"{of_requests:.1%} of requests) came from a model version no longer deployed")
        evidence: dict[str, Any] = {"baseline_share": base, "stale_hits": int(stale),
                                    "window_share": window_share,
                                    "stale_request_share": of_requests,
                                    "hit_rate": self.value("incident", "hit_rate"),
                                    "ttl_s": self.ttl_s}
        if ep is not None:
            summary += (f" ({ep['cache_model_version']}), for {_duration(duration)}"
                        f"{' so far' if ep['ongoing'] else ''} after the model update")
            if not np.isnan(self.ttl_s):
                summary += f" against a TTL of {_duration(self.ttl_s)}"
            evidence.update({
                "cache_model_version": ep["cache_model_version"],
                "update_at": _time_or_none(ep["update_at"]),
                "update_source": ep["update_source"],
                "first_stale": _time_or_none(ep["first_stale"]),
                "last_stale": _time_or_none(ep["last_stale"]), "duration_s": duration,
                "ongoing": bool(ep["ongoing"]),
                "duration_over_ttl": float(ep["duration_over_ttl"])})
        if severity == "low":
            summary += f"; the baseline's stale share was already {base:.1%}"
        return [Finding(
            id="integration.cache_staleness", pathway="integration", severity=severity,
            statistic=share, threshold=self.min_share, summary=summary + ".",
            evidence=evidence, onset=self._update_onset(ep, self._onset()),
            diagnostic=self.id,
        )]

    def _episode_counts(self, ep: pd.Series | None) -> tuple[float, float] | None:
        """Stale hits and hits in the incident's time buckets from the main episode's first
        stale hit to its last (``None`` without an episode or a timeline)."""
        tl = self.timeline
        if ep is None or tl.empty or pd.isna(ep["first_stale"]) or pd.isna(ep["last_stale"]):
            return None
        start = max(pd.Timestamp(ep["first_stale"]), pd.Timestamp(self.incident.start))
        end = min(pd.Timestamp(ep["last_stale"]), pd.Timestamp(self.incident.end))
        part = tl[(tl["bucket_end"] > start) & (tl["bucket_start"] <= end)
                  & (tl["bucket_end"] > pd.Timestamp(self.incident.start))
                  & (tl["bucket_start"] < pd.Timestamp(self.incident.end))]
        if part.empty:
            return None
        return float(part["stale_hits"].sum()), float(part["hits"].sum())

    def _update_onset(self, ep: pd.Series | None, observed: datetime | None
                      ) -> datetime | None:
        """The model update that started the main episode, when it precedes the observed onset
        (no earlier than ``ONSET_LOOKBACK`` before the baseline's end); else the observed one."""
        if ep is None or pd.isna(ep["update_at"]):
            return observed
        update = pd.Timestamp(ep["update_at"])
        if update < pd.Timestamp(self.baseline.end - ONSET_LOOKBACK) or (
                observed is not None and update > pd.Timestamp(observed)):
            return observed
        return update.to_pydatetime()

    def _onset(self) -> datetime | None:
        tl = self.timeline
        if tl.empty:
            return None
        part = tl[(tl["bucket_end"] > pd.Timestamp(self.baseline.end))
                  & (tl["bucket_start"] < pd.Timestamp(self.incident.end))]
        hits = part[(part["stale_share"] >= self.min_share) & part["first_stale"].notna()]
        return None if hits.empty else pd.Timestamp(hits["first_stale"].iloc[0]).to_pydatetime()

    def signals(self) -> pd.DataFrame:
        return timeline_signals(self.timeline, ["stale_share", "hit_rate"], "cache.", dropna=True)

    def plot(self, ax: Axes | None = None, **kwargs: Any) -> Axes:
        """Stale share of cache hits and hit rate over time, model events and the TTL."""
        from toolkit.plotting import WINDOW_COLORS, axes

        ax = axes(ax, figsize=(10, 4))
        if self.timeline.empty:
            return super().plot(ax)
        import seaborn as sns

        data = self.timeline.melt(id_vars="bucket_start", value_vars=["stale_share", "hit_rate"],
                                  var_name="series", value_name="share").dropna()
        sns.lineplot(data=data, x="bucket_start", y="share", hue="series", ax=ax)
        for e in self.events.itertuples():
            ax.axvline(e.ts, color="#8C8C8C", lw=1, ls=":")
            ax.annotate(f"{e.kind} {e.artifact or ''} {e.version or ''}", (e.ts, 1.0),
                        rotation=90, fontsize=7, va="top", ha="right",
                        xycoords=("data", "axes fraction"))
        ep = self.main_episode()
        if ep is not None and not pd.isna(ep["update_at"]) and not np.isnan(self.ttl_s):
            start = pd.Timestamp(ep["update_at"])
            ax.axvspan(start, start + pd.Timedelta(seconds=self.ttl_s), color="#CCB974",
                       alpha=0.12, label="TTL after model update")
        ax.axvspan(self.incident.start, self.incident.end, color=WINDOW_COLORS["incident"],
                   alpha=0.08, label="incident")
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("time (UTC)")
        ax.set_ylabel("share")
        ax.set_title("Cache hits from a model version no longer deployed")
        ax.legend(loc="upper left")
        return ax


def cache_staleness(
    con: CaseSource,
    baseline: Window | str,
    incident: Window | str,
    /,
    *,
    ttl_s: float | None = None,
    min_share: float = MIN_SHARE,
    min_hits: int = MIN_HITS,
    grace: timedelta = GRACE,
    bucket: timedelta | None = None,
    case: CaseView | None = None,
) -> CacheStalenessResult:
    """Share and duration of cache hits served by a model version other than the deployed one.

    Parameters
    ----------
    con
        Case connection.
    baseline, incident
        The windows to compare.
    ttl_s
        The cache TTL in seconds (default: from events, else ``case_meta.cache_ttl_s``).
    min_share, min_hits, grace
        Finding thresholds (see the module docstring).
    bucket
        Timeline bucket width.
    case
        Shared case view.

    Returns
    -------
    CacheStalenessResult

    Examples
    --------
    >>> import pandas as pd, toolkit as tk
    >>> con = tk.connect()
    >>> ts = pd.date_range("2026-03-01", periods=800, freq="min", tz="UTC")
    >>> hit = [k % 2 == 0 for k in range(800)]
    >>> model = ["v1"] * 400 + ["v2"] * 400                   # v2 deployed at 06:40
    >>> _ = tk.load(con, pd.DataFrame({"request_id": range(800), "ts": ts, "model_version": model,
    ...     "cache_hit": hit, "cache_model_version": [m if h else None for m, h in zip(
    ...         ["v1"] * 600 + ["v2"] * 200, hit)]}), table="requests")   # v1 hits until 10:00
    >>> result = cache_staleness(con, (ts[0], ts[400]), (ts[400], ts[-1]), ttl_s=4 * 3600)
    >>> f = result.findings()[0]
    >>> f.severity, round(f.statistic, 2), round(result.main_episode()["duration_s"] / 60)
    ('high', 1.0, 199)
    >>> round(f.evidence["window_share"], 2)  # over the whole incident window, not its episode
    0.5
    """
    baseline, incident = check_windows(baseline, incident)
    case = case or case_view(con)
    base = dict(baseline=baseline, incident=incident, min_share=min_share, min_hits=min_hits,
                grace=grace)
    cols = case.columns.get("requests", {})
    # cache_hit must hold values; cache_model_version may be all NULL (no hits, or hits that do
    # not say which version answered: told apart below) but must exist to be selected
    missing = [c for c, present in (("cache_hit", cols), ("cache_model_version",
                                                           case.declared.get("requests", {})))
               if c not in present]
    if not case.counts.get("requests") or missing:
        reason = (f"requests have no {' or '.join(missing)} values" if missing
                  else "no requests")
        return CacheStalenessResult(**base, not_assessed=(NotAssessed(ID, reason),))
    model_events = _model_events(case)
    record = Recorder()
    span = Window(min(baseline.start, incident.start), max(baseline.end, incident.end))
    width = bucket or choose_bucket(span.duration)
    raw = case.table("requests")
    raw = raw.filter(within(raw.ts, span))
    t = raw.select(
        ts=raw.ts,
        bucket_start=bucket_expr(raw.ts, width),
        _window=window_label(raw.ts, baseline, incident),
        cache_hit=raw.cache_hit,
        model_version=raw.model_version if "model_version" in cols else ibis.null("string"),
        cache_model_version=raw.cache_model_version,
        announced=_announced(raw, model_events))
    groups = record(t.group_by(["bucket_start", "_window", "cache_hit", "model_version",
                                "cache_model_version", "announced"]).aggregate(
        requests=t.count(), first_ts=t.ts.min(), last_ts=t.ts.max()))
    groups = groups.rename(columns={"_window": "window"})
    for c in ("model_version", "cache_model_version", "announced"):
        groups[c] = groups[c].astype(object).where(groups[c].notna(), None)
    windows = set(groups["window"].dropna())
    if windows != {"baseline", "incident"}:
        gone = ", ".join(sorted({"baseline", "incident"} - windows))
        return CacheStalenessResult(**base, sql=record.sql, not_assessed=(
            NotAssessed(ID, f"no requests in the {gone} window"),))
    if not groups["cache_hit"].notna().any():
        return CacheStalenessResult(**base, sql=record.sql, not_assessed=(
            NotAssessed(ID, "cache_hit is not logged in the requests of the span"),))
    groups["hit"] = groups["cache_hit"].fillna(False).astype(bool)
    hits = groups[groups["hit"]]
    if hits.empty:
        return CacheStalenessResult(**base, sql=record.sql, not_assessed=(
            NotAssessed(ID, "no cache hits in the span"),))
    if not hits["cache_model_version"].notna().any():
        return CacheStalenessResult(**base, sql=record.sql, not_assessed=(
            NotAssessed(ID, "cache_model_version is not logged for cache hits"),))
    served = groups[~groups["hit"] & groups["model_version"].notna()]
    if served.empty and model_events.empty:
        return CacheStalenessResult(**base, sql=record.sql, not_assessed=(
            NotAssessed(ID, "the deployed model version is unknown: no model deploy / rollback "
                        "events and no model_version on non-cached requests"),))
    groups = _mark_stale(groups)
    gaps = []
    ttl_history = _config_history(case, TTL_KEYS, "ttl_s")
    episodes = _episodes(groups, model_events, ttl_history, ttl_s)
    main_ttl = float(ttl_s) if ttl_s is not None else (
        float(episodes.sort_values("stale_hits", ascending=False)["ttl_s"].iloc[0])
        if not episodes.empty else _ttl_at(ttl_history, pd.Timestamp(incident.start)))
    if np.isnan(main_ttl):
        gaps.append(NotAssessed(f"{ID}.ttl", "no cache TTL in events or case_meta: staleness "
                                "duration is not compared with the TTL"))
    table = _window_table(groups)
    timeline = _timeline(groups, width)
    events = _span_events(case, span, ttl_history)
    return CacheStalenessResult(**base, table=table, timeline=timeline, episodes=episodes,
                                events=events, ttl_s=main_ttl, sql=record.sql,
                                not_assessed=tuple(gaps))


def _model_events(case: CaseView) -> pd.DataFrame:
    ev = case.events
    if ev.empty:
        return ev
    keep = (ev["kind"].isin(["deploy", "rollback"]) & (ev["artifact"] == "model")
            & ev["version"].notna())
    return ev[keep].sort_values("ts", ignore_index=True)


def _announced(t: ibis.Table, events: pd.DataFrame) -> ibis.StringValue:
    """The version of the latest model deploy / rollback event at the row's time (CASE)."""
    if events.empty:
        return ibis.null("string")
    branches = []
    times = list(events["ts"]) + [None]
    for k, version in enumerate(events["version"]):
        cond = t.ts >= ibis.literal(pd.Timestamp(times[k]).to_pydatetime())
        if times[k + 1] is not None:
            cond = cond & (t.ts < ibis.literal(pd.Timestamp(times[k + 1]).to_pydatetime()))
        branches.append((cond, ibis.literal(str(version))))
    return ibis.cases(*branches, else_=ibis.null("string"))


def _mark_stale(groups: pd.DataFrame) -> pd.DataFrame:
    """Add ``stale``: a hit whose cache_model_version is neither live nor announced.

    Liveness is judged per *segment*: a time bucket, split at model events (the groups carry
    the announced version, so the part of a bucket after a deploy is its own segment).
    """
    g = groups.copy()
    g["_segment"] = list(zip(g["bucket_start"], g["announced"].fillna("\0"), strict=True))
    order = g.groupby("_segment", sort=False)["first_ts"].min().sort_values()
    segments = list(order.index)
    position = {seg: k for k, seg in enumerate(segments)}
    served = g[~g["hit"] & g["model_version"].notna()]
    totals = np.zeros(len(segments))
    for seg, n in served.groupby("_segment", sort=False)["requests"].sum().items():
        totals[position[seg]] = n
    announced = np.array([seg[1] for seg in segments], dtype=object)
    live: dict[str, np.ndarray] = {}
    for version, part in served.groupby("model_version"):
        counts = np.zeros(len(segments))
        for seg, n in part.groupby("_segment", sort=False)["requests"].sum().items():
            counts[position[seg]] = n
        # once an event announced another version, only a canary-sized share keeps one live
        floor = np.where((announced == "\0") | (announced == version), LIVE_SHARE,
                         CANARY_SHARE)
        live[version] = _live(counts, totals, floor)
    cmv = g["cache_model_version"]
    pos = g["_segment"].map(position).to_numpy()
    is_live = np.array([v in live and bool(live[v][p]) for v, p in zip(cmv, pos, strict=True)])
    announced_other = g["announced"].isna() | (g["announced"] != cmv)
    g["stale"] = (g["hit"] & cmv.notna() & ~is_live & announced_other).astype(bool)
    return g.drop(columns="_segment")


def _live(counts: np.ndarray, totals: np.ndarray, floor: np.ndarray) -> np.ndarray:
    """Segments where a version is live: it served >= ``floor`` of the non-cached requests, or
    the segment lies in a gap between two such segments too short to be a real absence (fewer
    than MIN_EXPECTED requests of the version expected in the gap at its share around it)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(totals > 0, counts / np.where(totals > 0, totals, 1), 0.0)
    served = (counts > 0) & (share >= floor)
    live = served.copy()
    idx = np.flatnonzero(served)
    for a, b in zip(idx[:-1], idx[1:], strict=True):
        if b - a > 1:
            expected = totals[a + 1:b].sum() * min(share[a], share[b])
            if expected < MIN_EXPECTED:
                live[a + 1:b] = True
    return live


def _window_table(groups: pd.DataFrame) -> pd.DataFrame:
    g = groups[groups["window"].notna()].assign(
        _hits=lambda d: np.where(d["hit"], d["requests"], 0),
        _stale=lambda d: np.where(d["stale"], d["requests"], 0))
    out = g.groupby("window").agg(requests=("requests", "sum"), hits=("_hits", "sum"),
                                  stale_hits=("_stale", "sum"))
    out = out.loc[["baseline", "incident"]].reset_index()
    out["hit_rate"] = out["hits"] / out["requests"]
    with np.errstate(invalid="ignore", divide="ignore"):
        out["stale_share"] = np.where(out["hits"] > 0, out["stale_hits"] / out["hits"].where(
            out["hits"] > 0, 1), np.nan)
    out["stale_request_share"] = out["stale_hits"] / out["requests"]
    return out[["window", "requests", "hits", "hit_rate", "stale_hits", "stale_share",
                "stale_request_share"]]


def _timeline(groups: pd.DataFrame, width: timedelta) -> pd.DataFrame:
    g = groups.assign(_hits=np.where(groups["hit"], groups["requests"], 0),
                      _stale=np.where(groups["stale"], groups["requests"], 0),
                      _first_stale=groups["first_ts"].where(groups["stale"]))
    tl = g.groupby("bucket_start").agg(requests=("requests", "sum"), hits=("_hits", "sum"),
                                       stale_hits=("_stale", "sum"),
                                       first_stale=("_first_stale", "min")).reset_index()
    tl["hit_rate"] = tl["hits"] / tl["requests"]
    with np.errstate(invalid="ignore", divide="ignore"):
        tl["stale_share"] = np.where(tl["hits"] > 0, tl["stale_hits"] / tl["hits"].where(
            tl["hits"] > 0, 1), np.nan)
    served = g[~g["hit"] & g["model_version"].notna()]
    live = (served.sort_values("requests", ascending=False).drop_duplicates("bucket_start")
            .set_index("bucket_start")["model_version"])
    announced = (g.dropna(subset=["announced"]).sort_values("requests", ascending=False)
                 .drop_duplicates("bucket_start").set_index("bucket_start")["announced"])
    tl["announced"] = tl["bucket_start"].map(announced)
    tl["live"] = tl["bucket_start"].map(live)
    tl["bucket_end"] = tl["bucket_start"] + width
    return tl.sort_values("bucket_start", ignore_index=True)[
        ["bucket_start", "bucket_end", "requests", "hits", "hit_rate", "stale_hits",
         "stale_share", "announced", "live", "first_stale"]]


def _episodes(groups: pd.DataFrame, model_events: pd.DataFrame, ttl_history: pd.DataFrame,
              ttl_s: float | None) -> pd.DataFrame:
    columns = ["cache_model_version", "stale_hits", "first_stale", "last_stale", "update_at",
               "update_source", "duration_s", "ongoing", "ttl_s", "duration_over_ttl"]
    stale = groups[groups["stale"]]
    if stale.empty:
        return pd.DataFrame(columns=columns)
    last_bucket = groups["bucket_start"].max()
    rows = []
    for version, part in stale.groupby("cache_model_version"):
        first, last = part["first_ts"].min(), part["last_ts"].max()
        update, source = pd.NaT, ""
        if not model_events.empty:
            before = model_events[(model_events["ts"] <= first)
                                  & (model_events["version"] != version)]
            if len(before):
                update, source = before["ts"].iloc[-1], f"{before['kind'].iloc[-1]} event"
        if pd.isna(update):
            own = groups[~groups["hit"] & (groups["model_version"] == version)
                         & (groups["last_ts"] <= first)]
            if len(own):
                update, source = own["last_ts"].max(), "last non-cached request of the version"
        duration = (last - update).total_seconds() if not pd.isna(update) else float("nan")
        ttl = float(ttl_s) if ttl_s is not None else _ttl_at(
            ttl_history, update if not pd.isna(update) else first)
        rows.append((version, int(part["requests"].sum()), first, last, update, source,
                     duration, bool(part["bucket_start"].max() >= last_bucket), ttl,
                     duration / ttl if ttl and not np.isnan(ttl) else float("nan")))
    out = pd.DataFrame(rows, columns=columns)
    out["update_at"] = pd.to_datetime(out["update_at"], utc=True)
    return out.sort_values("stale_hits", ascending=False, ignore_index=True)


def _ttl_at(history: pd.DataFrame, when: pd.Timestamp) -> float:
    """The TTL in force at ``when`` (the first known value when none precedes it)."""
    if history.empty:
        return float("nan")
    known = history[history["ts"].isna() | (history["ts"] <= when)]
    row = known.iloc[-1] if len(known) else history.iloc[0]
    return float(row["ttl_s"])


def _span_events(case: CaseView, span: Window, ttl_history: pd.DataFrame) -> pd.DataFrame:
    ev = case.events
    columns = ["ts", "kind", "artifact", "version", "host", "detail"]
    if ev.empty:
        return pd.DataFrame(columns=columns)
    ttl_times = set(ttl_history["ts"].dropna())
    keep = (((ev["kind"].isin(["deploy", "rollback"]) & (ev["artifact"] == "model"))
             | (ev["kind"] == "cache_flush") | ev["ts"].isin(ttl_times))
            & (ev["ts"] >= pd.Timestamp(span.start)) & (ev["ts"] < pd.Timestamp(span.end)))
    return ev.loc[keep, columns].reset_index(drop=True)


def _time_or_none(value: Any) -> pd.Timestamp | None:
    """A timestamp for the evidence (NaT is not JSON-friendly: None)."""
    return None if pd.isna(value) else pd.Timestamp(value)


def _duration(seconds: float) -> str:
    if np.isnan(seconds):
        return "an unknown time"
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.1f} d"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min"
