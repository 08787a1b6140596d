"""``forensics shell``: an interactive, read-only SQL shell on a case.

A case is written by the Python ``duckdb`` module the toolkit installs. A DuckDB command-line
client of an older storage version cannot open it ("database file version number ... can only
read ..."), and the newest ``duckdb-cli`` on the package registry may lag behind the Python
module. This shell needs nothing but the toolkit: it reads statements from standard input (a
terminal or a pipe), runs each on the case opened read-only and sandboxed like
``forensics sql``, and prints the result as an aligned table.

Statements end with ``;``. Dot commands: ``.tables``, ``.schema TABLE``, ``.help``, ``.quit``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

import typer

from toolkit.cli.app import app, console, err_console, handle_errors, safe, usage_errors
from toolkit.cli.display import print_table
from toolkit.store import connect

__all__ = ["shell", "run_shell"]

_HELP = """\
Statements end with ';' and may span lines. The case is read-only.
  .tables          the tables and views of the case
  .schema TABLE    the columns of a table or view
  .help            this text
  .quit            leave (or Ctrl-D)"""


@app.command()
@handle_errors
def shell(
    db: Path = typer.Option(..., "--db", metavar="CASE", help="The case database to open."),
    max_rows: int = typer.Option(
        100, "--max-rows", metavar="N", help="Rows shown per result."),
    unsafe_allow_external: bool = typer.Option(
        False, "--unsafe-allow-external",
        help="Let statements read and write files other than the case (read_csv, ATTACH, "
        "COPY ... TO). Only for statements you trust."),
) -> None:
    """An interactive read-only SQL shell on a case (no DuckDB CLI needed)."""
    with usage_errors():
        con = connect(db, read_only=True, external_access=unsafe_allow_external)
    try:
        failures = run_shell(con, sys.stdin, prompt=sys.stdin.isatty(), max_rows=max_rows)
    finally:
        con.close()
    if failures and not sys.stdin.isatty():
        raise typer.Exit(1)


def run_shell(con, stream: TextIO, *, prompt: bool, max_rows: int = 100) -> int:
    """Run the statements read from ``stream`` on ``con``; return how many failed.

    Each failing statement prints one ``error:`` line and the shell goes on, as the DuckDB
    CLI does.
    """
    import duckdb

    failures = 0
    buffer: list[str] = []
    while True:
        if prompt:
            err_console.print("case> " if not buffer else "  ...> ", end="", markup=False)
        line = stream.readline()
        if not line:
            break
        stripped = line.strip()
        if not buffer and stripped.startswith("."):
            if stripped in (".quit", ".exit"):
                break
            failures += not _dot_command(con, stripped, max_rows)
            continue
        if not stripped and not buffer:
            continue
        buffer.append(line)
        if not stripped.endswith(";"):
            continue
        statement = "".join(buffer)
        buffer.clear()
        try:
            frame = con.execute(statement).df()
        except duckdb.Error as exc:
            err_console.print(f"error: {safe(exc)}", markup=False)
            failures += 1
            continue
        _show(frame, max_rows)
    if buffer and "".join(buffer).strip():
        err_console.print("error: the last statement has no closing ';' and was not run",
                          markup=False)
        failures += 1
    return failures


def _show(frame, max_rows: int) -> None:
    print_table(frame.head(max_rows), console, notice=err_console)
    if len(frame) > max_rows:
        console.print(f"({len(frame):,} rows, {max_rows} shown)", markup=False)


def _dot_command(con, command: str, max_rows: int) -> bool:
    name, _, argument = command.partition(" ")
    argument = argument.strip()
    if name == ".help":
        console.print(_HELP, markup=False)
        return True
    if name == ".tables":
        _show(con.execute(
            "SELECT table_name AS name, lower(table_type) AS type "
            "FROM information_schema.tables WHERE table_schema = 'main' ORDER BY 1").df(),
            max_rows=10_000)
        return True
    if name == ".schema" and argument:
        frame = con.execute(
            "SELECT column_name AS column, data_type AS type FROM information_schema.columns "
            "WHERE table_schema = 'main' AND table_name = ? ORDER BY ordinal_position",
            [argument]).df()
        if frame.empty:
            err_console.print(f"error: no table or view named {safe(argument)!s}", markup=False)
            return False
        _show(frame, max_rows=10_000)
        return True
    err_console.print(f"error: unknown command {safe(command)}; .help lists them", markup=False)
    return False
