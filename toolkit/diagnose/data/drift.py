"""Per-feature input drift between a baseline and an incident window.

Recipes (``recipe="default"``)
------------------------------
Numeric features are binned on the baseline's quantiles (:data:`~._profile.LEVELS`, estimated
on a time-hashed sample of about 25k rows per window; counts are exact). From the counts:

* **PSI** on ``bins`` (10) baseline-quantile bins, right-closed, natural log, empty-bin
  proportions floored at 1e-4 (:func:`._stats.psi`);
* **KS** statistic ``D`` and its asymptotic p-value. With at most ``exact_rows`` rows in the two
  windows together, ``D`` is exact (sorted union in the engine); above that it is read off the
  ~100 fine bins and ``ks_upper`` bounds the error: ``ks <= D_true <= ks_upper``. Values the
  baseline quantiles repeat (a default, a discrete feature's values) have point bins of their
  own, which add nothing to the bound, and an integral feature over fewer than
  :data:`~._profile.INTEGER_BINS` integers gets one per integer: ``ks == ks_upper == D_true``;
* **Wasserstein-1**, normalised by the baseline standard deviation: exact below ``exact_rows``,
  else integrated from the fine bins with linear CDFs inside each bin (exact, too, for such an
  integral feature);
* **Jensen-Shannon distance** (base 2, in [0, 1]) on the PSI bins.

Categorical features use their categories as bins: PSI (same floor), chi-square test of the
2 x K contingency table, Jensen-Shannon distance, and the share of incident rows whose category
never occurred in the baseline. Categorical features with more than 500 distinct values are
reported with their unseen share only.

Verdicts account for testing many features: p-values are adjusted with Benjamini-Hochberg
across features, and a feature counts as drifted when its adjusted p-value is below ``alpha``
**and** its effect is at least moderate (PSI >= 0.1 or, for numeric features, normalised
Wasserstein >= 0.1), because with millions of rows every trivial shift is "significant".
PSI >= 0.25 is a major shift (high severity), 0.1-0.25 moderate (medium); a feature drifted on
Wasserstein alone (PSI below 0.1) is low severity.

``recipe="evidently"`` reproduces Evidently 0.7's ``DataDriftPreset`` defaults instead: with more
than 1,000 reference rows, normalised Wasserstein (threshold 0.1) for numeric features with more
than 5 distinct values and Jensen-Shannon (natural log, threshold 0.1) otherwise; with at most
1,000, KS p-value <= 0.05 (numeric) and chi-square goodness-of-fit p < 0.05 (categorical, or
two-proportion z for two categories); the dataset drifts when at least half the features do.
Its PSI (``psi_evidently``) is Evidently's ``get_binned_data``: a numeric feature whose
reference (baseline) has at most 20 distinct finite values gets one bin per distinct value of
both windows, any other Sturges equal-width bins on the pooled range (left-closed, as
``numpy.histogram``); then Evidently's empty-bin fill (:func:`._stats.psi_evidently`). Every
recipe, with its source, is in ``docs/recipes.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import ibis
import numpy as np
import pandas as pd

from toolkit._validation import check_option, check_windows
from toolkit.diagnose import _stats as st
from toolkit.diagnose._base import DiagnosticResult, Finding, NotAssessed
from toolkit.diagnose._case import CaseView, case_view, within
from toolkit.diagnose._engine import Recorder, float_array, histogram_at
from toolkit.diagnose._engines import CaseSource
from toolkit.diagnose._onset import change_start, coarse_onset, refine_onset, rollout_began
from toolkit.diagnose._profile import LEVELS, FeatureProfile, feature_profile
from toolkit.types import Window

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["feature_drift", "FeatureDriftResult", "ID"]

ID = "data.drift"
MODERATE_PSI = 0.10
MAJOR_PSI = 0.25
MODERATE_WASSERSTEIN = 0.10
#: Evidently bins a numeric column per distinct value when its reference has at most this many.
EVIDENTLY_PER_VALUE = 20
_DECILES = np.linspace(0.1, 0.9, 9)


@dataclass(frozen=True, kw_only=True, repr=False)
class FeatureDriftResult(DiagnosticResult):
    """Drift of every feature, with verdicts and a timeline.

    Attributes
    ----------
    table
        One row per feature: ``feature``, ``kind``, ``n_baseline``, ``n_incident``, ``psi``,
        ``ks``, ``ks_upper``, ``ks_exact``, ``wasserstein`` (normalised), ``js``, ``chi2``,
        ``pvalue``, ``pvalue_adjusted``, ``unseen_share``, ``drifted``, ``severity`` (and for
        ``recipe="evidently"`` also ``evidently_test``, ``evidently_statistic``,
        ``evidently_drifted``, ``psi_evidently``).
    timeline
        PSI of every feature per time bucket against the baseline distribution:
        ``bucket_start``, ``feature``, ``psi``, ``n``.
    """

    id = ID
    title = "Feature drift"

    recipe: str = "default"
    against: str = "baseline"
    alpha: float = 0.05
    drift_share: float = float("nan")
    dataset_drift: bool = False
    timeline: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    @property
    def drifted(self) -> list[str]:
        """Features judged drifted, most drifted first."""
        if self.table.empty:
            return []
        column = "evidently_drifted" if self.recipe == "evidently" else "drifted"
        rows = self.table[self.table[column]]
        return rows.sort_values("psi", ascending=False)["feature"].tolist()

    def headline(self) -> dict[str, Any]:
        if self.table.empty:
            return {}
        top = self.table.sort_values("psi", ascending=False).iloc[0]
        return {
            "features": len(self.table),
            "drifted": len(self.drifted),
            "drift share": self.drift_share,
            "top feature": top["feature"],
            "top PSI": float(top["psi"]),
        }

    def findings(self) -> list[Finding]:
        if self.table.empty:
            return []
        drifted = self.table[self.table["drifted"]].sort_values("psi", ascending=False)
        if drifted.empty:
            return []
        top = drifted.iloc[0]
        severity = "high" if top["psi"] >= MAJOR_PSI else (
            "medium" if top["psi"] >= MODERATE_PSI else "low")
        onset = self.refined_onsets.get("data.feature_drift") or coarse_onset(
            self.timeline[self.timeline["feature"] == top["feature"]], "psi",
            after=self.baseline.end, weights="n", direction=1)
        features = {
            row.feature: {"psi": round(float(row.psi), 4),
                          "wasserstein": _round(row.wasserstein),
                          "severity": row.severity}
            for row in drifted.itertuples()
        }
        return [Finding(
            id="data.feature_drift",
            pathway="data",
            severity=severity,
            statistic=float(top["psi"]),
            threshold=MODERATE_PSI,
            summary=(
                f"{len(drifted)} of {len(self.table)} features drifted; largest: "
                f"{top['feature']} (PSI {top['psi']:.2f})."
            ),
            evidence={"features": features, "drift_share": self.drift_share,
                      "n_features": len(self.table)},
            onset=onset,
            diagnostic=self.id,
        )]

    def onsets(self, *, threshold: float = MODERATE_PSI) -> dict[str, datetime | None]:
        """First bucket from which each feature's PSI stays above ``threshold``.

        "Stays" means at least two thirds of the buckets from there to the end of the incident.
        """
        out: dict[str, datetime | None] = {}
        if self.timeline.empty:
            return out
        for feature, part in self.timeline.groupby("feature"):
            part = part[part["bucket_start"] >= pd.Timestamp(self.baseline.end)]
            part = part.sort_values("bucket_start")
            above = (part["psi"] >= threshold).to_numpy()
            onset = None
            for k in range(len(above)):
                if above[k] and above[k:].mean() >= 2 / 3:
                    onset = part["bucket_start"].iloc[k].to_pydatetime()
                    break
            out[str(feature)] = onset
        return out

    def signals(self) -> pd.DataFrame:
        if self.timeline.empty:
            return super().signals()
        worst = self.timeline.groupby("bucket_start", as_index=False)["psi"].max()
        worst["signal"] = "drift.max_psi"
        return worst.rename(columns={"psi": "value"})[["bucket_start", "signal", "value"]]

    def plot(self, ax: Axes | None = None, *, kind: str = "heatmap", top: int = 12,
             **kwargs: Any) -> Axes:
        """Drift heatmap over time (``kind="heatmap"``) or PSI per feature (``"bar"``)."""
        from toolkit.plotting import axes

        ax = axes(ax, figsize=(10, 4.5))
        if self.table.empty:
            return super().plot(ax)
        import seaborn as sns

        order = self.table.sort_values("psi", ascending=False)["feature"].head(top).tolist()
        if kind == "bar" or self.timeline.empty:
            data = self.table.set_index("feature").loc[order].reset_index()
            sns.barplot(data=data, y="feature", x="psi", hue="drifted", dodge=False, ax=ax,
                        palette={True: "#C44E52", False: "#8C8C8C"})
            ax.axvline(MODERATE_PSI, ls="--", lw=1, color="#CCB974")
            ax.axvline(MAJOR_PSI, ls="--", lw=1, color="#C44E52")
            ax.set_title("PSI per feature (baseline vs incident)")
            return ax
        grid = self.timeline[self.timeline["feature"].isin(order)].pivot_table(
            index="feature", columns="bucket_start", values="psi", aggfunc="max"
        ).reindex(order)
        grid.columns = [pd.Timestamp(c).strftime("%m-%d %H:%M") for c in grid.columns]
        sns.heatmap(grid, ax=ax, cmap="rocket_r", vmin=0, vmax=max(0.5, float(np.nanmax(
            grid.to_numpy())) if grid.size else 0.5), cbar_kws={"label": "PSI vs baseline"},
            xticklabels=max(1, grid.shape[1] // 12))
        ax.set_xlabel("time bucket (UTC)")
        ax.set_ylabel("")
        ax.set_title("Feature drift over time (PSI per bucket)")
        return ax


def feature_drift(
    con: CaseSource,
    baseline: Window | str,
    incident: Window | str,
    /,
    *,
    features: list[str] | None = None,
    against: str = "baseline",
    recipe: str = "default",
    bins: int = 10,
    alpha: float = 0.05,
    exact_rows: int = 200_000,
    bucket: timedelta | None = None,
    case: CaseView | None = None,
) -> FeatureDriftResult:
    """Measure how far each input feature moved between the baseline and incident windows.

    Parameters
    ----------
    con
        Case connection.
    baseline, incident
        The windows (``Window``, ``"START/END"`` or ``(start, end)``); they must not overlap.
    features
        Features to test (default: every feature in the catalog present in ``requests``).
    against
        ``"baseline"`` compares with the baseline window of ``requests``; ``"reference"`` with
        the ``reference`` table (training sample).
    recipe
        ``"default"`` or ``"evidently"`` (see the module documentation).
    bins
        Number of baseline-quantile bins for PSI (10, 20, 25, 50 or 100, so they line up with
        the profile's percentile grid).
    alpha
        False-discovery rate for the verdicts.
    exact_rows
        Up to this many rows in the two windows, KS and Wasserstein are computed exactly.
    bucket
        Timeline bucket width (default: about 240 buckets over the span).
    case
        A :class:`~toolkit.diagnose._case.CaseView` to share between diagnostics.

    Returns
    -------
    FeatureDriftResult

    Examples
    --------
    >>> import numpy as np, pandas as pd, toolkit as tk
    >>> rng = np.random.default_rng(0)
    >>> con = tk.connect()
    >>> ts = pd.date_range("2026-03-01", periods=4000, freq="min", tz="UTC")
    >>> x = np.r_[rng.normal(0, 1, 2000), rng.normal(1.5, 1, 2000)]
    >>> _ = tk.load(con, pd.DataFrame({"request_id": range(4000), "ts": ts, "x": x,
    ...                                "noise": rng.normal(0, 1, 4000)}), table="requests")
    >>> result = feature_drift(con, ("2026-03-01", ts[2000]), (ts[2000], ts[-1]))
    >>> result.drifted
    ['x']
    """
    baseline, incident = check_windows(baseline, incident)
    check_option("against", against, ("baseline", "reference"))
    check_option("recipe", recipe, ("default", "evidently"))
    check_option("bins", bins, (10, 20, 25, 50, 100))
    case = case or case_view(con)
    empty = dict(baseline=baseline, incident=incident, recipe=recipe, against=against,
                 alpha=alpha)
    if not case.has("requests"):
        return FeatureDriftResult(**empty, not_assessed=(
            NotAssessed(ID, "the case has no requests"),))
    names = features if features is not None else case.feature_names()
    if not names:
        return FeatureDriftResult(**empty, not_assessed=(
            NotAssessed(ID, "no feature columns in requests (see the features catalog)"),))
    notes = []
    if against == "reference" and not case.has("reference"):
        notes.append(NotAssessed(f"{ID}:reference", "no reference table; compared with the "
                                 "baseline window instead"))
        against = "baseline"
    if against == "reference":
        missing = [n for n in names if n not in case.columns["reference"]]
        if missing:
            notes.append(NotAssessed(f"{ID}:reference", "reference lacks " + ", ".join(missing)))
            names = [n for n in names if n not in missing]
    profile = feature_profile(case, baseline, incident, against=against, features=names,
                              bucket=bucket)
    n_base = profile.stats[profile.stats["window"] == "baseline"]["rows"].max()
    n_inc = profile.stats[profile.stats["window"] == "incident"]["rows"].max()
    if not n_base or not n_inc:
        which = "baseline" if not n_base else "incident"
        return FeatureDriftResult(**empty, not_assessed=(
            *notes, NotAssessed(ID, f"no requests in the {which} window")), sql=profile.sql)

    record = Recorder()
    rows = []
    for feature in profile.numeric:
        rows.append(_numeric_row(case, profile, feature, bins, exact_rows, record, recipe))
    for feature in profile.categorical:
        rows.append(_categorical_row(profile, feature, recipe))
    if recipe == "evidently":
        psis = _evidently_psis(case, profile, record)
        for row in rows:
            if row["kind"] == "numeric":
                row["psi_evidently"] = psis.get(row["feature"], np.nan)
    table = pd.DataFrame(rows)
    table["pvalue_adjusted"] = st.benjamini_hochberg(table["pvalue"].to_numpy())
    effect = (table["psi"] >= MODERATE_PSI) | (table["wasserstein"].fillna(0) >=
                                               MODERATE_WASSERSTEIN)
    table["drifted"] = (table["pvalue_adjusted"] < alpha) & effect
    table["severity"] = np.select(
        [table["drifted"] & (table["psi"] >= MAJOR_PSI),
         table["drifted"] & (table["psi"] >= MODERATE_PSI), table["drifted"]],
        ["high", "medium", "low"], default="none",
    )
    drift_share = float(table["drifted"].mean())
    dataset_drift = drift_share >= 0.5
    if recipe == "evidently":
        drift_share = float(table["evidently_drifted"].mean())
        dataset_drift = drift_share >= 0.5
    timeline = _timeline(profile, bins)
    result = FeatureDriftResult(
        **empty, table=table, timeline=timeline, drift_share=drift_share,
        dataset_drift=dataset_drift, sql=profile.sql + record.sql, not_assessed=tuple(notes),
    )
    found = result.findings()
    if found:
        onset = _onset(case, profile, record, result)
        if onset is not None:
            result = replace(result, refined_onsets={"data.feature_drift": onset},
                             sql=profile.sql + record.sql)
    return result


#: A drift whose fitted ramp takes longer than this many buckets is gradual: it is dated where
#: the ramp leaves the baseline level, not refined as a step on raw rows.
GRADUAL_BUCKETS = 2.0


def _onset(case: CaseView, profile: FeatureProfile, record: Recorder,
           result: FeatureDriftResult) -> datetime | None:
    """When the most drifted feature started to move.

    A step or a ramp is fitted (:func:`~toolkit.diagnose._onset.change_start`) on the feature's
    shift per
    time bucket (:func:`_shift_timeline`: a mean, linear in the share of moved rows, where PSI
    grows with the square of a small shift and dates a slow drift near its peak), weighted by
    each bucket's rows (a sparsely logged case has buckets of a few rows: they still count, by
    their size). A ramp over more than :data:`GRADUAL_BUCKETS` buckets is dated at its start; a
    step is refined on raw rows around it (:func:`_refine`), where a shift rolled out over
    10-60 minutes is dated at its start too. ``None`` when no bucket series
    can be fitted (the finding then falls back on the PSI timeline).
    """
    top = result.table[result.table["drifted"]].sort_values("psi", ascending=False).iloc[0]
    shift = _shift_timeline(profile, str(top["feature"]))
    if shift.empty:
        return None
    base = shift["window"].isin(["baseline", "baseline-span"])  # the latter: against reference
    inc = shift["window"] == "incident"
    mean = [np.average(shift.loc[m, "shift"], weights=shift.loc[m, "n"]) if m.any()
            else np.nan for m in (base, inc)]
    direction = 0 if np.isnan(mean).any() else int(np.sign(mean[1] - mean[0]))
    fitted = change_start(shift[base | inc], "shift", width=profile.bucket,
                          after=result.baseline.end, weights="n", direction=direction,
                          gradual_buckets=GRADUAL_BUCKETS)
    if fitted is None:
        return None
    start, gradual = fitted
    if gradual:
        return start
    return _refine(case, profile, record, result, start)


def _shift_timeline(profile: FeatureProfile, feature: str) -> pd.DataFrame:
    """Per time bucket and window, how far ``feature`` sits on the incident's side of the
    baseline: for a numeric feature the mean over its values of the baseline's CDF (the
    probability integral transform: 0.5 on average without drift, linear in the share of
    moved rows), for a categorical one the share of rows in the categories whose share rose in
    the incident. Columns ``bucket_start``, ``window``, ``shift``, ``n`` (rows with a value,
    every bucket with at least one).
    """
    groups = profile.groups
    timed = groups["bucket_start"].notna().to_numpy()
    base, inc = profile.mask("baseline"), profile.mask("incident")
    if feature in profile.numeric_hist:
        counts = np.asarray(profile.numeric_hist[feature], dtype=float)
        ref = counts[base].sum(axis=0)
        if ref.sum() <= 0:
            return pd.DataFrame()
        p = ref / ref.sum()
        score = np.cumsum(p) - p / 2  # mid-CDF of each bin under the baseline
    else:
        counts = profile.categorical_hist[feature].to_numpy(float)
        b, i = counts[base].sum(axis=0), counts[inc].sum(axis=0)
        if b.sum() <= 0 or i.sum() <= 0:
            return pd.DataFrame()
        score = (i / i.sum() > b / b.sum()).astype(float)
    n = counts.sum(axis=1)
    frame = pd.DataFrame({"bucket_start": groups["bucket_start"], "window": groups["window"],
                          "moved": counts @ score, "n": n})[timed & (n > 0)]
    frame = frame.groupby(["bucket_start", "window"], as_index=False)[["moved", "n"]].sum()
    frame["shift"] = frame["moved"] / frame["n"]
    frame["bucket_start"] = pd.to_datetime(frame["bucket_start"], utc=True)
    return frame.drop(columns="moved").sort_values("bucket_start", ignore_index=True)


def _refine(case: CaseView, profile: FeatureProfile, record: Recorder,
            result: FeatureDriftResult, coarse: datetime) -> datetime:
    """Onset of the most drifted feature on raw rows: the share of values on the incident's
    side of the baseline (above the baseline median for numeric features, in the category whose
    share moved most for categorical ones). The step is placed midway between the last row
    before it and the first after it, and a ramp that fits the rows better than the step dates
    the change at its start (:func:`~toolkit.diagnose._onset.rollout_began`)."""
    top = result.table[result.table["drifted"]].sort_values("psi", ascending=False).iloc[0]
    feature = top["feature"]
    requests = case.table("requests")
    if top["kind"] == "numeric":
        quantiles = profile.quantiles.get((feature, "baseline"))
        if quantiles is None:
            return coarse
        median = float(np.interp(0.5, np.asarray(LEVELS), quantiles))
        indicator = (requests[feature].cast("float64") > median).cast("float64")
    else:
        categories, b, i = profile.categorical_counts(feature)
        if not categories:
            return coarse
        change = i / max(i.sum(), 1) - b / max(b.sum(), 1)
        category = categories[int(np.argmax(np.abs(change)))]
        indicator = (requests[feature].cast("string") == str(category)).cast("float64")
    indicator = indicator.fill_null(0.0)
    limits = Window(profile.baseline.start, profile.incident.end)
    onset = refine_onset(record, requests, indicator, coarse, around=3 * profile.bucket,
                         limits=limits, midway=True)
    return rollout_began(record, requests, indicator, onset, limits=limits) or onset


def _numeric_row(case: CaseView, profile: FeatureProfile, feature: str, bins: int,
                 exact_rows: int, record: Recorder, recipe: str) -> dict[str, Any]:
    uppers, b, i = profile.numeric_counts(feature)
    nb, ni = int(b.sum()), int(i.sum())
    row: dict[str, Any] = {"feature": feature, "kind": "numeric", "n_baseline": nb,
                           "n_incident": ni}
    if nb == 0 or ni == 0:
        return row | {"psi": np.nan, "ks": np.nan, "ks_upper": np.nan, "ks_exact": False,
                      "wasserstein": np.nan, "js": np.nan, "chi2": np.nan, "pvalue": np.nan,
                      "unseen_share": np.nan}
    coarse_b, coarse_i = _coarse(profile, feature, uppers, b, i, bins)
    psi = st.psi(coarse_b, coarse_i)
    std = profile.stat(feature, "baseline", "std")
    lo = min(profile.stat(feature, "baseline", "min"), profile.stat(feature, "incident", "min"))
    hi = max(profile.stat(feature, "baseline", "max"), profile.stat(feature, "incident", "max"))
    if nb + ni <= exact_rows:
        ks, w1 = _exact_ks_w1(case, profile, feature, record)
        ks_upper, exact = ks, True
    else:
        ks, ks_upper = st.ks_from_counts(b, i, profile.point_bins.get(feature))
        bounds = np.concatenate([[lo], uppers[:-1], [max(hi, uppers[-2])]])
        w1 = st.wasserstein_from_histogram(bounds, b, i)
        exact = False
    norm = w1 / max(std, 1e-3) if not math.isnan(std) else np.nan
    row |= {
        "psi": psi, "ks": ks, "ks_upper": ks_upper, "ks_exact": exact,
        "wasserstein": norm, "wasserstein_raw": w1, "js": st.js_distance(coarse_b, coarse_i),
        "chi2": np.nan, "pvalue": st.ks_pvalue(ks, nb, ni), "unseen_share": np.nan,
    }
    if recipe == "evidently":
        row |= _evidently_numeric(case, profile, feature, b, i, row, record)
    return row


def _coarse(profile: FeatureProfile, feature: str, uppers: np.ndarray, b: np.ndarray,
            i: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge fine bins into ``bins`` baseline-quantile bins (their edges are fine edges)."""
    merge = _coarse_map(profile, feature, uppers, bins)
    if merge is None:
        return b, i
    return b @ merge, i @ merge


def _coarse_map(profile: FeatureProfile, feature: str, uppers: np.ndarray,
                bins: int) -> np.ndarray | None:
    """A (fine bins, coarse bins) 0/1 matrix: counts @ map merges fine counts into the coarse
    bins (None without baseline quantiles)."""
    quantiles = profile.quantiles.get((feature, "baseline"))
    if quantiles is None:
        return None
    levels = np.linspace(0, 1, bins + 1)[1:-1]
    cut = np.unique(np.interp(levels, np.asarray(LEVELS), quantiles))
    # each cut is one of the fine edges as the engine binned them (rounded to its integer grid
    # by less than 2**-60 of the largest edge, see _binning; interpolating at a level moves it
    # by a few ulps either way): merge at the nearest fine edge
    # (not at an atom's partner edge, which lies within one grid step below it)
    points = profile.point_bins.get(feature, np.zeros(len(uppers), dtype=bool))
    partner = points[1:]  # fine edge k is the lower edge of bin k + 1
    cut = np.unique(_nearest(uppers[:-1][~partner], cut))
    index = np.searchsorted(cut, uppers, side="left")
    return np.eye(len(cut) + 1)[index]


def _nearest(sorted_values: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """The element of ``sorted_values`` (finite, non-empty) nearest to each target."""
    right = np.clip(np.searchsorted(sorted_values, targets), 0, len(sorted_values) - 1)
    left = np.clip(right - 1, 0, len(sorted_values) - 1)
    closer_left = np.abs(targets - sorted_values[left]) <= np.abs(sorted_values[right] - targets)
    return np.where(closer_left, sorted_values[left], sorted_values[right])


def _exact_ks_w1(case: CaseView, profile: FeatureProfile, feature: str,
                 record: Recorder) -> tuple[float, float]:
    """Exact two-sample KS and Wasserstein-1 from the sorted union, in the engine."""
    requests = case.table("requests")
    col = requests[feature].cast("float64")
    incident = requests.filter(within(requests.ts, profile.incident) & col.notnull()).select(
        x=col, b=ibis.literal(0), i=ibis.literal(1))
    if profile.against == "reference":
        ref = case.table("reference")
        rcol = ref[feature].cast("float64")
        base = ref.filter(rcol.notnull()).select(x=rcol, b=ibis.literal(1), i=ibis.literal(0))
    else:
        base = requests.filter(within(requests.ts, profile.baseline) & col.notnull()).select(
            x=col, b=ibis.literal(1), i=ibis.literal(0))
    union = base.union(incident)
    per_value = union.group_by("x").aggregate(nb=union.b.sum(), ni=union.i.sum())
    totals = per_value.aggregate(tb=per_value.nb.sum(), ti=per_value.ni.sum())
    joined = per_value.cross_join(totals)
    running = ibis.cumulative_window(order_by=joined.x)
    ordered = ibis.window(order_by=joined.x)
    steps = joined.mutate(
        fb=joined.nb.sum().over(running) / joined.tb,
        fi=joined.ni.sum().over(running) / joined.ti,
        gap=joined.x.lead().over(ordered) - joined.x,
    )
    diff = (steps.fb - steps.fi).abs()
    expr = steps.aggregate(ks=diff.max(), w1=(diff * steps.gap.fill_null(0)).sum())
    result = record(expr).iloc[0]
    return float(result["ks"]), float(result["w1"])


def _categorical_row(profile: FeatureProfile, feature: str, recipe: str) -> dict[str, Any]:
    row: dict[str, Any] = {"feature": feature, "kind": "categorical"}
    if feature in profile.high_cardinality:
        return row | {
            "n_baseline": int(profile.stat(feature, "baseline", "nonnull")),
            "n_incident": int(profile.stat(feature, "incident", "nonnull")),
            "psi": np.nan, "ks": np.nan, "ks_upper": np.nan, "ks_exact": False,
            "wasserstein": np.nan, "js": np.nan, "chi2": np.nan, "pvalue": np.nan,
            "unseen_share": np.nan,
        }
    categories, b, i = profile.categorical_counts(feature)
    nb, ni = int(b.sum()), int(i.sum())
    row |= {"n_baseline": nb, "n_incident": ni}
    if nb == 0 or ni == 0:
        return row | {"psi": np.nan, "ks": np.nan, "ks_upper": np.nan, "ks_exact": False,
                      "wasserstein": np.nan, "js": np.nan, "chi2": np.nan, "pvalue": np.nan,
                      "unseen_share": np.nan}
    chi2, pvalue, _ = st.chi2_contingency_test(b, i)
    unseen = float(i[b == 0].sum() / ni)
    row |= {
        "psi": st.psi(b, i), "ks": np.nan, "ks_upper": np.nan, "ks_exact": False,
        "wasserstein": np.nan, "js": st.js_distance(b, i), "chi2": chi2, "pvalue": pvalue,
        "unseen_share": unseen, "unseen": [c for c, cb, ci in zip(categories, b, i, strict=True)
                                           if cb == 0 and ci > 0][:20],
    }
    if recipe == "evidently":
        row |= _evidently_categorical(b, i, nb)
    return row


def _evidently_numeric(case: CaseView, profile: FeatureProfile, feature: str, b: np.ndarray,
                       i: np.ndarray, row: dict[str, Any], record: Recorder) -> dict[str, Any]:
    """Evidently 0.7's default test for a numeric column (its PSI: :func:`_evidently_psis`)."""
    nb = int(b.sum())
    few = _few_values(case, profile, feature, b, i, record)
    if few is not None:
        out = _evidently_categorical(*few, nb)
    elif nb <= 1000:
        out = {"evidently_test": "ks", "evidently_statistic": row["pvalue"],
               "evidently_drifted": bool(row["pvalue"] <= 0.05)}
    else:
        out = {"evidently_test": "wasserstein", "evidently_statistic": row["wasserstein"],
               "evidently_drifted": bool(row["wasserstein"] >= 0.1)}
    return out


def _window_tables(case: CaseView, profile: FeatureProfile) -> dict[str, ibis.Table]:
    """The rows of the baseline (or the reference table) and of the incident."""
    requests = case.table("requests")
    return {"baseline": (case.table("reference") if profile.against == "reference" else
                         requests.filter(within(requests.ts, profile.baseline))),
            "incident": requests.filter(within(requests.ts, profile.incident))}


def _finite(rows: ibis.Table, feature: str) -> ibis.FloatingValue:
    """The feature as DOUBLE, NULL where it is NaN or infinite (Evidently drops those)."""
    v = rows[feature].cast("float64")
    return ibis.ifelse(v.isnan() | v.isinf(), ibis.null("float64"), v)


def _evidently_psis(case: CaseView, profile: FeatureProfile, record: Recorder
                    ) -> dict[str, float]:
    """Evidently 0.7's PSI of every numeric feature (``get_binned_data``).

    With at most :data:`EVIDENTLY_PER_VALUE` distinct finite values in the reference (here the
    baseline, or the reference table), one bin per distinct value of both windows
    (:func:`_per_value_psi`); else Sturges equal-width bins on the pooled range, left-closed as
    ``numpy.histogram`` (the last bin closed). The Sturges counts of every feature come from
    one scan per window.
    """
    tables = _window_tables(case, profile)
    out: dict[str, float] = {}
    sturges: dict[str, np.ndarray] = {}
    for feature in profile.numeric:
        _, b, i = profile.numeric_counts(feature)
        if not b.sum() or not i.sum():
            out[feature] = float("nan")
            continue
        # each occupied fine bin holds a distinct value (NaN and infinities can only occupy
        # the two outer bins): more than 20 + 2 of them settle it without a query
        if int((b > 0).sum()) <= EVIDENTLY_PER_VALUE + 2:
            base = tables["baseline"].select(v=_finite(tables["baseline"], feature))
            base = base.filter(base.v.notnull())
            reference = record(base.group_by("v").aggregate(n=base.count()).limit(
                EVIDENTLY_PER_VALUE + 1))
            if len(reference) <= EVIDENTLY_PER_VALUE:
                current = tables["incident"].select(v=_finite(tables["incident"], feature))
                out[feature] = _per_value_psi(record, reference,
                                              current.filter(current.v.notnull()))
                continue
        lo = min(profile.stat(feature, "baseline", "min"),
                 profile.stat(feature, "incident", "min"))
        hi = max(profile.stat(feature, "baseline", "max"),
                 profile.stat(feature, "incident", "max"))
        sturges[feature] = np.array([lo, hi, b.sum() + i.sum()])
    # the profile's extremes and counts include NaN and infinities (a NaN or infinite extreme
    # says there are some): count the finite values of those features, one scan per window
    unsure = [f for f, (lo, hi, _) in sturges.items() if not (math.isfinite(lo) and
                                                              math.isfinite(hi))]
    if unsure:
        ranges = []
        for rows in tables.values():
            aggs = {}
            for k, f in enumerate(unsure):
                v = _finite(rows, f)
                aggs |= {f"lo{k}": v.min(), f"hi{k}": v.max(), f"n{k}": v.count()}
            ranges.append(record(rows.aggregate(**aggs)).iloc[0])
        for k, f in enumerate(unsure):
            lows = [r[f"lo{k}"] for r in ranges if pd.notna(r[f"lo{k}"])]
            highs = [r[f"hi{k}"] for r in ranges if pd.notna(r[f"hi{k}"])]
            sturges[f] = np.array([min(lows, default=np.nan), max(highs, default=np.nan),
                                   sum(int(r[f"n{k}"]) for r in ranges)])
    sturges = {f: _sturges_edges(lo, hi, int(n))[1:-1] for f, (lo, hi, n) in sturges.items()}
    if not sturges:
        return out
    counts = {}
    for window, rows in tables.items():
        # DuckDB's histogram is right-closed, (b[k-1], b[k]]: binning -x on the negated edges
        # gives numpy's left-closed [e[k], e[k+1]) (values on an edge go up, the top bin
        # includes the maximum); NULL (and so NaN and infinities) is not counted
        aggs = {f"h{k}": histogram_at(-_finite(rows, f), float_array(-e[::-1]))
                for k, (f, e) in enumerate(sturges.items()) if e.size}
        aggs["n"] = rows.count()
        counts[window] = record(rows.aggregate(**aggs)).iloc[0]
    for k, (feature, edges) in enumerate(sturges.items()):
        per_window = []
        for window in ("baseline", "incident"):
            if not edges.size:  # a constant feature: one bin
                per_window.append(np.array([1.0]))
                continue
            mapping = counts[window][f"h{k}"] or {}
            ordered = [mapping.get(float(e), 0) for e in -edges[::-1]] + [
                mapping.get(float("inf"), 0)]
            per_window.append(np.array(ordered[::-1], dtype=float))
        out[feature] = st.psi_evidently(per_window[0], per_window[1])
    return out


def _sturges_edges(lo: float, hi: float, n: int) -> np.ndarray:
    """``numpy.histogram_bin_edges(x, bins="sturges")`` from the range and size of ``x``."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return np.array([0.0, 1.0])
    if lo == hi:
        return np.array([lo - 0.5, hi + 0.5])
    width = (hi - lo) / (math.log2(max(n, 1)) + 1.0)
    bins = max(int(math.ceil((hi - lo) / width)), 1)
    return np.linspace(lo, hi, bins + 1)


def _per_value_psi(record: Recorder, reference: pd.DataFrame, incident: ibis.Table) -> float:
    """Evidently's PSI with one bin per distinct value, ``reference`` holding the baseline's
    counts ``n`` per value ``v``.

    The incident's values outside the reference each get a bin too, however many there are:
    one query sums their terms in the engine. With ``K`` such values of counts ``c_k`` out of
    ``N`` incident values, ``p_k = c_k / N`` and the reference's fill ``r``, their share of the
    PSI is ``sum (r - p_k) ln(r / p_k) = K r ln r - r sum ln p_k - ln r sum p_k + sum p_k ln
    p_k``, where ``sum ln p_k = sum ln c_k - K ln N`` and ``sum p_k ln p_k = (sum c_k ln c_k -
    S ln N) / N`` with ``S = sum c_k``.
    """
    known = reference["v"].to_numpy(float)
    ref = reference["n"].to_numpy(float)
    per_value = incident.group_by("v").aggregate(c=incident.count())
    seen = float_array(known).contains(per_value.v) if known.size else ibis.literal(False)
    c = per_value.c.cast("float64")
    keyed = per_value.mutate(key=ibis.ifelse(seen, per_value.v, ibis.null("float64")), c=c)
    rows = record(keyed.group_by("key").aggregate(
        k=keyed.count(), s=keyed.c.sum(), lnc=keyed.c.ln().sum(),
        clnc=(keyed.c * keyed.c.ln()).sum(), cmin=keyed.c.min()))
    new = rows[rows["key"].isna()]
    matched = dict(zip(rows.loc[rows["key"].notna(), "key"].astype(float),
                       rows.loc[rows["key"].notna(), "s"].astype(float), strict=True))
    cur = np.array([matched.get(v, 0.0) for v in known])
    k = float(new["k"].sum()) if len(new) else 0.0
    s_new = float(new["s"].sum()) if len(new) else 0.0
    total = cur.sum() + s_new
    if not ref.sum() or not total:
        return float("nan")
    r = ref / ref.sum()
    p = cur / total
    nonzero = [*p[p > 0], *([float(new["cmin"].min()) / total] if k else [])]
    p = np.where(p > 0, p, _fill(min(nonzero)))
    psi = float(np.sum((r - p) * np.log(r / p)))
    if k:
        fill = _fill(float(r.min()))
        log_n = math.log(total)
        sum_log_p = float(new["lnc"].sum()) - k * log_n
        sum_p = s_new / total
        sum_p_log_p = (float(new["clnc"].sum()) - s_new * log_n) / total
        psi += k * fill * math.log(fill) - fill * sum_log_p - math.log(fill) * sum_p + sum_p_log_p
    return psi


def _fill(smallest: float) -> float:
    """Evidently's empty-bin proportion given the smallest non-zero one."""
    return smallest / 1e6 if smallest <= 1e-4 else 1e-4


def _few_values(case: CaseView, profile: FeatureProfile, feature: str, b: np.ndarray,
                i: np.ndarray, record: Recorder) -> tuple[np.ndarray, np.ndarray] | None:
    """Counts per value in the baseline and the incident when the feature takes at most five
    distinct values over both windows (Evidently then tests it like a categorical column),
    else None.

    Each non-empty fine bin holds at least one distinct value and the bins are disjoint, so
    more than five occupied bins (besides the two outer ones, where NaN and infinities land,
    which Evidently drops) settle it without a query; otherwise one query counts the finite
    values of each window.
    """
    if int(((b + i) > 0).sum()) > 5 + 2:
        return None
    parts = _window_tables(case, profile)
    values = ibis.union(*[
        t.select(window=ibis.literal(w), v=_finite(t, feature)) for w, t in parts.items()])
    values = values.filter(values.v.notnull())
    counts = record(values.group_by("window", "v").aggregate(n=values.count()))
    table = counts.pivot_table(index="v", columns="window", values="n", aggfunc="sum",
                               fill_value=0).reindex(columns=["baseline", "incident"],
                                                     fill_value=0)
    if len(table) > 5:
        return None
    return table["baseline"].to_numpy(float), table["incident"].to_numpy(float)


def _evidently_categorical(b: np.ndarray, i: np.ndarray, nb: int) -> dict[str, Any]:
    categories = int(((b + i) > 0).sum())
    if nb <= 1000:
        if categories > 2:
            p = st.chi2_goodness_of_fit(b, i)
            return {"evidently_test": "chisquare", "evidently_statistic": p,
                    "evidently_drifted": bool(p < 0.05)}
        keep = (b + i) > 0
        _, p = st.two_proportion_z(b[keep][0], b.sum(), i[keep][0], i.sum())
        return {"evidently_test": "z", "evidently_statistic": p,
                "evidently_drifted": bool(p < 0.05)}
    js = st.js_distance(b, i, base=None)
    return {"evidently_test": "jensenshannon", "evidently_statistic": js,
            "evidently_drifted": bool(js >= 0.1)}


def _timeline(profile: FeatureProfile, bins: int) -> pd.DataFrame:
    """PSI of each feature in every time bucket against the baseline distribution.

    Buckets with fewer than 30 values are left out (their PSI is mostly noise).
    """
    groups = profile.groups
    timed = groups["bucket_start"].notna().to_numpy()
    buckets, index = np.unique(groups["bucket_start"][timed].to_numpy(), return_inverse=True)
    baseline = profile.mask("baseline")
    # groups -> buckets as one matrix product (a bucket holds up to three groups)
    assign = np.zeros((len(buckets), int(timed.sum())))
    assign[index, np.arange(index.size)] = 1.0
    columns: dict[str, list[np.ndarray]] = {"bucket_start": [], "feature": [], "psi": [],
                                            "n": []}

    def add(feature: str, counts: np.ndarray) -> None:
        per_bucket = assign @ counts[timed]
        n = per_bucket.sum(axis=1)
        keep = n >= 30
        columns["bucket_start"].append(buckets[keep])
        columns["feature"].append(np.full(int(keep.sum()), feature, dtype=object))
        columns["psi"].append(st.psi_rows(counts[baseline].sum(axis=0), per_bucket[keep]))
        columns["n"].append(n[keep])

    for feature in profile.numeric:
        counts = profile.numeric_hist[feature]
        merge = _coarse_map(profile, feature, np.append(profile.edges[feature], np.inf), bins)
        add(feature, counts if merge is None else counts @ merge)  # no quantiles: fine bins
    for feature, counts in profile.categorical_hist.items():
        add(feature, counts.to_numpy())
    if not columns["feature"]:
        return pd.DataFrame(columns=["bucket_start", "feature", "psi", "n"])
    timeline = pd.DataFrame({k: np.concatenate(v) for k, v in columns.items()})
    timeline["bucket_start"] = pd.to_datetime(timeline["bucket_start"], utc=True)
    return timeline


def _round(value: float) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else \
        round(float(value), 4)
