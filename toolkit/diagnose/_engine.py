"""Running ibis expressions on the case, and the DuckDB aggregates we borrow.

Every query over raw rows is an ibis expression executed by DuckDB; Python receives only the
aggregated result. Each diagnostic records the SQL it ran (``Recorder``) so that reports can show
it and analysts can rerun it in the DuckDB CLI.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import ibis
import ibis.expr.datatypes as dt
import pandas as pd

__all__ = [
    "Recorder",
    "histogram_at",
    "value_counts",
    "bucket_expr",
    "window_label",
    "quiet_ibis",
]


@ibis.udf.agg.builtin(name="histogram")
def histogram_at(arg: float, boundaries: dt.Array(dt.float64)) -> dt.Map(dt.float64, dt.int64):
    """DuckDB ``histogram(x, boundaries)``: counts per right-closed bin ``(b[k-1], b[k]]``.

    The last key is ``inf`` (values above the last boundary). Binary search per row, one pass.
    """


@ibis.udf.agg.builtin(name="histogram")
def value_counts(arg: str) -> dt.Map(dt.string, dt.int64):
    """DuckDB ``histogram(x)``: count of every distinct value (NULLs left out)."""


@contextmanager
def quiet_ibis() -> Iterator[None]:
    """Silence the DeprecationWarning ibis 12 triggers in DuckDB 2.0 (``fetch_arrow_table``)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"fetch_arrow_table\(\) is deprecated",
                                category=DeprecationWarning)
        yield


class Recorder:
    """Executes ibis expressions and keeps the SQL they compiled to."""

    def __init__(self) -> None:
        self._sql: list[str] = []

    def __call__(self, expr: ibis.Expr) -> pd.DataFrame:
        self._sql.append(ibis.to_sql(expr, dialect="duckdb"))
        with quiet_ibis():
            result = expr.execute()
        if not isinstance(result, pd.DataFrame):
            result = pd.DataFrame({"value": [result]})
        for column in result.columns:
            # time buckets come back naive; the session time zone is UTC, so say so
            if pd.api.types.is_datetime64_dtype(result[column]) and not isinstance(
                    result[column].dtype, pd.DatetimeTZDtype):
                result[column] = result[column].dt.tz_localize("UTC")
        return result

    @property
    def sql(self) -> tuple[str, ...]:
        return tuple(self._sql)


def bucket_expr(ts: ibis.TimestampValue, width: timedelta) -> ibis.TimestampValue:
    """Start of the ``width`` time bucket of ``ts`` (aligned on the Unix epoch, UTC)."""
    seconds = int(width.total_seconds())
    if seconds % 86400 == 0:
        return ts.bucket(days=seconds // 86400)
    if seconds % 3600 == 0:
        return ts.bucket(hours=seconds // 3600)
    if seconds % 60 == 0:
        return ts.bucket(minutes=seconds // 60)
    return ts.bucket(seconds=seconds)


def window_label(ts: ibis.TimestampValue, baseline, incident) -> ibis.StringValue:
    """``'baseline'`` / ``'incident'`` / NULL for rows outside both windows."""
    from toolkit.diagnose._case import within

    return ibis.cases(
        (within(ts, baseline), "baseline"),
        (within(ts, incident), "incident"),
        else_=ibis.null("string"),
    )
