"""Calibration of the model's confidence against delayed labels.

Recipe (``kind="top-label"``, the default): the forecast ``f`` is ``score`` (the model's
confidence in its ``prediction``, DESIGN section 3) and the outcome ``o`` is whether the
prediction was right. ``kind="positive-class"`` uses ``f = P(positive)`` (``score`` when the
prediction is the positive class, else ``1 - score``) and ``o = [label == positive]``, which is
netcal's binary convention.

* **ECE** = sum_b (n_b / n) |acc_b - conf_b| over 15 equal-width bins on [0, 1]
  (Guo et al. 2017); ``ece_equal_mass`` uses 15 bins with equal numbers of predictions, with
  edges from the window's own score quantiles (Nixon et al. 2019's adaptive binning).
  **MCE** = max over non-empty bins of |acc_b - conf_b|.
* **Brier** = mean (f - o)^2 and its decomposition over the equal-width bins:
  ``brier = reliability - resolution + uncertainty + within_bin_variance - 2 *
  within_bin_covariance`` (Murphy 1973 with the two within-bin terms of Stephenson, Coelho &
  Jolliffe 2008); the identity holds exactly.
* ``confident_error_share``: share of labelled predictions that are wrong with ``f >=
  threshold`` (default 0.85, the decision threshold in the published quantization incident).

All sums are aggregated per window, bin, model version and time bucket in the engine.

Findings: ``model.calibration_shift`` when, with at least 500 labelled predictions in each window,
the incident ECE exceeds the baseline's by at least 0.01 and is at least twice it (high from
+0.02 and three times). A well-calibrated model's ECE is small (it cannot exceed its error
rate, so a 96%-accurate model sits near 0.005), which is why the rule is relative. Evidence
includes the accuracy change (a calibration collapse keeps accuracy within 1-2 points) and the
confident-error shares; the versions compared are named when a new model version serves the
incident.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import duckdb
import ibis
import numpy as np
import pandas as pd

from toolkit._validation import check_interval, check_option, check_windows
from toolkit.diagnose._base import DiagnosticResult, Finding, NotAssessed
from toolkit.diagnose._case import CaseView, case_view, choose_bucket
from toolkit.diagnose._engine import Recorder, bucket_expr, window_label
from toolkit.diagnose._labels import labelled_table, positive_class
from toolkit.diagnose._onset import coarse_onset, refine_onset
from toolkit.types import Window

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["calibration", "CalibrationResult", "ID", "calibration_summary"]

ID = "model.calibration"
N_BINS = 15
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
        ``ece_equal_mass``, ``mce``, ``brier``, ``reliability``, ``resolution``,
        ``uncertainty``, ``within_bin_variance``, ``within_bin_covariance``,
        ``confident_error_share``.
    reliability_bins
        Reliability-diagram data: ``window``, ``bin``, ``lo``, ``hi``, ``n``, ``confidence``,
        ``accuracy`` (equal-width bins).
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
    reliability_bins: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    by_version: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    timeline: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    def value(self, window: str, column: str) -> float:
        rows = self.table[self.table["window"] == window]
        return float(rows[column].iloc[0]) if len(rows) else float("nan")

    def headline(self) -> dict[str, Any]:
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
        if len(self.table) < 2:
            return []
        b_ece, i_ece = self.value("baseline", "ece"), self.value("incident", "ece")
        shift = i_ece - b_ece
        enough = min(self.value("baseline", "labelled"), self.value("incident", "labelled"))
        if not (enough >= MIN_WINDOW_LABELS and shift >= MIN_SHIFT and
                i_ece >= MIN_RATIO * b_ece):
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
        if self.timeline.empty:
            return super().signals()
        frame = self.timeline[["bucket_start", "ece"]].rename(columns={"ece": "value"})
        frame.insert(1, "signal", "model.ece")
        return frame

    def plot(self, ax: Axes | None = None, **kwargs: Any) -> Axes:
        """Reliability diagram, baseline and incident overlaid, with the diagonal."""
        from toolkit.plotting import WINDOW_COLORS, axes

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
    con: duckdb.DuckDBPyConnection,
    baseline: Window | str,
    incident: Window | str,
    /,
    *,
    kind: str = "top-label",
    threshold: float = 0.85,
    positive: str | None = None,
    bucket: timedelta | None = None,
    case: CaseView | None = None,
) -> CalibrationResult:
    """Calibration (ECE, MCE, Brier decomposition, reliability) before and during an incident.

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
    case = case or case_view(con)
    base = dict(baseline=baseline, incident=incident, kind=kind, threshold=threshold)
    if not case.has("requests", "score", "prediction"):
        return CalibrationResult(**base, not_assessed=(
            NotAssessed(ID, "requests carry no score (confidence) or prediction"),))
    if not case.has("labels"):
        return CalibrationResult(**base, not_assessed=(
            NotAssessed(ID, "the case has no labels"),))
    record = Recorder(joins_as_written=True)  # the labels join: see Recorder
    span = Window(min(baseline.start, incident.start), max(baseline.end, incident.end))
    width = bucket or choose_bucket(span.duration)
    t = labelled_table(case, record, span)
    t = t.filter(t.score.notnull())
    if kind == "positive-class":
        positive = positive or positive_class(case, record, span)
        pos = ibis.literal(positive)
        f = ibis.cases((t.prediction == pos, t.score), else_=1 - t.score)
        o = (t.label == pos).cast("float64")
    else:
        f = t.score.cast("float64")
        o = t.correct.cast("float64")
    t = t.mutate(_f=f.clip(0.0, 1.0), _o=o, _window=window_label(t.ts, baseline, incident))
    t = t.mutate(_bin=(t._f * N_BINS).floor().clip(0, N_BINS - 1).cast("int64"))
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
    equal_mass = _equal_mass_ece(record, windows)
    table["ece_equal_mass"] = table["window"].map(equal_mass)
    table = table.set_index("window").loc[["baseline", "incident"]].reset_index()
    bins = per_bin.assign(
        lo=per_bin["bin"] / N_BINS, hi=(per_bin["bin"] + 1) / N_BINS,
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
    result = CalibrationResult(**base, positive=positive if kind == "positive-class" else None,
                               table=table, reliability_bins=bins, by_version=by_version,
                               timeline=timeline, sql=record.sql)
    for finding in result.findings():
        if finding.onset is not None:
            # A calibration collapse moves the confidence of every answer, labelled or not:
            # locate the step in the mean confidence of all requests.
            requests = case.table("requests")
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


def _equal_mass_ece(record: Recorder, rows: ibis.Table) -> dict[str, float]:
    """ECE over 15 equal-mass bins with edges at each window's own score quantiles.

    Two queries whatever the number of windows: the quantiles per window, then the per-bin
    sums with each row compared against its own window's edges.
    """
    levels = [k / N_BINS for k in range(1, N_BINS)]
    quantiles = record(rows.group_by(window=rows._window).aggregate(q=rows._f.quantile(levels)))
    edges = {str(w): np.asarray(q, dtype=float) for w, q in
             zip(quantiles["window"], quantiles["q"], strict=True) if q is not None}
    if not edges:
        return {}
    index = ibis.literal(0)
    for k in range(len(levels)):
        edge = ibis.cases(*((rows._window == w, float(e[k])) for w, e in edges.items()),
                          else_=float("inf"))
        # an edge equal to the previous one (ties in the scores) adds no bin
        index = index + (rows._f > edge).cast("int64")
    binned = rows.mutate(_mbin=index)
    per_bin = record(binned.group_by(window=binned._window, bin=binned._mbin).aggregate(
        n=binned.count(), sf=binned._f.sum(), so=binned._o.sum()))
    return {str(w): float(np.abs(part["so"] - part["sf"]).sum() / part["n"].sum())
            for w, part in per_bin.groupby("window")}
