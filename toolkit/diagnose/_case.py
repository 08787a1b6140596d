"""A read-only view of a case that diagnostics share: what exists, and ibis handles on it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

import ibis
import pandas as pd

from toolkit.diagnose._engines import Engine, engine_of
from toolkit.store.schema import DATA_TABLES, LOAD_ID, canonical_columns, quote_ident
from toolkit.types import TIME_MAX, TIME_MIN, Window

if TYPE_CHECKING:  # pragma: no cover
    from toolkit.diagnose._base import NotAssessed
    from toolkit.diagnose._tasks import TaskInfo

__all__ = ["CaseView", "case_view", "choose_bucket", "MIN_WINDOW_ROWS", "SpanOutliers",
           "PERCENT_ABOVE", "percent_scale"]

#: Fewest rows a window must hold before two windows are compared (distributions, rates,
#: shares). Below it a comparison is noise: one request makes a feature "new", three make a PSI
#: of 18. 30 is the usual floor for a normal approximation of a mean or a proportion, and it is
#: three per bin of the decile bins the distribution checks use. Every diagnostic that compares
#: the windows says ``not_assessed`` below it (:meth:`CaseView.window_gaps`).
MIN_WINDOW_ROWS = 30
#: Rows at either end of the data, at most this share of it, that are separated from the rest by
#: more than ten times the rest's whole span (and more than a week) are time outliers (a request
#: dated 1970-01-01 or 9999-12-31 by a broken clock): they are left out of the analysed span. A
#: quiet night or weekend between two bursts of traffic is far from that.
_OUTLIER_SHARE = 0.01
_OUTLIER_GAP = 10
_OUTLIER_MIN_GAP_US = 7 * 86_400 * 1_000_000

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
        The case connection (read-only use): DuckDB's, or on Spark an object whose
        ``execute(sql, params)`` runs SQL written for DuckDB (see
        :class:`~toolkit.diagnose._engines.SparkConnection`).
    engine
        The engine that runs the case's queries (:mod:`~toolkit.diagnose._engines`).
    counts
        Row count of every canonical table.
    columns
        Columns and DuckDB types of every canonical table.
    """

    con: Any
    counts: dict[str, int]
    columns: dict[str, dict[str, str]]
    #: Every column of every table, including those that hold no value at all (``columns``
    #: lists only the columns with at least one value: an all-NULL column is absent).
    declared: dict[str, dict[str, str]] = field(repr=False)
    _features: pd.DataFrame = field(repr=False)
    #: Summaries shared between diagnostics of one run (e.g. feature profiles).
    cache: dict = field(default_factory=dict, repr=False)
    engine: Engine | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.engine is None:  # a view built around a DuckDB connection directly
            object.__setattr__(self, "engine", engine_of(self.con))

    @property
    def backend(self) -> Any:
        """The ibis backend of the case's engine (DuckDB's shares the case connection)."""
        return self.engine.backend

    def table(self, name: str) -> ibis.Table:
        """An ibis table expression over a canonical table (looked up once per view: ibis asks
        DuckDB for the schema on every lookup)."""
        from toolkit.diagnose._engine import quiet_ibis

        key = ("table", name)
        if key not in self.cache:
            with quiet_ibis():
                self.cache[key] = self.engine.table(name)
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
        if not self.engine.has_table("case_meta"):
            return {}
        rows = self.con.execute("SELECT key, CAST(value AS VARCHAR) FROM case_meta").fetchall()
        return {key: _parse_json(value) for key, value in rows}

    def score_semantics(self, score_is: str | None, positive: str | None
                        ) -> tuple[str, str | None]:
        """What ``score`` holds and the positive class: the caller's, else the case's.

        A mapping file may declare ``score = {source = ..., semantics = "p_positive",
        positive = ...}``; the loader records it in ``case_meta`` under ``score_semantics``.
        An argument given by the caller wins over the declaration; without either, ``score``
        is the confidence in ``prediction`` (the canonical schema).
        """
        declared = self.meta.get("score_semantics")
        declared = declared if isinstance(declared, dict) else {}
        if score_is is None:
            score_is = str(declared.get("score_is") or "confidence")
        if positive is None and declared.get("positive") is not None:
            positive = str(declared["positive"])
        return score_is, positive

    @cached_property
    def tasks(self) -> dict[str | None, TaskInfo]:
        """The task of every endpoint, declared (``endpoints`` catalog) or inferred in the
        engine (see :mod:`~toolkit.diagnose._tasks`); ``None`` keys requests without one."""
        from toolkit.diagnose._tasks import infer_tasks

        return infer_tasks(self)

    @cached_property
    def task(self) -> TaskInfo:
        """The case's main task (the one serving most requests), merged over its endpoints
        (:func:`~toolkit.diagnose._tasks.main_task`)."""
        from toolkit.diagnose._tasks import main_task

        return main_task(self.tasks)

    @property
    def span(self) -> Window | None:
        """First and last request time, time outliers left out (``None`` for a case without
        requests); see :meth:`span_of`."""
        return self.span_of("requests")

    def span_of(self, table: str) -> Window | None:
        """First and last time of ``table``'s rows, without its time outliers.

        Rows dated outside 1678..2261 cannot be analysed, and a few rows (at most 1% of the
        table) at either end that lie further from the rest than ten times the rest's whole
        span, and more than a week, are a broken clock rather than the period the case covers:
        both are left out (counted in :meth:`span_outliers`). ``None`` when nothing is left.
        """
        return self._span_scan(table)[0]

    def span_outliers(self, table: str) -> SpanOutliers:
        """The rows of ``table`` left out of :meth:`span_of`."""
        return self._span_scan(table)[1]

    def _span_scan(self, table: str) -> tuple[Window | None, SpanOutliers]:
        key = ("span", table)
        if key not in self.cache:
            self.cache[key] = _robust_span(self.con, table) if self.has(table, "ts") else \
                (None, SpanOutliers(0, None, None))
        return self.cache[key]

    def window_rows(self, window: Window, table: str = "requests",
                    column: str | None = None) -> int:
        """Rows of ``table`` in ``window`` (with a value in ``column`` when given); cached."""
        key = ("window_rows", table, column, window.start, window.end)
        if key not in self.cache:
            self.cache[key] = self.non_null(table, column or "ts", window)
        return self.cache[key]

    def window_gaps(self, check: str, baseline: Window, incident: Window, *,
                    table: str = "requests", column: str | None = None,
                    what: str | None = None,
                    minimum: int = MIN_WINDOW_ROWS) -> tuple[NotAssessed, ...]:
        """Why the windows cannot be compared: empty when each holds at least ``minimum`` rows
        of ``table`` (with a value in ``column``), else one :class:`NotAssessed` naming the
        window(s) that fall short and their counts. Every diagnostic comparing the windows
        calls it first, so that no finding ever comes from an empty or tiny window."""
        from toolkit.diagnose._base import NotAssessed

        what = what or (table if column is None else f"{table} with a {column}")
        short = []
        for name, window in (("baseline", baseline), ("incident", incident)):
            n = self.window_rows(window, table, column)
            if n < minimum:
                short.append(f"{n or 'no'} {what} in the {name} window {window}")
        if not short:
            return ()
        return (NotAssessed(check, f"{' and '.join(short)}: fewer than {minimum} in a window "
                                   "are too few to compare the windows"),)


@dataclass(frozen=True)
class SpanOutliers:
    """Rows of a table left out of its analysed span (see :meth:`CaseView.span_of`)."""

    rows: int
    first: datetime | None
    last: datetime | None

    def reason(self, table: str) -> str:
        """One sentence for ``not_assessed``."""
        when = ", ".join(sorted({_iso_or_raw(t) for t in (self.first, self.last)
                                 if t is not None}))
        return (f"{self.rows} {table} row(s) dated far outside the rest of the data ({when}) "
                "were left out of the analysed span (a broken clock?)")


def case_view(source: Any) -> CaseView:
    """Build a :class:`CaseView` (catalog queries and one count of values per table).

    ``source`` is a DuckDB connection, or an ibis backend (DuckDB, or PySpark with the canonical
    tables registered under their names: a table that is not there counts as empty); its
    engine is :attr:`CaseView.engine`.

    A column that exists but holds no value (the store creates every canonical column; an
    export without predictions leaves ``prediction`` all NULL) is left out of ``columns``, so
    ``has(table, column)`` means "has values": a diagnostic that needs it says ``not_assessed``.
    """
    engine = engine_of(source)
    con = engine.con
    counts = {}
    columns: dict[str, dict[str, str]] = {}
    declared: dict[str, dict[str, str]] = {}
    for table in DATA_TABLES:
        declared[table] = engine.table_columns(table)
        names = list(declared[table])
        if not names:
            counts[table], columns[table] = 0, {}
            continue
        values = con.execute(
            "SELECT count(*), " + ", ".join(f"count({quote_ident(c)})" for c in names) +
            f" FROM {quote_ident(table)}"
        ).fetchall()[0]
        counts[table] = int(values[0])
        columns[table] = {c: t for (c, t), n in zip(declared[table].items(), values[1:],
                                                    strict=True) if n}
    return CaseView(con, counts, columns, declared, _feature_catalog(con, columns, counts),
                    engine=engine)


def _robust_span(con: Any, table: str
                 ) -> tuple[Window | None, SpanOutliers]:
    """The span of ``table``'s times without time outliers, from one scan in the engine: the
    row count, the extremes, and the largest gaps between consecutive times with their rank;
    Python picks the head and tail cuts (see :meth:`CaseView.span_of`)."""
    low, high = _epoch_us(TIME_MIN), _epoch_us(TIME_MAX)
    name = quote_ident(table)
    n, first, last = con.execute(
        f"SELECT count(ts), min(epoch_us(ts)), max(epoch_us(ts)) FROM {name} "
        "WHERE epoch_us(ts) >= ? AND epoch_us(ts) < ?", [low, high]).fetchall()[0]
    outside = con.execute(
        f"SELECT count(*), min(ts)::VARCHAR, max(ts)::VARCHAR FROM {name} "
        "WHERE ts IS NOT NULL AND (epoch_us(ts) < ? OR epoch_us(ts) >= ?)", [low, high]
    ).fetchall()[0]
    dropped = [int(outside[0]), outside[1], outside[2]]
    if not n:
        return None, SpanOutliers(dropped[0], dropped[1], dropped[2])
    n = int(n)
    limit = int(n * _OUTLIER_SHARE)
    # candidate cuts: (rows cut, first / last time kept, the gap that separates them)
    heads, tails = [(0, first, 0)], [(0, last, 0)]
    if limit:
        gaps = con.execute(
            f"WITH s AS (SELECT epoch_us(ts) AS t, epoch_us(ts) - lag(epoch_us(ts)) OVER "
            f"(ORDER BY ts) AS gap, row_number() OVER (ORDER BY ts) AS k FROM {name} "
            "WHERE epoch_us(ts) >= ? AND epoch_us(ts) < ?) "
            "SELECT t, gap, k FROM s WHERE gap > ? AND (k - 1 <= ? OR ? - k + 1 <= ?) "
            "ORDER BY gap DESC LIMIT 20", [low, high, _OUTLIER_MIN_GAP_US, limit, n, limit]).fetchall()
        heads += [(int(k) - 1, int(t), int(g)) for t, g, k in gaps if int(k) - 1 <= limit]
        tails += [(n - int(k) + 1, int(t) - int(g), int(g)) for t, g, k in gaps
                  if n - int(k) + 1 <= limit]
    best = (heads[0], tails[0])
    for head in heads:
        for tail in tails:
            cut = head[0] + tail[0]
            core = tail[1] - head[1]
            if cut > limit or core < 0 or any(c[0] and c[2] <= _OUTLIER_GAP * core
                                              for c in (head, tail)):
                continue
            if (cut, -core) > (best[0][0] + best[1][0], best[0][1] - best[1][1]):
                best = (head, tail)
    head_cut, tail_cut = best
    rows = dropped[0] + head_cut[0] + tail_cut[0]
    firsts = [v for v in (dropped[1], _from_us(first) if head_cut[0] else None) if v is not None]
    lasts = [v for v in (dropped[2], _from_us(last) if tail_cut[0] else None) if v is not None]
    outliers = SpanOutliers(rows, min(firsts, key=str) if firsts else None,
                            max(lasts, key=str) if lasts else None)
    start = _from_us(head_cut[1])
    end = _from_us(tail_cut[1]) + timedelta(microseconds=1)
    return Window(start, end), outliers



def _epoch_us(value: datetime) -> int:
    return int((value - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1))


def _from_us(value: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(value))


def _iso_or_raw(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def _feature_catalog(con: Any, columns: dict[str, dict[str, str]], counts: dict[str, int]
                     ) -> pd.DataFrame:
    core = set(canonical_columns("requests")) | {LOAD_ID}
    present = {c: t for c, t in columns.get("requests", {}).items() if c not in core}
    catalog = con.execute("SELECT name, kind, position, unit FROM features ORDER BY position"
                          ).df() if counts.get("features") else \
        pd.DataFrame(columns=["name", "kind", "position", "unit"])
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


#: A utilisation series (GPU, CPU, memory, KV cache: 0..1 by the canonical schema) whose values
#: exceed this is in percent: a fraction never goes past 1, and 1.5 leaves room for the
#: overshoot some exporters report (CPU over 100% of a core share, rounding).
PERCENT_ABOVE = 1.5


def percent_scale(largest: float) -> float:
    """What to divide a utilisation series by to get fractions: 100 when its largest value (a
    bucket mean is enough) is above :data:`PERCENT_ABOVE`, else 1.

    Examples
    --------
    >>> percent_scale(99.7), percent_scale(0.98), percent_scale(float("nan"))
    (100.0, 1.0, 1.0)
    """
    return 100.0 if largest > PERCENT_ABOVE else 1.0


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
