"""Cold starts: latency against the time since the replica that served the request started.

Recipe
------
* **Replica starts**: ``restart``, ``scale``, ``deploy`` and ``rollback`` events that name a
  host (not a ``scale`` event whose ``detail.direction`` says the replica was removed:
  ``down``, ``in``, ...), plus the first request of every host that first appears more than
  ``appear_margin`` (5 minutes) after the case's first request (a new pod). A restart of a
  host within :data:`OOM_RESTART_WITHIN` (5 minutes) after an ``oom_kill`` of it is an *OOM
  restart*, not a start: memory killed that replica (memory exhaustion or a leak), and its
  slow first requests are that failure's symptom, not a cold start's; OOM kills are counted
  per window (``oom_restarts``) and carried in the finding's evidence. Starts of one host less
  than a minute apart count once. Hosts
  serving from the start of the case have no known start: their requests in the case's first
  ``edges_min[-1]`` minutes have an ``unknown`` age. Events without a host are counted (as
  ``fleet_events``) but start no replica.
* **Age of a request** = its time minus the latest start of its host at or before it. The engine
  joins requests to the non-overlapping intervals ``[start, min(start + 60 min, next start))``
  of each host on host, a 10-minute key and the time range (a hash join, no sort of the
  requests); a request outside every interval is older than the last edge. Ages fall into bins
  ``<1m``, ``1-5m``, ``5-15m``, ``15-60m``, ``>=60m`` (``edges_min``) or ``unknown``.
* **Percentiles** per window and age bin from counts on geometric latency bins (1% resolution,
  :func:`toolkit.diagnose.infra.capacity.hist_quantiles`), in one pass.
* **Cold** requests are those younger than ``cold_minutes`` (5), **warm** ones at least
  ``warm_minutes`` (15) old. The same pass marks the minutes in which some replica is cold
  (joined on a minute key). The **reference** p99 is that of the incident's warm requests in
  those same minutes (a contemporaneous control: when every replica is slow, as under
  saturation, the restarted ones are not slow *because* they are cold); with fewer than
  ``min_requests`` of them, the **steady state**: the oldest age bin with ``min_requests``
  requests, in the incident if it has one, else in the baseline. ``cold_ratio`` = incident cold
  p99 / reference p99. From the same counts: the incident requests slower than twice the
  reference, the share of them served by a replica not yet warm (younger than
  ``warm_minutes``: ``attribution``), and those young slow requests as a share of all incident
  requests (``tail_share``). Starts per window are compared with a Poisson tail under the
  baseline rate per hour (half a start added to the baseline count).
* **Few cold requests** (a log sampled 1 in 20 keeps a dozen): with fewer than
  ``min_requests`` but at least :data:`MIN_FEW_COLD` cold incident requests, the cold p99 is
  read from them only when their count above the reference's p90 has a one-sided binomial
  tail (success rate 0.1) below :data:`FEW_COLD_P`; such a finding is at most **medium**.

Finding ``infrastructure.cold_start`` (statistic: ``cold_ratio``; threshold 2) fires when cold
p99 is at least twice the reference p99 (with ``min_requests`` cold incident requests).
**high**: ratio >= 3, attribution >= 0.5, tail share >= 0.5% and >= 3 starts in the incident
with p < 0.01 (many starts, and they explain the tail); **medium**: attribution >= 0.3, tail
share >= 0.2% and >= 2 starts with p < 0.05; else **low** (a cold-start penalty exists but does
not drive the incident). A deploy whose new replicas warm up fast gives a ratio near 1.
Onset: the replica start at which the start rate steps up (the two-rate Poisson split of the
starts of both windows with the largest likelihood ratio, at least :data:`ONSET_LR`), else the
incident's first start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import ibis
import numpy as np
import pandas as pd
from scipy import stats

from toolkit._validation import check_windows
from toolkit.diagnose._base import DiagnosticResult, Finding, NotAssessed
from toolkit.diagnose._case import CaseView, case_view, choose_bucket, within
from toolkit.diagnose._engine import Recorder, window_label
from toolkit.diagnose._engines import CaseSource
from toolkit.diagnose._format import times
from toolkit.diagnose.infra.capacity import epoch_us, hist_count_above, hist_quantiles, latency_bin
from toolkit.types import Window

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["cold_start_effect", "ColdStartResult", "ID"]

ID = "infra.cold_start"
START_KINDS = ("restart", "scale", "deploy", "rollback")
#: A restart this soon after an ``oom_kill`` of its host is the OOM kill's, not a cold start.
OOM_RESTART_WITHIN = timedelta(minutes=5)
#: Fewer cold incident requests than ``min_requests`` but at least this many: their p99 is
#: read only when they sit above the reference's p90 far more often than one in ten ...
MIN_FEW_COLD = 10
#: ... a one-sided binomial tail below this.
FEW_COLD_P = 1e-3
#: ``detail.direction`` values of a ``scale`` event that removes a replica (not a start).
SCALE_DOWN = ("down", "in", "scale_down", "scale-down", "scale_in", "scale-in")
#: Likelihood-ratio statistic (chi-square, 1 df; p < 0.001) a step up in the replica start
#: rate needs to date the onset (else the incident's first start does).
ONSET_LR = 10.83
_KEY_US = 600_000_000
_MINUTE_US = 60_000_000


def bin_labels(edges_min: tuple[float, ...]) -> list[str]:
    """Labels of the age bins: ``<1m``, ``1-5m``, ..., ``>=60m``."""
    labels = [f"<{edges_min[0]:g}m"]
    labels += [f"{a:g}-{b:g}m" for a, b in zip(edges_min[:-1], edges_min[1:], strict=True)]
    return [*labels, f">={edges_min[-1]:g}m"]


@dataclass(frozen=True, kw_only=True, repr=False)
class ColdStartResult(DiagnosticResult):
    """Latency per bin of time since the replica started, and replica starts per window.

    Attributes
    ----------
    table
        One row per window and age bin (``bin``, ordered as ``bins`` then ``unknown``):
        ``requests``, ``share`` (of the window's requests of known age), ``p50_ms``,
        ``p99_ms``, ``error_rate``.
    starts
        Every replica start: ``host``, ``ts``, ``kind`` (event kind or ``first_seen``).
    windows
        One row per window: ``hours``, ``requests``, ``starts``, ``starts_per_hour``,
        ``fleet_events`` (scale / deploy events without a host), ``oom_restarts`` (``oom_kill``
        events: their restarts are not starts), ``cold_share``.
    """

    id = ID
    title = "Cold starts"

    bins: tuple[str, ...] = ()
    cold_bins: tuple[str, ...] = ()
    steady_bin: str = ""
    steady_window: str = ""
    steady_p99_ms: float = float("nan")
    concurrent_p99_ms: float = float("nan")
    reference: str = ""
    reference_p99_ms: float = float("nan")
    cold_p99_ms: float = float("nan")
    attribution: float = float("nan")
    tail_share: float = float("nan")
    starts_pvalue: float = float("nan")
    #: Cold incident requests, and (when they were fewer than ``min_requests``) the binomial
    #: tail of their count above the reference's p90 (NaN when not needed).
    cold_requests: float = float("nan")
    few_cold_pvalue: float = float("nan")
    bucket: timedelta | None = None
    starts: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    windows: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    @property
    def cold_ratio(self) -> float:
        """Incident cold p99 over the reference p99 (warm replicas at the same time, else the
        steady state)."""
        if self.reference_p99_ms > 0:
            return self.cold_p99_ms / self.reference_p99_ms
        return float("nan")

    def value(self, window: str, column: str) -> float:
        if self.windows.empty:
            return float("nan")
        rows = self.windows[self.windows["window"] == window]
        return float(rows[column].iloc[0]) if len(rows) else float("nan")

    def headline(self) -> dict[str, Any]:
        if self.table.empty:
            return {}
        return {
            "cold p99 incident ms": self.cold_p99_ms,
            "reference p99 ms": self.reference_p99_ms,
            "cold ratio": self.cold_ratio,
            "starts baseline": self.value("baseline", "starts"),
            "starts incident": self.value("incident", "starts"),
            "cold share incident": self.value("incident", "cold_share"),
            "attribution of slow requests": self.attribution,
        }

    def findings(self) -> list[Finding]:
        ratio = self.cold_ratio
        if self.table.empty or math.isnan(ratio) or ratio < 2:
            return []
        k_i = self.value("incident", "starts")
        p = self.starts_pvalue
        attribution = 0.0 if math.isnan(self.attribution) else self.attribution
        tail = 0.0 if math.isnan(self.tail_share) else self.tail_share
        if ratio >= 3 and attribution >= 0.5 and tail >= 0.005 and k_i >= 3 and p < 0.01:
            severity = "high"
        elif attribution >= 0.3 and tail >= 0.002 and k_i >= 2 and p < 0.05:
            severity = "medium"
        else:
            severity = "low"
        if not math.isnan(self.few_cold_pvalue) and severity == "high":
            severity = "medium"  # a p99 of a few sampled cold requests: never decisive alone
        starts = self.starts
        inc = starts[(starts["ts"] >= pd.Timestamp(self.incident.start)) & (
            starts["ts"] < pd.Timestamp(self.incident.end))] if len(starts) else starts
        onset = None if inc.empty else self._onset(inc["ts"].min())
        return [Finding(
            id="infrastructure.cold_start", pathway="infrastructure", severity=severity,
            statistic=ratio, threshold=2.0,
            summary=(f"requests served less than {self.cold_bins[-1].split('-')[-1]} after a "
                     f"replica started have p99 {self.cold_p99_ms:.0f} ms, {times(ratio)} the "
                     f"{self.reference}; {k_i:.0f} replica starts in the incident "
                     f"(baseline {self.value('baseline', 'starts'):.0f})."),
            evidence={"cold_p99_ms": self.cold_p99_ms, "reference": self.reference,
                      "reference_p99_ms": self.reference_p99_ms,
                      "concurrent_warm_p99_ms": self.concurrent_p99_ms,
                      "steady_p99_ms": self.steady_p99_ms,
                      "steady_bin": self.steady_bin, "steady_window": self.steady_window,
                      "attribution": self.attribution, "tail_share": self.tail_share,
                      "starts_baseline": self.value("baseline", "starts"),
                      "starts_incident": k_i, "starts_pvalue": p,
                      "starts_per_hour_baseline": self.value("baseline", "starts_per_hour"),
                      "starts_per_hour_incident": self.value("incident", "starts_per_hour"),
                      "cold_share_incident": self.value("incident", "cold_share"),
                      "cold_share_baseline": self.value("baseline", "cold_share"),
                      "cold_requests": self.cold_requests,
                      "few_cold_pvalue": self.few_cold_pvalue,
                      "oom_restarts_baseline": self.value("baseline", "oom_restarts"),
                      "oom_restarts_incident": self.value("incident", "oom_restarts"),
                      "hosts_started": sorted(inc["host"].astype(str).unique().tolist())},
            onset=onset, diagnostic=self.id,
        )]

    def _onset(self, first: pd.Timestamp):
        """When replicas began to start more often: the start at which a Poisson rate that
        steps up fits the starts of both windows best (likelihood ratio, 1 degree of freedom,
        at least :data:`ONSET_LR`); else the incident's first start. A long incident window
        (the window detector's scan, three quarters of the data) holds routine restarts and
        deploys days before a flapping autoscaler starts: the first of them is not the onset.
        """
        span_start = pd.Timestamp(min(self.baseline.start, self.incident.start))
        span_end = pd.Timestamp(max(self.baseline.end, self.incident.end))
        ts = self.starts["ts"]
        ts = ts[(ts >= span_start) & (ts < span_end)].sort_values(ignore_index=True)
        total_h = (span_end - span_start) / pd.Timedelta(hours=1)
        n = len(ts)
        if n < 3 or total_h <= 0:
            return first.to_pydatetime()
        before_h = ((ts - span_start) / pd.Timedelta(hours=1)).to_numpy()
        k1 = np.arange(n, dtype=float)  # starts before each candidate
        k2 = n - k1
        h1, h2 = before_h, total_h - before_h
        candidate = (ts >= pd.Timestamp(self.incident.start)).to_numpy() & (h1 > 0) & (h2 > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            r1 = np.where(h1 > 0, k1 / h1, 0.0)
            r2 = np.where(h2 > 0, k2 / h2, 0.0)
            ll = (np.where(k1 > 0, k1 * np.log(r1), 0.0) + np.where(k2 > 0, k2 * np.log(r2), 0.0)
                  - n * np.log(n / total_h))
        ll = np.where(candidate & (r2 > r1), ll, -np.inf)
        best = int(np.argmax(ll))
        if not np.isfinite(ll[best]) or 2 * ll[best] < ONSET_LR:
            return first.to_pydatetime()
        return pd.Timestamp(ts.iloc[best]).to_pydatetime()

    def signals(self) -> pd.DataFrame:
        """Replica starts per time bucket (``cold_start.starts``)."""
        if self.bucket is None or self.starts.empty:
            return super().signals()
        span_start = min(self.baseline.start, self.incident.start)
        span_end = max(self.baseline.end, self.incident.end)
        width = pd.Timedelta(self.bucket)
        buckets = pd.date_range(pd.Timestamp(span_start).floor(width), span_end, freq=width,
                                inclusive="left")
        inside = self.starts[(self.starts["ts"] >= pd.Timestamp(span_start)) & (
            self.starts["ts"] < pd.Timestamp(span_end))]
        counts = inside["ts"].dt.floor(width).value_counts().reindex(buckets, fill_value=0)
        return pd.DataFrame({"bucket_start": buckets, "signal": "cold_start.starts",
                             "value": counts.to_numpy(dtype=float)})

    def plot(self, ax: Axes | None = None, **kwargs: Any) -> Axes:
        """p99 latency per age bin and window, with the steady-state p99."""
        from toolkit.plotting import WINDOW_COLORS, axes

        ax = axes(ax, figsize=(8, 4))
        data = self.table.dropna(subset=["p99_ms"]) if not self.table.empty else self.table
        if data.empty:
            return super().plot(ax)
        import seaborn as sns

        order = [b for b in (*self.bins, "unknown") if b in set(data["bin"])]
        sns.barplot(data=data, x="bin", y="p99_ms", hue="window", order=order,
                    hue_order=["baseline", "incident"], palette=WINDOW_COLORS, ax=ax)
        if not math.isnan(self.reference_p99_ms):
            ax.axhline(self.reference_p99_ms, ls="--", color="#8C8C8C", lw=1,
                       label=f"reference p99: {self.reference}")
        ax.set_yscale("log")
        ax.set_xlabel("time since the replica started")
        ax.set_ylabel("latency p99 (ms, log)")
        ax.set_title("Latency against replica age")
        ax.legend(loc="upper right")
        return ax


def cold_start_effect(
    con: CaseSource,
    baseline: Window | str,
    incident: Window | str,
    /,
    *,
    edges_min: tuple[float, ...] = (1, 5, 15, 60),
    cold_minutes: float = 5,
    warm_minutes: float = 15,
    appear_margin: timedelta = timedelta(minutes=5),
    min_requests: int = 30,
    bucket: timedelta | None = None,
    case: CaseView | None = None,
) -> ColdStartResult:
    """Latency against the time since the serving replica started, per window.

    Parameters
    ----------
    con
        Case connection.
    baseline, incident
        The windows to compare.
    edges_min
        Edges of the age bins in minutes (increasing).
    cold_minutes
        Requests younger than this (a bin edge) are cold.
    warm_minutes
        Requests at least this old (a bin edge) are warm.
    appear_margin
        A host first seen this long after the case's first request counts as started then.
    min_requests
        Requests the cold and steady-state bins need.
    bucket
        Bucket width of the ``signals()`` timeline.
    case
        Shared case view.

    Returns
    -------
    ColdStartResult

    Examples
    --------
    >>> import numpy as np, pandas as pd, toolkit as tk
    >>> con = tk.connect()
    >>> ts = pd.date_range("2026-03-01", periods=6000, freq="2s", tz="UTC")
    >>> host = np.where(np.arange(6000) % 2 == 0, "pod-a", "pod-b")
    >>> restarts = pd.date_range("2026-03-01 02:00", periods=4, freq="15min", tz="UTC")
    >>> age = (ts.to_numpy()[:, None] - restarts.to_numpy()[None, :]).astype("m8[s]")
    >>> cold = ((age >= np.timedelta64(0, "s")) & (age < np.timedelta64(60, "s"))).any(1)
    >>> latency = np.where(cold & (host == "pod-a"), 900.0, 40.0) + np.arange(6000) % 9
    >>> _ = tk.load(con, pd.DataFrame({"request_id": range(6000), "ts": ts, "host": host,
    ...     "latency_ms": latency, "status": "ok"}), table="requests")
    >>> _ = tk.load(con, pd.DataFrame({"ts": restarts, "kind": "restart", "host": "pod-a"}),
    ...             table="events")
    >>> result = cold_start_effect(con, ("2026-03-01", "2026-03-01 01:50"),
    ...                            ("2026-03-01 01:50", "2026-03-01 04:00"))
    >>> round(result.cold_ratio), result.findings()[0].severity
    (19, 'high')
    """
    baseline, incident = check_windows(baseline, incident)
    case = case or case_view(con)
    edges = tuple(float(e) for e in edges_min)
    labels = bin_labels(edges)
    cold_bins = tuple(label for label, lo in zip(labels, (0.0, *edges), strict=True)
                      if lo < cold_minutes)
    base = dict(baseline=baseline, incident=incident, bins=tuple(labels), cold_bins=cold_bins)
    if not case.has("requests", "latency_ms", "host"):
        missing = [c for c in ("latency_ms", "host") if not case.has("requests", c)]
        return ColdStartResult(**base, not_assessed=(NotAssessed(
            ID, f"requests have no {' or '.join(missing)}: replica age unknown"),))
    record = Recorder()
    span = Window(min(baseline.start, incident.start), max(baseline.end, incident.end))
    # The case's first request (not CaseView.span: its fetchone() leaves the connection busy
    # for the ibis calls that follow, under DuckDB 2.0).
    r = case.table("requests")
    first_request = record(r.aggregate(first=r.ts.min()))["first"].iloc[0]
    first_request = span.start if pd.isna(first_request) else pd.Timestamp(
        first_request).to_pydatetime()
    horizon = timedelta(minutes=edges[-1])
    starts_expr = _starts(case, span, first_request + appear_margin)
    starts = _dedupe(record(starts_expr))
    gaps = []
    if not case.counts.get("events"):
        gaps.append(NotAssessed(f"{ID}.events", "no events: replica starts are only the first "
                                                "requests of hosts that appear late"))

    # Q: requests per window, age bin and latency bin (requests joined to start intervals).
    s = starts_expr
    nxt = s.ts.lead().over(ibis.window(group_by=s.host, order_by=s.ts))
    limit = s.ts + ibis.interval(seconds=int(horizon.total_seconds()))
    iv = s.select(_s_host=s.host, _s=s.ts, _e=ibis.least(limit, nxt.fill_null(limit)))
    iv = iv.filter(iv._e > iv._s)
    iv = iv.mutate(_key=ibis.range(epoch_us(iv._s) // _KEY_US,
                                   epoch_us(iv._e) // _KEY_US + 1).unnest())
    t = case.table("requests")
    t = t.filter(within(t.ts, baseline) | within(t.ts, incident))
    t = t.mutate(_window=window_label(t.ts, baseline, incident),
                 _key=epoch_us(t.ts) // _KEY_US)
    j = t.left_join(iv, [t.host == iv._s_host, t._key == iv._key, t.ts >= iv._s, t.ts < iv._e])
    # Minutes in which some replica is cold (a start in the last ``cold_minutes``).
    first_min = epoch_us(s.ts) // _MINUTE_US
    last_min = (epoch_us(s.ts) + int(cold_minutes * _MINUTE_US) - 1) // _MINUTE_US
    busy = s.select(_busy_min=ibis.range(first_min, last_min + 1).unnest()).distinct()
    j = j.mutate(_min=epoch_us(j.ts) // _MINUTE_US)
    j = j.left_join(busy, j._min == busy._busy_min)
    # without statuses every request counts as a success (a column of 0, not a scalar 0:
    # a literal has no sum())
    error = (j.status == "error").cast("int64") if "status" in case.columns["requests"] else \
        ibis.literal(0, "int64")
    j = j.mutate(_err=error)
    age_min = (epoch_us(j.ts) - epoch_us(j._s)) / 60e6
    branches = [(j.host.isnull(), "unknown")]
    branches += [(j._s.notnull() & (age_min < edge), label)
                 for edge, label in zip(edges, labels, strict=False)]
    branches += [(j._s.notnull(), labels[-1]),
                 (j.ts >= ibis.literal(first_request + horizon), labels[-1])]
    age_bin = ibis.cases(*branches, else_="unknown")
    hist = record(j.group_by(window=j._window, bin=age_bin, busy=j._busy_min.notnull(),
                             lbin=latency_bin(j.latency_ms))
                  .aggregate(n=j.count(), errors=j._err.sum()))
    if hist.empty or set(hist["window"]) != {"baseline", "incident"}:
        missing = {"baseline", "incident"} - set(hist["window"])
        return ColdStartResult(**base, starts=starts, sql=record.sql, not_assessed=(
            *gaps, NotAssessed(ID, f"no requests in the {', '.join(sorted(missing))} window")))
    if hist["lbin"].notna().sum() == 0:
        return ColdStartResult(**base, starts=starts, sql=record.sql, not_assessed=(
            *gaps, NotAssessed(ID, "no latency values in requests")))
    if (hist["bin"] != "unknown").sum() == 0:
        return ColdStartResult(**base, starts=starts, sql=record.sql, not_assessed=(
            *gaps, NotAssessed(ID, "no request has a known replica age (no host, or no start "
                                   "and less than an hour of data)")))
    warm_bins = tuple(label for label, lo in zip(labels, (0.0, *edges), strict=True)
                      if lo >= warm_minutes)
    return _summarise(base, hist, starts, labels, cold_bins, warm_bins, min_requests, record,
                      gaps, bucket or choose_bucket(span.duration), case)


def _starts(case: CaseView, span: Window, appear_after) -> ibis.Table:
    """Replica starts (host, ts, kind): host events, and late first appearances of hosts."""
    r = case.table("requests")
    r = r.filter(r.host.notnull() & (r.ts < ibis.literal(span.end)))
    first = r.group_by(host=r.host).aggregate(ts=r.ts.min())
    first = first.filter(first.ts > ibis.literal(appear_after)).mutate(
        kind=ibis.literal("first_seen"))
    if not case.counts.get("events"):
        return first
    ev = case.table("events")
    direction = ev.detail["direction"].str.lower()
    down = (ev.kind == "scale") & direction.isin(SCALE_DOWN).fill_null(False)
    hosted = ev.filter(ev.host.notnull() & (ev.ts < ibis.literal(span.end)))
    kills = hosted.filter(hosted.kind == "oom_kill").select(_k_host=hosted.host,
                                                            _k_ts=hosted.ts)
    ev = ev.filter(ev.kind.isin(START_KINDS) & ev.host.notnull() & ~down
                   & (ev.ts < ibis.literal(span.end)))
    # a restart right after an OOM kill of its host is the kill's (see the module recipe)
    within_kill = ev.ts <= kills._k_ts + ibis.interval(
        seconds=int(OOM_RESTART_WITHIN.total_seconds()))
    ev = ev.anti_join(kills, [ev.host == kills._k_host, ev.ts >= kills._k_ts, within_kill])
    return ev.select(host=ev.host, ts=ev.ts, kind=ev.kind).union(first)


def _p99(frame: pd.DataFrame, min_requests: int) -> float:
    """p99 of the merged latency bins of ``frame`` (NaN under ``min_requests`` requests)."""
    if frame["n"].sum() < min_requests:
        return float("nan")
    return _quantile(frame, 0.99)


def _quantile(frame: pd.DataFrame, q: float) -> float:
    """Quantile ``q`` of the merged latency bins of ``frame`` (NaN when empty)."""
    merged = frame.groupby("lbin", as_index=False)[["n"]].sum()
    if merged["n"].sum() <= 0:
        return float("nan")
    out = hist_quantiles(merged, [], (q,), names=["value"])
    return float(out["value"].iloc[0]) if len(out) else float("nan")


def _dedupe(starts: pd.DataFrame, within: timedelta = timedelta(minutes=1)) -> pd.DataFrame:
    """One start per host per burst of events (an ``oom_kill`` and its ``restart`` are one)."""
    starts = starts.assign(ts=pd.to_datetime(starts["ts"], utc=True)).sort_values(
        ["host", "ts"], ignore_index=True)
    gap = starts.groupby("host")["ts"].diff()
    keep = gap.isna() | (gap > pd.Timedelta(within))
    return starts[keep].sort_values(["ts", "host"], ignore_index=True)


def _summarise(base: dict, hist: pd.DataFrame, starts: pd.DataFrame, labels: list[str],
               cold_bins: tuple[str, ...], warm_bins: tuple[str, ...], min_requests: int,
               record: Recorder, gaps: list[NotAssessed], width: timedelta, case: CaseView
               ) -> ColdStartResult:
    baseline, incident = base["baseline"], base["incident"]
    by_bin = hist.groupby(["window", "bin", "lbin"], as_index=False, dropna=False)[
        ["n", "errors"]].sum()
    q = hist_quantiles(by_bin, ["window", "bin"], (0.5, 0.99), names=["p50_ms", "p99_ms"])
    table = by_bin.groupby(["window", "bin"], as_index=False).agg(requests=("n", "sum"),
                                                                   errors=("errors", "sum"))
    known = table[table["bin"] != "unknown"].groupby("window")["requests"].sum()
    table["share"] = np.where(table["bin"] == "unknown", np.nan,
                              table["requests"] / table["window"].map(known).replace(0, np.nan))
    table["error_rate"] = table.pop("errors") / table["requests"]
    table = table.merge(q, on=["window", "bin"], how="left")
    order = {b: k for k, b in enumerate([*labels, "unknown"])}
    table = table.sort_values(["window", "bin"], key=lambda c: c.map(order) if c.name == "bin"
                              else c, ignore_index=True)
    table = table[["window", "bin", "requests", "share", "p50_ms", "p99_ms", "error_rate"]]

    # Steady state: the oldest bin with enough requests, incident first.
    steady_window = steady_bin = ""
    steady = float("nan")
    for label in reversed(labels):
        if label in cold_bins:
            break
        for window in ("incident", "baseline"):
            row = table[(table["window"] == window) & (table["bin"] == label)]
            if len(row) and row["requests"].iloc[0] >= min_requests:
                steady_window, steady_bin, steady = window, label, float(row["p99_ms"].iloc[0])
                break
        if steady_bin:
            break
    inc = by_bin[by_bin["window"] == "incident"]
    # Reference: warm replicas in the same minutes as the cold ones, else the steady state.
    concurrent = _p99(hist[(hist["window"] == "incident") & hist["busy"].astype(bool)
                           & hist["bin"].isin(warm_bins)], min_requests)
    if not math.isnan(concurrent):
        reference, ref_label = concurrent, "warm replicas in the same minutes (incident)"
    else:
        reference, ref_label = steady, (f"steady state ({steady_window} {steady_bin})"
                                        if steady_bin else "")
    cold = inc[inc["bin"].isin(cold_bins)]
    cold_p99 = _p99(cold, min_requests)
    cold_n, few_p = float(cold["n"].sum()), float("nan")
    if math.isnan(cold_p99) and cold_n >= MIN_FEW_COLD and not math.isnan(reference):
        # a sampled log leaves too few cold requests for a p99: test instead whether they
        # sit above the reference's p90 far more often than one in ten
        if not math.isnan(concurrent):
            ref_rows = hist[(hist["window"] == "incident") & hist["busy"].astype(bool)
                            & hist["bin"].isin(warm_bins)]
        else:
            ref_rows = by_bin[(by_bin["window"] == steady_window) & (by_bin["bin"] == steady_bin)]
        ref_p90 = _quantile(ref_rows, 0.90)
        above = round(hist_count_above(cold, ref_p90))
        few_p = float(stats.binom.sf(above - 1, int(cold_n), 0.10))
        if few_p < FEW_COLD_P:
            cold_p99 = _p99(cold, 1)
    young = inc[~inc["bin"].isin([*warm_bins, "unknown"])]
    attribution = tail = float("nan")
    if not math.isnan(reference):
        slow = hist_count_above(inc, 2 * reference)
        slow_young = hist_count_above(young, 2 * reference)
        attribution = slow_young / slow if slow > 0 else float("nan")
        tail = slow_young / inc["n"].sum() if inc["n"].sum() else float("nan")
    else:
        gaps.append(NotAssessed(f"{ID}.steady", f"no age bin past {cold_bins[-1]} has "
                                                f"{min_requests} requests: no steady state"))

    fleet = case.events
    kills_ts = pd.to_datetime(fleet.loc[fleet["kind"] == "oom_kill", "ts"], utc=True)
    fleet = fleet[fleet["kind"].isin(("scale", "deploy", "rollback")) & fleet["host"].isna()]
    fleet_ts = pd.to_datetime(fleet["ts"], utc=True)
    rows = []
    for window, span in (("baseline", baseline), ("incident", incident)):
        hours = span.duration.total_seconds() / 3600.0
        inside = (starts["ts"] >= pd.Timestamp(span.start)) & (starts["ts"] < pd.Timestamp(
            span.end))
        part = table[table["window"] == window]
        rows.append({"window": window, "hours": hours,
                     "requests": int(part["requests"].sum()),
                     "starts": int(inside.sum()), "starts_per_hour": inside.sum() / hours,
                     "fleet_events": int(((fleet_ts >= pd.Timestamp(span.start)) & (
                         fleet_ts < pd.Timestamp(span.end))).sum()),
                     "oom_restarts": int(((kills_ts >= pd.Timestamp(span.start)) & (
                         kills_ts < pd.Timestamp(span.end))).sum()),
                     "cold_share": float(part[part["bin"].isin(cold_bins)]["share"].sum())})
    windows = pd.DataFrame(rows)
    k_b, k_i = windows["starts"].iloc[0], windows["starts"].iloc[1]
    expected = (k_b + 0.5) / windows["hours"].iloc[0] * windows["hours"].iloc[1]
    p = float(stats.poisson.sf(k_i - 1, expected)) if k_i > 0 else 1.0
    return ColdStartResult(**base, table=table, starts=starts, windows=windows,
                           steady_bin=steady_bin, steady_window=steady_window,
                           steady_p99_ms=steady, concurrent_p99_ms=concurrent,
                           reference=ref_label, reference_p99_ms=reference,
                           cold_p99_ms=cold_p99, cold_requests=cold_n,
                           few_cold_pvalue=few_p, attribution=attribution,
                           tail_share=tail, starts_pvalue=p, bucket=width, sql=record.sql,
                           not_assessed=tuple(gaps))
