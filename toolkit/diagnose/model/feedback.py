"""Feedback and eval labels of a generative endpoint per model version, and refusals.

Recipes
-------
Generative requests of the windows (with ``input_tokens``, ``output_tokens`` or
``finish_reason``, and no ``prediction``: a classifier's labels are ground truth, read by
``model.performance``) are joined with their latest label (``labels``: user feedback or an eval
score per ``request_id``; :func:`~.._labels.latest_labels`) in the engine, and counted once
per time bucket, window and model version (count, sum and sum of squares of the label: the
window and timeline statistics are sums of these cells). The labels are read as one of two
kinds, decided from the values of the labels table (counted in the engine):

* **judgements**: every label is in :data:`GOOD` or :data:`BAD` (case-insensitive;
  ``good``/``bad``, ``thumbs_up``/``thumbs_down``, ``pass``/``fail``, ``1``/``0``, ...). The
  statistic is the *bad share* per window, model version and time bucket, with its 95% Wilson
  interval (:func:`~.._stats.wilson_interval`);
* **scores**: every label parses as a number (an eval score; higher is better). The statistic
  is the mean score with a normal 95% interval ``mean +- 1.96 sd / sqrt(n)`` (count, sum and
  sum of squares from the engine).

Anything else (free text, a mix of words and numbers) is not assessed, with the values named.

Refusals: the share of requests with ``finish_reason = 'content_filter'`` per window and model
version (all requests, not only labelled ones), with Wilson intervals.

"Worse on the same traffic": each model version serving in the incident with at least 30
labels is compared with the *reference*, the version with most labels in the baseline: on the
incident's requests when the reference still serves at least 30 of them there (a canary or an
A/B split: the same traffic), else on the baseline's. ``input_ratio`` (mean prompt tokens of
the version's requests over the reference's) shows whether the traffic matched.

Findings (ids and evidence keys, for the classifier's rules)
------------------------------------------------------------
``model.feedback_regression`` (pathway model): a version other than the reference is worse:
bad share at least 0.03 higher (two-proportion z-test p < 1e-3; high from 0.08), or mean score
lower by at least 0.2 pooled standard deviations (Welch p < 1e-3; high from 0.5). Statistic:
the difference (bad share points, or standardised score drop). Evidence: ``metric``
(``bad_share`` / ``score``), ``version``, ``reference_version``, ``value``,
``reference_value``, ``value_lo``, ``value_hi`` (the version's interval), ``labelled``,
``reference_labelled``, ``pvalue``, ``compared_in`` (``incident`` / ``baseline``),
``new_version`` (not serving in the baseline), ``first_seen``, ``input_ratio``.

``model.feedback_drop`` (pathway model): without a version column, or when one version serves
both windows, the incident is worse than the baseline by the same thresholds. Evidence:
``metric``, ``value_baseline``, ``value_incident``, ``value_lo``, ``value_hi``, ``pvalue``,
``labelled_baseline``, ``labelled_incident``.

``model.refusal_rise`` (pathway model): a version's (or, without versions, the incident's)
content_filter share at least 0.02 above the reference's (z-test p < 1e-3; high from 0.05).
Evidence: ``version`` (None without versions), ``reference_version``, ``share``,
``reference_share``, ``share_lo``, ``share_hi``, ``requests``, ``pvalue``, ``compared_in``.

Task: generative endpoints. Not assessed, with the reason, without labels (the refusal part
still runs on ``finish_reason``) and without ``finish_reason`` (the label part still runs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import ibis
import numpy as np
import pandas as pd
from scipy import stats

from toolkit._validation import check_windows
from toolkit.diagnose import _stats as st
from toolkit.diagnose._base import DiagnosticResult, Finding, NotAssessed
from toolkit.diagnose._case import CaseView, case_view, choose_bucket, within
from toolkit.diagnose._engine import Recorder, bucket_expr, window_label
from toolkit.diagnose._engines import CaseSource
from toolkit.diagnose._labels import latest_labels
from toolkit.types import Window

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["feedback", "FeedbackResult", "ID", "GOOD", "BAD"]

ID = "model.feedback"
GOOD = ("good", "thumbs_up", "up", "like", "pass", "positive", "accept", "accepted", "1",
        "true", "yes")
BAD = ("bad", "thumbs_down", "down", "dislike", "fail", "negative", "reject", "rejected", "0",
       "false", "no")
MIN_LABELS = 30
MIN_BAD_RISE = 0.03
MAJOR_BAD_RISE = 0.08
MIN_SCORE_DROP = 0.2
MAJOR_SCORE_DROP = 0.5
MIN_REFUSAL_RISE = 0.02
MAJOR_REFUSAL_RISE = 0.05
ALPHA = 1e-3
Z = 1.959964
_NONE = "(none)"
#: A request with one of these (and no ``prediction``) is generative: its label is feedback.
GENERATIVE_COLUMNS = ("input_tokens", "output_tokens", "finish_reason")


@dataclass(frozen=True, kw_only=True, repr=False)
class FeedbackResult(DiagnosticResult):
    """Feedback / eval quality and refusals per window, model version and time.

    Attributes
    ----------
    metric
        ``bad_share`` (judgement labels), ``score`` (numeric eval scores) or ``""``.
    table
        One row per window and ``model_version``: ``labelled``, ``bad`` (judgements) or
        ``sum``/``sum_sq`` (scores), ``value`` with ``value_lo``/``value_hi``,
        ``input_mean``, ``first_seen``.
    refusals
        Per window and ``model_version``: ``requests``, ``refused``, ``share`` with
        ``share_lo``/``share_hi``, ``input_mean``.
    timeline
        Per bucket and ``model_version``: ``labelled``, ``value``, ``value_lo``, ``value_hi``.
    """

    id = ID
    title = "Feedback and refusals per model version"

    metric: str = ""
    refusals: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    timeline: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    def headline(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if not self.table.empty:
            pooled = _pooled(self.table, self.metric)
            for w in ("baseline", "incident"):
                if w in pooled.index:
                    out[f"{self.metric.replace('_', ' ')} {w}"] = float(pooled.loc[w, "value"])
        if not self.refusals.empty:
            r = self.refusals.groupby("window")[["refused", "requests"]].sum()
            for w in ("baseline", "incident"):
                if w in r.index and r.loc[w, "requests"] > 0:
                    out[f"refusal share {w}"] = float(r.loc[w, "refused"] / r.loc[w, "requests"])
        return out

    def findings(self) -> list[Finding]:
        out = []
        if not self.table.empty:
            out += self._quality()
        if not self.refusals.empty:
            refusal = self._refusal()
            if refusal is not None:
                out.append(refusal)
        return out

    # ----- quality ---------------------------------------------------------------------
    def _worse(self, row: pd.Series, ref: pd.Series) -> tuple[float, float, str] | None:
        """(effect, p-value, severity) when ``row`` is worse than ``ref``, else None."""
        if self.metric == "bad_share":
            rise = row["value"] - ref["value"]
            _, p = st.two_proportion_z(ref["bad"], ref["labelled"], row["bad"], row["labelled"])
            if rise >= MIN_BAD_RISE and p < ALPHA:
                return float(rise), p, "high" if rise >= MAJOR_BAD_RISE else "medium"
            return None
        sd = np.sqrt((row["var"] + ref["var"]) / 2)
        drop = (ref["value"] - row["value"]) / sd if sd > 0 else (
            np.inf if ref["value"] > row["value"] else 0.0)
        if sd > 0:
            p = float(stats.ttest_ind_from_stats(ref["value"], np.sqrt(ref["var"]),
                                                 ref["labelled"], row["value"],
                                                 np.sqrt(row["var"]), row["labelled"],
                                                 equal_var=False).pvalue)
        else:
            p = 0.0 if drop > 0 else 1.0
        if drop >= MIN_SCORE_DROP and p < ALPHA:
            return float(drop), p, "high" if drop >= MAJOR_SCORE_DROP else "medium"
        return None

    def _quality(self) -> list[Finding]:
        t = self.table
        versions = t["model_version"].unique()
        if len(versions) > 1 or versions[0] != _NONE:
            found = self._version_regression()
            if found is not None:
                return [found]
            if t[t["window"] == "incident"]["model_version"].nunique() > 1 or \
                    set(t[t["window"] == "incident"]["model_version"]) != \
                    set(t[t["window"] == "baseline"]["model_version"]):
                return []
        pooled = _pooled(t, self.metric)
        if not {"baseline", "incident"} <= set(pooled.index):
            return []
        b, i = pooled.loc["baseline"], pooled.loc["incident"]
        if b["labelled"] < MIN_LABELS or i["labelled"] < MIN_LABELS:
            return []
        worse = self._worse(i, b)
        if worse is None:
            return []
        effect, p, severity = worse
        return [Finding(
            id="model.feedback_drop", pathway="model", severity=severity, statistic=effect,
            threshold=MIN_BAD_RISE if self.metric == "bad_share" else MIN_SCORE_DROP,
            summary=(f"{self._name()} went from {b['value']:.3g} to {i['value']:.3g} "
                     f"({int(i['labelled'])} labelled incident requests)."),
            evidence={"metric": self.metric, "value_baseline": float(b["value"]),
                      "value_incident": float(i["value"]), "value_lo": float(i["value_lo"]),
                      "value_hi": float(i["value_hi"]), "pvalue": p,
                      "labelled_baseline": int(b["labelled"]),
                      "labelled_incident": int(i["labelled"])},
            diagnostic=self.id)]

    def _name(self) -> str:
        return "share of bad feedback" if self.metric == "bad_share" else "mean eval score"

    def _reference(self, frame: pd.DataFrame, size: str) -> tuple[str, pd.Series] | None:
        base = frame[frame["window"] == "baseline"].sort_values(size, ascending=False)
        if base.empty:
            return None
        return str(base.iloc[0]["model_version"]), base.iloc[0]

    def _version_regression(self) -> Finding | None:
        t = self.table
        found = self._reference(t, "labelled")
        if found is None:
            return None
        reference, ref_base = found
        inc = t[t["window"] == "incident"].set_index("model_version")
        ref, compared_in = (inc.loc[reference], "incident") if reference in inc.index and \
            inc.loc[reference, "labelled"] >= MIN_LABELS else (ref_base, "baseline")
        worst = None
        for version, row in inc.iterrows():
            if version == reference or row["labelled"] < MIN_LABELS:
                continue
            worse = self._worse(row, ref)
            if worse is not None and (worst is None or worse[0] > worst[0]):
                worst = (*worse, version, row)
        if worst is None:
            return None
        effect, p, severity, version, row = worst
        new = version not in set(t[t["window"] == "baseline"]["model_version"])
        return Finding(
            id="model.feedback_regression", pathway="model", severity=severity,
            statistic=effect,
            threshold=MIN_BAD_RISE if self.metric == "bad_share" else MIN_SCORE_DROP,
            summary=(f"model {version}: {self._name()} {row['value']:.3g} against "
                     f"{ref['value']:.3g} for {reference} (on the {compared_in}'s traffic, "
                     f"{int(row['labelled'])} labels)."),
            evidence={"metric": self.metric, "version": str(version),
                      "reference_version": reference, "value": float(row["value"]),
                      "reference_value": float(ref["value"]),
                      "value_lo": float(row["value_lo"]), "value_hi": float(row["value_hi"]),
                      "labelled": int(row["labelled"]),
                      "reference_labelled": int(ref["labelled"]), "pvalue": p,
                      "compared_in": compared_in, "new_version": bool(new),
                      "first_seen": pd.Timestamp(row["first_seen"]),
                      "input_ratio": float(row["input_mean"] / ref["input_mean"])
                      if ref["input_mean"] > 0 else float("nan")},
            onset=pd.Timestamp(row["first_seen"]).to_pydatetime() if new else None,
            diagnostic=self.id)

    # ----- refusals --------------------------------------------------------------------
    def _refusal(self) -> Finding | None:
        r = self.refusals
        versions = set(r["model_version"])
        if versions == {_NONE}:
            pooled = r.groupby("window")[["refused", "requests"]].sum()
            if not {"baseline", "incident"} <= set(pooled.index):
                return None
            candidates = [(None, pooled.loc["incident"])]
            ref, reference, compared_in = pooled.loc["baseline"], None, "baseline"
        else:
            found = self._reference(r, "requests")
            if found is None:
                return None
            reference, ref_base = found
            inc = r[r["window"] == "incident"].set_index("model_version")
            ref, compared_in = (inc.loc[reference], "incident") if reference in inc.index \
                and inc.loc[reference, "requests"] >= MIN_LABELS else (ref_base, "baseline")
            candidates = [(v, row) for v, row in inc.iterrows()
                          if (v != reference or compared_in == "baseline")
                          and row["requests"] >= MIN_LABELS]
        best = None
        ref_share = ref["refused"] / ref["requests"] if ref["requests"] else np.nan
        for version, row in candidates:
            share = row["refused"] / row["requests"]
            _, p = st.two_proportion_z(ref["refused"], ref["requests"], row["refused"],
                                       row["requests"])
            rise = share - ref_share
            if rise >= MIN_REFUSAL_RISE and p < ALPHA and (best is None or rise > best[0]):
                best = (rise, p, version, row, share)
        if best is None:
            return None
        rise, p, version, row, share = best
        lo, hi = st.wilson_interval(np.array([row["refused"]]), np.array([row["requests"]]))
        who = f"model {version}" if version is not None else "the incident"
        return Finding(
            id="model.refusal_rise", pathway="model",
            severity="high" if rise >= MAJOR_REFUSAL_RISE else "medium",
            statistic=float(rise), threshold=MIN_REFUSAL_RISE,
            summary=(f"{who}: {share:.1%} of requests refused (content_filter) against "
                     f"{ref_share:.1%}" + (f" for {reference}" if reference else
                                           " in the baseline") + "."),
            evidence={"version": None if version is None else str(version),
                      "reference_version": reference, "share": float(share),
                      "reference_share": float(ref_share), "share_lo": float(lo[0]),
                      "share_hi": float(hi[0]), "requests": int(row["requests"]),
                      "pvalue": p, "compared_in": compared_in},
            diagnostic=self.id)

    def signals(self) -> pd.DataFrame:
        if self.timeline.empty:
            return super().signals()
        t = self.timeline.groupby("bucket_start", as_index=False).apply(
            lambda g: pd.Series({"value": np.average(g["value"], weights=g["labelled"])}),
            include_groups=False)
        t.insert(1, "signal", f"feedback.{self.metric}")
        return t

    def plot(self, ax: Axes | None = None, **kwargs: Any) -> Axes:
        """The quality metric per bucket and model version, with its interval band."""
        from toolkit.plotting import WINDOW_COLORS, axes

        ax = axes(ax, figsize=(10, 4))
        if self.timeline.empty:
            return super().plot(ax)
        for version, part in self.timeline.groupby("model_version"):
            ax.plot(part["bucket_start"], part["value"], label=str(version))
            ax.fill_between(part["bucket_start"], part["value_lo"], part["value_hi"],
                            alpha=0.15, lw=0)
        ax.axvspan(self.incident.start, self.incident.end, color=WINDOW_COLORS["incident"],
                   alpha=0.08, label="incident")
        ax.set_xlabel("request time (UTC)")
        ax.set_ylabel(self._name())
        ax.set_title("Feedback per model version")
        ax.legend(loc="upper left")
        return ax


def feedback(
    con: CaseSource,
    baseline: Window | str,
    incident: Window | str,
    /,
    *,
    bucket: timedelta | None = None,
    case: CaseView | None = None,
) -> FeedbackResult:
    """Feedback / eval labels and refusals per window, model version and time bucket, with
    intervals; findings when a version is worse than the reference.

    Parameters
    ----------
    con
        Case connection.
    baseline, incident
        The windows (``Window``, ``"START/END"`` or ``(start, end)``).
    bucket
        Timeline bucket width (default: about 240 buckets over the windows).
    case
        A :class:`~toolkit.diagnose._case.CaseView` to share between diagnostics.

    Examples
    --------
    >>> import pandas as pd, toolkit as tk
    >>> con = tk.connect()
    >>> ts = pd.date_range("2026-03-01", periods=400, freq="min", tz="UTC")
    >>> _ = tk.load(con, pd.DataFrame({"request_id": range(400), "ts": ts,
    ...     "model_version": ["v1"] * 200 + ["v2"] * 200, "output_tokens": 10}),
    ...     table="requests")
    >>> labels = ["good"] * 180 + ["bad"] * 20 + ["good"] * 120 + ["bad"] * 80
    >>> _ = tk.load(con, pd.DataFrame({"request_id": range(400), "label": labels}),
    ...             table="labels")
    >>> r = feedback(con, (ts[0], ts[200]), (ts[200], ts[-1] + pd.Timedelta("1min")))
    >>> f = r.findings()[0]
    >>> f.id, f.evidence["value"], f.evidence["reference_value"]
    ('model.feedback_regression', 0.4, 0.1)
    """
    baseline, incident = check_windows(baseline, incident)
    case = case or case_view(con)
    base = dict(baseline=baseline, incident=incident)
    if not case.has("requests"):
        return FeedbackResult(**base, not_assessed=(NotAssessed(ID, "the case has no requests"),))
    gaps = list(case.window_gaps(ID, baseline, incident))
    if gaps:
        return FeedbackResult(**base, not_assessed=tuple(gaps))
    columns = case.columns["requests"]
    record = Recorder(joins_as_written=True)
    span = Window(min(baseline.start, incident.start), max(baseline.end, incident.end))
    width = bucket or choose_bucket(span.duration)
    requests = case.table("requests")
    rows = requests.filter(within(requests.ts, span))
    version = rows.model_version.fill_null(_NONE) if "model_version" in columns else \
        ibis.literal(_NONE)
    rows = rows.mutate(_window=window_label(rows.ts, baseline, incident), _version=version,
                       _input=rows.input_tokens.cast("float64") if "input_tokens" in columns
                       else ibis.null("float64"))
    in_windows = rows.filter(rows._window.notnull())
    refusals = pd.DataFrame()
    if "finish_reason" in columns:
        per = record(in_windows.group_by(window=in_windows._window,
                                         model_version=in_windows._version).aggregate(
            requests=in_windows.count(),
            refused=(in_windows.finish_reason == "content_filter").cast("int64").sum(),
            input_mean=in_windows._input.mean()))
        lo, hi = st.wilson_interval(per["refused"].to_numpy(float),
                                    per["requests"].to_numpy(float))
        refusals = per.assign(share=per["refused"] / per["requests"], share_lo=lo, share_hi=hi)
    else:
        gaps.append(NotAssessed(f"{ID}:refusals", "requests carry no finish_reason"))
    metric, table, timeline = "", pd.DataFrame(), pd.DataFrame()
    if not case.has("labels"):
        gaps.append(NotAssessed(f"{ID}:labels", "the case has no labels (feedback or eval "
                                                "scores)"))
    elif not any(c in columns for c in GENERATIVE_COLUMNS):
        gaps.append(NotAssessed(f"{ID}:labels", "no generative request (none carries "
                                + ", ".join(GENERATIVE_COLUMNS) + "): the labels of a "
                                "classifier or a regression are model.performance's"))
    else:
        labels = latest_labels(case)
        generative = ibis.or_(*(rows[c].notnull() for c in GENERATIVE_COLUMNS if c in columns))
        if "prediction" in columns:
            generative = generative & rows.prediction.isnull()
        joined = rows.filter(generative).inner_join(labels, "request_id")
        metric, reason = _label_kind(record, case.table("labels"))
        if reason:
            gaps.append(NotAssessed(f"{ID}:labels", reason))
        else:
            table, timeline = _quality(record, joined, metric, width)
            for name in ("baseline", "incident"):
                if table.empty or name not in set(table["window"]):
                    gaps.append(NotAssessed(f"{ID}:labels", f"no labelled request in the "
                                                            f"{name} window"))
            if len(set(table["window"]) if not table.empty else ()) < 2:
                table = pd.DataFrame()
    return FeedbackResult(**base, metric=metric, table=table, refusals=refusals,
                          timeline=timeline, sql=record.sql, not_assessed=tuple(gaps))


def _one_of(value: ibis.StringValue, values: tuple[str, ...]) -> ibis.BooleanValue:
    """``value`` is one of ``values`` (NULL for NULL), as ``list_contains`` over a constant list.

    The same test as ``value IN (...)``, which DuckDB rewrites into a MARK join against the
    list once it is long (the eleven bad words): over the 2M labels of the 10M bench case that
    join cost more than the scalar test (the feedback query on the join, four runs each at a
    load average of 14-16: 1.64-1.91 against 1.52-1.65 CPU seconds).
    """
    return ibis.literal(list(values), type="array<string>").contains(value)


def _label_kind(record: Recorder, labels: ibis.Table) -> tuple[str, str]:
    """``(metric, "")`` or ``("", reason)`` from the label values (counted in the engine over
    the labels table: cheaper than over the join, and a case's labels are of one kind)."""
    label = labels.label.lower().strip()
    counts = record(labels.aggregate(
        n=labels.label.count(),
        judged=_one_of(label, GOOD + BAD).cast("int64").sum(),
        numeric=label.try_cast("float64").notnull().cast("int64").sum()))
    n, judged, numeric = (int(counts[c].iloc[0] or 0) for c in ("n", "judged", "numeric"))
    if n == 0:
        return "", "the labels table holds no label value"
    if judged == n:
        return "bad_share", ""
    if numeric == n:
        return "score", ""
    sample = record(labels.filter(~_one_of(label, GOOD + BAD) & label.try_cast("float64").isnull())
                    .select("label").distinct().order_by("label").limit(3))
    values = ", ".join(repr(v) for v in sample["label"])
    return "", (f"labels are neither good/bad judgements nor numeric eval scores (e.g. "
                f"{values})")


def _quality(record: Recorder, joined: ibis.Table, metric: str, width: timedelta
             ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Count, sum and sum of squares of the label per bucket, window and version (one scan
    of the join); the window table and the timeline are sums of these cells."""
    label = joined.label.lower().strip()
    y = _one_of(label, BAD).cast("float64") if metric == "bad_share" else \
        label.try_cast("float64")
    joined = joined.mutate(_y=y)
    cells = record(joined.group_by(bucket_start=bucket_expr(joined.ts, width),
                                   window=joined._window, model_version=joined._version)
                   .aggregate(labelled=joined._y.count(), sum=joined._y.sum(),
                              sum_sq=(joined._y * joined._y).sum(),
                              input_sum=(joined._input * joined._y.notnull().cast("float64"))
                              .sum(), input_n=(joined._input.notnull() & joined._y.notnull())
                              .cast("int64").sum(), first_seen=joined.ts.min()))
    cells = cells[cells["labelled"] > 0]

    def pool(keys: list[str]) -> pd.DataFrame:
        frame = cells.groupby(keys, as_index=False)[
            ["labelled", "sum", "sum_sq", "input_sum", "input_n"]].sum()
        frame = frame.merge(cells.groupby(keys, as_index=False)["first_seen"].min(), on=keys)
        with np.errstate(divide="ignore", invalid="ignore"):
            frame["input_mean"] = frame.pop("input_sum") / frame.pop("input_n").where(
                lambda n: n > 0)
        return _values(frame, metric)

    table = pool(["window", "model_version"]) if cells["window"].notna().any() else \
        pd.DataFrame(columns=["window", "model_version", "labelled"])
    timeline = pool(["bucket_start", "model_version"]).sort_values(
        ["bucket_start", "model_version"], ignore_index=True)
    return table, timeline


def _values(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """``value`` with its interval (and ``bad`` / ``var``) from count, sum and sum of squares."""
    frame = frame.copy()
    n = frame["labelled"].to_numpy(float)
    total = frame["sum"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = total / n
        if metric == "bad_share":
            frame["bad"] = total
            lo, hi = st.wilson_interval(total, n)
            var = mean * (1 - mean)
        else:
            var = np.where(n > 1, (frame["sum_sq"].to_numpy(float) - n * mean**2) / (n - 1),
                           np.nan)
            var = np.maximum(var, 0.0)
            half = Z * np.sqrt(var / n)
            lo, hi = mean - half, mean + half
    frame["value"], frame["value_lo"], frame["value_hi"], frame["var"] = mean, lo, hi, var
    return frame


def _pooled(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The table summed over versions, per window, with values and intervals."""
    weighted = table.assign(_in=table["input_mean"].fillna(0) * table["labelled"])
    sums = weighted.groupby("window")[["labelled", "sum", "sum_sq", "_in"]].sum()
    sums["input_mean"] = sums.pop("_in") / sums["labelled"]
    sums["first_seen"] = table.groupby("window")["first_seen"].min()
    return _values(sums.reset_index(), metric).set_index("window")
