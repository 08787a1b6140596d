"""OOM and context-length errors against prompt length: are the failures the longest prompts?

A generative engine that runs out of memory does so on the far tail of prompt lengths (the KV
cache of one huge prompt does not fit), and a prompt past the model's context window is refused.
Both show as failures concentrated in the longest prompts.

Recipe
------
* **Columns.** ``requests.input_tokens`` and at least one failure column: a request *failed*
  when ``status = 'error'``, ``finish_reason = 'error'`` or ``http_status >= 400`` (timeouts are
  latency, not this). Its *kind* comes from ``error_type`` (case-insensitive): ``oom`` when it
  matches :data:`OOM_PATTERN` (the memory diagnostic's), ``context_length`` when it matches
  :data:`CONTEXT_PATTERN`, else ``other``.
* **Deciles** of ``input_tokens`` over the incident window (exact: the linear interpolation of
  DuckDB's ``quantile_cont`` at 0.1 ... 0.9, from the engine's count of every token count;
  repeated edges merged). A request's decile is the number of edges its prompt
  exceeds, so decile 9 holds the prompts longer than the incident p90.
* **One query** counts requests, failures per kind and the longest prompt per time bucket,
  window and decile (an integer key for bucket and window); the per-window table and the
  timeline (requests and failures in the top decile per bucket, for the onset) are sums of
  those cells.
* **Concentration**: the share of incident failures in the top decile (0.1 when failures do
  not depend on length), its failure rate against the other deciles' (two-proportion z-test),
  and Spearman's rho of failure rate on decile (``scipy.stats.spearmanr`` on the ten rates).

Findings ``infrastructure.long_prompt_errors`` and ``data.long_prompt_refusals``
-------------------------------------------------------------------------------
One finding, named after the dominant kind of the incident failures: context-length refusals
(``dominant_kind = 'context_length'``) are ``data.long_prompt_refusals`` (the prompts outgrew
the window: a prompt-population signal), OOM and other failures are
``infrastructure.long_prompt_errors`` (the engine fails on long prompts: memory exhaustion).
Statistic: the share of incident failures in the top decile, threshold 0.3. Fires with at
least 10 incident failures, a share >= 0.3, a top-decile rate >= 3x the other deciles' and a
z-test p < 1e-3. **high** when the share is >= 0.5 and the incident failure rate is >= 2x the
baseline's (a new failure, not a chronic one), else **medium**. Evidence:
``failures_incident``, ``failure_rate_baseline``, ``failure_rate_incident``,
``rate_rise_pvalue`` (incident against baseline rate), ``top_decile_failure_share``,
``top_decile_rate``, ``rest_rate``, ``rate_ratio``, ``pvalue``, ``rho``,
``top_decile_min_tokens`` (the incident p90 of input tokens), ``longest_prompt_tokens``,
``oom_share``, ``context_length_share``, ``other_share`` (of incident failures),
``dominant_kind`` (``oom``, ``context_length`` or ``other``: OOM points to memory exhaustion,
context-length refusals to prompts outgrowing the window). Onset: the ramp of the timeline's
top-decile failure rate.
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
from toolkit.diagnose._engine import Recorder, bucket_window_key, decode_bucket_window, double
from toolkit.diagnose._engines import CaseSource
from toolkit.diagnose._format import times
from toolkit.diagnose._onset import coarse_onset
from toolkit.diagnose.data.prompt_mix import quantiles_from_counts
from toolkit.diagnose.infra.memory import OOM_PATTERN
from toolkit.types import Window

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["context_errors", "ContextErrorsResult", "ID", "CONTEXT_PATTERN", "KINDS"]

ID = "infra.context_errors"
CONTEXT_PATTERN = (r"context.?(length|window|limit)|too.?long|max.?model.?len|"
                   r"prompt.?(length|too)|token.?limit|maximum.?(context|length)|"
                   r"length.?exceed")
KINDS = ("oom", "context_length", "other")
MIN_FAILURES = 10
SHARE = 0.3
HIGH_SHARE = 0.5
RATE_RATIO = 3.0
RISE = 2.0
PVALUE = 1e-3
_LEVELS = [k / 10 for k in range(1, 10)]


@dataclass(frozen=True, kw_only=True, repr=False)
class ContextErrorsResult(DiagnosticResult):
    """Failure rate and kinds by prompt-length decile, per window.

    Attributes
    ----------
    table
        One row per window and decile (0 shortest .. 9 longest): ``window``, ``decile``,
        ``min_tokens`` (the decile's lower edge, exclusive; NaN for decile 0),
        ``requests``, ``failures``, ``oom``, ``context_length``, ``other``, ``failure_rate``,
        ``longest_tokens``.
    windows
        One row per window: ``requests``, ``failures``, ``failure_rate``.
    timeline
        Per time bucket: ``bucket_start``, ``requests``, ``failures``, ``top_requests``,
        ``top_failures``, ``top_failure_rate``.
    edges
        The decile edges (input tokens, incident p10 .. p90, repeated edges merged).
    """

    id = ID
    title = "Errors against prompt length (OOM, context length)"

    windows: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    timeline: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    edges: tuple[float, ...] = ()

    def total(self, window: str, column: str) -> float:
        if self.windows.empty:
            return float("nan")
        rows = self.windows[self.windows["window"] == window]
        return float(rows[column].iloc[0]) if len(rows) else float("nan")

    def headline(self) -> dict[str, Any]:
        if self.table.empty:
            return {}
        ev = self.evidence()
        return {"failure rate baseline": ev["failure_rate_baseline"],
                "failure rate incident": ev["failure_rate_incident"],
                "incident failures in the longest decile": ev["top_decile_failure_share"],
                "dominant kind": ev["dominant_kind"]}

    def evidence(self) -> dict[str, Any]:
        inc = self.table[self.table["window"] == "incident"]
        top_decile = int(inc["decile"].max()) if len(inc) else 0
        top = inc[inc["decile"] == top_decile]
        rest = inc[inc["decile"] != top_decile]
        failures = float(inc["failures"].sum())
        k_top, n_top = float(top["failures"].sum()), float(top["requests"].sum())
        k_rest, n_rest = float(rest["failures"].sum()), float(rest["requests"].sum())
        _, p = st.two_proportion_z(k_rest, n_rest, k_top, n_top)
        r_top = k_top / n_top if n_top else float("nan")
        r_rest = k_rest / n_rest if n_rest else float("nan")
        rates = inc[inc["requests"] > 0]
        rho = float("nan")
        if len(rates) >= 3 and rates["failure_rate"].nunique() > 1:
            rho = float(stats.spearmanr(rates["decile"], rates["failure_rate"]).statistic)
        kinds = {k: float(inc[k].sum()) / failures if failures else float("nan")
                 for k in KINDS}
        dominant = max(KINDS, key=lambda k: -1 if math.isnan(kinds[k]) else kinds[k]) \
            if failures else ""
        k_b, n_b = self.total("baseline", "failures"), self.total("baseline", "requests")
        k_i, n_i = self.total("incident", "failures"), self.total("incident", "requests")
        _, p_rise = st.two_proportion_z(k_b, n_b, k_i, n_i)
        return {
            "failures_incident": failures,
            "failure_rate_baseline": k_b / n_b if n_b else float("nan"),
            "failure_rate_incident": k_i / n_i if n_i else float("nan"),
            "rate_rise_pvalue": p_rise,
            "top_decile_failure_share": k_top / failures if failures else float("nan"),
            "top_decile_rate": r_top, "rest_rate": r_rest,
            "rate_ratio": r_top / r_rest if r_rest > 0 else (
                float("inf") if r_top > 0 else float("nan")),
            "pvalue": p, "rho": rho,
            "top_decile_min_tokens": self.edges[-1] if self.edges else float("nan"),
            "longest_prompt_tokens": float(inc["longest_tokens"].max()) if len(inc) else
            float("nan"),
            "oom_share": kinds["oom"], "context_length_share": kinds["context_length"],
            "other_share": kinds["other"], "dominant_kind": dominant,
        }

    def findings(self) -> list[Finding]:
        if self.table.empty:
            return []
        ev = self.evidence()
        share = ev["top_decile_failure_share"]
        if not (ev["failures_incident"] >= MIN_FAILURES and share >= SHARE
                and ev["rate_ratio"] >= RATE_RATIO and ev["pvalue"] < PVALUE):
            return []
        rose = ev["failure_rate_incident"] >= RISE * ev["failure_rate_baseline"]
        severity = "high" if share >= HIGH_SHARE and rose else "medium"
        onset = coarse_onset(self.timeline, "top_failure_rate", after=self.baseline.end,
                             weights="top_requests", direction=1)
        kind = {"oom": "out-of-memory errors", "context_length": "context-length refusals",
                "other": "errors"}[ev["dominant_kind"]]
        refusals = ev["dominant_kind"] == "context_length"
        return [Finding(
            id="data.long_prompt_refusals" if refusals else "infrastructure.long_prompt_errors",
            pathway="data" if refusals else "infrastructure",
            severity=severity, statistic=share, threshold=SHARE,
            summary=(f"{share:.0%} of {ev['failures_incident']:.0f} incident failures (mostly "
                     f"{kind}) came from the longest tenth of prompts (> "
                     f"{ev['top_decile_min_tokens']:.0f} tokens), "
                     + (f"which failed {times(ev['rate_ratio'])} as often as the rest."
                        if math.isfinite(ev["rate_ratio"]) else "while the rest never failed.")),
            evidence=ev, onset=onset, diagnostic=self.id)]

    def signals(self) -> pd.DataFrame:
        return timeline_signals(self.timeline, ["top_failure_rate"], "context_errors.")

    def plot(self, ax: Axes | None = None, **kwargs: Any) -> Axes:
        """Failure rate per prompt-length decile, baseline against incident."""
        from toolkit.plotting import WINDOW_COLORS, axes

        ax = axes(ax, figsize=(8, 4))
        if self.table.empty:
            return super().plot(ax)
        import seaborn as sns

        sns.barplot(data=self.table, x="decile", y="failure_rate", hue="window",
                    palette=WINDOW_COLORS, ax=ax)
        ax.set_xlabel("input-token decile (incident edges; 9 = longest)")
        ax.set_ylabel("failure rate")
        ax.set_title("Failures by prompt length")
        return ax


def context_errors(
    con: CaseSource,
    baseline: Window | str,
    incident: Window | str,
    /,
    *,
    bucket: timedelta | None = None,
    case: CaseView | None = None,
) -> ContextErrorsResult:
    """Failure rate and kinds (OOM, context length) by input-token decile.

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
    ContextErrorsResult
    """
    baseline, incident = check_windows(baseline, incident)
    case = case or case_view(con)
    base = dict(baseline=baseline, incident=incident)
    cols = case.columns.get("requests", {})
    status_columns = [c for c in ("status", "finish_reason", "http_status") if c in cols]
    if not case.has("requests", "input_tokens") or not status_columns:
        missing = "input_tokens" if not case.has("requests", "input_tokens") else \
            "status, finish_reason or http_status"
        return ContextErrorsResult(**base, not_assessed=(NotAssessed(
            ID, f"requests have no {missing}: errors against prompt length cannot be "
                "measured"),))
    n_incident = case.window_rows(incident, column="input_tokens")
    if n_incident < MIN_WINDOW_ROWS:
        return ContextErrorsResult(**base, not_assessed=(NotAssessed(
            ID, f"{n_incident or 'no'} requests with input_tokens in the incident window "
                f"{incident}: fewer than {MIN_WINDOW_ROWS} are too few to assess"),))
    record = Recorder()
    span = Window(min(baseline.start, incident.start), max(baseline.end, incident.end))
    width = bucket or choose_bucket(span.duration)
    t = case.table("requests")
    inc = t.filter(within(t.ts, incident) & t.input_tokens.notnull())
    # the deciles from the count of every token count (integers: a few thousand values), the
    # interpolation of quantile_cont: a hash aggregate costs a fifth of the exact quantile
    # over 5M incident rows (0.06 against 0.30 CPU seconds)
    counts = record(inc.group_by(value=inc.input_tokens).aggregate(n=inc.count())
                    ).sort_values("value")
    edges = tuple(sorted({float(e) for e in quantiles_from_counts(
        counts["value"].to_numpy(float), counts["n"].to_numpy(), _LEVELS)}))
    t = t.filter(within(t.ts, span) & t.input_tokens.notnull())
    tokens = t.input_tokens.cast("float64")
    decile = sum((tokens > double(e)).cast("int64") for e in edges) if edges else \
        tokens.isnull().cast("int64")
    failed = _failed(t, cols)
    kind_text = t.error_type.cast("string").lower() if "error_type" in cols else \
        ibis.literal(None, "string")
    # the patterns only on failed rows (a CASE evaluates its branch on those alone)
    oom = ibis.cases((failed, kind_text.re_search(OOM_PATTERN).fill_null(False)),
                     else_=False)
    context = ibis.cases((failed & ~oom, kind_text.re_search(CONTEXT_PATTERN).fill_null(
        False)), else_=False)
    # one scan, grouped by decile and one integer key for time bucket and window; the
    # windows' table and the timeline are sums of its cells
    cells = record(t.group_by(_key=bucket_window_key(t.ts, width, baseline, incident),
                              decile=decile).aggregate(
        requests=t.count(), failures=failed.cast("int64").sum(),
        oom=oom.cast("int64").sum(), context_length=context.cast("int64").sum(),
        longest_tokens=tokens.max()))
    starts, names = decode_bucket_window(cells.pop("_key").to_numpy(), width)
    cells["bucket_start"], cells["window"] = starts.to_numpy(), names
    counts = ["requests", "failures", "oom", "context_length"]
    table = cells.dropna(subset=["window"]).groupby(["window", "decile"], as_index=False).agg(
        **{c: (c, "sum") for c in counts}, longest_tokens=("longest_tokens", "max"))
    table["other"] = table["failures"] - table["oom"] - table["context_length"]
    table["failure_rate"] = table["failures"] / table["requests"]
    lower = (np.nan, *edges)
    table["min_tokens"] = table["decile"].map(lambda d: lower[int(d)])
    table = table.sort_values(["window", "decile"], ignore_index=True)[
        ["window", "decile", "min_tokens", "requests", "failures", "oom", "context_length",
         "other", "failure_rate", "longest_tokens"]]
    windows = table.groupby("window", as_index=False)[["requests", "failures"]].sum()
    windows["failure_rate"] = windows["failures"] / windows["requests"]
    top = cells[cells["decile"] == len(edges)].groupby("bucket_start")[
        ["requests", "failures"]].sum().rename(columns=lambda c: f"top_{c}")
    timeline = cells.groupby("bucket_start")[["requests", "failures"]].sum().join(
        top, how="left").fillna({"top_requests": 0, "top_failures": 0}).reset_index()
    with np.errstate(divide="ignore", invalid="ignore"):
        timeline["top_failure_rate"] = timeline["top_failures"] / timeline["top_requests"]
    return ContextErrorsResult(**base, table=table, windows=windows, timeline=timeline,
                               edges=edges, sql=record.sql)


def _failed(t: ibis.Table, cols: dict[str, str]) -> ibis.BooleanValue:
    """A request failed: ``status = 'error'``, ``finish_reason = 'error'`` or an HTTP status
    of 400 or more (each only when its column holds values)."""
    failed = t.ts.isnull()  # False on every row (a column, so that it aggregates)
    if "status" in cols:
        failed = failed | (t.status == "error").fill_null(False)
    if "finish_reason" in cols:
        failed = failed | (t.finish_reason == "error").fill_null(False)
    if "http_status" in cols:
        failed = failed | (t.http_status >= 400).fill_null(False)
    return failed
