"""Stage a source for conversion: DuckDB reads the file (or frame) itself.

A staged source is a SQL relation with a 1-based ``_row`` (the record's line in a text file, its
index in a Parquet file or frame), a ``_parse_error`` (set when the record itself is unreadable,
e.g. a truncated JSON line), a ``_raw`` text for records that are kept whole (JSON lines), and one
column per source column: text for CSV and JSON, typed for Parquet and frames.

No Python touches the rows: each reader is a DuckDB table function.
"""

from __future__ import annotations

import csv
import itertools
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from toolkit.errors import FileParseError
from toolkit.load.discover import SourceFile
from toolkit.store.schema import quote_ident, quote_literal

__all__ = ["StagedSource", "stage_file", "stage_frame", "parse_error", "READ_ERRORS"]

#: DuckDB errors that mean "the input is bad", as opposed to a bug in our SQL.
READ_ERRORS = (
    duckdb.IOException,
    duckdb.InvalidInputException,
    duckdb.ConversionException,
    duckdb.SerializationException,
)

_counter = itertools.count()


@dataclass
class StagedSource:
    """A source ready for conversion.

    Attributes
    ----------
    relation
        SQL relation (FROM-able) with ``_row``, ``_parse_error``, ``_raw`` and the source columns.
    params
        Bound parameters the relation needs (the file path).
    columns
        Source column names with their DuckDB types (``VARCHAR`` for text formats).
    text
        Whether the values are text (CSV, JSON), so kinds must be inferred from content.
    label
        How rejects name the source (the file path, or ``<pandas.DataFrame>``).
    line_offset
        Added to ``_row`` to give the line number reported in ``rejects`` (1 for a CSV header).
    csv_rejects
        Name of the temp table where DuckDB's CSV reader stored the lines it could not split.
    has_raw
        Whether the relation carries each record's raw text in ``_raw``.
    partitions
        Hive partition keys taken from the path (``day=2026-03-01``): not model inputs.
    cleanup
        Temp tables to drop afterwards.
    registered
        Python objects registered on the connection (``con.register``) to unregister afterwards.
    notes
        What a platform reader wants recorded in ``loads.note`` (e.g. defaults it applied).
    error_column
        Whether the relation has ``_parse_column``: the source field a ``_parse_error`` is
        about (e.g. a payload that does not decode), reported as the reject's column.
    """

    relation: str
    params: dict[str, Any]
    columns: dict[str, str]
    text: bool
    label: str
    line_offset: int = 0
    csv_rejects: str | None = None
    has_raw: bool = False
    partitions: tuple[str, ...] = ()
    cleanup: list[str] = field(default_factory=list)
    registered: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error_column: bool = False

    def raw_expr(self) -> str:
        """SQL giving the raw text of a record: the line itself, or a JSON object of its fields."""
        if self.has_raw:
            return "_raw"
        pairs = ", ".join(f"{quote_literal(n)}, {quote_ident(n)}" for n in self.columns)
        return f"CAST(json_object({pairs}) AS VARCHAR)" if pairs else "NULL"


def _name(prefix: str) -> str:
    return f"_{prefix}_{uuid.uuid4().hex[:8]}_{next(_counter)}"


def stage_file(con: duckdb.DuckDBPyConnection, source: SourceFile) -> StagedSource:
    """Stage ``source`` according to its format.

    Raises
    ------
    FileParseError
        If DuckDB cannot read the file at all (not CSV, corrupt Parquet, bad gzip, ...).
    """
    path = str(source.path)
    try:
        if source.format == "csv":
            return _stage_csv(con, source)
        if source.format == "parquet":
            return _stage_parquet(con, source)
        if source.format in ("jsonl", "json"):
            return _stage_json(con, source)
    except READ_ERRORS as exc:
        raise parse_error(path, exc) from exc
    raise FileParseError(f"{path}: unsupported format {source.format!r}.", path=path)


def parse_error(path: str, exc: BaseException) -> FileParseError:
    """Wrap a DuckDB read error as a :class:`FileParseError` that names the file and position."""
    text = str(exc).strip()
    position = None
    line = re.search(r"\b[Ll]ine[: ]+(\d+)", text)
    byte = re.search(r"\bbyte(?: position| offset)?[: ]+(\d+)", text, re.IGNORECASE)
    if line:
        position = f"line {line.group(1)}"
    elif byte:
        position = f"byte {byte.group(1)}"
    first = text.splitlines()[0] if text else type(exc).__name__
    where = f" ({position})" if position else ""
    return FileParseError(f"{path}{where}: cannot be read: {first}", path=path, position=position)


def _describe(con: duckdb.DuckDBPyConnection, sql: str, params: dict) -> dict[str, str]:
    rows = con.execute(f"DESCRIBE SELECT * FROM {sql}", params).fetchall()
    return {name: dtype for name, dtype, *_ in rows}


def _stage_csv(con: duckdb.DuckDBPyConnection, source: SourceFile) -> StagedSource:
    rejects, scans = _name("csv_rejects"), _name("csv_scans")
    delimiter, header = _read_header(source.path)
    # The header line is the contract: the dialect and the column names come from it, so a
    # few malformed lines cannot lead DuckDB's sniffer to a wrong dialect.
    spec = "{" + ", ".join(f"{quote_literal(n)}: 'VARCHAR'" for n in header) + "}"
    options = [
        "header = true",
        "auto_detect = false",
        f"columns = {spec}",
        "delim = " + quote_literal(delimiter),
        "quote = '\"'",
        "escape = '\"'",
        "null_padding = false",
        "max_line_size = 268435456",
        f"hive_partitioning = {str(source.hive).lower()}",
    ]
    reader = f"read_csv($path, {', '.join(options)}"
    params = {"path": str(source.path)}
    columns = _describe(con, reader + ")", params)
    staged_reader = (
        f"{reader}, store_rejects = true, rejects_table = '{rejects}', "
        f"rejects_scan = '{scans}')"
    )
    names = list(columns)
    select = ", ".join(quote_ident(n) for n in names)
    relation = (
        f"(SELECT ordinality AS _row, NULL::VARCHAR AS _parse_error, {select} "
        f"FROM {staged_reader} WITH ORDINALITY)"
    )
    return StagedSource(
        relation,
        params,
        columns,
        text=True,
        label=str(source.path),
        line_offset=1,
        csv_rejects=rejects,
        partitions=_partition_keys(source),
        cleanup=[rejects, scans],
    )


def _stage_parquet(con: duckdb.DuckDBPyConnection, source: SourceFile) -> StagedSource:
    reader = (
        "read_parquet($path, file_row_number = true, "
        f"hive_partitioning = {str(source.hive).lower()})"
    )
    params = {"path": str(source.path)}
    columns = _describe(con, reader, params)
    columns.pop("file_row_number", None)
    select = ", ".join(quote_ident(n) for n in columns)
    relation = (
        f"(SELECT file_row_number + 1 AS _row, NULL::VARCHAR AS _parse_error, {select} "
        f"FROM {reader})"
    )
    return StagedSource(relation, params, columns, text=False, label=str(source.path),
                        partitions=_partition_keys(source))


def _partition_keys(source: SourceFile) -> tuple[str, ...]:
    if not source.hive:
        return ()
    return tuple(part.split("=", 1)[0] for part in source.path.parent.parts if "=" in part)


def _stage_json(con: duckdb.DuckDBPyConnection, source: SourceFile) -> StagedSource:
    params = {"path": str(source.path)}
    if source.format == "json" and _starts_with_bracket(source.path):
        # One JSON array of records: parsed whole, then one row per element.
        lines = (
            "(SELECT generate_subscripts(arr, 1) AS _row, CAST(unnest(arr) AS VARCHAR) AS _raw "
            "FROM (SELECT CAST(content AS JSON[]) AS arr FROM read_text($path)))"
        )
    else:
        # JSON lines: each line is read as one text value (\x1e never occurs unescaped in
        # valid JSON), so a malformed line is one rejected row, not a failed file.
        lines = (
            "(SELECT ordinality AS _row, _raw FROM read_csv($path, "
            "columns = {'_raw': 'VARCHAR'}, header = false, delim = '\x1e', quote = '', "
            "escape = '', auto_detect = false, max_line_size = 268435456) WITH ORDINALITY "
            "WHERE _raw IS NOT NULL AND trim(_raw) <> '')"
        )
    checked = (
        f"(SELECT _row, _raw, CASE WHEN NOT json_valid(_raw) THEN 'not valid JSON' "
        f"WHEN json_type(_raw) <> 'OBJECT' THEN 'not a JSON object' END AS _parse_error "
        f"FROM {lines})"
    )
    keys = con.execute(
        "SELECT key FROM (SELECT _row, unnest(json_keys(_raw)) AS key, "
        "generate_subscripts(json_keys(_raw), 1) AS idx FROM "
        f"{checked} WHERE _parse_error IS NULL) GROUP BY key ORDER BY min(_row), min(idx)",
        params,
    ).fetchall()
    names = [k for (k,) in keys]
    if names:
        paths = ", ".join(quote_literal("$." + _json_key(n)) for n in names)
        values = ", ".join(f"_v[{i + 1}] AS {quote_ident(n)}" for i, n in enumerate(names))
        relation = (
            f"(SELECT _row, _raw, _parse_error, {values} FROM (SELECT *, CASE WHEN "
            f"_parse_error IS NULL THEN json_extract_string(_raw, [{paths}]) END AS _v "
            f"FROM {checked}))"
        )
    else:
        first_bad = next(iter(con.execute(
            f"SELECT _row, _parse_error FROM {checked} WHERE _parse_error IS NOT NULL "
            "ORDER BY _row LIMIT 1",
            params,
        ).fetchall()), None)
        if first_bad is not None:
            raise FileParseError(
                f"{source.path} (line {first_bad[0]}): cannot be read: no line is a JSON object "
                f"(line {first_bad[0]}: {first_bad[1]}); is the file in the format its name "
                "says?",
                path=str(source.path),
                position=f"line {first_bad[0]}",
            )
        relation = f"(SELECT _row, _raw, _parse_error FROM {checked})"
    return StagedSource(
        relation,
        params,
        {n: "VARCHAR" for n in names},
        text=True,
        label=str(source.path),
        has_raw=True,
    )


_DELIMITERS = (",", "\t", ";", "|")


def _read_header(path: Path) -> tuple[str, list[str]]:
    """Delimiter and column names of a CSV file, from its header line.

    The delimiter is the candidate that splits the header most (tab for ``.tsv``); empty or
    repeated names become ``column_<i>`` / ``name_<k>`` as DuckDB would name them.
    """
    with _open(path) as handle:
        line = handle.readline(1 << 20).decode("utf-8-sig", errors="replace").rstrip("\r\n")
    if not line.strip():
        raise FileParseError(f"{path}: line 1: empty header line.", path=str(path),
                             position="line 1")
    if path.name.lower().endswith((".tsv", ".tsv.gz")):
        delimiter = "\t"
    else:
        counts = {d: line.count(d) for d in _DELIMITERS}
        delimiter = max(counts, key=lambda d: counts[d]) if max(counts.values()) else ","
    names: list[str] = []
    seen: dict[str, int] = {}
    for i, name in enumerate(next(csv.reader([line], delimiter=delimiter))):
        name = name.strip() or f"column_{i}"
        if name in seen:
            seen[name] += 1
            name = f"{name}_{seen[name]}"
        seen.setdefault(name, 0)
        names.append(name)
    return delimiter, names


def _open(path: Path):
    import gzip

    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def _json_key(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _starts_with_bracket(path: Path) -> bool:
    with _open(path) as handle:
        head = handle.read(4096).lstrip()
    return head.startswith(b"[")


def stage_frame(con: duckdb.DuckDBPyConnection, frame: Any, *, label: str) -> StagedSource:
    """Register an in-memory Arrow table (or pandas frame) and stage it, rows numbered from 1.

    Platform readers that must parse text in Python (e.g. KServe's event dumps) build an Arrow
    table with canonical column names and stage it here; the loader unregisters it afterwards.
    """
    name = _name("frame")
    table = frame if isinstance(frame, pa.Table) else pa.table(frame)
    row = "__row_number"
    while row in table.column_names:
        row = "_" + row
    table = table.append_column(row, pa.array(np.arange(1, table.num_rows + 1, dtype=np.int64)))
    con.register(name, table)
    columns = _describe(con, quote_ident(name), {})
    columns.pop(row)
    select = ", ".join(quote_ident(n) for n in columns)
    relation = (
        f"(SELECT {quote_ident(row)} AS _row, NULL::VARCHAR AS _parse_error, {select} "
        f"FROM {quote_ident(name)})"
    )
    return StagedSource(relation, {}, columns, text=False, label=label, registered=[name])
