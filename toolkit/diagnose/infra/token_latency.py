"""Token latency of generative endpoints: TTFT, TPOT and end-to-end timelines, goodput, throughput.

Recipe
------
* **Columns.** ``requests.ttft_ms`` (time to first token), ``tpot_ms`` (time per output token
  after the first), ``latency_ms`` (end to end), ``output_tokens``, ``host``, ``status`` and
  ``finish_reason``; each part runs with the columns it needs and says ``not_assessed`` for the
  rest (the Azure and Mooncake traces have token counts and arrival times only: throughput is
  measured, TTFT, TPOT and goodput are not).
* **Percentiles** p50 / p90 / p99 of each latency, per window and per time bucket
  (``choose_bucket``), are exact: DuckDB ``quantile_cont`` (numpy's default interpolation).
  Grouped by window or bucket it is faster than the t-digest ``approx_quantile`` (three
  latencies by bucket on 1M rows: 0.22 against 0.62 s).
* **SLOs.** ``ttft_slo_ms`` / ``tpot_slo_ms`` as given, else ``case_meta`` keys of the same
  names, else **2 x the baseline p99** of the same latency (``slo_source`` names which).
* **Goodput** = share of requests that met both targets: not failed (``status`` ``error`` or
  ``timeout``, or ``finish_reason = 'error'``), ``ttft_ms <= ttft SLO`` and ``tpot_ms <= tpot
  SLO`` (a request without a TPOT, one output token, passes that target). The denominator is
  the requests with a TTFT or a failure. Without ``tpot_ms`` goodput is on TTFT alone
  (``goodput_basis``). Per window, per time bucket and per host.
* **Token throughput** = output tokens per second of wall time, per replica (``host``; one row
  ``(all)`` without hosts) and window, and per time bucket: the tokens of the requests that
  *arrived* in the window or bucket over its length (a request's tokens are not spread over
  its decode time).
* **Test of significance** (exceedance): the share of each window's requests above the
  baseline p90 (about 10% in the baseline by construction) compared with a two-sided
  two-proportion z-test. Counts come from the engine; nothing loops over rows.

Findings (evidence keys for the rules, all numbers unless said)
---------------------------------------------------------------
``infrastructure.ttft_regression`` and ``infrastructure.tpot_regression``: statistic = the
larger of the p90 and p99 ratios (incident / baseline), threshold 1.5. Fires when that ratio is
>= 1.5, the quantile rose by at least 20 ms (TTFT) or 2 ms (TPOT), the incident share above the
baseline p90 is at least twice the baseline share and its z-test p < 1e-3. **high** at a ratio
>= 3, else **medium**. Onset: the ramp of the p90 timeline (``coarse_onset``) refined on the
rows (indicator: above the baseline p90). Evidence: ``p50_ratio``, ``p90_ratio``,
``p99_ratio``, ``p90_baseline_ms``, ``p90_incident_ms``, ``p99_baseline_ms``,
``p99_incident_ms``, ``exceed_share_baseline``, ``exceed_share_incident``, ``pvalue``, and the
other latency's ``ttft_p50_ratio`` / ``ttft_p90_ratio`` / ``tpot_p50_ratio`` /
``tpot_p90_ratio``; ``decode_slowed`` (bool: the TPOT regression fires), ``ttft_only`` (bool:
TTFT regressed and decode speed did not, the shape of KV-cache and prefill problems; slow
hardware slows decode too) and ``tpot_assessed`` (bool).

``infrastructure.goodput_drop``: statistic = baseline goodput - incident goodput, threshold
0.05; fires at a drop >= 0.05 with a two-proportion z-test p < 1e-3. **high** at a drop >= 0.2,
else **medium**. Evidence: ``goodput_baseline``, ``goodput_incident``, ``ttft_slo_ms``,
``tpot_slo_ms``, ``slo_source``, ``goodput_basis`` (``ttft+tpot`` or ``ttft``),
``failed_share_incident``, ``ttft_miss_share_incident``, ``tpot_miss_share_incident``,
``decode_slowed``, ``ttft_only``, ``pvalue``, ``throughput_ratio`` (incident / baseline output
tokens per second).
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
from toolkit.diagnose._base import DiagnosticResult, Finding, NotAssessed, timeline_signals
from toolkit.diagnose._case import MIN_WINDOW_ROWS, CaseView, case_view, choose_bucket, within
from toolkit.diagnose._engine import (
    Recorder,
    bucket_expr,
    bucket_window_key,
    decode_bucket_window,
    double,
    window_label,
)
from toolkit.diagnose._engines import CaseSource
from toolkit.diagnose._format import times
from toolkit.diagnose._onset import coarse_onset, refine_onset
from toolkit.types import Window

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["token_latency", "TokenLatencyResult", "ID", "LATENCIES", "QUANTILES",
           "split_quantiles", "failed_expr", "host_expr", "NO_HOST", "latency_summaries",
           "peek_latency_summaries"]

ID = "infra.token_latency"
#: The latencies measured: short name -> requests column.
LATENCIES = {"ttft": "ttft_ms", "tpot": "tpot_ms", "e2e": "latency_ms"}
QUANTILES = (0.5, 0.9, 0.99)
_NAMES = ("p50", "p90", "p99")
RATIO = 1.5
HIGH_RATIO = 3.0
#: Smallest rise of the p90 / p99 that counts (ms): below it a ratio is noise on a fast service.
MIN_DELTA_MS = {"ttft": 20.0, "tpot": 2.0}
PVALUE = 1e-3
GOODPUT_DROP = 0.05
HIGH_GOODPUT_DROP = 0.2
#: SLO default: this many times the baseline p99.
SLO_FACTOR = 2.0
#: Host label of requests without a host (a trace without replicas).
NO_HOST = "(all)"


def split_quantiles(frame: pd.DataFrame, column: str, prefix: str,
                    names: tuple[str, ...] = _NAMES) -> None:
    """Replace the array column ``column`` (``approx_quantile`` at :data:`QUANTILES`) by one
    column per level, ``<prefix>_p50_ms`` ...; NULL arrays become NaN."""
    values = frame.pop(column) if column in frame else pd.Series([None] * len(frame))
    array = np.array([list(v) if v is not None and not (isinstance(v, float) and math.isnan(v))
                      else [np.nan] * len(names) for v in values], dtype=float
                     ).reshape(len(frame), len(names))
    for k, name in enumerate(names):
        frame[f"{prefix}_{name}_ms"] = array[:, k]


def failed_expr(case: CaseView, t: ibis.Table) -> ibis.BooleanValue:
    """A request failed: ``status`` ``error`` / ``timeout`` or ``finish_reason = 'error'``
    (``False`` when neither column holds a value)."""
    cols = case.columns["requests"]
    failed = t.ts.isnull()  # False on every row (a column, so that it aggregates)
    if "status" in cols:
        failed = failed | t.status.isin(["error", "timeout"]).fill_null(False)
    if "finish_reason" in cols:
        failed = failed | (t.finish_reason == "error").fill_null(False)
    return failed


def host_expr(case: CaseView, t: ibis.Table) -> ibis.StringValue:
    """The replica of a request, :data:`NO_HOST` when it has none."""
    if "host" in case.columns["requests"]:
        return t.host.cast("string").fill_null(NO_HOST)
    return ibis.literal(NO_HOST)


@dataclass(frozen=True, kw_only=True, repr=False)
class TokenLatencyResult(DiagnosticResult):
    """TTFT, TPOT and end-to-end percentiles, goodput and token throughput.

    Attributes
    ----------
    table
        One row per window (``baseline``, ``incident``): ``requests``, ``ttft_p50_ms``,
        ``ttft_p90_ms``, ``ttft_p99_ms``, the same for ``tpot`` and ``e2e``, ``goodput``,
        ``goodput_requests`` (its denominator), ``failed_share``, ``ttft_miss_share``,
        ``tpot_miss_share``, ``ttft_exceed_share`` / ``tpot_exceed_share`` (above the baseline
        p90), ``output_tokens``, ``tokens_per_s``.
    timeline
        Per time bucket: ``bucket_start``, ``requests``, the nine percentiles, ``goodput``,
        ``tokens_per_s``.
    throughput
        Per host and window: ``host``, ``window``, ``requests``, ``output_tokens``,
        ``tokens_per_s``, ``goodput``.
    """

    id = ID
    title = "Token latency, goodput and throughput"

    ttft_slo_ms: float = float("nan")
    tpot_slo_ms: float = float("nan")
    slo_source: str = ""
    goodput_basis: str = ""
    timeline: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    throughput: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    #: Which latencies the case holds (``ttft``, ``tpot``, ``e2e``).
    measured: tuple[str, ...] = ()

    def value(self, window: str, column: str) -> float:
        if self.table.empty or column not in self.table:
            return float("nan")
        rows = self.table[self.table["window"] == window]
        return float(rows[column].iloc[0]) if len(rows) else float("nan")

    def ratio(self, column: str) -> float:
        """Incident over baseline of a window column (NaN when the baseline is not > 0)."""
        base = self.value("baseline", column)
        return self.value("incident", column) / base if base > 0 else float("nan")

    def headline(self) -> dict[str, Any]:
        if self.table.empty:
            return {}
        out: dict[str, Any] = {}
        for name in self.measured:
            out[f"{name} p90 baseline ms"] = self.value("baseline", f"{name}_p90_ms")
            out[f"{name} p90 incident ms"] = self.value("incident", f"{name}_p90_ms")
        if "ttft" in self.measured:
            out["goodput baseline"] = self.value("baseline", "goodput")
            out["goodput incident"] = self.value("incident", "goodput")
            out["TTFT SLO ms"] = self.ttft_slo_ms
            if "tpot" in self.measured:
                out["TPOT SLO ms"] = self.tpot_slo_ms
        out["output tokens/s baseline"] = self.value("baseline", "tokens_per_s")
        out["output tokens/s incident"] = self.value("incident", "tokens_per_s")
        return out

    # -- findings ---------------------------------------------------------------------------

    def _regressed(self, name: str) -> dict[str, Any] | None:
        """The regression test of one latency: its numbers when it fires, else ``None``."""
        if name not in self.measured or self.table.empty:
            return None
        r90, r99 = self.ratio(f"{name}_p90_ms"), self.ratio(f"{name}_p99_ms")
        ratios = [r for r in (r90, r99) if not math.isnan(r)]
        if not ratios:
            return None
        statistic = max(ratios)
        column = f"{name}_p90_ms" if r90 == statistic else f"{name}_p99_ms"
        delta = self.value("incident", column) - self.value("baseline", column)
        s_b = self.value("baseline", f"{name}_exceed_share")
        s_i = self.value("incident", f"{name}_exceed_share")
        n_b = self.value("baseline", f"{name}_n")
        n_i = self.value("incident", f"{name}_n")
        _, p = st.two_proportion_z(s_b * n_b, n_b, s_i * n_i, n_i)
        if not (statistic >= RATIO and delta >= MIN_DELTA_MS[name] and s_i >= 2 * s_b
                and p < PVALUE):
            return None
        return {"statistic": statistic, "p50_ratio": self.ratio(f"{name}_p50_ms"),
                "p90_ratio": r90, "p99_ratio": r99,
                "p90_baseline_ms": self.value("baseline", f"{name}_p90_ms"),
                "p90_incident_ms": self.value("incident", f"{name}_p90_ms"),
                "p99_baseline_ms": self.value("baseline", f"{name}_p99_ms"),
                "p99_incident_ms": self.value("incident", f"{name}_p99_ms"),
                "exceed_share_baseline": s_b, "exceed_share_incident": s_i, "pvalue": p}

    def phase(self) -> dict[str, Any]:
        """Which phase slowed: ``decode_slowed``, ``ttft_only``, ``tpot_assessed`` and the
        other latency's ratios (shared by every finding's evidence)."""
        ttft, tpot = self._regressed("ttft"), self._regressed("tpot")
        return {"decode_slowed": tpot is not None,
                "ttft_only": ttft is not None and tpot is None and "tpot" in self.measured,
                "tpot_assessed": "tpot" in self.measured,
                "ttft_p50_ratio": self.ratio("ttft_p50_ms"),
                "ttft_p90_ratio": self.ratio("ttft_p90_ms"),
                "tpot_p50_ratio": self.ratio("tpot_p50_ms"),
                "tpot_p90_ratio": self.ratio("tpot_p90_ms")}

    def findings(self) -> list[Finding]:
        if self.table.empty:
            return []
        out = []
        phase = self.phase()
        labels = {"ttft": "time to first token", "tpot": "time per output token"}
        for name in ("ttft", "tpot"):
            numbers = self._regressed(name)
            if numbers is None:
                continue
            finding_id = f"infrastructure.{name}_regression"
            statistic = numbers.pop("statistic")
            onset = self.refined_onsets.get(finding_id) or coarse_onset(
                self.timeline, f"{name}_p90_ms", after=self.baseline.end, direction=1)
            if name == "ttft":
                tail = (" while decode speed (TPOT) held" if phase["ttft_only"] else
                        " and decode (TPOT) slowed too" if phase["decode_slowed"] else
                        " (TPOT not measured)")
            else:
                tail = "" if "ttft" not in self.measured else (
                    f"; TTFT p90 {times(phase['ttft_p90_ratio'])}")
            out.append(Finding(
                id=finding_id, pathway="infrastructure",
                severity="high" if statistic >= HIGH_RATIO else "medium",
                statistic=statistic, threshold=RATIO,
                summary=(f"{labels[name]} p90 {numbers['p90_baseline_ms']:.0f} -> "
                         f"{numbers['p90_incident_ms']:.0f} ms, p99 "
                         f"{numbers['p99_baseline_ms']:.0f} -> {numbers['p99_incident_ms']:.0f}"
                         f" ms{tail}."),
                evidence={**numbers, **phase}, onset=onset, diagnostic=self.id))
        drop = self._goodput_drop(phase)
        if drop is not None:
            out.append(drop)
        return out

    def _goodput_drop(self, phase: dict[str, Any]) -> Finding | None:
        g_b, g_i = self.value("baseline", "goodput"), self.value("incident", "goodput")
        if math.isnan(g_b) or math.isnan(g_i):
            return None
        n_b = self.value("baseline", "goodput_requests")
        n_i = self.value("incident", "goodput_requests")
        _, p = st.two_proportion_z(g_b * n_b, n_b, g_i * n_i, n_i)
        drop = g_b - g_i
        if not (drop >= GOODPUT_DROP and p < PVALUE):
            return None
        onset = self.refined_onsets.get("infrastructure.goodput_drop") or coarse_onset(
            self.timeline, "goodput", after=self.baseline.end, direction=-1)
        return Finding(
            id="infrastructure.goodput_drop", pathway="infrastructure",
            severity="high" if drop >= HIGH_GOODPUT_DROP else "medium",
            statistic=drop, threshold=GOODPUT_DROP,
            summary=(f"goodput (TTFT <= {self.ttft_slo_ms:.0f} ms" + (
                f", TPOT <= {self.tpot_slo_ms:.0f} ms" if self.goodput_basis == "ttft+tpot"
                else "") + f") fell from {g_b:.1%} to {g_i:.1%}."),
            evidence={"goodput_baseline": g_b, "goodput_incident": g_i,
                      "ttft_slo_ms": self.ttft_slo_ms, "tpot_slo_ms": self.tpot_slo_ms,
                      "slo_source": self.slo_source, "goodput_basis": self.goodput_basis,
                      "failed_share_incident": self.value("incident", "failed_share"),
                      "ttft_miss_share_incident": self.value("incident", "ttft_miss_share"),
                      "tpot_miss_share_incident": self.value("incident", "tpot_miss_share"),
                      "decode_slowed": phase["decode_slowed"], "ttft_only": phase["ttft_only"],
                      "pvalue": p, "throughput_ratio": self.ratio("tokens_per_s")},
            onset=onset, diagnostic=self.id)

    def signals(self) -> pd.DataFrame:
        if self.timeline.empty:
            return super().signals()
        columns = [f"{name}_{q}_ms" for name in self.measured for q in ("p50", "p90", "p99")]
        columns += [c for c in ("goodput", "tokens_per_s") if self.timeline[c].notna().any()]
        return timeline_signals(self.timeline, columns, "tokens.")

    def plot(self, ax: Axes | None = None, **kwargs: Any) -> Axes:
        """TTFT and TPOT p50 / p90 / p99 over time (log scale) with the SLOs, incident shaded;
        output tokens per second when no latency was measured."""
        from toolkit.plotting import WINDOW_COLORS, axes

        ax = axes(ax, figsize=(10, 4))
        if self.timeline.empty:
            return super().plot(ax)
        import seaborn as sns

        columns = [f"{name}_{q}_ms" for name in ("ttft", "tpot") if name in self.measured
                   for q in ("p50", "p90", "p99")]
        if columns:
            data = self.timeline.melt(id_vars="bucket_start", value_vars=columns,
                                      var_name="series", value_name="ms").dropna()
            sns.lineplot(data=data, x="bucket_start", y="ms", hue="series", ax=ax)
            for slo, label in ((self.ttft_slo_ms, "TTFT SLO"), (self.tpot_slo_ms, "TPOT SLO")):
                if not math.isnan(slo):
                    ax.axhline(slo, ls="--", lw=1, color="#8C8C8C",
                               label=f"{label} {slo:.0f} ms ({self.slo_source})")
            ax.set_yscale("log")
            ax.set_ylabel("ms (log)")
            ax.set_title("Time to first token and per output token")
        else:
            ax.plot(self.timeline["bucket_start"], self.timeline["tokens_per_s"],
                    label="output tokens/s")
            ax.set_ylabel("output tokens / s")
            ax.set_title("Token throughput")
        ax.axvspan(self.incident.start, self.incident.end, color=WINDOW_COLORS["incident"],
                   alpha=0.08, label="incident")
        ax.set_xlabel("time (UTC)")
        # beside the axes: nine lines and two SLOs would cover the baseline's curves
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
        return ax


def token_latency(
    con: CaseSource,
    baseline: Window | str,
    incident: Window | str,
    /,
    *,
    ttft_slo_ms: float | None = None,
    tpot_slo_ms: float | None = None,
    bucket: timedelta | None = None,
    case: CaseView | None = None,
) -> TokenLatencyResult:
    """TTFT, TPOT and end-to-end percentiles, goodput and token throughput: baseline vs incident.

    Parameters
    ----------
    con
        Case connection.
    baseline, incident
        The windows to compare.
    ttft_slo_ms, tpot_slo_ms
        Targets for goodput (default: ``case_meta`` keys of the same names, else 2 x the
        baseline p99).
    bucket
        Timeline bucket width (default: ``choose_bucket`` over both windows).
    case
        Shared case view.

    Returns
    -------
    TokenLatencyResult

    Examples
    --------
    >>> import numpy as np, pandas as pd, toolkit as tk
    >>> con = tk.connect()
    >>> ts = pd.date_range("2026-03-01", periods=2000, freq="min", tz="UTC")
    >>> ttft = np.r_[np.full(1000, 200.0), np.full(1000, 900.0)] + np.arange(2000) % 7
    >>> _ = tk.load(con, pd.DataFrame({"request_id": range(2000), "ts": ts, "ttft_ms": ttft,
    ...     "tpot_ms": 20.0 + np.arange(2000) % 3, "output_tokens": 100}), table="requests")
    >>> result = token_latency(con, (ts[0], ts[1000]), (ts[1000], ts[-1] + pd.Timedelta("1min")))
    >>> [f.id for f in result.findings()]
    ['infrastructure.ttft_regression', 'infrastructure.goodput_drop']
    >>> result.findings()[0].evidence["ttft_only"]
    True
    """
    baseline, incident = check_windows(baseline, incident)
    case = case or case_view(con)
    base = dict(baseline=baseline, incident=incident)
    measured = tuple(n for n, c in LATENCIES.items() if case.has("requests", c))
    has_tokens = case.has("requests", "output_tokens")
    gaps = []
    if not has_tokens and not {"ttft", "tpot"} & set(measured):
        return TokenLatencyResult(**base, not_assessed=(NotAssessed(
            ID, "requests have no ttft_ms, tpot_ms or output_tokens (not a generative "
                "endpoint): no token latency or throughput to measure (end-to-end latency is "
                "infra.latency's)"),))
    if "ttft" not in measured:
        gaps.append(NotAssessed(f"{ID}.ttft", "requests have no ttft_ms: time to first token "
                                              "and goodput are not measured"))
    if "tpot" not in measured:
        gaps.append(NotAssessed(f"{ID}.tpot", "requests have no tpot_ms: decode speed (time "
                                              "per output token) is not measured"))
    if not has_tokens:
        gaps.append(NotAssessed(f"{ID}.throughput",
                                "requests have no output_tokens: token throughput is not "
                                "measured"))
    window_gaps = case.window_gaps(ID, baseline, incident)
    if window_gaps:
        return TokenLatencyResult(**base, not_assessed=(*window_gaps, *gaps), measured=measured)

    record = Recorder()
    span = Window(min(baseline.start, incident.start), max(baseline.end, incident.end))
    width = bucket or choose_bucket(span.duration)
    t = case.table("requests")
    t = t.filter(within(t.ts, span))
    t = t.mutate(_window=window_label(t.ts, baseline, incident))

    windows, timeline = latency_summaries(case, record, span, baseline, incident, width)
    windows = windows.drop(columns=["preempted", "request_preemptions"], errors="ignore")
    timeline = timeline.drop(columns=["preempted", "request_preemptions"], errors="ignore")
    for frame in (windows, timeline):
        for name in LATENCIES:
            split_quantiles(frame, f"_{name}_q", name)
    windows = windows.set_index("window").reindex(["baseline", "incident"]).reset_index()
    windows["requests"] = windows["requests"].fillna(0).astype(int)
    short = {}
    for name in measured:
        n = windows[f"_{name}_count"].fillna(0).astype(int).tolist()
        if min(n) < MIN_WINDOW_ROWS:
            short[name] = n
    if short:  # a latency too sparse in a window is not compared (nor used for goodput)
        for name, (n_b, n_i) in short.items():
            gaps.append(NotAssessed(f"{ID}.{name}", (
                f"{n_b} baseline and {n_i} incident requests with a {LATENCIES[name]}: fewer "
                f"than {MIN_WINDOW_ROWS} in a window are too few to compare")))
            for frame in (windows, timeline):
                frame[[f"{name}_{q}_ms" for q in _NAMES]] = np.nan
        measured = tuple(n for n in measured if n not in short)
    for frame in (windows, timeline):
        frame.drop(columns=[c for c in frame if c.startswith("_")], inplace=True)

    def base_value(column: str) -> float:
        return float(windows.loc[0, column])

    slos, slo_source = _slos(case, ttft_slo_ms, tpot_slo_ms, base_value)
    basis = "ttft+tpot" if "tpot" in measured else "ttft"
    # second pass: counts per bucket, window and host against the thresholds now known
    failed = failed_expr(case, t)
    counts: dict[str, Any] = {"requests": t.count(), "failed": failed.cast("int64").sum()}
    for name in ("ttft", "tpot"):
        if name in measured:
            x = t[LATENCIES[name]]
            counts[f"{name}_n"] = x.count()
            counts[f"{name}_exceed"] = (x > double(base_value(f"{name}_p90_ms"))).cast(
                "int64").sum()
    if "ttft" in measured:
        ttft_ok = t.ttft_ms <= double(slos["ttft"])
        tpot_ok = (t.tpot_ms.isnull() | (t.tpot_ms <= double(slos["tpot"]))) \
            if "tpot" in measured else ibis.literal(True)
        counts["goodput_requests"] = (t.ttft_ms.notnull() | failed).cast("int64").sum()
        counts["good"] = (~failed & ttft_ok.fill_null(False) & tpot_ok.fill_null(False)).cast(
            "int64").sum()
        counts["ttft_miss"] = (~failed & (t.ttft_ms > double(slos["ttft"])).fill_null(False)
                               ).cast("int64").sum()
        if "tpot" in measured:
            counts["tpot_miss"] = (~failed & (t.tpot_ms > double(slos["tpot"])).fill_null(
                False)).cast("int64").sum()
    if has_tokens:
        counts["output_tokens"] = t.output_tokens.cast("int64").sum()
    # one integer key for bucket and window: it hashes faster than a time and a string
    cells = record(t.group_by(_key=bucket_window_key(t.ts, width, baseline, incident),
                              host=host_expr(case, t)).aggregate(**counts))
    starts, names = decode_bucket_window(cells.pop("_key").to_numpy(), width)
    cells.insert(0, "bucket_start", starts.to_numpy())
    cells.insert(1, "window", names)
    windows, timeline, throughput = _assemble(windows, timeline, cells, baseline, incident,
                                              width, measured, has_tokens)
    result = TokenLatencyResult(
        **base, table=windows, timeline=timeline, throughput=throughput, sql=record.sql,
        not_assessed=tuple(gaps), measured=measured, slo_source=slo_source,
        ttft_slo_ms=slos.get("ttft", float("nan")),
        tpot_slo_ms=slos.get("tpot", float("nan")) if "tpot" in measured else float("nan"),
        goodput_basis=basis if "ttft" in measured else "")
    refined = {}
    requests = case.table("requests")
    for finding in result.findings():
        name = finding.id.split(".", 1)[1].split("_", 1)[0]
        if finding.onset is None or name not in ("ttft", "tpot"):
            continue
        indicator = (requests[LATENCIES[name]] > double(base_value(f"{name}_p90_ms")))
        refined[finding.id] = refine_onset(
            record, requests.filter(requests[LATENCIES[name]].notnull()),
            indicator.cast("float64"), finding.onset, around=3 * width, limits=span)
    if refined:
        result = replace(result, refined_onsets=refined, sql=record.sql)
    return result


def latency_summaries(case: CaseView, record: Recorder, span: Window, baseline: Window,
                      incident: Window, width: timedelta) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per window and per time bucket of the requests in ``span``: ``requests``, for each
    latency the case holds (:data:`LATENCIES`) its p50 / p90 / p99 (``_<name>_q``, an array at
    :data:`QUANTILES`, exact ``quantile_cont``) and count (``_<name>_count``), and with
    ``requests.preemptions`` the ``preempted`` requests and ``request_preemptions``.

    Two scans whose quantiles are most of a diagnostic's cost (10M rows: 2.1 of token latency's
    3.0 CPU seconds), and ``infra.kv_cache`` needs the same TTFT p90 per window and bucket: the
    summaries are computed once per case view and windows (``case.cache``), and a later
    diagnostic records their SQL without running it again. Returns fresh copies.
    """
    key = _summaries_key(span, baseline, incident, width)
    if key not in case.cache:
        own = Recorder()
        cols = case.columns["requests"]
        measured = [n for n, c in LATENCIES.items() if c in cols]
        t = case.table("requests")
        t = t.filter(within(t.ts, span))
        t = t.mutate(_window=window_label(t.ts, baseline, incident))

        def measures(rows) -> dict[str, Any]:
            out: dict[str, Any] = {"requests": rows.count()}
            for name in measured:
                out[f"_{name}_q"] = rows[LATENCIES[name]].quantile(list(QUANTILES))
                out[f"_{name}_count"] = rows[LATENCIES[name]].count()
            if "preemptions" in cols:
                out["preempted"] = (rows.preemptions > 0).cast("int64").sum()
                out["request_preemptions"] = rows.preemptions.cast("int64").sum()
            return out

        in_windows = t.filter(t._window.notnull())
        windows = own(in_windows.group_by("_window").aggregate(**measures(in_windows))
                      ).rename(columns={"_window": "window"})
        timeline = own(t.group_by(bucket_start=bucket_expr(t.ts, width)).aggregate(
            **measures(t))).sort_values("bucket_start", ignore_index=True)
        case.cache[key] = ((windows, timeline), own.sql)
    return peek_latency_summaries(case, record, span, baseline, incident, width)


def peek_latency_summaries(case: CaseView, record: Recorder, span: Window, baseline: Window,
                           incident: Window, width: timedelta
                           ) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """:func:`latency_summaries` when this case view holds them already (their SQL recorded),
    else ``None``: for a diagnostic that needs only a little of them and would rather compute
    that itself than both scans."""
    key = _summaries_key(span, baseline, incident, width)
    if key not in case.cache:
        return None
    (windows, timeline), sql = case.cache[key]
    for statement in sql:
        record.note(statement)
    return windows.copy(), timeline.copy()


def _summaries_key(span: Window, baseline: Window, incident: Window, width: timedelta
                   ) -> tuple[Any, ...]:
    return ("latency_summaries", span.start, span.end, baseline.start, baseline.end,
            incident.start, incident.end, width)


def _slos(case: CaseView, ttft: float | None, tpot: float | None, base_value
          ) -> tuple[dict[str, float], str]:
    """The TTFT and TPOT targets and where they come from (given, case_meta, 2 x baseline p99;
    several sources are joined with ``+``)."""
    slos, sources = {}, []
    for name, given in (("ttft", ttft), ("tpot", tpot)):
        key = f"{name}_slo_ms"
        if given is not None:
            slos[name], source = float(given), "given"
        elif key in case.meta:
            slos[name], source = float(case.meta[key]), "case_meta"
        else:
            slos[name] = SLO_FACTOR * base_value(f"{name}_p99_ms")
            source = f"{SLO_FACTOR:g} x baseline p99"
        if not math.isnan(slos[name]) and source not in sources:
            sources.append(source)
    return slos, " + ".join(sources)


def _assemble(windows: pd.DataFrame, timeline: pd.DataFrame, cells: pd.DataFrame,
              baseline: Window, incident: Window, width: timedelta, measured: tuple[str, ...],
              has_tokens: bool) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Window, timeline and per-host frames from the per (bucket, window, host) counts."""
    for column in ("good", "goodput_requests", "ttft_miss", "tpot_miss", "output_tokens",
                   "ttft_n", "ttft_exceed", "tpot_n", "tpot_exceed"):
        if column not in cells:
            cells[column] = np.nan
    seconds = {"baseline": baseline.duration.total_seconds(),
               "incident": incident.duration.total_seconds()}
    sums = ["requests", "failed", "good", "goodput_requests", "ttft_miss", "tpot_miss",
            "output_tokens", "ttft_n", "ttft_exceed", "tpot_n", "tpot_exceed"]
    per_window = cells.dropna(subset=["window"]).groupby("window")[sums].sum(min_count=1
                                                                             ).reindex(
        ["baseline", "incident"])
    with np.errstate(divide="ignore", invalid="ignore"):
        windows["goodput"] = (per_window["good"] / per_window["goodput_requests"]).to_numpy()
        windows["goodput_requests"] = per_window["goodput_requests"].to_numpy()
        windows["failed_share"] = (per_window["failed"] / per_window["requests"]).to_numpy()
        for name in ("ttft", "tpot"):
            windows[f"{name}_miss_share"] = (per_window[f"{name}_miss"]
                                             / per_window["goodput_requests"]).to_numpy()
            windows[f"{name}_n"] = per_window[f"{name}_n"].to_numpy()
            windows[f"{name}_exceed_share"] = (per_window[f"{name}_exceed"]
                                               / per_window[f"{name}_n"]).to_numpy()
        windows["output_tokens"] = per_window["output_tokens"].to_numpy()
        windows["tokens_per_s"] = windows["output_tokens"] / windows["window"].map(seconds)
    per_bucket = cells.groupby("bucket_start")[["good", "goodput_requests", "output_tokens"]
                                               ].sum(min_count=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        timeline["goodput"] = timeline["bucket_start"].map(
            per_bucket["good"] / per_bucket["goodput_requests"]).astype(float)
    timeline["tokens_per_s"] = timeline["bucket_start"].map(
        per_bucket["output_tokens"] / width.total_seconds()).astype(float)
    hosts = cells.dropna(subset=["window"]).groupby(["host", "window"], as_index=False)[
        ["requests", "output_tokens", "good", "goodput_requests"]].sum(min_count=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        hosts["tokens_per_s"] = hosts["output_tokens"] / hosts["window"].map(seconds)
        hosts["goodput"] = hosts["good"] / hosts["goodput_requests"]
    hosts = hosts[["host", "window", "requests", "output_tokens", "tokens_per_s", "goodput"]]
    if not has_tokens:
        hosts["tokens_per_s"] = np.nan
    return windows, timeline, hosts.sort_values(["host", "window"], ignore_index=True)
