"""Shared helpers for diagnostics on labelled predictions."""

from __future__ import annotations

import itertools
import weakref
from typing import Any

import ibis

from toolkit.diagnose._case import CaseView
from toolkit.diagnose._engine import Recorder, hash_text
from toolkit.types import Window

__all__ = ["labelled", "labelled_rows", "labelled_table", "latest_labels", "labels_unique",
           "positive_class", "POSITIVE_TOKENS"]

#: Label values taken as the positive class when present (compared case-insensitively).
POSITIVE_TOKENS = ("1", "true", "yes", "positive", "pos", "fraud", "spam", "anomaly")


def labelled(case: CaseView) -> ibis.Table:
    """Requests joined with their latest label (the ``labelled_predictions`` view)."""
    return case.table("labelled_predictions")


def labelled_rows(case: CaseView, span: Window) -> ibis.Table:
    """Requests of ``span`` that have a prediction, joined with their latest label.

    Same semantics as the ``labelled_predictions`` view, but the time filter applies before
    the join and labels are reduced with a hash aggregate (``arg_max`` over ``labeled_at``)
    rather than a window over the whole labels table (see :func:`latest_labels`): this is what
    diagnostics use.
    """
    from toolkit.diagnose._case import within

    requests = case.table("requests")
    requests = requests.filter(within(requests.ts, span) & requests.prediction.notnull())
    joined = requests.inner_join(latest_labels(case), "request_id")
    return joined.mutate(correct=(joined.prediction == joined.label))


#: Columns of :func:`labelled_table` (those the case has): what the label diagnostics read.
LABELLED_COLUMNS = ("ts", "model_version", "prediction", "score", "label", "labeled_at",
                    "correct")

_names = itertools.count(1)


def labelled_table(case: CaseView, record: Recorder, span: Window) -> ibis.Table:
    """:func:`labelled_rows` of ``span`` as a temporary table, joined once per case view.

    Performance and calibration read the labelled predictions of the same span five times;
    the join behind them costs more than all five queries on its result (10M requests, 4.3M
    labels: 1.9 s per query on the join, against 0.3-0.6 s on the table). The table keeps only
    :data:`LABELLED_COLUMNS` (4.2M rows: about 230 MB) and is dropped with the view.
    ``record`` records its ``CREATE TEMP TABLE`` whether it ran it or an earlier diagnostic
    did, so its SQL runs as it stands; it must build joins as written (see
    :class:`~toolkit.diagnose._engine.Recorder`).
    """
    key = ("labelled_table", span.start, span.end)
    if key in case.cache:
        table, sql = case.cache[key]
        record.note(sql)
        return table
    rows = labelled_rows(case, span)
    rows = rows.select(*(c for c in LABELLED_COLUMNS if c in rows.columns))
    name = f"_forensics_labelled_{next(_names)}"
    table = record.temp_table(case.backend, name, rows)
    weakref.finalize(case, _drop_temp_table, case.con, name)
    case.cache[key] = (table, record.sql[-1])
    return table


def _drop_temp_table(con: Any, name: str) -> None:
    """Drop a temporary table made here, through the engine of ``con`` (nothing to do when
    the connection is closed already: so is the table)."""
    from toolkit.diagnose._engines import engine_of

    engine_of(con).drop_temp(name)


def latest_labels(case: CaseView) -> ibis.Table:
    """``request_id``, ``label``, ``labeled_at``: each request's latest label (``arg_max`` over
    ``labeled_at``, a NULL ``labeled_at`` being the oldest). When every request has at most one
    label (checked once per case view) the labels table as it is: the aggregate over millions
    of string ids would cost more memory than the join itself (10M requests, 4.3M labels: peak
    RSS 1.7 GB with it, 1.2 GB without)."""
    labels = case.table("labels")
    if labels_unique(case):
        return labels.select("request_id", "label", "labeled_at")
    return labels.group_by("request_id").aggregate(
        label=labels.label.argmax(labels.labeled_at.fill_null(ibis.timestamp(
            "1970-01-01T00:00:00+00:00"))),
        labeled_at=labels.labeled_at.max(),
    )


def labels_unique(case: CaseView) -> bool:
    """Whether no request has more than one label (one engine pass, cached on the view).

    Counts distinct *hashes* of the ids: as many distinct hashes as labels proves the ids
    distinct; a hash collision (odds about n^2 / 2^65, 5e-7 for 4.3M labels) can only make
    it answer False, which sends the labels through the ``arg_max`` reduction, correct
    either way.
    """
    key = ("labels_unique",)
    if key not in case.cache:
        labels = case.table("labels")
        counts = Recorder()(labels.aggregate(
            n=labels.count(), ids=hash_text(labels.request_id).nunique())).iloc[0]
        case.cache[key] = int(counts["n"]) == int(counts["ids"])
    return case.cache[key]


def positive_class(case: CaseView, record: Recorder, window: Window,
                   labels: ibis.Table | None = None) -> str | None:
    """The positive class: a conventional token (1, true, yes, ...) when labels use one,
    else the rarer label (the class a binary detector looks for). Counted on the labels table
    alone (small), whatever the window; on ``labels`` (a table with a ``label`` column, e.g.
    one endpoint's labelled predictions) when given."""
    labels = case.table("labels") if labels is None else labels
    counts = record(labels.group_by("label").aggregate(n=labels.count()))
    if counts.empty:
        return None
    values = [str(v) for v in counts["label"]]
    for token in POSITIVE_TOKENS:
        for value in values:
            if value.lower() == token:
                return value
    return str(counts.sort_values(["n", "label"]).iloc[0]["label"])
