"""Shared helpers for diagnostics on labelled predictions."""

from __future__ import annotations

import ibis

from toolkit.diagnose._case import CaseView
from toolkit.diagnose._engine import Recorder
from toolkit.types import Window

__all__ = ["labelled", "positive_class", "POSITIVE_TOKENS"]

#: Label values taken as the positive class when present (compared case-insensitively).
POSITIVE_TOKENS = ("1", "true", "yes", "positive", "pos", "fraud", "spam", "anomaly")


def labelled(case: CaseView) -> ibis.Table:
    """Requests joined with their latest label (the ``labelled_predictions`` view)."""
    return case.table("labelled_predictions")


def positive_class(case: CaseView, record: Recorder, window: Window) -> str | None:
    """The positive class: a conventional token (1, true, yes, ...) when labels use one,
    else the rarer of the labels seen in ``window`` (the class a binary detector looks for)."""
    t = labelled(case)
    t = t.filter((t.ts >= ibis.literal(window.start)) & (t.ts < ibis.literal(window.end)))
    counts = record(t.group_by("label").aggregate(n=t.count()))
    if counts.empty:
        return None
    values = [str(v) for v in counts["label"]]
    for token in POSITIVE_TOKENS:
        for value in values:
            if value.lower() == token:
                return value
    return str(counts.sort_values(["n", "label"]).iloc[0]["label"])
