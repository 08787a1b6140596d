"""Execute a conversion plan: converted rows into their table, failed rows into ``rejects``."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from toolkit.errors import FileParseError
from toolkit.load.convert import ConversionPlan
from toolkit.load.sources import StagedSource, _name
from toolkit.store.schema import LOAD_ID, quote_ident

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


def write(
    con: duckdb.DuckDBPyConnection, staged: StagedSource, plan: ConversionPlan, load_id: int
) -> WriteStats:
    """Write ``staged`` through ``plan`` inside the caller's transaction.

    Raises
    ------
    FileParseError
        When the source has records and not one of them could be parsed (the file is not what
        its name says).
    """
    converted = _name("converted")
    staged.cleanup.append(converted)
    con.execute(_converted_sql(converted, staged, plan), staged.params)

    structural = _csv_structural_rejects(con, staged)
    counts = con.execute(
        f"SELECT count(*), count_if(len(_errors) = 0), count_if(_parse_error IS NOT NULL) "
        f"FROM {converted}"
    ).fetchall()[0]
    staged_rows, good, unparsed = (int(c or 0) for c in counts)  # count_if of no rows is NULL
    if good == 0 and (unparsed + len(structural)) > 0 and unparsed + len(structural) == \
            staged_rows + len(structural):
        first = con.execute(
            f"SELECT min(_row) FROM {converted} WHERE _parse_error IS NOT NULL"
        ).fetchall()[0][0]
        line = min([r[0] for r in structural] + ([first] if first is not None else []))
        raise FileParseError(
            f"{staged.label}: no record could be parsed (first failure at line {line}); "
            "is the file in the format its name says?",
            path=staged.label,
            position=f"line {line}",
        )

    targets = [c.target for c in plan.columns if not c.target.startswith("__")]
    columns = ", ".join(quote_ident(t) for t in targets)
    if plan.table == "features":
        con.execute(
            f"INSERT OR REPLACE INTO features ({columns}) SELECT {columns} FROM {converted} "
            "WHERE len(_errors) = 0"
        )
    else:
        con.execute(
            f"INSERT INTO {quote_ident(plan.table)} ({columns}, {LOAD_ID}) "
            f"SELECT {columns}, ? FROM {converted} WHERE len(_errors) = 0",
            [load_id],
        )
    if plan.inline_labels:
        labeled_at = "__labeled_at" if any(c.target == "__labeled_at" for c in plan.columns) \
            else "NULL"
        con.execute(
            f"INSERT INTO labels (request_id, label, labeled_at, {LOAD_ID}) "
            f"SELECT request_id, __label, {labeled_at}, ? FROM {converted} "
            "WHERE len(_errors) = 0 AND __label IS NOT NULL",
            [load_id],
        )

    line = "_row + $offset"
    if structural:
        # Lines DuckDB could not split never got a row number; shift the later rows past them.
        line = (
            "_row + $offset + (SELECT count(*) FROM (SELECT unnest($lines::BIGINT[]) AS r, "
            "generate_subscripts($lines::BIGINT[], 1) AS i) WHERE r - $offset - i < _row)"
        )
    con.execute(
        f"INSERT INTO rejects SELECT $load_id, $file, {line}, _errors[1].column, "
        "array_to_string(list_transform(_errors, lambda e: coalesce(e.column || ': ', '') || "
        f"e.reason), '; '), _raw FROM {converted} WHERE len(_errors) > 0",
        {
            "load_id": load_id,
            "file": staged.label,
            "offset": staged.line_offset,
            **({"lines": [r[0] for r in structural]} if structural else {}),
        },
    )
    for line_no, column, reason, raw in structural:
        con.execute(
            "INSERT INTO rejects VALUES (?, ?, ?, ?, ?, ?)",
            [load_id, staged.label, line_no, column, reason, raw],
        )
    rejected = staged_rows - good + len(structural)
    return WriteStats(staged_rows + len(structural), good, rejected)


def _converted_sql(name: str, staged: StagedSource, plan: ConversionPlan) -> str:
    sources = ", ".join(quote_ident(c) for c in staged.columns)
    raw = ", _raw" if staged.has_raw else ""
    raw += ", _parse_column" if staged.error_column else ""
    inner_values = ", ".join(f"{c.expr} AS __c{i}" for i, c in enumerate(plan.columns))
    inner = (
        f"SELECT _row, _parse_error{raw}{', ' + sources if sources else ''}, {inner_values} "
        f"FROM {staged.relation}"
    )
    checks = []
    for i, column in enumerate(plan.columns):
        value = f"__c{i}"
        reason = _REASONS.get(column.dtype, f"not {column.dtype}")
        conditions = []
        if column.source is not None:
            conditions.append(
                f"WHEN {column.source} IS NOT NULL AND {value} IS NULL "
                f"THEN {{'column': '{_display(column.target)}', 'reason': '{reason}'}}"
            )
        if column.required:
            conditions.append(
                f"WHEN {value} IS NULL THEN {{'column': '{_display(column.target)}', "
                "'reason': 'required value is missing'}"
            )
        if conditions:
            checks.append(f"CASE {' '.join(conditions)} END")
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
    outputs = ", ".join(f"__c{i} AS {quote_ident(c.target)}" for i, c in enumerate(plan.columns))
    return (
        f"CREATE TEMP TABLE {name} AS SELECT {outputs}, _row, _parse_error, _errors, "
        f"CASE WHEN len(_errors) > 0 THEN {staged.raw_expr()} END AS _raw "
        f"FROM (SELECT *, {errors} AS _errors FROM ({inner}))"
    )


def _display(name: str) -> str:
    return name.lstrip("_").replace("'", "''")


def _csv_structural_rejects(
    con: duckdb.DuckDBPyConnection, staged: StagedSource
) -> list[tuple[int, str | None, str, str | None]]:
    """Lines DuckDB's CSV reader could not split (too many or too few fields, bad quoting)."""
    if staged.csv_rejects is None:
        return []
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [staged.csv_rejects]
    ).fetchall()[0][0]
    if not exists:
        return []
    rows = con.execute(
        f"SELECT line, any_value(column_name ORDER BY column_idx), "
        f"string_agg(DISTINCT lower(error_type), '; '), any_value(csv_line) "
        f"FROM {staged.csv_rejects} GROUP BY line ORDER BY line"
    ).fetchall()
    return [(int(line), column, f"malformed CSV line ({kind})", raw)
            for line, column, kind, raw in rows]
