"""Feature-permutation detection: incident column i looks like baseline column j, not i.

When a preprocessing change reorders features (e.g. a model rolled back behind a pipeline with a
different feature order), each column of the model's input holds another feature's values.
Inputs stay schema-valid, so only their distributions give it away.

Recipe: for numeric features, the distance between the incident distribution of column i and
the baseline distribution of column j is the mean absolute difference of their quantile
functions (levels 1%..99%), divided by the baseline interquartile range of j: a normalised
Wasserstein-1 distance. Column i is *permuted* when its distance to itself is at least 0.5, its
nearest other column j is at least 5x closer, and that distance is at most 0.25. For categorical
features, the Jaccard similarity of category sets plays the same role (itself below 0.5, another
column above 0.8). Only columns on a cycle of the mapping count (see
:attr:`PermutationResult.mapping`).

Finding ``integration.feature_permutation`` (pathway integration: the data are fine, their
positions are not); high with two or more permuted columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from toolkit._validation import check_windows
from toolkit.diagnose._base import DiagnosticResult, Finding, NotAssessed
from toolkit.diagnose._case import CaseView, case_view
from toolkit.diagnose._engines import CaseSource
from toolkit.diagnose._profile import LEVELS, feature_profile
from toolkit.types import Window

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["feature_permutation", "PermutationResult", "ID"]

ID = "data.permutation"
SELF_MIN = 0.5
OTHER_MAX = 0.25
RATIO = 5.0


@dataclass(frozen=True, kw_only=True, repr=False)
class PermutationResult(DiagnosticResult):
    """Which incident columns match which baseline columns.

    Attributes
    ----------
    table
        One row per feature: ``feature``, ``self_distance``, ``closest``,
        ``closest_distance``, ``permuted``.
    distances
        The full matrix (incident column x baseline column) of numeric distances.
    """

    id = ID
    title = "Feature positions"

    distances: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    @property
    def mapping(self) -> dict[str, str]:
        """Incident column -> the baseline column whose values it carries.

        Only columns on a cycle count: when features are reordered, the column a moved
        feature left is filled by another one, so the mapping closes on itself. A lone column
        that merely resembles another feature (e.g. after a shift) is not a permutation.
        """
        if self.table.empty:
            return {}
        hits = self.table[self.table["permuted"]]
        raw = dict(zip(hits["feature"], hits["closest"], strict=True))
        return {k: v for k, v in raw.items() if _on_cycle(k, raw)}

    def headline(self) -> dict[str, Any]:
        return {"features checked": len(self.table), "permuted": len(self.mapping)}

    def findings(self) -> list[Finding]:
        mapping = self.mapping
        if not mapping:
            return []
        rows = self.table.set_index("feature").loc[list(mapping)]
        return [Finding(
            id="integration.feature_permutation", pathway="integration",
            severity="high" if len(mapping) >= 2 else "medium",
            statistic=float(len(mapping)), threshold=0.0,
            summary=("features arrive in the wrong positions: " + ", ".join(
                f"{k} carries {v}" for k, v in mapping.items()) + "."),
            evidence={"mapping": mapping,
                      "self_distance": rows["self_distance"].round(3).to_dict(),
                      "closest_distance": rows["closest_distance"].round(3).to_dict()},
            diagnostic=self.id,
        )]

    def plot(self, ax: Axes | None = None, **kwargs: Any) -> Axes:
        """Heatmap of distances between incident and baseline columns (diagonal = itself)."""
        from toolkit.plotting import axes

        ax = axes(ax, figsize=(6.5, 5.5))
        if self.distances.empty:
            return super().plot(ax)
        import seaborn as sns

        sns.heatmap(self.distances.clip(upper=2.0), ax=ax, cmap="mako", annot=len(
            self.distances) <= 12, fmt=".2f", cbar_kws={"label": "normalised W1 (capped at 2)"})
        ax.set_xlabel("baseline column")
        ax.set_ylabel("incident column")
        ax.set_title("Which baseline feature each incident column resembles")
        return ax


def feature_permutation(
    con: CaseSource,
    baseline: Window | str,
    incident: Window | str,
    /,
    *,
    features: list[str] | None = None,
    bucket: timedelta | None = None,
    case: CaseView | None = None,
) -> PermutationResult:
    """Detect input columns that carry another feature's values.

    Examples
    --------
    >>> import numpy as np, pandas as pd, toolkit as tk
    >>> rng = np.random.default_rng(5)
    >>> n = 4000
    >>> ts = pd.date_range("2026-03-01", periods=n, freq="min", tz="UTC")
    >>> age, amount = rng.normal(40, 10, n), rng.lognormal(5, 0.5, n)
    >>> age[n // 2:], amount[n // 2:] = amount[n // 2:].copy(), age[n // 2:].copy()
    >>> con = tk.connect()
    >>> _ = tk.load(con, pd.DataFrame({"request_id": range(n), "ts": ts, "age": age,
    ...                                "amount": amount}), table="requests")
    >>> feature_permutation(con, (ts[0], ts[n // 2]), (ts[n // 2], ts[-1])).mapping
    {'age': 'amount', 'amount': 'age'}
    """
    baseline, incident = check_windows(baseline, incident)
    case = case or case_view(con)
    base = dict(baseline=baseline, incident=incident)
    names = features if features is not None else case.feature_names()
    if len(names) < 2:
        return PermutationResult(**base, not_assessed=(
            NotAssessed(ID, "fewer than two features"),))
    profile = feature_profile(case, baseline, incident, features=features, bucket=bucket)
    rows = []
    numeric = [n for n in profile.numeric if (n, "baseline") in profile.quantiles and
               (n, "incident") in profile.quantiles]
    matrix = _numeric_distances(profile, numeric)
    for feature in numeric:
        rows.append(_verdict(feature, matrix.loc[feature]))
    categorical = [c for c in profile.categorical if c in profile.categorical_hist]
    if len(categorical) >= 2:
        similarity = _category_similarity(profile, categorical)
        for feature in categorical:
            rows.append(_category_verdict(feature, similarity.loc[feature]))
    return PermutationResult(**base, table=pd.DataFrame(rows), distances=matrix,
                             sql=profile.sql)


def _on_cycle(start: str, mapping: dict[str, str]) -> bool:
    seen, node = set(), start
    while node in mapping and node not in seen:
        seen.add(node)
        node = mapping[node]
    return node == start


def _numeric_distances(profile, numeric: list[str]) -> pd.DataFrame:
    levels = np.asarray(LEVELS)
    keep = (levels >= 0.01) & (levels <= 0.99)
    quartiles = (np.abs(levels - 0.25) < 1e-9) | (np.abs(levels - 0.75) < 1e-9)
    matrix = pd.DataFrame(index=numeric, columns=numeric, dtype=float)
    for j in numeric:
        qb = profile.quantiles[(j, "baseline")]
        iqr = float(np.diff(qb[quartiles])[0]) if quartiles.sum() == 2 else 0.0
        scale = iqr if iqr > 0 else max(float(np.std(qb[keep])), 1e-9)
        for i in numeric:
            qi = profile.quantiles[(i, "incident")]
            matrix.loc[i, j] = float(np.mean(np.abs(qi[keep] - qb[keep]))) / scale
    return matrix


def _verdict(feature: str, distances: pd.Series) -> dict[str, Any]:
    own = float(distances[feature])
    others = distances.drop(feature)
    closest = others.idxmin() if len(others) else None
    other = float(others.min()) if len(others) else np.nan
    permuted = bool(own >= SELF_MIN and other <= OTHER_MAX and other * RATIO <= own)
    return {"feature": feature, "kind": "numeric", "self_distance": own, "closest": closest,
            "closest_distance": other, "permuted": permuted}


def _category_similarity(profile, categorical: list[str]) -> pd.DataFrame:
    sets_b, sets_i = {}, {}
    for feature in categorical:
        categories, b, i = profile.categorical_counts(feature)
        sets_b[feature] = {c for c, n in zip(categories, b, strict=True) if n > 0}
        sets_i[feature] = {c for c, n in zip(categories, i, strict=True) if n > 0}
    similarity = pd.DataFrame(index=categorical, columns=categorical, dtype=float)
    for i in categorical:
        for j in categorical:
            union = sets_i[i] | sets_b[j]
            similarity.loc[i, j] = len(sets_i[i] & sets_b[j]) / len(union) if union else 1.0
    return similarity


def _category_verdict(feature: str, similarity: pd.Series) -> dict[str, Any]:
    own = float(similarity[feature])
    others = similarity.drop(feature)
    closest = others.idxmax() if len(others) else None
    best = float(others.max()) if len(others) else np.nan
    return {"feature": feature, "kind": "categorical", "self_distance": 1 - own,
            "closest": closest, "closest_distance": 1 - best,
            "permuted": bool(own < 0.5 and best > 0.8)}
