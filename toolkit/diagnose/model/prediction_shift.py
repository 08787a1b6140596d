"""What the model outputs, and whether quality fell while inputs stayed put.

Recipes:

* **score shift**: PSI of the ``score`` distribution on 10 baseline-quantile bins (same recipe
  as feature drift) and the change in the mean score;
* **prediction shift**: share of each predicted class per window, and the largest change in a
  class's share (two-proportion z-test);
* **concept-drift signal**: accuracy fell (``model.accuracy_drop`` from the performance
  diagnostic) while the inputs stayed close to the baseline (no feature drifted with medium or
  high severity, and no feature with a PSI of 0.1 or more that sampling noise does not
  explain). Needs labels; it reuses the drift and performance results when given. With no
  input feature logged it is read from the accuracy alone, says so in its summary, and the
  gap ``model.prediction_shift:input_drift`` records that an input shift is not ruled out. A PSI's
  noise floor grows as the windows shrink (about ``(bins - 1) (1/n_b + 1/n_i)``: 0.09 for 10
  bins and 200 rows a window), so a fixed 0.1 blocks the signal on a sparse log by noise
  alone: a feature's PSI counts when :func:`psi_noise_pvalue` (``PSI x n_b n_i / (n_b +
  n_i)`` against chi-square with ``bins - 1`` degrees of freedom, the two-sample form of the
  PSI test) is below :data:`PSI_NOISE_ALPHA`; a categorical feature's own chi-square test of
  the drift table is used instead (its categories are its bins).

Findings: ``model.prediction_shift`` (score PSI >= 0.1 or a class share moving by >= 5 points
with p < 0.001; high from PSI 0.25 / 15 points; dated where the per-bucket score PSI starts to
rise), ``model.concept_drift`` (high when the accuracy drop is high).

**Tasks** (the case's main task): ``binary`` (above, unchanged), ``multiclass`` and
``regression``; ``generative`` is not assessed, with the reason.

**Per endpoint**: a case whose endpoints serve several tasks is measured for its main task
(the one serving most requests, over its endpoints: the result's own tables), and every
endpoint of another task on its own with its own task (``result.endpoints``, endpoint name ->
a result of this diagnostic). Findings of such a case name their endpoint (``endpoint
<name>:`` in the summary, ``evidence["endpoint"]``); the endpoints' ``not_assessed`` reasons
join the result's, naming the endpoint. A case of one task is unchanged. The concept-drift signal of an endpoint reads that endpoint's
performance (``performance.endpoints``).

* **multiclass**: the class mix per window, its chi-square test of independence (2 x K) and
  Jensen-Shannon distance (base 2), the class whose share moved most, the mix's JS distance
  from the baseline mix per time bucket (``timeline.class_js``), and the score PSI when
  ``score`` is logged. ``model.prediction_shift`` when a class share moved by 5 points
  (p < 0.001), the JS distance is at least 0.1 with chi-square p < 0.001, or the score PSI is
  at least 0.1 (high from 15 points, JS 0.2 or PSI 0.25); statistic the JS distance; evidence
  ``task``, ``score_psi``, ``mean_score``, ``class``, ``class_share_change``, ``class_js``,
  ``chi2``, ``chi2_pvalue``.
* **regression**: the predicted values' distribution: PSI on the baseline's deciles per
  window and per time bucket (``timeline.output_psi``), the exact two-sample KS statistic (with
  its asymptotic p-value) and Wasserstein-1 distance (running sums over the distinct values
  in the engine: scipy's ``ks_2samp`` and ``wasserstein_distance``), the mean per window.
  ``model.prediction_shift`` when the PSI is at least 0.1 (high from 0.25); evidence
  ``task``, ``output_psi``, ``ks``, ``ks_pvalue``, ``wasserstein``, ``mean_output``.
* ``model.concept_drift`` for both: the binary rule on the performance diagnostic's
  ``model.accuracy_drop`` (regression: the relative MAE rise as ``accuracy_drop``); evidence
  ``task``, ``accuracy_drop``, ``max_feature_psi``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import ibis
import numpy as np
import pandas as pd
from scipy import stats

from toolkit._validation import check_windows
from toolkit.diagnose import _stats as st
from toolkit.diagnose._base import DiagnosticResult, Finding, NotAssessed, timeline_signals
from toolkit.diagnose._case import CaseView, case_view, choose_bucket, within
from toolkit.diagnose._engine import Recorder, bucket_expr, double, histogram_at, window_label
from toolkit.diagnose._engines import CaseSource
from toolkit.diagnose._onset import coarse_onset, refine_onset
from toolkit.diagnose._tasks import endpoint_findings, endpoint_name, per_endpoint
from toolkit.diagnose.data.drift import MODERATE_PSI, FeatureDriftResult, feature_drift
from toolkit.diagnose.model.performance import PerformanceResult, model_performance
from toolkit.types import Window

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["prediction_shift", "PredictionShiftResult", "ID", "psi_noise_pvalue"]

ID = "model.prediction_shift"

#: Bins of a numeric feature's PSI (feature drift's baseline deciles).
PSI_BINS = 10
#: A feature's PSI of 0.1 or more blocks the concept-drift signal only when noise alone would
#: reach it with a probability below this (:func:`psi_noise_pvalue`).
PSI_NOISE_ALPHA = 0.05
#: The model's score PSI makes a finding only when noise alone would reach it with a
#: probability below this (:meth:`PredictionShiftResult.score_psi_pvalue`).
SCORE_NOISE_ALPHA = 1e-3
#: Why concept drift is read from the accuracy alone when no input feature was compared.
NO_INPUTS = ("no input feature to compare: a concept drift is read from the accuracy drop "
             "alone, and an input shift is not ruled out")


def psi_noise_pvalue(psi: float, n_baseline: float, n_incident: float,
                     bins: int = PSI_BINS) -> float:
    """The probability that two samples of one distribution give a PSI of at least ``psi``.

    PSI is the symmetric (Jeffreys) divergence of the two windows' bin shares; to second order
    it equals Pearson's chi-square statistic of the 2 x ``bins`` table divided by
    ``n_b n_i / (n_b + n_i)``, so ``PSI x n_b n_i / (n_b + n_i)`` is asymptotically
    chi-square with ``bins - 1`` degrees of freedom when nothing moved. Its expected value
    under no change, ``(bins - 1) (1 / n_b + 1 / n_i)``, is the PSI's noise floor.

    Parameters
    ----------
    psi
        The PSI of a feature between the windows.
    n_baseline, n_incident
        The values counted in each window.
    bins
        The bins the PSI was computed on.

    Returns
    -------
    float
        The p-value (NaN when a window is empty or the PSI is not a number).

    Examples
    --------
    >>> round(psi_noise_pvalue(0.12, 150, 150), 2)  # 150 rows a window: the noise floor
    0.44
    >>> psi_noise_pvalue(0.12, 5000, 5000) < 1e-9
    True
    """
    if not (n_baseline > 0 and n_incident > 0 and np.isfinite(psi) and bins >= 2):
        return float("nan")
    statistic = psi * n_baseline * n_incident / (n_baseline + n_incident)
    return float(stats.chi2.sf(statistic, bins - 1))


def _input_drift(drift: FeatureDriftResult) -> dict[str, Any]:
    """What the drift result says about the inputs for the concept-drift signal: the largest
    PSI, the features drifted with medium or high severity, and the features whose PSI is at
    least 0.1 beyond sampling noise (:func:`psi_noise_pvalue`; a categorical feature by the
    drift table's own chi-square p-value)."""
    table = drift.table
    material = table[table["severity"].isin(["medium", "high"])]
    numeric = table["kind"].eq("numeric") if "kind" in table else pd.Series(True, table.index)
    noise = np.array([psi_noise_pvalue(float(r.psi), float(r.n_baseline),
                                       float(r.n_incident)) if is_numeric else float(r.pvalue)
                      for r, is_numeric in zip(table.itertuples(), numeric, strict=True)],
                     dtype=float)
    beyond = table[(table["psi"] >= MODERATE_PSI).to_numpy() & (noise < PSI_NOISE_ALPHA)]
    return {"max_feature_psi": float(table["psi"].max()),
            "drifted_features": tuple(material["feature"]),
            "psi_beyond_noise": tuple(beyond["feature"])}


def _inputs_or_gap(drift: FeatureDriftResult | None, accuracy_known: bool,
                   gaps: list[NotAssessed]) -> dict[str, Any]:
    """The input drift's figures, or, when no input feature was compared and accuracy was,
    a gap saying that a concept drift is then read from the accuracy alone (appended to
    ``gaps``): with no inputs to compare, an input shift is not ruled out."""
    if drift is not None and not drift.table.empty:
        return _input_drift(drift)
    if accuracy_known:
        gaps.append(NotAssessed(f"{ID}:input_drift", NO_INPUTS))
    return {}


def _concept_drift_summary(what: str, result: PredictionShiftResult) -> str:
    """``model.concept_drift``'s summary: the drop and how close the inputs stayed, or that
    no input was there to compare."""
    if math.isnan(result.max_feature_psi):
        return (f"{what} {result.accuracy_drop:.1%}; no input feature was logged to compare, "
                "so an input shift is not ruled out.")
    return (f"{what} {result.accuracy_drop:.1%} while inputs stayed close to the baseline "
            f"(largest feature PSI {result.max_feature_psi:.2f}).")


@dataclass(frozen=True, kw_only=True, repr=False)
class PredictionShiftResult(DiagnosticResult):
    """Score and predicted-class distributions per window, and the concept-drift signal.

    Attributes
    ----------
    table
        One row per window and predicted class: ``window``, ``prediction``, ``requests``,
        ``share``.
    score_bins
        Score counts per window on the baseline's decile bins.
    """

    id = ID
    title = "Model outputs"

    score_psi: float = float("nan")
    mean_score: tuple[float, float] = (float("nan"), float("nan"))
    max_share_change: float = float("nan")
    share_change_pvalue: float = float("nan")
    changed_class: str | None = None
    score_bins: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    accuracy_drop: float = float("nan")
    accuracy_drop_severity: str | None = None
    max_feature_psi: float = float("nan")
    drifted_features: tuple[str, ...] = ()
    #: features whose PSI is at least 0.1 and beyond sampling noise (:func:`psi_noise_pvalue`)
    psi_beyond_noise: tuple[str, ...] = ()
    timeline: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    task: str = "binary"
    #: the predicted-class mix between the windows: chi-square test of the 2 x K table and
    #: Jensen-Shannon distance (base 2, 0..1)
    class_chi2: float = float("nan")
    class_chi2_pvalue: float = float("nan")
    class_js: float = float("nan")
    #: regression: the predicted values' distribution, PSI on the baseline's deciles, exact
    #: two-sample KS statistic and Wasserstein-1 distance, and the mean per window
    output_psi: float = float("nan")
    output_ks: float = float("nan")
    output_ks_pvalue: float = float("nan")
    output_wasserstein: float = float("nan")
    mean_output: tuple[float, float] = (float("nan"), float("nan"))
    output_bins: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    #: a case of several tasks: the result of every endpoint of another task than the main
    #: one, by endpoint name (each measured on its own with its own task)
    endpoints: dict[str, PredictionShiftResult] = field(default_factory=dict, repr=False)
    #: the endpoints this result measures, named when ``endpoints`` is not empty
    main_endpoints: tuple[str, ...] = ()

    def headline(self) -> dict[str, Any]:
        if self.task == "regression":
            return {"task": self.task, "output PSI": self.output_psi, "output KS": self.output_ks,
                    "output Wasserstein": self.output_wasserstein,
                    "mean prediction baseline": self.mean_output[0],
                    "mean prediction incident": self.mean_output[1],
                    "error rise": self.accuracy_drop, "largest feature PSI": self.max_feature_psi}
        if self.task == "multiclass":
            return {"task": self.task, "class-mix JS": self.class_js,
                    "class-mix chi-square p": self.class_chi2_pvalue,
                    "largest class-share change": self.max_share_change,
                    "score PSI": self.score_psi, "accuracy drop": self.accuracy_drop,
                    "largest feature PSI": self.max_feature_psi}
        return {"score PSI": self.score_psi, "mean score baseline": self.mean_score[0],
                "mean score incident": self.mean_score[1],
                "largest class-share change": self.max_share_change,
                "accuracy drop": self.accuracy_drop, "largest feature PSI": self.max_feature_psi}

    @property
    def concept_drift(self) -> bool:
        """Accuracy fell while no input feature drifted (no medium or high drift, and no PSI
        of 0.1 or more beyond sampling noise)."""
        return (self.accuracy_drop_severity is not None and not self.drifted_features and
                not self.psi_beyond_noise)

    def findings(self) -> list[Finding]:
        """The main task's findings and, in a case of several tasks, every other endpoint's,
        each naming its endpoint (``evidence["endpoint"]``)."""
        return endpoint_findings(self, self.own_findings())

    def own_findings(self) -> list[Finding]:
        """The findings of this result's own rows (the main task's endpoints)."""
        if self.task == "binary":
            return self._binary_findings()
        return _task_findings(self)

    @property
    def score_psi_pvalue(self) -> float:
        """The chance that sampling noise alone moves the scores this much: Pearson's
        chi-square test of the 2 x bins table of score counts (bins empty in both windows
        dropped; NaN without counts).

        The PSI's own chi-square approximation (:func:`psi_noise_pvalue`) fails on a few
        dozen requests: an empty incident bin enters the PSI as a log of the smoothing
        epsilon, and two samples of one distribution reach a PSI near 1.
        """
        bins = self.score_bins
        if bins.empty or "n" not in bins:
            return float("nan")
        _, pvalue, _ = st.chi2_contingency_test(
            *(bins.loc[bins["window"] == w, "n"].to_numpy(float) for w in ("baseline", "incident")))
        return pvalue

    def _binary_findings(self) -> list[Finding]:
        out = []
        moved = abs(self.max_share_change)
        share_moved = moved >= 0.05 and self.share_change_pvalue < 1e-3
        # a score PSI counts beyond sampling noise only: on a few dozen requests a window,
        # two samples of one distribution reach a PSI of 0.3 by chance (varied tuning none s3:
        # PSI 0.31 on 37 requests, mean score 0.943 -> 0.939, read as a calibration collapse)
        noise = self.score_psi_pvalue
        psi = self.score_psi if not noise >= SCORE_NOISE_ALPHA else 0.0
        if psi >= MODERATE_PSI or share_moved:
            high = psi >= 0.25 or moved >= 0.15
            out.append(Finding(
                id="model.prediction_shift", pathway="model",
                severity="high" if high else "medium", statistic=float(self.score_psi),
                threshold=MODERATE_PSI,
                summary=(f"model outputs moved: score PSI {self.score_psi:.2f}, mean score "
                         f"{self.mean_score[0]:.3f} -> {self.mean_score[1]:.3f}, class "
                         f"{self.changed_class} share {self.max_share_change:+.1%}."),
                evidence={"score_psi": self.score_psi, "mean_score": list(self.mean_score),
                          "class": self.changed_class,
                          "class_share_change": self.max_share_change},
                onset=self.refined_onsets.get("model.prediction_shift") or self.coarse_onset(),
                diagnostic=self.id,
            ))
        if self.concept_drift:
            out.append(Finding(
                id="model.concept_drift", pathway="model",
                severity="high" if self.accuracy_drop_severity == "high" else "medium",
                statistic=float(self.accuracy_drop), threshold=0.03,
                summary=_concept_drift_summary("accuracy fell", self),
                evidence={"accuracy_drop": self.accuracy_drop,
                          "max_feature_psi": self.max_feature_psi,
                          "psi_beyond_noise": list(self.psi_beyond_noise)},
                diagnostic=self.id,
            ))
        return out

    def coarse_onset(self) -> datetime | None:
        """The bucket where the per-bucket score PSI (regression: output PSI; multiclass
        without scores: class-mix JS) starts to rise."""
        column = {"regression": "output_psi"}.get(self.task, "score_psi")
        if self.task == "multiclass" and "score_psi" not in self.timeline:
            column = "class_js"
        if column not in self.timeline:
            return None
        return coarse_onset(self.timeline, column, after=self.baseline.end,
                            weights="requests", direction=1)

    def signals(self) -> pd.DataFrame:
        """Score PSI against the baseline and the share of traffic on new model versions."""
        columns = [c for c in ("score_psi", "new_version_share", "class_js", "output_psi")
                   if c in self.timeline]
        return timeline_signals(self.timeline, columns, "model.")
    def plot(self, ax: Axes | None = None, **kwargs: Any) -> Axes:
        """Score distribution per window on the baseline's decile bins."""
        from toolkit.plotting import WINDOW_COLORS, axes

        ax = axes(ax, figsize=(8, 4))
        if self.task == "regression" and not self.output_bins.empty:
            return self._plot_outputs(ax)
        if self.score_bins.empty:
            return super().plot(ax)
        import seaborn as sns

        sns.barplot(data=self.score_bins, x="bin", y="share", hue="window",
                    palette=WINDOW_COLORS, ax=ax)
        ax.set_xlabel("score bin (baseline deciles; upper edge)")
        ax.set_title(f"Score distribution (PSI {self.score_psi:.2f})")
        ax.tick_params(axis="x", rotation=45)
        return ax


    def _plot_outputs(self, ax: Axes) -> Axes:
        """Regression: the predicted values' shares per window on the baseline's deciles."""
        from toolkit.plotting import WINDOW_COLORS, plain_number

        bins = self.output_bins
        uppers = list(dict.fromkeys(bins["upper"]))
        x = np.arange(len(uppers))
        for offset, window in ((-0.2, "baseline"), (0.2, "incident")):
            n = bins[bins["window"] == window].set_index("upper")["n"].reindex(uppers).fillna(0)
            total = float(n.sum())
            ax.bar(x + offset, n.to_numpy(float) / (total or 1.0), width=0.4,
                   color=WINDOW_COLORS[window], label=window)
        labels = [f"<= {plain_number(u)}" if np.isfinite(u) else
                  f"> {plain_number(uppers[i - 1])}" for i, u in enumerate(uppers)]
        ax.set_xticks(x, labels, rotation=35, ha="right", fontsize=7)
        ax.set_xlabel("predicted value (baseline deciles; upper edge)")
        ax.set_ylabel("share of requests")
        ax.set_title(f"Predicted values (PSI {self.output_psi:.2f}, KS {self.output_ks:.2f})")
        ax.legend(fontsize=8)
        return ax


def prediction_shift(
    con: CaseSource,
    baseline: Window | str,
    incident: Window | str,
    /,
    *,
    drift: FeatureDriftResult | None = None,
    performance: PerformanceResult | None = None,
    bucket: timedelta | None = None,
    case: CaseView | None = None,
) -> PredictionShiftResult:
    """Score and prediction distributions, and the concept-drift signal.

    Examples
    --------
    >>> import numpy as np, pandas as pd, toolkit as tk
    >>> rng = np.random.default_rng(4)
    >>> ts = pd.date_range("2026-03-01", periods=4000, freq="min", tz="UTC")
    >>> score = np.r_[rng.uniform(0.5, 0.9, 2000), rng.uniform(0.8, 1.0, 2000)]
    >>> con = tk.connect()
    >>> _ = tk.load(con, pd.DataFrame({"request_id": range(4000), "ts": ts, "score": score,
    ...     "prediction": "1"}), table="requests")
    >>> r = prediction_shift(con, (ts[0], ts[2000]), (ts[2000], ts[-1]))
    >>> r.score_psi > 1
    True
    """
    baseline, incident = check_windows(baseline, incident)
    case = case or case_view(con)
    base = dict(baseline=baseline, incident=incident)
    info = case.task
    given = {"drift": drift, "performance": performance}

    def shared(name: str) -> Any:
        """The drift or performance result given, else made once (on first need) for every
        endpoint: the performance result holds every endpoint's in ``endpoints``."""
        if given[name] is None and name == "drift" and case.feature_names():
            given[name] = feature_drift(con, baseline, incident, bucket=bucket, case=case)
        if given[name] is None and name == "performance" and case.has("labels") and \
                "prediction" in case.columns["requests"]:
            given[name] = model_performance(con, baseline, incident, bucket=bucket, case=case)
        return given[name]

    def assess(other: Any) -> PredictionShiftResult:
        def performance_of() -> PerformanceResult | None:
            found = shared("performance")
            if found is None or other is info:
                return found
            return found.endpoints.get(endpoint_name(other.endpoint))

        return _shift(con, case, base, other, drift=lambda: shared("drift"),
                      performance=performance_of, bucket=bucket)

    return per_endpoint(case, info, assess(info), assess)


def _shift(con: CaseSource, case: CaseView, base: dict[str, Any], info: Any, *,
           drift: Callable[[], FeatureDriftResult | None],
           performance: Callable[[], PerformanceResult | None], bucket: timedelta | None
           ) -> PredictionShiftResult:
    """Prediction shift of ``info``'s task on its endpoints (the whole case when it serves one
    task); ``drift`` and ``performance`` give the shared results when first needed."""
    from toolkit.diagnose._tasks import task_filter

    baseline, incident = base["baseline"], base["incident"]
    if info.task == "generative":
        return PredictionShiftResult(**base, task=info.task, not_assessed=(NotAssessed(
            ID, "generative endpoints: their outputs are tokens, not a class or a value (this "
            "diagnostic assesses binary, multiclass and regression tasks)"),))
    if info.task != "binary":
        return _task_shift(con, case, base, info, drift=drift, performance=performance,
                           bucket=bucket)
    if not case.has("requests", "score") and not case.has("requests", "prediction"):
        return PredictionShiftResult(**base, not_assessed=(
            NotAssessed(ID, "requests carry no score or prediction"),))
    record = Recorder()
    span = Window(min(baseline.start, incident.start), max(baseline.end, incident.end))
    t = task_filter(case, info, case.table("requests"))
    t = t.filter(within(t.ts, span))
    t = t.mutate(_window=window_label(t.ts, baseline, incident))
    t = t.filter(t._window.notnull())
    values: dict[str, Any] = {}
    gaps = []
    edges = _score_edges(record, t) if "score" in case.columns["requests"] else []
    values |= _score_scan(case, record, baseline, incident, span, edges,
                          bucket or choose_bucket(span.duration), info)
    if "prediction" in case.columns["requests"]:
        values |= _class_shift(record, t)
    performance, drift = performance(), drift()
    if performance is not None and not performance.table.empty:
        drop = [f for f in performance.own_findings() if f.id == "model.accuracy_drop"]
        # a drop found after a step inside the window is the drop: the whole window's is
        # diluted by the healthy time before the step
        stepped = bool(drop) and "step_start" in drop[0].evidence
        values["accuracy_drop"] = drop[0].statistic if stepped else -performance.accuracy_change
        values["accuracy_drop_severity"] = drop[0].severity if drop else None
    else:
        gaps.append(NotAssessed(f"{ID}:concept_drift", "no labels to measure accuracy"))
    values |= _inputs_or_gap(drift, "accuracy_drop" in values, gaps)
    edges = values.pop("score_edges", None)
    result = PredictionShiftResult(**base, **values, not_assessed=tuple(gaps), sql=record.sql)
    coarse = result.coarse_onset()
    if edges and coarse is not None and result.score_psi >= MODERATE_PSI:
        onset = _refine(case, record, result, edges, coarse, span,
                        bucket or choose_bucket(span.duration), info)
        result = replace(result, refined_onsets={"model.prediction_shift": onset},
                         sql=record.sql)
    return result


def _refine(case: CaseView, record: Recorder, result: PredictionShiftResult,
            edges: list[float], coarse: datetime, span: Window, width: timedelta,
            info: Any) -> datetime:
    """The score shift's onset on raw rows (of ``info``'s endpoints): the share of scores in
    the baseline decile whose share moved most steps there."""
    from toolkit.diagnose._tasks import task_filter

    bins = result.score_bins  # (bin labels may repeat when scores saturate: go by position)
    before = bins.loc[bins["window"] == "baseline", "share"].to_numpy()
    after = bins.loc[bins["window"] == "incident", "share"].to_numpy()
    k = int(np.argmax(np.abs(after - before)))
    requests = task_filter(case, info, case.table("requests"))
    score = requests.score.cast("float64")
    lower = -np.inf if k == 0 else edges[k - 1]
    inside = score <= edges[k] if k < len(edges) else score > edges[-1]
    if k > 0:
        inside = inside & (score > lower)
    indicator = inside.cast("float64").fill_null(0.0)
    return refine_onset(record, requests, indicator, coarse, around=3 * width, limits=span)


def _score_edges(record: Recorder, t: ibis.Table) -> list[float]:
    """The baseline's score deciles (distinct), the bins of the score PSI."""
    base = t.filter((t._window == "baseline") & t.score.notnull())
    edges = record(base.aggregate(q=base.score.cast("float64").quantile(
        [k / 10 for k in range(1, 10)]))).iloc[0]["q"]
    if edges is None:
        return []
    return [float(e) for e in np.unique(np.asarray(edges, dtype=float))]


def _score_scan(case: CaseView, record: Recorder, baseline: Window, incident: Window,
                span: Window, edges: list[float], width: timedelta, info: Any, *,
                by_prediction: bool = False) -> dict[str, Any]:
    """The score shift between the windows and the per-bucket timeline, from one scan of
    ``info``'s endpoints' requests.

    The span is grouped by time bucket and window: requests, the score histogram on ``edges``
    with the scores' sum and count, and the requests answered by a model version the baseline
    never used (a release shows as a step). The windows' histograms and mean scores, and each
    bucket's score PSI against the baseline, are sums of those groups.
    """
    from toolkit.diagnose._tasks import task_filter

    requests = task_filter(case, info, case.table("requests"))
    t = requests.filter(within(requests.ts, span))
    t = t.mutate(_window=window_label(t.ts, baseline, incident))
    aggs: dict[str, Any] = {"requests": t.count()}
    if edges:
        score = t.score.cast("float64")
        aggs |= {"h": histogram_at(score, ibis.literal(edges, type="array<float64>")),
                 "score_sum": score.sum(), "scored": score.count()}
    if "model_version" in case.columns["requests"]:
        base = requests.filter(within(requests.ts, baseline) & requests.model_version.notnull())
        versions = [str(v) for v in record(base.select("model_version").distinct())
                    ["model_version"]]
        if versions:
            new = t.model_version.notnull() & ~t.model_version.isin(versions)
            aggs["new"] = new.cast("int64").sum()
    if len(aggs) == 1 and not by_prediction:
        return {"timeline": pd.DataFrame()}
    keys = {"bucket_start": bucket_expr(t.ts, width), "window": t._window}
    if by_prediction:  # the class mix's counts from the same scan (every sum below adds up)
        keys["prediction"] = t.prediction
    frame = record(t.group_by(**keys).aggregate(**aggs))
    per_bucket = frame.groupby("bucket_start", sort=True)
    timeline = pd.DataFrame({"requests": per_bucket["requests"].sum()})
    if "new" in frame:
        timeline["new_version_share"] = per_bucket["new"].sum() / timeline["requests"]
    values: dict[str, Any] = {}
    if edges:
        uppers = [*edges, float("inf")]
        counts = np.array([[(m or {}).get(u, 0) for u in uppers] for m in frame["h"]],
                          dtype=float).reshape(len(frame), len(uppers))
        windows = frame["window"].to_numpy(dtype=object)
        if {"baseline", "incident"} <= set(windows):
            b, i = (counts[windows == w].sum(axis=0) for w in ("baseline", "incident"))
            with np.errstate(divide="ignore", invalid="ignore"):  # no scores: NaN
                means = [np.float64(frame.loc[windows == w, "score_sum"].sum()) / frame.loc[
                    windows == w, "scored"].sum() for w in ("baseline", "incident")]
            values = {"score_psi": st.psi(b, i), "mean_score": tuple(float(m) for m in means),
                      "score_edges": edges, "score_bins": pd.DataFrame({
                          "window": ["baseline"] * len(uppers) + ["incident"] * len(uppers),
                          "bin": [f"{u:.3f}" for u in uppers] * 2,
                          "share": np.r_[b / max(b.sum(), 1), i / max(i.sum(), 1)],
                          "n": np.r_[b, i]})}
            bucket_counts = pd.DataFrame(counts).groupby(frame["bucket_start"].to_numpy(),
                                                         sort=True).sum().to_numpy()
            timeline["score_psi"] = [st.psi(b, row) if row.sum() >= 30 else np.nan
                                     for row in bucket_counts]
    values["timeline"] = timeline.reset_index()
    if by_prediction:
        values["class_counts"] = frame.loc[frame["prediction"].notna(), [
            "bucket_start", "window", "prediction", "requests"]]
    return values


def _class_shift(record: Recorder, t: ibis.Table) -> dict[str, Any]:
    """The predicted classes' shares per window and the class whose share moved most.

    Requests without a prediction (an export that logs some, a window that logs none) are not a
    class: they are left out, and a window without any prediction leaves the shift unmeasured.
    """
    t = t.filter(t.prediction.notnull())
    counts = record(t.group_by(window=t._window, prediction=t.prediction).aggregate(
        requests=t.count()))
    if set(counts["window"]) != {"baseline", "incident"}:
        return {"table": counts}
    totals = counts.groupby("window")["requests"].transform("sum")
    counts["share"] = counts["requests"] / totals
    wide = counts.pivot_table(index="prediction", columns="window", values="requests",
                              fill_value=0)
    n_b, n_i = wide["baseline"].sum(), wide["incident"].sum()
    change = wide["incident"] / n_i - wide["baseline"] / n_b
    top = change.abs().idxmax()
    _, p = st.two_proportion_z(wide.loc[top, "baseline"], n_b, wide.loc[top, "incident"], n_i)
    return {"table": counts.sort_values(["window", "prediction"], ignore_index=True),
            "max_share_change": float(change[top]), "changed_class": str(top),
            "share_change_pvalue": p}


# --- multiclass and regression ----------------------------------------------------------------

#: Jensen-Shannon distance (base 2) of the class mix from which the mix moved (high from 0.2).
MIN_CLASS_JS = 0.1
MAJOR_CLASS_JS = 0.2


def _task_shift(con: CaseSource, case: CaseView, base: dict[str, Any],
                info: Any, *, drift: Callable[[], FeatureDriftResult | None],
                performance: Callable[[], PerformanceResult | None], bucket: timedelta | None
                ) -> PredictionShiftResult:
    """Prediction shift of a multiclass (class mix; score PSI when ``score`` is logged) or a
    regression (output distribution) task, and the concept-drift signal."""
    from toolkit.diagnose._tasks import task_filter

    baseline, incident = base["baseline"], base["incident"]
    base = dict(base, task=info.task)
    if not case.has("requests", "prediction"):
        return PredictionShiftResult(**base, not_assessed=(
            NotAssessed(ID, "requests carry no prediction"),))
    record = Recorder()
    span = Window(min(baseline.start, incident.start), max(baseline.end, incident.end))
    width = bucket or choose_bucket(span.duration)
    requests = task_filter(case, info, case.table("requests"))
    t = requests.filter(within(requests.ts, span) & requests.prediction.notnull())
    t = t.mutate(_window=window_label(t.ts, baseline, incident))
    gaps: list[NotAssessed] = []
    short = case.window_gaps(ID, baseline, incident, column="prediction")
    if short:
        return PredictionShiftResult(**base, not_assessed=(*gaps, *short), sql=record.sql)
    if info.task == "multiclass" and "score" not in case.columns["requests"]:
        values = _class_mix(record, t, width)
    elif info.task == "multiclass":
        # one scan of the requests for the class mix and the scores
        windows = t.filter(t._window.notnull())
        edges = _score_edges(record, windows)
        scored = _score_scan(case, record, baseline, incident, span, edges, width, info,
                             by_prediction=True)
        values = _class_mix(record, t, width, frame=scored.pop("class_counts"))
        scored.pop("score_edges", None)
        timeline = scored.pop("timeline")
        if "score_psi" in timeline:
            values["timeline"] = values["timeline"].merge(
                timeline[["bucket_start", "score_psi"]], on="bucket_start", how="left")
        values |= scored
    else:
        values = _output_shift(record, t, width)
    performance, drift = performance(), drift()
    if performance is not None and not performance.table.empty:
        drop = [f for f in performance.own_findings() if f.id == "model.accuracy_drop"]
        if info.task == "regression":
            values["accuracy_drop"] = performance.value("incident", "mae") / \
                performance.value("baseline", "mae") - 1
        else:
            values["accuracy_drop"] = -performance.accuracy_change
        values["accuracy_drop_severity"] = drop[0].severity if drop else None
    else:
        gaps.append(NotAssessed(f"{ID}:concept_drift", "no labels to measure accuracy"))
    values |= _inputs_or_gap(drift, "accuracy_drop" in values, gaps)
    return PredictionShiftResult(**base, **values, not_assessed=tuple(gaps), sql=record.sql)


def _class_mix(record: Recorder, t: ibis.Table, width: timedelta,
               frame: pd.DataFrame | None = None) -> dict[str, Any]:
    """Class shares per window, the chi-square test and JS distance of the mix, the class
    that moved most, and the mix's JS distance from the baseline per time bucket (buckets of
    at least 30 predictions), from one scan grouped by bucket, window and class (``frame``:
    those counts, made by the score scan)."""
    if frame is None:
        frame = record(t.group_by(bucket_start=bucket_expr(t.ts, width), window=t._window,
                                  prediction=t.prediction).aggregate(requests=t.count()))
    windows = frame[frame["window"].notna()]
    counts = windows.groupby(["window", "prediction"], as_index=False)["requests"].sum()
    out = _class_shift_from_counts(counts)
    wide = counts.pivot_table(index="prediction", columns="window", values="requests",
                              aggfunc="sum", fill_value=0)
    reference = wide["baseline"] if "baseline" in wide else None
    per_bucket = frame.pivot_table(index="bucket_start", columns="prediction",
                                   values="requests", aggfunc="sum", fill_value=0)
    timeline = pd.DataFrame({"bucket_start": per_bucket.index,
                             "requests": per_bucket.sum(axis=1).to_numpy()})
    if reference is not None:
        aligned = per_bucket.reindex(columns=sorted(set(per_bucket.columns) |
                                                    set(reference.index)), fill_value=0)
        ref = reference.reindex(aligned.columns, fill_value=0).to_numpy(float)
        timeline["class_js"] = [st.js_distance(ref, row) if row.sum() >= 30 else np.nan
                                for row in aligned.to_numpy(float)]
    out["timeline"] = timeline.reset_index(drop=True)
    return out


def _class_shift_from_counts(counts: pd.DataFrame) -> dict[str, Any]:
    if set(counts["window"]) != {"baseline", "incident"}:
        return {"table": counts}
    counts = counts.copy()
    counts["share"] = counts["requests"] / counts.groupby("window")["requests"].transform("sum")
    wide = counts.pivot_table(index="prediction", columns="window", values="requests",
                              fill_value=0)
    b, i = wide["baseline"].to_numpy(float), wide["incident"].to_numpy(float)
    n_b, n_i = b.sum(), i.sum()
    change = wide["incident"] / n_i - wide["baseline"] / n_b
    top = change.abs().idxmax()
    _, p = st.two_proportion_z(wide.loc[top, "baseline"], n_b, wide.loc[top, "incident"], n_i)
    chi2, chi2_p, _ = st.chi2_contingency_test(b, i)
    return {"table": counts.sort_values(["window", "prediction"], ignore_index=True),
            "max_share_change": float(change[top]), "changed_class": str(top),
            "share_change_pvalue": p, "class_chi2": chi2, "class_chi2_pvalue": chi2_p,
            "class_js": st.js_distance(b, i)}


def _output_shift(record: Recorder, t: ibis.Table, width: timedelta) -> dict[str, Any]:
    """The distribution of a regression's predicted values: PSI on the baseline's deciles per
    window and time bucket (one scan), and the exact two-sample KS statistic and
    Wasserstein-1 distance between the windows (one more scan: counts per distinct value, the
    two empirical CDFs as running sums in the engine)."""
    y = t.prediction.try_cast("float64")
    t = t.mutate(_y=y).filter(y.notnull())
    windows = t.filter(t._window.notnull())
    before = windows.filter(windows._window == "baseline")
    edges = record(before.aggregate(q=before._y.quantile([k / 10 for k in range(1, 10)])
                                    )).iloc[0]["q"]
    if edges is None:
        return {}
    edges = [float(e) for e in np.unique(np.asarray(edges, dtype=float))]
    frame = record(t.group_by(bucket_start=bucket_expr(t.ts, width), window=t._window)
                   .aggregate(requests=t.count(), s=t._y.sum(),
                              h=histogram_at(t._y, ibis.literal(edges, type="array<float64>"))))
    uppers = [*edges, float("inf")]
    counts = np.array([[(m or {}).get(u, 0) for u in uppers] for m in frame["h"]],
                      dtype=float).reshape(len(frame), len(uppers))
    names = frame["window"].to_numpy(dtype=object)
    if not {"baseline", "incident"} <= set(names):
        return {}
    b, i = (counts[names == w].sum(axis=0) for w in ("baseline", "incident"))
    means = tuple(float(frame.loc[names == w, "s"].sum() / frame.loc[names == w,
                                                                        "requests"].sum())
                  for w in ("baseline", "incident"))
    per_bucket = pd.DataFrame(counts).groupby(frame["bucket_start"].to_numpy(), sort=True).sum()
    requests = frame.groupby("bucket_start", sort=True)["requests"].sum()
    timeline = pd.DataFrame({"bucket_start": requests.index, "requests": requests.to_numpy(),
                             "output_psi": [st.psi(b, row) if row.sum() >= 30 else np.nan
                                            for row in per_bucket.to_numpy()]})
    ks, wasserstein = _ks_wasserstein(record, windows, b.sum(), i.sum())
    return {"output_psi": st.psi(b, i), "output_ks": ks,
            "output_ks_pvalue": st.ks_pvalue(ks, int(b.sum()), int(i.sum())),
            "output_wasserstein": wasserstein, "mean_output": means, "timeline": timeline,
            "output_bins": pd.DataFrame({
                "window": ["baseline"] * len(uppers) + ["incident"] * len(uppers),
                "upper": uppers * 2, "n": np.r_[b, i]})}


def _ks_wasserstein(record: Recorder, windows: ibis.Table, n_b: float, n_i: float
                    ) -> tuple[float, float]:
    """Exact ``max |F_b - F_i|`` and ``integral |F_b - F_i| dx`` (scipy's ``ks_2samp``
    statistic and ``wasserstein_distance``): counts per distinct value and window, running
    sums in value order, and the gap to the next value, all in the engine."""
    per_value = windows.group_by(v=windows._y).aggregate(
        b=(windows._window == "baseline").cast("int64").sum(),
        i=(windows._window == "incident").cast("int64").sum())
    running = ibis.cumulative_window(order_by=per_value.v)
    cdf = per_value.mutate(
        d=(per_value.b.sum().over(running) / double(n_b) -
           per_value.i.sum().over(running) / double(n_i)).abs(),
        step=per_value.v.lead().over(ibis.window(order_by=per_value.v)) - per_value.v)
    row = record(cdf.aggregate(ks=cdf.d.max(), w=(cdf.d * cdf.step).sum())).iloc[0]
    return float(row["ks"]), float(row["w"])


def _task_findings(result: PredictionShiftResult) -> list[Finding]:
    """``model.prediction_shift`` and ``model.concept_drift`` of a multiclass or regression
    task (the binary ids and evidence keys, with ``task`` and the task's statistics)."""
    out = []
    onset = result.coarse_onset()
    if result.task == "regression":
        psi = result.output_psi
        if psi >= MODERATE_PSI:
            out.append(Finding(
                id="model.prediction_shift", pathway="model",
                severity="high" if psi >= 0.25 else "medium", statistic=float(psi),
                threshold=MODERATE_PSI,
                summary=(f"predicted values moved: PSI {psi:.2f}, KS {result.output_ks:.2f}, "
                         f"Wasserstein {result.output_wasserstein:.4g}, mean "
                         f"{result.mean_output[0]:.4g} -> {result.mean_output[1]:.4g}."),
                evidence={"task": "regression", "output_psi": psi, "ks": result.output_ks,
                          "ks_pvalue": result.output_ks_pvalue,
                          "wasserstein": result.output_wasserstein,
                          "mean_output": list(result.mean_output)},
                onset=onset, diagnostic=result.id))
    else:
        moved = abs(result.max_share_change)
        share_moved = moved >= 0.05 and result.share_change_pvalue < 1e-3
        mix_moved = result.class_js >= MIN_CLASS_JS and result.class_chi2_pvalue < 1e-3
        if result.score_psi >= MODERATE_PSI or share_moved or mix_moved:
            high = (result.score_psi >= 0.25 or moved >= 0.15 or
                    result.class_js >= MAJOR_CLASS_JS)
            out.append(Finding(
                id="model.prediction_shift", pathway="model",
                severity="high" if high else "medium", statistic=float(result.class_js),
                threshold=MIN_CLASS_JS,
                summary=(f"predicted class mix moved: JS distance {result.class_js:.2f} "
                         f"(chi-square p {st.p_text(result.class_chi2_pvalue)}), class "
                         f"{result.changed_class} share {result.max_share_change:+.1%}"
                         + (f"; score PSI {result.score_psi:.2f}."
                            if result.score_psi == result.score_psi else ".")),
                evidence={"task": "multiclass", "score_psi": result.score_psi,
                          "mean_score": list(result.mean_score),
                          "class": result.changed_class,
                          "class_share_change": result.max_share_change,
                          "class_js": result.class_js, "chi2": result.class_chi2,
                          "chi2_pvalue": result.class_chi2_pvalue},
                onset=onset, diagnostic=result.id))
    if result.concept_drift:
        what = ("the mean absolute error rose" if result.task == "regression" else
                "accuracy fell")
        out.append(Finding(
            id="model.concept_drift", pathway="model",
            severity="high" if result.accuracy_drop_severity == "high" else "medium",
            statistic=float(result.accuracy_drop),
            threshold=0.10 if result.task == "regression" else 0.03,
            summary=_concept_drift_summary(what, result),
            evidence={"task": result.task, "accuracy_drop": result.accuracy_drop,
                      "max_feature_psi": result.max_feature_psi},
            diagnostic=result.id))
    return out
