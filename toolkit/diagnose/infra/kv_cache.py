"""KV-cache pressure of generative endpoints: usage pinned near 1, preemptions, the waiting
queue, and how TTFT follows them.

Recipe
------
* **Series.** ``metrics`` rows named ``kv_cache_usage`` (0..1; divided by 100 when its largest
  value says percent, ``percent_scale``), ``requests_waiting`` (else ``queue_depth``, the name
  older loads gave vLLM's waiting count), ``requests_running``, and the cumulative counters
  ``preemptions_total`` and ``generation_tokens_total``. A counter's increase is derived in the
  engine per host and series: ``value - lag(value)`` in time order, the value itself after a
  reset (a drop), nothing for the first sample. ``requests.preemptions`` (preemptions per
  request), when present, gives the preempted share of requests and a preemption count where
  the counter is missing (``preemption_source``).
* **One metrics query** groups the samples by time bucket, window and series: sum, count, max,
  samples at >= 0.95 (``kv`` *pinned*; both the fraction and the percent threshold are counted,
  the scale picks one) and the sum of counter increases. Windows and the timeline are sums of
  these cells. **Two requests queries**: per window (TTFT p90, preempted requests) and per time
  bucket (TTFT p90, exact ``quantile_cont``, and preemptions); TTFT is ``ttft_ms``, else
  ``latency_ms`` (``latency_column``). When ``infra.token_latency`` ran on the case view
  first (the registry's order) they are read from its summaries
  (:func:`~toolkit.diagnose.infra.token_latency.peek_latency_summaries`) instead.
* **Relation to TTFT**: Spearman's rank correlation over the time buckets of both windows
  (``scipy.stats.spearmanr`` on the bucket summaries) between TTFT p90 and each of mean KV
  usage, mean waiting requests and preemptions per bucket; NaN with fewer than
  :data:`MIN_BUCKETS` buckets holding both.

Finding ``infrastructure.kv_cache_pressure``
--------------------------------------------
Signs, each a boolean evidence key:

* ``kv_pinned``: the share of incident KV samples at >= 0.95 is >= 0.25 and at least 0.15
  above the baseline's;
* ``preemptions_up``: incident preemptions per hour >= 2x the baseline's, at least 5, and a
  Poisson tail p < 1e-3 under the baseline rate (half a preemption added to the baseline);
  from ``requests.preemptions`` alone: the preempted share >= 2x the baseline's with a
  two-proportion p < 1e-3;
* ``waiting_up``: mean waiting requests in the incident >= 2x the baseline's and >= 1;
* ``ttft_up``: incident TTFT p90 >= 1.5x the baseline's;
* ``throughput_down``: generated tokens per second (counter) <= 0.8x the baseline's.

Fires when ``kv_pinned`` or ``preemptions_up``. Statistic: the incident pinned share (threshold
0.25) when KV usage is measured, else the preemption rate ratio (threshold 2)
(``statistic_kind``). **high** with at least three signs (and ``kv_pinned`` when KV usage is
measured: preempting and queueing with room in the cache is a slow engine, e.g. a bad GPU, more
than an exhausted cache), **medium** with two, **low** with one.
Evidence also: ``signs`` (list), ``n_signs``, ``kv_usage_max_baseline`` / ``_incident``,
``kv_usage_mean_baseline`` / ``_incident``, ``kv_pinned_share_baseline`` / ``_incident``,
``preemptions_baseline`` / ``_incident`` (counts), ``preemptions_per_hour_baseline`` /
``_incident``, ``preemption_pvalue``, ``preempted_share_baseline`` / ``_incident``,
``preemption_source``, ``waiting_mean_baseline`` / ``_incident``, ``waiting_source``,
``running_mean_baseline`` / ``_incident``, ``ttft_p90_baseline_ms`` / ``_incident_ms``,
``ttft_ratio``, ``latency_column``, ``corr_kv_ttft``, ``corr_waiting_ttft``,
``corr_preemptions_ttft``, ``generation_tokens_per_s_ratio``. Onset: the ramp of the pinned
share (else preemptions per bucket) timeline.
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
from toolkit.diagnose import _stats as st
from toolkit.diagnose._base import DiagnosticResult, Finding, NotAssessed, timeline_signals
from toolkit.diagnose._case import CaseView, case_view, choose_bucket, percent_scale, within
from toolkit.diagnose._engine import Recorder, bucket_expr, window_label
from toolkit.diagnose._engines import CaseSource
from toolkit.diagnose._format import times
from toolkit.diagnose._onset import coarse_onset
from toolkit.diagnose.infra.token_latency import (
    LATENCIES,
    NO_HOST,
    QUANTILES,
    peek_latency_summaries,
    split_quantiles,
)
from toolkit.types import Window

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["kv_cache_pressure", "KVCacheResult", "ID", "GAUGES", "COUNTERS"]

ID = "infra.kv_cache"
#: Gauge series read, by role (the first name present wins for ``waiting``).
GAUGES = {"kv": ("kv_cache_usage",), "waiting": ("requests_waiting", "queue_depth"),
          "running": ("requests_running",)}
#: Cumulative counters whose increases are summed, by role.
COUNTERS = {"preemptions": "preemptions_total", "generated": "generation_tokens_total"}
PINNED = 0.95
PINNED_SHARE = 0.25
PINNED_RISE = 0.15
RATE_RATIO = 2.0
MIN_PREEMPTIONS = 5
PVALUE = 1e-3
WAITING_RATIO = 2.0
TTFT_RATIO = 1.5
THROUGHPUT_RATIO = 0.8
#: Fewest time buckets holding both series for a rank correlation.
MIN_BUCKETS = 6
_WINDOWS = ("baseline", "incident")


@dataclass(frozen=True, kw_only=True, repr=False)
class KVCacheResult(DiagnosticResult):
    """KV usage, preemptions, waiting requests and TTFT per window and over time.

    Attributes
    ----------
    table
        One row per window: ``hours``, ``kv_samples``, ``kv_usage_mean``, ``kv_usage_max``,
        ``kv_pinned_share``, ``preemptions``, ``preemptions_per_hour``, ``waiting_mean``,
        ``running_mean``, ``generated_tokens``, ``generation_tokens_per_s``, ``requests``,
        ``preempted_share``, ``ttft_p90_ms``.
    timeline
        Per time bucket: ``bucket_start``, ``kv_usage_mean``, ``kv_usage_max``,
        ``kv_pinned_share``, ``preemptions``, ``waiting_mean``, ``running_mean``,
        ``requests``, ``ttft_p90_ms``.
    correlations
        One row per series: ``series`` (``kv_usage_mean``, ``waiting_mean``,
        ``preemptions``), ``rho``, ``pvalue``, ``buckets`` (Spearman against ``ttft_p90_ms``).
    """

    id = ID
    title = "KV-cache pressure and preemptions"

    timeline: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    correlations: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    kv_scale: float = 1.0
    preemption_source: str = ""
    waiting_source: str = ""
    latency_column: str = ""

    def value(self, window: str, column: str) -> float:
        if self.table.empty or column not in self.table:
            return float("nan")
        rows = self.table[self.table["window"] == window]
        return float(rows[column].iloc[0]) if len(rows) else float("nan")

    def rho(self, series: str) -> float:
        if self.correlations.empty:
            return float("nan")
        rows = self.correlations[self.correlations["series"] == series]
        return float(rows["rho"].iloc[0]) if len(rows) else float("nan")

    def _ratio(self, column: str) -> float:
        base = self.value("baseline", column)
        return self.value("incident", column) / base if base > 0 else float("nan")

    def headline(self) -> dict[str, Any]:
        if self.table.empty:
            return {}
        return {
            "KV pinned share baseline": self.value("baseline", "kv_pinned_share"),
            "KV pinned share incident": self.value("incident", "kv_pinned_share"),
            "preemptions/h baseline": self.value("baseline", "preemptions_per_hour"),
            "preemptions/h incident": self.value("incident", "preemptions_per_hour"),
            "waiting baseline": self.value("baseline", "waiting_mean"),
            "waiting incident": self.value("incident", "waiting_mean"),
            "rho(KV usage, TTFT p90)": self.rho("kv_usage_mean"),
        }

    def _preemption_test(self) -> tuple[bool, float]:
        """Whether preemptions rose, and the p-value of the test that says so."""
        if self.preemption_source.startswith("metrics"):
            k_b, k_i = self.value("baseline", "preemptions"), self.value("incident",
                                                                         "preemptions")
            h_b, h_i = self.value("baseline", "hours"), self.value("incident", "hours")
            if math.isnan(k_b) or math.isnan(k_i) or h_b <= 0 or h_i <= 0:
                return False, float("nan")
            expected = (k_b + 0.5) / h_b * h_i
            p = float(stats.poisson.sf(k_i - 1, expected)) if k_i > 0 else 1.0
            up = (k_i >= MIN_PREEMPTIONS and k_i / h_i >= RATE_RATIO * (k_b + 0.5) / h_b
                  and p < PVALUE)
            return up, p
        if self.preemption_source:
            s_b, s_i = self.value("baseline", "preempted_share"), self.value(
                "incident", "preempted_share")
            n_b, n_i = self.value("baseline", "requests"), self.value("incident", "requests")
            _, p = st.two_proportion_z(s_b * n_b, n_b, s_i * n_i, n_i)
            up = s_i * n_i >= MIN_PREEMPTIONS and s_i >= RATE_RATIO * s_b and p < PVALUE
            return bool(up), p
        return False, float("nan")

    def evidence(self) -> dict[str, Any]:
        """The signs and numbers of the finding (also when it does not fire)."""
        v = self.value
        pinned_b, pinned_i = v("baseline", "kv_pinned_share"), v("incident", "kv_pinned_share")
        up, p = self._preemption_test()
        signs = {
            "kv_pinned": bool(pinned_i >= PINNED_SHARE and
                              pinned_i >= (0.0 if math.isnan(pinned_b) else pinned_b)
                              + PINNED_RISE),
            "preemptions_up": up,
            "waiting_up": bool(v("incident", "waiting_mean") >= max(
                WAITING_RATIO * v("baseline", "waiting_mean"), 1.0)),
            "ttft_up": bool(self._ratio("ttft_p90_ms") >= TTFT_RATIO),
            "throughput_down": bool(self._ratio("generation_tokens_per_s") <= THROUGHPUT_RATIO),
        }
        out: dict[str, Any] = dict(signs)
        out["signs"] = [k for k, on in signs.items() if on]
        out["n_signs"] = len(out["signs"])
        for column in ("kv_usage_max", "kv_usage_mean", "kv_pinned_share", "preemptions",
                       "preemptions_per_hour", "preempted_share", "waiting_mean",
                       "running_mean"):
            for window in _WINDOWS:
                out[f"{column}_{window}"] = v(window, column)
        out["ttft_p90_baseline_ms"] = v("baseline", "ttft_p90_ms")
        out["ttft_p90_incident_ms"] = v("incident", "ttft_p90_ms")
        out["ttft_ratio"] = self._ratio("ttft_p90_ms")
        out["generation_tokens_per_s_ratio"] = self._ratio("generation_tokens_per_s")
        out["preemption_pvalue"] = p
        out["preemption_source"] = self.preemption_source
        out["waiting_source"] = self.waiting_source
        out["latency_column"] = self.latency_column
        out["corr_kv_ttft"] = self.rho("kv_usage_mean")
        out["corr_waiting_ttft"] = self.rho("waiting_mean")
        out["corr_preemptions_ttft"] = self.rho("preemptions")
        return out

    def findings(self) -> list[Finding]:
        if self.table.empty:
            return []
        ev = self.evidence()
        if not (ev["kv_pinned"] or ev["preemptions_up"]):
            return []
        kv_measured = not math.isnan(self.value("incident", "kv_pinned_share"))
        if kv_measured:
            statistic, threshold, kind = ev["kv_pinned_share_incident"], PINNED_SHARE, \
                "kv_pinned_share"
            column = "kv_pinned_share"
        else:
            base = ev["preemptions_per_hour_baseline"] if self.preemption_source.startswith(
                "metrics") else ev["preempted_share_baseline"]
            inc = ev["preemptions_per_hour_incident"] if self.preemption_source.startswith(
                "metrics") else ev["preempted_share_incident"]
            statistic = inc / base if base > 0 else float("inf")
            threshold, kind, column = RATE_RATIO, "preemption_rate_ratio", "preemptions"
        ev["statistic_kind"] = kind
        n = ev["n_signs"]
        severity = "high" if n >= 3 else "medium" if n == 2 else "low"
        if severity == "high" and kv_measured and not ev["kv_pinned"]:
            severity = "medium"  # preempting and queueing with room in the KV cache
        onset = coarse_onset(self.timeline, column, after=self.baseline.end, direction=1)
        parts = []
        if kv_measured:
            parts.append(f"KV cache at >= {PINNED:.0%} in {ev['kv_pinned_share_incident']:.0%} "
                         f"of incident samples (baseline {ev['kv_pinned_share_baseline']:.0%})")
        if ev["preemptions_up"]:
            parts.append("preemptions up" + (
                f" ({ev['preemptions_per_hour_baseline']:.1f} -> "
                f"{ev['preemptions_per_hour_incident']:.1f}/h)"
                if not math.isnan(ev["preemptions_per_hour_incident"]) else ""))
        if ev["waiting_up"]:
            parts.append(f"waiting requests {ev['waiting_mean_baseline']:.1f} -> "
                         f"{ev['waiting_mean_incident']:.1f}")
        if ev["ttft_up"]:
            parts.append(f"TTFT p90 {times(ev['ttft_ratio'])}")
        return [Finding(
            id="infrastructure.kv_cache_pressure", pathway="infrastructure", severity=severity,
            statistic=float(statistic), threshold=threshold,
            summary="; ".join(parts) + ".", evidence=ev, onset=onset, diagnostic=self.id)]

    def signals(self) -> pd.DataFrame:
        if self.timeline.empty:
            return super().signals()
        columns = [c for c in ("kv_usage_mean", "kv_pinned_share", "preemptions",
                               "waiting_mean", "ttft_p90_ms")
                   if c in self.timeline and self.timeline[c].notna().any()]
        return timeline_signals(self.timeline, columns, "kv.")

    def plot(self, ax: Axes | None = None, **kwargs: Any) -> Axes:
        """Mean and max KV usage over time (left axis), waiting requests and preemptions per
        bucket (right axis), incident shaded."""
        from toolkit.plotting import WINDOW_COLORS, axes

        ax = axes(ax, figsize=(10, 4))
        if self.timeline.empty:
            return super().plot(ax)
        tl = self.timeline
        if tl["kv_usage_mean"].notna().any():
            ax.plot(tl["bucket_start"], tl["kv_usage_mean"], label="KV usage (mean)")
            ax.plot(tl["bucket_start"], tl["kv_usage_max"], ls=":", label="KV usage (max)")
            ax.axhline(PINNED, ls="--", lw=1, color="#8C8C8C", label=f"{PINNED:.0%}")
            ax.set_ylim(0, 1.05)
        ax.set_ylabel("KV-cache usage")
        right = ax.twinx()
        for column, style in (("waiting_mean", "-"), ("preemptions", "--")):
            if tl[column].notna().any():
                right.plot(tl["bucket_start"], tl[column], ls=style, color="#C44E52",
                           label=column.replace("_", " "))
        right.set_ylabel("waiting / preemptions per bucket")
        ax.axvspan(self.incident.start, self.incident.end, color=WINDOW_COLORS["incident"],
                   alpha=0.08, label="incident")
        ax.set_xlabel("time (UTC)")
        ax.set_title("KV-cache pressure")
        handles = ax.get_legend_handles_labels()
        more = right.get_legend_handles_labels()
        ax.legend(handles[0] + more[0], handles[1] + more[1], loc="upper left",
                  fontsize="small")
        return ax


def kv_cache_pressure(
    con: CaseSource,
    baseline: Window | str,
    incident: Window | str,
    /,
    *,
    bucket: timedelta | None = None,
    case: CaseView | None = None,
) -> KVCacheResult:
    """KV-cache usage, preemptions, waiting requests and their relation to TTFT.

    Parameters
    ----------
    con
        Case connection.
    baseline, incident
        The windows to compare.
    bucket
        Timeline bucket width (default: ``choose_bucket`` over both windows).
    case
        Shared case view.

    Returns
    -------
    KVCacheResult

    Examples
    --------
    >>> import numpy as np, pandas as pd, toolkit as tk
    >>> con = tk.connect()
    >>> ts = pd.date_range("2026-03-01", periods=240, freq="min", tz="UTC")
    >>> kv = np.r_[np.full(120, 0.5), np.full(120, 0.99)]
    >>> _ = tk.load(con, pd.DataFrame({"ts": ts, "host": "gpu-0", "name": "kv_cache_usage",
    ...                                "value": kv}), table="metrics")
    >>> result = kv_cache_pressure(con, (ts[0], ts[120]), (ts[120], ts[-1] + ts.freq))
    >>> [(f.id, f.severity, f.statistic) for f in result.findings()]
    [('infrastructure.kv_cache_pressure', 'low', 1.0)]
    """
    baseline, incident = check_windows(baseline, incident)
    case = case or case_view(con)
    base = dict(baseline=baseline, incident=incident)
    record = Recorder()
    span = Window(min(baseline.start, incident.start), max(baseline.end, incident.end))
    width = bucket or choose_bucket(span.duration)
    names = _metric_names(case, record)
    has_preemption_column = case.has("requests", "preemptions")
    if "kv" not in names and "preemptions" not in names and not has_preemption_column:
        return KVCacheResult(**base, sql=record.sql, not_assessed=(NotAssessed(
            ID, "no kv_cache_usage or preemptions_total metric and no requests.preemptions: "
                "KV-cache pressure cannot be assessed"),))
    gaps = []
    if "kv" not in names:
        gaps.append(NotAssessed(f"{ID}.usage", "no kv_cache_usage metric: whether the KV "
                                               "cache ran full is not measured"))
    if "preemptions" not in names and not has_preemption_column:
        gaps.append(NotAssessed(f"{ID}.preemptions", "no preemptions_total metric and no "
                                                     "requests.preemptions"))
    if "waiting" not in names:
        gaps.append(NotAssessed(f"{ID}.waiting", "no requests_waiting or queue_depth metric"))
    cells, scale = _metric_cells(case, record, names, span, baseline, incident, width)
    requests_w, requests_t, latency_column = _request_summaries(
        case, record, span, baseline, incident, width)
    if not latency_column:
        gaps.append(NotAssessed(f"{ID}.ttft", "requests have no ttft_ms or latency_ms: the "
                                              "relation of KV pressure to TTFT is not measured"))
    windows, timeline = _assemble(cells, requests_w, requests_t, names, baseline, incident,
                                  width)
    if windows["kv_samples"].fillna(0).min() == 0 and "preemptions" not in names and \
            not has_preemption_column:
        return KVCacheResult(**base, sql=record.sql, timeline=timeline, not_assessed=(
            NotAssessed(ID, "no kv_cache_usage sample in the baseline or the incident window"),
            *gaps))
    correlations = _correlations(timeline)
    preemption_source = "metrics:preemptions_total" if "preemptions" in names else (
        "requests.preemptions" if has_preemption_column else "")
    return KVCacheResult(
        **base, table=windows, timeline=timeline, correlations=correlations, sql=record.sql,
        not_assessed=tuple(gaps), kv_scale=scale, preemption_source=preemption_source,
        waiting_source=names.get("waiting", ""), latency_column=latency_column)


def _metric_names(case: CaseView, record: Recorder) -> dict[str, str]:
    """The series present per role (``kv``, ``waiting``, ``running``, ``preemptions``,
    ``generated``)."""
    if not case.has("metrics", "name", "value"):
        return {}
    wanted = [n for names in GAUGES.values() for n in names] + list(COUNTERS.values())
    m = case.table("metrics")
    present = set(record(m.filter(m.name.isin(wanted)).select("name").distinct())["name"])
    out = {}
    for role, candidates in GAUGES.items():
        found = next((n for n in candidates if n in present), None)
        if found:
            out[role] = found
    for role, name in COUNTERS.items():
        if name in present:
            out[role] = name
    return out


def _metric_cells(case: CaseView, record: Recorder, names: dict[str, str], span: Window,
                  baseline: Window, incident: Window, width: timedelta
                  ) -> tuple[pd.DataFrame, float]:
    """Per (bucket, window, series): n, sum, max, pinned counts and counter increases."""
    columns = ["bucket_start", "window", "name", "n", "total", "peak", "pinned_fraction",
               "pinned_percent", "increase"]
    if not names:
        return pd.DataFrame(columns=columns), 1.0
    m = case.table("metrics")
    # counters need the sample before the span for their first increase: one bucket of margin
    margin = Window(span.start - width, span.end)
    rows = m.filter(m.name.isin(list(names.values())) & m.value.notnull() & ~m.value.isnan()
                    & within(m.ts, margin))
    rows = rows.select("ts", "name", "value", _host=rows.host.cast("string").fill_null(NO_HOST))
    counter_names = [names[role] for role in COUNTERS if role in names]
    counters = rows.filter(rows.name.isin(counter_names or [""]))
    step = ibis.window(group_by=[counters._host, counters.name], order_by=[counters.ts])
    previous = counters.value.lag().over(step)
    counters = counters.mutate(_increase=ibis.cases(
        (previous.isnull(), ibis.null("float64")),
        (counters.value >= previous, counters.value - previous),
        else_=counters.value))  # a reset: counting restarted from 0
    gauges = rows.filter(~rows.name.isin(counter_names or [""])).mutate(
        _increase=ibis.null("float64"))
    rows = gauges.union(counters)  # the window function only sorts the counters' samples
    rows = rows.filter(within(rows.ts, span))
    rows = rows.mutate(_window=window_label(rows.ts, baseline, incident))
    cells = record(rows.group_by(bucket_start=bucket_expr(rows.ts, width),
                                 window=rows._window, name=rows.name).aggregate(
        n=rows.count(), total=rows.value.sum(), peak=rows.value.max(),
        pinned_fraction=(rows.value >= PINNED).cast("int64").sum(),
        pinned_percent=(rows.value >= PINNED * 100).cast("int64").sum(),
        increase=rows._increase.sum()))
    kv = cells[cells["name"] == names.get("kv")]
    scale = percent_scale(float(kv["peak"].max())) if len(kv) else 1.0
    return cells[columns], scale


def _request_summaries(case: CaseView, record: Recorder, span: Window, baseline: Window,
                       incident: Window, width: timedelta
                       ) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Per window and per bucket: requests, TTFT p90, preempted requests and preemptions.

    When ``infra.token_latency`` ran on this case view already, from its latency summaries
    (:func:`peek_latency_summaries`: the p90 of its p50 / p90 / p99 array is the
    ``quantile_cont`` at 0.9 a scan of its own would compute), else two scans of its own.
    """
    if not case.has("requests", "ts"):
        return pd.DataFrame(), pd.DataFrame(), ""
    cols = case.columns["requests"]
    latency = "ttft_ms" if "ttft_ms" in cols else "latency_ms" if "latency_ms" in cols else ""
    shared = peek_latency_summaries(case, record, span, baseline, incident, width)
    if shared is not None:
        name = {column: n for n, column in LATENCIES.items()}.get(latency)
        out = []
        for frame in shared:
            keep = [c for c in ("window", "bucket_start", "requests", "preempted",
                                "request_preemptions") if c in frame]
            part = frame[keep].copy()
            if latency:
                part["ttft_p90_ms"] = [
                    float(q[QUANTILES.index(0.9)]) if isinstance(q, (list, np.ndarray))
                    else np.nan for q in frame[f"_{name}_q"]]
            out.append(part)
        return out[0], out[1], latency
    t = case.table("requests")
    t = t.filter(within(t.ts, span))
    t = t.mutate(_window=window_label(t.ts, baseline, incident))

    def measures(rows) -> dict[str, Any]:
        out: dict[str, Any] = {"requests": rows.count()}
        if "preemptions" in cols:
            out["preempted"] = (rows.preemptions > 0).cast("int64").sum()
            out["request_preemptions"] = rows.preemptions.cast("int64").sum()
        if latency:
            out["_q"] = rows[latency].quantile([0.9])
        return out

    inside = t.filter(t._window.notnull())
    per_window = record(inside.group_by(window=inside._window).aggregate(**measures(inside)))
    per_bucket = record(t.group_by(bucket_start=bucket_expr(t.ts, width)).aggregate(
        **measures(t)))
    for frame in (per_window, per_bucket):
        split_quantiles(frame, "_q", "ttft", names=("p90",))
    return per_window, per_bucket, latency


def _assemble(cells: pd.DataFrame, requests_w: pd.DataFrame, requests_t: pd.DataFrame,
              names: dict[str, str], baseline: Window, incident: Window, width: timedelta
              ) -> tuple[pd.DataFrame, pd.DataFrame]:
    kv_peak = cells.loc[cells["name"] == names.get("kv"), "peak"]
    scale = percent_scale(float(kv_peak.max())) if len(kv_peak) else 1.0
    pinned = "pinned_percent" if scale == 100.0 else "pinned_fraction"

    def summarise(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
        out = frame[keys].drop_duplicates().reset_index(drop=True)

        def role(name_role: str) -> pd.DataFrame:
            part = frame[frame["name"] == names.get(name_role)]
            return part.groupby(keys)[["n", "total", "peak", pinned, "increase"]].agg(
                {"n": "sum", "total": "sum", "peak": "max", pinned: "sum",
                 "increase": lambda x: x.sum(min_count=1)}).reset_index()

        kv = role("kv").assign(kv_samples=lambda d: d["n"],
                               kv_usage_mean=lambda d: d["total"] / d["n"] / scale,
                               kv_usage_max=lambda d: d["peak"] / scale,
                               kv_pinned_share=lambda d: d[pinned] / d["n"])
        out = out.merge(kv[[*keys, "kv_samples", "kv_usage_mean", "kv_usage_max",
                            "kv_pinned_share"]], on=keys, how="left")
        for name_role, column in (("waiting", "waiting_mean"), ("running", "running_mean")):
            part = role(name_role)
            out = out.merge(part.assign(**{column: part["total"] / part["n"]})[
                [*keys, column]], on=keys, how="left")
        for name_role, column in (("preemptions", "preemptions"),
                                  ("generated", "generated_tokens")):
            part = role(name_role).rename(columns={"increase": column})
            out = out.merge(part[[*keys, column]], on=keys, how="left")
            if names.get(name_role):
                out[column] = out[column].fillna(0.0)
        return out

    hours = {"baseline": baseline.duration.total_seconds() / 3600,
             "incident": incident.duration.total_seconds() / 3600}
    in_windows = cells.dropna(subset=["window"])
    windows = pd.DataFrame({"window": list(_WINDOWS)}).merge(
        summarise(in_windows, ["window"]) if len(in_windows) else pd.DataFrame(
            columns=["window"]), on="window", how="left")
    windows.insert(1, "hours", windows["window"].map(hours))
    for column in ("kv_samples", "kv_usage_mean", "kv_usage_max", "kv_pinned_share",
                   "waiting_mean", "running_mean", "preemptions", "generated_tokens"):
        if column not in windows:
            windows[column] = np.nan
    if not requests_w.empty:
        windows = windows.merge(requests_w, on="window", how="left")
    for column in ("requests", "preempted", "request_preemptions", "ttft_p90_ms"):
        if column not in windows:
            windows[column] = np.nan
    if not names.get("preemptions") and not requests_w.empty:
        windows["preemptions"] = windows["request_preemptions"]
    with np.errstate(divide="ignore", invalid="ignore"):
        windows["preemptions_per_hour"] = windows["preemptions"] / windows["hours"]
        windows["generation_tokens_per_s"] = windows["generated_tokens"] / (
            windows["hours"] * 3600)
        windows["preempted_share"] = windows["preempted"] / windows["requests"]
    windows = windows.drop(columns=["preempted", "request_preemptions"])
    # the timeline: every bucket of either source
    per_bucket = cells.copy()
    per_bucket["window"] = "all"
    timeline = summarise(per_bucket, ["bucket_start"]) if len(per_bucket) else pd.DataFrame(
        columns=["bucket_start"])
    timeline = timeline.drop(columns=[c for c in timeline if c in ("kv_samples",
                                                                  "generated_tokens")])
    if not requests_t.empty:
        keep = [c for c in ("bucket_start", "requests", "ttft_p90_ms", "request_preemptions")
                if c in requests_t]
        timeline = timeline.merge(requests_t[keep], on="bucket_start", how="outer")
        if not names.get("preemptions") and "request_preemptions" in timeline:
            timeline["preemptions"] = timeline["request_preemptions"]
        timeline = timeline.drop(columns=["request_preemptions"], errors="ignore")
    for column in ("kv_usage_mean", "kv_usage_max", "kv_pinned_share", "preemptions",
                   "waiting_mean", "running_mean", "requests", "ttft_p90_ms"):
        if column not in timeline:
            timeline[column] = np.nan
    return windows, timeline.sort_values("bucket_start", ignore_index=True)


def _correlations(timeline: pd.DataFrame) -> pd.DataFrame:
    """Spearman's rho of each pressure series against TTFT p90, over the time buckets."""
    rows = []
    for series in ("kv_usage_mean", "waiting_mean", "preemptions"):
        pair = timeline[[series, "ttft_p90_ms"]].dropna()
        rho = p = float("nan")
        if len(pair) >= MIN_BUCKETS and pair[series].nunique() > 1 and \
                pair["ttft_p90_ms"].nunique() > 1:
            result = stats.spearmanr(pair[series], pair["ttft_p90_ms"])
            rho, p = float(result.statistic), float(result.pvalue)
        rows.append({"series": series, "rho": rho, "pvalue": p, "buckets": len(pair)})
    return pd.DataFrame(rows)
