"""Prefill interference: TTFT of short prompts against concurrent long-prompt prefill.

Head-of-line blocking: while the engine prefills very long prompts, the short requests queued
behind them wait, so their time to first token jumps, while decode speed (TPOT) stays put.

Recipe
------
* **Columns.** ``requests.ts``, ``input_tokens`` and ``ttft_ms``; ``tpot_ms`` when present (the
  decode-speed check).
* **Prompt classes.** *Short* prompts have ``input_tokens <=`` the baseline median, *long* ones
  ``>=`` the baseline p95 (``short_tokens`` / ``long_tokens`` override them). Every quantile
  here is exact (DuckDB ``quantile_cont``, numpy's default interpolation; grouped by window or
  time bucket it is faster than ``approx_quantile``: 0.22 against 0.62 s for three latencies
  by bucket on 1M rows); the baseline's prompt quantiles come from the engine's count of
  every token count (integers) with the same interpolation, cheaper than selecting them.
* **Per window** (one query): short-prompt TTFT p50 / p90 / p99, TPOT p50 over all
  requests, the share of input tokens that came from long prompts (``long_token_share``), long
  prompts per hour and long input tokens per second.
* **Per time bucket** (one query, by bucket and window): requests, long-token share and
  short-prompt TTFT p90, plus the count of short prompts whose TTFT is above the baseline's
  short-prompt p90 (the exceedance test: a two-proportion z-test of that share, incident
  against baseline).
* **Head of line** (one query): a short prompt is *behind a long prefill* when it arrived on
  the same replica (``host``; one engine without hosts) after a long prompt and before that
  prompt's first token (arrival + its ``ttft_ms``): the running maximum of ``arrival + TTFT``
  over the replica's long prompts in time order (a window function over the long prompts
  only), ASOF-joined to each short prompt (a window function over every row took 3x longer).
  In the incident window only (the join sorts its rows: the baseline, often the longer
  window, would double its cost): how many short prompts were behind one, and Welch's t-test on their log TTFT
  against the other short prompts' from the engine's count, sum and sum of squares
  (``scipy.stats.ttest_ind_from_stats``); the ratio is the geometric-mean TTFT ratio.
* **Relation**: Spearman's rank correlation over the time buckets of both windows
  (``scipy.stats.spearmanr`` on the bucket summaries) between the long-token share and the
  short-prompt TTFT p90; NaN with fewer than :data:`MIN_BUCKETS` buckets holding both.

Finding ``infrastructure.prefill_interference``
-----------------------------------------------
Statistic: incident / baseline short-prompt TTFT, the larger of the p90 and p99 ratios,
threshold 1.5 (blocking often hits fewer than one short prompt in ten: the p99 shows it first).
Fires when that ratio is >= 1.5, the p90 or p99 rose by >= 20 ms, the incident share of short
prompts above the baseline p90 is above the baseline's with p < 1e-3, and either the
long-token share rose (``long_share_up``: >= 1.5x and >= 0.05 above the baseline's), or the
bucket correlation holds (``correlated``: rho >= 0.5 with p < 0.01), or the head-of-line test
holds (``head_of_line``: incident geometric-mean ratio >= 1.5 with Welch p < 1e-3 over at
least 30 short prompts behind a long prefill). **high** when ``head_of_line`` holds with
``long_share_up`` or ``correlated`` and decode did not slow (``decode_unchanged`` is not
False); else **medium**.

Evidence: ``short_ttft_p90_baseline_ms`` / ``_incident_ms``, ``short_ttft_p99_baseline_ms`` /
``_incident_ms``, ``short_ttft_ratio``, ``short_exceed_share_baseline`` / ``_incident``,
``pvalue``, ``long_token_share_baseline`` / ``_incident``, ``long_per_hour_baseline`` /
``_incident``, ``long_tokens_per_s_baseline`` / ``_incident``, ``long_share_up`` (bool),
``rho``, ``rho_pvalue``, ``buckets``, ``correlated`` (bool), ``tpot_p50_ratio``,
``decode_unchanged`` (bool, or None without ``tpot_ms``: within 0.8 to 1.25x),
``short_tokens``, ``long_tokens``, ``blocked_share_incident`` (share of short prompts behind a
long prefill), ``blocked_requests_incident``, ``blocked_ttft_gmean_incident_ms``,
``clear_ttft_gmean_incident_ms`` (geometric means), ``blocked_ratio_incident``,
``blocked_pvalue``, ``head_of_line`` (bool). Onset: the ramp of the
short-prompt TTFT p90 timeline.
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
from toolkit.diagnose._case import MIN_WINDOW_ROWS, CaseView, case_view, choose_bucket, within
from toolkit.diagnose._engine import Recorder, bucket_expr, double, epoch_us, window_label
from toolkit.diagnose._engines import CaseSource
from toolkit.diagnose._format import times
from toolkit.diagnose._onset import coarse_onset
from toolkit.diagnose.data.prompt_mix import quantiles_from_counts
from toolkit.diagnose.infra.token_latency import (
    NO_HOST,
    QUANTILES,
    peek_latency_summaries,
    split_quantiles,
)
from toolkit.types import Window

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["prefill_interference", "PrefillResult", "ID"]

ID = "infra.prefill_interference"
RATIO = 1.5
MIN_DELTA_MS = 20.0
PVALUE = 1e-3
SHARE_RATIO = 1.5
SHARE_RISE = 0.05
MIN_RHO = 0.5
RHO_PVALUE = 0.01
MIN_BUCKETS = 6
#: TPOT p50 ratios read as "decode unchanged".
DECODE_BAND = (0.8, 1.25)
#: Geometric-mean TTFT ratio (behind a long prefill / not) read as head-of-line blocking.
HOL_RATIO = 1.5


@dataclass(frozen=True, kw_only=True, repr=False)
class PrefillResult(DiagnosticResult):
    """Short-prompt TTFT against the long-prompt token share, per window and over time.

    Attributes
    ----------
    table
        One row per window: ``requests``, ``short_requests``, ``long_requests``,
        ``short_ttft_p50_ms``, ``short_ttft_p90_ms``, ``short_ttft_p99_ms``, ``tpot_p50_ms``, ``long_token_share``,
        ``long_per_hour``, ``long_tokens_per_s``, ``short_exceed_share``,
        ``blocked_requests`` / ``clear_requests`` (short prompts behind a long prefill or
        not), ``blocked_share``,
        ``blocked_log_mean`` / ``_var`` and ``clear_log_mean`` / ``_var`` (log TTFT).
    timeline
        Per time bucket: ``bucket_start``, ``requests``, ``short_requests``,
        ``long_requests``, ``long_token_share``, ``short_ttft_p90_ms``.
    """

    id = ID
    title = "Prefill interference (short prompts behind long ones)"

    timeline: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    short_tokens: float = float("nan")
    long_tokens: float = float("nan")
    rho: float = float("nan")
    rho_pvalue: float = float("nan")
    buckets: int = 0

    def value(self, window: str, column: str) -> float:
        if self.table.empty or column not in self.table:
            return float("nan")
        rows = self.table[self.table["window"] == window]
        return float(rows[column].iloc[0]) if len(rows) else float("nan")

    def _ratio(self, column: str) -> float:
        base = self.value("baseline", column)
        return self.value("incident", column) / base if base > 0 else float("nan")

    def headline(self) -> dict[str, Any]:
        if self.table.empty:
            return {}
        return {"short-prompt TTFT p90 baseline ms": self.value("baseline", "short_ttft_p90_ms"),
                "short-prompt TTFT p90 incident ms": self.value("incident", "short_ttft_p90_ms"),
                "long-token share baseline": self.value("baseline", "long_token_share"),
                "long-token share incident": self.value("incident", "long_token_share"),
                "rho(long share, short TTFT)": self.rho}

    def evidence(self) -> dict[str, Any]:
        v = self.value
        s_b, s_i = v("baseline", "short_exceed_share"), v("incident", "short_exceed_share")
        n_b, n_i = v("baseline", "short_with_ttft"), v("incident", "short_with_ttft")
        _, p = st.two_proportion_z(s_b * n_b, n_b, s_i * n_i, n_i)
        l_b, l_i = v("baseline", "long_token_share"), v("incident", "long_token_share")
        tpot = self._ratio("tpot_p50_ms")
        ratio_i, p_hol, n_blocked = self._head_of_line("incident")
        ratios = [r for r in (self._ratio("short_ttft_p90_ms"), self._ratio("short_ttft_p99_ms"))
                  if not math.isnan(r)]
        return {
            "short_ttft_p90_baseline_ms": v("baseline", "short_ttft_p90_ms"),
            "short_ttft_p90_incident_ms": v("incident", "short_ttft_p90_ms"),
            "short_ttft_p99_baseline_ms": v("baseline", "short_ttft_p99_ms"),
            "short_ttft_p99_incident_ms": v("incident", "short_ttft_p99_ms"),
            "short_ttft_ratio": max(ratios) if ratios else float("nan"),
            "short_exceed_share_baseline": s_b, "short_exceed_share_incident": s_i,
            "pvalue": p,
            "long_token_share_baseline": l_b, "long_token_share_incident": l_i,
            "long_per_hour_baseline": v("baseline", "long_per_hour"),
            "long_per_hour_incident": v("incident", "long_per_hour"),
            "long_tokens_per_s_baseline": v("baseline", "long_tokens_per_s"),
            "long_tokens_per_s_incident": v("incident", "long_tokens_per_s"),
            "long_share_up": bool(l_i >= SHARE_RATIO * l_b and l_i >= l_b + SHARE_RISE),
            "rho": self.rho, "rho_pvalue": self.rho_pvalue, "buckets": self.buckets,
            "correlated": bool(self.rho >= MIN_RHO and self.rho_pvalue < RHO_PVALUE),
            "tpot_p50_ratio": tpot,
            "decode_unchanged": None if math.isnan(tpot) else bool(
                DECODE_BAND[0] <= tpot <= DECODE_BAND[1]),
            "short_tokens": self.short_tokens, "long_tokens": self.long_tokens,
            "blocked_share_incident": v("incident", "blocked_share"),
            "blocked_requests_incident": n_blocked,
            "blocked_ttft_gmean_incident_ms": math.exp(v("incident", "blocked_log_mean")),
            "clear_ttft_gmean_incident_ms": math.exp(v("incident", "clear_log_mean")),
            "blocked_ratio_incident": ratio_i,
            "blocked_pvalue": p_hol,
            "head_of_line": bool(ratio_i >= HOL_RATIO and p_hol < PVALUE
                                 and n_blocked >= MIN_WINDOW_ROWS),
        }

    def _head_of_line(self, window: str) -> tuple[float, float, float]:
        """Geometric-mean TTFT ratio of short prompts behind a long prefill to the other short
        prompts, Welch's p-value on log TTFT, and the count behind a long prefill."""
        v = self.value
        n_b, n_c = v(window, "blocked_requests"), v(window, "clear_requests")
        if not (n_b >= 2 and n_c >= 2):
            return float("nan"), float("nan"), n_b
        m_b, m_c = v(window, "blocked_log_mean"), v(window, "clear_log_mean")
        s_b = math.sqrt(max(v(window, "blocked_log_var"), 0.0))
        s_c = math.sqrt(max(v(window, "clear_log_var"), 0.0))
        if s_b == 0 and s_c == 0:
            return math.exp(m_b - m_c), float("nan"), n_b
        test = stats.ttest_ind_from_stats(m_b, s_b, n_b, m_c, s_c, n_c, equal_var=False)
        return math.exp(m_b - m_c), float(test.pvalue), n_b

    def findings(self) -> list[Finding]:
        if self.table.empty:
            return []
        ev = self.evidence()
        ratio = ev["short_ttft_ratio"]
        delta = max(ev["short_ttft_p90_incident_ms"] - ev["short_ttft_p90_baseline_ms"],
                    ev["short_ttft_p99_incident_ms"] - ev["short_ttft_p99_baseline_ms"])
        slowed = (ratio >= RATIO and delta >= MIN_DELTA_MS and ev["pvalue"] < PVALUE
                  and ev["short_exceed_share_incident"] > ev["short_exceed_share_baseline"])
        if not (slowed and (ev["long_share_up"] or ev["correlated"] or ev["head_of_line"])):
            return []
        severity = "high" if (ev["head_of_line"] and (ev["long_share_up"] or ev["correlated"])
                              and ev["decode_unchanged"] is not False) else "medium"
        onset = coarse_onset(self.timeline, "short_ttft_p90_ms", after=self.baseline.end,
                             direction=1)
        decode = {True: "; decode speed unchanged", False: "; decode slowed too",
                  None: ""}[ev["decode_unchanged"]]
        return [Finding(
            id="infrastructure.prefill_interference", pathway="infrastructure",
            severity=severity, statistic=ratio, threshold=RATIO,
            summary=(f"short-prompt TTFT p90 {ev['short_ttft_p90_baseline_ms']:.0f} -> "
                     f"{ev['short_ttft_p90_incident_ms']:.0f} ms, p99 "
                     f"{ev['short_ttft_p99_baseline_ms']:.0f} -> "
                     f"{ev['short_ttft_p99_incident_ms']:.0f} ms while long prompts "
                     f"(>= {self.long_tokens:.0f} tokens) made "
                     f"{ev['long_token_share_baseline']:.0%} -> "
                     f"{ev['long_token_share_incident']:.0%} of input tokens "
                     f"(rho {self.rho:.2f} over {self.buckets} buckets)" + (
                         f"; short prompts behind a long prefill waited "
                         f"{times(ev['blocked_ratio_incident'])} longer" if ev["head_of_line"]
                         else "") + f"{decode}."),
            evidence=ev, onset=onset, diagnostic=self.id)]

    def signals(self) -> pd.DataFrame:
        return timeline_signals(self.timeline, ["short_ttft_p90_ms", "long_token_share"],
                                "prefill.")

    def plot(self, ax: Axes | None = None, **kwargs: Any) -> Axes:
        """Short-prompt TTFT p90 (left) and the long-prompt token share (right) over time."""
        from toolkit.plotting import WINDOW_COLORS, axes

        ax = axes(ax, figsize=(10, 4))
        if self.timeline.empty:
            return super().plot(ax)
        tl = self.timeline
        ax.plot(tl["bucket_start"], tl["short_ttft_p90_ms"], label="short-prompt TTFT p90")
        ax.set_ylabel("TTFT p90 (ms)")
        right = ax.twinx()
        right.plot(tl["bucket_start"], tl["long_token_share"], color="#C44E52", ls="--",
                   label="long-prompt token share")
        right.set_ylim(0, 1)
        right.set_ylabel("share of input tokens")
        ax.axvspan(self.incident.start, self.incident.end, color=WINDOW_COLORS["incident"],
                   alpha=0.08)
        ax.set_xlabel("time (UTC)")
        ax.set_title("Short prompts against long-prompt prefill")
        handles = ax.get_legend_handles_labels()
        more = right.get_legend_handles_labels()
        ax.legend(handles[0] + more[0], handles[1] + more[1], loc="upper left",
                  fontsize="small")
        return ax


def prefill_interference(
    con: CaseSource,
    baseline: Window | str,
    incident: Window | str,
    /,
    *,
    short_tokens: float | None = None,
    long_tokens: float | None = None,
    bucket: timedelta | None = None,
    case: CaseView | None = None,
) -> PrefillResult:
    """Short-prompt TTFT against the share of input tokens from long prompts.

    Parameters
    ----------
    con
        Case connection.
    baseline, incident
        The windows to compare.
    short_tokens, long_tokens
        Prompt-length classes (default: the baseline median and p95 of ``input_tokens``).
    bucket
        Timeline bucket width (default: ``choose_bucket`` over both windows).
    case
        Shared case view.

    Returns
    -------
    PrefillResult
    """
    baseline, incident = check_windows(baseline, incident)
    case = case or case_view(con)
    base = dict(baseline=baseline, incident=incident)
    missing = [c for c in ("input_tokens", "ttft_ms") if not case.has("requests", c)]
    if missing:
        return PrefillResult(**base, not_assessed=(NotAssessed(
            ID, f"requests have no {' or '.join(missing)}: short-prompt TTFT against long "
                "prompts cannot be measured"),))
    gaps = case.window_gaps(ID, baseline, incident, column="ttft_ms")
    if gaps:
        return PrefillResult(**base, not_assessed=gaps)
    record = Recorder()
    span = Window(min(baseline.start, incident.start), max(baseline.end, incident.end))
    width = bucket or choose_bucket(span.duration)
    t = case.table("requests")
    if short_tokens is None or long_tokens is None:
        # from the count of every token count (integers), the interpolation of quantile_cont:
        # a hash aggregate instead of the exact quantile's selection over millions of rows
        b = t.filter(within(t.ts, baseline) & t.input_tokens.notnull())
        counts = record(b.group_by(value=b.input_tokens).aggregate(n=b.count())
                        ).sort_values("value")
        levels = [np.nan, np.nan] if counts.empty else list(quantiles_from_counts(
            counts["value"].to_numpy(float), counts["n"].to_numpy(), [0.5, 0.95]))
        short_tokens = float(levels[0]) if short_tokens is None else float(short_tokens)
        long_tokens = float(levels[1]) if long_tokens is None else float(long_tokens)
    if math.isnan(short_tokens) or math.isnan(long_tokens):
        return PrefillResult(**base, sql=record.sql, not_assessed=(NotAssessed(
            ID, "no input_tokens in the baseline window: prompt-length classes unknown"),))
    t = t.filter(within(t.ts, span))
    tokens = t.input_tokens.cast("float64")
    short = tokens <= double(short_tokens)
    long_ = tokens >= double(long_tokens)
    t = t.mutate(_window=window_label(t.ts, baseline, incident), _short=short, _long=long_,
                 _tokens=tokens)
    has_tpot = case.has("requests", "tpot_ms")
    # the TPOT median per window is infra.token_latency's when it ran on this view already
    shared = peek_latency_summaries(case, record, span, baseline, incident, width) \
        if has_tpot else None

    def measures(rows) -> dict[str, Any]:
        out = {
            "requests": rows.count(),
            "short_requests": rows._short.cast("int64").sum(),
            "long_requests": rows._long.cast("int64").sum(),
            "short_with_ttft": (rows._short & rows.ttft_ms.notnull()).cast("int64").sum(),
            "input_tokens": rows._tokens.sum(),
            "long_input_tokens": rows._tokens.sum(where=rows._long),
            "_short_q": rows.ttft_ms.quantile([0.5, 0.9, 0.99], where=rows._short),
        }
        if has_tpot and shared is None:
            out["_tpot_q"] = rows.tpot_ms.quantile([0.5])
        return out

    inside = t.filter(t._window.notnull())
    windows = record(inside.group_by(window=inside._window).aggregate(**measures(inside)))
    if shared is not None:
        median = {w: [float(q[QUANTILES.index(0.5)])] if isinstance(q, (list, np.ndarray))
                  else None for w, q in zip(shared[0]["window"], shared[0]["_tpot_q"],
                                            strict=True)}
        windows["_tpot_q"] = windows["window"].map(median)
    # the incident's rows by their time (a filter on the window label leaves DuckDB
    # estimating one row, and it then runs the ASOF join as a nested loop: minutes on 10M)
    windows = windows.merge(_head_of_line(case, record, t.filter(within(t.ts, incident))),
                            on="window", how="left")
    split_quantiles(windows, "_short_q", "short_ttft", names=("p50", "p90", "p99"))
    split_quantiles(windows, "_tpot_q", "tpot", names=("p50",))
    windows = windows.set_index("window").reindex(["baseline", "incident"]).reset_index()
    if windows["short_with_ttft"].fillna(0).min() < MIN_WINDOW_ROWS:
        n_b, n_i = windows["short_with_ttft"].fillna(0).astype(int).tolist()
        return PrefillResult(**base, sql=record.sql, short_tokens=short_tokens,
                             long_tokens=long_tokens, not_assessed=(NotAssessed(
                                 ID, f"{n_b} baseline and {n_i} incident short prompts (<= "
                                     f"{short_tokens:g} tokens) with a TTFT: fewer than "
                                     f"{MIN_WINDOW_ROWS} in a window are too few to compare"),))
    threshold = float(windows.loc[0, "short_ttft_p90_ms"])
    exceed = (t._short & (t.ttft_ms > double(threshold))).cast("int64").sum()
    cells = record(t.group_by(bucket_start=bucket_expr(t.ts, width), window=t._window)
                   .aggregate(requests=t.count(), short_requests=t._short.cast("int64").sum(),
                              long_requests=t._long.cast("int64").sum(),
                              input_tokens=t._tokens.sum(),
                              long_input_tokens=t._tokens.sum(where=t._long),
                              _short_q=t.ttft_ms.quantile([0.9], where=t._short),
                              short_exceed=exceed))
    split_quantiles(cells, "_short_q", "short_ttft", names=("p90",))
    exceeded = cells.dropna(subset=["window"]).groupby("window")["short_exceed"].sum()
    seconds = {"baseline": baseline.duration.total_seconds(),
               "incident": incident.duration.total_seconds()}
    with np.errstate(divide="ignore", invalid="ignore"):
        windows["short_exceed_share"] = windows["window"].map(exceeded).astype(float) / \
            windows["short_with_ttft"]
        windows["long_token_share"] = windows["long_input_tokens"].fillna(0) / \
            windows["input_tokens"]
        windows["long_per_hour"] = windows["long_requests"] / windows["window"].map(
            seconds) * 3600
        windows["long_tokens_per_s"] = windows["long_input_tokens"].fillna(0) / \
            windows["window"].map(seconds)
        windows["blocked_share"] = windows["blocked_requests"] / (
            windows["blocked_requests"] + windows["clear_requests"])
        for group in ("blocked", "clear"):
            n = windows[f"{group}_requests"]
            mean = windows.pop(f"_{group}_log_sum") / n
            windows[f"{group}_log_mean"] = mean
            windows[f"{group}_log_var"] = (windows.pop(f"_{group}_log_sq") - n * mean ** 2) / (
                n - 1)
    timeline = _timeline(cells)
    pair = timeline[["long_token_share", "short_ttft_p90_ms"]].dropna()
    rho = p = float("nan")
    if len(pair) >= MIN_BUCKETS and pair.nunique().min() > 1:
        result = stats.spearmanr(pair["long_token_share"], pair["short_ttft_p90_ms"])
        rho, p = float(result.statistic), float(result.pvalue)
    return PrefillResult(**base, table=windows, timeline=timeline, sql=record.sql,
                         short_tokens=short_tokens, long_tokens=long_tokens, rho=rho,
                         rho_pvalue=p, buckets=len(pair))


def _head_of_line(case: CaseView, record: Recorder, inside: ibis.Table) -> pd.DataFrame:
    """Per window of ``inside``: short prompts behind a long prefill on their replica or not,
    and the count, sum and sum of squares of their log TTFT (quantiles here cost more than the
    join).

    The long prompts (a few percent of the rows) get the running maximum of arrival + TTFT on
    their replica in time order (a window function over them alone); each short prompt is
    joined to the latest long prompt of its replica that arrived at or before it (an ASOF
    join), and is behind a long prefill when it arrived before that running maximum.
    """
    longs = inside.filter(inside._long & inside.ttft_ms.notnull())
    replica = ibis.window(group_by=[_host(case, longs)], order_by=[longs.ts],
                          preceding=None, following=0)
    longs = longs.select(_l_host=_host(case, longs), _l_ts=longs.ts,
                         _busy=(epoch_us(longs.ts) + (longs.ttft_ms * 1000).cast("int64"))
                         .max().over(replica))
    shorts = inside.filter(inside._short & inside.ttft_ms.notnull())
    # only the columns used: an ASOF join carries every column it is given (with the whole
    # requests row, 9.8 s on 10M rows)
    shorts = shorts.select("ts", "ttft_ms", "_window", _s_host=_host(case, shorts))
    joined = shorts.asof_join(longs, on=shorts.ts >= longs._l_ts,
                              predicates=[shorts._s_host == longs._l_host])
    blocked = (epoch_us(joined.ts) < joined._busy).fill_null(False)
    clear = ~blocked
    log_ttft = ibis.greatest(joined.ttft_ms, double(1e-3)).ln()
    out = record(joined.group_by(window=joined._window).aggregate(
        blocked_requests=blocked.cast("int64").sum(),
        clear_requests=clear.cast("int64").sum(),
        _blocked_log_sum=log_ttft.sum(where=blocked),
        _blocked_log_sq=(log_ttft * log_ttft).sum(where=blocked),
        _clear_log_sum=log_ttft.sum(where=clear),
        _clear_log_sq=(log_ttft * log_ttft).sum(where=clear)))
    return out


def _host(case: CaseView, t: ibis.Table) -> ibis.Value:
    """The replica a request ran on (:data:`NO_HOST` without hosts: one engine)."""
    if "host" in case.columns["requests"]:
        return t.host.cast("string").fill_null(NO_HOST)
    return ibis.literal(NO_HOST)


def _timeline(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per bucket. A bucket split by a window edge keeps the quantiles of its larger
    part (quantiles do not add up); counts and tokens are summed."""
    cells = cells.sort_values(["bucket_start", "requests"], ascending=[True, False])
    sums = cells.groupby("bucket_start")[["requests", "short_requests", "long_requests",
                                          "input_tokens", "long_input_tokens"]].sum(min_count=1)
    first = cells.drop_duplicates("bucket_start").set_index("bucket_start")[
        ["short_ttft_p90_ms"]]
    timeline = sums.join(first).reset_index()
    with np.errstate(divide="ignore", invalid="ignore"):
        timeline["long_token_share"] = timeline["long_input_tokens"].fillna(0) / \
            timeline["input_tokens"]
    return timeline[["bucket_start", "requests", "short_requests", "long_requests",
                     "long_token_share", "short_ttft_p90_ms"]]
