"""Unit-change detection: a feature's scale jumps by a known unit factor.

Recipe: for each numeric feature, the ratios ``r_k = Q_incident(u_k) / Q_baseline(u_k)`` of the
two windows' quantiles at levels 5%..95% (skipping quantiles near zero). Their median is the
scale factor; the median absolute deviation of ``log r_k`` from its log measures whether the
*whole* distribution was rescaled rather than shifted or reshaped (at most 0.1). Every known
factor of :data:`UNIT_FACTORS` (or its reciprocal) within 6% of the estimate is then tested
directly: the incident quantiles divided by the factor are compared with the baseline quantiles
(mean absolute difference over the baseline interquartile range, a normalised Wasserstein-1
distance). The closest factor matches when that distance is at most 0.1, i.e. the rescaled
incident looks like the baseline up to sampling noise. A log-sampled request log can leave a
few hundred values in a window, and the quantiles of a heavy-tailed feature then scatter by
more than 6% (and the tail dominates the distance): for factors of at least 10, whose
rescaled values leave the baseline's range, the band widens to the sampling noise of the
estimate (:func:`factor_band`: 2.5 standard errors of the log quantile ratio, at most 25%)
and the rescaled incident may instead pass a two-sample Kolmogorov-Smirnov check against the
baseline (:func:`rescaled_ks` within ``1.36 sqrt(1/n_b + 1/n_i)``). Last, a unit change is a
step: the factor must hold in the middle and the last third of the incident window (each
within the band of the known factor; the first third may still hold the rollout), whereas a
gradual shift of a log-normal feature (also a pure rescaling) keeps growing. A step that ends inside the window
(mitigated, or the detected window runs past the fix) or starts late in it passes too when
one of those thirds holds the factor and the other is a mix of rescaled and unchanged rows
(factors of 10 and more, see :func:`holds_over_time`). The feature's catalog unit limits the
factors tried (:data:`UNIT_FAMILIES`).

A detected window that opens long before the change dilutes it: half or more of its rows may
still hold the old unit, and no whole-window test may match. The step is then located inside
the window (:func:`locate_step`: the split of the per-bucket medians, computed in the engine,
with the smallest squared error on the log scale), and the tests above are run on the rows
after it, unchanged; the factor must also be a known unit factor between the two sides of the
step (the rows after it against the rows before it), and hold over the thirds after it. A
gradual drift has no such step, and a reshaping matches on neither side. A window that also
runs on past a fix holds the new unit between two steps (:func:`locate_pulse`): when the
single step matches nothing, the same tests run on the rows between the two steps against
the baseline and against the window's rows outside them; and a window that opens in the new
unit and runs past the fix holds a step back, tested the same way with the rows before it as
the rescaled side.

Finding ``data.unit_change`` (high): a feature rescaled by a known factor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import ibis
import numpy as np
import pandas as pd

from toolkit._validation import check_windows
from toolkit.diagnose._base import DiagnosticResult, Finding, NotAssessed
from toolkit.diagnose._case import CaseView, case_view, within
from toolkit.diagnose._engine import Recorder, epoch_us, float_array, quantiles_at
from toolkit.diagnose._engines import CaseSource
from toolkit.diagnose._onset import refine_onset, rollout_began
from toolkit.diagnose._profile import LEVELS, SAMPLE_ROWS, FeatureProfile, feature_profile
from toolkit.types import Window

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["unit_change", "UnitChangeResult", "UNIT_FACTORS", "ID"]

ID = "data.units"
#: Known unit factors and what they usually mean.
UNIT_FACTORS: dict[float, str] = {
    1000.0: "x1000 (s->ms, kg->g, km->m, k->units)",
    100.0: "x100 (fraction->percent, m->cm, dollars->cents)",
    60.0: "x60 (min->s, h->min)",
    3600.0: "x3600 (h->s)",
    24.0: "x24 (days->hours)",
    3.6: "x3.6 (m/s->km/h)",
    2.54: "x2.54 (in->cm)",
    0.4536: "x0.4536 (lb->kg)",
    2.2046: "x2.2046 (kg->lb)",
    1.609: "x1.609 (mi->km)",
    0.6214: "x0.6214 (km->mi)",
    0.3048: "x0.3048 (ft->m)",
    3.281: "x3.281 (m->ft)",
    12.0: "x12 (ft->in, years->months)",
    1024.0: "x1024 (KiB->bytes)",
    10.0: "x10 (cm->mm)",
}
#: Which factors make sense for a feature whose catalog unit is in a family; factors of 10,
#: 100 and 1000 fit any unit.
UNIT_FAMILIES: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {
    "time": (("s", "sec", "second", "seconds", "ms", "min", "minute", "minutes", "h", "hour",
              "hours", "day", "days", "us"), (60.0, 3600.0, 24.0, 12.0)),
    "distance": (("m", "km", "mi", "mile", "miles", "ft", "in", "cm", "mm"),
                 (1.609, 0.6214, 0.3048, 3.281, 2.54, 12.0)),
    "mass": (("kg", "g", "lb", "lbs", "oz"), (0.4536, 2.2046)),
    "speed": (("m/s", "km/h", "mps", "kph", "mph"), (3.6, 1.609, 0.6214)),
    "size": (("b", "byte", "bytes", "kib", "mib", "kb", "mb"), (1024.0,)),
    "currency": (("usd", "eur", "gbp", "jpy", "$", "dollars", "euros", "cents"), ()),
    "fraction": (("ratio", "fraction", "share", "%", "percent", "pct"), ()),
    "count": (("count", "counts", "n", "requests", "items"), ()),
}
_ANY_UNIT = (10.0, 100.0, 1000.0)
TOLERANCE = 0.10
MAX_DISPERSION = 0.10
BAND = 0.06
#: A rescaled-plus-unchanged mixture must fit the incident's CDF this closely (KS distance) ...
MIX_TOLERANCE = 0.02
#: ... with at least this share of rows rescaled.
MIN_RESCALED_SHARE = 0.5
#: Smallest factor a mixture is fitted for.
MIN_MIXTURE_FACTOR = 10.0
#: One-sample Kolmogorov-Smirnov critical value at 5%: ``KS_95 / sqrt(n)``.
KS_95 = 1.36
#: Standard errors of the log scale factor that the band of a factor of at least
#: :data:`MIN_MIXTURE_FACTOR` spans (:func:`factor_band`) ...
NOISE_Z = 2.5
#: ... up to this relative width.
MAX_BAND = 0.25
#: Sub-windows of the incident window whose medians locate a step of a feature's scale ...
STEP_BUCKETS = 24
#: ... each read with at least this many values ...
MIN_BUCKET_VALUES = 3
#: ... and each side of the step tested with at least this many values ...
MIN_SIDE_VALUES = 30
#: ... except the side that holds the old unit, which corroborates with at least this many
#: (a detected window that runs a few hours past a fix holds few rows of the old unit there):
#: below :data:`MIN_SIDE_VALUES` it must pass the Kolmogorov-Smirnov checks, not a factor match.
MIN_OLD_SIDE_VALUES = 10


@dataclass(frozen=True, kw_only=True, repr=False)
class UnitChangeResult(DiagnosticResult):
    """Scale factor of every numeric feature and whether it matches a unit conversion.

    Attributes
    ----------
    table
        One row per numeric feature: ``feature``, ``factor``, ``dispersion``, ``matched``
        (the known factor or NaN), ``meaning``.
    """

    id = ID
    title = "Unit changes"

    def headline(self) -> dict[str, Any]:
        hits = self.table[self.table["matched"].notna()] if not self.table.empty else self.table
        return {"features checked": len(self.table), "unit changes": len(hits)}

    def findings(self) -> list[Finding]:
        if self.table.empty:
            return []
        hits = self.table[self.table["matched"].notna()]
        return [Finding(
            id="data.unit_change", pathway="data", severity="high",
            statistic=float(row.factor), threshold=float(row.matched),
            summary=f"{row.feature} is rescaled by {row.factor:.4g}: {row.meaning}.",
            onset=self.refined_onsets.get(row.feature),
            evidence={"feature": row.feature, "factor": float(row.factor),
                      "matched": float(row.matched), "dispersion": float(row.dispersion),
                      "distance_after_rescaling": float(row.distance),
                      "meaning": row.meaning},
            diagnostic=self.id,
        ) for row in hits.itertuples()]

    def plot(self, ax: Axes | None = None, **kwargs: Any) -> Axes:
        """Scale factor per feature (log scale), known unit factors marked."""
        from toolkit.plotting import axes

        ax = axes(ax, figsize=(8, 4))
        if self.table.empty:
            return super().plot(ax)
        t = self.table.dropna(subset=["factor"])
        colors = ["#C44E52" if m == m else "#8C8C8C" for m in t["matched"]]
        ax.barh(t["feature"], t["factor"], color=colors)
        ax.set_xscale("log")
        ax.axvline(1.0, color="#4C72B0", lw=1)
        ax.set_xlabel("incident / baseline scale (log)")
        ax.set_title("Scale factor per feature")
        return ax


def unit_change(
    con: CaseSource,
    baseline: Window | str,
    incident: Window | str,
    /,
    *,
    features: list[str] | None = None,
    bucket: timedelta | None = None,
    case: CaseView | None = None,
) -> UnitChangeResult:
    """Detect numeric features whose scale changed by a known unit factor.

    Examples
    --------
    >>> import numpy as np, pandas as pd, toolkit as tk
    >>> rng = np.random.default_rng(3)
    >>> ts = pd.date_range("2026-03-01", periods=4000, freq="min", tz="UTC")
    >>> seconds = rng.gamma(3.0, 2.0, 4000)
    >>> seconds[2000:] *= 1000  # the producer switched to milliseconds
    >>> con = tk.connect()
    >>> _ = tk.load(con, pd.DataFrame({"request_id": range(4000), "ts": ts, "wait": seconds,
    ...                                "other": rng.normal(5, 1, 4000)}), table="requests")
    >>> r = unit_change(con, (ts[0], ts[2000]), (ts[2000], ts[-1]))
    >>> [(f.evidence["feature"], f.evidence["matched"]) for f in r.findings()]
    [('wait', 1000.0)]
    """
    baseline, incident = check_windows(baseline, incident)
    case = case or case_view(con)
    base = dict(baseline=baseline, incident=incident)
    numeric = [n for n in (features or case.feature_names("numeric"))
               if n in case.feature_names("numeric")]
    if not numeric:
        return UnitChangeResult(**base, not_assessed=(NotAssessed(ID, "no numeric features"),))
    profile = feature_profile(case, baseline, incident, features=features, bucket=bucket)
    units = dict(zip(case.features["name"], case.features["unit"], strict=True))
    rows = []
    levels = np.asarray(LEVELS)
    keep = (levels >= 0.05) & (levels <= 0.95)
    for feature in numeric:
        qb = profile.quantiles.get((feature, "baseline"))
        qi = profile.quantiles.get((feature, "incident"))
        if qb is None or qi is None:
            rows.append({"feature": feature, "factor": np.nan, "dispersion": np.nan,
                         "matched": np.nan, "meaning": None, "distance": np.nan})
            continue
        factor, dispersion = scale_factor(qb[keep], qi[keep])
        counts = (_count(profile, feature, "baseline"), _count(profile, feature, "incident"))
        matched, meaning, distance = match_factor(factor, dispersion, qb, qi, units.get(feature),
                                                  counts=counts)
        rows.append({"feature": feature, "factor": factor, "dispersion": dispersion,
                     "matched": matched, "meaning": meaning, "distance": distance})
    table = pd.DataFrame(rows)
    record = Recorder()
    candidates = table[table["matched"].notna()]
    if not candidates.empty:
        stable = _stable_factors(case, record, profile, incident, list(candidates["feature"]),
                                 keep)
        for k, row in candidates.iterrows():
            thirds = stable.get(row["feature"], [])
            qb = profile.quantiles[(row["feature"], "baseline")]
            if not holds_over_time(qb, thirds, row["matched"], units.get(row["feature"]),
                                   n_baseline=_count(profile, row["feature"], "baseline")):
                table.loc[k, ["matched", "meaning"]] = [np.nan, None]
            table.loc[k, "halves"] = ", ".join(f"{f:.4g}" for f, *_ in thirds)
    steps = _stepped(case, record, profile, incident, table, units, keep)
    for k, (factor, matched, meaning, distance, _) in steps.items():
        table.loc[k, ["factor", "matched", "meaning", "distance"]] = [factor, matched, meaning,
                                                                      distance]
    result = UnitChangeResult(**base, table=table, sql=profile.sql + record.sql)
    refined = {}
    for row in result.table[result.table["matched"].notna()].itertuples():
        # the rescaled values pass the geometric middle of the baseline's median and its
        # rescaled value: find the first such request. The baseline's top quantile (the cut
        # before) is passed late by a heavy-tailed feature's small rescaled values (varied
        # tuning unit_change s7: 42 minutes late, now 1); the change lies between the last
        # request before it and the first after (``midway``; s5: 52 minutes, now 14), and a
        # rollout over an hour or two is dated at its start (``rollout_began``; s9, s10, s11:
        # 34, 48 and 33 minutes late at its middle, now 14, 2 and 14 minutes early)
        quantiles = profile.quantiles[(row.feature, "baseline")]
        requests = case.table("requests")
        col = requests[row.feature].cast("float64")
        median = float(np.interp(0.5, np.asarray(LEVELS), quantiles))
        if median > 0:
            cut = median * math.sqrt(float(row.matched))
            outside = (col > cut) if row.matched > 1 else (col < cut)
        else:
            outside = (col > float(quantiles[-1])) if row.matched > 1 else (
                col < float(quantiles[0]))
        step = steps.get(row.Index)
        indicator = outside.fill_null(False).cast("float64")
        limits = Window(baseline.start, incident.end)
        onset = refine_onset(record, requests, indicator,
                             incident.start if step is None else step[4],
                             around=incident.duration, limits=limits, midway=True)
        refined[row.feature] = rollout_began(record, requests, indicator, onset,
                                             limits=limits) or onset
    if refined:
        result = replace(result, refined_onsets=refined, sql=profile.sql + record.sql)
    return result


def _stepped(case: CaseView, record: Recorder, profile: FeatureProfile, incident: Window,
             table: pd.DataFrame, units: dict[str, str | None], keep: np.ndarray
             ) -> dict[Any, tuple[float, float, str, float, pd.Timestamp]]:
    """Unit changes found after a step located inside the incident window, by table row.

    For each feature the whole window did not match: the step of its per-bucket medians
    (:func:`locate_step`), then the rows after it matched against the baseline
    (:func:`match_factor` with their counts, unchanged), the same factor matched between the
    rows before and after the step, and :func:`holds_over_time` on the thirds after it.
    Returns ``(factor, matched, meaning, distance, step time)`` per matched row.
    """
    if table.empty:
        return {}
    rows_left = table[table["matched"].isna() & table["factor"].notna()]
    if rows_left.empty:
        return {}
    features = list(rows_left["feature"])
    width = incident.duration / STEP_BUCKETS
    requests = case.table("requests")
    rows = requests.filter(within(requests.ts, incident))
    width_us = max(1, int(width.total_seconds() * 1_000_000))
    start_us = int(pd.Timestamp(incident.start).value // 1000)
    rows = rows.mutate(_bucket=(epoch_us(rows.ts) - start_us) // width_us)
    half = float_array([0.5])
    medians = record(rows.group_by("_bucket").aggregate(
        **{f"m{k}": quantiles_at(rows[f].cast("float64"), half) for k, f in enumerate(features)},
        **{f"n{k}": rows[f].count() for k, f in enumerate(features)}))
    if medians.empty:
        return {}
    medians = medians.set_index("_bucket").reindex(range(STEP_BUCKETS))
    splits: dict[str, list[tuple[pd.Timestamp, pd.Timestamp | None]]] = {}
    start_at = pd.Timestamp(incident.start)
    for k, feature in enumerate(features):
        m = np.array([np.nan if v is None or (isinstance(v, float) and math.isnan(v))
                      else float(np.asarray(v, dtype=float)[0]) for v in medians[f"m{k}"]])
        n = medians[f"n{k}"].fillna(0).to_numpy(dtype=float)
        split, pulse = locate_step(m, n), locate_pulse(m, n)
        # the step lies in the bucket before the split or the split's own: both are left out
        # of the two sides, whose rows are then each in one unit (so are the buckets around
        # a pulse's end)
        tries = [] if split is None else [(start_at + split * width, None)]
        unit = units.get(feature)
        if pulse is not None and _near_unit(_level_ratio(m, n, *pulse), unit):
            tries.append((start_at + pulse[0] * width, start_at + pulse[1] * width))
        if split is not None and _near_unit(_level_ratio(m, n, 0, split), unit):
            # a step back: the window opens in the new unit, fixed later
            tries.append((start_at, start_at + split * width))
        if tries:
            splits[feature] = tries
    found: dict[Any, tuple[float, float, str, float, pd.Timestamp]] = {}
    for feature, tries in splits.items():
        for when, until in tries:  # the step first; the others only when it matched none
            hit = _match_after_step(case, record, profile, incident, feature, when, width,
                                    units.get(feature), keep, until=until)
            if hit is not None:
                index = rows_left.index[rows_left["feature"] == feature][0]
                found[index] = (*hit, when)
                break
    return found


def locate_step(medians: np.ndarray, counts: np.ndarray) -> int | None:
    """The bucket at which a feature's scale steps: the split of the per-bucket medians'
    log magnitudes into two constant segments with the smallest squared error (weighted by
    the buckets' value counts; buckets with fewer than :data:`MIN_BUCKET_VALUES` values or a
    zero median are left out). At least two buckets on each side (the one on each side of
    the split may straddle the step); ``None`` when there are too few buckets or the medians
    change sign across the split, or the two segments' levels differ by less than
    :data:`BAND`.

    Examples
    --------
    >>> locate_step(np.array([5, 6, 5, 5, 300, 310, 290, 305.0]), np.full(8, 10.0))
    4
    """
    m, index, y, w = _log_levels(medians, counts)
    if index.size < 5:
        return None
    best, split = math.inf, None
    for j in range(2, index.size - 1):
        cost = 0.0
        for part, weight in ((y[:j], w[:j]), (y[j:], w[j:])):
            mean = float(np.average(part, weights=weight))
            cost += float(np.sum(weight * (part - mean) ** 2))
        if cost < best:
            best, split = cost, j
    if split is None or np.sign(m[index[split - 1]]) != np.sign(m[index[split]]):
        return None
    jump = abs(np.average(y[split:], weights=w[split:]) - np.average(y[:split],
                                                                  weights=w[:split]))
    if jump < math.log1p(BAND):  # no step a unit factor could make
        return None
    return int(index[split])


def _log_levels(medians: np.ndarray, counts: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The per-bucket medians as floats, the indices of the buckets usable for a fit (a
    finite, non-zero median over at least :data:`MIN_BUCKET_VALUES` values), and those
    buckets' log magnitudes and value counts (:func:`locate_step`, :func:`locate_pulse`)."""
    m, w = np.asarray(medians, dtype=float), np.asarray(counts, dtype=float)
    ok = np.isfinite(m) & (m != 0) & (w >= MIN_BUCKET_VALUES)
    return m, np.flatnonzero(ok), np.log(np.abs(m[ok])), w[ok]


def locate_pulse(medians: np.ndarray, counts: np.ndarray) -> tuple[int, int] | None:
    """The buckets ``[i, j)`` over which a feature's scale stepped and then stepped back (a
    unit change fixed inside a window that runs on past the fix): the three constant segments
    of the per-bucket medians' log magnitudes, the two outer ones at one level, with the
    smallest squared error (weighted, buckets left out, as :func:`locate_step`). At least two
    buckets before, three inside (one whole bucket away from both ends) and two after; ``None``
    otherwise, when the medians change sign across an end, or when the inside and outside
    levels differ by less than :data:`BAND`.

    Examples
    --------
    >>> locate_pulse(np.array([5, 6, 5, 300, 310, 290, 305, 6, 5, 5.0]), np.full(10, 10.0))
    (3, 7)
    """
    m, index, y, w = _log_levels(medians, counts)
    if index.size < 7:
        return None
    best, found = math.inf, None
    for i in range(2, index.size - 4):
        for j in range(i + 3, index.size - 1):
            inside = np.zeros(y.size, dtype=bool)
            inside[i:j] = True
            cost = 0.0
            for part in (inside, ~inside):
                mean = float(np.average(y[part], weights=w[part]))
                cost += float(np.sum(w[part] * (y[part] - mean) ** 2))
            if cost < best:
                best, found = cost, (i, j)
    if found is None:
        return None
    i, j = found
    if np.sign(m[index[i - 1]]) != np.sign(m[index[i]]) or \
            np.sign(m[index[j - 1]]) != np.sign(m[index[j]]):
        return None
    inside = np.zeros(y.size, dtype=bool)
    inside[i:j] = True
    jump = abs(np.average(y[inside], weights=w[inside]) - np.average(y[~inside],
                                                                    weights=w[~inside]))
    if jump < math.log1p(BAND):
        return None
    return int(index[i]), int(index[j])


def _level_ratio(medians: np.ndarray, counts: np.ndarray, start: int, end: int) -> float:
    """The buckets ``[start, end)``'s level of the per-bucket medians over the other buckets'
    (weighted geometric means of their magnitudes, the buckets :func:`locate_step` reads),
    leaving out the buckets on either side of each step (``start - 1`` and ``start`` when
    ``start`` > 0, ``end - 1`` and ``end``), which may hold both units."""
    m, w = np.asarray(medians, dtype=float), np.asarray(counts, dtype=float)
    ok = np.isfinite(m) & (m != 0) & (w >= MIN_BUCKET_VALUES)
    inside = np.zeros(m.size, dtype=bool)
    inside[start:end] = True
    for k in ((start - 1, start) if start > 0 else ()) + (end - 1, end):
        if 0 <= k < m.size:
            ok[k] = False
    if not (ok & inside).any() or not (ok & ~inside).any():
        return float("nan")
    y = np.log(np.abs(np.where(ok, m, 1.0)))
    return math.exp(np.average(y[ok & inside], weights=w[ok & inside]) -
                    np.average(y[ok & ~inside], weights=w[ok & ~inside]))


def _near_unit(ratio: float, unit: str | None) -> bool:
    """Whether a level ratio lies within :data:`MAX_BAND` of an allowed unit factor or its
    reciprocal: the pulse and the step back are only tested then (each test is a scan)."""
    if not math.isfinite(ratio) or ratio <= 0:
        return False
    return any(abs(math.log(ratio) - sign * math.log(f)) <= math.log1p(MAX_BAND)
               for f in allowed_factors(unit) for sign in (1, -1))


def _match_after_step(case: CaseView, record: Recorder, profile: FeatureProfile,
                      incident: Window, feature: str, when: pd.Timestamp, width: timedelta,
                      unit: str | None, keep: np.ndarray, *, until: pd.Timestamp | None = None
                      ) -> tuple[float, float, str, float] | None:
    """The known factor the rows after the step are rescaled by, against the baseline and
    against the window's rows before it alike (two known factors within :data:`BAND` of
    each other, x1000 and x1024, agree). When the rows before the step are too few for that
    match, they must instead pass for the baseline, and the rows after it divided by the
    factor for the rows before it (two-sample KS tests at 5%, :func:`rescaled_ks`). ``None``
    when either side fails. The step is
    in the bucket that ends at ``when`` or the one that starts there (``width`` long): the
    sides leave both out. With ``until`` (a pulse, :func:`locate_pulse`), the scale stepped
    back at ``until`` (the bucket around it is left out too): the rows between the two steps
    are the ones after, and the window's rows before the first and after the second together
    the ones before. ``when`` at the window's start with ``until`` is a step back: the window
    opens in the new unit and its rows after ``until`` are the ones before."""
    qb = profile.quantiles.get((feature, "baseline"))
    n_b = _count(profile, feature, "baseline")
    if qb is None or n_b is None:
        return None
    after = (when + (width if when > incident.start else timedelta(0)),
             incident.end if until is None else until - width)
    if after[1] <= after[0]:
        return None
    after = Window(*after)
    before = [Window(a, b) for a, b in ((incident.start, when - width),
                                        (incident.end if until is None else until + width,
                                         incident.end)) if a < b]
    if not before:
        return None
    requests = case.table("requests")
    rows = requests.filter(within(requests.ts, after) | ibis.or_(
        *[within(requests.ts, b) for b in before]))
    rows = rows.mutate(_side=ibis.cases((within(rows.ts, after), 1), else_=0))
    column = rows[feature].cast("float64")
    got = record(rows.group_by("_side").aggregate(
        q=quantiles_at(column, float_array(LEVELS)), n=column.count())).set_index("_side")
    if set(got.index) != {0, 1} or got.loc[1, "n"] < MIN_SIDE_VALUES or \
            got.loc[0, "n"] < MIN_OLD_SIDE_VALUES or any(q is None for q in got["q"]):
        return None
    q_before, q_after = (np.asarray(got.loc[s, "q"], dtype=float) for s in (0, 1))
    n_before, n_after = (int(min(got.loc[s, "n"], SAMPLE_ROWS)) for s in (0, 1))
    factor, dispersion = scale_factor(qb[keep], q_after[keep])
    matched, meaning, distance = match_factor(factor, dispersion, qb, q_after, unit,
                                              counts=(n_b, n_after))
    if math.isnan(matched):
        return None
    between: tuple[float, str | None, float] = (float("nan"), None, float("nan"))
    if n_before >= MIN_SIDE_VALUES:
        across, spread = scale_factor(q_before[keep], q_after[keep])
        between = match_factor(across, spread, q_before, q_after, unit,
                               counts=(n_before, n_after))
    if not abs(between[0] / matched - 1) <= BAND:  # NaN fails too; x1000 and x1024 agree
        # few rows before the step: they must then pass for the baseline, and the rows after
        # it divided by the factor for the rows before it (two-sample KS tests at 5%)
        unchanged = rescaled_ks(qb, q_before, 1.0) <= KS_95 * math.sqrt(1 / n_b + 1 / n_before)
        if not (unchanged and rescaled_ks(q_before, q_after, matched) <= KS_95 * math.sqrt(
                1 / n_before + 1 / n_after)):
            return None
    thirds = _stable_factors(case, record, profile, after, [feature], keep).get(feature, [])
    if not holds_over_time(qb, thirds, matched, unit, n_baseline=n_b):
        return None
    share = (when - pd.Timestamp(incident.start)) / incident.duration
    if until is not None and when <= incident.start:
        return factor, matched, (f"{meaning}; until a step back at {until:%Y-%m-%d %H:%M} UTC "
                                 f"(the rest of the window holds the old unit)"), distance
    if until is not None:
        return factor, matched, (f"{meaning}; between steps at {when:%Y-%m-%d %H:%M} and "
                                 f"{until:%Y-%m-%d %H:%M} UTC (the rest of the window holds "
                                 f"the old unit)"), distance
    return factor, matched, (f"{meaning}; after a step at {when:%Y-%m-%d %H:%M} UTC (the "
                             f"window's first {share:.0%} still holds the old unit)"), distance


def _count(profile: FeatureProfile, feature: str, window: str) -> int | None:
    """Values the window's quantiles of ``feature`` rest on (non-null, at most the sample)."""
    n = profile.stat(feature, window, "nonnull")
    return None if math.isnan(n) else int(min(n, SAMPLE_ROWS))


def _stable_factors(case: CaseView, record: Recorder, profile: FeatureProfile,
                    incident: Window, features: list[str], keep: np.ndarray
                    ) -> dict[str, list[tuple[float, np.ndarray, int]]]:
    """The scale factor of each feature in the middle and last thirds of the incident, with
    the third's quantiles on :data:`LEVELS` and its number of values (one grouped scan for
    both thirds)."""
    first = incident.start + incident.duration / 3
    second = incident.start + 2 * incident.duration / 3
    thirds = (Window(first, second), Window(second, incident.end))
    requests = case.table("requests")
    rows = requests.filter(within(requests.ts, Window(first, incident.end)))
    rows = rows.mutate(_third=ibis.cases((within(rows.ts, thirds[0]), 0), else_=1))
    levels = float_array(LEVELS)
    found = record(rows.group_by("_third").aggregate(
        **{f"q{k}": quantiles_at(rows[f].cast("float64"), levels)
           for k, f in enumerate(features)},
        **{f"n{k}": rows[f].count() for k, f in enumerate(features)})).set_index("_third")
    out: dict[str, list[tuple[float, np.ndarray, int]]] = {f: [] for f in features}
    for third in range(len(thirds)):
        if third not in found.index:
            continue
        for k, feature in enumerate(features):
            q = found.loc[third, f"q{k}"]
            base = profile.quantiles.get((feature, "baseline"))
            if q is None or base is None:
                continue
            q = np.asarray(q, dtype=float)
            factor, _ = scale_factor(base[keep], q[keep])
            if not math.isnan(factor):
                out[feature].append((factor, q, int(found.loc[third, f"n{k}"])))
    return out


def holds_over_time(q_baseline: np.ndarray, thirds: list[tuple[float, np.ndarray, int]],
                    matched: float, unit: str | None = None, *,
                    n_baseline: int | None = None) -> bool:
    """Whether the incident's later thirds look like a unit change by ``matched``.

    A step: every third is rescaled (its factor within :data:`BAND` of ``matched``, or, with
    ``n_baseline`` given, within the sampling band of :func:`factor_band` for a factor of at
    least :data:`MIN_MIXTURE_FACTOR`; or mostly rescaled rows by :func:`mixture_match`). A step that ended inside the window (mitigated,
    rolled back) or began late in it (a window opened early) also counts: one third rescaled
    and the other a mix of rescaled and unchanged rows in any proportion (the
    :func:`mixture_fit` within :data:`MIX_TOLERANCE`, or within the 95% Kolmogorov bound
    ``1.36 / sqrt(n)`` of the third's ``n`` values when that is wider: a third of a short
    window holds a few hundred rows). That second form is only read for
    factors of at least :data:`MIN_MIXTURE_FACTOR`, whose rescaled rows leave the baseline's
    range; a gradual shift, whose thirds are rescaled by growing in-between factors, fits
    neither.
    """
    if len(thirds) < 2:
        return False
    def band(q: np.ndarray, n: int) -> float:
        if n_baseline is None or max(matched, 1 / matched) < MIN_MIXTURE_FACTOR:
            return BAND
        return factor_band(q_baseline, q, (n_baseline, n))

    rescaled = [abs(f / matched - 1) <= band(q, n) or
                mixture_match(q_baseline, q, unit)[0] == matched for f, q, n in thirds]
    if all(rescaled):
        return True
    if max(matched, 1 / matched) < MIN_MIXTURE_FACTOR or not any(rescaled):
        return False
    return all(done or mixture_fit(q_baseline, q, matched)[1] <= max(
        MIX_TOLERANCE, KS_95 / math.sqrt(max(n, 1))) for done, (_, q, n) in zip(
        rescaled, thirds, strict=True))


def scale_factor(q_baseline: np.ndarray, q_incident: np.ndarray) -> tuple[float, float]:
    """Median quantile ratio and the median absolute log-deviation around it."""
    scale = np.nanmax(np.abs(q_baseline)) if q_baseline.size else 0.0
    ok = (np.abs(q_baseline) > 1e-6 * max(scale, 1e-12)) & np.isfinite(q_incident)
    ratios = q_incident[ok] / q_baseline[ok]
    ratios = ratios[ratios > 0]
    if ratios.size < 5:
        return float("nan"), float("nan")
    logs = np.log(ratios)
    centre = float(np.median(logs))
    return float(math.exp(centre)), float(np.median(np.abs(logs - centre)))


def match_factor(factor: float, dispersion: float, q_baseline: np.ndarray,
                 q_incident: np.ndarray, unit: str | None = None, *,
                 counts: tuple[int | None, int | None] | None = None
                 ) -> tuple[float, str | None, float]:
    """The known unit factor whose rescaling makes the incident look like the baseline.

    When the feature's ``unit`` (from the feature catalog) is in a known family, only factors
    that make sense for it are tried (a duration is not rescaled by 1024). With ``counts``
    (the values behind the baseline's and the incident's quantiles), a factor of at least
    :data:`MIN_MIXTURE_FACTOR` is also matched within the sampling noise of few values
    (:func:`noisy_match`).
    Returns ``(factor, meaning, distance)``, or ``(nan, None, distance)`` when none matches.
    """
    if math.isnan(factor) or math.isnan(dispersion):
        return float("nan"), None, float("nan")
    direct = _direct_match(factor, dispersion, q_baseline, q_incident, unit)
    if not math.isnan(direct[0]):
        return direct
    mixed = mixture_match(q_baseline, q_incident, unit)
    if not math.isnan(mixed[0]):
        return mixed
    if counts is not None and None not in counts:
        noisy = noisy_match(factor, dispersion, q_baseline, q_incident, counts, unit)
        if not math.isnan(noisy[0]):
            return noisy
    return direct


def factor_band(q_baseline: np.ndarray, q_incident: np.ndarray,
                counts: tuple[int, int]) -> float:
    """Relative width within which a scale factor estimated from these quantiles is noise.

    The standard error of a sample quantile is ``sqrt(p (1 - p) / n) / f(q_p)``, and
    ``1 / f(q_p)`` is the slope of the quantile function (finite differences over
    :data:`~toolkit.diagnose._profile.LEVELS`); on the log scale it is divided by ``q_p``. The
    log ratio of the two windows' quantiles then has the root sum of squares of the two
    windows' errors; the band is :data:`NOISE_Z` times its median over the 5%..95% levels,
    never narrower than :data:`BAND` nor wider than :data:`MAX_BAND`.

    Examples
    --------
    >>> from toolkit.diagnose._profile import LEVELS
    >>> q = np.exp(np.quantile(np.random.default_rng(0).normal(0, 1.7, 100_000), LEVELS))
    >>> round(factor_band(q, q * 60, (1746, 302)), 2), factor_band(q, q * 60, (10**6, 10**6))
    (0.25, 0.06)
    """
    levels = np.asarray(LEVELS)
    keep = (levels >= 0.05) & (levels <= 0.95)
    errors = []
    for q, n in ((np.asarray(q_baseline, float), counts[0]),
                 (np.asarray(q_incident, float), counts[1])):
        if q.size != levels.size or n is None or n < 2 or not np.isfinite(q).all():
            return BAND
        with np.errstate(divide="ignore", invalid="ignore"):
            se = np.sqrt(levels * (1 - levels) / n) * np.gradient(q, levels) / np.abs(q)
        errors.append(se[keep])
    combined = np.sqrt(errors[0] ** 2 + errors[1] ** 2)
    combined = combined[np.isfinite(combined)]
    if not combined.size:
        return BAND
    return float(min(MAX_BAND, max(BAND, math.expm1(NOISE_Z * float(np.median(combined))))))


def rescaled_ks(q_baseline: np.ndarray, q_incident: np.ndarray, factor: float) -> float:
    """Kolmogorov-Smirnov distance between the baseline and the incident divided by ``factor``,
    read on the quantile levels (the baseline's CDF interpolated at the rescaled incident
    quantiles); ``inf`` when the quantiles cannot be compared."""
    levels = np.asarray(LEVELS)
    qb, qi = np.asarray(q_baseline, float), np.asarray(q_incident, float)
    if qb.size != levels.size or qi.size != levels.size or not np.isfinite(qb).all() or \
            not np.isfinite(qi).all() or qb[-1] <= qb[0]:
        return float("inf")
    return float(np.max(np.abs(levels - np.interp(qi / factor, qb, levels, left=0.0,
                                                   right=1.0))))


def noisy_match(factor: float, dispersion: float, q_baseline: np.ndarray,
                q_incident: np.ndarray, counts: tuple[int, int], unit: str | None = None
                ) -> tuple[float, str | None, float]:
    """A known factor of at least :data:`MIN_MIXTURE_FACTOR` that few values cannot reject.

    With a few hundred values of a heavy-tailed feature the estimate scatters by more than
    :data:`BAND` and the tail dominates the distance of :func:`_direct_match`. A known factor
    (or its reciprocal) matches when the estimate is within :func:`factor_band` of it, the
    log ratios are as tight as for a direct match (:data:`MAX_DISPERSION`), and the incident
    divided by it passes a two-sample Kolmogorov-Smirnov test against the baseline at 5%
    (:func:`rescaled_ks` at most ``1.36 sqrt(1/n_b + 1/n_i)``). Only such factors: their
    rescaled values leave the baseline's range, so a shift or reshaping of the feature does
    not pass for them, whereas x1.609 or x2.54 can pass for a gradual shift of a skewed one.
    Returns ``(factor, meaning, ks distance)`` or ``(nan, None, nan)``; the closest in KS wins.
    """
    if dispersion > MAX_DISPERSION or min(counts) < 2:
        return float("nan"), None, float("nan")
    band = factor_band(q_baseline, q_incident, counts)
    critical = KS_95 * math.sqrt(1 / counts[0] + 1 / counts[1])
    best = (float("inf"), float("nan"), None)
    for known, meaning in UNIT_FACTORS.items():
        if known not in allowed_factors(unit) or known < MIN_MIXTURE_FACTOR:
            continue
        for value, text in ((known, meaning), (1 / known, f"/{known:g} (the reverse of "
                                                          f"{meaning})")):
            if abs(factor / value - 1) > band:
                continue
            ks = rescaled_ks(q_baseline, q_incident, value)
            if ks <= critical and ks < best[0]:
                best = (ks, value, f"{text} (within the sampling noise of {counts[1]} incident "
                                   f"values)")
    if math.isnan(best[1]):
        return float("nan"), None, float("nan")
    return best[1], best[2], best[0]


def mixture_match(q_baseline: np.ndarray, q_incident: np.ndarray, unit: str | None = None
                  ) -> tuple[float, str | None, float]:
    """A known factor that explains the incident as a mix of rescaled and unchanged rows.

    A detected incident window may start before the change, or the producer may roll the new
    unit out (or back) over the window: the incident is then ``F_I(x) = p F_B(x) +
    (1 - p) F_B(x / f)``. For each allowed factor, ``p`` is the least-squares fit of that line
    on the incident's quantiles (``F_B`` interpolated from the baseline's); a factor matches
    when the rescaled share ``1 - p`` is at least :data:`MIN_RESCALED_SHARE` and the fit is
    within :data:`MIX_TOLERANCE` of the incident's CDF everywhere (a KS distance). Only factors
    of at least :data:`MIN_MIXTURE_FACTOR` (or their reciprocals) are tried: their rescaled
    values leave the baseline's range, whereas a mix with x1.609 or x2.54 can pass for a
    gradual shift of a skewed feature.
    Returns ``(factor, meaning, ks distance)`` or ``(nan, None, nan)``.
    """
    qb, qi = np.asarray(q_baseline, float), np.asarray(q_incident, float)
    best = (float("inf"), float("nan"), None)
    allowed = allowed_factors(unit)
    for known, meaning in UNIT_FACTORS.items():
        if known not in allowed or known < MIN_MIXTURE_FACTOR:
            continue
        for value, text in ((known, meaning), (1 / known, f"/{known:g} (the reverse of "
                                                          f"{meaning})")):
            rescaled, ks = mixture_fit(qb, qi, value)
            if rescaled >= MIN_RESCALED_SHARE and ks < best[0]:
                best = (ks, value, f"{text}, on {rescaled:.0%} of the incident's rows")
    if best[0] > MIX_TOLERANCE:
        return float("nan"), None, float("nan")
    return best[1], best[2], best[0]


def mixture_fit(q_baseline: np.ndarray, q_incident: np.ndarray, factor: float
                ) -> tuple[float, float]:
    """Least-squares share of rows rescaled by ``factor`` in ``F_I = p F_B(x) + (1 - p)
    F_B(x / factor)`` on the incident's quantiles, and the fit's KS distance.

    Returns ``(1 - p, ks)``; ``(nan, inf)`` when the quantiles cannot be compared or the two
    components coincide (the factor changes nothing the quantiles can see).
    """
    levels = np.asarray(LEVELS)
    qb, qi = np.asarray(q_baseline, float), np.asarray(q_incident, float)
    if qb.size != levels.size or qi.size != levels.size or not np.isfinite(qb).all() or \
            not np.isfinite(qi).all() or qb[-1] <= qb[0]:
        return float("nan"), float("inf")
    a = np.interp(qi, qb, levels, left=0.0, right=1.0)
    b = np.interp(qi / factor, qb, levels, left=0.0, right=1.0)
    gap = a - b
    if float(np.sum(gap ** 2)) < 1e-6:
        return float("nan"), float("inf")
    unchanged = float(np.clip(np.sum((levels - b) * gap) / np.sum(gap ** 2), 0, 1))
    return 1 - unchanged, float(np.max(np.abs(levels - (unchanged * a + (1 - unchanged) * b))))


def _direct_match(factor: float, dispersion: float, q_baseline: np.ndarray,
                  q_incident: np.ndarray, unit: str | None) -> tuple[float, str | None, float]:
    if dispersion > MAX_DISPERSION:
        return float("nan"), None, float("nan")
    levels = np.asarray(LEVELS)
    q25, q75 = np.interp([0.25, 0.75], levels, q_baseline)
    scale = (q75 - q25) if q75 > q25 else max(float(np.std(q_baseline)), 1e-12)
    allowed = allowed_factors(unit)
    candidates = []
    for known, meaning in UNIT_FACTORS.items():
        if known not in allowed:
            continue
        for value, text in ((known, meaning), (1 / known, f"/{known:g} (the reverse of "
                                                          f"{meaning})")):
            if abs(factor / value - 1) <= BAND:
                distance = float(np.mean(np.abs(q_incident / value - q_baseline)) / scale)
                candidates.append((distance, value, text))
    if not candidates:
        return float("nan"), None, float("nan")
    distance, value, text = min(candidates)
    if distance > TOLERANCE:
        return float("nan"), None, distance
    return value, text, distance


def allowed_factors(unit: str | None) -> set[float]:
    """Unit factors that make sense for a feature measured in ``unit`` (all when unknown).

    Examples
    --------
    >>> sorted(allowed_factors("s"))
    [10.0, 12.0, 24.0, 60.0, 100.0, 1000.0, 3600.0]
    """
    text = (unit or "").strip().lower()
    for _, (names, factors) in UNIT_FAMILIES.items():
        if text in names:
            return set(factors) | set(_ANY_UNIT)
    return set(UNIT_FACTORS)
