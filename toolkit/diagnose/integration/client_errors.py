"""Errors per client / API version: is the incident a contract mismatch with one client?

Recipe
------
One aggregate query over ``requests`` groups the span covering both windows by time bucket,
window label and ``client_version`` and counts requests, failed requests, HTTP 4xx answers,
validation-type errors and *contract errors*, with the first contract error's time; a second,
cheap one returns every client version's first request time (all history up to the incident's
end). Definitions, per request:

* **failed**: ``status = 'error'`` (when ``status`` is not logged: ``http_status >= 400`` or an
  ``error_type``);
* **4xx**: ``400 <= http_status <= 499``;
* **validation**: ``error_type`` matches :data:`VALIDATION_PATTERN` (validation, parse, schema,
  invalid, bad request, deserialisation, decode, contract, missing / unknown field, type error),
  case-insensitively;
* **contract error**: a 4xx other than 408 (request timeout) and 429 (rate limit), or a
  validation error.

A client version is **new** when its first request comes at or after the baseline's end, and
**announced** when a ``deploy`` event of artifact ``client`` names it in
``[incident.start - lookback, incident.end)``.

**Finding** ``integration.client_contract_errors`` (statistic: the suspect version's
contract-error rate in the incident; threshold ``min_rate``). The suspect is the client
version with the most contract errors among those with >= ``min_errors`` of them and a *lift*
above 1 (its share of the incident's contract errors over its share of the incident's
requests). It fires when:

* the suspect's rate is >= ``min_rate`` (2%) and >= 3x the rate of all other versions together,
  with a one-sided Fisher exact test p < 1e-3 (exact at the few errors a sampled log keeps;
  the suspect's lift above 1 implies that other versions served the incident);
* the suspect carries >= 50% of the incident's contract errors (concentration; the rate ratio
  already implies a lift above 1 whatever the version's share of traffic);
* when the version also served the baseline (>= 100 requests), its rate rose by >= 1 point
  (Fisher p < 1e-3) over its own baseline rate (otherwise the errors are chronic: severity
  low).

Severity **high** when the version is new or announced (a client release), **medium** when it
is not (e.g. the server changed the contract under an old client), **low** when chronic.

Onset: the suspect's first contract error in the first bucket at or after the baseline's end
where its rate is at least halfway between the other versions' rate and its own, then refined
on the raw rows (:func:`~toolkit.diagnose._onset.refine_onset` on the contract-error share of
the suspect's requests; a version that is new has no earlier requests, so its first error
stands). When a client ``deploy`` event announced the suspect before that (within
``lookback`` before the incident), the onset is the release: a new version's first requests
lag its release while users update.
"""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import ibis
import numpy as np
import pandas as pd

from toolkit._validation import check_windows
from toolkit.diagnose._base import DiagnosticResult, Finding, NotAssessed
from toolkit.diagnose._case import CaseView, case_view, choose_bucket, within
from toolkit.diagnose._engine import Recorder, bucket_expr, window_label
from toolkit.diagnose._engines import CaseSource
from toolkit.diagnose._onset import refine_onset
from toolkit.diagnose._stats import fisher_greater as _fisher_greater
from toolkit.types import Window

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["errors_by_client", "ClientErrorsResult", "ID", "VALIDATION_PATTERN"]

ID = "integration.client_errors"
FINDING = "integration.client_contract_errors"
#: ``error_type`` values that mean the request broke the API contract (regex, lower case).
VALIDATION_PATTERN = (r"validat|pars(?:e|ing)|schema|invalid|bad.?request|deserial|decod|contract"
                      r"|(?:missing|unknown|unexpected).?(?:field|key|column|feature)|type.?error")
MIN_RATE = 0.02
#: Fewest contract errors a suspect needs. Significance is then Fisher's exact test, which
#: holds at any count: a log sampled 1 in 50 keeps a few logged errors of a broken release
#: (issue 22: an API contract mismatch with 20 logged incident requests stayed undetermined
#: under the old floor of 20 errors and the normal approximation).
MIN_ERRORS = 3
RATE_RATIO = 3.0
MIN_CONCENTRATION = 0.5
PVALUE = 1e-3
MIN_BASELINE_REQUESTS = 100
MIN_RISE = 0.01
_COUNTS = ("requests", "errors", "http_4xx", "validation", "contract_errors")
#: Rate column of each count column.
_RATES = {"errors": "error_rate", "http_4xx": "http_4xx_rate", "validation": "validation_rate",
          "contract_errors": "contract_error_rate"}


@dataclass(frozen=True, kw_only=True, repr=False)
class ClientErrorsResult(DiagnosticResult):
    """Error rates per client version and window, and their concentration in the incident.

    Attributes
    ----------
    table
        One row per window and client version: ``window``, ``client_version``, ``requests``,
        ``traffic_share``, ``errors``, ``error_rate``, ``http_4xx``, ``http_4xx_rate``,
        ``validation``, ``validation_rate``, ``contract_errors``, ``contract_error_rate``,
        ``error_share`` (share of the window's contract errors), ``lift``
        (``error_share / traffic_share``), ``first_seen``, ``new``, ``announced``.
    timeline
        Per time bucket and client version: ``bucket_start``, ``client_version``,
        ``requests``, ``contract_errors``, ``contract_error_rate``, ``first_error``.
    events
        ``deploy`` events of artifact ``client`` from the baseline's start to the incident's
        end.
    suspect
        The client version with the most contract errors in the incident among those with a
        lift above 1 (``None`` when no version has ``min_errors`` contract errors).
    """

    id = ID
    title = "Errors by client version"

    suspect: str | None = None
    lookback: timedelta = timedelta(hours=24)
    min_rate: float = MIN_RATE
    min_errors: int = MIN_ERRORS
    timeline: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    events: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    def row(self, window: str, version: str | None) -> pd.Series | None:
        t = self.table
        if t.empty:
            return None
        hit = t[(t["window"] == window) & (t["client_version"] == version)]
        return hit.iloc[0] if len(hit) else None

    def rate(self, window: str, column: str = "contract_error_rate") -> float:
        """A rate over every client version of the window."""
        t = self.table[self.table["window"] == window] if not self.table.empty else self.table
        if t.empty or not t["requests"].sum():
            return float("nan")
        counts = {rate: count for count, rate in _RATES.items()}[column]
        return float(t[counts].sum() / t["requests"].sum())

    def headline(self) -> dict[str, Any]:
        if self.table.empty:
            return {}
        out: dict[str, Any] = {
            "contract error rate baseline": self.rate("baseline"),
            "contract error rate incident": self.rate("incident"),
            "error rate incident": self.rate("incident", "error_rate"),
            "client versions in incident": int((self.table["window"] == "incident").sum()),
            "suspect": self.suspect or "none",
        }
        row = self.row("incident", self.suspect) if self.suspect else None
        if row is not None:
            out["suspect contract error rate"] = float(row["contract_error_rate"])
            out["suspect share of errors"] = float(row["error_share"])
        return out

    def _versus_others(self) -> dict[str, float]:
        inc = self.table[self.table["window"] == "incident"]
        mine = inc[inc["client_version"] == self.suspect]
        rest = inc[inc["client_version"] != self.suspect]
        k, n = float(mine["contract_errors"].sum()), float(mine["requests"].sum())
        k_o, n_o = float(rest["contract_errors"].sum()), float(rest["requests"].sum())
        return {"k": k, "n": n, "k_other": k_o, "n_other": n_o,
                "rate": k / n if n else float("nan"),
                "rate_other": k_o / n_o if n_o else 0.0}

    def findings(self) -> list[Finding]:
        if self.table.empty or self.suspect is None:
            return []
        row = self.row("incident", self.suspect)
        v = self._versus_others()
        rate, other = v["rate"], v["rate_other"]
        p_other = _fisher_greater(v["k"], v["n"], v["k_other"], v["n_other"])
        concentrated = (rate >= self.min_rate and rate >= RATE_RATIO * other
                        and p_other < PVALUE and float(row["error_share"]) >= MIN_CONCENTRATION)
        if not concentrated:
            return []
        base = self.row("baseline", self.suspect)
        base_rate, p_rise, chronic = float("nan"), float("nan"), False
        if base is not None and base["requests"] >= MIN_BASELINE_REQUESTS:
            base_rate = float(base["contract_error_rate"])
            p_rise = _fisher_greater(v["k"], v["n"], float(base["contract_errors"]),
                                     float(base["requests"]))
            chronic = not (rate - base_rate >= MIN_RISE and p_rise < PVALUE)
        new, announced = bool(row["new"]), bool(row["announced"])
        if chronic:
            severity = "low"
        elif new or announced:
            severity = "high"
        else:
            severity = "medium"
        status = ("new" if new else "") + (" and " if new and announced else "") + (
            "announced by a client deploy" if announced else "")
        summary = (f"Client version {self.suspect}{f' ({status})' if status else ''} carries "
                   f"{float(row['error_share']):.0%} of the incident's contract errors with "
                   f"{float(row['traffic_share']):.0%} of its traffic: contract-error rate "
                   f"{rate:.1%} against {other:.2%} for other versions.")
        if chronic:
            summary += f" Its baseline rate was already {base_rate:.1%}."
        return [Finding(
            id=FINDING, pathway="integration", severity=severity,
            statistic=rate, threshold=self.min_rate, summary=summary,
            evidence={"client_version": self.suspect, "new": new, "announced": announced,
                      "first_seen": None if pd.isna(row["first_seen"]) else row["first_seen"],
                      "contract_errors": int(v["k"]),
                      "requests": int(v["n"]), "other_rate": other, "pvalue": p_other,
                      "baseline_rate": base_rate, "rise_pvalue": p_rise,
                      "error_share": float(row["error_share"]),
                      "traffic_share": float(row["traffic_share"]), "lift": float(row["lift"]),
                      "http_4xx_rate": float(row["http_4xx_rate"]),
                      "validation_rate": float(row["validation_rate"])},
            onset=self._release_onset(_first_request(
                self.refined_onsets.get(FINDING) or self._onset(rate, other),
                row["first_seen"] if new else None)),
            diagnostic=self.id,
        )]

    def _release_onset(self, observed: datetime | None) -> datetime | None:
        """The client deploy that announced the suspect, when it precedes the observed onset
        within ``lookback``; else the observed onset (a new version's first requests can lag
        its release while users update)."""
        ev = self.events
        if ev.empty:
            return observed
        limit = pd.Timestamp(observed) if observed is not None else pd.Timestamp(
            self.incident.end)
        hits = ev[(ev["version"] == self.suspect) & (ev["ts"] <= limit)
                  & (ev["ts"] >= pd.Timestamp(self.incident.start - self.lookback))]
        return observed if hits.empty else pd.Timestamp(hits["ts"].max()).to_pydatetime()

    def _onset(self, rate: float, other: float) -> datetime | None:
        tl = self.timeline
        if tl.empty:
            return None
        mine = tl[(tl["client_version"] == self.suspect)
                  & (tl["bucket_end"] > pd.Timestamp(self.baseline.end))
                  & (tl["bucket_start"] < pd.Timestamp(self.incident.end))]
        hits = mine[(mine["contract_error_rate"] >= other + (rate - other) / 2)
                    & mine["first_error"].notna()]
        return None if hits.empty else pd.Timestamp(hits["first_error"].iloc[0]).to_pydatetime()

    def signals(self) -> pd.DataFrame:
        if self.timeline.empty:
            return super().signals()
        tl = self.timeline
        overall = tl.groupby("bucket_start")[["requests", "contract_errors"]].sum()
        frames = [pd.DataFrame({"bucket_start": overall.index,
                                "signal": "client_errors.contract_error_rate",
                                "value": (overall["contract_errors"] / overall["requests"]
                                          ).to_numpy()})]
        # the suspect's own rate only when its errors make a finding: a version picked from a
        # handful of errors that chance explains steps from 0 to 50% in one bucket and
        # recovers, a blip the window detector would place the incident on (classic tuning
        # covariate_shift s1: 8,282 min early, read none, once 3 errors made a suspect)
        if self.suspect is not None and self.findings():
            mine = tl[tl["client_version"] == self.suspect]
            frames.append(pd.DataFrame({"bucket_start": mine["bucket_start"].to_numpy(),
                                        "signal": "client_errors.suspect_error_rate",
                                        "value": mine["contract_error_rate"].to_numpy()}))
        return pd.concat(frames, ignore_index=True)

    def plot(self, ax: Axes | None = None, **kwargs: Any) -> Axes:
        """Contract-error rate per client version, baseline against incident."""
        from toolkit.plotting import WINDOW_COLORS, axes

        ax = axes(ax, figsize=(10, 4))
        if self.table.empty:
            return super().plot(ax)
        import seaborn as sns

        data = self.table.assign(client_version=self.table["client_version"].fillna("(none)"))
        order = (data[data["window"] == "incident"].sort_values("contract_error_rate",
                                                                ascending=False)
                 ["client_version"].tolist())
        order += [c for c in data["client_version"].unique() if c not in order]
        sns.barplot(data=data, x="client_version", y="contract_error_rate", hue="window",
                    order=order, hue_order=["baseline", "incident"], palette=WINDOW_COLORS,
                    ax=ax)
        for label in ax.get_xticklabels():
            label.set_rotation(30)
            label.set_ha("right")
        ax.set_xlabel("client version" + (f" (suspect: {self.suspect})" if self.suspect else ""))
        ax.set_ylabel("contract-error rate")
        ax.set_title("Contract errors (4xx, validation) by client version")
        return ax


def errors_by_client(
    con: CaseSource,
    baseline: Window | str,
    incident: Window | str,
    /,
    *,
    min_rate: float = MIN_RATE,
    min_errors: int = MIN_ERRORS,
    lookback: timedelta = timedelta(hours=24),
    bucket: timedelta | None = None,
    case: CaseView | None = None,
) -> ClientErrorsResult:
    """Error, 4xx and validation-error rates per client version; concentration on one version.

    Parameters
    ----------
    con
        Case connection.
    baseline, incident
        The windows to compare.
    min_rate, min_errors
        Smallest contract-error rate and count of a suspect version (see the module docstring).
    lookback
        How long before the incident a client ``deploy`` event still announces a version.
    bucket
        Timeline bucket width.
    case
        Shared case view.

    Returns
    -------
    ClientErrorsResult

    Examples
    --------
    >>> import pandas as pd, toolkit as tk
    >>> con = tk.connect()
    >>> ts = pd.date_range("2026-03-01", periods=600, freq="min", tz="UTC")
    >>> client = ["web-1", "ios-1"] * 300
    >>> client[400::2] = ["web-2"] * 100                    # web-2 replaces web-1 at 06:40
    >>> status = [400 if c == "web-2" and k % 4 else 200 for k, c in enumerate(client)]
    >>> _ = tk.load(con, pd.DataFrame({"request_id": range(600), "ts": ts, "client_version": client,
    ...     "http_status": status, "status": ["error" if s >= 400 else "ok" for s in status]}),
    ...     table="requests")
    >>> result = errors_by_client(con, (ts[0], ts[300]), (ts[300], ts[-1]))
    >>> f = result.findings()[0]
    >>> result.suspect, f.severity, round(f.statistic, 2)
    ('web-2', 'high', 0.5)
    """
    baseline, incident = check_windows(baseline, incident)
    case = case or case_view(con)
    base = dict(baseline=baseline, incident=incident, min_rate=min_rate, min_errors=min_errors,
                lookback=lookback)
    cols = case.columns.get("requests", {})
    if not case.has("requests", "client_version"):
        return ClientErrorsResult(**base, not_assessed=(
            NotAssessed(ID, "no requests with a client_version column"),))
    outcome = [c for c in ("status", "http_status", "error_type") if c in cols]
    if not outcome:
        return ClientErrorsResult(**base, not_assessed=(
            NotAssessed(ID, "requests log neither status, http_status nor error_type"),))
    record = Recorder()
    span = Window(min(baseline.start, incident.start), max(baseline.end, incident.end))
    width = bucket or choose_bucket(span.duration)
    raw = case.table("requests")
    raw = raw.filter(within(raw.ts, span))
    t = raw.select("ts", "client_version", _window=window_label(raw.ts, baseline, incident),
                   bucket_start=bucket_expr(raw.ts, width), **_flags(raw, cols))
    groups = record(t.group_by(["bucket_start", "_window", "client_version"]).aggregate(
        requests=t.count(), errors=t._failed.sum(), http_4xx=t._4xx.sum(),
        validation=t._validation.sum(), contract_errors=t._contract.sum(),
        first_error=t.ts.min(where=t._contract == 1),
        logged_outcome=t._logged.sum(), typed=t._typed.sum()))
    groups = groups.rename(columns={"_window": "window"})
    groups["client_version"] = groups["client_version"].astype(object).where(
        groups["client_version"].notna(), None)
    windows = set(groups["window"].dropna())
    if windows != {"baseline", "incident"}:
        missing = ", ".join(sorted({"baseline", "incident"} - windows))
        return ClientErrorsResult(**base, sql=record.sql, not_assessed=(
            NotAssessed(ID, f"no requests in the {missing} window"),))
    if not groups["client_version"].notna().any():
        return ClientErrorsResult(**base, sql=record.sql, not_assessed=(
            NotAssessed(ID, "client_version is not logged in the requests of the windows"),))
    if not groups["logged_outcome"].sum():
        return ClientErrorsResult(**base, sql=record.sql, not_assessed=(
            NotAssessed(ID, "no request in the windows has a status, http_status or "
                        "error_type"),))
    everything = case.table("requests")
    everything = everything.filter(everything.ts < ibis.literal(incident.end))
    first = record(everything.group_by("client_version").aggregate(first_seen=everything.ts.min()))
    first["client_version"] = first["client_version"].astype(object).where(
        first["client_version"].notna(), None)
    events = _client_deploys(case, baseline, incident)
    announce_from = pd.Timestamp(incident.start - lookback)
    announced = set(events.loc[events["ts"] >= announce_from, "version"].dropna())
    table = _table(groups, first, baseline, announced)
    timeline = _timeline(groups, width)
    suspect = _suspect(table, min_errors)
    gaps = []
    if not groups["typed"].sum():
        gaps.append(NotAssessed(f"{ID}.validation", "no error_type logged: validation errors "
                                "are counted from HTTP 4xx only"))
    result = ClientErrorsResult(**base, table=table, timeline=timeline, events=events,
                                suspect=suspect, sql=record.sql, not_assessed=tuple(gaps))
    refined = {}
    for finding in result.findings():
        if finding.onset is not None:
            # the contract-error share among the suspect's requests (NULL for other clients)
            mine = raw.client_version == suspect
            share = ibis.ifelse(mine.fill_null(False),
                                _flags(raw, cols)["_contract"].cast("float64"),
                                ibis.null("float64"))
            refined[finding.id] = refine_onset(record, raw, share, finding.onset,
                                               around=3 * width, limits=span)
    return replace(result, refined_onsets=refined, sql=record.sql) if refined else result


def _first_request(observed: datetime | None, first_seen: Any) -> datetime | None:
    """The observed onset, or a new version's first request when that is earlier.

    A new client version's first request is the first sign of its release; its first
    contract error comes later, when one of its few early requests fails (every 1 in 2 to
    1 in 50 requests is logged, and a release's adoption grows over hours). Varied tuning
    api_contract_mismatch s4, s7 and s9 (no deploy event): first contract errors 85, 77 and
    157 minutes after the release, first requests 51, 35 and 134 minutes after it.
    """
    if first_seen is None or pd.isna(first_seen) or observed is None:
        return observed
    first = pd.Timestamp(first_seen)
    first = first.tz_localize("UTC") if first.tzinfo is None else first.tz_convert("UTC")
    return first.to_pydatetime() if first < pd.Timestamp(observed) else observed


def _flags(t: ibis.Table, cols: dict[str, str]) -> dict[str, ibis.Value]:
    """0/1 columns: failed, 4xx, validation, contract error, outcome logged, error_type logged."""
    zero = ibis.literal(0)
    http = t.http_status if "http_status" in cols else ibis.null("int32")
    etype = t.error_type if "error_type" in cols else ibis.null("string")
    is4xx = (http >= 400) & (http <= 499)
    validation = etype.lower().re_search(VALIDATION_PATTERN)
    if "status" in cols:
        failed = t.status == "error"
    else:
        failed = (http >= 400) | etype.notnull()
    contract = (is4xx & ~http.isin([408, 429])) | validation
    logged = functools.reduce(operator.or_, [t[c].notnull() for c in (
        "status", "http_status", "error_type") if c in cols])
    return {name: ibis.ifelse(expr.fill_null(False), 1, zero)
            for name, expr in (("_failed", failed), ("_4xx", is4xx), ("_validation", validation),
                               ("_contract", contract), ("_logged", logged),
                               ("_typed", etype.notnull()))}


def _table(groups: pd.DataFrame, first: pd.DataFrame, baseline: Window, announced: set
           ) -> pd.DataFrame:
    g = groups[groups["window"].notna()]
    agg = g.groupby(["window", "client_version"], dropna=False)[list(_COUNTS)].sum().reset_index()
    totals = agg.groupby("window")[["requests", "contract_errors"]].transform("sum")
    agg["traffic_share"] = agg["requests"] / totals["requests"]
    for count, rate in _RATES.items():
        agg[rate] = agg[count] / agg["requests"]
    with np.errstate(invalid="ignore", divide="ignore"):
        agg["error_share"] = np.where(totals["contract_errors"] > 0,
                                      agg["contract_errors"] / totals["contract_errors"].where(
                                          totals["contract_errors"] > 0, 1), 0.0)
    agg["lift"] = agg["error_share"] / agg["traffic_share"]
    seen = dict(zip(first["client_version"], first["first_seen"], strict=True))
    agg["first_seen"] = pd.to_datetime([seen.get(v, pd.NaT) for v in agg["client_version"]],
                                       utc=True)
    agg["new"] = (agg["first_seen"] >= pd.Timestamp(baseline.end)).fillna(False).astype(bool)
    agg["announced"] = agg["client_version"].isin(announced)
    agg["window"] = pd.Categorical(agg["window"], ["baseline", "incident"])
    agg = agg.sort_values(["window", "requests"], ascending=[True, False], ignore_index=True)
    agg["window"] = agg["window"].astype(str)
    return agg[["window", "client_version", "requests", "traffic_share", "errors", "error_rate",
                "http_4xx", "http_4xx_rate", "validation", "validation_rate", "contract_errors",
                "contract_error_rate", "error_share", "lift", "first_seen", "new", "announced"]]


def _timeline(groups: pd.DataFrame, width: timedelta) -> pd.DataFrame:
    tl = groups.groupby(["bucket_start", "client_version"], dropna=False).agg(
        requests=("requests", "sum"), contract_errors=("contract_errors", "sum"),
        first_error=("first_error", "min")).reset_index()
    tl["contract_error_rate"] = tl["contract_errors"] / tl["requests"]
    tl["bucket_end"] = tl["bucket_start"] + width
    return tl.sort_values(["bucket_start", "client_version"], ignore_index=True)[
        ["bucket_start", "bucket_end", "client_version", "requests", "contract_errors",
         "contract_error_rate", "first_error"]]


def _suspect(table: pd.DataFrame, min_errors: int) -> str | None:
    """The version with the most contract errors among those over-represented in them."""
    inc = table[(table["window"] == "incident") & (table["contract_errors"] >= min_errors)
                & table["client_version"].notna() & (table["lift"] > 1)]
    if inc.empty:
        return None
    return str(inc.sort_values(["contract_errors", "lift"], ascending=False)
               ["client_version"].iloc[0])


def _client_deploys(case: CaseView, baseline: Window, incident: Window) -> pd.DataFrame:
    ev = case.events
    columns = ["ts", "kind", "artifact", "version", "host", "detail"]
    if ev.empty:
        return pd.DataFrame(columns=columns)
    keep = ((ev["kind"] == "deploy") & (ev["artifact"] == "client")
            & (ev["ts"] >= pd.Timestamp(min(baseline.start, incident.start)))
            & (ev["ts"] < pd.Timestamp(incident.end)))
    return ev.loc[keep, columns].reset_index(drop=True)
