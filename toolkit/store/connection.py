"""Open a case database and keep its schema current."""

from __future__ import annotations

import os
import re
from pathlib import Path

import duckdb

from toolkit._version import __version__
from toolkit.errors import CaseLockedError, InvalidParameterError, SchemaVersionError
from toolkit.store.schema import migrations, views_sql

__all__ = ["connect", "ensure_schema", "schema_version"]

_LOCK_PID = re.compile(r"held in (?P<proc>.+?) \(PID (?P<pid>\d+)\)")


def connect(
    path: str | os.PathLike[str] | None = None,
    *,
    read_only: bool = False,
    memory_limit: str | None = None,
    threads: int | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open (or create) a case database with the canonical schema.

    Parameters
    ----------
    path
        The DuckDB file of the case. ``None`` opens an in-memory case (nothing is saved).
    read_only
        Open without taking the write lock, so that several processes (notebooks, a scheduled
        report) can read the case at once. A read-only case is never migrated.
    memory_limit
        DuckDB's memory limit (e.g. ``"2GB"``); beyond it, large sorts and aggregations spill
        to disk. Default: the ``FORENSICS_MEMORY_LIMIT`` environment variable, else DuckDB's
        default (80% of RAM).
    threads
        DuckDB worker threads (default: ``FORENSICS_THREADS``, else one per core).

    Returns
    -------
    duckdb.DuckDBPyConnection
        A connection whose session time zone is UTC, with the canonical tables, views and
        macros in place.

    Raises
    ------
    CaseLockedError
        Another process holds the file open for writing.
    SchemaVersionError
        The file was written by a newer toolkit, or is read-only and not (yet) a case.

    Examples
    --------
    >>> import toolkit as tk
    >>> con = tk.connect()
    >>> con.execute("SELECT count(*) FROM requests").fetchall()
    [(0,)]
    """
    if path is None:
        if read_only:
            raise InvalidParameterError("An in-memory case cannot be opened read-only.")
        con = duckdb.connect()
    else:
        path = Path(path)
        if path.is_dir():
            raise InvalidParameterError(f"{path} is a folder; a case is one DuckDB file.")
        if read_only and not path.exists():
            raise InvalidParameterError(
                f"No case database at {path}. Create it first, e.g. `forensics ingest DATA "
                f"--db {path}`."
            )
        if not read_only:
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            con = duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            raise _lock_error(path, exc) from exc
    con.execute("SET TimeZone = 'UTC'")
    memory_limit = memory_limit or os.environ.get("FORENSICS_MEMORY_LIMIT")
    if memory_limit:
        # SET takes no bound parameter; the value is validated by _size first
        con.execute(f"SET memory_limit = '{_size(memory_limit)}'")
    threads = threads or (int(os.environ["FORENSICS_THREADS"])
                          if os.environ.get("FORENSICS_THREADS") else None)
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    if read_only:
        _check_readable(con, path)
    else:
        ensure_schema(con)
    return con


def ensure_schema(con: duckdb.DuckDBPyConnection) -> int:
    """Create or migrate the canonical schema and (re)create the ad-hoc views; return the version.

    Each migration runs in its own transaction together with its ``schema_version`` row.
    """
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        " version INTEGER PRIMARY KEY, name VARCHAR, applied_at TIMESTAMPTZ,"
        " toolkit_version VARCHAR)"
    )
    current = schema_version(con)
    shipped = migrations()
    newest = shipped[-1][0]
    if current > newest:
        raise SchemaVersionError(
            f"This case has schema version {current}, newer than this toolkit knows "
            f"({newest}). Upgrade inference-forensics to open it."
        )
    for version, name, sql in shipped:
        if version <= current:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(sql)
            con.execute(
                "INSERT INTO schema_version VALUES (?, ?, now(), ?)", [version, name, __version__]
            )
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
    con.execute(views_sql())
    return newest


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    """Schema version of the case behind ``con`` (0 when it has none yet)."""
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'schema_version'"
    ).fetchall()[0][0]
    if not exists:
        return 0
    return int(con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchall()[0][0])


def _check_readable(con: duckdb.DuckDBPyConnection, path: Path | None) -> None:
    current = schema_version(con)
    newest = migrations()[-1][0]
    if current == 0:
        con.close()
        raise SchemaVersionError(
            f"{path} is not a case database (no schema_version table). Create it with "
            f"`forensics ingest DATA --db {path}` or tk.connect({str(path)!r})."
        )
    if current > newest:
        con.close()
        raise SchemaVersionError(
            f"{path} has schema version {current}, newer than this toolkit knows ({newest}). "
            "Upgrade inference-forensics to read it."
        )
    if current < newest:
        con.close()
        raise SchemaVersionError(
            f"{path} has schema version {current}; this toolkit needs {newest}. Open it once "
            f"for writing (tk.connect({str(path)!r})) to migrate it, then read it read-only."
        )


def _size(text: str) -> str:
    """Validate a memory size such as ``2GB`` or ``512MB`` (it is spliced into a SET)."""
    if not re.fullmatch(r"\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)", str(text).strip()):
        raise InvalidParameterError(
            f"memory_limit must look like '2GB' or '512MB'. Got {text!r}."
        )
    return str(text).strip()


def _lock_error(path: Path, exc: duckdb.IOException) -> Exception:
    text = str(exc)
    if "lock" not in text.lower():
        return exc
    holder = ""
    match = _LOCK_PID.search(text)
    if match:
        holder = f" (PID {match.group('pid')}, {Path(match.group('proc')).name})"
    return CaseLockedError(
        f"The case {path} is open for writing in another process{holder}. DuckDB allows one "
        "writing process or many reading ones. Close that connection (con.close() in the "
        "notebook, or let `forensics ingest` finish) and retry; to let several notebooks and "
        "reports share a case, open every connection read-only: "
        f"tk.connect({str(path)!r}, read_only=True), as `forensics sql` does."
    )
