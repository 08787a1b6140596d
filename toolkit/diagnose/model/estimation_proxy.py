"""Stand-in (proxy) model estimate: the accuracy of a model version that no label vouches for.

CBPE (:mod:`toolkit.diagnose.model.estimation`) reads P(y | score) off the reference, so it
cannot vouch for a model version the reference did not serve: a new release or a quantized
checkpoint scores the same inputs differently. What does hold for any version, unless the
concept drifts, is P(y | x). This module estimates it with a stand-in model fitted on the
labelled reference's *features* (not on the old model's scores) and reads the served
predictions against it: the expected accuracy of whatever predicted the incident's rows is
the mean over rows of ``p_proxy(y = predicted class | x)``, and its expected confusion matrix
``TP = sum_{pred=pos} p``, ``FP = sum_{pred=pos} (1 - p)``, ``FN = sum_{pred=neg} p``,
``TN = sum_{pred=neg} (1 - p)``. No label of the new version is needed.

Recipe (binary tasks):

1. **Sample.** At most :data:`MAX_SAMPLE` labelled reference rows (features, prediction,
   label; a deterministic time-hashed sample) are pulled into Python, split at random (fixed
   seed) into a fitting part (60%), a calibration part (20%) and a check part (20%).
2. **Terms.** A numeric feature is winsorised to the reference's [:data:`CLIP_LOW`,
   :data:`CLIP_HIGH`] quantiles, taken on a log scale (``log(1 + x)``) when it is not
   negative and that scale makes it less skewed (a log-normal amount, a duration), imputed with the reference's
   median, standardised, plus a missing-value indicator when the reference has missing
   values; a categorical feature is one-hot on its :data:`TOP_LEVELS` commonest reference
   levels (the rest and missing values are the baseline).
3. **Fit and calibrate.** A logistic regression (scikit-learn, L2, ``C = 1``) on the fitting
   part, then Platt scaling of its linear predictor on the calibration part (``a + b eta``,
   folded into the coefficients, so the map stays linear). The coefficients' covariance is
   the inverse Fisher information of the fitting part at the calibrated coefficients.
4. **Check.** On the check part: AUC (at least :data:`MIN_AUC`: a proxy that cannot rank
   carries no information about which rows are right), ECE of the proxy (10 equal-width bins;
   its excess over the ECE a calibrated model shows by chance on as many rows at most
   :data:`MAX_PROXY_ECE`) and the agreement between the proxy's expected accuracy of the OLD
   model's predictions and their realised accuracy (validates the proxy where it can be
   validated: a gap over :data:`MAX_AGREEMENT_GAP` and :data:`Z_CHECK` standard errors fails).
5. **Score in the engine.** The linear predictor is one SQL expression over the feature
   columns (the coefficients, levels and clipping bounds as literals); the incident's rows are
   aggregated per time bucket and model version (expected TP and FN, their variances, and the
   gradient of TP and FN in the coefficients): no incident row is pulled into Python.
6. **Assumptions, in the incident.** Every feature of the case's catalog (``features``
   table) present in the requests (else it abstains: the proxy would miss an input);
   the share of rows with a numeric feature outside the reference's [min, max], a
   categorical level the reference never showed among its commonest, or a missing value
   of a feature the reference always held (at most
   :data:`MAX_OUTSIDE_SHARE` per bucket, else that bucket is not estimated); no
   concept-drift evidence where incident labels exist (realised vs the proxy's expected
   accuracy on the same labelled rows, as CBPE's check). With no incident label at all the
   concept-drift check cannot run: P(y | x) changing leaves no trace in the features, and the
   estimate then assumes it did not change (said in the check's detail).
7. **Band.** ``estimate +- 1.96 se`` with ``se^2`` the Bernoulli sampling variance of the
   outcomes under the proxy plus the delta-method variance of the coefficients
   (``g' Cov g``, ``g`` the gradient of the metric in the coefficients, summed in the
   engine). It does not hold the proxy's misspecification bias (a truth the linear model
   cannot follow), which the check part's agreement bounds on the reference's inputs.

Measured (``bench/estimation_backtest.py --calendar-weeks --reweighted --labels-after 0``,
classic tuning seeds 1-15, 40,000 rows, every incident label hidden): bad release 26 of 26
and calibration collapse 23 of 23 weekly windows within 2 points of the realised accuracy
(MAE 0.28 and 0.38 points), band coverage 92% and 83%; held-out AUC 0.956-0.993, agreement
with the old model -1.1 to +1.5 points. Concept drift is out of its reach before labels.

Regression and multiclass tasks have no proxy here (a multinomial stand-in is not built).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import ibis
import numpy as np
import pandas as pd

from toolkit.diagnose._case import CaseView, within
from toolkit.diagnose._engine import Recorder, bucket_expr, sample_by_time
from toolkit.diagnose._labels import labelled_rows
from toolkit.diagnose.model import estimation as _estimation
from toolkit.types import Window

__all__ = ["Term", "Proxy", "ProxyEstimate", "fit_proxy", "proxy_estimate", "design",
           "linear_predictor", "metrics_of_sums"]

#: Labelled reference rows pulled into Python to fit the proxy.
MAX_SAMPLE = 50_000
#: Labelled reference rows the proxy needs (fit, calibration and check parts together).
MIN_SAMPLE = 1_500
TOP_LEVELS = 10
CLIP_LOW, CLIP_HIGH = 0.01, 0.99
MIN_AUC = 0.6
MAX_PROXY_ECE = 0.02
MAX_AGREEMENT_GAP = 0.02
Z_CHECK = 3.0
MAX_OUTSIDE_SHARE = 0.05
MIN_CHECK_LABELS = 100
Z = 1.959964
SPLIT_SEED = 20_250


@dataclass(frozen=True)
class Term:
    """One column of the proxy's design: ``kind`` is ``numeric`` (winsorised to ``lo``-``hi``,
    ``log(1 + v)`` when ``log``, missing -> ``fill``, then ``(v - center) / scale``), ``missing`` (1
    when the feature is null) or ``level`` (1 when the categorical feature equals ``level``)."""

    feature: str
    kind: str
    level: str | None = None
    log: bool = False
    lo: float = 0.0
    hi: float = 0.0
    fill: float = 0.0
    center: float = 0.0
    scale: float = 1.0

    @property
    def name(self) -> str:
        return (self.feature if self.kind == "numeric" else f"{self.feature}:missing"
                if self.kind == "missing" else f"{self.feature}={self.level}")


def design(frame: pd.DataFrame, terms: tuple[Term, ...]) -> np.ndarray:
    """The design matrix of ``frame`` (rows x terms) in Python: the same values as
    :func:`linear_predictor`'s SQL terms.

    Examples
    --------
    >>> t = (Term("x", "numeric", lo=1.0, hi=100.0, log=True, fill=10.0, center=0.0,
    ...           scale=1.0), Term("c", "level", level="a"))
    >>> design(pd.DataFrame({"x": [1000.0, None], "c": ["a", None]}), t).round(4).tolist()
    [[4.6151, 1.0], [2.3979, 0.0]]
    """
    cols = []
    for t in terms:
        if t.kind == "numeric":
            x = pd.to_numeric(frame[t.feature], errors="coerce").astype(float)
            v = np.clip(x.fillna(t.fill).to_numpy(float), t.lo, t.hi)
            cols.append(((np.log1p(v) if t.log else v) - t.center) / t.scale)
        elif t.kind == "missing":
            cols.append(frame[t.feature].isna().to_numpy(float))
        else:
            v = frame[t.feature]
            cols.append((v.notna() & (v.astype(str) == t.level)).to_numpy(float))
    return np.column_stack(cols) if cols else np.zeros((len(frame), 0))


def _term_expr(t: ibis.Table, term: Term) -> ibis.FloatingValue:
    if term.kind == "numeric":
        x = t[term.feature].cast("float64").fill_null(term.fill).clip(term.lo, term.hi)
        return (((x + 1.0).ln() if term.log else x) - term.center) / term.scale
    if term.kind == "missing":
        return t[term.feature].isnull().cast("float64")
    v = t[term.feature].cast("string")
    return (v.notnull() & (v == term.level)).cast("float64")


def linear_predictor(t: ibis.Table, proxy: Proxy) -> ibis.FloatingValue:
    """The proxy's linear predictor (log-odds of the positive class) as an engine
    expression over ``t``'s feature columns."""
    eta = ibis.literal(float(proxy.coef[0]))
    for term, b in zip(proxy.terms, proxy.coef[1:], strict=True):
        eta = eta + _term_expr(t, term) * float(b)
    return eta


@dataclass(frozen=True)
class Proxy:
    """A fitted stand-in model: ``coef`` (intercept first) over ``terms``, ``cov`` their
    covariance, ``support`` per feature (numeric ``(min, max, missing seen)``, categorical
    ``(levels seen, missing seen)``),
    ``checks`` (rows of ``check, passed, statistic, threshold, detail``) and ``info``."""

    terms: tuple[Term, ...]
    coef: np.ndarray
    cov: np.ndarray
    support: dict[str, Any]
    checks: tuple[dict[str, Any], ...]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c["passed"] for c in self.checks)


def _check(check: str, passed: bool, statistic: float, threshold: float, detail: str
           ) -> dict[str, Any]:
    return {"check": check, "passed": bool(passed), "statistic": float(statistic),
            "threshold": float(threshold), "detail": detail}


def _terms(sample: pd.DataFrame, numeric: list[str], categorical: list[str]
           ) -> tuple[Term, ...]:
    """The design's terms from the fitting sample (see the module docstring, step 2)."""
    terms: list[Term] = []
    for f in numeric:
        x = pd.to_numeric(sample[f], errors="coerce").astype(float)
        seen = x.dropna().to_numpy(float)
        if len(seen) < 2 or np.ptp(seen) == 0:
            continue
        lo, hi = (float(v) for v in np.quantile(seen, [CLIP_LOW, CLIP_HIGH]))
        if hi <= lo:
            lo, hi = float(seen.min()), float(seen.max())
        med = float(np.median(seen))
        kept = np.clip(seen, lo, hi)
        log = bool(lo >= 0 and abs(_skew(np.log1p(kept))) < abs(_skew(kept)))
        v = np.clip(x.fillna(med).to_numpy(float), lo, hi)
        v = np.log1p(v) if log else v
        scale = float(v.std()) or 1.0
        terms.append(Term(f, "numeric", log=log, lo=lo, hi=hi, fill=med,
                          center=float(v.mean()), scale=scale))
        if x.isna().any():
            terms.append(Term(f, "missing"))
    for f in categorical:
        counts = sample[f].dropna().astype(str).value_counts()
        levels = sorted(counts.index[:TOP_LEVELS].tolist(), key=lambda v: (-counts[v], v))
        # with every level one-hot the design is collinear with the intercept: the
        # commonest level is the baseline unless missing values or other levels exist
        rest = int(sample[f].isna().sum()) + int(counts.iloc[TOP_LEVELS:].sum())
        terms += [Term(f, "level", level=v) for v in (levels if rest else levels[1:])]
    return tuple(terms)


def _skew(v: np.ndarray) -> float:
    sd = float(v.std())
    return float(((v - v.mean()) ** 3).mean() / sd**3) if sd else 0.0


def _ece(p: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """ECE of P(positive) on the estimator's equal-width bins, and the ECE a calibrated
    model shows by chance on the same rows: :func:`estimation._ece` and
    :func:`estimation._ece_noise` with one row per group."""
    ones = np.ones_like(p)
    return _estimation._ece(p, y, ones), _estimation._ece_noise(p, ones)


def fit_proxy(sample: pd.DataFrame, numeric: list[str], categorical: list[str],
              positive: str) -> Proxy:
    """Fit, calibrate and check the stand-in model on a labelled reference sample.

    Parameters
    ----------
    sample
        Labelled reference rows: the feature columns, ``label`` and ``prediction``.
    numeric, categorical
        The feature names by kind.
    positive
        The positive class.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    features = [*numeric, *categorical]
    n = len(sample)
    y = (sample["label"].astype(str) == str(positive)).to_numpy(float)
    if n < MIN_SAMPLE or not 0 < y.sum() < n:
        detail = (f"{n} labelled reference rows with features (at least {MIN_SAMPLE} needed "
                  "to fit, calibrate and check a stand-in model)" if n < MIN_SAMPLE else
                  "the reference labels hold one class only")
        return Proxy((), np.zeros(1), np.zeros((1, 1)), {}, (
            _check("proxy sample", False, n, MIN_SAMPLE, detail),), {"rows": n})
    part = np.random.default_rng(SPLIT_SEED).permutation(n) % 5  # 0-2 fit, 3 calibrate, 4 check
    fit_rows, cal_rows, chk_rows = part <= 2, part == 3, part == 4
    terms = _terms(sample[fit_rows], numeric, categorical)
    if not terms:
        return Proxy((), np.zeros(1), np.zeros((1, 1)), {}, (
            _check("proxy features", False, 0, 1, "no feature varies in the reference: "
                   "nothing to fit a stand-in model on"),), {"rows": n})
    X = design(sample, terms)
    model = LogisticRegression(C=1.0, max_iter=2000).fit(X[fit_rows], y[fit_rows])
    raw = model.decision_function(X)
    platt = LogisticRegression(C=1e6, max_iter=1000).fit(raw[cal_rows, None], y[cal_rows])
    a, b = float(platt.intercept_[0]), float(platt.coef_[0, 0])
    coef = np.concatenate([[a + b * float(model.intercept_[0])], b * model.coef_[0]])
    X1 = np.column_stack([np.ones(n), X])
    p = 1.0 / (1.0 + np.exp(-(X1 @ coef)))
    w = p[fit_rows] * (1 - p[fit_rows])
    info_matrix = (X1[fit_rows] * w[:, None]).T @ X1[fit_rows]
    cov = np.linalg.pinv(info_matrix)

    pc, yc = p[chk_rows], y[chk_rows]
    auc = float(roc_auc_score(yc, pc)) if 0 < yc.sum() < len(yc) else float("nan")
    ece, noise = _ece(pc, yc)
    pred_pos = (sample["prediction"].astype(str) == str(positive)).to_numpy(bool)[chk_rows]
    right = np.where(pred_pos, yc, 1 - yc)
    expect = np.where(pred_pos, pc, 1 - pc)
    realized, expected = float(right.mean()), float(expect.mean())
    gap = realized - expected
    gap_se = float(np.sqrt((expect * (1 - expect)).sum()) / len(expect))
    checks = (
        _check("proxy discrimination", auc >= MIN_AUC, auc, MIN_AUC,
               f"stand-in model AUC {auc:.3f} on {int(chk_rows.sum()):,} held-out reference "
               f"rows" + ("" if auc >= MIN_AUC else
                          f" (below {MIN_AUC}: the features barely predict the label)")),
        _check("proxy calibration", ece - noise <= MAX_PROXY_ECE, ece - noise, MAX_PROXY_ECE,
               f"stand-in model ECE {ece:.3f} on held-out reference rows (chance level "
               f"{noise:.3f})" + ("" if ece - noise <= MAX_PROXY_ECE else
                                  f": more than {MAX_PROXY_ECE} above chance, uncalibrated")),
        _check("proxy agreement", not (abs(gap) > MAX_AGREEMENT_GAP and
                                       abs(gap) > Z_CHECK * gap_se), gap, MAX_AGREEMENT_GAP,
               f"on held-out reference rows the old model's realized accuracy {realized:.1%}, "
               f"the stand-in model expects {expected:.1%} (gap {gap:+.1%})"),
    )
    support: dict[str, Any] = {}
    for f in numeric:
        x = pd.to_numeric(sample[f], errors="coerce")
        if x.notna().any():
            support[f] = (float(x.min()), float(x.max()), bool(x.isna().any()))
    for f in categorical:
        levels = sample[f].dropna().astype(str).value_counts().index[:4 * TOP_LEVELS]
        support[f] = (sorted(levels), bool(sample[f].isna().any()))
    return Proxy(terms, coef, cov, support, checks, {
        "rows": n, "fit_rows": int(fit_rows.sum()), "features": features,
        "terms": [t.name for t in terms], "auc": auc, "ece": ece, "ece_noise": noise,
        "platt": (a, b), "reference_realized": realized, "reference_expected": expected,
        "agreement_gap": gap})


def _outside_expr(t: ibis.Table, proxy: Proxy) -> ibis.BooleanValue:
    """Whether a row leaves the reference's support: a numeric feature outside its [min,
    max], a categorical level the reference did not show, or a missing value of a feature
    the reference always held (a feature dropped upstream would otherwise be imputed)."""
    out = ibis.literal(False)
    for f, s in proxy.support.items():
        if len(s) == 3:
            x = t[f].cast("float64")
            out = out | (x.notnull() & ((x < s[0]) | (x > s[1])))
        else:
            x = t[f].cast("string")
            out = out | (x.notnull() & ~x.isin(list(s[0])))
        if not s[-1]:  # never missing in the reference: a missing value is out of support
            out = out | x.isnull()
    return out


@dataclass(frozen=True)
class ProxyEstimate:
    """The proxy's estimate of an incident window: ``table`` per bucket (the estimation's
    columns, ``method`` ``proxy``), ``overall`` pooled, ``by_version`` (rows, accuracy per
    model version), ``checks`` (the proxy's and the window's) and the ``proxy`` itself."""

    proxy: Proxy
    table: pd.DataFrame
    overall: dict[str, Any]
    by_version: pd.DataFrame
    checks: pd.DataFrame

    @property
    def ok(self) -> bool:
        return not self.table.empty and bool(self.checks["passed"].all())


SUM_COLUMNS = ("n", "n_pp", "tp", "fn", "v_pp", "v_pn", "outside")


def metrics_of_sums(s: dict[str, Any], cov: np.ndarray) -> dict[str, float]:
    """Expected accuracy, precision, recall and F1 with their standard errors from the
    engine's sums of one group (``n``, ``n_pp``, ``tp``, ``fn``, ``v_pp``, ``v_pn`` and the
    gradients ``g_pos``, ``g_neg`` of TP and FN in the coefficients).

    Examples
    --------
    Two rows predicted positive with p = 0.9 and 0.6, one negative with p = 0.2: TP = 1.5,
    FN = 0.2, accuracy (1.5 + 0.8) / 3:

    >>> s = {"n": 3, "n_pp": 2, "tp": 1.5, "fn": 0.2, "v_pp": 0.09 + 0.24, "v_pn": 0.16,
    ...      "g_pos": np.zeros(1), "g_neg": np.zeros(1)}
    >>> m = metrics_of_sums(s, np.zeros((1, 1)))
    >>> round(m["accuracy"], 4), round(m["precision"], 4), round(m["recall"], 4)
    (0.7667, 0.75, 0.8824)
    >>> round(m["accuracy_se"], 4)   # sqrt(0.09 + 0.24 + 0.16) / 3
    0.2333
    """
    n, n_pp, tp, fn = (float(s[k]) for k in ("n", "n_pp", "tp", "fn"))
    v_pp, v_pn = float(s["v_pp"]), float(s["v_pn"])
    g_pos, g_neg = np.asarray(s["g_pos"], float), np.asarray(s["g_neg"], float)
    out: dict[str, float] = {"expected_tp": tp, "expected_fp": n_pp - tp, "expected_fn": fn,
                             "expected_tn": n - n_pp - fn}

    def put(name: str, value: float, d_tp: float, d_fn: float) -> None:
        grad = d_tp * g_pos + d_fn * g_neg
        sampling = d_tp**2 * v_pp + d_fn**2 * v_pn
        coef = float(grad @ cov @ grad)
        se = float(np.sqrt(max(sampling, 0.0) + max(coef, 0.0)))
        out[name], out[f"{name}_se"] = value, se
        out[f"{name}_se_sampling"] = float(np.sqrt(max(sampling, 0.0)))
        out[f"{name}_lo"] = float(np.clip(value - Z * se, 0.0, 1.0))
        out[f"{name}_hi"] = float(np.clip(value + Z * se, 0.0, 1.0))

    nan = float("nan")
    put("accuracy", (tp + n - n_pp - fn) / n if n else nan, 1 / n if n else 0.0,
        -1 / n if n else 0.0)
    put("precision", tp / n_pp if n_pp else nan, 1 / n_pp if n_pp else 0.0, 0.0)
    d = tp + fn
    put("recall", tp / d if d else nan, fn / d**2 if d else 0.0, -tp / d**2 if d else 0.0)
    d = n_pp + tp + fn
    put("f1", 2 * tp / d if d else nan, 2 * (n_pp + fn) / d**2 if d else 0.0,
        -2 * tp / d**2 if d else 0.0)
    return out


def _sums(t: ibis.Table, proxy: Proxy, pred_pos: ibis.BooleanValue) -> dict[str, Any]:
    """The aggregates of :func:`metrics_of_sums` (and the support count) as ibis reductions."""
    p = 1.0 / (1.0 + (-linear_predictor(t, proxy)).exp())
    pp = pred_pos.cast("float64")
    pv = p * (1.0 - p)
    aggs = {"n": t.count(), "n_pp": pp.sum(), "tp": (p * pp).sum(), "fn": (p * (1 - pp)).sum(),
            "v_pp": (pv * pp).sum(), "v_pn": (pv * (1 - pp)).sum(),
            "outside": _outside_expr(t, proxy).cast("int64").sum()}
    columns = [ibis.literal(1.0), *(_term_expr(t, term) for term in proxy.terms)]
    for j, x in enumerate(columns):
        aggs[f"gp{j}"] = (pv * pp * x).sum()
        aggs[f"gn{j}"] = (pv * (1 - pp) * x).sum()
    return aggs


def _group_metrics(sums: pd.DataFrame, proxy: Proxy) -> dict[str, Any]:
    k = len(proxy.coef)
    s = {c: float(sums[c].sum()) for c in SUM_COLUMNS}
    s["g_pos"] = np.array([sums[f"gp{j}"].sum() for j in range(k)], float)
    s["g_neg"] = np.array([sums[f"gn{j}"].sum() for j in range(k)], float)
    out = metrics_of_sums(s, proxy.cov)
    out["rows"] = int(s["n"])
    out["outside_share"] = s["outside"] / s["n"] if s["n"] else float("nan")
    return out


def _labelled_check(lab: pd.DataFrame) -> dict[str, Any]:
    """Realised vs the proxy's expected accuracy on the labelled rows of a group."""
    n = float(lab["n"].sum()) if len(lab) else 0.0
    if not n:
        return {"labelled": 0, "realized_accuracy": np.nan, "realized_lo": np.nan,
                "realized_hi": np.nan, "estimated_on_labelled": np.nan, "gap": np.nan,
                "gap_se": np.nan}
    from toolkit.diagnose import _stats as st

    k, e, v = (float(lab[c].sum()) for c in ("k", "e", "v"))
    lo, hi = st.wilson_interval(np.array([k]), np.array([n]))
    return {"labelled": int(n), "realized_accuracy": k / n, "realized_lo": float(lo[0]),
            "realized_hi": float(hi[0]), "estimated_on_labelled": e / n, "gap": k / n - e / n,
            "gap_se": float(np.sqrt(v) / n)}


def _drift(row: dict[str, Any]) -> bool:
    return bool(row["labelled"] >= MIN_CHECK_LABELS and abs(row["gap"]) > MAX_AGREEMENT_GAP
                and abs(row["gap"]) > Z_CHECK * row["gap_se"])


def proxy_estimate(case: CaseView, record: Recorder, baseline: Window, incident: Window,
                   width: timedelta, as_of: datetime | None, positive: str) -> ProxyEstimate:
    """Fit the stand-in model on the baseline's labelled rows and estimate the incident's
    served predictions with it, per ``width`` bucket (see the module docstring).

    Parameters
    ----------
    case, record
        The case view and the recorder of the calling diagnostic.
    baseline, incident
        The reference window (labelled rows fit the proxy) and the analysis window.
    width
        Bucket width.
    as_of
        Only labels that had arrived by then (``labeled_at < as_of``).
    positive
        The positive class.
    """
    names = [str(f) for f in case.feature_names() if f in case.columns["requests"]]
    declared = (list(record(case.table("features").select("name"))["name"].astype(str))
                if case.counts.get("features") else names)
    numeric = [f for f in case.feature_names("numeric") if f in names]
    categorical = [f for f in names if f not in numeric]
    empty = pd.DataFrame()
    missing = sorted(set(declared) - set(names))
    if not names or missing:
        detail = ("the requests carry no feature: no stand-in model can be fitted" if not names
                  else f"feature(s) {', '.join(missing)} declared but absent from the requests")
        proxy = Proxy((), np.zeros(1), np.zeros((1, 1)), {}, (
            _check("proxy features", False, len(names), len(declared), detail),))
        return ProxyEstimate(proxy, empty, {}, empty, pd.DataFrame(list(proxy.checks)))

    ref = labelled_rows(case, baseline)
    ref = ref.filter(ref.score.notnull())
    if as_of is not None:
        ref = ref.filter(ref.labeled_at.notnull() & (ref.labeled_at < ibis.literal(as_of)))
    count = int(record(ref.count())["value"].iloc[0])
    picked = sample_by_time(ref, MAX_SAMPLE / count) if count > MAX_SAMPLE else ref
    sample = record(picked.select("prediction", "label", *names))
    proxy = fit_proxy(sample, numeric, categorical, positive)
    checks = list(proxy.checks)
    if not proxy.ok:
        return ProxyEstimate(proxy, empty, {}, empty, pd.DataFrame(checks))

    pos = ibis.literal(positive)
    requests = case.table("requests")
    rows = requests.filter(within(requests.ts, incident) & requests.prediction.notnull() &
                           requests.score.notnull())
    version = ({"version": rows.model_version.cast("string")}
               if "model_version" in case.columns["requests"] else {})
    sums = record(rows.group_by(bucket_start=bucket_expr(rows.ts, width), **version)
                  .aggregate(**_sums(rows, proxy, rows.prediction == pos)))
    inc = labelled_rows(case, incident)
    inc = inc.filter(inc.score.notnull())
    if as_of is not None:
        inc = inc.filter(inc.labeled_at.notnull() & (inc.labeled_at < ibis.literal(as_of)))
    p = 1.0 / (1.0 + (-linear_predictor(inc, proxy)).exp())
    e = ibis.cases((inc.prediction == pos, p), else_=1.0 - p)
    lab = record(inc.group_by(bucket_start=bucket_expr(inc.ts, width)).aggregate(
        n=inc.count(), k=inc.correct.cast("int64").sum(), e=e.sum(), v=(e * (1.0 - e)).sum()))

    out = []
    by_bucket = dict(tuple(lab.groupby("bucket_start")))
    for start, part in sums.groupby("bucket_start"):
        row = {"bucket_start": start} | _group_metrics(part, proxy) | _labelled_check(
            by_bucket.get(start, lab.iloc[0:0]))
        row["status"] = (
            f"cannot estimate: {row['outside_share']:.1%} of the rows have features outside "
            "the reference's range" if row["outside_share"] > MAX_OUTSIDE_SHARE else
            f"cannot estimate: realized accuracy {row['realized_accuracy']:.1%} vs the "
            f"stand-in model's {row['estimated_on_labelled']:.1%} on {row['labelled']:,} "
            "labels (concept drift)" if _drift(row) else "estimated")
        out.append(row)
    table = pd.DataFrame(out).sort_values("bucket_start", ignore_index=True)
    table.insert(len(table.columns), "method", "proxy")
    overall = _group_metrics(sums, proxy) | _labelled_check(lab)
    by_version = (pd.DataFrame([{"version": v, **_group_metrics(g, proxy)}
                                for v, g in sums.groupby("version", dropna=False)])
                  if version else empty)

    share = overall["outside_share"]
    checks.append(_check(
        "feature support", share <= MAX_OUTSIDE_SHARE, share, MAX_OUTSIDE_SHARE,
        f"{share:.1%} of the incident's rows have a feature outside the reference's range "
        f"or an unseen level" + ("" if share <= MAX_OUTSIDE_SHARE else
                                 f" (more than {MAX_OUTSIDE_SHARE:.0%})")))
    drifted = table[table["status"].str.contains("concept drift")]
    ok = not _drift(overall) and drifted.empty
    checks.append(_check(
        "concept drift (proxy)", ok, overall["gap"] if overall["labelled"] else np.nan,
        MAX_AGREEMENT_GAP,
        "no label in the incident window: P(y | x) is assumed unchanged (concept drift "
        "leaves no trace in the features and cannot be checked before labels arrive)"
        if not overall["labelled"] else
        f"realized accuracy {overall['realized_accuracy']:.1%} vs the stand-in model's "
        f"{overall['estimated_on_labelled']:.1%} on {overall['labelled']:,} incident labels"
        + ("" if ok else ": evidence of concept drift (P(y | x) changed), the estimate "
           "does not hold")))
    return ProxyEstimate(proxy, table, overall, by_version, pd.DataFrame(checks))
