"""What the model outputs, and whether quality fell while inputs stayed put.

Recipes:

* **score shift**: PSI of the ``score`` distribution on 10 baseline-quantile bins (same recipe
  as feature drift) and the change in the mean score;
* **prediction shift**: share of each predicted class per window, and the largest change in a
  class's share (two-proportion z-test);
* **concept-drift signal**: accuracy fell (``model.accuracy_drop`` from the performance
  diagnostic) while the inputs stayed close to the baseline (no feature drifted with medium or
  high severity, and the largest feature PSI below 0.1). Needs labels; it reuses the drift and
  performance results when given.

Findings: ``model.prediction_shift`` (score PSI >= 0.1 or a class share moving by >= 5 points
with p < 0.001; high from PSI 0.25 / 15 points; dated where the per-bucket score PSI starts to
rise), ``model.concept_drift`` (high when the accuracy drop is high).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import duckdb
import ibis
import numpy as np
import pandas as pd

from toolkit._validation import check_windows
from toolkit.diagnose import _stats as st
from toolkit.diagnose._base import DiagnosticResult, Finding, NotAssessed
from toolkit.diagnose._case import CaseView, case_view, choose_bucket, within
from toolkit.diagnose._engine import Recorder, bucket_expr, histogram_at, window_label
from toolkit.diagnose._onset import coarse_onset, refine_onset
from toolkit.diagnose.data.drift import MODERATE_PSI, FeatureDriftResult, feature_drift
from toolkit.diagnose.model.performance import PerformanceResult, model_performance
from toolkit.types import Window

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["prediction_shift", "PredictionShiftResult", "ID"]

ID = "model.prediction_shift"


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
    timeline: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    def headline(self) -> dict[str, Any]:
        return {"score PSI": self.score_psi, "mean score baseline": self.mean_score[0],
                "mean score incident": self.mean_score[1],
                "largest class-share change": self.max_share_change,
                "accuracy drop": self.accuracy_drop, "largest feature PSI": self.max_feature_psi}

    @property
    def concept_drift(self) -> bool:
        """Accuracy fell while no input feature drifted."""
        return (self.accuracy_drop_severity is not None and not self.drifted_features and
                not self.max_feature_psi >= MODERATE_PSI)

    def findings(self) -> list[Finding]:
        out = []
        moved = abs(self.max_share_change)
        share_moved = moved >= 0.05 and self.share_change_pvalue < 1e-3
        if self.score_psi >= MODERATE_PSI or share_moved:
            high = self.score_psi >= 0.25 or moved >= 0.15
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
                summary=(f"accuracy fell {self.accuracy_drop:.1%} while inputs stayed close to "
                         f"the baseline (largest feature PSI {self.max_feature_psi:.2f})."),
                evidence={"accuracy_drop": self.accuracy_drop,
                          "max_feature_psi": self.max_feature_psi},
                diagnostic=self.id,
            ))
        return out

    def coarse_onset(self) -> datetime | None:
        """The bucket where the per-bucket score PSI starts to rise."""
        return coarse_onset(self.timeline, "score_psi", after=self.baseline.end,
                            weights="requests", direction=1)

    def signals(self) -> pd.DataFrame:
        """Score PSI against the baseline and the share of traffic on new model versions."""
        if self.timeline.empty:
            return super().signals()
        frame = self.timeline.melt(id_vars="bucket_start",
                                   value_vars=[c for c in ("score_psi", "new_version_share")
                                               if c in self.timeline],
                                   var_name="signal", value_name="value")
        frame["signal"] = "model." + frame["signal"]
        return frame

    def plot(self, ax: Axes | None = None, **kwargs: Any) -> Axes:
        """Score distribution per window on the baseline's decile bins."""
        from toolkit.plotting import WINDOW_COLORS, axes

        ax = axes(ax, figsize=(8, 4))
        if self.score_bins.empty:
            return super().plot(ax)
        import seaborn as sns

        sns.barplot(data=self.score_bins, x="bin", y="share", hue="window",
                    palette=WINDOW_COLORS, ax=ax)
        ax.set_xlabel("score bin (baseline deciles; upper edge)")
        ax.set_title(f"Score distribution (PSI {self.score_psi:.2f})")
        ax.tick_params(axis="x", rotation=45)
        return ax


def prediction_shift(
    con: duckdb.DuckDBPyConnection,
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
    if not case.has("requests", "score") and not case.has("requests", "prediction"):
        return PredictionShiftResult(**base, not_assessed=(
            NotAssessed(ID, "requests carry no score or prediction"),))
    record = Recorder()
    span = Window(min(baseline.start, incident.start), max(baseline.end, incident.end))
    t = case.table("requests")
    t = t.filter(within(t.ts, span))
    t = t.mutate(_window=window_label(t.ts, baseline, incident))
    t = t.filter(t._window.notnull())
    values: dict[str, Any] = {}
    gaps = []
    edges = _score_edges(record, t) if "score" in case.columns["requests"] else []
    values |= _score_scan(case, record, baseline, incident, span, edges,
                          bucket or choose_bucket(span.duration))
    if "prediction" in case.columns["requests"]:
        values |= _class_shift(record, t)
    if performance is None and case.has("labels") and "prediction" in case.columns["requests"]:
        performance = model_performance(con, baseline, incident, bucket=bucket, case=case)
    if drift is None and case.feature_names():
        drift = feature_drift(con, baseline, incident, bucket=bucket, case=case)
    if performance is not None and not performance.table.empty:
        drop = [f for f in performance.findings() if f.id == "model.accuracy_drop"]
        values["accuracy_drop"] = -performance.accuracy_change
        values["accuracy_drop_severity"] = drop[0].severity if drop else None
    else:
        gaps.append(NotAssessed(f"{ID}:concept_drift", "no labels to measure accuracy"))
    if drift is not None and not drift.table.empty:
        values["max_feature_psi"] = float(drift.table["psi"].max())
        material = drift.table[drift.table["severity"].isin(["medium", "high"])]
        values["drifted_features"] = tuple(material["feature"])
    edges = values.pop("score_edges", None)
    result = PredictionShiftResult(**base, **values, not_assessed=tuple(gaps), sql=record.sql)
    coarse = result.coarse_onset()
    if edges and coarse is not None and result.score_psi >= MODERATE_PSI:
        onset = _refine(case, record, result, edges, coarse, span,
                        bucket or choose_bucket(span.duration))
        result = replace(result, refined_onsets={"model.prediction_shift": onset},
                         sql=record.sql)
    return result


def _refine(case: CaseView, record: Recorder, result: PredictionShiftResult,
            edges: list[float], coarse: datetime, span: Window, width: timedelta) -> datetime:
    """The score shift's onset on raw rows: the share of scores in the baseline decile whose
    share moved most steps there."""
    bins = result.score_bins  # (bin labels may repeat when scores saturate: go by position)
    before = bins.loc[bins["window"] == "baseline", "share"].to_numpy()
    after = bins.loc[bins["window"] == "incident", "share"].to_numpy()
    k = int(np.argmax(np.abs(after - before)))
    requests = case.table("requests")
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
                span: Window, edges: list[float], width: timedelta) -> dict[str, Any]:
    """The score shift between the windows and the per-bucket timeline, from one scan.

    The span is grouped by time bucket and window: requests, the score histogram on ``edges``
    with the scores' sum and count, and the requests answered by a model version the baseline
    never used (a release shows as a step). The windows' histograms and mean scores, and each
    bucket's score PSI against the baseline, are sums of those groups.
    """
    requests = case.table("requests")
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
    if len(aggs) == 1:
        return {"timeline": pd.DataFrame()}
    frame = record(t.group_by(bucket_start=bucket_expr(t.ts, width), window=t._window)
                   .aggregate(**aggs))
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
                          "share": np.r_[b / max(b.sum(), 1), i / max(i.sum(), 1)]})}
            bucket_counts = pd.DataFrame(counts).groupby(frame["bucket_start"].to_numpy(),
                                                         sort=True).sum().to_numpy()
            timeline["score_psi"] = [st.psi(b, row) if row.sum() >= 30 else np.nan
                                     for row in bucket_counts]
    values["timeline"] = timeline.reset_index()
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
