"""The one place where the case's identifiers are defined.

The DDL in ``sql/migrations/*.sql`` is the source of truth for the canonical tables; this module
reads the column names and types back from it (once, on an in-memory database) so that loaders
and diagnostics never spell a column or a type twice.

Examples
--------
>>> from toolkit.store import schema
>>> schema.canonical_columns("labels")
{'request_id': 'VARCHAR', 'label': 'VARCHAR', 'labeled_at': 'TIMESTAMP WITH TIME ZONE'}
>>> schema.REQUIRED["requests"]
('request_id', 'ts')
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import duckdb

from toolkit.errors import InvalidParameterError

__all__ = [
    "DATA_TABLES",
    "FEATURE_TABLES",
    "CATALOG_TABLES",
    "TASKS",
    "BOOKKEEPING_TABLES",
    "REQUIRED",
    "LOAD_ID",
    "EVENT_KINDS",
    "EVENT_ARTIFACTS",
    "STATUSES",
    "migrations",
    "canonical_columns",
    "quote_ident",
    "quote_literal",
    "check_table",
]

#: Tables a user loads data into, in the order ``forensics info`` lists them.
DATA_TABLES: tuple[str, ...] = (
    "requests",
    "labels",
    "reference",
    "features",
    "metrics",
    "events",
    "lineage",
    "endpoints",
)
#: Catalog tables: one row per name (``INSERT OR REPLACE``), no provenance column.
CATALOG_TABLES: tuple[str, ...] = ("features", "endpoints")
#: Tasks an endpoint can have (DESIGN section 3a).
TASKS: tuple[str, ...] = ("binary", "multiclass", "regression", "generative")
#: Tables whose non-canonical columns are model input features.
FEATURE_TABLES: tuple[str, ...] = ("requests", "reference")
#: Tables the toolkit maintains itself.
BOOKKEEPING_TABLES: tuple[str, ...] = ("loads", "rejects", "schema_version", "case_meta")
#: Columns a row must have to be loaded; a row without them goes to ``rejects``.
REQUIRED: dict[str, tuple[str, ...]] = {
    "requests": ("request_id", "ts"),
    "labels": ("request_id", "label"),
    "reference": (),
    "features": ("name", "kind"),
    "metrics": ("ts", "name"),
    "events": ("ts", "kind"),
    "lineage": (),
    "endpoints": ("endpoint", "task"),
}
#: Provenance column present on every data table except the catalogs (``features``, ``endpoints``).
LOAD_ID = "load_id"
#: Vocabulary of ``events.kind`` and ``events.artifact`` (DESIGN section 3).
EVENT_KINDS = (
    "deploy",
    "rollback",
    "config_change",
    "restart",
    "oom_kill",
    "scale",
    "cache_flush",
    "alert",
)
EVENT_ARTIFACTS = ("model", "pipeline", "client", "cache", "infra", "service")
#: Vocabulary of ``requests.status``.
STATUSES = ("ok", "error", "timeout")


def migrations() -> list[tuple[int, str, str]]:
    """Return ``(version, name, sql)`` for every migration shipped with the package, in order."""
    folder = resources.files("toolkit.store") / "sql" / "migrations"
    found = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def views_sql() -> str:
    """The SQL that (re)creates the ad-hoc views and macros."""
    return (resources.files("toolkit.store") / "sql" / "views.sql").read_text(encoding="utf-8")


@cache
def _canonical() -> dict[str, dict[str, str]]:
    con = duckdb.connect()
    try:
        for _, _, sql in migrations():
            con.execute(sql)
        rows = con.execute(
            "SELECT table_name, column_name, data_type FROM duckdb_columns() "
            "WHERE schema_name = 'main' ORDER BY table_name, column_index"
        ).fetchall()
    finally:
        con.close()
    tables: dict[str, dict[str, str]] = {}
    for table, column, dtype in rows:
        if column == LOAD_ID:
            continue
        tables.setdefault(table, {})[column] = dtype
    return tables


def canonical_columns(table: str) -> dict[str, str]:
    """Canonical columns of ``table`` with their DuckDB types (without ``load_id``).

    Raises
    ------
    InvalidParameterError
        If ``table`` is not a canonical table.
    """
    check_table(table)
    return dict(_canonical()[table])


def check_table(table: str) -> str:
    """Return ``table`` if it is a canonical data table, else raise with the valid names."""
    if table not in DATA_TABLES:
        raise InvalidParameterError(
            f"{table!r} is not a table of the case. Choose one of: {', '.join(DATA_TABLES)}."
        )
    return table


def quote_ident(name: str) -> str:
    """Quote ``name`` as a DuckDB identifier (double quotes, embedded quotes doubled).

    Examples
    --------
    >>> quote_ident('a"b')
    '"a""b"'
    """
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """Quote ``text`` as a SQL string literal (single quotes doubled).

    Only for text that must be a literal (a JSON key name, a column name inside ``json_object``);
    values go into SQL as bound parameters.

    Examples
    --------
    >>> quote_literal("it's")
    "'it''s'"
    """
    return "'" + text.replace("'", "''") + "'"
