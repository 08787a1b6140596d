"""Prompt population of a generative endpoint: prompt-length and adapter / tenant mix drift.

Recipes
-------
**Prompt length** (``input_tokens``; ``output_tokens`` the same way, to see whether output
length follows). The engine counts the requests per window and distinct token count (token
counts are integers: a few thousand distinct values at most), and per time bucket per
baseline-quantile bin (DuckDB ``histogram`` through :func:`~.._binning.fine_histogram`).
From those counts, exactly:

* baseline deciles (linear interpolation between order statistics, as ``numpy.quantile`` and
  DuckDB's ``quantile_cont``), whose distinct values are the right-closed bin edges;
* **PSI** on those bins (natural log, empty-bin proportions floored at 1e-4,
  :func:`~.._stats.psi`), **Jensen-Shannon distance** on the same bins (base 2, in [0, 1]);
* the two-sample **KS** statistic, exact (both empirical CDFs at every distinct value), and
  its asymptotic p-value (``scipy.stats.ks_2samp(method="asymp")``);
* per time bucket: requests, mean prompt and output length, PSI of the bucket against the
  baseline bins (buckets with at least 30 requests).

Only interactive generative requests are read: those with ``input_tokens`` or
``output_tokens`` whose ``endpoint`` is not a batch-transform job (``batch-transform:<job>``,
:data:`~toolkit.diagnose.case.batch_runs.BATCH_PREFIX`: offline runs are not the served
traffic's population, and ``case.batch_runs`` compares them run over run); a case without any
is not assessed (a classifier's input mix is ``data.drift``'s).

**Mix** of each categorical request attribute in ``attributes`` (default ``adapter``,
``endpoint``, ``tenant`` (a column the mapping kept), ``client_version``; those with values): counts per window and
value (``histogram`` in one scan), **chi-square** test of the 2 x K table (no continuity
correction), **JS distance** (base 2), the share of incident requests whose value never served
in the baseline, and per time bucket the JS distance against the baseline mix. An attribute
with more than :data:`MAX_CATEGORIES` values is not compared (``not_assessed``).

**Artifact changes** are what tells prompt shift from a release: ``deploy``, ``rollback`` and
``config_change`` events from the baseline's end to the incident's end, and versions
(``model_version``, ``pipeline_version``, ``client_version``, ``template_version``) that serve
in the incident but never in the baseline. They are evidence, never a finding here.

Findings (ids and evidence keys, for the classifier's rules)
------------------------------------------------------------
``data.prompt_length_shift`` (pathway data): PSI of ``input_tokens`` >= 0.1 and KS p-value
below 1e-3; severity high from PSI 0.25, else medium. Evidence: ``psi``, ``ks``,
``ks_pvalue``, ``js``, ``mean_baseline``, ``mean_incident``, ``p50_baseline``,
``p50_incident``, ``p90_baseline``, ``p90_incident``, ``length_ratio`` (incident / baseline
mean), ``output_psi``, ``output_ratio`` (mean output tokens, incident / baseline; NaN without
``output_tokens``), ``output_follows`` (output PSI >= 0.1), ``artifact_changed`` (bool),
``events`` (list of ``{ts, kind, artifact, version}``), ``new_versions`` (column -> list),
``n_baseline``, ``n_incident``.

``data.mix_shift`` (pathway data): the attribute with the largest JS distance among those with
JS >= 0.1 and chi-square p-value below 1e-3; high from JS 0.25, else medium. Evidence:
``attribute``, ``js``, ``chi2``, ``pvalue``, ``dof``, ``unseen_share``, ``movers`` (the five
values whose share moved most: ``{value, share_baseline, share_incident}``), ``attributes``
(every shifted attribute -> ``{js, pvalue}``), ``artifact_changed``, ``events``,
``new_versions``. A version column (``client_version``) whose incident serves at least 5% of
its requests with values that were rare in the baseline (under 1% of it: the
``emerging_share``; a rollout may start in the baseline's last minutes) is a rollout, a
release, and never the mix shift (healthy simulated periods with a client rollout read as
one); its shares moving among established versions are.

Onsets come from the per-bucket mean prompt length and the per-bucket JS distance of the mix
(buckets with at least 5 requests), fitted as a ramp after the baseline.
Task: generative endpoints (any case whose requests carry ``input_tokens``); not assessed,
with the reason, without ``input_tokens`` (the mix part runs on whatever attributes exist).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import ibis
import numpy as np
import pandas as pd

from toolkit._validation import check_windows
from toolkit.diagnose import _stats as st
from toolkit.diagnose._base import DiagnosticResult, Finding, NotAssessed, timeline_signals
from toolkit.diagnose._binning import fine_histogram
from toolkit.diagnose._case import MIN_WINDOW_ROWS, CaseView, case_view, choose_bucket, within
from toolkit.diagnose._engine import Recorder, bucket_expr, value_counts, window_label
from toolkit.diagnose._engines import CaseSource
from toolkit.diagnose._onset import coarse_onset
from toolkit.diagnose.case.batch_runs import BATCH_PREFIX
from toolkit.types import Window

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["prompt_mix", "PromptMixResult", "ID", "quantiles_from_counts", "ks_exact_counts",
           "artifact_changes"]

ID = "data.prompt_mix"
MODERATE_PSI = 0.10
MAJOR_PSI = 0.25
MODERATE_JS = 0.10
MAJOR_JS = 0.25
ALPHA = 1e-3
#: A value below this share of the baseline is rare there; the incident's share of such values
#: is the attribute's ``emerging_share``.
RARE_SHARE = 0.01
#: A version column whose emerging share reaches this is a rollout, not a population move.
ROLLOUT_SHARE = 0.05
#: Attributes with at most this many values are counted per bucket by one sum per value.
MAX_INDICATORS = 30
#: Per-bucket count of values outside the windows' (see :data:`MAX_INDICATORS`).
_OTHER = "\x00other"
#: An attribute with more distinct values than this is an id, not a mix.
MAX_CATEGORIES = 200
DEFAULT_ATTRIBUTES = ("adapter", "endpoint", "tenant", "client_version")
#: A request with one of these is generative (the only requests this diagnostic reads).
TOKEN_COLUMNS = ("input_tokens", "output_tokens")
VERSION_COLUMNS = ("model_version", "pipeline_version", "client_version", "template_version")
RELEASE_KINDS = ("deploy", "rollback", "config_change")
_DECILES = np.linspace(0.1, 0.9, 9)
#: Fewest requests of a bucket whose mix is compared with the baseline's (for the onset; the
#: distance of a small bucket is biased up, the same in every bucket, which a ramp fit absorbs).
MIN_BUCKET_ROWS = 5


@dataclass(frozen=True, kw_only=True, repr=False)
class PromptMixResult(DiagnosticResult):
    """Prompt-length and request-mix drift between the windows and over time.

    Attributes
    ----------
    table
        One row per compared quantity: ``quantity`` (``input_tokens``, ``output_tokens`` or
        an attribute name), ``kind`` (``length`` / ``mix``), ``n_baseline``, ``n_incident``,
        ``psi``, ``ks``, ``ks_pvalue`` (lengths), ``js``, ``chi2``, ``pvalue``, ``dof``,
        ``unseen_share``, ``emerging_share`` (mixes), ``mean_baseline``, ``mean_incident``, ``p50_*``, ``p90_*``.
    timeline
        Per time bucket: ``bucket_start``, ``requests``, ``input_mean``, ``output_mean``,
        ``input_psi`` (buckets with at least 30 requests) and one ``js_<attribute>`` column
        per compared attribute (buckets with at least 5).
    shares
        Per attribute, window and value: ``attribute``, ``window``, ``value``, ``n``,
        ``share``.
    context
        Artifact changes (``artifact_changed``, ``events``, ``new_versions``).
    """

    id = ID
    title = "Prompt length and request mix"

    timeline: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    shares: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    context: dict[str, Any] = field(default_factory=dict, repr=False)

    def row(self, quantity: str) -> pd.Series | None:
        rows = self.table[self.table["quantity"] == quantity] if not self.table.empty else \
            self.table
        return None if rows.empty else rows.iloc[0]

    def headline(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        length = self.row("input_tokens")
        if length is not None:
            out |= {"prompt PSI": float(length["psi"]),
                    "prompt mean baseline": float(length["mean_baseline"]),
                    "prompt mean incident": float(length["mean_incident"])}
        mixes = self.table[self.table["kind"] == "mix"] if not self.table.empty else self.table
        if not mixes.empty:
            top = mixes.sort_values("js", ascending=False).iloc[0]
            out |= {"largest mix shift": str(top["quantity"]), "mix JS": float(top["js"])}
        return out

    def findings(self) -> list[Finding]:
        out = []
        length = self.row("input_tokens")
        if length is not None and length["psi"] >= MODERATE_PSI and \
                length["ks_pvalue"] < ALPHA:
            out.append(self._length_finding(length))
        mix = self._mix_finding()
        if mix is not None:
            out.append(mix)
        return out

    def _length_finding(self, row: pd.Series) -> Finding:
        output = self.row("output_tokens")
        output_psi = float(output["psi"]) if output is not None else float("nan")
        output_ratio = float(output["mean_incident"] / output["mean_baseline"]) \
            if output is not None and output["mean_baseline"] > 0 else float("nan")
        ratio = float(row["mean_incident"] / row["mean_baseline"]) \
            if row["mean_baseline"] > 0 else float("nan")
        psi = float(row["psi"])
        return Finding(
            id="data.prompt_length_shift", pathway="data",
            severity="high" if psi >= MAJOR_PSI else "medium", statistic=psi,
            threshold=MODERATE_PSI,
            summary=(f"prompt length moved (PSI {psi:.2f}, KS {row['ks']:.2f}): mean "
                     f"{row['mean_baseline']:.0f} -> {row['mean_incident']:.0f} tokens"
                     + ("" if self.context.get("artifact_changed") else
                        ", with no artifact change") + "."),
            evidence={
                "psi": psi, "ks": float(row["ks"]), "ks_pvalue": float(row["ks_pvalue"]),
                "js": float(row["js"]), "mean_baseline": float(row["mean_baseline"]),
                "mean_incident": float(row["mean_incident"]),
                "p50_baseline": float(row["p50_baseline"]),
                "p50_incident": float(row["p50_incident"]),
                "p90_baseline": float(row["p90_baseline"]),
                "p90_incident": float(row["p90_incident"]), "length_ratio": ratio,
                "output_psi": output_psi, "output_ratio": output_ratio,
                "output_follows": bool(output_psi >= MODERATE_PSI),
                "n_baseline": int(row["n_baseline"]), "n_incident": int(row["n_incident"]),
                **self.context},
            onset=self._onset("input_mean", 1 if ratio >= 1 else -1), diagnostic=self.id)

    def _mix_finding(self) -> Finding | None:
        if self.table.empty:
            return None
        # a version column whose incident brings new values is a rollout (a release, in
        # ``new_versions``), not a population move
        rollout = self.table["quantity"].isin(VERSION_COLUMNS) & (
            self.table["emerging_share"] >= ROLLOUT_SHARE)
        mixes = self.table[(self.table["kind"] == "mix") & (self.table["js"] >= MODERATE_JS)
                           & (self.table["pvalue"] < ALPHA) & ~rollout]
        if mixes.empty:
            return None
        mixes = mixes.sort_values("js", ascending=False)
        top = mixes.iloc[0]
        attribute = str(top["quantity"])
        s = self.shares[self.shares["attribute"] == attribute].pivot_table(
            index="value", columns="window", values="share", fill_value=0.0)
        for name in ("baseline", "incident"):
            if name not in s:
                s[name] = 0.0
        s["move"] = (s["incident"] - s["baseline"]).abs()
        movers = [{"value": str(v), "share_baseline": float(r.baseline),
                   "share_incident": float(r.incident)}
                  for v, r in s.sort_values("move", ascending=False).head(5).iterrows()]
        js = float(top["js"])
        lead = movers[0]
        return Finding(
            id="data.mix_shift", pathway="data",
            severity="high" if js >= MAJOR_JS else "medium", statistic=js,
            threshold=MODERATE_JS,
            summary=(f"the {attribute} mix moved (JS {js:.2f}, chi-square p "
                     f"{st.p_text(float(top['pvalue']))}): {lead['value']} {lead['share_baseline']:.0%} -> "
                     f"{lead['share_incident']:.0%} of requests."),
            evidence={"attribute": attribute, "js": js, "chi2": float(top["chi2"]),
                      "pvalue": float(top["pvalue"]), "dof": int(top["dof"]),
                      "unseen_share": float(top["unseen_share"]), "movers": movers,
                      "attributes": {str(r.quantity): {"js": float(r.js),
                                                       "pvalue": float(r.pvalue)}
                                     for r in mixes.itertuples()},
                      **self.context},
            onset=self._onset(f"js_{attribute}", 1), diagnostic=self.id)

    def _onset(self, column: str, direction: int):
        if self.timeline.empty or column not in self.timeline:
            return None
        t = self.timeline.dropna(subset=[column])
        if len(t) < 3:
            return None
        return coarse_onset(t, column, after=self.baseline.end, weights="requests",
                            direction=direction)

    def signals(self) -> pd.DataFrame:
        columns = [c for c in ("input_mean", "input_psi") if c in self.timeline]
        return timeline_signals(self.timeline, columns, "prompt_mix.", dropna=True)

    def plot(self, ax: Axes | None = None, **kwargs: Any) -> Axes:
        """Mean prompt and output length per bucket; the incident shaded."""
        from toolkit.plotting import WINDOW_COLORS, axes

        ax = axes(ax, figsize=(10, 4))
        if self.timeline.empty:
            return super().plot(ax)
        t = self.timeline
        ax.plot(t["bucket_start"], t["input_mean"], label="prompt tokens (mean)")
        if t["output_mean"].notna().any():
            ax.plot(t["bucket_start"], t["output_mean"], label="output tokens (mean)")
        ax.axvspan(self.incident.start, self.incident.end, color=WINDOW_COLORS["incident"],
                   alpha=0.08, label="incident")
        ax.set_xlabel("request time (UTC)")
        ax.set_ylabel("tokens")
        ax.set_title("Prompt and output length")
        ax.legend(loc="upper left")
        return ax


def prompt_mix(
    con: CaseSource,
    baseline: Window | str,
    incident: Window | str,
    /,
    *,
    attributes: tuple[str, ...] | list[str] | None = None,
    bucket: timedelta | None = None,
    case: CaseView | None = None,
) -> PromptMixResult:
    """Prompt-length drift (PSI, KS, JS) and request-mix drift (chi-square, JS) of a
    generative endpoint, between the windows and per time bucket.

    Parameters
    ----------
    con
        Case connection.
    baseline, incident
        The windows (``Window``, ``"START/END"`` or ``(start, end)``).
    attributes
        Categorical request columns whose mix is compared (default
        :data:`DEFAULT_ATTRIBUTES`, those the case has).
    bucket
        Timeline bucket width (default: about 240 buckets over the windows).
    case
        A :class:`~toolkit.diagnose._case.CaseView` to share between diagnostics.

    Examples
    --------
    >>> import pandas as pd, toolkit as tk
    >>> con = tk.connect()
    >>> ts = pd.date_range("2026-03-01", periods=400, freq="min", tz="UTC")
    >>> tokens = [100 + k % 50 for k in range(200)] + [400 + k % 50 for k in range(200)]
    >>> _ = tk.load(con, pd.DataFrame({"request_id": range(400), "ts": ts,
    ...                                "input_tokens": tokens}), table="requests")
    >>> r = prompt_mix(con, (ts[0], ts[200]), (ts[200], ts[-1] + pd.Timedelta("1min")))
    >>> [f.id for f in r.findings()], float(r.row("input_tokens")["ks"])
    (['data.prompt_length_shift'], 1.0)
    """
    baseline, incident = check_windows(baseline, incident)
    case = case or case_view(con)
    base = dict(baseline=baseline, incident=incident)
    if not case.has("requests"):
        return PromptMixResult(**base, not_assessed=(NotAssessed(ID, "the case has no requests"),))
    columns = case.columns["requests"]
    if not any(c in columns for c in TOKEN_COLUMNS):
        return PromptMixResult(**base, not_assessed=(NotAssessed(
            ID, "no generative request: requests carry no input_tokens or output_tokens (a "
                "classifier's input mix is data.drift's)"),))
    wanted = DEFAULT_ATTRIBUTES if attributes is None else tuple(attributes)
    present = [a for a in wanted if a in columns]
    has_length = "input_tokens" in columns
    gaps: list[NotAssessed] = []
    if not has_length:
        gaps.append(NotAssessed(f"{ID}:length", "requests carry no input_tokens"))
    if not present:
        gaps.append(NotAssessed(f"{ID}:mix", "requests carry none of the attributes "
                                + ", ".join(wanted)))
    if not has_length and not present:
        return PromptMixResult(**base, not_assessed=tuple(gaps))
    gaps.extend(case.window_gaps(ID, baseline, incident))
    if len(gaps) > (not has_length) + (not present):
        return PromptMixResult(**base, not_assessed=tuple(gaps))

    record = Recorder()
    span = Window(min(baseline.start, incident.start), max(baseline.end, incident.end))
    width = bucket or choose_bucket(span.duration)
    requests = case.table("requests")
    generative = ibis.or_(*(requests[c].notnull() for c in TOKEN_COLUMNS if c in columns))
    if "endpoint" in columns:  # a batch-transform job is not interactive traffic
        generative = generative & ~requests.endpoint.startswith(BATCH_PREFIX).fill_null(False)
    rows = requests.filter(within(requests.ts, span) & generative)
    rows = rows.mutate(_window=window_label(rows.ts, baseline, incident),
                       _bucket=bucket_expr(rows.ts, width))
    in_windows = rows.filter(rows._window.notnull())
    table_rows: list[dict[str, Any]] = []
    edges, input_counts = None, None
    lengths = [c for c in TOKEN_COLUMNS if c in columns] if has_length else []
    # per window, the count of every token length (a hash aggregate per column: a third of
    # the cost of a histogram map per window, 10M rows: 0.16 against 0.52 CPU s for the two
    # columns) and of every attribute value (one scan of histograms)
    per = record(in_windows.group_by(window=in_windows._window).aggregate(
        **{f"m_{k}": value_counts(in_windows[a].cast("string"))
           for k, a in enumerate(present)})) if present else pd.DataFrame()
    for column in lengths:
        known = in_windows.filter(in_windows[column].notnull())
        counts = record(known.group_by(window=known._window,
                                       value=known[column].cast("int64")).aggregate(
            n=known.count()))[["window", "value", "n"]]
        row, column_edges = length_row(column, counts)
        if row is not None:
            table_rows.append(row)
            if column == "input_tokens":
                edges, input_counts = column_edges, counts
    if has_length and edges is None:
        gaps.append(NotAssessed(f"{ID}:length", "too few requests with input_tokens in a "
                                f"window (fewer than {MIN_WINDOW_ROWS}" + (
                                    "; batch-transform rows are not read"
                                    if "endpoint" in columns else "") + ")"))
    mixes, shares, compared = _mixes(per, present, gaps)
    table_rows.extend(mixes)
    timeline = _timeline(record, rows, case, edges, input_counts, compared, shares)
    context = artifact_changes(case, record, baseline, incident)
    table = pd.DataFrame(table_rows)
    return PromptMixResult(**base, table=table, timeline=timeline, shares=shares,
                           context=context, sql=record.sql, not_assessed=tuple(gaps))


def length_row(column: str, counts: pd.DataFrame) -> tuple[dict[str, Any] | None, Any]:
    """PSI, KS, JS and quantiles of one token-count column from its per-window value counts
    (``window``, ``value``, ``n``), and the baseline-decile edges; ``(None, None)`` when a
    window holds fewer than :data:`MIN_WINDOW_ROWS` values."""
    per = {name: counts[counts["window"] == name].sort_values("value")
           for name in ("baseline", "incident")}
    if any(int(p["n"].sum()) < MIN_WINDOW_ROWS for p in per.values()):
        return None, None
    b_values, b_counts = per["baseline"]["value"].to_numpy(float), \
        per["baseline"]["n"].to_numpy(float)
    i_values, i_counts = per["incident"]["value"].to_numpy(float), \
        per["incident"]["n"].to_numpy(float)
    edges = np.unique(quantiles_from_counts(b_values, b_counts, _DECILES))
    b_bins = _bin(b_values, b_counts, edges)
    i_bins = _bin(i_values, i_counts, edges)
    ks = ks_exact_counts(b_values, b_counts, i_values, i_counts)
    nb, ni = int(b_counts.sum()), int(i_counts.sum())
    qb = quantiles_from_counts(b_values, b_counts, [0.5, 0.9])
    qi = quantiles_from_counts(i_values, i_counts, [0.5, 0.9])
    return {
        "quantity": column, "kind": "length", "n_baseline": nb, "n_incident": ni,
        "psi": st.psi(b_bins, i_bins), "ks": ks, "ks_pvalue": st.ks_pvalue(ks, nb, ni),
        "js": st.js_distance(b_bins, i_bins), "chi2": np.nan, "pvalue": np.nan, "dof": 0,
        "unseen_share": np.nan, "emerging_share": np.nan,
        "mean_baseline": float(np.dot(b_values, b_counts) / nb),
        "mean_incident": float(np.dot(i_values, i_counts) / ni),
        "p50_baseline": qb[0], "p90_baseline": qb[1], "p50_incident": qi[0],
        "p90_incident": qi[1],
    }, edges


def quantiles_from_counts(values, counts, levels) -> np.ndarray:
    """Quantiles of the sample holding ``counts[k]`` copies of sorted ``values[k]``, with the
    linear interpolation of ``numpy.quantile`` (and DuckDB's ``quantile_cont``).

    Examples
    --------
    >>> quantiles_from_counts(np.array([1.0, 2.0, 10.0]), np.array([2, 1, 1]), [0.5, 0.9])
    array([1.5, 7.6])
    >>> np.quantile([1, 1, 2, 10], [0.5, 0.9])
    array([1.5, 7.6])
    """
    values = np.asarray(values, dtype=float)
    cumulative = np.cumsum(np.asarray(counts, dtype=np.int64))
    n = int(cumulative[-1])
    position = np.asarray(levels, dtype=float) * (n - 1)
    below = np.floor(position).astype(np.int64)
    above = np.minimum(below + 1, n - 1)
    low = values[np.searchsorted(cumulative, below, side="right")]
    high = values[np.searchsorted(cumulative, above, side="right")]
    return low + (position - below) * (high - low)


def ks_exact_counts(b_values, b_counts, i_values, i_counts) -> float:
    """The two-sample KS statistic ``max |F_b - F_i|`` from per-value counts (exact: both
    empirical CDFs are evaluated at every distinct value of either sample).

    Examples
    --------
    >>> ks_exact_counts(np.array([1.0, 2.0]), np.array([3, 1]), np.array([2.0, 3.0]),
    ...                 np.array([1, 1]))
    0.75
    """
    grid = np.union1d(b_values, i_values)
    fb = _cdf(grid, b_values, b_counts)
    fi = _cdf(grid, i_values, i_counts)
    return float(np.max(np.abs(fb - fi)))


def _cdf(grid: np.ndarray, values, counts) -> np.ndarray:
    order = np.argsort(values)
    values = np.asarray(values, dtype=float)[order]
    cumulative = np.cumsum(np.asarray(counts, dtype=float)[order])
    at = np.searchsorted(values, grid, side="right")
    return np.where(at > 0, cumulative[np.maximum(at - 1, 0)], 0.0) / cumulative[-1]


def _bin(values: np.ndarray, counts: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts per right-closed bin ``(-inf, e0], (e0, e1], ..., (e_last, inf)`` (DuckDB
    ``histogram(x, edges)``'s bins)."""
    index = np.searchsorted(edges, values, side="left")
    return np.bincount(index, weights=counts, minlength=len(edges) + 1)


def _mixes(per: pd.DataFrame, attributes: list[str], gaps: list[NotAssessed]
           ) -> tuple[list[dict[str, Any]], pd.DataFrame, list[str]]:
    """Chi-square, JS and unseen share of every attribute's mix, from the value counts per
    window (columns ``m_<k>``)."""
    if not attributes:
        return [], pd.DataFrame(columns=["attribute", "window", "value", "n", "share"]), []
    out, frames, compared = [], [], []
    for k, attribute in enumerate(attributes):
        maps = {r["window"]: (r[f"m_{k}"] or {}) for _, r in per.iterrows()}
        b, i = maps.get("baseline", {}), maps.get("incident", {})
        values = sorted(set(b) | set(i))
        if len(values) > MAX_CATEGORIES:
            gaps.append(NotAssessed(f"{ID}:mix", f"{attribute} has {len(values)} distinct "
                                    f"values (more than {MAX_CATEGORIES}): an id, not a mix"))
            continue
        bc = np.array([b.get(v, 0) for v in values], dtype=float)
        ic = np.array([i.get(v, 0) for v in values], dtype=float)
        if bc.sum() < MIN_WINDOW_ROWS or ic.sum() < MIN_WINDOW_ROWS:
            gaps.append(NotAssessed(f"{ID}:mix", f"fewer than {MIN_WINDOW_ROWS} requests with "
                                    f"a {attribute} in a window"))
            continue
        chi2, p, dof = st.chi2_contingency_test(bc, ic)
        if len(values) < 2:  # one value in both windows: nothing moved
            chi2, p = 0.0, 1.0
        out.append({"quantity": attribute, "kind": "mix", "n_baseline": int(bc.sum()),
                    "n_incident": int(ic.sum()), "psi": st.psi(bc, ic), "ks": np.nan,
                    "ks_pvalue": np.nan, "js": st.js_distance(bc, ic), "chi2": chi2,
                    "pvalue": p, "dof": dof,
                    "unseen_share": float(ic[bc == 0].sum() / ic.sum()),
                    "emerging_share": float(ic[bc < RARE_SHARE * bc.sum()].sum() / ic.sum())})
        compared.append(attribute)
        for name, c in (("baseline", bc), ("incident", ic)):
            frames.append(pd.DataFrame({"attribute": attribute, "window": name,
                                        "value": values, "n": c.astype(int),
                                        "share": c / c.sum()}))
    shares = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["attribute", "window", "value", "n", "share"])
    return out, shares, compared


def _timeline(record: Recorder, rows: ibis.Table, case: CaseView, edges,
              input_counts: pd.DataFrame | None, compared: list[str],
              shares: pd.DataFrame) -> pd.DataFrame:
    """Per bucket: requests, mean lengths, prompt PSI against the baseline bins and the JS
    distance of each compared attribute's mix against its baseline mix (one scan)."""
    columns = case.columns["requests"]
    metrics: dict[str, ibis.Value] = {"requests": rows.count()}
    if "input_tokens" in columns:
        metrics["input_mean"] = rows.input_tokens.mean()
    if "output_tokens" in columns:
        metrics["output_mean"] = rows.output_tokens.mean()
    if edges is not None:
        counts, used, _ = fine_histogram(rows.input_tokens, edges)
        metrics["bins"] = counts
    known: dict[str, list[str]] = {}
    for k, attribute in enumerate(compared):
        values = sorted(set(shares.loc[shares["attribute"] == attribute, "value"]))
        text = rows[attribute].cast("string")
        if len(values) <= MAX_INDICATORS:
            # a sum per known value: 4x cheaper than a histogram per bucket (10M rows, three
            # attributes: 0.27 against 1.14 s); values outside the windows count as "other"
            known[attribute] = values
            metrics |= {f"i_{k}_{j}": (text == v).cast("int64").sum()
                        for j, v in enumerate(values)}
            metrics[f"n_{k}"] = text.count()
        else:
            metrics[f"m_{k}"] = value_counts(text)
    frame = record(rows.group_by(bucket_start=rows._bucket).aggregate(**metrics))
    frame = frame.sort_values("bucket_start", ignore_index=True)
    for column in ("input_mean", "output_mean"):
        if column not in frame:
            frame[column] = np.nan
    if edges is not None:
        # the baseline on the bins the engine used (a value is in (u[k-1], u[k]] on the
        # integer grid exactly when it is on the doubles: see _binning)
        base = input_counts[input_counts["window"] == "baseline"]
        reference = _bin(base["value"].to_numpy(float), base["n"].to_numpy(float), used)
        matrix = np.array([_padded(v, len(used) + 1) for v in frame.pop("bins")], dtype=float)
        psis = st.psi_rows(reference, matrix)
        frame["input_psi"] = np.where(matrix.sum(axis=1) >= MIN_WINDOW_ROWS, psis, np.nan)
    for k, attribute in enumerate(compared):
        base = shares[(shares["attribute"] == attribute) & (shares["window"] == "baseline")]
        reference = dict(zip(base["value"], base["n"], strict=True))
        js = []
        if attribute in known:
            values = known[attribute]
            counts = frame[[f"i_{k}_{j}" for j in range(len(values))]].to_numpy(float)
            other = frame.pop(f"n_{k}").to_numpy(float) - counts.sum(axis=1)
            frame = frame.drop(columns=[f"i_{k}_{j}" for j in range(len(values))])
            maps = [{**{v: c for v, c in zip(values, row, strict=True) if c}, **(
                {_OTHER: o} if o else {})} for row, o in zip(counts, other, strict=True)]
        else:
            maps = frame.pop(f"m_{k}")
        for mix, n in zip(maps, frame["requests"], strict=True):
            mix = mix or {}
            values = sorted(set(reference) | set(mix))
            if n < MIN_BUCKET_ROWS or not mix:
                js.append(np.nan)
                continue
            js.append(st.js_distance(np.array([reference.get(v, 0) for v in values], float),
                                     np.array([mix.get(v, 0) for v in values], float)))
        frame[f"js_{attribute}"] = js
    return frame


def _padded(values, size: int) -> list[float]:
    """A bin-count list with the empty overflow bin DuckDB leaves out put back (NULL: none)."""
    if values is None or (not isinstance(values, (list, np.ndarray)) and pd.isna(values)):
        return [0.0] * size
    values = [0.0 if v is None or pd.isna(v) else float(v) for v in values]
    return values + [0.0] * (size - len(values))


def artifact_changes(case: CaseView, record: Recorder, baseline: Window, incident: Window
                     ) -> dict[str, Any]:
    """Releases between the baseline's end and the incident's end: ``deploy``, ``rollback``
    and ``config_change`` events, and versions serving in the incident but not in the
    baseline (one scan of the windows' requests, shared by the diagnostics of one case view:
    the later ones record its SQL without running it again).

    Returns
    -------
    dict
        ``artifact_changed`` (bool), ``events`` (list of ``{ts, kind, artifact, version}``),
        ``new_versions`` (column -> sorted list of new values). A fresh copy each call.
    """
    key = ("artifact_changes", baseline.start, baseline.end, incident.start, incident.end)
    if key in case.cache:
        found, sql = case.cache[key]
        for statement in sql:
            record.note(statement)
        return copy.deepcopy(found)
    own = Recorder()
    events = case.events
    start, end = pd.Timestamp(min(baseline.end, incident.start)), pd.Timestamp(incident.end)
    if not events.empty:
        ts = pd.to_datetime(events["ts"], utc=True)
        events = events[(ts >= start) & (ts < end) & events["kind"].isin(RELEASE_KINDS)]
    listed = [{"ts": pd.Timestamp(r.ts), "kind": str(r.kind),
               "artifact": None if pd.isna(r.artifact) else str(r.artifact),
               "version": None if pd.isna(r.version) else str(r.version)}
              for r in events.itertuples()] if not events.empty else []
    columns = [c for c in VERSION_COLUMNS if c in case.columns.get("requests", {})]
    new: dict[str, list[str]] = {}
    if columns:
        requests = case.table("requests")
        rows = requests.filter(within(requests.ts, Window(
            min(baseline.start, incident.start), max(baseline.end, incident.end))))
        rows = rows.mutate(_window=window_label(rows.ts, baseline, incident))
        rows = rows.filter(rows._window.notnull())
        per = own(rows.group_by(window=rows._window).aggregate(
            **{c: value_counts(rows[c]) for c in columns}))
        maps = {r["window"]: r for _, r in per.iterrows()}
        for column in columns:
            before = set((maps["baseline"][column] or {}) if "baseline" in maps else {})
            after = set((maps["incident"][column] or {}) if "incident" in maps else {})
            if after - before:
                new[column] = sorted(after - before)
    found = {"artifact_changed": bool(listed or new), "events": listed, "new_versions": new}
    case.cache[key] = (found, own.sql)
    for statement in own.sql:
        record.note(statement)
    return copy.deepcopy(found)
