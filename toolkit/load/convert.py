"""Plan the conversion of a staged source into a canonical table, as SQL expressions.

Every value is converted by DuckDB with ``TRY_CAST``-style expressions; a record whose non-empty
value fails to convert, or that lacks a required value, is collected with the reason and goes to
``rejects`` instead of the table.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import PurePath

import duckdb

from toolkit.errors import MappingError, SchemaMismatchError
from toolkit.load.discover import strip_suffix
from toolkit.load.mapping import COARSE_UNITS, DURATION_UNITS, EPOCH_UNITS, ColumnSpec, Mapping
from toolkit.load.sources import StagedSource
from toolkit.store.schema import (
    FEATURE_TABLES,
    LOAD_ID,
    REQUIRED,
    TASKS,
    canonical_columns,
    quote_literal,
)

__all__ = ["ColumnPlan", "ConversionPlan", "plan_conversion", "convert_expr", "present_expr"]

_NUMERIC = (
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
    "UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "REAL",
)  # fmt: skip
_FLOATS = ("FLOAT", "DOUBLE", "REAL")
#: Where the extra columns of a table go: folded into a JSON column, or dropped.
_FOLD_INTO = {"events": "detail", "metrics": "labels"}
#: Columns that are class labels: integral numbers are written without a decimal part.
_CLASS_COLUMNS = ("label", "prediction")
#: Request columns that are never features (in a reference file they are left out).
_REQUEST_CORE = tuple(canonical_columns("requests"))
#: Columns of a requests file that also fill ``labels`` (ground truth logged inline).
_INLINE_LABELS = ("label", "labeled_at")


@dataclass(frozen=True)
class ColumnPlan:
    """How one target column is produced.

    Attributes
    ----------
    target
        Column of the target table.
    dtype
        Its DuckDB type.
    expr
        SQL computing the converted value from the staged source.
    source
        SQL of the source value (``None`` when the value is derived, e.g. a synthesized id).
    required
        Whether a row without a value is rejected.
    role
        ``table`` (a column of the target table), ``label`` / ``labeled_at`` (ground truth
        logged inline with a request, written to ``labels``).
    present
        SQL that is true when the source holds a value (by default: it is not NULL); a present
        value that converts to NULL rejects the row. ``nan`` is no value for a number, and an
        empty text no value for a code such as ``status``.
    reason
        Why a present value that converts to NULL is rejected (default: from the type).
    """

    target: str
    dtype: str
    expr: str
    source: str | None
    required: bool = False
    role: str = "table"
    present: str | None = None
    reason: str | None = None


@dataclass
class ConversionPlan:
    """Everything needed to write one staged source into its table."""

    table: str
    columns: list[ColumnPlan]
    new_features: dict[str, str] = field(default_factory=dict)  # name -> kind
    feature_units: dict[str, str] = field(default_factory=dict)
    inline_labels: bool = False
    notes: list[str] = field(default_factory=list)


def plan_conversion(
    con: duckdb.DuckDBPyConnection,
    staged: StagedSource,
    table: str,
    mapping: Mapping | None,
) -> ConversionPlan:
    """Decide, for every source column, which target column it feeds and how it is converted.

    Raises
    ------
    MappingError
        A per-table mapping entry names a source column the file does not have.
    SchemaMismatchError
        The file lacks a column the table requires (other than a request id, which is
        synthesized from the file and row when the column is absent).
    """
    canonical = canonical_columns(table)
    specs = mapping.columns_for(table) if mapping else {}
    strict = mapping.strict_columns_for(table) if mapping else set()
    drop = set(mapping.drop) if mapping else set()
    source_types = staged.columns
    where = staged.label

    constants = {t: spec.value for t, spec in specs.items() if spec.source is None}
    specs = {t: spec for t, spec in specs.items() if spec.source is not None}
    for target in strict:
        if target in specs and specs[target].source not in source_types:
            raise MappingError(
                f"{where}: the mapping takes {target} from column {specs[target].source!r}, "
                f"which is not there. Columns: {', '.join(source_types) or '(none)'}.",
                path=where,
            )

    # source column -> (target name, unit)
    assigned: dict[str, tuple[str, str | None]] = {}
    spec_of: dict[str, ColumnSpec] = {}
    for target, spec in specs.items():
        if spec.source in source_types and spec.source not in drop:
            assigned[spec.source] = (target, spec.unit)
            spec_of[spec.source] = spec
    for name in source_types:
        if name in assigned or name in drop:
            continue
        if name in canonical and name not in {t for t, _ in assigned.values()}:
            assigned[name] = (name, None)
    # DuckDB names are case-insensitive: `TS` is the `ts` column when the file has no `ts`
    by_lower = {c.lower(): c for c in canonical}
    for name in source_types:
        if name in assigned or name in drop or name.lower() not in by_lower:
            continue
        target = by_lower[name.lower()]
        if target not in {t for t, _ in assigned.values()}:
            assigned[name] = (target, None)

    plan = ConversionPlan(table, [], notes=list(staged.notes))
    taken = set()
    for target, value in constants.items():
        if target in canonical and target not in {t for t, _ in assigned.values()}:
            taken.add(target)
            plan.columns.append(
                ColumnPlan(target, canonical[target],
                           convert_expr(quote_literal(value), "VARCHAR", canonical[target],
                                        target=target), None)
            )
    for source, (target, unit) in assigned.items():
        if target in canonical:
            taken.add(target)
            spec = spec_of.get(source, ColumnSpec(source, unit))
            plan.columns.append(
                _canonical_plan(staged, source, target, canonical[target], unit, table, spec)
            )
            if spec.values:
                _note_unmapped(con, staged, plan, source, target, spec.values)
            if spec.origin:
                plan.notes.append(f"{target} is {source} ({unit}) after {spec.origin}")
            if (unit in EPOCH_UNITS and not spec.origin
                    and canonical[target].startswith("TIMESTAMP")):
                _note_early_epochs(con, staged, plan, source, target, unit)
            if unit in COARSE_UNITS:
                plan.notes.append(f"{target} from the {unit} column {source}: each row at the "
                                  f"start of its {unit}, UTC")

    _add_missing_required(plan, staged, table, taken)
    _add_status_fallback(plan, staged, table, taken, assigned)

    extras = {
        source: target
        for source, (target, _) in assigned.items()
        if target not in canonical
    }
    extras.update(
        {name: name for name in source_types if name not in assigned and name not in drop}
    )
    partitions = sorted(s for s in extras if s in staged.partitions)
    if partitions:
        plan.notes.append("hive partition key(s) not loaded: " + ", ".join(partitions))
        extras = {s: t for s, t in extras.items() if s not in staged.partitions}
    if table in FEATURE_TABLES:
        _check_names(staged, [c.target for c in plan.columns] + [
            t for t in extras.values() if t not in _REQUEST_CORE and t not in _INLINE_LABELS
        ])
        ids = set(mapping.ids) if mapping else set()
        left = sorted(s for s in extras if s in ids)
        if left:
            plan.notes.append("id column(s) not catalogued as features: " + ", ".join(left))
            extras = {s: t for s, t in extras.items() if s not in ids}
        units = {s: u for s, (_, u) in assigned.items() if u == "percent"}
        _plan_features(con, staged, table, plan, extras, mapping, units)
    elif table in _FOLD_INTO and extras:
        _fold_extras(plan, staged, _FOLD_INTO[table], extras)
    elif extras:
        plan.notes.append(
            f"ignored column(s) not in {table}: " + ", ".join(sorted(extras.values()))
        )
    return plan


def _check_names(staged: StagedSource, targets: list[str]) -> None:
    """Refuse column names that DuckDB cannot keep apart (case) or that the loader reserves."""
    for target in targets:
        if target == "":
            raise SchemaMismatchError(
                f"{staged.label}: a column has an empty name, which DuckDB cannot store; name "
                "it (or drop it) before loading.",
                path=staged.label,
            )
        if target.lower() == LOAD_ID:
            raise SchemaMismatchError(
                f"{staged.label}: column {target!r} is reserved for provenance ({LOAD_ID}); "
                "rename it with a mapping file (--mapping) or drop it (drop = [...]).",
                path=staged.label,
            )
    seen: dict[str, str] = {}
    for target in targets:
        other = seen.setdefault(target.lower(), target)
        if other != target:
            raise SchemaMismatchError(
                f"{staged.label}: columns {other!r} and {target!r} differ only in case, and "
                "DuckDB column names are case-insensitive; rename or drop one with a mapping "
                "file (--mapping).",
                path=staged.label,
            )


def _note_unmapped(
    con: duckdb.DuckDBPyConnection, staged: StagedSource, plan: ConversionPlan, source: str,
    target: str, values: dict[str, str],
) -> None:
    """Count the rows whose value the mapping's ``values`` does not list (kept as they are)."""
    text = f"CAST({staged.ref(source)} AS VARCHAR)"
    keys = ", ".join(quote_literal(k) for k in values)
    rows = con.execute(
        f"SELECT {text} AS v, count(*) AS n FROM {staged.relation} "
        f"WHERE {text} IS NOT NULL AND {text} NOT IN ({keys}) GROUP BY v ORDER BY n DESC, v",
        staged.params,
    ).fetchall()
    if rows:
        shown = ", ".join(f"{v!r} ({n})" for v, n in rows[:5]) + (" ..." if len(rows) > 5 else "")
        plan.notes.append(f"{sum(n for _, n in rows)} row(s) with {source} values the mapping "
                          f"does not list, kept as they are in {target}: {shown}")


def _note_early_epochs(
    con: duckdb.DuckDBPyConnection, staged: StagedSource, plan: ConversionPlan, source: str,
    target: str, unit: str,
) -> None:
    """Flag epoch values before 1973-03-03 under a declared unit: relative times or years read
    as epochs land in 1970, which the mapping's author rarely means (an ``origin`` says)."""
    value = f"TRY_CAST({staged.ref(source)} AS DOUBLE)"
    (early,) = con.execute(
        f"SELECT count(*) FROM {staged.relation} "
        f"WHERE abs({value} * {EPOCH_UNITS[unit]!r}) < 1e14",
        staged.params,
    ).fetchone()
    if early:
        plan.notes.append(
            f"{early} row(s) of {source} ({unit}) fall before 1973-03-03 as epoch times: if they "
            f"are relative to a start, declare it ({target} = {{ ..., origin = \"...\" }})")


def _mapped_values(src: str, values: dict[str, str]) -> str:
    """``src`` as text with the mapping's values replaced (others kept)."""
    text = f"CAST({src} AS VARCHAR)"
    cases = " ".join(f"WHEN {quote_literal(k)} THEN {quote_literal(v)}" for k, v in values.items())
    return f"(CASE {text} {cases} ELSE {text} END)"


def _http_status_expr(code: str) -> str:
    """``ok`` / ``timeout`` / ``error`` from an HTTP status code (NULL when there is none)."""
    return (
        f"CASE WHEN ({code}) IS NULL THEN NULL WHEN ({code}) IN (408, 504) THEN 'timeout' "
        f"WHEN ({code}) < 400 THEN 'ok' ELSE 'error' END"
    )


def _canonical_plan(
    staged: StagedSource, source: str, target: str, target_type: str, unit: str | None,
    table: str, spec: ColumnSpec | None = None,
) -> ColumnPlan:
    src = staged.ref(source)
    source_type = staged.columns[source]
    if spec is not None and spec.values:
        src, source_type = _mapped_values(src, spec.values), "VARCHAR"
    origin = spec.origin if spec is not None else None
    expr = convert_expr(src, source_type, target_type, target=target, unit=unit, origin=origin)
    if target == "status" and target_type == "VARCHAR":
        # a status column holding HTTP codes: the code says ok / timeout / error
        text = f"trim(CAST({src} AS VARCHAR))"
        code = f"TRY_CAST(TRY_CAST({text} AS DOUBLE) AS INTEGER)"
        expr = (f"CASE WHEN regexp_full_match({text}, '[1-5][0-9][0-9](\\.0+)?') "
                f"THEN {_http_status_expr(code)} ELSE {expr} END")
    required = target in REQUIRED[table]
    reason = None
    base = source_type.split("(")[0].upper()
    if (target_type.startswith("TIMESTAMP") and unit is None and origin is None
            and (base in _NUMERIC or base.startswith("DECIMAL"))):
        reason = ("not a timestamp (a number below 1e8 is no epoch time: declare its unit, "
                  "e.g. year, or an origin in a mapping)")
    if table == "features" and target == "kind":
        # the catalog's CHECK constraint: anything else is a rejected row, not a failed file
        expr = f"CASE WHEN ({expr}) IN ('numeric', 'categorical') THEN ({expr}) END"
        reason = "not 'numeric' or 'categorical'"
    if table == "endpoints" and target == "task":
        tasks = ", ".join(quote_literal(t) for t in TASKS)
        expr = f"CASE WHEN lower(trim({expr})) IN ({tasks}) THEN lower(trim({expr})) END"
        reason = "not one of " + ", ".join(TASKS)
    return ColumnPlan(target, target_type, expr, src, required,
                      present=present_expr(src, source_type, target_type, target=target),
                      reason=reason)


def _add_missing_required(
    plan: ConversionPlan, staged: StagedSource, table: str, taken: set[str]
) -> None:
    missing = [c for c in REQUIRED[table] if c not in taken]
    if table == "requests" and "request_id" in missing:
        # Traces without ids (e.g. public latency traces) still load: the id is the source
        # and the row, which is stable across re-loads of the same file.
        prefix = quote_literal(_id_prefix(staged.label) + ":")
        plan.columns.append(
            ColumnPlan("request_id", "VARCHAR", f"{prefix} || CAST(_row AS VARCHAR)", None)
        )
        plan.notes.append("no request_id column: ids synthesized as <file>:<row>")
        missing.remove("request_id")
    if missing:
        raise SchemaMismatchError(
            f"{staged.label}: table {table} needs column(s) {', '.join(missing)}, which the "
            f"source lacks. Columns: {', '.join(staged.columns) or '(none)'}. Rename them with "
            "a mapping file (--mapping).",
            path=staged.label,
        )


def _add_status_fallback(
    plan: ConversionPlan,
    staged: StagedSource,
    table: str,
    taken: set[str],
    assigned: dict[str, tuple[str, str | None]],
) -> None:
    """Derive ``requests.status`` from the HTTP status or error type when it is absent."""
    if table != "requests" or "status" in taken:
        return
    by_target = {target: source for source, (target, _) in assigned.items()}
    if "http_status" in by_target:
        code = convert_expr(
            staged.ref(by_target["http_status"]),
            staged.columns[by_target["http_status"]],
            "INTEGER",
            target="http_status",
        )
        expr = _http_status_expr(code)
    elif "error_type" in by_target:
        expr = f"CASE WHEN {staged.ref(by_target['error_type'])} IS NULL THEN 'ok' ELSE 'error' END"
    else:
        return
    plan.columns.append(ColumnPlan("status", "VARCHAR", expr, None))
    plan.notes.append("status derived from " + ("http_status" if "http_status" in by_target
                                                else "error_type"))


def _fold_extras(
    plan: ConversionPlan, staged: StagedSource, into: str, extras: dict[str, str]
) -> None:
    """Keep extra event / metric columns as keys of ``detail`` / ``labels`` (nothing dropped)."""
    pairs = ", ".join(
        f"{quote_literal(target)}, "
        + convert_expr(staged.ref(source), staged.columns[source], "JSON", target=None)
        for source, target in extras.items()
    )
    folded = f"json_object({pairs})"
    for i, column in enumerate(plan.columns):
        if column.target == into:
            expr = f"json_merge_patch(coalesce({column.expr}, '{{}}'::JSON), {folded})"
            plan.columns[i] = ColumnPlan(into, column.dtype, expr, column.source,
                                         present=column.present)
            break
    else:
        plan.columns.append(ColumnPlan(into, "JSON", folded, None))
    plan.notes.append(
        f"folded {len(extras)} extra column(s) into {into}: " + ", ".join(sorted(extras.values()))
    )


def _plan_features(
    con: duckdb.DuckDBPyConnection,
    staged: StagedSource,
    table: str,
    plan: ConversionPlan,
    extras: dict[str, str],
    mapping: Mapping | None,
    units: dict[str, str] | None = None,
) -> None:
    units = units or {}
    left_out = sorted(t for t in extras.values() if t in _REQUEST_CORE or t in _INLINE_LABELS)
    if table == "reference" and left_out:
        plan.notes.append("left out request columns in reference: " + ", ".join(left_out))
    features = {s: t for s, t in extras.items() if t not in _REQUEST_CORE}
    features = {s: t for s, t in features.items() if not (table == "reference" and
                                                            t in _INLINE_LABELS)}
    if table == "requests":
        for source, target in list(features.items()):
            if target in _INLINE_LABELS:
                # ground truth logged inline with the request: goes to `labels` too
                dtype = "VARCHAR" if target == "label" else "TIMESTAMPTZ"
                src = staged.ref(source)
                plan.columns.append(
                    ColumnPlan(
                        target,
                        dtype,
                        convert_expr(src, staged.columns[source], dtype, target=target),
                        src,
                        role=target,
                        present=present_expr(src, staged.columns[source], dtype, target=target),
                    )
                )
                plan.inline_labels = True
                del features[source]
    if not features:
        return
    declared = mapping.features if mapping else {}
    table_types = {
        name: dtype
        for name, dtype in con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() "
            "WHERE schema_name = 'main' AND table_name = ?",
            [table],
        ).fetchall()
    }
    catalog = dict(con.execute("SELECT name, kind FROM features").fetchall())
    # a feature already in the table under another case is that column (DuckDB names are
    # case-insensitive): keep its spelling, so the catalog has one entry for it
    spelled = {name.lower(): name for name in [*table_types, *catalog]}
    features = {s: spelled.get(t.lower(), t) for s, t in features.items()}
    unknown = [
        s for s, t in features.items()
        if t not in table_types and t not in catalog and "kind" not in declared.get(t, {})
    ]
    inferred = _infer_kinds(con, staged, unknown)
    for source, target in features.items():
        if target in table_types:
            kind = "numeric" if table_types[target] == "DOUBLE" else "categorical"
        elif target in catalog:
            kind = catalog[target]
        elif "kind" in declared.get(target, {}):
            kind = declared[target]["kind"]
        else:
            kind = inferred[source]
        dtype = "DOUBLE" if kind == "numeric" else "VARCHAR"
        src = staged.ref(source)
        expr = convert_expr(src, staged.columns[source], dtype, target=None,
                            unit=units.get(source))
        if units.get(source) == "percent" and "unit" not in declared.get(target, {}):
            plan.feature_units[target] = "fraction"
        plan.columns.append(ColumnPlan(
            target, dtype, expr, src,
            present=present_expr(src, staged.columns[source], dtype, target=None),
        ))
        if target not in table_types:
            plan.new_features[target] = kind
        if "unit" in declared.get(target, {}):
            plan.feature_units[target] = declared[target]["unit"]


#: A text column of a typed source (a user's frame's strings) whose values are all integers and take at
#: most this many distinct values is a code ('1', '2'), not a quantity.
MAX_CODE_VALUES = 20


def _infer_kinds(
    con: duckdb.DuckDBPyConnection, staged: StagedSource, sources: list[str]
) -> dict[str, str]:
    """Numeric or categorical, from the source type and the values.

    The rule: a column whose source type says categories (a pandas ``category``, an Arrow
    dictionary) is categorical, whatever its values. A number or boolean column is numeric. A
    text column is numeric only when at least 98% of its non-empty values parse as numbers,
    none has a leading zero (``02139`` is an identifier, not a quantity), and, when the
    source is typed (a frame, whose text columns are text by choice), it is not a
    low-cardinality code: integers only, with at most :data:`MAX_CODE_VALUES` distinct values
    (``'1'``, ``'2'``). In text formats (CSV, JSON lines, platform payloads) every value
    arrives as text, so that last test does not apply there. The rest of a numeric column's values are rejected as
    unconvertible. A column with no values at all is numeric.
    """
    kinds: dict[str, str] = {s: "categorical" for s in sources if s in staged.categorical}
    sources = [s for s in sources if s not in kinds]
    text = [s for s in sources if staged.text or staged.columns[s] == "VARCHAR"]
    for source in sources:
        if source in text:
            continue
        base = staged.columns[source].split("(")[0]
        kinds[source] = "numeric" if base in _NUMERIC or base == "BOOLEAN" or \
            base.startswith("DECIMAL") else "categorical"
    if not text:
        return kinds
    parts = []
    for i, source in enumerate(text):
        col = staged.ref(source)
        parts.append(
            f"count({col}) AS n{i}, count(TRY_CAST({col} AS DOUBLE)) AS x{i}, "
            f"count_if(regexp_matches({col}, '^\\s*[+-]?0[0-9]')) AS z{i}, "
            f"count_if(regexp_full_match(trim({col}), '[+-]?[0-9]+')) AS k{i}, "
            f"count(DISTINCT CASE WHEN regexp_full_match(trim({col}), '[+-]?[0-9]+') "
            f"THEN trim({col}) END) AS d{i}"
        )
    row = con.execute(f"SELECT {', '.join(parts)} FROM {staged.relation}", staged.params).fetchall()[0]
    for i, source in enumerate(text):
        n, x, z, k, d = row[5 * i: 5 * i + 5]
        numeric = n == 0 or (x >= 0.98 * n and z == 0)
        code = staged.typed_text and n > 0 and k == n and d <= MAX_CODE_VALUES
        kinds[source] = "numeric" if numeric and not code else "categorical"
    return kinds


def convert_expr(
    src: str, source_type: str, target_type: str, *, target: str | None, unit: str | None = None,
    origin: str | None = None,
) -> str:
    """SQL that converts ``src`` (of ``source_type``) to ``target_type``; NULL when it cannot.

    Examples
    --------
    >>> convert_expr('"t"', "BIGINT", "TIMESTAMP WITH TIME ZONE", target="ts", unit="ms")
    'TRY_CAST(make_timestamp(TRY_CAST(round(CAST("t" AS DOUBLE) * 1000.0) AS BIGINT)) AS TIMESTAMPTZ)'
    """
    base = source_type.split("(")[0].upper()
    numeric = base in _NUMERIC or base.startswith("DECIMAL")
    if target_type.startswith("TIMESTAMP"):
        return _timestamp_expr(src, base, numeric, unit, origin)
    if target_type == "DOUBLE":
        scale = DURATION_UNITS.get(unit or "ms", 1.0) if (target or "").endswith("_ms") else 1.0
        if unit == "percent":
            scale = 0.01
        if numeric:
            value = f"CAST({src} AS DOUBLE)"
        elif base == "BOOLEAN":
            value = f"CAST(CAST({src} AS INTEGER) AS DOUBLE)"
        else:
            value = f"TRY_CAST({src} AS DOUBLE)"
        value = value if scale == 1.0 else f"({value} * {scale!r})"
        if numeric and base not in _FLOATS:
            return value
        # NaN is "no value" (as Prometheus means it): NULL, so aggregates skip it
        return f"CASE WHEN {_isnan(value)} THEN NULL ELSE {value} END"
    if target_type in ("INTEGER", "BIGINT"):
        if numeric:
            return f"TRY_CAST({src} AS {target_type})"
        return (
            f"coalesce(TRY_CAST({src} AS {target_type}), "
            f"TRY_CAST(TRY_CAST({src} AS DOUBLE) AS {target_type}))"
        )
    if target_type == "BOOLEAN":
        if numeric:
            return f"({src} <> 0)"
        return f"TRY_CAST({src} AS BOOLEAN)"
    if target_type == "JSON":
        if base in ("VARCHAR", "JSON"):
            return f"CASE WHEN json_valid({src}) THEN CAST({src} AS JSON) ELSE to_json({src}) END"
        return f"to_json({src})"
    if target_type == "VARCHAR":
        if base in _FLOATS or base.startswith("DECIMAL"):
            return (
                f"CASE WHEN {src} = trunc({src}) AND abs({src}) < 1e15 "
                f"THEN CAST(CAST({src} AS BIGINT) AS VARCHAR) ELSE CAST({src} AS VARCHAR) END"
            )
        if base == "VARCHAR" and target in _CLASS_COLUMNS:
            number = f"TRY_CAST({src} AS DOUBLE)"
            return (
                f"CASE WHEN {number} = trunc({number}) AND abs({number}) < 1e15 AND NOT "
                f"regexp_matches({src}, '^\\s*[+-]?0[0-9]') "
                f"THEN CAST(CAST({number} AS BIGINT) AS VARCHAR) ELSE {src} END"
            )
        if base == "VARCHAR" and target in ("status", "kind", "artifact"):
            return f"nullif(lower(trim({src})), '')"
        if base == "VARCHAR":
            return src
        return f"CAST({src} AS VARCHAR)"
    return f"TRY_CAST({src} AS {target_type})"


def present_expr(src: str, source_type: str, target_type: str, *, target: str | None) -> str:
    """SQL that is true when ``src`` holds a value for ``target_type``.

    A present value that converts to NULL rejects its row; an absent one is a NULL. ``nan``
    is absent for a number (it loads as NULL), an empty or blank text absent for a code.

    Examples
    --------
    >>> present_expr('"x"', "DOUBLE", "DOUBLE", target=None)
    '("x" IS NOT NULL AND NOT isnan(["x"][1]))'
    """
    base = source_type.split("(")[0].upper()
    if target_type == "DOUBLE" and base in _FLOATS:
        return f"({src} IS NOT NULL AND NOT {_isnan(src)})"
    if target_type == "DOUBLE" and base in ("VARCHAR", "JSON"):
        return f"({src} IS NOT NULL AND lower(trim({src})) NOT IN ('nan', '+nan', '-nan'))"
    if target_type == "VARCHAR" and base == "VARCHAR" and target in ("status", "kind", "artifact"):
        return f"(nullif(trim({src}), '') IS NOT NULL)"
    return f"({src} IS NOT NULL)"


def _isnan(value: str) -> str:
    """``isnan`` that DuckDB cannot fold away: Parquet min/max statistics leave NaN out, and
    DuckDB 2.0 folds ``isnan(col)`` to false from them (a column of 0.0 and NaN reads as
    "no NaN"); a one-element list carries no statistics."""
    return f"isnan([{value}][1])"


#: Largest UTC offset accepted in a timestamp text, in minutes (as java.time: +-18:00).
MAX_OFFSET_MINUTES = 18 * 60
#: A trailing UTC offset after a time of day: ``12:00:00.5+05:30``, ``12:00-0800``.
_OFFSET = r"\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*([+-])(\d{2})(?::?(\d{2}))?\s*$"


def _offset_out_of_range(src: str) -> str:
    hours = f"TRY_CAST(regexp_extract({src}, '{_OFFSET}', 2) AS INTEGER)"
    minutes = f"coalesce(TRY_CAST(nullif(regexp_extract({src}, '{_OFFSET}', 3), '') AS INTEGER), 0)"
    return (
        f"(regexp_matches({src}, '{_OFFSET}') AND "
        f"({hours} * 60 + {minutes} > {MAX_OFFSET_MINUTES} OR {minutes} > 59))"
    )


def _timestamp_expr(
    src: str, base: str, numeric: bool, unit: str | None, origin: str | None = None
) -> str:
    if base in ("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ"):
        return src
    if base.startswith("TIMESTAMP") or base == "DATE":
        return f"CAST({src} AS TIMESTAMPTZ)"
    if unit in COARSE_UNITS:
        return _coarse_expr(src, unit)
    if origin is not None:
        value = f"TRY_CAST({src} AS DOUBLE)"
        micros = f"TRY_CAST(round({value} * {EPOCH_UNITS[unit]!r}) AS BIGINT)"
        return (f"TRY_CAST(CAST({quote_literal(origin)} AS TIMESTAMPTZ) "
                f"+ to_microseconds({micros}) AS TIMESTAMPTZ)")
    if numeric:
        return _epoch_expr(f"CAST({src} AS DOUBLE)", unit)
    if unit in EPOCH_UNITS:
        return _epoch_expr(f"TRY_CAST({src} AS DOUBLE)", unit)
    # DuckDB takes any offset (-25:00 too): one beyond +-18:00 is not a timestamp
    iso = f"CASE WHEN {_offset_out_of_range(src)} THEN NULL ELSE TRY_CAST({src} AS TIMESTAMPTZ) END"
    if unit == "iso":
        return iso
    return f"coalesce({iso}, {_epoch_expr(f'TRY_CAST({src} AS DOUBLE)', None)})"


def _coarse_expr(src: str, unit: str) -> str:
    """The start of a year (``2019``), month (``2019-03``, ``201903``) or day (``2019-03-07``,
    ``20190307``) as a UTC timestamp; NULL for anything else."""
    text = f"regexp_replace(trim(CAST({src} AS VARCHAR)), '\\.0+$', '')"
    if unit == "year":
        day = f"CASE WHEN regexp_full_match({text}, '[0-9]{{4}}') THEN {text} || '-01-01' END"
    elif unit == "month":
        day = (f"CASE WHEN regexp_full_match({text}, '[0-9]{{4}}-[0-9]{{1,2}}') "
               f"THEN {text} || '-01' WHEN regexp_full_match({text}, '[0-9]{{6}}') "
               f"THEN substr({text}, 1, 4) || '-' || substr({text}, 5, 2) || '-01' END")
    else:
        day = (f"CASE WHEN regexp_full_match({text}, '[0-9]{{8}}') THEN substr({text}, 1, 4) "
               f"|| '-' || substr({text}, 5, 2) || '-' || substr({text}, 7, 2) "
               f"WHEN regexp_full_match({text}, '[0-9]{{4}}-[0-9]{{1,2}}-[0-9]{{1,2}}') "
               f"THEN {text} END")
    return f"TRY_CAST(TRY_CAST({day} AS DATE) AS TIMESTAMPTZ)"


def _epoch_expr(value: str, unit: str | None) -> str:
    if unit in EPOCH_UNITS:
        factor = f"{EPOCH_UNITS[unit]!r}"
    else:
        # below 1e8 (1973-03-03 as seconds) a number is a year or a relative time, not an
        # epoch: refused (NULL, so the row is rejected) rather than landing in 1970
        factor = (
            f"CASE WHEN abs({value}) < 1e8 THEN NULL "
            f"WHEN abs({value}) < 1e11 THEN 1e6 WHEN abs({value}) < 1e14 THEN 1e3 "
            f"WHEN abs({value}) < 1e17 THEN 1.0 ELSE 1e-3 END"
        )
    return (
        f"TRY_CAST(make_timestamp(TRY_CAST(round({value} * {factor}) AS BIGINT)) AS TIMESTAMPTZ)"
    )


def _id_prefix(label: str) -> str:
    """``part-0-1a2b3c`` for ``/x/y/part-0.parquet``: readable, and unique per path."""
    if label.startswith("<"):
        return label.strip("<>")
    digest = hashlib.sha1(label.encode("utf-8")).hexdigest()[:6]
    return f"{strip_suffix(PurePath(label).name)}-{digest}"
