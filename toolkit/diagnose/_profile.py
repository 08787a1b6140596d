"""Per-feature profiles of two windows, aggregated in the engine and shared by data diagnostics.

One profile feeds drift, data quality, unit-change, permutation and out-of-distribution checks:

* ``stats``: per feature and window, counts, nulls, min / max / mean / std (population),
  zero and -1 counts (numeric), or approximate distinct count and default-token counts
  (categorical; numeric features get no distinct count, which would cost a quarter of the
  window summary and nothing reads it);
* ``quantiles``: quantiles on :data:`LEVELS` from a sample of about :data:`SAMPLE_ROWS` rows
  per window, chosen by a hash of the timestamp (deterministic, so results are reproducible;
  a ``reference`` table without usable times gets a seeded Bernoulli sample). The sample only
  places bin edges, it does not count: at 25k rows the 0.5% quantile's level is off by at most
  about 0.13 percentage point and a decile's by 0.6 (three binomial standard deviations), and
  every count is exact. (The sample is sorted on one thread: 50k rows would bring those bounds
  to 0.09 and 0.4 points for about 0.03 s more per window);
* ``histograms``: exact counts per time bucket and window, on fine bins whose edges are the
  baseline quantiles (numeric, right-closed bins ``(e[k-1], e[k]]`` plus an overflow bin) or per
  category (categorical). Numeric values are binned on an integer grid
  (:mod:`~._binning`, twice as fast as DOUBLEs): ``edges`` holds the edges the counts refer
  to, the quantiles rounded up by less than ``2**-60`` of the feature's largest magnitude.

Three or four queries in all (one more against a reference table), whatever the number of
features:

1. a window summary (rows, numeric minimum and maximum, approximate distinct counts of the
   categorical features, over every row the histogram scan will bin), which sets the sampling
   rates, the outer bin edges, the integer grid's range and which categorical features are
   too diverse for a per-category histogram;
2. the quantile sample of the baseline, unpivoted to one sorted list per feature (the
   incident's only when a check reads it, see :class:`WindowQuantiles`);
3. one scan grouped by (time bucket, window) for the bin counts, non-null counts and the
   moments, summed around the baseline median (``x - m`` and ``(x - m)^2``, merged in Python;
   centring keeps the variance from cancelling, since ``|mean - median| <= std``).

Python sees only these summaries.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from typing import NamedTuple

import ibis
import numpy as np
import pandas as pd
import pyarrow as pa

from toolkit.diagnose._binning import fine_histogram
from toolkit.diagnose._case import CaseView, choose_bucket, within
from toolkit.diagnose._engine import (
    Recorder,
    bucket_window_key,
    decode_bucket_window,
    interpolate_quantiles,
    order_statistics,
    sample_by_time,
    value_counts,
    window_label,
)
from toolkit.diagnose._engines import engine_for_backend
from toolkit.types import Window

__all__ = ["FeatureProfile", "feature_profile", "LEVELS", "SAMPLE_ROWS", "DEFAULT_TOKENS",
           "HIGH_CARDINALITY"]

#: Quantile levels of the profiles: 0.5%, 1%, 2%, ..., 98%, 99%, 99.5%.
LEVELS: tuple[float, ...] = (0.005, *[round(k / 100, 2) for k in range(1, 100)], 0.995)
#: Rows sampled per window for quantiles (counts and histograms are exact).
SAMPLE_ROWS = 25_000
#: Categorical values that mean "no real value" (compared case-insensitively).
DEFAULT_TOKENS = ("", "unknown", "none", "null", "nan", "n/a", "na", "default", "missing", "-1")
#: Categorical features with more distinct values than this get no per-category histogram.
HIGH_CARDINALITY = 500
#: Integral numeric features spanning fewer integers than this get a fine bin per integer.
INTEGER_BINS = 256
#: Tail bins below and above the baseline quantiles, per set of edges (see :func:`_edges`).
TAIL_BINS = (5, 10)


@dataclass(frozen=True, eq=False)
class FeatureProfile:
    """Summaries of every feature in a baseline and an incident window (see module docs).

    Attributes
    ----------
    groups
        One row per (time bucket, window) group of the histogram query: ``bucket_start``,
        ``window`` (``baseline``, ``incident``, ``between``; with ``against="reference"`` the
        reference sample is one extra row with window ``baseline`` and the baseline window of
        requests is ``baseline-span``) and ``n`` rows.
    numeric_hist
        Per numeric feature, counts with one row per group and one column per fine bin
        (upper edges ``edges[feature]`` then ``inf``).
    categorical_hist
        Per categorical feature, a frame of counts: one row per group, one column per category.
    nonnull
        Non-null values of every feature per group (same rows as ``groups``).
    point_bins
        Per numeric feature, which fine bins (same columns as ``numeric_hist``) hold a single
        value: the atoms of :func:`_edges` (values the baseline quantiles repeat, or every
        integer of a feature that looks integral over a short range) are binned on their own
        (see :func:`~._binning.fine_histogram`).
    """

    baseline: Window
    incident: Window
    against: str
    bucket: timedelta
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    stats: pd.DataFrame
    quantiles: Mapping[tuple[str, str], np.ndarray]
    edges: dict[str, np.ndarray]
    groups: pd.DataFrame
    numeric_hist: dict[str, np.ndarray]
    categorical_hist: dict[str, pd.DataFrame]
    nonnull: pd.DataFrame
    high_cardinality: tuple[str, ...] = ()
    point_bins: dict[str, np.ndarray] = field(default_factory=dict)
    recorder: Recorder = field(default_factory=Recorder, repr=False)

    @property
    def sql(self) -> tuple[str, ...]:
        """The queries run so far (the incident quantiles' only once something read them)."""
        return self.recorder.sql

    def stat(self, feature: str, window: str, column: str) -> float:
        """One value of ``stats`` (NaN when the feature or window is absent)."""
        value = self._stat_index.get((feature, window, column))
        return float("nan") if value is None else float(value)

    @cached_property
    def _stat_index(self) -> dict[tuple[str, str, str], object]:
        long = self.stats.melt(id_vars=["feature", "window"], value_vars=[
            c for c in self.stats.columns if c not in ("feature", "window", "kind")])
        return dict(zip(zip(long["feature"], long["window"], long["variable"], strict=True),
                        long["value"], strict=True))

    def mask(self, window: str) -> np.ndarray:
        return (self.groups["window"] == window).to_numpy()

    def numeric_counts(self, feature: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(upper_edges, baseline_counts, incident_counts)`` on the shared fine bins."""
        uppers = np.append(self.edges[feature], np.inf)
        counts = self.numeric_hist[feature]
        return (uppers, counts[self.mask("baseline")].sum(axis=0),
                counts[self.mask("incident")].sum(axis=0))

    def categorical_counts(self, feature: str) -> tuple[list[str], np.ndarray, np.ndarray]:
        """``(categories, baseline_counts, incident_counts)`` over the union of categories."""
        counts = self.categorical_hist[feature]
        return (list(counts.columns), counts[self.mask("baseline")].sum(axis=0).to_numpy(float),
                counts[self.mask("incident")].sum(axis=0).to_numpy(float))


def feature_profile(
    case: CaseView,
    baseline: Window,
    incident: Window,
    *,
    against: str = "baseline",
    features: list[str] | None = None,
    bucket: timedelta | None = None,
) -> FeatureProfile:
    """Profile the features of ``requests`` in two windows (cached on the case view)."""
    names = features if features is not None else case.feature_names()
    span = Window(min(baseline.start, incident.start), max(baseline.end, incident.end))
    width = bucket or choose_bucket(span.duration)
    key = ("profile", baseline, incident, against, tuple(names), width)
    if key in case.cache:
        return case.cache[key]
    kinds = dict(zip(case.features["name"], case.features["kind"], strict=True))
    numeric = tuple(n for n in names if kinds.get(n) == "numeric")
    categorical = tuple(n for n in names if kinds.get(n) == "categorical")
    record = Recorder()

    requests = case.table("requests")
    in_span = requests.filter(within(requests.ts, span))
    labelled = in_span.mutate(_window=window_label(in_span.ts, baseline, incident),
                              _key=bucket_window_key(in_span.ts, width, baseline, incident))
    reference = None
    if against == "reference":
        reference = case.table("reference").mutate(_window=ibis.literal("baseline"))

    windows = _window_summary(record, labelled, reference, numeric, categorical)
    periods = {"baseline": baseline, "incident": incident}
    quantiles = WindowQuantiles(
        lambda window: _quantiles(record, requests, periods[window], reference, numeric,
                                  windows, window))
    high = tuple(f for f in categorical if max(
        _get(windows, "baseline", f"cd_{f}"), _get(windows, "incident", f"cd_{f}")
    ) > HIGH_CARDINALITY)
    extremes = _extremes(windows, numeric)
    fine = {f: _edges(quantiles.get((f, "baseline")), *extremes[f][:2]) for f in numeric}
    # moments are summed around the baseline median, so the variance does not cancel out
    shifts = {f: _shift(quantiles.get((f, "baseline"))) for f in numeric}
    bounds = {f: extremes[f][2] for f in numeric}
    scan = _histograms(record, labelled, reference, width, numeric,
                       tuple(c for c in categorical if c not in high), fine, high, shifts, bounds)
    stats = _stats(windows, scan.groups, scan.nonnull, scan.sums, scan.categorical_hist, numeric,
                   categorical, shifts)
    profile = FeatureProfile(
        baseline, incident, against, width, numeric, categorical, stats, quantiles, scan.edges,
        scan.groups, scan.numeric_hist, scan.categorical_hist, scan.nonnull, high,
        scan.point_bins, record,
    )
    case.cache[key] = profile
    return profile


def _window_summary(record: Recorder, labelled: ibis.Table, reference: ibis.Table | None,
                    numeric: tuple[str, ...], categorical: tuple[str, ...]) -> pd.DataFrame:
    """Rows per window, numeric minimum and maximum (for the outer bin edges and the integer
    grid's range) and approximate distinct counts of categorical features: one cheap scan,
    indexed by window (``baseline``, ``incident``, ``between``, and with a reference table
    ``baseline-span`` for the requests of the baseline window)."""

    def aggregates(rows: ibis.Table) -> dict[str, ibis.Expr]:
        aggs = {"n": rows.count()}
        for name in numeric:
            col = rows[name].cast("float64")
            # DuckDB's max is NaN when a value is; in pandas that NaN looks like a NULL max
            # (no values), so say which one it is (computed on the aggregate, not per row)
            aggs |= {f"mn_{name}": col.min(), f"mx_{name}": col.max(),
                     f"nan_{name}": col.max().isnan()}
        for name in categorical:
            aggs[f"cd_{name}"] = rows[name].cast("string").approx_nunique()
        return aggs

    # every row the histogram scan bins is summarised (rows between the windows too, and with a
    # reference table the baseline window of requests), so the extremes bound all its values
    scanned = record(labelled.group_by(window=labelled._window).aggregate(
        **aggregates(labelled)))
    scanned["window"] = scanned["window"].fillna("between")
    parts = [scanned]
    if reference is not None:
        scanned["window"] = scanned["window"].replace({"baseline": "baseline-span"})
        parts.append(record(reference.aggregate(**aggregates(reference))).assign(
            window="baseline"))
    return pd.concat(parts, ignore_index=True).set_index("window")


def _extremes(windows: pd.DataFrame, numeric: tuple[str, ...]
              ) -> dict[str, tuple[float, float, float]]:
    """Per numeric feature: the finite minimum and maximum over the compared windows (the outer
    bin edges; NaN without one), and the largest ``|value|`` over every summarised row, NaN
    when a value is NaN or infinite (DuckDB orders NaN above +inf, so it shows as a maximum)."""
    if not numeric:
        return {}
    compared = windows.index.isin(["baseline", "incident"])
    lows = windows[[f"mn_{f}" for f in numeric]].to_numpy(float)  # NULL (or NaN) -> NaN
    highs = windows[[f"mx_{f}" for f in numeric]].to_numpy(float)
    nans = windows[[f"nan_{f}" for f in numeric]].fillna(False).to_numpy(bool)
    out = {}
    with np.errstate(all="ignore"):
        for k, feature in enumerate(numeric):
            lo, hi = lows[compared, k], highs[compared, k]
            lo, hi = lo[np.isfinite(lo)], hi[np.isfinite(hi)]
            seen = np.concatenate([lows[:, k], highs[:, k]])
            seen = seen[~np.isnan(seen)]  # NULL: a window without values
            largest = float("nan") if nans[:, k].any() or not np.all(np.isfinite(seen)) \
                else (float(np.abs(seen).max()) if seen.size else 0.0)
            out[feature] = (float(lo.min()) if lo.size else float("nan"),
                            float(hi.max()) if hi.size else float("nan"), largest)
    return out


def _get(frame: pd.DataFrame, window: str, column: str) -> float:
    """``frame.loc[window, column]`` with 0 for a window without rows (or a NULL aggregate)."""
    if window not in frame.index:
        return 0
    value = frame.at[window, column]
    return 0 if value is None or pd.isna(value) else value


def _stats(windows: pd.DataFrame, groups: pd.DataFrame, nonnull: pd.DataFrame,
           sums: pd.DataFrame, categorical_hist: dict[str, pd.DataFrame],
           numeric: tuple[str, ...], categorical: tuple[str, ...],
           shifts: dict[str, float]) -> pd.DataFrame:
    """The ``stats`` table from the per-group sums of the histogram scan (mean and population
    standard deviation merged from sums around the shift) and the window summary."""
    frames = []
    for window in ("baseline", "incident"):
        mask = (groups["window"] == window).to_numpy()
        rows = int(_get(windows, window, "n"))
        if numeric:
            names = list(numeric)
            count = nonnull[names].to_numpy(float)[mask].sum(axis=0)
            s1 = sums[[f"s1_{n}" for n in names]].to_numpy(float)[mask].sum(axis=0)
            s2 = sums[[f"s2_{n}" for n in names]].to_numpy(float)[mask].sum(axis=0)
            defaults = sums[[f"d_{n}" for n in names]].to_numpy(float)[mask].sum(axis=0)
            with np.errstate(divide="ignore", invalid="ignore"):
                mean = np.array([shifts[n] for n in names]) + s1 / count
                std = np.sqrt(np.maximum(s2 / count - (s1 / count) ** 2, 0.0))
            present = count > 0
            extremes = {c: np.array([_get(windows, window, f"{c}_{n}") for n in names], float)
                        for c in ("mn", "mx")}
            frames.append(pd.DataFrame({
                "feature": names, "window": window, "kind": "numeric", "rows": rows,
                "nonnull": count.astype(np.int64),
                "min": np.where(present, extremes["mn"], np.nan),
                "max": np.where(present, extremes["mx"], np.nan),
                "mean": np.where(present, mean, np.nan), "std": np.where(present, std, np.nan),
                "distinct": np.nan, "defaults": defaults.astype(np.int64),
            }))
        for name in categorical:
            if name in categorical_hist:
                counts = categorical_hist[name][mask].sum(axis=0)
                defaults = counts[[_is_default(c) for c in counts.index]].sum()
            else:
                defaults = sums[f"d_{name}"].to_numpy()[mask].sum()
            frames.append(pd.DataFrame([{
                "feature": name, "window": window, "kind": "categorical", "rows": rows,
                "nonnull": int(nonnull[name].to_numpy()[mask].sum()), "min": np.nan,
                "max": np.nan, "mean": np.nan, "std": np.nan,
                "distinct": int(_get(windows, window, f"cd_{name}")),
                "defaults": int(defaults),
            }]))
    columns = ["feature", "window", "kind", "rows", "nonnull", "min", "max", "mean", "std",
               "distinct", "defaults"]
    frame = pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(
        columns=columns)
    for column in ("min", "max", "mean", "std", "distinct"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


def _is_default(category: object) -> bool:
    """A categorical value that means "no real value" (as :data:`DEFAULT_TOKENS`, trimmed of
    spaces and compared case-insensitively, as the engine does for high-cardinality features)."""
    return str(category).strip(" ").lower() in DEFAULT_TOKENS


def _shift(quantiles: np.ndarray | None) -> float:
    """The baseline median (0 without one): the centre the histogram scan sums moments around."""
    median = None if quantiles is None else quantiles[LEVELS.index(0.5)]
    return float(median) if median is not None and np.isfinite(median) else 0.0


class WindowQuantiles(Mapping):
    """Quantiles per ``(feature, window)``, each window's queried on first use.

    Drift and data quality read only the baseline's (its quantiles are the bin edges); unit,
    permutation and out-of-distribution checks also read the incident's, whose query then runs
    once for every feature.
    """

    def __init__(self, load: Callable[[str], dict[tuple[str, str], np.ndarray]]) -> None:
        self._load = load
        self._values: dict[tuple[str, str], np.ndarray] = {}
        self._loaded: set[str] = set()

    def _window(self, window: str) -> None:
        if window not in self._loaded and window in ("baseline", "incident"):
            self._values.update(self._load(window))
            self._loaded.add(window)

    def __getitem__(self, key: tuple[str, str]) -> np.ndarray:
        self._window(key[1])
        return self._values[key]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        self._window("baseline")
        self._window("incident")
        return iter(dict(self._values))

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _quantiles(record: Recorder, requests: ibis.Table, period: Window,
               reference: ibis.Table | None, numeric: tuple[str, ...], windows: pd.DataFrame,
               window: str) -> dict[tuple[str, str], np.ndarray]:
    """Quantiles on :data:`LEVELS` of one window's features, on a time-hashed sample of at most
    :data:`SAMPLE_ROWS` rows.

    One query: the sampled rows are unpivoted to (feature, value), each feature's values
    collected and sorted once, and the two order statistics around every level picked out
    (:func:`~._engine.order_statistics`); Python interpolates linearly between them
    (``quantile_cont``'s and numpy's default recipe). DuckDB's own ``quantile_cont`` with a
    list of levels selects once per level, three times slower here.
    """
    out: dict[tuple[str, str], np.ndarray] = {}
    rows_in = int(_get(windows, window, "n"))
    if not numeric or not rows_in:
        return out
    rate = min(1.0, SAMPLE_ROWS / rows_in)
    values = {f"v{k}": name for k, name in enumerate(numeric)}

    if window == "baseline" and reference is not None:
        # the reference has no time to hash: DuckDB samples it with a seed, which Spark cannot
        # (ibis refuses a seeded sample there), so on Spark its quantiles are exact
        seeded = engine_for_backend(reference._find_backend()).name == "duckdb"
        sample = reference if rate >= 1 or not seeded else \
            reference.sample(rate, method="row", seed=17)
    else:
        sample = sample_by_time(requests.filter(within(requests.ts, period)), rate)
    wide = sample.select(**{v: sample[name].cast("float64") for v, name in values.items()})
    rows = wide.pivot_longer(list(values), names_to="feature", values_to="value")
    grouped = rows.group_by("feature").aggregate(s=rows.value.collect().sort(),
                                                  n=rows.value.count())
    grouped = grouped.filter(grouped.n > 0)  # NULL when a feature has no values
    below, above = order_statistics(grouped.s, grouped.n, LEVELS)
    expr = grouped.select("feature", "n", below=below, above=above)
    for row in record(expr).itertuples(index=False):
        out[(values[str(row.feature)], window)] = interpolate_quantiles(
            row.below, row.above, int(row.n), LEVELS)
    return out


def _edges(quantiles: np.ndarray | None, lo: float, hi: float
           ) -> tuple[np.ndarray, np.ndarray]:
    """Fine-bin edges, and the atoms among them (values to bin on their own, see
    :func:`~._binning.fine_histogram`).

    The edges are the baseline quantiles, plus extension bins out to the pooled minimum and
    maximum. The extension bins keep the tails resolved when the incident moves outside the
    baseline's range, which KS and Wasserstein need. Each tail gets two sets of edges
    (:data:`TAIL_BINS`: 5 bins below, 10 above, each): evenly spaced out to the extreme, and
    evenly spaced on an ``asinh`` scale from the outermost quantile (:func:`_tail_edges`), which
    starts as wide as the last inner bin and grows geometrically. The even ones resolve mass
    spread over the whole tail (a unit change), the geometric ones mass near the baseline's
    range in a tail stretched by a few far values (a heavy-tailed feature moved up, one
    outlier): with even spacing alone the first bin held all of that mass and Wasserstein came
    out twice or ten times too large. The atoms are the values the quantiles repeat (each holds
    at least a level's share of the sample).

    That makes at most 101 + 8 + 18 = 127 edges (an atom repeats at least two levels, so its
    partner edge, see :func:`~._binning.fine_histogram`, takes a place the quantiles left
    free): the engine's binary search then takes 7 comparisons per value, 128 to 255 edges
    take 8, and the comparisons are most of the histogram scan (17 features, 1M rows: 0.34
    against 0.40 s with twice the tail edges; Wasserstein on the tail shapes of the tests off
    by at most 1.3% instead of 0.8%).

    A feature that looks integral (integer quantiles and extremes) over fewer than
    :data:`INTEGER_BINS` integers gets every integer from the minimum to the maximum as an edge
    and an atom instead: when its values are integers, as it looks, every value has a point bin
    and the binned KS and Wasserstein are exact; a value between two integers lands in the bin
    between their point bins, which makes no such claim. ``lo`` and ``hi`` are the finite
    extremes of the compared windows (NaN: none).

    Examples
    --------
    >>> edges, atoms = _edges(np.array([0.0, 0.0, 1.0, 2.0, 2.0, 3.0]), 0.0, 4.0)
    >>> edges.tolist(), atoms.tolist()   # integral over 5 integers: one bin per integer
    ([0.0, 1.0, 2.0, 3.0, 4.0], [0.0, 1.0, 2.0, 3.0, 4.0])
    >>> edges, atoms = _edges(np.array([0.0, 0.0, 0.5, 2.0, 3.0]), 0.0, 3.0)
    >>> edges.tolist(), atoms.tolist()   # not integral: the quantiles, and the repeated one
    ([0.0, 0.5, 2.0, 3.0], [0.0])
    """
    if quantiles is None:
        return np.array([0.0]), np.array([])
    inner = np.unique(quantiles[np.isfinite(quantiles)])
    if not inner.size:
        return np.array([0.0]), np.array([])
    lo = lo if math.isfinite(lo) else inner[0]
    hi = hi if math.isfinite(hi) else inner[-1]
    if (hi - lo < INTEGER_BINS and float(lo).is_integer() and float(hi).is_integer()
            and np.all(inner == np.round(inner))):
        every = np.arange(lo, hi + 1)
        return every, every
    parts = [inner]
    if lo < inner[0]:
        first = inner[1] - inner[0] if inner.size > 1 else 0.0
        parts += [np.linspace(lo, inner[0], TAIL_BINS[0] + 1)[1:-1],
                  inner[0] - _tail_edges(inner[0] - lo, first, TAIL_BINS[0])]
    if hi > inner[-1]:
        last = inner[-1] - inner[-2] if inner.size > 1 else 0.0
        parts += [np.linspace(inner[-1], hi, TAIL_BINS[1] + 1)[1:-1],
                  inner[-1] + _tail_edges(hi - inner[-1], last, TAIL_BINS[1])]
    ordered = np.sort(quantiles[np.isfinite(quantiles)])
    repeated = np.unique(ordered[1:][np.diff(ordered) == 0])
    return np.unique(np.concatenate(parts)), repeated


def _tail_edges(length: float, step: float, bins: int) -> np.ndarray:
    """Offsets from the outermost quantile of the ``bins - 1`` edges inside a tail of
    ``length``, even on ``asinh(offset / step)``: about ``step`` apart near the quantile and
    geometric far from it (nearly even when the tail is short against ``step``; none without a
    step).

    Examples
    --------
    >>> np.round(_tail_edges(1e6, 10.0, 4), 1)    # a long tail: geometric
    array([  105.5,  2236.1, 47287.1])
    >>> np.round(_tail_edges(3.0, 10.0, 4), 2)    # a short one: nearly even
    array([0.74, 1.48, 2.24])
    """
    if not (length > 0 and step > 0):
        return np.array([])
    t = np.linspace(0.0, math.asinh(length / step), bins + 1)[1:-1]
    return step * np.sinh(t)


class _Scan(NamedTuple):
    """What the histogram scan returns (the fields of :class:`FeatureProfile` of the same
    names, and ``sums``: per group the moment sums and default counts)."""

    groups: pd.DataFrame
    numeric_hist: dict[str, np.ndarray]
    categorical_hist: dict[str, pd.DataFrame]
    nonnull: pd.DataFrame
    sums: pd.DataFrame
    edges: dict[str, np.ndarray]
    point_bins: dict[str, np.ndarray]


def _histograms(record: Recorder, labelled: ibis.Table, reference: ibis.Table | None,
                width: timedelta, numeric: tuple[str, ...], categorical: tuple[str, ...],
                fine: dict[str, tuple[np.ndarray, np.ndarray]], high: tuple[str, ...],
                shifts: dict[str, float], bounds: dict[str, float]) -> _Scan:
    """The one full scan: per (time bucket, window), exact counts per fine bin (numeric) or
    category, non-null counts, and for numeric features the sums ``x - shift`` and
    ``(x - shift)^2`` and the count of zeros and -1 (defaults); for high-cardinality categorical
    features the count of default tokens.

    The fine bins are counted on an integer grid where one is exact
    (:func:`~._binning.fine_histogram`, given the largest ``|value|`` the scan can meet from the
    window summary), each atom in a point bin of its own; per numeric feature the edges the
    counts refer to and the point-bin flags are returned."""
    edges_used: dict[str, np.ndarray] = {}
    point_bins: dict[str, np.ndarray] = {}

    def aggregates(rows: ibis.Table) -> dict[str, ibis.Expr]:
        aggs: dict[str, ibis.Expr] = {"n": rows.count()}
        for k, name in enumerate(numeric):
            col = rows[name].cast("float64")
            # the counts without their keys (the edges): a list per group, cheap to hand over
            edges, atoms = fine[name]
            counts, edges, points = fine_histogram(col, edges, bound=bounds[name], atoms=atoms)
            aggs[f"h{k}"], edges_used[name], point_bins[name] = counts, edges, points
            centred = col - shifts[name]
            aggs |= {f"s1_{name}": centred.sum(), f"s2_{name}": (centred * centred).sum(),
                     # two equalities: a third cheaper than IN (0, -1) in DuckDB
                     f"d_{name}": ((col == 0.0) | (col == -1.0)).sum()}
        for k, name in enumerate(categorical):
            aggs[f"c{k}"] = value_counts(rows[name].cast("string"))
        for name in high:
            aggs[f"d_{name}"] = rows[name].cast("string").strip().lower().isin(
                DEFAULT_TOKENS).sum()
        for k, name in enumerate(counted):
            aggs[f"nn{k}"] = rows[name].count()
        return aggs

    # a numeric feature's non-null values are its histogram's total: no count of its own
    counted = (*categorical, *high)
    grouped = labelled.group_by(_key=labelled._key).aggregate(**aggregates(labelled))
    scanned = _frame(record.arrow(grouped))
    starts, names = decode_bucket_window(scanned.pop("_key"), width)
    scanned.insert(0, "window", names)
    scanned.insert(0, "bucket_start", starts.set_axis(scanned.index))
    parts = [scanned]
    if reference is not None:
        ref = _frame(record.arrow(reference.aggregate(**aggregates(reference))))
        ref["bucket_start"] = pd.Series([pd.NaT] * len(ref),
                                        dtype=parts[0]["bucket_start"].dtype)
        ref["window"] = "reference"
        parts.append(ref)
    result = pd.concat(parts, ignore_index=True)
    window = result["window"].fillna("between")
    if reference is not None:
        window = window.replace({"baseline": "baseline-span", "reference": "baseline"})
    result["window"] = window
    result = result.sort_values(["bucket_start", "window"], na_position="first",
                                ignore_index=True)
    groups = result[["bucket_start", "window", "n"]].copy()
    sums = result[[c for c in result.columns if c.startswith(("s1_", "s2_", "d_"))]].astype(
        float).fillna(0.0)
    numeric_hist = {name: _bin_matrix(result[f"h{k}"], len(point_bins[name]))
                    for k, name in enumerate(numeric)}
    nonnull = pd.DataFrame(
        {name: numeric_hist[name].sum(axis=1).astype(np.int64) for name in numeric}
        | {name: result[f"nn{k}"].to_numpy() for k, name in enumerate(counted)},
        index=result.index)
    categorical_hist = {}
    for k, name in enumerate(categorical):
        # one row per group even when no group holds a value of the feature (all NULL in
        # both windows: from_records of empty maps alone gives no rows)
        frame = pd.DataFrame.from_records([m or {} for m in result[f"c{k}"]],
                                          index=result.index)
        categorical_hist[name] = frame.fillna(0.0).reindex(
            columns=sorted(frame.columns, key=str)).astype(float)
    return _Scan(groups, numeric_hist, categorical_hist, nonnull, sums, edges_used, point_bins)


def _frame(table: pa.Table) -> pd.DataFrame:
    """An Arrow result as a frame: per-bin count lists become one numpy array per group (cut
    from the flat Arrow buffer), categorical count maps become dicts, time buckets are UTC.

    The plain columns convert in one call and the frame is assembled once (column by column,
    pandas copies its blocks for every insert).
    """
    nested = [n for n, t in zip(table.column_names, table.schema.types, strict=True)
              if pa.types.is_map(t) or pa.types.is_list(t)]
    frame = table.drop_columns(nested).to_pandas()
    columns = {}
    for name in nested:
        column = table.column(name).combine_chunks()
        if pa.types.is_map(column.type):
            columns[name] = [dict(m) if m is not None else None for m in column.to_pylist()]
        else:
            values = column.values.to_numpy(zero_copy_only=False)
            offsets = column.offsets.to_numpy()
            valid = column.is_valid().to_numpy(zero_copy_only=False)
            columns[name] = pd.Series([values[a:b] if ok else None for a, b, ok in
                                       zip(offsets[:-1], offsets[1:], valid, strict=True)],
                                      dtype=object, index=frame.index)
    frame = pd.concat([frame, pd.DataFrame(columns, index=frame.index)], axis=1)
    frame = frame[table.column_names]
    for name in frame.columns:
        if isinstance(frame[name].dtype, pd.DatetimeTZDtype):
            frame[name] = frame[name].dt.tz_convert("UTC")
        elif pd.api.types.is_datetime64_dtype(frame[name]):
            frame[name] = frame[name].dt.tz_localize("UTC")
    return frame


def _bin_matrix(column: pd.Series, n_bins: int) -> np.ndarray:
    """Per-group bin counts as a (groups, n_bins) matrix from the ``map_values`` lists.

    DuckDB leaves the overflow bin out when it is empty, so a list holds ``n_bins - 1`` or
    ``n_bins`` counts; a group without values has NULL.
    """
    out = np.zeros((len(column), n_bins))
    for row, values in enumerate(column):
        if values is not None:
            out[row, :len(values)] = values
    return out
