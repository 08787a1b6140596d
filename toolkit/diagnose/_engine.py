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
        # Compile once: the SQL that is recorded is the SQL that runs (ibis's own execute
        # would compile the expression a second time).
        sql = ibis.to_sql(expr, dialect="duckdb")
        self._sql.append(sql)
        with quiet_ibis():
            backend = expr._find_backend()
        result = _plain(backend.con.execute(sql).df())
        if not isinstance(expr, ibis.Table) and result.shape[1] == 1:
            result.columns = ["value"]
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


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Numeric lists with NaN for NULL (DuckDB hands them over with pd.NA inside), and
    nullable extension dtypes as plain numpy ones, as the rest of the code expects."""
    import numpy as np

    for column in frame.columns:
        values = frame[column]
        if isinstance(values.dtype, pd.api.extensions.ExtensionDtype) and \
                not isinstance(values.dtype, pd.DatetimeTZDtype) and \
                pd.api.types.is_numeric_dtype(values.dtype):
            frame[column] = values.astype("float64") if values.isna().any() else \
                values.to_numpy(dtype=values.dtype.numpy_dtype)
        elif values.dtype == object:
            if any(v is pd.NA for v in values):
                values = frame[column] = values.map(lambda v: None if v is pd.NA else v)
            sample = next((v for v in values if isinstance(v, (list, np.ndarray))), None)
            if sample is not None and all(
                    isinstance(x, (int, float)) or x is None or x is pd.NA for x in sample):
                frame[column] = [
                    None if v is None or (not isinstance(v, (list, np.ndarray)) and pd.isna(v))
                    else [np.nan if x is None or x is pd.NA else float(x) for x in v]
                    for v in values
                ]
    return frame
