"""Serving latency and failures over time: percentiles, SLO breaches, error and timeout rates.

Recipe: percentiles are DuckDB ``approx_quantile`` (t-digest; relative error typically well below
1% in the tails), per time bucket and per window, over every request with a latency. Error rate
is the share of ``status = 'error'``, timeout rate the share of ``status = 'timeout'``. The
latency SLO is ``slo_ms``, else ``case_meta.latency_slo_ms``, else twice the baseline p99
(stated in the result as ``slo_source``).

A p99 that rose is a **latency regression** (``infrastructure.latency_regression``: p99 ratio
>= 1.5 and at least 20 ms more; high from 3x) only when more of the incident's latencies lie
above the baseline's p99 than chance allows: the share above it in each window (about 1% in
the baseline by construction) is compared with a two-proportion z-test, and with p >=
:data:`TAIL_PVALUE` the finding is **low** (a sparse log's incident p99 rests on a handful of
requests: 3 of 156 above it make a 12x "p99" that noise explains). Evidence ``tail_share``
(baseline, incident) and ``tail_pvalue``.

Without request latencies (a metrics-only export), the same percentiles are taken over the
samples of a latency metric series, the first of :data:`LATENCY_METRICS` the case has (``source``
names it); error and timeout rates are then not measured. Each window needs
:data:`~toolkit.diagnose._case.MIN_WINDOW_ROWS` samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import ibis
import numpy as np
import pandas as pd

from toolkit._validation import check_windows
from toolkit.diagnose import _stats as st
from toolkit.diagnose._base import DiagnosticResult, Finding, NotAssessed, timeline_signals
from toolkit.diagnose._case import MIN_WINDOW_ROWS, CaseView, case_view, choose_bucket, within
from toolkit.diagnose._engine import Recorder, bucket_expr, window_label
from toolkit.diagnose._engines import CaseSource
from toolkit.diagnose._format import times
from toolkit.diagnose._onset import coarse_onset, refine_onset
from toolkit.types import Window

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["latency_profile", "LatencyResult", "ID"]

ID = "infra.latency"
_Q = [0.5, 0.95, 0.99]
#: A p99 rise is medium or high only when the share of latencies above the baseline's p99
#: rose with a two-proportion z-test p-value below this (the rate findings' level).
TAIL_PVALUE = 1e-3
#: Metric series read as latency samples (ms) when requests carry no latency, in order of
#: preference: per-request samples, then a p99 series.
LATENCY_METRICS = ("latency_ms", "latency_p99_ms")


@dataclass(frozen=True, kw_only=True, repr=False)
class LatencyResult(DiagnosticResult):
    """Latency percentiles, error and timeout rates, per window and over time.

    Attributes
    ----------
    table
        One row per window (``baseline``, ``incident``): ``requests``, ``p50_ms``, ``p95_ms``,
        ``p99_ms``, ``error_rate``, ``timeout_rate``, ``with_latency`` (rows with a latency)
        and ``over_base_p99`` (those above the baseline's p99).
    timeline
        Per time bucket: ``bucket_start``, ``requests``, ``p50_ms``, ``p95_ms``, ``p99_ms``,
        ``error_rate``, ``timeout_rate``.
    error_types
        Requests per ``error_type`` and window.
    breaches
        SLO breach windows: ``start``, ``end``, ``buckets``, ``worst_p99_ms``.
    """

    id = ID
    title = "Latency and failures"

    slo_ms: float = float("nan")
    slo_source: str = ""
    timeline: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    error_types: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    breaches: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    #: Where the latencies come from: ``requests``, or ``metrics:<name>`` (samples of a metric
    #: series; the ``requests`` columns of the tables then count samples).
    source: str = "requests"

    def value(self, window: str, column: str) -> float:
        rows = self.table[self.table["window"] == window]
        return float(rows[column].iloc[0]) if len(rows) else float("nan")

    @property
    def p99_ratio(self) -> float:
        """Incident p99 over baseline p99."""
        base = self.value("baseline", "p99_ms")
        return self.value("incident", "p99_ms") / base if base > 0 else float("nan")

    def headline(self) -> dict[str, Any]:
        if self.table.empty:
            return {}
        return {
            "p99 baseline ms": self.value("baseline", "p99_ms"),
            "p99 incident ms": self.value("incident", "p99_ms"),
            "p99 ratio": self.p99_ratio,
            "error rate baseline": self.value("baseline", "error_rate"),
            "error rate incident": self.value("incident", "error_rate"),
            "timeout rate incident": self.value("incident", "timeout_rate"),
            "SLO ms": self.slo_ms,
            "SLO breach windows": len(self.breaches),
        }

    def findings(self) -> list[Finding]:
        if self.table.empty:
            return []
        out = []
        base99, inc99 = self.value("baseline", "p99_ms"), self.value("incident", "p99_ms")
        ratio = self.p99_ratio
        onset = self.refined_onsets.get("infrastructure.latency_regression") or coarse_onset(
            self.timeline, "p99_ms", after=self.baseline.end, direction=1)
        if ratio >= 1.5 and inc99 - base99 >= 20:
            shares, p = self.tail_test()
            noise = not p < TAIL_PVALUE
            out.append(Finding(
                id="infrastructure.latency_regression", pathway="infrastructure",
                severity="low" if noise else "high" if ratio >= 3 else "medium",
                statistic=ratio, threshold=1.5,
                summary=f"p99 latency rose {times(ratio)} ({base99:.0f} -> {inc99:.0f} ms)" + (
                    "" if self.source == "requests" else
                    f", from the samples of the {self.source.split(':', 1)[1]} metric") + (
                    f", but the share above the baseline p99 ({shares[0]:.1%} -> "
                    f"{shares[1]:.1%}) is within noise (p {st.p_text(p)})." if noise else "."),
                evidence={"p50_ratio": _ratio(self, "p50_ms"), "p95_ratio": _ratio(self, "p95_ms"),
                          "p99_baseline_ms": base99, "p99_incident_ms": inc99,
                          "slo_ms": self.slo_ms, "breach_windows": len(self.breaches),
                          "source": self.source, "tail_share": list(shares),
                          "tail_pvalue": p},
                onset=onset, diagnostic=self.id,
            ))
        for column, finding_id, label in (
            ("error_rate", "infrastructure.error_rate", "error"),
            ("timeout_rate", "infrastructure.timeout_rate", "timeout"),
        ):
            found = self._rate_finding(column, finding_id, label)
            if found is not None:
                out.append(found)
        return out

    def tail_test(self) -> tuple[tuple[float, float], float]:
        """The share of latencies above the baseline's p99 in each window, and the
        two-proportion z-test p-value of its rise (NaN shares and p = 1 when not counted)."""
        if "over_base_p99" not in self.table:
            return (float("nan"), float("nan")), 1.0
        k_b, k_i = self.value("baseline", "over_base_p99"), self.value("incident", "over_base_p99")
        n_b, n_i = self.value("baseline", "with_latency"), self.value("incident", "with_latency")
        if not (n_b > 0 and n_i > 0):
            return (float("nan"), float("nan")), 1.0
        _, p = st.two_proportion_z(k_b, n_b, k_i, n_i)
        return (k_b / n_b, k_i / n_i), (float(p) if k_i / n_i > k_b / n_b else 1.0)

    def _rate_finding(self, column: str, finding_id: str, label: str) -> Finding | None:
        n_b, n_i = self.value("baseline", "requests"), self.value("incident", "requests")
        r_b, r_i = self.value("baseline", column), self.value("incident", column)
        delta = r_i - r_b
        _, p = st.two_proportion_z(r_b * n_b, n_b, r_i * n_i, n_i)
        if not (delta >= 0.01 and r_i >= 2 * r_b and p < 1e-3):
            return None
        types = self.error_types
        top = {}
        if not types.empty:
            inc = types[types["window"] == "incident"].sort_values("requests", ascending=False)
            top = dict(zip(inc["error_type"].astype(str), inc["requests"].astype(int),
                           strict=True))
        onset = self.refined_onsets.get(finding_id) or coarse_onset(
            self.timeline, column, after=self.baseline.end, weights="requests", direction=1)
        return Finding(
            id=finding_id, pathway="infrastructure",
            severity="high" if delta >= 0.05 else "medium", statistic=r_i, threshold=r_b,
            summary=f"{label} rate rose from {r_b:.2%} to {r_i:.2%}.",
            evidence={"baseline_rate": r_b, "incident_rate": r_i, "pvalue": p,
                      "error_types": top},
            onset=onset, diagnostic=self.id,
        )

    def signals(self) -> pd.DataFrame:
        return timeline_signals(self.timeline, ["p50_ms", "p99_ms", "error_rate", "timeout_rate"],
                                "latency.")

    def plot(self, ax: Axes | None = None, **kwargs: Any) -> Axes:
        """Latency p50 / p95 / p99 over time with the SLO line and the incident shaded."""
        from toolkit.plotting import WINDOW_COLORS, axes

        ax = axes(ax, figsize=(10, 4))
        if self.timeline.empty:
            return super().plot(ax)
        import seaborn as sns

        data = self.timeline.melt(id_vars="bucket_start", value_vars=["p50_ms", "p95_ms",
                                                                      "p99_ms"],
                                  var_name="percentile", value_name="latency_ms")
        sns.lineplot(data=data, x="bucket_start", y="latency_ms", hue="percentile", ax=ax)
        if not np.isnan(self.slo_ms):
            ax.axhline(self.slo_ms, ls="--", color="#C44E52", lw=1,
                       label=f"SLO {self.slo_ms:.0f} ms ({self.slo_source})")
        ax.axvspan(self.incident.start, self.incident.end, color=WINDOW_COLORS["incident"],
                   alpha=0.08, label="incident")
        ax.set_yscale("log")
        ax.set_xlabel("time (UTC)")
        ax.set_ylabel("latency (ms, log)")
        ax.set_title("Latency percentiles")
        ax.legend(loc="upper left")
        return ax


def latency_profile(
    con: CaseSource,
    baseline: Window | str,
    incident: Window | str,
    /,
    *,
    slo_ms: float | None = None,
    bucket: timedelta | None = None,
    case: CaseView | None = None,
) -> LatencyResult:
    """Latency percentiles, SLO breaches, error and timeout rates: baseline vs incident.

    Parameters
    ----------
    con
        Case connection.
    baseline, incident
        The windows to compare.
    slo_ms
        Latency SLO on the p99 (default: ``case_meta.latency_slo_ms``, else 2 x baseline p99).
    bucket
        Timeline bucket width.
    case
        Shared case view.

    Returns
    -------
    LatencyResult

    Examples
    --------
    >>> import numpy as np, pandas as pd, toolkit as tk
    >>> con = tk.connect()
    >>> ts = pd.date_range("2026-03-01", periods=2000, freq="min", tz="UTC")
    >>> latency = np.r_[np.full(1000, 50.0), np.full(1000, 400.0)]
    >>> _ = tk.load(con, pd.DataFrame({"request_id": range(2000), "ts": ts,
    ...                                "latency_ms": latency, "status": "ok"}), table="requests")
    >>> result = latency_profile(con, (ts[0], ts[1000]), (ts[1000], ts[-1]))
    >>> round(result.p99_ratio)
    8
    """
    baseline, incident = check_windows(baseline, incident)
    case = case or case_view(con)
    base = dict(baseline=baseline, incident=incident)
    record = Recorder()
    span = Window(min(baseline.start, incident.start), max(baseline.end, incident.end))
    width = bucket or choose_bucket(span.duration)
    source = "requests"
    has_status = False
    if case.has("requests", "latency_ms"):
        t = case.table("requests")
        t = t.filter(within(t.ts, span))
        has_status = "status" in case.columns["requests"]
        error = (t.status == "error").cast("int64") if has_status else \
            t.latency_ms.isnull().cast("int64") * 0
        timeout = (t.status == "timeout").cast("int64") if has_status else error * 0
    else:
        metric = _latency_metric(case, record)
        if metric is None:
            return LatencyResult(**base, not_assessed=(NotAssessed(
                ID, "no latency in requests, and no " + " or ".join(LATENCY_METRICS) +
                " metric series"),))
        source = f"metrics:{metric}"
        m = case.table("metrics")
        t = m.filter((m.name == metric) & m.value.notnull() & ~m.value.isnan()
                     & within(m.ts, span)).select(ts=m.ts, latency_ms=m.value)
        error = timeout = ibis.literal(None, "float64")  # no statuses: rates not measured
        gaps = _sample_gaps(record, t, baseline, incident, metric)
        if gaps:
            return LatencyResult(**base, sql=record.sql, source=source, not_assessed=gaps)
    t = t.mutate(_window=window_label(t.ts, baseline, incident), _err=error, _to=timeout)

    def measures(rows):
        return {
            "requests": rows.count(),
            "latency_q": rows.latency_ms.approx_quantile(_Q),
            "error_rate": rows._err.mean(),
            "timeout_rate": rows._to.mean(),
        }

    in_windows = t.filter(t._window.notnull())
    windows = record(in_windows.group_by("_window").aggregate(
        **measures(in_windows))).rename(columns={"_window": "window"})
    timeline = record(t.group_by(bucket_start=bucket_expr(t.ts, width)).aggregate(
        **measures(t))).sort_values("bucket_start", ignore_index=True)
    for frame in (windows, timeline):
        _split_quantiles(frame)
    if set(windows["window"]) != {"baseline", "incident"}:
        missing = {"baseline", "incident"} - set(windows["window"])
        return LatencyResult(**base, sql=record.sql, timeline=timeline, source=source,
                             not_assessed=(NotAssessed(
                                 ID, f"no requests in the {', '.join(sorted(missing))} window"),))
    windows = windows.set_index("window").loc[["baseline", "incident"]].reset_index()
    # how many latencies of each window lie above the baseline's p99 (the p99 rise's test)
    base_p99 = float(windows.loc[0, "p99_ms"])
    if np.isfinite(base_p99):
        tail = record(in_windows.group_by("_window").aggregate(
            with_latency=in_windows.latency_ms.count(),
            over_base_p99=(in_windows.latency_ms > base_p99).cast("int64").sum()))
        windows = windows.merge(tail.rename(columns={"_window": "window"}), on="window",
                                how="left")
    error_types = pd.DataFrame(columns=["window", "error_type", "requests"])
    if source == "requests" and "error_type" in case.columns["requests"]:
        failed = t.filter(t._window.notnull() & t.error_type.notnull())
        error_types = record(failed.group_by(window=failed._window,
                                             error_type=failed.error_type).aggregate(
            requests=failed.count()))
    slo, slo_source = _slo(slo_ms, case, float(windows.loc[0, "p99_ms"]))
    breaches = _breaches(timeline, slo, width)
    result = LatencyResult(**base, table=windows, timeline=timeline, error_types=error_types,
                           breaches=breaches, slo_ms=slo, slo_source=slo_source,
                           sql=record.sql, source=source)
    refined = {}
    base_p99 = float(windows.loc[0, "p99_ms"])
    if source != "requests":  # metric samples: the regression is dated on the raw samples
        samples = case.table("metrics")
        samples = samples.filter(samples.name == source.split(":", 1)[1]).select(
            ts=samples.ts, latency_ms=samples.value)
        for finding in result.findings():
            if finding.id == "infrastructure.latency_regression" and finding.onset is not None:
                refined[finding.id] = refine_onset(
                    record, samples, (samples.latency_ms > base_p99).fill_null(False),
                    finding.onset, around=3 * width, limits=span)
        return replace(result, refined_onsets=refined, sql=record.sql) if refined else result
    requests = case.table("requests")
    indicators = {
        "infrastructure.latency_regression": (requests.latency_ms > base_p99),
        "infrastructure.error_rate": requests.status == "error",
        "infrastructure.timeout_rate": requests.status == "timeout",
    }
    for finding in result.findings():
        if finding.onset is not None and finding.id in indicators and (
                has_status or finding.id == "infrastructure.latency_regression"):
            refined[finding.id] = refine_onset(
                record, requests, indicators[finding.id].fill_null(False).cast("float64"),
                finding.onset, around=3 * width, limits=span)
    if refined:
        result = replace(result, refined_onsets=refined, sql=record.sql)
    return result


def _latency_metric(case: CaseView, record: Recorder) -> str | None:
    """The first of :data:`LATENCY_METRICS` the case's metrics hold, or ``None``."""
    if not case.has("metrics", "name", "value"):
        return None
    m = case.table("metrics")
    names = set(record(m.filter(m.name.isin(list(LATENCY_METRICS))).select("name").distinct())
                ["name"])
    return next((n for n in LATENCY_METRICS if n in names), None)


def _sample_gaps(record: Recorder, t: ibis.Table, baseline: Window, incident: Window,
                 metric: str) -> tuple[NotAssessed, ...]:
    """Why the windows' latency samples cannot be compared (fewer than MIN_WINDOW_ROWS)."""
    labelled = t.mutate(_window=window_label(t.ts, baseline, incident))
    labelled = labelled.filter(labelled._window.notnull())
    counts = record(labelled.group_by("_window").aggregate(n=labelled.count()))
    n = dict(zip(counts["_window"], counts["n"], strict=True))
    short = [f"{n.get(name, 0) or 'no'} {metric} samples in the {name} window {window}"
             for name, window in (("baseline", baseline), ("incident", incident))
             if n.get(name, 0) < MIN_WINDOW_ROWS]
    if not short:
        return ()
    return (NotAssessed(ID, f"{' and '.join(short)}: fewer than {MIN_WINDOW_ROWS} in a window "
                            "are too few to compare the windows"),)


def _split_quantiles(frame: pd.DataFrame) -> None:
    values = np.array([q if q is not None else [np.nan] * 3 for q in frame.pop("latency_q")],
                      dtype=float).reshape(len(frame), 3)
    for k, name in enumerate(("p50_ms", "p95_ms", "p99_ms")):
        frame[name] = values[:, k]


def _slo(slo_ms: float | None, case: CaseView, baseline_p99: float) -> tuple[float, str]:
    if slo_ms is not None:
        return float(slo_ms), "given"
    if "latency_slo_ms" in case.meta:
        return float(case.meta["latency_slo_ms"]), "case_meta"
    return 2.0 * baseline_p99, "2 x baseline p99"


def _breaches(timeline: pd.DataFrame, slo: float, width: timedelta) -> pd.DataFrame:
    """Runs of consecutive buckets whose p99 exceeds the SLO."""
    columns = ["start", "end", "buckets", "worst_p99_ms"]
    if timeline.empty or np.isnan(slo):
        return pd.DataFrame(columns=columns)
    over = (timeline["p99_ms"] > slo).to_numpy()
    runs = []
    k = 0
    while k < len(over):
        if over[k]:
            j = k
            while j + 1 < len(over) and over[j + 1]:
                j += 1
            part = timeline.iloc[k:j + 1]
            runs.append((part["bucket_start"].iloc[0], part["bucket_start"].iloc[-1] + width,
                         j - k + 1, float(part["p99_ms"].max())))
            k = j + 1
        else:
            k += 1
    return pd.DataFrame(runs, columns=columns)


def _first_bucket_over(timeline: pd.DataFrame, column: str, threshold: float, after):
    if timeline.empty:
        return None
    part = timeline[timeline["bucket_start"] >= pd.Timestamp(after)]
    hits = part[part[column] > threshold]
    return None if hits.empty else hits["bucket_start"].iloc[0].to_pydatetime()


def _ratio(result: LatencyResult, column: str) -> float:
    base = result.value("baseline", column)
    return result.value("incident", column) / base if base > 0 else float("nan")
