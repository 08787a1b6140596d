"""``forensics classify``, ``postmortem``, ``report weekly``, ``evaluate`` and ``demo``."""

from __future__ import annotations

import inspect
import json
import re
import shutil
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from toolkit.cli.app import (
    app,
    console,
    err_console,
    handle_errors,
    interactive,
    safe,
    usage_errors,
)
from toolkit.cli.display import json_safe
from toolkit.cli.lake import check_source, engine_option, open_case, tables_option
from toolkit.errors import InvalidParameterError
from toolkit.types import Window

_DB_HELP = "The case database (a DuckDB file)."
_DB_OR_LAKE_HELP = _DB_HELP + " Or --engine spark --tables for a case in a lake."
_WINDOW_HELP = "START/END in ISO 8601 (UTC unless an offset is given)."
#: Windows and weeks must lie in this span: the diagnostics reach 14 days and a week beyond a
#: window, and pandas timestamps end in 2262 (0001-01-01/9999-12-31 ended in an OverflowError).
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
_ISO_WEEK = re.compile(r"(\d{4})-W(\d{2})")
_MAX_ID = 200

report_app = typer.Typer(help="Scheduled reports.", no_args_is_help=True)
app.add_typer(report_app, name="report")


@app.command()
@handle_errors
def classify(
    db: Path | None = typer.Option(None, "--db", help=_DB_OR_LAKE_HELP),
    incident: str | None = typer.Option(None, "--incident", help="Incident window: "
                                        + _WINDOW_HELP + " Detected from the data if omitted."),
    baseline: str | None = typer.Option(None, "--baseline", help="Baseline window: "
                                        + _WINDOW_HELP + " Default: before the incident."),
    as_json: bool = typer.Option(False, "--json", help="Print the classification as JSON "
                                 "(verdict, scores, onset, windows, evidence, remediation)."),
    rules: Path | None = typer.Option(None, "--rules", help="A rule table (TOML) to use "
                                      "instead of the packaged one."),
    engine: str = engine_option(),
    tables: list[str] | None = tables_option(),
) -> None:
    """Classify the incident: pathway, failure mode, onset, evidence, remediation."""
    from toolkit.classify import classify_incident

    with usage_errors():
        _check_windows(incident, baseline)
        con, close = open_case(db, engine, tables)  # the options are checked before Spark starts
    try:
        with DiagnosticProgress(err_console, enabled=interactive()) as progress:
            options = {"progress": progress} if progress.supported(classify_incident) else {}
            result = classify_incident(con, incident=incident, baseline=baseline,
                                       rules=str(rules) if rules else None, **options)
    finally:
        close()
    if as_json:
        sys.stdout.write(json_safe(result.to_json(indent=2)) + "\n")
    else:
        # the summary quotes versions, hosts and features from the logs
        console.print(safe(result.summary()), markup=False, highlight=False)


@app.command()
@handle_errors
def postmortem(
    db: Path | None = typer.Option(None, "--db", help=_DB_OR_LAKE_HELP),
    out: Path = typer.Option(..., "--out", help="Folder for the notebook, HTML and results."),
    incident: str | None = typer.Option(None, "--incident", help=_WINDOW_HELP),
    baseline: str | None = typer.Option(None, "--baseline", help=_WINDOW_HELP),
    incident_id: str = typer.Option("incident", "--id", help="Incident id for the title."),
    show_code: bool = typer.Option(False, "--show-code", help="Keep code cells in the HTML."),
    engine: str = engine_option(),
    tables: list[str] | None = tables_option(),
) -> None:
    """Render the postmortem notebook (papermill) and its HTML (nbconvert)."""
    from toolkit.report import render_postmortem

    with usage_errors():
        _check_windows(incident, baseline)
        _check_id(incident_id)
        spec = check_source(db, engine, tables)  # before Spark starts in the notebook
        if spec is None:
            _check_case(db)
    start = time.perf_counter()
    with _spinner("rendering the postmortem"):
        rendered = render_postmortem(db, out, incident=incident, baseline=baseline,
                                     incident_id=incident_id, hide_code=not show_code,
                                     engine=engine, tables=spec or "")
    verdict = json.loads(rendered.results.read_text())["classification"]
    console.print(safe(_verdict_line(verdict)), markup=False)
    console.print(f"postmortem: {rendered.html} ({time.perf_counter() - start:.0f} s)",
                  markup=False)


@report_app.command("weekly")
@handle_errors
def weekly(
    db: Path | None = typer.Option(None, "--db", help=_DB_OR_LAKE_HELP),
    week: str = typer.Option(..., "--week", metavar="YYYY-Www",
                             help="ISO week, e.g. 2026-W47."),
    out: Path = typer.Option(..., "--out", help="Folder for the notebook, HTML and results."),
    show_code: bool = typer.Option(False, "--show-code", help="Keep code cells in the HTML."),
    engine: str = engine_option(),
    tables: list[str] | None = tables_option(),
) -> None:
    """Render the weekly health report of an ISO week (for cron / Airflow)."""
    from toolkit.report import render_weekly

    with usage_errors():
        week = _check_week(week)
        spec = check_source(db, engine, tables)  # before Spark starts in the notebook
        if spec is None:
            _check_case(db)
    with _spinner(f"rendering the weekly report {week}"):
        rendered = render_weekly(db, out, week=week, hide_code=not show_code, engine=engine,
                                 tables=spec or "")
    results = json.loads(rendered.results.read_text())
    met = results.get("slo_met")
    console.print(f"week {week}: SLOs {'met' if met else 'not met' if met is False else 'n/a'}, "
                  f"{len(results['incidents'])} incident(s), "
                  f"{len(results['drifted_features'])} drifted feature(s)", markup=False)
    console.print(f"report: {rendered.html}", markup=False)


@app.command()
@handle_errors
def evaluate(
    seeds: str | None = typer.Option(
        None, "--seeds", help="Comma-separated seeds (default: the world's report seeds, "
        "1001-1003 classic, 2001-2003 varied; tuning seeds, 1-15 classic and 1-20 varied, are "
        "refused unless --tuning; multiclass, regression and generative: report 1001-1003, "
        "tuning 1-15)."),
    rows: int = typer.Option(30_000, "--rows", help="Requests per simulated case (varied "
                             "world: requests served; the log keeps a 1-in-2 to 1-in-50 "
                             "sample)."),
    given_window: bool = typer.Option(False, "--given-window",
                                      help="Use the true windows instead of detecting them."),
    modes: str | None = typer.Option(None, "--modes", help="Comma-separated failure modes "
                                     "(default: all the task's modes and none: 16 for "
                                     "binary)."),
    jobs: int = typer.Option(2, "--jobs", help="Cases evaluated in parallel."),
    world: str = typer.Option("classic", "--world", help="classic (the published scenarios' "
                              "service) or varied (service, sampling, tables, traffic, "
                              "strength, confounders drawn per case)."),
    tuning: bool = typer.Option(False, "--tuning", help="A tuning run: allow tuning seeds "
                                "(the report says so)."),
    task: str = typer.Option("binary", "--task", help="The model behind the simulated "
                             "endpoint: binary, multiclass (3-10 classes), regression (with a "
                             "prediction interval) or generative; classic world only for all "
                             "but binary."),
    out: Path | None = typer.Option(None, "--out", help="Write the full report as JSON."),
) -> None:
    """Score the classifier on simulated incidents of every failure mode."""
    from rich.table import Table

    from toolkit.evaluate import CI_LEVEL, check_suite, seeds_for, write_report
    from toolkit.evaluate import evaluate as run

    with usage_errors():
        seed_list = [int(s) for s in seeds.split(",") if s.strip()] if seeds else \
            list(seeds_for(world, task=task))
        mode_list = check_suite(world, task, [m.strip() for m in modes.split(",")]
                                if modes else None)
    done = []

    def tick(outcome) -> None:
        done.append(outcome)
        mark = "ok" if outcome.failure_mode == outcome.truth_mode else "MISS"
        err_console.print(f"[{len(done)}] {outcome.mode} seed {outcome.seed}: "
                          f"{outcome.pathway}/{outcome.failure_mode} {mark} "
                          f"(onset error {outcome.onset_error_min:.0f} min, window IoU "
                          f"{outcome.window_iou:.2f}, {outcome.seconds:.0f} s)"
                          f"{' ' + outcome.error if outcome.error else ''}", markup=False)

    report = run(seeds=seed_list, rows=rows, given_window=given_window, modes=mode_list,
                 jobs=jobs, progress=tick, world=world, tuning=tuning, task=task)
    s = report.summary
    seed_text = ",".join(map(str, report.seeds))
    summary = Table(title=f"{s['cases']} cases, {world} world, "
                          f"{'' if task == 'binary' else task + ' task, '}"
                          f"{'given' if given_window else 'detected'} windows, {rows:,} rows, "
                          f"seeds {seed_text}{' (TUNING run)' if tuning else ''}",
                    show_edge=False)
    summary.add_column("metric")
    summary.add_column("value", justify="right")
    summary.add_column(f"{CI_LEVEL:.0%} interval", justify="right")
    for key, label, fmt in (
        ("pathway_accuracy", "pathway top-1 accuracy", "{:.3f}"),
        ("failure_mode_accuracy", "failure-mode accuracy", "{:.3f}"),
        ("macro_f1", "macro-F1 (pathways)", "{:.3f}"),
        ("median_onset_error_min", "median onset error (min)", "{:.1f}"),
        ("onset_within_30min", "onsets within 30 min", "{:.3f}"),
        ("onsets_missing", "incidents without an onset", "{:d}"),
        ("mean_window_iou", "mean window overlap (IoU)", "{:.3f}"),
        ("median_window_iou", "median window overlap (IoU)", "{:.3f}"),
        ("window_holds_onset", "windows holding the onset", "{:.3f}"),
        ("windows_not_found", "incidents with no window found (fallback read)", "{:d}"),
        ("healthy_windows_opened", "healthy cases opening a window", "{:d}"),
        ("abstention_rate", "abstention rate", "{:.3f}"),
        ("errors", "crashes", "{:d}"),
        ("seconds_per_case", "seconds per case", "{:.1f}"),
    ):
        interval = report.intervals.get(key)
        shown = "" if interval is None else \
            f"{fmt.format(interval[0])} - {fmt.format(interval[1])}"
        summary.add_row(label, fmt.format(s[key]), shown)
    console.print(summary)
    confusion = report.confusion()
    table = Table(title="confusion (rows: truth pathway, columns: predicted)", show_edge=False)
    table.add_column("truth")
    for column in confusion.columns:
        table.add_column(str(column), justify="right")
    for name, row in confusion.iterrows():
        table.add_row(str(name), *[str(int(v)) for v in row])
    console.print(table)
    for miss in report.misses():
        console.print(f"miss: {miss['mode']} seed {miss['seed']} -> {miss['verdict']} "
                      f"(onset error {miss['onset_error_min']} min, window IoU "
                      f"{miss['window_iou']}){' ' + miss['error'] if miss['error'] else ''}",
                      markup=False)
    if out:
        write_report(report, out)
        console.print(f"report: {out}", markup=False)


@app.command()
@handle_errors
def demo(
    out: Path = typer.Option(Path("out/demo"), "--out", help="Where to write the case."),
    rows: int = typer.Option(20_000, "--rows", help="Requests in the simulated case."),
    seed: int = typer.Option(7, "--seed"),
) -> None:
    """End to end on the rollback scenario: simulate, ingest, classify, render the postmortem."""
    from toolkit.load import load
    from toolkit.report import render_postmortem
    from toolkit.simulate import make_case, write_case
    from toolkit.store import connect, summarize

    start = time.perf_counter()
    raw = out / "raw"
    db = out / "case.duckdb"
    with usage_errors():
        _clear_previous_demo(raw, db)
    console.print("1/4 simulate: the rollback that restores an older model behind a pipeline "
                  "with a different feature order", markup=False)
    case = make_case("version_skew", seed=seed, rows=rows, preset="rollback-feature-order")
    write_case(case, raw)
    console.print(f"2/4 ingest {raw} -> {db}", markup=False)
    con = connect(db)
    report = load(con, raw)
    summary = summarize(con)
    console.print(f"    {report.rows_loaded:,} rows loaded, {report.rows_rejected:,} rejected; "
                  f"model versions {', '.join(summary.model_versions)}", markup=False)
    mix = con.execute("SELECT model_version, pipeline_version, count(*) AS requests FROM "
                      "requests GROUP BY ALL ORDER BY min(ts)").fetchall()
    console.print("    ad-hoc SQL, traffic per model x pipeline: " + "; ".join(
        f"{m} x {p}: {n:,}" for m, p, n in mix), markup=False)
    con.close()
    console.print("3/4 classify and 4/4 render the postmortem (papermill + nbconvert)",
                  markup=False)
    with _spinner("rendering"):
        rendered = render_postmortem(db, out / "postmortem", incident_id="DEMO-rollback")
    verdict = json.loads(rendered.results.read_text())["classification"]
    truth = case.truth()
    console.print(safe(_verdict_line(verdict)) + f"  [truth: {truth['pathway']}/"
                  f"{truth['failure_mode']}]", markup=False)
    console.print(f"postmortem: {rendered.html.resolve()}", markup=False)
    console.print(f"done in {time.perf_counter() - start:.0f} s", markup=False)


def _verdict_line(verdict: dict) -> str:
    if verdict["pathway"] in ("none", "undetermined"):
        return f"verdict: {verdict['pathway']} (confidence {verdict['confidence']:.2f})"
    return (f"verdict: {verdict['pathway']} / {verdict['failure_mode']} (confidence "
            f"{verdict['confidence']:.2f}), onset {verdict['onset']}")


def _clear_previous_demo(raw: Path, db: Path) -> None:
    """Remove what an earlier ``forensics demo`` wrote to the same ``--out``, and nothing else.

    ``raw`` is removed only when it holds a simulated case (its ``truth.json``); any other
    non-empty folder is refused, so a mistyped ``--out`` never deletes someone's files.
    """
    if raw.exists():
        if not raw.is_dir():
            raise InvalidParameterError(f"{raw} is a file; choose another --out for the demo.")
        if any(raw.iterdir()):
            if not (raw / "truth.json").is_file():
                raise InvalidParameterError(
                    f"{raw} exists and holds files the demo did not write (no truth.json); "
                    "choose another --out or empty it.")
            shutil.rmtree(raw)
    for stale in (db, db.with_suffix(".duckdb.wal")):
        stale.unlink(missing_ok=True)


def _check_windows(incident: str | None, baseline: str | None) -> None:
    for name, value in (("--incident", incident), ("--baseline", baseline)):
        if value is not None:
            try:
                window = Window.parse(value)
            except (InvalidParameterError, OverflowError, ValueError) as exc:
                raise InvalidParameterError(f"{name}: {safe(exc, newlines=False)}") from exc
            if window.start < EARLIEST or window.end > LATEST:
                raise InvalidParameterError(
                    f"{name}: {window} lies outside the supported span "
                    f"{EARLIEST:%Y-%m-%d} to {LATEST:%Y-%m-%d} (UTC).")


def _check_week(week: str) -> str:
    """An ISO week ``YYYY-Www`` that exists (W53 only in long years), within the span."""
    text = week
    match = _ISO_WEEK.fullmatch(text)
    if not match:
        raise InvalidParameterError(
            f"--week must be an ISO week YYYY-Www such as 2026-W47. Got "
            f"{safe(week, newlines=False)!r}.")
    try:
        datetime.fromisocalendar(int(match.group(1)), int(match.group(2)), 1)
    except ValueError as exc:
        raise InvalidParameterError(f"--week: {text} is not a week of {match.group(1)} "
                                    "(weeks run from W01 to W52, or W53 in long years).") from exc
    try:
        window = Window.parse(text)
    except (InvalidParameterError, OverflowError, ValueError) as exc:
        raise InvalidParameterError(f"--week: {safe(exc, newlines=False)}") from exc
    if window.start < EARLIEST or window.end > LATEST:
        raise InvalidParameterError(f"--week: {text} lies outside the supported span "
                                    f"{EARLIEST:%Y} to {LATEST:%Y}.")
    return f"{int(match.group(1)):04d}-W{int(match.group(2)):02d}"


def _check_id(incident_id: str) -> None:
    """The incident id is a title: printable text that can be written as UTF-8."""
    try:
        incident_id.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidParameterError(
            f"--id {safe(incident_id, newlines=False)!r} is not valid UTF-8 text (byte "
            f"{exc.start + 1}); give the incident id as plain text.") from exc
    if safe(incident_id, newlines=False) != incident_id:
        raise InvalidParameterError(
            f"--id {safe(incident_id, newlines=False)!r} holds control characters; give the "
            "incident id as plain text.")
    if not incident_id.strip() or len(incident_id) > _MAX_ID:
        raise InvalidParameterError(f"--id must be 1 to {_MAX_ID} characters of text.")


def _check_case(db: Path) -> None:
    """Open the case read-only once, so a bad --db is a usage error before any rendering."""
    from toolkit.store import connect

    connect(db, read_only=True).close()


class _spinner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.status = None

    def __enter__(self):
        if interactive():
            self.status = err_console.status(self.text)
            self.status.__enter__()
        return self

    def __exit__(self, *exc):
        if self.status is not None:
            self.status.__exit__(*exc)
        return False


class DiagnosticProgress:
    """A progress bar on ``console`` naming the diagnostic that runs, fed by the
    ``progress(diagnostic_id, done, total)`` callback of :func:`toolkit.classify_incident`.

    The detection scan and the diagnosis each count from zero, so every call sets the total.
    Disabled (nothing printed) when ``enabled`` is false: not a terminal, or under CI.
    """

    def __init__(self, console: Console, *, enabled: bool, transient: bool = True) -> None:
        self.bar = Progress(SpinnerColumn(), TextColumn("classifying: {task.description}"),
                            BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            console=console, transient=transient, disable=not enabled)
        self.task = self.bar.add_task("reading the case", total=None)

    @staticmethod
    def supported(function: Callable[..., object]) -> bool:
        """Whether ``function`` takes a ``progress`` callback."""
        return "progress" in inspect.signature(function).parameters

    def __call__(self, diagnostic_id: str, done: int, total: int) -> None:
        self.bar.update(self.task, description=safe(diagnostic_id, newlines=False),
                        completed=done, total=total)

    def __enter__(self) -> DiagnosticProgress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> bool:
        self.bar.__exit__(*exc)
        return False
