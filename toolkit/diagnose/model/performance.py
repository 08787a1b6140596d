"""Realised model quality from delayed labels: accuracy, precision, recall, F1 over time.

Recipe: requests are joined with their latest label (view ``labelled_predictions``); requests
without a prediction (failed requests) are left out. A prediction is correct when it equals the
label (class labels compare as text; the loader writes
integral numbers without a decimal part). Precision, recall and F1 are for the positive class
(``positive``; by default a conventional token such as ``1``/``true``, else the rarer label).
Intervals are Wilson score intervals (95%). Label coverage is labelled / all requests in the
window; label delay is ``labeled_at - ts`` (approximate quantiles).

Binary tasks with a ``score`` also get **ROC AUC** and **PR AUC**, exact: the engine groups
the labelled predictions by their P(positive) (``score`` when ``score_is="p_positive"``,
else ``score`` for a positive prediction and ``1 - score`` for a negative one), and from the
positives ``P_s`` and negatives ``N_s`` at each distinct value ``s`` (running sums over the
sorted values in numpy):
``ROC AUC = sum_s P_s (N_{<s} + N_s / 2) / (P N)`` (the Mann-Whitney statistic, ties counted
half: scikit-learn's ``roc_auc_score``) and ``PR AUC = sum_s (P_s / P) TP_{>=s} / (TP_{>=s} +
FP_{>=s})`` (average precision, scikit-learn's ``average_precision_score``, with no
interpolation). NaN when a window's labels hold one class only. Not assessed, with the reason,
without scores, for more than two classes, or for a score that looks like P(positive) while
declared a confidence (:func:`~.calibration.score_problem`). Every recipe, with its source, is
in ``docs/recipes.md``.

Findings: ``model.accuracy_drop`` when incident accuracy is lower than baseline accuracy by at
least 3 points with a two-proportion z-test p < 0.001 (high from 8 points), or, on few labels,
low when p < 0.05 and the incident's 95% Wilson interval lies below the baseline accuracy;
``model.version_regression`` when a model version serving in the incident is at least 3 points
less accurate than the baseline's main version (p < 0.001; high from 8 points), or, on few
labels of that version, low by the same weak tier as the accuracy drop (p < 0.05 and the
version's 95% Wilson interval below the main version's accuracy).

**Tasks** (DESIGN section 3a; the case's main task, :attr:`CaseView.task`). Assessed:
``binary`` (above, unchanged), ``multiclass`` and ``regression``; ``generative`` is not
assessed, with the reason.

**Per endpoint**: a case whose endpoints serve several tasks is measured for its main task
(the one serving most requests, over its endpoints: the result's own tables), and every
endpoint of another task on its own with its own task (``result.endpoints``, endpoint name ->
a result of this diagnostic). Findings of such a case name their endpoint (``endpoint
<name>:`` in the summary, ``evidence["endpoint"]``); the endpoints' ``not_assessed`` reasons
join the result's, naming the endpoint. A case of one task is unchanged.

* **multiclass**: accuracy (Wilson), macro and weighted precision / recall / F1 (the
  ``precision``, ``recall`` and ``f1`` columns carry the macro averages), per-class precision
  and recall with Wilson intervals (``per_class``), the confusion matrix per window
  (``confusion``) and its change (``confusion_change``: for each true class, the share of its
  rows predicted as each class in each window, the change and a two-proportion p-value), and
  with ``scores`` the macro one-vs-rest ROC AUC and average precision (scikit-learn's
  ``roc_auc_score(multi_class="ovr")``; scores rounded to 4 decimals in the engine, exact
  for scores logged at that precision; beyond 500,000 labelled predictions with scores, on a
  deterministic sample of 500,000, the share in the table's ``scores_fraction``). Classes a window never saw as a label or prediction
  do not enter its averages (scikit-learn's default ``labels``; ``zero_division=0``).
* **regression**: ``prediction`` and ``label`` cast to numbers (rows where either is no
  number are counted in ``not_assessed``, never mixed in); MAE, RMSE, bias (mean of
  prediction - label) and MAPE (only when the smallest |label| is at least 1% of the mean
  |label|) with 95% analytic intervals (central limit: mean +- 1.96 standard errors; RMSE from
  the MSE's interval), per window, model version, time bucket and segment (``by_segment``:
  endpoint, host, client and pipeline version).

Findings keep the binary ids, with ``task`` in the evidence:

* ``model.accuracy_drop`` multiclass: the binary rule on accuracy; evidence adds
  ``task``, ``macro_f1_baseline``/``_incident``, ``weighted_f1_baseline``/``_incident`` and
  ``moves`` (up to 3 ``{label, prediction, change}``: where true classes moved).
  Regression: MAE up by at least 10% (Welch z-test on the mean absolute error p < 0.001; high
  from 25%); statistic the relative MAE change; evidence ``task``, ``mae_baseline``,
  ``mae_incident``, ``mae_change``, ``rmse_baseline``/``_incident``,
  ``bias_baseline``/``_incident``, ``mape_baseline``/``_incident``, ``pvalue``,
  ``labelled_incident``.
* ``model.version_regression`` multiclass: the binary rule, evidence plus ``task``.
  Regression: a version with at least 10% more MAE than the baseline's main version
  (p < 0.001); evidence ``task``, ``version``, ``reference_version``, ``mae``,
  ``reference_mae``, ``mae_change``, ``new_version``, ``first_seen``, ``pvalue``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import ibis
import numpy as np
import pandas as pd
from scipy import stats

from toolkit._validation import check_option, check_windows
from toolkit.diagnose import _stats as st
from toolkit.diagnose._base import DiagnosticResult, Finding, NotAssessed, timeline_signals
from toolkit.diagnose._case import CaseView, case_view, choose_bucket, within
from toolkit.diagnose._engine import Recorder, bucket_expr, epoch_us, window_label
from toolkit.diagnose._engines import CaseSource
from toolkit.diagnose._labels import positive_class
from toolkit.diagnose._onset import coarse_onset, gradual_onset, ramp_began, refine_onset
from toolkit.diagnose._tasks import endpoint_findings, per_endpoint
from toolkit.diagnose.model.calibration import SCORE_IS, score_problem, score_semantics
from toolkit.types import Window

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["model_performance", "PerformanceResult", "ID"]

ID = "model.performance"
MIN_DROP = 0.03
#: Below p 1e-3 a drop is medium or high; from there to this p-value, with the incident's
#: Wilson interval entirely below the baseline accuracy, it is a low finding (few labels).
WEAK_P = 0.05
MAJOR_DROP = 0.08
MIN_LABELS = 30
#: A drop after a step inside the incident window (:func:`accuracy_step`) counts below this
#: p-value, Bonferroni-corrected for the splits tried.
STEP_ALPHA = 1e-3
#: ... over at most this many consecutive groups of the incident's buckets.
MAX_STEP_SEGMENTS = 24
#: :func:`drop_began` dates a drop at a split inside the window only when the window's labels
#: before the split are above those after it, and not below the baseline's, at this one-sided
#: p-value each.
SPLIT_P = 0.05
#: ... and only when a step there beats a gradual fall from the window's start by more than
#: this much log-likelihood (half the 95% point of chi-square with one degree of freedom: the
#: two models have the same number of parameters).
RAMP_MARGIN_LL = float(stats.chi2.ppf(0.95, 1)) / 2


@dataclass(frozen=True, kw_only=True, repr=False)
class PerformanceResult(DiagnosticResult):
    """Accuracy, precision, recall and F1 per window, per model version and over time.

    Attributes
    ----------
    table
        One row per window: ``labelled``, ``requests``, ``coverage``, ``accuracy`` (with
        ``accuracy_lo``/``accuracy_hi``), ``precision``, ``recall``, ``f1`` (with intervals),
        ``delay_p50_h``, ``delay_p90_h``, ``roc_auc``, ``pr_auc`` (binary tasks with scores,
        else NaN with a ``model.performance:auc`` entry in ``not_assessed``).
    by_version
        The same metrics per window and ``model_version``.
    timeline
        The same metrics per time bucket (buckets with at least 30 labels).
    incident_buckets
        ``bucket_start``, ``labelled``, ``correct`` of every incident bucket with labels
        (binary tasks), for :func:`accuracy_step`.
    """

    id = ID
    title = "Model performance"

    positive: str | None = None
    score_is: str = "confidence"
    task: str = "binary"
    by_version: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    timeline: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    incident_buckets: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    #: ``bucket_start``, ``labelled``, ``correct``, ``accuracy`` of every bucket of the span
    #: with labels (binary tasks; no minimum of labels), for the ramp's start
    label_buckets: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    per_class: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    confusion: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    confusion_change: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    by_segment: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    #: a case of several tasks: the result of every endpoint of another task than the main
    #: one, by endpoint name (each measured on its own with its own task)
    endpoints: dict[str, PerformanceResult] = field(default_factory=dict, repr=False)
    #: the endpoints this result measures, named when ``endpoints`` is not empty
    main_endpoints: tuple[str, ...] = ()

    def value(self, window: str, column: str) -> float:
        """``column`` of ``window``'s row; NaN when the window or the column (a measure of
        another task, e.g. ``ece`` of a regression) is absent."""
        if self.table.empty or column not in self.table:
            return float("nan")
        rows = self.table[self.table["window"] == window]
        return float(rows[column].iloc[0]) if len(rows) else float("nan")

    @property
    def accuracy_change(self) -> float:
        return self.value("incident", "accuracy") - self.value("baseline", "accuracy")

    def headline(self) -> dict[str, Any]:
        if self.table.empty:
            return {}
        if self.task == "regression":
            return {"task": self.task} | {
                f"{m} {w}": self.value(w, m.lower()) for m in ("MAE", "RMSE", "bias", "MAPE")
                for w in ("baseline", "incident")} | {
                "label coverage incident": self.value("incident", "coverage")}
        if self.task == "multiclass":
            return {"task": self.task} | {
                f"{name} {w}": self.value(w, column)
                for name, column in (("accuracy", "accuracy"), ("macro F1", "macro_f1"),
                                     ("weighted F1", "weighted_f1"), ("ROC AUC (OvR)", "roc_auc"))
                for w in ("baseline", "incident")} | {
                "label coverage incident": self.value("incident", "coverage")}
        return {
            "accuracy baseline": self.value("baseline", "accuracy"),
            "accuracy incident": self.value("incident", "accuracy"),
            "precision baseline": self.value("baseline", "precision"),
            "precision incident": self.value("incident", "precision"),
            "label coverage incident": self.value("incident", "coverage"),
            "ROC AUC baseline": self.value("baseline", "roc_auc"),
            "ROC AUC incident": self.value("incident", "roc_auc"),
            "positive class": self.positive,
        }

    def findings(self) -> list[Finding]:
        """The main task's findings and, in a case of several tasks, every other endpoint's,
        each naming its endpoint (``evidence["endpoint"]``)."""
        return endpoint_findings(self, self.own_findings())

    def own_findings(self) -> list[Finding]:
        """The findings of this result's own rows (the main task's endpoints)."""
        if self.table.empty or len(self.table) < 2:
            return []
        if self.task == "regression":
            return _regression_findings(self)
        if self.task == "multiclass":
            return [_with_task(self, f) for f in self._classification_findings()]
        return self._classification_findings()

    def _classification_findings(self) -> list[Finding]:
        out = []
        b = self.table.set_index("window").loc["baseline"]
        i = self.table.set_index("window").loc["incident"]
        drop = b["accuracy"] - i["accuracy"]
        _, p = st.two_proportion_z(b["correct"], b["labelled"], i["correct"], i["labelled"])
        # few labels (a sampled or delayed label feed): a drop whose Wilson interval excludes
        # the baseline accuracy is weak evidence still, a low finding rather than silence
        _, upper = st.wilson_interval(np.array([float(i["correct"])]),
                                      np.array([float(i["labelled"])]))
        few_labels = p < WEAK_P and float(upper[0]) < b["accuracy"]
        step = None
        if not (drop >= MIN_DROP and p < 1e-3):
            # a window that opens long before the drop dilutes it: test the labels after the
            # step inside the window (varied tuning concept_drift at IoU 0.42, issue 22)
            step = accuracy_step(self.incident_buckets, float(b["correct"]),
                                 float(b["labelled"]))
        if step is not None:
            out.append(Finding(
                id="model.accuracy_drop", pathway="model",
                severity="high" if step.drop >= MAJOR_DROP else "medium",
                statistic=step.drop, threshold=MIN_DROP,
                summary=(f"accuracy fell {step.drop:.1%} ({b['accuracy']:.1%} -> "
                         f"{step.accuracy:.1%}) from {step.start:%Y-%m-%d %H:%M} UTC, a step "
                         f"inside the window ({drop:.1%} over the whole window)."),
                evidence={"accuracy_baseline": b["accuracy"], "accuracy_incident": step.accuracy,
                          "accuracy_window": i["accuracy"], "step_start": step.start,
                          "pvalue": step.pvalue, "splits_tried": step.splits,
                          "labelled_incident": step.labelled},
                onset=self.refined_onsets.get("model.accuracy_drop") or step.start,
                diagnostic=self.id,
            ))
        elif drop >= MIN_DROP and (p < 1e-3 or few_labels):
            out.append(Finding(
                id="model.accuracy_drop", pathway="model",
                severity=("low" if p >= 1e-3 else "high" if drop >= MAJOR_DROP
                          else "medium"),
                statistic=float(drop), threshold=MIN_DROP,
                summary=(f"accuracy fell {drop:.1%} ({b['accuracy']:.1%} -> "
                         f"{i['accuracy']:.1%}); precision {b['precision']:.1%} -> "
                         f"{i['precision']:.1%}."),
                evidence={"accuracy_baseline": b["accuracy"], "accuracy_incident": i["accuracy"],
                          "precision_baseline": b["precision"],
                          "precision_incident": i["precision"], "recall_baseline": b["recall"],
                          "recall_incident": i["recall"], "pvalue": p,
                          "labelled_incident": int(i["labelled"])},
                onset=self.refined_onsets.get("model.accuracy_drop") or self._drop_onset(
                    b, p), diagnostic=self.id,
            ))
            out[-1] = self._with_fall_from_start(out[-1], b)
        out = [self._with_ramp(f) for f in out]
        regression = self._version_regression(b)
        if regression is not None:
            out.append(regression)
        return out

    def _drop_onset(self, baseline_row: pd.Series, pvalue: float) -> datetime | None:
        """The whole window's accuracy drop dated on the timeline (buckets of at least
        :data:`MIN_LABELS` labels), else, for a drop of p < 0.001, on the incident's labels
        per bucket (:func:`drop_began`); at the window's start when that is its first bucket
        with labels."""
        onset = coarse_onset(self.timeline, "accuracy", after=self.baseline.end,
                             weights="labelled", direction=-1)
        if onset is not None or not pvalue < 1e-3:
            return onset
        began = drop_began(self.incident_buckets, float(baseline_row["correct"]),
                           float(baseline_row["labelled"]))
        if began is None:
            return None
        # dated at the window's first labels: as far as they tell, the drop began at the
        # window's start when no label lies between (varied tuning concept_drift s4, a given
        # window: its first labels 67 minutes after its start)
        if began == pd.Timestamp(self.incident_buckets["bucket_start"].iloc[0]):
            return min(began, pd.Timestamp(self.incident.start)).to_pydatetime()
        return began.to_pydatetime()

    def _with_fall_from_start(self, finding: Finding, baseline_row: pd.Series) -> Finding:
        """A whole-window drop dated after the window's start on its labels per bucket
        (:func:`drop_began`), with evidence ``fall_from_window_start`` (the window's start)
        when a gradual fall from the window's first labelled bucket explains them about as
        well (:func:`_ramp_explains`). The onset is unchanged: a detected window may open days
        before the drift, where a fall from its start dates the drift days early (varied
        tuning concept_drift s3, detected: 62 h), whereas a given window's start is what the
        user knows of the incident (the classifier reads the evidence for given windows)."""
        buckets = self.incident_buckets
        if finding.onset is None or buckets.empty or float(baseline_row["labelled"]) <= 0:
            return finding
        first = pd.Timestamp(buckets["bucket_start"].iloc[0])
        if pd.Timestamp(finding.onset) <= max(first, pd.Timestamp(self.incident.start)):
            return finding
        if not _ramp_explains(buckets["bucket_start"], buckets["labelled"].to_numpy(float),
                              buckets["correct"].to_numpy(float),
                              float(baseline_row["correct"]) / float(baseline_row["labelled"])):
            return finding
        return replace(finding, evidence={**finding.evidence,
                                          "fall_from_window_start": self.incident.start})

    def _with_ramp(self, finding: Finding) -> Finding:
        """An accuracy drop with evidence ``ramp_began``: where a slow fall of accuracy began
        over the whole span (:func:`~toolkit.diagnose._onset.ramp_began`), when that is
        before the finding's onset (or the finding has none: too few labels per bucket for a
        timeline). The onset itself is unchanged."""
        if finding.severity not in ("medium", "high"):
            return finding
        began = ramp_began(self.label_buckets, "accuracy")
        if began is None or (finding.onset is not None
                             and pd.Timestamp(began) >= pd.Timestamp(finding.onset)):
            return finding
        return replace(finding, evidence={**finding.evidence, "ramp_began": began})

    def _version_regression(self, baseline_row: pd.Series) -> Finding | None:
        v = self.by_version
        if v.empty:
            return None
        base = v[v["window"] == "baseline"].sort_values("labelled", ascending=False)
        inc = v[(v["window"] == "incident") & (v["labelled"] >= MIN_LABELS)]
        if base.empty or inc.empty:
            return None
        reference = base.iloc[0]
        worst = None
        for row in inc.itertuples():
            if str(row.model_version) == str(reference["model_version"]):
                continue
            drop = reference["accuracy"] - row.accuracy
            _, p = st.two_proportion_z(reference["correct"], reference["labelled"], row.correct,
                                       row.labelled)
            # few labels of the new version: the whole window's weak tier (a drop whose Wilson
            # interval lies below the reference accuracy, p < WEAK_P) makes a low finding
            _, upper = st.wilson_interval(np.array([float(row.correct)]),
                                          np.array([float(row.labelled)]))
            weak = p < WEAK_P and float(upper[0]) < reference["accuracy"]
            if drop >= MIN_DROP and (p < 1e-3 or weak) and (
                    worst is None or (p < 1e-3, drop) > (worst[2] < 1e-3, worst[0])):
                worst = (drop, row, p)
        if worst is None:
            return None
        drop, row, p = worst
        new = str(row.model_version) not in set(base["model_version"].astype(str))
        return Finding(
            id="model.version_regression", pathway="model",
            severity=("low" if p >= 1e-3 else "high" if drop >= MAJOR_DROP else "medium"),
            statistic=float(drop),
            threshold=MIN_DROP,
            summary=(f"model {row.model_version} is {drop:.1%} less accurate than "
                     f"{reference['model_version']} ({row.accuracy:.1%} vs "
                     f"{reference['accuracy']:.1%})."),
            evidence={"version": str(row.model_version),
                      "reference_version": str(reference["model_version"]),
                      "accuracy": float(row.accuracy),
                      "reference_accuracy": float(reference["accuracy"]),
                      "new_version": new,
                      "first_seen": pd.Timestamp(row.first_seen),
                      "pvalue": p},
            # a version that first served after the baseline started the regression then
            onset=pd.Timestamp(row.first_seen).to_pydatetime() if new else None,
            diagnostic=self.id,
        )

    def _onset(self, threshold: float):
        t = self.timeline
        if t.empty:
            return None
        t = t[t["bucket_start"] >= pd.Timestamp(self.baseline.end)]
        below = (t["accuracy"] < threshold).to_numpy()
        for k in range(len(below)):
            if below[k] and below[k:].mean() >= 2 / 3:
                return t["bucket_start"].iloc[k].to_pydatetime()
        return None

    def _plot_windows(self, ax: Axes) -> Axes:
        """No time bucket holds :data:`MIN_LABELS` labels (a small or sparsely labelled case):
        the per-window figures with their intervals, rather than a blank "not assessed" panel
        beside a table that does show them."""
        from toolkit.plotting import WINDOW_COLORS

        column = "mae" if self.task == "regression" else "accuracy"
        rows = self.table[self.table["window"].isin(["baseline", "incident"])] \
            if "window" in self.table else self.table.iloc[0:0]
        if column not in rows or rows[column].isna().all():
            return super().plot(ax)
        rows = rows.dropna(subset=[column])
        values = rows[column].to_numpy(float)
        lower = rows.get(f"{column}_lo", rows[column]).to_numpy(float)
        upper = rows.get(f"{column}_hi", rows[column]).to_numpy(float)
        names = rows["window"].tolist()
        ax.bar(names, values, color=[WINDOW_COLORS.get(w, "#4C72B0") for w in names],
               yerr=[values - lower, upper - values], capsize=6, width=0.5)
        label = "mean absolute error" if column == "mae" else "accuracy"
        ax.set_ylabel(label)
        ax.set_title(f"{label.capitalize()} per window (95% interval); too few labels per "
                     f"time bucket for a timeline (fewer than {MIN_LABELS})")
        return ax

    def signals(self) -> pd.DataFrame:
        columns = ["mae", "bias"] if self.task == "regression" else ["accuracy", "precision"]
        return timeline_signals(self.timeline, columns, "model.")
    def plot(self, ax: Axes | None = None, **kwargs: Any) -> Axes:
        """Accuracy and precision over time with Wilson bands; the incident shaded."""
        from toolkit.plotting import WINDOW_COLORS, axes

        ax = axes(ax, figsize=(10, 4))
        if self.timeline.empty:
            return self._plot_windows(ax)
        t = self.timeline
        if self.task == "regression":
            ax.plot(t["bucket_start"], t["mae"], label="MAE", color="#4C72B0")
            ax.fill_between(t["bucket_start"], t["mae_lo"], t["mae_hi"], color="#4C72B0",
                            alpha=0.15, lw=0)
            ax.plot(t["bucket_start"], t["bias"], label="bias (prediction - label)",
                    color="#DD8452")
            ax.axvspan(self.incident.start, self.incident.end,
                       color=WINDOW_COLORS["incident"], alpha=0.08, label="incident")
            ax.set_xlabel("request time (UTC)")
            ax.set_ylabel("error")
            ax.set_title("Absolute error and bias over time")
            ax.legend(loc="upper left")
            return ax
        shown = (("accuracy", "#4C72B0"),) if self.task == "multiclass" else (
            ("accuracy", "#4C72B0"), ("precision", "#DD8452"))
        for column, color in shown:
            ax.plot(t["bucket_start"], t[column], label=column, color=color)
            ax.fill_between(t["bucket_start"], t[f"{column}_lo"], t[f"{column}_hi"],
                            color=color, alpha=0.15, lw=0)
        ax.axvspan(self.incident.start, self.incident.end, color=WINDOW_COLORS["incident"],
                   alpha=0.08, label="incident")
        ax.set_ylim(max(0.0, float(np.nanmin(t[[f"{c}_lo" for c, _ in shown]].to_numpy()))
                        - 0.05), 1.0)
        ax.set_xlabel("request time (UTC)")
        ax.set_ylabel("share")
        ax.set_title("Accuracy (multiclass; macro precision per window in the table)"
                     if self.task == "multiclass" else
                     f"Accuracy and precision (positive class {self.positive})")
        ax.legend(loc="lower left")
        return ax


def model_performance(
    con: CaseSource,
    baseline: Window | str,
    incident: Window | str,
    /,
    *,
    positive: str | None = None,
    score_is: str | None = None,
    bucket: timedelta | None = None,
    case: CaseView | None = None,
) -> PerformanceResult:
    """Accuracy, precision, recall and F1 with Wilson intervals, per window, version and time;
    ROC and PR AUC per window for binary tasks with scores.

    Parameters
    ----------
    con
        Case connection.
    baseline, incident
        The windows (``Window``, ``"START/END"`` or ``(start, end)``); they must not overlap.
    positive
        The positive class (default: a conventional label token, else the rarer label).
    score_is
        What ``score`` holds: ``"confidence"`` (in ``prediction``) or ``"p_positive"``.
        Default: what the case's mapping declared (``case_meta['score_semantics']``), else
        ``"confidence"``; the declared positive class is the default ``positive`` too.
    bucket
        Timeline bucket width (default: about 240 buckets over the span).
    case
        A :class:`~toolkit.diagnose._case.CaseView` to share between diagnostics.

    Examples
    --------
    >>> import pandas as pd, toolkit as tk
    >>> con = tk.connect()
    >>> ts = pd.date_range("2026-03-01", periods=400, freq="min", tz="UTC")
    >>> pred = ["1", "0"] * 200
    >>> _ = tk.load(con, pd.DataFrame({"request_id": range(400), "ts": ts, "prediction": pred}),
    ...             table="requests")
    >>> truth = pred[:200] + ["0", "0"] * 100
    >>> _ = tk.load(con, pd.DataFrame({"request_id": range(400), "label": truth}), table="labels")
    >>> r = model_performance(con, (ts[0], ts[200]), (ts[200], ts[-1] + pd.Timedelta("1min")))
    >>> r.value("baseline", "accuracy"), r.value("incident", "accuracy")
    (1.0, 0.5)
    """
    baseline, incident = check_windows(baseline, incident)
    case = case or case_view(con)
    score_is, positive = case.score_semantics(score_is, positive)
    check_option("score_is", score_is, SCORE_IS)
    base = dict(baseline=baseline, incident=incident, score_is=score_is)
    info = case.task
    result = _performance(case, base, info, positive=positive, score_is=score_is, bucket=bucket)
    return per_endpoint(case, info, result, lambda other: _performance(
        case, base, other, positive=positive, score_is=score_is, bucket=bucket))


def _performance(case: CaseView, base: dict[str, Any], info: Any, *, positive: str | None,
                 score_is: str, bucket: timedelta | None) -> PerformanceResult:
    """Performance of ``info``'s task on its endpoints (the whole case when it serves one
    task)."""
    from toolkit.diagnose._tasks import labelled_for, mixed_tasks, task_filter

    baseline, incident = base["baseline"], base["incident"]
    if info.task == "generative":
        return PerformanceResult(**base, task=info.task, not_assessed=(NotAssessed(
            ID, "generative endpoints: accuracy needs a predicted class or value (this "
            "diagnostic assesses binary, multiclass and regression tasks)"),))
    if not case.has("requests", "prediction"):
        return PerformanceResult(**base, not_assessed=(
            NotAssessed(ID, "requests carry no predictions"),))
    if not case.has("labels"):
        return PerformanceResult(**base, not_assessed=(NotAssessed(ID, "the case has no labels"),))
    if info.task in ("multiclass", "regression"):
        run = _multiclass if info.task == "multiclass" else _regression
        return run(case, base, info, bucket)
    record = Recorder(joins_as_written=True)  # the labels join: see Recorder
    span = Window(min(baseline.start, incident.start), max(baseline.end, incident.end))
    width = bucket or choose_bucket(span.duration)
    # a case of several tasks: this endpoint's labels (the labels table holds every task's)
    own = labelled_for(case, record, span, info) if mixed_tasks(case) else None
    positive = positive or info.positive_class or positive_class(
        case, record, Window(baseline.start, incident.end) if baseline.start < incident.start
        else Window(incident.start, baseline.end), labels=own)

    requests = task_filter(case, info, case.table("requests"))
    in_span = requests.filter(within(requests.ts, span))
    in_span = in_span.mutate(_window=window_label(in_span.ts, baseline, incident))
    totals = record(in_span.group_by(window=in_span._window).aggregate(
        requests=in_span.count()))
    # a request that failed has no prediction to judge: it counts for errors, not accuracy
    t = labelled_for(case, record, span, info)
    t = t.mutate(_window=window_label(t.ts, baseline, incident))
    pos = ibis.literal(positive)
    t = t.mutate(
        _ok=t.correct.cast("int64"),
        _tp=((t.prediction == pos) & (t.label == pos)).cast("int64"),
        _fp=((t.prediction == pos) & (t.label != pos)).cast("int64"),
        _fn=((t.prediction != pos) & (t.label == pos)).cast("int64"),
    )
    has_version = "model_version" in case.columns["requests"]
    keys = {"bucket_start": bucket_expr(t.ts, width), "window": t._window}
    if has_version:
        keys["model_version"] = t.model_version
    # One scan: counts per bucket, window and version; every table below is a sum of these.
    cells = record(t.group_by(**keys).aggregate(
        labelled=t.count(), correct=t._ok.sum(), tp=t._tp.sum(), fp=t._fp.sum(),
        fn=t._fn.sum(), first_seen=t.ts.min()))
    counted = ["labelled", "correct", "tp", "fp", "fn"]
    in_windows = cells[cells["window"].notna()]
    found = set(in_windows["window"])
    gaps = []
    for name in ("baseline", "incident"):
        if name not in found:
            gaps.append(NotAssessed(ID, f"no labels in the {name} window"))
    if gaps:
        return PerformanceResult(**base, positive=positive, not_assessed=tuple(gaps),
                                 sql=record.sql)
    windows = t.filter(t._window.notnull())
    delay = (epoch_us(windows.labeled_at) - epoch_us(windows.ts)) / 3.6e9
    delays = record(windows.group_by(window=windows._window).aggregate(
        delay_q=delay.approx_quantile([0.5, 0.9])))
    per_window = _metrics(in_windows.groupby("window", as_index=False)[counted].sum())
    per_window = per_window.merge(totals, on="window", how="left").merge(
        delays, on="window", how="left")
    per_window["coverage"] = per_window["labelled"] / per_window["requests"]
    quantiles = np.array([d if isinstance(d, (list, np.ndarray)) else [np.nan, np.nan]
                          for d in per_window.pop("delay_q")], dtype=float).reshape(
        len(per_window), 2)
    per_window["delay_p50_h"], per_window["delay_p90_h"] = quantiles[:, 0], quantiles[:, 1]
    ranking, gap = _ranking(case, record, windows, positive, score_is)
    per_window = per_window.merge(ranking, on="window", how="left")
    per_window = per_window.set_index("window").loc[["baseline", "incident"]].reset_index()
    by_version = pd.DataFrame()
    if has_version:
        by_version = _metrics(in_windows.groupby(["window", "model_version"], as_index=False,
                                                 dropna=False).agg(
            **{c: (c, "sum") for c in counted}, first_seen=("first_seen", "min")))
    incident_buckets = in_windows[in_windows["window"] == "incident"].groupby(
        "bucket_start", as_index=False)[["labelled", "correct"]].sum().sort_values(
        "bucket_start", ignore_index=True)
    per_bucket = _metrics(cells.groupby("bucket_start", as_index=False)[counted].sum()
                          ).sort_values("bucket_start", ignore_index=True)
    timeline = per_bucket[per_bucket["labelled"] >= MIN_LABELS].reset_index(drop=True)
    label_buckets = per_bucket.loc[per_bucket["labelled"] > 0,
                                   ["bucket_start", "labelled", "correct", "accuracy"]
                                   ].reset_index(drop=True)
    result = PerformanceResult(**base, positive=positive, table=per_window,
                               by_version=by_version, timeline=timeline,
                               incident_buckets=incident_buckets, label_buckets=label_buckets,
                               sql=record.sql,
                               not_assessed=(gap,) if gap else ())
    for finding in result.own_findings():
        gradual = gradual_onset(timeline, "accuracy", after=baseline.end, weights="labelled")
        if finding.id == "model.accuracy_drop" and finding.onset is not None and gradual is None:
            rows = labelled_for(case, record, span, info)
            onset = refine_onset(record, rows, (~rows.correct).cast("float64"), finding.onset,
                                 around=3 * width, limits=span)
            result = replace(result, refined_onsets={finding.id: onset}, sql=record.sql)
    return result


@dataclass(frozen=True)
class AccuracyStep:
    """The labels after a step of accuracy inside the incident window.

    Attributes
    ----------
    start
        The first bucket after the step.
    accuracy, drop
        Accuracy after the step and its drop from the baseline's.
    labelled
        Labels after the step.
    pvalue
        Two-proportion z-test against the baseline and the labels before the step, times
        the splits tried (Bonferroni).
    splits
        Splits tried.
    """

    start: pd.Timestamp
    accuracy: float
    drop: float
    labelled: int
    pvalue: float
    splits: int


def accuracy_step(buckets: pd.DataFrame, base_correct: float, base_labelled: float, *,
                  alpha: float = STEP_ALPHA) -> AccuracyStep | None:
    """The split of the incident window after which accuracy fell, when the drop there is
    significant although the whole window's is not (a window opened long before the drop).

    The buckets are first merged into at most :data:`MAX_STEP_SEGMENTS` consecutive groups
    (a sparse label feed spreads a few labels over a hundred buckets, and the correction
    grows with the splits). Every split with at least one labelled bucket before it, two after it and
    :data:`MIN_LABELS` labels after it is tried: the labels after it against the baseline's
    and the window's before it, pooled (no change means one accuracy for both; two-sided
    two-proportion z-test, a drop of at least :data:`MIN_DROP`). The smallest
    p-value times the number of splits tried (Bonferroni: the split is chosen on the same
    labels) must stay below ``alpha``, also without the worst bucket after the split (a
    sustained drop, not one bad bucket). ``buckets`` holds ``bucket_start``, ``labelled``,
    ``correct`` per incident bucket, in time order.

    Examples
    --------
    >>> b = pd.DataFrame({"bucket_start": pd.date_range("2026-03-01", periods=6, freq="h",
    ...                                                 tz="UTC"),
    ...                   "labelled": [100] * 6, "correct": [95, 94, 96, 70, 72, 71]})
    >>> step = accuracy_step(b, 950, 1000)
    >>> str(step.start), round(step.drop, 3), step.labelled, step.splits
    ('2026-03-01 03:00:00+00:00', 0.24, 300, 4)
    """
    if buckets.empty or base_labelled <= 0:
        return None
    n = buckets["labelled"].to_numpy(dtype=float)
    k = buckets["correct"].to_numpy(dtype=float)
    starts = buckets["bucket_start"].reset_index(drop=True)
    if len(n) > MAX_STEP_SEGMENTS:  # a sparse feed over many buckets: fewer, fuller splits
        group = np.arange(len(n)) * MAX_STEP_SEGMENTS // len(n)
        first = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
        n, k, starts = np.add.reduceat(n, first), np.add.reduceat(k, first), starts[first]
        starts = starts.reset_index(drop=True)
    n_after, k_after = np.cumsum(n[::-1])[::-1], np.cumsum(k[::-1])[::-1]
    # the reference of a split: the baseline's labels and the window's labels before it
    n_ref = base_labelled + np.cumsum(n) - n
    k_ref = base_correct + np.cumsum(k) - k
    splits = [j for j in range(1, len(n) - 1) if n_after[j] >= MIN_LABELS]

    def test(j: int, k_a: float, n_a: float) -> float:
        if n_a < 1 or k_ref[j] / n_ref[j] - k_a / n_a < MIN_DROP:
            return 1.0
        return min(1.0, len(splits) * st.two_proportion_z(k_ref[j], n_ref[j], k_a, n_a)[1])

    corrected = [(test(j, k_after[j], n_after[j]), j) for j in splits]
    if not corrected:
        return None
    p, j = min(corrected)
    if not p < alpha:
        return None
    # sustained, not one bad bucket: the drop holds without the worst bucket after the step
    worst = j + int(np.argmin(k[j:] / np.maximum(n[j:], 1)))
    if not test(j, k_after[j] - k[worst], n_after[j] - n[worst]) < alpha:
        return None
    accuracy = float(k_after[j] / n_after[j])
    return AccuracyStep(start=pd.Timestamp(starts.iloc[j]),
                        accuracy=accuracy, drop=float(base_correct / base_labelled - accuracy),
                        labelled=int(n_after[j]), pvalue=float(p), splits=len(splits))


def drop_began(buckets: pd.DataFrame, base_correct: float, base_labelled: float
               ) -> pd.Timestamp | None:
    """Where the accuracy drop of the incident window began, for a drop the whole window shows
    (p < 0.001) that no time bucket holds :data:`MIN_LABELS` labels to date: the start of the
    incident bucket after which the labels depart most from the baseline's and the window's
    before it (smallest two-proportion p-value, a drop of at least :data:`MIN_DROP`,
    :data:`MIN_LABELS` labels after it: the largest z of a one-step fit). The first bucket's
    start when the labels fell from the window's start; ``None`` when no split has the labels
    or the drop. ``buckets`` holds ``bucket_start``, ``labelled``, ``correct`` per incident
    bucket with labels, in time order.

    It dates a drop already found, so it tests nothing of its own, and the buckets are not
    merged (:func:`accuracy_step` merges them to limit its Bonferroni correction): merged
    segments of 16 hours dated varied tuning concept_drift s3 31 h late. There (labels on 13%
    of a log sampled 1 in 15, 30 a day) the whole window's drop is high, no 3-hour bucket
    holds 30 labels, and the finding had no onset: the verdict read the fallback window, 2.6
    days before the drift.

    A split after the window's first bucket must also be shown by the window's own labels:
    those before it above those after it, and not below the baseline's (one-sided
    two-proportion tests, p < :data:`SPLIT_P` and p >= :data:`SPLIT_P`). Else the labels
    cannot place the drop after the window's start, and it is dated at the first bucket (the
    whole window's labels against the baseline's, with the labels and the drop above): a few
    labels before the split, as low as those after it (varied tuning concept_drift s6, s9,
    given windows opening at the drift, dated 5 and 11 hours late), or a fall begun before the
    split (a gradual fall, whose best single split lies inside the ramp: s4, a 66-hour ramp,
    dated 43 hours late). Whether a gradual fall from the window's first bucket explains the
    labels about as well as a kept split is :func:`_ramp_explains`'s to say (the finding's
    evidence ``fall_from_window_start``).

    Examples
    --------
    >>> b = pd.DataFrame({"bucket_start": pd.date_range("2026-03-01", periods=6, freq="h",
    ...                                                 tz="UTC"),
    ...                   "labelled": [10] * 6, "correct": [10, 9, 10, 6, 7, 6]})
    >>> str(drop_began(b, 95, 100))
    '2026-03-01 03:00:00+00:00'
    """
    if buckets.empty or base_labelled <= 0:
        return None
    n = buckets["labelled"].to_numpy(dtype=float)
    k = buckets["correct"].to_numpy(dtype=float)
    starts = buckets["bucket_start"].reset_index(drop=True)
    n_after, k_after = np.cumsum(n[::-1])[::-1], np.cumsum(k[::-1])[::-1]
    n_ref = base_labelled + np.cumsum(n) - n
    k_ref = base_correct + np.cumsum(k) - k
    best = None
    for j in range(len(n)):
        if n_after[j] < MIN_LABELS or k_ref[j] / n_ref[j] - k_after[j] / n_after[j] < MIN_DROP:
            continue
        p = st.two_proportion_z(k_ref[j], n_ref[j], k_after[j], n_after[j])[1]
        if best is None or p < best[0]:
            best = (p, j)
    if best is None:
        return None
    j = best[1]
    if j > 0 and not _split_shown(k[:j].sum(), n[:j].sum(), k_after[j], n_after[j],
                                  base_correct, base_labelled):
        # not after the window's start: from its first bucket, when its labels show the drop
        first = n_after[0] >= MIN_LABELS and k_ref[0] / n_ref[0] - k_after[0] / n_after[0] \
            >= MIN_DROP
        return pd.Timestamp(starts.iloc[0]) if first else None
    return pd.Timestamp(starts.iloc[j])


def _ramp_explains(starts: pd.Series, n: np.ndarray, k: np.ndarray, base: float) -> bool:
    """Whether a gradual fall of accuracy from the window's first bucket explains the labels
    about as well as the best step after it: :func:`_step_over_ramp` below
    :data:`RAMP_MARGIN_LL`.

    A slow concept drift has few wrong labels early in its ramp: the labels of its first hours
    cannot tell a fall begun at the window's start from a step a day later, and the best step
    lies deep in the ramp (varied tuning concept_drift s11, a given window opening at a
    53-hour ramp: its first 15 labels, over 42 hours, all right, and the step there 42 h late;
    a fall from the window's start to 48 h in is 1.4 log-likelihood units below the step).

    Examples
    --------
    >>> starts = pd.Series(pd.date_range("2026-03-01", periods=6, freq="h", tz="UTC"))
    >>> n = np.full(6, 10.0)
    >>> bool(_ramp_explains(starts, n, np.array([10, 10, 10, 5, 5, 5.]), 0.99))  # a step
    False
    >>> bool(_ramp_explains(starts, n, np.array([10, 9, 8, 7, 6, 5.]), 0.99))  # a slope
    True
    """
    return _step_over_ramp(starts, n, k, base) < RAMP_MARGIN_LL


def _step_over_ramp(starts: pd.Series, n: np.ndarray, k: np.ndarray, base: float) -> float:
    """How much the binomial log-likelihood of the best step (at any bucket start after the
    first, accuracy ``base`` before it, one level after) exceeds that of the best linear fall
    from the first bucket's start (at ``base`` there, to one level at some later bucket
    boundary, flat after). Each bucket's ``k`` right of ``n`` labels is placed at its centre;
    the level is searched on a grid of 200 values below ``base``."""
    times = pd.to_datetime(starts, utc=True).reset_index(drop=True)
    hours = ((times - times.iloc[0]) / pd.Timedelta(hours=1)).to_numpy(float)
    width = float(np.diff(hours).min()) if len(hours) > 1 else 1.0
    centre = hours + width / 2
    ends = np.unique(np.concatenate([hours[1:], [hours[-1] + width]]))
    levels = np.linspace(0.0, base, 201)[1:]  # the level after the fall, below the baseline's
    base = min(max(base, 1e-9), 1 - 1e-9)

    def best(shares: np.ndarray) -> float:
        """Largest log-likelihood over the fall's level, for each row of ``shares`` (the
        part of the fall reached at each bucket's centre)."""
        p = base + (levels[None, :, None] - base) * shares[:, None, :]
        p = np.clip(p, 1e-9, 1 - 1e-9)
        ll = (k * np.log(p) + (n - k) * np.log1p(-p)).sum(axis=2)
        return float(ll.max())

    steps = (centre[None, :] >= hours[1:, None]).astype(float)
    falls = np.clip(centre[None, :] / ends[:, None], 0.0, 1.0)
    return best(steps) - best(falls)


def _split_shown(k_before: float, n_before: float, k_after: float, n_after: float,
                 base_correct: float, base_labelled: float) -> bool:
    """Whether the window's labels before a split show it: their accuracy above that of the
    labels after it and not below the baseline's (one-sided two-proportion z-tests at
    :data:`SPLIT_P`)."""
    if n_before < 1:
        return False
    above = _higher_p(k_before, n_before, k_after, n_after)
    below = _higher_p(base_correct, base_labelled, k_before, n_before)
    return above < SPLIT_P and not below < SPLIT_P


def _higher_p(k1: float, n1: float, k2: float, n2: float) -> float:
    """One-sided p-value that the first proportion exceeds the second (pooled z-test)."""
    z, _ = st.two_proportion_z(k1, n1, k2, n2)
    return 1.0 if not np.isfinite(z) else float(stats.norm.cdf(z))


def _metrics(frame: pd.DataFrame) -> pd.DataFrame:
    """Add accuracy, precision, recall, F1 and their Wilson intervals to count columns."""
    frame = frame.copy()
    n, ok = frame["labelled"].to_numpy(float), frame["correct"].to_numpy(float)
    tp, fp, fn = (frame[c].to_numpy(float) for c in ("tp", "fp", "fn"))
    with np.errstate(divide="ignore", invalid="ignore"):
        frame["accuracy"] = ok / n
        frame["precision"] = tp / (tp + fp)
        frame["recall"] = tp / (tp + fn)
        frame["f1"] = 2 * tp / (2 * tp + fp + fn)
    for name, k, m in (("accuracy", ok, n), ("precision", tp, tp + fp), ("recall", tp, tp + fn),
                       ("f1", 2 * tp, 2 * tp + fp + fn)):
        lo, hi = st.wilson_interval(k, m)
        frame[f"{name}_lo"], frame[f"{name}_hi"] = lo, hi
    return frame


def _ranking(case: CaseView, record: Recorder, rows: ibis.Table, positive: str | None,
             score_is: str) -> tuple[pd.DataFrame, NotAssessed | None]:
    """ROC AUC and PR AUC per window (see the module documentation and
    :func:`ranking_from_counts`); NaN and the reason when they cannot be computed."""
    empty = pd.DataFrame({"window": ["baseline", "incident"], "roc_auc": np.nan,
                          "pr_auc": np.nan})
    if "score" not in case.columns["requests"]:
        return empty, NotAssessed(f"{ID}:auc", "requests carry no score for ROC and PR AUC")
    if positive is None:
        return empty, NotAssessed(f"{ID}:auc", "no positive class for ROC and PR AUC")
    rows = rows.filter(rows.score.notnull())
    check = score_semantics(record, rows, positive)
    if not check["rows"]:
        return empty, NotAssessed(f"{ID}:auc", "no labelled prediction has a score")
    classes = max(check["classes"], check["label_classes"])
    if classes > 2:
        return empty, NotAssessed(f"{ID}:auc", "ROC and PR AUC are for binary tasks; "
                                  f"{classes} classes here")
    problem = score_problem(check, score_is, positive)
    if problem:
        return empty, NotAssessed(f"{ID}:auc", problem)
    pos = ibis.literal(positive)
    score = rows.score.cast("float64")
    p = score if score_is == "p_positive" else ibis.cases((rows.prediction == pos, score),
                                                          else_=1 - score)
    y = (rows.label == pos).cast("int64")
    # positives and negatives per window and distinct P(positive): a hash aggregate in the
    # engine; the running sums over the sorted distinct values are numpy's (DuckDB's ordered
    # window sums took 0.6 of the 0.7 s at 1M requests, numpy's a few milliseconds)
    # (keyed by a boolean rather than the window's name: a third less to fetch)
    marked = rows.mutate(_p=p, _y=y)
    per = record(marked.group_by(incident=marked._window == "incident", p=marked._p).aggregate(
        pos=marked._y.sum(), n=marked.count()))
    out = []
    for window in ("baseline", "incident"):
        part = per[per["incident"].astype(bool) == (window == "incident")]
        out.append({"window": window} | ranking_from_counts(
            part["p"].to_numpy(float), part["pos"].to_numpy(float),
            (part["n"] - part["pos"]).to_numpy(float)))
    return pd.DataFrame(out), None


def ranking_from_counts(p: np.ndarray, positives: np.ndarray, negatives: np.ndarray
                        ) -> dict[str, float]:
    """ROC AUC and average precision from positives and negatives per distinct score ``p``.

    ``ROC AUC = sum_s P_s (N_{<s} + N_s / 2) / (P N)``; ``AP = sum_s (P_s / P) TP_{>=s} /
    (TP_{>=s} + FP_{>=s})``. NaN unless both classes occur.

    Examples
    --------
    >>> r = ranking_from_counts(np.array([0.9, 0.8, 0.6, 0.4, 0.3]), np.array([1, 1, 0, 1, 0]),
    ...                         np.array([0, 1, 1, 0, 1]))
    >>> round(r["roc_auc"], 4), round(r["pr_auc"], 4)   # 6.5 / 9; 1/3 + 2/9 + 1/5
    (0.7222, 0.7556)
    """
    order = np.argsort(p, kind="stable")
    pos, neg = np.asarray(positives, float)[order], np.asarray(negatives, float)[order]
    n_pos, n_neg = pos.sum(), neg.sum()
    if not (n_pos > 0 and n_neg > 0):
        return {"roc_auc": float("nan"), "pr_auc": float("nan")}
    below = np.cumsum(neg) - neg  # negatives with a lower score
    roc = float(np.sum(pos * (below + neg / 2)) / (n_pos * n_neg))
    tp = n_pos - (np.cumsum(pos) - pos)  # positives with this score or higher
    seen = (n_pos + n_neg) - (np.cumsum(pos + neg) - (pos + neg))
    ap = float(np.sum(pos * tp / seen) / n_pos)
    return {"roc_auc": roc, "pr_auc": ap}


# --- multiclass -------------------------------------------------------------------------------

#: Scores are rounded to this many decimals for the one-vs-rest ROC / PR AUC (the groups per
#: distinct score stay bounded on millions of rows; exact for scores logged at that precision).
AUC_DECIMALS = 4
#: Confusion moves listed in a finding's evidence.
TOP_MOVES = 3


def _windows_and_totals(case: CaseView, record: Recorder, baseline: Window, incident: Window,
                        info: Any) -> tuple[Window, pd.DataFrame]:
    from toolkit.diagnose._tasks import task_filter

    span = Window(min(baseline.start, incident.start), max(baseline.end, incident.end))
    requests = task_filter(case, info, case.table("requests"))
    in_span = requests.filter(within(requests.ts, span))
    in_span = in_span.mutate(_window=window_label(in_span.ts, baseline, incident))
    totals = record(in_span.group_by(window=in_span._window).aggregate(
        requests=in_span.count()))
    return span, totals


def _delays(record: Recorder, windows: ibis.Table) -> pd.DataFrame:
    delay = (epoch_us(windows.labeled_at) - epoch_us(windows.ts)) / 3.6e9
    frame = record(windows.group_by(window=windows._window).aggregate(
        delay_q=delay.approx_quantile([0.5, 0.9])))
    q = np.array([d if isinstance(d, (list, np.ndarray)) else [np.nan, np.nan]
                  for d in frame.pop("delay_q")], dtype=float).reshape(len(frame), 2)
    frame["delay_p50_h"], frame["delay_p90_h"] = q[:, 0], q[:, 1]
    return frame


def _multiclass(case: CaseView, base: dict[str, Any], info: Any, bucket: timedelta | None
                ) -> PerformanceResult:
    """Multiclass performance: accuracy, macro / weighted F1, per-class precision and recall,
    the confusion matrix per window and its change, one-vs-rest ROC / PR AUC with ``scores``."""
    from toolkit.diagnose._tasks import task_labelled

    baseline, incident = base["baseline"], base["incident"]
    record = Recorder(joins_as_written=True)
    span, totals = _windows_and_totals(case, record, baseline, incident, info)
    width = bucket or choose_bucket(span.duration)
    t = task_labelled(case, record, span, info)
    t = t.mutate(_window=window_label(t.ts, baseline, incident))
    gaps: list[NotAssessed] = []
    has_version = "model_version" in t.columns
    windows = t.filter(t._window.notnull())
    keys = {"window": windows._window, "label": windows.label,
            "prediction": windows.prediction}
    if has_version:
        keys["model_version"] = windows.model_version
    # the confusion counts per window (and version): every classification metric is a sum
    cells = record(windows.group_by(**keys).aggregate(n=windows.count(),
                                                      first_seen=windows.ts.min()))
    missing = [w for w in ("baseline", "incident") if w not in set(cells["window"])]
    if missing:
        return PerformanceResult(**base, task="multiclass", sql=record.sql, not_assessed=(
            *gaps, *(NotAssessed(ID, f"no labels in the {m} window") for m in missing)))
    buckets = record(t.group_by(bucket_start=bucket_expr(t.ts, width)).aggregate(
        labelled=t.count(), correct=t.correct.cast("int64").sum()))
    confusion = cells.groupby(["window", "label", "prediction"], as_index=False)["n"].sum()
    rows, per_class = [], []
    for window in ("baseline", "incident"):
        metrics, classes = multiclass_metrics(confusion[confusion["window"] == window])
        rows.append({"window": window} | metrics)
        per_class.append(classes.assign(window=window))
    per_window = pd.DataFrame(rows)
    lo, hi = st.wilson_interval(per_window["correct"].to_numpy(float),
                                per_window["labelled"].to_numpy(float))
    per_window["accuracy_lo"], per_window["accuracy_hi"] = lo, hi
    ranking, gap = _ovr_ranking(case, record, baseline, incident, info)
    if gap is not None:
        gaps.append(gap)
    per_window = per_window.merge(totals, on="window", how="left").merge(
        _delays(record, windows), on="window", how="left").merge(ranking, on="window",
                                                                 how="left")
    per_window["coverage"] = per_window["labelled"] / per_window["requests"]
    by_version = pd.DataFrame()
    if has_version:
        versions = cells.assign(ok=(cells["label"] == cells["prediction"]) * cells["n"])
        by_version = versions.groupby(["window", "model_version"], as_index=False,
                                      dropna=False).agg(
            labelled=("n", "sum"), correct=("ok", "sum"), first_seen=("first_seen", "min"))
        by_version["accuracy"] = by_version["correct"] / by_version["labelled"]
        lo, hi = st.wilson_interval(by_version["correct"].to_numpy(float),
                                    by_version["labelled"].to_numpy(float))
        by_version["accuracy_lo"], by_version["accuracy_hi"] = lo, hi
    timeline = buckets[buckets["labelled"] >= MIN_LABELS].sort_values(
        "bucket_start", ignore_index=True)
    timeline["accuracy"] = timeline["correct"] / timeline["labelled"]
    lo, hi = st.wilson_interval(timeline["correct"].to_numpy(float),
                                timeline["labelled"].to_numpy(float))
    timeline["accuracy_lo"], timeline["accuracy_hi"] = lo, hi
    timeline["precision"] = timeline["precision_lo"] = timeline["precision_hi"] = np.nan
    return PerformanceResult(
        **base, task="multiclass", table=per_window, by_version=by_version,
        timeline=timeline, per_class=pd.concat(per_class, ignore_index=True),
        confusion=confusion.sort_values(["window", "label", "prediction"], ignore_index=True),
        confusion_change=confusion_change(confusion), sql=record.sql, not_assessed=tuple(gaps))


def multiclass_metrics(confusion: pd.DataFrame) -> tuple[dict[str, float], pd.DataFrame]:
    """Accuracy, macro and weighted precision / recall / F1 from confusion counts.

    ``confusion`` has ``label``, ``prediction`` and ``n``. The classes are those seen as a
    label or a prediction (scikit-learn's default ``labels``); a class with no predicted (or
    no true) rows has precision (recall) 0, as scikit-learn's ``zero_division=0``. Weighted
    averages weight each class by its support (true rows). Per class: ``support``,
    ``predicted``, ``tp``, precision and recall with Wilson intervals, F1.

    Examples
    --------
    >>> c = pd.DataFrame({"label": ["a", "a", "b", "c"], "prediction": ["a", "b", "b", "a"],
    ...                   "n": [3, 1, 2, 2]})
    >>> m, per = multiclass_metrics(c)
    >>> float(m["accuracy"]), round(m["macro_f1"], 4), per["tp"].tolist()  # F1 2/3, 4/5, 0
    (0.625, 0.4889, [3, 2, 0])
    """
    labels = confusion["label"].astype(str)
    predictions = confusion["prediction"].astype(str)
    n = confusion["n"].to_numpy(float)
    classes = sorted(set(labels) | set(predictions))
    support = np.array([n[(labels == c).to_numpy()].sum() for c in classes])
    predicted = np.array([n[(predictions == c).to_numpy()].sum() for c in classes])
    tp = np.array([n[((labels == c) & (predictions == c)).to_numpy()].sum() for c in classes])
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(support + predicted > 0, 2 * tp / (support + predicted), 0.0)
    total = n.sum()
    weights = support / support.sum() if support.sum() else np.zeros(len(classes))
    p_lo, p_hi = st.wilson_interval(tp, predicted)
    r_lo, r_hi = st.wilson_interval(tp, support)
    per_class = pd.DataFrame({
        "class": classes, "support": support.astype(int), "predicted": predicted.astype(int),
        "tp": tp.astype(int), "precision": precision, "precision_lo": p_lo,
        "precision_hi": p_hi, "recall": recall, "recall_lo": r_lo, "recall_hi": r_hi, "f1": f1})
    metrics = {
        "labelled": total, "correct": tp.sum(), "accuracy": tp.sum() / total if total else
        float("nan"),
        "macro_precision": float(precision.mean()), "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()), "weighted_precision": float((weights * precision).sum()),
        "weighted_recall": float((weights * recall).sum()),
        "weighted_f1": float((weights * f1).sum()), "classes": len(classes)}
    # the binary columns carry the macro averages, so that tables and rules read one schema
    metrics |= {"precision": metrics["macro_precision"], "recall": metrics["macro_recall"],
                "f1": metrics["macro_f1"]}
    return metrics, per_class


def confusion_change(confusion: pd.DataFrame) -> pd.DataFrame:
    """Where each true class's rows went, baseline against incident.

    One row per (``label``, ``prediction``) cell: its share of the label's rows in each window
    (``baseline_share``, ``incident_share``), the ``change``, and a two-proportion z-test
    ``pvalue``; sorted by the size of the change, off-diagonal moves first on ties. The largest
    positive off-diagonal changes say which classes moved where.
    """
    wide = confusion.pivot_table(index=["label", "prediction"], columns="window", values="n",
                                 aggfunc="sum", fill_value=0)
    for window in ("baseline", "incident"):
        if window not in wide:
            wide[window] = 0
    wide = wide.reset_index()
    totals = {w: wide.groupby("label")[w].transform("sum").to_numpy(float)
              for w in ("baseline", "incident")}
    with np.errstate(divide="ignore", invalid="ignore"):
        b = wide["baseline"].to_numpy(float) / totals["baseline"]
        i = wide["incident"].to_numpy(float) / totals["incident"]
    pvalues = [st.two_proportion_z(kb, nb, ki, ni)[1] for kb, nb, ki, ni in zip(
        wide["baseline"], totals["baseline"], wide["incident"], totals["incident"],
        strict=True)]
    out = pd.DataFrame({"label": wide["label"].astype(str),
                        "prediction": wide["prediction"].astype(str),
                        "baseline_n": wide["baseline"].astype(int),
                        "incident_n": wide["incident"].astype(int),
                        "baseline_share": b, "incident_share": i, "change": i - b,
                        "pvalue": pvalues})
    out["_size"] = out["change"].abs().fillna(0)
    out["_diagonal"] = out["label"] == out["prediction"]
    return out.sort_values(["_size", "_diagonal", "label", "prediction"],
                           ascending=[False, True, True, True], ignore_index=True).drop(
        columns=["_size", "_diagonal"])


def _ovr_ranking(case: CaseView, record: Recorder, baseline: Window, incident: Window,
                 info: Any) -> tuple[pd.DataFrame, NotAssessed | None]:
    """Macro one-vs-rest ROC AUC and PR AUC per window from ``scores`` (scikit-learn's
    ``roc_auc_score(multi_class="ovr")`` and ``average_precision_score`` on the binarised
    labels, averaged over the classes that occur as labels in the window). Scores are rounded
    to :data:`AUC_DECIMALS` decimals in the engine, then counted per window, class and score
    (on a deterministic sample beyond :data:`~toolkit.diagnose._tasks.SCORES_SAMPLE_ROWS`
    labelled predictions: ``scores_fraction`` in the table)."""
    from toolkit.diagnose._tasks import scored_rows

    empty = pd.DataFrame({"window": ["baseline", "incident"], "roc_auc": np.nan,
                          "pr_auc": np.nan, "scores_fraction": np.nan})
    check = f"{ID}:auc"
    if "scores" not in case.columns["requests"]:
        return empty, NotAssessed(check, "ROC and PR AUC from score are for binary tasks; "
                                  f"this multiclass task ({len(info.classes)} classes) needs "
                                  "per-class scores (the scores column) for one-vs-rest AUC")
    if len(info.classes) < 2:
        return empty, NotAssessed(check, "fewer than two classes for ROC and PR AUC")
    scored = scored_rows(case, record, baseline, incident, info)
    long = scored.pairs()
    # one integer key per window, class and rounded score: hashes faster than three columns
    # (0.48 against 0.79 s for 6M pairs)
    grid = 10**AUC_DECIMALS
    key = ((long._window == "incident").cast("int64") * len(scored.classes) + long._c) * \
        (grid + 1) + (long._p * grid).round().cast("int64")
    counts = record(long.group_by(key=key).aggregate(
        pos=(long._y == long._c).cast("int64").sum(), n=long.count()))
    if counts.empty:
        return empty, NotAssessed(check, "no labelled prediction has scores")
    cell, ticks = np.divmod(counts["key"].to_numpy(np.int64), grid + 1)
    window_code, counts["c"] = np.divmod(cell, len(scored.classes))
    counts["incident"] = window_code == 1
    counts["p"] = ticks / grid
    out = []
    for window in ("baseline", "incident"):
        part = counts[counts["incident"].astype(bool) == (window == "incident")]
        roc, ap = [], []
        for _, cls in part.groupby("c"):
            if cls["pos"].sum() == 0:
                continue  # a class absent from the window's labels has no curve
            r = ranking_from_counts(cls["p"].to_numpy(float), cls["pos"].to_numpy(float),
                                    (cls["n"] - cls["pos"]).to_numpy(float))
            roc.append(r["roc_auc"])
            ap.append(r["pr_auc"])
        out.append({"window": window, "roc_auc": float(np.mean(roc)) if roc else np.nan,
                    "pr_auc": float(np.mean(ap)) if ap else np.nan,
                    "scores_fraction": scored.fraction})
    return pd.DataFrame(out), None


def _with_task(result: PerformanceResult, finding: Finding) -> Finding:
    """A multiclass finding: the binary evidence plus the task, macro / weighted F1 and the
    largest confusion moves."""
    evidence = dict(finding.evidence, task=result.task)
    if finding.id == "model.accuracy_drop":
        moves = result.confusion_change
        moves = moves[(moves["label"] != moves["prediction"]) & (moves["change"] > 0)]
        evidence |= {
            "macro_f1_baseline": result.value("baseline", "macro_f1"),
            "macro_f1_incident": result.value("incident", "macro_f1"),
            "weighted_f1_baseline": result.value("baseline", "weighted_f1"),
            "weighted_f1_incident": result.value("incident", "weighted_f1"),
            "moves": [{"label": r.label, "prediction": r.prediction, "change": float(r.change)}
                      for r in moves.head(TOP_MOVES).itertuples()]}
        if evidence["moves"]:
            top = evidence["moves"][0]
            finding = replace(finding, summary=finding.summary + (
                f" Largest move: true {top['label']} predicted {top['prediction']} "
                f"{top['change']:+.1%} of its rows."))
    return replace(finding, evidence=evidence)


# --- regression -------------------------------------------------------------------------------

#: A relative MAE increase from which the error rose (10%; high from 25%).
MIN_ERROR_RISE = 0.10
MAJOR_ERROR_RISE = 0.25
#: MAPE is reported when the smallest |label| in the window is at least this share of the
#: mean |label| (a label near 0 makes the percentage error explode).
MAPE_FLOOR = 0.01
#: Columns whose values are segments of the regression error (those the case has).
SEGMENTS = ("endpoint", "model_version", "host", "client_version", "pipeline_version")
_Z = 1.959963984540054


def _error_sums(rows: ibis.Table) -> dict[str, ibis.Value]:
    e = rows._e
    ape = ibis.cases((rows._y != 0, e.abs() / rows._y.abs()), else_=ibis.null("float64"))
    return {"labelled": e.count(), "se": e.sum(), "se2": (e * e).sum(),
            "se4": (e * e * e * e).sum(), "sae": e.abs().sum(),
            "sape": ape.sum(), "sape2": (ape * ape).sum(), "min_abs_y": rows._y.abs().min(where=rows._e.notnull()),
            "sabs_y": rows._y.abs().sum(where=rows._e.notnull())}


def regression_metrics(frame: pd.DataFrame) -> pd.DataFrame:
    """MAE, RMSE, bias, MAPE and their 95% intervals from per-group error sums.

    ``frame`` has ``labelled`` (n) and the sums of ``e = prediction - label``: ``se``,
    ``se2``, ``se4``, ``sae`` (|e|), ``sape``, ``sape2`` (|e| / |label|), ``min_abs_y`` and
    ``sabs_y``. Intervals are analytic (central limit): ``mean +- 1.96 sd / sqrt(n)`` for MAE,
    bias and MAPE; the MSE's interval, square-rooted, for RMSE. MAPE is NaN when a label is
    near 0 (see :data:`MAPE_FLOOR`).

    Examples
    --------
    >>> f = pd.DataFrame({"labelled": [4], "se": [2.0], "se2": [10.0], "se4": [82.0],
    ...     "sae": [6.0], "sape": [1.5], "sape2": [0.75], "min_abs_y": [2.0],
    ...     "sabs_y": [16.0]})
    >>> m = regression_metrics(f)
    >>> float(m["mae"][0]), float(m["rmse"][0]), float(m["bias"][0]), float(m["mape"][0])
    (1.5, 1.5811388300841898, 0.5, 0.375)
    """
    out = frame.copy()
    n = out["labelled"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_e, mean_e2 = out["se"] / n, out["se2"] / n
        mae = out["sae"] / n
        mse = mean_e2
        mape = out["sape"] / n
        sd_abs = np.sqrt(np.maximum(mean_e2 - mae**2, 0) * n / np.maximum(n - 1, 1))
        sd_e = np.sqrt(np.maximum(mean_e2 - mean_e**2, 0) * n / np.maximum(n - 1, 1))
        sd_sq = np.sqrt(np.maximum(out["se4"] / n - mse**2, 0) * n / np.maximum(n - 1, 1))
        sd_ape = np.sqrt(np.maximum(out["sape2"] / n - mape**2, 0) * n / np.maximum(n - 1, 1))
        root = np.sqrt(n)
        meaningful = out["min_abs_y"] >= MAPE_FLOOR * out["sabs_y"] / n
    out["mae"], out["bias"], out["rmse"] = mae, mean_e, np.sqrt(mse)
    out["mae_lo"], out["mae_hi"] = mae - _Z * sd_abs / root, mae + _Z * sd_abs / root
    out["bias_lo"], out["bias_hi"] = mean_e - _Z * sd_e / root, mean_e + _Z * sd_e / root
    out["rmse_lo"] = np.sqrt(np.maximum(mse - _Z * sd_sq / root, 0))
    out["rmse_hi"] = np.sqrt(mse + _Z * sd_sq / root)
    out["mape"] = np.where(meaningful, mape, np.nan)
    out["mape_lo"] = np.where(meaningful, mape - _Z * sd_ape / root, np.nan)
    out["mape_hi"] = np.where(meaningful, mape + _Z * sd_ape / root, np.nan)
    out["mae_sd"] = sd_abs
    return out


def numeric_errors(rows: ibis.Table) -> ibis.Table:
    """``rows`` with ``_yhat`` and ``_y`` (prediction and label as numbers) and ``_e = _yhat -
    _y``; rows where either does not parse as a number keep NULLs (counted apart)."""
    rows = rows.mutate(_yhat=rows.prediction.try_cast("float64"),
                       _y=rows.label.try_cast("float64"))
    return rows.mutate(_e=rows._yhat - rows._y)


def _regression(case: CaseView, base: dict[str, Any], info: Any, bucket: timedelta | None
                ) -> PerformanceResult:
    """Regression performance: MAE, RMSE, bias and MAPE with analytic intervals per window,
    model version, time bucket and segment."""
    from toolkit.diagnose._tasks import task_labelled

    baseline, incident = base["baseline"], base["incident"]
    record = Recorder(joins_as_written=True)
    span, totals = _windows_and_totals(case, record, baseline, incident, info)
    width = bucket or choose_bucket(span.duration)
    t = task_labelled(case, record, span, info)
    t = numeric_errors(t.mutate(_window=window_label(t.ts, baseline, incident)))
    gaps: list[NotAssessed] = []
    has_version = "model_version" in t.columns
    keys = {"bucket_start": bucket_expr(t.ts, width), "window": t._window}
    if has_version:
        keys["model_version"] = t.model_version
    # one scan: the error sums per bucket, window and version (rows whose prediction or label
    # is no number are counted apart, never mixed in)
    cells = record(t.group_by(**keys).aggregate(**_error_sums(t), first_seen=t.ts.min(),
                                                unparsed=t._e.isnull().cast("int64").sum()))
    unparsed = cells.loc[cells["window"].notna(), "unparsed"].sum()
    cells = cells[cells["labelled"] > 0]
    if unparsed:
        gaps.append(NotAssessed(f"{ID}:unparsed", f"{int(unparsed)} labelled predictions in "
                                "the windows have a prediction or a label that is not a "
                                "number; they are left out of the error metrics"))
    summed = ["labelled", "se", "se2", "se4", "sae", "sape", "sape2", "sabs_y"]
    agg = {c: (c, "sum") for c in summed} | {"min_abs_y": ("min_abs_y", "min")}
    in_windows = cells[cells["window"].notna()]
    missing = [w for w in ("baseline", "incident") if w not in set(in_windows["window"])]
    if missing:
        return PerformanceResult(**base, task="regression", sql=record.sql, not_assessed=(
            *gaps, *(NotAssessed(ID, f"no numeric labels in the {m} window") for m in missing)))
    per_window = regression_metrics(in_windows.groupby("window", as_index=False).agg(**agg))
    windows = t.filter(t._window.notnull())
    per_window = per_window.merge(totals, on="window", how="left").merge(
        _delays(record, windows), on="window", how="left")
    per_window["coverage"] = per_window["labelled"] / per_window["requests"]
    per_window = per_window.set_index("window").loc[["baseline", "incident"]].reset_index()
    for w in ("baseline", "incident"):
        row = per_window[per_window["window"] == w].iloc[0]
        if row["mape"] != row["mape"]:
            gaps.append(NotAssessed(f"{ID}:mape", f"MAPE in the {w} window: a label is near 0 "
                                    f"(smallest |label| {row['min_abs_y']:.4g} against a mean "
                                    f"|label| of {row['sabs_y'] / row['labelled']:.4g})"))
    by_version = pd.DataFrame()
    if has_version:
        by_version = regression_metrics(in_windows.groupby(
            ["window", "model_version"], as_index=False, dropna=False).agg(
            **agg, first_seen=("first_seen", "min")))
    timeline = regression_metrics(cells.groupby("bucket_start", as_index=False).agg(**agg))
    timeline = timeline[timeline["labelled"] >= MIN_LABELS].sort_values(
        "bucket_start", ignore_index=True)
    segments = []
    wparsed = t.filter(t._window.notnull() & t._e.notnull())
    for column in SEGMENTS:
        if column not in t.columns or column == "model_version":
            continue
        frame = record(wparsed.group_by(window=wparsed._window, value=wparsed[column])
                       .aggregate(**_error_sums(wparsed)))
        if frame["value"].nunique(dropna=False) < 2:
            continue
        segments.append(regression_metrics(frame).assign(segment=column))
    by_segment = pd.concat(segments, ignore_index=True) if segments else pd.DataFrame()
    if not by_segment.empty:
        by_segment = by_segment[["segment", "value", "window", "labelled", "mae", "mae_lo",
                                 "mae_hi", "rmse", "bias", "mape"]].sort_values(
            ["segment", "value", "window"], ignore_index=True)
    return PerformanceResult(**base, task="regression", table=per_window,
                             by_version=by_version, timeline=timeline, by_segment=by_segment,
                             sql=record.sql, not_assessed=tuple(gaps))


def _mean_test(m1: float, sd1: float, n1: float, m2: float, sd2: float, n2: float) -> float:
    """Two-sided p-value of a Welch z-test of two means (large samples)."""
    se = np.sqrt(sd1**2 / n1 + sd2**2 / n2)
    if not se > 0:
        return 0.0 if m1 != m2 else 1.0
    return float(2 * stats.norm.sf(abs(m2 - m1) / se))


def _regression_findings(result: PerformanceResult) -> list[Finding]:
    """``model.accuracy_drop`` (the error rose) and ``model.version_regression`` for a
    regression: the same ids as the classification findings, ``task = "regression"`` in the
    evidence, the statistic the relative MAE increase."""
    b = result.table.set_index("window").loc["baseline"]
    i = result.table.set_index("window").loc["incident"]
    out = []
    rise = i["mae"] / b["mae"] - 1 if b["mae"] > 0 else float("inf")
    p = _mean_test(b["mae"], b["mae_sd"], b["labelled"], i["mae"], i["mae_sd"], i["labelled"])
    if rise >= MIN_ERROR_RISE and p < 1e-3:
        out.append(Finding(
            id="model.accuracy_drop", pathway="model",
            severity="high" if rise >= MAJOR_ERROR_RISE else "medium",
            statistic=float(rise), threshold=MIN_ERROR_RISE,
            summary=(f"mean absolute error rose {rise:.1%} ({b['mae']:.4g} -> {i['mae']:.4g}); "
                     f"RMSE {b['rmse']:.4g} -> {i['rmse']:.4g}, bias {b['bias']:+.4g} -> "
                     f"{i['bias']:+.4g}."),
            evidence={"task": "regression", "mae_baseline": b["mae"], "mae_incident": i["mae"],
                      "mae_change": float(rise), "rmse_baseline": b["rmse"],
                      "rmse_incident": i["rmse"], "bias_baseline": b["bias"],
                      "bias_incident": i["bias"], "mape_baseline": b["mape"],
                      "mape_incident": i["mape"], "pvalue": p,
                      "labelled_incident": int(i["labelled"])},
            onset=coarse_onset(result.timeline, "mae", after=result.baseline.end,
                               weights="labelled", direction=1),
            diagnostic=result.id))
    v = result.by_version
    if v.empty:
        return out
    base = v[v["window"] == "baseline"].sort_values("labelled", ascending=False)
    inc = v[(v["window"] == "incident") & (v["labelled"] >= MIN_LABELS)]
    if base.empty or inc.empty:
        return out
    reference = base.iloc[0]
    worst = None
    for row in inc.itertuples():
        if str(row.model_version) == str(reference["model_version"]):
            continue
        rise = row.mae / reference["mae"] - 1 if reference["mae"] > 0 else float("inf")
        p = _mean_test(reference["mae"], reference["mae_sd"], reference["labelled"], row.mae,
                       row.mae_sd, row.labelled)
        if rise >= MIN_ERROR_RISE and p < 1e-3 and (worst is None or rise > worst[0]):
            worst = (rise, row, p)
    if worst is not None:
        rise, row, p = worst
        new = str(row.model_version) not in set(base["model_version"].astype(str))
        out.append(Finding(
            id="model.version_regression", pathway="model",
            severity="high" if rise >= MAJOR_ERROR_RISE else "medium", statistic=float(rise),
            threshold=MIN_ERROR_RISE,
            summary=(f"model {row.model_version} has {rise:.1%} more absolute error than "
                     f"{reference['model_version']} (MAE {row.mae:.4g} vs "
                     f"{reference['mae']:.4g})."),
            evidence={"task": "regression", "version": str(row.model_version),
                      "reference_version": str(reference["model_version"]),
                      "mae": float(row.mae), "reference_mae": float(reference["mae"]),
                      "mae_change": float(rise), "new_version": new,
                      "first_seen": pd.Timestamp(row.first_seen), "pvalue": p},
            onset=pd.Timestamp(row.first_seen).to_pydatetime() if new else None,
            diagnostic=result.id))
    return out
