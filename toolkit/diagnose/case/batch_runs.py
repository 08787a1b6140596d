"""Batch inference run over run: failures, accuracy, drift, partial and retried runs per run.

A batch job scores a file of records at once; a case of batch jobs is a sequence of *runs*,
and the question after an incident is which run went wrong, and how: did it fail more of its
records than the runs before it, score worse where labels arrived, receive different inputs,
stop half-way, or run twice? This diagnostic compares every run with the runs before it. It
assesses the whole case (every run, whatever the windows); the windows only choose the
reference runs of the drift comparison.

Recipe
------
*Which rows are batch rows, and which run is each.* In order:

1. requests whose ``endpoint`` starts with ``batch-transform:`` (the SageMaker batch-transform
   loader labels every record of a job ``batch-transform:<job name>``, see
   :mod:`toolkit.load.formats._batch`): one *job* per endpoint value; rows of other endpoints
   (real-time traffic in the same case) are left out, with a note;
2. otherwise, when ``case_meta`` says ``serving_mode = 'batch'``: one job per value of the first
   run column the requests have (:data:`RUN_COLUMNS`: ``run_id``, ``batch_id``, ``job_id``,
   ``job_name``, ``transform_job``, ``batch_run``), else one unnamed job for all rows;
3. anything else is not a batch case: ``not_assessed``.

Within a job, a run is a stretch of its rows without an idle gap longer than ``run_gap``
(1 hour): the same job name seen twice, hours apart, is two runs (a retry). An unnamed job
whose timestamps repeat (fewer distinct timestamps than half its rows: each run's records carry
the run's time, as the loader gives them) has one run per distinct timestamp instead. In the
engine: the distinct ``(job, ts)`` pairs, ``lag`` over them per job, a cumulative count of the
gaps, the runs numbered by start time (``dense_rank``); the batch rows with their run number
go to one temporary table that every later statement reads (dropped at the end); it keeps a
64-bit hash of the request id rather than the id (labels join on the same hash; a collision,
odds about n^2 / 2^65, could pair one request with another's label). Runs are
numbered 1, 2, ... in time order. Fewer than two runs: ``not_assessed``.

*Per run, one aggregate statement*: rows, first and last time, outcomes and failures (the
outcome rules of :mod:`.segments`: ``status`` error/timeout, else ``http_status >= 400``, else
an ``error_type``), timeouts, the most frequent ``error_type`` of its failures, p50/p99 latency
(``quantile_cont``), the distinct ``model_version``, ``pipeline_version``, ``client_version``
and ``template_version`` values, and an order-free fingerprint of its inputs: per feature, the
sum over the run's rows of a 64-bit hash of the value (modulo 2^31; casting values to text for
one hash per row costs 20 times more).
Further statements: the prediction mix (counts per run and prediction, when prediction has at
most 50 values), accuracy (requests joined with their latest label: ``prediction = label``;
not for regression or generative endpoints), request ids seen in more than one run, and the
feature histograms below.

*Failures run over run.* Run ``r`` (from the second) against the runs before it pooled: ``k``
failures in ``n`` outcomes, against ``K`` in ``N`` before; one-sided Fisher exact test
(``P(X >= k)``, ``X ~ Hypergeometric(n + N, k + K, n)``, :func:`.segments.fisher_greater`);
Holm's step-down over the runs tested. Two passes: the first pools every earlier run, the
second only the earlier runs the first did not flag, so that a run after a bad one is compared
with the healthy runs (a second bad run is not hidden by the first). Flagged when ``p_adjusted < alpha`` (0.01),
``k >= min_failures`` (5) and the rate at least twice the earlier runs'. Severity: **high**
when the rate is at least ``max(5 x before, before + 0.05)``, **medium** when it exceeds the
earlier rate by at least 1 point, else **low**.

*Accuracy run over run.* The same test on the wrong predictions among labelled rows (more
errors than before), Holm over the runs tested; flagged when ``p_adjusted < alpha``, at least
``min_failures`` wrong predictions and accuracy at least ``min_accuracy_drop`` (0.02) below
the earlier runs'; **high** from a 5-point drop, else **medium**.

*Partial runs.* A run with fewer rows than ``partial_share`` (0.5) of the median run's; the
share is in the table and the evidence. **medium** below 0.2, else **low**.

*Retried runs.* A run is a retry of an earlier one when it has the same job name (the same name
seen after an idle gap) and starts sooner after it than half the median spacing of runs (a name
that recurs on the schedule, such as a pipeline's name in a run column, is not a retry), the same input fingerprint (the same rows, in any order; needs
feature columns), or at least ``retry_share`` (0.5) of its request ids were seen in an earlier
run. Finding severity **low**: a retry is a fact for the timeline (outputs written twice),
not a cause.

*Drift run over run.* The *reference runs* are the healthy runs (not flagged for failures or
accuracy, not partial, not a retry) that start in the baseline window; when none does, the
first healthy run (the first run when none is). Numeric features are binned on the deciles of
the reference runs (``quantile_cont``; the exact per-run counts with
:func:`._binning.fine_histogram`), categorical features on their values (at most 500
distinct, and not id-like: at most half as many values as rows); per run and feature: PSI against the reference counts (:func:`._stats.psi`, epsilon 1e-4) and a
chi-square test of the 2 x K table (:func:`._stats.chi2_contingency_test`), Holm over every
(run, feature) tested. Runs with fewer than :data:`~toolkit.diagnose._case.MIN_WINDOW_ROWS`
rows are not tested. A feature drifts at a run when ``PSI >= 0.1`` and ``p_adjusted < alpha``.
Drift *starts* at the first non-reference run where a feature drifts; ``persistent`` says
whether it drifts in every later tested run too. **high** from PSI 0.25, else **medium**.

*What changed at a run.* Versions a run carries that no earlier run did, and ``deploy``,
``rollback`` and ``config_change`` events after the previous run's start and up to the run's
end: ``model_changed``, ``pipeline_changed`` and ``client_changed`` in the evidence (the rule
table uses them to tell a schema change from a bad release).

Findings (onset: the first flagged run's start; evidence names the runs)
------------------------------------------------------------------------
* ``integration.batch_run_failures``: the first run flagged for failures, every flagged run;
* ``model.batch_run_accuracy``: the first run flagged for accuracy, whether inputs drifted at
  or before it (``drift_at_run``);
* ``data.batch_run_drift``: the run drift starts at, its drifted features and PSIs;
* ``infrastructure.batch_partial_run``: partial runs and their share of the median run;
* ``integration.batch_retried_run``: retried runs, what they repeat, and why.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import ibis
import ibis.expr.datatypes as dt
import numpy as np
import pandas as pd

from toolkit._validation import check_windows
from toolkit.diagnose import _stats as st
from toolkit.diagnose._base import DiagnosticResult, Finding, NotAssessed
from toolkit.diagnose._binning import fine_histogram
from toolkit.diagnose._case import MIN_WINDOW_ROWS, CaseView, case_view
from toolkit.diagnose._engine import Recorder, epoch_us, float_array, hash_text, quantiles_at
from toolkit.diagnose._engines import CaseSource
from toolkit.diagnose._labels import latest_labels
from toolkit.diagnose.case.segments import _flags, fisher_greater, holm
from toolkit.types import Window

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["run_over_run", "BatchRunsResult", "ID", "BATCH_PREFIX", "RUN_COLUMNS"]

ID = "case.batch_runs"
#: ``endpoint`` prefix of batch-transform rows (:mod:`toolkit.load.formats.sagemaker`).
BATCH_PREFIX = "batch-transform:"
#: Columns of ``requests`` that name a batch job, in order of preference.
RUN_COLUMNS = ("run_id", "batch_id", "job_id", "job_name", "transform_job", "batch_run")
VERSION_COLUMNS = ("model_version", "pipeline_version", "client_version", "template_version")
#: Version column -> the artifact it versions (as events name it).
ARTIFACT_OF = {"model_version": "model", "pipeline_version": "pipeline",
               "client_version": "client", "template_version": "pipeline"}
ALPHA = 0.01
MIN_FAILURES = 5
RATE_RATIO = 2.0
STRONG_RATIO = 5.0
STRONG_EXCESS = 0.05
MEDIUM_EXCESS = 0.01
MIN_ACCURACY_DROP = 0.02
HIGH_ACCURACY_DROP = 0.05
PARTIAL_SHARE = 0.5
PARTIAL_MEDIUM = 0.2
RETRY_SHARE = 0.5
MODERATE_PSI = 0.10
MAJOR_PSI = 0.25
MAX_CATEGORIES = 500
ID_RATIO = 0.5
MAX_PREDICTIONS = 50
RUN_GAP = timedelta(hours=1)
_DECILES = np.linspace(0.1, 0.9, 9)
_CHANGE_EVENTS = ("deploy", "rollback", "config_change")
_names = itertools.count(1)


@dataclass(frozen=True, kw_only=True, repr=False)
class BatchRunsResult(DiagnosticResult):
    """Batch runs compared run over run.

    Attributes
    ----------
    table
        One row per run, in time order: ``run`` (1, 2, ...), ``job`` (its name, None when
        unnamed), ``start``, ``end``, ``rows``, ``row_share`` (of the median run's rows),
        ``partial``, ``outcomes``, ``failures``, ``timeouts``, ``failure_rate``, ``top_error``,
        ``prior_failure_rate`` (the earlier runs' pooled), ``failure_pvalue``,
        ``failure_p_adjusted``, ``failure_flagged``, ``labelled``, ``accuracy``,
        ``prior_accuracy``, ``accuracy_pvalue``, ``accuracy_p_adjusted``, ``accuracy_flagged``,
        ``p50_ms``, ``p99_ms``, ``reference`` (a drift reference run), ``max_psi``,
        ``top_feature``, ``drifted_features``, ``retry_of`` (the run it repeats),
        ``retry_reason``, ``repeated_ids`` (request ids first seen in an earlier run),
        ``new_versions`` (``{column: [versions]}`` no earlier run carried), ``changes``
        (events since the previous run's start).
    drift
        One row per run and feature: ``run``, ``feature``, ``kind``, ``rows``, ``psi``,
        ``chi2_pvalue``, ``p_adjusted``, ``drifted``; reference runs have ``psi`` only.
    mix
        Prediction share per run and prediction: ``run``, ``prediction``, ``count``, ``share``.
    method
        How runs were identified.
    """

    id = ID
    title = "Batch runs, run over run"

    alpha: float = ALPHA
    method: str = ""
    drift: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    mix: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    # ------------------------------------------------------------------ reading
    def run(self, number: int) -> dict[str, Any]:
        """One run's row of :attr:`table` as a dict."""
        rows = self.table[self.table["run"] == number]
        if rows.empty:
            raise KeyError(f"no run {number}; runs are 1..{len(self.table)}")
        return rows.iloc[0].to_dict()

    def headline(self) -> dict[str, Any]:
        if self.table.empty:
            return {}
        t = self.table
        return {"runs": len(t), "rows per run (median)": float(t["rows"].median()),
                "runs flagged for failures": int(t["failure_flagged"].sum()),
                "runs flagged for accuracy": int(t["accuracy_flagged"].sum()),
                "runs with drift": int((t["drifted_features"].map(len) > 0).sum()),
                "partial runs": int(t["partial"].sum()),
                "retried runs": int(t["retry_of"].notna().sum())}

    # ------------------------------------------------------------------ findings
    def findings(self) -> list[Finding]:
        if self.table.empty:
            return []
        found = (self._failure_finding(), self._accuracy_finding(), self._drift_finding(),
                 self._partial_finding(), self._retry_finding())
        return [f for f in found if f is not None]

    def _label(self, row: dict[str, Any] | pd.Series) -> str:
        job = row["job"]
        when = pd.Timestamp(row["start"]).strftime("%Y-%m-%d %H:%M UTC")
        return f"run {int(row['run'])} ({job}, {when})" if job else f"run {int(row['run'])} " \
            f"({when})"

    def _changes(self, row: pd.Series) -> dict[str, Any]:
        versions = row["new_versions"] or {}
        events = row["changes"] or []
        artifacts = {ARTIFACT_OF[c] for c in versions} | {e["artifact"] for e in events
                                                          if e.get("artifact")}
        return {"new_versions": versions, "events": events,
                "model_changed": "model" in artifacts,
                "pipeline_changed": "pipeline" in artifacts,
                "client_changed": "client" in artifacts,
                "artifact_changed": bool(versions or events)}

    def _failure_finding(self) -> Finding | None:
        t = self.table
        flagged = t[t["failure_flagged"]]
        if flagged.empty:
            return None
        first = flagged.iloc[0]
        rate, before = float(first["failure_rate"]), float(first["prior_failure_rate"])
        if rate >= max(STRONG_RATIO * before, before + STRONG_EXCESS):
            severity = "high"
        elif rate - before >= MEDIUM_EXCESS:
            severity = "medium"
        else:
            severity = "low"
        after = t[t["run"] >= first["run"]]
        share_after = float(after["failures"].sum() / max(t["failures"].sum(), 1))
        runs = [self._label(r) for _, r in flagged.iterrows()]
        return Finding(
            id="integration.batch_run_failures", pathway="integration", severity=severity,
            statistic=rate, threshold=before,
            summary=(f"{self._label(first)} failed {int(first['failures']):,} of "
                     f"{int(first['outcomes']):,} records ({rate:.1%}) against {before:.1%} in "
                     f"the runs before it (one-sided Fisher, Holm-adjusted p "
                     f"{_p_text(first['failure_p_adjusted'])} over {self._tested('failure')} "
                     f"runs); {len(flagged)} run{'s' if len(flagged) > 1 else ''} flagged"
                     + (f", top error {first['top_error']}" if first["top_error"] else "")
                     + "."),
            evidence={"run": int(first["run"]), "job": first["job"],
                      "run_start": first["start"], "runs": runs,
                      "flagged_runs": flagged["run"].astype(int).tolist(),
                      "failures": int(first["failures"]), "outcomes": int(first["outcomes"]),
                      "failure_rate": rate, "prior_failure_rate": before,
                      "p_adjusted": float(first["failure_p_adjusted"]),
                      "timeout_share": float(first["timeouts"] / max(first["failures"], 1)),
                      "top_error": first["top_error"],
                      "failure_share_from_run": share_after,
                      "drift_at_run": bool(self._drift_by(int(first["run"]))),
                      **self._changes(first)},
            onset=pd.Timestamp(first["start"]).to_pydatetime(), diagnostic=self.id)

    def _accuracy_finding(self) -> Finding | None:
        t = self.table
        flagged = t[t["accuracy_flagged"]]
        if flagged.empty:
            return None
        first = flagged.iloc[0]
        acc, before = float(first["accuracy"]), float(first["prior_accuracy"])
        drop = before - acc
        drifted = self._drift_by(int(first["run"]))
        return Finding(
            id="model.batch_run_accuracy", pathway="model",
            severity="high" if drop >= HIGH_ACCURACY_DROP else "medium",
            statistic=drop, threshold=MIN_ACCURACY_DROP,
            summary=(f"{self._label(first)} scored {acc:.1%} accuracy on "
                     f"{int(first['labelled']):,} labelled records against {before:.1%} in the "
                     f"runs before it (one-sided Fisher on the errors, Holm-adjusted p "
                     f"{_p_text(first['accuracy_p_adjusted'])}); inputs "
                     + (f"drifted by then ({', '.join(drifted[:4])})" if drifted else
                        "did not drift") + "."),
            evidence={"run": int(first["run"]), "job": first["job"],
                      "run_start": first["start"],
                      "runs": [self._label(r) for _, r in flagged.iterrows()],
                      "flagged_runs": flagged["run"].astype(int).tolist(),
                      "accuracy": acc, "prior_accuracy": before, "accuracy_drop": drop,
                      "labelled": int(first["labelled"]),
                      "p_adjusted": float(first["accuracy_p_adjusted"]),
                      "drift_at_run": bool(drifted), "drifted_features": drifted,
                      "failures_at_run": bool(first["failure_flagged"]),
                      **self._changes(first)},
            onset=pd.Timestamp(first["start"]).to_pydatetime(), diagnostic=self.id)

    def _drift_by(self, run: int) -> list[str]:
        """Features drifted at ``run`` or at an earlier run."""
        if self.drift.empty:
            return []
        d = self.drift[(self.drift["run"] <= run) & self.drift["drifted"]]
        return list(dict.fromkeys(d.sort_values("psi", ascending=False)["feature"]))

    def _drift_finding(self) -> Finding | None:
        t = self.table
        d = self.drift
        if d.empty or not d["drifted"].any():
            return None
        start = int(d.loc[d["drifted"], "run"].min())
        at = d[(d["run"] == start) & d["drifted"]].sort_values("psi", ascending=False)
        top = at.iloc[0]
        later = d[(d["run"] > start) & (d["feature"] == top["feature"]) & d["psi"].notna()
                  & d["p_adjusted"].notna()]
        persistent = bool(later.empty or later["drifted"].all())
        row = t[t["run"] == start].iloc[0]
        psi = float(top["psi"])
        by_run = d[d["feature"] == top["feature"]].set_index("run")["psi"]
        return Finding(
            id="data.batch_run_drift", pathway="data",
            severity="high" if psi >= MAJOR_PSI else "medium",
            statistic=psi, threshold=MODERATE_PSI,
            summary=(f"Inputs drift from {self._label(row)}: {', '.join(at['feature'][:4])} "
                     f"(PSI {psi:.2f} for {top['feature']} against the reference run"
                     f"{'s' if t['reference'].sum() > 1 else ''} "
                     f"{', '.join(str(r) for r in t.loc[t['reference'], 'run'])}; Holm-adjusted "
                     f"chi-square p {_p_text(top['p_adjusted'])}); "
                     + ("it stays in the later runs." if persistent else
                        "the later runs do not all keep it.")),
            evidence={"run": start, "job": row["job"], "run_start": row["start"],
                      "runs": [self._label(r) for _, r in t[t["run"].isin(
                          d.loc[d["drifted"], "run"])].iterrows()],
                      "features": {f: float(p) for f, p in zip(at["feature"], at["psi"],
                                                               strict=True)},
                      "top_feature": top["feature"], "psi": psi,
                      "psi_by_run": {int(r): _num(v) for r, v in by_run.items()},
                      "reference_runs": t.loc[t["reference"], "run"].astype(int).tolist(),
                      "persistent": persistent,
                      "failures_at_run": bool(row["failure_flagged"]),
                      "accuracy_drop_at_run": bool(row["accuracy_flagged"]),
                      **self._changes(row)},
            onset=pd.Timestamp(row["start"]).to_pydatetime(), diagnostic=self.id)

    def _partial_finding(self) -> Finding | None:
        t = self.table
        partial = t[t["partial"]]
        if partial.empty:
            return None
        worst = partial.sort_values("row_share").iloc[0]
        share = float(worst["row_share"])
        median = float(t["rows"].median())
        first = partial.iloc[0]
        return Finding(
            id="infrastructure.batch_partial_run", pathway="infrastructure",
            severity="medium" if share < PARTIAL_MEDIUM else "low",
            statistic=share, threshold=PARTIAL_SHARE,
            summary=(f"{len(partial)} partial run{'s' if len(partial) > 1 else ''}: "
                     + "; ".join(f"{self._label(r)} has {int(r['rows']):,} rows, "
                                 f"{r['row_share']:.0%} of the median run's {median:,.0f}"
                                 for _, r in partial.head(4).iterrows()) + "."),
            evidence={"runs": [self._label(r) for _, r in partial.iterrows()],
                      "partial_runs": partial["run"].astype(int).tolist(),
                      "row_shares": {int(r): float(s) for r, s in zip(
                          partial["run"], partial["row_share"], strict=True)},
                      "median_rows": median, "run": int(first["run"]),
                      "failure_rate_at_run": _num(first["failure_rate"])},
            onset=pd.Timestamp(first["start"]).to_pydatetime(), diagnostic=self.id)

    def _retry_finding(self) -> Finding | None:
        t = self.table
        retried = t[t["retry_of"].notna()]
        if retried.empty:
            return None
        first = retried.iloc[0]
        return Finding(
            id="integration.batch_retried_run", pathway="integration", severity="low",
            statistic=float(len(retried)), threshold=0.0,
            summary=(f"{len(retried)} retried run{'s' if len(retried) > 1 else ''}: "
                     + "; ".join(f"{self._label(r)} repeats run {int(r['retry_of'])} "
                                 f"({r['retry_reason']})" for _, r in retried.head(4).iterrows())
                     + "."),
            evidence={"runs": [self._label(r) for _, r in retried.iterrows()],
                      "retries": {int(r): {"of": int(o), "reason": why} for r, o, why in zip(
                          retried["run"], retried["retry_of"], retried["retry_reason"],
                          strict=True)},
                      "run": int(first["run"])},
            onset=pd.Timestamp(first["start"]).to_pydatetime(), diagnostic=self.id)

    def _tested(self, kind: str) -> int:
        return int(self.table[f"{kind}_pvalue"].notna().sum())

    # ------------------------------------------------------------------ time series, plot
    def signals(self) -> pd.DataFrame:
        """Per run (at its start): ``batch.failure_rate``, ``batch.accuracy``,
        ``batch.max_psi`` and ``batch.rows``."""
        if self.table.empty:
            return super().signals()
        t = self.table
        frames = []
        for column in ("failure_rate", "accuracy", "max_psi", "rows"):
            part = t[t[column].notna()]
            if len(part):
                frames.append(pd.DataFrame({"bucket_start": part["start"].to_numpy(),
                                            "signal": f"batch.{column}",
                                            "value": part[column].to_numpy(float)}))
        return pd.concat(frames, ignore_index=True) if frames else super().signals()

    def plot(self, ax: Axes | None = None, **kwargs: Any) -> Axes:
        """Rows per run (bars, right axis) with failure rate, accuracy and the largest PSI
        per run (lines); flagged runs in red on the axis."""
        from toolkit.plotting import SEVERITY_COLORS, axes

        ax = axes(ax, figsize=(10, 4))
        t = self.table
        if t.empty:
            return super().plot(ax)
        x = t["run"].to_numpy(int)
        twin = ax.twinx()
        twin.bar(x, t["rows"], color="#DDDDDD", width=0.6, label="rows")
        twin.set_ylabel("rows per run")
        ax.set_zorder(twin.get_zorder() + 1)
        ax.patch.set_visible(False)
        for column, label in (("failure_rate", "failure rate"), ("accuracy", "accuracy"),
                              ("max_psi", "largest PSI")):
            if t[column].notna().any():
                ax.plot(x, t[column], marker="o", label=label)
        ax.set_xticks(x)
        ax.set_xticklabels([str(r) for r in x])
        bad = set(t.loc[t["failure_flagged"] | t["accuracy_flagged"] | t["partial"]
                        | (t["drifted_features"].map(len) > 0), "run"])
        for label in ax.get_xticklabels():
            if int(label.get_text()) in bad:
                label.set_color(SEVERITY_COLORS["high"])
                label.set_fontweight("bold")
        ax.set_xlabel("run (flagged in red)")
        ax.set_ylabel("rate / PSI")
        ax.set_title("Batch runs, run over run")
        ax.legend(loc="upper left")
        return ax


def run_over_run(
    con: CaseSource,
    baseline: Window | str,
    incident: Window | str,
    /,
    *,
    alpha: float = ALPHA,
    min_failures: int = MIN_FAILURES,
    min_accuracy_drop: float = MIN_ACCURACY_DROP,
    partial_share: float = PARTIAL_SHARE,
    retry_share: float = RETRY_SHARE,
    run_gap: timedelta = RUN_GAP,
    case: CaseView | None = None,
) -> BatchRunsResult:
    """Compare the runs of a batch case run over run (see the module docstring).

    Parameters
    ----------
    con
        Case connection.
    baseline, incident
        The windows; every run is assessed whatever they hold, the healthy runs starting in
        the baseline are the drift reference.
    alpha
        Family-wise error rate (Holm) of each family of tests (failures, accuracy, drift).
    min_failures
        Failures (wrong predictions) a run needs to be flagged.
    min_accuracy_drop
        Accuracy drop (absolute) a run needs to be flagged.
    partial_share
        A run with fewer rows than this share of the median run's is partial.
    retry_share
        A run whose share of request ids already seen in an earlier run reaches this is a retry.
    run_gap
        An idle gap longer than this within one job starts a new run.
    case
        Shared case view.

    Returns
    -------
    BatchRunsResult

    Examples
    --------
    >>> import numpy as np, pandas as pd, toolkit as tk
    >>> con = tk.connect()
    >>> runs = [pd.DataFrame({"request_id": [f"{d}-{i}" for i in range(200)],
    ...                       "ts": pd.Timestamp(f"2026-03-0{d}T02:00Z"),
    ...                       "endpoint": f"batch-transform:nightly-{d}",
    ...                       "status": ["error" if d == 3 and i < 40 else "ok"
    ...                                  for i in range(200)]}) for d in (1, 2, 3, 4)]
    >>> _ = tk.load(con, pd.concat(runs), table="requests")
    >>> result = run_over_run(con, ("2026-03-01", "2026-03-02"), ("2026-03-02", "2026-03-05"))
    >>> f = result.findings()[0]
    >>> f.id, f.evidence["run"], f.evidence["job"], f.severity
    ('integration.batch_run_failures', 3, 'nightly-3', 'high')
    """
    baseline, incident = check_windows(baseline, incident)
    case = case or case_view(con)
    base = dict(baseline=baseline, incident=incident, alpha=alpha)
    if not case.counts.get("requests"):
        return BatchRunsResult(**base, not_assessed=(NotAssessed(ID, "no requests"),))
    record = Recorder()
    cols = case.columns.get("requests", {})
    raw = case.table("requests")
    found = _batch_rows(case, record, raw, cols)
    if isinstance(found, NotAssessed):
        return BatchRunsResult(**base, sql=record.sql, not_assessed=(found,))
    rows, job, method, gaps = found
    name = f"_forensics_batch_runs_{next(_names)}"
    try:
        runs_table = _run_table(case, record, rows, job, cols, run_gap, name)
        return _assess(case, record, runs_table, cols, base, method, gaps, min_failures,
                       min_accuracy_drop, partial_share, retry_share)
    finally:
        case.engine.drop_temp(name)


# ---------------------------------------------------------------------------- engine side
def _batch_rows(case: CaseView, record: Recorder, raw: ibis.Table, cols: dict[str, str]):
    """The batch rows, the job expression, how runs are told apart and notes; or why the
    case is not a batch case."""
    gaps: list[NotAssessed] = []
    if "endpoint" in cols:
        is_batch = raw.endpoint.startswith(BATCH_PREFIX).fill_null(False)
        counts = record(raw.aggregate(batch=raw.count(where=is_batch), rows=raw.count()))
        batch, total = int(counts["batch"].iloc[0] or 0), int(counts["rows"].iloc[0] or 0)
        if batch:
            if batch < total:
                gaps.append(NotAssessed(f"{ID}.rows", f"{total - batch:,} requests of other "
                                        "endpoints (real-time traffic) are left out of the "
                                        "run comparison"))
            rows = raw.filter(is_batch)
            job = rows.endpoint.substr(len(BATCH_PREFIX))
            return rows, job, f"batch-transform endpoints ({BATCH_PREFIX}<job>)", gaps
    mode = str(case.meta.get("serving_mode") or "").lower()
    if mode != "batch":
        return NotAssessed(ID, "not a batch case: no endpoint is batch-transform:<job> and "
                               "case_meta serving_mode is not 'batch'")
    column = next((c for c in RUN_COLUMNS if c in cols), None)
    if column is not None:
        return raw, raw[column].cast("string"), f"serving_mode 'batch', one job per {column}", \
            gaps
    return raw, ibis.null("string"), "serving_mode 'batch', runs by time", gaps


def _run_table(case: CaseView, record: Recorder, rows: ibis.Table, job: ibis.Value,
               cols: dict[str, str], run_gap: timedelta, name: str) -> ibis.Table:
    """The batch rows with their run number, as a temporary table (see the module docstring)."""
    keyed = rows.mutate(_job=job)
    pairs = keyed.select(_jk=keyed._job.fill_null(""), ts=keyed.ts).distinct()
    gap_us = int(run_gap / timedelta(microseconds=1))
    counts = record(keyed.aggregate(n=keyed.count(), distinct_ts=keyed.ts.nunique(),
                                    named=keyed._job.count()))
    n, distinct = int(counts["n"].iloc[0]), int(counts["distinct_ts"].iloc[0])
    if not int(counts["named"].iloc[0] or 0) and distinct <= n / 2:
        gap_us = 0  # an unnamed job whose rows share their run's time: one run per time
    w = ibis.window(group_by=pairs._jk, order_by=pairs.ts)
    pairs = pairs.mutate(_prev=pairs.ts.lag().over(w))
    new = pairs._prev.isnull() | ((epoch_us(pairs.ts) - epoch_us(pairs._prev)) > gap_us)
    pairs = pairs.mutate(_new=ibis.ifelse(new, 1, 0))
    pairs = pairs.mutate(_seq=pairs._new.sum().over(
        ibis.cumulative_window(group_by=pairs._jk, order_by=pairs.ts)))
    starts = pairs.group_by(["_jk", "_seq"]).aggregate(_start=pairs.ts.min())
    starts = starts.mutate(_run=ibis.dense_rank().over(order_by=[starts._start, starts._jk]))
    runmap = pairs.inner_join(starts, ["_jk", "_seq"]).select(
        _mk=pairs._jk, _mts=pairs.ts, _run=starts._run + 1)
    keep = ["ts", "_job",
            *(c for c in ("prediction", "error_type", *VERSION_COLUMNS) if c in cols),
            *_features(case, cols)]
    flags = _flags(keyed, cols)
    # the request id as its 64-bit hash: writing 2M id strings costs 2.1 s, their hashes 0.7
    base = keyed.select(*dict.fromkeys(keep), _id=hash_text(keyed.request_id), **flags)
    joined = base.inner_join(runmap, [base._job.fill_null("") == runmap._mk,
                                      base.ts == runmap._mts])
    joined = joined.drop("_mk", "_mts")
    return record.temp_table(case.backend, name, joined)


def _features(case: CaseView, cols: dict[str, str]) -> list[str]:
    catalog = case.features
    if catalog.empty:
        return []
    return [n for n in catalog["name"] if n in cols]


def _assess(case: CaseView, record: Recorder, t: ibis.Table, cols: dict[str, str],
            base: dict[str, Any], method: str, gaps: list[NotAssessed], min_failures: int,
            min_accuracy_drop: float, partial_share: float, retry_share: float
            ) -> BatchRunsResult:
    alpha = base["alpha"]
    features = _features(case, cols)
    table = _per_run(case, record, t, cols, features)
    if len(table) < 2:
        only = table.iloc[0] if len(table) else None
        what = (f"1 batch run ({only['job'] or 'unnamed'}, {int(only['rows']):,} rows at "
                f"{pd.Timestamp(only['start']):%Y-%m-%d %H:%M} UTC)" if only is not None
                else "no batch run")
        return BatchRunsResult(**base, method=method, sql=record.sql, not_assessed=(
            *gaps, NotAssessed(ID, f"{what}: run over run needs at least 2 runs")))
    median = float(table["rows"].median())
    table["row_share"] = table["rows"] / median
    table["partial"] = table["row_share"] < partial_share
    _failures_test(table, alpha, min_failures)
    accuracy_gap = _accuracy(case, record, t, cols, table)
    if accuracy_gap is not None:
        gaps.append(accuracy_gap)
    _accuracy_test(table, alpha, min_failures, min_accuracy_drop)
    _retries(record, t, table, bool(features), retry_share)
    if not features:
        gaps.append(NotAssessed(f"{ID}.drift", "no feature columns: no drift or input "
                                "fingerprint per run"))
    _versions_and_events(case, table)
    healthy = ~(table["failure_flagged"] | table["accuracy_flagged"] | table["partial"]
                | table["retry_of"].notna())
    start = pd.Timestamp(base["baseline"].start)
    end = pd.Timestamp(base["baseline"].end)
    in_base = (table["start"] >= start) & (table["start"] < end)
    reference = table["run"][healthy & in_base].tolist()
    if not reference:
        reference = table["run"][healthy].head(1).tolist() or [int(table["run"].iloc[0])]
    table["reference"] = table["run"].isin(reference)
    drift = pd.DataFrame(columns=["run", "feature", "kind", "rows", "psi", "chi2_pvalue",
                                  "p_adjusted", "drifted"])
    if features:
        drift = _drift(case, record, t, features, table, reference, alpha)
    _drift_columns(table, drift)
    mix, mix_gap = _mix(record, t, cols)
    if mix_gap is not None:
        gaps.append(mix_gap)
    columns = ["run", "job", "start", "end", "rows", "row_share", "partial", "outcomes",
               "failures", "timeouts", "failure_rate", "top_error", "prior_failure_rate",
               "failure_pvalue", "failure_p_adjusted", "failure_flagged", "labelled",
               "accuracy", "prior_accuracy", "accuracy_pvalue", "accuracy_p_adjusted",
               "accuracy_flagged", "p50_ms", "p99_ms", "reference", "max_psi", "top_feature",
               "drifted_features", "retry_of", "retry_reason", "repeated_ids", "new_versions",
               "changes"]
    return BatchRunsResult(**base, method=method, table=table[columns].reset_index(drop=True),
                           drift=drift, mix=mix, sql=record.sql, not_assessed=tuple(gaps))


@ibis.udf.scalar.builtin(name="hash")
def _hash_double(value: float) -> dt.uint64:
    """DuckDB ``hash(x)`` of a DOUBLE (Spark: ``xxhash64``)."""


def _per_run(case: CaseView, record: Recorder, t: ibis.Table, cols: dict[str, str],
             features: list[str]) -> pd.DataFrame:
    """One aggregate statement: the per-run counts, latency, versions and input fingerprint."""
    failed = t._failed == 1
    aggs: dict[str, ibis.Value] = dict(
        job=t._job.max(), start=t.ts.min(), end=t.ts.max(), rows=t.count(),
        outcomes=t._known.sum(), failures=t._failed.sum(), timeouts=t._timeout.sum(),
        latency_n=t._latency.count(), p50_ms=t._latency.quantile(0.5),
        p99_ms=t._latency.quantile(0.99))
    if "error_type" in cols:
        aggs["top_error"] = t.error_type.mode(where=failed & t.error_type.notnull())
    for c in VERSION_COLUMNS:
        if c in cols:
            aggs[f"v_{c}"] = t[c].collect(distinct=True)
    kinds = case.features.set_index("name")["kind"].to_dict() if features else {}
    for k, f in enumerate(features):
        h = _hash_double(t[f].cast("float64")) if kinds.get(f) == "numeric" else \
            hash_text(t[f].cast("string"))
        aggs[f"fp_{k}"] = (h % (1 << 31)).cast("int64").sum()
    frame = record(t.group_by("_run").aggregate(**aggs)).rename(columns={"_run": "run"})
    prints = [f"fp_{k}" for k in range(len(features))]
    frame["fingerprint"] = [tuple(int(v) if pd.notna(v) else -1 for v in row)
                            for row in frame[prints].itertuples(index=False)] if prints else None
    frame = frame.drop(columns=prints)
    frame = frame.sort_values("run", ignore_index=True)
    frame["run"] = frame["run"].astype(int)
    if "top_error" not in frame:
        frame["top_error"] = None
    frame["top_error"] = frame["top_error"].astype(object).where(frame["top_error"].notna(),
                                                                 None)
    frame["job"] = frame["job"].astype(object).where(frame["job"].notna(), None)
    for c in ("rows", "outcomes", "failures", "timeouts"):
        frame[c] = frame[c].fillna(0).astype(int)
    with np.errstate(all="ignore"):
        frame["failure_rate"] = np.where(frame["outcomes"] > 0,
                                         frame["failures"] / frame["outcomes"], np.nan)
    versions = {c: frame.pop(f"v_{c}") for c in VERSION_COLUMNS if f"v_{c}" in frame}
    frame["versions"] = [{c: sorted(str(v) for v in (values.iloc[i] or []) if v is not None)
                          for c, values in versions.items()} for i in range(len(frame))]
    return frame


def _against_earlier(k: np.ndarray, n: np.ndarray, alpha: float, flag) -> dict[str, Any]:
    """Each run's ``k`` of ``n`` against the earlier runs pooled, in two passes.

    Pass 1 pools every earlier run; pass 2 pools the earlier runs pass 1 did not flag, so a run
    after a bad one is compared with the healthy runs, not with the bad one too. One-sided
    Fisher (``P(X >= k)``), Holm over the runs tested; ``flag(k, n, rate_before, adjusted)``
    decides. Returns the pooled rate before, the p-values, the adjusted ones and the flags.
    """
    healthy = np.ones(len(k), dtype=bool)
    for _ in range(2):
        big_k = np.concatenate([[0.0], np.cumsum(np.where(healthy, k, 0.0))[:-1]])
        big_n = np.concatenate([[0.0], np.cumsum(np.where(healthy, n, 0.0))[:-1]])
        testable = (n > 0) & (big_n > 0)
        p = np.full(len(k), np.nan)
        p[testable] = fisher_greater(k[testable], n[testable], (k + big_k)[testable],
                                     (n + big_n)[testable])
        adjusted = np.full(len(k), np.nan)
        adjusted[testable] = holm(p[testable])
        with np.errstate(all="ignore"):
            before = np.where(big_n > 0, big_k / big_n, np.nan)
        flagged = testable & flag(k, n, before, np.nan_to_num(adjusted, nan=1.0))
        healthy = ~flagged
    return {"before": before, "pvalue": p, "adjusted": adjusted, "flagged": flagged}


def _failures_test(table: pd.DataFrame, alpha: float, min_failures: int) -> None:
    """Each run's failures against the healthy runs before it (:func:`_against_earlier`)."""
    k, n = table["failures"].to_numpy(float), table["outcomes"].to_numpy(float)

    def flag(k, n, before, adjusted):
        with np.errstate(all="ignore"):
            rate = np.where(n > 0, k / n, 0.0)
        return (adjusted < alpha) & (k >= min_failures) & \
            (rate >= RATE_RATIO * np.nan_to_num(before))

    out = _against_earlier(k, n, alpha, flag)
    table["prior_failure_rate"] = out["before"]
    table["failure_pvalue"] = out["pvalue"]
    table["failure_p_adjusted"] = out["adjusted"]
    table["failure_flagged"] = out["flagged"]


def _accuracy(case: CaseView, record: Recorder, t: ibis.Table, cols: dict[str, str],
              table: pd.DataFrame) -> NotAssessed | None:
    """Labelled and correct predictions per run (requests joined with their latest label)."""
    table["labelled"] = 0
    table["correct"] = 0
    if "prediction" not in cols or not case.has("labels", "request_id", "label"):
        return NotAssessed(f"{ID}.accuracy", "no predictions with labels: accuracy per run "
                                             "not assessed")
    tasks = _tasks(case)
    if tasks and tasks <= {"regression", "generative"}:
        return NotAssessed(f"{ID}.accuracy", f"endpoints are {', '.join(sorted(tasks))}: "
                                             "accuracy per run is for classifiers")
    rows = t.filter(t.prediction.notnull())
    labels = latest_labels(case)
    labels = labels.select(_lid=hash_text(labels.request_id), label=labels.label)
    joined = rows.inner_join(labels, rows._id == labels._lid)
    frame = record(joined.group_by("_run").aggregate(
        labelled=joined.count(),
        correct=(joined.prediction == joined.label.cast("string")).cast("int64").sum()))
    if frame.empty:
        return NotAssessed(f"{ID}.accuracy", "no batch prediction has a label")
    frame = frame.set_index("_run")
    table["labelled"] = table["run"].map(frame["labelled"]).fillna(0).astype(int)
    table["correct"] = table["run"].map(frame["correct"]).fillna(0).astype(int)
    return None


def _tasks(case: CaseView) -> set[str]:
    """The tasks of the batch endpoints (declared or inferred, :attr:`CaseView.tasks`)."""
    tasks = case.tasks
    batch = {k: v for k, v in tasks.items() if k and str(k).startswith(BATCH_PREFIX)}
    return {info.task for info in (batch or tasks).values()}


def _accuracy_test(table: pd.DataFrame, alpha: float, min_failures: int,
                   min_drop: float) -> None:
    """Each run's wrong predictions against the healthy runs before it
    (:func:`_against_earlier`)."""
    n = table["labelled"].to_numpy(float)
    wrong = n - table["correct"].to_numpy(float)

    def flag(k, n, before, adjusted):
        with np.errstate(all="ignore"):
            drop = np.where(n > 0, k / n, 0.0) - np.nan_to_num(before)
        return (adjusted < alpha) & (k >= min_failures) & (drop >= min_drop)

    out = _against_earlier(wrong, n, alpha, flag)
    with np.errstate(all="ignore"):
        table["accuracy"] = np.where(n > 0, 1 - wrong / n, np.nan)
    table["prior_accuracy"] = 1 - out["before"]
    table["accuracy_pvalue"] = out["pvalue"]
    table["accuracy_p_adjusted"] = out["adjusted"]
    table["accuracy_flagged"] = out["flagged"]


def _retries(record: Recorder, t: ibis.Table, table: pd.DataFrame, fingerprint: bool,
             share: float) -> None:
    """The earlier run each run repeats (same job name, same inputs, or its request ids)."""
    # ids by their 64-bit hash (``_id``): grouping and joining on it is 4x faster than on the
    # strings (a collision, odds n^2 / 2^65, could only add one repeated id)
    keyed = t.select("_run", _h=t._id)
    ids = keyed.group_by("_h").aggregate(_first=keyed._run.min(), _last=keyed._run.max())
    dup = ids.filter(ids._first != ids._last)
    j = keyed.inner_join(dup, "_h")
    j = j.filter(j._run != j._first)
    repeated = record(j.group_by(["_run", "_first"]).aggregate(n=j.count()))
    table["repeated_ids"] = 0
    table["retry_of"] = None
    table["retry_reason"] = None
    by_run = repeated.groupby("_run")["n"].sum() if len(repeated) else pd.Series(dtype=int)
    table["repeated_ids"] = table["run"].map(by_run).fillna(0).astype(int)
    # a job name that recurs on the schedule (a run column holding the pipeline's name) is not
    # a retry: only a repeat sooner than half the usual spacing of runs is
    spacing = table["start"].sort_values().diff().dropna()
    soon = spacing.median() / 2 if len(spacing) else pd.Timedelta(0)
    for i, row in table.iterrows():
        earlier = table[table["run"] < row["run"]]
        reasons, of = [], None
        same_job = earlier[earlier["job"].notna() & (earlier["job"] == row["job"])
                           & (row["start"] - earlier["start"] < soon)]
        if row["job"] is not None and len(same_job):
            of = int(same_job["run"].iloc[-1])
            reasons.append(f"same job name {row['job']} "
                           f"{_hours(row['start'] - same_job['start'].iloc[-1])} after it")
        if fingerprint:
            mine = row["fingerprint"]
            same = earlier[(earlier["rows"] == row["rows"])
                           & earlier["fingerprint"].map(mine.__eq__).astype(bool)]
            if len(same):
                of = of or int(same["run"].iloc[0])
                reasons.append(f"same {int(row['rows']):,} input rows as run "
                               f"{int(same['run'].iloc[0])}")
        if row["rows"] and row["repeated_ids"] / row["rows"] >= share:
            mine = repeated[repeated["_run"] == row["run"]].sort_values("n", ascending=False)
            source = int(mine["_first"].iloc[0])
            of = of or source
            reasons.append(f"{row['repeated_ids'] / row['rows']:.0%} of its request ids seen "
                           f"in run {source}")
        if of is not None:
            table.at[i, "retry_of"] = of
            table.at[i, "retry_reason"] = "; ".join(reasons)


def _hours(delta: pd.Timedelta) -> str:
    hours = delta / pd.Timedelta(hours=1)
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


def _versions_and_events(case: CaseView, table: pd.DataFrame) -> None:
    """Versions new at each run, and change events since the previous run's start."""
    seen: dict[str, set[str]] = {}
    new_versions = []
    for versions in table["versions"]:
        fresh = {}
        for column, values in versions.items():
            earlier = seen.setdefault(column, set())
            added = [v for v in values if v not in earlier]
            if added and earlier:  # the first run's versions are not a change
                fresh[column] = added
            earlier.update(values)
        new_versions.append(fresh)
    table["new_versions"] = new_versions
    events = case.events
    events = events[events["kind"].isin(_CHANGE_EVENTS)] if len(events) else events
    changes = []
    for k in range(len(table)):
        if k == 0 or events.empty:
            changes.append([])
            continue
        lo, hi = table["start"].iloc[k - 1], table["end"].iloc[k]
        ts = pd.to_datetime(events["ts"], utc=True)
        part = events[(ts > lo) & (ts <= hi)]
        changes.append([{"ts": pd.Timestamp(e.ts).to_pydatetime(), "kind": e.kind,
                         "artifact": e.artifact, "version": e.version}
                        for e in part.itertuples()])
    table["changes"] = changes


def _drift(case: CaseView, record: Recorder, t: ibis.Table, features: list[str],
           table: pd.DataFrame, reference: list[int], alpha: float) -> pd.DataFrame:
    """PSI and chi-square p-value per run and feature against the reference runs."""
    kinds = case.features.set_index("name")["kind"].to_dict()
    numeric = [f for f in features if kinds.get(f) == "numeric"]
    categorical = [f for f in features if kinds.get(f) != "numeric"]
    in_reference = t._run.isin(reference)
    aggs: dict[str, ibis.Value] = {}
    for i, f in enumerate(numeric):
        x = t[f].cast("float64")
        finite = in_reference & x.notnull() & ~x.isnan() & ~x.isinf()
        aggs[f"q{i}"] = quantiles_at(ibis.ifelse(finite, x, ibis.null("float64")),
                                     float_array(_DECILES))
    for i, f in enumerate(categorical):
        aggs[f"d{i}"] = t[f].approx_nunique()
        aggs[f"c{i}"] = t[f].count()
    profile = record(t.aggregate(**aggs)).iloc[0].to_dict() if aggs else {}
    rows = []
    counts: dict[str, dict[int, np.ndarray]] = {}
    hist_aggs = {}
    for i, f in enumerate(numeric):
        q = profile.get(f"q{i}")
        values = np.asarray([] if q is None else q, dtype=float)
        edges = np.unique(values[np.isfinite(values)])
        if not edges.size:
            continue
        agg, used, _ = fine_histogram(t[f], edges)
        hist_aggs[f"h{i}"] = agg
        counts[f] = {"_bins": len(used) + 1}
    if hist_aggs:
        h = record(t.group_by("_run").aggregate(**hist_aggs))
        for i, f in enumerate(numeric):
            if f"h{i}" not in h:
                continue
            size = counts[f].pop("_bins")
            for run, value in zip(h["_run"], h[f"h{i}"], strict=True):
                c = np.zeros(size)
                if value is not None and not (np.ndim(value) == 0 and pd.isna(value)):
                    arr = np.asarray(value, dtype=float)
                    c[:len(arr)] = np.nan_to_num(arr)
                counts[f][int(run)] = c
    # an id-like column (more values than half its rows: a customer id) differs between runs
    # by nature; it tells nothing about drift (as in case.segments)
    tested_cat = [f for i, f in enumerate(categorical)
                  if 0 < int(profile.get(f"d{i}") or 0) <= MAX_CATEGORIES
                  and int(profile.get(f"d{i}") or 0) <= ID_RATIO * int(profile.get(f"c{i}") or 0)]
    if tested_cat:
        parts = []
        for k, f in enumerate(tested_cat):
            part = t.filter(t[f].notnull())
            parts.append(part.group_by(["_run", part[f].cast("string").name("value")])
                         .aggregate(n=part.count()).mutate(feature=ibis.literal(k, "int64")))
        c = record(ibis.union(*parts) if len(parts) > 1 else parts[0])
        for k, f in enumerate(tested_cat):
            part = c[c["feature"] == k]
            wide = part.pivot_table(index="_run", columns="value", values="n", aggfunc="sum",
                                    fill_value=0)
            counts[f] = {int(r): wide.loc[r].to_numpy(float) for r in wide.index}
    n_rows = table.set_index("run")["rows"]
    for f, per_run in counts.items():
        present = [per_run[r] for r in reference if r in per_run]
        ref_counts = np.sum(present, axis=0) if present else None
        if ref_counts is None or ref_counts.sum() == 0:
            continue
        for run, c in sorted(per_run.items()):
            is_ref = run in reference
            tested = not is_ref and c.sum() >= MIN_WINDOW_ROWS and \
                ref_counts.sum() >= MIN_WINDOW_ROWS
            pvalue = st.chi2_contingency_test(ref_counts, c)[1] if tested else np.nan
            rows.append({"run": run, "feature": f,
                         "kind": "numeric" if f in numeric else "categorical",
                         "rows": int(n_rows.get(run, 0)), "psi": st.psi(ref_counts, c),
                         "chi2_pvalue": pvalue})
    frame = pd.DataFrame(rows, columns=["run", "feature", "kind", "rows", "psi",
                                        "chi2_pvalue"])
    if frame.empty:
        return frame.assign(p_adjusted=np.nan, drifted=False)
    # a constant feature (one bin in both) has no chi-square p-value: PSI 0, not drifted
    ok = frame["chi2_pvalue"].notna().to_numpy()
    adjusted = np.full(len(frame), np.nan)
    adjusted[ok] = holm(frame.loc[ok, "chi2_pvalue"].to_numpy(float))
    frame["p_adjusted"] = adjusted
    frame["drifted"] = ok & (frame["psi"] >= MODERATE_PSI) & (np.nan_to_num(adjusted, nan=1.0)
                                                               < alpha)
    return frame.sort_values(["run", "feature"], ignore_index=True)


def _drift_columns(table: pd.DataFrame, drift: pd.DataFrame) -> None:
    table["max_psi"] = np.nan
    table["top_feature"] = None
    table["drifted_features"] = [[] for _ in range(len(table))]
    if drift.empty:
        return
    for i, row in table.iterrows():
        mine = drift[drift["run"] == row["run"]].sort_values("psi", ascending=False)
        if mine.empty or row["reference"]:
            continue
        table.at[i, "max_psi"] = float(mine["psi"].iloc[0])
        table.at[i, "top_feature"] = mine["feature"].iloc[0]
        table.at[i, "drifted_features"] = mine.loc[mine["drifted"], "feature"].tolist()


def _mix(record: Recorder, t: ibis.Table, cols: dict[str, str]
         ) -> tuple[pd.DataFrame, NotAssessed | None]:
    columns = ["run", "prediction", "count", "share"]
    if "prediction" not in cols:
        return pd.DataFrame(columns=columns), None
    p = t.filter(t.prediction.notnull())
    distinct = int(record(p.aggregate(d=p.prediction.approx_nunique()))["d"].iloc[0] or 0)
    if distinct > MAX_PREDICTIONS:
        return pd.DataFrame(columns=columns), NotAssessed(
            f"{ID}.mix", f"prediction has about {distinct:,} values: no prediction mix per run")
    frame = record(p.group_by(["_run", "prediction"]).aggregate(count=p.count()))
    frame = frame.rename(columns={"_run": "run"})
    frame["share"] = frame["count"] / frame.groupby("run")["count"].transform("sum")
    return frame.sort_values(["run", "prediction"], ignore_index=True)[columns], None


def _num(value: Any) -> Any:
    if isinstance(value, (np.floating, float)):
        return None if np.isnan(value) else float(value)
    return value


def _p_text(p: Any) -> str:
    return "n/a" if p is None or pd.isna(p) else st.p_text(float(p))

