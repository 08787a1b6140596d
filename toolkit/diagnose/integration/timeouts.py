"""The client timeout in force against the server's latency tail (timeout misconfiguration).

Recipe
------
**Timeout in force.** Events (any kind, usually ``config_change``) whose ``detail`` carries a
timeout key (:data:`TIMEOUT_KEYS`: ``client_timeout_ms``, ``timeout_ms``,
``request_timeout_ms``, or the same in seconds with ``_s``; nested keys are flattened with
``_``, so ``{"client": {"timeout_ms": 200}}`` counts) set the timeout from their time on. A
detail key ``client_version`` / ``client`` / ``client_family`` scopes it to the client versions
equal to that value or starting with ``<value>-`` (``"ios"`` matches ``ios-7.2.0``; ``"all"``
is every client); without one, an event of artifact ``client`` with a ``version`` applies to
that version; other events apply to every client. Before the first event of a scope the
value is ``previous_<key>`` / ``old_<key>`` of that event when given, else ``case_meta``'s
``client_timeout_ms`` / ``timeout_ms``, else unknown. The engine evaluates this step function
per request (a ``CASE`` on time and client version).

**Measures**, three aggregate queries over ``requests`` (span covering both windows):

1. per time bucket, window and client version: requests, timeouts, completed requests,
   requests with a timeout in force and a latency (``budgeted``), those whose latency exceeds
   the timeout in force (``over_budget``), smallest / largest timeout in force, first timeout;
2. per time bucket: approximate p50, p99, p99.9 latency of *completed* requests (on a sample of
   about :data:`TIMELINE_SAMPLE` of them chosen by a hash of their time when there are more: the timeline
   is for display and onset, the window quantiles below use every completed request);
3. per window: approximate p50, p90, p99, p99.9 latency of completed requests.

A **timeout** is ``status = 'timeout'``, an ``error_type`` matching ``timeout|timed.?out|
deadline``, or HTTP 408, 499 or 504. A request is **completed** when it has a latency, is not a
timeout and its status is ``ok`` (or not logged). Quantiles are DuckDB ``approx_quantile``
(t-digest).

**Finding** ``integration.timeout_misconfiguration`` (statistic: incident timeout rate;
threshold: the rise threshold ``max(2 x baseline rate, baseline rate + 0.5 point)``):

* *timeouts rise*: incident rate >= 2x the baseline's, >= 0.5 point above it, >= 3 timeouts,
  one-sided Fisher exact test p < 1e-3 (:func:`rise_pvalue`: a log kept 1 in 50 holds a
  handful of the incident's timeouts, and the test, not a count, says when they are beyond
  chance);
* *server healthy*: completed p99 ratio (incident / baseline) <= 1.5 and p50 ratio <= 1.25;
* *below the tail*: the smallest timeout in force in the incident is below the completed p99.9
  (the larger of the baseline's and the incident's).

Severity **high**: rise, healthy server and a timeout below the tail. **medium**: rise and
healthy server with no timeout configuration known, or rise with a timeout below the
*baseline's* p99.9 while the server also slowed. **low**: rise and healthy server, but the
configured timeout sits above the tail (the timeouts are not explained by the budget), or no
latency logged. With no latency logged, the rise is **medium** when the log shows its cause
instead (:meth:`TimeoutResult._lowered_timeout`): a configuration change at most ``lookback``
before the baseline's end, and no later than the rise's onset, lowered the timeout in force
below the baseline's (or set one where the baseline had none); the server's health cannot be
seen, so never high. Without a rise, one route remains (**medium**, :meth:`TimeoutResult._cut_below_tail`):
a configuration change set a timeout below the baseline's completed p99 and the incident's
completed latency stops below it (p99.9 under the timeout, median unchanged): a log that keeps
only the answers the client waited for loses the timed-out requests instead of marking them.

Onset: the first timeout in the first bucket at or after the baseline's end whose timeout rate
is at least halfway from the baseline rate to the incident rate, then refined on the raw rows
(:func:`~toolkit.diagnose._onset.refine_onset`: the change point of the timeout share per fine
bucket within two buckets of it; one more small query). When a configuration change that set
a timeout below the tail precedes it (no earlier than ``lookback`` before the baseline's end),
the onset is that change: with sparse or diurnal traffic the first timeouts can lag it by hours.

Signals: the timeline's timeout rate, over-budget share and completed p99, and
``timeouts.below_tail`` (:meth:`TimeoutResult.below_tail`): per bucket, the share of requests
sent under a client timeout below the baseline's completed p99.9 (the misconfiguration as the
configuration states it, for the window detector; one more aggregate query, run only when a
timeout is configured and the baseline's tail is known).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import ibis
import numpy as np
import pandas as pd

from toolkit._validation import check_windows
from toolkit.diagnose import _stats as st
from toolkit.diagnose._base import DiagnosticResult, Finding, NotAssessed, timeline_signals
from toolkit.diagnose._case import CaseView, case_view, choose_bucket, within
from toolkit.diagnose._engine import Recorder, bucket_expr, sample_by_time, window_label
from toolkit.diagnose._engines import CaseSource
from toolkit.diagnose._onset import refine_onset
from toolkit.types import Window

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["timeout_budget", "TimeoutResult", "ID", "TIMEOUT_KEYS", "rise_pvalue"]

ID = "integration.timeouts"
FINDING = "integration.timeout_misconfiguration"
#: Detail / case_meta keys that carry a client timeout, with their factor to milliseconds.
TIMEOUT_KEYS: dict[str, float] = {
    "client_timeout_ms": 1.0, "timeout_ms": 1.0, "request_timeout_ms": 1.0,
    "client_timeout_s": 1000.0, "timeout_s": 1000.0, "request_timeout_s": 1000.0,
}
TIMEOUT_PATTERN = r"timeout|timed.?out|deadline"
#: Logged incident timeouts a rise needs at least: a log kept 1 in 50 holds 3-8 of an
#: incident's timeouts, so the count is read through the significance test (:data:`PVALUE`),
#: not through a fixed number of them.
MIN_TIMEOUTS = 3
RATE_RATIO = 2.0
MIN_RISE = 0.005
PVALUE = 1e-3
P99_HEALTHY = 1.5
P50_HEALTHY = 1.25
#: Completed incident requests sent under a low timeout that the server's health needs to
#: be read on them alone (:meth:`TimeoutResult._server_ratios`).
MIN_UNDER_LOW = 30
#: Completed requests sampled (hash of the time) for the per-bucket quantiles, about.
TIMELINE_SAMPLE = 2_000_000
_PREVIOUS = ("previous_", "old_", "prev_", "from_")
_WINDOW_Q = (0.5, 0.9, 0.99, 0.999)
_BUCKET_Q = (0.5, 0.99, 0.999)


@dataclass(frozen=True, kw_only=True, repr=False)
class TimeoutResult(DiagnosticResult):
    """Timeout rate, timeout in force and server latency tail, per window and over time.

    Attributes
    ----------
    table
        One row per window: ``window``, ``requests``, ``timeouts``, ``timeout_rate``,
        ``completed``, ``p50_ms``, ``p90_ms``, ``p99_ms``, ``p999_ms`` (completed requests),
        ``timeout_min_ms``, ``timeout_max_ms`` (in force), ``budgeted``, ``over_budget``,
        ``over_budget_share``.
    clients
        The same counts per window and client version (no quantiles).
    timeline
        Per time bucket: ``bucket_start``, ``requests``, ``timeouts``, ``timeout_rate``,
        ``over_budget_share``, ``timeout_min_ms``, ``p50_ms``, ``p99_ms``, ``p999_ms``,
        ``first_timeout``, ``below_tail`` (share of the requests with a timeout in force sent
        under one below the baseline's completed p99.9; NaN without either).
    config
        The timeout history: ``ts`` (NaT for a value in force from the start), ``client_version``
        (None: every client), ``timeout_ms``, ``source``.
    """

    id = ID
    title = "Client timeout against the latency tail"

    clients: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    timeline: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    config: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    has_latency: bool = True
    lookback: timedelta = timedelta(hours=24)
    #: The incident's completed requests sent under a timeout below the baseline's p99.9:
    #: ``completed``, ``p50_ms``, ``p99_ms`` (empty without a low timeout in the incident).
    under_low: dict[str, float] = field(default_factory=dict)

    def value(self, window: str, column: str) -> float:
        rows = self.table[self.table["window"] == window] if not self.table.empty else self.table
        return float(rows[column].iloc[0]) if len(rows) else float("nan")

    def ratio(self, column: str) -> float:
        """Incident over baseline value of ``column``."""
        base = self.value("baseline", column)
        return self.value("incident", column) / base if base > 0 else float("nan")

    @property
    def tail_ms(self) -> float:
        """Completed-request p99.9: the larger of the two windows' (NaN without latency)."""
        values = [self.value("baseline", "p999_ms"), self.value("incident", "p999_ms")]
        values = [v for v in values if not np.isnan(v)]
        return max(values) if values else float("nan")

    def headline(self) -> dict[str, Any]:
        if self.table.empty:
            return {}
        return {
            "timeout rate baseline": self.value("baseline", "timeout_rate"),
            "timeout rate incident": self.value("incident", "timeout_rate"),
            "timeout in force ms (incident min)": self.value("incident", "timeout_min_ms"),
            "completed p99 baseline ms": self.value("baseline", "p99_ms"),
            "completed p99 incident ms": self.value("incident", "p99_ms"),
            "completed p99.9 baseline ms": self.value("baseline", "p999_ms"),
            "p99 ratio": self.ratio("p99_ms"),
            "over-budget share incident": self.value("incident", "over_budget_share"),
        }

    def findings(self) -> list[Finding]:
        if self.table.empty:
            return []
        n_b, n_i = self.value("baseline", "requests"), self.value("incident", "requests")
        k_b, k_i = self.value("baseline", "timeouts"), self.value("incident", "timeouts")
        r_b, r_i = k_b / n_b, k_i / n_i
        p = rise_pvalue(k_b, n_b, k_i, n_i)
        threshold = max(RATE_RATIO * r_b, r_b + MIN_RISE)
        if not (r_i >= threshold and k_i >= MIN_TIMEOUTS and p < PVALUE):
            censored = self._cut_below_tail()
            return [censored] if censored is not None else []
        p99_ratio, p50_ratio, health_on = self._server_ratios()
        healthy = bool(p99_ratio <= P99_HEALTHY and p50_ratio <= P50_HEALTHY)
        timeout = self.value("incident", "timeout_min_ms")
        base_tail = self.value("baseline", "p999_ms")
        tail = self.tail_ms
        configured = not np.isnan(timeout)
        below = configured and not np.isnan(tail) and timeout < tail
        below_base = configured and not np.isnan(base_tail) and timeout < base_tail
        lowered = self._lowered_timeout(r_b, r_i) if not self.has_latency else None
        if lowered is not None:
            when, value, before = lowered
            severity, why = "medium", (
                f"no latency is logged, but a configuration change at "
                f"{when:%Y-%m-%d %H:%M} lowered the client timeout in force to {value:.0f} ms "
                + (f"(baseline {before:.0f} ms)" if not np.isnan(before) else
                   "(none set in the baseline)") + " before the timeouts rose")
        elif not self.has_latency:
            severity, why = "low", "no latency is logged to compare with the server tail"
        elif healthy and below:
            severity, why = "high", (f"the client timeout ({timeout:.0f} ms) sits below the "
                                     f"server's p99.9 ({tail:.0f} ms) while the server tail is "
                                     f"unchanged (p99 ratio {p99_ratio:.2f})")
        elif healthy and not configured:
            severity, why = "medium", (f"the server tail is unchanged (p99 ratio "
                                       f"{p99_ratio:.2f}); no timeout configuration is known")
        elif below_base:
            severity, why = "medium", (f"the client timeout ({timeout:.0f} ms) sits below the "
                                       f"baseline p99.9 ({base_tail:.0f} ms), but the server "
                                       f"also slowed (p99 ratio {p99_ratio:.2f})")
        elif healthy:
            severity, why = "low", (f"the configured timeout ({timeout:.0f} ms) sits above the "
                                    f"server tail ({tail:.0f} ms)")
        else:
            return []
        top = {}
        if not self.clients.empty:
            inc = self.clients[self.clients["window"] == "incident"].sort_values(
                "timeouts", ascending=False).head(5)
            top = {str(r.client_version): {"timeouts": int(r.timeouts),
                                           "timeout_rate": float(r.timeout_rate),
                                           "timeout_min_ms": float(r.timeout_min_ms)}
                   for r in inc.itertuples()}
        changes = self.config[self.config["ts"].notna()] if not self.config.empty else \
            self.config
        return [Finding(
            id=FINDING, pathway="integration", severity=severity,
            statistic=r_i, threshold=threshold,
            summary=f"Timeouts rose from {r_b:.2%} to {r_i:.2%}: {why}.",
            evidence={"baseline_rate": r_b, "incident_rate": r_i, "pvalue": p,
                      "timeout_ms": timeout, "tail_p999_ms": tail,
                      "baseline_p99_ms": self.value("baseline", "p99_ms"),
                      "incident_p99_ms": self.value("incident", "p99_ms"),
                      "p99_ratio": p99_ratio, "p50_ratio": p50_ratio,
                      "server_health_read_on": health_on,
                      "server_healthy": healthy, "below_tail": below,
                      "over_budget_share": self.value("incident", "over_budget_share"),
                      "clients": top,
                      "config_changes": [
                          {"ts": r.ts, "client_version": r.client_version,
                           "timeout_ms": r.timeout_ms} for r in changes.itertuples()]},
            onset=self._config_onset(tail, self.refined_onsets.get(FINDING)
                                     or self._onset(r_b, r_i)),
            diagnostic=self.id,
        )]

    def _server_ratios(self) -> tuple[float, float, str]:
        """Completed p99 and p50, incident over baseline, and what the incident's were read on.

        On the incident's requests sent under a timeout below the baseline's p99.9 when at
        least :data:`MIN_UNDER_LOW` of them completed and the incident also holds requests sent
        under another timeout; else on the whole incident window. A window that runs past the
        timeout's restore (or opens before the cut) holds answers sent under the usual
        timeout: their tail, cut under the low one, and any slowdown of the server after the
        incident (varied tuning timeout_misconfiguration s8 with the true window widened after
        its end: p99 ratio 0.67 -> 2.0) read as a server that slowed, and the finding fell to
        medium, or vanished when the timeout sat above the baseline's tail.
        """
        low = self.under_low
        inc_requests = self.value("incident", "completed")
        if low and low.get("completed", 0) >= MIN_UNDER_LOW and \
                low["completed"] < inc_requests:
            base_p99, base_p50 = self.value("baseline", "p99_ms"), self.value("baseline", "p50_ms")
            return (low["p99_ms"] / base_p99 if base_p99 > 0 else float("nan"),
                    low["p50_ms"] / base_p50 if base_p50 > 0 else float("nan"),
                    "requests sent under the low timeout")
        return self.ratio("p99_ms"), self.ratio("p50_ms"), "incident window"

    def _lowered_timeout(self, r_b: float, r_i: float
                         ) -> tuple[pd.Timestamp, float, float] | None:
        """The configuration change that lowered the client timeout before the rise.

        The latest change from ``lookback`` before the baseline's end up to the rise's onset
        (the incident's end when it cannot be dated) whose value is below the smallest timeout
        in force in the baseline (any value when the baseline had none), with the incident's
        smallest timeout in force below the baseline's too: ``(time, value, baseline value)``,
        else ``None``.
        """
        if self.config.empty:
            return None
        base = self.value("baseline", "timeout_min_ms")
        now = self.value("incident", "timeout_min_ms")
        if np.isnan(now) or (not np.isnan(base) and now >= base):
            return None
        onset = self._onset(r_b, r_i)
        limit = pd.Timestamp(onset) if onset is not None else pd.Timestamp(self.incident.end)
        c = self.config
        cut = c["timeout_ms"] < base if not np.isnan(base) else c["timeout_ms"].notna()
        hits = c[c["ts"].notna() & (c["ts"] >= pd.Timestamp(self.baseline.end - self.lookback))
                 & (c["ts"] <= limit) & cut]
        if hits.empty:
            return None
        last = hits.sort_values("ts").iloc[-1]
        return pd.Timestamp(last["ts"]), float(last["timeout_ms"]), base

    def _tail_under_low_timeout(self) -> float:
        """The incident's completed p99.9 over the requests sent under a timeout below the
        baseline's tail: the largest bucket p99.9 of the incident buckets wholly under one
        (``below_tail`` 1), else the incident window's p99.9.

        A window that runs on past the timeout's restore (a detected window is rarely the
        misconfiguration's exact span) holds slow answers sent under the restored timeout;
        over the whole window they hide that nothing sent under the low one ran past it.
        """
        tl = self.timeline
        if not tl.empty and "below_tail" in tl:
            starts = pd.to_datetime(tl["bucket_start"], utc=True)
            under = tl[(tl["below_tail"] >= 1.0) & (starts >= pd.Timestamp(self.incident.start))
                       & (starts < pd.Timestamp(self.incident.end)) & tl["p999_ms"].notna()]
            if not under.empty:
                return float(under["p999_ms"].max())
        return self.value("incident", "p999_ms")

    def _cut_below_tail(self) -> Finding | None:
        """The *cut tail* route: a timeout set below the baseline's p99 with no timeouts logged.

        A log that keeps only the requests the client waited for shows no timeouts: the
        requests that ran past the timeout are missing, and the completed latency stops below
        it. This fires (**medium**) when a configuration change in ``[baseline end -
        lookback, incident end)`` set the timeout in force in the incident below the
        baseline's completed p99 (at least 1% of healthy requests run longer), the incident's
        completed p99.9 is below that timeout (the tail beyond it is gone) and the server's
        median is unchanged (p50 ratio at most :data:`P50_HEALTHY`). The incident's tail is
        read on the buckets sent wholly under the low timeout (:meth:`_tail_under_low_timeout`).
        """
        if self.config.empty or not self.has_latency:
            return None
        timeout = self.value("incident", "timeout_min_ms")
        base_p90, base_p99 = self.value("baseline", "p90_ms"), self.value("baseline", "p99_ms")
        inc_tail, p50_ratio = self._tail_under_low_timeout(), self.ratio("p50_ms")
        c = self.config
        changes = c[c["ts"].notna() & (c["ts"] >= pd.Timestamp(self.baseline.end - self.lookback))
                    & (c["ts"] < pd.Timestamp(self.incident.end)) & (c["timeout_ms"] <= timeout)]
        if changes.empty or np.isnan(timeout) or np.isnan(base_p99) or np.isnan(inc_tail) or \
                not (timeout < base_p99 and inc_tail < timeout and p50_ratio <= P50_HEALTHY):
            return None
        share = 0.10 if timeout < base_p90 else 0.01
        change = changes.sort_values("ts").iloc[-1]
        return Finding(
            id=FINDING, pathway="integration", severity="medium",
            statistic=timeout, threshold=base_p99,
            summary=(f"A client timeout of {timeout:.0f} ms, set at "
                     f"{pd.Timestamp(change['ts']):%Y-%m-%d %H:%M} UTC, sits below the "
                     f"baseline's p99 latency ({base_p99:.0f} ms; at least {share:.0%} of "
                     f"healthy requests run longer); no timeouts are logged and the incident's "
                     f"completed latency stops below it (p99.9 {inc_tail:.0f} ms): the requests "
                     f"past the timeout are cut off, while the server's median is unchanged "
                     f"(p50 ratio {p50_ratio:.2f})."),
            evidence={"route": "cut_tail", "timeout_ms": timeout, "baseline_p90_ms": base_p90,
                      "baseline_p99_ms": base_p99, "incident_p999_ms": inc_tail,
                      "baseline_share_over_timeout_at_least": share,
                      "p50_ratio": p50_ratio, "server_healthy": True, "below_tail": True,
                      "baseline_rate": self.value("baseline", "timeout_rate"),
                      "incident_rate": self.value("incident", "timeout_rate"),
                      "config_changes": [
                          {"ts": r.ts, "client_version": r.client_version,
                           "timeout_ms": r.timeout_ms} for r in changes.itertuples()]},
            onset=pd.Timestamp(change["ts"]).to_pydatetime(), diagnostic=self.id,
        )

    def _config_onset(self, tail: float, observed: datetime | None) -> datetime | None:
        """The configuration change that put a timeout below the tail in force, when one
        precedes the observed onset (within ``lookback`` before the baseline's end or later);
        else the observed onset."""
        if self.config.empty or np.isnan(tail):
            return observed
        c = self.config
        start = pd.Timestamp(self.baseline.end - self.lookback)
        limit = pd.Timestamp(observed) if observed is not None else pd.Timestamp(
            self.incident.end)
        hits = c[c["ts"].notna() & (c["ts"] >= start) & (c["ts"] <= limit)
                 & (c["timeout_ms"] < tail)]
        return observed if hits.empty else pd.Timestamp(hits["ts"].max()).to_pydatetime()

    def _onset(self, r_b: float, r_i: float) -> datetime | None:
        tl = self.timeline
        if tl.empty:
            return None
        part = tl[(tl["bucket_end"] > pd.Timestamp(self.baseline.end))
                  & (tl["bucket_start"] < pd.Timestamp(self.incident.end))]
        hits = part[(part["timeout_rate"] >= r_b + (r_i - r_b) / 2)
                    & part["first_timeout"].notna()]
        return None if hits.empty else pd.Timestamp(hits["first_timeout"].iloc[0]).to_pydatetime()

    def signals(self) -> pd.DataFrame:
        """The timeout rate, over-budget share and completed p99 per bucket, and
        ``timeouts.below_tail`` (:meth:`below_tail`)."""
        frame = timeline_signals(self.timeline, ["timeout_rate", "over_budget_share", "p99_ms"],
                                 "timeouts.", dropna=True)
        below = self.below_tail()
        if below.empty:
            return frame
        return pd.concat([frame, timeline_signals(below, {"below_tail": "timeouts.below_tail"})],
                         ignore_index=True)

    def below_tail(self) -> pd.DataFrame:
        """Per bucket with a timeout in force: ``below_tail``, the share of its requests sent
        under a client timeout below the baseline's completed p99.9 (the timeline's column of
        that name; 0 or 1 but in the bucket where the timeout changes, which it dates within
        the bucket).

        The misconfiguration itself, read from the configuration, not from its symptoms: a log
        that keeps only the answers the client waited for shows no timeout (the requests past
        the timeout are missing; varied tuning timeout_misconfiguration seed 1: a 160 ms timeout
        for eight hours against a p99.9 of about 300 ms, not one timeout logged), and a sparse
        one shows a handful. The window detector reads the step from its timeline. Empty
        without a timeout in force or without a baseline tail.
        """
        tl = self.timeline
        if tl.empty or "below_tail" not in tl:
            return pd.DataFrame(columns=["bucket_start", "below_tail"])
        return tl.loc[tl["below_tail"].notna(), ["bucket_start", "below_tail"]].reset_index(
            drop=True)

    def plot(self, ax: Axes | None = None, **kwargs: Any) -> Axes:
        """Completed p99 / p99.9 and the timeout in force over time; timeout rate on the right."""
        from toolkit.plotting import WINDOW_COLORS, axes

        ax = axes(ax, figsize=(10, 4))
        if self.timeline.empty:
            return super().plot(ax)
        import seaborn as sns

        data = self.timeline.melt(id_vars="bucket_start", value_vars=["p99_ms", "p999_ms"],
                                  var_name="percentile", value_name="latency_ms").dropna()
        if not data.empty:
            sns.lineplot(data=data, x="bucket_start", y="latency_ms", hue="percentile", ax=ax)
        budget = self.timeline.dropna(subset=["timeout_min_ms"])
        if not budget.empty:
            ax.step(budget["bucket_start"], budget["timeout_min_ms"], where="post",
                    color="#C44E52", lw=1.5, ls="--", label="client timeout in force")
        right = ax.twinx()
        right.plot(self.timeline["bucket_start"], self.timeline["timeout_rate"], color="#8172B3",
                   lw=1, alpha=0.7)
        right.set_ylabel("timeout rate", color="#8172B3")
        right.grid(False)
        ax.axvspan(self.incident.start, self.incident.end, color=WINDOW_COLORS["incident"],
                   alpha=0.08, label="incident")
        if not data.empty or not budget.empty:
            ax.set_yscale("log")
        ax.set_xlabel("time (UTC)")
        ax.set_ylabel("latency of completed requests (ms, log)")
        ax.set_title("Client timeout against the server latency tail")
        ax.legend(loc="upper left")
        return ax


def timeout_budget(
    con: CaseSource,
    baseline: Window | str,
    incident: Window | str,
    /,
    *,
    timeout_ms: float | None = None,
    lookback: timedelta = timedelta(hours=24),
    bucket: timedelta | None = None,
    case: CaseView | None = None,
) -> TimeoutResult:
    """Timeout rate and the client timeout in force against the completed-request latency tail.

    Parameters
    ----------
    con
        Case connection.
    baseline, incident
        The windows to compare.
    timeout_ms
        A client timeout in force over the whole span, for every client (overrides events and
        ``case_meta``).
    lookback
        How long before the baseline's end a configuration change may be the onset.
    bucket
        Timeline bucket width.
    case
        Shared case view.

    Returns
    -------
    TimeoutResult

    Examples
    --------
    >>> import numpy as np, pandas as pd, toolkit as tk
    >>> con = tk.connect()
    >>> ts = pd.date_range("2026-03-01", periods=2000, freq="min", tz="UTC")
    >>> latency = np.tile(np.arange(40.0, 240.0), 10)       # the same 40-240 ms every time
    >>> timeout = (ts >= ts[1000]) & (latency > 200)       # client timeout cut to 200 ms
    >>> _ = tk.load(con, pd.DataFrame({"request_id": range(2000), "ts": ts, "latency_ms": latency,
    ...     "status": np.where(timeout, "timeout", "ok")}), table="requests")
    >>> _ = tk.load(con, pd.DataFrame({"ts": [ts[1000]], "kind": ["config_change"],
    ...     "artifact": ["client"], "detail": ['{"client_timeout_ms": 200}']}), table="events")
    >>> result = timeout_budget(con, (ts[0], ts[1000]), (ts[1000], ts[-1]))
    >>> f = result.findings()[0]
    >>> f.id, f.severity, round(f.statistic, 2)
    ('integration.timeout_misconfiguration', 'high', 0.19)
    """
    baseline, incident = check_windows(baseline, incident)
    case = case or case_view(con)
    base = dict(baseline=baseline, incident=incident, lookback=lookback)
    cols = case.columns.get("requests", {})
    if not case.counts.get("requests"):
        return TimeoutResult(**base, not_assessed=(NotAssessed(ID, "no requests"),))
    if not any(c in cols for c in ("status", "error_type", "http_status")):
        return TimeoutResult(**base, not_assessed=(
            NotAssessed(ID, "requests log neither status, error_type nor http_status: "
                        "timeouts cannot be counted"),))
    config = _timeout_history(case, timeout_ms)
    record = Recorder()
    span = Window(min(baseline.start, incident.start), max(baseline.end, incident.end))
    width = bucket or choose_bucket(span.duration)
    raw = case.table("requests")
    raw = raw.filter(within(raw.ts, span))
    has_client = "client_version" in cols
    latency = raw.latency_ms if "latency_ms" in cols else ibis.null("float64")
    is_timeout = _is_timeout(raw, cols)
    status_ok = (raw.status.isnull() | (raw.status == "ok")) if "status" in cols else \
        ibis.literal(True)
    t = raw.select(
        ts=raw.ts,
        client_version=raw.client_version if has_client else ibis.null("string"),
        _window=window_label(raw.ts, baseline, incident),
        bucket_start=bucket_expr(raw.ts, width),
        _timeout=ibis.ifelse(is_timeout, 1, 0),
        _completed=ibis.ifelse(latency.notnull() & ~is_timeout & status_ok, 1, 0),
        _budget=_in_force(raw, config, has_client),
        _lat=latency,
        _outcome=_outcome(raw, cols))
    budgeted = t._budget.notnull() & t._lat.notnull()
    groups = record(t.group_by(["bucket_start", "_window", "client_version"]).aggregate(
        requests=t.count(), timeouts=t._timeout.sum(), completed=t._completed.sum(),
        budgeted=ibis.ifelse(budgeted, 1, 0).sum(),
        over_budget=ibis.ifelse(budgeted & (t._lat > t._budget), 1, 0).sum(),
        timeout_min_ms=t._budget.min(), timeout_max_ms=t._budget.max(),
        first_timeout=t.ts.min(where=t._timeout == 1),
        with_latency=t._lat.count(), outcome=t._outcome.sum()))
    groups = groups.rename(columns={"_window": "window"})
    windows = set(groups["window"].dropna())
    if windows != {"baseline", "incident"}:
        missing = ", ".join(sorted({"baseline", "incident"} - windows))
        return TimeoutResult(**base, sql=record.sql, config=config, not_assessed=(
            NotAssessed(ID, f"no requests in the {missing} window"),))
    if not groups["outcome"].sum():
        return TimeoutResult(**base, sql=record.sql, config=config, not_assessed=(
            NotAssessed(ID, "no request in the windows has a status, error_type or "
                        "http_status: timeouts cannot be counted"),))
    gaps = []
    has_latency = bool(groups["with_latency"].sum())
    completed = float(groups["completed"].sum())
    if has_latency and completed:
        done = raw.filter(latency.notnull() & ~is_timeout & status_ok)
        done = done.select(ts=done.ts, _window=window_label(done.ts, baseline, incident),
                           bucket_start=bucket_expr(done.ts, width), _lat=done.latency_ms)
        sampled = sample_by_time(done, TIMELINE_SAMPLE / completed)
        tail = record(sampled.group_by("bucket_start").aggregate(
            q=sampled._lat.approx_quantile(list(_BUCKET_Q))))
        in_windows = done.filter(done._window.notnull())
        wq = record(in_windows.group_by("_window").aggregate(
            q=in_windows._lat.approx_quantile(list(_WINDOW_Q)))).rename(
            columns={"_window": "window"})
    else:
        # (every request failed, or the statuses are not ok/error/timeout, e.g. SUCCEED: no
        # request is known to have completed, and the healthy tail is unknown)
        reason = ("no request in the windows completed with status 'ok' (statuses other than "
                  "ok, error and timeout are not read as successes)" if has_latency else
                  "no latency logged")
        gaps.append(NotAssessed(f"{ID}.latency", f"{reason}: the server tail cannot be "
                                "compared with the client timeout"))
        tail = pd.DataFrame(columns=["bucket_start", "q"])
        wq = pd.DataFrame(columns=["window", "q"])
    if config.empty:
        gaps.append(NotAssessed(f"{ID}.config", "no client timeout in events (detail keys "
                                f"{', '.join(TIMEOUT_KEYS)}) or case_meta: the timeout rate is "
                                "reported against the latency tail only"))
    table, clients = _window_tables(groups, wq)
    if not config.empty and table["timeout_min_ms"].isna().any():
        # the engine matched no request to the configuration (e.g. it names client versions
        # that requests do not log): state the values in force from the events themselves
        for k, window in enumerate((baseline, incident)):
            low, high = _config_range(config, window)
            if np.isnan(table.loc[k, "timeout_min_ms"]):
                table.loc[k, ["timeout_min_ms", "timeout_max_ms"]] = [low, high]
        gaps.append(NotAssessed(f"{ID}.budget", "no request could be matched to the timeout "
                                "configuration (client_version not logged?): the over-budget "
                                "share is not assessed; the timeout in force comes from the "
                                "events alone"))
    timeline = _timeline(groups, tail, width)
    timeline["below_tail"] = np.nan
    base_tail = float(table.loc[table["window"] == "baseline", "p999_ms"].iloc[0])
    under_low: dict[str, float] = {}
    if not config.empty and np.isfinite(base_tail):
        # the share of each bucket's requests sent under a timeout below the baseline's tail
        known = t.filter(t._budget.notnull())
        below = record(known.group_by("bucket_start").aggregate(
            _below=ibis.ifelse(known._budget < base_tail, 1.0, 0.0).mean()))
        timeline["below_tail"] = timeline["bucket_start"].map(
            below.set_index("bucket_start")["_below"]).astype(float)
        if has_latency and completed:
            low = t.filter((t._window == "incident") & (t._budget < base_tail)
                           & (t._completed == 1))
            lq = record(low.aggregate(completed=low.count(),
                                      q=low._lat.approx_quantile([0.5, 0.99])))
            q = lq["q"].iloc[0] if len(lq) else None
            if q is not None and len(q) == 2:
                under_low = {"completed": float(lq["completed"].iloc[0]),
                             "p50_ms": float(q[0]), "p99_ms": float(q[1])}
    result = TimeoutResult(**base, table=table, clients=clients, timeline=timeline,
                           config=config, has_latency=bool(has_latency and completed),
                           under_low=under_low,
                           sql=record.sql,
                           not_assessed=tuple(gaps))
    refined = {f.id: refine_onset(record, raw, is_timeout.cast("float64"), f.onset,
                                  around=3 * width, limits=span)
               for f in result.findings() if f.onset is not None}
    return replace(result, refined_onsets=refined, sql=record.sql) if refined else result


def rise_pvalue(k_b: float, n_b: float, k_i: float, n_i: float) -> float:
    """One-sided Fisher exact p-value that the incident's ``k_i`` timeouts of ``n_i`` requests
    are a higher rate than the baseline's ``k_b`` of ``n_b``.

    Exact on the few timeouts a sampled log keeps, where the normal approximation of a
    two-proportion z-test is not: three timeouts among 200 incident requests against none of
    2,000 baseline ones is ``C(200, 3) / C(2200, 3)``, about 7.4e-4.

    Examples
    --------
    >>> round(rise_pvalue(0, 2000, 3, 200), 6)
    0.000741
    """
    return float(st.fisher_greater(k_i, n_i, k_b, n_b))


def _is_timeout(t: ibis.Table, cols: Mapping[str, str]) -> ibis.BooleanValue:
    """``status = 'timeout'``, a timeout-like ``error_type``, or HTTP 408 / 499 / 504."""
    parts = []
    if "status" in cols:
        parts.append((t.status == "timeout").fill_null(False))
    if "error_type" in cols:
        parts.append(t.error_type.lower().re_search(TIMEOUT_PATTERN).fill_null(False))
    if "http_status" in cols:
        parts.append(t.http_status.isin([408, 499, 504]).fill_null(False))
    return _any(parts)


def _outcome(t: ibis.Table, cols: Mapping[str, str]) -> ibis.IntegerValue:
    """1 when the request logs a status, an error_type or an http_status."""
    logged = _any([t[c].notnull() for c in ("status", "error_type", "http_status") if c in cols])
    return ibis.ifelse(logged, 1, 0)


def _any(parts: list[ibis.BooleanValue]) -> ibis.BooleanValue:
    return functools.reduce(operator.or_, parts) if parts else ibis.literal(False)


def _in_force(t: ibis.Table, config: pd.DataFrame, has_client: bool) -> ibis.FloatingValue:
    """The timeout in force for each request, as a CASE on time (and client version)."""
    if config.empty:
        return ibis.null("float64")
    branches = []
    scoped = config[config["client_version"].notna()] if has_client else config.iloc[0:0]
    shared = config[config["client_version"].isna()]
    # the most specific scope first: a version before the family prefix that contains it
    for scope in sorted(scoped["client_version"].unique(), key=lambda v: (-len(v), v)):
        rows = scoped[scoped["client_version"] == scope]
        match = (t.client_version == scope) | t.client_version.startswith(f"{scope}-")
        for cond, value in _segments(t, rows):
            branches.append((match & cond, value))
    for cond, value in _segments(t, shared):
        branches.append((cond, value))
    if not branches:
        return ibis.null("float64")
    return ibis.cases(*((c, ibis.literal(float(v))) for c, v in branches),
                      else_=ibis.null("float64"))


def _segments(t: ibis.Table, rows: pd.DataFrame) -> list[tuple[ibis.BooleanValue, float]]:
    """``[(ts in [t_k, t_k+1), value_k)]`` for a step function (NaT: from the start)."""
    rows = rows.sort_values("ts", na_position="first")
    out = []
    times = list(rows["ts"]) + [pd.NaT]
    for k, value in enumerate(rows["timeout_ms"]):
        start, end = times[k], times[k + 1]
        cond = ibis.literal(True)
        if not pd.isna(start):
            cond = cond & (t.ts >= ibis.literal(pd.Timestamp(start).to_pydatetime()))
        if not pd.isna(end):
            cond = cond & (t.ts < ibis.literal(pd.Timestamp(end).to_pydatetime()))
        out.append((cond, float(value)))
    return out


def _config_range(config: pd.DataFrame, window: Window) -> tuple[float, float]:
    """Smallest and largest value in force at some time in ``window``, over every scope."""
    values = []
    for _, rows in config.groupby(config["client_version"].fillna("\0"), sort=False):
        rows = rows.sort_values("ts", na_position="first")
        ends = list(rows["ts"].iloc[1:]) + [pd.NaT]
        for start, end, value in zip(rows["ts"], ends, rows["timeout_ms"], strict=True):
            if (pd.isna(start) or start < pd.Timestamp(window.end)) and (
                    pd.isna(end) or end > pd.Timestamp(window.start)):
                values.append(float(value))
    return (min(values), max(values)) if values else (float("nan"), float("nan"))


def _flatten(detail: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(detail, Mapping):
        return {}
    out: dict[str, Any] = {}
    for key, value in detail.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{name}_"))
        else:
            out[name] = value
    return out


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if np.isnan(number) or number <= 0 else number


def _lookup(flat: Mapping[str, Any], keys: Mapping[str, float], prefixes: tuple[str, ...] = ("",)
            ) -> float | None:
    for prefix in prefixes:
        for key, factor in keys.items():
            for name, value in flat.items():
                if name.lower() == prefix + key:
                    number = _number(value)
                    if number is not None:
                        return number * factor
    return None


_SCOPE_KEYS = ("client_version", "client", "client_family", "clients")
_EVERY_CLIENT = ("all", "*", "any", "every", "global")


def _scope(flat: Mapping[str, Any], artifact: Any, version: Any) -> str | None:
    """The client a setting applies to (None: every client)."""
    for key in _SCOPE_KEYS:
        value = flat.get(key)
        if isinstance(value, str) and value.strip():
            value = value.strip()
            return None if value.lower() in _EVERY_CLIENT else value
    if artifact == "client" and isinstance(version, str) and version.strip():
        return version.strip()
    return None


def _config_history(case: CaseView, keys: Mapping[str, float], value_name: str
                    ) -> pd.DataFrame:
    """A setting's history from events and ``case_meta``.

    Returns ``ts`` (NaT: in force from the start), ``client_version`` (the scope; None: every
    client), ``<value_name>`` (the value times the key's factor) and ``source``. A detail key
    ``client_version``, ``client``, ``client_family`` or ``clients`` scopes the setting (``all``
    or ``*``: every client), else an event of artifact ``client`` with a version applies to that
    version. A scope matches a client version equal to it or starting with ``<scope>-`` (a
    family such as ``ios`` matches ``ios-7.2.0``). Before the first event of a scope, the
    event's ``previous_<key>`` (or ``old_``, ``prev_``, ``from_``) value is in force when given,
    else ``case_meta``'s value.
    """
    rows: list[tuple[Any, Any, float, str]] = []
    ev = case.events
    for e in ev.itertuples():
        flat = _flatten(e.detail)
        value = _lookup(flat, keys)
        if value is None:
            continue
        scope = _scope(flat, e.artifact, e.version)
        previous = _lookup(flat, keys, _PREVIOUS)
        rows.append((pd.Timestamp(e.ts), scope, value, f"event {e.kind}"))
        if previous is not None:
            rows.append((pd.NaT, scope, previous, f"previous value in {e.kind} event"))
    meta = _lookup({str(k): v for k, v in case.meta.items()}, keys)
    frame = pd.DataFrame(rows, columns=["ts", "client_version", value_name, "source"])
    # keep only the earliest "previous" value per scope, and only when nothing precedes it
    if not frame.empty:
        frame["_scope"] = frame["client_version"].fillna("\0")
        first = frame[frame["ts"].isna()].groupby("_scope", sort=False).head(1)
        frame = pd.concat([first, frame[frame["ts"].notna()]]).drop(columns="_scope")
    if meta is not None and not (frame["ts"].isna() & frame["client_version"].isna()).any():
        start = pd.DataFrame({"ts": [pd.NaT], "client_version": [None], value_name: [meta],
                              "source": ["case_meta"]})
        frame = pd.concat([start, frame]) if len(frame) else start
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    frame["client_version"] = frame["client_version"].astype(object).where(
        frame["client_version"].notna(), None)
    return frame.sort_values("ts", na_position="first", ignore_index=True)


def _timeout_history(case: CaseView, timeout_ms: float | None) -> pd.DataFrame:
    if timeout_ms is not None:
        return pd.DataFrame({"ts": pd.to_datetime([pd.NaT], utc=True), "client_version": [None],
                             "timeout_ms": [float(timeout_ms)], "source": ["given"]})
    return _config_history(case, TIMEOUT_KEYS, "timeout_ms")


def _split(frame: pd.DataFrame, levels: tuple[float, ...], names: list[str]) -> None:
    values = np.array([list(q) if q is not None else [np.nan] * len(levels)
                       for q in frame.pop("q")], dtype=float).reshape(len(frame), len(levels))
    for k, name in enumerate(names):
        frame[name] = values[:, k]


def _rates(frame: pd.DataFrame) -> pd.DataFrame:
    frame["timeout_rate"] = frame["timeouts"] / frame["requests"]
    with np.errstate(invalid="ignore", divide="ignore"):
        frame["over_budget_share"] = np.where(frame["budgeted"] > 0, frame["over_budget"]
                                              / frame["budgeted"].where(frame["budgeted"] > 0, 1),
                                              np.nan)
    return frame


_COUNTS = ["requests", "timeouts", "completed", "budgeted", "over_budget"]


def _window_tables(groups: pd.DataFrame, wq: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    g = groups[groups["window"].notna()]
    spec = {**{c: (c, "sum") for c in _COUNTS}, "timeout_min_ms": ("timeout_min_ms", "min"),
            "timeout_max_ms": ("timeout_max_ms", "max")}
    clients = _rates(g.groupby(["window", "client_version"], dropna=False).agg(**spec)
                     .reset_index())
    table = _rates(g.groupby("window").agg(**spec).reset_index())
    wq = wq.copy()
    _split(wq, _WINDOW_Q, ["p50_ms", "p90_ms", "p99_ms", "p999_ms"])
    table = table.merge(wq, on="window", how="left")
    table = table.set_index("window").loc[["baseline", "incident"]].reset_index()
    clients["window"] = pd.Categorical(clients["window"], ["baseline", "incident"])
    clients = clients.sort_values(["window", "requests"], ascending=[True, False],
                                  ignore_index=True)
    clients["window"] = clients["window"].astype(str)
    return (table[["window", "requests", "timeouts", "timeout_rate", "completed", "p50_ms",
                   "p90_ms", "p99_ms", "p999_ms", "timeout_min_ms", "timeout_max_ms",
                   "budgeted", "over_budget", "over_budget_share"]],
            clients[["window", "client_version", "requests", "timeouts", "timeout_rate",
                     "completed", "budgeted", "over_budget", "over_budget_share",
                     "timeout_min_ms", "timeout_max_ms"]])


def _timeline(groups: pd.DataFrame, tail: pd.DataFrame, width: timedelta) -> pd.DataFrame:
    tl = _rates(groups.groupby("bucket_start").agg(
        **{c: (c, "sum") for c in _COUNTS}, timeout_min_ms=("timeout_min_ms", "min"),
        first_timeout=("first_timeout", "min")).reset_index())
    tail = tail.copy()
    _split(tail, _BUCKET_Q, ["p50_ms", "p99_ms", "p999_ms"])
    tl = tl.merge(tail, on="bucket_start", how="left")
    tl["bucket_end"] = tl["bucket_start"] + width
    return tl.sort_values("bucket_start", ignore_index=True)[
        ["bucket_start", "bucket_end", "requests", "timeouts", "timeout_rate", "budgeted",
         "over_budget", "over_budget_share", "timeout_min_ms", "p50_ms", "p99_ms", "p999_ms",
         "first_timeout"]]
