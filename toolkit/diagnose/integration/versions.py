"""Which artifact versions served traffic together, against lineage (version skew).

Recipe
------
One aggregate query over ``requests`` groups the rows of the span covering both windows by
time bucket, window label and version combination (``model_version``, ``pipeline_version``,
``client_version``: the version columns that are logged) and returns requests, scored requests,
score sum, first and last request time. When ground truth exists (table ``labels``), a second
query joins the incident's requests with their labels (each request once, with its latest
label: the semantics of the ``labelled_predictions`` view, deduplicated after the join so the
cost follows the window) and counts labelled and correct predictions per combination. By
default (``accuracy=None``) it runs only when some incident traffic is on an unknown model x
pipeline pair, the only case where the findings use it. When the incident's known traffic has
fewer than 30 labels, a third query measures the same on the end of the baseline (as long as
the incident, at least a day) as the reference. Everything else is decided in Python on these
summaries (a few hundred rows). Mean scores are exact (sum of scores over scored requests).

**Known combinations.** With a ``lineage`` table, a combination is known when some lineage row
matches it on every version column that lineage fills (a NULL in a lineage row is a wildcard,
and so is a NULL in the request: an unlogged version cannot contradict lineage). Without
lineage, the combinations seen in the baseline window (at least one request) count as
known-good (DESIGN section 3). Version skew is judged on the **model x pipeline** pair only:
client versions roll out independently of model releases, so a new client version is reported
(``known`` is False for the full combination) but is not skew. A pair is *recombined* when its
model and its pipeline version are each known (in lineage, or in the baseline) but never
together: the signature of a partial rollback.

**Finding** ``integration.version_skew`` (statistic: share of incident requests served by an
unknown model x pipeline pair; threshold ``min_share``):

* it fires when that share is >= ``min_share`` (5%) and covers >= ``min_requests`` (50)
  requests;
* **high** when, in addition, the pair is *skew-shaped* (out of lineage, or recombined) and
  its traffic is *less accurate* (accuracy at least 5 points below the known traffic of the
  incident, else of the baseline, with >= 30 labelled requests on each side and a
  two-proportion z-test p < 0.01) or *more confident* (mean score >= 0.05 above the known
  traffic of the incident, else of the baseline when the incident has fewer than
  ``min_requests`` known scored requests); or when it
  *follows a rollback*: a ``rollback`` event of the model or pipeline in
  ``[incident.start - lookback, incident.end)`` that names a version of an unknown pair (an
  event without a version: that precedes the pair's first request) before the pair's last
  request, while the pair is skew-shaped or only one of the two artifacts was rolled back (a
  rollback that restores the old pair at the incident's end is no trigger). Without lineage a
  new model that is merely worse is a bad release (model pathway), not skew;
* **low** without lineage when no pair is recombined and each new pair has a model or
  pipeline version named by a ``deploy`` event in ``[incident.start - lookback,
  incident.end)``: a new pair that way is what a benign release looks like;
* **medium** otherwise (a pair out of lineage, or new and unannounced);
* **low**, whatever the above, when the incident's share exceeds the baseline's by less than
  ``min_share``: unknown pairs already served the baseline (lineage incomplete, or the baseline
  is not clean), so they are not what changed.

Onset: the first request of an unknown pair in the first bucket at or after the baseline's end
whose unknown-pair share is >= ``min_share``; the triggering rollback instead when one precedes
it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import ibis
import ibis.expr.datatypes as dt
import numpy as np
import pandas as pd

from toolkit._validation import check_windows
from toolkit.diagnose import _stats as st
from toolkit.diagnose._base import DiagnosticResult, Finding, NotAssessed, timeline_signals
from toolkit.diagnose._case import CaseView, case_view, choose_bucket, within
from toolkit.diagnose._engine import Recorder, bucket_expr, window_label
from toolkit.diagnose._engines import CaseSource
from toolkit.types import Window

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["version_matrix", "VersionMatrixResult", "ID", "VERSION_COLUMNS"]

ID = "integration.versions"
#: The version columns of a combination, in order.
VERSION_COLUMNS = ("model_version", "pipeline_version", "client_version")
_PAIR = ("model_version", "pipeline_version")
MIN_SHARE = 0.05
MIN_REQUESTS = 50
MIN_LABELLED = 30
ACCURACY_DROP = 0.05
SCORE_RISE = 0.05
ACCURACY_PVALUE = 0.01


@ibis.udf.agg.builtin(name="arg_max")
def _arg_max(arg: str, key: dt.float64) -> str:
    """DuckDB ``arg_max(arg, key)``: ``arg`` on the row with the largest ``key``."""


@dataclass(frozen=True, kw_only=True, repr=False)
class VersionMatrixResult(DiagnosticResult):
    """Traffic per version combination against lineage, per window and over time.

    Attributes
    ----------
    table
        One row per window and combination: ``window``, ``model_version``,
        ``pipeline_version``, ``client_version``, ``requests``, ``share`` (of the window's
        requests), ``scored`` (requests with a score), ``mean_score``, ``labelled``,
        ``correct``, ``accuracy`` (incident rows; baseline rows only when the end of the
        baseline served as the accuracy reference; 0 / NaN otherwise),
        ``first_seen``, ``last_seen`` (within the window), ``in_baseline``, ``known`` (full
        combination), ``known_pair`` (model x pipeline), ``recombined``.
    pairs
        The same per window and model x pipeline pair (``window``, ``model_version``,
        ``pipeline_version``, ``requests``, ``share``, ``scored``, ``mean_score``,
        ``labelled``, ``correct``, ``accuracy``, ``known_pair``, ``in_baseline``,
        ``recombined``, ``first_seen``, ``last_seen``).
    timeline
        Per time bucket: ``bucket_start``, ``bucket_end``, ``requests``, ``skew_share`` (share
        on unknown model x pipeline pairs), ``unknown_share`` (share on unknown full
        combinations), ``first_unknown`` (first request on an unknown pair).
    pair_timeline
        Per time bucket and pair: ``bucket_start``, ``pair``, ``known_pair``, ``share``.
    events
        Model and pipeline ``deploy`` / ``rollback`` events from the baseline's start (or
        ``lookback`` before the incident) to the incident's end.
    known_source
        ``lineage`` or ``baseline``: what "known" was judged against.
    """

    id = ID
    title = "Version matrix"

    known_source: str = ""
    columns: tuple[str, ...] = ()
    lookback: timedelta = timedelta(hours=24)
    min_share: float = MIN_SHARE
    min_requests: int = MIN_REQUESTS
    pairs: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    timeline: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    pair_timeline: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    events: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    # -- headline numbers -------------------------------------------------------------------
    def skew_share(self, window: str = "incident") -> float:
        """Share of the window's requests served by an unknown model x pipeline pair."""
        rows = self._pairs(window)
        total = rows["requests"].sum()
        return float(rows.loc[~rows["known_pair"], "requests"].sum() / total) if total else \
            float("nan")

    def unknown_share(self, window: str = "incident") -> float:
        """Share of the window's requests served by an unknown full combination."""
        rows = self.table[self.table["window"] == window] if not self.table.empty else self.table
        total = rows["requests"].sum() if len(rows) else 0
        return float(rows.loc[~rows["known"], "requests"].sum() / total) if total else \
            float("nan")

    def _pairs(self, window: str) -> pd.DataFrame:
        if self.pairs.empty:
            return self.pairs.assign(requests=pd.Series(dtype=float),
                                     known_pair=pd.Series(dtype=bool))
        return self.pairs[self.pairs["window"] == window]

    def rollbacks(self) -> pd.DataFrame:
        """Model / pipeline rollback events in ``[incident.start - lookback, incident.end)``."""
        if self.events.empty:
            return self.events
        ev = self.events
        start = pd.Timestamp(self.incident.start - self.lookback)
        return ev[(ev["kind"] == "rollback") & (ev["ts"] >= start)
                  & (ev["ts"] < pd.Timestamp(self.incident.end))]

    def _triggering_rollbacks(self, unknown: pd.DataFrame) -> pd.DataFrame:
        """Rollbacks that put in place a version of an unknown pair which then served traffic
        (a rollback that ends the incident by restoring the old pair is not one)."""
        ev = self.rollbacks()
        if ev.empty or unknown.empty:
            return ev
        keep = np.zeros(len(ev), dtype=bool)
        for k, e in enumerate(ev.itertuples()):
            for u in unknown.itertuples():
                named = e.version in (u.model_version, u.pipeline_version) if isinstance(
                    e.version, str) else e.ts <= u.first_seen
                if named and e.ts <= u.last_seen:
                    keep[k] = True
        return ev[keep]

    def headline(self) -> dict[str, Any]:
        if self.table.empty:
            return {}
        unknown = self._pairs("incident")
        return {
            "known from": self.known_source,
            "skew share baseline": self.skew_share("baseline"),
            "skew share incident": self.skew_share("incident"),
            "unknown combination share incident": self.unknown_share("incident"),
            "unknown pairs in incident": int((~unknown["known_pair"]).sum()),
            "rollback events": len(self.rollbacks()),
        }

    # -- findings ---------------------------------------------------------------------------
    def findings(self) -> list[Finding]:
        if self.pairs.empty:
            return []
        inc = self._pairs("incident")
        total = float(inc["requests"].sum())
        unknown = inc[~inc["known_pair"]]
        n_unknown = float(unknown["requests"].sum())
        share = n_unknown / total if total else 0.0
        base_share = self.skew_share("baseline")
        base_share = 0.0 if np.isnan(base_share) else base_share
        if not (share >= self.min_share and n_unknown >= self.min_requests):
            return []
        quality = self._quality(inc)
        lineage = self.known_source == "lineage"
        recombined = bool(unknown["recombined"].any())
        rollbacks = self._triggering_rollbacks(unknown)
        rolled = set(self.rollbacks()["artifact"].dropna()) & {"model", "pipeline"}
        partial = len(rolled) == 1
        triggered = not rollbacks.empty
        # out of lineage, or two known versions never served together: skew-shaped pairs
        skew_shaped = lineage or recombined
        confident = quality["more_confident"] and skew_shaped
        less = quality["less_accurate"] and skew_shaped
        after_rollback = triggered and (skew_shaped or partial)
        released = not skew_shaped and self._released(unknown)
        if share - base_share < self.min_share:
            severity = "low"
        elif less or confident or after_rollback:
            severity = "high"
        elif released:
            severity = "low"
        else:
            severity = "medium"
        top = unknown.sort_values("requests", ascending=False)
        pairs = [{"model_version": r.model_version, "pipeline_version": r.pipeline_version,
                  "requests": int(r.requests), "share": float(r.share),
                  "mean_score": float(r.mean_score), "accuracy": float(r.accuracy),
                  "recombined": bool(r.recombined), "in_baseline": bool(r.in_baseline)}
                 for r in top.head(5).itertuples()]
        named = ", ".join(f"{p['model_version']} x {p['pipeline_version']}" for p in pairs[:2])
        reasons = [text for flag, text in (
            (quality["less_accurate"], "less accurate"), (quality["more_confident"],
                                                          "more confident"),
            (after_rollback, "after a rollback")) if flag]
        summary = (f"{share:.1%} of incident requests were served by model x pipeline pairs "
                   f"{'out of lineage' if lineage else 'never seen in the baseline'} ({named})"
                   + (f", {' and '.join(reasons)}" if reasons else "") + ".")
        if severity == "low" and share - base_share < self.min_share:
            summary += f" The baseline already had {base_share:.1%} on unknown pairs."
        elif severity == "low":
            summary += " Each new pair was announced by a deploy event: consistent with a release."
        return [Finding(
            id="integration.version_skew", pathway="integration", severity=severity,
            statistic=share, threshold=self.min_share, summary=summary,
            evidence={"known_source": self.known_source, "baseline_share": base_share,
                      "unknown_requests": int(n_unknown), "pairs": pairs,
                      "recombined": recombined, "partial_rollback": partial,
                      "announced_release": released,
                      "rollback_events": [
                          {"ts": e.ts, "artifact": e.artifact, "version": e.version}
                          for e in rollbacks.itertuples()],
                      **{k: v for k, v in quality.items()}},
            onset=self._trigger_onset(rollbacks, self._onset()), diagnostic=self.id,
        )]

    def _released(self, unknown: pd.DataFrame) -> bool:
        """Whether every unknown pair has a model or pipeline version named by a ``deploy``
        event in ``[incident.start - lookback, incident.end)``."""
        ev = self.events
        if ev.empty or unknown.empty:
            return False
        start = pd.Timestamp(self.incident.start - self.lookback)
        deployed = set(ev.loc[(ev["kind"] == "deploy") & (ev["ts"] >= start)
                              & (ev["ts"] < pd.Timestamp(self.incident.end)), "version"].dropna())
        return all(r.model_version in deployed or r.pipeline_version in deployed
                   for r in unknown.itertuples())

    def _quality(self, inc: pd.DataFrame) -> dict[str, Any]:
        """Score and accuracy of the unknown traffic against the known traffic."""
        unknown, known = inc[~inc["known_pair"]], inc[inc["known_pair"]]
        base = self._pairs("baseline")
        base = base[base["known_pair"]] if len(base) else base
        ref = known if _scored(known) >= self.min_requests else base
        score_u, score_k = _mean_score(unknown), _mean_score(ref)
        lab_ref = known if known["labelled"].sum() >= MIN_LABELLED else base
        k_u, n_u = _correct(unknown), float(unknown["labelled"].sum())
        k_k, n_k = _correct(lab_ref), float(lab_ref["labelled"].sum()) if len(lab_ref) else 0.0
        acc_u = k_u / n_u if n_u else float("nan")
        acc_k = k_k / n_k if n_k else float("nan")
        p = float("nan")
        less = False
        if n_u >= MIN_LABELLED and n_k >= MIN_LABELLED:
            _, p = st.two_proportion_z(k_k, n_k, k_u, n_u)
            less = bool(acc_k - acc_u >= ACCURACY_DROP and p < ACCURACY_PVALUE)
        more = bool(score_u - score_k >= SCORE_RISE) if not (
            np.isnan(score_u) or np.isnan(score_k)) else False
        return {"mean_score_unknown": score_u, "mean_score_known": score_k,
                "more_confident": more, "accuracy_unknown": acc_u, "accuracy_known": acc_k,
                "labelled_unknown": int(n_u), "labelled_known": int(n_k),
                "accuracy_pvalue": p, "less_accurate": less}

    @staticmethod
    def _trigger_onset(rollbacks: pd.DataFrame, observed: datetime | None) -> datetime | None:
        """The triggering rollback, when it precedes the observed onset; else the latter."""
        if rollbacks.empty:
            return observed
        before = rollbacks if observed is None else rollbacks[
            rollbacks["ts"] <= pd.Timestamp(observed)]
        return observed if before.empty else pd.Timestamp(before["ts"].max()).to_pydatetime()

    def _onset(self) -> datetime | None:
        tl = self.timeline
        if tl.empty:
            return None
        after = tl[(tl["bucket_start"] >= pd.Timestamp(self.baseline.end))
                   | (tl["bucket_end"] > pd.Timestamp(self.baseline.end))]
        after = after[after["bucket_start"] < pd.Timestamp(self.incident.end)]
        hits = after[after["skew_share"] >= self.min_share]
        if hits.empty:
            return None
        first = hits.iloc[0]
        return pd.Timestamp(first["first_unknown"]).to_pydatetime()

    # -- time series and figure -------------------------------------------------------------
    def signals(self) -> pd.DataFrame:
        return timeline_signals(self.timeline, ["skew_share", "unknown_share"], "versions.")

    def plot(self, ax: Axes | None = None, **kwargs: Any) -> Axes:
        """Share of traffic per model x pipeline pair over time; unknown pairs dashed."""
        from toolkit.plotting import WINDOW_COLORS, axes

        ax = axes(ax, figsize=(10, 4))
        if self.pair_timeline.empty:
            return super().plot(ax)
        import seaborn as sns

        data = self.pair_timeline.assign(
            status=np.where(self.pair_timeline["known_pair"], "known", "unknown"))
        sns.lineplot(data=data, x="bucket_start", y="share", hue="pair", style="status",
                     style_order=["known", "unknown"], ax=ax)
        for e in self.events.itertuples():
            ax.axvline(e.ts, color="#8C8C8C" if e.kind == "deploy" else "#C44E52", lw=1,
                       ls=":")
            ax.annotate(f"{e.kind} {e.artifact} {e.version or ''}", (e.ts, 1.0), rotation=90,
                        fontsize=7, va="top", ha="right", xycoords=("data", "axes fraction"))
        ax.axvspan(self.incident.start, self.incident.end, color=WINDOW_COLORS["incident"],
                   alpha=0.08, label="incident")
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("time (UTC)")
        ax.set_ylabel("share of requests")
        ax.set_title(f"Model x pipeline versions (known from {self.known_source})")
        ax.legend(loc="center left", fontsize=7)
        return ax


def version_matrix(
    con: CaseSource,
    baseline: Window | str,
    incident: Window | str,
    /,
    *,
    min_share: float = MIN_SHARE,
    min_requests: int = MIN_REQUESTS,
    lookback: timedelta = timedelta(hours=24),
    accuracy: bool | None = None,
    bucket: timedelta | None = None,
    case: CaseView | None = None,
) -> VersionMatrixResult:
    """Requests per version combination against lineage (or the baseline), with quality.

    Parameters
    ----------
    con
        Case connection.
    baseline, incident
        The windows to compare.
    min_share, min_requests
        Materiality of unknown model x pipeline traffic (see the module docstring).
    lookback
        How long before the incident a rollback event still counts.
    accuracy
        Join the labels for accuracy per combination of the incident. ``None`` (default) does
        it when it can matter: when some incident traffic is on an unknown model x pipeline
        pair (the join is the diagnostic's most expensive query).
    bucket
        Timeline bucket width (default: :func:`~toolkit.diagnose._case.choose_bucket`).
    case
        Shared case view.

    Returns
    -------
    VersionMatrixResult

    Examples
    --------
    >>> import pandas as pd, toolkit as tk
    >>> con = tk.connect()
    >>> ts = pd.date_range("2026-03-01", periods=400, freq="min", tz="UTC")
    >>> model = ["m2"] * 200 + ["m1"] * 200      # the model was rolled back, the pipeline not
    >>> _ = tk.load(con, pd.DataFrame({"request_id": range(400), "ts": ts,
    ...     "model_version": model, "pipeline_version": "p2", "score": 0.7}), table="requests")
    >>> _ = tk.load(con, pd.DataFrame({"release": ["r1", "r2"], "model_version": ["m1", "m2"],
    ...     "pipeline_version": ["p1", "p2"]}), table="lineage")
    >>> _ = tk.load(con, pd.DataFrame({"ts": [ts[200]], "kind": ["rollback"],
    ...     "artifact": ["model"], "version": ["m1"]}), table="events")
    >>> result = version_matrix(con, (ts[0], ts[200]), (ts[200], ts[-1]))
    >>> result.skew_share("incident"), result.findings()[0].severity
    (1.0, 'high')
    """
    baseline, incident = check_windows(baseline, incident)
    case = case or case_view(con)
    base = dict(baseline=baseline, incident=incident, lookback=lookback, min_share=min_share,
                min_requests=min_requests)
    if not case.has("requests", "model_version"):
        return VersionMatrixResult(**base, not_assessed=(
            NotAssessed(ID, "no requests with a model_version column"),))
    columns = tuple(c for c in VERSION_COLUMNS if c in case.columns["requests"])
    record = Recorder()
    span = Window(min(baseline.start, incident.start), max(baseline.end, incident.end))
    width = bucket or choose_bucket(span.duration)
    raw = case.table("requests")
    raw = raw.filter(within(raw.ts, span))
    has = case.columns["requests"]
    t = raw.select(
        "ts", *columns,
        _window=window_label(raw.ts, baseline, incident),
        bucket_start=bucket_expr(raw.ts, width),
        score=raw.score if "score" in has else ibis.null("float64"))
    groups = record(t.group_by(["bucket_start", "_window", *columns]).aggregate(
        requests=t.count(), scored=t.score.count(), score_sum=t.score.sum(),
        first_seen=t.ts.min(), last_seen=t.ts.max()))
    groups = groups.rename(columns={"_window": "window"})
    for c in VERSION_COLUMNS:
        if c not in groups:
            groups[c] = None
    groups[list(VERSION_COLUMNS)] = groups[list(VERSION_COLUMNS)].astype(object).where(
        groups[list(VERSION_COLUMNS)].notna(), None)
    windows = set(groups["window"].dropna())
    if windows != {"baseline", "incident"}:
        missing = ", ".join(sorted({"baseline", "incident"} - windows))
        return VersionMatrixResult(**base, sql=record.sql, not_assessed=(
            NotAssessed(ID, f"no requests in the {missing} window"),))
    logged = [c for c in VERSION_COLUMNS if groups[c].notna().any()]
    gaps = []
    if "model_version" not in logged:
        return VersionMatrixResult(**base, sql=record.sql, not_assessed=(
            NotAssessed(ID, "model_version is not logged in the requests of the windows"),))
    if "pipeline_version" not in logged:
        gaps.append(NotAssessed(f"{ID}.pipeline", "pipeline_version is not logged: version "
                                "skew is judged on model versions alone"))

    lineage = case.lineage
    lineage_cols = [c for c in logged if c in lineage and lineage[c].notna().any()]
    known_source = "lineage" if lineage_cols else "baseline"
    if len(lineage) and not lineage_cols:
        gaps.append(NotAssessed(f"{ID}.lineage", "lineage names none of the logged version "
                                "columns: combinations seen in the baseline count as known"))
    elif not len(lineage):
        gaps.append(NotAssessed(f"{ID}.lineage", "no lineage: combinations seen in the "
                                "baseline count as known-good"))

    table = _combination_table(groups)
    judge = _Judge(table, lineage, lineage_cols, logged)
    pair_cols = [c for c in _PAIR if c in logged]
    table["known"] = [judge.known(r, logged) for r in table.itertuples()]
    table["known_pair"] = [judge.known(r, pair_cols) for r in table.itertuples()]
    table["recombined"] = [(not kp) and judge.recombined(r)
                           for r, kp in zip(table.itertuples(), table["known_pair"], strict=True)]
    incident_unknown = bool((~table.loc[table["window"] == "incident", "known_pair"]).any())
    if accuracy is None:
        accuracy = incident_unknown
    has_labels = case.has("labels", "request_id", "label")
    if accuracy:
        labelled = _labelled(case, columns, record, incident, "incident")
        if labelled is not None:
            table = _with_accuracy(table, labelled)
            inc = table[table["window"] == "incident"]
            if (inc.loc[inc["known_pair"], "labelled"].sum() < MIN_LABELLED
                    and inc.loc[~inc["known_pair"], "labelled"].sum() >= MIN_LABELLED):
                # too few labels on known traffic in the incident: the end of the baseline is
                # the reference
                reference = _reference_window(baseline, incident)
                base_labelled = _labelled(case, columns, record, reference, "baseline")
                if base_labelled is not None:
                    table = _with_accuracy(table, pd.concat([labelled, base_labelled]))
                    gaps.append(NotAssessed(f"{ID}.baseline_accuracy", "baseline accuracy is "
                                            f"measured on {reference} only (the reference "
                                            "for the incident's unknown traffic)"))
        else:
            gaps.append(NotAssessed(f"{ID}.accuracy", "no labelled predictions in the "
                                    "incident: accuracy per combination not assessed"))
    elif has_labels:
        gaps.append(NotAssessed(f"{ID}.accuracy", "skipped: every incident request was served "
                                "by a known model x pipeline pair (accuracy=True computes it)"))
    else:
        gaps.append(NotAssessed(f"{ID}.accuracy", "no labels: accuracy per combination not "
                                "assessed"))
    pairs = _pair_table(table)
    timeline, pair_timeline = _timelines(groups, judge, logged, width)
    events = _artifact_events(case, baseline, incident, lookback)
    table = table[["window", *VERSION_COLUMNS, "requests", "share", "scored", "mean_score",
                   "labelled", "correct", "accuracy", "first_seen", "last_seen", "in_baseline",
                   "known", "known_pair", "recombined"]]
    return VersionMatrixResult(**base, table=table, pairs=pairs, timeline=timeline,
                               pair_timeline=pair_timeline, events=events,
                               known_source=known_source, columns=tuple(logged),
                               sql=record.sql, not_assessed=tuple(gaps))


def _labelled(case: CaseView, columns: tuple[str, ...], record: Recorder, window: Window,
              name: str) -> pd.DataFrame | None:
    """Labelled and correct predictions per combination of ``window`` (None without labels).

    Each request counts once, with its latest label (``arg_max`` on ``labeled_at``, a NULL
    ``labeled_at`` being the oldest: the semantics of the ``labelled_predictions`` view). The
    window's requests are joined first and the labels deduplicated after the join, so the cost
    follows the window's size, not the labels table's.
    """
    if not (case.has("labels", "request_id", "label") and "prediction" in case.columns[
            "requests"]):
        return None
    requests = case.table("requests")
    rows = requests.filter(within(requests.ts, window) & requests.prediction.notnull()).select(
        "request_id", "prediction", *columns)
    labels = case.table("labels")
    order = (labels.labeled_at.epoch_seconds().cast("float64").fill_null(-1.0)
             if "labeled_at" in case.columns["labels"] else ibis.literal(0.0))
    labels = labels.filter(labels.label.notnull()).select("request_id", "label", _order=order)
    joined = rows.inner_join(labels, "request_id")
    latest = joined.group_by("request_id").aggregate(
        prediction=joined.prediction.arbitrary(),
        label=_arg_max(joined.label, joined._order),
        **{c: joined[c].arbitrary() for c in columns})
    frame = record(latest.group_by(list(columns)).aggregate(
        labelled=latest.count(),
        correct=(latest.prediction == latest.label).cast("int64").sum()))
    if frame.empty:
        return None
    frame.insert(0, "window", name)
    return frame


def _reference_window(baseline: Window, incident: Window) -> Window:
    """The end of the baseline: as long as the incident, at least a day (within the baseline)."""
    length = max(incident.duration, timedelta(days=1))
    return Window(max(baseline.start, baseline.end - length), baseline.end)


def _key(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    """A hashable key per row (NULL versions kept distinct from any string)."""
    return pd.Series(list(zip(*(frame[c].where(frame[c].notna(), None) for c in columns),
                              strict=True)), index=frame.index, dtype=object) if columns \
        else pd.Series([()] * len(frame), index=frame.index, dtype=object)


def _combination_table(groups: pd.DataFrame) -> pd.DataFrame:
    cols = list(VERSION_COLUMNS)
    g = groups[groups["window"].notna()].copy()
    g["_key"] = _key(g, cols)
    agg = g.groupby(["window", "_key"], sort=False).agg(
        requests=("requests", "sum"), scored=("scored", "sum"), score_sum=("score_sum", "sum"),
        first_seen=("first_seen", "min"), last_seen=("last_seen", "max")).reset_index()
    for k, c in enumerate(cols):
        agg[c] = [key[k] for key in agg["_key"]]
    totals = agg.groupby("window")["requests"].transform("sum")
    agg["share"] = agg["requests"] / totals
    with np.errstate(invalid="ignore", divide="ignore"):
        agg["mean_score"] = np.where(agg["scored"] > 0, agg["score_sum"] / agg["scored"].where(
            agg["scored"] > 0, 1), np.nan)
    agg["labelled"] = 0
    agg["correct"] = 0
    agg["accuracy"] = np.nan
    agg["window"] = pd.Categorical(agg["window"], ["baseline", "incident"])
    agg = agg.sort_values(["window", "requests"], ascending=[True, False], ignore_index=True)
    agg["window"] = agg["window"].astype(str)
    in_base = set(agg.loc[agg["window"] == "baseline", "_key"])
    agg["in_baseline"] = agg["_key"].isin(in_base)
    return agg


def _with_accuracy(table: pd.DataFrame, labelled: pd.DataFrame) -> pd.DataFrame:
    """Add labelled / correct counts and accuracy per window and combination."""
    cols = list(VERSION_COLUMNS)
    lab = labelled.copy()
    for c in cols:
        if c not in lab:
            lab[c] = None
    lab["_key"] = _key(lab, cols)
    lab = lab.groupby(["window", "_key"], sort=False)[["labelled", "correct"]].sum()
    out = table.copy()
    merged = out.set_index(["window", "_key"]).join(lab, rsuffix="_l")
    out["labelled"] = merged["labelled_l"].fillna(0).astype("int64").to_numpy()
    out["correct"] = merged["correct_l"].fillna(0).astype("int64").to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        out["accuracy"] = np.where(out["labelled"] > 0, out["correct"] / out["labelled"].where(
            out["labelled"] > 0, 1), np.nan)
    return out


class _Judge:
    """Decides whether a combination is known (lineage with wildcards, else the baseline)."""

    def __init__(self, table: pd.DataFrame, lineage: pd.DataFrame, lineage_cols: list[str],
                 logged: list[str]) -> None:
        self.lineage_cols = lineage_cols
        self.lineage = lineage[lineage_cols].astype(object).where(
            lineage[lineage_cols].notna(), None) if lineage_cols else None
        base = table[table["window"] == "baseline"]
        self.base_keys: dict[tuple[str, ...], set] = {}
        self._base = base
        self.logged = logged

    def _base_set(self, cols: tuple[str, ...]) -> set:
        if cols not in self.base_keys:
            self.base_keys[cols] = set(_key(self._base, list(cols)))
        return self.base_keys[cols]

    def known(self, row: Any, cols: list[str]) -> bool:
        values = {c: getattr(row, c) for c in cols}
        if self.lineage is not None:
            check = [c for c in cols if c in self.lineage_cols]
            if check:
                return self._in_lineage(values, check)
        return tuple(values[c] for c in cols) in self._base_set(tuple(cols))

    def _in_lineage(self, values: dict[str, Any], cols: list[str]) -> bool:
        ok = np.ones(len(self.lineage), dtype=bool)
        for c in cols:
            v = values[c]
            if v is None:
                continue
            col = self.lineage[c]
            ok &= (col.isna() | (col == v)).to_numpy()
        return bool(ok.any())

    def recombined(self, row: Any) -> bool:
        """Model and pipeline each known, but not together."""
        cols = [c for c in _PAIR if c in self.logged]
        if len(cols) < 2 or any(getattr(row, c) is None for c in cols):
            return False
        return all(self.known(row, [c]) for c in cols)

    def known_many(self, frame: pd.DataFrame, cols: list[str]) -> np.ndarray:
        cache: dict[tuple, bool] = {}
        out = np.empty(len(frame), dtype=bool)
        for k, row in enumerate(frame[cols].itertuples(index=False)):
            key = tuple(None if pd.isna(v) else v for v in row)
            if key not in cache:
                cache[key] = self.known(_Row(dict(zip(cols, key, strict=True))), cols)
            out[k] = cache[key]
        return out


class _Row:
    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


def _pair_table(table: pd.DataFrame) -> pd.DataFrame:
    keys = ["window", *_PAIR]
    out = table.groupby(keys, sort=False, dropna=False).agg(
        requests=("requests", "sum"), share=("share", "sum"), score_sum=("score_sum", "sum"),
        scored=("scored", "sum"), labelled=("labelled", "sum"), correct=("correct", "sum"),
        known_pair=("known_pair", "first"), in_baseline=("in_baseline", "any"),
        recombined=("recombined", "first"), first_seen=("first_seen", "min"),
        last_seen=("last_seen", "max")).reset_index()
    with np.errstate(invalid="ignore", divide="ignore"):
        out["mean_score"] = np.where(out["scored"] > 0, out["score_sum"] / out["scored"], np.nan)
        out["accuracy"] = np.where(out["labelled"] > 0, out["correct"] / out["labelled"],
                                   np.nan)
    # a pair is in the baseline when any of its combinations is
    base_pairs = set(_key(out[out["window"] == "baseline"], list(_PAIR)))
    out["in_baseline"] = _key(out, list(_PAIR)).isin(base_pairs)
    return out[[*keys, "requests", "share", "scored", "mean_score", "labelled", "correct",
                "accuracy", "known_pair", "in_baseline", "recombined", "first_seen",
                "last_seen"]]


def _timelines(groups: pd.DataFrame, judge: _Judge, logged: list[str], width: timedelta
               ) -> tuple[pd.DataFrame, pd.DataFrame]:
    g = groups.copy()
    pair_cols = [c for c in _PAIR if c in logged]
    g["known_pair"] = judge.known_many(g, pair_cols)
    g["known"] = judge.known_many(g, logged)
    g["_unknown_pair_n"] = np.where(g["known_pair"], 0, g["requests"])
    g["_unknown_n"] = np.where(g["known"], 0, g["requests"])
    g["_first_unknown"] = g["first_seen"].where(~g["known_pair"])
    tl = g.groupby("bucket_start").agg(
        requests=("requests", "sum"), unknown_pair=("_unknown_pair_n", "sum"),
        unknown=("_unknown_n", "sum"), first_unknown=("_first_unknown", "min")).reset_index()
    tl["skew_share"] = tl["unknown_pair"] / tl["requests"]
    tl["unknown_share"] = tl["unknown"] / tl["requests"]
    tl["bucket_end"] = tl["bucket_start"] + width
    tl = tl.sort_values("bucket_start", ignore_index=True)
    tl = tl[["bucket_start", "bucket_end", "requests", "skew_share", "unknown_share",
             "first_unknown"]]
    g["pair"] = [" x ".join(str(v) for v in key) for key in _key(g, list(_PAIR))]
    pt = g.groupby(["bucket_start", "pair"]).agg(
        requests=("requests", "sum"), known_pair=("known_pair", "first")).reset_index()
    pt["share"] = pt["requests"] / pt.groupby("bucket_start")["requests"].transform("sum")
    return tl, pt.sort_values(["bucket_start", "pair"], ignore_index=True)


def _artifact_events(case: CaseView, baseline: Window, incident: Window, lookback: timedelta
                     ) -> pd.DataFrame:
    ev = case.events
    columns = ["ts", "kind", "artifact", "version", "host", "detail"]
    if ev.empty:
        return pd.DataFrame(columns=columns)
    start = pd.Timestamp(min(baseline.start, incident.start - lookback))
    keep = (ev["kind"].isin(["deploy", "rollback"]) & ev["artifact"].isin(["model", "pipeline"])
            & (ev["ts"] >= start) & (ev["ts"] < pd.Timestamp(incident.end)))
    return ev.loc[keep, columns].reset_index(drop=True)


def _scored(frame: pd.DataFrame) -> float:
    return float(frame["scored"].sum()) if len(frame) else 0.0


def _mean_score(frame: pd.DataFrame) -> float:
    """Mean score over the scored requests of the rows (exact: sum of sums / sum of counts)."""
    n = _scored(frame)
    if not n:
        return float("nan")
    return float((frame["mean_score"].fillna(0.0) * frame["scored"]).sum() / n)


def _correct(frame: pd.DataFrame) -> float:
    return float(frame["correct"].sum()) if len(frame) else 0.0
