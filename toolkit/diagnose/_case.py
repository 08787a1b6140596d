"""A read-only view of a case that diagnostics share: what exists, and ibis handles on it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from typing import Any

import duckdb
import ibis
import pandas as pd

from toolkit.store.schema import DATA_TABLES, LOAD_ID, canonical_columns
from toolkit.types import Window

__all__ = ["CaseView", "case_view", "choose_bucket"]

#: Candidate time-bucket widths for timelines, finest first.
_BUCKETS = (
    timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15), timedelta(minutes=30),
    timedelta(hours=1), timedelta(hours=3), timedelta(hours=6), timedelta(hours=12),
    timedelta(days=1), timedelta(days=7),
)  # fmt: skip


def choose_bucket(span: timedelta, *, max_buckets: int = 240) -> timedelta:
    """The finest bucket width that cuts ``span`` into at most ``max_buckets`` buckets.

    Examples
    --------
    >>> choose_bucket(timedelta(days=10))
    datetime.timedelta(seconds=3600)
    """
    for width in _BUCKETS:
        if span / width <= max_buckets:
            return width
    return _BUCKETS[-1]


@dataclass(frozen=True, eq=False)
class CaseView:
    """What a case holds, computed once per diagnosis run.

    Attributes
    ----------
    con
        The case connection (read-only use).
    counts
        Row count of every canonical table.
    columns
        Columns and DuckDB types of every canonical table.
    """

    con: duckdb.DuckDBPyConnection
    counts: dict[str, int]
    columns: dict[str, dict[str, str]]
    _features: pd.DataFrame = field(repr=False)
    #: Summaries shared between diagnostics of one run (e.g. feature profiles).
    cache: dict = field(default_factory=dict, repr=False)

    @cached_property
    def backend(self) -> Any:
        """The ibis DuckDB backend sharing the case connection."""
        return ibis.duckdb.from_connection(self.con)

    def table(self, name: str) -> ibis.Table:
        """An ibis table expression over a canonical table (looked up once per view: ibis asks
        DuckDB for the schema on every lookup)."""
        from toolkit.diagnose._engine import quiet_ibis

        key = ("table", name)
        if key not in self.cache:
            with quiet_ibis():
                self.cache[key] = self.backend.table(name)
        return self.cache[key]

    def has(self, table: str, *columns: str) -> bool:
        """Whether ``table`` has rows and every column in ``columns``."""
        return self.counts.get(table, 0) > 0 and all(c in self.columns[table] for c in columns)

    def non_null(self, table: str, column: str, window: Window | None = None,
                 time_column: str = "ts") -> int:
        """Rows of ``table`` with a value in ``column`` (within ``window`` when given)."""
        if not self.has(table, column):
            return 0
        t = self.table(table)
        if window is not None:
            t = t.filter(within(t[time_column], window))
        return int(t[column].count().execute())

    @property
    def features(self) -> pd.DataFrame:
        """Feature catalog restricted to columns present in ``requests``: name, kind, unit."""
        return self._features

    def feature_names(self, kind: str | None = None) -> list[str]:
        frame = self._features
        if kind is not None:
            frame = frame[frame["kind"] == kind]
        return frame["name"].tolist()

    @cached_property
    def events(self) -> pd.DataFrame:
        """All events (a small table), with ``detail`` parsed into dicts, sorted by time."""
        if not self.counts.get("events"):
            return pd.DataFrame(columns=["ts", "kind", "artifact", "version", "host", "detail"])
        frame = self.con.execute(
            "SELECT ts, kind, artifact, version, host, CAST(detail AS VARCHAR) AS detail "
            "FROM events ORDER BY ts"
        ).df()
        frame["detail"] = frame["detail"].map(_parse_json)
        return frame

    @cached_property
    def lineage(self) -> pd.DataFrame:
        if not self.counts.get("lineage"):
            return pd.DataFrame(columns=["release", "model_version", "pipeline_version",
                                         "client_version", "created_at"])
        return self.con.execute(
            "SELECT release, model_version, pipeline_version, client_version, created_at "
            "FROM lineage"
        ).df()

    @cached_property
    def meta(self) -> dict[str, Any]:
        """Facts about the case from ``case_meta`` (serving mode, SLOs...)."""
        exists = self.con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'case_meta'"
        ).fetchall()[0][0]
        if not exists:
            return {}
        rows = self.con.execute("SELECT key, CAST(value AS VARCHAR) FROM case_meta").fetchall()
        return {key: _parse_json(value) for key, value in rows}

    @cached_property
    def span(self) -> Window | None:
        """First and last request time (``None`` for a case without requests)."""
        if not self.counts.get("requests"):
            return None
        first, last = self.con.execute("SELECT min(ts), max(ts) FROM requests").fetchall()[0]
        if first is None:
            return None
        return Window(first, last + timedelta(microseconds=1))


def case_view(con: duckdb.DuckDBPyConnection) -> CaseView:
    """Build a :class:`CaseView` (a handful of catalog queries, no scan of raw rows)."""
    counts = {}
    columns: dict[str, dict[str, str]] = {}
    for table in DATA_TABLES:
        columns[table] = dict(
            con.execute(
                "SELECT column_name, data_type FROM duckdb_columns() WHERE schema_name = 'main' "
                "AND table_name = ? ORDER BY column_index",
                [table],
            ).fetchall()
        )
        counts[table] = (
            int(con.execute(f'SELECT count(*) FROM "{table}"').fetchall()[0][0])
            if columns[table] else 0
        )
    return CaseView(con, counts, columns, _feature_catalog(con, columns))


def _feature_catalog(con: duckdb.DuckDBPyConnection, columns: dict[str, dict[str, str]]
                     ) -> pd.DataFrame:
    core = set(canonical_columns("requests")) | {LOAD_ID}
    present = {c: t for c, t in columns.get("requests", {}).items() if c not in core}
    catalog = con.execute("SELECT name, kind, position, unit FROM features ORDER BY position").df()
    catalog = catalog[catalog["name"].isin(present)]
    missing = [c for c in present if c not in set(catalog["name"])]
    extra = pd.DataFrame({
        "name": missing,
        "kind": ["numeric" if present[c] in ("DOUBLE", "FLOAT", "INTEGER", "BIGINT") else
                 "categorical" for c in missing],
        "position": range(len(catalog) + 1, len(catalog) + 1 + len(missing)),
        "unit": [None] * len(missing),
    })
    frames = [f for f in (catalog, extra) if not f.empty]
    if not frames:
        return pd.DataFrame(columns=["name", "kind", "position", "unit"])
    return pd.concat(frames, ignore_index=True)


def within(column: ibis.Value, window: Window) -> ibis.BooleanValue:
    """``window.start <= column < window.end`` as an ibis predicate."""
    return (column >= ibis.literal(window.start)) & (column < ibis.literal(window.end))


def _parse_json(value: Any) -> Any:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return {}
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value
