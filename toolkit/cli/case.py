"""``forensics ingest``, ``forensics info`` and ``forensics sql``: building and reading a case.

Everything that comes from the case (versions, hosts, reject reasons, query values) is printed
through :func:`toolkit.cli.app.safe`, so escape sequences in log content cannot act on the
terminal.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from toolkit.cli.app import (
    app,
    console,
    err_console,
    handle_errors,
    interactive,
    safe,
    usage_errors,
)
from toolkit.cli.display import csv_for, json_safe, print_table
from toolkit.errors import InvalidParameterError, ToolkitError
from toolkit.load import FileLoad, LoadReport, SourceFile, discover, load
from toolkit.load.formats._batch import parse_run_time
from toolkit.load.mapping import read_mapping, shipped_mappings
from toolkit.store import connect, summarize
from toolkit.store.meta import META_KEYS, get_meta, set_meta, unset_meta
from toolkit.store.summary import task_text

_DB_HELP = "The case database: an existing DuckDB case file, or a new path to create one."
_QUIET_STATUSES = ("loaded", "replaced", "unchanged", "duplicate")


@app.command()
@handle_errors
def ingest(
    paths: list[Path] = typer.Argument(..., metavar="PATH",
                                       help="Files or folders of exported logs."),
    db: Path = typer.Option(..., "--db", metavar="CASE", help=_DB_HELP),
    table: str | None = typer.Option(None, "--table", metavar="TABLE",
                                     help="Target table for every file."),
    mapping: str | None = typer.Option(
        None, "--mapping", metavar="TOML",
        help="TOML file renaming source columns and stating units, or the name of a mapping "
        "shipped with the toolkit (" + ", ".join(shipped_mappings()) + ")."
    ),
    replace: bool = typer.Option(
        False, "--replace", help="Reload files whose content changed since they were loaded."
    ),
    fmt: str | None = typer.Option(
        None, "--format", metavar="FORMAT",
        help="Force a platform format instead of recognising it by content."
    ),
    features: str | None = typer.Option(
        None, "--features", metavar="NAMES",
        help="Comma-separated feature names for header-less payloads."
    ),
    run_time: str | None = typer.Option(
        None, "--run-time", metavar="ISO8601",
        help="When a batch job ran, for batch records that carry no time (e.g. SageMaker batch "
        "transform outside a YYYY/MM/DD/HH folder); UTC when it has no offset."
    ),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="One line per file (by default only files with rejected "
        "or skipped rows are listed, then a summary)."
    ),
) -> None:
    """Load exported logs into a case database (created when absent)."""
    with usage_errors():
        if run_time is not None:
            run_time = parse_run_time(run_time)  # refused before the case is created
        parsed = read_mapping(mapping)
    created = not db.exists()
    with usage_errors():
        con = connect(db)
    done: list[FileLoad] = []
    try:
        report = LoadReport()
        with _progress() as progress:
            task = progress.add_task("loading", total=_count_files(paths, table))

            def tick(file: SourceFile, result: FileLoad | None) -> None:
                if result is None:
                    progress.update(task, description=safe(file.path.name, newlines=False))
                else:
                    done.append(result)
                    progress.advance(task)

            for path in paths:
                report = report + load(
                    con, path, table=table, mapping=parsed, replace=replace, format=fmt,
                    run_time=run_time,
                    features=[f.strip() for f in features.split(",")] if features else None,
                    progress=tick,
                )
    except BaseException:
        _stopped(con, db, created, done)
        raise
    con.close()
    if verbose:
        _print_load_table(report)
    else:
        _print_load_brief(report)
    _print_load_summary(report)


def _stopped(con, db: Path, created: bool, done: list[FileLoad]) -> None:
    """After a failed ingest: say what was committed before it stopped, and remove a case file
    this command created when nothing was committed to it (a refused first file leaves no
    empty case behind)."""
    committed = [item for item in done if item.status in ("loaded", "replaced")]
    try:
        nothing = created and not con.execute("SELECT count(*) FROM loads").fetchone()[0]
    except Exception:  # noqa: BLE001 - the connection may be unusable; keep the file then
        nothing = False
    con.close()
    if nothing:
        for path in (db, Path(f"{db}.wal")):
            path.unlink(missing_ok=True)
    if committed:
        console.print(
            f"stopped after {len(committed)} file(s) committed "
            f"({sum(i.rows_loaded for i in committed):,} rows loaded, "
            f"{sum(i.rows_rejected for i in committed):,} rejected); the file in the error and "
            "those after it were not loaded", markup=False)


def _count_files(paths: list[Path], table: str | None) -> int | None:
    """How many files the ingest will visit (for the progress bar), when it can be told."""
    try:
        return sum(len(discover(path, table=table)) for path in paths)
    except (ToolkitError, OSError):
        return None  # load() reports the problem itself


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("file(s)"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=not interactive(),
    )


def _name(source: str) -> str:
    return safe(Path(source).name, newlines=False)


def _print_load_table(report: LoadReport) -> None:
    table = Table(title=None, show_edge=False)
    for column in ("file", "table", "status", "read", "loaded", "rejected"):
        table.add_column(column, justify="right" if column in ("read", "loaded", "rejected")
                         else "left")
    for item in report.files:
        table.add_row(safe(item.source, newlines=False), item.table, item.status,
                      f"{item.rows_read:,}", f"{item.rows_loaded:,}", f"{item.rows_rejected:,}")
    console.print(table)
    for item in report.files:
        for note in item.notes:
            if item.status not in ("unchanged", "duplicate"):
                console.print(f"note: {_name(item.source)}: {safe(note, newlines=False)}",
                              markup=False)


def _print_load_brief(report: LoadReport) -> None:
    """Only the files a reader must look at, then each distinct note once with its count."""
    for item in report.files:
        if item.rows_rejected:
            console.print(f"{_name(item.source)}: {item.rows_rejected:,} of {item.rows_read:,} "
                          f"rows rejected", markup=False)
        elif item.status not in _QUIET_STATUSES:
            reason = safe("; ".join(item.notes), newlines=False)
            if not reason:
                shown = item.status
            elif item.status in reason:  # "not a table file; skipped" says it already
                shown = reason
            else:
                shown = f"{item.status} ({reason})"
            console.print(f"{_name(item.source)}: {shown}", markup=False)
    notes = Counter(note for item in report.files if item.status in ("loaded", "replaced")
                    for note in item.notes)
    for note, files in notes.items():
        console.print(f"note ({files} file{'s' if files > 1 else ''}): "
                      f"{safe(note, newlines=False)}", markup=False)


def _print_load_summary(report: LoadReport) -> None:
    statuses = Counter(item.status for item in report.files)
    order = [*_QUIET_STATUSES, "skipped"]
    detail = ", ".join(f"{statuses[s]} {s}" for s in sorted(
        statuses, key=lambda s: (order.index(s) if s in order else len(order), s)))
    console.print(
        f"{len(report.files)} file(s) ({detail or 'none'}): {report.rows_read:,} rows read, "
        f"{report.rows_loaded:,} loaded, {report.rows_rejected:,} rejected"
        + (" (see the rejects table)" if report.rows_rejected else ""),
        markup=False,
    )


@app.command()
@handle_errors
def info(
    db: Path = typer.Option(..., "--db", metavar="CASE", help=_DB_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Summarize a case: tables, time range, versions, hosts, features, rejects."""
    with usage_errors():
        con = connect(db, read_only=True)
    try:
        summary = summarize(con)
    finally:
        con.close()
    if as_json:
        # json.dumps escapes every control character (ensure_ascii), so this is exact and safe
        console.print(json.dumps(summary.to_dict(), default=str, indent=2), markup=False)
        return
    console.print(f"case {safe(db, newlines=False)} (schema v{summary.schema_version}, "
                  f"{summary.loads} load(s))", markup=False)
    tables = Table(show_edge=False)
    for column in ("table", "rows", "first (UTC)", "last (UTC)"):
        tables.add_column(column, justify="right" if column == "rows" else "left")
    for row in summary.tables.itertuples(index=False):
        tables.add_row(row.table, f"{row.rows:,}", _ts(row.first), _ts(row.last))
    console.print(tables)
    for title, values in (
        ("model versions", summary.model_versions),
        ("pipeline versions", summary.pipeline_versions),
        ("client versions", summary.client_versions),
        ("hosts", summary.hosts),
    ):
        shown = ", ".join(f"{safe(k, newlines=False)} ({v:,})"
                          for k, v in list(values.items())[:12])
        more = f" and {len(values) - 12} more" if len(values) > 12 else ""
        console.print(f"{title}: {shown or '-'}{more}", markup=False)
    for task in summary.tasks:
        console.print(f"task: {safe(task_text(task), newlines=False)}", markup=False)
    features = summary.features
    if len(features):
        listed = ", ".join(
            safe(f"{r.name} ({r.kind}{', ' + r.unit if r.unit else ''})", newlines=False)
            for r in features.itertuples(index=False))
        console.print(f"features ({len(features)}): {listed}", markup=False)
    else:
        console.print("features: -")
    if summary.unknown_statuses:
        listed = ", ".join(f"{safe(k, newlines=False)} ({v:,} rows)"
                           for k, v in summary.unknown_statuses.items())
        console.print(f"unknown statuses: {listed} (neither ok, error nor timeout: map them "
                      "with a mapping's values = {...})", markup=False)
    if summary.rows_rejected:
        console.print(f"rejected rows: {summary.rows_rejected:,}", markup=False)
        for row in summary.rejects.head(10).itertuples(index=False):
            console.print(f"  {row.rows:,} x {_name(row.file)}: "
                          f"{safe(row.reason, newlines=False)}", markup=False)
    else:
        console.print("rejected rows: 0")


@app.command()
@handle_errors
def meta(
    key: str | None = typer.Argument(None, metavar="[KEY]",
                                     help="A case fact: " + ", ".join(META_KEYS) + "."),
    value: str | None = typer.Argument(None, metavar="[VALUE]", help="Its new value."),
    db: Path = typer.Option(..., "--db", metavar="CASE", help="An existing case database."),
    unset: bool = typer.Option(False, "--unset", help="Remove KEY (back to inference and "
                               "defaults)."),
) -> None:
    """Show or set facts no log carries: serving mode (real-time / batch) and SLO targets.

    Without KEY, lists the facts set; with KEY and VALUE, sets it (e.g. `forensics meta
    serving_mode batch --db case.duckdb`, `forensics meta ttft_slo_ms 500 --db ...`).
    """
    writing = unset or value is not None
    with usage_errors():
        if not db.exists():
            raise InvalidParameterError(f"No case database at {db}: create it with "
                                        "`forensics ingest` first.")
        if unset and (key is None or value is not None):
            raise InvalidParameterError("--unset takes a KEY and no VALUE.")
        if key is not None and not writing and key not in META_KEYS:
            raise InvalidParameterError(
                f"Unknown case fact {key!r}; choose one of: {', '.join(META_KEYS)}.")
        con = connect(db, read_only=not writing)
    try:
        with usage_errors():
            if unset:
                found = unset_meta(con, key)
                console.print(f"{key}: {'unset' if found else 'was not set'}", markup=False)
                return
            if value is not None:
                stored = set_meta(con, key, value)
                console.print(f"{key} = {json.dumps(stored)}", markup=False)
                return
        facts = get_meta(con)
    finally:
        con.close()
    shown = {key: facts.get(key)} if key is not None else facts
    if not shown or all(v is None for v in shown.values()):
        console.print(f"{key}: not set" if key else "no case facts set (keys: "
                      + ", ".join(META_KEYS) + ")", markup=False)
        return
    for name, fact in shown.items():
        console.print(f"{safe(name, newlines=False)} = {safe(json.dumps(fact), newlines=False)}",
                      markup=False)


def _ts(value: object) -> str:
    import pandas as pd

    if value is None or pd.isna(value):
        return "-"
    return pd.Timestamp(value).tz_convert("UTC").strftime("%Y-%m-%d %H:%M:%S")


@app.command()
@handle_errors
def sql(
    query: str = typer.Argument(..., metavar="QUERY", help="A DuckDB SQL query."),
    db: Path = typer.Option(..., "--db", metavar="CASE", help=_DB_HELP),
    fmt: str = typer.Option(
        "table", "--format", metavar="FORMAT",
        help="Output: table (aligned, numbers rounded for display), csv or json (exact values; "
        "on a terminal, csv shows control characters as \\xNN escapes, json always escapes "
        "them)."),
    max_rows: int = typer.Option(
        100, "--max-rows", metavar="N", help="Rows shown in table format (csv and json print all)."
    ),
    unsafe_allow_external: bool = typer.Option(
        False, "--unsafe-allow-external",
        help="Let the query read and write files other than the case (read_csv, ATTACH, "
        "COPY ... TO, extensions). Only for queries you trust: by default the case is the "
        "only file a query can touch."),
) -> None:
    """Run an ad-hoc SQL query on a case (read-only, and sandboxed to the case file)."""
    if fmt not in ("table", "csv", "json"):
        with usage_errors():
            raise InvalidParameterError(f"--format must be table, csv or json. Got {fmt!r}.")
    import duckdb

    with usage_errors():
        con = connect(db, read_only=True, external_access=unsafe_allow_external)
    try:
        try:
            frame = con.execute(query).df()
        except duckdb.Error as exc:
            hint = ""
            if isinstance(exc, duckdb.PermissionException) and not unsafe_allow_external:
                hint = (" (forensics sql reaches no file but the case; "
                        "--unsafe-allow-external lifts that for a query you trust)")
            raise InvalidParameterError(f"query failed: {exc}{hint}") from exc
    finally:
        con.close()
    if fmt == "csv":
        text, escaped = csv_for(frame.to_csv(index=False))
        sys.stdout.write(text)
        sys.stdout.flush()
        if escaped:
            err_console.print("note: control characters are shown as \\xNN escapes on the "
                              "terminal; redirect the output to a file for the exact bytes.",
                              markup=False)
    elif fmt == "json":
        sys.stdout.write(json_safe(frame.to_json(orient="records", date_format="iso",
                                                 indent=None)) + "\n")
        sys.stdout.flush()
    else:
        print_table(frame.head(max_rows), console, notice=err_console)
        if len(frame) > max_rows:
            console.print(f"({len(frame):,} rows, {max_rows} shown; --format csv prints all)")
