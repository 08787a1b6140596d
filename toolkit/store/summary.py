"""What a case holds: tables, row counts, time range, versions, hosts, features, rejects."""

from __future__ import annotations

import html
from dataclasses import asdict, dataclass, field
from datetime import datetime

import duckdb
import pandas as pd

from toolkit.store.schema import DATA_TABLES, STATUSES, quote_ident

__all__ = ["CaseSummary", "summarize", "task_text"]

_TIME_COLUMNS = {
    "requests": "ts",
    "labels": "labeled_at",
    "metrics": "ts",
    "events": "ts",
    "lineage": "created_at",
}


@dataclass(frozen=True)
class CaseSummary:
    """Inventory of a case database, as printed by ``forensics info``.

    Attributes
    ----------
    tables
        One row per canonical table: ``table``, ``rows``, ``first``, ``last`` (UTC).
    model_versions, pipeline_versions, client_versions, hosts
        Distinct values seen in ``requests`` with their request counts, most used first.
    features
        The feature catalog: ``name``, ``kind``, ``unit``.
    loads
        Number of files and frames loaded.
    rejects
        Rejected rows grouped by ``file``, ``column_name`` and ``reason``, with ``rows``.
    unknown_statuses
        ``requests.status`` values outside ``ok`` / ``error`` / ``timeout`` with their row
        counts (e.g. ``pending`` from an export whose states no mapping translated): the
        diagnostics count such rows as neither successes nor failures.
    tasks
        The task of every endpoint (DESIGN section 3a), most requests first: ``endpoint``
        (``None`` for requests without one), ``task``, ``source`` (``declared`` in the
        ``endpoints`` catalog or ``inferred``), ``positive_class``, ``classes``,
        ``interval_coverage`` and ``requests``.
    """

    schema_version: int
    tables: pd.DataFrame = field(repr=False)
    model_versions: dict[str, int]
    pipeline_versions: dict[str, int]
    client_versions: dict[str, int]
    hosts: dict[str, int]
    features: pd.DataFrame = field(repr=False)
    loads: int
    rejects: pd.DataFrame = field(repr=False)
    unknown_statuses: dict[str, int] = field(default_factory=dict)
    tasks: list[dict] = field(default_factory=list)

    @property
    def time_range(self) -> tuple[datetime | None, datetime | None]:
        """First and last request timestamp (``None`` when there are no requests)."""
        row = self.tables.set_index("table").loc["requests"]
        first, last = row["first"], row["last"]
        return (
            None if pd.isna(first) else first.to_pydatetime(),
            None if pd.isna(last) else last.to_pydatetime(),
        )

    @property
    def rows_rejected(self) -> int:
        """Total number of rejected rows."""
        return int(self.rejects["rows"].sum()) if len(self.rejects) else 0

    def to_frame(self) -> pd.DataFrame:
        """The per-table inventory (one row per table)."""
        return self.tables.copy()

    def to_dict(self) -> dict:
        """A JSON-friendly dictionary of the whole summary."""
        out = asdict(self)
        for key in ("tables", "features", "rejects"):
            frame = getattr(self, key).copy()
            for column in frame.columns:
                if pd.api.types.is_datetime64_any_dtype(frame[column]):
                    frame[column] = frame[column].map(
                        lambda v: None if pd.isna(v) else v.isoformat()
                    )
            out[key] = frame.astype(object).where(frame.notna(), None).to_dict("records")
        return out

    def _repr_html_(self) -> str:
        parts = [f"<h4>Case (schema v{self.schema_version})</h4>", self.tables.to_html(index=False)]
        for title, values in (
            ("model versions", self.model_versions),
            ("pipeline versions", self.pipeline_versions),
            ("client versions", self.client_versions),
            ("hosts", self.hosts),
        ):
            listed = ", ".join(f"{html.escape(str(k))} ({v:,})" for k, v in values.items())
            parts.append(f"<p><b>{title}:</b> {listed or '—'}</p>")
        if self.tasks:
            listed = ", ".join(html.escape(task_text(t)) for t in self.tasks)
            parts.append(f"<p><b>tasks:</b> {listed}</p>")
        parts.append(f"<p><b>features:</b> {len(self.features)}; <b>rejected rows:</b> "
                     f"{self.rows_rejected:,}</p>")
        if self.unknown_statuses:
            listed = ", ".join(f"{html.escape(k)} ({v:,} rows)"
                               for k, v in self.unknown_statuses.items())
            parts.append(f"<p><b>unknown statuses:</b> {listed}</p>")
        return "\n".join(parts)


def summarize(con: duckdb.DuckDBPyConnection) -> CaseSummary:
    """Describe the case behind ``con``.

    Every number is one aggregate query in DuckDB; nothing scans rows in Python.

    Examples
    --------
    >>> import toolkit as tk
    >>> int(tk.summarize(tk.connect()).tables["rows"].sum())
    0
    """
    from toolkit.store.connection import schema_version

    parts = []
    for table in DATA_TABLES:
        column = _TIME_COLUMNS.get(table)
        if column:
            sql = (
                f"SELECT '{table}' AS \"table\", count(*) AS rows, min({column}) AS first, "
                f"max({column}) AS last FROM {quote_ident(table)}"
            )
        else:
            sql = (
                f"SELECT '{table}' AS \"table\", count(*) AS rows, NULL::TIMESTAMPTZ AS first, "
                f"NULL::TIMESTAMPTZ AS last FROM {quote_ident(table)}"
            )
        parts.append(sql)
    tables = con.execute(" UNION ALL ".join(parts)).df()
    tables["table"] = pd.Categorical(tables["table"], categories=list(DATA_TABLES), ordered=True)
    tables = tables.sort_values("table").reset_index(drop=True)
    tables["table"] = tables["table"].astype(str)

    def counts(column: str) -> dict[str, int]:
        rows = con.execute(
            f"SELECT {column}, count(*) AS n FROM requests WHERE {column} IS NOT NULL "
            "GROUP BY ALL ORDER BY n DESC, 1"
        ).fetchall()
        return {str(value): int(n) for value, n in rows}

    features = con.execute("SELECT name, kind, unit FROM features ORDER BY position, name").df()
    unknown = con.execute(
        "SELECT status, count(*) AS n FROM requests WHERE status IS NOT NULL "
        "AND status NOT IN (SELECT unnest(?::VARCHAR[])) GROUP BY ALL ORDER BY n DESC, 1",
        [list(STATUSES)],
    ).fetchall()
    rejects = con.execute(
        "SELECT file, column_name, reason, count(*) AS rows FROM rejects "
        "GROUP BY ALL ORDER BY rows DESC, file"
    ).df()
    return CaseSummary(
        schema_version=schema_version(con),
        tables=tables,
        model_versions=counts("model_version"),
        pipeline_versions=counts("pipeline_version"),
        client_versions=counts("client_version"),
        hosts=counts("host"),
        features=features,
        loads=int(con.execute("SELECT count(*) FROM loads").fetchall()[0][0]),
        rejects=rejects,
        unknown_statuses={str(value): int(n) for value, n in unknown},
        tasks=_tasks(con),
    )


def _tasks(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """The task per endpoint, as the diagnostics read it (declared or inferred in the engine:
    :mod:`toolkit.diagnose._tasks`; imported here, late, so that ``info`` and the diagnostics
    can never disagree)."""
    from toolkit.diagnose._case import case_view

    tasks = case_view(con).tasks.values()
    return [t.to_dict() for t in sorted(tasks, key=lambda t: (-t.requests, str(t.endpoint)))]


def task_text(task: dict) -> str:
    """One endpoint's task in a line: ``fraud: binary (declared, positive 1)``.

    Examples
    --------
    >>> task_text({"endpoint": None, "task": "multiclass", "source": "inferred",
    ...             "classes": ["a", "b", "c"], "positive_class": None,
    ...             "interval_coverage": None})
    '(no endpoint): multiclass (inferred, 3 classes: a, b, c)'
    """
    facts = [task["source"]]
    if task.get("positive_class") is not None:
        facts.append(f"positive {task['positive_class']}")
    classes = task.get("classes") or []
    if task["task"] == "multiclass" and classes:
        shown = ", ".join(classes[:10]) + (", ..." if len(classes) > 10 else "")
        facts.append(f"{len(classes)} classes: {shown}")
    if task.get("interval_coverage") is not None:
        facts.append(f"nominal interval coverage {task['interval_coverage']:g}")
    name = "(no endpoint)" if task["endpoint"] is None else str(task["endpoint"])
    return f"{name}: {task['task']} ({', '.join(facts)})"
