"""Building blocks shared by the platform readers: reading JSON records, temp tables, staging.

Every reader turns its file into a temp table whose columns are ``_row`` (where the record is
in the file), ``_parse_error``, optionally ``_raw``, and canonical columns; :func:`finish` wraps
that table as a :class:`~toolkit.load.sources.StagedSource`. The file itself is always read by
DuckDB (one text value per line, as the generic JSON-lines reader does), never row by row in
Python.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import duckdb

from toolkit.errors import FileParseError
from toolkit.load.sources import StagedSource, _name, json_lines
from toolkit.store.schema import quote_ident, quote_literal

__all__ = [
    "lines",
    "head_text",
    "json_records",
    "record_error",
    "materialize",
    "finish",
    "path_hour",
    "parquet_columns",
    "iso_ns",
]

def lines(con: duckdb.DuckDBPyConnection, path: Path, cleanup: list[str]) -> str:
    """Relation of the non-blank lines of ``path`` (gzip too): ``_row`` (the physical line),
    ``_raw`` (its text) and ``_perr`` (why the line cannot be taken: not UTF-8, a \\x1e
    control character, longer than the line limit).

    DuckDB reads the file one text value per line (the generic JSON-lines reader's
    :func:`~toolkit.load.sources.json_lines`), so a malformed line is one rejected row, not a
    failed file. Temp tables it makes are appended to ``cleanup``.
    """
    return json_lines(con, path, cleanup)


def head_text(head: bytes) -> str:
    """The head of a file as text (undecodable bytes dropped), for content sniffing.

    Examples
    --------
    >>> head_text(b'{"a": 1}\\xff')
    '{"a": 1}'
    >>> head_text(b'\\xef\\xbb\\xbf{"a": 1}')
    '{"a": 1}'
    """
    return head.decode("utf-8", errors="ignore").removeprefix("\ufeff")


def record_error(raw: str = "_raw", perr: str = "_perr", objects: tuple[str, ...] = ()) -> str:
    """SQL: why a line's text is not a readable JSON record (NULL when it is).

    The line's own error (``perr``) first, then: not valid JSON, not an object, a key given
    twice at the top level or in one of the ``objects`` (JSON paths such as
    ``$.eventMetadata``): which of the two values is meant cannot be told, so the record is
    rejected rather than silently keeping one.

    Examples
    --------
    >>> import duckdb
    >>> sql = record_error("r", "NULL", ("$.m",))
    >>> record = '{"m": {"id": 1, "id": 2}}'
    >>> duckdb.execute(f"SELECT {sql} FROM (SELECT ? AS r)", [record]).fetchall()
    [('duplicate key "id" in $.m: which value is meant cannot be told',)]
    """
    def duplicate(path: str | None) -> str:
        keys = f"json_keys({raw}{', ' + quote_literal(path) if path else ''})"
        where = f" in {path}" if path else ""
        return (
            f"WHEN len({keys}) <> len(list_distinct({keys})) THEN 'duplicate key ' || "
            f"to_json(list_filter({keys}, lambda k, i: list_position({keys}, k) < i)[1]) || "
            f"{quote_literal(where + ': which value is meant cannot be told')} "
        )

    checks = "".join(duplicate(path) for path in (None, *objects))
    return (
        f"CASE WHEN {perr} IS NOT NULL THEN {perr} WHEN NOT json_valid({raw}) THEN 'not valid "
        f"JSON (a truncated or corrupt line)' WHEN json_type({raw}) <> 'OBJECT' THEN 'not a "
        f"JSON object' {checks}END"
    )


def json_records(
    con: duckdb.DuckDBPyConnection, path: Path, cleanup: list[str]
) -> tuple[str, str]:
    """How a JSON file holds its records: ``"lines"`` (JSON lines) or ``"document"``.

    Returns the mode and a relation with ``_row``, ``_raw`` and ``_perr`` (set when the record is
    not a JSON object, or its line cannot be read at all). In ``lines`` mode there is one row per
    non-empty line; in ``document`` mode (one JSON value spread over several lines, e.g.
    ``kubectl -o json``) one row, ``_row`` 1. The relation needs no parameters; temp tables
    are appended to ``cleanup``.

    Raises
    ------
    FileParseError
        When the whole file is not one JSON document, and neither its first line nor most of
        its lines are JSON.
    """
    text = lines(con, path, cleanup)
    n, valid, first_ok, doc_ok = con.execute(
        "SELECT count(*), count_if(_perr IS NULL AND json_valid(_raw)), "
        "coalesce(arg_min(_perr IS NULL AND json_valid(_raw), _row), false), "
        "coalesce(bool_and(_perr IS NULL) AND "
        "json_valid(string_agg(_raw, chr(10) ORDER BY _row)), false) "
        f"FROM {text}"
    ).fetchall()[0]
    # JSON lines with a few broken lines load line by line; a pretty-printed document does not
    # start with a complete JSON value on its first line
    if n == valid or (n and not doc_ok and (first_ok or 2 * valid >= n)):
        relation = f"(SELECT _row, _raw, {record_error()} AS _perr FROM {text})"
        return "lines", relation
    if doc_ok:
        relation = (
            "(SELECT 1::BIGINT AS _row, doc AS _raw, CASE WHEN json_type(doc) NOT IN "
            "('OBJECT', 'ARRAY') THEN 'not a JSON object' END AS _perr FROM "
            f"(SELECT string_agg(_raw, chr(10) ORDER BY _row) AS doc FROM {text}))"
        )
        return "document", relation
    raise FileParseError(
        f"{path}: cannot be read: neither one JSON document nor JSON lines (is it truncated?).",
        path=str(path),
    )


def materialize(
    con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None,
    *, cleanup: list[str], prefix: str = "fmt",
) -> str:
    """Run ``sql`` into a new temp table; its name is appended to ``cleanup`` and returned.

    Parameters
    ----------
    con
        The connection.
    sql
        A SELECT statement.
    params
        Its bound parameters (e.g. ``{"path": ...}`` for a ``read_parquet($path)``).
    cleanup
        The staged source's list of temp tables to drop after the load.
    prefix
        Start of the table's generated name.
    """
    name = _name(prefix)
    cleanup.append(name)
    con.execute(f"CREATE TEMP TABLE {quote_ident(name)} AS {sql}", params or {})
    return name


def finish(
    con: duckdb.DuckDBPyConnection,
    table: str,
    label: str,
    *,
    cleanup: list[str],
    registered: list[str] | None = None,
    notes: list[str] | None = None,
) -> StagedSource:
    """Wrap a temp table holding ``_row``, ``_parse_error``, canonical columns, and optionally
    ``_raw`` (the record's text) and ``_parse_column`` (the field a parse error is about).

    Raises
    ------
    FileParseError
        When the file has records and every one of them is unreadable: the file is refused
        (as the writer would) with the first record's position and reason, not a generic
        "no record could be parsed".
    """
    relation = f"(SELECT * FROM {quote_ident(table)})"
    n, bad, first = con.execute(
        "SELECT count(*), count(_parse_error), arg_min({'row': _row, 'reason': _parse_error}, "
        f"_row) FILTER (WHERE _parse_error IS NOT NULL) FROM {relation}"
    ).fetchall()[0]
    if n and bad == n:
        more = f" (and {bad - 1} more record(s) that cannot be read)" if bad > 1 else ""
        raise FileParseError(
            f"{label} (line {first['row']}): nothing can be loaded: {first['reason']}{more}",
            path=label,
            position=f"line {first['row']}",
        )
    described = con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
    columns = {name: dtype for name, dtype, *_ in described}
    missing = {"_row", "_parse_error"} - set(columns)
    if missing:  # pragma: no cover - a reader bug
        raise AssertionError(f"staged table lacks {missing}")
    has_raw = "_raw" in columns
    error_column = "_parse_column" in columns
    for internal in ("_row", "_parse_error", "_raw", "_parse_column"):
        columns.pop(internal, None)
    return StagedSource(
        relation,
        {},
        columns,
        text=False,
        label=label,
        has_raw=has_raw,
        cleanup=cleanup,
        registered=registered or [],
        notes=notes or [],
        error_column=error_column,
    )


_HOUR = re.compile(r"(?:^|/)(\d{4})/(\d{2})/(\d{2})/(\d{2})/[^/]+$")


def path_hour(path: Path) -> str | None:
    """The UTC hour of an hourly-partitioned path (``.../YYYY/MM/DD/HH/file``), ISO 8601.

    Examples
    --------
    >>> path_hour(Path("/cap/ep/AllTraffic/2021/05/18/00/20-45-950-c13a.jsonl"))
    '2021-05-18T00:00:00Z'
    >>> path_hour(Path("/tmp/capture.jsonl")) is None
    True
    """
    match = _HOUR.search(path.as_posix())
    if match is None:
        return None
    year, month, day, hour = match.groups()
    return f"{year}-{month}-{day}T{hour}:00:00Z"


@functools.lru_cache(maxsize=256)
def _parquet_columns(path: str, mtime: float, size: int) -> tuple[str, ...]:
    import pyarrow.parquet as pq

    try:
        return tuple(pq.read_schema(path).names)
    except Exception:  # noqa: BLE001 - not a readable Parquet file: not ours to judge here
        return ()


def parquet_columns(path: Path) -> tuple[str, ...]:
    """Column names of a Parquet file from its footer (empty when it cannot be read)."""
    try:
        stat = path.stat()
    except OSError:
        return ()
    return _parquet_columns(str(path), stat.st_mtime, stat.st_size)


def iso_ns(text: str) -> str:
    """SQL: nanoseconds since the epoch of an ISO 8601 text, keeping digits past the microsecond.

    DuckDB timestamps stop at microseconds; CloudEvents times carry nanoseconds, and latency is
    their difference, so the sub-microsecond digits are added back from the text.
    """
    fraction = f"rpad(coalesce(regexp_extract({text}, '\\.(\\d+)', 1), ''), 9, '0')"
    return (
        f"(epoch_us(TRY_CAST({text} AS TIMESTAMPTZ))::HUGEINT * 1000 + "
        f"TRY_CAST(substr({fraction}, 7, 3) AS INTEGER))"
    )
