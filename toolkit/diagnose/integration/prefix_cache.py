"""Prefix (KV) cache hit share of a generative endpoint, its change points, and what follows.

Sources, the first the case has (``source`` in the result):

* ``cached_tokens``: requests with both ``cached_tokens`` and ``input_tokens``; hit share =
  ``sum(cached_tokens) / sum(input_tokens)`` per window, time bucket and version (token
  weighted: the share of prompt tokens the engine did not prefill);
* ``counters``: the metrics ``prefix_cache_hits_total`` and ``prefix_cache_queries_total``
  (cumulative counters, DESIGN 3a). The engine turns each series (host, name, labels) into
  increases between consecutive samples (a decrease is a counter reset: the new value is the
  increase) and sums them per window and bucket; hit share = hits / queries. An increase is
  dated at its later sample;
* ``prefix_hashes``: an estimate from prompt-prefix block hashes (the ``prefix_hashes`` request
  column: a JSON array of block hashes, as the Mooncake trace publishes its ``hash_ids``).
  A block is *reused* when an earlier request (in time, from the start of the data) already
  held the same hash, i.e. the share a cache that never evicts would hit; the blocks are
  unnested and counted in the engine (blocks per bucket minus first occurrences per bucket).
  It is an upper bound of a real cache's hit share and starts low while the cache warms.

Change point: the hit-share timeline fitted as a ramp after the baseline, weighted by each
bucket's prompt tokens (or queries, or blocks) (:func:`~.._onset.coarse_onset`). What follows:
mean TTFT, mean uncached prompt tokens per request (``input_tokens - cached_tokens``), mean
prompt and output tokens per window, as incident / baseline ratios. Releases between the
windows (``deploy``/``rollback``/``config_change`` events, new client or template versions) come
from :func:`~toolkit.diagnose.data.prompt_mix.artifact_changes`.

Findings (ids and evidence keys, for the classifier's rules)
------------------------------------------------------------
``integration.prefix_cache_drop`` (pathway integration): incident hit share at least
:data:`MIN_DROP` (0.10) below the baseline's and below ``(1 - MIN_RELATIVE)`` (75%) of it;
high from a drop of :data:`MAJOR_DROP` (0.25). Statistic: the drop. Evidence: ``source``,
``share_baseline``, ``share_incident``, ``drop``, ``relative_drop``, ``ttft_ratio``,
``uncached_ratio``, ``input_ratio``, ``output_ratio`` (NaN when a column is missing),
``worst_version`` (``{column, version, share, requests, new}``: the client / template / model
version with the lowest incident hit share, or None; ``new`` when it never served in the
baseline: the change that broke the prefix), ``artifact_changed``, ``events``,
``new_versions``, ``events_near_onset`` (those of ``events`` within two timeline buckets, at
least an hour, of the drop's onset), ``estimated`` (True for the ``prefix_hashes`` source).

Task: generative endpoints. Not assessed, with the reason, when none of the three sources exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import ibis
import numpy as np
import pandas as pd

from toolkit._validation import check_windows
from toolkit.diagnose._base import DiagnosticResult, Finding, NotAssessed, timeline_signals
from toolkit.diagnose._case import MIN_WINDOW_ROWS, CaseView, case_view, choose_bucket, within
from toolkit.diagnose._engine import (
    Recorder,
    bucket_expr,
    bucket_window_key,
    decode_bucket_window,
    window_label,
)
from toolkit.diagnose._engines import CaseSource
from toolkit.diagnose._format import times
from toolkit.diagnose._onset import coarse_onset
from toolkit.diagnose.data.prompt_mix import artifact_changes
from toolkit.store.schema import quote_ident
from toolkit.types import Window

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["prefix_cache", "PrefixCacheResult", "ID", "SOURCES"]

ID = "integration.prefix_cache"
MIN_DROP = 0.10
MIN_RELATIVE = 0.25
MAJOR_DROP = 0.25
SOURCES = ("cached_tokens", "counters", "prefix_hashes")
HITS, QUERIES = "prefix_cache_hits_total", "prefix_cache_queries_total"
BREAKDOWN = ("client_version", "template_version", "model_version")


@dataclass(frozen=True, kw_only=True, repr=False)
class PrefixCacheResult(DiagnosticResult):
    """Prefix-cache hit share per window, bucket and version.

    Attributes
    ----------
    source
        ``cached_tokens``, ``counters`` or ``prefix_hashes`` (see the module documentation).
    table
        One row per window: ``window``, ``hits``, ``queries``, ``share``, ``requests``,
        ``ttft_mean``, ``uncached_mean``, ``input_mean``, ``output_mean``.
    timeline
        Per bucket: ``bucket_start``, ``hits``, ``queries``, ``share``, ``requests``.
    by_version
        Incident hit share per ``column`` and ``version`` (``cached_tokens`` source).
    """

    id = ID
    title = "Prefix-cache hit share"

    source: str = ""
    timeline: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    by_version: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    context: dict[str, Any] = field(default_factory=dict, repr=False)

    def value(self, window: str, column: str) -> float:
        rows = self.table[self.table["window"] == window] if not self.table.empty else \
            self.table
        return float(rows[column].iloc[0]) if len(rows) else float("nan")

    def headline(self) -> dict[str, Any]:
        if self.table.empty:
            return {}
        return {"source": self.source, "hit share baseline": self.value("baseline", "share"),
                "hit share incident": self.value("incident", "share")}

    def _ratio(self, column: str) -> float:
        b, i = self.value("baseline", column), self.value("incident", column)
        return i / b if b > 0 else float("nan")

    def findings(self) -> list[Finding]:
        if self.table.empty:
            return []
        b, i = self.value("baseline", "share"), self.value("incident", "share")
        drop = b - i
        if not (drop >= MIN_DROP and i <= (1 - MIN_RELATIVE) * b):
            return []
        worst = None
        if not self.by_version.empty:
            candidates = self.by_version[self.by_version["requests"] >= MIN_WINDOW_ROWS]
            if len(candidates):
                row = candidates.sort_values("share").iloc[0]
                new = self.context.get("new_versions", {}).get(str(row["column"]), [])
                worst = {"column": str(row["column"]), "version": str(row["version"]),
                         "share": float(row["share"]), "requests": int(row["requests"]),
                         "new": str(row["version"]) in new}
        ttft = self._ratio("ttft_mean")
        onset = self._onset()
        return [Finding(
            id="integration.prefix_cache_drop", pathway="integration",
            severity="high" if drop >= MAJOR_DROP else "medium", statistic=float(drop),
            threshold=MIN_DROP,
            summary=(f"prefix-cache hit share fell from {b:.0%} to {i:.0%}"
                     + (" (estimated from prompt-prefix hashes)" if self.source == "prefix_hashes"
                        else "")
                     + (f"; mean TTFT {times(ttft)}" if np.isfinite(ttft) else "") + "."),
            evidence={"source": self.source, "share_baseline": b, "share_incident": i,
                      "drop": float(drop), "relative_drop": float(drop / b) if b else np.nan,
                      "ttft_ratio": ttft, "uncached_ratio": self._ratio("uncached_mean"),
                      "input_ratio": self._ratio("input_mean"),
                      "output_ratio": self._ratio("output_mean"), "worst_version": worst,
                      "estimated": self.source == "prefix_hashes",
                      "events_near_onset": self._near(onset), **self.context},
            onset=onset, diagnostic=self.id)]

    def _near(self, onset) -> list[dict[str, Any]]:
        """The releases within two timeline buckets (at least an hour) of ``onset``."""
        if onset is None or len(self.timeline) < 2:
            return []
        width = pd.Series(self.timeline["bucket_start"]).diff().min()
        reach = max(2 * width, pd.Timedelta(hours=1))
        return [e for e in self.context.get("events", [])
                if abs(pd.Timestamp(e["ts"]) - pd.Timestamp(onset)) <= reach]

    def _onset(self):
        t = self.timeline
        if t.empty:
            return None
        return coarse_onset(t.dropna(subset=["share"]), "share", after=self.baseline.end,
                            weights="queries", direction=-1)

    def signals(self) -> pd.DataFrame:
        return timeline_signals(self.timeline, {"share": "prefix_cache.hit_share"}, dropna=True)

    def plot(self, ax: Axes | None = None, **kwargs: Any) -> Axes:
        """Hit share per bucket; the incident shaded."""
        from toolkit.plotting import WINDOW_COLORS, axes

        ax = axes(ax, figsize=(10, 4))
        if self.timeline.empty:
            return super().plot(ax)
        ax.plot(self.timeline["bucket_start"], self.timeline["share"], label="hit share")
        ax.axvspan(self.incident.start, self.incident.end, color=WINDOW_COLORS["incident"],
                   alpha=0.08, label="incident")
        ax.set_ylim(0, 1)
        ax.set_xlabel("time (UTC)")
        ax.set_ylabel("share of prompt tokens")
        ax.set_title(f"Prefix-cache hit share ({self.source})")
        ax.legend(loc="lower left")
        return ax


def prefix_cache(
    con: CaseSource,
    baseline: Window | str,
    incident: Window | str,
    /,
    *,
    source: str | None = None,
    bucket: timedelta | None = None,
    case: CaseView | None = None,
) -> PrefixCacheResult:
    """Prefix-cache hit share per window, bucket and version, and its drop.

    Parameters
    ----------
    con
        Case connection.
    baseline, incident
        The windows (``Window``, ``"START/END"`` or ``(start, end)``).
    source
        Force one of :data:`SOURCES` (default: the first the case has).
    bucket
        Timeline bucket width (default: about 240 buckets over the windows).
    case
        A :class:`~toolkit.diagnose._case.CaseView` to share between diagnostics.

    Examples
    --------
    >>> import pandas as pd, toolkit as tk
    >>> con = tk.connect()
    >>> ts = pd.date_range("2026-03-01", periods=400, freq="min", tz="UTC")
    >>> _ = tk.load(con, pd.DataFrame({"request_id": range(400), "ts": ts,
    ...     "input_tokens": 1000, "cached_tokens": [800] * 200 + [100] * 200}),
    ...     table="requests")
    >>> r = prefix_cache(con, (ts[0], ts[200]), (ts[200], ts[-1] + pd.Timedelta("1min")))
    >>> r.value("baseline", "share"), r.value("incident", "share"), r.findings()[0].severity
    (0.8, 0.1, 'high')
    """
    baseline, incident = check_windows(baseline, incident)
    case = case or case_view(con)
    base = dict(baseline=baseline, incident=incident)
    available = _sources(case)
    if source is not None:
        if source not in SOURCES:
            from toolkit.errors import InvalidParameterError

            raise InvalidParameterError(f"source must be one of {', '.join(SOURCES)}, "
                                        f"not {source!r}")
        if source not in available:
            return PrefixCacheResult(**base, not_assessed=(NotAssessed(
                ID, f"the case has no {source} to read the hit share from"),))
    elif not available:
        return PrefixCacheResult(**base, not_assessed=(NotAssessed(
            ID, "no prefix-cache evidence: requests carry no cached_tokens with input_tokens "
                f"or prefix_hashes, and metrics hold no {HITS} / {QUERIES} counters"),))
    source = source or available[0]
    record = Recorder()
    span = Window(min(baseline.start, incident.start), max(baseline.end, incident.end))
    width = bucket or choose_bucket(span.duration)
    if source == "cached_tokens":
        windows, timeline, by_version = _from_cached_tokens(case, record, span, width,
                                                            baseline, incident)
    elif source == "counters":
        windows, timeline = _from_counters(case, record, span, width, baseline, incident)
        by_version = pd.DataFrame()
    else:
        windows, timeline = _from_hashes(case, record, span, width, baseline, incident)
        by_version = pd.DataFrame()
    windows = _follow(case, record, span, baseline, incident, windows)
    gaps = []
    for name in ("baseline", "incident"):
        row = windows[windows["window"] == name]
        if row.empty or not row["queries"].iloc[0] > 0:
            gaps.append(NotAssessed(ID, f"no prefix-cache data ({source}) in the {name} "
                                        "window"))
    context = artifact_changes(case, record, baseline, incident)
    if gaps:
        return PrefixCacheResult(**base, source=source, timeline=timeline, sql=record.sql,
                                 not_assessed=tuple(gaps))
    return PrefixCacheResult(**base, source=source, table=windows, timeline=timeline,
                             by_version=by_version, context=context, sql=record.sql)


def _sources(case: CaseView) -> list[str]:
    out = []
    # the columns exist in every case (schema 3): a source needs values in them
    if case.non_null("requests", "cached_tokens") and case.non_null("requests", "input_tokens"):
        out.append("cached_tokens")
    if case.has("metrics"):
        names = set(case.con.execute("SELECT DISTINCT name FROM metrics WHERE name IN (?, ?)",
                                     [HITS, QUERIES]).fetchall())
        if names == {(HITS,), (QUERIES,)}:
            out.append("counters")
    if case.non_null("requests", "prefix_hashes"):
        out.append("prefix_hashes")
    return out


def _from_cached_tokens(case: CaseView, record: Recorder, span: Window, width: timedelta,
                        baseline: Window, incident: Window
                        ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    requests = case.table("requests")
    rows = requests.filter(within(requests.ts, span) & requests.cached_tokens.notnull()
                           & requests.input_tokens.notnull())
    breakdown = [c for c in BREAKDOWN if c in case.columns["requests"]]
    # one scan: sums per time bucket and window (one integer key) and version; the windows,
    # the timeline and the incident's breakdowns are sums of these cells (integer sums, exact)
    cells = record(rows.group_by(*breakdown, _key=bucket_window_key(rows.ts, width, baseline,
                                                                    incident)).aggregate(
        hits=rows.cached_tokens.cast("int64").sum(),
        queries=rows.input_tokens.cast("int64").sum(), cached_requests=rows.count()))
    starts, names = decode_bucket_window(cells.pop("_key").to_numpy(), width)
    cells["bucket_start"], cells["window"] = starts.to_numpy(), names
    sums = ["hits", "queries", "cached_requests"]
    windows = cells.dropna(subset=["window"]).groupby("window", as_index=False)[sums].sum()
    timeline = cells.groupby("bucket_start", as_index=False)[sums].sum()
    timeline = _shares(timeline.sort_values("bucket_start", ignore_index=True))
    frames = []
    incident_cells = cells[cells["window"] == "incident"].rename(
        columns={"cached_requests": "requests"})
    for column in breakdown:  # each breakdown is a sum of the incident's cells
        part = incident_cells.groupby(column, as_index=False)[["hits", "queries",
                                                              "requests"]].sum()
        if len(part) < 2:
            continue  # one version serves everything: no version to single out
        part = part.rename(columns={column: "version"})
        part.insert(0, "column", column)
        frames.append(_shares(part))
    by_version = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return _shares(windows), timeline, by_version


def _from_counters(case: CaseView, record: Recorder, span: Window, width: timedelta,
                   baseline: Window, incident: Window) -> tuple[pd.DataFrame, pd.DataFrame]:
    metrics = case.table("metrics")
    series = metrics.filter(metrics.name.isin([HITS, QUERIES]) & metrics.value.notnull())
    key = [series.host, series.name, series.labels.cast("string")]
    previous = series.value.lag().over(ibis.window(group_by=key, order_by=series.ts))
    steps = series.mutate(_inc=ibis.cases((previous.isnull(), ibis.null("float64")),
                                          (series.value >= previous, series.value - previous),
                                          else_=series.value))
    steps = steps.filter(steps._inc.notnull() & within(steps.ts, span))
    steps = steps.mutate(_window=window_label(steps.ts, baseline, incident),
                         _bucket=bucket_expr(steps.ts, width),
                         _hit=ibis.ifelse(steps.name == HITS, steps._inc, 0.0),
                         _query=ibis.ifelse(steps.name == QUERIES, steps._inc, 0.0))
    in_windows = steps.filter(steps._window.notnull())
    windows = record(in_windows.group_by(window=in_windows._window).aggregate(
        hits=in_windows._hit.sum(), queries=in_windows._query.sum()))
    timeline = record(steps.group_by(bucket_start=steps._bucket).aggregate(
        hits=steps._hit.sum(), queries=steps._query.sum()))
    timeline = _shares(timeline.sort_values("bucket_start", ignore_index=True))
    return _shares(windows), timeline


def _from_hashes(case: CaseView, record: Recorder, span: Window, width: timedelta,
                 baseline: Window, incident: Window) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Blocks per bucket and window, and first occurrences per bucket and window, as one SQL
    query (unnest is DuckDB's; the block list may be a LIST or JSON array text)."""
    column = quote_ident("prefix_hashes")
    kind = case.columns["requests"]["prefix_hashes"]
    hashes = column if kind.endswith("[]") else f"CAST({column} AS BIGINT[])"
    seconds = max(1, round(width.total_seconds()))

    def label(ts: str) -> str:
        return (f"CASE WHEN {ts} >= $bs AND {ts} < $be THEN 'baseline' "
                f"WHEN {ts} >= $is AND {ts} < $ie THEN 'incident' END")

    sql = f"""
WITH blocks AS (
  SELECT ts, unnest({hashes}) AS h FROM requests WHERE {column} IS NOT NULL AND ts < $end
), firsts AS (
  SELECT h, min(ts) AS ts FROM blocks GROUP BY h
), totals AS (
  SELECT epoch_us(ts) // ({seconds} * 1000000) AS b, {label('ts')} AS w, count(*) AS n
  FROM blocks WHERE ts >= $start GROUP BY ALL
), news AS (
  SELECT epoch_us(ts) // ({seconds} * 1000000) AS b, {label('ts')} AS w, count(*) AS n
  FROM firsts WHERE ts >= $start GROUP BY ALL
)
SELECT totals.b, totals.w, totals.n AS queries, totals.n - coalesce(news.n, 0) AS hits
FROM totals LEFT JOIN news ON totals.b = news.b AND totals.w IS NOT DISTINCT FROM news.w
ORDER BY 1"""
    params = {"bs": baseline.start, "be": baseline.end, "is": incident.start,
              "ie": incident.end, "start": span.start, "end": span.end}
    record.note(sql)
    cells = case.con.execute(sql, params).df()
    cells["bucket_start"] = pd.to_datetime(cells["b"].astype("int64") * seconds, unit="s",
                                           utc=True)
    windows = cells[cells["w"].notna()].groupby("w", as_index=False)[["hits", "queries"]].sum()
    windows = _shares(windows.rename(columns={"w": "window"}))
    timeline = cells.groupby("bucket_start", as_index=False)[["hits", "queries"]].sum()
    return windows, _shares(timeline)


def _shares(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    for column in ("hits", "queries"):
        frame[column] = frame[column].astype(float)
    frame["share"] = np.where(frame["queries"] > 0, frame["hits"] / frame["queries"].where(
        frame["queries"] > 0, 1.0), np.nan)
    return frame


def _follow(case: CaseView, record: Recorder, span: Window, baseline: Window,
            incident: Window, windows: pd.DataFrame) -> pd.DataFrame:
    """Per window: requests, mean TTFT, uncached prompt tokens, prompt and output tokens."""
    out = pd.DataFrame({"window": ["baseline", "incident"]}).merge(windows, on="window",
                                                                   how="left")
    if case.has("requests"):
        out = out.merge(_follow_requests(case, record, span, baseline, incident), on="window",
                        how="left")
    for column in ("requests", "ttft_mean", "uncached_mean", "input_mean", "output_mean"):
        if column not in out:
            out[column] = np.nan
    return out


def _follow_requests(case: CaseView, record: Recorder, span: Window, baseline: Window,
                     incident: Window) -> pd.DataFrame:
    columns = case.columns["requests"]
    requests = case.table("requests")
    rows = requests.filter(within(requests.ts, span))
    rows = rows.mutate(_window=window_label(rows.ts, baseline, incident))
    rows = rows.filter(rows._window.notnull())
    metrics: dict[str, ibis.Value] = {"requests": rows.count()}
    if "ttft_ms" in columns:
        metrics["ttft_mean"] = rows.ttft_ms.mean()
    if "input_tokens" in columns:
        metrics["input_mean"] = rows.input_tokens.mean()
        if "cached_tokens" in columns:
            metrics["uncached_mean"] = (rows.input_tokens - rows.cached_tokens).mean()
    if "output_tokens" in columns:
        metrics["output_mean"] = rows.output_tokens.mean()
    return record(rows.group_by(window=rows._window).aggregate(**metrics))
