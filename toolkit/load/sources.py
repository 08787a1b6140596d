"""Stage a source for conversion: DuckDB reads the file (or frame) itself.

A staged source is a SQL relation with a 1-based ``_row`` (the record's line in a text file, its
index in a Parquet file or frame), a ``_parse_error`` (set when the record itself is unreadable,
e.g. a truncated JSON line), a ``_raw`` text for records that are kept whole (JSON lines), and one
column per source column: text for CSV and JSON, typed for Parquet and frames.

The generic readers never put a user's column name into the relation: source column ``i`` is
read under the positional alias ``_s<i>`` (:attr:`StagedSource.refs` maps the name to it), so a
column called ``_row``, ``_raw``, ``ordinality`` or ``__c0`` cannot collide with the loader's own
columns.

No Python touches the rows: each reader is a DuckDB table function. Python only reads the head
of a file to recognise what it is (gzip, UTF-16, binary, the header line).
"""

from __future__ import annotations

import csv
import gzip
import itertools
import re
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from toolkit.errors import FileParseError
from toolkit.load.discover import SourceFile
from toolkit.store.schema import quote_ident, quote_literal

__all__ = [
    "StagedSource",
    "stage_file",
    "stage_frame",
    "parse_error",
    "line_breaks",
    "json_lines",
    "READ_ERRORS",
    "MAX_LINE_BYTES",
]

#: DuckDB errors that mean "the input is bad", as opposed to a bug in our SQL.
READ_ERRORS = (
    duckdb.IOException,
    duckdb.InvalidInputException,
    duckdb.ConversionException,
    duckdb.SerializationException,
)

#: Longest line (record) a text reader accepts; a longer line is one reject, not a failed file.
MAX_LINE_BYTES = 1 << 28

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
    refs
        The relation's column for a source column, when it is not the column's own name (the
        generic readers read every source column under a positional alias).
    records
        The number of records counted independently of the parser (physical lines of a CSV
        file after its header, rows in a Parquet file's metadata, rows of a frame), when known;
        the writer refuses a source whose parsed records do not account for it.
    categorical
        Columns whose source type says they are categories (an Arrow dictionary, a pandas
        ``category``), whatever type their values have.
    typed_text
        Whether a text column is text by the user's choice (a frame the user passed), not
        because the format carries only text (CSV, JSON lines, a platform reader's payloads).
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
    refs: dict[str, str] = field(default_factory=dict)
    records: int | None = None
    categorical: tuple[str, ...] = ()
    typed_text: bool = False

    def ref(self, name: str) -> str:
        """SQL naming source column ``name`` in :attr:`relation`."""
        return quote_ident(self.refs.get(name, name))

    def raw_expr(self) -> str:
        """SQL giving the raw text of a record: the line itself, or a JSON object of its fields."""
        if self.has_raw:
            return "_raw"
        pairs = ", ".join(f"{quote_literal(n)}, {self.ref(n)}" for n in self.columns)
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


def _describe_list(con: duckdb.DuckDBPyConnection, sql: str, params: dict) -> list[tuple[str, str]]:
    rows = con.execute(f"DESCRIBE SELECT * FROM {sql}", params).fetchall()
    return [(name, dtype) for name, dtype, *_ in rows]


# --------------------------------------------------------------------------------------------
# What a text file is: checked on its head before DuckDB reads it


_HEAD_BYTES = 1 << 16
_MAGIC = {
    b"PAR1": "a Parquet file (name it .parquet)",
    b"PK\x03\x04": "a ZIP archive (an Excel workbook? export it as CSV)",
    b"BZh": "bzip2-compressed (decompress it, or recompress it with gzip as .gz)",
    b"\x28\xb5\x2f\xfd": "zstd-compressed (decompress it, or recompress it with gzip as .gz)",
    b"\xfd7zXZ\x00": "xz-compressed (decompress it, or recompress it with gzip as .gz)",
    b"\xd0\xcf\x11\xe0": "an old Excel/OLE document (export it as CSV)",
}


def _gzipped(path: Path) -> bool:
    return path.name.lower().endswith(".gz")


def _head(path: Path) -> bytes:
    """The first bytes of a text file (decompressed), after checking the compression its name
    claims; raises :class:`FileParseError` for a file that is not what its name says."""
    with open(path, "rb") as handle:
        start = handle.read(_HEAD_BYTES)
    magic_gzip = start[:2] == b"\x1f\x8b"
    if _gzipped(path) and not magic_gzip:
        raise FileParseError(
            f"{path}: named .gz but not gzip-compressed; rename it without .gz "
            "(or compress it with gzip).",
            path=str(path), position="byte 0",
        )
    if magic_gzip and not _gzipped(path):
        raise FileParseError(
            f"{path}: gzip-compressed but not named .gz; rename it to {path.name}.gz.",
            path=str(path), position="byte 0",
        )
    if magic_gzip:
        try:
            with gzip.open(path, "rb") as handle:
                start = handle.read(_HEAD_BYTES)
        except (OSError, EOFError, zlib.error) as exc:
            raise FileParseError(f"{path}: corrupt or truncated gzip data: {exc}.",
                                 path=str(path)) from None
    return start


def _check_text(path: Path, head: bytes) -> None:
    """Refuse a file that is not text: UTF-16/32, binary, or another format under a text name."""
    for magic, what in _MAGIC.items():
        if head.startswith(magic):
            raise FileParseError(f"{path}: not a text file: it is {what}.", path=str(path),
                                 position="byte 0")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or _utf16_without_bom(head):
        raise FileParseError(
            f"{path}: the file is UTF-16 encoded; convert it to UTF-8 "
            f"(e.g. iconv -f UTF-16 -t UTF-8 {path.name}).",
            path=str(path), position="byte 0",
        )
    nul = head.find(b"\x00")
    control = sum(1 for b in head if b < 9 or 13 < b < 32 and b != 27)
    if nul >= 0 or (head and control > 0.05 * len(head)):
        where = nul if nul >= 0 else 0
        raise FileParseError(
            f"{path} (byte {where}): binary data, not a text table; is the file in the format "
            "its name says?",
            path=str(path), position=f"byte {where}",
        )


def _utf16_without_bom(head: bytes) -> bool:
    sample = head[:200]
    if len(sample) < 4:
        return False
    zeros_even = sample[0::2].count(0)
    zeros_odd = sample[1::2].count(0)
    half = len(sample) // 2
    return zeros_even > 0.4 * half or zeros_odd > 0.4 * half


_NEWLINE = re.compile(rb"\r\n|\r|\n")


def _read_header(path: Path, head: bytes) -> tuple[str, list[str], str, list[str]]:
    """Delimiter, column names, encoding and raw header fields of a CSV file.

    The delimiter is the candidate that splits the header most (tab for ``.tsv``); empty or
    repeated names become ``column_<i>`` / ``name_<k>`` as DuckDB would name them. A header
    that is not UTF-8 is read as Latin-1, and so is the whole file (``latin-1``).
    """
    raw = _NEWLINE.split(head, maxsplit=1)[0]
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        line, encoding = raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        line, encoding = raw.decode("latin-1"), "latin-1"
    if not line.strip():
        raise FileParseError(f"{path}: line 1: empty header line.", path=str(path),
                             position="line 1")
    if path.name.lower().endswith((".tsv", ".tsv.gz")):
        delimiter = "\t"
    else:
        counts = {d: line.count(d) for d in _DELIMITERS}
        delimiter = max(counts, key=lambda d: counts[d]) if max(counts.values()) else ","
    try:
        fields = next(csv.reader([line], delimiter=delimiter))
    except csv.Error as exc:
        raise FileParseError(f"{path} (line 1): the header cannot be read: {exc}.",
                             path=str(path), position="line 1") from None
    names = _unique([name.strip() or f"column_{i}" for i, name in enumerate(fields)])
    return delimiter, names, encoding, fields


def _unique(names: list[str]) -> list[str]:
    """Repeated names made unique as DuckDB would: ``a``, ``a_1``, ``a_2``."""
    out: list[str] = []
    seen: dict[str, int] = {}
    for name in names:
        if name in seen:
            seen[name] += 1
            name = f"{name}_{seen[name]}"
        seen.setdefault(name, 0)
        out.append(name)
    return out


def _renamed(fields: list[str], names: list[str]) -> str | None:
    """A note naming the header fields that were trimmed, filled in or made unique."""
    changed = [f"{f!r} -> {n!r}" for f, n in zip(fields, names, strict=True) if f != n]
    if not changed:
        return None
    more = f" and {len(changed) - 10} more" if len(changed) > 10 else ""
    return "renamed column(s): " + ", ".join(changed[:10]) + more


_DELIMITERS = (",", "\t", ";", "|")


def _line_reader(rejects: str, scans: str, encoding: str = "utf-8", *,
                 any_break: bool = False) -> str:
    """``read_csv`` that yields every line of ``$path`` as one text value (blank lines NULL).

    \\x1e never occurs unescaped in JSON or in a sane CSV line; lines DuckDB cannot take (not
    UTF-8, longer than :data:`MAX_LINE_BYTES`) go to the ``rejects`` table, one row per line.
    ``any_break`` ends a line at every CR, LF or CRLF, even where the file's own line ending is
    another: a CSV value may hold a lone CR inside its quotes, on which DuckDB's strict reader
    stops ("state machine reached an invalid state"); the CSV record count splits values on
    the same three breaks (:func:`line_breaks`), so the two agree.
    """
    enc = "" if encoding == "utf-8" else f", encoding = {quote_literal(encoding)}"
    loose = ", strict_mode = false" if any_break else ""
    return (
        "read_csv($path, columns = {'_raw': 'VARCHAR'}, header = false, delim = '\x1e', "
        "quote = '', escape = '', auto_detect = false, null_padding = false, "
        f"max_line_size = {MAX_LINE_BYTES}, store_rejects = true, "
        f"rejects_table = '{rejects}', rejects_scan = '{scans}'{enc}{loose})"
    )


def _rejected_lines(con: duckdb.DuckDBPyConnection, rejects: str) -> list[tuple[int, str, str]]:
    """(line, reason, raw text) of each line a line reader refused, in line order."""
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [rejects]
    ).fetchall()[0][0]
    if not exists:
        return []
    rows = con.execute(
        f"SELECT line, string_agg(DISTINCT error_type, '; '), "
        "any_value(ltrim(left(csv_line, 4096), chr(13) || chr(10))) "
        f"FROM {quote_ident(rejects)} GROUP BY line ORDER BY line"
    ).fetchall()
    reasons = {
        "INVALID ENCODING": "not valid UTF-8 text",
        "LINE SIZE OVER MAXIMUM": f"line longer than {MAX_LINE_BYTES} bytes",
        "TOO MANY COLUMNS": "contains a record-separator control character (\\x1e)",
    }
    out = []
    for line, kinds, raw in rows:
        reason = "; ".join(reasons.get(k, k.lower()) for k in kinds.split("; "))
        out.append((int(line), reason, raw))
    return out


# --------------------------------------------------------------------------------------------
# CSV


def _stage_csv(con: duckdb.DuckDBPyConnection, source: SourceFile) -> StagedSource:
    rejects, scans = _name("csv_rejects"), _name("csv_scans")
    head = _head(source.path)
    _check_text(source.path, head)
    delimiter, header, encoding, fields = _read_header(source.path, head)
    aliases = [f"_s{i}" for i in range(len(header))]
    # The header line is the contract: the dialect and the column names come from it, so a
    # few malformed lines cannot lead DuckDB's sniffer to a wrong dialect. Columns are read
    # under positional aliases: no user name ever reaches the SQL.
    spec = "{" + ", ".join(f"{quote_literal(a)}: 'VARCHAR'" for a in aliases) + "}"
    options = [
        "header = true",
        "auto_detect = false",
        f"columns = {spec}",
        "delim = " + quote_literal(delimiter),
        "quote = '\"'",
        "escape = '\"'",
        "null_padding = false",
        f"max_line_size = {MAX_LINE_BYTES}",
        f"hive_partitioning = {str(source.hive).lower()}",
    ]
    if encoding != "utf-8":
        options.append(f"encoding = {quote_literal(encoding)}")
    reader = f"read_csv($path, {', '.join(options)}"
    params = {"path": str(source.path)}
    described = _describe_list(con, reader + ")", params)
    # hive partition keys follow the file's columns, under their own names
    names = header + [name for name, _ in described[len(header):]]
    every = [f"_s{i}" for i in range(len(names))]
    staged_reader = (
        f"{reader}, store_rejects = true, rejects_table = '{rejects}', "
        f"rejects_scan = '{scans}')"
    )
    select = ", ".join(quote_ident(a) for a in every)
    relation = (
        f"(SELECT _ord AS _row, NULL::VARCHAR AS _parse_error, {select} "
        f"FROM {staged_reader} WITH ORDINALITY AS _t({select}, _ord))"
    )
    cleanup = [rejects, scans]
    notes = []
    if encoding != "utf-8":
        notes.append("the header is not UTF-8: the file was read as Latin-1")
    if renamed := _renamed(fields, header):
        notes.append(renamed)
    return StagedSource(
        relation,
        params,
        {name: dtype for name, (_, dtype) in zip(names, described, strict=True)},
        text=True,
        label=str(source.path),
        line_offset=1,
        csv_rejects=rejects,
        partitions=_partition_keys(source),
        cleanup=cleanup,
        notes=notes,
        refs=dict(zip(names, every, strict=True)),
        records=_count_lines(con, source.path, encoding, cleanup) - 1,
    )


def _count_lines(
    con: duckdb.DuckDBPyConnection, path: Path, encoding: str, cleanup: list[str]
) -> int:
    """Non-blank physical lines of a text file, counted without its quoting rules."""
    rejects, scans = _name("line_rejects"), _name("line_scans")
    cleanup.extend([rejects, scans])
    (readable,) = con.execute(
        f"SELECT count(_raw) FROM {_line_reader(rejects, scans, encoding, any_break=True)}",
        {"path": str(path)}
    ).fetchall()[0]
    return int(readable) + len(_rejected_lines(con, rejects))


def line_breaks(con: duckdb.DuckDBPyConnection, staged: StagedSource) -> int:
    """Non-blank physical lines that quoted values of a staged text source continue onto.

    A value with ``k`` line breaks spans ``k`` more lines; those of its middle parts that are
    empty are blank lines, which the line count leaves out too.
    """
    if not staged.columns:
        return 0
    terms = " + ".join(_continued_lines(staged.ref(n)) for n in staged.columns)
    total = con.execute(
        f"SELECT sum({terms}) FROM {staged.relation}", staged.params
    ).fetchall()[0][0]
    return int(total or 0)


def _continued_lines(value: str) -> str:
    parts = f"regexp_split_to_array({value}, '\\r\\n|\\r|\\n')"
    return (f"coalesce(len({parts}) - 1 - len(list_filter({parts}[2:len({parts}) - 1], "
            "lambda x: x = '')), 0)")


# --------------------------------------------------------------------------------------------
# Parquet


def _stage_parquet(con: duckdb.DuckDBPyConnection, source: SourceFile) -> StagedSource:
    params = {"path": str(source.path)}
    hive = f"hive_partitioning = {str(source.hive).lower()}"
    plain = _describe_list(con, f"read_parquet($path, {hive})", params)
    # DuckDB renames a column whose name differs from another only in case (`TS` beside
    # `ts` becomes `ts_1`): keep the file's own names, so such a pair is refused, not guessed
    own = _parquet_names(source.path)
    names = [name for name, _ in plain]
    notes = []
    if own is not None and len(own) <= len(names):
        # the same name twice is made unique as in a CSV header (amount, amount_1), and said
        unique = _unique(own)
        if renamed := _renamed(own, unique):
            notes.append(renamed)
        names = unique + names[len(own):]
    every = [f"_s{i}" for i in range(len(names))]
    select = ", ".join(quote_ident(a) for a in every)
    if any(name.lower() == "file_row_number" for name in names):
        # the file has a column of that name: DuckDB's row-number option would clash with it
        relation = (
            f"(SELECT _ord AS _row, NULL::VARCHAR AS _parse_error, {select} "
            f"FROM read_parquet($path, {hive}) WITH ORDINALITY AS _t({select}, _ord))"
        )
    else:
        with_number = _describe_list(
            con, f"read_parquet($path, file_row_number = true, {hive})", params
        )
        position = [name for name, _ in with_number].index("file_row_number")
        aliases = every[:position] + ["_frn"] + every[position:]
        relation = (
            f"(SELECT _frn + 1 AS _row, NULL::VARCHAR AS _parse_error, {select} "
            f"FROM read_parquet($path, file_row_number = true, {hive}) "
            f"AS _t({', '.join(quote_ident(a) for a in aliases)}))"
        )
    (records,) = con.execute(
        "SELECT sum(num_rows) FROM parquet_file_metadata($path)", params
    ).fetchall()[0]
    columns = {name: dtype for name, (_, dtype) in zip(names, plain, strict=True)}
    return StagedSource(relation, params, columns, text=False, label=str(source.path),
                        partitions=_partition_keys(source), notes=notes,
                        refs=dict(zip(names, every, strict=True)),
                        records=int(records or 0))


def _parquet_names(path: Path) -> list[str] | None:
    """The top-level column names in a Parquet file's footer, as written (None if unreadable:
    DuckDB's own error then says why)."""
    import pyarrow.parquet as pq

    try:
        return list(pq.read_schema(path).names)
    except (OSError, ValueError, pa.ArrowException):
        return None


def _partition_keys(source: SourceFile) -> tuple[str, ...]:
    if not source.hive:
        return ()
    return tuple(part.split("=", 1)[0] for part in source.path.parent.parts if "=" in part)


# --------------------------------------------------------------------------------------------
# JSON lines and JSON arrays


def _stage_json(con: duckdb.DuckDBPyConnection, source: SourceFile) -> StagedSource:
    head = _head(source.path)
    _check_text(source.path, head)
    cleanup: list[str] = []
    params: dict[str, Any] = {}
    if source.format == "json" and head.lstrip().startswith(b"["):
        params = {"path": str(source.path)}
        # One JSON array of records: parsed whole, then one row per element.
        lines = (
            "(SELECT generate_subscripts(arr, 1) AS _row, CAST(unnest(arr) AS VARCHAR) AS _raw, "
            "NULL::VARCHAR AS _perr "
            "FROM (SELECT CAST(content AS JSON[]) AS arr FROM read_text($path)))"
        )
    else:
        lines = json_lines(con, source.path, cleanup)
    # Each record is parsed once, into a temp table: its keys, and why it cannot be loaded.
    checked = _name("json_records")
    cleanup.append(checked)
    con.execute(
        f"CREATE TEMP TABLE {quote_ident(checked)} AS SELECT _row, _raw, CASE "
        "WHEN _perr IS NOT NULL THEN _perr "
        "WHEN NOT _ok THEN 'not valid JSON' "
        "WHEN _type <> 'OBJECT' THEN 'not a JSON object' "
        "WHEN len(_keys) <> len(list_distinct(_keys)) THEN 'duplicate key ' || "
        "to_json(list_filter(_keys, lambda x, i: list_position(_keys, x) < i)[1]) || "
        "': which value is meant cannot be told' "
        "WHEN list_contains(_keys, '') THEN 'an empty key (\"\"), which names no column' "
        "END AS _parse_error, _keys "
        "FROM (SELECT *, CASE WHEN _type = 'OBJECT' THEN json_keys(_raw) END AS _keys "
        "FROM (SELECT *, CASE WHEN _ok THEN json_type(_raw) END AS _type "
        f"FROM (SELECT *, coalesce(json_valid(_raw), false) AS _ok FROM {lines})))",
        params,
    )
    params = {}
    found = con.execute(
        "SELECT key FROM (SELECT _row, unnest(_keys) AS key, generate_subscripts(_keys, 1) AS idx "
        f"FROM {quote_ident(checked)} WHERE _parse_error IS NULL) "
        "GROUP BY key ORDER BY min(_row), min(idx)"
    ).fetchall()
    names = [k for (k,) in found]
    every = [f"_s{i}" for i in range(len(names))]
    if names:
        paths = ", ".join(quote_literal("$." + _json_key(n)) for n in names)
        values = ", ".join(f"_v[{i + 1}] AS {a}" for i, a in enumerate(every))
        relation = (
            f"(SELECT _row, _raw, _parse_error, {values} FROM (SELECT *, CASE WHEN "
            f"_parse_error IS NULL THEN json_extract_string(_raw, [{paths}]) END AS _v "
            f"FROM {quote_ident(checked)}))"
        )
    else:
        first_bad = next(iter(con.execute(
            f"SELECT _row, _parse_error FROM {quote_ident(checked)} "
            "WHERE _parse_error IS NOT NULL ORDER BY _row LIMIT 1"
        ).fetchall()), None)
        if first_bad is not None:
            hint = "" if first_bad[1].startswith(("duplicate key", "an empty key")) else (
                "; is the file in the format its name says?")
            raise FileParseError(
                f"{source.path} (line {first_bad[0]}): cannot be read: no line is a usable JSON "
                f"object (line {first_bad[0]}: {first_bad[1]}){hint}",
                path=str(source.path),
                position=f"line {first_bad[0]}",
            )
        raise FileParseError(f"{source.path}: holds no JSON record with a field (the file is "
                             "empty, or its objects are {}).",
                             path=str(source.path))
    return StagedSource(
        relation,
        params,
        {n: "VARCHAR" for n in names},
        text=True,
        label=str(source.path),
        has_raw=True,
        cleanup=cleanup,
        refs=dict(zip(names, every, strict=True)),
    )


def json_lines(con: duckdb.DuckDBPyConnection, path: Path, cleanup: list[str]) -> str:
    """Relation of the non-blank lines of a JSON-lines file: ``_row`` (the physical line),
    ``_raw`` and ``_perr`` (why DuckDB could not take the line, e.g. not UTF-8, too long).

    Each line is read as one text value, so a malformed line is one rejected row, not a failed
    file. The lines are read once into a temp table (named in ``cleanup``); the relation needs
    no parameters. Platform readers that read JSON lines can use it instead of a plain
    ``read_csv`` of the lines, which fails the whole file on one line that is not UTF-8.
    """
    rejects, scans, table = _name("line_rejects"), _name("line_scans"), _name("lines")
    cleanup.extend([rejects, scans, table])
    con.execute(
        f"CREATE TEMP TABLE {quote_ident(table)} AS SELECT _ord, _raw "
        f"FROM {_line_reader(rejects, scans)} WITH ORDINALITY AS _t(_raw, _ord)",
        {"path": str(path)},
    )
    refused = _rejected_lines(con, rejects)
    good = (
        f"SELECT _ord AS _row, _raw, NULL::VARCHAR AS _perr FROM {quote_ident(table)} "
        "WHERE _raw IS NOT NULL AND trim(_raw) <> ''"
    )
    if not refused:
        return f"({good})"
    # Refused lines never got a row number: shift the later lines past them, and add them.
    lines = [line for line, _, _ in refused]
    shift = " + ".join(
        f"(CASE WHEN _row > {line - i} THEN 1 ELSE 0 END)" for i, line in enumerate(lines, 1)
    ) if len(lines) <= 64 else (
        f"(SELECT count(*) FROM (SELECT unnest({lines}::BIGINT[]) AS r, "
        f"generate_subscripts({lines}::BIGINT[], 1) AS i) WHERE r - i < _row)"
    )
    values = ", ".join(
        f"({line}::BIGINT, {quote_literal(raw or '')}, {quote_literal(reason)})"
        for line, reason, raw in refused
    )
    return (
        f"(SELECT _row + {shift} AS _row, _raw, _perr FROM ({good}) UNION ALL "
        f"SELECT * FROM (VALUES {values}) AS _bad(_row, _raw, _perr))"
    )


#: The name platform readers (formats._common) already import.
_json_lines = json_lines


def _json_key(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --------------------------------------------------------------------------------------------
# Frames


def stage_frame(
    con: duckdb.DuckDBPyConnection, frame: Any, *, label: str, typed: bool = False
) -> StagedSource:
    """Register an in-memory Arrow table (or pandas frame) and stage it, rows numbered from 1.

    ``typed`` says the frame is the user's (its text columns are text by choice: see
    :attr:`StagedSource.typed_text`).

    Platform readers that must parse text in Python (e.g. KServe's event dumps) build an Arrow
    table with canonical column names and stage it here; the loader unregisters it afterwards.
    """
    name = _name("frame")
    table = frame if isinstance(frame, pa.Table) else pa.table(frame)
    names = list(table.column_names)
    every = [f"_s{i}" for i in range(len(names))]
    table = table.rename_columns(every).append_column(
        "_rownum", pa.array(np.arange(1, table.num_rows + 1, dtype=np.int64))
    )
    con.register(name, table)
    described = _describe_list(con, quote_ident(name), {})
    select = ", ".join(quote_ident(a) for a in every)
    relation = (
        f"(SELECT _rownum AS _row, NULL::VARCHAR AS _parse_error{', ' + select if select else ''} "
        f"FROM {quote_ident(name)})"
    )
    columns = {n: dtype for n, (_, dtype) in zip(names, described[:-1], strict=True)}
    categorical = tuple(n for n, f in zip(names, table.schema, strict=False)
                        if pa.types.is_dictionary(f.type))
    return StagedSource(relation, {}, columns, text=False, label=label, registered=[name],
                        refs=dict(zip(names, every, strict=True)), records=table.num_rows,
                        categorical=categorical, typed_text=typed)
