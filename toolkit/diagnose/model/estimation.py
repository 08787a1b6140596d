"""Label-free performance estimation: confidence-based (CBPE) accuracy, precision, recall, F1.

Recipe (binary tasks; NannyML's CBPE, ``nannyml/performance_estimation/confidence_based``):

1. **Calibrate on the reference.** The labelled predictions of the baseline window are the
   reference. Their P(positive) (``score`` for a positive prediction, else ``1 - score``; or
   ``score`` itself with ``score_is="p_positive"``), rounded to :data:`DIGITS` decimals, are
   counted in the engine per distinct value with the positives among them; Python fits a
   weighted isotonic regression of the positive share on P(positive) (``scipy.optimize.
   isotonic_regression``, the same fit as scikit-learn's ``IsotonicRegression``, which NannyML
   uses, on the same distinct values) and applies it with linear interpolation between the
   fitted points, clipped at the ends (``out_of_bounds="clip"``).
1b. **Reweight the reference to the incident's inputs** (``reweight=True``, the default). CBPE
   assumes P(y | score) is the reference's; under a covariate shift only P(y | x) holds, and
   a model whose calibration differs between regions of its inputs (a linear model that
   extrapolates where the truth saturates) is then over- or under-estimated by the
   reference's mix of regions (about 1.5 points too high on the simulated covariate shifts).
   Importance weighting restores it: each reference row counts ``w = P_incident(cell) /
   P_reference(cell)``, where the cells cross the :data:`MAX_SEGMENT_FEATURES` features
   whose population stability index between the baseline's and the incident's scored
   requests is largest and at least :data:`MIN_SEGMENT_PSI` (bins: :data:`SEGMENT_BINS`
   baseline quantiles of a numeric feature, the commonest :data:`SEGMENT_BINS` - 1
   categories and the rest of a categorical one, and missing values), counted in the
   engine; weights are capped at :data:`MAX_WEIGHT`, and the weighting is dropped when the
   weighted reference keeps fewer than :data:`MIN_REFERENCE_LABELS` effective labels
   (``(sum w)^2 / sum w^2``). The calibrators (full and per fold) are fitted on the weighted
   counts; the reference's own checks below use the reference as it is. The weights are the
   pooled incident window's (every bucket uses them). ``reference["reweighting"]`` says what
   was done. It cannot help where the incident's inputs leave the reference's (a cell the
   reference barely holds): ``uncovered_share`` and ``capped_share`` say how much.
2. **Estimate.** The analysis (incident) window's predictions are counted per time bucket,
   predicted class and P(positive) in the engine. With ``c`` the calibrated P(positive), the
   expected confusion matrix of a bucket is ``TP = sum_{pred=pos} c``, ``FP = sum_{pred=pos}
   (1 - c)``, ``FN = sum_{pred=neg} c``, ``TN = sum_{pred=neg} (1 - c)``, and accuracy, precision,
   recall and F1 are computed from it as from a realised one (expected accuracy = mean of
   ``max(c, 1 - c)`` when the prediction is the likelier class).
3. **Band.** Outcomes are independent Bernoulli(``c``) under the calibrated model: the standard
   error of the expected accuracy is ``sqrt(sum c (1 - c)) / n``; precision, recall and F1 use
   the delta method on TP and FN (disjoint rows, independent). The calibration map's own error
   is added in quadrature: the larger of (a) the standard deviation of the estimate over
   :data:`BOOTSTRAP` Poisson-bootstrap replicates of the labelled reference (each calibrator
   refitted on counts ``k* ~ Poisson(k)``, ``(n - k)* ~ Poisson(n - k)``, times the weights
   when reweighted; a fixed seed) and (b) half the difference of the estimates of two
   calibrators fitted on the reference's first and second half in time (a one-degree-of-freedom
   estimate that also sees a calibration moving in time). The band is ``estimate +- 1.96 se``
   (``accuracy_se_sampling``, ``_bootstrap`` and ``_folds`` hold the parts). It does not hold
   the bias of a calibration that the incident's inputs bend (a covariate shift the
   reweighting does not fully undo), so it is a 95% band for sampling and calibration error
   only: on the classic tuning backtests (``bench/estimation_backtest.py``) it covers 93-100%
   of the windows of a new version calibrated on its labelled head, but about 60% under a
   covariate shift (a +0.9 point bias on average). The stand-in model's band (a new version
   with no label; step 4) is its own: sampling plus the delta method on its coefficients,
   covering 92% (bad release) and 83% (calibration collapse) of the weekly windows.
4. **Assumptions** (CBPE holds only when P(y | score) is the reference's). It abstains ("cannot
   estimate": ``not_assessed`` with the reason, and ``status`` per bucket) when

   * the reference has fewer than :data:`MIN_REFERENCE_LABELS` labelled predictions or one
     class only, or remains poorly calibrated after calibration: the cross-fitted ECE (each
     half's calibrator applied to the other half in time, so a calibration that does not hold
     from one half of the reference to the next is caught; in-sample, isotonic regression is
     always calibrated; 10 equal-width bins of the calibrated
     P(positive)) exceeds by more than :data:`MAX_RESIDUAL_ECE` the ECE a perfectly calibrated
     model shows by chance on as many rows (``sqrt(2 / pi) sum_b sqrt(sum_b c (1 - c)) / n``,
     about 0.025 for 2,000 uncertain predictions, which a fixed threshold would mistake for
     miscalibration);
   * the scores leave the reference's support: more than :data:`MAX_OUTSIDE_SHARE` of a bucket's
     predictions have a P(positive) outside the reference's range or in one of the
     :data:`SUPPORT_BINS` equal-width bins where the reference has fewer than
     :data:`MIN_SUPPORT_ROWS` labelled predictions (a bucket; the whole window when its pooled
     share does);
   * more than :data:`MAX_OUTSIDE_SHARE` of the predictions come from a model version that
     served none of the reference's labelled predictions (the calibration is another model's:
     a new release or a quantized checkpoint can be confidently wrong in ways its scores do
     not show) **and** that version has no labelled head of its own. Labels that arrive with
     a delay give one: the version's labelled predictions after the baseline (to the end of
     the incident) whose labels arrived before ``as_of`` calibrate it, when they pass the
     reference's checks (:data:`MIN_REFERENCE_LABELS`, both classes, the cross-fitted ECE
     between the head's halves in time; :func:`_version_heads`); its rows are then estimated
     and bounded (support, band) with that calibrator. ``reference["versions"]`` says, per
     new version, how many labels it had and why it was or was not calibrated. The labels
     that calibrate a version cannot also check it for concept drift (on them the gap is
     zero by construction): for those rows the head's cross-fitted ECE is the only check.
     A version with no such head is estimated instead by a **stand-in model** fitted on the
     reference's features (:mod:`toolkit.diagnose.model.estimation_proxy`: a calibrated
     logistic regression of the label on the features, scored in the engine; P(y | x) holds
     for any model version unless the concept drifts), when its own checks pass (held-out
     AUC, ECE and agreement with the old model's realised accuracy; every catalogued feature
     present and the incident's inside the reference's support; no concept-drift evidence
     where incident labels exist). The result's ``method`` is then ``"proxy"`` (the table's
     ``method`` column too), its assumptions the proxy's, and
     ``reference["proxy"]`` holds the fit and, where the old version still served part of
     the window, CBPE's and the proxy's estimate of those rows and their gap. Without the
     proxy (its checks fail, multiclass or regression tasks) the version abstains as before,
     with the proxy's failed checks among the reasons;
   * labels that exist in the analysis window contradict the estimate (concept drift: P(y|x)
     changed, which no score can show): realised accuracy differs from the estimate on the
     same labelled rows by more than :data:`MIN_DRIFT_GAP` and more than :data:`Z_CHECK`
     standard errors, in the pooled window or any bucket with at least
     :data:`MIN_CHECK_LABELS` labels. ``as_of`` hides the labels that arrived later (a backtest
     "before the labels arrived").

Finding: ``model.estimated_accuracy_drop`` when, the assumptions holding, the analysis
window's estimated accuracy is at least :data:`MIN_DROP` below the reference's realised
accuracy and its band's upper end is below it. An estimate is weaker evidence than a realised
drop: severity ``low``, ``medium`` from :data:`MAJOR_DROP`, never ``high``.

Regression tasks (the case's main task, ``case.task``; DESIGN section 3a) get an error-model
estimate (the DLE idea) instead, with the same honesty: see
:mod:`toolkit.diagnose.model.estimation_regression`.

Multiclass tasks (more than two classes; ``score`` is the confidence in the predicted class)
get the top-label estimate: the confidence is calibrated against being right, and the
expected accuracy is the mean calibrated confidence, with the same band and checks;
precision, recall, F1 and the confusion matrix need every class's probability and are not
assessed (``model.estimation:per_class``), which does not count as abstaining.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

import ibis
import numpy as np
import pandas as pd
from scipy.optimize import isotonic_regression

from toolkit._validation import check_option, check_windows
from toolkit.diagnose import _stats as st
from toolkit.diagnose._base import DiagnosticResult, Finding, NotAssessed
from toolkit.diagnose._case import CaseView, case_view, choose_bucket, within
from toolkit.diagnose._engine import Recorder, bucket_expr, sample_by_time
from toolkit.diagnose._engines import CaseSource
from toolkit.diagnose._labels import labelled_rows, labelled_table, positive_class
from toolkit.diagnose.model.calibration import SCORE_IS, score_problem, score_semantics
from toolkit.types import Window, to_utc

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["estimation", "EstimationResult", "ID", "Calibrator", "fit_calibrator",
           "expected_metrics"]

ID = "model.estimation"
#: P(positive) is counted per value rounded to this many decimals (at most 10,001 values).
DIGITS = 4
#: Labelled reference predictions needed to calibrate.
MIN_REFERENCE_LABELS = 500
#: Cross-fitted ECE of the calibrated reference above which the reference is poorly calibrated.
MAX_RESIDUAL_ECE = 0.02
ECE_BINS = 10
#: Support check: equal-width P(positive) bins, and reference rows a bin needs to be supported.
SUPPORT_BINS = 20
MIN_SUPPORT_ROWS = 5
#: Share of a bucket's predictions outside the reference's support from which it abstains.
MAX_OUTSIDE_SHARE = 0.05
#: Concept-drift check: labels a bucket needs, the smallest gap and the z that count.
MIN_CHECK_LABELS = 100
MIN_DRIFT_GAP = 0.02
Z_CHECK = 3.0
Z = 1.959964
MIN_DROP = 0.03
MAJOR_DROP = 0.08
#: New model versions (not served by the reference) calibrated on their own labelled head.
MAX_NEW_VERSIONS = 5
#: Poisson-bootstrap replicates of each calibration map for the band (a fixed seed: the same
#: case gives the same band).
BOOTSTRAP = 200
BOOTSTRAP_SEED = 20251
METRICS = ("accuracy", "precision", "recall", "f1")
#: How the estimate was made, as the headline and the finding name it.
METHOD_NAMES = {"cbpe": "CBPE, calibrated scores",
                "proxy": "stand-in model on the features"}
#: Covariate-shift reweighting: bins per feature (reference quantiles, or the commonest
#: categories and the rest), the features that define the cells, the PSI from which a feature
#: counts as shifted, the largest weight, and the effective reference size it must keep.
SEGMENT_BINS = 10
MAX_SEGMENT_FEATURES = 2
MIN_SEGMENT_PSI = 0.1
#: Above this many baseline rows the segment bins' quantile edges come from a time-hashed
#: sample of about this many rows: an ungrouped aggregate of exact quantiles holds every value
#: in memory and cannot spill (9 levels x 17 features took 1M rows from 67 to 987 MiB of RSS,
#: and would not fit a 4 GB limit at 100M rows). Below it the edges are exact.
BINNER_SAMPLE_ROWS = 200_000
MAX_WEIGHT = 20.0


@dataclass(frozen=True)
class Calibrator:
    """A fitted isotonic map from P(positive) to the calibrated P(positive).

    ``x`` are the distinct reference values (sorted), ``y`` the fitted values; between them the
    map interpolates linearly, outside it is clipped (scikit-learn's ``out_of_bounds="clip"``).
    """

    x: np.ndarray
    y: np.ndarray

    def __call__(self, p: np.ndarray) -> np.ndarray:
        return np.interp(np.asarray(p, dtype=float), self.x, self.y)


def fit_calibrator(p: np.ndarray, positives: np.ndarray, n: np.ndarray) -> Calibrator:
    """Weighted isotonic fit of the positive share per distinct ``p`` (counts from the engine).

    Rows sharing a value are pooled first, as scikit-learn's ``IsotonicRegression`` does.

    Examples
    --------
    >>> c = fit_calibrator(np.array([0.2, 0.4, 0.6, 0.8]), np.array([1, 0, 3, 4]),
    ...                    np.array([2, 2, 4, 4]))
    >>> [float(v) for v in c.y]   # 0.5 and 0 pool to 0.25
    [0.25, 0.25, 0.75, 1.0]
    >>> round(float(c(np.array([0.7]))[0]), 6)   # halfway between 0.75 and 1
    0.875
    """
    frame = pd.DataFrame({"p": np.asarray(p, float), "k": np.asarray(positives, float),
                          "n": np.asarray(n, float)})
    frame = frame[frame["n"] > 0].groupby("p", as_index=False)[["k", "n"]].sum()
    fitted = isotonic_regression((frame["k"] / frame["n"]).to_numpy(),
                                 weights=frame["n"].to_numpy(), increasing=True).x
    return Calibrator(frame["p"].to_numpy(), np.asarray(fitted, float))


def expected_metrics(pred_pos: np.ndarray, c: np.ndarray, n: np.ndarray) -> dict[str, float]:
    """Expected confusion matrix, metrics and their Bernoulli standard errors.

    Parameters
    ----------
    pred_pos
        Whether each group's prediction is the positive class.
    c
        The group's calibrated P(positive).
    n
        Predictions in the group.

    Examples
    --------
    Two positive predictions at 0.9 and two negative ones at 0.2: TP 1.8, FP 0.2, FN 0.4,
    TN 1.6, accuracy (0.9 + 0.9 + 0.8 + 0.8) / 4.

    >>> m = expected_metrics(np.array([True, False]), np.array([0.9, 0.2]), np.array([2, 2]))
    >>> round(m["accuracy"], 4), round(m["precision"], 4), round(m["recall"], 4)
    (0.85, 0.9, 0.8182)
    """
    pp = np.asarray(pred_pos, bool)
    c, n = np.asarray(c, float), np.asarray(n, float)
    tp, fp = float((n * c)[pp].sum()), float((n * (1 - c))[pp].sum())
    fn, tn = float((n * c)[~pp].sum()), float((n * (1 - c))[~pp].sum())
    v = n * c * (1 - c)
    v_pp, v_pn = float(v[pp].sum()), float(v[~pp].sum())
    total, n_pp = float(n.sum()), tp + fp
    out = {"rows": total, "expected_tp": tp, "expected_fp": fp, "expected_fn": fn,
           "expected_tn": tn}
    with np.errstate(divide="ignore", invalid="ignore"):
        out["accuracy"] = (tp + tn) / total if total else np.nan
        out["accuracy_se"] = np.sqrt(v_pp + v_pn) / total if total else np.nan
        out["precision"] = tp / n_pp if n_pp else np.nan
        out["precision_se"] = np.sqrt(v_pp) / n_pp if n_pp else np.nan
        actual = tp + fn
        out["recall"] = tp / actual if actual else np.nan
        out["recall_se"] = (np.sqrt(fn**2 * v_pp + tp**2 * v_pn) / actual**2 if actual
                            else np.nan)
        d = tp + n_pp + fn  # 2 TP + FP + FN
        out["f1"] = 2 * tp / d if d else np.nan
        out["f1_se"] = (np.sqrt((2 * (n_pp + fn) / d**2) ** 2 * v_pp + (2 * tp / d**2) ** 2
                                * v_pn) if d else np.nan)
    return {k: float(v) for k, v in out.items()}


@dataclass(frozen=True, kw_only=True, repr=False)
class EstimationResult(DiagnosticResult):
    """Estimated (label-free) accuracy, precision, recall and F1 per time bucket of the
    incident window, with bands, next to the realised accuracy where labels exist.

    Attributes
    ----------
    table
        One row per time bucket of the incident window: ``bucket_start``, ``rows``,
        ``expected_tp``/``fp``/``fn``/``tn``, ``accuracy``, ``precision``, ``recall``, ``f1``
        with ``_lo``/``_hi`` band columns, ``outside_share`` (share outside the reference's
        support), ``labelled`` and ``realized_accuracy`` (labels that exist, as of ``as_of``),
        ``estimated_on_labelled`` (the estimate on those labelled rows), ``gap`` (realised
        minus that estimate) and ``status`` (``estimated`` or ``cannot estimate: ...``).
    reference
        The reference's labelled rows, realised metrics, ``ece_before`` (uncalibrated, 10
        equal-width bins), ``residual_ece`` (cross-fitted, after calibration) and
        ``reweighting`` (``applied``, ``reason``, each feature's ``psi``, the ``features``
        of the cells, ``effective_labels``, ``uncovered_share``, ``capped_share``).
    overall
        The pooled incident window: the same estimates and realised accuracy as a bucket.
    assumptions
        One row per check: ``check``, ``passed``, ``statistic``, ``threshold``, ``detail``.
    calibrator
        The fitted map (``x``: P(positive), ``y``: calibrated).
    """

    id = ID
    title = "Estimated performance (CBPE)"

    positive: str | None = None
    score_is: str = "confidence"
    task: str = "binary"
    #: ``cbpe`` (calibrated scores) or ``proxy`` (a stand-in model on the features, for a
    #: model version no label vouches for: :mod:`.estimation_proxy`).
    method: str = "cbpe"
    as_of: datetime | None = None
    reference: dict[str, Any] = field(default_factory=dict, repr=False)
    overall: dict[str, Any] = field(default_factory=dict, repr=False)
    assumptions: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    calibrator: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    @property
    def abstained(self) -> bool:
        """Whether it could not estimate for the window (see ``not_assessed``)."""
        return any(gap.check == ID for gap in self.not_assessed)

    @property
    def assessed(self) -> bool:
        return not self.abstained

    def confusion_matrix(self) -> pd.DataFrame:
        """The expected confusion matrix of the pooled incident window (rows: actual)."""
        o = self.overall
        if not o or self.task != "binary":
            return pd.DataFrame()
        neg = "not " + str(self.positive)
        return pd.DataFrame(
            [[o["expected_tp"], o["expected_fn"]], [o["expected_fp"], o["expected_tn"]]],
            index=pd.Index([str(self.positive), neg], name="actual"),
            columns=pd.Index([str(self.positive), neg], name="predicted"))

    def headline(self) -> dict[str, Any]:
        if not self.overall:
            return {}
        if self.task == "regression":
            return {
                "reference MAE": self.reference.get("mae", float("nan")),
                "estimated MAE": self.overall["mae"],
                "band": f"{self.overall['mae_lo']:.4g}-{self.overall['mae_hi']:.4g}",
                "realized MAE": self.overall.get("realized_mae", float("nan")),
                "estimate": "cannot estimate" if self.abstained else "ok",
            }
        return {
            "reference accuracy": self.reference.get("accuracy", float("nan")),
            "estimated accuracy": self.overall["accuracy"],
            "band": f"{self.overall['accuracy_lo']:.3f}-{self.overall['accuracy_hi']:.3f}",
            "estimated precision": self.overall["precision"],
            "realized accuracy": self.overall.get("realized_accuracy", float("nan")),
            "residual ECE": self.reference.get("residual_ece", float("nan")),
            "estimate": "cannot estimate" if self.abstained else "ok",
            "method": METHOD_NAMES[self.method],
        } | self._old_version_headline()

    def _old_version_headline(self) -> dict[str, Any]:
        """Where the old version still served part of a window the stand-in model estimated:
        both estimates of those rows and their gap."""
        old = self.reference.get("proxy", {}).get("old_version")
        if self.method != "proxy" or not old:
            return {}
        return {"old version (CBPE vs stand-in)":
                f"{old['cbpe_accuracy']:.3f} vs {old['proxy_accuracy']:.3f} "
                f"(gap {old['gap']:+.3f}, {old['rows']:,} rows)"}

    def findings(self) -> list[Finding]:
        if self.abstained or not self.overall or not self.reference:
            return []
        if self.task == "regression":
            return self._error_findings()
        ref, est = self.reference["accuracy"], self.overall["accuracy"]
        drop = ref - est
        if not (drop >= MIN_DROP and self.overall["accuracy_hi"] < ref):
            return []
        t = self.table[self.table["status"] == "estimated"]
        late = t[(ref - t["accuracy"]) >= MIN_DROP]
        onset = late["bucket_start"].iloc[0].to_pydatetime() if len(late) else None
        realized = self.overall.get("realized_accuracy", float("nan"))
        return [Finding(
            id="model.estimated_accuracy_drop", pathway="model",
            severity="medium" if drop >= MAJOR_DROP else "low",
            statistic=float(drop), threshold=MIN_DROP,
            summary=(f"estimated accuracy ({METHOD_NAMES[self.method]}; no labels needed) "
                     f"fell {drop:.1%}: reference "
                     f"{ref:.1%}, incident {est:.1%} (band {self.overall['accuracy_lo']:.1%}-"
                     f"{self.overall['accuracy_hi']:.1%})" + (
                         f"; estimated precision {self.reference['precision']:.1%} -> "
                         f"{self.overall['precision']:.1%}." if self.task == "binary" else ".")),
            evidence={"reference_accuracy": ref, "estimated_accuracy": est,
                      "band": [self.overall["accuracy_lo"], self.overall["accuracy_hi"]],
                      "reference_precision": self.reference["precision"],
                      "estimated_precision": self.overall["precision"],
                      "estimated_recall": self.overall["recall"],
                      "realized_accuracy": realized,
                      "labelled_incident": int(self.overall.get("labelled", 0)),
                      "estimated": True, "method": self.method},
            onset=onset, diagnostic=self.id,
        )]

    def _error_findings(self) -> list[Finding]:
        """Regression: ``model.estimated_error_rise`` (see :mod:`.estimation_regression`)."""
        from toolkit.diagnose.model.estimation_regression import error_findings

        return error_findings(self)


    def signals(self) -> pd.DataFrame:
        t = self.table
        if t.empty:
            return super().signals()
        t = t[t["status"] == "estimated"]
        metric = "mae" if self.task == "regression" else "accuracy"
        frame = t[["bucket_start", metric]].rename(columns={metric: "value"})
        frame.insert(1, "signal", f"model.estimated_{metric}")
        return frame.reset_index(drop=True)

    def plot(self, ax: Axes | None = None, **kwargs: Any) -> Axes:
        """Estimated accuracy with its band, realised accuracy where labels exist, and the
        reference's accuracy; buckets where it cannot estimate are marked."""
        from toolkit.plotting import SEVERITY_COLORS, WINDOW_COLORS, axes

        ax = axes(ax, figsize=(10, 4))
        t = self.table
        if t.empty:
            return super().plot(ax)
        m, name, how = (("mae", "MAE", "error model") if self.task == "regression" else
                        ("accuracy", "accuracy", "CBPE" if self.method == "cbpe" else
                         "stand-in model"))
        ok = t["status"] == "estimated"
        ax.plot(t["bucket_start"], t[m].where(ok), color=WINDOW_COLORS["baseline"], marker="o",
                label=f"estimated {name} ({how})")
        ax.fill_between(t["bucket_start"], t[f"{m}_lo"].where(ok), t[f"{m}_hi"].where(ok),
                        color=WINDOW_COLORS["baseline"], alpha=0.15, lw=0,
                        label="95% band (sampling + " + (
                            "stand-in coefficients)" if self.method == "proxy" else
                            "calibration error)"))
        if (~ok).any():
            ax.scatter(t.loc[~ok, "bucket_start"], t.loc[~ok, m], marker="x",
                       color=SEVERITY_COLORS["info"], label="cannot estimate")
        real = t[t["labelled"] > 0]
        if len(real):
            ax.plot(real["bucket_start"], real[f"realized_{m}"], color=WINDOW_COLORS["incident"],
                    marker="s", ls="--", label=f"realized {name} (labels)")
        if self.reference:
            ax.axhline(self.reference[m], color=WINDOW_COLORS["baseline"], ls=":",
                       label=f"reference {name}")
        ax.set_xlabel("request time (UTC)")
        ax.set_ylabel(name)
        title = f"Estimated vs realized {name}"
        if self.abstained:
            title += " (cannot estimate: see not_assessed)"
        ax.set_title(title)
        ax.legend(loc="lower left")
        return ax


def estimation(
    con: CaseSource,
    baseline: Window | str,
    incident: Window | str,
    /,
    *,
    case: CaseView | None = None,
    bucket: timedelta | None = None,
    positive: str | None = None,
    score_is: str | None = None,
    as_of: datetime | str | None = None,
    reweight: bool = True,
) -> EstimationResult:
    """Estimate accuracy, precision, recall and F1 of the incident window without its labels.

    Parameters
    ----------
    con
        Case connection.
    baseline, incident
        The reference window (labelled predictions calibrate the scores) and the analysis
        window (``Window``, ``"START/END"`` or ``(start, end)``); they must not overlap.
    case
        A :class:`~toolkit.diagnose._case.CaseView` to share between diagnostics.
    bucket
        Time bucket width of the estimate (default: at most 24 buckets over the incident).
    positive
        The positive class (default: a conventional label token, else the rarer label).
    score_is
        What ``score`` holds: ``"confidence"`` (in ``prediction``) or ``"p_positive"``.
        Default: what the case's mapping declared (``case_meta['score_semantics']``), else
        ``"confidence"``; the declared positive class is the default ``positive`` too.
    as_of
        Use only the labels that had arrived by then (``labeled_at < as_of``; a label without
        ``labeled_at`` is left out): a backtest of the estimate before the labels came.
    reweight
        Reweight the reference to the incident's inputs before calibrating (see the module
        docstring, step 1b); ``False`` is plain CBPE.

    Examples
    --------
    >>> import numpy as np, pandas as pd, toolkit as tk
    >>> rng = np.random.default_rng(0)
    >>> n = 6000
    >>> ts = pd.date_range("2026-03-01", periods=n, freq="min", tz="UTC")
    >>> p = rng.uniform(0, 1, n)                          # a calibrated P(positive)
    >>> y = np.where(rng.uniform(size=n) < p, "1", "0")
    >>> pred = np.where(p >= 0.5, "1", "0")
    >>> con = tk.connect()
    >>> _ = tk.load(con, pd.DataFrame({"request_id": range(n), "ts": ts, "prediction": pred,
    ...     "score": np.maximum(p, 1 - p)}), table="requests")
    >>> _ = tk.load(con, pd.DataFrame({"request_id": range(n // 2), "label": y[: n // 2]}),
    ...             table="labels")
    >>> r = estimation(con, (ts[0], ts[n // 2]), (ts[n // 2], ts[-1]))
    >>> abs(r.overall["accuracy"] - 0.75) < 0.02      # E[max(p, 1 - p)] for p ~ U(0, 1)
    True
    """
    baseline, incident = check_windows(baseline, incident)
    as_of = to_utc(as_of, name="as_of") if as_of is not None else None
    case = case or case_view(con)
    score_is, positive = case.score_semantics(score_is, positive)
    check_option("score_is", score_is, SCORE_IS)
    base = dict(baseline=baseline, incident=incident, score_is=score_is, as_of=as_of)
    if case.has("requests", "prediction") and case.task.task == "regression":
        if not case.has("labels"):
            return EstimationResult(**base, task="regression", not_assessed=(NotAssessed(
                ID, "the case has no labels to fit the error model on"),))
        record = Recorder(joins_as_written=True)
        from toolkit.diagnose.model.estimation_regression import regression_estimate

        return regression_estimate(case, record, base, baseline, incident,
                                   bucket or choose_bucket(incident.duration, max_buckets=24),
                                   as_of)
    if not case.has("requests", "prediction", "score"):
        return EstimationResult(**base, not_assessed=(
            NotAssessed(ID, "requests carry no score (confidence) or prediction"),))
    if not case.has("labels"):
        return EstimationResult(**base, not_assessed=(
            NotAssessed(ID, "the case has no labels to calibrate the scores on"),))
    record = Recorder(joins_as_written=True)  # the labels join: see Recorder
    span = Window(min(baseline.start, incident.start), max(baseline.end, incident.end))
    width = bucket or choose_bucket(incident.duration, max_buckets=24)
    positive = positive or positive_class(case, record, span)
    if positive is None:
        return EstimationResult(**base, sql=record.sql, not_assessed=(
            NotAssessed(ID, "no positive class: the labels hold no value"),))
    base["positive"] = positive

    ref = _labelled(case, record, baseline, as_of)
    requests = case.table("requests")
    rows = requests.filter(within(requests.ts, incident) & requests.prediction.notnull() &
                           requests.score.notnull())
    checks = (score_semantics(record, ref, positive), score_semantics(record, rows, positive))
    classes = max(max(c["classes"], c["label_classes"]) for c in checks)
    multiclass = classes > 2
    base["task"] = "multiclass" if multiclass else "binary"
    for check in checks:
        problem = score_problem(check, score_is, positive)
        if problem:
            return EstimationResult(**base, sql=record.sql, not_assessed=(NotAssessed(ID, problem),))
    if not checks[1]["rows"]:
        return EstimationResult(**base, sql=record.sql, not_assessed=(NotAssessed(
            ID, f"no scored prediction in the incident window {incident}"),))

    pos = ibis.literal(positive)

    def p_of(t: ibis.Table) -> ibis.FloatingValue:
        """P(positive) for a binary task; the confidence in the prediction for multiclass."""
        score = t.score.cast("float64")
        p = score if score_is == "p_positive" or multiclass else ibis.cases(
            (t.prediction == pos, score), else_=1 - score)
        return p.clip(0.0, 1.0).round(DIGITS)

    # multiclass: the top-label view (CBPE's accuracy from the calibrated confidence): every
    # prediction counts as "positive" and being right as the positive outcome
    def pred_pos(t: ibis.Table) -> ibis.BooleanValue:
        return ibis.literal(True) if multiclass else t.prediction == pos

    def hit(t: ibis.Table) -> ibis.IntegerValue:
        return (t.correct if multiclass else t.label == pos).cast("int64").sum()

    # the engine counts, Python decides: reference per fold and P(positive) (and per cell of
    # the shifted features, when the reference is reweighted to the incident's inputs)
    middle = baseline.start + (baseline.end - baseline.start) / 2
    segment, reweighting = None, {"applied": False, "reason": "reweighting off"}
    if reweight:
        segment, reweighting = _shift_segments(case, record, baseline, incident)
    keys: dict[str, Any] = {}
    if segment is not None:
        ref = _labelled(case, record, baseline, as_of, features=True)
        keys["segment"] = segment(ref)
    reference = record(ref.group_by(fold=(ref.ts >= ibis.literal(middle)).cast("int64"),
                                    p=p_of(ref), pred_pos=pred_pos(ref), **keys).aggregate(
        n=ref.count(), k=hit(ref)))
    if segment is not None:
        cells = record(rows.group_by(segment=segment(rows)).aggregate(n=rows.count()))
        reference["w"], reweighting = _weights(reference, cells, reweighting)
    versions: list[str] = []
    by_version: dict[str, Any] = {}
    if "model_version" in case.columns["requests"]:
        seen = record(ref.group_by("model_version").aggregate(n=ref.count()))
        versions = sorted(str(v) for v in seen["model_version"] if v is not None)
        by_version = {"version": rows.model_version.cast("string")}
    analysis = record(rows.group_by(bucket_start=bucket_expr(rows.ts, width),
                                    pred_pos=pred_pos(rows), p=p_of(rows), **by_version
                                    ).aggregate(n=rows.count()))
    inc = _labelled(case, record, incident, as_of)
    labelled = record(inc.group_by(bucket_start=bucket_expr(inc.ts, width),
                                   pred_pos=pred_pos(inc), p=p_of(inc),
                                   **({"version": inc.model_version.cast("string")}
                                      if by_version else {})).aggregate(
        n=inc.count(), k=hit(inc)))
    for frame in (reference, analysis, labelled):
        frame["pred_pos"] = frame["pred_pos"].astype(bool)

    ref_summary, assumptions, calibrators = _reference(reference)
    per_class = ()
    if multiclass:
        ref_summary.update(precision=np.nan, recall=np.nan, f1=np.nan)
        per_class = (NotAssessed(f"{ID}:per_class", f"multiclass ({classes} classes): "
                                 "precision, recall, F1 and the confusion matrix need every "
                                 "class's probability; the score is the top class's only"),)
    base["reference"] = ref_summary | {"model_versions": versions, "reweighting": reweighting}
    base["sql"] = record.sql
    failed = assumptions[~assumptions["passed"]]
    if calibrators is None:
        return EstimationResult(**base, assumptions=assumptions, not_assessed=tuple(
            NotAssessed(ID, f"cannot estimate: {d}") for d in failed["detail"]) + per_class)
    full, folds = calibrators
    own: dict[str, Any] = {}
    heads: dict[str, pd.DataFrame] = {}
    if by_version and versions:
        new = sorted({str(v) for v in analysis["version"].dropna()} - set(versions))
        own, heads, base["reference"]["versions"] = _version_heads(
            case, record, baseline, incident, as_of, new[:MAX_NEW_VERSIONS], p_of, pred_pos,
            hit)
        base["sql"] = record.sql
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    boot_ref = _bootstrap(reference, BOOTSTRAP, rng)
    boot_own = {v: _bootstrap(heads[v], BOOTSTRAP, rng) for v in own}
    maps = _Maps(full, folds, _support(reference), own, tuple(
        (boot_ref[j], {v: b[j] for v, b in boot_own.items()}) for j in range(BOOTSTRAP)))
    analysis["known"] = (analysis["version"].isin([*versions, *own]).to_numpy(bool)
                         if by_version and versions else True)
    table = _buckets(analysis, labelled, maps)
    overall = _pooled(analysis, labelled, maps)
    if multiclass:
        table, overall = _top_label_only(table), _top_label_only(pd.DataFrame([overall])
                                                                 ).iloc[0].to_dict()
    assumptions = pd.concat([assumptions, _window_checks(
        table, overall, base["reference"].get("versions"))], ignore_index=True)
    version_ok = bool(assumptions.loc[assumptions["check"] == "model version", "passed"].all())
    if not version_ok and not multiclass:
        # no label vouches for the new version's scores: estimate P(y | x) instead
        table, overall, assumptions, method = _stand_in(
            case, record, base, (baseline, incident, width, as_of, positive),
            (table, overall, assumptions), (analysis, labelled, maps))
        base["sql"], base["method"] = record.sql, method
    gaps = [NotAssessed(ID, f"cannot estimate: {d}")
            for d in assumptions.loc[~assumptions["passed"], "detail"]]
    return EstimationResult(**base, table=table, overall=overall, assumptions=assumptions,
                            calibrator=pd.DataFrame({"x": full.x, "y": full.y}),
                            not_assessed=tuple(gaps) + per_class)


def _stand_in(case: CaseView, record: Recorder, base: dict[str, Any], windows: tuple,
              cbpe: tuple[pd.DataFrame, dict[str, Any], pd.DataFrame], parts: tuple
              ) -> tuple[pd.DataFrame, dict[str, Any], pd.DataFrame, str]:
    """The stand-in model's estimate (:mod:`.estimation_proxy`) of a window that CBPE cannot
    vouch for (a model version the reference did not serve, with no labelled head).

    Returns ``(table, overall, assumptions, method)``: the proxy's when its checks pass
    (``method`` ``"proxy"``; the failed model-version check is kept, marked as answered by
    the proxy, and CBPE's score checks give way to the proxy's feature checks), else CBPE's
    with the proxy's checks appended (it still abstains, now saying why the proxy could not
    answer either). ``base["reference"]["proxy"]`` records the fit, its checks and, where the
    old version still served part of the window, CBPE's and the proxy's estimate of those
    rows and their gap."""
    from toolkit.diagnose.model.estimation_proxy import proxy_estimate

    baseline, incident, width, as_of, positive = windows
    table, overall, assumptions = cbpe
    analysis, labelled, maps = parts
    got = proxy_estimate(case, record, baseline, incident, width, as_of, positive)
    info = {k: v for k, v in got.proxy.info.items() if k != "platt"} | {
        "applied": False, "checks": got.checks.to_dict("records")}
    old = analysis["known"].to_numpy(bool) if "known" in analysis else np.zeros(len(analysis), bool)
    if old.any() and "version" in analysis and not got.by_version.empty:
        known = set(analysis.loc[old, "version"].astype(str))
        mine = got.by_version[got.by_version["version"].astype(str).isin(known)]
        rows = float(mine["rows"].sum())
        lab = labelled[labelled["version"].astype(str).isin(known)] if "version" in labelled \
            else labelled.iloc[0:0]
        cbpe_old = _pooled(analysis[old], lab, maps)["accuracy"]
        proxy_old = float((mine["accuracy"] * mine["rows"]).sum() / rows) if rows else np.nan
        info["old_version"] = {"rows": int(rows), "cbpe_accuracy": float(cbpe_old),
                               "proxy_accuracy": proxy_old, "gap": proxy_old - float(cbpe_old)}
    base["reference"]["proxy"] = info
    if not got.ok:
        return table, overall, pd.concat([assumptions, got.checks], ignore_index=True), "cbpe"
    info["applied"] = True
    version = assumptions[assumptions["check"] == "model version"].copy()
    version["passed"] = True
    version["detail"] = version["detail"] + (
        "; estimated instead by a stand-in model fitted on the reference's features (P(y | x)"
        " holds for any model version unless the concept drifts), which needs no label of "
        "the new version")
    reference = assumptions[assumptions["check"].str.startswith("reference")]
    return got.table, got.overall, pd.concat([reference, version, got.checks],
                                             ignore_index=True), "proxy"


def _top_label_only(frame: pd.DataFrame) -> pd.DataFrame:
    """Multiclass: keep the accuracy, blank what needs per-class probabilities."""
    frame = frame.copy()
    for m in ("precision", "recall", "f1"):
        for suffix in ("", "_se", "_lo", "_hi"):
            frame[m + suffix] = np.nan
    for c in ("expected_tp", "expected_fp", "expected_fn", "expected_tn"):
        frame[c] = np.nan
    return frame


def _labelled(case: CaseView, record: Recorder, window: Window, as_of: datetime | None,
              *, features: bool = False) -> ibis.Table:
    """Labelled scored predictions of ``window`` (labels before ``as_of``); with
    ``features``, every request column (the join itself, not the narrow cached table)."""
    t = labelled_rows(case, window) if features else labelled_table(case, record, window)
    t = t.filter(t.score.notnull())
    if as_of is not None:
        t = t.filter(t.labeled_at.notnull() & (t.labeled_at < ibis.literal(as_of)))
    return t


def _check(check: str, passed: bool, statistic: float, threshold: float, detail: str
           ) -> dict[str, Any]:
    return {"check": check, "passed": bool(passed), "statistic": float(statistic),
            "threshold": float(threshold), "detail": detail}


def _ece(c: np.ndarray, k: np.ndarray, n: np.ndarray) -> float:
    """ECE on :data:`ECE_BINS` equal-width bins of ``c`` from per-group counts."""
    b = np.clip(np.floor(c * ECE_BINS), 0, ECE_BINS - 1).astype(int)
    expected = np.bincount(b, weights=n * c, minlength=ECE_BINS)
    observed = np.bincount(b, weights=k, minlength=ECE_BINS)
    return float(np.abs(observed - expected).sum() / n.sum())


def _ece_noise(c: np.ndarray, n: np.ndarray) -> float:
    """The ECE a perfectly calibrated model shows by chance on the same rows: per bin
    ``E|sum(y) - sum(c)| ~ sqrt(2 / pi) sqrt(sum c (1 - c))`` (normal approximation)."""
    b = np.clip(np.floor(c * ECE_BINS), 0, ECE_BINS - 1).astype(int)
    var = np.bincount(b, weights=n * c * (1 - c), minlength=ECE_BINS)
    return float(np.sqrt(2 / np.pi) * np.sqrt(var).sum() / n.sum())


def _reference(ref: pd.DataFrame) -> tuple[dict[str, Any], pd.DataFrame, Any]:
    """Realised reference metrics, the reference checks, and the calibrators (full, per fold)
    or None when a check fails."""
    p, k, n = (ref[c].to_numpy(float) for c in ("p", "k", "n"))
    pp = ref["pred_pos"].to_numpy(bool)
    total = n.sum()
    tp, fp = k[pp].sum(), (n - k)[pp].sum()
    fn, tn = k[~pp].sum(), (n - k)[~pp].sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        summary = {"labelled": int(total), "accuracy": float((tp + tn) / total) if total
                   else np.nan, "precision": float(tp / (tp + fp)) if tp + fp else np.nan,
                   "recall": float(tp / (tp + fn)) if tp + fn else np.nan,
                   "f1": float(2 * tp / (2 * tp + fp + fn)) if tp + fp + fn else np.nan,
                   "positives": int(k.sum())}
    checks = [_check("reference labels", total >= MIN_REFERENCE_LABELS, total,
                     MIN_REFERENCE_LABELS,
                     f"{int(total)} labelled reference predictions (at least "
                     f"{MIN_REFERENCE_LABELS} needed to calibrate)")]
    classes = int(k.sum() > 0) + int((n - k).sum() > 0)
    checks.append(_check("reference classes", classes == 2, classes, 2,
                         "the reference labels hold one class only" if classes < 2 else
                         "both classes in the reference labels"))
    if not all(c["passed"] for c in checks):
        return summary, pd.DataFrame(checks), None
    summary["ece_before"] = _ece(p, k, n)
    full = fit_calibrator(p, k, n)
    folds = {}
    for f in (0, 1):
        part = ref[ref["fold"] == f]
        if part.empty or part["k"].sum() == 0 or part["k"].sum() == part["n"].sum():
            folds = {}
            break
        folds[f] = fit_calibrator(part["p"], part["k"], part["n"])
    if folds:
        f = ref["fold"].to_numpy(int)
        c = np.where(f == 0, folds[1](p), folds[0](p))  # each fold by the other's calibrator
        residual, noise = _ece(c, k, n), _ece_noise(c, n)
    else:
        residual = noise = np.nan
    summary["residual_ece"], summary["residual_ece_noise"] = residual, noise
    excess = residual - noise
    ok = bool(excess <= MAX_RESIDUAL_ECE)
    checks.append(_check(
        "reference calibration", ok, excess, MAX_RESIDUAL_ECE,
        f"the reference stays poorly calibrated after calibration: cross-fitted ECE "
        f"{residual:.3f}, {excess:.3f} above the {noise:.3f} a calibrated model shows by chance "
        f"on as many rows (more than {MAX_RESIDUAL_ECE})" if excess == excess and not ok else
        "a fold of the reference holds one class only: the calibration cannot be checked"
        if excess != excess else
        f"cross-fitted ECE after calibration {residual:.3f} (chance level {noise:.3f})"))
    frame = pd.DataFrame(checks)
    if ok and "w" in ref:  # the checks were on the reference as it is; estimate reweighted
        full, folds = _weighted_calibrators(ref)
    return summary, frame, ((full, folds) if ok else None)


def _weighted_calibrators(ref: pd.DataFrame) -> tuple[Calibrator, dict[int, Calibrator]]:
    """The full and per-fold calibrators fitted on the reference's counts times ``w``."""
    w = ref["w"].to_numpy(float)
    k, n = ref["k"].to_numpy(float) * w, ref["n"].to_numpy(float) * w
    full = fit_calibrator(ref["p"].to_numpy(float), k, n)
    folds = {}
    for f in (0, 1):
        part = (ref["fold"] == f).to_numpy()
        if not 0 < k[part].sum() < n[part].sum():
            return full, {}
        folds[f] = fit_calibrator(ref["p"].to_numpy(float)[part], k[part], n[part])
    return full, folds


def _bootstrap(ref: pd.DataFrame, replicates: int, rng: np.random.Generator
               ) -> list[Calibrator]:
    """Calibrators refitted on Poisson-bootstrap replicates of the reference's counts: each
    labelled row counts Poisson(1) times, so the positives and negatives sharing a
    P(positive) and a weight ``w`` count Poisson(``k``) and Poisson(``n - k``) times (times
    ``w`` when reweighted). Their spread is the calibration map's own sampling uncertainty.

    The engine's groups (fold, predicted class, cell) that share a P(positive) and a weight
    are pooled before the draws: a sum of independent Poisson counts is Poisson with the summed
    mean, so the replicates have the same distribution as per-group draws, with a third fewer
    draws (10M requests: 463k groups, 315k pooled), and they no longer depend on how the
    engine happened to split the rows. Counts of zero are not drawn (Poisson(0) is 0 and
    takes no random number)."""
    w = ref["w"].to_numpy(float) if "w" in ref else np.ones(len(ref))
    pooled = pd.DataFrame({"p": ref["p"].to_numpy(float), "w": w,
                           "k": ref["k"].to_numpy(float), "n": ref["n"].to_numpy(float)}
                          ).groupby(["p", "w"], as_index=False, sort=True)[["k", "n"]].sum()
    k, rest, w = (pooled["k"].to_numpy(float), (pooled["n"] - pooled["k"]).to_numpy(float),
                  pooled["w"].to_numpy(float))
    # fit_calibrator's pooling per distinct value, done once: bincount per replicate
    values, inverse = np.unique(pooled["p"].to_numpy(float), return_inverse=True)
    some_k, some_rest = np.flatnonzero(k > 0), np.flatnonzero(rest > 0)
    lam = np.concatenate([k[some_k], rest[some_rest]])
    out = []
    for _ in range(replicates):
        draws = rng.poisson(lam).astype(float)
        kb = np.zeros(len(k))
        kb[some_k] = draws[:len(some_k)]
        nb = kb.copy()
        nb[some_rest] += draws[len(some_k):]
        kk = np.bincount(inverse, weights=kb * w, minlength=len(values))
        nn = np.bincount(inverse, weights=nb * w, minlength=len(values))
        keep = nn > 0
        fitted = isotonic_regression(kk[keep] / nn[keep], weights=nn[keep], increasing=True).x
        out.append(Calibrator(values[keep], np.asarray(fitted, float)))
    return out


def _shift_segments(case: CaseView, record: Recorder, baseline: Window, incident: Window
                    ) -> tuple[Any, dict[str, Any]]:
    """The cells of the most shifted features, as a function of a table (or None), and what
    was found: each feature's PSI between the baseline's and the incident's scored requests.

    Bins come from the baseline: :data:`SEGMENT_BINS` quantile bins of a numeric feature,
    the :data:`SEGMENT_BINS` - 1 commonest categories and the rest of a categorical one, and
    a bin for missing values. Counted in the engine, one query per feature.
    """
    names = [str(f) for f in case.feature_names() if f in case.columns["requests"]]
    if not names:
        return None, {"applied": False, "reason": "no features in the requests"}
    numeric = set(case.feature_names("numeric"))
    requests = case.table("requests")
    both = requests.filter((within(requests.ts, baseline) | within(requests.ts, incident)) &
                           requests.prediction.notnull() & requests.score.notnull())
    base_rows = both.filter(within(both.ts, baseline))
    bin_of = _binner(record, base_rows, names, numeric)

    side = within(both.ts, incident).cast("int64")
    psi = {}
    for f in names:
        counts = record(both.group_by(side=side, b=bin_of(both, f)).aggregate(n=both.count()))
        table = counts.pivot_table(index="b", columns="side", values="n", fill_value=0)
        if 0 in table and 1 in table:
            psi[f] = st.psi(table[0].to_numpy(float), table[1].to_numpy(float))
    shifted = sorted((f for f in psi if psi[f] >= MIN_SEGMENT_PSI), key=lambda f: -psi[f])
    shifted = shifted[:MAX_SEGMENT_FEATURES]
    info: dict[str, Any] = {"applied": False, "psi": {f: float(v) for f, v in psi.items()},
                            "features": shifted}
    if not shifted:
        return None, info | {"reason": f"no feature shifted (PSI below {MIN_SEGMENT_PSI})"}

    def segment(t: ibis.Table) -> ibis.IntegerValue:
        out = ibis.literal(0)
        for f in shifted:
            out = out * (SEGMENT_BINS + 2) + bin_of(t, f)
        return out

    return segment, info


def _binner(record: Recorder, table: ibis.Table, names: list[str], numeric: set[str]
            ) -> Any:
    """``bin_of(t, name)``: the bin of a feature (or column) in the bins of ``table``:
    :data:`SEGMENT_BINS` quantile bins of a numeric one, the :data:`SEGMENT_BINS` - 1
    commonest categories and the rest of a categorical one; 0 for a missing value. The
    quantiles come from one engine aggregate (over a time-hashed sample of about
    :data:`BINNER_SAMPLE_ROWS` rows when ``table`` holds more), the categories from one query
    each."""
    qs = [j / SEGMENT_BINS for j in range(1, SEGMENT_BINS)]
    edges: dict[str, list[float]] = {}
    num = [f for f in names if f in numeric]
    if num:
        rows = int(record(table.count())["value"].iloc[0])
        quantiled = (sample_by_time(table, BINNER_SAMPLE_ROWS / rows)
                     if rows > BINNER_SAMPLE_ROWS else table)
        got = record(quantiled.aggregate(**{f"q{i}_{j}": quantiled[f].cast("float64").quantile(q)
                                        for i, f in enumerate(num)
                                        for j, q in enumerate(qs)})).iloc[0]
        for i, f in enumerate(num):
            values = [got[f"q{i}_{j}"] for j in range(len(qs))]
            edges[f] = sorted({float(v) for v in values if v is not None and v == v})
    cats: dict[str, list[str]] = {}
    for f in (f for f in names if f not in numeric):
        seen = table.mutate(v=table[f].cast("string")).filter(lambda t: t.v.notnull())
        top = record(seen.group_by("v").aggregate(n=seen.count())
                     .order_by([ibis.desc("n"), "v"]).limit(SEGMENT_BINS - 1))
        cats[f] = [str(c) for c in top["v"]]

    def bin_of(t: ibis.Table, f: str) -> ibis.IntegerValue:
        if f in edges:
            x = t[f].cast("float64")
            return ibis.cases((x.isnull(), 0), *((x < e, j + 1) for j, e in enumerate(edges[f])),
                              else_=len(edges[f]) + 1)
        v = t[f].cast("string")
        return ibis.cases((v.isnull(), 0), *((v == c, j + 1) for j, c in enumerate(cats[f])),
                          else_=len(cats[f]) + 1)

    return bin_of


def _weights(reference: pd.DataFrame, cells: pd.DataFrame, info: dict[str, Any]
             ) -> tuple[np.ndarray, dict[str, Any]]:
    """Importance weight of each reference row group: the incident's share of its cell over
    the labelled reference's, capped at :data:`MAX_WEIGHT`; all ones (not applied) when the
    weighted reference keeps fewer than :data:`MIN_REFERENCE_LABELS` effective labels."""
    ref_n = reference.groupby("segment")["n"].sum()
    inc_n = cells.set_index("segment")["n"].astype(float)
    if not ref_n.sum() or not inc_n.sum():
        return np.ones(len(reference)), info | {
            "reason": "no labelled reference or no incident rows to weight by: plain CBPE"}
    ratio = (inc_n.reindex(ref_n.index, fill_value=0.0) / inc_n.sum()) / (ref_n / ref_n.sum())
    capped = ratio.clip(upper=MAX_WEIGHT)
    ess = float((ref_n * capped).sum() ** 2 / (ref_n * capped**2).sum()) if capped.any() else 0.0
    uncovered = float(inc_n[~inc_n.index.isin(ref_n.index)].sum() / inc_n.sum())
    info = info | {"effective_labels": ess, "uncovered_share": uncovered,
                   "capped_share": float((ref_n[ratio > MAX_WEIGHT]).sum() / ref_n.sum()),
                   "cells": int(len(ref_n))}
    if ess < MIN_REFERENCE_LABELS:
        return np.ones(len(reference)), info | {
            "reason": f"the reweighted reference keeps {ess:.0f} effective labels (fewer than "
                      f"{MIN_REFERENCE_LABELS}): plain CBPE"}
    w = reference["segment"].map(capped).to_numpy(float)
    return w, info | {"applied": True, "reason": "reference reweighted to the incident's "
                      f"{' x '.join(info['features'])} cells"}


def _support(ref: pd.DataFrame) -> tuple[float, float, np.ndarray]:
    """The reference's P(positive) range and which equal-width bins it supports."""
    counts = np.bincount(_support_bin(ref["p"].to_numpy(float)), weights=ref["n"].to_numpy(
        float), minlength=SUPPORT_BINS)
    return float(ref["p"].min()), float(ref["p"].max()), counts >= MIN_SUPPORT_ROWS


def _support_bin(p: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(p * SUPPORT_BINS), 0, SUPPORT_BINS - 1).astype(int)


def _outside(p: np.ndarray, support: tuple[float, float, np.ndarray]) -> np.ndarray:
    """Whether each P(positive) lies outside the support (range, or a thin bin)."""
    lo, hi, supported = support
    return (p < lo) | (p > hi) | ~supported[_support_bin(p)]


@dataclass(frozen=True)
class _Maps:
    """The calibration of each prediction: the reference's (``full``, its two ``folds`` and
    its score ``support``) and, for a model version the reference did not serve, the one fitted
    on that version's own labelled head (``own[version] = (full, folds, support)``)."""

    full: Calibrator
    folds: dict[int, Calibrator]
    support: tuple[float, float, np.ndarray]
    own: dict[str, tuple[Calibrator, dict[int, Calibrator], Any]] = field(default_factory=dict)
    #: Bootstrap replicates: (the reference's calibrator, {new version: its calibrator}).
    boot: tuple[tuple[Calibrator, dict[str, Calibrator]], ...] = ()

    def _parts(self, frame: pd.DataFrame):
        """(mask, full, folds, support) per calibration, the reference's first."""
        p = frame["p"].to_numpy(float)
        version = (frame["version"].to_numpy(object) if "version" in frame
                   else np.full(len(frame), None, dtype=object))
        mine = np.zeros(len(frame), bool)
        parts = []
        for name, (full, folds, support) in self.own.items():
            m = version == name
            mine |= m
            parts.append((m, full, folds, support))
        return p, [(~mine, self.full, self.folds, self.support), *parts]

    def calibrate(self, frame: pd.DataFrame, fold: int | None = None,
                  replicate: int | None = None) -> np.ndarray:
        """Calibrated P(positive) of each group: the full calibrators, a fold's, or a
        bootstrap replicate's."""
        p, parts = self._parts(frame)
        c = np.empty(len(p))
        names = [None, *self.own]
        for name, (m, full, folds, _) in zip(names, parts, strict=True):
            if replicate is not None:
                ref, own = self.boot[replicate]
                fit = ref if name is None else own[name]
            else:
                fit = folds.get(fold, full) if fold is not None else full
            c[m] = fit(p[m])
        return c

    def outside(self, frame: pd.DataFrame) -> np.ndarray:
        """Whether each group's P(positive) is outside its calibration's support."""
        p, parts = self._parts(frame)
        out = np.zeros(len(p), bool)
        for m, _, _, support in parts:
            out[m] = _outside(p[m], support)
        return out

    @property
    def has_folds(self) -> bool:
        return bool(self.folds) or bool(self.own)

    @cached_property
    def _grid(self) -> tuple[np.ndarray, dict[str | None, np.ndarray]]:
        """Every bootstrap replicate's calibrated value of every P(positive) the scores can
        take (the :data:`DIGITS`-decimal grid), per calibration (``None``: the reference's;
        else a new version's): one map evaluation per replicate for the whole window, which
        the buckets then index, instead of one per replicate and bucket."""
        grid = np.round(np.linspace(0.0, 1.0, 10**DIGITS + 1), DIGITS)
        names = [None, *self.own]
        return grid, {name: np.array([(ref if name is None else own[name])(grid)
                                      for ref, own in self.boot]).reshape(-1, len(grid))
                      for name in names}

    def replicate_metrics(self, frame: pd.DataFrame, by: str | None = None
                          ) -> dict[Any, np.ndarray]:
        """:func:`_replicate_metrics` of ``frame`` (or of each of its ``by`` groups: the
        buckets) under every bootstrap replicate (replicates x :data:`METRICS`), from the
        expected confusion counts: per calibration, the rows per group, predicted class and
        grid value, times each replicate's calibrated value of the grid (one matrix product
        for all the groups), instead of a replicates x rows matrix per bucket."""
        p, parts = self._parts(frame)
        n = frame["n"].to_numpy(float)
        pp = frame["pred_pos"].to_numpy(bool)
        group, keys = (pd.factorize(frame[by], sort=True) if by else
                       (np.zeros(len(frame), int), [None]))
        grid, values = self._grid
        at = np.clip(np.searchsorted(grid, p), 0, len(grid) - 1)
        on_grid = grid[at] == p
        column = 2 * group + (~pp).astype(int)  # (group, predicted positive / negative)
        hits = np.zeros((len(self.boot), 2 * len(keys)))
        for name, (m, *_) in zip([None, *self.own], parts, strict=True):
            rows = m & on_grid
            counts = np.bincount(at[rows] * (2 * len(keys)) + column[rows], weights=n[rows],
                                 minlength=len(grid) * 2 * len(keys))
            hits += values[name] @ counts.reshape(len(grid), 2 * len(keys))
            for i in np.flatnonzero(m & ~on_grid):  # a P(positive) off the grid: evaluate it
                hits[:, column[i]] += n[i] * np.array([
                    (ref if name is None else own[name])(p[i:i + 1])[0]
                    for ref, own in self.boot])
        out = {}
        for g, key in enumerate(keys):
            tp, fn = hits[:, 2 * g], hits[:, 2 * g + 1]
            mine = group == g
            out[key] = _metrics_of_counts(tp, n[mine & pp].sum() - tp, fn,
                                          n[mine & ~pp].sum() - fn, float(n[mine].sum()))
        return out


def _version_heads(case: CaseView, record: Recorder, baseline: Window, incident: Window,
                   as_of: datetime | None, new: list[str], p_of, pred_pos, hit
                   ) -> tuple[dict[str, Any], dict[str, pd.DataFrame], dict[str, dict[str, Any]]]:
    """Calibrators for the model versions the reference did not serve, each fitted on its own
    labelled head: its labelled predictions after the reference (from the end of the baseline,
    or the incident's start, to the incident's end) whose labels arrived before ``as_of``.

    A new release or a quantized checkpoint changes P(y | score): the reference cannot vouch
    for it, but labels that arrive with a delay can, once enough of them have come. Each head
    passes the reference's own checks (:data:`MIN_REFERENCE_LABELS`, both classes, the
    cross-fitted ECE between the first and second half of the head in time) or its version
    stays uncalibrated (``cannot estimate``). Returns the calibrators, the heads' counts and,
    per version, what was found (``labelled``, ``accuracy``, ``residual_ece``, ``calibrated``,
    ``reason``).
    """
    if not new:
        return {}, {}, {}
    start = baseline.end if baseline.end <= incident.start else incident.start
    head = _labelled(case, record, Window(start, incident.end), as_of)
    head = head.filter(head.model_version.cast("string").isin(new))
    version = head.model_version.cast("string")
    span = record(head.group_by(version=version).aggregate(lo=head.ts.min(), hi=head.ts.max()))
    middles = {str(r["version"]): (pd.Timestamp(r["lo"]) + (pd.Timestamp(r["hi"]) -
                                                            pd.Timestamp(r["lo"])) / 2
                                   ).to_pydatetime() for _, r in span.iterrows()}
    info = {v: {"labelled": 0, "calibrated": False,
                "reason": "no label of this version" + (" had arrived by as_of" if as_of else "")}
            for v in new}
    if not middles:
        return {}, {}, info
    fold = ibis.cases(*(((version == v) & (head.ts >= ibis.literal(m)), 1)
                        for v, m in middles.items()), else_=0)
    counts = record(head.group_by(version=version, fold=fold, p=p_of(head),
                                  pred_pos=pred_pos(head)).aggregate(n=head.count(), k=hit(head)))
    counts["pred_pos"] = counts["pred_pos"].astype(bool)
    own, heads = {}, {}
    for v, part in counts.groupby("version"):
        summary, checks, calibrators = _reference(part)
        failed = checks.loc[~checks["passed"], "detail"]
        info[str(v)] = summary | {
            "calibrated": calibrators is not None,
            "reason": ("calibrated on its own labelled head" if calibrators is not None
                       else "; ".join(failed))}
        if calibrators is not None:
            own[str(v)], heads[str(v)] = (*calibrators, _support(part)), part
    return own, heads, info


def _estimate(frame: pd.DataFrame, labelled: pd.DataFrame, maps: _Maps,
              boot: np.ndarray | None = None) -> dict[str, Any]:
    """Estimates, bands and the realised check of one bucket (or the pooled window);
    ``boot``: the bucket's :meth:`_Maps.replicate_metrics`, when computed for all at once."""
    pp, n = frame["pred_pos"].to_numpy(bool), frame["n"].to_numpy(float)
    out = expected_metrics(pp, maps.calibrate(frame), n)
    per_fold = ([expected_metrics(pp, maps.calibrate(frame, f), n) for f in (0, 1)]
                if maps.has_folds else [])
    boot = maps.replicate_metrics(frame)[None] if boot is None else boot
    boot_se = _spread(boot)
    for j, m in enumerate(METRICS):
        fold_se = abs(per_fold[0][m] - per_fold[1][m]) / 2 if len(per_fold) == 2 else 0.0
        sampling = out.pop(f"{m}_se")
        # the calibration map's error: the bootstrap's spread, or the two folds' (which also
        # sees a calibration that moves in time) when it is larger
        cal_se = float(np.nanmax([fold_se, boot_se[j], 0.0]))
        se = float(np.hypot(sampling, cal_se))
        if m == "accuracy":
            out.update(accuracy_se_sampling=float(sampling), accuracy_se_folds=float(fold_se),
                       accuracy_se_bootstrap=float(boot_se[j]))
        out[f"{m}_se"] = se
        out[f"{m}_lo"] = float(np.clip(out[m] - Z * se, 0.0, 1.0))
        out[f"{m}_hi"] = float(np.clip(out[m] + Z * se, 0.0, 1.0))
    out["outside_share"] = float(n[maps.outside(frame)].sum() / n.sum()) if n.sum() else np.nan
    out["unknown_version_share"] = (float(n[~frame["known"].to_numpy(bool)].sum() / n.sum())
                                    if "known" in frame and n.sum() else 0.0)
    out["own_version_share"] = (float(n[frame["version"].isin(list(maps.own)).to_numpy(bool)]
                                      .sum() / n.sum()) if maps.own and n.sum() else 0.0)
    nl = float(labelled["n"].sum()) if len(labelled) else 0.0
    out["labelled"] = int(nl)
    if nl:
        lpp = labelled["pred_pos"].to_numpy(bool)
        ln, lk = labelled["n"].to_numpy(float), labelled["k"].to_numpy(float)
        c = maps.calibrate(labelled)
        correct = float(np.where(lpp, lk, ln - lk).sum())
        on_labelled = float(np.where(lpp, ln * c, ln * (1 - c)).sum() / nl)
        out["realized_accuracy"] = correct / nl
        lo, hi = st.wilson_interval(np.array([correct]), np.array([nl]))
        out["realized_lo"], out["realized_hi"] = float(lo[0]), float(hi[0])
        out["estimated_on_labelled"] = on_labelled
        out["gap"] = correct / nl - on_labelled
        out["gap_se"] = float(np.sqrt((ln * c * (1 - c)).sum()) / nl)
    else:
        for k in ("realized_accuracy", "realized_lo", "realized_hi", "estimated_on_labelled",
                  "gap", "gap_se"):
            out[k] = np.nan
    return out


def _replicate_metrics(pred_pos: np.ndarray, c: np.ndarray, n: np.ndarray) -> np.ndarray:
    """:func:`expected_metrics`' accuracy, precision, recall and F1 (the :data:`METRICS`
    columns) for each row of ``c`` (one bootstrap replicate's calibrated P(positive) per
    group), at once; NaN where a metric is undefined."""
    pp = np.asarray(pred_pos, bool)
    tp, fp = (c * n)[:, pp].sum(axis=1), ((1 - c) * n)[:, pp].sum(axis=1)
    fn, tn = (c * n)[:, ~pp].sum(axis=1), ((1 - c) * n)[:, ~pp].sum(axis=1)
    return _metrics_of_counts(tp, fp, fn, tn, float(n.sum()))


def _metrics_of_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, tn: np.ndarray,
                       total: float) -> np.ndarray:
    """Accuracy, precision, recall and F1 (columns) of each replicate's expected counts."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.column_stack([
            (tp + tn) / total if total else np.full(len(tp), np.nan),
            np.where(tp + fp > 0, tp / (tp + fp), np.nan),
            np.where(tp + fn > 0, tp / (tp + fn), np.nan),
            np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)])


def _spread(values: np.ndarray) -> np.ndarray:
    """Per column, the standard deviation (``ddof=1``) of the finite values, 0 with fewer
    than two (a metric undefined in every replicate, such as the precision of a bucket with no
    positive prediction, has no spread; ``np.nanstd`` would warn)."""
    finite = np.isfinite(values)
    count = finite.sum(axis=0)
    mean = np.where(finite, values, 0.0).sum(axis=0) / np.maximum(count, 1)
    ss = (np.where(finite, values - mean, 0.0) ** 2).sum(axis=0)
    return np.where(count > 1, np.sqrt(ss / np.maximum(count - 1, 1)), 0.0)


def _drift(row: dict[str, Any]) -> bool:
    return bool(row["labelled"] >= MIN_CHECK_LABELS and abs(row["gap"]) > MIN_DRIFT_GAP and
                abs(row["gap"]) > Z_CHECK * row["gap_se"])


def _buckets(analysis: pd.DataFrame, labelled: pd.DataFrame, maps: _Maps) -> pd.DataFrame:
    out = []
    by_bucket = dict(tuple(labelled.groupby("bucket_start")))
    empty = labelled.iloc[0:0]
    boot = maps.replicate_metrics(analysis, by="bucket_start")
    for start, part in analysis.groupby("bucket_start"):
        row = {"bucket_start": start} | _estimate(part, by_bucket.get(start, empty), maps,
                                                  boot[start])
        if row["unknown_version_share"] > MAX_OUTSIDE_SHARE:
            row["status"] = (f"cannot estimate: {row['unknown_version_share']:.1%} of the "
                             "predictions from a model version the reference did not calibrate")
        elif row["outside_share"] > MAX_OUTSIDE_SHARE:
            row["status"] = (f"cannot estimate: {row['outside_share']:.1%} of the predictions "
                             "outside the reference's score support")
        elif _drift(row):
            row["status"] = (f"cannot estimate: realized accuracy {row['realized_accuracy']:.1%}"
                             f" vs estimated {row['estimated_on_labelled']:.1%} on "
                             f"{int(row['labelled']):,} labels (concept drift)")
        else:
            row["status"] = "estimated"
        out.append(row)
    return pd.DataFrame(out).sort_values("bucket_start", ignore_index=True)


def _pooled(analysis: pd.DataFrame, labelled: pd.DataFrame, maps: _Maps) -> dict[str, Any]:
    version = ["version"] if "version" in analysis else []
    a = analysis.groupby(["pred_pos", "p", "known", *version], as_index=False,
                         dropna=False)["n"].sum()
    lab = labelled.groupby(["pred_pos", "p", *version], as_index=False,
                           dropna=False)[["n", "k"]].sum()
    return _estimate(a, lab, maps)


def _window_checks(table: pd.DataFrame, overall: dict[str, Any],
                   heads: dict[str, dict[str, Any]] | None = None) -> pd.DataFrame:
    """The incident's checks: score support, model version (``heads``: what
    :func:`_version_heads` found for the versions the reference did not serve), concept drift."""
    checks = []
    worst = float(table["outside_share"].max())
    off = table[table["outside_share"] > MAX_OUTSIDE_SHARE]
    ok = overall["outside_share"] <= MAX_OUTSIDE_SHARE
    checks.append(_check(
        "score support", ok, overall["outside_share"], MAX_OUTSIDE_SHARE,
        f"{overall['outside_share']:.1%} of the incident's predictions have a score outside "
        f"the reference's support (more than {MAX_OUTSIDE_SHARE:.0%})" if not ok else
        f"{overall['outside_share']:.1%} outside the reference's support; worst bucket "
        f"{worst:.1%} ({len(off)} bucket(s) above {MAX_OUTSIDE_SHARE:.0%} not estimated)"))
    share = overall["unknown_version_share"]
    ok = share <= MAX_OUTSIDE_SHARE
    heads = heads or {}
    uncalibrated = "; ".join(f"{v}: {h['reason']}" for v, h in heads.items()
                             if not h["calibrated"])
    own = ", ".join(f"{v} on {int(h['labelled']):,} labels" for v, h in heads.items()
                    if h["calibrated"])
    checks.append(_check(
        "model version", ok, share, MAX_OUTSIDE_SHARE,
        (f"{share:.1%} of the incident's predictions come from a model version the reference "
         "did not serve: the calibration is that of another model" + (
             f" ({uncalibrated})" if uncalibrated else "")) if not ok else
        f"{share:.1%} of the predictions from a model version the reference did not serve" + (
            f"; {overall.get('own_version_share', 0.0):.1%} from a new version calibrated on "
            f"its own labelled head ({own}: the labels that calibrate it cannot also check it "
            "for concept drift)" if own else "")))
    drifted = table[table["status"].str.contains("concept drift")]
    pooled = _drift(overall)
    ok = not pooled and drifted.empty
    if ok:
        detail = ("no labels in the incident window to check the estimate against"
                  if not overall["labelled"] else
                  f"realized accuracy {overall['realized_accuracy']:.1%} vs estimated "
                  f"{overall['estimated_on_labelled']:.1%} on {int(overall['labelled']):,} labels")
    else:
        row = overall if pooled else drifted.iloc[0].to_dict()
        where = "in the incident window" if pooled else \
            f"in the bucket from {pd.Timestamp(row['bucket_start']):%Y-%m-%d %H:%M} UTC"
        detail = (f"evidence of concept drift {where}: realized accuracy "
                  f"{row['realized_accuracy']:.1%} vs estimated {row['estimated_on_labelled']:.1%}"
                  f" on {int(row['labelled']):,} labels (gap beyond {Z_CHECK:g} standard errors and "
                  f"{MIN_DRIFT_GAP:.0%}); P(y | score) changed, so the estimate does not hold")
    checks.append(_check("concept drift", ok, overall["gap"] if overall["labelled"] else np.nan,
                         MIN_DRIFT_GAP, detail))
    return pd.DataFrame(checks)
