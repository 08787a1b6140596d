"""Hosts that stand out: errors, timeouts or latency concentrated on one replica / GPU host.

Recipe
------
* One engine pass counts requests, errors (``status = 'error'``) and timeouts
  (``status = 'timeout'``) per window, host and geometric latency bin (1% resolution); p50 /
  p95 / p99 per host and window are read off the counts
  (:func:`toolkit.diagnose.infra.capacity.hist_quantiles`, relative error < 1%).
* A second pass gives, per time bucket and host, requests, errors, timeouts and the *slow*
  requests (slower than the baseline p99 of all hosts together).
* Per window, among hosts with at least ``min_requests`` requests (at least three hosts are
  needed), robust z-scores across hosts of the error rate, the timeout rate and the p99:
  ``(x - median) / max(1.4826 x MAD, floor)`` (:func:`._stats.robust_z` with a floor on the
  scale: the binomial standard error of the median rate at the median host's request count,
  counting at least one failure; 2% of the median p99). Without the floor, hosts that are all
  alike (no errors anywhere: MAD 0) leave one bad host a z of at most sqrt(n - 1).
* A host is an **outlier** on a measure when its robust z is >= 3.5 **and** the difference
  matters: a rate at least twice the hosts' median and at least 1 point above it, with a
  two-proportion test against the other hosts at p < 1e-3 / hosts (Bonferroni); or a p99 at
  least 1.5x the median and 20 ms above it, with the same test on the share of the host's
  requests slower than the hosts' median p99 (a p99 read off a few hundred requests rests on a
  handful of them: three slow requests in a brief blip are not a slow host). The outlier is **new** when the host was absent
  from the baseline (fewer than ``min_requests`` requests) or its robust z on that measure was
  below 3.5 there (it did not stand out, whatever the size of the difference).

Finding ``infrastructure.host_outlier`` (statistic: the worst robust z; threshold 3.5), one for
the worst host, every outlier host in its evidence:

* **high**: new, z >= 5 and a strong effect (rate >= 3x the median and >= 5 points above it,
  or p99 >= 2x the median);
* **medium**: new; or a strong effect that was already there in the baseline (a chronic host);
* **low**: chronic and not strong; or a *short-lived* host: absent from the baseline and
  active (first to last request) for less than a quarter of the incident. Such a replica (an
  autoscaled pod) serves mostly while it warms up; ``infra.cold_start`` measures that.

The onset is the first incident bucket where the host's failure rate (or slow share) reaches
max(3x, +0.05 over) the hosts' median in that bucket, with at least three such requests, refined on the host's raw rows
(``_onset.refine_onset``); in a sparse log, where no bucket holds three of the host's failed or
slow requests, it is where the host's excess over the other hosts began to rise (a step or
ramp fitted on the timeline, :meth:`HostsResult.excess_rise`), refined the same way. An onset
at the incident window's very start (the host already stood out in its first bucket, and the
raw rows show no step) is marked ``onset_at_window_start`` in the evidence: it means "at or
before the window opened", not a located change. Fleet-wide effects (a deploy, daily seasonality, a blip) move every
host and so the median, not one host's z-score.

Signals (:meth:`HostsResult.signals`, read by the window detector): per bucket, the largest
excess of one host's failure rate and slow share over the bucket's other hosts, counted only
where sampling noise cannot explain it (:func:`host_excess`: one-sided Fisher exact test at
p < 1e-3 / hosts, and the outlier's effect size), else 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import ibis
import numpy as np
import pandas as pd

from toolkit._validation import check_windows
from toolkit.diagnose import _stats as st
from toolkit.diagnose._base import DiagnosticResult, Finding, NotAssessed
from toolkit.diagnose._case import CaseView, case_view, choose_bucket, within
from toolkit.diagnose._engine import Recorder, window_label
from toolkit.diagnose._engines import CaseSource
from toolkit.diagnose._onset import change_start, refine_onset
from toolkit.diagnose.infra.capacity import (
    LATENCY_RATIO,
    bucket_index,
    bucket_starts,
    hist_quantiles,
    latency_bin,
)
from toolkit.types import Window

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["host_outliers", "host_excess", "HostsResult", "ID"]

ID = "infra.hosts"
Z_OUTLIER = 3.5
Z_STRONG = 5.0
#: A host absent from the baseline and active for less than this share of the incident.
SHORT_LIVED = 0.25
#: Measures compared across hosts: (column, kind).
#: Failed or slow requests of a host that a bucket needs to date the outlier's onset.
MIN_ONSET_COUNT = 3
#: Significance of a host's excess (the two-proportion tests, before Bonferroni over hosts).
ALPHA = 1e-3
#: The smallest excess of a rate over the other hosts' that matters (1 point).
MIN_EXCESS = 0.01
MEASURES = (("error_rate", "rate"), ("timeout_rate", "rate"), ("p99_ms", "latency"))
_SEVERITY = ("low", "medium", "high")


@dataclass(frozen=True, kw_only=True, repr=False)
class HostsResult(DiagnosticResult):
    """Per-host request share, error and timeout rates, latency, and robust z-scores.

    Attributes
    ----------
    table
        One row per window and host: ``requests``, ``active_hours`` (first to last request),
        ``share``, ``errors``, ``timeouts``,
        ``error_rate``, ``timeout_rate``, ``p50_ms``, ``p95_ms``, ``p99_ms``, ``eligible``,
        and per measure ``z_<measure>`` and ``outlier_<measure>`` (eligible hosts only).
    outliers
        One row per outlier host and measure in the incident: ``host``, ``measure``,
        ``value``, ``median``, ``z``, ``strong``, ``new``, ``short_lived``, ``baseline_value``,
        ``severity``.
    timeline
        Per time bucket and host: ``requests``, ``error_rate``, ``timeout_rate``,
        ``slow_share`` (share slower than ``slow_ms``).
    slow_ms
        The baseline p99 over all hosts (the "slow" threshold of the timeline).
    """

    id = ID
    title = "Hosts that stand out"

    slow_ms: float = float("nan")
    outliers: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    timeline: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    def headline(self) -> dict[str, Any]:
        if self.table.empty:
            return {}
        inc = self.table[(self.table["window"] == "incident") & self.table["eligible"]]
        out: dict[str, Any] = {"hosts incident": int(len(inc))}
        for column, _ in MEASURES:
            z = inc[f"z_{column}"]
            if z.notna().any():
                out[f"max z {column}"] = float(z.max())
        out["outlier hosts"] = (int(self.outliers["host"].nunique()) if not self.outliers.empty
                                else 0)
        return out

    def findings(self) -> list[Finding]:
        if self.outliers.empty:
            return []
        ranked = self.outliers.assign(_rank=self.outliers["severity"].map(_SEVERITY.index))
        worst = ranked.sort_values(["_rank", "z"], ascending=False).iloc[0]
        host, measure = str(worst["host"]), str(worst["measure"])
        inc = self.table[self.table["window"] == "incident"]
        row = inc[inc["host"] == host].iloc[0]
        total_errors = inc["errors"].sum() + inc["timeouts"].sum()
        failures = row["errors"] + row["timeouts"]
        unit = "ms" if measure == "p99_ms" else ""
        value = (f"{worst['value']:.0f} ms" if unit else f"{worst['value']:.2%}")
        median = (f"{worst['median']:.0f} ms" if unit else f"{worst['median']:.2%}")
        onset = self.refined_onsets.get("infrastructure.host_outlier") or \
            self._onset(host, measure)
        evidence = {"host": host, "measure": measure, "value": float(worst["value"]),
                    "median": float(worst["median"]), "new": bool(worst["new"]),
                    "baseline_value": _num(worst["baseline_value"]),
                    "request_share": float(row["share"]),
                    "failure_share": float(failures / total_errors) if total_errors else None,
                    "outliers": [{k: _num(v) for k, v in r.items()}
                                 for r in self.outliers.drop(columns=[]).to_dict("records")]}
        if onset is not None and pd.Timestamp(onset) == pd.Timestamp(self.incident.start):
            # the excess's step fitted from the incident's start on (:meth:`excess_rise`) is
            # pinned there when the host already stood out in the window's first bucket, and
            # the raw rows found no step: the onset is "at or before the window opened"
            evidence["onset_at_window_start"] = True
        return [Finding(
            id="infrastructure.host_outlier", pathway="infrastructure",
            severity=str(worst["severity"]), statistic=float(worst["z"]), threshold=Z_OUTLIER,
            summary=(f"host {host} stands out on {measure.replace('_', ' ')}: {value} against a "
                     f"median of {median} over hosts (robust z {worst['z']:.1f}); "
                     f"{'new in the incident' if worst['new'] else 'already so in the baseline'}."),
            evidence=evidence, onset=onset, diagnostic=self.id,
        )]

    def _onset(self, host: str, measure: str):
        tl = self.timeline
        if tl.empty:
            return None
        tl = tl[(tl["bucket_start"] >= pd.Timestamp(self.baseline.end)) & (tl["requests"] >= 5)]
        column = "slow_share" if measure == "p99_ms" else measure
        median = tl.groupby("bucket_start")[column].transform("median")
        # at least three such requests: in a sparse bucket one slow request is already 5%
        over = (tl[column] >= np.maximum(3 * median, median + 0.05)) & (
            tl[column] * tl["requests"] >= MIN_ONSET_COUNT)
        hit = tl[(tl["host"] == host) & over]
        if not hit.empty:
            return hit["bucket_start"].min().to_pydatetime()
        return self.excess_rise(host, measure)

    def excess_rise(self, host: str, measure: str):
        """Where ``host``'s excess over the rest of the fleet began to rise, from the
        incident's start on: per bucket the host's failure rate (or slow share) minus the
        other hosts' (their requests pooled), fitted as a step or a ramp
        (:func:`~toolkit.diagnose._onset.change_start`, each bucket weighted by the host's
        requests); ``None`` without four buckets of the host or a rise.

        In a sparse log (1 in 20-50 requests kept, a few per host and bucket) no bucket holds
        the three failed or slow requests the crossing in :meth:`_onset` needs, and the
        finding had no onset; an excess over the others, not the host's own rate, so that a
        fleet-wide change (a deploy, the daily cycle) does not date it.
        """
        tl = self.timeline
        if tl.empty:
            return None
        column = "slow_share" if measure == "p99_ms" else measure
        tl = tl[(tl["requests"] > 0) & tl[column].notna()]
        bad = tl[column] * tl["requests"]
        fleet = pd.DataFrame({"k": bad, "n": tl["requests"]}).groupby(
            tl["bucket_start"].to_numpy()).sum()
        mine = tl[tl["host"] == host].set_index("bucket_start")
        if len(mine) < 4:
            return None
        k = (mine[column] * mine["requests"]).to_numpy(float)
        n = mine["requests"].to_numpy(float)
        rest_k = fleet.loc[mine.index, "k"].to_numpy(float) - k
        rest_n = fleet.loc[mine.index, "n"].to_numpy(float) - n
        frame = pd.DataFrame({"bucket_start": mine.index, "requests": n,
                              "excess": k / n - np.where(rest_n > 0, rest_k / np.maximum(
                                  rest_n, 1.0), 0.0)})
        width = pd.to_datetime(tl["bucket_start"], utc=True).drop_duplicates().sort_values(
        ).diff().min()
        found = change_start(frame, "excess", width=width.to_pytimedelta(),
                             after=self.incident.start, weights="requests", direction=1)
        return None if found is None else pd.Timestamp(found[0]).to_pydatetime()

    def signals(self) -> pd.DataFrame:
        """Per bucket, the largest excess of one host over the rest of the fleet that sampling
        noise cannot explain (:func:`host_excess`): failure rate
        (``hosts.failure_rate_excess``) and slow share (``hosts.slow_share_excess``); 0 when
        no host stands out in the bucket."""
        tl = self.timeline
        if tl.empty:
            return super().signals()
        tl = tl.assign(failure_rate=tl["error_rate"] + tl["timeout_rate"])
        frames = []
        for column, name in (("failure_rate", "hosts.failure_rate_excess"),
                             ("slow_share", "hosts.slow_share_excess")):
            excess = pd.Series(host_excess(tl, column), index=tl.index)
            part = excess.groupby(tl["bucket_start"]).max()
            frames.append(pd.DataFrame({"bucket_start": part.index, "signal": name,
                                        "value": part.to_numpy(dtype=float)}))
        return pd.concat(frames, ignore_index=True)

    def plot(self, ax: Axes | None = None, *, measure: str | None = None, top: int = 24,
             **kwargs: Any) -> Axes:
        """One measure per host (the finding's, else p99) in both windows, worst hosts first."""
        from toolkit.plotting import WINDOW_COLORS, axes

        ax = axes(ax, figsize=(10, 4))
        if self.table.empty:
            return super().plot(ax)
        import seaborn as sns

        found = self.findings()
        measure = measure or (found[0].evidence["measure"] if found else "p99_ms")
        inc = self.table[self.table["window"] == "incident"].sort_values(measure,
                                                                        ascending=False)
        hosts = inc["host"].head(top).tolist()
        data = self.table[self.table["host"].isin(hosts)]
        sns.barplot(data=data, x="host", y=measure, hue="window", order=hosts,
                    hue_order=["baseline", "incident"], palette=WINDOW_COLORS, ax=ax)
        for label in ax.get_xticklabels():
            label.set_rotation(45)
            label.set_ha("right")
            if not self.outliers.empty and label.get_text() in set(self.outliers["host"]):
                label.set_color("#C44E52")
                label.set_fontweight("bold")
        ax.set_xlabel("host (outliers in red)")
        ax.set_ylabel(measure.replace("_", " "))
        ax.set_title("Hosts that stand out")
        return ax


def host_outliers(
    con: CaseSource,
    baseline: Window | str,
    incident: Window | str,
    /,
    *,
    min_requests: int = 50,
    bucket: timedelta | None = None,
    case: CaseView | None = None,
) -> HostsResult:
    """Per-host errors, timeouts and latency, and the hosts that stand out in the incident.

    Parameters
    ----------
    con
        Case connection.
    baseline, incident
        The windows to compare.
    min_requests
        Requests a host needs in a window to be compared with the others.
    bucket
        Timeline bucket width.
    case
        Shared case view.

    Returns
    -------
    HostsResult

    Examples
    --------
    >>> import numpy as np, pandas as pd, toolkit as tk
    >>> con = tk.connect()
    >>> n = 8000
    >>> ts = pd.date_range("2026-03-01", periods=n, freq="15s", tz="UTC")
    >>> host = np.array([f"gpu-{k}" for k in range(8)])[np.arange(n) % 8]
    >>> bad = (host == "gpu-3") & (np.arange(n) >= n // 2)
    >>> status = np.where(bad & (np.arange(n) % 3 == 0), "error", "ok")
    >>> latency = 40.0 + np.arange(n) % 11
    >>> _ = tk.load(con, pd.DataFrame({"request_id": range(n), "ts": ts, "host": host,
    ...     "latency_ms": latency, "status": status}), table="requests")
    >>> result = host_outliers(con, (ts[0], ts[n // 2]), (ts[n // 2], ts[-1]))
    >>> f = result.findings()[0]
    >>> f.evidence["host"], f.evidence["measure"], f.severity
    ('gpu-3', 'error_rate', 'high')
    """
    baseline, incident = check_windows(baseline, incident)
    case = case or case_view(con)
    base = dict(baseline=baseline, incident=incident)
    if not case.has("requests", "host"):
        return HostsResult(**base, not_assessed=(NotAssessed(ID, "requests have no host"),))
    record = Recorder()
    span = Window(min(baseline.start, incident.start), max(baseline.end, incident.end))
    width = bucket or choose_bucket(span.duration)
    columns = case.columns["requests"]
    t = case.table("requests")
    t = t.filter(within(t.ts, span) & t.host.notnull())
    has_status = "status" in columns
    has_latency = "latency_ms" in columns
    t = t.mutate(
        _window=window_label(t.ts, baseline, incident),
        _err=(t.status == "error").cast("int64") if has_status else ibis.literal(0),
        _to=(t.status == "timeout").cast("int64") if has_status else ibis.literal(0),
        _lbin=latency_bin(t.latency_ms) if has_latency else ibis.null("int64"),
    )
    gaps = []
    if not has_status:
        gaps.append(NotAssessed(f"{ID}.errors", "requests have no status column: error and "
                                                "timeout rates not compared"))
    if not has_latency:
        gaps.append(NotAssessed(f"{ID}.latency", "requests have no latency_ms column"))
    inw = t.filter(t._window.notnull())
    hist = record(inw.group_by(window=inw._window, host=inw.host, lbin=inw._lbin).aggregate(
        n=inw.count(), errors=inw._err.sum(), timeouts=inw._to.sum(),
        with_status=inw.status.count() if has_status else ibis.literal(0),
        first=inw.ts.min(), last=inw.ts.max()))
    if hist.empty or set(hist["window"]) != {"baseline", "incident"}:
        missing = {"baseline", "incident"} - set(hist["window"])
        return HostsResult(**base, sql=record.sql, not_assessed=(*gaps, NotAssessed(
            ID, f"no requests with a host in the {', '.join(sorted(missing))} window")))
    if has_status and hist["with_status"].sum() == 0:
        has_status = False
        gaps.append(NotAssessed(f"{ID}.errors", "no status values in requests: error and "
                                                "timeout rates not compared"))
    if has_latency and hist["lbin"].notna().sum() == 0:
        has_latency = False
        gaps.append(NotAssessed(f"{ID}.latency", "no latency values in requests"))
    table = _host_table(hist, min_requests, has_status, has_latency)
    incident_hours = incident.duration.total_seconds() / 3600
    slow_ms = float("nan")
    if has_latency:
        pooled = hist[hist["window"] == "baseline"].groupby("lbin", as_index=False)[["n"]].sum()
        q = hist_quantiles(pooled, [], (0.99,), names=["p99"])
        slow_ms = float(q["p99"].iloc[0]) if len(q) else float("nan")
    measures = dict(requests=t.count(), errors=t._err.sum(), timeouts=t._to.sum())
    if has_latency and not math.isnan(slow_ms):
        measures["slow"] = (t.latency_ms > slow_ms).fill_null(False).cast("int64").sum()
    timeline = record(t.group_by(bucket=bucket_index(t.ts, width), host=t.host).aggregate(
        **measures))
    timeline.insert(0, "bucket_start", bucket_starts(timeline.pop("bucket"), width))
    if "slow" not in timeline:
        timeline["slow"] = np.nan
    for column, source in (("error_rate", "errors"), ("timeout_rate", "timeouts"),
                           ("slow_share", "slow")):
        timeline[column] = timeline.pop(source) / timeline["requests"]
    timeline = timeline.sort_values(["bucket_start", "host"], ignore_index=True)

    eligible = int(table[(table["window"] == "incident")]["eligible"].sum())
    if eligible < 3:
        return HostsResult(**base, table=table, timeline=timeline, slow_ms=slow_ms,
                           sql=record.sql, not_assessed=(*gaps, NotAssessed(
                               ID, f"{eligible} host(s) with {min_requests} requests in the "
                                   "incident: at least 3 are needed to compare hosts")))
    measures = [(c, k) for c, k in MEASURES if (k == "rate" and has_status) or
                (k == "latency" and has_latency)]
    outliers = _outliers(table, measures, incident_hours)
    result = HostsResult(**base, table=table, outliers=outliers, timeline=timeline,
                         slow_ms=slow_ms, sql=record.sql, not_assessed=tuple(gaps))
    for finding in result.findings():
        if finding.onset is not None:
            r = case.table("requests")
            r = r.filter(r.host == finding.evidence["host"])
            indicator = {"error_rate": r.status == "error", "timeout_rate": r.status == "timeout",
                         "p99_ms": r.latency_ms > slow_ms}[finding.evidence["measure"]]
            onset = refine_onset(record, r, indicator.fill_null(False), finding.onset,
                                 around=3 * width, limits=span)
            result = replace(result, refined_onsets={finding.id: onset}, sql=record.sql)
    return result


def host_excess(timeline: pd.DataFrame, column: str) -> np.ndarray:
    """Per row (bucket, host) of ``timeline``, the host's excess ``column`` share over the rest
    of the fleet in that bucket, or 0 where sampling noise explains it.

    A host stands out in a bucket when it has more failed (or slow) requests than the bucket's
    other hosts make likely: the one-sided Fisher exact test of its count against theirs (the
    hypergeometric tail of the bucket's ``K`` failures among its ``N`` requests falling ``k`` or
    more on the host's ``n``), at p < :data:`ALPHA` / hosts in the bucket (Bonferroni), with the
    difference that counts for an outlier (at least twice the others' share and
    :data:`MIN_EXCESS` above it). In a sparse log (1 in 50 requests kept: a few requests per host
    and bucket) one slow request is a share of 10-20% against a median of 0, and the plain excess
    over the median stepped for buckets on end with no fault anywhere. A bucket with one host has
    nothing to compare (0); a ``NaN`` share stays ``NaN``.

    Parameters
    ----------
    timeline
        :attr:`HostsResult.timeline`: ``bucket_start``, ``host``, ``requests`` and ``column``.
    column
        A share of the host's requests (``error_rate``, ``slow_share``, ...).

    Returns
    -------
    numpy.ndarray
        ``share - others' share`` where the host stands out, else 0 (``NaN`` where the share is).
    """
    n = timeline["requests"].to_numpy(dtype=float)
    share = timeline[column].to_numpy(dtype=float)
    known = ~np.isnan(share) & (n > 0)
    k = np.where(known, np.rint(np.nan_to_num(share) * n), 0.0)
    n = np.where(known, n, 0.0)
    bucket = timeline["bucket_start"]
    total_k = pd.Series(k).groupby(bucket.to_numpy()).transform("sum").to_numpy()
    total_n = pd.Series(n).groupby(bucket.to_numpy()).transform("sum").to_numpy()
    hosts = pd.Series(known).groupby(bucket.to_numpy()).transform("sum").to_numpy()
    other_n = total_n - n
    with np.errstate(divide="ignore", invalid="ignore"):
        other = np.where(other_n > 0, (total_k - k) / other_n, np.nan)
    p = st.fisher_greater(k, n, total_k - k, other_n)
    stands_out = known & (other_n > 0) & (p < ALPHA / np.maximum(hosts, 1)) & (
        share >= 2 * other) & (share - other >= MIN_EXCESS)
    excess = np.where(stands_out, share - other, 0.0)
    return np.where(np.isnan(share), np.nan, excess)


def _host_table(hist: pd.DataFrame, min_requests: int, has_status: bool, has_latency: bool
                ) -> pd.DataFrame:
    table = hist.groupby(["window", "host"], as_index=False).agg(
        requests=("n", "sum"), errors=("errors", "sum"), timeouts=("timeouts", "sum"),
        first=("first", "min"), last=("last", "max"))
    table["active_hours"] = (table.pop("last") - table.pop("first")).dt.total_seconds() / 3600
    table["share"] = table["requests"] / table.groupby("window")["requests"].transform("sum")
    table["error_rate"] = table["errors"] / table["requests"] if has_status else np.nan
    table["timeout_rate"] = table["timeouts"] / table["requests"] if has_status else np.nan
    q = hist_quantiles(hist, ["window", "host"], (0.5, 0.95, 0.99),
                       names=["p50_ms", "p95_ms", "p99_ms"])
    table = table.merge(q, on=["window", "host"], how="left")
    table["eligible"] = table["requests"] >= min_requests
    table["slow"] = _slow_counts(hist, table) if has_latency else 0
    for column, kind in MEASURES:
        table[f"z_{column}"] = np.nan
        table[f"outlier_{column}"] = False
        for window in ("baseline", "incident"):
            mask = (table["window"] == window) & table["eligible"] & table[column].notna()
            if mask.sum() < 3:
                continue
            part = table[mask]
            z = _robust_z(part[column].to_numpy(dtype=float),
                          _scale_floor(part, column, kind))
            table.loc[mask, f"z_{column}"] = z
            table.loc[mask, f"outlier_{column}"] = _is_outlier(part, column, kind, z)
    table[["requests", "errors", "timeouts"]] = table[["requests", "errors",
                                                       "timeouts"]].astype("int64")
    return table.sort_values(["window", "host"], ignore_index=True)


def _robust_z(values: np.ndarray, floor: float) -> np.ndarray:
    """:func:`._stats.robust_z` with the scale floored: ``(x - median) / max(1.4826 MAD,
    floor)``. Without the floor, hosts that are all alike (zero error rates, a MAD of 0) fall
    back to the standard deviation, which the outlier inflates: one bad host among n then scores
    at most sqrt(n - 1) and could never stand out."""
    x = np.asarray(values, dtype=float)
    median = np.nanmedian(x)
    mad = 1.4826 * np.nanmedian(np.abs(x - median))
    scale = max(mad, floor)
    if scale <= 0 or math.isnan(scale):
        return st.robust_z(x)
    return (x - median) / scale


def _scale_floor(part: pd.DataFrame, column: str, kind: str) -> float:
    """Smallest spread across hosts that counts: the binomial standard error of the median rate
    at the median host's request count (rates; at least one failure in it), or 2% of the
    median p99 (latency: twice the histogram's resolution)."""
    median = float(part[column].median())
    if kind == "latency":
        return 0.02 * median
    n = float(part["requests"].median())
    rate = max(median, 1.0 / n)
    return math.sqrt(rate * (1 - min(rate, 0.5)) / n)


def _is_outlier(part: pd.DataFrame, column: str, kind: str, z: np.ndarray) -> np.ndarray:
    values = part[column].to_numpy(dtype=float)
    median = float(np.median(values))
    if kind == "latency":
        flags = (z >= Z_OUTLIER) & (values >= 1.5 * median) & (values - median >= 20)
        count = "slow"
    else:
        flags = (z >= Z_OUTLIER) & (values >= 2 * median) & (values - median >= MIN_EXCESS)
        count = "errors" if column == "error_rate" else "timeouts"
    k = part[count].to_numpy(dtype=float)
    n = part["requests"].to_numpy(dtype=float)
    for i in np.flatnonzero(flags):
        _, p = st.two_proportion_z(k.sum() - k[i], n.sum() - n[i], k[i], n[i])
        flags[i] = p < ALPHA / len(values)  # Bonferroni over the hosts compared
    return flags


def _slow_counts(hist: pd.DataFrame, table: pd.DataFrame) -> np.ndarray:
    """Per row of ``table``, the host's requests slower than the median of the eligible hosts'
    p99 in that window (whole latency bins above it: at 1% resolution)."""
    limits = table[table["eligible"]].groupby("window")["p99_ms"].median()
    lower = np.power(LATENCY_RATIO, hist["lbin"].to_numpy(dtype=float))
    limit = hist["window"].map(limits).to_numpy(dtype=float)
    slow = hist.assign(_slow=np.where(lower >= limit, hist["n"], 0))
    counts = slow.groupby(["window", "host"])["_slow"].sum()
    keys = pd.MultiIndex.from_frame(table[["window", "host"]])
    return counts.reindex(keys, fill_value=0).to_numpy(dtype=float)


def _strong(value: float, median: float, kind: str) -> bool:
    if kind == "latency":
        return value >= 2 * median
    return value >= 3 * median and value - median >= 0.05


def _outliers(table: pd.DataFrame, measures, incident_hours: float) -> pd.DataFrame:
    columns = ["host", "measure", "value", "median", "z", "strong", "new", "short_lived",
               "baseline_value", "severity"]
    inc = table[(table["window"] == "incident") & table["eligible"]]
    before = table[table["window"] == "baseline"].set_index("host")
    rows = []
    for column, kind in measures:
        median = float(inc[column].median())
        for _, row in inc[inc[f"outlier_{column}"]].iterrows():
            host = row["host"]
            seen = host in before.index and bool(before.loc[host, "eligible"])
            z_before = float(before.loc[host, f"z_{column}"]) if seen else float("nan")
            new = not seen or not (z_before >= Z_OUTLIER)
            strong = _strong(float(row[column]), median, kind)
            z = float(row[f"z_{column}"])
            short = not seen and row["active_hours"] < SHORT_LIVED * incident_hours
            if short:
                severity = "low"
            elif new and strong and z >= Z_STRONG:
                severity = "high"
            elif new or strong:
                severity = "medium"
            else:
                severity = "low"
            rows.append({"host": host, "measure": column, "value": float(row[column]),
                         "median": median, "z": z, "strong": strong, "new": new,
                         "short_lived": bool(short),
                         "baseline_value": float(before.loc[host, column]) if seen else np.nan,
                         "severity": severity})
    return pd.DataFrame(rows, columns=columns)


def _num(value: Any) -> Any:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        value = float(value)
        return None if math.isnan(value) else value
    return value
