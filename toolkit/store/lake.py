"""Cases on a lake: the canonical tables read where they already live, through Spark.

A case normally is a DuckDB file that ``forensics ingest`` filled. When the logs of an endpoint
already sit in a lake (Parquet, Delta or Iceberg tables, or tables of a Spark catalog) and span
weeks of heavy traffic, :func:`connect_lake` points the toolkit at them instead: each canonical
table is read by Spark, its schema checked as ingest checks a file, and registered under its
canonical name; the diagnostics then run on Spark through ibis (the engine seam of
:mod:`toolkit.diagnose._case`).

Examples
--------
>>> parse_tables_spec("requests=s3a://logs/requests,labels=lake.db.labels")
{'requests': 's3a://logs/requests', 'labels': 'lake.db.labels'}
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from toolkit.errors import InvalidParameterError, SchemaMismatchError
from toolkit.store.schema import DATA_TABLES, REQUIRED, _canonical

__all__ = ["LAKE_TABLES", "LAKE_FORMATS", "UTC_NAMES", "LakeSource", "parse_tables_spec",
           "connect_lake", "check_utc", "spark_session"]

#: Tables a lake case can name: the data tables and ``case_meta`` (serving mode, SLOs).
LAKE_TABLES: tuple[str, ...] = (*DATA_TABLES, "case_meta")
#: Formats a path can be read in; ``format:`` before a path chooses one (``delta:s3a://...``).
LAKE_FORMATS: tuple[str, ...] = ("parquet", "delta", "iceberg")
#: Session time zones that are UTC under another name (Spark accepts region ids and offsets).
UTC_NAMES: frozenset[str] = frozenset(
    name.upper() for name in (
        "UTC", "Etc/UTC", "GMT", "Etc/GMT", "Z", "+00:00", "-00:00", "UTC+00:00", "GMT+00:00",
        "UCT", "Etc/UCT", "Universal", "Etc/Universal", "Zulu", "Etc/Zulu", "GMT0", "Etc/GMT0",
        "Etc/GMT+0", "Etc/GMT-0", "Greenwich", "Etc/Greenwich",
    )
)
_TZ_KEY = "spark.sql.session.timeZone"

#: Spark types (``DataType.typeName()``) a canonical column accepts, by its DuckDB type, and
#: what the column reads as then: ``None`` as it is, else a Spark type to cast to (lossless:
#: integers widen, a naive timestamp is UTC wall-clock time as ingest reads it).
_INTEGRAL = ("byte", "short", "integer", "long")
_FRACTIONAL = ("float", "double", "decimal")
_ACCEPTS: dict[str, dict[str, str | None]] = {
    "VARCHAR": {"string": None, "varchar": "string", "char": "string", "boolean": "string",
                **dict.fromkeys(_INTEGRAL, "string"), **dict.fromkeys(_FRACTIONAL, "string")},
    "TIMESTAMP WITH TIME ZONE": {"timestamp": None, "timestamp_ntz": "timestamp"},
    "DOUBLE": {"double": None, "float": "double", "decimal": "double",
               **dict.fromkeys(_INTEGRAL, "double")},
    "INTEGER": {"integer": None, "byte": "integer", "short": "integer", "long": None},
    "BIGINT": {"long": None, **dict.fromkeys(("byte", "short", "integer"), "long")},
    "BOOLEAN": {"boolean": None},
    "JSON": {"string": None, "varchar": "string", "map": "json", "struct": "json",
             "array": "json"},
}
#: Words for the expected type in an error message.
_EXPECTED = {
    "VARCHAR": "VARCHAR (a string, integer or boolean column)",
    "TIMESTAMP WITH TIME ZONE": "TIMESTAMP WITH TIME ZONE (a Spark timestamp)",
    "DOUBLE": "DOUBLE (a numeric column)",
    "INTEGER": "INTEGER (an integer column)",
    "BIGINT": "BIGINT (an integer column)",
    "BOOLEAN": "BOOLEAN",
    "JSON": "JSON (JSON text, or a map, struct or array)",
}
#: The Spark type of a canonical column that the source lacks (read as all NULL, as in a
#: DuckDB case, where the store creates every canonical column).
_SPARK_TYPE = {"VARCHAR": "string", "TIMESTAMP WITH TIME ZONE": "timestamp",
               "DOUBLE": "double", "INTEGER": "int", "BIGINT": "bigint", "BOOLEAN": "boolean",
               "JSON": "string"}


#: What a location may not hold: C0 controls (line breaks and tabs too), DEL, the C1 controls
#: and lone surrogates (undecodable bytes of a command-line argument). A location goes into a
#: report notebook's parameters, Spark's reader and one-line messages; the command line and
#: the report functions refuse it through :meth:`LakeSource.parse` alone.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


@dataclass(frozen=True)
class LakeSource:
    """Where one canonical table of a lake case lives.

    Attributes
    ----------
    table
        The canonical table name.
    location
        A path (local, ``s3a://``, ``abfss://``, ...) or a table of the Spark catalog.
    format
        ``parquet``, ``delta`` or ``iceberg`` for a path; ``None`` for a catalog table.
    """

    table: str
    location: str
    format: str | None

    @classmethod
    def parse(cls, table: str, location: str) -> LakeSource:
        """Read a location: ``format:path``, a path (with a ``/`` or a scheme), or a catalog
        table name (``db.table``); a local folder with a ``_delta_log`` is a Delta table."""
        if table not in LAKE_TABLES:
            raise InvalidParameterError(
                f"{table!r} is not a table of a case. Choose among: {', '.join(LAKE_TABLES)}.")
        if CONTROL_CHARACTERS.search(str(location)):
            raise InvalidParameterError(
                f"tables[{table!r}]: the location {str(location)!r} holds a control character; "
                "give the path or table name as plain text.")
        text = str(location).strip()
        if not text:
            raise InvalidParameterError(f"tables[{table!r}]: the location is empty.")
        prefix, sep, rest = text.partition(":")
        if sep and prefix.lower() in LAKE_FORMATS:
            if not rest.strip():
                raise InvalidParameterError(f"tables[{table!r}]: {text!r} names no path after "
                                            f"{prefix}:.")
            return cls(table, rest.strip(), prefix.lower())
        if "/" in text or "\\" in text or "://" in text or os.path.exists(text):
            delta = os.path.isdir(os.path.join(text, "_delta_log"))
            return cls(table, text, "delta" if delta else "parquet")
        return cls(table, text, None)

    def describe(self) -> str:
        """``requests (parquet at /data/requests)`` for messages."""
        where = f"{self.format} at {self.location}" if self.format else \
            f"catalog table {self.location}"
        return f"{self.table} ({where})"


def parse_tables_spec(spec: str | Iterable[str]) -> dict[str, str]:
    """``requests=PATH,labels=PATH`` (one string, or several joined) as a table -> location
    mapping, refusing malformed pairs, unknown and repeated tables with one clear line.

    Raises
    ------
    InvalidParameterError
        A pair without ``=``, an empty table or location, a table that is not canonical, or a
        table named twice.
    """
    parts = [spec] if isinstance(spec, str) else list(spec)
    found: dict[str, str] = {}
    for part in parts:
        for item in str(part).split(","):
            if not item.strip():
                continue
            name, sep, location = item.partition("=")
            name, location = name.strip(), location.strip()
            if not sep or not name or not location:
                raise InvalidParameterError(
                    f"--tables: {item.strip()!r} is not TABLE=LOCATION (e.g. "
                    "requests=s3a://bucket/requests,labels=lake.db.labels).")
            if name not in LAKE_TABLES:
                raise InvalidParameterError(
                    f"--tables: {name!r} is not a table of a case. Choose among: "
                    f"{', '.join(LAKE_TABLES)}.")
            if name in found:
                raise InvalidParameterError(f"--tables: {name} is given twice.")
            found[name] = location
    if not found:
        raise InvalidParameterError("--tables names no table; give at least "
                                    "requests=LOCATION (or metrics / events).")
    return found


def check_utc(session: Any, what: str = "the Spark session") -> None:
    """Refuse a session whose time zone is not UTC (Spark would shift timestamps silently in
    buckets, days and text).

    Raises
    ------
    InvalidParameterError
        Naming the setting, the value found and how to set it.
    """
    found = session.conf.get(_TZ_KEY)
    if str(found).strip().upper() not in UTC_NAMES:
        raise InvalidParameterError(
            f"{what} has {_TZ_KEY}={found!r}; the toolkit needs UTC (times would shift "
            f"silently otherwise). Set it first: spark.conf.set({_TZ_KEY!r}, 'UTC').")


def connect_lake(tables: Mapping[str, str], *, session: Any = None,
                 conf: Mapping[str, str] | None = None) -> Any:
    """Open a read-only case over tables in a lake, diagnosed on Spark.

    Parameters
    ----------
    tables
        Canonical table name -> location: a path (a Parquet file or folder, a Delta table;
        ``s3a://``, ``abfss://``, ``gs://`` ... are passed to Spark as they are), optionally
        prefixed by its format (``delta:...``, ``iceberg:...``, ``parquet:...``), or the name
        of a table of the session's catalog (``lake.serving.requests``) or a global
        temporary view (``global_temp.requests``; a session's own temporary views are not
        visible to the case's session). ``requests`` (or
        ``metrics`` / ``events``) is needed for anything to classify; the other tables are
        optional, and a table not given reads as empty.
    session
        A ``SparkSession`` whose time zone is UTC; by default the active one, else a local one
        built with UTC. It is not changed: the case lives in a new session on the same
        Spark context (``session.newSession()``, holding the caller's runtime settings), so its
        temporary views (one per canonical table) never replace the caller's.
    conf
        Spark settings for a session built here (ignored when one is given or active).

    Returns
    -------
    ibis.backends.pyspark.Backend
        The case: an ibis backend on which every canonical table is a view. Pass it where a
        DuckDB connection goes: ``tk.classify_incident(case)``,
        ``tk.run_diagnostics(case, baseline, incident)``; ``case.sql(...)`` and
        ``case.table("requests")`` query it ad hoc.

    Raises
    ------
    InvalidParameterError
        An unknown table, a location Spark cannot read, a given session not in UTC, or Spark
        not available (pyspark not installed, Java missing).
    SchemaMismatchError
        A table lacks a required column or holds a column of a type the canonical one cannot
        take; one message lists every such column with its table, the expected and the found
        type.

    Notes
    -----
    What differs from a DuckDB case:

    * read-only: nothing is loaded, so there is no ``loads`` or ``rejects`` table; the tables
      must already hold canonical values (as ingest writes them). Only the schema is checked,
      and only lossless type differences are converted (integers widen, a float, integer or
      boolean class becomes text as ingest writes it, a naive timestamp is UTC, a map or
      struct becomes JSON text);
    * the session time zone must be UTC;
    * the statistics come from the engines' exact primitives; where a diagnostic uses an
      approximate one on Spark its result says so.
    """
    if not isinstance(tables, Mapping) or not tables:
        raise InvalidParameterError("connect_lake needs a mapping of canonical table names to "
                                    "locations, e.g. {'requests': 's3a://bucket/requests'}.")
    sources = [LakeSource.parse(str(name), location) for name, location in tables.items()]
    pyspark_sql = _import_pyspark()
    lake = _lake_session(pyspark_sql, session, conf)
    frames, problems = {}, []
    for source in sources:
        frame = _read(lake, source)
        problems += _check(source, frame)
        frames[source.table] = frame
    if problems:
        raise SchemaMismatchError(
            "The lake's tables do not match the canonical schema: " + "; ".join(problems) + ".",
            path=", ".join(s.describe() for s in sources))
    functions = pyspark_sql.functions
    for table in LAKE_TABLES:
        frame = frames.get(table)
        view = _canonical_frame(functions, frame, table) if frame is not None else \
            _empty_frame(lake, table)
        view.createOrReplaceTempView(table)
    import ibis

    return ibis.pyspark.connect(lake)


def _import_pyspark() -> Any:
    try:
        import pyspark.sql as pyspark_sql
        import pyspark.sql.functions  # noqa: F401 - loads pyspark_sql.functions
    except ImportError as exc:
        raise InvalidParameterError(
            "the Spark engine needs pyspark: pip install 'inference-forensics[spark]' "
            f"({exc}).") from exc
    return pyspark_sql


def spark_session(conf: Mapping[str, str] | None = None) -> Any:
    """The active Spark session, else a local one built in UTC with ``conf``.

    Raises
    ------
    InvalidParameterError
        pyspark is not installed, or Spark cannot start (no Java).
    """
    pyspark_sql = _import_pyspark()
    session = pyspark_sql.SparkSession.getActiveSession()
    if session is not None:
        return session
    builder = pyspark_sql.SparkSession.builder.appName("forensics").config(_TZ_KEY, "UTC")
    for key, value in (conf or {}).items():
        builder = builder.config(str(key), str(value))
    try:
        return builder.getOrCreate()
    except Exception as exc:  # noqa: BLE001 - pyspark raises several kinds when Java fails
        text = str(exc).strip()
        raise InvalidParameterError(
            "Spark could not start (is Java 17 installed, on the PATH or in JAVA_HOME?): "
            f"{text.splitlines()[0] if text else type(exc).__name__}") from exc


def _lake_session(pyspark_sql: Any, session: Any, conf: Mapping[str, str] | None) -> Any:
    """A new session on the caller's (or a new local) Spark context, in UTC, with the
    caller's runtime settings, so that the case's views stay apart from the caller's."""
    if session is None:
        session = spark_session(conf)
    else:
        check_utc(session, "the given Spark session")
    try:
        lake = session.newSession()
    except Exception:  # noqa: BLE001 - Spark Connect sessions cannot make sibling sessions
        return session
    settings = session.sql("SET").collect()
    for key, value in settings:
        if key != _TZ_KEY and session.conf.isModifiable(key):
            lake.conf.set(key, value)
    lake.conf.set(_TZ_KEY, "UTC")
    return lake


def _read(lake: Any, source: LakeSource) -> Any:
    try:
        if source.format is None:
            return lake.table(source.location)
        return lake.read.format(source.format).load(source.location)
    except Exception as exc:  # noqa: BLE001 - AnalysisException and friends, from the JVM
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = "" if source.format else (
            " (the case has its own session, which does not see your session's temporary "
            "views: name a catalog table, or a global temporary view as global_temp.NAME)")
        raise InvalidParameterError(f"tables[{source.table!r}]: Spark cannot read "
                                    f"{source.describe()}: {first}{hint}") from exc


def _columns(table: str) -> dict[str, str]:
    return dict(_canonical()[table])


def _check(source: LakeSource, frame: Any) -> list[str]:
    """Every problem of ``frame``'s schema against the canonical table, as message parts."""
    table = source.table
    canonical = _columns(table)
    found = _by_name(frame)
    problems = []
    for column in REQUIRED.get(table, ()) + (("key",) if table == "case_meta" else ()):
        if column not in found:
            problems.append(f"{table} lacks the required column {column} (expected "
                            f"{_EXPECTED[canonical[column]]}; columns: "
                            f"{', '.join(f.name for f in frame.schema.fields) or 'none'})")
    for column, expected in canonical.items():
        field = found.get(column)
        if field is None:
            continue
        kind = field.dataType.typeName()
        if kind not in _ACCEPTS[expected]:
            problems.append(f"{table}.{field.name} has type {field.dataType.simpleString()}, "
                            f"expected {_EXPECTED[expected]}")
    duplicates = _duplicates(frame)
    if duplicates:
        problems.append(f"{table} has columns that differ only in case ({', '.join(duplicates)}),"
                        " which Spark and DuckDB cannot keep apart")
    return problems


def _by_name(frame: Any) -> dict[str, Any]:
    """The frame's fields by lower-case name (Spark matches names case-insensitively)."""
    return {f.name.lower(): f for f in frame.schema.fields}


def _duplicates(frame: Any) -> list[str]:
    seen: dict[str, str] = {}
    clash = []
    for field in frame.schema.fields:
        other = seen.setdefault(field.name.lower(), field.name)
        if other != field.name:
            clash.append(f"{other}/{field.name}")
    return clash


def _canonical_frame(functions: Any, frame: Any, table: str) -> Any:
    """``frame`` with every canonical column under its canonical name and type (absent ones as
    NULL), then its other columns (features) as they are."""
    canonical = _columns(table)
    found = _by_name(frame)
    columns = []
    for column, expected in canonical.items():
        field = found.get(column)
        if field is None:
            columns.append(functions.lit(None).cast(_SPARK_TYPE[expected]).alias(column))
            continue
        cast = _ACCEPTS[expected][field.dataType.typeName()]
        value = functions.col(f"`{field.name.replace('`', '``')}`")
        if cast == "json":
            value = functions.to_json(value)
        elif cast == "string" and field.dataType.typeName() in _FRACTIONAL:
            # 1.0 reads as '1' (as ingest writes a numeric class), 0.5 as '0.5'
            whole = (value == functions.floor(value)) & (functions.abs(value) < 1e15)
            value = functions.when(whole, value.cast("bigint").cast("string")).otherwise(
                value.cast("string"))
        elif cast is not None:
            value = value.cast(cast)
        columns.append(value.alias(column))
    extra = [functions.col(f"`{f.name.replace('`', '``')}`") for f in frame.schema.fields
             if f.name.lower() not in canonical and f.name.lower() != "load_id"]
    return frame.select(*columns, *extra)


def _empty_frame(lake: Any, table: str) -> Any:
    """A table the lake does not have: empty, with the canonical columns."""
    ddl = ", ".join(f"`{column}` {_SPARK_TYPE[kind]}" for column, kind in _columns(table).items())
    return lake.createDataFrame([], ddl)
