"""Execute a conversion plan: converted rows into their table, failed rows into ``rejects``.

The loader's own columns in the intermediate table get a prefix that no source column and no
target column starts with, so a user's column can never overwrite or feed one of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from toolkit.errors import FileParseError
from toolkit.load.convert import ColumnPlan, ConversionPlan
from toolkit.load.sources import StagedSource, _name, line_breaks
from toolkit.store.schema import CATALOG_TABLES, LOAD_ID, quote_ident, quote_literal

__all__ = ["WriteStats", "write"]

_REASONS = {
    "TIMESTAMP WITH TIME ZONE": "not a timestamp",
    "DOUBLE": "not a number",
    "INTEGER": "not an integer",
    "BIGINT": "not an integer",
    "BOOLEAN": "not a boolean",
    "JSON": "not JSON",
    "VARCHAR": "not text",
}


@dataclass(frozen=True)
class WriteStats:
    rows_read: int
    rows_loaded: int
    rows_rejected: int


def _prefix(staged: StagedSource, plan: ConversionPlan) -> str:
    """A name prefix that no column of the staged relation or the target starts with."""
    taken = [n.lower() for n in (*staged.columns, *staged.refs.values(),
                                 *(c.target for c in plan.columns))]
    prefix = "__w_"
    while any(name.startswith(prefix) for name in taken):
        prefix = "_" + prefix
    return prefix


def write(
    con: duckdb.DuckDBPyConnection, staged: StagedSource, plan: ConversionPlan, load_id: int
) -> WriteStats:
    """Write ``staged`` through ``plan`` inside the caller's transaction.

    Raises
    ------
    FileParseError
        When the source has records and not one of them could be parsed (the file is not what
        its name says), when a quote is never closed (the rest of a CSV file would be one
        value), or when the parsed records do not account for the records counted
        independently of the parser (:attr:`StagedSource.records`).
    """
    p = _prefix(staged, plan)
    converted = _name("converted")
    staged.cleanup.append(converted)
    con.execute(_converted_sql(converted, staged, plan, p), staged.params)

    structural = _csv_structural_rejects(con, staged)
    counts = con.execute(
        f"SELECT count(*), count_if(len({p}errors) = 0), count_if({p}perr IS NOT NULL) "
        f"FROM {converted}"
    ).fetchall()[0]
    staged_rows, good, unparsed = (int(c or 0) for c in counts)  # count_if of no rows is NULL
    if good == 0 and (unparsed + len(structural)) > 0 and unparsed + len(structural) == \
            staged_rows + len(structural):
        first, first_error = con.execute(
            f"SELECT {p}row, {p}perr FROM {converted} WHERE {p}perr IS NOT NULL "
            f"ORDER BY {p}row LIMIT 1"
        ).fetchall()[0] if unparsed else (None, None)
        failures = [(r[0], r[2]) for r in structural]
        if first is not None:
            failures.append((first, first_error))
        line, error = min(failures, key=lambda f: f[0])
        detail = " ".join(str(error).split())[:200] if error else "unreadable"
        raise FileParseError(
            f"{staged.label}: no record could be parsed (first failure at line {line}: "
            f"{detail}); is the file in the format its name says?",
            path=staged.label,
            position=f"line {line}",
        )
    rows_read, spanned = _check_records(con, staged, staged_rows + len(structural), structural)
    if spanned:
        plan.notes.append(f"quoted values continue onto {spanned} more line(s) (line breaks "
                          "inside quotes): each such record counts once")

    table_columns = [(i, c) for i, c in enumerate(plan.columns) if c.role == "table"]
    columns = ", ".join(quote_ident(c.target) for _, c in table_columns)
    values = ", ".join(f"{p}v{i}" for i, _ in table_columns)
    if plan.table in CATALOG_TABLES:
        con.execute(
            f"INSERT OR REPLACE INTO {quote_ident(plan.table)} ({columns}) "
            f"SELECT {values} FROM {converted} "
            f"WHERE len({p}errors) = 0"
        )
    else:
        con.execute(
            f"INSERT INTO {quote_ident(plan.table)} ({columns}, {LOAD_ID}) "
            f"SELECT {values}, ? FROM {converted} WHERE len({p}errors) = 0",
            [load_id],
        )
    if plan.inline_labels:
        role = {c.role: f"{p}v{i}" for i, c in enumerate(plan.columns)}
        request_id = next(f"{p}v{i}" for i, c in table_columns if c.target == "request_id")
        con.execute(
            f"INSERT INTO labels (request_id, label, labeled_at, {LOAD_ID}) "
            f"SELECT {request_id}, {role['label']}, {role.get('labeled_at', 'NULL')}, ? "
            f"FROM {converted} WHERE len({p}errors) = 0 AND {role['label']} IS NOT NULL",
            [load_id],
        )

    line = f"{p}row + $offset"
    if structural:
        # Lines DuckDB could not split never got a row number; shift the later rows past them.
        line = (
            f"{p}row + $offset + (SELECT count(*) FROM (SELECT unnest($lines::BIGINT[]) AS r, "
            f"generate_subscripts($lines::BIGINT[], 1) AS i) WHERE r - $offset - i < {p}row)"
        )
    con.execute(
        f"INSERT INTO rejects SELECT $load_id, $file, {line}, {p}errors[1].column, "
        f"array_to_string(list_transform({p}errors, lambda e: coalesce(e.column || ': ', '') || "
        f"e.reason), '; '), {p}raw FROM {converted} WHERE len({p}errors) > 0",
        {
            "load_id": load_id,
            "file": staged.label,
            "offset": staged.line_offset,
            **({"lines": [r[0] for r in structural]} if structural else {}),
        },
    )
    for line_no, column, reason, raw, _ in structural:
        con.execute(
            "INSERT INTO rejects VALUES (?, ?, ?, ?, ?, ?)",
            [load_id, staged.label, line_no, column, reason, raw],
        )
    rejected = staged_rows - good + len(structural)
    return WriteStats(rows_read, good, rejected)


def _check_records(
    con: duckdb.DuckDBPyConnection,
    staged: StagedSource,
    parsed: int,
    structural: list[tuple[int, str | None, str, str | None, int]],
) -> tuple[int, int]:
    """Rows read, counted independently of the parser, and the lines that quoted values
    continue onto; refuse a source the parser lost records of.

    For a CSV file the count is its non-blank physical lines after the header: each record
    the parser returned or refused accounts for its lines (a quoted value may span several).
    """
    unterminated = [r for r in structural if "unquoted value" in r[2] and r[4] > 0]
    if unterminated:
        line, column, _, _, _ = unterminated[0]
        raise FileParseError(
            f"{staged.label} (line {line}): a quote opened in column {column or '?'} is never "
            "closed, so the rest of the file would be read as one value; close or remove that "
            "quote. Nothing was loaded from this file.",
            path=staged.label,
            position=f"line {line}",
        )
    if staged.records is None or staged.records == parsed:
        return parsed, 0
    spanned = 0
    if staged.csv_rejects is not None and staged.records > parsed:
        spanned = line_breaks(con, staged) + sum(r[4] for r in structural)
    if staged.records == parsed + spanned:
        return parsed, spanned
    first = min((r[0] for r in structural), default=None)
    where = f" (line {first})" if first is not None else ""
    raise FileParseError(
        f"{staged.label}{where}: the file holds {staged.records} record(s) but only "
        f"{parsed} could be read as such (broken quoting or line breaks?); nothing was loaded "
        "from this file.",
        path=staged.label,
        position=f"line {first}" if first is not None else None,
    )


def _converted_sql(name: str, staged: StagedSource, plan: ConversionPlan, p: str) -> str:
    sources = ", ".join(dict.fromkeys(staged.ref(c) for c in staged.columns))
    raw = ", _raw" if staged.has_raw else ""
    raw += ", _parse_column" if staged.error_column else ""
    inner_values = ", ".join(f"{c.expr} AS {p}v{i}" for i, c in enumerate(plan.columns))
    inner = (
        f"SELECT _row, _parse_error{raw}{', ' + sources if sources else ''}"
        f"{', ' + inner_values if inner_values else ''} FROM {staged.relation}"
    )
    checks = [check for i, c in enumerate(plan.columns) if (check := _check(c, f"{p}v{i}"))]
    error_list = (
        f"list_filter([{', '.join(checks)}], lambda x: x IS NOT NULL)"
        if checks
        else "[]::STRUCT(\"column\" VARCHAR, reason VARCHAR)[]"
    )
    errors = (
        "CASE WHEN _parse_error IS NOT NULL THEN "
        f"[{{'column': {'_parse_column' if staged.error_column else 'NULL'}::VARCHAR, "
        "'reason': _parse_error}] "
        f"ELSE {error_list} END"
    )
    outputs = "".join(f"{p}v{i}, " for i in range(len(plan.columns)))
    return (
        f"CREATE TEMP TABLE {name} AS SELECT {outputs}_row AS {p}row, _parse_error AS {p}perr, "
        f"{p}errors, CASE WHEN len({p}errors) > 0 THEN {staged.raw_expr()} END AS {p}raw "
        f"FROM (SELECT *, {errors} AS {p}errors FROM ({inner}))"
    )


def _check(column: ColumnPlan, value: str) -> str | None:
    """SQL of the error (column, reason) a row gets for ``column``, or NULL."""
    display = quote_literal(column.target)
    reason = quote_literal(column.reason or _REASONS.get(column.dtype, f"not {column.dtype}"))
    conditions = []
    if column.source is not None:
        present = column.present or f"{column.source} IS NOT NULL"
        conditions.append(
            f"WHEN {present} AND {value} IS NULL "
            f"THEN {{'column': {display}, 'reason': {reason}}}"
        )
    if column.required:
        conditions.append(
            f"WHEN {value} IS NULL THEN {{'column': {display}, "
            "'reason': 'required value is missing'}"
        )
    return f"CASE {' '.join(conditions)} END" if conditions else None


def _csv_structural_rejects(
    con: duckdb.DuckDBPyConnection, staged: StagedSource
) -> list[tuple[int, str | None, str, str | None, int]]:
    """Lines DuckDB's CSV reader could not split (too many or too few fields, bad quoting):
    (line, column, reason, raw text, extra physical lines the record spans)."""
    if staged.csv_rejects is None:
        return []
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [staged.csv_rejects]
    ).fetchall()[0][0]
    if not exists:
        return []
    rows = con.execute(
        f"SELECT line, any_value(column_name ORDER BY column_idx), "
        f"string_agg(DISTINCT lower(error_type), '; '), any_value(csv_line), "
        "max(len(regexp_extract_all(trim(csv_line, chr(13) || chr(10)), '\\r\\n|\\r|\\n'))) "
        f"FROM {staged.csv_rejects} GROUP BY line ORDER BY line"
    ).fetchall()
    names = {v: k for k, v in staged.refs.items()}
    return [(int(line), names.get(column, column), f"malformed CSV line ({kind})", raw,
             int(extra or 0))
            for line, column, kind, raw, extra in rows]
