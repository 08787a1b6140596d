"""The task of every endpoint: declared in the ``endpoints`` catalog, else inferred.

DESIGN section 3a: an endpoint is ``binary``, ``multiclass``, ``regression`` or ``generative``.
A row of the ``endpoints`` catalog (``endpoint, task, positive_class, classes, interval_coverage``)
declares it; an endpoint without one gets its task from the engine, in two aggregates over
``requests`` (and one over ``labels``):

* **generative**: no endpoint request carries a ``prediction`` while some carry token counts
  (``input_tokens`` / ``output_tokens``);
* **regression**: every prediction (and every label, when there are labels) parses as a
  number, and either some of them have a fractional part, more than :data:`MAX_CLASSES`
  distinct values occur, or a prediction interval (``pred_lower``/``pred_upper``) is logged;
* **multiclass**: more than two classes among the predictions and the labels;
* **binary**: anything else (including an endpoint with a single class seen so far).

Distinct values are counted approximately in the engine (HyperLogLog) to choose between
classes and numbers; the classes themselves are listed exactly (a group-by) only for endpoints
with at most :data:`MAX_CLASSES` of them. Requests without an ``endpoint`` form one endpoint
whose key is ``None``.

Examples
--------
>>> import pandas as pd, toolkit as tk
>>> from toolkit.diagnose._case import case_view
>>> con = tk.connect()
>>> ts = pd.Timestamp("2026-03-01", tz="UTC")
>>> _ = tk.load(con, pd.DataFrame({"request_id": ["a", "b", "c", "d"], "ts": ts,
...     "endpoint": ["cls", "cls", "reg", "reg"], "prediction": ["cat", "dog", "1.5", "2.25"]}),
...     table="requests")
>>> _ = tk.load(con, pd.DataFrame({"request_id": ["a", "b"], "label": ["cow", "dog"]}),
...     table="labels")
>>> tasks = case_view(con).tasks
>>> tasks["cls"].task, tasks["cls"].classes, tasks["reg"].task
('multiclass', ('cat', 'cow', 'dog'), 'regression')
"""

from __future__ import annotations

import itertools
import json
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import ibis
import ibis.expr.datatypes as dt

from toolkit.diagnose._engine import Recorder
from toolkit.types import Window

if TYPE_CHECKING:  # pragma: no cover
    from toolkit.diagnose._base import Finding
    from toolkit.diagnose._case import CaseView

__all__ = ["TaskInfo", "infer_tasks", "main_task", "MAX_CLASSES", "TASK_COLUMNS", "class_scores",
           "json_pointer", "class_probabilities", "scored_rows", "ScoredRows", "task_filter",
           "task_labelled", "SCORES_SAMPLE_ROWS", "scores_share", "mixed_tasks",
           "other_endpoints", "endpoint_name", "per_endpoint", "endpoint_findings",
           "labelled_for"]

#: At most this many distinct values make classes; more (all numeric) make a regression.
MAX_CLASSES = 100
#: Request columns whose values mark a generative (token-streaming) endpoint.
TASK_COLUMNS = ("input_tokens", "output_tokens")


@dataclass(frozen=True)
class TaskInfo:
    """The task of one endpoint (or of the case's main task, merged over its endpoints).

    Attributes
    ----------
    endpoint
        The endpoint (``None``: requests without an endpoint, or a merged view).
    task
        ``binary``, ``multiclass``, ``regression`` or ``generative``.
    source
        ``declared`` (the ``endpoints`` catalog) or ``inferred``.
    positive_class
        The declared positive class of a binary endpoint (``None``: undeclared).
    classes
        The classes, sorted: declared, else seen in predictions and labels (empty for
        regression and generative endpoints).
    interval_coverage
        The nominal coverage of ``[pred_lower, pred_upper]`` (regression; ``None``: undeclared).
    requests
        Requests of the endpoint.
    endpoints
        The endpoints this information covers (one, or several for the merged main task).
    """

    endpoint: str | None
    task: str
    source: str
    positive_class: str | None = None
    classes: tuple[str, ...] = ()
    interval_coverage: float | None = None
    requests: int = 0
    endpoints: tuple[str | None, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (``forensics info``)."""
        return {"endpoint": self.endpoint, "task": self.task, "source": self.source,
                "positive_class": self.positive_class, "classes": list(self.classes),
                "interval_coverage": self.interval_coverage, "requests": self.requests}


def infer_tasks(case: CaseView) -> dict[str | None, TaskInfo]:
    """The task of every endpoint seen in ``requests`` or declared in ``endpoints``.

    Declared endpoints keep the catalog's task (their classes are the declared ones, else the
    classes seen); the others are inferred as the module documentation says.
    """
    declared = _declared(case)
    record = Recorder()
    seen = _request_profile(case, record) if case.counts.get("requests") else {}
    labels = _label_profile(case, record, seen) if seen and case.has("labels", "label") else {}
    out: dict[str | None, TaskInfo] = {}
    for endpoint in [*seen, *(e for e in declared if e not in seen)]:
        profile = seen.get(endpoint, {})
        label = labels.get(endpoint, {})
        classes = tuple(sorted(set(profile.get("classes", ())) | set(label.get("classes", ()))))
        n = int(profile.get("n", 0))
        if endpoint in declared:
            row = declared[endpoint]
            task = row["task"]
            listed = row["classes"]
            out[endpoint] = TaskInfo(
                endpoint, task, "declared", row["positive_class"],
                tuple(sorted(listed)) if listed else
                (classes if task in ("binary", "multiclass") else ()),
                row["interval_coverage"], n, (endpoint,))
            continue
        task = _decide(profile, label, classes)
        out[endpoint] = TaskInfo(endpoint, task, "inferred", None,
                                 classes if task in ("binary", "multiclass") else (), None, n,
                                 (endpoint,))
    return out


def main_task(tasks: dict[str | None, TaskInfo]) -> TaskInfo:
    """The case's main task, merged over the endpoints that have it.

    The task serving the most requests (ties: the order of :data:`~toolkit.store.schema.TASKS`);
    its classes are the union of its endpoints' classes, its positive class and nominal coverage
    the declared ones when the endpoints agree. A case without requests or declarations is
    ``binary`` (the canonical schema's default reading of ``prediction``/``score``).
    """
    from toolkit.store.schema import TASKS

    if not tasks:
        return TaskInfo(None, "binary", "inferred")
    totals: dict[str, int] = {}
    for info in tasks.values():
        totals[info.task] = totals.get(info.task, 0) + info.requests
    task = max(totals, key=lambda t: (totals[t], -TASKS.index(t)))
    members = [info for info in tasks.values() if info.task == task]
    if len(members) == 1:
        return members[0]
    positives = {m.positive_class for m in members}
    coverages = {m.interval_coverage for m in members}
    return TaskInfo(
        None, task, "declared" if all(m.source == "declared" for m in members) else "inferred",
        positives.pop() if len(positives) == 1 else None,
        tuple(sorted({c for m in members for c in m.classes})),
        coverages.pop() if len(coverages) == 1 else None,
        sum(m.requests for m in members), tuple(m.endpoint for m in members))


def _decide(profile: dict[str, Any], label: dict[str, Any], classes: tuple[str, ...]) -> str:
    n_pred = int(profile.get("predicted", 0))
    if not n_pred:
        return "generative" if profile.get("tokens") else "binary"
    numeric = profile["numeric"] == n_pred and (not label or label["numeric"] == label["n"])
    many = max(profile["distinct"], label.get("distinct", 0)) > MAX_CLASSES
    fractional = profile["fractional"] > 0 or label.get("fractional", 0) > 0
    if numeric and (fractional or many or profile.get("intervals")):
        return "regression"
    if len(classes) > 2 or many:
        return "multiclass"
    return "binary"


def _number_profile(column: ibis.StringValue) -> dict[str, ibis.Value]:
    number = column.try_cast("float64")
    return {"numeric": number.count(),
            "fractional": (number != number.floor()).cast("int64").sum(),
            "distinct": column.approx_nunique()}


def _request_profile(case: CaseView, record: Recorder) -> dict[str | None, dict[str, Any]]:
    """Per endpoint: requests, predictions, numeric and fractional predictions, distinct
    predictions (approximate), token and interval counts; then the classes of endpoints with
    few distinct predictions."""
    requests = case.table("requests")
    present = case.columns["requests"]
    key = requests.endpoint if "endpoint" in present else ibis.null("string")
    aggs: dict[str, Any] = {"n": requests.count()}
    if "prediction" in present:
        aggs |= {"predicted": requests.prediction.count(), **_number_profile(requests.prediction)}
    tokens = [c for c in TASK_COLUMNS if c in present]
    if tokens:
        aggs["tokens"] = sum((requests[c].count() for c in tokens), ibis.literal(0))
    if "pred_lower" in present or "pred_upper" in present:
        aggs["intervals"] = sum((requests[c].count() for c in ("pred_lower", "pred_upper")
                                 if c in present), ibis.literal(0))
    frame = record(requests.group_by(endpoint=key).aggregate(**aggs))
    out: dict[str | None, dict[str, Any]] = {}
    for row in frame.to_dict("records"):
        row = {k: (0 if v is None or v != v else v) if k != "endpoint" else v
               for k, v in row.items()}
        out[row.pop("endpoint")] = row
    few = [e for e, p in out.items() if p.get("predicted") and p["distinct"] <= MAX_CLASSES]
    if few:
        rows = requests.filter(requests.prediction.notnull())
        key = rows.endpoint if "endpoint" in present else ibis.null("string")
        listed = record(rows.group_by(endpoint=key, value=rows.prediction).aggregate(
            n=rows.count()))
        for endpoint, part in listed.groupby("endpoint", dropna=False):
            endpoint = None if endpoint is None or endpoint != endpoint else endpoint
            if endpoint in few and len(part) <= MAX_CLASSES:
                out[endpoint]["classes"] = [str(v) for v in part["value"]]
    return out


def _label_profile(case: CaseView, record: Recorder, seen: dict[str | None, dict[str, Any]]
                   ) -> dict[str | None, dict[str, Any]]:
    """The same profile of the labels, per endpoint (labels alone when the case has one
    endpoint; joined to their requests' endpoint otherwise)."""
    labels = case.table("labels")
    if len(seen) == 1:
        endpoint = next(iter(seen))
        rows, key = labels, ibis.literal(endpoint, type="string")
    else:
        requests = case.table("requests").select("request_id", "endpoint")
        rows = labels.select("request_id", "label").inner_join(requests, "request_id")
        key = rows.endpoint
    frame = record(rows.group_by(endpoint=key).aggregate(
        n=rows.label.count(), **_number_profile(rows.label)))
    out = {(None if r["endpoint"] != r["endpoint"] else r["endpoint"]): r
           for r in frame.to_dict("records")}
    few = [e for e, p in out.items() if p["distinct"] <= MAX_CLASSES]
    if few:
        rows = rows.filter(rows.label.notnull())
        key = key if len(seen) == 1 else rows.endpoint
        listed = record(rows.group_by(endpoint=key, value=rows.label).aggregate(k=rows.count()))
        for endpoint, part in listed.groupby("endpoint", dropna=False):
            endpoint = None if endpoint is None or endpoint != endpoint else endpoint
            if endpoint in few and len(part) <= MAX_CLASSES:
                out[endpoint]["classes"] = [str(v) for v in part["value"]]
    return out


def _declared(case: CaseView) -> dict[str | None, dict[str, Any]]:
    if not case.counts.get("endpoints"):
        return {}
    rows = case.con.execute(
        "SELECT endpoint, task, positive_class, CAST(classes AS VARCHAR), interval_coverage "
        "FROM endpoints").fetchall()
    out = {}
    for endpoint, task, positive, classes, coverage in rows:
        listed = json.loads(classes) if classes else None
        out[endpoint] = {"task": task, "positive_class": positive,
                         "classes": [str(c) for c in listed] if isinstance(listed, list) else None,
                         "interval_coverage": None if coverage is None else float(coverage)}
    return out


# --- rows of one task -------------------------------------------------------------------------

@ibis.udf.scalar.builtin(name="json_extract_string")
def _json_strings(value: dt.JSON, paths: dt.Array(dt.string)) -> dt.Array(dt.string):
    """DuckDB ``json_extract_string(json, [paths])``: every path from one parse of the value."""


def json_pointer(key: str) -> str:
    """The JSON pointer (RFC 6901) of an object key: any class name is safe in it.

    Examples
    --------
    >>> json_pointer("a/b~c")
    '/a~1b~0c'
    """
    return "/" + key.replace("~", "~0").replace("/", "~1")


def class_scores(scores: ibis.Value, classes: tuple[str, ...]) -> list[ibis.FloatingValue]:
    """The probability of each class from a ``scores`` JSON object, as one column each; a
    class missing from a row's object counts 0, a row without ``scores`` stays NULL. (For
    many rows use :func:`class_probabilities`, which parses each object once.)"""
    listed = class_probabilities(scores, classes)
    return [ibis.cases((scores.isnull(), ibis.null("float64")), else_=listed[k])
            for k in range(len(classes))]


def class_probabilities(scores: ibis.Value, classes: tuple[str, ...]) -> ibis.ArrayValue:
    """The probabilities of ``classes`` from a ``scores`` JSON object as one DOUBLE[] per row,
    in the order of ``classes``: one parse of the object (``json_extract_string`` with every
    path) and one lambda over the list; a class missing from the object counts 0.

    Unnest it together with ``ibis.range(len(classes))`` to get (class, probability) rows.
    """
    paths = ibis.literal([json_pointer(c) for c in classes], type="array<string>")
    return _json_strings(scores.cast("json"), paths).map(
        lambda v: v.try_cast("float64").fill_null(0.0))


#: Predictions with ``scores`` beyond which the per-class diagnostics (classwise ECE, one-vs-rest
#: AUC) read a deterministic sample of this many: parsing a JSON object of 10 classes costs
#: about 3 us per row on 2 cores (6M labelled rows: 18 s). The share read is reported with the
#: results.
SCORES_SAMPLE_ROWS = 500_000

_scored_names = itertools.count(1)


@dataclass(frozen=True)
class ScoredRows:
    """The labelled predictions of the windows with their class probabilities parsed once.

    Attributes
    ----------
    table
        ``_window`` (``baseline``/``incident``), ``_y`` (the label's index in ``classes``; -1
        for a label outside them) and ``_probs`` (DOUBLE[], in the order of ``classes``).
    classes
        The classes, in the order of ``_probs``.
    rows, fraction
        Predictions with scores in the span of the windows, and the share of them whose
        labelled rows are in ``table`` (1.0 unless more than :data:`SCORES_SAMPLE_ROWS`: then
        a deterministic sample by hashed time, :func:`~._engine.sample_by_time`).
    """

    table: ibis.Table
    classes: tuple[str, ...]
    rows: int
    fraction: float

    def pairs(self) -> ibis.Table:
        """One row per (row, class): ``_window``, ``_y``, ``_c`` (the class's index) and
        ``_p`` (its probability clipped to [0, 1]); DuckDB zips the two unnests of one
        select."""
        t = self.table
        return t.select(t._window, t._y, _c=ibis.range(len(self.classes)).unnest(),
                        _p=t._probs.map(lambda v: v.clip(0.0, 1.0)).unnest())


def scored_rows(case: CaseView, record: Recorder, baseline: Window, incident: Window,
                info: TaskInfo) -> ScoredRows:
    """:class:`ScoredRows` of the windows, made once per case view (a temporary table);
    ``record`` must build joins as written (it may make :func:`task_labelled`'s table)."""
    from toolkit.diagnose._engine import window_label

    key = ("scored_rows", baseline.start, baseline.end, incident.start, incident.end,
           info.endpoints, info.classes)
    if key in case.cache:
        scored, sql = case.cache[key]
        record.note(sql)
        return scored
    from toolkit.diagnose._case import within
    from toolkit.diagnose._engine import sample_by_time
    from toolkit.diagnose._labels import latest_labels

    span = Window(min(baseline.start, incident.start), max(baseline.end, incident.end))
    fraction = scores_share(case, record, span, info)
    rows = case.cache[("scores_share", span.start, span.end, info.endpoints)][0]
    # the sample first, alone on the bare table: DuckDB then evaluates it inside the scan and
    # reads ``scores`` and ``request_id`` for the sampled rows only; below the other filters
    # it stayed a filter above a scan of every row's JSON object (10M requests: 1.28 -> 0.79
    # CPU-s for this query). The same filters, the same rows.
    requests = case.table("requests")
    if fraction < 1.0:
        requests = sample_by_time(requests, fraction)
    requests = task_filter(case, info, requests)
    requests = requests.filter(within(requests.ts, span) & requests.prediction.notnull()
                               & requests.scores.notnull())
    # the labels probe the (sampled) requests: the hash table is built on the smaller side
    t = latest_labels(case).inner_join(requests.select("request_id", "ts", "scores"),
                                       "request_id")
    t = t.mutate(_window=window_label(t.ts, baseline, incident))
    t = t.filter(t._window.notnull())
    classes = info.classes
    labels = ibis.cases(*((t.label == ibis.literal(c), k) for k, c in enumerate(classes)),
                        else_=-1)
    selected = t.select(t._window, _y=labels, _probs=class_probabilities(t.scores, classes))
    name = f"_forensics_scored_{next(_scored_names)}"
    table = record.temp_table(case.backend, name, selected)
    weakref.finalize(case, _drop, case.con, name)
    scored = ScoredRows(table, classes, rows, fraction)
    case.cache[key] = (scored, record.sql[-1])
    return scored


def task_filter(case: CaseView, info: TaskInfo, rows: ibis.Table) -> ibis.Table:
    """``rows`` restricted to ``info``'s endpoints when the case serves several tasks (a case
    of one task is left whole)."""
    if not mixed_tasks(case) or "endpoint" not in rows.columns:
        return rows
    named = [e for e in info.endpoints if e is not None]
    keep = rows.endpoint.isin(named) if named else ibis.literal(False)
    if None in info.endpoints:
        keep = keep | rows.endpoint.isnull()
    return rows.filter(keep)


def mixed_tasks(case: CaseView) -> bool:
    """Whether the case's endpoints serve more than one task."""
    return len({t.task for t in case.tasks.values()}) > 1


def other_endpoints(case: CaseView, info: TaskInfo) -> list[TaskInfo]:
    """The endpoints whose task is not ``info``'s, sorted by name: a model diagnostic measures
    the case's main task over its endpoints, then each of these on its own with its own task
    (:func:`per_endpoint`)."""
    return sorted((t for t in case.tasks.values() if t.task != info.task),
                  key=lambda t: endpoint_name(t.endpoint))


def endpoint_name(endpoint: str | None) -> str:
    """How results and findings name an endpoint (``(no endpoint)`` for requests without one).

    Examples
    --------
    >>> endpoint_name("fraud"), endpoint_name(None)
    ('fraud', '(no endpoint)')
    """
    return "(no endpoint)" if endpoint is None else str(endpoint)


def per_endpoint(case: CaseView, info: TaskInfo, result: Any,
                 assess: Callable[[TaskInfo], Any]) -> Any:
    """``result`` (the main task's) with every endpoint of another task assessed by
    ``assess`` on its own, in ``result.endpoints`` (name -> result of the same diagnostic).

    Their SQL follows the main result's; their ``not_assessed`` entries join the main result's
    with the endpoint named in the reason. A case of one task gets ``result`` unchanged.
    """
    from dataclasses import replace

    from toolkit.diagnose._base import NotAssessed

    others = other_endpoints(case, info)
    if not others:
        return result
    # an endpoint the catalog declares but no request reached has nothing to measure
    idle = [NotAssessed(result.id, f"endpoint {endpoint_name(t.endpoint)} ({t.task}) is "
                                   "declared in the endpoints catalog but served no request")
            for t in others if not t.requests]
    endpoints = {endpoint_name(t.endpoint): assess(t) for t in others if t.requests}
    if not endpoints:
        return replace(result, not_assessed=(*result.not_assessed, *idle))
    gaps = idle + [NotAssessed(g.check, f"endpoint {name} ({sub.task}): {g.reason}")
                   for name, sub in endpoints.items() for g in sub.not_assessed]
    return replace(result, endpoints=endpoints, main_endpoints=tuple(
        endpoint_name(e) for e in info.endpoints), sql=(
        *result.sql, *(q for sub in endpoints.values() for q in sub.sql)),
        not_assessed=(*result.not_assessed, *gaps))


def endpoint_findings(result: Any, own: list[Finding]) -> list[Finding]:
    """The findings of a result measured per endpoint: its own (the main task's) and those of
    every endpoint of another task, each naming its endpoint(s) in the summary and in
    ``evidence["endpoint"]``. A case of one task: ``own`` unchanged."""
    if not result.endpoints:
        return own
    out = [_named(f, ", ".join(result.main_endpoints)) for f in own]
    for name, sub in result.endpoints.items():
        out += [_named(f, name) for f in sub.findings()]
    return out


def _named(finding: Finding, name: str) -> Finding:
    from dataclasses import replace

    return replace(finding, summary=f"endpoint {name}: {finding.summary}",
                   evidence=dict(finding.evidence, endpoint=name))


_task_names = itertools.count(1)

#: Columns of :func:`task_labelled` beyond ``_labels.LABELLED_COLUMNS`` (those the case has).
TASK_COLUMNS_EXTRA = ("endpoint", "host", "client_version", "pipeline_version", "pred_lower",
                      "pred_upper")


def task_labelled(case: CaseView, record: Recorder, span: Window, info: TaskInfo
                  ) -> ibis.Table:
    """Labelled predictions of ``span`` on ``info``'s endpoints, with the columns multiclass
    and regression diagnostics read (``pred_lower``/``pred_upper``, segments), as a temporary
    table made once per case view (see :func:`~._labels.labelled_table`; ``record`` must build
    joins as written). ``scores`` stays out: reading millions of JSON objects through the
    join cost 3 of its 10 s on 10M requests; :func:`scored_rows` fetches the few it needs.

    In a case of one task the rows are those of :func:`~._labels.labelled_table` with more
    columns, so the table also serves as that one for the view: the requests-labels join runs
    once for every diagnostic."""
    from toolkit.diagnose._labels import LABELLED_COLUMNS, labelled_rows

    key = ("task_labelled", span.start, span.end, info.endpoints)
    if key in case.cache:
        table, sql = case.cache[key]
        record.note(sql)
        return table
    rows = task_filter(case, info, labelled_rows(case, span))
    present = case.columns["requests"]
    # the segments and the interval are read by regression diagnostics alone: a column less
    # to write for millions of labelled rows of the other tasks
    extra = TASK_COLUMNS_EXTRA if info.task == "regression" else ()
    wanted = [c for c in (*LABELLED_COLUMNS, *extra) if c in rows.columns and
              (c in ("label", "labeled_at", "correct") or c in present)]
    columns: dict[str, Any] = {c: rows[c] for c in wanted}
    rows = rows.select(**columns)
    name = f"_forensics_task_{next(_task_names)}"
    table = record.temp_table(case.backend, name, rows)
    weakref.finalize(case, _drop, case.con, name)
    case.cache[key] = (table, record.sql[-1])
    if not mixed_tasks(case):
        case.cache.setdefault(("labelled_table", span.start, span.end), case.cache[key])
    return table


def labelled_for(case: CaseView, record: Recorder, span: Window, info: TaskInfo
                 ) -> ibis.Table:
    """The labelled predictions of ``span`` a diagnostic of ``info``'s task reads: the case's
    labelled table (:func:`~._labels.labelled_table`) when it serves one task, else
    ``info``'s endpoints' rows (:func:`task_labelled`)."""
    from toolkit.diagnose._labels import labelled_table

    if not mixed_tasks(case):
        return labelled_table(case, record, span)
    return task_labelled(case, record, span, info)


def scores_share(case: CaseView, record: Recorder, span: Window, info: TaskInfo) -> float:
    """The share of ``span``'s predictions with ``scores`` (on ``info``'s endpoints) that
    :func:`scored_rows` reads: 1.0 up to :data:`SCORES_SAMPLE_ROWS` of them, else
    that many over their number (one count, cached on the view)."""
    from toolkit.diagnose._case import within

    key = ("scores_share", span.start, span.end, info.endpoints)
    if key not in case.cache:
        requests = task_filter(case, info, case.table("requests"))
        requests = requests.filter(within(requests.ts, span) & requests.prediction.notnull()
                                   & requests.scores.notnull())
        rows = int(record(requests.aggregate(n=requests.count())).iloc[0]["n"])
        case.cache[key] = (rows, min(1.0, SCORES_SAMPLE_ROWS / rows) if rows else 1.0)
    return case.cache[key][1]


def _drop(con: Any, name: str) -> None:
    from toolkit.diagnose._labels import _drop_temp_table

    _drop_temp_table(con, name)
