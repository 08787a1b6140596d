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
# DuckDB writes a checksum (8 bytes) and then this magic at the start of every database file.
_DUCKDB_MAGIC = b"DUCK"
_MAGIC_OFFSET = 8
# Below this DuckDB cannot even create the schema or load a small file (measured: 16MB fails
# on a 100,000-request case, 0MB on anything); 64MB leaves headroom.
MIN_MEMORY_LIMIT = 64 * 1000**2
_UNITS = {"B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4,
          "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "TiB": 1024**4}


def connect(
    path: str | os.PathLike[str] | None = None,
    *,
    read_only: bool = False,
    memory_limit: str | None = None,
    threads: int | None = None,
    external_access: bool = True,
    temp_directory: str | os.PathLike[str] | None = None,
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
        default (80% of RAM). A limit below 64MB is refused: DuckDB cannot load a case in it.
    threads
        DuckDB worker threads (default: ``FORENSICS_THREADS``, else one per core).
    external_access
        ``False`` sandboxes the connection for untrusted SQL: DuckDB's
        ``enable_external_access`` is off and the configuration is locked, so queries can
        read and write no file other than the case (no ``ATTACH``, ``COPY ... TO``,
        ``read_text``, ``read_csv``, extension loading). The case's own views and macros
        still work. Only with ``read_only=True``.
    temp_directory
        Where DuckDB spills what does not fit under the memory limit (created if missing).
        Default: the ``FORENSICS_TEMP_DIRECTORY`` environment variable, else DuckDB's default
        (``<case file>.tmp`` beside the case, ``.tmp`` in the working directory for an
        in-memory case). Point it at a disk with room: a 100M-request case spills gigabytes.

    Returns
    -------
    duckdb.DuckDBPyConnection
        A connection whose session time zone is UTC, with the canonical tables, views and
        macros in place.

    Raises
    ------
    InvalidParameterError
        ``path`` exists but is not a DuckDB database file (a CSV, a README, ...), the memory
        limit is malformed or too small, or the temp directory is a file or cannot be created
        or written. The message names the parameter or environment variable it came from.
    CaseLockedError
        Another process holds the file (a writer, or readers when opening for writing).
    SchemaVersionError
        The file was written by a newer toolkit, or is read-only and not (yet) a case.

    Examples
    --------
    >>> import toolkit as tk
    >>> con = tk.connect()
    >>> con.execute("SELECT count(*) FROM requests").fetchall()
    [(0,)]
    """
    if not external_access and not read_only:
        raise InvalidParameterError("external_access=False needs read_only=True.")
    config = _config(memory_limit, threads, temp_directory)
    if path is None:
        if read_only:
            raise InvalidParameterError("An in-memory case cannot be opened read-only.")
        con = duckdb.connect(config=config)
    else:
        path = Path(path)
        if path.is_dir():
            raise InvalidParameterError(f"{path} is a folder; a case is one DuckDB file.")
        if read_only and not path.exists():
            raise InvalidParameterError(
                f"No case database at {path}. Create it first, e.g. `forensics ingest DATA "
                f"--db {path}`."
            )
        _check_database_file(path)
        if not read_only:
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            con = duckdb.connect(str(path), read_only=read_only, config=config)
        except duckdb.IOException as exc:
            raise _lock_error(path, exc, read_only=read_only) from exc
        except duckdb.Error as exc:
            raise InvalidParameterError(f"{path}: cannot open it as a case: {exc}") from exc
    con.execute("SET TimeZone = 'UTC'")  # needs ICU, which a config dict cannot autoload
    if not external_access:
        # Disabling can be done at runtime; once locked, no query can undo either setting.
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
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


def _config(memory_limit: str | None, threads: int | None,
            temp_directory: str | os.PathLike[str] | None = None) -> dict[str, object]:
    """Session settings, given at connect time (a sandboxed connection locks them).

    An argument wins over its environment variable; an error names whichever was used.
    """
    config: dict[str, object] = {}
    if memory_limit:
        config["memory_limit"] = _size(memory_limit, "memory_limit")
    elif os.environ.get("FORENSICS_MEMORY_LIMIT"):
        config["memory_limit"] = _size(os.environ["FORENSICS_MEMORY_LIMIT"],
                                       "FORENSICS_MEMORY_LIMIT")
    if not threads and os.environ.get("FORENSICS_THREADS"):
        threads = _threads(os.environ["FORENSICS_THREADS"], "FORENSICS_THREADS")
    if threads:
        config["threads"] = _threads(threads, "threads")
    if temp_directory is not None and str(temp_directory) != "":
        config["temp_directory"] = _temp_directory(temp_directory, "temp_directory")
    elif os.environ.get("FORENSICS_TEMP_DIRECTORY", "").strip():
        config["temp_directory"] = _temp_directory(os.environ["FORENSICS_TEMP_DIRECTORY"],
                                                   "FORENSICS_TEMP_DIRECTORY")
    return config


def _threads(value: object, name: str) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        number = 0
    if number < 1:
        raise InvalidParameterError(f"{name} must be a positive whole number. Got {value!r}.")
    return number


def _size(text: str, name: str = "memory_limit") -> str:
    """Validate a memory size such as ``2GB`` or ``512MB`` of at least 64MB."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)", str(text).strip(),
                         flags=re.IGNORECASE)
    if not match:
        raise InvalidParameterError(
            f"{name} must be a memory size such as '2GB' or '512MB' (units B, KB, MB, GB, TB, "
            f"KiB, MiB, GiB, TiB). Got {text!r}."
        )
    unit = next(u for u in _UNITS if u.lower() == match.group(2).lower())
    size = float(match.group(1)) * _UNITS[unit]
    if size < MIN_MEMORY_LIMIT:
        raise InvalidParameterError(
            f"{name}={str(text).strip()} is too small: DuckDB needs at least 64MB to open and "
            "load a case (1GB or more is sensible)."
        )
    return f"{match.group(1)}{unit}"


def _temp_directory(value: str | os.PathLike[str], name: str) -> str:
    """Validate (and create) the folder DuckDB spills to; return it as an absolute path.

    DuckDB only finds a bad temp directory when it first spills, deep inside a large query;
    checking here turns that into an error at connect time that names the setting.
    """
    folder = Path(os.path.expanduser(str(value).strip())).absolute()
    if folder.exists() and not folder.is_dir():
        raise InvalidParameterError(
            f"{name}={value!s}: {folder} is a file; the temp directory must be a folder "
            "(DuckDB spills its large sorts and aggregations there)."
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidParameterError(
            f"{name}={value!s}: cannot create {folder}: {exc.strerror or exc}."
        ) from exc
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InvalidParameterError(
            f"{name}={value!s}: {folder} is not writable; DuckDB could not spill there."
        )
    return str(folder)


def _check_database_file(path: Path) -> None:
    """Refuse an existing file that is not a DuckDB database (DuckDB would open a CSV, Parquet
    or JSON file as a throw-away in-memory database and the load would vanish)."""
    if not path.exists():
        return
    try:
        with path.open("rb") as handle:
            head = handle.read(_MAGIC_OFFSET + len(_DUCKDB_MAGIC))
    except OSError as exc:
        raise InvalidParameterError(f"{path}: cannot read it: {exc.strerror or exc}.") from exc
    if head[_MAGIC_OFFSET:] != _DUCKDB_MAGIC:
        raise InvalidParameterError(
            f"{path} is not a DuckDB case file. --db takes an existing case or a new path "
            "(e.g. case.duckdb); the data files go before it: `forensics ingest DATA --db "
            "case.duckdb`."
        )


def _lock_error(path: Path, exc: duckdb.IOException, *, read_only: bool) -> Exception:
    """Say who holds the case and what to do, from which side of the lock we are on."""
    text = str(exc)
    if "lock" not in text.lower():
        return InvalidParameterError(f"{path}: cannot open it as a case: {text}")
    holder = "another process"
    match = _LOCK_PID.search(text)
    if match:
        holder = f"another process (PID {match.group('pid')}, {Path(match.group('proc')).name})"
    if read_only:
        # Readers share the file; only a writer keeps a reader out.
        return CaseLockedError(
            f"The case {path} is being written by {holder}, so it cannot be read until that "
            "process closes it. Let it finish (`forensics ingest`, `forensics demo`) or close "
            "its connection (con.close() in a notebook opened with tk.connect(path) without "
            "read_only=True), then retry."
        )
    if "read-only mode" in text or "readonly" in text.lower():
        # DuckDB adds this hint when the holders are readers.
        return CaseLockedError(
            f"The case {path} is open read-only in {holder}; DuckDB lets nobody write a case "
            "while others read it. Close the readers (con.close() in notebooks, or wait for "
            "`forensics sql/info/postmortem/report` to finish), then retry the write."
        )
    return CaseLockedError(
        f"The case {path} is being written by {holder}; DuckDB allows one writing process at "
        "a time. Let it finish (`forensics ingest`) or close its connection (con.close() in "
        "the notebook), then retry."
    )
