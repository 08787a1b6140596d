"""The engines a case can run on: DuckDB (the embedded default) and Spark (through ibis).

Diagnostics reach the engine only through :class:`~toolkit.diagnose._case.CaseView`
(``case.engine``, ``case.table``, ``case.con``) and :class:`~toolkit.diagnose._engine.Recorder`;
this module is the only place that knows which engine runs.

* :class:`DuckDBEngine` runs today's SQL unchanged: ibis compiles to the DuckDB dialect and the
  DuckDB builtins declared in :mod:`~toolkit.diagnose._engine` (``histogram``, ``epoch_us``,
  ``quantile_cont`` with a list, ``list_select`` ...) keep their names.
* :class:`SparkEngine` runs on an ibis pyspark backend. The same ibis expressions compile with
  :class:`SparkCompiler`, which translates each DuckDB builtin to an exact Spark form
  (:data:`SPARK_SCALARS`, :data:`SPARK_AGGREGATES`): ``epoch_us`` to ``unix_micros``,
  ``quantile_cont(x, levels)`` to the exact ``percentile(x, levels)``, ``histogram(x, edges)``
  to one ``count_if`` per bin, ``histogram(x)`` to counts over ``collect_list``, ``arg_max`` to
  ``max_by``, ``hash`` to ``xxhash64``, ``json_extract_string`` to ``get_json_object``. No
  approximate primitive is used, so statistics agree with DuckDB's. Raw SQL written for DuckDB
  (the catalog, spans, events) is transpiled with sqlglot and its values stay bound parameters.

The Spark session time zone must be UTC (a timestamp read in another zone moves silently), and
ANSI mode is turned off on the session the engine uses, so that a division by zero gives NULL as
in DuckDB instead of failing the query.
"""

from __future__ import annotations

import json
import weakref
from dataclasses import dataclass
from typing import Any, Protocol

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.operations as ops
import pandas as pd
import pyarrow as pa
import sqlglot
import sqlglot.expressions as sge

from toolkit.errors import ToolkitError
from toolkit.store.schema import DATA_TABLES, canonical_columns, quote_ident

__all__ = ["CaseSource", "Engine", "DuckDBEngine", "SparkEngine", "EngineError", "engine_of",
           "engine_for_backend", "SparkCompiler", "SPARK_TYPES"]


#: What a case is read from: a DuckDB connection, or an ibis DuckDB or PySpark backend whose
#: canonical tables are registered under their names (see :func:`engine_of`). Diagnostics take
#: it as their first argument and never use it directly: they go through the ``CaseView``.
CaseSource = Any


class EngineError(ToolkitError, ValueError):
    """The engine cannot run the case as asked (an unsupported source, a Spark session that is
    not in UTC)."""


class Engine(Protocol):
    """What the diagnostics need from an engine (see :class:`DuckDBEngine`)."""

    name: str
    dialect: str

    @property
    def backend(self) -> Any: ...

    @property
    def con(self) -> Any: ...

    def compile(self, expr: ibis.Expr) -> str: ...

    def run(self, sql: str) -> pd.DataFrame: ...

    def run_arrow(self, sql: str) -> pa.Table: ...

    def execute(self, sql: str, params: list | None = None) -> Any: ...

    def run_statement(self, sql: str) -> None: ...

    def table(self, name: str) -> ibis.Table: ...

    def has_table(self, table: str) -> bool: ...

    def temp_table_sql(self, name: str, select_sql: str) -> str: ...

    def temp_table(self, name: str) -> ibis.Table: ...

    def drop_temp(self, name: str) -> None: ...

    def table_columns(self, table: str) -> dict[str, str]: ...


#: Spark type names as the DuckDB type names the diagnostics test (``case.columns``).
SPARK_TYPES = {
    "double": "DOUBLE", "float": "FLOAT", "bigint": "BIGINT", "int": "INTEGER",
    "smallint": "SMALLINT", "tinyint": "TINYINT", "string": "VARCHAR", "boolean": "BOOLEAN",
    "timestamp": "TIMESTAMP WITH TIME ZONE", "timestamp_ntz": "TIMESTAMP", "date": "DATE",
    "binary": "BLOB",
}


# --- DuckDB -----------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class DuckDBEngine:
    """The embedded engine: a DuckDB connection and the ibis backend sharing it."""

    con: Any
    name: str = "duckdb"
    dialect: str = "duckdb"

    @property
    def backend(self) -> Any:
        backend = _DUCKDB_BACKENDS.get(self)
        if backend is None:
            backend = ibis.duckdb.from_connection(self.con)
            backend._forensics_engine = self
            _DUCKDB_BACKENDS[self] = backend
        return backend

    def compile(self, expr: ibis.Expr) -> str:
        return ibis.to_sql(expr, dialect="duckdb")

    def run(self, sql: str) -> pd.DataFrame:
        return self.con.execute(sql).df()

    def run_arrow(self, sql: str) -> pa.Table:
        return self.con.sql(sql).to_arrow_table()

    def execute(self, sql: str, params: list | None = None) -> Any:
        return self.con.execute(sql, params) if params is not None else self.con.execute(sql)

    def run_statement(self, sql: str) -> None:
        """Run a statement in the engine's own dialect (a recorded temporary table)."""
        self.con.execute(sql)

    def table(self, name: str) -> ibis.Table:
        return self.backend.table(name)

    def temp_table_sql(self, name: str, select_sql: str) -> str:
        return f"CREATE OR REPLACE TEMP TABLE {quote_ident(name)} AS\n{select_sql}"

    def temp_table(self, name: str) -> ibis.Table:
        return self.backend.table(name, database=("temp", "main"))

    def drop_temp(self, name: str) -> None:
        import duckdb

        try:
            self.con.execute(f"DROP TABLE IF EXISTS temp.main.{quote_ident(name)}")
        except duckdb.Error:  # the connection is closed already: so is the table
            pass

    def table_columns(self, table: str) -> dict[str, str]:
        return dict(self.con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE schema_name = 'main' "
            "AND table_name = ? ORDER BY column_index", [table]).fetchall())

    def has_table(self, table: str) -> bool:
        return bool(self.con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [table]
        ).fetchall()[0][0])


_DUCKDB_BACKENDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


# --- Spark ------------------------------------------------------------------------------------

def _literal_values(op: ops.Node) -> list | None:
    """The Python values of a constant array argument: an ibis array literal, or a string
    literal cast to an array (:func:`~toolkit.diagnose._engine.float_array`)."""
    if isinstance(op, ops.Literal) and isinstance(op.value, tuple | list):
        return list(op.value)
    if isinstance(op, ops.Cast) and isinstance(op.arg, ops.Literal) and \
            isinstance(op.arg.value, str) and op.to.is_array():
        return json.loads(op.arg.value)
    return None


def _double(value: float) -> sge.Expression:
    """A DOUBLE constant for Spark (a bare ``0.1`` is a DECIMAL there): ``CAST('0.1' AS
    DOUBLE)`` with ``repr``, which round-trips exactly."""
    value = float(value)
    if value != value:
        text = "NaN"
    elif value in (float("inf"), float("-inf")):
        text = "Infinity" if value > 0 else "-Infinity"
    else:
        text = repr(value)
    return sge.cast(sge.convert(text), "DOUBLE")


def _constant(value: Any, element: dt.DataType) -> sge.Expression:
    if element.is_floating():
        return _double(value)
    if element.is_integer():
        return sge.cast(sge.convert(int(value)), "BIGINT")
    return sge.convert(value)


def _jsonpath(pointer: str) -> str:
    """A Spark ``get_json_object`` path from a DuckDB JSON path (``$.a`` or a JSON pointer
    ``/a~1b``, RFC 6901)."""
    if pointer.startswith("$"):
        return pointer
    if not pointer.startswith("/"):
        return "$." + pointer
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer[1:].split("/")]
    out = "$"
    for part in parts:
        if "'" in part or "]" in part:
            raise EngineError(f"JSON key {part!r} cannot be addressed on Spark")
        out += f"['{part}']"
    return out


def _histogram(compiler, op, kw, where):
    """``histogram(x, edges)``: DuckDB's map of right-closed bin counts ``(e[k-1], e[k]]`` (the
    first bin unbounded below), an overflow key (``inf``, or the largest BIGINT) only when a
    value lies above the last edge, NULL for a group without values. ``histogram(x)``: the
    count of every distinct value, NULLs left out. Both exact.

    Spark has no counting aggregate that returns a map: each value's bin number is collected
    (``collect_list``), sorted, and counted run by run (:func:`_run_counts`). The bin number
    is a binary search over the constant edges unrolled into nested ``IF``s (:func:`_rank`,
    about 7 comparisons for 127 edges, where filtering the edges array took 127 lambda calls
    per value), and the counts come from the sorted runs (where folding each value into the
    counts array took one lambda call per bin per value: 1M rows x 20 features x 128 bins).
    One ``count_if`` per bin gives the same counts without the list, but Spark's planner and
    code generator choke on the thousands of aggregates a 20-feature profile then holds. The
    list costs memory in proportion to a group's rows: fine for a case, not for billions of
    rows in one group."""
    args = list(kw.values())
    x = args[0]

    def cond(c):
        return c if where is None else sge.and_(c, where)

    present = sge.func("count_if", cond(sge.not_(sge.Is(this=x, expression=sge.Null()))))
    if len(args) == 1:  # value counts
        values = sge.func("collect_list", x)
        if where is not None:
            values = sge.Filter(this=values, expression=sge.Where(this=where))
        v, y = sge.to_identifier("_v"), sge.to_identifier("_y")
        distinct = sge.func("array_sort", sge.func("array_distinct", values))
        count = sge.func("size", sge.func(
            "filter", values, sge.Lambda(this=sge.EQ(this=y, expression=v), expressions=[y])))
        entries = sge.func("transform", distinct, sge.Lambda(
            this=sge.func("struct", v, count), expressions=[v]))
        return sge.If(this=sge.EQ(this=present, expression=sge.convert(0)),
                      true=sge.Null(), false=sge.func("map_from_entries", entries))
    edges_op = op.args[1]
    edges = _literal_values(edges_op)
    if edges is None:
        raise EngineError("histogram boundaries must be constants on Spark")
    element = edges_op.dtype.value_type
    keys = [_constant(e, element) for e in edges]
    top = _double(float("inf")) if element.is_floating() else sge.cast(
        sge.convert(2**63 - 1), "BIGINT")
    ordered = all(a < b for a, b in zip(edges, edges[1:], strict=False))
    # each value's bin: the number of edges below it (the first edge >= x), K above them all
    xv = sge.to_identifier("_x")
    if ordered:  # a binary search: log2(K) comparisons per value instead of K
        index = sge.func("element_at", sge.func("transform", sge.Array(expressions=[x]),
                                                sge.Lambda(this=_rank(xv, keys, 0, len(keys)),
                                                           expressions=[xv])), sge.convert(1))
    else:
        e = sge.to_identifier("_e")
        index = sge.func("size", sge.func("filter", sge.Array(expressions=keys), sge.Lambda(
            this=sge.LT(this=e, expression=x), expressions=[e])))
    index = sge.If(this=sge.Is(this=x, expression=sge.Null()), true=sge.Null(), false=index)
    indexes = sge.func("collect_list", index)
    if where is not None:
        indexes = sge.Filter(this=indexes, expression=sge.Where(this=where))
    counts = _run_counts(sge.func("array_sort", indexes), len(keys) + 1)
    v, k = sge.to_identifier("_v"), sge.to_identifier("_k")
    # the overflow key only when a value lies above the last edge (its count is not 0)
    mapped = sge.func("map_filter", sge.func(
        "map_from_arrays", sge.Array(expressions=[*keys, top]), counts), sge.Lambda(
        this=sge.not_(sge.and_(sge.EQ(this=k, expression=top.copy()),
                               sge.EQ(this=v, expression=sge.convert(0)))),
        expressions=[k, v]))
    return sge.If(this=sge.EQ(this=present, expression=sge.convert(0)), true=sge.Null(),
                  false=mapped)


def _rank(x: sge.Expression, keys: list[sge.Expression], lo: int, hi: int) -> sge.Expression:
    """How many of the ascending ``keys`` lie below ``x``, knowing that those before ``lo``
    do and those from ``hi`` on do not: a binary search unrolled into nested ``IF``s."""
    if lo >= hi:
        return sge.convert(lo)
    mid = (lo + hi) // 2
    return sge.If(this=sge.LT(this=keys[mid].copy(), expression=x.copy()),
                  true=_rank(x, keys, mid + 1, hi), false=_rank(x, keys, lo, mid))


def _run_counts(ordered: sge.Expression, bins: int) -> sge.Expression:
    """Counts of the values ``0 .. bins - 1`` in an ascending array of them, as a BIGINT array.

    The runs of equal values are found in one pass (a value ends its run where the next one
    differs: ``zip_with`` with the array shifted by one, and ``transform``'s index gives the
    run's end); the counts array is then filled run by run (``bins`` steps per run, at most
    ``bins`` runs). The array is referenced once, so it is sorted once; a lambda that read it
    from inside would evaluate it again for every element."""
    a, b, r, i, acc, c, j = (sge.to_identifier(n) for n in
                             ("_a", "_b", "_r", "_i", "_acc", "_c", "_j"))
    ends = sge.func("zip_with", ordered, sge.func(
        "slice", ordered.copy(), sge.convert(2), sge.func("size", ordered.copy())), sge.Lambda(
        this=sge.If(this=sge.or_(sge.Is(this=b, expression=sge.Null()),
                                 sge.NEQ(this=a, expression=b)),
                    true=a, false=sge.Null()), expressions=[a, b]))
    runs = sge.func("filter", sge.func("transform", ends, sge.Lambda(
        this=sge.If(this=sge.Is(this=r, expression=sge.Null()), true=sge.Null(),
                    false=sge.func("named_struct", sge.convert("k"), r, sge.convert("e"),
                                   sge.cast(sge.Add(this=i, expression=sge.convert(1)),
                                            "BIGINT"))),
        expressions=[r, i])), sge.Lambda(this=sge.not_(sge.Is(this=r, expression=sge.Null())),
                                         expressions=[r]))
    zero = sge.cast(sge.convert(0), "BIGINT")
    start = sge.func("named_struct", sge.convert("c"),
                     sge.func("array_repeat", zero, sge.convert(bins)),
                     sge.convert("p"), zero.copy())
    run_k = sge.Dot(this=r.copy(), expression=sge.to_identifier("k"))
    run_e = sge.Dot(this=r.copy(), expression=sge.to_identifier("e"))
    acc_c = sge.Dot(this=acc.copy(), expression=sge.to_identifier("c"))
    acc_p = sge.Dot(this=acc.copy(), expression=sge.to_identifier("p"))
    fill = sge.func("transform", acc_c, sge.Lambda(
        this=sge.If(this=sge.EQ(this=j, expression=run_k),
                    true=sge.Sub(this=run_e, expression=acc_p), false=c),
        expressions=[c, j]))
    step = sge.func("named_struct", sge.convert("c"), fill, sge.convert("p"), run_e.copy())
    merged = sge.func("aggregate", runs, start, sge.Lambda(this=step, expressions=[acc, r]))
    return sge.Dot(this=merged, expression=sge.to_identifier("c"))


def _quantiles(compiler, op, kw, where):
    x, levels = kw.values()
    if where is not None:
        x = sge.If(this=where, true=x, false=sge.Null())
    return sge.func("percentile", x, levels)


def _arg_max(compiler, op, kw, where):
    arg, key = kw.values()
    if where is not None:
        key = sge.If(this=where, true=key, false=sge.Null())
    return sge.func("max_by", arg, key)


#: DuckDB aggregate builtins by name -> ``f(compiler, op, compiled_args, where)`` for Spark.
SPARK_AGGREGATES = {"histogram": _histogram, "quantile_cont": _quantiles, "arg_max": _arg_max}


def _list_select(compiler, op, kw):
    values, positions = kw.values()
    p = sge.to_identifier("_p")
    return sge.func("transform", positions, sge.Lambda(
        this=sge.func("try_element_at", values, sge.cast(p, "INT")), expressions=[p]))


def _json_extract(compiler, op, kw):
    document, paths = kw.values()
    listed = _literal_values(op.args[1])
    if listed is None:
        if isinstance(op.args[1], ops.Literal) and isinstance(op.args[1].value, str):
            return sge.func("get_json_object", document, sge.convert(_jsonpath(op.args[1].value)))
        raise EngineError("json_extract_string paths must be constants on Spark")
    return sge.Array(expressions=[
        sge.func("get_json_object", document, sge.convert(_jsonpath(p))) for p in listed])


#: DuckDB scalar builtins by name -> ``f(compiler, op, compiled_args)`` for Spark.
SPARK_SCALARS = {
    "epoch_us": lambda c, op, kw: sge.func("unix_micros", *kw.values()),
    "to_timestamp": lambda c, op, kw: sge.func("timestamp_seconds", *kw.values()),
    "hash": lambda c, op, kw: sge.func("xxhash64", *kw.values()),
    "list_select": _list_select,
    "json_extract_string": _json_extract,
}


def _spark_compiler_class():
    from ibis.backends.sql.compilers.pyspark import PySparkCompiler

    class _Compiler(PySparkCompiler):
        """ibis's Spark compiler with the DuckDB builtins of the diagnostics translated."""

        __slots__ = ()

        def visit_ScalarUDF(self, op, **kw):
            rule = SPARK_SCALARS.get(op.__func_name__)
            if rule is not None and op.__input_type__.name == "BUILTIN":
                return rule(self, op, kw)
            return super().visit_ScalarUDF(op, **kw)

        def visit_AggUDF(self, op, *, where, **kw):
            rule = SPARK_AGGREGATES.get(op.__func_name__)
            if rule is not None:
                return rule(self, op, kw, where)
            return super().visit_AggUDF(op, where=where, **kw)

        def visit_Cast(self, op, *, arg, to):
            values = _literal_values(op)
            if values is not None and to.is_array() and isinstance(op.arg, ops.Literal):
                return sge.Array(expressions=[_constant(v, to.value_type) for v in values])
            return super().visit_Cast(op, arg=arg, to=to)

    # get_json_object already returns a string value unquoted (ibis's own unwrapping is a
    # Python UDF, which needs the workers' Python): only the type is left to set. Assigned
    # after the class is built: ibis generates these methods from SIMPLE_OPS on subclassing.
    _Compiler.visit_UnwrapJSONString = lambda self, op, *, arg: arg
    _Compiler.visit_UnwrapJSONInt64 = lambda self, op, *, arg: sge.cast(arg, "BIGINT")
    _Compiler.visit_UnwrapJSONFloat64 = lambda self, op, *, arg: sge.cast(arg, "DOUBLE")
    _Compiler.visit_UnwrapJSONBoolean = lambda self, op, *, arg: sge.cast(arg, "BOOLEAN")
    return _Compiler


_SPARK_COMPILER = None


def SparkCompiler():  # noqa: N802 - a factory standing in for the class (built lazily)
    """The shared instance of the toolkit's Spark compiler (pyspark imported on first use)."""
    global _SPARK_COMPILER
    if _SPARK_COMPILER is None:
        _SPARK_COMPILER = _spark_compiler_class()()
    return _SPARK_COMPILER


_UTC = {"UTC", "ETC/UTC", "Z", "+00:00", "GMT", "ETC/GMT", "UCT", "ZULU", "UNIVERSAL"}


def _spark_raw_node(node: sge.Expression) -> sge.Expression:
    """One node of DuckDB raw SQL in an exact Spark form (:meth:`SparkEngine.transpile`).

    * ``quantile_cont(x, p)`` and ``quantile_cont(x, [p1, ...])`` (sqlglot's
      ``PercentileCont``, which Spark only knows as ``WITHIN GROUP``) become the exact
      ``percentile(x, p)`` / ``percentile(x, array(p1, ...))``: linear interpolation between
      the closest ranks, as DuckDB's; the levels are DOUBLE constants (a bare ``0.1`` is a
      DECIMAL in Spark).
    * A number literal with a fraction or an exponent (``1.0``, ``0.5``) becomes a DOUBLE
      constant: Spark reads it as a DECIMAL and then averages it as one (``avg(CASE ... THEN
      1.0 ELSE 0.0 END)`` comes back a Python ``Decimal`` rounded to a few digits), where
      DuckDB's average is a DOUBLE.
    * ``epoch(ts)`` (sqlglot's ``TimeToUnix``) becomes ``unix_micros(ts) / 1e6``: DuckDB's
      seconds with their fraction, where Spark's ``unix_timestamp`` drops it.
    """
    if isinstance(node, sge.PercentileCont) and node.expression is not None:
        levels = node.expression
        if isinstance(levels, sge.Array):
            levels = sge.Array(expressions=[_level(e) for e in levels.expressions])
        else:
            levels = _level(levels)
        return sge.func("percentile", node.this, levels)
    if isinstance(node, sge.Literal) and not node.is_string and not _integral(node.this) \
            and not isinstance(node.parent, sge.DataType | sge.DataTypeParam):
        return _double(float(node.this))
    if isinstance(node, sge.TimeToUnix) and not node.args.get("format"):
        return sge.Div(this=sge.func("unix_micros", node.this),
                       expression=_double(1e6), typed=False)
    return node


def _integral(text: str) -> bool:
    return text.lstrip("+-").isdigit()


def _level(level: sge.Expression) -> sge.Expression:
    """A quantile level as a DOUBLE constant when it is a number literal; as written
    otherwise (a bound parameter, an expression)."""
    if isinstance(level, sge.Literal) and not level.is_string:
        return _double(float(level.this))
    if isinstance(level, sge.Neg) and isinstance(level.this, sge.Literal):
        return _double(-float(level.this.this))
    return level


class _SparkResult:
    """The few cursor methods the toolkit's raw SQL uses (``fetchall``, ``fetchone``, ``df``)."""

    def __init__(self, frame) -> None:
        self._frame = frame

    def fetchall(self) -> list[tuple]:
        return [tuple(row) for row in self._frame.collect()]

    def fetchone(self) -> tuple | None:
        rows = self._frame.take(1)
        return tuple(rows[0]) if rows else None

    def df(self) -> pd.DataFrame:
        return _spark_frame(self._frame)


class SparkConnection:
    """``case.con`` on Spark: runs SQL written for DuckDB (transpiled with sqlglot; ``?``
    parameters stay bound), so the few raw statements of the toolkit run on both engines."""

    def __init__(self, engine: SparkEngine) -> None:
        self._engine = engine

    def execute(self, sql: str, params: list | None = None) -> _SparkResult:
        return self._engine.execute(sql, params)


class SparkEngine:
    """Spark through an ibis pyspark backend whose canonical tables are registered under their
    canonical names (temporary views or tables of the current database).

    Raises
    ------
    EngineError
        When the session time zone is not UTC.
    """

    name = "spark"
    dialect = "spark"

    def __init__(self, backend: Any) -> None:
        session = backend._session
        zone = str(session.conf.get("spark.sql.session.timeZone"))
        if zone.upper() not in _UTC:
            raise EngineError(
                f"Spark session time zone is {zone!r}: set spark.sql.session.timeZone to UTC "
                "(timestamps would shift silently)")
        session.conf.set("spark.sql.ansi.enabled", "false")
        backend.compiler = SparkCompiler()
        backend._forensics_engine = self
        self._backend = backend
        self.session = session
        self.con = SparkConnection(self)

    @property
    def backend(self) -> Any:
        return self._backend

    def compile(self, expr: ibis.Expr) -> str:
        return self._backend.compile(expr)

    def run(self, sql: str) -> pd.DataFrame:
        return _spark_frame(self.session.sql(sql))

    def run_arrow(self, sql: str) -> pa.Table:
        frame = self.session.sql(sql)
        if hasattr(frame, "toArrow"):
            return frame.toArrow()
        return pa.Table.from_pandas(frame.toPandas(), preserve_index=False)  # pragma: no cover

    def transpile(self, sql: str) -> str:
        """SQL written for DuckDB in Spark's dialect (``temp.main.`` qualifiers dropped: a
        temporary view has none)."""
        tree = sqlglot.parse_one(sql, read="duckdb")
        for table in tree.find_all(sge.Table):
            if table.db and table.db.lower() in ("main", "temp"):
                table.set("db", None)
                table.set("catalog", None)
        for call in tree.find_all(sge.Anonymous):
            if str(call.this).lower() == "epoch_us":
                call.set("this", "unix_micros")
        tree = tree.transform(_spark_raw_node)
        return tree.sql(dialect="spark")

    def execute(self, sql: str, params: list | dict | None = None) -> _SparkResult:
        text = self.transpile(sql)
        if params:  # ``?`` positional, ``$name`` (Spark: ``:name``) named
            args = dict(params) if isinstance(params, dict) else list(params)
            frame = self.session.sql(text, args=args)
        else:
            frame = self.session.sql(text)
        return _SparkResult(frame)

    def table(self, name: str) -> ibis.Table:
        """A canonical table; its JSON columns (text in a lake) typed JSON as in DuckDB."""
        table = self._backend.table(name)
        json_columns = [c for c, kind in self.table_columns(name).items()
                        if kind == "JSON" and table[c].type().is_string()]
        return table.mutate(**{c: table[c].cast("json") for c in json_columns}) \
            if json_columns else table

    def run_statement(self, sql: str) -> None:
        """Run a statement in Spark's dialect (a recorded ``CACHE TABLE``)."""
        self.session.sql(sql)

    def temp_table_sql(self, name: str, select_sql: str) -> str:
        quoted = "`" + name.replace("`", "``") + "`"
        return f"CACHE TABLE {quoted} AS\n{select_sql}"

    def temp_table(self, name: str) -> ibis.Table:
        return self._backend.table(name)

    def drop_temp(self, name: str) -> None:
        quoted = "`" + name.replace("`", "``") + "`"
        try:
            self.session.sql(f"UNCACHE TABLE IF EXISTS {quoted}")
            self.session.sql(f"DROP VIEW IF EXISTS {quoted}")
        except Exception:  # noqa: BLE001 - the session is stopped already: so is the view
            pass

    def has_table(self, table: str) -> bool:
        return bool(self.session.catalog.tableExists(table))

    def table_columns(self, table: str) -> dict[str, str]:
        if not self.has_table(table):
            return {}
        canonical = canonical_columns(table) if table in DATA_TABLES else {}
        out = {}
        for f in self.session.table(table).schema.fields:
            kind = SPARK_TYPES.get(f.dataType.simpleString(), f.dataType.simpleString().upper())
            # JSON documents are text in a lake
            out[f.name] = "JSON" if kind == "VARCHAR" and canonical.get(f.name) == "JSON" \
                else kind
        return out


def _spark_frame(frame) -> pd.DataFrame:
    """A Spark result as pandas as DuckDB hands it over: maps as dicts, arrays as lists."""
    out = frame.toPandas()
    for field in frame.schema.fields:
        kind = field.dataType.typeName()
        if kind == "timestamp" and not isinstance(out[field.name].dtype, pd.DatetimeTZDtype):
            # the session time zone is UTC; DuckDB hands TIMESTAMPTZ over zoned
            out[field.name] = pd.to_datetime(out[field.name]).dt.tz_localize("UTC")
        elif kind == "map":
            out[field.name] = [None if v is None else dict(v) for v in out[field.name]]
        elif kind == "array":
            out[field.name] = [None if v is None else list(v) for v in out[field.name]]
    return out


def engine_for_backend(backend: Any) -> Engine:
    """The engine of an ibis backend (built on first use for a DuckDB backend)."""
    engine = getattr(backend, "_forensics_engine", None)
    if engine is not None:
        return engine
    if backend.name == "duckdb":
        engine = DuckDBEngine(backend.con)
        _DUCKDB_BACKENDS[engine] = backend
        backend._forensics_engine = engine
        return engine
    if backend.name == "pyspark":
        return SparkEngine(backend)
    raise EngineError(f"no engine for an ibis {backend.name} backend (DuckDB or PySpark)")


def engine_of(source: Any) -> Engine:
    """The engine of a case source: a DuckDB connection, an ibis DuckDB backend or an ibis
    pyspark backend (its canonical tables registered under their names).

    Raises
    ------
    EngineError
        For any other source, or a Spark session whose time zone is not UTC.
    """
    import duckdb

    if isinstance(source, duckdb.DuckDBPyConnection):
        return DuckDBEngine(source)
    if isinstance(source, DuckDBEngine | SparkEngine):
        return source
    if isinstance(source, SparkConnection):  # ``case.con`` of a Spark case
        return source._engine
    if hasattr(source, "name") and hasattr(source, "compiler"):
        return engine_for_backend(source)
    raise EngineError(f"a case is a DuckDB connection or an ibis DuckDB or PySpark backend, "
                      f"not {type(source).__name__}")
