"""Data quality of the model inputs: nulls, default values, schema, ranges, unseen categories.

Recipes, per feature and window, from the shared feature profile (exact counts):

* **null rate** = 1 - non-null / rows;
* **default-value rate**: numeric values equal to 0 or -1; categorical values that mean "no
  value" (empty, ``unknown``, ``none``, ``null``, ``nan``, ``n/a``, ``na``, ``default``,
  ``missing``, ``-1``; case-insensitive);
* **schema**: a feature with values in the baseline and none in the incident is *missing*; one
  with values only in the incident is *new*; a feature of the reference table absent from
  ``requests`` is *missing* for the whole case; requests failing with an ``error_type`` that
  names validation, schema or parsing are counted per window, and so are requests without an
  ``error_type`` rejected with HTTP 400 or 422 (a log that keeps the status code only);
* **out of range**: share of incident values outside the baseline's central 99% (below its 0.5%
  or above its 99.5% quantile; the baseline itself has 1% there by construction);
* **unseen categories**: share of incident values whose category never occurs in the baseline.

Findings: ``data.null_rate`` (null or default rate up by >= 5 points and >= 3x; high from 20
points), ``data.schema_change`` (missing or new features; high), ``data.out_of_range`` (>= 5%
outside the baseline's central 99%; high from 20%), ``data.unseen_categories`` (>= 2%; high
from 10%), ``data.validation_errors`` (requests failing validation: at least 20, 0.5% of the
incident's requests and 3x the baseline share; high from 2%).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import ibis
import numpy as np
import pandas as pd

from toolkit._validation import check_windows
from toolkit.diagnose._base import DiagnosticResult, Finding, NotAssessed
from toolkit.diagnose._case import CaseView, case_view, within
from toolkit.diagnose._engine import Recorder, bucket_expr, window_label
from toolkit.diagnose._engines import CaseSource
from toolkit.diagnose._onset import change_start, coarse_onset, refine_onset, rollout_began
from toolkit.diagnose._profile import DEFAULT_TOKENS, FeatureProfile, feature_profile
from toolkit.types import Window

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["data_quality", "DataQualityResult", "ID"]

ID = "data.quality"
_VALIDATION = ("validation", "schema", "parse", "invalid", "missing_feature", "type")
#: HTTP statuses that reject a request's input (counted when no error_type says otherwise).
_REJECTED = (400, 422)


@dataclass(frozen=True, kw_only=True, repr=False)
class DataQualityResult(DiagnosticResult):
    """Null, default, range and category checks per feature, and schema changes.

    Attributes
    ----------
    table
        One row per feature: ``feature``, ``kind``, ``status`` (``ok``, ``missing``, ``new``),
        ``null_rate_baseline``, ``null_rate_incident``, ``default_rate_baseline``,
        ``default_rate_incident``, ``out_of_range_incident``, ``unseen_share``.
    validation_errors
        Requests per window whose ``error_type`` names validation / schema / parsing.
    timeline
        Null rate per feature and time bucket (``null_rate``), and the share that is NULL or
        a categorical default token (``missing_rate``: what the null finding's onset reads).
    """

    id = ID
    title = "Input data quality"

    validation_errors: dict[str, int] = field(default_factory=dict)
    window_rows: dict[str, int] = field(default_factory=dict)
    missing_columns: tuple[str, ...] = ()
    timeline: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    def headline(self) -> dict[str, Any]:
        if self.table.empty:
            return {}
        t = self.table
        return {
            "features": len(t),
            "missing / new": f"{(t.status == 'missing').sum()} / {(t.status == 'new').sum()}",
            "worst null-rate rise": float((t.null_rate_incident - t.null_rate_baseline).max()),
            "validation errors (incident)": self.validation_errors.get("incident", 0),
        }

    def findings(self) -> list[Finding]:
        if self.table.empty:
            return []
        t = self.table
        out = []
        rise = np.maximum(t.null_rate_incident - t.null_rate_baseline,
                          t.default_rate_incident - t.default_rate_baseline)
        ratio = np.maximum(
            (t.null_rate_incident + 1e-3) / (t.null_rate_baseline + 1e-3),
            (t.default_rate_incident + 1e-3) / (t.default_rate_baseline + 1e-3),
        )
        t = t.assign(rise=rise, ratio=ratio)
        nulls = t[(t.rise >= 0.05) & (t.ratio >= 3) & (t.status == "ok")]
        if not nulls.empty:
            worst = nulls.sort_values("rise", ascending=False).iloc[0]
            out.append(Finding(
                id="data.null_rate", pathway="data",
                severity="high" if worst["rise"] >= 0.2 else "medium",
                statistic=float(worst["rise"]), threshold=0.05,
                summary=(f"null/default rate rose on {len(nulls)} feature(s); worst "
                         f"{worst['feature']} (+{worst['rise']:.0%})."),
                evidence={"features": {r.feature: {
                    "null_rate": [r.null_rate_baseline, r.null_rate_incident],
                    "default_rate": [r.default_rate_baseline, r.default_rate_incident]}
                    for r in nulls.itertuples()}},
                onset=self.refined_onsets.get("data.null_rate") or
                self._null_onset(list(nulls["feature"])), diagnostic=self.id,
            ))
        changed = t[t.status != "ok"]
        if not changed.empty or self.missing_columns:
            missing = sorted(set(changed.loc[changed.status == "missing", "feature"]) |
                             set(self.missing_columns))
            new = sorted(changed.loc[changed.status == "new", "feature"])
            out.append(Finding(
                id="data.schema_change", pathway="data", severity="high",
                statistic=float(len(missing) + len(new)), threshold=0.0,
                summary=f"schema changed: missing {missing or '-'}, new {new or '-'}.",
                evidence={"missing": missing, "new": new,
                          "validation_errors": self.validation_errors},
                onset=self.refined_onsets.get("data.schema_change") or
                self._null_onset(missing + new), diagnostic=self.id,
            ))
        ranged = t[(t.out_of_range_incident >= 0.05) & (t.status == "ok")]
        if not ranged.empty:
            worst = ranged.sort_values("out_of_range_incident", ascending=False).iloc[0]
            out.append(Finding(
                id="data.out_of_range", pathway="data",
                severity="high" if worst["out_of_range_incident"] >= 0.2 else "medium",
                statistic=float(worst["out_of_range_incident"]), threshold=0.05,
                summary=(f"{len(ranged)} feature(s) outside the baseline's central 99%; "
                         f"worst {worst['feature']} ({worst['out_of_range_incident']:.0%})."),
                evidence={"features": dict(zip(ranged.feature, ranged.out_of_range_incident,
                                               strict=True))},
                diagnostic=self.id,
            ))
        validation = self._validation_finding()
        if validation is not None:
            out.append(validation)
        unseen = t[t.unseen_share >= 0.02]
        if not unseen.empty:
            worst = unseen.sort_values("unseen_share", ascending=False).iloc[0]
            out.append(Finding(
                id="data.unseen_categories", pathway="data",
                severity="high" if worst["unseen_share"] >= 0.1 else "medium",
                statistic=float(worst["unseen_share"]), threshold=0.02,
                summary=(f"unseen categories in {len(unseen)} feature(s); worst "
                         f"{worst['feature']} ({worst['unseen_share']:.0%} of values)."),
                evidence={"features": dict(zip(unseen.feature, unseen.unseen_share,
                                               strict=True))},
                diagnostic=self.id,
            ))
        return out

    def _validation_finding(self) -> Finding | None:
        counts, rows = self.validation_errors, self.window_rows
        if not counts or not rows.get("incident"):
            return None
        inc = counts.get("incident", 0) / rows["incident"]
        base = counts.get("baseline", 0) / rows["baseline"] if rows.get("baseline") else 0.0
        if not (inc >= 0.005 and inc >= 3 * base and counts.get("incident", 0) >= 20):
            return None
        return Finding(
            id="data.validation_errors", pathway="data",
            severity="high" if inc >= 0.02 else "medium", statistic=inc, threshold=0.005,
            summary=f"requests failing input validation rose from {base:.2%} to {inc:.2%}.",
            evidence={"baseline_share": base, "incident_share": inc, "counts": counts},
            diagnostic=self.id,
        )

    def _null_onset(self, features: list[str]):
        t = self.timeline
        if t.empty or not features:
            return None
        column = "missing_rate" if "missing_rate" in t else "null_rate"
        return coarse_onset(t[t["feature"] == features[0]], column,
                            after=self.baseline.end, direction=1)

    def signals(self) -> pd.DataFrame:
        if self.timeline.empty:
            return super().signals()
        worst = self.timeline.groupby("bucket_start", as_index=False)["null_rate"].max()
        return pd.DataFrame({"bucket_start": worst["bucket_start"],
                             "signal": "data.max_null_rate", "value": worst["null_rate"]})

    def plot(self, ax: Axes | None = None, **kwargs: Any) -> Axes:
        """Null and default rates per feature, baseline vs incident."""
        from toolkit.plotting import WINDOW_COLORS, axes

        ax = axes(ax, figsize=(9, 4))
        if self.table.empty:
            return super().plot(ax)
        import seaborn as sns

        t = self.table.assign(
            baseline=self.table.null_rate_baseline + self.table.default_rate_baseline,
            incident=self.table.null_rate_incident + self.table.default_rate_incident)
        data = t.melt(id_vars="feature", value_vars=["baseline", "incident"], var_name="window",
                      value_name="null or default rate")
        sns.barplot(data=data, y="feature", x="null or default rate", hue="window",
                    palette=WINDOW_COLORS, ax=ax)
        ax.set_title("Null and default-value rates")
        return ax


def data_quality(
    con: CaseSource,
    baseline: Window | str,
    incident: Window | str,
    /,
    *,
    features: list[str] | None = None,
    bucket: timedelta | None = None,
    case: CaseView | None = None,
) -> DataQualityResult:
    """Null and default rates, schema changes, out-of-range values and unseen categories.

    Examples
    --------
    >>> import numpy as np, pandas as pd, toolkit as tk
    >>> con = tk.connect()
    >>> ts = pd.date_range("2026-03-01", periods=2000, freq="min", tz="UTC")
    >>> x = np.r_[np.arange(1000.0) + 1, np.where(np.arange(1000) % 2, np.nan, 500.0)]
    >>> _ = tk.load(con, pd.DataFrame({"request_id": range(2000), "ts": ts, "x": x}),
    ...             table="requests")
    >>> r = data_quality(con, (ts[0], ts[1000]), (ts[1000], ts[-1]))
    >>> [f.id for f in r.findings()]
    ['data.null_rate']
    """
    baseline, incident = check_windows(baseline, incident)
    case = case or case_view(con)
    base = dict(baseline=baseline, incident=incident)
    if not case.has("requests"):
        return DataQualityResult(**base, not_assessed=(NotAssessed(ID, "no requests"),))
    names = features if features is not None else case.feature_names()
    core = set(case.columns["requests"])
    missing_columns = tuple(sorted(
        c for c in case.columns.get("reference", {})
        if c not in core and c not in ("label", "prediction", "score", "load_id")
    )) if case.has("reference") else ()
    if not names:
        return DataQualityResult(**base, missing_columns=missing_columns, not_assessed=(
            NotAssessed(ID, "no feature columns in requests"),))
    profile = feature_profile(case, baseline, incident, features=names, bucket=bucket)
    record = Recorder()
    validation = _validation_errors(case, record, baseline, incident)
    table = _table(profile)
    timeline = _null_timeline(profile)
    rows = profile.stats.drop_duplicates("window").set_index("window")["rows"]
    result = DataQualityResult(**base, table=table, validation_errors=validation,
                               window_rows={w: int(n) for w, n in rows.items()},
                               missing_columns=missing_columns, timeline=timeline,
                               sql=profile.sql + record.sql)
    refined = {}
    requests = case.table("requests")
    span = Window(min(baseline.start, incident.start), max(baseline.end, incident.end))
    for finding in result.findings():
        if finding.id not in ("data.null_rate", "data.schema_change"):
            continue
        names = _by_rise(finding.evidence.get("features", {})) or finding.evidence.get(
            "missing", []) or finding.evidence.get("new", [])
        if not names or names[0] not in core:
            continue
        feature = names[0]
        indicator = requests[feature].isnull().cast("float64")
        if finding.id == "data.null_rate" and feature in profile.numeric:
            col = requests[feature].cast("float64")
            indicator = (col.isnull() | col.isin([0.0, -1.0])).cast("float64")
        elif finding.id == "data.null_rate":  # a categorical default token counts too
            col = requests[feature].cast("string").strip().lower()
            indicator = (col.isnull() | col.isin(list(DEFAULT_TOKENS))).cast("float64")
        onset = _step_onset(record, requests, indicator, span, baseline.end, profile.bucket,
                            direction=1 if finding.id == "data.null_rate" else 0)
        if onset is not None:
            refined[finding.id] = onset
    if refined:
        result = replace(result, refined_onsets=refined, sql=profile.sql + record.sql)
    return result


def _by_rise(features: dict[str, dict[str, list[float]]]) -> list[str]:
    """The features of a ``data.null_rate`` finding, largest rise of the null or default rate
    first (the one whose onset dates the finding)."""
    def rise(item: tuple[str, dict[str, list[float]]]) -> float:
        rates = item[1]
        return max(rates["null_rate"][1] - rates["null_rate"][0],
                   rates["default_rate"][1] - rates["default_rate"][0])
    return [name for name, _ in sorted(features.items(), key=rise, reverse=True)]


#: A rise of the null or default rate whose fitted ramp takes longer than this many buckets is
#: gradual: it is dated where the ramp starts, not refined as a step on raw rows.
GRADUAL_BUCKETS = 2.0


def _step_onset(record: Recorder, requests: ibis.Table, indicator: ibis.NumericValue,
                span: Window, after: datetime, width: timedelta, *, direction: int
                ) -> datetime | None:
    """When the per-row ``indicator`` (NULL, or NULL or a default value) changed.

    Its rate and row count per time bucket come from one engine query over the span (numeric
    defaults included: the profile's timeline counts categorical default tokens only); the
    change is fitted as a step or a ramp weighted by each bucket's rows
    (:func:`~toolkit.diagnose._onset.change_start`: a bucket of three rows in a sparsely logged
    case is little evidence, not a third of the fit) and a step is then refined on the raw rows
    around it (:func:`~toolkit.diagnose._onset.refine_onset`, midway between the last row before
    the change and the first after it) and dated at its start when it ramped in over the rows
    (:func:`~toolkit.diagnose._onset.rollout_began`: nulls injected over up to 30 minutes).
    ``None`` without a change.
    """
    rows = requests.filter(within(requests.ts, span))
    x = indicator.cast("float64")
    per = record(rows.group_by(bucket_start=bucket_expr(rows.ts, width)).aggregate(
        rate=x.mean(), n=x.count()))
    per["bucket_start"] = pd.to_datetime(per["bucket_start"], utc=True)
    fitted = change_start(per, "rate", width=width, after=after, weights="n",
                          direction=direction, gradual_buckets=GRADUAL_BUCKETS)
    if fitted is None:
        return None
    start, gradual = fitted
    if gradual:
        return start
    onset = refine_onset(record, requests, indicator, start, around=3 * width, limits=span,
                         midway=True)
    return rollout_began(record, requests, indicator, onset, limits=span) or onset


def _table(profile: FeatureProfile) -> pd.DataFrame:
    rows = []
    for feature in (*profile.numeric, *profile.categorical):
        get = profile.stat
        n_b, n_i = get(feature, "baseline", "rows"), get(feature, "incident", "rows")
        nn_b, nn_i = get(feature, "baseline", "nonnull"), get(feature, "incident", "nonnull")
        status = "ok"
        if nn_b > 0 and nn_i == 0 and n_i > 0:
            status = "missing"
        elif nn_b == 0 and nn_i > 0:
            status = "new"
        row = {
            "feature": feature,
            "kind": "numeric" if feature in profile.numeric else "categorical",
            "status": status,
            "null_rate_baseline": 1 - nn_b / n_b if n_b else np.nan,
            "null_rate_incident": 1 - nn_i / n_i if n_i else np.nan,
            "default_rate_baseline": get(feature, "baseline", "defaults") / nn_b if nn_b else 0.0,
            "default_rate_incident": get(feature, "incident", "defaults") / nn_i if nn_i else 0.0,
            "out_of_range_incident": np.nan,
            "unseen_share": np.nan,
        }
        if feature in profile.numeric and feature in profile.numeric_hist:
            row["out_of_range_incident"] = _outside_central(profile, feature)
        elif feature in profile.categorical_hist:
            _, b, i = profile.categorical_counts(feature)
            row["unseen_share"] = float(i[b == 0].sum() / i.sum()) if i.sum() else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def _outside_central(profile: FeatureProfile, feature: str) -> float:
    """Incident share below the baseline's 0.5% or above its 99.5% quantile."""
    quantiles = profile.quantiles.get((feature, "baseline"))
    if quantiles is None:
        return float("nan")
    low, high = quantiles[0], quantiles[-1]
    uppers, _, counts = profile.numeric_counts(feature)
    total = counts.sum()
    if total == 0:
        return float("nan")
    # bins are (previous edge, upper]; a bin lies below `low` when its upper edge is < low,
    # above `high` when its lower edge is >= high.
    lowers = np.concatenate([[-np.inf], uppers[:-1]])
    outside = counts[(uppers < low) | (lowers >= high)].sum()
    return float(outside / total)


def _null_timeline(profile: FeatureProfile) -> pd.DataFrame:
    """Per time bucket and feature: the NULL share, and the share NULL or a categorical
    default token (from the profile's per-group category counts; numeric defaults are not
    counted per group, so a numeric feature's ``missing_rate`` is its ``null_rate``)."""
    columns = ["bucket_start", "feature", "null_rate", "missing_rate"]
    groups = profile.groups
    timed = groups["bucket_start"].notna()
    if not timed.any() or profile.nonnull.empty:
        return pd.DataFrame(columns=columns)
    frame = profile.nonnull[timed.to_numpy()].copy()
    features = list(frame.columns)
    defaults = pd.DataFrame(0.0, index=frame.index, columns=features)
    for name, counts in profile.categorical_hist.items():
        tokens = [c for c in counts.columns if str(c).strip().lower() in DEFAULT_TOKENS]
        if name in defaults and tokens:
            defaults[name] = counts[tokens].sum(axis=1).to_numpy()[timed.to_numpy()]
    frame["bucket_start"] = groups.loc[timed, "bucket_start"].to_numpy()
    defaults["bucket_start"] = frame["bucket_start"]
    n = pd.Series(groups.loc[timed, "n"].to_numpy(), index=frame.index).groupby(
        frame["bucket_start"]).sum()
    nonnull = frame.groupby("bucket_start")[features].sum()
    defaulted = defaults.groupby("bucket_start")[features].sum()
    long = nonnull.stack().rename("nonnull").reset_index()
    long.columns = ["bucket_start", "feature", "nonnull"]
    long["defaults"] = defaulted.stack().to_numpy()
    rows = long["bucket_start"].map(n)
    long["null_rate"] = 1 - long["nonnull"] / rows
    long["missing_rate"] = long["null_rate"] + long["defaults"] / rows
    long["bucket_start"] = pd.to_datetime(long["bucket_start"], utc=True)
    return long[columns]


def _validation_errors(case: CaseView, record: Recorder, baseline: Window,
                       incident: Window) -> dict[str, int]:
    """Requests per window rejected as invalid input: an ``error_type`` naming validation,
    schema or parsing (:data:`_VALIDATION`), or, with no ``error_type`` logged for the request
    (or no such column), HTTP :data:`_REJECTED` (bad request, unprocessable entity)."""
    has_type = case.has("requests", "error_type")
    has_status = case.has("requests", "http_status")
    if not (has_type or has_status):
        return {}
    t = case.table("requests")
    span = Window(min(baseline.start, incident.start), max(baseline.end, incident.end))
    t = t.filter(within(t.ts, span))
    t = t.mutate(_window=window_label(t.ts, baseline, incident))
    matches = ibis.literal(False)
    if has_type:
        kind = t.error_type.lower()
        for token in _VALIDATION:
            matches = matches | kind.contains(token).fill_null(False)
    if has_status:
        untyped = t.error_type.isnull() if has_type else ibis.literal(True)
        matches = matches | (untyped & t.http_status.isin(_REJECTED).fill_null(False))
    t = t.filter(matches & t._window.notnull())
    counts = record(t.group_by(window=t._window).aggregate(n=t.count()))
    return {str(w): int(n) for w, n in zip(counts["window"], counts["n"], strict=True)}
