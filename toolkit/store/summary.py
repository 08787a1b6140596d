"""What a case holds: tables, row counts, time range, versions, hosts, features, rejects."""

from __future__ import annotations

import html
from dataclasses import asdict, dataclass, field
from datetime import datetime

import duckdb
import pandas as pd

from toolkit.store.schema import DATA_TABLES, STATUSES, quote_ident

__all__ = ["CaseSummary", "summarize"]

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
    )
