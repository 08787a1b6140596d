"""``forensics ingest``, ``forensics info`` and ``forensics sql``: building and reading a case."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from toolkit.cli.app import app, console, err_console, handle_errors, interactive
from toolkit.errors import InvalidParameterError
from toolkit.load import FileLoad, LoadReport, SourceFile, load
from toolkit.store import connect, summarize

_DB_HELP = "The case database (a DuckDB file)."


@app.command()
@handle_errors
def ingest(
    paths: list[Path] = typer.Argument(..., help="Files or folders of exported logs."),
    db: Path = typer.Option(..., "--db", help=_DB_HELP),
    table: str | None = typer.Option(None, "--table", help="Target table for every file."),
    mapping: Path | None = typer.Option(
        None, "--mapping", help="TOML file renaming source columns and stating units."
    ),
    replace: bool = typer.Option(
        False, "--replace", help="Reload files whose content changed since they were loaded."
    ),
    fmt: str | None = typer.Option(
        None, "--format", help="Force a platform format instead of recognising it by content."
    ),
    features: str | None = typer.Option(
        None, "--features", help="Comma-separated feature names for header-less payloads."
    ),
) -> None:
    """Load exported logs into a case database (created when absent)."""
    con = connect(db)
    try:
        report = LoadReport()
        with _progress() as progress:
            task = progress.add_task("loading", total=None)

            def tick(file: SourceFile, result: FileLoad | None) -> None:
                if result is None:
                    progress.update(task, description=f"{file.path.name} -> {file.table}")
                else:
                    progress.advance(task)

            for path in paths:
                report = report + load(
                    con, path, table=table, mapping=mapping, replace=replace, format=fmt,
                    features=[f.strip() for f in features.split(",")] if features else None,
                    progress=tick,
                )
    finally:
        con.close()
    _print_load_report(report)


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed} file(s)"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=not interactive(),
    )


def _print_load_report(report: LoadReport) -> None:
    table = Table(title=None, show_edge=False)
    for column in ("file", "table", "status", "read", "loaded", "rejected"):
        table.add_column(column, justify="right" if column in ("read", "loaded", "rejected")
                         else "left")
    for item in report.files:
        table.add_row(item.source, item.table, item.status, f"{item.rows_read:,}",
                      f"{item.rows_loaded:,}", f"{item.rows_rejected:,}")
    console.print(table)
    for item in report.files:
        for note in item.notes:
            if item.status in ("loaded", "replaced", "skipped"):
                console.print(f"note: {Path(item.source).name}: {note}", markup=False)
    console.print(
        f"{len(report.files)} file(s): {report.rows_read:,} rows read, "
        f"{report.rows_loaded:,} loaded, {report.rows_rejected:,} rejected"
        + (" (see the rejects table)" if report.rows_rejected else ""),
        markup=False,
    )


@app.command()
@handle_errors
def info(
    db: Path = typer.Option(..., "--db", help=_DB_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Summarize a case: tables, time range, versions, hosts, features, rejects."""
    con = connect(db, read_only=True)
    try:
        summary = summarize(con)
    finally:
        con.close()
    if as_json:
        console.print_json(json.dumps(summary.to_dict(), default=str))
        return
    console.print(f"case {db} (schema v{summary.schema_version}, {summary.loads} load(s))",
                  markup=False)
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
        shown = ", ".join(f"{k} ({v:,})" for k, v in list(values.items())[:12])
        more = f" and {len(values) - 12} more" if len(values) > 12 else ""
        console.print(f"{title}: {shown or '-'}{more}", markup=False)
    features = summary.features
    if len(features):
        listed = ", ".join(f"{r.name} ({r.kind}{', ' + r.unit if r.unit else ''})"
                           for r in features.itertuples(index=False))
        console.print(f"features ({len(features)}): {listed}", markup=False)
    else:
        console.print("features: -")
    if summary.rows_rejected:
        console.print(f"rejected rows: {summary.rows_rejected:,}", markup=False)
        for row in summary.rejects.head(10).itertuples(index=False):
            console.print(f"  {row.rows:,} x {Path(row.file).name}: {row.reason}", markup=False)
    else:
        console.print("rejected rows: 0")


def _ts(value: object) -> str:
    import pandas as pd

    if value is None or pd.isna(value):
        return "-"
    return pd.Timestamp(value).tz_convert("UTC").strftime("%Y-%m-%d %H:%M:%S")


@app.command()
@handle_errors
def sql(
    query: str = typer.Argument(..., help="A DuckDB SQL query."),
    db: Path = typer.Option(..., "--db", help=_DB_HELP),
    fmt: str = typer.Option("table", "--format", help="Output: table, csv or json."),
    max_rows: int = typer.Option(
        100, "--max-rows", help="Rows shown in table format (csv and json print all)."
    ),
) -> None:
    """Run an ad-hoc SQL query on a case (opened read-only)."""
    if fmt not in ("table", "csv", "json"):
        raise InvalidParameterError(f"--format must be table, csv or json. Got {fmt!r}.")
    import duckdb

    con = connect(db, read_only=True)
    try:
        try:
            frame = con.execute(query).df()
        except duckdb.Error as exc:
            raise InvalidParameterError(f"query failed: {exc}") from exc
    finally:
        con.close()
    if fmt == "csv":
        typer.echo(frame.to_csv(index=False), nl=False)
    elif fmt == "json":
        typer.echo(frame.to_json(orient="records", date_format="iso", indent=None))
    else:
        table = Table(show_edge=False)
        for column in frame.columns:
            table.add_column(str(column))
        for row in frame.head(max_rows).itertuples(index=False):
            table.add_row(*["" if v is None else str(v) for v in row])
        console.print(table)
        if len(frame) > max_rows:
            console.print(f"({len(frame):,} rows, {max_rows} shown; --format csv prints all)")
