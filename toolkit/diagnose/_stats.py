"""Statistics on small summaries (counts, bins, quantiles) that the engine aggregated.

Nothing here sees raw rows. Every function states its recipe; tests check them against scipy
and hand calculations.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats
from scipy.spatial import distance

__all__ = [
    "p_text",
    "PSI_EPSILON",
    "psi",
    "psi_evidently",
    "ks_from_counts",
    "ks_pvalue",
    "fisher_greater",
    "js_distance",
    "chi2_contingency_test",
    "chi2_goodness_of_fit",
    "wasserstein_from_histogram",
    "wasserstein_from_quantiles",
    "benjamini_hochberg",
    "wilson_interval",
    "two_proportion_z",
    "robust_z",
    "knee",
]

#: Floor applied to empty-bin proportions in the default PSI recipe.
PSI_EPSILON = 1e-4


def psi(expected: np.ndarray, actual: np.ndarray, *, epsilon: float = PSI_EPSILON) -> float:
    """Population stability index of ``actual`` counts against ``expected`` counts.

    Recipe: proportions ``E_k = e_k / sum(e)``, ``A_k = a_k / sum(a)``, each floored at
    ``epsilon`` (no renormalisation), ``PSI = sum((A_k - E_k) * ln(A_k / E_k))`` (natural log).

    Examples
    --------
    >>> round(psi(np.array([50, 50]), np.array([25, 75])), 4)
    0.2747
    """
    e = _proportions(expected, epsilon)
    a = _proportions(actual, epsilon)
    return float(np.sum((a - e) * np.log(a / e)))


def psi_rows(expected: np.ndarray, actual: np.ndarray, *,
             epsilon: float = PSI_EPSILON) -> np.ndarray:
    """:func:`psi` of every row of the count matrix ``actual`` against ``expected``.

    Examples
    --------
    >>> np.round(psi_rows(np.array([50, 50]), np.array([[25, 75], [50, 50]])), 4)
    array([0.2747, 0.    ])
    """
    actual = np.asarray(actual, dtype=float)
    e = _proportions(expected, epsilon)
    totals = actual.sum(axis=1, keepdims=True)
    a = np.divide(actual, totals, out=np.zeros_like(actual), where=totals > 0)
    a = np.maximum(a, epsilon)
    return np.sum((a - e) * np.log(a / e), axis=1)


def psi_evidently(reference: np.ndarray, current: np.ndarray) -> float:
    """PSI with Evidently 0.7's empty-bin fill.

    A zero proportion becomes ``min(nonzero) / 1e6`` when the smallest non-zero proportion is at
    most 1e-4, else 1e-4 (``evidently.legacy.calculations.stattests.utils``).
    """
    r = _evidently_fill(np.asarray(reference, dtype=float) / max(np.sum(reference), 1))
    c = _evidently_fill(np.asarray(current, dtype=float) / max(np.sum(current), 1))
    return float(np.sum((r - c) * np.log(r / c)))


def _evidently_fill(p: np.ndarray) -> np.ndarray:
    p = p.copy()
    nonzero = p[p > 0]
    if nonzero.size == 0:
        return np.full_like(p, 1e-4)
    fill = nonzero.min() / 1e6 if nonzero.min() <= 1e-4 else 1e-4
    p[p == 0] = fill
    return p


def _proportions(counts: np.ndarray, epsilon: float) -> np.ndarray:
    counts = np.asarray(counts, dtype=float)
    total = counts.sum()
    p = counts / total if total > 0 else np.zeros_like(counts)
    return np.maximum(p, epsilon)


def ks_from_counts(baseline: np.ndarray, incident: np.ndarray,
                   points: np.ndarray | None = None) -> tuple[float, float]:
    """Two-sample KS statistic from counts in shared ordered bins, with its error bound.

    Both empirical CDFs are known exactly at every bin edge, so ``D_edges = max |F_b - F_i|``
    over the edges is a lower bound of the true statistic ``D``. Inside a bin each CDF stays
    between its values at the bin's two edges, so ``D <= D_upper = max over bins of
    max(F_b(hi) - F_i(lo), F_i(hi) - F_b(lo))``. ``points`` flags bins that hold a single value
    (point bins, see :func:`~._binning.fine_histogram`): both CDFs jump there at once, so such a
    bin adds nothing between its edges and a discrete feature binned on its values gets
    ``D_upper == D_edges``.

    Returns
    -------
    (D_edges, D_upper)

    Examples
    --------
    >>> ks_from_counts(np.array([1, 1, 0]), np.array([0, 1, 1]))
    (0.5, 1.0)
    >>> ks_from_counts(np.array([1, 1, 0]), np.array([0, 1, 1]), np.array([True, True, True]))
    (0.5, 0.5)
    """
    b = np.asarray(baseline, dtype=float)
    i = np.asarray(incident, dtype=float)
    fb = np.concatenate([[0.0], np.cumsum(b) / max(b.sum(), 1)])
    fi = np.concatenate([[0.0], np.cumsum(i) / max(i.sum(), 1)])
    lower = float(np.max(np.abs(fb - fi)))
    spread = np.ones(len(b), dtype=bool) if points is None else ~np.asarray(points, dtype=bool)
    across = np.maximum(fb[1:] - fi[:-1], fi[1:] - fb[:-1])[spread]
    return lower, float(across.max(initial=lower))


def ks_pvalue(d: float, n: int, m: int) -> float:
    """Asymptotic two-sided p-value of a two-sample KS statistic (``ks_2samp(method='asymp')``)."""
    if n == 0 or m == 0 or math.isnan(d):
        return float("nan")
    effective = round(n * m / (n + m))
    return float(np.clip(stats.kstwo.sf(d, max(effective, 1)), 0.0, 1.0))


def js_distance(p: np.ndarray, q: np.ndarray, *, base: float | None = 2.0) -> float:
    """Jensen-Shannon distance between two count vectors on the same categories.

    ``base=2`` gives a distance in [0, 1]; ``base=None`` uses the natural log (Evidently,
    range [0, sqrt(ln 2)]). No empty-bin fill is needed.
    """
    p = np.asarray(p, dtype=float)
    q = np.asarray(q, dtype=float)
    if p.sum() == 0 or q.sum() == 0:
        return float("nan")
    return float(distance.jensenshannon(p / p.sum(), q / q.sum(), base=base))


def chi2_contingency_test(baseline: np.ndarray, incident: np.ndarray) -> tuple[float, float, int]:
    """Chi-square test of independence on the 2 x K table of category counts.

    Categories empty in both windows are dropped. Returns ``(statistic, pvalue, dof)``; NaN when
    fewer than two categories remain.
    """
    table = np.vstack([np.asarray(baseline, dtype=float), np.asarray(incident, dtype=float)])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return float("nan"), float("nan"), 0
    result = stats.chi2_contingency(table, correction=False)
    return float(result.statistic), float(result.pvalue), int(result.dof)


def fisher_greater(k, n, k_other, n_other):
    """One-sided Fisher exact p-value that ``k`` of ``n`` is a higher rate than ``k_other`` of
    ``n_other``: ``P(X >= k)``, ``X ~ Hypergeometric(n + n_other, k + k_other, n)`` (as
    ``scipy.stats.fisher_exact(..., alternative='greater')``); 1 where ``k`` is 0. Scalars give
    a float, arrays an array (element-wise).

    Examples
    --------
    >>> round(fisher_greater(6, 8, 0, 12), 6)  # C(8, 6) / C(20, 6)
    0.000722
    """
    k, n, k_other, n_other = (np.asarray(x, dtype=float) for x in (k, n, k_other, n_other))
    p = stats.hypergeom.sf(k - 1, n + n_other, k + k_other, n)
    p = np.where(k <= 0, 1.0, np.clip(p, 0.0, 1.0))
    return float(p) if p.ndim == 0 else p


def chi2_goodness_of_fit(reference: np.ndarray, current: np.ndarray) -> float:
    """Evidently's ``chisquare`` p-value: current counts against reference proportions."""
    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(current, dtype=float)
    keep = ref > 0
    expected = ref[keep] / ref[keep].sum() * cur.sum()
    observed = cur[keep]
    observed = observed * expected.sum() / max(observed.sum(), 1e-12)
    return float(stats.chisquare(observed, expected).pvalue)


def wasserstein_from_histogram(
    bounds: np.ndarray, baseline: np.ndarray, incident: np.ndarray
) -> float:
    """Wasserstein-1 distance from counts in bins with known bounds.

    ``bounds`` has one more entry than the count vectors (the outer bounds are the pooled
    minimum and maximum). Both CDFs are taken as linear inside each bin, so ``|F_b - F_i|`` is
    linear there and is integrated exactly (with the sign change located). The error is at most
    the sum over bins of ``width * min(mass_b, mass_i)``-sized within-bin shape differences; it
    vanishes as bins get finer.
    """
    x = np.asarray(bounds, dtype=float)
    b = np.asarray(baseline, dtype=float)
    i = np.asarray(incident, dtype=float)
    fb = np.concatenate([[0.0], np.cumsum(b) / max(b.sum(), 1)])
    fi = np.concatenate([[0.0], np.cumsum(i) / max(i.sum(), 1)])
    d = fb - fi
    width = np.diff(x)
    lo, hi = d[:-1], d[1:]
    same = lo * hi >= 0
    area = np.where(same, width * (np.abs(lo) + np.abs(hi)) / 2, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        cross = np.abs(lo) / (np.abs(lo) + np.abs(hi))
    area = np.where(~same, width * (np.abs(lo) * cross + np.abs(hi) * (1 - cross)) / 2, area)
    return float(np.nansum(area))


def wasserstein_from_quantiles(q_baseline: np.ndarray, q_incident: np.ndarray) -> float:
    """Wasserstein-1 as the mean absolute difference of quantile functions on a common grid."""
    return float(np.mean(np.abs(np.asarray(q_baseline) - np.asarray(q_incident))))


def benjamini_hochberg(pvalues: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (false discovery rate); NaN stays NaN.

    Examples
    --------
    >>> benjamini_hochberg(np.array([0.01, 0.04, 0.03])).round(3).tolist()
    [0.03, 0.04, 0.04]
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    if not ok.any():
        return out
    values = p[ok]
    order = np.argsort(values)
    ranked = values[order] * len(values) / (np.arange(len(values)) + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1]
    result = np.empty_like(values)
    result[order] = np.minimum(adjusted, 1.0)
    out[ok] = result
    return out


def wilson_interval(successes: np.ndarray, n: np.ndarray, *, z: float = 1.959964
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a proportion (vectorised); NaN where ``n == 0``.

    Examples
    --------
    >>> lo, hi = wilson_interval(np.array([9]), np.array([10]))
    >>> round(float(lo[0]), 4), round(float(hi[0]), 4)
    (0.5958, 0.9821)
    """
    k = np.asarray(successes, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / n
        denom = 1 + z**2 / n
        centre = (p + z**2 / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    lo = np.where(n > 0, centre - half, np.nan)
    hi = np.where(n > 0, centre + half, np.nan)
    return lo, hi


def two_proportion_z(k1: float, n1: float, k2: float, n2: float) -> tuple[float, float]:
    """Two-sided two-proportion z-test with pooled variance: ``(z, pvalue)``."""
    if n1 == 0 or n2 == 0:
        return float("nan"), float("nan")
    p1, p2 = k1 / n1, k2 / n2
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 0.0, 1.0
    z = (p2 - p1) / se
    return float(z), float(2 * stats.norm.sf(abs(z)))


def p_text(p: float, relation: str = "") -> str:
    """A p-value for a finding's sentence: ``< 1e-12`` below double precision's useful range
    (a p-value of 0.0 is an underflow, not a certainty), else two significant digits.

    Examples
    --------
    >>> p_text(0.0), p_text(3.16e-7, "<="), p_text(0.0412)
    ('< 1e-12', '<= 3.2e-07', '0.041')
    """
    if p < 1e-12:
        return "< 1e-12"
    shown = f"{p:.1e}" if p < 1e-3 else f"{p:.2g}"
    return f"{relation} {shown}" if relation else shown


def robust_z(values: np.ndarray) -> np.ndarray:
    """Robust z-scores: ``(x - median) / (1.4826 * MAD)``; 0 where the MAD is 0 and x = median."""
    x = np.asarray(values, dtype=float)
    median = np.nanmedian(x)
    mad = 1.4826 * np.nanmedian(np.abs(x - median))
    if mad == 0 or np.isnan(mad):
        spread = np.nanstd(x)
        mad = spread if spread > 0 else 1.0
    return (x - median) / mad


def knee(x: np.ndarray, y: np.ndarray) -> float:
    """The x where a two-segment piecewise-linear fit of ``y`` on ``x`` breaks (least squares).

    Returns NaN with fewer than four points.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    order = np.argsort(x)
    x, y = x[order], y[order]
    if len(x) < 4:
        return float("nan")
    best, best_sse = float("nan"), math.inf
    for k in range(2, len(x) - 1):
        sse = 0.0
        for xs, ys in ((x[:k], y[:k]), (x[k - 1:], y[k - 1:])):
            if len(xs) >= 2 and np.ptp(xs) > 0:
                coef = np.polyfit(xs, ys, 1)
                sse += float(np.sum((np.polyval(coef, xs) - ys) ** 2))
        if sse < best_sse:
            best, best_sse = float(x[k - 1]), sse
    return best
