"""``forensics gate``: check a candidate model version against a release policy (for CI)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from toolkit.cli.app import app, console, handle_errors, safe, usage_errors


@app.command()
@handle_errors
def gate(
    db: Path = typer.Option(..., "--db", help="The case database (DuckDB file)."),
    candidate: str = typer.Option(..., "--candidate", help="The model version to promote."),
    baseline: str | None = typer.Option(
        None, "--baseline", help="The current model version (default: the other version that "
        "served the most requests)."),
    policy: Path | None = typer.Option(
        None, "--policy", help="A gate policy (TOML); default: the packaged template "
        "(toolkit/gate/policy_template.toml)."),
    as_json: bool = typer.Option(False, "--json", help="Print the verdict as JSON."),
    junit: Path | None = typer.Option(None, "--junit", help="Also write JUnit XML here."),
) -> None:
    """Gate a release: accuracy, calibration (ECE, confident errors), latency and error SLOs,
    lineage and cache invalidation of the candidate against the baseline. Exit code 0 when
    the gate passes, 1 when it fails, 2 on a usage error."""
    from toolkit.gate import gate as run_gate
    from toolkit.gate import load_policy
    from toolkit.store import connect

    with usage_errors():
        rules = load_policy(policy)
        if not db.is_file():
            from toolkit.errors import InvalidParameterError

            raise InvalidParameterError(f"{db}: no such case database")
        con = connect(db, read_only=True)
    try:
        with usage_errors():
            result = run_gate(con, candidate, baseline, rules)
    finally:
        con.close()
    if junit is not None:
        junit.write_text(result.to_junit(), encoding="utf-8")
    if as_json:
        sys.stdout.write(result.to_json(indent=2) + "\n")
    else:
        console.print(safe(result.to_text()), markup=False)
    raise typer.Exit(result.exit_code)
