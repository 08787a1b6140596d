"""Calibration of the model's confidence against delayed labels.

Recipe (``kind="top-label"``, the default): the forecast ``f`` is ``score`` (the model's
confidence in its ``prediction``, DESIGN section 3) and the outcome ``o`` is whether the
prediction was right. ``kind="positive-class"`` uses ``f = P(positive)`` (``score`` when the
prediction is the positive class, else ``1 - score``) and ``o = [label == positive]``, which is
netcal's binary convention.

``score_is="p_positive"`` declares that ``score`` holds P(positive) (a common export); it is
converted to the confidence in the prediction (``score`` when the prediction is the positive
class, else ``1 - score``). A binary model's scores that look like P(positive) while declared a
confidence (see :func:`score_problem`) are not assessed, with the reason: their ECE would
measure nothing (0.335 instead of about 0.005 on a census model).

* **ECE** = sum_b (n_b / n) |acc_b - conf_b| over ``bins`` bins (default 15, as Guo et al.
  2017; netcal and NannyML default to 10) of ``strategy``: ``"uniform"`` equal-width bins
  ``[k/bins, (k+1)/bins)`` on [0, 1] (the last closed), or ``"quantile"`` equal-mass bins
  ``(e_{k-1}, e_k]`` with edges at the window's own forecast quantiles (Nixon et al. 2019's
  adaptive binning; rows between the windows use the incident's edges in the timeline).
  ``ece_equal_width`` and ``ece_equal_mass`` give both on the same number of bins.
  **MCE** = max over non-empty bins of |acc_b - conf_b|.
* **Brier** = mean (f - o)^2 and its decomposition over the same bins:
  ``brier = reliability - resolution + uncertainty + within_bin_variance - 2 *
  within_bin_covariance`` (Murphy 1973 with the two within-bin terms of Stephenson, Coelho &
  Jolliffe 2008); the identity holds exactly.
* ``confident_error_share``: share of labelled predictions that are wrong with ``f >=
  threshold`` (default 0.85, the decision threshold in the published quantization incident).

All sums are aggregated per window, bin, model version and time bucket in the engine. Every
recipe, with its source, is in ``docs/recipes.md``.

Findings: ``model.calibration_shift`` when, with at least 500 labelled predictions in each window,
the incident ECE exceeds the baseline's by at least 0.01 and is at least twice it (high from
+0.02 and three times). A well-calibrated model's ECE is small (it cannot exceed its error
rate, so a 96%-accurate model sits near 0.005), which is why the rule is relative. The rise
must also hold beyond sampling noise: each window's ECE less the ECE a calibrated model shows
by chance on its labels (:meth:`CalibrationResult.ece_noise`, about 0.01 for 500 labels at 95%
confidence; evidence ``ece_noise``) must have risen by at least 0.01 (a healthy varied tuning
case's 541 incident labels gave an ECE of 0.020 against a noise floor of 0.018). Evidence
includes the accuracy change (a calibration collapse keeps accuracy within 1-2 points) and the
confident-error shares; the versions compared are named when a new model version serves the
incident.

**Tasks** (the case's main task, :attr:`CaseView.task`): ``binary`` (above, unchanged),
``multiclass`` and ``regression``; ``generative`` is not assessed, with the reason.

**Per endpoint**: a case whose endpoints serve several tasks is measured for its main task
(the one serving most requests, over its endpoints: the result's own tables), and every
endpoint of another task on its own with its own task (``result.endpoints``, endpoint name ->
a result of this diagnostic). Findings of such a case name their endpoint (``endpoint
<name>:`` in the summary, ``evidence["endpoint"]``); the endpoints' ``not_assessed`` reasons
join the result's, naming the endpoint. A case of one task is unchanged.

* **multiclass**: everything above on the top label (``score``, the confidence in the
  prediction), plus the **classwise ECE** from ``scores`` (Kull et al. 2019): for each class
  ``k``, ``ECE_k = sum_b (n_b / n) |freq_b - conf_b|`` with forecast ``p_k`` (0 when missing
  from a row's object) and outcome ``[label == k]`` on the same equal-width ``bins``; the
  classwise ECE is the mean over the task's classes (``classwise``, ``class_bins`` for the
  per-class reliability diagrams, ``classwise_ece`` per window). Beyond 500,000 labelled
  predictions with scores, a deterministic sample of 500,000 is read (parsing every JSON
  object would dominate the run); ``scores_fraction`` says the share. Without ``scores``:
  ``model.calibration:classwise`` in ``not_assessed``.
* **regression**: the coverage of ``[pred_lower, pred_upper]`` (labels inside, bounds
  included) with Wilson intervals against the nominal coverage the ``endpoints`` catalog
  declares (``shortfall = nominal - coverage``), the mean interval width, and the drift of
  the residuals ``label - prediction`` (mean, spread, PSI and KS on the baseline's residual
  deciles), per window, model version and time bucket. **PIT**: a PIT histogram needs the
  predictive CDF at each label (logged quantiles or a distribution); the canonical schema
  carries one interval, which gives the PIT in three bins only: ``below_share`` (label under
  ``pred_lower``), ``coverage`` (inside) and ``above_share`` (over ``pred_upper``), each
  expected near ``(1 - nominal) / 2`` outside a central interval. Their imbalance says on
  which side the intervals miss (a bias), which the coverage alone does not.

Findings keep the id ``model.calibration_shift`` with ``task`` in the evidence:

* multiclass, ``basis = "top-label"``: the rule above; evidence adds ``task``,
  ``classwise_ece_baseline``/``_incident``, ``worst_class`` and
  ``worst_class_ece_baseline``/``_incident``. ``basis = "classwise"``: raised when only the
  classwise ECE rises, by the same thresholds (statistic the incident classwise ECE); evidence
  the same keys plus ``ece_baseline``/``_incident`` (top label), ``accuracy_change`` and
  ``versions`` as above.
* regression, ``basis = "interval_coverage"``: coverage fell by at least 5 points
  (two-proportion z-test p < 0.001, at least 30 intervals per window; high from 15 points);
  statistic the fall; evidence ``task``, ``coverage_baseline``/``_incident``, ``nominal``,
  ``coverage_drop``, ``pvalue``, ``mean_width_baseline``/``_incident``,
  ``residual_mean_baseline``/``_incident``, ``residual_sd_baseline``/``_incident``,
  ``residual_psi``, ``mae_change`` (relative), ``accuracy_change`` (= -``mae_change``, so
  that rules testing "accuracy held" read the error the same way) and ``versions``
  (``before``, ``after``, ``first_seen_after``, ``coverage_before``, ``coverage_after``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import ibis
import numpy as np
import pandas as pd

from toolkit._validation import check_interval, check_option, check_windows
from toolkit.diagnose._base import DiagnosticResult, Finding, NotAssessed, timeline_signals
from toolkit.diagnose._case import CaseView, case_view, choose_bucket
from toolkit.diagnose._engine import Recorder, bucket_expr, window_label
from toolkit.diagnose._engines import CaseSource
from toolkit.diagnose._labels import positive_class
from toolkit.diagnose._onset import coarse_onset, refine_onset
from toolkit.diagnose._tasks import endpoint_findings, per_endpoint
from toolkit.errors import InvalidParameterError
from toolkit.types import Window

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["calibration", "CalibrationResult", "ID", "calibration_summary", "score_semantics",
           "score_problem"]

ID = "model.calibration"
#: Default number of bins: Guo et al. 2017's 15 (netcal and NannyML use 10; pass ``bins=10``).
N_BINS = 15
#: Binning strategies: equal-width bins on [0, 1], or equal-mass bins on the window's quantiles.
STRATEGIES = ("uniform", "quantile")
#: What ``score`` may hold: the confidence in ``prediction``, or P(positive class).
SCORE_IS = ("confidence", "p_positive")
#: Labelled binary predictions needed before judging what the scores are.
MIN_SCORE_ROWS = 50
#: A score declared a confidence is P(positive) when at least this share is below 0.5 ...
P_POSITIVE_BELOW = 0.02
#: ... and ``score >= 0.5`` coincides with predicting the positive class this often.
P_POSITIVE_AGREEMENT = 0.98
MIN_SHIFT = 0.01
MAJOR_SHIFT = 0.02
MIN_RATIO = 2.0
MAJOR_RATIO = 3.0
MIN_LABELS = 50
MIN_WINDOW_LABELS = 500


@dataclass(frozen=True, kw_only=True, repr=False)
class CalibrationResult(DiagnosticResult):
    """ECE, MCE, Brier decomposition and reliability data, per window, version and time.

    Attributes
    ----------
    table
        One row per window: ``labelled``, ``accuracy``, ``mean_confidence``, ``ece``,
        ``ece_equal_width``, ``ece_equal_mass``, ``mce``, ``brier``, ``reliability``,
        ``resolution``, ``uncertainty``, ``within_bin_variance``, ``within_bin_covariance``,
        ``confident_error_share`` (``ece``, ``mce`` and the decomposition on ``bins`` bins of
        ``strategy``).
    reliability_bins
        Reliability-diagram data: ``window``, ``bin``, ``lo``, ``hi``, ``n``, ``confidence``,
        ``accuracy`` (the bins of ``strategy``).
    score_check
        What the scores looked like (:func:`score_semantics`).
    by_version
        The per-window metrics per ``model_version``.
    timeline
        ECE and accuracy per time bucket (buckets with at least 50 labels).
    """

    id = ID
    title = "Calibration"

    kind: str = "top-label"
    threshold: float = 0.85
    positive: str | None = None
    bins: int = N_BINS
    strategy: str = "uniform"
    score_is: str = "confidence"
    score_check: dict[str, Any] = field(default_factory=dict, repr=False)
    reliability_bins: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    by_version: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    timeline: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    task: str = "binary"
    #: multiclass: classwise ECE per window and class (``window``, ``class``, ``n``, ``ece``)
    classwise: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    #: multiclass: reliability bins per class (``window``, ``class``, ``bin``, ``lo``, ``hi``,
    #: ``n``, ``confidence``, ``frequency``)
    class_bins: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    #: multiclass: classwise ECE per window (the mean over classes of the class's ECE)
    classwise_ece: dict[str, float] = field(default_factory=dict, repr=False)
    #: multiclass: the share of the windows' labelled predictions the classwise ECE read (1.0
    #: unless more than ``_tasks.SCORES_SAMPLE_ROWS``: then a deterministic sample)
    scores_fraction: float = float("nan")
    #: regression: the nominal coverage of ``[pred_lower, pred_upper]`` (None: undeclared)
    nominal: float | None = None
    #: regression: residual counts per window on the baseline's residual deciles
    residual_bins: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    #: a case of several tasks: the result of every endpoint of another task than the main
    #: one, by endpoint name (each measured on its own with its own task)
    endpoints: dict[str, CalibrationResult] = field(default_factory=dict, repr=False)
    #: the endpoints this result measures, named when ``endpoints`` is not empty
    main_endpoints: tuple[str, ...] = ()

    def value(self, window: str, column: str) -> float:
        """``column`` of ``window``'s row; NaN when the window or the column (a measure of
        another task, e.g. ``ece`` of a regression) is absent."""
        if self.table.empty or column not in self.table:
            return float("nan")
        rows = self.table[self.table["window"] == window]
        return float(rows[column].iloc[0]) if len(rows) else float("nan")

    def headline(self) -> dict[str, Any]:
        if self.task == "regression" and not self.table.empty:
            return {"task": self.task, "nominal coverage": self.nominal} | {
                f"{name} {w}": self.value(w, column) for name, column in (
                    ("interval coverage", "coverage"), ("residual mean", "residual_mean"))
                for w in ("baseline", "incident")} | {
                "residual PSI": self.value("incident", "residual_psi")}
        if self.task == "multiclass" and self.classwise_ece:
            extra = {"task": self.task,
                     "classwise ECE baseline": self.classwise_ece.get("baseline", np.nan),
                     "classwise ECE incident": self.classwise_ece.get("incident", np.nan)}
            return (self._binary_headline() if not self.table.empty else {}) | extra
        return self._binary_headline()

    def _binary_headline(self) -> dict[str, Any]:
        if self.table.empty:
            return {}
        return {
            "ECE baseline": self.value("baseline", "ece"),
            "ECE incident": self.value("incident", "ece"),
            "MCE incident": self.value("incident", "mce"),
            "Brier incident": self.value("incident", "brier"),
            f"wrong with confidence >= {self.threshold}": self.value(
                "incident", "confident_error_share"),
            "accuracy change": self.value("incident", "accuracy") -
            self.value("baseline", "accuracy"),
        }

    def findings(self) -> list[Finding]:
        """The main task's findings and, in a case of several tasks, every other endpoint's,
        each naming its endpoint (``evidence["endpoint"]``)."""
        return endpoint_findings(self, self.own_findings())

    def own_findings(self) -> list[Finding]:
        """The findings of this result's own rows (the main task's endpoints)."""
        if self.task == "regression":
            return _interval_findings(self)
        found = self._top_label_findings()
        if self.task != "multiclass":
            return found
        return _classwise_findings(self, found)

    def _top_label_findings(self) -> list[Finding]:
        if len(self.table) < 2:
            return []
        b_ece, i_ece = self.value("baseline", "ece"), self.value("incident", "ece")
        shift = i_ece - b_ece
        enough = min(self.value("baseline", "labelled"), self.value("incident", "labelled"))
        b_noise, i_noise = self.ece_noise("baseline"), self.ece_noise("incident")
        # the rise of the ECE beyond what sampling noise gives a calibrated model
        beyond = max(i_ece - i_noise, 0.0) - max(b_ece - b_noise, 0.0)
        if not (enough >= MIN_WINDOW_LABELS and shift >= MIN_SHIFT and
                i_ece >= MIN_RATIO * b_ece and not beyond < MIN_SHIFT):
            return []
        high = shift >= MAJOR_SHIFT and i_ece >= MAJOR_RATIO * b_ece
        evidence = {
            "ece_baseline": b_ece, "ece_incident": i_ece,
            "ece_equal_mass_incident": self.value("incident", "ece_equal_mass"),
            "accuracy_change": self.value("incident", "accuracy") -
            self.value("baseline", "accuracy"),
            "confident_error_share_baseline": self.value("baseline", "confident_error_share"),
            "confident_error_share_incident": self.value("incident", "confident_error_share"),
            "mean_confidence_change": self.value("incident", "mean_confidence") -
            self.value("baseline", "mean_confidence"),
            "threshold": self.threshold,
            "ece_noise": [b_noise, i_noise],
        }
        versions = self._version_change()
        onset = self.refined_onsets.get("model.calibration_shift") or coarse_onset(
            self.timeline, "ece", after=self.baseline.end, weights="labelled", direction=1)
        if versions:
            evidence["versions"] = versions
            if versions["after"] not in set(self.by_version.loc[
                    self.by_version["window"] == "baseline", "model_version"].astype(str)):
                # the new version's first answer is when its calibration started
                onset = pd.Timestamp(versions["first_seen_after"]).to_pydatetime()
        return [Finding(
            id="model.calibration_shift", pathway="model",
            severity="high" if high else "medium", statistic=i_ece,
            threshold=b_ece + MIN_SHIFT,
            summary=(f"ECE rose from {b_ece:.3f} to {i_ece:.3f} while accuracy changed by "
                     f"{evidence['accuracy_change']:+.1%}; wrong answers with confidence >= "
                     f"{self.threshold}: {evidence['confident_error_share_baseline']:.1%} -> "
                     f"{evidence['confident_error_share_incident']:.1%}."),
            evidence=evidence, onset=onset, diagnostic=self.id,
        )]

    def ece_noise(self, window: str) -> float:
        """The ECE a calibrated model would show on this window's labels by chance alone.

        In a bin of ``n_b`` labels with mean confidence ``c_b``, a calibrated model's accuracy
        deviates from ``c_b`` by a binomial mean's error, whose expected absolute value is
        ``sqrt(2 / pi) sqrt(c_b (1 - c_b) / n_b)``; weighted by ``n_b / n`` that is
        ``sum_b sqrt(2 n_b c_b (1 - c_b) / pi) / n``. With 500 labels at 95% confidence it is
        about 0.01, as large as the rise the finding asks for. NaN without reliability bins.
        """
        bins = self.reliability_bins
        if bins.empty or "n" not in bins:
            return float("nan")
        part = bins[(bins["window"] == window) & (bins["n"] > 0)]
        n = float(part["n"].sum())
        if n <= 0:
            return float("nan")
        c = part["confidence"].to_numpy(float).clip(0.0, 1.0)
        return float(np.sqrt(2 * part["n"].to_numpy(float) * c * (1 - c) / np.pi).sum() / n)

    def _version_change(self) -> dict[str, Any]:
        v = self.by_version
        if v.empty:
            return {}
        base = v[v["window"] == "baseline"].sort_values("labelled", ascending=False)
        inc = v[(v["window"] == "incident") & (v["labelled"] >= MIN_LABELS)]
        if base.empty or inc.empty:
            return {}
        old = base.iloc[0]
        new = inc.sort_values("ece", ascending=False).iloc[0]
        if str(new["model_version"]) == str(old["model_version"]):
            return {}
        return {"before": str(old["model_version"]), "after": str(new["model_version"]),
                "first_seen_after": pd.Timestamp(new["first_seen"]),
                "ece_before": float(old["ece"]), "ece_after": float(new["ece"]),
                "accuracy_before": float(old["accuracy"]),
                "accuracy_after": float(new["accuracy"])}

    def _onset(self, threshold: float):
        t = self.timeline
        if t.empty:
            return None
        t = t[t["bucket_start"] >= pd.Timestamp(self.baseline.end)]
        above = (t["ece"] > threshold).to_numpy()
        for k in range(len(above)):
            if above[k] and above[k:].mean() >= 2 / 3:
                return t["bucket_start"].iloc[k].to_pydatetime()
        return None

    def signals(self) -> pd.DataFrame:
        if self.task == "regression":
            return timeline_signals(self.timeline, {"coverage": "model.interval_coverage",
                                                    "residual_mean": "model.residual_mean"})
        return timeline_signals(self.timeline, {"ece": "model.ece"})
    def plot(self, ax: Axes | None = None, **kwargs: Any) -> Axes:
        """Reliability diagram, baseline and incident overlaid, with the diagonal (regression:
        interval coverage over time with its Wilson band and the nominal coverage)."""
        from toolkit.plotting import WINDOW_COLORS, axes

        if self.task == "regression":
            ax = axes(ax, figsize=(10, 4))
            t = self.timeline
            if t.empty or t["coverage"].isna().all():
                return super().plot(ax)
            ax.plot(t["bucket_start"], t["coverage"], color="#4C72B0",
                    label="interval coverage")
            ax.fill_between(t["bucket_start"], t["coverage_lo"], t["coverage_hi"],
                            color="#4C72B0", alpha=0.15, lw=0)
            if self.nominal is not None:
                ax.axhline(self.nominal, color="#8C8C8C", ls="--", lw=1,
                           label=f"nominal {self.nominal:.0%}")
            ax.axvspan(self.incident.start, self.incident.end,
                       color=WINDOW_COLORS["incident"], alpha=0.08, label="incident")
            ax.set_xlabel("request time (UTC)")
            ax.set_ylabel("share of labels inside [pred_lower, pred_upper]")
            ax.set_title("Prediction interval coverage")
            ax.legend(loc="lower left")
            return ax

        ax = axes(ax, figsize=(5, 5))
        if self.reliability_bins.empty:
            return super().plot(ax)
        ax.plot([0, 1], [0, 1], ls="--", color="#8C8C8C", lw=1, label="perfect calibration")
        for window, part in self.reliability_bins.groupby("window"):
            part = part[part["n"] > 0]
            ax.plot(part["confidence"], part["accuracy"], marker="o",
                    color=WINDOW_COLORS.get(window, "#55A868"),
                    label=f"{window} (ECE {self.value(window, 'ece'):.3f})")
        ax.axvline(self.threshold, color="#CCB974", lw=1, ls=":",
                   label=f"threshold {self.threshold}")
        lo = float(self.reliability_bins.loc[self.reliability_bins["n"] > 0, "lo"].min())
        ax.set_xlim(max(0.0, lo - 0.02), 1.0)
        ax.set_ylim(0.0, 1.02)
        ax.set_xlabel("mean confidence")
        ax.set_ylabel("observed accuracy")
        ax.set_title("Reliability diagram")
        ax.legend(loc="upper left")
        return ax


def calibration(
    con: CaseSource,
    baseline: Window | str,
    incident: Window | str,
    /,
    *,
    kind: str = "top-label",
    threshold: float = 0.85,
    positive: str | None = None,
    bins: int = N_BINS,
    strategy: str = "uniform",
    score_is: str | None = None,
    bucket: timedelta | None = None,
    case: CaseView | None = None,
) -> CalibrationResult:
    """Calibration (ECE, MCE, Brier decomposition, reliability) before and during an incident.

    Parameters
    ----------
    con
        Case connection.
    baseline, incident
        The windows (``Window``, ``"START/END"`` or ``(start, end)``); they must not overlap.
    kind
        ``"top-label"`` (the confidence in the prediction against whether it was right) or
        ``"positive-class"`` (P(positive) against whether the label is positive).
    threshold
        Confidence from which a wrong answer counts as a confident error.
    positive
        The positive class (default: a conventional label token, else the rarer label).
    bins
        Number of bins (2 to 1000; default 15 as Guo et al. 2017; netcal and NannyML use 10).
    strategy
        ``"uniform"``: equal-width bins on [0, 1]; ``"quantile"``: equal-mass bins, edges at the
        window's own forecast quantiles. ECE, MCE, the Brier decomposition and the reliability
        bins use it; ``ece_equal_width`` and ``ece_equal_mass`` give both.
    score_is
        Default: what the case's mapping declared (``case_meta['score_semantics']``), else
        ``"confidence"``. What ``score`` holds: ``"confidence"`` (the confidence in
        ``prediction``, the canonical schema) or ``"p_positive"`` (P(positive class), converted to the confidence in the
        prediction: ``score`` when the prediction is ``positive``, else ``1 - score``). A score
        that looks like P(positive) while declared a confidence is not assessed (see
        :func:`score_semantics`).
    bucket
        Timeline bucket width (default: about 240 buckets over the span).
    case
        A :class:`~toolkit.diagnose._case.CaseView` to share between diagnostics.

    Examples
    --------
    >>> import numpy as np, pandas as pd, toolkit as tk
    >>> rng = np.random.default_rng(1)
    >>> n = 4000
    >>> ts = pd.date_range("2026-03-01", periods=n, freq="min", tz="UTC")
    >>> conf = rng.uniform(0.5, 1.0, n)
    >>> right = rng.uniform(size=n) < np.where(np.arange(n) < n // 2, conf, 0.75)
    >>> con = tk.connect()
    >>> _ = tk.load(con, pd.DataFrame({"request_id": range(n), "ts": ts, "prediction": "1",
    ...     "score": conf}), table="requests")
    >>> _ = tk.load(con, pd.DataFrame({"request_id": range(n),
    ...     "label": np.where(right, "1", "0")}), table="labels")
    >>> r = calibration(con, (ts[0], ts[n // 2]), (ts[n // 2], ts[-1]))
    >>> r.value("baseline", "ece") < 0.05 < r.value("incident", "ece")
    True
    """
    baseline, incident = check_windows(baseline, incident)
    check_option("kind", kind, ("top-label", "positive-class"))
    check_interval("threshold", threshold, 0.0, 1.0)
    check_bins(bins)
    check_option("strategy", strategy, STRATEGIES)
    case = case or case_view(con)
    score_is, positive = case.score_semantics(score_is, positive)
    check_option("score_is", score_is, SCORE_IS)
    base = dict(baseline=baseline, incident=incident, kind=kind, threshold=threshold,
                bins=bins, strategy=strategy, score_is=score_is)
    info = case.task

    def assess(info: Any) -> CalibrationResult:
        if info.task == "generative":
            return CalibrationResult(**base, task=info.task, not_assessed=(NotAssessed(
                ID, "generative endpoints: calibration needs a scored class or a prediction "
                "interval (this diagnostic assesses binary, multiclass and regression tasks)"),))
        if info.task == "regression":
            return _interval_calibration(case, base, info, bucket)
        result = _scored(case, base, baseline, incident, info, positive=positive,
                         score_is=score_is, kind=kind, threshold=threshold, bins=bins,
                         strategy=strategy, bucket=bucket)
        if info.task == "multiclass":
            result = _classwise(case, result, info)
        return result

    return per_endpoint(case, info, assess(info), assess)


def _scored(case: CaseView, base: dict[str, Any], baseline: Window, incident: Window,
            info: Any, *, positive: str | None, score_is: str, kind: str, threshold: float,
            bins: int, strategy: str, bucket: timedelta | None) -> CalibrationResult:
    """Calibration of ``score`` (binary tasks; the top label of a multiclass task) on
    ``info``'s endpoints (the whole case when it serves one task)."""
    from toolkit.diagnose._tasks import labelled_for, mixed_tasks, task_filter

    if not case.has("requests", "score", "prediction"):
        return CalibrationResult(**base, not_assessed=(
            NotAssessed(ID, "requests carry no score (confidence) or prediction"),))
    if not case.has("labels"):
        return CalibrationResult(**base, not_assessed=(
            NotAssessed(ID, "the case has no labels"),))
    record = Recorder(joins_as_written=True)  # the labels join: see Recorder
    span = Window(min(baseline.start, incident.start), max(baseline.end, incident.end))
    width = bucket or choose_bucket(span.duration)
    t = labelled_for(case, record, span, info)
    # a case of several tasks: this endpoint's labels (the labels table holds every task's)
    positive = positive or info.positive_class or positive_class(
        case, record, span, labels=t if mixed_tasks(case) else None)
    t = t.filter(t.score.notnull())
    check = score_semantics(record, t, positive)
    problem = score_problem(check, score_is, positive)
    if problem:
        return CalibrationResult(**base, positive=positive, score_check=check, sql=record.sql,
                                 not_assessed=(NotAssessed(ID, problem),))
    pos = ibis.literal(positive)
    score = t.score.cast("float64")
    if score_is == "p_positive":
        p_positive = score
        confidence = ibis.cases((t.prediction == pos, score), else_=1 - score)
    else:
        confidence = score
        p_positive = ibis.cases((t.prediction == pos, score), else_=1 - score)
    if kind == "positive-class":
        f, o = p_positive, (t.label == pos).cast("float64")
    else:
        f, o = confidence, t.correct.cast("float64")
    t = t.mutate(_f=f.clip(0.0, 1.0), _o=o, _window=window_label(t.ts, baseline, incident))
    edges = _quantile_edges(record, t.filter(t._window.notnull()), bins) \
        if strategy == "quantile" else {}
    if strategy == "quantile" and not {"baseline", "incident"} <= set(edges):
        missing = sorted({"baseline", "incident"} - set(edges))
        return CalibrationResult(**base, positive=positive, score_check=check, sql=record.sql,
                                 not_assessed=tuple(NotAssessed(ID, f"no labels in the {m} window")
                                                    for m in missing))
    t = t.mutate(_bin=_uniform_bin(t._f, bins) if strategy == "uniform" else
                 _quantile_bin(t, edges, else_window="incident"))
    windows = t.filter(t._window.notnull())

    def sums(rows):
        return {"n": rows.count(), "sf": rows._f.sum(), "sff": (rows._f * rows._f).sum(),
                "so": rows._o.sum(), "sfo": (rows._f * rows._o).sum(),
                "wrong_confident": ((rows._o == 0) & (rows._f >= threshold)).cast("int64").sum()}

    # One scan: every sum per time bucket, window, model version and bin; the per-window,
    # per-version and per-bucket tables are re-aggregated from it in pandas (a few thousand
    # rows at most).
    keys = {"bucket_start": bucket_expr(t.ts, width), "window": t._window, "bin": t._bin}
    has_version = "model_version" in case.columns["requests"]
    if has_version:
        keys["model_version"] = t.model_version
    grouped = record(t.group_by(**keys).aggregate(**sums(t), first_seen=t.ts.min()))
    sum_columns = ["n", "sf", "sff", "so", "sfo", "wrong_confident"]
    in_windows = grouped[grouped["window"].notna()]
    per_bin = in_windows.groupby(["window", "bin"], as_index=False)[sum_columns].sum()
    missing = {"baseline", "incident"} - set(per_bin["window"])
    if missing:
        return CalibrationResult(**base, sql=record.sql, not_assessed=tuple(
            NotAssessed(ID, f"no labels in the {m} window") for m in sorted(missing)))
    table = pd.DataFrame([calibration_summary(part) | {"window": w}
                          for w, part in per_bin.groupby("window")])
    if strategy == "uniform":
        table["ece_equal_width"] = table["ece"]
        table["ece_equal_mass"] = table["window"].map(
            _equal_mass_ece(record, windows, bins, check.get("distinct")))
    else:
        table["ece_equal_width"] = table["window"].map(_equal_width_ece(record, windows, bins))
        table["ece_equal_mass"] = table["ece"]
    table = table.set_index("window").loc[["baseline", "incident"]].reset_index()
    lo, hi = _bin_bounds(per_bin, bins, edges)
    reliability = per_bin.assign(
        lo=lo, hi=hi,
        confidence=per_bin["sf"] / per_bin["n"], accuracy=per_bin["so"] / per_bin["n"],
    )[["window", "bin", "lo", "hi", "n", "confidence", "accuracy"]].sort_values(
        ["window", "bin"], ignore_index=True)
    by_version = pd.DataFrame()
    if has_version:
        per_version = in_windows.groupby(["window", "model_version", "bin"], as_index=False,
                                         dropna=False).agg(
            **{c: (c, "sum") for c in sum_columns}, first_seen=("first_seen", "min"))
        by_version = pd.DataFrame([
            calibration_summary(part) | {"window": w, "model_version": v,
                                         "first_seen": part["first_seen"].min()}
            for (w, v), part in per_version.groupby(["window", "model_version"], dropna=False)
        ])
    per_bucket = grouped.groupby(["bucket_start", "bin"], as_index=False)[sum_columns].sum()
    timeline = pd.DataFrame([
        calibration_summary(part) | {"bucket_start": b}
        for b, part in per_bucket.groupby("bucket_start")
    ])
    if not timeline.empty:
        timeline = timeline[timeline["labelled"] >= MIN_LABELS].sort_values(
            "bucket_start", ignore_index=True)
    result = CalibrationResult(**base, positive=positive, score_check=check, table=table,
                               reliability_bins=reliability, by_version=by_version,
                               timeline=timeline, sql=record.sql)
    for finding in result.own_findings():
        if finding.onset is not None:
            # A calibration collapse moves the confidence of every answer, labelled or not:
            # locate the step in the mean confidence of all requests.
            requests = task_filter(case, info, case.table("requests"))
            requests = requests.filter(requests.score.notnull())
            onset = refine_onset(record, requests, requests.score.cast("float64"),
                                 finding.onset, around=3 * width, limits=span)
            result = replace(result, refined_onsets={finding.id: onset}, sql=record.sql)
    return result


def calibration_summary(bins: pd.DataFrame) -> dict[str, float]:
    """ECE, MCE, Brier and its decomposition from per-bin sums.

    ``bins`` has one row per non-empty bin with ``n`` and the sums ``sf`` (forecasts), ``sff``
    (squared forecasts), ``so`` (outcomes), ``sfo`` (forecast x outcome) and
    ``wrong_confident``.
    """
    n_b = bins["n"].to_numpy(float)
    n = n_b.sum()
    sf, sff = bins["sf"].to_numpy(float), bins["sff"].to_numpy(float)
    so, sfo = bins["so"].to_numpy(float), bins["sfo"].to_numpy(float)
    conf, acc = sf / n_b, so / n_b
    base_rate = so.sum() / n
    brier = (sff - 2 * sfo + so).sum() / n  # o^2 = o for 0/1 outcomes
    reliability = (n_b * (conf - acc) ** 2).sum() / n
    resolution = (n_b * (acc - base_rate) ** 2).sum() / n
    within_variance = (sff - n_b * conf**2).sum() / n
    within_covariance = (sfo - n_b * conf * acc).sum() / n
    return {
        "labelled": n,
        "accuracy": base_rate,
        "mean_confidence": sf.sum() / n,
        "ece": float((n_b * np.abs(acc - conf)).sum() / n),
        "mce": float(np.abs(acc - conf).max()),
        "brier": float(brier),
        "reliability": float(reliability),
        "resolution": float(resolution),
        "uncertainty": float(base_rate * (1 - base_rate)),
        "within_bin_variance": float(within_variance),
        "within_bin_covariance": float(within_covariance),
        "confident_error_share": float(bins["wrong_confident"].sum() / n),
    }


def check_bins(bins: int) -> int:
    """``bins`` must be an integer from 2 to 1000."""
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or not 2 <= bins <= 1000:
        raise InvalidParameterError(
            f"The 'bins' parameter must be an integer in [2, 1000]. Got {bins!r} instead.")
    return int(bins)


def _uniform_bin(f: ibis.FloatingValue, bins: int) -> ibis.IntegerValue:
    """Equal-width bin of a forecast in [0, 1]: ``[k/bins, (k+1)/bins)``, 1 in the last."""
    return (f * bins).floor().clip(0, bins - 1).cast("int64")


def _quantile_edges(record: Recorder, rows: ibis.Table, bins: int) -> dict[str, np.ndarray]:
    """The ``bins - 1`` inner edges of equal-mass bins per window: the window's forecast
    quantiles at ``k / bins`` (linear interpolation, numpy's default)."""
    levels = [k / bins for k in range(1, bins)]
    quantiles = record(rows.group_by(window=rows._window).aggregate(q=rows._f.quantile(levels)))
    return {str(w): np.asarray(q, dtype=float) for w, q in
            zip(quantiles["window"], quantiles["q"], strict=True) if q is not None}


def _quantile_bin(rows: ibis.Table, edges: dict[str, np.ndarray], *,
                  else_window: str | None = None) -> ibis.IntegerValue:
    """Equal-mass bin: how many of its window's edges a forecast exceeds (right-closed bins
    ``(e[k-1], e[k]]``; an edge repeated by ties adds an empty bin). Rows outside the windows
    use ``else_window``'s edges (none: bin 0)."""
    index = ibis.literal(0)
    size = len(next(iter(edges.values())))
    fallback = edges.get(else_window) if else_window else None
    for k in range(size):
        edge = ibis.cases(*((rows._window == w, float(e[k])) for w, e in edges.items()),
                          else_=float(fallback[k]) if fallback is not None else float("inf"))
        index = index + (rows._f > edge).cast("int64")
    return index


def _bin_bounds(per_bin: pd.DataFrame, bins: int, edges: dict[str, np.ndarray]
                ) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bound of every (window, bin) row of ``per_bin``."""
    k = per_bin["bin"].to_numpy(int)
    if not edges:
        return k / bins, (k + 1) / bins
    lo, hi = np.empty(len(k)), np.empty(len(k))
    for j, (window, b) in enumerate(zip(per_bin["window"], k, strict=True)):
        bounds = np.concatenate([[0.0], edges[str(window)], [1.0]])
        lo[j], hi[j] = bounds[b], bounds[b + 1]
    return lo, hi


#: Forecasts taking at most this many distinct values (approximately counted) get their
#: equal-mass bins from counts per distinct value (one hash aggregate) rather than from a sort
#: per window and a second scan: scores logged at a fixed precision (4 decimals: 10,001 values).
EXACT_VALUES = 100_000


def _equal_mass_ece(record: Recorder, rows: ibis.Table, bins: int,
                    distinct: float | None = None) -> dict[str, float]:
    """ECE over ``bins`` equal-mass bins with edges at each window's own forecast quantiles.

    Two queries whatever the number of windows: the quantiles per window, then the per-bin
    sums with each row compared against its own window's edges. With at most
    :data:`EXACT_VALUES` ``distinct`` forecasts, one query instead (:func:`_value_counts_ece`:
    the same edges and bins from counts per distinct forecast).
    """
    if distinct is not None and distinct <= EXACT_VALUES:
        return _value_counts_ece(record, rows, bins)
    edges = _quantile_edges(record, rows, bins)
    if not edges:
        return {}
    binned = rows.mutate(_mbin=_quantile_bin(rows, edges))
    return _ece_by_window(record, binned)


def _value_counts_ece(record: Recorder, rows: ibis.Table, bins: int) -> dict[str, float]:
    """:func:`_equal_mass_ece` from counts per window and distinct forecast: the rows and the
    outcomes per value (a hash aggregate, no sort), then in numpy the window's quantiles at
    ``k / bins`` (DuckDB's ``quantile_cont``: the order statistics around ``(n - 1) k / bins``
    and ``lo (1 - d) + hi d`` with one rounding, as its fused multiply-add), each value's bin
    (the edges below it: :func:`_quantile_bin`) and the ECE over the bins."""
    per = record(rows.group_by(window=rows._window, f=rows._f).aggregate(
        n=rows.count(), so=rows._o.sum()))
    levels = np.arange(1, bins) / bins
    out = {}
    for window, part in per.groupby("window"):
        part = part.sort_values("f")
        f, n = part["f"].to_numpy(float), part["n"].to_numpy(float)
        upto = np.cumsum(n)  # rows with a forecast <= f
        position = levels * (upto[-1] - 1)
        below, above = np.floor(position), np.ceil(position)
        lo = f[np.searchsorted(upto, below, side="right")]
        hi = f[np.searchsorted(upto, above, side="right")]
        d = position - below
        mixed = (np.longdouble(lo) * np.longdouble(1.0 - d) + np.longdouble(hi * d)).astype(float)
        edges = np.where(below == above, lo, mixed)
        k = np.searchsorted(edges, f, side="left")  # edges strictly below the forecast
        n_b = np.bincount(k, weights=n, minlength=bins)
        sf_b = np.bincount(k, weights=f * n, minlength=bins)
        so_b = np.bincount(k, weights=part["so"].to_numpy(float), minlength=bins)
        out[str(window)] = float(np.abs(so_b - sf_b).sum() / n_b.sum())
    return out


def _equal_width_ece(record: Recorder, rows: ibis.Table, bins: int) -> dict[str, float]:
    """ECE over ``bins`` equal-width bins on [0, 1], per window (one query)."""
    return _ece_by_window(record, rows.mutate(_mbin=_uniform_bin(rows._f, bins)))


def _ece_by_window(record: Recorder, binned: ibis.Table) -> dict[str, float]:
    per_bin = record(binned.group_by(window=binned._window, bin=binned._mbin).aggregate(
        n=binned.count(), sf=binned._f.sum(), so=binned._o.sum()))
    return {str(w): float(np.abs(part["so"] - part["sf"]).sum() / part["n"].sum())
            for w, part in per_bin.groupby("window")}


# --- what score holds -------------------------------------------------------------------------

def score_semantics(record: Recorder, rows: ibis.Table, positive: str | None) -> dict[str, Any]:
    """What the scores of labelled predictions look like (one aggregate in the engine).

    Returns ``rows`` (with a score and a prediction), ``classes`` (distinct predictions),
    ``label_classes`` (distinct labels, 0 without labels), ``min`` and ``max`` score,
    ``below_half`` (share with score < 0.5), ``agrees_with_positive`` (share where ``score >=
    0.5`` exactly when the prediction is the positive class; NaN without a positive class) and
    ``distinct`` (distinct scores, approximate: HyperLogLog).
    """
    rows = rows.filter(rows.score.notnull() & rows.prediction.notnull())
    score = rows.score.cast("float64")
    aggs = {"n": rows.count(), "classes": rows.prediction.nunique(), "lo": score.min(),
            "hi": score.max(), "below": (score < 0.5).cast("int64").sum(),
            "distinct": score.approx_nunique()}
    if "label" in rows.columns:
        aggs["labels"] = rows.label.nunique()
    if positive is not None:
        agree = (score >= 0.5) == (rows.prediction == ibis.literal(positive))
        aggs["agree"] = agree.cast("int64").sum()
    row = record(rows.aggregate(**aggs)).iloc[0]
    n = int(row["n"])

    def share(k: Any) -> float:
        return float(k) / n if n else float("nan")

    return {"rows": n, "classes": int(row["classes"]), "label_classes": int(row.get("labels", 0)),
            "min": float(row["lo"]) if n else float("nan"),
            "max": float(row["hi"]) if n else float("nan"),
            "below_half": share(row["below"]), "distinct": int(row["distinct"] or 0),
            "agrees_with_positive": share(row["agree"]) if positive is not None else float("nan")}


def score_problem(check: dict[str, Any], score_is: str, positive: str | None) -> str | None:
    """Why the scores cannot be read as ``score_is`` says, or None when they can.

    * A score outside [0, 1] is no probability.
    * ``score_is="p_positive"`` needs a positive class and a binary task (at most two
      predicted classes).
    * ``score_is="confidence"``: a binary model's confidence in its answer is at least 0.5
      (at the usual 0.5 threshold). When at least :data:`MIN_SCORE_ROWS` binary predictions
      have scores below 0.5 in a share of :data:`P_POSITIVE_BELOW` or more and ``score >=
      0.5`` coincides with predicting the positive class in :data:`P_POSITIVE_AGREEMENT` of
      them or more, the score is P(positive); and when most scores are below 0.5 it is no
      confidence in the prediction either way.
    """
    n = check["rows"]
    if not n:
        return None
    if check["min"] < 0.0 or check["max"] > 1.0:
        return (f"score is not a probability (from {check['min']:.4g} to {check['max']:.4g}); "
                "calibration needs a confidence or P(positive) in [0, 1]")
    binary = check["classes"] <= 2
    if score_is == "p_positive":
        if positive is None:
            return "score_is='p_positive' needs a positive class and the labels give none"
        if not binary:
            return (f"score_is='p_positive' needs a binary task; predictions take "
                    f"{check['classes']} values")
        return None
    if not binary or n < MIN_SCORE_ROWS:
        return None
    below, agree = check["below_half"], check["agrees_with_positive"]
    looks_positive = below >= P_POSITIVE_BELOW and agree >= P_POSITIVE_AGREEMENT
    if looks_positive or below > 0.5:
        what = (f"score looks like P(positive = {positive!r}), not the confidence in the "
                f"prediction: {below:.1%} of {n} binary predictions have score < 0.5"
                if looks_positive else
                f"score is not the confidence in the prediction: {below:.1%} of {n} binary "
                "predictions have score < 0.5")
        if agree == agree:  # not NaN
            what += f", and score >= 0.5 matches predicting {positive!r} on {agree:.1%}"
        return (what + "; declare score_is='p_positive' (with the positive class) to convert "
                "it, or map the confidence to score")
    return None


# --- multiclass: classwise calibration --------------------------------------------------------

def _classwise(case: CaseView, result: CalibrationResult, info: Any) -> CalibrationResult:
    """Add classwise ECE (Kull et al. 2019) to a multiclass result, from ``scores``.

    For each class ``k`` the forecast is ``p_k`` (its probability in ``scores``; 0 when the
    object lacks it) and the outcome ``[label == k]``; ``ECE_k = sum_b (n_b / n) |freq_b -
    conf_b|`` over the same ``bins`` equal-width bins as the top-label ECE, and the classwise
    ECE is the mean of ``ECE_k`` over the task's classes. The ``scores`` objects are parsed
    once per case view (:func:`~toolkit.diagnose._tasks.scored_rows`; beyond
    ``SCORES_SAMPLE_ROWS`` labelled predictions a deterministic sample, its share in
    ``scores_fraction``), unnested to (class, probability) pairs and summed per window, class
    and bin in one query.
    """
    from toolkit.diagnose._tasks import scored_rows

    check = f"{ID}:classwise"
    base = replace(result, task="multiclass")
    gaps = list(result.not_assessed)
    if not case.has("requests", "scores"):
        return replace(base, not_assessed=(*gaps, NotAssessed(
            check, "requests carry no per-class scores (the scores column): classwise "
            "calibration needs them")))
    if not case.has("labels") or len(info.classes) < 2:
        return replace(base, not_assessed=(*gaps, NotAssessed(
            check, "no labels" if not case.has("labels") else "fewer than two classes")))
    record = Recorder(joins_as_written=True)
    bins = result.bins
    scored = scored_rows(case, record, result.baseline, result.incident, info)
    classes = scored.classes
    long = scored.pairs()
    binned = ibis.greatest(ibis.least((long._p * bins).floor().cast("int64"), bins - 1), 0)
    sums = record(long.group_by(window=long._window, c=long._c, bin=binned).aggregate(
        n=long.count(), sp=long._p.sum(), sy=(long._y == long._c).cast("int64").sum()))
    missing = {"baseline", "incident"} - set(sums["window"])
    if missing:
        return replace(base, sql=(*result.sql, *record.sql), not_assessed=(*gaps, *(
            NotAssessed(check, f"no labelled prediction with scores in the {m} window")
            for m in sorted(missing))))
    sums["class"] = np.asarray(classes, dtype=object)[sums["c"].to_numpy(int)]
    per_class = classwise_summary(sums)
    bins_frame = sums.assign(lo=sums["bin"] / bins, hi=(sums["bin"] + 1) / bins,
                             confidence=sums["sp"] / sums["n"],
                             frequency=sums["sy"] / sums["n"])[
        ["window", "class", "bin", "lo", "hi", "n", "confidence", "frequency"]].sort_values(
        ["window", "class", "bin"], ignore_index=True)
    overall = per_class.groupby("window")["ece"].mean().to_dict()
    return replace(base, classwise=per_class, class_bins=bins_frame,
                   classwise_ece={str(k): float(v) for k, v in overall.items()},
                   scores_fraction=scored.fraction,
                   sql=(*result.sql, *record.sql), not_assessed=tuple(gaps))


def classwise_summary(sums: pd.DataFrame) -> pd.DataFrame:
    """ECE of each class per window from per-(window, class, bin) sums ``n``, ``sp`` (the
    class's probabilities) and ``sy`` (rows labelled the class).

    Examples
    --------
    >>> s = pd.DataFrame({"window": ["b"] * 4, "class": ["x", "x", "y", "y"],
    ...     "bin": [0, 1, 0, 1], "n": [2, 2, 2, 2], "sp": [0.4, 1.6, 0.4, 1.6],
    ...     "sy": [0, 2, 1, 1]})
    >>> classwise_summary(s)["ece"].round(3).tolist()    # (0.4 + 0.4) / 4; (0.6 + 0.6) / 4
    [0.2, 0.3]
    """
    rows = []
    for (window, cls), part in sums.groupby(["window", "class"], sort=True):
        n = part["n"].to_numpy(float)
        gap = np.abs(part["sy"].to_numpy(float) - part["sp"].to_numpy(float))
        rows.append({"window": window, "class": cls, "n": n.sum(),
                     "ece": float(gap.sum() / n.sum()),
                     "mean_probability": float(part["sp"].sum() / n.sum()),
                     "frequency": float(part["sy"].sum() / n.sum())})
    return pd.DataFrame(rows)


def _classwise_findings(result: CalibrationResult, found: list[Finding]) -> list[Finding]:
    """Multiclass ``model.calibration_shift``: the top-label finding with the classwise ECE in
    its evidence, else one raised by the classwise ECE alone (same thresholds)."""
    cw = result.classwise_ece
    b_cw, i_cw = cw.get("baseline", float("nan")), cw.get("incident", float("nan"))
    worst: dict[str, Any] = {}
    if not result.classwise.empty:
        wide = result.classwise.pivot_table(index="class", columns="window", values="ece")
        if {"baseline", "incident"} <= set(wide.columns):
            change = (wide["incident"] - wide["baseline"]).sort_values(ascending=False)
            top = change.index[0]
            worst = {"worst_class": str(top),
                     "worst_class_ece_baseline": float(wide.loc[top, "baseline"]),
                     "worst_class_ece_incident": float(wide.loc[top, "incident"])}
    extra = {"task": "multiclass", "classwise_ece_baseline": b_cw,
             "classwise_ece_incident": i_cw, **worst}
    if found:
        return [replace(f, evidence=dict(f.evidence, basis="top-label", **extra))
                for f in found]
    counts = result.classwise.groupby("window")["n"].max() if not result.classwise.empty \
        else pd.Series(dtype=float)
    enough = min(counts.get("baseline", 0), counts.get("incident", 0))
    shift = i_cw - b_cw
    if not (enough >= MIN_WINDOW_LABELS and shift >= MIN_SHIFT and i_cw >= MIN_RATIO * b_cw):
        return []
    high = shift >= MAJOR_SHIFT and i_cw >= MAJOR_RATIO * b_cw
    evidence = {"basis": "classwise", **extra,
                "ece_baseline": result.value("baseline", "ece"),
                "ece_incident": result.value("incident", "ece"),
                "accuracy_change": result.value("incident", "accuracy") -
                result.value("baseline", "accuracy")}
    onset = None
    versions = result._version_change() if not result.by_version.empty else {}
    if versions:
        evidence["versions"] = versions
        if versions["after"] not in set(result.by_version.loc[
                result.by_version["window"] == "baseline", "model_version"].astype(str)):
            onset = pd.Timestamp(versions["first_seen_after"]).to_pydatetime()
    return [Finding(
        id="model.calibration_shift", pathway="model", severity="high" if high else "medium",
        statistic=i_cw, threshold=b_cw + MIN_SHIFT,
        summary=(f"classwise ECE rose from {b_cw:.3f} to {i_cw:.3f}"
                 + (f" (class {worst['worst_class']}: {worst['worst_class_ece_baseline']:.3f}"
                    f" -> {worst['worst_class_ece_incident']:.3f})" if worst else "")
                 + f"; accuracy changed by {evidence['accuracy_change']:+.1%}."),
        evidence=evidence, onset=onset, diagnostic=result.id)]


# --- regression: interval coverage and residuals ----------------------------------------------

#: A fall in interval coverage from which the intervals stopped covering (5 points; high 15).
MIN_COVERAGE_DROP = 0.05
MAJOR_COVERAGE_DROP = 0.15


def _interval_calibration(case: CaseView, base: dict[str, Any], info: Any,
                          bucket: timedelta | None) -> CalibrationResult:
    """Regression calibration: coverage of ``[pred_lower, pred_upper]`` against the nominal
    coverage per window, version and time bucket (Wilson intervals), and the drift of the
    residuals ``label - prediction`` (mean, spread, PSI and KS on the baseline's residual
    deciles)."""
    from toolkit.diagnose import _stats as st
    from toolkit.diagnose._engine import histogram_at
    from toolkit.diagnose._tasks import task_labelled

    base = dict(base, task="regression", nominal=info.interval_coverage)
    if not case.has("requests", "prediction"):
        return CalibrationResult(**base, not_assessed=(
            NotAssessed(ID, "requests carry no predictions"),))
    if not case.has("labels"):
        return CalibrationResult(**base, not_assessed=(NotAssessed(ID, "the case has no labels"),))
    baseline, incident = base["baseline"], base["incident"]
    record = Recorder(joins_as_written=True)
    span = Window(min(baseline.start, incident.start), max(baseline.end, incident.end))
    width = bucket or choose_bucket(span.duration)
    t = task_labelled(case, record, span, info)
    gaps: list[NotAssessed] = []
    t = t.mutate(_window=window_label(t.ts, baseline, incident),
                 _r=t.label.try_cast("float64") - t.prediction.try_cast("float64"))
    has_interval = "pred_lower" in t.columns and "pred_upper" in t.columns
    aggs: dict[str, Any] = {"labelled": t._r.count(), "sr": t._r.sum(),
                            "sr2": (t._r * t._r).sum(), "sar": t._r.abs().sum()}
    if has_interval:
        y = t.label.try_cast("float64")
        inside = t.pred_lower.notnull() & t.pred_upper.notnull() & y.notnull()
        aggs |= {"intervals": inside.cast("int64").sum(),
                 "covered": (inside & (y >= t.pred_lower) & (y <= t.pred_upper))
                 .cast("int64").sum(),
                 "below": (inside & (y < t.pred_lower)).cast("int64").sum(),
                 "above": (inside & (y > t.pred_upper)).cast("int64").sum(),
                 "width": (t.pred_upper - t.pred_lower).sum(where=inside)}
    else:
        gaps.append(NotAssessed(f"{ID}:coverage", "requests carry no prediction interval "
                                "(pred_lower and pred_upper): coverage not assessed"))
    keys = {"bucket_start": bucket_expr(t.ts, width), "window": t._window}
    if "model_version" in t.columns:
        keys["model_version"] = t.model_version
    cells = record(t.group_by(**keys).aggregate(**aggs, first_seen=t.ts.min()))
    summed = [c for c in ("labelled", "sr", "sr2", "sar", "intervals", "covered", "below",
                          "above", "width")
              if c in cells]
    in_windows = cells[cells["window"].notna()]
    per_window = in_windows.groupby("window", as_index=False)[summed].sum()
    missing = [w for w in ("baseline", "incident")
               if w not in set(per_window.loc[per_window["labelled"] > 0, "window"])]
    if missing:
        return CalibrationResult(**base, sql=record.sql, not_assessed=(*gaps, *(
            NotAssessed(ID, f"no numeric labels in the {m} window") for m in missing)))
    if info.interval_coverage is None and has_interval:
        gaps.append(NotAssessed(f"{ID}:nominal", "the endpoints catalog declares no nominal "
                                "interval coverage: coverage is compared between the windows "
                                "only"))
    # residual drift on the baseline's residual deciles
    windows = t.filter(t._window.notnull() & t._r.notnull())
    before = windows.filter(windows._window == "baseline")
    edges = record(before.aggregate(q=before._r.quantile([k / 10 for k in range(1, 10)])
                                    )).iloc[0]["q"]
    edges = [] if edges is None else [float(e) for e in np.unique(np.asarray(edges, float))]
    residual_bins = pd.DataFrame()
    psi = ks = float("nan")
    if edges:
        hist = record(windows.group_by(window=windows._window).aggregate(
            h=histogram_at(windows._r, ibis.literal(edges, type="array<float64>"))))
        uppers = [*edges, float("inf")]
        counts = {w: np.array([(m or {}).get(u, 0) for u in uppers], dtype=float)
                  for w, m in zip(hist["window"], hist["h"], strict=True)}
        psi = st.psi(counts["baseline"], counts["incident"])
        ks = st.ks_from_counts(counts["baseline"], counts["incident"])[0]
        residual_bins = pd.DataFrame({
            "window": ["baseline"] * len(uppers) + ["incident"] * len(uppers),
            "upper": uppers * 2, "n": np.r_[counts["baseline"], counts["incident"]]})
    table = _interval_table(per_window, info.interval_coverage)
    table["residual_psi"] = np.where(table["window"] == "incident", psi, 0.0)
    table["residual_ks"] = np.where(table["window"] == "incident", ks, 0.0)
    by_version = pd.DataFrame()
    if "model_version" in cells:
        versions = in_windows.groupby(["window", "model_version"], as_index=False,
                                      dropna=False).agg(**{c: (c, "sum") for c in summed},
                                                        first_seen=("first_seen", "min"))
        by_version = _interval_table(versions, info.interval_coverage)
    timeline = _interval_table(cells.groupby("bucket_start", as_index=False)[summed].sum(),
                               info.interval_coverage)
    timeline = timeline[timeline["labelled"] >= MIN_LABELS].sort_values(
        "bucket_start", ignore_index=True)
    return CalibrationResult(**base, table=table, by_version=by_version, timeline=timeline,
                             residual_bins=residual_bins, sql=record.sql,
                             not_assessed=tuple(gaps))


def _interval_table(frame: pd.DataFrame, nominal: float | None) -> pd.DataFrame:
    """Coverage (with Wilson interval), mean interval width and residual moments from sums."""
    from toolkit.diagnose import _stats as st

    out = frame.copy()
    n = out["labelled"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["residual_mean"] = out["sr"] / n
        out["residual_sd"] = np.sqrt(np.maximum(out["sr2"] / n - out["residual_mean"] ** 2, 0))
        out["mae"] = out["sar"] / n
        if "intervals" in out:
            k, m = out["covered"].to_numpy(float), out["intervals"].to_numpy(float)
            out["coverage"] = k / m
            out["below_share"] = out["below"] / m
            out["above_share"] = out["above"] / m
            out["coverage_lo"], out["coverage_hi"] = st.wilson_interval(k, m)
            out["mean_width"] = out["width"] / m
        else:
            out["coverage"] = out["coverage_lo"] = out["coverage_hi"] = np.nan
            out["below_share"] = out["above_share"] = np.nan
            out["intervals"] = 0
    out["nominal"] = np.nan if nominal is None else nominal
    out["shortfall"] = out["nominal"] - out["coverage"]
    return out


def _interval_findings(result: CalibrationResult) -> list[Finding]:
    """Regression ``model.calibration_shift``: the intervals' coverage fell by at least 5
    points (two-proportion z-test p < 0.001; high from 15 points)."""
    from toolkit.diagnose import _stats as st

    t = result.table
    if len(t) < 2 or "covered" not in t:
        return []
    b = t.set_index("window").loc["baseline"]
    i = t.set_index("window").loc["incident"]
    if min(b["intervals"], i["intervals"]) < MIN_LABELS:
        return []
    drop = b["coverage"] - i["coverage"]
    _, p = st.two_proportion_z(b["covered"], b["intervals"], i["covered"], i["intervals"])
    if not (drop >= MIN_COVERAGE_DROP and p < 1e-3):
        return []
    mae_change = i["mae"] / b["mae"] - 1 if b["mae"] > 0 else float("nan")
    evidence = {"task": "regression", "basis": "interval_coverage",
                "coverage_baseline": b["coverage"], "coverage_incident": i["coverage"],
                "nominal": result.nominal, "coverage_drop": float(drop), "pvalue": p,
                "mean_width_baseline": b["mean_width"], "mean_width_incident": i["mean_width"],
                "residual_mean_baseline": b["residual_mean"],
                "residual_mean_incident": i["residual_mean"],
                "residual_sd_baseline": b["residual_sd"],
                "residual_sd_incident": i["residual_sd"],
                "residual_psi": i["residual_psi"], "mae_change": mae_change,
                # a calibration collapse keeps the error: the relative MAE change, negated,
                # reads like the accuracy change of a classifier (rules test |change| small)
                "accuracy_change": -mae_change}
    onset = coarse_onset(result.timeline, "coverage", after=result.baseline.end,
                         weights="intervals", direction=-1) if not result.timeline.empty \
        else None
    v = result.by_version
    if not v.empty:
        old = v[v["window"] == "baseline"].sort_values("labelled", ascending=False)
        new = v[(v["window"] == "incident") & (v["intervals"] >= MIN_LABELS)]
        if not old.empty and not new.empty:
            old, new = old.iloc[0], new.sort_values("coverage").iloc[0]
            if str(new["model_version"]) != str(old["model_version"]):
                evidence["versions"] = {
                    "before": str(old["model_version"]), "after": str(new["model_version"]),
                    "first_seen_after": pd.Timestamp(new["first_seen"]),
                    "coverage_before": float(old["coverage"]),
                    "coverage_after": float(new["coverage"])}
                if str(new["model_version"]) not in set(
                        v.loc[v["window"] == "baseline", "model_version"].astype(str)):
                    onset = pd.Timestamp(new["first_seen"]).to_pydatetime()
    nominal = "" if result.nominal is None else f" (nominal {result.nominal:.0%})"
    return [Finding(
        id="model.calibration_shift", pathway="model",
        severity="high" if drop >= MAJOR_COVERAGE_DROP else "medium", statistic=float(drop),
        threshold=MIN_COVERAGE_DROP,
        summary=(f"prediction intervals covered {b['coverage']:.1%} of labels in the baseline "
                 f"and {i['coverage']:.1%} in the incident{nominal}; MAE changed by "
                 f"{mae_change:+.1%}."),
        evidence=evidence, onset=onset, diagnostic=result.id)]
