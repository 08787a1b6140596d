"""``load``: files, folders and in-memory frames into the case, with provenance and rejects."""

from __future__ import annotations

import dataclasses
import json
import os
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from toolkit.errors import (
    AlreadyLoadedChangedError,
    FileParseError,
    InvalidParameterError,
    LoadError,
)
from toolkit.load import formats
from toolkit.load.convert import ConversionPlan, plan_conversion
from toolkit.load.discover import SourceFile, survey
from toolkit.load.mapping import Mapping, declare_task, read_mapping
from toolkit.load.provenance import (
    next_load_id,
    previous_load,
    sha256_file,
    sha256_table,
)
from toolkit.load.sources import (
    READ_ERRORS,
    StagedSource,
    parse_error,
    stage_file,
    stage_frame,
)
from toolkit.load.writer import write
from toolkit.store.schema import DATA_TABLES, LOAD_ID, check_table, quote_ident

__all__ = ["load", "FileLoad", "LoadReport"]

#: Callback told about each file as it starts (``None``) and ends (its :class:`FileLoad`).
Progress = Callable[[SourceFile, "FileLoad | None"], None]


@dataclass(frozen=True)
class FileLoad:
    """What happened to one file or frame.

    Attributes
    ----------
    source
        The file path, or ``<pandas.DataFrame>`` / ``<polars.DataFrame>`` / ``<pyarrow.Table>``.
    table
        Table it went into.
    status
        ``loaded``; ``replaced`` (an earlier version of the file was swapped out);
        ``unchanged`` (the same file was loaded before: nothing done); ``duplicate`` (the
        same content was loaded from another path: nothing done); ``skipped`` (a file in a
        folder that is not loaded: it belongs to no table, such as a README, or its format is
        not one the loader reads, or it is in a hidden folder; ``notes`` says why).
    rows_read, rows_loaded, rows_rejected
        Record counts; ``rows_read == rows_loaded + rows_rejected`` always holds.
    """

    source: str
    table: str
    format: str
    status: str
    sha256: str
    rows_read: int = 0
    rows_loaded: int = 0
    rows_rejected: int = 0
    load_id: int | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class LoadReport:
    """The outcome of :func:`load`: one :class:`FileLoad` per file or frame."""

    files: tuple[FileLoad, ...] = field(default_factory=tuple)

    @property
    def rows_read(self) -> int:
        return sum(f.rows_read for f in self.files)

    @property
    def rows_loaded(self) -> int:
        return sum(f.rows_loaded for f in self.files)

    @property
    def rows_rejected(self) -> int:
        return sum(f.rows_rejected for f in self.files)

    def to_frame(self) -> pd.DataFrame:
        """One row per file: source, table, format, status, counts, notes."""
        columns = ["source", "table", "format", "status", "rows_read", "rows_loaded",
                   "rows_rejected", "load_id", "notes"]
        rows = [
            {**{c: getattr(f, c) for c in columns if c != "notes"}, "notes": "; ".join(f.notes)}
            for f in self.files
        ]
        return pd.DataFrame(rows, columns=columns)

    def __add__(self, other: LoadReport) -> LoadReport:
        return LoadReport(self.files + other.files)

    def _repr_html_(self) -> str:
        return self.to_frame().to_html(index=False)


def load(
    con: duckdb.DuckDBPyConnection,
    source: str | os.PathLike[str] | pd.DataFrame | Any,
    /,
    *,
    table: str | None = None,
    mapping: str | os.PathLike[str] | dict | Mapping | None = None,
    replace: bool = False,
    format: str | None = None,
    features: list[str] | None = None,
    progress: Progress | None = None,
    run_time: str | datetime | None = None,
) -> LoadReport:
    """Load exported logs into the case.

    Parameters
    ----------
    con
        A writable case connection from :func:`toolkit.connect`.
    source
        A file (CSV, CSV.gz, Parquet, JSONL, JSONL.gz, JSON), a folder of them (hive
        partitions included), or an in-memory pandas / polars DataFrame or Arrow table.
    table
        Target table. By default a file's table comes from its name (``requests.parquet``) or
        its folder (``metrics/part-0.csv``); a frame needs it, unless the mapping names it.
    mapping
        A TOML mapping file (or dict) that renames source columns and states units; see
        :mod:`toolkit.load.mapping`.
    replace
        Reload a file whose content changed since it was loaded from the same path: its old
        rows (and rejects) are removed first. Without it such a file is refused.
    format
        Force a platform format (``sagemaker``, ``kserve``, ...) instead of recognising it by
        content; ``generic`` forces the generic table reader.
    features
        Feature names for payloads that carry none (SageMaker CSV capture).
    progress
        Optional callback ``progress(file, None)`` before and ``progress(file, result)`` after
        each file.
    run_time
        When a batch job ran (ISO 8601 text or a ``datetime``; UTC when it has no offset), for
        batch records that carry no time and whose path tells none (SageMaker batch
        transform). An invalid value raises :class:`~toolkit.errors.InvalidParameterError`
        before any file is read.

    Returns
    -------
    LoadReport
        One entry per file. Loading the same file twice is a no-op (status ``unchanged``).

    Raises
    ------
    FileParseError
        A file cannot be read at all; the case is left exactly as it was for that file.
    SchemaMismatchError
        A file lacks a column its table requires.
    AlreadyLoadedChangedError
        A file changed since it was loaded and ``replace`` is false.

    Notes
    -----
    Each file is loaded in one transaction. A row whose values fail conversion, or that lacks a
    required value (``requests.ts``, ``labels.label``, ...), goes to ``rejects`` with the file,
    its line (CSV counts the header as line 1; Parquet and frames count rows from 1), the
    column, the reason and the raw record. Columns of ``requests`` and ``reference`` outside the
    canonical core are model features: they are added to the table and to the ``features``
    catalog as ``numeric`` (DOUBLE) or ``categorical`` (VARCHAR).

    Integrity rules. ``rows_read`` is counted without the parser: a CSV file's non-blank
    physical lines after its header (a quoted value that spans lines makes one record, and the
    note says so), a JSON-lines file's non-blank lines, a Parquet file's footer row count. A
    quote that is never closed refuses the file with its line. JSON lines that are not UTF-8 or
    longer than the line limit are rejected one by one; a record with a duplicated key is
    rejected (which value is meant cannot be told). ``NaN`` loads as NULL in every DOUBLE
    column; a UTC offset beyond +-18:00 is not a timestamp; a CSV header that is not UTF-8 is
    read as Latin-1 (noted). Columns whose names differ only in case, or one named
    ``load_id``, refuse the file. In a folder, every file that is not loaded is listed as
    ``skipped`` with the reason (an unread compression such as ``.bz2``/``.zst``, a
    spreadsheet, a hidden or underscore folder such as ``_backup/``, a file no table claims);
    when a file stops the load, the error says which files were committed before it
    (:attr:`~toolkit.errors.LoadError.committed`).

    Examples
    --------
    >>> import pandas as pd, toolkit as tk
    >>> con = tk.connect()
    >>> frame = pd.DataFrame({"request_id": ["a", "b"], "ts": ["2026-03-02T14:00Z", "oops"],
    ...                       "latency_ms": [12.0, 15.0], "amount": [3.5, 4.0]})
    >>> report = tk.load(con, frame, table="requests")
    >>> report.rows_loaded, report.rows_rejected
    (1, 1)
    >>> con.sql("SELECT column_name, reason FROM rejects").fetchall()
    [('ts', 'ts: not a timestamp')]
    """
    parsed = read_mapping(mapping)
    format_options = formats.FormatOptions(features=tuple(features or ()), mapping=parsed,
                                           run_time=run_time)
    if table is None and parsed is not None:
        table = parsed.table
    if table is not None:
        check_table(table)
    if _is_frame(source):
        return LoadReport((_load_frame(con, source, table, parsed, replace),))
    if not isinstance(source, (str, os.PathLike)):
        raise InvalidParameterError(
            "load() takes a path or a pandas/polars DataFrame or Arrow table. "
            f"Got {type(source).__name__}."
        )
    if format not in (None, "generic"):
        formats.get(format)  # an unknown format name is the caller's error, not a file's
    files, skipped = survey(source, table=table)
    explicit_file = Path(source).is_file()
    results: list[FileLoad] = []
    for file in files:
        try:
            file = _resolve(file, format, format_options, table)
        except LoadError as exc:
            if explicit_file:
                raise
            # a stray file in a folder (truncated, binary) must not stop the others
            results.append(_skipped(file.path, file.format, f"not loaded: {_one_line(exc)}"))
            continue
        file_mapping = parsed.for_file(file.path.name) if parsed is not None else None
        if file_mapping is not parsed and file_mapping.table is not None and table is None:
            file = dataclasses.replace(file, table=file_mapping.table)  # its [files] section
        if file.table is None:
            if explicit_file:
                raise LoadError(
                    f"{file.path}: cannot tell which table this file is for. Name it after "
                    f"its table ({', '.join(DATA_TABLES)}), put it in a folder of that name, "
                    "or pass table=... (--table).",
                    path=str(file.path),
                )
            # In a folder, files that are not logs (a README, truth.json) are listed, not loaded.
            results.append(_skipped(file.path, file.format, "not a table file; skipped"))
            continue
        if progress:
            progress(file, None)
        try:
            result = _load_file(con, file, file_mapping, replace, format_options)
        except LoadError as exc:
            _report_committed(exc, results)
            raise
        results.append(result)
        if progress:
            progress(file, result)
    results.extend(_skipped(s.path, "-", s.reason) for s in skipped)
    return LoadReport(tuple(results))


def load_many(
    con: duckdb.DuckDBPyConnection,
    sources: Iterable[str | os.PathLike[str]],
    **options: Any,
) -> LoadReport:
    """:func:`load` for several paths; the reports are concatenated.

    When one path fails, the :class:`~toolkit.errors.LoadError` says (and its ``committed``
    holds) what the paths before it committed.
    """
    report = LoadReport()
    for source in sources:
        try:
            report = report + load(con, source, **options)
        except LoadError as exc:
            earlier = exc.committed.files if exc.committed is not None else ()
            exc.committed = None
            _report_committed(exc, list(report.files) + list(earlier))
            raise
    return report


def _resolve(
    file: SourceFile, format: str | None, options: formats.FormatOptions, table: str | None
) -> SourceFile:
    """:func:`formats.resolve`, with a file whose head cannot even be read (a truncated gzip,
    an unreadable file) refused in one line."""
    try:
        return formats.resolve(file, format=format, options=options, table=table)
    except InvalidParameterError:
        raise
    except LoadError:
        raise
    except (OSError, EOFError, ValueError, zlib.error) as exc:
        raise FileParseError(f"{file.path}: cannot be read: {_one_line(exc)}.",
                             path=str(file.path)) from exc


def _skipped(path: Path, fmt: str, reason: str) -> FileLoad:
    return FileLoad(str(path), "-", fmt, "skipped", "", notes=(reason,))


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _report_committed(exc: LoadError, results: list[FileLoad]) -> None:
    """Say in ``exc`` which files of this call were committed before it stopped."""
    done = [r for r in results if r.status in ("loaded", "replaced")]
    exc.committed = LoadReport(tuple(results))
    if not done:
        return
    rows = sum(r.rows_loaded for r in done)
    names = ", ".join(Path(r.source).name for r in done[:5]) + (", ..." if len(done) > 5 else "")
    message = (f"{_one_line(exc)} (stopped here; {len(done)} file(s) before it were committed "
               f"and stay in the case: {names}; {rows} row(s))")
    exc.args = (message, *exc.args[1:])


def _is_frame(source: Any) -> bool:
    if isinstance(source, (pd.DataFrame, pa.Table)):
        return True
    module = type(source).__module__
    return module.startswith("polars") and type(source).__name__ in ("DataFrame", "LazyFrame")


def _load_file(
    con: duckdb.DuckDBPyConnection,
    file: SourceFile,
    mapping: Mapping | None,
    replace: bool,
    options: formats.FormatOptions,
) -> FileLoad:
    path = str(file.path)
    try:
        sha = sha256_file(file.path)
    except OSError as exc:
        raise FileParseError(f"{path}: cannot be read: {exc.strerror or exc}.",
                             path=path) from exc
    reader = formats.get(file.format) if file.format in formats.READERS else None

    def stage() -> StagedSource:
        if reader is not None:
            return reader.stage(con, file, options)
        return stage_file(con, file)

    return _load_source(con, stage, path, file.table, file.format, sha, mapping, replace)


def _load_frame(
    con: duckdb.DuckDBPyConnection,
    frame: Any,
    table: str | None,
    mapping: Mapping | None,
    replace: bool,
) -> FileLoad:
    if table is None:
        raise InvalidParameterError(
            "Loading a DataFrame needs table=... (one of " + ", ".join(DATA_TABLES) + ")."
        )
    kind = f"<{type(frame).__module__.split('.')[0]}.{type(frame).__name__}>"
    if type(frame).__name__ == "LazyFrame":
        frame = frame.collect()
    arrow = frame if isinstance(frame, pa.Table) else (
        _pandas_to_arrow(frame) if isinstance(frame, pd.DataFrame) else frame.to_arrow()
    )
    sha = sha256_table(arrow)

    def stage() -> StagedSource:
        return stage_frame(con, arrow, label=kind, typed=True)

    # A frame has no path: its content hash stands in, so the same frame loads once.
    return _load_source(con, stage, kind, table, "frame", sha, mapping, replace,
                        path_key=f"{kind}#{sha[:16]}")


def _pandas_to_arrow(frame: pd.DataFrame) -> pa.Table:
    """``frame`` as Arrow; a column of mixed Python types (``[1, "x", 2.5]``) becomes text.

    Arrow refuses such a column outright (``ArrowInvalid``). As text it goes through the same
    conversion as a CSV column: values that fit the target type load, the others are rejected
    row by row with the reason, so one stray value does not refuse the frame.
    """
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    mixed = {}
    for name in frame.columns:
        try:
            pa.array(frame[name], from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            mixed[name] = frame[name].astype("string")
    return pa.Table.from_pandas(frame.assign(**mixed), preserve_index=False)


def _load_source(
    con: duckdb.DuckDBPyConnection,
    stage: Callable[[], StagedSource],
    label: str,
    table: str,
    fmt: str,
    sha: str,
    mapping: Mapping | None,
    replace: bool,
    *,
    path_key: str | None = None,
) -> FileLoad:
    try:
        return _load_in_transaction(con, stage, label, table, fmt, sha, mapping, replace,
                                    path_key=path_key)
    except duckdb.Error as exc:  # outside the transaction: the bookkeeping look-ups
        raise _load_failure(label, exc) from exc


def _load_in_transaction(
    con: duckdb.DuckDBPyConnection,
    stage: Callable[[], StagedSource],
    label: str,
    table: str,
    fmt: str,
    sha: str,
    mapping: Mapping | None,
    replace: bool,
    *,
    path_key: str | None = None,
) -> FileLoad:
    key = path_key or label
    earlier = previous_load(con, path=key)
    if earlier is not None and earlier.sha256 == sha:
        note = "already loaded; nothing to do"
        if earlier.table != table:
            note = (f"already loaded into {earlier.table}; not loaded into {table} as asked "
                    "(a file is loaded once; remove it from the case to load it elsewhere)")
        return FileLoad(label, earlier.table, fmt, "unchanged", sha, load_id=earlier.load_id,
                        notes=(note,))
    if earlier is not None and not replace:
        raise AlreadyLoadedChangedError(
            f"{label}: this path was loaded before (load {earlier.load_id}) with different "
            "content. Pass replace=True (forensics ingest --replace) to swap the old rows out.",
            path=label,
        )
    same_content = previous_load(con, sha256=sha, table=table)
    if earlier is None and same_content is not None:
        return FileLoad(label, table, fmt, "duplicate", sha, load_id=same_content.load_id,
                        notes=(f"same content already loaded from {same_content.path}",))

    load_id = next_load_id(con)
    staged: StagedSource | None = None
    con.execute("BEGIN TRANSACTION")
    try:
        if earlier is not None:
            _remove_load(con, earlier.load_id)
        staged = stage()
        plan = plan_conversion(con, staged, table, mapping)
        _add_features(con, plan)
        stats = write(con, staged, plan, load_id)
        if mapping is not None and mapping.score and table in ("requests", "reference"):
            # what `score` means, for the calibration and performance diagnostics
            con.execute("INSERT OR REPLACE INTO case_meta VALUES ('score_semantics', ?)",
                        [json.dumps(mapping.score)])
        if mapping is not None and table == "requests":
            # the task the mapping declares, into the endpoints catalog (DESIGN 3a)
            plan.notes.extend(declare_task(con, mapping, load_id))
        con.execute(
            "INSERT INTO loads VALUES (?, ?, ?, ?, ?, ?, ?, ?, now(), false, ?)",
            [load_id, key, sha, table, fmt, stats.rows_read, stats.rows_loaded,
             stats.rows_rejected, "; ".join(plan.notes) or None],
        )
        con.execute("COMMIT")
    except duckdb.Error as exc:
        _rollback(con)
        raise _load_failure(label, exc) from exc
    except BaseException:
        _rollback(con)
        raise
    finally:
        if staged is not None:
            _cleanup(con, staged)
    status = "replaced" if earlier is not None else "loaded"
    return FileLoad(label, table, fmt, status, sha, stats.rows_read, stats.rows_loaded,
                    stats.rows_rejected, load_id, tuple(plan.notes))


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    """Roll the file's transaction back; a failed COMMIT (disk full) has already ended it, and
    DuckDB's "no transaction is active" must not hide the real cause."""
    try:
        con.execute("ROLLBACK")
    except duckdb.Error:
        pass


def _cleanup(con: duckdb.DuckDBPyConnection, staged: StagedSource) -> None:
    try:
        for name in staged.cleanup:
            con.execute(f"DROP TABLE IF EXISTS {quote_ident(name)}")
        for name in staged.registered:
            con.unregister(name)
    except duckdb.Error:  # pragma: no cover - temp objects die with the connection anyway
        pass


_DISK_FULL = ("no space left", "disk is full", "disk full", "not enough space", "errno 28",
              "quota exceeded")


def _load_failure(label: str, exc: duckdb.Error) -> LoadError:
    """A one-line :class:`LoadError` for a DuckDB error raised while loading ``label``.

    A full disk or a memory limit is about the case, not the input; a read error is about the
    input (with its position); anything else is still one line naming the file.
    """
    first = _one_line(exc)
    lowered = str(exc).lower()
    if any(marker in lowered for marker in _DISK_FULL):
        return LoadError(
            f"{label}: not loaded: the disk holding the case (or DuckDB's temp directory) is "
            f"full ({first}); free some space and load it again. The case is unchanged.",
            path=label,
        )
    if isinstance(exc, duckdb.OutOfMemoryException) or "out of memory" in lowered:
        return LoadError(
            f"{label}: not loaded: DuckDB ran out of memory ({first}); raise the memory limit "
            "(FORENSICS_MEMORY_LIMIT, e.g. 2GB) and load it again. The case is unchanged.",
            path=label,
        )
    if isinstance(exc, READ_ERRORS):
        return parse_error(label, exc)
    return LoadError(f"{label}: not loaded: {first}. The case is unchanged.", path=label)


def _remove_load(con: duckdb.DuckDBPyConnection, load_id: int) -> None:
    tables = [
        t for (t,) in con.execute(
            "SELECT table_name FROM duckdb_columns() WHERE schema_name = 'main' "
            "AND column_name = ? AND NOT internal",
            [LOAD_ID],
        ).fetchall()
        if t in DATA_TABLES
    ]
    for name in tables:
        con.execute(f"DELETE FROM {quote_ident(name)} WHERE {LOAD_ID} = ?", [load_id])
    con.execute("DELETE FROM rejects WHERE load_id = ?", [load_id])
    con.execute("UPDATE loads SET replaced = true WHERE load_id = ?", [load_id])


def _add_features(con: duckdb.DuckDBPyConnection, plan: ConversionPlan) -> None:
    for name, kind in plan.new_features.items():
        dtype = "DOUBLE" if kind == "numeric" else "VARCHAR"
        con.execute(
            f"ALTER TABLE {quote_ident(plan.table)} ADD COLUMN IF NOT EXISTS "
            f"{quote_ident(name)} {dtype}"
        )
        con.execute(
            "INSERT INTO features SELECT ?, ?, coalesce(max(position), 0) + 1, ? FROM features "
            "ON CONFLICT (name) DO NOTHING",
            [name, kind, plan.feature_units.get(name)],
        )
    for name, unit in plan.feature_units.items():
        con.execute("UPDATE features SET unit = ? WHERE name = ?", [unit, name])
