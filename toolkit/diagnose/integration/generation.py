"""Generation settings of a generative endpoint: output length, finish reasons, effective
sampling parameters and the chat template against lineage.

Recipes (all counts and sums are aggregated in the engine; Python compares the summaries)
-----------------------------------------------------------------------------------------
* **Output length** per window (and model version, and bucket): mean and sample variance of
  ``output_tokens``; the windows are compared by the ratio of means and Welch's t-test
  (``scipy.stats.ttest_ind_from_stats``).
* **Finish reasons**: counts per window of every ``finish_reason`` value (``histogram``); the
  share of ``length`` (generation stopped at ``max_tokens``: truncation) compared with a
  two-proportion z-test, the whole mix with a chi-square test and the JS distance (base 2).
  ``at_max_share``: share of requests whose ``output_tokens`` reached the request's
  ``max_tokens`` (among those with both).
* **Sampling parameters** (:data:`PARAMS`, read from the ``params`` JSON with DuckDB's
  ``json_extract_string`` in the engine, once per distinct ``params`` document: the requests
  are grouped by the document's text first): per window the count of every value (a missing key
  counts as ``unset``), per bucket the mean. A parameter *changed* when the total variation
  distance between its baseline and incident value distributions is at least
  :data:`MIN_TVD` (0.5: most requests ran with another value).
* **Template against lineage**: the known-good ``(model_version, template_version)`` pairs are
  the lineage rows with a ``template_version`` (a lineage row without ``model_version`` allows
  the template with any model); without any, the templates that served in the baseline (with
  any model: a new model version on a known template is a release, not a mismatch). Incident
  requests served with a pair outside them are counted, with their ``length`` share and mean
  output length against the other incident requests.

Findings (ids and evidence keys, for the classifier's rules)
------------------------------------------------------------
``integration.truncation_rise``: incident ``length`` share at least 0.05 above the baseline's
(z-test p < 1e-3); high from 0.15. Evidence: ``length_share_baseline``,
``length_share_incident``, ``at_max_share_baseline``, ``at_max_share_incident``,
``output_ratio``, ``finish_js``, ``finish_pvalue``, ``worst_version`` (``{model_version,
length_share, requests}``), ``template_outside`` (bool), ``params_changed`` (list of names),
``artifact_changed``, ``events``, ``new_versions``.

``integration.sampling_params_changed``: a parameter changed (see above; at least 30 incident
requests with params). Statistic: the largest TVD. Evidence: ``param``, ``baseline_value``,
``incident_value`` (modal values), ``tvd``, ``params`` (every changed parameter -> ``{baseline,
incident, tvd}``), ``output_ratio``, ``output_pvalue``, ``length_share_baseline``,
``length_share_incident``, ``finish_js``, ``finish_pvalue``, ``input_ratio`` (prompt length,
incident / baseline: ~1 when the traffic is the same), ``after_deploy`` (a deploy, rollback or
config change between the windows), ``config_events`` (config changes whose detail names a
sampling parameter or ``generation_config``), ``artifact_changed``, ``events``,
``new_versions``, ``template_outside``.

``integration.template_outside_lineage``: at least :data:`MIN_OUTSIDE` (10) incident requests
(and 1% of them) served with a template outside the known-good pairs; high from 20%.
Statistic: their share. Evidence: ``versions`` (list of ``{model_version, template_version,
requests}``), ``share``, ``known_from`` (``lineage`` / ``baseline``), ``length_share_outside``,
``length_share_inside``, ``output_ratio_outside`` (mean output outside / inside), ``events``,
``new_versions``.

``integration.output_length_shift``: mean output length incident / baseline at least 1.5 or at
most 2/3, Welch p < 1e-3; medium (high from x2 or /2). Evidence: ``output_ratio``,
``output_mean_baseline``, ``output_mean_incident``, ``output_pvalue``, ``input_ratio``,
``length_share_baseline``, ``length_share_incident``, ``params_changed``,
``template_outside``, ``artifact_changed``, ``events``, ``new_versions``.

Task: generative endpoints. Not assessed, with the reason, without any of ``output_tokens``,
``finish_reason``, ``params`` and ``template_version``; each part says what it lacks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import ibis
import ibis.expr.datatypes as dt
import numpy as np
import pandas as pd
from scipy import stats

from toolkit._validation import check_windows
from toolkit.diagnose import _stats as st
from toolkit.diagnose._base import DiagnosticResult, Finding, NotAssessed, timeline_signals
from toolkit.diagnose._case import MIN_WINDOW_ROWS, CaseView, case_view, choose_bucket, within
from toolkit.diagnose._engine import Recorder, bucket_expr, window_label
from toolkit.diagnose._engines import CaseSource
from toolkit.diagnose._format import times
from toolkit.diagnose._onset import coarse_onset
from toolkit.diagnose.data.prompt_mix import artifact_changes
from toolkit.types import Window

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["generation", "GenerationResult", "ID", "PARAMS"]

ID = "integration.generation"
#: Sampling parameters read from ``params``.
PARAMS = ("temperature", "top_p", "top_k", "max_tokens", "frequency_penalty",
          "presence_penalty", "repetition_penalty")
MIN_TVD = 0.5
MIN_TRUNCATION_RISE = 0.05
MAJOR_TRUNCATION_RISE = 0.15
MIN_OUTSIDE = 10
MAJOR_OUTSIDE = 0.20
OUTPUT_RATIO = 1.5
ALPHA = 1e-3
UNSET = "unset"
_COLUMNS = ("output_tokens", "finish_reason", "params", "template_version")


@ibis.udf.scalar.builtin(name="json_extract_string")
def _json_texts(value: dt.JSON, paths: dt.Array(dt.string)) -> dt.Array(dt.string):
    """DuckDB ``json_extract_string(json, [path, ...])``: the values at every path as text
    (NULL where absent), from one parse of the document."""


@dataclass(frozen=True, kw_only=True, repr=False)
class GenerationResult(DiagnosticResult):
    """Output length, finish reasons, sampling parameters and templates per window.

    Attributes
    ----------
    table
        One row per window: ``window``, ``requests``, ``output_n``, ``output_mean``,
        ``output_var``, ``input_mean``, ``finished``, ``length``, ``length_share``,
        ``at_max``, ``with_max``, ``at_max_share``.
    by_version
        The same per window and ``model_version``.
    finish
        Per window and ``finish_reason``: ``n`` and ``share``.
    params
        Per parameter: ``param``, ``baseline_value``, ``incident_value`` (modal), ``tvd``,
        ``changed``, ``n_baseline``, ``n_incident``.
    templates
        Incident requests per ``model_version``, ``template_version``: ``requests``,
        ``length``, ``output_mean``, ``known``.
    timeline
        Per bucket: ``requests``, ``output_mean``, ``length_share`` and ``<param>_mean``.
    """

    id = ID
    title = "Generation settings"

    by_version: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    finish: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    params: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    templates: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    timeline: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    known_from: str = ""
    context: dict[str, Any] = field(default_factory=dict, repr=False)

    def value(self, window: str, column: str) -> float:
        rows = self.table[self.table["window"] == window] if not self.table.empty else \
            self.table
        return float(rows[column].iloc[0]) if len(rows) and column in rows else float("nan")

    def headline(self) -> dict[str, Any]:
        if self.table.empty:
            return {}
        return {"output mean baseline": self.value("baseline", "output_mean"),
                "output mean incident": self.value("incident", "output_mean"),
                "length share baseline": self.value("baseline", "length_share"),
                "length share incident": self.value("incident", "length_share"),
                "params changed": ", ".join(self.changed_params) or "none"}

    @property
    def changed_params(self) -> list[str]:
        if self.params.empty:
            return []
        return self.params[self.params["changed"]].sort_values(
            "tvd", ascending=False)["param"].tolist()

    # ----- comparisons -------------------------------------------------------------------
    def _output(self) -> tuple[float, float]:
        """Mean output ratio and Welch p-value (NaN without output lengths)."""
        nb, ni = self.value("baseline", "output_n"), self.value("incident", "output_n")
        mb, mi = self.value("baseline", "output_mean"), self.value("incident", "output_mean")
        if not (nb >= 2 and ni >= 2) or not mb > 0:
            return float("nan"), float("nan")
        vb, vi = self.value("baseline", "output_var"), self.value("incident", "output_var")
        if vb + vi == 0:
            p = 0.0 if mb != mi else 1.0
        else:
            p = float(stats.ttest_ind_from_stats(mb, np.sqrt(vb), nb, mi, np.sqrt(vi), ni,
                                                 equal_var=False).pvalue)
        return mi / mb, p

    def _finish(self) -> tuple[float, float]:
        """JS distance and chi-square p-value of the finish-reason mix (NaN without it)."""
        if self.finish.empty:
            return float("nan"), float("nan")
        wide = self.finish.pivot_table(index="finish_reason", columns="window", values="n",
                                       fill_value=0)
        if not {"baseline", "incident"} <= set(wide.columns):
            return float("nan"), float("nan")
        b, i = wide["baseline"].to_numpy(float), wide["incident"].to_numpy(float)
        _, p, _ = st.chi2_contingency_test(b, i)
        return st.js_distance(b, i), (1.0 if len(b) < 2 else p)

    def _outside(self) -> pd.DataFrame:
        if self.templates.empty:
            return self.templates
        return self.templates[~self.templates["known"]]

    def _common(self) -> dict[str, Any]:
        return {"template_outside": bool(self._outside()["requests"].sum() >= MIN_OUTSIDE)
                if not self.templates.empty else False, **self.context}

    def findings(self) -> list[Finding]:
        if self.table.empty:
            return []
        out = [f for f in (self._truncation(), self._params_finding(), self._template(),
                           self._length_shift()) if f is not None]
        return out

    def _truncation(self) -> Finding | None:
        b, i = self.table.set_index("window").loc["baseline"], \
            self.table.set_index("window").loc["incident"]
        if not (b["finished"] > 0 and i["finished"] > 0):
            return None
        rise = i["length_share"] - b["length_share"]
        _, p = st.two_proportion_z(b["length"], b["finished"], i["length"], i["finished"])
        if not (rise >= MIN_TRUNCATION_RISE and p < ALPHA):
            return None
        worst = None
        v = self.by_version
        if not v.empty:
            inc = v[(v["window"] == "incident") & (v["finished"] >= MIN_WINDOW_ROWS)]
            if len(inc):
                row = inc.sort_values("length_share", ascending=False).iloc[0]
                worst = {"model_version": str(row["model_version"]),
                         "length_share": float(row["length_share"]),
                         "requests": int(row["requests"])}
        js, fp = self._finish()
        ratio, _ = self._output()
        return Finding(
            id="integration.truncation_rise", pathway="integration",
            severity="high" if rise >= MAJOR_TRUNCATION_RISE else "medium",
            statistic=float(rise), threshold=MIN_TRUNCATION_RISE,
            summary=(f"generations cut at max_tokens (finish_reason length) rose from "
                     f"{b['length_share']:.1%} to {i['length_share']:.1%} of requests."),
            evidence={"length_share_baseline": float(b["length_share"]),
                      "length_share_incident": float(i["length_share"]), "pvalue": p,
                      "at_max_share_baseline": float(b["at_max_share"]),
                      "at_max_share_incident": float(i["at_max_share"]),
                      "output_ratio": ratio, "finish_js": js, "finish_pvalue": fp,
                      "worst_version": worst, "params_changed": self.changed_params,
                      **self._common()},
            onset=self._onset("length_share", 1), diagnostic=self.id)

    def _params_finding(self) -> Finding | None:
        changed = self.params[self.params["changed"]] if not self.params.empty else \
            self.params
        if changed.empty:
            return None
        changed = changed.sort_values("tvd", ascending=False)
        top = changed.iloc[0]
        ratio, p = self._output()
        js, fp = self._finish()
        input_b, input_i = self.value("baseline", "input_mean"), \
            self.value("incident", "input_mean")
        events = self.context.get("events", [])
        return Finding(
            id="integration.sampling_params_changed", pathway="integration",
            severity="high" if np.isfinite(ratio) and (ratio >= OUTPUT_RATIO or
                                                       ratio <= 1 / OUTPUT_RATIO) else "medium",
            statistic=float(top["tvd"]), threshold=MIN_TVD,
            summary=(f"effective {top['param']} changed from {top['baseline_value']} to "
                     f"{top['incident_value']} (TVD {top['tvd']:.2f})"
                     + (f"; mean output length {times(ratio, 2)}" if np.isfinite(ratio) else "")
                     + "."),
            evidence={"param": str(top["param"]), "baseline_value": top["baseline_value"],
                      "incident_value": top["incident_value"], "tvd": float(top["tvd"]),
                      "params": {str(r.param): {"baseline": r.baseline_value,
                                                "incident": r.incident_value,
                                                "tvd": float(r.tvd)}
                                 for r in changed.itertuples()},
                      "output_ratio": ratio, "output_pvalue": p,
                      "length_share_baseline": self.value("baseline", "length_share"),
                      "length_share_incident": self.value("incident", "length_share"),
                      "finish_js": js, "finish_pvalue": fp,
                      "input_ratio": input_i / input_b if input_b > 0 else float("nan"),
                      "after_deploy": bool(events),
                      "config_events": [e for e in events if e.get("params")],
                      **self._common()},
            onset=self._onset(f"{top['param']}_mean", 0), diagnostic=self.id)

    def _template(self) -> Finding | None:
        if self.templates.empty:
            return None
        outside = self._outside()
        total = self.templates["requests"].sum()
        n = int(outside["requests"].sum())
        if n < MIN_OUTSIDE or n < 0.01 * total:
            return None
        inside = self.templates[self.templates["known"]]
        share = n / total

        def length_share(rows: pd.DataFrame) -> float:
            return float(rows["length"].sum() / rows["finished"].sum()) \
                if rows["finished"].sum() > 0 else float("nan")

        def mean_output(rows: pd.DataFrame) -> float:
            weight = rows["output_n"].sum()
            return float((rows["output_mean"] * rows["output_n"]).sum() / weight) \
                if weight > 0 else float("nan")

        versions = [{"model_version": None if pd.isna(r.model_version) else
                     str(r.model_version), "template_version": str(r.template_version),
                     "requests": int(r.requests)} for r in outside.sort_values(
                         "requests", ascending=False).itertuples()]
        ratio = mean_output(outside) / mean_output(inside) if len(inside) else float("nan")
        lead = versions[0]
        return Finding(
            id="integration.template_outside_lineage", pathway="integration",
            severity="high" if share >= MAJOR_OUTSIDE else "medium", statistic=float(share),
            threshold=0.01,
            summary=(f"{share:.0%} of incident requests were served with template "
                     f"{lead['template_version']} (model {lead['model_version']}), outside "
                     f"the {self.known_from}'s known-good pairs."),
            evidence={"versions": versions, "share": float(share),
                      "known_from": self.known_from,
                      "length_share_outside": length_share(outside),
                      "length_share_inside": length_share(inside),
                      "output_ratio_outside": ratio, **self.context},
            onset=None, diagnostic=self.id)

    def _length_shift(self) -> Finding | None:
        ratio, p = self._output()
        if not np.isfinite(ratio) or not (ratio >= OUTPUT_RATIO or ratio <= 1 / OUTPUT_RATIO) \
                or not p < ALPHA:
            return None
        input_b, input_i = self.value("baseline", "input_mean"), \
            self.value("incident", "input_mean")
        return Finding(
            id="integration.output_length_shift", pathway="integration",
            severity="high" if ratio >= 2 or ratio <= 0.5 else "medium",
            statistic=float(ratio), threshold=OUTPUT_RATIO,
            summary=(f"mean output length {times(ratio, 2)} ("
                     f"{self.value('baseline', 'output_mean'):.0f} -> "
                     f"{self.value('incident', 'output_mean'):.0f} tokens)."),
            evidence={"output_ratio": ratio,
                      "output_mean_baseline": self.value("baseline", "output_mean"),
                      "output_mean_incident": self.value("incident", "output_mean"),
                      "output_pvalue": p,
                      "input_ratio": input_i / input_b if input_b > 0 else float("nan"),
                      "length_share_baseline": self.value("baseline", "length_share"),
                      "length_share_incident": self.value("incident", "length_share"),
                      "params_changed": self.changed_params, **self._common()},
            onset=self._onset("output_mean", 1 if ratio > 1 else -1), diagnostic=self.id)

    def _onset(self, column: str, direction: int):
        t = self.timeline
        if t.empty or column not in t:
            return None
        return coarse_onset(t.dropna(subset=[column]), column, after=self.baseline.end,
                            weights="requests", direction=direction)

    def signals(self) -> pd.DataFrame:
        columns = [c for c in ("output_mean", "length_share") if c in self.timeline]
        return timeline_signals(self.timeline, columns, "generation.", dropna=True)

    def plot(self, ax: Axes | None = None, **kwargs: Any) -> Axes:
        """Mean output length and the share cut at max_tokens per bucket."""
        from toolkit.plotting import WINDOW_COLORS, axes

        ax = axes(ax, figsize=(10, 4))
        t = self.timeline
        if t.empty or "output_mean" not in t or t["output_mean"].isna().all():
            return super().plot(ax)
        ax.plot(t["bucket_start"], t["output_mean"], label="output tokens (mean)")
        ax.axvspan(self.incident.start, self.incident.end, color=WINDOW_COLORS["incident"],
                   alpha=0.08, label="incident")
        ax.set_xlabel("request time (UTC)")
        ax.set_ylabel("tokens")
        if "length_share" in t and t["length_share"].notna().any():
            twin = ax.twinx()
            twin.plot(t["bucket_start"], t["length_share"], color="#C44E52",
                      label="finish_reason length")
            twin.set_ylim(0, 1)
            twin.set_ylabel("share cut at max_tokens")
        ax.set_title("Output length and truncation")
        ax.legend(loc="upper left")
        return ax


def generation(
    con: CaseSource,
    baseline: Window | str,
    incident: Window | str,
    /,
    *,
    bucket: timedelta | None = None,
    case: CaseView | None = None,
) -> GenerationResult:
    """Output length, finish-reason mix, effective sampling parameters and templates against
    lineage, per window, model version and time bucket.

    Parameters
    ----------
    con
        Case connection.
    baseline, incident
        The windows (``Window``, ``"START/END"`` or ``(start, end)``).
    bucket
        Timeline bucket width (default: about 240 buckets over the windows).
    case
        A :class:`~toolkit.diagnose._case.CaseView` to share between diagnostics.

    Examples
    --------
    >>> import json, pandas as pd, toolkit as tk
    >>> con = tk.connect()
    >>> ts = pd.date_range("2026-03-01", periods=400, freq="min", tz="UTC")
    >>> params = [json.dumps({"temperature": 0.7})] * 200 + [json.dumps({"temperature": 1.3})] * 200
    >>> _ = tk.load(con, pd.DataFrame({"request_id": range(400), "ts": ts, "params": params,
    ...     "output_tokens": 100, "finish_reason": "stop"}), table="requests")
    >>> r = generation(con, (ts[0], ts[200]), (ts[200], ts[-1] + pd.Timedelta("1min")))
    >>> r.changed_params, [f.id for f in r.findings()]
    (['temperature'], ['integration.sampling_params_changed'])
    """
    baseline, incident = check_windows(baseline, incident)
    case = case or case_view(con)
    base = dict(baseline=baseline, incident=incident)
    if not case.has("requests"):
        return GenerationResult(**base, not_assessed=(NotAssessed(ID, "the case has no "
                                                                      "requests"),))
    columns = case.columns["requests"]
    present = [c for c in _COLUMNS if c in columns]
    if not present:
        return GenerationResult(**base, not_assessed=(NotAssessed(
            ID, "requests carry none of " + ", ".join(_COLUMNS)),))
    gaps = list(case.window_gaps(ID, baseline, incident))
    if gaps:
        return GenerationResult(**base, not_assessed=tuple(gaps))
    gaps.extend(NotAssessed(f"{ID}:{c}", f"requests carry no {c}") for c in _COLUMNS
                if c not in columns)
    record = Recorder()
    span = Window(min(baseline.start, incident.start), max(baseline.end, incident.end))
    width = bucket or choose_bucket(span.duration)
    cells = _cells(record, case, span, width, baseline, incident)
    params = [p for p in PARAMS if f"p_{p}" in cells and cells[f"p_{p}"].notna().any()]
    in_windows = cells[cells["window"].notna()]
    table = pd.DataFrame({"window": ["baseline", "incident"]}).merge(
        _finish_counts(_pool(in_windows, ["window"])), on="window", how="left")
    has_version = "model_version" in columns
    by_version = _finish_counts(_pool(in_windows, ["window", "model_version"])) \
        if has_version else pd.DataFrame()
    finish = pd.DataFrame()
    if "finish_reason" in columns:
        finish = in_windows.groupby(["window", "finish_reason"], as_index=False)[
            "requests"].sum().rename(columns={"requests": "n"})
        finish = finish[finish["n"] > 0]
        finish["share"] = finish["n"] / finish.groupby("window")["n"].transform("sum")
    param_table = _param_table(in_windows, params)
    templates, known_from = (_templates(case, in_windows)
                             if "template_version" in columns else (pd.DataFrame(), ""))
    timeline = _timeline(cells, params)
    context = artifact_changes(case, record, baseline, incident)
    context["events"] = [e | {"params": _named_params(case, e)} for e in context["events"]]
    return GenerationResult(**base, table=table, by_version=by_version, finish=finish,
                            params=param_table, templates=templates, timeline=timeline,
                            known_from=known_from, context=context, sql=record.sql,
                            not_assessed=tuple(gaps))


#: Columns a cell is keyed by, when the case has them (besides bucket, window and params).
_KEYS = ("model_version", "template_version", "finish_reason")


def _cells(record: Recorder, case: CaseView, span: Window, width: timedelta,
           baseline: Window, incident: Window) -> pd.DataFrame:
    """The one scan: requests per bucket, window, version, template, finish reason and
    ``params`` document, with output / prompt sums and the count reaching ``max_tokens``.
    Everything else is a sum of these cells.

    ``params`` is grouped by its text and parsed only once per distinct document: in the outer
    query for the parameter values, and in a small table of distinct documents joined back for
    ``max_tokens`` (10M requests: parsing every row took 5.2 s, grouping by the text 0.1 s).
    """
    columns = case.columns["requests"]
    requests = case.table("requests")
    rows = requests.filter(within(requests.ts, span))
    paths = ibis.literal([f"$.{p}" for p in PARAMS], type="array<string>")
    limit = None
    if "params" in columns:
        rows = rows.mutate(_ptext=rows.params.cast("string"))
        documents = rows.select("_ptext").distinct()
        documents = documents.mutate(_limit=_json_texts(
            documents._ptext.cast("json"), paths)[PARAMS.index("max_tokens")]
            .try_cast("float64"))
        rows = rows.left_join(documents, "_ptext")
        limit = rows._limit
    keys: dict[str, ibis.Value] = {"bucket_start": bucket_expr(rows.ts, width),
                                   "window": window_label(rows.ts, baseline, incident)}
    keys |= {k: rows[k] for k in _KEYS if k in columns}
    if "params" in columns:
        keys["_ptext"] = rows._ptext
    sums: dict[str, ibis.Value] = {"requests": rows.count(), "first_seen": rows.ts.min()}
    if "output_tokens" in columns:
        x = rows.output_tokens.cast("float64")
        sums |= {"output_n": x.count(), "output_sum": x.sum(), "output_sq": (x * x).sum()}
        if limit is not None:
            known = limit.notnull() & x.notnull()
            sums |= {"with_max": known.cast("int64").sum(),
                     "at_max": (known & (x >= limit)).cast("int64").sum()}
    if "input_tokens" in columns:
        x = rows.input_tokens.cast("float64")
        sums |= {"input_n": x.count(), "input_sum": x.sum()}
    cells = rows.group_by(**keys).aggregate(**sums)
    if "params" in columns:
        texts = _json_texts(cells._ptext.cast("json"), paths)
        cells = cells.mutate(**{f"p_{p}": texts[k] for k, p in enumerate(PARAMS)}).drop(
            "_ptext")
    cells = record(cells)
    if "finish_reason" in cells:
        cells["length"] = np.where(cells["finish_reason"] == "length", cells["requests"], 0)
        cells["finished"] = np.where(cells["finish_reason"].notna(), cells["requests"], 0)
    return cells


_SUMMED = ("requests", "output_n", "output_sum", "output_sq", "input_n", "input_sum",
           "length", "finished", "at_max", "with_max")


def _pool(cells: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    sums = [c for c in _SUMMED if c in cells]
    out = cells.groupby(keys, as_index=False, dropna=False)[sums].sum()
    first = cells.groupby(keys, as_index=False, dropna=False)["first_seen"].min()
    return out.merge(first, on=keys, how="left")


def _finish_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """Means, variances and shares from the summed columns (NaN where absent)."""
    frame = frame.copy()
    for column in _SUMMED:
        if column not in frame:
            frame[column] = np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        n = frame["output_n"].to_numpy(float)
        mean = frame["output_sum"].to_numpy(float) / n
        frame["output_mean"] = mean
        frame["output_var"] = (frame["output_sq"].to_numpy(float) - n * mean**2) / (n - 1)
        frame["input_mean"] = frame["input_sum"].to_numpy(float) / frame["input_n"].to_numpy(
            float)
        frame["length_share"] = frame["length"].to_numpy(float) / frame["finished"].to_numpy(
            float)
        frame["at_max_share"] = frame["at_max"].to_numpy(float) / frame["with_max"].to_numpy(
            float)
    return frame


def _param_table(cells: pd.DataFrame, params: list[str]) -> pd.DataFrame:
    """Value distributions of every parameter per window and their TVD."""
    out = []
    for p in params:
        values = cells.assign(value=cells[f"p_{p}"].fillna(UNSET)).groupby(
            ["window", "value"])["requests"].sum()
        b = values.get("baseline", pd.Series(dtype=float))
        i = values.get("incident", pd.Series(dtype=float))
        b, i = b[b > 0], i[i > 0]
        nb, ni = float(b.sum()), float(i.sum())
        both = b.index.union(i.index)
        pb = b.reindex(both, fill_value=0).to_numpy(float) / nb if nb else None
        pi = i.reindex(both, fill_value=0).to_numpy(float) / ni if ni else None
        tvd = float(0.5 * np.abs(pb - pi).sum()) if nb and ni else float("nan")
        out.append({"param": p, "baseline_value": str(b.idxmax()) if nb else None,
                    "incident_value": str(i.idxmax()) if ni else None, "tvd": tvd,
                    "changed": bool(tvd >= MIN_TVD and ni >= MIN_WINDOW_ROWS),
                    "n_baseline": int(nb), "n_incident": int(ni)})
    if not out:
        return pd.DataFrame(columns=["param", "baseline_value", "incident_value", "tvd",
                                     "changed", "n_baseline", "n_incident"])
    return pd.DataFrame(out)


def _templates(case: CaseView, cells: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Incident requests per (model_version, template_version), flagged known or not."""
    has_model = "model_version" in cells
    keys = ["window", "template_version"] + (["model_version"] if has_model else [])
    grouped = _finish_counts(_pool(cells, keys))
    if not has_model:
        grouped["model_version"] = None
    known_pairs: set[tuple[Any, Any]] = set()
    any_model: set[Any] = set()
    known_from = "baseline"
    if case.has("lineage", "template_version"):
        lineage = case.con.execute(
            "SELECT DISTINCT model_version, template_version FROM lineage "
            "WHERE template_version IS NOT NULL").fetchall()
        known_from = "lineage"
        for model, template in lineage:
            if model is None or not has_model:
                any_model.add(template)
            else:
                known_pairs.add((model, template))
    else:
        # without lineage a template is known when it served in the baseline, with any model:
        # a new model version on a known template is a release, not a template mismatch
        base = grouped[grouped["window"] == "baseline"]
        any_model = set(base["template_version"].dropna())
    inc = grouped[(grouped["window"] == "incident") & grouped["template_version"].notna()]
    inc = inc.copy()
    inc["model_version"] = inc["model_version"].map(lambda v: None if pd.isna(v) else v)
    inc["known"] = [t in any_model or (m, t) in known_pairs
                    for m, t in zip(inc["model_version"], inc["template_version"], strict=True)]
    return inc.drop(columns=["window"]).reset_index(drop=True), known_from


def _timeline(cells: pd.DataFrame, params: list[str]) -> pd.DataFrame:
    frame = _finish_counts(_pool(cells, ["bucket_start"]))
    keep = ["bucket_start", "requests", "output_mean", "length_share"]
    for p in params:
        value = pd.to_numeric(cells[f"p_{p}"], errors="coerce")
        weight = cells["requests"].where(value.notna(), 0)
        sums = pd.DataFrame({"bucket_start": cells["bucket_start"], "w": weight,
                             "wx": weight * value.fillna(0)}).groupby("bucket_start").sum()
        frame[f"{p}_mean"] = frame["bucket_start"].map(
            sums["wx"] / sums["w"].where(sums["w"] > 0))
        keep.append(f"{p}_mean")
    return frame[keep].sort_values("bucket_start", ignore_index=True)


def _named_params(case: CaseView, event: dict[str, Any]) -> list[str]:
    """The sampling parameters an event's detail names (``generation_config`` too)."""
    events = case.events
    match = events[(pd.to_datetime(events["ts"], utc=True) == pd.Timestamp(event["ts"]))
                   & (events["kind"] == event["kind"])]
    names: list[str] = []
    for detail in match["detail"]:
        if isinstance(detail, dict):
            names += [k for k in detail if k in PARAMS or k == "generation_config"]
    return sorted(set(names))
