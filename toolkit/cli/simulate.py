"""``forensics simulate``: write simulated incidents (with their ground truth) as export files."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from toolkit.cli.app import app, console, err_console, handle_errors, interactive, usage_errors
from toolkit.errors import InvalidParameterError


@app.command()
@handle_errors
def simulate(
    mode: str | None = typer.Option(
        None, "--mode", help="A failure mode (see --list), 'none' for a healthy period, or 'all' "
        "for one subfolder per mode."),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed gives the same case."),
    rows: int = typer.Option(100_000, "--rows", help="Request rows per case (1,000 to 1e9)."),
    out: Path | None = typer.Option(None, "--out", help="Output folder (must be empty)."),
    preset: str | None = typer.Option(
        None, "--preset", help="A published scenario (see --list); sets the mode."),
    no_confounders: bool = typer.Option(
        False, "--no-confounders", help="Leave out the benign deploy, drift, seasonality and "
        "latency blip."),
    extra_features: int = typer.Option(
        0, "--extra-features", help="Add K generic numeric features f01..fK."),
    format: str = typer.Option(
        "generic", "--format", help="Write the case as a platform exports it: generic, "
        "sagemaker, kserve, prometheus, kubernetes, otlp or vertex (the rest of the case stays "
        "generic)."),
    world: str = typer.Option(
        "classic", "--world", help="classic (the fraud-scoring service of the published "
        "figures) or varied: service, features, log sampling (--rows is then the requests "
        "served), labels, tables and columns, metric cadence, event wording, traffic shape, "
        "strength, confounders and onset position drawn from the seed."),
    task: str = typer.Option(
        "binary", "--task", help="The model behind the endpoint: binary, multiclass (3-10 "
        "classes, scores JSON), regression (a value with a prediction interval; endpoints.csv "
        "declares its nominal coverage) or generative."),
    list_: bool = typer.Option(False, "--list", help="List failure modes and presets, then exit."),
) -> None:
    """Simulate an incident and write it as files that `forensics ingest` loads, with truth.json."""
    from toolkit.classify.taxonomy import PATHWAY_OF
    from toolkit.simulate import PRESETS, make_case, write_case
    from toolkit.simulate.case import task_modes
    from toolkit.simulate.platforms import FORMATS

    with usage_errors():  # a bad option is a usage error: exit 2
        modes = task_modes(task)  # refuses an unknown task
        if list_:
            for name in modes:
                console.print(f"{name:<26} {PATHWAY_OF.get(name, name)}", markup=False)
            for name, spec in (PRESETS.items() if task == "binary" else ()):
                console.print(f"{name:<26} preset ({spec.failure_mode}): {spec.title}", markup=False)
            return
        if format not in ("generic", *FORMATS):
            raise InvalidParameterError(
                f"Unknown format {format!r}; choose one of generic, {', '.join(FORMATS)}.")
        if out is None:
            raise InvalidParameterError("--out is required: the folder to write the case to.")
        if mode is None and preset is None:
            raise InvalidParameterError("Give --mode MODE|all or --preset NAME (see --list).")
        if world not in ("classic", "varied"):
            raise InvalidParameterError(f"Unknown world {world!r}; choose classic or varied.")
        if world == "varied" and preset is not None:
            raise InvalidParameterError("--preset is a classic-world scenario; leave out "
                                        "--world varied.")
        if mode == "all" and preset is not None:
            raise InvalidParameterError("--mode all and --preset cannot be combined.")
        if task != "binary" and (preset is not None or world != "classic"):
            raise InvalidParameterError(f"--task {task} takes no --preset and the classic world "
                                        "only.")
        if mode == "all":
            targets = [(name, out / name) for name in modes]
        else:
            targets = [(mode, out)]
        for name in [n for n, _ in targets]:
            if preset is None and name not in modes:
                raise InvalidParameterError(
                    f"Unknown failure mode {name!r}. Modes: {', '.join(modes)}, or all.")
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise InvalidParameterError(f"{out} exists and is not an empty folder.")

    with usage_errors():  # make_case checks --rows and the other values
        cases = [(make_case(name, seed=seed, rows=rows, confounders=not no_confounders,
                            preset=preset, extra_features=extra_features, world=world,
                            task=task), folder)
                 for name, folder in targets]
    total = sum(case.rows for case, _ in cases)
    with _progress() as progress:
        task = progress.add_task("simulating", total=total)
        done_before = 0
        for case, folder in cases:
            progress.update(task, description=case.preset or case.failure_mode)
            start = done_before

            def tick(done: int, _total: int, start: int = start) -> None:
                progress.update(task, completed=start + done)

            write_case(case, folder, progress=tick, format=format)
            done_before += case.rows
            truth = case.truth()
            console.print(
                f"{folder}: {truth['failure_mode']} ({truth['pathway']}), {case.rows:,} "
                f"{'logged ' if world == 'varied' else ''}"
                f"requests{'' if format == 'generic' else ' as ' + format}, onset "
                f"{truth['onset'] or '-'}, incident "
                f"{truth['incident'][0]}/{truth['incident'][1]}",
                markup=False,
            )


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
        disable=not interactive(),
    )
