"""``--engine`` and ``--tables``: where a command reads its case from.

A command reads a DuckDB case file (``--db``, the default engine) or, with ``--engine spark
--tables requests=LOCATION,labels=LOCATION,...``, the canonical tables where they live in a lake
(:func:`toolkit.store.lake.connect_lake`).
"""

from __future__ import annotations

import atexit
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from toolkit.errors import InvalidParameterError

__all__ = ["ENGINES", "engine_option", "tables_option", "check_source", "open_case"]

#: Engines a command can read a case with.
ENGINES = ("duckdb", "spark")
#: Spark settings of the session the command line builds: no progress bars on the terminal.
_CLI_CONF = {"spark.ui.showConsoleProgress": "false"}


def engine_option() -> Any:
    return typer.Option("duckdb", "--engine", metavar="ENGINE",
                        help="duckdb (a case file, --db) or spark (the canonical tables in a "
                        "lake, --tables; needs pyspark and Java).")


def tables_option() -> Any:
    return typer.Option(None, "--tables", metavar="TABLE=LOCATION,...",
                        help="With --engine spark: where each canonical table lives, e.g. "
                        "requests=s3a://bucket/requests,labels=lake.db.labels (a Parquet "
                        "path, delta:PATH, iceberg:PATH, or a table of the Spark catalog).")


def check_source(db: Path | None, engine: str, tables: list[str] | None
                 ) -> dict[str, str] | None:
    """The parsed ``--tables`` for ``--engine spark`` (``None`` for a DuckDB case), after
    checking that the options fit together.

    Raises
    ------
    InvalidParameterError
        An unknown engine, ``--db`` with spark or ``--tables`` with duckdb, a missing one, or
        a malformed ``--tables``: a pair that is not ``TABLE=LOCATION``, a table that is not
        canonical or is named twice, a location that holds a control character or names no
        path after its format (``delta:``).
    """
    from toolkit.store.lake import LakeSource, parse_tables_spec

    if engine not in ENGINES:
        raise InvalidParameterError(f"--engine must be one of {', '.join(ENGINES)}; got "
                                    f"{engine!r}.")
    if engine == "duckdb":
        if tables:
            raise InvalidParameterError("--tables goes with --engine spark (a DuckDB case is "
                                        "one file: --db).")
        if db is None:
            raise InvalidParameterError("give the case: --db CASE (or --engine spark "
                                        "--tables TABLE=LOCATION,...).")
        return None
    if db is not None:
        raise InvalidParameterError("--engine spark reads --tables, not --db: give one of "
                                    "them.")
    if not tables:
        raise InvalidParameterError("--engine spark needs --tables "
                                    "requests=LOCATION,labels=LOCATION,...")
    spec = parse_tables_spec(tables)
    for table, location in spec.items():
        # 'delta:' with no path after it, a control character (the reports pass the spec to
        # their notebook: refused here as a usage error, before any notebook starts)
        LakeSource.parse(table, location)
    return spec


def open_case(db: Path | None, engine: str, tables: list[str] | None
              ) -> tuple[Any, Callable[[], None]]:
    """The case to hand to the toolkit (a DuckDB connection or a lake case) and how to close
    it. Usage problems raise :class:`InvalidParameterError`; a lake table whose schema does not
    fit raises :class:`~toolkit.errors.SchemaMismatchError`."""
    spec = check_source(db, engine, tables)
    if spec is None:
        from toolkit.store import connect

        con = connect(db, read_only=True)
        return con, con.close
    from toolkit.store.lake import connect_lake, spark_session

    session = _quiet(spark_session)(_CLI_CONF)
    session.sparkContext.setLogLevel("ERROR")
    return connect_lake(spec, session=session), _nothing


def _quiet(start: Callable[..., Any]) -> Callable[..., Any]:
    """``start`` with the JVM's own output (launcher messages, log4j warnings) sent to a
    scratch log instead of the terminal; when Spark cannot start, the log's first line (e.g.
    ``.../bin/java: No such file or directory``) ends the one-line error."""

    def quiet(*args: Any) -> Any:
        log = tempfile.NamedTemporaryFile(prefix="forensics-spark-", suffix=".log",
                                          delete=False)
        atexit.register(Path(log.name).unlink, missing_ok=True)
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(log.fileno(), 2)  # the JVM inherits it for its lifetime
        try:
            return start(*args)
        except InvalidParameterError as exc:
            log.flush()
            lines = Path(log.name).read_text(errors="replace").strip().splitlines()
            detail = f" ({lines[0].strip()})" if lines else ""
            raise InvalidParameterError(f"{exc}{detail}") from exc
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            log.close()

    return quiet


def _nothing() -> None:
    """A lake case holds no file: closing it leaves the Spark session to the process."""
