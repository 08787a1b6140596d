"""Label-free error estimation for regression (the DLE idea): the expected MAE of the incident.

The regression half of :mod:`toolkit.diagnose.model.estimation` (which dispatches here when
the case's main task is regression and holds the shared result, checks and binning).

Regression tasks (the case's main task, ``case.task``; DESIGN section 3a) get an error-model
estimate (the DLE idea) instead of CBPE: prediction and label cast to numbers as ``model.performance``
does, the labelled reference's ``|label - prediction|`` is counted in the engine per cell of
the prediction's :data:`SEGMENT_BINS` reference quantile bins crossed with the bins of the
:data:`MAX_ERROR_FEATURES` features whose bins explain the largest share of that error's
variance (eta squared, at least :data:`MIN_ERROR_ETA`); each cell's mean (and mean square) is
a Buhlmann credibility mean of its own and its coarser cell's (see :func:`_error_model`), so
thin cells lean on the prediction's bin and the global mean. The expected MAE of a bucket is
the row-weighted mean of its cells' values; its band adds the Bernoulli-like sampling spread
(the cells' variances) and the two reference folds' half difference in quadrature, as
CBPE's band does.
It abstains when more than :data:`MAX_OUTSIDE_SHARE` of the predictions (or of the chosen
numeric features) fall outside the reference's range, when they come from a model version the
reference did not serve, or when labels that exist contradict it (realised MAE beyond
:data:`Z_CHECK` standard errors and :data:`MIN_ERROR_GAP` relative of the estimate on the same
rows: the errors changed given the inputs). Finding: ``model.estimated_error_rise`` when the
estimated MAE is at least :data:`MIN_ERROR_RISE` above the reference's realised MAE and the
band's lower end above it (``low``; ``medium`` from :data:`MAJOR_ERROR_RISE`).
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

import ibis
import numpy as np
import pandas as pd

from toolkit.diagnose._base import Finding, NotAssessed
from toolkit.diagnose._case import CaseView, within
from toolkit.diagnose._engine import Recorder, bucket_expr
from toolkit.diagnose._labels import labelled_rows
from toolkit.diagnose.model.estimation import (
    ID,
    MAX_OUTSIDE_SHARE,
    MIN_CHECK_LABELS,
    MIN_REFERENCE_LABELS,
    Z_CHECK,
    EstimationResult,
    Z,
    _binner,
    _check,
)
from toolkit.store.schema import quote_ident
from toolkit.types import Window

__all__ = ["regression_estimate", "error_findings"]

#: Regression error model: features (beyond the prediction) whose bins explain at least
#: MIN_ERROR_ETA of the variance of |error|, at most MAX_ERROR_FEATURES of them; the relative
#: gap between realised and estimated MAE that counts as the errors changing; the rise of the estimated MAE over
#: the reference's that makes a finding (and a medium one).
MAX_ERROR_FEATURES = 2
MIN_ERROR_ETA = 0.01
MIN_ERROR_GAP = 0.10
MIN_ERROR_RISE = 0.10
MAJOR_ERROR_RISE = 0.25
_TEMP_NAMES = itertools.count(1)


def error_findings(result: EstimationResult) -> list[Finding]:
    """``model.estimated_error_rise``: the estimated MAE at least :data:`MIN_ERROR_RISE`
    above the reference's realised MAE, the band's lower end above it."""
    ref, est = result.reference["mae"], result.overall["mae"]
    rise = est / ref - 1 if ref > 0 else np.nan
    if not (rise >= MIN_ERROR_RISE and result.overall["mae_lo"] > ref):
        return []
    t = result.table[result.table["status"] == "estimated"]
    late = t[t["mae"] >= ref * (1 + MIN_ERROR_RISE)]
    onset = late["bucket_start"].iloc[0].to_pydatetime() if len(late) else None
    return [Finding(
        id="model.estimated_error_rise", pathway="model",
        severity="medium" if rise >= MAJOR_ERROR_RISE else "low",
        statistic=float(rise), threshold=MIN_ERROR_RISE,
        summary=(f"estimated MAE (no labels needed) rose {rise:.0%}: reference {ref:.4g}, "
                 f"incident {est:.4g} (band {result.overall['mae_lo']:.4g}-"
                 f"{result.overall['mae_hi']:.4g})"),
        evidence={"reference_mae": ref, "estimated_mae": est,
                  "band": [result.overall["mae_lo"], result.overall["mae_hi"]],
                  "realized_mae": result.overall.get("realized_mae", float("nan")),
                  "labelled_incident": int(result.overall.get("labelled", 0)),
                  "features": list(result.reference.get("features", [])),
                  "task": "regression", "estimated": True},
        onset=onset, diagnostic=result.id,
    )]


def regression_estimate(case: CaseView, record: Recorder, base: dict[str, Any],
                         baseline: Window, incident: Window, width: timedelta,
                         as_of: datetime | None) -> EstimationResult:
    """Estimated MAE per bucket of the incident from an error model fitted on the reference.

    See the module docstring ("Regression"). Counted in the engine (quantile edges, the
    features' share of the error's variance, and per cell: rows, sum and sum of squares of
    ``|label - prediction|``); Python shrinks the cells and decides.
    """
    from toolkit.diagnose._tasks import task_filter

    info = case.task
    numeric = set(case.feature_names("numeric"))
    names = [str(f) for f in case.feature_names() if f in case.columns["requests"]]
    ref = task_filter(case, info, labelled_rows(case, baseline))
    if as_of is not None:
        ref = ref.filter(ref.labeled_at.notnull() & (ref.labeled_at < ibis.literal(as_of)))
    ref = ref.mutate(_yhat=ref.prediction.try_cast("float64"), _y=ref.label.try_cast("float64"))
    ref = ref.filter(ref._yhat.notnull() & ref._y.notnull())
    ref = ref.mutate(_ae=(ref._y - ref._yhat).abs())
    keep = ["ts", "_yhat", "_ae", *names] + (
        ["model_version"] if "model_version" in case.columns["requests"] else [])
    # the reference is read once per feature: materialise the join once, drop it after
    name = f"_forensics_estimation_{next(_TEMP_NAMES)}"
    ref = record.temp_table(case.backend, name, ref.select(*keep))
    try:
        return _regression_fit(case, record, base, baseline, incident, width, as_of, ref,
                               names, numeric, info)
    finally:
        case.con.execute(f"DROP TABLE IF EXISTS temp.main.{quote_ident(name)}")


def _regression_fit(case: CaseView, record: Recorder, base: dict[str, Any], baseline: Window,
                    incident: Window, width: timedelta, as_of: datetime | None,
                    ref: ibis.Table, names: list[str], numeric: set[str], info: Any
                    ) -> EstimationResult:
    """:func:`_regression_estimate` on the materialised reference ``ref``."""
    from toolkit.diagnose._tasks import task_filter

    summary = record(ref.aggregate(n=ref.count(), s=ref._ae.sum(), lo=ref._yhat.min(),
                                   hi=ref._yhat.max())).iloc[0]
    n_ref = int(summary["n"])
    if n_ref < MIN_REFERENCE_LABELS:
        return EstimationResult(**base, not_assessed=(NotAssessed(
            ID, f"cannot estimate: {n_ref} labelled numeric reference predictions (at least "
                f"{MIN_REFERENCE_LABELS} needed to fit the error model)"),))
    bin_of = _binner(record, ref, ["_yhat", *names], numeric | {"_yhat"})
    # the features that explain the error most: share of the variance of |error| between
    # their bins (eta squared), one engine query each
    total = record(ref.aggregate(n=ref.count(), s=ref._ae.sum(),
                                 ss=(ref._ae * ref._ae).sum())).iloc[0]
    var_total = float(total["ss"] / total["n"] - (total["s"] / total["n"]) ** 2)
    eta = {}
    for f in names:
        g = record(ref.group_by(b=bin_of(ref, f)).aggregate(n=ref.count(), s=ref._ae.sum()))
        m = g["s"] / g["n"]
        between = float((g["n"] * (m - total["s"] / total["n"]) ** 2).sum() / total["n"])
        eta[f] = between / var_total if var_total > 0 else 0.0
    chosen = sorted((f for f in eta if eta[f] >= MIN_ERROR_ETA), key=lambda f: -eta[f])
    chosen = chosen[:MAX_ERROR_FEATURES]
    keys = ["_yhat", *chosen]
    cell = {f"k{j}": bin_of(ref, f) for j, f in enumerate(keys)}
    middle = baseline.start + (baseline.end - baseline.start) / 2
    reference = record(ref.group_by(fold=(ref.ts >= ibis.literal(middle)).cast("int64"),
                                    **cell).aggregate(n=ref.count(), s=ref._ae.sum(),
                                                      ss=(ref._ae * ref._ae).sum()))
    ranges = {f: record(ref.aggregate(lo=ref[f].cast("float64").min(),
                                      hi=ref[f].cast("float64").max())).iloc[0]
              for f in chosen if f in numeric}
    versions: list[str] = []
    requests = task_filter(case, info, case.table("requests"))
    rows = requests.filter(within(requests.ts, incident) & requests.prediction.notnull())
    rows = rows.mutate(_yhat=rows.prediction.try_cast("float64"))
    rows = rows.filter(rows._yhat.notnull())
    outside = (rows._yhat < float(summary["lo"])) | (rows._yhat > float(summary["hi"]))
    for f, r in ranges.items():
        x = rows[f].cast("float64")
        outside = outside | (x < float(r["lo"])) | (x > float(r["hi"]))
    known = ibis.literal(True)
    if "model_version" in case.columns["requests"]:
        seen = record(ref.group_by("model_version").aggregate(n=ref.count()))
        versions = sorted(str(v) for v in seen["model_version"] if v is not None)
        known = rows.model_version.isin(versions) if versions else known
    analysis = record(rows.group_by(bucket_start=bucket_expr(rows.ts, width),
                                    outside=outside.fill_null(False), known=known.fill_null(False),
                                    **{k: bin_of(rows, f) for k, f in zip(cell, keys, strict=True)}
                                    ).aggregate(n=rows.count()))
    inc = task_filter(case, info, labelled_rows(case, incident))
    if as_of is not None:
        inc = inc.filter(inc.labeled_at.notnull() & (inc.labeled_at < ibis.literal(as_of)))
    inc = inc.mutate(_yhat=inc.prediction.try_cast("float64"), _y=inc.label.try_cast("float64"))
    inc = inc.filter(inc._yhat.notnull() & inc._y.notnull())
    inc = inc.mutate(_ae=(inc._y - inc._yhat).abs())
    labelled = record(inc.group_by(bucket_start=bucket_expr(inc.ts, width),
                                   **{k: bin_of(inc, f) for k, f in zip(cell, keys, strict=True)}
                                   ).aggregate(n=inc.count(), s=inc._ae.sum(),
                                               ss=(inc._ae * inc._ae).sum()))
    levels = list(cell)
    model = _error_model(reference, levels)
    folds = {f: _error_model(reference[reference["fold"] == f], levels) for f in (0, 1)
             if (reference["fold"] == f).any()}
    ref_mae = float(total["s"] / total["n"])
    base["reference"] = {"labelled": n_ref, "mae": ref_mae, "features": chosen,
                         "eta_squared": eta, "cells": int(len(model[-1])),
                         "model_versions": versions,
                         "shrinkage_rows": [lvl.attrs.get("k") for lvl in model[1:]]}
    base["task"] = "regression"
    base["sql"] = record.sql
    empty = labelled.iloc[0:0]
    by_bucket = dict(tuple(labelled.groupby("bucket_start")))
    out = []
    for start, part in analysis.groupby("bucket_start"):
        row = {"bucket_start": start} | _mae_estimate(part, by_bucket.get(start, empty), model,
                                                       folds, levels)
        row["status"] = _mae_status(row)
        out.append(row)
    table = pd.DataFrame(out).sort_values("bucket_start", ignore_index=True)
    pooled_keys = ["outside", "known", *levels]
    overall = _mae_estimate(analysis.groupby(pooled_keys, as_index=False)["n"].sum(),
                            labelled.groupby(levels, as_index=False)[["n", "s", "ss"]].sum(),
                            model, folds, levels)
    checks = _mae_checks(table, overall)
    gaps = tuple(NotAssessed(ID, f"cannot estimate: {d}")
                 for d in checks.loc[~checks["passed"], "detail"])
    return EstimationResult(**base, table=table, overall=overall, assumptions=checks,
                            not_assessed=gaps)


def _error_model(reference: pd.DataFrame, levels: list[str]) -> list[pd.DataFrame]:
    """The mean and mean square of |error| per cell, shrunk level by level towards the
    coarser cell (the global mean first, then the prediction's decile, then that decile x the
    first feature's bin, ...): ``(sum + K * parent) / (n + K)``, with ``K`` per level the
    Buhlmann credibility constant ``sigma^2 / tau^2``: the pooled within-cell variance of
    |error| over the variance of the true cell means around their parents (moment estimate:
    ``tau^2 = (sum n (mean - parent)^2 - (cells - parents) sigma^2) / rows``; no spread
    beyond chance gives the parent's value). A thin cell leans on its parent, a feature that
    separates the errors keeps its cells apart. Item 0 is the global level (one row), item
    ``d`` the cells of the first ``d`` keys; ``attrs["k"]`` holds each level's ``K``."""
    g = reference[["n", "s", "ss"]].sum()
    out = [pd.DataFrame({"m": [g["s"] / g["n"]], "q": [g["ss"] / g["n"]]})]
    for depth in range(1, len(levels) + 1):
        keys = levels[:depth]
        lvl = reference.groupby(keys, as_index=False)[["n", "s", "ss"]].sum()
        if depth == 1:
            pm = np.full(len(lvl), float(out[0]["m"].iloc[0]))
            pq = np.full(len(lvl), float(out[0]["q"].iloc[0]))
            parents = 1
        else:
            parent = lvl[keys[:-1]].merge(out[-1], on=keys[:-1], how="left")
            pm, pq = parent["m"].to_numpy(), parent["q"].to_numpy()
            parents = len(out[-1])
        n, mean = lvl["n"].to_numpy(float), (lvl["s"] / lvl["n"]).to_numpy()
        rows = n.sum()
        sigma2 = float((lvl["ss"] - lvl["s"] ** 2 / lvl["n"]).sum() / rows)
        tau2 = (float((n * (mean - pm) ** 2).sum()) - (len(lvl) - parents) * sigma2) / rows
        k = sigma2 / tau2 if tau2 > 0 else np.inf
        w = n / (n + k) if np.isfinite(k) else np.zeros(len(lvl))
        lvl["m"] = w * mean + (1 - w) * pm
        lvl["q"] = w * (lvl["ss"] / lvl["n"]).to_numpy() + (1 - w) * pq
        out.append(lvl[[*keys, "n", "m", "q"]])
        out[-1].attrs["k"] = float(k)
    return out


def _predict(model: list[pd.DataFrame], frame: pd.DataFrame, levels: list[str]
             ) -> tuple[np.ndarray, np.ndarray]:
    """Expected |error| and its mean square for each row of ``frame`` (cells): the finest
    level the reference holds, else the coarser one."""
    m = np.full(len(frame), np.nan)
    q = np.full(len(frame), np.nan)
    for depth in range(len(levels), 0, -1):
        keys = levels[:depth]
        got = frame[keys].merge(model[depth][[*keys, "m", "q"]], on=keys, how="left")
        fill = np.isnan(m) & got["m"].notna().to_numpy()
        m[fill], q[fill] = got["m"].to_numpy()[fill], got["q"].to_numpy()[fill]
    m[np.isnan(m)] = float(model[0]["m"].iloc[0])
    q[np.isnan(q)] = float(model[0]["q"].iloc[0])
    return m, q


def _mae_estimate(frame: pd.DataFrame, labelled: pd.DataFrame, model, folds, levels
                  ) -> dict[str, Any]:
    """Estimated MAE of one bucket (or the pooled window) with its band, and the realised
    MAE of the labels that exist, with the error model's estimate on those same rows."""
    n = frame["n"].to_numpy(float)
    total = float(n.sum())
    m, q = _predict(model, frame, levels)
    out: dict[str, Any] = {"rows": total, "mae": float((n * m).sum() / total)}
    sampling = float(np.sqrt(np.clip(n * (q - m**2), 0, None).sum()) / total)
    per_fold = [float((n * _predict(fm, frame, levels)[0]).sum() / total)
                for fm in folds.values()]
    cal = abs(per_fold[0] - per_fold[1]) / 2 if len(per_fold) == 2 else 0.0
    out["mae_se"] = float(np.hypot(sampling, cal))
    out["mae_lo"] = max(0.0, out["mae"] - Z * out["mae_se"])
    out["mae_hi"] = out["mae"] + Z * out["mae_se"]
    out["outside_share"] = float(n[frame["outside"].to_numpy(bool)].sum() / total)
    out["unknown_version_share"] = float(n[~frame["known"].to_numpy(bool)].sum() / total)
    nl = float(labelled["n"].sum()) if len(labelled) else 0.0
    out["labelled"] = int(nl)
    if nl:
        lm, lq = _predict(model, labelled, levels)
        ln = labelled["n"].to_numpy(float)
        out["realized_mae"] = float(labelled["s"].sum() / nl)
        out["estimated_on_labelled"] = float((ln * lm).sum() / nl)
        out["gap"] = out["realized_mae"] - out["estimated_on_labelled"]
        # the realised MAE's own spread on those rows, under the error model
        out["gap_se"] = float(np.sqrt(np.clip(ln * (lq - lm**2), 0, None).sum()) / nl)
    else:
        for k in ("realized_mae", "estimated_on_labelled", "gap", "gap_se"):
            out[k] = np.nan
    return out


def _mae_drift(row: dict[str, Any]) -> bool:
    """Realised errors contradict the error model (beyond chance and a relative margin)."""
    return bool(row["labelled"] >= MIN_CHECK_LABELS and
                abs(row["gap"]) > MIN_ERROR_GAP * row["estimated_on_labelled"] and
                abs(row["gap"]) > Z_CHECK * row["gap_se"])


def _mae_status(row: dict[str, Any]) -> str:
    if row["unknown_version_share"] > MAX_OUTSIDE_SHARE:
        return (f"cannot estimate: {row['unknown_version_share']:.1%} of the predictions from a "
                "model version the reference did not serve")
    if row["outside_share"] > MAX_OUTSIDE_SHARE:
        return (f"cannot estimate: {row['outside_share']:.1%} of the predictions or inputs "
                "outside the reference's range")
    if _mae_drift(row):
        return (f"cannot estimate: realized MAE {row['realized_mae']:.4g} vs estimated "
                f"{row['estimated_on_labelled']:.4g} on {int(row['labelled']):,} labels (the errors "
                "changed given the inputs)")
    return "estimated"


def _mae_checks(table: pd.DataFrame, overall: dict[str, Any]) -> pd.DataFrame:
    checks = []
    share = overall["outside_share"]
    checks.append(_check(
        "input support", share <= MAX_OUTSIDE_SHARE, share, MAX_OUTSIDE_SHARE,
        f"{share:.1%} of the incident's predictions (or the error model's features) outside "
        f"the reference's range" + (f" (more than {MAX_OUTSIDE_SHARE:.0%})"
                                    if share > MAX_OUTSIDE_SHARE else "")))
    share = overall["unknown_version_share"]
    checks.append(_check(
        "model version", share <= MAX_OUTSIDE_SHARE, share, MAX_OUTSIDE_SHARE,
        f"{share:.1%} of the incident's predictions come from a model version the reference "
        "did not serve" + (": the error model is another model's" if share > MAX_OUTSIDE_SHARE
                           else "")))
    drifted = table[table["status"].str.contains("errors changed")]
    pooled = _mae_drift(overall)
    ok = not pooled and drifted.empty
    if ok:
        detail = ("no labels in the incident window to check the estimate against"
                  if not overall["labelled"] else
                  f"realized MAE {overall['realized_mae']:.4g} vs estimated "
                  f"{overall['estimated_on_labelled']:.4g} on {int(overall['labelled']):,} labels")
    else:
        row = overall if pooled else drifted.iloc[0].to_dict()
        detail = (f"evidence of concept drift: realized MAE {row['realized_mae']:.4g} vs "
                  f"estimated {row['estimated_on_labelled']:.4g} on {int(row['labelled']):,} labels "
                  f"(beyond {Z_CHECK:g} standard errors and {MIN_ERROR_GAP:.0%}); the errors "
                  "given the inputs changed, so the error model does not hold")
    checks.append(_check("concept drift", ok, overall["gap"] if overall["labelled"] else np.nan,
                         MIN_ERROR_GAP, detail))
    return pd.DataFrame(checks)
