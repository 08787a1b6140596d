"""Shared helpers for diagnostics on labelled predictions."""

from __future__ import annotations

import ibis

from toolkit.diagnose._case import CaseView
from toolkit.diagnose._engine import Recorder
from toolkit.types import Window

__all__ = ["labelled", "labelled_rows", "positive_class", "POSITIVE_TOKENS"]

#: Label values taken as the positive class when present (compared case-insensitively).
POSITIVE_TOKENS = ("1", "true", "yes", "positive", "pos", "fraud", "spam", "anomaly")


def labelled(case: CaseView) -> ibis.Table:
    """Requests joined with their latest label (the ``labelled_predictions`` view)."""
    return case.table("labelled_predictions")


def labelled_rows(case: CaseView, span: Window) -> ibis.Table:
    """Requests of ``span`` that have a prediction, joined with their latest label.

    Same semantics as the ``labelled_predictions`` view, but the time filter applies before
    the join and labels are reduced with a hash aggregate (``arg_max`` over ``labeled_at``)
    rather than a window over the whole labels table: this is what diagnostics use.
    """
    from toolkit.diagnose._case import within

    requests = case.table("requests")
    requests = requests.filter(within(requests.ts, span) & requests.prediction.notnull())
    labels = case.table("labels")
    latest = labels.group_by("request_id").aggregate(
        label=labels.label.argmax(labels.labeled_at.fill_null(ibis.timestamp(
            "1970-01-01T00:00:00+00:00"))),
        labeled_at=labels.labeled_at.max(),
    )
    joined = requests.inner_join(latest, "request_id")
    return joined.mutate(correct=(joined.prediction == joined.label))


def positive_class(case: CaseView, record: Recorder, window: Window) -> str | None:
    """The positive class: a conventional token (1, true, yes, ...) when labels use one,
    else the rarer label (the class a binary detector looks for). Counted on the labels table
    alone (small), whatever the window."""
    labels = case.table("labels")
    counts = record(labels.group_by("label").aggregate(n=labels.count()))
    if counts.empty:
        return None
    values = [str(v) for v in counts["label"]]
    for token in POSITIVE_TOKENS:
        for value in values:
            if value.lower() == token:
                return value
    return str(counts.sort_values(["n", "label"]).iloc[0]["label"])
